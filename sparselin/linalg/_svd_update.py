"""Brand's update of a thin SVD when columns or rows are appended."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .._array import is_cupy_array, is_dask_array, is_sparse, namespace, result_dtype
from .._validation import all_finite, check_int
from ._dense import _cholesky_upper, _triangular_inverse, flip_signs, orth, small_svd

__all__ = ["reorthogonalize", "svd_update"]


def _as_dense_2d(x: Any, name: str) -> Any:
    if is_dask_array(x):
        # np.asarray would silently compute the whole array on this machine.
        raise TypeError(
            f"{name} is a dask array; sparselin's dask path is not available yet. Compute a "
            "NumPy/CuPy array first (or wait for the distributed family)."
        )
    if is_sparse(x):
        # Brand's update needs U^H C and the orthogonal residual, both dense (m x c) anyway.
        x = x.toarray()
    if not (isinstance(x, np.ndarray) or is_cupy_array(x)):
        x = np.asarray(x)
    if x.dtype.kind not in "biufc":
        raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
    return x


def _check_svd_triplet(U: Any, s: Any, Vt: Any) -> tuple[int, int, int]:
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
    return m, r, Vt.shape[1]


def _column_norms2(X: Any, xp: Any) -> Any:
    # einsum avoids a temporary of X's size.
    return (
        xp.einsum("ij,ij->j", X.conj(), X).real
        if X.dtype.kind == "c"
        else (xp.einsum("ij,ij->j", X, X))
    )


def reorthogonalize(U: Any, s: Any, Vt: Any) -> tuple[Any, Any, Any]:
    """Restore exact orthonormality of a thin SVD that has drifted after many updates.

    ``U = Qu Ru`` and ``Vt^H = Qv Rv`` (QR); then ``U diag(s) Vt = Qu (Ru diag(s) Rv^H) Qv^H``
    and the SVD of the small middle matrix rotates the bases back to singular vectors. The
    product is unchanged to working precision; the cost is two thin QRs and an r x r SVD.

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
    cplx = U.dtype.kind == "c"
    Qu, Ru = xp.linalg.qr(U, mode="reduced")
    V = Vt.conj().T if cplx else Vt.T
    Qv, Rv = xp.linalg.qr(V, mode="reduced")
    RvH = Rv.conj().T if cplx else Rv.T
    M = (Ru * s[None, :].astype(Ru.dtype)) @ RvH
    u, s_new, wh = small_svd(M, xp)
    QvH = Qv.conj().T if cplx else Qv.T
    U_new = xp.ascontiguousarray(Qu @ u)
    Vt_new = xp.ascontiguousarray(wh @ QvH)
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
    over the old data, which is never needed again.

    Parameters
    ----------
    U : array of shape (m, r)
        Left singular vectors (orthonormal columns).
    s : array of shape (r,)
        Singular values (real, non-negative).
    Vt : array of shape (r, n)
        Right singular vectors (orthonormal rows).
    C : array of shape (m, c) for ``axis=1`` or (c, n) for ``axis=0``
        The appended columns or rows (a 1-D array is one column or row). Sparse blocks are
        accepted and densified block by block.
    axis : {0, 1}, default=1
        1 appends columns (``[A, C]``), 0 appends rows (``[A; C]``).
    k : int, optional
        Rank to truncate back to; default: the current rank ``r``. Values above what the
        updated matrix can hold, ``min(m, n + c)`` (columns) or ``min(m + c, n)`` (rows),
        are clipped to it. Keeping a few more than the rank you need (say ``k + 10``) makes
        a long stream markedly more accurate, since each truncation discards the tail.
    reorthogonalize_first : bool, default=False
        Re-orthonormalise ``U`` and ``Vt`` before updating (see :class:`IncrementalSVD`,
        which does this periodically so that thousands of updates stay orthonormal to working
        precision).

    Returns
    -------
    U, s, Vt : arrays
        The updated truncated SVD, with ``n + c`` columns (``axis=1``) or ``m + c`` rows
        (``axis=0``). Signs follow :func:`truncated_svd`'s rule. Inputs are not modified.

    Raises
    ------
    ValueError
        Mismatched shapes, NaN/inf, empty input, ``k`` out of range, bad ``axis``.

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
    U = _as_dense_2d(U, "U")
    Vt = _as_dense_2d(Vt, "Vt")
    if is_dask_array(s):
        raise TypeError("s is a dask array; pass a NumPy or CuPy array")
    s = s if (isinstance(s, np.ndarray) or is_cupy_array(s)) else np.asarray(s)
    C = _as_dense_2d(C, "C")
    xp = namespace(U, s, Vt, C)
    m, r, n = _check_svd_triplet(U, s, Vt)
    if C.ndim == 1:
        C = C[:, None] if axis == 1 else C[None, :]
    if C.ndim != 2:
        raise ValueError(f"C must be 1-D or 2-D, got ndim={C.ndim}")
    if C.size == 0:
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
    limit = min(m, n + c) if axis == 1 else min(m + c, n)
    # A k above what the new matrix can hold is clipped rather than refused, so that a stream
    # can ask for its final rank from the first small block on.
    k = r if k is None else check_int(k, "k", low=1)
    k = min(k, limit)
    real = np.finfo(dtype).dtype
    cplx = np.dtype(dtype).kind == "c"

    def H(X: Any) -> Any:
        return X.conj().T if cplx else X.T

    U = U.astype(dtype, copy=False)
    Vt = Vt.astype(dtype, copy=False)
    s = s.astype(real, copy=False)
    C = C.astype(dtype, copy=False)
    c_max = _max_abs(C, xp)
    if not np.isfinite(c_max):
        raise ValueError("C contains NaN or infinity")
    if reorthogonalize_first:
        U, s, Vt = reorthogonalize(U, s, Vt)
    scale = _update_scale(s, c_max, C.shape[0], xp, real)
    if scale != 1.0:
        s = s * real.type(scale)
        C = C * real.type(scale)
    if axis == 0:
        # [A; C] = ([A^H, C^H])^H: update the SVD of A^H = V s U^H with columns C^H.
        V2, s2, U2t = _append_columns(H(Vt), s, H(U), H(C), k, xp, H)
        out = xp.ascontiguousarray(H(U2t)), s2, xp.ascontiguousarray(H(V2))
    else:
        out = _append_columns(U, s, Vt, C, k, xp, H)
    if scale != 1.0:
        out = (out[0], out[1] / real.type(scale), out[2])
    return out


def _max_abs(C: Any, xp: Any) -> float:
    """Largest magnitude in C; NaN or inf when C holds any (one reduction per sign, no copy)."""
    if C.dtype.kind == "c":
        return float(xp.abs(C).max())
    return max(float(C.max()), -float(C.min()))


def _update_scale(s: Any, c_max: float, m: int, xp: Any, real: Any) -> float:
    """Power-of-two factor for s and C when their squares (Gram matrices) would leave range.

    Ordinary data returns 1.0 at once; see truncated_svd's _safe_scale.
    """
    info = np.finfo(real)
    big = max(float(xp.abs(s).max()) if s.size else 0.0, c_max)
    if big == 0.0 or float(info.tiny) * 1e10 < big * big < float(info.max) * 1e-10 / max(1, m):
        return 1.0
    exponent = min(-int(np.frexp(big)[1]), int(info.maxexp) - 2)
    return float(np.ldexp(1.0, exponent))


def _append_columns(
    U: Any, s: Any, Vt: Any | None, C: Any, k: int, xp: Any, H: Any
) -> tuple[Any, Any, Any]:
    """Core of the update; with ``Vt=None`` only ``U`` and ``s`` are updated.

    Updating the left side alone is what a stream of samples needs: the basis and the
    singular values do not depend on the (ever growing) other factor.
    """
    r = U.shape[1]
    c = C.shape[1]
    UH = H(U)
    M = UH @ C
    fast = _gram_path(C, M, U.shape[0] - r, xp, H)
    if fast is not None:
        # [A, C] = [U, Qc] K blockdiag(V, I)^H with Qc = (C - U M) Rc^-1 never formed: the
        # rotated basis [U, Qc] uk is U (uk_U - M Rc^-1 uk_C) + C (Rc^-1 uk_C), two GEMMs
        # with the small factors. Against the explicit path this saves the m x c remainder,
        # its Gram matrix and a GEMM: about 40% of an update.
        Rc = fast
        uk, sk, wkh = _core_svd(s, M, Rc, k, xp)
        Y = _triangular_inverse(Rc, xp) @ uk[r:]
        U_new = xp.ascontiguousarray(U @ (uk[:r] - M @ Y))
        U_new += C @ Y
        return _finish(U_new, sk, wkh, s, Vt, c, xp)
    # Component of C inside span(U), then the remainder. One Gram-Schmidt pass leaves a
    # component along U of about eps * ||c|| in each remainder column r, that is
    # eps * ||c|| / ||r|| relative to it; a second pass ("twice is enough") is spent only
    # where the first removed more than 99% of a column, so that this stays below 100 eps.
    # C - U M without a second m x c temporary: the GEMM's output is reused in place.
    Rres = U @ M
    xp.subtract(C, Rres, out=Rres)
    c_norm2 = _column_norms2(C, xp)
    r_norm2 = _column_norms2(Rres, xp)
    if bool(xp.any(r_norm2 < 1e-4 * c_norm2)):
        M2 = UH @ Rres
        Rres = Rres - U @ M2
        M = M + M2
    # When Rres is well conditioned, Qc = Rres Rc^-1 is never formed: Rc comes from one
    # Cholesky of the c x c Gram matrix and the rotation is applied to Rres directly. The
    # orthogonality lost is about eps * cond(Rres)^2, hence the conditioning limit (else
    # CholeskyQR2/Householder).
    Rc = None
    if c <= U.shape[0] - r:
        Rc = _well_conditioned_cholesky(H(Rres) @ Rres, xp)
    if Rc is not None:
        Qc = None
    else:
        Qc, Rc = orth(Rres, xp, return_r=True)
    # Qc has fewer than c columns when r + c exceeds m; K is then rectangular.
    uk, sk, wkh = _core_svd(s, M, Rc, k, xp)
    if Qc is None:
        rot = Rres @ (_triangular_inverse(Rc, xp) @ uk[r:])
    else:
        rot = Qc @ uk[r:]
    U_new = xp.ascontiguousarray(U @ uk[:r] + rot)
    return _finish(U_new, sk, wkh, s, Vt, c, xp)


# A remainder column keeping less than this fraction of its squared norm outside span(U) is
# computed explicitly: the Gram shortcut's cancellation would cost more digits than allowed.
_GRAM_KEEP = 1e-2
# Largest ratio of the Cholesky factor's extreme diagonal entries for which the remainder's
# basis is left implicit (orthogonality lost ~ eps * cond^2).
_MAX_COND = 30.0


def _well_conditioned_cholesky(G: Any, xp: Any) -> Any | None:
    """Upper Cholesky factor of ``G`` when it exists and is well conditioned, else None."""
    R = _cholesky_upper(G, xp)
    if R is None:
        return None
    d = xp.abs(xp.diagonal(R))
    return R if float(d.min()) > float(d.max()) / _MAX_COND else None


def _gram_path(C: Any, M: Any, room: int, xp: Any, H: Any) -> Any | None:
    """``Rc`` of the remainder ``C - U M`` from Gram matrices alone, or None.

    With U orthonormal, ``(C - U M)^H (C - U M) = C^H C - M^H M``: the remainder's Cholesky
    factor comes from c x c products, without forming the remainder. The subtraction cancels
    the part of C inside span(U), losing about ``log10(||c||^2 / ||r||^2)`` digits per
    column, so it is used only when every column keeps at least ``_GRAM_KEEP`` of its energy
    outside span(U) and the factor is well conditioned.
    """
    c = C.shape[1]
    if c > room:
        return None
    G = H(C) @ C  # BLAS syrk: C^H C is recognised as a symmetric product
    c_norm2 = xp.diagonal(G).real
    G = G - H(M) @ M
    r_norm2 = xp.diagonal(G).real
    if not bool(xp.all(r_norm2 >= _GRAM_KEEP * c_norm2)):
        return None
    return _well_conditioned_cholesky(G, xp)


def _core_svd(s: Any, M: Any, Rc: Any, k: int, xp: Any) -> tuple[Any, Any, Any]:
    """Top-k SVD of the core matrix ``K = [[diag(s), M], [0, Rc]]``."""
    r, c = M.shape
    q = Rc.shape[0]
    K = xp.zeros((r + q, r + c), dtype=M.dtype)
    K[:r, :r] = xp.diag(s.astype(M.dtype))
    K[:r, r:] = M
    K[r:, r:] = Rc
    uk, sk, wkh = small_svd(K, xp)
    return uk[:, :k], sk[:k], wkh[:k]


def _finish(
    U_new: Any, sk: Any, wkh: Any, s: Any, Vt: Any | None, c: int, xp: Any
) -> tuple[Any, Any, Any]:
    """The updated right factor (when tracked), deterministic signs and the output dtypes."""
    k = U_new.shape[1]
    r = s.shape[0]
    if Vt is None:
        U_new, _ = flip_signs(U_new, xp.empty((k, 0), dtype=U_new.dtype), xp)
        return U_new, sk.astype(s.dtype, copy=False), None
    n = Vt.shape[1]
    Vt_new = xp.empty((k, n + c), dtype=U_new.dtype)
    Vt_new[:, :n] = wkh[:, :r] @ Vt
    Vt_new[:, n:] = wkh[:, r:]
    U_new, Vt_new = flip_signs(U_new, Vt_new, xp)
    return U_new, sk.astype(s.dtype, copy=False), Vt_new


def _reorthogonalize_left(U: Any, s: Any, xp: Any) -> tuple[Any, Any]:
    """Re-orthonormalise ``U`` of ``U diag(s) W^H`` when ``W`` is not tracked."""
    Qu, Ru = xp.linalg.qr(U, mode="reduced")
    u, s_new, _ = small_svd(Ru * s[None, :].astype(Ru.dtype), xp)
    U_new = xp.ascontiguousarray(Qu @ u)
    U_new, _ = flip_signs(U_new, xp.empty((U.shape[1], 0), dtype=U.dtype), xp)
    return U_new, s_new.astype(s.dtype, copy=False)
