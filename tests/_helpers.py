"""Shared test helpers: the array backends, tolerances and the checks every SVD test makes.

The ``backend`` fixture (tests/conftest.py) runs the same test on NumPy, on the NumPy-backed
CuPy stand-in of tests/fake_gpu (restricted to the API real CuPy has, with device sparse
matrices, LinearOperators and svds), and on real CuPy when a GPU is present.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from sparselin import _array

FAKE_GPU = Path(__file__).resolve().parent / "fake_gpu"


def tolerance(dtype: Any) -> float:
    """A loose relative tolerance for comparing results computed in ``dtype``."""
    return 2e-3 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-8


def relative_error(A: np.ndarray, U: np.ndarray, s: np.ndarray, Vt: np.ndarray) -> float:
    """``||A - U diag(s) Vt||_F / ||A||_F`` in float64 (0 for a zero A)."""
    A = np.asarray(A.toarray() if sp.issparse(A) else A)
    scale = np.abs(A).max() if A.size else 0.0
    if scale == 0.0:
        return 0.0
    # Scaled to max |A| = 1 first, so that 1e+-150 entries neither overflow nor vanish.
    R = A.astype(np.complex128 if A.dtype.kind == "c" else np.float64) / scale
    R = R - (U.astype(R.dtype) * (s.astype(np.float64) / scale)) @ Vt.astype(R.dtype)
    return float(np.linalg.norm(R) / np.linalg.norm(A.astype(R.dtype) / scale))


def orthonormality_error(Q: np.ndarray) -> float:
    """``max |Q^H Q - I|`` of a matrix with orthonormal columns."""
    Q = Q.astype(np.complex128 if Q.dtype.kind == "c" else np.float64)
    return float(np.abs(Q.conj().T @ Q - np.eye(Q.shape[1])).max()) if Q.shape[1] else 0.0


class Backend:
    """One array library: moves host test data onto it and results back."""

    def __init__(self, name: str, xp: Any) -> None:
        self.name = name
        self.xp = xp

    def __repr__(self) -> str:
        return f"Backend({self.name})"

    @property
    def on_device(self) -> bool:
        return self.xp is not np

    def asarray(self, a: Any) -> Any:
        """Host data (dense, sparse or LinearOperator) placed on this backend."""
        if not self.on_device:
            return a
        if sp.issparse(a):
            csp = importlib.import_module("cupyx.scipy.sparse")
            fmt = a.format if a.format in ("csr", "csc", "coo") else "csr"
            return getattr(csp, f"{fmt}_matrix")(a.asformat(fmt))
        if isinstance(a, spla.LinearOperator):
            raise TypeError("build device operators with Backend.operator")
        return self.xp.asarray(a)

    def operator(self, A: np.ndarray) -> Any:
        """A LinearOperator with matmat/rmatmat over the dense host ``A``, on this backend."""
        if not self.on_device:
            return spla.aslinearoperator(A)
        cspla = importlib.import_module("cupyx.scipy.sparse.linalg")
        return cspla.aslinearoperator(self.xp.asarray(A))

    def to_host(self, x: Any) -> Any:
        return _array.to_numpy(x)


def _purge_cupy_modules() -> None:
    for name in [
        m for m in sys.modules if m in ("cupy", "cupyx") or m.startswith(("cupy.", "cupyx."))
    ]:
        del sys.modules[name]


@contextlib.contextmanager
def fake_cupy() -> Iterator[Any]:
    """Make ``import cupy`` give the stand-in for the duration (only where real CuPy is absent)."""
    saved_path = list(sys.path)
    sys.path.insert(0, str(FAKE_GPU))
    _purge_cupy_modules()
    _array.cupy_or_none.cache_clear()
    try:
        cp = importlib.import_module("cupy")
        assert cp.__version__ == "0.0-fake", cp.__file__
        yield cp
    finally:
        sys.path[:] = saved_path
        _purge_cupy_modules()
        _array.cupy_or_none.cache_clear()


def real_cupy_present() -> bool:
    cp = _array.cupy_or_none()
    return cp is not None and getattr(cp, "__version__", "") != "0.0-fake"
