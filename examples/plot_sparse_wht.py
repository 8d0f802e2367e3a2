"""
Learning the Walsh spectrum of a black-box Boolean function from a few thousand queries
=======================================================================================

A function ``f: {0, 1}**n -> R`` has the Walsh expansion
``f(m) = sum_k F[k] (-1)**popcount(k & m)``. When only a few coefficients ``F[k]`` are
nonzero (functions of a few parities of the inputs, low-order interactions in a fitness
landscape, a shallow decision tree), :func:`sparselin.transforms.sparse_wht` finds them by
*querying* ``f`` at ``O(K log N)`` well-chosen inputs, where the dense transform needs all
``N = 2**n`` values.

Here ``f`` is a Boolean function of 22 variables, the sign of a weighted vote of 5 parities
of its inputs. It is handed over as a black box (a Python function of an array of inputs);
the example finds its spectrum with SparseFHT, checks it against the exact spectrum and the
dense transform of all 4.2 million values, and then finds it again with SPRIGHT when every
query returns ``f`` plus Gaussian noise.
"""

# %%
# The black box
# -------------
# Inputs are integers ``m`` in ``[0, 2**22)`` (bit i = variable i). The function depends on
# the inputs only through the parities ``y_i = popcount(p_i & m) mod 2`` of five masks
# ``p_i``, so its spectrum lives on the 32 combinations (XORs) of the masks, and equals the
# 32-point Walsh transform of ``g(y) = sign(sum_i w_i (-1)**y_i)``: an exact reference.

import time

import matplotlib.pyplot as plt
import numpy as np
import scipy.linalg

from sparselin.transforms import fwht, sparse_wht

n = 22
rng = np.random.default_rng(7)
masks = rng.integers(1, 2**n, size=5, dtype=np.uint64)
weights = np.array([1.0, 0.8, 0.6, 0.45, 0.3])  # no subset sums to zero: sign is never 0


def parities(m, masks):
    """(len(m), len(masks)) 0/1 parities of m & mask."""
    return (np.bitwise_count(m[:, None] & masks[None, :]) & 1).astype(np.int64)


queries = {"count": 0}


def f(m):
    """The black box: f(m) = sign(sum_i w_i (-1)**<p_i, m>), in chunks of 2**20 inputs."""
    m = np.asarray(m, dtype=np.uint64)
    queries["count"] += m.size
    out = np.empty(m.size)
    for s in range(0, m.size, 1 << 20):
        y = parities(m[s : s + (1 << 20)], masks)
        out[s : s + (1 << 20)] = np.sign((1 - 2 * y) @ weights)
    return out


# The exact spectrum: g on the 32 parity patterns, its 32-point transform, and the
# frequency k of each pattern S (the XOR of the masks in S).
patterns = (np.arange(32)[:, None] >> np.arange(5)[None, :]) & 1  # y for each index
g = np.sign((1 - 2 * patterns) @ weights)
G = scipy.linalg.hadamard(32) @ g / 32
freq = np.zeros(32, dtype=np.uint64)
for i in range(5):
    freq[patterns[:, i] == 1] ^= masks[i]
true = {int(k): v for k, v in zip(freq, G, strict=True) if abs(v) > 1e-12}
print(f"the exact spectrum has {len(true)} nonzero coefficients out of 2^{n}")

# %%
# SparseFHT: exact queries
# ------------------------
# ``sparsity`` is an upper estimate of K, and a generous one pays off here: this support is
# not random but a linear subspace (all XORs of 5 masks), which a linear hash into as many
# bins as the subspace has points folds onto itself more often than a random support (with
# ``sparsity=32`` about 1 seed in 7 failed, and said so; with 64, none of 20). Each of the 3
# groups of the design subsamples ``f`` on a random 6-dimensional subspace (64 bins) at
# ``n - 6 + 1 = 17`` offsets, so the decoder reads at most 3 * 64 * 17 = 3264 inputs. The
# first call also compiles the small transforms (Numba), so it is made once untimed.

sparse_wht(f, 12, sparsity=4, method="sparsefht", on_failure="ignore")  # compiles the kernels
queries["count"] = 0
t0 = time.perf_counter()
spec = sparse_wht(f, n, sparsity=64, method="sparsefht", normalize="forward", random_state=0)
t_sparse = time.perf_counter() - t0
q_sparse = queries["count"]
print(spec)
print(f"{q_sparse} queries ({q_sparse / 2**n:.4%} of the inputs), {t_sparse * 1e3:.0f} ms")
found = dict(zip(spec.indices.tolist(), spec.values.tolist(), strict=True))
print("same support as the exact spectrum:", set(found) == set(true))
print("largest value error:", max(abs(found.get(k, 0.0) - v) for k, v in true.items()))

# %%
# The dense route: all 2**22 values and one fast transform
# --------------------------------------------------------
# The dense transform needs every value of ``f``: 4.2 million queries, and then an
# ``O(N log N)`` transform. Its result is the reference the sparse one must match.

queries["count"] = 0
t0 = time.perf_counter()
values = f(np.arange(2**n, dtype=np.uint64))
t_queries = time.perf_counter() - t0
t0 = time.perf_counter()
F_dense = fwht(values, normalize="forward")
t_fwht = time.perf_counter() - t0
q_dense = queries["count"]
print(f"dense: {q_dense} queries in {t_queries:.2f} s, fwht in {t_fwht * 1e3:.0f} ms")
print(
    "sparse result equals the dense transform:",
    np.allclose(spec.to_dense(), F_dense, atol=1e-9),
)
del values, F_dense

# %%
# SPRIGHT: noisy queries
# ----------------------
# Now every query returns ``f(m) + e`` with ``e ~ N(0, 0.25**2)``, independently per query
# (a noisy measurement, a stochastic simulator). SPRIGHT uses more offsets (chains) per group
# and decides every bit of ``k`` by a majority over them, and tests bins against the noise
# level, here estimated from the bins (``noise="auto"``).

noise_rng = np.random.default_rng(1)


def f_noisy(m):
    return f(m) + 0.25 * noise_rng.standard_normal(m.shape)


queries["count"] = 0
spec_noisy = sparse_wht(f_noisy, n, sparsity=64, noise="auto", normalize="forward", random_state=0)
q_noisy = queries["count"]
print(spec_noisy)
print(f"estimated noise std: {spec_noisy.noise_std:.3f} (true 0.25)")
found_noisy = dict(zip(spec_noisy.indices.tolist(), spec_noisy.values.tolist(), strict=True))
print("same support as the exact spectrum:", set(found_noisy) == set(true))
print("largest value error:", max(abs(found_noisy.get(k, 0.0) - v) for k, v in true.items()))

# %%
# Recovered against true coefficients, and the cost
# -------------------------------------------------

keys = sorted(true, key=lambda k: -abs(true[k]))
fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
x = np.arange(len(keys))
ax.bar(x - 0.25, [true[k] for k in keys], 0.25, label="exact")
ax.bar(x, [found.get(k, 0.0) for k in keys], 0.25, label=f"SparseFHT ({q_sparse} queries)")
ax.bar(
    x + 0.25,
    [found_noisy.get(k, 0.0) for k in keys],
    0.25,
    label=f"SPRIGHT, noisy ({q_noisy} queries)",
)
ax.set_xticks(x, [f"{k:06x}" for k in keys], rotation=90, fontsize=7)
ax.set_xlabel("frequency k (hex)")
ax.set_ylabel("F[k]")
ax.set_title(f"The {len(keys)} nonzero Walsh coefficients of f (n = {n})")
ax.legend(fontsize=8)

labels = ["SparseFHT", "SPRIGHT (noisy)", "dense: all values + fwht"]
bx.bar(labels, [q_sparse, q_noisy, q_dense], color=["C1", "C2", "C7"])
bx.set_yscale("log")
bx.set_ylabel("queries of f")
bx.set_title(
    f"Queries of f (time: dense {t_queries + t_fwht:.1f} s, SparseFHT {t_sparse * 1e3:.0f} ms)"
)
plt.show()
