"""weighted_lasso, sqrt_lasso, lad_lasso against cvxpy, scikit-learn and their optimality
conditions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Lasso, QuantileRegressor

from sparselin.recovery import (
    lad_lasso,
    lad_lasso_path,
    lam_max,
    sqrt_lasso,
    sqrt_lasso_path,
    weighted_lasso,
    weighted_lasso_path,
)

cp = pytest.importorskip("cvxpy")

SOLVERS = {"lasso": weighted_lasso, "sqrt_lasso": sqrt_lasso, "lad_lasso": lad_lasso}


def _cvx(loss, A, y, lam, w):
    z = cp.Variable(A.shape[1])
    fit = {
        "lasso": cp.sum_squares(A @ z - y),
        "sqrt_lasso": cp.norm(A @ z - y, 2),
        "lad_lasso": cp.norm1(A @ z - y),
    }[loss]
    prob = cp.Problem(cp.Minimize(fit + lam * cp.norm1(cp.multiply(w, z))))
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return prob.value, z.value


@pytest.mark.parametrize("loss", list(SOLVERS))
@pytest.mark.parametrize("shape", [(30, 60), (50, 20)])
def test_objective_matches_cvxpy(rng, loss, shape):
    m, N = shape
    A = rng.standard_normal((m, N))
    y = rng.standard_normal(m)
    w = rng.uniform(0.5, 2.0, N)
    w[3] = 0.0  # an unpenalised column
    top = lam_max(A, y, loss, weights=w)
    for frac in (0.5, 0.1, 0.01):
        lam = frac * top
        x, info = SOLVERS[loss](A, y, lam, weights=w, return_info=True)
        ref, _ = _cvx(loss, A, y, lam, w)
        assert info.converged
        assert info.objective == pytest.approx(ref, rel=1e-6)
        assert info.objective <= ref * (1 + 1e-6)  # never worse than the reference


def test_weighted_lasso_matches_sklearn_with_rescaled_columns(rng):
    # sklearn has no weights; a weighted l1 is a plain l1 on the columns a_j / w_j.
    A = rng.standard_normal((40, 70))
    y = rng.standard_normal(40)
    w = rng.uniform(0.5, 2, 70)
    alpha = 0.05
    sk = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=100000).fit(A / w, y)
    ours = weighted_lasso(A, y, 2 * 40 * alpha, weights=w)
    np.testing.assert_allclose(ours, sk.coef_ / w, atol=1e-6)


def test_lad_lasso_matches_sklearn_quantile_regressor(rng):
    A = rng.standard_normal((40, 15))
    y = A[:, 0] - 2 * A[:, 1] + 0.1 * rng.standard_normal(40)
    y[:4] += 50
    alpha = 0.01
    qr = QuantileRegressor(quantile=0.5, alpha=alpha, fit_intercept=False, solver="highs")
    qr.fit(A, y)
    ours, info = lad_lasso(A, y, 2 * 40 * alpha, return_info=True)
    ref = np.abs(y - A @ qr.coef_).sum() + 2 * 40 * alpha * np.abs(qr.coef_).sum()
    assert info.objective == pytest.approx(ref, rel=1e-7)


@pytest.mark.parametrize("loss", ["lasso", "sqrt_lasso"])
def test_subgradient_optimality(rng, loss):
    """KKT: A^T g in lam w sign(x) on the support and |A^T g| <= lam w off it, with g the
    loss's gradient at the residual (LAD's subdifferential is a set: cvxpy checks it)."""
    A = rng.standard_normal((60, 40))
    y = rng.standard_normal(60)
    w = rng.uniform(0.5, 2, 40)
    lam = 0.2 * lam_max(A, y, loss, weights=w)
    x = SOLVERS[loss](A, y, lam, weights=w, tol=1e-12)
    r = y - A @ x
    g = 2 * r if loss == "lasso" else r / np.linalg.norm(r)
    c = A.T @ g
    sup = np.abs(x) > 1e-10
    np.testing.assert_allclose(c[sup], lam * w[sup] * np.sign(x[sup]), atol=1e-6)
    assert np.all(np.abs(c[~sup]) <= lam * w[~sup] + 1e-6)


def test_sqrt_lasso_at_tiny_residuals(rng):
    # Low-noise compressed sensing: ||e|| / ||y|| ~ 1e-5, far below skglm's 1e-2 limit.
    m, N, s = 100, 200, 15
    A = rng.standard_normal((m, N))
    A /= np.linalg.norm(A, axis=0)
    x0 = np.zeros(N)
    x0[rng.choice(N, s, replace=False)] = rng.standard_normal(s)
    e = rng.standard_normal(m)
    y = A @ x0 + 1e-5 * e / np.linalg.norm(e)
    x, info = sqrt_lasso(A, y, 0.126, return_info=True)
    assert info.converged
    assert np.linalg.norm(y - A @ x) / np.linalg.norm(y) < 1e-3
    ref, _ = _cvx("sqrt_lasso", A, y, 0.126, np.ones(N))
    assert info.objective == pytest.approx(ref, rel=1e-6)
    assert np.linalg.norm(x - x0) / np.linalg.norm(x0) < 1e-3


def test_sqrt_lasso_interpolating_regime(rng):
    # small lam, more columns than rows: the optimum has A x = y (basis pursuit)
    A = rng.standard_normal((20, 50))
    y = rng.standard_normal(20)
    x, info = sqrt_lasso(A, y, 0.05, return_info=True)
    ref, _ = _cvx("sqrt_lasso", A, y, 0.05, np.ones(50))
    assert info.objective == pytest.approx(ref, rel=1e-6)
    assert np.linalg.norm(y - A @ x) < 1e-6 * np.linalg.norm(y)


@pytest.mark.parametrize("loss", list(SOLVERS))
def test_zero_above_lam_max_and_paths(rng, loss):
    A = rng.standard_normal((50, 30))
    y = rng.standard_normal(50)
    top = lam_max(A, y, loss)
    assert not SOLVERS[loss](A, y, top * 1.01).any()
    assert SOLVERS[loss](A, y, top * 0.9).any()
    path = {
        "lasso": weighted_lasso_path,
        "sqrt_lasso": sqrt_lasso_path,
        "lad_lasso": lad_lasso_path,
    }[loss]
    lams, coefs, infos = path(A, y, n_lams=6, eps=1e-2)
    assert coefs.shape == (30, 6)
    assert all(i.converged for i in infos)
    for k in (0, 3, 5):
        cold = SOLVERS[loss](A, y, lams[k], return_info=True)[1]
        assert infos[k].objective == pytest.approx(cold.objective, rel=1e-6)


def test_warm_start_gives_the_same_solution(rng):
    A = rng.standard_normal((40, 80))
    y = rng.standard_normal(40)
    cold = weighted_lasso(A, y, 5.0)
    warm, info = weighted_lasso(A, y, 5.0, coef_init=weighted_lasso(A, y, 6.0), return_info=True)
    np.testing.assert_allclose(warm, cold, atol=1e-6)
    assert info.converged


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept(rng, dtype):
    A = rng.standard_normal((30, 40)).astype(dtype)
    y = rng.standard_normal(30).astype(dtype)
    for f in SOLVERS.values():
        assert f(A, y, 1.0).dtype == dtype


def test_sqrt_lasso_saturated_support():
    # The optimal support saturates at m = 30 nonzeros with a nonzero residual: plain
    # coordinate descent crawled here (this was an xfail); Anderson acceleration converges.
    rng = np.random.default_rng(12345)
    A = rng.standard_normal((30, 50))
    y = rng.standard_normal(30)
    lam = 0.5830353223218634
    x, info = sqrt_lasso(A, y, lam, return_info=True)
    assert info.converged
    ref, _ = _cvx("sqrt_lasso", A, y, lam, np.ones(50))
    assert info.objective == pytest.approx(ref, rel=1e-6)


def _correlated(rng, m, N, rho):
    A = rng.standard_normal((m, N))
    for j in range(1, N):  # Toeplitz-like correlation rho^|i-j| between columns
        A[:, j] = rho * A[:, j - 1] + np.sqrt(1 - rho**2) * A[:, j]
    return A


def _certified_gap(loss, A, y, lam, w, x):
    """The duality gap at ``x`` recomputed here from a rescaled residual (all w > 0)."""
    r = y - A @ x
    c = np.abs(A.T @ r)
    if loss == "lasso":
        s = min(1.0, float(np.min(lam * w / (2 * c))))
        theta = s * r
        return r @ r + lam * w @ np.abs(x) - (y @ y - (y - theta) @ (y - theta))
    nr = np.linalg.norm(r)
    s = min(1.0 / nr, float(np.min(lam * w / c)))
    return nr + lam * w @ np.abs(x) - s * (y @ r)


@pytest.mark.parametrize("loss", ["lasso", "sqrt_lasso"])
@pytest.mark.parametrize("case", ["correlated", "zero_weights", "float32", "many_columns"])
def test_accelerated_cd_matches_plain_cd_on_hard_cases(rng, monkeypatch, loss, case):
    """Anderson-accelerated CD on working sets reaches the solution of plain CD, the cvxpy
    objective and a certified duality gap on correlated columns, unpenalised columns,
    float32 data and N >> m."""
    from sparselin.recovery import _convex

    m, N, rho = (40, 400, 0.5) if case == "many_columns" else (50, 120, 0.95)
    if case != "correlated":
        rho = 0.5
    A = _correlated(rng, m, N, rho)
    x0 = np.zeros(N)
    x0[rng.choice(N, 8, replace=False)] = rng.standard_normal(8)
    y = A @ x0 + 0.05 * rng.standard_normal(m)
    w = rng.uniform(0.5, 2.0, N)
    if case == "zero_weights":
        w[[0, 7, 33]] = 0.0
    if case == "float32":
        A, y = A.astype(np.float32), y.astype(np.float32)
    # SR-LASSO at a lam that keeps a residual (smaller ones interpolate: tested above)
    lam = (0.02 if loss == "lasso" else 0.3) * lam_max(A, y, loss, weights=w)
    tol = 1e-10
    x, info = SOLVERS[loss](A, y, lam, weights=w, tol=tol, return_info=True)
    assert info.converged
    assert x.dtype == A.dtype
    A64, y64 = A.astype(np.float64), y.astype(np.float64)
    scale = float(y64 @ y64) if loss == "lasso" else float(np.linalg.norm(y64))
    assert info.gap <= tol * scale
    ref, _ = _cvx(loss, A64, y64, lam, w)
    assert info.objective == pytest.approx(ref, rel=1e-6)
    # Plain CD for comparison, except SR-LASSO with N >> m, where it stalls (gap 1e-6
    # relative after 30 s on 2 cores: the case the acceleration fixes).
    if not (loss == "sqrt_lasso" and case == "many_columns"):
        monkeypatch.setattr(_convex, "_ANDERSON", False)
        monkeypatch.setattr(_convex, "_DIRECT", False)
        x_plain, info_plain = SOLVERS[loss](A, y, lam, weights=w, tol=tol, return_info=True)
        assert info_plain.converged
        assert info.objective == pytest.approx(info_plain.objective, rel=1e-8)
        if case != "float32":  # the float32 output is rounded; the objective above is not
            np.testing.assert_allclose(x, x_plain, atol=1e-4 * np.abs(x_plain).max())
    if case in ("correlated", "many_columns"):
        assert _certified_gap(loss, A, y, lam, w, x) <= 2 * tol * scale + 1e-12 * scale


@pytest.mark.parametrize("loss", ["lasso", "sqrt_lasso"])
@pytest.mark.parametrize("case", ["plain", "zero_weights", "correlated"])
def test_direct_support_solve_matches_coordinate_descent(rng, monkeypatch, loss, case):
    """The direct solve on the support found by coordinate descent (closed-form rho for the
    SR-LASSO) is taken, and gives the solution of coordinate descent alone, cvxpy's
    objective and a certified gap."""
    from sparselin.recovery import _convex

    m, N = 60, 300
    A = _correlated(rng, m, N, 0.9) if case == "correlated" else rng.standard_normal((m, N))
    x0 = np.zeros(N)
    x0[rng.choice(N, 10, replace=False)] = rng.standard_normal(10)
    y = A @ x0 + 0.01 * rng.standard_normal(m)
    w = rng.uniform(0.5, 2.0, N)
    if case == "zero_weights":
        w[[2, 50]] = 0.0
    lam = (0.02 if loss == "lasso" else 0.3) * lam_max(A, y, loss, weights=w)
    taken = []
    orig = _convex._direct_step

    def spy(*args):
        g = orig(*args)
        taken.append(g is not None)
        return g

    monkeypatch.setattr(_convex, "_direct_step", spy)
    tol = 1e-10 if loss == "lasso" else 1e-8
    x, info = SOLVERS[loss](A, y, lam, weights=w, tol=tol, return_info=True)
    assert any(taken)
    assert info.converged
    monkeypatch.setattr(_convex, "_DIRECT", False)
    x_cd, info_cd = SOLVERS[loss](A, y, lam, weights=w, tol=tol, return_info=True)
    assert info_cd.converged
    assert info.objective == pytest.approx(info_cd.objective, rel=1e-9)
    np.testing.assert_allclose(x, x_cd, atol=1e-5 * np.abs(x_cd).max())
    ref, _ = _cvx(loss, A, y, lam, w)
    assert info.objective == pytest.approx(ref, rel=1e-6)
    scale = float(y @ y) if loss == "lasso" else float(np.linalg.norm(y))
    if case != "zero_weights":
        assert _certified_gap(loss, A, y, lam, w, x) <= 2 * tol * scale


def test_direct_support_solve_declines_interpolation(rng):
    """SR-LASSO whose optimum interpolates (v^T G v >= 1 on the support): the direct solve
    declines, and the solver still returns the interpolating optimum."""
    m, N = 20, 60
    A = rng.standard_normal((m, N))
    y = rng.standard_normal(m)
    lam = 0.02 * lam_max(A, y, "sqrt_lasso")
    x, info = sqrt_lasso(A, y, lam, return_info=True)
    ref, _ = _cvx("sqrt_lasso", A, y, lam, np.ones(N))
    assert info.objective == pytest.approx(ref, rel=1e-6)


def test_weighted_lasso_path_many_lams_matches_skglm(rng):
    """40 lams down to 1e-4 lam_max on correlated columns: every point converged, equal to a
    cold solve, and equal to skglm's WeightedLasso at a few points."""
    skglm = pytest.importorskip("skglm")
    m, N = 60, 150
    A = _correlated(rng, m, N, 0.8)
    y = A[:, :5] @ rng.standard_normal(5) + 0.1 * rng.standard_normal(m)
    w = rng.uniform(0.5, 2.0, N)
    lams, coefs, infos = weighted_lasso_path(A, y, n_lams=40, eps=1e-4, weights=w)
    assert all(i.converged for i in infos)
    for k in (5, 20, 39):
        cold = weighted_lasso(A, y, lams[k], weights=w, return_info=True)[1]
        assert infos[k].objective == pytest.approx(cold.objective, rel=1e-8)
        est = skglm.WeightedLasso(
            alpha=lams[k] / (2 * m), weights=w, fit_intercept=False, tol=1e-10, max_iter=1000
        )
        ref = est.fit(A, y).coef_
        obj_ref = np.sum((y - A @ ref) ** 2) + lams[k] * w @ np.abs(ref)
        assert infos[k].objective <= obj_ref * (1 + 1e-8)
        np.testing.assert_allclose(coefs[:, k], ref, atol=1e-5 * max(1, np.abs(ref).max()))


# --------------------------------------------------------------------------- LAD-LASSO


@pytest.fixture
def no_highs_fallback(monkeypatch):
    """Fail if lad_lasso leaves its simplex method for the HiGHS column generation (so the
    tests below check the fast solver itself, not the fallback)."""
    from sparselin.recovery import _convex

    orig = _convex._solve_ws

    def guarded(A, y, lam, w, kind, *args):
        assert kind != _convex.LAD, "lad_lasso fell back on HiGHS"
        return orig(A, y, lam, w, kind, *args)

    monkeypatch.setattr(_convex, "_solve_ws", guarded)


def _lad_problem(rng, m, N, case):
    A = rng.standard_normal((m, N))
    x0 = np.zeros(N)
    x0[rng.choice(N, 5, replace=False)] = rng.standard_normal(5)
    y = A @ x0 + 0.01 * rng.standard_normal(m)
    y[rng.choice(m, max(1, m // 10), replace=False)] += 100 * rng.standard_normal(max(1, m // 10))
    w = rng.uniform(0.5, 2.0, N)
    if case == "zero_weights":
        w[[0, 3, 7]] = 0.0
    elif case == "duplicated":
        A[:, 1] = A[:, 0]
        A[:, 2] = -2 * A[:, 0]
        A[:, 5] = 0.0  # an all-zero column
    elif case == "rank_deficient":
        A = rng.standard_normal((m, 4)) @ rng.standard_normal((4, N))
        y = A @ x0 + 0.01 * rng.standard_normal(m)
    elif case == "integer":  # heavy degeneracy: ties everywhere
        A = rng.integers(-2, 3, (m, N)).astype(float)
        y = rng.integers(-3, 4, m).astype(float)
    return A, y, w


@pytest.mark.parametrize("shape", [(30, 200), (40, 60), (60, 25)])
@pytest.mark.parametrize(
    "case", ["plain", "zero_weights", "duplicated", "rank_deficient", "integer", "float32"]
)
def test_lad_lasso_matches_cvxpy(rng, no_highs_fallback, shape, case):
    """The simplex solver (interior-point crossover start when N > 2 m, slack start
    otherwise) against cvxpy/Clarabel at three lam, including the interpolating regime."""
    m, N = shape
    A, y, w = _lad_problem(rng, m, N, case)
    if case == "float32":
        A, y = A.astype(np.float32), y.astype(np.float32)
    A64, y64 = A.astype(np.float64), y.astype(np.float64)
    top = lam_max(A, y, "lad_lasso", weights=w)
    for frac in (0.5, 0.1, 0.01):
        lam = frac * top
        x, info = lad_lasso(A, y, lam, weights=w, return_info=True)
        assert info.converged and x.dtype == A.dtype
        assert info.gap <= 1e-8 * np.abs(y64).sum()
        ref, _ = _cvx("lad_lasso", A64, y64, lam, w)
        assert info.objective == pytest.approx(ref, rel=1e-6, abs=1e-9)
        # the reported objective is that of the returned coefficients (float64 data)
        if case != "float32":
            obj = np.abs(y64 - A64 @ x).sum() + lam * w @ np.abs(x)
            assert obj == pytest.approx(info.objective, rel=1e-12, abs=1e-12)


def test_lad_lasso_benchmark_shape_small(rng, no_highs_fallback):
    """A scaled-down benchmark problem (Gaussian, 10 % gross outliers, lam_max / 20, where
    the optimum interpolates): exact against an independent LP (HiGHS through linprog)."""
    from scipy.optimize import linprog

    m, N = 60, 400
    A = rng.standard_normal((m, N))
    x0 = np.zeros(N)
    x0[rng.choice(N, 6, replace=False)] = rng.standard_normal(6)
    y = A @ x0 + 0.01 * rng.standard_normal(m)
    y[:6] += 100.0
    w = rng.uniform(0.5, 2.0, N)
    lam = lam_max(A, y, "lad_lasso", weights=w) / 20
    x, info = lad_lasso(A, y, lam, weights=w, return_info=True)
    c = np.concatenate([lam * w, lam * w, np.ones(2 * m)])
    Aeq = np.hstack([A, -A, np.eye(m), -np.eye(m)])
    ref = linprog(c, A_eq=Aeq, b_eq=y, bounds=(0, None), method="highs").fun
    assert info.converged
    assert info.objective == pytest.approx(ref, rel=1e-8)


@pytest.mark.parametrize("sA, sy", [(1e150, 1.0), (1e-150, 1.0), (1.0, 1e150), (1.0, 1e-150)])
def test_lad_lasso_extreme_scales(rng, no_highs_fallback, sA, sy):
    """Scaling A by sA and y by sy scales the solution by sy / sA at lam * sA (and the
    objective by sy): nothing overflows or underflows in the solver."""
    A, y, w = _lad_problem(rng, 30, 80, "plain")
    lam = 0.1 * lam_max(A, y, "lad_lasso", weights=w)
    x, info = lad_lasso(A, y, lam, weights=w, return_info=True)
    xs, info_s = lad_lasso(A * sA, y * sy, lam * sA, weights=w, return_info=True)
    assert info_s.converged
    assert info_s.objective == pytest.approx(sy * info.objective, rel=1e-9)
    np.testing.assert_allclose(xs * (sA / sy), x, atol=1e-8 * np.abs(x).max())


def test_lad_lasso_zero_data(rng, no_highs_fallback):
    A = rng.standard_normal((20, 50))
    x, info = lad_lasso(A, np.zeros(20), 1.0, return_info=True)
    assert not x.any() and info.converged and info.objective == 0.0
    y = rng.standard_normal(20)
    x, info = lad_lasso(np.zeros((20, 50)), y, 1.0, return_info=True)
    assert not x.any() and info.converged
    assert info.objective == pytest.approx(np.abs(y).sum())
    # lam = 0 with every weight zero: plain LAD regression (an unpenalised LP)
    A, y, _ = _lad_problem(rng, 40, 10, "plain")
    x, info = lad_lasso(A, y, 0.0, return_info=True)
    ref, _ = _cvx("lad_lasso", A, y, 0.0, np.ones(10))
    assert info.converged and info.objective == pytest.approx(ref, rel=1e-7)


def test_lad_lasso_path_warm_bases_match_cold_solves(rng, no_highs_fallback):
    A, y, w = _lad_problem(rng, 40, 150, "zero_weights")
    lams, coefs, infos = lad_lasso_path(A, y, n_lams=8, eps=1e-2, weights=w)
    assert all(i.converged for i in infos)
    for k in range(8):
        x, cold = lad_lasso(A, y, lams[k], weights=w, return_info=True)
        assert infos[k].objective == pytest.approx(cold.objective, rel=1e-9)
    # a warm start from another lam's solution reaches the same optimum
    x, warm = lad_lasso(A, y, lams[4], weights=w, coef_init=coefs[:, 6], return_info=True)
    assert warm.converged
    assert warm.objective == pytest.approx(infos[4].objective, rel=1e-9)


def test_lad_lasso_inputs_unchanged(rng):
    A, y, w = _lad_problem(rng, 30, 90, "zero_weights")
    A = np.asfortranarray(A)
    copies = (A.copy(), y.copy(), w.copy())
    lad_lasso(A, y, 1.0, weights=w)
    lad_lasso_path(A, y, n_lams=3, weights=w)
    for before, after in zip(copies, (A, y, w), strict=True):
        np.testing.assert_array_equal(before, after)


def test_lad_lasso_tall_problems_use_column_generation(rng, monkeypatch):
    """Above _LAD_SIMPLEX_MAX_ROWS rows (an explicit m x m inverse would be too large) the
    HiGHS column generation solves the problem; both routes agree."""
    from sparselin.recovery import _convex

    A, y, w = _lad_problem(rng, 80, 30, "zero_weights")
    lam = 0.05 * lam_max(A, y, "lad_lasso", weights=w)
    fast = lad_lasso(A, y, lam, weights=w, return_info=True)[1]
    monkeypatch.setattr(_convex, "_LAD_SIMPLEX_MAX_ROWS", 50)
    slow = lad_lasso(A, y, lam, weights=w, return_info=True)[1]
    assert fast.converged and slow.converged
    assert fast.objective == pytest.approx(slow.objective, rel=1e-7)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(3, 25),
    ratio=st.sampled_from([0.5, 1.0, 3.0, 6.0]),
    frac=st.sampled_from([0.9, 0.3, 0.05, 0.0]),
    n_free=st.integers(0, 2),
    seed=st.integers(0, 2**31 - 1),
)
def test_lad_lasso_matches_highs_lp_property(m, ratio, frac, n_free, seed):
    """Random shapes on both sides of N = 2 m (slack start vs interior-point crossover),
    lam from near lam_max to 0, unpenalised columns: the certified objective equals the LP
    optimum of an independent HiGHS solve (through linprog) and the gap is tiny."""
    from scipy.optimize import linprog

    rng = np.random.default_rng(seed)
    N = max(1, int(ratio * m))
    A = rng.standard_normal((m, N))
    y = rng.standard_normal(m) * 10.0 ** rng.uniform(-3, 3)
    w = rng.uniform(0.2, 3.0, N)
    w[rng.choice(N, min(n_free, N), replace=False)] = 0.0
    lam = frac * lam_max(A, y, "lad_lasso", weights=w)
    from sparselin.recovery import _convex

    orig = _convex._solve_ws

    def guarded(A, y, lam, w, kind, *args):
        assert kind != _convex.LAD, "lad_lasso fell back on HiGHS"
        return orig(A, y, lam, w, kind, *args)

    with pytest.MonkeyPatch.context() as mp:  # the simplex method itself, not the fallback
        mp.setattr(_convex, "_solve_ws", guarded)
        x, info = lad_lasso(A, y, lam, weights=w, return_info=True)
    c = np.concatenate([lam * w, lam * w, np.ones(2 * m)])
    Aeq = np.hstack([A, -A, np.eye(m), -np.eye(m)])
    ref = linprog(c, A_eq=Aeq, b_eq=y, bounds=(0, None), method="highs").fun
    assert info.converged
    assert info.objective == pytest.approx(ref, rel=1e-7, abs=1e-9 * np.abs(y).sum())
    assert info.gap <= 1e-8 * np.abs(y).sum()


@pytest.mark.parametrize("loss", list(SOLVERS))
def test_lam_zero_is_certified_at_the_unregularised_optimum(rng, loss):
    # lam = 0 makes every dual constraint an equality, <a_j, theta> = 0. Taken as
    # inequalities with bound 0 they scaled each dual point to 0: the gap at the least-squares
    # optimum stayed the whole objective, so lasso and sqrt_lasso ran all max_iter rounds and
    # reported converged=False (gap 144 on an objective of 144).
    A = rng.standard_normal((30, 10))
    y = rng.standard_normal(30)
    x, info = SOLVERS[loss](A, y, 0.0, return_info=True)
    assert info.converged and info.n_iter <= 3
    ref, _ = _cvx(loss, A, y, 0.0, np.ones(10))
    assert info.objective == pytest.approx(ref, rel=1e-7)
    assert info.gap <= 1e-8 * info.objective


@pytest.mark.parametrize("loss", list(SOLVERS))
@pytest.mark.parametrize("n_free", [15, 30])
def test_unpenalised_columns_spanning_the_rows(rng, loss, n_free):
    # With unpenalised columns that span every row the optimum interpolates (objective 0
    # up to the penalised part, which is 0 here). The square-root loss's dual point is the
    # residual projected off those columns and normalised: a one-pass projection left
    # rounding noise, normalised into a unit vector that broke the equality constraints, and
    # certified gap 0 at ||A x - y|| = 1e-2 (converged=True).
    for _ in range(4):  # the one-pass point certified a wrong optimum on most draws
        A = rng.standard_normal((15, 30))
        y = rng.standard_normal(15)
        w = np.ones(30)
        w[:n_free] = 0.0
        x, info = SOLVERS[loss](A, y, 1.0, weights=w, return_info=True)
        resid = _fit(loss, y - A @ x)
        assert info.converged
        assert resid <= 1e-7 * _fit(loss, y)
        # the optimum is 0: the gap must cover the residual (up to its rounding)
        assert info.gap >= resid - 1e-12 * _fit(loss, y)


def _fit(loss, r):
    if loss == "lasso":
        return float(r @ r)
    return float(np.linalg.norm(r, 2 if loss == "sqrt_lasso" else 1))


@pytest.mark.parametrize("sA, sy", [(1.0, 1e-4), (1.0, 1e-150), (1.0, 1e150), (1e-150, 1.0)])
def test_sqrt_lasso_interpolating_regime_at_any_scale(rng, sA, sy):
    # In the interpolating regime the solver takes the basis-pursuit LP (HiGHS), whose
    # tolerances are absolute: at y = 1e-4 (or A = 1e-150) the equality A x = y was met only
    # to 1e-7, the candidate was refused and the scaled-lasso fallback stopped 1e-3 from the
    # optimum (converged=False). The LP is now solved in units where y, A and w are near 1.
    A = rng.standard_normal((30, 60))
    x0 = np.zeros(60)
    x0[[1, 7, 20]] = [2.0, -1.0, 3.0]
    y = A @ x0 + 0.1 * rng.standard_normal(30)
    lam = 0.1 * lam_max(A, y, "sqrt_lasso")
    x, info = sqrt_lasso(A, y, lam, return_info=True)
    xs, info_s = sqrt_lasso(A * sA, y * sy, lam * sA, return_info=True)
    assert info.converged and info_s.converged
    assert info_s.objective == pytest.approx(sy * info.objective, rel=1e-9)
    np.testing.assert_allclose(xs * (sA / sy), x, atol=1e-9 * np.abs(x).max())
