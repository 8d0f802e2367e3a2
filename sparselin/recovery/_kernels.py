"""Numba kernels of the recovery family (see sparselin._numba for the conventions).

Batch OMP (Rubinstein, Zibulevsky and Elad, "Efficient implementation of the K-SVD algorithm
using Batch OMP", Technion CS-2008-08) in two flavours that share the same per-signal step:

* the Gram path works on ``G = A^H A`` and ``A^H y`` only, so that one signal costs
  ``O(N k^2)`` after the shared Gram matrix is built: the right choice for many signals;
* the residual path keeps each signal's residual and lets the caller compute ``A^H R`` for
  all signals with one matrix product per iteration (BLAS 3), for a few signals or a Gram
  matrix too large to build.

Both keep the Cholesky factor of ``A_S^H A_S`` up to date one row at a time, so that no
least-squares problem is ever solved from scratch. The columns of ``A`` are assumed to have
unit norm here; the public function scales them.
"""

from __future__ import annotations

import numba
import numpy as np

from .._numba import jit

__all__ = ["omp_gram_batch", "omp_residual_step", "weighted_median_objective"]

# Status codes of a signal: still running, stopped on its budget (n_nonzero or tol), or
# stopped early because no admissible atom was left (linear dependence, vanishing
# correlations).
RUNNING = 0
DONE = 1
PREMATURE = 2


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def _scores(c, wk, score):  # pragma: no cover - compiled
    """``score_j = |c_j|^2 wk_j`` (a vectorized loop; ``wk`` is 0 on the active atoms)."""
    for j in range(c.shape[0]):
        v = c[j]
        score[j] = (v.real * v.real + v.imag * v.imag) * wk[j]


@jit
def _argmax_first(score):  # pragma: no cover - compiled
    """First index of the largest entry of a non-negative float64 array.

    Non-negative floats order like their bit patterns read as integers, and an integer max
    reduction vectorizes where a float one does not (it needs fast-math comparisons). This
    and :func:`_scores` replace the branchy scan of :func:`_select`, about a third of the
    batch kernel's time (256 x 1024, k = 20, one thread: 44 against 58 ms, best of 15).
    """
    bits = score.view(np.int64)
    N = bits.shape[0]
    best = bits[0]
    for j in range(1, N):
        v = bits[j]
        best = v if v > best else best
    for j in range(N):
        if bits[j] == best:
            return j
    return 0


# Most candidates the screened selection re-checks one at a time; beyond this (scores at the
# rounding level of the screening Gram matrix, near the end of an exact recovery) it is
# cheaper to recompute every correlation exactly.
_MAX_CANDIDATES = 16


@jit
def _screened_argmax(score, delta, sqrt_wmax, alpha0, G, idx, gamma, k, wk):  # pragma: no cover
    """The exact rule's atom, from scores computed with a rounded copy of ``G``.

    Each screened correlation is within ``delta`` of the exact one, so every atom that can
    beat the screened best ``b`` has a screened score of at least
    ``T = (sqrt(score_b) - delta sqrt(wk_b) - delta sqrt(max wk))^2``. The candidates above
    ``T`` (usually ``b`` alone) get their exact correlation from their row of ``G`` (O(k)
    each) and the largest exact score wins, the first on ties. Returns ``(j, v)`` with ``v``
    the exact correlation of atom ``j``, or ``(-1, v)`` when more than ``_MAX_CANDIDATES``
    atoms qualify (the caller then recomputes all correlations exactly).
    """
    b = _argmax_first(score)
    zero = alpha0[0] * 0
    sb = score[b]
    if not sb > 0.0:
        return -1, zero
    root = np.sqrt(sb) - delta * (np.sqrt(wk[b]) + sqrt_wmax)
    thr = root * root if root > 0.0 else 0.0
    N = score.shape[0]
    count = 0
    for j in range(N):
        count += 1 if score[j] >= thr else 0
    if count == 1:
        return b, _correlation(alpha0, G, idx, gamma, k, b)
    if count > _MAX_CANDIDATES:
        return -1, zero
    j_best = -1
    v_best = zero
    s_best = -1.0
    for j in range(N):
        if score[j] >= thr:
            v = _correlation(alpha0, G, idx, gamma, k, j)
            e = (v.real * v.real + v.imag * v.imag) * wk[j]
            if e > s_best:
                s_best = e
                j_best = j
                v_best = v
    return j_best, v_best


@jit
def _select(c, active, iw2, free, thresh):  # pragma: no cover - compiled
    """Index of the next atom: unpenalised atoms (weight 0) first, then the largest
    ``|c_j|^2 / w_j^2``; atoms whose squared correlation is below ``thresh`` (numerical
    zero) are never taken. Returns -1 when no atom qualifies. First maximiser on ties."""
    best_free = -1.0
    j_free = -1
    best = -1.0
    j_best = -1
    for j in range(c.shape[0]):
        if active[j]:
            continue
        v = c[j]
        a2 = v.real * v.real + v.imag * v.imag
        if a2 <= thresh:
            continue
        if free[j]:
            if a2 > best_free:
                best_free = a2
                j_free = j
        else:
            s = a2 * iw2[j]
            if s > best:
                best = s
                j_best = j
    if j_free >= 0:
        return j_free
    return j_best


@jit
def _chol_append(L, k, g_col, g_jj, piv_tol):  # pragma: no cover - compiled
    """Append row ``k`` to the Cholesky factor ``L`` (``L L^H = A_S^H A_S``).

    ``g_col[i] = <a_{S_i}, a_j>`` for the ``k`` active atoms. Returns False (L unchanged
    in its first k rows) when the new pivot is not positive enough: ``a_j`` is, to working
    precision, in the span of the active atoms.
    """
    # Forward substitution L w = g_col; the new row of L is conj(w) followed by the pivot.
    d = g_jj.real
    for i in range(k):
        s = g_col[i]
        for t in range(i):
            s -= L[i, t] * L[k, t].conjugate()
        wi = s / L[i, i].real
        L[k, i] = wi.conjugate()
        d -= wi.real * wi.real + wi.imag * wi.imag
    if not d > piv_tol:
        return False
    L[k, k] = np.sqrt(d)
    return True


@jit
def _chol_solve(L, k, b, z, gamma):  # pragma: no cover - compiled
    """Solve ``L L^H gamma = b`` for the leading ``k x k`` block; ``z`` holds ``L^{-1} b``
    for the first ``k - 1`` entries already (forward substitution is incremental)."""
    i = k - 1
    s = b[i]
    for t in range(i):
        s -= L[i, t] * z[t]
    z[i] = s / L[i, i].real
    for i in range(k - 1, -1, -1):
        s = z[i]
        for t in range(i + 1, k):
            s -= L[t, i].conjugate() * gamma[t]
        gamma[i] = s / L[i, i].real


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def _axpy_rows(alpha, alpha0, G, idx, gamma, k):  # pragma: no cover - compiled
    """``alpha = alpha0 - sum_i conj(G[idx[i]]) gamma[i]``, row by row (contiguous, SIMD).

    Four rows per pass over ``alpha``: the rows stream from cache once each, and ``alpha``
    is loaded and stored a quarter as often as with one row per pass (the loop is bound by
    memory traffic, not by arithmetic). Leaves out the rows from ``k`` on.
    """
    N = alpha.shape[0]
    for n in range(N):
        alpha[n] = alpha0[n]
    i = 0
    while i + 4 <= k:
        g0 = gamma[i]
        g1 = gamma[i + 1]
        g2 = gamma[i + 2]
        g3 = gamma[i + 3]
        r0 = G[idx[i]]
        r1 = G[idx[i + 1]]
        r2 = G[idx[i + 2]]
        r3 = G[idx[i + 3]]
        for n in range(N):
            alpha[n] = alpha[n] - (
                r0[n].conjugate() * g0
                + r1[n].conjugate() * g1
                + r2[n].conjugate() * g2
                + r3[n].conjugate() * g3
            )
        i += 4
    while i < k:
        gi = gamma[i]
        row = G[idx[i]]
        for n in range(N):
            alpha[n] = alpha[n] - row[n].conjugate() * gi
        i += 1


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def _update_scores(part, alpha0, G, idx, gamma, k, wk, score):  # pragma: no cover - compiled
    """``score = |alpha0 - sum_i conj(G[idx[i]]) gamma[i]|^2 wk`` without writing the sum.

    The selection needs only the scores, so the last pass over the rows (up to four, padded
    with zero coefficients) writes them instead of the correlations, and the scores need no
    pass of their own; ``part`` holds the sum over the rows before the last pass. The
    correlation of the selected atom is recomputed from its row of ``G`` (see
    :func:`_correlation`), and :func:`_axpy_rows` gives them all where the exact rule needs
    them. ``k >= 1``.
    """
    N = part.shape[0]
    last = ((k - 1) // 4) * 4  # first row of the last pass
    src = alpha0
    if last > 0:
        _axpy_rows(part, alpha0, G, idx, gamma, last)
        src = part
    zero = gamma[0] * 0
    i = last
    g0 = gamma[i]
    g1 = gamma[i + 1] if i + 1 < k else zero
    g2 = gamma[i + 2] if i + 2 < k else zero
    g3 = gamma[i + 3] if i + 3 < k else zero
    r0 = G[idx[i]]
    r1 = G[idx[i + 1]] if i + 1 < k else r0
    r2 = G[idx[i + 2]] if i + 2 < k else r0
    r3 = G[idx[i + 3]] if i + 3 < k else r0
    for n in range(N):
        v = src[n] - (
            r0[n].conjugate() * g0
            + r1[n].conjugate() * g1
            + r2[n].conjugate() * g2
            + r3[n].conjugate() * g3
        )
        score[n] = (v.real * v.real + v.imag * v.imag) * wk[n]


@jit
def _correlation(alpha0, G, idx, gamma, k, j):  # pragma: no cover - compiled
    """``alpha0[j] - sum_i conj(G[idx[i], j]) gamma[i]``, from row ``j`` (``G`` Hermitian)."""
    gj = G[j]
    v = alpha0[j]
    for i in range(k):
        v -= gj[idx[i]] * gamma[i]
    return v


@jit
def omp_gram_batch(
    G,
    Gs,
    screen_u,
    AtY,
    ynorm2,
    iw2,
    free,
    kmax,
    tol,
    use_tol,
    thresh,
    piv_tol,
    idx_out,
    coef_out,
    n_out,
    status_out,
    path_out,
    keep_path,
    s0,
    s1,
):  # pragma: no cover - compiled
    """Batch OMP from the Gram matrix for the signals ``s0 <= s < s1``, one after the other.

    ``G`` is ``A^H A`` (N x N, unit diagonal), ``AtY`` holds ``A^H y`` for each signal as a
    row (n_signals x N). For each signal the selected atoms go to ``idx_out[s, :n]``, their
    coefficients to ``coef_out[s, :n]``, ``n`` to ``n_out[s]`` and DONE / PREMATURE to
    ``status_out[s]``; ``tol[s]`` is signal ``s``'s squared-residual tolerance (used with
    ``use_tol``). With ``keep_path`` the coefficients after each iteration ``i`` go to
    ``path_out[s, i, :i + 1]``. The caller runs ranges of signals on several threads
    (``sparselin._pool.run_ranges``); the work arrays are allocated once per range.

    ``Gs`` is ``G`` rounded to single precision (unit roundoff ``screen_u``), or ``G`` itself
    with ``screen_u = 0``. The correlation update, which streams ``k`` rows per step and
    bounds the kernel by memory traffic, reads ``Gs``: half the bytes in double precision.
    The selection stays exact (:func:`_screened_argmax`); coefficients, Cholesky factor and
    residual norms use ``G``.
    """
    N = AtY.shape[1]
    dt = AtY.dtype
    has_free = False
    wmax = 0.0
    for j in range(N):
        if free[j]:
            has_free = True
        wmax = max(wmax, iw2[j])
    sqrt_wmax = np.sqrt(wmax)
    screen = screen_u > 0.0
    u64 = np.finfo(np.float64).eps
    alpha = np.empty(N, dt)
    active = np.empty(N, np.bool_)
    wk = np.empty(N, np.float64)  # selection weights, zeroed on the active atoms
    score = np.empty(N, np.float64)
    L = np.zeros((kmax, kmax), dt)
    z = np.zeros(kmax, dt)
    gamma = np.zeros(kmax, dt)
    b = np.zeros(kmax, dt)
    g_col = np.zeros(kmax, dt)
    for s in range(s0, s1):
        alpha0 = AtY[s]
        for j in range(N):
            active[j] = False
            wk[j] = iw2[j]
        if not has_free:
            _scores(alpha0, wk, score)  # later steps get them from _update_scores
        idx = idx_out[s]
        err = ynorm2[s]
        thresh_s = thresh * ynorm2[s]
        ynorm = np.sqrt(ynorm2[s])
        gnorm1 = 0.0  # ||gamma||_1, which bounds the screening error
        k = 0
        stat = DONE
        while k < kmax:
            if use_tol and err <= tol[s]:
                break
            j = -1
            if not has_free:
                v = alpha0[0] * 0
                if screen:
                    # |screened - exact correlation| <= u ||gamma||_1 (|G_ij| <= 1), doubled,
                    # plus the double-precision rounding of both sums.
                    delta = 2 * screen_u * gnorm1 + 4 * (k + 2) * u64 * (ynorm + gnorm1)
                    j, v = _screened_argmax(score, delta, sqrt_wmax, alpha0, G, idx, gamma, k, wk)
                else:
                    j = _argmax_first(score)
                    v = _correlation(alpha0, G, idx, gamma, k, j)
                if j < 0:  # too many candidates, or no positive score: all exactly
                    _axpy_rows(alpha, alpha0, G, idx, gamma, k)
                    _scores(alpha, wk, score)
                    j = _argmax_first(score)
                    v = alpha[j]
                a2 = v.real * v.real + v.imag * v.imag
                if not (a2 * wk[j] > 0.0 and a2 > thresh_s):
                    j = -1
            if j < 0:
                # Unpenalised atoms, a best atom at rounding level or underflowing weights:
                # the exact rule decides (and returns -1 when no atom qualifies) on the
                # correlations, which the scores' pass does not keep.
                _axpy_rows(alpha, alpha0, G, idx, gamma, k)
                j = _select(alpha, active, iw2, free, thresh_s)
            if j < 0:
                stat = PREMATURE
                break
            # <a_{S_i}, a_j> = conj(G[j, S_i]): read from row j, which is contiguous and is
            # read again by the next correlation update, instead of k scattered rows.
            gj = G[j]
            for i in range(k):
                g_col[i] = gj[idx[i]].conjugate()
            if k > 0 and not _chol_append(L, k, g_col, G[j, j], piv_tol):
                stat = PREMATURE
                break
            if k == 0:
                L[0, 0] = np.sqrt(G[j, j].real)
            idx[k] = j
            active[j] = True
            wk[j] = 0.0
            b[k] = alpha0[j]
            k += 1
            _chol_solve(L, k, b, z, gamma)
            gnorm1 = 0.0
            for i in range(k):
                gnorm1 += abs(gamma[i])
            # ||y - A_S gamma||^2 = ||y||^2 - Re(b^H gamma) at the least-squares solution.
            acc = 0.0
            for i in range(k):
                acc += (b[i].conjugate() * gamma[i]).real
            err = ynorm2[s] - acc
            if keep_path:
                for i in range(k):
                    path_out[s, k - 1, i] = gamma[i]
            if k == kmax or (use_tol and err <= tol[s]):
                break  # no next selection: skip the O(N k) correlation update
            # The scores of alpha = A^H (y - A_S gamma) = alpha0 - G[:, S] gamma; row i of G
            # is the conjugate of column i because G is Hermitian, and rows are contiguous.
            # (With unpenalised atoms the exact rule recomputes alpha at the next selection.)
            if not has_free:
                _update_scores(alpha, alpha0, Gs, idx, gamma, k, wk, score)
        for i in range(k):
            coef_out[s, i] = gamma[i]
        n_out[s] = k
        status_out[s] = stat


@jit
def omp_residual_step(
    C,
    rows,
    Y,
    R,
    AT,
    iw2,
    free,
    kmax,
    tol,
    use_tol,
    ynorm2,
    thresh,
    piv_tol,
    idx_out,
    coef_out,
    n_out,
    status_out,
    active_out,
    L_all,
    z_all,
    path_out,
    keep_path,
    t0,
    t1,
):  # pragma: no cover - compiled
    """One OMP iteration for the signals ``rows[t0:t1]``, given their correlations ``C``.

    ``C[t]`` is ``A^H r`` for signal ``rows[t]`` (computed by the caller with one matrix
    product for all signals), ``R[s]`` its residual, ``Y[s]`` the signal, ``AT`` the
    transposed (N x m, C-ordered) unit-norm dictionary. The support, Cholesky factor
    (``L_all[s]``) and forward-substitution vector (``z_all[s]``) persist between calls.
    A signal that stops gets DONE or PREMATURE in ``status_out``; others stay RUNNING.
    ``tol[s]`` is signal ``s``'s squared-residual tolerance (used with ``use_tol``).
    """
    m = Y.shape[1]
    dt = Y.dtype
    zero = Y[0, 0] * 0
    for t in range(t0, t1):
        s = rows[t]
        k = n_out[s]
        idx = idx_out[s]
        L = L_all[s]
        c = C[t]
        j = _select(c, active_out[s], iw2, free, thresh * ynorm2[s])
        if j < 0:
            status_out[s] = PREMATURE
            continue
        aj = AT[j]
        g_col = np.zeros(max(k, 1), dt)
        for i in range(k):
            ai = AT[idx[i]]
            acc = zero
            for n in range(m):
                acc += ai[n].conjugate() * aj[n]
            g_col[i] = acc
        gjj = 0.0
        for n in range(m):
            gjj += aj[n].real * aj[n].real + aj[n].imag * aj[n].imag
        if k > 0:
            if not _chol_append(L, k, g_col, gjj, piv_tol):
                status_out[s] = PREMATURE
                continue
        else:
            L[0, 0] = np.sqrt(gjj)
        idx[k] = j
        active_out[s, j] = True
        k += 1
        n_out[s] = k
        # b = A_S^H y; its new entry is <a_j, y>.
        b = np.zeros(k, dt)
        for i in range(k):
            ai = AT[idx[i]]
            acc = zero
            for n in range(m):
                acc += ai[n].conjugate() * Y[s, n]
            b[i] = acc
        gamma = coef_out[s]
        _chol_solve(L, k, b, z_all[s], gamma)
        r = R[s]
        for n in range(m):
            r[n] = Y[s, n]
        for i in range(k):
            ai = AT[idx[i]]
            gi = gamma[i]
            for n in range(m):
                r[n] -= ai[n] * gi
        err = 0.0
        for n in range(m):
            err += r[n].real * r[n].real + r[n].imag * r[n].imag
        if keep_path:
            for i in range(k):
                path_out[s, k - 1, i] = gamma[i]
        if (use_tol and err <= tol[s]) or k >= kmax:
            status_out[s] = DONE


@jit
def weighted_median_objective(V, A, pen):  # pragma: no cover - compiled
    """``min_t ||V[:, j] - t A[:, j]||_1 + pen[j] |t|`` for every column ``j`` (real data).

    The minimiser of a sum of ``|v_i - t a_i|`` is a weighted median of the ratios
    ``v_i / a_i`` with weights ``|a_i|``; the penalty is one more row ``(0, pen_j)``. Returns
    the minimal values and the minimisers.
    """
    m, N = V.shape
    vals = np.empty(N)
    ts = np.empty(N)
    ratio = np.empty(m + 1)
    wts = np.empty(m + 1)
    for j in range(N):
        total = 0.0
        n = 0
        for i in range(m):
            a = A[i, j]
            if a != 0.0:
                ratio[n] = V[i, j] / a
                wts[n] = abs(a)
                total += wts[n]
                n += 1
        if pen[j] > 0.0:
            ratio[n] = 0.0
            wts[n] = pen[j]
            total += pen[j]
            n += 1
        t = 0.0
        if n > 0:
            order = np.argsort(ratio[:n])
            half = 0.5 * total
            acc = 0.0
            for q in range(n):
                acc += wts[order[q]]
                if acc >= half:
                    t = ratio[order[q]]
                    break
        val = pen[j] * abs(t)
        for i in range(m):
            val += abs(V[i, j] - t * A[i, j])
        vals[j] = val
        ts[j] = t
    return vals, ts
