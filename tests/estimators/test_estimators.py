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
        # Fixed accuracy runs the estimator's algorithm and n_iter (and logs with verbose).
        TruncatedSVD(n_components=0.9, algorithm="block_krylov", n_iter=1, verbose=1),
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


@pytest.mark.parametrize("algorithm", ["randomized", "block_krylov"])
def test_fraction_mode_passes_n_iter_and_algorithm_through(algorithm):
    """A float n_components runs truncated_svd's fixed-accuracy mode with the estimator's
    n_iter (power iterations per block) and algorithm, not fixed defaults."""
    from sparselin import truncated_svd

    X = make_low_rank_matrix(200, 80, decay=0.97, random_state=4)
    tol = np.sqrt(1.0 - 0.9)
    found = {}
    for n_iter in (0, 3):
        est = TruncatedSVD(0.9, algorithm=algorithm, n_iter=n_iter, random_state=0).fit(X)
        _, s, _ = truncated_svd(
            X, tol=tol, method=algorithm, n_iter=n_iter, random_state=np.random.RandomState(0)
        )
        assert est.n_components_ == s.shape[0]
        np.testing.assert_allclose(est.singular_values_, s, rtol=1e-12)
        found[n_iter] = est.singular_values_
    # n_iter changes the computation (it is not ignored): the blocks differ, and so do the
    # singular values (and here the rank found).
    a, b = found[0], found[3]
    assert a.shape != b.shape or not np.allclose(a, b, rtol=1e-6)


def test_fraction_mode_n_iter_finds_a_smaller_rank_on_slow_decay():
    # On a slowly decaying spectrum, power iterations per block sharpen the basis, so the
    # rank found comes closer to the optimal one (from the exact singular values).
    X, s = make_low_rank_matrix(200, 100, decay=0.98, random_state=5, return_singular_values=True)
    r_opt = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), 0.8)) + 1
    ranks = {
        n_iter: TruncatedSVD(0.8, n_iter=n_iter, random_state=0).fit(X).n_components_
        for n_iter in (0, 4)
    }
    assert r_opt <= ranks[4] < ranks[0]
    assert ranks[4] - r_opt <= 2


def _explained_variance_ratio(X, components):
    """Independent reference: variance of the projected samples over the total variance."""
    Xd = X.toarray() if sp.issparse(X) else X
    Z = Xd @ components.T
    return Z.var(axis=0) / Xd.var(axis=0).sum()


@pytest.mark.parametrize("sparse", [False, True])
def test_explained_variance_ratio_is_centred_and_energy_fraction_is_not(sparse):
    rng = np.random.default_rng(6)
    base = make_low_rank_matrix(500, 60, decay=0.85, random_state=6)
    # Far from zero-mean, as TF-IDF is: a constant offset on every entry.
    X = np.abs(base) + 0.05 * rng.random((500, 60)) + 0.02
    X_in = sp.csr_matrix(X) if sparse else X
    est = TruncatedSVD(0.9, random_state=0).fit(X_in)
    energy = np.sum(est.singular_values_**2) / np.linalg.norm(X) ** 2
    s_all = np.linalg.svd(X, compute_uv=False)
    # The energy fraction is what n_components=0.9 asked for, against the exact spectrum ...
    np.testing.assert_allclose(energy, np.sum(s_all[: est.n_components_] ** 2) / np.sum(s_all**2))
    assert energy >= 0.9
    # ... while explained_variance_ratio_ is the centred quantity, here a different number.
    ref = _explained_variance_ratio(X, est.components_)
    np.testing.assert_allclose(est.explained_variance_ratio_, ref, rtol=1e-10)
    assert abs(ref.sum() - energy) > 0.05

    # For centred data the two fractions agree.
    Xc = X - X.mean(axis=0)
    est = TruncatedSVD(0.9, random_state=0).fit(Xc)
    energy = np.sum(est.singular_values_**2) / np.linalg.norm(Xc) ** 2
    np.testing.assert_allclose(est.explained_variance_ratio_.sum(), energy, rtol=1e-10)


LOGGER = "sparselin.estimators._truncated_svd"


@pytest.mark.parametrize("n_components", [5, 0.5])
def test_verbose_logs_progress_through_logging(n_components, caplog, capsys):
    import logging

    X = sp.random(300, 60, density=0.1, format="csr", random_state=7)
    with caplog.at_level(logging.DEBUG, logger="sparselin"):
        TruncatedSVD(n_components, random_state=0).fit(X)
    assert not [r for r in caplog.records if r.name == LOGGER]  # verbose=0: silent

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sparselin"):
        est = TruncatedSVD(n_components, verbose=1, random_state=0).fit(X)
    records = [r for r in caplog.records if r.name == LOGGER]
    text = "\n".join(r.getMessage() for r in records)
    assert {r.levelno for r in records} == {logging.INFO}
    assert "300 x 60" in text and "CSR" in text
    assert f"rank {est.n_components_}," in text
    # The energy kept it reports is the true one.
    energy = np.sum(est.singular_values_**2) / sp.linalg.norm(X) ** 2
    assert f"({energy:.4f} of ||X||_F^2 kept)" in text
    assert " s" in text and "fit took" in text
    assert capsys.readouterr().out == ""  # no print

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="sparselin"):
        TruncatedSVD(n_components, verbose=2, random_state=0).fit(X)
    assert logging.DEBUG in {r.levelno for r in caplog.records if r.name == LOGGER}


def test_verbose_without_logging_configured_writes_to_stderr(capsys):
    import logging

    logger = logging.getLogger(LOGGER)
    parent = logging.getLogger("sparselin")
    old = parent.propagate, logger.level, list(logger.handlers)
    # Cut the logger off from the root's handlers (pytest installs some), as in a script
    # that never configured logging.
    parent.propagate = False
    try:
        X = make_low_rank_matrix(200, 50, random_state=8)
        TruncatedSVD(3, verbose=1, random_state=0).fit(X)
        captured = capsys.readouterr()
        assert "[TruncatedSVD] truncated_svd: rank 3" in captured.err
        assert captured.out == ""
        # The fit leaves the logging configuration as it found it.
        assert (parent.propagate, logger.level, logger.handlers) == (False, old[1], old[2])
    finally:
        parent.propagate = old[0]


def test_verbose_rejects_bad_values():
    X = make_low_rank_matrix(50, 10, random_state=0)
    with pytest.raises(ValueError, match="verbose"):
        TruncatedSVD(2, verbose="loud").fit(X)
