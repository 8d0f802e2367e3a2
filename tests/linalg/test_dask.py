"""truncated_svd on dask arrays: same result as in memory, bounded tasks, clear chunking errors."""

from __future__ import annotations

import numpy as np
import pytest

from sparselin.datasets import make_low_rank_matrix
from sparselin.linalg import truncated_svd

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

# Tall (row-chunked), wide (column-chunked, the transpose case) and a single chunk.
CASES = [((1200, 90), (200, 90)), ((90, 1200), (90, 250)), ((300, 200), (300, 200))]


def _matrix(shape, dtype, seed=0):
    return make_low_rank_matrix(*shape, decay=0.85, random_state=seed).astype(dtype)


def _assert_same(dask_out, mem_out, dtype):
    U, s, Vt = dask_out
    U0, s0, Vt0 = mem_out
    tol = 2e-4 if dtype == np.float32 else 1e-10
    assert isinstance(s, np.ndarray) and isinstance(Vt, np.ndarray)
    assert s.dtype == s0.dtype and Vt.dtype == Vt0.dtype and U.dtype == U0.dtype
    np.testing.assert_allclose(s, s0, rtol=0, atol=tol * s0[0])
    # Same signs (the in-memory rule): the vectors agree entry by entry, not only up to sign.
    np.testing.assert_allclose(U.compute(), U0, rtol=0, atol=tol * 10)
    np.testing.assert_allclose(Vt, Vt0, rtol=0, atol=tol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "chunks"), CASES)
@pytest.mark.parametrize("n_iter", [0, 2, "auto"])
def test_equals_in_memory_threaded(shape, chunks, dtype, n_iter):
    A = _matrix(shape, dtype)
    before = A.copy()
    X = da.from_array(A, chunks=chunks)
    with dask.config.set(scheduler="threads"):
        U, s, Vt, err = truncated_svd(X, 8, n_iter=n_iter, random_state=7, return_error=True)
    assert isinstance(U, da.Array) and U.chunks[0] == X.chunks[0] and U.shape == (shape[0], 8)
    U0, s0, Vt0, err0 = truncated_svd(A, 8, n_iter=n_iter, random_state=7, return_error=True)
    _assert_same((U, s, Vt), (U0, s0, Vt0), dtype)
    assert err == pytest.approx(err0, rel=1e-3 if dtype == np.float32 else 1e-8)
    # Against the exact SVD: the same accuracy class as the in-memory randomized result.
    exact = np.linalg.svd(A.astype(np.float64), compute_uv=False)
    opt = np.sqrt(np.sum(exact[8:] ** 2) / np.sum(exact**2))
    assert err <= (1.25 if n_iter == 0 else 1.05) * opt + 1e-6
    np.testing.assert_array_equal(A, before)


def test_chunkings_and_integer_input_agree():
    A = np.random.default_rng(1).integers(-5, 6, size=(700, 60))
    ref = truncated_svd(A, 5, n_iter=3, random_state=0)
    for chunks in [(100, 60), (333, 60), (700, 60)]:
        out = truncated_svd(da.from_array(A, chunks=chunks), 5, n_iter=3, random_state=0)
        assert out[0].dtype == np.float64
        _assert_same(out, ref, np.float64)


def test_rank_deficient_and_zero():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((500, 3)) @ rng.standard_normal((3, 40))
    U, s, Vt = truncated_svd(da.from_array(A, chunks=(100, 40)), 6, n_iter=2, random_state=0)
    np.testing.assert_allclose(s[:3], np.linalg.svd(A, compute_uv=False)[:3], rtol=1e-10)
    assert np.all(s[3:] == 0)
    Uc = U.compute()
    np.testing.assert_allclose((Uc[:, :3] * s[:3]) @ Vt[:3], A, atol=1e-10)
    Z = da.zeros((400, 30), chunks=(100, 30))
    U, s, Vt = truncated_svd(Z, 4, n_iter=1, random_state=0)
    assert np.all(s == 0) and np.all(np.isfinite(U.compute())) and np.all(np.isfinite(Vt))


def test_compute_false_keeps_u_lazy_without_rereading_a():
    A = _matrix((800, 70), np.float64)
    X = da.from_array(A, chunks=(100, 70))
    U, s, Vt = truncated_svd(X, 6, n_iter=1, random_state=0, compute=False)
    keys = {k[0] if isinstance(k, tuple) else k for k in U.__dask_graph__()}
    assert X.name not in keys  # U is built from the kept sketches, not from A
    U2, s2, Vt2 = truncated_svd(X, 6, n_iter=1, random_state=0)
    np.testing.assert_array_equal(U.compute(), U2.compute())
    np.testing.assert_array_equal(s, s2)


def test_no_task_receives_the_whole_matrix():
    from dask.callbacks import Callback
    from dask.core import get_dependencies

    A = _matrix((4000, 100), np.float64)
    X = da.from_array(A, chunks=(500, 100))  # 8 chunks of 400 kB each
    chunk_bytes = 500 * 100 * 8
    largest = [0]

    def pretask(key, dsk, state):
        deps = get_dependencies(dsk, key)
        size = sum(getattr(state["cache"].get(d), "nbytes", 0) for d in deps)
        largest[0] = max(largest[0], size)

    with Callback(pretask=pretask), dask.config.set(scheduler="sync"):
        U, s, Vt = truncated_svd(X, 10, n_iter=2, random_state=0)
        U.compute()
    # One chunk of A plus thin blocks (500 x 20 sketches, 100 x 20 factors) at most.
    assert 0 < largest[0] < chunk_bytes + 200_000 < A.nbytes / 4
    # The checks saw the graph's tasks, including the chunks of A themselves.
    assert largest[0] >= chunk_bytes


BAD = [
    (lambda X: X.rechunk((100, 30)), {}, ValueError, r"rechunk\(\{1: -1\}\)"),
    (lambda X: X.T.rechunk((30, 100)), {}, ValueError, r"rechunk\(\{0: -1\}\)"),
    (lambda X: X[X[:, 0] > -np.inf], {}, ValueError, r"compute_chunk_sizes\(\)"),
    (lambda X: X[:, 0], {}, ValueError, "2-D"),
    (lambda X: X, {"k": 61}, ValueError, "k must be"),
    (lambda X: X, {"tol": 0.1}, ValueError, "tol.*not supported for dask"),
    (lambda X: X, {"method": "lanczos"}, ValueError, "method must be 'randomized'"),
    (lambda X: X, {"sketch_dtype": np.float32}, ValueError, "sketch_dtype"),
    (lambda X: X, {"power_iteration_normalizer": "LU"}, ValueError, "normalizer"),
    (lambda X: X, {"n_iter": -1}, ValueError, "n_iter"),
    (lambda X: X, {"compute": "yes"}, TypeError, "compute must be a bool"),
    (lambda X: X.astype(bool).astype(object), {}, TypeError, "numbers"),
]


@pytest.mark.parametrize(("make", "kwargs", "exc", "match"), BAD)
def test_bad_input(make, kwargs, exc, match):
    A = np.random.default_rng(0).standard_normal((400, 60))
    before = A.copy()

    def refuse(block):  # computing any chunk during validation would be a bug
        raise AssertionError("validation computed the array")

    X = da.from_array(A, chunks=(100, 60))
    poisoned = X.map_blocks(refuse, dtype=X.dtype)
    kw = {"k": 5, **kwargs}
    if match.startswith(r"compute_chunk"):
        poisoned = X  # boolean indexing needs real values to build its (unknown) chunks
    with pytest.raises(exc, match=match):
        truncated_svd(make(poisoned), kw.pop("k"), **kw)
    np.testing.assert_array_equal(A, before)


def test_nan_entries_found_in_first_pass():
    A = np.random.default_rng(0).standard_normal((300, 20))
    A[123, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        truncated_svd(da.from_array(A, chunks=(100, 20)), 3, random_state=0)


def test_distributed_local_cluster():
    distributed = pytest.importorskip("distributed")
    A = _matrix((3000, 80), np.float64, seed=4)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit="1GiB",
        ) as cluster,
        distributed.Client(cluster),
    ):
        X = da.from_array(A, chunks=(500, 80))
        U, s, Vt = truncated_svd(X, 6, n_iter=2, random_state=5)
        Uc = U.compute()
    U0, s0, Vt0 = truncated_svd(A, 6, n_iter=2, random_state=5)
    _assert_same((da.from_array(Uc), s, Vt), (U0, s0, Vt0), np.float64)


def test_dask_is_lazy_and_its_absence_names_the_extra(monkeypatch):
    import subprocess
    import sys

    from sparselin._array import dask_array_module, dask_chunk_namespace, is_dask_array

    code = "import sys, sparselin; sparselin.truncated_svd; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    X = da.ones((4, 3), chunks=2)
    assert is_dask_array(X) and not is_dask_array(np.ones(3))
    assert dask_chunk_namespace(X) is np
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"sparselin\[dask\]"):
        dask_array_module()


@pytest.mark.parametrize(
    ("dtype", "factor"),
    [(np.float64, 1e-150), (np.float64, 1e150), (np.float32, 1e-30), (np.float32, 1e30)],
)
def test_scaled_input_equals_in_memory(dtype, factor):
    # Squares of these entries over- or underflow the dtype: the Gram matrices would too.
    A = (_matrix((600, 50), np.float64, seed=3) * factor).astype(dtype)
    U, s, Vt = truncated_svd(da.from_array(A, chunks=(150, 50)), 5, n_iter=2, random_state=1)
    U0, s0, Vt0 = truncated_svd(A, 5, n_iter=2, random_state=1)
    assert np.all(np.isfinite(s)) and s[0] > 0
    np.testing.assert_allclose(s, s0, rtol=2e-4 if dtype == np.float32 else 1e-10)
    np.testing.assert_allclose(U.compute(), U0, atol=2e-3 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(Vt, Vt0, atol=2e-3 if dtype == np.float32 else 1e-9)
