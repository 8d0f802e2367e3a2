"""The adaptive iteration's last approximation from the span of its last two blocks.

``truncated_svd(A, k)`` with ``n_iter="auto"`` ends, where a pass over A costs much more than
the small steps (see ``_UNION_WORK``), with the best rank-k approximation in the span of the
last two short-side blocks, whose products with A it already holds
(:class:`sparselin.linalg._iterations._KrylovUnion`). These tests check that the union is
taken where it should be, that its reported error is the true one, that its factors are
orthonormal, that it never does worse than the last block alone, and that it scales.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import aslinearoperator

from sparselin import truncated_svd
from sparselin.datasets import make_low_rank_matrix
from sparselin.linalg import _iterations as impl

SHAPES = [(600, 500), (500, 600)]  # tall: the union is of row blocks; wide: of column blocks
DTYPES = [np.float32, np.float64, np.complex64, np.complex128]
K = 10


def single(dtype) -> bool:
    return np.dtype(dtype) in (np.float32, np.complex64)


def matrix(shape, dtype, decay=0.97, seed=0):
    A, s = make_low_rank_matrix(
        *shape, decay=decay, dtype=dtype, random_state=seed, return_singular_values=True
    )
    return A, np.asarray(s, dtype=np.float64)


def errors(A, U, s, Vt):
    A = A.astype(np.complex128)
    return np.linalg.norm(A - (U * s) @ Vt), np.linalg.norm(A)


def assert_orthonormal(Q, dtype):
    G = Q.conj().T @ Q.astype(np.complex128)
    atol = 1e-5 if single(dtype) else 1e-12
    np.testing.assert_allclose(G, np.eye(G.shape[0]), atol=atol)


@pytest.fixture
def unions(monkeypatch):
    """Count the union results the iteration returns."""
    made = []
    original = impl._KrylovUnion._result

    def counted(self, Tk, right):
        made.append(right)
        return original(self, Tk, right)

    monkeypatch.setattr(impl._KrylovUnion, "_result", counted)
    return made


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("decay", [0.97, "slow"])
def test_union_reports_the_true_error(unions, shape, dtype, decay):
    A, s_true = matrix(shape, dtype, decay)
    before = A.copy()
    U, s, Vt, rel = truncated_svd(A, K, random_state=0, return_error=True)
    tall = shape[0] >= shape[1]
    if decay == 0.97 and (tall or dtype in (np.float64, np.complex64)):
        # These seeded runs end with the union (checked when the tests were written): after
        # five passes on tall A (the long-side passes are A X), on wide A after six passes
        # or as the better of the fourth pass's union and the fifth pass.
        assert unions == [tall]
    err, norm = errors(A, U, s, Vt)
    assert rel == pytest.approx(err / norm, rel=1e-3 if single(dtype) else 1e-9)
    assert_orthonormal(U, dtype)
    assert_orthonormal(Vt.conj().T, dtype)
    assert U.dtype == dtype and Vt.dtype == dtype and s.dtype == np.finfo(dtype).dtype
    assert np.all(np.diff(s) <= 0) and s[-1] >= 0
    assert err <= 1.0075 * np.sqrt(np.sum(s_true[K:] ** 2))
    np.testing.assert_allclose(s[:3], s_true[:3], rtol=1e-2)
    np.testing.assert_array_equal(A, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decay", [0.97, 0.99, "slow"])
def test_union_is_as_good_as_the_last_block(monkeypatch, dtype, decay):
    A, s_true = matrix((600, 500), dtype, decay, seed=1)
    opt = np.sqrt(np.sum(s_true[K:] ** 2))
    got = errors(A, *truncated_svd(A, K, random_state=3))[0]
    monkeypatch.setattr(impl, "_union_pays", lambda op, l: False)
    alone = errors(A, *truncated_svd(A, K, random_state=3))[0]
    # The union may end the run a pass earlier, where the readings say more passes gain
    # less than the rule's tolerance (squared error within 1.5%): never worse by more.
    assert got <= alone * 1.0075 and got <= 1.0075 * opt


@pytest.mark.parametrize(
    ("dtype", "factor"),
    [(np.float32, 1e15), (np.float32, 1e-15), (np.float64, 1e150), (np.float64, 1e-150)],
)
def test_union_is_scale_invariant(unions, dtype, factor):
    A, _ = matrix((600, 500), dtype)
    U0, s0, Vt0 = truncated_svd(A, K, random_state=0)
    U, s, Vt = truncated_svd((A * dtype(factor)).astype(dtype), K, random_state=0)
    assert len(unions) == 2
    tol = 1e-4 if single(dtype) else 1e-10
    np.testing.assert_allclose(s / factor, s0, rtol=tol * 10)
    np.testing.assert_allclose(U, U0, atol=tol * 100)
    np.testing.assert_allclose(Vt, Vt0, atol=tol * 100)


def test_rank_deficient_input_keeps_the_exact_answer(unions):
    # Rank 8 < k: the readings reach the rounding floor, where the union is not formed; the
    # answer is the exact one with zeros beyond the rank.
    rng = np.random.default_rng(0)
    A = rng.standard_normal((600, 8)) @ rng.standard_normal((8, 500))
    U, s, Vt, rel = truncated_svd(A, K, random_state=0, return_error=True)
    assert unions == []
    exact = np.linalg.svd(A, compute_uv=False)
    np.testing.assert_allclose(s[:8], exact[:8], rtol=1e-10)
    assert np.all(s[8:] == 0.0) and rel < 1e-12
    assert_orthonormal(U, np.float64)


def test_union_only_where_a_pass_costs_more_than_it(unions):
    A, _ = matrix((600, 500), np.float32)
    truncated_svd(A, K, random_state=0)  # dense: W = m n is 1.7 times 8 l (m + n)
    assert len(unions) == 1
    # Small dense, sparse text-like, fixed n_iter, block Krylov, and a float64 sketch in
    # float32 (its last pass alone is in full precision): never.
    truncated_svd(A[:300, :200], K, random_state=0)
    S = sp.random(4000, 3000, density=0.01, random_state=0, format="csr", dtype=np.float32)
    truncated_svd(S, K, random_state=0)
    truncated_svd(A, K, n_iter=3, random_state=0)
    truncated_svd(A, K, method="block_krylov", random_state=0)
    big, _ = matrix((1100, 1000), np.float64)
    truncated_svd(big, K, random_state=0)
    assert len(unions) == 1
    # A LinearOperator has no known norm, so no adaptive rule and no union.
    truncated_svd(aslinearoperator(A), K, random_state=0)
    assert len(unions) == 1
    # A dense matrix held in any sparse format costs as much per pass: the same answer.
    U0, s0, Vt0 = truncated_svd(A, K, random_state=0)
    for convert in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array):
        U, s, Vt = truncated_svd(convert(A), K, random_state=0)
        np.testing.assert_allclose(s, s0, rtol=1e-5)
    assert len(unions) == 6


@pytest.mark.parametrize(
    ("shape", "chunks", "dtype"),
    [
        ((600, 500), (100, 500), np.float32),
        ((600, 500), (150, 500), np.complex128),
        ((500, 600), (500, 100), np.float64),
    ],
)
def test_dask_takes_the_same_union(unions, shape, chunks, dtype):
    # The dask iteration mirrors the in-memory one: the same union, the same answer.
    da = pytest.importorskip("dask.array")
    dask = pytest.importorskip("dask")
    A, _ = matrix(shape, dtype)
    with dask.config.set(scheduler="threads"):
        U, s, Vt, rel = truncated_svd(
            da.from_array(A, chunks=chunks), K, random_state=0, return_error=True
        )
    U0, s0, Vt0, rel0 = truncated_svd(A, K, random_state=0, return_error=True)
    assert len(unions) == 2 and unions[0] == unions[1]
    tol = 2e-4 if single(dtype) else 1e-10
    np.testing.assert_allclose(s, s0, rtol=0, atol=tol * s0[0])
    np.testing.assert_allclose(U.compute(), U0, rtol=0, atol=tol * 10)
    np.testing.assert_allclose(Vt, Vt0, rtol=0, atol=tol * 10)
    assert rel == pytest.approx(rel0, rel=1e-3 if single(dtype) else 1e-8)


def test_union_on_every_backend(unions, backend):
    # NumPy, the CuPy stand-in (restricted to CuPy's API) and real CuPy give one answer.
    A, _ = matrix((600, 500), np.float32)
    U, s, Vt = truncated_svd(backend.asarray(A), K, random_state=0)
    U0, s0, Vt0 = truncated_svd(A, K, random_state=0)
    assert len(unions) == 2
    np.testing.assert_allclose(backend.to_host(s), s0, rtol=1e-4)
    np.testing.assert_allclose(backend.to_host(U), U0, atol=1e-3)
    np.testing.assert_allclose(backend.to_host(Vt), Vt0, atol=1e-3)


def hard_matrix(structure, dtype, rng):
    m, n = 600, 500
    if structure == "rank_between_k_and_l":  # rank 15: above k = 10, below l = 20
        A = rng.standard_normal((m, 15)) @ rng.standard_normal((15, n))
    elif structure == "rank_below_k":
        A = rng.standard_normal((m, 6)) @ rng.standard_normal((6, n))
    elif structure == "ill_conditioned":  # singular values from 1 down to 1e-12
        A = make_low_rank_matrix(m, n, decay=np.logspace(0, -12, n), random_state=1)
    elif structure == "duplicated_columns":
        B, _ = matrix((m, n // 2), np.float64, decay=0.97, seed=2)
        A = np.hstack([B, B])
    elif structure == "clustered":  # ten equal leading values, then a gap
        A = make_low_rank_matrix(
            m, n, decay=np.r_[np.ones(10), 0.5 * 0.95 ** np.arange(n - 10)], random_state=3
        )
    A = A.astype(dtype)
    if np.dtype(dtype).kind == "c":
        A = (A * np.exp(1j * rng.uniform(0, 2 * np.pi, A.shape))).astype(dtype)
    return A


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "structure",
    [
        "rank_between_k_and_l",
        "rank_below_k",
        "ill_conditioned",
        "duplicated_columns",
        "clustered",
    ],
)
def test_hard_inputs_keep_every_promise(structure, dtype):
    # Whether or not the union ends these runs, the answer keeps the contract: the reported
    # error is the true one, the factors are orthonormal, the values are Ritz values (never
    # above the true ones) and err/opt stays within the target.
    A = hard_matrix(structure, dtype, np.random.default_rng(0))
    U, s, Vt, rel = truncated_svd(A, K, random_state=0, return_error=True)
    exact = np.linalg.svd(A.astype(np.complex128), compute_uv=False)
    err, norm = errors(A, U, s, Vt)
    opt = np.sqrt(np.sum(exact[K:] ** 2))
    eps = float(np.finfo(dtype).eps)
    assert abs(rel - err / norm) <= 1e-3 * err / norm + 100 * eps
    assert_orthonormal(U, dtype)
    assert_orthonormal(Vt.conj().T, dtype)
    assert np.all(s <= exact[:K] * (1 + 10 * eps) + 100 * eps * exact[0])
    assert err <= 1.01 * opt + 100 * eps * norm
