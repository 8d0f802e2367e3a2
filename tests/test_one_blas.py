"""The SVD hot paths call NumPy's BLAS only; SciPy's runs solely where it cannot be avoided.

NumPy and SciPy wheels each bundle an OpenBLAS whose idle workers busy-wait, so a SciPy
BLAS/LAPACK call between NumPy's products makes the two pools fight for the cores (see
sparselin/_threads.py). These tests need no timing: they watch, with a profile hook, every
Python-level call into ``scipy.linalg`` and ``scipy.sparse.linalg`` (every route to SciPy's
LAPACK, BLAS or ARPACK goes through one of those wrappers) while the randomized, block Krylov,
fixed-accuracy and update paths run, on each dtype and input kind, and fail on any such call.
Where SciPy is the only option (ARPACK behind ``method="lanczos"``, the LU normaliser) the
calls must happen inside :func:`sparselin._threads.scipy_blas_limited`. A static scan catches
the routes a profile hook cannot see: Fortran handles taken from ``scipy.linalg.blas`` or
``lapack`` at import time, and BLAS-backed operations inside Numba kernels (Numba links them
to SciPy's ``cython_blas``).
"""

from __future__ import annotations

import ast
import contextlib
import os
import pathlib
import sys
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import scipy
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.linalg import aslinearoperator

import sparselin
from sparselin import _threads
from sparselin.datasets import make_low_rank_matrix

_SCIPY_ROOT = os.path.dirname(os.path.realpath(scipy.__file__))
_WATCHED = (
    os.path.join(_SCIPY_ROOT, "linalg") + os.sep,
    os.path.join(_SCIPY_ROOT, "sparse", "linalg") + os.sep,
)
# LinearOperator plumbing and the sparse norm run no BLAS of SciPy's: the first calls back
# into the operand (NumPy's products for a wrapped array), the second sums sparse entries.
_UNWATCHED = {"_interface.py", "_norm.py", "__init__.py"}
_PACKAGE = pathlib.Path(sparselin.__file__).parent


def _watched(filename: str) -> bool:
    return filename.startswith(_WATCHED) and os.path.basename(filename) not in _UNWATCHED


class _Calls:
    """SciPy linalg functions entered, split by whether SciPy's pool was limited."""

    def __init__(self) -> None:
        self.outside: list[str] = []
        self.inside: list[str] = []

    def record(self, name: str) -> None:
        (self.inside if _threads._DEPTH > 0 else self.outside).append(name)


@contextlib.contextmanager
def watch_scipy_linalg() -> Iterator[_Calls]:
    calls = _Calls()

    def hook(frame, event, arg):
        if event == "call":
            filename = os.path.realpath(frame.f_code.co_filename)
            if _watched(filename):
                calls.record(f"{os.path.relpath(filename, _SCIPY_ROOT)}:{frame.f_code.co_name}")
        elif event == "c_call":
            module = getattr(arg, "__module__", None) or ""
            if module.startswith(("scipy.linalg", "scipy.sparse.linalg")):
                calls.record(f"{module}.{getattr(arg, '__name__', '?')}")

    old = sys.getprofile()
    sys.setprofile(hook)
    threading.setprofile(hook)
    try:
        yield calls
    finally:
        sys.setprofile(old)
        threading.setprofile(None)


def _run_twice(f) -> _Calls:
    # The first run compiles or loads Numba kernels and fills caches; the second is watched.
    f()
    with watch_scipy_linalg() as calls:
        f()
    return calls


def _matrix(dtype, kind: str, m: int = 60, n: int = 40, rank: int | None = None):
    A = make_low_rank_matrix(m, n, decay=0.8, dtype=dtype, random_state=0)
    if rank is not None:  # exactly rank-deficient: the orthonormalisation's Householder path
        U, s, Vt = np.linalg.svd(A, full_matrices=False)
        A = ((U[:, :rank] * s[:rank]) @ Vt[:rank]).astype(dtype)
    if kind == "dense":
        return A
    if kind in ("csr", "csc"):
        A = A * (np.abs(A) > np.quantile(np.abs(A), 0.5))  # half the entries zero
        return sp.csr_matrix(A) if kind == "csr" else sp.csc_matrix(A)
    return aslinearoperator(A)


DTYPES = [np.float32, np.float64, np.complex128]
KINDS = ["dense", "csr", "csc", "operator"]


def test_the_watch_sees_scipy_calls():
    """The test below would fail: SciPy's wrappers are caught, inside and outside the limit."""
    R = np.triu(np.ones((3, 3)))
    with watch_scipy_linalg() as calls:
        scipy.linalg.solve_triangular(R, np.eye(3))
        with _threads.scipy_blas_limited():
            scipy.linalg.lu(R)
    assert any("solve_triangular" in c for c in calls.outside)
    assert any("lu" in c for c in calls.inside)
    assert not any("lu" in c for c in calls.outside)


@pytest.mark.parametrize("method", ["randomized", "block_krylov"])
@pytest.mark.parametrize("mode", ["rank", "tol"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_truncated_svd_calls_no_scipy_blas(method, mode, dtype, kind):
    A = _matrix(dtype, kind)
    args = {"k": 5} if mode == "rank" else {"tol": 0.3}
    calls = _run_twice(lambda: sparselin.truncated_svd(A, random_state=0, method=method, **args))
    assert calls.outside == [] and calls.inside == []


@pytest.mark.parametrize("normalizer", ["QR", "none", "LU"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_power_iteration_normalizers(normalizer, dtype):
    """QR and none call no SciPy; LU (which NumPy lacks) calls it inside the limit only."""
    A = _matrix(dtype, "dense")
    calls = _run_twice(
        lambda: sparselin.truncated_svd(
            A, 5, n_iter=3, power_iteration_normalizer=normalizer, random_state=0
        )
    )
    assert calls.outside == []
    if normalizer == "LU":
        assert any("lu" in c for c in calls.inside)
    else:
        assert calls.inside == []


@pytest.mark.parametrize("method", ["randomized", "block_krylov"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rank_deficient_input_householder_path(method, dtype, monkeypatch):
    """k above the rank sends the orthonormalisation to Householder QR: NumPy's, not SciPy's."""
    A = _matrix(dtype, "dense", rank=3)
    qr_calls = []
    numpy_qr = np.linalg.qr

    def counting_qr(*args, **kwargs):
        qr_calls.append(1)
        return numpy_qr(*args, **kwargs)

    monkeypatch.setattr(np.linalg, "qr", counting_qr)
    for args in ({"k": 6}, {"tol": 1e-3}):
        calls = _run_twice(
            lambda args=args: sparselin.truncated_svd(A, method=method, random_state=0, **args)
        )
        assert calls.outside == [] and calls.inside == []
    assert qr_calls, "the Householder fallback was not exercised"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["dense", "csr", "csc"])
def test_svd_update_calls_no_scipy_blas(dtype, kind):
    A = make_low_rank_matrix(50, 30, decay=0.8, dtype=dtype, random_state=1)
    U, s, Vt = np.linalg.svd(A[:, :20], full_matrices=False)
    C = A[:, 20:]
    # Zero and in-span columns take the update's rank-deficient branches.
    C = np.concatenate([C, np.zeros((50, 1), dtype), U[:, :2] @ np.ones((2, 1), dtype)], axis=1)
    C_in = C if kind == "dense" else (sp.csr_matrix(C) if kind == "csr" else sp.csc_matrix(C))
    rows = make_low_rank_matrix(6, 20, decay=0.8, dtype=dtype, random_state=2)
    for call in (
        lambda: sparselin.svd_update(U, s, Vt, C_in, k=12),
        lambda: sparselin.svd_update(U, s, Vt, C_in, reorthogonalize_first=True),
        lambda: sparselin.svd_update(U, s, Vt, rows, axis=0, k=10),
    ):
        calls = _run_twice(call)
        assert calls.outside == [] and calls.inside == []


def test_estimators_call_no_scipy_blas():
    X = make_low_rank_matrix(80, 30, decay=0.8, random_state=2)
    Xs = sp.csr_matrix(X * (np.abs(X) > np.quantile(np.abs(X), 0.5)))
    for data in (X, Xs):
        calls = _run_twice(
            lambda data=data: sparselin.TruncatedSVD(5, random_state=0).fit_transform(data)
        )
        assert calls.outside == [] and calls.inside == []

        def stream(data=data):
            est = sparselin.IncrementalSVD(5, random_state=0)
            for i in range(0, 80, 20):
                est.partial_fit(data[i : i + 20])

        calls = _run_twice(stream)
        assert calls.outside == [] and calls.inside == []


@pytest.mark.parametrize("loss", ["lasso", "sqrt_lasso", "lad_lasso"])
def test_recovery_solvers_call_no_scipy_blas(loss):
    # The convex solvers' support solves and the LAD simplex's basis inverses run in
    # NumPy's LAPACK (they once called SciPy's cho_factor / lu_factor in their loops).
    from sparselin.recovery import lam_max

    rng = np.random.default_rng(3)
    A = rng.standard_normal((40, 120))
    x = np.zeros(120)
    x[[3, 50, 99]] = [1.0, -2.0, 0.5]
    y = A @ x + 0.01 * rng.standard_normal(40)
    solve = {
        "lasso": sparselin.weighted_lasso,
        "sqrt_lasso": sparselin.sqrt_lasso,
        "lad_lasso": sparselin.lad_lasso,
    }[loss]
    lam = 0.05 * lam_max(A, y, loss)
    calls = _run_twice(lambda: solve(A, y, lam))
    assert calls.outside == [] and calls.inside == []
    calls = _run_twice(lambda: sparselin.omp(A, np.c_[y, 2 * y], n_nonzero=3))
    assert calls.outside == [] and calls.inside == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lanczos_runs_arpack_inside_the_limit(dtype):
    A = _matrix(dtype, "dense")
    calls = _run_twice(lambda: sparselin.truncated_svd(A, 5, method="lanczos", random_state=0))
    assert calls.outside == []
    assert any("svds" in c for c in calls.inside)


def test_scipy_pool_is_limited_inside_and_restored():
    before = _threads.scipy_pool_threads()
    with _threads.scipy_blas_limited():
        assert all(n == 1 for n in _threads.scipy_pool_threads())
        with _threads.scipy_blas_limited():  # nesting keeps the limit
            assert all(n == 1 for n in _threads.scipy_pool_threads())
        assert all(n == 1 for n in _threads.scipy_pool_threads())
    assert _threads.scipy_pool_threads() == before
    with pytest.raises(RuntimeError), _threads.scipy_blas_limited():
        raise RuntimeError("restored on error too")
    assert _threads.scipy_pool_threads() == before and _threads._DEPTH == 0


def test_only_scipys_own_pool_is_selected():
    from threadpoolctl import threadpool_info

    pools = _threads._scipy_pools()
    for lc in pools:
        assert _threads.library_owner(lc.filepath) == "scipy"
    numpy_libs = [d for d in threadpool_info() if _threads.library_owner(d["filepath"]) == "numpy"]
    assert not {lc.filepath for lc in pools} & {d["filepath"] for d in numpy_libs}


# Names that hand out SciPy's Fortran routines directly, past any Python wrapper.
_FORTRAN_HANDLES = {
    "get_blas_funcs",
    "get_lapack_funcs",
    "_flapack",
    "_fblas",
    "cython_blas",
    "cython_lapack",
}
_NUMBA_BLAS = {"dot", "vdot", "matmul", "inner", "linalg", "kron"}


def _sources() -> list[pathlib.Path]:
    """The SVD core: the linalg family, its estimators, and the package shell under them."""
    paths = [*_PACKAGE.glob("_*.py"), *(_PACKAGE / "linalg").glob("*.py")]
    paths += [_PACKAGE / "estimators" / f for f in ("_truncated_svd.py", "_incremental_svd.py")]
    return sorted(paths)


def _scan(source: str, name: str) -> list[str]:
    """SciPy Fortran handles anywhere, and BLAS-backed operations inside Numba kernels."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {a.name for a in node.names}
            if node.module.startswith(("scipy.linalg.blas", "scipy.linalg.lapack")) or (
                names & _FORTRAN_HANDLES
            ):
                problems.append(f"{name}:{node.lineno} imports {node.module}")
        elif isinstance(node, ast.Attribute) and node.attr in _FORTRAN_HANDLES:
            problems.append(f"{name}:{node.lineno} uses {node.attr}")
        elif isinstance(node, ast.FunctionDef) and any(
            "jit" in ast.unparse(d) for d in node.decorator_list
        ):
            for inner in ast.walk(node):
                if isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.MatMult):
                    problems.append(f"{name}:{inner.lineno} '@' in kernel {node.name}")
                if isinstance(inner, ast.Attribute) and inner.attr in _NUMBA_BLAS:
                    problems.append(f"{name}:{inner.lineno} {inner.attr} in {node.name}")
    return problems


@pytest.mark.parametrize(
    "bad",
    [
        "from scipy.linalg.blas import dgemm",
        "from scipy.linalg import get_lapack_funcs",
        "import scipy.linalg\ngemm = scipy.linalg.blas.get_blas_funcs('gemm')",
        "@jit\ndef k(a, b):\n    return np.dot(a, b)",
        "@numba.njit(cache=True)\ndef k(a, b):\n    return a @ b",
        "@jit\ndef k(a):\n    return np.linalg.qr(a)",
    ],
)
def test_the_scan_sees_hidden_routes(bad):
    assert _scan(bad, "bad.py")


def test_no_fortran_handles_or_blas_in_numba_kernels():
    """What a profile hook cannot see: SciPy's Fortran objects and BLAS inside Numba kernels."""
    problems = []
    for path in _sources():
        problems += _scan(path.read_text(), str(path.relative_to(_PACKAGE)))
    assert problems == []


def test_scipy_linalg_is_imported_only_where_unavoidable():
    """No module of the SVD core imports scipy.linalg (the LU normaliser and ARPACK reach it
    through sparselin._array's namespace, behind the limit checked above)."""
    offenders = []
    for path in _sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(m == "scipy.linalg" or m.startswith("scipy.linalg.") for m in mods):
                offenders.append(f"{path.relative_to(_PACKAGE)}:{node.lineno}")
    # _threads and _info import it to load SciPy's BLAS before looking for it; neither calls it.
    assert [o for o in offenders if not o.startswith(("_threads.py:", "_info.py:"))] == []


def _fork_join_loops(source: str, name: str) -> list[str]:
    """Numba ``parallel=True`` kernels and ``prange`` loops."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "parallel":
            if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                problems.append(f"{name}:{node.value.lineno} parallel=")
        elif isinstance(node, ast.Attribute) and node.attr == "prange":
            problems.append(f"{name}:{node.lineno} prange")
        elif isinstance(node, ast.Name) and node.id == "prange":
            problems.append(f"{name}:{node.lineno} prange")
        elif isinstance(node, ast.alias) and node.name == "prange":
            problems.append(f"{name} imports prange")
    return problems


@pytest.mark.parametrize(
    "bad",
    [
        "@numba.njit(parallel=True)\ndef k(a):\n    pass",
        "@jit\ndef k(a):\n    for i in numba.prange(3):\n        pass",
        "from numba import prange",
    ],
)
def test_the_scan_sees_fork_join_loops(bad):
    assert _fork_join_loops(bad, "bad.py")


def test_no_openmp_pool_anywhere():
    """Parallel kernels run on sparselin._pool, never as Numba fork-join loops: Numba's OpenMP
    workers spin for milliseconds after each parallel region and took the second core from
    the BLAS products around them (batch OMP on 2 cores: 40-75 ms per call against 30 ms)."""
    problems = []
    for path in sorted(_PACKAGE.rglob("*.py")):
        problems += _fork_join_loops(path.read_text(), str(path.relative_to(_PACKAGE)))
    assert problems == []
