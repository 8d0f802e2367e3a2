"""
Truncated SVD: fixed rank, fixed accuracy and speed
===================================================

:func:`sparselin.truncated_svd` computes the leading singular triplets of a matrix. This
example builds a test matrix with a known spectrum and checks, against the exact SVD from
:func:`numpy.linalg.svd`,

* how close the rank-``k`` approximations of each method come to the best possible ones,
* that the fixed-accuracy mode (``tol``) picks a rank whose error meets ``tol``,

and times sparselin against :func:`sklearn.utils.extmath.randomized_svd` on the same matrix.
"""

# %%
# A test matrix with a known spectrum
# -----------------------------------
# :func:`sparselin.datasets.make_low_rank_matrix` draws random orthonormal factors and puts
# chosen singular values between them. A polynomial decay, ``σ_i = i^(-1.5)``, is a hard case
# for randomized methods: there is no clear gap after which the spectrum drops.

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.utils.extmath import randomized_svd

from sparselin import truncated_svd
from sparselin.datasets import make_low_rank_matrix

m, n = 1500, 600
s_model = (np.arange(n) + 1.0) ** -1.5
A = make_low_rank_matrix(m, n, decay=s_model, random_state=0)

# The reference: every singular value, from LAPACK.
s_exact = np.linalg.svd(A, compute_uv=False)
norm_A = np.linalg.norm(A)
# optimal_err[k] = best relative Frobenius error of any rank-k matrix (Eckart–Young).
tail = np.sqrt(np.maximum(norm_A**2 - np.cumsum(np.r_[0.0, s_exact**2]), 0.0))
optimal_err = tail / norm_A

U, s, Vt = truncated_svd(A, k=100, random_state=0)

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.loglog(np.arange(1, n + 1), s_exact, color="0.6", lw=3, label="numpy.linalg.svd (all)")
ax.loglog(np.arange(1, 101), s, "C0.", ms=4, label="truncated_svd, k=100")
ax.set_xlabel("index i")
ax.set_ylabel(r"singular value $\sigma_i$")
ax.set_title("Spectrum of the test matrix")
ax.legend()
plt.show()

# %%
# Error against rank, for each method
# -----------------------------------
# The relative error ``‖A − U diag(s) Vt‖_F / ‖A‖_F`` of the returned factors, next to the
# optimal error at the same rank. ``"lanczos"`` is accurate to machine precision and lies on
# the optimal curve; the randomized methods stay within a small factor of it (right panel) at
# a fraction of the cost.

ranks = [5, 10, 20, 40, 80, 160]
methods = ["randomized", "block_krylov", "lanczos"]
errors = {method: [] for method in methods}
for method in methods:
    for k in ranks:
        U, s, Vt = truncated_svd(A, k=k, method=method, random_state=0)
        errors[method].append(np.linalg.norm(A - (U * s) @ Vt) / norm_A)

print(f"{'k':>5} {'optimal':>10}" + "".join(f"{mth:>14}" for mth in methods))
for i, k in enumerate(ranks):
    row = "".join(f"{errors[mth][i]:14.4e}" for mth in methods)
    print(f"{k:5d} {optimal_err[k]:10.4e}{row}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
ax1.loglog(ranks, optimal_err[ranks], "k-", lw=3, alpha=0.3, label="optimal (exact SVD)")
for method, marker in zip(methods, "osd", strict=True):
    ax1.loglog(ranks, errors[method], marker + "--", ms=5, label=method)
ax1.set_xlabel("rank k")
ax1.set_ylabel("relative Frobenius error")
ax1.legend()
for method, marker in zip(methods, "osd", strict=True):
    ax2.semilogx(ranks, np.array(errors[method]) / optimal_err[ranks], marker + "--", label=method)
ax2.axhline(1.0, color="k", lw=1)
ax2.set_xlabel("rank k")
ax2.set_ylabel("error / optimal error")
fig.suptitle("Rank-k approximation error")
plt.show()

# %%
# Fixed accuracy: ask for an error, get a rank
# --------------------------------------------
# With ``tol`` instead of ``k``, :func:`~sparselin.truncated_svd` grows its basis block by
# block until the relative error drops below ``tol``, and returns the smallest rank that meets
# it. ``return_error=True`` also returns the error reached. The optimal rank is the smallest
# ``k`` whose *exact* truncation meets ``tol``: no method can do better.

tols = [1e-1, 3e-2, 1e-2, 3e-3]
found = []
for tol in tols:
    U, s, Vt, err = truncated_svd(A, tol=tol, random_state=0, return_error=True)
    true_err = np.linalg.norm(A - (U * s) @ Vt) / norm_A
    k_opt = int(np.argmax(optimal_err <= tol))
    found.append((s.shape[0], k_opt, err, true_err))
    print(
        f"tol={tol:<6g} rank {s.shape[0]:4d} (optimal {k_opt:4d})  "
        f"reported error {err:.4f}, actual {true_err:.4f}"
    )
    assert true_err <= tol * 1.01

rank_found, rank_opt, err_reported, err_actual = map(np.array, zip(*found, strict=True))
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
ax1.loglog(tols, rank_opt, "k-", lw=3, alpha=0.3, label="optimal rank")
ax1.loglog(tols, rank_found, "C0o--", label="rank chosen")
ax1.set_xlabel("tol")
ax1.set_ylabel("rank")
ax1.invert_xaxis()
ax1.legend()
ax2.loglog(tols, tols, "k-", lw=1, label="tol")
ax2.loglog(tols, err_actual, "C1o", label="actual error")
ax2.loglog(tols, err_reported, "C2x", ms=8, label="reported error")
ax2.set_xlabel("tol")
ax2.set_ylabel("relative Frobenius error")
ax2.invert_xaxis()
ax2.legend()
fig.suptitle("Fixed-accuracy mode")
plt.show()

# %%
# Timing against scikit-learn
# ---------------------------
# The same matrix, the same rank, the same number of oversamples and power iterations, for
# :func:`sklearn.utils.extmath.randomized_svd` and :func:`sparselin.truncated_svd`; the best of
# three runs each, after one warm-up run (which also compiles any Numba kernels). Both reach
# about the same error here. The times depend on the machine and its BLAS; the documentation
# is built with one BLAS thread (see ``docs/conf.py``), and ``benchmarks/`` holds the
# systematic comparisons.


def best_time(fn, repeat=3):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


k, n_iter = 50, 4
timings = {}
for name, fn in {
    "sklearn randomized_svd": lambda: randomized_svd(
        A, k, n_oversamples=10, n_iter=n_iter, random_state=0
    ),
    "sparselin randomized": lambda: truncated_svd(
        A, k, n_oversamples=10, n_iter=n_iter, method="randomized", random_state=0
    ),
    "sparselin block_krylov": lambda: truncated_svd(
        A, k, n_oversamples=10, n_iter=n_iter, method="block_krylov", random_state=0
    ),
}.items():
    t, (U, s, Vt) = best_time(fn)
    err = np.linalg.norm(A - (U * s) @ Vt) / norm_A
    timings[name] = (t, err)
    print(f"{name:24s} {t * 1e3:8.1f} ms   relative error {err:.4e}")
print(f"{'optimal':24s} {'':8s}      relative error {optimal_err[k]:.4e}")

fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
names = list(timings)
labels = [f"{nm}\nerror {timings[nm][1]:.3e}" for nm in names]
ax.barh(labels, [timings[nm][0] * 1e3 for nm in names], color=["0.6", "C0", "C1"])
ax.set_xlabel(f"time (ms), best of 3: {m} x {n}, rank {k}, n_iter={n_iter}")
ax.invert_yaxis()
ax.set_title("sparselin and scikit-learn on the same matrix")
plt.show()

# %%
# A drop-in for scikit-learn's ``TruncatedSVD``
# ---------------------------------------------
# :class:`sparselin.TruncatedSVD` takes the parameters of
# :class:`sklearn.decomposition.TruncatedSVD` and sets the same fitted attributes, so
# changing the import is enough. Here both reduce a sparse, TF-IDF-like matrix (20 000
# documents, 5 000 terms, 0.5% non-zero) to 100 components, with the same settings.

import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD as SklearnTruncatedSVD

from sparselin import TruncatedSVD

X = sp.random(20_000, 5_000, density=0.005, format="csr", random_state=0)
X.data = np.log1p(100 * X.data)
results = {}
for name, cls in {"sklearn": SklearnTruncatedSVD, "sparselin": TruncatedSVD}.items():
    est = cls(n_components=100, n_iter=5, random_state=0)
    est.fit(X)  # warm-up
    t0 = time.perf_counter()
    Z = est.fit_transform(X)
    results[name] = (time.perf_counter() - t0, est.explained_variance_ratio_.sum())
    print(
        f"{name:10s} fit_transform {results[name][0] * 1e3:7.1f} ms, "
        f"explained variance ratio {results[name][1]:.4f}, Z {Z.shape}"
    )

# %%
# Where scikit-learn needs the number of components, sparselin also accepts the fraction of
# ``‖X‖_F²`` to keep (as :class:`sklearn.decomposition.PCA` does for the variance), and picks
# the number of components itself — here for the dense test matrix from above.

est = TruncatedSVD(n_components=0.999, random_state=0).fit(A)
kept = est.singular_values_ @ est.singular_values_ / norm_A**2
print(f"n_components_ = {est.n_components_}, fraction of ||A||_F^2 kept: {kept:.5f}")

plt.show()
