"""Sparse Bayesian learning: KroSBL (SVD, AM) against classic SBL, OMP and ARDRegression.

    python benchmarks/bench_sbl.py [--quick] [--json PATH] [--threads default,1]

Three parts, all on the same data for every method, in one process:

1. Two factors of 16 x 64 (y of length 256, x of length 4096) with a Kronecker support of
   4 x 4 non-zeros, real Gaussian factors: median NMSE over several draws at SNR 0-30 dB for
   KroSBL (SVD and AM), classic SBL on the explicit 256 x 4096 matrix, OMP told the number of
   non-zeros, and scikit-learn's ARDRegression (``fit_intercept=False``). Then the time of
   each at 20 dB, at the default threading and at one thread, with ratios.
2. The paper's synthetic setup (He & Joseph, TSP 2024, Sec. VI; ``KroSBL_f`` in the authors'
   code): three factors of 15 columns, M = (8, 12, 15), 3 non-zeros per factor (27 in all),
   25 dB, unknown noise variance: median NMSE, support-recovery rate and mean time of
   SVD-KroSBL, AM-KroSBL and classic SBL. The authors report (MATLAB) median NMSE 1.7e-4 /
   2.7e-3 / 2.7e-3 in 2.0 s / 8.4 s / 14.9 s.
3. Scaling: three factors of 16 x G; classic SBL up to 2000 unknowns (its cost grows with
   the cube of the problem), KroSBL up to sizes where the dense matrix would take GBs.

NMSE = ||x_hat - x||^2 / ||x||^2. Support recovery rate = |S_hat ∩ S| / |S_hat ∪ S| with
S_hat = {i : |x_hat_i| > 1e-3 max |x_hat|} (the authors' ``recover_rate.m``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

from sparselin import kronecker_sbl, omp, sbl
from sparselin.recovery import kron_matvec


def kron_all(mats):
    out = mats[0]
    for M in mats[1:]:
        out = np.kron(out, M)
    return out


def kron_sparse(rng, Ns, K):
    parts = []
    for n in Ns:
        v = np.zeros(n)
        v[rng.choice(n, K, replace=False)] = rng.standard_normal(K)
        parts.append(v)
    return kron_all(parts)


def add_noise(rng, y0, snr_db):
    sigma2 = float(np.mean(y0**2)) / 10 ** (snr_db / 10)
    return y0 + math.sqrt(sigma2) * rng.standard_normal(y0.shape), sigma2


def nmse(x_hat, x):
    return float(np.sum((x_hat - x) ** 2) / np.sum(x**2))


def support_rate(x_hat, x):
    s_hat = set(np.flatnonzero(np.abs(x_hat) > 1e-3 * np.abs(x_hat).max()))
    s = set(np.flatnonzero(x))
    return len(s_hat & s) / max(1, len(s_hat | s))


def make_methods(n_nonzero):
    from sklearn.linear_model import ARDRegression

    def ard(F, A, y):
        return ARDRegression(fit_intercept=False).fit(A, y).coef_

    return {
        "KroSBL-SVD": lambda F, A, y: kronecker_sbl(F, y, method="svd").coef,
        "KroSBL-AM": lambda F, A, y: kronecker_sbl(F, y, method="am").coef,
        "classic SBL": lambda F, A, y: sbl(A, y, max_iter=150).coef,
        "OMP": lambda F, A, y: omp(A, y, n_nonzero=n_nonzero),
        "ARDRegression": ard,
    }


def part_two_factors(args, rng):
    Ns, Ms, K = ((16, 16), (6, 6), 2) if args.quick else ((64, 64), (16, 16), 4)
    trials = 1 if args.quick else 5
    snrs = [10, 30] if args.quick else [0, 10, 20, 30]
    methods = make_methods(K * K)
    if not args.quick:
        methods.pop("ARDRegression")  # 4096 features: minutes per fit, run once below
    acc_rows = []
    for snr in snrs:
        errs = {name: [] for name in methods}
        for _ in range(trials):
            F = [rng.standard_normal((m, n)) for m, n in zip(Ms, Ns, strict=True)]
            A = kron_all(F)
            x = kron_sparse(rng, Ns, K)
            y, _ = add_noise(rng, kron_matvec(F, x), snr)
            for name, run in methods.items():
                errs[name].append(nmse(run(F, A, y), x))
        for name in methods:
            acc_rows.append({"name": name, "snr_db": snr, "nmse": float(np.median(errs[name]))})
    H.print_table(
        acc_rows,
        [
            H.Column("name", "method"),
            H.Column("snr_db", "SNR dB"),
            H.Column("nmse", "median NMSE", "{:.2e}"),
        ],
        title=f"1. Accuracy, {math.prod(Ms)} x {math.prod(Ns)} (two factors), {trials} draws",
    )

    F = [rng.standard_normal((m, n)) for m, n in zip(Ms, Ns, strict=True)]
    A = kron_all(F)
    x = kron_sparse(rng, Ns, K)
    y, _ = add_noise(rng, kron_matvec(F, x), 20)
    timed = make_methods(K * K)

    def block():
        rows = []
        for name, run in timed.items():
            rows.append(
                H.measure(
                    name,
                    lambda run=run: run(F, A, y),
                    repeat=args.repeat,
                    max_seconds=args.max_seconds,
                    metrics=lambda xh: {"nmse": nmse(xh, x)},
                )
            )
        return rows

    rows = H.thread_passes(args.threads, block)
    H.print_table(
        rows,
        [
            H.Column("name", "method"),
            H.Column("threads", "threads"),
            H.Column("time", "best"),
            H.Column("time_median", "median"),
            H.Column("nmse", "NMSE", "{:.2e}"),
        ],
        baselines={"vs classic SBL": "classic SBL"},
        group_by="threads",
        title="1. Time at 20 dB (ratio: classic SBL time / row time)",
    )
    return acc_rows + rows


def part_paper(args, rng):
    Ms, Ns, K = (8, 12, 15), (15, 15, 15), 3
    trials = 2 if args.quick else 10
    names = ("KroSBL-SVD", "KroSBL-AM", "classic SBL")
    stats = {n: {"nmse": [], "srr": [], "time": []} for n in names}
    for _ in range(trials):
        F = [rng.standard_normal((m, n)) for m, n in zip(Ms, Ns, strict=True)]
        x = kron_sparse(rng, Ns, K)
        y, _ = add_noise(rng, kron_matvec(F, x), 25)
        A = kron_all(F)
        runs = {
            "KroSBL-SVD": lambda F=F, y=y: kronecker_sbl(F, y, method="svd").coef,
            "KroSBL-AM": lambda F=F, y=y: kronecker_sbl(F, y, method="am").coef,
            "classic SBL": lambda A=A, y=y: sbl(A, y, max_iter=150).coef,
        }
        for name, run in runs.items():
            t0 = time.perf_counter()
            x_hat = run()
            stats[name]["time"].append(time.perf_counter() - t0)
            stats[name]["nmse"].append(nmse(x_hat, x))
            stats[name]["srr"].append(support_rate(x_hat, x))
    paper = {
        "KroSBL-SVD": (1.7e-4, 2.0),
        "KroSBL-AM": (2.7e-3, 8.4),
        "classic SBL": (2.7e-3, 14.9),
    }
    rows = []
    for name in names:
        s = stats[name]
        mean_t = float(np.mean(s["time"]))
        rows.append(
            {
                "name": name,
                "median_nmse": float(np.median(s["nmse"])),
                "mean_nmse": float(np.mean(s["nmse"])),
                "mean_srr": float(np.mean(s["srr"])),
                "time": mean_t,
                "paper_nmse": paper[name][0],
                "paper_time": paper[name][1],
                "speedup_vs_paper": paper[name][1] / mean_t,
            }
        )
    H.print_table(
        rows,
        [
            H.Column("name", "method"),
            H.Column("median_nmse", "median NMSE", "{:.2e}"),
            H.Column("mean_nmse", "mean NMSE", "{:.2e}"),
            H.Column("mean_srr", "mean SRR", "{:.3f}"),
            H.Column("time", "mean time"),
            H.Column("paper_nmse", "paper NMSE", "{:.1e}"),
            H.Column("paper_time", "paper time (s)", "{:.1f}"),
            H.Column("speedup_vs_paper", "x paper", "{:.0f}"),
        ],
        title=(
            "2. Paper setup: M=(8,12,15), N=15^3, K=3/factor, 25 dB, unknown noise, "
            f"{trials} draws"
        ),
    )
    return rows


def part_scaling(args, rng):
    grids = [8, 12] if args.quick else [8, 16, 24, 32, 48, 64]
    Ms = (4, 4, 4) if args.quick else (16, 16, 16)
    rows = []
    for G in grids:
        F = [rng.standard_normal((m, G)) for m in Ms]
        x = kron_sparse(rng, (G, G, G), 2)
        y, _ = add_noise(rng, kron_matvec(F, x), 20)
        dense_bytes = math.prod(Ms) * G**3 * 8
        row = H.measure(
            "KroSBL-SVD",
            lambda F=F, y=y: kronecker_sbl(F, y, method="svd").coef,
            repeat=1,
            unknowns=G**3,
            dense_gb=dense_bytes / 1e9,
            metrics=lambda xh, x=x: {"nmse": nmse(xh, x)},
        )
        rows.append(row)
        if G**3 <= 2000:  # classic SBL's cubic cost: minutes beyond this
            A = kron_all(F)
            rows.append(
                H.measure(
                    "classic SBL",
                    lambda A=A, y=y: sbl(A, y, max_iter=150).coef,
                    repeat=1,
                    unknowns=G**3,
                    dense_gb=dense_bytes / 1e9,
                    metrics=lambda xh, x=x: {"nmse": nmse(xh, x)},
                )
            )
            del A
    H.print_table(
        rows,
        [
            H.Column("name", "method"),
            H.Column("unknowns", "unknowns"),
            H.Column("dense_gb", "dense A (GB)", "{:.3g}"),
            H.Column("time", "time"),
            H.Column("nmse", "NMSE", "{:.2e}"),
        ],
        title=f"3. Scaling, three factors {Ms[0]} x G (classic SBL up to 2000 unknowns)",
    )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    H.add_common_arguments(parser, repeat=3, thread_passes=True)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # ConvergenceWarnings of the capped peers
    env = H.environment()
    print(H.format_environment(env))
    warning = H.openblas_warning()
    if warning:
        print("WARNING:", warning)
    rng = np.random.default_rng(0)
    rows = part_two_factors(args, rng)
    rows += part_paper(args, rng)
    rows += part_scaling(args, rng)
    if args.json:
        H.write_json(args.json, rows, benchmark="sbl", env=env, quick=args.quick)


if __name__ == "__main__":
    main()
