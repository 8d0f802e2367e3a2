"""``KroneckerSBL``: the estimator over :func:`sparselin.kronecker_sbl`."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..recovery._kronecker_sbl import kron_matvec, kronecker_sbl

__all__ = ["KroneckerSBL"]


class KroneckerSBL(BaseEstimator):
    """Sparse recovery with a Kronecker-structured dictionary (KroSBL), as an estimator.

    Fits ``y ≈ (A_1 ⊗ ... ⊗ A_I) x`` with a sparse, Kronecker-supported ``x`` by sparse
    Bayesian learning with a Kronecker-structured prior (:func:`sparselin.kronecker_sbl`).
    Unlike a scikit-learn regressor, the "design" is the list of factors ``[A_1, ..., A_I]``
    (the Kronecker product is never formed), so the ``X`` that :meth:`fit` takes is that list
    of factors. :meth:`predict` maps a set of factors (the same, or others of the
    same column counts) through the fitted coefficients.

    The typical use is channel estimation with angle-domain dictionaries: in IRS-aided MIMO,
    the cascaded channel is sparse in the product of the array-response dictionaries of the
    base station, the intelligent surface and the user, and pilots make the measurement
    matrix a Kronecker product of small pilot-times-dictionary factors; the channel's few
    paths give a Kronecker-supported angle-domain vector, and clustered angles a block-sparse
    one (``coupling`` for clusters anywhere, ``block_sizes`` for fixed blocks).

    Parameters
    ----------
    method : {"svd", "am"}, default="svd"
        The M-step (see :func:`sparselin.kronecker_sbl`).
    block_sizes : sequence of int, optional
        Fixed block sparsity per factor.
    coupling : bool, float or sequence of float, optional
        Pattern-coupled block sparsity (PC-KroSBL) for clusters of unknown place: True for
        the authors' ``beta = 0.8`` on every factor, a float for that ``beta`` on every
        factor, or one ``beta`` per factor (0 for an uncoupled one).
    noise_var : float, optional
        Known noise variance; learned when None.
    max_iter : int, default=500
        Maximum EM iterations.
    tol : float, default=1e-4
        Relative change of the variances at which EM stops.
    prune : float or sequence of float, optional
        Relative share of the signal power below which coordinates are removed, for every
        factor or per factor (default: the method's own, see :func:`sparselin.kronecker_sbl`).
    init_scale : float, default=1.0
        Factor on the starting variances, which are matched to the power of ``y`` (so the
        fit stays free of the units of ``y`` and of the columns). A low start (e.g. 3e-3)
        lets EM grow the best-correlated clusters first, which the pattern-coupled variant
        needs on angle-domain channels (see :func:`sparselin.kronecker_sbl`).

    Attributes
    ----------
    coef_ : ndarray of shape (prod N_i,) or (prod N_i, L)
        The recovered vector (posterior mean).
    gammas_ : list of ndarray
        The per-factor prior variances.
    gamma_ : ndarray of shape (prod N_i,)
        Their Kronecker product.
    noise_var_ : float
        The noise variance (learned or given).
    n_iter_ : int
        EM iterations run.
    cost_ : list of float
        The type-II cost at each iteration.

    See Also
    --------
    sparselin.kronecker_sbl : the function this estimator calls.
    sparselin.sbl : classic SBL on an explicit dictionary.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin import KroneckerSBL
    >>> rng = np.random.default_rng(0)
    >>> A1, A2 = rng.standard_normal((12, 30)), rng.standard_normal((12, 30))
    >>> x1, x2 = np.zeros(30), np.zeros(30)
    >>> x1[[2, 17]], x2[[5, 22]] = [1.0, -1.5], [2.0, 1.0]
    >>> y = np.kron(A1, A2) @ np.kron(x1, x2)
    >>> est = KroneckerSBL().fit([A1, A2], y)
    >>> np.flatnonzero(np.abs(est.gammas_[0]) > 1e-3).tolist()
    [2, 17]
    """

    _parameter_constraints: dict = {
        "method": [StrOptions({"svd", "am"})],
        "block_sizes": ["array-like", None],
        "coupling": ["boolean", Interval(Real, 0, 1, closed="both"), "array-like", None],
        "noise_var": [Interval(Real, 0, None, closed="neither"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "prune": [Interval(Real, 0, 1, closed="left"), "array-like", None],
        "init_scale": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        method: str = "svd",
        block_sizes: Sequence[int] | None = None,
        coupling: bool | float | Sequence[float] | None = None,
        noise_var: float | None = None,
        max_iter: int = 500,
        tol: float = 1e-4,
        prune: float | Sequence[float] | None = None,
        init_scale: float = 1.0,
    ) -> None:
        self.method = method
        self.block_sizes = block_sizes
        self.coupling = coupling
        self.noise_var = noise_var
        self.max_iter = max_iter
        self.tol = tol
        self.prune = prune
        self.init_scale = init_scale

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Sequence[Any], y: Any) -> KroneckerSBL:
        """Fit on the dictionary factors ``X = [A_1, ..., A_I]`` and the measurements ``y``."""
        res = kronecker_sbl(
            X,
            y,
            method=self.method,
            block_sizes=self.block_sizes,
            coupling=self.coupling,
            noise_var=self.noise_var,
            max_iter=self.max_iter,
            tol=self.tol,
            prune=self.prune,
            init_scale=self.init_scale,
        )
        self.coef_ = res.coef
        self.gammas_ = res.gammas
        self.gamma_ = res.gamma
        self.noise_var_ = res.noise_var
        self.n_iter_ = res.n_iter
        self.cost_ = res.cost
        self.n_factors_ = len(res.gammas)
        return self

    def predict(self, X: Sequence[Any]) -> Any:
        """``(A_1 ⊗ ... ⊗ A_I) @ coef_`` for factors ``X`` with the fitted column counts."""
        check_is_fitted(self)
        if len(X) != self.n_factors_:
            raise ValueError(
                f"X must hold {self.n_factors_} factor matrices, as in fit, got {len(X)}"
            )
        return kron_matvec(list(X), self.coef_)
