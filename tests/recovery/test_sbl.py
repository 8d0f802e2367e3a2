"""Sparse Bayesian learning: classic EM-SBL and Kronecker-structured SBL (KroSBL)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from sparselin.recovery._checks import check_problem
from sparselin.recovery._kronecker_sbl import (
    _couple,
    _coupling_matrix,
    _top_left_singular,
    kron_matvec,
    kronecker_sbl,
)
from sparselin.recovery._kronecker_sbl import (
    _posterior as kron_posterior,
)
from sparselin.recovery._sbl import _posterior as dense_posterior
from sparselin.recovery._sbl import _sbl_core, sbl


def _kron(mats):
    out = mats[0]
    for M in mats[1:]:
        out = np.kron(out, M)
    return out


def _randn(rng, shape, cplx):
    z = rng.standard_normal(shape)
    return z + 1j * rng.standard_normal(shape) if cplx else z


def _kron_sparse(rng, Ns, K, cplx=False):
    parts = []
    for n in Ns:
        v = np.zeros(n, dtype=complex if cplx else float)
        z = _randn(rng, K, cplx)
        v[rng.choice(n, K, replace=False)] = z / np.abs(z) * (0.5 + np.abs(z))
        parts.append(v)
    return _kron(parts)


def _reference_posterior(A, Y, gamma, s2):
    """The textbook E-step on the explicit matrices: Sigma = (Γ^-1 + A^H A / s2)^-1."""
    AH = A.conj().T
    Sigma = np.linalg.inv(np.diag(1.0 / gamma) + AH @ A / s2)
    mu = Sigma @ AH @ Y / s2
    Sy = s2 * np.eye(A.shape[0]) + (A * gamma) @ AH
    cost = Y.shape[1] * np.linalg.slogdet(Sy)[1] + np.real(
        np.trace(Y.conj().T @ np.linalg.solve(Sy, Y))
    )
    return mu, np.real(np.diag(Sigma)), cost


@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize("shape", [(12, 30), (30, 12)])
def test_dense_e_step_matches_textbook(cplx, shape):
    # Both sides of the Woodbury identity (m <= n and m > n) give the same posterior.
    rng = np.random.default_rng(0)
    A = _randn(rng, shape, cplx)
    Y = _randn(rng, (shape[0], 3), cplx)
    gamma = rng.random(shape[1]) + 0.05
    mu, diag, cost = dense_posterior(A, Y, gamma, 0.2, np)
    mu_ref, diag_ref, cost_ref = _reference_posterior(A, Y, gamma, 0.2)
    np.testing.assert_allclose(mu, mu_ref, atol=1e-10)
    np.testing.assert_allclose(diag, diag_ref, atol=1e-10)
    assert cost == pytest.approx(cost_ref, rel=1e-10)


@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize("dims", [[(3, 5), (4, 6)], [(3, 4), (2, 5), (3, 3)]])
def test_kronecker_e_step_equals_dense(cplx, dims):
    rng = np.random.default_rng(1)
    As = [_randn(rng, d, cplx) for d in dims]
    gs = [rng.random(d[1]) + 0.05 for d in dims]
    M = int(np.prod([d[0] for d in dims]))
    Y = _randn(rng, (M, 2), cplx)
    Ms = tuple(d[0] for d in dims)
    mu, diag, cost = kron_posterior(As, Y.reshape((*Ms, 2)), gs, 0.3, np)
    mu_ref, diag_ref, cost_ref = _reference_posterior(_kron(As), Y, _kron(gs), 0.3)
    np.testing.assert_allclose(mu.reshape(-1, 2), mu_ref, atol=1e-10)
    np.testing.assert_allclose(diag.reshape(-1), diag_ref, atol=1e-10)
    assert cost == pytest.approx(cost_ref, rel=1e-10)


def test_kron_matvec_dot_test():
    rng = np.random.default_rng(2)
    As = [rng.standard_normal((3, 4)), rng.standard_normal((5, 2)), rng.standard_normal((2, 3))]
    x = rng.standard_normal((24, 2))
    np.testing.assert_allclose(kron_matvec(As, x), _kron(As) @ x, atol=1e-12)
    # Adjoint: <A x, y> = <x, A^T y> through the transposed factors.
    y = rng.standard_normal(30)
    lhs = kron_matvec(As, x[:, 0]) @ y
    rhs = x[:, 0] @ kron_matvec([A.T for A in As], y)
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.parametrize("cplx", [False, True])
def test_sbl_recovers_sparse_vector(cplx):
    rng = np.random.default_rng(3)
    A = _randn(rng, (50, 120), cplx)
    x = np.zeros(120, dtype=A.dtype)
    support = [4, 40, 77, 101]
    z = _randn(rng, 4, cplx)
    x[support] = z / np.abs(z) * (1.0 + np.abs(z))  # magnitudes of at least 1
    y = A @ x + 1e-3 * _randn(rng, 50, cplx)
    res = sbl(A, y)
    assert res.converged
    assert sorted(np.flatnonzero(np.abs(res.coef) > 1e-2)) == support
    assert np.linalg.norm(res.coef - x) < 1e-2 * np.linalg.norm(x)
    # Learned from a start at a tenth of the signal power, down near the true 1e-6. EM's
    # noise estimate converges slowly, and where it stands at tol=1e-4 depends on the start
    # of gamma (1.4e-4 here, complex, from the start that scales with y; 7e-5 from the
    # reference start): a tighter tol brings it near the truth whatever the start.
    assert 1e-7 < res.noise_var < 1e-3
    assert 1e-7 < sbl(A, y, tol=1e-6).noise_var < 1e-5
    # EM never increases the type-II cost.
    c = np.array(res.cost)
    assert np.all(np.diff(c) <= 1e-9 * np.abs(c[1:]))


def test_sbl_multiple_measurement_vectors_share_support():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((30, 80))
    X = np.zeros((80, 5))
    X[[3, 50, 60]] = rng.standard_normal((3, 5)) + 1.0
    res = sbl(A, A @ X + 1e-3 * rng.standard_normal((30, 5)))
    assert res.coef.shape == (80, 5)
    assert np.linalg.norm(res.coef - X) < 1e-2 * np.linalg.norm(X)


def test_sbl_pruning_does_not_depend_on_column_scale():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((40, 100))
    x = np.zeros(100)
    x[[1, 20, 90]] = [1.0, -1.0, 2.0]
    y = A @ x + 1e-3 * rng.standard_normal(40)
    d = 10.0 ** rng.uniform(-3, 3, 100)
    a = sbl(A, y, noise_var=1e-6)
    b = sbl(A * d, y, noise_var=1e-6)
    # Scaling column j by d_j scales its coefficient by 1/d_j and nothing else.
    np.testing.assert_allclose(b.coef * d, a.coef, atol=1e-6)
    np.testing.assert_allclose(b.gamma * d**2, a.gamma, rtol=1e-5, atol=1e-12)


def test_sbl_float32_in_float32_out_and_inputs_untouched():
    rng = np.random.default_rng(6)
    A = rng.standard_normal((20, 50)).astype(np.float32)
    y = rng.standard_normal(20).astype(np.float32)
    A0, y0 = A.copy(), y.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = sbl(A, y, max_iter=20)
    assert res.coef.dtype == np.float32 and res.gamma.dtype == np.float32
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(y, y0)


def test_not_converging_warns():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((20, 60))
    y = rng.standard_normal(20)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        res = sbl(A, y, max_iter=2)
    assert not res.converged and res.n_iter == 2
    with pytest.warns(ConvergenceWarning, match="kronecker_sbl"):
        kronecker_sbl([A[:4, :6], A[4:9, :10]], y, max_iter=2)


@pytest.mark.parametrize("method", ["svd", "am"])
@pytest.mark.parametrize("cplx", [False, True])
def test_kronecker_sbl_recovers_kronecker_support(method, cplx):
    rng = np.random.default_rng(8)
    As = [_randn(rng, (10, 24), cplx), _randn(rng, (12, 24), cplx)]
    x = _kron_sparse(rng, (24, 24), 2, cplx)
    y = kron_matvec(As, x) + 1e-3 * _randn(rng, 120, cplx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = kronecker_sbl(As, y, method=method)
    assert np.linalg.norm(res.coef - x) ** 2 < 1e-3 * np.linalg.norm(x) ** 2
    assert len(res.gammas) == 2
    np.testing.assert_allclose(res.gamma, np.kron(*res.gammas))
    assert np.linalg.norm(res.gammas[0]) == pytest.approx(1.0)


@pytest.mark.parametrize("noise_var", [None, 1e-4])
def test_am_cost_never_increases(noise_var):
    # AM's guarantee holds for EM itself; pruning (a heuristic that removes coordinates for
    # good) is switched off to check it.
    rng = np.random.default_rng(14)
    As = [rng.standard_normal((8, 20)), rng.standard_normal((9, 20)), rng.standard_normal((4, 5))]
    x = _kron_sparse(rng, (20, 20, 5), 2)
    y = kron_matvec(As, x) + 1e-2 * rng.standard_normal(288)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = kronecker_sbl(As, y, method="am", noise_var=noise_var, prune=0.0, max_iter=60)
    c = np.array(res.cost)
    assert np.all(np.diff(c) <= 1e-9 * np.abs(c[1:])), "the AM cost increased"


def test_kronecker_sbl_nmse_falls_with_snr():
    rng = np.random.default_rng(9)
    As = [
        rng.standard_normal((8, 15)),
        rng.standard_normal((12, 15)),
        rng.standard_normal((15, 15)),
    ]
    nmse = []
    for snr_db in (5, 15, 25):
        errs = []
        for _ in range(4):
            x = _kron_sparse(rng, (15, 15, 15), 3)
            y0 = kron_matvec(As, x)
            sigma = np.sqrt(np.mean(y0**2) / 10 ** (snr_db / 10))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                res = kronecker_sbl(As, y0 + sigma * rng.standard_normal(y0.shape))
            errs.append(np.sum((res.coef - x) ** 2) / np.sum(x**2))
        nmse.append(np.median(errs))
    assert nmse[0] > nmse[1] > nmse[2]
    assert nmse[2] < 5e-3


def test_one_factor_is_classic_sbl():
    # With one factor KroSBL is classic EM-SBL started, as KroSBL starts, at the power of y.
    rng = np.random.default_rng(10)
    A = rng.standard_normal((25, 60))
    x = np.zeros(60)
    x[[5, 33]] = [1.0, -2.0]
    y = A @ x + 1e-2 * rng.standard_normal(25)
    a = _sbl_core(A, y[:, None], None, 500, 1e-4, 1e-3, np, data_init=True)
    for method in ("svd", "am"):
        b = kronecker_sbl([A], y, method=method, prune=1e-3)
        np.testing.assert_allclose(b.coef, a.coef[:, 0], atol=1e-8)
        assert b.n_iter == a.n_iter


def test_kronecker_sbl_matches_sbl_on_the_full_matrix_when_structure_is_exact():
    # From the same start, one EM step gives the same posterior as the dense route.
    rng = np.random.default_rng(11)
    As = [rng.standard_normal((5, 7)), rng.standard_normal((6, 8))]
    y = rng.standard_normal(30)
    a = _sbl_core(_kron(As), y[:, None], 0.1, 1, 1e9, 0.0, np, data_init=True)
    b = kronecker_sbl(As, y, noise_var=0.1, max_iter=1, prune=0.0, tol=1e9)
    assert a.cost[0] == pytest.approx(b.cost[0], rel=1e-12)


def test_block_sparse_beats_plain_on_block_sparse_channels():
    rng = np.random.default_rng(12)
    Ns, blocks = (24, 24), (4, 4)
    errs_plain, errs_block = [], []
    for _ in range(5):
        As = [rng.standard_normal((9, 24)), rng.standard_normal((9, 24))]
        parts = []
        for n, b in zip(Ns, blocks, strict=True):
            v = np.zeros(n)
            start = b * rng.integers(0, n // b)
            v[start : start + b] = rng.standard_normal(b) + np.sign(rng.standard_normal(b))
            parts.append(v)
        x = np.kron(*parts)
        y0 = kron_matvec(As, x)
        y = y0 + np.sqrt(np.mean(y0**2) / 10) * rng.standard_normal(y0.shape)  # 10 dB
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            plain = kronecker_sbl(As, y, method="am", max_iter=150)
            block = kronecker_sbl(As, y, method="am", block_sizes=blocks, max_iter=150)
        errs_plain.append(np.sum((plain.coef - x) ** 2) / np.sum(x**2))
        errs_block.append(np.sum((block.coef - x) ** 2) / np.sum(x**2))
        # Block-constant variances within each factor.
        g = block.gammas[0].reshape(-1, 4)
        assert np.allclose(g, g[:, :1])
    assert np.median(errs_block) < np.median(errs_plain)


BAD = [
    (lambda A, y: sbl(A[:, :, None], y), ValueError, "2-D"),
    (lambda A, y: sbl(A, y[:-1]), ValueError, "rows"),
    (lambda A, y: sbl(A, y, noise_var=-1.0), ValueError, "noise_var"),
    (lambda A, y: sbl(A, y, noise_var=0.0), ValueError, "noise_var"),
    (lambda A, y: sbl(A, y, max_iter=0), ValueError, "max_iter"),
    (lambda A, y: sbl(A, y, tol=0), ValueError, "tol"),
    (lambda A, y: sbl(A, y, prune=1.0), ValueError, "prune"),
    (lambda A, y: sbl(A * np.nan, y), ValueError, "NaN"),
    (lambda A, y: sbl(A, y * np.inf), ValueError, "NaN"),
    (lambda A, y: sbl(A.astype(str), y), TypeError, "numbers"),
    (lambda A, y: kronecker_sbl(A, y), TypeError, "sequence"),
    (lambda A, y: kronecker_sbl([], y), TypeError, "sequence"),
    (lambda A, y: kronecker_sbl([A[:3], A[:4]], y), ValueError, "12 rows"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4]], y, method="em"), ValueError, "method"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4]], y, block_sizes=[2]), ValueError, "block_sizes"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4]], y, block_sizes=[2, 0]), ValueError, "block"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4] * np.nan], y), ValueError, r"factors\[1\]"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4]], y, coupling=1.5), ValueError, "coupling"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4]], y, prune=[0.1]), ValueError, "prune"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4]], y, prune=[0.1, 1.0]), ValueError, r"prune\[1\]"),
    (lambda A, y: sbl(sp.csr_matrix(A), y), TypeError, "dense NumPy or CuPy"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4]], y, coupling=[0.5]), ValueError, "coupling"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4]], y, coupling="yes"), TypeError, "coupling"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4]], y, init_scale=0.0), ValueError, "init_scale"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4]], y, init_scale=-1), ValueError, "init_scale"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4]], y, init_scale=np.nan), ValueError, "init_scale"),
    (lambda A, y: kronecker_sbl([A[:5], A[:4]], y, init_scale="1"), TypeError, "init_scale"),
    (
        lambda A, y: kronecker_sbl([A[:5], A[:4]], y, coupling=[0.8, -1.0]),
        ValueError,
        r"coupling\[1\]",
    ),
    (
        lambda A, y: kronecker_sbl([A[:5], A[:4]], y, coupling=0.8, block_sizes=[1, 2]),
        ValueError,
        "one or the other",
    ),
]


@pytest.mark.parametrize(("call", "exc", "match"), BAD)
def test_bad_input(call, exc, match):
    rng = np.random.default_rng(13)
    A = rng.standard_normal((20, 8))
    y = rng.standard_normal(20)
    A0, y0 = A.copy(), y.copy()
    with pytest.raises(exc, match=match):
        call(A, y)
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(y, y0)


def test_numerically_zero_columns_are_left_out():
    # A pilot pattern can cancel a steering vector exactly: that column of the factor is made
    # of rounding errors. Scaling it up to the others' variance used to blow the estimate up
    # (NMSE 1e25); it must be treated as the zero column it is.
    rng = np.random.default_rng(16)
    As = [rng.standard_normal((8, 12)), rng.standard_normal((6, 10))]
    As[1][:, 3] = 1e-17 * rng.standard_normal(6)
    x = _kron_sparse(rng, (12, 10), 2)
    x.reshape(12, 10)[:, 3] = 0.0
    y = kron_matvec(As, x) + 1e-3 * rng.standard_normal(48)
    for method in ("svd", "am"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = kronecker_sbl(As, y, method=method)
        assert res.gammas[1][3] == 0.0
        assert np.sum((res.coef - x) ** 2) < 0.1 * np.sum(x**2)


def test_kronecker_sbl_estimator():
    from sparselin import KroneckerSBL

    rng = np.random.default_rng(15)
    As = [rng.standard_normal((10, 20)), rng.standard_normal((10, 20))]
    x = _kron_sparse(rng, (20, 20), 2)
    y = kron_matvec(As, x) + 1e-3 * rng.standard_normal(100)
    est = KroneckerSBL(method="am", max_iter=300).fit(As, y)
    res = kronecker_sbl(As, y, method="am", max_iter=300)
    np.testing.assert_allclose(est.coef_, res.coef)
    assert est.noise_var_ == res.noise_var and est.n_iter_ == res.n_iter
    np.testing.assert_allclose(est.predict(As), kron_matvec(As, res.coef))
    with pytest.raises(ValueError, match="2 factor matrices"):
        est.predict(As[:1])
    with pytest.raises(ValueError, match="method"):
        KroneckerSBL(method="em").fit(As, y)
    est = KroneckerSBL(method="am", coupling=(0.8, 0.5), prune=(1e-2, 1e-1)).fit(As, y)
    res = kronecker_sbl(As, y, method="am", coupling=(0.8, 0.5), prune=(1e-2, 1e-1))
    np.testing.assert_allclose(est.coef_, res.coef)
    # init_scale reaches the function (a low start changes the fit) and is validated
    est = KroneckerSBL(coupling=0.8, init_scale=3e-3).fit(As, y)
    res = kronecker_sbl(As, y, coupling=0.8, init_scale=3e-3)
    np.testing.assert_allclose(est.coef_, res.coef)
    assert est.n_iter_ == res.n_iter
    assert est.n_iter_ != KroneckerSBL(coupling=0.8).fit(As, y).n_iter_
    with pytest.raises(ValueError, match="init_scale"):
        KroneckerSBL(init_scale=0.0).fit(As, y)


def test_many_more_unknowns_than_measurements_converge_within_the_authors_cap():
    # 27 times more unknowns than measurements. Started from variances of 1 (the reference
    # codes' start, far above this signal's scale), EM needed about 230 iterations and the
    # authors' cap of 150 stopped it before it had pruned anything (NMSE about 1); started at
    # the power of y it converges well within that cap.
    rng = np.random.default_rng(0)
    As = [rng.standard_normal((8, 24)) for _ in range(3)]
    x = _kron_sparse(rng, (24, 24, 24), 2)
    y0 = kron_matvec(As, x)
    y = y0 + np.sqrt(np.mean(y0**2) / 100) * rng.standard_normal(y0.shape)
    for scale in (1.0, 1e-6, 1e6):  # the same run whatever the units of y
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            res = kronecker_sbl(As, scale * y, max_iter=150)
        assert res.converged and res.n_iter < 100
        assert np.sum((res.coef / scale - x) ** 2) < 1e-2 * np.sum(x**2)
        if scale == 1.0:
            ref = res
        else:
            assert res.n_iter == ref.n_iter
            np.testing.assert_allclose(res.coef / scale, ref.coef, rtol=1e-6, atol=1e-9)


def _clustered(rng, n, width):
    """A factor whose support is ``width`` neighbouring entries at a random place."""
    v = np.zeros(n)
    start = rng.integers(0, n - width + 1)
    v[start : start + width] = rng.standard_normal(width) + 0.5 * np.sign(
        rng.standard_normal(width)
    )
    return v


def test_pattern_coupled_beats_plain_on_clustered_supports():
    # Clusters of three neighbouring non-zeros at unknown places in each factor (clustered
    # angles), 10 dB: the coupled prior (PC-KroSBL) finds the clusters where plain AM-KroSBL
    # scatters its estimate. Fixed blocks do not fit clusters that straddle block borders.
    rng = np.random.default_rng(21)
    plain, coupled = [], []
    for _ in range(5):
        As = [rng.standard_normal((10, 30)), rng.standard_normal((10, 30))]
        x = np.kron(_clustered(rng, 30, 3), _clustered(rng, 30, 3))
        y0 = kron_matvec(As, x)
        y = y0 + np.sqrt(np.mean(y0**2) / 10) * rng.standard_normal(y0.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # The authors' cap of 150 iterations: AM often runs to it at 10 dB.
            a = kronecker_sbl(As, y, method="am", max_iter=150)
            b = kronecker_sbl(As, y, method="am", coupling=True, max_iter=150)
        plain.append(np.sum((a.coef - x) ** 2) / np.sum(x**2))
        coupled.append(np.sum((b.coef - x) ** 2) / np.sum(x**2))
    assert np.median(coupled) < 0.6 * np.median(plain)


def test_init_scale_scales_the_start_and_stays_scale_free(monkeypatch):
    # The first E-step sees init_scale times the power-matched variances, whatever the units
    # of y and of the columns (a column scaled by c starts at 1/c^2 of its variance).
    import sparselin.recovery._kronecker_sbl as ks
    from sparselin.recovery._sbl import unit_exponent

    rng = np.random.default_rng(3)
    As = [rng.standard_normal((6, 10)), rng.standard_normal((5, 9)) * np.arange(1, 10)]
    y = rng.standard_normal(30)
    seen = []

    def spy(Ak, Yt, gk, s2, xp):
        seen.append(_kron(gk))
        return kron_posterior(Ak, Yt, gk, s2, xp)

    monkeypatch.setattr(ks, "_posterior", spy)
    col2 = _kron([np.sum(A**2, axis=0) for A in As])
    for scale, init_scale in [(1.0, 1.0), (1.0, 1e-3), (1e5, 1e-3)]:
        seen.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            kronecker_sbl(As, scale * y, max_iter=1, init_scale=init_scale)
        # gamma_j ||a_j||^2 = init_scale ||y||^2 / prod N_i for every j, in the units EM
        # runs in (y and each factor scaled by a power of two, see kronecker_sbl).
        units = 4.0 ** (sum(unit_exponent(A, np) for A in As) - unit_exponent(scale * y, np))
        np.testing.assert_allclose(
            seen[0] * col2, units * init_scale * np.sum((scale * y) ** 2) / 90, rtol=1e-12
        )


def _irs_like(rng, snr_db):
    """A scaled-down IRS-MIMO channel in the angle domain (He & Joseph's PC-KroSBL setup):
    an IRS mode seen through 6 random +-1 reflection patterns, a single-MS-angle mode through
    3 QPSK pilots, a base-station array of 16, grids of 18 angles; clusters of 3 neighbouring
    angles in the IRS and base-station modes, channel variances far from 1."""
    G = 18

    def ula(n):
        theta = 2.0 * np.arange(G) / G - 1.0
        return np.exp(1j * np.pi * np.outer(np.arange(n), theta)) / np.sqrt(n)

    irs = ula(256)[:, :1] * ula(256).conj()
    patterns = (2.0 * (rng.random((256, 6)) > 0.5) - 1.0) / 16.0
    qpsk = np.array([1 + 1j, 1 - 1j, -1 + 1j, -1 - 1j]) / np.sqrt(12)
    As = [patterns.T @ irs, qpsk[rng.integers(0, 4, (6, 3))].T @ ula(6).conj(), ula(16)]

    def cluster():
        v = np.zeros(G, complex)
        v[rng.integers(0, G - 2) + np.arange(3)] = _randn(rng, 3, True)
        return v

    e = np.zeros(G)
    e[rng.integers(0, G)] = 1.0
    x = 800.0 * _kron([cluster(), e, cluster()])
    y0 = kron_matvec(As, x)
    s2 = np.mean(np.abs(y0) ** 2) / 10 ** (snr_db / 10)
    return As, x, y0 + np.sqrt(s2 / 2) * _randn(rng, y0.shape, True), s2


def test_pattern_coupled_from_a_low_start_finds_irs_clusters():
    # What made our PC-KroSBL miss the authors' IRS-MIMO figures was the start, not the
    # pruning: their code starts at gamma = 1, 1e-4 to 1e-2 of the power-matched variances of
    # those channels, and from there EM grows the variances of the best-correlated clusters
    # first. From the power-matched start (init_scale=1) it spreads over the grid (NMSE of x
    # 0.5 to 0.9 here, against 0.01 to 0.1 from 3e-3, on seeds 7, 8 and 9 alike).
    rng = np.random.default_rng(7)
    low, matched = [], []
    for _ in range(3):
        As, x, y, s2 = _irs_like(rng, 12)
        opts = dict(noise_var=s2, method="am", coupling=(0.8, 0, 0.8), max_iter=150)
        opts["prune"] = (1e-2, 1e-1, 1e-2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            a = kronecker_sbl(As, y, **opts).coef
            b = kronecker_sbl(As, y, init_scale=3e-3, **opts).coef
        matched.append(np.sum(np.abs(a - x) ** 2) / np.sum(np.abs(x) ** 2))
        low.append(np.sum(np.abs(b - x) ** 2) / np.sum(np.abs(x) ** 2))
    assert np.median(low) < 0.1 and np.median(low) < 0.5 * np.median(matched)


def test_couple_is_the_nonnegative_least_squares_fit(monkeypatch):
    # KKT conditions of min ||C g - t|| over g >= 0, independently of scipy's solver (the
    # floor, a separate step, switched off to read g back).
    from sparselin.recovery import _kronecker_sbl

    monkeypatch.setattr(_kronecker_sbl, "_COUPLED_FLOOR", 0.0)
    rng = np.random.default_rng(22)
    C = _coupling_matrix(12, 0.8)
    for _ in range(5):
        t = np.abs(rng.standard_normal(12)) * (rng.random(12) < 0.5)
        g = np.linalg.solve(C, _couple(t, C, np))
        assert np.all(g > -1e-9)
        grad = C.T @ (C @ np.maximum(g, 0) - t)
        active = g > 1e-9
        np.testing.assert_allclose(grad[active], 0.0, atol=1e-9)
        assert np.all(grad[~active] > -1e-9)


def test_coupled_variant_never_forms_the_kronecker_product():
    # Three factors 8 x 40: the dictionary would take 512 x 64000 x 8 B = 262 MB; a few EM
    # iterations of PC-KroSBL must stay within a few vectors of length 64000.
    import tracemalloc

    rng = np.random.default_rng(23)
    As = [rng.standard_normal((8, 40)) for _ in range(3)]
    x = np.kron(np.kron(_clustered(rng, 40, 3), _clustered(rng, 40, 2)), _clustered(rng, 40, 3))
    y = kron_matvec(As, x) + 1e-2 * rng.standard_normal(512)
    dense_bytes = 512 * 40**3 * 8
    for method in ("am", "svd"):
        tracemalloc.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                kronecker_sbl(As, y, method=method, coupling=(0.8, 0.0, 0.5), max_iter=3)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < dense_bytes / 20, f"{method}: peak {peak / 1e6:.1f} MB"


def test_coupled_svd_and_am_recover_clusters_in_three_factors():
    rng = np.random.default_rng(24)
    As = [
        rng.standard_normal((8, 18)),
        rng.standard_normal((6, 18)),
        rng.standard_normal((10, 18)),
    ]
    parts = [_clustered(rng, 18, 3), _clustered(rng, 18, 1), _clustered(rng, 18, 3)]
    x = np.kron(np.kron(parts[0], parts[1]), parts[2])
    y0 = kron_matvec(As, x)
    y = y0 + np.sqrt(np.mean(y0**2) / 10**2.5) * rng.standard_normal(y0.shape)  # 25 dB
    for method in ("am", "svd"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = kronecker_sbl(As, y, method=method, coupling=(0.8, 0.0, 0.8))
        assert np.sum((res.coef - x) ** 2) < 1e-2 * np.sum(x**2), method


def test_top_singular_vector_by_power_iteration_matches_svd():
    rng = np.random.default_rng(25)
    mat = rng.random((20, 50)) ** 4
    start = np.ones(20)
    u = _top_left_singular(mat, start, np)
    ref = np.abs(np.linalg.svd(mat)[0][:, 0])
    np.testing.assert_allclose(u, ref, atol=1e-10)
    # Top singular values 1 and 1 - 1e-9: the iteration cannot settle in its few steps, and
    # the SVD takes over (the answer is the first axis, exactly).
    u = _top_left_singular(np.diag([1.0 - 1e-9, 1.0]), np.ones(2), np)
    np.testing.assert_allclose(u, [0.0, 1.0], atol=1e-12)


def test_sbl_matches_ard_regression_where_the_models_agree():
    # Without an intercept, with vague Gamma(1e-6) hyperpriors, and noise learned, sklearn's
    # ARDRegression (MacKay updates) and EM-SBL solve the same stationarity equations for the
    # variances and the noise: on an overdetermined problem both reach the same fixed point.
    # (Underdetermined problems differ: ARD prunes at an absolute precision 1e4 and its MacKay
    # steps stop at another local optimum of the evidence than EM, keeping extra coefficients.)
    from sklearn.linear_model import ARDRegression

    for seed in range(3):
        rng = np.random.default_rng(seed)
        A = rng.standard_normal((60, 30))
        x = np.zeros(30)
        x[[2, 7, 19, 25]] = [1.5, -2.0, 1.0, 2.5]
        y = A @ x + 0.05 * rng.standard_normal(60)
        ard = ARDRegression(fit_intercept=False, tol=1e-12, max_iter=3000).fit(A, y)
        res = sbl(A, y, tol=1e-12, max_iter=5000)
        assert np.flatnonzero(res.coef).tolist() == np.flatnonzero(ard.coef_).tolist()
        np.testing.assert_allclose(res.coef, ard.coef_, rtol=1e-6, atol=1e-9)
        assert res.noise_var == pytest.approx(1.0 / ard.alpha_, rel=1e-4)


def test_sbl_and_kronecker_sbl_on_every_backend(backend):
    rng = np.random.default_rng(26)
    A = rng.standard_normal((30, 60))
    x = np.zeros(60)
    x[[4, 33]] = [1.0, -2.0]
    y = A @ x + 1e-3 * rng.standard_normal(30)
    ref = sbl(A, y)
    res = sbl(backend.asarray(A), backend.asarray(y))
    np.testing.assert_allclose(backend.to_host(res.coef), ref.coef, atol=1e-10)
    As = [rng.standard_normal((6, 12)), rng.standard_normal((5, 12))]
    yk = kron_matvec(As, np.kron(_clustered(rng, 12, 2), _clustered(rng, 12, 2)))
    for kw in ({"method": "svd"}, {"method": "am", "coupling": True}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ref = kronecker_sbl(As, yk, **kw)
            res = kronecker_sbl([backend.asarray(A) for A in As], backend.asarray(yk), **kw)
        np.testing.assert_allclose(backend.to_host(res.coef), ref.coef, atol=1e-10)
        for g, h in zip(res.gammas, ref.gammas, strict=True):
            np.testing.assert_allclose(backend.to_host(g), h, rtol=1e-8, atol=1e-300)
    if backend.on_device:
        # Device and host arrays mixed: refused, not silently moved.
        with pytest.raises(TypeError, match="different devices"):
            sbl(backend.asarray(A), y)


def test_one_validation_home_refuses_device_arrays_unless_supported(backend):
    rng = np.random.default_rng(27)
    A = backend.asarray(rng.standard_normal((5, 4)))
    y = backend.asarray(rng.standard_normal(5))
    out_A, out_y, dtype = check_problem(A, y, allow_2d_y=False, device=True)
    assert out_A.shape == (5, 4) and dtype == np.float64
    if backend.on_device:
        with pytest.raises(TypeError, match="A must be a dense NumPy array"):
            check_problem(A, y, allow_2d_y=False)


@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize(
    "sA, sy", [(1.0, 100.0), (1.0, 1e3), (1.0, 1e-150), (1.0, 1e150), (1e150, 1.0), (1e-150, 1.0)]
)
def test_sbl_is_equivariant_to_the_scale_of_y_and_a(cplx, sA, sy):
    # EM is equivariant under y -> s y and A -> A D, but the start gamma = m / ||a_j||^2 did
    # not scale with y: at 100 y EM settled on "everything is noise" and reported convergence
    # with 1 of the 3 atoms, at 1000 y after two iterations with all 80 coordinates kept;
    # at 1e+-150 the posterior variances underflowed, with the same outcome. The start now
    # scales with y and EM runs in units where y and the columns are near 1 (powers of two):
    # the same iterations, the results scaled back exactly.
    rng = np.random.default_rng(12)
    A = _randn(rng, (30, 80), cplx)
    x = np.zeros(80, dtype=A.dtype)
    x[[3, 30, 70]] = [1.0, -2.0, 1.5]
    y = A @ x + 0.01 * _randn(rng, 30, cplx)
    d = np.exp(rng.uniform(-2, 2, 80)) * sA  # uneven column scales as well
    ref = sbl(A, y)
    got = sbl(A * d, y * sy)
    assert got.converged and got.n_iter == ref.n_iter
    assert np.count_nonzero(got.coef) == np.count_nonzero(ref.coef) == 3
    np.testing.assert_allclose(got.coef * d / sy, ref.coef, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.gamma * d**2 / sy**2, ref.gamma, rtol=1e-9, atol=1e-14)
    assert got.noise_var / sy**2 == pytest.approx(ref.noise_var, rel=1e-9)
    # the cost of y, not of its scaled copy: log|Sigma_y| moves by 2 m log(sy)
    np.testing.assert_allclose(np.array(got.cost) - 60 * np.log(sy), ref.cost, rtol=1e-9)
    # a given noise variance is scaled with y
    fixed = sbl(A * d, y * sy, noise_var=1e-4 * sy**2)
    np.testing.assert_allclose(fixed.coef * d / sy, sbl(A, y, noise_var=1e-4).coef, atol=1e-10)


@pytest.mark.parametrize("method", ["svd", "am"])
@pytest.mark.parametrize("which, s", [("y", 1e-150), ("y", 1e150), ("A", 1e-150), ("A", 1e150)])
def test_kronecker_sbl_at_extreme_scales(method, which, s):
    # At 1e+-150 (y, or one factor) the posterior variances underflowed and EM "converged"
    # after one iteration on a wrong x, or the eigensolver failed (LinAlgError) on an
    # overflowing Gram matrix. y and each factor are now scaled by a power of two.
    rng = np.random.default_rng(13)
    F = [rng.standard_normal((8, 16)), rng.standard_normal((6, 12))]
    a = np.zeros(16)
    a[[2, 9]] = [1.0, -2.0]
    b = np.zeros(12)
    b[[1, 7]] = [1.5, 1.0]
    y = kron_matvec(F, np.kron(a, b)) + 0.01 * rng.standard_normal(48)
    ref = kronecker_sbl(F, y, method=method)
    if which == "y":
        got, back = kronecker_sbl(F, y * s, method=method, noise_var=None), 1 / s
    else:
        got, back = kronecker_sbl([F[0], F[1] * s], y, method=method), s
    assert got.converged and got.n_iter == ref.n_iter
    np.testing.assert_allclose(got.coef * back, ref.coef, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got.gamma * back**2, ref.gamma, rtol=1e-8, atol=1e-14)
    shift = 2 * 48 * np.log(s) if which == "y" else 0.0
    scale = np.abs(ref.cost).max()  # the cost crosses 0: compare on its overall scale
    np.testing.assert_allclose(np.array(got.cost) - shift, ref.cost, rtol=0, atol=1e-8 * scale)
