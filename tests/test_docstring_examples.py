"""Every docstring example in the package runs and prints what it claims."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import sparselin

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(sparselin.__path__, prefix="sparselin.")
    if name not in ("sparselin.__main__",)
)


# sparselin.torch is the one module that needs torch (an optional extra).
_NO_TORCH = importlib.util.find_spec("torch") is None


def _marks(name):
    torch_module = name == "sparselin.torch" or name.startswith("sparselin.torch.")
    return [pytest.mark.skipif(_NO_TORCH, reason="needs torch")] if torch_module else []


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in MODULES])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
