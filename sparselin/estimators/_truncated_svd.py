"""scikit-learn drop-in ``TruncatedSVD`` over :func:`sparselin.truncated_svd`."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.sparsefuncs import mean_variance_axis
from sklearn.utils.validation import validate_data

from ..linalg._dense import flip_signs
from ..linalg._truncated_svd import truncated_svd
from ._base import ComponentsTransformerMixin

__all__ = ["TruncatedSVD"]

_ALGORITHMS = {"arpack": "lanczos", "randomized": "randomized", "block_krylov": "block_krylov"}


def flip_by_components(U: Any, Vt: Any) -> tuple[Any, Any]:
    """scikit-learn's sign convention for decompositions: largest entry of each component > 0."""
    V, Ut = flip_signs(np.ascontiguousarray(Vt.T), np.ascontiguousarray(U.T), np)
    return Ut.T, V.T


class TruncatedSVD(
    ComponentsTransformerMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Dimensionality reduction with a truncated SVD: scikit-learn's ``TruncatedSVD``, faster.

    A drop-in replacement for :class:`sklearn.decomposition.TruncatedSVD`: the same
    parameters with the same meanings, the same fitted attributes and methods, and the same
    sign convention (the largest entry of each component is positive). It adds the
    ``"block_krylov"`` algorithm and fixed accuracy: a float ``n_components`` in (0, 1)
    keeps the smallest rank whose components hold that fraction of ``||X||_F**2``, the way
    :class:`sklearn.decomposition.PCA` spells it (the data are not centred, as in
    scikit-learn's ``TruncatedSVD``).

    Parameters
    ----------
    n_components : int or float, default=2
        Number of components (int, at most ``n_features``), or the fraction of
        ``||X||_F**2`` to keep (float in (0, 1)); the rank found is ``n_components_``.
    algorithm : {"randomized", "arpack", "block_krylov"}, default="randomized"
        ``"randomized"``: subspace iteration (:func:`sparselin.truncated_svd`,
        ``method="randomized"``); ``"arpack"``: SciPy's ARPACK through ``svds``;
        ``"block_krylov"``: randomized block Krylov, better on slowly decaying spectra.
    n_iter : int or "auto", default=5
        Power iterations ("randomized") or Krylov depth ("block_krylov"), run exactly, as
        in scikit-learn. ``"auto"`` (a sparselin extension) stops as soon as the error has
        converged, usually after far fewer passes over X (see
        :func:`sparselin.truncated_svd`). Ignored by "arpack" and by fixed accuracy (which
        adapts its own).
    n_oversamples : int, default=10
        Extra random vectors beyond ``n_components`` ("randomized", "block_krylov").
    power_iteration_normalizer : {"auto", "QR", "LU", "none"}, default="auto"
        Normaliser between power iterations ("randomized" only).
    random_state : int, RandomState instance or None, default=None
        Seed of the random test matrices and of ARPACK's start vector.
    tol : float, default=0.0
        ARPACK's tolerance ("arpack" only); 0 means machine precision.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Right singular vectors of X.
    explained_variance_ : ndarray of shape (n_components,)
        Variance of the training samples projected on each component.
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Fraction of the total variance explained by each component.
    singular_values_ : ndarray of shape (n_components,)
        Singular values of X for the selected components.
    n_components_ : int
        Number of components kept (equals ``n_components`` when it is an int).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in,)
        Feature names seen during fit, when X has string column names.

    See Also
    --------
    sparselin.truncated_svd : the function this estimator wraps.
    sparselin.IncrementalSVD : the same decomposition from a stream of batches.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin import TruncatedSVD
    >>> X = np.random.default_rng(0).standard_normal((100, 20))
    >>> svd = TruncatedSVD(n_components=5, random_state=0).fit(X)
    >>> svd.components_.shape, svd.transform(X).shape
    ((5, 20), (100, 5))
    >>> TruncatedSVD(n_components=0.5, random_state=0).fit(X).n_components_ < 20
    True
    """

    _parameter_constraints: dict = {
        "n_components": [
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="neither"),
        ],
        "algorithm": [StrOptions(set(_ALGORITHMS))],
        "n_iter": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "n_oversamples": [Interval(Integral, 1, None, closed="left")],
        "power_iteration_normalizer": [StrOptions({"auto", "QR", "LU", "none"})],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        n_components: int | float = 2,
        *,
        algorithm: str = "randomized",
        n_iter: int = 5,
        n_oversamples: int = 10,
        power_iteration_normalizer: str = "auto",
        random_state: Any = None,
        tol: float = 0.0,
    ) -> None:
        self.algorithm = algorithm
        self.n_components = n_components
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state
        self.tol = tol

    def fit(self, X: Any, y: Any = None) -> TruncatedSVD:
        """Fit the model on training data X (array-like or sparse, n_samples x n_features).

        Returns
        -------
        self : TruncatedSVD
        """
        self.fit_transform(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit the model on X and return X reduced to ``n_components_`` dimensions.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
        """
        X = validate_data(self, X, accept_sparse=["csr", "csc"], ensure_min_features=2)
        random_state = check_random_state(self.random_state)
        n_features = X.shape[1]
        fixed_accuracy = not isinstance(self.n_components, Integral)
        if fixed_accuracy and self.algorithm == "arpack":
            raise ValueError(
                "a float n_components (fixed accuracy) needs algorithm='randomized' or "
                "'block_krylov'; ARPACK computes a fixed number of components"
            )
        if not fixed_accuracy and self.n_components > n_features:
            raise ValueError(
                f"n_components({self.n_components}) must be <= n_features({n_features})."
            )
        if not fixed_accuracy and self.algorithm == "arpack" and self.n_components >= min(X.shape):
            # ARPACK (svds) needs k < min(n_samples, n_features); scikit-learn raises too.
            raise ValueError(
                f"n_components={self.n_components} must be strictly less than "
                f"min(n_samples, n_features) with algorithm='arpack'; got "
                f"n_samples={X.shape[0]}, n_features={X.shape[1]}"
            )
        # Like scikit-learn, decompose X.T when X is wide. The projection then lies on the
        # feature side, A ≈ A V V^T, so X @ V equals U @ diag(s) exactly and the transformed
        # columns are orthogonal — a property scikit-learn's own tests rely on.
        wide = X.shape[0] < X.shape[1]
        M = X.T if wide else X
        if fixed_accuracy:
            U, Sigma, VT = truncated_svd(
                M,
                tol=math.sqrt(1.0 - float(self.n_components)),
                random_state=random_state,
            )
        else:
            U, Sigma, VT = truncated_svd(
                M,
                self.n_components,
                method=_ALGORITHMS[self.algorithm],
                n_iter=self.n_iter,
                n_oversamples=self.n_oversamples,
                power_iteration_normalizer=self.power_iteration_normalizer,
                random_state=random_state,
                solver_tol=float(self.tol),
            )
        if wide:
            U, VT = VT.T, U.T
        U, VT = flip_by_components(U, VT)
        self.components_ = VT
        self.n_components_ = VT.shape[0]
        exact = self.algorithm == "arpack" and self.tol == 0 and not fixed_accuracy
        # An approximate SVD has X @ V != U @ diag(s); the projection is what transform gives.
        X_transformed = U * Sigma if exact else safe_sparse_dot(X, self.components_.T)
        self.explained_variance_ = exp_var = np.var(X_transformed, axis=0)
        if sp.issparse(X):
            _, full_var = mean_variance_axis(X, axis=0)
            full_var = full_var.sum()
        else:
            full_var = np.var(X, axis=0).sum()
        self.explained_variance_ratio_ = exp_var / full_var
        self.singular_values_ = Sigma
        return X_transformed
