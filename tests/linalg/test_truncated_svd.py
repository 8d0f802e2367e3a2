"""truncated_svd against numpy.linalg.svd on many spectra, shapes, dtypes and input kinds."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.linalg import subspace_angles
from scipy.sparse.linalg import aslinearoperator

from sparselin import truncated_svd
from sparselin.datasets import make_low_rank_matrix

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]
SHAPES = [(120, 80), (80, 120), (100, 100)]


def spectrum(name: str, r: int) -> np.ndarray:
    i = np.arange(r, dtype=np.float64)
    if name == "flat":
        return np.ones(r)
    if name == "fast":
        return 0.7**i
    if name == "slow":
        return (i + 1) ** -0.5
    if name == "rank_deficient":
        s = np.zeros(r)
        s[:6] = np.linspace(3.0, 1.0, 6)
        return s
    if name == "ill_conditioned":
        return np.logspace(0, -12, r)
    raise AssertionError(name)


def build(shape, spec, dtype, seed=0):
    m, n = shape
    s = spectrum(spec, min(m, n))
    s_nonzero = s[s > 0]
    A = make_low_rank_matrix(m, n, decay=s_nonzero, dtype=dtype, random_state=seed)
    return A, s


def real_of(dtype):
    return np.finfo(np.dtype(dtype)).dtype


def rel_tol(dtype):
    return 5e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-9


def frob_err(A, U, s, Vt):
    return np.linalg.norm(A.astype(np.complex128) - (U * s) @ Vt)


def assert_orthonormal(X, dtype, axis_rows=False):
    X = X.conj().T if axis_rows else X
    G = X.conj().T @ X
    atol = 1e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12
    np.testing.assert_allclose(G, np.eye(G.shape[0]), atol=atol)


# ARPACK may give up on rank-deficient input; the documented fallback then answers.
@pytest.mark.filterwarnings("ignore:svds failed:RuntimeWarning")
@pytest.mark.parametrize("method", ["randomized", "block_krylov", "lanczos"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("spec", ["flat", "fast", "slow", "rank_deficient", "ill_conditioned"])
def test_against_full_svd(spec, shape, dtype, method):
    A, s_true = build(shape, spec, dtype)
    A0 = A.copy()
    k = 10
    U, s, Vt = truncated_svd(A, k, method=method, random_state=0)
    np.testing.assert_array_equal(A, A0)  # input untouched
    m, n = shape
    assert U.shape == (m, k) and s.shape == (k,) and Vt.shape == (k, n)
    assert U.dtype == dtype and Vt.dtype == dtype and s.dtype == real_of(dtype)
    assert np.all(np.isfinite(U)) and np.all(np.isfinite(s)) and np.all(np.isfinite(Vt))
    assert np.all(np.diff(s) <= 0), "singular values must be descending"
    assert_orthonormal(U, dtype)
    assert_orthonormal(Vt, dtype, axis_rows=True)
    tol = rel_tol(dtype)
    # Error relative to the optimal rank-k error, measured with a tolerance floor for
    # spectra whose optimal error is below the dtype's resolution.
    opt = np.sqrt(np.sum(s_true[k:] ** 2))
    err = frob_err(A, U, s, Vt)
    floor = 50 * tol * np.linalg.norm(s_true)
    assert err <= 1.05 * opt + floor, (err, opt)
    if spec in ("fast", "rank_deficient", "ill_conditioned"):
        # Well separated leading values: they must match the exact ones.
        np.testing.assert_allclose(s, s_true[:k], rtol=20 * tol, atol=floor)
    if spec == "rank_deficient":
        assert np.all(s[6:] == 0), "missing singular values must be exact zeros"
    if spec == "fast":
        Ut, _, Vht = np.linalg.svd(A.astype(np.complex128), full_matrices=False)
        angles = subspace_angles(U[:, :5].astype(np.complex128), Ut[:, :5])
        assert np.max(angles) < (1e-2 if tol > 1e-6 else 1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sign_rule_and_transpose(dtype):
    A, _ = build((90, 60), "fast", dtype, seed=3)
    for M in (A, A.T):
        U, s, Vt = truncated_svd(M, 8, random_state=0)
        idx = np.argmax(np.abs(U), axis=0)
        pivots = U[idx, np.arange(8)]
        assert np.all(pivots.real > 0)
        np.testing.assert_allclose(pivots.imag, 0, atol=1e-6)
    # A.T's factors are A's swapped (the leading vectors are unique up to sign).
    U, s, Vt = truncated_svd(A, 5, random_state=0)
    U2, s2, Vt2 = truncated_svd(A.T, 5, random_state=1)
    np.testing.assert_allclose(s, s2, rtol=rel_tol(dtype) * 10)
    overlap = np.abs(np.sum(Vt.conj() * U2.T, axis=1))
    np.testing.assert_allclose(overlap, 1, atol=1e-3)


@pytest.mark.parametrize("method", ["randomized", "block_krylov", "lanczos"])
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
def test_sparse_input(fmt, method, dtype):
    rng = np.random.default_rng(1)
    A = sp.random(200, 150, density=0.05, format=fmt, random_state=rng, dtype=np.float64)
    A = A.astype(dtype)
    if np.dtype(dtype).kind == "c":
        A = A + 1j * sp.random(200, 150, density=0.05, format=fmt, random_state=rng)
        A = A.asformat(fmt)
    # Column scales give the spectrum some decay, as real sparse data (term counts) has.
    A = (A @ sp.diags(0.97 ** np.arange(150))).asformat(fmt).astype(A.dtype)
    dense = A.toarray()
    U, s, Vt = truncated_svd(A, 6, method=method, random_state=0, n_iter=8)
    s_all = np.linalg.svd(dense, compute_uv=False)
    rtol = 100 * rel_tol(dtype) if method == "lanczos" else max(1e-3, 100 * rel_tol(dtype))
    np.testing.assert_allclose(s, s_all[:6], rtol=rtol)
    err = frob_err(dense, U, s, Vt)
    assert err <= 1.01 * np.sqrt(np.sum(s_all[6:] ** 2))
    assert U.dtype == A.dtype
    # the sparse matrix is untouched
    np.testing.assert_array_equal(A.toarray(), dense)


class CountingOperator:
    """A LinearOperator that counts its products (to check the pass counts)."""

    def __init__(self, A):
        self.A = A
        self.mm = 0
        self.rmm = 0
        op = aslinearoperator(A)
        outer = self

        class _Op(type(op)):
            pass

        self.op = _wrap(A, self)
        del op, outer, _Op


def _wrap(A, counter):
    from scipy.sparse.linalg import LinearOperator

    def matmat(X):
        counter.mm += 1
        return A @ X

    def rmatmat(Y):
        counter.rmm += 1
        return A.conj().T @ Y

    return LinearOperator(
        A.shape,
        matvec=lambda x: A @ x,
        rmatvec=lambda y: A.conj().T @ y,
        matmat=matmat,
        rmatmat=rmatmat,
        dtype=A.dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_operator_input(dtype):
    A, s_true = build((150, 100), "fast", dtype)
    for method in ("randomized", "block_krylov", "lanczos"):
        U, s, Vt = truncated_svd(aslinearoperator(A), 8, method=method, random_state=0)
        np.testing.assert_allclose(s, s_true[:8], rtol=20 * rel_tol(dtype))
        assert U.dtype == dtype


@pytest.mark.parametrize("n_iter", [0, 1, 3, 9])
def test_integer_n_iter_runs_exactly(n_iter):
    A, _ = build((150, 100), "slow", np.float64)
    counter = CountingOperator(A)
    truncated_svd(counter.op, 5, n_iter=n_iter, random_state=0)
    # One range sketch, n_iter round trips, one final projection: never silently more.
    assert counter.mm == 1 + n_iter
    assert counter.rmm == n_iter + 1


def test_block_krylov_depth_and_pass_reuse():
    A, _ = build((150, 100), "slow", np.float64)
    counter = CountingOperator(A)
    truncated_svd(counter.op, 5, n_iter=3, method="block_krylov", random_state=0)
    # Depth 3: four A-products and four A^H-products; the final projection reuses them.
    assert counter.mm == 4 and counter.rmm == 4


@pytest.mark.parametrize("spec", ["fast", "slow", "flat"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_auto_iterations_meet_err_over_opt(spec, dtype):
    # The adaptive rule targets err/opt <= ~1.0075; allow the target of 1.01.
    A, s_true = build((300, 200), spec, dtype)
    k = 10
    for seed in range(3):
        U, s, Vt = truncated_svd(A, k, random_state=seed)
        opt = np.sqrt(np.sum(s_true[k:] ** 2))
        assert frob_err(A, U, s, Vt) <= 1.01 * opt


def test_auto_iterations_use_every_pass(monkeypatch):
    # Fast decay converges in a few passes; the rule must not run to the cap of 16 passes.
    from sparselin.linalg import _operator as impl

    calls = []
    for name in ("mm", "rmm"):
        original = getattr(impl.Operator, name)

        def counted(self, X, _original=original):
            calls.append(1)
            return _original(self, X)

        monkeypatch.setattr(impl.Operator, name, counted)
    A, _ = build((300, 200), "fast", np.float64)
    truncated_svd(A, 5, random_state=0)
    assert 3 <= len(calls) < 16


def test_auto_does_not_stop_early_on_slow_geometric_decay():
    # 0.99^i, k=60: the gain ratios look settled around 0.55 while the Ritz values say the
    # error can fall only ~(0.99^10)^2 = 0.82 per pass; extrapolating the former stopped at
    # err/opt 1.010-1.011 for all three seeds.
    A, s_true = make_low_rank_matrix(
        1500, 1200, decay=0.99, random_state=2, return_singular_values=True
    )
    k = 60
    opt = np.sqrt(np.sum(s_true[k:] ** 2))
    for seed in range(3):
        U, s, Vt = truncated_svd(A, k, random_state=seed)
        assert frob_err(A, U, s, Vt) <= 1.0075 * opt


@pytest.mark.parametrize("k", [30, 100])
def test_auto_on_big_mixed_precision_matrix(k):
    # k=100 on i^-0.5: the gain ratios still grow after four passes, and a rule deciding
    # from four readings stopped at err/opt 1.017.
    A, s_true = build((1100, 1000), "slow", np.float64, seed=1)
    U, s, Vt = truncated_svd(A, k, random_state=0)
    assert U.dtype == np.float64
    assert frob_err(A, U, s, Vt) <= 1.01 * np.sqrt(np.sum(s_true[k:] ** 2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reproducible_bit_for_bit(dtype):
    A, _ = build((120, 90), "slow", dtype)
    r1 = truncated_svd(A, 7, random_state=42)
    r2 = truncated_svd(A, 7, random_state=np.random.default_rng(42))
    for a, b in zip(r1, r2, strict=True):
        np.testing.assert_array_equal(a, b)


def test_mixed_precision_sketch_matches_full_precision():
    # Large enough for the float32 sketch ("auto"), checked against a float64-only run.
    A, s_true = build((1200, 900), "fast", np.float64)
    # A fixed iteration count, so both runs converge equally far.
    U, s, Vt = truncated_svd(A, 20, n_iter=4, random_state=0)
    U64, s64, Vt64 = truncated_svd(A, 20, n_iter=4, random_state=0, sketch_dtype=np.float64)
    # Accurate to float64 precision relative to ||A||_2 (Rayleigh-Ritz in full precision).
    np.testing.assert_allclose(s, s_true[:20], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s, s64, rtol=1e-12, atol=1e-12)
    assert U.dtype == np.float64
    assert_orthonormal(U, np.float64)


def test_mixed_precision_exact_low_rank_refines():
    # Exactly rank 15: float32 iterations alone would leave ~1e-7 relative error.
    s_spec = np.linspace(2, 1, 15)
    A = make_low_rank_matrix(1100, 1000, decay=s_spec, random_state=0)
    U, s, Vt, err = truncated_svd(A, 20, random_state=0, return_error=True)
    recon = np.linalg.norm(A - (U * s) @ Vt) / np.linalg.norm(A)
    assert recon < 1e-12
    assert err < 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", ["fast", "slow"])
@pytest.mark.parametrize("tol", [0.3, 0.05, 1e-2])
def test_fixed_accuracy_meets_tol_without_overshoot(spec, tol, dtype):
    A, s_true = build((160, 120), spec, dtype)
    U, s, Vt, est = truncated_svd(A, tol=tol, random_state=0, return_error=True)
    total = np.linalg.norm(s_true)
    err = frob_err(A, U, s, Vt) / total
    assert err <= tol * (1 + 1e-3)
    np.testing.assert_allclose(est, err, rtol=1e-2, atol=5e-4)
    # Optimal rank: smallest r with tail energy <= tol^2 total.
    tail = np.sqrt(np.cumsum((s_true**2)[::-1])[::-1]) / total
    r_opt = int(np.argmax(np.append(tail[1:], 0) <= tol)) + 1
    # "A few" extra: 3, or ~6% on nearly flat spectra where extra rank buys little.
    assert r_opt <= len(s) <= r_opt + max(3, r_opt // 16)


def test_fixed_accuracy_with_rank_cap():
    A, s_true = build((150, 100), "slow", np.float64)
    with pytest.warns(UserWarning, match="cannot be met"):
        U, s, Vt = truncated_svd(A, 5, tol=1e-3, random_state=0)
    assert len(s) == 5
    U, s, Vt = truncated_svd(A, 90, tol=0.5, random_state=0)
    assert len(s) < 90


def test_fixed_accuracy_on_linear_operator():
    A, s_true = build((200, 150), "fast", np.float64)
    U, s, Vt, est = truncated_svd(aslinearoperator(A), tol=1e-3, random_state=0, return_error=True)
    err = frob_err(A, U, s, Vt) / np.linalg.norm(s_true)
    assert err <= 2e-3  # the operator's norm is estimated, so allow the estimate's slack
    assert est == pytest.approx(err, rel=0.5, abs=1e-4)


def test_full_rank_k_equals_min_dimension():
    A, s_true = build((40, 30), "slow", np.float64)
    for method in ("randomized", "block_krylov", "lanczos"):
        U, s, Vt = truncated_svd(A, 30, method=method, random_state=0)
        np.testing.assert_allclose(s, s_true, rtol=1e-9)
        np.testing.assert_allclose((U * s) @ Vt, A, atol=1e-10)


def test_integer_input_becomes_float64():
    A = np.arange(60).reshape(10, 6) % 7
    U, s, Vt = truncated_svd(A, 3, random_state=0)
    assert U.dtype == np.float64
    np.testing.assert_allclose(s, np.linalg.svd(A.astype(float), compute_uv=False)[:3])


def test_zero_matrix():
    U, s, Vt = truncated_svd(np.zeros((20, 10)), 3, random_state=0)
    assert np.all(s == 0) and np.all(np.isfinite(U)) and np.all(np.isfinite(Vt))
    assert_orthonormal(U, np.float64)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(2, 40),
    n=st.integers(2, 40),
    seed=st.integers(0, 10_000),
    tol=st.floats(0.01, 0.9),
)
def test_property_fixed_accuracy_and_invariants(m, n, seed, tol):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) * rng.uniform(0.1, 10, size=(1, n))
    U, s, Vt = truncated_svd(A, tol=tol, random_state=seed)
    assert np.all(np.diff(s) <= 1e-12)
    err = np.linalg.norm(A - (U * s) @ Vt) / np.linalg.norm(A)
    assert err <= tol * (1 + 1e-6) + 1e-12
    k = min(m, n, 3)
    U, s, Vt = truncated_svd(A, k, random_state=seed)
    s_ref = np.linalg.svd(A, compute_uv=False)[:k]
    assert np.all(s <= s_ref * (1 + 1e-9) + 1e-12)  # Ritz values never exceed the truth


def test_fixed_accuracy_operator_with_rank_cap_warns():
    A, s_true = build((150, 100), "slow", np.float64)
    with pytest.warns(UserWarning, match="cannot be met"):
        U, s, Vt, est = truncated_svd(
            aslinearoperator(A), 5, tol=1e-3, random_state=0, return_error=True
        )
    assert len(s) == 5
    err = frob_err(A, U, s, Vt) / np.linalg.norm(s_true)
    assert est == pytest.approx(err, rel=0.5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["randomized", "block_krylov"])
@pytest.mark.parametrize(("decay", "k"), [(0.7, 30), (0.5, 15)])
def test_tiny_optimal_error_is_reached(decay, k, method, dtype):
    # The optimal relative error is ~2e-5: below what the energy identity resolves in single
    # precision, and with trailing singular values ~1e-4 of the largest that must not be
    # mistaken for the zeros of a rank-deficient matrix.
    A, s_true = make_low_rank_matrix(
        400, 300, decay=decay, dtype=dtype, random_state=0, return_singular_values=True
    )
    U, s, Vt = truncated_svd(A, k, method=method, random_state=0)
    opt = np.sqrt(np.sum(s_true[k:] ** 2))
    assert np.all(s > 0)
    assert frob_err(A, U, s, Vt) <= 1.01 * opt


@pytest.mark.parametrize(
    ("dtype", "tol"), [(np.float32, 1e-4), (np.float32, 3e-3), (np.float64, 1e-7)]
)
@pytest.mark.parametrize("sparse_input", [False, True])
def test_fixed_accuracy_below_the_energy_identity_resolution(dtype, tol, sparse_input):
    # ||A||^2 - sum s^2 cannot resolve these tolerances in the dtype; the entries must decide.
    A, s_true = make_low_rank_matrix(
        300, 250, decay=0.9, dtype=dtype, random_state=0, return_singular_values=True
    )
    M = sp.csr_matrix(A) if sparse_input else A
    U, s, Vt, est = truncated_svd(M, tol=tol, random_state=0, return_error=True)
    err = frob_err(A, U, s, Vt) / np.linalg.norm(A.astype(np.float64))
    assert err <= tol * 1.01
    assert est == pytest.approx(err, rel=0.05)
    tail = np.sqrt(np.cumsum((s_true**2)[::-1])[::-1]) / np.linalg.norm(s_true)
    r_opt = int(np.argmax(np.append(tail[1:], 0) <= tol)) + 1
    assert len(s) <= r_opt + 3


def test_tol_below_dtype_resolution_warns():
    A = make_low_rank_matrix(60, 50, decay=0.5, dtype=np.float32, random_state=0)
    with pytest.warns(UserWarning, match="can represent"):
        truncated_svd(A, tol=1e-7, random_state=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_return_error_is_accurate_for_small_errors(dtype):
    A, s_true = make_low_rank_matrix(
        300, 200, decay=0.7, dtype=dtype, random_state=0, return_singular_values=True
    )
    U, s, Vt, est = truncated_svd(A, 20, random_state=0, return_error=True)
    err = frob_err(A, U, s, Vt) / np.linalg.norm(A.astype(np.complex128))
    assert est == pytest.approx(err, rel=0.02)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # no overflow/underflow on the way
@pytest.mark.parametrize(
    ("dtype", "scale"),
    [
        (np.float64, 1e200),
        (np.float64, 1e-200),
        (np.float64, 1e-310),  # denormal entries
        (np.complex128, 1e180),
        (np.float32, 1e30),
        (np.float32, 1e-30),
    ],
)
@pytest.mark.parametrize("mode", ["randomized", "block_krylov", "tol"])
def test_extreme_scales(dtype, scale, mode):
    # Sketch Gram matrices hold squares of A's scale; such input is worked on scaled.
    A0, s_true = make_low_rank_matrix(
        200, 150, decay=0.8, dtype=dtype, random_state=0, return_singular_values=True
    )
    A = A0 * np.finfo(dtype).dtype.type(scale)
    kw = {"tol": 1e-2} if mode == "tol" else {"k": 5, "method": mode, "n_iter": 6}
    U, s, Vt = truncated_svd(A, random_state=0, **kw)
    rtol = 1e-3 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-8
    if mode == "tol":
        rtol = max(rtol, 1e-5)  # one power iteration per block leaves the last values rough
    np.testing.assert_allclose(s / scale, s_true[: len(s)], rtol=rtol)
    assert np.all(np.isfinite(U)) and np.all(np.isfinite(Vt))


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("scale", [1e50, 1e-50])
@pytest.mark.parametrize("sketch_dtype", ["auto", "single"])
@pytest.mark.parametrize("method", ["randomized", "block_krylov"])
def test_low_precision_sketch_of_values_beyond_its_range(dtype, scale, sketch_dtype, method):
    # Entries near 1e±50 are ordinary float64 numbers but overflow or vanish in float32:
    # the single-precision sketch holds A times a power of two of its own.
    A, s_true = build((1100, 1000), "fast", dtype)
    if sketch_dtype == "single":
        sketch_dtype = np.float32 if dtype == np.float64 else np.complex64
    U, s, Vt = truncated_svd(
        A * scale, 8, n_iter=3, method=method, random_state=0, sketch_dtype=sketch_dtype
    )
    # Block Krylov with an explicit single-precision sketch projects in that precision.
    rtol = 1e-5 if method == "block_krylov" and sketch_dtype != "auto" else 1e-10
    np.testing.assert_allclose(s / scale, s_true[:8], rtol=rtol)
    assert frob_err(A, U, s / scale, Vt) <= 1.0001 * np.sqrt(np.sum(s_true[8:] ** 2))


# --- Regressions: answers that were wrong without a word (issue 15, section 2) -------------


def true_rel_err(A, U, s, Vt):
    A = A.toarray() if sp.issparse(A) else np.asarray(A)
    A = A.astype(np.complex128)
    return np.linalg.norm(A - (U * s) @ Vt) / np.linalg.norm(A)


def orth_err(U):
    U = U.astype(np.complex128)
    return np.abs(U.conj().T @ U - np.eye(U.shape[1])).max()


@pytest.mark.parametrize("normalizer", ["LU", "none"])
@pytest.mark.parametrize("n_iter", ["auto", 0, 2])
def test_lu_and_none_normalizers_give_true_singular_values(normalizer, n_iter):
    # The last pass read the LU factor (or the raw product) as an orthonormal basis: s[0]
    # came out 32.9 where it is 9.29.
    X = np.random.default_rng(0).standard_normal((30, 20))
    s_true = np.linalg.svd(X, compute_uv=False)
    U, s, Vt, err = truncated_svd(
        X,
        3,
        power_iteration_normalizer=normalizer,
        n_iter=n_iter,
        random_state=0,
        return_error=True,
    )
    assert np.all(s <= s_true[:3] * (1 + 1e-12))  # Ritz values never exceed the truth
    np.testing.assert_allclose(s, s_true[:3], rtol=0.05)
    assert orth_err(U) < 1e-12 and orth_err(Vt.T) < 1e-12
    assert err == pytest.approx(true_rel_err(X, U, s, Vt), rel=1e-9)


@pytest.mark.parametrize("normalizer", ["LU", "none"])
def test_estimator_with_lu_and_none_normalizers(normalizer):
    from sparselin import TruncatedSVD

    X = np.random.default_rng(0).standard_normal((30, 20))
    est = TruncatedSVD(3, power_iteration_normalizer=normalizer, random_state=0).fit(X)
    s_true = np.linalg.svd(X, compute_uv=False)[:3]
    np.testing.assert_allclose(est.singular_values_, s_true, rtol=0.05)
    assert np.all(est.singular_values_ <= s_true * (1 + 1e-12))


def test_none_normalizer_does_not_overflow():
    # Without normalisation each pass multiplies the block by ~s[0]: 1e3^16 overflows.
    X = np.random.default_rng(1).standard_normal((60, 40)) * 1e3
    X = X.astype(np.float32)
    s_true = np.linalg.svd(X.astype(np.float64), compute_uv=False)
    U, s, Vt = truncated_svd(X, 2, power_iteration_normalizer="none", n_iter=8, random_state=0)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(U))
    np.testing.assert_allclose(s[0], s_true[0], rtol=1e-2)


def test_fixed_accuracy_on_rank_deficient_sparse_patterns():
    # About 4% of these matrices (rank 24 of 25, e.g. seeds 42 and 55) gave a non-orthonormal
    # U and a reported error of 0.009 where the true one was 0.21: the basis growth
    # normalised the rounding-level remainder left once it reached the rank.
    for seed in [42, 55, *range(20)]:
        A = sp.random(25, 25, density=0.2, random_state=seed).toarray()
        U, s, Vt, err = truncated_svd(A, tol=0.01, random_state=0, return_error=True)
        assert orth_err(U) < 1e-12 and orth_err(Vt.T) < 1e-12, seed
        true = true_rel_err(A, U, s, Vt)
        assert true <= 0.01 * (1 + 1e-9), seed
        assert err == pytest.approx(true, rel=1e-6, abs=1e-12), seed


@pytest.mark.filterwarnings("ignore:svds failed:RuntimeWarning")  # ARPACK on zeros
@pytest.mark.parametrize("method", ["block_krylov", "lanczos", "randomized"])
@pytest.mark.parametrize("k", [1, 5, 20])
def test_exactly_low_rank_input(method, k):
    # np.ones, k=1 gave s = 9e162 in block Krylov (and the Lanczos fallback); zeros raised
    # LinAlgError: a remainder with no direction was normalised into the basis.
    for A, s0 in [(np.ones((30, 20)), np.sqrt(600.0)), (np.zeros((30, 20)), 0.0)]:
        U, s, Vt, err = truncated_svd(A, k, method=method, random_state=0, return_error=True)
        assert U.shape == (30, k) and s.shape == (k,)
        np.testing.assert_allclose(s[0], s0, rtol=1e-12)
        assert np.all(s[1:] == 0)
        assert orth_err(U) < 1e-12 and orth_err(Vt.T) < 1e-12
        assert err == pytest.approx(0.0, abs=1e-12)
    # Rank 3 in float32 and complex, Krylov depth beyond the rank.
    rng = np.random.default_rng(0)
    L = rng.standard_normal((40, 3)) + 1j * rng.standard_normal((40, 3))
    A = (L @ rng.standard_normal((3, 30))).astype(np.complex64)
    U, s, Vt = truncated_svd(A, min(k, 10), method=method, n_iter=4, random_state=0)
    s_true = np.linalg.svd(A.astype(np.complex128), compute_uv=False)
    r = min(k, 3)
    np.testing.assert_allclose(s[:r], s_true[:r], rtol=1e-5)
    assert np.all(s[3:] == 0) and orth_err(U) < 1e-5


@pytest.mark.filterwarnings("ignore:svds failed:RuntimeWarning")
@pytest.mark.parametrize(
    ("dtype", "scale"),
    [(np.float32, 1e15), (np.float32, 1e-15), (np.float64, 1e150), (np.float64, 1e-155)],
)
def test_lanczos_on_scaled_input(dtype, scale):
    # The Lanczos path ran svds on A unscaled and then divided by the safety scale.
    A0 = np.random.default_rng(0).standard_normal((40, 30))
    s_true = np.linalg.svd(A0, compute_uv=False)[:3]
    U, s, Vt = truncated_svd((A0 * scale).astype(dtype), 3, method="lanczos", random_state=0)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(s / scale, s_true, rtol=rtol)


def test_sparse_duplicates_are_summed_and_input_untouched():
    r = np.array([0, 0, 1, 2])
    c = np.array([0, 0, 1, 2])
    A = sp.coo_matrix((np.array([1e3, -1e3, 1.0, 1.0]), (r, c)), shape=(5, 5))
    data0, nnz0 = A.data.copy(), A.nnz
    dense = A.toarray()
    # The norm came from .data (2e6 + 2) and the reported error was 0.001 (true 0.71).
    U, s, Vt, err = truncated_svd(A, 1, random_state=0, return_error=True)
    assert err == pytest.approx(true_rel_err(dense, U, s, Vt), rel=1e-9)
    assert err == pytest.approx(np.sqrt(0.5), rel=1e-9)
    U, s, Vt, err = truncated_svd(A, tol=0.8, random_state=0, return_error=True)
    assert err == pytest.approx(true_rel_err(dense, U, s, Vt), rel=1e-9, abs=1e-12)
    np.testing.assert_array_equal(A.data, data0)
    assert A.nnz == nnz0 and A.format == "coo"
    # The same duplicates inside a CSR matrix (not canonical): summed on a copy.
    indptr = np.array([0, 2, 3, 4, 4, 4])
    B = sp.csr_matrix((np.array([1e3, -1e3, 1.0, 1.0]), c, indptr), shape=(5, 5))
    assert not B.has_canonical_format
    U, s, Vt, err = truncated_svd(B, 1, random_state=0, return_error=True)
    assert err == pytest.approx(np.sqrt(0.5), rel=1e-9)
    assert B.nnz == 4 and not B.has_canonical_format
    # Duplicates that overflow when summed: the matrix is not finite.
    C = sp.coo_matrix((np.array([1e308, 1e308, 1.0, 1.0]), (r, c)), shape=(5, 5))
    with pytest.raises(ValueError, match=r"NaN or infinity.*duplicate"):
        truncated_svd(C, 1)


@pytest.mark.filterwarnings("ignore:svds failed:RuntimeWarning")
@pytest.mark.parametrize("mode", ["randomized", "block_krylov", "lanczos", "tol"])
@pytest.mark.parametrize(("dtype", "top"), [(np.float32, 3e37), (np.float64, 1e308)])
@pytest.mark.parametrize("sparse_input", [False, True])
def test_entries_near_the_top_of_the_range(dtype, top, mode, sparse_input):
    # All-zero singular values: the safety scale (2**-125 in float32) was applied to the thin
    # block, which it pushed into denormals, and s[0] * 10 overflowed in the zero cutoff.
    X = np.random.default_rng(0).standard_normal((20, 15))
    X = X / np.linalg.norm(X, 2) * top  # s[0] = top, representable
    A = X.astype(dtype)
    s_true = np.linalg.svd(X / top, compute_uv=False) * top
    M = sp.csr_matrix(A) if sparse_input else A
    kw = {"tol": 0.3} if mode == "tol" else {"k": 15, "method": mode}
    U, s, Vt = truncated_svd(M, random_state=0, **kw)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(s, s_true[: len(s)], rtol=rtol)
    assert np.all(np.isfinite(U)) and orth_err(U) < 1e-4


@pytest.mark.parametrize("c", [1e-170, 1e170])
@pytest.mark.parametrize("mode", ["tol", "k"])
def test_linear_operator_at_extreme_scales(c, mode):
    # Fixed accuracy reported 0.0 for an operator scaled by 1e-170 (true error 0.92): the
    # squares of its products underflowed.
    A = np.random.default_rng(0).standard_normal((30, 20))
    op = aslinearoperator(A * c)
    kw = {"tol": 0.5} if mode == "tol" else {"k": 5}
    U, s, Vt, err = truncated_svd(op, random_state=0, return_error=True, **kw)
    true = true_rel_err(A, U, s / c, Vt)
    if mode == "tol":
        assert true <= 0.6 and err == pytest.approx(true, rel=0.3)
    else:
        np.testing.assert_allclose(s / c, np.linalg.svd(A, compute_uv=False)[:5], rtol=0.05)
        assert np.isnan(err)  # fixed rank on an operator: the norm is unknown


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize(
    "convert",
    [sp.lil_matrix, sp.dok_matrix, sp.dia_matrix, sp.bsr_matrix, sp.csr_array, np.matrix],
    ids=["lil", "dok", "dia", "bsr", "csr_array", "np.matrix"],
)
@pytest.mark.parametrize("kw", [{"k": 4}, {"tol": 0.3}, {"k": 4, "method": "lanczos"}])
def test_other_input_kinds_are_supported(convert, kw):
    A = np.random.default_rng(0).standard_normal((30, 20))
    A[A < 0.5] = 0.0
    M = convert(A)
    before = np.array(M.toarray() if sp.issparse(M) else M)
    U, s, Vt = truncated_svd(M, random_state=0, **kw)
    Ur, sr, Vtr = truncated_svd(A, random_state=0, **kw)
    np.testing.assert_allclose(s, sr, rtol=1e-10)
    assert type(U) is np.ndarray and U.shape == Ur.shape
    np.testing.assert_array_equal(M.toarray() if sp.issparse(M) else M, before)


def _op(matvec=None, rmatvec=None, matmat=None, rmatmat=None, shape=(30, 20), dtype=float):
    from scipy.sparse.linalg import LinearOperator

    A = np.random.default_rng(0).standard_normal(shape)
    return LinearOperator(
        shape,
        matvec=matvec or (lambda x: A @ x),
        rmatvec=rmatvec,
        matmat=matmat,
        rmatmat=rmatmat,
        dtype=dtype,
    )


_A = np.random.default_rng(0).standard_normal((30, 20))
BAD_OPERATORS = [
    (_op(), TypeError, "without a usable adjoint"),
    (_op(matvec=lambda x: (_A @ x)[:5], rmatvec=lambda y: _A.T @ y), ValueError, "probe"),
    (
        _op(rmatvec=lambda y: _A.T @ y, matmat=lambda X: (_A @ X)[:, :1]),
        ValueError,
        "A.matmat returned shape",
    ),
    (
        _op(rmatvec=lambda y: _A.T @ y, matmat=lambda X: (_A @ X).tolist()),
        TypeError,
        "A.matmat returned list",
    ),
    (
        _op(rmatvec=lambda y: _A.T @ y, rmatmat=lambda Y: sp.csr_matrix(_A.T @ Y)),
        TypeError,
        "A.rmatmat returned csr_matrix",
    ),
    (_op(matvec=lambda x: _A @ x * np.nan, rmatvec=lambda y: _A.T @ y), ValueError, "NaN"),
    (
        _op(matvec=lambda x: (_A @ x) * 1j, rmatvec=lambda y: _A.T @ y, dtype=np.float64),
        TypeError,
        "complex",
    ),
]


@pytest.mark.parametrize(("op", "error", "match"), BAD_OPERATORS)
@pytest.mark.parametrize("kw", [{"k": 3}, {"tol": 0.5}, {"k": 3, "method": "lanczos"}])
def test_bad_linear_operators_are_named(op, error, match, kw):
    if "rmatmat returned" in match and kw.get("method") == "lanczos":
        # svds uses rmatvec only, which this operator has right: a correct answer.
        U, s, Vt = truncated_svd(op, random_state=0, **kw)
        np.testing.assert_allclose(s, np.linalg.svd(_A, compute_uv=False)[:3], rtol=1e-10)
        return
    with pytest.raises(error, match=match):
        truncated_svd(op, random_state=0, **kw)


def test_bad_matrix_kinds_are_named():
    A = np.random.default_rng(0).standard_normal((30, 20))
    with pytest.raises(TypeError, match="A is a masked array"):
        truncated_svd(np.ma.masked_array(A, mask=A > 1), 3)


def test_integer_linear_operator_computes_in_float64():
    A = np.arange(30 * 20).reshape(30, 20) % 7
    U, s, Vt = truncated_svd(aslinearoperator(A), 3, random_state=0, n_iter=6)
    assert U.dtype == np.float64
    np.testing.assert_allclose(s, np.linalg.svd(A.astype(float), compute_uv=False)[:3])


def test_private_core_skips_validation_and_matches():
    from sparselin.linalg._truncated_svd import _truncated_svd_core

    A = make_low_rank_matrix(80, 60, decay=0.8, random_state=0)
    U, s, Vt, err = truncated_svd(A, 5, random_state=0, return_error=True)
    U2, s2, Vt2, err2 = _truncated_svd_core(
        A, 5, rng=np.random.default_rng(0), kind="dense", want_error=True
    )
    np.testing.assert_array_equal(s, s2)
    np.testing.assert_array_equal(U, U2)
    assert err == err2


def test_operator_rank_cap_in_one_block_reports_its_error():
    # A 30 x 3 operator fills its rank in the first block; with k=1 the error (0.46) was
    # reported as 0.0, since no round had estimated the operator's norm.
    rng = np.random.default_rng(0)
    A = (rng.standard_normal((30, 3)) * [3.0, 1.5, 1e-3]).astype(np.complex64)
    with pytest.warns(UserWarning, match="cannot be met"):
        U, s, Vt, err = truncated_svd(
            aslinearoperator(A), 1, tol=0.1, random_state=0, return_error=True
        )
    true = true_rel_err(A, U, s, Vt)
    assert true > 0.3
    assert err == pytest.approx(true, rel=1e-3)


@pytest.mark.parametrize("c", [1e-150, 1e-100, 1e100, 1e150])
def test_lanczos_on_rank_deficient_input_near_the_range_ends(c):
    # ARPACK works on A^H A and takes inner products of its vectors (fourth powers of A's
    # scale): entries near 1e-149, whose squares are in range, gave different wrong values
    # from run to run (17.9 and 6e-13 for 42.3 and 38.7).
    rng = np.random.default_rng(8551)
    A = rng.standard_normal((22, 11)) @ rng.standard_normal((11, 28))
    s_true = np.linalg.svd(A, compute_uv=False)[:2]
    for _ in range(3):
        U, s, Vt = truncated_svd(A * c, 2, method="lanczos", random_state=0)
        np.testing.assert_allclose(s / c, s_true, rtol=1e-10)


def test_singular_values_beyond_the_dtype_range_warn():
    # The entries are finite but s[0] = 3.46e38 is not a float32: inf, and said so.
    A = np.full((4, 3), 2e38, dtype=np.float32)
    with pytest.warns(RuntimeWarning, match="exceed the range of float32"):
        U, s, Vt = truncated_svd(A, 1, random_state=0)
    assert np.isinf(s[0]) and np.all(np.isfinite(U)) and np.all(np.isfinite(Vt))


class _ChecksSpy:
    """Records what the one-orthonormalisation-per-step path's checks returned."""

    def __init__(self, monkeypatch):
        import sparselin.linalg._iterations as impl

        self.results: list[bool] = []
        original = impl.cholqr_checked

        def spy(Y, xp, max_cond):
            out = original(Y, xp, max_cond)
            self.results.append(out is not None)
            return out

        monkeypatch.setattr(impl, "cholqr_checked", spy)


@pytest.mark.parametrize("shape", [(300, 200), (200, 300)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
@pytest.mark.parametrize("n_iter", [2, 3, "auto"])
def test_one_orthonormalisation_per_power_step(monkeypatch, shape, dtype, n_iter):
    # Products on the long side go unnormalised into the next pass; the result is the same
    # approximation as with every product orthonormalised (same span in exact arithmetic).
    spy = _ChecksSpy(monkeypatch)
    A, s_true = build(shape, "slow", dtype)
    U, s, Vt, err = truncated_svd(A, 10, n_iter=n_iter, random_state=0, return_error=True)
    if n_iter != "auto":
        # Every long-side product but the one the last pass reads is skipped.
        assert spy.results == [True] * n_iter
    else:
        assert spy.results and all(spy.results)
    tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-12
    assert orth_err(U) < tol and orth_err(Vt.conj().T) < tol
    np.testing.assert_allclose(err, true_rel_err(A, U, s, Vt), rtol=1e-3 if tol > 1e-6 else 1e-8)
    # Against the same iteration with every product orthonormalised (the pass counts match).
    import sparselin.linalg._iterations as impl

    monkeypatch.setattr(impl, "cholqr_checked", lambda Y, xp, max_cond: None)
    U0, s0, Vt0 = truncated_svd(A, 10, n_iter=n_iter, random_state=0)
    rtol = 2e-3 if np.dtype(dtype) == np.float32 else 1e-9
    np.testing.assert_allclose(s, s0, rtol=rtol)
    assert np.all(s <= s_true[:10] * (1 + rtol))


@pytest.mark.parametrize("n_iter", [3, "auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_skipped_normalisation_falls_back_on_exactly_low_rank_input(monkeypatch, n_iter, dtype):
    # Rank 5 < l = 20: the unnormalised A^H A X has no direction beyond the rank. The check
    # of its Cholesky factor fails and the run goes on with every product orthonormalised.
    spy = _ChecksSpy(monkeypatch)
    rng = np.random.default_rng(1)
    A = (rng.standard_normal((300, 5)) @ rng.standard_normal((5, 200))).astype(dtype)
    U, s, Vt, err = truncated_svd(A, 10, n_iter=n_iter, random_state=0, return_error=True)
    if n_iter == 3:
        assert spy.results == [False]  # fired once, then never skipped again
    else:
        assert spy.results == []  # the adaptive rule's check of A X fired before skipping
    s_true = np.linalg.svd(A.astype(np.float64), compute_uv=False)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(s[:5], s_true[:5], rtol=rtol)
    assert np.all(s[5:] == 0)
    assert orth_err(U) < 10 * rtol and orth_err(Vt.T) < 10 * rtol
    assert true_rel_err(A, U, s, Vt) <= 10 * rtol
    assert err <= 10 * rtol


@pytest.mark.parametrize("n_iter", [2, 4, "auto"])
def test_skipped_normalisation_falls_back_on_ill_conditioned_input(monkeypatch, n_iter):
    # sigma_1 / sigma_l = 1e12: squaring the condition number in A^H A X would lose the
    # trailing directions below sqrt(eps); the checks keep those passes orthonormalised.
    spy = _ChecksSpy(monkeypatch)
    m, n, k = 400, 300, 20
    s_true = np.concatenate([np.logspace(0, -12, 30), np.zeros(n - 30)])
    A = make_low_rank_matrix(m, n, decay=s_true[:30], dtype=np.float64, random_state=0)
    U, s, Vt, err = truncated_svd(A, k, n_iter=n_iter, random_state=0, return_error=True)
    assert False not in spy.results[:-1]  # once a check failed, nothing is skipped
    if n_iter != "auto":
        assert spy.results == [False]
    np.testing.assert_allclose(s, s_true[:k], rtol=1e-6, atol=1e-14)
    assert orth_err(U) < 1e-12 and orth_err(Vt.T) < 1e-12
    assert err == pytest.approx(true_rel_err(A, U, s, Vt), rel=1e-6, abs=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_iter", [2, "auto"])
def test_skipped_normalisation_is_scale_invariant(dtype, n_iter):
    # Unnormalised products hold squares of A's scale (their Gram matrices fourth powers):
    # a power of two keeps them in range; scaled input gives scaled singular values.
    A, _ = build((300, 200), "slow", dtype)
    s1 = truncated_svd(A, 10, n_iter=n_iter, random_state=0)[1]
    for c in (2.0**60, 2.0**-60) if dtype == np.float64 else (2.0**25, 2.0**-25):
        U, s, Vt = truncated_svd(A * dtype(c), 10, n_iter=n_iter, random_state=0)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(s / c, s1, rtol=rtol)
        assert orth_err(U) < 100 * rtol


@pytest.mark.parametrize("right", [True, False])
def test_result_of_a_pass_after_an_unnormalised_product(right):
    # When the adaptive rule stops right after the pass that read an unnormalised Y, the
    # result is P_Y A, assembled from orthonormal bases of Y and of that pass's product.
    from sparselin.linalg._dense import _cholesky_upper
    from sparselin.linalg._iterations import _from_pass, _raw_result, _RawBlock
    from sparselin.linalg._operator import Operator

    A, _ = build((300, 200), "slow", np.float64)
    A = A if right else A.T.copy()
    op = Operator(A, "dense", np)
    X = np.linalg.qr(np.random.default_rng(0).standard_normal((A.shape[1], 15)))[0]
    Y = op.mm(X)
    raw = _RawBlock(Y, _cholesky_upper(Y.T @ Y, np))
    U, s, Vt = _from_pass(op, _raw_result(raw, op.rmm(Y), False, np), 10)
    Q = np.linalg.qr(Y)[0]
    u, s_ref, vt = np.linalg.svd(Q.T @ A, full_matrices=False)
    np.testing.assert_allclose(s, s_ref[:10], rtol=1e-12)
    np.testing.assert_allclose(U * s @ Vt, (Q @ u[:, :10] * s_ref[:10]) @ vt[:10], atol=1e-12)
    assert orth_err(U) < 1e-13 and orth_err(Vt.T) < 1e-13


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
@pytest.mark.parametrize("cond", [1.0, 30.0, 100.0, 1e3, 1e5])
def test_orth_double_precision_gram(dtype, cond):
    # Single-precision blocks with cond <= 100 take one Cholesky QR on a double-precision
    # Gram matrix instead of CholeskyQR2; beyond, the CholeskyQR2/Householder route.
    from sparselin.linalg._dense import orth

    rng = np.random.default_rng(0)
    U0 = np.linalg.qr(rng.standard_normal((5000, 40)) + 1j * rng.standard_normal((5000, 40)))[0]
    if np.dtype(dtype).kind == "f":
        U0 = np.linalg.qr(rng.standard_normal((5000, 40)))[0]
    V0 = np.linalg.qr(rng.standard_normal((40, 40)))[0]
    Y = ((U0 * np.logspace(0, -np.log10(cond), 40)) @ V0).astype(dtype)
    Y_before = Y.copy()
    Q, R = orth(Y, np, return_r=True)
    assert Q.dtype == dtype
    assert orth_err(Q) < 2e-6
    np.testing.assert_allclose(Q @ R, Y, atol=2e-6 * np.abs(Y).max())
    np.testing.assert_array_equal(Y, Y_before)


@pytest.mark.parametrize("n_iter", [2, "auto"])
def test_skipped_normalisation_with_a_single_precision_sketch(monkeypatch, n_iter):
    # The float32 passes skip their long-side normalisations; the last pass re-reads its
    # basis in float64 (orthonormalised there), so the result is float64-accurate Ritz values.
    spy = _ChecksSpy(monkeypatch)
    A, s_true = build((300, 200), "slow", np.float64)
    U, s, Vt, err = truncated_svd(
        A, 10, n_iter=n_iter, sketch_dtype=np.float32, random_state=0, return_error=True
    )
    assert spy.results and all(spy.results)
    if n_iter == 2:
        assert len(spy.results) == 2
    assert orth_err(U) < 1e-12 and orth_err(Vt.T) < 1e-12
    assert err == pytest.approx(true_rel_err(A, U, s, Vt), rel=1e-6)
    import sparselin.linalg._iterations as impl

    monkeypatch.setattr(impl, "cholqr_checked", lambda Y, xp, max_cond: None)
    s0 = truncated_svd(A, 10, n_iter=n_iter, sketch_dtype=np.float32, random_state=0)[1]
    np.testing.assert_allclose(s, s0, rtol=1e-5)
    assert np.all(s <= s_true[:10] * (1 + 1e-12))
