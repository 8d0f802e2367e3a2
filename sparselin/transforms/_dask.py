"""The fast Walsh-Hadamard transform of a dask array, one task per chunk, nothing gathered.

A transform along an axis that lies in one chunk is independent across the other axes, so
each chunk is transformed where it is by :func:`sparselin.transforms._fwht.fwht_core` (the
same Numba or CUDA kernels as in memory, hence the same result bit for bit), through
``map_blocks``: the result is a lazy dask array with the input's chunks. An axis split over
several chunks is refused with the rechunk to do: the cross-chunk butterflies would need a
shuffle of the whole array per stage, which a rechunk performs once and better.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from .._array import dask_array_module, dask_chunk_namespace
from ._fwht import _validate, fwht_core

__all__ = ["fwht_dask"]


def fwht_dask(x: Any, axis: Any, order: Any, normalize: Any, out: Any) -> Any:
    """:func:`sparselin.transforms.fwht` for a dask ``x``: check the chunking, then map."""
    dask_array_module()
    if out is not None:
        raise TypeError(
            "out is not supported for dask input: the result is a new lazy dask array "
            "(write it with dask.array.store if it must land in an existing array)"
        )
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension, got a 0-d array")
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer, got {type(axis).__name__} {axis!r}") from None
    if -x.ndim <= ax < x.ndim:
        ax %= x.ndim
        if math.isnan(x.shape[ax]):
            raise ValueError(
                f"x has unknown chunk sizes along axis {ax} (shape {x.shape}); call "
                "x.compute_chunk_sizes() first"
            )
        if x.numblocks[ax] > 1:
            raise ValueError(
                f"the transform axis {ax} of x is split into {x.numblocks[ax]} chunks "
                f"(chunks {x.chunks[ax]}); the dask path transforms each chunk where it "
                f"lies: call x.rechunk({{{ax}: -1}}) first (chunk the other axes instead)"
            )
    # The axis, length, order and normalisation rules are those of the in-memory path.
    x, ax, m, k, scale, gather, dtype = _validate(x, axis, order, normalize)
    xp = dask_chunk_namespace(x)
    return x.map_blocks(
        fwht_core,
        ax,
        m,
        k,
        scale,
        gather,
        dtype,
        dtype=dtype,
        meta=xp.empty((0,) * x.ndim, dtype=dtype),
    )
