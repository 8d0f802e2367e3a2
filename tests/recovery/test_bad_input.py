"""Bad input to the recovery family, as a table: the error and that inputs are unchanged."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp

from sparselin.estimators._linear_model import LADLasso, OMPRegressor, SqrtLasso, WeightedLasso
from sparselin.recovery import (
    lad_lasso,
    lam_max,
    loss_omp,
    omp,
    sqrt_lasso,
    weighted_lasso,
    weighted_lasso_path,
)

rng = np.random.default_rng(0)
A = rng.standard_normal((20, 30))
y = rng.standard_normal(20)
Y = rng.standard_normal((20, 4))
A_nan = A.copy()
A_nan[2, 3] = np.nan
y_nan = y.copy()
y_nan[5] = np.nan
y_inf = y.copy()
y_inf[0] = np.inf
w_neg = np.ones(30)
w_neg[4] = -1.0
Ac = A + 1j * rng.standard_normal((20, 30))
# float32 problem with a finite float64 weight beyond float32's range (inf after the cast):
# the error must say the weight is too large for the precision, not that it is not finite
A32 = A.astype(np.float32)
y32 = y.astype(np.float32)
w_big = np.ones(30)
w_big[4] = 1e39
BIG = "weights must fit the float32 precision of A and y: the largest weight is 1e\\+39"

OMP_CASES = [
    ((A, y[:19]), {}, ValueError, "as many rows as A"),
    ((A, y[:, None, None]), {}, ValueError, "y must be 1-D"),
    ((A_nan, y), {}, ValueError, "A contains NaN"),
    ((A, y_nan), {}, ValueError, "y contains NaN"),
    ((A, y_inf), {}, ValueError, "y contains NaN"),
    ((A, y), {"n_nonzero": 31}, ValueError, "n_nonzero must be in"),
    ((A, y), {"n_nonzero": 0}, ValueError, "n_nonzero must be in"),
    ((A, y), {"n_nonzero": 2.5}, TypeError, "n_nonzero must be an integer"),
    ((A, y), {"tol": -1.0}, ValueError, "tol must be"),
    ((A, y), {"tol": float("nan")}, ValueError, "tol must be"),
    ((A, y), {"weights": w_neg}, ValueError, "weights must be non-negative"),
    ((A, y), {"weights": np.ones(29)}, ValueError, "weights must have shape"),
    ((A, y), {"weights": np.ones(30) * 1j}, TypeError, "weights must be real"),
    ((A, y), {"weights": np.full(30, np.nan)}, ValueError, "weights must be finite"),
    ((A32, y32), {"weights": w_big}, ValueError, BIG),
    ((A, y), {"return_path": "yes"}, TypeError, "return_path must be a bool"),
    ((sp.csr_matrix(A), y), {}, TypeError, "A must be a dense NumPy or CuPy array"),
    ((A[0], y), {}, ValueError, "A must be 2-D"),
    ((A, np.array(["a"] * 20)), {}, TypeError, "y must hold numbers"),
]


def _snapshot(objs):
    return [copy.deepcopy(o) for o in objs]


def _assert_same(before, after):
    for b, a in zip(before, after, strict=True):
        if isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), OMP_CASES)
def test_omp_bad_input(args, kwargs, error, match):
    before = _snapshot(args)
    with pytest.raises(error, match=match):
        omp(*args, **kwargs)
    _assert_same(before, args)


GOOD = {"loss": "lasso", "penalty": "l1", "lam": 0.1}
LOSS_OMP_CASES = [
    ((A, y), {**GOOD, "loss": "huber"}, ValueError, "loss must be one of"),
    ((A, y), {**GOOD, "penalty": "l2"}, ValueError, "penalty must be one of"),
    ((A, y), {**GOOD, "lam": -0.1}, ValueError, "lam must be"),
    ((A, y), {**GOOD, "lam": "big"}, TypeError, "lam must be a real number"),
    ((A, y), {**GOOD, "weights": w_neg}, ValueError, "weights must be non-negative"),
    ((A32, y32), {**GOOD, "weights": w_big}, ValueError, BIG),
    ((A, y), {**GOOD, "n_nonzero": 31}, ValueError, "n_nonzero must be in"),
    ((A, Y), GOOD, ValueError, "y must be 1-D"),
    ((A, y[:5]), GOOD, ValueError, "as many rows"),
    ((A_nan, y), GOOD, ValueError, "A contains NaN"),
    ((A, y_nan), GOOD, ValueError, "y contains NaN"),
    ((Ac, y), {**GOOD, "loss": "lad_lasso"}, TypeError, "needs real A and y"),
    ((A, y), {**GOOD, "tol": -1}, ValueError, "tol must be"),
]


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), LOSS_OMP_CASES)
def test_loss_omp_bad_input(args, kwargs, error, match):
    before = _snapshot(args)
    with pytest.raises(error, match=match):
        loss_omp(*args, **kwargs)
    _assert_same(before, args)


CONVEX_CASES = [
    ((A, y, -1.0), {}, ValueError, "lam must be"),
    ((A, y, float("nan")), {}, ValueError, "lam must be"),
    ((A, y, 1.0), {"weights": w_neg}, ValueError, "weights must be non-negative"),
    ((A, y, 1.0), {"weights": np.full(30, np.inf)}, ValueError, "weights must be finite"),
    ((A32, y32, 1.0), {"weights": w_big}, ValueError, BIG),
    ((A, y[:3], 1.0), {}, ValueError, "as many rows"),
    ((A, Y, 1.0), {}, ValueError, "y must be 1-D"),
    ((A_nan, y, 1.0), {}, ValueError, "A contains NaN"),
    ((A, y_nan, 1.0), {}, ValueError, "y contains NaN"),
    ((Ac, y, 1.0), {}, TypeError, "needs real A and y"),
    ((A, y, 1.0), {"tol": 0.0}, ValueError, "tol must be"),
    ((A, y, 1.0), {"max_iter": 0}, ValueError, "max_iter must be in"),
    ((A, y, 1.0), {"coef_init": np.ones(3)}, ValueError, "coef_init must have shape"),
    ((A, y, 1.0), {"coef_init": np.full(30, np.nan)}, ValueError, "coef_init must hold"),
]


@pytest.mark.parametrize("solver", [weighted_lasso, sqrt_lasso, lad_lasso])
@pytest.mark.parametrize(("args", "kwargs", "error", "match"), CONVEX_CASES)
def test_convex_bad_input(solver, args, kwargs, error, match):
    before = _snapshot(args)
    with pytest.raises(error, match=match):
        solver(*args, **kwargs)
    _assert_same(before, args)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: lam_max(A, y, "huber"), ValueError, "loss must be one of"),
        (lambda: weighted_lasso_path(A, y, [-1.0]), ValueError, "lams must be finite"),
        (lambda: weighted_lasso_path(A, y, []), ValueError, "lams must be a non-empty"),
        (lambda: weighted_lasso_path(A, y, n_lams=0), ValueError, "n_lams must be in"),
        (lambda: weighted_lasso_path(A, y, eps=2.0), ValueError, "eps must be"),
    ],
)
def test_path_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("estimator", "error", "match"),
    [
        (WeightedLasso(alpha=-1.0), ValueError, "alpha"),
        (WeightedLasso(weights=np.ones(3)), ValueError, "weights must have shape"),
        (SqrtLasso(weights=w_neg), ValueError, "weights must be non-negative"),
        (LADLasso(tol=0.0), ValueError, "tol"),
        (OMPRegressor(n_nonzero_coefs=31), ValueError, "n_nonzero_coefs must be at most"),
        (OMPRegressor(loss="huber"), ValueError, "loss"),
        (OMPRegressor(lam=-1.0), ValueError, "lam"),
    ],
)
def test_estimator_bad_input(estimator, error, match):
    before = A.copy()
    with pytest.raises(error, match=match):
        estimator.fit(A, y)
    np.testing.assert_array_equal(A, before)
