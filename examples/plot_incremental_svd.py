"""
Incremental SVD of a streamed matrix
====================================

Data often arrive in pieces: new columns of a snapshot matrix, new samples of a data set.
Recomputing a truncated SVD of everything seen so far after each piece costs more and more;
:func:`sparselin.svd_update` (Brand's update) folds each piece into the current factors at a
cost that grows only with the size of the factors.

This example streams a matrix column block by column block and compares, after every block,

* the relative error of the streamed rank-``k`` factors on the data seen so far with the
  optimal rank-``k`` error of those data (from :func:`numpy.linalg.svd`),
* the time of one update with that of a fresh :func:`sparselin.truncated_svd` of all the data
  seen so far.

It ends with the same stream seen as samples (rows), through the scikit-learn estimator
:class:`sparselin.IncrementalSVD`.
"""

# %%
# A stream of columns
# -------------------
# 400 rows, 3000 columns arriving 100 at a time. The columns are drawn from a slowly
# rotating low-dimensional subspace plus noise, as in snapshots of a slowly changing system,
# so the best rank-``k`` basis of the data seen so far keeps changing.

import time

import matplotlib.pyplot as plt
import numpy as np

from sparselin import IncrementalSVD, svd_update, truncated_svd

rng = np.random.default_rng(0)
m, n, block, k = 400, 3000, 100, 20
r = 30  # rank of the signal at any one time
basis0 = np.linalg.qr(rng.standard_normal((m, r)))[0]
drift = np.linalg.qr(rng.standard_normal((m, r)))[0]
weights = 0.9 ** np.arange(r)
t = np.linspace(0.0, 1.0, n)
A = np.empty((m, n))
for j in range(n):
    # The subspace turns from basis0 towards drift as t goes from 0 to 1.
    B = np.cos(0.5 * t[j]) * basis0 + np.sin(0.5 * t[j]) * drift
    A[:, j] = B @ (weights * rng.standard_normal(r))
A += 0.02 * rng.standard_normal((m, n))
blocks = np.split(A, n // block, axis=1)

# %%
# Streaming with ``svd_update``
# -----------------------------
# The first block is decomposed directly; each later block is appended with
# ``svd_update(..., axis=1, k=k)``, which keeps the rank at ``k``. After each step we measure
# the error on everything seen so far, and for comparison time a fresh rank-``k``
# :func:`~sparselin.truncated_svd` of it (the cost an update avoids); times are the best of a
# few runs.

U, s, Vt = truncated_svd(blocks[0], k=k, random_state=0)
svd_update(U, s, Vt, blocks[1], axis=1, k=k)  # warm-up (compiles any Numba kernels)


def best_time(repeat, fn, *args, **kwargs):
    """Best of ``repeat`` runs (the functions are pure: the inputs are not modified)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return min(times), out


seen, err_stream, err_opt, t_update, t_recompute = [], [], [], [], []
for i, C in enumerate(blocks[1:], start=2):
    t, (U, s, Vt) = best_time(3, svd_update, U, s, Vt, C, axis=1, k=k)
    t_update.append(t)

    A_seen = A[:, : i * block]
    t, _ = best_time(2, truncated_svd, A_seen, k=k, random_state=0)
    t_recompute.append(t)

    norm_seen = np.linalg.norm(A_seen)
    sv = np.linalg.svd(A_seen, compute_uv=False)
    seen.append(A_seen.shape[1])
    err_stream.append(np.linalg.norm(A_seen - (U * s) @ Vt) / norm_seen)
    err_opt.append(np.sqrt(np.sum(sv[k:] ** 2)) / norm_seen)

seen, err_stream, err_opt = map(np.array, (seen, err_stream, err_opt))
print(f"after {seen[-1]} columns: streamed error {err_stream[-1]:.4f}, optimal {err_opt[-1]:.4f}")
print(f"worst ratio streamed/optimal over the stream: {np.max(err_stream / err_opt):.3f}")
print(
    f"median update {np.median(t_update) * 1e3:.2f} ms, "
    f"last fresh truncated_svd {t_recompute[-1] * 1e3:.2f} ms"
)

fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(12, 3.5), layout="constrained")
ax1.plot(seen, err_opt, "k-", lw=3, alpha=0.3, label=f"optimal rank-{k}")
ax1.plot(seen, err_stream, "C0.-", label="svd_update stream")
ax1.set_xlabel("columns seen")
ax1.set_ylabel("relative Frobenius error")
ax1.set_ylim(0, 1.2 * max(err_stream.max(), err_opt.max()))
ax1.legend()
ax2.plot(seen, err_stream / err_opt, "C0.-")
ax2.axhline(1.0, color="k", lw=1)
ax2.set_xlabel("columns seen")
ax2.set_ylabel("streamed error / optimal error")
ax3.plot(seen, np.array(t_update) * 1e3, "C0.-", label="svd_update (one block)")
ax3.plot(seen, np.array(t_recompute) * 1e3, "C1.-", label="truncated_svd (all seen)")
ax3.set_xlabel("columns seen")
ax3.set_ylabel("time (ms)")
ax3.legend()
fig.suptitle(f"Streaming {m} x {n} in blocks of {block} columns, rank {k}")
plt.show()

# %%
# The streamed error stays close to the optimal one (middle panel) although the data are
# never revisited: each block is seen once and can then be discarded (only ``Vt`` grows with
# the number of columns). Truncating back to rank ``k`` after every block loses a little,
# and the loss accumulates slowly. The cost of an update stays flat, while a fresh
# decomposition costs more the more data there are.
#
# Samples arriving in batches: ``IncrementalSVD``
# -----------------------------------------------
# In scikit-learn's convention samples are rows, so the same data seen as 3000 samples of
# 400 features is ``A.T``. :meth:`~sparselin.IncrementalSVD.partial_fit` appends a batch of
# rows; ``transform`` and ``inverse_transform`` project on the ``k`` leading right singular
# vectors and back.

X = A.T
isvd = IncrementalSVD(n_components=k)
err_isvd = []
for i, X_batch in enumerate(np.split(X, n // block, axis=0), start=1):
    isvd.partial_fit(X_batch)
    X_seen = X[: i * block]
    X_hat = isvd.inverse_transform(isvd.transform(X_seen))
    err_isvd.append(np.linalg.norm(X_seen - X_hat) / np.linalg.norm(X_seen))

print(f"IncrementalSVD: components_ {isvd.components_.shape}, error {err_isvd[-1]:.4f}")

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.plot(seen, err_opt, "k-", lw=3, alpha=0.3, label=f"optimal rank-{k}")
ax.plot(block * np.arange(1, len(err_isvd) + 1), err_isvd, "C2.-", label="IncrementalSVD")
ax.set_xlabel("samples seen")
ax.set_ylabel("relative error of the projection")
ax.legend()
ax.set_title("partial_fit on batches of rows")
plt.show()
