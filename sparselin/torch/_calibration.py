"""Calibration for whole-model compression: shipped sentences and per-layer statistics.

:func:`sparselin.datasets.calibration_sentences` returns the English sentences that ship
with sparselin (``sparselin/data/calibration.txt``) and
:func:`sparselin.datasets.heldout_sentences` a disjoint set kept for evaluation only
(``sparselin/data/heldout.txt``).

:func:`collect_statistics` runs a model over calibration batches with forward hooks on the
chosen layers and accumulates, in float64 and without keeping any batch:

- per layer input: the token count, the sum of inputs and ``sum x x^T`` (padding positions are
  masked out: padded rows repeat a near-constant vector and would bias the Gram matrix);
  layers that read the *same tensor* (Q, K and V of an attention block) are detected on the fly
  and share one accumulation, which both saves work and tells the allocator which layers may
  share an input-side basis;
- optionally per layer output: ``sum g g^T`` where ``g`` is the gradient of a random projection
  ``r . f(model)`` of the model's output with respect to the layer's output, ``r`` a standard
  normal vector drawn per sample and probe. Its expectation is ``J^T J`` (``J`` the Jacobian of
  the output with respect to that layer's output), the output metric that turns a layer's
  error into end-to-end units.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "LayerStatistics",
    "calibration_sentences",
    "collect_statistics",
    "heldout_sentences",
    "model_output",
]

# The sentences are plain text, so they live with the other data sets (no torch needed).
from ..datasets import calibration_sentences, heldout_sentences


@dataclass
class LayerStatistics:
    """Float64 sums gathered for one layer (see :func:`collect_statistics`).

    ``count`` tokens were seen; ``total`` is ``sum x`` and ``gram`` ``sum x x^T`` over them.
    ``source`` names the layer whose accumulation this one shares (``None`` when the layer
    owns it; then ``total``/``gram`` are this layer's). ``grad_count`` and ``grad_gram``
    (``sum g g^T`` divided by the number of probes) are filled when gradients were requested.
    With ``weight_inputs``, ``weight_sum``, ``weighted_total`` and ``weighted_gram`` are the same
    sums with each token weighted by its output sensitivity ``w_t`` (see
    :func:`collect_statistics`), and :meth:`mean`, :meth:`covariance` and
    :meth:`second_moment` are the weighted averages.
    """

    count: int = 0
    total: np.ndarray | None = None
    gram: np.ndarray | None = None
    source: str | None = None
    grad_count: int = 0
    grad_gram: np.ndarray | None = None
    weight_sum: float = 0.0
    weighted_total: np.ndarray | None = None
    weighted_gram: np.ndarray | None = None

    def _sums(self) -> tuple[float, np.ndarray, np.ndarray]:
        if self.weight_sum > 0 and self.weighted_gram is not None:
            return self.weight_sum, self.weighted_total, self.weighted_gram
        return float(max(self.count, 1)), self.total, self.gram

    def mean(self) -> np.ndarray:
        n, total, _ = self._sums()
        return total / n

    def covariance(self) -> np.ndarray:
        """Centred covariance per token, ``E[(x - mu)(x - mu)^T]``."""
        n, total, gram = self._sums()
        mu = total / n
        cov = gram / n - np.outer(mu, mu)
        return 0.5 * (cov + cov.T)

    def second_moment(self) -> np.ndarray:
        """Uncentred ``E[x x^T]`` per token."""
        n, _, gram = self._sums()
        return gram / n

    def output_metric(self) -> np.ndarray | None:
        """``E[g g^T]`` per token, or ``None`` without gradients."""
        if self.grad_gram is None or self.grad_count == 0:
            return None
        return self.grad_gram / self.grad_count


def model_output(out: Any) -> torch.Tensor:
    """The tensor that stands for a model's output in the calibration objective.

    A tensor is used as is; a mapping gives ``"sentence_embedding"`` (sentence-transformers),
    else ``"last_hidden_state"``, ``"logits"`` or its first tensor value; a tuple or list its
    first tensor.
    """
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        for key in ("sentence_embedding", "last_hidden_state", "logits"):
            if isinstance(out.get(key), torch.Tensor):
                return out[key]
        values = list(out.values())
    elif isinstance(out, (tuple, list)):
        values = list(out)
    else:
        values = [getattr(out, k, None) for k in ("last_hidden_state", "logits")]
    for v in values:
        if isinstance(v, torch.Tensor):
            return v
    raise TypeError(f"cannot find a tensor in the model's output of type {type(out).__name__}")


def is_sentence_transformer(model: nn.Module) -> bool:
    """True for sentence-transformers models (they tokenize text themselves)."""
    return hasattr(model, "tokenize") and hasattr(model, "encode")


def text_batches(model: nn.Module, sentences: list[str], batch_size: int) -> list[dict]:
    """Tokenised batches for a sentence-transformers model, sorted by length to limit padding."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = [sentences[i] for i in order[start : start + batch_size]]
        features = model.tokenize(chunk)
        batches.append({k: v for k, v in features.items() if isinstance(v, torch.Tensor)})
    return batches


def run_model(model: nn.Module, batch: Any) -> Any:
    """One forward call: a tensor is passed positionally, a mapping as keywords (as Hugging
    Face models take it) unless the model is a sentence-transformers model (it takes the dict)."""
    device = _model_device(model)
    if isinstance(batch, torch.Tensor):
        return model(batch.to(device))
    if isinstance(batch, Mapping):
        batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        if is_sentence_transformer(model):
            return model(dict(batch))
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*[b.to(device) if isinstance(b, torch.Tensor) else b for b in batch])
    raise TypeError(
        "calibration batches must be tensors, tuples of tensors or mappings of tensors, "
        f"got {type(batch).__name__}"
    )


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def batch_mask(batch: Any) -> torch.Tensor | None:
    """The token mask of a batch (``attention_mask``), or ``None``."""
    if isinstance(batch, Mapping) and isinstance(batch.get("attention_mask"), torch.Tensor):
        return batch["attention_mask"].bool()
    return None


def _input_of(module: nn.Module, args: tuple) -> torch.Tensor | None:
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    return None


def collect_statistics(
    model: nn.Module,
    modules: Mapping[str, nn.Module],
    batches: Iterable[Any],
    *,
    gradients: bool = False,
    probes: int = 2,
    random_state: int | None = 0,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    weight_inputs: bool = False,
) -> dict[str, LayerStatistics]:
    """Accumulate input (and optionally output-gradient) statistics of ``modules``.

    Parameters
    ----------
    model : torch.nn.Module
        The model, run in eval mode (restored afterwards); its weights are not changed.
    modules : mapping of str to torch.nn.Module
        The layers to observe, by name.
    batches : iterable
        Calibration batches as :func:`run_model` takes them; an ``attention_mask`` in a mapping
        batch masks padding tokens out of every sum.
    gradients : bool, default False
        Also accumulate the output metric ``E[J^T J]`` with ``probes`` random projections of
        :func:`model_output` per batch (one backward pass each).
    probes : int, default 2
        Random projections per batch when ``gradients``.
    random_state : int or None, default 0
        Seed of the random projections.
    progress : callable, optional
        Wraps the batch iterable (e.g. ``tqdm``).
    weight_inputs : bool, default False
        With ``gradients``: also accumulate the input sums with each token ``t`` weighted by
        ``w_t = sum_j ||g_(j,t)||^2`` over the layers ``j`` that read that input (the probe
        estimate of ``||J_(j,t)||_F^2``). The layer loss ``sum_t ||J_t dW x_t||^2`` is a sum of
        Kronecker products ``sum_t J_t^T J_t (x) x_t x_t^T``; with ``G = E[J^T J]``, the input
        factor that best fits it (the first step of the alternating nearest-Kronecker fit,
        from ``G`` proportional to the identity) is the ``w``-weighted covariance, not the
        plain one: tokens the output is more sensitive to (those of short sentences, under
        mean pooling) count for more, as they do in the loss.

    Returns
    -------
    dict of str to LayerStatistics
        One entry per name in ``modules``; a layer the calibration never reached has
        ``count == 0``.

    Examples
    --------
    >>> import torch
    >>> from sparselin.torch._calibration import collect_statistics
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> x = torch.randn(10, 4)
    >>> stats = collect_statistics(net, {"0": net[0], "1": net[1]}, [x[:5], x[5:]])
    >>> gram = torch.from_numpy(stats["0"].gram).float()
    >>> stats["0"].count, bool(torch.allclose(gram, x.T @ x, atol=1e-4))
    (10, True)
    """
    stats = {name: LayerStatistics() for name in modules}
    state: dict[str, Any] = {"mask": None, "seen": {}, "outputs": {}, "inputs": {}, "owner": {}}
    weight_inputs = bool(weight_inputs and gradients)
    gen = torch.Generator().manual_seed(0 if random_state is None else int(random_state))

    def rows(t: torch.Tensor) -> torch.Tensor:
        mask = state["mask"]
        if mask is not None and t.dim() >= 2 and tuple(t.shape[:-1]) == tuple(mask.shape):
            return t[mask.to(t.device)]
        return t.reshape(-1, t.shape[-1])

    def make_hook(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, out: Any) -> Any:
            x = _input_of(module, args)
            if x is None:
                return None
            key = (x.data_ptr(), tuple(x.shape), x.dtype)
            st = stats[name]
            owner = state["seen"].get(key)
            if owner is not None:
                if st.source is None and owner[0] != name:
                    st.source = owner[0]
                state["owner"][name] = owner[0]
            else:
                state["owner"][name] = name
                # The tensor is kept referenced until the batch ends, so that its memory
                # cannot be reused by another tensor with the same address in this forward.
                state["seen"][key] = (name, x)
                if st.source is None:
                    xr = rows(x.detach()).to(torch.float64)
                    s = xr.sum(0).cpu().numpy()
                    g = (xr.T @ xr).cpu().numpy()
                    if st.gram is None:
                        st.total, st.gram = s, g
                    else:
                        st.total += s
                        st.gram += g
                    st.count += xr.shape[0]
                    if weight_inputs:
                        state["inputs"][name] = (xr, torch.zeros(xr.shape[0], dtype=torch.float64))
            if gradients and isinstance(out, torch.Tensor):
                if not out.requires_grad:
                    out = out.detach().requires_grad_(True)
                    state["outputs"][name] = out
                    return out
                state["outputs"][name] = out
            return None

        return hook

    was_training = model.training
    model.eval()
    handles = [m.register_forward_hook(make_hook(name)) for name, m in modules.items()]
    try:
        iterator = progress(batches) if progress is not None else batches
        for batch in iterator:
            state["mask"] = batch_mask(batch)
            state["seen"] = {}
            state["outputs"] = {}
            state["inputs"] = {}
            state["owner"] = {}
            with torch.set_grad_enabled(gradients):
                out = model_output(run_model(model, batch))
                if gradients and state["outputs"]:
                    names = list(state["outputs"])
                    tensors = [state["outputs"][n] for n in names]
                    for p in range(probes):
                        r = torch.randn(out.shape, generator=gen, dtype=torch.float32)
                        r = r.to(device=out.device, dtype=out.dtype)
                        grads = torch.autograd.grad(
                            (out * r).sum(),
                            tensors,
                            retain_graph=p < probes - 1,
                            allow_unused=True,
                        )
                        for n, g in zip(names, grads, strict=True):
                            if g is None:
                                continue
                            gr = rows(g.detach()).to(torch.float32)
                            gg = (gr.T @ gr).to(torch.float64).cpu().numpy() / probes
                            st = stats[n]
                            if st.grad_gram is None:
                                st.grad_gram = gg
                            else:
                                st.grad_gram += gg
                            if p == 0:
                                st.grad_count += gr.shape[0]
                            held = state["inputs"].get(state["owner"].get(n))
                            if held is not None and held[1].shape[0] == gr.shape[0]:
                                held[1].add_((gr.to(torch.float64) ** 2).sum(1).cpu() / probes)
                    for n, (xr, w) in state["inputs"].items():
                        if float(w.sum()) > 0:
                            st = stats[n]
                            wx = xr * w.to(xr.device)[:, None]
                            s = wx.sum(0).cpu().numpy()
                            g = (xr.T @ wx).cpu().numpy()
                            if st.weighted_gram is None:
                                st.weighted_total, st.weighted_gram = s, g
                            else:
                                st.weighted_total += s
                                st.weighted_gram += g
                            st.weight_sum += float(w.sum())
    finally:
        for h in handles:
            h.remove()
        state.clear()
        model.train(was_training)
    # Layers that shared an input point at the owner of its sums.
    for st in stats.values():
        if st.source is not None:
            owner = stats[st.source]
            while owner.source is not None:
                st.source = owner.source
                owner = stats[owner.source]
            st.count, st.total, st.gram = owner.count, owner.total, owner.gram
            st.weight_sum = owner.weight_sum
            st.weighted_total, st.weighted_gram = owner.weighted_total, owner.weighted_gram
    return stats


def select_layers(
    model: nn.Module,
    layers: str | Callable[[str, nn.Module], bool] | None = None,
) -> dict[str, nn.Module]:
    """The compressible layers of ``model``: ``nn.Linear`` and Conv1D-style (transposed) layers.

    ``layers`` is ``None`` (all of them), a regular expression searched in each module's
    qualified name, or a predicate ``(name, module) -> bool``.
    """
    pattern = re.compile(layers) if isinstance(layers, str) else None
    chosen = {}
    for name, module in model.named_modules():
        if not (isinstance(module, nn.Linear) or is_conv1d(module)):
            continue
        if pattern is not None and not pattern.search(name):
            continue
        if callable(layers) and not isinstance(layers, str) and not layers(name, module):
            continue
        chosen[name] = module
    return chosen


def is_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2): ``y = x @ W + b`` with ``W`` stored ``(in, out)``."""
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D"
        and isinstance(weight, torch.Tensor)
        and weight.dim() == 2
        and hasattr(module, "nf")
    )


def weight_matrix(module: nn.Module) -> torch.Tensor:
    """The ``(out, in)`` weight of a Linear or Conv1D layer (a view, not a copy)."""
    return module.weight.T if is_conv1d(module) else module.weight
