"""LAD-LASSO by a primal simplex method with partial pricing on a working set of columns.

The weighted LAD-LASSO ``min_x ||y - A x||_1 + sum_j t_j |x_j|`` (``t_j = lam w_j``) is the
linear program

    min  sum_j t_j (x+_j + x-_j) + sum_i (u+_i + u-_i)
    s.t. A (x+ - x-) + u+ - u- = y,   x+, x-, u+, u- >= 0,

with ``m`` equality rows. Its dual is ``max <y, pi>`` s.t. ``|pi_i| <= 1`` and
``|<a_j, pi>| <= t_j``: the simplex multipliers ``pi`` of a basis are exactly the LAD dual
point of the shared design (``_convex._Dual``), so the optimality test of the simplex method
and the duality gap are the same certificate.

Why a simplex method of our own: the optimum is a vertex with at most ``m`` nonzero
coefficients, and at the sizes of interest (a few hundred rows, thousands of columns, ``lam``
small enough that the support fills most of the ``m`` rows) a general LP code is slow on the
dense data (HiGHS took 6-23 s on 500 x 1000-5000 dense LAD-LASSO problems, cvxpy over 2
minutes), while a dense revised simplex method costs ``O(m^2 + m k)`` per pivot with an
explicit basis inverse and a working set of ``k`` columns, and needs about ``m`` to ``2 m``
pivots from the slack basis ``x = 0``.

* **Start** (``lad_solve``): the slack basis (``u+_i`` or ``u-_i`` by the sign of ``y_i``),
  which is ``x = 0`` with ``pi = sign(y)``, feasible, so no phase 1 is needed. A sparse
  optimum (large ``lam``) is a few pivots away; a dense one (small ``lam``: at 500 x 5000 and
  ``lam_max / 20`` the optimum has 500 nonzeros) needs ~10^4 Dantzig pivots from there, so
  after ``m / 4`` pivots the solver restarts from the **crossover** of a constraint-reduced
  interior point method run to 1e-3 (``_ipm``, ``_crossover``), which leaves a few dozen
  pivots (0.5 s against 7 s at that size).
* **Pivots** (Numba): Dantzig pricing normalised by the column norm (cheap steepest-edge
  stand-in), Harris' two-pass ratio test (stable pivots under degeneracy), rank-one update of
  the explicit inverse and of the reduced costs ``<a_j, pi>`` of the working set.
* **Working set** (column generation): pivots price only a working set of columns; once it
  is optimal there, one product ``A^T pi`` prices every column, the most violated dual
  constraints join, and the pivots continue from the same basis (a basis stays primal
  feasible when columns are added).
* **Refactorisation** every ``_REFACTOR`` pivots and at the end: the basis is inverted afresh
  (NumPy's LAPACK, with its condition number) for ``x_B`` and ``pi``, so rounding does not
  accumulate; the inverse of a round's end is the next round's start.
* **Warm starts**: along a path only the costs change, and a basis stays primal feasible
  under a change of costs, so the last basis is the next start; a ``coef_init`` seeds the
  working set with its support.

The result is certified by the caller (``_convex``), which computes the duality gap from
``pi``; any failure here (a singular basis, the pivot budget) returns None and the caller falls
back on its HiGHS column generation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..linalg._dense import _cholesky_upper

__all__ = ["LADState", "lad_simplex", "lad_solve"]

_REFACTOR = 100  # pivots between refactorisations of the basis


@dataclass
class LADState:
    """A basis to warm-start from: its variable codes (below) and the working set."""

    basis: np.ndarray
    ws: np.ndarray


# Variable codes: 2 j + s for x_j (s = 0: x+, s = 1: x-), 2 N + 2 i + s for u_i.


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _pivots(AW, tW, invn, W, N, basis, cB, Binv, xB, pi, g, max_piv, tol_d):  # pragma: no cover
    """Up to ``max_piv`` primal simplex pivots pricing the working-set columns ``AW`` (and
    every slack). Returns ``(pivots done, status)``: status 0 optimal on the working set,
    1 pivot budget used, 2 no improving step (numerical failure: a LAD objective is bounded).

    The ratio test takes long steps (Barrodale and Roberts' for L1 regression): every
    variable has a mirror (``x+``/``x-``, ``u+``/``u-``) of the same cost, so a basic variable
    that reaches zero can carry on as its mirror, and the objective along the entering edge is
    convex piecewise linear; the step goes to the breakpoint where its slope turns
    non-negative, flipping the basic variables passed on the way. One pivot then does the work
    of many ordinary ones."""
    m, k = AW.shape
    d = np.empty(m)
    rho = np.empty(m)
    ratio = np.empty(m)
    cand = np.empty(m, dtype=np.int64)
    for it in range(max_piv):
        # pricing: most negative reduced cost per unit column norm
        best = -tol_d
        q = -1
        for p in range(k):
            s1 = (tW[p] - g[p]) * invn[p]
            if s1 < best:
                best = s1
                q = 2 * p
            s2 = (tW[p] + g[p]) * invn[p]
            if s2 < best:
                best = s2
                q = 2 * p + 1
        for i in range(m):
            s1 = 1.0 - pi[i]
            if s1 < best:
                best = s1
                q = 2 * k + 2 * i
            s2 = 1.0 + pi[i]
            if s2 < best:
                best = s2
                q = 2 * k + 2 * i + 1
        if q < 0:
            return it, 0
        sg = 1.0 if q % 2 == 0 else -1.0
        if q < 2 * k:
            p = q // 2
            for i in range(m):
                acc = 0.0
                for l in range(m):
                    acc += Binv[i, l] * AW[l, p]
                d[i] = sg * acc
            rc = tW[p] - sg * g[p]
            cq = tW[p]
            code = 2 * W[p] + q % 2
        else:
            ii = (q - 2 * k) // 2
            for i in range(m):
                d[i] = sg * Binv[i, ii]
            rc = 1.0 - sg * pi[ii]
            cq = 1.0
            code = 2 * N + 2 * ii + q % 2
        # long-step ratio test over the breakpoints xB_i / d_i (d_i > 0)
        dmax = 0.0
        for i in range(m):
            if abs(d[i]) > dmax:
                dmax = abs(d[i])
        piv_tol = 1e-9 * dmax
        nc = 0
        for i in range(m):
            if d[i] > piv_tol:
                cand[nc] = i
                ratio[nc] = xB[i] / d[i] if xB[i] > 0.0 else 0.0
                nc += 1
        if nc == 0:
            return it, 2
        order = np.argsort(ratio[:nc])
        slope = rc
        stop = nc - 1
        for s in range(nc):
            i = cand[order[s]]
            slope += 2.0 * cB[i] * d[i]
            if slope >= 0.0:
                stop = s
                break
        # a tiny pivot element is unstable: stop at an earlier breakpoint with a sound one
        # (the slope is still negative there, so the step still improves)
        while stop > 0 and d[cand[order[stop]]] < 1e-6 * dmax:
            stop -= 1
        r = cand[order[stop]]
        theta = ratio[order[stop]]
        # flip the basic variables passed on the way to their mirrors (column and row of
        # the inverse change sign)
        for s in range(stop):
            i = cand[order[s]]
            basis[i] ^= 1
            xB[i] = -xB[i]
            d[i] = -d[i]
            for l in range(m):
                Binv[i, l] = -Binv[i, l]
        for i in range(m):
            v = xB[i] - theta * d[i]
            xB[i] = v if v > 0.0 else 0.0
        xB[r] = theta
        # rank-one update of the inverse
        for l in range(m):
            rho[l] = Binv[r, l]
        inv_dr = 1.0 / d[r]
        for i in range(m):
            if i == r:
                continue
            c = d[i] * inv_dr
            if c != 0.0:
                for l in range(m):
                    Binv[i, l] -= c * rho[l]
        for l in range(m):
            Binv[r, l] = rho[l] * inv_dr
        basis[r] = code
        cB[r] = cq
        # multipliers pi = B^-T c_B afresh (the flips change them too), then the working
        # set's <a_j, pi>
        for l in range(m):
            pi[l] = 0.0
        for i in range(m):
            c = cB[i]
            if c != 0.0:
                for l in range(m):
                    pi[l] += c * Binv[i, l]
        for p in range(k):
            acc = 0.0
            for l in range(m):
                acc += AW[l, p] * pi[l]
            g[p] = acc
    return max_piv, 1


def _inverse(B: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Explicit inverse of a basis matrix and its 1-norm condition number, or None if the
    basis is singular to working precision (the caller then repairs the basis or gives up).

    NumPy's LAPACK, not SciPy's ``lu_factor``/``lu_solve`` (one BLAS in hot paths, see
    ``sparselin._threads``). The simplex method's start and the crossover need this inverse
    anyway (the pivots update it), so it replaces an LU of the same basis there; the ends of
    rounds solve with NumPy's LU instead (:func:`_basis_solve`). Measured against the SciPy
    version at 500 x 5000, lam_max / 20 (one process, alternating, 16 rounds, load 2-3 on the
    shared 2-core machine; ``benchmarks/results/recovery_cpu_2026-12-06s26misc.json``): median
    314 against 316 ms at one thread, 331 against 353 ms at the default threads (``lad_lasso``
    holds BLAS at one thread inside either way), the same solution (coefficients within 1e-14,
    duality gap 1.4e-11 against 2.2e-11). The condition number ``||B||_1 ||B^-1||_1`` is
    exact and costs two column sums.
    """
    try:
        Binv = np.linalg.inv(B)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(Binv)):
        return None
    cond = float(np.abs(B).sum(axis=0).max()) * float(np.abs(Binv).sum(axis=0).max())
    if not cond <= _MAX_COND:
        return None
    return Binv, cond


def _basis_solve(
    B: np.ndarray, approx_inv: np.ndarray, rhs: np.ndarray, transpose: bool
) -> np.ndarray | None:
    """``B^-1 rhs`` (``B^-T rhs`` if ``transpose``) solved afresh by NumPy's LU, or None if
    ``B`` is singular to working precision. The condition number comes from
    ``approx_inv``, the pivots' rank-one-updated inverse of the same basis (two column sums),
    since NumPy does not return the LU factors to judge from. A fresh LU solve rather than
    a fresh inverse reused by the next round: a round's end is often the last (then the
    inverse would be wasted), and the reused inverse left a 50x larger duality gap (7e-10
    against 1.4e-11 at 500 x 5000) at no gain in time."""
    cond = float(np.abs(B).sum(axis=0).max()) * float(np.abs(approx_inv).sum(axis=0).max())
    if not cond <= _MAX_COND:
        return None
    try:
        z = np.linalg.solve(B.T if transpose else B, rhs)
    except np.linalg.LinAlgError:
        return None
    return z if bool(np.all(np.isfinite(z))) else None


# A basis whose 1-norm condition number exceeds this is treated as singular (its multipliers
# and primal values would keep about one correct digit). The exact condition number runs about
# 10^3 above the ratio of the extreme LU pivots that the SciPy version of this test used
# (1e-13 on that ratio): 9e4 against 15 for the crossover basis at 500 x 5000, lam_max / 20.
_MAX_COND = 1e15


@numba.njit(cache=True, nogil=True)
def _cholesky_solve(L, b):  # pragma: no cover
    """``(L L^T)^-1 b`` for a C-ordered lower-triangular ``L``: two substitutions, each
    reading ``L`` by rows (the back substitution is column-oriented on ``L^T``)."""
    m = b.shape[0]
    z = b.copy()
    for i in range(m):
        acc = z[i]
        for k in range(i):
            acc -= L[i, k] * z[k]
        z[i] = acc / L[i, i]
    for i in range(m - 1, -1, -1):
        z[i] /= L[i, i]
        zi = z[i]
        for k in range(i):
            z[k] -= L[i, k] * zi
    return z


def _basis_matrix(A: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The basis matrix and its costs' sign pattern (columns ``+-a_j`` or ``+-e_i``)."""
    m, N = A.shape
    B = np.zeros((m, m))
    is_x = basis < 2 * N
    sign = np.where(basis % 2 == 0, 1.0, -1.0)
    xj = basis[is_x] // 2
    B[:, is_x] = A[:, xj] * sign[is_x]
    rows = (basis[~is_x] - 2 * N) // 2
    B[rows, np.flatnonzero(~is_x)] = sign[~is_x]
    return B, is_x


def _costs(basis: np.ndarray, t: np.ndarray, N: int) -> np.ndarray:
    is_x = basis < 2 * N
    return np.where(is_x, t[np.minimum(basis // 2, N - 1)], 1.0)


def _scaled(A: np.ndarray, y: np.ndarray, t: np.ndarray):
    """``A / sA``, ``y / sy``, ``t / sA`` (scale-free tolerances; the multipliers are unchanged,
    the coefficients scale by ``sy / sA``), or None for an all-zero ``A`` or ``y``."""
    sA = float(np.max(np.abs(A))) if A.size else 0.0
    sy = float(np.max(np.abs(y))) if y.size else 0.0
    if sy == 0.0 or sA == 0.0:
        return None
    return np.asfortranarray(A / sA), y / sy, t / sA, sA, sy


def _ipm(As, ys, ts, q, tol, max_iter=80):
    """Mehrotra predictor-corrector on the standard-form LP (``v = (x+, x-, u+, u-)``) to a
    relative gap and infeasibility of ``tol``; returns ``(x, u+ - u-, pi, dual slacks of x+
    and x-)``.

    The normal matrix ``A D_x A^T + D_u`` is formed from the ``q`` columns of largest weight
    ``D_x`` only (constraint reduction, as in Tits, Absil and Woessner's reduced IPM for
    problems with many more dual constraints than variables): the other columns' weights
    are orders of magnitude smaller once the iterates approach the optimum, and the residuals
    are recomputed exactly every iteration, so the reduction only makes the direction
    slightly inexact. Started primal and dual feasible (``x = 0``, ``u+ - u- = y``,
    ``pi = 0``).
    """
    m, N = As.shape
    n = 2 * N + 2 * m
    c = np.concatenate([ts, ts, np.ones(2 * m)])
    delta = 1e-2
    v = np.concatenate(
        [np.full(2 * N, delta), np.maximum(ys, 0) + delta, np.maximum(-ys, 0) + delta]
    )
    s = np.maximum(c, delta)
    pi = np.zeros(m)

    def Mv(z):
        return As @ (z[:N] - z[N : 2 * N]) + z[2 * N : 2 * N + m] - z[2 * N + m :]

    def MTp(p):
        g = As.T @ p
        return np.concatenate([g, -g, p, -p])

    def steplen(z, dz):
        neg = dz < 0
        return min(1.0, float(np.min(-z[neg] / dz[neg]))) if neg.any() else 1.0

    bnorm = 1.0 + float(np.linalg.norm(ys))
    cnorm = 1.0 + float(np.linalg.norm(c))
    diag = np.diag_indices(m)
    for _ in range(max_iter):
        rp = ys - Mv(v)
        rd = c - MTp(pi) - s
        pobj, dobj = float(c @ v), float(ys @ pi)
        if (
            np.linalg.norm(rp) <= tol * bnorm
            and np.linalg.norm(rd) <= tol * cnorm
            and abs(pobj - dobj) <= tol * (1.0 + abs(pobj))
        ):
            break
        D = v / s
        dx = D[:N] + D[N : 2 * N]
        Q = np.argpartition(-dx, q - 1)[:q] if q < N else np.arange(N)
        AQ = As[:, Q] * np.sqrt(dx[Q])
        H = AQ @ AQ.T
        H[diag] += D[2 * N : 2 * N + m] + D[2 * N + m :]
        H[diag] += 1e-13 * float(np.trace(H)) / m
        # NumPy's Cholesky and two compiled substitutions rather than SciPy's cho_factor /
        # cho_solve (one BLAS in hot paths): the same speed at one BLAS thread (m = 500,
        # medians of 30 on the loaded shared machine: factor 1.7 ms either way, solve 0.20
        # against 0.24 ms); the triangular inverse (_triangular_inverse) instead of the
        # substitutions would cost 12 ms more per iteration (~14 iterations here)
        R = _cholesky_upper(H, np)
        if R is None:
            break
        L = np.ascontiguousarray(R.T)
        Drd = D * rd

        def solve(rc, L=L, Drd=Drd, rp=rp, rd=rd, v=v, s=s):
            dpi = _cholesky_solve(L, rp + Mv(Drd - rc / s))
            ds = rd - MTp(dpi)
            return (rc - v * ds) / s, dpi, ds

        mu = float(v @ s) / n
        dv, dpi, ds = solve(-v * s)
        ap, ad = steplen(v, dv), steplen(s, ds)
        mu_aff = float((v + ap * dv) @ (s + ad * ds)) / n
        sigma = (mu_aff / mu) ** 3
        dv, dpi, ds = solve(-v * s + sigma * mu - dv * ds)
        ap, ad = 0.99 * steplen(v, dv), 0.99 * steplen(s, ds)
        v = v + ap * dv
        pi = pi + ad * dpi
        s = s + ad * ds
    return v[:N] - v[N : 2 * N], v[2 * N : 2 * N + m] - v[2 * N + m :], pi, s[:N], s[N : 2 * N]


def _crossover(As, ys, x, u, pi, sp_, sm_):
    """A basis from an interior point: the ``m`` columns of ``[A, I]`` most clearly basic
    (primal value large against its dual slack), signed so that the basis is primal feasible
    (every column has a mirror of the same cost, so any nonsingular choice can be made
    feasible). Dependent choices are replaced by slacks. Returns the basis codes and the
    basis's inverse, or None."""
    m, N = As.shape
    ax = np.abs(x)
    slx = np.minimum(sp_, sm_)
    score_x = ax / (ax + slx + 1e-300)
    au = np.abs(u)
    slu = np.maximum(1.0 - np.abs(pi), 0.0)
    score_u = au / (au + slu + 1e-300)
    score = np.concatenate([score_x, score_u])
    order = np.argsort(-score, kind="stable")
    chosen = order[:m]
    B = np.zeros((m, m))
    is_x = chosen < N
    B[:, is_x] = As[:, chosen[is_x]]
    B[chosen[~is_x] - N, np.flatnonzero(~is_x)] = 1.0
    inv = _inverse(B)
    if inv is None or inv[1] > _CROSSOVER_MAX_COND:
        # basis repair: keep the independent chosen columns (greedy Gram-Schmidt in score
        # order) and complete with slacks
        cols: list[int] = []
        Qm = np.zeros((m, m))
        for j in order:
            if len(cols) == m:
                break
            col = As[:, j] if j < N else np.eye(m)[j - N]
            k = len(cols)
            r = col - Qm[:, :k] @ (Qm[:, :k].T @ col)
            r -= Qm[:, :k] @ (Qm[:, :k].T @ r)
            nr = float(np.linalg.norm(r))
            if nr > 1e-8 * max(float(np.linalg.norm(col)), 1e-300):
                Qm[:, k] = r / nr
                cols.append(int(j))
        if len(cols) < m:
            return None
        chosen = np.array(cols, dtype=np.int64)
        is_x = chosen < N
        B = np.zeros((m, m))
        B[:, is_x] = As[:, chosen[is_x]]
        B[chosen[~is_x] - N, np.flatnonzero(~is_x)] = 1.0
        inv = _inverse(B)
        if inv is None:
            return None
    Binv = inv[0]
    z = Binv @ ys
    neg = z < 0
    # the basis's columns with a negative value change sign (their mirrors), and so do the
    # matching rows of the inverse, which the simplex method starts from
    Binv[neg] *= -1.0
    return np.where(is_x, 2 * chosen, 2 * N + 2 * (chosen - N)) + neg, Binv


def lad_solve(
    A: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    *,
    state: LADState | None = None,
    seed: np.ndarray | None = None,
    max_rounds: int = 50,
) -> tuple[np.ndarray, np.ndarray, LADState, int] | None:
    """``min_x ||y - A x||_1 + sum_j t_j |x_j|`` exactly: from ``state`` (a basis of an
    earlier solve on the same ``A``, ``y``) if given, else from a crossover basis of a
    constraint-reduced interior point method run to a loose tolerance, finished by the
    simplex method. Returns ``(x, pi, state, rounds)`` or None on numerical failure."""
    m, N = A.shape
    sc = _scaled(A, y, t)  # once: every attempt below works on the same scaled copy
    if sc is None:
        return None
    kw = {"seed": seed, "max_rounds": max_rounds, "scaled": sc}
    if N <= 2 * m:
        return lad_simplex(A, y, t, state=state, **kw)
    if state is not None:
        # a path's previous basis is usually a few hundred pivots away; if it is much
        # farther (a large step in lam), the interior point start below is cheaper
        warm = lad_simplex(A, y, t, state=state, max_pivots=max(50, m // 5), **kw)
        if warm is not None:
            return warm
    else:
        # A sparse optimum (large lam) is a few pivots from the slack basis x = 0: try them
        # first (a few tens of ms at 500 x 5000), and start from an interior point only
        # when they do not suffice (a dense optimum needs thousands of pivots from x = 0).
        quick = lad_simplex(A, y, t, max_pivots=max(50, m // 4), **kw)
        if quick is not None:
            return quick
    As, ys, ts, _, _ = sc
    x, u, pi, sp_, sm_ = _ipm(As, ys, ts, q=min(N, 2 * m), tol=_IPM_TOL)
    crossed = _crossover(As, ys, x, u, pi, sp_, sm_)
    start = binv = None
    if crossed is not None:
        basis, binv = crossed
        wt = np.abs(x) / (np.minimum(sp_, sm_) + 1e-300)
        ws = np.argpartition(-wt, min(N, 2 * m) - 1)[: min(N, 2 * m)]
        xb = basis[basis < 2 * N] // 2
        start = LADState(basis, np.union1d(ws, xb).astype(np.int64))
    return lad_simplex(A, y, t, state=start, binv=binv, **kw)


_IPM_TOL = 1e-3  # enough for a crossover basis a few dozen pivots from the optimum
# A crossover basis worse conditioned than this is repaired (see _crossover); the SciPy
# version repaired at an LU pivot ratio of 1e-10, about 1e13 in condition (see _MAX_COND).
_CROSSOVER_MAX_COND = 1e13


def lad_simplex(
    A: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    *,
    state: LADState | None = None,
    seed: np.ndarray | None = None,
    max_rounds: int = 50,
    max_pivots: int | None = None,
    scaled: tuple | None = None,
    binv: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, LADState, int] | None:
    """Solve ``min_x ||y - A x||_1 + sum_j t_j |x_j|`` (``A`` float64, Fortran order, any
    scale). Returns ``(x, pi, state, rounds)``, or None on numerical failure or after
    ``max_pivots`` pivots (default ``20 (m + N)``). ``scaled`` is ``_scaled(A, y, t)`` if
    the caller has it already, ``binv`` the inverse of ``state``'s basis matrix (scaled).

    ``state`` is a basis from an earlier solve on the same ``A`` and ``y`` (any ``t``);
    ``seed`` indexes columns to put in the first working set (a warm start's support).
    """
    m, N = A.shape
    sc = _scaled(A, y, t) if scaled is None else scaled
    if sc is None:
        return None
    As, ys, ts, sA, sy = sc
    norms = np.sqrt(np.einsum("ij,ij->j", As, As))
    with np.errstate(divide="ignore"):
        invn_all = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    tol_d = 1e-10

    if state is not None:
        basis = state.basis.copy()
        ws = state.ws.copy()
    else:
        basis = 2 * N + 2 * np.arange(m) + (ys < 0)
        ws = np.zeros(0, dtype=np.int64)
    in_ws = np.zeros(N, dtype=bool)
    in_ws[ws] = True
    # first working set: the seed, and the columns whose dual constraints are most violated at
    # the starting multipliers
    B, is_x = _basis_matrix(As, basis)
    if binv is None:
        inv = _inverse(B)
        if inv is None:
            return None
        binv = inv[0]
    # the explicit inverse serves the pricing here and the first pivots below
    Binv: np.ndarray | None = binv
    pi = Binv.T @ _costs(basis, ts, N)
    gfull = As.T @ pi
    add = [] if seed is None else [np.asarray(seed, dtype=np.int64)]
    viol = (np.abs(gfull) - ts) * invn_all
    viol[in_ws] = -np.inf
    if seed is not None:
        viol[seed] = -np.inf
    n_add = min(N, max(m, 64))
    top = np.argpartition(-viol, min(n_add, N - 1))[:n_add]
    add.append(top[viol[top] > 0])
    ws = np.union1d(ws, np.concatenate(add)).astype(np.int64)
    pivot_budget = 20 * (m + N) if max_pivots is None else max_pivots
    total = 0
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - reported after the loop
        in_ws[:] = False
        in_ws[ws] = True
        AW = np.asfortranarray(As[:, ws])
        tW = ts[ws]
        invn = invn_all[ws]
        while True:
            if Binv is None:  # refactorisation after a chunk of pivots
                B, is_x = _basis_matrix(As, basis)
                inverted = _inverse(B)
                if inverted is None:
                    return None
                Binv = inverted[0]
            cB = _costs(basis, ts, N)
            xB = np.maximum(Binv @ ys, 0.0)
            pi = Binv.T @ cB
            g = AW.T @ pi
            Binv = np.ascontiguousarray(Binv)
            chunk = min(_REFACTOR, pivot_budget - total)
            if chunk <= 0:
                return None
            done, status = _pivots(AW, tW, invn, ws, N, basis, cB, Binv, xB, pi, g, chunk, tol_d)
            upd, Binv = Binv, None  # updated in place by the pivots: factorise afresh
            total += done
            if status == 2:
                return None
            if status == 0:
                break
        # exact multipliers of the final basis, then price every column
        B, is_x = _basis_matrix(As, basis)
        pi = _basis_solve(B, upd, _costs(basis, ts, N), transpose=True)
        if pi is None:
            return None
        gfull = As.T @ pi
        viol = (np.abs(gfull) - ts) * invn_all
        viol[in_ws] = -np.inf
        bad = np.flatnonzero(viol > tol_d)
        slack_bad = np.max(np.abs(pi)) > 1.0 + tol_d
        if bad.size == 0 and not slack_bad:
            break
        if bad.size:
            n_add = max(64, ws.size // 2)
            if bad.size > n_add:
                bad = bad[np.argpartition(-viol[bad], n_add - 1)[:n_add]]
            ws = np.union1d(ws, bad).astype(np.int64)
    xB = _basis_solve(B, upd, ys, transpose=False)
    if xB is None:
        return None
    x = np.zeros(N)
    xb = basis[is_x]
    vals = xB[is_x] * np.where(xb % 2 == 0, 1.0, -1.0)
    np.add.at(x, xb // 2, vals)
    x *= sy / sA
    return x, pi, LADState(basis.copy(), ws.copy()), rounds
