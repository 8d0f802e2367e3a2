"""Truncated and incremental SVD on the CPU: sparselin against its peers, in one run.

Part 1, truncated SVD. One dense matrix per case, the same for every method, built with
:func:`sparselin.datasets.make_low_rank_matrix` so that its singular values ``s`` are known and
the optimal rank-k error ``sqrt(sum(s[k:]**2))`` (Eckart-Young) is exact:

* 4000 x 3000, ``s_i = 0.97**i`` (fast decay), float64 and float32;
* 4000 x 3000, ``s_i = (i + 1)**-0.5`` (slow decay), float64 and float32;

with k = 50. Methods: sparselin ``truncated_svd`` (default method, ``block_krylov`` and
``lanczos``),
scikit-learn ``randomized_svd`` (defaults), SciPy ``svds`` (ARPACK), ``fbpca.pca`` and
``torch.svd_lowrank(q=k+10, niter=2)``, all with their default accuracy settings.

Part 2, incremental SVD. A 10000 x 5000 matrix (``make_low_rank_matrix`` with
``s_i = 0.97**i``, full rank) arrives in blocks of 100 columns; k = 50. sparselin
``svd_update`` per block, scikit-learn ``IncrementalPCA.partial_fit`` on the row blocks of
``A.T``, and re-running ``truncated_svd`` on all columns seen so far after every block (timed
on every 10th block only and interpolated, and labelled so).

Run ``python benchmarks/bench_svd.py`` (``--quick`` for a smoke run, ``--json PATH`` to keep
the rows). See benchmarks/README.md for what the columns mean.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from _harness import (
    Column,
    add_common_arguments,
    environment,
    format_environment,
    limit_threads,
    measure,
    print_table,
    write_json,
)

import sparselin
from sparselin.datasets import make_low_rank_matrix
from sparselin.linalg._operator import Operator


def residual_norm(A: np.ndarray, U: Any, s: Any, Vt: Any) -> float:
    """``||A - U diag(s) Vt||_F``, accumulated in float64 whatever the input precision."""
    U = np.asarray(U, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    Vt = np.asarray(Vt, dtype=np.float64)
    R = np.asarray(A, dtype=np.float64) - (U * s) @ Vt
    return float(np.linalg.norm(R))


def optimal_error(s: np.ndarray, k: int) -> float:
    return float(np.sqrt(np.sum(s[k:] ** 2)))


# --------------------------------------------------------------------------- peers


def _import_error(name: str) -> str | None:
    try:
        __import__(name)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def svd_methods(k: int) -> list[tuple[str, Any]]:
    """(row name, function A -> (U, s, Vt) with exactly k components)."""
    from scipy.sparse.linalg import svds
    from sklearn.utils.extmath import randomized_svd

    def sparselin_default(A):
        return sparselin.truncated_svd(A, k, random_state=0)

    def sparselin_krylov(A):
        return sparselin.truncated_svd(A, k, method="block_krylov", random_state=0)

    def sparselin_lanczos(A):
        return sparselin.truncated_svd(A, k, method="lanczos", random_state=0)

    def sklearn_rsvd(A):
        return randomized_svd(A, k, random_state=0)

    def scipy_svds(A):
        return svds(A, k, random_state=0)

    def fbpca_pca(A):
        import fbpca

        np.random.seed(0)  # noqa: NPY002 (fbpca draws from the global NumPy generator)
        return fbpca.pca(A, k, raw=True)

    def torch_lowrank(A):
        import torch

        torch.manual_seed(0)
        U, S, V = torch.svd_lowrank(torch.from_numpy(A), q=k + 10, niter=2)
        # svd_lowrank returns q components (descending); keep the leading k like everybody.
        return U[:, :k].numpy(), S[:k].numpy(), V[:, :k].T.numpy()

    return [
        ("sparselin", sparselin_default),
        ("sparselin block_krylov", sparselin_krylov),
        ("sparselin lanczos", sparselin_lanczos),
        ("sklearn randomized_svd", sklearn_rsvd),
        ("scipy svds", scipy_svds),
        ("fbpca pca", fbpca_pca),
        ("torch svd_lowrank", torch_lowrank),
    ]


NOTES = {
    "fbpca pca": "fbpca computes in float64 whatever the input dtype",
    "scipy svds": "ARPACK, exact to tolerance",
}


def bench_truncated(args: argparse.Namespace) -> list[dict[str, Any]]:
    m, n, k = (800, 600, 20) if args.quick else (4000, 3000, 50)
    cases = [(0.97, np.float64), (0.97, np.float32), ("slow", np.float64), ("slow", np.float32)]
    missing = {"fbpca pca": _import_error("fbpca"), "torch svd_lowrank": _import_error("torch")}
    all_rows: list[dict[str, Any]] = []
    for decay, dtype in cases:
        decay_label = "0.97**i" if decay == 0.97 else "(i+1)**-0.5"
        dname = np.dtype(dtype).name
        A, s = make_low_rank_matrix(
            m, n, decay=decay, dtype=dtype, random_state=0, return_singular_values=True
        )
        opt = optimal_error(s, k)
        case = f"{m}x{n} {dname} s_i={decay_label} k={k}"
        rows = []
        for name, fn in svd_methods(k):
            if missing.get(name):
                rows.append({"name": name, "time": None, "error": missing[name]})
                continue

            def metrics(res, A=A, opt=opt):
                U, sv, Vt = res
                if U.shape[1] != k or Vt.shape[0] != k:
                    raise ValueError(f"expected {k} components, got {U.shape[1]}")
                return {"err_opt": residual_norm(A, U, sv, Vt) / opt, "out_dtype": U.dtype.name}

            row = measure(
                name,
                lambda fn=fn, A=A: fn(A),
                repeat=args.repeat,
                max_seconds=args.max_seconds,
                metrics=metrics,
                part="truncated_svd",
                case=case,
                shape=[m, n],
                dtype=dname,
                decay=decay_label,
                k=k,
                optimal_error=opt,
            )
            if name in NOTES and "error" not in row:
                row["note"] = NOTES[name]
            rows.append(row)
            print(".", end="", flush=True, file=sys.stderr)
        print(file=sys.stderr)
        for r in rows:
            r.setdefault("case", case)
            r.setdefault("part", "truncated_svd")
        print_table(
            rows,
            [
                Column("name", "method"),
                Column("out_dtype", "out"),
                Column("time", "best"),
                Column("time_median", "median"),
                Column("runs", "runs"),
                Column("err_opt", "err/opt", "{:.4f}"),
            ],
            baselines={"vs torch": "torch svd_lowrank", "vs sklearn": "sklearn randomized_svd"},
            title=f"truncated SVD: {case}  (optimal error {opt:.4g})",
        )
        all_rows.extend(rows)
        del A

    all_rows += bench_gemm_pass(m, n, k + 10, args)

    # float32 against float64 for sparselin's own methods, per decay.
    summary = []
    for method in ("sparselin", "sparselin block_krylov", "sparselin lanczos"):
        for decay in ("0.97**i", "(i+1)**-0.5"):
            t = {
                r["dtype"]: r.get("time")
                for r in all_rows
                if r["name"] == method and r.get("decay") == decay
            }
            t64, t32 = t.get("float64"), t.get("float32")
            summary.append(
                {
                    "part": "float32_speedup",
                    "name": method,
                    "decay": decay,
                    "time_float64": t64,
                    "time_float32": t32,
                    "speedup": (t64 / t32) if t64 and t32 else None,
                }
            )
    print("\nsparselin float32 vs float64 (time float64 / time float32):")
    for r in summary:
        sp = f"{r['speedup']:.2f}x" if r["speedup"] else "-"
        print(f"  {r['name']:<24} s_i={r['decay']:<12} {sp}")
    return all_rows + summary


def bench_gemm_pass(m: int, n: int, width: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One pass over A, ``A @ X`` with ``width`` columns, in NumPy's BLAS and in torch's.

    Every randomized method here is a handful of such passes, so this row says how much of
    a difference between sparselin (NumPy's OpenBLAS) and torch comes from the GEMM library
    rather than from the algorithm.
    """
    rng = np.random.default_rng(0)
    repeat = max(args.repeat, 10)
    all_rows = []
    for dtype in (np.float64, np.float32):
        A = rng.standard_normal((m, n)).astype(dtype)
        X = rng.standard_normal((n, width)).astype(dtype)
        dname = np.dtype(dtype).name
        case = f"{m}x{n} @ {n}x{width} {dname}"
        common = {"part": "gemm_pass", "case": case, "dtype": dname}
        # sparselin's own product (it picks the faster of A @ X and (X^T A^T)^T per dtype).
        op = Operator(A, "dense", np)
        rows = [
            measure(
                "sparselin pass (NumPy's BLAS)",
                lambda op=op, X=X: op.mm(X),
                repeat=repeat,
                **common,
            )
        ]
        if _import_error("torch") is None:
            import torch

            At, Xt = torch.from_numpy(A), torch.from_numpy(X)
            rows.append(
                measure("torch A @ X (MKL)", lambda At=At, Xt=Xt: At @ Xt, repeat=repeat, **common)
            )
        print_table(
            rows,
            [Column("name", "library"), Column("time", "best")],
            baselines={"vs torch": "torch A @ X (MKL)"},
            title=f"one pass over A, the unit of work of every method above: {case}",
        )
        all_rows += rows
    return all_rows


# --------------------------------------------------------------------------- incremental


def bench_incremental(args: argparse.Namespace) -> list[dict[str, Any]]:
    from sklearn.decomposition import IncrementalPCA

    if args.quick:
        m, n, block, k, every = 1000, 600, 50, 20, 4
    else:
        m, n, block, k, every = 10000, 5000, 100, 50, 10
    t0 = time.perf_counter()
    A, s = make_low_rank_matrix(
        m, n, decay=0.97, dtype=np.float64, random_state=0, return_singular_values=True
    )
    # Fortran order: every column block and every column prefix is then a contiguous view,
    # so nobody pays for a copy in the timed region (and A.T's row blocks are C-contiguous).
    A = np.asfortranarray(A)
    print(f"\n(built the {m}x{n} stream matrix in {time.perf_counter() - t0:.1f} s)")
    opt = optimal_error(s, k)
    starts = list(range(0, n, block))
    n_blocks = len(starts)
    case = f"{m}x{n} float64 s_i=0.97**i, {n_blocks} blocks of {block} columns, k={k}"
    common = {"part": "incremental", "case": case, "shape": [m, n], "k": k, "block": block}
    repeat = max(1, min(args.repeat, 3))

    def stream_sparselin():
        U, sv, Vt = sparselin.truncated_svd(A[:, :block], k, random_state=0)
        for j in starts[1:]:
            U, sv, Vt = sparselin.svd_update(U, sv, Vt, A[:, j : j + block], axis=1, k=k)
        return U, sv, Vt

    def stream_ipca():
        ipca = IncrementalPCA(n_components=k)
        At = A.T
        for j in starts:
            ipca.partial_fit(At[j : j + block])
        return ipca

    def ipca_error(ipca) -> dict[str, Any]:
        # IncrementalPCA models the columns of A as mean + span(components_): the error of that
        # (affine) model, computed by projecting A onto it after the stream (not timed).
        At = A.T
        C = ipca.components_
        R = At - ipca.mean_
        R = R - (R @ C.T) @ C
        return {"err_opt": float(np.linalg.norm(R)) / opt}

    rows = [
        measure(
            "sparselin svd_update",
            stream_sparselin,
            repeat=repeat,
            max_seconds=args.max_seconds,
            metrics=lambda r: {"err_opt": residual_norm(A, *r) / opt},
            note="truncated_svd of block 1, then svd_update(axis=1) per block",
            **common,
        ),
        measure(
            "sklearn IncrementalPCA",
            stream_ipca,
            repeat=repeat,
            max_seconds=args.max_seconds,
            metrics=ipca_error,
            note="partial_fit on row blocks of A.T; centres the data (rank-k affine model)",
            **common,
        ),
    ]
    print(".", end="", flush=True, file=sys.stderr)

    # Re-computing from scratch after every block: time every `every`-th re-compute (and the
    # first and the last), interpolate the others linearly in the number of columns.
    timed = sorted({0, n_blocks - 1, *range(every - 1, n_blocks, every)})
    times: dict[int, float] = {}
    last = None
    for idx, b in enumerate(timed):
        ncols = starts[b] + block
        row_b = measure(
            "recompute",
            lambda ncols=ncols: sparselin.truncated_svd(A[:, :ncols], k, random_state=0),
            repeat=1,
            warmup=1 if idx == 0 else 0,
        )
        if "error" in row_b:
            rows.append({**common, **row_b, "name": "sparselin recompute"})
            last = None
            break
        times[b] = row_b["time"]
        last = b
        print(".", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    if last is not None:
        x = np.array(sorted(times))
        total = float(np.sum(np.interp(np.arange(n_blocks), x, [times[b] for b in x])))
        U, sv, Vt = sparselin.truncated_svd(A, k, random_state=0)
        rows.append(
            {
                "name": "sparselin recompute (extrapolated)",
                **common,
                "time": total,
                "extrapolated": True,
                "timed_blocks": [int(b) + 1 for b in x],
                "timed_seconds": [times[b] for b in x],
                "err_opt": residual_norm(A, U, sv, Vt) / opt,
                "note": f"EXTRAPOLATED: {len(x)} of {n_blocks} re-computes timed "
                f"(blocks {', '.join(str(int(b) + 1) for b in x)}), rest interpolated",
            }
        )
    print_table(
        rows,
        [
            Column("name", "method"),
            Column("time", "total"),
            Column("runs", "runs"),
            Column("err_opt", "err/opt", "{:.4f}"),
        ],
        baselines={"vs IPCA": "sklearn IncrementalPCA"},
        title=f"incremental SVD: {case}  (optimal error of the full matrix {opt:.4g})",
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, repeat=5)
    parser.add_argument(
        "--part",
        choices=("all", "truncated", "incremental"),
        default="all",
        help="run only one part (default: all)",
    )
    args = parser.parse_args(argv)
    # Load every peer before limiting threads: threadpoolctl only sees libraries loaded so far.
    for name in ("torch", "fbpca", "sklearn.decomposition", "scipy.sparse.linalg"):
        _import_error(name)
    limit_threads(args.threads)
    print(format_environment(environment()))
    rows: list[dict[str, Any]] = []
    if args.part in ("all", "truncated"):
        rows += bench_truncated(args)
    if args.part in ("all", "incremental"):
        rows += bench_incremental(args)
    if args.json:
        write_json(args.json, rows, benchmark="svd", quick=args.quick)
        print(f"\nrows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
