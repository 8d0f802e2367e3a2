"""Truncated and incremental SVD.

Public functions: :func:`truncated_svd` and :func:`svd_update`. The estimators built on them
(:class:`sparselin.TruncatedSVD`, :class:`sparselin.IncrementalSVD`) live in
:mod:`sparselin.estimators`, one layer up: the functional core never imports the estimators.
"""

from ._svd_update import svd_update
from ._truncated_svd import truncated_svd

__all__ = ["svd_update", "truncated_svd"]
