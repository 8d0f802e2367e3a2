"""Numba conventions for the CPU kernels.

Every compiled CPU kernel in sparselin is declared with :data:`jit` (``njit`` with
``cache=True`` so the machine code is kept in ``__pycache__`` between processes, and
``nogil=True`` so callers may run kernels from threads). Kernels live next to the algorithm
that needs them, in a private ``_kernels.py`` of the family (``sparselin/<family>/_kernels.py``),
and are called only where plain NumPy was measured to be too slow.
"""

from __future__ import annotations

import functools

import numba

__all__ = ["jit", "threading_layer"]

jit = functools.partial(numba.njit, cache=True, nogil=True)


def threading_layer() -> str:
    """Name of the threading layer Numba uses (or would use) for parallel kernels."""
    try:
        return numba.threading_layer()
    except ValueError:
        # No parallel kernel has run yet; report the configured preference instead.
        return f"not yet chosen (config: {numba.config.THREADING_LAYER})"
