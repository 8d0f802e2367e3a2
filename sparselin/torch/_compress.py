"""``compress_linear``: replace one trained linear layer by a factorised one with controlled error.

The tensors go to the array cores of :mod:`sparselin.linalg._factorize` without copies where the
dtype allows: CPU tensors as NumPy views (``Tensor.numpy()``), CUDA tensors as CuPy arrays through
DLPack. bfloat16/float16 weights are decomposed in float32 (a cast, hence one copy) and the
factors are stored back in the layer's dtype.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._array import cupy_or_none, namespace
from .._validation import check_int, check_random_state, check_real
from ..linalg import _factorize as fz
from ._layers import (
    KroneckerLinear,
    LowRankLinear,
    LowRankSparseLinear,
    SharedBasisLinear,
    mark_conv1d_source,
)

__all__ = ["GramAccumulator", "compress_linear", "compress_shared"]

METHODS = ("svd", "whitened", "fisher", "lowrank_sparse", "kronecker")


class GramAccumulator(fz.GramAccumulator):
    """Streaming float64 ``X^T X`` of a layer's inputs, fed with torch tensors (or arrays).

    A :class:`sparselin.linalg._factorize.GramAccumulator` whose :meth:`update` also takes
    torch tensors (CPU through a NumPy view, CUDA through DLPack to CuPy, bfloat16/float16 cast
    to float32 first). Pass it as ``calibration`` to :func:`compress_linear`; fill it from a
    forward hook so that the batches are never kept.

    Parameters
    ----------
    n_features : int
        The layer's ``in_features``.
    device : str or torch.device, default "cpu"
        Where the sums live: ``"cpu"`` (NumPy) or a CUDA device (CuPy).

    Examples
    --------
    >>> import torch
    >>> from sparselin.torch import GramAccumulator
    >>> acc = GramAccumulator(4)
    >>> for _ in range(3):
    ...     _ = acc.update(torch.randn(2, 10, 4))  # (batch, tokens, features)
    >>> acc.n_samples, acc.gram.shape
    (60, (4, 4))
    """

    def __init__(self, n_features: int, device: Any = "cpu") -> None:
        n_features = check_int(n_features, "n_features", low=1)
        self.device = torch.device(device)
        super().__init__(n_features, xp=_xp_for(self.device))

    def update(self, X: Any, mask: Any = None) -> GramAccumulator:
        """Add a batch ``X`` (``(..., n_features)``, tensor or array); rows where ``mask``
        (shape ``X.shape[:-1]``) is false are padding and left out. Returns ``self``."""
        if isinstance(X, Tensor):
            if X.ndim < 1 or X.shape[-1] != self.n_features:
                raise ValueError(
                    f"X must have last dimension n_features={self.n_features}, "
                    f"got shape {tuple(X.shape)}"
                )
            X = _to_array(X.to(self.device))
        if isinstance(mask, Tensor):
            mask = _to_array(mask.to(self.device), keep_dtype=True)
        return super().update(X, mask)


def _xp_for(device: torch.device) -> Any:
    if device.type == "cpu":
        return np
    if device.type != "cuda":
        raise ValueError(f"device must be 'cpu' or a CUDA device, got {device}")
    cp = cupy_or_none()
    if cp is None:
        raise ImportError("CUDA tensors need CuPy: pip install 'sparselin[gpu]'")
    return cp


def _to_array(t: Tensor, dtype: torch.dtype | None = None, keep_dtype: bool = False) -> Any:
    """A tensor as a NumPy (CPU, a view) or CuPy (CUDA, DLPack, no copy) array.

    Floating tensors other than float32/float64 (bfloat16, float16) are cast to float32 first,
    the one copy made; ``dtype`` forces a dtype; ``keep_dtype`` keeps any dtype (masks).
    """
    t = t.detach()
    if not keep_dtype:
        if dtype is None:
            dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32
        if t.dtype != dtype:
            t = t.to(dtype)
    if t.device.type == "cpu":
        return t.resolve_conj().resolve_neg().numpy()
    cp = _xp_for(t.device)
    return cp.from_dlpack(t)


def _to_tensor(a: Any, like: Tensor) -> Tensor:
    """An array back as a tensor on ``like``'s device in ``like``'s dtype."""
    t = (
        torch.from_numpy(np.ascontiguousarray(a))
        if isinstance(a, np.ndarray)
        else (torch.from_dlpack(a))
    )
    return t.to(device=like.device, dtype=like.dtype)


def _is_conv1d(layer: Any) -> bool:
    """GPT-2 style ``Conv1D``: ``y = x W + b`` with ``weight`` of shape ``(in, out)``."""
    w = getattr(layer, "weight", None)
    return (
        isinstance(layer, nn.Module)
        and type(layer).__name__ == "Conv1D"
        and isinstance(w, Tensor)
        and w.ndim == 2
    )


def _weight_matrix(layer: nn.Module) -> tuple[Tensor, Tensor | None]:
    """The ``(out, in)`` weight (a view, transposed for Conv1D) and bias of a linear layer."""
    if isinstance(layer, nn.Linear):
        return layer.weight, layer.bias
    if _is_conv1d(layer):
        return layer.weight.T, getattr(layer, "bias", None)
    raise TypeError(
        "layer must be an nn.Linear or a GPT-2 style Conv1D (weight of shape (in, out)), "
        f"got {type(layer).__name__}"
    )


def _iter_batches(calibration: Any) -> Iterable[Any]:
    if isinstance(calibration, (Tensor, np.ndarray)):
        return (calibration,)
    if isinstance(calibration, (str, bytes, dict)) or not isinstance(calibration, Iterable):
        raise TypeError(
            "calibration must be a tensor of inputs (..., in_features), an iterable of such "
            f"batches, or a GramAccumulator, got {type(calibration).__name__}"
        )
    return calibration


def _gram_from_calibration(calibration: Any, n: int, device: torch.device) -> fz.GramAccumulator:
    """A filled accumulator from a tensor, an iterable of tensors or an accumulator."""
    if isinstance(calibration, fz.GramAccumulator):
        if calibration.n_features != n:
            raise ValueError(
                f"calibration must accumulate inputs of width in_features={n}, "
                f"got a GramAccumulator of n_features={calibration.n_features}"
            )
        acc = calibration
    else:
        acc = GramAccumulator(n, device=device)
        for X in _iter_batches(calibration):
            if not isinstance(X, (Tensor, np.ndarray)):
                raise TypeError(f"calibration batches must be tensors, got {type(X).__name__}")
            if X.ndim < 1 or X.shape[-1] != n:
                raise ValueError(
                    f"calibration must have last dimension in_features={n}, "
                    f"got shape {tuple(X.shape)}"
                )
            if isinstance(X, np.ndarray):
                X = torch.from_numpy(X)
            if not X.is_floating_point():
                raise TypeError(f"calibration must be floating point, got {X.dtype}")
            acc.update(X)
    if acc.xp is not _xp_for(device):
        raise ValueError(
            f"calibration's GramAccumulator lives on {acc.xp.__name__}, the layer on {device}; "
            "accumulate on the layer's device"
        )
    if acc.n_samples == 0:
        raise ValueError("calibration holds no samples")
    if not bool(acc.xp.isfinite(acc.gram).all()):
        raise ValueError("calibration contains NaN or infinity (or overflows float64)")
    return acc


def _check_rank_tol(rank: Any, tol: Any, r_max: int) -> tuple[int | None, float | None]:
    if rank is None and tol is None:
        raise ValueError("give the rank, the relative error tol, or both")
    if rank is not None:
        rank = check_int(rank, "rank", low=1, high=r_max)
    if tol is not None:
        tol = check_real(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)
    return rank, tol


def _row_weights(fisher: Any, W_t: Tensor, conv1d: bool, damping: float) -> Any:
    """Damped Fisher row weights ``(out,)`` as an array on the weight's device."""
    m, n = W_t.shape
    if not isinstance(fisher, Tensor):
        raise TypeError(
            "fisher must be a tensor (row weights (out,) or per-entry Fisher with the shape of "
            f"layer.weight) or a GramAccumulator of output gradients, got {type(fisher).__name__}"
        )
    f = fisher.detach().to(device=W_t.device, dtype=torch.float64)
    wshape = (n, m) if conv1d else (m, n)
    if tuple(f.shape) == (m,):
        w = f
    elif tuple(f.shape) == wshape:
        w = f.sum(dim=0 if conv1d else 1)
    else:
        raise ValueError(
            f"fisher must have shape ({m},) or the weight's shape {wshape}, got {tuple(f.shape)}"
        )
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError("fisher must be finite and non-negative")
    level = float(w.mean())
    if level <= 0.0:
        raise ValueError("fisher is all zero: it weights no row")
    return _to_array(w + damping * level)


def compress_linear(
    layer: nn.Module,
    *,
    rank: int | None = None,
    tol: float | None = None,
    method: str = "svd",
    calibration: Any = None,
    fisher: Any = None,
    damping: float = fz.DEFAULT_DAMPING,
    center: bool = False,
    n_entries: int | None = None,
    n_columns: int = 0,
    shape_a: tuple[int, int] | None = None,
    random_state: Any = None,
    return_error: bool = False,
) -> nn.Module | tuple[nn.Module, float]:
    """Replace a trained linear layer by a factorised one, at a given rank or relative error.

    Parameters
    ----------
    layer : nn.Linear or Conv1D-style module
        ``nn.Linear`` (weight ``(out, in)``) or a GPT-2 style ``Conv1D`` (class named
        ``Conv1D`` with ``weight`` ``(in, out)``, ``y = x W + b``). Never modified.
    rank : int, optional
        Rank of the factors, ``1 <= rank <= min(in, out)`` (``"kronecker"``: number of terms,
        ``<= min(m1 n1, m2 n2)``). With ``tol``, an upper bound.
    tol : float in (0, 1), optional
        Smallest rank whose relative error (in the method's metric, see ``return_error``) is at
        most ``tol``.
    method : {"svd", "whitened", "fisher", "lowrank_sparse", "kronecker"}
        ``"svd"``: truncated SVD of W (Frobenius error). ``"whitened"``: minimises the output
        error ``||(W - W') X||_F`` on the calibration inputs (SVD-LLM's objective, solved in
        projection form so that a singular ``X X^T``, e.g. after a LayerNorm, is harmless);
        needs ``calibration``. ``"fisher"``: minimises ``||D (W - W')||_F`` with ``D^2`` the
        Fisher row weights (FWSVD), needs ``fisher``; with ``calibration`` too, both sides are
        weighted. ``"lowrank_sparse"``: low rank plus ``n_entries`` sparse entries and
        ``n_columns`` whole input channels of the residual, by alternating minimisation
        (scaled by the calibration inputs' channel norms when given, as OATS does).
        ``"kronecker"``: nearest sum of Kronecker products (Van Loan-Pitsianis).
    calibration : tensor, iterable of tensors, or GramAccumulator, optional
        Inputs of the layer, shape ``(..., in_features)``, or batches of them (accumulated in
        float64 without being kept), or a filled :class:`GramAccumulator`.
    fisher : tensor or GramAccumulator, optional
        ``(out,)`` non-negative row weights, or the per-entry Fisher information (mean squared
        gradients) with the shape of ``layer.weight`` (summed into row weights), or a
        :class:`GramAccumulator` of the gradients with respect to the layer's output (a full
        output metric).
    damping : float, default 1e-6
        Relative damping ``damping * mean(diag C)`` added to every Gram matrix (and
        ``damping * mean(w)`` to the row weights).
    center : bool, default False
        With ``calibration`` (``"whitened"``, ``"fisher"``): whiten with the centred
        covariance and refit the bias to absorb the mean, ``b' = b + (W - W') mu`` (a bias is
        added to a layer without one). Never a larger output error on the calibration inputs.
    n_entries : int, optional
        ``"lowrank_sparse"``: sparse residual entries outside the ``n_columns`` dense
        columns, at most ``out * (in - n_columns)`` (default: 10 % of the factors'
        parameters, at 2 parameters per entry).
    n_columns : int, default 0
        ``"lowrank_sparse"``: dense residual columns (input channels).
    shape_a : (int, int), optional
        ``"kronecker"``: the shape ``(m1, n1)`` of each ``A_i`` (default: the divisors nearest
        the square roots of ``out`` and ``in``).
    random_state : None, int or numpy Generator
        Seed of the randomized SVD used for large matrices (``min(in, out) > 640``).
    return_error : bool, default False
        Also return the relative error: Frobenius for ``"svd"``, ``"lowrank_sparse"`` (in the
        channel-scaled metric with calibration) and ``"kronecker"``; the relative output error
        ``||(W - W') X||_F / ||W X||_F`` on the (damped, possibly centred) calibration
        statistics for ``"whitened"``; the weighted error for ``"fisher"``.

    Returns
    -------
    new_layer : LowRankLinear, LowRankSparseLinear or KroneckerLinear
        On the layer's device, in its dtype (bfloat16/float16 weights are decomposed in
        float32, float32 in float32 or, with calibration or Fisher weights, float64).
    error : float
        Only with ``return_error=True``.

    Raises
    ------
    TypeError
        For a layer that is not linear, or arguments of the wrong type.
    ValueError
        For ``rank`` outside ``[1, min(in, out)]``, ``tol`` outside (0, 1), neither given, an
        unknown ``method``, a missing or mis-shaped ``calibration``/``fisher``, options that
        the method does not use, or NaN/inf in the weight or the calibration.

    Examples
    --------
    >>> import torch
    >>> from sparselin.torch import compress_linear
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> dense = torch.nn.Linear(64, 32)
    >>> x = torch.randn(1000, 64) @ torch.randn(64, 64) * 0.1  # correlated inputs
    >>> plain, e1 = compress_linear(dense, rank=8, return_error=True)
    >>> aware, e2 = compress_linear(dense, rank=8, method="whitened", calibration=x,
    ...                             return_error=True)
    >>> type(aware).__name__, aware.n_params
    ('LowRankLinear', 800)
    >>> def out_err(new):
    ...     with torch.no_grad():
    ...         return float((new(x) - dense(x)).norm() / (dense(x) - dense.bias).norm())
    >>> bool(out_err(aware) < out_err(plain)), abs(out_err(aware) - e2) < 1e-3
    (True, True)
    """
    W_t, b_t = _weight_matrix(layer)
    conv1d = _is_conv1d(layer) and not isinstance(layer, nn.Linear)
    m, n = W_t.shape
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "kronecker":
        if shape_a is None:
            shape_a = fz.default_kronecker_shape(m, n)
        shape_a = _check_shape_a(shape_a, m, n)
        r_max = min(shape_a[0] * shape_a[1], (m // shape_a[0]) * (n // shape_a[1]))
    else:
        if shape_a is not None:
            raise ValueError("shape_a is only used by method='kronecker'")
        r_max = min(m, n)
    rank, tol = _check_rank_tol(rank, tol, r_max)
    damping = check_real(damping, "damping", low=0.0)
    for flag, name in ((center, "center"), (return_error, "return_error")):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    if method != "lowrank_sparse" and (n_entries is not None or n_columns):
        raise ValueError("n_entries and n_columns are only used by method='lowrank_sparse'")
    if method == "whitened" and calibration is None:
        raise ValueError("method='whitened' needs calibration inputs")
    if method in ("svd", "kronecker") and calibration is not None:
        raise ValueError(f"calibration is not used by method={method!r}")
    if method == "fisher" and fisher is None:
        raise ValueError("method='fisher' needs fisher (row weights or Fisher information)")
    if method != "fisher" and fisher is not None:
        raise ValueError("fisher is only used by method='fisher'")
    if center and (calibration is None or method not in ("whitened", "fisher")):
        raise ValueError("center=True needs calibration and method 'whitened' or 'fisher'")
    if method == "lowrank_sparse":
        n_columns = check_int(n_columns, "n_columns", low=0, high=n)
        if n_entries is not None:
            # Entries live outside the dense columns: asking for more than there are made the
            # core pick entries inside them too, which the layer then added twice (reported
            # error 0, true error 0.29 for n_columns=15 of 16 and 20 entries).
            n_entries = check_int(n_entries, "n_entries", low=0, high=m * (n - n_columns))
    rng = check_random_state(random_state)
    if not bool(torch.isfinite(W_t).all()):
        raise ValueError("layer.weight contains NaN or infinity")
    if b_t is not None and not bool(torch.isfinite(b_t).all()):
        raise ValueError("layer.bias contains NaN or infinity")

    W = _to_array(W_t)
    acc = None
    if calibration is not None:
        acc = _gram_from_calibration(calibration, n, W_t.device)
    bias0: Any = None if b_t is None else b_t.detach()
    col_scale = None
    if method == "lowrank_sparse" and acc is not None:
        diag = acc.xp.diagonal(acc.gram) / acc.n_samples
        col_scale = acc.xp.sqrt(diag + damping * float(acc.xp.mean(diag)))
    in_factor = row_weights = out_factor = None
    if method in ("whitened", "fisher"):
        in_factor = None if acc is None else acc.factor(damping, centered=bool(center))
        if method == "fisher":
            if isinstance(fisher, fz.GramAccumulator):
                if fisher.n_features != m:
                    raise ValueError(
                        f"fisher must accumulate output gradients of width out_features={m}, "
                        f"got n_features={fisher.n_features}"
                    )
                if fisher.xp is not namespace(W):
                    raise ValueError("fisher's GramAccumulator must live on the layer's device")
                out_factor = fisher.factor(damping)
            else:
                row_weights = _row_weights(fisher, W_t, conv1d, damping)

    def build(rank: int | None, tol: float | None) -> nn.Module:
        bias_out = bias0
        if method == "kronecker":
            kf = fz._kronecker_core(W, shape_a, rank, tol, rng=rng)
            like = W_t
            return KroneckerLinear.from_factors(
                _to_tensor(kf.A, like), _to_tensor(kf.B, like), bias_out
            )
        if method == "lowrank_sparse":
            ls = _lowrank_sparse_search(W, rank, tol, n_entries, n_columns, col_scale, rng)
            return LowRankSparseLinear.from_factors(
                _to_tensor(ls.U, W_t),
                _to_tensor(ls.V, W_t),
                indptr=_to_tensor(ls.indptr, torch.empty(0, dtype=torch.int64, device=W_t.device)),
                indices=_to_tensor(
                    ls.indices, torch.empty(0, dtype=torch.int64, device=W_t.device)
                ),
                values=_to_tensor(ls.values, W_t),
                columns=_to_tensor(
                    ls.columns, torch.empty(0, dtype=torch.int64, device=W_t.device)
                ),
                column_values=_to_tensor(ls.column_values, W_t),
                bias=bias_out,
            )
        f = fz._low_rank_core(
            W,
            rank,
            tol,
            in_factor=in_factor,
            row_weights=row_weights,
            out_factor=out_factor,
            rng=rng,
        )
        if center:
            xp = acc.xp
            mu = in_factor.mean
            delta = W.astype(np.float64) @ mu - f.U.astype(np.float64) @ (
                f.V.astype(np.float64) @ mu
            )
            base = 0.0 if b_t is None else _to_array(b_t, torch.float64)
            bias_out = _to_tensor(xp.asarray(base + delta), W_t)
        return LowRankLinear.from_factors(_to_tensor(f.U, W_t), _to_tensor(f.V, W_t), bias_out)

    # The error reported (and held to tol) is that of the layer returned, its factors
    # rounded to the layer's dtype: the factorisation's own figure ignored that rounding,
    # which for bfloat16 weights said 0.0019 for a true 0.0034 at tol=0.002.
    in_root = None
    if in_factor is not None:
        in_root = in_factor.root
    elif col_scale is not None:
        in_root = acc.xp.diag(col_scale)
    out_w = row_weights if row_weights is not None else out_factor
    norm_w = _weighted_norm(W, in_root, out_w)

    def stored_error(layer: nn.Module) -> float:
        Wh = _to_array(layer.dense_weight().detach(), torch.float64)
        D = W.astype(np.float64) - Wh
        return _weighted_norm(D, in_root, out_w) / norm_w if norm_w > 0 else 0.0

    new = build(rank, tol)
    error = stored_error(new)
    # With tol, rank is an upper bound: at that bound tol may be out of reach by design.
    cap = r_max if rank is None else rank
    if tol is not None and error > tol and _size(new) < cap:
        # Tighten the tolerance handed to the factorisation until the stored layer meets
        # the caller's (the command line does the same for its 16-bit files).
        t = tol
        for _ in range(12):
            t *= min(0.9, tol / error)
            cand = build(rank, t)
            cand_error = stored_error(cand)
            if cand_error < error:
                new, error = cand, cand_error
            if error <= tol or _size(cand) >= cap:
                break
        if error > tol and cap == r_max:
            warnings.warn(
                f"tol={tol:g} is not met by the layer stored in {W_t.dtype}: its best "
                f"relative error is {error:.3g} (rounding of the factors to the layer's "
                "dtype); returned that layer",
                RuntimeWarning,
                stacklevel=2,
            )
    if conv1d:
        mark_conv1d_source(new)
    if return_error:
        return new, float(error)
    return new


def _weighted_norm(D: Any, in_root: Any, out: Any) -> float:
    """``||O D S||_F`` in the metric of the factorisation (see ``fz._weighted_block``)."""
    M, _ = fz._weighted_block(D, in_root, out)
    xp = namespace(M)
    return float(xp.linalg.norm(M))


def _size(layer: nn.Module) -> int:
    """The rank of a built layer (the number of terms of a KroneckerLinear)."""
    return int(layer.rank)


def _check_shape_a(shape_a: Any, m: int, n: int) -> tuple[int, int]:
    if not isinstance(shape_a, (tuple, list)) or len(shape_a) != 2:
        raise TypeError(f"shape_a must be a pair (m1, n1), got {shape_a!r}")
    m1 = check_int(shape_a[0], "shape_a[0]", low=1, high=m)
    n1 = check_int(shape_a[1], "shape_a[1]", low=1, high=n)
    if m % m1 or n % n1:
        raise ValueError(f"shape_a=({m1}, {n1}) must divide the weight's shape ({m}, {n})")
    return m1, n1


def _default_entries(m: int, n: int, k: int) -> int:
    # A tenth of the factors' parameters, at SPARSE_ENTRY_COST each (the research notes'
    # 5-10 % of the budget).
    return min(m * n, round(0.1 * k * (m + n) / fz.SPARSE_ENTRY_COST))


def _lowrank_sparse_search(
    W: Any,
    rank: int | None,
    tol: float | None,
    n_entries: int | None,
    n_columns: int,
    col_scale: Any,
    rng: Any,
) -> fz.LowRankSparseFactors:
    """Fixed rank, or the smallest rank whose low-rank-plus-sparse error meets ``tol``.

    The plain SVD's rank at ``tol`` (in the same metric) always meets it (the alternation
    starts from that SVD and never increases the error), so a bisection below it finds the
    smallest rank that does with the sparse residual.
    """
    m, n = W.shape

    def run(k: int) -> fz.LowRankSparseFactors:
        ne = (
            min(_default_entries(m, n, k), m * (n - n_columns)) if n_entries is None else n_entries
        )
        return fz._lowrank_sparse_core(
            W, k, n_entries=ne, n_columns=n_columns, col_scale=col_scale, rng=rng
        )

    if tol is None:
        return run(rank)
    xp = namespace(W)
    Ws = W.astype(np.float64) * (1.0 if col_scale is None else col_scale[None, :])
    s = xp.linalg.svd(Ws, compute_uv=False)
    hi = fz._rank_for_tol(s, float(xp.sum(s * s)), tol)
    if rank is not None:
        hi = min(hi, rank)
    best = run(hi)
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        f = run(mid)
        if f.error <= tol:
            best, hi = f, mid
        else:
            lo = mid + 1
    return best


def compress_shared(
    layers: Sequence[nn.Module],
    *,
    rank: int | None = None,
    tol: float | None = None,
    method: str = "svd",
    calibration: Any = None,
    damping: float = fz.DEFAULT_DAMPING,
    random_state: Any = None,
    return_error: bool = False,
) -> list[SharedBasisLinear] | tuple[list[SharedBasisLinear], float]:
    """Replace layers that read the same input (e.g. Q, K, V) by layers sharing one basis.

    ``W_l ~= C_l B`` with one ``B`` of shape ``(rank, in)``: costs ``rank (in + sum out_l)``
    instead of ``sum rank (in + out_l)``. ``method`` is ``"svd"`` (Frobenius error of the
    stack) or ``"whitened"`` (output error on ``calibration``, the shared input, minimised in
    projection form as in :func:`compress_linear`).

    Parameters
    ----------
    layers : sequence of nn.Linear or Conv1D-style modules
        At least one; all with the same ``in_features``, dtype and device. Never modified.
    rank : int, optional
        Size of the shared basis, ``1 <= rank <= min(in, sum out_l)``.
    tol : float in (0, 1), optional
        Smallest basis whose relative error over the whole stack is at most ``tol``.
    method : {"svd", "whitened"}
    calibration : tensor, iterable of tensors, or GramAccumulator, optional
        The shared input (``"whitened"``).
    damping, random_state, return_error
        As in :func:`compress_linear`.

    Returns
    -------
    layers : list of SharedBasisLinear
        In the order given, sharing one :class:`SharedBasis`.
    error : float
        Only with ``return_error=True``: the relative error of the stack.
    """
    if isinstance(layers, nn.Module) or not isinstance(layers, Sequence) or not layers:
        raise TypeError("layers must be a non-empty sequence of linear layers")
    mats = [_weight_matrix(layer) for layer in layers]
    n = mats[0][0].shape[1]
    dtype, device = mats[0][0].dtype, mats[0][0].device
    for W_t, _ in mats:
        if W_t.shape[1] != n or W_t.dtype != dtype or W_t.device != device:
            raise ValueError("layers must share in_features, dtype and device")
        if not bool(torch.isfinite(W_t).all()):
            raise ValueError("a layer's weight contains NaN or infinity")
    if method not in ("svd", "whitened"):
        raise ValueError(f"method must be 'svd' or 'whitened', got {method!r}")
    rank, tol = _check_rank_tol(rank, tol, min(n, sum(W.shape[0] for W, _ in mats)))
    damping = check_real(damping, "damping", low=0.0)
    if method == "whitened" and calibration is None:
        raise ValueError("method='whitened' needs calibration inputs")
    if method == "svd" and calibration is not None:
        raise ValueError("calibration is not used by method='svd'")
    rng = check_random_state(random_state)
    in_factor = None
    if calibration is not None:
        in_factor = _gram_from_calibration(calibration, n, device).factor(damping)
    like = mats[0][0]
    arrays = [_to_array(W) for W, _ in mats]

    def build(t: float | None) -> list[SharedBasisLinear]:
        f = fz._shared_basis_core(arrays, rank, t, in_factor=in_factor, rng=rng)
        return SharedBasisLinear.group(
            _to_tensor(f.basis, like),
            [_to_tensor(C, like) for C in f.coefficients],
            [None if b is None else b.detach() for _, b in mats],
        )

    # As in compress_linear: the error (and tol) of the layers returned, factors rounded.
    in_root = None if in_factor is None else in_factor.root
    norm2 = sum(_weighted_norm(W, in_root, None) ** 2 for W in arrays)

    def stored_error(group: list[SharedBasisLinear]) -> float:
        num2 = 0.0
        for W, layer in zip(arrays, group, strict=True):
            Wh = _to_array(layer.dense_weight().detach(), torch.float64)
            num2 += _weighted_norm(W.astype(np.float64) - Wh, in_root, None) ** 2
        return float(np.sqrt(num2 / norm2)) if norm2 > 0 else 0.0

    new = build(tol)
    error = stored_error(new)
    cap = min(n, sum(W.shape[0] for W, _ in mats)) if rank is None else rank
    if tol is not None and error > tol and new[0].rank < cap:
        t = tol
        for _ in range(12):
            t *= min(0.9, tol / error)
            cand = build(t)
            cand_error = stored_error(cand)
            if cand_error < error:
                new, error = cand, cand_error
            if error <= tol or cand[0].rank >= cap:
                break
    for layer, source in zip(new, layers, strict=True):
        if _is_conv1d(source) and not isinstance(source, nn.Linear):
            mark_conv1d_source(layer)
    if return_error:
        return new, float(error)
    return new
