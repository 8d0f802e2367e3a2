"""Truncated and incremental SVD.

Public functions: :func:`truncated_svd` and :func:`svd_update`. The estimators built on them
(:class:`sparselin.TruncatedSVD`, :class:`sparselin.IncrementalSVD`) live in
:mod:`sparselin.estimators`, one layer up: the functional core never imports the estimators.

Concatenated-matrix SVD: :func:`concat_error_bounds` (provable upper bounds on the rank-r
error of ``[A_1 ... A_N]`` from per-block quantities), :func:`estimate_concat_error` and
:class:`ConcatErrorEstimator` (the incremental estimate), and :func:`cluster_matrices`
(error-constrained grouping of matrices, returning :class:`MatrixClusters`);
:func:`compress_collection` stores a collection as shared bases plus coefficients
(:class:`CompressedCollection`) within a per-matrix error threshold.
"""

from ._cluster import MatrixClusters, cluster_matrices
from ._collection import CompressedCollection, compress_collection
from ._concat import (
    ConcatErrorBounds,
    ConcatErrorEstimator,
    concat_error_bounds,
    estimate_concat_error,
)
from ._svd_update import svd_update
from ._truncated_svd import truncated_svd

__all__ = [
    "CompressedCollection",
    "ConcatErrorBounds",
    "ConcatErrorEstimator",
    "MatrixClusters",
    "cluster_matrices",
    "compress_collection",
    "concat_error_bounds",
    "estimate_concat_error",
    "svd_update",
    "truncated_svd",
]
