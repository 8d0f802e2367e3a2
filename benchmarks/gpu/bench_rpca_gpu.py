"""Robust PCA on an NVIDIA GPU: sparselin's PCP and rSVDdpd on CuPy arrays, in one run.

The problems of ``benchmarks/bench_rpca.py`` at sizes for an H100/H200:

* ``pcp``: ``M = L0 + S0``, 3000 x 3000, rank 75, 5 % of the entries U[-500, 500] (float64,
  the issue's protocol scaled up 3x per side), ``robust_pca(M)`` at ``tol=1e-7`` on the
  device; metric ``||L - L0||_F / ||L0||_F``, iterations and time per iteration.
* ``video``: the synthetic surveillance video of bench_rpca (textured background under an
  illumination drift, moving rectangles, noise, 3 tampered frames), 240 x 320 pixels x 600
  frames = a 76800 x 600 matrix, in float32 and float64: PCP, rSVDdpd rank 1
  (``alpha=0.5``) and the rank-1 ``cupy.linalg.svd`` (cuSOLVER) as the non-robust baseline;
  metrics: background error outside the tampered frames, best foreground F1 over
  t = 0.01 ... 0.30, time per iteration.
* ``--cpu-baseline`` adds the same sparselin calls on the NumPy copy (one run each), for the
  GPU/CPU ratio on this machine's CPUs.

Every clock read is preceded by ``cupy.cuda.Device().synchronize()``, so queued GPU work is
counted; the data is generated on the host and moved to the device before timing.

Run ``python benchmarks/gpu/bench_rpca_gpu.py [--quick] [--cpu-baseline] [--json PATH]``.
Without CuPy or a GPU it prints why and exits with status 2.
"""

from __future__ import annotations

import argparse
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
    measure,
    print_table,
    write_json,
)
from bench_rpca import pcp_problem, rel_err, synthetic_video, video_metrics

COLUMNS = [
    Column("name", "method"),
    Column("dtype", "dtype"),
    Column("time", "best"),
    Column("time_median", "median"),
    Column("runs", "runs"),
    Column("n_iter", "iters"),
    Column("time_per_iter", "per iter", "{:.4f}"),
    Column("rel_err", "rel err L", "{:.2e}"),
    Column("bg_err", "bg err", "{:.2e}"),
    Column("f1", "F1", "{:.3f}"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, repeat=3)
    parser.add_argument(
        "--cpu-baseline", action="store_true", help="also run sparselin on the NumPy copy"
    )
    parser.add_argument("--part", choices=("all", "pcp", "video"), default="all")
    args = parser.parse_args(argv)

    cp, why = load_cupy()
    if cp is None:
        print(f"bench_rpca_gpu: skipped, this benchmark needs CuPy and an NVIDIA GPU: {why}")
        return 2
    from sparselin.robust import robust_pca

    limit_threads(args.threads)

    def sync() -> None:
        cp.cuda.Device().synchronize()

    print(format_environment(environment()))
    rows: list[dict[str, Any]] = []

    def run(name: str, fn: Any, metrics: Any, *, on_gpu: bool = True, **fields: Any) -> None:
        row = measure(
            name,
            fn,
            repeat=args.repeat if on_gpu else 1,
            warmup=1 if on_gpu else 0,
            max_seconds=args.max_seconds,
            sync=sync if on_gpu else None,
            metrics=metrics,
            **fields,
        )
        if row.get("time") is not None and row.get("n_iter"):
            row["time_per_iter"] = row["time"] / row["n_iter"]
        rows.append(row)

    if args.part in ("all", "pcp"):
        m, r = (600, 15) if args.quick else (3000, 75)
        M, L0, _ = pcp_problem(m, m, r, 0.05)
        Md = cp.asarray(M)
        case = f"{m}x{m} rank {r}, 5% corruptions U[-500,500]"
        common = {"part": "pcp_gpu", "case": case, "dtype": "float64"}

        def pcp_metrics(res: Any, L0=L0) -> dict[str, Any]:
            return {
                "rel_err": rel_err(cp.asnumpy(res.low_rank), L0),
                "n_iter": int(res.n_iter),
                "converged": bool(res.converged),
                "out": type(res.low_rank).__module__.split(".")[0],
            }

        run("sparselin pcp (cupy)", lambda: robust_pca(Md, random_state=0), pcp_metrics, **common)
        if args.cpu_baseline:

            def cpu_metrics(res: Any, L0=L0) -> dict[str, Any]:
                return {"rel_err": rel_err(res.low_rank, L0), "n_iter": int(res.n_iter)}

            run(
                "sparselin pcp (numpy)",
                lambda: robust_pca(M, random_state=0),
                cpu_metrics,
                on_gpu=False,
                **common,
            )
        print_table(
            [r for r in rows if r["part"] == "pcp_gpu"],
            COLUMNS,
            baselines={"vs cpu": "sparselin pcp (numpy)"} if args.cpu_baseline else None,
            title=f"GPU robust PCA (PCP): {case}",
        )
        del Md, M, L0
        cp.get_default_memory_pool().free_all_blocks()

    if args.part in ("all", "video"):
        h, w, T = (60, 80, 150) if args.quick else (240, 320, 600)
        video = synthetic_video(h, w, T)
        for dtype in (np.float32, np.float64):
            dname = np.dtype(dtype).name
            M = video["M"].astype(dtype)
            Md = cp.asarray(M)
            case = f"video {h}x{w} x {T} frames ({M.shape[0]}x{M.shape[1]}) {dname}"
            common = {"part": "video_gpu", "case": case, "dtype": dname}

            def metrics(res: Any) -> dict[str, Any]:
                L = res.low_rank
                L = cp.asnumpy(L) if not isinstance(L, np.ndarray) else L
                return {"n_iter": int(res.n_iter), **video_metrics(L, video)}

            def svd_rank1(Md=Md) -> Any:
                U, s, Vt = cp.linalg.svd(Md, full_matrices=False)
                return (U[:, :1] * s[:1]) @ Vt[:1]

            def svd_metrics(L: Any) -> dict[str, Any]:
                return video_metrics(cp.asnumpy(L), video)

            run("sparselin pcp (cupy)", lambda Md=Md: robust_pca(Md, random_state=0), metrics,
                **common)  # fmt: skip
            run(
                "sparselin rsvddpd rank 1 (cupy)",
                lambda Md=Md: robust_pca(Md, method="rsvddpd", rank=1, alpha=0.5, random_state=0),
                metrics,
                **common,
            )
            run("cupy.linalg.svd rank 1", svd_rank1, svd_metrics, **common)
            if args.cpu_baseline:
                run("sparselin pcp (numpy)", lambda M=M: robust_pca(M, random_state=0), metrics,
                    on_gpu=False, **common)  # fmt: skip
                run(
                    "sparselin rsvddpd rank 1 (numpy)",
                    lambda M=M: robust_pca(M, method="rsvddpd", rank=1, alpha=0.5, random_state=0),
                    metrics,
                    on_gpu=False,
                    **common,
                )
            print_table(
                [r for r in rows if r.get("case") == case],
                COLUMNS,
                baselines={"vs cusolver svd": "cupy.linalg.svd rank 1"},
                title=f"GPU background modelling: {case}",
            )
            del Md, M
            cp.get_default_memory_pool().free_all_blocks()

    if args.json:
        write_json(args.json, rows, benchmark="rpca_gpu", quick=args.quick)
        print(f"\nrows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
