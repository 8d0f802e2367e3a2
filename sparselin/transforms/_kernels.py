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

Threads: a batch is shared out by rows, a single long row first by blocks, then by spans of
each strided pass. The kernels are serial ``nogil`` functions over a range of such units,
run in chunks by ``sparselin._pool.run_chunks`` rather than as ``prange`` loops: a
fork-join loop waits for every thread of the pool at its end, so on a machine whose cores
are busy with other work a transform cost a scheduler time slice per pass (see
``sparselin._pool`` for the measurements).

The helpers are plain ``@jit`` functions, not ``inline="always"``: inlining them at Numba's
level made the first compilation 4x slower (93 s against 22 s for the float64 kernels on a
loaded machine) for no run-time gain that stood out of the noise; LLVM inlines them anyway.
"""

from __future__ import annotations

import numpy as np

from .._numba import jit
from .._pool import run_ranges

__all__ = [
    "apply_factor",
    "permute_rows",
    "transform_rows",
]

# Long-row passes are split into spans of this many reals for the parallel loop.
_SPAN = 2048
# Arrays of fewer reals than this (8 MiB of float64) are transformed on one thread.
PARALLEL_MIN = 1 << 20
# Chunks per thread of a parallel loop: enough for a thread that starts late to find work
# left, few enough that the bookkeeping between chunks stays negligible.
CHUNKS_PER_THREAD = 8


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
def _span(x, j0, count, h, rad):
    """One radix-``rad`` (8, 4 or 2) butterfly span of stride ``h`` (see the kernels above)."""
    if rad == 8:
        _span8(x, j0, count, h)
    elif rad == 4:
        _span4(x, j0, count, h)
    else:
        _span2(x, j0, count, h)


@jit
def _passes(x, lo, hi, h):
    # All stages with strides h, 2h, ... < hi - lo on the segment [lo, hi).
    length = hi - lo
    while h < length:
        rad = _radix(h, length)
        for g in range(lo, hi, rad * h):
            _span(x, g, h, h, rad)
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
def _rows_range(a, w, s, block, r0, r1):
    # Rows r0 .. r1 - 1, each transformed whole.
    for r in range(r0, r1):
        _row(a[r], w, s, block)


@jit
def _blocks_range(a, w, s, b, u0, u1):
    # Blocks u0 .. u1 - 1 of b reals (numbered row-major over all rows): every stage with a
    # stride below b, on the block while it sits in L1.
    per_row = a.shape[1] // b
    for u in range(u0, u1):
        r = u // per_row
        lo = (u % per_row) * b
        _block(a[r], lo, b, w, s)


@jit
def _spans_range(a, h, rad, span, u0, u1):
    # Units u0 .. u1 - 1 of one radix-`rad` pass at stride h over long rows, each unit `span`
    # butterflies, numbered row-major.
    length = a.shape[1]
    per_group = h // span
    units = (length // (rad * h)) * per_group
    for u in range(u0, u1):
        x = a[u // units]
        rem = u % units
        j0 = (rem // per_group) * rad * h + (rem % per_group) * span
        _span(x, j0, span, h, rad)


def _chunked(kernel, units: int, threads: int, args: tuple) -> None:
    """``kernel(*args, u0, u1)`` over ``range(units)``, cut into chunks for run_chunks."""
    n_chunks = 1 if threads <= 1 else min(units, CHUNKS_PER_THREAD * threads)
    step = -(-units // max(n_chunks, 1))
    run_ranges(lambda u0, u1: kernel(*args, u0, u1), units, threads, step)


def transform_rows(a: np.ndarray, w: int, scale, block: int, threads: int) -> None:
    """Transform each row of the C-contiguous real 2-D ``a`` in place (``w`` reals per point).

    ``scale`` must have ``a``'s dtype (a float64 scale would promote float32 arithmetic).
    ``threads`` is the number of threads available; work under ``PARALLEL_MIN`` reals stays
    on one thread. Parallel work runs through :func:`run_chunks`, which never waits for a
    thread that has not started (see ``sparselin._pool``): many rows are shared out by rows;
    a few long rows by blocks, then by spans of each strided pass.
    """
    n_rows, length = a.shape
    if n_rows == 0 or length <= w:
        if scale != 1 and a.size:
            a *= scale
        return
    if a.size < PARALLEL_MIN:
        threads = 1
    if n_rows >= CHUNKS_PER_THREAD * threads and length <= 16 * block:
        # Rows that fit L2: each is done whole by one thread.
        _chunked(_rows_range, n_rows, threads, (a, w, scale, block))
        return
    b = min(length, block)
    _chunked(_blocks_range, n_rows * (length // b), threads, (a, w, scale, b))
    # The stages beyond the block: radix-8 passes over the whole rows, each split into spans.
    # (Gathering strips of columns of the (length / b, b) view into an L2 buffer, to do all
    # these stages in one trip through memory, was measured 2-10x slower than these passes at
    # 2**22 on one thread: the kernels are compute-bound there, the array fits the L3 cache.)
    h = b
    while h < length:
        rad = 8 if 8 * h <= length else (4 if 4 * h <= length else 2)
        span = min(h, _SPAN)
        units = n_rows * (length // (rad * h)) * (h // span)
        _chunked(_spans_range, units, threads, (a, h, rad, span))
        h *= rad


@jit
def _factor_range(a, A, m, s, u0, u1):
    # a: (rows, m * chunk) reals; each column j of the (m, chunk) view becomes s * A @ col.
    # Units u0 .. u1 - 1 are tiles of 64 columns, numbered row-major.
    n_rows, length = a.shape
    chunk = length // m
    tile = 64
    tiles = (chunk + tile - 1) // tile
    buf = np.empty((m, tile), dtype=a.dtype)
    for u in range(u0, u1):
        r = u // tiles
        j0 = (u % tiles) * tile
        j1 = min(j0 + tile, chunk)
        x = a[r]
        for i in range(m):
            for j in range(j0, j1):
                buf[i, j - j0] = x[i * chunk + j] * s
        for i in range(m):
            for j in range(j0, j1):
                acc = buf[0, j - j0] * A[i, 0]
                for k in range(1, m):
                    acc += buf[k, j - j0] * A[i, k]
                x[i * chunk + j] = acc


def apply_factor(a: np.ndarray, A: np.ndarray, scale, threads: int) -> None:
    """``row <- scale * (A kron I) row`` for each row of the C-contiguous real 2-D ``a``."""
    if not a.size:
        return
    m = A.shape[0]
    tiles = (a.shape[1] // m + 63) // 64
    threads = 1 if a.size < PARALLEL_MIN else threads
    _chunked(_factor_range, a.shape[0] * tiles, threads, (a, A.astype(a.dtype), m, scale))


@jit
def _permute_range(a, g, w, r0, r1):
    n = a.shape[1] // w
    for r in range(r0, r1):
        x = a[r]
        tmp = x.copy()
        for q in range(n):
            src = g[q] * w
            for e in range(w):
                x[q * w + e] = tmp[src + e]


def permute_rows(a: np.ndarray, gather: np.ndarray, w: int, threads: int) -> None:
    """``row[q] <- row[gather[q]]`` (points of ``w`` reals) for each row of ``a``, in place."""
    threads = 1 if a.size < PARALLEL_MIN else threads
    _chunked(_permute_range, a.shape[0], threads, (a, gather, w))
