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
    scipy_namespace,
)

__all__ = [
    "OperatorContractError",
    "OperatorTypeError",
    "OperatorValueError",
    "all_finite",
    "canonical_sparse",
    "check_int",
    "check_matrix",
    "check_operator",
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
        return check_operator(A, name), "operator", None
    if is_sparse(A):
        if A.ndim != 2 or 0 in A.shape:
            raise ValueError(f"{name} must be a non-empty 2-D matrix, got shape {A.shape}")
        dtype = result_dtype(A.dtype)
        A, summed = canonical_sparse(A)
        if dtype != A.dtype:
            A = A.astype(dtype)
        data = A.data
        norm2 = squared_norm(data) if data.size else 0.0
        if not np.isfinite(norm2) and not bool(namespace(A).isfinite(data).all()):
            where = " (after summing its duplicate entries)" if summed else ""
            raise ValueError(f"{name} contains NaN or infinity{where}")
        return A, "sparse", norm2
    if isinstance(A, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array; a matrix factorisation has no meaning for masked "
            f"entries. Pass {name}.filled(value) or the unmasked data ({name}.data)."
        )
    if isinstance(A, np.ndarray) and type(A) is not np.ndarray:
        # np.matrix (whose products and reductions stay 2-D matrices) and other subclasses:
        # computed on as a plain array view, without a copy.
        A = np.asarray(A)
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


def canonical_sparse(A: Any) -> tuple[Any, bool]:
    """``A`` as CSR or CSC without duplicate entries, and whether duplicates were summed.

    The norm is read from ``A.data``, and duplicates stored separately (COO, or CSR built
    from unsorted triplets) would count each part instead of their sum: cancelling ones
    reported an error of 0.001 where it was 0.96. Other formats (COO, BSR, DIA, whose
    ``data`` holds padding outside the matrix, LIL, DOK) become CSR. A copy is made only
    when ``A`` is not already canonical CSR/CSC; ``A`` itself is never modified.
    """
    fmt = getattr(A, "format", None)
    copied = False
    summed = False
    if fmt not in ("csr", "csc"):
        summed = not bool(getattr(A, "has_canonical_format", fmt in ("lil", "dok", "dia")))
        A = A.tocsr()  # a new matrix; scipy and cupyx sum duplicates on the way
        copied = True
    if not bool(getattr(A, "has_canonical_format", True)):
        if not copied:
            A = A.copy()
        A.sum_duplicates()
        summed = True
    return A, summed


class OperatorContractError(Exception):
    """A LinearOperator broke its contract (a product of the wrong shape or type, no adjoint).

    Raised as :class:`OperatorValueError` or :class:`OperatorTypeError`, so callers catch it
    as the ValueError/TypeError it is; code that falls back on solver failures (the Lanczos
    path) lets this class through instead of mistaking it for one.
    """


class OperatorValueError(OperatorContractError, ValueError):
    """A LinearOperator returned a product of the wrong shape, or NaN/inf."""


class OperatorTypeError(OperatorContractError, TypeError):
    """A LinearOperator returned something other than an array, or has no adjoint."""


def check_operator(A: Any, name: str = "A") -> Any:
    """Validate a LinearOperator and return it wrapped so that every product is checked.

    Two probe products (one with A, one with A^H, a vector each) catch at once what would
    otherwise crash deep inside, or worse, pass: a missing adjoint, products of the wrong
    shape or type, NaN. The wrapper computes in the dtype sparselin uses for A's dtype
    (float64 for integers) and checks the shape of every later product too, at no cost.
    """
    shape = getattr(A, "shape", None)
    if shape is None or len(shape) != 2 or 0 in shape:
        raise ValueError(f"{name} must be a non-empty 2-D operator, got shape {shape}")
    if getattr(A, "dtype", None) is None:
        raise TypeError(f"{name} is a LinearOperator without a dtype; give it dtype=...")
    dtype = result_dtype(A.dtype)  # raises TypeError for unsupported dtypes
    m, n = (int(shape[0]), int(shape[1]))
    xp = namespace(A)
    probe = np.random.default_rng(0).standard_normal(max(m, n)).astype(dtype)
    probe = probe if xp is np else xp.asarray(probe)

    def checked(Y: Any, X: Any, rows: int, what: str) -> Any:
        shape = (rows, *X.shape[1:])
        if not (isinstance(Y, np.ndarray) if xp is np else is_cupy_array(Y)) or is_sparse(Y):
            raise OperatorTypeError(
                f"{name}.{what} returned {type(Y).__name__}, expected a "
                f"{'NumPy' if xp is np else 'CuPy'} array of shape {shape}"
            )
        if Y.shape != shape:
            if Y.size != rows * (X.shape[1] if X.ndim == 2 else 1):
                raise OperatorValueError(
                    f"{name}.{what} returned shape {Y.shape}, expected {shape}"
                )
            Y = Y.reshape(shape)  # (m,) for (m, 1) and the like, as SciPy accepts
        if Y.dtype != dtype:
            if Y.dtype.kind not in "biufc":
                raise OperatorTypeError(
                    f"{name}.{what} returned dtype {Y.dtype}, expected numbers"
                )
            if Y.dtype.kind == "c" and dtype.kind != "c":
                raise OperatorTypeError(
                    f"{name}.{what} returned complex values but {name}.dtype is {A.dtype}"
                )
            Y = Y.astype(dtype)
        return Y

    def forward(X: Any) -> Any:
        what = "matvec" if X.ndim == 1 else "matmat"
        return checked(getattr(A, what)(X), X, m, what)

    def adjoint(X: Any) -> Any:
        what = "rmatvec" if X.ndim == 1 else "rmatmat"
        try:
            Y = getattr(A, what)(X)
        except (NotImplementedError, AttributeError, TypeError) as exc:
            raise OperatorTypeError(
                f"{name} is a LinearOperator without a usable adjoint (rmatvec or rmatmat; "
                f"{type(exc).__name__}: {exc}); the SVD needs products with {name}^H"
            ) from exc
        return checked(Y, X, n, what)

    # The probes are single vectors (matvec, rmatvec): a fraction of a pass over A, and
    # they leave the count of block products (passes) as documented.
    try:
        probes = (forward(probe[:n]), adjoint(probe[:m]))
    except ValueError as exc:
        # SciPy's own checks (a matvec of the wrong length fails to reshape) do not say
        # which argument is at fault.
        raise OperatorValueError(f"{name} failed on a probe vector: {exc}") from exc
    for Y in probes:
        if not bool(xp.isfinite(Y).all()):
            raise OperatorValueError(f"{name} returned NaN or infinity on a finite probe vector")
    spla = scipy_namespace(xp).sparse.linalg
    return spla.LinearOperator(
        (m, n), matvec=forward, rmatvec=adjoint, matmat=forward, rmatmat=adjoint, dtype=dtype
    )


def check_finite_norm(A: Any, norm2: float, name: str = "A") -> None:
    """Raise ValueError if the dense ``A``, whose squared norm is ``norm2``, holds NaN/inf.

    A finite norm proves every entry finite; only an infinite one (a real infinity, or
    squares that overflowed) needs the element-wise check.
    """
    if not np.isfinite(norm2) and not all_finite(A):
        raise ValueError(f"{name} contains NaN or infinity")


# Entries per BLAS dot product in squared_norm. OpenBLAS splits a double-precision dot
# product of more than 10000 entries across its thread pool, and the woken worker then
# busy-waits for about 0.1 s (THREAD_TIMEOUT), taking a core from whatever runs next: after
# the input checks of a batch OMP call (256 x 1024 and 256 x 1000 float64) the compiled
# kernels on sparselin's pool took 51-55 ms instead of 36-38 ms. Below the threshold each
# call runs in the calling thread and no pool wakes; single precision is never split, and
# short blocks keep its float32 sums accurate.
_DOT_BLOCK = 8192


def squared_norm(A: Any, scale: float = 1.0) -> float:
    """``||scale * A||_F**2`` of a dense array in one pass (no temporary of A's size).

    ``scale`` lets the caller bring entries near 1e±200 into range first; the scaled norm is
    then summed block by block, since squaring such entries would overflow or underflow. On
    the CPU the sum runs in blocks of ``_DOT_BLOCK`` entries, which never wake a BLAS pool.
    """
    xp = namespace(A)
    flat = A.ravel(order="K")
    if scale != 1.0:
        # Blocks are scaled in double precision: a single-precision factor such as 2**140
        # (for entries near 1e-42) does not exist, and the squares of the scaled entries of
        # a matrix near 3e38 overflow float32 sums of a few thousand.
        wide = np.complex128 if flat.dtype.kind == "c" else np.float64
        block = _DOT_BLOCK if xp is np else 1 << 16
        total = 0.0
        for start in range(0, flat.size, block):
            part = flat[start : start + block].astype(wide) * scale
            total += float(xp.vdot(part, part).real)
        return total
    if xp is not np:
        return float(xp.vdot(flat, flat).real)  # cuBLAS reduces in a tree: accurate as it is
    # float64 sums are accurate as they are; single-precision BLAS accumulates each SIMD lane
    # sequentially in float32, which loses digits on millions of entries, and short blocks
    # summed in float64 keep the norm accurate enough for error estimates.
    total = 0.0
    for start in range(0, flat.size, _DOT_BLOCK):
        part = flat[start : start + _DOT_BLOCK]
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
