"""Property tests of truncated_svd: no silent wrong answer on any path (issue 15, section 2).

Every method x mode x dtype x input kind, on rank-deficient, all-zero, scaled, duplicated-entry
and ill-conditioned matrices, checked against numpy.linalg.svd:

- the reported error equals the true error ``||A - U diag(s) Vt||_F / ||A||_F``;
- U and V are orthonormal; s is real, descending, non-negative and never above the true
  singular values (Ritz values of a projection);
- fixed accuracy meets its tolerance;
- scale invariance: ``A * c`` gives ``c * s`` (c near the ends of the dtype's range).

Matrices are tiny (at most 24 x 24) and the number of examples bounded, so the file runs in
well under a minute.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import aslinearoperator

from sparselin import truncated_svd

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]
KINDS = ["dense", "csr", "csc", "coo", "bsr", "dia", "lil", "dok", "operator"]
STRUCTURES = ["rank_deficient", "zero", "scaled", "duplicated", "ill_conditioned"]
METHODS = ["randomized", "block_krylov", "lanczos"]
MODES = ["k", "tol", "both"]

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def single(dtype) -> bool:
    return np.dtype(dtype) in (np.float32, np.complex64)


def eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


def scales(dtype) -> list[float]:
    # Far enough out that squares over- or underflow the dtype, near enough that the
    # singular values of the scaled tiny matrices stay representable.
    return [1e15, 1e-15] if single(dtype) else [1e150, 1e-150]


def draw_entries(rng, shape, dtype):
    X = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        X = X + 1j * rng.standard_normal(shape)
    return X


def grid_entries(rng, shape, dtype, bound):
    X = rng.integers(-bound, bound, shape).astype(np.float64)
    if np.dtype(dtype).kind == "c":
        X = X + 1j * rng.integers(-bound, bound, shape)
    return X


def build(structure, m, n, dtype, rng, scale_index):
    """Return (A in the dtype, exact matrix in complex128, COO duplicates or None)."""
    r_max = min(m, n)
    dup = None
    if structure == "zero":
        X = np.zeros((m, n))
    elif structure == "rank_deficient":
        r = int(rng.integers(1, max(2, r_max)))
        X = draw_entries(rng, (m, r), dtype) @ draw_entries(rng, (r, n), dtype)
    elif structure == "ill_conditioned":
        U, _ = np.linalg.qr(draw_entries(rng, (m, r_max), dtype))
        V, _ = np.linalg.qr(draw_entries(rng, (n, r_max), dtype))
        low = -6 if single(dtype) else -14
        X = (U * np.logspace(0, low, r_max)) @ V.conj().T
    elif structure == "scaled":
        r = int(rng.integers(1, r_max + 1))
        X = draw_entries(rng, (m, r), dtype) @ draw_entries(rng, (r, n), dtype)
        X = X * scales(dtype)[scale_index]
    else:  # duplicated: a sparse pattern whose entries are stored as parts that cancel
        nnz = int(rng.integers(1, m * n + 1))
        rows = rng.integers(0, m, nnz)
        cols = rng.integers(0, n, nnz)
        # Values with few significant bits, so that the parts sum exactly in every dtype and
        # order (SciPy's and the reference's): x/16 with |x| < 64, and multiples of 1024.
        vals = grid_entries(rng, (nnz,), dtype, 64) / 16
        big = grid_entries(rng, (nnz,), dtype, 8) * 1024
        rows = np.concatenate([rows, rows, rows])
        cols = np.concatenate([cols, cols, cols])
        vals = np.concatenate([vals, big, -big])
        dup = (vals, rows, cols)
        X = np.zeros((m, n), dtype=np.complex128)
        np.add.at(X, (rows, cols), vals)
    if np.dtype(dtype).kind != "c":
        X = X.real
    A = X.astype(dtype)
    if dup is not None:
        dup = (dup[0].astype(dtype), dup[1], dup[2])
        # The exact matrix is the sum of the stored parts in the dtype's arithmetic; the
        # parts cancel exactly only in exact arithmetic, so recompute the reference.
        X = np.zeros((m, n), dtype=np.complex128)
        np.add.at(X, (dup[1], dup[2]), dup[0].astype(np.complex128))
        A = X.astype(dtype) if np.dtype(dtype).kind == "c" else X.real.astype(dtype)
    return A, dup


def as_kind(A, dup, kind):
    m, n = A.shape
    if kind == "operator":
        return aslinearoperator(A)
    if kind == "dense":
        return A
    if dup is not None and kind in ("coo", "csr", "csc"):
        vals, rows, cols = dup
        coo = sp.coo_matrix((vals, (rows, cols)), shape=(m, n))
        if kind == "coo":
            return coo
        # CSR/CSC holding the duplicates unsummed (not canonical), as built from raw arrays.
        major, minor, size = (rows, cols, m) if kind == "csr" else (cols, rows, n)
        order = np.argsort(major, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(major, minlength=size))])
        cls = sp.csr_matrix if kind == "csr" else sp.csc_matrix
        return cls((vals[order], minor[order], indptr), shape=(m, n))
    return sp.coo_matrix(A).asformat(kind)


def exact(M, A):
    """The matrix M represents, in complex128 (summing any duplicates exactly as SciPy does)."""
    if sp.issparse(M):
        return M.toarray().astype(np.complex128)
    return A.astype(np.complex128)


def snapshot(M):
    if sp.issparse(M):
        if M.format in ("lil", "dok"):
            return ("dense", M.toarray())
        return ("sparse", M.format, M.data.copy(), M.nnz)
    if isinstance(M, np.ndarray):
        return ("dense", M.copy())
    return None


def unchanged(M, before):
    if before is None:
        return
    if before[0] == "dense":
        now = M.toarray() if sp.issparse(M) else M
        np.testing.assert_array_equal(now, before[1])
    else:
        assert M.format == before[1] and M.nnz == before[3]
        np.testing.assert_array_equal(M.data, before[2])


def run(M, method, mode, k, tol, seed):
    kw: dict = {"method": method, "random_state": seed, "return_error": True}
    if mode in ("k", "both"):
        kw["k"] = k
    if mode in ("tol", "both"):
        kw["tol"] = tol
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "svds failed", RuntimeWarning)
        warnings.filterwarnings("ignore", "k >= N", RuntimeWarning)  # ARPACK on tiny input
        warnings.filterwarnings("ignore", "tol=.* cannot be met", UserWarning)
        return truncated_svd(M, **kw)


def orth_err(U):
    U = U.astype(np.complex128)
    return float(np.abs(U.conj().T @ U - np.eye(U.shape[1])).max()) if U.shape[1] else 0.0


@st.composite
def problems(draw):
    dtype = draw(st.sampled_from(DTYPES))
    method = draw(st.sampled_from(METHODS))
    mode = "k" if method == "lanczos" else draw(st.sampled_from(MODES))
    kind = draw(st.sampled_from(KINDS))
    structure = draw(st.sampled_from(STRUCTURES))
    m = draw(st.integers(2, 24))
    n = draw(st.integers(2, 24))
    k = draw(st.integers(1, min(m, n)))
    tol = draw(st.sampled_from([0.5, 0.1, 1e-2] + ([] if single(dtype) else [1e-5])))
    seed = draw(st.integers(0, 2**16))
    scale_index = draw(st.integers(0, 1))
    return dtype, method, mode, kind, structure, m, n, k, tol, seed, scale_index


@SETTINGS
@given(problems())
def test_reported_error_orthonormality_and_reference(problem):
    dtype, method, mode, kind, structure, m, n, k, tol, seed, scale_index = problem
    rng = np.random.default_rng(seed)
    A, dup = build(structure, m, n, dtype, rng, scale_index)
    M = as_kind(A, dup, kind)
    before = snapshot(M)
    U, s, Vt, err = run(M, method, mode, k, tol, seed)
    unchanged(M, before)
    X = exact(M, A)
    real = np.finfo(dtype).dtype

    # Shapes, dtypes, finiteness.
    r = s.shape[0]
    assert U.shape == (m, r) and Vt.shape == (r, n)
    assert U.dtype == dtype and Vt.dtype == dtype and s.dtype == real
    if mode == "k":
        assert r == k
    elif mode == "both":
        assert 1 <= r <= k
    assert np.all(np.isfinite(U)) and np.all(np.isfinite(Vt)) and np.all(np.isfinite(s))
    assert np.all(s >= 0) and np.all(np.diff(s) <= 0)

    # Orthonormal factors, also where s is zero (rank-deficient and zero input).
    orth_tol = 200 * eps(dtype) * np.sqrt(max(m, n))
    assert orth_err(U) <= orth_tol, orth_err(U)
    assert orth_err(Vt.conj().T) <= orth_tol, orth_err(Vt.conj().T)

    # Against the full SVD: Ritz values never exceed the true singular values.
    s_true = np.linalg.svd(X, compute_uv=False)
    top = float(s_true[0]) if s_true.size else 0.0
    assert np.all(s <= s_true[:r] * (1 + 50 * eps(dtype)) + 50 * eps(dtype) * top)

    # The reported error is the true error.
    norm = np.linalg.norm(X)
    true = np.linalg.norm(X - (U.astype(np.complex128) * s) @ Vt.astype(np.complex128))
    true = true / norm if norm > 0 else 0.0
    if kind == "operator" and mode == "k":
        assert np.isnan(err)  # the norm of an operator is unknown in fixed-rank mode
    elif kind == "operator":
        # Estimated from Gaussian probes of the residual: a factor, not digits.
        assert err <= 3 * true + 30 * eps(dtype) and true <= 3 * err + 30 * eps(dtype)
    else:
        # The energy identity resolves the error to about eps / error; below ~sqrt(1e3 eps)
        # it is measured on the entries, to about eps * sqrt(rank).
        atol = (3e-5 if single(dtype) else 1e-10) + 30 * eps(dtype) * np.sqrt(r)
        assert abs(err - true) <= atol + 1e-3 * true, (err, true)

    # Fixed accuracy meets its tolerance (unless the rank cap k stops it, with a warning).
    if mode == "tol" and kind != "operator":
        assert true <= tol * (1 + 1e-3) + 30 * eps(dtype), (true, tol)
    if structure == "zero":
        assert np.all(s == 0) and (err == 0.0 or (kind == "operator" and mode == "k"))


@SETTINGS
@given(problems(), st.sampled_from([0, 1]))
def test_scale_invariance(problem, which):
    dtype, method, mode, kind, structure, m, n, k, tol, seed, scale_index = problem
    if structure == "scaled":
        structure = "rank_deficient"
    rng = np.random.default_rng(seed)
    A, dup = build(structure, m, n, dtype, rng, scale_index)
    c = scales(dtype)[which]
    scaled_dup = None if dup is None else (dup[0] * dup[0].dtype.type(c), dup[1], dup[2])
    M1 = as_kind(A, dup, kind)
    Mc = as_kind(A * A.dtype.type(c), scaled_dup, kind)
    U1, s1, Vt1, e1 = run(M1, method, mode, k, tol, seed)
    Uc, sc, Vtc, ec = run(Mc, method, mode, k, tol, seed)
    # The scaled problem is the same problem up to rounding: the ranks chosen by a tolerance
    # may differ where the error sits on the tolerance itself; compare the common part.
    r = min(s1.shape[0], sc.shape[0])
    top = float(s1[0]) if s1.size else 0.0
    ratio = sc[:r].astype(np.float64) / c
    rtol = 1e-3 if single(dtype) else 1e-8
    np.testing.assert_allclose(ratio, s1[:r], rtol=rtol, atol=rtol * top)
    if not (np.isnan(e1) and np.isnan(ec)) and s1.shape[0] == sc.shape[0]:
        slack = 0.3 * max(e1, ec) if kind == "operator" else rtol + 0.01 * e1
        assert abs(e1 - ec) <= slack + 30 * eps(dtype), (e1, ec)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_every_combination_once(dtype, kind, method):
    # The hypothesis tests sample the grid; this visits each method x kind x dtype once on a
    # rank-deficient matrix with duplicated entries where the format can hold them.
    rng = np.random.default_rng(7)
    A, dup = build("duplicated", 12, 9, dtype, rng, 0)
    M = as_kind(A, dup, kind)
    for mode in ["k"] if method == "lanczos" else MODES:
        U, s, Vt, err = run(M, method, mode, 4, 0.1, 0)
        X = exact(M, A)
        true = np.linalg.norm(X - (U * s) @ Vt) / np.linalg.norm(X)
        assert orth_err(U) <= 200 * eps(dtype) * 4
        if kind != "operator":
            assert abs(err - true) <= (3e-5 if single(dtype) else 1e-10) + 1e-3 * true
