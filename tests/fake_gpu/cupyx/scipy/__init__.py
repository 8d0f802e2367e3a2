"""Fake cupyx.scipy (see tests/fake_gpu/cupy): ``linalg`` and ``sparse`` submodules."""

from . import linalg, sparse  # noqa: F401  (real cupyx.scipy exposes both on import)
