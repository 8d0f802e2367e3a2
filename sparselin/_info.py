"""What this installation can do: versions, threading and GPU availability."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

from ._array import cupy_or_none, gpu_available
from ._version import __version__

__all__ = ["show_versions", "system_info"]


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def system_info() -> dict[str, Any]:
    """Return a dictionary describing sparselin's environment.

    Keys: ``sparselin``, ``python``, ``platform``, ``dependencies`` (versions of the runtime
    and optional dependencies, ``None`` when absent), ``numba_threading_layer``, ``blas``
    (what threadpoolctl reports, if installed), ``cupy`` (version or ``None``) and ``gpu``
    (a list of device names, empty when no GPU is usable).

    Examples
    --------
    >>> from sparselin import system_info
    >>> info = system_info()
    >>> sorted(info)[:3]
    ['blas', 'cupy', 'dependencies']
    """
    from ._numba import threading_layer

    deps = {
        name: _dist_version(name)
        for name in ("numpy", "scipy", "numba", "scikit-learn", "torch", "dask", "safetensors")
    }
    try:
        from threadpoolctl import threadpool_info

        blas = [
            {k: d.get(k) for k in ("internal_api", "num_threads", "version")}
            for d in threadpool_info()
        ]
    except ImportError:
        blas = []
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
        "cupy": getattr(cp, "__version__", None),
        "gpu": gpus,
    }


def show_versions() -> str:
    """Return :func:`system_info` as readable text (what ``sparselin info`` prints)."""
    info = system_info()
    lines = [
        f"sparselin {info['sparselin']}",
        f"python    {info['python']} ({info['platform']})",
    ]
    for name, ver in info["dependencies"].items():
        lines.append(f"{name:<12}{ver or 'not installed'}")
    lines.append(f"numba threading layer: {info['numba_threading_layer']}")
    for b in info["blas"]:
        lines.append(f"blas: {b['internal_api']} {b['version']} ({b['num_threads']} threads)")
    lines.append(f"cupy: {info['cupy'] or 'not installed'}")
    lines.append("gpu: " + (", ".join(info["gpu"]) if info["gpu"] else "none usable"))
    return "\n".join(lines)
