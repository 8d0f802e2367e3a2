"""Walsh-Hadamard transforms on the CPU: sparselin against its peers, in one run.

Part 1, the dense transform (``fwht``). Cases: a batch of 1024 rows of length 2**12 and one
transform of length 2**22, float64 and float32 (``--quick``: 64 x 2**10 and 2**16).
Methods, each on the same array:

* sparselin ``fwht`` (Numba kernels; the result is a new array, as for every peer);
* NumPy reshape butterflies (one vectorised stage per level, the baseline of the ratios);
* ``x @ scipy.linalg.hadamard(N).T`` where H fits in memory (N <= 2**12);
* the ``hadamard-transform`` package (PyTorch, orthonormal) on a zero-copy torch view;
* a plain copy of the array (``np.copyto`` into a new array): the memory bandwidth bound.

``GB/s`` is (bytes read + bytes written) / time, the traffic of a transform that touches
its data once; compare it with the copy row.

Part 2, the sparse transform (``sparse_wht``): N = 2**20, 2**24, 2**30 (``--quick``: 2**16,
2**20), K = 10, 100, 1000 (``--quick``: 10, 100), noiseless (SparseFHT and SPRIGHT) and
SNR = 10 dB (SPRIGHT, SNR = signal power / noise power). The signal is a black box
``x[m] = sum_k X_k (-1)**<k, m>`` queried through a function, with Gaussian noise added per
query. Rows give the samples read (and their ratio to K log2 N), the median time of
``sparse_wht`` with and without the time spent inside the black box, the success rate over
the trials (exact support, and values to 1e-6 when noiseless), and, for N <= 2**24, the
time of the dense ``fwht`` of the whole signal: the crossover of the two.

Run ``python benchmarks/bench_wht.py`` (``--quick`` for a smoke run, ``--json PATH`` to keep
the rows, ``--part dense|sparse``). Every dense row is run with the libraries' default
threads and with one thread (``--threads``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from typing import Any

import numpy as np
import scipy.linalg
from _harness import (
    Column,
    add_common_arguments,
    environment,
    format_environment,
    measure,
    print_table,
    thread_label,
    thread_passes,
    thread_setting,
    write_json,
)

from sparselin.transforms import fwht, sparse_wht
from sparselin.transforms._peeling import parity


def _import_error(name: str) -> str | None:
    try:
        __import__(name)
    except Exception as exc:  # an optional peer that is missing or broken
        return f"{type(exc).__name__}: {exc}"
    return None


# --------------------------------------------------------------------------- dense


def numpy_butterflies(x: np.ndarray) -> np.ndarray:
    """The textbook vectorised FWHT: one reshape-and-combine pass per level."""
    y = x.copy()
    rows, N = y.shape
    h = 1
    while h < N:
        v = y.reshape(rows, N // (2 * h), 2, h)
        a = v[:, :, 0, :].copy()
        v[:, :, 0, :] += v[:, :, 1, :]
        v[:, :, 1, :] = a - v[:, :, 1, :]
        h *= 2
    return y


def bench_dense(args: argparse.Namespace) -> list[dict[str, Any]]:
    shapes = [(64, 1 << 10), (1, 1 << 16)] if args.quick else [(1024, 1 << 12), (1, 1 << 22)]
    torch_error = _import_error("torch") or _import_error("hadamard_transform")
    rng = np.random.default_rng(0)
    data = {}
    for shape in shapes:
        for dtype in (np.float64, np.float32):
            x = rng.standard_normal(shape).astype(dtype)
            ref = numpy_butterflies(x.astype(np.float64))
            data[(shape, dtype)] = (x, ref)

    def one_setting() -> list[dict[str, Any]]:
        rows = []
        for (shape, dtype), (x, ref) in data.items():
            N = shape[1]
            case = f"{shape[0]} x 2^{N.bit_length() - 1}"
            fields = dict(case=case, dtype=np.dtype(dtype).name, bytes=2 * x.nbytes)
            kw = dict(repeat=args.repeat, max_seconds=args.max_seconds)

            def error(y, scale=1.0, ref=ref):
                y = np.asarray(y, dtype=np.float64) * scale
                return {"max_rel_err": float(np.abs(y - ref).max() / np.abs(ref).max())}

            rows.append(
                measure("sparselin fwht", lambda x=x: fwht(x), metrics=error, **kw, **fields)
            )
            rows.append(
                measure(
                    "numpy reshape butterflies",
                    lambda x=x: numpy_butterflies(x),
                    metrics=error,
                    **kw,
                    **fields,
                )
            )
            if N <= 1 << 12:
                H = scipy.linalg.hadamard(N).astype(dtype)
                rows.append(
                    measure(
                        "scipy hadamard matmul",
                        lambda x=x, H=H: x @ H.T,
                        metrics=error,
                        **kw,
                        **fields,
                    )
                )
            else:
                rows.append(
                    dict(
                        name="scipy hadamard matmul",
                        time=None,
                        **fields,
                        error=f"H of {N}^2 entries does not fit in memory",
                    )
                )
            if torch_error is None:
                import torch
                from hadamard_transform import hadamard_transform

                xt = torch.from_numpy(x)
                rows.append(
                    measure(
                        "hadamard-transform (torch)",
                        lambda xt=xt: hadamard_transform(xt),
                        metrics=lambda y, N=N: error(y.numpy(), math.sqrt(N)),
                        **kw,
                        **fields,
                    )
                )
            else:
                rows.append(
                    dict(name="hadamard-transform (torch)", time=None, **fields, error=torch_error)
                )
            rows.append(
                measure(
                    "copy (bandwidth bound)",
                    lambda x=x: np.copyto(np.empty_like(x), x),
                    **kw,
                    **fields,
                )
            )
        for row in rows:
            if row.get("time"):
                row["GB/s"] = row["bytes"] / row["time"] / 1e9
        return rows

    rows = thread_passes(args.threads, one_setting)
    for row in rows:
        row["part"] = "dense"
        row["group"] = f"{row['case']} {row['dtype']}, threads={row['threads']}"
    print_table(
        rows,
        [
            Column("group", "case"),
            Column("name", "method"),
            Column("time", "time"),
            Column("GB/s", "GB/s", "{:.2f}"),
            Column("max_rel_err", "max rel err", "{:.1e}"),
        ],
        baselines={"vs numpy": "numpy reshape butterflies"},
        group_by="group",
        title="Dense fast Walsh-Hadamard transform",
    )
    return rows


# --------------------------------------------------------------------------- sparse


class BlackBox:
    """``x[m] = sum_k X_k (-1)**<k, m>`` (+ noise), evaluated only where queried."""

    def __init__(self, k: np.ndarray, v: np.ndarray, sigma: float, seed: int) -> None:
        self.k, self.v, self.sigma = k, v, sigma
        self.rng = np.random.default_rng(seed)
        self.seconds = 0.0

    def __call__(self, m: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        m = m.astype(np.uint64)
        out = np.zeros(m.size)
        step = max(1, (1 << 22) // max(1, self.k.size))  # bounded temporary
        for s in range(0, m.size, step):
            part = m[s : s + step]
            signs = 1.0 - 2.0 * parity(part[:, None] & self.k[None, :])
            out[s : s + step] = signs @ self.v
        if self.sigma:
            out += self.sigma * self.rng.standard_normal(m.size)
        self.seconds += time.perf_counter() - t0
        return out


def bench_sparse(args: argparse.Namespace) -> list[dict[str, Any]]:
    ns = [16, 20] if args.quick else [20, 24, 30]
    Ks = [10, 100] if args.quick else [10, 100, 1000]
    trials = 3 if args.quick else 10
    rows = []
    dense_time = {}
    for n in ns:
        if n <= 24:
            x = np.random.default_rng(0).standard_normal(1 << n)
            with thread_setting(None):
                r = measure(
                    "dense fwht",
                    lambda x=x: fwht(x),
                    repeat=args.repeat,
                    max_seconds=args.max_seconds,
                )
            dense_time[n] = r.get("time")
            del x
    for n in ns:
        N = 1 << n
        for K in Ks:
            if K >= N // 64:
                continue
            for method, snr in (("sparsefht", None), ("spright", None), ("spright", 10.0)):
                samples, times, decode, ok = [], [], [], 0
                for t in range(trials):
                    rng = np.random.default_rng(1000 * n + t)
                    k = np.unique(rng.integers(0, N, size=K, dtype=np.uint64))
                    v = rng.choice([-1.0, 1.0], size=k.size) * rng.uniform(1, 2, k.size)
                    # SNR = ||x||^2 / ||w||^2 = N sum(v^2) / (N sigma^2).
                    sigma = 0.0 if snr is None else math.sqrt(np.sum(v**2) / 10 ** (snr / 10))
                    box = BlackBox(k, v, sigma, seed=t)
                    noise = (0.0 if method == "spright" else "auto") if snr is None else sigma
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        spec = sparse_wht(
                            box,
                            n,
                            sparsity=K,
                            method=method,
                            noise=noise,
                            normalize="forward",
                            random_state=t,
                        )
                    good = spec.success and np.array_equal(spec.indices, k)
                    if snr is None:
                        good = good and np.allclose(spec.values, v, rtol=1e-6)
                    ok += good
                    samples.append(spec.n_samples)
                    times.append(spec.time)
                    decode.append(spec.time - box.seconds)
                row = dict(
                    part="sparse",
                    name=method,
                    case=f"N=2^{n}, K={K}",
                    snr="inf" if snr is None else f"{snr:g} dB",
                    n=n,
                    K=K,
                    samples=int(np.median(samples)),
                    samples_per_KlogN=float(np.median(samples)) / (K * n),
                    time=float(np.median(times)),
                    decode_time=float(np.median(decode)),
                    success_rate=ok / trials,
                    trials=trials,
                    dense_fwht_time=dense_time.get(n),
                    threads=thread_label(None),
                )
                if row["dense_fwht_time"]:
                    row["dense_over_sparse"] = row["dense_fwht_time"] / row["decode_time"]
                rows.append(row)
    print_table(
        rows,
        [
            Column("case", "case"),
            Column("name", "method"),
            Column("snr", "SNR"),
            Column("samples", "samples"),
            Column("samples_per_KlogN", "/ K log2 N", "{:.2f}"),
            Column("time", "time"),
            Column("decode_time", "time w/o queries", lambda t: f"{t * 1e3:.1f} ms"),
            Column("success_rate", "success", "{:.0%}"),
            Column("dense_fwht_time", "dense fwht", lambda t: f"{t * 1e3:.1f} ms"),
            Column("dense_over_sparse", "dense / sparse", "{:.1f}"),
        ],
        title="Sparse Walsh-Hadamard transform (median over trials)",
    )
    return rows


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, repeat=5, thread_passes=True)
    parser.add_argument("--part", choices=("all", "dense", "sparse"), default="all")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    # Load every peer before any thread limit: threadpoolctl only sees libraries loaded so far.
    for name in ("torch", "hadamard_transform", "numba"):
        _import_error(name)
    env = environment()
    print(format_environment(env))
    rows: list[dict[str, Any]] = []
    if args.part in ("all", "dense"):
        rows += bench_dense(args)
    if args.part in ("all", "sparse"):
        rows += bench_sparse(args)
    if args.json:
        write_json(args.json, rows, benchmark="wht", env=env, quick=args.quick)
        print(f"\nrows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
