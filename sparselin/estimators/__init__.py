"""scikit-learn estimators: thin shells over sparselin's functions."""

from ._incremental_svd import IncrementalSVD
from ._truncated_svd import TruncatedSVD

__all__ = ["IncrementalSVD", "TruncatedSVD"]
