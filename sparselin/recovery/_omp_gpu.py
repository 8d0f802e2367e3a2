"""Batched OMP on the GPU: every signal of a batch advances together, one atom per step.

The CPU path (``_kernels``) runs one signal per Numba thread; a GPU wants the opposite: few,
large operations over the whole batch. Each step here is a fixed sequence of array
operations on all running signals at once, written against the namespace ``xp`` (CuPy on
the device; NumPy runs the same code, which the tests use as a second reference):

* the correlations ``C = R A^*`` of all residuals with all atoms: one matrix product
  (cuBLAS GEMM), then a masked ``argmax`` per row selects each signal's atom;
* the support system is kept as the **inverse** of its Cholesky factor, ``Linv = L^{-1}``
  (``L L^H = A_S^H A_S``), one ``(batch, kmax, kmax)`` array. Appending an atom to a lower
  triangular factor appends one row to its inverse too::

      L' = [[L, 0], [w^H, d]]  =>  L'^{-1} = [[Linv, 0], [-(w^H Linv) / d, 1 / d]]

  with ``w = Linv g`` (``g = A_S^H a_j``) and ``d^2 = ||a_j||^2 - ||w||^2``. So every
  "triangular solve" of the incremental Cholesky update is a batched matrix product
  (``matmul`` on stacks, cuBLAS batched GEMM), never a loop over signals;
* ``z = Linv A_S^H y`` grows by one entry per step, the coefficients are ``Linv^H z`` and the
  residual ``y - A_S gamma`` is recomputed from them (one batched product), as the CPU
  residual path does, so that rounding does not accumulate across steps.

All arrays keep a fixed width ``kmax`` (unused rows and columns are zero), so no step slices
or reallocates. Signals that stop (tolerance met, no admissible atom, linear dependence)
have their results written out and are dropped from the running set, so a batch with a
tolerance gets cheaper as it goes; the step then costs one host synchronisation (to learn
whether any signal stopped), two with a tolerance.

The selection rule, thresholds and stopping rules are those of the CPU path (``omp`` in
``_greedy`` and ``_kernels._select``): unpenalised atoms (weight 0) first, then the largest
``|c_j|^2 / w_j^2``, first maximiser on ties; correlations below ``(64 eps)^2 ||y||^2`` are
rounding noise; a pivot below ``10 eps`` is linear dependence.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._array import is_cupy_array, namespace

__all__ = [
    "omp_device",
    "on_device",
    "pow2_exponents",
    "scaled_column_norms",
    "selection_weights",
    "signal_scales",
]

# Status codes, as in _kernels (DONE: budget or tol reached; PREMATURE: no admissible atom).
_DONE = 1
_PREMATURE = 2
# The CPU path's thresholds (omp in _greedy): squared correlations below (64 eps)^2 ||y||^2
# are rounding noise; a new Cholesky pivot below 10 eps means linear dependence.
_CORR_ZERO = 64
_PIVOT_ZERO = 10

PREMATURE_MESSAGE = (
    "Orthogonal matching pursuit ended prematurely due to linear dependence in the "
    "dictionary. The requested precision might not have been met."
)


def pow2_exponents(mags: Any, dtype: Any, xp: Any) -> Any:
    """Exponents ``e`` (int64) with ``mags * 2**-e`` in ``[0.5, 1)``, clamped so that ``2**-e``
    stays a normal number of ``dtype``'s precision (0 for zero magnitudes).

    Scaling by a power of two is exact, so a computation on the scaled data gives the same
    bits as on the original one wherever the latter neither overflows nor underflows.
    """
    info = np.finfo(dtype)
    _, e = xp.frexp(mags)
    e = xp.where(mags > 0, e, 0).astype(xp.int64)
    return xp.clip(e, -info.maxexp + 2, -info.minexp - 1)


def scaled_column_norms(A: Any, xp: Any) -> Any:
    """Column norms of ``A`` in its real precision, without overflow or underflow in the
    squares (each column is scaled by a power of two near its largest entry first: at 1e+-170
    the plain sum of squares gave inf or 0, and every atom then looked like a zero column);
    1 for zero columns (they are never selected)."""
    real = np.finfo(A.dtype).dtype
    mags = xp.max(xp.abs(A), axis=0) if A.shape[0] else xp.zeros(A.shape[1], real)
    e = pow2_exponents(mags, real, xp)
    up = xp.ldexp(xp.ones(e.shape, dtype=real), -e.astype(xp.int32))
    As = A * up
    norms = xp.sqrt(xp.sum(_abs2(xp, As), axis=0)) / up
    return xp.where(norms > 0, norms, xp.ones((), dtype=real)).astype(real, copy=False)


def signal_scales(Yt: Any, xp: Any) -> Any:
    """Per signal (rows of ``Yt``), the power of two ``2**-e`` that brings its largest entry
    into ``[0.5, 1)``: OMP runs on the scaled signals, whose squared norms and correlations
    neither overflow nor underflow (at 1e-170 they underflowed to 0 and OMP returned zeros
    without a warning), and the coefficients are scaled back exactly."""
    real = np.finfo(Yt.dtype).dtype
    mags = xp.max(xp.abs(Yt), axis=1)
    e = pow2_exponents(mags, real, xp)
    return xp.ldexp(xp.ones(e.shape, dtype=real), -e.astype(xp.int32)), e


def selection_weights(w: Any, xp: Any) -> Any:
    """``(w_ref / w_j)^2`` in float64 (0 for unpenalised atoms), the factor of ``|c_j|^2`` in
    the weighted selection score, with ``w_ref`` a power of two at the geometric middle of
    the positive weights.

    The rule ``argmax |c_j| / w_j`` does not change when every weight is scaled by one
    factor; ``1 / w_j^2`` itself overflowed for weights below 1e-154 and underflowed to 0
    above 1e154, and OMP then took the first atoms in column order instead of the most
    correlated ones. Relative to ``w_ref`` the scores stay finite and non-zero for any range
    of weights up to about 1e300 (and unit weights give unit factors).
    """
    w = w.astype(xp.float64)
    pos = w > 0
    if not bool(xp.any(pos)):
        return xp.zeros(w.shape, dtype=xp.float64)
    lo = xp.min(xp.where(pos, w, xp.inf))
    hi = xp.max(w)
    _, e_lo = np.frexp(float(lo))
    _, e_hi = np.frexp(float(hi))
    e_ref = (int(e_lo) + int(e_hi)) // 2 - 1
    ws = xp.ldexp(xp.where(pos, w, 1.0), -e_ref)
    with np.errstate(over="ignore", under="ignore"):  # only beyond the range above
        return xp.where(pos, (1.0 / ws) ** 2, 0.0)


def _abs2(xp: Any, X: Any) -> Any:
    """``|X|^2`` elementwise in X's real precision (no square root, as the CPU kernel)."""
    if X.dtype.kind == "c":
        return X.real * X.real + X.imag * X.imag
    return X * X


class _State:
    """The running signals' state, row ``t`` belonging to the original signal ``rows[t]``."""

    names = (
        "rows",
        "Yt",
        "R",
        "AtY",
        "thr",
        "tol",
        "idx",
        "As",
        "Linv",
        "z",
        "gam",
        "active",
        "path",
    )

    def __init__(self, **arrays: Any) -> None:
        self.__dict__.update(arrays)

    def keep(self, sel: Any) -> None:
        for name in self.names:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[sel])


def omp_device(
    A: Any,
    y: Any,
    w: Any,
    *,
    n_nonzero: int,
    tol: float | None,
    return_path: bool,
    return_n_iter: bool,
) -> Any:
    """OMP for ``y`` (one signal or one per column) on the device that holds ``A`` and ``y``.

    Arguments are validated by :func:`sparselin.recovery.omp` (same dtype, same device,
    ``n_nonzero`` the effective budget: ``min(m, N)`` under a tolerance); ``w`` are the
    checked weights, on the host or on the device. Returns what ``omp`` returns, as arrays
    of ``A``'s library (``n_iter`` an int for one signal).
    """
    xp = namespace(A, y)
    dtype = A.dtype
    cplx = dtype.kind == "c"
    real = np.finfo(dtype).dtype
    eps = float(np.finfo(dtype).eps)
    m, N = A.shape
    one = y.ndim == 1
    Y = y[:, None] if one else y
    B = Y.shape[1]
    kmax = min(n_nonzero, m)
    use_tol = tol is not None

    def cj(X: Any) -> Any:
        return X.conj() if cplx else X

    # Unit-norm columns (zero columns keep norm 1: they are never selected).
    norms = scaled_column_norms(A, xp)
    An = A / norms
    AnT = xp.ascontiguousarray(An.T)  # atoms as rows, for gathering
    AnC = cj(An)
    gdiag = xp.sum(_abs2(xp, AnT), axis=1, dtype=xp.float64)  # ||a_j||^2 after scaling

    w = xp.asarray(w)
    free = w == 0
    has_free = bool(xp.any(free))
    weighted = has_free or bool(xp.any(w != 1))
    iw2 = selection_weights(w, xp)

    # Each signal scaled by a power of two (exact), and its tolerance with it, as on the CPU.
    Yt = xp.ascontiguousarray(Y.T)
    yscale, yexp = signal_scales(Yt, xp)
    Yt = Yt * yscale[:, None].astype(dtype)
    ynorm2 = xp.sum(_abs2(xp, Yt), axis=1, dtype=xp.float64)
    with np.errstate(over="ignore", under="ignore"):  # inf: met at once; 0: only by y = A x
        tol_v = xp.ldexp(
            xp.full(B, float(tol) if use_tol else 0.0, dtype=xp.float64),
            (-2 * yexp).astype(xp.int32),
        )

    # Results per original signal; index N is a dummy column for unused slots.
    idx_out = xp.full((B, kmax), N, dtype=xp.int64)
    gam_out = xp.zeros((B, kmax), dtype=dtype)
    n_out = xp.zeros(B, dtype=xp.int64)
    status_out = xp.full(B, _DONE, dtype=xp.int64)
    path_out = xp.zeros((B, kmax, kmax), dtype=dtype) if return_path else None

    rows = xp.arange(B)
    if use_tol:
        # Signals already within tol select nothing (DONE with 0 atoms).
        rows = xp.flatnonzero(ynorm2 > tol_v)
    b = int(rows.shape[0])
    st = _State(
        rows=rows,
        Yt=Yt[rows],
        R=Yt[rows],
        thr=((_CORR_ZERO * eps) ** 2) * ynorm2[rows],
        tol=tol_v[rows],
        idx=xp.full((b, kmax), N, dtype=xp.int64),
        As=xp.zeros((b, kmax, m), dtype=dtype),
        Linv=xp.zeros((b, kmax, kmax), dtype=dtype),
        z=xp.zeros((b, kmax), dtype=dtype),
        gam=xp.zeros((b, kmax), dtype=dtype),
        AtY=None,
        active=xp.zeros((b, N), dtype=bool),
        path=xp.zeros((b, kmax, kmax), dtype=dtype) if return_path else None,
    )

    def retire(sel: Any, n_atoms: int, status: int) -> None:
        """Write out the signals ``sel`` (positions in the running set) with their result."""
        orig = st.rows[sel]
        idx_out[orig] = st.idx[sel]
        gam_out[orig] = st.gam[sel]
        n_out[orig] = n_atoms
        status_out[orig] = status
        if return_path:
            path_out[orig] = st.path[sel]

    piv_tol = _PIVOT_ZERO * eps
    ar = xp.arange(b)
    for k in range(kmax):
        if b == 0:
            break
        # -- selection: the largest |c_j|^2 / w_j^2 among admissible atoms, free ones first
        C = st.R @ AnC
        if k == 0:
            st.AtY = C  # R = Y before the first atom: keep A^H y for the z updates
        a2 = _abs2(xp, C)
        if not weighted:
            # Unit weights: the largest |c_j|^2 among inactive atoms is admissible exactly
            # when it clears the rounding threshold, so one masked argmax does.
            score = xp.where(st.active, -1, a2)
            j = xp.argmax(score, axis=1)
            valid = xp.take_along_axis(score, j[:, None], axis=1)[:, 0] > st.thr
        elif has_free:
            ok = (a2 > st.thr[:, None]) & ~st.active
            score = a2.astype(xp.float64) * iw2
            sf = xp.where(ok & free, a2, -1)
            jf = xp.argmax(sf, axis=1)
            bf = xp.take_along_axis(sf, jf[:, None], axis=1)[:, 0]
            score = xp.where(ok & ~free, score, -1)
            jn = xp.argmax(score, axis=1)
            bn = xp.take_along_axis(score, jn[:, None], axis=1)[:, 0]
            j = xp.where(bf > -1, jf, jn)
            valid = (bf > -1) | (bn > -1)
        else:
            ok = (a2 > st.thr[:, None]) & ~st.active
            score = xp.where(ok, a2.astype(xp.float64) * iw2, -1)
            j = xp.argmax(score, axis=1)
            valid = xp.take_along_axis(score, j[:, None], axis=1)[:, 0] > -1
        # -- Cholesky append, on the inverse factor (rows of As beyond k are zero, so the
        # fixed-width products below see only the current support)
        aj = AnT[j]
        # g = A_S^H a_j = conj(A_S^T conj(a_j)): conjugates the (b, m) vector, not A_S
        g = st.As @ cj(aj)[:, :, None]
        w_col = st.Linv @ cj(g)  # (b, kmax, 1): L^{-1} A_S^H a_j
        d2 = gdiag[j] - xp.sum(_abs2(xp, w_col[:, :, 0]), axis=1, dtype=xp.float64)
        good = valid & (d2 > piv_tol) if k > 0 else valid
        if not bool(xp.all(good)):
            bad = xp.flatnonzero(~good)
            retire(bad, k, _PREMATURE)
            keep = xp.flatnonzero(good)
            st.keep(keep)
            j, aj, w_col, d2 = j[keep], aj[keep], w_col[keep], d2[keep]
            b = int(keep.shape[0])
            if b == 0:
                break
            ar = xp.arange(b)
        d = xp.sqrt(d2.astype(real, copy=False))
        # New row k of L^{-1}: -(w^H Linv) / d, and 1 / d on the diagonal.
        row = -(cj(w_col).swapaxes(1, 2) @ st.Linv)[:, 0, :] / d[:, None]
        row[:, k] = 1 / d
        st.Linv[:, k, :] = row
        # z_k = (<a_j, y> - w^H z) / d
        bk = xp.take_along_axis(st.AtY, j[:, None], axis=1)[:, 0]
        st.z[:, k] = (bk - xp.sum(cj(w_col[:, :, 0]) * st.z, axis=1)) / d
        st.idx[:, k] = j
        st.As[:, k, :] = aj
        st.active[ar, j] = True
        # gamma = Linv^H z; the residual from it, as on the CPU.
        st.gam = (cj(st.Linv).swapaxes(1, 2) @ st.z[:, :, None])[:, :, 0]
        st.R = st.Yt - (st.gam[:, None, :] @ st.As)[:, 0, :]
        if return_path:
            st.path[:, k, :] = st.gam
        if k + 1 == kmax:
            retire(ar, k + 1, _DONE)
            b = 0
            break
        if use_tol:
            err = xp.sum(_abs2(xp, st.R), axis=1, dtype=xp.float64)
            done = err <= st.tol
            if bool(xp.any(done)):
                retire(xp.flatnonzero(done), k + 1, _DONE)
                keep = xp.flatnonzero(~done)
                st.keep(keep)
                b = int(keep.shape[0])
                ar = xp.arange(b)

    # A budget of n_nonzero > m cannot be reached: the CPU path reports it the same way.
    if not use_tol and n_nonzero > kmax:
        status_out[(status_out == _DONE) & (n_out == kmax)] = _PREMATURE
    if bool(xp.any((status_out == _PREMATURE) & (ynorm2 > 0))):
        warnings.warn(PREMATURE_MESSAGE, RuntimeWarning, stacklevel=3)

    inv = (1 / norms).astype(real)
    # Undo the signals' scaling (a power of two, as on the CPU).
    back = (1 / yscale).astype(real)
    gam_out *= back[:, None]
    if return_path:
        path_out *= back[:, None, None]
    inv_ext = xp.concatenate([inv, xp.zeros(1, dtype=real)])
    scale = inv_ext[idx_out]  # (B, kmax); 0 on the dummy slots
    sig = xp.arange(B)[:, None]
    out: list[Any] = []
    if not return_path:
        coefT = xp.zeros((B, N + 1), dtype=dtype)
        coefT[sig, idx_out] = gam_out * scale
        coef = xp.ascontiguousarray(coefT[:, :N].T)
        out.append(coef[:, 0] if one else coef)
    else:
        n_it = max(int(xp.max(n_out)) if B else 0, 1)
        # Iteration i of a signal that stopped after n atoms shows its state after
        # min(i + 1, n) atoms (the CPU path repeats the last coefficients the same way).
        it = xp.minimum(xp.arange(n_it)[None, :], xp.maximum(n_out[:, None] - 1, 0))
        vals = path_out[sig, it]  # (B, n_it, kmax)
        vals = vals * scale[:, None, :]
        PT = xp.zeros((B, n_it, N + 1), dtype=dtype)
        PT[sig[:, :, None], xp.arange(n_it)[None, :, None], idx_out[:, None, :]] = vals
        P = xp.ascontiguousarray(PT[:, :, :N].transpose(2, 0, 1))
        out.append(P[:, 0, :] if one else P)
    if return_n_iter:
        out.append(int(n_out[0]) if one else n_out)
    return out[0] if len(out) == 1 else tuple(out)


def on_device(x: Any) -> bool:
    """Whether ``x`` is a CuPy array (the dispatch test of ``omp``; imports no CuPy)."""
    return is_cupy_array(x)
