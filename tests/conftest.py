"""Shared test configuration: GPU tests skip cleanly where CuPy or a device is missing.

The ``backend`` fixture runs a test on every array library (see tests/_helpers.py).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from sparselin._array import gpu_available
from tests._helpers import Backend, fake_cupy, real_cupy_present
from tests._helpers import tolerance as tolerance  # re-exported for older tests


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


@pytest.fixture(params=["numpy", "fake-cupy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    """The array library a test runs on: NumPy, the CuPy stand-in, or real CuPy on a GPU."""
    if request.param == "numpy":
        yield Backend("numpy", np)
    elif request.param == "cupy":
        import cupy

        yield Backend("cupy", cupy)
    else:
        if real_cupy_present():
            pytest.skip("real CuPy is installed; the stand-in cannot share its module name")
        with fake_cupy() as cp:
            yield Backend("fake-cupy", cp)
