import scipy.linalg as _sl
from cupy import _Forward

_mod = _Forward("cupyx.scipy.linalg", _sl)


def __getattr__(attr):
    return getattr(_mod, attr)
