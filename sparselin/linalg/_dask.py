"""Truncated SVD of a dask array, run on dask's own scheduler without gathering the matrix.

The randomized subspace iteration of :func:`sparselin.linalg._iterations.fixed_rank` is
reproduced with the same Gaussian test matrix (drawn on the host from the same
``random_state``), the same subspace and the same sign rule, so that the result equals the
in-memory one up to rounding. Reading a chunk usually costs more than the products made with
it, so a fixed ``n_iter`` arranges the passes differently (:func:`_iterate_fused`): on a
row-chunked A every power iteration is one pass (each task makes ``A_i^H (A_i X)``), and the
last pass makes ``Y = A X``, ``A^H Y`` and ``Y^H Y`` together, from which ``B = Q^H A``
follows: ``n_iter + 1`` passes instead of ``2 n_iter + 2`` (one more where ``Y`` is too
ill-conditioned for that; ``n_iter + 2`` on a column-chunked A). ``n_iter="auto"`` replays
the in-memory half-step iteration pass for pass (:func:`_iterate`): the same alternation of
``A X`` and ``A^H X``, the same normalisation after every product (one Cholesky QR between
passes, CholeskyQR2 where the basis is read as orthonormal), the same stopping rule and
Rayleigh-Ritz step. The precision follows ``sketch_dtype`` as in memory: by default
float64/complex128 input of at least 2**20 entries runs its power iterations on A cast to
single precision, chunk by chunk inside the tasks that read A (the copy is never stored;
scaled by the same power of two where its entries would leave single precision's range),
and only the last pass, on A itself, in full precision.

Only one dimension of A may be chunked. Products along the chunked ("long") dimension stay
dask arrays and are persisted after each pass, so the graph never grows with the iterations
and A is read once per pass (an input that dask cannot hold is re-read from its source, never
kept); products along the other dimension are reductions of one small partial per chunk, and
they, the l x l Gram matrices and their Cholesky factors are computed to the client. No task
ever receives more than one chunk of A. The small in-memory operand of a pass goes into the
tasks as a literal, so that dask fuses the read of each chunk into the one task that uses
it (a chunk is never a task result of its own, held or moved); that task neither copies the
chunk (no concatenation along the contracted index) nor casts it whole: a power step casts
and multiplies row panels that stay in cache (:func:`_gram_panels`), and the first pass sums
the squares for ``||A||_F`` from the same panels. What follows the last pass is one graph
submitted once (:func:`_fused_tail`, :func:`_apply_sign_rule`): the sign rule's per-column
extremes come from the tasks that make U, so U is made once and the client waits once. The
client's own small factorisations hold the BLAS at one thread (:func:`_small_ops`).

Orthonormalising a tall dask block uses CholeskyQR2 from blockwise Gram sums (one reduction
of l x l partials per Cholesky pass, on the persisted block, not on A), with
``dask.array.linalg.tsqr`` as the fallback where the Gram matrix reveals a condition number
CholeskyQR2 cannot handle — the same policy as :func:`sparselin.linalg._dense.orth`.

Fixed accuracy (``tol``) replays :func:`sparselin.linalg._fixed_accuracy.fixed_accuracy`
the same way: the basis ``Q`` and ``B^H = A^H Q`` grow block by block, each a dask array
along A's long dimension (one column chunk, persisted after every block) and in memory along
the other; the energy bookkeeping, the explicit residual where the identity is too coarse
(one pass, chunk by chunk) and the rank choice are those of the in-memory code. The product
that starts the next block is made in the pass that forms ``B_i = A^H Q_i`` (one graph, each
chunk of A read once), so a block costs ``2 n_iter + 1`` passes instead of ``2 n_iter + 2``.

Streaming (:func:`svd_update_dask`, and :class:`sparselin.IncrementalSVD` through
:func:`stream_blocks`) computes the bands of a dask array one at a time, in order, each once,
and applies them as successive in-memory updates; the next band is computed while the
current one is used. The estimators' projections (:func:`lazy_product`) stay lazy.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import importlib
import math
import types
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._array import (
    conj_t,
    dask_array_module,
    dask_chunk_namespace,
    namespace,
    result_dtype,
    to_numpy,
)
from .._threads import host_blas_limited
from .._validation import check_int, check_random_state, check_real
from ._dense import (
    _cholesky_upper,
    _triangular_inverse,
    flip_signs,
    gaussian,
    orth,
    small_svd,
)
from ._iterations import (
    ENERGY_RESOLUTION,
    KEEP_FRACTION,
    TOL_FLOOR,
    ZERO_CUTOFF,
    _auto_max_iter,
    _KrylovUnion,
    _ritz_readings,
    _StopRule,
    union_pays,
)
from ._operator import (
    _MIXED_PRECISION_MIN_SIZE,
    _SKETCH_DTYPE,
    Operator,
    scale_halves,
    sketch_operator,
)
from ._truncated_svd import _unscale

__all__ = [
    "check_dask_matrix",
    "check_dask_stream",
    "column_variances",
    "lazy_product",
    "stream_blocks",
    "svd_update_dask",
    "truncated_svd_dask",
]


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
    compute: Any,
    r_max: int,
) -> tuple[int | None, float | None, int, int | None]:
    """Validate the options of :func:`truncated_svd` that the dask path supports."""
    if k is None and tol is None:
        raise ValueError("give the rank k, the relative error tol, or both")
    if k is not None:
        k = check_int(k, "k", low=1, high=r_max)
    if tol is not None:
        tol = check_real(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)
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
    if not isinstance(return_error, (bool, np.bool_)):
        raise TypeError(f"return_error must be a bool, got {type(return_error).__name__}")
    if not isinstance(compute, (bool, np.bool_)):
        raise TypeError(f"compute must be a bool, got {type(compute).__name__}")
    return k, tol, n_oversamples, iters


# Below dask's own limit for embedding an argument in the graph (1 MB, larger ones become
# a task of their own): see _Passes._small_operand.
_LITERAL_BYTES = 1_000_000


class _Passes:
    """Products with a dask A whose rows (``tall``) or columns are chunked.

    Blocks along the long dimension are dask arrays, persisted once formed; blocks along the
    short dimension are in memory (NumPy or CuPy, like A's chunks).
    """

    def __init__(self, A: Any, tall: bool, xp: types.ModuleType, norm_of: Any = None) -> None:
        self.da = dask_array_module()
        self.dask = importlib.import_module("dask")
        self.A = A
        self.tall = tall
        self.xp = xp
        # The matrix whose ||.||_F^2 the first pass measures: A itself, or the full-precision
        # matrix a lower-precision A was cast from (the cast is made per chunk from the same
        # read, so measuring the source costs no extra read).
        self.norm_of = A if norm_of is None else norm_of
        self.first: Any = None  # what the pass that measures the norm reads, if not A
        # For a sketch's copy: (the full-precision source, its dtype, c). The power steps of
        # _iterate_fused cast each chunk inside the task that multiplies with it, so that
        # the copy never becomes a task result of its own (held, or moved between workers).
        self.cast: tuple | None = None

    def long_block(self, X: Any) -> Any:
        """An in-memory block along the long dimension as a dask array with A's chunks."""
        chunks = self.A.chunks[1]
        return self.da.from_array(X, chunks=(chunks, X.shape[1]), asarray=False)

    def _small_operand(self, X: Any, index: str) -> tuple[Any, str | None]:
        """The in-memory n x l operand of a pass, as ``blockwise`` arguments.

        Up to :data:`_LITERAL_BYTES` it is given as it is (dask stores it in each task), so
        that the task which reads a chunk of A is also the one that multiplies with it
        (blockwise fuses the read into its only consumer); larger, it is a one-chunk dask
        array (stored once; the reads then stay tasks of their own).
        """
        if _LITERAL_BYTES and X.nbytes <= _LITERAL_BYTES:
            return X, None
        return self.da.from_array(X, chunks=X.shape, asarray=False), index

    def mm(self, X: Any, with_norm: bool = False) -> tuple[Any, float | None]:
        """``A @ X``; with ``with_norm`` also ``||A||_F^2`` from the same pass."""
        A = self.first if with_norm and self.first is not None else self.A
        if not self.tall:
            X = self.long_block(X) if not _is_dask(X) else X
        Y = _dot(A, X)
        return self._finish(Y, with_norm, long=self.tall)

    def rmm(self, X: Any) -> Any:
        """``A^H @ X`` (see :func:`_adjoint_dot`)."""
        Y = _adjoint_dot(self.A, X)
        return self._finish(Y, False, long=not self.tall)[0]

    def gram_step(self, X: Any, with_norm: bool = False) -> tuple[Any, float | None]:
        """One power step in one pass: ``A^H (A X)`` (tall) or ``A (A^H X)`` (wide).

        ``X`` is in memory, on A's short side. Each task reads one chunk ``A_i`` and makes
        both products with it (``A_i^H (A_i X)``, a short-side partial), and the partials are
        summed in a tree; the long-side product ``A_i X`` never leaves its task. With
        ``with_norm`` the same pass also measures ``||A||_F^2``: on a tall A inside the same
        tasks (one more row of the partial, in double precision), so that the chunk just
        read has one consumer and is streamed from memory once.
        """
        A, low, c = self.A, None, 1.0
        if self.cast is not None:
            A, low, c = self.cast
        short, l = X.shape
        merged = with_norm and self.tall
        dtype = np.dtype(self.A.dtype)
        # The partials of the merged pass carry ||A_i||_F^2, which must not be rounded to
        # the sketch's precision (the error estimate subtracts energies from it).
        part_dtype = np.result_type(dtype, np.float64) if merged else dtype
        parts = self.da.blockwise(
            _gram_step_block,
            "bij",
            A,
            "bz" if self.tall else "zb",
            *self._small_operand(X, "zy"),
            new_axes={"i": short + merged, "j": l},
            adjust_chunks={"b": 1},
            # Lists of blocks along the contracted index (one each, see check_dask_matrix):
            # concatenating them would copy the whole chunk of A in every task.
            concatenate=False,
            dtype=part_dtype,
            meta=self.A._meta[:0, :0].astype(part_dtype)[None],
            tall=self.tall,
            quiet=with_norm,
            low=low,
            c=c,
            norm=merged,
        )
        if not merged:
            return self._finish(parts.sum(axis=0), with_norm, long=False)
        Z = self._finish(parts.sum(axis=0), False, long=False)[0]
        norm = float(_host(Z[short, :1].real)[0])
        return Z[:short].astype(dtype), norm

    def fused_final(
        self, X: Any, with_norm: bool = False
    ) -> tuple[Any, Any, Any, float | None, Any]:
        """The last pass of a tall A: ``Y = A X`` (persisted), ``W = A^H Y`` and ``Y^H Y``.

        One pass: the task that makes ``Y_i = A_i X`` and the one that makes the partials
        ``A_i^H Y_i`` and ``Y_i^H Y_i`` share the read of ``A_i``. Returns ``Y`` (dask, A's row
        chunks), ``W`` (n x l) and ``G = Y^H Y`` (l x l) in memory, the norm if asked, and
        ``[W; G]`` as the persisted dask array it was gathered from (so that later tasks can
        take ``W`` from the cluster instead of from a copy embedded in their graph).
        """
        n, l = X.shape
        A = self.A
        # One task per chunk returns the pair (Y_i, partials): A_i is read and released by
        # that task alone (two tasks sharing it would keep it in memory between them).
        pair = self.da.blockwise(
            _fused_final_pair,
            "bz",
            A,
            "bz",
            *self._small_operand(X, "zy"),
            concatenate=True,
            dtype=object,
            meta=np.empty((0, 0), dtype=object),
        )
        Y = pair.map_blocks(
            _first_of, chunks=(A.chunks[0], (l,)), dtype=A.dtype, meta=A._meta[:0, :0]
        )
        parts = pair.map_blocks(
            _second_of,
            new_axis=[2],
            chunks=((1,) * A.numblocks[0], (n + l,), (l,)),
            dtype=A.dtype,
            meta=A._meta[:0, :0][None],
        )
        WG = parts.sum(axis=0)
        norm = None
        if with_norm:
            sq = self._squares()
            Y, WGd, sq = self.dask.persist(Y, WG, sq)
            WG, sq = self.dask.compute(WGd, sq)
            norm = float(sq)
        else:
            Y, WGd = self.dask.persist(Y, WG)
            WG = WGd.compute()
        return Y, WG[:n], WG[n:], norm, WGd

    def _squares(self) -> Any:
        """``||A||_F^2`` of :attr:`norm_of` as a lazy dask scalar (a blockwise reduction)."""
        A = self.norm_of
        rows, cols = A.numblocks
        return A.map_blocks(
            _squared_sum,
            chunks=((1,) * rows, (1,) * cols),
            dtype=np.float64,
            meta=np.empty((0, 0), np.float64),
        ).sum()

    def _finish(self, Y: Any, with_norm: bool, long: bool) -> tuple[Any, float | None]:
        norm = None
        if with_norm:
            sq = self._squares()
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


def _gram_step_block(
    A: Any,
    X: Any,
    tall: bool,
    quiet: bool = False,
    low: Any = None,
    c: float = 1.0,
    norm: bool = False,
) -> Any:
    """``A_i^H (A_i X)`` (tall) or ``A_j (A_j^H X)`` (wide) of one chunk, as a 1 x s x l block.

    ``A`` and ``X`` may come as one-element lists (blockwise without concatenation). The
    adjoint product runs on a transposed view (BLAS's flag, see :func:`_adjoint_dot`).
    ``quiet`` (the first pass): where the products overflow, the partial becomes zeros
    without a warning (nor one from summing infinities). This only happens when the squares
    of A's entries leave the dtype's range (a finite ``||A||_F^2`` below ``max * 1e-10``
    bounds the product), and then the norm measured in the same pass has the run restarted
    on A scaled into range. ``low``: the chunk is first cast to that precision (times ``c``,
    see :func:`_low_copy_block`, guarded in the first pass). ``norm`` (tall A): one more row
    holds ``||A_i||_F^2`` in its first entry, and the block is in double precision.
    """
    A = _single(A)
    X = _single(X)
    if isinstance(A, np.ndarray) and tall:
        Z, sq = _gram_panels(A, X, low, c, quiet, norm)
    else:
        sq = float(_squared_sum(A)[0, 0]) if norm else 0.0
        if low is not None:
            A = _low_copy_block(A, low, c, quiet)
        if quiet and isinstance(A, np.ndarray):
            with np.errstate(over="ignore", invalid="ignore"):
                Z = _gram_step_block(A, X, tall)[0]
            if not np.isfinite(Z).all():
                Z = np.zeros_like(Z)
        else:
            complex_ = A.dtype.kind == "c"
            if tall:
                T = A @ X
                Z = (A.T @ T.conj()).conj() if complex_ else A.T @ T
            else:
                T = (A.T @ X.conj()).conj() if complex_ else A.T @ X
                Z = A @ T
    if not norm:
        return Z[None]
    xp = namespace(Z)
    out = xp.zeros((Z.shape[0] + 1, Z.shape[1]), dtype=np.result_type(Z.dtype, np.float64))
    out[:-1] = Z
    out[-1, 0] = sq
    return out[None]


def _single(blocks: Any) -> Any:
    """The block of a blockwise argument passed as nested one-element lists (one level per
    contracted index: A and X have a single block along the contracted dimension)."""
    while isinstance(blocks, list):
        if len(blocks) != 1:
            raise ValueError(f"expected one block along a contracted index, got {len(blocks)}")
        blocks = blocks[0]
    return blocks


# Rows of a chunk cast and multiplied at a time by _gram_panels: the cast panel (4 MB in
# single precision at 2000 columns) is still in cache for the second product. Measured on
# a 10000 x 2000 float64 chunk with 60 columns, one thread: 83 ms against 113 ms for the
# whole chunk (plus 20-35 ms for its cast copy's fresh pages).
_PANEL_ELEMENTS = 1 << 20


def _gram_panels(
    A: np.ndarray, X: np.ndarray, low: Any, c: float, quiet: bool, norm: bool
) -> tuple[np.ndarray, float]:
    """``A^H (A X)`` of a tall NumPy chunk, row panel by row panel; and ``||A||_F^2``.

    The numbers are those of :func:`_gram_step_block` on the whole chunk (the same cast,
    the same guard, per panel), summed over panels. ``norm`` adds up the panels' squares in
    double precision while each panel is in cache.
    """
    m, n = A.shape
    dtype = np.dtype(A.dtype if low is None else low)
    complex_ = dtype.kind == "c"
    rows = max(1, min(m, _PANEL_ELEMENTS // max(n, 1)))
    guard = quiet and low is not None and c == 1.0
    buf = np.empty((rows, n), dtype=dtype) if low is not None else None
    Z = None
    sq = 0.0
    work: list = []
    with np.errstate(over="ignore", invalid="ignore") if quiet else contextlib.nullcontext():
        for start in range(0, m, rows):
            P = A[start : start + rows]
            s_p = 0.0
            if norm or guard:
                s_p = _panel_squares(P, work)
                sq += s_p
            if buf is not None:
                B = buf[: P.shape[0]]
                if guard and not s_p <= _RESCALED_ENTRY**2 and not _in_range(P):
                    B[...] = 0  # as _low_copy_block's guard: the pass is rerun anyway
                else:
                    np.multiply(P, c, out=B, casting="unsafe")
                P = B
            T = P @ X
            if complex_:
                T = T.conj()
            if Z is None:
                Z = P.T @ T
                part = np.empty_like(Z)  # reused: no fresh pages per panel
            else:
                np.matmul(P.T, T, out=part)
                Z += part
    assert Z is not None
    if complex_:
        Z = Z.conj()
    if quiet and not np.isfinite(Z).all():
        Z = np.zeros_like(Z)
    return Z, sq


def _panel_squares(P: np.ndarray, work: list) -> float:
    """``sum |P|^2`` in double precision (inf on overflow, NaN with NaN entries).

    ``work`` holds a scratch panel reused across calls: a fresh temporary per panel would
    be new pages to fault in every time (the workers return freed memory at once).
    """
    real = np.dtype(P.dtype).kind == "f"
    if real and P.dtype.itemsize >= 8 and P.flags.c_contiguous:
        # BLAS dot, in cache and without a temporary; it raises no overflow warning.
        flat = P.reshape(-1)
        return float(np.vdot(flat, flat))
    if real:
        if not work:
            work.append(np.empty(P.shape, dtype=P.dtype))  # C order: rows are contiguous
        sq = work[0][: P.shape[0]]
        with np.errstate(over="ignore"):
            np.square(P, out=sq)
        if sq.dtype.itemsize < 8:
            # Row sums in single precision first: NumPy sums a contiguous row pairwise, so
            # each carries at most ~log2(n) eps of relative error (1e-10 measured on 2000
            # entries), far below what the energy identity can resolve (ENERGY_RESOLUTION *
            # eps), and the double-precision sum then runs over rows, not entries: 8.6 ms
            # against 15 ms for a 10000 x 2000 float32 chunk (one thread).
            return float(np.add.reduce(sq, axis=1).sum(dtype=np.float64))
        return float(sq.sum(dtype=np.float64))
    return float(_squared_sum(P)[0, 0])


def _in_range(P: np.ndarray) -> bool:
    amax = float(abs(P).max())
    return amax <= _RESCALED_ENTRY  # False for NaN too


def _fused_final_pair(A: Any, X: Any) -> tuple[Any, Any]:
    """``(Y_i, [A_i^H Y_i; Y_i^H Y_i])`` with ``Y_i = A_i X``, from one read of the chunk.

    A real NumPy chunk is multiplied row panel by row panel (as in :func:`_gram_panels`):
    each panel's rows of ``Y`` are made and multiplied back while the panel is in cache.
    ``Y`` comes out the same, ``W`` summed in another order: 62 against 69 ms on a
    10000 x 2000 float32 chunk with 60 columns (one thread).
    """
    if not isinstance(A, np.ndarray) or A.dtype.kind == "c" or A.ndim != 2:
        Y = A @ X
        return Y, _fused_final_block(A, Y)
    m, n = A.shape
    rows = max(1, min(m, _PANEL_ELEMENTS // max(n, 1)))
    Y = np.empty((m, X.shape[1]), dtype=np.result_type(A.dtype, X.dtype))
    W = None
    for start in range(0, m, rows):
        P = A[start : start + rows]
        T = Y[start : start + rows]
        np.matmul(P, X, out=T)
        if W is None:
            W = P.T @ T
            part = np.empty_like(W)  # reused: no fresh pages per panel
        else:
            np.matmul(P.T, T, out=part)
            W += part
    assert W is not None
    G = Y.T @ Y
    return Y, np.concatenate([W, G.astype(W.dtype, copy=False)], axis=0)[None]


def _first_of(pair: Any) -> Any:
    return pair[0]


def _second_of(pair: Any) -> Any:
    return pair[1]


def _fused_final_block(A: Any, Y: Any) -> Any:
    """``[A_i^H Y_i; Y_i^H Y_i]`` of one chunk (tall A), as a 1 x (n + l) x l block."""
    if A.dtype.kind == "c":
        W = (A.T @ Y.conj()).conj()
        G = Y.conj().T @ Y
    else:
        W = A.T @ Y
        G = Y.T @ Y
    return namespace(W).concatenate([W, G.astype(W.dtype, copy=False)], axis=0)[None]


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


def _dot(X: Any, Y: Any) -> Any:
    """``X @ Y`` where either may be an in-memory block (NumPy or CuPy).

    The in-memory operand becomes a dask array of its own chunk type, chunked to match the
    other's contracted dimension: left to dask, a CuPy operand would go through
    ``numpy.asarray``, which CuPy refuses (and a NumPy one would meet CuPy chunks).
    """
    if _is_dask(X) == _is_dask(Y):
        return X @ Y
    da = dask_array_module()
    if _is_dask(X):
        Y = da.from_array(Y, chunks=(X.chunks[1], Y.shape[1]), asarray=False)
    else:
        X = da.from_array(X, chunks=(X.shape[0], Y.chunks[0]), asarray=False)
    return X @ Y


def _adjoint_dot(A: Any, X: Any) -> Any:
    """``A^H X`` as ``conj(A^T conj(X))``: per chunk, ``A_i^T X_i`` on a transposed view.

    A task still reads its block of A in place (the transpose is BLAS's flag, not a copy),
    and this form is much faster than ``(X^H A)^H``, whose GEMM has a long inner dimension
    and a small output: on a 10000 x 2000 chunk and 60 columns, 84 ms against 210 ms in
    float64 and 39 ms against 182 ms in float32 (OpenBLAS, 2 threads).
    """
    if np.dtype(A.dtype).kind != "c":
        return _dot(A.T, X)
    return _dot(A.T, X.conj()).conj()


def _scale_columns(U: Any, v: Any) -> Any:
    """``U * v[None, :]`` for a dask or in-memory ``U`` and an in-memory ``v``."""
    if not _is_dask(U):
        return U * v[None, :]
    return U.map_blocks(_times_row, v, dtype=U.dtype)


def _times_row(block: Any, v: Any) -> Any:
    return block * v[None, :]


def _orth_dask(Y: Any, xp: types.ModuleType, *, passes: int = 2) -> tuple[Any, Any]:
    """``Y = Q R`` for a tall, row-chunked dask ``Y`` (l columns): lazy ``Q``, in-memory ``R``.

    CholeskyQR (``passes=1``) or CholeskyQR2, each Gram matrix a reduction of one l x l
    partial per block; ``dask.array.linalg.tsqr`` where the first Cholesky factor shows a
    condition number beyond CholeskyQR2's reach (as :func:`sparselin.linalg._dense.orth`).
    """
    da = dask_array_module()
    eps = np.finfo(Y.dtype).eps
    G = (conj_t(Y) @ Y).compute()
    with _small_ops(xp):
        R1 = _cholesky_upper(G, xp)
    if R1 is not None:
        d = xp.abs(xp.diagonal(R1))
        if float(d.min()) > 100.0 * np.sqrt(eps) * float(d.max()):
            with _small_ops(xp):
                R1inv = _triangular_inverse(R1, xp)
            Q1 = _dot(Y, R1inv).persist()
            if passes == 1:
                return Q1, R1
            G2 = (conj_t(Q1) @ Q1).compute()
            with _small_ops(xp):
                R2 = _cholesky_upper(G2, xp)
                R2inv = None if R2 is None else _triangular_inverse(R2, xp)
            if R2 is not None:
                return _dot(Q1, R2inv).persist(), R2 @ R1
    Yt = Y.rechunk({1: -1})
    Q, R = da.linalg.tsqr(Yt)
    Q, R = Q.persist(), R.compute()
    return Q, R


def _orth_any(Y: Any, xp: types.ModuleType, passes: int, return_r: bool) -> Any:
    if _is_dask(Y):
        Q, R = _orth_dask(Y, xp, passes=passes)
        return (Q, R) if return_r else Q
    with _small_ops(xp, Y.size):
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
    k, tol, n_oversamples, iters = _options(
        k,
        tol,
        n_oversamples,
        n_iter,
        method,
        return_error,
        power_iteration_normalizer,
        compute,
        min(m, n),
    )
    # The in-memory check of the option (same messages); A is only looked at for its dtype.
    xp = dask_chunk_namespace(A)
    sketch_operator(Operator(A, "dense", xp), sketch_dtype, check_only=True)
    rng = check_random_state(random_state)
    if tol is not None:
        U, s, Vt, rel = _fixed_accuracy_dask_core(
            A,
            tall,
            tol,
            k,
            iters,
            rng,
            want_error=bool(return_error),
            stacklevel=4,
            persist=bool(compute),
        )
    else:
        assert k is not None
        U, s, Vt, rel = _truncated_svd_dask_core(
            A,
            tall,
            k,
            n_oversamples,
            iters,
            rng,
            want_error=bool(return_error),
            sketch_dtype=sketch_dtype,
            persist=bool(compute),
        )
    if return_error:
        return U, s, Vt, rel
    return U, s, Vt


def _truncated_svd_dask_core(
    A: Any,
    tall: bool,
    k: int,
    n_oversamples: int,
    n_iter: int | None,
    rng: Any,
    want_error: bool = False,
    sketch_dtype: Any = "auto",
    persist: bool = False,
) -> tuple[Any, Any, Any, float]:
    """Randomized subspace iteration on a validated dask ``A`` (see the module docstring).

    The loop is :func:`sparselin.linalg._iterations._half_step_iteration` with the sketch
    operator of :func:`sparselin.linalg._operator.sketch_operator`: the same passes,
    normalisations, stopping rule and final step. ``sketch_dtype`` has been checked.
    ``persist``: ``U`` comes back persisted, made in the same graph as its signs.
    """
    xp = dask_chunk_namespace(A)
    m, n = A.shape
    dtype = np.dtype(A.dtype)
    eps = float(np.finfo(dtype).eps)
    l = min(k + n_oversamples, min(m, n))
    auto = isinstance(sketch_dtype, str)
    low = _sketch_target(dtype, m * n, sketch_dtype)
    c = 1.0
    scale = 1.0
    check_range = True
    start = copy.deepcopy(rng)
    gen = rng
    while True:
        # The test matrix is drawn in the sketch's precision, as in memory; a restart draws
        # the same numbers again (in the precision it then sketches in).
        Omega = gaussian(gen, (n, l), dtype if low is None else low, xp)
        try:
            if n_iter is None:
                U, s, Vt, norm2 = _iterate(A, tall, xp, Omega, k, None, check_range, low, c)
            else:
                U, s, Vt, norm2 = _iterate_fused(
                    A, tall, xp, Omega, k, n_iter, check_range, low, c, persist
                )
            break
        except _OutOfRange:
            # Squares of A's entries over- or underflow (or A holds NaN/inf): as safe_scale
            # does in memory, work on A times a power of two near 1 / max|A|, applied
            # blockwise to the chunks as they are read (A is not copied).
            amax = float(abs(A).max().compute())
            if not math.isfinite(amax):
                raise ValueError("A contains NaN or infinity") from None
            if amax > 0.0:
                scale = float(np.ldexp(1.0, min(-int(np.frexp(amax)[1]), 1022)))
                pre, post = scale_halves(scale)
                A = (A * dtype.type(pre)) * dtype.type(post)
                if auto:
                    low = None  # in memory, scaled input is sketched in its own precision
            check_range = False
        except _Rescale as e:
            # The sketch's copy needs a power of two to stay in range (known once the first
            # pass has measured ||A||_F): rerun with it, as in memory, where the norm
            # precedes the copy. Only input whose rms entry is beyond 2**+-16 pays this pass.
            c = e.factor
            if c is None:
                low = None
        gen = copy.deepcopy(start)
    return _finish(A, U, s, Vt, norm2, eps, xp, scale, want_error=want_error, persist=persist)


def _sketch_target(dtype: np.dtype, size: int, sketch_dtype: Any) -> np.dtype | None:
    """The precision the power iterations run in, None for A's own (as ``sketch_operator``).

    ``"auto"`` sketches float64/complex128 input of at least ``_MIXED_PRECISION_MIN_SIZE``
    entries in single precision; an explicit dtype is used as given.
    """
    if isinstance(sketch_dtype, str):
        if dtype in _SKETCH_DTYPE and size >= _MIXED_PRECISION_MIN_SIZE:
            return _SKETCH_DTYPE[dtype]
        return None
    target = np.dtype(sketch_dtype)
    return None if target == dtype else target


def _sketch_factor(norm2: float, size: int) -> float | None:
    """The power of two the low-precision copy is scaled by (``_low_precision_copy``).

    It brings the root-mean-square entry near 1; None where no finite factor can.
    """
    rms = math.sqrt(norm2 / size) if norm2 > 0 else 1.0
    if 2.0**-16 <= rms <= 2.0**16:
        return 1.0
    exponent = -round(math.log2(rms))
    if abs(exponent) > 1000:
        return None
    return float(np.ldexp(1.0, exponent))


def _fixed_accuracy_dask_core(
    A: Any,
    tall: bool,
    tol: float,
    k_max: int | None,
    n_iter: int | None,
    rng: Any,
    *,
    want_error: bool = False,
    stacklevel: int = 2,
    persist: bool = False,
) -> tuple[Any, Any, Any, float]:
    """Fixed accuracy on a validated dask ``A``: the smallest rank with error at most ``tol``.

    :func:`sparselin.linalg._fixed_accuracy.fixed_accuracy` (randQB_EI) replayed with blocked
    products: the same test matrices, block sizes, projections, stopping rule, explicit
    residual where the energy identity is too coarse, and the same warnings as
    :func:`sparselin.linalg._truncated_svd._truncated_svd_core`. ``||A||_F^2`` comes from the
    first pass; A whose squares leave the dtype's range is worked on scaled by a power of
    two (the run restarts once, with the same random stream). ``persist``: ``U`` comes back
    persisted, made in the same graph as its signs.
    """
    xp = dask_chunk_namespace(A)
    dtype = np.dtype(A.dtype)
    eps = float(np.finfo(dtype).eps)
    floor = TOL_FLOOR * eps
    if tol < floor:
        warnings.warn(
            f"tol={tol:g} is below what {dtype} factors can represent (about "
            f"{floor:.1g} relative error); the result is as accurate as {dtype} allows",
            UserWarning,
            stacklevel=stacklevel,
        )
    start = copy.deepcopy(rng)
    scale = 1.0
    try:
        out = _fixed_accuracy_blocks(A, tall, xp, tol, k_max, n_iter, rng, check_range=True)
    except _OutOfRange:
        amax = float(abs(A).max().compute())
        if not math.isfinite(amax):
            raise ValueError("A contains NaN or infinity") from None
        if amax > 0.0:
            scale = float(np.ldexp(1.0, min(-int(np.frexp(amax)[1]), 1022)))
            pre, post = scale_halves(scale)
            A = (A * dtype.type(pre)) * dtype.type(post)
        out = _fixed_accuracy_blocks(A, tall, xp, tol, k_max, n_iter, start, check_range=False)
    U, s, Vt, rel, met, norm2 = out
    if not met and (k_max is not None or tol >= floor):
        warnings.warn(
            f"tol={tol} cannot be met with rank <= {k_max}; returning rank {s.shape[0]} with "
            f"relative error {rel:.3g}",
            UserWarning,
            stacklevel=stacklevel,
        )
    return _finish(
        A,
        U,
        s,
        Vt,
        norm2,
        eps,
        xp,
        scale,
        err2=rel * rel * norm2,
        want_error=want_error,
        persist=persist,
    )


class _Blocks(_Passes):
    """The products of fixed accuracy, on dask or in-memory thin blocks.

    A block along A's long dimension is a persisted dask array; along the short one it is in
    memory. The helpers below take either kind, so the algorithm reads as its original.
    """

    def times(self, X: Any, Q: Any = None, C: Any = None, with_norm: bool = False) -> tuple:
        """``A X - Q C`` (the correction only when ``Q`` has columns), and ``||A||^2``."""
        if not self.tall and not _is_dask(X):
            X = self.long_block(X)
        Y = _dot(self.A, X)
        if Q is not None and Q.shape[1]:
            Y = Y - _dot(Q, C)
        return self._finish(Y, with_norm, long=self.tall)

    def adjoint_times(self, X: Any, Q: Any = None, C: Any = None) -> Any:
        """``A^H X - Q C`` (the correction only when ``Q`` has columns)."""
        Z = _adjoint_dot(self.A, X)
        if Q is not None and Q.shape[1]:
            Z = Z - _dot(Q, C)
        return self._finish(Z, False, long=not self.tall)[0]

    def adjoint_and_times(self, Qi: Any, X: Any) -> tuple[Any, Any]:
        """``A^H Qi`` and ``A X`` from one pass over A (one graph, each chunk read once)."""
        Z = _adjoint_dot(self.A, Qi)
        if not self.tall and not _is_dask(X):
            X = self.long_block(X)
        Y = _dot(self.A, X)
        if self.tall:
            Y, Z = self.dask.persist(Y, Z)
            return Z.compute(), Y
        Z, Y = self.dask.persist(Z, Y)
        return Z, Y.compute()

    def empty(self, long_rows: bool, rows: int) -> Any:
        """A block without columns, of the kind the dimension of ``rows`` calls for."""
        Z = self.xp.zeros((rows, 0), dtype=self.A.dtype)
        if long_rows:
            chunks = self.A.chunks[0] if self.tall else self.A.chunks[1]
            return self.da.from_array(Z, chunks=(chunks, 0), asarray=False)
        return Z


def _gram(X: Any, Y: Any) -> Any:
    """``X^H Y`` in memory (a reduction over the long dimension for dask blocks)."""
    if _is_dask(X) and not _is_dask(Y):
        Y = dask_array_module().from_array(Y, chunks=(X.chunks[0], Y.shape[1]), asarray=False)
    G = conj_t(X) @ Y
    return G.compute() if _is_dask(G) else G


def _minus(Y: Any, Q: Any, C: Any) -> Any:
    """``Y - Q C``, persisted for dask blocks."""
    out = Y - _dot(Q, C)
    return out.persist() if _is_dask(out) else out


def _energy(X: Any, xp: types.ModuleType) -> float:
    """``||X||_F^2`` of a block (``vdot(X, X).real`` in memory), blockwise for dask."""
    if _is_dask(X):
        sq = X.map_blocks(
            _squared_sum,
            chunks=tuple((1,) * len(c) for c in X.chunks),
            dtype=np.float64,
            meta=np.empty((0, 0), np.float64),
        )
        return float(sq.sum().compute())
    return float(xp.vdot(X, X).real)


def _abs_max(X: Any, xp: types.ModuleType) -> float:
    if _is_dask(X):
        return float(_host(abs(X).max().compute()))
    return float(xp.abs(X).max())


def _join(Q: Any, Qi: Any) -> Any:
    """``[Q, Qi]``; dask blocks keep one column chunk and are persisted."""
    if not Q.shape[1]:
        return Qi
    if _is_dask(Q):
        da = dask_array_module()
        return da.concatenate([Q, Qi], axis=1).rechunk({1: -1}).persist()
    mod = importlib.import_module(type(Q).__module__.split(".", 1)[0])
    return mod.concatenate([Q, Qi], axis=1)


def _extend_basis_any(Y: Any, Q: Any, xp: types.ModuleType) -> Any:
    """:func:`sparselin.linalg._iterations.extend_basis` on dask or in-memory blocks."""
    has_q = Q.shape[1] > 0
    if has_q:
        for _ in range(2):
            Y = _minus(Y, Q, _gram(Q, Y))
    if not Y.shape[1] or _abs_max(Y, xp) == 0.0:
        return Y[:, :0]
    P = _orth_any(Y, xp, 2, False)
    if not has_q:
        return P
    limit = 2.0 * np.finfo(Y.dtype).eps * np.sqrt(Y.shape[0])
    for _ in range(2):
        C = _gram(Q, P)
        if float(xp.abs(C).max()) <= limit:
            return P
        P = _minus(P, Q, C)
        P = _minus(P, Q, _gram(Q, P))
        P, R = _orth_any(P, xp, 2, True)
        u, s, _ = small_svd(R, xp)
        keep = int(np.count_nonzero(_host(s) > KEEP_FRACTION))
        if keep == 0:
            return P[:, :0]
        P = _orth_any(_dot(P, u[:, :keep]), xp, 2, False)
    return P


def _ritz_factors_any(Bh: Any, xp: types.ModuleType) -> tuple[Any, Any, Any, Any]:
    """:func:`sparselin.linalg._iterations.ritz_factors` with ``Zt = Bh`` of either kind."""
    Qz, Rz = _orth_any(Bh, xp, 2, True)
    with _small_ops(xp):
        u, s, wh = small_svd(conj_t(Rz), xp)
    return Qz, u, s, wh


def _ritz_svd_any(Q: Any, factors: tuple, k: int) -> tuple[Any, Any, Any]:
    """:func:`sparselin.linalg._iterations.ritz_svd`; ``Vt`` always in memory."""
    Qz, u, s, wh = factors
    Vt = _dot(wh[:k], conj_t(Qz))
    if _is_dask(Vt):
        Vt = Vt.compute()
    return _dot(Q, u[:, :k]), s[:k], Vt


def _residual2(A: Any, L: Any, Rt: Any) -> float:
    """``||A - L Rt||_F^2`` on the entries of A, one chunk at a time (one pass over A).

    ``L`` (m x d) and ``Rt`` (d x n) may each be dask or in memory; both are aligned with
    A's chunks, so every task holds one chunk of A and the matching slices of the factors.
    """
    da = dask_array_module()
    if _is_dask(L):
        L = L.rechunk({1: -1})
    else:
        L = da.from_array(L, chunks=(A.chunks[0], L.shape[1]), asarray=False)
    if _is_dask(Rt):
        Rt = Rt.rechunk({0: -1})
    else:
        Rt = da.from_array(Rt, chunks=(Rt.shape[0], A.chunks[1]), asarray=False)
    return _energy(A - L @ Rt, np)


def _fixed_accuracy_blocks(
    A: Any,
    tall: bool,
    xp: types.ModuleType,
    tol: float,
    k_max: int | None,
    n_iter: int | None,
    rng: Any,
    check_range: bool,
) -> tuple[Any, Any, Any, float, bool, float]:
    """The loop of ``fixed_accuracy`` for a dense A whose norm the first pass measures.

    Returns ``U, s, Vt, rel, met, ||A||_F^2``. ``Q`` (m x d) and ``Bh = B^H = A^H Q``
    (n x d) are dask along A's long dimension and in memory along the other; the line by
    line correspondence with the in-memory loop is kept on purpose.
    """
    ops = _Blocks(A, tall, xp)
    m, n = A.shape
    dtype = np.dtype(A.dtype)
    r_max = min(m, n)
    p = 1 if n_iter is None else n_iter
    block = min(r_max, max(16, min(64, r_max // 16)))
    if k_max is not None:
        block = min(block, max(8, k_max // 2 + 1))
    Q = ops.empty(tall, m)
    Bh = ops.empty(not tall, n)
    tol2 = tol * tol
    eps = float(np.finfo(dtype).eps)
    # The identity's rounding error is a few eps * ||A||^2 per block; trust it well above.
    identity_ok = tol2 > ENERGY_RESOLUTION * eps
    norm2: float | None = None
    captured = 0.0
    resid = 0.0
    decided = False
    chosen: tuple | None = None
    cap = r_max if k_max is None else min(r_max, k_max + block)
    exhausted = False
    ahead: tuple | None = None  # (test matrix, A times it) of the next block, made early

    def rank_for(resid: float, total: float) -> tuple[int, tuple]:
        factors = _ritz_factors_any(Bh, xp)
        sv = factors[2].astype(np.float64)
        tails = xp.concatenate([xp.cumsum(sv[::-1] ** 2)[::-1], xp.zeros(1)])
        ok = xp.nonzero(resid + tails <= tol2 * total)[0]
        r = int(ok[0]) if ok.size else int(sv.shape[0])
        return max(r, 1), factors

    while True:
        d = Q.shape[1]
        b = min(block, r_max - d)
        if b <= 0:
            break
        if ahead is not None:
            # This block's first product was made in the previous block's last pass, from
            # the numbers drawn here in memory; drawing them again keeps the caller's
            # generator where the in-memory code leaves it.
            Omega, Y = ahead
            ahead = None
            gaussian(rng, (n, b), dtype, xp)
            got = None
            if d:
                Y = _minus(Y, Q, _gram(Bh, Omega))
        else:
            Omega = gaussian(rng, (n, b), dtype, xp)
            if not tall:
                Omega = ops.long_block(Omega).persist()
            C = _gram(Bh, Omega) if d else None
            Y, got = ops.times(Omega, Q, C, with_norm=norm2 is None)
        if got is not None:
            # The first pass also measures ||A||_F^2 (in memory it precedes the loop).
            norm2 = got
            info = np.finfo(dtype)
            in_range = float(info.tiny) * 1e10 < norm2 < float(info.max) * 1e-10
            if not math.isfinite(norm2) or (check_range and norm2 and not in_range):
                raise _OutOfRange
            if norm2 == 0.0:
                break
        for _ in range(p):
            Qi = _orth_any(Y, xp, 2, False)
            Z = ops.adjoint_times(Qi, Bh, _gram(Q, Qi) if d else None)
            Pi = _orth_any(Z, xp, 2, False)
            Y = ops.times(Pi, Q, _gram(Bh, Pi) if d else None)[0]
        # What the block adds beyond span(Q); rounding noise inside span(Q) is dropped.
        Qi = _extend_basis_any(Y, Q, xp)
        if not Qi.shape[1]:
            exhausted = True
            break
        d_next = d + Qi.shape[1]
        b_next = min(block, r_max - d_next)
        if b_next > 0 and d_next < cap:
            # The next block's first product A Omega shares this pass over A with
            # B_i = A^H Q_i: three passes per block instead of four (for one power
            # iteration). It is wasted work, not an extra read, if this block ends the loop;
            # its test matrix comes from a copy of the stream, which stays untouched then.
            Omega_next = gaussian(copy.deepcopy(rng), (n, b_next), dtype, xp)
            if not tall:
                Omega_next = ops.long_block(Omega_next).persist()
            Bi, Y_next = ops.adjoint_and_times(Qi, Omega_next)
            ahead = (Omega_next, Y_next)
        else:
            Bi = ops.adjoint_times(Qi)
        Q = _join(Q, Qi)
        Bh = _join(Bh, Bi)
        captured += _energy(Bi, xp)
        d = Q.shape[1]
        assert norm2 is not None
        resid = max(norm2 - captured, 0.0)
        if resid <= tol2 * norm2 and not identity_ok:
            resid = _residual2(A, Q, conj_t(Bh))
            captured = norm2 - resid  # keep the bookkeeping exact from here on
        if resid <= tol2 * norm2:
            r, factors = rank_for(resid, norm2)
            # As in memory: accept once the rank that meets tol sits clearly inside the basis.
            if r <= d - block // 2 or d >= r_max or (k_max is not None and r <= k_max):
                decided = True
                chosen = (r, factors)
                break
        if d >= cap:
            break
    assert norm2 is not None
    if not decided and (Q.shape[1] >= r_max or exhausted) and Q.shape[1]:
        # Q spans A's range to working precision: what is left is rounding, measured.
        resid = _residual2(A, Q, conj_t(Bh))
        captured = norm2 - resid
    total = norm2
    if not Q.shape[1]:
        # A is zero (to working precision): every rank meets tol; rank 1, s = 0, as in memory.
        real = np.finfo(dtype).dtype
        U = _unit_column(A, tall, xp, m)
        Vt = xp.zeros((1, n), dtype=dtype)
        Vt[0, 0] = 1
        return U, xp.zeros(1, dtype=real), Vt, 0.0, True, norm2
    rank, factors = chosen if chosen is not None else rank_for(resid, total)
    sv = factors[2]
    rank = min(rank, int(sv.shape[0]))
    if k_max is not None:
        rank = min(rank, k_max)
    U, s, Vt = _ritz_svd_any(Q, factors, rank)
    err2 = resid + float(xp.sum(sv[rank:].astype(np.float64) ** 2))
    rel = math.sqrt(max(err2, 0.0) / total) if total > 0 else 0.0
    return U, s, Vt, rel, rel <= tol * (1 + 1e-9), norm2


def _unit_column(A: Any, tall: bool, xp: types.ModuleType, m: int) -> Any:
    """The first coordinate vector of length m (dask with A's row chunks when A is tall)."""
    dtype = np.dtype(A.dtype)
    if not tall:
        U = xp.zeros((m, 1), dtype=dtype)
        U[0, 0] = 1
        return U
    da = dask_array_module()

    def unit(index: Any) -> Any:
        return xp.asarray((index == 0)[:, None].astype(dtype))

    return da.arange(m, chunks=(A.chunks[0],)).map_blocks(
        unit, new_axis=1, chunks=(A.chunks[0], (1,)), dtype=dtype, meta=xp.empty((0, 0), dtype)
    )


class _OutOfRange(Exception):
    """The first pass found ``||A||_F^2`` non-finite or too close to the dtype's limits."""


class _Rescale(Exception):
    """The low-precision sketch needs another scale factor (None: no sketch at all)."""

    def __init__(self, factor: float | None) -> None:
        super().__init__(factor)
        self.factor = factor


def _iterate(
    A: Any,
    tall: bool,
    xp: types.ModuleType,
    Omega: Any,
    k: int,
    n_iter: int | None,
    check_range: bool,
    low: np.dtype | None = None,
    c: float = 1.0,
) -> tuple[Any, Any, Any, float]:
    """The passes of :func:`_truncated_svd_dask_core`; returns ``U, s, Vt, ||A||_F^2``.

    With ``low`` (a lower precision), every pass but the last runs on ``c A`` cast to
    ``low`` chunk by chunk as it is read (never stored), and the last on A, as
    :func:`sparselin.linalg._iterations._half_step_iteration` does with a sketch operator;
    a nearly exactly low-rank A then gets the full-precision refinement of
    :func:`sparselin.linalg._iterations.fixed_rank`. Raises :class:`_Rescale` when the
    measured norm calls for another ``c``.
    """
    full, ops, energy_factor = _sketch_passes(A, tall, xp, low, c)
    mixed = ops is not full
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
    # As in memory: the union of the last two short-side blocks (see _KrylovUnion).
    union = None
    if adaptive and not mixed and union_pays(m * n, m, n, Omega.shape[1]):
        union = _DaskKrylovUnion(dtype, xp)
    while True:
        final = passes == total - 1
        if adaptive and mixed and not final and rule is not None and rule.stop(ahead=1):
            # The full-precision pass that ends the run is one more half-step of progress.
            final = True
        current = full if (final and mixed) else ops
        if current is not ops:
            X = _orth_any(X.astype(dtype), xp, 2, False)
        if right:
            product, got = current.mm(X, with_norm=passes == 0)
            if got is not None:
                norm2 = got
                _check_first_norm(norm2, dtype, check_range, mixed, c, m * n)
                rule = _StopRule(norm2, low if mixed else dtype)
        else:
            product = current.rmm(X)
        passes += 1
        if final or adaptive:
            basis, R = _orth_any(product, xp, 2 if final else 1, True)
            result = (right, X, basis, R)
            if adaptive:
                assert rule is not None and norm2 is not None
                energy, rate = _ritz_readings(R, k, xp)
                scale = energy_factor if current is ops else 1.0
                rule.add(norm2 - energy * scale, rate)
                if union is not None and right == tall:
                    union.add(X, product, 1.0)
                    done = union.finish(rule, k, right, norm2, scale, final)
                    if done is not None:
                        result = done
                        break
        else:
            basis = _orth_any(product, xp, 2 if passes == total - 1 else 1, False)
        if final:
            break
        if adaptive and not mixed and rule is not None and rule.stop():
            break
        X = basis
        right = not right
    assert result is not None and norm2 is not None
    if union is not None and rule is not None:
        result = union.better(result, rule)
    U, s, Vt = _from_pass(result, k, xp)
    if mixed and norm2:
        err2 = max(norm2 - float(xp.sum(s.astype(np.float64) ** 2)), 0.0)
        if err2 < (ENERGY_RESOLUTION * float(np.finfo(low).eps)) ** 2 * norm2:
            # As in memory: single precision cannot resolve the subspace of a nearly
            # exactly low-rank A; the last (full-precision) pass's basis spans its range or
            # row space to working precision, and one more full pass from it is exact.
            right, _, basis, _ = result
            if right:
                factors = _ritz_factors_any(full.rmm(basis), xp)
                U, s, Vt = _ritz_svd_any(basis, factors, k)
            else:
                Q, R = _orth_any(full.mm(basis)[0], xp, 2, True)
                U, s, Vt = _from_pass((True, basis, Q, R), k, xp)
    return U, s, Vt, norm2


class _DaskKrylovUnion(_KrylovUnion):
    """:class:`sparselin.linalg._iterations._KrylovUnion` over dask blocks.

    The long-side blocks stay on the cluster: their Gram matrices are one small reduction
    each, the combinations stay lazy, and the QRs are :func:`_orth_any`'s.
    """

    def _gram(self, blocks: list) -> np.ndarray:
        if not _is_dask(blocks[0]):
            with _small_ops(self.xp):
                return super()._gram(blocks)
        W = dask_array_module().concatenate(blocks, axis=1)
        G = _host((conj_t(W) @ W).compute())
        return G.astype(np.promote_types(G.dtype, np.float64))

    def _combine(self, blocks: list, parts: list) -> Any:
        out = None
        for B, P in zip(blocks, parts, strict=True):
            term = _dot(B, self.xp.asarray(P))
            out = term if out is None else out + term
        return out

    def _qr(self, Y: Any) -> tuple[Any, Any]:
        return _orth_any(Y, self.xp, 2, True)


def _sketch_passes(
    A: Any, tall: bool, xp: types.ModuleType, low: np.dtype | None, c: float
) -> tuple[_Passes, _Passes, float]:
    """``(full, ops, energy_factor)``: passes over A, and over the sketch's copy ``c A``.

    Without ``low``, ``ops`` is ``full``. With it, ``ops`` reads ``c A`` cast to ``low``
    chunk by chunk as A is read (never stored), and measures the norm of A itself.
    """
    full = _Passes(A, tall, xp)
    if low is None:
        return full, full, 1.0
    meta = A._meta.astype(low)
    S = A.map_blocks(_low_copy_block, low, c, dtype=low, meta=meta)
    ops = _Passes(S, tall, xp, norm_of=A)
    # The first pass, which measures the norm that c depends on, guards its products.
    ops.first = A.map_blocks(_low_copy_block, low, c, True, dtype=low, meta=meta)
    ops.cast = (A, low, c)
    return full, ops, 1.0 / (c * c)  # the sketch holds c A


def _check_first_norm(
    norm2: float, dtype: np.dtype, check_range: bool, mixed: bool, c: float, size: int
) -> None:
    """Raise :class:`_OutOfRange` or :class:`_Rescale` as the first pass's norm calls for."""
    info = np.finfo(dtype)
    in_range = float(info.tiny) * 1e10 < norm2 < float(info.max) * 1e-10
    if not math.isfinite(norm2) or (check_range and not in_range):
        raise _OutOfRange
    if mixed:
        factor = _sketch_factor(norm2, size)
        if factor != c:
            raise _Rescale(factor)


# The fused last pass keeps ``B = R^-H W^H`` (``W = A^H Y``, ``Y = A X = Q R``) while
# ``cond(R) <= eps**-FUSED_COND_EXPONENT`` (1.9e6 in float64, 580 in float32), else it forms
# Q from Y and B = Q^H A in one more pass. The rounding error of the fused B is bounded by
# about eps * cond(R) * ||A|| (against eps * ||A|| for B = Q^H A), a bound far from tight:
# measured on 3000 x 200 matrices with geometric spectra (k = 20, l = 30, n_iter = 1), the
# fused result's true error equals the two-pass one to 1e-14 (float64, cond(R) up to 3e7)
# and 3e-9 (float32, up to 1e4) relative, its singular values to 1e-15 / 1.2e-7 * s_1. The
# limit stays below CholeskyQR2's reach (eps**-0.5), where R itself becomes unreliable and
# the condition number read from it saturates.
FUSED_COND_EXPONENT = 0.4


def _fused_cond_limit(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).eps) ** -FUSED_COND_EXPONENT


def _cond(R: Any, xp: types.ModuleType) -> float:
    """The 2-norm condition number of a small matrix (inf when singular)."""
    with _small_ops(xp):
        sv = _host(small_svd(R, xp, compute_uv=False)).astype(np.float64)
    if not sv.size or not sv[-1] > 0.0 or not math.isfinite(float(sv[0])):
        return math.inf
    return float(sv[0] / sv[-1])


def _iterate_fused(
    A: Any,
    tall: bool,
    xp: types.ModuleType,
    Omega: Any,
    k: int,
    n_iter: int,
    check_range: bool,
    low: np.dtype | None = None,
    c: float = 1.0,
    persist: bool = False,
) -> tuple[Any, Any, Any, float]:
    """A fixed number of power iterations in fewer passes; returns ``U, s, Vt, ||A||_F^2``.

    The basis is that of the in-memory scheme, ``Q = orth(A (A^H A)^q Omega)`` (the same
    test matrix), but the passes are arranged differently:

    * Tall A (row chunks): each power step ``X <- orth(A^H (A X))`` is one pass (every task
      makes both products with its chunk, see :meth:`_Passes.gram_step`), on the sketch's
      copy where ``low`` is given; ``X`` is n x l, orthonormalised in memory. The last pass,
      in A's precision, makes ``Y = A X`` (kept on the workers), ``W = A^H Y`` and
      ``G = Y^H Y`` together. With ``Y = Q R`` (CholeskyQR2 from ``G`` and one Gram of the
      kept ``Y``, not of A), ``B = Q^H A = R^-H W^H``, and ``U = Y R^-1 U_B``: q power
      iterations cost q + 1 passes instead of 2 q + 2. While ``cond(R)`` is above
      :data:`FUSED_COND_EXPONENT`'s limit (predicted from the last power step, and checked on
      ``R`` itself) ``Q`` is made from ``Y`` as in memory and ``B = Q^H A`` in one more pass.
    * Wide A (column chunks): ``Y = A Omega`` (one pass), q power steps
      ``X <- orth(A (A^H X))`` of one pass each, then ``B^H = A^H Q`` in A's precision:
      q + 2 passes instead of 2 q + 2, and the Rayleigh-Ritz step of the in-memory code.

    The results equal the in-memory ones up to the rounding of the power steps (the
    products are the same, grouped differently). On a tall A whose fused pass succeeds,
    ``U`` comes back as :class:`_Signed` (signs applied, persisted with ``persist``) and
    ``Vt`` with the same signs (see :func:`_fused_tail`).
    """
    full, ops, _ = _sketch_passes(A, tall, xp, low, c)
    mixed = ops is not full
    m, n = A.shape
    dtype = np.dtype(A.dtype)
    limit = _fused_cond_limit(dtype)
    norm2: float | None = None
    if not tall:
        P, norm2 = ops.mm(Omega, with_norm=True)
        assert norm2 is not None
        _check_first_norm(norm2, dtype, check_range, mixed, c, m * n)
        for _ in range(n_iter):
            with _small_ops(xp, P.size):
                X = orth(P, xp)
            P = ops.gram_step(X)[0]
        with _small_ops(xp, P.size):
            Q = orth(P.astype(dtype, copy=False), xp)
        factors = _ritz_factors_any(full.rmm(Q), xp)
        U, s, Vt = _ritz_svd_any(Q, factors, k)
        if mixed and norm2:
            err2 = max(norm2 - float(xp.sum(s.astype(np.float64) ** 2)), 0.0)
            if err2 < (ENERGY_RESOLUTION * float(np.finfo(low).eps)) ** 2 * norm2:
                # As in memory: single precision cannot resolve the range of a nearly
                # exactly low-rank A; the basis of the full-precision B^H spans its row space
                # to working precision, and one more full-precision pass from it is exact.
                basis = factors[0]
                Q2, R2 = _orth_any(full.mm(basis)[0], xp, 2, True)
                U, s, Vt = _from_pass((True, basis, Q2, R2), k, xp)
        return U, s, Vt, norm2
    X = Omega
    predicted = 1.0
    for step in range(n_iter):
        Z, got = ops.gram_step(X, with_norm=step == 0)
        if got is not None:
            norm2 = got
            _check_first_norm(norm2, dtype, check_range, mixed, c, m * n)
        with _small_ops(xp, Z.size):
            X, Rz = orth(Z, xp, return_r=True)
            # Z = A^H A X: its singular values are about the squares of those of A X.
            predicted = math.sqrt(_cond(Rz, xp))
    if X.dtype != dtype:
        X = X.astype(dtype)
        if n_iter:
            with _small_ops(xp, X.size):
                X = orth(X, xp)  # orthonormal in A's precision: cond(A X) stays A's top's
    if predicted > limit:
        # (n_iter >= 1 here: the norm is known.) No W: it would be wasted work.
        Y = full.mm(X)[0]
    else:
        Y, _, G, got, WG = full.fused_final(X, with_norm=norm2 is None)
        if got is not None:  # n_iter = 0: this is the first pass
            norm2 = got
            _check_first_norm(norm2, dtype, check_range, False, c, m * n)
        with _small_ops(xp):
            R1 = _cholesky_upper(G, xp)
            fits = R1 is not None and _cond(R1, xp) <= limit
        if fits:
            done = _fused_tail(Y, WG[:n], R1, k, xp, persist)
            if done is not None:
                assert norm2 is not None
                U, s, Vt = done
                return _Signed(U), s, Vt, norm2
    assert norm2 is not None
    # Y is too ill-conditioned for B = R^-H W^H: orthonormalise it as in memory (tsqr where
    # CholeskyQR2 cannot) and form B = Q^H A in one more pass.
    Q, _ = _orth_any(Y, xp, 2, True)
    factors = _ritz_factors_any(full.rmm(Q), xp)
    U, s, Vt = _ritz_svd_any(Q, factors, k)
    return U, s, Vt, norm2


class _Signed:
    """A dask ``U`` whose columns already follow the sign rule (``Vt`` came signed with it)."""

    def __init__(self, U: Any) -> None:
        self.U = U


def _small_ops(xp: types.ModuleType, n_entries: int | None = None) -> Any:
    """BLAS at one thread for the client's small factorisations between passes.

    They are l x l or n x l pieces; at the default threads OpenBLAS splits them across a
    pool whose workers then busy-wait on the cores the dask workers need (on the 2-core
    benchmark machine, loaded: the 60 x 2000 SVD after the last pass took 0.73 s at the
    default threads, against 4 ms at one thread idle). Limited only around these calls, never
    around a ``compute``: local schedulers run A's tasks in this process.
    """
    return host_blas_limited(xp, n_entries)


def _fused_tail(
    Y: Any, W: Any, R1: Any, k: int, xp: types.ModuleType, persist: bool
) -> tuple[Any, Any, Any] | None:
    """``U, s, Vt`` of the fused last pass from ``Y`` and ``R1``, in one submitted graph.

    CholeskyQR2's second Gram (of ``Q1 = Y R1^-1``, blockwise on the kept ``Y``), its
    Cholesky factor ``R2``, the SVD of ``B = R^-H W^H`` (``R = R2 R1``; one small task that
    takes ``W`` from the cluster), ``U = Q1 (R2^-1 U_B)`` and the sign rule
    (:func:`_apply_sign_rule`) are one graph: the client waits once, not once per step, and
    each ``Q1_i`` feeds both its Gram partial and its block of ``U`` (the same product, so
    the same rounding that R2 corrects). Returns None where ``Q1``'s Gram is not positive
    definite (the caller then orthonormalises ``Y`` as in memory).
    """
    da = dask_array_module()
    dask = importlib.import_module("dask")
    l = Y.shape[1]
    dtype = np.dtype(Y.dtype)
    with _small_ops(xp):
        R1inv = _triangular_inverse(R1, xp)
    Q1 = Y.map_blocks(_times_matrix, R1inv, dtype=dtype, meta=Y._meta)
    G2 = conj_t(Q1) @ Q1
    small = dask.delayed(_fused_small_factors, pure=True)(G2, W, R1, k)
    M = da.from_delayed(small[1], shape=(l, k), dtype=dtype, meta=Y._meta)
    U = da.blockwise(
        _block_product,
        "ij",
        Q1,
        "iz",
        M,
        "zj",
        concatenate=False,  # one block each along z: nothing to join (and no copy)
        dtype=dtype,
        meta=Y._meta,
    )

    def rebuild(extra: list) -> Any:
        # compute=False: the same blocks Q1_i @ M, with M now an in-memory literal.
        return Q1.map_blocks(_times_matrix, extra[0][1], dtype=dtype, meta=Y._meta)

    U, f, extra = _apply_sign_rule(U, persist, extra=(small,), rebuild=rebuild)
    ok, _, s, wh = extra[0]
    if not ok:
        return None
    return U, s, wh * f.conj()[:, None]


def _fused_small_factors(G2: Any, W: Any, R1: Any, k: int) -> tuple[bool, Any, Any, Any]:
    """``(ok, R2^-1 U_B[:, :k], s[:k], Vt[:k])`` of :func:`_fused_tail`, one small task."""
    xp = namespace(G2)
    R2 = _cholesky_upper(G2, xp)
    if R2 is None:
        return False, xp.zeros((G2.shape[0], k), dtype=W.dtype), None, None
    R2inv = _triangular_inverse(R2, xp)
    u, s, wh = small_svd(conj_t(W @ _triangular_inverse(R2 @ R1, xp)), xp)
    return True, R2inv @ u[:, :k], s[:k], wh[:k]


def _times_matrix(block: Any, M: Any) -> Any:
    return block @ M


def _block_product(X: Any, M: Any) -> Any:
    """``X_i @ M`` of blockwise operands given as one-element lists (see :func:`_single`)."""
    return _single(X) @ _single(M)


def _apply_sign_rule(
    U: Any, persist: bool, extra: tuple = (), rebuild: Any = None
) -> tuple[Any, Any, list]:
    """The sign rule of :func:`sparselin.linalg._dense.flip_signs` on a lazy, row-chunked ``U``.

    One graph: every block of ``U`` also gives, per column, its largest and smallest entry
    and their rows (complex: its largest ``|entry|``, row and value); one small task picks
    the first largest ``|entry|`` of each column from those and returns the factor its
    column is multiplied by (``+-1``, or the conjugate phase of that entry); the signed
    blocks are made from the unsigned ones. With ``persist`` the signed ``U`` is persisted
    and the factors, with the small collections in ``extra``, come back from the same
    submission: ``U`` is made once and the client waits once. Without it only the factors
    (and ``extra``) are computed, and the ``U`` returned stays lazy: the unsigned blocks
    (``rebuild(extra)`` if given, else ``U``) times the factors, the same operations.

    Returns ``(U signed, factors in memory, computed extra)``; ``Vt``'s rows take the
    conjugate factors.
    """
    da = dask_array_module()
    dask = importlib.import_module("dask")
    if U.numblocks[1] != 1:
        U = U.rechunk({1: -1})
    k = U.shape[1]
    dtype = np.dtype(U.dtype)
    complex_ = dtype.kind == "c"
    stats_dtype = np.dtype(np.complex128 if complex_ else np.float64)
    nb = U.numblocks[0]
    starts = tuple(int(x) for x in np.cumsum((0, *U.chunks[0][:-1])))
    stats = U.map_blocks(
        _sign_stats_block,
        starts,
        new_axis=[1],
        chunks=((1,) * nb, (3 if complex_ else 4,), (k,)),
        dtype=stats_dtype,
        meta=U._meta[:0, :0].astype(stats_dtype)[None],
    )
    f = stats.rechunk({0: -1}).map_blocks(
        _sign_factors,
        dtype,
        drop_axis=[0, 1],
        chunks=((k,),),
        dtype=dtype,
        meta=U._meta.reshape(-1)[:0],
    )
    if persist:
        signed = da.blockwise(_times_row, "ij", U, "ij", f, "j", dtype=dtype, meta=U._meta)
        signed, f, *rest = dask.persist(signed, f, *extra)
        f, *rest = dask.compute(f, *rest)
        return signed, f, rest
    f, *rest = dask.compute(f, *extra)
    base = rebuild(rest) if rebuild is not None else U
    return base.map_blocks(_times_row, f, dtype=dtype, meta=U._meta), f, rest


def _sign_stats_block(U: Any, starts: tuple, block_id: Any = None) -> Any:
    """Per column of one row block: ``[max, its row, min, its row]`` (1 x 4 x k, float64);
    complex: ``[max |entry|, its row, that entry]`` (1 x 3 x k, complex128). Rows are
    global (``starts`` holds each block's first row); ties go to the first row."""
    xp = namespace(U)
    rows, k = U.shape
    offset = starts[block_id[0]]
    cols = xp.arange(k)
    complex_ = U.dtype.kind == "c"
    out = xp.zeros((1, 3 if complex_ else 4, k), dtype=np.complex128 if complex_ else np.float64)
    if rows == 0:
        # An empty block never wins: its maxima are -inf (and its minimum +inf).
        out[0, 0] = -np.inf
        if not complex_:
            out[0, 2] = np.inf
        return out
    if complex_:
        a = xp.abs(U)
        i = xp.argmax(a, axis=0)
        out[0, 0] = a[i, cols]
        out[0, 1] = i + offset
        out[0, 2] = U[i, cols]
        return out
    i = xp.argmax(U, axis=0)
    j = xp.argmin(U, axis=0)
    out[0, 0] = U[i, cols]
    out[0, 1] = i + offset
    out[0, 2] = U[j, cols]
    out[0, 3] = j + offset
    return out


def _sign_factors(stats: Any, dtype: np.dtype) -> Any:
    """The factor each column of U is multiplied by, from the blocks' ``stats`` (nb x r x k).

    The first largest ``|entry|`` of a column is the first maximum or the first minimum,
    whichever is larger in magnitude (the earlier one on a tie); the earliest block holding
    the column's maximum holds its first maximum. An all-zero column keeps its sign.
    """
    xp = namespace(stats)
    k = stats.shape[2]
    cols = xp.arange(k)
    if np.dtype(dtype).kind == "c":
        pivots = stats[xp.argmax(stats[:, 0].real, axis=0), 2, cols].astype(dtype)
        mag = xp.abs(pivots)
        phase = xp.where(mag > 0, pivots / xp.where(mag > 0, mag, 1), 1).astype(dtype)
        return phase.conj()
    b_max = xp.argmax(stats[:, 0], axis=0)
    b_min = xp.argmin(stats[:, 2], axis=0)
    v_max, i_max = stats[b_max, 0, cols], stats[b_max, 1, cols]
    v_min, i_min = -stats[b_min, 2, cols], stats[b_min, 3, cols]
    use_max = (v_max > v_min) | ((v_max == v_min) & (i_max < i_min))
    use_max |= (v_max == 0) & (v_min == 0)  # an all-zero column keeps its sign, as in memory
    return xp.where(use_max, 1, -1).astype(dtype)


# An entry beyond this makes A's rms entry exceed 2**16 whatever its size (up to 2**160
# entries), so a copy made with c = 1 is certainly rerun with another c.
_RESCALED_ENTRY = 2.0**100


def _low_copy_block(block: Any, dtype: np.dtype, c: float, guard: bool = False) -> Any:
    """A chunk of ``c A`` in the sketch's precision, made from the chunk as it is read.

    Scaled and rounded once, without a full-precision temporary (as ``_low_precision_copy``
    in memory). ``guard`` (first pass, c = 1 not yet confirmed): a chunk with entries that
    call for another ``c`` becomes zeros, since the pass is rerun anyway, and its products
    would overflow the lower precision and only raise warnings.
    """
    if guard and c == 1.0 and block.size:
        amax = float(abs(block).max())
        if not amax <= _RESCALED_ENTRY:  # NaN too: the first pass reports it from A's norm
            return namespace(block).zeros(block.shape, dtype=dtype)
    if not isinstance(block, np.ndarray):
        return (block * c).astype(dtype) if c != 1.0 else block.astype(dtype)
    out = np.empty_like(block, dtype=dtype)
    np.multiply(block, c, out=out, casting="unsafe")
    return out


def _from_pass(result: tuple, k: int, xp: types.ModuleType) -> tuple[Any, Any, Any]:
    """As :func:`sparselin.linalg._iterations._from_pass`, with dask or in-memory blocks."""
    right, X, basis, R = result
    with _small_ops(xp):
        u, s, wh = small_svd(R if right else conj_t(R), xp)
    if right:
        U = _dot(basis, u[:, :k])
        Vt = _dot(wh[:k], conj_t(X))
    else:
        U = _dot(X, u[:, :k])
        Vt = _dot(wh[:k], conj_t(basis))
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
    *,
    err2: float | None = None,
    want_error: bool = False,
    persist: bool = False,
) -> tuple[Any, Any, Any, float]:
    """Error, cutoff, sign rule and output types: dask U with A's row chunks, in-memory Vt.

    ``err2`` is the squared error when the caller knows it (fixed accuracy), else it comes
    from the energy identity; where that is below the identity's resolution and the error
    is asked for, it is measured on the entries of A (one more pass), as in memory. ``U``
    may come as :class:`_Signed` (signs applied, ``Vt`` signed with it). With ``persist``
    the returned ``U`` is persisted.
    """
    da = dask_array_module()
    dtype = np.dtype(A.dtype)
    real = np.finfo(dtype).dtype
    signed = isinstance(U, _Signed)
    if signed:
        U = U.U
    if err2 is None:
        err2 = max(norm2 - float(xp.sum(s.astype(np.float64) ** 2)), 0.0)
    if want_error and norm2 and err2 <= ENERGY_RESOLUTION * eps * norm2:
        # U and Vt are either both signed or both not: their product is the same.
        err2 = _residual2(A, _scale_columns(U, s.astype(dtype)), Vt)
    rel = math.sqrt(err2 / norm2) if norm2 else 0.0
    s = _unscale(s.astype(real, copy=False), scale, xp, 5)
    if s.shape[0] and math.isfinite(float(s[0])):
        cutoff = float(s[0]) * (ZERO_CUTOFF * eps)
        s = xp.where(s > cutoff, s, 0).astype(real)
    if _is_dask(Vt):
        Vt = Vt.compute()
    Vt = xp.ascontiguousarray(Vt.astype(dtype, copy=False))
    if signed:
        return U, s, Vt, rel
    if not _is_dask(U):
        # Wide A: U is small; the in-memory rule applies as is.
        U = xp.ascontiguousarray(U.astype(dtype, copy=False))
        with _small_ops(xp, U.size):
            U, Vt = flip_signs(U, Vt, xp)
        U = da.from_array(U, chunks=(A.chunks[0], U.shape[1]), asarray=False)
        return (U.persist() if persist else U), s, Vt, rel
    U = U.astype(dtype)
    if U.shape[1] == 0:
        return (U.persist() if persist else U), s, Vt, rel
    # The sign rule of flip_signs (largest |entry| of each column of U real and positive,
    # the first one on a tie), in the graph that makes U.
    U, f, _ = _apply_sign_rule(U, persist)
    Vt *= f.conj()[:, None]
    return U, s, Vt, rel


def _host(a: Any) -> np.ndarray:
    return np.asarray(to_numpy(a))  # to_numpy: the one home of device-to-host copies


# --- Streaming: one pass over the blocks of a dask array, each block computed once ---------


def check_dask_stream(X: Any, name: str, axis: int, width: int | None = None) -> None:
    """Check a dask matrix to be streamed along ``axis``, computing nothing.

    The other dimension must be known (it is the width of every block, and of the factors);
    the streamed one may be unknown (NaN chunks after boolean indexing): each block's size
    is learned when it is computed. Chunks along the other dimension are allowed, since a
    block is a whole band of the matrix; each band is computed as one array.
    """
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got a dask array with ndim={X.ndim}")
    other = 1 - axis
    if math.isnan(X.shape[other]):
        raise ValueError(
            f"{name} has unknown chunk sizes along axis {other} (shape {X.shape}); call "
            f"{name}.compute_chunk_sizes() first"
        )
    if X.shape[other] == 0 or X.shape[axis] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {X.shape}")
    if X.dtype.kind not in "biufc":
        raise TypeError(f"{name} must hold numbers, got dtype {X.dtype}")
    if width is not None and X.shape[other] != width:
        what = "columns" if axis == 0 else "rows"
        raise ValueError(f"{name} must have {width} {what}, got shape {X.shape}")


def stream_blocks(X: Any, axis: int, size: int | None = None) -> Iterator[Any]:
    """The bands of a dask matrix along ``axis``, in order, each computed once.

    ``size`` re-cuts the bands to that many rows (``axis=0``) or columns first (the last
    band may be shorter), which needs known chunk sizes along ``axis``. While a band is
    being used, the next one is already being computed (on the active dask scheduler, from
    a helper thread), so reading overlaps with the work done on the data; at most two bands
    are in memory at a time. Empty bands are skipped.
    """
    if size is not None:
        if any(math.isnan(c) for c in X.chunks[axis]):
            raise ValueError(
                f"a batch size needs known chunk sizes; call X.compute_chunk_sizes() first "
                f"(shape {X.shape})"
            )
        X = X.rechunk({axis: size})
    count = X.numblocks[axis]

    def band(i: int) -> Any:
        return X.blocks[i] if axis == 0 else X.blocks[:, i]

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(band(0).compute)
        try:
            for i in range(count):
                block = pending.result()
                if i + 1 < count:
                    pending = pool.submit(band(i + 1).compute)
                if block.shape[axis]:  # boolean indexing can leave a chunk empty
                    yield block
                del block
        finally:
            pending.cancel()


def svd_update_dask(
    U: Any, s: Any, Vt: Any, C: Any, *, axis: int, k: Any, reorthogonalize_first: Any
) -> tuple[Any, Any, Any]:
    """:func:`sparselin.svd_update` with a dask ``C``: one update per block of ``C``.

    ``C`` is read once, band by band along the appended axis (column blocks for
    ``axis=1``, row blocks for ``axis=0``); the result equals calling ``svd_update`` on the
    bands in turn (each update truncates to ``k``). ``U``, ``s`` and ``Vt`` stay in memory.
    """
    from ._svd_update import (
        _as_2d,
        _check_orthonormal,
        _check_svd_triplet,
        _max_abs,
        _svd_update_core,
        reorthogonalize,
    )

    dask_array_module()
    U = _as_2d(U, "U")
    Vt = _as_2d(Vt, "Vt")
    s = _as_2d(s, "s")
    xp = namespace(U, s, Vt)
    m, r, n = _check_svd_triplet(U, s, Vt)
    if C.ndim == 1:
        C = C[:, None] if axis == 1 else C[None, :]
    # Columns are appended along C's axis 1, rows along its axis 0.
    check_dask_stream(C, "C", axis, width=m if axis == 1 else n)
    dtype = np.result_type(result_dtype(U.dtype), result_dtype(Vt.dtype), result_dtype(C.dtype))
    k = r if k is None else check_int(k, "k", low=1)
    real = np.finfo(dtype).dtype
    U = U.astype(dtype, copy=False)
    Vt = Vt.astype(dtype, copy=False)
    s = s.astype(real, copy=False)
    if reorthogonalize_first:
        U, s, Vt = reorthogonalize(U, s, Vt)
    else:
        _check_orthonormal(U, "U", xp)
        _check_orthonormal(conj_t(Vt), "Vt", xp)
    # Appending rows to A is appending columns to A^H: the loop runs on A^H's factors.
    L, R = (U, Vt) if axis == 1 else (conj_t(Vt), conj_t(U))
    rows = L.shape[0]
    for block in stream_blocks(C, 1 if axis == 1 else 0):
        block = _as_2d(block, "C").astype(dtype, copy=False)
        if axis == 0:
            block = conj_t(block)
        if namespace(block) is not xp:
            raise TypeError("C's chunks must be on the same device as U, s and Vt")
        c_max = _max_abs(block, xp)
        if not np.isfinite(c_max):
            raise ValueError("C contains NaN or infinity")
        c = block.shape[1]
        step_k = min(k, rows, R.shape[1] + c)
        L, s, R = _svd_update_core(L, s, R, block, step_k, xp, c_max=c_max)
    if axis == 1:
        return L, s, R
    return xp.ascontiguousarray(conj_t(R)), s, xp.ascontiguousarray(conj_t(L))


# --- Estimators: lazy projections and blockwise statistics ---------------------------------


def lazy_product(X: Any, W: Any, width: int, what: str) -> Any:
    """``X @ W`` for a dask ``X``, lazy, with X's row chunks; NaN/inf raise when computed.

    ``width`` is the number of columns X must have (``what`` names them in the error). The
    finiteness check is a blockwise map fused into the product's tasks, so it costs no
    extra pass and nothing is computed here.
    """
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got a dask array with ndim={X.ndim}")
    if math.isnan(X.shape[1]):
        raise ValueError(
            f"X has unknown chunk sizes along axis 1 (shape {X.shape}); call "
            "X.compute_chunk_sizes() first"
        )
    if X.shape[1] != width:
        raise ValueError(f"X has {X.shape[1]} features, but {what} {width} features as input.")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
    checked = X.map_blocks(_finite_block, dtype=X.dtype, meta=X._meta)
    return _dot(checked, W)


def _finite_block(block: Any) -> Any:
    if not bool(namespace(block).isfinite(block).all()):
        raise ValueError("Input X contains NaN or infinity.")
    return block


def column_variances(X: Any, X_new: Any) -> tuple[Any, float]:
    """Variances of the columns of ``X_new`` and the sum of those of ``X``, in one pass.

    Both are dask reductions of per-chunk moments (no chunk is held beyond its task), and
    ``X_new``, a product with X, shares its reads of X with the second one.
    """
    da = dask_array_module()
    dask = importlib.import_module("dask")
    exp_var, full_var = dask.compute(da.var(X_new, axis=0), da.var(X, axis=0).sum())
    return exp_var, float(full_var)
