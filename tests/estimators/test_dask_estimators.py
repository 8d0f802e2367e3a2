"""TruncatedSVD and IncrementalSVD on dask arrays: in-memory results, lazy transforms."""

from __future__ import annotations

import numpy as np
import pytest

from sparselin.datasets import make_low_rank_matrix
from sparselin.estimators._incremental_svd import IncrementalSVD
from sparselin.estimators._truncated_svd import TruncatedSVD

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


def _matrix(shape, dtype=np.float64, seed=0):
    return make_low_rank_matrix(*shape, decay=0.85, random_state=seed).astype(dtype)


def _tol(dtype):
    return 2e-4 if dtype == np.float32 else 1e-10


def _assert_fitted_alike(est, ref, dtype):
    tol = _tol(dtype)
    for name in ("components_", "singular_values_"):
        got, want = getattr(est, name), getattr(ref, name)
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype, name
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(1.0, float(want.max())))
    assert est.n_components_ == ref.n_components_ and est.n_features_in_ == ref.n_features_in_


@pytest.mark.parametrize(
    ("shape", "chunks", "dtype", "n_components"),
    [
        ((900, 60), (150, 60), np.float64, 5),
        ((900, 60), (150, 60), np.float32, 0.9),
        ((60, 900), (60, 200), np.float64, 0.9),  # wide: X.T is decomposed, as in memory
        ((60, 900), (20, 900), np.float32, 4),  # wide, chunked along the samples
    ],
)
def test_truncated_svd_equals_in_memory(shape, chunks, dtype, n_components):
    A = _matrix(shape, dtype)
    before = A.copy()
    X = da.from_array(A, chunks=chunks)
    ref = TruncatedSVD(n_components, n_iter=3, random_state=0)
    Z0 = ref.fit_transform(A)
    est = TruncatedSVD(n_components, n_iter=3, random_state=0)
    with dask.config.set(scheduler="threads"):
        Z = est.fit_transform(X)
    _assert_fitted_alike(est, ref, dtype)
    tol = _tol(dtype)
    np.testing.assert_allclose(est.explained_variance_, ref.explained_variance_, rtol=tol * 10)
    np.testing.assert_allclose(
        est.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=tol * 10
    )
    # fit_transform and transform are lazy, keep X's row chunks, and equal X @ V.
    for out in (Z, est.transform(X)):
        assert isinstance(out, da.Array) and out.chunks[0] == X.chunks[0]
        np.testing.assert_allclose(out.compute(), Z0, rtol=0, atol=tol * 10 * abs(Z0).max())
    back = est.inverse_transform(da.from_array(Z0, chunks=(X.chunks[0], -1)))
    assert isinstance(back, da.Array)
    np.testing.assert_allclose(back.compute(), ref.inverse_transform(Z0), atol=tol * 10)
    np.testing.assert_array_equal(A, before)


def test_transform_is_lazy_and_checks_when_computed():
    A = _matrix((400, 30))
    est = TruncatedSVD(3, random_state=0).fit(A)
    bad = A.copy()
    bad[250, 7] = np.nan
    calls = []

    def count(block):
        calls.append(block.shape)
        return block

    X = da.from_array(bad, chunks=(100, 30)).map_blocks(
        count, dtype=A.dtype, meta=np.empty((0, 0))
    )
    Z = est.transform(X)
    assert calls == []  # nothing computed yet
    with pytest.raises(ValueError, match="NaN or infinity"):
        Z.compute()
    with pytest.raises(ValueError, match="X has 29 features, but TruncatedSVD is expecting 30"):
        est.transform(da.from_array(A[:, :29]))
    Xt = da.from_array(A.T)
    unknown = Xt[Xt[:, 0] > -np.inf].T  # unknown number of columns
    with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
        est.transform(unknown)
    # Unknown row counts are fine: the projection is per row block.
    rows = da.from_array(A, chunks=(100, 30))
    rows = rows[rows[:, 0] > -np.inf]
    np.testing.assert_allclose(est.transform(rows).compute(), est.transform(A), atol=1e-12)


BAD = [
    (lambda X: X.rechunk((100, 20)), {}, ValueError, r"rechunk\(\{1: -1\}\)"),
    (lambda X: X[X[:, 0] > -np.inf], {}, ValueError, r"compute_chunk_sizes\(\)"),
    (lambda X: X, {"algorithm": "arpack"}, ValueError, "algorithm='randomized'"),
    (lambda X: X, {"power_iteration_normalizer": "LU"}, ValueError, "normalizer"),
    (lambda X: X, {"n_components": 500}, ValueError, "n_components"),
    (lambda X: X[:, :1], {"n_components": 1}, ValueError, "minimum of 2"),
    (lambda X: X.astype(np.complex128), {}, ValueError, "Complex"),
    (lambda X: X, {"n_components": 1.5}, ValueError, "n_components"),
]


@pytest.mark.parametrize(("make", "params", "exc", "match"), BAD)
def test_truncated_svd_bad_dask_input(make, params, exc, match):
    A = np.random.default_rng(0).standard_normal((400, 60))
    before = A.copy()

    def refuse(block):  # validation must not compute the array
        raise AssertionError("validation computed the array")

    X = da.from_array(A, chunks=(100, 60))
    if "compute_chunk" not in match:
        X = X.map_blocks(refuse, dtype=X.dtype)
    with pytest.raises(exc, match=match):
        TruncatedSVD(**{"n_components": 3, "random_state": 0, **params}).fit(make(X))
    np.testing.assert_array_equal(A, before)


def test_truncated_svd_nan_entries_raise():
    A = _matrix((300, 20))
    A[123, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TruncatedSVD(3, random_state=0).fit(da.from_array(A, chunks=(100, 20)))


# --- IncrementalSVD ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_incremental_fit_streams_row_blocks_like_partial_fit(dtype):
    A = _matrix((1000, 40), dtype, seed=1)
    before = A.copy()
    calls = []

    def count(block):
        calls.append(block.shape)
        return block

    X = da.from_array(A, chunks=(250, 40)).map_blocks(count, dtype=A.dtype, meta=np.empty((0, 0)))
    est = IncrementalSVD(5, random_state=0)
    with dask.config.set(scheduler="threads"):
        est.fit(X)
    # One pass, each block computed once, never more than a block at a time.
    assert sorted(calls) == [(250, 40)] * 4
    ref = IncrementalSVD(5, random_state=0)
    for i in range(0, 1000, 250):
        ref.partial_fit(A[i : i + 250])
    _assert_fitted_alike(est, ref, dtype)
    assert est.n_samples_seen_ == 1000
    Z = est.transform(da.from_array(A, chunks=(300, 40)))
    assert isinstance(Z, da.Array) and Z.chunks[0] == (300, 300, 300, 100)
    np.testing.assert_allclose(Z.compute(), ref.transform(A), atol=_tol(dtype) * 100)
    np.testing.assert_array_equal(A, before)


def test_incremental_batch_size_and_partial_fit_on_dask():
    A = _matrix((900, 30), seed=2)
    X = da.from_array(A, chunks=(200, 30))
    # batch_size re-cuts the chunks into the in-memory fit's batches.
    est = IncrementalSVD(4, batch_size=160, random_state=1).fit(X)
    ref = IncrementalSVD(4, batch_size=160, random_state=1).fit(A)
    _assert_fitted_alike(est, ref, np.float64)
    # partial_fit of a dask array: one update per row block, across calls.
    est = IncrementalSVD(4, random_state=1)
    est.partial_fit(X[:400]).partial_fit(X[400:])
    ref = IncrementalSVD(4, random_state=1)
    for lo, hi in [(0, 200), (200, 400), (400, 600), (600, 800), (800, 900)]:
        ref.partial_fit(A[lo:hi])
    _assert_fitted_alike(est, ref, np.float64)
    # Unknown row counts (boolean indexing) stream as they are.
    est2 = IncrementalSVD(4, random_state=1).fit(X[X[:, 0] > -np.inf])
    ref2 = IncrementalSVD(4, random_state=1)
    for i in range(0, 900, 200):
        ref2.partial_fit(A[i : i + 200])
    _assert_fitted_alike(est2, ref2, np.float64)
    # A chunk that boolean indexing left empty is skipped.
    keep = da.from_array(np.arange(900) >= 200, chunks=200)
    est4 = IncrementalSVD(4, random_state=1).fit(X[keep])
    ref4 = IncrementalSVD(4, random_state=1)
    for i in range(200, 900, 200):
        ref4.partial_fit(A[i : i + 200])
    _assert_fitted_alike(est4, ref4, np.float64)
    # Integer data are computed in float64, as in memory.
    ints = np.random.default_rng(3).integers(-4, 5, size=(300, 12))
    est3 = IncrementalSVD(3, random_state=0).fit(da.from_array(ints, chunks=(100, 12)))
    ref3 = IncrementalSVD(3, random_state=0, batch_size=100).fit(ints)
    _assert_fitted_alike(est3, ref3, np.float64)


def test_incremental_bad_dask_input():
    A = _matrix((300, 20))
    est = IncrementalSVD(3, random_state=0).fit(A)

    def refuse(block):
        raise AssertionError("validation computed the array")

    poisoned = da.from_array(A[:, :19], chunks=(100, 19)).map_blocks(refuse, dtype=A.dtype)
    with pytest.raises(ValueError, match="must have 20 columns"):
        est.partial_fit(poisoned)
    Xt = da.from_array(A.T)
    unknown = Xt[Xt[:, 0] > -np.inf].T  # unknown number of columns
    with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
        IncrementalSVD(3).fit(unknown)
    with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
        IncrementalSVD(3, batch_size=50).fit(da.from_array(A)[da.from_array(A)[:, 0] > -1e9])
    with pytest.raises(ValueError, match="2-D"):
        IncrementalSVD(3).fit(da.from_array(A[:, 0]))
    bad = A.copy()
    bad[250, 3] = np.inf
    with pytest.raises(ValueError, match="infinity"):  # scikit-learn's check, per block
        IncrementalSVD(3).fit(da.from_array(bad, chunks=(100, 20)))


# --- A real cluster (last in the module: the client is the default scheduler while it lives)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            memory_limit="1GiB",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.mark.slow
class TestDistributed:
    def test_truncated_svd(self, client):
        A = _matrix((2000, 50), seed=4)
        # Held by the workers, as data read from storage would be (not shipped per pass).
        X = da.from_array(A, chunks=(400, 50)).persist()
        for n_components in (4, 0.9):
            est = TruncatedSVD(n_components, random_state=2)
            Z = est.fit_transform(X)
            ref = TruncatedSVD(n_components, random_state=2)
            Z0 = ref.fit_transform(A)
            _assert_fitted_alike(est, ref, np.float64)
            np.testing.assert_allclose(est.explained_variance_, ref.explained_variance_, rtol=1e-9)
            np.testing.assert_allclose(Z.compute(), Z0, atol=1e-9)

    def test_incremental_svd(self, client):
        A = _matrix((1200, 40), seed=5)
        X = da.from_array(A, chunks=(300, 40)).persist()
        est = IncrementalSVD(5, random_state=3).fit(X)
        ref = IncrementalSVD(5, random_state=3, batch_size=300).fit(A)
        _assert_fitted_alike(est, ref, np.float64)
