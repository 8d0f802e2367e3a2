"""scikit-learn estimator ``RobustPCA`` over :func:`sparselin.robust.robust_pca`."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .._array import is_dask_array
from ..robust import robust_pca
from ._truncated_svd import flip_by_components

__all__ = ["RobustPCA"]


class RobustPCA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Robust PCA: the training data split into a low-rank part and sparse outliers.

    Fits ``X ≈ low_rank_ + sparse_`` with :func:`sparselin.robust.robust_pca` (principal
    component pursuit by default, or the robust SVD rSVDdpd) and keeps the leading right
    singular vectors of the low-rank part as ``components_``: a subspace that the outliers
    of ``X`` do not pull away, unlike that of :class:`sklearn.decomposition.PCA`. As in
    :class:`sklearn.decomposition.TruncatedSVD`, the data are not centred (robust PCA
    decomposes X itself; a centred copy would spread every outlier over its column).

    Parameters
    ----------
    n_components : int, optional
        Components kept in ``components_`` (and the width of ``transform``). PCP: the leading
        ``n_components`` of the low-rank part, whose rank PCP finds itself (None: all of
        them; fewer are kept when the rank is lower). rSVDdpd: the rank of the robust fit
        (None: 1, the background model of video surveillance).
    method : {"pcp", "rsvddpd"}, default="pcp"
        The algorithm (see :func:`sparselin.robust.robust_pca`).
    lam : float > 0, optional
        PCP's l1 weight; default ``1 / sqrt(max(n_samples, n_features))``.
    alpha : float in [0, 1], default=0.3
        rSVDdpd's robustness parameter (0: the ordinary SVD).
    tol : float in (0, 1), default=1e-7
        Stopping tolerance (PCP: relative residual ``||X - L - S||_F / ||X||_F``).
    max_iter : int, optional
        Iteration limit (default 1000 for PCP, 100 for rSVDdpd); reaching it warns with a
        ``ConvergenceWarning``.
    random_state : int, RandomState instance or None, default=None
        Seed of the random sketches (PCP) or starting vectors (rSVDdpd).

    Attributes
    ----------
    low_rank_ : ndarray of shape (n_samples, n_features)
        The low-rank part of the training data (missing entries filled in).
    sparse_ : ndarray of shape (n_samples, n_features)
        The sparse part: corruptions (PCP) or the residual ``X - low_rank_`` (rSVDdpd). Zero
        at missing entries.
    components_ : ndarray of shape (n_components, n_features)
        Leading right singular vectors of ``low_rank_``; the largest entry of each is positive.
    singular_values_ : ndarray of shape (n_components,)
        The matching singular values of ``low_rank_``.
    n_components_ : int
        Number of components kept.
    rank_ : int
        Rank of ``low_rank_``.
    n_iter_ : int
        Iterations the solver ran.
    converged_ : bool
        Whether the solver met ``tol`` within ``max_iter``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in,)
        Feature names seen during fit, when X has string column names.

    See Also
    --------
    sparselin.robust.robust_pca : the function this estimator wraps.
    sparselin.TruncatedSVD : the non-robust decomposition.

    Notes
    -----
    Missing values: with ``method="pcp"``, NaN entries of the training data are unobserved
    and filled in by ``low_rank_``. ``transform`` projects a sample with NaN entries by least
    squares on its observed features.

    Dask input: ``fit`` accepts a dask array chunked along one dimension and runs on dask's
    own scheduler (see :func:`sparselin.robust.robust_pca`); ``low_rank_`` and ``sparse_``
    are then dask arrays, ``components_`` and ``singular_values_`` are in memory, and
    ``transform`` of a dask array is a lazy dask array with its row chunks.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin import RobustPCA
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((300, 4)) @ rng.standard_normal((4, 50))
    >>> X[rng.random(X.shape) < 0.05] = 25.0  # gross corruptions
    >>> rpca = RobustPCA(random_state=0).fit(X)
    >>> rpca.n_components_, rpca.transform(X).shape
    (4, (300, 4))
    >>> bool(np.linalg.norm(X - rpca.low_rank_ - rpca.sparse_) <= 1e-6 * np.linalg.norm(X))
    True
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "method": [StrOptions({"pcp", "rsvddpd"})],
        "lam": [Interval(Real, 0, None, closed="neither"), None],
        "alpha": [Interval(Real, 0, 1, closed="both")],
        "tol": [Interval(Real, 0, 1, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components: int | None = None,
        *,
        method: str = "pcp",
        lam: float | None = None,
        alpha: float = 0.3,
        tol: float = 1e-7,
        max_iter: int | None = None,
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.method = method
        self.lam = lam
        self.alpha = alpha
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> RobustPCA:
        """Fit the decomposition on X (n_samples x n_features; NaN = missing for PCP).

        Returns
        -------
        self : RobustPCA
        """
        if is_dask_array(X):
            return self._fit_dask(X)
        X = validate_data(
            self,
            X,
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan" if self.method == "pcp" else True,
        )
        n_features = X.shape[1]
        if self.n_components is not None and self.n_components > min(X.shape):
            raise ValueError(
                f"n_components={self.n_components} must be <= min(n_samples, n_features)="
                f"{min(X.shape)}"
            )
        result = robust_pca(X, **self._solver_options())
        k = result.rank if self.n_components is None else min(self.n_components, result.rank)
        _, Vt = flip_by_components(result.U[:, :k], result.Vt[:k])
        self._store(result, np.ascontiguousarray(Vt).reshape(k, n_features), k)
        return self

    def _fit_dask(self, X: Any) -> RobustPCA:
        """``fit`` on a dask X: the data stay distributed, the components come back."""
        if X.ndim != 2:
            raise ValueError(f"Expected a 2-D dask array, got ndim={X.ndim}")
        if self.n_components is not None and self.n_components > min(X.shape):
            raise ValueError(
                f"n_components={self.n_components} must be <= min(n_samples, n_features)="
                f"{min(X.shape)}"
            )
        result = robust_pca(X, **self._solver_options())
        k = result.rank if self.n_components is None else min(self.n_components, result.rank)
        # The sign rule reads only the components: U (distributed) is not needed for it.
        _, Vt = flip_by_components(np.zeros((1, k), result.Vt.dtype), result.Vt[:k])
        self._store(result, np.ascontiguousarray(Vt).reshape(k, X.shape[1]), k)
        self.n_features_in_ = int(X.shape[1])
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def _solver_options(self) -> dict:
        random_state = self.random_state
        if isinstance(random_state, np.random.RandomState):
            # robust_pca draws from a Generator; a RandomState seeds one reproducibly.
            random_state = np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
        rank = self.n_components if self.method == "pcp" else (self.n_components or 1)
        return {
            "method": self.method,
            "lam": self.lam,
            "rank": None if self.method == "pcp" else rank,
            "tol": self.tol,
            "max_iter": self.max_iter,
            "alpha": self.alpha,
            "random_state": random_state,
        }

    def _store(self, result: Any, components: Any, k: int) -> None:
        self.low_rank_ = result.low_rank
        self.sparse_ = result.sparse
        self.components_ = components
        self.singular_values_ = result.s[:k]
        self.n_components_ = k
        self.rank_ = result.rank
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged

    def transform(self, X: Any) -> np.ndarray:
        """Project X on the robust subspace: ``X @ components_.T``.

        With ``method="pcp"``, a sample with NaN entries is projected by least squares on its
        observed features.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        if is_dask_array(X):
            return self._transform_dask(X)
        X = validate_data(
            self,
            X,
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan" if self.method == "pcp" else True,
            reset=False,
        )
        return _project(X, self.components_, self.method == "pcp")

    def _transform_dask(self, X: Any) -> Any:
        """``transform`` of a dask X: each chunk of rows projected in its own task (lazy)."""
        import math

        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got a dask array with ndim={X.ndim}")
        if math.isnan(X.shape[1]):
            raise ValueError(
                f"X has unknown chunk sizes along axis 1 (shape {X.shape}); call "
                "X.compute_chunk_sizes() first"
            )
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but RobustPCA is expecting "
                f"{self.n_features_in_} features as input."
            )
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        k = self.components_.shape[0]
        # Whole rows per task: a sample with NaN entries is solved on its observed features.
        return X.rechunk({1: -1}).map_blocks(
            _project,
            self.components_,
            self.method == "pcp",
            chunks=(X.chunks[0], (k,)),
            dtype=dtype,
            meta=np.empty((0, 0), dtype),
        )

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Map projected data back to feature space: ``X @ components_``."""
        check_is_fitted(self)
        X = check_array(X, dtype=[np.float64, np.float32])
        return X @ self.components_.astype(X.dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.method == "pcp"
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]


def _project(X: Any, components: Any, allow_nan: bool) -> np.ndarray:
    """``X @ components.T``; a row with NaN entries by least squares on its observed ones."""
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    V = components.astype(X.dtype, copy=False)
    missing = np.isnan(X)
    if not allow_nan and (missing.any() or not np.isfinite(X).all()):
        raise ValueError("Input X contains NaN or infinity.")
    rows = np.flatnonzero(missing.any(axis=1))
    if not rows.size:
        return X @ V.T
    out = np.where(missing, 0, X) @ V.T
    for i in rows:
        seen = ~missing[i]
        coef, *_ = np.linalg.lstsq(V[:, seen].T, X[i, seen], rcond=None)
        out[i] = coef
    return out
