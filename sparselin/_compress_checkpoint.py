"""Compress the 2-D weights of a safetensors checkpoint (the engine of ``sparselin compress``).

Torch-free: weights are read by :mod:`sparselin._checkpoint`, factorised by the cores of
:mod:`sparselin.linalg._factorize` (on NumPy, or CuPy with ``device="cuda"``), and ranks are
allocated by the global allocator (``allocate``: one Lagrangian over every matrix, dense fallback
included) with each matrix's loss measured *relative to its own energy*: the squared singular
values of different layers are in different units, and pooling them raw would spend the whole
budget on the matrix with the largest norm.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._checkpoint import (
    FLOAT_DTYPES,
    GroupRecord,
    LayerRecord,
    RawTensor,
    SafetensorsReader,
    build_metadata,
)

__all__ = [
    "CompressResult",
    "EnvironmentProblem",
    "InputProblem",
    "NoMatchError",
    "TargetError",
    "compress_checkpoint",
    "select",
]

METHODS = ("svd", "lowrank_sparse", "shared")


class NoMatchError(ValueError):
    """No 2-D floating-point tensor of the checkpoint matches the layer pattern."""


class TargetError(ValueError):
    """The requested parameter budget is below the smallest possible compressed size."""


class InputProblem(ValueError):
    """A weight that cannot be compressed as it is (NaN or infinite values, a name clash)."""


class EnvironmentProblem(RuntimeError):
    """An optional dependency or device that the request needs is missing."""


@dataclass
class CompressResult:
    """What :func:`compress_checkpoint` made: output tensors, metadata and per-layer records."""

    tensors: dict[str, RawTensor]
    metadata: dict[str, str]
    records: list[LayerRecord]
    groups: list[GroupRecord] = field(default_factory=list)

    @property
    def basis_params(self) -> int:
        """Parameters of the shared bases (each counted once)."""
        return sum(self.tensors[g.basis].data.size for g in self.groups)


def select(reader: SafetensorsReader, pattern: str | None) -> list[str]:
    """Names of the 2-D floating-point tensors whose name matches ``pattern`` (``re.search``)."""
    rx = re.compile(pattern) if pattern else None
    names = [
        name
        for name, info in reader.tensors.items()
        if len(info.shape) == 2
        and info.dtype in FLOAT_DTYPES
        and min(info.shape) > 0
        and (rx is None or rx.search(name))
    ]
    if not names:
        kinds = sorted({f"{len(t.shape)}-D {t.dtype}" for t in reader.tensors.values()})
        what = f" matching {pattern!r}" if pattern else ""
        raise NoMatchError(
            f"{reader.path}: no 2-D floating-point tensor{what} to compress "
            f"(the file holds {len(reader.tensors)} tensors: {', '.join(kinds) or 'none'})"
        )
    return names


def _cores() -> Any:
    from .linalg import _factorize

    return _factorize


def _allocator() -> Any:
    from .linalg import _allocation

    return _allocation


def _xp(device: str) -> Any:
    if device == "cpu":
        return np
    from ._array import cupy_or_none, gpu_available

    if cupy_or_none() is None or not gpu_available():
        raise EnvironmentProblem(
            "--device cuda needs CuPy and a CUDA device: pip install 'sparselin[gpu]'"
        )
    return cupy_or_none()


def _host(x: Any) -> np.ndarray:
    from ._array import to_numpy

    return np.asarray(to_numpy(x))


def _store(arrays: dict[str, Any], dtype: str) -> dict[str, RawTensor]:
    """Factors in the weight's own dtype; index arrays as int32 when they fit (else int64)."""
    out = {}
    for role, a in arrays.items():
        a = _host(a)
        if a.dtype.kind in "iu":
            small = a.size == 0 or int(a.max()) < 2**31
            out[role] = RawTensor.from_array(a.astype(np.int32 if small else np.int64))
        else:
            out[role] = RawTensor.from_array(a.astype(np.float32), dtype)
    return out


def _rebuild(method: str, stored: dict[str, RawTensor], shape: tuple[int, int]) -> np.ndarray:
    f = {
        k: (v.data.astype(np.int64) if v.dtype[0] == "I" else v.to_float(np.float64))
        for k, v in stored.items()
    }
    if method == "dense":
        return f["weight"]
    W = f["U"] @ f["V"]
    if method == "lowrank_sparse":
        rows = np.repeat(np.arange(shape[0]), np.diff(f["indptr"]))
        np.add.at(W, (rows, f["indices"]), f["values"])
        if "columns" in f:
            np.add.at(W, (slice(None), f["columns"]), f["column_values"])
    return W


def _rel_error(W: np.ndarray, approx: np.ndarray) -> float:
    norm = float(np.linalg.norm(W))
    return float(np.linalg.norm(W - approx)) / norm if norm > 0 else float(np.linalg.norm(approx))


@dataclass
class _Matrix:
    name: str
    dtype: str
    W: np.ndarray  # float32 (BF16/F16 widened exactly), host
    Wd: Any  # on the compute device
    spec: Any
    block: Any
    total2: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.W.shape  # type: ignore[return-value]


def _analyse(reader: SafetensorsReader, names: list[str], xp: Any, bar: Callable) -> list[_Matrix]:
    cores, alloc = _cores(), _allocator()
    out = []
    for name in bar(names, desc="spectra"):
        raw = reader.read(name)
        W = raw.to_float(np.float32)
        if not np.isfinite(W).all():
            raise InputProblem(f"{reader.path}: tensor {name!r} holds NaN or infinite values")
        Wd = xp.asarray(W)
        spec = cores._weighted_spectrum(Wd)
        s = _host(spec.s).astype(np.float64)
        total2 = float(spec.total2)
        tail = np.concatenate([np.cumsum((s**2)[::-1])[::-1], [0.0]])
        m, n = W.shape
        losses = tail / total2 if total2 > 0 else np.zeros_like(tail)
        block = alloc.Block(
            losses=losses, rank_cost=m + n, dense_cost=m * n, min_rank=1, name=name
        )
        out.append(_Matrix(name, raw.dtype, W, Wd, spec, block, total2))
    return out


def _lowrank(mat: _Matrix, k: int, xp: Any) -> dict[str, Any]:
    f = _cores()._factors_at_rank(mat.spec, k)
    return {"U": f.U, "V": f.V}


def _sparse_candidates(mat: _Matrix, k: int, budget: int) -> Iterable[tuple[int, int]]:
    """(rank, entries) pairs that spend at most ``budget`` parameters, fewer rank, more entries."""
    cores = _cores()
    m, n = mat.shape
    seen = set()
    for frac in (0.0, 0.125, 0.25, 0.5):
        r = max(round(k * (1 - frac)), mat.block.min_rank)
        room = budget - cores.lowrank_sparse_params(m, n, r) - (m + 1)
        e = max(room // cores.SPARSE_ENTRY_COST, 0) if frac > 0 else 0
        if (r, e) not in seen and cores.lowrank_sparse_params(m, n, r, e) <= budget:
            seen.add((r, e))
            yield r, e


def _lowrank_sparse(mat: _Matrix, k: int, budget: int, xp: Any) -> tuple[dict[str, Any], int]:
    """The best (by measured error) split of ``budget`` between rank and sparse entries."""
    cores = _cores()
    best: tuple[float, dict[str, Any], int] | None = None
    for r, e in _sparse_candidates(mat, k, budget):
        if e == 0:
            arrays = _lowrank(mat, r, xp)
        else:
            f = cores._lowrank_sparse_core(mat.Wd, r, n_entries=e)
            arrays = {
                "U": f.U,
                "V": f.V,
                "indptr": f.indptr,
                "indices": f.indices,
                "values": f.values,
            }
            if int(_host(f.columns).size):
                arrays.update(columns=f.columns, column_values=f.column_values)
        approx = _rebuild(
            "lowrank_sparse" if e else "svd",
            {a: RawTensor.from_array(_host(v)) for a, v in arrays.items()},
            mat.shape,
        )
        err = _rel_error(mat.W.astype(np.float64), approx)
        if best is None or err < best[0]:
            best = (err, arrays, r)
    assert best is not None
    return best[1], best[2]


def _tol_sparse_budget(mat: _Matrix, k: int, tol: float) -> int:
    """The fewest parameters a low-rank + sparse form needs for error ``tol``.

    A bound from the residual of the rank-``r`` SVD with its largest entries kept; the
    alternating minimisation that then runs at that budget only lowers the error.
    """
    cores = _cores()
    m, n = mat.shape
    W = mat.W.astype(np.float64)
    allowed = (tol**2) * mat.total2
    best = cores.lowrank_sparse_params(m, n, k)
    for frac in (0.125, 0.25, 0.5):
        r = max(round(k * (1 - frac)), mat.block.min_rank)
        if r >= k:
            continue
        lr = _lowrank(mat, r, np)
        R2 = np.sort(((W - _host(lr["U"]).astype(np.float64) @ _host(lr["V"])) ** 2).ravel())
        # Keep the largest entries until what is left is within the tolerance.
        left = np.cumsum(R2)
        e = R2.size - int(np.searchsorted(left, allowed, side="right"))
        best = min(best, cores.lowrank_sparse_params(m, n, r, e))
    return best


def compress_checkpoint(
    reader: SafetensorsReader,
    names: list[str],
    *,
    target: float | None = None,
    tol: float | None = None,
    method: str = "svd",
    device: str = "cpu",
    settings: dict[str, Any] | None = None,
    progress: Callable[..., Iterable] | None = None,
) -> CompressResult:
    """Compress the weights ``names`` of an open checkpoint; keep every other tensor as it is.

    Exactly one of ``target`` (fraction of the parameters of ``names`` kept, allocated
    globally) and ``tol`` (per-matrix relative Frobenius error, measured on the stored factors
    after rounding to the weight's dtype) is given.

    Raises
    ------
    TargetError
        If ``target`` is below what one rank per matrix costs.
    """
    if (target is None) == (tol is None):
        raise ValueError("give exactly one of target and tol")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    bar = progress or (lambda it, **kw: it)
    if method == "shared":
        return _compress_shared(reader, names, target=target, tol=tol, settings=settings, bar=bar)
    xp = _xp(device)
    alloc = _allocator()
    mats = _analyse(reader, names, xp, bar)
    if target is not None:
        before = sum(m.block.dense_cost for m in mats)
        try:
            result = alloc.allocate(
                [alloc.Unit([[m.block]], name=m.name) for m in mats], target * before
            )
        except ValueError as exc:
            raise TargetError(f"--target {target:g} cannot be met: {exc}") from None
        ranks = [r[0] for r in result.ranks]
    else:
        ranks = [alloc.ranks_for_tolerance(m.block, 1.0, tol) for m in mats]

    out: dict[str, RawTensor] = {}
    records = []
    for mat, k in zip(mats, bar(ranks, desc="factors"), strict=True):
        m, n = mat.shape
        full = min(m, n)
        while True:
            if k == alloc.DENSE:
                # The bytes as they were: a dense fallback is a verbatim copy.
                kind, arrays, rank = "dense", {"weight": reader.read(mat.name)}, full
            elif method == "lowrank_sparse":
                budget = k * (m + n) if target is not None else _tol_sparse_budget(mat, k, tol)
                host, rank = _lowrank_sparse(mat, k, budget, xp)
                kind = "lowrank_sparse" if "indptr" in host else "svd"
                arrays = _store(host, mat.dtype)
            else:
                kind, rank = "svd", k
                arrays = _store(_lowrank(mat, k, xp), mat.dtype)
            err = _rel_error(mat.W.astype(np.float64), _rebuild(kind, arrays, (m, n)))
            # Rounding the factors to a 16-bit dtype adds error of its own; a tolerance is a
            # promise about the stored file, so raise the rank until it holds (or go dense).
            if tol is None or kind == "dense" or err <= tol:
                break
            k = min(max(k + 1, math.ceil(1.25 * k)), full)
            if k * (m + n) >= m * n:
                k = alloc.DENSE
        keys = {role: f"{mat.name}::{role}" for role in arrays}
        for role, t in arrays.items():
            out[keys[role]] = t
        params = sum(t.data.size for t in arrays.values())
        records.append(
            LayerRecord(mat.name, kind, (m, n), mat.dtype, rank, m * n, params, err, keys)
        )
    compressed = set(names)
    for name in reader.tensors:
        if name not in compressed:
            if name in out:
                raise InputProblem(f"tensor name {name!r} collides with a factor name")
            out[name] = reader.read(name)
    meta = build_metadata(records, settings=settings, extra=reader.metadata)
    return CompressResult(out, meta, records)


def _collection(mats: list[np.ndarray], tol: float) -> Any:
    from .linalg._collection import compress_collection

    # Vertical layout: the matrices share their input (row) space, W_i ~ coef_i @ basis.
    return compress_collection(mats, tol=tol, layout="vertical", random_state=0)


def _shared_at(
    reader: SafetensorsReader,
    by_n: dict[int, list[str]],
    weights: dict[str, np.ndarray],
    tol: float,
) -> tuple[dict[str, RawTensor], list[LayerRecord], list[GroupRecord]]:
    """Shared bases for each set of matrices with the same input size, every error <= tol."""
    out: dict[str, RawTensor] = {}
    records: list[LayerRecord] = []
    groups: list[GroupRecord] = []
    for n, names in by_n.items():
        mats = [weights[nm] for nm in names]
        dtypes = {reader.tensors[nm].dtype for nm in names}
        t = tol
        for _ in range(4):
            cc = _collection(mats, t)
            recs, tens, grps = _shared_records(reader, names, mats, cc, n)
            # 16-bit storage rounds the factors: tighten until the stored file meets tol.
            if max(r.error for r in recs) <= tol or dtypes <= {"F32", "F64"}:
                break
            t *= 0.7
        records += recs
        out.update(tens)
        groups += grps
    return out, records, groups


def _shared_records(
    reader: SafetensorsReader, names: list[str], mats: list[np.ndarray], cc: Any, n: int
) -> tuple[list[LayerRecord], dict[str, RawTensor], list[GroupRecord]]:
    records, tensors, groups = [], {}, []
    for c, members in enumerate(cc.clusters):
        basis = cc.bases[c]
        first = names[members[0]]
        dtype = reader.tensors[first].dtype
        gname = f"{first}::shared"
        if basis is not None and len(members) > 1:
            tensors[f"{gname}.basis"] = RawTensor.from_array(_host(basis), dtype)
            groups.append(
                GroupRecord(
                    gname, f"{gname}.basis", int(basis.shape[0]), [names[i] for i in members]
                )
            )
        for i in members:
            name, W = names[i], mats[i]
            m = W.shape[0]
            dt = reader.tensors[name].dtype
            coef = _host(cc.coefficients[i])
            if basis is None:
                kind, arrays, rank = "dense", {"weight": reader.read(name)}, min(W.shape)
            elif len(members) == 1:
                kind, rank = "svd", int(basis.shape[0])
                arrays = {
                    "U": RawTensor.from_array(coef, dt),
                    "V": RawTensor.from_array(_host(basis), dt),
                }
            else:
                kind, rank = "shared", int(basis.shape[0])
                arrays = {"coef": RawTensor.from_array(coef, dt)}
            if kind == "shared":
                approx = arrays["coef"].to_float(np.float64) @ tensors[f"{gname}.basis"].to_float(
                    np.float64
                )
            else:
                approx = _rebuild(kind, arrays, W.shape)
            err = _rel_error(W.astype(np.float64), approx)
            keys = {role: f"{name}::{role}" for role in arrays}
            for role, t in arrays.items():
                tensors[keys[role]] = t
            params = sum(t.data.size for t in arrays.values())
            records.append(
                LayerRecord(
                    name,
                    kind,
                    (m, n),
                    dt,
                    rank,
                    m * n,
                    params,
                    err,
                    keys,
                    gname if kind == "shared" else None,
                )
            )
    return records, tensors, groups


def _compress_shared(
    reader: SafetensorsReader,
    names: list[str],
    *,
    target: float | None,
    tol: float | None,
    settings: dict[str, Any] | None,
    bar: Callable[..., Iterable],
) -> CompressResult:
    """``compress_collection`` on each set of weights with the same input size.

    With ``target``, the tolerance is bisected (it is what the clustering takes) until the
    parameters fit the budget.
    """
    weights = {nm: reader.read(nm).to_float(np.float32) for nm in bar(names, desc="reading")}
    for nm, W in weights.items():
        if not np.isfinite(W).all():
            raise InputProblem(f"{reader.path}: tensor {nm!r} holds NaN or infinite values")
    by_n: dict[int, list[str]] = {}
    for nm in names:
        by_n.setdefault(weights[nm].shape[1], []).append(nm)
    if tol is not None:
        tensors, records, groups = _shared_at(reader, by_n, weights, tol)
    else:
        before = sum(W.size for W in weights.values())
        budget = target * before

        def size(res: tuple) -> int:
            return sum(r.params_after for r in res[1]) + sum(
                res[0][g.basis].data.size for g in res[2]
            )

        # Smallest size reachable: the loosest tolerance the clustering accepts.
        hi_res = _shared_at(reader, by_n, weights, 0.999)
        if size(hi_res) > budget:
            raise TargetError(
                f"--target {target:g} cannot be met with shared bases: even at a 99.9 % error "
                f"the factors keep {size(hi_res):,} of {before:,} parameters"
            )
        lo, hi, best = 0.0, 0.999, hi_res
        for _ in bar(range(12), desc="bisecting tol"):
            mid = 0.5 * (lo + hi)
            res = _shared_at(reader, by_n, weights, mid)
            if size(res) <= budget:
                hi, best = mid, res
            else:
                lo = mid
        tensors, records, groups = best
    order = {nm: i for i, nm in enumerate(names)}
    records.sort(key=lambda r: order[r.name])
    for name in reader.tensors:
        if name not in weights:
            if name in tensors:
                raise InputProblem(f"tensor name {name!r} collides with a factor name")
            tensors[name] = reader.read(name)
    meta = build_metadata(records, groups, settings=settings, extra=reader.metadata)
    return CompressResult(tensors, meta, records, groups)
