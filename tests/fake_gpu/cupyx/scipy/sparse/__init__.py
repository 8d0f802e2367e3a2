"""Fake cupyx.scipy.sparse: device sparse matrices wrapping SciPy's, restricted to CuPy's API.

Like cupyx's, these matrices live "on the device": their products with device arrays give
device arrays, products with NumPy arrays raise, ``.data`` is a device array, and ``.get()``
brings a SciPy matrix back to the host. Only the formats cupyx has (csr, csc, coo, dia) exist,
and only the attributes its ``csr_matrix`` has may be used.
"""

from __future__ import annotations

import numpy as _np
import scipy.sparse as _sp
from cupy import _require, _unwrap, _wrap, ndarray

_FORMATS = ("csr", "csc", "coo", "dia")


def _from_host(m):
    """Wrap a SciPy matrix of a format cupyx has (others are converted to CSR, as cupyx would
    refuse them)."""
    if m.format not in _FORMATS:
        m = m.tocsr()
    return _CLASSES[m.format](m)


class spmatrix:
    __array_ufunc__ = None  # NumPy ufuncs on device data raise TypeError, as with CuPy
    format = None

    def __init__(self, arg1, shape=None, dtype=None, copy=False):
        if isinstance(arg1, spmatrix):
            host = arg1._m
        elif _sp.issparse(arg1):
            host = arg1  # cupyx accepts a SciPy matrix and copies it to the device
        elif isinstance(arg1, ndarray):
            host = arg1._a
        elif isinstance(arg1, tuple):
            host = tuple(_unwrap(a) for a in arg1)
            if len(host) == 2 and isinstance(host[1], tuple):
                host = (host[0], tuple(_unwrap(a) for a in host[1]))
        else:
            raise TypeError(f"fake cupyx: unsupported sparse input {type(arg1).__name__}")
        cls = getattr(_sp, f"{self.format}_matrix")
        self._m = cls(host, shape=shape, dtype=dtype, copy=True)

    def __array__(self, dtype=None, copy=None):
        raise TypeError("fake cupyx: implicit conversion of a device sparse matrix to NumPy")

    shape = property(lambda self: self._m.shape)
    dtype = property(lambda self: self._m.dtype)
    ndim = property(lambda self: 2)
    nnz = property(lambda self: self._m.nnz)
    T = property(lambda self: _from_host(self._m.T))
    H = property(lambda self: _from_host(self._m.conj().T))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        _require("cupyx.scipy.sparse.csr_matrix", name)
        attr = getattr(self._m, name)
        if callable(attr):

            def method(*args, **kwargs):
                return _wrap_any(attr(*_unwrap(args), **_unwrap(kwargs)))

            return method
        return _wrap_any(attr)

    def get(self):
        return self._m.copy()

    def __len__(self):
        raise TypeError("sparse matrix length is ambiguous; use getnnz() or shape[0]")

    def __getitem__(self, key):
        return _wrap_any(self._m[_unwrap(key)])

    def __matmul__(self, other):
        return _wrap_any(self._m @ _device_operand(other))

    def __rmatmul__(self, other):
        return _wrap_any(_device_operand(other) @ self._m)

    def __mul__(self, other):
        if _np.isscalar(other):
            return _wrap_any(self._m * other)
        return NotImplemented

    __rmul__ = __mul__

    def __neg__(self):
        return _wrap_any(-self._m)

    def __add__(self, other):
        return _wrap_any(self._m + _device_operand(other))

    def __sub__(self, other):
        return _wrap_any(self._m - _device_operand(other))

    def __repr__(self):
        return f"fake_cupyx.{self._m!r}"


def _device_operand(x):
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, spmatrix):
        return x._m
    if _np.isscalar(x):
        return x
    raise TypeError(
        f"fake cupyx: a device sparse matrix cannot meet a host {type(x).__name__}; "
        "move it to the device first"
    )


def _wrap_any(x):
    if _sp.issparse(x):
        return _from_host(x)
    if isinstance(x, _np.matrix):
        return ndarray(_np.asarray(x))
    return _wrap(x)


class csr_matrix(spmatrix):
    format = "csr"


class csc_matrix(spmatrix):
    format = "csc"


class coo_matrix(spmatrix):
    format = "coo"


class dia_matrix(spmatrix):
    format = "dia"


_CLASSES = {"csr": csr_matrix, "csc": csc_matrix, "coo": coo_matrix, "dia": dia_matrix}


def issparse(x):
    return isinstance(x, spmatrix)


def isspmatrix_csr(x):
    return isinstance(x, csr_matrix)


def isspmatrix_csc(x):
    return isinstance(x, csc_matrix)
