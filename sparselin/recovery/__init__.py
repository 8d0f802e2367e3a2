"""Sparse recovery: OMP, the loss-based weighted OMP family and the weighted LASSO solvers.

Public functions: :func:`omp`, :func:`loss_omp`, :func:`weighted_lasso`, :func:`sqrt_lasso`,
:func:`lad_lasso` and their ``*_path`` versions over a grid of ``lam``; sparse Bayesian
learning, :func:`sbl`, and its Kronecker-structured version :func:`kronecker_sbl`.
"""

from ._convex import (
    ConvexInfo,
    lad_lasso,
    lad_lasso_path,
    lam_max,
    sqrt_lasso,
    sqrt_lasso_path,
    weighted_lasso,
    weighted_lasso_path,
)
from ._greedy import LossOMPResult, loss_omp, omp
from ._kronecker_sbl import kron_matvec, kronecker_sbl
from ._sbl import SBLResult, sbl

__all__ = [
    "ConvexInfo",
    "LossOMPResult",
    "SBLResult",
    "kron_matvec",
    "kronecker_sbl",
    "lad_lasso",
    "lad_lasso_path",
    "lam_max",
    "loss_omp",
    "omp",
    "sbl",
    "sqrt_lasso",
    "sqrt_lasso_path",
    "weighted_lasso",
    "weighted_lasso_path",
]
