"""Convex solvers for the weighted LASSO, SR-LASSO and LAD-LASSO (one design, three losses).

Each problem is ``min_x F(y - A x) + lam * sum_j w_j |x_j|`` with ``F`` the squared, the
square-root or the absolute loss (``_losses``), solved by the same outer loop:

1. from the current residual, build a dual-feasible point and the **duality gap**; stop when
   the gap is at most ``tol`` times ``F(y)`` (the objective at ``x = 0``);
2. otherwise pick a **working set**: the support, the unpenalised columns, and the columns
   whose dual constraint ``|<a_j, theta>| <= lam w_j`` is closest to active (celer/skglm
   style), twice the support (four times while the support fills it);
3. solve the problem restricted to the working set, warm-started:

   * squared and square-root losses: exact cyclic **coordinate descent** (Numba), with
     **Anderson acceleration** of the iterates every few epochs (kept only where it lowers
     the objective; several-fold fewer epochs on correlated columns), the whole inner loop
     compiled. Once the working set has settled and the signs of the iterate stop
     changing, one **direct solve** of the optimality system on that support (a Cholesky
     factorisation; for the square-root loss the residual norm has a closed form) replaces
     the remaining epochs where they would cost more, kept only where its gap is lower. The
     coordinate minimiser of the square-root loss has a closed form, the same 1-D minimum as
     the loss-based OMP's SR-l1 rule, so no smoothing and no Hessian is involved; it keeps
     working at tiny residuals (low-noise compressed sensing), where Newton-type SR-LASSO
     solvers stop;
   * absolute loss: the problem is a linear program, solved exactly by the simplex method
     of ``_lad`` (interior-point crossover start, long-step pivots, partial pricing on a
     working set of columns, one full pricing at the end); its multipliers are the
     ``theta`` of step 1. HiGHS column generation on working sets remains as the fallback
     (numerical failure, or more than ``_LAD_SIMPLEX_MAX_ROWS`` rows).

Warm starts (``coef_init``) and ``*_path`` over a decreasing grid of ``lam`` reuse the
previous solution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from .._threads import blas_limited
from .._validation import check_int, check_real
from ..linalg._dense import _cholesky_upper, _triangular_inverse
from ._checks import check_problem, check_weights
from ._lad import lad_solve

__all__ = [
    "ConvexInfo",
    "lad_lasso",
    "lad_lasso_path",
    "lam_max",
    "sqrt_lasso",
    "sqrt_lasso_path",
    "weighted_lasso",
    "weighted_lasso_path",
]

SQUARED, SQRT, LAD = 0, 1, 2
_KIND = {"lasso": SQUARED, "sqrt_lasso": SQRT, "lad_lasso": LAD}


@dataclass
class ConvexInfo:
    """Convergence record of a convex solve.

    Attributes
    ----------
    objective : float
        Primal objective at the returned coefficients.
    gap : float
        Duality gap there (an upper bound on the distance to the optimal objective).
    n_iter : int
        Outer (working-set) iterations.
    converged : bool
        Whether ``gap <= tol * F(y)`` was reached within ``max_iter``.
    """

    objective: float
    gap: float
    n_iter: int
    converged: bool


# reassoc lets LLVM vectorise the column dot products (a reduction); the inputs are
# validated finite, so no NaN/inf semantics are at stake.
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _cd_epochs(A, norms2, x, r, thr, kind, n_epochs):  # pragma: no cover - compiled
    """``n_epochs`` cyclic coordinate-descent sweeps on the columns of the F-ordered ``A``.

    ``thr[j] = lam * w_j``; ``r = y - A x`` is kept up to date. ``kind`` 0: squared loss
    (soft thresholding at ``thr / (2 ||a_j||^2)``); 1: square-root loss, whose coordinate
    minimiser of ``||v - z a_j|| + thr_j |z|`` (``v`` the residual without atom j) is
    ``z = sign(<a_j, v>) (U - b delta / sqrt(1 - b^2))_+ / ||a_j||`` with ``U = |<a_j, v>| /
    ||a_j||``, ``delta`` the distance of ``r`` from the line of ``a_j`` and ``b = thr_j /
    ||a_j||`` (zero when ``b >= 1``).
    """
    m, k = A.shape
    for _ in range(n_epochs):
        rn2 = 0.0
        if kind == 1:
            for i in range(m):
                rn2 += r[i] * r[i]
        for j in range(k):
            nj2 = norms2[j]
            if nj2 == 0.0:
                continue
            cj = 0.0
            for i in range(m):
                cj += A[i, j] * r[i]
            old = x[j]
            if kind == 0:
                u = old + cj / nj2
                t = thr[j] / (2.0 * nj2)
                new = 0.0
                if u > t:
                    new = u - t
                elif u < -t:
                    new = u + t
            else:
                nj = np.sqrt(nj2)
                av = cj + old * nj2
                U = abs(av) / nj
                delta2 = rn2 - cj * cj / nj2
                if delta2 < 0.0:
                    delta2 = 0.0
                b = thr[j] / nj
                new = 0.0
                if b < 1.0:
                    s = U - b * np.sqrt(delta2) / np.sqrt(1.0 - b * b)
                    if s > 0.0:
                        new = (s if av > 0 else -s) / nj
            if new != old:
                d = new - old
                for i in range(m):
                    r[i] -= d * A[i, j]
                if kind == 1:
                    rn2 += -2.0 * d * cj + d * d * nj2
                x[j] = new


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _norms_and_dots(A, r):  # pragma: no cover - compiled
    """Squared column norms of the F-ordered ``A`` and ``A^T r``, in one pass over A (at
    500 x 5000 a pass costs more than the arithmetic)."""
    m, n = A.shape
    norms2 = np.empty(n)
    dots = np.empty(n)
    for j in range(n):
        s = 0.0
        d = 0.0
        for i in range(m):
            s += A[i, j] * A[i, j]
            d += A[i, j] * r[i]
        norms2[j] = s
        dots[j] = d
    return norms2, dots


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _restricted_gap(A, y, x, r, thr, pen, Q, kind):  # pragma: no cover - compiled
    """``(primal, gap, n_viol)`` of the problem restricted to the columns of ``A`` at ``x``
    (residual ``r``): the dual point is the residual projected off the span of the
    unpenalised columns (orthonormal basis ``Q``, possibly empty), rescaled into
    feasibility -- the same certificate as ``_Dual.gap``, without the Python calls.
    ``n_viol`` counts the zero coefficients whose dual constraint the unscaled residual
    violates (columns that would enter the support)."""
    m, k = A.shape
    rp = r.copy()
    if Q.shape[1]:
        # Twice is enough (Kahan and Parlett), as in _Dual.point: a residual in the span of
        # the unpenalised columns projects to rounding noise, not to a dual direction.
        n1 = 0.0
        for sweep in range(2):
            for q in range(Q.shape[1]):
                t = 0.0
                for i in range(m):
                    t += Q[i, q] * rp[i]
                for i in range(m):
                    rp[i] -= t * Q[i, q]
            n2 = 0.0
            for i in range(m):
                n2 += rp[i] * rp[i]
            if sweep == 1 and n2 <= 0.25 * n1:
                rp[:] = 0.0
            n1 = n2
    penalty = 0.0
    for j in range(k):
        penalty += thr[j] * abs(x[j])
    rn2 = 0.0
    rpn2 = 0.0
    yrp = 0.0
    for i in range(m):
        rn2 += r[i] * r[i]
        rpn2 += rp[i] * rp[i]
        yrp += y[i] * rp[i]
    P = rn2 + penalty if kind == 0 else np.sqrt(rn2) + penalty
    # theta = t rp with t the largest scale keeping |<a_j, theta>| <= bound_j: bound_j =
    # thr_j / 2 (squared loss, half-scaled dual) or thr_j with ||theta|| <= 1 (square root)
    if kind == 1:
        if rpn2 == 0.0:
            return P, max(P, 0.0), k
        t = 1.0 / np.sqrt(rpn2)
    else:
        t = 1.0
    t0 = t
    n_viol = 0  # zero coefficients whose optimality condition fails at the current r
    for j in range(k):
        if not pen[j]:
            continue
        c = 0.0
        for i in range(m):
            c += A[i, j] * rp[i]
        c = abs(c)
        bound = thr[j] / 2 if kind == 0 else thr[j]
        if x[j] == 0.0 and c * t0 > bound:
            n_viol += 1
        if c * t > bound:
            t = bound / c
    D = 2.0 * t * yrp - t * t * rpn2 if kind == 0 else t * yrp
    return P, max(P - D, 0.0), n_viol


@numba.njit(cache=True, nogil=True)
def _anderson_weights(hist_x, out):  # pragma: no cover - compiled
    """Affine weights (summing to one) of the last ``K`` iterates that minimise the norm of
    the combined differences: ``z = (U U^T + eps I)^{-1} 1`` normalised, by Gaussian
    elimination with partial pivoting on the K x K system. False where it is singular."""
    K = hist_x.shape[0] - 1
    n = hist_x.shape[1]
    C = np.zeros((K, K + 1))
    for a in range(K):
        for b in range(a, K):
            s = 0.0
            for j in range(n):
                s += (hist_x[a + 1, j] - hist_x[a, j]) * (hist_x[b + 1, j] - hist_x[b, j])
            C[a, b] = s
            C[b, a] = s
    tr = 0.0
    for a in range(K):
        tr += C[a, a]
    if not tr > 0.0:
        return False
    for a in range(K):
        C[a, a] += 1e-14 * tr
        C[a, K] = 1.0
    for col in range(K):
        piv = col
        for a in range(col + 1, K):
            if abs(C[a, col]) > abs(C[piv, col]):
                piv = a
        if C[piv, col] == 0.0:
            return False
        if piv != col:
            for b in range(K + 1):
                C[col, b], C[piv, b] = C[piv, b], C[col, b]
        for a in range(col + 1, K):
            f = C[a, col] / C[col, col]
            for b in range(col, K + 1):
                C[a, b] -= f * C[col, b]
    total = 0.0
    for a in range(K - 1, -1, -1):
        s = C[a, K]
        for b in range(a + 1, K):
            s -= C[a, b] * out[b]
        out[a] = s / C[a, a]
        total += out[a]
    if not np.isfinite(total) or total == 0.0:
        return False
    for a in range(K):
        out[a] /= total
    return True


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _inner_solve(
    A, y, norms2, x, r, thr, pen, Q, kind, target, K, anderson, max_epochs, stop_stable
):  # pragma: no cover - compiled
    """Coordinate descent with Anderson acceleration on the working set ``A`` (see
    :func:`_inner_cd`), in place on ``x`` and ``r``. Returns ``(gap, epochs, stable)``:
    with ``stop_stable`` it also returns (``stable`` True) as soon as two consecutive
    cycles end on the same signs of ``x``, no zero coefficient violates its optimality
    condition (the support looks found) and the cycles still needed at the current rate
    would cost more than a direct solve on the support (``_direct_step``)."""
    m, k = A.shape
    sign_prev = np.zeros(k, np.int8)
    for j in range(k):
        sign_prev[j] = (x[j] > 0) - (x[j] < 0)
    hist_x = np.empty((K + 1, k))
    hist_r = np.empty((K + 1, m))
    coef = np.empty(K)
    x_acc = np.empty(k)
    r_acc = np.empty(m)
    y_norm2 = 0.0
    for i in range(m):
        y_norm2 += y[i] * y[i]
    g_prev = np.inf
    g = np.inf
    ep = 0
    while ep < max_epochs:
        for e in range(K + 1):
            _cd_epochs(A, norms2, x, r, thr, kind, 1)
            hist_x[e, :] = x
            hist_r[e, :] = r
        ep += K + 1
        if anderson and _anderson_weights(hist_x, coef):
            x_acc[:] = 0.0
            r_acc[:] = 0.0
            spread = 0.0
            for a in range(K):
                spread += abs(coef[a])
                for j in range(k):
                    x_acc[j] += coef[a] * hist_x[a + 1, j]
                for i in range(m):
                    r_acc[i] += coef[a] * hist_r[a + 1, i]
            # The combined residual carries the rounding of the incremental residuals
            # times sum |coef|: form it afresh where that could matter (large weights, or
            # a residual near the rounding level of y, as at the SR-LASSO's tiny residuals).
            ra2 = 0.0
            for i in range(m):
                ra2 += r_acc[i] * r_acc[i]
            if spread > 1e3 or ra2 < 1e-12 * y_norm2:
                for i in range(m):
                    r_acc[i] = y[i]
                for j in range(k):
                    if x_acc[j] != 0.0:
                        for i in range(m):
                            r_acc[i] -= x_acc[j] * A[i, j]
                ra2 = 0.0
                for i in range(m):
                    ra2 += r_acc[i] * r_acc[i]
            rn2 = 0.0
            for i in range(m):
                rn2 += r[i] * r[i]
            p_acc = 0.0
            p_cur = 0.0
            for j in range(k):
                p_acc += thr[j] * abs(x_acc[j])
                p_cur += thr[j] * abs(x[j])
            if kind == 0:
                p_acc += ra2
                p_cur += rn2
            else:
                p_acc += np.sqrt(ra2)
                p_cur += np.sqrt(rn2)
            if p_acc < p_cur:
                x[:] = x_acc
                r[:] = r_acc
        _, g, n_viol = _restricted_gap(A, y, x, r, thr, pen, Q, kind)
        # (SR-LASSO) a gap that no longer falls means a stall at an interpolating point
        if g <= target or (kind == 1 and g > 0.999 * g_prev):
            return g, ep, False
        rate = g / g_prev
        g_prev = g
        same = n_viol == 0
        n_sup = 0
        for j in range(k):
            sj = (x[j] > 0) - (x[j] < 0)
            n_sup += sj != 0
            if sj != sign_prev[j]:
                same = False
                sign_prev[j] = sj
        if same and stop_stable and rate < 1.0:
            # Worth it only where the cycles still needed at the current rate of the gap
            # would cost more than the Gram matrix and its Cholesky factor (BLAS flops
            # counted at half the price of the compiled loops' memory-bound ones).
            cycles_left = np.log(target / g) / np.log(rate)
            cd_cost = cycles_left * (K + 2) * 2.0 * k * m
            direct_cost = 0.5 * (n_sup * n_sup * m + n_sup * n_sup * n_sup / 3.0)
            if cd_cost > direct_cost:
                return g, ep, True
    return g, ep, False


def _project_off(Q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``r`` projected off the span of the orthonormal columns ``Q``, or 0 where ``r`` lies
    in that span to working precision.

    Two projections ("twice is enough", Kahan and Parlett): one pass leaves an error of
    about ``eps ||r||`` in the span, which the square-root loss's dual point (the projection
    normalised to unit length) magnified into a unit vector of rounding noise; that point
    broke the constraints of the unpenalised columns and certified a zero duality gap at
    non-optimal points (all weights 0: ``||A x - y|| = 1e-2`` reported optimal). A second
    pass that removes less than half of what is left means the first one left only noise.
    """
    r1 = r - Q @ (Q.T @ r)
    r2 = r1 - Q @ (Q.T @ r1)
    if float(r2 @ r2) <= 0.25 * float(r1 @ r1):
        return np.zeros_like(r)
    return r2


class _Dual:
    """Dual-feasible points and duality gaps for the three losses (unpenalised columns are
    handled by projecting the residual off their span first)."""

    def __init__(self, A: np.ndarray, y: np.ndarray, lam: float, w: np.ndarray, kind: int):
        self.A, self.y, self.lam, self.w, self.kind = A, y, lam, w, kind
        # lam w_j = 0 (w_j = 0, or lam = 0 for every column) makes the dual constraint an
        # equality, <a_j, theta> = 0; as an inequality with bound 0 it scaled every dual
        # point to 0, and the gap at the least-squares optimum (lam = 0) stayed the whole
        # objective: never converged, max_iter rounds spent.
        self.free = np.flatnonzero(lam * w == 0)
        self.pen = ~(lam * w == 0)
        self.Q = np.linalg.qr(A[:, self.free])[0] if self.free.size else None

    def primal(self, r: np.ndarray, x: np.ndarray) -> float:
        pen = self.lam * float(np.sum(self.w * np.abs(x)))
        if self.kind == SQUARED:
            return float(r @ r) + pen
        if self.kind == SQRT:
            return float(np.linalg.norm(r)) + pen
        return float(np.abs(r).sum()) + pen

    def point(self, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A dual-feasible ``theta`` (a rescaled residual) and ``A^T theta``."""
        if self.Q is not None:
            r0 = r
            r = _project_off(self.Q, r)
            c = c - self.A.T @ (r0 - r)
        lw = self.lam * self.w
        if self.kind == SQUARED:
            # the half-scaled problem 1/2 ||r||^2 + lam/2 ||x||_w: |<a_j, theta>| <= lam w_j/2
            bound = lw / 2
            base = 1.0
        elif self.kind == SQRT:
            nr = float(np.linalg.norm(r))
            if nr == 0.0:
                return np.zeros_like(r), np.zeros_like(c)
            r, c = r / nr, c / nr
            bound, base = lw, 1.0
        else:
            r = np.sign(r)
            c = self.A.T @ r
            bound, base = lw, 1.0
        ac = np.abs(c[self.pen])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(ac > 0, bound[self.pen] / ac, np.inf)
        s = min(base, float(ratios.min())) if ratios.size else base
        return s * r, s * c

    def gap_from(
        self, theta: np.ndarray, r: np.ndarray, x: np.ndarray
    ) -> tuple[float, float, np.ndarray]:
        """LAD: ``(primal, gap, A^T theta)`` from a dual candidate (an LP's multipliers on a
        working set), rescaled into feasibility for every column; ``A^T theta`` is returned
        unscaled so that violated constraints rank first in the next working set."""
        P = self.primal(r, x)
        theta = np.clip(theta, -1.0, 1.0)
        ctheta = self.A.T @ theta
        lw = self.lam * self.w
        pen = lw > 0  # lam = 0 makes every constraint an equality, as for w_j = 0
        ac = np.abs(ctheta[pen])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(ac > 0, lw[pen] / ac, np.inf)
        s = min(1.0, float(ratios.min())) if ratios.size else 1.0
        # <a_j, theta> = 0 for the unpenalised columns, to a tolerance relative to the
        # largest value it could have (|theta_i| <= 1): the simplex multipliers meet it to
        # rounding, and a violation would otherwise void the certificate
        eq = ~pen
        if eq.any() and np.any(np.abs(ctheta[eq]) > 1e-9 * np.abs(self.A[:, eq]).sum(axis=0)):
            s = 0.0
        return P, max(P - s * float(self.y @ theta), 0.0), ctheta

    def gap(self, r: np.ndarray, x: np.ndarray, c: np.ndarray) -> tuple[float, float, np.ndarray]:
        """``(primal, gap, A^T theta)`` at ``x`` with residual ``r`` and ``c = A^T r``."""
        P = self.primal(r, x)
        theta, ctheta = self.point(r, c)
        if self.kind == SQUARED:
            D = float(self.y @ self.y) - float((self.y - theta) @ (self.y - theta))
        else:
            D = float(self.y @ theta)
        return P, max(P - D, 0.0), ctheta


def _working_set(
    ctheta: np.ndarray, bound: np.ndarray, norms: np.ndarray, x: np.ndarray, free, size: int
) -> np.ndarray:
    """The support, the unpenalised columns and the ``size`` columns closest to violating
    their dual constraint (distance ``(bound_j - |<a_j, theta>|) / ||a_j||``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        score = (bound - np.abs(ctheta)) / np.where(norms > 0, norms, np.inf)
    score = np.where(norms > 0, score, np.inf)
    score[x != 0] = -np.inf
    score[free] = -np.inf
    size = min(max(size, int(np.count_nonzero(score == -np.inf))), x.size)
    ws = np.argpartition(score, size - 1)[:size] if size < x.size else np.arange(x.size)
    return np.sort(ws[np.isfinite(score[ws]) | (score[ws] == -np.inf)])


def _solve(
    A: np.ndarray,
    y: np.ndarray,
    lam: float,
    w: np.ndarray,
    kind: int,
    tol: float,
    max_iter: int,
    x0: np.ndarray | None,
    lad_state: dict | None = None,
) -> tuple[np.ndarray, ConvexInfo]:
    """Solve one problem; for SR-LASSO fall back on the scaled-lasso alternation when
    coordinate descent stalls (the optimum interpolates: r = 0, where ||r|| is not smooth
    and coordinate moves cannot leave a non-optimal interpolating point).

    BLAS is held at one thread throughout: the solvers make thousands of matrix-vector
    products of a few hundred rows, which OpenBLAS splits across its pool and whose workers
    then busy-wait between calls (on the 2-vCPU benchmark machine ``A.T @ r`` at 500 x 5000
    took 8 ms at the default threads against 0.9 ms at one; the 500 x 5000 weighted LASSO
    spent over a second in such waits).
    """
    with blas_limited():
        return _solve_unlimited(A, y, lam, w, kind, tol, max_iter, x0, lad_state)


_LAD_SIMPLEX_MAX_ROWS = 2000  # the simplex method keeps an explicit m x m inverse (32 MB)


def _solve_lad(A, y, lam, w, tol, max_iter, x0, lad_state):
    """LAD-LASSO by the simplex method of ``_lad`` (interior-point crossover start, or the
    basis kept in ``lad_state["basis"]`` by the previous point of a path), certified by the
    duality gap of its multipliers. Returns None where it fails numerically."""
    A = np.asarray(A, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    N = A.shape[1]
    dual = _Dual(A, y, lam, w, LAD)
    target = tol * max(float(np.abs(y).sum()), np.finfo(float).tiny)
    if not np.any(y) or not np.any(A):
        # x = 0 is optimal (theta = sign(y) certifies it when A = 0)
        x = np.zeros(N)
        P, gap, _ = dual.gap_from(np.sign(y), y, x)
        return x, ConvexInfo(P, gap, 0, gap <= target)
    if A.shape[0] > _LAD_SIMPLEX_MAX_ROWS:
        # the explicit m x m basis inverse would be too large (and tall problems have small
        # working sets, where HiGHS is quick): column generation instead
        return None
    state = None if lad_state is None else lad_state.get("basis")
    seed = None if x0 is None else np.flatnonzero(x0)
    out = lad_solve(A, y, lam * w, state=state, seed=seed, max_rounds=max_iter)
    if out is None:
        return None
    x, pi, new_state, rounds = out
    if lad_state is not None:
        lad_state["basis"] = new_state
    r = y - A @ x
    P, gap, _ = dual.gap_from(pi, r, x)
    return x, ConvexInfo(P, gap, rounds, gap <= target)


def _solve_unlimited(A, y, lam, w, kind, tol, max_iter, x0, lad_state=None):
    # Column order once: each working set is then a cheap gather of contiguous columns,
    # already in the layout the CD kernel reads (0.1 ms against 2.4 ms per working set at
    # 500 x 700 from a C-ordered A). A no-op on the later points of a path.
    A = np.asfortranarray(A, dtype=np.float64)
    if kind == LAD:
        solved = _solve_lad(A, y, lam, w, tol, max_iter, x0, lad_state)
        if solved is not None and solved[1].converged:
            return solved
        # numerical trouble in the simplex method: HiGHS column generation, warm-started
        if solved is not None:
            x0 = solved[0]
    x, info = _solve_ws(A, y, lam, w, kind, tol, max_iter, x0)
    if kind != SQRT or info.converged:
        return x, info
    bp = _basis_pursuit_candidate(A, y, lam, w, tol, x)
    if bp is not None:
        return bp
    return _scaled_lasso(A, y, lam, w, tol, max_iter, x)


def _basis_pursuit_candidate(A, y, lam, w, tol, x_start):
    """The SR-LASSO optimum when it interpolates: ``min ||x||_w`` s.t. ``A x = y``.

    Solved as an LP (HiGHS). The interpolant ``x_bp`` is optimal for ``||A x - y|| + lam
    ||x||_w`` iff some ``theta`` with ``||theta|| <= 1`` has ``A^T theta`` in ``lam``
    times the subdifferential of ``||x_bp||_w``; ``theta = lam nu`` with ``nu`` the LP's dual
    solution is such a certificate when ``lam ||nu|| <= 1``. Returns None otherwise.
    """
    A = np.asarray(A, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m, N = A.shape
    # Column generation from the stalled iterate's support (which nearly interpolates):
    # solve on a working set, add the columns whose dual constraint |<a_j, nu>| <= w_j
    # fails, until none does.
    ws = np.union1d(np.flatnonzero(x_start), np.flatnonzero(w == 0))
    if ws.size < min(m, N):
        order = np.argsort(-np.abs(A.T @ (y - A @ x_start)) / np.where(w > 0, w, 1e-300))
        extra = [j for j in order if j not in set(ws.tolist())][: min(m, N) - ws.size]
        ws = np.union1d(ws, extra).astype(np.int64)
    # HiGHS's tolerances are absolute (about 1e-7): the LP is solved in units where y, the
    # columns and the costs are near 1, by powers of two (exact). Unscaled, y = 1e-4 (or A
    # at 1e-150) left the equality A x = y met only to 1e-7, the candidate was refused and
    # the scaled-lasso fallback stopped 1e-3 from the optimum, unconverged.
    ey = _pow2_exponent(float(np.max(np.abs(y))))
    col = np.max(np.abs(A), axis=0)
    ed = np.array([_pow2_exponent(float(v)) for v in col])
    As = np.ldexp(A, -ed)  # x_s = 2^(ed - ey) x
    costs = np.ldexp(w, -ed)  # w_j |x_j| = 2^-ey costs_j |x_s_j|
    ec = _pow2_exponent(float(np.max(costs))) if np.any(costs > 0) else 0
    costs = np.ldexp(costs, -ec)
    ys = np.ldexp(y, -ey)
    nu = None
    for _ in range(50):
        B = sp.csc_matrix(As[:, ws])
        res = linprog(
            np.concatenate([costs[ws], costs[ws]]),
            A_eq=sp.hstack([B, -B], format="csc"),
            b_eq=ys,
            bounds=(0, None),
            method="highs",
        )
        if res.status == 2:  # infeasible on this working set: take every column
            if ws.size == N:
                return None
            ws = np.arange(N)
            continue
        if res.status != 0:
            return None
        # the LP's multipliers for |<a_j, nu>| <= w_j in A's own units
        nu = np.ldexp(np.asarray(res.eqlin.marginals, dtype=np.float64), ec)
        viol = np.abs(A.T @ nu) - w
        viol[ws] = -np.inf
        bad = np.flatnonzero(viol > 1e-9 * (1 + w))
        if bad.size == 0:
            break
        add = bad[np.argsort(-viol[bad])][: max(ws.size, 10)]
        ws = np.union1d(ws, add)
    if nu is None:
        return None
    k = ws.size
    x = np.zeros(N)
    x[ws] = np.ldexp(res.x[:k] - res.x[k:], ey - ed[ws])
    theta = lam * nu
    nt = float(np.linalg.norm(theta))
    if nt > 1.0 + 1e-9:
        return None
    theta = theta / max(nt, 1.0)
    dual = _Dual(A, y, lam, w, SQRT)
    r = y - A @ x
    P = dual.primal(r, x)
    # theta is feasible up to the LP's tolerance on |<a_j, nu>| <= w_j: rescale exactly.
    c = np.abs(A.T @ theta)
    pen = w > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(c[pen] > 0, lam * w[pen] / c[pen], np.inf)
    s_ = min(1.0, float(ratios.min())) if ratios.size else 1.0
    gap = max(P - s_ * float(y @ theta), 0.0)
    target = tol * max(float(np.linalg.norm(y)), np.finfo(float).tiny)
    if gap > max(target, 1e-7 * P):
        return None
    return x, ConvexInfo(P, gap, 1, gap <= target)


def _pow2_exponent(v: float) -> int:
    """``e`` with ``v 2^-e`` in ``[0.5, 1)`` (0 for ``v = 0``), within float64's range."""
    return int(np.clip(np.frexp(v)[1], -1000, 1000)) if v > 0 else 0


def _scaled_lasso(A, y, lam, w, tol, max_iter, x0):
    """SR-LASSO as ``min_{x, sigma > 0} ||r||^2 / (2 sigma) + sigma / 2 + lam ||x||_w``
    (jointly convex; Sun and Zhang's scaled lasso). For fixed ``sigma`` the minimiser is a
    weighted lasso at ``lam' = 2 sigma lam`` (our scaling), and the optimal ``sigma`` is the
    fixed point ``sigma = ||r(sigma)||``, found by secant steps on ``||r(sigma)|| - sigma``
    (the plain fixed-point iteration can contract at a rate close to 1).
    """
    A = np.asarray(A, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    dual = _Dual(A, y, lam, w, SQRT)
    ynorm = max(float(np.linalg.norm(y)), np.finfo(float).tiny)
    target = tol * ynorm
    x = np.array(x0, dtype=np.float64)
    r = y - A @ x
    sigma = max(float(np.linalg.norm(r)), 1e-3 * ynorm)
    P, gap = np.inf, np.inf
    history: list[float] = []
    prev: tuple[float, float] | None = None  # (sigma, h(sigma)) of the last step
    best = (np.inf, x, np.inf)
    it = 0
    for it in range(1, min(max_iter, 20) + 1):  # noqa: B007 - it is reported after the loop
        # An error eps in the lasso objective moves the SR objective by about eps / (2 sigma).
        inner_tol = max(2 * sigma * target / ynorm**2, 1e-15)
        x, _ = _solve_ws(A, y, 2 * sigma * lam, w, SQUARED, inner_tol, max_iter, x)
        r = y - A @ x
        P, gap, _ = dual.gap(r, x, A.T @ r)
        if gap < best[2]:
            best = (P, x.copy(), gap)
        if gap <= target:
            break
        history.append(gap)
        # Once the gap stops falling it has reached the rounding floor of the method.
        if len(history) > 5 and gap > 0.9 * history[-6]:
            break
        rn = float(np.linalg.norm(r))
        if rn <= np.finfo(float).eps * ynorm:
            break
        h = rn - sigma
        step = rn  # the fixed-point step
        if prev is not None and h != prev[1]:
            secant = sigma - h * (sigma - prev[0]) / (h - prev[1])
            if np.isfinite(secant) and secant > 0:
                step = secant
        prev = (sigma, h)
        sigma = step
    P, x, gap = best
    return x, ConvexInfo(P, gap, it, gap <= target)


def _solve_ws(
    A: np.ndarray,
    y: np.ndarray,
    lam: float,
    w: np.ndarray,
    kind: int,
    tol: float,
    max_iter: int,
    x0: np.ndarray | None,
) -> tuple[np.ndarray, ConvexInfo]:
    """The shared working-set loop; no validation (called by the public functions)."""
    m, N = A.shape
    A = np.asarray(A, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x0 is None:
        x, r = np.zeros(N), y.copy()
    else:
        x = np.array(x0, dtype=np.float64)
        r = y - A @ x
    dual = _Dual(A, y, lam, w, kind)
    norms2, c_first = _norms_and_dots(A, r)
    norms = np.sqrt(norms2)
    thr = lam * w
    bound = thr / 2 if kind == SQUARED else thr
    scale = dual.primal(y, np.zeros(N))
    target = tol * max(scale, np.finfo(float).tiny)
    size = max(_P0, 2 * int(np.count_nonzero(x)))
    if kind == LAD:
        size = max(size, 50)
    P, gap = np.inf, np.inf
    theta = None  # LAD: the dual solution of the last restricted LP
    ws_prev = None
    g_in = np.inf  # restricted gap at the end of the last inner solve
    history: list[float] = []
    gaps: list[float] = []
    it = 0
    for it in range(1, max_iter + 1):
        if theta is None:
            P, gap, ctheta = dual.gap(r, x, c_first if it == 1 else A.T @ r)
        else:
            P, gap, ctheta = dual.gap_from(theta, r, x)
        if gap <= target:
            return x, ConvexInfo(P, gap, it - 1, True)
        if kind == SQRT:
            # Coordinate descent stalls where the optimum interpolates (see _solve): leave
            # as soon as the iterate interpolates or the gap stops falling.
            history.append(gap)
            if float(np.linalg.norm(r)) <= 1e-9 * scale or (
                len(history) > 6 and gap > 0.9 * history[-7]
            ):
                break
        # Working set twice the support (celer's rule), grown faster when the last round
        # did not halve the gap, and four times the support while the support fills the
        # working set (the early rounds, where each round's inner solve costs less than
        # its full A^T r: fewer of them pay off).
        nnz = int(np.count_nonzero(x))
        stalled = len(gaps) > 0 and gap > 0.5 * gaps[-1]
        saturated = ws_prev is not None and nnz >= _SATURATED * ws_prev.size
        grow = _GROW_SATURATED if saturated else 2
        size = min(N, max(size * _STALL_GROW if stalled else _P0, grow * nnz))
        gaps.append(gap)
        ws = _working_set(ctheta, bound, norms, x, dual.free, size)
        if kind == LAD:
            solved = _lad_restricted(A[:, ws], y, thr[ws])
            if solved is None:
                break
            x_ws, theta = solved
            x = np.zeros(N)
            x[ws] = x_ws
            r = y - A[:, ws] @ x_ws
            continue
        Aws = np.asfortranarray(A[:, ws])
        x_ws = x[ws].copy()
        sub = _Dual(Aws, y, lam, w[ws], kind)
        # Solve the restricted problem to a fraction of the current outer gap, or to the
        # final tolerance once the working set has settled: it repeats, or the full gap is
        # hardly above the restricted gap the last round ended on (no column outside the
        # working set then spoils the dual point). The rounds left would otherwise only
        # tighten the inner solve, each paying a full A^T r.
        settled = ws_prev is not None and (
            np.array_equal(ws, ws_prev) or gap <= _SETTLED_RATIO * g_in
        )
        ws_prev = ws
        inner_target = target if settled else max(_INNER_RATIO * gap, target)
        g_in = _inner_cd(
            Aws, y, norms2[ws], x_ws, r, thr[ws], kind, sub, inner_target, direct=settled
        )
        x = np.zeros(N)
        x[ws] = x_ws
        r = y - Aws @ x_ws  # refresh: the incremental updates accumulate rounding
    if theta is None:
        P, gap, _ = dual.gap(r, x, A.T @ r)
    else:
        P, gap, _ = dual.gap_from(theta, r, x)
    return x, ConvexInfo(P, gap, it, gap <= target)


_ANDERSON_K = 5  # iterates combined per extrapolation (skglm's AndersonCD uses 5 as well)
_ANDERSON = True
_P0 = 10  # first working-set size (celer's and skglm's p0)
_SATURATED = 0.9  # support / working set above which the working set grows faster
_GROW_SATURATED = 4
_SETTLED_RATIO = 1.5
_INNER_RATIO = 0.3
_DIRECT_ROUNDS = 3
_DIRECT = True  # off: coordinate descent alone (for tests and comparisons)
_STALL_GROW = 2


def _inner_cd(Aws, y, norms2, x, r, thr, kind, sub, target, max_epochs=10000, direct=False):
    """Coordinate descent on the working set, in place on ``x`` and ``r = y - Aws x``, until
    the restricted duality gap is at most ``target``; returns that gap.

    Every ``K + 1`` epochs the last ``K + 1`` iterates are combined by Anderson
    acceleration (the affine combination that minimises the norm of the combined
    differences, as in skglm's AndersonCD and celer's dual extrapolation); the extrapolated
    point is kept only when it lowers the objective, so convergence is that of plain CD
    and the acceleration can only help. On correlated columns, where CD crawls along a
    valley, this cuts the number of epochs several-fold. The residuals of the ``K + 1``
    epochs are kept beside the iterates: the extrapolated residual is the same affine
    combination of them (no product with ``Aws``). The whole loop -- epochs,
    extrapolation, restricted gap -- runs compiled (``_inner_solve``): with a few hundred
    columns an epoch costs tens of microseconds, as much as the NumPy calls around it.
    """
    Q = sub.Q if sub.Q is not None else np.empty((y.size, 0))
    args = (Aws, y, norms2, x, r, thr, sub.pen, Q, kind, target, _ANDERSON_K, _ANDERSON)
    g, epochs, stable = _inner_solve(*args, max_epochs, direct and _DIRECT)
    if stable:
        g_direct = _direct_step(Aws, y, x, r, thr, sub, kind, g)
        if g_direct is not None and g_direct <= target:
            return g_direct
        g, _, _ = _inner_solve(*args, max_epochs - epochs, False)
    return g


def _direct_step(Aws, y, x, r, thr, sub, kind, g_cur):
    """Solve the optimality system on the current support and signs directly; keep the
    result (in place) where its restricted gap is below ``g_cur`` (that of ``x``), and
    return that gap (None where the system could not be solved or the result was not kept).

    On the support ``S`` (with the unpenalised columns) and signs ``s``, with ``b = thr_S
    s`` and ``G = A_S^T A_S``, the optimum solves ``A_S^T r = b / 2`` (squared loss) or
    ``A_S^T r = ||r|| b`` (square root). The first is ``G x = A_S^T y - b / 2``; for the
    second, ``x = x_LS - rho v`` with ``v = G^{-1} b``, and since ``r = r_LS + rho A_S v``
    with ``r_LS`` orthogonal to ``A_S v``, ``rho = ||r_LS|| / sqrt(1 - v^T G v)`` in closed
    form (no solution when ``v^T G v >= 1``: the optimum then interpolates). Once coordinate
    descent has found the support -- its signs no longer change -- one Cholesky
    factorisation replaces the tens of epochs of its linear convergence, most of the
    final inner solve on a few hundred correlated columns.
    """
    pen = sub.pen
    sgn = np.sign(x)
    S = np.flatnonzero((x != 0) | ~pen)
    ynorm = float(np.linalg.norm(y))
    xS = None
    S_prev, G_prev = None, None
    # A few active-set corrections: columns that violate their optimality condition at
    # the solution enter (with the sign of their correlation), coefficients whose sign
    # flips leave; each round re-solves the system, reusing the Gram entries it has.
    for _ in range(_DIRECT_ROUNDS):
        if S.size == 0 or S.size > Aws.shape[0]:
            return None
        AS = Aws[:, S]
        if S_prev is None:
            G = AS.T @ AS
        else:
            G = np.empty((S.size, S.size))
            old_pos = np.searchsorted(S_prev, S)
            kept = (old_pos < S_prev.size) & (S_prev[np.minimum(old_pos, S_prev.size - 1)] == S)
            ik = np.flatnonzero(kept)
            G[np.ix_(ik, ik)] = G_prev[np.ix_(old_pos[ik], old_pos[ik])]
            inew = np.flatnonzero(~kept)
            cross = AS.T @ AS[:, inew]
            G[:, inew] = cross
            G[inew, :] = cross.T
        S_prev, G_prev = S, G
        b = thr[S] * sgn[S]
        # Cholesky and triangular inverse in NumPy's LAPACK (one BLAS, see _dense): the
        # support has at most a few hundred columns, so G^-1 = R^-1 R^-H costs nothing.
        R = _cholesky_upper(G, np)
        if R is None:
            return None
        Rinv = _triangular_inverse(R, np)

        def cho_solve(rhs: np.ndarray, Rinv: np.ndarray = Rinv) -> np.ndarray:
            return Rinv @ (Rinv.T @ rhs)

        Aty = AS.T @ y
        if kind == SQUARED:
            xS = cho_solve(Aty - b / 2)
            scale = 0.5
        else:
            x_ls = cho_solve(Aty)
            v = cho_solve(b)
            q = float(b @ v)
            r_ls = float(np.linalg.norm(y - AS @ x_ls))
            if not q < 1.0 or r_ls <= 1e-9 * ynorm:
                return None
            rho = r_ls / np.sqrt(1.0 - q)
            xS = x_ls - rho * v
            scale = rho  # = ||r|| at the solution
        if not np.all(np.isfinite(xS)):
            return None
        S_sol, AS_sol = S, AS
        flipped = pen[S] & (xS * sgn[S] < 0)
        c = Aws.T @ (y - AS @ xS)
        viol = pen & (np.abs(c) > scale * thr * (1 + 1e-12))
        viol[S] = False
        if not flipped.any() and not viol.any():
            break
        sgn[S[flipped]] = 0.0
        sgn[viol] = np.sign(c[viol])
        S = np.flatnonzero((sgn != 0) | ~pen)
    x_new = np.zeros_like(x)
    x_new[S_sol] = xS
    r_new = y - AS_sol @ xS
    Q = sub.Q if sub.Q is not None else np.empty((y.size, 0))
    g_new = _restricted_gap(Aws, y, x_new, r_new, thr, sub.pen, Q, kind)[1]
    # Judged by the gap, not the objective: coordinate descent's objective is often
    # converged to rounding well before its dual point certifies it.
    if not g_new < g_cur:
        return None
    x[:] = x_new
    r[:] = r_new
    return g_new


def _lad_restricted(
    B: np.ndarray, y: np.ndarray, thr: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """``min_x ||y - B x||_1 + sum_j thr_j |x_j|`` as an LP (HiGHS), on the columns of B.

    Variables ``(x+, x-, u+, u-) >= 0`` with ``B (x+ - x-) + u+ - u- = y``. Returns ``x``
    and the LP's dual solution ``theta`` (the equality multipliers): ``|theta_i| <= 1``,
    ``|<b_j, theta>| <= thr_j``, and ``<y, theta>`` is the optimal value.
    """
    m, k = B.shape
    cost = np.concatenate([thr, thr, np.ones(2 * m)])
    eye = sp.identity(m, format="csc")
    Aeq = sp.hstack([sp.csc_matrix(B), sp.csc_matrix(-B), eye, -eye], format="csc")
    res = linprog(cost, A_eq=Aeq, b_eq=y, bounds=(0, None), method="highs")
    if res.status != 0:
        return None
    return res.x[:k] - res.x[k : 2 * k], np.asarray(res.eqlin.marginals, dtype=np.float64)


def _validate(A, y, lam, weights, tol, max_iter, coef_init):
    A, y, dtype = check_problem(A, y, allow_2d_y=False, allow_complex=False)
    lam = check_real(lam, "lam", low=0.0)
    w = check_weights(weights, A.shape[1], dtype).astype(np.float64)
    tol = check_real(tol, "tol", low=0.0, low_open=True)
    max_iter = check_int(max_iter, "max_iter", low=1)
    if coef_init is not None:
        coef_init = np.asarray(coef_init)
        if coef_init.shape != (A.shape[1],):
            raise ValueError(f"coef_init must have shape ({A.shape[1]},), got {coef_init.shape}")
        if coef_init.dtype.kind not in "biuf" or not np.all(np.isfinite(coef_init)):
            raise ValueError("coef_init must hold finite real numbers")
    return A, y, dtype, lam, w, tol, max_iter, coef_init


def _public(kind: int, A, y, lam, weights, tol, max_iter, coef_init, return_info):
    # The validation's finiteness check is one product over A as well: at the default
    # threads, on a loaded 2-vCPU machine, its second BLAS thread waited a scheduler slice
    # (20 ms against 0.2 ms), and so did the first threaded call after a limited section.
    with blas_limited():
        A, y, dtype, lam, w, tol, max_iter, coef_init = _validate(
            A, y, lam, weights, tol, max_iter, coef_init
        )
        x, info = _solve(A, y, lam, w, kind, tol, max_iter, coef_init)
    x = x.astype(dtype)
    return (x, info) if return_info else x


def weighted_lasso(
    A: Any,
    y: Any,
    lam: float,
    *,
    weights: Any = None,
    tol: float = 1e-10,
    max_iter: int = 100,
    coef_init: Any = None,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, ConvexInfo]:
    """Weighted LASSO: ``min_x ||A x - y||_2^2 + lam * sum_j w_j |x_j|``.

    Coordinate descent on working sets, stopped by the duality gap. The scaling is the
    paper's (no 1/2, no 1/m): scikit-learn's ``Lasso(alpha)`` is ``lam = 2 m alpha``.

    Parameters
    ----------
    A : ndarray of shape (m, N)
        Design matrix (real, dense).
    y : ndarray of shape (m,)
        Observations.
    lam : float
        Regularisation, ``>= 0``.
    weights : ndarray of shape (N,), optional
        Non-negative penalty weights; 0 leaves a coefficient unpenalised. Default ones.
    tol : float, default 1e-10
        Stop when the duality gap is at most ``tol * ||y||^2`` (the objective at 0).
    max_iter : int, default 100
        Largest number of outer working-set iterations.
    coef_init : ndarray of shape (N,), optional
        Warm start.
    return_info : bool, default False
        Also return a :class:`ConvexInfo` (objective, gap, iterations, convergence).

    Returns
    -------
    coef : ndarray of shape (N,)
    info : ConvexInfo
        Only with ``return_info``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.recovery import weighted_lasso
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((40, 80)); x = np.zeros(80); x[[1, 9]] = [3.0, -2.0]
    >>> coef, info = weighted_lasso(A, A @ x, lam=1.0, return_info=True)
    >>> np.flatnonzero(np.abs(coef) > 1e-3).tolist(), info.converged
    ([1, 9], True)
    """
    return _public(SQUARED, A, y, lam, weights, tol, max_iter, coef_init, return_info)


def sqrt_lasso(
    A: Any,
    y: Any,
    lam: float,
    *,
    weights: Any = None,
    tol: float = 1e-8,
    max_iter: int = 100,
    coef_init: Any = None,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, ConvexInfo]:
    """Weighted square-root LASSO: ``min_x ||A x - y||_2 + lam * sum_j w_j |x_j|``.

    Exact coordinate descent (closed-form coordinate minimiser) on working sets, stopped by
    the duality gap of ``max_theta <y, theta>`` s.t. ``||theta||_2 <= 1``, ``|<a_j, theta>|
    <= lam w_j``. Works at tiny residuals. skglm's ``SqrtLasso(alpha)`` (0.4 and later)
    minimises ``||y - X w|| + alpha ||w||_1``, i.e. ``lam = alpha`` (earlier versions divided
    the norm by ``sqrt(m)``: ``lam = sqrt(m) alpha``).

    Parameters
    ----------
    A, y, lam, weights, tol, max_iter, coef_init, return_info
        As in :func:`weighted_lasso`; ``tol`` is relative to ``||y||_2``. Where the
        optimum interpolates (``A x = y``, small ``lam`` with more columns than rows) the
        solver switches to the scaled-lasso alternation, whose gap floor is about 1e-7
        relative (rounding in ``y - A x``); ``info.converged`` says whether ``tol`` was met.

    Returns
    -------
    coef : ndarray of shape (N,)
    info : ConvexInfo
        Only with ``return_info``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.recovery import sqrt_lasso
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((40, 80)); A /= np.linalg.norm(A, axis=0)
    >>> x = np.zeros(80); x[[1, 9]] = [3.0, -2.0]
    >>> coef = sqrt_lasso(A, A @ x + 1e-4 * rng.standard_normal(40), lam=0.2)
    >>> np.flatnonzero(np.abs(coef) > 1e-3).tolist()
    [1, 9]
    """
    return _public(SQRT, A, y, lam, weights, tol, max_iter, coef_init, return_info)


def lad_lasso(
    A: Any,
    y: Any,
    lam: float,
    *,
    weights: Any = None,
    tol: float = 1e-8,
    max_iter: int = 50,
    coef_init: Any = None,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, ConvexInfo]:
    """Weighted LAD-LASSO: ``min_x ||A x - y||_1 + lam * sum_j w_j |x_j|``.

    A linear program, solved exactly by a dense simplex method (started from the crossover
    of a few interior-point iterations, pricing a working set of columns until every dual
    constraint ``|<a_j, theta>| <= lam w_j`` holds); the simplex multipliers certify the
    duality gap. Robust to gross outliers in ``y``. scikit-learn's
    ``QuantileRegressor(quantile=0.5, alpha)`` minimises ``||y - X w||_1 / (2 m) +
    alpha ||w||_1``, i.e. ``lam = 2 m alpha``.

    Parameters
    ----------
    A, y, lam, weights, tol, max_iter, coef_init, return_info
        As in :func:`weighted_lasso`; ``tol`` is relative to ``||y||_1``. The simplex
        solution is exact up to rounding (gap about 1e-14 relative); only the HiGHS
        fallback (more than 2000 rows, or numerical failure) stops at about 1e-7. ``max_iter``
        bounds the rounds of full pricing.

    Returns
    -------
    coef : ndarray of shape (N,)
    info : ConvexInfo
        Only with ``return_info``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.recovery import lad_lasso
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((60, 100)); x = np.zeros(100); x[[4, 7]] = [1.0, 2.0]
    >>> y = A @ x; y[:5] += 100.0  # gross outliers
    >>> coef = lad_lasso(A, y, lam=10.0)
    >>> np.flatnonzero(np.abs(coef) > 1e-2).tolist(), np.round(coef[[4, 7]], 6).tolist()
    ([4, 7], [1.0, 2.0])
    """
    return _public(LAD, A, y, lam, weights, tol, max_iter, coef_init, return_info)


def lam_max(A: Any, y: Any, loss: str, *, weights: Any = None) -> float:
    """Smallest ``lam`` for which ``x = 0`` solves the convex problem of ``loss``.

    ``lasso``: ``2 max_j |<a_j, y>| / w_j``; ``sqrt_lasso``: ``max_j |<a_j, y>| / (w_j
    ||y||)``; ``lad_lasso``: ``max_j |<a_j, sign(y)>| / w_j`` (columns of weight 0 are left
    out).

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.recovery import lam_max, weighted_lasso
    >>> rng = np.random.default_rng(0)
    >>> A, y = rng.standard_normal((20, 30)), rng.standard_normal(20)
    >>> bool(np.all(weighted_lasso(A, y, lam_max(A, y, "lasso")) == 0))
    True
    """
    if loss not in _KIND:
        raise ValueError(f"loss must be one of {sorted(_KIND)}, got {loss!r}")
    A, y, dtype = check_problem(A, y, allow_2d_y=False, allow_complex=False)
    w = check_weights(weights, A.shape[1], dtype).astype(np.float64)
    A = A.astype(np.float64)
    y = y.astype(np.float64)
    kind = _KIND[loss]
    if kind == LAD:
        c = np.abs(A.T @ np.sign(y))
    else:
        c = np.abs(A.T @ y)
        if kind == SQRT:
            c = c / max(float(np.linalg.norm(y)), np.finfo(float).tiny)
    pen = w > 0
    if not pen.any():
        return 0.0
    val = float(np.max(c[pen] / w[pen]))
    return 2 * val if kind == SQUARED else val


def _path(kind: int, loss: str, A, y, lams, n_lams, eps, weights, tol, max_iter):
    with blas_limited():  # see _public
        return _path_limited(kind, loss, A, y, lams, n_lams, eps, weights, tol, max_iter)


def _path_limited(kind: int, loss: str, A, y, lams, n_lams, eps, weights, tol, max_iter):
    A, y, dtype, _, w, tol, max_iter, _ = _validate(A, y, 0.0, weights, tol, max_iter, None)
    if lams is None:
        n_lams = check_int(n_lams, "n_lams", low=1)
        eps = check_real(eps, "eps", low=0.0, high=1.0, low_open=True)
        top = lam_max(A, y, loss, weights=w)
        lams = top * np.logspace(0, np.log10(eps), n_lams)
    else:
        lams = np.asarray(lams, dtype=np.float64)
        if lams.ndim != 1 or lams.size == 0:
            raise ValueError("lams must be a non-empty 1-D array of regularisation values")
        if not np.all(np.isfinite(lams)) or np.any(lams < 0):
            raise ValueError("lams must be finite and non-negative")
    A = np.asfortranarray(A, dtype=np.float64)  # once for the path (see _solve_unlimited)
    order = np.argsort(-lams, kind="stable")
    coefs = np.zeros((A.shape[1], lams.size), dtype)
    infos: list[ConvexInfo | None] = [None] * lams.size
    x = None
    # LAD: a simplex basis stays primal feasible when lam (the costs) changes, so each point
    # starts from the previous point's basis
    lad_state: dict = {}
    with blas_limited():  # once for the whole path (see _solve)
        for i in order:
            x, info = _solve(A, y, float(lams[i]), w, kind, tol, max_iter, x, lad_state)
            coefs[:, i] = x
            infos[i] = info
    return lams, coefs, infos


_PATH_DOC = """Solutions of :func:`{name}` over a grid of ``lam``, warm-started from the largest.

    Parameters
    ----------
    A, y, weights, tol, max_iter
        As in :func:`{name}`.
    lams : ndarray of shape (n_lams,), optional
        The grid (any order; solved from the largest). Default: ``n_lams`` values from
        :func:`lam_max` down to ``eps * lam_max``, log-spaced.
    n_lams : int, default 30
    eps : float, default 1e-3

    Returns
    -------
    lams : ndarray of shape (n_lams,)
    coefs : ndarray of shape (N, n_lams)
    infos : list of ConvexInfo

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.recovery import {name}_path
    >>> rng = np.random.default_rng(0)
    >>> A, y = rng.standard_normal((30, 50)), rng.standard_normal(30)
    >>> lams, coefs, infos = {name}_path(A, y, n_lams=5)
    >>> coefs.shape, all(info.converged for info in infos)
    ((50, 5), True)
    """


def weighted_lasso_path(
    A: Any,
    y: Any,
    lams: Any = None,
    *,
    n_lams: int = 30,
    eps: float = 1e-3,
    weights: Any = None,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray, list[ConvexInfo]]:
    return _path(SQUARED, "lasso", A, y, lams, n_lams, eps, weights, tol, max_iter)


def sqrt_lasso_path(
    A: Any,
    y: Any,
    lams: Any = None,
    *,
    n_lams: int = 30,
    eps: float = 1e-3,
    weights: Any = None,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray, list[ConvexInfo]]:
    return _path(SQRT, "sqrt_lasso", A, y, lams, n_lams, eps, weights, tol, max_iter)


def lad_lasso_path(
    A: Any,
    y: Any,
    lams: Any = None,
    *,
    n_lams: int = 30,
    eps: float = 1e-3,
    weights: Any = None,
    tol: float = 1e-8,
    max_iter: int = 50,
) -> tuple[np.ndarray, np.ndarray, list[ConvexInfo]]:
    return _path(LAD, "lad_lasso", A, y, lams, n_lams, eps, weights, tol, max_iter)


weighted_lasso_path.__doc__ = _PATH_DOC.format(name="weighted_lasso")
sqrt_lasso_path.__doc__ = _PATH_DOC.format(name="sqrt_lasso")
lad_lasso_path.__doc__ = _PATH_DOC.format(name="lad_lasso")
