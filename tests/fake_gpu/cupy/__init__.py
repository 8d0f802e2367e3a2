"""A stand-in for CuPy, backed by NumPy, that behaves like a device library where it matters.

Used by the ``backend`` test fixture (tests/conftest.py, tests/_helpers.py) to run sparselin's
CuPy code paths on a machine without a GPU. Like real CuPy, its arrays refuse implicit conversion
to NumPy
(``np.asarray(x)`` raises) and refuse to mix with NumPy arrays in arithmetic, so a stray
``np.`` call on device data, or host data that was never moved, fails here as it would on a
GPU. Everything else is NumPy's arithmetic. Raw CUDA kernels cannot be compiled
(``RawModule`` raises), which exercises sparselin's array-code fallback.

The stand-in offers only the API a real CuPy has: every module-level name, ``cupy.linalg``
function and ``ndarray`` method is checked against ``cupy_api.json`` (harvested from a real
CuPy by harvest_cupy_api.py), so code that works here because NumPy has a function CuPy lacks
fails here too.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as _np

API = {
    k: frozenset(v)
    for k, v in json.loads((Path(__file__).parent.parent / "cupy_api.json").read_text()).items()
    if k != "_source"
}


def _require(module: str, name: str) -> None:
    if name not in API[module]:
        raise AttributeError(f"fake cupy: {module} has no attribute {name!r} in real CuPy")


__version__ = "0.0-fake"


class ndarray:
    """A device array: wraps a NumPy array and refuses to be mistaken for one."""

    __array_ufunc__ = None  # numpy ufuncs on device data raise TypeError, as with CuPy

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (fake cupy)")

    def __array_function__(self, func, types_, args, kwargs):
        raise TypeError(f"fake cupy: numpy.{func.__name__} called on device data")

    # Plain attributes.
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    dtype = property(lambda self: self._a.dtype)
    flags = property(lambda self: self._a.flags)
    itemsize = property(lambda self: self._a.itemsize)
    T = property(lambda self: ndarray(self._a.T))
    real = property(lambda self: ndarray(self._a.real))
    imag = property(lambda self: ndarray(self._a.imag))

    def __getattr__(self, name):
        if name.startswith("__"):  # no __array_interface__ & co.: NumPy must not see through
            raise AttributeError(name)
        _require("cupy.ndarray", name)
        attr = getattr(self._a, name)
        if callable(attr):

            def method(*args, **kwargs):
                return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))

            return method
        return _wrap(attr)

    def get(self):
        return _np.array(self._a)

    def __repr__(self):
        return f"fake_cupy.{self._a!r}"

    def __len__(self):
        return len(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(_device_only(value))


def _binary(op, reflected=False):
    def method(self, other):
        other = _unwrap(_device_only(other))
        return _wrap(op(other, self._a) if reflected else op(self._a, other))

    return method


def _inplace(op):
    def method(self, other):
        op(self._a, _unwrap(_device_only(other)), out=self._a)
        return self

    return method


for _name, _op in {
    "add": _np.add,
    "sub": _np.subtract,
    "mul": _np.multiply,
    "truediv": _np.true_divide,
    "pow": _np.power,
    "matmul": _np.matmul,
    "and": _np.logical_and,
    "or": _np.logical_or,
}.items():
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
for _name, _op in {
    "add": _np.add,
    "sub": _np.subtract,
    "mul": _np.multiply,
    "truediv": _np.true_divide,
}.items():
    setattr(ndarray, f"__i{_name}__", _inplace(_op))
for _name, _op in {
    "lt": _np.less,
    "le": _np.less_equal,
    "gt": _np.greater,
    "ge": _np.greater_equal,
    "eq": _np.equal,
    "ne": _np.not_equal,
}.items():
    setattr(ndarray, f"__{_name}__", _binary(_op))
ndarray.__neg__ = lambda self: ndarray(-self._a)
ndarray.__abs__ = lambda self: ndarray(_np.abs(self._a))
ndarray.__invert__ = lambda self: ndarray(~self._a)
ndarray.__hash__ = None


def _device_only(x):
    """Host arrays may not meet device arrays (CuPy raises TypeError)."""
    if isinstance(x, _np.ndarray) and x.ndim > 0:
        raise TypeError("fake cupy: an operation mixes device and host (NumPy) arrays")
    return x


def _unwrap(x):
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, _np.ndarray):
        return ndarray(x)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _check_no_host(x):
    if isinstance(x, (list, tuple)):
        for v in x:
            _check_no_host(v)
    elif isinstance(x, dict):
        for v in x.values():
            _check_no_host(v)
    else:
        _device_only(x)


def asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray):
        return a if dtype is None else a.astype(dtype)
    return ndarray(_np.asarray(a, dtype=dtype, order=order))


def array(a, dtype=None, copy=True, order="K"):
    return ndarray(_np.array(_unwrap(a), dtype=dtype, copy=copy, order=order))


def asnumpy(a):
    return a.get() if isinstance(a, ndarray) else _np.asarray(a)


class _Forward(types.ModuleType):
    """Module whose functions are NumPy's, unwrapping device inputs and wrapping outputs."""

    def __init__(self, name, target, api=None):
        super().__init__(name)
        self._target = target
        self._api = api

    def __getattr__(self, attr):
        if self._api is not None:
            _require(self._api, attr)
        obj = getattr(self._target, attr)
        if callable(obj) and not isinstance(obj, type):

            def call(*args, **kwargs):
                _check_no_host(args)
                _check_no_host(kwargs)
                return _wrap(obj(*_unwrap(args), **_unwrap(kwargs)))

            return call
        return obj


linalg = _Forward("cupy.linalg", _np.linalg, "cupy.linalg")
random = _Forward("cupy.random", _np.random, "cupy.random")
_numpy_module = _Forward("cupy", _np, "cupy")


def __getattr__(attr):
    return getattr(_numpy_module, attr)


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDeviceProperties(i):
        return {"name": b"fake GPU (NumPy)"}


class _Device:
    def __init__(self, i=0):
        pass

    def synchronize(self):
        pass


cuda = types.SimpleNamespace(runtime=_Runtime(), Device=_Device)


class RawModule:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("fake cupy cannot compile CUDA code")


float32, float64 = _np.float32, _np.float64
complex64, complex128 = _np.complex64, _np.complex128
int64 = _np.int64
