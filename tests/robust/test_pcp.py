"""robust_pca with method="pcp" (inexact ALM, partial SVDs), its bad-input table and dispatch.

References: the synthetic recovery problems of Lin, Chen and Ma (rank-r L0 = X Y^T with N(0, 1)
factors, a Bernoulli support of S0 with values U[-500, 500]) whose truth is known; the same
solver with full SVDs (numpy.linalg.svd) every iteration; and the thresholds of
shared/research/robust-pca.md section 4.1.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from sparselin._threads import blas_limited
from sparselin.robust import RobustPCAResult, robust_pca
from sparselin.robust._pcp import DENSE_FRACTION, _svt_svd, pcp_core
from sparselin.robust._rsvddpd import _rsvddpd_core
from tests.test_one_blas import watch_scipy_linalg


def problem(m, n, r, rho, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    S0 = np.zeros((m, n))
    support = rng.random((m, n)) < rho
    S0[support] = rng.uniform(-500, 500, int(support.sum()))
    return L0.astype(dtype), S0.astype(dtype)


def rel(A, B):
    return float(np.linalg.norm(A - B) / np.linalg.norm(B))


@pytest.fixture(scope="module")
def small():
    return problem(200, 200, 10, 0.05)


@pytest.fixture(scope="module")
def medium():
    return problem(120, 100, 4, 0.05, seed=20)


@pytest.mark.parametrize("tol, bound", [(1e-7, 5e-6), (1e-8, 1e-6)])
def test_exact_recovery_200(small, tol, bound):
    L0, S0 = small
    M = L0 + S0
    res = robust_pca(M, tol=tol, random_state=0)
    assert isinstance(res, RobustPCAResult)
    assert res.converged and res.method == "pcp"
    assert rel(res.low_rank, L0) <= bound
    assert rel(res.sparse, S0) <= bound
    assert res.rank == 10
    # The support of S is recovered exactly (soft thresholding gives exact zeros).
    assert np.array_equal(res.sparse != 0, S0 != 0)
    # In line with the reference (about 20 iterations on LCM's problems).
    assert 12 <= res.n_iter <= 30
    assert res.history.shape == (res.n_iter,) and res.history[-1] <= tol
    # The triplets are those of low_rank, and the residual is what history says.
    np.testing.assert_allclose((res.U * res.s) @ res.Vt, res.low_rank, atol=1e-9)
    np.testing.assert_allclose(res.U.T @ res.U, np.eye(10), atol=1e-10)
    residual = np.linalg.norm(M - res.low_rank - res.sparse) / np.linalg.norm(M)
    assert residual == pytest.approx(res.history[-1], rel=1e-4)
    assert res.lam == pytest.approx(1 / np.sqrt(200))


def test_exact_recovery_500_reference_iterations():
    """The research notes' case: 500 x 500, rank 25, 5% corruptions (about 20 iterations)."""
    L0, S0 = problem(500, 500, 25, 0.05, seed=1)
    res = robust_pca(L0 + S0, random_state=0)
    assert res.converged and res.rank == 25
    assert 15 <= res.n_iter <= 26
    assert rel(res.low_rank, L0) <= 5e-6
    assert np.array_equal(res.sparse != 0, S0 != 0)
    res8 = robust_pca(L0 + S0, tol=1e-8, random_state=0)
    assert rel(res8.low_rank, L0) <= 1e-6 and res8.n_iter <= res.n_iter + 6


def _core(M, svd, tol=1e-8, observed=None, seed=0):
    with blas_limited():  # as robust_pca runs small problems
        return pcp_core(
            M,
            1 / np.sqrt(max(M.shape)),
            tol=tol,
            max_iter=200,
            observed=observed,
            rank_cap=None,
            rng=np.random.default_rng(seed),
            xp=np,
            svd=svd,
        )


@pytest.mark.parametrize("shape, r", [((150, 150), 6), ((80, 200), 4), ((200, 70), 3)])
def test_partial_svd_equals_full_svd(shape, r):
    L0, S0 = problem(*shape, r, 0.05, seed=2)
    M = (L0 + S0) / 512  # entries of order one, as robust_pca hands them to the core
    full = _core(M, "full")
    partial = _core(M, "partial")
    auto = _core(M, "auto")
    assert full.converged and partial.converged and auto.converged
    for out in (partial, auto):
        assert abs(out.n_iter - full.n_iter) <= 5
        assert rel(out.L, full.L) <= 10 * 1e-8 * 100  # both within a few tol of the optimum
        assert rel(out.L, L0 / 512) <= 1e-6
    # The partial solver never computed more than min(m, n) values and kept at most what it
    # computed; it never fell back to a dense SVD on this low-rank problem.
    for computed, kept in partial.svd_sizes:
        assert kept <= computed < min(shape)
    assert max(c for c, _ in auto.svd_sizes) < DENSE_FRACTION * min(shape)
    assert all(c == min(shape) for c, _ in full.svd_sizes)


@pytest.mark.parametrize("rank, sv", [(1, 10), (5, 20), (0, 10)])
def test_partial_svd_is_exact_on_rank_deficient_iterates(rank, sv):
    """Late PCP iterates are exactly low-rank; asking for more values than the rank must still
    give the exact leading triplets (block Krylov and fixed accuracy once failed there)."""
    rng = np.random.default_rng(rank)
    G = rng.standard_normal((150, rank)) @ rng.standard_normal((rank, 110)) if rank else None
    if G is None:
        G = np.zeros((150, 110))
    U, s, Vt, dense = _svt_svd(G, sv, "partial", np.random.default_rng(0), np)
    assert not dense and s.shape == (sv,)
    s_ref = np.linalg.svd(G, compute_uv=False)[:sv]
    np.testing.assert_allclose(s, s_ref, atol=1e-12 * max(1.0, s_ref[0]))
    assert np.all(s[rank:] == 0)
    threshold = 0.5
    keep = s > threshold
    A = (U[:, keep] * (s[keep] - threshold)) @ Vt[keep]
    Uf, sf, Vtf = np.linalg.svd(G, full_matrices=False)
    kf = sf > threshold
    A_ref = (Uf[:, kf] * (sf[kf] - threshold)) @ Vtf[kf]
    np.testing.assert_allclose(A, A_ref, atol=1e-12 * max(1.0, s_ref[0]))


def test_pure_low_rank_and_pure_sparse_inputs():
    L0, S0 = problem(150, 120, 3, 0.05, seed=3)
    res = robust_pca(L0, random_state=0)
    assert res.converged and res.rank == 3
    assert rel(res.low_rank, L0) <= 5e-6
    assert np.linalg.norm(res.sparse) <= 5e-6 * np.linalg.norm(L0)
    res = robust_pca(S0, random_state=0)  # rank-0 truth: D = S0
    assert res.converged
    assert np.linalg.norm(res.low_rank) <= 1e-3 * np.linalg.norm(S0)
    assert rel(res.sparse, S0) <= 1e-3


def test_zero_matrix():
    res = robust_pca(np.zeros((30, 20)))
    assert res.converged and res.n_iter == 0 and res.rank == 0
    assert not res.low_rank.any() and not res.sparse.any()
    assert res.U.shape == (30, 0) and res.s.shape == (0,) and res.Vt.shape == (0, 20)


@pytest.mark.parametrize("how", ["nan", "mask", "int_mask", "masked_array"])
def test_missing_entries_are_filled_in(how):
    L0, S0 = problem(200, 200, 5, 0.05, seed=4)
    M = L0 + S0
    missing = np.random.default_rng(5).random(M.shape) < 0.2
    kwargs = {}
    if how == "nan":
        M[missing] = np.nan
    elif how == "mask":
        M[missing] = 1e300  # garbage at unobserved entries is ignored
        kwargs["mask"] = ~missing
    elif how == "int_mask":
        M[missing] = np.inf
        kwargs["mask"] = (~missing).astype(np.int8)
    else:
        M = np.ma.MaskedArray(M, mask=missing)
    before = M.copy()
    res = robust_pca(M, random_state=0, **kwargs)
    assert res.converged
    # Error over all entries, the unobserved ones included.
    assert rel(res.low_rank, L0) <= 1e-5
    assert np.all(res.sparse[missing] == 0)
    assert np.array_equal(res.sparse[~missing] != 0, S0[~missing] != 0)
    np.testing.assert_array_equal(np.ma.getdata(M), np.ma.getdata(before))


def test_missing_entries_nan_and_mask_agree():
    L0, S0 = problem(100, 80, 3, 0.05, seed=6)
    missing = np.random.default_rng(7).random(L0.shape) < 0.15
    M = L0 + S0
    with_nan = M.copy()
    with_nan[missing] = np.nan
    a = robust_pca(with_nan, random_state=0)
    b = robust_pca(M, mask=~missing, random_state=0)
    c = robust_pca(with_nan, mask=np.ones(M.shape, bool), random_state=0)  # NaN wins over mask
    np.testing.assert_array_equal(a.low_rank, b.low_rank)
    np.testing.assert_array_equal(a.low_rank, c.low_rank)


def test_outside_the_regime_is_reported():
    """40% corruptions: PCP's optimum is not the truth; the result must not look like success."""
    L0, S0 = problem(120, 120, 6, 0.40, seed=8)
    # Either the regime warning (a high-rank L) or a ConvergenceWarning (a UserWarning too):
    # the solver stalls on the way to the high-rank optimum, whose dual residual stays large.
    with pytest.warns(UserWarning, match="outside the regime|stalled"):
        res = robust_pca(L0 + S0, random_state=0)
    assert (res.rank > 60 and rel(res.low_rank, L0) > 0.1) or not res.converged
    # Rank 6 with 5% corruptions is inside it: no such warning.
    L0, S0 = problem(120, 120, 6, 0.05, seed=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good = robust_pca(L0 + S0, random_state=0)
    assert good.converged and rel(good.low_rank, L0) <= 5e-6


def _small_problem(m, n, r, rho, seed):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    S0 = np.where(rng.random((m, n)) < rho, rng.uniform(-10, 10, (m, n)), 0.0)
    return L0, S0


@pytest.mark.parametrize("seed", [1, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("missing", [False, True])
def test_no_false_convergence_at_a_frozen_feasible_point(seed, dtype, missing):
    """Regression: the reference's primal-only test accepted frozen, non-optimal iterates.

    On these 60 x 40, rank-3, 5% problems the convex PCP problem recovers L0 (checked with
    cvxpy/Clarabel: 7.7e-9 for a seed of this family), but mu grew faster than the
    multiplier converged and the iterates froze at a feasible point: "converged" with L
    3.3e-2 (seed 1) and 3.6e-3 (seed 3) away from L0. The dual residual exposes it.
    """
    L0, S0 = _small_problem(60, 40, 3, 0.05, seed)
    M = (L0 + S0).astype(dtype)
    if missing:
        M[np.random.default_rng(seed + 100).random(M.shape) < 0.1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = robust_pca(M, random_state=0)
    assert res.converged and res.rank == 3
    assert rel(res.low_rank.astype(np.float64), L0) <= (1e-6 if dtype == np.float64 else 2e-5)


def test_non_convergence_warns_and_says_so(medium):
    L0, S0 = medium
    with pytest.warns(ConvergenceWarning, match="did not converge in 3 iterations"):
        res = robust_pca(L0 + S0, max_iter=3, random_state=0)
    assert not res.converged and res.n_iter == 3 and res.history.shape == (3,)
    assert res.history[-1] > 1e-7


def test_float32():
    L0, S0 = problem(200, 200, 10, 0.05, seed=9, dtype=np.float32)
    M = L0 + S0
    res = robust_pca(M, random_state=0)
    assert res.converged
    for x in (res.low_rank, res.sparse, res.U, res.s, res.Vt):
        assert x.dtype == np.float32
    assert rel(res.low_rank.astype(np.float64), L0.astype(np.float64)) <= 1e-5
    # The default tol is raised to float32's floor (8 eps) silently: the residual reached is
    # below that floor but need not reach 1e-7.
    assert res.history[-1] <= 8 * np.finfo(np.float32).eps
    # A smaller explicit tol is raised too, with a warning, and still converges.
    with pytest.warns(UserWarning, match="below what float32 resolves"):
        res2 = robust_pca(M, tol=1e-9, random_state=0)
    assert res2.converged and res2.n_iter == res.n_iter


def test_stall_stops_early_and_is_reported(medium):
    # float32 data with the floor bypassed (the core directly): the residual stalls at the
    # rounding level, and the solver stops long before max_iter, saying so.
    L0, S0 = medium
    D = ((L0 + S0) / 1024).astype(np.float32)
    out = pcp_core(
        D, 0.1, tol=1e-12, max_iter=1000, observed=None, rank_cap=None,
        rng=np.random.default_rng(0), xp=np,
    )  # fmt: skip
    assert out.stalled and not out.converged and out.n_iter < 120


def test_integer_input_is_computed_in_float64():
    rng = np.random.default_rng(10)
    L0 = rng.integers(-3, 4, (60, 2)) @ rng.integers(-3, 4, (2, 50))
    S0 = np.where(rng.random(L0.shape) < 0.05, 100, 0)
    res = robust_pca(L0 + S0, random_state=0)
    assert res.low_rank.dtype == np.float64
    assert res.converged and res.rank == 2
    assert rel(res.low_rank, L0.astype(float)) <= 5e-6


@pytest.mark.parametrize("c", [2.0**300, 2.0**-300])
def test_scale_equivariance_exact_for_powers_of_two(medium, c):
    L0, S0 = medium
    M = L0 + S0
    a = robust_pca(M, random_state=0)
    b = robust_pca(M * c, random_state=0)
    np.testing.assert_array_equal(b.low_rank, a.low_rank * c)
    np.testing.assert_array_equal(b.sparse, a.sparse * c)
    np.testing.assert_array_equal(b.s, a.s * c)


@pytest.mark.parametrize("c", [1e150, 1e-150])
def test_extreme_scales(medium, c):
    L0, S0 = medium
    res = robust_pca((L0 + S0) * c, random_state=0)
    assert res.converged and np.isfinite(res.low_rank).all()
    assert rel(res.low_rank / c, L0) <= 5e-6


def test_float32_extreme_scale():
    L0, S0 = problem(100, 100, 4, 0.05, seed=11)
    c = np.float32(1e-30)
    M = (L0 + S0).astype(np.float32) * c
    res = robust_pca(M, random_state=0)
    assert res.converged and res.low_rank.dtype == np.float32
    assert rel(res.low_rank.astype(np.float64) / float(c), L0) <= 1e-4


@pytest.mark.parametrize("c", [1e-40, 1e-43])
def test_float32_subnormal_input(c):
    """Regression: the power-of-two scale (2**133 and more) overflowed float32, and the run
    died in the first SVD (OverflowError: cannot convert float infinity to integer)."""
    L0, S0 = problem(60, 50, 3, 0.05, seed=12)
    M = ((L0 + S0) * c).astype(np.float32)  # subnormal: about 4 (1e-40) or 1 digit left
    before = M.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the digits are gone
        res = robust_pca(M, random_state=0)
    np.testing.assert_array_equal(M, before)
    assert res.low_rank.dtype == np.float32 and np.isfinite(res.low_rank).all()
    # The parts are at M's scale and sum to M (to the precision M has).
    scale = np.abs(M).max()
    assert np.abs(res.low_rank + res.sparse - M).max() <= 1e-2 * scale
    if c == 1e-40:
        assert rel(res.low_rank.astype(np.float64) / c, L0) <= 1e-3


def test_transpose_gives_transposes(medium):
    L0, S0 = medium
    M = (L0 + S0)[:, :80]
    a = robust_pca(M, random_state=0)
    b = robust_pca(M.T, random_state=0)
    assert a.lam == b.lam
    assert rel(b.low_rank.T, a.low_rank) <= 1e-6
    assert rel(b.sparse.T, a.sparse) <= 1e-6


def test_rank_cap(medium):
    L0, S0 = medium
    M = L0 + S0
    capped = robust_pca(M, rank=4, random_state=0)
    assert capped.converged and rel(capped.low_rank, L0) <= 5e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a heuristic below the rank
        low = robust_pca(M, rank=2, random_state=0, max_iter=60)
    assert low.rank <= 2


def test_reproducible_with_random_state(medium):
    L0, S0 = medium
    a = robust_pca(L0 + S0, random_state=3)
    b = robust_pca(L0 + S0, random_state=np.random.default_rng(3))
    np.testing.assert_array_equal(a.low_rank, b.low_rank)


def test_custom_lam(medium):
    L0, S0 = medium
    # A huge lam makes S expensive: S = 0 and L = M (rank grows); a moderate one still works.
    res = robust_pca(L0 + S0, lam=1.5 / np.sqrt(120), random_state=0)
    assert res.lam == pytest.approx(1.5 / np.sqrt(120))
    assert res.converged
    res = robust_pca(L0[:50, :50], lam=100.0, random_state=0)
    assert not res.sparse.any()


def test_input_never_modified(medium):
    L0, S0 = medium
    M = L0 + S0
    before = M.copy()
    res = robust_pca(M, random_state=0)
    np.testing.assert_array_equal(M, before)
    assert not np.shares_memory(res.low_rank, M) and not np.shares_memory(res.sparse, M)


def test_no_scipy_blas_in_the_loop(medium):
    L0, S0 = medium
    M = L0 + S0
    robust_pca(M, random_state=0)  # warm-up
    with watch_scipy_linalg() as calls:
        robust_pca(M, random_state=0)
    assert calls.outside == []


def test_backends(backend, medium):
    L0, S0 = medium
    M = L0 + S0
    missing = np.random.default_rng(12).random(M.shape) < 0.1
    M_nan = M.copy()
    M_nan[missing] = np.nan
    for host in (M, M_nan, M.astype(np.float32)):
        ref = robust_pca(host, random_state=0)
        dev = backend.asarray(host)
        res = robust_pca(dev, random_state=0)
        for x in (res.low_rank, res.sparse, res.U, res.s, res.Vt):
            assert type(x) is type(dev)
            assert x.dtype == host.dtype
        tol = 1e-6 if host.dtype == np.float64 else 1e-4
        assert rel(backend.to_host(res.low_rank).astype(float), ref.low_rank.astype(float)) < tol
        assert res.n_iter == pytest.approx(ref.n_iter, abs=2)
        assert res.converged
    mask = backend.asarray(~missing)
    res = robust_pca(backend.asarray(M), mask=mask, random_state=0)
    ref = robust_pca(M, mask=~missing, random_state=0)
    assert rel(backend.to_host(res.low_rank), ref.low_rank) < 1e-6


def test_rsvddpd_dispatch():
    rng = np.random.default_rng(13)
    U0, _ = np.linalg.qr(rng.standard_normal((60, 2)))
    V0, _ = np.linalg.qr(rng.standard_normal((40, 2)))
    M = (U0 * [10.0, 5.0]) @ V0.T + 0.01 * rng.standard_normal((60, 40))
    M[rng.random(M.shape) < 0.05] = 30.0
    res = robust_pca(M, method="rsvddpd", rank=2, alpha=0.5, random_state=0)
    ref = _rsvddpd_core(M, 2, alpha=0.5, tol=1e-7, max_iter=100, random_state=0, xp=np)
    assert res.method == "rsvddpd" and res.lam is None and res.rank == 2
    np.testing.assert_allclose(res.s, ref.s)
    np.testing.assert_allclose(res.low_rank, (ref.U * ref.s) @ ref.Vt)
    np.testing.assert_allclose(res.sparse, M - res.low_rank)
    assert res.weights.shape == M.shape and res.converged == ref.converged
    assert res.history.shape == (2,) and res.history[1] <= res.history[0]
    # The robust fit stays near the clean matrix where the plain SVD is pulled away.
    clean = (U0 * [10.0, 5.0]) @ V0.T
    Uf, sf, Vtf = np.linalg.svd(M, full_matrices=False)
    assert rel(res.low_rank, clean) < 0.5 * rel((Uf[:, :2] * sf[:2]) @ Vtf[:2], clean)


_M = np.arange(1.0, 13.0).reshape(4, 3)


def _with(value, where=(0, 0)):
    M = _M.copy()
    M[where] = value
    return M


BAD = [
    # (M, kwargs, error, message)
    (_with(np.inf), {}, ValueError, "infinity"),
    (_with(-np.inf), {"mask": np.ones((4, 3), bool)}, ValueError, "infinity at observed"),
    (_with(np.nan), {"method": "rsvddpd", "rank": 1}, ValueError, "NaN"),
    (_M, {"method": "rsvddpd", "rank": 1, "mask": np.ones((4, 3), bool)}, ValueError, "mask"),
    (np.full((4, 3), np.nan), {}, ValueError, "no observed entry"),
    (_M, {"mask": np.zeros((4, 3), bool)}, ValueError, "no observed entry"),
    (np.arange(5.0), {}, ValueError, "2-D"),
    (np.zeros((0, 3)), {}, ValueError, "non-empty"),
    (np.ones((2, 2, 2)), {}, ValueError, "2-D"),
    (_M.astype(complex), {}, TypeError, "real"),
    (np.array([["a", "b"]]), {}, TypeError, "numbers"),
    ("matrix", {}, TypeError, "M must be"),
    (_M, {"lam": 0.0}, ValueError, "lam"),
    (_M, {"lam": -1.0}, ValueError, "lam"),
    (_M, {"lam": np.inf}, ValueError, "lam"),
    (_M, {"lam": "1"}, TypeError, "lam"),
    (_M, {"rank": 0}, ValueError, "rank"),
    (_M, {"rank": 4}, ValueError, "rank"),
    (_M, {"rank": 1.5}, TypeError, "rank"),
    (_M, {"method": "rsvddpd"}, ValueError, "needs rank"),
    (_M, {"tol": 0.0}, ValueError, "tol"),
    (_M, {"tol": -1e-7}, ValueError, "tol"),
    (_M, {"tol": 1.0}, ValueError, "tol"),
    (_M, {"max_iter": 0}, ValueError, "max_iter"),
    (_M, {"max_iter": 2.0}, TypeError, "max_iter"),
    (_M, {"alpha": -0.1}, ValueError, "alpha"),
    (_M, {"alpha": 1.5}, ValueError, "alpha"),
    (_M, {"method": "ialm"}, ValueError, "method must be one of"),
    (_M, {"method": None}, ValueError, "method must be one of"),
    (_M, {"mask": np.ones((3, 4), bool)}, ValueError, "mask must have M's shape"),
    (_M, {"mask": np.full((4, 3), 2)}, ValueError, "mask must hold only"),
    (_M, {"mask": np.full((4, 3), "x")}, TypeError, "mask must be a boolean"),
    (_M, {"mask": "all"}, TypeError, "mask must be a boolean"),
    (_M, {"random_state": -1}, ValueError, "random_state"),
    (_M, {"random_state": "seed"}, TypeError, "random_state"),
]


@pytest.mark.parametrize("M, kwargs, error, match", BAD)
def test_bad_input(M, kwargs, error, match):
    M_before = M.copy() if isinstance(M, np.ndarray) else M
    kw_before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    with pytest.raises(error, match=match):
        robust_pca(M, **kwargs)
    if isinstance(M, np.ndarray):
        np.testing.assert_array_equal(M, M_before)
    for k, v in kwargs.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, kw_before[k])


def test_sparse_matrix_is_refused():
    import scipy.sparse as sp

    with pytest.raises(TypeError, match="dense array"):
        robust_pca(sp.random(10, 8, density=0.3, format="csr"))


def test_repr(medium):
    L0, S0 = medium
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = robust_pca(L0 + S0, random_state=0)
    text = repr(res)
    assert "method='pcp'" in text and "converged=True" in text and "rank=" in text


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 40),
    n=st.integers(1, 40),
    r=st.integers(0, 4),
    rho=st.sampled_from([0.0, 0.05, 0.2]),
    missing=st.sampled_from([0.0, 0.1]),
    exponent=st.integers(-120, 120),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_properties(m, n, r, rho, missing, exponent, dtype, seed):
    """Whatever the shape, rank, scale or precision: the parts add up to M on the observed
    entries as far as the reported residual says, S is zero off them, the triplets are those
    of L, nothing is NaN, and M is unchanged."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** (exponent / 10 if dtype == np.float32 else exponent)
    L0 = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    S0 = np.where(rng.random((m, n)) < rho, rng.uniform(-20, 20, (m, n)), 0.0)
    M = ((L0 + S0) * scale).astype(dtype)
    unobserved = rng.random((m, n)) < missing
    unobserved[0, 0] = False  # at least one observed entry
    M[unobserved] = np.nan
    before = M.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # regime and convergence warnings are not the point
        res = robust_pca(M, random_state=seed)
    np.testing.assert_array_equal(M, before)
    assert res.low_rank.dtype == res.sparse.dtype == dtype
    assert np.isfinite(res.low_rank).all() and np.isfinite(res.sparse).all()
    assert np.all(res.sparse[unobserved] == 0)
    obs = ~unobserved
    M64 = M.astype(np.float64)
    norm = np.linalg.norm(M64[obs])
    if norm:
        R = M64 - res.low_rank.astype(np.float64) - res.sparse.astype(np.float64)
        assert np.linalg.norm(R[obs]) / norm <= res.history[-1] * 1.01 + 30 * np.finfo(dtype).eps
    if res.converged and norm:
        assert res.history[-1] <= max(1e-7, 8 * np.finfo(dtype).eps)
    assert res.rank == res.s.shape[0] <= min(m, n)
    if res.rank:
        assert np.all(np.diff(res.s.astype(np.float64)) <= 0) and res.s.min() > 0
        L = (res.U.astype(np.float64) * res.s.astype(np.float64)) @ res.Vt.astype(np.float64)
        atol = 1e3 * np.finfo(dtype).eps * float(res.s[0])
        np.testing.assert_allclose(L, res.low_rank.astype(np.float64), atol=atol)
