"""Validation at the public edge of the recovery family (each error names the argument).

The one home of the recovery family's input checks. Functions that run on the GPU (``sbl``,
``kronecker_sbl``, ``omp``) pass ``device=True`` and accept CuPy arrays; the others refuse
them with a message that says so. Nothing here moves data between devices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._array import is_cupy_array, is_dask_array, is_sparse, namespace, result_dtype
from .._validation import all_finite, check_matrix

__all__ = ["check_dictionary", "check_problem", "check_signal", "check_weights"]


def check_dictionary(A: Any, name: str = "A", *, device: bool = False) -> Any:
    """A dense, 2-D, non-empty, finite numeric matrix, returned in its compute dtype.

    With ``device=True`` a CuPy array is accepted (and stays on its device); otherwise only
    host arrays (NumPy, or anything :func:`numpy.asarray` takes) are. Sparse matrices, dask
    arrays and LinearOperators are refused with a ``TypeError`` naming ``name``. Integers
    become float64 (a copy); the argument is never modified.
    """
    where = "NumPy or CuPy" if device else "NumPy"
    if is_sparse(A) or is_dask_array(A) or (is_cupy_array(A) and not device):
        extra = ""
        if not device:
            extra = (
                " (sparse matrices and GPU arrays are not supported by the recovery family yet)"
            )
        raise TypeError(f"{name} must be a dense {where} array{extra}, got {type(A).__name__}")
    A, _, _ = check_matrix(A, name, allow_operator=False)
    return A


def check_signal(
    y: Any, n_rows: int, *, allow_2d: bool, device: bool = False, rows_of: str = "A"
) -> Any:
    """``y`` checked against a dictionary of ``n_rows`` rows (``rows_of`` names it).

    1-D, or 2-D (one signal per column) when ``allow_2d``; numeric, non-empty and finite.
    Returned as an array of the argument's library (CuPy only with ``device=True``); the
    argument is never modified.
    """
    where = "NumPy or CuPy" if device else "NumPy"
    if is_sparse(y) or is_dask_array(y) or (is_cupy_array(y) and not device):
        raise TypeError(f"y must be a dense {where} array, got {type(y).__name__}")
    if not is_cupy_array(y):
        y = np.asarray(y)
    if y.dtype.kind not in "biufc":
        raise TypeError(f"y must hold numbers, got dtype {y.dtype}")
    if y.ndim not in ((1, 2) if allow_2d else (1,)):
        want = "1-D (one signal) or 2-D (one signal per column)" if allow_2d else "1-D"
        raise ValueError(f"y must be {want}, got an array with ndim={y.ndim}")
    if y.shape[0] != n_rows:
        raise ValueError(
            f"y must have as many rows as {rows_of}: {rows_of} has {n_rows} rows, y has "
            f"{y.shape[0]}"
        )
    if y.size == 0:
        raise ValueError(f"y must be non-empty, got shape {y.shape}")
    if not all_finite(y):
        raise ValueError("y contains NaN or infinity")
    return y


def check_problem(
    A: Any, y: Any, *, allow_2d_y: bool, allow_complex: bool = True, device: bool = False
) -> tuple[Any, Any, np.dtype]:
    """Validate ``A`` (dense, 2-D, finite) and ``y`` (``m`` rows) and bring both to one dtype.

    Returns ``(A, y, dtype)`` where ``dtype`` is the precision the computation runs in: the
    common float type of A and y (float32 stays float32, integers become float64). The
    arguments are never modified; a converted copy is returned where a conversion is needed.
    ``device=True`` lets CuPy arrays through (both on the GPU: mixing raises ``TypeError``).
    """
    A = check_dictionary(A, "A", device=device)
    y = check_signal(y, A.shape[0], allow_2d=allow_2d_y, device=device)
    namespace(A, y)  # refuses NumPy and CuPy mixed
    dtype = result_dtype(np.result_type(A.dtype, result_dtype(y.dtype)))
    if dtype.kind == "c" and not allow_complex:
        raise TypeError(f"this function needs real A and y, got dtype {dtype}")
    return A.astype(dtype, copy=False), y.astype(dtype, copy=False), dtype


def check_weights(weights: Any, n_features: int, dtype: np.dtype, *, device: bool = False) -> Any:
    """Non-negative finite weights, one per column of A (None means all ones), in the real
    precision of ``dtype`` (a weight too large for it is an error that says so).

    With ``device=True`` (A lives on the GPU) CuPy weights are accepted and checked where
    they are; host weights are accepted either way and returned as NumPy.
    """
    real = np.finfo(dtype).dtype
    if weights is None:
        return np.ones(n_features, dtype=real)
    if is_cupy_array(weights) and not device:
        raise TypeError(
            "weights must be a NumPy array when A is one (CuPy weights need a CuPy A), "
            f"got {type(weights).__name__}"
        )
    xp = namespace(weights)
    w = weights if xp is not np else np.asarray(weights)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"weights must be real numbers, got dtype {w.dtype}")
    if w.shape != (n_features,):
        raise ValueError(
            f"weights must have shape ({n_features},), one per column of A, got {w.shape}"
        )
    # Finite as given first, then finite in the problem's precision: a float64 weight above
    # float32's largest value (3.4e38) becomes inf in the cast, and "must be finite" would
    # blame a finite input.
    if not bool(xp.all(xp.isfinite(w))):
        raise ValueError("weights must be finite (use 0 for an unpenalised column)")
    with np.errstate(over="ignore"):  # the overflow is reported below, not warned about
        cast = w.astype(real)
    if not bool(xp.all(xp.isfinite(cast))):
        raise ValueError(
            f"weights must fit the {real} precision of A and y: the largest weight is "
            f"{float(xp.max(w)):.3g}, above the largest {real} ({float(np.finfo(real).max):.3g});"
            " pass float64 A and y, or scale the weights down (and lam, if any, up) by one factor"
        )
    w = cast
    if bool(xp.any(w < 0)):
        raise ValueError("weights must be non-negative, got a negative entry")
    return w
