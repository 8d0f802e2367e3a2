"""robust_pca (PCP and rSVDdpd) and RobustPCA on dask arrays: the in-memory result, no
graph growth over the iterations, clear errors for chunkings and entries that cannot work."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from sparselin.estimators import RobustPCA
from sparselin.robust import robust_pca

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


def _corrupted(m, n, rank=3, frac=0.05, seed=0):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
    S0 = np.where(rng.random((m, n)) < frac, rng.choice([-8.0, 8.0], (m, n)), 0.0)
    return L0, S0, L0 + S0


def _run(M, *, max_iter=None, **kwargs):
    """robust_pca, silencing the ConvergenceWarning of a run cut short by max_iter.

    Comparing the dask and in-memory iterates after the same few iterations tests the
    same thing as after convergence (every step is replayed), at a fraction of the time.
    """
    with warnings.catch_warnings():
        if max_iter is not None:
            warnings.simplefilter("ignore", ConvergenceWarning)
        return robust_pca(M, max_iter=max_iter, **kwargs)


def _tol(dtype):
    return 2e-4 if dtype == np.float32 else 1e-9


def _assert_same(res, ref, dtype):
    tol = _tol(dtype)
    L, S = dask.compute(res.low_rank, res.sparse)
    scale = np.abs(ref.low_rank).max()
    np.testing.assert_allclose(L, ref.low_rank, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(S, ref.sparse, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(res.s, ref.s, rtol=0, atol=tol * ref.s[0])
    assert L.dtype == ref.low_rank.dtype and res.s.dtype == ref.s.dtype
    assert res.rank == ref.rank and res.converged == ref.converged
    assert abs(res.n_iter - ref.n_iter) <= (1 if dtype == np.float32 else 0)
    # U diag(s) Vt is the low-rank part, and the factors agree with the in-memory ones
    # (compared as products: a dense SVD may pick other signs).
    U = res.U.compute()
    np.testing.assert_allclose((U * res.s) @ res.Vt, L, atol=tol * scale)
    np.testing.assert_allclose(U @ (U.T @ ref.U), ref.U, atol=50 * tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "chunks"), [((400, 60), (200, 60)), ((60, 400), (60, 150))])
def test_pcp_equals_in_memory(shape, chunks, dtype):
    _, _, M = _corrupted(*shape)
    M = M.astype(dtype)
    before = M.copy()
    # Converged on the tall float64 case; the same first iterations elsewhere.
    max_iter = None if shape[0] > shape[1] and dtype == np.float64 else 6
    with dask.config.set(scheduler="threads"):
        res = _run(da.from_array(M, chunks=chunks), random_state=4, max_iter=max_iter)
    ref = _run(M, random_state=4, max_iter=max_iter)
    assert isinstance(res.low_rank, da.Array) and isinstance(res.sparse, da.Array)
    assert isinstance(res.U, da.Array) and res.U.chunks[0] == da.from_array(M, chunks).chunks[0]
    assert isinstance(res.s, np.ndarray) and isinstance(res.Vt, np.ndarray)
    assert res.low_rank.chunks == da.from_array(M, chunks=chunks).chunks
    _assert_same(res, ref, dtype)
    np.testing.assert_allclose(
        res.history, ref.history, atol=1e-5 if dtype == np.float32 else 1e-9
    )
    np.testing.assert_array_equal(M, before)


def test_pcp_missing_entries_mask_and_scaled_input():
    L0, _, M = _corrupted(300, 40, seed=1)
    rng = np.random.default_rng(1)
    M = M * 1e-150  # the power-of-two scaling path
    M[rng.random(M.shape) < 0.08] = np.nan
    mask = rng.random(M.shape) > 0.05
    mask[0, 0] = False
    M[0, 0] = np.inf  # unobserved (masked out): allowed
    ref = _run(M, mask=mask, random_state=2, max_iter=5)
    for dmask in (mask, da.from_array(mask.astype(np.int8), chunks=(50, 40))):
        res = _run(da.from_array(M, chunks=(150, 40)), mask=dmask, random_state=2, max_iter=5)
        L, S = dask.compute(res.low_rank, res.sparse)
        np.testing.assert_allclose(L, ref.low_rank, rtol=0, atol=1e-9 * np.abs(L0).max() * 1e-150)
        np.testing.assert_array_equal(S == 0, ref.sparse == 0)
        assert np.all(S[~mask | np.isnan(M)] == 0)
        np.testing.assert_allclose(res.history, ref.history, atol=1e-9)


def test_pcp_dense_branch_rank_cap_and_zero():
    # min(m, n) = 24: the first partial SVD asks for 10 >= 0.35 * 24 values, so the
    # in-memory solver takes dense SVDs; the dask path takes TSQR SVDs there.
    _, _, M = _corrupted(500, 24, rank=2, seed=3)
    res = _run(da.from_array(M, chunks=(250, 24)), random_state=0, max_iter=4)
    _assert_same(res, _run(M, random_state=0, max_iter=4), np.float64)
    capped = _run(da.from_array(M, chunks=(250, 24)), rank=1, random_state=0, max_iter=4)
    _assert_same(capped, _run(M, rank=1, random_state=0, max_iter=4), np.float64)
    assert capped.rank == 1
    Z = robust_pca(da.zeros((200, 30), chunks=(50, 30)), random_state=0)
    assert Z.rank == 0 and Z.n_iter == 0 and Z.converged
    assert not np.any(Z.low_rank.compute()) and not np.any(Z.sparse.compute())


def _graph_size(x):
    return len(dict(x.__dask_graph__()))


def test_graph_does_not_grow_with_iterations():
    _, _, M = _corrupted(300, 50, seed=5)
    X = da.from_array(M, chunks=(60, 50))
    sizes = {}
    for it in (2, 6):
        res = _run(X, max_iter=it, tol=1e-12, random_state=0)
        assert res.n_iter == it
        sizes[it] = (_graph_size(res.low_rank), _graph_size(res.sparse), _graph_size(res.U))
    assert sizes[2] == sizes[6]
    # S: the persisted iterate (one key per chunk) and its exact unscaling (M is scaled by a
    # power of two); L: formed per chunk from the persisted factors.
    assert sizes[6][1] <= 3 * X.npartitions
    assert sizes[6][0] <= 6 * X.npartitions + 2


def test_result_is_lazy_until_computed():
    from dask.callbacks import Callback

    _, _, M = _corrupted(200, 40, seed=6)
    res = _run(da.from_array(M, chunks=(100, 40)), random_state=0, max_iter=2)
    ran = []
    with Callback(pretask=lambda key, dsk, state: ran.append(key)):
        L = res.low_rank * 2.0  # building on the result runs nothing
        assert not ran
        L.compute(scheduler="sync")
    assert ran


@pytest.mark.parametrize(
    ("shape", "chunks", "alpha", "dtype"),
    [
        ((300, 40), (100, 40), 0.3, np.float64),
        ((40, 300), (40, 150), 0.3, np.float32),
        ((200, 90), (100, 90), 0.3, np.float32),
        ((90, 200), (90, 100), 0.0, np.float64),
    ],
)
def test_rsvddpd_equals_in_memory(shape, chunks, alpha, dtype):
    # 200 x 90: both dimensions above 64, so the start is a partial SVD drawn from the seed.
    _, _, M = _corrupted(*shape, rank=2, seed=7)
    M = M.astype(dtype)
    before = M.copy()
    res = robust_pca(
        da.from_array(M, chunks=chunks), method="rsvddpd", rank=2, alpha=alpha, random_state=1
    )
    ref = robust_pca(M, method="rsvddpd", rank=2, alpha=alpha, random_state=1)
    tol = _tol(dtype)
    assert isinstance(res.weights, da.Array) and isinstance(res.U, da.Array)
    L, S, w = dask.compute(res.low_rank, res.sparse, res.weights)
    np.testing.assert_allclose(L, ref.low_rank, atol=tol * np.abs(M).max())
    np.testing.assert_allclose(S, ref.sparse, atol=tol * np.abs(M).max())
    np.testing.assert_allclose(w, ref.weights, atol=tol)
    np.testing.assert_allclose(res.s, ref.s, rtol=tol)
    np.testing.assert_allclose(res.U.compute(), ref.U, atol=100 * tol)
    np.testing.assert_allclose(res.Vt, ref.Vt, atol=100 * tol)
    np.testing.assert_allclose(res.history, ref.history, atol=tol)
    assert res.converged == ref.converged and abs(res.n_iter - ref.n_iter) <= 2
    np.testing.assert_array_equal(M, before)


def test_rsvddpd_exact_quartiles_with_ties():
    from sparselin.robust._dask import _order_statistics, _quantiles

    rng = np.random.default_rng(8)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((3001, 7)).astype(dtype)
        x[::3] = 0.0  # a third of the entries tie at the median
        x[5, 5] = 1e30  # an outlier stretches the range
        X = da.from_array(x, chunks=(400, 7))
        qs = (0.25, 0.5, 0.75)
        ref = np.quantile(x.ravel(), np.asarray(qs, dtype=dtype))
        np.testing.assert_array_equal(np.asarray(_quantiles(X, qs), dtype=dtype), ref)
        srt = np.sort(x.ravel())
        ranks = [0, 1, 7000, 7001, srt.size - 2, srt.size - 1]
        assert _order_statistics(X, ranks) == [float(v) for v in srt[ranks]]


def test_estimator_accepts_dask():
    _, _, X = _corrupted(240, 30, seed=9)
    Xd = da.from_array(X, chunks=(120, 30))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = RobustPCA(n_components=3, max_iter=6, random_state=0).fit(Xd)
        ref = RobustPCA(n_components=3, max_iter=6, random_state=0).fit(X)
    assert isinstance(est.components_, np.ndarray) and isinstance(est.low_rank_, da.Array)
    np.testing.assert_allclose(est.components_, ref.components_, atol=1e-9)
    np.testing.assert_allclose(est.singular_values_, ref.singular_values_, rtol=1e-9)
    assert est.n_features_in_ == 30 and est.n_components_ == ref.n_components_
    Xn = X.copy()
    Xn[2, 3] = np.nan  # projected on its observed features, as in memory
    T = est.transform(da.from_array(Xn, chunks=(50, 15)))
    assert isinstance(T, da.Array) and T.chunks[0] == (50, 50, 50, 50, 40)
    np.testing.assert_allclose(T.compute(), ref.transform(Xn), atol=1e-9)
    with pytest.raises(ValueError, match="expecting 30 features"):
        est.transform(da.ones((4, 5)))


@pytest.mark.slow
def test_distributed_local_cluster():
    distributed = pytest.importorskip("distributed")
    _, _, M = _corrupted(300, 40, seed=10)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        # Each iteration is a few dozen round trips to the scheduler: three suffice to
        # check that the persisted iterates and the SVD passes run on the workers.
        res = _run(da.from_array(M, chunks=(150, 40)), random_state=3, max_iter=3)
        L, S = dask.compute(res.low_rank, res.sparse)
    ref = _run(M, random_state=3, max_iter=3)
    np.testing.assert_allclose(L, ref.low_rank, atol=1e-9 * np.abs(M).max())
    np.testing.assert_allclose(S, ref.sparse, atol=1e-9 * np.abs(M).max())
    np.testing.assert_allclose(res.history, ref.history, atol=1e-12)


def _poison(block):  # validation before the data pass must not compute a chunk
    raise AssertionError("validation computed the array")


BAD = [
    (lambda X: X.rechunk((50, 20)), {}, ValueError, r"rechunk\(\{1: -1\}\)"),
    (lambda X: X[:, 0], {}, ValueError, "2-D"),
    (lambda X: X.astype(np.complex128), {}, TypeError, "M must be real"),
    (lambda X: X.astype(bool).astype(object), {}, TypeError, "numbers"),
    (lambda X: X, {"method": "ialm"}, ValueError, "method must be one of"),
    (lambda X: X, {"lam": 0.0}, ValueError, "lam"),
    (lambda X: X, {"rank": 41}, ValueError, "rank"),
    (lambda X: X, {"method": "rsvddpd"}, ValueError, "needs rank"),
    (lambda X: X, {"tol": 1.5}, ValueError, "tol"),
    (lambda X: X, {"max_iter": 0}, ValueError, "max_iter"),
    (lambda X: X, {"alpha": 2.0}, ValueError, "alpha"),
    (lambda X: X, {"mask": np.ones((3, 3), bool)}, ValueError, "mask must have M's shape"),
    (lambda X: X, {"mask": "yes"}, TypeError, "mask must be a boolean"),
]


@pytest.mark.parametrize(("make", "kwargs", "exc", "match"), BAD)
def test_bad_input(make, kwargs, exc, match):
    M = np.random.default_rng(0).standard_normal((200, 40))
    before = M.copy()
    X = da.from_array(M, chunks=(50, 40)).map_blocks(_poison, dtype=M.dtype)
    with pytest.raises(exc, match=match):
        robust_pca(make(X), **kwargs)
    np.testing.assert_array_equal(M, before)


DATA_BAD = [
    ("inf", {}, ValueError, "infinity at observed entries"),
    ("nan", {"method": "rsvddpd", "rank": 2}, ValueError, "NaN: missing entries"),
    ("ok", {"method": "rsvddpd", "rank": 2, "mask": "half"}, ValueError, r"mask \(missing"),
    ("ok", {"mask": "twos"}, ValueError, "only True/False"),
    ("allnan", {}, ValueError, "no observed entry"),
    ("unknown", {}, ValueError, r"compute_chunk_sizes\(\)"),
]


@pytest.mark.parametrize(("entries", "kwargs", "exc", "match"), DATA_BAD)
def test_bad_entries_found_in_one_pass(entries, kwargs, exc, match):
    M = np.random.default_rng(0).standard_normal((200, 40))
    if entries == "inf":
        M[7, 3] = np.inf
    elif entries == "nan":
        M[7, 3] = np.nan
    elif entries == "allnan":
        M[:] = np.nan
    before = M.copy()
    kwargs = dict(kwargs)
    if kwargs.get("mask") == "half":
        kwargs["mask"] = np.arange(M.size).reshape(M.shape) % 2 == 0
    elif kwargs.get("mask") == "twos":
        kwargs["mask"] = np.full(M.shape, 2, np.int8)
    X = da.from_array(M, chunks=(50, 40))
    if entries == "unknown":
        X = X[X[:, 0] > 0]
    with pytest.raises(exc, match=match):
        robust_pca(X, **kwargs)
    np.testing.assert_array_equal(M, before)


@pytest.mark.gpu
def test_pcp_cupy_chunks():
    cp = pytest.importorskip("cupy")
    _, _, M = _corrupted(400, 60, seed=11)
    Md = da.from_array(cp.asarray(M), chunks=(100, 60))
    res = _run(Md, random_state=0, max_iter=4)
    assert isinstance(res.low_rank._meta, cp.ndarray) and isinstance(res.s, cp.ndarray)
    ref = _run(cp.asarray(M), random_state=0, max_iter=4)
    cp.testing.assert_allclose(res.low_rank.compute(), ref.low_rank, atol=1e-9 * abs(M).max())
    with pytest.raises(TypeError, match="needs NumPy chunks"):
        robust_pca(Md, method="rsvddpd", rank=2)
