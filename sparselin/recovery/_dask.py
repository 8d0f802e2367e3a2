"""Batched greedy recovery on a dask array of signals: one task per chunk of signals.

Signals are independent, so a dask ``y`` of shape ``(m, n_signals)`` chunked along its
signals (its ``m`` rows in one chunk) is recovered chunk by chunk: each task runs the
in-memory :func:`sparselin.recovery.omp` (one batched call per chunk, Gram or residual path
as it chooses) or :func:`sparselin.recovery.loss_omp` (one call per signal) on its chunk,
through their private cores (``_omp_core``, ``_loss_omp_core``), which validate nothing. The
dictionary is validated and its columns normalised once, here, and enters the graph once, as
a single key that every task depends on (``dask.delayed``), so it is neither copied into each
task nor re-sent per chunk to a distributed worker, and no task checks it again (a finiteness
pass over ``A`` per chunk). The results are lazy dask arrays with ``y``'s signal chunks;
nothing runs until they are computed. The finiteness of ``y`` is checked in each task, when
its chunk is read (a lazy array cannot be checked without being computed).
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from .._array import dask_array_module, dask_chunk_namespace, result_dtype
from .._validation import all_finite, check_int, check_real
from ._checks import check_dictionary, check_weights

__all__ = ["check_dask_signals", "loss_omp_dask", "omp_dask"]

# The longest stop reason of loss_omp ("no_decrease", "dependent", ...): fixed-width strings.
_REASON_DTYPE = np.dtype("<U11")


def check_dask_signals(y: Any, n_rows: int) -> None:
    """Check a dask ``y`` of signals (shape, chunks, dtype) without computing anything."""
    if y.ndim != 2:
        raise ValueError(
            f"a dask y must be 2-D, one signal per column (m, n_signals), got ndim={y.ndim}; "
            "recover a single signal from a NumPy array"
        )
    if any(math.isnan(c) for c in y.shape):
        raise ValueError(
            f"y has unknown chunk sizes (shape {y.shape}); call y.compute_chunk_sizes() first"
        )
    if y.dtype.kind not in "biufc":
        raise TypeError(f"y must hold numbers, got dtype {y.dtype}")
    if y.shape[0] != n_rows:
        raise ValueError(f"y must have as many rows as A: A has {n_rows} rows, y has {y.shape[0]}")
    if 0 in y.shape:
        raise ValueError(f"y must be non-empty, got shape {y.shape}")
    if dask_chunk_namespace(y) is not np:
        raise TypeError(
            "y has CuPy chunks; the dask path of the recovery family runs NumPy chunks "
            "(call y.map_blocks(cupy.asnumpy) first)"
        )
    if y.numblocks[0] > 1:
        raise ValueError(
            f"y is chunked along its rows (chunks {y.chunks[0]}); each task needs whole "
            "signals: call y.rechunk({0: -1}) (chunk the signals, axis 1, instead)"
        )


def _common_dtype(A: Any, y: Any, allow_complex: bool) -> np.dtype:
    dtype = result_dtype(np.result_type(A.dtype, result_dtype(y.dtype)))
    if dtype.kind == "c" and not allow_complex:
        raise TypeError(f"this function needs real A and y, got dtype {dtype}")
    return dtype


def _check_flag(value: Any, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def _no_path(return_path: Any) -> None:
    _check_flag(return_path, "return_path")
    if return_path:
        raise ValueError(
            "return_path is not supported for a dask y: the path's length depends on every "
            "signal; compute the chunks you need and call the function on NumPy arrays"
        )


def _chunk(Y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A chunk of signals read by its task: finite (known only now), in the problem's dtype
    (the rest of ``y`` was checked lazily by :func:`check_dask_signals`)."""
    if not all_finite(Y):
        raise ValueError("y contains NaN or infinity")
    return Y.astype(dtype, copy=False)


def _aligned(prepared: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The shared arrays as the task got them, copied only where misaligned: a distributed
    worker can unpack the graph's copy of ``A`` at an odd address, and NumPy then leaves BLAS
    for its own loops, whose rounding differs from the in-memory results (by an ulp, found
    in the LocalCluster test)."""
    return tuple(np.require(a, requirements="A") for a in prepared)


def _prepared(A: np.ndarray, dtype: np.dtype, work: np.dtype | None = None) -> tuple[Any, Any]:
    """The validated ``A`` in the problem's ``dtype`` with unit-norm columns, and the norms
    to map the coefficients back, formed exactly as :func:`~sparselin.recovery.omp` (``work``
    None) or :func:`~sparselin.recovery.loss_omp` (columns in ``work`` precision) form them."""
    from ._greedy import _column_norms

    A = A.astype(dtype, copy=False)
    norms = _column_norms(A)
    if work is None:
        return A / norms.astype(dtype), norms
    norms = norms.astype(np.float64)
    return A.astype(work) / norms, norms


def _per_block(func: Any, y: Any, A: Any, outputs: list[tuple[Any, np.dtype, int]]) -> list[Any]:
    """Run ``func(A, block)`` on each chunk of signals; one lazy dask array per output.

    ``outputs`` gives, per output of ``func``, its block shape as a function of the chunk's
    number of signals, its dtype, and the axis along which the signals run.
    """
    da = dask_array_module()
    dask = importlib.import_module("dask")
    # One key holds A (with whatever else every task needs: its norms, the weights); every
    # task refers to it instead of carrying a copy.
    A_key = dask.delayed(A, pure=True)
    parts: list[list[Any]] = [[] for _ in outputs]
    base = dask.base.tokenize(func.label, sorted(func.options.items()), A_key.key, y.name)
    for j, (block, width) in enumerate(zip(y.to_delayed().ravel(), y.chunks[1], strict=True)):
        key = f"{func.label}-{base}-{j}"
        result = dask.delayed(func, nout=len(outputs))(A_key, block, dask_key_name=key)
        for i, (shape, dtype, _) in enumerate(outputs):
            meta = np.empty((0,) * len(shape(0)), dtype)
            parts[i].append(da.from_delayed(result[i], shape(width), dtype=dtype, meta=meta))
    return [
        da.concatenate(blocks, axis=out[2]) for blocks, out in zip(parts, outputs, strict=True)
    ]


class _OMPBlock:
    """``omp`` on one chunk of signals (a picklable callable for distributed workers), given
    the prepared dictionary and weights ``(A / norms, norms, w)`` (one shared key)."""

    label = "omp"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def __call__(self, prepared: tuple[np.ndarray, ...], Y: np.ndarray) -> tuple[Any, ...]:
        from ._greedy import _omp_core

        An, norms, w = _aligned(prepared)
        o = self.options
        out = _omp_core(
            An,
            norms,
            _chunk(Y, An.dtype),
            w,
            o["n_nonzero"],
            o["tol"],
            False,
            o["return_n_iter"],
        )
        return out if isinstance(out, tuple) else (out,)


def omp_dask(
    A: Any,
    y: Any,
    *,
    n_nonzero: Any,
    tol: Any,
    weights: Any,
    return_path: Any,
    return_n_iter: Any,
) -> Any:
    """:func:`sparselin.recovery.omp` for a dask ``y`` of signals: validate, then map."""
    dask_array_module()
    A = check_dictionary(A, "A")
    m, N = A.shape
    check_dask_signals(y, m)
    dtype = _common_dtype(A, y, allow_complex=True)
    w = check_weights(weights, N, dtype)
    if tol is not None:
        tol = check_real(tol, "tol", low=0.0)
        n_nonzero = min(m, N)  # as omp: the tolerance alone stops
    else:
        if n_nonzero is None:
            n_nonzero = max(int(0.1 * N), 1)
        n_nonzero = check_int(n_nonzero, "n_nonzero", low=1, high=N)
    _no_path(return_path)
    _check_flag(return_n_iter, "return_n_iter")
    func = _OMPBlock(n_nonzero=n_nonzero, tol=tol, return_n_iter=bool(return_n_iter))
    outputs: list[tuple[Any, np.dtype, int]] = [(lambda s: (N, s), dtype, 1)]
    if return_n_iter:
        outputs.append((lambda s: (s,), np.dtype(np.int64), 0))
    parts = _per_block(func, y, (*_prepared(A, dtype), w), outputs)
    return tuple(parts) if return_n_iter else parts[0]


class _LossOMPBlock:
    """``loss_omp`` on each signal of one chunk, the results stacked along the signals."""

    label = "loss_omp"

    def __init__(self, kmax: int, **options: Any) -> None:
        self.kmax = kmax
        self.options = options

    def __call__(self, prepared: tuple[np.ndarray, ...], Y: np.ndarray) -> tuple[Any, ...]:
        from ._greedy import _loss_omp_core
        from ._losses import LOSSES

        An, norms, w = _aligned(prepared)
        o = self.options
        F = LOSSES[o["loss"]]()
        Y = _chunk(Y, o["dtype"])
        n_sig = Y.shape[1]
        support = np.full((n_sig, self.kmax), -1, np.int64)
        loss = np.full((n_sig, self.kmax + 1), np.nan)
        n_iter = np.zeros(n_sig, np.int64)
        reason = np.empty(n_sig, _REASON_DTYPE)
        coefs = []
        for j in range(n_sig):
            res = _loss_omp_core(
                An,
                norms,
                Y[:, j],
                o["dtype"],
                F,
                o["penalty"],
                o["lam"],
                w,
                self.kmax,
                o["tol"],
                False,
            )
            coefs.append(res.coef)
            support[j, : res.n_iter] = res.support
            loss[j, : res.loss.shape[0]] = res.loss
            n_iter[j] = res.n_iter
            reason[j] = res.stop_reason
        return np.stack(coefs, axis=1), support, loss, n_iter, reason


def loss_omp_dask(
    A: Any,
    y: Any,
    *,
    loss: Any,
    penalty: Any,
    lam: Any,
    weights: Any,
    n_nonzero: Any,
    tol: Any,
    return_path: Any,
) -> Any:
    """:func:`sparselin.recovery.loss_omp` for a dask ``y``: one result of stacked lazy arrays."""
    from ._greedy import LossOMPResult
    from ._losses import LOSSES
    from ._penalties import PENALTIES

    dask_array_module()
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {sorted(PENALTIES)}, got {penalty!r}")
    A = check_dictionary(A, "A")
    m, N = A.shape
    check_dask_signals(y, m)
    dtype = _common_dtype(A, y, allow_complex=LOSSES[loss]().complex_ok)
    lam = check_real(lam, "lam", low=0.0)
    w = check_weights(weights, N, dtype)
    kmax = min(m, N)
    if n_nonzero is not None:
        n_nonzero = check_int(n_nonzero, "n_nonzero", low=1, high=N)
        kmax = min(n_nonzero, kmax)
    if tol is not None:
        tol = check_real(tol, "tol", low=0.0)
    _no_path(return_path)
    func = _LossOMPBlock(kmax, loss=loss, penalty=penalty, lam=lam, tol=tol, dtype=dtype)
    # as loss_omp: the gains in float64 (complex128), whatever the input precision
    work = np.dtype(np.complex128 if dtype.kind == "c" else np.float64)
    coef, support, history, n_iter, reason = _per_block(
        func,
        y,
        (*_prepared(A, dtype, work), w),
        [
            (lambda s: (N, s), dtype, 1),
            (lambda s: (s, kmax), np.dtype(np.int64), 0),
            (lambda s: (s, kmax + 1), np.dtype(np.float64), 0),
            (lambda s: (s,), np.dtype(np.int64), 0),
            (lambda s: (s,), _REASON_DTYPE, 0),
        ],
    )
    return LossOMPResult(
        coef=coef, support=support, loss=history, n_iter=n_iter, stop_reason=reason
    )
