"""Greedy recovery: orthogonal matching pursuit and the loss-based weighted OMP family.

Both functions share one loop, select -> refit, on column-normalised data:

* :func:`omp` selects the atom most correlated with the residual (divided by its weight)
  and refits by least squares through an incremental Cholesky factor (``_kernels``), for one
  signal or a batch of signals at once;
* :func:`loss_omp` selects the atom whose one-coordinate move decreases the regularised loss
  the most (``_losses`` gives that decrease for each loss, ``_penalties`` the 1-D penalised
  minimum) and refits the loss restricted to the support.

Reference: S. Mohammad-Taheri and S. Brugiapaglia, "The greedy side of the LASSO: new
algorithms for weighted sparse recovery via loss function-based orthogonal matching
pursuit", arXiv:2303.00844.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numba
import numpy as np

from .._array import is_dask_array
from .._pool import run_chunks, run_ranges
from .._threads import blas_limited
from .._validation import check_int, check_real
from . import _kernels, _omp_gpu
from ._checks import check_problem, check_weights
from ._losses import LOSSES, Loss
from ._penalties import PENALTIES, Penalty

# Batches up to this many signals run their residual steps with BLAS at one thread.
_FEW_SIGNALS = 8

__all__ = ["LossOMPResult", "loss_omp", "omp"]

PREMATURE_MESSAGE = (
    "Orthogonal matching pursuit ended prematurely due to linear dependence in the "
    "dictionary. The requested precision might not have been met."
)


def _column_norms(A: np.ndarray) -> np.ndarray:
    """Column norms of A, with 1 for zero columns (they are never selected), computed
    without overflow or underflow at any scale (``_omp_gpu.scaled_column_norms``)."""
    return _omp_gpu.scaled_column_norms(A, np)


def _use_gram(m: int, N: int, n_signals: int, kmax: int, itemsize: int) -> bool:
    """Whether the Gram path is cheaper than the residual path for this batch.

    Flop model: the Gram path pays ``m N^2 / 2`` once and ``m N + N k^2 / 2`` per signal (the
    second term in scalar Numba loops, weighted 4x against BLAS); the residual path pays
    ``k m N`` per signal in BLAS 3 and ``m k^2`` in Numba loops.
    """
    if N * N * itemsize > 2**30:
        return False
    gram = m * N * N / 2 + n_signals * (m * N + 4 * N * kmax * kmax / 2)
    residual = n_signals * (kmax * m * N + 4 * m * kmax * kmax)
    return gram < residual


# Rows of G or A^H Y per product task: below this the per-task overhead (a thread hand-off,
# one BLAS call) is no longer small against the product itself.
_MIN_TASK_ROWS = 32
# Products of fewer multiply-adds than this (about a millisecond on one core) run in the
# calling thread: starting a thread pool would cost more than it saves.
_MIN_THREADED_FLOPS = 1 << 22


def _signal_chunk(n_sig: int, threads: int) -> int:
    """Signals per chunk of the batch kernels: about eight chunks per thread, claimed as
    threads come free, so a thread that is descheduled (a shared machine) or whose signals
    stop late (``tol``) does not hold up the others; at most 64, so that each chunk still
    amortises its work arrays and the hand-off."""
    return max(1, min(64, n_sig // (8 * max(threads, 1))))


def _gram_products(
    An: np.ndarray, Y: np.ndarray, threads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``G = An^H An``, ``G`` in single precision and ``(An^H Y)^T`` (C-ordered), on
    ``threads`` threads of one BLAS each (the second is ``G`` itself when ``An`` is single).

    Called with every BLAS pool held at one thread (``blas_limited``). OpenBLAS's own pool
    busy-waits for about 0.1 s after each call (``THREAD_TIMEOUT``), so a multi-threaded
    product followed at once by the batch kernel leaves one spinning BLAS worker per core
    fighting the kernel's threads: on 2 cores the batch kernel then took 46-63 ms against
    29 ms. Splitting the products into row blocks, one single-threaded BLAS call per block on
    ``numba.get_num_threads()`` threads, keeps the products parallel (on many cores as on two)
    while no BLAS pool is ever woken. Only the upper triangle of ``G`` is multiplied (as a
    symmetric rank-k update would); the lower one is its conjugate transpose.
    """
    N = An.shape[1]
    n_sig = Y.shape[1]
    dtype = An.dtype
    G = np.empty((N, N), dtype)
    AtY = np.empty((n_sig, N), dtype)
    Ah = An.conj() if dtype.kind == "c" else An

    def blocks(n: int, per_thread: int) -> list[tuple[int, int]]:
        k = max(1, min(per_thread * threads, n // _MIN_TASK_ROWS))
        return [(i * n // k, (i + 1) * n // k) for i in range(k)]

    # Upper block rows of G (shrinking, so several per thread to balance them), then the row
    # blocks of (An^H Y)^T = Y^T conj(An); each product is written in place.
    g_rows = blocks(N, 4)
    upper = [(Ah[:, r0:r1].T, An[:, r0:], G[r0:r1, r0:]) for r0, r1 in g_rows]
    upper += [(Y[:, r0:r1].T, Ah, AtY[r0:r1]) for r0, r1 in blocks(n_sig, 1)]

    def product(t: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        np.matmul(t[0], t[1], out=t[2])

    rounded = dtype in (np.float64, np.complex128)
    Gs = np.empty((N, N), np.complex64 if dtype.kind == "c" else np.float32) if rounded else G

    def mirror(rows: tuple[int, int]) -> None:
        r0, r1 = rows
        np.conjugate(G[:r0, r0:r1].T, out=G[r0:r1, :r0])
        if rounded:
            Gs[r0:r1] = G[r0:r1]

    m = An.shape[0]
    if threads <= 1 or m * N * (N / 2 + n_sig) < _MIN_THREADED_FLOPS:
        for t in upper:
            product(t)
        for rows in g_rows:
            mirror(rows)
    else:
        run_chunks(lambda i: product(upper[i]), len(upper), threads)
        run_chunks(lambda i: mirror(g_rows[i]), len(g_rows), threads)
    if dtype.kind == "c":
        for M in (G, Gs):
            d = np.einsum("ii->i", M)  # a view: the diagonal of a Hermitian matrix is real
            d.imag = 0
    return G, Gs, AtY


def omp(
    A: Any,
    y: Any,
    *,
    n_nonzero: int | None = None,
    tol: float | None = None,
    weights: Any = None,
    return_path: bool = False,
    return_n_iter: bool = False,
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Orthogonal matching pursuit, for one signal or a batch of signals.

    Greedily selects the column of ``A`` most correlated with the residual and refits all
    selected coefficients by least squares, updating a Cholesky factor of the support's Gram
    matrix one row per step. Columns need not have unit norm: they are normalised internally
    and the coefficients mapped back, so the result is that of OMP on the normalised
    dictionary (selection by ``|<a_j, r>| / ||a_j||``), expressed in A's own units.

    Parameters
    ----------
    A : ndarray of shape (m, N)
        Dictionary (real or complex, dense). NumPy, or CuPy together with ``y``: then the
        batched GPU path runs (all signals advance together, one atom per step) and the
        results stay on the device.
    y : ndarray of shape (m,) or (m, n_signals)
        Signal, or one signal per column. A batch runs in parallel (compiled kernels on
        ``numba.get_num_threads()`` threads), from the Gram matrix ``A^H A`` when that is
        cheaper than working with residuals. A dask array
        ``(m, n_signals)`` chunked along the signals gives lazy dask results, one task per
        chunk (see :ref:`user_guide_dask`).
    n_nonzero : int, optional
        Number of atoms to select, in ``[1, N]``. Default ``max(int(0.1 * N), 1)``, as in
        scikit-learn's ``orthogonal_mp``. Ignored when ``tol`` is given.
    tol : float, optional
        Stop once the **squared** residual norm ``||y - A x||_2^2`` is at most ``tol`` (the
        meaning of ``tol`` in scikit-learn's ``orthogonal_mp``). Overrides ``n_nonzero``.
    weights : ndarray of shape (N,), optional
        Non-negative column weights: the selection maximises ``|<a_j, r>| / (||a_j|| w_j)``
        (the scaling-based weighted OMP), and columns of weight 0 are taken first, as
        unpenalised atoms. Default: all ones (classic OMP).
    return_path : bool, default False
        Return the coefficients after every iteration instead of the final ones (as
        scikit-learn's ``orthogonal_mp`` does), with a trailing axis of length the largest
        number of iterations (signals that stopped earlier repeat their last coefficients).
    return_n_iter : bool, default False
        Also return the number of atoms selected (an int, or one per signal).

    Returns
    -------
    coef : ndarray of shape (N,) or (N, n_signals), or (N, n_iter) or (N, n_signals, n_iter)
        The sparse coefficients, in the dtype of the computation (float32 stays float32);
        with ``return_path``, the coefficients after each iteration (the last entry along
        the trailing axis is the final result).
    n_iter : int or ndarray of shape (n_signals,)
        Only with ``return_n_iter``.

    Warns
    -----
    RuntimeWarning
        When a non-zero signal ran out of admissible atoms (linear dependence, or every
        remaining correlation at rounding level) before reaching ``n_nonzero`` or ``tol``,
        with scikit-learn's message.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.recovery import omp
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((50, 100))
    >>> x = np.zeros(100); x[[3, 30, 70]] = [1.0, -2.0, 0.5]
    >>> coef = omp(A, A @ x, n_nonzero=3)
    >>> np.flatnonzero(coef).tolist(), bool(np.allclose(coef, x))
    ([3, 30, 70], True)
    """
    if is_dask_array(y):
        from ._dask import omp_dask

        return omp_dask(
            A,
            y,
            n_nonzero=n_nonzero,
            tol=tol,
            weights=weights,
            return_path=return_path,
            return_n_iter=return_n_iter,
        )
    A, y, dtype = check_problem(A, y, allow_2d_y=True, device=True)
    m, N = A.shape
    w = check_weights(weights, N, dtype, device=_omp_gpu.on_device(A))
    if tol is not None:
        tol = check_real(tol, "tol", low=0.0)
        n_nonzero_eff = min(m, N)
    else:
        if n_nonzero is None:
            n_nonzero = max(int(0.1 * N), 1)
        n_nonzero = check_int(n_nonzero, "n_nonzero", low=1, high=N)
        n_nonzero_eff = n_nonzero
    for name, flag in (("return_path", return_path), ("return_n_iter", return_n_iter)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    if _omp_gpu.on_device(A):  # y is on the same device (checked above)
        return _omp_gpu.omp_device(
            A,
            y,
            w,
            n_nonzero=n_nonzero_eff,
            tol=tol,
            return_path=bool(return_path),
            return_n_iter=bool(return_n_iter),
        )

    norms = _column_norms(A)
    return _omp_core(
        A / norms.astype(dtype), norms, y, w, n_nonzero_eff, tol, return_path, return_n_iter
    )


def _omp_core(
    An: np.ndarray,
    norms: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    n_nonzero_eff: int,
    tol: float | None,
    return_path: bool,
    return_n_iter: bool,
) -> Any:
    """:func:`omp` on the CPU after validation, which it does not repeat: ``An`` is ``A``
    with unit-norm columns (``norms``, to map the coefficients back), ``y`` finite, of ``An``'s
    dtype, ``w`` checked weights. The dask path validates ``A`` once and calls this per chunk
    of signals."""
    m, N = An.shape
    dtype = An.dtype
    one = y.ndim == 1
    Y = y[:, None] if one else y
    n_sig = Y.shape[1]
    # Never more atoms than rows: beyond m the next atom is always linearly dependent.
    kmax = min(n_nonzero_eff, m)
    real = np.finfo(dtype).dtype
    eps = float(np.finfo(dtype).eps)
    # Each signal runs scaled by the power of two that brings its largest entry near 1 (exact:
    # the same bits wherever the unscaled run neither overflows nor underflows), and ``tol``
    # with it; the coefficients are scaled back at the end.
    yscale, yexp = _omp_gpu.signal_scales(Y.T, np)
    Y = Y * yscale.astype(dtype)
    ynorm2 = np.einsum("ij,ij->j", Y.conj(), Y).real.astype(np.float64)
    iw2 = _omp_gpu.selection_weights(w, np)
    free = w == 0
    use_tol = tol is not None
    with np.errstate(over="ignore", under="ignore"):  # inf: met at once; 0: only by y = A x
        tol_v = np.ldexp(float(tol) if use_tol else 0.0, -2 * yexp)
    # Squared correlations below (64 eps)^2 ||y||^2 are rounding noise of the residual.
    thresh = (64 * eps) ** 2
    piv_tol = 10 * eps

    idx = np.zeros((n_sig, kmax), np.int64)
    gam = np.zeros((n_sig, kmax), dtype)
    n_at = np.zeros(n_sig, np.int64)
    status = np.zeros(n_sig, np.int64)
    path = np.zeros((n_sig, kmax, kmax) if return_path else (1, 1, 1), dtype)

    # The batch kernels run as chunks of signals on sparselin's chunk pool, not as a Numba
    # prange: OpenMP's workers spin for milliseconds after each parallel region (GNU OpenMP's
    # GOMP_SPINCOUNT), and on 2 cores they took the second core from the next Gram products
    # and back (256 x 1024, k = 20, 1000 signals, float64: 40-75 ms per call, against 30 ms
    # with GOMP_SPINCOUNT=0 and with this pool, whose idle threads sleep).
    threads = numba.get_num_threads()
    if _use_gram(m, N, n_sig, kmax, np.dtype(dtype).itemsize):
        with blas_limited():
            G, Gs, AtY = _gram_products(An, Y, threads)
            # A single-precision copy of a double-precision G for the correlation updates
            # (half the memory traffic); 0 turns the screening off when G is single already.
            screen_u = float(np.finfo(Gs.dtype).eps) / 2 if Gs is not G else 0.0
            run_ranges(
                lambda s0, s1: _kernels.omp_gram_batch(
                    G,
                    Gs,
                    screen_u,
                    AtY,
                    ynorm2,
                    iw2,
                    free,
                    kmax,
                    tol_v,
                    use_tol,
                    thresh,
                    piv_tol,
                    idx,
                    gam,
                    n_at,
                    status,
                    path,
                    return_path,
                    s0,
                    s1,
                ),
                n_sig,
                threads,
                _signal_chunk(n_sig, threads),
            )
    else:
        YT = np.ascontiguousarray(Y.T)
        R = YT.copy()
        AT = np.ascontiguousarray(An.T)
        Ac = An.conj() if dtype.kind == "c" else An
        active = np.zeros((n_sig, N), np.bool_)
        L_all = np.zeros((n_sig, kmax, kmax), dtype)
        z_all = np.zeros((n_sig, kmax), dtype)
        rows = np.arange(n_sig)
        if use_tol:
            rows = rows[ynorm2 > tol_v]
            status[ynorm2 <= tol_v] = _kernels.DONE
        # For a few signals each step is a matrix-vector product, which OpenBLAS still splits
        # across its pool; the workers then spin against the kernel threads between steps (217
        # against 12.5 ms for one 256 x 4096 signal, see sparselin._threads.blas_limited).
        limit = blas_limited() if n_sig <= _FEW_SIGNALS else contextlib.nullcontext()
        with limit:
            while rows.size:
                C = R[rows] @ Ac
                run_ranges(
                    lambda t0, t1, C=C, rows=rows: _kernels.omp_residual_step(
                        C,
                        rows,
                        YT,
                        R,
                        AT,
                        iw2,
                        free,
                        kmax,
                        tol_v,
                        use_tol,
                        ynorm2,
                        thresh,
                        piv_tol,
                        idx,
                        gam,
                        n_at,
                        status,
                        active,
                        L_all,
                        z_all,
                        path,
                        return_path,
                        t0,
                        t1,
                    ),
                    rows.size,
                    threads,
                    _signal_chunk(rows.size, threads),
                )
                rows = rows[status[rows] == _kernels.RUNNING]
        status[status == _kernels.RUNNING] = _kernels.DONE

    # A budget of n_nonzero > m, or a tolerance not met after m atoms, cannot be reached.
    if not use_tol and n_nonzero_eff > kmax:
        status[(status == _kernels.DONE) & (n_at == kmax)] = _kernels.PREMATURE
    premature = (status == _kernels.PREMATURE) & (ynorm2 > 0)
    if premature.any():
        warnings.warn(PREMATURE_MESSAGE, RuntimeWarning, stacklevel=3)  # omp's caller

    coef = np.zeros((N, n_sig), dtype)
    inv = (1.0 / norms).astype(real)
    # Undo the signals' scaling (a power of two, exact unless the result over- or underflows).
    back = (1.0 / yscale).astype(real)
    gam *= back[:, None]
    if return_path:
        path *= back[:, None, None]
    taken = np.arange(kmax) < n_at[:, None]  # (n_sig, kmax): the first n_at[s] slots
    sig = np.broadcast_to(np.arange(n_sig)[:, None], taken.shape)[taken]
    sel = idx[taken]
    coef[sel, sig] = gam[taken] * inv[sel]
    out: list[Any] = [] if return_path else [coef[:, 0] if one else coef]
    if return_path:
        n_it = max(int(n_at.max()), 1)
        P = np.zeros((N, n_sig, n_it), dtype)
        for s in range(n_sig):
            k = n_at[s]
            for i in range(k):
                sel = idx[s, : i + 1]
                P[sel, s, i] = path[s, i, : i + 1] * inv[sel]
            if k:
                P[:, s, k:] = P[:, s, k - 1 : k]
        out.append(P[:, 0, :] if one else P)
    if return_n_iter:
        out.append(int(n_at[0]) if one else n_at.copy())
    return out[0] if len(out) == 1 else tuple(out)


@dataclass
class LossOMPResult:
    """What :func:`loss_omp` returns.

    Attributes
    ----------
    coef : ndarray of shape (N,)
        The final coefficients, in A's own units.
    support : ndarray of int
        Selected columns, in the order they were added.
    loss : ndarray of shape (n_iter + 1,)
        The regularised loss ``F(y - A x) + lam * penalty(x)`` after each iteration (entry 0:
        at ``x = 0``), with the penalty measured on the normalised columns' coefficients.
    n_iter : int
        Number of atoms added.
    stop_reason : str
        ``"n_nonzero"`` (sparsity budget reached), ``"tol"`` (squared residual norm at most
        ``tol``), ``"active"`` (the best move is on an atom already selected: the
        algorithm's fixed point), ``"no_decrease"`` (no one-coordinate move lowers the
        loss) or ``"dependent"`` (the best atom is linearly dependent on the support).
    coef_path : ndarray of shape (n_iter + 1, N) or None
        The coefficients after each iteration, with ``return_path=True``.
    """

    coef: np.ndarray
    support: np.ndarray
    loss: np.ndarray
    n_iter: int
    stop_reason: str
    coef_path: np.ndarray | None = field(default=None, repr=False)


def loss_omp(
    A: Any,
    y: Any,
    *,
    loss: Literal["lasso", "sqrt_lasso", "lad_lasso"],
    penalty: Literal["l0", "l1"],
    lam: float,
    weights: Any = None,
    n_nonzero: int | None = None,
    tol: float | None = None,
    return_path: bool = False,
) -> LossOMPResult:
    """Loss-function-based weighted OMP (Mohammad-Taheri and Brugiapaglia, 2023).

    Each iteration moves to the atom whose single-coordinate change decreases the
    regularised loss the most, then refits the loss restricted to the support:

    ``G(x) = F(y - A x) + lam * P_w(x)``, with ``F`` one of ``||.||_2^2`` (``"lasso"``),
    ``||.||_2`` (``"sqrt_lasso"``), ``||.||_1`` (``"lad_lasso"``) and ``P_w`` the weighted
    l0 ``sum_{j in supp} w_j^2`` or weighted l1 ``sum_j w_j |x_j|``.

    The gain of atom ``j`` is ``G(x) - min_t G(x + t e_j)``, computed exactly by closed forms
    (a weighted median for LAD), including the corrected square-root l1 insertion rule. The
    refit minimises ``F`` alone on the support (least squares for the two l2 losses, an LP
    for LAD); ``lam`` and the weights drive only the selection, as in the paper. With
    ``loss="lasso", penalty="l0", lam=0`` and unit weights this is OMP.

    Parameters
    ----------
    A : ndarray of shape (m, N)
        Dictionary. Columns are normalised internally (the paper assumes unit norm) and the
        coefficients mapped back, so ``lam`` and ``weights`` refer to the coefficients of the
        normalised columns.
    y : ndarray of shape (m,)
        Measurements. Complex data is accepted for the two l2 losses. A dask array
        ``(m, n_signals)`` chunked along the signals gives a result of lazy dask arrays with
        one row per signal (see :ref:`user_guide_dask`).
    loss : {"lasso", "sqrt_lasso", "lad_lasso"}
        Data-fit loss.
    penalty : {"l0", "l1"}
        Weighted sparsity penalty.
    lam : float
        Regularisation weight ``>= 0``, on the scale of the loss as written above (no 1/2,
        no 1/m).
    weights : ndarray of shape (N,), optional
        Non-negative weights (0 = unpenalised). Default all ones.
    n_nonzero : int, optional
        Largest number of atoms, in ``[1, N]``; default ``min(m, N)``.
    tol : float, optional
        Stop once the squared residual norm ``||y - A x||_2^2`` is at most ``tol``.
    return_path : bool, default False
        Keep the coefficients after every iteration in ``coef_path``.

    Returns
    -------
    result : LossOMPResult
        Coefficients, support order, loss per iteration, number of iterations and why the
        iteration stopped.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.recovery import loss_omp
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((60, 120)); A /= np.linalg.norm(A, axis=0)
    >>> x = np.zeros(120); x[[5, 50, 100]] = [1.0, -1.0, 0.5]
    >>> y = A @ x + 1e-3 * rng.standard_normal(60)
    >>> res = loss_omp(A, y, loss="sqrt_lasso", penalty="l1", lam=0.25)
    >>> sorted(res.support.tolist()), res.stop_reason
    ([5, 50, 100], 'active')
    """
    if is_dask_array(y):
        from ._dask import loss_omp_dask

        return loss_omp_dask(
            A,
            y,
            loss=loss,
            penalty=penalty,
            lam=lam,
            weights=weights,
            n_nonzero=n_nonzero,
            tol=tol,
            return_path=return_path,
        )
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {sorted(PENALTIES)}, got {penalty!r}")
    F: Loss = LOSSES[loss]()
    if _omp_gpu.on_device(A) or _omp_gpu.on_device(y):
        raise TypeError(
            "loss_omp runs on the CPU only: pass NumPy arrays (e.g. cupy.asnumpy(A)); "
            "omp has a batched GPU path"
        )
    A, y, dtype = check_problem(A, y, allow_2d_y=False, allow_complex=F.complex_ok)
    m, N = A.shape
    lam = check_real(lam, "lam", low=0.0)
    w = check_weights(weights, N, dtype)
    kmax = min(m, N)
    if n_nonzero is not None:
        kmax = min(check_int(n_nonzero, "n_nonzero", low=1, high=N), kmax)
    if tol is not None:
        tol = check_real(tol, "tol", low=0.0)
    if not isinstance(return_path, (bool, np.bool_)):
        raise TypeError(f"return_path must be a bool, got {type(return_path).__name__}")

    # Gains are formed in float64 whatever the input precision: they are differences of
    # nearly equal losses, and the selection is only as good as their accuracy.
    work = np.complex128 if dtype.kind == "c" else np.float64
    norms = _column_norms(A).astype(np.float64)
    return _loss_omp_core(
        A.astype(work) / norms, norms, y, dtype, F, penalty, lam, w, kmax, tol, return_path
    )


def _loss_omp_core(
    An: np.ndarray,
    norms: np.ndarray,
    y: np.ndarray,
    dtype: np.dtype,
    F: Loss,
    penalty: str,
    lam: float,
    w: np.ndarray,
    kmax: int,
    tol: float | None,
    return_path: bool,
) -> LossOMPResult:
    """:func:`loss_omp` after validation, which it does not repeat: ``An`` is ``A`` with
    unit-norm columns in float64 or complex128 (``norms`` maps the coefficients back), ``y``
    one finite signal, ``dtype`` the results' precision. The dask path validates ``A`` once
    and calls this per signal."""
    N = An.shape[1]
    work = An.dtype
    yw = y.astype(work)
    pen: Penalty = PENALTIES[penalty](lam, w)
    refit = F.refit(An, yw)

    x = np.zeros(N, work)
    r = yw.copy()
    history = [F.value(r)]
    path = [x.copy()] if return_path else None
    support: list[int] = []
    reason = "n_nonzero"
    while True:
        if tol is not None and float(np.vdot(r, r).real) <= tol:
            reason = "tol"
            break
        if len(support) >= kmax:
            reason = "n_nonzero"
            break
        c = An.conj().T @ r
        gains = F.decrease(An, r, c, x, pen)
        j = int(np.argmax(gains))
        if not gains[j] > 0:
            reason = "no_decrease"
            break
        if j in support:
            reason = "active"
            break
        fitted = refit.add(j)
        if fitted is None:
            reason = "dependent"
            break
        support.append(j)
        coef_s, r = fitted
        x = np.zeros(N, work)
        x[support] = coef_s
        history.append(F.value(r) + pen.value(x))
        if path is not None:
            path.append(x.copy())

    scale = (1.0 / norms).astype(np.float64)
    coef = (x * scale).astype(dtype)
    coef_path = None
    if path is not None:
        coef_path = (np.array(path) * scale).astype(dtype)
    return LossOMPResult(
        coef=coef,
        support=np.array(support, dtype=np.int64),
        loss=np.array(history),
        n_iter=len(support),
        stop_reason=reason,
        coef_path=coef_path,
    )
