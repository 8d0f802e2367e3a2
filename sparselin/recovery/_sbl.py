"""Sparse Bayesian learning by expectation-maximisation (Tipping 2001; Wipf & Rao 2004).

The model is ``Y = A X + N`` with Gaussian noise of variance ``sigma^2`` and a zero-mean
Gaussian prior on each row of ``X`` with its own variance ``gamma_n`` (shared by the columns
of ``X`` when several signals are given: multiple measurement vectors). The variances are fitted
by EM: the E-step is the Gaussian posterior of ``X`` given ``gamma`` and ``sigma^2``, the
M-step sets ``gamma_n = mean_l |mu_nl|^2 + Sigma_nn``. Most ``gamma_n`` go to zero, and the
posterior mean is sparse.

This module also holds what the Kronecker-structured version (``_kronecker_sbl``) shares with
it: the result object, validation of the common arguments, the noise update, the pruning rule
and the stopping rule, so that the two differ only in their E- and M-steps.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .._array import conj_t, namespace, result_dtype
from .._validation import check_int, check_real
from ._checks import check_problem
from ._omp_gpu import pow2_exponents

__all__ = ["SBLResult", "sbl"]


@dataclass
class SBLResult:
    """What :func:`sbl` and :func:`kronecker_sbl` return.

    Attributes
    ----------
    coef : array of shape (n_features,) or (n_features, n_signals)
        The posterior mean of ``x`` (zero on pruned coordinates), the estimate.
    gamma : array of shape (n_features,)
        The fitted prior variances (for :func:`kronecker_sbl`, their Kronecker product).
    noise_var : float
        The noise variance, learned or as given.
    n_iter : int
        EM iterations run.
    converged : bool
        Whether the relative change of ``gamma`` fell below ``tol`` before ``max_iter``.
    cost : list of float
        The type-II negative log-likelihood ``L log|Sigma_y| + tr(Y^H Sigma_y^-1 Y)`` (up to
        constants) at the start of each iteration; EM never increases it.
    gammas : list of arrays
        The per-factor variances ``gamma_i`` (:func:`kronecker_sbl` only; empty for
        :func:`sbl`), with ``gamma = gamma_1 ⊗ ... ⊗ gamma_I``.
    """

    coef: Any
    gamma: Any
    noise_var: float
    n_iter: int
    converged: bool
    cost: list[float] = field(default_factory=list)
    gammas: list[Any] = field(default_factory=list)


def check_options(
    noise_var: Any, max_iter: Any, tol: Any, prune: Any
) -> tuple[float | None, int, float, float]:
    """The options :func:`sbl` and :func:`kronecker_sbl` share, checked."""
    if noise_var is not None:
        noise_var = check_real(noise_var, "noise_var", low=0.0, low_open=True)
    max_iter = check_int(max_iter, "max_iter", low=1)
    tol = check_real(tol, "tol", low=0.0, low_open=True)
    prune = check_real(prune, "prune", low=0.0, high=1.0, high_open=True)
    return noise_var, max_iter, tol, prune


def work_dtype(*dtypes: Any) -> tuple[np.dtype, np.dtype]:
    """(computation dtype, output dtype).

    EM drives most variances towards zero and the others' posteriors become nearly
    deterministic; single precision loses the small ones to rounding long before convergence,
    so the iteration always runs in double precision, and the results are returned in the
    inputs' precision (float32 in, float32 out).
    """
    out = result_dtype(np.result_type(*[result_dtype(d) for d in dtypes]))
    work = np.dtype(np.complex128) if out.kind == "c" else np.dtype(np.float64)
    return work, out


def initial_noise_var(y: Any, xp: Any) -> float:
    """Starting noise variance when it is learned: a tenth of the mean power of ``y``."""
    power = float(xp.mean(xp.abs(y) ** 2))
    return 0.1 * power if power > 0 else 1.0


# A column whose norm is below this fraction of the largest column's is treated as zero: it is
# made of rounding errors (a pilot pattern that cancels a steering vector, say), and giving it
# the variance its norm calls for (see initial_gamma) would amplify them.
_ZERO_COLUMN = 1e3 * float(np.finfo(np.float64).eps)


def nonzero_columns(col2: Any, xp: Any) -> Any:
    """Indices of the columns (squared norms ``col2``) that are not numerically zero."""
    top = float(xp.max(col2)) if col2.size else 0.0
    return xp.nonzero(col2 > _ZERO_COLUMN**2 * top)[0]


def initial_gamma(col2: Any, m: int, xp: Any, power: float = 0.0, n_total: int = 1) -> Any:
    """Starting variances ``gamma_j = c / ||a_j||^2``, scaled with the columns, so that EM's
    whole trajectory, not only its pruning rule, is the same whatever the columns' scale.

    ``c = power / n_total`` when the signal power ``power = ||Y||^2 / L`` is given (positive):
    the prior then predicts the observed power (``sum_j gamma_j ||a_j||^2 = power`` over the
    ``n_total`` coordinates), and the iteration is also the same whatever the scale of ``y``.
    For KroSBL, starting near the data's scale matters: from variances far above it (the
    reference codes start from 1 in whatever units the data come in) EM needs several times
    more iterations, or stops at the authors' cap before it prunes anything; classic SBL
    spreads the power over a few coordinates only (``_CLASSIC_SPAN``), starting above it.
    For a zero ``y``, ``c = m``: 1 for columns of i.i.d. unit-variance entries, the
    reference codes' start.
    """
    c = power / n_total if power > 0 else m
    return c / col2


def unit_exponent(X: Any, xp: Any) -> int:
    """``e`` such that ``X 2^-e`` has its largest magnitude in ``[0.5, 1)`` (0 for zero
    ``X``), clamped to float64's normal range: EM runs on data scaled by ``2^-e`` (exact)."""
    return int(pow2_exponents(np.array([float(xp.max(xp.abs(X)))]), np.float64, np)[0])


def scaled_noise_var(noise_var: float | None, ey: int) -> float | None:
    """A given noise variance in the units of ``y 2^-ey`` (checked to stay in range)."""
    if noise_var is None:
        return None
    scaled = math.ldexp(noise_var, -2 * ey)
    if not scaled > 0.0 or not math.isfinite(scaled):
        raise ValueError(
            f"noise_var={noise_var:g} is out of range for the scale of y (it under- or "
            "overflows once y is brought near 1); rescale y and noise_var together"
        )
    return scaled


def relative_change(new: Any, old: Any, xp: Any) -> float:
    """``||new - old|| / ||old||`` (the outer stopping rule of the reference EM codes)."""
    den = float(xp.linalg.norm(old))
    return float(xp.linalg.norm(new - old)) / den if den > 0 else 0.0


def warn_not_converged(name: str, max_iter: int, change: float, tol: float) -> None:
    warnings.warn(
        f"{name} stopped after max_iter={max_iter} EM iterations before converging (relative "
        f"change of gamma {change:.3g} > tol={tol:g}); increase max_iter or tol",
        ConvergenceWarning,
        stacklevel=3,
    )


# Classic SBL's start spreads the observed power over this many coordinates (see _sbl_core):
# the reference start (gamma = 1 for unit-variance columns) for x with 16 unit nonzeros, as
# on the 256 x 4096 Kronecker benchmark (4 x 4 products of unit normals), where the start is
# then the reference one on average. Measured against the reference start (8 draws each on
# Gaussian problems from 30 x 80 to 128 x 512 with 3 to 20 nonzeros, 10/20/30 dB): median
# NMSE within 20% either way, in as many or fewer iterations.
_CLASSIC_SPAN = 16

# Noise variance is kept above this fraction of the signal power: with as many active
# coordinates as measurements EM can drive it to zero, and the E-step then divides by it.
_NOISE_FLOOR = 1e-12


def sbl(
    A: Any,
    y: Any,
    *,
    noise_var: float | None = None,
    max_iter: int = 500,
    tol: float = 1e-4,
    prune: float = 1e-3,
) -> SBLResult:
    """Sparse Bayesian learning: sparse ``x`` with ``y ≈ A x`` by EM on the prior variances.

    Classic EM-SBL (Tipping 2001; Wipf & Rao 2004) for real or complex data and one or several
    measurement vectors that share a support (the columns of ``y``). Each iteration computes
    the Gaussian posterior of ``x`` (the E-step) through a Cholesky factorisation on whichever
    side of ``A`` is smaller, ``m x m`` (``sigma^2 I + A Γ A^H``) or ``n x n`` (``I + Γ^½ A^H A
    Γ^½ / sigma^2``), then sets each variance to its posterior second moment (the M-step).

    Parameters
    ----------
    A : array of shape (m, n)
        The dictionary (NumPy or CuPy, real or complex). Columns need not be normalised.
    y : array of shape (m,) or (m, L)
        One measurement vector, or ``L`` of them sharing one sparse support.
    noise_var : float, optional
        The noise variance ``sigma^2``. If None it is learned by EM, starting from a tenth of
        the mean power of ``y``.
    max_iter : int, default=500
        Maximum number of EM iterations; a ``ConvergenceWarning`` is raised if it is reached.
    tol : float, default=1e-4
        Stop when ``||gamma - gamma_old|| / ||gamma_old|| < tol``.
    prune : float in [0, 1), default=1e-3
        A coordinate is removed for good once its share of the signal power, ``gamma_j
        ||a_j||^2``, falls below ``prune`` times the largest share. Measured this way the rule
        does not depend on how the columns are scaled (``gamma_j`` scales as ``1/||a_j||^2``).
        0 disables pruning.

    Returns
    -------
    SBLResult
        ``coef`` (the posterior mean, shaped like ``A.T @ y``), ``gamma``, ``noise_var``,
        ``n_iter``, ``converged`` and the per-iteration ``cost``.

    Raises
    ------
    ValueError
        NaN/inf, shapes that do not match, a non-positive ``noise_var`` or out-of-range options.
    TypeError
        Sparse, dask or non-numeric input, NumPy and CuPy arrays mixed.

    See Also
    --------
    sparselin.kronecker_sbl : the same model with a Kronecker-structured dictionary and prior.

    References
    ----------
    M. E. Tipping, "Sparse Bayesian learning and the relevance vector machine", JMLR 1, 2001.
    D. P. Wipf, B. D. Rao, "Sparse Bayesian learning for basis selection", IEEE TSP 52(8),
    2004.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin import sbl
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((40, 100))
    >>> x = np.zeros(100); x[[3, 30, 70]] = [1.0, -2.0, 1.5]
    >>> res = sbl(A, A @ x + 0.01 * rng.standard_normal(40))
    >>> np.flatnonzero(np.abs(res.coef) > 0.1).tolist()
    [3, 30, 70]
    """
    A, Y, _ = check_problem(A, y, allow_2d_y=True, device=True)
    vector = Y.ndim == 1
    if vector:
        Y = Y[:, None]
    noise_var, max_iter, tol, prune = check_options(noise_var, max_iter, tol, prune)
    xp = namespace(A, Y)
    work, out = work_dtype(A.dtype, Y.dtype)
    # EM runs in units where y's and each column's largest entries are near 1, by powers of
    # two (exact: the iteration is equivariant under both scalings, so the result is the same
    # bits wherever the unscaled run neither over- nor underflows). At 1e-150 (y) or 1e150
    # (A) the posterior variances gamma - gamma^2 |b|^2 underflowed, and EM "converged"
    # after one iteration on a dense, wrong x.
    Aw, Yw = A.astype(work), Y.astype(work)
    real = np.finfo(work).dtype
    ey = unit_exponent(Yw, xp)
    ed = pow2_exponents(xp.max(xp.abs(Aw), axis=0), real, xp)
    Aw = Aw * xp.ldexp(xp.ones(ed.shape, dtype=real), (-ed).astype(xp.int32))
    Yw = Yw * math.ldexp(1.0, -ey)
    noise_var = scaled_noise_var(noise_var, ey)
    res = _sbl_core(Aw, Yw, noise_var, max_iter, tol, prune, xp)
    if not res.converged:
        warn_not_converged("sbl", max_iter, res._change, tol)
    real_out = np.finfo(out).dtype
    back = xp.ldexp(xp.ones(ed.shape, dtype=real), (ey - ed).astype(xp.int32))
    coef = (res.coef * back[:, None]).astype(out)
    gamma = res.gamma * back * back
    # log|Sigma_y| grows by m log(4^ey) with y; y^H Sigma_y^-1 y does not change.
    shift = Y.shape[1] * A.shape[0] * 2 * ey * math.log(2.0)
    return SBLResult(
        coef=coef[:, 0] if vector else coef,
        gamma=gamma.astype(real_out),
        noise_var=math.ldexp(res.noise_var, 2 * ey),
        n_iter=res.n_iter,
        converged=res.converged,
        cost=[c + shift for c in res.cost],
    )


@dataclass
class _CoreResult:
    coef: Any
    gamma: Any
    noise_var: float
    n_iter: int
    converged: bool
    cost: list[float]
    _change: float


def _posterior(A: Any, Y: Any, gamma: Any, s2: float, xp: Any) -> tuple[Any, Any, float]:
    """Posterior mean ``mu`` (n x L), ``diag(Sigma)`` (n,) and the type-II cost.

    The Cholesky factorisation runs on the smaller side of A: ``Sigma_y = s2 I + A Γ A^H``
    (m x m) when m <= n, else ``K = I + Γ^½ A^H A Γ^½ / s2`` (n x n), with
    ``Sigma = Γ^½ K^-1 Γ^½`` (no division by a variance that is going to zero) and the cost
    from the determinant lemma ``log|Sigma_y| = m log s2 + log|K|``.
    """
    m, n = A.shape
    L = Y.shape[1]
    AH = conj_t(A)
    if m <= n:
        Sy = (A * gamma[None, :]) @ AH
        Sy[xp.diag_indices(m)] += s2
        C = xp.linalg.cholesky(Sy)
        # The m x m triangular inverse once, then GEMMs: faster than a triangular solve with
        # n right-hand sides through NumPy's LU-based solve.
        Ci = xp.linalg.inv(C)
        B = Ci @ A  # C^-1 A
        z = Ci @ Y  # C^-1 Y
        BH = conj_t(B)
        mu = gamma[:, None] * (BH @ z)
        diag = gamma - gamma**2 * xp.sum(xp.abs(B) ** 2, axis=0)
        logdet = 2.0 * float(xp.sum(xp.log(xp.diagonal(C).real)))
        cost = L * logdet + float(xp.sum(xp.abs(z) ** 2))
        return mu, xp.maximum(diag, 0.0), cost
    g = xp.sqrt(gamma)
    K = (AH @ A) * (g[:, None] * g[None, :] / s2)
    K[xp.diag_indices(n)] += 1.0
    C = xp.linalg.cholesky(K)
    Cinv = xp.linalg.solve(C, xp.eye(n, dtype=K.dtype))  # K^-1 = Cinv^H Cinv
    rhs = g[:, None] * (AH @ Y) / s2
    mu = g[:, None] * (conj_t(Cinv) @ (Cinv @ rhs))
    diag = gamma * xp.sum(xp.abs(Cinv) ** 2, axis=0)
    logdet = m * math.log(s2) + 2.0 * float(xp.sum(xp.log(xp.diagonal(C).real)))
    # y^H Sigma_y^-1 y = (||y||^2 - Re y^H A mu) / s2 by Woodbury.
    fit = float(xp.sum(xp.abs(Y) ** 2)) - float(xp.sum((Y.conj() * (A @ mu)).real))
    cost = L * logdet + fit / s2
    return mu, diag, cost


def prune_mask(share: Any, prune: float, xp: Any) -> Any:
    """Coordinates to keep: share of the signal power at least ``prune`` of the largest."""
    top = float(xp.max(share)) if share.size else 0.0
    if prune == 0.0 or top == 0.0:
        return share > 0 if top > 0 else xp.ones(share.shape, dtype=bool)
    return share >= prune * top


def update_noise(
    resid2: float, s2: float, gamma: Any, diag: Any, m: int, L: int, xp: Any, floor: float
) -> float:
    """EM update ``sigma^2 = (||Y - A mu||^2 / L + sigma^2 sum(1 - Sigma_nn/gamma_n)) / m``."""
    active = gamma > 0
    dof = float(xp.sum(1.0 - diag[active] / gamma[active]))
    return max((resid2 / L + s2 * dof) / m, floor)


def _sbl_core(
    A: Any,
    Y: Any,
    noise_var: float | None,
    max_iter: int,
    tol: float,
    prune: float,
    xp: Any,
    data_init: bool = False,
) -> _CoreResult:
    """EM-SBL on validated double-precision input (no checks)."""
    m, n = A.shape
    L = Y.shape[1]
    learn = noise_var is None
    s2 = initial_noise_var(Y, xp) if learn else float(noise_var)
    floor = _NOISE_FLOOR * max(float(xp.mean(xp.abs(Y) ** 2)), np.finfo(np.float64).tiny)
    col2 = xp.sum(xp.abs(A) ** 2, axis=0)
    keep = nonzero_columns(col2, xp)  # a zero column carries no signal
    gamma = xp.zeros(n, dtype=np.float64)
    # kronecker_sbl starts at the power of y (see initial_gamma). Classic SBL starts well
    # above it, as the reference codes' gamma = 1 does for unit-variance columns and signals
    # of a few unit nonzeros: from the power matched over all n coordinates it was 20 times
    # faster on the 256 x 4096 benchmark but stopped early at worse points (median NMSE
    # 6.7e-2 against 2.0e-2). The start is the power spread over _CLASSIC_SPAN coordinates,
    # which scales with y: the reference start (gamma = m / ||a_j||^2 whatever y) did not,
    # and for y 100 times larger EM settled at once on "everything is noise" and reported
    # convergence (1 of 3 atoms found at 100 y, none at 1000 y).
    power = float(xp.sum(xp.abs(Y) ** 2)) / L
    span = n if data_init else min(_CLASSIC_SPAN, n)
    gamma[keep] = initial_gamma(col2[keep], m, xp, power, span)
    costs: list[float] = []
    converged = False
    change = float("inf")
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (it is reported after the loop)
        Ak, gk = A[:, keep], gamma[keep]
        mu, diag, cost = _posterior(Ak, Y, gk, s2, xp)
        costs.append(cost)
        new = xp.mean(xp.abs(mu) ** 2, axis=1) + diag
        if learn:
            resid = Y - Ak @ mu
            s2 = update_noise(float(xp.sum(xp.abs(resid) ** 2)), s2, gk, diag, m, L, xp, floor)
        old = gamma.copy()
        gamma[keep] = new
        change = relative_change(gamma, old, xp)
        mask = prune_mask(new * col2[keep], prune, xp)
        if not bool(mask.all()):
            gamma[keep[~mask]] = 0.0
            keep = keep[mask]
        if change < tol:
            converged = True
            break
    # A last E-step on the final (pruned) model, so that coef matches gamma.
    coef = xp.zeros((n, L), dtype=A.dtype)
    if keep.size:
        mu, _, _ = _posterior(A[:, keep], Y, gamma[keep], s2, xp)
        coef[keep] = mu
    return _CoreResult(coef, gamma, float(s2), it, converged, costs, change)
