"""Robust PCA: principal component pursuit (inexact ALM with partial SVDs) and rSVDdpd.

Public functions: :func:`robust_pca` (with its result, :class:`RobustPCAResult`) and the video
helpers :func:`frames_to_matrix` and :func:`matrix_to_frames`. The estimator built on them,
:class:`sparselin.estimators.RobustPCA`, lives one layer up.
"""

from ._robust_pca import RobustPCAResult, robust_pca
from ._video import frames_to_matrix, matrix_to_frames

__all__ = ["RobustPCAResult", "frames_to_matrix", "matrix_to_frames", "robust_pca"]
