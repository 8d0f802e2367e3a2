"""The dense fast Walsh-Hadamard transform, batched along any axis, on CPU and GPU."""

from __future__ import annotations

import math
import operator
import types
import warnings
from typing import Any, Literal

import numba
import numpy as np

from .._array import is_cupy_array, is_dask_array, namespace, result_dtype
from . import _kernels
from ._hadamard_orders import ORDERS, factor_length, hadamard_factor, input_permutation

__all__ = ["NORMALIZATIONS", "fwht", "fwht_core"]

NORMALIZATIONS = (None, "ortho", "forward")

# Reals per cache block of the CPU kernel: 32 KiB, the L1 data cache of most x86 cores, so
# that all stages inside a block run without touching L2 (FFHT autotunes 4-16 KiB blocks).
_BLOCK_BYTES = 1 << 15


def fwht(
    x: Any,
    axis: int = -1,
    *,
    order: Literal["natural", "sequency", "dyadic"] = "natural",
    normalize: Literal["ortho", "forward"] | None = None,
    out: Any = None,
) -> Any:
    """Fast Walsh-Hadamard transform along one axis of an array of any shape.

    Computes ``y = c * W @ x`` along ``axis`` for every position of the other axes, where
    ``W`` is the ``N x N`` Walsh-Hadamard matrix in the chosen ``order`` and ``c`` the
    normalisation. ``N`` must be a power of two, or ``m * 2**k`` with ``m`` in {12, 20, 28}
    (then ``W = kron(A_m, H_{2**k})`` with ``A_m`` a Hadamard matrix of order ``m``, the
    chunk index being the most significant; the widths of many transformer layers, e.g.
    ``28672 = 28 * 1024``, are of this form). The cost is ``O(N log N)`` per transform
    (``O(N (m + log N))`` for the ``m * 2**k`` lengths), with no padding.

    ``W`` is symmetric and ``W @ W = N I`` in every order, so the transform is its own
    inverse up to the factor ``N``: ``fwht(fwht(x), normalize="forward")`` and
    ``fwht(fwht(x, normalize="ortho"), normalize="ortho")`` both return ``x``.

    Parameters
    ----------
    x : array_like
        NumPy or CuPy array, real or complex. float32, float64, complex64 and complex128 are
        kept; integers and booleans are transformed in float64, float16 in float32.
        Not modified (unless ``out`` is ``x``). A dask array whose ``axis`` lies in one
        chunk gives a lazy dask array with its chunks (see :ref:`user_guide_dask`).
    axis : int, default=-1
        The axis to transform.
    order : {"natural", "sequency", "dyadic"}, default="natural"
        Row order of ``W``. ``"natural"`` (Hadamard, Sylvester) is ``scipy.linalg.hadamard``:
        ``W[i, j] = (-1)**popcount(i & j)``. ``"sequency"`` (Walsh) sorts the rows by their
        number of sign changes (row ``s`` changes sign ``s`` times), the order of MATLAB's
        ``fwht``. ``"dyadic"`` (Paley) takes natural row ``bitrev(p)`` as row ``p``. Only
        ``"natural"`` is defined for the ``m * 2**k`` lengths.
    normalize : {None, "ortho", "forward"}, default=None
        ``None``: no scaling (``c = 1``). ``"ortho"``: ``c = 1/sqrt(N)``, which makes the
        transform orthogonal and its own inverse. ``"forward"``: ``c = 1/N``, the convention
        of MATLAB's ``fwht`` and of the inverse transform.
    out : array, optional
        Where to write the result: same shape as ``x``, dtype as described for ``x``, on the
        same device. May be ``x`` itself for an in-place transform.

    Returns
    -------
    y : array
        The transform, on ``x``'s device, in ``x``'s (floating) precision; ``out`` if given.

    Raises
    ------
    ValueError
        If the length along ``axis`` is not ``2**k`` or ``m * 2**k`` (m in {12, 20, 28}), if
        ``axis``, ``order`` or ``normalize`` is not one of the allowed values, or if ``out``
        has the wrong shape.
    TypeError
        If ``x`` does not hold numbers, or ``out`` has the wrong dtype or device.

    Notes
    -----
    NaN and infinity propagate as in :func:`numpy.fft.fft`; they are not checked for, since
    the check would cost a pass over memory of a transform that is memory-bound.

    On the CPU the transform runs in Numba kernels, cache-blocked (all stages of each
    32 KiB block at once, then radix-8 passes for the longer strides) and parallel over the
    batch, or within a transform when there are fewer transforms than threads, on
    ``numba.get_num_threads()`` threads that claim chunks of work as they come free (no
    BLAS, and no pass waits for a thread that the OS has not scheduled yet). On the GPU
    (CuPy input) it runs in the CUDA kernels of ``cuda/fwht.cu``: one shared-memory pass for
    rows of up to 32 KiB, then radix-8 passes over global memory for longer ones.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.transforms import fwht
    >>> x = np.array([19.0, -1, 11, -9, -7, 13, -15, 5])
    >>> fwht(x)
    array([16.,  0., 32.,  0., 24., 80.,  0.,  0.])
    >>> fwht(x, order="sequency", normalize="forward")  # MATLAB's fwht(x)
    array([ 2.,  3.,  0.,  4.,  0.,  0., 10.,  0.])
    >>> np.allclose(fwht(fwht(x), normalize="forward"), x)
    True
    """
    if is_dask_array(x):
        from ._dask import fwht_dask

        return fwht_dask(x, axis, order, normalize, out)
    x, axis, m, k, scale, gather, dtype = _validate(x, axis, order, normalize)
    out = _validate_out(out, x, dtype)
    return fwht_core(x, axis, m, k, scale, gather, dtype, out)


def _validate(x: Any, axis: Any, order: Any, normalize: Any) -> tuple:
    if not (isinstance(x, np.ndarray) or is_cupy_array(x) or is_dask_array(x)):
        if isinstance(x, (list, tuple, int, float, complex)) or hasattr(x, "__array__"):
            x = np.asarray(x)
        else:
            raise TypeError(f"x must be a NumPy or CuPy array, got {type(x).__name__}")
    if x.dtype.kind not in "biufc":
        raise TypeError(f"x must hold numbers, got dtype {x.dtype}")
    dtype = result_dtype(x.dtype)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension, got a 0-d array")
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer, got {type(axis).__name__} {axis!r}") from None
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(
            f"axis must be in [{-x.ndim}, {x.ndim - 1}] for x.ndim={x.ndim}, got {axis}"
        )
    axis %= x.ndim
    N = x.shape[axis]
    split = factor_length(N)
    if split is None:
        raise ValueError(
            f"the length of x along axis {axis} must be a power of two or m * 2**k with m in "
            f"{{12, 20, 28}}, got {N}"
        )
    m, k = split
    if not isinstance(order, str) or order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if m != 1 and order != "natural":
        raise ValueError(
            f"order={order!r} is defined for power-of-two lengths only; length {N} = "
            f"{m} * 2**{k} needs order='natural'"
        )
    if normalize is not None and (
        not isinstance(normalize, str) or normalize not in NORMALIZATIONS
    ):
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    scale = {None: 1.0, "ortho": 1.0 / math.sqrt(N), "forward": 1.0 / N}[normalize]
    gather = input_permutation(order, k)
    return x, axis, m, k, scale, gather, dtype


def _validate_out(out: Any, x: Any, dtype: np.dtype) -> Any:
    if out is None:
        return None
    if not (isinstance(out, np.ndarray) or is_cupy_array(out)):
        raise TypeError(f"out must be a NumPy or CuPy array, got {type(out).__name__}")
    if is_cupy_array(out) != is_cupy_array(x):
        raise TypeError("out must live on the same device as x (NumPy with NumPy, CuPy with CuPy)")
    if out.shape != x.shape:
        raise ValueError(f"out must have the shape of x, {x.shape}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype} for x of dtype {x.dtype}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    return out


def _real_view(a: Any) -> tuple[Any, int]:
    """The real 2-D view of a C-contiguous 2-D array and the reals per point."""
    if a.dtype.kind == "c":
        return a.view(a.real.dtype), 2
    return a, 1


def fwht_core(
    x: Any,
    axis: int,
    m: int,
    k: int,
    scale: float,
    gather: np.ndarray | None,
    dtype: np.dtype,
    out: Any = None,
) -> Any:
    """:func:`fwht` below the validation: ``x`` has length ``m * 2**k`` along ``axis``."""
    xp = namespace(x)
    moved = xp.moveaxis(x, axis, -1)
    N = moved.shape[-1]
    direct = out is not None and xp.moveaxis(out, axis, -1).flags.c_contiguous
    buf = xp.moveaxis(out, axis, -1) if direct else xp.empty(moved.shape, dtype=dtype)
    same = direct and _same_memory(moved, buf)
    if not same:
        if out is not None and _may_share(moved, buf, xp):
            moved = moved.copy()
        buf[...] = moved
    rows = buf.reshape(-1, N)
    if rows.shape[0]:
        if xp is np:
            _transform_cpu(rows, m, k, scale, gather)
        else:
            _transform_gpu(rows, m, k, scale, gather, xp)
    result = xp.moveaxis(buf, -1, axis)
    if out is None or direct:
        return result if out is None else out
    out[...] = result
    return out


def _same_memory(a: Any, b: Any) -> bool:
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and a.strides == b.strides
        and _data_ptr(a) is not None
        and _data_ptr(a) == _data_ptr(b)
    )


def _data_ptr(a: Any) -> int | None:
    if isinstance(a, np.ndarray):
        return a.__array_interface__["data"][0]
    try:
        return a.data.ptr
    except AttributeError:  # an array type without CuPy's memory pointer
        return None


def _may_share(a: Any, b: Any, xp: types.ModuleType) -> bool:
    if xp is np:
        return bool(np.may_share_memory(a, b))
    return bool(xp.shares_memory(a, b)) if hasattr(xp, "shares_memory") else True


# ------------------------------------------------------------------------------------ CPU


def _transform_cpu(rows: np.ndarray, m: int, k: int, scale: float, gather: Any) -> None:
    real, w = _real_view(rows)
    s = real.dtype.type(scale)
    threads = numba.get_num_threads()
    if gather is not None:
        _kernels.permute_rows(real, gather, w, threads)
    block = _BLOCK_BYTES // real.itemsize
    if m == 1:
        _kernels.transform_rows(real, w, s, block, threads)
        return
    # kron(A_m, H_K) = (A_m kron I_K)(I_m kron H_K): the K-point transforms of the m
    # contiguous chunks (rows of a (rows * m, K) view), then A_m across the chunks.
    chunks = real.reshape(-1, real.shape[1] // m)
    if k > 0:
        _kernels.transform_rows(chunks, w, s, block, threads)
        s = real.dtype.type(1)
    _kernels.apply_factor(real, hadamard_factor(m), s, threads)


# ------------------------------------------------------------------------------------ GPU

# Kernel instances compiled from cuda/fwht.cu (also the list the NVRTC test compiles).
_GPU_TYPES = {"float32": "float", "float64": "double", "complex64": "cf", "complex128": "cd"}
GPU_EXPRESSIONS = tuple(
    [f"fwht_tile<{t}>" for t in _GPU_TYPES.values()]
    + [f"fwht_strided<{t}, {r}>" for t in _GPU_TYPES.values() for r in (2, 4, 8)]
    + [f"hadamard_factor<{t}>" for t in _GPU_TYPES.values()]
)
# Bytes of shared memory per tile: a whole row up to this size is done in one kernel.
_GPU_TILE_BYTES = 1 << 15
_GPU_THREADS = 256
# None while the kernels are usable; the reason once they failed to compile (never retried).
_GPU_STATE: dict[str, str | None] = {"fwht": None}


def _gpu_kernels(dtype: np.dtype) -> dict[Any, Any] | None:
    """The compiled kernels for ``dtype`` (keys "tile", "factor", 2, 4, 8), or None."""
    if _GPU_STATE["fwht"] is not None:
        return None
    t = _GPU_TYPES[np.dtype(dtype).name]
    try:
        from .._cuda import get_function

        kernels: dict[Any, Any] = {
            "tile": get_function("fwht.cu", f"fwht_tile<{t}>", GPU_EXPRESSIONS),
            "factor": get_function("fwht.cu", f"hadamard_factor<{t}>", GPU_EXPRESSIONS),
        }
        for rad in (2, 4, 8):
            kernels[rad] = get_function("fwht.cu", f"fwht_strided<{t}, {rad}>", GPU_EXPRESSIONS)
        return kernels
    except Exception as exc:  # NVRTC missing or failing: the array code below serves
        _GPU_STATE["fwht"] = f"{type(exc).__name__}: {exc}"
        warnings.warn(
            f"the fwht CUDA kernels could not be compiled ({_GPU_STATE['fwht']}); "
            "using CuPy array code instead",
            RuntimeWarning,
            stacklevel=5,
        )
        return None


def _transform_gpu(
    rows: Any, m: int, k: int, scale: float, gather: Any, xp: types.ModuleType
) -> None:
    if gather is not None:
        rows[...] = rows[:, xp.asarray(gather)]
    kernels = _gpu_kernels(rows.dtype)
    if kernels is None:
        _transform_xp(rows, m, k, scale, xp)
        return
    n_rows = rows.shape[0]
    K = 1 << k
    s = scale
    if k > 0:
        _launch_power_of_two(kernels, rows.reshape(-1, K), k, s)
        s = 1.0
    if m > 1 or s != 1.0:
        A = xp.asarray(hadamard_factor(m))
        total = n_rows * K
        grid = (total + _GPU_THREADS - 1) // _GPU_THREADS
        args = (rows, np.int64(n_rows), np.int64(K), np.int32(m), A, np.float64(s))
        kernels["factor"]((grid,), (_GPU_THREADS,), args)


def _launch_power_of_two(kernels: dict[Any, Any], chunks: Any, k: int, scale: float) -> None:
    n_rows, K = chunks.shape
    log_tile = min(k, int(math.log2(_GPU_TILE_BYTES // chunks.itemsize)))
    tile = 1 << log_tile
    threads = max(1, min(_GPU_THREADS, tile // 2))
    n_tiles = n_rows * (K // tile)
    kernels["tile"](
        (n_tiles,),
        (threads,),
        (chunks, np.int32(log_tile), np.float64(scale)),
        shared_mem=tile * chunks.itemsize,
    )
    h = tile
    while h < K:
        rad = 8 if 8 * h <= K else (4 if 4 * h <= K else 2)
        units = n_rows * K // rad
        grid = (units + _GPU_THREADS - 1) // _GPU_THREADS
        kernels[rad]((grid,), (_GPU_THREADS,), (chunks, np.int64(units), np.int64(K), np.int64(h)))
        h *= rad


def _transform_xp(rows: Any, m: int, k: int, scale: float, xp: types.ModuleType) -> None:
    """Reshape butterflies in plain array code (the fallback when no kernel compiles)."""
    n_rows, N = rows.shape
    K = 1 << k
    v = rows.reshape(n_rows * m, K)
    h = 1
    while h < K:
        pairs = v.reshape(n_rows * m, K // (2 * h), 2, h)
        a = pairs[:, :, 0, :].copy()
        b = pairs[:, :, 1, :]
        pairs[:, :, 0, :] += b
        pairs[:, :, 1, :] = a - b
        h *= 2
    if m > 1:
        A = xp.asarray(hadamard_factor(m).astype(rows.real.dtype))
        blocks = rows.reshape(n_rows, m, K)
        blocks[...] = xp.matmul(A, blocks)
    if scale != 1.0:
        rows *= rows.real.dtype.type(scale)
