"""svd_update (Brand) and IncrementalSVD against batch SVDs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from sparselin import IncrementalSVD, svd_update, truncated_svd
from sparselin.datasets import make_low_rank_matrix

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


def thin_svd(A, k):
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    return U[:, :k], s[:k], Vt[:k]


def tol_of(dtype):
    return 2e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-10


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1])
def test_exact_when_rank_is_kept(dtype, axis):
    # A rank-8 matrix: keeping rank 8 while appending must reproduce it exactly.
    A = make_low_rank_matrix(60, 50, decay=np.linspace(3, 1, 8), dtype=dtype, random_state=0)
    first, rest = (A[:, :20], A[:, 20:]) if axis == 1 else (A[:25], A[25:])
    U, s, Vt = thin_svd(first, 8)
    args = [x.copy() for x in (U, s, Vt, rest)]
    U2, s2, Vt2 = svd_update(U, s, Vt, rest, axis=axis, k=8)
    for before, after in zip(args, (U, s, Vt, rest), strict=True):
        np.testing.assert_array_equal(before, after)  # inputs unchanged
    tol = tol_of(dtype)
    np.testing.assert_allclose((U2 * s2) @ Vt2, A, atol=50 * tol)
    np.testing.assert_allclose(s2, np.linalg.svd(A, compute_uv=False)[:8], rtol=50 * tol)
    assert U2.dtype == dtype and Vt2.dtype == dtype
    assert U2.shape == (60, 8) and Vt2.shape == (8, 50)


@pytest.mark.parametrize("axis", [0, 1])
def test_streaming_matches_batch_truncated_svd(axis):
    A, s_true = make_low_rank_matrix(
        300, 240, decay=0.9, random_state=1, return_singular_values=True
    )
    k, extra = 20, 10
    blocks = np.array_split(A, 12, axis=axis)
    U, s, Vt = thin_svd(blocks[0], k + extra)
    for C in blocks[1:]:
        # Track a few extra directions so that the truncations spare the top k.
        U, s, Vt = svd_update(U, s, Vt, C, axis=axis, k=k + extra)
    U, s, Vt = U[:, :k], s[:k], Vt[:k]
    assert (U.shape[0], Vt.shape[1]) == A.shape
    Ub, sb, Vtb = truncated_svd(A, k, random_state=0)
    np.testing.assert_allclose(s, sb, rtol=2e-3)
    err = np.linalg.norm(A - (U * s) @ Vt)
    opt = np.sqrt(np.sum(s_true[k:] ** 2))
    assert err <= 1.02 * opt


def test_one_dimensional_and_sparse_blocks():
    A = make_low_rank_matrix(40, 30, decay=0.8, random_state=2)
    U, s, Vt = thin_svd(A[:, :10], 10)
    U1, s1, Vt1 = svd_update(U, s, Vt, A[:, 10], axis=1, k=11)
    assert Vt1.shape == (11, 11)
    U2, s2, Vt2 = svd_update(U, s, Vt, sp.csr_matrix(A[:, 10:]), axis=1, k=25)
    np.testing.assert_allclose(s2, np.linalg.svd(A, compute_uv=False)[:25], rtol=1e-8)


def test_growing_rank_beyond_rows():
    # r + c larger than m: the orthogonal remainder has fewer columns than C.
    A = np.random.default_rng(3).standard_normal((10, 30))
    U, s, Vt = thin_svd(A[:, :8], 8)
    U2, s2, Vt2 = svd_update(U, s, Vt, A[:, 8:], axis=1, k=10)
    np.testing.assert_allclose((U2 * s2) @ Vt2, A, atol=1e-10)


def test_orthogonality_after_2000_updates():
    rng = np.random.default_rng(4)
    m, k = 200, 10
    B = rng.standard_normal((m, 15)) @ rng.standard_normal((15, 2001 * 2))
    U, s, Vt = thin_svd(B[:, :2], 2)
    for j in range(2000):
        C = B[:, 2 + 2 * j : 4 + 2 * j] + 1e-3 * rng.standard_normal((m, 2))
        U, s, Vt = svd_update(U, s, Vt, C, axis=1, k=k)
    assert np.linalg.norm(U.T @ U - np.eye(k)) <= 1e-10
    assert np.linalg.norm(Vt @ Vt.T - np.eye(k)) <= 1e-10


def test_incremental_estimator_orthogonality_2000_batches():
    rng = np.random.default_rng(5)
    n_features, k = 150, 12
    basis = rng.standard_normal((20, n_features))
    est = IncrementalSVD(n_components=k)
    for _ in range(2000):
        X = rng.standard_normal((3, 20)) @ basis + 1e-2 * rng.standard_normal((3, n_features))
        est.partial_fit(X)
    V = est.components_
    assert np.linalg.norm(V @ V.T - np.eye(k)) <= 1e-10
    assert est.n_samples_seen_ == 6000


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_incremental_estimator_matches_batch(dtype):
    X, s_true = make_low_rank_matrix(
        400, 60, decay=0.85, dtype=dtype, random_state=6, return_singular_values=True
    )
    est = IncrementalSVD(n_components=10, batch_size=37).fit(X)
    s_ref = np.linalg.svd(X.astype(np.float64), compute_uv=False)[:10]
    np.testing.assert_allclose(est.singular_values_, s_ref, rtol=max(1e-3, 100 * tol_of(dtype)))
    assert est.components_.dtype == dtype
    Z = est.transform(X)
    err = np.linalg.norm(est.inverse_transform(Z) - X)
    assert err <= 1.01 * np.sqrt(np.sum(s_true[10:] ** 2))
    # Same sign rule as TruncatedSVD: largest entry of each component positive.
    V = est.components_
    assert np.all(V[np.arange(10), np.argmax(np.abs(V), axis=1)] > 0)


def test_incremental_small_first_batch_grows_rank():
    X = np.random.default_rng(7).standard_normal((50, 20))
    est = IncrementalSVD(n_components=8)
    est.partial_fit(X[:3])
    assert est.n_components_ == 3
    est.partial_fit(X[3:])
    assert est.n_components_ == 8
    np.testing.assert_allclose(
        est.singular_values_, np.linalg.svd(X, compute_uv=False)[:8], rtol=0.05
    )


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(2, 25),
    n=st.integers(1, 20),
    c=st.integers(1, 12),
    axis=st.sampled_from([0, 1]),
    seed=st.integers(0, 10_000),
)
def test_property_full_rank_update_is_exact(m, n, c, axis, seed):
    """Keeping every direction, an update must equal the SVD of the concatenation."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    C = rng.standard_normal((m, c)) if axis == 1 else rng.standard_normal((c, n))
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    full = np.concatenate([A, C], axis=axis)
    U2, s2, Vt2 = svd_update(U, s, Vt, C, axis=axis, k=min(full.shape))
    np.testing.assert_allclose((U2 * s2) @ Vt2, full, atol=1e-9)
    np.testing.assert_allclose(s2, np.linalg.svd(full, compute_uv=False), atol=1e-9)
    assert np.all(np.diff(s2) <= 1e-12)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("scale", [1e200, 1e-200])
@pytest.mark.parametrize("axis", [0, 1])
def test_extreme_scales(scale, axis):
    A = make_low_rank_matrix(60, 50, decay=np.linspace(3, 1, 8), random_state=0) * scale
    first, rest = (A[:, :20], A[:, 20:]) if axis == 1 else (A[:25], A[25:])
    U, s, Vt = thin_svd(first, 8)
    U2, s2, Vt2 = svd_update(U, s, Vt, rest, axis=axis, k=8)
    np.testing.assert_allclose((U2 * s2) @ Vt2 / scale, A / scale, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inside", [0.0, 0.999])
def test_gram_shortcut_and_explicit_remainder_agree_with_svd(dtype, inside, monkeypatch):
    """Both ways of handling the remainder C - U U^H C give the SVD of the concatenation.

    With C mostly outside span(U) the remainder stays implicit (Gram matrices only); with
    99.9% of every column inside, cancellation would cost too many digits and it is formed.
    """
    import sparselin.linalg._svd_update as mod

    rng = np.random.default_rng(8)
    m, n, c = 80, 30, 6
    A = make_low_rank_matrix(m, n, decay=0.8, dtype=dtype, random_state=9)
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    noise = rng.standard_normal((m, c)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        noise = noise + 1j * rng.standard_normal((m, c)).astype(dtype)
    # Columns with a share `inside` of their energy in span(U).
    inner = U @ (U.conj().T @ noise)
    outer = noise - inner
    C = (np.sqrt(inside) * inner / np.linalg.norm(inner, axis=0)) + (
        np.sqrt(1 - inside) * outer / np.linalg.norm(outer, axis=0)
    )
    C = C.astype(dtype)
    used = []
    original = mod._gram_path
    monkeypatch.setattr(mod, "_gram_path", lambda *a: used.append(r := original(*a)) or r)
    U2, s2, Vt2 = svd_update(U, s, Vt, C, axis=1, k=n + c)
    assert (used[0] is not None) == (inside == 0.0)
    full = np.concatenate([A, C], axis=1)
    tol = tol_of(dtype)
    np.testing.assert_allclose((U2 * s2) @ Vt2, full, atol=50 * tol)
    np.testing.assert_allclose(s2, np.linalg.svd(full, compute_uv=False), atol=50 * tol)
    eye = np.eye(n + c)
    assert np.linalg.norm(U2.conj().T @ U2 - eye) <= 50 * tol
    assert np.linalg.norm(Vt2 @ Vt2.conj().T - eye) <= 50 * tol
