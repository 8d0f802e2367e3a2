"""The SVD functions on every array backend: NumPy, the CuPy stand-in, and real CuPy.

The stand-in (tests/fake_gpu) behaves like a device library where it matters: its arrays
refuse implicit conversion to NumPy and refuse to mix with host arrays, only the API real CuPy
has exists, sparse matrices are cupyx's formats on the "device", and raw CUDA kernels do not
compile. So every ``xp``-generic path the GPU takes runs here in CI, and a stray NumPy call on
device data fails as it would on a GPU. It does not replace ``pytest -m gpu`` on a real device
(numerics of cuBLAS/cuSOLVER, the CUDA kernels). Results are compared with the NumPy path on
the same seed, which draws the same test matrices.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from sparselin import svd_update, truncated_svd
from sparselin.datasets import make_low_rank_matrix
from tests._helpers import orthonormality_error, relative_error, tolerance

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


@pytest.fixture(autouse=True)
def _quiet_fallbacks():
    # The stand-in cannot compile CUDA kernels and its svds refuses complex input: sparselin
    # announces its fallbacks with RuntimeWarnings, which are expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _check_against_host(backend, A_host, A_dev, **kw):
    U, s, Vt = truncated_svd(A_dev, random_state=0, **kw)
    assert isinstance(U, backend.xp.ndarray) and isinstance(s, backend.xp.ndarray)
    U, s, Vt = (backend.to_host(x) for x in (U, s, Vt))
    Uc, sc, Vtc = truncated_svd(A_host, random_state=0, **kw)
    assert U.dtype == Uc.dtype and s.dtype == sc.dtype and Vt.dtype == Vtc.dtype
    tol = tolerance(U.dtype)
    assert s.shape == sc.shape
    np.testing.assert_allclose(s, sc, rtol=10 * tol, atol=10 * tol * float(sc[0]))
    assert orthonormality_error(U) < 100 * tol
    assert orthonormality_error(Vt.conj().T) < 100 * tol
    err, err_host = relative_error(A_host, U, s, Vt), relative_error(A_host, Uc, sc, Vtc)
    assert err <= err_host * (1 + 10 * tol) + 10 * tol


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["randomized", "block_krylov", "lanczos"])
def test_fixed_rank_dense(backend, dtype, method):
    A = make_low_rank_matrix(120, 90, decay=0.85, dtype=dtype, random_state=1)
    _check_against_host(backend, A, backend.asarray(A), k=6, method=method)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fixed_accuracy_and_options_dense(backend, dtype):
    A = make_low_rank_matrix(120, 90, decay=0.85, dtype=dtype, random_state=1)
    Ad = backend.asarray(A)
    _check_against_host(backend, A, Ad, tol=1e-2)
    _check_against_host(backend, A, Ad, k=6, n_iter=3, power_iteration_normalizer="LU")
    U, s, Vt, err = truncated_svd(Ad, 6, random_state=0, return_error=True)
    assert isinstance(err, float)
    assert err == pytest.approx(relative_error(A, *(backend.to_host(x) for x in (U, s, Vt))))


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["randomized", "block_krylov", "lanczos"])
def test_sparse_input(backend, fmt, dtype, method):
    A = sp.random(150, 100, density=0.05, format=fmt, dtype=dtype, random_state=2)
    _check_against_host(backend, A, backend.asarray(A), k=5, method=method)
    if method != "lanczos":
        _check_against_host(backend, A, backend.asarray(A), tol=0.5, method=method)


@pytest.mark.parametrize("dtype", [np.float64, np.complex64])
def test_linear_operator(backend, dtype):
    A = make_low_rank_matrix(100, 80, decay=0.8, dtype=dtype, random_state=3)
    op = backend.operator(A)
    _check_against_host(backend, A, op, k=5)


def test_rank_deficient_gives_exact_zeros(backend):
    Z = make_low_rank_matrix(60, 50, decay=np.linspace(2, 1, 6), random_state=2)
    U, s, Vt = truncated_svd(backend.asarray(Z), 10, random_state=0)
    s = backend.to_host(s)
    assert np.all(s[6:] == 0) and np.all(np.isfinite(backend.to_host(U)))


def test_float32_sketch_of_large_float64(backend):
    # Large enough for the float32 sketch; 1e50 needs the copy's own power-of-two factor.
    A = make_low_rank_matrix(1100, 1000, decay=0.9, random_state=3)
    _check_against_host(backend, A, backend.asarray(A), k=10)
    _check_against_host(backend, A * 1e50, backend.asarray(A * 1e50), k=10)
    L = make_low_rank_matrix(1100, 1000, decay=np.linspace(2, 1, 12), random_state=4)
    U, s, Vt = truncated_svd(backend.asarray(L), 15, random_state=0)
    assert relative_error(L, *(backend.to_host(x) for x in (U, s, Vt))) < 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
@pytest.mark.parametrize("axis", [0, 1])
def test_svd_update(backend, dtype, axis):
    B = make_low_rank_matrix(80, 70, decay=np.linspace(3, 1, 9), dtype=dtype, random_state=5)
    first, rest = (B[:30], B[30:]) if axis == 0 else (B[:, :25], B[:, 25:])
    U, s, Vt = np.linalg.svd(first, full_matrices=False)
    args = [backend.asarray(x) for x in (U[:, :9], s[:9], Vt[:9], rest)]
    out = svd_update(*args, axis=axis, k=9)
    assert all(isinstance(x, backend.xp.ndarray) for x in out)
    U2, s2, Vt2 = (backend.to_host(x) for x in out)
    atol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose((U2 * s2) @ Vt2, B, atol=atol)


def test_mixed_devices_are_refused(backend):
    if not backend.on_device:
        pytest.skip("needs a device backend")
    U, s, Vt = np.linalg.svd(np.eye(10, 5), full_matrices=False)
    with pytest.raises(TypeError, match="devices"):
        svd_update(backend.asarray(U), s, Vt, np.ones((10, 2)))


def test_stand_in_behaves_like_a_device(backend):
    if backend.name != "fake-cupy":
        pytest.skip("checks the CuPy stand-in itself")
    cp = backend.xp
    from sparselin._array import gpu_available, namespace

    assert gpu_available() and namespace(cp.ones(2)) is cp
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(cp.ones(2))
    with pytest.raises(TypeError, match="mixes device and host"):
        cp.ones(2) + np.ones(2)
    # Only what real CuPy has: NumPy's frompyfunc has no CuPy counterpart.
    with pytest.raises(AttributeError, match="real CuPy"):
        cp.frompyfunc  # noqa: B018
    import cupyx.scipy.sparse as csp

    A = csp.csr_matrix(sp.eye(3, format="csr"))
    with pytest.raises(TypeError, match="host"):
        A @ np.ones(3)
    assert isinstance(A.T @ cp.ones(3), cp.ndarray) and A.T.format == "csc"
