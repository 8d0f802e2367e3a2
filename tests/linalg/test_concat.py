"""Concatenated-matrix SVD: the bounds, the incremental estimator and the exact error.

The reference is NumPy's full SVD of the explicitly formed concatenation (the functions under
test never form it). Families of collections follow the research note: Gaussian, low rank plus
noise, decaying spectra, nearly collinear, orthogonal blocks, a block of zeros.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparselin.linalg._concat import (
    ConcatErrorEstimator,
    concat_error_bounds,
    estimate_concat_error,
)
from tests._helpers import orthonormality_error

FAMILIES = ("gaussian", "lowrank_noise", "decaying", "collinear", "orthogonal", "zero_block")


def make_collection(family: str, rng: np.random.Generator, *, m=None, n_blocks=None, wide=8):
    """A random small collection of one family (widths 1..wide, possibly wider than r)."""
    m = int(rng.integers(8, 40)) if m is None else m
    n_blocks = int(rng.integers(1, 8)) if n_blocks is None else n_blocks
    widths = rng.integers(1, wide + 1, size=n_blocks)
    if family == "gaussian":
        return [rng.standard_normal((m, w)) * rng.uniform(0.1, 3) for w in widths]
    if family == "lowrank_noise":
        k = int(rng.integers(1, 5))
        B = rng.standard_normal((m, k))
        noise = 10.0 ** rng.uniform(-4, -1)
        return [
            B @ rng.standard_normal((k, w)) + noise * rng.standard_normal((m, w)) for w in widths
        ]
    if family == "decaying":
        out = []
        for w in widths:
            U = np.linalg.qr(rng.standard_normal((m, min(m, w))))[0]
            V = np.linalg.qr(rng.standard_normal((w, min(m, w))))[0]
            s = 0.5 ** np.arange(min(m, w)) * rng.uniform(0.5, 2)
            out.append((U * s) @ V.T)
        return out
    if family == "collinear":
        A = rng.standard_normal((m, int(widths[0])))
        return [
            A * rng.uniform(0.5, 2) + 1e-6 * rng.standard_normal(A.shape) for _ in range(n_blocks)
        ]
    if family == "orthogonal":
        total = int(widths.sum())
        m = max(m, total)
        Q = np.linalg.qr(rng.standard_normal((m, total)))[0]
        out, start = [], 0
        for w in widths:
            V = np.linalg.qr(rng.standard_normal((w, w)))[0]
            out.append((Q[:, start : start + w] * rng.uniform(0.1, 3, size=w)) @ V.T)
            start += w
        return out
    if family == "zero_block":
        out = [rng.standard_normal((m, w)) for w in widths]
        out[int(rng.integers(0, n_blocks))] = np.zeros((m, int(widths[0])))
        return out
    raise AssertionError(family)


def exact_error(mats, r, relative=True):
    """Reference: full SVD of the formed concatenation (float64)."""
    M = np.hstack([np.asarray(A, dtype=np.float64) for A in mats])
    s = np.linalg.svd(M, compute_uv=False)
    tail = float(np.sqrt(np.sum(s[r:] ** 2)))
    if not relative:
        return tail
    norm = float(np.linalg.norm(M))
    return tail / norm if norm else 0.0


def copies(mats):
    return [copy.deepcopy(A) for A in mats]


def assert_unchanged(before, after):
    assert len(before) == len(after)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# --------------------------------------------------------------------------------------------
# Soundness on hundreds of random collections
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_bounds_hold_on_random_collections(family):
    rng = np.random.default_rng(sum(map(ord, family)))
    for _ in range(60):  # 6 families x 60 = 360 collections
        mats = make_collection(family, rng)
        r = int(rng.integers(1, 10))
        before = copies(mats)
        b = concat_error_bounds(mats, r, exact=True, random_state=0)
        assert_unchanged(before, mats)
        ref = exact_error(mats, r)
        assert b.exact == pytest.approx(ref, abs=1e-7)
        # Bounds are on the error; sqrt of a difference of energies has ~1e-8 round-off.
        assert b.residual >= ref - 1e-6
        assert b.weyl >= ref - 1e-6
        # L_2 >= T_r(head) >= L_1: never looser than Weyl.
        assert b.residual <= b.weyl + 1e-12
        assert ref - 1e-6 <= b.projection <= b.weyl + 1e-12
        est = estimate_concat_error(mats, r, n_oversamples=int(rng.integers(0, 4)))
        # One-sided in exact arithmetic (see ConcatErrorEstimator), never looser than residual.
        assert est >= ref - 1e-6
        assert est <= b.residual + 1e-6


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    family=st.sampled_from(FAMILIES),
    r=st.integers(1, 12),
    order=st.sampled_from(["norm", "given"]),
)
def test_bounds_property(seed, family, r, order):
    rng = np.random.default_rng(seed)
    mats = make_collection(family, rng, wide=12)
    b = concat_error_bounds(mats, r, order=order, random_state=seed)
    ref = exact_error(mats, r)
    assert ref - 1e-6 <= b.residual <= b.weyl + 1e-12
    assert ref - 1e-6 <= b.projection <= b.weyl + 1e-12
    assert 0.0 <= b.weyl <= 1.0


def test_energy_identity_and_per_block_quantities(rng):
    mats = [rng.standard_normal((30, w)) for w in (2, 7, 1, 4)]
    b = concat_error_bounds(mats, 5, exact=True)
    M = np.hstack(mats)
    assert b.norm == pytest.approx(np.linalg.norm(M), rel=1e-12)
    np.testing.assert_allclose(b.block_norms, [np.linalg.norm(A) for A in mats], rtol=1e-12)
    np.testing.assert_array_equal(b.block_widths, [2, 7, 1, 4])
    # Residual norms: each block's part outside the span of the blocks processed before it.
    order = list(b.residual_order)
    assert sorted(order) == [0, 1, 2, 3]
    for pos, j in enumerate(order):
        prev = [mats[i] for i in order[:pos]]
        if prev:
            Q = np.linalg.qr(np.hstack(prev))[0]
            expected = np.linalg.norm(mats[j] - Q @ (Q.T @ mats[j]))
        else:
            expected = np.linalg.norm(mats[j])
        assert b.block_residual_norms[j] == pytest.approx(expected, rel=1e-8)
    # E_r^2 = ||M||^2 - T_r(M), and absolute = relative * norm.
    ba = concat_error_bounds(mats, 5, relative=False, exact=True)
    assert ba.exact == pytest.approx(exact_error(mats, 5, relative=False), rel=1e-10)
    assert ba.weyl == pytest.approx(b.weyl * b.norm, rel=1e-12)
    assert ba.residual == pytest.approx(b.residual * b.norm, rel=1e-12)
    assert ba.projection == pytest.approx(b.projection * b.norm, rel=1e-12)


def test_weyl_head_wider_than_rank_uses_top_energy(rng):
    # Regression for the reference code's defect: a 30 x 10 head with r = 3 counted at its
    # full norm gives sqrt(tail / total), below the true error.
    for _ in range(30):
        A = rng.standard_normal((30, 10)) * 10
        small = [rng.standard_normal((30, 2)) * 0.1 for _ in range(3)]
        mats = [A, *small]
        ref = exact_error(mats, 3)
        naive = np.sqrt(
            sum(np.linalg.norm(B) ** 2 for B in small) / np.linalg.norm(np.hstack(mats)) ** 2
        )
        assert naive < ref  # the defect would break the bound
        b = concat_error_bounds(mats, 3, random_state=1)
        assert b.weyl >= ref - 1e-9
        assert b.head == (0,)


def test_weyl_narrow_head_beats_wide_block(rng):
    # The largest block is wide and nearly flat (T_r small); narrow blocks capture more.
    A = rng.standard_normal((40, 20))
    narrow = [5 * rng.standard_normal((40, 1)) for _ in range(3)]
    mats = [A, *narrow]
    b = concat_error_bounds(mats, 3, exact=True, random_state=0)
    assert set(b.head) == {1, 2, 3}
    assert b.exact - 1e-9 <= b.residual <= b.weyl


def test_duplicates_bounds_loose_estimate_exact(rng):
    A = rng.standard_normal((25, 3)) @ rng.standard_normal((3, 6))
    for n in (2, 3, 5):
        mats = [A] * n
        b = concat_error_bounds(mats, 3, exact=True)
        assert b.exact < 1e-7
        assert b.weyl == pytest.approx(np.sqrt(1 - 1 / n), abs=1e-7)
        assert b.residual == pytest.approx(np.sqrt(1 - 1 / n), abs=1e-7)
        assert b.projection < 1e-7  # the head's basis spans every copy
        assert estimate_concat_error(mats, 3) < 1e-6


def test_orthogonal_blocks_residual_bound_is_exact(rng):
    for _ in range(20):
        mats = make_collection("orthogonal", rng)
        r = int(rng.integers(1, 6))
        b = concat_error_bounds(mats, r, exact=True, order="given")
        assert b.residual == pytest.approx(b.exact, abs=1e-7)


def test_rank_at_least_rows_or_total_width_gives_zero(rng):
    mats = [rng.standard_normal((6, 4)), rng.standard_normal((6, 5))]
    b = concat_error_bounds(mats, 6, exact=True)
    assert b.weyl == b.residual == 0.0 and b.exact == 0.0
    mats = [rng.standard_normal((30, 2)), rng.standard_normal((30, 3))]
    b = concat_error_bounds(mats, 5, exact=True)
    assert b.weyl == 0.0 and b.residual < 1e-7 and b.exact < 1e-7


def test_all_zero_collection():
    mats = [np.zeros((5, 3)), np.zeros((5, 2))]
    b = concat_error_bounds(mats, 1, exact=True)
    assert (b.weyl, b.residual, b.exact, b.norm) == (0.0, 0.0, 0.0, 0.0)
    assert estimate_concat_error(mats, 1) == 0.0


@pytest.mark.parametrize("factor", [1e-150, 1e150, 1e-200, 1e200])
def test_scaled_data(rng, factor):
    mats = make_collection("lowrank_noise", rng, m=20, n_blocks=5)
    base = concat_error_bounds(mats, 3, exact=True)
    b = concat_error_bounds([A * factor for A in mats], 3, exact=True)
    assert b.weyl == pytest.approx(base.weyl, rel=1e-6)
    assert b.residual == pytest.approx(base.residual, rel=1e-6)
    assert b.projection == pytest.approx(base.projection, rel=1e-6)
    assert b.exact == pytest.approx(base.exact, rel=1e-6)
    assert b.norm == pytest.approx(base.norm * factor, rel=1e-10)
    e0 = estimate_concat_error(mats, 3)
    assert estimate_concat_error([A * factor for A in mats], 3) == pytest.approx(e0, rel=1e-5)
    ba = concat_error_bounds([A * factor for A in mats], 3, relative=False)
    assert ba.weyl == pytest.approx(base.weyl * base.norm * factor, rel=1e-6)


# --------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------


def test_estimator_within_a_few_percent_on_low_rank_plus_noise(rng):
    for _ in range(10):
        m, k, r = 80, 6, 6
        B = rng.standard_normal((m, k))
        mats = [
            B @ rng.standard_normal((k, w)) + 0.05 * rng.standard_normal((m, w))
            for w in rng.integers(2, 12, size=20)
        ]
        ref = exact_error(mats, r)
        est = estimate_concat_error(mats, r)
        assert ref - 1e-9 <= est <= 1.03 * ref


@pytest.mark.parametrize("case", ["in_span", "rank_deficient", "duplicate_columns", "zero"])
def test_estimator_exact_when_tracking_the_whole_rank(rng, case):
    m = 40
    B = rng.standard_normal((m, 4))
    first = B @ rng.standard_normal((4, 6))
    if case == "in_span":
        later = [B @ rng.standard_normal((4, w)) for w in (1, 3, 7)]
    elif case == "rank_deficient":
        later = [np.outer(rng.standard_normal(m), rng.standard_normal(5)) for _ in range(2)]
    elif case == "duplicate_columns":
        c = rng.standard_normal((m, 1))
        later = [np.hstack([c, c, c]), np.hstack([c, 2 * c])]
    else:
        later = [np.zeros((m, 3)), first]
    mats = [first, *later]
    rank_m = np.linalg.matrix_rank(np.hstack(mats))
    for r in range(1, rank_m + 1):
        est = estimate_concat_error(mats, r, n_oversamples=max(0, rank_m - r))
        assert est == pytest.approx(exact_error(mats, r), abs=1e-7)


def test_incremental_class_matches_batch_and_never_overestimates(rng):
    mats = make_collection("lowrank_noise", rng, m=30, n_blocks=12)
    est = ConcatErrorEstimator(4, n_oversamples=2)
    for t, A in enumerate(mats, start=1):
        before = A.copy()
        assert est.add(A) is est
        np.testing.assert_array_equal(A, before)
        assert est.n_blocks == t
        assert est.n_columns == sum(B.shape[1] for B in mats[:t])
        true_s = np.linalg.svd(np.hstack(mats[:t]), compute_uv=False)
        s = est.singular_values
        assert np.all(s <= true_s[: s.shape[0]] * (1 + 1e-10) + 1e-12)
        assert est.error >= exact_error(mats[:t], 4) - 1e-7
        assert est.norm == pytest.approx(np.linalg.norm(np.hstack(mats[:t])), rel=1e-12)
    assert est.error == estimate_concat_error(mats, 4, n_oversamples=2)
    absolute = ConcatErrorEstimator(4, relative=False, n_oversamples=2)
    for A in mats:
        absolute.add(A)
    assert absolute.error == pytest.approx(est.error * est.norm, rel=1e-12)
    assert ConcatErrorEstimator(3).error == 0.0
    assert ConcatErrorEstimator(3).singular_values is None


def test_estimator_basis_stays_orthonormal_over_1000_updates(rng):
    m = 50
    B = rng.standard_normal((m, 6))
    est = ConcatErrorEstimator(5, n_oversamples=3)
    for _ in range(1000):
        est.add(B @ rng.standard_normal((6, 1)) + 0.01 * rng.standard_normal((m, 1)))
    assert orthonormality_error(est.basis) < 1e-10
    assert est.n_blocks == 1000


def test_estimator_sketch_option(rng):
    B = rng.standard_normal((60, 5))
    mats = [B @ rng.standard_normal((5, 40)) for _ in range(4)]
    est = estimate_concat_error(mats, 5, sketch=8, random_state=3)
    assert est < 1e-6
    assert est == estimate_concat_error(mats, 5, sketch=8, random_state=3)


def test_estimator_promotes_dtype(rng):
    est = ConcatErrorEstimator(2)
    est.add(rng.standard_normal((10, 3)).astype(np.float32))
    assert est.basis.dtype == np.float32
    est.add(rng.standard_normal((10, 3)))
    assert est.basis.dtype == np.float64


# --------------------------------------------------------------------------------------------
# Backends and precision
# --------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:the svd_flip CUDA kernel could not be compiled")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backends_and_dtypes(backend, dtype):
    rng = np.random.default_rng(7)
    host = [A.astype(dtype) for A in make_collection("lowrank_noise", rng, m=30, n_blocks=6)]
    host.append(rng.standard_normal((30, 15)).astype(dtype))  # a wide block (> r)
    mats = [backend.asarray(A) for A in host]
    before = [A.copy() for A in host]
    r = 4
    b = concat_error_bounds(mats, r, exact=True, random_state=0)
    ref = exact_error(host, r)
    tol = 1e-3 if dtype == np.float32 else 1e-7
    assert b.exact == pytest.approx(ref, abs=tol)
    assert ref - tol <= b.residual <= b.weyl + tol
    assert b.block_norms.dtype == dtype
    assert b.block_residual_norms.dtype == dtype
    est = ConcatErrorEstimator(r)
    for A in mats:
        est.add(A)
    assert est.error >= ref - tol
    assert est.basis.dtype == dtype
    assert est.singular_values.dtype == dtype
    assert type(est.basis) is type(mats[0])
    assert est.error == pytest.approx(estimate_concat_error(mats, r), abs=1e-12)
    assert_unchanged(before, [backend.to_host(A) for A in mats])
    ref64 = concat_error_bounds(host, r, exact=True, random_state=0)
    assert b.residual == pytest.approx(ref64.residual, abs=tol)


def test_float32_bounds_hold(rng):
    for _ in range(40):
        mats = [A.astype(np.float32) for A in make_collection("decaying", rng)]
        r = int(rng.integers(1, 6))
        ref = exact_error(mats, r)
        b = concat_error_bounds(mats, r, exact=True)
        assert b.exact == pytest.approx(ref, abs=1e-6)
        assert b.residual >= ref - 1e-3 and b.weyl >= ref - 1e-3
        assert estimate_concat_error(mats, r) >= ref - 1e-3


def test_accepts_different_widths_stacks_and_integers(rng):
    stack = rng.standard_normal((4, 12, 3))
    b1 = concat_error_bounds(stack, 2, exact=True)
    b2 = concat_error_bounds(list(stack), 2, exact=True)
    assert b1.exact == pytest.approx(b2.exact, rel=1e-14)
    assert b1.residual == pytest.approx(b2.residual, rel=1e-14)
    ints = [np.arange(12).reshape(4, 3), np.ones((4, 1), dtype=np.int32)]
    b = concat_error_bounds(ints, 1, exact=True)
    assert b.exact == pytest.approx(exact_error(ints, 1), abs=1e-9)
    assert b.block_norms.dtype == np.float64


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

_GOOD = [np.arange(12.0).reshape(4, 3), np.ones((4, 2))]
_BAD = [
    ({"mats": []}, ValueError, "at least one matrix"),
    ({"mats": [np.ones((4, 3)), np.ones((5, 3))]}, ValueError, "same number of rows"),
    ({"mats": [np.ones((4, 3)), np.array([[np.nan]] * 4)]}, ValueError, "NaN"),
    ({"mats": [np.ones((4, 3)), np.full((4, 1), np.inf)]}, ValueError, "NaN or infinity"),
    ({"mats": [np.ones(4)]}, ValueError, "2-D"),
    ({"mats": [np.ones((4, 0))]}, ValueError, "non-empty"),
    ({"mats": np.ones((4, 3))}, ValueError, "ndim=2"),
    ({"mats": 3}, TypeError, "sequence"),
    ({"mats": [np.ones((4, 3), dtype=complex)]}, TypeError, "complex"),
    ({"mats": [np.array([["a"]])]}, TypeError, "numbers"),
    ({"rank": 0}, ValueError, "rank"),
    ({"rank": -2}, ValueError, "rank"),
    ({"rank": 2.5}, TypeError, "rank"),
    ({"rank": True}, TypeError, "rank"),
    ({"relative": "yes"}, TypeError, "relative"),
]


@pytest.mark.parametrize(("kwargs", "exc", "match"), _BAD)
@pytest.mark.parametrize("func", ["bounds", "estimate"])
def test_bad_input(kwargs, exc, match, func):
    args = {"mats": [A.copy() for A in _GOOD], "rank": 2, **kwargs}
    passed = args["mats"]
    before = copy.deepcopy(passed)
    f = concat_error_bounds if func == "bounds" else estimate_concat_error
    with pytest.raises(exc, match=match):
        f(args.pop("mats"), args.pop("rank"), **args)
    if isinstance(passed, list):
        assert_unchanged(before, passed)
    elif isinstance(passed, np.ndarray):
        np.testing.assert_array_equal(before, passed)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"exact": 1}, TypeError, "exact"),
        ({"order": "random"}, ValueError, "order"),
        ({"random_state": "x"}, TypeError, "random_state"),
    ],
)
def test_bad_input_bounds_only(kwargs, exc, match):
    mats = [A.copy() for A in _GOOD]
    with pytest.raises(exc, match=match):
        concat_error_bounds(mats, 2, **kwargs)
    assert_unchanged(_GOOD, mats)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n_oversamples": -1}, ValueError, "n_oversamples"),
        ({"n_oversamples": 1.5}, TypeError, "n_oversamples"),
        ({"sketch": 0}, ValueError, "sketch"),
        ({"rank": 0}, ValueError, "rank"),
    ],
)
def test_bad_input_estimator_options(kwargs, exc, match):
    args = {"rank": 2, **kwargs}
    with pytest.raises(exc, match=match):
        ConcatErrorEstimator(args.pop("rank"), **args)
    mats = [A.copy() for A in _GOOD]
    with pytest.raises(exc, match=match):
        estimate_concat_error(mats, **{"rank": 2, **kwargs})
    assert_unchanged(_GOOD, mats)


@pytest.mark.parametrize(
    ("block", "exc", "match"),
    [
        (np.ones((5, 2)), ValueError, "4 rows"),
        (np.full((4, 2), np.nan), ValueError, "NaN"),
        (np.ones((4, 2, 1)), ValueError, "2-D"),
        (np.ones((4, 2), dtype=complex), TypeError, "complex"),
    ],
)
def test_bad_input_estimator_add(block, exc, match):
    est = ConcatErrorEstimator(2).add(np.ones((4, 3)))
    error, n = est.error, est.n_blocks
    saved = block.copy()
    with pytest.raises(exc, match=match):
        est.add(block)
    np.testing.assert_array_equal(block, saved)
    assert (est.error, est.n_blocks) == (error, n)  # the state is untouched by a refused block


# --------------------------------------------------------------------------------------------
# Regression: tails below the round-off of the energies (adversarial pass)
# --------------------------------------------------------------------------------------------


def _tail_matrix(tail: float, dtype, seed: int = 1) -> np.ndarray:
    """12 x 10, six unit singular values and two equal to ``tail``: E_6 = sqrt(2) tail."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((12, 8)))[0]
    V = np.linalg.qr(rng.standard_normal((10, 8)))[0]
    return ((U * np.r_[np.ones(6), tail, tail]) @ V.T).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tail", [1e-3, 1e-5, 1e-7, 1e-9])
@pytest.mark.parametrize("split", [(10,), (6, 4), (2, 2, 2, 2, 2), (4, 4, 2)])
def test_bounds_hold_for_tails_below_energy_roundoff(dtype, tail, split):
    """The bounds were computed as ||M||^2 minus a top energy, in the input's precision.

    That difference cancels: in float64 every bound was 0 for a true relative error of
    5.8e-10 (a single block wider than the rank), and in float32 the Weyl, residual and
    projection bounds were 0 for true errors up to 5.8e-6 (and the estimator 0 for 5.8e-4).
    A bound must never be below the exact error of the data as given.
    """
    A = _tail_matrix(tail, dtype)
    cuts = np.cumsum((0, *split))
    mats = [A[:, a:b] for a, b in itertools.pairwise(cuts)]
    before = copies(mats)
    true = exact_error(mats, 6)
    b = concat_error_bounds(mats, 6, exact=True, random_state=0)
    assert b.exact == pytest.approx(true, rel=1e-6, abs=1e-14)
    for name in ("weyl", "residual", "projection"):
        assert getattr(b, name) >= true * (1 - 1e-6), name
    absolute = concat_error_bounds(mats, 6, relative=False, random_state=0)
    true_abs = exact_error(mats, 6, relative=False)
    for name in ("weyl", "residual", "projection"):
        assert getattr(absolute, name) >= true_abs * (1 - 1e-6), name
    # The estimate is not provable, but its round-off is that of float64 (about 1e-8 in the
    # relative error) whatever the input precision.
    assert estimate_concat_error(mats, 6) >= true - 3e-8
    est = ConcatErrorEstimator(6)
    for B in mats:
        est.add(B)
    assert est.error >= true - 3e-8
    assert est.basis.dtype == dtype and est.singular_values.dtype == dtype
    assert_unchanged(before, mats)
