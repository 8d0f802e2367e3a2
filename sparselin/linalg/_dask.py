"""Truncated SVD of a dask array, run on dask's own scheduler without gathering the matrix.

The randomized subspace iteration of :func:`sparselin.linalg._iterations.fixed_rank` is
replayed pass for pass: the same Gaussian test matrix (drawn on the host from the same
``random_state``), the same alternation of ``A X`` and ``A^H X``, the same normalisation after
every product (one Cholesky QR between passes, CholeskyQR2 where the basis is read as
orthonormal) and the same Rayleigh-Ritz step and sign rule, so that the result equals the
in-memory one up to rounding.

Only one dimension of A may be chunked. Products along the chunked ("long") dimension stay
dask arrays and are persisted after each pass, so the graph never grows with the iterations
and A is read once per pass (an input that dask cannot hold is re-read from its source, never
kept); products along the other dimension are reductions of one small partial per chunk, and
they, the l x l Gram matrices and their Cholesky factors are computed to the client. No task
ever receives more than one chunk of A.

Orthonormalising a tall dask block uses CholeskyQR2 from blockwise Gram sums (one reduction
of l x l partials per Cholesky pass, on the persisted block, not on A), with
``dask.array.linalg.tsqr`` as the fallback where the Gram matrix reveals a condition number
CholeskyQR2 cannot handle — the same policy as :func:`sparselin.linalg._dense.orth`.
"""

from __future__ import annotations

import importlib
import math
import types
from typing import Any

import numpy as np

from .._array import conj_t, dask_array_module, dask_chunk_namespace, result_dtype
from .._validation import check_int, check_random_state
from ._dense import (
    _cholesky_upper,
    _triangular_inverse,
    flip_signs,
    gaussian,
    orth,
    small_svd,
)
from ._iterations import ZERO_CUTOFF, _auto_max_iter, _ritz_readings, _StopRule
from ._operator import scale_halves
from ._truncated_svd import _unscale

__all__ = ["check_dask_matrix", "truncated_svd_dask"]


def check_dask_matrix(A: Any, name: str = "A") -> tuple[Any, bool]:
    """Check a dask matrix's shape, dtype and chunking, computing nothing.

    Returns ``(A, tall)``: A converted lazily to its computing dtype, and whether its rows
    (``tall``) or its columns are the chunked, long dimension. The finiteness of the entries
    is checked later, in the first pass over A.
    """
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got a dask array with ndim={A.ndim}")
    if any(math.isnan(c) for c in A.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {A.shape}); call "
            f"{name}.compute_chunk_sizes() first"
        )
    if 0 in A.shape:
        raise ValueError(f"{name} must be non-empty, got shape {A.shape}")
    if A.dtype.kind not in "biufc":
        raise TypeError(f"{name} must hold numbers, got dtype {A.dtype}")
    rows, cols = A.numblocks
    m, n = A.shape
    if rows > 1 and cols > 1:
        axis, fix = (1, "{1: -1}") if m >= n else (0, "{0: -1}")
        raise ValueError(
            f"{name} is chunked in both dimensions (chunksize {A.chunksize}, {rows} x {cols} "
            f"blocks); the dask path needs one of them in a single chunk: call "
            f"{name}.rechunk({fix}) (keeps {'rows' if axis == 1 else 'columns'} chunked)"
        )
    tall = rows > 1 or (cols == 1 and m >= n)
    dtype = result_dtype(A.dtype)
    if dtype != A.dtype:
        A = A.astype(dtype)
    return A, tall


def _options(
    k: Any,
    tol: Any,
    n_oversamples: Any,
    n_iter: Any,
    method: Any,
    return_error: Any,
    power_iteration_normalizer: Any,
    sketch_dtype: Any,
    compute: Any,
    r_max: int,
) -> tuple[int, int, int | None]:
    """Validate the options of :func:`truncated_svd` that the dask path supports."""
    if tol is not None:
        raise ValueError(
            "tol (fixed accuracy) is not supported for dask input yet; give the rank k "
            "(fixed rank, method='randomized')"
        )
    if k is None:
        raise ValueError("give the rank k (dask input supports fixed rank only)")
    k = check_int(k, "k", low=1, high=r_max)
    n_oversamples = check_int(n_oversamples, "n_oversamples", low=0)
    if isinstance(n_iter, str):
        if n_iter != "auto":
            raise ValueError(f"n_iter must be a non-negative int or 'auto', got {n_iter!r}")
        iters: int | None = None
    else:
        iters = check_int(n_iter, "n_iter", low=0)
    if not isinstance(method, str) or method != "randomized":
        raise ValueError(f"method must be 'randomized' for dask input, got {method!r}")
    if not isinstance(power_iteration_normalizer, str) or power_iteration_normalizer not in (
        "auto",
        "QR",
    ):
        raise ValueError(
            "power_iteration_normalizer must be 'auto' or 'QR' for dask input, got "
            f"{power_iteration_normalizer!r}"
        )
    if not (isinstance(sketch_dtype, str) and sketch_dtype == "auto"):
        raise ValueError(
            "sketch_dtype must be 'auto' for dask input (the passes run in A's precision), "
            f"got {sketch_dtype!r}"
        )
    if not isinstance(return_error, (bool, np.bool_)):
        raise TypeError(f"return_error must be a bool, got {type(return_error).__name__}")
    if not isinstance(compute, (bool, np.bool_)):
        raise TypeError(f"compute must be a bool, got {type(compute).__name__}")
    return k, n_oversamples, iters


class _Passes:
    """Products with a dask A whose rows (``tall``) or columns are chunked.

    Blocks along the long dimension are dask arrays, persisted once formed; blocks along the
    short dimension are in memory (NumPy or CuPy, like A's chunks).
    """

    def __init__(self, A: Any, tall: bool, xp: types.ModuleType) -> None:
        self.da = dask_array_module()
        self.dask = importlib.import_module("dask")
        self.A = A
        self.tall = tall
        self.xp = xp

    def long_block(self, X: Any) -> Any:
        """An in-memory block along the long dimension as a dask array with A's chunks."""
        chunks = self.A.chunks[1]
        return self.da.from_array(X, chunks=(chunks, X.shape[1]), asarray=False)

    def mm(self, X: Any, with_norm: bool = False) -> tuple[Any, float | None]:
        """``A @ X``; with ``with_norm`` also ``||A||_F^2`` from the same pass."""
        A = self.A
        if not self.tall:
            X = self.long_block(X) if not _is_dask(X) else X
        Y = A @ X
        return self._finish(Y, with_norm, long=self.tall)

    def rmm(self, X: Any) -> Any:
        """``A^H @ X``, as ``(X^H A)^H`` so that each task reads a block of A in place."""
        Xh = conj_t(X)
        if not _is_dask(Xh):
            # Wide A (one row chunk): the in-memory block becomes one chunk.
            Xh = self.da.from_array(Xh, chunks=-1, asarray=False)
        Y = conj_t(Xh @ self.A)
        return self._finish(Y, False, long=not self.tall)[0]

    def _finish(self, Y: Any, with_norm: bool, long: bool) -> tuple[Any, float | None]:
        norm = None
        if with_norm:
            A = self.A
            rows, cols = A.numblocks
            sq = A.map_blocks(
                _squared_sum,
                chunks=((1,) * rows, (1,) * cols),
                dtype=np.float64,
                meta=np.empty((0, 0), np.float64),
            ).sum()
            if long:
                Y, sq = self.dask.persist(Y, sq)
                norm = float(sq.compute())
            else:
                Y, sq = self.dask.compute(Y, sq)
                norm = float(sq)
        elif long:
            Y = Y.persist()
        else:
            Y = Y.compute()
        return Y, norm


def _squared_sum(block: Any) -> np.ndarray:
    """``sum |block|^2`` as a 1 x 1 host array; overflow gives inf (the caller rescales A)."""
    with np.errstate(over="ignore"):
        if block.dtype.kind == "c":
            total = (block.real * block.real).sum() + (block.imag * block.imag).sum()
        else:
            total = (block * block).sum()
    return np.full((1, 1), float(total))


def _is_dask(x: Any) -> bool:
    return type(x).__module__.split(".", 1)[0] == "dask"


def _orth_dask(Y: Any, xp: types.ModuleType, *, passes: int = 2) -> tuple[Any, Any]:
    """``Y = Q R`` for a tall, row-chunked dask ``Y`` (l columns): lazy ``Q``, in-memory ``R``.

    CholeskyQR (``passes=1``) or CholeskyQR2, each Gram matrix a reduction of one l x l
    partial per block; ``dask.array.linalg.tsqr`` where the first Cholesky factor shows a
    condition number beyond CholeskyQR2's reach (as :func:`sparselin.linalg._dense.orth`).
    """
    da = dask_array_module()
    eps = np.finfo(Y.dtype).eps
    G = (conj_t(Y) @ Y).compute()
    R1 = _cholesky_upper(G, xp)
    if R1 is not None:
        d = xp.abs(xp.diagonal(R1))
        if float(d.min()) > 100.0 * np.sqrt(eps) * float(d.max()):
            Q1 = (Y @ _triangular_inverse(R1, xp)).persist()
            if passes == 1:
                return Q1, R1
            R2 = _cholesky_upper((conj_t(Q1) @ Q1).compute(), xp)
            if R2 is not None:
                return (Q1 @ _triangular_inverse(R2, xp)).persist(), R2 @ R1
    Yt = Y.rechunk({1: -1})
    Q, R = da.linalg.tsqr(Yt)
    Q, R = Q.persist(), R.compute()
    return Q, R


def _orth_any(Y: Any, xp: types.ModuleType, passes: int, return_r: bool) -> Any:
    if _is_dask(Y):
        Q, R = _orth_dask(Y, xp, passes=passes)
        return (Q, R) if return_r else Q
    return orth(Y, xp, return_r=return_r, passes=passes)


def truncated_svd_dask(
    A: Any,
    k: Any,
    *,
    tol: Any,
    n_oversamples: Any,
    n_iter: Any,
    method: Any,
    random_state: Any,
    return_error: Any,
    power_iteration_normalizer: Any,
    sketch_dtype: Any,
    compute: Any,
) -> tuple[Any, ...]:
    """:func:`sparselin.truncated_svd` for a dask ``A``: validation, then the iteration."""
    dask_array_module()
    A, tall = check_dask_matrix(A, "A")
    m, n = A.shape
    k, n_oversamples, iters = _options(
        k,
        tol,
        n_oversamples,
        n_iter,
        method,
        return_error,
        power_iteration_normalizer,
        sketch_dtype,
        compute,
        min(m, n),
    )
    rng = check_random_state(random_state)
    U, s, Vt, rel = _truncated_svd_dask_core(A, tall, k, n_oversamples, iters, rng)
    if compute:
        U = U.persist()
    if return_error:
        return U, s, Vt, rel
    return U, s, Vt


def _truncated_svd_dask_core(
    A: Any, tall: bool, k: int, n_oversamples: int, n_iter: int | None, rng: Any
) -> tuple[Any, Any, Any, float]:
    """Randomized subspace iteration on a validated dask ``A`` (see the module docstring).

    The loop is :func:`sparselin.linalg._iterations._half_step_iteration` with the sketch
    operator equal to A: the same passes, normalisations, stopping rule and final step.
    """
    xp = dask_chunk_namespace(A)
    m, n = A.shape
    dtype = np.dtype(A.dtype)
    eps = float(np.finfo(dtype).eps)
    l = min(k + n_oversamples, min(m, n))
    Omega = gaussian(rng, (n, l), dtype, xp)
    scale = 1.0
    try:
        U, s, Vt, norm2 = _iterate(A, tall, xp, Omega, k, n_iter, check_range=True)
    except _OutOfRange:
        # Squares of A's entries over- or underflow (or A holds NaN/inf): as safe_scale does
        # in memory, work on A times a power of two near 1 / max|A|, applied blockwise to
        # the chunks as they are read (A is not copied), with the same test matrix.
        amax = float(abs(A).max().compute())
        if not math.isfinite(amax):
            raise ValueError("A contains NaN or infinity") from None
        if amax > 0.0:
            scale = float(np.ldexp(1.0, min(-int(np.frexp(amax)[1]), 1022)))
            pre, post = scale_halves(scale)
            A = (A * dtype.type(pre)) * dtype.type(post)
        U, s, Vt, norm2 = _iterate(A, tall, xp, Omega, k, n_iter, check_range=False)
    return _finish(A, U, s, Vt, norm2, eps, xp, scale)


class _OutOfRange(Exception):
    """The first pass found ``||A||_F^2`` non-finite or too close to the dtype's limits."""


def _iterate(
    A: Any,
    tall: bool,
    xp: types.ModuleType,
    Omega: Any,
    k: int,
    n_iter: int | None,
    check_range: bool,
) -> tuple[Any, Any, Any, float]:
    """The passes of :func:`_truncated_svd_dask_core`; returns ``U, s, Vt, ||A||_F^2``."""
    ops = _Passes(A, tall, xp)
    m, n = A.shape
    dtype = np.dtype(A.dtype)
    max_iter = _auto_max_iter(k, m, n)
    adaptive = n_iter is None
    total = 2 * (max_iter if n_iter is None else n_iter) + 2
    X = orth(Omega, xp) if adaptive else Omega
    if not tall:
        X = ops.long_block(X).persist()
    right = True
    passes = 0
    norm2 = None
    rule: _StopRule | None = None
    result = None
    while True:
        final = passes == total - 1
        if right:
            product, got = ops.mm(X, with_norm=passes == 0)
            if got is not None:
                norm2 = got
                info = np.finfo(dtype)
                in_range = float(info.tiny) * 1e10 < norm2 < float(info.max) * 1e-10
                if not math.isfinite(norm2) or (check_range and not in_range):
                    raise _OutOfRange
                rule = _StopRule(norm2, dtype)
        else:
            product = ops.rmm(X)
        passes += 1
        if final or adaptive:
            basis, R = _orth_any(product, xp, 2 if final else 1, True)
            result = (right, X, basis, R)
            if adaptive:
                assert rule is not None and norm2 is not None
                energy, rate = _ritz_readings(R, k, xp)
                rule.add(norm2 - energy, rate)
        else:
            basis = _orth_any(product, xp, 2 if passes == total - 1 else 1, False)
        if final:
            break
        if adaptive and rule is not None and rule.stop():
            break
        X = basis
        right = not right
    assert result is not None and norm2 is not None
    U, s, Vt = _from_pass(result, k, xp)
    return U, s, Vt, norm2


def _from_pass(result: tuple, k: int, xp: types.ModuleType) -> tuple[Any, Any, Any]:
    """As :func:`sparselin.linalg._iterations._from_pass`, with dask or in-memory blocks."""
    right, X, basis, R = result
    if right:
        u, s, wh = small_svd(R, xp)
        U = basis @ u[:, :k]
        Vt = wh[:k] @ conj_t(X)
    else:
        u, s, wh = small_svd(conj_t(R), xp)
        U = X @ u[:, :k]
        Vt = wh[:k] @ conj_t(basis)
    return U, s[:k], Vt


def _finish(
    A: Any,
    U: Any,
    s: Any,
    Vt: Any,
    norm2: float,
    eps: float,
    xp: types.ModuleType,
    scale: float = 1.0,
) -> tuple[Any, Any, Any, float]:
    """Cutoff, error, sign rule and output types: dask U with A's row chunks, in-memory Vt."""
    da = dask_array_module()
    dask = importlib.import_module("dask")
    dtype = np.dtype(A.dtype)
    real = np.finfo(dtype).dtype
    err2 = max(norm2 - float(xp.sum(s.astype(np.float64) ** 2)), 0.0)
    rel = math.sqrt(err2 / norm2) if norm2 else 0.0
    s = _unscale(s.astype(real, copy=False), scale, xp, 5)
    if s.shape[0] and math.isfinite(float(s[0])):
        cutoff = float(s[0]) * (ZERO_CUTOFF * eps)
        s = xp.where(s > cutoff, s, 0).astype(real)
    if _is_dask(Vt):
        Vt = Vt.compute()
    Vt = xp.ascontiguousarray(Vt.astype(dtype, copy=False))
    if not _is_dask(U):
        # Wide A: U is small; the in-memory rule applies as is.
        U = xp.ascontiguousarray(U.astype(dtype, copy=False))
        U, Vt = flip_signs(U, Vt, xp)
        return da.from_array(U, chunks=(A.chunks[0], U.shape[1]), asarray=False), s, Vt, rel
    U = U.astype(dtype)
    kk = U.shape[1]
    if kk == 0:
        return U, s, Vt, rel
    # The sign rule of flip_signs (largest |entry| of each column of U real and positive,
    # the first one on a tie) from k-vector reductions of the persisted U.
    if dtype.kind == "c":
        idx = dask.compute(da.argmax(abs(U), axis=0))[0]
        pivots = U.vindex[idx, np.arange(kk)].compute()
        mag = np.abs(pivots)
        phase = np.where(mag > 0, pivots / np.where(mag > 0, mag, 1), 1).astype(dtype)
        U = U * phase.conj()[None, :]
        Vt *= xp.asarray(phase)[:, None]
        return U, s, Vt, rel
    i_max, i_min, v_max, v_min = dask.compute(
        da.argmax(U, axis=0), da.argmin(U, axis=0), U.max(axis=0), U.min(axis=0)
    )
    i_max, i_min, v_max, v_min = (_host(a) for a in (i_max, i_min, v_max, v_min))
    v_min = -v_min
    use_max = (v_max > v_min) | ((v_max == v_min) & (i_max < i_min))
    use_max |= (v_max == 0) & (v_min == 0)  # an all-zero column keeps its sign, as in memory
    sign = np.where(use_max, 1, -1).astype(dtype)
    U = U * xp.asarray(sign)[None, :]
    Vt *= xp.asarray(sign)[:, None]
    return U, s, Vt, rel


def _host(a: Any) -> np.ndarray:
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)
