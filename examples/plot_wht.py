"""
Walsh-Hadamard transforms: orderings, odd widths and speed
==========================================================

:func:`sparselin.transforms.fwht` computes the Walsh-Hadamard transform
``y = W x`` in ``O(N log N)`` along any axis of a batch. This example

* shows the rows of ``W`` (the Walsh functions) in the three orders the transform offers,
  and checks the transform against :func:`scipy.linalg.hadamard`,
* transforms a width of the form ``m * 2**k`` (28672 = 28 * 1024, an LLM's MLP width) with no
  padding,
* and times it against the usual vectorised NumPy implementation.
"""

# %%
# The Walsh functions in three orders
# -----------------------------------
# ``order="natural"`` is the Sylvester (Hadamard) order of :func:`scipy.linalg.hadamard`;
# ``"sequency"`` sorts the rows by their number of sign changes, like frequencies of a
# Fourier basis (MATLAB's default); ``"dyadic"`` (Paley) is the bit-reversed natural order.
# Transforming the identity gives the matrix itself.

import time

import matplotlib.pyplot as plt
import numpy as np
import scipy.linalg

from sparselin.transforms import fwht

N = 32
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), constrained_layout=True)
for ax, order in zip(axes, ["natural", "sequency", "dyadic"], strict=True):
    W = fwht(np.eye(N), axis=0, order=order)
    ax.imshow(W, cmap="RdBu", vmin=-1, vmax=1)
    ax.set_title(f'order="{order}"')
    ax.set_xlabel("m (time)")
axes[0].set_ylabel("k (row of W)")
fig.suptitle(f"Walsh-Hadamard matrices of size {N} (red +1, blue -1)")

x = np.random.default_rng(0).standard_normal((8, 1024))
H = scipy.linalg.hadamard(1024)
print("max |fwht(x) - x H^T|:", np.abs(fwht(x) - x @ H.T).max())
print(
    "orthonormal and its own inverse:",
    np.allclose(fwht(fwht(x, normalize="ortho"), normalize="ortho"), x),
)

# %%
# Widths that are not powers of two
# ---------------------------------
# For ``N = m * 2**k`` with ``m`` in {12, 20, 28} the transform is ``kron(A_m, H_{2**k})``
# with ``A_m`` a symmetric Hadamard matrix of order m, so it is still orthogonal up to
# scale and its own inverse: the rotation used to spread outliers before quantising model
# weights works on the layers' own widths.

w = np.random.default_rng(1).standard_normal((4, 28672)).astype(np.float32)
r = fwht(w, normalize="ortho")
print(
    r.dtype,
    "norms kept:",
    np.allclose(np.linalg.norm(r, axis=1), np.linalg.norm(w, axis=1), rtol=1e-5),
)
print("inverse by the same call:", np.allclose(fwht(r, normalize="ortho"), w, atol=1e-5))


# %%
# Speed against NumPy
# -------------------
# The usual vectorised implementation makes one reshape-and-combine pass over memory per
# level; sparselin's Numba kernels do all levels inside cache-sized blocks and the rest in
# radix-8 passes. Times on the machine that built this page (one run, small sizes).


def numpy_fwht(x):
    y = x.copy()
    rows, n = y.shape
    h = 1
    while h < n:
        v = y.reshape(rows, n // (2 * h), 2, h)
        a = v[:, :, 0, :].copy()
        v[:, :, 0, :] += v[:, :, 1, :]
        v[:, :, 1, :] = a - v[:, :, 1, :]
        h *= 2
    return y


def best_time(fn, repeat=3):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


sizes = [2**k for k in range(6, 15, 2)]
t_sparselin, t_numpy = [], []
for n in sizes:
    xb = np.random.default_rng(2).standard_normal((2**16 // n, n))  # 2**16 numbers each
    t_sparselin.append(best_time(lambda xb=xb: fwht(xb)))
    t_numpy.append(best_time(lambda xb=xb: numpy_fwht(xb)))

fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
ax.loglog(sizes, np.array(t_numpy) * 1e3, "o-", label="NumPy reshape butterflies")
ax.loglog(sizes, np.array(t_sparselin) * 1e3, "s-", label="sparselin fwht")
ax.set_xlabel("transform length N (batch of 2**16 / N rows)")
ax.set_ylabel("time (ms)")
ax.legend()
ax.set_title("Batched float64 transforms of 2**16 numbers")
for n, a, b in zip(sizes, t_numpy, t_sparselin, strict=True):
    print(f"N = {n:6d}: sparselin {b * 1e3:7.3f} ms, NumPy {a * 1e3:7.3f} ms, {a / b:5.1f}x")

# %%
# Sparse spectra
# --------------
# When only K of the N coefficients are nonzero, :func:`sparselin.transforms.sparse_wht`
# finds them from ``O(K log N)`` samples instead of all N: see
# :ref:`sphx_glr_auto_examples_plot_sparse_wht.py`.

plt.show()
