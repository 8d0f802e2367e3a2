"""Factorisation cores behind model compression, against full SVDs and least-squares references.

Every core runs through the ``backend`` fixture (NumPy, the CuPy stand-in, real CuPy).
"""

from __future__ import annotations

import numpy as np
import pytest

from sparselin._array import to_numpy
from sparselin.linalg import _factorize as fz


def _dense_ref_rank_k(M, k):
    P, s, Qt = np.linalg.svd(M, full_matrices=False)
    return (P[:, :k] * s[:k]) @ Qt[:k]


def _layernorm_inputs(rng, N, n):
    """Rows of zero mean and unit variance, as a LayerNorm without affine makes them: the
    all-ones direction is exactly in the null space of X^T X."""
    X = rng.standard_normal((N, n)) @ rng.standard_normal((n, n)) * 0.3
    X = X - X.mean(axis=1, keepdims=True)
    return X / X.std(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# Gram accumulation and its square root


def test_gram_accumulator_matches_dense_products(backend, rng):
    X = rng.standard_normal((3, 50, 7)).astype(np.float32) * 100
    mask = rng.random((3, 50)) > 0.3
    acc = fz.GramAccumulator(7, xp=backend.xp)
    for b in range(3):
        acc.update(backend.asarray(X[b]), backend.asarray(mask[b]))
    Xm = X[mask].astype(np.float64)
    assert acc.n_samples == Xm.shape[0]
    np.testing.assert_allclose(to_numpy(acc.gram), Xm.T @ Xm, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(acc.mean), Xm.mean(0), rtol=1e-12)
    centred = Xm - Xm.mean(0)
    np.testing.assert_allclose(
        to_numpy(acc.covariance(centered=True)), centred.T @ centred, rtol=1e-9, atol=1e-6
    )
    other = fz.GramAccumulator(7, xp=backend.xp).update(backend.asarray(X[0]))
    acc.merge(other)
    np.testing.assert_allclose(
        to_numpy(acc.gram), Xm.T @ Xm + X[0].astype(np.float64).T @ X[0], rtol=1e-12
    )


def test_gram_padding_rows_are_ignored(rng):
    """The same sentences with and without padding give the same Gram matrix."""
    tokens = rng.standard_normal((2, 5, 4))
    padded = np.concatenate([tokens, np.ones((2, 3, 4))], axis=1)
    mask = np.zeros((2, 8), bool)
    mask[:, :5] = True
    a = fz.GramAccumulator(4).update(padded, mask)
    b = fz.GramAccumulator(4).update(tokens)
    np.testing.assert_array_equal(a.gram, b.gram)
    assert a.n_samples == b.n_samples == 10


def test_gram_accumulates_in_float64(rng):
    # A float32 running sum of 1e6 squares of 1 + 1e-4 loses the 1e-4 part; float64 keeps it.
    X = np.full((1_000_000, 1), 1.0 + 1e-4, dtype=np.float32)
    acc = fz.GramAccumulator(1)
    for i in range(0, X.shape[0], 100_000):
        acc.update(X[i : i + 100_000])
    exact = 1e6 * float(np.float32(1.0 + 1e-4)) ** 2
    assert abs(float(acc.gram[0, 0]) - exact) / exact < 1e-12


@pytest.mark.parametrize("damping", [0.0, 1e-6, 1e-4, 1e-2])
@pytest.mark.parametrize("kind", ["full", "layernorm", "few_samples", "dead_channel"])
def test_gram_factor_is_a_square_root(backend, rng, damping, kind):
    n = 12
    if kind == "full":
        X = rng.standard_normal((100, n))
    elif kind == "layernorm":
        X = _layernorm_inputs(rng, 100, n)
    elif kind == "few_samples":
        X = rng.standard_normal((5, n))
    else:
        X = rng.standard_normal((100, n))
        X[:, 3] = 0.0
    C = X.T @ X
    fac = fz._gram_factor(backend.asarray(C), damping)
    root = to_numpy(fac.root)
    shift = damping * np.mean(np.diag(C))
    assert fac.shift == pytest.approx(shift)
    np.testing.assert_allclose(root @ root.T, C + shift * np.eye(n), atol=1e-9 * np.abs(C).max())
    if kind != "full" and damping == 0.0:
        assert fac.kind == "eigh"  # Cholesky of a singular matrix must not be trusted
    if kind == "full":
        assert fac.kind == "cholesky"


def test_gram_factor_of_zero_matrix_is_identity():
    fac = fz._gram_factor(np.zeros((3, 3)))
    np.testing.assert_array_equal(fac.root, np.eye(3))


# ---------------------------------------------------------------------------------------------
# Plain low rank


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("exact", [True, False])
def test_low_rank_matches_full_svd(backend, rng, dtype, exact):
    W = (rng.standard_normal((40, 25)) * np.logspace(0, -3, 25)).astype(dtype)
    f = fz._low_rank_core(backend.asarray(W), 6, exact=exact, rng=np.random.default_rng(0))
    U, V = to_numpy(f.U), to_numpy(f.V)
    assert U.dtype == dtype and V.dtype == dtype and U.shape == (40, 6) and V.shape == (6, 25)
    W64 = W.astype(np.float64)
    ref = _dense_ref_rank_k(W64, 6)
    tol = 2e-4 if dtype == np.float32 else 1e-9
    err = np.linalg.norm(U.astype(np.float64) @ V - ref) / np.linalg.norm(ref)
    assert err < (tol if exact else 1e-2)
    s = np.linalg.svd(W64, compute_uv=False)
    assert f.error == pytest.approx(np.sqrt(np.sum(s[6:] ** 2)) / np.linalg.norm(W64), rel=1e-3)
    # Balanced: U^T U = V V^T = diag(singular values of U V).
    np.testing.assert_allclose(
        U.T.astype(np.float64) @ U, V.astype(np.float64) @ V.T, atol=50 * tol * s[0]
    )


@pytest.mark.parametrize("tol", [0.5, 0.1, 0.01, 1e-3])
def test_low_rank_tol_picks_the_smallest_rank(backend, rng, tol):
    W = rng.standard_normal((30, 20)) * np.logspace(0, -4, 20)
    f = fz._low_rank_core(backend.asarray(W), tol=tol)
    k = to_numpy(f.U).shape[1]
    s = np.linalg.svd(W, compute_uv=False)
    errs = [np.sqrt(np.sum(s[r:] ** 2)) / np.linalg.norm(W) for r in range(1, 21)]
    brute = 1 + next(i for i, e in enumerate(errs) if e <= tol)
    assert k == brute
    assert f.error <= tol
    f_capped = fz._low_rank_core(backend.asarray(W), 2, tol=tol)
    assert to_numpy(f_capped.U).shape[1] == min(2, brute)


def test_rank_for_tol_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(50):
        s = np.sort(rng.random(8))[::-1] * rng.choice([1e-150, 1.0, 1e150])
        total2 = float(np.sum(s**2))
        tol = float(rng.random())
        brute = next(
            k for k in range(1, 9) if np.sqrt(np.sum(s[k:] ** 2)) <= tol * np.sqrt(total2)
        )
        assert fz._rank_for_tol(s, total2, tol) == brute


def test_low_rank_zero_and_rank_deficient(rng):
    f = fz._low_rank_core(np.zeros((5, 4)), tol=0.1)
    assert f.error == 0.0 and np.all(f.U == 0)
    W = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 5))
    f = fz._low_rank_core(W, tol=1e-6)
    assert f.U.shape[1] == 2
    np.testing.assert_allclose(f.U @ f.V, W, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Whitened (activation-aware) low rank


def _output_error(W, Wk, X):
    return np.linalg.norm((W - Wk) @ X.T) / np.linalg.norm(W @ X.T)


@pytest.mark.parametrize("inputs", ["correlated", "layernorm", "few_samples"])
def test_whitened_matches_least_squares_reference(backend, rng, inputs):
    m, n, k = 10, 8, 3
    W = rng.standard_normal((m, n))
    if inputs == "correlated":
        X = rng.standard_normal((200, n)) @ rng.standard_normal((n, n))
    elif inputs == "layernorm":
        X = _layernorm_inputs(rng, 200, n)
    else:
        X = rng.standard_normal((5, n))  # N < n: X^T X singular
    fac = fz._gram_factor(backend.asarray(X.T @ X), 0.0)
    f = fz._low_rank_core(backend.asarray(W), k, in_factor=fac)
    Wk = to_numpy(f.U) @ to_numpy(f.V)
    assert np.isfinite(Wk).all()
    # Reference (DRONE's form): the best rank-k approximation of the outputs W X^T, pulled back
    # by least squares; its output error is the optimum.
    Y = W @ X.T
    Yk = _dense_ref_rank_k(Y, k)
    ref = np.linalg.lstsq(X, Yk.T, rcond=None)[0].T
    opt = np.linalg.norm(Y - Yk) / np.linalg.norm(Y)
    assert _output_error(W, Wk, X) == pytest.approx(opt, rel=1e-8, abs=1e-12)
    assert _output_error(W, ref, X) == pytest.approx(opt, rel=1e-8, abs=1e-12)
    # The reported error is the output error (the loss identity: dropped singular values of W S).
    assert f.error == pytest.approx(opt, rel=1e-8, abs=1e-12)


def test_whitened_routes_agree(rng):
    """Cholesky, eigen and SVD-LLM's explicit form U_k S_k V_k^T S^-1 give the same W'."""
    m, n, k = 9, 7, 3
    W = rng.standard_normal((m, n))
    X = rng.standard_normal((50, n)) @ rng.standard_normal((n, n))
    C = X.T @ X
    chol = fz._gram_factor(C, 0.0)
    assert chol.kind == "cholesky"
    lam, Q = np.linalg.eigh(C)
    eig = fz.GramFactor(Q * np.sqrt(lam), "eigh", 0.0, None, Q, np.sqrt(lam))
    a = fz._low_rank_core(W, k, in_factor=chol)
    b = fz._low_rank_core(W, k, in_factor=eig)
    S = np.linalg.cholesky(C)
    P, s, Qt = np.linalg.svd(W @ S)
    explicit = (P[:, :k] * s[:k]) @ Qt[:k] @ np.linalg.inv(S)
    np.testing.assert_allclose(a.U @ a.V, explicit, atol=1e-10)
    np.testing.assert_allclose(b.U @ b.V, explicit, atol=1e-10)
    # Loss identity: ||(W - W') S||_F = sqrt(sum of dropped s_i^2), to 1e-10 relative.
    loss = np.linalg.norm((W - a.U @ a.V) @ S)
    assert loss == pytest.approx(np.sqrt(np.sum(s[k:] ** 2)), rel=1e-10)


def test_whitened_float32_weight_is_decomposed_in_float64(rng):
    W = rng.standard_normal((20, 16)).astype(np.float32)
    X = rng.standard_normal((300, 16)) * np.logspace(0, -4, 16)  # condition number 1e8 in C
    fac = fz._gram_factor(X.T @ X, 1e-6)
    f = fz._low_rank_core(W, 5, in_factor=fac)
    assert f.U.dtype == np.float32
    f64 = fz._low_rank_core(W.astype(np.float64), 5, in_factor=fac)
    assert f.error == pytest.approx(f64.error, rel=1e-10)


# ---------------------------------------------------------------------------------------------
# Fisher (row-weighted) and two-sided


def test_fisher_row_weights_match_fwsvd_closed_form(backend, rng):
    m, n, k = 12, 9, 4
    W = rng.standard_normal((m, n))
    w = rng.random(m) * 10
    f = fz._low_rank_core(backend.asarray(W), k, row_weights=backend.asarray(w))
    d = np.sqrt(w)
    ref = _dense_ref_rank_k(d[:, None] * W, k) / d[:, None]
    np.testing.assert_allclose(to_numpy(f.U) @ to_numpy(f.V), ref, atol=1e-10)
    err = np.linalg.norm(d[:, None] * (W - ref)) / np.linalg.norm(d[:, None] * W)
    assert f.error == pytest.approx(err, rel=1e-9)


def test_fisher_zero_weight_rows_get_least_squares_fit(rng):
    m, n, k = 8, 6, 3
    W = rng.standard_normal((m, n))
    w = rng.random(m) + 0.5
    w[[2, 5]] = 0.0
    f = fz._low_rank_core(W, k, row_weights=w)
    Wk = f.U @ f.V
    assert np.isfinite(Wk).all()
    keep = w > 0
    d = np.sqrt(w[keep])
    ref = _dense_ref_rank_k(d[:, None] * W[keep], k) / d[:, None]
    np.testing.assert_allclose(Wk[keep], ref, atol=1e-10)
    # The zero-weight rows are the least-squares fit of W's rows on the kept row space.
    basis = np.linalg.svd(ref, full_matrices=False)[2][:k]
    np.testing.assert_allclose(Wk[~keep], W[~keep] @ basis.T @ basis, atol=1e-10)


def test_two_sided_matches_explicit_formula(rng):
    m, n, k = 7, 6, 2
    W = rng.standard_normal((m, n))
    Xin = rng.standard_normal((40, n))
    Gout = rng.standard_normal((30, m))
    fin = fz._gram_factor(Xin.T @ Xin, 0.0)
    fout = fz._gram_factor(Gout.T @ Gout, 0.0)
    f = fz._low_rank_core(W, k, in_factor=fin, out_factor=fout)
    S = np.linalg.cholesky(Xin.T @ Xin)
    R = np.linalg.cholesky(Gout.T @ Gout)
    ref = np.linalg.solve(R.T, _dense_ref_rank_k(R.T @ W @ S, k)) @ np.linalg.inv(S)
    np.testing.assert_allclose(f.U @ f.V, ref, atol=1e-9)


def test_weighted_spectrum_gives_the_error_at_every_rank(rng):
    W = rng.standard_normal((9, 7))
    X = _layernorm_inputs(rng, 60, 7)
    fac = fz._gram_factor(X.T @ X, 0.0)
    spec = fz._weighted_spectrum(W, in_factor=fac)
    for k in range(1, 7):
        f = fz._factors_at_rank(spec, k)
        # The eigen route resolves errors to about sqrt(eps) of the total.
        assert f.error == pytest.approx(_output_error(W, f.U @ f.V, X), rel=1e-7, abs=1e-7)


@pytest.mark.parametrize("out_kind", ["none", "scalar", "rows", "factor", "matrix"])
@pytest.mark.parametrize("members", [1, 3])
def test_stacked_spectrum_routes_agree_with_the_explicit_stack(backend, rng, out_kind, members):
    # The one weighted-spectrum core: its SVD route and its Gram route (no root of G) both
    # give the spectrum of the explicitly formed [G_j^(1/2) W_j S; ...], whatever form the
    # output weights take; G_j singular along one direction, as for a layer feeding a
    # LayerNorm.
    n = 9
    X = _layernorm_inputs(rng, 40, n)
    S = np.linalg.cholesky(X.T @ X + 1e-3 * np.eye(n))
    Ws, outs, roots = [], [], []
    for _ in range(members):
        W = rng.standard_normal((7, n))
        A = rng.standard_normal((7, 7))
        A[:, 0] = 0.0  # singular G
        G = A @ A.T
        w = rng.uniform(0.0, 2.0, 7)
        lam, Q = np.linalg.eigh(G)
        Groot = (Q * np.sqrt(np.clip(lam, 0, None))) @ Q.T
        Ws.append(W)
        if out_kind == "none":
            outs.append(None), roots.append(np.eye(7))
        elif out_kind == "scalar":
            outs.append(0.7), roots.append(np.sqrt(0.7) * np.eye(7))
        elif out_kind == "rows":
            outs.append(backend.asarray(w)), roots.append(np.diag(np.sqrt(w)))
        elif out_kind == "factor":
            outs.append(fz._gram_factor(backend.asarray(G), 0.0)), roots.append(Groot)
        else:
            outs.append(backend.asarray(G)), roots.append(Groot)
    M = np.vstack([R @ W @ S for R, W in zip(roots, Ws, strict=True)])
    _, s_ref, Qt_ref = np.linalg.svd(M, full_matrices=False)
    k = 4
    ref_proj = Qt_ref[:k].T @ Qt_ref[:k]
    dev = [backend.asarray(W) for W in Ws]
    for left in (True, False):
        cache: dict = {}
        for _ in range(2):  # the second call is served from the cache
            P, s, Qt, _ = fz._stacked_spectrum(
                dev,
                in_root=backend.asarray(S),
                outs=outs,
                cache=cache,
                keys=list(range(members)),
                left=left,
            )
            s, Qt = to_numpy(s), to_numpy(Qt)
            np.testing.assert_allclose(s[: len(s_ref)], s_ref, rtol=1e-7, atol=1e-7 * s_ref[0])
            np.testing.assert_allclose(Qt[:k].T @ Qt[:k], ref_proj, atol=1e-6)
            if left:
                # Any root of G serves (Cholesky for a factor or a matrix): P differs from the
                # explicit stack's by an orthogonal map, the product's Gram matrix does not.
                Mk = (to_numpy(P) * s) @ Qt
                np.testing.assert_allclose(Mk.T @ Mk, M.T @ M, atol=1e-9 * s_ref[0] ** 2)
        assert len(cache) == members


def test_weighted_spectrum_is_the_single_member_stack(rng):
    W = rng.standard_normal((6, 8))
    fac = fz._gram_factor(np.cov(rng.standard_normal((8, 30))), 0.0)
    w = rng.uniform(0.1, 1.0, 6)
    spec = fz._weighted_spectrum(W, in_factor=fac, row_weights=w)
    P, s, _, ops = fz._stacked_spectrum([W], in_root=fac.root, outs=[w])
    np.testing.assert_array_equal(spec.s, s)
    np.testing.assert_array_equal(spec.P, P)
    np.testing.assert_array_equal(spec.out, ops[0])
    assert spec.total2 == pytest.approx(float(np.sum(s**2)), rel=1e-14)


# ---------------------------------------------------------------------------------------------
# Low rank plus sparse


def _csr_dense(f, m, n):
    S = np.zeros((m, n))
    indptr, indices, values = (to_numpy(a) for a in (f.indptr, f.indices, f.values))
    for i in range(m):
        for p in range(indptr[i], indptr[i + 1]):
            S[i, indices[p]] += values[p]
    S[:, to_numpy(f.columns)] += to_numpy(f.column_values)
    return S


def test_lowrank_sparse_recovers_low_rank_plus_outliers(backend, rng):
    m, n, k, nnz = 30, 20, 3, 15
    L = rng.standard_normal((m, k)) @ rng.standard_normal((k, n))
    S = np.zeros(m * n)
    S[rng.choice(m * n, nnz, replace=False)] = rng.choice([-1, 1], nnz) * 20
    W = L + S.reshape(m, n)
    f = fz._lowrank_sparse_core(backend.asarray(W), k, n_entries=nnz, n_iter=100)
    Wk = to_numpy(f.U) @ to_numpy(f.V) + _csr_dense(f, m, n)
    assert np.linalg.norm(Wk - W) / np.linalg.norm(W) < 1e-6
    assert f.error < 1e-6
    assert to_numpy(f.indices).shape == (nnz,) and to_numpy(f.indptr)[-1] == nnz


def test_lowrank_sparse_never_worse_than_svd_and_error_is_true(backend, rng):
    m, n, k = 25, 18, 4
    W = rng.standard_normal((m, n))
    d = rng.random(n) + 0.1
    for n_entries, n_columns in [(0, 0), (20, 0), (0, 3), (10, 2)]:
        f = fz._lowrank_sparse_core(
            backend.asarray(W),
            k,
            n_entries=n_entries,
            n_columns=n_columns,
            col_scale=backend.asarray(d),
        )
        Wk = to_numpy(f.U) @ to_numpy(f.V) + _csr_dense(f, m, n)
        true = np.linalg.norm((W - Wk) * d) / np.linalg.norm(W * d)
        assert f.error == pytest.approx(true, rel=1e-8)
        svd_err = np.linalg.norm(W * d - _dense_ref_rank_k(W * d, k)) / np.linalg.norm(W * d)
        assert f.error <= svd_err * (1 + 1e-12)
        if n_entries or n_columns:
            assert f.error < svd_err
        assert to_numpy(f.columns).shape == (n_columns,)
        assert len(set(to_numpy(f.columns))) == n_columns


@pytest.mark.parametrize(("n_entries", "n_columns"), [(20, 15), (200, 15), (8, 15), (1, 16)])
def test_lowrank_sparse_entries_never_inside_the_dense_columns(backend, n_entries, n_columns):
    # More entries than lie outside the dense columns picked entries inside them, which the
    # columns already held: reported error 0, true error 0.29 (8 x 16, rank 1, 15 columns).
    W = np.random.default_rng(0).standard_normal((8, 16))
    f = fz._lowrank_sparse_core(backend.asarray(W), 1, n_entries=n_entries, n_columns=n_columns)
    Wk = to_numpy(f.U) @ to_numpy(f.V) + _csr_dense(f, 8, 16)
    true = np.linalg.norm(W - Wk) / np.linalg.norm(W)
    assert f.error == pytest.approx(true, rel=1e-8, abs=1e-14)
    cols = set(to_numpy(f.columns).tolist())
    assert not cols & set(to_numpy(f.indices).tolist())
    assert len(to_numpy(f.values)) <= 8 * (16 - len(cols))


@pytest.mark.parametrize("scale", [1.0, 1e-30, 1e150])
def test_full_rank_error_has_no_rounding_floor(scale):
    # ||M||^2 minus the kept energy left a rounding rest of a few eps, which sqrt turned into
    # a floor of ~1e-8 under every error (35 of 200 seeds at full rank).
    worst = 0.0
    for seed in range(40):
        W = np.random.default_rng(seed).uniform(-0.2, 0.2, (16, 24)) * scale
        worst = max(worst, fz._low_rank_core(W, 16).error)
        k = fz._low_rank_core(W, tol=1e-12).U.shape[1]
        assert k == 16
    assert worst < 1e-13


def test_lowrank_sparse_beats_svd_at_equal_parameters_on_outliers(rng):
    m, n = 64, 48
    W = rng.standard_normal((m, 8)) @ rng.standard_normal((8, n)) * 0.3
    W += 0.01 * rng.standard_normal((m, n))
    W.reshape(-1)[rng.choice(m * n, 60, replace=False)] += 8.0
    k = 8
    f = fz._lowrank_sparse_core(W, k, n_entries=60)
    budget = fz.lowrank_sparse_params(m, n, k, n_entries=60)
    k_svd = budget // (m + n)  # plain SVD with at least as many parameters
    assert k_svd * (m + n) >= budget - (m + n)
    svd_err = np.linalg.norm(W - _dense_ref_rank_k(W, k_svd + 1)) / np.linalg.norm(W)
    assert f.error < 0.5 * svd_err


def test_lowrank_sparse_params_counts_storage():
    assert fz.lowrank_sparse_params(10, 20, 3) == 90
    assert fz.lowrank_sparse_params(10, 20, 3, n_entries=5) == 90 + 10 + 11
    assert fz.lowrank_sparse_params(10, 20, 3, n_columns=2) == 90 + 22


# ---------------------------------------------------------------------------------------------
# Kronecker


def _rearrange_loops(W, m1, n1):
    m2, n2 = W.shape[0] // m1, W.shape[1] // n1
    R = np.zeros((m1 * n1, m2 * n2))
    for a in range(m1):
        for c in range(n1):
            R[a * n1 + c] = W[a * m2 : (a + 1) * m2, c * n2 : (c + 1) * n2].reshape(-1)
    return R


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kronecker_recovers_exact_sum(backend, rng, dtype):
    r, (m1, n1), (m2, n2) = 3, (4, 3), (5, 6)
    A = rng.standard_normal((r, m1, n1))
    B = rng.standard_normal((r, m2, n2))
    W = sum(np.kron(A[i], B[i]) for i in range(r)).astype(dtype)
    f = fz._kronecker_core(
        backend.asarray(W), (m1, n1), tol=1e-4 if dtype == np.float32 else 1e-10
    )
    Af, Bf = to_numpy(f.A), to_numpy(f.B)
    assert Af.shape == (r, m1, n1) and Bf.shape == (r, m2, n2) and Af.dtype == dtype
    Wk = sum(np.kron(Af[i].astype(np.float64), Bf[i]) for i in range(r))
    assert np.linalg.norm(Wk - W) / np.linalg.norm(W) < (1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("exact", [True, False])
def test_kronecker_is_the_nearest(backend, rng, exact):
    m1, n1, m2, n2, r = 6, 4, 3, 5, 2
    W = rng.standard_normal((m1 * m2, n1 * n2))
    f = fz._kronecker_core(
        backend.asarray(W), (m1, n1), r, exact=exact, rng=np.random.default_rng(0)
    )
    R = _rearrange_loops(W, m1, n1)
    s = np.linalg.svd(R, compute_uv=False)
    opt = np.sqrt(np.sum(s[r:] ** 2)) / np.linalg.norm(W)
    Af, Bf = to_numpy(f.A), to_numpy(f.B)
    Wk = sum(np.kron(Af[i], Bf[i]) for i in range(r))
    true = np.linalg.norm(W - Wk) / np.linalg.norm(W)
    assert true == pytest.approx(opt, rel=1e-8 if exact else 1e-2)
    assert f.error == pytest.approx(true, rel=1e-6 if exact else 1e-2)


def test_kronecker_shapes_and_params():
    assert fz.default_kronecker_shape(384, 1536) == (16, 32)
    assert fz.default_kronecker_shape(7, 12) == (1, 3)  # a prime keeps one side trivial
    assert fz.kronecker_params(384, 1536, 2, (16, 32)) == 2 * (16 * 32 + 24 * 48)


# ---------------------------------------------------------------------------------------------
# Shared basis


def test_shared_basis_is_the_low_rank_of_the_stack(backend, rng):
    Ws = [rng.standard_normal((m, 10)) for m in (6, 8, 4)]
    X = rng.standard_normal((50, 10))
    fac = fz._gram_factor(backend.asarray(X.T @ X))
    f = fz._shared_basis_core([backend.asarray(W) for W in Ws], 5, in_factor=fac)
    basis = to_numpy(f.basis)
    assert basis.shape == (5, 10)
    coefs = [to_numpy(c) for c in f.coefficients]
    assert [c.shape for c in coefs] == [(6, 5), (8, 5), (4, 5)]
    stack = np.vstack(Ws)
    ref = fz._low_rank_core(stack, 5, in_factor=fz._gram_factor(X.T @ X))
    np.testing.assert_allclose(np.vstack(coefs) @ basis, ref.U @ ref.V, atol=1e-10)
    assert f.error == pytest.approx(ref.error)
    full = fz._shared_basis_core(Ws, 10)
    for W, C in zip(Ws, full.coefficients, strict=True):
        np.testing.assert_allclose(C @ full.basis, W, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Scale, duplicates, ill-conditioning: every core's error is scale-free


@pytest.mark.parametrize("scale", [1e-150, 1e-20, 1e20, 1e150])
def test_cores_are_scale_invariant(backend, rng, scale):
    W = rng.standard_normal((12, 10))
    W[5] = W[2]  # duplicated rows
    X = rng.standard_normal((60, 10)) * np.logspace(0, -6, 10)  # ill-conditioned inputs
    xs = 1e-50 if scale < 1 else 1e50
    C = X.T @ X

    def run(Wm, Cm, tol=None, rank=4):
        Wd, Cd = backend.asarray(Wm), backend.asarray(Cm)
        return [
            fz._low_rank_core(Wd, rank, tol),
            fz._low_rank_core(Wd, rank, tol, in_factor=fz._gram_factor(Cd)),
            fz._lowrank_sparse_core(Wd, rank or 3, n_entries=6, n_columns=1),
            fz._kronecker_core(Wd, (3, 2), rank, tol),
        ]

    for tol, rank in [(None, 4), (0.3, None)]:
        base = run(W, C, tol, rank)
        scaled = run(W * scale, C * xs * xs, tol, rank)
        for a, b in zip(base, scaled, strict=True):
            assert np.isfinite(b.error) and b.error == pytest.approx(a.error, rel=1e-6, abs=1e-12)
            factors = [f for f in b if hasattr(f, "shape") and f.ndim >= 2]
            assert all(np.isfinite(to_numpy(f)).all() for f in factors)
        U, V = (to_numpy(x) for x in scaled[1][:2])
        assert U.shape == to_numpy(base[1].U).shape
        np.testing.assert_allclose(
            (U / np.sqrt(scale)) @ (V / np.sqrt(scale)),
            to_numpy(base[1].U) @ to_numpy(base[1].V),
            rtol=1e-6,
            atol=1e-9,
        )
