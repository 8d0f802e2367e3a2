"""scikit-learn regressors over sparselin's recovery functions.

Each estimator uses its peer's objective scaling, so that it can be swapped in and compared:

==================  ===============================================  =====================
estimator           objective (n samples)                            sparselin function
==================  ===============================================  =====================
``WeightedLasso``   ``1/(2n) ||y - Xw||_2^2 + alpha ||w||_{1,c}``    ``weighted_lasso``,
                    (scikit-learn ``Lasso``, skglm ``WeightedLasso``) ``lam = 2 n alpha``
``SqrtLasso``       ``||y - Xw||_2 + alpha ||w||_{1,c}``             ``sqrt_lasso``,
                    (skglm ``SqrtLasso``, unnormalised since 0.4)    ``lam = alpha``
``LADLasso``        ``1/(2n) ||y - Xw||_1 + alpha ||w||_{1,c}``      ``lad_lasso``,
                    (``QuantileRegressor(quantile=0.5)``)            ``lam = 2 n alpha``
``OMPRegressor``    greedy: ``OrthogonalMatchingPursuit`` (default)  ``omp`` / ``loss_omp``
                    or the loss-based weighted OMP
==================  ===============================================  =====================

``||w||_{1,c} = sum_j c_j |w_j|`` with the ``weights`` c (default ones; 0 = unpenalised).
The intercept is never penalised: centring X and y gives it exactly for the squared and
square-root losses; for the absolute loss it is an unpenalised column of ones.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import MultiOutputMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._base import LinearModel
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from ..recovery._checks import check_weights
from ..recovery._convex import LAD, SQRT, SQUARED, _solve
from ..recovery._greedy import loss_omp, omp

__all__ = ["LADLasso", "OMPRegressor", "SqrtLasso", "WeightedLasso"]


def _check_estimator_weights(weights: Any, n_features: int) -> np.ndarray:
    return check_weights(weights, n_features, np.dtype(np.float64))


class _ConvexRegressor(RegressorMixin, LinearModel):
    """Shared fit of the three convex estimators (the subclass sets ``_kind``)."""

    _kind = SQUARED
    _parameter_constraints: dict = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "weights": ["array-like", None],
        "fit_intercept": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
    }

    def _lam(self, n: int) -> float:
        raise NotImplementedError

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> _ConvexRegressor:
        """Fit the model on ``X`` (n_samples, n_features) and ``y`` (n_samples,)."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], y_numeric=True)
        n, p = X.shape
        w = _check_estimator_weights(self.weights, p)
        lam = self._lam(n) * self.alpha
        X64 = X.astype(np.float64)
        y64 = y.astype(np.float64)
        x0 = None
        if self.warm_start and hasattr(self, "coef_") and self.coef_.shape == (p,):
            x0 = self.coef_.astype(np.float64)
        if self._kind == LAD and self.fit_intercept:
            # The intercept of a LAD fit is a median, not a mean: an unpenalised column.
            Xa = np.hstack([X64, np.ones((n, 1))])
            wa = np.concatenate([w, [0.0]])
            if x0 is not None:
                x0 = np.concatenate([x0, [self.intercept_]])
            coef, info = _solve(Xa, y64, lam, wa, self._kind, self.tol, self.max_iter, x0)
            self.coef_ = coef[:p].astype(X.dtype)
            self.intercept_ = float(coef[p])
        else:
            if self.fit_intercept:
                X_mean = X64.mean(axis=0)
                y_mean = float(y64.mean())
                Xc, yc = X64 - X_mean, y64 - y_mean
            else:
                X_mean, y_mean = np.zeros(p), 0.0
                Xc, yc = X64, y64
            coef, info = _solve(Xc, yc, lam, w, self._kind, self.tol, self.max_iter, x0)
            self.coef_ = coef.astype(X.dtype)
            self.intercept_ = float(y_mean - X_mean @ coef) if self.fit_intercept else 0.0
        self.n_iter_ = info.n_iter
        self.dual_gap_ = info.gap
        if not info.converged:
            warnings.warn(
                f"{type(self).__name__} did not reach tol={self.tol} within max_iter="
                f"{self.max_iter} working-set iterations (duality gap {info.gap:.3g}).",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self


class WeightedLasso(_ConvexRegressor):
    """Lasso with per-feature penalty weights, scikit-learn's ``Lasso`` scaling.

    Minimises ``1/(2 n) ||y - X w||_2^2 + alpha * sum_j weights_j |w_j|`` (as scikit-learn's
    ``Lasso`` and skglm's ``WeightedLasso``) by working-set coordinate descent with a
    duality-gap stop (:func:`sparselin.recovery.weighted_lasso` with ``lam = 2 n alpha``).

    Parameters
    ----------
    alpha : float, default 1.0
        Regularisation strength.
    weights : array-like of shape (n_features,), optional
        Non-negative penalty weights (0 = unpenalised). Default: all ones (plain Lasso).
    fit_intercept : bool, default True
        Fit an unpenalised intercept (by centring X and y).
    tol : float, default 1e-4
        Stop once the duality gap is below ``tol`` times the objective at zero.
    max_iter : int, default 100
        Largest number of working-set iterations.
    warm_start : bool, default False
        Start from the previous ``coef_``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
        Working-set iterations run.
    dual_gap_ : float
        Duality gap at the solution, in the scaling of :func:`weighted_lasso`.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.estimators import WeightedLasso
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 20)); y = 3 * X[:, 0] + 1.0
    >>> model = WeightedLasso(alpha=0.1).fit(X, y)
    >>> np.flatnonzero(model.coef_).tolist(), round(model.intercept_, 1)
    ([0], 1.0)
    """

    _kind = SQUARED

    def __init__(
        self,
        alpha: float = 1.0,
        *,
        weights: Any = None,
        fit_intercept: bool = True,
        tol: float = 1e-4,
        max_iter: int = 100,
        warm_start: bool = False,
    ) -> None:
        self.alpha = alpha
        self.weights = weights
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _lam(self, n: int) -> float:
        return 2.0 * n


class SqrtLasso(_ConvexRegressor):
    """Square-root Lasso with per-feature weights, skglm's ``SqrtLasso`` scaling.

    Minimises ``||y - X w||_2 + alpha * sum_j weights_j |w_j|``, the objective of skglm's
    ``SqrtLasso`` (which dropped its ``1 / sqrt(n)`` factor in skglm 0.4), i.e.
    :func:`sparselin.recovery.sqrt_lasso` with ``lam = alpha``. Its best ``alpha`` does not
    depend on the noise level, and the solver keeps working when the residual is tiny.

    Parameters
    ----------
    alpha : float, default 1.0
        Regularisation strength.
    weights : array-like of shape (n_features,), optional
        Non-negative penalty weights (0 = unpenalised). Default ones.
    fit_intercept : bool, default True
        Fit an unpenalised intercept (by centring X and y, exact for this loss).
    tol : float, default 1e-8
        Stop once the duality gap is below ``tol`` times ``||y||_2``.
    max_iter : int, default 100
        Largest number of working-set iterations.
    warm_start : bool, default False
        Start from the previous ``coef_``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
    dual_gap_ : float

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.estimators import SqrtLasso
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 20)); y = 3 * X[:, 0] + 0.01 * rng.standard_normal(50)
    >>> np.flatnonzero(SqrtLasso(alpha=3.0).fit(X, y).coef_).tolist()
    [0]
    """

    _kind = SQRT

    def __init__(
        self,
        alpha: float = 1.0,
        *,
        weights: Any = None,
        fit_intercept: bool = True,
        tol: float = 1e-8,
        max_iter: int = 100,
        warm_start: bool = False,
    ) -> None:
        self.alpha = alpha
        self.weights = weights
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _lam(self, n: int) -> float:
        return 1.0


class LADLasso(_ConvexRegressor):
    """Least-absolute-deviations Lasso, ``QuantileRegressor(quantile=0.5)``'s scaling.

    Minimises ``1/(2 n) ||y - X w||_1 + alpha * sum_j weights_j |w_j|``, robust to gross
    outliers in ``y`` (:func:`sparselin.recovery.lad_lasso` with ``lam = 2 n alpha``): a
    linear program solved exactly by HiGHS on a working set of columns.

    Parameters
    ----------
    alpha : float, default 1.0
        Regularisation strength (scikit-learn's ``QuantileRegressor`` default).
    weights : array-like of shape (n_features,), optional
        Non-negative penalty weights (0 = unpenalised). Default ones.
    fit_intercept : bool, default True
        Fit an unpenalised intercept (an extra column of ones).
    tol : float, default 1e-8
        Stop once the duality gap is below ``tol`` times ``||y||_1``.
    max_iter : int, default 50
        Largest number of working-set (column generation) rounds.
    warm_start : bool, default False
        Start from the previous ``coef_``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
    dual_gap_ : float

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.estimators import LADLasso
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 10)); y = 2 * X[:, 3] + 0.5
    >>> y[:6] += 100.0  # gross outliers
    >>> model = LADLasso(alpha=0.01).fit(X, y)
    >>> np.flatnonzero(np.abs(model.coef_) > 0.05).tolist(), round(model.intercept_, 2)
    ([3], 0.5)
    """

    _kind = LAD

    def __init__(
        self,
        alpha: float = 1.0,
        *,
        weights: Any = None,
        fit_intercept: bool = True,
        tol: float = 1e-8,
        max_iter: int = 50,
        warm_start: bool = False,
    ) -> None:
        self.alpha = alpha
        self.weights = weights
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _lam(self, n: int) -> float:
        return 2.0 * n


class OMPRegressor(MultiOutputMixin, RegressorMixin, LinearModel):
    """Orthogonal matching pursuit and the loss-based weighted OMP as a regressor.

    With the defaults (``loss="lasso", penalty="l0", lam=0``) this is scikit-learn's
    ``OrthogonalMatchingPursuit`` (same parameters, same result on unit-norm features, and
    correct on features of any norm), computed by :func:`sparselin.recovery.omp`, batched
    over the targets. Any other ``(loss, penalty, lam)`` runs
    :func:`sparselin.recovery.loss_omp` per target.

    Parameters
    ----------
    n_nonzero_coefs : int, optional
        Largest number of nonzero coefficients. Default: 10% of the features for OMP (as
        scikit-learn), ``min(n_samples, n_features)`` for the loss-based variants, whose
        selection rule stops by itself.
    tol : float, optional
        Stop once the squared residual norm is at most ``tol``; overrides
        ``n_nonzero_coefs``.
    fit_intercept : bool, default True
        Fit an intercept: by centring X and y (the two l2 losses, as scikit-learn), or as an
        unpenalised column of ones (``lad_lasso``).
    loss : {"lasso", "sqrt_lasso", "lad_lasso"}, default "lasso"
        Loss of the loss-based selection (see :func:`loss_omp`).
    penalty : {"l0", "l1"}, default "l0"
        Weighted sparsity penalty of the selection.
    lam : float, default 0.0
        Selection regularisation, in the paper's scaling (``loss_omp``'s ``lam``).
    weights : array-like of shape (n_features,), optional
        Non-negative feature weights (0 = unpenalised).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
    intercept_ : float or ndarray of shape (n_targets,)
    n_iter_ : int or ndarray of shape (n_targets,)
        Atoms selected per target.
    n_nonzero_coefs_ : int or None
        The sparsity budget used (None when ``tol`` was given).
    stop_reason_ : str or list of str
        Why the loss-based selection stopped (``"n_nonzero"`` for classic OMP).

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.estimators import OMPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 60)); y = X[:, 5] - 2 * X[:, 17]
    >>> np.flatnonzero(OMPRegressor(n_nonzero_coefs=2).fit(X, y).coef_).tolist()
    [5, 17]
    """

    _parameter_constraints: dict = {
        "n_nonzero_coefs": [Interval(Integral, 1, None, closed="left"), None],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "fit_intercept": ["boolean"],
        "loss": [StrOptions({"lasso", "sqrt_lasso", "lad_lasso"})],
        "penalty": [StrOptions({"l0", "l1"})],
        "lam": [Interval(Real, 0, None, closed="left")],
        "weights": ["array-like", None],
    }

    def __init__(
        self,
        *,
        n_nonzero_coefs: int | None = None,
        tol: float | None = None,
        fit_intercept: bool = True,
        loss: str = "lasso",
        penalty: str = "l0",
        lam: float = 0.0,
        weights: Any = None,
    ) -> None:
        self.n_nonzero_coefs = n_nonzero_coefs
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.loss = loss
        self.penalty = penalty
        self.lam = lam
        self.weights = weights

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> OMPRegressor:
        """Fit on ``X`` (n_samples, n_features) and ``y`` (n_samples,) or (n_samples,
        n_targets)."""
        X, y = validate_data(
            self, X, y, dtype=[np.float64, np.float32], y_numeric=True, multi_output=True
        )
        n, p = X.shape
        w = _check_estimator_weights(self.weights, p)
        classic = self.loss == "lasso" and self.penalty == "l0" and self.lam == 0
        if self.n_nonzero_coefs is not None and self.n_nonzero_coefs > p:
            raise ValueError(
                f"n_nonzero_coefs must be at most n_features={p}, got {self.n_nonzero_coefs}"
            )
        if self.tol is None and self.n_nonzero_coefs is None and classic:
            self.n_nonzero_coefs_ = max(int(0.1 * p), 1)
        elif self.tol is not None:
            self.n_nonzero_coefs_ = None
        else:
            self.n_nonzero_coefs_ = self.n_nonzero_coefs
        one = y.ndim == 1
        Y = y[:, None] if one else y
        lad = self.loss == "lad_lasso"
        if self.fit_intercept and not lad:
            X_mean, Y_mean = X.mean(axis=0), Y.mean(axis=0)
            Xc, Yc = X - X_mean, Y - Y_mean
        else:
            X_mean = np.zeros(p, X.dtype)
            Y_mean = np.zeros(Y.shape[1], X.dtype)
            Xc, Yc = X, Y
        if classic:
            coef, n_iter = omp(
                Xc,
                Yc,
                n_nonzero=self.n_nonzero_coefs_,
                tol=self.tol,
                weights=w,
                return_n_iter=True,
            )
            coef = coef.T
            reasons: list[str] = ["n_nonzero"] * Y.shape[1]
            intercept = Y_mean - coef @ X_mean
        else:
            use_ones = self.fit_intercept and lad
            A = np.hstack([Xc, np.ones((n, 1), X.dtype)]) if use_ones else Xc
            wa = np.concatenate([w, [0.0]]) if use_ones else w
            budget = self.n_nonzero_coefs_
            if use_ones and budget is not None:
                budget = min(budget + 1, p + 1)
            coefs, iters, reasons = [], [], []
            for t in range(Y.shape[1]):
                res = loss_omp(
                    A,
                    Yc[:, t],
                    loss=self.loss,
                    penalty=self.penalty,
                    lam=self.lam,
                    weights=wa,
                    n_nonzero=budget,
                    tol=self.tol,
                )
                coefs.append(res.coef)
                iters.append(res.n_iter)
                reasons.append(res.stop_reason)
            full = np.array(coefs)
            n_iter = np.array(iters)
            coef = full[:, :p]
            intercept = full[:, p] if use_ones else Y_mean - coef @ X_mean
        self.coef_ = coef[0] if one else coef
        if not self.fit_intercept:
            self.intercept_ = 0.0  # a scalar whatever the targets, as scikit-learn's OMP
        else:
            self.intercept_ = float(intercept[0]) if one else np.asarray(intercept, float)
        self.n_iter_ = int(np.ravel(n_iter)[0]) if one else np.asarray(n_iter)
        self.stop_reason_ = reasons[0] if one else reasons
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
