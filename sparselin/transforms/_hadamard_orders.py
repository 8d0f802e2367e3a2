"""Hadamard matrices of orders 12, 20 and 28, transform lengths, and the Walsh orderings.

A length ``N = m * 2**k`` with ``m`` in {1, 12, 20, 28} is transformed by
``kron(A_m, H_{2**k})``: the factor index is the most significant one, as in Dao-AILab's
``fast-hadamard-transform`` (so a row of width 28672 = 28 * 1024 is 28 contiguous chunks of
1024). The ``A_m`` are built here by Paley's second construction instead of being typed in,
over GF(5), GF(9) and GF(13) for m = 12, 20 and 28 (q = 1 mod 4, m = 2 (q + 1)): the
symmetric conference matrix ``S = [[0, 1^T], [1, Q]]`` (``Q`` the Jacobsthal matrix) with
each 0 replaced by ``[[1, 1], [1, -1]]`` and each ``+-1`` by ``+-[[1, -1], [-1, -1]]``. The
result is symmetric, so ``kron(A_m, H)`` is symmetric too and the transform is its own
inverse up to the factor N in every length.

These are Hadamard matrices (``A A^T = m I``, checked on construction) but not Dao's exact
matrices (his 20 and 28 come from Sloane's library), so the transforms agree with Dao's up to
the choice of ``A_m`` only.

Orderings of the power-of-two transform (the rows of ``H_N``):

* ``"natural"`` (Hadamard / Sylvester): ``H[i, j] = (-1)**popcount(i & j)``, as
  ``scipy.linalg.hadamard``;
* ``"dyadic"`` (Paley): row ``p`` is natural row ``bitrev(p)``;
* ``"sequency"`` (Walsh): row ``s`` has exactly ``s`` sign changes; it is natural row
  ``bitrev(gray(s))`` with ``gray(s) = s ^ (s >> 1)``.

Both reordered matrices ``W = P H`` are symmetric, so ``W x = H (P^T x)``: the reordering is
applied to the input, during the copy that the transform makes anyway.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = [
    "ORDERS",
    "SPECIAL_ORDERS",
    "factor_length",
    "hadamard",
    "hadamard_factor",
    "input_permutation",
    "row_permutation",
]

ORDERS = ("natural", "sequency", "dyadic")
SPECIAL_ORDERS = (12, 20, 28)


def _field(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Subtraction and multiplication tables of GF(q), q prime or 9.

    GF(9) is GF(3)[i] / (i**2 + 1); the element a + b*i is encoded as the integer a + 3*b.
    """
    if q == 9:
        a, b = np.arange(9) % 3, np.arange(9) // 3
        sub = ((a[:, None] - a[None, :]) % 3) + 3 * ((b[:, None] - b[None, :]) % 3)
        # (a + b i)(c + d i) = (ac - bd) + (ad + bc) i
        re = (a[:, None] * a[None, :] - b[:, None] * b[None, :]) % 3
        im = (a[:, None] * b[None, :] + b[:, None] * a[None, :]) % 3
        return sub, re + 3 * im
    e = np.arange(q)
    return (e[:, None] - e[None, :]) % q, (e[:, None] * e[None, :]) % q


def _jacobsthal(q: int) -> np.ndarray:
    """``Q[i, j] = chi(j - i)`` with ``chi`` the quadratic character of GF(q)."""
    sub, mul = _field(q)
    chi = -np.ones(q, dtype=np.int64)
    chi[0] = 0
    chi[np.unique(np.diagonal(mul)[1:])] = 1  # the nonzero squares
    return chi[sub.T]


def _paley_2(q: int) -> np.ndarray:
    """Symmetric Hadamard matrix of order 2 (q + 1) for q = 1 (mod 4)."""
    S = np.zeros((q + 1, q + 1), dtype=np.int64)
    S[0, 1:] = 1
    S[1:, 0] = 1
    S[1:, 1:] = _jacobsthal(q)
    zero_block = np.array([[1, 1], [1, -1]])
    sign_block = np.array([[1, -1], [-1, -1]])
    # Block (i, j) of the result sits at rows 2i..2i+1, columns 2j..2j+1.
    blocks = np.where((S == 0)[:, :, None, None], zero_block, S[:, :, None, None] * sign_block)
    return blocks.transpose(0, 2, 1, 3).reshape(2 * (q + 1), 2 * (q + 1))


@functools.cache
def hadamard_factor(m: int) -> np.ndarray:
    """The symmetric m x m Hadamard matrix (int8, read-only) used for lengths ``m * 2**k``.

    Examples
    --------
    >>> from sparselin.transforms._hadamard_orders import hadamard_factor
    >>> A = hadamard_factor(12).astype(int)
    >>> bool((A @ A.T == 12 * np.eye(12)).all())
    True
    """
    if m == 1:
        A = np.ones((1, 1), dtype=np.int64)
    elif m in SPECIAL_ORDERS:
        A = _paley_2(m // 2 - 1)
    else:
        raise ValueError(f"no Hadamard factor of order {m}; available: 1, 12, 20, 28")
    if not (np.array_equal(A, A.T) and np.array_equal(A @ A, m * np.eye(m, dtype=np.int64))):
        raise AssertionError(f"the order-{m} construction is not a symmetric Hadamard matrix")
    A = A.astype(np.int8)
    A.flags.writeable = False
    return A


def factor_length(N: int) -> tuple[int, int] | None:
    """Split ``N = m * 2**k`` with m in {1, 12, 20, 28}; ``None`` if N has no such form.

    A power of two is reported with m = 1; e.g. 24 gives (12, 1) and 28672 gives (28, 10).
    """
    if N < 1:
        return None
    k = (N & -N).bit_length() - 1
    m = N >> k
    if m == 1 or m in SPECIAL_ORDERS:
        return m, k
    # 12, 20 and 28 have a factor 4; m above is odd, so try the three orders directly.
    for special in SPECIAL_ORDERS:
        if N % special == 0:
            rest = N // special
            if rest & (rest - 1) == 0:
                return special, rest.bit_length() - 1
    return None


def _bit_reverse(i: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros_like(i)
    for b in range(n):
        out |= ((i >> b) & 1) << (n - 1 - b)
    return out


@functools.cache
def row_permutation(order: str, n: int) -> np.ndarray:
    """``perm`` with row ``r`` of the ``order``-ed matrix equal to natural row ``perm[r]``.

    Examples
    --------
    >>> from sparselin.transforms._hadamard_orders import row_permutation
    >>> row_permutation("sequency", 3).tolist()
    [0, 4, 6, 2, 3, 7, 5, 1]
    """
    r = np.arange(1 << n, dtype=np.int64)
    if order == "natural":
        perm = r
    elif order == "dyadic":
        perm = _bit_reverse(r, n)
    elif order == "sequency":
        perm = _bit_reverse(r ^ (r >> 1), n)
    else:  # pragma: no cover - validated at the public edge
        raise ValueError(order)
    perm.flags.writeable = False
    return perm


@functools.cache
def input_permutation(order: str, n: int) -> np.ndarray | None:
    """Gather index ``g`` with ``W x = H x[g]`` (``None`` for the natural order).

    ``W = P H`` is symmetric, hence ``W x = H P^T x`` and ``(P^T x)[q] = x[perm^-1[q]]``.
    """
    if order == "natural":
        return None
    perm = row_permutation(order, n)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size, dtype=perm.dtype)
    inv.flags.writeable = False
    return inv


def hadamard(N: int, order: str = "natural", dtype: Any = np.float64) -> np.ndarray:
    """The dense ``N x N`` Walsh-Hadamard matrix that :func:`~sparselin.transforms.fwht` applies.

    ``fwht(x, order=order)`` equals ``hadamard(N, order) @ x`` (without the ``O(N**2)``
    cost); meant for tests, teaching and small sizes.

    Parameters
    ----------
    N : int
        ``2**k``, or ``m * 2**k`` with ``m`` in {12, 20, 28} (then ``kron(A_m, H_{2**k})``).
    order : {"natural", "sequency", "dyadic"}, default="natural"
        Row order, as in :func:`~sparselin.transforms.fwht`; only ``"natural"`` for
        ``m * 2**k``.
    dtype : dtype, default=float64
        Entry type of the result.

    Returns
    -------
    H : ndarray of shape (N, N)
        Entries +1 and -1; symmetric, with ``H @ H = N I``.

    Examples
    --------
    >>> from sparselin.transforms import hadamard
    >>> hadamard(4, order="sequency", dtype=int)
    array([[ 1,  1,  1,  1],
           [ 1,  1, -1, -1],
           [ 1, -1, -1,  1],
           [ 1, -1,  1, -1]])
    """
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)):
        raise TypeError(f"N must be an integer, got {type(N).__name__} {N!r}")
    split = factor_length(int(N))
    if split is None:
        raise ValueError(f"N must be a power of two or m * 2**k with m in {{12, 20, 28}}, got {N}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    m, k = split
    if m != 1 and order != "natural":
        raise ValueError(f"order={order!r} is defined for power-of-two N only, got N={N}")
    i = np.arange(1 << k, dtype=np.int64)
    parity = np.zeros((1 << k, 1 << k), dtype=np.int64)
    both = i[:, None] & i[None, :]
    for b in range(k):
        parity ^= (both >> b) & 1
    H = 1 - 2 * parity
    H = H[row_permutation(order, k)]
    if m != 1:
        H = np.kron(hadamard_factor(m).astype(np.int64), H)
    return H.astype(dtype)
