"""Error-constrained clustering of matrices that share their row space.

Private core (helpers of :func:`sparselin.linalg.compress_collection` and
``sparselin.torch.compress_model`` call it; the caller has validated the input)::

    def _cluster_matrices_core(
        mats: Sequence[Array],          # 2-D, same row count m, one namespace, one real float
                                        # dtype, finite; NOT copied, never modified
        rank: int,                      # >= 1
        tol: float,                     # relative Frobenius error target in (0, 1)
        *,
        method: str = "projection_bound",  # "norm_bound" | "residual_bound" |
                                        # "projection_bound" | "estimate" | "exact"
        order: str = "residual",        # candidate scan order: "norm" | "residual"
        max_rejections: int = 1,        # candidates refused before a cluster is closed
        patience: int | None = None,    # stop after this many clusters that accept nothing
        n_oversamples: int = 5,         # only for method="estimate"
        verify: bool = False,           # exact SVD of each cluster's concatenation
        random_state=None,              # int | Generator | None (T_r of wide heads)
    ) -> MatrixClusters

:class:`MatrixClusters` has ``clusters`` (``list[list[int]]``, a partition of
``range(len(mats))``, each cluster head first), ``labels`` (int64 ndarray,
``labels[i]`` = index of the cluster holding ``mats[i]``), ``predicted_errors`` (float64
ndarray, relative, per cluster; an upper bound for the provable methods), ``verified_errors``
(float64 ndarray or None), ``method``, ``rank``, ``tol``, ``order``, ``layout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_int, check_random_state, squared_norm
from ._concat import (
    _check_bool,
    _check_collection,
    _check_oversamples,
    _check_rank,
    _check_tol,
    _ClusterEstimateState,
    _Collection,
    _energy_scale,
    _exact_tail2,
    _ExactState,
    _hstack,
    _narrow_head,
    _norm2,
    _norm_order,
    _NormBoundState,
    _ProjectionState,
    _relative,
    _ResidualState,
    _small_calls,
)

__all__ = ["MatrixClusters", "cluster_matrices"]

# method -> whether its clusters provably meet tol (the exact reference trivially does).
_METHODS = {
    "norm_bound": True,
    "residual_bound": True,
    "projection_bound": True,
    "estimate": False,
    "exact": True,
}
_ORDERS = ("norm", "residual")
_LAYOUTS = ("horizontal", "vertical")


@dataclass(frozen=True)
class MatrixClusters:
    """Clusters of matrices whose concatenations have a small rank-``r`` error.

    Attributes
    ----------
    clusters : list of list of int
        Indices into the input collection; every index appears in exactly one cluster. Within
        a cluster the head (the largest blocks) comes first, then the blocks in the order they
        were merged.
    labels : ndarray of shape (N,), int64
        ``labels[i]`` is the index in ``clusters`` of the cluster holding matrix ``i``.
    predicted_errors : ndarray of shape (n_clusters,), float64
        The method's relative rank-``r`` error of each cluster's concatenation: an upper
        bound for ``"norm_bound"``, ``"residual_bound"`` and ``"exact"``, an estimate for
        ``"estimate"``. At most ``tol`` for every cluster of two or more matrices (a singleton
        or a head of several blocks of total width ``<= rank`` is kept whatever its error;
        the latter's is 0).
    verified_errors : ndarray of shape (n_clusters,), float64, or None
        The exact relative errors from an SVD of each concatenation (``verify=True``).
    method, order, layout : str
        The options used.
    rank : int
        The rank ``r`` shared by every cluster.
    tol : float
        The relative error threshold.
    """

    clusters: list[list[int]]
    labels: np.ndarray
    predicted_errors: np.ndarray
    verified_errors: np.ndarray | None
    method: str
    rank: int
    tol: float
    order: str = "norm"
    layout: str = "horizontal"

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return len(self.clusters)

    @property
    def provable(self) -> bool:
        """Whether the method guarantees ``predicted_errors`` are upper bounds."""
        return _METHODS[self.method]


def cluster_matrices(
    mats: Sequence[Any],
    rank: int,
    tol: float,
    *,
    method: str = "projection_bound",
    order: str = "residual",
    max_rejections: int = 1,
    patience: int | None = None,
    n_oversamples: int = 5,
    verify: bool = False,
    layout: str = "horizontal",
    random_state: Any = None,
) -> MatrixClusters:
    r"""Group matrices so that each group's rank-``r`` SVD has relative error at most ``tol``.

    The greedy algorithms of Shamrai (2026). A group ``C`` is compressed by the rank-``r``
    truncated SVD of its concatenation :math:`M_C = [A_i]_{i \in C}` (one shared basis of
    ``r`` columns plus per-matrix coefficients); its relative error
    :math:`e_r(M_C) = \|M_C - (M_C)_r\|_F / \|M_C\|_F` is predicted without an SVD of
    :math:`M_C`. Repeatedly, until every matrix is placed:

    1. **Head.** The largest remaining matrix (Frobenius norm), with the next-largest ones
       while the total width stays ``<= rank`` (their concatenation has rank ``<= r``, so
       error 0); a matrix wider than ``rank`` is a head alone.
    2. **Scan.** The other remaining matrices, by increasing norm (``order="norm"``: small
       matrices add little energy outside the head) or by increasing norm of their part
       outside the head's span (``order="residual"``). Each candidate is added to the
       running prediction; it joins if the predicted error of the grown group stays
       ``<= tol``; after ``max_rejections`` refusals the group is closed (the paper stops at
       the first refusal, ``max_rejections=1``).
    3. **Patience.** After ``patience`` consecutive groups that accepted no candidate, every
       remaining matrix becomes a singleton (``None``: never).

    The methods differ in the prediction (the trade-off of the paper: speed, provable
    accuracy, tightness):

    ``"norm_bound"`` (provable, fastest)
        The Weyl-type bound of :func:`concat_error_bounds` with the head fixed:
        :math:`e^2 \le 1 - T_r(H)/\|M_C\|_F^2`. No SVD at all when heads are at most
        ``rank`` wide (one truncated SVD per wider head); each candidate costs its norm. It
        treats every non-head matrix as pure error, so it only merges small matrices into a
        head.
    ``"residual_bound"`` (provable)
        The incremental-residual bound of :func:`concat_error_bounds`: per candidate, the
        singular values of its part outside the group's span so far. Never looser than
        ``"norm_bound"``; about one streamed SVD of each group.
    ``"projection_bound"`` (provable; not in the paper)
        :math:`E_r(M_C)^2 \le \sum_{j \in C} \|(I - U U^T) A_j\|_F^2` for the head's
        top-``r`` left singular vectors ``U`` (Eckart--Young, see
        :func:`concat_error_bounds`); each candidate costs :math:`O(m r n_j)`. Never looser
        than ``"norm_bound"`` (for a head wider than ``rank``, up to the accuracy of its
        truncated SVD), and nearly exact for matrices that share the head's dominant
        subspace, where the two bounds above cannot merge anything beyond the head. With
        ``order="residual"`` (the same quantity orders the candidates) it is the fast
        provable choice for such collections.
    ``"estimate"`` (not provable; the tightest and largest groups)
        The incremental truncated SVD of :func:`estimate_concat_error` (``rank +
        n_oversamples`` singular values, Brand updates). It never underestimates in exact
        arithmetic, but the rounding of the updates is not bounded, so there is no
        guarantee; use ``verify=True`` to check.
    ``"exact"`` (provable; the naive reference)
        An exact SVD of every candidate group, for comparison: the slow approach the others
        avoid.

    With a provable method every group of two or more matrices meets ``tol`` exactly: the
    predictions run in float64 whatever the input precision and are accumulated without
    cancellation, so their round-off is relative to the error itself. A singleton is kept
    whatever its own error.

    Parameters
    ----------
    mats : sequence of 2-D arrays
        The matrices (NumPy or CuPy, real, finite). With ``layout="horizontal"`` they share
        the row count (concatenated side by side, one shared left basis); with
        ``"vertical"`` they share the column count (stacked, one shared right basis; handled
        by transposing, which costs no copy). Widths may differ.
    rank : int
        The rank ``r >= 1`` of every group's truncated SVD.
    tol : float
        Largest relative Frobenius error of a group, in ``(0, 1)``.
    method : str, default="projection_bound"
        The error prediction: ``"projection_bound"``, ``"residual_bound"``, ``"norm_bound"``,
        ``"estimate"`` or ``"exact"`` (see above). The default is provable and, on 200
        matrices from five shared subspaces (``benchmarks/bench_concat.py``), about 160 times
        faster than ``"exact"`` with the same groups; the paper's two bounds merge nothing
        there.
    order : {"norm", "residual"}, default="residual"
        The candidates' scan order: ``"residual"`` scans by energy outside the head's span
        (closest first), ``"norm"`` by Frobenius norm as the paper's code does.
    max_rejections : int, default=1
        Refused candidates before a group is closed (``>= 1``).
    patience : int, optional
        Stop forming groups after this many consecutive ones that accepted no candidate.
        The paper's code uses 10.
    n_oversamples : int, default=5
        Extra singular values tracked by ``"estimate"``.
    verify : bool, default=False
        Compute each group's exact error (an SVD of its concatenation, or a streamed QR of
        its transpose when it has more than ``m`` columns) into ``verified_errors``.
    layout : {"horizontal", "vertical"}, default="horizontal"
        Whether the matrices share rows or columns.
    random_state : None, int or numpy.random.Generator
        Seeds the truncated SVDs of heads wider than ``rank``.

    Returns
    -------
    MatrixClusters
        The groups, labels and per-group errors.

    Raises
    ------
    ValueError
        Empty collection, mismatched row (column for ``"vertical"``) counts, non-2-D or empty
        matrices, NaN/inf, ``rank < 1``, ``tol`` outside ``(0, 1)``, an unknown ``method``,
        ``order`` or ``layout``, ``max_rejections < 1``, ``patience < 1``.
    TypeError
        Non-integer ``rank``, complex, sparse or non-numeric matrices, matrices on different
        devices.

    See Also
    --------
    concat_error_bounds, estimate_concat_error

    References
    ----------
    M. Shamrai, "Concatenated Matrix SVD: Compression Bounds, Incremental Approximation, and
    Error-Constrained Clustering", arXiv:2601.11626, 2026.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.linalg import cluster_matrices
    >>> rng = np.random.default_rng(0)
    >>> bases = [np.linalg.qr(rng.standard_normal((60, 4)))[0] for _ in range(2)]
    >>> mats = [bases[i % 2] @ rng.standard_normal((4, 8)) for i in range(6)]
    >>> res = cluster_matrices(mats, 4, 0.05, method="estimate", verify=True)
    >>> sorted(sorted(c) for c in res.clusters)
    [[0, 2, 4], [1, 3, 5]]
    >>> bool(res.verified_errors.max() < 1e-6)
    True
    """
    if not isinstance(layout, str) or layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
    if layout == "vertical":
        mats = _transposed(mats)
    col = _check_collection(mats)
    r = _check_rank(rank)
    tol = _check_tol(tol)
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {tuple(_METHODS)}, got {method!r}")
    if not isinstance(order, str) or order not in _ORDERS:
        raise ValueError(f"order must be one of {_ORDERS}, got {order!r}")
    max_rejections = check_int(max_rejections, "max_rejections", low=1)
    if patience is not None:
        patience = check_int(patience, "patience", low=1)
    p = _check_oversamples(n_oversamples)
    verify = _check_bool(verify, "verify")
    rng = check_random_state(random_state)
    res = _cluster_collection(col, r, tol, method, order, max_rejections, patience, p, verify, rng)
    if layout == "vertical":
        res = MatrixClusters(**{**res.__dict__, "layout": "vertical"})
    return res


def _transposed(mats: Any) -> list:
    """The transposes (views) of a collection meant to share columns, with its own errors."""
    from ._concat import _as_list

    items = _as_list(mats, "mats")
    out = []
    for i, A in enumerate(items):
        if getattr(A, "ndim", None) != 2:
            ndim = getattr(A, "ndim", None)
            raise ValueError(f"mats[{i}] must be 2-D, got {type(A).__name__} with ndim={ndim}")
        out.append(A.T)
    ncols = out[0].shape[0]
    for i, A in enumerate(out):
        if A.shape[0] != ncols:
            raise ValueError(
                f"mats[{i}] has {A.shape[0]} columns but mats[0] has {ncols}: with "
                "layout='vertical' the matrices are stacked and must share the column count"
            )
    return out


def _cluster_matrices_core(
    mats: Sequence[Any],
    rank: int,
    tol: float,
    *,
    method: str = "projection_bound",
    order: str = "residual",
    max_rejections: int = 1,
    patience: int | None = None,
    n_oversamples: int = 5,
    verify: bool = False,
    random_state: Any = None,
) -> MatrixClusters:
    """:func:`cluster_matrices` on an already validated collection (row-sharing layout).

    No argument is checked (see the module docstring for what the caller guarantees); the
    matrices are neither copied nor modified. ``random_state`` may be anything
    :func:`sparselin._validation.check_random_state` accepts.
    """
    mats = list(mats)
    xp_mod = _namespace(mats)
    norms2 = [squared_norm(A) for A in mats]
    scale = _energy_scale(mats, norms2, xp_mod)
    if scale != 1.0 or mats[0].dtype != np.float64:
        norms2 = [_norm2(A, scale) for A in mats]
    col = _Collection(mats, xp_mod, norms2, scale)
    rng = check_random_state(random_state)
    return _cluster_collection(
        col, rank, tol, method, order, max_rejections, patience, n_oversamples, verify, rng
    )


def _namespace(mats: list) -> Any:
    from .._array import namespace

    return namespace(*mats)


def _start(col: _Collection, head: list[int], method: str, r: int, p: int, rng: Any) -> Any:
    """The running prediction of ``method`` for a group made of ``head``."""
    if method == "norm_bound":
        return _NormBoundState(col, head, r, rng)
    if method == "projection_bound":
        return _ProjectionState(col, head, r, rng)
    if method == "exact":
        state = _ExactState(col, r)
        state.commit(state.propose_head(head))
        return state
    if method == "residual_bound":
        state = _ResidualState(col, r)
    else:
        state = _ClusterEstimateState(col, r, r + p, rng)
    H = _hstack([col.mats[j] for j in head], col.xp)
    state.commit(state.propose_block(H, float(sum(col.norms2[j] for j in head))))
    return state


def _residual_order(col: _Collection, state: Any, rest: list[int]) -> list[int]:
    """``rest`` by increasing energy outside the head's span (ties by decreasing norm)."""
    B = state.basis()
    out2 = []
    for j in rest:
        A = col.mats[j]
        inside = squared_norm(B.T @ A, col.scale) if B is not None and B.shape[1] else 0.0
        out2.append(max(col.norms2[j] - inside, 0.0))
    return [j for _, j in sorted(zip(out2, rest, strict=True), key=lambda t: (t[0], t[1]))]


def _cluster_collection(
    col: _Collection,
    r: int,
    tol: float,
    method: str,
    order: str,
    max_rejections: int,
    patience: int | None,
    p: int,
    verify: bool,
    rng: Any,
) -> MatrixClusters:
    with _small_calls(col.xp, col.m, col.widths):
        return _greedy(col, r, tol, method, order, max_rejections, patience, p, verify, rng)


def _greedy(
    col: _Collection,
    r: int,
    tol: float,
    method: str,
    order: str,
    max_rejections: int,
    patience: int | None,
    p: int,
    verify: bool,
    rng: Any,
) -> MatrixClusters:
    n = len(col.mats)
    remaining = _norm_order(col, range(n))
    clusters: list[list[int]] = []
    predicted: list[float] = []
    idle = 0
    while remaining:
        if patience is not None and idle >= patience:
            for j in remaining:
                state = _start(col, [j], method, r, p, rng)
                clusters.append([j])
                predicted.append(_relative(state.error2, state.tot))
            break
        first = remaining[0]
        if col.m <= r:
            head = list(remaining)  # every concatenation has rank <= m <= r: error 0
        elif col.widths[first] <= r:
            head = _narrow_head(col, remaining, r)
        else:
            head = [first]
        state = _start(col, head, method, r, p, rng)
        in_head = set(head)
        rest = [j for j in remaining if j not in in_head]
        if order == "norm":
            candidates = rest[::-1]
        else:
            candidates = _residual_order(col, state, rest)
        members = list(head)
        refused = 0
        for j in candidates:
            err2, payload = state.propose(j)
            if _relative(err2, state.tot + col.norms2[j]) <= tol:
                state.commit((err2, payload))
                members.append(j)
            else:
                refused += 1
                if refused >= max_rejections:
                    break
        idle = idle + 1 if len(members) == len(head) else 0
        clusters.append(members)
        predicted.append(_relative(state.error2, state.tot))
        taken = set(members)
        remaining = [j for j in remaining if j not in taken]
    labels = np.empty(n, dtype=np.int64)
    for c, members in enumerate(clusters):
        labels[members] = c
    verified = None
    if verify:
        verified = np.array(
            [
                _relative(
                    _exact_tail2([col.mats[j] for j in members], r, col.scale, col.xp),
                    float(sum(col.norms2[j] for j in members)),
                )
                for members in clusters
            ]
        )
    return MatrixClusters(
        clusters=clusters,
        labels=labels,
        predicted_errors=np.asarray(predicted, dtype=np.float64),
        verified_errors=verified,
        method=method,
        rank=r,
        tol=float(tol),
        order=order,
    )
