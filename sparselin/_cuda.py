"""Loader for the raw CUDA kernels kept in the top-level ``cuda/`` folder.

The ``.cu`` files are plain CUDA C. An installed wheel carries them inside the package
(``sparselin/cuda/``, mapped there by the build configuration); a source checkout finds them
in ``<repo>/cuda/``. Each file is compiled once per process by ``cupy.RawModule`` (CuPy keeps
its own on-disk cache of the compiled binary across processes).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

from ._array import cupy_or_none

__all__ = ["NVRTC_OPTIONS", "cuda_source", "get_function", "load_module"]

# Options for NVRTC, the compiler behind cupy.RawModule (the tests compile with the same).
NVRTC_OPTIONS = ("--std=c++14",)


def _candidate_dirs() -> list[Path]:
    dirs = []
    try:
        dirs.append(Path(str(resources.files("sparselin") / "cuda")))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - namespace quirks
        pass
    # Editable install or a plain checkout: the repository's top-level cuda/ folder.
    dirs.append(Path(__file__).resolve().parent.parent / "cuda")
    return dirs


def cuda_source(name: str) -> str:
    """Return the text of ``cuda/<name>`` (``name`` includes the ``.cu`` suffix).

    Examples
    --------
    >>> from sparselin._cuda import cuda_source
    >>> "extern" in cuda_source("svd_flip.cu") or "template" in cuda_source("svd_flip.cu")
    True
    """
    for d in _candidate_dirs():
        path = d / name
        if path.is_file():
            return path.read_text(encoding="utf-8")
    searched = ", ".join(str(d) for d in _candidate_dirs())
    raise FileNotFoundError(f"CUDA source {name!r} not found (searched {searched})")


@functools.cache
def load_module(name: str, name_expressions: tuple[str, ...] = ()) -> Any:
    """Compile ``cuda/<name>`` with ``cupy.RawModule`` (once per process) and return it."""
    cp = cupy_or_none()
    if cp is None:
        raise ImportError("CUDA kernels need CuPy: pip install 'sparselin[gpu]'")
    return cp.RawModule(
        code=cuda_source(name),
        options=NVRTC_OPTIONS,
        name_expressions=list(name_expressions) or None,
    )


def get_function(name: str, expression: str, all_expressions: tuple[str, ...]) -> Any:
    """Return the compiled kernel ``expression`` (a template instance) from ``cuda/<name>``."""
    return load_module(name, all_expressions).get_function(expression)
