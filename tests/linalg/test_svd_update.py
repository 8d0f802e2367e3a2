"""svd_update (Brand) against the SVD of the concatenation, computed independently."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from sparselin import svd_update, truncated_svd
from sparselin.datasets import make_low_rank_matrix
from sparselin.linalg._svd_update import _svd_update_core

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


def thin_svd(A, k):
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    return U[:, :k], s[:k], Vt[:k]


def tol_of(dtype):
    return 2e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-10


def orth_error(Q):
    """max |Q^H Q - I| in float64/complex128 (Q with orthonormal columns)."""
    Q = Q.astype(np.complex128 if Q.dtype.kind == "c" else np.float64)
    return float(np.abs(Q.conj().T @ Q - np.eye(Q.shape[1])).max())


def random(rng, shape, dtype):
    X = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        X = X + 1j * rng.standard_normal(shape)
    return X.astype(dtype)


def check_exact(U2, s2, Vt2, full, k, dtype):
    """The update equals the top-k SVD of ``full`` and both factors are orthonormal."""
    ref = np.linalg.svd(full.astype(np.complex128 if full.dtype.kind == "c" else np.float64))
    s_ref = ref.S[:k]
    scale = max(float(s_ref[0]) if s_ref.size else 0.0, np.finfo(np.float64).tiny)
    tol = 50 * tol_of(dtype)
    assert U2.shape[1] == s2.shape[0] == Vt2.shape[0] == k
    assert U2.dtype == Vt2.dtype == dtype and s2.dtype == np.finfo(dtype).dtype
    np.testing.assert_allclose(s2 / scale, s_ref / scale, atol=tol)
    assert np.all(np.diff(s2) <= tol * scale)
    assert orth_error(U2) <= tol
    assert orth_error(Vt2.conj().T) <= tol
    rec = (U2.astype(full.dtype) * s2.astype(full.dtype)) @ Vt2.astype(full.dtype)
    err = np.linalg.norm((full - rec) / scale)
    opt = np.sqrt(np.sum((ref.S[k:] / scale) ** 2))
    assert err <= opt + tol * np.sqrt(k)


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
    for fmt in ("csr", "csc", "coo", "lil", "dok", "bsr"):
        C = sp.csr_matrix(A[:, 10:]).asformat(fmt)
        U2, s2, Vt2 = svd_update(U, s, Vt, C, axis=1, k=25)
        np.testing.assert_allclose(s2, np.linalg.svd(A, compute_uv=False)[:25], rtol=1e-8)


def test_sparse_duplicates_are_summed():
    # A COO block with duplicate entries means their sum; the input is left as it was.
    A = make_low_rank_matrix(30, 20, decay=0.8, random_state=3)
    U, s, Vt = thin_svd(A, 20)
    rows = np.array([0, 0, 5, 5, 7])
    cols = np.array([0, 0, 1, 1, 2])
    vals = np.array([1.0, 2.0, 1e300, -1e300, 4.0])
    C = sp.coo_matrix((vals, (rows, cols)), shape=(30, 3))
    before = C.data.copy()
    U2, s2, Vt2 = svd_update(U, s, Vt, C, axis=1, k=23)
    np.testing.assert_array_equal(C.data, before)
    check_exact(U2, s2, Vt2, np.concatenate([A, C.toarray()], axis=1), 23, np.float64)


def test_growing_rank_beyond_rows():
    # r + c larger than m: the orthogonal remainder has fewer columns than C.
    A = np.random.default_rng(3).standard_normal((10, 30))
    U, s, Vt = thin_svd(A[:, :8], 8)
    U2, s2, Vt2 = svd_update(U, s, Vt, A[:, 8:], axis=1, k=10)
    np.testing.assert_allclose((U2 * s2) @ Vt2, A, atol=1e-10)
    assert orth_error(U2) < 1e-12 and orth_error(Vt2.T) < 1e-12


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


# --- columns that used to break the orthonormality of U (issue 15) --------------------------


def _degenerate_block(kind, A, U, c, rng, dtype):
    m = A.shape[0]
    if kind == "zero":
        return np.zeros((m, c), dtype=dtype)
    if kind == "tiny":
        return random(rng, (m, c), dtype) * np.finfo(dtype).eps ** 2
    if kind == "in-span":
        return (U @ random(rng, (U.shape[1], c), dtype)).astype(dtype)
    if kind == "duplicated":
        return np.concatenate([A[:, :1]] * c, axis=1)
    raise AssertionError(kind)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("kind", ["zero", "tiny", "in-span", "duplicated"])
def test_degenerate_columns_keep_bases_orthonormal(dtype, axis, kind):
    """Zero, tiny, in-span or repeated columns add (almost) no rank; asking for more rank
    than the update has must give exact zeros and orthonormal completions, not vectors
    normalised from rounding errors (which had orthonormality errors of order one)."""
    rng = np.random.default_rng(10)
    A = random(rng, (30, 10), dtype)
    if axis == 0:
        A = A.T.copy()
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    base = A if axis == 1 else A.conj().T
    Ub = U if axis == 1 else Vt.conj().T
    C = _degenerate_block(kind, base, Ub, 3, rng, dtype)
    if axis == 0:
        C = C.conj().T.copy()
    full = np.concatenate([A, C], axis=axis)
    U2, s2, Vt2 = svd_update(U, s, Vt, C, axis=axis, k=13)
    check_exact(U2, s2, Vt2, full, 13, dtype)


def test_stream_of_zero_blocks_stays_orthonormal():
    rng = np.random.default_rng(11)
    A = rng.standard_normal((40, 5))
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    full = A
    for j in range(30):
        C = np.zeros((40, 2)) if j % 3 else 1e-9 * rng.standard_normal((40, 2))
        U, s, Vt = svd_update(U, s, Vt, C, axis=1, k=12)
        full = np.concatenate([full, C], axis=1)
    check_exact(U, s, Vt, full, 12, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("which", ["U", "Vt"])
def test_non_orthonormal_basis_is_refused(dtype, which):
    rng = np.random.default_rng(12)
    A = random(rng, (25, 15), dtype)
    U, s, Vt = thin_svd(A, 6)
    bad = {"U": U, "Vt": Vt}
    bad[which] = bad[which] * 1.01  # 2% off in the Gram matrix
    C = random(rng, (25, 2), dtype)
    args = [bad["U"], s, bad["Vt"], C]
    before = [x.copy() for x in args]
    with pytest.raises(ValueError, match=rf"{which} must have orthonormal.*reorthogonalize_first"):
        svd_update(*args, axis=1)
    for b, a in zip(before, args, strict=True):
        np.testing.assert_array_equal(b, a)
    # With reorthogonalize_first the same factors are accepted: the result is the SVD of
    # the product they represent, concatenated with C.
    U2, s2, Vt2 = svd_update(*args, axis=1, k=8, reorthogonalize_first=True)
    full = np.concatenate([(bad["U"] * s.astype(dtype)) @ bad["Vt"], C], axis=1)
    check_exact(U2, s2, Vt2, full, 8, dtype)


def test_drifted_basis_within_tolerance_is_accepted():
    # A basis off by far less than sqrt(eps) (the drift of long streams) passes the check.
    A = np.random.default_rng(13).standard_normal((30, 10))
    U, s, Vt = thin_svd(A, 10)
    U = U * (1 + 1e-11)
    svd_update(U, s, Vt, np.ones((30, 1)), axis=1)


@pytest.mark.parametrize("bad", [-1.0, np.nan])
def test_bad_singular_values(bad):
    U, s, Vt = thin_svd(np.random.default_rng(14).standard_normal((8, 6)), 4)
    s = s.copy()
    s[-1] = bad
    with pytest.raises(ValueError, match="s "):
        svd_update(U, s, Vt, np.ones((8, 1)))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself warns
def test_masked_and_matrix_inputs():
    A = np.random.default_rng(15).standard_normal((12, 6))
    U, s, Vt = thin_svd(A, 6)
    with pytest.raises(TypeError, match="masked"):
        svd_update(U, s, Vt, np.ma.masked_array(np.ones((12, 1))))
    U2, s2, Vt2 = svd_update(np.asmatrix(U), s, Vt, np.asmatrix(np.ones((12, 1))), k=7)
    check_exact(U2, s2, Vt2, np.concatenate([A, np.ones((12, 1))], axis=1), 7, np.float64)


# --- property tests --------------------------------------------------------------------------

KINDS = ["random", "zero", "tiny", "in-span", "duplicated", "scaled-up", "scaled-down"]


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(2, 18),
    n=st.integers(1, 14),
    c=st.integers(1, 6),
    rank=st.integers(1, 8),
    axis=st.sampled_from([0, 1]),
    dtype=st.sampled_from(DTYPES),
    kind=st.sampled_from(KINDS),
    sparse=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_update_is_the_svd_of_the_concatenation(
    m, n, c, rank, axis, dtype, kind, sparse, seed
):
    """Whenever k covers the rank, the update is the SVD of [A, C] (or [A; C])."""
    rng = np.random.default_rng(seed)
    rank = min(rank, m, n)
    A = (random(rng, (m, rank), dtype) @ random(rng, (rank, n), dtype)).astype(dtype)
    U, s, Vt = thin_svd(A, rank)
    # Work in "columns appended" coordinates, then transpose for axis=0.
    base, Ub = (A, U) if axis == 1 else (A.conj().T, Vt.conj().T)
    mm = base.shape[0]
    if kind == "random":
        C = random(rng, (mm, c), dtype)
    elif kind in ("scaled-up", "scaled-down"):
        if np.dtype(dtype) not in (np.float64, np.complex128):
            kind = "random"  # 1e+-150 is outside single precision's range
        factor = {"scaled-up": 1e150, "scaled-down": 1e-150, "random": 1.0}[kind]
        C = random(rng, (mm, c), dtype) * factor
    else:
        C = _degenerate_block(kind, base, Ub, c, rng, dtype)
    if axis == 0:
        C = C.conj().T.copy()
    full = np.concatenate([A, C], axis=axis)
    k = min(full.shape)
    Cin = sp.csr_matrix(C) if sparse else C
    U2, s2, Vt2 = svd_update(U, s, Vt, Cin, axis=axis, k=k)
    # k is clipped to r + c as well: beyond that the update cannot hold more.
    k_out = min(k, rank + c)
    check_exact(U2, s2, Vt2, full, k_out, dtype)


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
    noise = random(rng, (m, c), dtype)
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
    check_exact(U2, s2, Vt2, np.concatenate([A, C], axis=1), n + c, dtype)


# --- sparse blocks stay sparse ----------------------------------------------------------------


def _forbid_densifying(monkeypatch, shape):
    """Make densifying a sparse matrix of ``shape`` (either orientation) fail.

    Small products (the c x c Gram matrix of the block) may still be made dense.
    """

    def boom(self, *args, **kwargs):
        if self.shape in (shape, shape[::-1]):
            raise AssertionError("a sparse block was densified")
        return original[type(self)](self, *args, **kwargs)

    original = {}
    for cls in (sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.csc_array):
        original[cls] = cls.toarray
        monkeypatch.setattr(cls, "toarray", boom)
        monkeypatch.setattr(cls, "todense", boom)


@pytest.mark.parametrize("dtype", [np.float64, np.complex64])
def test_sparse_block_outside_span_is_never_densified(dtype, monkeypatch):
    # Columns well outside span(U): the remainder's factor comes from Gram matrices, and
    # the products with C are sparse products.
    rng = np.random.default_rng(16)
    A = random(rng, (200, 10), dtype)
    U, s, Vt = thin_svd(A, 10)
    C = sp.random(200, 5, density=0.2, random_state=1, format="csc", dtype=np.float64)
    C = C.astype(dtype)
    full = np.concatenate([A, C.toarray()], axis=1)
    _forbid_densifying(monkeypatch, C.shape)
    U2, s2, Vt2 = svd_update(U, s, Vt, C, axis=1, k=15)
    monkeypatch.undo()
    check_exact(U2, s2, Vt2, full, 15, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
def test_sketched_core_is_exact_on_low_rank_sparse_blocks(dtype, monkeypatch):
    """The compressed remainder (for wide blocks) is exact when the block's part outside
    span(U) has rank within the sketch, and never densifies the block."""
    rng = np.random.default_rng(17)
    m, r, c = 300, 6, 400
    A = random(rng, (m, r), dtype)
    U, s, _ = thin_svd(A, r)
    # A sparse block of rank 9: 3 directions inside span(U), 6 outside, sparse factors.
    left = sp.random(m, 6, density=0.1, random_state=2, format="csr")
    inner = U[:, :3]
    coef = sp.random(9, c, density=0.3, random_state=3, format="csr")
    C_dense = np.concatenate([left.toarray(), inner], axis=1).astype(dtype) @ coef.toarray()
    C = sp.csc_matrix(C_dense.astype(dtype))
    full = np.concatenate([A, C_dense], axis=1)
    _forbid_densifying(monkeypatch, C.shape)
    U2, s2, V2 = _svd_update_core(
        U, s, None, C, 12, np, sketch=10, n_iter=1, random_state=np.random.default_rng(0)
    )
    monkeypatch.undo()
    assert V2 is None
    s_ref = np.linalg.svd(full.astype(np.complex128), compute_uv=False)[:12]
    tol = 50 * tol_of(dtype)
    np.testing.assert_allclose(s2, s_ref, atol=tol * s_ref[0])
    assert orth_error(U2) <= tol
    # The basis spans the concatenation's column space.
    P = full - U2 @ (U2.conj().T @ full)
    assert np.linalg.norm(P) <= tol * np.linalg.norm(full)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_iter", [1, 2])
def test_sketched_dense_left_update_is_exact_on_low_rank_blocks(dtype, n_iter, monkeypatch):
    """A wide dense block, left factor only (what IncrementalSVD and the concatenated SVD
    do): its remainder is compressed by iterating on the updated matrix (_updated_range),
    which is exact when the remainder's rank is within r + l, and keeps U orthonormal."""
    import sparselin.linalg._svd_update as su

    calls = []
    real = su._updated_range
    monkeypatch.setattr(su, "_updated_range", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(5)
    m, r, c = 200, 8, 300
    U, s, _ = thin_svd(random(rng, (m, r), dtype), r)
    # A block of rank 14: 4 directions inside span(U), 10 outside (more than the sketch's 6
    # but within r + 6, the width of the updated matrix's subspace the rule keeps); the
    # concatenation has rank 18.
    left = np.concatenate([random(rng, (m, 10), dtype), U[:, :4]], axis=1)
    C = left @ random(rng, (14, c), dtype)
    full = np.concatenate([(U * s).astype(dtype), C], axis=1)
    U2, s2, V2 = _svd_update_core(
        U, s, None, C, 18, np, sketch=6, n_iter=n_iter, random_state=np.random.default_rng(0)
    )
    assert calls and V2 is None
    s_ref = np.linalg.svd(full.astype(np.complex128), compute_uv=False)[:18]
    tol = 50 * tol_of(dtype)
    np.testing.assert_allclose(s2, s_ref, atol=tol * s_ref[0])
    assert orth_error(U2) <= tol
    P = full - U2 @ (U2.conj().T @ full)
    assert np.linalg.norm(P) <= tol * np.linalg.norm(full)


def test_sketched_dense_left_update_keeps_the_shared_directions():
    """Text-like dense batches: each batch is dominated by directions private to single
    rows, while the shared (topic) directions carry most of the whole stream's energy but a
    fraction of any one batch's. Ranking the remainder by the updated matrix keeps them
    (0.998 of the optimal energy; the remainder's own leading directions kept 0.932)."""
    rng = np.random.default_rng(3)
    m, k, topics, batches, c = 400, 10, 10, 8, 200
    T = np.linalg.qr(rng.standard_normal((m, topics)))[0]
    blocks = []
    for _ in range(batches):
        private = rng.standard_normal((m, c))
        shared = T @ (rng.standard_normal((topics, c)) * 2.5)
        blocks.append(private + shared)
    full = np.concatenate(blocks, axis=1)
    s_opt = np.linalg.svd(full, compute_uv=False)
    opt = float(np.sum(s_opt[:k] ** 2))
    U = np.zeros((m, 0))
    s = np.zeros(0)
    gen = np.random.default_rng(0)
    for B in blocks:
        U, s, _ = _svd_update_core(U, s, None, B, k + 5, np, sketch=k, n_iter=2, random_state=gen)
    kept = float(np.linalg.norm(U[:, :k].T @ full) ** 2) / opt
    assert kept >= 0.99, kept
