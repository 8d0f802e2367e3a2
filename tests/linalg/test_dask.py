"""truncated_svd on dask arrays: same result as in memory, bounded tasks, clear chunking errors."""

from __future__ import annotations

import numpy as np
import pytest

from sparselin.datasets import make_low_rank_matrix
from sparselin.linalg import svd_update, truncated_svd

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

# Tall (row-chunked), wide (column-chunked, the transpose case) and a single chunk.
CASES = [((1200, 90), (200, 90)), ((90, 1200), (90, 250)), ((300, 200), (300, 200))]


def _matrix(shape, dtype, seed=0):
    return make_low_rank_matrix(*shape, decay=0.85, random_state=seed).astype(dtype)


def _assert_same(dask_out, mem_out, dtype):
    U, s, Vt = dask_out
    U0, s0, Vt0 = mem_out
    tol = 2e-4 if dtype == np.float32 else 1e-10
    assert isinstance(s, np.ndarray) and isinstance(Vt, np.ndarray)
    assert s.dtype == s0.dtype and Vt.dtype == Vt0.dtype and U.dtype == U0.dtype
    np.testing.assert_allclose(s, s0, rtol=0, atol=tol * s0[0])
    # Same signs (the in-memory rule): the vectors agree entry by entry, not only up to sign.
    np.testing.assert_allclose(U.compute(), U0, rtol=0, atol=tol * 10)
    np.testing.assert_allclose(Vt, Vt0, rtol=0, atol=tol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "chunks"), CASES)
@pytest.mark.parametrize("n_iter", [0, 2, "auto"])
def test_equals_in_memory_threaded(shape, chunks, dtype, n_iter):
    A = _matrix(shape, dtype)
    before = A.copy()
    X = da.from_array(A, chunks=chunks)
    with dask.config.set(scheduler="threads"):
        U, s, Vt, err = truncated_svd(X, 8, n_iter=n_iter, random_state=7, return_error=True)
    assert isinstance(U, da.Array) and U.chunks[0] == X.chunks[0] and U.shape == (shape[0], 8)
    U0, s0, Vt0, err0 = truncated_svd(A, 8, n_iter=n_iter, random_state=7, return_error=True)
    _assert_same((U, s, Vt), (U0, s0, Vt0), dtype)
    assert err == pytest.approx(err0, rel=1e-3 if dtype == np.float32 else 1e-8)
    # Against the exact SVD: the same accuracy class as the in-memory randomized result.
    exact = np.linalg.svd(A.astype(np.float64), compute_uv=False)
    opt = np.sqrt(np.sum(exact[8:] ** 2) / np.sum(exact**2))
    assert err <= (1.25 if n_iter == 0 else 1.05) * opt + 1e-6
    np.testing.assert_array_equal(A, before)


def test_chunkings_and_integer_input_agree():
    A = np.random.default_rng(1).integers(-5, 6, size=(700, 60))
    ref = truncated_svd(A, 5, n_iter=3, random_state=0)
    for chunks in [(100, 60), (333, 60), (700, 60)]:
        out = truncated_svd(da.from_array(A, chunks=chunks), 5, n_iter=3, random_state=0)
        assert out[0].dtype == np.float64
        _assert_same(out, ref, np.float64)


def test_rank_deficient_and_zero():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((500, 3)) @ rng.standard_normal((3, 40))
    U, s, Vt = truncated_svd(da.from_array(A, chunks=(100, 40)), 6, n_iter=2, random_state=0)
    np.testing.assert_allclose(s[:3], np.linalg.svd(A, compute_uv=False)[:3], rtol=1e-10)
    assert np.all(s[3:] == 0)
    Uc = U.compute()
    np.testing.assert_allclose((Uc[:, :3] * s[:3]) @ Vt[:3], A, atol=1e-10)
    Z = da.zeros((400, 30), chunks=(100, 30))
    U, s, Vt = truncated_svd(Z, 4, n_iter=1, random_state=0)
    assert np.all(s == 0) and np.all(np.isfinite(U.compute())) and np.all(np.isfinite(Vt))


def test_compute_false_keeps_u_lazy_without_rereading_a():
    A = _matrix((800, 70), np.float64)
    X = da.from_array(A, chunks=(100, 70))
    U, s, Vt = truncated_svd(X, 6, n_iter=1, random_state=0, compute=False)
    keys = {k[0] if isinstance(k, tuple) else k for k in U.__dask_graph__()}
    assert X.name not in keys  # U is built from the kept sketches, not from A
    U2, s2, Vt2 = truncated_svd(X, 6, n_iter=1, random_state=0)
    np.testing.assert_array_equal(U.compute(), U2.compute())
    np.testing.assert_array_equal(s, s2)


class _CountingSource:
    """An array-like store (as zarr or HDF5 are to dask) that records every chunk read."""

    def __init__(self, a):
        self.a, self.shape, self.dtype, self.ndim = a, a.shape, a.dtype, a.ndim
        self.reads = []

    def __getitem__(self, index):
        out = self.a[index]
        if out.size:
            self.reads.append(index)  # list.append: safe from the threaded scheduler
        return out


@pytest.mark.parametrize(
    ("decay", "n_iter", "passes"),
    [
        # Tall: one pass per power iteration and one for Y = A X, W = A^H Y, Y^H Y.
        (0.85, 0, 1),
        (0.85, 1, 2),
        (0.85, 3, 4),
        # cond(A X) beyond the fused pass's limit: B = Q^H A takes one more pass, whether
        # that is predicted from the last power step (n_iter = 2) or seen on R (n_iter = 0).
        (0.2, 0, 2),
        (0.2, 2, 4),
    ],
)
def test_tall_input_is_read_once_per_power_iteration_plus_one(decay, n_iter, passes):
    A = make_low_rank_matrix(1800, 70, decay=decay, random_state=3)
    src = _CountingSource(A)
    X = da.from_array(src, chunks=(300, 70), meta=np.empty((0, 0)))
    with dask.config.set(scheduler="threads"):
        U, s, Vt, err = truncated_svd(X, 6, n_iter=n_iter, random_state=2, return_error=True)
        Uc = U.compute()  # from the kept sketch: no read of A
    assert len(src.reads) == passes * 6
    U0, s0, Vt0, err0 = truncated_svd(A, 6, n_iter=n_iter, random_state=2, return_error=True)
    _assert_same((da.from_array(Uc), s, Vt), (U0, s0, Vt0), np.float64)
    true = np.linalg.norm(A - (Uc * s) @ Vt) / np.linalg.norm(A)
    assert err == pytest.approx(true, rel=1e-6, abs=1e-15)
    np.testing.assert_allclose(Uc.T @ Uc, np.eye(6), atol=1e-13)


@pytest.mark.parametrize("n_iter", [0, 2])
def test_wide_input_is_read_once_per_power_iteration_plus_two(n_iter):
    A = _matrix((70, 1800), np.float64, seed=4)
    src = _CountingSource(A)
    X = da.from_array(src, chunks=(70, 300), meta=np.empty((0, 0)))
    out = truncated_svd(X, 6, n_iter=n_iter, random_state=2)
    # A Omega, one pass per power iteration (A (A^H X) per chunk), then B^H = A^H Q.
    assert len(src.reads) == (n_iter + 2) * 6
    _assert_same(out, truncated_svd(A, 6, n_iter=n_iter, random_state=2), np.float64)


BAD = [
    (lambda X: X.rechunk((100, 30)), {}, ValueError, r"rechunk\(\{1: -1\}\)"),
    (lambda X: X.T.rechunk((30, 100)), {}, ValueError, r"rechunk\(\{0: -1\}\)"),
    (lambda X: X[X[:, 0] > -np.inf], {}, ValueError, r"compute_chunk_sizes\(\)"),
    (lambda X: X[:, 0], {}, ValueError, "2-D"),
    (lambda X: X, {"k": 61}, ValueError, "k must be"),
    (lambda X: X, {"k": None}, ValueError, "give the rank k, the relative error tol"),
    (lambda X: X, {"tol": 1.0}, ValueError, "tol must be"),
    (lambda X: X, {"tol": 0.0}, ValueError, "tol must be"),
    (lambda X: X, {"tol": "1e-3"}, TypeError, "tol must be"),
    (lambda X: X.rechunk((100, 30)), {"tol": 0.1, "k": None}, ValueError, r"rechunk"),
    (lambda X: X, {"method": "lanczos"}, ValueError, "method must be 'randomized'"),
    (lambda X: X, {"sketch_dtype": np.complex64}, ValueError, "sketch_dtype"),
    (lambda X: X, {"sketch_dtype": "fast"}, ValueError, "sketch_dtype"),
    (lambda X: X, {"sketch_dtype": 3}, TypeError, "sketch_dtype"),
    (lambda X: X.astype(np.float32), {"sketch_dtype": np.float64}, ValueError, "sketch_dtype"),
    (lambda X: X, {"power_iteration_normalizer": "LU"}, ValueError, "normalizer"),
    (lambda X: X, {"n_iter": -1}, ValueError, "n_iter"),
    (lambda X: X, {"compute": "yes"}, TypeError, "compute must be a bool"),
    (lambda X: X.astype(bool).astype(object), {}, TypeError, "numbers"),
]


@pytest.mark.parametrize(("make", "kwargs", "exc", "match"), BAD)
def test_bad_input(make, kwargs, exc, match):
    A = np.random.default_rng(0).standard_normal((400, 60))
    before = A.copy()

    def refuse(block):  # computing any chunk during validation would be a bug
        raise AssertionError("validation computed the array")

    X = da.from_array(A, chunks=(100, 60))
    poisoned = X.map_blocks(refuse, dtype=X.dtype)
    kw = {"k": 5, **kwargs}
    if match.startswith(r"compute_chunk"):
        poisoned = X  # boolean indexing needs real values to build its (unknown) chunks
    with pytest.raises(exc, match=match):
        truncated_svd(make(poisoned), kw.pop("k"), **kw)
    np.testing.assert_array_equal(A, before)


def test_nan_entries_found_in_first_pass():
    A = np.random.default_rng(0).standard_normal((300, 20))
    A[123, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        truncated_svd(da.from_array(A, chunks=(100, 20)), 3, random_state=0)


def test_dask_is_lazy_and_its_absence_names_the_extra(monkeypatch):
    import subprocess
    import sys

    from sparselin._array import dask_array_module, dask_chunk_namespace, is_dask_array

    code = "import sys, sparselin; sparselin.truncated_svd; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    X = da.ones((4, 3), chunks=2)
    assert is_dask_array(X) and not is_dask_array(np.ones(3))
    assert dask_chunk_namespace(X) is np
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"sparselin\[dask\]"):
        dask_array_module()


def _sign_rule_cases():
    """Columns whose largest |entry| sits in different row blocks, ties across blocks
    (the first row wins), negative pivots, an all-zero column, and an empty row block."""
    U = np.zeros((10, 6))
    U[1, 0], U[7, 0] = -3.0, 3.0  # tie across blocks: the first (negative) wins
    U[2, 1], U[8, 1] = 3.0, -3.0  # tie across blocks: the first (positive) wins
    U[6, 2], U[0, 2] = -5.0, 4.0  # the largest is negative, in a later block
    U[9, 3], U[3, 3] = 2.0, -1.0
    U[4, 4], U[5, 4] = -2.0, -2.0  # tie inside a block (the rows 4, 5 straddle no boundary)
    return U  # column 5: all zero, keeps its sign


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("persist", [True, False])
def test_sign_rule_on_blocks_matches_flip_signs(dtype, persist):
    from sparselin.linalg._dask import _apply_sign_rule
    from sparselin.linalg._dense import flip_signs

    rng = np.random.default_rng(3)
    U = _sign_rule_cases().astype(dtype)
    if np.dtype(dtype).kind == "c":
        U = U * np.exp(1j * rng.uniform(0, 2 * np.pi, U.shape[1])).astype(dtype)
    U = np.concatenate([U, rng.standard_normal((10, 3)).astype(dtype)], axis=1)
    before = U.copy()
    # Row blocks of 3, 0 (empty), 3 and 4 rows.
    X = da.from_array(U, chunks=((3, 0, 3, 4), (U.shape[1],)))
    with dask.config.set(scheduler="threads"):
        signed, f, extra = _apply_sign_rule(X, persist)
    assert extra == [] and signed.chunks == X.chunks
    Vt = np.ones((U.shape[1], 2), dtype=dtype)
    U0, Vt0 = flip_signs(U.copy(), Vt.copy(), np)
    np.testing.assert_array_equal(signed.compute(), U0)
    np.testing.assert_array_equal(Vt * f.conj()[:, None], Vt0)
    np.testing.assert_array_equal(U, before)


@pytest.mark.parametrize(
    ("dtype", "factor"),
    [(np.float64, 1e-150), (np.float64, 1e150), (np.float32, 1e-30), (np.float32, 1e30)],
)
def test_scaled_input_equals_in_memory(dtype, factor):
    # Squares of these entries over- or underflow the dtype: the Gram matrices would too.
    A = (_matrix((600, 50), np.float64, seed=3) * factor).astype(dtype)
    U, s, Vt = truncated_svd(da.from_array(A, chunks=(150, 50)), 5, n_iter=2, random_state=1)
    U0, s0, Vt0 = truncated_svd(A, 5, n_iter=2, random_state=1)
    assert np.all(np.isfinite(s)) and s[0] > 0
    np.testing.assert_allclose(s, s0, rtol=2e-4 if dtype == np.float32 else 1e-10)
    np.testing.assert_allclose(U.compute(), U0, atol=2e-3 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(Vt, Vt0, atol=2e-3 if dtype == np.float32 else 1e-9)


# --- Mixed precision (sketch_dtype) ---------------------------------------------------------

# 4200 x 260 = 1.09M entries: above the 2**20 at which float64 input is sketched in float32.
BIG = ((4200, 260), (700, 260))


def _count_casts(monkeypatch):
    """Count the chunks cast to the sketch's precision (each one read of a chunk of A)."""
    from sparselin.linalg import _dask

    calls = []
    cast = _dask._low_copy_block
    panels = _dask._gram_panels

    def counting(block, dtype, *args):
        calls.append(np.dtype(dtype))
        return cast(block, dtype, *args)

    def counting_panels(block, X, low, *args):
        # A NumPy chunk of a tall A is cast panel by panel inside the power step's task.
        if low is not None:
            calls.append(np.dtype(low))
        return panels(block, X, low, *args)

    monkeypatch.setattr(_dask, "_low_copy_block", counting)
    monkeypatch.setattr(_dask, "_gram_panels", counting_panels)
    return calls


def _assert_mixed_same(dask_out, mem_out):
    # Both ran float32 iterations, whose rounding differs (blockwise sums against one GEMM);
    # the float64 last pass makes s a Rayleigh-Ritz value of nearly the same subspace.
    U, s, Vt = dask_out[:3]
    U0, s0, Vt0 = mem_out[:3]
    assert U.dtype == U0.dtype and s.dtype == s0.dtype and Vt.dtype == Vt0.dtype
    np.testing.assert_allclose(s, s0, rtol=0, atol=1e-9 * s0[0])
    np.testing.assert_allclose(U.compute(), U0, rtol=0, atol=2e-6)
    np.testing.assert_allclose(Vt, Vt0, rtol=0, atol=2e-6)


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("n_iter", [1, "auto"])
def test_large_float64_sketches_in_float32_like_in_memory(monkeypatch, transpose, n_iter):
    A = _matrix(BIG[0], np.float64)
    chunks = BIG[1]
    if transpose:
        A, chunks = np.ascontiguousarray(A.T), chunks[::-1]
    X = da.from_array(A, chunks=chunks)
    calls = _count_casts(monkeypatch)
    out = truncated_svd(X, 8, n_iter=n_iter, random_state=7, return_error=True)
    ref = truncated_svd(A, 8, n_iter=n_iter, random_state=7, return_error=True)
    _assert_mixed_same(out, ref)
    assert out[3] == pytest.approx(ref[3], rel=1e-9)
    # Every pass but the last read A through the float32 cast, one chunk per task.
    assert calls and set(calls) == {np.dtype(np.float32)} and len(calls) % 6 == 0
    if n_iter == 1:
        # Tall: the power step is one pass (A_i^H (A_i X) per chunk); wide: A Omega first.
        assert len(calls) == (2 if transpose else 1) * 6
    # Not the same as running every pass in float64 (the float32 passes did the work).
    full = truncated_svd(X, 8, n_iter=n_iter, random_state=7, sketch_dtype=np.float64)
    assert not np.array_equal(full[1], out[1])


def test_sketch_threshold_and_explicit_dtypes(monkeypatch):
    calls = _count_casts(monkeypatch)
    A = _matrix((1200, 90), np.float64, seed=2)  # below 2**20 entries: float64 throughout
    X = da.from_array(A, chunks=(200, 90))
    _assert_same(
        truncated_svd(X, 6, n_iter=2, random_state=1),
        truncated_svd(A, 6, n_iter=2, random_state=1),
        np.float64,
    )
    assert not calls
    out = truncated_svd(X, 6, n_iter=2, random_state=1, sketch_dtype=np.float32)
    _assert_mixed_same(out, truncated_svd(A, 6, n_iter=2, random_state=1, sketch_dtype=np.float32))
    assert len(calls) == 2 * 6  # one pass per power iteration
    C = (A + 1j * _matrix((1200, 90), np.float64, seed=3)).astype(np.complex128)
    Xc = da.from_array(C, chunks=(200, 90))
    for sd in ["auto", np.complex128, np.complex64]:
        _assert_mixed_same(
            truncated_svd(Xc, 5, n_iter=1, random_state=4, sketch_dtype=sd),
            truncated_svd(C, 5, n_iter=1, random_state=4, sketch_dtype=sd),
        )
    assert calls.count(np.dtype(np.complex64)) == 1 * 6


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("factor", "sketch_dtype"),
    [(1e-9, np.float32), (1e40, np.float32), (1e200, np.float32), (1e-200, "auto")],
)
def test_sketch_scaling_like_in_memory(factor, sketch_dtype):
    # rms entries beyond 2**+-16 (1e-9, 1e40: the float32 copy needs a power of two, known
    # once the first pass has measured the norm) and squares beyond float64's range (1e200
    # is scaled first, then sketched; "auto" then keeps float64, as in memory).
    shape, chunks = BIG if sketch_dtype == "auto" else ((1200, 90), (200, 90))
    A = _matrix(shape, np.float64, seed=5) * factor
    X = da.from_array(A, chunks=chunks)
    out = truncated_svd(X, 5, n_iter=1, random_state=2, sketch_dtype=sketch_dtype)
    ref = truncated_svd(A, 5, n_iter=1, random_state=2, sketch_dtype=sketch_dtype)
    assert np.all(np.isfinite(out[1])) and out[1][0] > 0
    np.testing.assert_allclose(out[1], ref[1], rtol=1e-9)
    np.testing.assert_allclose(out[0].compute(), ref[0], atol=2e-6)
    np.testing.assert_allclose(out[2], ref[2], atol=2e-6)


@pytest.mark.parametrize("transpose", [False, True])
def test_sketch_of_exactly_low_rank_input_is_refined_in_float64(transpose):
    # float32 cannot resolve the subspace; the last pass's basis, refined in float64, can.
    rng = np.random.default_rng(6)
    A = rng.standard_normal((1500, 4)) @ rng.standard_normal((4, 80))
    chunks = (250, 80)
    if transpose:
        A, chunks = np.ascontiguousarray(A.T), chunks[::-1]
    X = da.from_array(A, chunks=chunks)
    U, s, Vt, err = truncated_svd(
        X, 4, n_iter=1, random_state=0, return_error=True, sketch_dtype=np.float32
    )
    assert err < 1e-14
    Uc = U.compute()
    np.testing.assert_allclose((Uc * s) @ Vt, A, atol=1e-12 * np.abs(A).max())
    _assert_same(
        (U, s, Vt),
        truncated_svd(A, 4, n_iter=1, random_state=0, sketch_dtype=np.float32),
        np.float64,
    )


def test_fixed_accuracy_ignores_the_sketch_dtype_like_in_memory():
    A = _matrix((1200, 90), np.float64, seed=1)
    X = da.from_array(A, chunks=(200, 90))
    out = truncated_svd(X, tol=0.2, random_state=3, sketch_dtype=np.float32)
    ref = truncated_svd(A, tol=0.2, random_state=3, sketch_dtype=np.float32)
    assert len(out[1]) == len(ref[1])
    _assert_same(out, ref, np.float64)


# --- Fixed accuracy ---------------------------------------------------------------------


def _true_error(A, U, s, Vt):
    A64 = A.astype(np.float64)
    R = A64 - (np.asarray(U, np.float64) * s.astype(np.float64)) @ Vt.astype(np.float64)
    return np.linalg.norm(R) / np.linalg.norm(A64)


def _assert_error_is(err, true, dtype):
    assert abs(err**2 - true**2) <= 20 * np.finfo(dtype).eps, (err, true)


@pytest.mark.parametrize(
    ("shape", "chunks", "dtype"),
    [
        (*CASES[0], np.float32),
        (*CASES[0], np.float64),
        (*CASES[1], np.float64),
        (*CASES[1], np.float32),
        (*CASES[2], np.float64),
    ],
)
def test_fixed_accuracy_equals_in_memory(shape, chunks, dtype):
    A = _matrix(shape, dtype, seed=1)
    before = A.copy()
    X = da.from_array(A, chunks=chunks)
    with dask.config.set(scheduler="threads"):
        U, s, Vt, err = truncated_svd(X, tol=0.02, random_state=3, return_error=True)
    U0, s0, Vt0, err0 = truncated_svd(A, tol=0.02, random_state=3, return_error=True)
    assert isinstance(U, da.Array) and U.chunks[0] == X.chunks[0]
    assert len(s) == len(s0) and err <= 0.02
    _assert_same((U, s, Vt), (U0, s0, Vt0), dtype)
    # The reported error is the true one: the energy identity, good to a few eps of ||A||^2
    # (the in-memory guarantee), checked on the dense residual.
    _assert_error_is(err, _true_error(A, U.compute(), s, Vt), dtype)
    _assert_error_is(err, err0, dtype)
    np.testing.assert_array_equal(A, before)


@pytest.mark.parametrize(
    ("dtype", "tol", "chunks", "transpose"),
    [(np.float64, 1e-7, (150, 70), False), (np.float32, 3e-3, (70, 150), True)],
)
def test_fixed_accuracy_small_tol_measures_the_residual(dtype, tol, chunks, transpose):
    # tol**2 below 1e3 eps: the identity cannot resolve it, the residual is read from A.
    A = make_low_rank_matrix(600, 70, decay=0.6, random_state=2).astype(dtype)
    A = A.T.copy() if transpose else A
    X = da.from_array(A, chunks=chunks)
    U, s, Vt, err = truncated_svd(X, tol=tol, random_state=0, return_error=True)
    U0, s0, Vt0, err0 = truncated_svd(A, tol=tol, random_state=0, return_error=True)
    assert len(s) == len(s0) and err <= tol
    assert err == pytest.approx(_true_error(A, U.compute(), s, Vt), rel=0.02)
    assert err == pytest.approx(err0, rel=0.02)


def test_fixed_accuracy_rank_cap_warns_like_in_memory():
    A = _matrix((900, 80), np.float64, seed=5)
    X = da.from_array(A, chunks=(300, 80))
    with pytest.warns(UserWarning, match=r"cannot be met with rank <= 4") as rec:
        U, s, Vt, err = truncated_svd(X, 4, tol=1e-3, random_state=0, return_error=True)
    assert rec[0].filename == __file__  # the warning points at the caller
    with pytest.warns(UserWarning, match=r"cannot be met"):
        U0, s0, Vt0, err0 = truncated_svd(A, 4, tol=1e-3, random_state=0, return_error=True)
    _assert_same((U, s, Vt), (U0, s0, Vt0), np.float64)
    assert err == pytest.approx(_true_error(A, U.compute(), s, Vt), rel=1e-8)
    with pytest.warns(UserWarning, match="below what float32"):
        truncated_svd(X.astype(np.float32), tol=1e-7, random_state=0)


@pytest.mark.parametrize("transpose", [False, True])
def test_fixed_accuracy_rank_deficient_and_zero(transpose):
    rng = np.random.default_rng(2)
    A = rng.standard_normal((500, 3)) @ rng.standard_normal((3, 40))
    A = A.T.copy() if transpose else A
    chunks = (40, 100) if transpose else (100, 40)
    U, s, Vt, err = truncated_svd(
        da.from_array(A, chunks=chunks), tol=1e-9, random_state=0, return_error=True
    )
    assert s.shape == (3,) and err < 1e-9
    Uc = U.compute()
    assert err == pytest.approx(_true_error(A, Uc, s, Vt), rel=1e-6, abs=1e-16)
    np.testing.assert_allclose(Uc.T @ Uc, np.eye(3), atol=1e-12)
    Z = np.zeros(A.shape)
    U, s, Vt, err = truncated_svd(
        da.from_array(Z, chunks=chunks), tol=0.1, random_state=0, return_error=True
    )
    U0, s0, Vt0, err0 = truncated_svd(Z, tol=0.1, random_state=0, return_error=True)
    assert err == err0 == 0.0 and np.all(s == 0) and s.shape == (1,)
    np.testing.assert_array_equal(U.compute(), U0)
    np.testing.assert_array_equal(Vt, Vt0)


@pytest.mark.parametrize(("dtype", "factor"), [(np.float64, 1e-150), (np.float32, 1e30)])
def test_fixed_accuracy_scaled_input(dtype, factor):
    A = (_matrix((600, 50), np.float64, seed=3) * factor).astype(dtype)
    X = da.from_array(A, chunks=(150, 50))
    U, s, Vt, err = truncated_svd(X, tol=0.05, random_state=1, return_error=True)
    U0, s0, Vt0, err0 = truncated_svd(A, tol=0.05, random_state=1, return_error=True)
    assert np.all(np.isfinite(s)) and len(s) == len(s0)
    np.testing.assert_allclose(s, s0, rtol=2e-4 if dtype == np.float32 else 1e-10)
    assert err == pytest.approx(err0, rel=1e-3 if dtype == np.float32 else 1e-8)


def test_fixed_rank_tiny_error_is_measured_on_the_entries():
    # Below the energy identity's resolution the error comes from the residual, as in memory.
    rng = np.random.default_rng(4)
    A = rng.standard_normal((400, 5)) @ rng.standard_normal((5, 30))
    U, s, Vt, err = truncated_svd(
        da.from_array(A, chunks=(100, 30)), 5, n_iter=1, random_state=0, return_error=True
    )
    assert err == pytest.approx(_true_error(A, U.compute(), s, Vt), rel=1e-6, abs=1e-17)
    assert err < 1e-14


def test_fixed_accuracy_graph_stays_bounded_and_reads_a_per_pass():
    A = _matrix((1200, 90), np.float64, seed=9)
    X = da.from_array(A, chunks=(200, 90))
    sizes = []
    for tol in (0.3, 1e-3):  # one block of the basis, then several
        U, s, Vt = truncated_svd(X, tol=tol, random_state=0, compute=False)
        keys = {k[0] if isinstance(k, tuple) else k for k in U.__dask_graph__()}
        assert X.name not in keys  # U comes from the persisted basis, not from A
        sizes.append(len(U.__dask_graph__()))
    assert sizes[0] == sizes[1]  # the graph does not grow with the number of blocks


@pytest.mark.parametrize(
    "kwargs",
    [{"k": 10, "n_iter": 2}, {"k": 10, "n_iter": 2, "sketch_dtype": np.float32}, {"tol": 0.05}],
)
def test_no_task_receives_the_whole_matrix_any_mode(kwargs):
    from dask.callbacks import Callback
    from dask.core import get_dependencies

    A = _matrix((4000, 100), np.float64)
    X = da.from_array(A, chunks=(500, 100))
    chunk_bytes = 500 * 100 * 8
    largest = [0]

    def pretask(key, dsk, state):
        deps = get_dependencies(dsk, key)
        size = sum(getattr(state["cache"].get(d), "nbytes", 0) for d in deps)
        largest[0] = max(largest[0], size)

    with Callback(pretask=pretask), dask.config.set(scheduler="sync"):
        U, s, Vt = truncated_svd(X, random_state=0, **kwargs)
        U.compute()
    # One chunk of A plus thin blocks (500 x 52 sketches and bases) at most.
    assert chunk_bytes <= largest[0] < chunk_bytes + 300_000 < A.nbytes / 4


# --- Streaming svd_update -----------------------------------------------------------------


def _stream_reference(U, s, Vt, C, axis, step, k):
    out = (U, s, Vt)
    for j in range(0, C.shape[axis], step):
        block = C[:, j : j + step] if axis == 1 else C[j : j + step]
        out = svd_update(*out, block, axis=axis, k=k)
    return out


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_svd_update_streams_blocks_like_successive_updates(axis, dtype):
    A = _matrix((70, 500), np.float64, seed=7).astype(dtype)
    A = A if axis == 1 else A.T.copy()
    head = A[:, :60] if axis == 1 else A[:60]
    C = A[:, 60:] if axis == 1 else A[60:]
    before = C.copy()
    U, s, Vt = np.linalg.svd(head, full_matrices=False)
    U, s, Vt = U[:, :8], s[:8], Vt[:8]
    chunks = (70, 110) if axis == 1 else (110, 70)
    with dask.config.set(scheduler="threads"):
        out = svd_update(U, s, Vt, da.from_array(C, chunks=chunks), axis=axis, k=12)
    ref = _stream_reference(U, s, Vt, C, axis, 110, 12)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for got, want in zip(out, ref, strict=True):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(1.0, float(s[0])))
    np.testing.assert_array_equal(C, before)


def test_svd_update_stream_reads_each_block_once_and_accepts_unknown_lengths():
    A = _matrix((50, 400), np.float64, seed=1)
    U, s, Vt = np.linalg.svd(A[:, :40], full_matrices=False)
    U, s, Vt = U[:, :6], s[:6], Vt[:6]
    calls = []

    def count(block):
        calls.append(block.shape)
        return block

    C = da.from_array(A[:, 40:], chunks=(25, 90)).map_blocks(
        count, dtype=np.float64, meta=np.empty((0, 0))
    )
    out = svd_update(U, s, Vt, C, k=6)
    assert sorted(calls) == sorted(C.blocks[i, j].shape for i in range(2) for j in range(4))
    ref = _stream_reference(U, s, Vt, A[:, 40:], 1, 90, 6)
    np.testing.assert_allclose(out[1], ref[1], rtol=1e-12)
    # Rows appended from a dask array of unknown length (boolean indexing): fine, no error.
    R = da.from_array(A.T[40:].copy(), chunks=(90, 50))
    R = R[R[:, 0] > -np.inf]
    out = svd_update(Vt.T, s, U.T, R, axis=0, k=6)
    np.testing.assert_allclose(out[1], ref[1], rtol=1e-10)


STREAM_BAD = [
    (lambda C: C.T, {}, ValueError, "must have 50 rows"),
    (lambda C: C.T[:, C.T[0] > -np.inf], {"axis": 0}, ValueError, r"compute_chunk_sizes\(\)"),
    (lambda C: C.astype(bool).astype(object), {}, TypeError, "numbers"),
    (lambda C: C[None], {}, ValueError, "2-D"),
    (lambda C: C, {"k": 0}, ValueError, "k must be"),
]


@pytest.mark.parametrize(("make", "kwargs", "exc", "match"), STREAM_BAD)
def test_svd_update_stream_bad_input(make, kwargs, exc, match):
    rng = np.random.default_rng(0)
    U, s, Vt = np.linalg.svd(rng.standard_normal((50, 20)), full_matrices=False)
    C = rng.standard_normal((50, 30))
    before = C.copy()
    with pytest.raises(exc, match=match):
        svd_update(U, s, Vt, make(da.from_array(C, chunks=(25, 10))), **kwargs)
    np.testing.assert_array_equal(C, before)
    bad = C.copy()
    bad[3, 25] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        svd_update(U, s, Vt, da.from_array(bad, chunks=(50, 10)))
    with pytest.raises(TypeError, match="only C may be"):
        svd_update(da.from_array(U), s, Vt, da.from_array(C))


# --- A real cluster (last in the module: the client is the default scheduler while it lives)


@pytest.fixture(scope="module")
def client():
    """One real multi-process cluster for the module (starting one takes seconds)."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            memory_limit="1GiB",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.mark.slow
class TestDistributed:
    """The same results on a LocalCluster of two worker processes as in memory."""

    @pytest.mark.parametrize("sketch_dtype", ["auto", np.float32])
    def test_fixed_rank(self, client, sketch_dtype):
        A = _matrix((3000, 80), np.float64, seed=4)
        X = da.from_array(A, chunks=(500, 80)).persist()
        U, s, Vt = truncated_svd(X, 6, n_iter=2, random_state=5, sketch_dtype=sketch_dtype)
        Uc = U.compute()
        U0, s0, Vt0 = truncated_svd(A, 6, n_iter=2, random_state=5, sketch_dtype=sketch_dtype)
        if sketch_dtype == "auto":
            _assert_same((da.from_array(Uc), s, Vt), (U0, s0, Vt0), np.float64)
        else:
            _assert_mixed_same((da.from_array(Uc), s, Vt), (U0, s0, Vt0))

    def test_fixed_accuracy_wide(self, client):
        A = _matrix((60, 2000), np.float64, seed=6)
        X = da.from_array(A, chunks=(60, 400)).persist()
        U, s, Vt, err = truncated_svd(X, tol=0.05, random_state=2, return_error=True)
        U0, s0, Vt0, err0 = truncated_svd(A, tol=0.05, random_state=2, return_error=True)
        _assert_same((U, s, Vt), (U0, s0, Vt0), np.float64)
        assert err == pytest.approx(err0, rel=1e-8)

    def test_svd_update_streams_the_blocks(self, client):
        A = _matrix((80, 900), np.float64, seed=8)
        U, s, Vt = np.linalg.svd(A[:, :100], full_matrices=False)
        U, s, Vt = U[:, :10], s[:10], Vt[:10]
        C = da.from_array(A[:, 100:], chunks=(80, 200)).persist()
        out = svd_update(U, s, Vt, C, k=12)
        ref = (U, s, Vt)
        for j in range(100, 900, 200):
            ref = svd_update(*ref, A[:, j : j + 200], k=12)
        for got, want in zip(out, ref, strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
