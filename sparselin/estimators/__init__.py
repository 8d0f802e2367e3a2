"""scikit-learn estimators: thin shells over sparselin's functions."""

from ._incremental_svd import IncrementalSVD
from ._linear_model import LADLasso, OMPRegressor, SqrtLasso, WeightedLasso
from ._robust_pca import RobustPCA
from ._sbl import KroneckerSBL
from ._truncated_svd import TruncatedSVD

__all__ = [
    "IncrementalSVD",
    "KroneckerSBL",
    "LADLasso",
    "OMPRegressor",
    "RobustPCA",
    "SqrtLasso",
    "TruncatedSVD",
    "WeightedLasso",
]
