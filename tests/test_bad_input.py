"""Bad input, as a table: each public function, each bad argument, the error it must raise.

Every case also checks that the arguments are unchanged afterwards.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp

from sparselin import IncrementalSVD, TruncatedSVD, svd_update, truncated_svd

rng = np.random.default_rng(0)
A = rng.standard_normal((20, 12))
A_nan = A.copy()
A_nan[3, 4] = np.nan
A_inf = A.copy()
A_inf[0, 0] = np.inf
# Large float64/complex128 input takes the path that checks for NaN/inf while copying to
# float32 for the sketch (over 2**20 entries).
A_big_nan = rng.standard_normal((1100, 1000))
A_big_nan[1099, 999] = np.nan
A_big_inf = rng.standard_normal((1100, 1000)) + 0j
A_big_inf[0, 5] = complex(1.0, -np.inf)
U0, s0, Vt0 = np.linalg.svd(A, full_matrices=False)
U0, s0, Vt0 = U0[:, :4], s0[:4], Vt0[:4]

TRUNCATED_SVD_CASES = [
    # (args, kwargs, error, message fragment)
    ((A_nan, 3), {}, ValueError, "NaN or infinity"),
    ((A_inf, 3), {}, ValueError, "NaN or infinity"),
    ((sp.csr_matrix(A_nan), 3), {}, ValueError, "NaN or infinity"),
    ((A_big_nan, 3), {}, ValueError, "NaN or infinity"),
    ((A_big_inf, 3), {}, ValueError, "NaN or infinity"),
    ((A, 0), {}, ValueError, "k must be in"),
    ((A, -2), {}, ValueError, "k must be in"),
    ((A, 13), {}, ValueError, "k must be in"),
    ((A, 2.5), {}, TypeError, "k must be an integer"),
    ((A,), {}, ValueError, "give the rank k"),
    ((A,), {"tol": 0.0}, ValueError, "tol must be"),
    ((A,), {"tol": 1.0}, ValueError, "tol must be"),
    ((A,), {"tol": -0.1}, ValueError, "tol must be"),
    ((A,), {"tol": float("nan")}, ValueError, "tol must be"),
    ((A, 3), {"method": "qr"}, ValueError, "method must be one of"),
    ((A,), {"tol": 0.1, "method": "lanczos"}, ValueError, "needs method"),
    ((A, 3), {"n_iter": -1}, ValueError, "n_iter must be in"),
    ((A, 3), {"n_iter": "many"}, ValueError, "n_iter must be"),
    ((A, 3), {"n_oversamples": -1}, ValueError, "n_oversamples must be in"),
    ((A, 3), {"power_iteration_normalizer": "SVD"}, ValueError, "power_iteration_normalizer"),
    ((A, 3), {"random_state": "seed"}, TypeError, "random_state"),
    ((A, 3), {"sketch_dtype": np.complex64}, ValueError, "sketch_dtype"),
    ((A, 3), {"sketch_dtype": "half"}, ValueError, "sketch_dtype"),
    ((A,), {"tol": 0.1, "sketch_dtype": np.int8}, ValueError, "sketch_dtype"),
    ((A, 3), {"solver_tol": -1.0}, ValueError, "solver_tol"),
    ((A, 3), {"return_error": "yes"}, TypeError, "return_error"),
    ((A[0], 1), {}, ValueError, "must be 2-D"),
    ((A[None], 1), {}, ValueError, "must be 2-D"),
    ((np.empty((0, 5)), 1), {}, ValueError, "non-empty"),
    ((np.array([["a", "b"], ["c", "d"]]), 1), {}, TypeError, "must hold numbers"),
    (("not a matrix", 1), {}, TypeError, "must be a NumPy or CuPy array"),
]


def _snapshot(objs):
    return [copy.deepcopy(o) for o in objs]


def _assert_same(before, after):
    for b, a in zip(before, after, strict=True):
        if isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b)
        elif sp.issparse(b):
            np.testing.assert_array_equal(a.toarray(), b.toarray())


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), TRUNCATED_SVD_CASES)
def test_truncated_svd_bad_input(args, kwargs, error, match):
    before = _snapshot(args)
    with pytest.raises(error, match=match):
        truncated_svd(*args, **kwargs)
    _assert_same(before, args)


C_ok = rng.standard_normal((20, 3))
C_nan = C_ok.copy()
C_nan[1, 1] = np.nan

SVD_UPDATE_CASES = [
    ((U0, s0, Vt0, rng.standard_normal((19, 3))), {}, ValueError, "C must have 20 rows"),
    ((U0, s0, Vt0, rng.standard_normal((3, 11))), {"axis": 0}, ValueError, "12 columns"),
    ((U0, s0, Vt0, C_nan), {}, ValueError, "C contains NaN"),
    ((U0, s0, Vt0, np.empty((20, 0))), {}, ValueError, "C must be non-empty"),
    ((U0, s0, Vt0, C_ok), {"axis": 2}, ValueError, "axis must be 0"),
    ((U0, s0, Vt0, C_ok), {"k": 0}, ValueError, "k must be in"),
    ((U0, s0[:3], Vt0, C_ok), {}, ValueError, "shapes"),
    ((U0, s0, Vt0[:, :, None], C_ok), {}, ValueError, "ndim"),
    ((U0, s0, Vt0, C_ok[None]), {}, ValueError, "C must be 1-D or 2-D"),
    ((U0, s0 + 1j, Vt0, C_ok), {}, TypeError, "s must be real"),
    ((U0 * np.nan, s0, Vt0, C_ok), {}, ValueError, "U contains NaN"),
]


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), SVD_UPDATE_CASES)
def test_svd_update_bad_input(args, kwargs, error, match):
    before = _snapshot(args)
    with pytest.raises(error, match=match):
        svd_update(*args, **kwargs)
    _assert_same(before, args)


ESTIMATOR_CASES = [
    (TruncatedSVD(n_components=13), A, ValueError, "n_components"),
    (TruncatedSVD(n_components=1.5), A, ValueError, "n_components"),
    (TruncatedSVD(n_components=0.5, algorithm="arpack"), A, ValueError, "fixed accuracy"),
    (TruncatedSVD(algorithm="qr"), A, ValueError, "algorithm"),
    (TruncatedSVD(), A_nan, ValueError, "NaN"),
    (IncrementalSVD(n_components=13), A, ValueError, "n_components"),
    (IncrementalSVD(n_components=0), A, ValueError, "n_components"),
    (IncrementalSVD(), A_inf, ValueError, "infinity"),
]


@pytest.mark.parametrize(("estimator", "X", "error", "match"), ESTIMATOR_CASES)
def test_estimator_bad_input(estimator, X, error, match):
    before = X.copy()
    with pytest.raises(error, match=match):
        estimator.fit(X)
    np.testing.assert_array_equal(X, before)


def test_large_finite_values_whose_squares_overflow_are_accepted():
    # The one-pass NaN check reads an infinite norm; the entries are still all finite.
    B = np.random.default_rng(1).standard_normal((1100, 1000))
    B[0, 0] = 1e300
    U, s, Vt = truncated_svd(B, 2, random_state=0)
    assert np.isfinite(s).all() and s[0] > 9.9e299
