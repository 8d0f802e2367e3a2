"""Fixed-rank engines: randomized subspace iteration, block Krylov, Lanczos (svds).

Each returns the rank-k SVD of its approximation; :func:`fixed_rank` picks the engine and the
precision of the sketch.
"""

from __future__ import annotations

import itertools
import math
import types
import warnings
from typing import Any

import numpy as np

from .._array import conj_t, scipy_namespace, to_numpy
from .._threads import scipy_blas_limited
from .._validation import OperatorContractError
from ._dense import (
    _cholesky_upper,
    _triangular_inverse,
    cholqr_checked,
    gaussian,
    gram_double,
    lu_normalize,
    orth,
    small_eigvalsh,
    small_svd,
)
from ._operator import Operator, sketch_operator

__all__ = [
    "ENERGY_RESOLUTION",
    "TOL_FLOOR",
    "ZERO_CUTOFF",
    "extend_basis",
    "fixed_rank",
    "lanczos",
    "ritz_factors",
    "ritz_svd",
]

# Named thresholds of the truncated SVD, each a multiple of the dtype's eps; one home for all
# the paths (fixed rank, fixed accuracy, the public function).
#
# Singular values below ZERO_CUTOFF * eps * s[0] are reported as exact zeros: the missing
# directions of a rank-deficient matrix come out at about eps * s[0] / 2 (measured on all
# dtypes and methods), while genuine small values, which single precision resolves down to
# about eps * s[0], stay.
ZERO_CUTOFF = 10.0
# The energy identity ||A||^2 - sum s^2 carries a rounding error of a few eps * ||A||^2 per
# block; below ENERGY_RESOLUTION * eps * ||A||^2 it cannot tell an error from noise, and the
# residual is measured on the entries of A instead (squared relative errors below ~1e-4 in
# float32, ~2e-13 in float64).
ENERGY_RESOLUTION = 1e3
# A relative error below TOL_FLOOR * eps cannot be represented by factors of A's precision
# (the rounding of U diag(s) Vt itself is a few eps per entry, summed over the rank).
TOL_FLOOR = 30.0
# When a new block's normalised remainder is projected against the basis once more, a
# direction that keeps less than this fraction of its length lay inside the basis: it is
# rounding noise and is dropped (see extend_basis).
KEEP_FRACTION = 0.5
# The Ritz step of block Krylov selects the k directions kept from a double-precision Gram
# matrix while its k-th eigenvalue is at least this fraction of its largest (s_k >= 1.2e-4
# s_1); below, the whole basis is factorised (see _gram_ritz).
_GRAM_SELECT = float(np.sqrt(np.finfo(np.float64).eps))
# Adaptive iterations stop when the squared error is predicted to fall by less than this
# fraction: err/opt stays within about RTOL / 2 (0.75%) of what more iterations would give.
_RTOL = 0.015


def _top_energy(R: Any, k: int, xp: types.ModuleType) -> float:
    """Sum of the k largest squared singular values of the small matrix R."""
    return _ritz_readings(R, k, xp)[0]


def _ritz_readings(R: Any, k: int, xp: types.ModuleType) -> tuple[float, float | None]:
    """Top-k energy of R, and ``(s_l / s_k)**2`` from its singular values (Ritz values).

    Subspace iteration removes the error along a direction beyond ``l`` by about
    ``(sigma_l / sigma_k)**2`` per pass once the early, fast gains are spent, so that ratio
    of Ritz values bounds how fast the error can keep falling.
    """
    s = small_svd(R, xp, compute_uv=False).astype(np.float64)
    if xp is not np:
        s = s.get()
    return _energy_and_rate(s, k)


def _energy_and_rate(s: np.ndarray, k: int) -> tuple[float, float | None]:
    """:func:`_ritz_readings` from the Ritz values ``s`` (descending, on the host)."""
    energy = float(np.sum(s[:k] ** 2))
    rate = None
    if s.shape[0] > k and s[k - 1] > 0:
        rate = float((s[-1] / s[k - 1]) ** 2)
    return energy, rate


def _auto_max_iter(k: int, m: int, n: int) -> int:
    # scikit-learn's schedule (more iterations when k is a small part of the spectrum) serves
    # as the cap; the adaptive stop below usually ends well before it.
    return 7 if k < 0.1 * min(m, n) else 4


def _converged(
    errors: list[float], rtol: float, ahead: int = 0, rate: float | None = None
) -> bool:
    """Whether the remaining decrease of the squared error is below ``rtol`` of it.

    The error falls roughly geometrically from pass to pass, but the ratio of successive
    gains grows towards its asymptotic value (the fast early gains come from the largest
    singular values), so a plain geometric extrapolation is optimistic. The predicted ratio
    is therefore the larger of the last ratio, the one before it, and the last ratio grown by
    the same factor again; what is left is ``g r / (1 - r)``, of which ``ahead`` further passes
    (made anyway) remove all but ``r**ahead``. The ratios settle only after a few passes (on
    slowly decaying spectra they fall at first, then grow), so at least five readings are
    required: deciding from four stopped at err/opt 1.017 (i^-0.5, k=100). ``rate``, the
    asymptotic ratio read from the Ritz values (see :func:`_ritz_readings`), is a floor for
    the predicted ratio: on slowly decaying spectra the observed ratios are still far below
    it when they look settled, and extrapolating them stopped at err/opt 1.011 (0.99^i, k=60).
    """
    remaining = _remaining(errors, ahead, rate)
    # 0.0 (the error stopped falling) converges even where rounding left the error negative.
    return remaining is not None and (remaining == 0.0 or remaining <= rtol * errors[-1])


def _remaining(errors: list[float], ahead: int = 0, rate: float | None = None) -> float | None:
    """The predicted further decrease of the squared error (see :func:`_converged`).

    0.0 once the error stopped falling, None while no prediction can be made (fewer than
    five readings, gains not yet shrinking).
    """
    if len(errors) < 5:
        return None
    g3, g2, g1 = (errors[-4] - errors[-3], errors[-3] - errors[-2], errors[-2] - errors[-1])
    if g1 <= 0.0:
        return 0.0
    if g2 <= 0.0 or g3 <= 0.0:
        return None
    r1, r2 = g1 / g2, g2 / g3
    ratio = max(r1, r2, r1 * r1 / r2, rate or 0.0)
    if ratio >= 1.0:
        return None
    return g1 * ratio ** (1 + ahead) / (1.0 - ratio)


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
        self.floor = ZERO_CUTOFF * float(np.finfo(dtype).eps) * norm2
        self.errors: list[float] = []
        self.floor_at: int | None = None
        self.rate: float | None = None

    def add(self, error: float, rate: float | None = None) -> None:
        self.errors.append(error)
        self.rate = rate
        if self.floor_at is None and error <= self.floor:
            self.floor_at = len(self.errors)

    def stop(self, ahead: int = 0) -> bool:
        if self.floor_at is not None:
            return len(self.errors) - self.floor_at + ahead >= self.TAIL
        return _converged(self.errors, _RTOL, ahead=ahead, rate=self.rate)

    def reached(self, error: float) -> bool:
        """Whether ``error``, of a better approximation from the same passes (see
        :class:`_KrylovUnion`), is good enough to end the run one pass early.

        It is, where it is no worse than the error the readings predict for the next pass
        (the last one less the next predicted gain), or within the tolerance of the limit
        they extrapolate to (the last one less the whole predicted decrease). Both
        predictions err low, so either way more passes would not do better by more than
        the rule allows.
        """
        if self.floor_at is not None:
            return False
        remaining = _remaining(self.errors, 0, self.rate)
        if remaining is None:
            return False
        e = self.errors[-1]
        ahead = _remaining(self.errors, 1, self.rate)
        assert ahead is not None
        return error <= e - (remaining - ahead) or error - (e - remaining) <= _RTOL * error


def _half_step_iteration(
    op: Operator,
    sketch: Operator,
    Omega: Any,
    k: int,
    n_iter: int | None,
    max_iter: int,
    normalizer: str,
    norm2: float | None,
    union_ok: bool = False,
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

    One orthonormalisation per power step: a product on the long side of A (``m x l`` for
    ``m >= n``) is passed on unnormalised to the next pass, ``Z = A^H (A X)``, and only the
    short side is orthonormalised (see :class:`_RawBlock`). That halves the Cholesky QRs, a
    third of the time of a fit on sparse text. Orthonormalising between the two products only
    guards the rounding of directions whose squared Ritz values are near ``eps`` of the top
    one; so the shortcut is taken while ``cond(Z)`` (from its small Cholesky factor) stays
    below ``0.1 / sqrt(eps)`` and, in adaptive mode, ``cond(A X)`` below its square root
    (read from the Gram matrix the stopping rule needs anyway; a block that fails this check
    is orthonormalised as before). Once the check of ``Z`` fails (exactly low-rank or
    ill-conditioned input), the run goes on with every product orthonormalised. The last two
    passes are never skipped: the final approximation reads an orthonormal basis.

    In adaptive mode on a matrix whose passes cost much more than the small steps
    (``union_ok``), a long-side pass may end the run with the best approximation in the span
    of its block and the one before (:class:`_KrylovUnion`), at no extra pass: on dense
    float32 matrices it ends the run a pass earlier on fast-decaying spectra and with about
    a quarter of the excess error over the optimum.
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
    skip = normalizer in ("auto", "QR") and bool(norm2)
    long_right = op.shape[0] >= op.shape[1]
    max_cond = 0.1 / math.sqrt(float(np.finfo(sketch.dtype).eps))
    raw_scale = _raw_scale((norm2 or 0.0) / sketch.energy_factor)
    raw: _RawBlock | None = None  # set while X is an unnormalised product
    # The best approximation in the span of the last blocks (see _KrylovUnion).
    union = _KrylovUnion(sketch.dtype, xp) if adaptive and not mixed and union_ok else None
    while True:
        final = passes == total - 1
        if adaptive and mixed and not final and rule.stop(ahead=1):
            # The full-precision pass that ends the run is one more half-step of progress.
            final = True
        current = op if (final and mixed) else sketch
        if current is not sketch:
            X = orth(X.astype(op.dtype), xp)
            raw = None
        elif final and normalizer not in ("auto", "QR"):
            # The last pass's approximation (A X X^H or X X^H A, see _from_pass) is a
            # projection only for an orthonormal X; "LU" and "none" leave X merely well
            # scaled, and reading their X as orthonormal inflated the singular values.
            X = orth(X, xp)
        product = current.mm(X) if right else current.rmm(X)
        passes += 1
        if raw is not None:
            # product = A^H Y (or A Y) for the unnormalised Y = raw.Y: orthonormalise this
            # short side only, with one Cholesky QR whose condition number is checked.
            checked = cholqr_checked(product, xp, max_cond)
            if checked is None:
                skip = False  # ill-conditioned: every product is orthonormalised from now on
                basis, R = orth(product, xp, return_r=True, passes=1)
            else:
                basis, R = checked
            if adaptive:
                # Ritz values of P_Y A (P_Y the projection on span(Y)): singular values of
                # R R_Y^-1, since Q_Y^H A = R_Y^-H product^H for Y = Q_Y R_Y.
                energy, rate = _ritz_readings(R @ _triangular_inverse(raw.R, xp), k, xp)
                rule.add(norm2 - energy * current.energy_factor, rate)
                if not mixed and rule.stop():
                    result = _raw_result(raw, product, right, xp)
                    break
            raw = None
        elif skip and not final and right == long_right and (mixed or passes != total - 1):
            if raw_scale != 1.0:
                product *= product.dtype.type(raw_scale)
            if adaptive:
                R_Y = _cholesky_upper(conj_t(product) @ product, xp)
                s = None if R_Y is None else to_numpy(small_svd(R_Y, xp, compute_uv=False))
                keep = s is not None and s[-1] > 0 and s[0] <= math.sqrt(max_cond) * s[-1]
                if not keep:
                    # Checked before skipping, so this pass alone is orthonormalised: the
                    # first products of a random start often span a wider range of the
                    # spectrum than the converged ones.
                    basis, R = orth(product, xp, return_r=True, passes=1)
                    R = R / R.dtype.type(raw_scale)
                    result = (right, X, basis, R)
                    energy, rate = _ritz_readings(R, k, xp)
                else:
                    energy, rate = _energy_and_rate(s.astype(np.float64) / raw_scale, k)
                rule.add(norm2 - energy * current.energy_factor, rate)
                if union is not None:
                    union.add(X, product, raw_scale)
                    done = union.finish(rule, k, right, norm2, current.energy_factor, False)
                    if done is not None:
                        result = done
                        break
                if keep and not mixed and rule.stop():
                    basis, R = orth(product, xp, return_r=True, passes=2)
                    result = (right, X, basis, R / R.dtype.type(raw_scale))
                    break
                if keep and not mixed and rule.stop(ahead=1):
                    # Likely the last power step: the next pass must read an orthonormal
                    # basis to give a complete approximation (the CholQR1 of R_Y).
                    basis = product @ _triangular_inverse(R_Y, xp)
                elif keep:
                    raw = _RawBlock(product, R_Y)
                    basis = product
                elif not mixed and rule.stop():
                    break
            else:
                raw = _RawBlock(product, None)
                basis = product
        elif final or adaptive:
            # Intermediate passes only need a well-conditioned basis and the singular values
            # of R for the stopping rule; one Cholesky QR gives both (its loss of
            # orthogonality, eps * cond^2, is harmless there). The last pass gets CholeskyQR2.
            basis, R = orth(product, xp, return_r=True, passes=2 if final else 1)
            result = (right, X, basis, R)
            if adaptive:
                energy, rate = _ritz_readings(R, k, xp)
                rule.add(norm2 - energy * current.energy_factor, rate)
                if union is not None and right == long_right:
                    union.add(X, product, 1.0)
                    done = union.finish(rule, k, right, norm2, current.energy_factor, final)
                    if done is not None:
                        result = done
                        break
        else:
            # As above, one Cholesky QR suffices between passes, except for the basis the
            # last pass reads as orthonormal: half the cost of CholeskyQR2.
            basis = _normalize(product, xp, normalizer, passes=2 if passes == total - 1 else 1)
        if final:
            break
        if adaptive and not mixed and raw is None and rule.stop():
            break
        X = basis
        right = not right
    assert result is not None
    if union is not None:
        result = union.better(result, rule)
    return (*_from_pass(op, result, k), result)


class _RawBlock:
    """An unnormalised product ``Y = A X`` (``X`` orthonormal) passed on to the next pass.

    Skipping its orthonormalisation leaves the span, and so the approximation, unchanged in
    exact arithmetic: the next product ``A^H Y`` spans what ``A^H orth(Y)`` spans. The next
    block has condition number about ``cond(Y)**2``; its directions are resolved to
    ``eps * cond(Y)**2`` instead of ``eps * cond(Y)``, harmless while that stays small (the
    checks in :func:`_half_step_iteration`). ``R`` is the Cholesky factor of ``Y^H Y`` when
    the adaptive rule needed it (its singular values are the pass's Ritz values).
    """

    __slots__ = ("R", "Y")

    def __init__(self, Y: Any, R: Any | None) -> None:
        self.Y = Y
        self.R = R


# Short-side blocks whose span gives the adaptive iteration's approximation (see _KrylovUnion).
UNION_DEPTH = 2
# The union is formed only where a pass over A costs much more than it does: its Gram
# matrices and Ritz step take about 8 (m + n) l^2 flops, a pass 2 W l with W = nnz for a
# sparse A and m n otherwise; the union needs W >= _UNION_WORK * l * (m + n). On 4000 x 3000
# (l = 60) W is 3.6 times that, and the union costs a third of a pass; on sparse text (40000 x
# 30000, 1.4M non-zeros, l = 110) W is 60 times below it, and on matrices of a few hundred
# rows the fixed costs of the small steps outweigh the pass they may save.
_UNION_WORK = 8


def _union_pays(op: Operator, l: int) -> bool:
    """Whether :class:`_KrylovUnion` is worth forming on this operator (see _UNION_WORK)."""
    m, n = op.shape
    return union_pays(op.A.nnz if op.kind == "sparse" else m * n, m, n, l)


def union_pays(work: int, m: int, n: int, l: int) -> bool:
    """Whether a pass costing ``work`` entries (nnz, or m n) pays for the union's steps."""
    return work >= _UNION_WORK * l * (m + n)


class _KrylovUnion:
    """The best rank-k approximation of A in the span of the last two short-side blocks.

    Each long-side pass of :func:`_half_step_iteration` multiplies an orthonormal block
    ``X_i`` (n x l for tall A) by A, and its result ``A X_i X_i^H`` reads the last block
    only. The blocks of two such passes in a row span the block Krylov space
    ``[X, (A^H A) X]`` of the first, and both products with A are at hand: the projection on
    that space costs no pass, only the Gram matrices of the blocks and of their products
    (formed only where the run may end) and a Ritz step on 2l columns. On 4000 x 3000
    float32 matrices (k = 50, l = 60), after five passes it gave err/opt 1.0004 / 1.0039 /
    1.0056 against 1.0062 / 1.0075 / 1.026 for the last block alone (s_i = 0.97^i,
    (i + 1)^-0.5, 0.99^i); the three last blocks gained little more (1.0004 / 1.0029 /
    1.0055) for more than twice the cost.

    The two blocks are nearly parallel along the leading directions, so the union is
    ill-conditioned: the Gram matrix of ``W = [X_1, X_2]`` is diagonalised and the
    directions whose eigenvalue is below ``drop**2`` of the largest are left out
    (``drop = eps**(1/4)``, 0.018 in float32). With ``T`` from the kept eigenvectors, the
    products ``A W T`` carry the rounding of each ``A X_i`` magnified by at most
    ``1 / drop``, i.e. ``eps**(3/4) ||A||``: the reported error matched the true one to
    2e-7 in float32.
    """

    def __init__(self, dtype: Any, xp: types.ModuleType) -> None:
        self.xp = xp
        self.X: list = []
        self.Y: list = []
        self.scales: list[float] = []
        self.drop = float(np.finfo(dtype).eps) ** 0.25
        self.pending: tuple | None = None  # (error, T_k, right) of a union not taken

    def add(self, X: Any, Y: Any, scale: float) -> None:
        """Record the long-side product ``Y = scale * A X`` (or ``scale * A^H X``)."""
        if len(self.X) == UNION_DEPTH:
            del self.X[0], self.Y[0], self.scales[0]
        self.X.append(X)
        self.Y.append(Y)
        self.scales.append(scale)

    def finish(
        self, rule: _StopRule, k: int, right: bool, norm2: float, factor: float, final: bool
    ) -> tuple | None:
        """The pass result (see :func:`_from_pass`) of the union, if the run may end here.

        It ends where the last block's readings say so (``rule.stop()``), at the cap
        (``final``), or early where the union's own error is already as good as the readings
        let more passes hope for (:meth:`_StopRule.reached`). Otherwise the union is kept
        (``pending``): should the run end at the next, short-side pass, the better of the two
        approximations is returned (see :meth:`better`).
        """
        self.pending = None
        if len(self.X) < UNION_DEPTH or rule.floor_at is not None:
            return None
        if not (final or len(rule.errors) >= 4):
            # Four readings: on a wide A the union after the fourth pass may be returned
            # (see better) where the run ends after the fifth, a short-side pass.
            return None
        got = self._ritz(k)
        if got is None:
            return None
        energy, Tk = got
        error = norm2 - energy * factor
        if not (final or rule.stop() or rule.reached(error)):
            self.pending = (error, Tk, right)
            return None
        return self._result(Tk, right)

    def better(self, result: tuple, rule: _StopRule) -> tuple:
        """``result`` of a short-side pass that ended the run, or the pending union if better."""
        if self.pending is None or not rule.errors:
            return result
        error, Tk, right = self.pending
        self.pending = None
        return self._result(Tk, right) if error < rule.errors[-1] else result

    def _gram(self, blocks: list) -> np.ndarray:
        """``W^H W`` of ``W = [blocks]`` on the host, in double precision.

        Formed in the blocks' own precision: the readings only decide when to stop, and the
        final factors come from the blocks themselves (measured: float32 Gram matrices gave
        the same readings as double-precision ones to five digits of err/opt).
        """
        W = self.xp.concatenate(blocks, axis=1)
        G = to_numpy(conj_t(W) @ W)
        return G.astype(np.promote_types(G.dtype, np.float64))

    def _combine(self, blocks: list, parts: list) -> Any:
        """``sum_i blocks[i] @ parts[i]`` (the parts in memory, in the blocks' dtype)."""
        out = None
        for B, P in zip(blocks, parts, strict=True):
            term = B @ self.xp.asarray(P)
            out = term if out is None else out + term
        return out

    def _qr(self, Y: Any) -> tuple[Any, Any]:
        return orth(Y, self.xp, return_r=True)

    def _ritz(self, k: int) -> tuple[float, np.ndarray] | None:
        """Top-k energy of the union's projection, and the d x k map to its directions."""
        lam, V = np.linalg.eigh(self._gram(self.X))
        if not lam[-1] > 0.0:
            return None
        keep = lam > self.drop**2 * lam[-1]
        if int(np.count_nonzero(keep)) < k:
            return None
        T = V[:, keep] / np.sqrt(lam[keep])
        inv = np.concatenate(
            [np.full(X.shape[1], 1.0 / c) for X, c in zip(self.X, self.scales, strict=True)]
        )
        H = conj_t(T) @ (self._gram(self.Y) * np.outer(inv, inv)) @ T
        w, P = np.linalg.eigh((H + conj_t(H)) / 2)
        energy = float(np.sum(np.clip(w[::-1][:k], 0.0, None)))
        return energy, T @ P[:, ::-1][:, :k]

    def _result(self, Tk: np.ndarray, right: bool) -> tuple:
        """The pass result ``(right, Q, basis, R)``: ``A Q = basis R``, ``Q`` orthonormal."""
        dtype = self.Y[0].dtype
        bounds = np.cumsum([0] + [X.shape[1] for X in self.X])
        parts = [Tk[a:b] for a, b in itertools.pairwise(bounds)]
        Xu = self._combine(self.X, [P.astype(dtype) for P in parts])
        scaled = [(P / c).astype(dtype) for P, c in zip(parts, self.scales, strict=True)]
        B = self._combine(self.Y, scaled)
        # W T_k is orthonormal up to rounding; its QR makes it so, and B follows exactly.
        Q, Ru = self._qr(Xu)
        B = self._combine([B], [to_numpy(_triangular_inverse(Ru, self.xp)).astype(dtype)])
        basis, R = self._qr(B)
        return (right, Q, basis, R)


def _raw_scale(norm2: float) -> float:
    """A power of two bringing ``||A||_F`` near 1 for unnormalised products, or 1.0.

    ``A^H A X`` holds squares of A's scale and its Gram matrix fourth powers; for ordinary
    data they stay far inside the range and nothing is scaled.
    """
    if norm2 <= 0.0 or 2.0**-40 <= norm2 <= 2.0**40:
        return 1.0
    return float(np.ldexp(1.0, -round(math.log2(norm2) / 2)))


def _raw_result(raw: _RawBlock, product: Any, right: bool, xp: types.ModuleType) -> tuple:
    """The pass result (see _from_pass) of ``product = A^H Y`` (or ``A Y``), Y unnormalised.

    ``P_Y A = Q_Y Q_Y^H A`` with ``Y = Q_Y R_Y`` and ``A^H Q_Y = product R_Y^-1``: an
    orthonormal basis of Y and of that product give the usual ``(right, X, basis, R)``. The
    product's rounding, relative to ``||A|| ||Y||``, is magnified by at most ``cond(Y)``,
    which the checks keep small.
    """
    Q, R_Y = orth(raw.Y, xp, return_r=True)
    W = product @ _triangular_inverse(R_Y, xp).astype(product.dtype)
    basis, R = orth(W, xp, return_r=True)
    return (right, Q, basis, R)


def _from_pass(op: Operator, result: tuple, k: int) -> tuple[Any, Any, Any]:
    """The rank-k SVD of the approximation one pass gives (see _half_step_iteration)."""
    xp = op.xp
    right, X, basis, R = result

    if right:
        # A X X^H = basis R X^H
        u, s, wh = small_svd(R, xp)
        U = basis @ u[:, :k]
        Vt = wh[:k] @ conj_t(X)
    else:
        # X X^H A = X R^H basis^H
        u, s, wh = small_svd(conj_t(R), xp)
        U = X @ u[:, :k]
        Vt = wh[:k] @ conj_t(basis)
    return xp.ascontiguousarray(U), s[:k], xp.ascontiguousarray(Vt)


def _normalize(Y: Any, xp: types.ModuleType, normalizer: str, passes: int = 2) -> Any:
    if normalizer in ("auto", "QR"):
        return orth(Y, xp, passes=passes)
    if normalizer == "LU":
        return lu_normalize(Y, xp)
    # "none" keeps the block's directions (that is its point) but not its growth: each pass
    # multiplies it by about s[0], which overflows after a few passes on large data. A power
    # of two rescales exactly and changes nothing else.
    amax = float(xp.abs(Y).max())
    if amax == 0.0 or not np.isfinite(amax):
        return Y
    return Y * Y.dtype.type(np.ldexp(1.0, -int(np.frexp(amax)[1])))


def _block_krylov(
    op: Operator, Omega: Any, k: int, depth: int | None, max_depth: int, norm2: float | None
) -> tuple[Any, Any, Any]:
    """Basis ``Q`` of the block Krylov space [AΩ, (AA^H)AΩ, ..., (AA^H)^q AΩ], A^H Q, Q^H Q.

    The products ``A^H Q_i`` that build the space are exactly the rows of ``Q^H A`` needed
    for the final Rayleigh-Ritz step, so they are returned (a pass over A saved). Block by
    block, ``Q`` is orthonormal only to about ``eps * sqrt(m)`` per entry (the check in
    :func:`_extend_basis_gram`), and ``Q Q^H A`` is then off the true projection by that much
    times ``||A||``: in float32, 1e-5 of the norm, enough to spoil a small optimal error.
    The Gram matrix ``Q^H Q``, assembled from the blocks ``Q_{<i}^H Q_i`` that check computes
    (each block itself is orthonormal to working precision), lets :func:`_gram_ritz` make the
    projection exact instead of orthonormalising the whole basis again.
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
        rule.add(norm2 - _top_energy(R, k, xp) * op.energy_factor)
    else:
        Q = orth(op.mm(Omega), xp)
    blocks = [Q]
    grams: list[Any] = [None]
    products = []
    while True:
        Z = op.rmm(blocks[-1])
        products.append(Z)
        if adaptive:
            # Captured energy of the current space: top-k singular values of
            # (Q R^-1)^H A = R^-H Zt^H, Q^H Q = R^H R (the basis is orthonormal only to
            # sqrt(eps), see _extend_basis_gram).
            Zt_all = xp.concatenate(products, axis=1)
            H = Zt_all.conj().T @ Zt_all if op.complex else Zt_all.T @ Zt_all
            R = _cholesky_upper(_assemble_gram(blocks, grams, np.float64, xp), xp)
            if R is not None:
                Rinv = _triangular_inverse(R, xp)
                H = conj_t(Rinv) @ H.astype(Rinv.dtype) @ Rinv
            w = small_eigvalsh((H + conj_t(H)) / 2, xp)
            top = float(xp.sum(xp.sort(w)[::-1][:k].astype(np.float64)))
            rule.add(norm2 - top * op.energy_factor)
            # A Krylov step is a full iteration (two passes): the floor tail is halved.
            if rule.stop(ahead=2 if rule.floor_at is not None else 0):
                break
        level = len(blocks) - 1
        if level >= target:
            break
        basis = xp.concatenate(blocks, axis=1)
        if basis.shape[1] + Omega.shape[1] > m:
            break
        # Only the next product reads this basis (its block is made orthonormal to the
        # space below): one Cholesky QR suffices.
        Y = op.mm(orth(Z, xp, passes=1))
        block, C = _extend_basis_gram(Y, basis, xp, loose=True)
        if not block.shape[1]:
            # The Krylov space is invariant (A is exactly of low rank): nothing to add.
            break
        blocks.append(block)
        grams.append(C)
    Q = xp.concatenate(blocks, axis=1)
    Zt = products[0] if len(products) == 1 else xp.concatenate(products, axis=1)
    return Q, Zt, _assemble_gram(blocks, grams, np.float64, xp)


def _assemble_gram(blocks: list, grams: list, real: Any, xp: types.ModuleType) -> Any:
    """``Q^H Q`` of ``Q = [Q_0, Q_1, ...]`` (orthonormal blocks) from ``grams[i] = Q_{<i}^H Q_i``.

    In double precision (``real``; complex for complex blocks): the Cholesky factor of it
    corrects the projection, so it should carry no rounding of its own beyond the blocks'.
    """
    dtype = np.promote_types(blocks[0].dtype, real)
    d = sum(b.shape[1] for b in blocks)
    G = xp.eye(d, dtype=dtype)
    start = 0
    for block, C in zip(blocks, grams, strict=True):
        stop = start + block.shape[1]
        if C is not None:
            G[:start, start:stop] = C
            G[start:stop, :start] = conj_t(C)
        start = stop
    return G


def _gram_ritz(op: Operator, Q: Any, Zt: Any, G: Any, k: int) -> tuple[Any, Any, Any]:
    """The rank-k truncation of the projection of A on ``span(Q)``, given ``Zt = A^H Q``.

    ``Q`` need not be orthonormal: with ``G = Q^H Q = R^H R`` (Cholesky), ``Q R^-1`` is an
    orthonormal basis of the same span and ``A^H Q R^-1 = Zt R^-1``. ``G`` is near the
    identity (see :func:`_block_krylov`), so ``R`` is perfectly conditioned. Re-orthonormalising
    ``Q`` (m x d) and forming ``Zt R^-1`` (n x d) instead cost ``3 m d^2 + 2 n d^2`` flops: on
    a 40000 x 30000 TF-IDF matrix with a 660-column basis, more than every pass over A.

    The d x d problem is then reduced to the k directions kept: the Gram matrix
    ``H = R^-H Zt^H Zt R^-1``, accumulated in double precision, has the squared Ritz values
    as eigenvalues, each perturbed by rounding of at most about ``d eps_64 lambda_1``; its top
    k eigenvectors ``W`` pick the subspace, and the Ritz step runs on the n x k block
    ``Zt R^-1 W`` through its QR (orthonormal factors, values to ``eps s_1``). That replaces
    the QR of the whole n x d ``Zt`` (``6 n d^2`` flops) by one Gram matrix (``n d^2``)
    and ``O((m + n) d k)`` work. Rounding can only mix directions whose eigenvalues lie
    within that perturbation of each other or of zero, which moves a Ritz value by at most
    ``d eps_64 lambda_1 / (2 s_i)``; so the shortcut is taken only while ``lambda_k`` is at
    least ``_GRAM_SELECT * lambda_1`` (then ``s_i`` moves by under 1e-9 of ``s_1``), and
    otherwise (numerically rank-deficient input) ``Zt`` itself is factorised (see
    :func:`ritz_factors`): ``(Q R^-1)^H A = (Rz R^-1)^H Qz^H``.
    """
    xp = op.xp
    R = _cholesky_upper(G, xp)
    if R is None:  # not expected for a basis checked block by block; the safe route
        Q, Rq = orth(Q, xp, return_r=True)
        return _rayleigh_ritz(op, Q, k, Zt @ _triangular_inverse(Rq, xp))[:3]
    Rinv = _triangular_inverse(R, xp)
    d = Zt.shape[1]
    W = None
    if k < d:
        H = gram_double(Zt, xp)
        H = conj_t(Rinv) @ H @ Rinv
        lam, W = _small_eigh((H + conj_t(H)) / 2, xp)
        lam_host = lam if xp is np else lam.get()
        if not lam_host[-k] >= _GRAM_SELECT * max(float(lam_host[-1]), 0.0) > 0.0:
            W = None
    if W is not None:
        T = Rinv @ W[:, ::-1][:, :k]  # d x k, double precision
        Qz, Rz = orth(Zt @ T.astype(Zt.dtype), xp, return_r=True)
        u, s, wh = small_svd(conj_t(Rz), xp)
        U = Q @ (T @ u.astype(T.dtype)).astype(Q.dtype)
    else:
        Qz, Rz = orth(Zt, xp, return_r=True)
        u, s, wh = small_svd(conj_t(Rz @ Rinv.astype(Rz.dtype)), xp)
        U = Q @ (Rinv @ u[:, :k]).astype(Q.dtype)
    Vt = wh[:k] @ conj_t(Qz)
    return xp.ascontiguousarray(U), s[:k], xp.ascontiguousarray(Vt)


def _small_eigh(H: Any, xp: types.ModuleType) -> tuple[Any, Any]:
    """Eigen-decomposition (ascending) of a small Hermitian matrix, on the host."""
    if xp is np:
        return np.linalg.eigh(H)
    w, V = np.linalg.eigh(H.get())
    return xp.asarray(w), xp.asarray(V)


def extend_basis(Y: Any, Q: Any, xp: types.ModuleType) -> Any:
    """Orthonormal columns spanning what ``Y`` adds to the span of the orthonormal ``Q``.

    See :func:`_extend_basis_gram`, which also returns ``Q^H P`` for the columns ``P`` found.
    """
    return _extend_basis_gram(Y, Q, xp)[0]


def _extend_basis_gram(
    Y: Any, Q: Any, xp: types.ModuleType, loose: bool = False
) -> tuple[Any, Any | None]:
    """``P, Q^H P``: orthonormal columns spanning what ``Y`` adds to ``span(Q)``.

    Block Gram-Schmidt applied twice ("twice is enough"), normalised, and checked: the new
    columns must be orthogonal to ``Q`` to working precision. When the remainder is at the
    level of rounding (``Y`` inside ``span(Q)``: a Krylov space or a QB basis that has
    reached the rank of A), its normalised directions lean on ``span(Q)`` by O(1), and
    repeating the projection and normalisation does not help: a zero remainder has no
    direction at all, and Householder QR returns coordinate vectors that may lie inside
    ``span(Q)`` however often it is repeated (U came back with orthonormality error 0.6 and
    s = 9e162). Such directions are found by a rank-revealing step and dropped, so the result
    may have fewer columns than ``Y``, or none. A remainder that is small but genuine (in
    float32, 30 eps of ``Y``'s norm still improves block Krylov) is kept.

    The second value is the block ``Q^H P`` of the Gram matrix of ``[Q, P]`` (``None``
    without ``Q``): the check above computes it anyway, and with it a caller can make the
    projection on ``span([Q, P])`` exact without re-orthonormalising the whole basis (see
    :func:`_block_krylov`). Such a caller needs ``[Q, P]`` well conditioned, not orthonormal
    to working precision: with ``loose=True`` the projection runs once, and ``P`` is accepted
    while ``Q^H P`` stays below ``sqrt(eps)`` per entry (it usually does after one pass; a
    direction inside ``span(Q)`` leans on it by O(1) and still takes the path above).
    """
    has_q = Q is not None and Q.shape[1] > 0
    if has_q:
        QH = conj_t(Q)
        for _ in range(1 if loose else 2):
            Y = Y - Q @ (QH @ Y)
    if not Y.shape[1] or float(xp.abs(Y).max()) == 0.0:
        return Y[:, :0], (QH @ Y[:, :0] if has_q else None)
    P = orth(Y, xp)
    if not has_q:
        return P, None
    eps = float(np.finfo(Y.dtype).eps)
    limit = math.sqrt(eps) if loose else 2.0 * eps * math.sqrt(Y.shape[0])
    for _ in range(2):
        C = QH @ P
        if float(xp.abs(C).max()) <= limit:
            return P, C
        # Project again, then keep the directions that retain at least KEEP_FRACTION of their
        # length (those outside span(Q)); they become orthogonal to Q to 2 eps / KEEP_FRACTION.
        P = P - Q @ C
        P = P - Q @ (QH @ P)
        P, R = orth(P, xp, return_r=True)
        u, s, _ = small_svd(R, xp)
        keep = int(np.count_nonzero((s if xp is np else s.get()) > KEEP_FRACTION))
        if keep == 0:
            return P[:, :0], QH @ P[:, :0]
        P = orth(P @ u[:, :keep], xp)
    return P, QH @ P


def ritz_factors(op: Operator, Zt: Any) -> tuple[Any, Any, Any, Any]:
    """SVD of ``Q^H A`` from ``Zt = A^H Q`` (n x d): ``Q^H A = u diag(s) wh Qz^H``.

    Through the QR of ``Zt`` (not the Gram matrix ``Zt^H Zt``), so that small singular values
    stay accurate to ``eps * s[0]`` instead of ``sqrt(eps) * s[0]``; the d x d SVD that
    remains runs on the host.
    """
    xp = op.xp
    Qz, Rz = orth(Zt, xp, return_r=True)
    u, s, wh = small_svd(conj_t(Rz), xp)
    return Qz, u, s, wh


def ritz_svd(op: Operator, Q: Any, factors: tuple, k: int) -> tuple[Any, Any, Any]:
    """The rank-k truncation ``U, s, Vt`` of ``Q Q^H A`` from :func:`ritz_factors`."""
    xp = op.xp
    Qz, u, s, wh = factors
    QzH = conj_t(Qz)
    return xp.ascontiguousarray(Q @ u[:, :k]), s[:k], xp.ascontiguousarray(wh[:k] @ QzH)


def _rayleigh_ritz(op: Operator, Q: Any, k: int, Zt: Any | None = None) -> tuple[Any, ...]:
    """Best rank-k approximation of Q Q^H A: returns U, s, Vt and the basis of A^H Q."""
    if Zt is None:
        Zt = op.rmm(Q)  # n x d, equal to (Q^H A)^H
    factors = ritz_factors(op, Zt)
    return (*ritz_svd(op, Q, factors, k), factors[0])


def lanczos(op: Operator, k: int, rng: Any, solver_tol: float) -> tuple[Any, Any, Any] | None:
    """Delegate to scipy/cupyx ``svds``; None when it cannot serve (k too large, failure)."""
    xp = op.xp
    m, n = op.shape
    if k >= min(m, n):
        return None
    sc = scipy_namespace(xp)
    # svds must see the matrix op represents, scale * A, as every other path does: the
    # caller divides the singular values by the scale (entries near 1e150 or 1e-155 have
    # Gram matrices out of range otherwise). ARPACK needs more: it works on A^H A and takes
    # inner products of its vectors, fourth powers of A's scale, and on entries near 1e-149
    # (squares in range) it returned different wrong values from run to run; ``extra``
    # brings the scale near 1 for it.
    extra = _arpack_scale(op)
    A = op.A if op.scale == 1.0 and extra == 1.0 else _linear_operator(op, sc, extra)
    try:
        if xp is np:
            v0 = rng.standard_normal(min(m, n)).astype(op.dtype)
            # ARPACK runs on SciPy's BLAS between NumPy's products: one thread keeps its pool
            # from fighting NumPy's (see sparselin._threads).
            with scipy_blas_limited():
                U, s, Vt = sc.sparse.linalg.svds(A, k=k, tol=solver_tol, v0=v0)
        else:
            U, s, Vt = sc.sparse.linalg.svds(A, k=k, tol=solver_tol)
    except OperatorContractError:
        raise  # the user's operator is at fault, not the solver: no fallback hides it
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
    tol_orth = ENERGY_RESOLUTION * np.finfo(op.dtype).eps * max(m, n) ** 0.5
    if float(xp.abs(U.conj().T @ U - eye).max()) > tol_orth:
        return None
    s = s[order]
    return U, s / s.dtype.type(extra) if extra != 1.0 else s, Vt


def _arpack_scale(op: Operator) -> float:
    """A power of two that brings ``op``'s scale within 2**(maxexp / 8) of 1, for ARPACK.

    Read from one product with a fixed Gaussian vector (a fraction of a pass).
    """
    xp = op.xp
    y = op.mm(gaussian(np.random.default_rng(0), (op.shape[1], 1), op.dtype, xp))
    amax = float(xp.abs(y).max())
    limit = int(np.finfo(op.dtype).maxexp) // 8
    if amax == 0.0 or not np.isfinite(amax) or 2.0**-limit <= amax <= 2.0**limit:
        return 1.0
    return float(np.ldexp(1.0, -int(np.frexp(amax)[1])))


def _linear_operator(op: Operator, sc: types.ModuleType, extra: float = 1.0) -> Any:
    """``extra`` times ``op`` (with its scale) as a scipy/cupyx LinearOperator, for ``svds``."""
    if extra != 1.0:
        scaled = Operator(op.A, op.kind, op.xp, op.scale * extra)
        scaled.dtype, scaled.complex = op.dtype, op.complex
        op = scaled
    return sc.sparse.linalg.LinearOperator(
        op.shape,
        matvec=lambda x: op.mm(x.reshape(-1, 1)).ravel(),
        rmatvec=lambda y: op.rmm(y.reshape(-1, 1)).ravel(),
        matmat=op.mm,
        rmatmat=op.rmm,
        dtype=op.dtype,
    )


def fixed_rank(
    op: Operator,
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
        sketch = sketch_operator(op, sketch_dtype, norm2=norm2)
    Omega = gaussian(rng, (n, l), sketch.dtype, xp)
    max_iter = _auto_max_iter(k, m, n)
    if method == "block_krylov":
        # The depth cap: Krylov needs about half the iterations of subspace iteration.
        Q, Zt, G = _block_krylov(sketch, Omega, k, iters, max(2, max_iter // 2), norm2)
        if sketch is not op:
            # A^H Q of the sketch's matrix (c A, in its precision), in op's units.
            Zt = Zt.astype(op.dtype) * op.dtype.type(np.sqrt(sketch.energy_factor))
        return _gram_ritz(op, Q, Zt, G, k)
    U, s, Vt, last = _half_step_iteration(
        op, sketch, Omega, k, iters, max_iter, normalizer, norm2, _union_pays(op, l)
    )
    if sketch is not op and norm2:
        err2 = max(norm2 - float(xp.sum(s.astype(np.float64) ** 2)), 0.0)
        if err2 < (ENERGY_RESOLUTION * float(np.finfo(sketch.dtype).eps)) ** 2 * norm2:
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
