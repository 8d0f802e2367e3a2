"""
Out-of-core truncated SVD on a dask cluster
===========================================

:func:`sparselin.truncated_svd` accepts a dask array and runs on dask's own scheduler: the
matrix is read chunk by chunk in each pass, on the workers that hold the chunks, and only
small sketches (a few columns per chunk) travel between the workers and this process. The
matrix never has to fit in memory, neither here nor on any worker.

This example builds a 200000 x 1000 float32 matrix (800 MB) lazily and writes it to disk as
zarr, then decomposes it on a local cluster whose one worker process (two threads) may use
512 MiB, less than the matrix, and plots its spectrum. It needs ``dask[distributed]`` and
``zarr`` (``pip install "sparselin[dask]" zarr``).
"""

# %%
# A matrix that is only ever built chunk by chunk
# -----------------------------------------------
# A planted rank-10 signal plus noise: ``A = G diag(d) H^T + sigma N`` with G and H
# Gaussian, scaled so that their columns are close to unit norm, and N uniform with unit
# variance (cheaper to draw than Gaussian, with the same bulk spectrum). Its leading singular
# values are close to ``d`` (slightly pushed up by the noise), and the rest form the noise
# bulk, whose largest value is near ``sigma (sqrt(m) + sqrt(n))`` (the Marchenko-Pastur
# edge). Nothing below computes anything yet: these are lazy dask arrays, one task per chunk
# of 2500 rows (10 MB).
#
# Worker processes are started fresh and import this file again when it is run as a script
# (``python plot_dask_out_of_core.py``); the cells that start or use the cluster are guarded by
# ``if __name__ == "__main__"`` so that those imports do not start clusters themselves.

import shutil
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
from dask.distributed import Client, LocalCluster

from sparselin.linalg import truncated_svd

m, n, rank, chunk_rows = 200_000, 1000, 10, 2500
d = np.geomspace(400.0, 60.0, rank)  # the planted singular values
sigma = 0.05

rng = da.random.default_rng(0)
# (Python floats as scale factors: a NumPy float64 scalar would promote float32 to float64.)
G = rng.standard_normal((m, rank), chunks=(chunk_rows, rank), dtype=np.float32) * m**-0.5
H = np.random.default_rng(1).standard_normal((n, rank)).astype(np.float32) * n**-0.5
noise = rng.random((m, n), chunks=(chunk_rows, n), dtype=np.float32) - np.float32(0.5)
A_lazy = (G * d.astype(np.float32)) @ H.T + np.float32(sigma * np.sqrt(12.0)) * noise

# %%
# A cluster with less memory than the matrix
# ------------------------------------------
# One worker process with two threads and a memory limit of 512 MiB (a worker is paused at
# 80 % of its limit and restarted at 95 %; about 250 MiB of it is the Python process itself
# with NumPy, SciPy, dask and sparselin imported). Writing the matrix to zarr runs on the
# cluster too: each task generates its chunk and writes it to disk, uncompressed (random
# values do not compress), so the matrix exists in full only in the store.

if __name__ == "__main__":
    cluster = LocalCluster(
        n_workers=1, threads_per_worker=2, memory_limit="512MiB", dashboard_address=None
    )
    client = Client(cluster)
    limit = sum(w["memory_limit"] for w in client.scheduler_info()["workers"].values())
    print(f"A: {A_lazy.shape} {A_lazy.dtype}, {A_lazy.npartitions} chunks")
    print(f"cluster memory: {limit / 2**20:.0f} MiB for a {A_lazy.nbytes / 2**20:.0f} MiB matrix")

    store = Path(tempfile.mkdtemp()) / "A.zarr"
    t0 = time.perf_counter()
    A_lazy.to_zarr(str(store), compressors=None)
    print(f"written to {store} in {time.perf_counter() - t0:.1f} s")

# %%
# Decompose it where it lies
# --------------------------
# ``dask.array.from_zarr`` gives a dask array whose tasks read the chunks from disk.
# :func:`sparselin.truncated_svd` runs the randomized subspace iteration as passes over those
# chunks: each pass re-reads them, multiplies each by a thin block (1000 x 30 here), and
# keeps only the thin results. ``U`` comes back as a dask array with the matrix's row chunks,
# persisted on the workers; ``s`` and ``Vt`` are NumPy arrays here.

if __name__ == "__main__":
    A = da.from_zarr(str(store))
    t0 = time.perf_counter()
    U, s, Vt, err = truncated_svd(A, k=20, n_iter=1, random_state=0, return_error=True)
    print(f"truncated_svd: {time.perf_counter() - t0:.1f} s, relative error {err:.3f}")
    print(f"U: {type(U).__name__} {U.shape}, chunks {U.chunksize}; s, Vt: {type(s).__name__}")
    print("leading singular values:", np.round(s[:rank], 1))
    print("planted:                 ", np.round(d, 1))
    # The worker's largest memory use so far, from its own monitor (sampled every 0.5 s).
    peak = client.run(lambda dask_worker: max(dask_worker.monitor.quantities["memory"]))
    print("peak worker memory (MiB):", [round(v / 2**20) for v in peak.values()])

# %%
# The spectrum
# ------------
# The ten planted values stand out of the noise; the next ten sit just below the edge of the
# noise bulk.

if __name__ == "__main__":
    import matplotlib.pyplot as plt

    edge = sigma * (np.sqrt(m) + np.sqrt(n))
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.semilogy(np.arange(1, 21), s, "o", label="truncated_svd on the cluster")
    ax.semilogy(np.arange(1, rank + 1), d, "x", color="k", label="planted values d")
    ax.axhline(edge, color="0.5", ls="--", label=r"noise edge $\sigma(\sqrt{m}+\sqrt{n})$")
    ax.set_xlabel("index i")
    ax.set_ylabel(r"$\sigma_i$")
    ax.set_title(f"{m} x {n} float32 from zarr, on a worker of 512 MiB")
    ax.legend()
    plt.show()

# %%
# The same code on many machines
# ------------------------------
# Nothing above depends on the cluster being local. With a scheduler running elsewhere
# (``dask scheduler`` on one machine, ``dask worker tcp://scheduler:8786`` on each of the
# others, or a deployment such as dask-kubernetes or dask-jobqueue), connect to it instead
# of starting a ``LocalCluster``::
#
#     client = Client("tcp://scheduler:8786")
#     A = da.from_zarr("s3://bucket/A.zarr")  # a store every worker can read
#     U, s, Vt = truncated_svd(A, k=20, random_state=0)
#
# The store must be reachable from every worker (a shared file system or an object store;
# a local temporary directory as here only works on one machine). Each pass then reads every
# chunk once, on the worker that runs its task, and only the thin blocks move over the
# network: the 1000 x 30 test block to the workers and one 30 x 1000 partial product per chunk
# back, summed in a tree. Finally, release the cluster and the temporary store.

if __name__ == "__main__":
    del U
    client.close()
    cluster.close()
    shutil.rmtree(store.parent, ignore_errors=True)
