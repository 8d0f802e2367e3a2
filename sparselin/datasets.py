"""Matrices with a known spectrum, for examples, tests and benchmarks."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.utils import check_random_state

__all__ = ["make_low_rank_matrix"]


def make_low_rank_matrix(
    n_rows: int,
    n_cols: int,
    *,
    decay: float | str | ArrayLike = 0.97,
    dtype: type = np.float64,
    random_state: int | np.random.Generator | None = None,
    return_singular_values: bool = False,
):
    """A dense matrix ``U diag(s) V^T`` with Haar-random orthonormal ``U``, ``V`` and chosen ``s``.

    Parameters
    ----------
    n_rows, n_cols : int
        Shape of the matrix.
    decay : float, {"slow"} or array-like, default=0.97
        A float ``r`` in (0, 1] gives ``s_i = r**i`` (fast, geometric decay); ``"slow"`` gives
        ``s_i = (i + 1) ** -0.5``; an array gives the singular values themselves (its length is
        the rank, at most ``min(n_rows, n_cols)``; it is sorted in descending order).
    dtype : numpy dtype, default=float64
        float32, float64, complex64 or complex128.
    random_state : None, int or numpy.random.Generator
        Seed of the random orthonormal factors.
    return_singular_values : bool, default=False
        Also return ``s`` (in float64, descending).

    Returns
    -------
    A : ndarray of shape (n_rows, n_cols)
    s : ndarray, only with ``return_singular_values=True``

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.datasets import make_low_rank_matrix
    >>> A, s = make_low_rank_matrix(50, 40, decay=0.9, random_state=0,
    ...                             return_singular_values=True)
    >>> bool(np.allclose(np.linalg.svd(A, compute_uv=False), s))
    True
    """
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"n_rows and n_cols must be >= 1, got {(n_rows, n_cols)}")
    r = min(n_rows, n_cols)
    if isinstance(decay, str):
        if decay != "slow":
            raise ValueError(f"decay must be a float, 'slow' or an array, got {decay!r}")
        s = (np.arange(r) + 1.0) ** -0.5
    elif np.ndim(decay) == 0:
        rate = float(decay)
        if not 0 < rate <= 1:
            raise ValueError(f"decay must be in (0, 1], got {rate}")
        s = rate ** np.arange(r, dtype=np.float64)
    else:
        s = np.sort(np.asarray(decay, dtype=np.float64).ravel())[::-1]
        if s.size > r or s.size == 0 or np.any(s < 0):
            raise ValueError(f"decay as an array must hold 1..{r} non-negative values")
        r = s.size
    rng = (
        check_random_state(random_state)
        if not isinstance(random_state, np.random.Generator)
        else random_state
    )
    if isinstance(rng, np.random.RandomState):
        rng = np.random.default_rng(rng.randint(2**31))
    complex_out = np.dtype(dtype).kind == "c"

    def haar(n: int) -> np.ndarray:
        G = rng.standard_normal((n, r))
        if complex_out:
            G = G + 1j * rng.standard_normal((n, r))
        Q, R = np.linalg.qr(G)
        # Fix the phases so that Q is Haar distributed (QR alone is not).
        d = np.diagonal(R)
        return Q * (d / np.abs(d))

    U = haar(n_rows)
    V = haar(n_cols)
    A = ((U * s) @ V.conj().T).astype(dtype, copy=False)
    return (A, s) if return_singular_values else A
