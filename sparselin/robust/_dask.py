"""Robust PCA of a dask array, on dask's own scheduler, the matrix never gathered.

Principal component pursuit (``method="pcp"``) replays :func:`sparselin.robust._pcp.pcp_core`
step for step on a matrix chunked along one dimension:

* the shrinkage of ``S`` and the dual update are elementwise, so they are dask expressions
  that run chunk by chunk where the data lie (fused by dask into one task per chunk);
* each singular value thresholding goes through the dask truncated SVD
  (:func:`sparselin.linalg._dask._truncated_svd_dask_core`: blocked products, only the small
  sketches gathered, the same Gaussian test matrices drawn from the same generator as in
  memory), or through ``dask.array.linalg.svd`` (TSQR, exact) where the in-memory solver
  would take a dense SVD;
* the low-rank iterate is kept factored: ``U`` (a dask array with the rows' chunks, or in
  memory when the columns are chunked), the kept singular values and ``Vt`` (in memory), and
  each chunk of ``L = U diag(s) Vt`` is formed in the task that needs it;
* the iterates ``S`` (E), ``G``, the scaled dual ``W`` and ``U`` are persisted every iteration,
  so the task graph of the next one starts from one key per chunk and never grows, and
  convergence is tested on scalars computed to the client.

The result holds ``low_rank`` and ``sparse`` as dask arrays (``low_rank`` formed lazily from
the persisted factors, ``sparse`` from the persisted iterate), ``s`` and ``Vt`` in memory.
The same seed gives the in-memory result up to rounding.

rSVDdpd (``method="rsvddpd"``) replays :func:`sparselin.robust._rsvddpd._rsvddpd_core`: each
half step of a component's alternating weighted fit is one pass over the persisted residual
(weights formed per chunk, reduced to a vector), the deflation a persisted rank-one update,
and the robust scale (quartiles and median of all entries) is computed exactly by counting
passes over the chunks (see :func:`_quantiles`).
"""

from __future__ import annotations

import importlib
import math
import types
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .._array import dask_array_module, dask_chunk_namespace, is_dask_array
from .._validation import check_int, check_random_state, check_real
from ..linalg._dask import _truncated_svd_dask_core, check_dask_matrix
from ._pcp import (
    DENSE_FRACTION,
    MU0_FACTOR,
    MU_BAR_FACTOR,
    STALL_ITERATIONS,
    SV_START,
    SVD_POWER_ITERATIONS,
    StoppingRule,
    next_mu,
    next_sv,
)
from ._rsvddpd import orthonormal_triplets, sorted_signed

__all__ = ["robust_pca_dask"]

# Oversampling of each partial SVD: the default of _truncated_svd_core, which the in-memory
# solver uses.
_N_OVERSAMPLES = 10


def robust_pca_dask(
    M: Any,
    *,
    method: Any,
    lam: Any,
    rank: Any,
    tol: Any,
    max_iter: Any,
    mask: Any,
    alpha: Any,
    random_state: Any,
) -> Any:
    """:func:`sparselin.robust.robust_pca` for a dask ``M``: validation, then the solver."""
    from . import _robust_pca as api

    dask_array_module()
    if not isinstance(method, str) or method not in api._METHODS:
        raise ValueError(f"method must be one of {api._METHODS}, got {method!r}")
    M, tall = check_dask_matrix(M, "M")
    if M.dtype.kind == "c":
        raise TypeError(f"M must be real, got dtype {M.dtype}")
    if method == "rsvddpd" and dask_chunk_namespace(M) is not np:
        # Its per-chunk weighted passes and exact quartiles run on host chunks.
        raise TypeError(
            "method='rsvddpd' on a dask M needs NumPy chunks, got CuPy chunks: call "
            "M.map_blocks(cupy.asnumpy), or use method='pcp'"
        )
    m, n = M.shape
    observed = None if mask is None else _check_mask(mask, M)
    if method == "pcp":
        lam = (
            1.0 / math.sqrt(max(m, n))
            if lam is None
            else check_real(lam, "lam", low=0.0, low_open=True)
        )
    r_max = min(m, n)
    if rank is not None:
        rank = check_int(rank, "rank", low=1, high=r_max)
    elif method == "rsvddpd":
        raise ValueError(f"method='rsvddpd' needs rank, an int in [1, {r_max}]")
    tol = check_real(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)
    max_iter = check_int(
        api._MAX_ITER[method] if max_iter is None else max_iter, "max_iter", low=1
    )
    alpha = check_real(alpha, "alpha", low=0.0, high=1.0)
    rng = check_random_state(random_state)
    if method == "pcp":
        floor = api._TOL_FLOOR * float(np.finfo(M.dtype).eps)
        if tol < floor and tol != api._DEFAULT_TOL:
            warnings.warn(
                f"tol={tol:g} is below what {M.dtype} resolves (rounding alone leaves a relative "
                f"residual near {floor:.1g}); using tol={floor:.2g}",
                UserWarning,
                stacklevel=3,
            )
        tol = max(tol, floor)
    # The one pass over the entries that validation needs (infinities, NaN, the mask's
    # values), together with max |M| on the observed entries, which PCP scales by.
    observed, amax = _scan(M, observed, method)
    if method == "pcp":
        return _run_pcp(M, tall, observed, amax, lam, rank, tol, max_iter, rng)
    if observed is not None:
        raise ValueError(
            f"mask (missing entries) is supported by method='pcp' only, not {method!r}"
        )
    return _run_rsvddpd(M, tall, rank, alpha, tol, max_iter, rng)


def _check_mask(mask: Any, M: Any) -> Any:
    """The mask as a lazy dask array with M's chunks (values are checked in ``_scan``)."""
    da = dask_array_module()
    if not is_dask_array(mask):
        if isinstance(mask, (list, tuple)):
            mask = np.asarray(mask)
        if not isinstance(mask, np.ndarray):
            raise TypeError(
                f"mask must be a boolean NumPy or dask array, got {type(mask).__name__}"
            )
    if tuple(mask.shape) != tuple(M.shape):
        raise ValueError(f"mask must have M's shape {tuple(M.shape)}, got {tuple(mask.shape)}")
    if mask.dtype.kind not in "biuf":
        raise TypeError(f"mask must be a boolean array, got dtype {mask.dtype}")
    if is_dask_array(mask):
        return mask.rechunk(M.chunks)
    return da.from_array(mask, chunks=M.chunks)


def _scan(M: Any, mask: Any, method: str) -> tuple[Any, float]:
    """One pass: reject infinities (observed), NaN (rSVDdpd), bad mask values; ``max |data|``.

    Returns the observed entries (a persisted dask bool array, or None when all are) and
    the largest magnitude among them.
    """
    dask = importlib.import_module("dask")
    da = dask_array_module()
    nan = da.isnan(M)
    observed = ~nan
    bad_mask = da.zeros((), dtype=bool)
    if mask is not None:
        if mask.dtype != bool:
            bad_mask = ((mask != 0) & (mask != 1)).any()
            mask = mask != 0
        observed = observed & mask
    inf = (da.isinf(M) & observed).any()
    n_obs = observed.sum()
    any_nan = nan.any()
    amax = da.where(observed, abs(M), 0).max()
    observed, inf, n_obs, any_nan, amax, bad_mask = dask.persist(
        observed, inf, n_obs, any_nan, amax, bad_mask
    )
    inf, n_obs, any_nan, amax, bad_mask = dask.compute(inf, n_obs, any_nan, amax, bad_mask)
    if bool(bad_mask):
        raise ValueError("mask must hold only True/False (or 0/1) values")
    if bool(inf):
        raise ValueError("M contains infinity at observed entries")
    if bool(any_nan) and method != "pcp":
        raise ValueError(
            f"M contains NaN: missing entries are supported by method='pcp' only, not {method!r}"
        )
    if int(n_obs) == 0:
        raise ValueError("M has no observed entry (all NaN or masked out)")
    if int(n_obs) == M.shape[0] * M.shape[1]:
        observed = None
    elif method != "pcp":
        raise ValueError(
            f"mask (missing entries) is supported by method='pcp' only, not {method!r}"
        )
    return observed, float(amax)


# ------------------------------------------------------------------------------------- PCP


def _low_rank_block(U: Any, Vt: Any, s: Any) -> Any:
    return (U * s) @ Vt


def _low_rank(U: Any, s: Any, Vt: Any, like: Any) -> Any:
    """``U diag(s) Vt`` with ``like``'s chunks, each chunk formed in its own task.

    ``U`` is a dask array with ``like``'s row chunks or an in-memory array, ``s`` and ``Vt``
    in memory; the product is the in-memory solver's ``(U * s) @ Vt``, chunk by chunk.
    """
    da = dask_array_module()
    k = int(s.shape[0])
    if k == 0:
        meta = like._meta
        return da.zeros(like.shape, chunks=like.chunks, dtype=like.dtype, meta=meta)
    if not _is_dask(U):
        U = da.from_array(U, chunks=(like.chunks[0], (k,)), asarray=False)
    Vd = da.from_array(Vt, chunks=((k,), like.chunks[1]), asarray=False)
    return da.blockwise(
        _low_rank_block,
        "ij",
        U,
        "ik",
        Vd,
        "kj",
        s,
        None,
        dtype=like.dtype,
        concatenate=True,
        meta=like._meta,
    )


def _is_dask(x: Any) -> bool:
    return type(x).__module__.split(".", 1)[0] == "dask"


def _sum_squares(Z: Any) -> Any:
    """``||Z||_F^2`` accumulated in float64 (lazy)."""
    Z64 = Z.astype(np.float64)
    return (Z64 * Z64).sum()


def _svt_svd(
    G: Any, tall: bool, sv: int, rng: Any, xp: types.ModuleType
) -> tuple[Any, Any, Any, bool]:
    """The leading ``sv`` singular triplets of the dask ``G``, as ``_pcp._svt_svd`` chooses.

    Returns ``U`` (dask with G's row chunks, or in memory after a dense SVD of a wide G),
    ``s`` and ``Vt`` in memory, and whether a dense (exact) SVD computed them.
    """
    da = dask_array_module()
    dask = importlib.import_module("dask")
    r_max = min(G.shape)
    if sv >= DENSE_FRACTION * r_max or sv >= r_max:
        # The in-memory solver's dense SVD: TSQR on the long dimension, exact.
        if tall:
            U, s, Vt = da.linalg.svd(G.rechunk({1: -1}))
            U, s, Vt = dask.persist(U, s, Vt)
            s, Vt = dask.compute(s, Vt)
        else:
            V, s, Ut = da.linalg.svd(G.T.rechunk({1: -1}))
            s, Ut, V = dask.compute(s, Ut, V)
            U, Vt = Ut.T, V.T
        return U, s, Vt, True
    # In G's own precision, as in memory (a float32 sketch cannot resolve the subspace to the
    # accuracy the solver asks for).
    U, s, Vt, _ = _truncated_svd_dask_core(
        G, tall, sv, _N_OVERSAMPLES, SVD_POWER_ITERATIONS, rng, sketch_dtype=G.dtype
    )
    # U is a dask array (one chunk when G is wide); persisted, its graph restarts here.
    return U.persist() if _is_dask(U) else U, s, Vt, False


def _pcp_core(
    D: Any,
    tall: bool,
    lam: float,
    *,
    tol: float,
    max_iter: int,
    observed: Any,
    rank_cap: int | None,
    rng: Any,
) -> tuple[Any, ...]:
    """Inexact ALM for PCP on a validated, scaled, persisted dask ``D`` (see module docstring).

    Returns ``L, S, U, s, Vt, n_iter, converged, history, stalled`` with ``L``/``S`` lazy
    dask arrays.
    """
    da = dask_array_module()
    dask = importlib.import_module("dask")
    xp = dask_chunk_namespace(D)
    m, n = D.shape
    r_max = min(m, n)
    dtype = np.dtype(D.dtype)
    d_sq, d_max = dask.compute(_sum_squares(D), abs(D).max())
    d_norm = math.sqrt(float(d_sq))
    if d_norm == 0.0:
        zeros = da.zeros(D.shape, chunks=D.chunks, dtype=dtype, meta=D._meta)
        U0 = da.zeros((m, 0), chunks=(D.chunks[0], (0,)), dtype=dtype, meta=D._meta)
        return (
            zeros,
            zeros,
            U0,
            xp.zeros(0, dtype=dtype),
            xp.zeros((0, n), dtype=dtype),
            0,
            True,
            [],
            False,
        )
    # ||D||_2 from the truncated SVD, as in memory (the same draw from rng).
    _, s1, _, _ = _truncated_svd_dask_core(
        D, tall, 1, _N_OVERSAMPLES, None, rng, sketch_dtype=D.dtype
    )
    norm_two = float(s1[0])
    dual_norm = max(norm_two, float(d_max) / lam)
    mu = MU0_FACTOR / norm_two
    mu_bar = MU_BAR_FACTOR * mu
    W = (D * dtype.type(1.0 / (dual_norm * mu))).persist()
    U: Any = None
    s_kept = xp.zeros(0, dtype=dtype)
    Vt = xp.zeros((0, n), dtype=dtype)
    E: Any = None
    sv = min(SV_START, r_max if rank_cap is None else rank_cap)
    history: list[float] = []
    n_iter = 0
    stop = StoppingRule(tol)
    residual = dual = math.inf
    while n_iter < max_iter:
        n_iter += 1
        t = lam / mu
        A = _low_rank(U, s_kept, Vt, D)
        # S step: T = D - A + W, C = clip(T, -t, t) (0 off the observed entries),
        # E = T - C, and G = A + C, the matrix whose singular values are thresholded.
        T = (D - A) + W
        C = da.clip(T, -t, t)
        if observed is not None:
            C = da.where(observed, C, dtype.type(0))
        E, G = dask.persist(T - C, A + C)
        U_all, s_all, Vt_all, dense = _svt_svd(G, tall, sv, rng, xp)
        del G
        threshold = 1.0 / mu
        svp = int(xp.count_nonzero(s_all > threshold))
        if rank_cap is not None:
            svp = min(svp, rank_cap)
        U = U_all[:, :svp]
        if _is_dask(U):
            U = U.persist()
        s_kept = (s_all[:svp] - dtype.type(threshold)).astype(dtype, copy=False)
        Vt = xp.ascontiguousarray(Vt_all[:svp])
        sv = next_sv(svp, int(s_all.shape[0]), dense, r_max, rank_cap)
        # Dual step: Z = D - A - E; W <- (W + Z) mu / mu_next, mu_next from the previous
        # iteration's residuals (as in memory, see _pcp.next_mu); the dual residual is the
        # change of A.
        mu_next = next_mu(mu, mu_bar, residual, dual)
        A_new = _low_rank(U, s_kept, Vt, D)
        Z = (D - A_new) - E
        W, sq, dsq = dask.persist(
            (W + Z) * dtype.type(mu / mu_next), _sum_squares(Z), _sum_squares(A_new - A)
        )
        sq, dsq = dask.compute(sq, dsq)
        residual = math.sqrt(float(sq)) / d_norm
        dual = mu * math.sqrt(float(dsq)) / d_norm
        if rank_cap is not None and svp >= rank_cap:
            # A binding rank cap makes the SVT no proximal step of a convex problem: there is
            # no optimum for the dual residual to certify, so the reference's primal test
            # alone decides (as before the dual test was added).
            dual = 0.0
        history.append(residual)
        mu = mu_next
        if stop(residual, dual, mu, mu_bar):
            break
    S = E if observed is None else da.where(observed, E, dtype.type(0))
    L = _low_rank(U, s_kept, Vt, D)
    if not _is_dask(U):
        U = da.from_array(U, chunks=(D.chunks[0], (U.shape[1],)), asarray=False)
    return L, S, U, s_kept, Vt, n_iter, stop.converged, history, stop.stalled


def _run_pcp(
    M: Any,
    tall: bool,
    observed: Any,
    amax: float,
    lam: float,
    rank: int | None,
    tol: float,
    max_iter: int,
    rng: Any,
) -> Any:
    from . import _robust_pca as api

    da = dask_array_module()
    dtype = np.dtype(M.dtype)
    data = M if observed is None else da.where(observed, M, dtype.type(0))
    scale = 1.0 if amax == 0.0 else float(np.ldexp(1.0, -int(np.frexp(amax)[1])))
    D = (data if scale == 1.0 else data * dtype.type(scale)).persist()
    L, S, U, s, Vt, n_iter, converged, history, stalled = _pcp_core(
        D,
        tall,
        lam,
        tol=tol,
        max_iter=max_iter,
        observed=observed,
        rank_cap=rank,
        rng=rng,
    )
    if scale != 1.0:
        inv = 1.0 / scale
        L, S, s = (api._unscale(x, inv, None) for x in (L, S, s))
    m, n = M.shape
    if not converged:
        why = (
            f"stalled after {n_iter} iterations (no progress in the last {STALL_ITERATIONS})"
            if stalled
            else f"did not converge in {n_iter} iterations"
        )
        warnings.warn(
            f"robust_pca (pcp) {why}: relative residual {history[-1]:.3g} > tol={tol:g}; "
            "increase max_iter or tol",
            ConvergenceWarning,
            stacklevel=4,
        )
    effective = api._effective_rank(s)
    if effective > max(1.0, api._EFFECTIVE_RANK_WARNING * min(m, n)):
        warnings.warn(
            f"the low-rank part is not of low rank: {effective} singular values hold 99.9% of "
            f"its energy, of at most {min(m, n)}. M lies outside the regime in which principal "
            "component pursuit separates a low-rank matrix from sparse corruptions (too many "
            "corruptions, or too high a rank), so this split should not be trusted",
            UserWarning,
            stacklevel=4,
        )
    return api.RobustPCAResult(
        low_rank=L,
        sparse=S,
        U=U,
        s=s,
        Vt=Vt,
        n_iter=n_iter,
        converged=converged,
        history=np.asarray(history, dtype=np.float64),
        method="pcp",
        lam=lam,
        rank=int(s.shape[0]),
    )


# --------------------------------------------------------------------------------- rSVDdpd

# Bins per counting pass of the exact order statistics, and the number of candidate entries
# below which they are gathered to the client and sorted instead of counted again.
_BINS = 1024
_GATHER = 1 << 16


def _edge_counts(block: Any, edges: Any) -> Any:
    """``#{x in block : x <= e}`` for each edge (as a 1 x len(edges) host array)."""
    flat = np.asarray(block).ravel()
    # Entry x falls in slot #{edges < x}; entries with slot <= i are those <= edges[i].
    slots = np.searchsorted(edges, flat, side="left")
    counts = np.cumsum(np.bincount(slots, minlength=edges.shape[0] + 1))[: edges.shape[0]]
    return counts[None, :]


def _count_le(T: Any, edges: np.ndarray) -> np.ndarray:
    """For each edge, how many entries of the tall dask ``T`` are ``<= edge`` (one pass)."""
    parts = T.map_blocks(
        _edge_counts,
        edges,
        chunks=((1,) * T.numblocks[0], (edges.shape[0],)),
        dtype=np.int64,
        meta=np.empty((0, 0), np.int64),
    )
    return np.asarray(parts.sum(axis=0).compute())


def _in_ranges(block: Any, ranges: Any) -> Any:
    """The entries of ``block`` inside any of the half-open ranges ``(lo, hi]``, sorted."""
    flat = np.asarray(block).ravel()
    keep = np.zeros(flat.shape, bool)
    for lo, hi in ranges:
        keep |= (flat > lo) & (flat <= hi)
    return np.sort(flat[keep])


def _order_statistics(T: Any, ranks: list[int]) -> list[float]:
    """The exact values of the given 0-based ranks among the entries of the dask ``T``.

    Each value is bracketed in an interval ``(lo, hi]`` that one counting pass (``_BINS``
    bins per interval, all ranks in the same pass) narrows by the bin holding the rank;
    once an interval holds at most ``_GATHER`` entries, or no float lies strictly inside
    it, one last pass gathers its entries. A few passes over the chunks, nothing sorted
    but the candidates.
    """
    dask = importlib.import_module("dask")
    lo0, hi0 = (float(v) for v in dask.compute(T.min(), T.max()))
    dtype = np.dtype(T.dtype)
    below = float(np.nextafter(dtype.type(lo0), dtype.type(-np.inf)))
    # Per rank: (lo, hi, entries <= lo); the value lies in (lo, hi].
    state = {r: (below, hi0, 0) for r in ranks}
    values: dict[int, float] = {}
    while True:
        todo = [r for r in ranks if r not in values]
        if not todo:
            break
        wide = []
        for r in todo:
            lo, hi, _ = state[r]
            inside = np.nextafter(dtype.type(lo), dtype.type(np.inf))
            if inside >= hi:
                values[r] = hi  # no float strictly between: the value is hi
            else:
                wide.append(r)
        if not wide:
            continue
        intervals = sorted({state[r][:2] for r in wide})
        edges = np.unique(
            np.concatenate([np.linspace(lo, hi, _BINS + 1).astype(dtype) for lo, hi in intervals])
        )
        counts = _count_le(T, edges)
        gather = []
        for r in wide:
            lo, hi, _ = state[r]
            sel = (edges >= lo) & (edges <= hi)
            e, c = edges[sel], counts[sel]
            # The first edge whose count passes the rank closes the new interval.
            j = int(np.searchsorted(c, r + 1, side="left"))
            new_lo, new_hi, n_lo = float(e[j - 1]), float(e[j]), int(c[j - 1])
            state[r] = (new_lo, new_hi, n_lo)
            if int(c[j]) - n_lo <= _GATHER:
                gather.append(r)
        if gather:
            ranges = sorted({state[r][:2] for r in gather})
            got = T.map_blocks(
                _in_ranges,
                ranges,
                chunks=((np.nan,) * T.numblocks[0],),
                drop_axis=1,
                dtype=dtype,
                meta=np.empty((0,), dtype),
            ).compute()
            got = np.sort(np.asarray(got))
            for r in gather:
                lo, hi, n_lo = state[r]
                inside = got[(got > lo) & (got <= hi)]
                values[r] = float(inside[r - n_lo])
    return [values[r] for r in ranks]


def _quantiles(T: Any, qs: tuple[float, ...]) -> list[float]:
    """``numpy.quantile`` (linear method) of all entries of ``T``, exactly, by counting."""
    dtype = np.dtype(T.dtype)
    N = T.shape[0] * T.shape[1]
    # As numpy does: the virtual index in the quantiles' dtype, which is T's.
    virtual = (N - 1) * np.asarray(qs, dtype=dtype)
    lower = np.floor(virtual).astype(np.int64)
    upper = np.minimum(lower + 1, N - 1)
    needed = sorted(set(lower.tolist()) | set(upper.tolist()))
    value = dict(zip(needed, _order_statistics(T, needed), strict=True))
    out = []
    for q, lo, hi in zip(qs, lower, upper, strict=True):
        pair = np.asarray([value[int(lo)], value[int(hi)]], dtype=dtype)
        # numpy's own interpolation between the two order statistics.
        frac = (N - 1) * np.asarray(q, dtype=dtype) - np.floor((N - 1) * np.asarray(q, dtype))
        out.append(float(np.quantile(pair, frac)))
    return out


def _robust_spread(T: Any) -> tuple[float, float, float, float]:
    """``(Q1, median, Q3, spread)`` of the entries, as ``_rsvddpd._robust_spread`` (exact)."""
    q1, med, q3 = _quantiles(T, (0.25, 0.5, 0.75))
    spread = q3 - q1
    if not spread > 0.0:
        spread = float(abs(T - T.dtype.type(med)).mean().compute()) * (1.349 / 0.798)
    if not spread > 0.0:
        spread = float(abs(T).max().compute())
    return q1, med, q3, spread


def _local_block(T: Any, u: Any, v: Any, lam: float, half_alpha: float) -> Any:
    """Coefficients along the rows of a chunk: ``sum_j w_ij T_ij v_j / sum_j w_ij v_j^2``."""
    if half_alpha == 0.0:
        return (T @ v) / float(v @ v)
    R = T - (lam * u)[:, None] * v[None, :]
    W = np.exp(-half_alpha * (R * R))
    den = W @ (v * v)
    num = (W * T) @ v
    tiny = float(np.finfo(T.dtype).tiny)
    ok = den > tiny
    return np.where(ok, num / np.where(ok, den, 1.0), 0.0).astype(T.dtype, copy=False)


def _reduced_block(T: Any, u: Any, v: Any, lam: float, half_alpha: float) -> Any:
    """Partial sums over a chunk's rows: ``sum_i w_ij T_ij u_i`` and ``sum_i w_ij u_i^2``."""
    if half_alpha == 0.0:
        num = u @ T
        den = np.full_like(num, float(u @ u))
    else:
        R = T - (lam * u)[:, None] * v[None, :]
        W = np.exp(-half_alpha * (R * R))
        den = (u * u) @ W
        num = u @ (W * T)
    return np.stack([num, den])[None]


def _rank_one_update(T: Any, u: Any, v: Any, c: float) -> Any:
    return T + (c * u)[:, None] * v[None, :]


class _Tall:
    """The residual as a tall dask matrix ``T`` (rows chunked): ``T = X`` or ``X^T``.

    Half steps along T's rows are local to each chunk; along its columns they are sums of
    one partial per chunk. Row vectors live in memory and are sliced per chunk.
    """

    def __init__(self, T: Any) -> None:
        self.da = dask_array_module()
        self.T = T.rechunk({1: -1}).persist()

    def _rows(self, u: Any) -> Any:
        return self.da.from_array(u, chunks=(self.T.chunks[0],))

    def _cols(self, v: Any) -> Any:
        return self.da.from_array(v, chunks=(self.T.chunks[1],))

    def local(self, u: Any, v: Any, lam: float, half_alpha: float) -> np.ndarray:
        T = self.T
        return self.da.blockwise(
            _local_block, "i", T, "ij", self._rows(u), "i", self._cols(v), "j", lam, None,
            half_alpha, None, dtype=T.dtype, concatenate=True, meta=np.empty((0,), T.dtype),
        ).compute()  # fmt: skip

    def reduced(self, u: Any, v: Any, lam: float, half_alpha: float) -> np.ndarray:
        T = self.T
        # One (1, 2, n) partial per chunk of rows, summed over the chunks.
        parts = self.da.blockwise(
            _reduced_block, "irj", T, "ij", self._rows(u), "i", self._cols(v), "j", lam, None,
            half_alpha, None, new_axes={"r": 2}, adjust_chunks={"i": 1}, dtype=T.dtype,
            concatenate=True, meta=np.empty((0, 0, 0), T.dtype),
        )  # fmt: skip
        num, den = np.asarray(parts.sum(axis=0).compute()).reshape(2, -1)
        tiny = float(np.finfo(T.dtype).tiny)
        if half_alpha == 0.0:
            return (num / den).astype(T.dtype, copy=False)
        ok = den > tiny
        return np.where(ok, num / np.where(ok, den, 1.0), 0.0).astype(T.dtype, copy=False)

    def update(self, u: Any, v: Any, c: float) -> None:
        """``T <- T + c u v^T``, persisted (the previous iterate is released)."""
        T = self.T
        self.T = self.da.blockwise(
            _rank_one_update, "ij", T, "ij", self._rows(u), "i", self._cols(v), "j", c, None,
            dtype=T.dtype, meta=T._meta,
        ).persist()  # fmt: skip


class _Residual:
    """The scaled residual X (m x n) held as its tall orientation; steps named as in memory."""

    def __init__(self, X: Any, tall: bool) -> None:
        self.tall = tall
        self.t = _Tall(X if tall else X.T)

    def step_a(self, a: Any, b: Any, lam: float, half_alpha: float) -> np.ndarray:
        """Weighted LS coefficients along X's rows for fixed ``b``."""
        if self.tall:
            return self.t.local(a, b, lam, half_alpha)
        return self.t.reduced(b, a, lam, half_alpha)

    def step_b(self, b: Any, a: Any, lam: float, half_alpha: float) -> np.ndarray:
        """Weighted LS coefficients along X's columns for fixed ``a``."""
        if self.tall:
            return self.t.reduced(a, b, lam, half_alpha)
        return self.t.local(b, a, lam, half_alpha)

    def add(self, a: Any, b: Any, c: float) -> None:
        """``X <- X + c a b^T``."""
        if self.tall:
            self.t.update(a, b, c)
        else:
            self.t.update(b, a, c)

    @property
    def X(self) -> Any:
        return self.t.T if self.tall else self.t.T.T


def _fit_component(
    R: _Residual,
    a: Any,
    b: Any,
    U: Any,
    V: Any,
    *,
    half_alpha: float,
    tol: float,
    max_iter: int,
) -> tuple[Any, Any, float, int, bool]:
    """``_rsvddpd._fit_component`` with each half step one pass over the dask residual."""
    from ._rsvddpd import _orthogonalise, _unit

    # lam = a^T X b: the unweighted half step (alpha = 0) gives X b / ||b||^2.
    lam = float(a @ R.step_a(a, b, 0.0, 0.0)) * float(b @ b)
    if lam < 0.0:
        a, lam = -a, -lam
    for it in range(1, max_iter + 1):
        c = _orthogonalise(R.step_a(a, b, lam, half_alpha), U)
        a_new, lam_a = _unit(c, np)
        if lam_a == 0.0:
            return a, b, 0.0, it, True
        d = _orthogonalise(R.step_b(b, a_new, lam_a, half_alpha), V)
        b_new, lam_new = _unit(d, np)
        if lam_new == 0.0:
            return a_new, b, 0.0, it, True
        da_ = float(np.linalg.norm(a_new - a))
        db = float(np.linalg.norm(b_new - b))
        dl = abs(lam_new - lam)
        a, b, lam = a_new, b_new, lam_new
        if dl <= tol * lam and da_ <= tol and db <= tol:
            return a, b, lam, it, True
    return a, b, lam, max_iter, False


def _censor_block(T: Any, lo: float, hi: float, med: Any) -> Any:
    return np.where((T >= lo) & (T <= hi), T, med)


def _initial_pair(R: _Residual, rng: Any) -> tuple[Any, Any]:
    """``_rsvddpd._initial_pair`` on the dask residual: exact fences, then a leading pair."""
    from ._rsvddpd import _DENSE_INIT

    da = dask_array_module()
    dask = importlib.import_module("dask")
    T = R.t.T
    q1, med, q3, spread = _robust_spread(T)
    lo, hi = q1 - 1.5 * spread, q3 + 1.5 * spread
    Tc = T.map_blocks(_censor_block, lo, hi, T.dtype.type(med), dtype=T.dtype).persist()
    if min(T.shape) <= _DENSE_INIT:
        u, _, vt = da.linalg.svd(Tc)
        u0, v0 = (np.array(x) for x in dask.compute(u[:, 0], vt[0]))
        return (u0, v0) if R.tall else (v0, u0)
    # The partial SVD of Xc in X's orientation: the same draws from rng as in memory.
    Xc = Tc if R.tall else Tc.T
    u, _, vt, _ = _truncated_svd_dask_core(Xc, R.tall, 1, _N_OVERSAMPLES, 4, rng)
    return np.array(u[:, 0].compute()), np.array(vt[0])


def _abs_sums_bound(X: Any) -> float:
    """``sqrt(||X||_1 ||X||_inf)``, an upper bound on sigma_1 (one pass)."""
    dask = importlib.import_module("dask")
    A = abs(X)
    c, r = dask.compute(A.sum(axis=0).max(), A.sum(axis=1).max())
    return math.sqrt(float(c) * float(r))


def _rsvddpd_core(
    M: Any, tall: bool, rank: int, *, alpha: float, tol: float, max_iter: int, rng: Any
) -> tuple[Any, ...]:
    """``_rsvddpd._rsvddpd_core`` on a dask ``M``: ``U, s, Vt`` in memory, lazy weights."""
    from ._rsvddpd import (
        _BACKFIT_FRACTION,
        _MAX_RESTARTS,
        _MAX_SWEEPS,
        _complement_vector,
        _orthogonalise,
        _random_pair,
        _unit,
    )

    da = dask_array_module()
    m, n = M.shape
    dtype = np.dtype(M.dtype)
    tol = max(float(tol), 8.0 * float(np.finfo(dtype).eps))
    half_alpha = 0.5 * float(alpha)
    Mt = M.rechunk({1: -1}) if tall else M.T.rechunk({1: -1})
    *_, scale = _robust_spread(Mt)
    U = np.zeros((m, rank), dtype=dtype)
    V = np.zeros((n, rank), dtype=dtype)
    s = np.zeros(rank)
    if scale == 0.0:
        for k in range(rank):
            U[:, k] = _complement_vector(U[:, :k], m, rng, np, dtype)
            V[:, k] = _complement_vector(V[:, :k], n, rng, np, dtype)
        ones = da.ones(M.shape, chunks=M.chunks, dtype=dtype)
        return U, np.zeros(rank, dtype=dtype), V.T.copy(), ones, 0, True
    R = _Residual(M / dtype.type(scale), tall)
    n_iter, converged = 0, True
    for k in range(rank):
        Uk, Vk = U[:, :k], V[:, :k]
        a, b = _initial_pair(R, rng)
        a, b = _unit(_orthogonalise(a, Uk), np)[0], _unit(_orthogonalise(b, Vk), np)[0]
        bound = _abs_sums_bound(R.X)
        for attempt in range(_MAX_RESTARTS + 1):
            a, b, lam, it, ok = _fit_component(
                R, a, b, Uk, Vk, half_alpha=half_alpha, tol=tol, max_iter=max_iter
            )
            n_iter += it
            bad = lam > bound * (1.0 + 1e-6) or (lam == 0.0 and bound > 0.0)
            if not bad or attempt == _MAX_RESTARTS:
                break
            a, b = _random_pair(m, n, rng, np, dtype)
            a, b = _unit(_orthogonalise(a, Uk), np)[0], _unit(_orthogonalise(b, Vk), np)[0]
        if lam <= 8.0 * float(np.finfo(dtype).eps) * max(float(s[0]), lam):
            lam, ok = 0.0, True
        converged &= ok
        if lam == 0.0:
            a = _complement_vector(Uk, m, rng, np, dtype)
            b = _complement_vector(Vk, n, rng, np, dtype)
        else:
            R.add(a, b, -lam)
        U[:, k], V[:, k], s[k] = a, b, lam

    backfit = rank * (m + n - rank) <= _BACKFIT_FRACTION * m * n
    if rank > 1 and backfit:
        none_m, none_n = U[:, :0], V[:, :0]
        sweeps_converged = False
        for _ in range(_MAX_SWEEPS):
            change = 0.0
            for k in range(rank):
                a, b, lam0 = U[:, k].copy(), V[:, k].copy(), float(s[k])
                if lam0 == 0.0:
                    continue
                R.add(a, b, lam0)
                a, b, lam, it, ok = _fit_component(
                    R, a, b, none_m, none_n, half_alpha=half_alpha, tol=tol, max_iter=max_iter
                )
                n_iter += it
                R.add(a, b, -lam)
                change = max(
                    change,
                    abs(lam - lam0) / max(lam, lam0),
                    float(np.linalg.norm(a - U[:, k])),
                    float(np.linalg.norm(b - V[:, k])),
                )
                U[:, k], V[:, k], s[k] = a, b, lam
            if change <= tol:
                sweeps_converged = True
                break
        converged &= sweeps_converged
        U, V, s = orthonormal_triplets(U, s, V, dtype, np)

    X = R.X
    if half_alpha > 0.0:
        weights = da.exp(-half_alpha * (X * X)).astype(dtype).rechunk(M.chunks)
    else:
        weights = da.ones(M.shape, chunks=M.chunks, dtype=dtype)
    U, V, s = sorted_signed(U, V, s, dtype, np)
    s_out = np.asarray(s * scale, dtype=dtype)
    return U, s_out, np.ascontiguousarray(V.T), weights, n_iter, bool(converged)


def _progress_block(Mb: Any, U: Any, s: Any, Vt: Any) -> Any:
    """Squared Frobenius norms of ``M - L_k`` on one chunk, for each k (a 1 x 1 x rank array)."""
    Rb = np.array(Mb, dtype=Mb.dtype, copy=True)
    out = np.zeros(s.shape[0])
    for k in range(s.shape[0]):
        Rb -= np.outer(U[:, k] * s[k], Vt[k])
        r = Rb.ravel().astype(np.float64)
        out[k] = float(r @ r)
    return out[None, None, :]


def _run_rsvddpd(
    M: Any, tall: bool, rank: int, alpha: float, tol: float, max_iter: int, rng: Any
) -> Any:
    from . import _robust_pca as api

    da = dask_array_module()
    dask = importlib.import_module("dask")
    U, s, Vt, weights, n_iter, converged = _rsvddpd_core(
        M, tall, rank, alpha=alpha, tol=tol, max_iter=max_iter, rng=rng
    )
    U_d = da.from_array(U, chunks=(M.chunks[0], (rank,)))
    L = _low_rank(U_d, s, Vt, M)
    # The deflation's progress ||M - L_k||_F / ||M||_F, all k in one pass over M.
    Vd = da.from_array(Vt, chunks=((rank,), M.chunks[1]))
    parts = da.blockwise(
        _progress_block, "ijr", M, "ij", U_d, "ik", s, None, Vd, "kj",
        new_axes={"r": rank}, adjust_chunks={"i": 1, "j": 1}, dtype=np.float64,
        concatenate=True, meta=np.empty((0, 0, 0), np.float64),
    )  # fmt: skip
    progress, m_sq = dask.compute(parts.sum(axis=(0, 1)), _sum_squares(M))
    m_norm = math.sqrt(float(m_sq))
    history = [math.sqrt(max(float(p), 0.0)) / m_norm if m_norm else 0.0 for p in progress]
    if not converged:
        warnings.warn(
            f"robust_pca (rsvddpd) did not converge within max_iter={max_iter} iterations "
            "for every component; increase max_iter or tol",
            ConvergenceWarning,
            stacklevel=4,
        )
    return api.RobustPCAResult(
        low_rank=L,
        sparse=M - L,
        U=U_d,
        s=s,
        Vt=Vt,
        n_iter=int(n_iter),
        converged=bool(converged),
        history=np.asarray(history, dtype=np.float64),
        method="rsvddpd",
        lam=None,
        rank=int(s.shape[0]),
        weights=weights,
    )
