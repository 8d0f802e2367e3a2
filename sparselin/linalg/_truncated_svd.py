"""Truncated SVD: the public function, its one validator, and the private core.

``truncated_svd`` validates everything once (``_iv``, as SciPy's ``svds`` does) and calls
``_truncated_svd_core``, which trusts its arguments: estimators and other families (robust
PCA, the concatenated SVD) call the core directly in their inner loops.
"""

from __future__ import annotations

import contextlib
import math
import types
import warnings
from typing import Any, Literal, NamedTuple

import numpy as np

from .._array import is_dask_array, namespace
from .._threads import blas_limited
from .._validation import (
    check_int,
    check_matrix,
    check_random_state,
    check_real,
    squared_norm,
)
from ._dense import flip_signs, gaussian
from ._fixed_accuracy import fixed_accuracy
from ._iterations import ENERGY_RESOLUTION, TOL_FLOOR, ZERO_CUTOFF, fixed_rank, lanczos
from ._operator import (
    Operator,
    explicit_residual2,
    norm_and_sketch_copy,
    safe_scale,
    scale_halves,
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
    compute: bool = True,
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
    compute : bool, default=True
        Dask input only: ``True`` persists ``U`` (its chunks held by the scheduler),
        ``False`` returns it lazy (built from the sketches kept during the iteration; A is
        not read again). Ignored for other input.

    Returns
    -------
    U : array of shape (m, r)
        Orthonormal left singular vectors, on A's device and in A's precision; a dask array
        with A's row chunks for dask input.
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

    A ``dask`` array (NumPy or CuPy chunks, chunked along its rows or along its columns, not
    both) runs on dask's own scheduler, never gathered into one process: fixed rank or
    fixed accuracy, ``method="randomized"`` only, ``sketch_dtype`` as for in-memory input
    (the single-precision copy is made chunk by chunk as A is read, never stored). Its
    result equals the in-memory one for the same ``random_state`` up to rounding
    (``n_iter="auto"`` applies the same stopping rule, ``tol`` the same growth of the basis
    and the same error bookkeeping). ``U`` is a dask array with A's row chunks, ``s`` and
    ``Vt`` are in memory.

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
    if is_dask_array(A):
        from ._dask import truncated_svd_dask

        return truncated_svd_dask(
            A,
            k,
            tol=tol,
            n_oversamples=n_oversamples,
            n_iter=n_iter,
            method=method,
            random_state=random_state,
            return_error=return_error,
            power_iteration_normalizer=power_iteration_normalizer,
            sketch_dtype=sketch_dtype,
            compute=compute,
        )
    p = _iv(
        A,
        k,
        tol,
        n_oversamples,
        n_iter,
        method,
        random_state,
        return_error,
        power_iteration_normalizer,
        sketch_dtype,
        solver_tol,
    )
    U, s, Vt, rel = _truncated_svd_core(
        p.A,
        p.k,
        tol=p.tol,
        n_oversamples=p.n_oversamples,
        n_iter=p.n_iter,
        method=p.method,
        rng=p.rng,
        normalizer=p.normalizer,
        sketch_dtype=p.sketch_dtype,
        solver_tol=p.solver_tol,
        kind=p.kind,
        norm2=p.norm2,
        low_copy=p.low_copy,
        want_error=p.return_error,
        stacklevel=3,
    )
    if return_error:
        return U, s, Vt, rel
    return U, s, Vt


class _Checked(NamedTuple):
    """The arguments of :func:`truncated_svd` once validated (see :func:`_iv`)."""

    A: Any
    kind: str
    norm2: float | None
    low_copy: Any
    k: int | None
    tol: float | None
    n_oversamples: int
    n_iter: int | None
    method: str
    rng: Any
    return_error: bool
    normalizer: str
    sketch_dtype: Any
    solver_tol: float


def _iv(
    A: Any,
    k: Any,
    tol: Any,
    n_oversamples: Any,
    n_iter: Any,
    method: Any,
    random_state: Any,
    return_error: Any,
    power_iteration_normalizer: Any,
    sketch_dtype: Any,
    solver_tol: Any,
) -> _Checked:
    """Validate every argument of :func:`truncated_svd` (the one place that does)."""
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
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if (
        not isinstance(power_iteration_normalizer, str)
        or power_iteration_normalizer not in _NORMALIZERS
    ):
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
    # Only the option is checked here; the copy itself is made (or not) by the core.
    sketch_operator(Operator(A, kind, namespace(A)), sketch_dtype, check_only=True)
    return _Checked(
        A,
        kind,
        norm2,
        low_copy,
        k,
        tol,
        n_oversamples,
        iters,
        method,
        rng,
        bool(return_error),
        power_iteration_normalizer,
        sketch_dtype,
        solver_tol,
    )


# Widest block (k + n_oversamples) of a sparse fixed-rank run whose BLAS calls are held at
# one thread (see _truncated_svd_core); measured at 110 columns.
_SPARSE_LIMITED_WIDTH = 128


def _truncated_svd_core(
    A: Any,
    k: int | None,
    *,
    tol: float | None = None,
    n_oversamples: int = 10,
    n_iter: int | None = None,
    method: str = "randomized",
    rng: Any,
    normalizer: str = "auto",
    sketch_dtype: Any = "auto",
    solver_tol: float = 0.0,
    kind: str,
    norm2: float | None = None,
    low_copy: Any = None,
    want_error: bool = False,
    stacklevel: int = 2,
) -> tuple[Any, Any, Any, float]:
    """Truncated SVD of an already validated ``A``; returns ``U, s, Vt, rel``.

    No argument is checked. ``A`` is what :func:`sparselin._validation.check_matrix`
    returns (a float/complex dense array, a canonical CSR/CSC matrix, or a checked
    LinearOperator) and ``kind`` its kind; ``k``/``tol`` as in :func:`truncated_svd` (at
    least one given, ``k <= min(m, n)``); ``n_iter=None`` means "auto"; ``rng`` a NumPy
    Generator or RandomState. ``norm2`` is ``||A||_F^2`` when the caller has it (computed
    here otherwise, except for an operator); ``low_copy`` a single-precision copy of a dense
    ``A`` made while computing it. ``rel`` is the relative Frobenius error, ``nan`` where it
    is unknown (fixed rank on an operator), measured on the entries of A when ``want_error``
    and the energy identity cannot resolve it. ``stacklevel`` places the warnings at the
    public caller.
    """
    xp = namespace(A)  # a cupyx LinearOperator counts as CuPy
    if norm2 is None and kind == "dense":
        norm2 = squared_norm(A)
    elif norm2 is None and kind == "sparse":
        norm2 = squared_norm(A.data) if A.data.size else 0.0
    if kind == "operator":
        scale = _operator_scale(A, xp)
    else:
        scale, norm2 = safe_scale(A, kind, xp, norm2)
    op = Operator(A, kind, xp, scale)
    op.low_precision_copy = low_copy
    real_dtype = np.finfo(op.dtype).dtype
    eps = float(np.finfo(op.dtype).eps)

    if tol is not None:
        floor = TOL_FLOOR * eps
        if tol < floor:
            warnings.warn(
                f"tol={tol:g} is below what {op.dtype} factors can represent (about "
                f"{floor:.1g} relative error); the result is as accurate as {op.dtype} allows",
                UserWarning,
                stacklevel=stacklevel,
            )
        U, s, Vt, rel, met = fixed_accuracy(op, tol, k, n_iter, rng, norm2)
        if not met and (k is not None or tol >= floor):
            warnings.warn(
                f"tol={tol} cannot be met with rank <= {k}; returning rank {s.shape[0]} with "
                f"relative error {rel:.3g}",
                UserWarning,
                stacklevel=stacklevel,
            )
        # For an operator, rel is fixed_accuracy's estimate from Gaussian probes.
        err2 = None if norm2 is None else rel * rel * norm2
    else:
        assert k is not None
        result = lanczos(op, k, rng, solver_tol) if method == "lanczos" else None
        if result is not None:
            U, s, Vt = result
        else:
            # Sparse A on the CPU: its products run as compiled chunks on sparselin's pool,
            # and between them the orthonormalisations of the thin blocks are short BLAS
            # calls, each of which woke OpenBLAS's pool at the default threads; its worker
            # then busy-waited (~0.1 s) against the next sparse product. TF-IDF 40000 x 30000,
            # k = 100, float32, 2 cores, TruncatedSVD.fit: 578 ms (median 620) against
            # 511 ms (542) with BLAS at one thread. Wider blocks keep the threaded BLAS.
            thin = kind == "sparse" and xp is np and k + n_oversamples <= _SPARSE_LIMITED_WIDTH
            with blas_limited() if thin else contextlib.nullcontext():
                U, s, Vt = fixed_rank(
                    op,
                    k,
                    n_oversamples,
                    n_iter,
                    "block_krylov" if method == "lanczos" else method,
                    rng,
                    norm2,
                    normalizer,
                    sketch_dtype,
                )
        err2 = None
        if norm2 is not None:
            err2 = max(norm2 - float(xp.sum(s.astype(np.float64) ** 2)), 0.0)
    if want_error and err2 is not None and err2 <= ENERGY_RESOLUTION * eps * norm2:
        # Below the energy identity's resolution: measure on the entries instead.
        err2 = explicit_residual2(op, U * s[None, :].astype(U.dtype), Vt)
    if err2 is not None:
        rel = math.sqrt(err2 / norm2) if norm2 else 0.0
    elif tol is None:
        rel = float("nan")

    s = _unscale(s.astype(real_dtype, copy=False), scale, xp, stacklevel + 1)
    if s.shape[0] and math.isfinite(float(s[0])):
        # In Python floats: float32's s[0] * 10 overflows for matrices near 3e37, and an
        # infinite cutoff zeroed every singular value.
        cutoff = float(s[0]) * (ZERO_CUTOFF * eps)
        s = xp.where(s > cutoff, s, 0).astype(real_dtype)
    U = xp.ascontiguousarray(U.astype(op.dtype, copy=False))
    Vt = xp.ascontiguousarray(Vt.astype(op.dtype, copy=False))
    U, Vt = flip_signs(U, Vt, xp)
    return U, s, Vt, rel


def _unscale(s: Any, scale: float, xp: types.ModuleType, stacklevel: int = 2) -> Any:
    """Singular values of ``scale * A`` back in A's units (two exact steps, see scale_halves).

    A value beyond the dtype's range (a float32 matrix with entries near 3e38 can have
    larger singular values) becomes inf, with a warning rather than silently.
    """
    if scale == 1.0:
        return s
    pre, post = scale_halves(scale)
    with np.errstate(over="ignore"):
        s = s / s.dtype.type(pre) / s.dtype.type(post)
    if s.shape[0] and not bool(xp.isfinite(s).all()):
        warnings.warn(
            f"singular values of A exceed the range of {s.dtype}; they are returned as inf",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
    return s


# Operator entries this far (in powers of two) inside the dtype's exponent range keep the
# Gram matrices of the sketches, which hold squares of A's scale times m * n, in range.
_OPERATOR_MARGIN = 24


def _operator_scale(A: Any, xp: types.ModuleType) -> float:
    """A power of two bringing a LinearOperator's scale near 1 when its squares are at risk.

    An operator's entries are unknown, so one product with a fixed Gaussian vector reads
    their magnitude. Energies of an operator near 1e-170 underflowed to zero otherwise and
    fixed accuracy reported an error of 0.0 where it was 0.92.
    """
    m, n = A.shape
    dtype = np.dtype(A.dtype)
    info = np.finfo(dtype)
    x = gaussian(np.random.default_rng(0), (n, 1), dtype, xp)
    y = A.matvec(x[:, 0])  # a vector, not a block: no extra pass in the pass counts
    amax = max(
        float(xp.abs(y.real).max()),
        float(xp.abs(y.imag).max()) if dtype.kind == "c" else 0.0,
    )
    if amax == 0.0:
        return 1.0
    e = int(np.frexp(amax)[1])
    size = int(math.log2(m * n + 1)) // 2
    low = info.minexp // 2 + _OPERATOR_MARGIN + size
    high = info.maxexp // 2 - _OPERATOR_MARGIN - size
    if low <= e <= high:
        return 1.0
    return float(np.ldexp(1.0, max(-e, -1022)))
