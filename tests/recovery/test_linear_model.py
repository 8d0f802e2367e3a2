"""The recovery estimators: scikit-learn's contract checks and their peers' objectives."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Lasso, OrthogonalMatchingPursuit, QuantileRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from sparselin.estimators._linear_model import LADLasso, OMPRegressor, SqrtLasso, WeightedLasso
from sparselin.recovery import sqrt_lasso


@parametrize_with_checks(
    [
        WeightedLasso(alpha=0.01),
        SqrtLasso(alpha=0.1),
        LADLasso(alpha=0.01),
        OMPRegressor(),
        OMPRegressor(loss="sqrt_lasso", penalty="l1", lam=0.1),
        OMPRegressor(loss="lad_lasso", penalty="l1", lam=0.5),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_weighted_lasso_equals_sklearn_lasso(rng):
    X = rng.standard_normal((80, 30))
    y = X[:, :3] @ [1.0, -2.0, 0.5] + 0.1 * rng.standard_normal(80) + 4.0
    for alpha in (0.01, 0.1):
        ours = WeightedLasso(alpha=alpha, tol=1e-12).fit(X, y)
        sk = Lasso(alpha=alpha, tol=1e-12, max_iter=100000).fit(X, y)
        np.testing.assert_allclose(ours.coef_, sk.coef_, atol=1e-7)
        assert ours.intercept_ == pytest.approx(sk.intercept_, abs=1e-7)


def test_weighted_lasso_weights_zero_is_unpenalised(rng):
    X = rng.standard_normal((50, 10))
    y = X[:, 0] * 0.05 + rng.standard_normal(50) * 0.01
    w = np.ones(10)
    w[0] = 0
    assert WeightedLasso(alpha=1.0, weights=w).fit(X, y).coef_[0] != 0
    assert WeightedLasso(alpha=1.0).fit(X, y).coef_[0] == 0


def test_lad_lasso_equals_quantile_regressor(rng):
    X = rng.standard_normal((60, 8))
    y = X @ rng.standard_normal(8) + 2.0 + 0.1 * rng.standard_normal(60)
    y[:5] += 40
    alpha = 0.02
    ours = LADLasso(alpha=alpha).fit(X, y)
    sk = QuantileRegressor(quantile=0.5, alpha=alpha, solver="highs").fit(X, y)

    def objective(coef, b):
        return np.abs(y - X @ coef - b).sum() / (2 * 60) + alpha * np.abs(coef).sum()

    assert objective(ours.coef_, ours.intercept_) == pytest.approx(
        objective(sk.coef_, sk.intercept_), rel=1e-7
    )


def test_sqrt_lasso_scaling_and_intercept(rng):
    X = rng.standard_normal((70, 12))
    y = X[:, 2] * 2 + 5 + 0.05 * rng.standard_normal(70)
    alpha = 0.4
    ours = SqrtLasso(alpha=alpha).fit(X, y)
    Xc, yc = X - X.mean(0), y - y.mean()
    ref = sqrt_lasso(Xc, yc, alpha)
    np.testing.assert_allclose(ours.coef_, ref, atol=1e-8)
    assert ours.intercept_ == pytest.approx(y.mean() - X.mean(0) @ ref)


def test_omp_regressor_equals_sklearn(rng):
    X = rng.standard_normal((40, 50))
    X /= np.linalg.norm(X, axis=0)
    Y = rng.standard_normal((40, 3))
    for fit_intercept in (False, True):
        ours = OMPRegressor(n_nonzero_coefs=6, fit_intercept=fit_intercept).fit(X, Y)
        sk = OrthogonalMatchingPursuit(n_nonzero_coefs=6, fit_intercept=fit_intercept).fit(X, Y)
        if not fit_intercept:  # sklearn assumes unit-norm columns; centring breaks that
            np.testing.assert_allclose(ours.coef_, sk.coef_, atol=1e-10)
        assert ours.coef_.shape == sk.coef_.shape
        assert np.shape(ours.intercept_) == np.shape(sk.intercept_)


def test_omp_regressor_loss_variants_recover(rng):
    X = rng.standard_normal((80, 40))
    y = 3 * X[:, 1] - 2 * X[:, 7] + 1.5
    y_out = y.copy()
    y_out[:6] += 200
    lad = OMPRegressor(loss="lad_lasso", penalty="l1", lam=1.0).fit(X, y_out)
    assert set(np.flatnonzero(np.abs(lad.coef_) > 1e-6)) == {1, 7}
    assert lad.intercept_ == pytest.approx(1.5, abs=1e-6)
    sr = OMPRegressor(loss="sqrt_lasso", penalty="l1", lam=0.2).fit(X, y)
    assert set(np.flatnonzero(sr.coef_)) == {1, 7}
    assert sr.stop_reason_ in ("active", "tol", "no_decrease")


def test_sqrt_lasso_equals_skglm_where_skglm_converges(rng):
    skglm = pytest.importorskip("skglm.experimental")
    X = rng.standard_normal((60, 30))
    y = X[:, :2] @ [1.0, -1.0] + 0.5 * rng.standard_normal(60)
    alpha = 2.0
    ours = SqrtLasso(alpha=alpha, fit_intercept=False).fit(X, y)
    ref = skglm.SqrtLasso(alpha=alpha, fit_intercept=False, tol=1e-10).fit(X, y)

    def objective(c):
        return np.linalg.norm(y - X @ c) + alpha * np.abs(c).sum()

    assert objective(ours.coef_) == pytest.approx(objective(ref.coef_), rel=1e-6)
    assert objective(ours.coef_) <= objective(ref.coef_) * (1 + 1e-9)


def test_weighted_lasso_equals_skglm_weighted_lasso(rng):
    skglm = pytest.importorskip("skglm")
    X = rng.standard_normal((60, 40))
    y = X[:, :3] @ [1.0, -1.0, 2.0] + 0.1 * rng.standard_normal(60)
    w = rng.uniform(0.5, 2.0, 40)
    w[5] = 0.0
    ours = WeightedLasso(alpha=0.05, weights=w, tol=1e-12).fit(X, y)
    ref = skglm.WeightedLasso(alpha=0.05, weights=w, tol=1e-12).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
    assert ours.intercept_ == pytest.approx(ref.intercept_, abs=1e-6)
