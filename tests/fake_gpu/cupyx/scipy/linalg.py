"""Fake cupyx.scipy.linalg: SciPy's functions of the names cupyx.scipy.linalg really has."""

import scipy.linalg as _sl
from cupy import _Forward

_mod = _Forward("cupyx.scipy.linalg", _sl, "cupyx.scipy.linalg")


def __getattr__(attr):
    return getattr(_mod, attr)
