"""The estimators against scikit-learn: its contract checks and its own TruncatedSVD tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from sklearn.decomposition import TruncatedSVD as SkTruncatedSVD
from sklearn.utils.estimator_checks import parametrize_with_checks

from sparselin import IncrementalSVD, TruncatedSVD
from sparselin.datasets import make_low_rank_matrix


@parametrize_with_checks(
    [
        TruncatedSVD(),
        # ARPACK needs n_components < min(X.shape); the checks use 2-feature data.
        TruncatedSVD(n_components=1, algorithm="arpack"),
        TruncatedSVD(algorithm="block_krylov"),
        TruncatedSVD(n_components=0.9),
        IncrementalSVD(),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_sklearn_own_truncated_svd_tests_pass_with_sparselin(tmp_path):
    """scikit-learn's test module for TruncatedSVD, run with its import swapped for ours.

    The module is read from the installed scikit-learn at test time (not copied into this
    repository) and only the import line is rewritten.
    """
    source_path = Path(sklearn.__file__).parent / "decomposition/tests/test_truncated_svd.py"
    # scikit-learn's wheels ship their tests; an install without them cannot run this check.
    assert source_path.exists(), f"scikit-learn's test module is missing: {source_path}"
    source = source_path.read_text()
    original = "from sklearn.decomposition import PCA, TruncatedSVD"
    assert original in source, "scikit-learn changed the import line; update the swap"
    swapped = source.replace(
        original, "from sklearn.decomposition import PCA\nfrom sparselin import TruncatedSVD"
    )
    target = tmp_path / "test_sklearn_truncated_svd_swapped.py"
    target.write_text(swapped)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "sklearn.conftest",  # provides the global_random_seed fixture
            str(target),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("algorithm", ["randomized", "arpack"])
def test_matches_sklearn_results(algorithm):
    X = make_low_rank_matrix(200, 80, decay=0.8, random_state=0)
    ours = TruncatedSVD(6, algorithm=algorithm, random_state=0).fit(X)
    ref = SkTruncatedSVD(6, algorithm=algorithm, random_state=0).fit(X)
    np.testing.assert_allclose(ours.singular_values_, ref.singular_values_, rtol=1e-7)
    # Same sign convention: components agree entry by entry, not only up to sign.
    np.testing.assert_allclose(ours.components_, ref.components_, atol=1e-6)
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_)
    np.testing.assert_allclose(ours.transform(X), ref.transform(X), atol=1e-6)


def test_fixed_accuracy_n_components_float():
    X, s = make_low_rank_matrix(300, 100, decay=0.9, random_state=1, return_singular_values=True)
    est = TruncatedSVD(n_components=0.95, random_state=0).fit(X)
    kept = np.sum(est.singular_values_**2) / np.sum(s**2)
    assert kept >= 0.95
    r_opt = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), 0.95)) + 1
    assert r_opt <= est.n_components_ <= r_opt + 3
    assert est.components_.shape == (est.n_components_, 100)


def test_block_krylov_and_sparse_float32():
    X = sp.random(300, 120, density=0.1, random_state=0, format="csr", dtype=np.float32)
    est = TruncatedSVD(5, algorithm="block_krylov", random_state=0).fit(X)
    assert est.components_.dtype == np.float32
    s_ref = np.linalg.svd(X.toarray().astype(np.float64), compute_uv=False)[:5]
    np.testing.assert_allclose(est.singular_values_, s_ref, rtol=1e-2)


def test_incremental_partial_fit_feature_mismatch():
    est = IncrementalSVD(3).partial_fit(np.ones((5, 6)) + np.eye(5, 6))
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(np.ones((4, 7)))


def test_n_iter_auto_extension():
    X, s = make_low_rank_matrix(300, 120, decay=0.9, random_state=3, return_singular_values=True)
    est = TruncatedSVD(10, n_iter="auto", random_state=0).fit(X)
    err = np.linalg.norm(X - est.inverse_transform(est.transform(X)))
    assert err <= 1.01 * np.sqrt(np.sum(s[10:] ** 2))
    with pytest.raises(ValueError, match="n_iter"):
        TruncatedSVD(2, n_iter="often").fit(X)
