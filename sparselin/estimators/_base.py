"""What the SVD estimators share: projection on ``components_`` and back."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import check_array, check_is_fitted, validate_data


class ComponentsTransformerMixin:
    """``transform``/``inverse_transform`` for estimators that store ``components_``."""

    def transform(self, X: Any) -> np.ndarray:
        """Project X on the components: ``X @ components_.T``."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        return safe_sparse_dot(X, self.components_.T)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Map reduced data back to feature space: ``X @ components_``."""
        check_is_fitted(self)
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
