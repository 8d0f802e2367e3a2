"""What the SVD estimators share: projection on ``components_`` and back."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .._array import is_dask_array


class ComponentsTransformerMixin:
    """``transform``/``inverse_transform`` for estimators that store ``components_``."""

    def transform(self, X: Any) -> np.ndarray:
        """Project X on the components: ``X @ components_.T``.

        A dask X gives a lazy dask array with X's row chunks (nothing is computed here).
        """
        check_is_fitted(self)
        if is_dask_array(X):
            from ..linalg._dask import lazy_product

            what = f"{type(self).__name__} is expecting"
            return lazy_product(X, self.components_.T, self.n_features_in_, what)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        return safe_sparse_dot(X, self.components_.T)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Map reduced data back to feature space: ``X @ components_`` (lazy for dask X)."""
        check_is_fitted(self)
        if is_dask_array(X):
            from ..linalg._dask import lazy_product

            what = f"{type(self).__name__}.inverse_transform expects"
            return lazy_product(X, self.components_, self.components_.shape[0], what)
        X = check_array(X)
        return np.dot(X, self.components_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]
