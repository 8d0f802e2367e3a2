"""Regenerate cupy_api.json: the public names of a real CuPy, for the fake's API check.

Run with a Python that has CuPy installed (no GPU needed)::

    python tests/fake_gpu/harvest_cupy_api.py tests/fake_gpu/cupy_api.json

Modules that need the CUDA libraries to import (cupyx.scipy.linalg and
cupyx.scipy.sparse.linalg without a GPU) are read from the names their ``__init__.py``
imports instead.
"""

from __future__ import annotations

import ast
import importlib
import json
import sys
from pathlib import Path

MODULES = [
    "cupy",
    "cupy.linalg",
    "cupy.random",
    "cupyx",
    "cupyx.scipy",
    "cupyx.scipy.linalg",
    "cupyx.scipy.sparse",
    "cupyx.scipy.sparse.linalg",
]


def names_of(module: str) -> list[str]:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        spec = importlib.util.find_spec(module.rsplit(".", 1)[0])
        init = Path(spec.submodule_search_locations[0]) / module.rsplit(".", 1)[1] / "__init__.py"
        names = set()
        for node in ast.walk(ast.parse(init.read_text())):
            if isinstance(node, ast.ImportFrom):
                names.update(a.asname or a.name for a in node.names)
        return sorted(n for n in names if not n.startswith("_") and n != "annotations")
    return sorted(n for n in dir(mod) if not n.startswith("_"))


def main(path: str) -> None:
    # This script sits beside the fake cupy/cupyx packages, which must not shadow the real ones.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    import cupy
    import cupyx.scipy.sparse as csp

    out: dict = {"_source": f"Public names of CuPy {cupy.__version__}, from harvest_cupy_api.py."}
    for module in MODULES:
        out[module] = names_of(module)
    out["cupy.ndarray"] = sorted(n for n in dir(cupy.ndarray) if not n.startswith("_"))
    out["cupy.ndarray"].append("__matmul__")
    sparse = {n for n in dir(csp.csr_matrix) if not n.startswith("_")}
    # Instance attributes, not visible on the class.
    sparse |= {"data", "indices", "indptr", "row", "col"}
    out["cupyx.scipy.sparse.csr_matrix"] = sorted(sparse)
    Path(path).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
