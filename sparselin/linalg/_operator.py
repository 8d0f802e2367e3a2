"""The matrix as the SVD routines see it: products with A and A^H, scaling, precision.

Dense arrays, sparse matrices and LinearOperators (on NumPy or CuPy) all become an
:class:`Operator` with ``mm(X) = A @ X`` and ``rmm(Y) = A^H @ Y``; the algorithms never look
at A otherwise, except to compute an explicit residual where the energy identity is too
coarse.
"""

from __future__ import annotations

import math
import types
from typing import Any

import numpy as np

from .._validation import check_finite_norm, squared_norm
from ._kernels import copy_with_squared_norm

__all__ = [
    "Operator",
    "explicit_residual2",
    "norm_and_sketch_copy",
    "safe_scale",
    "sketch_operator",
]

# Below this many entries a float32 copy for the sketch saves less than it costs.
_MIXED_PRECISION_MIN_SIZE = 1 << 20
# The precision sketch_dtype="auto" sketches in, for the dtypes that have a lower one.
_SKETCH_DTYPE = {
    np.dtype(np.float64): np.dtype(np.float32),
    np.dtype(np.complex128): np.dtype(np.complex64),
}


class Operator:
    """``A @ X`` and ``A^H @ Y`` for dense, sparse and LinearOperator ``A`` on one device."""

    def __init__(self, A: Any, kind: str, xp: types.ModuleType, scale: float = 1.0) -> None:
        self.A = A
        self.kind = kind
        self.xp = xp
        self.shape = tuple(A.shape)
        self.dtype = np.dtype(A.dtype)
        self.complex = self.dtype.kind == "c"
        # The operator represents scale * A (see safe_scale); scaling the thin factor
        # before the product keeps every intermediate in range without copying A.
        self.scale = scale
        # Squared ratio of the matrix another operator represents to this one's: a
        # lower-precision sketch holds A times a power of two of its own (see
        # sketch_operator), so energies it measures are converted with this factor.
        self.energy_factor = 1.0
        # A lower-precision copy of A made while reading A for other reasons (see
        # norm_and_sketch_copy); sketch_operator uses it instead of copying A again.
        self.low_precision_copy: Any = None

    def mm(self, X: Any) -> Any:
        if self.scale != 1.0:
            X = X * self.dtype.type(self.scale)
        return self._mm(X)

    def rmm(self, Y: Any) -> Any:
        if self.scale != 1.0:
            Y = Y * self.dtype.type(self.scale)
        return self._rmm(Y)

    def _mm(self, X: Any) -> Any:
        A = self.A
        if self.kind == "operator":
            return A.matmat(X)
        if self.kind == "dense" and self.xp is np and self.dtype == np.float64:
            # Measured with OpenBLAS on a C-ordered A (4000 x 3000, 60 columns): this layout
            # takes 20 ms against 32 ms for A @ X in float64; in float32 A @ X is faster.
            return (X.T @ A.T).T
        return A @ X

    def _rmm(self, Y: Any) -> Any:
        A = self.A
        if self.kind == "operator":
            return A.rmatmat(Y)
        if self.kind == "sparse":
            # A^H Y = conj(A^T conj(Y)): the transpose of a CSR matrix is a free CSC view,
            # whereas A.conj() would copy the data.
            return (A.T @ Y.conj()).conj() if self.complex else A.T @ Y
        # (Y^H A)^H: reads A once in its own layout instead of forming A^H.
        if self.complex:
            return (Y.conj().T @ A).conj().T
        return (Y.T @ A).T


def safe_scale(A: Any, kind: str, xp: types.ModuleType, norm2: float | None) -> tuple:
    """A factor that brings A's entries near 1 when their squares would over- or underflow.

    Gram matrices of the sketches hold squares of A's scale: for entries beyond ~1e±150 in
    float64 (~1e±18 in float32) they overflow or vanish. Such input is worked on as
    ``A / max|A|`` (the factor is applied to the thin blocks, A is not copied) and the
    singular values are scaled back at the end. Ordinary input costs nothing: the decision
    uses the norm already computed, and max|A| is read only when it is out of range.
    """
    if norm2 is None:
        return 1.0, norm2
    dtype = np.dtype(A.dtype)
    info = np.finfo(dtype)
    if float(info.tiny) * 1e10 < norm2 < float(info.max) * 1e-10:
        return 1.0, norm2
    data = A.data if kind == "sparse" else A
    if data.size == 0:
        return 1.0, norm2
    amax = max(
        float(xp.abs(data.real).max()),
        float(xp.abs(data.imag).max()) if dtype.kind == "c" else 0.0,
    )
    if amax == 0.0:
        return 1.0, 0.0
    # A power of two, so that scaling is exact; clamped so that it stays representable
    # in A's precision (denormal input keeps the few bits it has).
    exponent = min(-int(np.frexp(amax)[1]), int(info.maxexp) - 2)
    scale = float(np.ldexp(1.0, exponent))
    if kind == "sparse":
        part = data * scale
        return scale, float(xp.vdot(part, part).real)
    return scale, squared_norm(A, scale)


def explicit_residual2(op: Operator, L: Any, Rt: Any) -> float:
    """``||A - L Rt||_F^2`` computed entry by entry, a block of rows at a time.

    The energy identity ``||A||^2 - ||Rt||^2`` cancels catastrophically once the relative
    error nears ``sqrt(eps)`` (3e-4 in float32); this costs a GEMM as wide as ``L`` but is
    accurate to ``eps * ||A||``. Memory stays at one block (about 8 MB), never m x n.
    """
    xp = op.xp
    A = op.A
    m, n = op.shape
    if op.kind == "sparse" and A.format != "csr":
        A = A.tocsr()
    rows = max(1, (8 << 20) // max(1, n * op.dtype.itemsize))
    total = 0.0
    for start in range(0, m, rows):
        block = A[start : start + rows]
        if op.kind == "sparse":
            block = block.toarray()
        if op.scale != 1.0:
            block = block * op.dtype.type(op.scale)
        diff = block - L[start : start + rows] @ Rt
        total += float(xp.vdot(diff, diff).real)
    return total


def sketch_operator(
    op: Operator, sketch_dtype: Any, check_only: bool = False, norm2: float | None = None
) -> Operator:
    """The operator the power iterations run on (``op`` itself or a lower-precision copy).

    The copy holds ``c * A`` with ``c`` a power of two that brings the root-mean-square entry
    near 1 (``c = 1`` for ordinary data): float64 data around 1e50 or 1e-50 would otherwise
    overflow or vanish in float32, whose range is 1e±38, and so would the Gram matrices of
    the sketches. ``norm2`` is ``||op||_F^2``; the copy's ``energy_factor`` converts the
    energies it measures back to ``op``'s units.
    """
    if isinstance(sketch_dtype, str):
        if sketch_dtype != "auto":
            raise ValueError(f"sketch_dtype must be 'auto' or a dtype, got {sketch_dtype!r}")
        if check_only:
            return op
        if (
            op.kind == "dense"
            and op.dtype in _SKETCH_DTYPE
            and op.scale == 1.0
            and op.shape[0] * op.shape[1] >= _MIXED_PRECISION_MIN_SIZE
        ):
            return _low_precision_copy(op, _SKETCH_DTYPE[op.dtype], norm2)
        return op
    try:
        target = np.dtype(sketch_dtype)
    except TypeError:
        raise TypeError(f"sketch_dtype must be 'auto' or a dtype, got {sketch_dtype!r}") from None
    if target.kind != op.dtype.kind or target.itemsize > op.dtype.itemsize:
        raise ValueError(
            f"sketch_dtype must be 'auto' or a precision no higher than A's ({op.dtype}) of "
            f"the same kind, got {target}"
        )
    if check_only or target == op.dtype or op.kind != "dense":
        return op
    return _low_precision_copy(op, target, norm2)


def _low_precision_copy(op: Operator, dtype: np.dtype, norm2: float | None) -> Operator:
    """``op``'s dense matrix in ``dtype``, times a power of two that keeps it in range."""
    xp = op.xp
    A = op.A
    if norm2 is None:
        norm2 = squared_norm(A) * op.scale**2
    rms = math.sqrt(norm2 / A.size) / op.scale if norm2 > 0 else 1.0
    c = 1.0
    if not 2.0**-16 <= rms <= 2.0**16:
        c = float(np.ldexp(1.0, -round(math.log2(rms))))
    ready = op.low_precision_copy
    if c == 1.0 and ready is not None and ready.dtype == dtype:
        copy = ready
    elif c == 1.0:
        copy = A.astype(dtype)
    elif xp is np:
        # Scaled in float64 element by element and rounded once; no float64 temporary.
        copy = np.empty_like(A, dtype=dtype)
        np.multiply(A, c, out=copy, casting="unsafe")
    else:
        copy = (A * c).astype(dtype)
    sketch = Operator(copy, "dense", xp)
    sketch.energy_factor = (op.scale / c) ** 2
    return sketch


def norm_and_sketch_copy(A: Any, name: str = "A") -> tuple[float, Any]:
    """``||A||_F^2`` of a dense array, checked finite, and the float32 copy the sketch needs.

    For a large float64/complex128 NumPy array, which the default method sketches in single
    precision, the norm and the copy come from one pass over A (see copy_with_squared_norm);
    otherwise the copy is None and the norm is computed as usual.
    """
    if (
        isinstance(A, np.ndarray)
        and A.dtype in _SKETCH_DTYPE
        and A.size >= _MIXED_PRECISION_MIN_SIZE
    ):
        fused = copy_with_squared_norm(A, _SKETCH_DTYPE[A.dtype])
        if fused is not None:
            copy, norm2 = fused
            check_finite_norm(A, norm2, name)
            return norm2, copy
    norm2 = squared_norm(A)
    check_finite_norm(A, norm2, name)
    return norm2, None
