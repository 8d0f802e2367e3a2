"""Factorisation cores for compressing weight matrices, shared by ``sparselin.torch`` and the CLI.

Torch-free and written once against the array namespace ``xp`` (NumPy or CuPy, see
:mod:`sparselin._array`). No argument is validated here: the public edges
(:func:`sparselin.torch.compress_linear`, the ``sparselin compress`` command) check their input
once and call these cores.

Conventions
-----------
- A weight ``W`` is ``(m, n)`` = (out, in), the PyTorch ``nn.Linear`` layout: ``y = W x + b``.
  Calibration inputs are stacked as *rows*, ``X`` of shape ``(N, n)`` (the torch layout), so
  the Gram matrix is ``C = X^T X`` (``n x n``).
- Low-rank factors are ``W' = U @ V`` with ``U`` ``(m, k)`` and ``V`` ``(k, n)``, *balanced*:
  ``U = P diag(sqrt(sig))``, ``V = diag(sqrt(sig)) Q^T`` where ``P diag(sig) Q^T`` is the SVD of
  ``W'`` itself, so that both factors have the same scale (what PiSSA-style training wants).
- Every weighted problem is solved in *projection form*: with ``M = G^(1/2) W S`` (``S S^T = C``
  the input metric, ``G`` the output metric) and ``P_k`` the top-``k`` left singular vectors of
  ``M``, the minimiser of ``||G^(1/2) (W - W') S||_F`` over rank-``k`` ``W'`` is
  ``W' = G^(-1/2) P_k P_k^T G^(1/2) W``. It never inverts ``S``, so it stays defined when ``C``
  is singular (LayerNorm outputs make ``C`` exactly singular) and any square root of ``C``
  serves (Cholesky, or the clamped eigendecomposition when Cholesky fails).
- A sparse residual entry costs :data:`SPARSE_ENTRY_COST` parameters (value and index).
"""

from __future__ import annotations

import math
import types
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .._array import namespace, to_numpy

__all__ = [
    "SPARSE_ENTRY_COST",
    "GramAccumulator",
    "GramFactor",
    "KroneckerFactors",
    "LowRankFactors",
    "LowRankSparseFactors",
    "SharedBasisFactors",
    "WeightedSpectrum",
    "default_kronecker_shape",
    "kronecker_params",
    "lowrank_sparse_params",
]

#: Parameters charged per entry of a sparse residual: its value and its column index.
SPARSE_ENTRY_COST = 2

#: Relative damping added to a Gram matrix by default: ``damping * mean(diag C) * I``.
DEFAULT_DAMPING = 1e-6


class GramFactor(NamedTuple):
    """A square root ``root @ root.T == C + shift * I`` of a damped Gram matrix (float64).

    ``kind`` is ``"cholesky"`` (``root`` lower-triangular) or ``"eigh"`` (``root = basis
    diag(scale)`` from the eigendecomposition, negative eigenvalues clamped to zero, used when
    Cholesky fails; ``scale`` holds the square roots of the eigenvalues). ``shift`` is the
    absolute damping that was added; ``mean`` the mean of the inputs when the Gram matrix was
    centred (else ``None``).
    """

    root: Any
    kind: str
    shift: float
    mean: Any = None
    basis: Any = None
    scale: Any = None


class WeightedSpectrum(NamedTuple):
    """The full SVD of the weighted matrix ``M = G^(1/2) W S`` and what undoes the weights.

    ``s`` (descending) are the singular values of ``M``: dropping component ``i`` costs
    exactly ``s[i]**2`` of the squared weighted error, so one threshold over the pooled
    ``s**2`` of many matrices allocates ranks globally. ``total2 = ||M||_F**2``. ``P`` holds the
    left singular vectors (``(m, p)``); ``W`` the unweighted weight (``(m, n)``, the array that
    was passed in); ``out`` the output weighting (``None``, a ``(m,)`` vector of row scales
    ``sqrt(row weights)``, or a :class:`GramFactor` of the output Gram matrix).
    """

    P: Any
    s: Any
    total2: float
    W: Any
    out: Any


class LowRankFactors(NamedTuple):
    """``W ~= U @ V`` (balanced), the weighted singular values and the relative error.

    ``s`` are the singular values of the weighted matrix that were computed (all of them when
    the SVD was exact), ``error`` the relative error ``||G^(1/2)(W - UV)S||_F / ||G^(1/2) W
    S||_F`` in the metric of the problem (plain Frobenius for plain SVD).
    """

    U: Any
    V: Any
    s: Any
    error: float


class LowRankSparseFactors(NamedTuple):
    """``W ~= U @ V + S`` with ``S`` sparse.

    ``S`` is stored CSR-like in two parts, either of which may be empty: unstructured
    entries (``indptr`` ``(m + 1,)``, ``indices`` ``(nnz,)`` column indices, ``values``
    ``(nnz,)``) and whole input channels (``columns`` ``(c,)``, ``column_values`` ``(m, c)``).
    ``error`` is relative, in the metric of the problem.
    """

    U: Any
    V: Any
    indptr: Any
    indices: Any
    values: Any
    columns: Any
    column_values: Any
    error: float


class KroneckerFactors(NamedTuple):
    """``W ~= sum_i kron(A[i], B[i])`` with ``A`` ``(r, m1, n1)`` and ``B`` ``(r, m2, n2)``.

    ``s`` are the singular values of the Van Loan-Pitsianis rearrangement that were computed,
    ``error`` the relative Frobenius error.
    """

    A: Any
    B: Any
    s: Any
    error: float


class SharedBasisFactors(NamedTuple):
    """``W_l ~= coefficients[l] @ basis`` for each matrix of a group sharing its input side.

    ``basis`` is ``(k, n)``; ``coefficients[l]`` is ``(m_l, k)``; ``s`` the singular values of
    the weighted stack; ``error`` the relative error of the whole stack in its metric.
    """

    basis: Any
    coefficients: list
    s: Any
    error: float


#: Largest ``min(m, n)`` decomposed with an exact SVD; above it the randomized
#: ``_truncated_svd_core`` is used. Measured on 2 shared cores, one BLAS thread, float32: exact
#: 0.07 s vs randomized 0.10 s at 384 x 384 (rank 150), 0.23 s vs 0.40 s at 1536 x 384 (rank
#: 245), 1.9 s vs 1.4 s at 3072 x 768 (rank 300).
EXACT_SVD_MAX_DIM = 640

# Rows per float64 block when accumulating a Gram matrix: bounds the temporary copy.
_GRAM_BLOCK_ROWS = 8192


class GramAccumulator:
    """Streaming float64 Gram matrix ``X^T X`` (and column sums) of calibration inputs.

    Batches are added with :meth:`update` and never kept: memory is ``n x n`` whatever the
    number of samples. Each batch is cast to float64 (in blocks of rows) before its product,
    so large sums of float32/bfloat16 activations lose nothing to accumulation.

    Parameters
    ----------
    n_features : int
        Width of the inputs (``in_features`` of the layer).
    xp : module, default numpy
        ``numpy`` or ``cupy``: where the sums live (the batches must live there too).

    Attributes
    ----------
    n_features : int
    n_samples : int
        Rows added so far (masked rows excluded).
    gram : array of shape (n_features, n_features)
        ``sum x x^T`` in float64.
    sum : array of shape (n_features,)
        ``sum x`` in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.linalg._factorize import GramAccumulator
    >>> acc = GramAccumulator(3)
    >>> X = np.arange(12.0).reshape(4, 3)
    >>> _ = acc.update(X[:2]).update(X[2:])
    >>> bool(np.allclose(acc.gram, X.T @ X)), acc.n_samples
    (True, 4)
    """

    def __init__(self, n_features: int, *, xp: types.ModuleType = np) -> None:
        self.n_features = int(n_features)
        self.xp = xp
        self.gram = xp.zeros((self.n_features, self.n_features), dtype=np.float64)
        self.sum = xp.zeros(self.n_features, dtype=np.float64)
        self.n_samples = 0

    def update(self, X: Any, mask: Any = None) -> GramAccumulator:
        """Add a batch ``X`` of shape ``(..., n_features)``; rows where ``mask`` (shape
        ``X.shape[:-1]``) is false (padding) are left out. Returns ``self``."""
        xp = self.xp
        X2 = X.reshape(-1, self.n_features)
        if mask is not None:
            X2 = X2[mask.reshape(-1).astype(bool)]
        for start in range(0, X2.shape[0], _GRAM_BLOCK_ROWS):
            block = X2[start : start + _GRAM_BLOCK_ROWS].astype(np.float64)
            self.gram += block.T @ block
            self.sum += xp.sum(block, axis=0)
        self.n_samples += int(X2.shape[0])
        return self

    def merge(self, other: GramAccumulator) -> GramAccumulator:
        """Add another accumulator's sums (e.g. from another process). Returns ``self``."""
        self.gram += other.gram
        self.sum += other.sum
        self.n_samples += other.n_samples
        return self

    @property
    def mean(self) -> Any:
        """Mean input ``sum / n_samples`` (float64; zeros before any sample)."""
        return self.sum / max(self.n_samples, 1)

    def covariance(self, centered: bool = False) -> Any:
        """``X^T X`` or, with ``centered``, ``X^T X - N mu mu^T`` (float64, symmetric, new)."""
        C = (self.gram + self.gram.T) * 0.5
        if centered and self.n_samples:
            C = C - self.xp.outer(self.sum, self.sum) / self.n_samples
        return C

    def factor(self, damping: float = DEFAULT_DAMPING, centered: bool = False) -> GramFactor:
        """The damped square root of :meth:`covariance`, see :func:`_gram_factor`."""
        return _gram_factor(self.covariance(centered), damping, self.mean if centered else None)


def _gram_factor(C: Any, damping: float = DEFAULT_DAMPING, mean: Any = None) -> GramFactor:
    """Square root of ``C + damping * mean(diag C) * I`` (float64).

    Cholesky first; when it fails (``C`` singular, e.g. after a LayerNorm, or fewer samples
    than features, with too little damping to lift it) or returns non-finite values (CuPy
    reports failure that way), the eigendecomposition with negative eigenvalues clamped to
    zero. An all-zero ``C`` gives the identity (every direction equally unimportant).
    """
    xp = namespace(C)
    n = C.shape[0]
    C = C.astype(np.float64)
    level = float(xp.mean(xp.diagonal(C))) if n else 0.0
    if not level > 0.0:
        return GramFactor(xp.eye(n), "eigh", 0.0, mean, xp.eye(n), xp.ones(n))
    shift = float(damping) * level
    Cd = C + shift * xp.eye(n)
    try:
        L = xp.linalg.cholesky(Cd)
        ok = bool(xp.isfinite(L).all()) and float(xp.min(xp.diagonal(L))) > 0.0
    except Exception:  # numpy.linalg.LinAlgError, or cuSOLVER's report of the same
        ok = False
    if ok:
        return GramFactor(L, "cholesky", shift, mean)
    lam, Q = xp.linalg.eigh((Cd + Cd.T) * 0.5)
    # Eigenvalues below the round-off of the largest are zero: their square roots (1e-8
    # relative in float64) would otherwise count as real directions of the inputs.
    noise = float(n * np.finfo(np.float64).eps) * float(xp.max(xp.abs(lam)))
    scale = xp.sqrt(xp.where(lam > noise, lam, 0.0))
    return GramFactor(Q * scale[None, :], "eigh", shift, mean, Q, scale)


def _apply_root_t_inverse(fac: GramFactor, Y: Any) -> Any:
    """``root^{-T} @ Y``; zero-eigenvalue directions (eigh route) map to zero (pseudo-inverse)."""
    xp = namespace(Y)
    if fac.kind == "cholesky":
        return xp.linalg.solve(fac.root.T, Y)
    safe = xp.where(fac.scale > 0, fac.scale, 1.0)
    inv = xp.where(fac.scale > 0, 1.0 / safe, 0.0)
    return fac.basis @ (inv[:, None] * Y)


def _svd_full(M: Any, xp: types.ModuleType) -> tuple[Any, Any, Any]:
    """Exact thin SVD ``M = P diag(s) Qt`` (LAPACK / cuSOLVER), descending ``s``."""
    P, s, Qt = xp.linalg.svd(M, full_matrices=False)
    return P, s, Qt


def _tail2(s: Any, total2: float) -> tuple[np.ndarray, float]:
    """``(tail, total)``: ``tail[k]`` the squared error at rank ``k`` (``k = 0..len(s)``) and
    the squared total, both divided by ``s[0]**2`` so that spectra near 1e+-150 neither
    overflow nor underflow.

    Summing the dropped values directly, not ``total - kept``, keeps small errors exact;
    whatever ``s`` does not cover (a partial spectrum) is added to every entry. A ``total2``
    that overflowed is taken as the sum of ``s**2`` (the exact paths pass full spectra).
    """
    sv = np.asarray(to_numpy(s), dtype=np.float64)
    c = float(sv[0]) if sv.size and sv[0] > 0 else 0.0
    if c == 0.0:
        return np.zeros(sv.size + 1), 0.0
    s2 = (sv / c) ** 2
    kept = float(s2.sum())
    total = total2 / c / c if math.isfinite(total2) else kept
    rest = total - kept
    # Two sums of the same squares in another order differ by a few eps of the total: such
    # a rest is rounding, not uncovered spectrum, and kept as such it made sqrt(n eps) (1e-8
    # relative in float64) a floor under every error of a full spectrum.
    if rest <= 4.0 * (sv.size + 1) * float(np.finfo(np.float64).eps) * max(total, kept):
        rest = 0.0
    tail = np.concatenate([np.cumsum(s2[::-1])[::-1], [0.0]]) + rest
    return tail, max(total, kept)


def _rank_for_tol(s: Any, total2: float, tol: float) -> int:
    """Smallest ``k >= 1`` with ``sqrt(sum of dropped s**2) <= tol * sqrt(total2)``.

    ``len(s)`` when no prefix of ``s`` meets ``tol`` (a partial spectrum).
    """
    tail, total = _tail2(s, total2)
    ok = np.nonzero(tail <= (tol * tol) * total)[0]
    k = int(ok[0]) if ok.size else len(tail) - 1
    return max(k, 1)


def _sum_squares(a: Any) -> float:
    """``sum(a**2)`` in float64, scaled by ``max|a|`` on the way (inf only beyond float64)."""
    xp = namespace(a)
    c = float(xp.max(xp.abs(a))) if a.size else 0.0
    if c == 0.0 or not math.isfinite(c):
        return 0.0 if c == 0.0 else math.inf
    return float(xp.sum((a.astype(np.float64) / c) ** 2)) * c * c


def _rel_error(tail2_k: float, total2: float) -> float:
    return math.sqrt(tail2_k / total2) if total2 > 0 else 0.0


def _error_at(s: Any, total2: float, k: int) -> float:
    """Relative error of the rank-``k`` truncation of a spectrum ``s`` with total ``total2``."""
    tail, total = _tail2(s, total2)
    return _rel_error(float(tail[k]), total)


def _balance(A: Any, B: Any, xp: types.ModuleType) -> tuple[Any, Any]:
    """Balanced factors ``(U, V)`` of ``A @ B`` (``A`` ``(m, k)``, ``B`` ``(k, n)``), same product.

    QR of ``A``, then the SVD of the small ``R @ B``: ``U = Q P sqrt(sig)``,
    ``V = sqrt(sig) Qt``. Costs ``O((m + n) k^2)``.
    """
    Q, R = xp.linalg.qr(A)
    P, sig, Qt = _svd_full(R @ B, xp)
    root = xp.sqrt(sig)
    return (Q @ P) * root[None, :], root[:, None] * Qt


def _weighted_block(W: Any, in_root: Any, out: Any) -> tuple[Any, Any]:
    """``M = O W S`` in float64 (``S = in_root``, ``None``: identity) and the output operator.

    ``out`` says what ``G = O^T O`` is: ``None`` (identity), a scalar ``w`` (``G = w I``,
    operator ``sqrt(w)``), a ``(m,)`` array of non-negative row weights (``G = diag``,
    operator the vector of their square roots), a :class:`GramFactor` (``O = root^T``) or an
    ``(m, m)`` positive semi-definite array (factored here by :func:`_gram_factor` without
    damping, so a ``G`` that is singular, as for a layer feeding a LayerNorm, stays exact).
    The operator is what :func:`_project` needs to undo ``O``.
    """
    xp = namespace(W)
    M = W.astype(np.float64)
    if in_root is not None:
        M = M @ in_root
    if out is None:
        return M, None
    if isinstance(out, GramFactor):
        return out.root.T @ M, out
    if isinstance(out, (int, float, np.floating, np.integer)):
        root = math.sqrt(max(float(out), 0.0))
        return root * M, root
    if out.ndim == 1:
        root = xp.sqrt(xp.maximum(out.astype(np.float64), 0.0))
        return root[:, None] * M, root
    fac = _gram_factor(out, 0.0)
    return fac.root.T @ M, fac


def _gram_term(W: Any, in_root: Any, out: Any) -> Any:
    """``(O W S)^T (O W S) = (W S)^T G (W S)`` without a square root of ``G`` (float64)."""
    xp = namespace(W)
    WS = W.astype(np.float64)
    if in_root is not None:
        WS = WS @ in_root
    if out is None:
        return WS.T @ WS
    if isinstance(out, GramFactor):
        M = out.root.T @ WS
        return M.T @ M
    if isinstance(out, (int, float, np.floating, np.integer)):
        return WS.T @ (max(float(out), 0.0) * WS)
    if out.ndim == 1:
        return WS.T @ (xp.maximum(out.astype(np.float64), 0.0)[:, None] * WS)
    return WS.T @ (out.astype(np.float64) @ WS)


def _stacked_spectrum(
    Ws: Sequence[Any],
    *,
    in_root: Any = None,
    outs: Sequence[Any] | None = None,
    cache: dict | None = None,
    keys: Sequence[Any] | None = None,
    left: bool = True,
) -> tuple[Any, Any, Any, list]:
    """Exact thin SVD ``M = P diag(s) Qt`` of the weighted stack ``M = [O_1 W_1 S; ...]``.

    The one home of the weighted spectrum: a single matrix (``compress_linear``, the command
    line) or several matrices reading the same input and sharing an input-side basis
    (``compress_model``'s Q/K/V candidates). All ``Ws`` have ``n`` columns; ``in_root`` is a
    square root ``S`` of the input metric (``(n, r)``, ``None``: identity) and ``outs[j]`` the
    output weight of ``Ws[j]`` in any form :func:`_weighted_block` takes. Dropping component
    ``i`` costs exactly ``s[i]**2`` of ``sum_j ||O_j (W_j - W_j') S||_F^2``; the shared basis
    lies along the top right singular vectors ``Qt[:k]``. With ``cache`` (a dict) and ``keys``
    (one hashable per matrix), each matrix's share is computed once however many stacks it
    enters. Returns ``(P, s, Qt, operators)``, one operator per matrix.

    ``left=False`` (only ``s`` and ``Qt`` wanted) on a tall stack (``sum m_j >= r``) takes the
    eigendecomposition of ``M^T M = sum_j (W_j S)^T G_j (W_j S)`` instead: no square root of
    any ``G_j`` (an ``m_j x m_j`` factorisation, 1536 x 1536 for an FFN up-projection), and the
    per-matrix terms add up for every subset of a group; measured 2.5-3x faster than the SVD
    route at MiniLM's sizes. Its singular values are accurate to about ``sqrt(eps) s[0]``,
    ample for rank allocation; ``P`` and the operators are then ``None``.
    """
    xp = namespace(*Ws)
    outs = [None] * len(Ws) if outs is None else list(outs)
    r = Ws[0].shape[1] if in_root is None else in_root.shape[1]
    tall = sum(W.shape[0] for W in Ws) >= r

    def cached(kind: str, j: int, make: Any) -> Any:
        key = None if cache is None or keys is None else (kind, keys[j])
        if key is not None and key in cache:
            return cache[key]
        value = make()
        if key is not None:
            cache[key] = value
        return value

    if not left and tall:
        H = None
        for j, (W, out) in enumerate(zip(Ws, outs, strict=True)):
            term = cached("gram", j, lambda W=W, out=out: _gram_term(W, in_root, out))
            H = term if H is None else H + term
        lam, V = xp.linalg.eigh(0.5 * (H + H.T))
        s = xp.sqrt(xp.maximum(lam[::-1], 0.0))
        return None, s, V[:, ::-1].T, [None] * len(Ws)
    blocks, ops = [], []
    for j, (W, out) in enumerate(zip(Ws, outs, strict=True)):
        M, op = cached("block", j, lambda W=W, out=out: _weighted_block(W, in_root, out))
        blocks.append(M)
        ops.append(op)
    M = blocks[0] if len(blocks) == 1 else xp.concatenate(blocks, axis=0)
    P, s, Qt = _svd_full(M, xp)
    return P, s, Qt, ops


def _weighted_spectrum(
    W: Any,
    *,
    in_factor: GramFactor | None = None,
    row_weights: Any = None,
    out_factor: GramFactor | None = None,
) -> WeightedSpectrum:
    """Exact SVD of ``M = G^(1/2) W S`` (computed in float64), for rank allocation.

    ``in_factor`` is the input metric ``S`` (``None``: identity); ``row_weights`` a ``(m,)``
    array of non-negative output-row weights (Fisher, FWSVD; ``G = diag(row_weights)``) or
    ``out_factor`` a full output metric (at most one of the two).
    """
    out = row_weights if row_weights is not None else out_factor
    root = None if in_factor is None else in_factor.root
    P, s, _, ops = _stacked_spectrum([W], in_root=root, outs=[out])
    return WeightedSpectrum(P, s, _sum_squares(s), W, ops[0])


def _project(spec: WeightedSpectrum, k: int) -> tuple[Any, Any]:
    """Unbalanced factors ``(A0, B0)``: ``A0 = G^(-1/2) P_k``, ``B0 = P_k^T G^(1/2) W``."""
    xp = namespace(spec.P)
    Pk = spec.P[:, :k]
    W = spec.W.astype(np.float64)
    out = spec.out
    if out is None:
        return Pk, Pk.T @ W
    if isinstance(out, GramFactor):
        return _apply_root_t_inverse(out, Pk), Pk.T @ (out.root.T @ W)
    # Diagonal weights: rows of zero weight do not enter the objective; they get the
    # least-squares fit of their row of W on the basis B0 instead of 0/0.
    B0 = Pk.T @ (out[:, None] * W)
    zero = out <= 0
    safe = xp.where(zero, 1.0, out)
    A0 = Pk / safe[:, None]
    if bool(xp.any(zero)):
        fit = W @ xp.linalg.pinv(B0)
        A0 = xp.where(zero[:, None], fit, A0)
    return A0, B0


def _factors_at_rank(spec: WeightedSpectrum, k: int) -> LowRankFactors:
    """Balanced rank-``k`` factors from a spectrum (projection form, no inverse of ``S``).

    ``error`` is the relative error in the spectrum's metric, from the dropped values.
    """
    xp = namespace(spec.P)
    k = min(k, spec.P.shape[1])
    A0, B0 = _project(spec, k)
    U, V = _balance(A0, B0, xp)
    dt = spec.W.dtype
    return LowRankFactors(U.astype(dt), V.astype(dt), spec.s, _error_at(spec.s, spec.total2, k))


def _choose_exact(p: int, rank: int | None, tol: float | None, exact: bool | None) -> bool:
    if exact is not None:
        return bool(exact)
    return p <= EXACT_SVD_MAX_DIM or (tol is None and rank is not None and 2 * rank > p)


def _plain_svd(
    A: Any, rank: int | None, tol: float | None, exact: bool, rng: Any
) -> tuple[Any, Any, Any, float]:
    """Top singular triplets of ``A`` at ``rank`` or ``tol`` and the relative error."""
    xp = namespace(A)
    if exact:
        P, s, Qt = _svd_full(A, xp)
        total2 = _sum_squares(s)
        k = rank if tol is None else _rank_for_tol(s, total2, tol)
        if rank is not None:
            k = min(k, rank)
        return P[:, :k], s[:k], Qt[:k], _error_at(s, total2, k)
    from ._truncated_svd import _truncated_svd_core

    rng = np.random.default_rng(0) if rng is None else rng
    P, s, Qt, rel = _truncated_svd_core(
        A, rank, tol=tol, rng=rng, kind="dense", want_error=True, stacklevel=4
    )
    return P, s, Qt, float(rel)


def _low_rank_core(
    W: Any,
    rank: int | None = None,
    tol: float | None = None,
    *,
    in_factor: GramFactor | None = None,
    row_weights: Any = None,
    out_factor: GramFactor | None = None,
    exact: bool | None = None,
    rng: Any = None,
) -> LowRankFactors:
    """Best rank-``rank`` (or smallest rank meeting relative error ``tol``) factors of ``W``.

    Minimises ``||G^(1/2) (W - U V) S||_F``: plain truncated SVD without weights, SVD-LLM's
    whitened SVD with ``in_factor``, FWSVD with ``row_weights`` (``G = diag(row_weights)``),
    and the two-sided form with an input and an output weight. ``exact=None`` picks an exact
    SVD when ``min(m, n) <= EXACT_SVD_MAX_DIM`` or the rank is over half of it (measured faster
    there), else ``_truncated_svd_core`` (randomized, seeded by ``rng``). With both ``rank`` and
    ``tol``, ``rank`` caps the rank. Without weights ``W`` is decomposed in its own precision
    (float32 stays float32), with weights in float64; factors come back in ``W``'s dtype.
    """
    xp = namespace(W)
    m, n = W.shape
    use_exact = _choose_exact(min(m, n), rank, tol, exact)
    weighted = in_factor is not None or row_weights is not None or out_factor is not None
    if not weighted:
        P, s, Qt, err = _plain_svd(W, rank, tol, use_exact, rng)
        root = xp.sqrt(s)
        return LowRankFactors(
            (P * root[None, :]).astype(W.dtype), (root[:, None] * Qt).astype(W.dtype), s, err
        )
    if use_exact:
        spec = _weighted_spectrum(
            W, in_factor=in_factor, row_weights=row_weights, out_factor=out_factor
        )
        k = rank if tol is None else _rank_for_tol(spec.s, spec.total2, tol)
        if rank is not None:
            k = min(k, rank)
        return _factors_at_rank(spec, k)
    M, out = _weighted_block(
        W,
        None if in_factor is None else in_factor.root,
        row_weights if row_weights is not None else out_factor,
    )
    P, s, _, err = _plain_svd(M, rank, tol, False, rng)
    spec = WeightedSpectrum(P, s, _sum_squares(M), W, out)
    # The randomized core's own error estimate is scale-safe; keep it.
    return _factors_at_rank(spec, s.shape[0])._replace(error=err)


def lowrank_sparse_params(
    m: int, n: int, rank: int, n_entries: int = 0, n_columns: int = 0
) -> int:
    """Parameters of a low-rank plus sparse matrix as :class:`LowRankSparseFactors` stores it.

    ``rank (m + n) + SPARSE_ENTRY_COST * n_entries + (m + 1 if n_entries else 0)
    + n_columns (m + 1)``: factors, entries with their column index, the row pointer, and whole
    columns with their index (bias not included).

    Examples
    --------
    >>> from sparselin.linalg._factorize import lowrank_sparse_params
    >>> lowrank_sparse_params(384, 1536, 100, n_entries=1000)
    194385
    """
    cost = rank * (m + n) + n_columns * (m + 1)
    if n_entries:
        cost += SPARSE_ENTRY_COST * n_entries + m + 1
    return cost


def _top_entries(R: Any, count: int, exclude_cols: Any, xp: types.ModuleType) -> Any:
    """Flat indices (sorted) of the ``count`` largest ``|R|`` outside ``exclude_cols``."""
    A = xp.abs(R)
    if exclude_cols is not None and exclude_cols.shape[0]:
        A = A.copy()
        A[:, exclude_cols] = -1.0
    flat = A.reshape(-1)
    excluded = 0 if exclude_cols is None else int(exclude_cols.shape[0]) * R.shape[0]
    if count >= flat.shape[0] - excluded:
        # Every entry outside the excluded columns: taking more would pick entries inside
        # them, which the columns already hold (counted twice: reported error 0, true 0.29).
        idx = xp.nonzero(flat >= 0)[0]
    else:
        idx = xp.argpartition(flat, flat.shape[0] - count)[flat.shape[0] - count :]
    return xp.sort(idx)


def _top_columns(R: Any, count: int, xp: types.ModuleType) -> Any:
    """Indices (sorted) of the ``count`` columns of ``R`` with the largest energy."""
    energy = xp.sum(R * R, axis=0)
    if count >= energy.shape[0]:
        return xp.arange(energy.shape[0])
    return xp.sort(xp.argpartition(energy, energy.shape[0] - count)[energy.shape[0] - count :])


def _sparse_part(
    R: Any, n_entries: int, n_columns: int, xp: types.ModuleType
) -> tuple[Any, Any, Any]:
    """The best residual support: columns first, then entries outside them; returns the
    dense ``S`` (zeros elsewhere), the column indices and the flat entry indices."""
    S = xp.zeros_like(R)
    cols = _top_columns(R, n_columns, xp) if n_columns else xp.zeros(0, dtype=np.int64)
    if n_columns:
        S[:, cols] = R[:, cols]
    flat = _top_entries(R, n_entries, cols, xp) if n_entries else xp.zeros(0, dtype=np.int64)
    if n_entries:
        S.reshape(-1)[flat] = R.reshape(-1)[flat]
    return S, cols, flat


def _lowrank_sparse_core(
    W: Any,
    rank: int,
    *,
    n_entries: int = 0,
    n_columns: int = 0,
    col_scale: Any = None,
    n_iter: int = 20,
    exact: bool | None = None,
    rng: Any = None,
) -> LowRankSparseFactors:
    """Low rank plus sparse residual by alternating minimisation (OATS-style).

    Minimises ``||(W - L - S) D||_F`` over rank-``rank`` ``L`` and ``S`` with at most
    ``n_entries`` nonzero entries (largest magnitude) plus ``n_columns`` whole columns
    (channel-wise, the columns of largest scaled energy), ``D = diag(col_scale)`` (``None``:
    identity; OATS uses ``sqrt(mean x_j^2)`` of the calibration inputs: a diagonal metric keeps
    the sparsity pattern meaningful, a full whitening would mix the columns). Starts from the
    truncated SVD, and again from the largest entries of ``W D``, and alternates the two partial
    minimisations (the support step is exact, the low-rank step exact when the SVD is), keeping
    the best iterate; each start stops after ``n_iter`` rounds or once a round lowers the error
    by less than 1e-4 of it.
    """
    xp = namespace(W)
    m, n = W.shape
    dt = np.float64 if W.dtype == np.float64 else np.float32
    Ws = W.astype(dt)
    d = None
    if col_scale is not None:
        d = col_scale.astype(dt)
        # A zero scale means a dead channel: its column does not matter; a floor keeps 1/d
        # finite.
        floor = float(xp.max(d)) * float(np.sqrt(np.finfo(dt).eps)) if d.shape[0] else 0.0
        d = xp.maximum(d, floor if floor > 0 else 1.0)
        Ws = Ws * d[None, :]
    use_exact = _choose_exact(min(m, n), rank, None, exact)
    # Errors are compared relative to max |W D|, so 1e+-150 entries neither overflow nor vanish.
    c = float(xp.max(xp.abs(Ws))) if Ws.size else 0.0
    c = c if c > 0 and math.isfinite(c) else 1.0
    norm2 = float(xp.sum((Ws.astype(np.float64) / c) ** 2))
    # Two starts: from the truncated SVD (S = 0) and from the largest entries of W itself.
    # Alternating projections stall in local minima; the SVD start alone stalled at 27 %
    # error where outliers 7x larger than the low-rank entries had been absorbed into L, which
    # the magnitude start recovers exactly. The better end point is kept.
    starts = [xp.zeros_like(Ws)]
    if n_entries or n_columns:
        starts.append(_sparse_part(Ws, n_entries, n_columns, xp)[0])
    best = None
    for S in starts:
        prev = float(np.finfo(np.float64).max)
        for _ in range(max(int(n_iter), 1)):
            P, s, Qt, _ = _plain_svd(Ws - S, rank, None, use_exact, rng)
            L = (P * s[None, :]) @ Qt
            S, cols, flat = _sparse_part(Ws - L, n_entries, n_columns, xp)
            E = Ws - L - S
            err2 = float(xp.sum((E.astype(np.float64) / c) ** 2))
            if best is None or err2 < best[0]:
                best = (err2, P, s, Qt, S, cols, flat)
            if not (n_entries or n_columns) or prev - err2 <= 1e-4 * prev:
                break
            prev = err2
    err2, P, s, Qt, S, cols, flat = best
    root = xp.sqrt(s)
    U = P * root[None, :]
    V = root[:, None] * Qt
    if d is not None:
        V = V / d[None, :]
        S = S / d[None, :]
    rows = xp.floor_divide(flat, n)
    indices = xp.remainder(flat, n)
    indptr = xp.concatenate(
        [xp.zeros(1, dtype=np.int64), xp.cumsum(xp.bincount(rows, minlength=m)).astype(np.int64)]
    )
    values = S.reshape(-1)[flat]
    column_values = S[:, cols]
    return LowRankSparseFactors(
        U.astype(W.dtype),
        V.astype(W.dtype),
        indptr,
        indices.astype(np.int64),
        values.astype(W.dtype),
        cols.astype(np.int64),
        column_values.astype(W.dtype),
        _rel_error(err2, norm2),
    )


def default_kronecker_shape(m: int, n: int) -> tuple[int, int]:
    """``(m1, n1)`` for ``A`` (``B`` is ``(m // m1, n // n1)``): the divisors of ``m`` and
    ``n`` nearest their square roots, which make the two factors of a term about equally large
    and their parameter count ``m1 n1 + m2 n2`` near its minimum.

    Examples
    --------
    >>> from sparselin.linalg._factorize import default_kronecker_shape
    >>> default_kronecker_shape(384, 1536)
    (16, 32)
    """

    def near_root(v: int) -> int:
        divisors = [d for d in range(1, v + 1) if v % d == 0]
        return min(divisors, key=lambda d: (abs(math.log(d) - 0.5 * math.log(v)), d))

    return near_root(m), near_root(n)


def kronecker_params(m: int, n: int, rank: int, shape_a: tuple[int, int]) -> int:
    """Parameters of a rank-``rank`` sum of Kronecker products: ``rank (m1 n1 + m2 n2)``.

    Examples
    --------
    >>> from sparselin.linalg._factorize import kronecker_params
    >>> kronecker_params(384, 1536, 4, (16, 32))
    6656
    """
    m1, n1 = shape_a
    return rank * (m1 * n1 + (m // m1) * (n // n1))


def _rearrange(W: Any, shape_a: tuple[int, int]) -> Any:
    """Van Loan-Pitsianis rearrangement: row ``(a, c)`` is block ``(a, c)`` of ``W`` flattened."""
    m, n = W.shape
    m1, n1 = shape_a
    m2, n2 = m // m1, n // n1
    return W.reshape(m1, m2, n1, n2).transpose(0, 2, 1, 3).reshape(m1 * n1, m2 * n2)


def _kronecker_core(
    W: Any,
    shape_a: tuple[int, int],
    rank: int | None = None,
    tol: float | None = None,
    *,
    exact: bool | None = None,
    rng: Any = None,
) -> KroneckerFactors:
    """Nearest sum of ``rank`` Kronecker products (Van Loan-Pitsianis).

    The rearrangement ``R`` (``(m1 n1) x (m2 n2)``, row ``(a, c)`` = block ``W[a m2:(a+1) m2,
    c n2:(c+1) n2]`` flattened) is a permuted copy of ``W`` (same size, nothing larger is
    formed); its rank-``r`` truncated SVD gives ``A_i = sqrt(s_i) u_i``, ``B_i = sqrt(s_i) v_i``
    and ``||W - sum kron(A_i, B_i)||_F = ||R - R_r||_F``.
    """
    xp = namespace(W)
    m, n = W.shape
    m1, n1 = shape_a
    m2, n2 = m // m1, n // n1
    dt = np.float64 if W.dtype == np.float64 else np.float32
    R = xp.ascontiguousarray(_rearrange(W.astype(dt), shape_a))
    use_exact = _choose_exact(min(R.shape), rank, tol, exact)
    P, s, Qt, err = _plain_svd(R, rank, tol, use_exact, rng)
    root = xp.sqrt(s)
    r = s.shape[0]
    A = (P * root[None, :]).T.reshape(r, m1, n1)
    B = (root[:, None] * Qt).reshape(r, m2, n2)
    return KroneckerFactors(
        xp.ascontiguousarray(A.astype(W.dtype)), xp.ascontiguousarray(B.astype(W.dtype)), s, err
    )


def _shared_basis_core(
    Ws: Sequence[Any],
    rank: int | None = None,
    tol: float | None = None,
    *,
    in_factor: GramFactor | None = None,
    exact: bool | None = None,
    rng: Any = None,
) -> SharedBasisFactors:
    """One input-side basis for matrices that read the same input (e.g. Q, K and V).

    Minimises ``sum_l ||(W_l - C_l B) S||_F^2`` over a shared ``B`` (``k x n``): the projection
    form on the stack ``[W_1; ...; W_g]``, whose balanced left factor splits into the
    per-matrix coefficients. All ``W_l`` must have the same number of columns.
    """
    xp = namespace(*Ws)
    stack = xp.concatenate([W for W in Ws], axis=0)
    f = _low_rank_core(stack, rank, tol, in_factor=in_factor, exact=exact, rng=rng)
    bounds = np.cumsum([0] + [W.shape[0] for W in Ws])
    coefficients = [f.U[bounds[i] : bounds[i + 1]] for i in range(len(Ws))]
    return SharedBasisFactors(f.V, coefficients, f.s, f.error)
