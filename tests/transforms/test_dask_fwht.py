"""fwht on dask arrays: the in-memory transform per chunk, lazy, clear chunking errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from sparselin.transforms import fwht

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


class _Counter:
    """Counts the tasks dask runs (a local-scheduler callback)."""

    def __init__(self):
        from dask.callbacks import Callback

        self.n = 0
        self.cb = Callback(pretask=self._pre)

    def _pre(self, key, dsk, state):
        self.n += 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.int64])
@pytest.mark.parametrize("order", ["natural", "sequency", "dyadic"])
@pytest.mark.parametrize("normalize", [None, "ortho"])
def test_equals_in_memory_along_each_axis(dtype, order, normalize):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6, 16))
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(x.shape)
    x = (100 * x).astype(dtype) if np.dtype(dtype).kind == "i" else x.astype(dtype)
    before = x.copy()
    for axis, chunks in [(0, (32, 4, 5)), (2, (7, 3, 16)), (-1, (10, 6, 16))]:
        X = da.from_array(x, chunks=chunks)
        with dask.config.set(scheduler="threads"):
            y = fwht(X, axis=axis, order=order, normalize=normalize)
            got = y.compute()
        ref = fwht(x, axis=axis, order=order, normalize=normalize)
        assert isinstance(y, da.Array) and y.chunks == X.chunks and y.dtype == ref.dtype
        assert got.dtype == ref.dtype
        # The same kernels on the same rows: equal bit for bit.
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(x, before)


def test_against_hadamard_matrix_and_m_times_power_of_two():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 64))
    y = fwht(da.from_array(x, chunks=(9, 64)), axis=1).compute()
    np.testing.assert_allclose(y, x @ scipy.linalg.hadamard(64), atol=1e-12)
    # 96 = 12 * 2**3, along axis 0, with irregular chunks of the other axis.
    z = rng.standard_normal((96, 11))
    Z = da.from_array(z, chunks=((96,), (4, 4, 3)))
    np.testing.assert_array_equal(fwht(Z, axis=0).compute(), fwht(z, axis=0))
    # Unknown chunk sizes along the other axes are fine: each chunk keeps its rows.
    X = da.from_array(x, chunks=(9, 64))
    Xn = X[X[:, 0] > 0]
    ref = fwht(x[x[:, 0] > 0], axis=1)
    np.testing.assert_array_equal(fwht(Xn, axis=1).compute(), ref)


def test_lazy_one_task_per_chunk_and_roundtrip():
    x = np.random.default_rng(2).standard_normal((50, 128)).astype(np.float32)
    X = da.from_array(x, chunks=(10, 128))
    counter = _Counter()
    with counter.cb:
        y = fwht(X, normalize="ortho")
        assert counter.n == 0  # nothing ran: y is a graph
        z = fwht(y, normalize="ortho")
        assert counter.n == 0
        back = z.compute(scheduler="sync")
    # Tasks ran only at compute() (dask may fuse each chunk's read and transforms).
    assert counter.n >= X.npartitions
    np.testing.assert_allclose(back, x, atol=1e-5)
    layer = dict(y.__dask_graph__().layers[y.name])
    assert len(layer) == X.npartitions


@pytest.mark.slow
def test_distributed_local_cluster():
    distributed = pytest.importorskip("distributed")
    x = np.random.default_rng(3).standard_normal((400, 256))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        got = fwht(da.from_array(x, chunks=(100, 256)), order="sequency").compute()
    np.testing.assert_array_equal(got, fwht(x, order="sequency"))


def _poison(block):  # validation must not compute a chunk
    raise AssertionError("validation computed the array")


BAD = [
    (lambda X: X, {"axis": 0}, ValueError, r"x\.rechunk\(\{0: -1\}\)"),
    (lambda X: X.rechunk((16, 8)), {"axis": 1}, ValueError, r"x\.rechunk\(\{1: -1\}\)"),
    (lambda X: X.T.rechunk((8, 16)), {"axis": -2}, ValueError, r"x\.rechunk\(\{0: -1\}\)"),
    (lambda X: X[:, :10], {}, ValueError, "power of two"),
    (lambda X: X, {"axis": 2}, ValueError, "axis must be in"),
    (lambda X: X, {"axis": 1.0}, TypeError, "axis must be an integer"),
    (lambda X: X, {"order": "walsh"}, ValueError, "order must be one of"),
    (lambda X: X, {"normalize": "backward"}, ValueError, "normalize must be one of"),
    (lambda X: X, {"out": np.empty((64, 32))}, TypeError, "out is not supported for dask"),
    (lambda X: X.astype(bool).astype(object), {}, TypeError, "must hold numbers"),
    (lambda X: X.sum(), {}, ValueError, "at least one dimension"),
]


@pytest.mark.parametrize(("make", "kwargs", "exc", "match"), BAD)
def test_bad_input(make, kwargs, exc, match):
    x = np.random.default_rng(0).standard_normal((64, 32))
    before = x.copy()
    X = da.from_array(x, chunks=(16, 32)).map_blocks(_poison, dtype=np.float64)
    with pytest.raises(exc, match=match):
        fwht(make(X), **kwargs)
    np.testing.assert_array_equal(x, before)


def test_unknown_chunks_on_the_transform_axis():
    x = np.random.default_rng(0).standard_normal((64, 32))
    X = da.from_array(x, chunks=(16, 32))
    with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
        fwht(X[X[:, 0] > 0], axis=0)


@pytest.mark.gpu
def test_cupy_chunks():
    cp = pytest.importorskip("cupy")
    x = cp.random.default_rng(0).standard_normal((64, 256))
    y = fwht(da.from_array(x, chunks=(16, 256)), normalize="ortho")
    assert isinstance(y._meta, cp.ndarray)
    got = y.compute()
    assert isinstance(got, cp.ndarray)
    cp.testing.assert_allclose(got, fwht(x, normalize="ortho"), atol=1e-12)
