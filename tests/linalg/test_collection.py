"""compress_collection against independent references: NumPy's full SVDs of each matrix and of
each cluster's concatenation, and exact parameter counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparselin.linalg._collection import CompressedCollection, compress_collection

METHODS = ["estimate", "residual_bound", "norm_bound", "exact"]


def shared_subspace_collection(
    rng, m=48, n_groups=3, per_group=4, dim=3, widths=(8, 12), noise=1e-3, dtype=np.float64
):
    """Matrices drawn from a few shared column subspaces plus noise, widths cycling."""
    bases = [np.linalg.qr(rng.standard_normal((m, dim)))[0] for _ in range(n_groups)]
    mats = []
    for j in range(n_groups * per_group):
        n = widths[j % len(widths)]
        scale = 10.0 ** rng.uniform(-0.5, 0.5)
        A = bases[j % n_groups] @ rng.standard_normal((dim, n)) * scale
        A += noise * scale * rng.standard_normal((m, n))
        mats.append(A.astype(dtype))
    return mats


def rel_err(A, B):
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    scale = np.abs(A).max()
    if scale == 0:
        return float(np.abs(B).max())
    return float(np.linalg.norm((A - B) / scale) / np.linalg.norm(A / scale))


def alone_params(A, tol, kmax=None):
    """Fewest numbers storing A alone (own truncated SVD or raw) within tol: a full SVD."""
    m, n = A.shape
    s = np.linalg.svd(A.astype(np.float64) / max(np.abs(A).max(), 1e-300), compute_uv=False)
    tails = np.concatenate([np.cumsum((s**2)[::-1])[::-1], [0.0]])
    total = tails[0]
    kmax = len(s) if kmax is None else min(kmax, len(s))
    ok = [k for k in range(kmax + 1) if total == 0 or tails[k] <= tol**2 * total]
    if not ok or ok[0] * (m + n) >= m * n:
        return m * n
    return ok[0] * (m + n)


def host(backend, x):
    return None if x is None else backend.to_host(x)


def check_collection(cc, mats, tol, backend, *, layout="horizontal", rank=None):
    """Every promise of compress_collection, checked independently on the host."""
    p = len(mats)
    # The clusters partition the collection and labels agree with them.
    assert sorted(i for c in cc.clusters for i in c) == list(range(p))
    for c, members in enumerate(cc.clusters):
        assert all(cc.labels[i] == c for i in members)
    assert len(cc.bases) == len(cc.ranks) == len(cc.clusters) == len(cc.cluster_errors)
    assert cc.shapes == [tuple(A.shape) for A in mats]
    stored = 0
    for c, members in enumerate(cc.clusters):
        basis, k = host(backend, cc.bases[c]), cc.ranks[c]
        if k is None:
            assert basis is None and len(members) == 1
            raw = host(backend, cc.coefficients[members[0]])
            np.testing.assert_array_equal(raw, mats[members[0]])
            stored += raw.size
            continue
        # Orthonormal shared basis on the shared side, with the rank it claims.
        Q = basis if layout == "horizontal" else basis.T
        assert Q.shape[1] == k and (rank is None or k <= rank)
        if k:
            G = Q.astype(np.float64).T @ Q.astype(np.float64)
            assert np.abs(G - np.eye(k)).max() < (1e-4 if Q.dtype == np.float32 else 1e-10)
        stored += basis.size
        for i in members:
            coef = host(backend, cc.coefficients[i])
            want = (k, mats[i].shape[1]) if layout == "horizontal" else (mats[i].shape[0], k)
            assert coef.shape == want
            stored += coef.size
    # n_params counts every stored number once, n_params_dense every input entry.
    assert cc.n_params == stored
    assert cc.n_params_dense == sum(A.size for A in mats)
    # The guarantee: every reconstruction within tol, measured here independently.
    res2 = np.zeros(len(cc.clusters))
    tot2 = np.zeros(len(cc.clusters))
    for i, A in enumerate(mats):
        R = host(backend, cc.reconstruct(i))
        assert R.dtype == cc.coefficients[i].dtype and R.shape == A.shape
        e = rel_err(A, R)
        assert e <= tol * (1 + 1e-6), (i, e, tol)
        assert cc.errors[i] == pytest.approx(e, rel=1e-3, abs=1e-7)
        c = cc.labels[i]
        res2[c] += np.linalg.norm(A.astype(np.float64) - R.astype(np.float64)) ** 2
        tot2[c] += np.linalg.norm(A.astype(np.float64)) ** 2
    cluster_err = np.sqrt(np.divide(res2, tot2, out=np.zeros_like(res2), where=tot2 > 0))
    np.testing.assert_allclose(cc.cluster_errors, cluster_err, rtol=1e-3, atol=1e-7)
    assert np.all(cc.cluster_errors <= tol * (1 + 1e-6))
    # Sharing never costs more than storing every matrix alone at the same threshold.
    assert cc.n_params <= sum(alone_params(A, tol, rank) for A in mats)


def concat_tails(mats, layout):
    blocks = [A if layout == "horizontal" else A.T for A in mats]
    M = np.concatenate([B.astype(np.float64) for B in blocks], axis=1)
    return np.linalg.svd(M, full_matrices=False)[0], blocks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["horizontal", "vertical"])
def test_round_trip_meets_tol(backend, dtype, layout):
    rng = np.random.default_rng(0)
    mats = shared_subspace_collection(rng, dtype=dtype)
    if layout == "vertical":
        mats = [A.T.copy() for A in mats]  # same columns, different row counts
    before = [A.copy() for A in mats]
    tol = 0.02
    cc = compress_collection(
        [backend.asarray(A) for A in mats], tol=tol, layout=layout, random_state=0
    )
    for A, B in zip(mats, before, strict=True):
        np.testing.assert_array_equal(A, B)  # inputs unchanged
    assert cc.layout == layout and cc.tol == tol
    check_collection(cc, mats, tol, backend, layout=layout)
    # Three subspaces of dimension 3: the groups share (rank 3) and save a lot.
    shared = [c for c in cc.clusters if len(c) > 1]
    assert shared and all(cc.ranks[cc.labels[c[0]]] == 3 for c in shared)
    assert cc.n_params < 0.5 * cc.n_params_dense


@pytest.mark.parametrize("method", METHODS)
def test_each_method_and_smallest_rank(method):
    rng = np.random.default_rng(1)
    mats = shared_subspace_collection(rng, m=40, n_groups=2, per_group=5, dim=4, noise=3e-2)
    tol = 0.1
    cc = compress_collection(mats, tol=tol, method=method, random_state=0)
    assert cc.method == method
    check_collection(cc, mats, tol, _NUMPY)
    for c, members in enumerate(cc.clusters):
        k = cc.ranks[c]
        if k is None:
            # Raw only when the matrix's own truncated SVD would store as many numbers.
            (i,) = members
            assert alone_params(mats[i], tol) == mats[i].size
            continue
        if k == 0:  # all-zero members only
            assert all(not np.any(mats[i]) for i in members)
            continue
        # The basis spans the top-k left singular subspace of the concatenation (a single
        # matrix: its own), and k is the smallest rank whose optimal shared basis serves every
        # member within tol.
        U, blocks = concat_tails([mats[i] for i in members], "horizontal")
        Q = cc.bases[c].astype(np.float64)
        assert np.linalg.norm(Q @ Q.T - U[:, :k] @ U[:, :k].T, 2) < 1e-6
        Uk = U[:, : k - 1]
        worst = max(rel_err(B, Uk @ (Uk.T @ B)) for B in blocks)
        assert worst > tol


def test_different_column_counts_and_duplicates():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 7))
    mats = [A, A.copy(), A[:, :5] * 3.0, rng.standard_normal((30, 11))]
    cc = compress_collection(mats, tol=1e-6)
    check_collection(cc, mats, 1e-6, _NUMPY)
    # The three copies share one rank-3 basis (exactly in their span); the Gaussian matrix
    # cannot be compressed to 1e-6 and is stored raw.
    assert [0, 1, 2] in cc.clusters and cc.ranks[cc.labels[0]] == 3
    assert cc.ranks[cc.labels[3]] is None
    assert cc.n_params == 30 * 3 + 3 * (7 + 7 + 5) + 30 * 11


def test_vertical_is_horizontal_on_transposes():
    rng = np.random.default_rng(3)
    mats = shared_subspace_collection(rng, m=36, widths=(6, 9, 10))
    h = compress_collection(mats, tol=0.05, rank=4)
    v = compress_collection([A.T for A in mats], tol=0.05, rank=4, layout="vertical")
    assert h.clusters == v.clusters and h.ranks == v.ranks
    assert h.n_params == v.n_params
    for i in range(len(mats)):
        np.testing.assert_allclose(v.reconstruct(i), h.reconstruct(i).T, atol=1e-12)
    np.testing.assert_allclose(v.errors, h.errors, atol=1e-12)
    assert v.coefficients[0].shape == (mats[0].shape[1], h.ranks[h.labels[0]])


def test_rank_cap_moves_members_out_or_stores_raw():
    rng = np.random.default_rng(4)
    mats = shared_subspace_collection(rng, m=40, n_groups=2, per_group=4, dim=5)
    cc = compress_collection(mats, tol=0.01, rank=2)
    # Rank 2 cannot hold a 5-dimensional subspace within 1%: everything is stored raw.
    check_collection(cc, mats, 0.01, _NUMPY, rank=2)
    assert all(k is None for k in cc.ranks)
    assert cc.n_params == cc.n_params_dense
    cc = compress_collection(mats, tol=0.01, rank=5)
    check_collection(cc, mats, 0.01, _NUMPY, rank=5)
    assert max(k for k in cc.ranks if k is not None) == 5


@pytest.mark.parametrize("scale", [1e-150, 1.0, 1e150])
def test_extreme_scales_zero_matrix_and_single_matrix(scale):
    rng = np.random.default_rng(5)
    mats = [A * scale for A in shared_subspace_collection(rng, m=30, n_groups=2, per_group=3)]
    mats.append(np.zeros((30, 4)))
    cc = compress_collection(mats, tol=0.01)
    check_collection(cc, mats, 0.01, _NUMPY)
    # The zero matrix costs nothing: a rank-0 factorisation with zero error.
    z = len(mats) - 1
    assert cc.ranks[cc.labels[z]] == 0 or len(cc.clusters[cc.labels[z]]) > 1
    assert cc.errors[z] == 0.0
    one = compress_collection(mats[:1], tol=0.01)
    check_collection(one, mats[:1], 0.01, _NUMPY)
    assert one.ranks == [3]


def test_float32_threshold_below_precision_falls_back_to_raw():
    rng = np.random.default_rng(6)
    mats = [A.astype(np.float32) for A in shared_subspace_collection(rng, m=30, noise=0.0)]
    # Exactly rank 3 in float64, but float32 factors cannot reconstruct to 1e-9.
    cc = compress_collection(mats, tol=1e-9)
    check_collection(cc, mats, 1e-9, _NUMPY)
    assert all(k is None for k in cc.ranks)


@pytest.mark.parametrize("layout", ["horizontal", "vertical"])
def test_to_dict_from_dict_round_trip(backend, layout):
    rng = np.random.default_rng(7)
    mats = shared_subspace_collection(rng, m=24, n_groups=2, per_group=3)
    mats.append(rng.standard_normal((24, 5)))  # stored raw
    if layout == "vertical":
        mats = [A.T.copy() for A in mats]
    cc = compress_collection([backend.asarray(A) for A in mats], tol=0.05, layout=layout)
    d = cc.to_dict()
    text = json.dumps(d["metadata"])  # JSON-able, as a safetensors header needs
    for meta in (d["metadata"], text):
        back = CompressedCollection.from_dict({"arrays": d["arrays"], "metadata": meta})
        assert back.clusters == cc.clusters and back.ranks == cc.ranks
        assert back.n_params == cc.n_params and back.layout == layout
        np.testing.assert_array_equal(back.errors, cc.errors)
        np.testing.assert_array_equal(back.cluster_errors, cc.cluster_errors)
        for i in range(len(mats)):
            np.testing.assert_array_equal(
                backend.to_host(back.reconstruct(i)), backend.to_host(cc.reconstruct(i))
            )
    assert sum(a.size for a in d["arrays"].values()) == cc.n_params


def test_safetensors_file_round_trip(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(8)
    mats = shared_subspace_collection(rng, m=24, n_groups=2, per_group=3, dtype=np.float32)
    cc = compress_collection(mats, tol=0.05)
    d = cc.to_dict()
    path = tmp_path / "c.safetensors"
    st_numpy.save_file(d["arrays"], path, metadata={"sparselin": json.dumps(d["metadata"])})
    from safetensors import safe_open

    with safe_open(path, framework="np") as f:
        meta = f.metadata()["sparselin"]
    back = CompressedCollection.from_dict({"arrays": st_numpy.load_file(path), "metadata": meta})
    for i in range(len(mats)):
        np.testing.assert_array_equal(back.reconstruct(i), cc.reconstruct(i))


def test_from_dict_rejects_inconsistent_data():
    rng = np.random.default_rng(9)
    cc = compress_collection(shared_subspace_collection(rng, m=20), tol=0.05)
    d = cc.to_dict()
    with pytest.raises(TypeError, match="arrays"):
        CompressedCollection.from_dict({"metadata": d["metadata"]})
    with pytest.raises(ValueError, match="metadata"):
        CompressedCollection.from_dict({"arrays": d["arrays"], "metadata": {"format": "x"}})
    arrays = dict(d["arrays"])
    arrays["coefficients.0"] = arrays["coefficients.0"][:, :-1]
    with pytest.raises(ValueError, match=r"coefficients\.0"):
        CompressedCollection.from_dict({"arrays": arrays, "metadata": d["metadata"]})


def test_reconstruct_index():
    rng = np.random.default_rng(10)
    mats = shared_subspace_collection(rng, m=20)
    cc = compress_collection(mats, tol=0.05)
    np.testing.assert_array_equal(cc.reconstruct(-1), cc.reconstruct(len(mats) - 1))
    with pytest.raises(ValueError, match="i must be in"):
        cc.reconstruct(len(mats))
    with pytest.raises(TypeError, match="i must be an integer"):
        cc.reconstruct(1.0)


_G = np.random.default_rng(11)
_A = _G.standard_normal((8, 5))
_NAN = _A.copy()
_NAN[2, 3] = np.nan


def _sparse():
    import scipy.sparse as sp

    return sp.random(8, 5, density=0.5, random_state=0, format="csr")


BAD = [
    # (mats, kwargs, error, message)
    ([], {}, ValueError, "at least one matrix"),
    ([_A, _G.standard_normal((9, 5))], {}, ValueError, "same number of rows"),
    ([_A, _G.standard_normal((8, 4))], {"layout": "vertical"}, ValueError, "same number of col"),
    ([_A, _NAN], {}, ValueError, r"mats\[1\] contains NaN"),
    ([_A], {"tol": 0.0}, ValueError, "tol must be"),
    ([_A], {"tol": 1.0}, ValueError, "tol must be"),
    ([_A], {"tol": np.nan}, ValueError, "tol must be"),
    ([_A], {"tol": "0.1"}, TypeError, "tol must be a real number"),
    ([_A], {"rank": 0}, ValueError, "rank must be in"),
    ([_A], {"rank": -2}, ValueError, "rank must be in"),
    ([_A], {"rank": 2.0}, TypeError, "rank must be an integer"),
    ([_A], {"method": "svd"}, ValueError, "method must be one of"),
    ([_A], {"layout": "diagonal"}, ValueError, "layout must be"),
    ([_A], {"random_state": "x"}, TypeError, "random_state"),
    (_A, {}, TypeError, "single 2-D array"),
    ({"a": _A}, {}, TypeError, "mats must be a sequence"),
    (3.0, {}, TypeError, "mats must be a sequence"),
    ([_A, 3.0], {}, TypeError, r"mats\[1\] must be a 2-D array"),
    ([_A, _A[0]], {}, ValueError, r"mats\[1\] must be 2-D"),
    ([_A, np.zeros((8, 0))], {}, ValueError, r"mats\[1\] must be non-empty"),
    ([_A, _A.astype(complex)], {}, TypeError, r"mats\[1\] must be real"),
    ([_A, "abc"], {}, TypeError, r"mats\[1\]"),
    (None, {}, TypeError, "mats must be a sequence"),
]


@pytest.mark.parametrize(("mats", "kwargs", "error", "match"), BAD)
def test_bad_input(mats, kwargs, error, match):
    kwargs = {"tol": 0.1, **kwargs}
    before = [np.array(A, copy=True) for A in mats] if isinstance(mats, list) else None
    with pytest.raises(error, match=match):
        compress_collection(mats, **kwargs)
    if before is not None:
        for A, B in zip(mats, before, strict=True):
            np.testing.assert_array_equal(np.asarray(A), B)


def test_sparse_input_is_refused():
    with pytest.raises(TypeError, match=r"mats\[0\] must be a dense array"):
        compress_collection([_sparse()], tol=0.1)


def test_mixed_devices_refused(backend):
    if not backend.on_device:
        pytest.skip("mixing needs a device backend")
    with pytest.raises(TypeError, match="different devices"):
        compress_collection([_A, backend.asarray(_A)], tol=0.1)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(2, 12),
    p=st.integers(1, 6),
    tol=st.sampled_from([1e-6, 0.01, 0.1, 0.5]),
    rank=st.sampled_from([None, 1, 2, 5]),
    method=st.sampled_from(METHODS),
)
def test_property_any_collection(seed, m, p, tol, rank, method):
    rng = np.random.default_rng(seed)
    mats = []
    for _ in range(p):
        n = int(rng.integers(1, 8))
        kind = rng.integers(4)
        if kind == 0:
            A = rng.standard_normal((m, n))
        elif kind == 1:
            A = rng.standard_normal((m, 1)) @ rng.standard_normal((1, n))
        elif kind == 2:
            A = np.zeros((m, n))
        else:
            A = (mats[-1] if mats else rng.standard_normal((m, n)))[:, :n].copy()
        mats.append(A)
    cc = compress_collection(mats, tol=tol, rank=rank, method=method, random_state=0)
    check_collection(cc, mats, tol, _NUMPY, rank=rank)


class _NumpyBackend:
    on_device = False

    @staticmethod
    def to_host(x):
        return x


_NUMPY = _NumpyBackend()


def test_members_forcing_the_rank_up_are_moved_out():
    # At tol 0.3 the clustering (which bounds each group's error, not each member's) lets a
    # matrix of another subspace into a group; kept there it would need rank 11, not 6.
    rng = np.random.default_rng(0)
    groups = [np.linalg.qr(rng.standard_normal((128, 6)))[0] for _ in range(4)]
    mats = [
        groups[i % 4] @ rng.standard_normal((6, 24)) + 0.01 * rng.standard_normal((128, 24))
        for i in range(40)
    ]
    cc = compress_collection(mats, tol=0.3, random_state=0)
    check_collection(cc, mats, 0.3, _NUMPY)
    assert max(k for k in cc.ranks if k is not None) <= 6
    for members in cc.clusters:
        assert len({i % 4 for i in members}) == 1  # one subspace per group


@pytest.mark.parametrize("method", ["projection_bound", "estimate", "exact"])
@pytest.mark.parametrize("layout", ["horizontal", "vertical"])
@pytest.mark.parametrize("rank", [None, 3])
def test_members_300_orders_apart_in_one_group(method, layout, rank):
    """Regression: members were measured at the group's scale (its largest entry).

    A member 1e-300 times smaller than another in its group then had squares that underflow
    to 0: its relative error was reported 0 and "met" tol, while the stored approximation
    was 2e-4 to 7e-3 off (tol 2e-4 in the probe that found it; here 1e-2 against 1e-3).
    """
    rng = np.random.default_rng(0)
    B = rng.standard_normal((17, 3))
    mats = []
    # Large members nearly of rank 3, tiny ones with 1% noise: a rank-3 shared basis meets
    # tol for the large ones only.
    for w, c, noise in [
        (10, 1e150, 1e-6),
        (11, 1e-150, 1e-2),
        (9, 1e150, 1e-6),
        (5, 1e-150, 1e-2),
    ]:
        A = B @ rng.standard_normal((3, w)) + noise * rng.standard_normal((17, w))
        mats.append(A * c)
    if layout == "vertical":
        mats = [A.T.copy() for A in mats]
    before = [A.copy() for A in mats]
    tol = 1e-3
    cc = compress_collection(mats, tol=tol, rank=rank, method=method, layout=layout)
    for i, A in enumerate(mats):
        s = np.abs(A).max()
        true = np.linalg.norm((A - cc.reconstruct(i)) / s) / np.linalg.norm(A / s)
        assert true <= tol
        assert cc.errors[i] == pytest.approx(true, rel=1e-6, abs=1e-15)
        np.testing.assert_array_equal(A, before[i])
