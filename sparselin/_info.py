"""What this installation can do: versions, threading and GPU availability."""

from __future__ import annotations

import platform
import sys
import textwrap
from importlib import metadata
from typing import Any

from ._array import cupy_or_none, gpu_available
from ._version import __version__

__all__ = ["blas_libraries", "blas_warnings", "show_versions", "system_info"]


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def blas_libraries() -> list[dict[str, Any]]:
    """The BLAS and OpenMP libraries loaded in this process, each labelled with its package.

    One dictionary per library as threadpoolctl reports it (``user_api``, ``internal_api``,
    ``version``, ``threading_layer``, ``num_threads``, ``architecture``, ``filepath``), plus
    ``package``: the Python package that ships it (``"numpy"``, ``"scipy"``,
    ``"scikit-learn"``, ``"torch"``, ...; ``"system"`` for a library outside every package,
    as on conda, where NumPy and SciPy share one).

    Examples
    --------
    >>> from sparselin._info import blas_libraries
    >>> libs = blas_libraries()
    >>> all("package" in lib and "num_threads" in lib for lib in libs)
    True
    """
    # NumPy's BLAS loads with numpy; SciPy's with its linalg extensions.
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    from ._threads import library_owner

    keys = (
        "user_api",
        "internal_api",
        "version",
        "threading_layer",
        "num_threads",
        "architecture",
        "filepath",
    )
    return [
        {"package": library_owner(d.get("filepath")), **{k: d.get(k) for k in keys}}
        for d in threadpool_info()
    ]


def blas_warnings(libraries: list[dict[str, Any]]) -> list[str]:
    """Warnings about the loaded BLAS libraries (see :func:`blas_libraries`).

    Two OpenBLAS libraries mean two thread pools whose idle workers busy-wait: code that
    alternates between them runs slower than with either alone.

    Examples
    --------
    >>> from sparselin._info import blas_warnings
    >>> libs = [{"internal_api": "openblas", "package": p, "filepath": p + ".so"}
    ...         for p in ("numpy", "scipy")]
    >>> print(blas_warnings(libs)[0].split(':')[0])
    2 OpenBLAS thread pools are loaded (numpy's and scipy's)
    """
    openblas = {
        lib["filepath"]: lib["package"]
        for lib in libraries
        if lib.get("internal_api") == "openblas"
    }
    if len(openblas) < 2:
        return []
    owners = " and ".join(f"{p}'s" for p in openblas.values())
    return [
        f"{len(openblas)} OpenBLAS thread pools are loaded ({owners}): each keeps its "
        "workers busy-waiting after a call, so code that alternates between them makes the "
        "pools fight for the cores and runs slower than with either alone. sparselin's hot "
        "paths use NumPy's BLAS only, and hold SciPy's pool at one thread around the calls "
        "that need SciPy (ARPACK, LU); for other code that mixes them, set "
        "OPENBLAS_NUM_THREADS=1 or limit one pool with threadpoolctl."
    ]


def system_info() -> dict[str, Any]:
    """Return a dictionary describing sparselin's environment.

    Keys: ``sparselin``, ``python``, ``platform``, ``dependencies`` (versions of the runtime
    and optional dependencies, ``None`` when absent), ``numba_threading_layer``, ``blas``
    (the loaded BLAS and OpenMP libraries, see :func:`blas_libraries`), ``blas_warnings``
    (see :func:`blas_warnings`), ``cupy`` (version or ``None``) and ``gpu`` (a list of device
    names, empty when no GPU is usable).

    Examples
    --------
    >>> from sparselin import system_info
    >>> info = system_info()
    >>> sorted(info)[:4]
    ['blas', 'blas_warnings', 'cupy', 'dependencies']
    """
    from ._numba import threading_layer

    deps = {
        name: _dist_version(name)
        for name in (
            "numpy",
            "scipy",
            "numba",
            "scikit-learn",
            "threadpoolctl",
            "torch",
            "dask",
            "safetensors",
        )
    }
    blas = blas_libraries()
    cp = cupy_or_none()
    gpus: list[str] = []
    if cp is not None and gpu_available():
        for i in range(cp.cuda.runtime.getDeviceCount()):
            props = cp.cuda.runtime.getDeviceProperties(i)
            name = props["name"]
            gpus.append(name.decode() if isinstance(name, bytes) else str(name))
    return {
        "sparselin": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "dependencies": deps,
        "numba_threading_layer": threading_layer(),
        "blas": blas,
        "blas_warnings": blas_warnings(blas),
        "cupy": getattr(cp, "__version__", None),
        "gpu": gpus,
    }


def show_versions() -> str:
    """Return :func:`system_info` as readable text (what ``sparselin info`` prints).

    Examples
    --------
    >>> from sparselin import show_versions
    >>> "numba threading layer" in show_versions()
    True
    """
    info = system_info()
    lines = [
        f"sparselin {info['sparselin']}",
        f"python    {info['python']} ({info['platform']})",
    ]
    for name, ver in info["dependencies"].items():
        lines.append(f"{name:<14}{ver or 'not installed'}")
    lines.append(f"numba threading layer: {info['numba_threading_layer']}")
    if not info["blas"]:
        lines.append("blas: no library found by threadpoolctl")
    for b in info["blas"]:
        layer = f"; {b['threading_layer']} threading" if b["threading_layer"] else ""
        lines.append(
            f"blas: {b['package']:<13}{b['internal_api']}"
            + (f" {b['version']}" if b["version"] else "")
            + " "
            f"({b['user_api']}{layer}), {b['num_threads']} threads"
        )
        lines.append(f"      {b['filepath']}")
    for w in info["blas_warnings"]:
        lines.append(
            textwrap.fill(w, width=90, initial_indent="warning: ", subsequent_indent="  ")
        )
    lines.append(f"cupy: {info['cupy'] or 'not installed'}")
    lines.append("gpu: " + (", ".join(info["gpu"]) if info["gpu"] else "none usable"))
    return "\n".join(lines)
