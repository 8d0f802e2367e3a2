"""omp and loss_omp on a dask array of signals: in-memory results, lazily, A sent once."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from sparselin.recovery import loss_omp, omp

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


def _problem(m=40, N=100, n_sig=57, k=4, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, N))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal((m, N))
    X = np.zeros((N, n_sig), dtype=A.dtype)
    for j in range(n_sig):
        X[rng.choice(N, k, replace=False), j] = rng.standard_normal(k)
    Y = A @ X + 1e-3 * rng.standard_normal((m, n_sig))
    return A.astype(dtype), Y.astype(dtype), X


class _Counter:
    def __init__(self):
        from dask.callbacks import Callback

        self.n = 0
        self.cb = Callback(pretask=self._pre)

    def _pre(self, key, dsk, state):
        self.n += 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
@pytest.mark.parametrize(
    "kwargs",
    [{"n_nonzero": 4}, {"tol": 0.05}, {"n_nonzero": 6, "weights": "random"}],
)
def test_omp_equals_in_memory(dtype, kwargs):
    A, Y, _ = _problem(dtype=dtype)
    kwargs = dict(kwargs)
    if kwargs.get("weights") == "random":
        w = np.random.default_rng(5).uniform(0.5, 2.0, A.shape[1])
        w[[3, 7]] = 0.0  # unpenalised atoms
        kwargs["weights"] = w
    before_A, before_Y = A.copy(), Y.copy()
    Yd = da.from_array(Y, chunks=(Y.shape[0], 10))
    with dask.config.set(scheduler="threads"):
        coef, n_iter = omp(A, Yd, return_n_iter=True, **kwargs)
        assert isinstance(coef, da.Array) and isinstance(n_iter, da.Array)
        assert coef.chunks == ((A.shape[1],), Yd.chunks[1]) and coef.dtype == np.dtype(dtype)
        got, got_n = dask.compute(coef, n_iter)
    ref, ref_n = omp(A, Y, return_n_iter=True, **kwargs)
    # The batch may take the Gram or the residual path per chunk: equal up to rounding.
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, ref, atol=tol * np.abs(ref).max())
    np.testing.assert_array_equal(got_n, ref_n)
    np.testing.assert_array_equal(np.flatnonzero(got), np.flatnonzero(ref))
    np.testing.assert_array_equal(A, before_A)
    np.testing.assert_array_equal(Y, before_Y)


def test_omp_recovers_and_matches_one_signal_at_a_time():
    A, Y, X = _problem(m=60, N=120, n_sig=23, k=3, seed=1)
    got = omp(A, da.from_array(Y, chunks=(60, 7)), n_nonzero=3).compute()
    for j in range(Y.shape[1]):
        np.testing.assert_allclose(got[:, j], omp(A, Y[:, j], n_nonzero=3), atol=1e-12)
    assert np.abs(got - X).max() < 1e-2


@pytest.mark.parametrize(
    ("loss", "penalty", "lam"),
    [("lasso", "l0", 0.0), ("sqrt_lasso", "l1", 0.2), ("lad_lasso", "l0", 0.05)],
)
def test_loss_omp_equals_in_memory_per_signal(loss, penalty, lam):
    A, Y, _ = _problem(m=30, N=60, n_sig=9, k=3, seed=2)
    A /= np.linalg.norm(A, axis=0)
    Yd = da.from_array(Y, chunks=(30, 4))
    res = loss_omp(A, Yd, loss=loss, penalty=penalty, lam=lam, n_nonzero=5)
    fields = (res.coef, res.support, res.loss, res.n_iter, res.stop_reason)
    assert all(isinstance(f, da.Array) for f in fields) and res.coef_path is None
    coef, support, history, n_iter, reason = dask.compute(*fields)
    assert coef.shape == (60, 9) and support.shape == (9, 5) and history.shape == (9, 6)
    for j in range(Y.shape[1]):
        ref = loss_omp(A, Y[:, j], loss=loss, penalty=penalty, lam=lam, n_nonzero=5)
        np.testing.assert_array_equal(coef[:, j], ref.coef)
        np.testing.assert_array_equal(support[j, : ref.n_iter], ref.support)
        assert np.all(support[j, ref.n_iter :] == -1)
        np.testing.assert_array_equal(history[j, : ref.n_iter + 1], ref.loss)
        assert np.all(np.isnan(history[j, ref.n_iter + 1 :]))
        assert n_iter[j] == ref.n_iter and reason[j] == ref.stop_reason


def test_lazy_and_dictionary_in_graph_once():
    A, Y, _ = _problem(m=64, N=2048, n_sig=40, seed=3)  # A: 1 MiB
    Yd = da.from_array(Y, chunks=(64, 5))  # 8 chunks
    counter = _Counter()
    with counter.cb:
        coef, n_iter = omp(A, Yd, n_nonzero=4, return_n_iter=True)
        res = loss_omp(A, Yd, loss="lasso", penalty="l1", lam=0.1, n_nonzero=3)
        assert counter.n == 0  # nothing ran
    for arr in (coef, res.coef):
        graph = dict(arr.__dask_graph__())
        sizes = [len(pickle.dumps(v)) for v in graph.values()]
        # The dictionary is one key of the graph, shared by every chunk's task: the whole
        # graph is A plus small change, and no task carries a copy of it.
        assert sum(s >= A.nbytes for s in sizes) == 1
        assert sum(sizes) < A.nbytes + 64 * 1024
    with counter.cb:
        got, got_n = dask.compute(coef, n_iter, scheduler="sync")
    assert counter.n > 0
    # Computed together, coef and n_iter share the chunks' tasks: each chunk ran once.
    np.testing.assert_array_equal(got_n, omp(A, Y, n_nonzero=4, return_n_iter=True)[1])


@pytest.mark.parametrize("func", ["omp", "loss_omp"])
def test_nan_in_a_chunk_raises_when_computed(func):
    A, Y, _ = _problem(n_sig=20)
    Y[3, 17] = np.nan
    Yd = da.from_array(Y, chunks=(40, 5))
    if func == "omp":  # lazy: no error yet
        coef = omp(A, Yd, n_nonzero=3)
    else:
        coef = loss_omp(A, Yd, loss="lasso", penalty="l1", lam=0.1, n_nonzero=3).coef
    with pytest.raises(ValueError, match="y contains NaN or infinity"):
        coef.compute()


@pytest.mark.parametrize("func", ["omp", "loss_omp"])
def test_dictionary_checked_and_normalised_once(monkeypatch, func):
    """A is validated and its columns normalised at the public edge only, not again in each
    chunk's task (8 chunks here): the tasks get the prepared dictionary."""
    from sparselin.recovery import _checks, _dask, _greedy

    calls = {"check": 0, "norms": 0}

    def counted(name, f):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return f(*args, **kwargs)

        return wrapper

    check = counted("check", _checks.check_dictionary)
    # every route to the dictionary check: the dask edge and the in-memory functions' own
    monkeypatch.setattr(_checks, "check_dictionary", check)
    monkeypatch.setattr(_dask, "check_dictionary", check)
    monkeypatch.setattr(_greedy, "_column_norms", counted("norms", _greedy._column_norms))
    A, Y, _ = _problem(n_sig=40)
    Yd = da.from_array(Y, chunks=(40, 5))
    if func == "omp":
        got = omp(A, Yd, n_nonzero=4).compute(scheduler="sync")
    else:
        got = loss_omp(A, Yd, loss="lasso", penalty="l1", lam=0.1, n_nonzero=3).coef.compute(
            scheduler="sync"
        )
    assert calls == {"check": 1, "norms": 1}
    monkeypatch.undo()
    if func == "omp":
        np.testing.assert_allclose(got, omp(A, Y, n_nonzero=4), atol=1e-12)
    else:
        ref = loss_omp(A, Y[:, 7], loss="lasso", penalty="l1", lam=0.1, n_nonzero=3).coef
        np.testing.assert_array_equal(got[:, 7], ref)


def test_premature_stop_warns_in_the_task():
    A, Y, _ = _problem(m=10, N=30, n_sig=6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        omp(A, da.from_array(Y, chunks=(10, 3)), n_nonzero=20).compute(scheduler="sync")
    assert any("prematurely" in str(w.message) for w in caught)


@pytest.mark.slow
def test_distributed_local_cluster():
    distributed = pytest.importorskip("distributed")
    A, Y, _ = _problem(m=50, N=200, n_sig=300, seed=4)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        coef, n_iter = omp(A, da.from_array(Y, chunks=(50, 60)), tol=0.01, return_n_iter=True)
        got, got_n = dask.compute(coef, n_iter)
        res = loss_omp(
            A, da.from_array(Y[:, :8], chunks=(50, 4)), loss="sqrt_lasso", penalty="l0", lam=0.1
        )
        got_l = res.coef.compute()
    ref, ref_n = omp(A, Y, tol=0.01, return_n_iter=True)
    np.testing.assert_allclose(got, ref, atol=1e-10)
    np.testing.assert_array_equal(got_n, ref_n)
    for j in range(8):
        ref_l = loss_omp(A, Y[:, j], loss="sqrt_lasso", penalty="l0", lam=0.1).coef
        np.testing.assert_array_equal(got_l[:, j], ref_l)


def _poison(block):  # validation must not compute a chunk
    raise AssertionError("validation computed the array")


def _bad_cases():
    y_rows = (lambda Y: Y.rechunk((10, 10)), {}, ValueError, r"y\.rechunk\(\{0: -1\}\)")
    return [
        y_rows,
        (lambda Y: Y[:, 0], {}, ValueError, "2-D, one signal per column"),
        (lambda Y: Y[:30], {}, ValueError, "as many rows as A"),
        (lambda Y: Y[:, :0], {}, ValueError, "non-empty"),
        (lambda Y: Y.astype(bool).astype(object), {}, TypeError, "must hold numbers"),
        (lambda Y: Y, {"return_path": True}, ValueError, "return_path is not supported"),
        (lambda Y: Y, {"return_path": 1}, TypeError, "return_path must be a bool"),
        (lambda Y: Y, {"A": "dask"}, TypeError, "A must be a dense"),
        (lambda Y: Y, {"A": "nan"}, ValueError, "A contains NaN"),
        (lambda Y: Y, {"weights": -np.ones(100)}, ValueError, "non-negative"),
        (lambda Y: Y, {"weights": np.ones(3)}, ValueError, r"weights must have shape"),
    ]


OMP_BAD = [
    *_bad_cases(),
    (lambda Y: Y, {"n_nonzero": 0}, ValueError, "n_nonzero"),
    (lambda Y: Y, {"tol": -1.0}, ValueError, "tol"),
    (lambda Y: Y, {"return_n_iter": "no"}, TypeError, "return_n_iter must be a bool"),
]
LOSS_BAD = [
    *_bad_cases(),
    (lambda Y: Y, {"lam": -1.0}, ValueError, "lam"),
    (lambda Y: Y, {"loss": "huber"}, ValueError, "loss must be one of"),
    (lambda Y: Y, {"penalty": "l2"}, ValueError, "penalty must be one of"),
    (lambda Y: Y.astype(np.complex128), {"loss": "lad_lasso"}, TypeError, "real A and y"),
    (lambda Y: Y, {"n_nonzero": 101}, ValueError, "n_nonzero"),
]


def _run_bad(func, make, kwargs, exc, match, defaults):
    A, Y, _ = _problem()
    before_A, before_Y = A.copy(), Y.copy()
    kwargs = {**defaults, **kwargs}
    if isinstance(kwargs.get("A"), str):
        A = da.from_array(A) if kwargs["A"] == "dask" else np.where(A > 2, np.nan, A)
    kwargs.pop("A", None)
    Yd = da.from_array(Y, chunks=(40, 10)).map_blocks(_poison, dtype=Y.dtype)
    with pytest.raises(exc, match=match):
        func(A, make(Yd), **kwargs)
    np.testing.assert_array_equal(Y, before_Y)
    if isinstance(A, np.ndarray) and not np.isnan(A).any():
        np.testing.assert_array_equal(A, before_A)


@pytest.mark.parametrize(("make", "kwargs", "exc", "match"), OMP_BAD)
def test_omp_bad_input(make, kwargs, exc, match):
    _run_bad(omp, make, kwargs, exc, match, {})


@pytest.mark.parametrize(("make", "kwargs", "exc", "match"), LOSS_BAD)
def test_loss_omp_bad_input(make, kwargs, exc, match):
    _run_bad(loss_omp, make, kwargs, exc, match, {"loss": "lasso", "penalty": "l0", "lam": 0.1})


def test_unknown_chunk_sizes():
    A, Y, _ = _problem()
    Yd = da.from_array(Y, chunks=(40, 10))
    with pytest.raises(ValueError, match=r"y\.compute_chunk_sizes\(\)"):
        omp(A, Yd[:, Yd[0] > 0])
