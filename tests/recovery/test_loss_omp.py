"""loss_omp: every selection rule against a brute-force one-coordinate minimisation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar
from sklearn.linear_model import orthogonal_mp

from sparselin.recovery import loss_omp
from sparselin.recovery._losses import LOSSES, lad_fit
from sparselin.recovery._penalties import PENALTIES

PAIRS = list(itertools.product(["lasso", "sqrt_lasso", "lad_lasso"], ["l0", "l1"]))


def _F(loss, r):
    if loss == "lasso":
        return float(np.vdot(r, r).real)
    if loss == "sqrt_lasso":
        return float(np.linalg.norm(r))
    return float(np.abs(r).sum())


def _p(penalty, lam, wj, z):
    if penalty == "l0":
        return lam * wj**2 * (z != 0)
    return lam * wj * abs(z)


def brute_gain_real(loss, penalty, lam, w, A, r, x, j):
    """G(x) - min_t G(x + t e_j) by direct 1-D minimisation (real data)."""
    a, xj = A[:, j], x[j]

    def G(t):
        return _F(loss, r - t * a) + _p(penalty, lam, w[j], xj + t)

    cands = [G(0.0), G(-xj)]
    if loss == "lad_lasso":
        # piecewise linear: the minimum sits at a breakpoint r_i / a_i (or at -x_j)
        nz = a != 0
        cands += [G(t) for t in r[nz] / a[nz]]
    else:
        T = 10 * (np.linalg.norm(r) + abs(xj) + 1)
        for lo, hi in ((-T, -xj), (-xj, T)):
            if hi > lo:
                res = minimize_scalar(
                    G, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13, "maxiter": 2000}
                )
                cands.append(res.fun)
        # smooth minimiser of the loss alone (l0: the penalty is constant off -x_j)
        t_ls = np.vdot(a, r).real
        cands.append(G(t_ls))
    return G(0.0) - min(cands)


def brute_gain_complex(loss, penalty, lam, w, A, r, x, j):
    a, xj = A[:, j], x[j]

    def G(t):
        return _F(loss, r - t * a) + _p(penalty, lam, w[j], xj + t)

    def G2(v):
        return G(v[0] + 1j * v[1])

    c = np.vdot(a, r)
    cands = [G(0), G(-xj)]
    for start in (c, c + xj, 0.5 * c, -xj + 1e-3):
        res = minimize(
            G2,
            [start.real, start.imag],
            method="Nelder-Mead",
            options={"xatol": 1e-12, "fatol": 1e-15, "maxiter": 4000},
        )
        cands.append(res.fun)
    return G(0) - min(cands)


def _state(rng, m, N, k, loss, complex_=False):
    A = rng.standard_normal((m, N))
    if complex_:
        A = A + 1j * rng.standard_normal((m, N))
    A /= np.linalg.norm(A, axis=0)
    y = rng.standard_normal(m) + (1j * rng.standard_normal(m) if complex_ else 0)
    x = np.zeros(N, A.dtype)
    sup = rng.choice(N, k, replace=False)
    if k:
        if loss == "lad_lasso":
            x[sup] = lad_fit(A[:, sup], y)
        else:
            x[sup] = np.linalg.lstsq(A[:, sup], y, rcond=None)[0]
    return A, y, x, y - A @ x


@pytest.mark.parametrize(("loss", "penalty"), PAIRS)
@pytest.mark.parametrize("state", ["zero", "refit", "arbitrary"])
def test_gain_is_the_exact_one_coordinate_decrease(rng, loss, penalty, state):
    m, N = 12, 9
    lams = {
        "lasso": [0.0, 0.05, 0.8],
        "sqrt_lasso": [0.0, 0.2, 0.6, 1.5],
        "lad_lasso": [0.0, 0.3, 2.0],
    }[loss]
    for trial in range(4):
        k = {"zero": 0, "refit": 3, "arbitrary": 3}[state]
        A, y, x, r = _state(rng, m, N, k, loss)
        if state == "arbitrary":
            x[x != 0] += rng.standard_normal(k)  # off the refit: r not orthogonal to A_S
            r = y - A @ x
        w = rng.uniform(0.2, 2.0, N)
        w[0] = 0.0  # an unpenalised column
        for lam in lams:
            pen = PENALTIES[penalty](lam, w)
            gains = LOSSES[loss]().decrease(A, r, A.T @ r, x, pen)
            brute = np.array(
                [brute_gain_real(loss, penalty, lam, w, A, r, x, j) for j in range(N)]
            )
            scale = _F(loss, r) + 1
            np.testing.assert_allclose(
                gains,
                brute,
                atol=1e-8 * scale,
                rtol=1e-7,
                err_msg=f"{loss}-{penalty} lam={lam} trial={trial}",
            )


@pytest.mark.parametrize("loss", ["lasso", "sqrt_lasso"])
@pytest.mark.parametrize("penalty", ["l0", "l1"])
def test_gain_complex(rng, loss, penalty):
    A, y, x, r = _state(rng, 10, 6, 2, loss, complex_=True)
    x[x != 0] += 0.3 - 0.2j
    r = y - A @ x
    w = rng.uniform(0.3, 1.5, 6)
    for lam in (0.1, 0.7):
        pen = PENALTIES[penalty](lam, w)
        gains = LOSSES[loss]().decrease(A, r, A.conj().T @ r, x, pen)
        brute = np.array([brute_gain_complex(loss, penalty, lam, w, A, r, x, j) for j in range(6)])
        np.testing.assert_allclose(gains, brute, atol=1e-7 * (_F(loss, r) + 1))


def test_published_sr_l1_insertion_rule_is_wrong_where_ours_is_exact(rng):
    # The authors' code returns lam w |c| + sqrt((1 - lam^2 w^2)(R^2 - |c|^2)) - R negated,
    # which is positive even where |c| <= lam w R (the true gain is then 0).
    A, y, x, r = _state(rng, 15, 10, 0, "sqrt_lasso")
    lam = 0.4
    w = np.ones(10)
    c = A.T @ r
    R = np.linalg.norm(r)
    published = -np.minimum(lam * np.abs(c) + np.sqrt((1 - lam**2) * (R**2 - c**2)) - R, 0)
    ours = LOSSES["sqrt_lasso"]().decrease(A, r, c, x, PENALTIES["l1"](lam, w))
    brute = np.array([brute_gain_real("sqrt_lasso", "l1", lam, w, A, r, x, j) for j in range(10)])
    below = np.abs(c) <= lam * R
    assert below.any()
    np.testing.assert_allclose(ours, brute, atol=1e-10)
    assert np.all(brute[below] == 0) or np.allclose(brute[below], 0, atol=1e-12)
    assert np.all(published[below] > 1e-6)


@pytest.mark.parametrize(("loss", "penalty"), PAIRS)
def test_selected_index_is_the_brute_force_argmax(rng, loss, penalty):
    m, N = 14, 10
    A = rng.standard_normal((m, N))
    A /= np.linalg.norm(A, axis=0)
    xt = np.zeros(N)
    xt[[1, 6]] = [1.5, -1.0]
    y = A @ xt + 0.05 * rng.standard_normal(m)
    lam = {"lasso": 0.01, "sqrt_lasso": 0.1, "lad_lasso": 0.2}[loss]
    w = rng.uniform(0.5, 1.5, N)
    res = loss_omp(
        A, y, loss=loss, penalty=penalty, lam=lam, weights=w, n_nonzero=5, return_path=True
    )
    for step, j in enumerate(res.support):
        x = res.coef_path[step]
        r = y - A @ x
        brute = np.array([brute_gain_real(loss, penalty, lam, w, A, r, x, i) for i in range(N)])
        order = np.sort(brute)
        if order[-1] - order[-2] > 1e-9:  # skip near-ties
            assert j == int(np.argmax(brute))


def test_lasso_l0_with_lam_zero_is_omp(rng):
    A = rng.standard_normal((40, 90))
    A /= np.linalg.norm(A, axis=0)
    y = rng.standard_normal(40)
    res = loss_omp(A, y, loss="lasso", penalty="l0", lam=0.0, n_nonzero=8)
    np.testing.assert_allclose(res.coef, orthogonal_mp(A, y, n_nonzero_coefs=8), atol=1e-10)
    assert res.stop_reason == "n_nonzero"
    # the loss recorded per step is the squared residual norm, decreasing
    assert np.all(np.diff(res.loss) < 0)


def test_lad_refit_is_exact_against_vertex_enumeration(rng):
    # An optimal LAD fit with k unknowns interpolates k of the rows: enumerate them all.
    B = rng.standard_normal((9, 2))
    y = rng.standard_normal(9)
    y[2] += 30  # an outlier
    coef = lad_fit(B, y)
    best = np.inf
    for rows in itertools.combinations(range(9), 2):
        sub = B[list(rows)]
        if abs(np.linalg.det(sub)) < 1e-12:
            continue
        z = np.linalg.solve(sub, y[list(rows)])
        best = min(best, np.abs(B @ z - y).sum())
    assert np.abs(B @ coef - y).sum() == pytest.approx(best, rel=1e-9)


def test_stop_reasons(rng):
    A = rng.standard_normal((30, 60))
    A /= np.linalg.norm(A, axis=0)
    x = np.zeros(60)
    x[[3, 9]] = [1.0, 2.0]
    y = A @ x
    assert loss_omp(A, y, loss="lasso", penalty="l1", lam=0.0, tol=1e-20).stop_reason in (
        "tol",
        "no_decrease",
    )
    assert loss_omp(A, y, loss="lasso", penalty="l1", lam=100.0).stop_reason == "no_decrease"
    assert loss_omp(A, y, loss="lasso", penalty="l1", lam=0.0, n_nonzero=1).n_iter == 1
    noisy = y + 1e-3 * rng.standard_normal(30)
    res = loss_omp(A, noisy, loss="lasso", penalty="l1", lam=1e-2)
    assert res.stop_reason == "active"
    assert sorted(res.support.tolist()) == [3, 9]


def test_zero_weights_are_always_allowed_in(rng):
    A = rng.standard_normal((30, 50))
    A /= np.linalg.norm(A, axis=0)
    y = A[:, 4] * 2 + A[:, 20] * 0.15
    w = np.ones(50)
    w[20] = 0.0
    # lam w / 2 = 0.1 < |c_20| ~ 0.15 < lam w = 0.2: unpenalised, atom 20 gains |c|^2, more
    # than the b^2 / 4 of shrinking atom 4; penalised, it gains (|c| - b/2)^2, less.
    res = loss_omp(A, y, loss="lasso", penalty="l1", lam=0.2, weights=w)
    assert {4, 20} <= set(res.support.tolist())
    res1 = loss_omp(A, y, loss="lasso", penalty="l1", lam=0.2)
    assert 20 not in res1.support.tolist()


def test_non_unit_columns_give_the_normalised_result(rng):
    A = rng.standard_normal((25, 40))
    An = A / np.linalg.norm(A, axis=0)
    y = rng.standard_normal(25)
    for loss in ("lasso", "sqrt_lasso", "lad_lasso"):
        a = loss_omp(A, y, loss=loss, penalty="l1", lam=0.1, n_nonzero=4)
        b = loss_omp(An, y, loss=loss, penalty="l1", lam=0.1, n_nonzero=4)
        np.testing.assert_array_equal(a.support, b.support)
        np.testing.assert_allclose(a.coef * np.linalg.norm(A, axis=0), b.coef, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64, np.complex128])
def test_dtypes(rng, dtype):
    A = rng.standard_normal((30, 50)).astype(dtype)
    xt = np.zeros(50, dtype)
    xt[[2, 7]] = 1
    y = A @ xt
    res = loss_omp(A, y, loss="sqrt_lasso", penalty="l1", lam=0.2)
    assert res.coef.dtype == dtype
    np.testing.assert_allclose(res.coef, xt, atol=1e-4)


# How lam maps when y is scaled by s (x -> s x): the loss scales by s^2 (lasso) or s (the
# others), the l1 penalty by s and the l0 penalty not at all.
_LAM_SCALE = {
    ("lasso", "l1"): lambda s: s,
    ("lasso", "l0"): lambda s: s * s,
    ("sqrt_lasso", "l1"): lambda s: 1.0,
    ("sqrt_lasso", "l0"): lambda s: s,
    ("lad_lasso", "l1"): lambda s: 1.0,
    ("lad_lasso", "l0"): lambda s: s,
}


@pytest.mark.parametrize("loss, penalty", PAIRS)
@pytest.mark.parametrize("s", [1e-100, 1e-30, 1e30, 1e100])
def test_scaled_signal_gives_the_scaled_result(rng, loss, penalty, s):
    # The LAD refit's LP (HiGHS) has absolute tolerances: at y = 1e-30 it returned z = 0
    # (support [9], then "active" at a wrong x) and at 1e30 it failed ("dependent", empty
    # support). It now solves in units where y is near 1.
    A = rng.standard_normal((20, 40))
    x = np.zeros(40)
    x[[1, 5, 9]] = [1.0, 2.0, 3.0]
    y = A @ x + 0.01 * rng.standard_normal(20)
    lam = {"lasso": 0.05, "sqrt_lasso": 0.05, "lad_lasso": 0.5}[loss]
    ref = loss_omp(A, y, loss=loss, penalty=penalty, lam=lam, n_nonzero=4)
    lam_s = lam * _LAM_SCALE[loss, penalty](s)
    got = loss_omp(A, y * s, loss=loss, penalty=penalty, lam=lam_s, n_nonzero=4)
    assert got.stop_reason == ref.stop_reason
    np.testing.assert_array_equal(got.support, ref.support)
    np.testing.assert_allclose(got.coef / s, ref.coef, rtol=1e-9, atol=1e-12)
    f = s * s if loss == "lasso" else s
    np.testing.assert_allclose(got.loss / f, ref.loss, rtol=1e-9)


@pytest.mark.parametrize("loss", ["lasso", "sqrt_lasso", "lad_lasso"])
def test_l0_cost_with_weights_above_the_squares_range(rng, loss):
    # The l0 cost lam w_j^2 was formed as lam * w**2: inf for w > 1e154, and NaN (0 * inf) at
    # lam = 0, which stopped the iteration before its first atom ("no_decrease").
    A = rng.standard_normal((20, 40))
    y = A[:, [3, 11, 27]] @ np.array([1.0, -2.0, 0.5]) + 0.01 * rng.standard_normal(20)
    big = np.full(40, 1e200)
    plain = loss_omp(A, y, loss=loss, penalty="l0", lam=0.0, n_nonzero=3)
    got = loss_omp(A, y, loss=loss, penalty="l0", lam=0.0, weights=big, n_nonzero=3)
    np.testing.assert_array_equal(got.support, plain.support)
    np.testing.assert_allclose(got.coef, plain.coef, rtol=1e-12)
    # lam w^2 with w = 1e155 (w^2 = 1e310 overflows) and lam = lam_ref 1e-310: the cost of
    # lam_ref with unit weights (y scaled by 1e6 to keep lam a normal number)
    y6 = y * 1e6
    lam_ref = {"lasso": 1e-2, "sqrt_lasso": 1e-3, "lad_lasso": 1e-3}[loss]
    lam_ref *= _LAM_SCALE[loss, "l0"](1e6)
    ref = loss_omp(A, y6, loss=loss, penalty="l0", lam=lam_ref, n_nonzero=3)
    w = np.full(40, 1e155)
    got = loss_omp(A, y6, loss=loss, penalty="l0", lam=lam_ref * 1e-310, weights=w, n_nonzero=3)
    assert got.n_iter > 0
    np.testing.assert_array_equal(got.support, ref.support)
    np.testing.assert_allclose(got.loss, ref.loss, rtol=1e-9)
