"""Checks at the public edge: each failure names the argument and what was expected.

Validation happens once, where data enters a public function; the code below the edge trusts
its input. None of these helpers modifies its argument.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._array import (
    is_cupy_array,
    is_dask_array,
    is_linear_operator,
    is_sparse,
    namespace,
    result_dtype,
)

__all__ = [
    "all_finite",
    "check_int",
    "check_matrix",
    "check_random_state",
    "check_real",
    "squared_norm",
]


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int, or raise naming ``name`` and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float inside the given interval, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    bad = not np.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be a finite number in {left}{lo}, {hi}{right}, got {value}")
    return value


def check_random_state(random_state: Any) -> np.random.Generator | np.random.RandomState:
    """Turn ``None``, an int, a ``Generator`` or a ``RandomState`` into a random source.

    Random numbers are always drawn on the host from this source (and moved to the device when
    the data lives on a GPU), so the same seed gives the same sketch on every backend.
    """
    if random_state is None or isinstance(random_state, numbers.Integral):
        if isinstance(random_state, bool):
            raise TypeError("random_state must be None, an int or a numpy Generator, got a bool")
        if random_state is not None and random_state < 0:
            raise ValueError(f"random_state must be a non-negative int, got {random_state}")
        return np.random.default_rng(random_state)
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    raise TypeError(
        "random_state must be None, an int, a numpy.random.Generator or RandomState, got "
        f"{type(random_state).__name__}"
    )


def check_matrix(
    A: Any, name: str = "A", *, allow_operator: bool = True, dense_norm: bool = True
) -> tuple[Any, str, float | None]:
    """Validate a matrix argument and return ``(A, kind, norm2)``.

    ``kind`` is ``"dense"``, ``"sparse"`` or ``"operator"``; ``norm2`` is ``||A||_F**2``
    (``None`` for an operator), a by-product of the finiteness check that callers reuse.
    Dense and sparse input must be 2-D, non-empty and finite; integer input is converted (a
    copy) to float64 and float16 to float32, so the returned object may differ from the
    argument, but the argument itself is never modified. With ``dense_norm=False`` a dense
    array is returned with ``norm2=None`` and *unchecked for NaN/inf*: the caller computes
    the norm in a pass of its own and must then call :func:`check_finite_norm`.
    """
    if is_dask_array(A):
        raise TypeError(
            f"{name} is a dask array; sparselin's dask path is not available yet. Compute a "
            "NumPy/CuPy array first (or wait for the distributed family)."
        )
    if is_linear_operator(A):
        if not allow_operator:
            raise TypeError(f"{name} must be an array or sparse matrix, not a LinearOperator")
        if len(A.shape) != 2 or 0 in A.shape:
            raise ValueError(f"{name} must be a non-empty 2-D operator, got shape {A.shape}")
        result_dtype(A.dtype)  # raises TypeError for unsupported dtypes
        return A, "operator", None
    if is_sparse(A):
        if A.ndim != 2 or 0 in A.shape:
            raise ValueError(f"{name} must be a non-empty 2-D matrix, got shape {A.shape}")
        dtype = result_dtype(A.dtype)
        if dtype != A.dtype:
            A = A.astype(dtype)
        xp = namespace(A)
        data = A.data
        norm2 = float(xp.vdot(data, data).real) if data.size else 0.0
        if not np.isfinite(norm2) and not bool(xp.isfinite(data).all()):
            raise ValueError(f"{name} contains NaN or infinity")
        return A, "sparse", norm2
    if not (isinstance(A, np.ndarray) or is_cupy_array(A)):
        if hasattr(A, "__array__") or isinstance(A, (list, tuple)):
            A = np.asarray(A)
        else:
            raise TypeError(
                f"{name} must be a NumPy or CuPy array, a sparse matrix or a LinearOperator, "
                f"got {type(A).__name__}"
            )
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got an array with ndim={A.ndim} (shape {A.shape})")
    if 0 in A.shape:
        raise ValueError(f"{name} must be non-empty, got shape {A.shape}")
    if A.dtype.kind not in "biufc":
        raise TypeError(f"{name} must hold numbers, got dtype {A.dtype}")
    dtype = result_dtype(A.dtype)
    if dtype != A.dtype:
        A = A.astype(dtype)
    if not dense_norm:
        return A, "dense", None
    norm2 = squared_norm(A)
    check_finite_norm(A, norm2, name)
    return A, "dense", norm2


def check_finite_norm(A: Any, norm2: float, name: str = "A") -> None:
    """Raise ValueError if the dense ``A``, whose squared norm is ``norm2``, holds NaN/inf.

    A finite norm proves every entry finite; only an infinite one (a real infinity, or
    squares that overflowed) needs the element-wise check.
    """
    if not np.isfinite(norm2) and not all_finite(A):
        raise ValueError(f"{name} contains NaN or infinity")


def squared_norm(A: Any, scale: float = 1.0) -> float:
    """``||scale * A||_F**2`` of a dense array in one pass (no temporary of A's size).

    ``scale`` lets the caller bring entries near 1e±200 into range first; the scaled norm is
    then summed block by block, since squaring such entries would overflow or underflow.
    """
    xp = namespace(A)
    flat = A.ravel(order="K")
    if scale != 1.0:
        block = 1 << 16
        total = 0.0
        for start in range(0, flat.size, block):
            part = flat[start : start + block] * scale
            total += float(xp.vdot(part, part).real)
        return total
    if xp is not np or flat.dtype not in (np.float32, np.complex64):
        # float64/complex128 (and cuBLAS, which reduces in a tree) are accurate as they are.
        return float(xp.vdot(flat, flat).real)
    # Single precision on the CPU: BLAS accumulates each SIMD lane sequentially in float32,
    # which loses digits on millions of entries; summing short blocks in float64 keeps the
    # norm accurate enough for error estimates at no extra pass over memory.
    block = 1 << 15
    total = 0.0
    for start in range(0, flat.size, block):
        part = flat[start : start + block]
        total += float(np.vdot(part, part).real)
    return total


def all_finite(A: Any) -> bool:
    """Whether a dense array holds no NaN/inf.

    The sum of squares is a single fast BLAS pass and is finite exactly when every entry is,
    unless the squares overflow; only then is the element-wise check (a temporary of A's size)
    needed to tell overflow from a real infinity.
    """
    if np.isfinite(squared_norm(A)):
        return True
    xp = namespace(A)
    return bool(xp.isfinite(A).all())
