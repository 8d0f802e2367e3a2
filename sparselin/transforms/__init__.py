"""Walsh-Hadamard transforms: the dense fast transform and the sparse (sub-linear) one.

* :func:`fwht` — the fast Walsh-Hadamard transform along any axis of a batch, in natural,
  sequency or dyadic order, for lengths ``2**k`` and ``m * 2**k`` (m in {12, 20, 28}), on the
  CPU (Numba) and the GPU (CUDA kernels through CuPy).
* :func:`sparse_wht` — the K-sparse Walsh spectrum of a signal of length ``2**n`` from
  ``O(K log N)`` samples: SparseFHT (noiseless) and SPRIGHT (noisy), returning a
  :class:`SparseSpectrum`.
* :func:`hadamard` — the dense matrix that :func:`fwht` applies, for tests and small sizes.
"""

from ._fwht import fwht
from ._hadamard_orders import hadamard
from ._sparse_wht import DecodingError, SparseSpectrum, sparse_wht

__all__ = ["DecodingError", "SparseSpectrum", "fwht", "hadamard", "sparse_wht"]
