"""scikit-learn drop-in ``TruncatedSVD`` over :func:`sparselin.truncated_svd`."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
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

from .._array import dask_chunk_namespace, is_dask_array
from .._validation import canonical_sparse
from ..linalg._dense import flip_signs
from ..linalg._operator import norm_and_sketch_copy
from ..linalg._truncated_svd import _truncated_svd_core
from ._base import ComponentsTransformerMixin

__all__ = ["TruncatedSVD"]

_ALGORITHMS = {"arpack": "lanczos", "randomized": "randomized", "block_krylov": "block_krylov"}

# Progress of long fits (``verbose``) goes through logging, under the package's logger
# hierarchy, so that applications route, filter or silence it like any other library's.
_LOGGER = logging.getLogger(__name__)


@contextlib.contextmanager
def _progress(verbose: int) -> Iterator[logging.Logger | None]:
    """The logger for a fit's progress messages, or None when ``verbose`` is 0.

    ``verbose=1`` logs at INFO, ``verbose >= 2`` also at DEBUG. The logger's level is lowered
    for the fit only if the application has not already let those messages through, and when
    nothing is configured to handle them (no handler on the logger or its ancestors) they go
    to stderr for the duration of the fit: asking for ``verbose`` output should show it, as
    scikit-learn's ``verbose`` does, without configuring logging first.
    """
    if not verbose:
        yield None
        return
    level = logging.INFO if verbose == 1 else logging.DEBUG
    old_level = _LOGGER.level
    if _LOGGER.getEffectiveLevel() > level:
        _LOGGER.setLevel(level)
    handler = None
    if not _LOGGER.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[TruncatedSVD] %(message)s"))
        _LOGGER.addHandler(handler)
    try:
        yield _LOGGER
    finally:
        if handler is not None:
            _LOGGER.removeHandler(handler)
        _LOGGER.setLevel(old_level)


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
        Number of components (int, at most ``n_features``), or the fraction of the energy
        ``||X||_F**2`` to keep (float in (0, 1)): the fit then picks the fewest components
        (within a few of the optimal number) whose approximation ``X V V^T`` keeps at least
        that fraction of ``||X||_F**2``, and stores that number in ``n_components_``. This is
        not the explained variance ratio (see Notes).
    algorithm : {"randomized", "arpack", "block_krylov"}, default="randomized"
        ``"randomized"``: subspace iteration (:func:`sparselin.truncated_svd`,
        ``method="randomized"``); ``"arpack"``: SciPy's ARPACK through ``svds``;
        ``"block_krylov"``: randomized block Krylov, better on slowly decaying spectra.
    n_iter : int or "auto", default=5
        Power iterations ("randomized") or Krylov depth ("block_krylov"), run exactly, as
        in scikit-learn. ``"auto"`` (a sparselin extension) stops as soon as the error has
        converged, usually after far fewer passes over X (see
        :func:`sparselin.truncated_svd`). With a float ``n_components`` (fixed accuracy) it
        is the number of power iterations for each block of the growing basis (``"auto"``:
        one): more iterations find a rank closer to the smallest one that keeps the
        fraction, at two more passes over X per block and iteration. Ignored by "arpack".
    n_oversamples : int, default=10
        Extra random vectors beyond ``n_components`` ("randomized", "block_krylov").
    power_iteration_normalizer : {"auto", "QR", "LU", "none"}, default="auto"
        Normaliser between power iterations ("randomized" with an int ``n_components``
        only; fixed accuracy always re-orthonormalises).
    random_state : int, RandomState instance or None, default=None
        Seed of the random test matrices and of ARPACK's start vector.
    tol : float, default=0.0
        ARPACK's tolerance ("arpack" only); 0 means machine precision.
    verbose : int, default=0
        Progress of the fit: the input, the rank found, the relative error and the energy
        kept, and the time of each stage. Messages go through :mod:`logging` (logger
        ``sparselin.estimators._truncated_svd``, a child of ``sparselin``): INFO for
        ``verbose=1``, DEBUG as well for ``verbose >= 2``. If logging is not configured
        they are written to stderr. 0 logs nothing.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Right singular vectors of X.
    explained_variance_ : ndarray of shape (n_components,)
        Variance of the training samples projected on each component.
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Fraction of the total variance explained by each component: the variance of the
        projected training samples over the total variance of X, both about the mean, as in
        scikit-learn. It differs from the fraction of ``||X||_F**2`` that a float
        ``n_components`` asks for (see Notes).
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

    Notes
    -----
    Two fractions describe what the components keep, and they are different numbers:

    * the **energy fraction**, ``sum(singular_values_**2) / ||X||_F**2``, is what a float
      ``n_components`` sets: the share of the uncentred sum of squares of X that its
      rank-``n_components_`` approximation keeps;
    * ``explained_variance_ratio_.sum()`` is the share of the *variance* (every column
      centred on its mean) that the projected samples keep.

    The data are not centred (that is what keeps sparse X sparse), so the components also
    capture the mean of the samples, which counts as energy but not as variance. For data
    whose features do not have zero mean, such as TF-IDF matrices, the energy fraction is
    therefore usually the larger of the two; for centred data they agree.

    A dask array (NumPy or CuPy chunks, chunked along its rows or its columns, not both) is
    decomposed on dask's own scheduler by :func:`sparselin.truncated_svd`, never gathered:
    ``algorithm="randomized"`` only (int or float ``n_components``, ``power_iteration_normalizer``
    "auto" or "QR"). The fitted attributes are in memory; :meth:`fit_transform` and
    :meth:`transform` return lazy dask arrays with X's row chunks, and the explained variances
    are blockwise dask reductions (one more pass over X). For the same ``random_state`` the
    result equals the in-memory fit's up to rounding (in-memory float64 X of ``2**20`` entries
    or more is sketched in float32 with ``n_iter="auto"``, the dask passes run in X's
    precision).

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin import TruncatedSVD
    >>> X = np.random.default_rng(0).standard_normal((100, 20))
    >>> svd = TruncatedSVD(n_components=5, random_state=0).fit(X)
    >>> svd.components_.shape, svd.transform(X).shape
    ((5, 20), (100, 5))
    >>> svd = TruncatedSVD(n_components=0.5, random_state=0).fit(X)
    >>> svd.n_components_ < 20
    True
    >>> energy = np.sum(svd.singular_values_**2) / np.linalg.norm(X) ** 2
    >>> bool(energy >= 0.5)
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
        "verbose": ["verbose"],
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
        verbose: int = 0,
    ) -> None:
        self.algorithm = algorithm
        self.n_components = n_components
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose

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
            A lazy dask array with X's row chunks when X is a dask array.
        """
        with _progress(self.verbose) as log:
            return self._fit_transform(X, log)

    def _fit_transform(self, X: Any, log: logging.Logger | None) -> np.ndarray:
        if is_dask_array(X):
            return self._fit_transform_dask(X, log)
        t_start = time.perf_counter()
        X = validate_data(
            self,
            X,
            accept_sparse=["csr", "csc"],
            ensure_min_features=2,
            # The core computes in float32 or float64 (integers become float64, as in
            # truncated_svd); float32 stays float32.
            dtype=[np.float64, np.float32],
        )
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
        if log is not None:
            layout = f"{X.format.upper()} with {X.nnz} non-zeros" if sp.issparse(X) else "dense"
            target = (
                f"the fewest components keeping {self.n_components:g} of ||X||_F^2"
                if fixed_accuracy
                else f"{self.n_components} components"
            )
            log.info(
                "fit: X %d x %d %s %s; %s by %s, n_iter=%s",
                X.shape[0],
                X.shape[1],
                X.dtype,
                layout,
                target,
                self.algorithm,
                self.n_iter,
            )
        # Like scikit-learn, decompose X.T when X is wide. The projection then lies on the
        # feature side, A ≈ A V V^T, so X @ V equals U @ diag(s) exactly and the transformed
        # columns are orthogonal — a property scikit-learn's own tests rely on.
        wide = X.shape[0] < X.shape[1]
        M = X.T if wide else X
        t0 = time.perf_counter()
        # X was validated by scikit-learn (finite, float, CSR/CSC or dense): the private core
        # takes it from here without a second validation pass. It needs only the canonical
        # sparse form (summed duplicates, for the norm) and, for the default method, the
        # norm with the float32 sketch copy made in the same pass.
        method = _ALGORITHMS[self.algorithm]
        kind = "sparse" if sp.issparse(M) else "dense"
        norm2 = low_copy = None
        if kind == "sparse":
            M, _ = canonical_sparse(M)
        elif method == "randomized" and not fixed_accuracy:
            norm2, low_copy = norm_and_sketch_copy(M, "X")
        common = {
            "method": method,
            "n_iter": None if self.n_iter == "auto" else int(self.n_iter),
            "rng": random_state,
            "kind": kind,
            "norm2": norm2,
            "low_copy": low_copy,
            # The error costs nothing extra except when it is tiny (then one GEMM).
            "want_error": log is not None,
            "stacklevel": 4,
        }
        if fixed_accuracy:
            # n_iter here is the number of power iterations per block of the growing basis.
            result = _truncated_svd_core(
                M, None, tol=math.sqrt(1.0 - float(self.n_components)), **common
            )
        else:
            result = _truncated_svd_core(
                M,
                self.n_components,
                n_oversamples=self.n_oversamples,
                normalizer=self.power_iteration_normalizer,
                solver_tol=float(self.tol),
                **common,
            )
        U, Sigma, VT = result[:3]
        if log is not None:
            err = float(result[3])
            log.info(
                "truncated_svd: rank %d, relative error %.4g of the rank-%d SVD "
                "(%.4f of ||X||_F^2 kept) in %.3f s",
                Sigma.shape[0],
                err,
                Sigma.shape[0],
                1.0 - err**2,
                time.perf_counter() - t0,
            )
        t0 = time.perf_counter()
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
        if log is not None:
            log.debug("projection and explained variance in %.3f s", time.perf_counter() - t0)
            log.info(
                "done: %d components, explained variance ratio %.4f (centred), fit took %.3f s",
                self.n_components_,
                float(np.sum(self.explained_variance_ratio_)),
                time.perf_counter() - t_start,
            )
        return X_transformed

    def _fit_transform_dask(self, X: Any, log: logging.Logger | None) -> Any:
        """:meth:`fit_transform` for a dask X: passes on dask's scheduler, lazy output."""
        from ..linalg._dask import (
            _fixed_accuracy_dask_core,
            _truncated_svd_dask_core,
            check_dask_matrix,
            column_variances,
            lazy_product,
        )

        t_start = time.perf_counter()
        if self.algorithm != "randomized":
            raise ValueError(
                f"dask input needs algorithm='randomized', got algorithm={self.algorithm!r}"
            )
        if self.power_iteration_normalizer not in ("auto", "QR"):
            raise ValueError(
                "dask input needs power_iteration_normalizer 'auto' or 'QR', got "
                f"{self.power_iteration_normalizer!r}"
            )
        if X.ndim == 2 and X.dtype.kind == "c":
            raise ValueError("Complex data not supported")
        X, _ = check_dask_matrix(X, "X")
        n_samples, n_features = X.shape
        if n_features < 2:
            raise ValueError(
                f"Found array with {n_features} feature(s) (shape={X.shape}) while a "
                "minimum of 2 is required by TruncatedSVD."
            )
        fixed_accuracy = not isinstance(self.n_components, Integral)
        if not fixed_accuracy and self.n_components > min(n_samples, n_features):
            raise ValueError(
                f"n_components({self.n_components}) must be <= min(n_samples, n_features) "
                f"= {min(n_samples, n_features)} for dask input"
            )
        self.n_features_in_ = n_features
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        random_state = check_random_state(self.random_state)
        if log is not None:
            log.info(
                "fit: dask X %d x %d %s, chunks %s; %s by randomized, n_iter=%s",
                n_samples,
                n_features,
                X.dtype,
                X.chunksize,
                f"the fewest components keeping {self.n_components:g} of ||X||_F^2"
                if fixed_accuracy
                else f"{self.n_components} components",
                self.n_iter,
            )
        # As in memory, decompose X.T when X is wide (then X @ V = U diag(s) exactly).
        wide = n_samples < n_features
        M, tall = check_dask_matrix(X.T if wide else X, "X")
        n_iter = None if self.n_iter == "auto" else int(self.n_iter)
        t0 = time.perf_counter()
        if fixed_accuracy:
            tol = math.sqrt(1.0 - float(self.n_components))
            U, Sigma, VT, err = _fixed_accuracy_dask_core(
                M, tall, tol, None, n_iter, random_state, want_error=log is not None, stacklevel=5
            )
        else:
            U, Sigma, VT, err = _truncated_svd_dask_core(
                M,
                tall,
                int(self.n_components),
                int(self.n_oversamples),
                n_iter,
                random_state,
                want_error=log is not None,
            )
        if log is not None:
            log.info(
                "truncated_svd: rank %d, relative error %.4g (%.4f of ||X||_F^2 kept) in %.3f s",
                Sigma.shape[0],
                err,
                1.0 - err**2,
                time.perf_counter() - t0,
            )
        # Only the components are needed in memory: for wide X they are U^H (thin, computed).
        xp = dask_chunk_namespace(X)
        V = xp.ascontiguousarray(U.compute() if wide else VT.T)
        # scikit-learn's sign rule on the components (U is not needed: X_new = X V).
        V, _ = flip_signs(V, xp.ones((V.shape[1], 1), dtype=V.dtype), xp)
        self.components_ = xp.ascontiguousarray(V.T)
        self.n_components_ = self.components_.shape[0]
        self.singular_values_ = Sigma
        t0 = time.perf_counter()
        X_transformed = lazy_product(X, self.components_.T, n_features, "TruncatedSVD expects")
        exp_var, full_var = column_variances(X, X_transformed)
        self.explained_variance_ = exp_var
        self.explained_variance_ratio_ = exp_var / full_var
        if log is not None:
            log.debug("explained variance (one pass over X) in %.3f s", time.perf_counter() - t0)
            log.info(
                "done: %d components, explained variance ratio %.4f (centred), fit took %.3f s",
                self.n_components_,
                float(np.sum(self.explained_variance_ratio_)),
                time.perf_counter() - t_start,
            )
        return X_transformed
