"""Fake cupyx.scipy.sparse.linalg: ``LinearOperator``, ``aslinearoperator`` and ``svds``.

``svds`` keeps cupyx's signature (no ``v0``, keyword-only options) and computes with SciPy's
ARPACK on the host copy: the numbers differ from cupyx's thick-restart Lanczos, but every
sparselin code path around the call (arguments, outputs on the device, failure handling)
runs as it would on a GPU.
"""

from __future__ import annotations

import numpy as _np
import scipy.sparse.linalg as _spla
from cupy import _require, _unwrap, ndarray

from . import spmatrix


class LinearOperator:
    """cupyx's LinearOperator interface: matvec/rmatvec/matmat/rmatmat on device arrays."""

    def __init__(self, shape, matvec, rmatvec=None, matmat=None, dtype=None, rmatmat=None):
        self.shape = tuple(shape)
        self.dtype = _np.dtype(dtype) if dtype is not None else _np.dtype(_np.float64)
        self.ndim = 2
        self._matvec, self._rmatvec = matvec, rmatvec
        self._matmat, self._rmatmat = matmat, rmatmat

    def _check(self, x):
        if not isinstance(x, ndarray):
            raise TypeError(f"fake cupyx LinearOperator: got a host {type(x).__name__}")
        return x

    def matvec(self, x):
        return self._matvec(self._check(x))

    def rmatvec(self, x):
        if self._rmatvec is None:
            raise NotImplementedError("rmatvec is not defined")
        return self._rmatvec(self._check(x))

    def matmat(self, X):
        if self._matmat is not None:
            return self._matmat(self._check(X))
        return _stack([self._matvec(X[:, j]) for j in range(X.shape[1])])

    def rmatmat(self, X):
        if self._rmatmat is not None:
            return self._rmatmat(self._check(X))
        if self._rmatvec is None:
            raise NotImplementedError("rmatvec is not defined")
        return _stack([self._rmatvec(X[:, j]) for j in range(X.shape[1])])

    def dot(self, x):
        return self.matvec(x) if x.ndim == 1 else self.matmat(x)

    __matmul__ = dot


def _stack(cols):
    import cupy

    return cupy.stack(cols, axis=1)


def aslinearoperator(A):
    if isinstance(A, LinearOperator):
        return A
    H = A.conj().T if A.dtype.kind == "c" else A.T
    return LinearOperator(
        A.shape,
        matvec=lambda x: A @ x,
        rmatvec=lambda x: H @ x,
        matmat=lambda X: A @ X,
        rmatmat=lambda X: H @ X,
        dtype=A.dtype,
    )


def svds(a, k=6, *, ncv=None, tol=0, which="LM", maxiter=None, return_singular_vectors=True):
    import cupy

    if isinstance(a, spmatrix):
        host = a.get()
    elif isinstance(a, ndarray):
        host = a.get()
    elif isinstance(a, LinearOperator):
        host = _spla.LinearOperator(
            a.shape,
            matvec=lambda x: a.matvec(cupy.asarray(x)).get(),
            rmatvec=lambda x: a.rmatvec(cupy.asarray(x)).get(),
            dtype=a.dtype,
        )
    else:
        raise TypeError(f"fake cupyx svds: unsupported input {type(a).__name__}")
    if _np.dtype(a.dtype).kind == "c":
        # cupyx's svds handles real input only.
        raise NotImplementedError("fake cupyx svds: complex input is not supported")
    out = _spla.svds(
        host,
        k=k,
        ncv=ncv,
        tol=tol,
        which=which,
        maxiter=maxiter,
        return_singular_vectors=return_singular_vectors,
        random_state=0,
    )
    if return_singular_vectors:
        return tuple(cupy.asarray(x) for x in out)
    return cupy.asarray(out)


def __getattr__(attr):
    _require("cupyx.scipy.sparse.linalg", attr)
    raise AttributeError(f"fake cupyx: {attr} is not implemented by the stand-in")


del _unwrap
