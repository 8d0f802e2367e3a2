"""Validation at the public edge of the recovery family (each error names the argument)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._array import is_cupy_array, is_sparse, result_dtype
from .._validation import all_finite, check_matrix

__all__ = ["check_problem", "check_weights"]


def check_problem(
    A: Any, y: Any, *, allow_2d_y: bool, allow_complex: bool = True
) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """Validate ``A`` (dense, 2-D, finite) and ``y`` (``m`` rows) and bring both to one dtype.

    Returns ``(A, y, dtype)`` where ``dtype`` is the precision the computation runs in: the
    common float type of A and y (float32 stays float32, integers become float64). The
    arguments are never modified; a converted copy is returned where a conversion is needed.
    """
    if is_sparse(A) or is_cupy_array(A):
        raise TypeError(
            "A must be a dense NumPy array (sparse matrices and GPU arrays are not supported "
            f"by the recovery family yet), got {type(A).__name__}"
        )
    A, _, _ = check_matrix(A, "A", allow_operator=False)
    if is_sparse(y) or is_cupy_array(y):
        raise TypeError(f"y must be a dense NumPy array, got {type(y).__name__}")
    y = np.asarray(y)
    if y.dtype.kind not in "biufc":
        raise TypeError(f"y must hold numbers, got dtype {y.dtype}")
    ndims = (1, 2) if allow_2d_y else (1,)
    if y.ndim not in ndims:
        want = "1-D (one signal) or 2-D (one signal per column)" if allow_2d_y else "1-D"
        raise ValueError(f"y must be {want}, got an array with ndim={y.ndim}")
    if y.shape[0] != A.shape[0]:
        raise ValueError(
            f"y must have as many rows as A: A has {A.shape[0]} rows, y has {y.shape[0]}"
        )
    if y.size == 0:
        raise ValueError(f"y must be non-empty, got shape {y.shape}")
    dtype = result_dtype(np.result_type(A.dtype, result_dtype(y.dtype)))
    if dtype.kind == "c" and not allow_complex:
        raise TypeError(f"this function needs real A and y, got dtype {dtype}")
    y = y.astype(dtype, copy=False)
    if not all_finite(y):
        raise ValueError("y contains NaN or infinity")
    A = A.astype(dtype, copy=False)
    return A, y, dtype


def check_weights(weights: Any, n_features: int, dtype: np.dtype) -> np.ndarray:
    """Non-negative finite weights, one per column of A (None means all ones)."""
    real = np.finfo(dtype).dtype
    if weights is None:
        return np.ones(n_features, dtype=real)
    w = np.asarray(weights)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"weights must be real numbers, got dtype {w.dtype}")
    if w.shape != (n_features,):
        raise ValueError(
            f"weights must have shape ({n_features},), one per column of A, got {w.shape}"
        )
    w = w.astype(real)
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite (use 0 for an unpenalised column)")
    if np.any(w < 0):
        raise ValueError("weights must be non-negative, got a negative entry")
    return w
