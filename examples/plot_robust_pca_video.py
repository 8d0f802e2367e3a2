"""
Robust PCA: background and foreground of a surveillance video
=============================================================

A fixed camera films a static scene; cars and people cross it. Stacked as the columns of a
(pixels x frames) matrix, the background is (nearly) the same column again and again, a
low-rank matrix, and the moving objects touch only a few pixels of each frame, a sparse one.
:func:`sparselin.robust.robust_pca` separates the two:

* ``method="pcp"`` (principal component pursuit) splits ``M = L + S`` with a low-rank ``L``
  and a sparse ``S``, with no rank to choose;
* ``method="rsvddpd"`` fits a rank-``rank`` robust SVD whose weights ignore the outlying
  pixels (the moving objects, and whole tampered frames) instead of averaging them in.

The video here is synthesised, so that the true background and the true object masks are
known and the separation can be scored. :func:`sparselin.robust.frames_to_matrix` and
:func:`sparselin.robust.matrix_to_frames` do the reshaping.
"""

# %%
# A synthetic surveillance video
# ------------------------------
# 120 grayscale frames of 48 x 64 pixels with intensities in [0, 1]: a textured static
# background under a slow illumination drift, three objects moving at constant speeds, sensor
# noise, and three tampered frames (two of random noise, one half covered), as a camera
# that is blinded or hijacked for a moment.

import time

import matplotlib.pyplot as plt
import numpy as np

from sparselin.robust import frames_to_matrix, matrix_to_frames, robust_pca

rng = np.random.default_rng(0)
T, H, W = 120, 48, 64
yy, xx = np.mgrid[0:H, 0:W]
texture = (
    0.45
    + 0.15 * np.sin(xx / 3.0) * np.cos(yy / 5.0)
    + 0.10 * np.sign(np.sin(xx / 9.0))  # building facades
    + 0.05 * rng.standard_normal((H, W))
)
texture[30:, :] = 0.25 + 0.02 * rng.standard_normal((18, W))  # the road
gain = 1.0 + 0.04 * np.sin(np.linspace(0, 2 * np.pi, T))  # daylight drift
background = gain[:, None, None] * texture[None]

video = background.copy()
objects = np.zeros((T, H, W), dtype=bool)
for y0, h, w, speed, start in [(33, 6, 12, 1.2, 0), (40, 5, 9, -0.8, 40), (18, 9, 4, 0.5, 10)]:
    for t in range(T):
        x = int(start + speed * t) % (W - w)
        objects[t, y0 : y0 + h, x : x + w] = True
video[objects] = np.clip(video[objects] + 0.4, 0.0, 1.0)
video += 0.01 * rng.standard_normal(video.shape)
tampered = [37, 38, 90]
video[37:39] = rng.uniform(0.0, 1.0, (2, H, W))
video[90, :, : W // 2] = 0.95  # something in front of the lens
objects[tampered] = False

M, frame_shape = frames_to_matrix(video)
print(f"video {T} x {H} x {W} -> matrix {M.shape[0]} x {M.shape[1]} (pixels x frames)")

# %%
# Principal component pursuit
# ---------------------------
# The default ``lam = 1 / sqrt(max(m, n))`` and ``tol = 1e-7`` need no tuning here.

t0 = time.perf_counter()
pcp = robust_pca(M, random_state=0)
t_pcp = time.perf_counter() - t0
print(pcp)
print(f"PCP: {t_pcp:.2f} s, {pcp.n_iter} iterations, rank of the background {pcp.rank}")

# %%
# rSVDdpd, the robust SVD
# -----------------------
# A rank-1 robust fit is the background model of the rSVDdpd paper (Roy, Basu and Ghosh);
# ``alpha`` trades efficiency for robustness (0 is the ordinary SVD). The residuals are
# measured in units of the inter-quartile range of the whole video, which the bright
# textured scene makes wide compared with the +0.4 contrast of the objects, so a large
# ``alpha`` is needed to ignore them: 1.0, at the top of the range the authors used for their
# videos. The ordinary rank-1 SVD is shown for comparison: it averages the objects and the
# tampered frames into the background.

t0 = time.perf_counter()
dpd = robust_pca(M, method="rsvddpd", rank=1, alpha=1.0, random_state=0)
t_dpd = time.perf_counter() - t0
print(f"rSVDdpd: {t_dpd:.2f} s, {dpd.n_iter} iterations")

U, s, Vt = np.linalg.svd(M, full_matrices=False)
L_svd = (U[:, :1] * s[:1]) @ Vt[:1]

good = np.setdiff1d(np.arange(T), tampered)
B_true = frames_to_matrix(background)[0]


def background_error(L):
    """Relative error of the background outside the tampered frames."""
    return np.linalg.norm(L[:, good] - B_true[:, good]) / np.linalg.norm(B_true[:, good])


def best_f1(L):
    """Best F1 of the foreground mask |M - L| > t over t = 0.01 ... 0.30."""
    diff = np.abs(M - L)[:, good]
    truth = frames_to_matrix(objects.astype(float))[0][:, good] > 0
    scores = []
    for t in np.arange(0.01, 0.31, 0.01):
        pred = diff > t
        scores.append(2 * np.sum(pred & truth) / (pred.sum() + truth.sum()))
    return max(scores)


for name, L in [("PCP", pcp.low_rank), ("rSVDdpd", dpd.low_rank), ("SVD", L_svd)]:
    print(f"{name:8s} background error {background_error(L):.4f}   best F1 {best_f1(L):.3f}")

# %%
# Frames side by side
# -------------------
# Rows: an ordinary frame, a frame with two objects, and the half-covered tampered frame.
# Columns: the original, the backgrounds of PCP, rSVDdpd and the plain SVD, and PCP's
# foreground ``|S|``. The plain SVD's background carries ghosts of the objects and of the
# tampered frames; the robust ones do not, and the tampered frame lands in the foreground.

bg_pcp = matrix_to_frames(pcp.low_rank, frame_shape)
fg_pcp = matrix_to_frames(np.abs(pcp.sparse), frame_shape)
bg_dpd = matrix_to_frames(dpd.low_rank, frame_shape)
bg_svd = matrix_to_frames(L_svd, frame_shape)
shown = [10, 60, 90]
columns = [
    ("original", video),
    ("PCP background", bg_pcp),
    ("rSVDdpd background", bg_dpd),
    ("SVD background", bg_svd),
    ("PCP foreground |S|", fg_pcp),
]
fig, axes = plt.subplots(len(shown), len(columns), figsize=(11, 5.2), layout="constrained")
for i, t in enumerate(shown):
    for j, (title, frames) in enumerate(columns):
        ax = axes[i, j]
        ax.imshow(frames[t], cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0:
            ax.set_title(title, fontsize=9)
        if j == 0:
            ax.set_ylabel(f"frame {t}" + (" (tampered)" if t in tampered else ""), fontsize=9)
plt.show()

# %%
# Where the robust fits look: the rSVDdpd weights
# -----------------------------------------------
# rSVDdpd returns a weight in [0, 1] for every pixel of every frame: near 0 where the pixel
# did not fit the background model (the outlier map). Averaged per frame, the weights single
# out the tampered frames; the per-frame background error tells the same story for the three
# fits.

weights = matrix_to_frames(dpd.weights, frame_shape)
err_t = {
    name: np.linalg.norm(L - B_true, axis=0) / np.linalg.norm(B_true, axis=0)
    for name, L in [("PCP", pcp.low_rank), ("rSVDdpd", dpd.low_rank), ("SVD", L_svd)]
}
fig, (ax0, ax1, ax2) = plt.subplots(
    1, 3, figsize=(11, 3.2), layout="constrained", width_ratios=[1, 1.4, 1.4]
)
ax0.imshow(weights[60], cmap="magma", vmin=0, vmax=1)
ax0.set_title("rSVDdpd weights, frame 60", fontsize=9)
ax0.set_xticks([])
ax0.set_yticks([])
ax1.plot(weights.mean(axis=(1, 2)), "C3")
ax1.set_xlabel("frame")
ax1.set_title("mean weight per frame", fontsize=9)
for name, e in err_t.items():
    ax2.semilogy(e, label=name)
ax2.set_xlabel("frame")
ax2.set_title("background error per frame", fontsize=9)
ax2.legend(fontsize=8)
plt.show()
