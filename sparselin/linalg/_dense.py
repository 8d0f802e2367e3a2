"""Small building blocks shared by the SVD routines, written once against ``xp``.

Orthonormalisation is the inner step of every randomized method. Householder QR from LAPACK is
an order of magnitude slower than a GEMM on the tall-skinny blocks we produce (13 ms against
1.5 ms for 4000 x 60 on two cores), so the default is CholeskyQR2 — two Cholesky
factorisations of the small Gram matrix and two GEMMs — which is orthonormal to working
precision whenever the block's condition number is below about ``eps**-1/2``. The diagonal of
the first Cholesky factor tells when that may fail (rank-deficient or ill-conditioned blocks),
and those fall back to Householder QR, which is orthonormal whatever the rank.

Every dense factorisation here goes through NumPy's LAPACK, never SciPy's: the two wheels bundle
separate OpenBLAS libraries whose idle workers busy-wait, so a SciPy call between NumPy's
products makes the two thread pools fight for the cores (see :mod:`sparselin._threads`). The
LU normaliser, which NumPy lacks, holds SciPy's pool at one thread instead.
"""

from __future__ import annotations

import types
import warnings
from typing import Any

import numpy as np

from .._array import conj_t, cupy_or_none, scipy_namespace
from .._threads import scipy_blas_limited

__all__ = [
    "cholqr_checked",
    "flip_signs",
    "gaussian",
    "gram_double",
    "lu_normalize",
    "orth",
    "small_eigvalsh",
    "small_svd",
]


def small_svd(M: Any, xp: types.ModuleType, compute_uv: bool = True) -> Any:
    """SVD of a small matrix (a few hundred rows at most), computed on the host.

    The randomized methods end every step with the SVD of an l x l matrix. On a GPU such a
    call is bound by launch latency (cuSOLVER's gesvd takes milliseconds on a 100 x 100
    matrix, longer than a pass over a gigabyte of data), so the matrix travels to the host,
    where LAPACK needs microseconds, and the factors travel back.
    """
    if xp is np:
        return np.linalg.svd(M, full_matrices=False, compute_uv=compute_uv)
    out = np.linalg.svd(M.get(), full_matrices=False, compute_uv=compute_uv)
    if not compute_uv:
        return xp.asarray(out)
    return tuple(xp.asarray(x) for x in out)


def small_eigvalsh(G: Any, xp: types.ModuleType) -> Any:
    """Eigenvalues of a small Hermitian matrix, on the host (see :func:`small_svd`)."""
    if xp is np:
        return np.linalg.eigvalsh(G)
    return xp.asarray(np.linalg.eigvalsh(G.get()))


def _cholesky_upper(G: Any, xp: types.ModuleType) -> Any | None:
    """Upper Cholesky factor of a small Hermitian positive definite ``G``, or None if it fails.

    ``G`` is a Gram matrix of a few hundred columns at most, so on a GPU it is factorised on
    the host: that is faster than cuSOLVER at this size, and failure is reported reliably
    (cuSOLVER's potrf leaves a half-factorised matrix behind unless errors are switched on).
    """
    host = G if xp is np else G.get()
    try:
        L = np.linalg.cholesky(host)
    except np.linalg.LinAlgError:
        return None
    d = np.diagonal(L).real
    if not bool(np.isfinite(L).all()) or not bool((d > 0).all()):
        return None
    R = conj_t(L)
    return R if xp is np else xp.asarray(R)


def _triangular_inverse(R: Any, xp: types.ModuleType) -> Any:
    """Inverse of a small upper-triangular matrix (on the host for GPU data, see above).

    ``numpy.linalg.inv`` rather than SciPy's triangular solve: an LU of a triangular matrix
    pivots nowhere (every entry below the diagonal is zero), so it is back substitution on
    the identity and the inverse comes out exactly upper triangular, while the call stays in
    NumPy's BLAS (3000 x 2000 float64, k=40, two cores at default threads: ``truncated_svd``
    52 ms against 192 ms with SciPy's solve between NumPy's products, as measured in issue
    15; 2.6-3.6x by the best of seven alternating runs on a loaded machine). NumPy works in
    double precision for float32 input, which costs nothing at this size; the result keeps
    ``R``'s dtype.
    """
    host = R if xp is np else R.get()
    inv = np.linalg.inv(host)
    return inv if xp is np else xp.asarray(inv)


# Single-precision blocks up to this condition number are made orthonormal by one Cholesky QR
# whose Gram matrix is accumulated in double precision: Q = Y R^-1 then carries only the
# rounding of that product, eps * cond(Y), and came out more orthonormal than CholeskyQR2 in
# single precision (1e-7 against 4e-7 on 40000 x 110 blocks of cond 3 to 30, 4e-7 against
# 5e-7 at cond 100) for about half its cost (one Gram matrix and one product instead of two
# of each).
_DOUBLE_GRAM_MAX_COND = 100.0
_SINGLE = frozenset(np.dtype(t) for t in (np.float32, np.complex64))


def gram_double(Z: Any, xp: types.ModuleType, rows: int = 8192) -> Any:
    """``Z^H Z`` accumulated in double precision, a block of rows at a time (no full copy)."""
    dtype = np.promote_types(Z.dtype, np.float64)
    d = Z.shape[1]
    H = xp.zeros((d, d), dtype=dtype)
    for start in range(0, Z.shape[0], rows):
        B = Z[start : start + rows].astype(dtype)
        H += conj_t(B) @ B
    return H


def orth(Y: Any, xp: types.ModuleType, *, return_r: bool = False, passes: int = 2) -> Any:
    """Orthonormal basis ``Q`` of the columns of ``Y`` (same shape), optionally with ``R``.

    ``Y = Q @ R`` with ``R`` upper triangular (up to the Householder fallback's own ``R``).
    ``passes=1`` stops after one Cholesky QR: ``Q`` is then orthonormal only up to
    ``eps * cond(Y)**2``, enough for intermediate power iterations. With ``passes=2`` a
    well-conditioned single-precision block takes one Cholesky QR on a double-precision
    Gram matrix instead (see ``_DOUBLE_GRAM_MAX_COND``).
    """
    eps = np.finfo(Y.dtype).eps
    if passes == 2 and Y.dtype in _SINGLE:
        R = _cholesky_upper(gram_double(Y, xp), xp)
        if R is not None:
            s = np.linalg.svd(R if xp is np else R.get(), compute_uv=False)
            if s[-1] > 0 and s[0] <= _DOUBLE_GRAM_MAX_COND * s[-1]:
                Q = Y @ _triangular_inverse(R, xp).astype(Y.dtype)
                return (Q, R.astype(Y.dtype)) if return_r else Q
    G = conj_t(Y) @ Y
    R1 = _cholesky_upper(G, xp)
    if R1 is not None:
        d = xp.abs(xp.diagonal(R1))
        # diag(R) ratio bounds cond(Y) from below; CholeskyQR2 needs cond(Y) << eps**-0.5.
        if float(d.min()) > 100.0 * np.sqrt(eps) * float(d.max()):
            Q1 = Y @ _triangular_inverse(R1, xp)
            if passes == 1:
                return (Q1, R1) if return_r else Q1
            R2 = _cholesky_upper(conj_t(Q1) @ Q1, xp)
            if R2 is not None:
                Q = Q1 @ _triangular_inverse(R2, xp)
                return (Q, R2 @ R1) if return_r else Q
    # Householder QR from the array's own library: for NumPy input that is NumPy's LAPACK,
    # not SciPy's (whose pool would fight NumPy's, see the module docstring).
    Q, R = xp.linalg.qr(Y, mode="reduced")
    return (Q, R) if return_r else Q


def cholqr_checked(Y: Any, xp: types.ModuleType, max_cond: float) -> tuple[Any, Any] | None:
    """One Cholesky QR ``Y = Q R`` if ``cond(Y) <= max_cond``, else None.

    The condition number is read from the singular values of the small factor ``R`` (on
    the host), not bounded from its diagonal as :func:`orth` does: the caller needs only a
    well-conditioned ``Q`` (orthonormal to about ``eps * cond(Y)**2``) and decides what to
    do with a block beyond ``max_cond``.
    """
    R = _cholesky_upper(conj_t(Y) @ Y, xp)
    if R is None:
        return None
    s = np.linalg.svd(R if xp is np else R.get(), compute_uv=False)
    if not (s[-1] > 0 and s[0] <= max_cond * s[-1]):
        return None
    return Y @ _triangular_inverse(R, xp), R


def lu_normalize(Y: Any, xp: types.ModuleType) -> Any:
    """The permuted unit-lower factor of ``Y = P L U`` (scikit-learn's cheap normaliser).

    NumPy has no LU, so SciPy's runs, with SciPy's BLAS pool held at one thread for the
    call (see :mod:`sparselin._threads`): at default threads that halved the time of
    ``truncated_svd(A, 40, power_iteration_normalizer="LU")`` on 3000 x 2000 float64. An
    unblocked Numba LU was measured instead and lost, 2-5x slower than LAPACK's blocked
    ``getrf`` on one thread (3000 x 50 to 20000 x 110).
    """
    sc = scipy_namespace(xp)
    if xp is not np:
        return sc.linalg.lu(Y, permute_l=True)[0]
    with scipy_blas_limited():
        return sc.linalg.lu(Y, permute_l=True)[0]


def gaussian(
    rng: np.random.Generator | np.random.RandomState,
    shape: tuple[int, int],
    dtype: np.dtype,
    xp: types.ModuleType,
) -> Any:
    """A standard Gaussian test matrix drawn on the host, placed on ``xp``'s device.

    Drawing on the host makes the sketch — and so the result — identical on CPU and GPU for
    the same seed; the matrix is small (n x l), so the transfer costs little.
    """
    dtype = np.dtype(dtype)
    real = np.finfo(dtype).dtype
    if isinstance(rng, np.random.Generator):
        # Draw directly in single precision when that is the target (half the work).
        G = rng.standard_normal(shape, dtype=real)
        if dtype.kind == "c":
            G = (G + 1j * rng.standard_normal(shape, dtype=real)) * real.type(np.sqrt(0.5))
    else:
        G = rng.standard_normal(shape)
        if dtype.kind == "c":
            G = (G + 1j * rng.standard_normal(shape)) * np.sqrt(0.5)
    G = G.astype(dtype, copy=False)
    return G if xp is np else xp.asarray(G)


_FLIP_EXPRS = ("svd_flip_kernel<float>", "svd_flip_kernel<double>")
# None while the kernel is usable; the reason once it failed to compile (then never retried).
_KERNEL_STATE: dict[str, str | None] = {"flip": None}


def flip_signs(U: Any, Vt: Any, xp: types.ModuleType) -> tuple[Any, Any]:
    """Make the largest-magnitude entry of each column of ``U`` real and positive.

    The column's counterpart row of ``Vt`` gets the conjugate phase, so ``U @ diag(s) @ Vt``
    is unchanged. Ties go to the first index, as ``argmax`` does. ``U`` and ``Vt`` must be
    freshly allocated (they are modified in place); the result is returned for convenience.
    """
    k = U.shape[1]
    if k == 0:
        return U, Vt
    cp = cupy_or_none()
    if (
        _KERNEL_STATE["flip"] is None
        and cp is not None
        and xp is cp
        and U.dtype in (np.float32, np.float64)
        and U.dtype == Vt.dtype
        and U.flags.c_contiguous
        and Vt.flags.c_contiguous
    ):
        try:
            from .._cuda import get_function

            expr = _FLIP_EXPRS[0] if U.dtype == np.float32 else _FLIP_EXPRS[1]
            kernel = get_function("svd_flip.cu", expr, _FLIP_EXPRS)
        except Exception as exc:  # NVRTC missing or failing: the array code below serves
            _KERNEL_STATE["flip"] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"the svd_flip CUDA kernel could not be compiled ({_KERNEL_STATE['flip']}); "
                "using CuPy array code instead",
                RuntimeWarning,
                stacklevel=3,
            )
        else:
            threads = 256
            shared = threads * (U.dtype.itemsize + 8)
            m, n = U.shape[0], Vt.shape[1]
            kernel(
                (k,),
                (threads,),
                (U, Vt, np.int64(m), np.int64(n), np.int64(k)),
                shared_mem=shared,
            )
            return U, Vt
    cols = xp.arange(k)
    if U.dtype.kind == "c":
        idx = xp.argmax(xp.abs(U), axis=0)
    elif xp is np and U.flags.c_contiguous:
        from ._kernels import abs_argmax_columns

        idx = abs_argmax_columns(U)
    else:
        # The first largest |entry| is the first maximum or the first minimum, whichever is
        # larger in magnitude (the earlier one on a tie): two reductions and no temporary of
        # U's size, whose fresh pages cost more than the reductions themselves.
        i_max = xp.argmax(U, axis=0)
        i_min = xp.argmin(U, axis=0)
        v_max = U[i_max, cols]
        v_min = -U[i_min, cols]
        idx = xp.where((v_max > v_min) | ((v_max == v_min) & (i_max < i_min)), i_max, i_min)
    pivots = U[idx, cols]
    if U.dtype.kind == "c":
        mag = xp.abs(pivots)
        phase = xp.where(mag > 0, pivots / xp.where(mag > 0, mag, 1), 1)
        U *= phase.conj()[None, :]
        Vt *= phase[:, None]
    else:
        sign = xp.where(pivots < 0, -1, 1).astype(U.dtype)
        U *= sign[None, :]
        Vt *= sign[:, None]
    return U, Vt
