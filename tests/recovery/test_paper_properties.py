"""Claims of Mohammad-Taheri & Brugiapaglia (arXiv:2303.00844), replicated at reduced size.

The synthetic model is the authors' ``cs_synth_model.m``: Gaussian A with unit-norm columns,
s-sparse x with N(0, 1) values, noise of norm exactly eta, and for corruption round(c m)
entries (drawn with replacement) hit by 100 N(0, 1). Reference numbers are those recomputed
from the authors' raw data (research note, section A.8).
"""

from __future__ import annotations

import numpy as np
import pytest

from sparselin.recovery import lad_lasso, loss_omp, omp, weighted_lasso

pytestmark = pytest.mark.slow


def _model(rng, m, N, s, eta, corrupt=0.0):
    A = rng.standard_normal((m, N))
    A /= np.linalg.norm(A, axis=0)
    x = np.zeros(N)
    x[rng.permutation(N)[:s]] = rng.standard_normal(s)
    g = rng.standard_normal(m)
    y = A @ x + eta * g / np.linalg.norm(g)
    if corrupt:
        k = round(corrupt * m)
        np.add.at(y, rng.integers(0, m, k), 100 * rng.standard_normal(k))
    return A, x, y


def _err(xh, x):
    return float(np.linalg.norm(xh - x) / np.linalg.norm(x))


def _gmean(v):
    return float(np.exp(np.mean(np.log(v))))


def test_experiment_iv_tuned_variants_freeze_while_omp_overfits():
    # m = 100, N = 200, s = 15, ||e|| = 1e-3, up to 150 iterations (authors: 30 trials).
    rng = np.random.default_rng(1)
    errs = {"omp": [], "l1": [], "sr": [], "sr_big": []}
    stops = []
    for _ in range(8):
        A, x, y = _model(rng, 100, 200, 15, 1e-3)
        errs["omp"].append(_err(loss_omp(A, y, loss="lasso", penalty="l0", lam=0.0).coef, x))
        res = loss_omp(A, y, loss="lasso", penalty="l1", lam=1e-3, n_nonzero=150)
        errs["l1"].append(_err(res.coef, x))
        stops.append(res.stop_reason == "active" and res.n_iter <= 20)
        sr = loss_omp(A, y, loss="sqrt_lasso", penalty="l1", lam=0.158, n_nonzero=150)
        errs["sr"].append(_err(sr.coef, x))
        big = loss_omp(A, y, loss="sqrt_lasso", penalty="l1", lam=0.281, n_nonzero=150)
        errs["sr_big"].append(_err(big.coef, x))
    # authors (geometric means): l1 1.04e-4 frozen from ~15 iterations; SR 0.158 1.17e-4;
    # SR 0.281 0.74 (stops too early); OMP 5.17e-4 at iteration 100 = m.
    assert 7e-5 <= _gmean(errs["l1"]) <= 1.6e-4
    assert np.mean(stops) >= 0.8
    assert 7e-5 <= _gmean(errs["sr"]) <= 2.5e-4
    assert _gmean(errs["sr_big"]) > 0.3
    # OMP keeps adding atoms until |S| = m and ends several times worse than the tuned
    # variants (the authors' blow-up past m iterations is MATLAB's rank-deficient
    # backslash; here OMP stops at m, when the residual vanishes).
    assert _gmean(errs["omp"]) > 3 * _gmean(errs["l1"])


def test_sr_lasso_l1_best_lam_is_noise_blind_lasso_l1_is_not():
    # Experiment I: m = 150, N = 300, s = 10, 30 iterations.
    rng = np.random.default_rng(2)
    sr_grid = np.array([0.056, 0.1, 0.178, 0.316])
    l1_grid = 10.0 ** np.arange(-4.0, -0.9, 0.5)
    best_sr, best_l1, best_err = {}, {}, {}
    for eta in (1e-3, 1e-2, 1e-1):
        e_sr = np.zeros((5, sr_grid.size))
        e_l1 = np.zeros((5, l1_grid.size))
        for t in range(5):
            A, x, y = _model(rng, 150, 300, 10, eta)
            for i, lam in enumerate(sr_grid):
                res = loss_omp(A, y, loss="sqrt_lasso", penalty="l1", lam=lam, n_nonzero=30)
                e_sr[t, i] = _err(res.coef, x)
            if eta != 1e-2:
                for i, lam in enumerate(l1_grid):
                    res = loss_omp(A, y, loss="lasso", penalty="l1", lam=lam, n_nonzero=30)
                    e_l1[t, i] = _err(res.coef, x)
        med = np.median(e_sr, axis=0)
        best_sr[eta] = sr_grid[med.argmin()]
        best_err[eta] = med.min()
        if eta != 1e-2:
            best_l1[eta] = l1_grid[np.median(e_l1, axis=0).argmin()]
    # authors: SR-l1 best lam 0.178 at every noise level, median errors 8.4e-5, 9.0e-4, 8.7e-3
    assert all(0.1 <= lam <= 0.32 for lam in best_sr.values())
    for eta, ref in ((1e-3, 8.4e-5), (1e-2, 9.0e-4), (1e-1, 8.7e-3)):
        assert best_err[eta] <= 1.5 * ref
    assert np.log10(best_l1[1e-1] / best_l1[1e-3]) >= 1.5


def test_lad_variants_survive_gross_corruption_where_omp_and_lasso_fail():
    # Experiment I (LAD): eta = 1e-3, 10% of the entries hit by 100 x N(0, 1) outliers.
    rng = np.random.default_rng(3)
    lad, lad0, plain, lasso = [], [], [], []
    for _ in range(4):
        A, x, y = _model(rng, 150, 300, 10, 1e-3, corrupt=0.10)
        lad.append(
            _err(loss_omp(A, y, loss="lad_lasso", penalty="l1", lam=1.78, n_nonzero=30).coef, x)
        )
        lad0.append(
            _err(loss_omp(A, y, loss="lad_lasso", penalty="l0", lam=5.6e-4, n_nonzero=30).coef, x)
        )
        plain.append(_err(omp(A, y, n_nonzero=30), x))
        lasso.append(
            min(
                _err(loss_omp(A, y, loss="lasso", penalty="l1", lam=lam, n_nonzero=30).coef, x)
                for lam in (1e-2, 1.0, 100.0)
            )
        )
    # authors: LAD-l1 1.09e-4 and LAD-l0 1.09e-4 (medians at 10% corruption)
    assert np.median(lad) <= 2e-4
    assert np.median(lad0) <= 2e-4
    assert np.median(plain) >= 10 * np.median(lad)
    assert np.median(lasso) >= 10 * np.median(lad)


def test_convex_lad_lasso_survives_5_to_20_percent_corruption_where_lasso_fails():
    # Experiment II with the convex solvers: eta = 1e-3, 5 / 10 / 20 % of the entries hit by
    # 100 x N(0, 1) outliers (authors' convex LAD-LASSO at lam = 1 with 5 %: 4.1e-4 at
    # m = 100, N = 200). Measured here (4 trials): medians 2.7e-4 / 3.7e-4 / 4.5e-4, while
    # the best convex LASSO of a lam grid stays at relative errors of 7 to 70.
    rng = np.random.default_rng(4)
    for level in (0.05, 0.10, 0.20):
        lad, lasso = [], []
        for _ in range(2):
            A, x, y = _model(rng, 150, 300, 10, 1e-3, corrupt=level)
            lad.append(_err(lad_lasso(A, y, 1.0), x))
            lasso.append(min(_err(weighted_lasso(A, y, lam), x) for lam in (1.0, 100.0)))
        assert max(lad) <= 1.5e-3, (level, lad)
        assert min(lasso) >= 100 * max(lad), (level, lasso, lad)


def test_weights_on_half_the_support_lift_sr_lasso_l1_recovery():
    # Experiment III (the authors' Fig_3_data.m): A = randn(m, N) / sqrt(m) measures x, the
    # noise is 1e-3 randn(m), and the columns are normalised inside loss_omp. An oracle
    # knows half of the support and gives it weight 1e-3. The authors (30 trials, m = 40,
    # lam = 0.251): success 0.97 weighted against 0.53 unweighted.
    rng = np.random.default_rng(3)
    m, N, s, trials = 40, 500, 10, 30
    ok = {1.0: 0, 1e-3: 0}
    for _ in range(trials):
        A = rng.standard_normal((m, N)) / np.sqrt(m)
        perm = rng.permutation(N)
        x = np.zeros(N)
        x[perm[:s]] = rng.standard_normal(s)
        y = A @ x + 1e-3 * rng.standard_normal(m)
        for wv in ok:
            w = np.ones(N)
            w[perm[: s // 2]] = wv
            res = loss_omp(
                A, y, loss="sqrt_lasso", penalty="l1", lam=0.251, weights=w, n_nonzero=30
            )
            ok[wv] += _err(res.coef, x) < 1e-2
    # This seed: 26 / 30 against 10 / 30; the bounds leave room for a borderline trial or two.
    assert ok[1e-3] / trials >= 0.8, ok
    assert ok[1.0] / trials <= 0.7, ok
    assert (ok[1e-3] - ok[1.0]) / trials >= 0.3, ok
