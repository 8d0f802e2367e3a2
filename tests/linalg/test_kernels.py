"""The Numba kernels against the NumPy expressions they replace."""

from __future__ import annotations

import numpy as np
import pytest

from sparselin.linalg._kernels import abs_argmax_columns


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_abs_argmax_columns_matches_numpy(dtype):
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (7, 3), (200, 40), (3, 9)]:
        U = rng.standard_normal(shape).astype(dtype)
        np.testing.assert_array_equal(abs_argmax_columns(U), np.argmax(np.abs(U), axis=0))
    # Ties, including +x against -x, go to the first row, as numpy.argmax does.
    U = rng.integers(-2, 3, size=(50, 20)).astype(dtype)
    np.testing.assert_array_equal(abs_argmax_columns(U), np.argmax(np.abs(U), axis=0))


def test_kernels_follow_the_numba_conventions():
    # cache=True (compiled code kept on disk between processes), as sparselin._numba says.
    assert type(abs_argmax_columns._cache).__name__ != "NullCache"
