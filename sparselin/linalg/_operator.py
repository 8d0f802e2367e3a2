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

import numba
import numpy as np
import scipy.sparse

from .._validation import check_finite_norm, squared_norm
from ._kernels import copy_with_squared_norm, csr_matmat, csr_rmatmat, row_partition

__all__ = [
    "Operator",
    "explicit_residual2",
    "norm_and_sketch_copy",
    "safe_scale",
    "scale_halves",
    "sketch_operator",
]

# Below this many entries a float32 copy for the sketch saves less than it costs.
_MIXED_PRECISION_MIN_SIZE = 1 << 20
# For sparse A the count is of stored entries: a product costs a row of the thin block per
# entry, and the copy of the values one read of them.
_MIXED_PRECISION_MIN_SPARSE = 1 << 18
# The precision sketch_dtype="auto" sketches in, for the dtypes that have a lower one.
_SKETCH_DTYPE = {
    np.dtype(np.float64): np.dtype(np.float32),
    np.dtype(np.complex128): np.dtype(np.complex64),
}

# The scatter form of a sparse product keeps one output-sized buffer per thread; beyond this
# (or A's own size, if larger) the transposed layout of A is built once instead.
_SCATTER_BUFFER_BYTES = 64 << 20
# Above this size of the randomly accessed dense block, the sparse kernels run on A's
# columns renumbered by frequency (see Operator._frequency_order): smaller blocks stay in
# the cache as they are, and the reordering copy would be pure cost.
_FREQUENCY_ORDER_BYTES = 4 << 20
# Dtypes the host sparse kernel is compiled for (what check_matrix lets through).
_KERNEL_DTYPES = frozenset(
    np.dtype(t) for t in (np.float32, np.float64, np.complex64, np.complex128)
)


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
        # For the host sparse kernels: A as CSR or CSC, its other layout where one is
        # needed (both made on first use), and the row partitions that balance the threads.
        self._kernel_A: Any = None
        self._kernel_T: Any = None
        self._order: tuple | None = None
        self._products = 0
        self._bounds: dict[tuple, np.ndarray] = {}

    def mm(self, X: Any) -> Any:
        if self.scale == 1.0:
            return self._mm(X)
        pre, post = scale_halves(self.scale)
        return self._mm(X * self.dtype.type(pre)) * self.dtype.type(post)

    def rmm(self, Y: Any) -> Any:
        if self.scale == 1.0:
            return self._rmm(Y)
        pre, post = scale_halves(self.scale)
        return self._rmm(Y * self.dtype.type(pre)) * self.dtype.type(post)

    def _mm(self, X: Any) -> Any:
        A = self.A
        if self.kind == "operator":
            return A.matmat(X)
        if self.kind == "sparse":
            if self._host_sparse():
                return self._sparse_product(X, adjoint=False)
            return A @ X
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
            if self._host_sparse():
                return self._sparse_product(Y, adjoint=True)
            # A^H Y = conj(A^T conj(Y)): the transpose of a CSR matrix is a free CSC view,
            # whereas A.conj() would copy the data.
            return (A.T @ Y.conj()).conj() if self.complex else A.T @ Y
        # (Y^H A)^H: reads A once in its own layout instead of forming A^H.
        if self.complex:
            return (Y.conj().T @ A).conj().T
        return (Y.T @ A).T

    def _host_sparse(self) -> bool:
        """Whether the products go through sparselin's parallel CSR kernel (SciPy input)."""
        return self.xp is np and self.dtype in _KERNEL_DTYPES

    def _sparse_product(self, X: np.ndarray, adjoint: bool) -> np.ndarray:
        """``A @ X`` or ``A^H @ X`` with the parallel kernels on A's CSR or CSC arrays.

        SciPy's sparse-dense product runs on one thread. CSR arrays of a matrix M give
        ``M @ X`` in the gather form (rows split among threads, no extra memory) and
        ``M^H @ X`` in the scatter form (each thread sums its rows into a buffer of the
        output's size); CSC arrays of A are the CSR arrays of ``A^T``, so the two forms
        swap. When those buffers would outgrow A itself (many threads, wide output), the
        transposed layout is built once per Operator instead (one more copy of A's values
        and indices; for the 40000 x 30000 TF-IDF matrix, 1.4M entries: 11 MB and 15 ms,
        against about 40 ms for one product) and reused by every pass. Other formats are
        converted to CSR once. The user's matrix is never modified.
        """
        A = self._kernel_matrix()
        vector = X.ndim == 1
        if vector:
            X = X.reshape(-1, 1)
        # M = A (CSR arrays) or M = A^T (CSC arrays). A X is M X or M^T X; A^H X is
        # M^H X or conj(M) X.
        transpose = (A.format == "csr") == adjoint
        conj = adjoint and self.complex
        indptr, indices, data = A.indptr, A.indices, A.data
        out_rows = self.shape[1] if adjoint else self.shape[0]
        itemsize = np.result_type(data.dtype, X.dtype).itemsize
        # The block on the side of M's column indices is the one read (gather) or written
        # (scatter) at random; see _frequency_order.
        side = out_rows if transpose else X.shape[0]
        order = None
        self._products += 1
        # The reordering pays for itself after a few products; an operator that serves one
        # (the full-precision pass after a low-precision sketch) does without it.
        if self._products > 1 and side * X.shape[1] * itemsize > _FREQUENCY_ORDER_BYTES:
            order = self._frequency_order(A)
            indices, data = order[2], order[3]
        nthreads = numba.get_num_threads()
        if not transpose:
            if order is not None:
                X = np.take(X, order[0], axis=0)
            out = csr_matmat(indptr, indices, data, X, conj, self._partition(A, 4 * nthreads))
        else:
            buffers = nthreads * out_rows * X.shape[1] * itemsize
            if nthreads == 1 or buffers <= max(_SCATTER_BUFFER_BYTES, _nbytes(A)):
                chunks = self._partition(A, nthreads)
                out = csr_rmatmat(indptr, indices, data, out_rows, X, conj, chunks)
                if order is not None:
                    out = np.take(out, order[1], axis=0)
            else:
                T = self._transposed(A)
                bounds = self._partition(T, 4 * nthreads)
                out = csr_matmat(T.indptr, T.indices, T.data, X, conj, bounds)
        return out[:, 0] if vector else out

    def _kernel_matrix(self) -> Any:
        A = self._kernel_A
        if A is None:
            A = self.A if self.A.format in ("csr", "csc") else self.A.tocsr()
            self._kernel_A = A
        return A

    def _frequency_order(self, A: Any) -> tuple[np.ndarray, ...]:
        """A's arrays with the column indices renumbered by decreasing frequency (made once).

        Each stored entry reads (or updates) a row of the dense block at its column index;
        in text data a few thousand frequent terms hold most entries (85% of the TF-IDF
        matrix's entries in 16% of its columns). Numbering them first, and sorting each row
        by the new numbers, packs the rows of the block they touch together and walks them
        in order, so that they stay in the core's cache: a product takes 34 ms instead of 44
        (float32, 110 columns, one thread), for one reordering copy of the block (2 ms) per
        product and, once, a copy of A's values and indices (26 ms). Returns ``(perm, rank,
        indices, data)``: row ``p`` of the reordered block is row ``perm[p]`` of the
        original, ``rank`` is the inverse permutation.
        """
        if self._order is None:
            size = self.shape[0] if A.format == "csc" else self.shape[1]
            counts = np.bincount(A.indices, minlength=size)
            perm = np.argsort(-counts, kind="stable").astype(A.indices.dtype)
            rank = np.empty_like(perm)
            rank[perm] = np.arange(size, dtype=perm.dtype)
            # A new CSR container (whatever A's format: only the arrays are used) whose
            # sort_indices reorders the fresh copies, never A's own arrays.
            M = scipy.sparse.csr_matrix(
                (A.data.copy(), rank[A.indices], A.indptr), shape=(A.indptr.size - 1, size)
            )
            M.has_sorted_indices = False
            M.sort_indices()
            self._order = (perm, rank, M.indices, M.data)
        return self._order

    def _transposed(self, A: Any) -> Any:
        """A^T with A's format, i.e. the other layout of A's arrays (made once)."""
        if self._kernel_T is None:
            self._kernel_T = A.T.asformat(A.format)
        return self._kernel_T

    def _partition(self, M: Any, n_chunks: int) -> np.ndarray:
        key = (id(M), n_chunks)
        bounds = self._bounds.get(key)
        if bounds is None:
            bounds = self._bounds[key] = row_partition(M.indptr, n_chunks)
        return bounds


def _nbytes(A: Any) -> int:
    return int(A.data.nbytes + A.indices.nbytes + A.indptr.nbytes)


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
    # A power of two, so that scaling is exact; clamped so that it stays a (Python) float.
    # It is applied in two halves (see scale_halves), so neither needs to fit A's dtype.
    exponent = min(-int(np.frexp(amax)[1]), 1022)
    scale = float(np.ldexp(1.0, exponent))
    return scale, squared_norm(data, scale)


def scale_halves(scale: float) -> tuple[float, float]:
    """The power of two ``scale`` as two powers of two near its square root.

    One is applied to the thin block before the product with A and one to the result: the
    whole factor on the thin block would push its entries into denormals, which keep few
    bits (entries near 1e308 need ``scale = 2**-1024``; near 3e37 in float32, ``2**-125``).
    """
    e = math.frexp(scale)[1] - 1  # scale == 2**e
    return math.ldexp(1.0, e // 2), math.ldexp(1.0, e - e // 2)


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
            pre, post = scale_halves(op.scale)
            block = block * op.dtype.type(pre) * op.dtype.type(post)
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
        if op.dtype not in _SKETCH_DTYPE or op.scale != 1.0:
            return op
        if op.kind == "dense" and op.shape[0] * op.shape[1] >= _MIXED_PRECISION_MIN_SIZE:
            return _low_precision_copy(op, _SKETCH_DTYPE[op.dtype], norm2)
        if op.kind == "sparse" and op.A.nnz >= _MIXED_PRECISION_MIN_SPARSE:
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
    if check_only or target == op.dtype or op.kind == "operator":
        return op
    return _low_precision_copy(op, target, norm2)


def _low_precision_copy(op: Operator, dtype: np.dtype, norm2: float | None) -> Operator:
    """``op``'s dense matrix in ``dtype``, times a power of two that keeps it in range."""
    xp = op.xp
    A = op.A
    if op.kind == "sparse":
        return _low_precision_sparse(op, dtype, norm2)
    if norm2 is None:
        norm2 = squared_norm(A) * op.scale**2
    rms = math.sqrt(norm2 / A.size) / op.scale if norm2 > 0 else 1.0
    c = 1.0
    if not 2.0**-16 <= rms <= 2.0**16:
        exponent = -round(math.log2(rms))
        if abs(exponent) > 1000:
            # Denormal or near-overflow float64 entries: the factor is no finite float (the
            # copy came out inf/NaN); such input is sketched in its own precision.
            return op
        c = float(np.ldexp(1.0, exponent))
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


def _low_precision_sparse(op: Operator, dtype: np.dtype, norm2: float | None) -> Operator:
    """``op``'s sparse matrix with its values in ``dtype``, its index arrays shared.

    The products gather a row of the thin block per stored entry, so halving the block's
    precision halves the memory traffic of every pass, as for dense A; the values are
    rescaled by a power of two as in :func:`_low_precision_copy`.
    """
    A = op.A
    data = A.data
    if norm2 is None:
        norm2 = squared_norm(data) * op.scale**2
    rms = math.sqrt(norm2 / max(data.size, 1)) / op.scale if norm2 > 0 else 1.0
    c = 1.0
    if not 2.0**-16 <= rms <= 2.0**16:
        exponent = -round(math.log2(rms))
        if abs(exponent) > 1000:
            return op  # as for dense A: no finite factor brings such values into range
        c = float(np.ldexp(1.0, exponent))
    if c == 1.0:
        values = data.astype(dtype)
    elif op.xp is np:
        values = np.empty_like(data, dtype=dtype)
        np.multiply(data, c, out=values, casting="unsafe")
    else:
        values = (data * c).astype(dtype)
    if A.format not in ("csr", "csc"):
        A = A.tocsr()
    copy = type(A)((values, A.indices, A.indptr), shape=A.shape, copy=False)
    sketch = Operator(copy, "sparse", op.xp)
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
