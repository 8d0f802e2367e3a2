"""Robust PCA on the CPU: sparselin's PCP and rSVDdpd against tensorly and the plain SVD.

Every row runs at the libraries' default thread counts *and* at one thread (``--threads``
changes the list), one setting right after the other in the same process, on the same data.

Part 1, ``pcp``. The issue's case: ``M = L0 + S0``, 1000 x 1000, ``L0 = X Y^T`` with X, Y
1000 x 25 standard normal (rank 25), ``S0`` 5 % of the entries uniform in [-500, 500] at
random positions (the Lin-Chen-Ma protocol). Rows: ``sparselin robust_pca`` (PCP by inexact
ALM with partial SVDs) at its default ``tol=1e-7`` and at ``tol=1e-8``, and
``tensorly.decomposition.robust_pca`` (ALM with one full SVD per mode per iteration). tensorly
is given PCP's problem, ``reg_E = 2 / sqrt(max(m, n))`` with ``reg_J = 1`` (both unfoldings
of a matrix penalise the nuclear norm, so lambda = reg_E / (2 reg_J)); at its defaults
(lambda = 0.5) it does not recover L0 at all (relative error 27 at 150 x 150). Its stopping
tolerance is absolute; it is set to ``tol * ||M||_F`` for ``tol`` = 1e-6, 1e-7, ... and each
run is timed once (``--tensorly-max-iter`` bounds it): the first one whose relative error of
L reaches sparselin's (``tol=1e-7`` row) is the "matched" row; if none does, the most
accurate is kept and the row says NOT REACHED. Metric: ``||L - L0||_F / ||L0||_F``.
Target (the issue): <= 2 s at relative error <= 1e-6.

Part 2, ``video``. A synthetic surveillance video of 300 frames of 100 x 200 pixels as a
20000 x 300 (pixels x frames) matrix: textured static background under a slow global
illumination drift (a rank-1 background matrix), moving rectangles, noise, three tampered
frames (:func:`synthetic_video`). Rows: PCP (total time, iterations, time per iteration),
rSVDdpd rank 1 (``alpha=0.5``, the authors' video setting), and the rank-1 plain SVD as the
non-robust baseline. Metrics: relative error of the background outside the tampered frames,
and the best F1 of the foreground mask ``|M - L| > t`` over the authors' grid
t = 0.01 ... 0.30 (research notes 2.5). tensorly is not run here: its SVD of the
20000-row unfolding is a full 20000 x 20000 factor (tensorly#36, #176).

Part 3, ``rsvddpd``: the robust SVD against the plain SVD on corrupted data.
(a) The authors' simulation (their ``test_simulation.R``): 10 x 4, ``U diag(10, 5, 3) V^T``
with orthonormal polynomial columns, N(0, 1) noise, 10 % of cells set to 25; medians over 100
seeds of the relative error to the clean matrix, rSVDdpd (alpha 0.3, 0.5, 1) against the SVD.
(b) 200 x 100, singular values (100, 50), noise 0.1, 10 % of cells + U(5, 10).
(c) The authors' timing script (``test_timecomparison.R``): X 1000 x 25 uniform, the first
singular value only, rSVDdpd at alpha 0.1, 0.5, 1 against ``numpy.linalg.svd``. Their
published timing and F1 tables could not be read (research notes 5), so the comparison is
with their *protocol*, not their numbers; the notes' independent re-implementation measured
(median singular values at 10 %) SVD (37.4, 26.5, 17.1) and rSVDdpd alpha 0.5
(11.3, 5.7, 2.8).

Run ``python benchmarks/bench_rpca.py`` (``--quick`` for a smoke run, ``--json PATH`` to keep
the rows, ``--part pcp|video|rsvddpd`` for one part).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
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

TARGET_TIME_S = 2.0
TARGET_REL_ERR = 1e-6
# tensorly's matched accuracy: reach sparselin's relative error times this.
MATCH_SLACK = 1.05
TENSORLY_TOLS = (1e-6, 1e-7, 1e-8, 1e-9)
F1_THRESHOLDS = np.round(np.arange(0.01, 0.305, 0.01), 2)


def _robust_pca() -> Callable[..., Any]:
    # Imported lazily: the public function arrived with the robust family, and a missing one
    # must become rows with an error, not a failed import of the whole script.
    from sparselin.robust import robust_pca

    return robust_pca


def _import_error(name: str) -> str | None:
    try:
        __import__(name)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _progress() -> None:
    print(".", end="", flush=True, file=sys.stderr)


def rel_err(L: Any, L0: np.ndarray) -> float:
    L = np.asarray(L, dtype=np.float64)
    return float(np.linalg.norm(L - L0) / np.linalg.norm(L0))


# ------------------------------------------------------------------------------ data


def pcp_problem(m: int, n: int, r: int, rho: float, seed: int = 0) -> tuple[np.ndarray, ...]:
    """``(M, L0, S0)``: rank-r Gaussian product plus a fraction rho of U[-500, 500] entries."""
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    S0 = np.zeros(m * n)
    idx = rng.choice(m * n, round(rho * m * n), replace=False)
    S0[idx] = rng.uniform(-500.0, 500.0, idx.size)
    S0 = S0.reshape(m, n)
    return L0 + S0, L0, S0


def synthetic_video(
    h: int, w: int, T: int, *, n_objects: int = 3, tampered: int = 3, seed: int = 0
) -> dict[str, Any]:
    """A surveillance-like video as a (h*w) x T matrix with its ground truth.

    Background: smooth texture in [0.1, 0.9] (sums of random sinusoids) times a slow global
    illumination drift (+-5 %), so the background matrix has rank 1. Objects: rectangles of
    about 8 % x 12 % of the frame moving at constant speed (wrapping around), intensity
    +0.35 above the background (clipped to 1). Noise: N(0, 0.02^2). Tampered frames: whole
    frames replaced by uniform noise (a covered or hijacked camera). Returned keys: ``M``,
    ``background`` (the true background matrix), ``foreground`` (bool mask of the objects,
    h*w x T), ``tampered`` (frame indices), ``shape`` (h, w).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    tex = np.zeros((h, w))
    for _ in range(6):
        fy, fx = rng.uniform(1, 12, 2)
        tex += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * (fy * yy + fx * xx) + rng.uniform(0, 6))
    tex = 0.1 + 0.8 * (tex - tex.min()) / (tex.max() - tex.min())
    gain = 1.0 + 0.05 * np.sin(np.linspace(0, 2 * np.pi, T))
    B = tex.reshape(-1, 1) * gain[None, :]
    frames = B.T.reshape(T, h, w).copy()
    fg = np.zeros((T, h, w), dtype=bool)
    oh, ow = max(2, int(0.08 * h)), max(2, int(0.12 * w))
    for _ in range(n_objects):
        y0 = rng.integers(0, h - oh)
        x0, vx = rng.uniform(0, w), rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0)
        for t in range(T):
            x = int(x0 + vx * t) % (w - ow)
            fg[t, y0 : y0 + oh, x : x + ow] = True
    frames[fg] = np.minimum(frames[fg] + 0.35, 1.0)
    frames += 0.02 * rng.standard_normal(frames.shape)
    bad = np.sort(rng.choice(np.arange(T // 10, T), tampered, replace=False))
    frames[bad] = rng.uniform(0.0, 1.0, (tampered, h, w))
    fg[bad] = False
    return {
        "M": frames.reshape(T, -1).T.copy(),
        "background": B,
        "foreground": fg.reshape(T, -1).T.copy(),
        "tampered": bad,
        "shape": (h, w),
    }


def video_metrics(L: Any, video: dict[str, Any]) -> dict[str, Any]:
    """Background error outside the tampered frames, best foreground F1 over the grid."""
    L = np.asarray(L, dtype=np.float64)
    T = L.shape[1]
    good = np.setdiff1d(np.arange(T), video["tampered"])
    B = video["background"][:, good]
    err = float(np.linalg.norm(L[:, good] - B) / np.linalg.norm(B))
    diff = np.abs(video["M"][:, good] - L[:, good])
    truth = video["foreground"][:, good]
    n_true = truth.sum()
    best, best_t = 0.0, None
    for t in F1_THRESHOLDS:
        pred = diff > t
        f1 = 2.0 * np.sum(pred & truth) / (pred.sum() + n_true)
        if f1 > best:
            best, best_t = float(f1), float(t)
    return {"bg_err": err, "f1": best, "f1_threshold": best_t}


# ------------------------------------------------------------------------------ part 1


def _tensorly(M: np.ndarray, tol_abs: float, max_iter: int) -> tuple[Any, Any, int]:
    from tensorly.decomposition import robust_pca as tl_rpca

    # PCP's problem in tensorly's terms: both unfoldings of a matrix penalise ||D||_* with
    # reg_J each, so lambda = reg_E / (2 reg_J) (research notes section 3). At its defaults
    # (reg_E = reg_J = 1, lambda = 0.5) it does not recover L0 here (rel. err 27 at 150 x 150).
    reg_E = 2.0 / np.sqrt(max(M.shape))
    D, E, errs = tl_rpca(
        M, tol=tol_abs, reg_E=reg_E, n_iter_max=max_iter, return_errors=True, verbose=0
    )
    return D, E, len(errs)


PCP_COLUMNS = [
    Column("name", "method"),
    Column("threads", "threads"),
    Column("time", "best"),
    Column("time_median", "median"),
    Column("runs", "runs"),
    Column("n_iter", "iters"),
    Column("rel_err", "rel err L", "{:.2e}"),
    Column("rank", "rank L"),
]


def bench_pcp(args: argparse.Namespace) -> list[dict[str, Any]]:
    m, n, r = (80, 80, 4) if args.quick else (1000, 1000, 25)
    rho = 0.05
    with thread_setting(1):
        M, L0, _ = pcp_problem(m, n, r, rho)
    case = f"{m}x{n} rank {r}, {rho:.0%} corruptions U[-500,500]"
    common = {"part": "pcp", "case": case, "shape": [m, n], "rank_true": r}
    try:
        rpca = _robust_pca()
        missing = None
    except Exception as exc:
        rpca, missing = None, f"{type(exc).__name__}: {exc}"
    tl_missing = _import_error("tensorly")

    def metrics(res: Any) -> dict[str, Any]:
        L = res.low_rank
        return {
            "rel_err": rel_err(L, L0),
            "n_iter": int(res.n_iter),
            "rank": int(res.rank),
            "converged": bool(res.converged),
        }

    # sparselin's accuracy (the tensorly target), untimed.
    target = None
    if rpca is not None:
        with thread_setting(1):
            target = rel_err(rpca(M, random_state=0).low_rank, L0)
    m_norm = float(np.linalg.norm(M))
    tl_tols = TENSORLY_TOLS[-2:] if args.quick else TENSORLY_TOLS

    def tl_metrics(res: Any) -> dict[str, Any]:
        D, _, it = res
        return {
            "rel_err": rel_err(D, L0),
            "n_iter": it,
            "rank": int(np.linalg.matrix_rank(D, tol=1e-6 * np.linalg.norm(D, 2))),
        }

    def tensorly_matched() -> dict[str, Any]:
        """Time tensorly at tol = 1e-6, 1e-7, ... (one run each, minutes at full size) and
        keep the first run that reaches sparselin's error (the matched one): the matching
        runs are the timed runs, at the current thread setting."""
        tried: dict[str, Any] = {}
        best = None
        for tol in tl_tols:
            row = measure(
                "tensorly robust_pca matched",
                lambda tol=tol: _tensorly(M, tol * m_norm, args.tensorly_max_iter),
                repeat=1,
                warmup=0,  # nothing to warm (no JIT; BLAS started by sparselin's rows)
                metrics=tl_metrics,
                tol=tol,
                **common,
            )
            _progress()
            if row.get("rel_err") is None:
                return row
            tried[f"{tol:g}"] = [row["rel_err"], row["n_iter"], row["time"]]
            if best is None or row["rel_err"] < best["rel_err"]:
                best = row
            if row["rel_err"] <= target * MATCH_SLACK or row["n_iter"] >= args.tensorly_max_iter:
                break  # matched, or the iteration bound (a smaller tol cannot stop earlier)
        assert best is not None
        reached = best["rel_err"] <= target * MATCH_SLACK
        how = "reached" if reached else "NOT REACHED, most accurate kept;"
        best["note"] = (
            f"reg_E=2/sqrt(max(m,n)) (PCP's lambda), tol={best['tol']:g}*||M||_F, first of "
            f"{', '.join(f'{t:g}' for t in tl_tols)} {how} sparselin's {target:.2e}; "
            f"n_iter_max={args.tensorly_max_iter}"
        )
        best["matched"] = reached
        best["match_tried"] = tried
        return best

    def one_setting() -> list[dict[str, Any]]:
        rows = []
        for tol in (1e-7, 1e-8):
            name = f"sparselin pcp tol={tol:g}"
            if rpca is None:
                rows.append({"name": name, **common, "time": None, "error": missing})
                continue
            rows.append(
                measure(
                    name,
                    lambda tol=tol: rpca(M, tol=tol, random_state=0),
                    repeat=args.repeat,
                    max_seconds=args.max_seconds,
                    metrics=metrics,
                    tol=tol,
                    **common,
                )
            )
            _progress()
        if tl_missing or target is None:
            why = tl_missing or f"no sparselin target ({missing})"
            rows.append(
                {"name": "tensorly robust_pca matched", **common, "time": None, "error": why}
            )
        else:
            rows.append(tensorly_matched())
        return rows

    rows = thread_passes(args.threads, one_setting)
    print(file=sys.stderr)
    print_table(
        rows,
        PCP_COLUMNS,
        baselines={"vs tensorly": "tensorly robust_pca matched"},
        group_by="threads",
        title=f"robust PCA (PCP): {case}",
    )
    return rows


# ------------------------------------------------------------------------------ part 2

VIDEO_COLUMNS = [
    Column("name", "method"),
    Column("threads", "threads"),
    Column("time", "best"),
    Column("time_median", "median"),
    Column("n_iter", "iters"),
    Column("time_per_iter", "per iter", "{:.4f}"),
    Column("bg_err", "bg err", "{:.2e}"),
    Column("f1", "F1", "{:.3f}"),
]


def bench_video(args: argparse.Namespace) -> list[dict[str, Any]]:
    h, w, T = (20, 40, 60) if args.quick else (100, 200, 300)
    with thread_setting(1):
        video = synthetic_video(h, w, T)
    M = video["M"]
    case = f"video {h}x{w} pixels x {T} frames ({M.shape[0]}x{M.shape[1]}), 3 tampered"
    common = {"part": "video", "case": case, "shape": list(M.shape)}
    try:
        rpca = _robust_pca()
        missing = None
    except Exception as exc:
        rpca, missing = None, f"{type(exc).__name__}: {exc}"

    def metrics(res: Any) -> dict[str, Any]:
        return {"n_iter": int(res.n_iter), **video_metrics(res.low_rank, video)}

    def svd_rank1(M=M) -> Any:
        U, s, Vt = np.linalg.svd(M, full_matrices=False)
        return (U[:, :1] * s[:1]) @ Vt[:1]

    methods: list[tuple[str, Callable[[], Any], Callable[[Any], dict[str, Any]]]] = []
    if rpca is not None:
        methods += [
            ("sparselin pcp", lambda: rpca(M, random_state=0), metrics),
            (
                "sparselin rsvddpd rank 1",
                lambda: rpca(M, method="rsvddpd", rank=1, alpha=0.5, random_state=0),
                metrics,
            ),
        ]
    methods.append(("numpy svd rank 1", svd_rank1, lambda L: video_metrics(L, video)))

    def one_setting() -> list[dict[str, Any]]:
        rows = []
        if rpca is None:
            for name in ("sparselin pcp", "sparselin rsvddpd rank 1"):
                rows.append({"name": name, **common, "time": None, "error": missing})
        for name, fn, met in methods:
            row = measure(
                name, fn, repeat=args.repeat, max_seconds=args.max_seconds, metrics=met, **common
            )
            if row.get("time") is not None and row.get("n_iter"):
                row["time_per_iter"] = row["time"] / row["n_iter"]
            rows.append(row)
            _progress()
        return rows

    rows = thread_passes(args.threads, one_setting)
    print(file=sys.stderr)
    print_table(
        rows,
        VIDEO_COLUMNS,
        baselines={"vs svd": "numpy svd rank 1"},
        group_by="threads",
        title=f"background modelling: {case}; bg err outside the tampered frames, best F1 of "
        "|M - L| > t, t in 0.01..0.30",
    )
    return rows


# ------------------------------------------------------------------------------ part 3

RSVD_COLUMNS = [
    Column("name", "method"),
    Column("threads", "threads"),
    Column("case", "case"),
    Column("time", "best"),
    Column("time_median", "median"),
    Column("rel_err", "rel err", "{:.3g}"),
    Column("s_top", "s (median)"),
]


def authors_simulation(n_seeds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(X corrupted, X0 clean) for the authors' 10 x 4 simulation with 10 % cells = 25."""
    t = np.linspace(-1, 1, 10)
    U = np.linalg.qr(np.vander(t, 3, increasing=True))[0]
    V = np.linalg.qr(np.vander(np.linspace(-1, 1, 4), 3, increasing=True))[0]
    X0 = (U * [10.0, 5.0, 3.0]) @ V.T
    out = []
    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        X = X0 + rng.standard_normal(X0.shape)
        X.flat[rng.choice(40, 4, replace=False)] = 25.0
        out.append((X, X0))
    return out


def bench_rsvddpd(args: argparse.Namespace) -> list[dict[str, Any]]:
    from sparselin.robust._rsvddpd import _rsvddpd_core

    def rsvd(X: np.ndarray, k: int, alpha: float) -> Any:
        # The core directly: the public function's validation is not what is compared here.
        return _rsvddpd_core(X, k, alpha=alpha, tol=1e-7, max_iter=200, random_state=0, xp=np)

    def svd(X: np.ndarray, k: int) -> tuple[Any, Any, Any]:
        U, s, Vt = np.linalg.svd(X, full_matrices=False)
        return U[:, :k], s[:k], Vt[:k]

    n_seeds = 10 if args.quick else 100
    sim = authors_simulation(n_seeds)
    rng = np.random.default_rng(7)
    m, n = (60, 30) if args.quick else (200, 100)
    U0 = np.linalg.qr(rng.standard_normal((m, 2)))[0]
    V0 = np.linalg.qr(rng.standard_normal((n, 2)))[0]
    L0 = (U0 * [100.0, 50.0]) @ V0.T
    Xb = L0 + 0.1 * rng.standard_normal(L0.shape)
    idx = rng.choice(m * n, m * n // 10, replace=False)
    Xb.flat[idx] += rng.uniform(5.0, 10.0, idx.size)
    nt = 200 if args.quick else 1000
    Xt = np.random.default_rng(1).uniform(size=(nt, 25))

    def fit_all(fn: Callable[[np.ndarray], Any]) -> list[Any]:
        return [fn(X) for X, _ in sim]

    def sim_metrics(results: list[Any]) -> dict[str, Any]:
        errs, svals = [], []
        for (_, X0), (U, s, Vt) in zip(sim, results, strict=True):
            errs.append(np.linalg.norm((U * s) @ Vt - X0) / np.linalg.norm(X0))
            svals.append(s)
        med = np.median(svals, axis=0)
        return {"rel_err": float(np.median(errs)), "s_top": ", ".join(f"{v:.1f}" for v in med)}

    def b_metrics(res: Any) -> dict[str, Any]:
        U, s, Vt = res[:3]
        return {"rel_err": rel_err((U * s) @ Vt, L0), "s_top": ", ".join(f"{v:.1f}" for v in s)}

    def t_metrics(res: Any) -> dict[str, Any]:
        return {"s_top": f"{float(res[1][0]):.3f}"}

    cases: list[tuple[str, str, Callable[[], Any], Callable[[Any], dict[str, Any]]]] = []
    sim_case = f"authors' 10x4 sim, 10% cells=25, {n_seeds} seeds"
    cases.append(("numpy svd", sim_case, lambda: fit_all(lambda X: svd(X, 3)), sim_metrics))
    for alpha in (0.3, 0.5, 1.0):
        cases.append(
            (
                f"rsvddpd alpha={alpha:g}",
                sim_case,
                lambda alpha=alpha: fit_all(lambda X: tuple(rsvd(X, 3, alpha))[:3]),
                sim_metrics,
            )
        )
    b_case = f"{m}x{n} s=(100,50), 10% +U(5,10)"
    cases.append(("numpy svd", b_case, lambda: svd(Xb, 2), b_metrics))
    for alpha in (0.1, 0.5, 1.0):
        cases.append(
            (f"rsvddpd alpha={alpha:g}", b_case, lambda a=alpha: rsvd(Xb, 2, a), b_metrics)
        )
    t_case = f"authors' timing: {nt}x25 uniform, 1st value"
    cases.append(("numpy svd", t_case, lambda: svd(Xt, 1), t_metrics))
    for alpha in (0.1, 0.5, 1.0):
        cases.append(
            (f"rsvddpd alpha={alpha:g}", t_case, lambda a=alpha: rsvd(Xt, 1, a), t_metrics)
        )

    def one_setting() -> list[dict[str, Any]]:
        rows = []
        for name, case, fn, met in cases:
            rows.append(
                measure(
                    name,
                    fn,
                    repeat=args.repeat,
                    max_seconds=args.max_seconds,
                    metrics=met,
                    part="rsvddpd",
                    case=case,
                )
            )
            _progress()
        return rows

    rows = thread_passes(args.threads, one_setting)
    print(file=sys.stderr)
    for case in dict.fromkeys(r["case"] for r in rows):
        print_table(
            [r for r in rows if r["case"] == case],
            RSVD_COLUMNS,
            baselines={"vs svd": "numpy svd"},
            group_by="threads",
            title=f"rSVDdpd vs SVD: {case}",
        )
    return rows


# ------------------------------------------------------------------------------ targets


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if r.get("part") != "pcp" or r.get("name") != "sparselin pcp tol=1e-07":
            continue
        t, e = r.get("time"), r.get("rel_err")
        met = t is not None and e is not None and t <= TARGET_TIME_S and e <= TARGET_REL_ERR
        out.append(
            {
                "part": "target",
                "name": f"pcp <= {TARGET_TIME_S:g} s at rel err <= {TARGET_REL_ERR:g}",
                "threads": r.get("threads"),
                "case": r.get("case"),
                "time": t,
                "rel_err": e,
                "met": bool(met),
            }
        )
    return out


def print_targets(targets: list[dict[str, Any]], *, quick: bool) -> None:
    if not targets:
        return
    print(
        "\ntargets"
        + (" (--quick: sizes too small for the targets to mean anything)" if quick else "")
    )
    for t in targets:
        time = "n/a" if t["time"] is None else f"{t['time']:.3f} s"
        err = "n/a" if t["rel_err"] is None else f"{t['rel_err']:.2e}"
        print(
            f"  [{'met' if t['met'] else 'MISSED'}] {t['name']} ({t['threads']} threads): "
            f"{time}, rel err {err}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, repeat=3, thread_passes=True)
    parts = ("pcp", "video", "rsvddpd")
    parser.add_argument(
        "--part", choices=("all", *parts), action="append", help="run only this part"
    )
    parser.add_argument(
        "--tensorly-max-iter",
        type=int,
        default=200,
        help="iteration bound of every tensorly run (default 200; each is a full SVD per mode)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
        args.tensorly_max_iter = min(args.tensorly_max_iter, 120)
    selected = set(parts) if not args.part or "all" in args.part else set(args.part)
    # Load every peer before any thread limit: threadpoolctl only sees libraries loaded so far.
    for name in ("tensorly", "scipy.linalg", "sparselin.robust"):
        _import_error(name)
    env = environment()
    print(format_environment(env))
    if env.get("openblas_warning"):
        print(f"bench_rpca: WARNING: {env['openblas_warning']}", file=sys.stderr)
    settings = []
    for n in args.threads:
        with thread_setting(n):
            settings.append({"threads": thread_label(n), "threadpool_info": threadpool_snapshot()})
    print("thread settings of every row: " + ", ".join(s["threads"] for s in settings))

    rows: list[dict[str, Any]] = []
    if "pcp" in selected:
        rows += bench_pcp(args)
    if "video" in selected:
        rows += bench_video(args)
    if "rsvddpd" in selected:
        rows += bench_rsvddpd(args)
    targets = check_targets(rows)
    print_targets(targets, quick=args.quick)
    if args.json:
        write_json(
            args.json,
            rows + targets,
            benchmark="rpca",
            env=env,
            quick=args.quick,
            thread_settings=settings,
            openblas_warning=env.get("openblas_warning"),
        )
        print(f"\nrows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
