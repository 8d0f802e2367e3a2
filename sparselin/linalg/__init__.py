"""Truncated and incremental SVD.

Public functions: :func:`truncated_svd`, :func:`svd_update`, and the estimator
:class:`IncrementalSVD` (defined with the other estimators, re-exported here).
"""

from ._svd_update import svd_update
from ._truncated_svd import truncated_svd

__all__ = ["IncrementalSVD", "svd_update", "truncated_svd"]


def __getattr__(name: str):
    # The estimator lives in sparselin.estimators (estimators import linalg, so importing it
    # eagerly here would be circular); it is resolved on first access.
    if name == "IncrementalSVD":
        from ..estimators import IncrementalSVD

        return IncrementalSVD
    raise AttributeError(f"module 'sparselin.linalg' has no attribute {name!r}")
