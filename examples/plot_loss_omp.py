"""
Loss-based OMP: phase transitions and robustness to outliers
============================================================

:func:`sparselin.recovery.loss_omp` is the greedy side of the LASSO (Mohammad-Taheri and
Brugiapaglia): each step adds the atom whose one-coordinate move lowers a regularised loss
the most -- squared (``"lasso"``), square-root (``"sqrt_lasso"``) or absolute
(``"lad_lasso"``) data fit, plus a weighted l0 or l1 penalty -- and it stops by itself once
no atom outside the support lowers the loss any more. Plain OMP
(:func:`sparselin.recovery.omp`) has to be told when to stop.

This example compares them on two questions:

1. **Phase transition.** For which undersampling ``delta = m / N`` and sparsity
   ``rho = s / m`` is an ``s``-sparse vector recovered from ``m`` Gaussian measurements?
   OMP is given the true ``s``; the loss-based variants are not, and use the ``lam`` the
   paper's Experiment I found at this noise level (the square-root one is the same at every
   noise level).
2. **Gross outliers.** With 5-20% of the measurements hit by errors 100 times the signal's
   size, the absolute-deviation loss (LAD-OMP, and the convex LAD-LASSO
   :func:`sparselin.recovery.lad_lasso`) still recovers the signal; OMP and the LASSO
   (:func:`sparselin.recovery.weighted_lasso`, at its best ``lam``) do not.
"""

# %%
# Phase transition
# ----------------
# N = 100 columns, unit-norm Gaussian ``A``, noise of norm 1e-3; success means a relative
# error below 1e-2. Each cell of the grid is a few random trials (enough to place the
# transition; the curves below are the 50% contours of the success rate).

import matplotlib.pyplot as plt
import numpy as np

from sparselin.recovery import lad_lasso, loss_omp, omp, weighted_lasso


def make_problem(rng, m, N, s, eta=1e-3, corrupt=0.0):
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
N, trials = 100, 6
deltas = np.array([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
rhos = np.array([0.05, 0.15, 0.25, 0.35, 0.45, 0.55])
methods = {
    "OMP (told s)": None,
    "lasso-l1, lam = 3.2e-4": dict(loss="lasso", penalty="l1", lam=3.2e-4),
    "SR-lasso-l1, lam = 0.178": dict(loss="sqrt_lasso", penalty="l1", lam=0.178),
}
success = {name: np.zeros((rhos.size, deltas.size)) for name in methods}
for j, delta in enumerate(deltas):
    m = round(delta * N)
    for i, rho in enumerate(rhos):
        s = max(1, round(rho * m))
        for _ in range(trials):
            A, x, y = make_problem(rng, m, N, s)
            for name, kw in methods.items():
                if kw is None:
                    xh = omp(A, y, n_nonzero=s)
                else:
                    # No sparsity given: at most m atoms, and the loss decides when to stop.
                    xh = loss_omp(A, y, **kw).coef
                success[name][i, j] += rel_err(xh, x) < 1e-2
for name in methods:
    success[name] /= trials

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
styles = [("k", "-"), ("C1", "--"), ("C2", "-.")]
for (name, rate), (color, ls) in zip(success.items(), styles, strict=True):
    ax1.contour(deltas, rhos, rate, levels=[0.5], colors=color, linestyles=ls)
    ax1.plot([], [], color=color, ls=ls, label=name)  # a contour set has no legend entry
ax1.set_xlabel("delta = m / N")
ax1.set_ylabel("rho = s / m")
ax1.set_title("50% recovery: below each curve, recovery succeeds")
ax1.legend(fontsize=8, loc="upper left")

j_half = int(np.flatnonzero(deltas == 0.5)[0])
for (name, rate), (color, ls) in zip(success.items(), styles, strict=True):
    ax2.plot(rhos, rate[:, j_half], color=color, ls=ls, marker="o", label=name)
ax2.set_xlabel("rho = s / m")
ax2.set_ylabel(f"success rate ({trials} trials)")
ax2.set_title("Cut at delta = 0.5 (m = 50, N = 100)")
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# The loss-based variants reach OMP's transition without being told ``s``: they stop at a
# fixed point of their loss. The square-root variant's ``lam`` needs no knowledge of the
# noise level either; its price shows at the sparsest end, where a coefficient smaller than
# about ``lam`` times the residual norm is never worth an atom (its gain is exactly zero).

print("success at delta = 0.5, by rho:", rhos.tolist())
for name, rate in success.items():
    print(f"  {name:26s}", np.round(rate[:, j_half], 2).tolist())

# %%
# Gross outliers
# --------------
# The paper's corrupted setting: m = 150, N = 300, s = 10, noise of norm 1e-3, and a
# fraction of the measurements hit by ``100 * N(0, 1)`` errors. LAD-OMP refits by least
# absolute deviations, so each outlier costs it its size once instead of its square; its
# ``lam`` (1.78) is the same at every corruption level. The LASSO gets the best of three
# ``lam`` values per trial (smaller ones fail as badly and take longer), and still fails.

levels = [0.05, 0.10, 0.15, 0.20]
robust = {"OMP (told s)": [], "LASSO, best lam": [], "LAD-OMP (l1, lam = 1.78)": []}
robust["LAD-LASSO (convex, lam = 1)"] = []
for level in levels:
    errs = {name: [] for name in robust}
    for _ in range(3):
        A, x, y = make_problem(rng, 150, 300, 10, corrupt=level)
        errs["OMP (told s)"].append(rel_err(omp(A, y, n_nonzero=10), x))
        errs["LASSO, best lam"].append(
            min(rel_err(weighted_lasso(A, y, lam), x) for lam in (1.0, 10.0, 100.0))
        )
        lad = loss_omp(A, y, loss="lad_lasso", penalty="l1", lam=1.78, n_nonzero=30)
        errs["LAD-OMP (l1, lam = 1.78)"].append(rel_err(lad.coef, x))
        errs["LAD-LASSO (convex, lam = 1)"].append(rel_err(lad_lasso(A, y, 1.0), x))
    for name, e in errs.items():
        robust[name].append(np.median(e))

fig, ax = plt.subplots(figsize=(7, 4))
for (name, e), marker in zip(robust.items(), "osD^", strict=True):
    ax.semilogy(100 * np.array(levels), e, marker=marker, label=name)
ax.axhline(1e-2, color="gray", lw=0.8, ls=":")
ax.set_xlabel("corrupted measurements (%)")
ax.set_ylabel("median relative error (3 trials)")
ax.set_title("Outliers 100x the signal: only the LAD loss recovers")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# The numbers behind the plot:

for k, level in enumerate(levels):
    line = "   ".join(
        f"{name.split(' (')[0].split(',')[0]} {e[k]:.1e}" for name, e in robust.items()
    )
    print(f"{100 * level:3.0f}% corrupted: {line}")
