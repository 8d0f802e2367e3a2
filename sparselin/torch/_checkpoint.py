"""Load a checkpoint written by ``sparselin compress`` into a PyTorch model."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from .._checkpoint import (
    CompressedCheckpoint,
    GroupRecord,
    LayerRecord,
    RawTensor,
    atomic_write_safetensors,
    build_metadata,
    read_compressed,
)
from ._layers import (
    KroneckerLinear,
    LowRankLinear,
    LowRankSparseLinear,
    SharedBasisLinear,
    mark_conv1d_source,
    replaces_conv1d,
    swap_module,
)

__all__ = ["collect_compressed", "load_compressed", "save_compressed"]

_DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
}


def _is_conv1d(module: nn.Module) -> bool:
    # Hugging Face's Conv1D (GPT-2) computes x @ W + b with W stored (in, out).
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


class _Resolver:
    """Maps checkpoint names to module names, allowing one common prefix (``"0.auto_model."``
    for a SentenceTransformer around a BERT checkpoint, ``"model."`` for a wrapper)."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = dict(model.named_modules())
        self.prefix: str | None = None

    def find(self, path: str) -> str | None:
        if self.prefix is not None:
            name = self.prefix + path
            return name if name in self.modules else None
        if path in self.modules:
            self.prefix = ""
            return path
        hits = [name for name in self.modules if name.endswith("." + path)]
        if len(hits) > 1:
            raise ValueError(f"checkpoint layer {path!r} matches several modules: {hits[:4]}")
        if hits:
            self.prefix = hits[0][: -len(path)]
            return hits[0]
        return None


def _tensor(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    if a.dtype.kind in "iu":
        return torch.from_numpy(np.array(a, dtype=np.int64)).to(like.device)
    # A copy: arrays read from the file are read-only views, torch wants writable memory.
    return torch.from_numpy(np.array(a)).to(device=like.device, dtype=like.dtype)


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    if _is_conv1d(swap_module(model, name, new)):
        mark_conv1d_source(new)


def load_compressed(
    model: nn.Module, path: str | os.PathLike[str], *, strict: bool = True
) -> dict[str, nn.Module]:
    """Swap the compressed layers of a ``sparselin compress`` file into ``model``, in place.

    Each compressed weight ``NAME.weight`` replaces the module ``NAME`` (an ``nn.Linear``, or a
    Hugging Face ``Conv1D`` whose weight is stored transposed) by the layer that holds its factors:
    :class:`LowRankLinear` (``svd``), :class:`LowRankSparseLinear` (``lowrank_sparse``),
    :class:`KroneckerLinear` (``kronecker``), or :class:`SharedBasisLinear` sharing one
    :class:`SharedBasis` per group (``shared``); a ``dense`` entry is copied into the existing
    module. Biases and every other tensor stored in the file
    are loaded into the parameters and buffers of the same name. Names may differ from the
    model's by one common prefix (a wrapper such as a SentenceTransformer). Factors take the
    device and dtype of the module they replace.

    Parameters
    ----------
    model : torch.nn.Module
        The model, with the architecture the checkpoint was taken from.
    path : str or os.PathLike
        A file written by ``sparselin compress``.
    strict : bool, default=True
        Raise when a compressed layer has no matching module, or a module or tensor has another
        shape; with ``False`` those entries are skipped. Tensors of the file that the model
        does not have (e.g. non-persistent buffers) are always skipped.

    Returns
    -------
    dict of str to torch.nn.Module
        The new modules, by their name in ``model``.

    Raises
    ------
    sparselin._checkpoint.CheckpointError
        If the file is missing, malformed or not a sparselin compressed file (a ``ValueError``).
    ValueError
        If ``strict`` and the model does not match the file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, torch
    >>> from safetensors.numpy import save_file
    >>> from sparselin import cli
    >>> from sparselin.torch._checkpoint import load_compressed
    >>> model = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU())
    >>> d = tempfile.mkdtemp()
    >>> src, out = os.path.join(d, "m.safetensors"), os.path.join(d, "c.safetensors")
    >>> save_file({k: v.detach().numpy() for k, v in model.state_dict().items()}, src)
    >>> cli.main(["compress", src, "-o", out, "--tol", "0.5"]) # doctest: +ELLIPSIS
    layer ...
    0
    >>> swapped = load_compressed(model, out)
    >>> type(swapped["0"]).__name__
    'LowRankLinear'
    """
    ckpt = read_compressed(path)
    resolver = _Resolver(model)
    targets: dict[str, tuple[str, nn.Module]] = {}
    for name, rec in ckpt.layers.items():
        path_ = name[: -len(".weight")] if name.endswith(".weight") else name
        mod_name = resolver.find(path_)
        module = resolver.modules.get(mod_name) if mod_name is not None else None
        weight = getattr(module, "weight", None)
        shape = tuple(rec.shape)
        ok = isinstance(weight, torch.Tensor) and (
            (isinstance(module, nn.Linear) and tuple(weight.shape) == shape)
            or (_is_conv1d(module) and tuple(weight.shape) == shape)
            or (rec.method == "dense" and tuple(weight.shape) == shape)
        )
        if not ok:
            if strict:
                what = (
                    "no such module"
                    if module is None
                    else f"a {type(module).__name__} with weight "
                    f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else None}"
                )
                raise ValueError(
                    f"compressed layer {name!r} ({shape[0]}x{shape[1]}) does not fit the "
                    f"model: {what}"
                )
            continue
        targets[name] = (mod_name, module)

    new: dict[str, nn.Module] = {}
    done_groups: set[str] = set()
    for name, (mod_name, module) in targets.items():
        rec = ckpt.layers[name]
        like = module.weight
        bias = getattr(module, "bias", None)
        bias = bias.detach() if isinstance(bias, torch.Tensor) else None
        if rec.method == "dense":
            with torch.no_grad():
                module.weight.copy_(_tensor(ckpt.factors(name)["weight"], like))
            continue
        if rec.method == "shared":
            if rec.group in done_groups:
                continue
            done_groups.add(rec.group)
            new.update(_load_group(model, ckpt, rec.group, targets, strict))
            continue
        f = ckpt.factors(name)
        if rec.method == "kronecker":
            A, B = _tensor(f["A"], like), _tensor(f["B"], like)
            if _is_conv1d(module):
                # W (in, out) = sum kron(A_i, B_i); as a Linear, W^T = sum kron(A_i^T, B_i^T).
                A, B = A.transpose(1, 2).contiguous(), B.transpose(1, 2).contiguous()
            layer: nn.Module = KroneckerLinear.from_factors(A, B, bias)
            layer.train(module.training)
            _set(model, mod_name, layer)
            new[mod_name] = layer
            continue
        U, V = _tensor(f["U"], like), _tensor(f["V"], like)
        if _is_conv1d(module):
            # W (in, out) = U V and y = x W: as a Linear, weight W^T = V^T U^T.
            if rec.method != "svd":
                raise ValueError(f"{name!r}: only svd factors can replace a Conv1D layer")
            U, V = V.T.contiguous(), U.T.contiguous()
        if rec.method == "svd":
            layer = LowRankLinear.from_factors(U, V, bias)
        else:
            kw = {k: _tensor(f[k], like) for k in ("indptr", "indices", "values") if k in f}
            kw.update({k: _tensor(f[k], like) for k in ("columns", "column_values") if k in f})
            layer = LowRankSparseLinear.from_factors(U, V, bias=bias, **kw)
        layer.train(module.training)
        _set(model, mod_name, layer)
        new[mod_name] = layer
    _load_passthrough(model, ckpt, resolver, strict)
    return new


def _load_group(
    model: nn.Module,
    ckpt: CompressedCheckpoint,
    group: str,
    targets: dict[str, tuple[str, nn.Module]],
    strict: bool,
) -> dict[str, nn.Module]:
    members = [m for m in ckpt.groups[group].members if m in targets]
    if len(members) != len(ckpt.groups[group].members) and strict:
        missing = sorted(set(ckpt.groups[group].members) - set(members))
        raise ValueError(f"shared basis {group!r}: members {missing} have no module")
    if not members:
        return {}
    like = targets[members[0]][1].weight
    basis = _tensor(ckpt.factors(members[0])["basis"], like)
    if any(_is_conv1d(targets[m][1]) for m in members):
        # A Conv1D's stored weight (in, out) = coef basis shares its *output* side, which a
        # SharedBasisLinear (a shared input basis) cannot hold; it was loaded as one anyway,
        # i.e. transposed. Each member becomes a LowRankLinear of its own (same function,
        # the basis held once per member).
        out = {}
        for m in members:
            mod_name, module = targets[m]
            mod_like = module.weight
            coef = _tensor(ckpt.factors(m)["coef"], mod_like)
            b = getattr(module, "bias", None)
            b = b.detach() if isinstance(b, torch.Tensor) else None
            B = basis.to(mod_like.dtype)
            if _is_conv1d(module):  # as a Linear, weight W^T = basis^T coef^T
                layer = LowRankLinear.from_factors(B.T.contiguous(), coef.T.contiguous(), b)
            else:
                layer = LowRankLinear.from_factors(coef, B, b)
            layer.train(module.training)
            _set(model, mod_name, layer)
            out[mod_name] = layer
        return out
    coefs, biases = [], []
    for m in members:
        coefs.append(_tensor(ckpt.factors(m)["coef"], like))
        b = getattr(targets[m][1], "bias", None)
        biases.append(b.detach() if isinstance(b, torch.Tensor) else None)
    layers = SharedBasisLinear.group(basis, coefs, biases)
    out = {}
    for m, layer in zip(members, layers, strict=True):
        mod_name, module = targets[m]
        layer.train(module.training)
        _set(model, mod_name, layer)
        out[mod_name] = layer
    return out


def _load_passthrough(
    model: nn.Module, ckpt: CompressedCheckpoint, resolver: _Resolver, strict: bool
) -> None:
    """Copy the file's other tensors (biases, norms, embeddings) into the same-named state."""
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    prefix = resolver.prefix or ""
    for name in ckpt.passthrough:
        target = state.get(prefix + name)
        if target is None:
            continue
        raw = ckpt.reader.read(name)
        if tuple(target.shape) != raw.shape:
            if strict:
                raise ValueError(
                    f"tensor {name!r} is {raw.shape} in the file, "
                    f"{tuple(target.shape)} in the model"
                )
            continue
        if raw.dtype in ("F64", "F32", "F16", "BF16"):
            value = _tensor(raw.to_float(np.float32), target)
        elif raw.dtype == "BOOL" or raw.dtype.startswith(("I", "U")):
            value = torch.from_numpy(np.array(raw.data)).to(target.device, target.dtype)
        else:
            continue  # float8 bytes: nothing to compute with, the model keeps its own
        with torch.no_grad():
            target.copy_(value)


def _raw(t: torch.Tensor) -> RawTensor:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        data = t.view(torch.int16).numpy().view(np.uint16)
        return RawTensor("BF16", tuple(t.shape), data)
    return RawTensor.from_array(t.numpy())


def collect_compressed(
    root: nn.Module, *, reference: dict[str, np.ndarray] | None = None
) -> tuple[dict[str, RawTensor], list[LayerRecord], list[GroupRecord]]:
    """The tensors, layer records and shared bases :func:`save_compressed` writes.

    ``reference`` maps ``NAME.weight`` to the original weight: each record's ``error`` is then
    the measured relative Frobenius error of the stored layer (else ``None``, unknown). A
    plain ``nn.Linear`` listed in ``reference`` is recorded as kept dense.
    """
    tensors: dict[str, RawTensor] = {}
    records: list[LayerRecord] = []
    groups: dict[int, GroupRecord] = {}
    owned: set[str] = set()
    for mod_name, module in root.named_modules():
        name = f"{mod_name}.weight"
        conv1d = replaces_conv1d(module)
        if conv1d and not isinstance(module, (LowRankLinear, SharedBasisLinear, KroneckerLinear)):
            raise ValueError(
                f"module {mod_name!r} ({type(module).__name__}) replaces a Conv1D layer; only "
                "svd (LowRankLinear, SharedBasisLinear) and kronecker factors can be stored "
                "for a Conv1D"
            )
        if conv1d and isinstance(module, LowRankLinear):
            # Written in the Conv1D's own layout, (in, out) = V^T U^T, as the original
            # checkpoint held the weight; load_compressed transposes back. Stored as a Linear
            # the factors were loaded transposed into a square Conv1D without any error.
            roles = {"U": module.V.T, "V": module.U.T}
            method = "svd"
        elif conv1d and isinstance(module, SharedBasisLinear):
            # (in, out) = basis^T coef^T shares the output side: no "shared" entry can hold it.
            roles = {"U": module.basis.basis.T, "V": module.coefficients.T}
            method = "svd"
        elif conv1d and isinstance(module, KroneckerLinear):
            roles = {"A": module.A.transpose(1, 2), "B": module.B.transpose(1, 2)}
            method = "kronecker"
        elif isinstance(module, LowRankLinear):
            roles = {"U": module.U, "V": module.V}
            method = "svd"
        elif isinstance(module, LowRankSparseLinear):
            roles = {
                "U": module.U,
                "V": module.V,
                "indptr": module.indptr,
                "indices": module.indices,
                "values": module.values,
            }
            if module.n_columns:
                roles.update(columns=module.columns, column_values=module.column_values)
            method = "lowrank_sparse"
        elif isinstance(module, SharedBasisLinear):
            roles = {"coef": module.coefficients}
            method = "shared"
        elif isinstance(module, KroneckerLinear):
            roles = {"A": module.A, "B": module.B}
            method = "kronecker"
        elif isinstance(module, nn.Linear) and reference is not None and name in reference:
            W = module.weight.detach().double().cpu().numpy()
            err = _error(reference[name], W)
            m, n = W.shape
            records.append(
                LayerRecord(
                    name,
                    "dense",
                    (m, n),
                    _DTYPE_NAMES[module.weight.dtype],
                    min(m, n),
                    m * n,
                    m * n,
                    err,
                    {"weight": name},
                )
            )
            continue
        elif type(module).__module__.startswith("sparselin."):
            if hasattr(module, "dense_weight") and not isinstance(module, nn.ModuleList):
                raise ValueError(
                    f"module {mod_name!r} ({type(module).__name__}) has no entry in the "
                    "compressed-file format: svd, lowrank_sparse, shared, kronecker, dense"
                )
            continue
        else:
            continue
        owned.add(mod_name)
        m, n = module.out_features, module.in_features
        if conv1d:
            m, n = n, m
        dtype = _DTYPE_NAMES[next(iter(roles.values())).dtype]
        keys = {role: f"{name}::{role}" for role in roles}
        for role, t in roles.items():
            tensors[keys[role]] = _raw(t)
        group = None
        params = sum(int(t.numel()) for t in roles.values())
        if method == "shared":
            g = groups.get(id(module.basis))
            if g is None:
                g = GroupRecord(f"{name}::shared", f"{name}::shared.basis", module.rank)
                groups[id(module.basis)] = g
                tensors[g.basis] = _raw(module.basis.basis)
            g.members.append(name)
            group = g.name
        with torch.no_grad():
            W = module.dense_weight().double().cpu().numpy()
        if conv1d:
            W = W.T
        err = _error(reference[name], W) if reference is not None and name in reference else None
        records.append(
            LayerRecord(name, method, (m, n), dtype, module.rank, m * n, params, err, keys, group)
        )
    for key, t in root.state_dict().items():
        mod, _, leaf = key.rpartition(".")
        inside = any(key.startswith(o + ".") for o in owned)
        if inside and not (mod in owned and leaf == "bias"):
            continue
        tensors[key] = _raw(t)
    return tensors, records, list(groups.values())


def _error(reference: np.ndarray, W: np.ndarray) -> float:
    ref = np.asarray(reference, dtype=np.float64)
    norm = float(np.linalg.norm(ref))
    diff = float(np.linalg.norm(ref - W))
    return diff / norm if norm > 0 else diff


def save_compressed(
    root: nn.Module,
    path: str | os.PathLike[str],
    *,
    reference: dict[str, np.ndarray] | None = None,
    settings: dict | None = None,
    protect: tuple = (),
) -> list[LayerRecord]:
    """Write ``root``'s compressed layers and every other tensor as a compressed checkpoint.

    The counterpart of :func:`load_compressed`: names are those of ``root.state_dict()`` (pass
    the inner model, e.g. ``sentence_model[0].auto_model``, to match the original checkpoint's
    names). The write is atomic (see :func:`sparselin._checkpoint.atomic_write_safetensors`).

    Returns
    -------
    list of LayerRecord
        One record per compressed (or kept-dense) layer.
    """
    tensors, records, groups = collect_compressed(root, reference=reference)
    meta = build_metadata(records, groups, settings=settings)
    atomic_write_safetensors(path, tensors, meta, protect=protect)
    return records
