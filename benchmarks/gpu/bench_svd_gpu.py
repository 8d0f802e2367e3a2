"""Truncated SVD on an NVIDIA GPU: sparselin (CuPy) against torch and cuSOLVER, in one run.

One 20000 x 10000 float32 matrix per case, built on the GPU as ``U diag(s) V^T`` from
Haar-random orthonormal factors (QR of a Gaussian matrix, in float64, then cast), so that the
singular values ``s`` are known and the optimal rank-k error ``sqrt(sum(s[k:]**2))`` is exact.
Cases: ``s_i = 0.97**i`` and ``s_i = (i + 1)**-0.5``; k = 100. Methods, on the same array:

* sparselin ``truncated_svd(A, k, random_state=0)`` on the CuPy array (default method and
  ``method="block_krylov"``);
* ``torch.svd_lowrank(A, q=k+10, niter=2)`` on the same memory (shared through DLPack, no copy);
* ``cupy.linalg.svd(A, full_matrices=False)`` (cuSOLVER, exact), only with ``--full-svd``
  because it is slow; timed once, without a warm-up.

Every clock read is preceded by a device synchronisation (``cupy.cuda.Device().synchronize()``
and ``torch.cuda.synchronize()``), so queued GPU work is counted.

Run ``python benchmarks/gpu/bench_svd_gpu.py [--full-svd] [--json PATH]``. Without CuPy or a
GPU it prints why and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
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


def spectrum(decay: str, r: int) -> np.ndarray:
    if decay == "0.97":
        return 0.97 ** np.arange(r, dtype=np.float64)
    return (np.arange(r) + 1.0) ** -0.5


def make_matrix(cp: Any, m: int, n: int, s: np.ndarray, dtype: Any, seed: int) -> Any:
    """``U diag(s) V^T`` on the GPU with Haar-random orthonormal U (m x r), V (n x r)."""
    r = s.size
    rs = cp.random.RandomState(seed)

    def haar(rows: int) -> Any:
        Q, R = cp.linalg.qr(rs.standard_normal((rows, r), dtype=cp.float64))
        # Multiplying by the signs of diag(R) makes Q Haar distributed (QR alone is not).
        d = cp.sign(cp.diagonal(R))
        d[d == 0] = 1
        return Q * d

    U = haar(m)
    U *= cp.asarray(s)
    V = haar(n)
    A = (U @ V.T).astype(dtype)
    del U, V
    cp.get_default_memory_pool().free_all_blocks()
    return A


def residual_norm(cp: Any, A: Any, U: Any, s: Any, Vt: Any) -> float:
    """``||A - U diag(s) Vt||_F`` on the GPU, accumulated in float64."""
    f8 = cp.float64
    R = A.astype(f8)
    R -= (cp.asarray(U, dtype=f8) * cp.asarray(s, dtype=f8)) @ cp.asarray(Vt, dtype=f8)
    out = float(cp.linalg.norm(R))
    del R
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, repeat=5)
    parser.add_argument("--full-svd", action="store_true", help="also time cupy.linalg.svd")
    parser.add_argument(
        "--decay",
        choices=("0.97", "slow", "both"),
        default="both",
        help="spectrum: 0.97**i, (i+1)**-0.5 or both (default)",
    )
    args = parser.parse_args(argv)

    cp, why = load_cupy()
    if cp is None:
        print(f"bench_svd_gpu: skipped, this benchmark needs CuPy and an NVIDIA GPU: {why}")
        return 2
    torch, torch_why = load_torch_cuda()

    import sparselin

    limit_threads(args.threads)

    def sync() -> None:
        cp.cuda.Device().synchronize()
        if torch is not None:
            torch.cuda.synchronize()

    m, n, k = (4000, 2000, 20) if args.quick else (20000, 10000, 100)
    dtype = cp.float32
    print(format_environment(environment()))
    print(f"cupy TF32 (CUPY_TF32): {os.environ.get('CUPY_TF32', 'unset (off)')}")

    all_rows: list[dict[str, Any]] = []
    decays = ["0.97", "slow"] if args.decay == "both" else [args.decay]
    for decay in decays:
        s_true = spectrum(decay, min(m, n))
        A = make_matrix(cp, m, n, s_true, dtype, seed=0)
        sync()
        opt = float(np.sqrt(np.sum(s_true[k:] ** 2)))
        label = "0.97**i" if decay == "0.97" else "(i+1)**-0.5"
        case = f"{m}x{n} float32 s_i={label} k={k}"
        common = {"part": "truncated_svd_gpu", "case": case, "shape": [m, n], "k": k}

        def metrics(res, A=A, opt=opt):
            U, s, Vt = res
            if U.shape[1] != k or Vt.shape[0] != k:
                raise ValueError(f"expected {k} components, got {U.shape[1]}")
            return {
                "err_opt": residual_norm(cp, A, U, s, Vt) / opt,
                "out": f"{type(U).__module__.split('.')[0]} {U.dtype}",
            }

        def run(name, fn, metrics=metrics, common=common):
            return measure(
                name,
                fn,
                repeat=args.repeat,
                max_seconds=args.max_seconds,
                sync=sync,
                metrics=metrics,
                **common,
            )

        rows = [
            run("sparselin", lambda A=A: sparselin.truncated_svd(A, k, random_state=0)),
            run(
                "sparselin block_krylov",
                lambda A=A: sparselin.truncated_svd(A, k, method="block_krylov", random_state=0),
            ),
        ]
        if torch is None:
            rows.append({"name": "torch svd_lowrank", **common, "time": None, "error": torch_why})
        else:
            At = torch.from_dlpack(A)  # same GPU memory, no copy

            def torch_lowrank(At=At):
                torch.manual_seed(0)
                U, S, V = torch.svd_lowrank(At, q=k + 10, niter=2)
                return U[:, :k], S[:k], V[:, :k].T

            def torch_metrics(res, metrics=metrics):
                U, S, Vt = (cp.from_dlpack(t.contiguous()) for t in res)
                out = metrics((U, S, Vt))
                out["out"] = f"torch {res[0].dtype}"
                return out

            rows.append(run("torch svd_lowrank", torch_lowrank, torch_metrics))
            del At
        if args.full_svd:

            def cupy_svd(A=A):
                U, s, Vt = cp.linalg.svd(A, full_matrices=False)
                return U[:, :k], s[:k], Vt[:k]

            rows.append(
                measure(
                    "cupy.linalg.svd",
                    cupy_svd,
                    repeat=1,
                    warmup=0,
                    sync=sync,
                    metrics=metrics,
                    note="full SVD (cuSOLVER), one run, no warm-up",
                    **common,
                )
            )
        for r in rows:
            r.setdefault("case", case)
        print_table(
            rows,
            [
                Column("name", "method"),
                Column("out", "out"),
                Column("time", "best"),
                Column("time_median", "median"),
                Column("runs", "runs"),
                Column("err_opt", "err/opt", "{:.4f}"),
            ],
            baselines={"vs torch": "torch svd_lowrank"},
            title=f"GPU truncated SVD: {case}  (optimal error {opt:.4g})",
        )
        all_rows.extend(rows)
        del A
        cp.get_default_memory_pool().free_all_blocks()

    if args.json:
        write_json(args.json, all_rows, benchmark="svd_gpu", quick=args.quick)
        print(f"\nrows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
