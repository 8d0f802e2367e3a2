"""Sparse recovery on the CPU: sparselin against its peers, in one run.

Part ``omp``: A 256 x 1024 (Gaussian, unit-norm columns), 1000 signals with 20 nonzeros each,
20 atoms per signal. sparselin ``omp`` (float64 and float32), scikit-learn ``orthogonal_mp``
(its default, and ``precompute=True``) and SPAMS ``spams.omp`` where installed.

Part ``convex``: A 500 x 5000 Gaussian, x with 50 nonzeros, 1% noise, weights uniform in
[0.5, 2], ``lam = lam_max / 20`` in sparselin's scaling (each peer gets the same problem in
its own scaling):

* ``weighted_lasso`` vs celer ``Lasso(weights=...)``, skglm ``WeightedLasso`` and
  scikit-learn ``Lasso`` (on the columns divided by the weights, which is the same problem);
* ``sqrt_lasso`` vs skglm ``SqrtLasso`` (unweighted: skglm's SqrtLasso has no weights), at
  ``lam_max / 5`` (at ``lam_max / 20`` the optimum interpolates, see the comment below);
* ``lad_lasso`` (interior-point crossover and simplex, ``_lad``) and, with ``--cvxpy``,
  scikit-learn ``QuantileRegressor(quantile=0.5, solver="highs")``, cvxpy and the previous
  HiGHS column-generation solver (minutes at this size), each interleaved with a sparselin
  run (paired timing on a shared machine).

Every row reports the objective in sparselin's scaling, its excess over the best row and the
duality gap of its output (one certificate for every solver, relative to the objective at 0),
so that times compare at matched accuracy. The LASSO and SR-LASSO competitors run alternated
round-robin (best and median of the rounds): on a shared machine a burst of load then hits
them alike. ``--losses lasso,sqrt`` leaves out LAD.

Part ``paper``: the loss-based OMP experiments of Mohammad-Taheri & Brugiapaglia
(arXiv:2303.00844) at reduced trial counts, beside the authors' numbers (recomputed from
their data): Exp. I (best lam per noise level), Exp. II (corrupted measurements, 5-20 % of
the entries hit by 100x outliers: LAD-OMP and LAD-LASSO against OMP and LASSO), Exp. III
(weights from partial support knowledge), Exp. IV (error vs iteration, greedy vs convex),
Exp. V (function approximation in d = 5 and 10, the authors' Figs. 2 and 5).

Run ``python benchmarks/bench_recovery.py`` (``--quick`` for a smoke run, ``--part omp`` to
select, ``--json PATH`` to keep the rows).
"""

from __future__ import annotations

import argparse
import sys
import warnings
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

from sparselin.recovery import lad_lasso, lam_max, loss_omp, omp, sqrt_lasso, weighted_lasso


def _unit_gaussian(rng: np.random.Generator, m: int, N: int) -> np.ndarray:
    A = rng.standard_normal((m, N))
    return A / np.linalg.norm(A, axis=0)


# --------------------------------------------------------------------------- OMP


def bench_omp(args: argparse.Namespace) -> list[dict[str, Any]]:
    m, N, s, n_sig = (64, 256, 8, 200) if args.quick else (256, 1024, 20, 1000)
    rng = np.random.default_rng(0)
    A = _unit_gaussian(rng, m, N)
    X = np.zeros((N, n_sig))
    for j in range(n_sig):
        X[rng.choice(N, s, replace=False), j] = rng.standard_normal(s)
    Y = A @ X
    A32, Y32 = A.astype(np.float32), Y.astype(np.float32)
    case = f"{m}x{N}, s={s}, {n_sig} signals"

    def recovery(coef: Any) -> dict[str, Any]:
        coef = np.asarray(coef, dtype=np.float64).reshape(N, n_sig)
        ok = np.all(np.abs(coef - X) < 1e-3 * (1 + np.abs(X)), axis=0)
        return {"quality": f"{ok.mean():.3f} recovered", "max_err": float(np.abs(coef - X).max())}

    def one_setting() -> list[dict[str, Any]]:
        from sklearn.linear_model import orthogonal_mp

        rows = [
            measure(
                "sklearn orthogonal_mp",
                lambda: orthogonal_mp(A, Y, n_nonzero_coefs=s),
                case=case,
                repeat=args.repeat,
                max_seconds=args.max_seconds,
                metrics=recovery,
            ),
            measure(
                "sklearn orthogonal_mp precompute",
                lambda: orthogonal_mp(A, Y, n_nonzero_coefs=s, precompute=True),
                case=case,
                repeat=args.repeat,
                max_seconds=args.max_seconds,
                metrics=recovery,
            ),
        ]

        def spams_omp():
            import spams

            return spams.omp(np.asfortranarray(Y), np.asfortranarray(A), L=s).toarray()

        # sparselin and SPAMS (the ratio that has a target) alternate round-robin, so that
        # load from other processes and the thread pools each one leaves spinning hit both.
        rows += _alternating(
            {
                "sparselin omp f64": lambda: omp(A, Y, n_nonzero=s),
                "sparselin omp f32": lambda: omp(A32, Y32, n_nonzero=s),
                "spams omp": spams_omp,
            },
            args.repeat,
            recovery,
            case=case,
        )
        return rows

    rows = thread_passes(args.threads, one_setting)
    print_table(
        rows,
        [
            Column("threads", "threads"),
            Column("name", "method"),
            Column("time", "time"),
            Column("time_median", "median"),
            Column("quality", "quality"),
        ],
        baselines={"vs sklearn": "sklearn orthogonal_mp", "vs spams": "spams omp"},
        title=f"OMP, {case}",
        group_by="threads",
    )
    return [dict(r, part="omp") for r in rows]


# --------------------------------------------------------------------------- convex


def _convex_problem(args: argparse.Namespace):
    m, N, s = (100, 500, 10) if args.quick else (500, 5000, 50)
    rng = np.random.default_rng(1)
    A = rng.standard_normal((m, N))
    x = np.zeros(N)
    x[rng.choice(N, s, replace=False)] = rng.standard_normal(s)
    y = A @ x
    y += 0.01 * np.linalg.norm(y) / np.sqrt(m) * rng.standard_normal(m)
    w = rng.uniform(0.5, 2.0, N)
    return A, y, w, f"{m}x{N}, {s} nonzeros"


def _objective(loss: str, A, y, lam, w, coef) -> float:
    r = y - A @ np.asarray(coef, dtype=np.float64)
    pen = lam * float(np.sum(w * np.abs(coef)))
    if loss == "lasso":
        return float(r @ r) + pen
    if loss == "sqrt":
        return float(np.linalg.norm(r)) + pen
    return float(np.abs(r).sum()) + pen


def _relative_gap(loss: str, A, y, lam, w, coef) -> float | None:
    """Duality gap at ``coef`` from the rescaled residual (every solver's own output, judged
    by one certificate), relative to the objective at 0; None for LAD (its residual signs
    give no useful dual point) and where a weight is 0."""
    if loss == "lad" or np.any(w == 0):
        return None
    x = np.asarray(coef, dtype=np.float64)
    r = y - A @ x
    c = np.abs(A.T @ r)
    pen = lam * float(w @ np.abs(x))
    with np.errstate(divide="ignore"):
        if loss == "lasso":
            s = min(1.0, float(np.min(lam * w / (2 * c))))
            theta = s * r
            gap = float(r @ r) + pen - (float(y @ y) - float((y - theta) @ (y - theta)))
            return max(gap, 0.0) / float(y @ y)
        nr = float(np.linalg.norm(r))
        s = min(1.0 / nr, float(np.min(lam * w / c)))
    return max(nr + pen - s * float(y @ r), 0.0) / float(np.linalg.norm(y))


def _alternating(fns: dict[str, Any], rounds: int, metrics, **fields: Any) -> list[dict[str, Any]]:
    """Time the competitors in turn, ``rounds`` times round-robin (one warm-up each first),
    so that a burst of load from other processes hits all of them alike; each row keeps the
    best and the median of its rounds."""
    per: dict[str, list[dict[str, Any]]] = {name: [] for name in fns}
    for k in range(rounds):
        for name, fn in fns.items():
            if per[name] and per[name][-1].get("time") is None:
                continue  # a failing peer fails once
            row = measure(name, fn, repeat=1, warmup=1 if k == 0 else 0, metrics=metrics, **fields)
            per[name].append(row)
    rows = []
    for runs in per.values():
        row = dict(runs[-1])
        times = [r["time"] for r in runs if r.get("time") is not None]
        if times:
            row.update(time=min(times), time_median=float(np.median(times)), runs=len(times))
        rows.append(row)
    return rows


def bench_convex(args: argparse.Namespace) -> list[dict[str, Any]]:
    A, y, w, case = _convex_problem(args)
    m, N = A.shape
    ones = np.ones(N)
    out: list[dict[str, Any]] = []
    lad_peers_done: list[bool] = []  # the slow LAD peers run in the first thread pass only
    specs = [
        ("lasso", "weighted lasso", w, lam_max(A, y, "lasso", weights=w) / 20),
        # lam_max / 20 makes the SR-LASSO optimum interpolate at these sizes (A x = y): skglm
        # stops there (SmallResidualException) and sparselin falls back on a basis-pursuit LP
        # that takes minutes at 500 x 5000; lam_max / 5 keeps a residual of ~1e-3 ||y||, the
        # low-noise regime the solver is for.
        ("sqrt", "sqrt lasso (unweighted, lam_max / 5)", ones, lam_max(A, y, "sqrt_lasso") / 5),
        ("lad", "LAD lasso", w, lam_max(A, y, "lad_lasso", weights=w) / 20),
    ]
    for loss, title, ww, lam in specs:
        if loss not in args.losses:
            continue

        def metric(coef, loss=loss, lam=lam, ww=ww):
            return {
                "objective": _objective(loss, A, y, lam, ww, coef),
                "gap": _relative_gap(loss, A, y, lam, ww, coef),
            }

        def one_setting(loss=loss, lam=lam, ww=ww) -> list[dict[str, Any]]:
            rows = []
            if loss == "lasso":
                alpha = lam / (2 * m)

                def celer_fit():
                    from celer import Lasso as CelerLasso

                    return (
                        CelerLasso(alpha=alpha, weights=ww, fit_intercept=False, tol=1e-8)
                        .fit(A, y)
                        .coef_
                    )

                def skglm_fit():
                    from skglm import WeightedLasso as SkglmWL

                    return (
                        SkglmWL(alpha=alpha, weights=ww, fit_intercept=False, tol=1e-8)
                        .fit(A, y)
                        .coef_
                    )

                def sklearn_fit():
                    from sklearn.linear_model import Lasso

                    return (
                        Lasso(alpha=alpha, fit_intercept=False, tol=1e-8, max_iter=100000)
                        .fit(A / ww, y)
                        .coef_
                        / ww
                    )

                # Alternated round-robin: the peers are tens of milliseconds, where a burst
                # of load from other processes would otherwise decide the ratio.
                fns = {
                    "sparselin weighted_lasso": lambda: weighted_lasso(
                        A, y, lam, weights=ww, tol=1e-8
                    ),
                    "celer Lasso(weights)": celer_fit,
                    "skglm WeightedLasso": skglm_fit,
                    "sklearn Lasso (columns / w)": sklearn_fit,
                }
                rows = _alternating(fns, args.repeat, metric, case=case)
            elif loss == "sqrt":

                def skglm_sqrt():
                    from skglm.experimental import SqrtLasso as SkglmSqrt

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        return SkglmSqrt(alpha=lam, fit_intercept=False, tol=1e-8).fit(A, y).coef_

                fns = {"sparselin sqrt_lasso": lambda: sqrt_lasso(A, y, lam, tol=1e-8)}
                # Matched accuracy: skglm's SqrtLasso stops where the residual falls below
                # 1e-2 ||y|| (its SmallResidualException, caught inside its fit), short of
                # the optimum, whatever its tol (1e-8, 1e-10 and 1e-12 return the same
                # coefficients). So sparselin is also timed at skglm's attained gap: its tol
                # is the relative gap certificate of skglm's output.
                try:
                    peer_gap = _relative_gap("sqrt", A, y, lam, ww, skglm_sqrt())
                except Exception:  # skglm missing: its row fails in _alternating
                    peer_gap = None
                if peer_gap:
                    fns["sparselin sqrt_lasso (tol = skglm's gap)"] = lambda tol=peer_gap: (
                        sqrt_lasso(A, y, lam, tol=tol)
                    )
                fns["skglm SqrtLasso"] = skglm_sqrt
                rows = _alternating(fns, args.repeat, metric, case=case)
            else:
                # Interleaved: one sparselin run before each slow peer and one after, so
                # that load from other processes hits both sides alike; the peers (tens of
                # seconds to minutes each) run once, and only in the first thread pass.
                def ours():
                    return lad_lasso(A, y, lam, weights=ww, tol=1e-8)

                def previous():
                    # the column-generation solver this replaced (HiGHS on working sets),
                    # still the fallback inside _convex
                    from sparselin._threads import blas_limited
                    from sparselin.recovery import _convex

                    Af = np.asfortranarray(A)
                    with blas_limited():
                        return _convex._solve_ws(Af, y, lam, ww, _convex.LAD, 1e-8, 50, None)[0]

                def quantile():
                    from sklearn.linear_model import QuantileRegressor

                    # unweighted peer: solve the weighted problem on the columns / w
                    qr = QuantileRegressor(
                        quantile=0.5, alpha=lam / (2 * m), fit_intercept=False, solver="highs"
                    )
                    return qr.fit(A / ww, y).coef_ / ww

                def cvx():
                    import cvxpy as cp

                    z = cp.Variable(N)
                    cp.Problem(
                        cp.Minimize(cp.norm1(A @ z - y) + lam * cp.norm1(cp.multiply(ww, z)))
                    ).solve()
                    return z.value

                slow = {}
                if args.cvxpy and not lad_peers_done:
                    slow = {
                        "sparselin before (HiGHS column generation)": previous,
                        "sklearn QuantileRegressor": quantile,
                        "cvxpy (default solver)": cvx,
                    }
                    lad_peers_done.append(True)
                n_ours = max(args.repeat, len(slow) + 1)
                mine = []
                slow_rows = []
                pending = list(slow.items())
                for k in range(n_ours):
                    mine.append(
                        measure(
                            "sparselin lad_lasso",
                            ours,
                            repeat=1,
                            warmup=1 if k == 0 else 0,
                            metrics=metric,
                            case=case,
                        )
                    )
                    if pending:
                        name, fn = pending.pop(0)
                        slow_rows.append(
                            measure(name, fn, repeat=1, warmup=0, metrics=metric, case=case)
                        )
                row = dict(mine[-1])
                times = [r["time"] for r in mine if r.get("time") is not None]
                if times:
                    row.update(
                        time=min(times), time_median=float(np.median(times)), runs=len(times)
                    )
                info = lad_lasso(A, y, lam, weights=ww, tol=1e-8, return_info=True)[1]
                row["gap"] = info.gap / float(np.abs(y).sum())
                rows = [row, *slow_rows]
            return rows

        rows = thread_passes(args.threads, one_setting)
        for r in rows:
            r["part"] = f"convex {loss}"
        for setting in {r["threads"] for r in rows}:
            group = [r for r in rows if r["threads"] == setting and r.get("objective")]
            best = min((r["objective"] for r in group), default=None)
            for r in group:
                r["excess"] = r["objective"] / best - 1 if best else None
        base = {
            "lasso": "celer Lasso(weights)",
            "sqrt": "skglm SqrtLasso",
            "lad": "cvxpy (default solver)",
        }[loss]
        print_table(
            rows,
            [
                Column("threads", "threads"),
                Column("name", "method"),
                Column("time", "time"),
                Column("objective", "objective", "{:.10g}"),
                Column("excess", "excess", "{:.1e}"),
                Column("gap", "gap / F(0)", "{:.1e}"),
            ],
            baselines={f"vs {base.split()[0]}": base},
            title=f"{title}, {case}" + ("" if "lam_max" in title else ", lam = lam_max / 20"),
            group_by="threads",
        )
        out += rows
    return out


# --------------------------------------------------------------------------- paper


def _model(rng, m, N, s, eta, corrupt=0.0, unit_noise=True):
    A = _unit_gaussian(rng, m, N)
    x = np.zeros(N)
    x[rng.permutation(N)[:s]] = rng.standard_normal(s)
    g = rng.standard_normal(m)
    y = A @ x + (eta * g / np.linalg.norm(g) if unit_noise else eta * g)
    if corrupt:
        k = round(corrupt * m)
        np.add.at(y, rng.integers(0, m, k), 100 * rng.standard_normal(k))
    return A, x, y


def _err(xh, x) -> float:
    return float(np.linalg.norm(xh - x) / np.linalg.norm(x))


def _hyperbolic_cross(d: int, n_max: int) -> np.ndarray:
    """Multi-indices nu in N_0^d with prod(nu_k + 1) <= n + 1 for the largest order n with
    at most ``n_max`` of them (the authors' ``generate_index_set`` / ``find_order``)."""

    def build(d: int, budget: int) -> list[tuple[int, ...]]:
        if d == 0:
            return [()]
        out = []
        for k in range(budget):
            if k + 1 > budget:
                break
            out += [(k, *rest) for rest in build(d - 1, budget // (k + 1))]
        return out

    best = None
    n = 1
    while True:
        idx = build(d, n + 1)
        if len(idx) > n_max:
            return np.array(best)
        best = idx
        n += 1


def _orthonormal_1d(kind: str, t: np.ndarray, degree: int) -> np.ndarray:
    """Orthonormal Chebyshev (Chebyshev measure) or Legendre (uniform measure) polynomials
    of degrees 0..degree at the points t; shape (len(t), degree + 1)."""
    P = np.zeros((t.size, degree + 1))
    P[:, 0] = 1.0
    if degree >= 1:
        P[:, 1] = t
    for k in range(1, degree):
        if kind == "chebyshev":
            P[:, k + 1] = 2 * t * P[:, k] - P[:, k - 1]
        else:
            P[:, k + 1] = ((2 * k + 1) * t * P[:, k] - k * P[:, k - 1]) / (k + 1)
    ks = np.arange(degree + 1)
    if kind == "chebyshev":
        return P * np.where(ks > 0, np.sqrt(2.0), 1.0)
    return P * np.sqrt(2 * ks + 1)


def _design(kind: str, idx: np.ndarray, pts: np.ndarray) -> np.ndarray:
    deg = int(idx.max())
    tables = [_orthonormal_1d(kind, pts[:, k], deg) for k in range(idx.shape[1])]
    A = np.ones((pts.shape[0], idx.shape[0]))
    for k, T in enumerate(tables):
        A *= T[:, idx[:, k]]
    return A / np.sqrt(pts.shape[0])


def _experiment_v(args: argparse.Namespace, rng, trials: int) -> list[dict[str, Any]]:
    """Function approximation (the authors' Figs. 2 and 5): f(y) = exp(-sum y_k / (2 d)) on
    [-1, 1]^d, hyperbolic cross with at most 500 indices, m = 200 samples, intrinsic weights,
    noise of norm 1e-3; error on 10 N fresh points (discrete relative L2)."""
    rows: list[dict[str, Any]] = []
    for d, kind, n_iter, reference in (
        (5, "chebyshev", 50, _AUTHORS_V5),
        (10, "legendre", 250, _AUTHORS_V10),
    ):
        if args.quick and d == 10:
            continue
        idx = _hyperbolic_cross(d, 500)
        N, m = idx.shape[0], 200
        if kind == "chebyshev":
            u = np.sqrt(2.0) ** np.count_nonzero(idx, axis=1)
        else:
            u = np.prod(np.sqrt(2 * idx + 1.0), axis=1)
        errs: dict[str, list[float]] = {k: [] for k in reference}

        def sample(n, d=d, kind=kind):
            U = rng.uniform(-1, 1, (n, d))
            return np.cos(np.pi * (U + 1) / 2) if kind == "chebyshev" else U

        for _ in range(trials):
            pts = sample(m)
            A = _design(kind, idx, pts)
            f = np.exp(-pts.sum(axis=1) / (2 * d))
            g = rng.standard_normal(m)
            b = f / np.sqrt(m) + 1e-3 * g / np.linalg.norm(g)
            nrm = np.linalg.norm(A, axis=0)
            An = A / nrm
            pe = sample(10 * N)
            Ae = _design(kind, idx, pe)
            be = np.exp(-pe.sum(axis=1) / (2 * d)) / np.sqrt(10 * N)

            def err(cn, Ae=Ae, be=be, nrm=nrm):
                return float(np.linalg.norm(Ae @ (cn / nrm) - be) / np.linalg.norm(be))

            def corrupted(level, mc, b=b, m=m):
                bc = b.copy()
                k = round(level * m)
                np.add.at(bc, rng.integers(0, m, k), mc * rng.standard_normal(k))
                return bc

            for key in reference:
                method, lam, level = key
                if method == "omp":
                    errs[key].append(err(omp(An, b, n_nonzero=lam)))
                elif method in ("lasso", "sqrt_lasso"):
                    res = loss_omp(
                        An, b, loss=method, penalty="l1", lam=lam, weights=u, n_nonzero=n_iter
                    )
                    errs[key].append(err(res.coef))
                elif method == "lad_lasso":
                    bc = corrupted(level, 100.0 if d == 5 else 50.0)
                    res = loss_omp(
                        An, bc, loss=method, penalty="l1", lam=lam, weights=u, n_nonzero=n_iter
                    )
                    errs[key].append(err(res.coef))
                elif method == "convex lasso":
                    errs[key].append(err(weighted_lasso(An, b, lam, weights=u)))
                elif method == "convex sqrt_lasso":
                    errs[key].append(err(sqrt_lasso(An, b, lam, weights=u)))
                else:  # convex LAD
                    bc = corrupted(level, 100.0 if d == 5 else 50.0)
                    errs[key].append(err(lad_lasso(An, bc, lam, weights=u)))
        stat = np.median if d == 5 else (lambda v: float(np.exp(np.mean(np.log(v)))))
        for key, ref in reference.items():
            method, lam, level = key
            label = f"d={d} (N={N}) {method}" + (f" {lam:g}" if method != "omp" else f" {lam} it.")
            if level:
                label += f", {level:.0%} corrupted"
            rows.append(
                {
                    "experiment": "V",
                    "setting": label,
                    "ours": f"{stat(errs[key]):.3g}",
                    "authors": ref,
                }
            )
    return rows


# (method, lam or OMP iterations, corruption level) -> the authors' relative L2 error
# (research notes A.8.2 and A.8.5: medians for d = 5, geometric means for d = 10)
_AUTHORS_V5 = {
    ("lasso", 1e-4, 0.0): "1.28e-3",
    ("lad_lasso", 0.562, 0.0): "1.50e-3",
    ("lad_lasso", 0.562, 0.05): "1.53e-3",
    ("lad_lasso", 0.562, 0.20): "2.07e-3",
    ("convex lad_lasso", 1.0, 0.20): "-",
}
_AUTHORS_V10 = {
    ("omp", 69, 0.0): "5.67e-3 (min, at it. 69)",
    ("omp", 200, 0.0): "0.122 at it. 250 (MATLAB backslash past m)",
    ("lasso", 3.16e-5, 0.0): "3.74e-3",
    ("convex lasso", 3.16e-5, 0.0): "1.81e-3",
    ("sqrt_lasso", 1.78e-2, 0.0): "2.24e-3",
    ("convex sqrt_lasso", 1.78e-2, 0.0): "1.77e-3",
    ("lad_lasso", 0.316, 0.05): "5.52e-3",
    ("convex lad_lasso", 1.0, 0.05): "8.09e-3",
}


# Exp. III (the authors' Fig. 3, research notes A.8.3): (loss, m) -> {weight: (median error,
# success fraction)} at each curve's best lam on 10^(-6:0.2:2), 30 trials.
_AUTHORS_III = {
    ("sqrt_lasso", 35): {1.0: (0.587, 0.37), 1e-3: (2.1e-3, 0.80)},
    ("sqrt_lasso", 40): {1.0: (5.05e-3, 0.53), 1e-3: (1.44e-3, 0.97)},
    ("lasso", 40): {1.0: (1.52e-3, 0.67), 1e-3: (1.52e-3, 0.67)},
}


def _experiment_iii(rng, trials: int) -> list[dict[str, Any]]:
    """Weights from partial support knowledge, as in the authors' ``Fig_3_data.m``.

    ``A = randn(m, N) / sqrt(m)`` measures ``x`` (s = 10 N(0, 1) entries at the first s
    indices of a random permutation), noise ``1e-3 randn(m)`` (not normalised), and the
    greedy run (columns normalised inside) gets weight ``w`` on the first s/2 indices of that
    permutation (half the support, "smaller" oracle), 1 elsewhere; 30 iterations. The
    authors report each curve's best lam of the grid ``10^(-6:0.2:2)``: the grid here is its
    part around the optimum of each loss. Success: relative error below 1e-2.
    """
    N, s = 500, 10
    grids = {
        "sqrt_lasso": 10.0 ** np.arange(-1.4, -0.19, 0.2),  # 0.04 ... 0.63, includes 0.251
        "lasso": 10.0 ** np.arange(-3.4, -1.39, 0.2),  # 4e-4 ... 4e-2
    }
    rows = []
    for (loss, m), ref in _AUTHORS_III.items():
        grid = grids[loss]
        err = {w: np.zeros((trials, grid.size)) for w in ref}
        for t in range(trials):
            A = rng.standard_normal((m, N)) / np.sqrt(m)
            perm = rng.permutation(N)
            x = np.zeros(N)
            x[perm[:s]] = rng.standard_normal(s)
            y = A @ x + 1e-3 * rng.standard_normal(m)
            for wv in ref:
                w = np.ones(N)
                w[perm[: s // 2]] = wv
                for i, lam in enumerate(grid):
                    res = loss_omp(A, y, loss=loss, penalty="l1", lam=lam, weights=w, n_nonzero=30)
                    err[wv][t, i] = _err(res.coef, x)
        for wv, (a_med, a_ok) in ref.items():
            med = np.median(err[wv], axis=0)
            best = int(med.argmin())
            ok = float(np.mean(err[wv][:, best] < 1e-2))
            fixed = ""
            if loss == "sqrt_lasso":
                i251 = int(np.argmin(np.abs(grid - 0.251)))
                fixed = f"; at lam 0.251: success {np.mean(err[wv][:, i251] < 1e-2):.2f}"
            rows.append(
                {
                    "experiment": "III",
                    "setting": f"{loss}-l1 m={m}, w={wv:g} on s/2 ({trials} trials)",
                    "ours": f"best lam {grid[best]:.3g}: median err {med[best]:.3g}, "
                    f"success {ok:.2f}{fixed}",
                    "authors": f"median err {a_med:.3g}, success {a_ok:.2f}",
                }
            )
    return rows


def bench_paper(args: argparse.Namespace) -> list[dict[str, Any]]:
    trials = 3 if args.quick else args.trials
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(7)

    # Exp. I: best lam per noise level (median rel. error over trials), 30 iterations.
    grids = {
        "sqrt_lasso": np.array([0.056, 0.1, 0.178, 0.316]),
        "lasso": 10.0 ** np.arange(-4.5, -0.9, 0.5),
    }
    authors = {
        ("sqrt_lasso", 1e-3): (0.178, 8.40e-5),
        ("sqrt_lasso", 1e-2): (0.178, 9.01e-4),
        ("sqrt_lasso", 1e-1): (0.178, 8.72e-3),
        ("lasso", 1e-3): (3.2e-4, 8.89e-5),
        ("lasso", 1e-2): (3.2e-3, 8.10e-4),
        ("lasso", 1e-1): (3.2e-2, 9.74e-3),
    }
    for eta in (1e-3, 1e-2, 1e-1):
        errs = {k: np.zeros((trials, g.size)) for k, g in grids.items()}
        for t in range(trials):
            A, x, y = _model(rng, 150, 300, 10, eta)
            for loss, grid in grids.items():
                for i, lam in enumerate(grid):
                    res = loss_omp(A, y, loss=loss, penalty="l1", lam=lam, n_nonzero=30)
                    errs[loss][t, i] = _err(res.coef, x)
        for loss, grid in grids.items():
            med = np.median(errs[loss], axis=0)
            a_lam, a_err = authors[(loss, eta)]
            rows.append(
                {
                    "experiment": "I",
                    "setting": f"{loss}-l1, eta={eta:g}",
                    "ours": f"best lam {grid[med.argmin()]:.3g}, median err {med.min():.3g}",
                    "authors": f"best lam {a_lam:.3g}, median err {a_err:.3g}",
                }
            )

    # Exp. II: corrupted measurements. eta = 1e-3 and 5 / 10 / 20 % of the entries hit by
    # 100 x N(0, 1) outliers (m = 150, N = 300, s = 10, 30 greedy iterations). The authors
    # report the LAD variants (their Fig. 1 LAD panels); OMP and LASSO on the same data are
    # the comparison the issue asks for (no author numbers).
    authors_ii = {
        0.05: ("1.13e-4", "1.13e-4", "3.29e-4"),
        0.10: ("1.09e-4", "1.09e-4", "3.67e-4"),
        0.20: ("1.54e-4", "1.27e-4", "5.25e-4"),
    }
    # LASSO fails on these outliers at every lam tried (1e-2 to 100: relative errors of 7 to
    # 70); lam below 0.1 only costs time (coordinate descent near interpolation)
    lasso_grid = (0.1, 1.0, 10.0)
    for level, (a_l1, a_l0, a_zero) in authors_ii.items():
        e = {k: [] for k in ("lad1", "lad0", "lad_zero", "lad_cvx", "omp", "lasso", "lasso_cvx")}
        for _ in range(trials):
            A, x, y = _model(rng, 150, 300, 10, 1e-3, corrupt=level)
            lad = {"loss": "lad_lasso", "n_nonzero": 30}
            e["lad1"].append(_err(loss_omp(A, y, penalty="l1", lam=1.78, **lad).coef, x))
            e["lad0"].append(_err(loss_omp(A, y, penalty="l0", lam=5.6e-4, **lad).coef, x))
            e["lad_zero"].append(_err(loss_omp(A, y, penalty="l1", lam=0.0, **lad).coef, x))
            e["lad_cvx"].append(_err(lad_lasso(A, y, 1.0), x))
            e["omp"].append(_err(omp(A, y, n_nonzero=30), x))
            e["lasso"].append(
                min(
                    _err(loss_omp(A, y, loss="lasso", penalty="l1", lam=v, n_nonzero=30).coef, x)
                    for v in lasso_grid
                )
            )
            e["lasso_cvx"].append(min(_err(weighted_lasso(A, y, v), x) for v in lasso_grid))
        med = {k: float(np.median(v)) for k, v in e.items()}
        rows.append(
            {
                "experiment": "II",
                "setting": f"{level:.0%} corrupted: LAD-l1 1.78 / LAD-l0 5.6e-4 / LAD lam=0",
                "ours": f"{med['lad1']:.3g} / {med['lad0']:.3g} / {med['lad_zero']:.3g}",
                "authors": f"{a_l1} / {a_l0} / {a_zero}",
            }
        )
        rows.append(
            {
                "experiment": "II",
                "setting": f"{level:.0%} corrupted: convex LAD-LASSO lam=1 / OMP / "
                "LASSO-l1 best / convex LASSO best",
                "ours": f"{med['lad_cvx']:.3g} / {med['omp']:.3g} / {med['lasso']:.3g} / "
                f"{med['lasso_cvx']:.3g}",
                "authors": "- (not reported)",
            }
        )

    rows += _experiment_iii(rng, 5 if args.quick else max(trials, 30))

    # Exp. IV: error at the last of 150 iterations, greedy vs convex.
    e = {"omp": [], "l1": [], "sr": [], "wlasso": [], "srlasso": []}
    for _ in range(trials):
        A, x, y = _model(rng, 100, 200, 15, 1e-3)
        e["omp"].append(_err(loss_omp(A, y, loss="lasso", penalty="l0", lam=0.0).coef, x))
        e["l1"].append(
            _err(loss_omp(A, y, loss="lasso", penalty="l1", lam=1e-3, n_nonzero=150).coef, x)
        )
        e["sr"].append(
            _err(loss_omp(A, y, loss="sqrt_lasso", penalty="l1", lam=0.158, n_nonzero=150).coef, x)
        )
        e["wlasso"].append(_err(weighted_lasso(A, y, 1.78e-4), x))
        e["srlasso"].append(_err(sqrt_lasso(A, y, 0.126), x))

    def gm(v):
        return float(np.exp(np.mean(np.log(v))))

    for key, label, ref in (
        ("omp", "OMP to |S| = m", "5.17e-4 at it. 100; 1.65 at 150 (MATLAB backslash past m)"),
        ("l1", "lasso-l1 lam=1e-3", "1.04e-4 (frozen)"),
        ("sr", "sr-l1 lam=0.158", "1.17e-4 (frozen)"),
        ("wlasso", "convex weighted lasso lam=1.78e-4", "2.73e-4"),
        ("srlasso", "convex SR-lasso lam=0.126", "2.65e-4"),
    ):
        rows.append(
            {"experiment": "IV", "setting": label, "ours": f"{gm(e[key]):.3g}", "authors": ref}
        )
    rows += _experiment_v(args, rng, 1 if args.quick else trials)
    print_table(
        rows,
        [
            Column("experiment", "exp."),
            Column("setting", "setting"),
            Column("ours", "ours"),
            Column("authors", "authors"),
        ],
        title=f"Paper experiments ({trials} trials each; geometric means in IV)",
    )
    return [dict(r, part="paper") for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, repeat=5, thread_passes=True)
    parts = ("omp", "convex", "paper")
    parser.add_argument(
        "--part",
        choices=("all", *parts),
        action="append",
        help="run only this part (repeatable; default: all)",
    )
    parser.add_argument(
        "--cvxpy",
        action="store_true",
        help="also time the slow LAD-LASSO peers: cvxpy, sklearn QuantileRegressor and the "
        "previous HiGHS column generation (minutes)",
    )
    parser.add_argument(
        "--trials", type=int, default=15, help="paper part: trials per setting (default 15)"
    )
    parser.add_argument(
        "--losses",
        default="lasso,sqrt,lad",
        type=lambda v: set(v.split(",")),
        help="convex part: which losses, comma-separated (default lasso,sqrt,lad)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    selected = set(parts) if not args.part or "all" in args.part else set(args.part)
    # Load the peers before any thread limit: threadpoolctl only sees loaded libraries.
    for name in ("sklearn.linear_model", "numba", "celer", "skglm", "spams"):
        try:
            __import__(name)
        except Exception:  # a missing peer becomes a FAILED row
            pass
    env = environment()
    print(format_environment(env))
    settings = []
    for n in args.threads:
        with thread_setting(n):
            settings.append({"threads": thread_label(n), "threadpool_info": threadpool_snapshot()})
    rows: list[dict[str, Any]] = []
    if "omp" in selected:
        rows += bench_omp(args)
    if "convex" in selected:
        rows += bench_convex(args)
    if "paper" in selected:
        rows += bench_paper(args)
    if args.json:
        write_json(
            args.json,
            rows,
            benchmark="recovery",
            env=environment(),
            quick=args.quick,
            thread_settings=settings,
        )
        print(f"\nrows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
