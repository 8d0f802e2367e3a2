"""Numba kernels of the linalg family (see sparselin._numba for the conventions)."""

from __future__ import annotations

import numba
import numpy as np

from .._numba import jit
from .._pool import run_chunks

__all__ = [
    "abs_argmax_columns",
    "copy_with_squared_norm",
    "csr_matmat",
    "csr_rmatmat",
    "row_partition",
]


@jit
def abs_argmax_columns(U: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """First row index of the largest |entry| in each column of a real C-ordered ``U``.

    ``np.argmax(np.abs(U), axis=0)`` on a C-ordered array reduces along the strided axis and
    allocates a temporary of U's size; walking the rows once keeps every access contiguous:
    0.13 ms against 1.3 ms for 10000 x 50 float64 (one core), measured where every
    incremental SVD update pays it.
    """
    m, k = U.shape
    best = np.full(k, -1.0)
    idx = np.zeros(k, np.int64)
    for i in range(m):
        for j in range(k):
            a = abs(U[i, j])
            if a > best[j]:
                best[j] = a
                idx[j] = i
    return idx


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _copy_sum_squares(src: np.ndarray, dst: np.ndarray) -> float:  # pragma: no cover - compiled
    """``dst[:] = src`` (rounded to dst's precision) and the sum of ``src**2`` in float64.

    Summed in blocks of fixed length, so that the inner loop vectorises (``reassoc`` lets
    LLVM split the block's sum over SIMD lanes) and the rounding error stays at about
    ``(block + size / block) eps`` rather than ``size * eps``. Declared with numba.njit
    directly, not sparselin's ``jit``, for the fastmath flag.
    """
    n = src.size
    block = 4096
    total = 0.0
    for b in range(n // block):
        part = 0.0
        for i in range(b * block, (b + 1) * block):
            v = src[i]
            part += v * v
            dst[i] = v
        total += part
    part = 0.0
    for i in range(n - n % block, n):
        v = src[i]
        part += v * v
        dst[i] = v
    return total + part


def copy_with_squared_norm(A: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, float] | None:
    """A copy of the contiguous ``A`` in the lower precision ``dtype`` and ``||A||_F^2``.

    One pass over A instead of two (the norm, then ``astype``): for a 4000 x 3000 float64
    matrix 13.7 ms against 17.6 ms on one core. Complex data is handled as its real and
    imaginary parts. Returns None when A is not contiguous (callers then do both steps).
    """
    if not (A.flags.c_contiguous or A.flags.f_contiguous):
        return None
    out = np.empty_like(A, dtype=dtype)
    src = A.ravel(order="K")
    dst = out.ravel(order="K")
    if A.dtype.kind == "c":
        src = src.view(src.real.dtype)
        dst = dst.view(dst.real.dtype)
    return out, float(_copy_sum_squares(src, dst))


@numba.njit(cache=True, nogil=True)
def _csr_matmat(
    bounds: np.ndarray,
    c0: int,
    c1: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    X: np.ndarray,
    conj: bool,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``out = A @ X`` (``conj(A) @ X`` for ``conj``) on the rows of chunks ``c0 .. c1 - 1``
    of A (CSR, rows split at ``bounds``).

    The gather form: each row of ``out`` sums rows of ``X`` scaled by the row's entries,
    accumulated in a local buffer (one write to ``out`` per row); the rows of a chunk belong
    to one thread, so no two threads write the same row. Duplicate or unsorted column
    indices need nothing special: every stored entry adds its term. Serial and ``nogil``:
    :func:`csr_matmat` runs the chunks on the shared chunk pool (see ``sparselin._pool``).
    """
    ncols = X.shape[1]
    for c in range(c0, c1):
        acc = np.empty(ncols, dtype=out.dtype)
        for i in range(bounds[c], bounds[c + 1]):
            acc[:] = 0
            end = indptr[i + 1]
            jj = indptr[i]
            # Two entries per sweep over the row of out: two independent rows of X in flight
            # and half the loop overhead (22 instead of 31 ms for the float32 TF-IDF matrix
            # of the benchmark, 110 columns, one thread).
            while jj + 1 < end:
                v0 = data[jj]
                v1 = data[jj + 1]
                if conj:
                    v0 = v0.conjugate()
                    v1 = v1.conjugate()
                r0 = indices[jj]
                r1 = indices[jj + 1]
                for t in range(ncols):
                    acc[t] += v0 * X[r0, t] + v1 * X[r1, t]
                jj += 2
            if jj < end:
                v0 = data[jj]
                if conj:
                    v0 = v0.conjugate()
                r0 = indices[jj]
                for t in range(ncols):
                    acc[t] += v0 * X[r0, t]
            for t in range(ncols):
                out[i, t] = acc[t]


def row_partition(indptr: np.ndarray, n_chunks: int) -> np.ndarray:
    """Row boundaries that cut a CSR matrix into ``n_chunks`` pieces of about equal work.

    A term-document matrix has rows of very different lengths (a few long documents, many
    short ones); chunks of equal row counts would leave threads idle while one finishes the
    long rows. Each row also costs a little on its own (clearing and storing its output),
    counted here as one entry.
    """
    m = indptr.shape[0] - 1
    n_chunks = max(1, min(n_chunks, m))
    work = indptr.astype(np.int64) + np.arange(m + 1, dtype=np.int64)
    bounds = np.zeros(n_chunks + 1, dtype=np.int64)
    bounds[-1] = m
    for c in range(1, n_chunks):
        # Each cut shares what is left equally among the chunks still to come, so that a
        # chunk swollen by one long row does not leave the others unbalanced.
        start = bounds[c - 1]
        target = work[start] + (work[-1] - work[start]) / (n_chunks - c + 1)
        bounds[c] = min(max(int(np.searchsorted(work, target)), start), m)
    return bounds


def csr_matmat(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    X: np.ndarray,
    conj: bool = False,
    bounds: np.ndarray | None = None,
) -> np.ndarray:
    """``A @ X`` (``conj(A) @ X``) for the CSR matrix A of ``len(indptr) - 1`` rows.

    ``X`` is made C-ordered (each entry of A reads a row of X); the product is C-ordered, in
    the common dtype of ``data`` and ``X``. ``bounds`` (from :func:`row_partition`) may be
    passed to reuse a partition across calls.
    """
    m = indptr.shape[0] - 1
    dtype = np.result_type(data.dtype, X.dtype)
    X = np.ascontiguousarray(X, dtype=dtype)
    if data.dtype != dtype:
        data = data.astype(dtype)
    out = np.empty((m, X.shape[1]), dtype=dtype)
    if m == 0 or X.shape[1] == 0:
        out[...] = 0
        return out
    if bounds is None:
        bounds = row_partition(indptr, 4 * numba.get_num_threads())
    conj = conj and dtype.kind == "c"
    run_chunks(
        lambda c: _csr_matmat(bounds, c, c + 1, indptr, indices, data, X, conj, out),
        bounds.shape[0] - 1,
        numba.get_num_threads(),
    )
    return out


@numba.njit(cache=True, nogil=True)
def _csr_rmatmat(
    bounds: np.ndarray,
    c0: int,
    c1: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    Y: np.ndarray,
    conj: bool,
    parts: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``parts[c] = A[rows of chunk c]^T @ Y[those rows]`` (conjugated A for ``conj``) for
    the chunks ``c0 .. c1 - 1``.

    The scatter form of the transposed product: Y is read row by row in order and each entry
    adds a scaled row of Y to a row of the output. Chunks run in parallel on the chunk pool,
    each into a buffer of its own (no two threads write the same memory); the caller sums
    the buffers.
    """
    ncols = Y.shape[1]
    for c in range(c0, c1):
        out = parts[c]
        out[:, :] = 0
        for i in range(bounds[c], bounds[c + 1]):
            end = indptr[i + 1]
            jj = indptr[i]
            # Two entries of the row per sweep over Y's row (30 instead of 33 ms, as above).
            while jj + 1 < end:
                v0 = data[jj]
                v1 = data[jj + 1]
                if conj:
                    v0 = v0.conjugate()
                    v1 = v1.conjugate()
                c0 = indices[jj]
                c1 = indices[jj + 1]
                for t in range(ncols):
                    y = Y[i, t]
                    out[c0, t] += v0 * y
                    out[c1, t] += v1 * y
                jj += 2
            if jj < end:
                v0 = data[jj]
                if conj:
                    v0 = v0.conjugate()
                c0 = indices[jj]
                for t in range(ncols):
                    out[c0, t] += v0 * Y[i, t]


@numba.njit(cache=True, nogil=True)
def _sum_parts(parts: np.ndarray, r0: int, r1: int) -> None:  # pragma: no cover - compiled
    """``parts[0, r0:r1] += parts[1:, r0:r1].sum(axis=0)``: rows of the sum, serially."""
    p, n, ncols = parts.shape
    for i in range(r0, r1):
        for q in range(1, p):
            for t in range(ncols):
                parts[0, i, t] += parts[q, i, t]


def _sum_parts_parallel(parts: np.ndarray) -> np.ndarray:
    """``parts.sum(axis=0)``, the output rows shared out on the chunk pool."""
    n = parts.shape[1]
    threads = numba.get_num_threads()
    cuts = np.linspace(0, n, 4 * threads + 1).astype(np.int64) if n else np.zeros(1, np.int64)
    run_chunks(
        lambda c: _sum_parts(parts, int(cuts[c]), int(cuts[c + 1])), cuts.shape[0] - 1, threads
    )
    return parts[0]


def csr_rmatmat(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    n: int,
    Y: np.ndarray,
    conj: bool = False,
    bounds: np.ndarray | None = None,
) -> np.ndarray:
    """``A^T @ Y`` (``A^H @ Y`` with ``conj``) for the CSR matrix A with ``n`` columns.

    ``bounds`` splits A's rows into chunks, each summed into its own n x Y.shape[1] buffer
    (one chunk, the default: the output itself), so memory grows with the number of chunks.
    On one thread this scatter form beats the gather form on A^T's CSR arrays (fewer
    scattered accesses land outside the cache when n < m; 40 against 53 ms for the float32
    TF-IDF matrix of the benchmark, 110 columns) and needs no copy of A.
    """
    if bounds is None:
        bounds = np.array([0, indptr.shape[0] - 1], dtype=np.int64)
    dtype = np.result_type(data.dtype, Y.dtype)
    Y = np.ascontiguousarray(Y, dtype=dtype)
    if data.dtype != dtype:
        data = data.astype(dtype)
    parts = np.empty((max(bounds.shape[0] - 1, 1), n, Y.shape[1]), dtype=dtype)
    if bounds.shape[0] < 2 or Y.shape[1] == 0:
        parts[...] = 0
        return parts[0]
    conj = conj and dtype.kind == "c"
    run_chunks(
        lambda c: _csr_rmatmat(bounds, c, c + 1, indptr, indices, data, Y, conj, parts),
        bounds.shape[0] - 1,
        numba.get_num_threads(),
    )
    return parts[0] if parts.shape[0] == 1 else _sum_parts_parallel(parts)
