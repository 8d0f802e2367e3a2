"""Kronecker-structured sparse Bayesian learning (KroSBL; He & Joseph, IEEE TSP 2024).

The dictionary is ``A = A_1 ⊗ A_2 ⊗ ... ⊗ A_I`` and the prior variances are
``gamma = gamma_1 ⊗ ... ⊗ gamma_I``. Nothing of size ``prod(M_i) x prod(N_i)`` is ever formed:

* vectors are handled as tensors of shape ``(N_1, ..., N_I)`` (row-major, the order of
  ``numpy.kron``: the last factor's index runs fastest), and ``A x`` is the mode-wise product
  ``x ×_1 A_1 ×_2 A_2 ... ×_I A_I``;
* the E-step uses ``A Γ A^H = ⊗_i (A_i Γ_i A_i^H)``: with the eigendecompositions
  ``A_i Γ_i A_i^H = U_i diag(p_i) U_i^H`` of the small factor matrices,
  ``Sigma_y^-1 = (⊗U_i) diag(1 / (sigma^2 + ⊗p_i)) (⊗U_i)^H``. With ``G_i = Γ_i A_i^H U_i``
  the posterior mean is ``mu = (⊗G_i) [v ∘ (⊗U_i^H) y]`` with ``v = 1 / (sigma^2 + ⊗p_i)``,
  and the posterior variances are ``diag(Sigma) = gamma - (⊗|G_i|^2) v`` (entrywise squares:
  ``|⊗G_i|^2 = ⊗|G_i|^2``), both by mode-wise products, without the ``N x N`` covariance.

An iteration costs ``O(sum M_i^3)`` for the eigendecompositions plus mode products of about
``O(N max M_i + M max N_i)``; memory is ``O(sum M_i N_i + N + M)``.

The M-step minimises ``sum_n log gamma_n + Lambda_n / gamma_n`` (``Lambda = diag(Sigma) +
|mu|^2``) over Kronecker-structured ``gamma``: exactly, by alternating over the factors
(``method="am"``: each factor's update is that block's exact minimiser, so the cost never
increases), or approximately, by the nearest rank-one (Kronecker) fit of ``Lambda`` through
sequential SVDs of its unfoldings (``method="svd"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Any, Literal

import numpy as np
from scipy.optimize import nnls

from .._array import conj_t, namespace, to_numpy
from .._threads import host_blas_limited
from .._validation import check_int, check_real
from ._checks import check_dictionary, check_signal
from ._sbl import (
    _NOISE_FLOOR,
    SBLResult,
    check_options,
    initial_gamma,
    initial_noise_var,
    nonzero_columns,
    prune_mask,
    relative_change,
    scaled_noise_var,
    unit_exponent,
    update_noise,
    warn_not_converged,
    work_dtype,
)

__all__ = ["kron_matvec", "kronecker_sbl"]

_METHODS = ("svd", "am")
_DEFAULT_PRUNE = {"svd": 1e-3, "am": 1e-2}
# Inner alternating minimisation (method="am"): relative change of the factors, and a cap.
_INNER_TOL = 1e-6
_INNER_MAX_ITER = 50
# Pattern coupling (PC-KroSBL): the coupling the authors found best (they also ran 0.5), and
# the floor added to the coupled variances, relative to their norm (the authors add 1e-5 to
# variances normalised to unit norm; relative, it does not depend on the data's scale).
PAPER_COUPLING = 0.8
_COUPLED_FLOOR = 1e-5
# Top singular pair of the unfolded Lambda by power iteration from the previous factor: stop
# at this change of the (unit) vector; an SVD takes over if it has not settled by the cap.
_POWER_TOL = 1e-13
_POWER_MAX_ITER = 60


def mode_products(T: Any, mats: Sequence[Any], xp: Any) -> Any:
    """``T ×_1 mats[0] ×_2 mats[1] ...``: each matrix applied along its mode of ``T``.

    ``T`` has one axis per matrix and optionally trailing axes (several signals), which are
    carried along. ``mats[i]`` of shape ``(P_i, Q_i)`` maps axis ``i`` from ``Q_i`` to ``P_i``.

    Each step multiplies the leading axis (one GEMM on the unfolding) and rotates it to the
    back, so that after ``I`` steps the axes are back in order: one copy per mode, and far
    less per-call overhead than ``tensordot`` + ``moveaxis`` on the small tensors of an EM
    iteration.
    """
    I = len(mats)
    n_rest = T.ndim - I
    for M in mats:
        shape = T.shape
        T = (M @ T.reshape(shape[0], -1)).reshape((M.shape[0], *shape[1:]))
        T = T.transpose((*range(1, T.ndim), 0))
    if n_rest:  # axes now (rest..., P_1, ..., P_I)
        T = T.transpose((*range(n_rest, n_rest + I), *range(n_rest)))
    return T


def kron_matvec(factors: Sequence[Any], x: Any) -> Any:
    """Apply the Kronecker product of the factors to ``x`` without forming it.

    Computes ``(A_1 ⊗ ... ⊗ A_I) @ x``; ``x`` has ``prod(N_i)`` rows (one or several
    columns), ordered as ``numpy.kron`` orders them (the last factor's index runs fastest).

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.recovery import kron_matvec
    >>> rng = np.random.default_rng(0)
    >>> A1, A2 = rng.standard_normal((3, 4)), rng.standard_normal((2, 5))
    >>> x = rng.standard_normal(20)
    >>> bool(np.allclose(kron_matvec([A1, A2], x), np.kron(A1, A2) @ x))
    True
    """
    xp = namespace(*factors, x)
    shape_in = tuple(A.shape[1] for A in factors)
    shape_out = tuple(A.shape[0] for A in factors)
    if x.shape[0] != math.prod(shape_in):
        raise ValueError(
            f"x must have prod(N_i) = {math.prod(shape_in)} rows for factors with "
            f"{shape_in} columns, got shape {x.shape}"
        )
    rest = x.shape[1:]
    T = mode_products(x.reshape(shape_in + rest), factors, xp)
    return T.reshape((math.prod(shape_out), *rest))


def kronecker_sbl(
    factors: Sequence[Any],
    y: Any,
    *,
    method: Literal["svd", "am"] = "svd",
    block_sizes: Sequence[int] | None = None,
    coupling: bool | float | Sequence[float] | None = None,
    noise_var: float | None = None,
    max_iter: int = 500,
    tol: float = 1e-4,
    prune: float | Sequence[float] | None = None,
    init_scale: float = 1.0,
) -> SBLResult:
    """Sparse recovery with a Kronecker-structured dictionary and prior (KroSBL).

    Solves ``y = (A_1 ⊗ ... ⊗ A_I) x + n`` for ``x`` whose support is Kronecker-structured
    (``x = x_1 ⊗ ... ⊗ x_I`` up to values: the support is a product of per-factor supports),
    by EM on a Gaussian prior with variances ``gamma = gamma_1 ⊗ ... ⊗ gamma_I``. Neither the
    Kronecker dictionary nor the posterior covariance is formed (see the module notes): an
    iteration costs about ``sum M_i^3`` plus mode-wise products with the factors.

    Parameters
    ----------
    factors : sequence of I arrays, shapes (M_i, N_i)
        The dictionary factors (NumPy or CuPy, real or complex), ``I >= 1``; ``I = 1`` is
        classic SBL.
    y : array of shape (prod M_i,) or (prod M_i, L)
        The measurements, ordered as ``numpy.kron(A_1, ..., A_I) @ x`` orders them (the last
        factor's row index runs fastest); ``L`` signals share one support.
    method : {"svd", "am"}, default="svd"
        The M-step. ``"am"``: alternating minimisation over the factors ``gamma_i``, each
        update the exact minimiser of the EM objective over that factor, repeated until the
        factors settle; the type-II cost never increases (He & Joseph's AM-KroSBL, with its
        convergence guarantee). ``"svd"``: the unstructured EM update ``Lambda`` reshaped and
        approximated by its nearest Kronecker (rank-one) product through sequential SVDs of
        its unfoldings (SVD-KroSBL); cheaper, not monotone, and the more accurate of the two
        in the authors' experiments.
    block_sizes : sequence of I ints, optional
        Block sparsity: within factor ``i``, consecutive runs of ``block_sizes[i]`` entries
        share one variance (the last block may be shorter), so the support of ``x_i`` is a
        union of blocks (clustered angles in channel estimation). Pruning removes whole blocks.
        1 (the default for every factor) is the plain model. The blocks are fixed in advance;
        for clusters of unknown position and width use ``coupling``.
    coupling : bool, float or sequence of I floats in [0, 1], optional
        Pattern-coupled block sparsity (PC-KroSBL, the authors' block-sparse extension after
        Fang et al.'s PC-SBL): in factor ``i`` the variance of entry ``j`` is
        ``gamma_i[j] = g[j] + beta_i (g[j-1] + g[j+1])`` for non-negative ``g``, so that
        neighbouring entries are switched on together and the support of ``x_i`` forms
        clusters wherever they are. The M-step fits ``g`` by non-negative least squares to the
        factor's update (exactly as the authors' ``kroSBL_am_pc``), then adds a floor of
        ``1e-5`` relative to the norm. ``beta_i = 0`` leaves factor ``i`` plain; a float
        applies to every factor; True means the authors' ``beta = 0.8`` on every factor (they
        also ran 0.5, slightly worse). With coupling the AM cost is no longer guaranteed to
        decrease (the NNLS fit is not the exact minimiser). A factor cannot have both
        ``coupling`` and ``block_sizes``. Default: no coupling.
    noise_var : float, optional
        The noise variance; learned by EM when None.
    max_iter : int, default=500
        Maximum EM iterations (a ``ConvergenceWarning`` if reached). EM slows down as the
        number of unknowns grows past the number of measurements; it starts from variances
        that match the power of ``y`` (see the user guide), from where a few tens of
        iterations usually suffice, but the cap leaves room for the harder cases.
    tol : float, default=1e-4
        Stop when the relative change of ``gamma`` is below ``tol``.
    prune : float in [0, 1) or sequence of I such floats, optional
        Per factor, entries (blocks) whose share ``gamma_i[j] ||A_i[:, j]||^2`` falls below
        ``prune`` (or ``prune[i]``) times the factor's largest share are removed, with their
        columns; the rule does not depend on the columns' scale. 0 disables pruning.
        Default: 1e-2 for "am" and 1e-3 for "svd", the authors' values (AM's variances
        decay slowly, and the entries it keeps too long slow it down and spread its
        estimate).
    init_scale : float > 0, default=1.0
        The starting variances, as a multiple of those that match the power of ``y``
        (``gamma_j ||a_j||^2 = ||y||^2 / prod N_i``, see the user guide); like the rest of
        the iteration, this does not depend on the units of ``y`` or of the columns. Below 1,
        EM starts from a prior that shrinks hard: the variances of the columns that correlate
        most with ``y`` grow first, which favours compact supports and, with ``coupling``,
        clusters. The authors' IRS-MIMO code starts at ``gamma = 1`` in units where the
        channel variances are near 1e6, which is 1e-4 to 1e-2 of this scale; there
        ``init_scale=3e-3`` (picked on draws apart from the evaluation's) reproduces their
        PC-KroSBL figures, where the power-matched start spreads the estimate over the grid
        (see the user guide). From too far below (1e-3 at 4 dB there) EM has not grown the
        variances within the usual 150 iterations.

    Returns
    -------
    SBLResult
        ``coef`` (``x`` estimate, length ``prod N_i``, or ``(prod N_i, L)``), ``gamma`` (the
        Kronecker product of ``gammas``), ``gammas`` (per factor, normalised so that all but
        the last have unit norm; for a coupled factor, the coupled variances),
        ``noise_var``, ``n_iter``, ``converged`` and the per-iteration type-II ``cost``.

    Raises
    ------
    ValueError
        Factor shapes whose row counts do not multiply to ``len(y)``, NaN/inf, a non-positive
        ``noise_var``, ``block_sizes`` or ``coupling`` of the wrong length or out of range,
        both on one factor, a non-positive ``init_scale``, bad options.
    TypeError
        Sparse, dask or non-numeric input, NumPy and CuPy arrays mixed; ``factors`` not a
        sequence of arrays.

    See Also
    --------
    sparselin.sbl : classic SBL on an explicit dictionary.

    References
    ----------
    Y. He, G. Joseph, "Bayesian algorithms for Kronecker-structured sparse vector recovery
    with application to IRS-MIMO channel estimation", IEEE TSP, 2024 (arXiv:2307.14719).

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin import kronecker_sbl
    >>> rng = np.random.default_rng(0)
    >>> A1, A2 = rng.standard_normal((12, 30)), rng.standard_normal((12, 30))
    >>> x1, x2 = np.zeros(30), np.zeros(30)
    >>> x1[[2, 17]], x2[[5, 22]] = [1.0, -1.5], [2.0, 1.0]
    >>> x = np.kron(x1, x2)
    >>> y = np.kron(A1, A2) @ x + 1e-3 * rng.standard_normal(144)
    >>> res = kronecker_sbl([A1, A2], y)
    >>> bool(np.linalg.norm(res.coef - x) < 1e-2 * np.linalg.norm(x))
    True

    Clustered supports (three neighbouring entries in each factor) with pattern coupling:

    >>> x1, x2 = np.zeros(30), np.zeros(30)
    >>> x1[10:13], x2[4:7] = [1.0, -1.2, 0.8], [0.9, 1.5, -1.0]
    >>> y = np.kron(A1, A2) @ np.kron(x1, x2) + 1e-2 * rng.standard_normal(144)
    >>> res = kronecker_sbl([A1, A2], y, method="am", coupling=True)
    >>> X = np.abs(res.coef.reshape(30, 30))
    >>> np.flatnonzero(X.max(axis=1) > 0.1).tolist(), np.flatnonzero(X.max(axis=0) > 0.1).tolist()
    ([10, 11, 12], [4, 5, 6])
    """
    if isinstance(factors, (str, bytes)) or not isinstance(factors, Sequence) or not factors:
        raise TypeError(
            "factors must be a non-empty sequence (list or tuple) of 2-D arrays, got "
            f"{type(factors).__name__}"
        )
    factors = [check_dictionary(A, f"factors[{i}]", device=True) for i, A in enumerate(factors)]
    M = math.prod(A.shape[0] for A in factors)
    Y = check_signal(y, M, allow_2d=True, device=True, rows_of="prod(M_i)")
    vector = Y.ndim == 1
    if vector:
        Y = Y[:, None]
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    I = len(factors)
    if prune is None:
        prune = _DEFAULT_PRUNE[method]
    if isinstance(prune, Sequence) and not isinstance(prune, (str, bytes)):
        if len(prune) != I:
            raise ValueError(f"prune must give one value per factor ({I}), got {prune!r}")
        prunes = [
            check_real(p, f"prune[{i}]", low=0.0, high=1.0, high_open=True)
            for i, p in enumerate(prune)
        ]
        noise_var, max_iter, tol, _ = check_options(noise_var, max_iter, tol, 0.0)
    else:
        noise_var, max_iter, tol, prune = check_options(noise_var, max_iter, tol, prune)
        prunes = [prune] * I
    if block_sizes is None:
        blocks = [1] * I
    else:
        if isinstance(block_sizes, (str, bytes)) or len(block_sizes) != I:
            raise ValueError(
                f"block_sizes must give one block size per factor ({I}), got {block_sizes!r}"
            )
        blocks = [
            check_int(b, f"block_sizes[{i}]", low=1, high=factors[i].shape[1])
            for i, b in enumerate(block_sizes)
        ]
    betas = _check_coupling(coupling, I)
    init_scale = check_real(init_scale, "init_scale", low=0.0, low_open=True)
    for i in range(I):
        if betas[i] > 0 and blocks[i] > 1:
            raise ValueError(
                f"factor {i} has both block_sizes[{i}]={blocks[i]} and coupling "
                f"{betas[i]:g}; use one or the other"
            )
    xp = namespace(*factors, Y)
    work, out = work_dtype(*(A.dtype for A in factors), Y.dtype)
    # An EM iteration is many small calls (M_i x M_i eigendecompositions, products with
    # M_i x N_i factors): OpenBLAS would split each over its pool, whose workers then
    # busy-wait between calls (the benchmark's 256 x 4096 two-factor run on a loaded 2-core
    # machine: 46 ms at the default two threads, 14 ms at one; never slower, paired).
    # EM runs on y and on each factor scaled by a power of two (exact; the iteration is
    # equivariant under both): at 1e+-150 the posterior variances underflowed (EM "converged"
    # after one iteration on a wrong x) or the eigensolver failed on overflowing Grams. A
    # factor is scaled as a whole, not per column: the SVD method's rank-one M-step is not
    # equivariant under per-column scaling.
    ey = unit_exponent(Y, xp)
    es = [unit_exponent(A, xp) for A in factors]
    noise_var = scaled_noise_var(noise_var, ey)
    with host_blas_limited(xp):
        core = _kronecker_sbl_core(
            [A.astype(work) * math.ldexp(1.0, -e) for A, e in zip(factors, es, strict=True)],
            Y.astype(work) * math.ldexp(1.0, -ey),
            method,
            blocks,
            betas,
            noise_var,
            max_iter,
            tol,
            prunes,
            xp,
            init_scale,
        )
    coef, gammas, s2, n_iter, converged, costs, change = core
    if not converged:
        warn_not_converged("kronecker_sbl", max_iter, change, tol)
    # Back to the units of y and of the factors: x scales as 2^(ey - sum e_i) and gamma as
    # its square, carried by the last factor (all but the last have unit norm), and
    # log|Sigma_y| moves by M log(4^ey).
    coef = coef * math.ldexp(1.0, ey - sum(es))
    gammas = list(gammas)
    gammas[-1] = gammas[-1] * math.ldexp(1.0, 2 * (ey - sum(es)))
    s2 = math.ldexp(s2, 2 * ey)
    shift = Y.shape[1] * M * 2 * ey * math.log(2.0)
    costs = [c + shift for c in costs]
    real_out = np.finfo(out).dtype
    gamma = gammas[0]
    for g in gammas[1:]:
        gamma = xp.kron(gamma, g)
    coef = coef.astype(out)
    return SBLResult(
        coef=coef[:, 0] if vector else coef,
        gamma=gamma.astype(real_out),
        noise_var=s2,
        n_iter=n_iter,
        converged=converged,
        cost=costs,
        gammas=[g.astype(real_out) for g in gammas],
    )


def _check_coupling(coupling: Any, I: int) -> list[float]:
    """One coupling ``beta_i`` in [0, 1] per factor (0: not coupled)."""
    if coupling is None or coupling is False:
        return [0.0] * I
    if coupling is True:
        return [PAPER_COUPLING] * I
    if isinstance(coupling, Real):
        return [check_real(coupling, "coupling", low=0.0, high=1.0)] * I
    if isinstance(coupling, (str, bytes)) or not isinstance(coupling, Sequence):
        raise TypeError(
            "coupling must be None, a bool, a number in [0, 1] or one such number per factor, "
            f"got {type(coupling).__name__}"
        )
    if len(coupling) != I:
        raise ValueError(f"coupling must give one value per factor ({I}), got {coupling!r}")
    return [check_real(b, f"coupling[{i}]", low=0.0, high=1.0) for i, b in enumerate(coupling)]


def _outer(vectors: Sequence[Any], xp: Any) -> Any:
    """The tensor ``v_1 ∘ v_2 ∘ ...`` (outer product), shape ``(len v_1, len v_2, ...)``."""
    T = vectors[0]
    for v in vectors[1:]:
        T = T[..., None] * v
    return T


def _block_mean(v: Any, ids: Any, xp: Any) -> Any:
    """Each entry replaced by the mean over its block (``ids``: block id of each entry)."""
    _, inverse = xp.unique(ids, return_inverse=True)
    inverse = inverse.reshape(-1)
    return (xp.bincount(inverse, weights=v) / xp.bincount(inverse))[inverse]


def _posterior(
    As: Sequence[Any], Yt: Any, gs: Sequence[Any], s2: float, xp: Any
) -> tuple[Any, Any, float]:
    """Posterior mean tensor, diag(Sigma) tensor and type-II cost, by mode-wise products."""
    L = Yt.shape[-1]
    Us, ps, Gs = [], [], []
    for A, g in zip(As, gs, strict=True):
        AH = conj_t(A)
        C = (A * g[None, :]) @ AH
        p, U = xp.linalg.eigh(C)
        UH = conj_t(U)
        Us.append(UH)
        ps.append(xp.maximum(p, 0.0))  # a PSD matrix's eigenvalues, rounding aside
        Gs.append(g[:, None] * (AH @ U))
    v = 1.0 / (s2 + _outer(ps, xp))
    rotated = mode_products(Yt, Us, xp)
    w = rotated * v[..., None]
    mu = mode_products(w, Gs, xp)
    gamma = _outer(gs, xp)
    diag = gamma - mode_products(v, [xp.abs(G) ** 2 for G in Gs], xp)
    cost = -L * float(xp.sum(xp.log(v))) + float(xp.sum(xp.abs(rotated) ** 2 * v[..., None]))
    return mu, xp.maximum(diag, 0.0), cost


def _coupling_matrix(n: int, beta: float) -> np.ndarray:
    """``C`` with ones on the diagonal and ``beta`` next to it (host; small, ``n x n``)."""
    C = np.eye(n)
    idx = np.arange(n - 1)
    C[idx, idx + 1] = beta
    C[idx + 1, idx] = beta
    return C


def _couple(target: Any, C: np.ndarray, xp: Any) -> Any:
    """Pattern-coupled variances nearest ``target``: ``C g + floor`` with ``g >= 0`` fitted
    to ``target`` by non-negative least squares (the authors' ``lsqnonneg`` step).

    ``C`` is small (one factor's kept entries), so the fit runs on the host.
    """
    g, _ = nnls(C, np.asarray(to_numpy(target), dtype=np.float64))
    eff = C @ g
    top = float(np.linalg.norm(eff))
    eff += _COUPLED_FLOOR * (top if top > 0 else float(np.linalg.norm(to_numpy(target))))
    return xp.asarray(eff)


def _m_step_am(
    Lam: Any, gs: list[Any], blocks: list[Any], couplings: list[Any], xp: Any
) -> list[Any]:
    """Alternating exact minimisation of ``sum log gamma + Lambda / gamma`` over the factors.

    With the other factors fixed, the objective separates over the entries of ``gamma_i``
    and is minimised at ``gamma_i[j] = mean over the other indices of Lambda / prod gamma_k``
    (and at the block mean of that for a block of entries sharing one variance). A
    pattern-coupled factor (``couplings[i]``, its coupling matrix) takes instead the coupled
    variances nearest that minimiser. The factors are then rescaled (all but the last to unit
    norm), which leaves ``gamma`` unchanged.
    """
    I = len(gs)
    gs = [g.copy() for g in gs]
    tiny = np.finfo(np.float64).tiny
    for _ in range(_INNER_MAX_ITER):
        before = xp.concatenate(gs)
        for i in range(I):
            others = [xp.ones_like(g) if k == i else g for k, g in enumerate(gs)]
            ratio = Lam / _outer(others, xp)
            axes = tuple(k for k in range(I) if k != i)
            target = xp.mean(ratio, axis=axes) if axes else ratio
            if blocks[i] is not None:
                target = _block_mean(target, blocks[i], xp)
            if couplings[i] is not None:
                target = _couple(target, couplings[i], xp)
            gs[i] = xp.maximum(target, tiny)
        for i in range(I - 1):
            norm = float(xp.linalg.norm(gs[i]))
            gs[i] = gs[i] / norm
            gs[-1] = gs[-1] * norm
        if relative_change(xp.concatenate(gs), before, xp) < _INNER_TOL:
            break
    return gs


def _top_left_singular(mat: Any, start: Any, xp: Any) -> Any:
    """Unit top left singular vector of the non-negative ``mat``, made non-negative.

    Power iteration on ``mat mat^T`` from ``start`` (the previous EM iteration's factor, so
    that a few steps usually suffice: consecutive ``Lambda`` differ little). A non-negative
    start keeps every iterate non-negative, converging to the Perron vector, which is the top
    singular vector up to sign. A full SVD takes over when the iteration does not settle (a
    top singular value that is nearly repeated).
    """
    u = start / xp.linalg.norm(start)
    for _ in range(_POWER_MAX_ITER):
        w = mat @ (u @ mat)
        norm = float(xp.linalg.norm(w))
        if norm == 0.0:
            break
        w = w / norm
        if float(xp.linalg.norm(w - u)) < _POWER_TOL:
            return w
        u = w
    U, _, _ = xp.linalg.svd(mat, full_matrices=False)
    return xp.abs(U[:, 0])


def _m_step_svd(
    Lam: Any, gs: list[Any], blocks: list[Any], couplings: list[Any], xp: Any
) -> list[Any]:
    """Nearest Kronecker product to ``Lambda`` by sequential rank-one SVD fits.

    ``Lambda`` unfolded as ``N_1 x (N_2 ... N_I)`` is approximated by its top singular pair:
    ``gamma_1 = |u_1|`` (unit norm) and the rest ``s_1 |v_1|``, which is unfolded again for
    the next factor. ``Lambda`` is non-negative, so its top singular vectors are (up to sign)
    non-negative (Perron-Frobenius). Only the top pair is needed: it is found by power
    iteration from the current factors (``gs``), not by a full SVD of each unfolding.
    Block-sparse and pattern-coupled factors take the nearest such vector to their fit.
    """
    I = Lam.ndim
    out = []
    rest = Lam
    for i in range(I - 1):
        mat = rest.reshape(rest.shape[0], -1)
        g = _top_left_singular(mat, gs[i], xp)
        if blocks[i] is not None:
            g = _block_mean(g, blocks[i], xp)
        if couplings[i] is not None:
            g = _couple(g, couplings[i], xp)
        if blocks[i] is not None or couplings[i] is not None:
            g = g / xp.linalg.norm(g)
        out.append(g)
        # Least-squares remainder for this unit factor.
        rest = (g @ mat).reshape(rest.shape[1:])
    last = xp.maximum(rest.reshape(-1), 0.0)
    if blocks[-1] is not None:
        last = _block_mean(last, blocks[-1], xp)
    if couplings[-1] is not None:
        last = _couple(last, couplings[-1], xp)
    out.append(last)
    tiny = np.finfo(np.float64).tiny
    return [xp.maximum(g, tiny) for g in out]


def _kronecker_sbl_core(
    As: list[Any],
    Y: Any,
    method: str,
    block_sizes: list[int],
    betas: list[float],
    noise_var: float | None,
    max_iter: int,
    tol: float,
    prunes: list[float],
    xp: Any,
    init_scale: float = 1.0,
) -> tuple[Any, list[Any], float, int, bool, list[float], float]:
    """EM for KroSBL on validated double-precision input (no checks)."""
    I = len(As)
    Ms = tuple(A.shape[0] for A in As)
    Ns = tuple(A.shape[1] for A in As)
    L = Y.shape[1]
    Yt = Y.reshape((*Ms, L))
    learn = noise_var is None
    s2 = initial_noise_var(Y, xp) if learn else float(noise_var)
    floor = _NOISE_FLOOR * max(float(xp.mean(xp.abs(Y) ** 2)), np.finfo(np.float64).tiny)
    col2 = [xp.sum(xp.abs(A) ** 2, axis=0) for A in As]
    keep = [nonzero_columns(c, xp) for c in col2]
    # Block id of every entry of each factor (consecutive runs of block_sizes[i]).
    block_ids = [xp.asarray(np.arange(n) // b) for n, b in zip(Ns, block_sizes, strict=True)]
    # Coupling matrices on the full index set; restricted to the kept entries as they go
    # (entries that were neighbours stay coupled, those that become adjacent by pruning don't).
    full_C = [_coupling_matrix(n, b) if b > 0 else None for n, b in zip(Ns, betas, strict=True)]
    gammas = [xp.zeros(n, dtype=np.float64) for n in Ns]
    # Per factor c_i / ||A_i[:, j]||^2 with prod c_i = power / prod N_i: the Kronecker product
    # is the classic start, c / ||a_j||^2 (see initial_gamma), times init_scale.
    power = init_scale * float(xp.sum(xp.abs(Y) ** 2)) / L
    for g, k, c, mi, ni in zip(gammas, keep, col2, Ms, Ns, strict=True):
        share = (power / math.prod(Ns)) ** (1.0 / I) * ni if power > 0 else 0.0
        g[k] = initial_gamma(c[k], mi, xp, share, ni)
    costs: list[float] = []
    converged = False
    change = float("inf")
    it = 0
    m = math.prod(Ms)
    for it in range(1, max_iter + 1):  # noqa: B007 (it is reported after the loop)
        if any(k.size == 0 for k in keep):
            break
        Ak = [A[:, k] for A, k in zip(As, keep, strict=True)]
        gk = [g[k] for g, k in zip(gammas, keep, strict=True)]
        mu, diag, cost = _posterior(Ak, Yt, gk, s2, xp)
        costs.append(cost)
        if learn:
            resid = Yt - mode_products(mu, Ak, xp)
            s2 = update_noise(
                float(xp.sum(xp.abs(resid) ** 2)),
                s2,
                _outer(gk, xp).reshape(-1),
                diag.reshape(-1),
                m,
                L,
                xp,
                floor,
            )
        Lam = diag + xp.mean(xp.abs(mu) ** 2, axis=-1)
        bids = [
            ids[k] if b > 1 else None
            for ids, k, b in zip(block_ids, keep, block_sizes, strict=True)
        ]
        Cs = [None if C is None else _restrict(C, k) for C, k in zip(full_C, keep, strict=True)]
        if method == "am":
            new = _m_step_am(Lam, gk, bids, Cs, xp)
        else:
            new = _m_step_svd(Lam, gk, bids, Cs, xp)
        change = relative_change(_outer(new, xp), _outer(gk, xp), xp)
        for i in range(I):
            gammas[i][:] = 0.0
            gammas[i][keep[i]] = new[i]
        for i in range(I):
            share = gammas[i][keep[i]] * col2[i][keep[i]]
            if block_sizes[i] > 1:
                share = _block_max(share, block_ids[i][keep[i]], xp)
            mask = prune_mask(share, prunes[i], xp)
            if not bool(mask.all()):
                gammas[i][keep[i][~mask]] = 0.0
                keep[i] = keep[i][mask]
        if change < tol:
            converged = True
            break
    coef = xp.zeros((*Ns, L), dtype=Y.dtype)
    if all(k.size for k in keep):
        Ak = [A[:, k] for A, k in zip(As, keep, strict=True)]
        gk = [g[k] for g, k in zip(gammas, keep, strict=True)]
        mu, _, _ = _posterior(Ak, Yt, gk, s2, xp)
        coef[xp.ix_(*keep)] = mu
    return coef.reshape(-1, L), gammas, float(s2), it, converged, costs, change


def _restrict(C: np.ndarray, keep: Any) -> np.ndarray:
    k = np.asarray(to_numpy(keep))
    return C[np.ix_(k, k)]


def _block_max(share: Any, ids: Any, xp: Any) -> Any:
    """Each entry replaced by the largest share in its block (blocks are pruned whole)."""
    _, inverse = xp.unique(ids, return_inverse=True)
    inverse = inverse.reshape(-1)
    # Sorting by (block, share) puts each block's maximum last in its run.
    order = xp.lexsort(xp.stack([share, inverse.astype(share.dtype)]))
    last = xp.concatenate([inverse[order][1:] != inverse[order][:-1], xp.ones(1, dtype=bool)])
    top = xp.zeros(int(inverse.max()) + 1, dtype=share.dtype)
    top[inverse[order][last]] = share[order][last]
    return top[inverse]
