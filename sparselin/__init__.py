"""sparselin: low-rank and sparse structure in matrices and signals, on CPU and GPU.

The public functions and estimators are importable from the top level::

    from sparselin import truncated_svd, svd_update, TruncatedSVD, IncrementalSVD
    from sparselin import omp, loss_omp, weighted_lasso, sbl, kronecker_sbl, KroneckerSBL
    from sparselin import fwht, sparse_wht
"""

from ._info import show_versions, system_info
from ._version import __version__
from .estimators import (
    IncrementalSVD,
    KroneckerSBL,
    LADLasso,
    OMPRegressor,
    SqrtLasso,
    TruncatedSVD,
    WeightedLasso,
)
from .linalg import svd_update, truncated_svd
from .recovery import (
    kronecker_sbl,
    lad_lasso,
    loss_omp,
    omp,
    sbl,
    sqrt_lasso,
    weighted_lasso,
)
from .transforms import fwht, sparse_wht

__all__ = [
    "IncrementalSVD",
    "KroneckerSBL",
    "LADLasso",
    "OMPRegressor",
    "SqrtLasso",
    "TruncatedSVD",
    "WeightedLasso",
    "__version__",
    "fwht",
    "kronecker_sbl",
    "lad_lasso",
    "loss_omp",
    "omp",
    "sbl",
    "show_versions",
    "sparse_wht",
    "sqrt_lasso",
    "svd_update",
    "system_info",
    "truncated_svd",
    "weighted_lasso",
]
