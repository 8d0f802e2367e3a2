"""Robust PCA: the public function, its one validator, the result, and the dispatch.

``robust_pca`` validates everything once (``_iv``) and calls a private core: ``pcp_core``
(principal component pursuit by inexact ALM, ``_pcp.py``) or ``_rsvddpd_core`` (the robust
SVD by density power divergence, ``_rsvddpd.py``). The estimator
:class:`sparselin.estimators.RobustPCA` calls this function.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .._array import is_cupy_array, is_dask_array, is_sparse, namespace, to_numpy
from .._threads import host_blas_limited
from .._validation import check_int, check_matrix, check_random_state, check_real, squared_norm
from ._pcp import STALL_ITERATIONS, pcp_core
from ._rsvddpd import _rsvddpd_core

__all__ = ["RobustPCAResult", "robust_pca"]

_METHODS = ("pcp", "rsvddpd")
# Defaults of max_iter: the reference inexact ALM's 1000, and the rSVDdpd R package's 100.
_MAX_ITER = {"pcp": 1000, "rsvddpd": 100}
# A relative residual below this multiple of the dtype's eps is not reliably reachable: the
# iterates stall at the rounding level of D - L - S and of the SVD's reconstruction, measured
# in float32 between 0.3 eps (corruptions dominate ||D||) and 4.5 eps (the low-rank part
# dominates), over 12 problems of shapes 200^2, 300^2, 300 x 50, 50 x 300, 1000 x 100.
# Smaller tol values are raised to it: silently for the default tol (which is below the floor
# in float32 only), with a warning for a smaller tol given explicitly.
_TOL_FLOOR = 8.0
_DEFAULT_TOL = 1e-7
# PCP always returns the optimum of its convex problem; outside the regime in which that optimum
# is the low-rank truth (too many corruptions, too high a rank) the low-rank part comes out of
# high effective rank: the number of singular values holding 99.9% of ||L||_F^2. Measured: in
# failures 46 of 120 (rank 6, 40% corrupted), 75 of 200 (rank 10, 40%), 52 of 200 (rank 50,
# 10%); in successes the true rank (at most 0.05 min(m, n) in LCM's experiments). Dense noise,
# which PCP puts into many tiny singular values (a noisy video: rank 34 of 60), leaves the
# effective rank at the true one (1 there), so it does not trip the warning that a plain rank
# count would. PCP's recovery theory needs rank <= c min(m, n) / log(max(m, n))**2, far below
# the threshold, which is therefore conservative.
_EFFECTIVE_RANK_ENERGY = 0.999
_EFFECTIVE_RANK_WARNING = 0.25


@dataclass(repr=False)
class RobustPCAResult:
    """What :func:`robust_pca` returns: ``M ≈ low_rank + sparse``.

    Attributes
    ----------
    low_rank : array of shape (m, n)
        The low-rank part ``L`` (on the input's device and in its float precision). At
        unobserved entries it holds the completed values.
    sparse : array of shape (m, n)
        The sparse part ``S``: the corruptions or outliers (PCP), or the residual ``M - L``
        (rSVDdpd), whose large entries are the outliers. Zero at unobserved entries.
    U : array of shape (m, rank)
        Left singular vectors of ``low_rank`` (orthonormal columns).
    s : array of shape (rank,)
        Its singular values, descending (for rSVDdpd: the robust singular values).
    Vt : array of shape (rank, n)
        Right singular vectors (orthonormal rows); ``low_rank == U @ diag(s) @ Vt``.
    n_iter : int
        Iterations run (PCP: ALM steps, each one SVD; rSVDdpd: outer iterations summed over
        the components).
    converged : bool
        Whether the stopping test was met within ``max_iter`` (a ``ConvergenceWarning`` is
        issued otherwise).
    history : ndarray of float64
        PCP: the relative residual ``||M - L - S||_F / ||M||_F`` after each iteration (on the
        observed entries; see :func:`robust_pca`). rSVDdpd: ``||M - L_k||_F / ||M||_F`` after
        each component ``k`` of the deflation.
    method : str
        ``"pcp"`` or ``"rsvddpd"``.
    lam : float or None
        The l1 weight PCP used (None for rSVDdpd).
    rank : int
        Rank of ``low_rank`` (the number of singular values kept).
    weights : array of shape (m, n) or None
        rSVDdpd: the final density-power weights in [0, 1]; entries near 0 are outliers (the
        outlier map). None for PCP.
    """

    low_rank: Any
    sparse: Any
    U: Any
    s: Any
    Vt: Any
    n_iter: int
    converged: bool
    history: np.ndarray
    method: str
    lam: float | None
    rank: int
    weights: Any = field(default=None)

    def __repr__(self) -> str:
        m, n = self.low_rank.shape
        residual = f", residual={self.history[-1]:.3g}" if self.history.size else ""
        return (
            f"RobustPCAResult(method={self.method!r}, shape=({m}, {n}), rank={self.rank}, "
            f"n_iter={self.n_iter}, converged={self.converged}{residual})"
        )


def robust_pca(
    M: Any,
    *,
    method: Literal["pcp", "rsvddpd"] = "pcp",
    lam: float | None = None,
    rank: int | None = None,
    tol: float = _DEFAULT_TOL,
    max_iter: int | None = None,
    mask: Any = None,
    alpha: float = 0.3,
    random_state: int | np.random.Generator | None = None,
) -> RobustPCAResult:
    """Robust PCA: split ``M`` into a low-rank part and a sparse part, ``M ≈ L + S``.

    ``method="pcp"`` solves principal component pursuit [1]_,
    ``min ||L||_* + lam ||S||_1`` subject to ``L + S = M`` (on the observed entries), by the
    inexact augmented Lagrange multiplier method of Lin, Chen and Ma [2]_, with each singular
    value thresholding done by a partial SVD. ``method="rsvddpd"`` computes the robust SVD by
    density power divergence of Roy, Basu and Ghosh [3]_: ``rank`` robust singular triplets,
    fitted one at a time by weighted rank-one updates and deflation.

    Parameters
    ----------
    M : array of shape (m, n)
        NumPy or CuPy array, float32 or float64 (integers are computed in float64); the whole
        iteration runs on M's device. NaN marks an unobserved entry (PCP only); infinity is
        an error unless ``mask`` marks the entry unobserved. A ``numpy.ma.MaskedArray`` is
        read as data plus unobserved entries. ``M`` is never modified. A dask array (chunked
        along one dimension) runs on dask's scheduler and gives dask ``low_rank``, ``sparse``
        and ``U`` (see :ref:`user_guide_dask`).
    method : {"pcp", "rsvddpd"}, default="pcp"
        The algorithm.
    lam : float > 0, optional
        PCP's weight of the l1 term. Default ``1 / sqrt(max(m, n))`` (Candès et al.), which
        makes the result of ``M.T`` the transpose of the result of ``M``. Ignored by rSVDdpd.
    rank : int in [1, min(m, n)], optional
        rSVDdpd: the number of robust singular triplets (required). PCP: an optional cap on
        the rank of ``L`` (each thresholding keeps at most ``rank`` singular values). PCP finds
        the rank itself, so leave it unset unless the rank is known; a cap below the rank PCP
        would find turns the convex problem into a rank-constrained heuristic.
    tol : float in (0, 1), default=1e-7
        PCP stops when ``||M - L - S||_F <= tol ||M||_F`` on the observed entries (the
        reference inexact ALM's test) and the dual residual ``mu ||L_k - L_{k-1}||_F /
        ||M||_F`` is at most ``max(tol, 3e-3)`` (unless a ``rank`` cap binds): without the
        second test the iterates can freeze at a feasible point away from the PCP optimum.
        A tol below 8 eps of M's precision (about 1e-6 in float32, where the iterates stall
        at the rounding level below that) is raised to that floor, with a warning unless it
        is the default.
        rSVDdpd: its convergence tolerance on the changes of each triplet.
    max_iter : int >= 1, optional
        Iteration limit: 1000 for PCP (as the reference), 100 for rSVDdpd (per component, as
        the authors' package). Reaching it gives ``converged=False`` and a
        ``ConvergenceWarning``. PCP also stops, with the same report, when its residuals
        have stalled (no 1% improvement in 20 iterations).
    mask : array of bool of shape (m, n), optional
        True where ``M`` is observed (PCP only). Integers or floats holding only 0 and 1 are
        accepted. Combined with the NaN entries of ``M``: an entry is observed when the mask
        says so and it is not NaN.
    alpha : float in [0, 1], default=0.3
        rSVDdpd's robustness parameter: 0 is the ordinary SVD, larger values downweight
        outliers more at some loss of efficiency (0.3 is the authors' recommendation).
        Ignored by PCP.
    random_state : None, int or numpy.random.Generator
        Seed of the random sketches (PCP's partial SVDs) or starting vectors (rSVDdpd).

    Returns
    -------
    result : RobustPCAResult
        ``low_rank``, ``sparse``, the triplets ``U, s, Vt`` of ``low_rank``, ``n_iter``,
        ``converged``, ``history``, ``rank`` and, for rSVDdpd, the outlier ``weights``.

    Raises
    ------
    ValueError
        For infinite observed entries (or NaN with rSVDdpd), 1-D or empty ``M``, no observed
        entry, ``lam <= 0``, ``rank`` outside ``[1, min(m, n)]`` (or missing for rSVDdpd),
        ``tol`` outside (0, 1), ``max_iter < 1``, ``alpha`` outside [0, 1], a ``mask`` of the
        wrong shape or values, or an unknown ``method``.
    TypeError
        For sparse or complex ``M``, non-numeric arguments, or a mask on another device.

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` is reached before the stopping test is met.
    UserWarning
        When the PCP low-rank part is not of low rank (more than ``min(m, n) / 4`` singular
        values hold 99.9% of its energy): ``M`` is then outside the regime in which PCP
        separates a low-rank matrix from sparse corruptions (too many corruptions, or a rank
        too high), and the split should not be trusted. PCP still returns the optimum of its
        convex problem, and ``converged`` refers to that; ``rank`` and ``s`` show the rest.

    See Also
    --------
    sparselin.estimators.RobustPCA : the scikit-learn estimator over this function.
    sparselin.robust.frames_to_matrix : video frames to the pixels x frames matrix.

    Notes
    -----
    PCP follows the reference ``inexact_alm_rpca`` [2]_: ``Y0 = M / max(||M||_2,
    ||M||_max / lam)``, ``mu0 = 1.25 / ||M||_2``, ``mu <- min(1.5 mu, 1e7 mu0)``, one
    soft-thresholding of ``S`` and one singular value thresholding of ``L`` per iteration.
    One departure: the reference stops on the primal residual alone, and its fast ``mu``
    growth can then stop at a feasible point away from the optimum (100 x 80, rank 5, 10%
    corruptions: ``L`` 3e-3 from the truth that the convex problem recovers exactly); here
    the dual residual must be small too, and ``mu`` backs off (``mu / 1.5``) while the primal
    residual is below 1e-3 and the dual one is not.
    The thresholding needs only the singular values above ``1 / mu``: their number ``sv`` is
    predicted as in the reference (one more than the count above the threshold, or 5% of
    ``min(m, n)`` more when every computed value passed it), and that many are computed by
    :func:`sparselin.truncated_svd`'s randomized method; a dense SVD is used when ``sv``
    exceeds about a third of ``min(m, n)``, where it is cheaper. Typical problems take 20 to 35
    iterations (500 x 500, rank 25, 5% corruptions: about 20).

    Unobserved entries carry no l1 penalty: ``S`` is unconstrained there, so ``L`` is filled in
    by its low-rank structure alone (the residual there is the change of the fill-in, which is
    part of the stopping test). ``sparse`` is returned as zero at those entries.

    PCP is scale-equivariant: ``robust_pca(c * M)`` gives ``c`` times the parts of
    ``robust_pca(M)``; the input is scaled by a power of two internally, so entries near
    1e+-150 (1e+-18 in float32) neither overflow nor vanish.

    References
    ----------
    .. [1] E. J. Candès, X. Li, Y. Ma, J. Wright, "Robust principal component analysis?",
       Journal of the ACM 58(3), 2011.
    .. [2] Z. Lin, M. Chen, Y. Ma, "The augmented Lagrange multiplier method for exact
       recovery of corrupted low-rank matrices", arXiv:1009.5055, 2010.
    .. [3] S. K. Roy, A. Basu, A. Ghosh, "rSVDdpd: a robust scalable video surveillance
       background modelling algorithm", arXiv:2109.10680, 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.robust import robust_pca
    >>> rng = np.random.default_rng(0)
    >>> L0 = rng.standard_normal((200, 5)) @ rng.standard_normal((5, 150))
    >>> S0 = np.where(rng.random((200, 150)) < 0.05, 10.0, 0.0)
    >>> result = robust_pca(L0 + S0, random_state=0)
    >>> result.rank, result.converged
    (5, True)
    >>> bool(np.linalg.norm(result.low_rank - L0) <= 1e-5 * np.linalg.norm(L0))
    True

    Missing entries (NaN) are filled in by the low-rank part:

    >>> M = L0 + S0
    >>> M[rng.random(M.shape) < 0.1] = np.nan
    >>> result = robust_pca(M, random_state=0)
    >>> bool(np.linalg.norm(result.low_rank - L0) <= 1e-4 * np.linalg.norm(L0))
    True
    """
    if is_dask_array(M):
        from ._dask import robust_pca_dask

        return robust_pca_dask(
            M,
            method=method,
            lam=lam,
            rank=rank,
            tol=tol,
            max_iter=max_iter,
            mask=mask,
            alpha=alpha,
            random_state=random_state,
        )
    p = _iv(M, method, lam, rank, tol, max_iter, mask, alpha, random_state)
    if p.method == "pcp":
        return _run_pcp(p)
    return _run_rsvddpd(p)


class _Checked(NamedTuple):
    """The arguments of :func:`robust_pca` once validated (see ``_iv``)."""

    M: Any  # finite at observed entries; NaN/inf may remain at unobserved ones
    observed: Any | None  # bool array, None when every entry is observed
    method: str
    lam: float | None
    rank: int | None
    tol: float
    max_iter: int
    alpha: float
    rng: Any
    xp: Any


def _iv(
    M: Any,
    method: Any,
    lam: Any,
    rank: Any,
    tol: Any,
    max_iter: Any,
    mask: Any,
    alpha: Any,
    random_state: Any,
) -> _Checked:
    """Validate every argument of :func:`robust_pca` (the one place that does)."""
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    ma_mask = None
    if isinstance(M, np.ma.MaskedArray):
        ma_mask = np.ma.getmaskarray(M)
        M = np.ma.getdata(M)
    if is_sparse(M):
        raise TypeError(
            "M must be a dense array: robust PCA's iterates are dense; pass M.toarray()"
        )
    # NaN marks unobserved entries, so the finiteness check is done here, on the observed
    # entries only.
    M, _, _ = check_matrix(M, "M", allow_operator=False, dense_norm=False)
    if M.dtype.kind == "c":
        raise TypeError(f"M must be real, got dtype {M.dtype}")
    xp = namespace(M)
    m, n = M.shape
    observed = None
    if mask is not None:
        observed = _check_mask(mask, M.shape, xp)
    if ma_mask is not None:
        keep = xp.asarray(~ma_mask)
        observed = keep if observed is None else observed & keep
    finite_sq = squared_norm(M)
    if not math.isfinite(finite_sq):
        finite = xp.isfinite(M)
        nan = xp.isnan(M)
        bad = ~finite & ~nan
        if observed is not None:
            bad &= observed
        if bool(bad.any()):
            raise ValueError("M contains infinity at observed entries")
        if bool(nan.any()):
            if method != "pcp":
                raise ValueError(
                    f"M contains NaN: missing entries are supported by method='pcp' only, "
                    f"not {method!r}"
                )
            observed = ~nan if observed is None else observed & ~nan
    if observed is not None:
        if method != "pcp":
            raise ValueError(
                f"mask (missing entries) is supported by method='pcp' only, not {method!r}"
            )
        if not bool(observed.any()):
            raise ValueError("M has no observed entry (all NaN or masked out)")
        if bool(observed.all()):
            observed = None
    if method == "pcp":
        if lam is None:
            lam = 1.0 / math.sqrt(max(m, n))
        else:
            lam = check_real(lam, "lam", low=0.0, low_open=True)
    r_max = min(m, n)
    if rank is not None:
        rank = check_int(rank, "rank", low=1, high=r_max)
    elif method == "rsvddpd":
        raise ValueError(f"method='rsvddpd' needs rank, an int in [1, {r_max}]")
    tol = check_real(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)
    if max_iter is None:
        max_iter = _MAX_ITER[method]
    max_iter = check_int(max_iter, "max_iter", low=1)
    alpha = check_real(alpha, "alpha", low=0.0, high=1.0)
    rng = check_random_state(random_state)
    if method == "pcp":
        floor = _TOL_FLOOR * float(np.finfo(M.dtype).eps)
        if tol < floor and tol != _DEFAULT_TOL:
            warnings.warn(
                f"tol={tol:g} is below what {M.dtype} resolves (rounding alone leaves a relative "
                f"residual near {floor:.1g}); using tol={floor:.2g}",
                UserWarning,
                stacklevel=3,
            )
        tol = max(tol, floor)
    return _Checked(M, observed, method, lam, rank, tol, max_iter, alpha, rng, xp)


def _check_mask(mask: Any, shape: tuple[int, int], xp: Any) -> Any:
    """The mask as a bool array on M's device (True = observed), or an error naming it."""
    if is_cupy_array(mask) != (xp is not np):
        raise TypeError("mask must live on the same device as M (both NumPy or both CuPy)")
    if not (isinstance(mask, np.ndarray) or is_cupy_array(mask)):
        if isinstance(mask, (list, tuple)):
            mask = np.asarray(mask)
        else:
            raise TypeError(f"mask must be a boolean array, got {type(mask).__name__}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"mask must have M's shape {tuple(shape)}, got {tuple(mask.shape)}")
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind not in "biuf":
        raise TypeError(f"mask must be a boolean array, got dtype {mask.dtype}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask must hold only True/False (or 0/1) values")
    return mask != 0


def _run_pcp(p: _Checked) -> RobustPCAResult:
    xp, M, observed = p.xp, p.M, p.observed
    data = M if observed is None else xp.where(observed, M, 0)
    # Entries of order one keep every norm, square and Gram matrix of the iteration in range;
    # a power of two scales exactly, and PCP is scale-equivariant.
    amax = float(xp.abs(data).max())
    scale = 1.0 if amax == 0.0 else float(np.ldexp(1.0, -int(np.frexp(amax)[1])))
    # The core never writes to D, so M itself can serve when nothing changes; its passes
    # stream through D row by row, so a Fortran-ordered or strided M is copied once.
    # The scale may not fit M's dtype (2**133 for float32 entries near 1e-40, subnormal):
    # it is applied in two exact halves, like the unscaling below.
    D = xp.ascontiguousarray(data if scale == 1.0 else _unscale(data, scale, xp))
    if observed is not None:
        observed = xp.ascontiguousarray(observed)
    # Each iteration makes dozens of BLAS calls on thin blocks (orthonormalisations, small
    # SVDs) between the fused elementwise passes; on matrices up to 2**20 entries OpenBLAS's
    # pool spends more time waking and busy-waiting than computing (measured, 1000 x 1000,
    # rank 25, on the shared 2-core machine under load: 10-28 s at the default threads, 1.3-1.5
    # s at one thread), so there the solve runs with one BLAS thread, as sparselin's other
    # families do for small blocks (the same threshold).
    with host_blas_limited(xp, M.shape[0] * M.shape[1]):
        out = pcp_core(
            D,
            p.lam,
            tol=p.tol,
            max_iter=p.max_iter,
            observed=observed,
            rank_cap=p.rank,
            rng=p.rng,
            xp=xp,
        )
    L, S, s = out.L, out.S, out.s
    if scale != 1.0:
        # Two exact steps for scales beyond the dtype's range (entries near 1e-42 in float32).
        inv = 1.0 / scale
        L = _unscale(L, inv, xp)
        S = _unscale(S, inv, xp)
        s = _unscale(s, inv, xp)
    rank = int(s.shape[0])
    m, n = M.shape
    if not out.converged:
        why = (
            f"stalled after {out.n_iter} iterations (no progress in the last {STALL_ITERATIONS})"
            if out.stalled
            else f"did not converge in {out.n_iter} iterations"
        )
        warnings.warn(
            f"robust_pca (pcp) {why}: relative residual {out.history[-1]:.3g} > tol={p.tol:g}; "
            "increase max_iter or tol",
            ConvergenceWarning,
            stacklevel=3,
        )
    effective = _effective_rank(s)
    # A rank-one part of a matrix with a single row or column is no regime failure.
    if effective > max(1.0, _EFFECTIVE_RANK_WARNING * min(m, n)):
        warnings.warn(
            f"the low-rank part is not of low rank: {effective} singular values hold 99.9% of "
            f"its energy, of at most {min(m, n)}. M lies outside the regime in which principal "
            "component pursuit separates a low-rank matrix from sparse corruptions (too many "
            "corruptions, or too high a rank), so this split should not be trusted",
            UserWarning,
            stacklevel=3,
        )
    return RobustPCAResult(
        low_rank=L,
        sparse=S,
        U=out.U,
        s=s,
        Vt=out.Vt,
        n_iter=out.n_iter,
        converged=out.converged,
        history=np.asarray(out.history, dtype=np.float64),
        method="pcp",
        lam=p.lam,
        rank=rank,
    )


def _effective_rank(s: Any) -> int:
    """The number of leading singular values that hold 99.9% of the sum of their squares."""
    if not s.shape[0]:
        return 0
    energy = np.cumsum(np.asarray(to_numpy(s), dtype=np.float64) ** 2)
    return int(np.searchsorted(energy, _EFFECTIVE_RANK_ENERGY * energy[-1]) + 1)


def _unscale(x: Any, inv: float, xp: Any) -> Any:
    """``x * inv`` for a power of two ``inv`` that may not fit x's dtype, in two exact halves.

    Exact unless ``x`` holds subnormal entries, whose missing low bits stay missing.
    """
    e = math.frexp(inv)[1] - 1
    first, second = math.ldexp(1.0, e // 2), math.ldexp(1.0, e - e // 2)
    with np.errstate(over="ignore"):
        return (x * x.dtype.type(first)) * x.dtype.type(second)


def _run_rsvddpd(p: _Checked) -> RobustPCAResult:
    xp, M = p.xp, p.M
    out = _rsvddpd_core(
        M,
        p.rank,
        alpha=p.alpha,
        tol=p.tol,
        max_iter=p.max_iter,
        random_state=p.rng,
        xp=xp,
    )
    U, s, Vt = out.U, out.s, out.Vt
    L = (U * s) @ Vt
    # The deflation's progress: ||M - L_k||_F / ||M||_F after each component k.
    m_norm = math.sqrt(squared_norm(M))
    R = M.copy()
    history = []
    for k in range(int(s.shape[0])):
        R -= xp.outer(U[:, k] * s[k], Vt[k])
        history.append(math.sqrt(squared_norm(R)) / m_norm if m_norm else 0.0)
    del R
    if not out.converged:
        warnings.warn(
            f"robust_pca (rsvddpd) did not converge within max_iter={p.max_iter} iterations "
            "for every component; increase max_iter or tol",
            ConvergenceWarning,
            stacklevel=3,
        )
    return RobustPCAResult(
        low_rank=L,
        sparse=M - L,
        U=U,
        s=s,
        Vt=Vt,
        n_iter=int(out.n_iter),
        converged=bool(out.converged),
        history=np.asarray(history, dtype=np.float64),
        method="rsvddpd",
        lam=None,
        rank=int(s.shape[0]),
        weights=out.weights,
    )
