"""The dense fast Walsh-Hadamard transform against SciPy's Hadamard matrix and definitions."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from sparselin.transforms import fwht, hadamard
from sparselin.transforms._hadamard_orders import hadamard_factor

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


def _tol(dtype):
    return 1e-5 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12


def _random(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def _popcount_parity(a):
    a = np.asarray(a, dtype=np.int64).copy()
    if hasattr(np, "bitwise_count"):  # NumPy >= 2
        return np.bitwise_count(a).astype(np.int64) & 1
    p = np.zeros_like(a)
    while np.any(a):
        p ^= a & 1
        a >>= 1
    return p


def _definition_rows(x, rows):
    """Entries ``rows`` of H_N x by the O(N) definition each: sum_j x[j] (-1)^popcount(i & j)."""
    j = np.arange(x.shape[-1])
    signs = 1 - 2 * _popcount_parity(np.asarray(rows)[:, None] & j[None, :])
    return x.astype(np.complex128 if x.dtype.kind == "c" else np.float64) @ signs.T


def _bitrev(i, n):
    return int(format(i, f"0{n}b")[::-1], 2) if n else 0


@pytest.mark.parametrize("n", range(0, 13))
def test_matches_scipy_hadamard(n, rng):
    N = 1 << n
    H = scipy.linalg.hadamard(N).astype(np.float64)
    x = rng.standard_normal((3, N))
    np.testing.assert_allclose(fwht(x), x @ H.T, rtol=1e-12, atol=1e-12 * np.sqrt(N))
    # Integer input is exact in float64.
    xi = rng.integers(-5, 6, size=(2, N))
    y = fwht(xi)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, xi @ H.T)


def test_2_to_the_13_and_14_match_scipy_hadamard(rng):
    # scipy.linalg.hadamard(2**13) as int8 (64 MiB), on 512 random output rows; 2**14
    # through Sylvester's block form [[H, H], [H, -H]] of the same matrix (2**14 as one
    # int8 matrix would take 256 MiB).
    H = scipy.linalg.hadamard(1 << 13, dtype=np.int8)
    x = rng.integers(-3, 4, size=(2, 1 << 14)).astype(np.float64)
    a, b = x[:, : 1 << 13], x[:, 1 << 13 :]
    rows = np.sort(rng.choice(1 << 13, size=512, replace=False))
    Hr = H[rows].astype(np.float64)
    np.testing.assert_array_equal(fwht(a)[:, rows], a @ Hr.T)
    y = fwht(x)
    np.testing.assert_array_equal(y[:, rows], (a + b) @ Hr.T)
    np.testing.assert_array_equal(y[:, rows + (1 << 13)], (a - b) @ Hr.T)


@pytest.mark.parametrize("n", [13, 14, 16, 20])
def test_long_transforms_match_the_definition(n, rng):
    # Beyond what a dense H fits, check 16 output entries by the O(N) definition each.
    N = 1 << n
    x = rng.standard_normal((2, N)) if n < 20 else rng.standard_normal(N)
    y = fwht(x)
    rows = rng.choice(N, size=16, replace=False)
    np.testing.assert_allclose(y[..., rows], _definition_rows(x, rows), rtol=1e-10, atol=1e-9)
    # And the involution on all of it.
    np.testing.assert_allclose(fwht(y, normalize="forward"), x, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 7, 11])
def test_dtypes_are_kept_and_match_the_reference(dtype, n, rng):
    N = 1 << n
    x = _random(rng, (5, N), dtype)
    x0 = x.copy()
    y = fwht(x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(x, x0)  # input untouched
    ref = x.astype(np.complex128 if x.dtype.kind == "c" else np.float64) @ hadamard(N).T
    scale = np.abs(ref).max()
    np.testing.assert_allclose(y, ref, rtol=0, atol=_tol(dtype) * scale * 10)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(np.float16, np.float32), (np.int32, np.float64), (np.bool_, np.float64)],
)
def test_dtype_promotion(dtype, expected):
    x = np.ones(8, dtype=dtype)
    y = fwht(x)
    assert y.dtype == expected
    np.testing.assert_array_equal(y, [8, 0, 0, 0, 0, 0, 0, 0])


@pytest.mark.parametrize(
    ("shape", "axis"),
    [
        ((4, 3, 16), 0),
        ((3, 16, 5), 1),
        ((3, 5, 16), -1),
        ((16,), 0),
        ((2, 3, 4, 32), 3),
        ((0, 8), 1),
        ((7, 1), 1),
        ((1024, 3), 0),
    ],
)
def test_batches_on_any_axis(shape, axis, rng):
    x = rng.standard_normal(shape)
    y = fwht(x, axis=axis)
    N = shape[axis]
    ref = np.moveaxis(np.moveaxis(x, axis, -1) @ scipy.linalg.hadamard(N).T, -1, axis)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, ref, atol=1e-10)
    # Non-contiguous input (strided along every axis) is read correctly.
    wide = np.zeros((*shape, 2))
    wide[..., 0] = x
    np.testing.assert_allclose(fwht(wide[..., 0], axis=axis), ref, atol=1e-10)


def test_matlab_example_and_orderings():
    # MATLAB's documented example: fwht([19 -1 11 -9 -7 13 -15 5]) in sequency order, 1/N.
    x = np.array([19.0, -1, 11, -9, -7, 13, -15, 5])
    np.testing.assert_allclose(
        fwht(x, order="sequency", normalize="forward"), [2, 3, 0, 4, 0, 0, 10, 0]
    )
    np.testing.assert_allclose(fwht(x, normalize="forward"), [2, 0, 4, 0, 3, 10, 0, 0])


@pytest.mark.parametrize("n", [1, 2, 4, 6, 9])
def test_sequency_and_dyadic_by_their_definitions(n, rng):
    N = 1 << n
    H = scipy.linalg.hadamard(N)
    # Sequency: row s of the Walsh matrix changes sign exactly s times.
    changes = np.count_nonzero(np.diff(H, axis=1), axis=1)
    W_seq = H[np.argsort(changes)]
    np.testing.assert_array_equal(np.sort(changes), np.arange(N))
    # Dyadic (Paley): row p is natural row bitrev(p).
    W_dya = H[[_bitrev(p, n) for p in range(N)]]
    x = rng.standard_normal((3, N))
    np.testing.assert_allclose(fwht(x, order="sequency"), x @ W_seq.T, atol=1e-10)
    np.testing.assert_allclose(fwht(x, order="dyadic"), x @ W_dya.T, atol=1e-10)
    for order in ("sequency", "dyadic"):
        np.testing.assert_array_equal(
            hadamard(N, order).astype(int), {"sequency": W_seq, "dyadic": W_dya}[order]
        )


@pytest.mark.parametrize("m", [12, 20, 28])
def test_factor_matrices_are_symmetric_hadamard(m):
    A = hadamard_factor(m).astype(np.int64)
    assert set(np.unique(A)) == {-1, 1}
    np.testing.assert_array_equal(A @ A.T, m * np.eye(m, dtype=np.int64))
    np.testing.assert_array_equal(A, A.T)


@pytest.mark.parametrize("m", [12, 20, 28])
@pytest.mark.parametrize("k", [0, 1, 3, 6, 10])
@pytest.mark.parametrize("dtype", [np.float64, np.complex64])
def test_m_times_power_of_two_lengths(m, k, dtype, rng):
    K = 1 << k
    A = hadamard_factor(m).astype(np.float64)
    x = _random(rng, (3, m * K), dtype)
    y = fwht(x, normalize="ortho")
    assert y.dtype == dtype
    if m * K <= 4096:
        W = np.kron(A, scipy.linalg.hadamard(K)) / np.sqrt(m * K)
        ref = x.astype(np.complex128) @ W.T
    else:
        # (A kron H) x: the K-point transforms of the m chunks, then A across them.
        chunks = x.astype(np.complex128).reshape(3, m, K) @ scipy.linalg.hadamard(K).T
        ref = (A @ chunks).reshape(3, m * K) / np.sqrt(m * K)
    np.testing.assert_allclose(y, ref, atol=_tol(dtype) * 10)
    # Orthonormal and its own inverse.
    np.testing.assert_allclose(fwht(y, normalize="ortho"), x, atol=_tol(dtype) * 10)


def test_a_transformer_width(rng):
    # 28672 = 28 * 1024, the MLP width of several LLMs; checked on 48 entries by definition.
    x = rng.standard_normal(28672)
    y = fwht(x)
    H = hadamard_factor(28).astype(np.float64)
    rows = rng.choice(28672, size=48, replace=False)
    i, r = np.divmod(rows, 1024)
    chunks = x.reshape(28, 1024)
    signs = 1 - 2 * _popcount_parity(r[:, None] & np.arange(1024)[None, :])
    ref = np.einsum("rl,rj,lj->r", H[i], signs, chunks)
    np.testing.assert_allclose(y[rows], ref, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("order", ["natural", "sequency", "dyadic"])
@pytest.mark.parametrize("N", [1, 2, 8, 256, 4096, 12 * 64])
def test_involution_ortho_and_adjoint(order, N, rng):
    x = _random(rng, (4, N), np.complex128)
    if N % 3 == 0 and order != "natural":
        # Sequency and dyadic orders are defined for powers of two only: a clear refusal.
        with pytest.raises(ValueError, match="power-of-two lengths only"):
            fwht(x, order=order)
        return
    z = _random(rng, (4, N), np.complex128)
    y = fwht(x, order=order)
    np.testing.assert_allclose(fwht(y, order=order), N * x, rtol=1e-12, atol=1e-10)
    yo = fwht(x, order=order, normalize="ortho")
    np.testing.assert_allclose(np.linalg.norm(yo, axis=1), np.linalg.norm(x, axis=1), rtol=1e-12)
    np.testing.assert_allclose(fwht(yo, order=order, normalize="ortho"), x, atol=1e-12)
    # Dot test: <W x, z> = <x, W^H z>, and W^H = W (real and symmetric).
    lhs = np.vdot(z, y)
    rhs = np.vdot(fwht(z, order=order), x)
    assert abs(lhs - rhs) <= 1e-10 * np.linalg.norm(y) * np.linalg.norm(z)


@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_out_argument_and_in_place(dtype, rng):
    x = _random(rng, (6, 64), dtype)
    ref = fwht(x, order="sequency")
    out = np.empty_like(x)
    assert fwht(x, order="sequency", out=out) is out
    np.testing.assert_array_equal(out, ref)
    # out = x: in place, for the natural order (no copy) and a reordering (copy first).
    for order in ("natural", "sequency"):
        y = x.copy()
        res = fwht(y, order=order, out=y)
        assert res is y
        np.testing.assert_allclose(y, fwht(x, order=order), atol=1e-4)
    # A non-contiguous out along another axis.
    xt = np.ascontiguousarray(x.T)
    out_t = np.empty_like(xt)
    fwht(xt, axis=0, out=out_t)
    np.testing.assert_allclose(out_t, fwht(x).T, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 9),
    batch=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    axis_pos=st.integers(0, 2),
    dtype=st.sampled_from(DTYPES),
    order=st.sampled_from(["natural", "sequency", "dyadic"]),
    normalize=st.sampled_from([None, "ortho", "forward"]),
    seed=st.integers(0, 2**16),
)
def test_property_any_shape_axis_dtype(n, batch, axis_pos, dtype, order, normalize, seed):
    rng = np.random.default_rng(seed)
    N = 1 << n
    axis = min(axis_pos, len(batch))
    shape = (*batch[:axis], N, *batch[axis:])
    x = _random(rng, shape, dtype)
    x0 = x.copy()
    y = fwht(x, axis=axis, order=order, normalize=normalize)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(x, x0)
    c = {None: 1.0, "ortho": N**-0.5, "forward": 1.0 / N}[normalize]
    W = hadamard(N, order) * c
    wide = np.complex128 if x.dtype.kind == "c" else np.float64
    ref = np.moveaxis(np.moveaxis(x.astype(wide), axis, -1) @ W.T, -1, axis)
    atol = _tol(dtype) * 10 * max(1.0, float(np.abs(ref).max(initial=0.0)))
    np.testing.assert_allclose(y, ref, rtol=0, atol=atol)


X = np.arange(16.0).reshape(2, 8)
X_f32 = X.astype(np.float32)
BAD_INPUT = [
    # (args, kwargs, error, message fragment)
    ((np.ones(6),), {}, ValueError, "power of two or m \\* 2\\*\\*k"),
    ((np.ones(36),), {}, ValueError, "power of two"),
    ((np.ones((8, 3)),), {}, ValueError, "along axis 1"),
    ((np.ones(0),), {}, ValueError, "got 0"),
    ((np.float64(3.0),), {}, ValueError, "at least one dimension"),
    ((X,), {"axis": 2}, ValueError, "axis must be in"),
    ((X,), {"axis": -3}, ValueError, "axis must be in"),
    ((X,), {"axis": 1.0}, TypeError, "axis must be an integer"),
    ((X,), {"order": "walsh"}, ValueError, "order must be one of"),
    ((np.ones(24),), {"order": "sequency"}, ValueError, "power-of-two lengths only"),
    ((X,), {"normalize": "backward"}, ValueError, "normalize must be one of"),
    ((X,), {"normalize": True}, ValueError, "normalize must be one of"),
    ((np.array(["a"] * 8),), {}, TypeError, "must hold numbers"),
    (("abcdefgh",), {}, TypeError, "must be a NumPy or CuPy array"),
    ((object(),), {}, TypeError, "must be a NumPy or CuPy array"),
    ((X,), {"out": np.empty((2, 4))}, ValueError, "out must have the shape"),
    ((X,), {"out": np.empty((2, 8), dtype=np.float32)}, TypeError, "out must have dtype"),
    ((X_f32,), {"out": np.empty((2, 8))}, TypeError, "out must have dtype float32"),
    ((X,), {"out": [0.0] * 16}, TypeError, "out must be a NumPy or CuPy array"),
]


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), BAD_INPUT)
def test_bad_input(args, kwargs, error, match):
    before = copy.deepcopy((args, kwargs))
    with pytest.raises(error, match=match):
        fwht(*args, **kwargs)
    for b, a in zip(before[0], args, strict=True):
        if isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b)


def test_read_only_out_is_refused():
    out = np.empty(8)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        fwht(np.ones(8), out=out)


def test_nan_propagates_like_fft():
    x = np.ones(8)
    x[3] = np.nan
    assert np.isnan(fwht(x)).all()


@pytest.mark.parametrize(
    ("N", "order", "error"),
    [
        (6, "natural", ValueError),
        (24, "dyadic", ValueError),
        (8.0, "natural", TypeError),
        (8, "gray", ValueError),
    ],
)
def test_hadamard_bad_input(N, order, error):
    with pytest.raises(error):
        hadamard(N, order)


def _numpy_butterflies(x):
    y = x.copy()
    rows, N = y.shape
    h = 1
    while h < N:
        v = y.reshape(rows, N // (2 * h), 2, h)
        a = v[:, :, 0, :].copy()
        v[:, :, 0, :] += v[:, :, 1, :]
        v[:, :, 1, :] = a - v[:, :, 1, :]
        h *= 2
    return y


@pytest.mark.parametrize(
    ("shape", "threads"),
    [
        ((256, 4096), 2),
        ((1, 1 << 20), 2),
        ((3, 1 << 19), 8),
        ((64, 1 << 15), 4),
        ((5, 64), 1),
        ((1, 1 << 20), 1),
        ((40, 1 << 15), 2),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_every_cpu_kernel_path_agrees(shape, threads, dtype, rng):
    # transform_rows picks whole rows per chunk, or blocks then spans of the strided passes,
    # by the thread count and the sizes (parallel from PARALLEL_MIN reals on); each must give
    # the transform (blocks of 1024 reals here, so that the strided passes beyond the block
    # run, with radix 8, 4 and 2).
    from sparselin.transforms import _kernels
    from sparselin.transforms._fwht import _real_view

    x = _random(rng, shape, dtype)
    a = x.copy()
    real, w = _real_view(a)
    _kernels.transform_rows(real, w, real.dtype.type(0.5), 1024, threads)
    ref = 0.5 * _numpy_butterflies(x.astype(np.complex128))
    np.testing.assert_allclose(a, ref, atol=_tol(dtype) * 10 * np.abs(ref).max())


def test_run_chunks_runs_each_chunk_once_and_reraises():
    import threading

    from sparselin._pool import run_chunks

    for threads in (1, 2, 4):
        seen = []
        lock = threading.Lock()

        def record(i, seen=seen, lock=lock):
            with lock:
                seen.append(i)

        run_chunks(record, 37, threads)
        assert sorted(seen) == list(range(37))

    def fail(i):
        if i == 5:
            raise ZeroDivisionError("chunk 5")

    with pytest.raises(ZeroDivisionError, match="chunk 5"):
        run_chunks(fail, 64, 2)
    run_chunks(lambda i: None, 8, 2)  # the helpers survive a failed job


def test_run_chunks_in_a_forked_child():
    # A forked child (dask/multiprocessing workers) has none of the parent's helper threads:
    # the pool is rebuilt there instead of queueing work for threads that do not exist.
    import multiprocessing

    from sparselin._pool import run_chunks

    run_chunks(lambda i: None, 8, 2)  # the parent's pool exists before the fork
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        seen, helper_ran = pool.apply(_chunks_in_child)
    assert seen == list(range(40)) and helper_ran


def _chunks_in_child():
    import threading

    from sparselin._pool import run_chunks

    seen, lock, started = [], threading.Lock(), threading.Event()

    def record(i):
        # the caller's chunks wait (up to 5 s) for a helper thread to take one
        if threading.current_thread().name.startswith("sparselin-chunks"):
            started.set()
        else:
            started.wait(5)
        with lock:
            seen.append(i)

    run_chunks(record, 40, 2)
    return sorted(seen), started.is_set()


def test_run_chunks_does_not_wait_for_busy_helpers():
    # A helper held up elsewhere (here: blocked inside another caller's chunk) must not hold
    # a second caller: it does every chunk itself and returns while the helper is still busy.
    import threading

    from sparselin._pool import run_chunks

    release = threading.Event()
    started = threading.Event()

    def block(i):
        # The caller's chunks wait until a helper has claimed one, which then blocks.
        if threading.current_thread().name.startswith("sparselin-chunks"):
            started.set()
            release.wait(10)
        else:
            started.wait(10)

    first = threading.Thread(target=run_chunks, args=(block, 64, 2))
    first.start()
    try:
        assert started.wait(10)
        done = []
        second = threading.Thread(target=run_chunks, args=(done.append, 16, 2))
        second.start()
        second.join(5)
        assert not second.is_alive() and sorted(done) == list(range(16))
    finally:
        release.set()
        first.join(10)
    assert not first.is_alive()


@pytest.mark.parametrize("threads", [1, 2])
def test_parallel_permutation_and_factor_paths(threads, rng):
    # Arrays above PARALLEL_MIN reals: the input permutation of the sequency order and the
    # m x m factor of the m * 2**k lengths run in chunks on several threads too.
    import numba

    from sparselin.transforms._hadamard_orders import input_permutation

    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        x = rng.standard_normal((64, 1 << 14)).astype(np.float32)
        gather = input_permutation("sequency", 14)
        ref = _numpy_butterflies(x[:, gather].astype(np.float64))
        np.testing.assert_allclose(fwht(x, order="sequency"), ref, atol=1e-4 * np.abs(ref).max())
        z = _random(rng, (24, 12 * 4096), np.complex128)
        blocks = _numpy_butterflies(z.reshape(24 * 12, 4096)).reshape(24, 12, 4096)
        ref = np.einsum("ij,rjk->rik", hadamard_factor(12).astype(float), blocks).reshape(24, -1)
        np.testing.assert_allclose(fwht(z), ref, atol=1e-12 * np.abs(ref).max())
    finally:
        numba.set_num_threads(previous)
