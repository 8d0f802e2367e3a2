"""Principal component pursuit by the inexact augmented Lagrange multiplier method (private core).

Solves ``min ||L||_* + lam ||P_obs(S)||_1  subject to  L + S = D`` (Lin, Chen, Ma's inexact ALM,
the reference ``inexact_alm_rpca``): one pass of soft thresholding for ``S`` and one singular
value thresholding (SVT) for ``L`` per step, then the dual update and ``mu <- min(rho mu,
mu_bar)``. The SVT runs through a *partial* SVD of the predicted number ``sv`` of singular values
above the threshold (sparselin's truncated SVD), grown by the reference rule when every computed
value passed the threshold, and through a dense SVD only when ``sv`` is a large part of
``min(m, n)``, where the dense SVD is the cheaper of the two.

Nothing here validates its input: :func:`sparselin.robust.robust_pca` does that once.
"""

from __future__ import annotations

import math
import types
from typing import Any, NamedTuple

import numpy as np

from .._numba import jit
from .._validation import squared_norm
from ..linalg._truncated_svd import _truncated_svd_core

__all__ = ["PCPOutput", "pcp_core"]

# The reference schedule [inexact_alm_rpca.m]: mu0 = 1.25 / ||D||_2, mu <- 1.5 mu, capped at
# 1e7 mu0 (the cap keeps sum 1/mu_k divergent, the condition for global convergence), and the
# first partial SVD asks for 10 singular values.
RHO = 1.5
MU0_FACTOR = 1.25
MU_BAR_FACTOR = 1e7
SV_START = 10
# Once mu has reached mu_bar the iteration is plain ADMM; if the residual then fails to improve
# on its best by 1% for this many iterations, it has stalled (at the rounding level of the
# dtype, or on a problem that does not converge) and the solver stops instead of running to
# max_iter.
STALL_ITERATIONS = 20
# The dual residual mu ||L_k - L_{k-1}||_F / ||D||_F must also fall to DUAL_TOL (see
# StoppingRule), and mu backs off while the primal residual is below BACKOFF_BELOW but the
# dual one above DUAL_TOL (see next_mu). The partial SVDs' randomness leaves the dual residual
# at 1e-5 to 8e-4 at the end of successful solves (float32 and float64, 40 x 30 to
# 1000 x 1000), whereas the iterates that froze away from the optimum had 2e-2; hence a fixed
# DUAL_TOL between the two rather than tol. Measured (tol 1e-7, with and without 10% missing
# entries): 100 x 80, rank 5, 10% corruptions, L error 3e-3 -> 8e-8 (29 iterations); 500 x
# 500 and 1000 x 1000, rank 25: 19-26 iterations, as before.
DUAL_TOL = 3e-3
BACKOFF_BELOW = 1e-3
HOLD_BELOW = 1e-2
# Growth of sv when every computed singular value passed the threshold: 5% of min(m, n).
SV_GROWTH = 0.05
# Above this fraction of min(m, n), one dense SVD costs less than the partial SVD. Measured
# (float64, one thread, numpy.linalg.svd against the partial SVD below, 300^2, 500^2, 1000^2
# and 4000 x 300): time ratios partial / dense of 0.13 at 0.1 min(m, n), 0.3 at 0.2, 0.56-0.75
# at 0.3 and 0.72-1.09 at 0.4.
DENSE_FRACTION = 0.35
# Power iterations of each partial SVD. Late iterates are the low-rank part plus a remainder
# whose singular values lie below the threshold 1/mu, which is tiny next to the retained ones,
# so subspace iteration converges in a step or two. Measured (500^2 rank 25 and rank 50,
# 1000^2, 300 x 1000): one iteration already gives the full-SVD solver's iteration counts and
# errors; two are kept as a margin for less separated spectra, at about 10% more time.
SVD_POWER_ITERATIONS = 2


class PCPOutput(NamedTuple):
    """What :func:`pcp_core` returns (``L = U @ diag(s) @ Vt`` exactly)."""

    L: Any
    S: Any
    U: Any
    s: Any
    Vt: Any
    n_iter: int
    converged: bool
    history: list[float]
    # Per iteration: (singular values computed, singular values kept above the threshold);
    # a dense SVD computes min(m, n).
    svd_sizes: list[tuple[int, int]]
    stalled: bool  # stopped early: no progress for STALL_ITERATIONS iterations at mu_bar


def _svt_svd(
    G: Any, sv: int, svd: str, rng: Any, xp: types.ModuleType
) -> tuple[Any, Any, Any, bool]:
    """The leading ``sv`` singular triplets of ``G``; whether a dense SVD computed them."""
    m, n = G.shape
    r_max = min(m, n)
    if svd == "full" or (svd == "auto" and sv >= DENSE_FRACTION * r_max) or sv >= r_max:
        U, s, Vt = xp.linalg.svd(G, full_matrices=False)
        return U, s, Vt, True
    U, s, Vt, _ = _truncated_svd_core(
        G,
        sv,
        n_iter=SVD_POWER_ITERATIONS,
        rng=rng,
        kind="dense",
        # The sketch in G's own precision: a float32 sketch of a float64 G cannot resolve the
        # subspace to the 1e-7 relative accuracy the solver asks for.
        sketch_dtype=G.dtype,
    )
    return U, s, Vt, False


# The elementwise part of an iteration is memory-bound: as NumPy expressions it takes ten
# passes over m x n arrays (four for the S step, four for the dual step, two for scratch),
# which cost more than the partial SVD itself on tall video matrices. On the CPU two fused
# Numba kernels do it in two passes. Measured (float64, one thread, one iteration's elementwise
# work): 20000 x 300, 155 ms with NumPy, 58 ms fused; 1000 x 1000, 40 ms and 3 ms. The kernels
# are serial: the work is bound by memory bandwidth, which a second core barely adds to, and
# Numba's parallel regions cost milliseconds each on a loaded machine (a 30 x 20 solve took
# 1.6 s with parallel=True on two busy cores). On CuPy the same steps run as array
# expressions (each a single kernel launch on the device).
@jit
def _s_step_kernel(D, A, W, observed, use_mask, t, E, G):  # pragma: no cover - compiled
    m, n = D.shape
    for i in range(m):
        for j in range(n):
            a = A[i, j]
            x = D[i, j] - a + W[i, j]
            c = min(max(x, -t), t)
            if use_mask and not observed[i, j]:
                c = 0.0
            E[i, j] = x - c
            G[i, j] = a + c


@jit
def _dual_step_kernel(D, A, A_old, E, W, f):  # pragma: no cover - compiled
    m, n = D.shape
    total = 0.0
    change = 0.0
    for i in range(m):
        row = 0.0
        row_change = 0.0
        for j in range(n):
            a = A[i, j]
            z = D[i, j] - a - E[i, j]
            row += float(z) * float(z)
            d = float(a) - float(A_old[i, j])
            row_change += d * d
            W[i, j] = (W[i, j] + z) * f
        total += row
        change += row_change
    return total, change


_NO_MASK = np.ones((1, 1), dtype=bool)


def _s_step(D, A, W, observed, mask, t, E, G, xp):
    """E = shrink(D - A + W, t) on the observed entries (E = D - A + W off them); G = D - E + W.

    Written through C = clip(T, -t, t), T = D - A + W: E = T - C and G = A + C, which is the
    matrix whose singular values are thresholded next.
    """
    if xp is np:
        mask_arg = _NO_MASK if observed is None else observed
        _s_step_kernel(D, A, W, mask_arg, observed is not None, t, E, G)
        return
    xp.subtract(D, A, out=G)
    G += W  # G holds T for now
    C = xp.clip(G, -t, t)
    if mask is not None:
        C *= mask
    xp.subtract(G, C, out=E)
    xp.add(A, C, out=G)


def _dual_step(D, A, A_old, E, W, f, xp):
    """W <- (W + Z) f with Z = D - A - E; returns ``(||Z||_F^2, ||A - A_old||_F^2)``."""
    if xp is np:
        total, change = _dual_step_kernel(D, A, A_old, E, W, W.dtype.type(f))
        return float(total), float(change)
    Z = D - A
    Z -= E
    W += Z
    W *= W.dtype.type(f)
    return squared_norm(Z), squared_norm(A - A_old)


def next_sv(svp: int, n_computed: int, dense: bool, r_max: int, rank_cap: int | None) -> int:
    """How many singular values the next iteration computes (the reference's prediction).

    One more than the ``svp`` values that passed the threshold, or 5 % of ``min(m, n)`` more
    when every one of the ``n_computed`` values passed it (and a full SVD was not taken).
    """
    if svp < n_computed or dense:
        sv = min(svp + 1, r_max)
    else:
        sv = min(svp + max(1, round(SV_GROWTH * r_max)), r_max)
    return sv if rank_cap is None else min(sv, rank_cap)


def next_mu(mu: float, mu_bar: float, primal: float, dual: float) -> float:
    """The penalty of the next iteration, from the last iteration's residuals.

    The reference schedule ``min(RHO mu, mu_bar)``, except when the primal residual is below
    ``BACKOFF_BELOW`` while the dual one is above ``DUAL_TOL``: ``mu`` has then outrun the
    multiplier, and the iterates would freeze at a feasible point that is not the optimum
    (each later step moves them by ``O(1 / mu)``), so ``mu`` backs off by ``RHO`` instead
    (residual balancing).
    """
    if dual > DUAL_TOL:
        if primal < BACKOFF_BELOW:
            return mu / RHO
        if primal < HOLD_BELOW:
            return mu
    return min(RHO * mu, mu_bar)


class StoppingRule:
    """When the inexact ALM stops: converged, a non-finite residual, or stalled.

    Call it with each iteration's relative primal residual ``||D - L - S||_F / ||D||_F``,
    its relative dual residual ``mu ||L_k - L_{k-1}||_F / ||D||_F``, the new ``mu`` and
    ``mu_bar``; it returns True to stop and records why in ``converged`` and ``stalled``.
    Convergence needs the primal residual ``<= tol`` and the dual one ``<= max(tol,
    DUAL_TOL)``: the reference tests the primal one only, and with its fast ``mu`` growth
    that test can pass at a feasible point far from the PCP optimum (measured: 100 x 80,
    rank 5, 10% corruptions, ``L`` 3e-3 from the truth, which the convex problem recovers
    to 1e-7 (cvxpy), with a dual residual of 2e-2). A stall is ``STALL_ITERATIONS``
    iterations in which neither residual improved by 1 % on its best so far.
    """

    def __init__(self, tol: float) -> None:
        self.tol = tol
        self.dual_tol = max(tol, DUAL_TOL)
        self.best = self.best_dual = math.inf
        self._last_mu = 0.0
        self._balancing = False
        self.since_best = 0
        self.converged = False
        self.stalled = False

    def __call__(self, residual: float, dual: float, mu: float, mu_bar: float) -> bool:
        if not (math.isfinite(residual) and math.isfinite(dual)):
            return True
        if residual <= self.tol and dual <= self.dual_tol:
            self.converged = True
            return True
        # Progress is a 1 % improvement of either residual on its best so far. Once mu has
        # been held or backed off (see next_mu), the primal one hovers by design while the
        # dual one falls, so the dual one counts from then on (before, while mu is small,
        # the dual residual is small too and says nothing).
        if mu <= self._last_mu:
            self._balancing = True
        self._last_mu = mu
        improved = False
        if residual < 0.99 * self.best:
            self.best, improved = residual, True
        if self._balancing and dual < 0.99 * self.best_dual:
            self.best_dual, improved = dual, True
        self.since_best = 0 if improved else self.since_best + 1
        if self.since_best >= STALL_ITERATIONS:
            self.stalled = True
            return True
        return False


def pcp_core(
    D: Any,
    lam: float,
    *,
    tol: float,
    max_iter: int,
    observed: Any | None,
    rank_cap: int | None,
    rng: Any,
    xp: types.ModuleType,
    svd: str = "auto",
) -> PCPOutput:
    """Inexact ALM for PCP on an already validated ``D``.

    ``D`` is a finite real 2-D array of xp (entries of order 1: the caller scales it), zero at
    unobserved entries; ``observed`` a boolean array of D's shape (None: all observed);
    ``rank_cap`` caps the number of singular values kept per SVT (None: no cap); ``svd`` is
    ``"auto"`` (partial SVD, dense when ``sv`` is large), ``"partial"`` or ``"full"``. ``D`` and
    ``observed`` are not modified.

    Unobserved entries: the ``S`` update there is unconstrained (no l1 penalty), so ``S`` takes
    whatever closes the constraint and ``L`` is filled in by the low-rank structure alone. The
    returned ``S`` is zero at unobserved entries (there is nothing to separate there).
    """
    m, n = D.shape
    r_max = min(m, n)
    dtype = D.dtype
    d_norm = math.sqrt(squared_norm(D))
    if d_norm == 0.0:
        empty_u = xp.zeros((m, 0), dtype=dtype)
        empty_v = xp.zeros((0, n), dtype=dtype)
        return PCPOutput(
            xp.zeros_like(D),
            xp.zeros_like(D),
            empty_u,
            xp.zeros(0, dtype=dtype),
            empty_v,
            0,
            True,
            [],
            [],
            False,
        )
    # ||D||_2 from the truncated SVD (one value; its adaptive iterations converge on the top
    # value to far better than the schedule needs).
    _, s1, _, _ = _truncated_svd_core(D, 1, rng=rng, kind="dense", sketch_dtype=dtype)
    norm_two = float(s1[0])
    # Y0 = D / J(D), J(D) = max(||D||_2, ||D||_max / lam): dual feasible. The iteration keeps
    # W = Y / mu instead of Y, which saves a division per step: W <- (W + Z) mu_k / mu_{k+1}.
    d_max = float(xp.abs(D).max())
    dual_norm = max(norm_two, d_max / lam)
    mu = MU0_FACTOR / norm_two
    mu_bar = MU_BAR_FACTOR * mu
    W = D * dtype.type(1.0 / (dual_norm * mu))
    A = xp.zeros_like(D)
    mask = None if observed is None or xp is np else observed.astype(dtype)
    E = xp.empty_like(D)
    G = xp.empty_like(D)
    sv = min(SV_START, r_max if rank_cap is None else rank_cap)
    history: list[float] = []
    svd_sizes: list[tuple[int, int]] = []
    U = s_kept = Vt = None
    n_iter = 0
    stop = StoppingRule(tol)
    residual = dual = math.inf
    while n_iter < max_iter:
        n_iter += 1
        # S step and the matrix G = D - E + Y / mu whose singular values are thresholded.
        _s_step(D, A, W, observed, mask, lam / mu, E, G, xp)
        U_all, s_all, Vt_all, dense = _svt_svd(G, sv, svd, rng, xp)
        threshold = 1.0 / mu
        svp = int(xp.count_nonzero(s_all > threshold))
        if rank_cap is not None:
            svp = min(svp, rank_cap)
        svd_sizes.append((int(s_all.shape[0]), svp))
        U = U_all[:, :svp]
        s_kept = s_all[:svp] - dtype.type(threshold)
        Vt = Vt_all[:svp]
        # The new A goes into G (no longer needed once its SVD is taken), so that the dual
        # step can measure the change from the old A in the same pass; then they swap.
        if svp:
            xp.matmul(U * s_kept, Vt, out=G)
        else:
            G.fill(0)
        sv = next_sv(svp, int(s_all.shape[0]), dense, r_max, rank_cap)
        # Dual step: Z = D - A - E; Y <- Y + mu Z, i.e. W <- (W + Z) mu / mu_next. mu_next
        # comes from the previous iteration's residuals: W is updated in the same pass that
        # measures this iteration's.
        mu_next = next_mu(mu, mu_bar, residual, dual)
        z2, change2 = _dual_step(D, G, A, E, W, mu / mu_next, xp)
        A, G = G, A
        residual = math.sqrt(z2) / d_norm
        dual = mu * math.sqrt(change2) / d_norm
        if rank_cap is not None and svp >= rank_cap:
            # A binding rank cap makes the SVT no proximal step of a convex problem: there is
            # no optimum for the dual residual to certify, so the reference's primal test
            # alone decides (as before the dual test was added).
            dual = 0.0
        history.append(residual)
        mu = mu_next
        if stop(residual, dual, mu, mu_bar):
            break
    S = E
    if observed is not None:
        S = xp.where(observed, E, 0)
    return PCPOutput(A, S, U, s_kept, Vt, n_iter, stop.converged, history, svd_sizes, stop.stalled)
