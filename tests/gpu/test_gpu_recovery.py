"""omp's batched GPU path on real CuPy, at the issue's size (run with ``pytest -m gpu``).

The same checks on small problems run everywhere through the CuPy stand-in
(tests/recovery/test_omp_gpu.py); these add what only a device shows: cuBLAS rounding,
CuPy's argmax on ties, and the benchmark's problem (A 256 x 1024, 20 nonzeros, 1000 signals)
against the CPU omp.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sparselin.recovery import loss_omp, omp

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


def _issue_problem(dtype, n_sig=1000, m=256, N=1024, s=20, seed=0):
    rng = np.random.default_rng(seed)
    cplx = np.dtype(dtype).kind == "c"
    A = rng.standard_normal((m, N)) + (1j * rng.standard_normal((m, N)) if cplx else 0)
    A /= np.linalg.norm(A, axis=0)
    X = np.zeros((N, n_sig), dtype=A.dtype)
    for c in range(n_sig):
        vals = rng.standard_normal(s) + (1j * rng.standard_normal(s) if cplx else 0)
        X[rng.choice(N, s, replace=False), c] = vals
    return A.astype(dtype), (A @ X).astype(dtype), X


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.complex64])
def test_issue_size_matches_cpu_and_recovers(cp, dtype):
    A, Y, X = _issue_problem(dtype)
    coef_d, n_d = omp(cp.asarray(A), cp.asarray(Y), n_nonzero=20, return_n_iter=True)
    assert isinstance(coef_d, cp.ndarray) and coef_d.dtype == dtype
    coef = cp.asnumpy(coef_d)
    ref = omp(A, Y, n_nonzero=20)
    single = np.dtype(dtype) in (np.float32, np.complex64)
    same = np.all((coef != 0) == (ref != 0), axis=0)
    assert same.mean() >= (0.99 if single else 1.0)
    tol = 1e-3 if single else 1e-9
    np.testing.assert_allclose(coef[:, same], ref[:, same], atol=tol)
    assert np.all(np.abs(coef - X) < 10 * tol, axis=0).mean() >= 0.97
    assert bool(cp.all(n_d == 20))


def test_tol_weights_and_mixed_stops_match_cpu(cp):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((128, 512)) * rng.uniform(0.1, 10, 512)
    Y = rng.standard_normal((128, 300))
    Y[:, 0] = 0.0
    w = rng.uniform(0.5, 2.0, 512)
    w[[3, 100]] = 0.0
    for kw in ({"tol": 40.0}, {"n_nonzero": 30, "weights": w}, {"tol": 10.0, "weights": w}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref, n_ref = omp(A, Y, return_n_iter=True, **kw)
            dkw = {k: cp.asarray(v) if k == "weights" else v for k, v in kw.items()}
            got, n_got = omp(cp.asarray(A), cp.asarray(Y), return_n_iter=True, **dkw)
        np.testing.assert_array_equal(cp.asnumpy(n_got), n_ref)
        np.testing.assert_allclose(cp.asnumpy(got), ref, atol=1e-9)


def test_ties_and_path_on_device(cp):
    A = np.eye(16)
    y = np.ones(16)
    got = cp.asnumpy(omp(cp.asarray(A), cp.asarray(y), n_nonzero=5))
    np.testing.assert_array_equal(np.flatnonzero(got), np.arange(5))
    rng = np.random.default_rng(2)
    A = rng.standard_normal((40, 80))
    Y = rng.standard_normal((40, 7))
    path = omp(cp.asarray(A), cp.asarray(Y), tol=5.0, return_path=True)
    np.testing.assert_allclose(cp.asnumpy(path), omp(A, Y, tol=5.0, return_path=True), atol=1e-9)


def test_loss_omp_refuses_device_arrays(cp):
    A = cp.asarray(np.eye(4))
    with pytest.raises(TypeError, match="CPU only"):
        loss_omp(A, A[:, 0], loss="lasso", penalty="l0", lam=0.0)
