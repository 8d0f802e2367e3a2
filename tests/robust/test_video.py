"""The video helpers: frames to the pixels x frames matrix and back, and the few-line
background / foreground separation they are for."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sparselin.robust import frames_to_matrix, matrix_to_frames, robust_pca


@pytest.mark.parametrize("shape", [(5, 4, 3), (5, 4, 3, 3), (1, 6, 2), (4, 1, 1), (3, 2, 5, 1)])
def test_round_trip_and_layout(shape):
    frames = np.random.default_rng(0).random(shape)
    before = frames.copy()
    M, frame_shape = frames_to_matrix(frames)
    T = shape[0]
    assert frame_shape == shape[1:]
    assert M.shape == (int(np.prod(shape[1:])), T) and M.flags.c_contiguous
    for t in range(T):  # column t is frame t in row-major order, channels innermost
        np.testing.assert_array_equal(M[:, t], frames[t].ravel())
    back = matrix_to_frames(M, frame_shape)
    np.testing.assert_array_equal(back, frames)
    # New arrays, never views: writing to them leaves the input alone.
    assert not np.shares_memory(M, frames) and not np.shares_memory(back, M)
    M[...] = -1
    np.testing.assert_array_equal(frames, before)


@pytest.mark.parametrize("channels", [None, 3])
def test_list_of_frames(channels):
    rng = np.random.default_rng(1)
    shape = (6, 5) if channels is None else (6, 5, channels)
    frames = [rng.random(shape) for _ in range(4)]
    M, frame_shape = frames_to_matrix(frames)
    assert frame_shape == shape and M.shape == (int(np.prod(shape)), 4)
    np.testing.assert_array_equal(matrix_to_frames(M, frame_shape), np.stack(frames))
    M2, _ = frames_to_matrix(tuple(frames))
    np.testing.assert_array_equal(M, M2)


def test_dtypes():
    frames = np.random.default_rng(2).integers(0, 256, (3, 4, 5)).astype(np.uint8)
    M, _ = frames_to_matrix(frames)
    assert M.dtype == np.float64
    np.testing.assert_array_equal(M[:, 0], frames[0].ravel())  # values are not rescaled
    M32, _ = frames_to_matrix(frames, dtype=np.float32)
    assert M32.dtype == np.float32
    assert frames_to_matrix(frames.astype(np.float32))[0].dtype == np.float32
    assert frames_to_matrix(frames.astype(np.float16))[0].dtype == np.float32
    back = matrix_to_frames(M32, (4, 5))
    assert back.dtype == np.float32


def test_nan_pixels_are_missing_entries():
    rng = np.random.default_rng(3)
    background = rng.random((12, 10))
    frames = np.repeat(background[None], 30, axis=0)
    frames[rng.random(frames.shape) < 0.1] = np.nan  # dead pixels
    M, shape = frames_to_matrix(frames)
    res = robust_pca(M, random_state=0)
    bg = matrix_to_frames(res.low_rank, shape)
    assert np.isfinite(bg).all()
    assert np.abs(bg - background).max() < 1e-4


def _video(rng, T=60, H=24, W=32, tampered=()):
    """A textured static background, a bright box moving across, noise, tampered frames."""
    yy, xx = np.mgrid[0:H, 0:W]
    background = 0.5 + 0.2 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + 0.05 * rng.random((H, W))
    frames = np.repeat(background[None], T, axis=0)
    truth = np.zeros(frames.shape, bool)
    for t in range(T):
        x0 = (t * 2) % (W - 6)
        frames[t, 8:14, x0 : x0 + 6] = 1.0
        truth[t, 8:14, x0 : x0 + 6] = True
    frames += 0.002 * rng.standard_normal(frames.shape)
    for t in tampered:  # a camera covered by a random image
        frames[t] = rng.random((H, W))
        truth[t] = True
    return frames, background, truth


def test_background_and_foreground_separation():
    rng = np.random.default_rng(4)
    frames, background, truth = _video(rng, tampered=(20, 41))
    M, shape = frames_to_matrix(frames)
    with warnings.catch_warnings():
        # Dense noise goes into many tiny singular values of L; that is no regime failure.
        warnings.simplefilter("error")
        res = robust_pca(M, random_state=0)
    bg = matrix_to_frames(res.low_rank, shape)
    fg = matrix_to_frames(res.sparse, shape)
    assert bg.shape == fg.shape == frames.shape
    clean = [t for t in range(frames.shape[0]) if t not in (20, 41)]
    err = np.linalg.norm(bg[clean] - background) / np.linalg.norm(
        np.repeat(background[None], 58, 0)
    )
    assert err < 0.02
    # Thresholded |foreground| finds the moving box: F1 above 0.9 at the best threshold.
    best = 0.0
    for t in np.arange(0.01, 0.31, 0.01):
        found = np.abs(fg) > t
        tp = np.sum(found & truth)
        f1 = 2 * tp / max(found.sum() + truth.sum(), 1)
        best = max(best, f1)
    assert best > 0.9
    # The plain SVD background is visibly contaminated by the moving object and tampering.
    U, s, Vt = np.linalg.svd(M, full_matrices=False)
    bg_svd = matrix_to_frames((U[:, :1] * s[:1]) @ Vt[:1], shape)
    err_svd = np.linalg.norm(bg_svd[clean] - background) / np.linalg.norm(
        np.repeat(background[None], 58, 0)
    )
    assert err_svd > 3 * err


def test_backends(backend):
    frames = np.random.default_rng(5).random((4, 3, 5))
    dev = backend.asarray(frames)
    M, shape = frames_to_matrix(dev)
    assert type(M) is type(dev) and shape == (3, 5)
    np.testing.assert_array_equal(backend.to_host(M), frames_to_matrix(frames)[0])
    back = matrix_to_frames(M, shape)
    assert type(back) is type(dev)
    np.testing.assert_array_equal(backend.to_host(back), frames)
    M2, _ = frames_to_matrix([dev[0], dev[1]])
    assert type(M2) is type(dev) and M2.shape == (15, 2)


_F = np.zeros((2, 3, 4))

BAD_FRAMES = [
    ([], {}, ValueError, "empty"),
    (np.zeros((3, 4)), {}, ValueError, r"\(T, H, W\)"),
    (np.zeros((2, 3, 4, 5, 6)), {}, ValueError, r"\(T, H, W\)"),
    (np.zeros((0, 3, 4)), {}, ValueError, "non-empty"),
    ([np.zeros((3, 4)), np.zeros((3, 5))], {}, ValueError, "one shape"),
    ([np.zeros(4)], {}, ValueError, "2-D"),
    (_F.astype(complex), {}, TypeError, "complex"),
    (np.array([[["a"]]]), {}, TypeError, "real numbers"),
    (np.ma.MaskedArray(_F), {}, TypeError, "masked"),
    ("video", {}, TypeError, "NumPy or CuPy"),
    (_F, {"dtype": np.int32}, TypeError, "float32 or float64"),
    (_F, {"dtype": "nonsense"}, TypeError, "float32 or float64"),
]


@pytest.mark.parametrize("frames, kwargs, error, match", BAD_FRAMES)
def test_frames_to_matrix_bad_input(frames, kwargs, error, match):
    before = frames.copy() if isinstance(frames, np.ndarray) else frames
    with pytest.raises(error, match=match):
        frames_to_matrix(frames, **kwargs)
    if isinstance(frames, np.ndarray):
        np.testing.assert_array_equal(frames, before)


_M = np.zeros((12, 2))

BAD_MATRIX = [
    ([[0.0]], (1, 1), TypeError, "NumPy or CuPy"),
    (np.zeros(12), (3, 4), ValueError, "2-D"),
    (_M, (3, 5), ValueError, "15 pixels"),
    (_M, (12,), ValueError, r"\(H, W\)"),
    (_M, (0, 4), ValueError, "positive"),
    (_M, (3, 4.0), TypeError, "tuple of ints"),
    (_M, "3x4", TypeError, "tuple of ints"),
    (_M, (1, 3, 4, 1), ValueError, r"\(H, W\)"),
]


@pytest.mark.parametrize("M, frame_shape, error, match", BAD_MATRIX)
def test_matrix_to_frames_bad_input(M, frame_shape, error, match):
    before = M.copy() if isinstance(M, np.ndarray) else M
    with pytest.raises(error, match=match):
        matrix_to_frames(M, frame_shape)
    if isinstance(M, np.ndarray):
        np.testing.assert_array_equal(M, before)
