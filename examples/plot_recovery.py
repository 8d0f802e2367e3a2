"""
Sparse recovery: OMP, loss-based weighted OMP and the LASSO family
==================================================================

Recover a sparse vector ``x`` from few noisy measurements ``y = A x + e`` with

* :func:`sparselin.recovery.omp`, orthogonal matching pursuit;
* :func:`sparselin.recovery.loss_omp`, the loss-based OMP of Mohammad-Taheri and
  Brugiapaglia, which selects the atom that lowers a regularised loss the most and stops by
  itself once no atom does;
* the convex solvers :func:`sparselin.recovery.weighted_lasso`,
  :func:`sparselin.recovery.sqrt_lasso` and :func:`sparselin.recovery.lad_lasso`.

The setting is the paper's Experiment IV at a smaller trial count: A is 100 x 200 Gaussian
with unit-norm columns, ``x`` has 15 nonzeros, and ``||e|| = 1e-3``.
"""

# %%
# Error along the iterations
# --------------------------
# OMP keeps adding atoms and fits the noise; the loss-based variants with a suitable
# ``lam`` stop after about ``s`` atoms, at a fixed point, and keep their error from then on.
# The square-root loss's ``lam`` is scale- and noise-free (the same value works at every
# noise level).

import matplotlib.pyplot as plt
import numpy as np

from sparselin.recovery import lad_lasso, loss_omp, omp, sqrt_lasso, weighted_lasso


def make_problem(rng, m=100, N=200, s=15, eta=1e-3, corrupt=0.0):
    A = rng.standard_normal((m, N))
    A /= np.linalg.norm(A, axis=0)
    x = np.zeros(N)
    x[rng.permutation(N)[:s]] = rng.standard_normal(s)
    g = rng.standard_normal(m)
    y = A @ x + eta * g / np.linalg.norm(g)
    if corrupt:
        k = round(corrupt * m)
        y[rng.choice(m, k, replace=False)] += 100 * rng.standard_normal(k)
    return A, x, y


def rel_err(xh, x):
    return np.linalg.norm(xh - x) / np.linalg.norm(x)


rng = np.random.default_rng(0)
n_iter = 100
variants = {
    "OMP (lasso-l0, lam = 0)": dict(loss="lasso", penalty="l0", lam=0.0),
    "lasso-l1, lam = 1e-3": dict(loss="lasso", penalty="l1", lam=1e-3),
    "SR-lasso-l1, lam = 0.158": dict(loss="sqrt_lasso", penalty="l1", lam=0.158),
}
curves = {name: [] for name in variants}
convex = {"weighted LASSO": [], "SR-LASSO": []}
for _ in range(5):
    A, x, y = make_problem(rng)
    for name, kw in variants.items():
        res = loss_omp(A, y, n_nonzero=n_iter, return_path=True, **kw)
        err = [rel_err(c, x) for c in res.coef_path[1:]]
        err += [err[-1]] * (n_iter - len(err))  # a stopped run keeps its last iterate
        curves[name].append(err)
    convex["weighted LASSO"].append(rel_err(weighted_lasso(A, y, 1.78e-4), x))
    convex["SR-LASSO"].append(rel_err(sqrt_lasso(A, y, 0.126), x))

fig, ax1 = plt.subplots(figsize=(7, 4))
its = np.arange(1, n_iter + 1)
for name, errs in curves.items():
    ax1.semilogy(its, np.exp(np.mean(np.log(errs), axis=0)), label=name)
for (name, errs), style in zip(convex.items(), ("--", ":"), strict=True):
    ax1.axhline(np.exp(np.mean(np.log(errs))), color="gray", ls=style, label=f"convex {name}")
ax1.set_xlabel("iteration")
ax1.set_ylabel("relative error (geometric mean of 5 trials)")
ax1.set_title("Greedy variants freeze after ~s atoms; OMP overfits")
ax1.legend(fontsize=8)
plt.show()

# %%
# Gross outliers: LAD
# -------------------
# Corrupt 10% of the measurements with outliers 100 times the signal size. The LAD loss
# (absolute deviations) ignores them, in the greedy (LAD-OMP) and in the convex
# (LAD-LASSO) form; OMP and the squared-loss variants cannot.

levels = [0.0, 0.05, 0.1, 0.2]
res_lad, res_omp, res_cvx = [], [], []
for level in levels:
    e1, e2, e3 = [], [], []
    for _ in range(3):
        A, x, y = make_problem(rng, m=150, N=300, s=10, corrupt=level)
        e1.append(
            rel_err(loss_omp(A, y, loss="lad_lasso", penalty="l1", lam=1.78, n_nonzero=30).coef, x)
        )
        e2.append(rel_err(omp(A, y, n_nonzero=10), x))
        e3.append(rel_err(lad_lasso(A, y, 1.0), x))
    res_lad.append(np.median(e1))
    res_omp.append(np.median(e2))
    res_cvx.append(np.median(e3))
fig, ax2 = plt.subplots(figsize=(7, 4))
ax2.semilogy(100 * np.array(levels), res_omp, "o-", label="OMP (10 atoms)")
ax2.semilogy(100 * np.array(levels), res_lad, "s-", label="LAD-l1 OMP, lam = 1.78")
ax2.semilogy(100 * np.array(levels), res_cvx, "^-", label="convex LAD-LASSO, lam = 1")
ax2.set_xlabel("corrupted measurements (%)")
ax2.set_ylabel("median relative error")
ax2.set_title("Robustness to outliers")
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()

for level, a, b, c in zip(levels, res_omp, res_lad, res_cvx, strict=True):
    print(f"{100 * level:4.0f}% corrupted: OMP {a:.2e}   LAD-OMP {b:.2e}   LAD-LASSO {c:.2e}")
