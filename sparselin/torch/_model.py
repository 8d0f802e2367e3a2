"""Whole-model compression: calibration, one global rank budget, shared bases, in-place swap.

The route (``../shared/research/model-compression.md``, sections 3, 5, 7, 10, 11 and 14):

1. Calibration statistics per layer (:mod:`._calibration`): the centred input covariance ``C``
   and input mean (float64, padding masked) and, for ``method="fisher"``, the output metric
   ``G = E[J^T J]`` from random projections of the model's output, with each token's input
   weighted by its sensitivity ``||J_t||^2`` (``input_weighting="sensitivity"``).
2. For every group of matrices that read the same input (Q, K and V), every way of sharing an
   input-side basis among them is a candidate; each candidate block is solved exactly in the
   two-sided metric: with ``C = Z Z^T`` (clamped eigendecomposition, so LayerNorm outputs whose
   ``C`` is singular are fine) and the stack ``M = [G_1^(1/2) W_1 Z; ...]``, the top-``k``
   right singular vectors ``V_k`` of ``M`` give the basis ``B = V_k^T Z^+`` and coefficients
   ``A_j = W_j Z V_k``; dropping component ``i`` costs exactly ``s_i^2``. No inverse of ``G``
   is needed and ``G`` may be singular (a layer feeding a LayerNorm).
3. One global budget (``sparselin.linalg._allocation``, torch-free so that the command line
   shares it): the predicted losses are in end-to-end units with ``"fisher"`` (in units of
   each layer's output energy for ``"whitened"``, of each weight's energy for ``"svd"``), a
   dense matrix is always a legal choice, and with
   ``refine_allocation`` each group's curve is rescaled by its *measured* end-to-end effect on
   the calibration outputs before a second allocation.
4. The chosen layers are replaced in place by :class:`~sparselin.torch.LowRankLinear` or
   :class:`~sparselin.torch.SharedBasisLinear`, with the bias refitted to absorb the input
   mean (``b' = b + (W - W') mu``), which is why the covariance is centred.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._threads import blas_limited
from ..linalg._allocation import DENSE, Block, Unit, allocate, ranks_for_tolerance
from ..linalg._factorize import _stacked_spectrum
from ._calibration import (
    LayerStatistics,
    calibration_sentences,
    collect_statistics,
    is_conv1d,
    is_sentence_transformer,
    model_output,
    run_model,
    select_layers,
    text_batches,
    weight_matrix,
)
from ._layers import LowRankLinear, SharedBasisLinear, mark_conv1d_source, swap_module

__all__ = ["CompressionReport", "LayerReport", "compress_model"]

_METHODS = ("svd", "whitened", "fisher")
# Eigenvalues of C below this fraction of the largest are treated as zero: they carry no
# calibration signal and their inverse square roots would only amplify rounding.
_EIG_FLOOR = 1e-10


@dataclass
class LayerReport:
    """One compressed (or kept) layer of a :class:`CompressionReport`.

    ``kind`` is ``"lowrank"``, ``"shared"`` (input basis shared with the layers in ``group``;
    the basis parameters are charged to the first layer of the group), ``"dense"`` (kept as is)
    or ``"skipped"`` (never reached by the calibration data, off the output path, or with a
    weight tied to another module; kept as is and outside the budget).
    ``params_before``/``params_after`` count weight parameters (biases are unchanged
    and reported once in the totals). ``error`` is the relative output error on the
    calibration inputs, ``||(W - W') C^(1/2)|| / ||W E[x x^T]^(1/2)||`` (the bias absorbs the
    mean), or the relative Frobenius error without calibration.
    """

    name: str
    shape: tuple[int, int]
    kind: str
    rank: int | None
    params_before: int
    params_after: int
    error: float
    group: tuple[str, ...] = ()
    predicted_loss: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "kind": self.kind,
            "rank": self.rank,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "error": self.error,
            "group": list(self.group),
            "predicted_loss": self.predicted_loss,
        }


@dataclass
class CompressionReport:
    """What :func:`compress_model` did, layer by layer, with totals that add up.

    ``params_before`` / ``params_after`` are the sums over ``layers`` (weight parameters of
    the selected layers; biases, ``bias_params``, are unchanged). ``ratio`` is
    ``params_after / params_before`` and ``budget`` the number of weight parameters that
    ``target`` allowed (``None`` with ``tol``).
    """

    layers: list[LayerReport]
    method: str
    allocation: str
    target: float | None
    tol: float | None
    budget: int | None
    bias_params: int
    seconds: float
    calibration_tokens: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def params_before(self) -> int:
        return sum(r.params_before for r in self.layers)

    @property
    def params_after(self) -> int:
        return sum(r.params_after for r in self.layers)

    @property
    def ratio(self) -> float:
        return self.params_after / max(self.params_before, 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: settings, totals and one entry per layer."""
        return {
            "method": self.method,
            "allocation": self.allocation,
            "target": self.target,
            "tol": self.tol,
            "budget": self.budget,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "ratio": self.ratio,
            "bias_params": self.bias_params,
            "seconds": self.seconds,
            "calibration_tokens": self.calibration_tokens,
            "notes": list(self.notes),
            "layers": [r.to_dict() for r in self.layers],
        }

    def __str__(self) -> str:
        width = max([len(r.name) for r in self.layers] + [5])
        head = (
            f"{'layer':<{width}}  {'shape':>11}  {'kind':<7}  {'rank':>5}  "
            f"{'before':>9}  {'after':>9}  {'error':>7}"
        )
        lines = [head, "-" * len(head)]
        for r in self.layers:
            shape = f"{r.shape[0]}x{r.shape[1]}"
            rank = "-" if r.rank is None else str(r.rank)
            lines.append(
                f"{r.name:<{width}}  {shape:>11}  {r.kind:<7}  {rank:>5}  "
                f"{r.params_before:>9}  {r.params_after:>9}  {r.error:>7.4f}"
            )
        lines.append("-" * len(head))
        lines.append(
            f"{'total':<{width}}  {'':>11}  {'':<7}  {'':>5}  {self.params_before:>9}  "
            f"{self.params_after:>9}  ratio {self.ratio:.4f}"
        )
        setting = f"target {self.target}" if self.target is not None else f"tol {self.tol}"
        lines.append(
            f"method {self.method}, allocation {self.allocation}, {setting}, {self.seconds:.1f} s"
        )
        lines.extend(self.notes)
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # pragma: no cover - IPython
        p.text(str(self))


# --------------------------------------------------------------------------------------------
# Numerical core (NumPy, float64)
# --------------------------------------------------------------------------------------------


@dataclass
class _InputMetric:
    Z: np.ndarray  # (n, r): C ~= Z Z^T
    Zpinv: np.ndarray  # (r, n): Z^+ on the kept eigen-directions
    mean: np.ndarray | None
    second: float  # trace of E[x x^T] (for relative errors)
    cov: np.ndarray | None


def _input_metric(stats: LayerStatistics | None, n: int) -> _InputMetric:
    if stats is None or stats.count == 0:
        eye = np.eye(n)
        return _InputMetric(eye, eye, None, float(n), None)
    cov = stats.covariance()
    mean = stats.mean()
    second = float(np.trace(cov) + mean @ mean)
    scale = float(np.trace(cov)) / n
    if scale <= 0:
        return _InputMetric(np.zeros((n, 0)), np.zeros((0, n)), mean, second, cov)
    # Any square root of C gives the same projection; a damped Cholesky is an order of
    # magnitude faster than eigh at n = 1536. The centred covariance of LayerNorm outputs is
    # exactly singular, which the relative damping covers; if Cholesky still fails, the
    # clamped eigendecomposition (directions below _EIG_FLOOR dropped) always works.
    try:
        L = np.linalg.cholesky(cov + _EIG_FLOOR * scale * np.eye(n))
        Linv = np.linalg.solve(L, np.eye(n))
        if np.all(np.isfinite(Linv)):
            return _InputMetric(L, Linv, mean, second, cov)
    except np.linalg.LinAlgError:
        pass
    lam, Q = np.linalg.eigh(cov)
    keep = lam > _EIG_FLOOR * max(float(lam[-1]), 0.0)
    lam, Q = lam[keep], Q[:, keep]
    root = np.sqrt(lam)
    return _InputMetric(Q * root, (Q / root).T, mean, second, cov)


@dataclass
class _Spectrum:
    """Exact weighted SVD of a block (one matrix or a stack sharing its input basis)."""

    members: tuple[str, ...]
    s2: np.ndarray  # squared singular values, descending
    V: np.ndarray  # (r, p) right singular vectors in whitened input coordinates
    metric: _InputMetric
    weights: list[np.ndarray]  # the (m_j, n) float64 weights


def _spectrum(
    members: Sequence[str],
    weights: Sequence[np.ndarray],
    metric: _InputMetric,
    outs: Sequence[np.ndarray | float],
    cache: dict | None = None,
) -> _Spectrum:
    """Right singular pairs of ``M = [G_1^(1/2) W_1 Z; ...]`` (``outs``: each ``G_j`` or a
    scalar weight ``w_j`` for ``G_j = w_j I``), from the weighted-spectrum core that
    ``compress_linear`` and the command line share
    (:func:`sparselin.linalg._factorize._stacked_spectrum`, right side only). ``cache`` keeps
    each member's share, so every subset of Q, K and V costs one small ``eigh``.
    """
    r = metric.Z.shape[1]
    if r == 0:
        # The inputs never vary (e.g. a layer fed by a zeroed one: only its bias reaches it),
        # so every W' has zero loss in this metric and the bias refit carries W mu. One zero
        # component keeps the smallest factored rank at 1 (a rank-0 layer does not exist;
        # the allocator used to pick rank 0 and building the layer raised).
        return _Spectrum(tuple(members), np.zeros(1), np.zeros((0, 1)), metric, list(weights))
    _, s, Qt, _ = _stacked_spectrum(
        list(weights),
        in_root=metric.Z,
        outs=list(outs),
        cache=cache,
        keys=list(members),
        left=False,
    )
    return _Spectrum(tuple(members), s * s, Qt.T, metric, list(weights))


def _block(spec: _Spectrum, scale: float = 1.0, name: str = "") -> Block:
    n = spec.weights[0].shape[1]
    m_total = sum(W.shape[0] for W in spec.weights)
    rank_cost = n + m_total
    dense_cost = n * m_total
    # Beyond the break-even rank a dense block is cheaper and exact.
    kmax = min(len(spec.s2), max(1, math.ceil(dense_cost / rank_cost)))
    tail = np.concatenate([np.cumsum(spec.s2[::-1])[::-1], [0.0]])
    losses = scale * tail[: kmax + 1]
    return Block(losses=losses, rank_cost=rank_cost, dense_cost=dense_cost, name=name)


def _factors(spec: _Spectrum, k: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Basis ``B`` ``(k, n)`` and coefficients ``A_j`` ``(m_j, k)``: ``W_j' = A_j B``."""
    Vk = spec.V[:, :k]
    basis = Vk.T @ spec.metric.Zpinv
    coefs = [W @ (spec.metric.Z @ Vk) for W in spec.weights]
    return basis, coefs


def _balance(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Same product, both factors with the singular values' square roots (PiSSA-style)."""
    Q, R = np.linalg.qr(A)
    P, s, Qt = np.linalg.svd(R @ B, full_matrices=False)
    root = np.sqrt(s)
    return (Q @ P) * root, root[:, None] * Qt


def _relative_error(W: np.ndarray, Wc: np.ndarray, metric: _InputMetric) -> float:
    D = W - Wc
    if metric.cov is None:
        return float(np.linalg.norm(D) / max(np.linalg.norm(W), 1e-300))
    num = float(np.sum((D @ metric.cov) * D))
    den = float(np.sum((W @ (metric.cov + np.outer(metric.mean, metric.mean))) * W))
    return math.sqrt(max(num, 0.0) / den) if den > 0 else 0.0


def _partitions(items: list[int]) -> Iterable[list[list[int]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _partitions(rest):
        for i in range(len(part)):
            yield [*part[:i], [first, *part[i]], *part[i + 1 :]]
        yield [[first], *part]


# --------------------------------------------------------------------------------------------
# The public function
# --------------------------------------------------------------------------------------------


def _check_args(model, target, tol, method, allocation, share_bases, probes, batch_size):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if (target is None) == (tol is None):
        raise ValueError("give exactly one of target (fraction of parameters) and tol")
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, (int, float)):
            raise TypeError(f"target must be a float in (0, 1], got {type(target).__name__}")
        if not (0.0 < float(target) <= 1.0) or not math.isfinite(target):
            raise ValueError(f"target must be in (0, 1], got {target!r}")
    if tol is not None:
        if isinstance(tol, bool) or not isinstance(tol, (int, float)):
            raise TypeError(f"tol must be a float in (0, 1), got {type(tol).__name__}")
        if not (0.0 < float(tol) < 1.0):
            raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if allocation not in ("global", "uniform"):
        raise ValueError(f"allocation must be 'global' or 'uniform', got {allocation!r}")
    if not isinstance(share_bases, bool):
        raise TypeError(f"share_bases must be a bool, got {type(share_bases).__name__}")
    for value, name in ((probes, "probes"), (batch_size, "batch_size")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _batches(model: nn.Module, calibration: Any, batch_size: int) -> list[Any] | None:
    if calibration is None:
        if is_sentence_transformer(model):
            return text_batches(model, calibration_sentences(), batch_size)
        return None
    if isinstance(calibration, str):
        raise TypeError("calibration must be a list of sentences or of batches, not one str")
    if isinstance(calibration, torch.Tensor):
        return [calibration[i : i + batch_size] for i in range(0, len(calibration), batch_size)]
    items = list(calibration)
    if items and all(isinstance(s, str) for s in items):
        if not is_sentence_transformer(model):
            raise TypeError(
                "calibration sentences need a sentence-transformers model (one with tokenize); "
                "pass tokenised batches for other models"
            )
        return text_batches(model, items, batch_size)
    if not items:
        raise ValueError("calibration must not be empty")
    return items


def _progress(enabled: bool, total: int | None = None, desc: str = "") -> Callable:
    if not enabled:
        return lambda it: it
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency of the torch extra
        return lambda it: it
    return lambda it: tqdm(it, total=total, desc=desc, leave=False)


def compress_model(
    model: nn.Module,
    *,
    target: float | None = None,
    tol: float | None = None,
    method: str = "fisher",
    methods: str | Sequence[str] | None = None,
    calibration: Any = None,
    share_bases: bool = True,
    allocation: str = "global",
    layers: str | Callable[[str, nn.Module], bool] | None = None,
    refine_allocation: bool = True,
    refit_bias: bool = True,
    probes: int = 2,
    batch_size: int = 32,
    max_calibration: int | None = 1024,
    random_state: int | None = 0,
    progress: bool = True,
    input_weighting: str = "sensitivity",
) -> CompressionReport:
    """Compress the linear layers of ``model`` in place under one global parameter budget.

    Parameters
    ----------
    model : torch.nn.Module
        The model; its ``nn.Linear`` and Conv1D-style layers (weights stored ``(in, out)``, as
        Hugging Face's GPT-2 ``Conv1D``) that ``layers`` selects are replaced in place.
    target : float in (0, 1], optional
        Fraction of the selected layers' weight parameters to keep, e.g. ``0.8``.
    tol : float in (0, 1), optional
        Instead of ``target``: each layer (or shared group) takes the smallest rank whose
        relative error in the method's metric is at most ``tol``. Exactly one of ``target``
        and ``tol`` is given.
    method : {"fisher", "whitened", "svd"}, default "fisher"
        ``"svd"``: plain truncated SVD (no data needed); ``"whitened"``: minimise the layer's
        output error on the calibration inputs (SVD-LLM, centred); ``"fisher"``: also weight
        the output by ``E[J^T J]``, the sensitivity of the model's output to that layer's
        output, measured with ``probes`` backward passes per calibration batch.
    methods : str or sequence of one str, optional
        The issue's spelling of ``method`` (``methods="whitened"`` or ``methods=["whitened"]``);
        when given it overrides ``method``. One method per call: the allocation compares
        losses in that method's metric, and the metrics of different methods are not in the
        same units.
    calibration : optional
        ``None`` (for a sentence-transformers model: the English sentences that ship with
        sparselin, ``sparselin/data/calibration.txt``; other models need
        calibration unless ``method="svd"``), a list of sentences (sentence-transformers
        models), a tensor of inputs (split into batches), or an iterable of batches (tensors,
        tuples of tensors, or mappings passed as keyword arguments; an ``attention_mask``
        entry masks padding out of the statistics).
    share_bases : bool, default True
        Let layers that read the same input tensor (detected during calibration, e.g. Q, K
        and V) share one input-side basis where that lowers the predicted loss at equal cost.
    allocation : {"global", "uniform"}, default "global"
        ``"global"``: ranks go where they lower the predicted loss most, a layer may stay
        dense; ``"uniform"``: the same parameter ratio for every layer (no sharing).
    layers : str or callable, optional
        Regular expression searched in module names, or predicate ``(name, module) -> bool``.
    refine_allocation : bool, default True
        With ``method="fisher"`` and a ``target``: measure each group's actual effect on the
        model's output at its allocated rank, rescale its predicted losses by that ratio and
        allocate again (one forward pass over a calibration subset per group).
    refit_bias : bool, default True
        Refit biases to absorb the input mean, ``b' = b + (W - W') mu``.
    probes : int, default 2
        Random output projections per batch for ``method="fisher"``.
    batch_size : int, default 32
        Sentences per batch when calibration is text.
    max_calibration : int or None, default 1024
        Use at most this many calibration sentences (the shortest and longest are both kept
        by taking every ``len / max_calibration``-th sentence).
    random_state : int or None, default 0
        Seed of the random projections.
    progress : bool, default True
        Show tqdm progress bars.
    input_weighting : {"sensitivity", "uniform"}, default "sensitivity"
        With ``method="fisher"``: how calibration tokens count in each layer's input
        covariance (and mean, for the bias refit). ``"uniform"``: every token alike.
        ``"sensitivity"``: each token in proportion to how much the model's output depends
        on that layer's output at that token (``||J_t||_F^2``, from the same probes as ``G``),
        which makes ``G`` and ``C`` a better Kronecker-factored fit of the true end-to-end
        loss ``sum_t ||J_t (W - W') x_t||^2`` (see
        ``sparselin.torch._calibration.collect_statistics``). Under mean pooling the
        tokens of short sentences weigh more, which is where the largest embedding errors
        were.

    Returns
    -------
    CompressionReport
        Per-layer kind, rank, parameters before/after and error; totals add up.

    Raises
    ------
    ValueError
        On bad arguments, when no layer is selected, or when ``target`` cannot be met.
    TypeError
        On arguments of the wrong type.

    Examples
    --------
    >>> import torch
    >>> from sparselin.torch import compress_model
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    >>> x = torch.randn(256, 32)
    >>> report = compress_model(net, target=0.6, method="whitened", calibration=x, progress=False)
    >>> report.params_after <= 0.6 * report.params_before
    True
    >>> type(net[0]).__name__
    'LowRankLinear'
    """
    if methods is not None:
        chosen_methods = [methods] if isinstance(methods, str) else list(methods)
        if len(chosen_methods) != 1:
            raise ValueError(
                "methods must name exactly one method (one metric per allocation), "
                f"got {methods!r}"
            )
        method = chosen_methods[0]
    _check_args(model, target, tol, method, allocation, share_bases, probes, batch_size)
    if input_weighting not in ("sensitivity", "uniform"):
        raise ValueError(
            f"input_weighting must be 'sensitivity' or 'uniform', got {input_weighting!r}"
        )
    # Hundreds of small LAPACK calls: one BLAS thread is far faster than a contended pool
    # (sparselin._threads.blas_limited has the measurements).
    with blas_limited():
        start = time.perf_counter()
        chosen = select_layers(model, layers)
        if not chosen:
            raise ValueError("layers selected no nn.Linear or Conv1D layer of the model")
        if "" in chosen:  # was AttributeError "'Linear' object has no attribute ''"
            raise ValueError(
                "model is itself a linear layer, which cannot be replaced in place; use "
                "compress_linear(model, ...), which returns its replacement"
            )
        for name, module in chosen.items():
            # Checked before calibration: a NaN weight otherwise surfaced as LAPACK's "SVD did
            # not converge" (LinAlgError) after the whole calibration pass.
            for part, t in (("weight", weight_matrix(module)), ("bias", _bias_of(module))):
                if t is not None and not bool(torch.isfinite(t.detach()).all()):
                    raise ValueError(f"layer {name!r}: {part} contains NaN or infinity")
        if calibration is None and is_sentence_transformer(model) and max_calibration is not None:
            sentences = calibration_sentences()
            step = max(1, len(sentences) // max_calibration)
            calibration = sentences[::step][:max_calibration]
        batches = _batches(model, calibration, batch_size)
        if batches is None and method != "svd":
            raise ValueError(
                f"method={method!r} needs calibration data for a model that is not a "
                "sentence-transformers model"
            )
        if batches is None and method == "svd" and refine_allocation and target is not None:
            refine_allocation = False
        notes: list[str] = []

        stats: dict[str, LayerStatistics] = {}
        if batches is not None:
            stats = collect_statistics(
                model,
                chosen,
                batches,
                gradients=method == "fisher",
                weight_inputs=method == "fisher" and input_weighting == "sensitivity",
                probes=probes,
                random_state=random_state,
                progress=_progress(progress, len(batches), "calibration"),
            )
        # Layers the calibration never reached are left alone and outside the budget.
        active = {n: m for n, m in chosen.items() if not stats or stats[n].count > 0}
        skipped = [n for n in chosen if n not in active]
        if skipped:
            notes.append(f"not reached by calibration, kept: {', '.join(skipped)}")
        if method == "fisher":
            # A layer that runs but whose output never reaches the model's output (BERT's
            # pooler under mean pooling) has no gradient: it has no end-to-end loss to
            # allocate against, so it is left alone and kept out of the budget.
            off_path = [n for n in active if stats[n].output_metric() is None]
            for n in off_path:
                del active[n]
            skipped += off_path
            if off_path:
                notes.append(f"output not on the model's output path, kept: {', '.join(off_path)}")
        # A tied weight (e.g. a decoder tied to the embedding) lives on in its other owner:
        # factoring this copy would add parameters while the report counted it as saved,
        # and would untie the pair. Such layers are kept dense, outside the budget.
        tied = [n for n in _tied_layers(model, chosen) if n in active]
        for n in tied:
            del active[n]
        skipped += tied
        if tied:
            notes.append(f"weight tied to another module, kept: {', '.join(tied)}")
        if not active:
            if tied:
                raise ValueError(
                    "every selected layer that the calibration reached has a tied weight "
                    f"(shared with another module): {', '.join(tied)}"
                )
            raise ValueError("the calibration data reached none of the selected layers")

        weights = {
            n: weight_matrix(m).detach().to("cpu", torch.float64).numpy()
            for n, m in active.items()
        }
        # Groups of layers that read the same input.
        groups: dict[str, list[str]] = {}
        for n in active:
            src = stats[n].source if stats and stats[n].source in active else None
            groups.setdefault(src or n, []).append(n)
        metrics = {
            key: _input_metric(stats.get(key) if method != "svd" else None, weights[key].shape[1])
            for key in groups
        }
        if method == "svd" and stats:
            # Plain SVD ignores the data for the factors, but the bias refit still uses the mean.
            for key in groups:
                metrics[key].mean = stats[key].mean()

        def out_root(name: str) -> np.ndarray | float:
            W = weights[name]
            metric = metrics[_group_of(groups, name)]
            if method == "fisher":
                G = stats[name].output_metric()
                if G is not None:
                    return G
            # Units: each layer's error relative to its own output energy (or weight energy).
            energy = float(np.sum((W @ metric.cov) * W)) if metric.cov is not None else 0.0
            energy = energy or float(np.sum(W**2))
            return 1.0 / energy if energy > 0 else 1.0

        roots = {n: out_root(n) for n in active}
        spectra: dict[tuple[str, ...], _Spectrum] = {}
        member_cache: dict = {}

        def spectrum(members: tuple[str, ...]) -> _Spectrum:
            if members not in spectra:
                key = _group_of(groups, members[0])
                spectra[members] = _spectrum(
                    members,
                    [weights[m] for m in members],
                    metrics[key],
                    [roots[m] for m in members],
                    member_cache,
                )
            return spectra[members]

        units: list[Unit] = []
        unit_parts: list[list[list[tuple[str, ...]]]] = []
        sharing = share_bases and allocation == "global"
        for key, names in _progress(progress, len(groups), "factorising")(list(groups.items())):
            if sharing and 1 < len(names) <= 4:
                parts = list(_partitions(list(range(len(names)))))
            elif sharing and len(names) > 4:
                parts = [[[i] for i in range(len(names))], [list(range(len(names)))]]
            else:
                parts = [[[i] for i in range(len(names))]]
            configs, labels = [], []
            for part in parts:
                blocks_members = [tuple(names[i] for i in sorted(p)) for p in part]
                configs.append([_block(spectrum(bm), name="+".join(bm)) for bm in blocks_members])
                labels.append(blocks_members)
            units.append(Unit(configurations=configs, name=key))
            unit_parts.append(labels)

        total = sum(weights[n].size for n in active)
        budget = None
        if tol is not None:
            alloc_config, alloc_ranks = _tolerance_allocation(units, tol)
        elif allocation == "uniform":
            budget = math.floor(target * total)
            alloc_config = [0] * len(units)
            alloc_ranks = []
            for unit in units:
                rk = []
                for b in unit.configurations[0]:
                    k = int(target * b.dense_cost // b.rank_cost)
                    rk.append(DENSE if target >= 1.0 else max(min(k, b.max_rank), b.min_rank))
                alloc_ranks.append(rk)
        else:
            budget = math.floor(target * total)
            result = allocate(units, budget)
            alloc_config, alloc_ranks = result.configuration, result.ranks
            if refine_allocation and method == "fisher" and batches is not None:
                scales = _measure_effects(
                    model,
                    active,
                    units,
                    unit_parts,
                    alloc_config,
                    alloc_ranks,
                    spectrum,
                    metrics,
                    groups,
                    batches,
                    refit_bias,
                    target,
                    progress,
                )
                for unit, scale in zip(units, scales, strict=True):
                    for blocks in unit.configurations:
                        for b in blocks:
                            b.losses = b.losses * scale
                result = allocate(units, budget)
                alloc_config, alloc_ranks = result.configuration, result.ranks

        # Build and swap the modules.
        reports: dict[str, LayerReport] = {}
        for unit, labels, c, ranks in zip(
            units, unit_parts, alloc_config, alloc_ranks, strict=True
        ):
            for members, block, k in zip(labels[c], unit.configurations[c], ranks, strict=True):
                spec = spectrum(members)
                metric = spec.metric
                if k == DENSE:
                    for m in members:
                        W = weights[m]
                        reports[m] = LayerReport(m, W.shape, "dense", None, W.size, W.size, 0.0)
                    continue
                basis, coefs = _factors(spec, k)
                new_modules = []
                for m, A in zip(members, coefs, strict=True):
                    module = active[m]
                    W = weights[m]
                    Wc = A @ basis
                    bias = _bias_of(module)
                    if bias is not None:
                        b = bias.detach().to("cpu", torch.float64).numpy()
                        if refit_bias and metric.mean is not None:
                            b = b + (W - Wc) @ metric.mean
                    else:
                        b = None
                    new_modules.append((m, A, b, Wc))
                like = weight_matrix(active[members[0]])
                if len(members) == 1:
                    m, A, b, Wc = new_modules[0]
                    U, V = _balance(A, basis)
                    layer = LowRankLinear.from_factors(
                        _tensor(U, like), _tensor(V, like), None if b is None else _tensor(b, like)
                    )
                    _swap(model, m, layer)
                    W = weights[m]
                    reports[m] = LayerReport(
                        m,
                        W.shape,
                        "lowrank",
                        k,
                        W.size,
                        k * sum(W.shape),
                        _relative_error(W, _stored(layer), metric),
                        predicted_loss=float(block.losses[k]),
                    )
                else:
                    new = SharedBasisLinear.group(
                        _tensor(basis, like),
                        [_tensor(A, like) for _, A, _, _ in new_modules],
                        [None if b is None else _tensor(b, like) for _, _, b, _ in new_modules],
                    )
                    n_in = basis.shape[1]
                    for i, ((m, _, _, _), layer) in enumerate(zip(new_modules, new, strict=True)):
                        _swap(model, m, layer)
                        W = weights[m]
                        reports[m] = LayerReport(
                            m,
                            W.shape,
                            "shared",
                            k,
                            W.size,
                            W.shape[0] * k + (k * n_in if i == 0 else 0),
                            _relative_error(W, _stored(layer), metric),
                            group=members,
                            predicted_loss=float(block.losses[k]) if i == 0 else 0.0,
                        )
        for n in skipped:
            W = weight_matrix(chosen[n])
            reports[n] = LayerReport(n, tuple(W.shape), "skipped", None, 0, 0, 0.0)
        ordered = [reports[n] for n in chosen]
        bias_params = sum(_bias_of(m).numel() for m in chosen.values() if _bias_of(m) is not None)
        tokens = next((s.count for s in stats.values() if s.count), 0) if stats else 0
        report = CompressionReport(
            layers=ordered,
            method=method,
            allocation=allocation,
            target=None if target is None else float(target),
            tol=None if tol is None else float(tol),
            budget=budget,
            bias_params=bias_params,
            seconds=time.perf_counter() - start,
            calibration_tokens=tokens,
            notes=notes,
        )
        if budget is not None and report.params_after > budget and allocation == "global":
            raise AssertionError("internal error: the allocation exceeds the budget")
        return report


def _group_of(groups: Mapping[str, list[str]], name: str) -> str:
    for key, names in groups.items():
        if name in names:
            return key
    raise KeyError(name)


def _bias_of(module: nn.Module) -> torch.Tensor | None:
    b = getattr(module, "bias", None)
    return b if isinstance(b, torch.Tensor) else None


def _tensor(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=like.device, dtype=like.dtype)


def _swap(model: nn.Module, name: str, new: nn.Module) -> None:
    old = swap_module(model, name, new)
    if is_conv1d(old):
        mark_conv1d_source(new)


def _stored(layer: nn.Module) -> np.ndarray:
    """The weight a built layer applies, in float64: its factors rounded to the layer's dtype
    (a bfloat16 layer's error from the unrounded factors read 0.0098 for a true 0.0102)."""
    return layer.dense_weight().detach().to("cpu", torch.float64).numpy()


def _tied_layers(model: nn.Module, chosen: Mapping[str, nn.Module]) -> list[str]:
    """The chosen layers whose weight is also a parameter of another module (tied weights)."""
    owners: dict[int, set[int]] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        for _, p in module.named_parameters(recurse=False):
            owners.setdefault(id(p), set()).add(id(module))
    return [n for n, m in chosen.items() if len(owners.get(id(m.weight), ())) > 1]


def _tolerance_allocation(units: list[Unit], tol: float) -> tuple[list[int], list[list[int]]]:
    """Per unit, the cheapest configuration whose every block meets ``tol`` (relative loss)."""
    configs, ranks = [], []
    for unit in units:
        best = None
        for c, blocks in enumerate(unit.configurations):
            rk = [ranks_for_tolerance(b, float(b.losses[0]), tol) for b in blocks]
            cost = sum(b.cost(r) for b, r in zip(blocks, rk, strict=True))
            if best is None or cost < best[0]:
                best = (cost, c, rk)
        configs.append(best[1])
        ranks.append(best[2])
    return configs, ranks


@torch.no_grad()
def _embed(model: nn.Module, batches: Sequence[Any]) -> torch.Tensor:
    return torch.cat(
        [model_output(run_model(model, b)).float().reshape(len_of(b), -1) for b in batches]
    )


def len_of(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, Mapping):
        return next(v for v in batch.values() if isinstance(v, torch.Tensor)).shape[0]
    return batch[0].shape[0]


def _measure_effects(
    model,
    active,
    units,
    unit_parts,
    alloc_config,
    alloc_ranks,
    spectrum,
    metrics,
    groups,
    batches,
    refit_bias,
    target,
    progress,
) -> list[float]:
    """Measured over predicted end-to-end loss, per unit, at (about) its allocated ranks.

    Each unit is compressed alone (dense substitutes of its compressed weights, restored
    afterwards) and the summed squared change of the model's output over a calibration subset
    is compared with the unit's predicted loss (per-token units, so scaled by the token count).
    Units that the first allocation kept dense are probed at the rank that keeps ``target``
    of their parameters. Units whose prediction is zero get the median ratio.
    """
    was_training = model.training
    model.eval()
    # Text batches are sorted by length: take them evenly spaced, not the shortest ones.
    subset = batches[:: max(1, len(batches) // 4)][:4]
    reference = _embed(model, subset)
    ratios: list[float | None] = []
    try:
        for unit, labels, c, ranks in _progress(progress, len(units), "measuring")(
            list(zip(units, unit_parts, alloc_config, alloc_ranks, strict=True))
        ):
            saved, predicted = [], 0.0
            for members, block, k in zip(labels[c], unit.configurations[c], ranks, strict=True):
                if k == DENSE:
                    k = max(
                        1, min(block.max_rank, int(target * block.dense_cost // block.rank_cost))
                    )
                predicted += float(block.losses[k])
                spec = spectrum(members)
                basis, coefs = _factors(spec, k)
                for m, A in zip(members, coefs, strict=True):
                    module = active[m]
                    Wc = A @ basis
                    w = weight_matrix(module)
                    saved.append((module, w.detach().clone(), _bias_of(module)))
                    with torch.no_grad():
                        w.copy_(torch.from_numpy(Wc).to(w.dtype))
                        bias = _bias_of(module)
                        if bias is not None and refit_bias and spec.metric.mean is not None:
                            delta = (weights_of(spec, m) - Wc) @ spec.metric.mean
                            saved[-1] = (module, saved[-1][1], bias.detach().clone())
                            bias.add_(torch.from_numpy(delta).to(bias.dtype))
            try:
                out = _embed(model, subset)
                measured = float(((out - reference) ** 2).sum())
            finally:
                with torch.no_grad():
                    for module, w, b in saved:
                        weight_matrix(module).copy_(w)
                        if b is not None:
                            _bias_of(module).copy_(b)
            tokens = sum(_token_count(b) for b in subset)
            ratios.append(measured / (predicted * tokens) if predicted > 0 else None)
    finally:
        model.train(was_training)
    known = [r for r in ratios if r is not None and r > 0]
    median = float(np.median(known)) if known else 1.0
    return [median if r is None or r <= 0 else r for r in ratios]


def weights_of(spec: _Spectrum, name: str) -> np.ndarray:
    return spec.weights[spec.members.index(name)]


def _token_count(batch: Any) -> int:
    if isinstance(batch, Mapping) and isinstance(batch.get("attention_mask"), torch.Tensor):
        return int(batch["attention_mask"].sum())
    if isinstance(batch, torch.Tensor):
        return int(np.prod(batch.shape[:-1])) if batch.dim() > 1 else batch.shape[0]
    return len_of(batch)
