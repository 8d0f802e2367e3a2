"""Fake cupyx.scipy: SciPy's linalg behind the device-array wrapper."""

import scipy.linalg as _sl
from cupy import _Forward

linalg = _Forward("cupyx.scipy.linalg", _sl)
