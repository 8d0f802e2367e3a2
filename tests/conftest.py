"""Shared test configuration: GPU tests skip cleanly where CuPy or a device is missing."""

from __future__ import annotations

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from sparselin._array import gpu_available


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread_per_worker():
    # BLAS threads of several pytest-xdist workers fight over the same cores.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        with threadpool_limits(limits=1):
            yield
    else:
        yield


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and an NVIDIA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def tolerance(dtype) -> float:
    """A loose relative tolerance for comparing results computed in ``dtype``."""
    return 2e-3 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-8
