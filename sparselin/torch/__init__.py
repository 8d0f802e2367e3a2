"""PyTorch adapters: factorised layers and the compression of trained ``nn.Linear`` weights.

This is the only module of sparselin that imports torch, an optional dependency: install it
with ``pip install 'sparselin[torch]'``.

Layers (all trainable ``nn.Module``\\ s whose factors are parameters; they script with
``torch.jit.script`` and round-trip through ``state_dict``):

- :class:`LowRankLinear` -- ``x -> (x V^T) U^T + b``.
- :class:`LowRankSparseLinear` -- low rank plus a sparse residual (entries and/or channels).
- :class:`KroneckerLinear` -- a sum of Kronecker products ``sum_i A_i (x) B_i``.
- :class:`SharedBasis` / :class:`SharedBasisLinear` -- one input basis shared by several layers.

Functions: :func:`compress_linear` (one layer), :func:`compress_shared` (a group of layers
reading the same input), :class:`GramAccumulator` (streaming calibration statistics),
:func:`compress_model` (a whole model under one parameter budget) and
:func:`load_compressed` (swap the layers of a compressed checkpoint into a model).
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "sparselin.torch needs PyTorch, which is an optional dependency: "
        "pip install 'sparselin[torch]'"
    ) from exc

from ._checkpoint import load_compressed, save_compressed
from ._compress import GramAccumulator, compress_linear, compress_shared
from ._layers import (
    KroneckerLinear,
    LowRankLinear,
    LowRankSparseLinear,
    SharedBasis,
    SharedBasisLinear,
)
from ._model import CompressionReport, LayerReport, compress_model

__all__ = [
    "CompressionReport",
    "GramAccumulator",
    "KroneckerLinear",
    "LayerReport",
    "LowRankLinear",
    "LowRankSparseLinear",
    "SharedBasis",
    "SharedBasisLinear",
    "compress_linear",
    "compress_model",
    "compress_shared",
    "load_compressed",
    "save_compressed",
]
