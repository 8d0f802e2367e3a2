"""Concatenated-matrix SVD: error bounds and the incremental error estimator.

A collection ``A_1 ... A_N`` of matrices with the same number of rows ``m`` is compressed by
keeping a rank-``r`` truncated SVD of the concatenation ``M = [A_1 ... A_N]``. This module
answers "how large is the optimal rank-``r`` error of ``M``?" without forming ``M``:

* :func:`concat_error_bounds` -- two provable upper bounds built from per-block quantities
  (Weyl-type monotonicity; singular values of incremental residuals), and optionally the exact
  error;
* :func:`estimate_concat_error` and :class:`ConcatErrorEstimator` -- the incremental truncated
  SVD estimator, which tracks the dominant singular values of the growing concatenation with
  :func:`sparselin.svd_update` and never stores ``M``.

Reference: M. Shamrai, "Concatenated Matrix SVD: Compression Bounds, Incremental
Approximation, and Error-Constrained Clustering", arXiv:2601.11626, 2026.

Every bound has the form ``e_r(M) <= sqrt(max(0, ||M||_F^2 - L) / ||M||_F^2)`` for a lower
bound ``L <= T_r(M)`` on the top-``r`` energy ``T_r(M) = sum_{i<=r} sigma_i(M)^2``: the energy
``||M||_F^2 = sum_j ||A_j||_F^2`` is exact, so the methods differ only in how they get ``L``.
The private state classes below (``_NormBoundState``, ``_ProjectionState``,
``_ResidualState``, ``_EstimateState``, ``_ExactState``) share one small protocol (``propose``
a block, ``commit`` the proposal) so that :mod:`sparselin.linalg._cluster` drives all of them
with one greedy loop.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._array import namespace, to_numpy
from .._threads import host_blas_limited
from .._validation import (
    check_int,
    check_matrix,
    check_random_state,
    check_real,
    squared_norm,
)
from ._svd_update import _svd_update_core
from ._truncated_svd import _truncated_svd_core

__all__ = [
    "ConcatErrorBounds",
    "ConcatErrorEstimator",
    "concat_error_bounds",
    "estimate_concat_error",
]

# Residual directions whose singular value is below this many units of roundoff (times
# sqrt(max(m, width)), the growth of rounding errors in the products that form a residual)
# of the running scale are numerical noise: they are not added to the span basis, which would
# otherwise lose orthogonality. Their (tiny) singular values still enter the bound.
_NOISE_ULPS = 8.0
# The estimator re-orthonormalises its basis every this many updates: each Brand update
# loses a little orthogonality, and a thousand single-column updates would otherwise drift.
_REORTH_EVERY = 64
# Energies are accumulated in float64; a collection whose squared norms leave this range is
# rescaled by a power of two (exact) first.
_ENERGY_LOW = 1e-250
_ENERGY_HIGH = 1e250


# --------------------------------------------------------------------------------------------
# Validation at the public edge
# --------------------------------------------------------------------------------------------


class _Collection:
    """A validated collection: dense 2-D arrays of one namespace and dtype, same row count.

    ``norms2`` are the squared Frobenius norms times ``scale**2`` (float64), where ``scale``
    is a power of two keeping the energies inside float64's range.
    """

    def __init__(self, mats: list, xp: types.ModuleType, norms2: list[float], scale: float):
        self.mats = mats
        self.xp = xp
        self.norms2 = norms2
        self.scale = scale
        self.m = mats[0].shape[0]
        self.widths = [A.shape[1] for A in mats]
        self.dtype = mats[0].dtype


def _as_list(mats: Any, name: str) -> list:
    if isinstance(mats, (str, bytes, dict)) or not isinstance(mats, Iterable):
        raise TypeError(
            f"{name} must be a sequence of 2-D arrays (a list or tuple), got {type(mats).__name__}"
        )
    if getattr(mats, "ndim", None) is not None and mats.ndim != 3:
        raise ValueError(
            f"{name} must be a sequence of 2-D arrays or a 3-D stack of them, got an array "
            f"with ndim={mats.ndim}"
        )
    out = list(mats)
    if not out:
        raise ValueError(f"{name} must hold at least one matrix, got an empty collection")
    return out


def _check_block(A: Any, name: str) -> tuple[Any, float]:
    A, kind, norm2 = check_matrix(A, name, allow_operator=False)
    if kind != "dense":
        raise TypeError(f"{name} must be a dense NumPy or CuPy array, got a sparse matrix")
    if A.dtype.kind == "c":
        raise TypeError(
            f"{name} is complex; stack its real and imaginary parts as rows "
            "(np.vstack([A.real, A.imag])) to compress it as a real matrix"
        )
    return A, norm2


def _energy_scale(mats: list, norms2: list[float], xp: types.ModuleType) -> float:
    """Power of two bringing the squared norms into float64's comfortable range (1 usually)."""
    if all(_ENERGY_LOW < v < _ENERGY_HIGH for v in norms2):
        return 1.0
    # A zero norm may be an all-zero block or squares that underflowed (entries near 1e-200):
    # only the entries tell.
    amax = max(float(xp.abs(A).max()) for A in mats)
    if amax == 0.0 or _ENERGY_LOW < amax * amax < _ENERGY_HIGH / max(A.size for A in mats):
        return 1.0
    return float(np.ldexp(1.0, -int(np.frexp(amax)[1])))


def _check_collection(mats: Any, name: str = "mats") -> _Collection:
    """Validate ``mats`` once: the only place the concat/cluster family checks its input."""
    items = _as_list(mats, name)
    checked, norms2 = [], []
    # The norms of many small blocks are as many small BLAS calls (see _small_calls): on the
    # loaded 2-core machine, validating 200 blocks of 256 x 64 took 4.7 s at the default
    # threads and 0.07 s at one thread.
    shapes = [getattr(A, "shape", ()) for A in items]
    host = all(isinstance(A, np.ndarray) for A in items) and all(len(t) == 2 for t in shapes)
    xp_guess = np if host else None
    rows = max((t[0] for t in shapes), default=0) if host else 0
    with _small_calls(xp_guess, rows, [t[1] for t in shapes] if host else []):
        for i, A in enumerate(items):
            A, n2 = _check_block(A, f"{name}[{i}]")
            checked.append(A)
            norms2.append(n2)
    m = checked[0].shape[0]
    for i, A in enumerate(checked):
        if A.shape[0] != m:
            raise ValueError(
                f"{name}[{i}] has {A.shape[0]} rows but {name}[0] has {m}: matrices that are "
                "concatenated side by side must have the same number of rows (transpose them "
                "to share columns instead)"
            )
    xp = namespace(*checked)
    dtype = np.result_type(*[A.dtype for A in checked])
    checked = [A.astype(dtype, copy=False) for A in checked]
    scale = _energy_scale(checked, norms2, xp)
    if scale != 1.0 or dtype != np.float64:
        norms2 = [_norm2(A, scale) for A in checked]
    return _Collection(checked, xp, norms2, scale)


def _norm2(A: Any, scale: float) -> float:
    """``||scale * A||_F^2`` summed in float64 whatever A's precision.

    The errors are differences of energies; a float32 sum (relative error about 1e-7)
    would put a floor of ``sqrt(1e-7)`` = 3e-4 under every relative error it enters.
    """
    if scale != 1.0:
        return squared_norm(A, scale)  # sums in float64 itself
    return squared_norm(_f64(A))


def _check_rank(rank: Any) -> int:
    return check_int(rank, "rank", low=1)


# --------------------------------------------------------------------------------------------
# Small shared pieces (no validation below this line)
# --------------------------------------------------------------------------------------------


def _small_calls(xp: types.ModuleType | None, m: int, widths: Iterable[int]) -> Any:
    """One BLAS thread for NumPy blocks of at most SMALL_PROBLEM_ENTRIES (see _threads)."""
    return host_blas_limited(xp, m * max(widths, default=0))


def _energy(s: Any, scale: float) -> np.ndarray:
    """Squared singular values (times scale**2) on the host, in float64, descending."""
    v = np.asarray(to_numpy(s), dtype=np.float64) * scale
    return np.sort(v * v)[::-1]


def _relative(err2: float, tot: float) -> float:
    """``sqrt(err2 / tot)`` with round-off below zero clamped (0 for a zero collection)."""
    if tot <= 0.0:
        return 0.0
    return math.sqrt(min(max(err2, 0.0) / tot, 1.0))


def _f64(A: Any) -> Any:
    """``A`` in float64 (no copy if it already is): every bound is computed in float64.

    A float32 collection's values are exact in float64, so its bounds and errors are those of
    the data, not of float32 arithmetic: in float32, the rounding of the singular values
    alone (about ``eps_32 sigma_1``) hides relative errors below ``sqrt(eps_32)`` = 3e-4, and
    a bound of 0 was reported where the exact error was 5e-5.
    """
    return A if A.dtype == np.float64 else A.astype(np.float64)


def _orthonormal(U: Any, xp: types.ModuleType) -> Any:
    """An exactly orthonormal float64 basis of the span of ``U`` (QR, for the bounds)."""
    return xp.linalg.qr(_f64(U), mode="reduced")[0]


def _outside2(A: Any, U: Any, scale: float) -> float:
    """``||(I - U U^T) A||_F^2`` (times scale**2), formed explicitly in float64, projected twice.

    Never as ``||A||^2 - ||U^T A||^2``: for a block nearly inside ``span(U)`` that difference
    cancels, and its round-off (``eps ||A||^2``) can exceed the energy outside, which a bound
    must not lose. Twice is enough (Kahan): one pass leaves a part along ``U`` of order
    ``eps ||A||``.
    """
    A = _f64(A)
    if U is None or U.shape[1] == 0:
        return squared_norm(A, scale)
    R = A - U @ (U.T @ A)
    R = R - U @ (U.T @ R)
    return squared_norm(R, scale)


def _head_outside(A: Any, r: int, scale: float, rng: Any) -> tuple[float, Any]:
    """An upper bound on ``E_r(A)^2`` (times scale**2) and the orthonormal basis it comes from.

    A block of width or height at most ``r`` has ``E_r(A) = 0``. Otherwise ``U`` holds the
    top-``r`` left singular vectors from a truncated SVD (re-orthonormalised in float64) and
    the bound is ``||(I - U U^T) A||_F^2 >= E_r(A)^2`` (Eckart--Young: ``U U^T A`` has rank
    ``r``), however accurate the randomized range: the bound stays provable. It is formed
    explicitly (see :func:`_outside2`), not as ``||A||^2`` minus the Ritz energy, so a tail
    below the round-off of the energies is not lost.
    """
    m, n = A.shape
    xp = namespace(A)
    if min(m, n) <= r:
        return 0.0, None
    # The core rescales extreme data itself.
    U, _, _, _ = _truncated_svd_core(_f64(A), r, rng=rng, kind="dense", n_oversamples=10)
    U = _orthonormal(U, xp)
    return _outside2(A, U, scale), U


def _hstack(blocks: list, xp: types.ModuleType) -> Any:
    return blocks[0] if len(blocks) == 1 else xp.concatenate(blocks, axis=1)


# --------------------------------------------------------------------------------------------
# The four states behind the bounds, the estimator and the clustering
# --------------------------------------------------------------------------------------------


class _NormBoundState:
    """Weyl-type ("max-norm") bound: ``L = T_r(H)`` for a fixed head ``H``; tail energy added.

    ``H`` is a column subset of ``M`` so ``sigma_i(M) >= sigma_i(H)`` and ``T_r(M) >= T_r(H)``,
    hence ``E_r(M)^2 <= E_r(H)^2 + sum_{j not in H} ||A_j||_F^2``. A head of width ``<= r``
    has ``E_r(H) = 0`` (no SVD); a wider one gets the bound of :func:`_head_outside`. The
    error is accumulated as that sum (the tail's energy), never as ``||M||^2 - ||H||^2``,
    whose cancellation loses a tail far below the head. Each block added costs its norm.
    """

    def __init__(self, col: _Collection, head: list[int], r: int, rng: Any):
        xp = col.xp
        self.tot = float(sum(col.norms2[j] for j in head))
        width = sum(col.widths[j] for j in head)
        self._basis = None
        if width <= r or col.m <= r:
            self.err2 = 0.0
        else:
            H = _hstack([col.mats[j] for j in head], xp)
            self.err2, self._basis = _head_outside(H, r, col.scale, rng)
        self._col = col
        self._head = head

    def propose(self, j: int) -> tuple[float, tuple[float, float]]:
        norm2 = self._col.norms2[j]
        err2 = self.err2 + norm2
        return err2, (self.tot + norm2, err2)

    def commit(self, proposal: tuple) -> None:
        self.tot, self.err2 = proposal[1]

    @property
    def error2(self) -> float:
        return self.err2

    def basis(self) -> Any:
        """Orthonormal basis of the head's dominant directions (for the residual order)."""
        if self._basis is None:
            xp = self._col.xp
            H = _hstack([self._col.mats[j] for j in self._head], xp)
            self._basis = _orthonormal(H, xp)
        return self._basis


class _ProjectionState:
    """Projection bound: ``E_r(M)^2 <= ||(I - U U^T) M||_F^2`` for the head's top-``r`` basis.

    For any orthonormal ``U`` with ``r`` columns, ``U U^T M`` has rank ``<= r``, so
    Eckart--Young gives the bound, and it splits over blocks:
    ``||(I - U U^T) M||_F^2 = sum_j ||(I - U U^T) A_j||_F^2``. ``U`` is fixed when the group
    starts: an orthonormal basis of a head of width ``<= r`` (whose own term is then 0), else
    the top-``r`` left singular vectors of the head from a truncated SVD. Each block added
    costs ``O(m r n_j)``; the residual is formed explicitly in float64 (see
    :func:`_outside2`) rather than as ``||A||^2 - ||U^T A||^2``, which would cancel for
    blocks nearly inside ``span(U)``.
    """

    def __init__(self, col: _Collection, head: list[int], r: int, rng: Any):
        xp = col.xp
        self._col = col
        self.tot = float(sum(col.norms2[j] for j in head))
        H = _hstack([col.mats[j] for j in head], xp)
        if col.m <= r:
            self.U = None  # every block lies in a space of dimension m <= r
            self.err2 = 0.0
        elif H.shape[1] <= r:
            self.U = _orthonormal(H, xp)
            self.err2 = 0.0
        else:
            self.err2, self.U = _head_outside(H, r, col.scale, rng)

    def _outside(self, A: Any) -> float:
        if self.U is None:
            return 0.0
        return _outside2(A, self.U, self._col.scale)

    def propose(self, j: int) -> tuple:
        err2 = self.err2 + self._outside(self._col.mats[j])
        return err2, (self.tot + self._col.norms2[j], err2)

    def commit(self, proposal: tuple) -> None:
        self.tot, self.err2 = proposal[1]

    @property
    def error2(self) -> float:
        return self.err2

    def basis(self) -> Any:
        return self.U


class _ResidualState:
    """Incremental-residual bound: top-``r`` of the residual singular values of each block.

    Keeps ``Q``, an orthonormal basis of the span of every column seen so far (not truncated),
    and the ``r`` largest squared singular values of the residuals
    ``R_k = (I - Q Q^T) B_k``. The residuals' column spaces are mutually orthogonal, so the
    projector ``P = sum_k P_k`` onto the top left singular vectors of the pieces (total rank
    ``r``) satisfies ``T_r(M) >= ||P M||_F^2 >= sum_k ||P_k R_k||_F^2 = L``.

    Everything runs in float64 (see :func:`_f64`), and the error ``||M||^2 - L`` is
    accumulated without cancellation, as the sum of each block's energy inside the span
    seen before it (``||B_k - R_k||_F^2``, formed explicitly) and of the residual energies
    not among the ``r`` largest: with ``||B_k||^2 = ||B_k - R_k||^2 + ||R_k||^2`` it is the
    same number, but a tail far below ``||M||^2`` keeps its digits.
    """

    def __init__(self, col: _Collection, r: int):
        self._col = col
        self.r = r
        xp = col.xp
        self.Q = xp.zeros((col.m, 0), dtype=np.float64)
        self.top = np.zeros(0)
        self.tot = 0.0
        self.err2 = 0.0  # in-span energies + residual energies outside the top r

    def _residual(self, B: Any, norm2: float) -> tuple[np.ndarray, Any, float, float]:
        xp = self._col.xp
        scale = self._col.scale
        Q = self.Q
        m, d = Q.shape
        if d >= m:
            return np.zeros(0), None, 0.0, norm2
        B = _f64(B)
        R = B
        inside2 = 0.0
        if d:
            # Twice is enough (Kahan's "twice is enough"): one pass leaves a part along Q of
            # order eps * cond, which would be counted as residual energy.
            R = B - Q @ (Q.T @ B)
            R = R - Q @ (Q.T @ R)
            inside2 = squared_norm(B - R, scale)
        U, s, _ = xp.linalg.svd(R, full_matrices=False)
        e = _energy(s, scale)
        eps = float(np.finfo(np.float64).eps)
        ref = math.sqrt(max(self.tot + norm2, 0.0))
        tau = _NOISE_ULPS * math.sqrt(max(m, B.shape[1])) * eps * ref
        keep = int(np.count_nonzero(np.sqrt(e) > tau))
        keep = min(keep, m - d)
        return e, (U[:, :keep] if keep else None), float(e.sum()), inside2

    def propose_block(self, B: Any, norm2: float) -> tuple:
        e, dirs, res2, inside2 = self._residual(B, norm2)
        merged = np.sort(np.concatenate([self.top, e]))[::-1]
        top = merged[: self.r]
        err2 = self.err2 + inside2 + float(merged[self.r :].sum())
        tot = self.tot + norm2
        return err2, (tot, top, dirs, res2, err2)

    def propose(self, j: int) -> tuple:
        col = self._col
        return self.propose_block(col.mats[j], col.norms2[j])

    def commit(self, proposal: tuple) -> None:
        tot, top, dirs, _, err2 = proposal[1]
        self.tot, self.top, self.err2 = tot, top, err2
        if dirs is not None:
            self.Q = self._col.xp.concatenate([self.Q, dirs], axis=1)

    @property
    def error2(self) -> float:
        return self.err2

    def basis(self) -> Any:
        return self.Q


class _EstimateState:
    """Incremental truncated SVD of the growing concatenation: ``M M^T ~ U diag(s^2) U^T``.

    Each block is appended with Brand's update (:func:`_svd_update_core`, left factor only),
    truncated to ``k = r + p`` values. Truncating a positive semidefinite matrix to its top
    eigenpairs only removes positive semidefinite mass, so by induction
    ``U diag(s^2) U^T <= M M^T`` (Loewner order) and ``s_i <= sigma_i(M)`` for every ``i``:
    the estimate never overestimates a singular value, and in exact arithmetic the error it
    implies is an upper bound. Round-off (the remainder's pruning below the noise level) can
    break that by a few ulps of the energy, so it is not claimed as provable. The update runs
    in float64 whatever the blocks' precision (see :func:`_f64`): in float32 the estimate
    was 0 where the exact error was 6e-4. ``dtype`` is the precision reported back.
    """

    def __init__(
        self,
        m: int,
        dtype: Any,
        xp: types.ModuleType,
        r: int,
        k: int,
        scale: float,
        sketch: int | None = None,
        rng: Any = None,
    ):
        self.xp = xp
        self.r = r
        self.k = k
        self.scale = scale
        self.dtype = np.dtype(dtype)
        self.U = xp.zeros((m, 0), dtype=np.float64)
        self.s = xp.zeros(0, dtype=np.float64)
        self.tot = 0.0
        self.top = 0.0
        self.dropped = 0.0  # energy truncated away so far (exact updates only)
        self.err2 = 0.0
        self.count = 0
        self._sketch = sketch
        self._rng = rng

    def propose_block(self, B: Any, norm2: float) -> tuple:
        reorth = self.count > 0 and self.count % _REORTH_EVERY == 0
        B = _f64(B)
        U, s, _ = _svd_update_core(
            self.U,
            self.s,
            None,
            B,
            self.k,
            self.xp,
            sketch=self._sketch,
            random_state=self._rng,
            reorthogonalize_first=reorth,
        )
        e = _energy(s, self.scale)
        top = float(e[: self.r].sum())
        tot = self.tot + norm2
        if self._sketch is not None:
            return tot - top, (tot, top, U, s, self.dropped, tot - top)
        # Without a sketch, the energy this update dropped is formed explicitly, as the part
        # of [U_old diag(s_old), B] outside the new basis (projected twice, see _outside2):
        # the error is then the sum of all energy dropped so far plus the tracked values
        # beyond r, with no cancellation (||M||^2 - top lost a tail below ~1e-8 relative in
        # float64). Cost O(m (k + n_t) k), that of the update itself.
        X = B if self.U.shape[1] == 0 else self.xp.concatenate([self.U * self.s, B], axis=1)
        dropped = self.dropped + _outside2(X, U, self.scale)
        err2 = dropped + float(e[self.r :].sum())
        return err2, (tot, top, U, s, dropped, err2)

    def commit(self, proposal: tuple) -> None:
        self.tot, self.top, self.U, self.s, self.dropped, self.err2 = proposal[1]
        self.count += 1

    @property
    def error2(self) -> float:
        return self.err2

    def basis(self) -> Any:
        return self.U


class _ClusterEstimateState(_EstimateState):
    def __init__(self, col: _Collection, r: int, k: int, rng: Any):
        super().__init__(col.m, col.dtype, col.xp, r, k, col.scale, None, rng)
        self._col = col

    def propose(self, j: int) -> tuple:
        return self.propose_block(self._col.mats[j], self._col.norms2[j])


def _exact_tail2(blocks: list, r: int, scale: float, xp: types.ModuleType) -> float:
    """``sum_{i>r} sigma_i(M)^2`` (times scale**2) of ``M = [blocks]``, exactly, in float64.

    When ``M`` has at most ``m`` columns it is formed (``m x n``, no more than the Gram would
    take); otherwise ``M^T`` is reduced to its ``m x m`` triangular factor by a streamed QR
    (TSQR: ``R <- qr([R; B^T])`` for chunks ``B`` of about ``m`` columns), whose singular
    values are those of ``M``. Nothing of size ``m x n`` is formed and, unlike a Gram matrix,
    nothing is squared: small tail energies keep their digits.
    """
    m = blocks[0].shape[0]
    n = sum(B.shape[1] for B in blocks)
    if r >= min(m, n):
        return 0.0

    def wide(B: Any) -> Any:
        B = B.astype(np.float64, copy=False)
        return B * scale if scale != 1.0 else B

    if n <= m:
        s = xp.linalg.svd(_hstack([wide(B) for B in blocks], xp), compute_uv=False)
    else:
        R = None
        chunk: list = []
        width = 0
        for i, B in enumerate(blocks):
            chunk.append(wide(B).T)
            width += B.shape[1]
            if width >= m or i == len(blocks) - 1:
                stack = xp.concatenate(([R] if R is not None else []) + chunk, axis=0)
                R = xp.linalg.qr(stack, mode="r")
                chunk, width = [], 0
        s = xp.linalg.svd(R, compute_uv=False)
    e = _energy(s, 1.0)
    return float(e[r:].sum())


class _ExactState:
    """The naive reference: the exact error of every candidate concatenation (an SVD each)."""

    def __init__(self, col: _Collection, r: int):
        self._col = col
        self.r = r
        self.members: list[int] = []
        self.tot = 0.0
        self.err2 = 0.0
        self._basis = None

    def propose(self, j: int) -> tuple:
        col = self._col
        members = [*self.members, j]
        err2 = _exact_tail2([col.mats[i] for i in members], self.r, col.scale, col.xp)
        tot = self.tot + col.norms2[j]
        return err2, (tot, err2, members)

    def propose_head(self, head: list[int]) -> tuple:
        col = self._col
        err2 = _exact_tail2([col.mats[i] for i in head], self.r, col.scale, col.xp)
        return err2, (sum(col.norms2[i] for i in head), err2, list(head))

    def commit(self, proposal: tuple) -> None:
        self.tot, self.err2, self.members = proposal[1]

    @property
    def error2(self) -> float:
        return self.err2

    def basis(self) -> Any:
        if self._basis is None:
            col = self._col
            H = _hstack([col.mats[j] for j in self.members], col.xp)
            U, _, _ = col.xp.linalg.svd(H, full_matrices=False)
            self._basis = U[:, : self.r]
        return self._basis


# --------------------------------------------------------------------------------------------
# Heads
# --------------------------------------------------------------------------------------------


def _norm_order(col: _Collection, indices: Sequence[int]) -> list[int]:
    """``indices`` by decreasing norm (ties by index: deterministic)."""
    return sorted(indices, key=lambda j: (-col.norms2[j], j))


def _narrow_head(col: _Collection, ordered: Sequence[int], r: int) -> list[int]:
    """The largest blocks whose total width stays ``<= r``, taken greedily in ``ordered``.

    Blocks that do not fit are skipped, not a reason to stop: any column subset of width at
    most ``r`` has ``T_r = ||.||_F^2``, so every block taken only raises the lower bound.
    """
    head: list[int] = []
    width = 0
    for j in ordered:
        if width + col.widths[j] <= r:
            head.append(j)
            width += col.widths[j]
    return head


def _weyl_head(col: _Collection, ordered: list[int], r: int, rng: Any) -> tuple[list[int], float]:
    """The head behind the Weyl bound and the bound's squared error (times scale**2).

    The largest block, plus the next-largest ones while the head's width stays ``<= r``:
    the bound is then the energy of the other blocks. When the largest block alone is wider
    than ``r`` its full norm is *not* a lower bound on ``T_r(M)`` (the reference code's
    defect): its own rank-``r`` error bound (see :func:`_head_outside`) is added to the other
    blocks' energy instead, or the best narrow head of the other blocks is taken if that
    bounds the error better. The sums run over the blocks outside the head (no ``||M||^2 -
    ||H||^2`` cancellation).
    """
    first = ordered[0]
    if col.widths[first] <= r or col.m <= r:
        head = _narrow_head(col, ordered, r) if col.m > r else list(ordered)
        taken = set(head)
        return head, float(sum(col.norms2[j] for j in ordered if j not in taken))
    own2, _ = _head_outside(col.mats[first], r, col.scale, rng)
    wide2 = own2 + float(sum(col.norms2[j] for j in ordered[1:]))
    narrow = _narrow_head(col, ordered[1:], r)
    taken = set(narrow)
    narrow2 = float(sum(col.norms2[j] for j in ordered if j not in taken))
    if narrow and narrow2 < wide2:
        return narrow, narrow2
    return [first], wide2


# --------------------------------------------------------------------------------------------
# Public: the bounds
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConcatErrorBounds:
    """Upper bounds (and optionally the exact value) of the rank-``r`` error of ``[A_1 … A_N]``.

    Attributes
    ----------
    weyl : float
        The Weyl-type (monotonicity) bound; see :func:`concat_error_bounds`.
    residual : float
        The incremental-residual bound; never above ``weyl`` (up to round-off).
    projection : float
        The projection bound on the head's top-``r`` basis; never above ``weyl`` (up to
        round-off), and far tighter than both others when the blocks share a subspace.
    exact : float or None
        The optimal rank-``r`` error from an exact SVD, when ``exact=True`` was asked.
    rank : int
        The rank ``r``.
    relative : bool
        Whether the errors are relative to ``norm`` (else absolute Frobenius errors).
    norm : float
        ``||[A_1 ... A_N]||_F``, from the blocks' norms.
    block_norms : ndarray of shape (N,)
        ``||A_j||_F`` (host array in the input's floating dtype).
    block_widths : ndarray of shape (N,)
        The column counts ``n_j``.
    block_residual_norms : ndarray of shape (N,)
        ``||(I - Q Q^T) A_j||_F``, the part of each block outside the span of the blocks
        processed before it in ``residual_order`` (the head blocks count as one block: the
        first has its full norm, the others their part outside the earlier head blocks).
    head : tuple of int
        Indices of the blocks forming the Weyl bound's head.
    residual_order : tuple of int
        The order in which the residual bound processed the blocks.
    """

    weyl: float
    residual: float
    projection: float
    exact: float | None
    rank: int
    relative: bool
    norm: float
    block_norms: np.ndarray
    block_widths: np.ndarray
    block_residual_norms: np.ndarray
    head: tuple[int, ...]
    residual_order: tuple[int, ...]


def concat_error_bounds(
    mats: Sequence[Any],
    rank: int,
    *,
    relative: bool = True,
    exact: bool = False,
    order: str = "norm",
    random_state: Any = None,
) -> ConcatErrorBounds:
    r"""Upper bounds on the optimal rank-``r`` error of the concatenation ``[A_1 … A_N]``.

    The three bounds are computed from per-block quantities; the concatenation ``M`` is never
    formed (except by ``exact=True``). With :math:`T_r(X) = \sum_{i \le r} \sigma_i(X)^2` and
    the exact energy :math:`\|M\|_F^2 = \sum_j \|A_j\|_F^2`, Eckart--Young gives
    :math:`E_r(M)^2 = \|M\|_F^2 - T_r(M)`, so any lower bound :math:`L \le T_r(M)` yields

    .. math:: E_r(M) \le \sqrt{\max(0, \|M\|_F^2 - L)}.

    **Weyl-type bound.** :math:`M M^T = \sum_j A_j A_j^T`; adding positive semidefinite terms
    can only raise eigenvalues (Weyl), so for any column subset :math:`H` of :math:`M`,
    :math:`\sigma_i(M) \ge \sigma_i(H)` and :math:`T_r(M) \ge T_r(H)`. The head :math:`H` is
    the largest block plus the next-largest ones while its width stays :math:`\le r`, so
    :math:`T_r(H) = \|H\|_F^2` and :math:`L_1 = \|H\|_F^2` needs only the blocks' norms. When
    the largest block is wider than ``r``, its full norm is not a lower bound; then
    :math:`L_1` is :math:`T_r` of that block, from the Rayleigh--Ritz values of a truncated
    SVD (:math:`\|U^T A\|_F^2 \le T_r(A)` for any orthonormal ``U`` by Ky Fan's principle,
    so the bound stays provable however accurate the sketch).

    **Residual bound.** Process the head (as one block ``B_0``) and then the other blocks
    ``B_1, B_2, ...``, keeping an orthonormal basis :math:`Q_k` of the span of all columns
    seen before ``B_k``; the residuals :math:`R_k = (I - Q_k Q_k^T) B_k` (with
    :math:`R_0 = B_0`) have mutually orthogonal column spaces. Let :math:`L_2` be the sum of
    the ``r`` largest values of :math:`\bigcup_k \{\sigma_i(R_k)^2\}`, and :math:`P_k` the
    projector onto the left singular vectors of :math:`R_k` that contribute to it. Then
    :math:`P = \sum_k P_k` is an orthogonal projector of rank ``r`` and, since
    :math:`P_k B_k = P_k R_k`,

    .. math:: T_r(M) \ge \|P M\|_F^2 = \sum_k \|P B_k\|_F^2
              \ge \sum_k \|P_k R_k\|_F^2 = L_2.

    Because :math:`L_2 \ge T_r(B_0) \ge L_1`, the residual bound is never looser than the
    Weyl bound. It is exact for orthogonal blocks and loose for similar blocks (it ignores
    each block's energy inside the span already seen: for ``[A, A]`` with
    ``rank(A) <= r`` both bounds give :math:`\sqrt{1/2}` where the error is 0; see
    :func:`estimate_concat_error`). Cost: :math:`O(m d n_k)` per block for the projection
    (:math:`d \le m` the span dimension) plus an SVD of the :math:`m \times n_k` residual.

    **Projection bound.** For any :math:`U` with ``r`` orthonormal columns, :math:`U U^T M`
    has rank :math:`\le r`, so by Eckart--Young

    .. math:: E_r(M)^2 \le \|(I - U U^T) M\|_F^2 = \sum_j \|(I - U U^T) A_j\|_F^2.

    Here :math:`U` spans the head (width :math:`\le r`) or holds its top-``r`` left singular
    vectors (a wider head), so the head's own term is 0 or its rank-``r`` error. Since
    :math:`\|(I - U U^T) A_j\|_F \le \|A_j\|_F`, it is never looser than the Weyl bound,
    and it is nearly exact when the blocks share the head's dominant subspace, where the two
    others are loose. Cost: :math:`O(m r n_j)` per block. It is not comparable with the
    residual bound in general (each is tighter on some collections).

    Parameters
    ----------
    mats : sequence of 2-D arrays
        The blocks ``A_j`` (NumPy or CuPy, real, finite), each ``m x n_j`` with the same
        ``m``; the widths may differ.
    rank : int
        The target rank ``r >= 1``.
    relative : bool, default=True
        Return errors relative to :math:`\|M\|_F` (0 for an all-zero collection) instead of
        absolute Frobenius errors.
    exact : bool, default=False
        Also compute the exact optimal error. This one does form data of size
        :math:`m \times \min(m, n)`: the concatenation itself when it has at most ``m``
        columns, else the ``m x m`` triangular factor of a streamed QR of :math:`M^T`.
    order : {"norm", "given"}, default="norm"
        Order of the blocks after the head in the residual bound: decreasing norm, or as
        given. Both give a valid bound; the tightness depends on it.
    random_state : None, int or numpy.random.Generator
        Seeds the truncated SVD of a head wider than ``rank``.

    Returns
    -------
    ConcatErrorBounds
        ``weyl``, ``residual``, ``projection``, ``exact`` and the per-block quantities.

    Raises
    ------
    ValueError
        Empty collection, blocks with different row counts, non-2-D or empty blocks,
        NaN/inf, ``rank < 1``, unknown ``order``.
    TypeError
        Non-integer ``rank``, complex, sparse or non-numeric blocks, blocks on different
        devices.

    See Also
    --------
    estimate_concat_error : the much tighter incremental estimate.
    cluster_matrices : groups matrices so that each group's error stays below a threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.linalg import concat_error_bounds
    >>> rng = np.random.default_rng(0)
    >>> mats = [rng.standard_normal((40, 3)) for _ in range(5)]
    >>> b = concat_error_bounds(mats, 6, exact=True)
    >>> bool(b.exact <= b.residual <= b.weyl)
    True
    """
    col = _check_collection(mats)
    r = _check_rank(rank)
    relative = _check_bool(relative, "relative")
    exact = _check_bool(exact, "exact")
    if order not in ("norm", "given"):
        raise ValueError(f"order must be 'norm' or 'given', got {order!r}")
    rng = check_random_state(random_state)
    return _concat_error_bounds_core(col, r, relative, exact, order, rng)


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _concat_error_bounds_core(
    col: _Collection, r: int, relative: bool, exact: bool, order: str, rng: Any
) -> ConcatErrorBounds:
    with _small_calls(col.xp, col.m, col.widths):
        return _bounds(col, r, relative, exact, order, rng)


def _bounds(
    col: _Collection, r: int, relative: bool, exact: bool, order: str, rng: Any
) -> ConcatErrorBounds:
    xp = col.xp
    n = len(col.mats)
    by_norm = _norm_order(col, range(n))
    tot = float(sum(col.norms2))
    head, weyl2 = _weyl_head(col, by_norm, r, rng)
    rest = [j for j in (by_norm if order == "norm" else range(n)) if j not in set(head)]
    res_norms2 = np.zeros(n)
    state = _ResidualState(col, r)
    # The head first, block by block: its residual singular values are those of the stacked
    # head (pieces with orthogonal spans) only if the head is a single block, so it is fed as
    # one block, and its blocks' own residual norms are recorded separately.
    H = _hstack([col.mats[j] for j in head], xp)
    _, proposal = state.propose_block(H, float(sum(col.norms2[j] for j in head)))
    state.commit((None, proposal))
    _record_head_residuals(col, head, res_norms2)
    for j in rest:
        _, proposal = state.propose(j)
        res_norms2[j] = proposal[3]
        state.commit((None, proposal))
    res2 = min(state.error2, weyl2)  # L_2 >= L_1 in exact arithmetic; round-off aside
    proj = _ProjectionState(col, head, r, rng)
    for j in rest:
        proj.commit(proj.propose(j))
    proj2 = min(proj.error2, weyl2)
    exact_val = None
    if exact:
        exact_val = _finish_error(_exact_tail2(col.mats, r, col.scale, xp), tot, col, relative)
    real = np.finfo(col.dtype).dtype
    return ConcatErrorBounds(
        weyl=_finish_error(weyl2, tot, col, relative),
        residual=_finish_error(res2, tot, col, relative),
        projection=_finish_error(proj2, tot, col, relative),
        exact=exact_val,
        rank=r,
        relative=relative,
        norm=math.sqrt(tot) / col.scale,
        block_norms=(np.sqrt(np.asarray(col.norms2)) / col.scale).astype(real),
        block_widths=np.asarray(col.widths, dtype=np.int64),
        block_residual_norms=(np.sqrt(np.maximum(res_norms2, 0.0)) / col.scale).astype(real),
        head=tuple(int(j) for j in head),
        residual_order=tuple(int(j) for j in list(head) + rest),
    )


def _record_head_residuals(col: _Collection, head: list[int], out: np.ndarray) -> None:
    """Per-block residual norms inside the head (each block against the earlier head blocks)."""
    out[head[0]] = col.norms2[head[0]]
    if len(head) == 1:
        return
    sub = _ResidualState(col, 1)
    for j in head:
        _, proposal = sub.propose(j)
        out[j] = proposal[3]
        sub.commit((None, proposal))


def _finish_error(err2: float, tot: float, col: _Collection, relative: bool) -> float:
    if relative:
        return _relative(err2, tot)
    return math.sqrt(max(err2, 0.0)) / col.scale


# --------------------------------------------------------------------------------------------
# Public: the incremental estimator
# --------------------------------------------------------------------------------------------


def _check_oversamples(n_oversamples: Any) -> int:
    return check_int(n_oversamples, "n_oversamples", low=0)


def _check_sketch(sketch: Any) -> int | None:
    return None if sketch is None else check_int(sketch, "sketch", low=1)


class ConcatErrorEstimator:
    r"""Running estimate of the rank-``r`` error of a concatenation that grows block by block.

    Keeps the top ``k = rank + n_oversamples`` left singular vectors and values of
    :math:`M = [A_1 \dots A_t]` (:math:`M M^T \approx U \operatorname{diag}(s^2) U^T`) and
    updates them with Brand's incremental SVD (:func:`sparselin.svd_update`) as each block
    arrives; ``M`` is never stored. Memory :math:`O(m k)`; each :meth:`add` costs
    :math:`O(m (k + n_t)^2)`. The energy :math:`\|M\|_F^2` is accumulated exactly, and the
    error estimate is

    .. math:: \hat e = \sqrt{\max\Big(0, 1 - \sum_{i \le r} s_i^2 / \|M\|_F^2\Big)}.

    One-sidedness: truncating a positive semidefinite matrix to its top eigenpairs only
    removes positive semidefinite mass, so by induction
    :math:`U \operatorname{diag}(s^2) U^T \preceq M M^T` and :math:`s_i \le \sigma_i(M)`:
    in exact arithmetic :math:`\hat e` never underestimates the error. The update runs in
    float64 whatever the blocks' precision, and (without ``sketch``) the squared error is
    accumulated as the energy the truncations dropped plus the tracked values beyond ``r``,
    which equals :math:`\|M\|_F^2 - \sum_{i \le r} s_i^2` but keeps the digits of an
    error far below :math:`\|M\|_F`. It is still *not* a provable bound (the rounding of
    the updates is not bounded); it is exact when ``k`` is at least the rank of ``M``,
    whatever the blocks (in-span, duplicated or rank-deficient ones included).

    Parameters
    ----------
    rank : int
        The target rank ``r >= 1``.
    relative : bool, default=True
        Whether :attr:`error` is relative to :attr:`norm`.
    n_oversamples : int, default=5
        Extra singular values tracked beyond ``rank``; more makes a long stream more
        accurate (each truncation drops the tail).
    sketch : int, optional
        Replace the exact part of a wide block outside the tracked span by a randomized
        rank-``sketch`` approximation (see :func:`sparselin.svd_update`); ``None`` is exact.
    random_state : None, int or numpy.random.Generator
        Seeds the sketches (unused without ``sketch``).

    Attributes
    ----------
    n_blocks : int
        Number of blocks added.
    n_columns : int
        Total width of the concatenation.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.linalg import ConcatErrorEstimator
    >>> rng = np.random.default_rng(0)
    >>> basis = rng.standard_normal((60, 4))
    >>> est = ConcatErrorEstimator(4)
    >>> for _ in range(10):
    ...     _ = est.add(basis @ rng.standard_normal((4, 8)))
    >>> est.n_blocks, bool(est.error < 1e-6)
    (10, True)
    """

    def __init__(
        self,
        rank: int,
        *,
        relative: bool = True,
        n_oversamples: int = 5,
        sketch: int | None = None,
        random_state: Any = None,
    ) -> None:
        self.rank = _check_rank(rank)
        self.relative = _check_bool(relative, "relative")
        self.n_oversamples = _check_oversamples(n_oversamples)
        self.sketch = _check_sketch(sketch)
        self._rng = check_random_state(random_state)
        self._state: _EstimateState | None = None
        self.n_blocks = 0
        self.n_columns = 0

    def add(self, A: Any) -> ConcatErrorEstimator:
        """Append the block ``A`` (``m x n_t``, the same ``m`` as before) and return ``self``.

        ``A`` is validated here (2-D, finite, real, same row count and device as the earlier
        blocks) and never modified. A block of another float dtype promotes the state.
        """
        A, norm2 = _check_block(A, "A")
        st = self._state
        if st is None:
            xp = namespace(A)
            scale = _energy_scale([A], [norm2], xp)
            st = _EstimateState(
                A.shape[0],
                A.dtype,
                xp,
                self.rank,
                self.rank + self.n_oversamples,
                scale,
                self.sketch,
                self._rng,
            )
        else:
            if A.shape[0] != st.U.shape[0]:
                raise ValueError(
                    f"A must have {st.U.shape[0]} rows like the blocks added before, got "
                    f"shape {A.shape}"
                )
            namespace(A, st.U)  # raises on mixed devices
            # The state runs in float64 anyway; this is the precision reported back.
            st.dtype = np.result_type(A.dtype, st.dtype)
        if st.scale != 1.0 or A.dtype != np.float64:
            norm2 = _norm2(A, st.scale)
        if not math.isfinite(norm2):
            raise ValueError(
                "A is too large for the running energy; rescale the blocks (the first "
                "block fixes the scale of a stream)"
            )
        with _small_calls(st.xp, A.shape[0], [A.shape[1] + st.k]):
            _, proposal = st.propose_block(A, norm2)
        st.commit((None, proposal))
        self._state = st
        self.n_blocks += 1
        self.n_columns += A.shape[1]
        return self

    @property
    def error(self) -> float:
        """The estimated optimal rank-``rank`` error of the blocks added so far (0 if none)."""
        st = self._state
        if st is None:
            return 0.0
        if self.relative:
            return _relative(st.error2, st.tot)
        return math.sqrt(max(st.error2, 0.0)) / st.scale

    @property
    def norm(self) -> float:
        """:math:`\\|M\\|_F`, accumulated exactly from the blocks' norms."""
        st = self._state
        return 0.0 if st is None else math.sqrt(st.tot) / st.scale

    @property
    def singular_values(self) -> Any:
        """The tracked estimates of the top singular values (never above the true ones)."""
        st = self._state
        return None if st is None else st.s[: self.rank].astype(np.finfo(st.dtype).dtype)

    @property
    def basis(self) -> Any:
        """The tracked orthonormal left singular vectors, ``m x min(k, rank of M)``."""
        st = self._state
        return None if st is None else st.U.astype(st.dtype)


def estimate_concat_error(
    mats: Sequence[Any],
    rank: int,
    *,
    relative: bool = True,
    n_oversamples: int = 5,
    sketch: int | None = None,
    random_state: Any = None,
) -> float:
    r"""Estimate the optimal rank-``r`` error of ``[A_1 … A_N]`` by incremental truncated SVD.

    Appends the blocks one at a time to a running truncated SVD (Brand's update, keeping
    ``rank + n_oversamples`` singular values) and compares its top-``r`` energy with the exact
    energy :math:`\sum_j \|A_j\|_F^2`; the concatenation is never formed. See
    :class:`ConcatErrorEstimator` (the same estimate, one block at a time) for the formula and
    why it never underestimates in exact arithmetic. It is far tighter than the provable
    bounds of :func:`concat_error_bounds` on similar blocks (exact for ``[A, A]``), but not
    itself provable (the rounding of the updates is not bounded).

    Parameters
    ----------
    mats : sequence of 2-D arrays
        The blocks (NumPy or CuPy, real, finite, same row count; widths may differ).
    rank : int
        The target rank ``r >= 1``.
    relative : bool, default=True
        Relative (to :math:`\|M\|_F`) or absolute Frobenius error.
    n_oversamples : int, default=5
        Extra singular values tracked.
    sketch : int, optional
        Randomized compression of wide blocks' new directions (see
        :class:`ConcatErrorEstimator`).
    random_state : None, int or numpy.random.Generator
        Seeds the sketches (unused without ``sketch``).

    Returns
    -------
    float
        The estimated error.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.linalg import estimate_concat_error
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((50, 6))
    >>> round(estimate_concat_error([A, A, 2 * A], 6), 6)
    0.0
    """
    col = _check_collection(mats)
    r = _check_rank(rank)
    relative = _check_bool(relative, "relative")
    p = _check_oversamples(n_oversamples)
    sk = _check_sketch(sketch)
    rng = check_random_state(random_state)
    st = _EstimateState(col.m, col.dtype, col.xp, r, r + p, col.scale, sk, rng)
    with _small_calls(col.xp, col.m, col.widths):
        for A, norm2 in zip(col.mats, col.norms2, strict=True):
            _, proposal = st.propose_block(A, norm2)
            st.commit((None, proposal))
    return _finish_error(st.error2, st.tot, col, relative)


def _check_tol(tol: Any) -> float:
    return check_real(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)
