"""omp against scikit-learn's orthogonal_mp, least squares and brute-force support search."""

from __future__ import annotations

import itertools
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import orthogonal_mp

from sparselin.recovery import _greedy, omp
from sparselin.recovery._checks import check_problem, check_weights
from sparselin.recovery._omp_gpu import omp_device


def _problem(rng, m, N, n_signals=None, s=5, dtype=np.float64, unit=True):
    A = rng.standard_normal((m, N))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal((m, N))
    if unit:
        A /= np.linalg.norm(A, axis=0)
    shape = (N,) if n_signals is None else (N, n_signals)
    X = np.zeros(shape, dtype=A.dtype)
    cols = 1 if n_signals is None else n_signals
    for c in range(cols):
        sup = rng.choice(N, s, replace=False)
        vals = rng.standard_normal(s)
        if np.dtype(dtype).kind == "c":
            vals = vals + 1j * rng.standard_normal(s)
        if n_signals is None:
            X[sup] = vals
        else:
            X[sup, c] = vals
    return A.astype(dtype), X.astype(dtype)


@pytest.mark.parametrize("n_signals", [None, 1, 3, 400])
def test_matches_sklearn_on_random_problems(rng, n_signals):
    # 400 signals take the Gram path, a few the residual path; both must agree with sklearn.
    A, _ = _problem(rng, 40, 90)
    Y = rng.standard_normal((40,) if n_signals is None else (40, n_signals))
    for k in (1, 7, 25):
        ours = omp(A, Y, n_nonzero=k)
        ref = orthogonal_mp(A, Y, n_nonzero_coefs=k)
        np.testing.assert_allclose(ours.reshape(ref.shape), ref, atol=1e-10)


@pytest.mark.parametrize("path", ["gram", "residual"])
def test_both_paths_agree(rng, monkeypatch, path):
    A, X = _problem(rng, 30, 60, n_signals=20, s=4)
    Y = A @ X + 1e-2 * rng.standard_normal((30, 20))
    monkeypatch.setattr(_greedy, "_use_gram", lambda *a: path == "gram")
    ours = omp(A, Y, n_nonzero=8)
    ref = orthogonal_mp(A, Y, n_nonzero_coefs=8)
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_tol_means_squared_residual_norm(rng):
    A, _ = _problem(rng, 40, 80)
    y = rng.standard_normal(40)
    for tol in (5.0, 0.5, 1e-3):
        ours = omp(A, y, tol=tol)
        ref = orthogonal_mp(A, y, tol=tol)
        np.testing.assert_allclose(ours, ref, atol=1e-10)
        assert np.sum((y - A @ ours) ** 2) <= tol
        # one atom fewer would not have met tol (the count is minimal for the greedy path)
        k = np.count_nonzero(ours)
        if k > 1:
            fewer = omp(A, y, n_nonzero=k - 1)
            assert np.sum((y - A @ fewer) ** 2) > tol


def test_default_n_nonzero_is_sklearns(rng):
    A, _ = _problem(rng, 50, 120)
    y = rng.standard_normal(50)
    assert np.count_nonzero(omp(A, y)) == 12
    np.testing.assert_allclose(omp(A, y), orthogonal_mp(A, y), atol=1e-10)


def test_non_unit_columns_are_normalised_and_mapped_back(rng):
    A, x = _problem(rng, 40, 100, s=6)
    scales = rng.uniform(0.01, 100, 100)
    As = A * scales
    # the same sparse vector, in the scaled dictionary's units
    ours = omp(As, As @ (x / scales), n_nonzero=6)
    np.testing.assert_allclose(ours, x / scales, rtol=1e-9, atol=1e-12)
    # and identical to OMP on the normalised dictionary, mapped back
    y = rng.standard_normal(40)
    np.testing.assert_allclose(
        omp(As, y, n_nonzero=9) * scales, orthogonal_mp(A, y, n_nonzero_coefs=9), atol=1e-9
    )


def test_exact_recovery_at_usual_sample_counts(rng):
    # m ~ 2 s log(N / s): Gaussian measurements recover s-sparse vectors with OMP.
    N, s = 256, 8
    m = 64
    A, X = _problem(rng, m, N, n_signals=50, s=s)
    coef = omp(A, A @ X, n_nonzero=s)
    ok = np.all(np.abs(coef - X) < 1e-8, axis=0)
    assert ok.mean() >= 0.95


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_complex_exact_recovery_and_least_squares(rng, dtype):
    A, X = _problem(rng, 48, 100, n_signals=6, s=5, dtype=dtype)
    coef = omp(A, A @ X, n_nonzero=5)
    assert coef.dtype == dtype
    tol = 1e-4 if dtype == np.complex64 else 1e-10
    np.testing.assert_allclose(coef, X, atol=tol)
    # noisy: coefficients are the least-squares fit on the selected support
    y = (A @ X[:, 0] + 0.05 * rng.standard_normal(48)).astype(dtype)
    c = omp(A, y, n_nonzero=7)
    sup = np.flatnonzero(c)
    ls = np.linalg.lstsq(A[:, sup].astype(np.complex128), y.astype(np.complex128), rcond=None)[0]
    np.testing.assert_allclose(c[sup], ls, atol=10 * tol + 1e-4 * (dtype == np.complex64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(rng, dtype):
    A, X = _problem(rng, 40, 80, n_signals=300, s=4)
    Y = A @ X
    coef = omp(A.astype(dtype), Y.astype(dtype), n_nonzero=4)
    assert coef.dtype == dtype
    ref = orthogonal_mp(A, Y, n_nonzero_coefs=4)
    if dtype == np.float64:
        np.testing.assert_allclose(coef, ref, atol=1e-10)
    else:
        # float32 rounding may flip a near-tie between two correlations on a few signals
        ok = np.all(np.abs(coef - ref) < 1e-4, axis=0)
        assert ok.mean() >= 0.98
    assert np.all(np.abs(ref - X) < 1e-8, axis=0).mean() >= 0.95


def _brute_force_best(A, y, k):
    """Smallest residual over every support of size k (least squares on each)."""
    best, best_sup = np.inf, None
    for sup in itertools.combinations(range(A.shape[1]), k):
        B = A[:, sup]
        coef = np.linalg.lstsq(B, y, rcond=None)[0]
        res = np.linalg.norm(y - B @ coef)
        if res < best:
            best, best_sup = res, sup
    return best, best_sup


def test_brute_force_support_search_on_tiny_sizes(rng):
    # On tiny problems with a well separated sparse signal, OMP finds the best support; in
    # every case its residual is never below the optimum (sanity of the least-squares refit).
    hits = 0
    for _ in range(20):
        A, x = _problem(rng, 8, 12, s=2)
        y = A @ x + 1e-3 * rng.standard_normal(8)
        coef = omp(A, y, n_nonzero=2)
        best, best_sup = _brute_force_best(A, y, 2)
        res = np.linalg.norm(y - A @ coef)
        assert res >= best - 1e-12
        hits += tuple(np.flatnonzero(coef)) == best_sup
        sup = np.flatnonzero(coef)
        ls = np.linalg.lstsq(A[:, sup], y, rcond=None)[0]
        np.testing.assert_allclose(coef[sup], ls, atol=1e-12)
    assert hits >= 16


def test_weights_scale_the_selection(rng):
    A, _ = _problem(rng, 30, 50)
    y = rng.standard_normal(30)
    w = rng.uniform(0.2, 3, 50)
    # weighted OMP = OMP on columns a_j / w_j, mapped back
    ref = orthogonal_mp(A / w, y, n_nonzero_coefs=6) / w
    np.testing.assert_allclose(omp(A, y, n_nonzero=6, weights=w), ref, atol=1e-10)
    # zero weight: unpenalised atoms are taken first
    w0 = np.ones(50)
    w0[[7, 40]] = 0
    first = omp(A, y, n_nonzero=2, weights=w0)
    assert set(np.flatnonzero(first)) == {7, 40}


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_gram_products_match_direct_products(rng, dtype, threads):
    # The Gram path splits A^H A (upper block rows, then the mirror) and A^H Y into row
    # blocks, one single-threaded BLAS call each, on `threads` threads.
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    # The last size is above _MIN_THREADED_FLOPS: its blocks run on a thread pool.
    for m, N, n in ((3, 5, 2), (7, 70, 33), (64, 300, 200)):
        assert (m * N * (N / 2 + n) >= _greedy._MIN_THREADED_FLOPS) == (N == 300)
        A, _ = _problem(rng, m, N, dtype=dtype)
        Y = rng.standard_normal((m, n))
        if np.dtype(dtype).kind == "c":
            Y = Y + 1j * rng.standard_normal((m, n))
        Y = Y.astype(dtype)
        G, Gs, AtY = _greedy._gram_products(A, Y, threads)
        assert G.flags.c_contiguous and AtY.flags.c_contiguous
        assert G.dtype == AtY.dtype == dtype
        # The screening copy: G rounded to single precision (G itself when G is single).
        if dtype in (np.float32, np.complex64):
            assert Gs is G
        else:
            assert Gs.dtype == (np.complex64 if np.dtype(dtype).kind == "c" else np.float32)
            np.testing.assert_array_equal(Gs, G.astype(Gs.dtype))
        Ah = A.conj().T.astype(np.complex128 if np.dtype(dtype).kind == "c" else np.float64)
        np.testing.assert_allclose(G, Ah @ A, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(AtY, (Ah @ Y).T, rtol=rtol, atol=rtol * np.abs(Y).max())
        np.testing.assert_allclose(G, G.conj().T, rtol=0, atol=rtol)


def test_gram_batch_does_not_depend_on_the_thread_count(rng):
    import numba

    A, X = _problem(rng, 40, 120, n_signals=300, s=5)
    Y = A @ X + 1e-3 * rng.standard_normal((40, 300))
    ref = omp(A, Y, n_nonzero=10)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = omp(A, Y, n_nonzero=10)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_allclose(one, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref, orthogonal_mp(A, Y, n_nonzero_coefs=10), atol=1e-10)


def test_batch_equals_one_by_one(rng):
    A, X = _problem(rng, 30, 70, n_signals=40, s=3)
    Y = A @ X + 0.1 * rng.standard_normal((30, 40))
    batch, n_iter = omp(A, Y, n_nonzero=5, return_n_iter=True)
    for s in range(0, 40, 7):
        np.testing.assert_allclose(batch[:, s], omp(A, Y[:, s], n_nonzero=5), atol=1e-12)
    assert np.all(n_iter == 5)


def test_return_path(rng):
    A, _ = _problem(rng, 30, 60)
    Y = rng.standard_normal((30, 3))
    coef = omp(A, Y, n_nonzero=5)
    path = omp(A, Y, n_nonzero=5, return_path=True)
    assert path.shape == (60, 3, 5)
    np.testing.assert_allclose(path[:, :, -1], coef)
    for k in range(1, 6):
        np.testing.assert_allclose(path[:, :, k - 1], omp(A, Y, n_nonzero=k), atol=1e-12)


def test_linear_dependence_warns_and_zero_signal_is_silent(rng):
    A, _ = _problem(rng, 20, 30)
    A[:, 1] = A[:, 0]
    y = 2.0 * A[:, 0]
    with pytest.warns(RuntimeWarning, match="ended prematurely"):
        coef = omp(A, y, n_nonzero=2)
    np.testing.assert_allclose(A @ coef, y, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not omp(A, np.zeros(20), n_nonzero=3).any()


def test_inputs_not_modified(rng):
    A, X = _problem(rng, 20, 40, n_signals=5, unit=False)
    Y = A @ X
    A0, Y0 = A.copy(), Y.copy()
    omp(A, Y, n_nonzero=3)
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(Y, Y0)


def _adapter_source() -> str:
    return '''
import numpy as _np
from sparselin.recovery import omp as _omp


def orthogonal_mp(X, y, *, n_nonzero_coefs=None, tol=None, precompute=False, copy_X=True,
                  return_path=False, return_n_iter=False):
    """sklearn's orthogonal_mp argument names mapped onto sparselin's omp."""
    X = _np.asarray(X)
    if n_nonzero_coefs is not None and n_nonzero_coefs > X.shape[1]:
        raise ValueError("The number of atoms cannot be more than the number of features")
    return _omp(X, y, n_nonzero=n_nonzero_coefs, tol=tol, return_path=return_path,
                return_n_iter=return_n_iter)
'''


def test_sklearn_own_omp_tests_pass_with_sparselin(tmp_path):
    """scikit-learn's test_omp.py with ``orthogonal_mp`` swapped for sparselin's ``omp``.

    The module is read from the installed scikit-learn; only the import is rewritten, to an
    adapter that maps argument names (n_nonzero_coefs -> n_nonzero; precompute and copy_X
    have no counterpart: sparselin picks the Gram path itself and never modifies X).
    """
    source_path = Path(sklearn.__file__).parent / "linear_model/tests/test_omp.py"
    assert source_path.exists(), f"scikit-learn's test module is missing: {source_path}"
    source = source_path.read_text()
    original = "    orthogonal_mp,\n"
    assert original in source, "scikit-learn changed the import block; update the swap"
    swapped = source.replace(original, "", 1).replace(
        "from sklearn.utils import check_random_state",
        "from sklearn.utils import check_random_state\nfrom omp_adapter import orthogonal_mp",
    )
    (tmp_path / "omp_adapter.py").write_text(_adapter_source())
    target = tmp_path / "test_sklearn_omp_swapped.py"
    target.write_text(swapped)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "sklearn.conftest",
            str(target),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("n_twins", [2, 40])
def test_screened_selection_is_exact_on_near_ties(rng, monkeypatch, dtype, n_twins, weighted):
    # The Gram path updates double-precision correlations from a single-precision copy of G
    # and re-checks every atom within the rounding bound exactly. Twin columns whose
    # correlations differ far below single precision (1e-10 relative) must still be told
    # apart exactly as the residual path (double precision throughout) does; with 40 twins
    # the screening has too many candidates and recomputes every correlation exactly.
    m, N, n = 30, 120, 50
    A, _ = _problem(rng, m, N, dtype=dtype)
    base = A[:, 0].copy()
    for t in range(1, n_twins + 1):
        twin = base + 1e-10 * t * A[:, 60 + t % 50]
        A[:, t] = twin / np.linalg.norm(twin)
    # A strong atom first (its step scores exactly, from A^H y), then the twins compete.
    strong = np.zeros((N, n), dtype)
    strong[90 + np.arange(n) % 30, np.arange(n)] = 5.0
    Y = A @ strong + base[:, None] + 1e-3 * rng.standard_normal((m, n))
    # Weighted: the twins keep weight 1 while other atoms get smaller weights, so the bound
    # must use the largest 1 / w^2 of all atoms, not only the best one's.
    w = None
    if weighted:
        w = np.ones(N)
        w[n_twins + 1 :] = rng.uniform(0.5, 1.0, N - n_twins - 1)
    paths = {}
    for path in ("gram", "residual"):
        monkeypatch.setattr(_greedy, "_use_gram", lambda *a, p=path: p == "gram")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # twins are nearly dependent
            paths[path] = omp(A, Y, n_nonzero=12, weights=w)
    assert np.array_equal(paths["gram"] != 0, paths["residual"] != 0)
    np.testing.assert_allclose(paths["gram"], paths["residual"], rtol=1e-6, atol=1e-6)


def test_screened_selection_past_exact_recovery(rng, monkeypatch):
    # After an exact recovery the correlations are at rounding level, where every atom is a
    # screening candidate: the kernel must fall back to exact correlations and stop as the
    # residual path does.
    A, X = _problem(rng, 40, 100, n_signals=60, s=4)
    Y = A @ X
    out = {}
    for path in ("gram", "residual"):
        monkeypatch.setattr(_greedy, "_use_gram", lambda *a, p=path: p == "gram")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[path] = omp(A, Y, n_nonzero=10, return_n_iter=True)
    np.testing.assert_array_equal(out["gram"][1], out["residual"][1])
    np.testing.assert_allclose(out["gram"][0], out["residual"][0], atol=1e-10)
    np.testing.assert_allclose(out["gram"][0], X, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_weighted_batch_on_both_paths(rng, monkeypatch, dtype):
    # The Gram path's screened selection bounds the scores with the weights (sqrt(w_b^-2) and
    # the largest w^-2); unpenalised atoms (weight 0) take the exact rule on every step. Both
    # must select as the residual path and as OMP on the rescaled columns a_j / w_j do.
    m, N, n = 30, 80, 40
    A, _ = _problem(rng, m, N, dtype=dtype)
    Y = rng.standard_normal((m, n)).astype(dtype)
    w = rng.uniform(0.2, 3, N)
    w0 = w.copy()
    w0[[5, 33]] = 0
    for weights in (w, w0):
        out = {}
        for path in ("gram", "residual"):
            monkeypatch.setattr(_greedy, "_use_gram", lambda *a, p=path: p == "gram")
            out[path] = omp(A, Y, n_nonzero=7, weights=weights)
        np.testing.assert_allclose(out["gram"], out["residual"], atol=1e-10)
        if weights is w and dtype == np.float64:
            ref = orthogonal_mp(A / w, Y, n_nonzero_coefs=7) / w[:, None]
            np.testing.assert_allclose(out["gram"], ref, atol=1e-10)
        if weights is w0:
            assert np.all(out["gram"][[5, 33]] != 0)


_NO_FLAGS = {"return_path": False, "return_n_iter": False}


@pytest.mark.parametrize("path", ["gram", "residual", "device"])
@pytest.mark.parametrize("factor", [1e-300, 1e-200, 1e-160, 1e160, 1e200, 1e300])
def test_selection_is_invariant_to_one_factor_on_all_weights(rng, monkeypatch, path, factor):
    # argmax |c_j| / w_j does not change when every weight is scaled by one factor. 1 / w^2
    # used to overflow (w < 1e-154) or underflow to 0 (w > 1e154), and every path then took
    # the first atoms in column order (support 0..5 here) instead of the most correlated.
    A, _ = _problem(rng, 25, 50)
    Y = rng.standard_normal((25, 3))
    w = rng.uniform(0.3, 3, 50)
    w0 = w.copy()
    w0[[4, 17]] = 0
    for weights in (w, w0):
        ref = omp(A, Y, n_nonzero=6, weights=weights)
        monkeypatch.setattr(_greedy, "_use_gram", lambda *a, p=path: p == "gram")
        if path == "device":  # the batched GPU core, run on NumPy (test_omp_gpu.py)
            got = omp_device(A, Y, weights * factor, n_nonzero=6, tol=None, **_NO_FLAGS)
        else:
            got = omp(A, Y, n_nonzero=6, weights=weights * factor)
        np.testing.assert_array_equal(got != 0, ref != 0)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_weights_over_a_wide_range_select_by_ratio(rng):
    # Weights from 1e-140 to 1e140: the scores |c_j|^2 (w_ref / w_j)^2 stay finite and
    # non-zero, so the rule equals OMP on the columns a_j / w_j (rescaled to unit norm).
    A, _ = _problem(rng, 20, 30)
    y = rng.standard_normal(20)
    w = 10.0 ** rng.uniform(-140, 140, 30)
    w[np.argsort(w)[:8]] = 10.0 ** rng.uniform(-1, 1, 8)  # a few comparable candidates
    got = omp(A, y, n_nonzero=5, weights=w)
    sup, r = [], y.copy()
    for _ in range(5):  # the textbook rule in logarithms, which cannot over- or underflow
        score = np.log(np.abs(A.T @ r) + 1e-300) - np.log(w)
        score[sup] = -np.inf
        sup.append(int(np.argmax(score)))
        r = y - A[:, sup] @ np.linalg.lstsq(A[:, sup], y, rcond=None)[0]
    assert set(np.flatnonzero(got)) == set(sup)


@pytest.mark.parametrize("path", ["gram", "residual", "device"])
@pytest.mark.parametrize("sA, sy", [(1.0, 1e-170), (1.0, 1e170), (1e-170, 1.0), (1e170, 1.0)])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_scale_beyond_the_squares_range(rng, monkeypatch, path, sA, sy, dtype):
    # Squared norms and correlations of data at 1e+-170 over- or underflow: every signal used
    # to come back as zeros (at y = 1e-170 with no warning, its squared norm being 0). Powers
    # of two now scale the columns and each signal (exactly), and tol with the signal.
    A, _ = _problem(rng, 20, 40, dtype=dtype)
    X = np.zeros((40, 3), dtype)
    X[[2, 9, 30], 0] = [1.0, -2.0, 0.5]
    X[[1, 5, 22], 1] = [3.0, 1.0, -1.0]  # signal 2 stays 0: a batch with an all-zero signal
    Y = A @ X
    monkeypatch.setattr(_greedy, "_use_gram", lambda *a, p=path: p == "gram")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no premature stop, and the zero signal is silent
        if path == "device":
            A_, Y_, _ = check_problem(A * sA, Y * sy, allow_2d_y=True)
            w_ = check_weights(None, 40, A_.dtype)
            got = omp_device(A_, Y_, w_, n_nonzero=3, tol=None, **_NO_FLAGS)
        else:
            got = omp(A * sA, Y * sy, n_nonzero=3)
    np.testing.assert_allclose(got * (sA / sy), X, atol=1e-10)
    assert not got[:, 2].any()


@pytest.mark.parametrize("path", ["gram", "residual", "device"])
def test_tol_is_scaled_with_each_signal(rng, monkeypatch, path):
    # Signals 1e-100 and 1e100 apart in one batch, each with a tolerance it meets after a
    # different number of atoms: the per-signal scaling must carry tol along exactly.
    A, _ = _problem(rng, 30, 60)
    X = np.zeros((60, 2))
    X[[3, 8, 20, 41], :] = [[4.0, 4.0], [2.0, 2.0], [1.0, 1.0], [0.5, 0.5]]
    Y = A @ X * np.array([1e-100, 1e100])
    monkeypatch.setattr(_greedy, "_use_gram", lambda *a, p=path: p == "gram")
    ref = omp(A, A @ X[:, 0], tol=0.3, return_n_iter=True)
    for k, s in enumerate((1e-100, 1e100)):
        # the other signal's tolerance is out of its reach: it may stop early and warn
        warnings.simplefilter("ignore", RuntimeWarning)
        if path == "device":
            got = omp_device(A, Y, np.ones(60), n_nonzero=30, tol=0.3 * s * s, **_NO_FLAGS)
            got, n = got[:, k], np.count_nonzero(got[:, k])
        else:
            got, n = omp(A, Y, tol=0.3 * s * s, return_n_iter=True)
            got, n = got[:, k], n[k]
        assert n == ref[1] < 4
        np.testing.assert_allclose(got / s, ref[0], rtol=1e-12, atol=1e-14)
