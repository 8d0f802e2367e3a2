"""The one backend seam: which array library holds the data, and the dtype rules.

Everything in sparselin that needs to know whether it is looking at a NumPy array, a CuPy
array, a sparse matrix or a dask array asks this module. CuPy and dask are optional and are
imported lazily, on first use, so that a CPU-only install never pays for them.

The math elsewhere is written once against the namespace ``xp`` returned by
:func:`namespace`, so that the same code runs on the CPU and on the GPU; the device follows
the data.
"""

from __future__ import annotations

import functools
import importlib
import types
from typing import Any

import numpy as np
import scipy
import scipy.sparse as _sp
import scipy.sparse.linalg as _spla

__all__ = [
    "conj_t",
    "cupy_or_none",
    "dask_array_module",
    "dask_chunk_namespace",
    "gpu_available",
    "is_cupy_array",
    "is_dask_array",
    "is_linear_operator",
    "is_sparse",
    "namespace",
    "result_dtype",
    "scipy_namespace",
    "to_device",
    "to_numpy",
]


@functools.lru_cache(maxsize=1)
def cupy_or_none() -> types.ModuleType | None:
    """Return the ``cupy`` module if it imports, else ``None`` (imported once, lazily)."""
    try:
        return importlib.import_module("cupy")
    except Exception:  # ImportError, or a CUDA runtime that fails to load
        return None


def gpu_available() -> bool:
    """Whether CuPy imports and sees at least one CUDA device."""
    cp = cupy_or_none()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device
        return False


def _module_name(x: Any) -> str:
    return type(x).__module__.split(".", 1)[0]


def is_cupy_array(x: Any) -> bool:
    """True for a ``cupy.ndarray`` or a ``cupyx.scipy.sparse`` matrix (no import of CuPy)."""
    return _module_name(x) in ("cupy", "cupyx")


def is_dask_array(x: Any) -> bool:
    """True for a ``dask.array.Array`` (checked without importing dask)."""
    return _module_name(x) == "dask" and hasattr(x, "chunks") and hasattr(x, "dask")


def dask_array_module() -> types.ModuleType:
    """``dask.array``, imported on first use; an ImportError naming the extra without dask."""
    try:
        return importlib.import_module("dask.array")
    except ImportError as exc:
        raise ImportError("dask input needs dask: pip install 'sparselin[dask]'") from exc


def dask_chunk_namespace(x: Any) -> types.ModuleType:
    """``numpy`` or ``cupy``: the library of a dask array's chunks, read from its meta.

    Nothing is computed: dask records an empty array of the chunk type (``x._meta``), so a
    dask array of CuPy chunks runs its blocks (and sparselin's small factors) on the GPU.
    """
    meta = getattr(x, "_meta", None)
    if is_cupy_array(meta):
        cp = cupy_or_none()
        if cp is not None:
            return cp
    return np


def is_sparse(x: Any) -> bool:
    """True for a SciPy sparse matrix/array or a ``cupyx.scipy.sparse`` matrix."""
    if _sp.issparse(x):
        return True
    if _module_name(x) == "cupyx":
        sp = importlib.import_module("cupyx.scipy.sparse")
        return bool(sp.issparse(x))
    return False


def is_linear_operator(x: Any) -> bool:
    """True for a SciPy or CuPy ``LinearOperator`` (anything with matmat/rmatmat semantics)."""
    if isinstance(x, _spla.LinearOperator):
        return True
    if _module_name(x) == "cupyx":
        spla = importlib.import_module("cupyx.scipy.sparse.linalg")
        return isinstance(x, spla.LinearOperator)
    return False


def namespace(*arrays: Any) -> types.ModuleType:
    """Return the array module (``numpy`` or ``cupy``) that holds ``arrays``.

    ``None`` entries and Python scalars are ignored. Mixing NumPy and CuPy data is an error:
    sparselin never moves data between devices behind the caller's back.

    Parameters
    ----------
    *arrays : array-like
        NumPy/CuPy arrays, SciPy/cupyx sparse matrices or LinearOperators.

    Returns
    -------
    xp : module
        ``numpy`` or ``cupy``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin._array import namespace
    >>> namespace(np.ones(3)).__name__
    'numpy'
    """
    on_gpu = [is_cupy_array(a) for a in arrays if a is not None and not np.isscalar(a)]
    if any(on_gpu):
        if not all(on_gpu):
            raise TypeError(
                "arrays live on different devices (NumPy and CuPy mixed); move them to one "
                "device first, e.g. with sparselin._array.to_device"
            )
        cp = cupy_or_none()
        if cp is None:  # pragma: no cover - a cupy array exists, so cupy imports
            raise ImportError("a CuPy array was passed but cupy cannot be imported")
        return cp
    return np


def scipy_namespace(xp: types.ModuleType) -> types.ModuleType:
    """Return ``scipy`` for NumPy or ``cupyx.scipy`` for CuPy (with ``.linalg``, ``.sparse``)."""
    if xp is np:
        importlib.import_module("scipy.linalg")
        importlib.import_module("scipy.sparse.linalg")
        return scipy
    mod = importlib.import_module("cupyx.scipy")
    importlib.import_module("cupyx.scipy.linalg")
    importlib.import_module("cupyx.scipy.sparse.linalg")
    return mod


def to_numpy(x: Any) -> Any:
    """Bring an array (dense or sparse) to host memory; NumPy/SciPy input is returned as is."""
    if is_cupy_array(x):
        return x.get()
    if is_dask_array(x):
        raise TypeError("to_numpy refuses dask arrays: call .compute() explicitly if you mean it")
    return x


def to_device(x: Any, device: str = "cpu") -> Any:
    """Move an array (dense or sparse) to ``device``: ``"cpu"`` or ``"gpu"``/``"cuda"``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin._array import to_device
    >>> to_device(np.arange(3.0), "cpu")
    array([0., 1., 2.])
    """
    if device == "cpu":
        return to_numpy(x)
    if device in ("gpu", "cuda"):
        cp = cupy_or_none()
        if cp is None:
            raise ImportError("device='gpu' needs CuPy: pip install 'sparselin[gpu]'")
        if is_cupy_array(x):
            return x
        if _sp.issparse(x):
            csp = importlib.import_module("cupyx.scipy.sparse")
            return csp.csr_matrix(x.tocsr())
        return cp.asarray(x)
    raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")


def conj_t(X: Any) -> Any:
    """The conjugate transpose ``X^H`` of a 2-D array: a view for real data (``X.T``).

    The one home of this operation in sparselin, so that real data never pays for a
    conjugated copy and complex data never silently gets a plain transpose.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin._array import conj_t
    >>> conj_t(np.array([[1 + 2j, 3j]]))
    array([[1.-2.j],
           [0.-3.j]])
    """
    return X.conj().T if X.dtype.kind == "c" else X.T


def result_dtype(dtype: Any) -> np.dtype:
    """The floating dtype sparselin computes in for input of ``dtype``.

    float32/float64/complex64/complex128 are kept (float32 in gives float32 out); integers and
    booleans become float64; float16 becomes float32, because half precision has too few bits
    to survive power iterations (a frequent failure of peers under autocast).

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin._array import result_dtype
    >>> result_dtype(np.float32), result_dtype(np.int64)
    (dtype('float32'), dtype('float64'))
    """
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64, np.complex64, np.complex128):
        return dtype
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(
        f"expected a real or complex floating or integer dtype, got {dtype}; "
        "supported: float32, float64, complex64, complex128 (ints become float64)"
    )
