"""``IncrementalSVD``: a truncated SVD kept up to date as batches of samples arrive."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import gen_batches
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import validate_data

from .._array import is_cupy_array, is_dask_array, is_sparse, namespace
from .._validation import check_random_state
from ..linalg._svd_update import _max_abs, _svd_update_core
from ._base import ComponentsTransformerMixin

__all__ = ["IncrementalSVD"]

# Default rows per update in fit(), measured (2-core machine shared with other jobs, one
# BLAS thread, best of 2; 50 components, n_oversamples=10 (the default then), so 60 tracked
# directions):
# - sparse, TF-IDF of 12000 12-line chunks of the standard library's sources (15679
#   features, 341k non-zeros); TruncatedSVD on the whole matrix 1.36 s, energy 0.998:
#       batch rows      300     600     1200    2000    4000
#       time (s)        17.5    8.7     5.3     7.2     13.3
#       energy kept     0.972   0.982   0.990   0.988   0.988
#   Narrow batches pay the fixed cost of each update (m x k products) and truncate more
#   often; wide ones pay the c x c row-side Gram matrix and compress a larger remainder into
#   the same sketch. 20 rows per tracked direction (1200 here) is the best of both.
#   Re-measured after the row-side compression began to rank the batch's directions by the
#   updated matrix (TF-IDF 12000 x 30000, n_oversamples=20, so 1400 rows by default; one
#   thread, best of 2, noisy):
#       batch rows      300     700     1400    2800    4000
#       time (s)        5.2     2.4     3.1     4.5     5.2
#       energy kept     0.991   0.994   0.996   0.996   0.998
#   700-1400 rows remain the fastest; the default keeps more energy than the optimum's 99%.
# - dense, 8000 x 1000: 300 rows 9.2 s, 1200 6.5 s, 2400 5.2 s, 5000 4.2 s (all keep the
#   energy): dense batches are views of X and their cost per row falls with width, so the
#   rule is IncrementalPCA's (5 * n_features), never below the sparse one.
_ROWS_PER_DIRECTION = 20
# Rank of the randomized compression of a wide batch, relative to the tracked rank.
_SKETCH_FACTOR = 2


class IncrementalSVD(
    ComponentsTransformerMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Truncated SVD of a matrix whose rows (samples) arrive in batches.

    Each :meth:`partial_fit` updates the right singular vectors and singular values with the
    core of :func:`sparselin.svd_update`; the left vectors, which grow with the number of
    samples, are not kept, so memory is ``O(n_components * n_features)`` however long the
    stream. A batch's part inside the tracked basis is taken exactly; when a batch has more
    than four times as many rows as the tracked rank ``n_components + n_oversamples``, its
    part outside the basis is compressed first to a randomized approximation of twice that
    rank — for a sparse batch from the batch's own Gram matrix (rows x rows, one sparse
    product), keeping the combinations of its rows that the updated top directions need, for
    a dense one by a block Krylov sketch — so sparse batches stay sparse and a
    batch of thousands of rows costs little more than a few products with it. Every
    ``reorthogonalize_every`` updates the basis is re-orthonormalised, so it stays
    orthonormal to working precision over thousands of updates. Unlike
    :class:`sklearn.decomposition.IncrementalPCA` the data are not centred (this is to
    ``TruncatedSVD`` what ``IncrementalPCA`` is to ``PCA``). NumPy and CuPy data are both
    accepted by :meth:`fit` and :meth:`partial_fit`; the fitted attributes live on the
    data's device. A dask array (NumPy or CuPy chunks) is streamed: :meth:`fit` and
    :meth:`partial_fit` compute its row blocks one at a time, in order, each once, and apply
    one update per block (see ``batch_size``), so the data never has to fit in memory; the
    fitted attributes are in memory and :meth:`transform` of a dask array is lazy.

    Parameters
    ----------
    n_components : int, default=2
        Rank kept, at most ``n_features``.
    batch_size : int, optional
        Rows per update in :meth:`fit`. Default, chosen by measurement (see the comment at
        ``_ROWS_PER_DIRECTION`` in the source): ``20 * (n_components + n_oversamples)``
        for sparse X, and at least ``5 * n_features`` (as ``IncrementalPCA``) for dense X.
        For a dask X the default batches are its row chunks; a set ``batch_size`` re-cuts
        them (the batches of the in-memory fit).
    n_oversamples : int, default=20
        Extra directions tracked beyond ``n_components``. Each update truncates the SVD and
        discards its tail; tracking more directions than are reported keeps that loss away
        from the reported ones (the same reason randomized SVD oversamples). Measured on
        TF-IDF of the standard library's sources (12000 x 30000, 50 components, 10 sparse
        batches, ``n_iter=2``): 10 keeps 99.0% of the optimal energy, 20 keeps 99.4%.
    reorthogonalize_every : int, default=100
        Re-orthonormalise the basis after this many updates (0 never).
    n_iter : int, default=2
        Power iterations of the randomized compression of wide batches: more come closer
        to the exact update. A dense batch is read twice more per iteration; a sparse one
        not at all (its iterations run on its small Gram matrix, bordered by the tracked
        directions).
    random_state : int, RandomState instance or None, default=None
        Seed of the Gaussian test matrices of the batch compression.

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
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components: int = 2,
        *,
        batch_size: int | None = None,
        n_oversamples: int = 20,
        reorthogonalize_every: int = 100,
        n_iter: int = 2,
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.batch_size = batch_size
        self.n_oversamples = n_oversamples
        self.reorthogonalize_every = reorthogonalize_every
        self.n_iter = n_iter
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> IncrementalSVD:
        """Fit on X by streaming it in batches of ``batch_size`` rows (state is reset).

        X may be a dask array: its row blocks are computed and applied one at a time.

        Returns
        -------
        self : IncrementalSVD
        """
        if is_dask_array(X):
            return self._fit_dask(X)
        X = self._validate(X, reset=True)
        self._reset()
        batch = self.batch_size
        if batch is None:
            batch = _ROWS_PER_DIRECTION * (self.n_components + self.n_oversamples)
            if not is_sparse(X):
                batch = max(batch, 5 * X.shape[1])
        for rows in gen_batches(X.shape[0], batch, min_batch_size=1):
            self._update(X[rows])
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any = None) -> IncrementalSVD:
        """Append the rows of X (array-like or sparse) to the data and update the SVD.

        For a dask X, one update per row block, computed one at a time (as calling
        ``partial_fit`` on each block in turn).

        Returns
        -------
        self : IncrementalSVD
        """
        if is_dask_array(X):
            # One update per row block of X, as partial_fit on each block in turn.
            from ..linalg._dask import check_dask_stream, stream_blocks

            check_dask_stream(X, "X", 0, width=getattr(self, "n_features_in_", None))
            for block in stream_blocks(X, 0):
                self._partial_fit_one(block)
            return self
        self._partial_fit_one(X)
        return self

    def _partial_fit_one(self, X: Any) -> None:
        first = not hasattr(self, "components_")
        X = self._validate(X, reset=first)
        if first:
            self._reset()
        elif X.dtype != self._V.dtype:
            X = X.astype(np.result_type(X.dtype, self._V.dtype))
        self._update(X)

    def _fit_dask(self, X: Any) -> IncrementalSVD:
        """:meth:`fit` on a dask array: one pass over its row blocks, each computed once.

        The batches are X's row chunks, or ``batch_size`` rows each when it is set (the
        same batches as :meth:`fit` on the in-memory array); one or two of them are in
        memory at a time.
        """
        from ..linalg._dask import check_dask_stream, stream_blocks

        check_dask_stream(X, "X", 0)
        self._reset()
        for i, block in enumerate(stream_blocks(X, 0, self.batch_size)):
            self._update(self._validate(block, reset=i == 0))
        return self

    def _validate(self, X: Any, reset: bool) -> Any:
        if not is_cupy_array(X):
            X = validate_data(
                self, X, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32], reset=reset
            )
            if is_sparse(X) and not X.has_canonical_format:
                # Duplicate entries mean their sum; the update's norms read X.data.
                X = X.copy()
                X.sum_duplicates()
            return X
        # Device data: scikit-learn's checks would copy it to the host, so the same checks
        # are made here, on the device.
        if X.ndim != 2 or 0 in X.shape:
            raise ValueError(f"X must be a non-empty 2-D array, got shape {X.shape}")
        if X.dtype not in (np.float32, np.float64):
            if X.dtype.kind not in "biuf":
                raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
            X = X.astype(np.float64)
        if not np.isfinite(_max_abs(X, namespace(X))):
            raise ValueError("Input X contains NaN or infinity.")
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but IncrementalSVD is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X

    def _reset(self) -> None:
        for attr in ("components_", "singular_values_", "n_components_", "_V", "_s"):
            if hasattr(self, attr):
                delattr(self, attr)
        self.n_samples_seen_ = 0
        self._n_updates = 0
        self._rng = check_random_state(self.random_state)

    def _update(self, X: Any) -> None:
        n_features = X.shape[1]
        if self.n_components > n_features:
            raise ValueError(
                f"n_components={self.n_components} must be <= n_features={n_features}"
            )
        xp = namespace(X)
        if not hasattr(self, "_V"):
            self._V = xp.zeros((n_features, 0), dtype=X.dtype)
            self._s = xp.zeros(0, dtype=X.dtype)
        every = self.reorthogonalize_every
        # Rows of X are new columns of X^T = V diag(s) W^T: only the V side is tracked. The
        # transpose of a CSR batch is a CSC view, so the batch is read as it is stored.
        V, s, _ = _svd_update_core(
            self._V,
            self._s,
            None,
            X.T,
            self.n_components + self.n_oversamples,
            xp,
            sketch=_SKETCH_FACTOR * (self.n_components + self.n_oversamples),
            n_iter=self.n_iter,
            random_state=self._rng,
            reorthogonalize_first=bool(every)
            and self._n_updates > 0
            and not (self._n_updates % every),
        )
        self._n_updates += 1
        self._V, self._s = V, s
        keep = min(self.n_components, s.shape[0])
        self.components_ = xp.ascontiguousarray(V[:, :keep].T)
        self.singular_values_ = s[:keep].copy()
        self.n_components_ = keep
        self.n_samples_seen_ += X.shape[0]
