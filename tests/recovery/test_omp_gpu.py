"""The batched device path of omp (sparselin/recovery/_omp_gpu.py) against the CPU omp.

Every test runs on the ``backend`` fixture: NumPy, the CuPy stand-in (NumPy underneath,
restricted to CuPy's real API) and real CuPy on a GPU. On the device backends the public
``omp`` dispatches to the batched path; on NumPy the same batched core is called directly,
so that it is checked on all three. The reference is always the CPU ``omp`` (itself checked
against scikit-learn in test_omp.py): same supports, same coefficients, same iteration
counts, same warnings.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparselin.recovery import loss_omp, omp
from sparselin.recovery._checks import check_problem, check_weights
from sparselin.recovery._omp_gpu import omp_device
from tests._helpers import Backend, fake_cupy, real_cupy_present


@pytest.fixture(params=["fake-cupy", pytest.param("cupy", marks=pytest.mark.gpu)])
def device(request):
    """The device backends only: the CuPy stand-in, or real CuPy on a GPU."""
    if request.param == "cupy":
        import cupy

        yield Backend("cupy", cupy)
    else:
        if real_cupy_present():
            pytest.skip("real CuPy is installed; the stand-in cannot share its module name")
        with fake_cupy() as cp:
            yield Backend("fake-cupy", cp)


def batched(backend, A, y, *, n_nonzero=None, tol=None, weights=None, **flags):
    """The batched path on ``backend``, results brought back to the host."""
    if backend.on_device:
        w = weights if weights is None else backend.asarray(weights)
        out = omp(
            backend.asarray(A),
            backend.asarray(y),
            n_nonzero=n_nonzero,
            tol=tol,
            weights=w,
            **flags,
        )
    else:
        # The public function would take the CPU kernels on NumPy: call the core directly,
        # with the validation omp does in front of it.
        A, y, dtype = check_problem(A, y, allow_2d_y=True)
        w = check_weights(weights, A.shape[1], dtype)
        if tol is not None:
            n_eff = min(A.shape)
        else:
            n_eff = max(int(0.1 * A.shape[1]), 1) if n_nonzero is None else n_nonzero
        out = omp_device(
            A,
            y,
            w,
            n_nonzero=n_eff,
            tol=tol,
            return_path=flags.get("return_path", False),
            return_n_iter=flags.get("return_n_iter", False),
        )
    if isinstance(out, tuple):
        return tuple(x if isinstance(x, int) else backend.to_host(x) for x in out)
    return backend.to_host(out)


def _problem(rng, m, N, n_sig, s, dtype, *, noise=0.0, unit=False):
    cplx = np.dtype(dtype).kind == "c"
    A = rng.standard_normal((m, N)) + (1j * rng.standard_normal((m, N)) if cplx else 0)
    if unit:
        A /= np.linalg.norm(A, axis=0)
    else:
        A *= rng.uniform(0.05, 20.0, N)  # far from unit norm: normalised and mapped back
    X = np.zeros((N, n_sig), dtype=A.dtype)
    for c in range(n_sig):
        vals = rng.standard_normal(s) + (1j * rng.standard_normal(s) if cplx else 0)
        X[rng.choice(N, s, replace=False), c] = vals
    Y = A @ X
    Y = Y + noise * np.linalg.norm(Y, axis=0) * rng.standard_normal(Y.shape) / np.sqrt(m)
    return A.astype(dtype), Y.astype(dtype), X


def _same_result(got, ref, dtype, *, frac=1.0):
    """Same support per signal (all of them, or ``frac`` of them in single precision, where a
    near-tie between two correlations may fall either way) and the same coefficients."""
    single = np.dtype(dtype) in (np.float32, np.complex64)
    same_sup = np.all((got != 0) == (ref != 0), axis=0)
    assert same_sup.mean() >= (frac if single else 1.0), same_sup.mean()
    scale = np.abs(ref).max(axis=0, keepdims=True) + 1e-30
    err = (np.abs(got - ref) / scale)[:, same_sup]
    assert err.max(initial=0.0) <= (2e-3 if single else 1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.complex64])
@pytest.mark.parametrize("stop", ["n_nonzero", "tol"])
def test_matches_cpu_omp_on_random_problems(backend, rng, dtype, stop):
    A, Y, _ = _problem(rng, 40, 100, 60, 6, dtype, noise=0.05)
    kw = {"n_nonzero": 9} if stop == "n_nonzero" else {"tol": 0.3 * float(np.mean(abs(Y) ** 2))}
    got, n_got = batched(backend, A, Y, return_n_iter=True, **kw)
    ref, n_ref = omp(A, Y, return_n_iter=True, **kw)
    assert got.dtype == dtype and got.shape == ref.shape
    _same_result(got, ref, dtype, frac=0.95)
    if np.dtype(dtype) in (np.float64, np.complex128):
        np.testing.assert_array_equal(n_got, n_ref)
    if stop == "tol":
        assert len(set(n_ref.tolist())) > 2, "the tolerance should stop signals at many steps"


def test_exact_recovery_of_sparse_vectors(backend, rng):
    A, Y, X = _problem(rng, 64, 256, 40, 8, np.float64, unit=True)
    got = batched(backend, A, Y, n_nonzero=8)
    assert np.all(np.abs(got - X) < 1e-8, axis=0).mean() >= 0.95


def test_batch_equals_one_by_one_with_mixed_stops(backend, rng):
    # Signals leave the running set at different steps (zero signal, within tol from the
    # start, tol met after a few atoms, exactly sparse): the rest must not notice.
    A, Y, _ = _problem(rng, 30, 70, 12, 3, np.float64, noise=0.0)
    Y[:, 5] = 0.0
    Y[:, 7] = 1e-2 * Y[:, 7] / np.linalg.norm(Y[:, 7])  # ||y||^2 = 1e-4 <= tol
    Y[:, 8:] += 0.3 * rng.standard_normal((30, 4))
    tol = 1e-2
    got, n_got = batched(backend, A, Y, tol=tol, return_n_iter=True)
    ref, n_ref = omp(A, Y, tol=tol, return_n_iter=True)
    np.testing.assert_allclose(got, ref, atol=1e-10)
    np.testing.assert_array_equal(n_got, n_ref)
    assert n_got[5] == 0 and n_got[7] == 0 and len(set(n_got.tolist())) >= 3
    for s in range(12):
        one = batched(backend, A, Y[:, s], tol=tol)
        np.testing.assert_allclose(one, got[:, s], atol=1e-12)


def test_weights_and_unpenalised_atoms(backend, rng):
    A, Y, _ = _problem(rng, 30, 60, 25, 4, np.float64, noise=0.1)
    w = rng.uniform(0.2, 3.0, 60)
    w[[7, 40]] = 0.0
    got = batched(backend, A, Y, n_nonzero=6, weights=w)
    ref = omp(A, Y, n_nonzero=6, weights=w)
    np.testing.assert_allclose(got, ref, atol=1e-10)
    assert np.all(got[[7, 40]] != 0)  # weight 0: taken first, in every signal


def test_ties_go_to_the_first_maximiser(backend):
    # Identity dictionary and a constant signal: every correlation ties at every step.
    A = np.eye(12)
    y = np.ones(12)
    got = batched(backend, A, y, n_nonzero=4)
    np.testing.assert_array_equal(np.flatnonzero(got), [0, 1, 2, 3])
    np.testing.assert_array_equal(got, omp(A, y, n_nonzero=4))
    # tied weighted scores too: |c_j| / w_j equal for columns 3 and 9
    w = np.ones(12)
    w[[3, 9]] = 0.5
    np.testing.assert_array_equal(
        np.flatnonzero(batched(backend, A, y, n_nonzero=2, weights=w)), [3, 9]
    )


def test_linear_dependence_warns_like_the_cpu(backend, rng):
    A, _, _ = _problem(rng, 20, 30, 1, 2, np.float64, unit=True)
    A[:, 1] = A[:, 0]  # duplicated column: equal correlations, then a zero pivot
    Y = np.stack([2.0 * A[:, 0] + A[:, 4], np.zeros(20), rng.standard_normal(20)], axis=1)
    with pytest.warns(RuntimeWarning, match="ended prematurely"):
        ref, n_ref = omp(A, Y, n_nonzero=3, return_n_iter=True)
    with pytest.warns(RuntimeWarning, match="ended prematurely"):
        got, n_got = batched(backend, A, Y, n_nonzero=3, return_n_iter=True)
    np.testing.assert_allclose(got, ref, atol=1e-10)
    np.testing.assert_array_equal(n_got, n_ref)
    assert n_got[0] == 2 and n_got[1] == 0
    # a zero signal alone stops at once, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not batched(backend, A, np.zeros(20), n_nonzero=3).any()


def test_near_dependent_atom_stops_at_the_pivot(backend):
    # a2 = a0 + a1 + 1e-9 e: once two of the three are in, the third still correlates with
    # the residual above the rounding threshold, but its Cholesky pivot is ~1e-18: the
    # signal stops there (PREMATURE, with the warning), on both paths.
    rng = np.random.default_rng(1)
    a0, a1, e = rng.standard_normal((3, 10))
    A = np.stack([a0, a1, a0 + a1 + 1e-9 * e], axis=1)
    y = a0 + 2 * a1 + 0.1 * rng.standard_normal(10)
    with pytest.warns(RuntimeWarning, match="ended prematurely"):
        ref, n_ref = omp(A, y, n_nonzero=3, return_n_iter=True)
    with pytest.warns(RuntimeWarning, match="ended prematurely"):
        got, n_got = batched(backend, A, y, n_nonzero=3, return_n_iter=True)
    assert n_got == n_ref == 2
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_budget_above_m_warns_like_the_cpu(backend, rng):
    A, Y, _ = _problem(rng, 10, 30, 3, 2, np.float64, noise=0.5)
    with pytest.warns(RuntimeWarning, match="ended prematurely"):
        ref, n_ref = omp(A, Y, n_nonzero=15, return_n_iter=True)
    with pytest.warns(RuntimeWarning, match="ended prematurely"):
        got, n_got = batched(backend, A, Y, n_nonzero=15, return_n_iter=True)
    np.testing.assert_array_equal(n_got, n_ref)
    assert np.all((got != 0) == (ref != 0))
    np.testing.assert_allclose(A @ got, Y, atol=1e-8)  # m atoms: an exact fit


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_return_path_matches_cpu(backend, rng, dtype):
    A, Y, _ = _problem(rng, 25, 50, 5, 3, dtype, noise=0.02)
    Y[:, 1] = 0.0
    tol = 0.05 * float(np.mean(np.abs(Y) ** 2))
    got = batched(backend, A, Y, tol=tol, return_path=True)
    ref = omp(A, Y, tol=tol, return_path=True)
    assert got.shape == ref.shape and got.dtype == dtype
    np.testing.assert_allclose(got, ref, atol=1e-10)
    one = batched(backend, A, Y[:, 0], n_nonzero=4, return_path=True, return_n_iter=True)
    ref1 = omp(A, Y[:, 0], n_nonzero=4, return_path=True, return_n_iter=True)
    np.testing.assert_allclose(one[0], ref1[0], atol=1e-10)
    assert one[1] == ref1[1] == 4


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_extreme_scales(backend, rng, scale):
    A, Y, X = _problem(rng, 30, 60, 4, 3, np.float64, unit=True)
    got = batched(backend, A * scale, Y, n_nonzero=3)
    np.testing.assert_allclose(got * scale, X, atol=1e-9)


def test_device_output_dtype_and_inputs_unchanged(device, rng):
    xp = device.xp
    A, Y, _ = _problem(rng, 20, 40, 5, 3, np.float32)
    Ad, Yd = xp.asarray(A), xp.asarray(Y)
    coef, n_iter = omp(Ad, Yd, n_nonzero=3, return_n_iter=True)
    assert isinstance(coef, xp.ndarray) and isinstance(n_iter, xp.ndarray)
    assert coef.dtype == np.float32 and coef.shape == (40, 5)
    np.testing.assert_array_equal(Ad.get(), A)
    np.testing.assert_array_equal(Yd.get(), Y)
    one, k = omp(Ad, Yd[:, 0], n_nonzero=3, return_n_iter=True)
    assert one.shape == (40,) and k == 3 and isinstance(k, int)
    # integer input computes in float64, as on the CPU
    Ai = xp.asarray(np.arange(12).reshape(3, 4) % 5)
    assert omp(Ai, xp.asarray(np.ones(3)), n_nonzero=1).dtype == np.float64


@pytest.mark.parametrize(
    "case, exc, match",
    [
        ("y_on_host", TypeError, "different devices"),
        ("A_on_host", TypeError, "different devices"),
        ("device_weights_host_A", TypeError, "weights must be a NumPy array"),
        ("negative_weights", ValueError, "non-negative"),
        ("nan_weights", ValueError, "finite"),
        ("weights_shape", ValueError, "one per column"),
        ("nan_y", ValueError, "NaN"),
        ("n_nonzero", ValueError, "n_nonzero"),
        ("loss_omp", TypeError, "CPU only"),
    ],
)
def test_bad_input_on_device(device, rng, case, exc, match):
    xp = device.xp
    A, Y, _ = _problem(rng, 10, 20, 2, 2, np.float64)
    Ad, Yd = xp.asarray(A), xp.asarray(Y)
    w = np.ones(20)
    copies = (A.copy(), Y.copy())
    calls = {
        "y_on_host": lambda: omp(Ad, Y, n_nonzero=2),
        "A_on_host": lambda: omp(A, Yd, n_nonzero=2),
        "device_weights_host_A": lambda: omp(A, Y, n_nonzero=2, weights=xp.asarray(w)),
        "negative_weights": lambda: omp(Ad, Yd, n_nonzero=2, weights=xp.asarray(-w)),
        "nan_weights": lambda: omp(Ad, Yd, n_nonzero=2, weights=xp.asarray(w * np.nan)),
        "weights_shape": lambda: omp(Ad, Yd, n_nonzero=2, weights=xp.asarray(w[:5])),
        "nan_y": lambda: omp(Ad, Yd * np.nan, n_nonzero=2),
        "n_nonzero": lambda: omp(Ad, Yd, n_nonzero=21),
        "loss_omp": lambda: loss_omp(Ad, Yd[:, 0], loss="lasso", penalty="l0", lam=0.1),
    }
    with pytest.raises(exc, match=match):
        calls[case]()
    np.testing.assert_array_equal(Ad.get(), copies[0])
    np.testing.assert_array_equal(Yd.get(), copies[1])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(2, 12),
    N=st.integers(1, 16),
    n_sig=st.integers(1, 5),
    k=st.integers(1, 16),
    seed=st.integers(0, 2**31 - 1),
    use_tol=st.booleans(),
)
def test_core_matches_cpu_on_arbitrary_shapes(m, N, n_sig, k, seed, use_tol):
    # Odd shapes on the NumPy run of the core: wide, tall, one column, budgets above m.
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, N)) * rng.uniform(0.1, 10, N)
    A[:, rng.random(N) < 0.1] = 0.0  # zero columns are never selected
    Y = rng.standard_normal((m, n_sig))
    k = min(k, N)
    kw = {"tol": 0.1 * m} if use_tol else {"n_nonzero": k}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref, n_ref = omp(A, Y, return_n_iter=True, **kw)
        w = check_weights(None, N, np.dtype(np.float64))
        n_eff = min(m, N) if use_tol else k
        got, n_got = omp_device(
            A, Y, w, n_nonzero=n_eff, tol=kw.get("tol"), return_path=False, return_n_iter=True
        )
    np.testing.assert_array_equal(n_got, n_ref)
    np.testing.assert_allclose(got, ref, atol=1e-8 * (1 + np.abs(ref).max()))
