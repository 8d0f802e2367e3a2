"""Numba kernels of the dense fast Walsh-Hadamard transform (CPU).

All kernels work in place on a C-contiguous 2-D array of *reals*, one transform per row. A
complex row of N points is handed over as its real view of 2N numbers with ``w = 2``: the
transform of the complex row is ``kron(H_N, I_2)`` on that view, i.e. every butterfly stride
is doubled and the real and imaginary parts never meet. Working on reals lets LLVM vectorise
the same loops for real and complex data.

Structure (FFHT's "greedy merged recursive" design, [FFHT] in the research notes):

* each contiguous block of ``block`` reals (a few tens of KiB, so it stays in L1/L2) gets
  all its stages at once: the three lowest stages fused into one unrolled 8-point pass that
  also applies the scale, then radix-8/4/2 passes whose inner loops run over contiguous
  memory;
* the stages with strides beyond the block run as radix-8 passes over the whole row (three
  stages per trip through memory), finishing with a radix-4 or radix-2 pass.

The stages of a Walsh-Hadamard transform commute (it is a Kronecker product of 2 x 2
factors), which is what allows any grouping of them.

The helpers are plain ``@jit`` functions, not ``inline="always"``: inlining them at Numba's
level made the first compilation 4x slower (93 s against 22 s for the float64 kernels on a
loaded machine) for no run-time gain that stood out of the noise; LLVM inlines them anyway.
"""

from __future__ import annotations

import numba
import numpy as np

from .._numba import jit

__all__ = [
    "apply_factor",
    "permute_rows",
    "transform_rows",
]

# Long-row passes are split into spans of this many reals for the parallel loop.
_SPAN = 2048
# Arrays of fewer reals than this (8 MiB of float64) are transformed on one thread.
PARALLEL_MIN = 1 << 20


@jit
def _first3(x, lo, hi, w, s):
    # Stages with strides w, 2w, 4w on [lo, hi), fused: 8 points per step, scaled by s.
    for i in range(lo, hi, 8 * w):
        for e in range(w):
            p = i + e
            a0 = x[p] * s
            a1 = x[p + w] * s
            a2 = x[p + 2 * w] * s
            a3 = x[p + 3 * w] * s
            a4 = x[p + 4 * w] * s
            a5 = x[p + 5 * w] * s
            a6 = x[p + 6 * w] * s
            a7 = x[p + 7 * w] * s
            b0 = a0 + a1
            b1 = a0 - a1
            b2 = a2 + a3
            b3 = a2 - a3
            b4 = a4 + a5
            b5 = a4 - a5
            b6 = a6 + a7
            b7 = a6 - a7
            c0 = b0 + b2
            c2 = b0 - b2
            c1 = b1 + b3
            c3 = b1 - b3
            c4 = b4 + b6
            c6 = b4 - b6
            c5 = b5 + b7
            c7 = b5 - b7
            x[p] = c0 + c4
            x[p + 4 * w] = c0 - c4
            x[p + w] = c1 + c5
            x[p + 5 * w] = c1 - c5
            x[p + 2 * w] = c2 + c6
            x[p + 6 * w] = c2 - c6
            x[p + 3 * w] = c3 + c7
            x[p + 7 * w] = c3 - c7


@jit
def _first3_real(x, lo, hi, s):
    # _first3 for w = 1: without the inner loop over w the 8 loads and stores are contiguous
    # and LLVM vectorises them (measured 1.9x faster than _first3 with w = 1).
    for i in range(lo, hi, 8):
        a0 = x[i] * s
        a1 = x[i + 1] * s
        a2 = x[i + 2] * s
        a3 = x[i + 3] * s
        a4 = x[i + 4] * s
        a5 = x[i + 5] * s
        a6 = x[i + 6] * s
        a7 = x[i + 7] * s
        b0 = a0 + a1
        b1 = a0 - a1
        b2 = a2 + a3
        b3 = a2 - a3
        b4 = a4 + a5
        b5 = a4 - a5
        b6 = a6 + a7
        b7 = a6 - a7
        c0 = b0 + b2
        c2 = b0 - b2
        c1 = b1 + b3
        c3 = b1 - b3
        c4 = b4 + b6
        c6 = b4 - b6
        c5 = b5 + b7
        c7 = b5 - b7
        x[i] = c0 + c4
        x[i + 4] = c0 - c4
        x[i + 1] = c1 + c5
        x[i + 5] = c1 - c5
        x[i + 2] = c2 + c6
        x[i + 6] = c2 - c6
        x[i + 3] = c3 + c7
        x[i + 7] = c3 - c7


# The span kernels take slices of the row for each leg of the butterfly: on separate views
# LLVM vectorises the loop (measured 4x faster than indexing x[j + h] on one view).


@jit
def _span2(x, j0, count, h):
    a0 = x[j0 : j0 + count]
    a1 = x[j0 + h : j0 + h + count]
    for j in range(count):
        u = a0[j]
        v = a1[j]
        a0[j] = u + v
        a1[j] = u - v


@jit
def _span4(x, j0, count, h):
    a0 = x[j0 : j0 + count]
    a1 = x[j0 + h : j0 + h + count]
    a2 = x[j0 + 2 * h : j0 + 2 * h + count]
    a3 = x[j0 + 3 * h : j0 + 3 * h + count]
    for j in range(count):
        b0 = a0[j] + a1[j]
        b1 = a0[j] - a1[j]
        b2 = a2[j] + a3[j]
        b3 = a2[j] - a3[j]
        a0[j] = b0 + b2
        a1[j] = b1 + b3
        a2[j] = b0 - b2
        a3[j] = b1 - b3


@jit
def _span8(x, j0, count, h):
    a0 = x[j0 : j0 + count]
    a1 = x[j0 + h : j0 + h + count]
    a2 = x[j0 + 2 * h : j0 + 2 * h + count]
    a3 = x[j0 + 3 * h : j0 + 3 * h + count]
    a4 = x[j0 + 4 * h : j0 + 4 * h + count]
    a5 = x[j0 + 5 * h : j0 + 5 * h + count]
    a6 = x[j0 + 6 * h : j0 + 6 * h + count]
    a7 = x[j0 + 7 * h : j0 + 7 * h + count]
    for j in range(count):
        b0 = a0[j] + a1[j]
        b1 = a0[j] - a1[j]
        b2 = a2[j] + a3[j]
        b3 = a2[j] - a3[j]
        b4 = a4[j] + a5[j]
        b5 = a4[j] - a5[j]
        b6 = a6[j] + a7[j]
        b7 = a6[j] - a7[j]
        c0 = b0 + b2
        c2 = b0 - b2
        c1 = b1 + b3
        c3 = b1 - b3
        c4 = b4 + b6
        c6 = b4 - b6
        c5 = b5 + b7
        c7 = b5 - b7
        a0[j] = c0 + c4
        a4[j] = c0 - c4
        a1[j] = c1 + c5
        a5[j] = c1 - c5
        a2[j] = c2 + c6
        a6[j] = c2 - c6
        a3[j] = c3 + c7
        a7[j] = c3 - c7


@jit
def _radix(h, length):
    # Widest radix whose group still fits: three stages per pass where possible.
    if 8 * h <= length:
        return 8
    if 4 * h <= length:
        return 4
    return 2


@jit
def _passes(x, lo, hi, h):
    # All stages with strides h, 2h, ... < hi - lo on the segment [lo, hi).
    length = hi - lo
    while h < length:
        rad = _radix(h, length)
        for g in range(lo, hi, rad * h):
            if rad == 8:
                _span8(x, g, h, h)
            elif rad == 4:
                _span4(x, g, h, h)
            else:
                _span2(x, g, h, h)
        h *= rad


@jit
def _block(x, lo, length, w, s):
    # Every stage inside the block [lo, lo + length) of reals (length // w points).
    if length >= 8 * w:
        if w == 1:
            _first3_real(x, lo, lo + length, s)
        else:
            _first3(x, lo, lo + length, w, s)
        _passes(x, lo, lo + length, 8 * w)
    else:
        if s != 1:
            for i in range(lo, lo + length):
                x[i] *= s
        _passes(x, lo, lo + length, w)


@jit
def _row(x, w, s, block):
    length = x.shape[0]
    b = min(length, block)
    for lo in range(0, length, b):
        _block(x, lo, b, w, s)
    _passes(x, 0, length, b)


@jit
def _rows_serial(a, w, s, block):
    for r in range(a.shape[0]):
        _row(a[r], w, s, block)


@jit(parallel=True)
def _rows_parallel(a, w, s, block):
    for r in numba.prange(a.shape[0]):
        _row(a[r], w, s, block)


@jit(parallel=True)
def _rows_long(a, w, s, block):
    # Few long rows: parallel over the blocks, then over spans of each strided pass.
    n_rows, length = a.shape
    b = min(length, block)
    per_row = length // b
    for u in numba.prange(n_rows * per_row):
        r = u // per_row
        _block(a[r], (u % per_row) * b, b, w, s)
    h = b
    while h < length:
        rad = _radix(h, length)
        span = min(h, _SPAN)
        per_group = h // span
        groups = length // (rad * h)
        units = groups * per_group
        for u in numba.prange(n_rows * units):
            r = u // units
            rem = u % units
            j0 = (rem // per_group) * rad * h + (rem % per_group) * span
            x = a[r]
            if rad == 8:
                _span8(x, j0, span, h)
            elif rad == 4:
                _span4(x, j0, span, h)
            else:
                _span2(x, j0, span, h)
        h *= rad


def transform_rows(a: np.ndarray, w: int, scale, block: int, threads: int) -> None:
    """Transform each row of the C-contiguous real 2-D ``a`` in place (``w`` reals per point).

    ``scale`` must have ``a``'s dtype (a float64 scale would promote float32 arithmetic).
    ``threads`` is the number of Numba threads available; work under ``PARALLEL_MIN`` reals
    stays serial: a fork-join of the thread pool per pass costs more than it saves there, and
    far more on a machine whose cores are busy (measured on a loaded 2-core machine with
    Numba's OpenMP layer: one 2**18-point float64 transform took 24 ms on two threads against
    0.5 ms on one, 2**20 points 32 ms against 2.2 ms; at 2**22 still 48 ms against 15 ms).
    """
    n_rows, length = a.shape
    if n_rows == 0 or length <= w:
        if scale != 1 and a.size:
            a *= scale
        return
    if threads <= 1 or a.size < PARALLEL_MIN:
        _rows_serial(a, w, scale, block)
    elif n_rows >= threads and length <= 16 * block:
        _rows_parallel(a, w, scale, block)
    else:
        _rows_long(a, w, scale, block)


@jit(parallel=True)
def _factor_kernel(a, A, m, s):
    # a: (rows, m * chunk) reals; each column j of the (m, chunk) view becomes s * A @ col.
    n_rows, length = a.shape
    chunk = length // m
    tile = 64
    tiles = (chunk + tile - 1) // tile
    for u in numba.prange(n_rows * tiles):
        r = u // tiles
        j0 = (u % tiles) * tile
        j1 = min(j0 + tile, chunk)
        x = a[r]
        buf = np.empty((m, tile), dtype=a.dtype)
        for i in range(m):
            for j in range(j0, j1):
                buf[i, j - j0] = x[i * chunk + j] * s
        for i in range(m):
            for j in range(j0, j1):
                acc = buf[0, j - j0] * A[i, 0]
                for k in range(1, m):
                    acc += buf[k, j - j0] * A[i, k]
                x[i * chunk + j] = acc


def apply_factor(a: np.ndarray, A: np.ndarray, scale) -> None:
    """``row <- scale * (A kron I) row`` for each row of the C-contiguous real 2-D ``a``."""
    if a.size:
        _factor_kernel(a, A.astype(a.dtype), A.shape[0], scale)


@jit(parallel=True)
def _permute_kernel(a, g, w):
    n_rows, length = a.shape
    n = length // w
    for r in numba.prange(n_rows):
        x = a[r]
        tmp = x.copy()
        for q in range(n):
            src = g[q] * w
            for e in range(w):
                x[q * w + e] = tmp[src + e]


def permute_rows(a: np.ndarray, gather: np.ndarray, w: int) -> None:
    """``row[q] <- row[gather[q]]`` (points of ``w`` reals) for each row of ``a``, in place."""
    _permute_kernel(a, gather, w)
