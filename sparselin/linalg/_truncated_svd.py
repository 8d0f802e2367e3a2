"""Truncated SVD: randomized subspace iteration, block Krylov, Lanczos, fixed accuracy."""

from __future__ import annotations

import math
import types
import warnings
from typing import Any, Literal

import numpy as np

from .._array import namespace, scipy_namespace
from .._validation import (
    check_int,
    check_matrix,
    check_random_state,
    check_real,
    squared_norm,
)
from ._dense import (
    _triangular_inverse,
    flip_signs,
    gaussian,
    lu_normalize,
    orth,
    orth_against,
    small_eigvalsh,
    small_svd,
)

__all__ = ["truncated_svd"]

_METHODS = ("randomized", "block_krylov", "lanczos")
# Adaptive iterations stop when the squared error is predicted to fall by less than this
# fraction: err/opt stays within about RTOL / 2 (0.75%) of what more iterations would give.
_RTOL = 0.015
_NORMALIZERS = ("auto", "QR", "LU", "none")
# Below this many entries a float32 copy for the sketch saves less than it costs.
_MIXED_PRECISION_MIN_SIZE = 1 << 20


class _Operator:
    """``A @ X`` and ``A^H @ Y`` for dense, sparse and LinearOperator ``A`` on one device."""

    def __init__(self, A: Any, kind: str, xp: types.ModuleType, scale: float = 1.0) -> None:
        self.A = A
        self.kind = kind
        self.xp = xp
        self.shape = tuple(A.shape)
        self.dtype = np.dtype(A.dtype)
        self.complex = self.dtype.kind == "c"
        # The operator represents scale * A (see _safe_scale); scaling the thin factor
        # before the product keeps every intermediate in range without copying A.
        self.scale = scale

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


def _safe_scale(A: Any, kind: str, xp: types.ModuleType, norm2: float | None) -> tuple:
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


def _top_energy(R: Any, k: int, xp: types.ModuleType) -> float:
    """Sum of the k largest squared singular values of the small matrix R."""
    s = small_svd(R, xp, compute_uv=False)
    return float(xp.sum(s[:k].astype(np.float64) ** 2))


def _auto_max_iter(k: int, m: int, n: int) -> int:
    # scikit-learn's schedule (more iterations when k is a small part of the spectrum) serves
    # as the cap; the adaptive stop below usually ends well before it.
    return 7 if k < 0.1 * min(m, n) else 4


def _converged(errors: list[float], rtol: float, ahead: int = 0) -> bool:
    """Whether the remaining decrease of the squared error is below ``rtol`` of it.

    The error falls roughly geometrically from pass to pass, but the ratio of successive
    gains grows towards its asymptotic value (the fast early gains come from the largest
    singular values), so a plain geometric extrapolation is optimistic. The predicted ratio
    is therefore the larger of the last ratio, the one before it, and the last ratio grown by
    the same factor again; what is left is ``g r / (1 - r)``, of which ``ahead`` further passes
    (made anyway) remove all but ``r**ahead``.
    """
    if len(errors) < 4:
        return False
    g3, g2, g1 = (errors[-4] - errors[-3], errors[-3] - errors[-2], errors[-2] - errors[-1])
    e = errors[-1]
    if g1 <= 0.0:
        return True
    if g2 <= 0.0 or g3 <= 0.0:
        return False
    r1, r2 = g1 / g2, g2 / g3
    ratio = max(r1, r2, r1 * r1 / r2)
    if ratio >= 1.0:
        return False
    return g1 * ratio ** (1 + ahead) / (1.0 - ratio) <= rtol * e


class _StopRule:
    """When adaptive iterations may stop: after convergence, or a fixed tail at the floor.

    The squared error is measured as ``||A||^2 - sum top-k s^2``; once it is within a few
    rounding errors of ``||A||^2`` in the sketch's precision (relative error ~1e-3 in float32,
    ~1e-7 in float64) the identity cannot tell further progress from noise, although the
    iteration is still improving the subspace. From then on a fixed tail of two more
    iterations (four passes) is run: reaching the floor means the spectrum has fallen far
    below its top, where subspace iteration converges fast.
    """

    TAIL = 4

    def __init__(self, norm2: float, dtype: Any) -> None:
        self.floor = 10.0 * np.finfo(dtype).eps * norm2
        self.errors: list[float] = []
        self.floor_at: int | None = None

    def add(self, error: float) -> None:
        self.errors.append(error)
        if self.floor_at is None and error <= self.floor:
            self.floor_at = len(self.errors)

    def stop(self, ahead: int = 0) -> bool:
        if self.floor_at is not None:
            return len(self.errors) - self.floor_at + ahead >= self.TAIL
        return _converged(self.errors, _RTOL, ahead=ahead)


def _half_step_iteration(
    op: _Operator,
    sketch: _Operator,
    Omega: Any,
    k: int,
    n_iter: int | None,
    max_iter: int,
    normalizer: str,
    norm2: float | None,
) -> tuple[Any, Any, Any, tuple]:
    """Randomized subspace iteration in which every pass over A is a complete approximation.

    The passes alternate ``Y = A X`` and ``Z = A^H X`` with ``X`` the orthonormalised previous
    product. With ``Y = Q R`` the pass gives ``A X X^H = Q R X^H``; with ``Z = P R`` it gives
    ``X X^H A = X R^H P^H``: either way the best rank-k approximation in that subspace comes
    from the SVD of the small ``R``, and its squared error ``||A||^2 - sum top-k s^2`` is
    known at no extra cost. So no pass is spent only on the final projection, and the adaptive
    rule (``n_iter=None``) may stop after any pass, half an iteration at a time.

    An integer ``n_iter`` runs the classical scheme exactly: ``2 n_iter + 2`` passes, the last
    being ``B = Q^H A``. With a lower-precision ``sketch`` operator, all passes but the last
    run on it and the last runs on ``op`` in full precision.
    """
    xp = op.xp
    mixed = sketch is not op
    adaptive = n_iter is None and norm2 is not None and normalizer in ("auto", "QR")
    total = 2 * (max_iter if n_iter is None else n_iter) + 2
    rule = _StopRule(norm2 or 0.0, sketch.dtype)
    X = orth(Omega, xp) if adaptive else Omega
    right = True  # the next product is A @ X (else A^H @ X)
    passes = 0
    result = None
    while True:
        final = passes == total - 1
        if adaptive and mixed and not final and rule.stop(ahead=1):
            # The full-precision pass that ends the run is one more half-step of progress.
            final = True
        current = op if (final and mixed) else sketch
        if current is not sketch:
            X = orth(X.astype(op.dtype), xp)
        product = current.mm(X) if right else current.rmm(X)
        passes += 1
        if final or adaptive:
            # Intermediate passes only need a well-conditioned basis and the singular values
            # of R for the stopping rule; one Cholesky QR gives both (its loss of
            # orthogonality, eps * cond^2, is harmless there). The last pass gets CholeskyQR2.
            basis, R = orth(product, xp, return_r=True, passes=2 if final else 1)
            result = (right, X, basis, R)
            if adaptive:
                rule.add(norm2 - _top_energy(R, k, xp))
        else:
            basis = _normalize(product, xp, normalizer)
        if final:
            break
        if adaptive and not mixed and rule.stop():
            break
        X = basis
        right = not right
    assert result is not None
    return (*_from_pass(op, result, k), result)


def _from_pass(op: _Operator, result: tuple, k: int) -> tuple[Any, Any, Any]:
    """The rank-k SVD of the approximation one pass gives (see _half_step_iteration)."""
    xp = op.xp
    right, X, basis, R = result

    def H(M: Any) -> Any:
        return M.conj().T if op.complex else M.T

    if right:
        # A X X^H = basis R X^H
        u, s, wh = small_svd(R, xp)
        U = basis @ u[:, :k]
        Vt = wh[:k] @ H(X)
    else:
        # X X^H A = X R^H basis^H
        u, s, wh = small_svd(H(R), xp)
        U = X @ u[:, :k]
        Vt = wh[:k] @ H(basis)
    return xp.ascontiguousarray(U), s[:k], xp.ascontiguousarray(Vt)


def _normalize(Y: Any, xp: types.ModuleType, normalizer: str) -> Any:
    if normalizer in ("auto", "QR"):
        return orth(Y, xp)
    if normalizer == "LU":
        return lu_normalize(Y, xp)
    return Y


def _block_krylov(
    op: _Operator, Omega: Any, k: int, depth: int | None, max_depth: int, norm2: float | None
) -> tuple[Any, Any | None]:
    """Orthonormal basis of the block Krylov space [AΩ, (AA^H)AΩ, ..., (AA^H)^q AΩ].

    Returns the basis ``Q`` and, when it was computed along the way, ``A^H Q``: the products
    ``A^H Q_i`` that build the space are exactly the rows of ``Q^H A`` needed for the final
    Rayleigh-Ritz step, so reusing them saves a pass over A.
    """
    xp = op.xp
    m = op.shape[0]
    adaptive = depth is None and norm2 is not None
    target = max_depth if depth is None else depth
    rule = _StopRule(norm2 or 0.0, op.dtype)
    if adaptive:
        # With an orthonormal start block, the sketch A Ω already measures the energy its
        # span captures; that first reading lets the stopping rule end at depth 1.
        Omega = orth(Omega, xp)
        Q, R = orth(op.mm(Omega), xp, return_r=True)
        rule.add(norm2 - _top_energy(R, k, xp))
    else:
        Q = orth(op.mm(Omega), xp)
    blocks = [Q]
    products = []
    Zt_all = None
    while True:
        Z = op.rmm(blocks[-1])
        products.append(Z)
        Zt_all = products[0] if len(products) == 1 else xp.concatenate(products, axis=1)
        if adaptive:
            # Captured energy of the current space: top-k singular values of Q^H A.
            G = Zt_all.conj().T @ Zt_all if op.complex else Zt_all.T @ Zt_all
            w = small_eigvalsh(G, xp)
            rule.add(norm2 - float(xp.sum(xp.sort(w)[::-1][:k].astype(np.float64))))
            # A Krylov step is a full iteration (two passes): the floor tail is halved.
            if rule.stop(ahead=2 if rule.floor_at is not None else 0):
                break
        level = len(blocks) - 1
        if level >= target:
            break
        basis = xp.concatenate(blocks, axis=1)
        if basis.shape[1] + Omega.shape[1] > m:
            break
        Y = op.mm(orth(Z, xp))
        blocks.append(orth_against(Y, basis, xp))
    return xp.concatenate(blocks, axis=1), Zt_all


def _rayleigh_ritz(op: _Operator, Q: Any, k: int, Zt: Any | None = None) -> tuple[Any, ...]:
    """Best rank-k approximation of Q Q^H A: returns U, s, Vt and the basis of A^H Q."""
    xp = op.xp
    if Zt is None:
        Zt = op.rmm(Q)  # n x d, equal to (Q^H A)^H
    Qz, Rz = orth(Zt, xp, return_r=True)
    # Q^H A = Rz^H Qz^H, so its SVD comes from the small d x d matrix Rz^H.
    RzH = Rz.conj().T if op.complex else Rz.T
    u, s, wh = small_svd(RzH, xp)
    U = Q @ u[:, :k]
    QzH = Qz.conj().T if op.complex else Qz.T
    Vt = wh[:k] @ QzH
    return xp.ascontiguousarray(U), s[:k], xp.ascontiguousarray(Vt), Qz


def _lanczos(op: _Operator, k: int, rng: Any, solver_tol: float) -> tuple[Any, Any, Any] | None:
    """Delegate to scipy/cupyx ``svds``; None when it cannot serve (k too large, failure)."""
    xp = op.xp
    m, n = op.shape
    if k >= min(m, n):
        return None
    sc = scipy_namespace(xp)
    try:
        if xp is np:
            v0 = rng.standard_normal(min(m, n)).astype(op.dtype)
            U, s, Vt = sc.sparse.linalg.svds(op.A, k=k, tol=solver_tol, v0=v0)
        else:
            U, s, Vt = sc.sparse.linalg.svds(op.A, k=k, tol=solver_tol)
    except Exception as exc:  # ARPACK non-convergence, cupyx failure on rank < k
        warnings.warn(
            f"svds failed ({exc}); falling back to block Krylov", RuntimeWarning, stacklevel=3
        )
        return None
    if not (bool(xp.isfinite(s).all()) and bool(xp.isfinite(U).all())):
        return None
    order = xp.argsort(s)[::-1]
    U = xp.ascontiguousarray(U[:, order])
    Vt = xp.ascontiguousarray(Vt[order])
    # svds on rank-deficient input may return non-orthonormal vectors for the null part.
    eye = xp.eye(k, dtype=U.dtype)
    tol_orth = 1e3 * np.finfo(op.dtype).eps * max(m, n) ** 0.5
    if float(xp.abs(U.conj().T @ U - eye).max()) > tol_orth:
        return None
    return U, s[order], Vt


def _explicit_residual2(op: _Operator, L: Any, Rt: Any) -> float:
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


def _small_factor_svd(op: _Operator, B: Any) -> tuple[Any, Any, Any, Any]:
    """SVD of a short, wide ``B`` (d x n) through the QR of ``B^H``: ``B = u diag(s) wh Qz^H``.

    Going through the QR (not the Gram matrix ``B B^H``) keeps small singular values accurate
    to ``eps * s[0]`` instead of ``sqrt(eps) * s[0]``, which the rank selection depends on.
    """
    xp = op.xp
    BH = B.conj().T if op.complex else B.T
    Qz, Rz = orth(BH, xp, return_r=True)
    u, sv, wh = small_svd(Rz.conj().T if op.complex else Rz.T, xp)
    return Qz, u, sv, wh


def _fixed_accuracy(
    op: _Operator,
    tol: float,
    k_max: int | None,
    n_iter: int | None,
    rng: Any,
    norm2: float | None,
) -> tuple[Any, Any, Any, float, bool]:
    """Grow a QB factorisation block by block until the relative error is at most ``tol``.

    The randQB_EI idea (Yu, Gu & Li, 2018): with Q orthonormal and B = Q^H A,
    ``||A - QB||_F^2 = ||A||_F^2 - ||B||_F^2``, so the error is known at no cost after every
    block. Where ``tol`` is too small for that identity to resolve in A's precision
    (``tol**2`` within a thousand rounding errors of 1), a claim that ``tol`` is met is
    checked against the residual computed entry by entry, and the growth goes on if it is
    not. The rank returned is the smallest r with ``||A - QB||^2 + sum_{j>r} s_j(B)^2 <=
    tol^2 ||A||^2``. For a LinearOperator the norm is unknown; the residual is then estimated
    from the fresh Gaussian block that starts each round, ``E||(A - QB) G||^2 = b ||A - QB||^2``.
    """
    xp = op.xp
    m, n = op.shape
    r_max = min(m, n)
    p = 1 if n_iter is None else n_iter
    block = min(r_max, max(16, min(64, r_max // 16)))
    if k_max is not None:
        block = min(block, max(8, k_max // 2 + 1))
    Q = xp.zeros((m, 0), dtype=op.dtype)
    B = xp.zeros((0, n), dtype=op.dtype)
    tol2 = tol * tol
    eps = float(np.finfo(op.dtype).eps)
    # The identity's rounding error is a few eps * ||A||^2 per block; trust it well above.
    identity_ok = tol2 > 1e3 * eps or op.kind == "operator"
    captured = 0.0
    resid = 0.0
    total = norm2 or 0.0
    decided = False
    cap = r_max if k_max is None else min(r_max, k_max + block)

    def rank_for(resid: float, total: float) -> tuple[int, Any]:
        sv = _small_factor_svd(op, B)[2].astype(np.float64)
        # err^2(r) = resid + sum_{j>r} s_j^2: a sum of small terms, no cancellation.
        tails = xp.concatenate([xp.cumsum(sv[::-1] ** 2)[::-1], xp.zeros(1)])
        ok = xp.nonzero(resid + tails <= tol2 * total)[0]
        r = int(ok[0]) if ok.size else int(sv.shape[0])
        return max(r, 1), sv

    while True:
        d = Q.shape[1]
        b = min(block, r_max - d)
        if b <= 0:
            break
        Omega = gaussian(rng, (n, b), op.dtype, xp)
        Y = op.mm(Omega)
        if d:
            Y = Y - Q @ (B @ Omega)
        if norm2 is None and d:
            # Operator: estimate the residual from the fresh sketch before deciding.
            resid = float(xp.vdot(Y, Y).real) / b
            total = captured + resid
            if resid <= tol2 * total:
                decided = True
                break
        QH = Q.conj().T if op.complex else Q.T
        for _ in range(p):
            Qi = orth(Y, xp)
            Z = op.rmm(Qi)
            if d:
                Z = Z - (B.conj().T if op.complex else B.T) @ (QH @ Qi)
            Pi = orth(Z, xp)
            Y = op.mm(Pi)
            if d:
                Y = Y - Q @ (B @ Pi)
        Qi = orth_against(Y, Q, xp)
        Bi = op.rmm(Qi)
        Bi = Bi.conj().T if op.complex else Bi.T
        Q = xp.concatenate([Q, Qi], axis=1)
        B = xp.concatenate([B, Bi], axis=0)
        captured += float(xp.vdot(Bi, Bi).real)
        d = Q.shape[1]
        if norm2 is not None:
            resid = max(norm2 - captured, 0.0)
            if resid <= tol2 * norm2 and not identity_ok:
                resid = _explicit_residual2(op, Q, B)
                captured = norm2 - resid  # keep the bookkeeping exact from here on
            if resid <= tol2 * norm2:
                r, _ = rank_for(resid, norm2)
                # Leave slack: the last block's directions are the least converged, so accept
                # once the rank that meets tol sits clearly inside the basis.
                if r <= d - block // 2 or d >= r_max or (k_max is not None and r <= k_max):
                    decided = True
                    break
        if d >= cap:
            break
    if not decided:
        if norm2 is None and Q.shape[1] < r_max:
            # Operator stopped by the rank cap: one fresh probe estimates what is left.
            b = min(block, n)
            Omega = gaussian(rng, (n, b), op.dtype, xp)
            Y = op.mm(Omega) - Q @ (B @ Omega)
            resid = float(xp.vdot(Y, Y).real) / b
            total = captured + resid
        elif Q.shape[1] >= r_max:
            resid = 0.0
    rank, sv = rank_for(resid, total)
    rank = min(rank, int(sv.shape[0]))
    if k_max is not None:
        rank = min(rank, k_max)
    Qz, u, sv, wh = _small_factor_svd(op, B)
    U = xp.ascontiguousarray(Q @ u[:, :rank])
    QzH = Qz.conj().T if op.complex else Qz.T
    Vt = xp.ascontiguousarray(wh[:rank] @ QzH)
    s = sv[:rank]
    err2 = resid + float(xp.sum(sv[rank:].astype(np.float64) ** 2))
    rel = math.sqrt(max(err2, 0.0) / total) if total > 0 else 0.0
    return U, s, Vt, rel, rel <= tol * (1 + 1e-9)


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
        Power iterations (``"randomized"``) or Krylov depth (``"block_krylov"``); an integer
        runs exactly that many (``2 n_iter + 2`` passes over A for "randomized"). ``"auto"``
        measures after every pass over A the error of the approximation that pass gives (each
        pass yields one, at no extra cost) and stops once the predicted further decrease of
        the squared error is below 1.5% of it, i.e. err/opt within about 0.75% of what more
        iterations would reach; capped by scikit-learn's schedule (7 iterations when
        ``k < 0.1 min(m, n)``, else 4), which is also used as is for a LinearOperator, whose
        norm is unknown. The rule targets the Frobenius error: trailing singular values may
        still carry relative errors around 1e-2 on slowly decaying spectra; pass an integer
        (or use "block_krylov" or "lanczos") when individual values matter. In fixed-accuracy
        mode ``n_iter`` is the number of power iterations per block (``"auto"``: 1).
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
    A, kind, norm2 = check_matrix(A, "A")
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
    scale, norm2 = _safe_scale(A, kind, xp, norm2)
    op = _Operator(A, kind, xp, scale)
    _sketch_operator(op, sketch_dtype, check_only=True)
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
        U, s, Vt, rel, met = _fixed_accuracy(op, tol, k, iters, rng, norm2)
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
            result = _lanczos(op, k, rng, solver_tol)
        if result is not None:
            U, s, Vt = result
        else:
            U, s, Vt = _fixed_rank(
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
                err2 = _explicit_residual2(op, U * s[None, :].astype(U.dtype), Vt)
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


def _fixed_rank(
    op: _Operator,
    k: int,
    n_oversamples: int,
    iters: int | None,
    method: str,
    rng: Any,
    norm2: float | None,
    normalizer: str,
    sketch_dtype: Any,
) -> tuple[Any, Any, Any]:
    xp = op.xp
    m, n = op.shape
    l = min(k + n_oversamples, min(m, n))
    if method == "block_krylov" and isinstance(sketch_dtype, str):
        # Block Krylov reuses its A^H products for the final projection; a low-precision
        # sketch would force a separate full-precision pass over a basis (q + 1) times as
        # wide, which costs more than it saves.
        sketch = op
    else:
        sketch = _sketch_operator(op, sketch_dtype)
    Omega = gaussian(rng, (n, l), sketch.dtype, xp)
    max_iter = _auto_max_iter(k, m, n)
    if method == "block_krylov":
        # The depth cap: Krylov needs about half the iterations of subspace iteration.
        Q, Zt = _block_krylov(sketch, Omega, k, iters, max(2, max_iter // 2), norm2)
        # Block by block, the basis is orthonormal only to about eps * sqrt(m) per entry, and
        # Q Q^H A is then off the true projection by that much times ||A||: in float32 that
        # is 1e-5 of the norm, enough to spoil a small optimal error. One more QR of
        # the whole (near-orthonormal, so R ~ I) basis restores it, and A^H Q follows as
        # Zt R^-1 without a pass over A. Near-orthonormal means perfectly conditioned, so
        # Cholesky QR serves (LAPACK's Householder QR costs 4x more on this tall block).
        Q, Rq = orth(Q, xp, return_r=True)
        Zt = Zt @ _triangular_inverse(Rq, xp)
        U, s, Vt, _ = _rayleigh_ritz(op, Q, k, Zt)
        return U, s, Vt
    U, s, Vt, last = _half_step_iteration(op, sketch, Omega, k, iters, max_iter, normalizer, norm2)
    if sketch is not op and norm2:
        err2 = max(norm2 - float(xp.sum(s.astype(np.float64) ** 2)), 0.0)
        if err2 < (1e3 * np.finfo(sketch.dtype).eps) ** 2 * norm2:
            # Single precision cannot resolve the subspace of a nearly exactly low-rank
            # matrix. The last pass ran in full precision, so its product's basis spans A's
            # range (or row space) to working precision; one more full-precision pass from it
            # makes the approximation exact up to rounding.
            right, _, basis, _ = last
            if right:
                U, s, Vt, _ = _rayleigh_ritz(op, basis, k)
            else:
                Q, R = orth(op.mm(basis), xp, return_r=True)
                U, s, Vt = _from_pass(op, (True, basis, Q, R), k)
    return U, s, Vt


def _sketch_operator(op: _Operator, sketch_dtype: Any, check_only: bool = False) -> _Operator:
    """The operator the power iterations run on (``op`` itself or a lower-precision copy)."""
    if isinstance(sketch_dtype, str):
        if sketch_dtype != "auto":
            raise ValueError(f"sketch_dtype must be 'auto' or a dtype, got {sketch_dtype!r}")
        if check_only:
            return op
        low = {np.dtype(np.float64): np.float32, np.dtype(np.complex128): np.complex64}
        if (
            op.kind == "dense"
            and op.dtype in low
            and op.scale == 1.0
            and op.shape[0] * op.shape[1] >= _MIXED_PRECISION_MIN_SIZE
        ):
            return _Operator(op.A.astype(low[op.dtype]), "dense", op.xp)
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
    return _Operator(op.A.astype(target), "dense", op.xp)
