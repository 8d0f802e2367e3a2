"""RobustPCA: scikit-learn's contract checks, agreement with robust_pca, robustness of the
subspace against TruncatedSVD's, missing values, and parameter errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.decomposition import TruncatedSVD as SkTruncatedSVD
from sklearn.utils.estimator_checks import parametrize_with_checks

from sparselin.estimators._robust_pca import RobustPCA
from sparselin.robust import robust_pca


@pytest.fixture(autouse=True)
def _quiet_regime_warnings():
    # scikit-learn's checks fit on small random data, which is not low rank plus sparse: the
    # "outside the regime" warning is correct there and not what these tests are about.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="the low-rank part is not of low rank")
        yield


@parametrize_with_checks(
    [RobustPCA(), RobustPCA(n_components=1), RobustPCA(method="rsvddpd", n_components=2)]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _data(seed=0, n=300, p=100, r=4, rho=0.05):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((n, r)) @ rng.standard_normal((r, p))
    S0 = np.where(rng.random((n, p)) < rho, rng.uniform(-25, 25, (n, p)), 0.0)
    return L0, S0


def _principal_angle(V1, V2):
    """Largest principal angle (radians) between the row spaces of V1 and V2."""
    Q1, _ = np.linalg.qr(V1.T)
    Q2, _ = np.linalg.qr(V2.T)
    s = np.linalg.svd(Q1.T @ Q2, compute_uv=False)
    return float(np.arccos(np.clip(s.min(), -1, 1)))


def test_fit_matches_robust_pca_and_attributes():
    L0, S0 = _data()
    X = L0 + S0
    est = RobustPCA(random_state=0).fit(X)
    res = robust_pca(X, random_state=0)
    np.testing.assert_array_equal(est.low_rank_, res.low_rank)
    np.testing.assert_array_equal(est.sparse_, res.sparse)
    assert est.n_components_ == est.rank_ == res.rank == 4
    assert est.n_iter_ == res.n_iter and est.converged_
    np.testing.assert_allclose(est.singular_values_, res.s)
    # components_: orthonormal rows spanning the row space of low_rank_, sign convention
    # of scikit-learn (largest entry of each component positive).
    C = est.components_
    np.testing.assert_allclose(C @ C.T, np.eye(4), atol=1e-10)
    np.testing.assert_allclose(est.low_rank_ @ C.T @ C, est.low_rank_, atol=1e-8)
    assert np.all(C[np.arange(4), np.abs(C).argmax(axis=1)] > 0)
    # The robust subspace is the true one; TruncatedSVD's is pulled by the corruptions.
    V0 = np.linalg.svd(L0, full_matrices=False)[2][:4]
    assert _principal_angle(C, V0) < 1e-5
    plain = SkTruncatedSVD(4, random_state=0).fit(X).components_
    assert _principal_angle(plain, V0) > 0.1


def test_transform_inverse_transform_and_fit_transform():
    L0, S0 = _data(seed=1)
    X = L0 + S0
    est = RobustPCA(n_components=3, random_state=0)
    Z = est.fit_transform(X)
    assert est.n_components_ == 3 and est.components_.shape == (3, 100)
    np.testing.assert_allclose(Z, X @ est.components_.T)
    np.testing.assert_allclose(est.transform(X), Z)
    np.testing.assert_allclose(est.inverse_transform(Z), Z @ est.components_)
    # Clean data projected on the full robust subspace and back is reproduced.
    full = RobustPCA(random_state=0).fit(X)
    back = full.inverse_transform(full.transform(L0))
    assert np.linalg.norm(back - L0) <= 1e-6 * np.linalg.norm(L0)


def test_missing_values_in_fit_and_transform():
    L0, S0 = _data(seed=2)
    X = L0 + S0
    missing = np.random.default_rng(3).random(X.shape) < 0.15
    X_nan = X.copy()
    X_nan[missing] = np.nan
    est = RobustPCA(random_state=0).fit(X_nan)
    assert np.isfinite(est.low_rank_).all()
    assert np.linalg.norm(est.low_rank_ - L0) <= 1e-5 * np.linalg.norm(L0)
    assert np.all(est.sparse_[missing] == 0)
    # A clean sample with missing features is projected by least squares on the rest.
    L_nan = L0.copy()
    L_nan[missing] = np.nan
    np.testing.assert_allclose(est.transform(L_nan), L0 @ est.components_.T, atol=1e-6)


def test_float32_is_preserved():
    L0, S0 = _data(seed=4)
    X = (L0 + S0).astype(np.float32)
    est = RobustPCA(random_state=0).fit(X)
    for x in (est.low_rank_, est.sparse_, est.components_, est.singular_values_):
        assert x.dtype == np.float32
    assert est.transform(X).dtype == np.float32


def test_rsvddpd_method():
    L0, S0 = _data(seed=5, r=1)
    X = L0 + S0
    est = RobustPCA(method="rsvddpd", random_state=0).fit(X)
    assert est.n_components_ == 1 and est.components_.shape == (1, 100)
    V0 = np.linalg.svd(L0, full_matrices=False)[2][:1]
    assert _principal_angle(est.components_, V0) < 0.05
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.fit(np.where(np.eye(300, 100) > 0, np.nan, X))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_components": 0}, "n_components"),
        ({"n_components": 101}, "n_components"),
        ({"method": "ialm"}, "method"),
        ({"lam": 0.0}, "lam"),
        ({"alpha": 2.0}, "alpha"),
        ({"tol": 0.0}, "tol"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_bad_parameters(params, match):
    X = _data(seed=6)[0]
    before = X.copy()
    with pytest.raises(ValueError, match=match):
        RobustPCA(**params).fit(X)
    np.testing.assert_array_equal(X, before)


def test_infinity_is_refused():
    X = _data(seed=7)[0]
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        RobustPCA().fit(X)
