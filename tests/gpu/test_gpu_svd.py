"""The same functions on CuPy data (run with ``pytest -m gpu`` on a machine with a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from sparselin import svd_update, truncated_svd
from sparselin.datasets import make_low_rank_matrix

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.mark.parametrize("method", ["randomized", "block_krylov", "lanczos"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_truncated_svd_on_gpu_matches_cpu(cp, dtype, method):
    if method == "lanczos" and np.dtype(dtype).kind == "c":
        pytest.skip("cupyx svds handles real input only")
    A, s_true = make_low_rank_matrix(
        600, 400, decay=0.8, dtype=dtype, random_state=0, return_singular_values=True
    )
    Ad = cp.asarray(A)
    U, s, Vt = truncated_svd(Ad, 10, method=method, random_state=0)
    assert isinstance(U, cp.ndarray) and isinstance(s, cp.ndarray)
    assert U.dtype == dtype and s.dtype == np.finfo(dtype).dtype
    tol = 1e-3 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-9
    np.testing.assert_allclose(cp.asnumpy(s), s_true[:10], rtol=tol)
    Uc, sc, Vtc = truncated_svd(A, 10, method=method, random_state=0)
    # Same sign rule on both devices: the factors agree, not just up to sign.
    np.testing.assert_allclose(cp.asnumpy(U), Uc, atol=100 * tol)
    np.testing.assert_allclose(cp.asnumpy(Vt), Vtc, atol=100 * tol)


def test_fixed_accuracy_and_rank_deficient_on_gpu(cp):
    A = make_low_rank_matrix(500, 300, decay=np.linspace(2, 1, 7), random_state=1)
    U, s, Vt, err = truncated_svd(cp.asarray(A), 12, random_state=0, return_error=True)
    assert bool(cp.isfinite(U).all()) and bool(cp.all(s[7:] == 0))
    np.testing.assert_allclose(cp.asnumpy(U.T @ U), np.eye(12), atol=1e-10)
    U, s, Vt, err = truncated_svd(cp.asarray(A), tol=1e-6, random_state=0, return_error=True)
    assert s.shape[0] == 7 and err <= 1e-6


def test_sparse_gpu_input(cp):
    import cupyx.scipy.sparse as csp
    import scipy.sparse as sp

    A = sp.random(400, 300, density=0.05, random_state=0, format="csr")
    U, s, Vt = truncated_svd(csp.csr_matrix(A), 5, n_iter=8, random_state=0)
    s_ref = np.linalg.svd(A.toarray(), compute_uv=False)[:5]
    np.testing.assert_allclose(cp.asnumpy(s), s_ref, rtol=1e-2)


def test_sign_kernel_matches_array_code(cp):
    from sparselin.linalg import _dense
    from sparselin.linalg._dense import flip_signs

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        U = rng.standard_normal((1000, 7)).astype(dtype)
        Vt = rng.standard_normal((7, 500)).astype(dtype)
        Uk, Vk = flip_signs(cp.asarray(U), cp.asarray(Vt), cp)
        Un, Vn = flip_signs(U.copy(), Vt.copy(), np)
        np.testing.assert_array_equal(cp.asnumpy(Uk), Un)
        np.testing.assert_array_equal(cp.asnumpy(Vk), Vn)
    assert _dense._KERNEL_STATE["flip"] is None, "the CUDA kernel did not compile"


def test_svd_update_on_gpu(cp):
    A = make_low_rank_matrix(200, 150, decay=np.linspace(3, 1, 9), random_state=2)
    U, s, Vt = np.linalg.svd(A[:, :50], full_matrices=False)
    U, s, Vt = (cp.asarray(x) for x in (U[:, :9], s[:9], Vt[:9]))
    U2, s2, Vt2 = svd_update(U, s, Vt, cp.asarray(A[:, 50:]), axis=1, k=9)
    np.testing.assert_allclose(cp.asnumpy((U2 * s2) @ Vt2), A, atol=1e-10)
