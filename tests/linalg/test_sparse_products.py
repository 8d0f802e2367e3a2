"""The host sparse kernels and the Operator's sparse products against SciPy's own products."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from sparselin.linalg import _operator
from sparselin.linalg._kernels import csr_matmat, csr_rmatmat, row_partition
from sparselin.linalg._operator import Operator, sketch_operator

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]
FORMATS = ["csr", "csc", "coo", "lil", "dok", "bsr", "dia"]


def _rtol(dtype):
    return 1e-5 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12


def _random(rng, shape, dtype, density=0.2):
    """A sparse matrix with an empty row and an empty column, in CSR."""
    A = sp.random(*shape, density=density, format="csr", random_state=rng, dtype=np.float64)
    if np.dtype(dtype).kind == "c":
        A = A + 1j * sp.random(*shape, density=density, format="csr", random_state=rng)
    A = A.tolil()
    if shape[0] > 2 and shape[1] > 2:
        A[1, :] = 0
        A[:, 2] = 0
    return A.tocsr().astype(dtype)


def _dense(rng, shape, dtype, order="C"):
    X = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        X = X + 1j * rng.standard_normal(shape)
    return np.asarray(X.astype(dtype), order=order)


def _check(got, want, dtype):
    scale = max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    np.testing.assert_allclose(got, want, rtol=_rtol(dtype), atol=_rtol(dtype) * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_operator_products_match_scipy(dtype, fmt):
    rng = np.random.default_rng(0)
    Acsr = _random(rng, (37, 23), dtype)
    A = Acsr.asformat(fmt)
    before = A.copy()
    op = Operator(A, "sparse", np)
    for width in (1, 4, 31):
        X = _dense(rng, (23, width), dtype)
        Y = _dense(rng, (37, width), dtype)
        _check(op.mm(X), Acsr @ X, dtype)
        _check(op.rmm(Y), Acsr.conj().T @ Y, dtype)
    # A 1-D vector, and F-ordered blocks, come back as SciPy's products do.
    x = _dense(rng, (23,), dtype)
    assert op.mm(x).shape == (37,)
    _check(op.mm(x), Acsr @ x, dtype)
    Yf = _dense(rng, (37, 5), dtype, order="F")
    _check(op.rmm(Yf), Acsr.conj().T @ Yf, dtype)
    # The user's matrix is untouched: same format, same arrays.
    assert A.format == before.format
    assert (A != before).nnz == 0


@pytest.mark.parametrize(
    "dtype, index_dtype",
    # int64 indices with one dtype: each pair is a compilation of its own.
    [(dtype, np.int32) for dtype in DTYPES] + [(np.complex128, np.int64)],
)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_non_canonical_matrices(fmt, dtype, index_dtype):
    # Duplicate entries (each adds its term) and unsorted indices within rows/columns, built
    # from raw arrays: SciPy's own constructors would sum the duplicates.
    rng = np.random.default_rng(1)
    m, n, nnz = 30, 20, 150
    rows = rng.integers(0, m, nnz)
    cols = rng.integers(0, n, nnz)
    rows[:10], cols[:10] = 3, 4  # ten entries at one position
    vals = _dense(rng, (nnz,), dtype)
    ref = np.zeros((m, n), dtype=dtype)
    np.add.at(ref, (rows, cols), vals)
    major, minor, size = (rows, cols, m) if fmt == "csr" else (cols, rows, n)
    order = np.argsort(major, kind="stable")  # grouped by row (column), random within
    indptr = np.concatenate(([0], np.cumsum(np.bincount(major, minlength=size))))
    cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
    raw = cls((m, n), dtype=dtype)
    raw.indptr = indptr.astype(index_dtype)
    raw.indices = minor[order].astype(index_dtype)
    raw.data = vals[order]
    raw.has_sorted_indices = False
    raw.has_canonical_format = False
    np.testing.assert_allclose(raw.toarray(), ref)  # SciPy agrees on what the arrays mean
    op = Operator(raw, "sparse", np)
    X = _dense(rng, (n, 7), dtype)
    Y = _dense(rng, (m, 7), dtype)
    for _ in range(2):  # the second product runs on the frequency order when it applies
        _check(op.mm(X), ref @ X, dtype)
        _check(op.rmm(Y), ref.conj().T @ Y, dtype)
    assert raw.indices.dtype == index_dtype and not raw.has_canonical_format


def test_duplicates_are_summed_by_the_kernels():
    # Two entries at (0, 1): 1 and 2 must act as 3.
    indptr = np.array([0, 2, 2])
    indices = np.array([1, 1])
    data = np.array([1.0, 2.0])
    X = np.array([[5.0], [7.0]])
    np.testing.assert_array_equal(csr_matmat(indptr, indices, data, X), [[21.0], [0.0]])
    Y = np.array([[1.0], [4.0]])
    np.testing.assert_array_equal(csr_rmatmat(indptr, indices, data, 2, Y), [[0.0], [3.0]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_chunks", [1, 2, 3, 50])
def test_kernels_with_any_partition(dtype, n_chunks):
    # The scatter form sums per-chunk buffers; the gather form splits rows. Either way the
    # partition must not change the result (beyond rounding).
    rng = np.random.default_rng(2)
    A = _random(rng, (41, 17), dtype, density=0.3)
    Y = _dense(rng, (41, 6), dtype)
    X = _dense(rng, (17, 6), dtype)
    bounds = row_partition(A.indptr, n_chunks)
    assert bounds[0] == 0 and bounds[-1] == 41 and np.all(np.diff(bounds) >= 0)
    _check(csr_matmat(A.indptr, A.indices, A.data, X, False, bounds), A @ X, dtype)
    _check(csr_matmat(A.indptr, A.indices, A.data, X, True, bounds), A.conj() @ X, dtype)
    _check(csr_rmatmat(A.indptr, A.indices, A.data, 17, Y, False, bounds), A.T @ Y, dtype)
    _check(csr_rmatmat(A.indptr, A.indices, A.data, 17, Y, True, bounds), A.conj().T @ Y, dtype)


def test_row_partition_balances_entries():
    # One long row among many short ones: the chunk holding it gets few other rows.
    lengths = np.ones(1000, dtype=np.int64)
    lengths[10] = 5000
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    bounds = row_partition(indptr, 4)
    work = np.diff((indptr + np.arange(indptr.size))[bounds])
    assert bounds[1] == 11  # the long row ends its chunk
    assert np.ptp(work[1:]) <= 4  # and the short rows are shared equally by the others


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_empty_and_degenerate_shapes(fmt):
    A = sp.csr_matrix((5, 3)).asformat(fmt)  # no entries at all
    op = Operator(A, "sparse", np)
    np.testing.assert_array_equal(op.mm(np.ones((3, 2))), np.zeros((5, 2)))
    np.testing.assert_array_equal(op.rmm(np.ones((5, 2))), np.zeros((3, 2)))
    assert op.mm(np.ones((3, 0))).shape == (5, 0)
    assert op.rmm(np.ones((5, 0))).shape == (3, 0)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_threads_and_transposed_layout_agree(fmt, monkeypatch):
    # With several threads, the scatter form uses one buffer per thread, or, past the
    # memory budget, a transposed copy of A; all three paths give SciPy's product.
    rng = np.random.default_rng(3)
    A = _random(rng, (60, 45), np.complex128, density=0.1).asformat(fmt)
    X = _dense(rng, (45, 9), np.complex128)
    Y = _dense(rng, (60, 9), np.complex128)
    threads = numba.get_num_threads()
    for budget in (1 << 30, 0):
        monkeypatch.setattr(_operator, "_SCATTER_BUFFER_BYTES", budget)
        for nt in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(nt)
            try:
                op = Operator(A, "sparse", np)
                _check(op.mm(X), A @ X, np.complex128)
                _check(op.rmm(Y), A.conj().T @ Y, np.complex128)
            finally:
                numba.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_frequency_ordered_products(fmt, dtype, monkeypatch):
    # Past a size threshold the kernels run on A's columns renumbered by frequency (from the
    # second product on); forced here on a small matrix with skewed column frequencies.
    monkeypatch.setattr(_operator, "_FREQUENCY_ORDER_BYTES", 0)
    rng = np.random.default_rng(6)
    m, n = 50, 40
    rows = rng.integers(0, m, 400)
    cols = np.minimum(rng.geometric(0.1, 400) - 1, n - 1)  # a few columns hold most entries
    vals = _dense(rng, (400,), dtype)
    A = sp.coo_matrix((vals, (rows, cols)), shape=(m, n)).asformat(fmt)
    dense = A.toarray()
    data_before, indices_before = A.data.copy(), A.indices.copy()
    op = Operator(A, "sparse", np)
    for _ in range(3):
        X = _dense(rng, (n, 6), dtype)
        Y = _dense(rng, (m, 6), dtype)
        _check(op.mm(X), dense @ X, dtype)
        _check(op.rmm(Y), dense.conj().T @ Y, dtype)
    assert op._order is not None
    np.testing.assert_array_equal(A.data, data_before)
    np.testing.assert_array_equal(A.indices, indices_before)


def test_scaled_operator_products():
    rng = np.random.default_rng(4)
    A = _random(rng, (20, 10), np.float64)
    op = Operator(A, "sparse", np, scale=2.0**-600)
    X = _dense(rng, (10, 3), np.float64)
    _check(op.mm(X) * 2.0**600, A @ X, np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_low_precision_sparse_sketch(dtype):
    # sketch_dtype="auto" runs the passes over large float64 sparse input on a float32 copy of
    # its values (the index arrays are shared); its energies convert back through
    # energy_factor, also when the values had to be rescaled to stay in float32's range.
    rng = np.random.default_rng(5)
    for magnitude in (1.0, 1e-30, 1e30):
        A = _random(rng, (700, 600), dtype, density=0.7) * magnitude
        assert A.nnz >= _operator._MIXED_PRECISION_MIN_SPARSE
        norm2 = float(np.vdot(A.data, A.data).real)
        op = Operator(A, "sparse", np)
        sk = sketch_operator(op, "auto", norm2=norm2)
        assert sk is not op and sk.A.dtype.itemsize == np.dtype(dtype).itemsize // 2
        assert np.shares_memory(sk.A.indices, A.indices)
        X = _dense(rng, (600, 3), sk.A.dtype)
        got = sk.mm(X).astype(dtype) * np.sqrt(sk.energy_factor)
        want = A @ X.astype(dtype)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    small = _random(rng, (30, 20), dtype)
    assert sketch_operator(Operator(small, "sparse", np), "auto", norm2=1.0).A is small
