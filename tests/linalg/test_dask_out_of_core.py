"""Out of core for real: truncated_svd of a zarr matrix several times a worker's memory limit.

The matrix (200000 x 1000 float64, 1.6 GB on disk) is decomposed on a ``LocalCluster`` of two
worker processes with 448 MiB each. Spilling is off and a worker that crosses 95 % of its limit
is killed with no retry, so holding the matrix (or a worker's share of it) fails the test
instead of passing slowly. The test asserts the decomposition against the matrix's exact SVD,
that no worker restarted or spilled, each worker's peak memory, and, from a scheduler plugin,
that no task received or produced more than one chunk of the matrix.

The matrix has a known SVD without a full SVD: with ``B0 = Q0 diag(s0) V0^T`` (one chunk, Q0
orthonormal) and random sign flips ``D_b``, the row blocks ``A_b = D_b B0 / sqrt(nb)`` give
``A = U0 diag(s0) V0^T`` with ``U0`` the stacked ``D_b Q0 / sqrt(nb)``, orthonormal because
``sum_b Q0^T D_b^2 Q0 / nb = I``. Nothing in the algorithm sees that structure.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from sparselin.linalg import truncated_svd

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

M, N, CHUNK_ROWS, K = 200_000, 1000, 2000, 8
MEMORY_LIMIT = 448 * 2**20
CHUNK_BYTES = CHUNK_ROWS * N * 8


def _write_matrix(path):
    """The matrix on disk, one chunk at a time; returns its exact ``s0``, ``Q0``, ``V0``, signs."""
    nb = M // CHUNK_ROWS
    with threadpool_limits(1):  # mid-size QRs: one BLAS thread is fastest on a busy machine
        return _write_blocks(path, nb)


def _write_blocks(path, nb):
    rng = np.random.default_rng(0)
    # A gap after the 8th value (5 -> 0.5), then a slowly decaying tail that carries most
    # of the energy beyond rank 8: the optimal rank-8 error is not small.
    s0 = np.concatenate([np.linspace(10.0, 5.0, K), 0.5 * 0.995 ** np.arange(N - K)])
    Q0 = np.linalg.qr(rng.standard_normal((CHUNK_ROWS, N)))[0]
    V0 = np.linalg.qr(rng.standard_normal((N, N)))[0]
    B0 = (Q0 * s0) @ V0.T
    signs = rng.choice([-1.0, 1.0], size=(nb, CHUNK_ROWS))
    z = zarr.create_array(
        store=str(path),
        shape=(M, N),
        chunks=(CHUNK_ROWS, N),
        dtype="f8",
        compressors=None,  # random data does not compress; keep the bytes on disk honest
    )
    for b in range(nb):
        z[b * CHUNK_ROWS : (b + 1) * CHUNK_ROWS] = B0 * (signs[b][:, None] / np.sqrt(nb))
    return s0, Q0, V0, signs


class _TaskSizes(distributed.SchedulerPlugin):
    """Largest total size of a task's inputs and largest output, over every finished task."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.max_input = 0
        self.max_output = 0
        self.full_chunks = 0  # tasks whose output is exactly one chunk of the matrix

    def transition(self, key, start, finish, *args, **kwargs):
        if finish != "memory":
            return
        ts = self.scheduler.tasks.get(key)
        if ts is None:
            return
        # At processing -> memory the inputs are still held, with their measured sizes.
        self.max_input = max(self.max_input, sum(max(d.nbytes, 0) for d in ts.dependencies))
        self.max_output = max(self.max_output, ts.nbytes)
        self.full_chunks += ts.nbytes == CHUNK_BYTES


def _rss_samples(dask_worker):
    quantities = dask_worker.monitor.quantities
    return list(quantities["time"]), list(quantities["memory"])


def _peak_rss_since(client, t0):
    """Each worker's largest RSS sample taken at or after ``t0`` (``time.time()``)."""
    peaks = []
    for times, memory in client.run(_rss_samples).values():
        peaks.append(max(m for t, m in zip(times, memory, strict=True) if t >= t0))
    return peaks


def _storage(dask_worker):
    # With spilling disabled (target and spill False) a worker stores its results in a plain
    # dict: nothing can go to disk. A SpillBuffer here would mean the config did not arrive.
    return type(dask_worker.data).__name__


@pytest.mark.slow
def test_zarr_matrix_larger_than_worker_memory(tmp_path):
    path = tmp_path / "A.zarr"
    s0, Q0, V0, signs = _write_matrix(path)
    X = da.from_zarr(str(path))
    assert X.chunksize == (CHUNK_ROWS, N) and X.nbytes >= 3 * MEMORY_LIMIT

    config = {
        # Samples of each worker's RSS every 50 ms (default 500 ms) for the peak below.
        "distributed.admin.system-monitor.interval": "50ms",
        # No spilling and no pausing: a worker over 95 % of its limit is killed by its nanny,
        # and with no retry allowed the computation then fails with KilledWorker.
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": 0.95,
        "distributed.scheduler.allowed-failures": 0,
    }
    with (
        dask.config.set(config),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit=MEMORY_LIMIT,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        sizes = _TaskSizes(cluster.scheduler)
        cluster.scheduler.add_plugin(sizes)
        # Workers import sparselin when they unpickle its first task; do it now, so that the
        # idle baseline includes it.
        client.run(lambda: __import__("sparselin.linalg._dask"))
        pids = client.run(os.getpid)
        baseline = max(memory[-1] for _, memory in client.run(_rss_samples).values())
        t0 = time.time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            U, s, Vt = truncated_svd(X, K, n_oversamples=4, n_iter=1, random_state=0)
            Uc = U.compute()
        time.sleep(0.2)  # a few more samples after the end
        peaks = _peak_rss_since(client, t0)
        assert client.run(os.getpid) == pids  # no worker was killed and restarted
        assert set(client.run(_storage).values()) == {"dict"}  # nothing can spill
    assert not [w for w in caught if "large graph" in str(w.message)]

    # Memory: every worker stayed below its kill threshold, and grew over its idle baseline
    # by a few chunks, never by its share of the matrix (half of 1.6 GB).
    assert max(peaks) < 0.95 * MEMORY_LIMIT
    assert max(peaks) - baseline < 8 * CHUNK_BYTES < X.nbytes / 10
    # Tasks: none received or produced more than one chunk of A plus thin sketch blocks. Every
    # pass fuses the read of a chunk into the one task that multiplies with it, so no chunk
    # of A is a task result of its own (nor held between tasks); the largest result the
    # plugin saw is U gathered for the comparison below (M x K), which shows it measured.
    assert M * K * 8 <= sizes.max_output <= CHUNK_BYTES
    assert sizes.max_input <= CHUNK_BYTES + 2**20
    assert sizes.full_chunks == 0

    # Result against the exact SVD (module docstring). The gap 5 -> 0.5 and one power
    # iteration make the values and vectors accurate to about 1e-5 (measured: 7e-6).
    assert isinstance(s, np.ndarray) and isinstance(Vt, np.ndarray) and Uc.shape == (M, K)
    np.testing.assert_allclose(s, s0[:K], rtol=1e-4)
    np.testing.assert_allclose(Uc.T @ Uc, np.eye(K), atol=1e-12)
    np.testing.assert_allclose(Vt @ Vt.T, np.eye(K), atol=1e-12)
    nb = M // CHUNK_ROWS
    # U0^T U = sum_b Q0^T D_b U_b / sqrt(nb), with no m x n array formed.
    W = np.einsum("bc,bck->ck", signs, Uc.reshape(nb, CHUNK_ROWS, K))
    U0tU = Q0.T @ W / np.sqrt(nb)  # N x K
    V0tV = V0.T @ Vt.T  # N x K
    # Each vector matches the exact one up to sign (the sign rule is tested elsewhere).
    assert np.all(np.abs(np.diag(U0tU[:K])) > 1 - 1e-4)
    assert np.all(np.abs(np.diag(V0tV[:K])) > 1 - 1e-4)
    assert np.all(np.sign(np.diag(U0tU[:K])) == np.sign(np.diag(V0tV[:K])))
    # ||A - U diag(s) Vt||_F^2 = ||s0||^2 - 2 tr(diag(s) U^T U0 diag(s0) V0^T V) + ||s||^2,
    # exact for orthonormal U and V; against the optimal rank-K error (Eckart-Young). The
    # measured excess is 1.5e-5; n_iter=0 gives about twice the optimum on this spectrum.
    cross = np.trace((s[:, None] * U0tU.T) @ (s0[:, None] * V0tV))
    err = np.sqrt(max(np.sum(s0**2) - 2 * cross + np.sum(s**2), 0.0))
    opt = np.sqrt(np.sum(s0[K:] ** 2))
    assert 1.0 - 1e-9 <= err / opt < 1.0 + 1e-4
