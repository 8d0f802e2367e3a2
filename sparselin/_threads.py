"""One BLAS thread pool at a time: which package owns each library, and SciPy's pool held at one.

NumPy and SciPy wheels each bundle their own OpenBLAS, and each OpenBLAS keeps a pool of worker
threads that busy-wait for a while after every call. Code that alternates between the two
libraries makes the pools compete for the cores: on two cores, 3000 x 2000 float64, k=40, a
``truncated_svd`` that called ``scipy.linalg.solve_triangular`` between NumPy's products took
192 ms, against 52 ms once every product went through NumPy's library. sparselin's hot paths
therefore call NumPy's BLAS and LAPACK only. Where SciPy cannot be avoided (ARPACK behind
``svds``, the LU normaliser), :func:`scipy_blas_limited` holds SciPy's own pool at one thread
around that call alone, so that no second pool wakes up next to NumPy's.

The library list comes from threadpoolctl, whose scan of the loaded shared objects takes
milliseconds; it is done once and cached. Only libraries that live inside SciPy's own
installation (a wheel's ``scipy.libs``) are limited: where NumPy and SciPy share one BLAS
(conda, a distribution's packages) there is one pool, nothing to keep apart, and the
context manager does nothing.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = [
    "SMALL_PROBLEM_ENTRIES",
    "blas_limited",
    "host_blas_limited",
    "library_owner",
    "scipy_blas_limited",
    "scipy_pool_threads",
]

# The cached threadpoolctl library controllers of SciPy's own BLAS (a list, possibly empty),
# or None before the first use.
_SCIPY_POOLS: list[Any] | None = None
_LOCK = threading.RLock()
# Nesting depth of scipy_blas_limited across threads, and the thread counts it restores.
_DEPTH = 0
_SAVED: list[int] = []


def library_owner(filepath: str | None) -> str:
    """The Python package that ships a shared library, read from the library's path.

    A wheel keeps its bundled libraries inside its own folder (``numpy.libs``, ``scipy.libs``,
    ``scikit_learn.libs``, ``torch/lib``, macOS's ``scipy/.dylibs``), so the first folder
    below the longest ``sys.path`` entry that contains the file names the package. A library
    outside every ``sys.path`` entry is ``"system"`` (the OS's or a conda environment's).

    Examples
    --------
    >>> import os, sys
    >>> from sparselin._threads import library_owner
    >>> site = os.path.realpath(sys.path[-1])
    >>> library_owner(os.path.join(site, "scipy.libs", "libscipy_openblas.so"))
    'scipy'
    >>> library_owner("/nonexistent-root/lib/libopenblas.so")
    'system'
    """
    if not filepath:
        return "unknown"
    path = os.path.realpath(filepath)
    best = ""
    for entry in sys.path:
        if not entry:
            continue
        root = os.path.realpath(entry)
        if path.startswith(root.rstrip(os.sep) + os.sep) and len(root) > len(best):
            best = root
    if not best:
        return "system"
    first = os.path.relpath(path, best).split(os.sep)[0]
    if first == os.path.basename(path):
        return "system"  # a library lying directly in a sys.path folder names no package
    name = first.removesuffix(".libs").lstrip(".")
    # Distribution folders use underscores ("scikit_learn.libs"); package names use hyphens.
    return {"sklearn": "scikit-learn"}.get(name, name.replace("_", "-"))


def _scipy_pools() -> list[Any]:
    """threadpoolctl controllers of the BLAS libraries that SciPy alone loaded (cached)."""
    global _SCIPY_POOLS
    if _SCIPY_POOLS is None:
        # SciPy's BLAS is loaded with its linalg extension modules; import them first, or the
        # scan would miss the library and the empty answer would be cached.
        import scipy.linalg
        import scipy.sparse.linalg  # noqa: F401
        from threadpoolctl import ThreadpoolController

        ctl = ThreadpoolController()
        numpy_files = {
            os.path.realpath(lc.filepath)
            for lc in ctl.lib_controllers
            if library_owner(lc.filepath) == "numpy"
        }
        _SCIPY_POOLS = [
            lc
            for lc in ctl.lib_controllers
            if lc.user_api == "blas"
            and library_owner(lc.filepath) == "scipy"
            and os.path.realpath(lc.filepath) not in numpy_files
        ]
    return _SCIPY_POOLS


def scipy_pool_threads() -> list[int]:
    """Current thread counts of SciPy's own BLAS pools (empty when SciPy shares NumPy's)."""
    return [lc.get_num_threads() for lc in _scipy_pools()]


@contextmanager
def scipy_blas_limited(threads: int = 1) -> Iterator[None]:
    """Hold SciPy's own BLAS pool at ``threads`` threads inside the ``with`` block.

    NumPy's pool is left alone: the products around the SciPy call keep every core. Nested
    and concurrent uses are counted, and the outermost exit restores the previous counts.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.linalg
    >>> from sparselin._threads import scipy_blas_limited, scipy_pool_threads
    >>> with scipy_blas_limited():
    ...     P, L, U = scipy.linalg.lu(np.eye(3))
    ...     assert all(n == 1 for n in scipy_pool_threads())
    """
    global _DEPTH
    # The depth is counted even without a pool to limit: tests read it to check that every
    # SciPy BLAS call happens inside this block, whatever BLAS the machine has.
    pools = _scipy_pools()
    with _LOCK:
        if _DEPTH == 0:
            _SAVED[:] = [lc.get_num_threads() for lc in pools]
            for lc in pools:
                lc.set_num_threads(threads)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                for lc, n in zip(pools, _SAVED, strict=True):
                    lc.set_num_threads(n)


@functools.lru_cache(maxsize=1)
def _controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # scans the loaded libraries once (tens of ms)


@contextmanager
def blas_limited(threads: int = 1) -> Iterator[None]:
    """Hold every BLAS pool (NumPy's and SciPy's) at ``threads`` threads inside the block.

    For stretches of many small calls (a few hundred rows) between other work: OpenBLAS
    splits even a 120 x 120 inverse or a 256 x 4096 matrix-vector product across its pool,
    whose workers then busy-wait between calls against Numba's OpenMP threads and the next
    call. Measured on the 2-vCPU benchmark machine: OMP on one 256 x 4096 signal (16 atoms)
    took 217 ms at the default threads and 12.5 ms with BLAS at one thread; an IncrementalSVD
    update of 1200 TF-IDF rows spent 25 s in such calls against 0.6 s. The limit is
    process-wide while the block runs; Numba's own pool is not touched.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin._threads import blas_limited
    >>> with blas_limited():
    ...     x = np.linalg.solve(np.eye(3), np.ones(3))
    """
    with _controller().limit(limits=threads, user_api="blas"):
        yield


# Problems up to this many entries (rows x columns of the block a family works on) run their
# many small BLAS calls at one thread: there OpenBLAS's pool spends more time waking and
# busy-waiting than computing. Measured on the shared 2-core machine (loaded, noisy):
# clustering 200 blocks of 256 x 64 took 108 s at the default threads and 1.5 s at one
# thread; PCP on 1000 x 1000 (rank 25) 10-28 s against 1.3-1.5 s. On an idle machine the
# limit costs nothing there (PCP 1000 x 1000: 381 ms at the default threads, 348 ms at one).
SMALL_PROBLEM_ENTRIES = 1 << 20


def host_blas_limited(xp: Any, n_entries: int | None = None) -> Any:
    """:func:`blas_limited` for NumPy work, else (device arrays) a no-op context.

    With ``n_entries``, only problems of at most :data:`SMALL_PROBLEM_ENTRIES` entries are
    limited; larger ones keep the default threads, where the big products use the pool well.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin._threads import host_blas_limited
    >>> with host_blas_limited(np, 300 * 300):
    ...     x = np.linalg.solve(np.eye(3), np.ones(3))
    """
    if xp is np and (n_entries is None or n_entries <= SMALL_PROBLEM_ENTRIES):
        return blas_limited()
    return contextlib.nullcontext()
