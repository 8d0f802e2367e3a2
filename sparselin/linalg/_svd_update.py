"""Brand's update of a thin SVD when columns or rows are appended.

One trip down: :func:`svd_update` validates its arguments once and hands them to
:func:`_svd_update_core`, which trusts its input and is what :class:`IncrementalSVD` and the
other families call. The core accepts dense or sparse new columns and never densifies a
sparse block beyond the ``c`` columns the exact update needs; for a wide block (a batch of
thousands of samples) it can instead compress the block's part outside ``span(U)`` to a
randomized rank-``l`` approximation, which costs ``O(nnz * l)`` instead of ``O(m * c^2)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from .._array import (
    conj_t,
    is_cupy_array,
    is_dask_array,
    is_sparse,
    namespace,
    result_dtype,
    to_numpy,
)
from .._threads import blas_limited
from .._validation import all_finite, check_int
from ._dense import _cholesky_upper, _triangular_inverse, flip_signs, gaussian, orth, small_svd
from ._operator import Operator

__all__ = ["reorthogonalize", "svd_update"]

# A remainder column keeping less than this fraction of its squared norm outside span(U) is
# computed explicitly: the Gram shortcut's cancellation would cost more digits than allowed.
_GRAM_KEEP = 1e-2
# Largest ratio of the Cholesky factor's extreme diagonal entries for which the remainder's
# basis is left implicit (orthogonality lost ~ eps * cond^2).
_MAX_COND = 30.0
# A first Gram-Schmidt pass that removes more than this fraction of a column's squared norm
# leaves a relative error along U above 100 eps in what remains: a second pass follows.
_SECOND_PASS = 1e-4
# Remainder directions whose singular value is below this many units of roundoff of the
# updated matrix's scale (times sqrt(max(m, c)), the growth of rounding errors in the
# products that form the remainder) are numerical noise; they are dropped (and the basis
# completed with exact orthonormal directions if the rank asked for needs them).
_NOISE_ULPS = 4.0
# The sketched remainder (see _svd_update_core) is used only for blocks at least this many
# times wider than the sketch: below, the exact remainder costs about as much.
_SKETCH_MIN_WIDTH = 2
# Widest sparse block whose remainder is compressed on its row side (a c x c Gram matrix);
# wider blocks use the column-side sketch.
_ROW_SPACE_MAX = 4096
# Subspace iterations on the row side per requested one (each costs about (r + c)^2 (r + l)
# flops). One suffices: the iteration starts from the incumbent directions, which are
# already most of the updated top subspace. Measured (TF-IDF 12000 x 30000, 10 batches,
# 50 components, n_iter=2): 2 per requested one kept 0.9940 of the optimal energy, 1 kept
# 0.9943 in about a quarter less time (paired, noisy).
_ROW_SPACE_ITER = 1
# Seed of the directions that complete a rank-deficient basis (any orthonormal completion is
# correct; a fixed one keeps the result deterministic).
_COMPLETION_SEED = 0


@contextlib.contextmanager
def _one_blas_thread(xp: Any) -> Iterator[None]:
    """Run a stretch of small LAPACK calls (matrices of a few hundred rows) on one thread.

    The row-side update is all such calls and thin products (see
    :func:`sparselin._threads.blas_limited` for the measurement); its sparse products run in
    Numba's own pool, which the limit does not touch.
    """
    if xp is not np:
        yield
        return
    with blas_limited():
        yield


def _as_2d(x: Any, name: str) -> Any:
    """``x`` as a 2-D-capable NumPy/CuPy array or a canonical CSR/CSC sparse matrix."""
    if is_dask_array(x):
        # np.asarray would silently compute the whole array on this machine.
        raise TypeError(
            f"{name} is a dask array; only C may be one (it is streamed block by block): "
            f"compute {name} to a NumPy/CuPy array first"
        )
    if is_sparse(x):
        if x.format not in ("csr", "csc"):
            x = x.tocsr()
        if not x.has_canonical_format:
            # Duplicate entries add up: max|data| and the finiteness check need them summed.
            x = x.copy()
            x.sum_duplicates()
        if x.dtype.kind not in "biufc":
            raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
        return x
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array; fill or drop the masked entries first")
    if isinstance(x, np.matrix):
        x = np.asarray(x)
    if not (isinstance(x, np.ndarray) or is_cupy_array(x)):
        x = np.asarray(x)
    if x.dtype.kind not in "biufc":
        raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
    return x


def _check_svd_triplet(U: Any, s: Any, Vt: Any) -> tuple[int, int, int]:
    if is_sparse(U) or is_sparse(Vt) or is_sparse(s):
        raise TypeError("U, s and Vt must be dense arrays (only C may be sparse)")
    if U.ndim != 2 or s.ndim != 1 or Vt.ndim != 2:
        raise ValueError(
            "U, s, Vt must have shapes (m, r), (r,), (r, n); got ndim "
            f"{U.ndim}, {s.ndim}, {Vt.ndim}"
        )
    m, r = U.shape
    if s.shape[0] != r or Vt.shape[0] != r:
        raise ValueError(
            f"U, s, Vt must have shapes (m, r), (r,), (r, n); got {U.shape}, {s.shape}, {Vt.shape}"
        )
    if m == 0 or Vt.shape[1] == 0:
        raise ValueError(f"U and Vt must be non-empty, got shapes {U.shape} and {Vt.shape}")
    if s.dtype.kind == "c":
        raise TypeError("s must be real (singular values), got a complex array")
    for name, x in (("U", U), ("s", s), ("Vt", Vt)):
        if x.size and not all_finite(x):
            raise ValueError(f"{name} contains NaN or infinity")
    if s.size and float(s.min()) < 0:
        raise ValueError("s must hold non-negative singular values")
    return m, r, Vt.shape[1]


def _check_orthonormal(Q: Any, name: str, xp: Any) -> None:
    """Raise unless the columns of ``Q`` are orthonormal to ``sqrt(eps)`` of its precision.

    Brand's update reads ``U^H C`` as the coordinates of ``C`` in ``span(U)``; with a basis
    that is not orthonormal those are wrong and so is every singular value after it, without
    a sign of trouble. The ``r x r`` Gram matrix costs ``m r^2``, a fraction of the update.
    The bound leaves room for the drift of thousands of updates and for a float32 basis
    (3e-4), and is far below what a basis that is not one (an error of order 1) shows.
    """
    r = Q.shape[1]
    if r == 0:
        return
    G = conj_t(Q) @ Q
    G[xp.arange(r), xp.arange(r)] -= 1
    dev = float(xp.abs(G).max())
    tol = float(np.sqrt(np.finfo(Q.dtype).eps))
    if not dev <= tol:
        raise ValueError(
            f"{name} must have orthonormal {'columns' if name == 'U' else 'rows'}: "
            f"max |{name}^H {name} - I| = {dev:.2e} exceeds {tol:.1e}. Pass "
            "reorthogonalize_first=True (or call sparselin.linalg._svd_update.reorthogonalize) "
            "to restore orthonormality of a basis that has drifted."
        )


def _max_abs(C: Any, xp: Any) -> float:
    """Largest magnitude in C (dense, or canonical sparse); NaN or inf when C holds any."""
    data = C.data if is_sparse(C) else C
    if data.size == 0:
        return 0.0
    if data.dtype.kind == "c":
        return float(xp.abs(data).max())
    return max(float(data.max()), -float(data.min()))


def reorthogonalize(U: Any, s: Any, Vt: Any) -> tuple[Any, Any, Any]:
    """Restore exact orthonormality of a thin SVD that has drifted after many updates.

    ``U = Qu Ru`` and ``Vt^H = Qv Rv`` (QR); then ``U diag(s) Vt = Qu (Ru diag(s) Rv^H) Qv^H``
    and the SVD of the small middle matrix rotates the bases back to singular vectors. The
    product is unchanged to working precision; the cost is two thin QRs and an r x r SVD.

    Parameters
    ----------
    U : array of shape (m, r)
        Left factor (full column rank, not necessarily orthonormal).
    s : array of shape (r,)
        Middle (singular) values.
    Vt : array of shape (r, n)
        Right factor (full row rank).

    Returns
    -------
    U, s, Vt : arrays
        A thin SVD of ``U @ diag(s) @ Vt`` with orthonormal factors.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.linalg._svd_update import reorthogonalize
    >>> U, s, Vt = np.linalg.svd(np.arange(12.0).reshape(4, 3), full_matrices=False)
    >>> U2, s2, Vt2 = reorthogonalize(U, s, Vt)
    >>> bool(np.allclose((U2 * s2) @ Vt2, (U * s) @ Vt))
    True
    """
    xp = namespace(U, s, Vt)
    Qu, Ru = orth(U, xp, return_r=True)
    Qv, Rv = orth(conj_t(Vt), xp, return_r=True)
    M = (Ru * s[None, :].astype(Ru.dtype)) @ conj_t(Rv)
    u, s_new, wh = small_svd(M, xp)
    U_new = xp.ascontiguousarray(Qu @ u)
    Vt_new = xp.ascontiguousarray(wh @ conj_t(Qv))
    U_new, Vt_new = flip_signs(U_new, Vt_new, xp)
    return U_new, s_new.astype(s.dtype, copy=False), Vt_new


def svd_update(
    U: Any,
    s: Any,
    Vt: Any,
    C: Any,
    *,
    axis: Literal[0, 1] = 1,
    k: int | None = None,
    reorthogonalize_first: bool = False,
) -> tuple[Any, Any, Any]:
    """Update the thin SVD ``A ≈ U diag(s) Vt`` after appending columns or rows ``C``.

    Brand's method: the new columns are split into their part inside ``span(U)`` and an
    orthonormal remainder, the small core matrix ``[[diag(s), U^H C], [0, R]]`` is
    diagonalised, and the bases are rotated. The cost is ``O((m + n)(r + c)^2)`` — no pass
    over the old data, which is never needed again. When ``k`` is at least the rank of the
    concatenation the result is its exact SVD (to working precision).

    Parameters
    ----------
    U : array of shape (m, r)
        Left singular vectors (orthonormal columns).
    s : array of shape (r,)
        Singular values (real, non-negative).
    Vt : array of shape (r, n)
        Right singular vectors (orthonormal rows).
    C : array or sparse matrix of shape (m, c) for ``axis=1`` or (c, n) for ``axis=0``
        The appended columns or rows (a 1-D array is one column or row). A sparse block
        stays sparse: its products with the bases are sparse products. A dask array is
        streamed: its column blocks (``axis=1``) or row blocks (``axis=0``) are computed
        one at a time, in order, each read once, and applied as successive updates (the
        same as calling ``svd_update`` on each block in turn); ``U``, ``s`` and ``Vt``
        stay in memory.
    axis : {0, 1}, default=1
        1 appends columns (``[A, C]``), 0 appends rows (``[A; C]``).
    k : int, optional
        Rank to truncate back to; default: the current rank ``r``. Values above what the
        updated matrix can hold, ``min(m, n + c)`` (columns) or ``min(m + c, n)`` (rows),
        are clipped to it, and so is anything above ``r + c``. Keeping a few more than the
        rank you need (say ``k + 10``) makes a long stream markedly more accurate, since each
        truncation discards the tail. Where the updated matrix has rank below ``k`` the
        extra singular values are 0 and their vectors complete the orthonormal bases.
    reorthogonalize_first : bool, default=False
        Re-orthonormalise ``U`` and ``Vt`` before updating (see :class:`IncrementalSVD`,
        which does this periodically so that thousands of updates stay orthonormal to working
        precision). Without it, ``U`` and ``Vt`` must be orthonormal to ``sqrt(eps)``.

    Returns
    -------
    U, s, Vt : arrays
        The updated truncated SVD, with ``n + c`` columns (``axis=1``) or ``m + c`` rows
        (``axis=0``). Signs follow :func:`truncated_svd`'s rule. Inputs are not modified.

    Raises
    ------
    ValueError
        Mismatched shapes, NaN/inf, empty input, negative ``s``, ``k`` out of range, bad
        ``axis``, or ``U``/``Vt`` not orthonormal (without ``reorthogonalize_first``).
    TypeError
        Non-numeric, complex ``s``, dask ``U``/``s``/``Vt``, masked arrays, data on
        different devices.

    References
    ----------
    M. Brand, "Fast low-rank modifications of the thin singular value decomposition",
    Linear Algebra Appl. 415(1), 2006.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin import svd_update
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((50, 8)) @ rng.standard_normal((8, 40))
    >>> U, s, Vt = np.linalg.svd(A[:, :20], full_matrices=False)
    >>> U, s, Vt = U[:, :8], s[:8], Vt[:8]
    >>> U, s, Vt = svd_update(U, s, Vt, A[:, 20:], axis=1)
    >>> bool(np.allclose((U * s) @ Vt, A))
    True
    """
    if axis not in (0, 1) or isinstance(axis, bool):
        raise ValueError(f"axis must be 0 (append rows) or 1 (append columns), got {axis!r}")
    if is_dask_array(C):
        from ._dask import svd_update_dask

        return svd_update_dask(
            U, s, Vt, C, axis=axis, k=k, reorthogonalize_first=reorthogonalize_first
        )
    U = _as_2d(U, "U")
    Vt = _as_2d(Vt, "Vt")
    s = _as_2d(s, "s")
    C = _as_2d(C, "C")
    xp = namespace(U, s, Vt, C)
    m, r, n = _check_svd_triplet(U, s, Vt)
    if C.ndim == 1:
        C = C[:, None] if axis == 1 else C[None, :]
    if C.ndim != 2:
        raise ValueError(f"C must be 1-D or 2-D, got ndim={C.ndim}")
    if 0 in C.shape:
        raise ValueError(f"C must be non-empty, got shape {C.shape}")
    expected = m if axis == 1 else n
    got = C.shape[0] if axis == 1 else C.shape[1]
    if got != expected:
        what = "rows" if axis == 1 else "columns"
        raise ValueError(
            f"C must have {expected} {what} to append along axis={axis} to a {m} x {n} "
            f"matrix, got shape {C.shape}"
        )
    dtype = np.result_type(result_dtype(U.dtype), result_dtype(Vt.dtype), result_dtype(C.dtype))
    c = C.shape[1] if axis == 1 else C.shape[0]
    # A k above what the new matrix can hold is clipped rather than refused, so that a stream
    # can ask for its final rank from the first small block on.
    k = r if k is None else check_int(k, "k", low=1)
    k = min(k, min(m, n + c) if axis == 1 else min(m + c, n))
    real = np.finfo(dtype).dtype
    U = U.astype(dtype, copy=False)
    Vt = Vt.astype(dtype, copy=False)
    s = s.astype(real, copy=False)
    C = C.astype(dtype, copy=False)
    c_max = _max_abs(C, xp)
    if not np.isfinite(c_max):
        raise ValueError("C contains NaN or infinity")
    if reorthogonalize_first:
        U, s, Vt = reorthogonalize(U, s, Vt)
    else:
        _check_orthonormal(U, "U", xp)
        _check_orthonormal(conj_t(Vt), "Vt", xp)
    if axis == 0:
        # [A; C] = ([A^H, C^H])^H: update the SVD of A^H = V s U^H with columns C^H.
        V2, s2, U2t = _svd_update_core(conj_t(Vt), s, conj_t(U), conj_t(C), k, xp, c_max=c_max)
        return xp.ascontiguousarray(conj_t(U2t)), s2, xp.ascontiguousarray(conj_t(V2))
    return _svd_update_core(U, s, Vt, C, k, xp, c_max=c_max)


def _svd_update_core(
    U: Any,
    s: Any,
    Vt: Any | None,
    C: Any,
    k: int,
    xp: Any,
    *,
    c_max: float | None = None,
    sketch: int | None = None,
    n_iter: int = 2,
    random_state: Any = None,
    reorthogonalize_first: bool = False,
) -> tuple[Any, Any, Any]:
    """Top-``k`` SVD of ``[U diag(s) Vt, C]``: the unvalidated core of :func:`svd_update`.

    The caller guarantees: ``U`` (m, r) with orthonormal columns (or ``reorthogonalize_first``),
    ``s`` (r,) real non-negative, ``Vt`` (r, n) with orthonormal rows or ``None`` (then only
    ``U`` and ``s`` are updated — what a stream of samples needs, since they do not depend on
    the ever growing other factor), ``C`` (m, c) dense or CSR/CSC sparse, finite, all of one
    dtype and device; ``1 <= k``. ``r`` may be 0 (the SVD of ``C`` alone).

    ``sketch=l`` with ``c > _SKETCH_MIN_WIDTH * l`` replaces the exact remainder by a
    randomized approximation of ``C``'s part outside ``span(U)`` (``n_iter`` power
    iterations, Gaussian test matrices from ``random_state``); the part inside ``span(U)``
    is kept exactly. That is exact whenever the remainder has rank at most ``l`` and
    otherwise drops only directions that matter least, for ``O(nnz(C) l)`` work where the
    exact remainder costs ``O(m c^2)``. A sparse block with ``Vt=None`` is compressed on its
    row side (:func:`_row_space_update`, which keeps the remainder's directions that matter
    most to the *updated* matrix); any other block with ``Vt=None`` on its column side by
    the same rule (:func:`_updated_range`); with ``Vt`` tracked (or ``n_iter=0``), on its
    column side by the remainder's own leading directions (:func:`_sketch_remainder`).

    Returns ``(U, s, Vt)`` of rank ``min(k, m, r + c)`` (``Vt`` is None when not tracked).
    """
    real = s.dtype
    if reorthogonalize_first:
        if Vt is None:
            U, s = _reorthogonalize_left(U, s, xp)
        else:
            U, s, Vt = reorthogonalize(U, s, Vt)
    m, r = U.shape
    c = C.shape[1]
    k = min(k, m, r + c)
    # One home for the scaling: Gram matrices hold squares of the data's scale, so data near
    # the ends of the exponent range is worked on times a power of two (exact), undone at
    # the end. Ordinary data costs one reduction over C.
    scale = _update_scale(s, _max_abs(C, xp) if c_max is None else c_max, m, xp, real)
    if scale != 1.0:
        s = s * real.type(scale)
        C = C * real.type(scale)
    op = Operator(C, "sparse" if is_sparse(C) else "dense", xp)
    # M = U^H C, as (C^H U)^H so that a sparse C is read in its own layout.
    M = conj_t(op.rmm(U)) if r else xp.zeros((0, c), dtype=U.dtype)
    c_norm2 = _column_norms2(C, xp)
    ref = max(float(s.max()) if r else 0.0, float(xp.sqrt(c_norm2.sum())))
    tau = _NOISE_ULPS * np.sqrt(max(m, c)) * float(np.finfo(real).eps) * ref
    sketched = sketch is not None and c > _SKETCH_MIN_WIDTH * sketch
    if sketched and random_state is None:
        random_state = np.random.default_rng()
    if sketched and Vt is None and op.kind == "sparse" and c <= _ROW_SPACE_MAX and m - r > 0:
        with _one_blas_thread(xp):
            return _row_space_update(op, U, s, M, k, sketch, n_iter, random_state, scale, xp)
    if sketched and Vt is None and r and n_iter > 0:
        Q0, R0 = _updated_range(op, U, s, M, min(sketch, m - r), n_iter, random_state, xp)
        Rc_tri = None
    elif sketched:
        Q0, R0 = _sketch_remainder(op, U, M, min(sketch, m - r), n_iter, random_state, xp)
        Rc_tri = None
    else:
        Rc_tri = _gram_path(op, M, c_norm2, m - r, xp)
    if Rc_tri is not None:
        # [A, C] = [U, Qc] K blockdiag(V, I)^H with Qc = (C - U M) Rc^-1 never formed: the
        # rotated basis [U, Qc] uk is U (uk_U - M Rc^-1 uk_C) + C (Rc^-1 uk_C), two GEMMs
        # with the small factors (one sparse product for sparse C). Against the explicit
        # path this saves the m x c remainder, its Gram matrix and a GEMM.
        uk, sk, wkh = _core_svd(s, M, Rc_tri, None, k, xp)
        Y = _triangular_inverse(Rc_tri, xp) @ uk[r:]
        U_new = xp.ascontiguousarray(U @ (uk[:r] - M @ Y)) if r else None
        CY = op.mm(Y)
        U_new = CY if U_new is None else U_new + CY
        return _finish(xp.ascontiguousarray(U_new), sk, wkh, s, Vt, c, scale, xp)
    if not sketched:
        Q0, R0, M = _explicit_remainder(op, U, M, c_norm2, xp)
    # Q0 R0 is the remainder (C - U M), Q0 orthonormal and orthogonal to U up to rounding
    # amplified by R0's conditioning; keep its numerically significant directions only.
    Qv, Rc, M = _remainder_basis(Q0, R0, U, M, tau, m - r, xp)
    qv = Qv.shape[1]
    pad = max(0, k - r - qv)
    uk, sk, wkh = _core_svd(s, M, Rc, pad, k, xp)
    U_new = Qv @ uk[r : r + qv]
    if r:
        U_new += U @ uk[:r]
    if pad:
        U_new += _completion(U, Qv, pad, xp) @ uk[r + qv :]
    return _finish(xp.ascontiguousarray(U_new), sk, wkh, s, Vt, c, scale, xp)


def _update_scale(s: Any, c_max: float, m: int, xp: Any, real: Any) -> float:
    """Power-of-two factor for s and C when their squares (Gram matrices) would leave range.

    Ordinary data returns 1.0 at once (the same rule as truncated_svd's safe_scale).
    """
    info = np.finfo(real)
    big = max(float(xp.abs(s).max()) if s.size else 0.0, c_max)
    if big == 0.0 or float(info.tiny) * 1e10 < big * big < float(info.max) * 1e-10 / max(1, m):
        return 1.0
    exponent = min(-int(np.frexp(big)[1]), int(info.maxexp) - 2)
    return float(np.ldexp(1.0, exponent))


def _column_norms2(C: Any, xp: Any) -> Any:
    """Squared column norms of a dense or sparse C (real, length c)."""
    if is_sparse(C):
        sq = C.copy()  # canonical (no duplicates): squares of the entries sum correctly
        sq.data = xp.abs(sq.data) ** 2
        return xp.asarray(sq.sum(axis=0)).ravel().real
    # einsum avoids a temporary of C's size.
    if C.dtype.kind == "c":
        return xp.einsum("ij,ij->j", C.conj(), C).real
    return xp.einsum("ij,ij->j", C, C)


def _dense(C: Any) -> Any:
    return C.toarray() if is_sparse(C) else C


def _gram_path(op: Operator, M: Any, c_norm2: Any, room: int, xp: Any) -> Any | None:
    """``Rc`` of the remainder ``C - U M`` from Gram matrices alone, or None.

    With U orthonormal, ``(C - U M)^H (C - U M) = C^H C - M^H M``: the remainder's Cholesky
    factor comes from c x c products, without forming the remainder. The subtraction cancels
    the part of C inside span(U), losing about ``log10(||c||^2 / ||r||^2)`` digits per
    column, so it is used only when every column keeps more than ``_GRAM_KEEP`` of its
    energy outside span(U) and the factor is well conditioned (zero columns fail both).
    """
    C = op.A
    c = C.shape[1]
    if c > room:
        return None
    G = _dense(conj_t(C) @ C)  # BLAS syrk for dense C (C^H C is recognised as symmetric)
    if M.shape[0]:
        G = G - conj_t(M) @ M
    r_norm2 = xp.diagonal(G).real
    if not bool(xp.all(r_norm2 > _GRAM_KEEP * c_norm2)):
        return None
    return _well_conditioned_cholesky(G, xp)


def _well_conditioned_cholesky(G: Any, xp: Any) -> Any | None:
    """Upper Cholesky factor of ``G`` when it exists and is well conditioned, else None."""
    R = _cholesky_upper(G, xp)
    if R is None:
        return None
    d = xp.abs(xp.diagonal(R))
    return R if float(d.min()) > float(d.max()) / _MAX_COND else None


def _explicit_remainder(op: Operator, U: Any, M: Any, c_norm2: Any, xp: Any) -> tuple:
    """``Q0, R0`` with ``Q0 R0 = C - U M`` (M refined by a second pass where needed)."""
    C = op.A
    if U.shape[1] == 0:
        Rres = _dense(C)  # orth does not write to its argument
    else:
        # C - U M without a second m x c temporary: the GEMM's output is reused in place.
        Rres = U @ M
        xp.subtract(_dense(C), Rres, out=Rres)
        # One Gram-Schmidt pass leaves a component along U of about eps * ||c|| in each
        # remainder column r, that is eps * ||c|| / ||r|| relative to it; a second pass
        # ("twice is enough") is spent only where the first removed most of a column.
        if bool(xp.any(_column_norms2(Rres, xp) < _SECOND_PASS * c_norm2)):
            M2 = conj_t(U) @ Rres
            Rres -= U @ M2
            M = M + M2
    Q0, R0 = orth(Rres, xp, return_r=True)
    return Q0, R0, M


def _sketch_remainder(
    op: Operator, U: Any, M: Any, l: int, n_iter: int, random_state: Any, xp: Any
) -> tuple[Any, Any]:
    """``Q, B`` with ``Q B ≈ R = C - U M``: a randomized range finder on R, never formed.

    ``R X = C X - U (M X)`` and ``R^H Q = C^H Q - M^H (U^H Q)``: every pass is one (sparse)
    product with C or C^H plus thin GEMMs, ``O(nnz(C) l + m r l)``. ``Q`` spans the block
    Krylov space of ``n_iter`` passes: ``(n_iter + 1) l`` columns.
    """
    r = U.shape[1]
    if l <= 0:  # span(U) is the whole space: nothing remains
        return xp.zeros((U.shape[0], 0), dtype=U.dtype), xp.zeros((0, M.shape[1]), U.dtype)

    def remainder_times(Z: Any) -> Any:
        Y = op.mm(Z)
        if r:
            Y -= U @ (M @ Z)
        return Y

    # Block Krylov: the blocks R Z, (R R^H) R Z, ... are all kept, not only the last one.
    # On the flat spectra of text data a power iteration's last block captures the
    # remainder's leading directions poorly (measured: 0.3-0.5% of the energy lost per
    # update, compounding over a stream); the Krylov space of the same passes does not.
    Z = gaussian(random_state, (op.shape[1], l), op.dtype, xp)
    blocks = []
    for i in range(n_iter + 1):
        Y = orth(remainder_times(Z), xp, passes=1)
        blocks.append(Y)
        if i < n_iter:
            Z = op.rmm(Y)
            if r:
                Z -= conj_t(M) @ (conj_t(U) @ Y)  # R^H Y = C^H Y - M^H U^H Y
            Z = orth(Z, xp, passes=1)
    # More columns than R can have (min(m - r, c)) only add noise directions.
    width = min(U.shape[0] - r, op.shape[1])
    Q = blocks[0] if len(blocks) == 1 else xp.concatenate(blocks, axis=1)[:, :width]
    # R Z is orthogonal to U only up to rounding relative to ||C Z||, which may be large
    # against ||R Z|| when C lies mostly in span(U): a second Gram-Schmidt pass, then an
    # orthonormal basis of the whole Krylov space (_remainder_basis checks it against U).
    if r:
        Q -= U @ (conj_t(U) @ Q)
    Q = orth(Q, xp)
    B = conj_t(op.rmm(Q))
    if r:
        B -= (conj_t(Q) @ U) @ M
    return Q, B


def _updated_range(
    op: Operator, U: Any, s: Any, M: Any, l: int, n_iter: int, random_state: Any, xp: Any
) -> tuple[Any, Any]:
    """``Q, B`` with ``Q B ≈ R = C - U M``, keeping R's directions that matter to ``[U S, C]``.

    The column-side counterpart of :func:`_updated_row_space` (the rule of the left-only
    update of a wide sparse block), for blocks compressed on the column side (dense, or
    wider than ``_ROW_SPACE_MAX``): ``n_iter`` subspace iterations on the updated matrix's
    ``B B^H = U diag(s^2) U^H + C C^H`` (one product with ``C^H`` and one with ``C`` each),
    started from the incumbent directions and ``R Ω``, converge to its top ``r + l``
    subspace; that subspace's part outside ``span(U)``, ``(I - U U^H) B B^H Z = R (C^H Z)``,
    lies in the range of the remainder and is what the update keeps. The remainder's own
    leading directions (:func:`_sketch_remainder`) are not the same thing when the block's
    dominant directions are private to it and the shared ones couple with ``M``. When the
    remainder has rank at most ``r + l`` the result spans all of it: the update is exact.

    The same number of products with C as :func:`_sketch_remainder` (``n_iter + 1`` each
    way), and a core of ``2 r + l`` columns instead of ``r + (n_iter + 1) l``.
    """
    if l <= 0:  # span(U) is the whole space: nothing remains
        return xp.zeros((U.shape[0], 0), dtype=U.dtype), xp.zeros((0, M.shape[1]), U.dtype)
    UH = conj_t(U)
    s2 = (s.astype(U.real.dtype) ** 2)[:, None]
    Omega = gaussian(random_state, (op.shape[1], l), op.dtype, xp)
    Y = op.mm(Omega) - U @ (M @ Omega)
    Z = orth(xp.concatenate([U, orth(Y, xp, passes=1)], axis=1), xp, passes=1)
    for _ in range(n_iter - 1):
        Z = orth(op.mm(op.rmm(Z)) + U @ (s2 * (UH @ Z)), xp, passes=1)
    W = op.rmm(Z)
    Q = op.mm(W) - U @ (M @ W)  # R (C^H Z)
    # R W is orthogonal to U only up to rounding relative to ||C W||: a second pass (see
    # _sketch_remainder), then an orthonormal basis (_remainder_basis checks it against U
    # and cuts the noise directions of a remainder of rank below r + l).
    Q -= U @ (UH @ Q)
    Q = orth(Q, xp)
    B = conj_t(op.rmm(Q)) - (conj_t(Q) @ U) @ M
    return Q, B


def _row_space_update(
    op: Operator,
    U: Any,
    s: Any,
    M: Any,
    k: int,
    l: int,
    n_iter: int,
    random_state: Any,
    scale: float,
    xp: Any,
) -> tuple[Any, Any, None]:
    """Left-only update for a wide sparse block, its remainder compressed on the row side.

    The remainder ``R = C - U M`` (m x c) is never formed: its Gram matrix
    ``R^H R = C^H C - M^H M`` (c x c; one sparse product) gives the row space, in which
    the directions ``W`` kept come from subspace iteration with small products only
    (the column side would need a pass over C and an m x l orthonormalisation per
    iteration: for a batch of 1200 TF-IDF rows over 16000 features that was 4x the cost).
    ``W`` is the batch side of the *updated* matrix's top ``r + l`` subspace (see
    :func:`_updated_row_space`), not the remainder's own top ``l`` directions.
    Rayleigh-Ritz on ``W`` gives ``R W = Q_R L^(1/2) E^H`` with ``Q_R = R W E L^(-1/2)``, so
    the core matrix is ``[[diag(s), M], [0, L^(1/2) (W E)^H]]`` and the rotated basis is
    ``U (uk_U - M Y) + C Y`` with ``Y = W E L^(-1/2) uk_R``: one more sparse product.

    The Gram matrix squares the remainder's condition number, so directions below about
    ``sqrt(eps)`` of the block's norm are not resolved (they are dropped, float32 blocks
    are worked on in float64) and ``Q_R`` is orthonormal only to ``eps * ||C||^2 / L``:
    the result is re-orthonormalised at the end (an m x k QR and a k x k SVD).
    """
    C = op.A
    dtype = C.dtype
    work = np.dtype(np.complex128 if dtype.kind == "c" else np.float64)
    if dtype != work:
        C = C.astype(work)
        M = M.astype(work)
    c = C.shape[1]
    r = U.shape[1]
    GC = _dense(conj_t(C) @ C)
    W = _updated_row_space(s.astype(np.finfo(work).dtype), M, GC, l, n_iter, random_state, xp)
    # W^H R^H R W = W^H C^H C W - (M W)^H (M W): the remainder's c x c Gram matrix itself
    # (a c x c x r product) is never formed.
    H = conj_t(W) @ (GC @ W)
    trace = float(xp.trace(GC).real)
    if r:
        MW = M @ W
        H -= conj_t(MW) @ MW
        trace -= float(xp.sum(xp.abs(M) ** 2))
    host = to_numpy(H)
    lam, E = np.linalg.eigh((host + host.conj().T) / 2)
    lam, E = lam[::-1], np.ascontiguousarray(E[:, ::-1])
    # Eigenvalues of the Gram matrix are accurate to ~ c eps (s_max^2 + ||R||^2): below that
    # a direction is noise, and normalising it by its square root would blow its error up.
    energy = (float(s.max()) ** 2 if r else 0.0) + trace
    cut = _NOISE_ULPS * c * float(np.finfo(work).eps) * energy
    q = int(np.count_nonzero(lam > cut))
    root = np.sqrt(lam[:q])
    WE = W @ (E[:, :q] if xp is np else xp.asarray(E[:, :q]))
    Rc = xp.asarray(root.astype(work))[:, None] * conj_t(WE)
    uk, sk, _ = _core_svd(s.astype(np.finfo(work).dtype), M, Rc, None, min(k, r + q), xp)
    Y = (WE / xp.asarray(root.astype(np.finfo(work).dtype))[None, :]) @ uk[r:]
    U_new = Operator(C, "sparse", xp).mm(Y)
    if r:
        U_new += U.astype(work, copy=False) @ (uk[:r] - M @ Y)
    U_new = U_new.astype(dtype, copy=False)
    sk = sk.astype(s.dtype)
    # Q_R's loss of orthogonality is eps ||C||^2 / lambda over the kept directions, usually
    # far below rounding for the leading ones: one Gram matrix (m k^2 / 2) tells, and only a
    # basis that is off pays for the rotation back (U_new diag(sk) = Q T diag(sk) =
    # Q u s' w^H, the untracked right factor absorbing w^H; about 6 m k^2).
    G = conj_t(U_new) @ U_new
    kk = G.shape[0]
    G[xp.arange(kk), xp.arange(kk)] -= 1
    limit = 10 * float(np.finfo(dtype).eps) * np.sqrt(U_new.shape[0])
    if kk and float(xp.abs(G).max()) > limit:
        U_new, sk = _reorthogonalize_left(U_new, sk, xp)
    else:
        U_new = xp.ascontiguousarray(U_new)
        U_new, _ = flip_signs(U_new, xp.empty((kk, 0), dtype=U_new.dtype), xp)
    if U_new.shape[1] < k:
        # A block (and basis) of lower rank than asked: complete with exact zeros.
        extra = _completion(U_new, U_new[:, :0], k - U_new.shape[1], xp)
        U_new = xp.concatenate([U_new, extra], axis=1)
        sk = xp.concatenate([sk, xp.zeros(extra.shape[1], dtype=sk.dtype)])
    if scale != 1.0:
        sk = sk / s.dtype.type(scale)
    return U_new, sk, None


def _updated_row_space(
    s: Any, M: Any, GC: Any, l: int, n_iter: int, random_state: Any, xp: Any
) -> Any:
    """Orthonormal ``W`` (c x q): the batch-side part of the updated matrix's top subspace.

    The updated matrix is ``B = [U diag(s), C]`` (in the orthonormal basis ``[U, Q_R]`` its
    rows are the core ``[[diag(s), M], [0, R_c]]``); its Gram matrix
    ``B^H B = [[diag(s^2), diag(s) M], [M^H diag(s), C^H C]]`` ((r + c) square) is applied
    from its blocks without being formed. Subspace iteration on it, started from the
    incumbent directions ``[I; 0]`` and ``l`` Gaussian columns, converges to the updated
    top subspace; the rows of its batch block span the combinations of the batch's samples
    that those directions need. When the remainder has rank at most ``l``, the updated
    matrix has rank at most ``r + l`` and the batch block spans the whole row space of
    the remainder: the update is exact, as with the earlier rule.

    Why not the remainder's own dominant row space (the earlier rule): on text, each batch's
    remainder is dominated by directions private to single documents (rows of unit norm,
    nearly orthogonal), while the directions that enter the top ``k`` are shared ones whose
    weight in one batch is a fraction of their total and which couple with ``M``. Ranked
    by the remainder alone they fell behind the private ones and were never kept: TF-IDF
    12000 x 30000 in 10 batches, 50 components, kept 0.960 of the optimal energy; ranked by
    the updated matrix, 0.994, in about the same time (one BLAS thread, paired runs).
    """
    r, c = M.shape
    width = r + l
    if width >= c:
        # As many directions as the batch has: all of it enters the core (exact update).
        return xp.eye(c, dtype=GC.dtype)
    Z = xp.zeros((r + c, width), dtype=GC.dtype)
    if r:
        Z[xp.arange(r), xp.arange(r)] = 1
    Z[r:, r:] = gaussian(random_state, (c, width - r), GC.dtype, xp)
    sM = s[:, None].astype(GC.dtype) * M if r else M

    def gram_times(Z: Any) -> Any:
        Z1, Z2 = Z[:r], Z[r:]
        out = xp.empty_like(Z)
        if r:
            out[:r] = (s[:, None] ** 2).astype(Z.dtype) * Z1 + sM @ Z2
            out[r:] = conj_t(sM) @ Z1 + GC @ Z2
        else:
            out[:] = GC @ Z2
        return out

    for _ in range(_ROW_SPACE_ITER * n_iter):
        Z = orth(gram_times(Z), xp, passes=1)
    Z = gram_times(Z)
    # The batch block of the iterate: its column space is what the core matrix needs from
    # the batch (width < c columns; directions it adds in noise are cut by the caller).
    return orth(Z[r:], xp)


def _remainder_basis(
    Q0: Any, R0: Any, U: Any, M: Any, tau: float, room: int, xp: Any
) -> tuple[Any, Any, Any]:
    """Orthonormal ``Qv`` orthogonal to U and ``Rc`` with ``Qv Rc`` = the remainder ``Q0 R0``.

    The remainder's directions with singular value at most ``tau`` (at most ``room`` kept,
    the dimensions left outside span(U)) are noise: normalising them would turn rounding
    errors along U into unit vectors that are not orthogonal to U — the source of bases with
    orthonormality errors of order one when C holds zero, tiny or in-span columns. The rest
    are checked against U and re-orthogonalised, the coefficients moved into M, if needed.
    """
    if 0 in R0.shape:
        return Q0[:, :0], R0[:0], M
    u, sig, vh = small_svd(R0, xp)
    sig_host = sig if xp is np else sig.get()
    q = min(int(np.count_nonzero(sig_host > tau)), room)
    Qv = Q0 @ u[:, :q]
    Rc = sig[:q, None].astype(vh.dtype) * vh[:q]
    r = U.shape[1]
    if r and q:
        limit = 10.0 * float(np.finfo(Qv.dtype).eps) * np.sqrt(U.shape[0])
        for _ in range(2):
            P = conj_t(U) @ Qv
            if float(xp.abs(P).max()) <= limit:
                break
            # Qv = U P + Q' T exactly, so the remainder Qv Rc = U (P Rc) + Q' (T Rc).
            Qv, T = orth(Qv - U @ P, xp, return_r=True)
            M = M + P @ Rc
            Rc = T @ Rc
    return Qv, Rc, M


def _completion(U: Any, Qv: Any, count: int, xp: Any) -> Any:
    """``count`` orthonormal directions orthogonal to both U and Qv (a rank-deficient update)."""
    basis = xp.concatenate([U, Qv], axis=1)
    rng = np.random.default_rng(_COMPLETION_SEED)
    Y = gaussian(rng, (U.shape[0], count), U.dtype, xp)
    if basis.shape[1] == 0:
        return orth(Y, xp)
    limit = 10 * float(np.finfo(U.dtype).eps) * np.sqrt(U.shape[0])
    for _ in range(3):
        for _ in range(2):
            Y = Y - basis @ (conj_t(basis) @ Y)
        Y = orth(Y, xp)
        if float(xp.abs(conj_t(basis) @ Y).max()) <= limit:
            break
    return Y


def _core_svd(s: Any, M: Any, Rc: Any, pad: int | None, k: int, xp: Any) -> tuple:
    """Top-k SVD of the core matrix ``K = [[diag(s), M], [0, Rc], [0, 0]]`` (``pad`` zero rows)."""
    r, c = M.shape
    q = Rc.shape[0]
    K = xp.zeros((r + q + (pad or 0), r + c), dtype=Rc.dtype)
    if r:
        K[:r, :r] = xp.diag(s.astype(Rc.dtype))
        K[:r, r:] = M
    K[r : r + q, r:] = Rc
    uk, sk, wkh = small_svd(K, xp)
    return uk[:, :k], sk[:k], wkh[:k]


def _finish(
    U_new: Any, sk: Any, wkh: Any, s: Any, Vt: Any | None, c: int, scale: float, xp: Any
) -> tuple[Any, Any, Any]:
    """The updated right factor (when tracked), deterministic signs and the output dtypes."""
    k = U_new.shape[1]
    r = s.shape[0]
    sk = sk.astype(s.dtype, copy=False)
    if scale != 1.0:
        sk = sk / s.dtype.type(scale)
    if Vt is None:
        U_new, _ = flip_signs(U_new, xp.empty((k, 0), dtype=U_new.dtype), xp)
        return U_new, sk, None
    n = Vt.shape[1]
    Vt_new = xp.empty((k, n + c), dtype=U_new.dtype)
    Vt_new[:, :n] = wkh[:, :r] @ Vt
    Vt_new[:, n:] = wkh[:, r:]
    U_new, Vt_new = flip_signs(U_new, Vt_new, xp)
    return U_new, sk, Vt_new


def _reorthogonalize_left(U: Any, s: Any, xp: Any) -> tuple[Any, Any]:
    """Re-orthonormalise ``U`` of ``U diag(s) W^H`` when ``W`` is not tracked."""
    if U.shape[1] == 0:
        return U, s
    Qu, Ru = orth(U, xp, return_r=True)
    u, s_new, _ = small_svd(Ru * s[None, :].astype(Ru.dtype), xp)
    U_new = xp.ascontiguousarray(Qu @ u)
    U_new, _ = flip_signs(U_new, xp.empty((U.shape[1], 0), dtype=U.dtype), xp)
    return U_new, s_new.astype(s.dtype, copy=False)
