"""Truncated SVD: the public function, its validation, and the dispatch to the engines."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np

from .._array import namespace
from .._validation import (
    check_int,
    check_matrix,
    check_random_state,
    check_real,
)
from ._dense import flip_signs
from ._fixed_accuracy import fixed_accuracy
from ._iterations import fixed_rank, lanczos
from ._operator import (
    Operator,
    explicit_residual2,
    norm_and_sketch_copy,
    safe_scale,
    sketch_operator,
)

__all__ = ["truncated_svd"]

_METHODS = ("randomized", "block_krylov", "lanczos")
_NORMALIZERS = ("auto", "QR", "LU", "none")


def truncated_svd(
    A: Any,
    k: int | None = None,
    *,
    tol: float | None = None,
    n_oversamples: int = 10,
    n_iter: int | Literal["auto"] = "auto",
    method: Literal["randomized", "block_krylov", "lanczos"] = "randomized",
    random_state: int | np.random.Generator | None = None,
    return_error: bool = False,
    power_iteration_normalizer: Literal["auto", "QR", "LU", "none"] = "auto",
    sketch_dtype: Any = "auto",
    solver_tol: float = 0.0,
) -> tuple[Any, ...]:
    """Truncated singular value decomposition ``A ≈ U @ diag(s) @ Vt``.

    Fixed rank (``k``), fixed accuracy (``tol``) or both, on NumPy or CuPy data, dense or
    sparse, or any ``LinearOperator``.

    Parameters
    ----------
    A : array, sparse matrix or LinearOperator of shape (m, n)
        NumPy or CuPy array, SciPy or cupyx sparse matrix, or a
        :class:`scipy.sparse.linalg.LinearOperator` (needs ``matmat`` and ``rmatmat``).
        float32, float64, complex64 or complex128; integers are computed in float64.
        ``A`` is never modified.
    k : int, optional
        Rank, ``1 <= k <= min(m, n)``. With ``tol`` it is an upper bound on the rank.
    tol : float in (0, 1), optional
        Fixed accuracy: return the smallest rank ``r`` whose relative Frobenius error
        ``||A - U diag(s) Vt||_F / ||A||_F`` is at most ``tol``. The basis is grown block by
        block, so the rank need not be known beforehand. With ``k`` also given, a rank up to
        ``k`` that meets ``tol`` is returned if one exists; otherwise rank ``k`` with a
        ``UserWarning`` saying so. Where ``tol`` is too small for the energy identity the
        method relies on (``tol**2`` near ``1e3 * eps`` of the dtype: about 0.01 in float32,
        1e-6 in float64), the error is verified on the entries of A before tol is declared
        met; a ``tol`` below ``30 * eps`` cannot be represented by factors of A's precision
        and draws a warning.
    n_oversamples : int, default=10
        Extra sketch columns beyond ``k`` (fixed-rank methods "randomized" and
        "block_krylov").
    n_iter : int or "auto", default="auto"
        Power iterations (``"randomized"``) or Krylov depth (``"block_krylov"``); an integer runs
        exactly that many (``2 n_iter + 2`` passes over A for "randomized"). ``"auto"`` measures
        after every pass over A the error of the approximation that pass gives (each pass yields
        one, at no extra cost) and, from the fifth pass on, stops once the predicted further
        decrease of the squared error is below 1.5% of it, i.e. err/opt within about 0.75% of what
        more iterations would reach; capped by scikit-learn's schedule (7 iterations when ``k < 0.1
        min(m, n)``, else 4), which is also used as is for a LinearOperator, whose norm is unknown.
        The rule targets the Frobenius error: trailing singular values may still carry relative
        errors around 1e-2 on slowly decaying spectra; pass an integer (or use "block_krylov" or
        "lanczos") when individual values matter. In fixed-accuracy mode ``n_iter`` is the number
        of power iterations per block (``"auto"``: 1).
    method : {"randomized", "block_krylov", "lanczos"}, default="randomized"
        ``"randomized"``: randomized subspace iteration with re-orthonormalisation after every
        product. ``"block_krylov"``: randomized block Krylov iteration, which keeps every
        block and does better on slowly decaying spectra. ``"lanczos"``: SciPy's/cupyx's
        ``svds``, best for very sparse input and tiny ``k``; falls back to block Krylov when
        ``svds`` fails or ``k = min(m, n)``.
    random_state : None, int, numpy.random.Generator or RandomState
        Seed of the Gaussian test matrices. The same seed gives the same result bit for bit
        on the same machine; the test matrices are drawn on the host, so CPU and GPU sketch
        with the same numbers.
    return_error : bool, default=False
        Also return the relative Frobenius error ``||A - U diag(s) Vt||_F / ||A||_F``, from
        ``||A||_F^2 - sum(s^2)`` at no cost, or, where that identity is too coarse (errors
        below about ``30 sqrt(eps)``: 1e-2 in float32), from the entries of A (one more GEMM
        of width k); for a LinearOperator an estimate from Gaussian probes, and ``nan`` in
        fixed-rank mode.
    power_iteration_normalizer : {"auto", "QR", "LU", "none"}, default="auto"
        How blocks are normalised between power iterations ("randomized" only); "auto" and
        "QR" use CholeskyQR2 with a Householder fallback, "LU" scikit-learn's cheaper
        partial-pivoting LU, "none" nothing (unstable; for comparison only).
    sketch_dtype : "auto" or dtype, default="auto"
        Precision of the power iterations. ``"auto"``: for dense float64/complex128 input of
        at least 2**20 entries, the iterations run on a single-precision copy of ``A`` (half
        of A's memory, twice the speed), and the final projection runs in full precision, so
        the singular values and vectors are float64-accurate Rayleigh-Ritz values of the
        found subspace. When the error is too small for single precision to find the
        subspace (relative error below about 1e-4) the subspace is refined in full precision.
        Pass ``A.dtype`` to run everything in full precision.
    solver_tol : float, default=0.0
        Convergence tolerance passed to ``svds`` (``method="lanczos"``); 0 means machine
        precision.

    Returns
    -------
    U : array of shape (m, r)
        Orthonormal left singular vectors, on A's device and in A's precision.
    s : array of shape (r,)
        Singular values, descending, real (float32 for float32/complex64 input). Values below
        ``10 * eps * s[0]`` are set to exactly zero (numerically rank-deficient input).
    Vt : array of shape (r, n)
        Orthonormal right singular vectors (rows).
    error : float
        Only with ``return_error=True``.

    Raises
    ------
    ValueError
        For NaN/inf in ``A``, an empty or non-2-D ``A``, ``k`` outside ``[1, min(m, n)]``,
        ``tol`` outside (0, 1), neither ``k`` nor ``tol``, or unknown option values.
    TypeError
        For unsupported types or dtypes.

    See Also
    --------
    sparselin.TruncatedSVD : the scikit-learn estimator over this function.
    sparselin.svd_update : update a thin SVD when columns or rows are appended.

    Notes
    -----
    Signs are deterministic: the largest-magnitude entry of each column of ``U`` is real and
    positive (for ``A.T`` the same rule applies to ``A.T``'s own left vectors).

    The randomized method computes ``Q = orth(A (A^H A)^q Ω)`` with every product
    re-orthonormalised, then the SVD of ``Q^H A`` [1]_; every pass over A also gives a
    complete approximation (``A P P^H`` after ``Y = A P``, ``Q Q^H A`` after ``Z = A^H Q``),
    which is what lets the adaptive rule stop after any pass. Block Krylov keeps all blocks
    ``[AΩ, (AA^H)AΩ, ...]`` [2]_ and reuses the products ``A^H Q_i`` for the final
    projection. Fixed accuracy follows randQB_EI [3]_.

    References
    ----------
    .. [1] N. Halko, P.-G. Martinsson, J. A. Tropp, "Finding structure with randomness",
       SIAM Review 53(2), 2011.
    .. [2] C. Musco, C. Musco, "Randomized block Krylov methods for stronger and faster
       approximate singular value decomposition", NeurIPS 2015.
    .. [3] W. Yu, Y. Gu, Y. Li, "Efficient randomized algorithms for the fixed-precision
       low-rank matrix approximation", SIAM J. Matrix Anal. Appl. 39(3), 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin import truncated_svd
    >>> from sparselin.datasets import make_low_rank_matrix
    >>> A = make_low_rank_matrix(300, 200, decay=0.8, random_state=0)
    >>> U, s, Vt = truncated_svd(A, 10, random_state=0)
    >>> U.shape, s.shape, Vt.shape
    ((300, 10), (10,), (10, 200))
    >>> bool(np.allclose(s, np.linalg.svd(A, compute_uv=False)[:10]))
    True
    >>> U, s, Vt, err = truncated_svd(A, tol=1e-3, random_state=0, return_error=True)
    >>> len(s), bool(err <= 1e-3)
    (31, True)
    """
    # The default fixed-rank method sketches large float64 input in float32: the copy for
    # that is made in the same pass over A as the norm and the NaN check.
    fused = isinstance(sketch_dtype, str) and sketch_dtype == "auto"
    fused = fused and method == "randomized" and tol is None
    A, kind, norm2 = check_matrix(A, "A", dense_norm=not fused)
    low_copy = None
    if kind == "dense" and norm2 is None:
        norm2, low_copy = norm_and_sketch_copy(A, "A")
    m, n = A.shape
    r_max = min(m, n)
    if k is None and tol is None:
        raise ValueError("give the rank k, the relative error tol, or both")
    if k is not None:
        k = check_int(k, "k", low=1, high=r_max)
    if tol is not None:
        tol = check_real(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)
    n_oversamples = check_int(n_oversamples, "n_oversamples", low=0)
    if isinstance(n_iter, str):
        if n_iter != "auto":
            raise ValueError(f"n_iter must be a non-negative int or 'auto', got {n_iter!r}")
        iters: int | None = None
    else:
        iters = check_int(n_iter, "n_iter", low=0)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if power_iteration_normalizer not in _NORMALIZERS:
        raise ValueError(
            f"power_iteration_normalizer must be one of {_NORMALIZERS}, "
            f"got {power_iteration_normalizer!r}"
        )
    solver_tol = check_real(solver_tol, "solver_tol", low=0.0)
    if not isinstance(return_error, (bool, np.bool_)):
        raise TypeError(f"return_error must be a bool, got {type(return_error).__name__}")
    if tol is not None and method == "lanczos":
        raise ValueError("tol (fixed accuracy) needs method 'randomized' or 'block_krylov'")
    rng = check_random_state(random_state)

    xp = namespace(A)  # a cupyx LinearOperator counts as CuPy
    scale, norm2 = safe_scale(A, kind, xp, norm2)
    op = Operator(A, kind, xp, scale)
    op.low_precision_copy = low_copy
    sketch_operator(op, sketch_dtype, check_only=True)
    real_dtype = np.finfo(op.dtype).dtype

    if tol is not None:
        floor = 30.0 * float(np.finfo(op.dtype).eps)
        if tol < floor:
            warnings.warn(
                f"tol={tol:g} is below what {op.dtype} factors can represent (about "
                f"{floor:.1g} relative error); the result is as accurate as {op.dtype} allows",
                UserWarning,
                stacklevel=2,
            )
        U, s, Vt, rel, met = fixed_accuracy(op, tol, k, iters, rng, norm2)
        if not met and (k is not None or tol >= floor):
            warnings.warn(
                f"tol={tol} cannot be met with rank <= {k}; returning rank {s.shape[0]} with "
                f"relative error {rel:.3g}",
                UserWarning,
                stacklevel=2,
            )
    else:
        assert k is not None
        result = None
        if method == "lanczos":
            result = lanczos(op, k, rng, solver_tol)
        if result is not None:
            U, s, Vt = result
        else:
            U, s, Vt = fixed_rank(
                op,
                k,
                n_oversamples,
                iters,
                "block_krylov" if method == "lanczos" else method,
                rng,
                norm2,
                power_iteration_normalizer,
                sketch_dtype,
            )
        rel = float("nan")
        if norm2 is not None:
            err2 = max(norm2 - float(xp.sum(s.astype(np.float64) ** 2)), 0.0)
            if return_error and err2 <= 1e3 * float(np.finfo(op.dtype).eps) * norm2:
                # Below the energy identity's resolution: measure on the entries instead.
                err2 = explicit_residual2(op, U * s[None, :].astype(U.dtype), Vt)
            rel = math.sqrt(err2 / norm2) if norm2 > 0 else 0.0

    if scale != 1.0:
        s = s / real_dtype.type(scale)
    s = s.astype(real_dtype, copy=False)
    if s.shape[0]:
        # Missing directions of a rank-deficient matrix come out at about eps * s[0] / 2
        # (measured on all dtypes and methods); a factor of 10 above that is zero, while
        # genuine small values, which single precision resolves down to ~eps * s[0], stay.
        cutoff = float(s[0]) * 10.0 * np.finfo(real_dtype).eps
        s = xp.where(s > cutoff, s, 0).astype(real_dtype)
    U = xp.ascontiguousarray(U.astype(op.dtype, copy=False))
    Vt = xp.ascontiguousarray(Vt.astype(op.dtype, copy=False))
    U, Vt = flip_signs(U, Vt, xp)
    if return_error:
        return U, s, Vt, rel
    return U, s, Vt
