"""The fast Walsh-Hadamard transform on an NVIDIA GPU: sparselin's CUDA kernels, in one run.

Cases (float32 and float64, natural order, unnormalised):

* batches: rows of length 2**10 ... 2**15, as many as make 2**26 numbers (256 MiB of float32;
  ``--quick``: 2**22 numbers);
* single transforms of length 2**20 ... 2**26 (``--quick``: 2**20 and 2**22).

Methods, on the same CuPy array:

* sparselin ``fwht(x)`` (the kernels of ``cuda/fwht.cu``: one shared-memory pass for rows up
  to 32 KiB, radix-8 passes over global memory beyond);
* a device-to-device copy of the array (``x.copy()``): the memory bandwidth bound;
* torch reshape butterflies (one vectorised stage per level) on the same memory, shared
  through DLPack, when torch has CUDA;
* Dao-AILab's ``fast_hadamard_transform`` (float32, rows up to 2**15) when it is installed.

``GB/s`` is (bytes read + bytes written) / time, the traffic of a transform that touches its
data once; ``% copy`` compares it with the copy of the same array. Target (issue 16): at least
1500 GB/s for float32 rows of length up to 2**12. Each row's result is checked against the
CPU ``fwht`` on a few rows (``max rel err``).

Every clock read is preceded by a device synchronisation, so queued GPU work is counted.

Run ``python benchmarks/gpu/bench_wht_gpu.py [--quick] [--json PATH]``. Without CuPy or a GPU
it prints why and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _harness

from _harness import (
    Column,
    add_common_arguments,
    environment,
    format_environment,
    limit_threads,
    load_cupy,
    load_torch_cuda,
    measure,
    print_table,
    write_json,
)

TARGET_GBPS = 1500.0  # float32 rows of length <= 2**12 (issue 16)
TARGET_MAX_LOG = 12


def _load_dao() -> tuple[Any, str | None]:
    try:
        from fast_hadamard_transform import hadamard_transform
    except Exception as exc:
        return None, f"fast_hadamard_transform not available ({type(exc).__name__}: {exc})"
    return hadamard_transform, None


def torch_butterflies(x: Any) -> Any:
    """The textbook vectorised FWHT in torch: one reshape-and-combine pass per level."""
    y = x.clone()
    rows, N = y.shape
    h = 1
    while h < N:
        v = y.view(rows, N // (2 * h), 2, h)
        a = v[:, :, 0, :].clone()
        v[:, :, 0, :] += v[:, :, 1, :]
        v[:, :, 1, :] = a - v[:, :, 1, :]
        h *= 2
    return y


def cases(quick: bool) -> list[tuple[int, int]]:
    """(rows, log2 N): the batches, then the single long transforms."""
    total = 22 if quick else 26
    batch = [(1 << (total - k), k) for k in range(10, 16)]
    single = [(1, k) for k in ((20, 22) if quick else range(20, 27))]
    return batch + single


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, repeat=10)
    parser.add_argument(
        "--dtypes", default="float32,float64", help="comma-separated (default float32,float64)"
    )
    args = parser.parse_args(argv)

    cp, why = load_cupy()
    if cp is None:
        print(f"bench_wht_gpu: skipped, this benchmark needs CuPy and an NVIDIA GPU: {why}")
        return 2
    torch, torch_why = load_torch_cuda()
    dao, dao_why = _load_dao() if torch is not None else (None, torch_why)

    from sparselin.transforms import fwht

    limit_threads(args.threads)

    def sync() -> None:
        cp.cuda.Device().synchronize()
        if torch is not None:
            torch.cuda.synchronize()

    print(format_environment(environment()))
    rows_out: list[dict[str, Any]] = []
    for dtype_name in args.dtypes.split(","):
        dtype = np.dtype(dtype_name.strip())
        for n_rows, k in cases(args.quick):
            N = 1 << k
            host = np.random.default_rng(k).standard_normal((min(n_rows, 4), N)).astype(dtype)
            ref = fwht(host.astype(np.float64))  # CPU reference for the first rows
            x = cp.empty((n_rows, N), dtype=dtype)
            x[...] = cp.asarray(np.resize(host, (n_rows, N)))  # the checked rows lead
            sync()
            case = f"{n_rows} x 2^{k}" if n_rows > 1 else f"2^{k}"
            common = dict(
                part="batch" if n_rows > 1 else "single",
                case=case,
                dtype=dtype.name,
                group=f"{case} {dtype.name}",
                rows=n_rows,
                log2N=k,
                bytes=2 * x.nbytes,
            )

            def check(y: Any, scale: float = 1.0, ref: Any = ref) -> dict[str, Any]:
                got = np.asarray(cp.asnumpy(y[: ref.shape[0]]), dtype=np.float64) * scale
                return {"max_rel_err": float(np.abs(got - ref).max() / np.abs(ref).max())}

            kw = dict(repeat=args.repeat, max_seconds=args.max_seconds, sync=sync)
            group = [
                measure("sparselin fwht", lambda x=x: fwht(x), metrics=check, **kw, **common),
                measure("device copy", lambda x=x: x.copy(), **kw, **common),
            ]
            if torch is not None:
                xt = torch.from_dlpack(x)  # the same device memory

                def torch_check(y: Any, check: Any = check) -> dict[str, Any]:
                    return check(cp.from_dlpack(y))

                group.append(
                    measure(
                        "torch reshape butterflies",
                        lambda xt=xt: torch_butterflies(xt),
                        metrics=torch_check,
                        **kw,
                        **common,
                    )
                )
            else:
                group.append(
                    {
                        "name": "torch reshape butterflies",
                        **common,
                        "time": None,
                        "error": torch_why,
                    }
                )
            if dao is not None and dtype == np.float32 and k <= 15:
                xt = torch.from_dlpack(x)

                def dao_check(y: Any, check: Any = check, N: int = N) -> dict[str, Any]:
                    return check(cp.from_dlpack(y), math.sqrt(N))

                group.append(
                    measure(
                        "fast_hadamard_transform (Dao)",
                        lambda xt=xt, N=N: dao(xt, 1.0 / math.sqrt(N)),
                        metrics=dao_check,
                        **kw,
                        **common,
                    )
                )
            elif dao is None:
                group.append(
                    {
                        "name": "fast_hadamard_transform (Dao)",
                        **common,
                        "time": None,
                        "note": dao_why,
                    }
                )
            copy_time = group[1].get("time")
            for r in group:
                if r.get("time"):
                    r["GB/s"] = r["bytes"] / r["time"] / 1e9
                    if copy_time:
                        r["of_copy"] = copy_time / r["time"]
            rows_out += group
            del x
            with contextlib.suppress(Exception):  # absent from CuPy stand-ins
                cp.get_default_memory_pool().free_all_blocks()

    targets = []
    for r in rows_out:
        if r["name"] == "sparselin fwht" and r["dtype"] == "float32" and r["log2N"] <= 12:
            gbps = r.get("GB/s") or 0.0
            targets.append(
                {
                    "part": "target",
                    "name": f"fwht >= {TARGET_GBPS:g} GB/s",
                    "case": r["case"],
                    "dtype": r["dtype"],
                    "value": gbps,
                    "met": bool(gbps >= TARGET_GBPS),
                }
            )
    for part in ("batch", "single"):
        print_table(
            [r for r in rows_out if r["part"] == part],
            [
                Column("case", "case"),
                Column("dtype", "dtype"),
                Column("name", "method"),
                Column("time", "best"),
                Column("GB/s", "GB/s", "{:.0f}"),
                Column("of_copy", "% copy", "{:.0%}"),
                Column("max_rel_err", "max rel err", "{:.1e}"),
            ],
            baselines={"vs torch": "torch reshape butterflies"},
            group_by="group",
            title=f"GPU fast Walsh-Hadamard transform: {part} (% copy: of a device copy)",
        )
    for t in targets:
        print(
            f"target fwht >= {TARGET_GBPS:g} GB/s, {t['case']} {t['dtype']}: "
            f"{t['value']:.0f} GB/s ({'met' if t['met'] else 'MISSED'})"
        )
    if args.json:
        write_json(args.json, rows_out + targets, benchmark="wht_gpu", quick=args.quick)
        print(f"\nrows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
