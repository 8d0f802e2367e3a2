"""The Numba kernels against the NumPy expressions they replace."""

from __future__ import annotations

import numpy as np
import pytest

from sparselin.linalg._kernels import _copy_sum_squares, abs_argmax_columns, copy_with_squared_norm


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
    for kernel in (abs_argmax_columns, _copy_sum_squares):
        assert type(kernel._cache).__name__ != "NullCache"


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (300, 47), (4096, 3)])
def test_copy_with_squared_norm_matches_astype_and_vdot(dtype, order, shape):
    rng = np.random.default_rng(1)
    A = rng.standard_normal(shape)
    if dtype == np.complex128:
        A = A + 1j * rng.standard_normal(shape)
    A = np.asarray(A, order=order)
    before = A.copy()
    low = np.float32 if dtype == np.float64 else np.complex64
    copy, norm2 = copy_with_squared_norm(A, np.dtype(low))
    np.testing.assert_array_equal(copy, A.astype(low))  # rounded exactly as astype rounds
    assert copy.flags.f_contiguous if order == "F" else copy.flags.c_contiguous
    np.testing.assert_allclose(norm2, np.vdot(A, A).real, rtol=1e-13)
    np.testing.assert_array_equal(A, before)


def test_copy_with_squared_norm_declines_strided_input():
    A = np.ones((10, 8))[:, ::2]
    assert copy_with_squared_norm(A, np.dtype(np.float32)) is None
