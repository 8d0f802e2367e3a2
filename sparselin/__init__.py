"""sparselin: low-rank and sparse structure in matrices and signals, on CPU and GPU.

The public functions and estimators are importable from the top level::

    from sparselin import truncated_svd, svd_update, TruncatedSVD, IncrementalSVD
    from sparselin import fwht, sparse_wht
"""

from ._info import show_versions, system_info
from ._version import __version__
from .estimators import IncrementalSVD, TruncatedSVD
from .linalg import svd_update, truncated_svd
from .transforms import fwht, sparse_wht

__all__ = [
    "IncrementalSVD",
    "TruncatedSVD",
    "__version__",
    "fwht",
    "show_versions",
    "sparse_wht",
    "svd_update",
    "system_info",
    "truncated_svd",
]
