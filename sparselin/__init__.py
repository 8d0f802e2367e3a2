"""sparselin: low-rank and sparse structure in matrices and signals, on CPU and GPU.

The public functions and estimators are importable from the top level::

    from sparselin import truncated_svd, svd_update, TruncatedSVD, IncrementalSVD
    from sparselin import omp, loss_omp, weighted_lasso, sbl, kronecker_sbl, KroneckerSBL
    from sparselin import fwht, sparse_wht
    from sparselin import concat_error_bounds, cluster_matrices, compress_collection
    from sparselin import robust_pca, RobustPCA

The PyTorch adapters (layers, ``compress_linear``, ``compress_model``) live in
:mod:`sparselin.torch`, the only module that imports torch.
"""

from ._info import show_versions, system_info
from ._version import __version__
from .estimators import (
    IncrementalSVD,
    KroneckerSBL,
    LADLasso,
    OMPRegressor,
    RobustPCA,
    SqrtLasso,
    TruncatedSVD,
    WeightedLasso,
)
from .linalg import (
    cluster_matrices,
    compress_collection,
    concat_error_bounds,
    estimate_concat_error,
    svd_update,
    truncated_svd,
)
from .recovery import (
    kronecker_sbl,
    lad_lasso,
    loss_omp,
    omp,
    sbl,
    sqrt_lasso,
    weighted_lasso,
)
from .robust import robust_pca
from .transforms import fwht, sparse_wht

__all__ = [
    "IncrementalSVD",
    "KroneckerSBL",
    "LADLasso",
    "OMPRegressor",
    "RobustPCA",
    "SqrtLasso",
    "TruncatedSVD",
    "WeightedLasso",
    "__version__",
    "cluster_matrices",
    "compress_collection",
    "concat_error_bounds",
    "estimate_concat_error",
    "fwht",
    "kronecker_sbl",
    "lad_lasso",
    "loss_omp",
    "omp",
    "robust_pca",
    "sbl",
    "show_versions",
    "sparse_wht",
    "sqrt_lasso",
    "svd_update",
    "system_info",
    "truncated_svd",
    "weighted_lasso",
]
