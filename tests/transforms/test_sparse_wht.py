"""Sparse WHT (SparseFHT, SPRIGHT) against the dense transform and planted spectra."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest

from sparselin._validation import check_random_state
from sparselin.transforms import DecodingError, SparseSpectrum, fwht, sparse_wht
from sparselin.transforms._peeling import make_design, parity, sample_positions

METHODS = ["sparsefht", "spright"]


def planted(n, K, rng, dtype=np.float64):
    """A K-sparse spectrum on 2**n points: sorted uint64 indices and N(0, 100) values."""
    k = np.sort(rng.choice(1 << n, size=K, replace=False)).astype(np.uint64)
    v = 10 * rng.standard_normal(K)
    if np.dtype(dtype).kind == "c":
        v = v + 10j * rng.standard_normal(K)
    return k, v.astype(dtype)


def black_box(k, v):
    """x[m] = sum_k v_k (-1)^<k, m>, evaluated only where queried (O(K) per query)."""
    calls = []

    def f(m):
        calls.append(m.size)
        m = m.astype(np.uint64)
        out = np.zeros(m.shape, dtype=v.dtype)
        for kk, vv in zip(k, v, strict=True):
            out += vv * (1 - 2 * parity(m & kk)).astype(v.real.dtype)
        return out

    f.calls = calls
    return f


def quiet(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return sparse_wht(**kwargs)


def test_aliasing_identity(rng):
    # The bins a design reads equal the aliased sums of the dense transform, offset-signed.
    n, b = 10, 4
    N, B = 1 << n, 1 << b
    x = rng.standard_normal(N)
    X = fwht(x)
    design = make_design(n, b, 3, 2, "random", check_random_state(7))
    pos = sample_positions(design).astype(np.int64)
    U = fwht(x[pos], axis=-1) * (N / B)
    k_all = np.arange(N, dtype=np.uint64)
    bins = design.hash(k_all)
    for c in range(3):
        signs = design.signs(c, k_all)  # (P, N)
        expected = np.zeros((design.n_offsets, B))
        for j in range(B):
            members = bins[c] == j
            expected[:, j] = signs[:, members] @ X[members]
        np.testing.assert_allclose(U[c], expected, atol=1e-9 * np.abs(X).max())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("n", "K"), [(6, 3), (10, 12), (12, 40), (14, 100)])
def test_noiseless_recovery_matches_the_dense_transform(method, n, K, rng):
    # Brute force: the full fwht of the signal is the reference; over several draws every
    # reported success is exactly right and at least 80 % succeed.
    N = 1 << n
    successes = 0
    for trial in range(8):
        k, v = planted(n, K, rng)
        X = np.zeros(N)
        X[k.astype(np.int64)] = v
        x = fwht(X, normalize="forward")  # so that fwht(x) = X
        ref = fwht(x)
        spec = quiet(
            signal=x,
            n=n,
            sparsity=K,
            method=method,
            random_state=trial,
            noise=0.0 if method == "spright" else "auto",
        )
        assert isinstance(spec, SparseSpectrum)
        if spec.success:
            successes += 1
            np.testing.assert_allclose(spec.to_dense(), ref, atol=1e-9 * np.abs(ref).max())
    assert successes >= 6


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("n", "K"), [(20, 50), (24, 200)])
def test_query_access_large_n_with_sample_bound(method, n, K, rng):
    k, v = planted(n, K, rng)
    f = black_box(k, v)
    spec = sparse_wht(
        f,
        n,
        sparsity=K,
        method=method,
        normalize="forward",
        random_state=1,
        noise=0.0 if method == "spright" else "auto",
    )
    assert spec.success, spec.message
    np.testing.assert_array_equal(spec.indices, k)
    np.testing.assert_allclose(spec.values, v, rtol=1e-9)
    # One query, of distinct indices only, and at most 6 K log2 N samples (B < 2K, C = 3).
    assert len(f.calls) == 1 and f.calls[0] == spec.n_samples
    assert spec.n_samples <= 6 * K * n
    assert spec.n_samples < (1 << n) / 100


@pytest.mark.parametrize("n", [30, 40])
def test_very_long_signals_by_query(n, rng):
    k = np.sort(rng.integers(0, 1 << n, size=30, dtype=np.uint64))
    v = rng.choice([-1.0, 1.0], size=30) * rng.uniform(1, 2, 30)
    for method in METHODS:
        spec = sparse_wht(
            black_box(k, v),
            n,
            sparsity=30,
            method=method,
            random_state=3,
            normalize="forward",
            noise=0.0 if method == "spright" else "auto",
        )
        assert spec.success
        np.testing.assert_array_equal(spec.indices, k)
        np.testing.assert_allclose(spec.values, v, rtol=1e-9)
        # The stated bound for K < 32 (B < 4K): 12 K log2 N samples, from 2**n points.
        assert spec.n_samples <= 12 * 30 * n


@pytest.mark.parametrize("dtype", [np.float32, np.complex64, np.complex128])
@pytest.mark.parametrize("method", METHODS)
def test_precision_and_complex_samples(dtype, method, rng):
    n, K = 16, 30
    k, v = planted(n, K, rng, dtype=np.complex128 if np.dtype(dtype).kind == "c" else np.float64)
    x = black_box(k, v)(np.arange(1 << n)).astype(dtype)
    spec = sparse_wht(
        x,
        n,
        sparsity=K,
        method=method,
        random_state=2,
        normalize="forward",
        noise=0.0 if method == "spright" else "auto",
    )
    assert spec.values.dtype == dtype
    assert spec.success
    np.testing.assert_array_equal(spec.indices, k)
    rtol = 1e-4 if dtype in (np.float32, np.complex64) else 1e-9
    np.testing.assert_allclose(spec.values, v, rtol=rtol, atol=rtol * np.abs(v).max())


@pytest.mark.parametrize("normalize", [None, "ortho", "forward"])
def test_normalisation_follows_fwht(normalize, rng):
    n, K = 12, 10
    k, v = planted(n, K, rng)
    x = black_box(k, v)(np.arange(1 << n))
    spec = sparse_wht(x, n, sparsity=K, normalize=normalize, random_state=0, noise=0.0)
    ref = fwht(x, normalize=normalize)
    np.testing.assert_allclose(spec.to_dense(), ref, atol=1e-8 * np.abs(ref).max())


def test_cancelling_pair_in_one_bin_is_not_missed(rng):
    # Two integer coefficients that share a bin in group 0 and cancel at the zero offset:
    # a zero-ton test on U_0 alone would drop them; testing all offsets must not.
    n, b = 12, 4
    seed = 5
    design = make_design(n, b, 3, 1, "random", check_random_state(seed))
    ks = np.arange(1 << n, dtype=np.uint64)
    bins = design.hash(ks)[0]
    k1 = np.uint64(77)
    k2 = ks[(bins == bins[77]) & (ks != k1)][0]
    k = np.sort(np.array([k1, k2], dtype=np.uint64))
    v = np.array([5.0, -5.0])
    x = black_box(k, v)(np.arange(1 << n))
    assert fwht(x[sample_positions(design)[0, 0].astype(np.int64)])[bins[77]] == 0
    for method in METHODS:
        spec = sparse_wht(
            x,
            n,
            sparsity=16,
            method=method,
            random_state=seed,
            normalize="forward",
            noise=0.0 if method == "spright" else "auto",
        )
        assert spec.success
        np.testing.assert_array_equal(spec.indices, k)
        np.testing.assert_allclose(spec.values, v)


def test_low_degree_support_with_random_hash(rng):
    # A Boolean-function-like spectrum: all frequencies of Hamming weight <= 1 on 22 bits.
    # Such supports defeat the consecutive-bits hash but not the random one.
    n = 22
    k = np.array([0] + [1 << i for i in range(n)], dtype=np.uint64)
    v = rng.standard_normal(k.size)
    spec = sparse_wht(
        black_box(k, v),
        n,
        sparsity=k.size,
        method="sparsefht",
        normalize="forward",
        random_state=0,
    )
    assert spec.success
    np.testing.assert_array_equal(spec.indices, np.sort(k))


def _noisy_trial(n, K, snr_db, seed, noise_mode):
    # SNR = signal power / noise power (QSFT's synthetic setting): unit-magnitude complex
    # coefficients, complex Gaussian noise in the orthonormal time domain.
    rng = np.random.default_rng(seed)
    N = 1 << n
    X = np.zeros(N, dtype=complex)
    k = np.sort(rng.choice(N, K, replace=False))
    X[k] = np.exp(2j * np.pi * rng.random(K))
    sigma = math.sqrt(K / (N * 10 ** (snr_db / 10)))
    x = fwht(X, normalize="ortho")
    x += sigma * (rng.standard_normal(N) + 1j * rng.standard_normal(N)) / math.sqrt(2)
    spec = quiet(
        signal=x,
        n=n,
        sparsity=K,
        normalize="ortho",
        random_state=seed,
        noise=sigma if noise_mode == "known" else "auto",
    )
    nmse = np.linalg.norm(spec.to_dense() - X) ** 2 / K
    return np.array_equal(spec.indices, k), nmse, spec


@pytest.mark.parametrize("noise_mode", ["known", "auto"])
def test_spright_is_robust_to_noise(noise_mode):
    n, K = 14, 10
    runs = {
        snr: [_noisy_trial(n, K, snr, s, noise_mode) for s in range(10)] for snr in (5, 10, 20)
    }
    # Exact support in (nearly) every trial from 10 dB on.
    assert sum(r[0] for r in runs[10]) >= 9
    assert sum(r[0] for r in runs[20]) == 10
    # The error falls with the SNR, about as the noise power does (10x per 10 dB).
    med = {snr: np.median([r[1] for r in rs]) for snr, rs in runs.items()}
    assert med[5] > med[10] > med[20]
    assert med[20] < 1e-3 and med[10] < 1e-2
    # The noise level was known or estimated within 20 %.
    spec = runs[10][0][2]
    sigma = math.sqrt(K / ((1 << n) * 10))
    assert abs(spec.noise_std / sigma - 1) < 0.2
    # The stated sample bound of SPRIGHT for K < 32: 12 ceil(log2 n) K log2 N.
    assert spec.n_samples <= 12 * math.ceil(math.log2(n)) * K * n


def _per_coefficient_trial(n, K, snr_coef_db, seed, noise_mode, n_chains):
    # The SNR convention of the authors' SPRIGHT code (UCBASiCS, experimentinput.cpp):
    # unit-magnitude coefficients with random phases, complex noise of variance
    # 10**(-SNR/10) per sample of the orthonormal time domain, i.e. per-coefficient power
    # over per-sample noise power (total SNR = that + 10 log10(K / N)).
    rng = np.random.default_rng(seed)
    N = 1 << n
    X = np.zeros(N, dtype=complex)
    k = np.sort(rng.choice(N, K, replace=False))
    X[k] = np.exp(2j * np.pi * rng.random(K))
    sigma = 10 ** (-snr_coef_db / 20)
    x = fwht(X, normalize="ortho")
    x += sigma * (rng.standard_normal(N) + 1j * rng.standard_normal(N)) / math.sqrt(2)
    spec = quiet(
        signal=x,
        n=n,
        sparsity=K,
        normalize="ortho",
        random_state=seed,
        noise=sigma if noise_mode == "known" else "auto",
        n_chains=n_chains,
    )
    exact = bool(spec.success and np.array_equal(spec.indices, k))
    return exact, spec, X


@pytest.mark.parametrize("noise_mode", ["known", "auto"])
def test_spright_success_rate_curve_at_the_reference_operating_point(noise_mode):
    # The SPRIGHT paper's figures could not be read (research note, sections 6 and 9); the
    # operating point its authors' code documents is N = 2**14, K = 10, 5 chains and 30 dB
    # per coefficient, with exact support "with high probability". The success rate must
    # reach that there and above, and rise with the SNR: each bin sees the noise of
    # N / B samples, so below about 25 dB per coefficient (a bin noise std above the
    # coefficients) they cannot be told from noise.
    n, K, trials = 14, 10, 20
    rates = {}
    for snr in (20, 25, 30, 35):
        runs = [_per_coefficient_trial(n, K, snr, s, noise_mode, 5) for s in range(trials)]
        rates[snr] = sum(r[0] for r in runs) / trials
        for exact, spec, X in runs:
            if exact:  # values within a few bin-noise standard deviations
                bin_std = 10 ** (-snr / 20) * math.sqrt((1 << n) / (2 * K))
                err = np.abs(spec.values - X[spec.indices.astype(np.int64)])
                assert err.max() < bin_std, (snr, err.max(), bin_std)
    assert rates[30] >= 0.95 and rates[35] >= 0.95, rates
    assert rates[20] <= rates[25] <= rates[30], rates


def test_pure_noise_gives_an_empty_spectrum(rng):
    n = 14
    x = 0.1 * rng.standard_normal(1 << n)
    for noise in (0.1, "auto"):
        spec = sparse_wht(x, n, sparsity=10, noise=noise, random_state=0)
        assert spec.success and len(spec) <= 1


def test_sparsefht_with_exact_samples_needs_fewer_samples(rng):
    n, K = 18, 40
    k, v = planted(n, K, rng)
    f = black_box(k, v)
    a = sparse_wht(f, n, sparsity=K, method="sparsefht", random_state=0)
    b = sparse_wht(f, n, sparsity=K, method="spright", random_state=0)  # noise="auto"
    assert a.success and b.success
    np.testing.assert_array_equal(a.indices, b.indices)
    assert b.n_samples > 3 * a.n_samples  # ceil(log2 18) = 5 chains


def test_decoding_failure_is_reported_not_silent(rng):
    # 400 nonzeros against a design for 8: peeling cannot finish.
    n = 14
    k, v = planted(n, 400, rng)
    x = black_box(k, v)(np.arange(1 << n))
    with pytest.warns(RuntimeWarning, match="bins still hold energy"):
        spec = sparse_wht(x, n, sparsity=8, method="sparsefht", random_state=0)
    assert not spec.success and "raise sparsity" in spec.message
    with pytest.raises(DecodingError) as info:
        sparse_wht(x, n, sparsity=8, random_state=0, noise=0.0, on_failure="raise")
    assert isinstance(info.value.spectrum, SparseSpectrum)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = sparse_wht(x, n, sparsity=8, random_state=0, noise=0.0, on_failure="ignore")
    assert not spec.success


@pytest.mark.parametrize("hash_kind", ["random", "rotate"])
def test_reproducible_and_parameters(hash_kind, rng):
    n, K = 16, 20
    k, v = planted(n, K, rng)
    f = black_box(k, v)
    kw = dict(sparsity=K, random_state=4, hash=hash_kind, n_bins=64, n_groups=4, noise=0.0)
    a = sparse_wht(f, n, **kw)
    b = sparse_wht(f, n, **kw)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.n_samples == b.n_samples <= 4 * 64 * (n - 6 + 1)
    assert a.success and np.array_equal(a.indices, k)
    c = sparse_wht(f, n, sparsity=K, random_state=4, n_chains=3, noise=0.0, hash=hash_kind)
    assert c.success and np.array_equal(c.indices, k)
    assert "SparseSpectrum(n=16" in repr(c) and len(c) == K and c.time > 0


def test_to_dense_refuses_huge_spectra():
    spec = SparseSpectrum(np.zeros(0, np.uint64), np.zeros(0), 40, 0, 0.0, True, "spright", 1, "")
    with pytest.raises(ValueError, match="n <= 30"):
        spec.to_dense()


X16 = np.ones(16)
X16_nan = X16.copy()
X16_nan[3] = np.nan


def _wrong_shape(idx):
    return np.zeros(idx.size + 1)


def _nan_samples(idx):
    return np.full(idx.shape, np.nan)


def _text_samples(idx):
    return np.array(["a"] * idx.size)


BAD_INPUT = [
    # (args, kwargs, error, message fragment)
    ((X16, 4), {"sparsity": 16}, ValueError, "sparsity must be in"),
    ((X16, 4), {"sparsity": 0}, ValueError, "sparsity must be in"),
    ((X16, 4), {"sparsity": 2.0}, TypeError, "sparsity must be an integer"),
    ((X16, 0), {"sparsity": 1}, ValueError, "n must be in"),
    ((X16, 63), {"sparsity": 1}, ValueError, "n must be in"),
    ((X16, 4.0), {"sparsity": 1}, TypeError, "n must be an integer"),
    ((np.ones(12), 4), {"sparsity": 2}, ValueError, "length 2\\*\\*n = 16"),
    ((X16, 5), {"sparsity": 2}, ValueError, "length 2\\*\\*n = 32"),
    ((np.ones((4, 4)), 4), {"sparsity": 2}, ValueError, "1-D array"),
    ((X16_nan, 4), {"sparsity": 2}, ValueError, "NaN or infinity"),
    ((np.array(["a"] * 16), 4), {"sparsity": 2}, TypeError, "must hold numbers"),
    (("signal", 4), {"sparsity": 2}, TypeError, "1-D array of length 2\\*\\*n or a callable"),
    ((_wrong_shape, 10), {"sparsity": 2}, ValueError, "must return an array of the indices"),
    ((_nan_samples, 10), {"sparsity": 2}, ValueError, "NaN or infinity"),
    ((_text_samples, 10), {"sparsity": 2}, TypeError, "must return numbers"),
    ((X16, 4), {"sparsity": 2, "method": "fft"}, ValueError, "method must be one of"),
    ((X16, 4), {"sparsity": 2, "noise": -1.0}, ValueError, "noise must be"),
    ((X16, 4), {"sparsity": 2, "noise": "high"}, ValueError, "noise must be 'auto'"),
    ((X16, 4), {"sparsity": 2, "noise": float("nan")}, ValueError, "noise must be"),
    ((X16, 4), {"sparsity": 2, "method": "sparsefht", "noise": 0.1}, ValueError, "spright"),
    ((X16, 4), {"sparsity": 2, "method": "sparsefht", "n_chains": 3}, ValueError, "one chain"),
    ((X16, 4), {"sparsity": 2, "n_bins": 6}, ValueError, "power of two"),
    ((X16, 4), {"sparsity": 2, "n_bins": 32}, ValueError, "n_bins must be in"),
    ((X16, 4), {"sparsity": 2, "n_groups": 0}, ValueError, "n_groups must be in"),
    ((X16, 4), {"sparsity": 2, "n_chains": 0}, ValueError, "n_chains must be in"),
    ((X16, 4), {"sparsity": 2, "hash": "identity"}, ValueError, "hash must be one of"),
    ((X16, 4), {"sparsity": 2, "max_iter": 0}, ValueError, "max_iter must be in"),
    ((X16, 4), {"sparsity": 2, "on_failure": "crash"}, ValueError, "on_failure must be one of"),
    ((X16, 4), {"sparsity": 2, "normalize": "unit"}, ValueError, "normalize must be one of"),
    ((X16, 4), {"sparsity": 2, "random_state": "seed"}, TypeError, "random_state"),
]


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), BAD_INPUT)
def test_bad_input(args, kwargs, error, match):
    before = copy.deepcopy(args[0]) if isinstance(args[0], np.ndarray) else None
    with pytest.raises(error, match=match):
        sparse_wht(*args, **kwargs)
    if before is not None:
        np.testing.assert_array_equal(args[0], before)


def test_callable_input_is_not_modified():
    seen = []

    def f(idx):
        seen.append(idx)
        out = np.ones(idx.shape)
        idx[:] = 0  # a careless callable; sparse_wht must hand it a copy
        return out

    spec = sparse_wht(f, 10, sparsity=2, noise=0.0, random_state=0)
    assert spec.success and spec.indices.tolist() == [0]
    assert np.allclose(spec.values, [1024.0])


@pytest.mark.parametrize(
    ("n", "K", "K_true", "dtype"),
    [
        (5, 30, 30, np.float64),  # B = N: the hash is a bijection and nearly every bin is full
        (4, 13, 13, np.float32),
        (3, 6, 6, np.complex128),
        (6, 28, 64, np.float64),  # more nonzeros than `sparsity`, every bin occupied
        (10, 20, 100, np.float32),
        (8, 31, 124, np.float64),
    ],
)
def test_auto_noise_on_exact_dense_spectra_is_exact_or_reports_failure(n, K, K_true, dtype, rng):
    # noise="auto" used to estimate the noise from bins the design expects to be empty; here
    # they hold coefficients, so the estimate was the signal's level, the thresholds threw
    # the coefficients away and the result said success with few or none of them found.
    N = 1 << n
    for seed in range(4):
        X = np.zeros(N, dtype=dtype)
        support = rng.choice(N, K_true, replace=False)
        X[support] = rng.standard_normal(K_true)
        if np.dtype(dtype).kind == "c":
            X[support] += 1j * rng.standard_normal(K_true)
        x = fwht(X, normalize="forward").astype(dtype)
        ref = fwht(x.astype(np.complex128 if X.dtype.kind == "c" else np.float64))
        spec = quiet(signal=x, n=n, sparsity=K, random_state=seed)
        tol = (1e-4 if X.real.dtype == np.float32 else 1e-10) * np.abs(ref).max()
        if spec.success:
            np.testing.assert_allclose(spec.to_dense(), ref, rtol=0, atol=tol)
            assert spec.noise_std == 0.0
        else:
            assert "bins still hold energy" in spec.message
        # the exact path must agree with noise=0 given explicitly
        given = quiet(signal=x, n=n, sparsity=K, noise=0.0, random_state=seed)
        assert given.success == spec.success
        np.testing.assert_array_equal(given.indices, spec.indices)


@pytest.mark.parametrize("scale", [1e-300, 1e-150, 1e150, 1e300])
@pytest.mark.parametrize(
    ("method", "noise"), [("sparsefht", "auto"), ("spright", "auto"), ("spright", 0.0)]
)
def test_extreme_scales_give_the_scaled_spectrum(scale, method, noise, rng):
    # The energy tests square bin values: at 1e-300 they underflowed to zero (an empty
    # spectrum reported as success), at 1e300 the round-off floor raised OverflowError.
    n, K = 12, 6
    k, v = planted(n, K, rng)
    x = black_box(k, v)(np.arange(1 << n)) * scale
    before = x.copy()
    spec = sparse_wht(
        x, n, sparsity=K, method=method, noise=noise, normalize="forward", random_state=1
    )
    np.testing.assert_array_equal(x, before)
    assert spec.success
    np.testing.assert_array_equal(spec.indices, k)
    np.testing.assert_allclose(spec.values / scale, v, rtol=1e-9)


@pytest.mark.parametrize("scale", [1e-200, 1.0, 1e200])
@pytest.mark.parametrize("noise_mode", ["known", "auto"])
def test_noisy_decode_is_scale_invariant(scale, noise_mode, rng):
    n, K, sigma = 13, 8, 0.05
    k = np.sort(rng.choice(1 << n, K, replace=False)).astype(np.uint64)
    v = 5.0 * rng.choice([-1.0, 1.0], K)
    x = black_box(k, v)(np.arange(1 << n)) + sigma * rng.standard_normal(1 << n)
    ref = sparse_wht(
        x, n, sparsity=K, noise=sigma if noise_mode == "known" else "auto", random_state=2
    )
    spec = sparse_wht(
        x * scale,
        n,
        sparsity=K,
        noise=sigma * scale if noise_mode == "known" else "auto",
        random_state=2,
    )
    assert ref.success and spec.success
    np.testing.assert_array_equal(spec.indices, k)
    np.testing.assert_array_equal(spec.indices, ref.indices)
    np.testing.assert_allclose(spec.values / scale, ref.values, rtol=1e-12)
    np.testing.assert_allclose(spec.noise_std / scale, ref.noise_std, rtol=1e-12)
