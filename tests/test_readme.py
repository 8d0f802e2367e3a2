"""The Python code in README.md runs as printed (GPU snippets only where a GPU is usable)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from sparselin._array import gpu_available

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_python_examples():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index):
    code = BLOCKS[index]
    if "cupy" in code and not gpu_available():
        pytest.skip("GPU snippet")
    if "import torch" in code and importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch snippet, and torch is not installed (the torch extra)")
    namespace: dict = {}
    # Later blocks may use names from earlier ones, as a reader running them in order would.
    for previous in BLOCKS[:index]:
        if "cupy" not in previous and "import torch" not in previous:
            exec(compile(previous, f"README block {BLOCKS.index(previous)}", "exec"), namespace)
    exec(compile(code, f"README block {index}", "exec"), namespace)
