"""Video frames to the pixels x frames matrix of background modelling, and back.

Background subtraction by robust PCA works on a matrix whose column ``t`` is frame ``t``
flattened: a static background is then (nearly) the same column in every frame, a rank-one
matrix, and moving objects are sparse. These two helpers do the reshaping and remember the
frame shape, so that the separation reads::

    M, shape = frames_to_matrix(frames)
    result = robust_pca(M)
    background = matrix_to_frames(result.low_rank, shape)
    foreground = matrix_to_frames(result.sparse, shape)
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._array import is_cupy_array, namespace, result_dtype

__all__ = ["frames_to_matrix", "matrix_to_frames"]


def frames_to_matrix(frames: Any, *, dtype: Any = None) -> tuple[Any, tuple[int, ...]]:
    """Stack video frames as the columns of a (pixels x frames) matrix.

    Parameters
    ----------
    frames : array of shape (T, H, W) or (T, H, W, C), or a list of T frames
        Grayscale (H x W) or colour (H x W x C) frames: one NumPy or CuPy array, or a list or
        tuple of frames of one shape. The matrix is made on the frames' device. NaN pixels
        stay NaN (:func:`sparselin.robust.robust_pca` reads them as missing). Not modified.
    dtype : {None, "float32", "float64"} or numpy dtype, optional
        Precision of the matrix. Default: the frames' floating precision (float32 stays
        float32), float64 for integer frames (``uint8`` video: pass ``np.float32`` to halve
        the memory). Values are not rescaled (divide 8-bit frames by 255 for [0, 1]).

    Returns
    -------
    M : array of shape (H * W * C, T)
        Column ``t`` is frame ``t`` flattened in row-major (C) order, channels innermost.
    frame_shape : tuple of int
        ``(H, W)`` or ``(H, W, C)``: what :func:`matrix_to_frames` needs to undo this.

    Raises
    ------
    ValueError
        For no frames, frames of other than 2 or 3 dimensions, or frames of different shapes.
    TypeError
        For non-numeric frames, complex frames or an unsupported ``dtype``.

    See Also
    --------
    sparselin.robust.matrix_to_frames : the inverse.
    sparselin.robust.robust_pca : background (low-rank) and foreground (sparse) separation.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.robust import frames_to_matrix, matrix_to_frames, robust_pca
    >>> rng = np.random.default_rng(0)
    >>> background = rng.random((24, 32))
    >>> frames = np.repeat(background[None], 40, axis=0)
    >>> for t in range(40):  # a bright 4 x 4 box moving right
    ...     frames[t, 10:14, t % 28 : t % 28 + 4] += 1.0
    >>> M, shape = frames_to_matrix(frames)
    >>> M.shape, shape
    ((768, 40), (24, 32))
    >>> result = robust_pca(M, random_state=0)
    >>> bg = matrix_to_frames(result.low_rank, shape)
    >>> fg = matrix_to_frames(result.sparse, shape)
    >>> bg.shape
    (40, 24, 32)
    >>> bool(np.abs(bg - background).max() < 1e-3)
    True
    >>> bool(np.all(fg[:, 10:14, :].sum(axis=(1, 2)) > 15))
    True
    """
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("frames is empty: expected at least one frame")
        parts = [_as_array(f, f"frames[{i}]") for i, f in enumerate(frames)]
        first = parts[0].shape
        if len(first) not in (2, 3):
            raise ValueError(
                f"each frame must be 2-D (H, W) or 3-D (H, W, C), got frames[0] of shape {first}"
            )
        for i, part in enumerate(parts):
            if part.shape != first:
                raise ValueError(
                    f"frames must all have one shape: frames[0] is {first}, frames[{i}] is "
                    f"{part.shape}"
                )
        xp = namespace(*parts)
        video = xp.stack(parts)
    else:
        video = _as_array(frames, "frames")
        if video.ndim not in (3, 4):
            raise ValueError(
                "frames must have shape (T, H, W) or (T, H, W, C), or be a list of frames; got "
                f"an array of shape {video.shape}"
            )
        xp = namespace(video)
    if 0 in video.shape:
        raise ValueError(f"frames must be non-empty, got shape {video.shape}")
    out_dtype = _matrix_dtype(video.dtype, dtype)
    n_frames = int(video.shape[0])
    frame_shape = tuple(int(d) for d in video.shape[1:])
    # (T, pixels) -> (pixels, T); contiguous, so the solvers' passes over it stream memory.
    M = xp.ascontiguousarray(video.reshape(n_frames, -1).T, dtype=out_dtype)
    if M is video or _shares_memory(M, video, xp):
        M = M.copy()
    return M, frame_shape


def matrix_to_frames(M: Any, frame_shape: tuple[int, ...]) -> Any:
    """Reshape a (pixels x frames) matrix back into frames: the inverse of frames_to_matrix.

    Parameters
    ----------
    M : array of shape (H * W * C, T)
        NumPy or CuPy array, for example ``result.low_rank`` (the background) or
        ``result.sparse`` (the foreground) of :func:`sparselin.robust.robust_pca`.
    frame_shape : tuple of int
        ``(H, W)`` or ``(H, W, C)``, as returned by :func:`frames_to_matrix`.

    Returns
    -------
    frames : array of shape (T, H, W) or (T, H, W, C)
        A new array on M's device, in M's dtype.

    Raises
    ------
    ValueError
        For a non-2-D ``M``, a ``frame_shape`` of other than 2 or 3 positive ints, or one
        whose product is not ``M.shape[0]``.
    TypeError
        For an ``M`` that is not an array, or a ``frame_shape`` that is not a tuple of ints.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.robust import frames_to_matrix, matrix_to_frames
    >>> frames = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    >>> M, shape = frames_to_matrix(frames)
    >>> bool(np.array_equal(matrix_to_frames(M, shape), frames))
    True
    """
    if not (isinstance(M, np.ndarray) or is_cupy_array(M)):
        raise TypeError(f"M must be a NumPy or CuPy array, got {type(M).__name__}")
    if M.ndim != 2:
        raise ValueError(f"M must be 2-D (pixels x frames), got shape {M.shape}")
    if not isinstance(frame_shape, (tuple, list)) or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in frame_shape
    ):
        raise TypeError(f"frame_shape must be a tuple of ints, got {frame_shape!r}")
    frame_shape = tuple(int(d) for d in frame_shape)
    if len(frame_shape) not in (2, 3) or min(frame_shape) < 1:
        raise ValueError(
            f"frame_shape must be (H, W) or (H, W, C) of positive ints, got {frame_shape}"
        )
    pixels = int(np.prod(frame_shape))
    if pixels != M.shape[0]:
        raise ValueError(
            f"frame_shape {frame_shape} has {pixels} pixels but M has {M.shape[0]} rows"
        )
    xp = namespace(M)
    frames = xp.ascontiguousarray(M.T)
    if _shares_memory(frames, M, xp):
        frames = frames.copy()  # a new array, never a view of M
    return frames.reshape((M.shape[1], *frame_shape))


def _as_array(x: Any, name: str) -> Any:
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array: fill the masked pixels with NaN first")
    if not (isinstance(x, np.ndarray) or is_cupy_array(x)):
        if hasattr(x, "__array__") or isinstance(x, (list, tuple)):
            x = np.asarray(x)
        else:
            raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(x).__name__}")
    if x.dtype.kind not in "biuf":
        kind = "complex" if x.dtype.kind == "c" else "non-numeric"
        raise TypeError(f"{name} must hold real numbers, got {kind} dtype {x.dtype}")
    return x


def _matrix_dtype(frames_dtype: Any, dtype: Any) -> np.dtype:
    if dtype is None:
        return result_dtype(frames_dtype)
    try:
        wanted = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if wanted not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {wanted}")
    return wanted


def _shares_memory(a: Any, b: Any, xp: Any) -> bool:
    if xp is np:
        return bool(np.shares_memory(a, b))
    return bool(xp.shares_memory(a, b)) if hasattr(xp, "shares_memory") else False
