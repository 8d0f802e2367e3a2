"""``IncrementalSVD``: a truncated SVD kept up to date as batches of samples arrive."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import gen_batches
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import validate_data

from ..linalg._dense import flip_signs
from ..linalg._svd_update import _append_columns, _reorthogonalize_left
from ._base import ComponentsTransformerMixin

__all__ = ["IncrementalSVD"]


class IncrementalSVD(
    ComponentsTransformerMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Truncated SVD of a matrix whose rows (samples) arrive in batches.

    Each :meth:`partial_fit` applies Brand's update (:func:`sparselin.svd_update`) to the
    right singular vectors and singular values; the left vectors, which grow with the number
    of samples, are not kept, so memory is ``O(n_components * n_features)`` however long the
    stream. Every ``reorthogonalize_every`` updates the basis is re-orthonormalised, so it
    stays orthonormal to working precision over thousands of updates. Unlike
    :class:`sklearn.decomposition.IncrementalPCA` the data are not centred (this is to
    ``TruncatedSVD`` what ``IncrementalPCA`` is to ``PCA``).

    Parameters
    ----------
    n_components : int, default=2
        Rank kept, at most ``n_features``.
    batch_size : int, optional
        Rows per update in :meth:`fit`; default ``5 * n_features`` (as ``IncrementalPCA``).
    n_oversamples : int, default=10
        Extra directions tracked beyond ``n_components``. Each update truncates the SVD and
        discards its tail; tracking a few more directions than are reported keeps that loss
        away from the reported ones (the same reason randomized SVD oversamples).
    reorthogonalize_every : int, default=100
        Re-orthonormalise the basis after this many updates (0 never).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Right singular vectors of all data seen so far.
    singular_values_ : ndarray of shape (n_components,)
        Singular values of all data seen so far.
    n_components_ : int
        Current rank (smaller than ``n_components`` until enough samples were seen).
    n_samples_seen_ : int
        Number of samples seen.
    n_features_in_ : int
        Number of features.

    See Also
    --------
    sparselin.svd_update : the update this estimator applies.
    sparselin.TruncatedSVD : the batch decomposition.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin import IncrementalSVD
    >>> X = np.random.default_rng(0).standard_normal((200, 30))
    >>> est = IncrementalSVD(n_components=5)
    >>> for batch in np.array_split(X, 4):
    ...     est = est.partial_fit(batch)
    >>> s = np.linalg.svd(X, compute_uv=False)[:5]
    >>> bool(np.all(est.singular_values_ <= s + 1e-12))
    True
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "n_oversamples": [Interval(Integral, 0, None, closed="left")],
        "reorthogonalize_every": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        n_components: int = 2,
        *,
        batch_size: int | None = None,
        n_oversamples: int = 10,
        reorthogonalize_every: int = 100,
    ) -> None:
        self.n_components = n_components
        self.batch_size = batch_size
        self.n_oversamples = n_oversamples
        self.reorthogonalize_every = reorthogonalize_every

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> IncrementalSVD:
        """Fit on X by streaming it in batches of ``batch_size`` rows (state is reset)."""
        X = validate_data(
            self, X, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32], reset=True
        )
        self._reset()
        n_samples, n_features = X.shape
        batch = self.batch_size or 5 * n_features
        for rows in gen_batches(n_samples, batch, min_batch_size=1):
            self._update(X[rows])
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any = None) -> IncrementalSVD:
        """Append the rows of X (array-like or sparse) to the data and update the SVD."""
        first = not hasattr(self, "components_")
        X = validate_data(
            self, X, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32], reset=first
        )
        if first:
            self._reset()
        elif X.dtype != self.components_.dtype:
            X = X.astype(np.result_type(X.dtype, self.components_.dtype))
        self._update(X)
        return self

    def _reset(self) -> None:
        for attr in ("components_", "singular_values_", "n_components_", "_V", "_s"):
            if hasattr(self, attr):
                delattr(self, attr)
        self.n_samples_seen_ = 0
        self._n_updates = 0

    def _update(self, X: Any) -> None:
        n_features = X.shape[1]
        if self.n_components > n_features:
            raise ValueError(
                f"n_components={self.n_components} must be <= n_features={n_features}"
            )
        dense = X.toarray() if sp.issparse(X) else np.asarray(X)
        tracked = self.n_components + self.n_oversamples
        if not hasattr(self, "_V"):
            # First batch: its exact thin SVD (small: batch rows x features).
            _, s, Vt = np.linalg.svd(dense, full_matrices=False)
            k = min(tracked, s.shape[0])
            V = np.ascontiguousarray(Vt[:k].T)
            V, _ = flip_signs(V, np.empty((k, 0), dtype=V.dtype), np)
            s = s[:k]
        else:
            V, s = self._V, self._s
            if self.reorthogonalize_every and self._n_updates % self.reorthogonalize_every == 0:
                V, s = _reorthogonalize_left(V, s, np)
            k = min(tracked, n_features, s.shape[0] + dense.shape[0])
            # Rows of X are new columns of X^T = V diag(s) U^T: update the V side only.
            V, s, _ = _append_columns(V, s, None, np.ascontiguousarray(dense.T), k, np, _t)
        self._n_updates += 1
        self._V, self._s = V, s
        keep = min(self.n_components, s.shape[0])
        self.components_ = np.ascontiguousarray(V[:, :keep].T)
        self.singular_values_ = s[:keep].copy()
        self.n_components_ = keep
        self.n_samples_seen_ += X.shape[0]


def _t(X: Any) -> Any:
    return X.T
