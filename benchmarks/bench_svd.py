"""Truncated and incremental SVD on the CPU: sparselin against its peers, in one run.

Every row runs at the libraries' default thread counts *and* at one thread (``--threads``
changes the list), one setting right after the other in the same process, on the same data.
Users never set thread counts, and NumPy's and SciPy's wheels load two OpenBLAS libraries
whose pools compete at the defaults; a warning is printed when that is the case, and
``threadpool_info()`` of every setting is stored in the JSON.

Part 1, dense truncated SVD. One matrix per case, built with
:func:`sparselin.datasets.make_low_rank_matrix` so that its singular values ``s`` are known
and the optimal rank-k error ``sqrt(sum(s[k:]**2))`` (Eckart-Young) is exact: 4000 x 3000,
``s_i = 0.97**i`` (fast decay) and ``s_i = (i + 1)**-0.5`` (slow decay), float64 and
float32, k = 50. Methods: sparselin ``truncated_svd`` (default, ``block_krylov``,
``lanczos``), scikit-learn ``randomized_svd`` (defaults, and at matched accuracy), SciPy
``svds``, ``fbpca.pca``, ``torch.svd_lowrank`` (its default ``niter=2``, and at matched
accuracy). *Matched accuracy*: before timing, the peer is run once with ``niter`` = 1, 2, ...,
8 and the fewest that reaches sparselin's err/opt (to ``MATCH_SLACK``) is timed.

Part 2, sparse LSA. TF-IDF (``TfidfVectorizer(max_features=30000)``) of 40000 documents of
the Python standard library's sources (:func:`sparselin.datasets.load_stdlib_corpus`),
100 components, float32 and float64: ``sparselin.TruncatedSVD`` (``"randomized"``,
``n_iter="auto"``, ``"block_krylov"``, ``"arpack"``) against
``sklearn.decomposition.TruncatedSVD`` (``"randomized"``, ``"arpack"``), all fitted with
``fit_transform``; the explained variance ratio of each is reported.

Part 3, sparse streaming. ``IncrementalSVD(50).partial_fit`` on 10 batches of the first 12000
rows of that TF-IDF matrix, and on 20 batches of 20000 documents hashed by
``HashingVectorizer(n_features=2**18)``, against one ``TruncatedSVD(50)`` fit on the same
rows; the energy kept is ``||X Q||_F**2 / sum(s_opt[:50]**2)`` (Q an orthonormal basis of
the components, ``s_opt`` from ARPACK).

Part 4, incremental SVD (dense). A 10000 x 5000 matrix (``s_i = 0.97**i``, full rank)
arrives in blocks of 100 columns; k = 50: ``svd_update`` per block, scikit-learn
``IncrementalPCA.partial_fit`` on the row blocks of ``A.T``, and re-running ``truncated_svd``
on all columns seen so far after every block (timed on every 10th block only and
interpolated, and labelled so).

The run ends with the issue's speed targets, met or missed, per thread setting. Each speed
target also shows its *passes-only ceiling*: the peer's time over the time of sparselin's
passes over A alone (counted in an untimed run, per precision and direction, and priced by
the one-pass rows of NumPy's BLAS at the same thread setting), i.e. the ratio sparselin
would reach with no overhead at all. A target above its ceiling cannot be met by removing
overhead, only by fewer or cheaper passes. Rows also record their passes over A
(``passes``; the peers' ``2 niter + 2``).

Run ``python benchmarks/bench_svd.py`` (``--quick`` for a smoke run, ``--json PATH`` to keep
the rows). See benchmarks/README.md for what the columns mean.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
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

import sparselin
from sparselin.datasets import load_stdlib_corpus, make_low_rank_matrix
from sparselin.linalg._operator import Operator

# A peer "reaches" sparselin's accuracy when its err/opt is at most sparselin's plus this
# (err/opt is printed to 4 decimals; one more random draw moves it by about 1e-4).
MATCH_SLACK = 1e-4
MATCH_NITER = range(1, 9)

# The issue's targets (benchmarks, not tests): each is checked per case and thread setting.
TARGET_ERR_OPT = 1.01
TARGET_VS_TORCH = 1.3
TARGET_VS_SKLEARN_RSVD = 5.0
TARGET_VS_SKLEARN_LSA = 1.5
TARGET_STREAM_SLOWDOWN = 10.0
TARGET_STREAM_ENERGY = 0.99
# "Equal explained variance": sparselin's ratio at most this far (relative) below sklearn's.
EVR_TOLERANCE = 1e-3


def residual_norm(A: np.ndarray, U: Any, s: Any, Vt: Any) -> float:
    """``||A - U diag(s) Vt||_F``, accumulated in float64 whatever the input precision."""
    U = np.asarray(U, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    Vt = np.asarray(Vt, dtype=np.float64)
    R = np.asarray(A, dtype=np.float64) - (U * s) @ Vt
    return float(np.linalg.norm(R))


def optimal_error(s: np.ndarray, k: int) -> float:
    return float(np.sqrt(np.sum(s[k:] ** 2)))


def _import_error(name: str) -> str | None:
    try:
        __import__(name)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def untimed() -> Any:
    """Where untimed work runs (building data, references, matching): at one thread.

    Its results do not depend on the thread count (to rounding), and at one thread it is not
    slowed by the BLAS pools competing for the cores, which on a loaded machine made building
    the 10000 x 5000 stream matrix take 20 times longer at the default threads.
    """
    return thread_setting(1)


def _progress() -> None:
    print(".", end="", flush=True, file=sys.stderr)


# --------------------------------------------------------------------------- dense peers


def _torch_lowrank(A: np.ndarray, k: int, niter: int) -> tuple[Any, Any, Any]:
    import torch

    torch.manual_seed(0)
    U, S, V = torch.svd_lowrank(torch.from_numpy(A), q=k + 10, niter=niter)
    # svd_lowrank returns q components (descending); keep the leading k like everybody.
    return U[:, :k].numpy(), S[:k].numpy(), V[:, :k].T.numpy()


def _sklearn_rsvd(A: np.ndarray, k: int, n_iter: int | str) -> tuple[Any, Any, Any]:
    from sklearn.utils.extmath import randomized_svd

    return randomized_svd(A, k, n_iter=n_iter, random_state=0)


def match_niter(
    run: Callable[[int], tuple[Any, Any, Any]], A: np.ndarray, opt: float, target: float
) -> dict[str, Any]:
    """The fewest ``niter`` in ``MATCH_NITER`` whose err/opt is within ``MATCH_SLACK`` of target.

    Each ``niter`` is run once, untimed. If none reaches the target, the most accurate one is
    kept and ``reached`` is False.
    """
    tried: dict[int, float] = {}
    for niter in MATCH_NITER:
        tried[niter] = residual_norm(A, *run(niter)) / opt
        if tried[niter] <= target + MATCH_SLACK:
            return {"niter": niter, "reached": True, "tried": tried}
    best = min(tried, key=tried.__getitem__)
    return {"niter": best, "reached": False, "tried": tried}


# Operator method -> direction label of count_passes, and the gemm_pass row that prices it.
_DIRECTIONS = {"_mm": "A X", "_rmm": "A^H Y"}
_PASS_ROWS = {"A X": "sparselin pass (NumPy's BLAS)", "A^H Y": "sparselin A^H pass (NumPy's BLAS)"}


def count_passes(fn: Callable[[], Any]) -> dict[str, int]:
    """Products of sparselin's Operator with a block (passes over A) that ``fn()`` makes.

    Counted per precision of the operator (a float64 input's sketch passes run on its
    float32 copy) and direction (``"float32 A X"``, ``"float32 A^H Y"``: the two differ in
    cost), in one untimed run: the class methods are wrapped for the call only.
    """
    counts: dict[str, int] = {}
    originals = {name: getattr(Operator, name) for name in ("_mm", "_rmm")}

    def counting(orig: Callable[..., Any], direction: str) -> Callable[..., Any]:
        def wrapper(self: Operator, X: Any) -> Any:
            key = f"{self.dtype.name} {direction}"
            counts[key] = counts.get(key, 0) + 1
            return orig(self, X)

        return wrapper

    try:
        for name, orig in originals.items():
            setattr(Operator, name, counting(orig, _DIRECTIONS[name]))
        fn()
    finally:
        for name, orig in originals.items():
            setattr(Operator, name, orig)
    return counts


def sklearn_auto_n_iter(k: int, m: int, n: int) -> int:
    """``randomized_svd``'s ``n_iter="auto"`` (7 while k < 0.1 min(m, n), else 4)."""
    return 7 if k < 0.1 * min(m, n) else 4


def peer_passes(niter: int) -> int:
    """Passes over A of ``randomized_svd`` / ``svd_lowrank`` with ``niter`` power iterations.

    The range finder's first product, two per iteration, and the projection ``Q^H A``.
    """
    return 2 * niter + 2


def svd_methods(
    k: int, torch_match: dict[str, Any] | None, sklearn_match: dict[str, Any]
) -> list[tuple[str, Any, str | None]]:
    """(row name, function A -> (U, s, Vt) with exactly k components, note)."""
    from scipy.sparse.linalg import svds

    def fbpca_pca(A):
        import fbpca

        np.random.seed(0)  # noqa: NPY002 (fbpca draws from the global NumPy generator)
        return fbpca.pca(A, k, raw=True)

    def matched_note(match: dict[str, Any]) -> str:
        how = "fewest of 1..8 reaching sparselin's err/opt"
        if not match["reached"]:
            how = "NOT REACHED by 1..8; most accurate kept"
        return f"niter={match['niter']} ({how})"

    methods: list[tuple[str, Any, str | None]] = [
        ("sparselin", lambda A: sparselin.truncated_svd(A, k, random_state=0), None),
        (
            "sparselin block_krylov",
            lambda A: sparselin.truncated_svd(A, k, method="block_krylov", random_state=0),
            None,
        ),
        (
            "sparselin lanczos",
            lambda A: sparselin.truncated_svd(A, k, method="lanczos", random_state=0),
            None,
        ),
        ("sklearn randomized_svd", lambda A: _sklearn_rsvd(A, k, "auto"), "defaults"),
        (
            "sklearn randomized_svd matched",
            lambda A: _sklearn_rsvd(A, k, sklearn_match["niter"]),
            matched_note(sklearn_match),
        ),
        ("scipy svds", lambda A: svds(A, k, random_state=0), "ARPACK, exact to tolerance"),
        ("fbpca pca", fbpca_pca, "computes in float64 whatever the input dtype"),
        ("torch svd_lowrank niter=2", lambda A: _torch_lowrank(A, k, 2), "torch's default"),
    ]
    if torch_match is not None:
        methods.append(
            (
                "torch svd_lowrank matched",
                lambda A: _torch_lowrank(A, k, torch_match["niter"]),
                matched_note(torch_match),
            )
        )
    return methods


SVD_COLUMNS = [
    Column("name", "method"),
    Column("threads", "threads"),
    Column("out_dtype", "out"),
    Column("time", "best"),
    Column("time_median", "median"),
    Column("runs", "runs"),
    Column("err_opt", "err/opt", "{:.4f}"),
]


def bench_truncated(args: argparse.Namespace) -> list[dict[str, Any]]:
    m, n, k = (300, 200, 10) if args.quick else (4000, 3000, 50)
    cases = [(0.97, np.float64), (0.97, np.float32), ("slow", np.float64), ("slow", np.float32)]
    if args.quick:  # one case per decay and per dtype is enough to run every line
        cases = [cases[0], cases[3]]
    if args.dtype:  # a subset keeps one run (both thread settings, paired) short
        cases = [c for c in cases if np.dtype(c[1]).name in args.dtype]
    missing = {"fbpca pca": _import_error("fbpca")}
    torch_missing = _import_error("torch")
    missing["torch svd_lowrank niter=2"] = torch_missing
    all_rows: list[dict[str, Any]] = []
    for decay, dtype in cases:
        decay_label = "0.97**i" if decay == 0.97 else "(i+1)**-0.5"
        dname = np.dtype(dtype).name
        with untimed():
            A, s = make_low_rank_matrix(
                m, n, decay=decay, dtype=dtype, random_state=0, return_singular_values=True
            )
        opt = optimal_error(s, k)
        case = f"{m}x{n} {dname} s_i={decay_label} k={k}"
        common = {
            "part": "truncated_svd",
            "case": case,
            "shape": [m, n],
            "dtype": dname,
            "decay": decay_label,
            "k": k,
            "optimal_error": opt,
        }
        # Matched accuracy: sparselin's err/opt first, then the fewest peer iterations that
        # reach it, all untimed.
        with untimed():
            target = residual_norm(A, *sparselin.truncated_svd(A, k, random_state=0)) / opt
            our_passes = count_passes(lambda A=A: sparselin.truncated_svd(A, k, random_state=0))
            sklearn_match = match_niter(lambda it, A=A: _sklearn_rsvd(A, k, it), A, opt, target)
            torch_match = None
            if torch_missing is None:
                torch_match = match_niter(lambda it, A=A: _torch_lowrank(A, k, it), A, opt, target)
        methods = svd_methods(k, torch_match, sklearn_match)
        match_fields = {
            "sklearn randomized_svd matched": sklearn_match,
            "torch svd_lowrank matched": torch_match,
        }
        # Passes over A per row (sparselin's by precision and direction): sparselin's give
        # the passes-only ceiling of each speed target (see check_targets).
        pass_fields = {
            "sparselin": our_passes,
            "sklearn randomized_svd": {dname: peer_passes(sklearn_auto_n_iter(k, m, n))},
            "sklearn randomized_svd matched": {dname: peer_passes(sklearn_match["niter"])},
            "torch svd_lowrank niter=2": {dname: peer_passes(2)},
        }
        if torch_match is not None:
            pass_fields["torch svd_lowrank matched"] = {dname: peer_passes(torch_match["niter"])}

        def one_setting(
            A=A,
            opt=opt,
            common=common,
            methods=methods,
            match_fields=match_fields,
            pass_fields=pass_fields,
            target=target,
        ):
            rows = []
            for name, fn, note in methods:
                if missing.get(name):
                    rows.append({"name": name, **common, "time": None, "error": missing[name]})
                    continue

                def metrics(res, A=A, opt=opt):
                    U, sv, Vt = res
                    if U.shape[1] != k or Vt.shape[0] != k:
                        raise ValueError(f"expected {k} components, got {U.shape[1]}")
                    err = residual_norm(A, U, sv, Vt) / opt
                    return {"err_opt": err, "out_dtype": U.dtype.name}

                row = measure(
                    name,
                    lambda fn=fn, A=A: fn(A),
                    repeat=args.repeat,
                    max_seconds=args.max_seconds,
                    metrics=metrics,
                    **common,
                )
                match = match_fields.get(name)
                if match is not None:
                    row.update(
                        niter=match["niter"],
                        matched=match["reached"],
                        match_tried=match["tried"],
                        match_target=target,
                    )
                if name in pass_fields:
                    row["passes"] = pass_fields[name]
                if note and "error" not in row:
                    row["note"] = note
                rows.append(row)
                _progress()
            return rows

        rows = thread_passes(args.threads, one_setting)
        print(file=sys.stderr)
        print_table(
            rows,
            SVD_COLUMNS,
            baselines={
                "vs torch=": "torch svd_lowrank matched",
                "vs torch2": "torch svd_lowrank niter=2",
                "vs sklearn": "sklearn randomized_svd",
            },
            group_by="threads",
            title=f"truncated SVD: {case}  (optimal error {opt:.4g}; sparselin err/opt "
            f"{target:.4f} is the target of the matched rows)",
        )
        all_rows.extend(rows)
        del A

    all_rows += bench_gemm_pass(m, n, k + 10, args)

    # float32 against float64 for sparselin's own methods, per decay and thread setting.
    summary = []
    print("\nsparselin float32 vs float64 (time float64 / time float32):")
    for threads in [thread_label(t) for t in args.threads]:
        for method in ("sparselin", "sparselin block_krylov", "sparselin lanczos"):
            for decay in ("0.97**i", "(i+1)**-0.5"):
                t = {
                    r["dtype"]: r.get("time")
                    for r in all_rows
                    if r["name"] == method
                    and r.get("decay") == decay
                    and r.get("threads") == threads
                }
                t64, t32 = t.get("float64"), t.get("float32")
                speedup = (t64 / t32) if t64 and t32 else None
                summary.append(
                    {
                        "part": "float32_speedup",
                        "name": method,
                        "threads": threads,
                        "decay": decay,
                        "time_float64": t64,
                        "time_float32": t32,
                        "speedup": speedup,
                    }
                )
                sp = f"{speedup:.2f}x" if speedup else "-"
                print(f"  threads={threads:<8} {method:<24} s_i={decay:<12} {sp}")
    return all_rows + summary


def bench_gemm_pass(m: int, n: int, width: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One pass over A, ``A @ X`` with ``width`` columns, in NumPy's BLAS and in torch's.

    Every randomized method here is a handful of such passes, so this row says how much of
    a difference between sparselin (NumPy's OpenBLAS) and torch comes from the GEMM library
    rather than from the algorithm.
    """
    rng = np.random.default_rng(0)
    repeat = args.repeat if args.quick else max(args.repeat, 10)
    all_rows = []
    for dtype in (np.float64, np.float32):
        A = rng.standard_normal((m, n)).astype(dtype)
        X = rng.standard_normal((n, width)).astype(dtype)
        Y = rng.standard_normal((m, width)).astype(dtype)
        dname = np.dtype(dtype).name
        case = f"{m}x{n} @ {n}x{width} {dname}"
        common = {"part": "gemm_pass", "case": case, "dtype": dname}
        # sparselin's own product (it picks the faster of A @ X and (X^T A^T)^T per dtype).
        op = Operator(A, "dense", np)

        def one_setting(op=op, A=A, X=X, Y=Y, common=common):
            rows = [
                measure(
                    "sparselin pass (NumPy's BLAS)",
                    lambda: op.mm(X),
                    repeat=repeat,
                    **common,
                ),
                # The adjoint product A^H Y, the other half of every power iteration; it
                # reads A in another order and costs a little less.
                measure(
                    "sparselin A^H pass (NumPy's BLAS)",
                    lambda: op.rmm(Y),
                    repeat=repeat,
                    **common,
                ),
            ]
            if _import_error("torch") is None:
                import torch

                At, Xt = torch.from_numpy(A), torch.from_numpy(X)
                rows.append(measure("torch A @ X (MKL)", lambda: At @ Xt, repeat=repeat, **common))
            return rows

        rows = thread_passes(args.threads, one_setting)
        print_table(
            rows,
            [Column("name", "library"), Column("threads", "threads"), Column("time", "best")],
            baselines={"vs torch": "torch A @ X (MKL)"},
            group_by="threads",
            title=f"one pass over A, the unit of work of every method above: {case}",
        )
        all_rows += rows
    return all_rows


# --------------------------------------------------------------------------- sparse text


def tfidf_corpus(args: argparse.Namespace) -> tuple[list[str], Any]:
    """The LSA corpus and its TF-IDF matrix (CSR, float64), built once, untimed."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    n_docs, n_features = (1000, 1000) if args.quick else (40000, 30000)
    t0 = time.perf_counter()
    with untimed():
        docs = load_stdlib_corpus(n_docs, random_state=0)
        X = TfidfVectorizer(max_features=n_features).fit_transform(docs).tocsr()
    print(
        f"\n(TF-IDF of {len(docs)} documents of the standard library's sources: "
        f"{X.shape[0]} x {X.shape[1]}, {X.nnz} non-zeros, "
        f"built in {time.perf_counter() - t0:.1f} s)"
    )
    return docs, X


def explained_energy(X: Any, components: Any) -> float:
    """``||X Q||_F**2`` with Q an orthonormal basis of the components' span (float64)."""
    C = np.asarray(components, dtype=np.float64)
    Q, _ = np.linalg.qr(C.T)
    P = X.astype(np.float64) @ Q
    return float(np.sum(np.asarray(P) ** 2))


def bench_lsa(args: argparse.Namespace, X64: Any) -> list[dict[str, Any]]:
    from sklearn.decomposition import TruncatedSVD as SkTruncatedSVD

    k = 10 if args.quick else 100
    n_warm = min(X64.shape[0], 300 if args.quick else 2000)

    def sl(**kw: Any) -> Callable[[], Any]:
        return lambda: sparselin.TruncatedSVD(k, random_state=0, **kw)

    def sk(**kw: Any) -> Callable[[], Any]:
        return lambda: SkTruncatedSVD(k, random_state=0, **kw)

    estimators = [
        ("sparselin TruncatedSVD", sl(), "defaults (randomized, n_iter=5)"),
        ("sparselin n_iter=auto", sl(n_iter="auto"), "randomized, stops when converged"),
        ("sparselin block_krylov", sl(algorithm="block_krylov"), None),
        ("sparselin arpack", sl(algorithm="arpack"), None),
        ("sklearn TruncatedSVD", sk(), "defaults (randomized, n_iter=5)"),
        ("sklearn arpack", sk(algorithm="arpack"), None),
    ]
    all_rows: list[dict[str, Any]] = []
    for dtype in (np.float32, np.float64):
        X = X64.astype(dtype)
        warm = X[:n_warm]
        dname = np.dtype(dtype).name
        case = f"TF-IDF {X.shape[0]}x{X.shape[1]} nnz={X.nnz} {dname} k={k}"
        common = {"part": "lsa", "case": case, "shape": list(X.shape), "nnz": X.nnz}
        common.update(dtype=dname, k=k)

        def metrics(est: Any) -> dict[str, Any]:
            return {
                "evr_sum": float(np.sum(est.explained_variance_ratio_)),
                "out_dtype": est.components_.dtype.name,
            }

        def one_setting(X=X, warm=warm, common=common, metrics=metrics):
            rows = []
            for name, make, note in estimators:

                def fit(make=make, data=X):
                    est = make()
                    est.fit_transform(data)
                    return est

                # The warm-up fits the first rows only: it compiles the same kernels and
                # starts the same threads without spending a full (slow for ARPACK) fit.
                row = measure(
                    name,
                    fit,
                    warmup_fn=lambda fit=fit, warm=warm: fit(data=warm),
                    repeat=args.repeat,
                    max_seconds=args.max_seconds,
                    metrics=metrics,
                    **common,
                )
                if note and "error" not in row:
                    row["note"] = note
                rows.append(row)
                _progress()
            # Explained variance relative to scikit-learn's default fit at the same setting.
            base = next((r for r in rows if r["name"] == "sklearn TruncatedSVD"), {})
            for r in rows:
                if r.get("evr_sum") is not None and base.get("evr_sum"):
                    r["evr_vs_sklearn"] = r["evr_sum"] / base["evr_sum"]
            return rows

        rows = thread_passes(args.threads, one_setting)
        print(file=sys.stderr)
        print_table(
            rows,
            [
                Column("name", "method"),
                Column("threads", "threads"),
                Column("out_dtype", "out"),
                Column("time", "best"),
                Column("time_median", "median"),
                Column("runs", "runs"),
                Column("evr_sum", "evr sum", "{:.5f}"),
                Column("evr_vs_sklearn", "evr/sklearn", "{:.5f}"),
            ],
            baselines={"vs sklearn": "sklearn TruncatedSVD"},
            group_by="threads",
            title=f"sparse LSA, fit_transform: {case}",
        )
        all_rows += rows
    return all_rows


def bench_streaming(args: argparse.Namespace, docs: list[str], X64: Any) -> list[dict[str, Any]]:
    from sklearn.feature_extraction.text import HashingVectorizer

    if args.quick:
        k, tfidf_rows, tfidf_batches = 10, 500, 10
        hash_rows, hash_batches, hash_features = 400, 4, 2**10
    else:
        k, tfidf_rows, tfidf_batches = 50, 12000, 10
        hash_rows, hash_batches, hash_features = 20000, 20, 2**18
    t0 = time.perf_counter()
    # HashingVectorizer is stateless: hashing the batches up front gives the same rows a
    # stream would hash one by one, and keeps text processing out of the SVD's time.
    H = HashingVectorizer(n_features=hash_features).transform(docs[:hash_rows]).tocsr()
    print(
        f"\n(hashed {hash_rows} documents into {hash_features} features in "
        f"{time.perf_counter() - t0:.1f} s)"
    )
    streams = [
        (f"TF-IDF {tfidf_rows}x{X64.shape[1]}", X64[:tfidf_rows], tfidf_batches),
        (f"HashingVectorizer {hash_rows}x{hash_features}", H, hash_batches),
    ]
    all_rows: list[dict[str, Any]] = []
    for label, X, n_batches in streams:
        all_rows += _bench_stream(args, label, X, n_batches, k)
    return all_rows


def _bench_stream(
    args: argparse.Namespace, label: str, X: Any, n_batches: int, k: int
) -> list[dict[str, Any]]:
    from scipy.sparse.linalg import svds
    from sklearn.decomposition import TruncatedSVD as SkTruncatedSVD

    bounds = np.linspace(0, X.shape[0], n_batches + 1).astype(int)
    batches = [X[a:b] for a, b in itertools.pairwise(bounds)]
    t0 = time.perf_counter()
    # The optimal rank-k energy, from ARPACK to machine precision (untimed).
    with untimed():
        s_opt = svds(X, k, return_singular_vectors=False, random_state=0)
    optimal = float(np.sum(np.sort(s_opt)[::-1][:k] ** 2))
    print(f"(ARPACK reference for {label}: {time.perf_counter() - t0:.1f} s)")
    case = (
        f"{label} nnz={X.nnz} float64, {n_batches} batches of {X.shape[0] // n_batches} rows, "
        f"k={k}"
    )
    common = {"part": "streaming", "case": case, "shape": list(X.shape), "nnz": X.nnz, "k": k}
    common.update(n_batches=n_batches, dtype="float64")

    def stream(parts=batches):
        est = sparselin.IncrementalSVD(k)
        for batch in parts:
            est.partial_fit(batch)
        return est

    def fit_sparselin():
        return sparselin.TruncatedSVD(k, random_state=0).fit(X)

    def fit_sklearn():
        return SkTruncatedSVD(k, random_state=0).fit(X)

    def metrics(est: Any) -> dict[str, Any]:
        return {"energy_ratio": explained_energy(X, est.components_) / optimal}

    def one_setting():
        rows = [
            measure(
                "sparselin IncrementalSVD stream",
                stream,
                # Two batches compile every kernel the stream uses; a whole stream untimed
                # would double the cost of the slowest row.
                warmup_fn=lambda: stream(batches[:2]),
                repeat=max(1, min(args.repeat, 3)),
                max_seconds=args.max_seconds,
                metrics=metrics,
                note=f"partial_fit on {n_batches} sparse batches",
                **common,
            ),
            measure(
                "sparselin TruncatedSVD fit",
                fit_sparselin,
                repeat=args.repeat,
                max_seconds=args.max_seconds,
                metrics=metrics,
                note="one fit on all the rows",
                **common,
            ),
            measure(
                "sklearn TruncatedSVD fit",
                fit_sklearn,
                repeat=args.repeat,
                max_seconds=args.max_seconds,
                metrics=metrics,
                note="one fit on all the rows",
                **common,
            ),
        ]
        one_fit = rows[1].get("time")
        for r in rows:
            if r.get("time") and one_fit:
                r["time_vs_one_fit"] = r["time"] / one_fit
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
            Column("time_median", "median"),
            Column("runs", "runs"),
            Column("energy_ratio", "energy/opt", "{:.4f}"),
            Column("time_vs_one_fit", "time/one fit", "{:.2f}"),
        ],
        group_by="threads",
        title=f"sparse streaming: {case}  (energy/opt = ||X Q||^2 / sum of the top-{k} s^2)",
    )
    return rows


# --------------------------------------------------------------------------- incremental


def bench_incremental(args: argparse.Namespace) -> list[dict[str, Any]]:
    from sklearn.decomposition import IncrementalPCA

    if args.quick:
        m, n, block, k, every = 400, 200, 50, 10, 3
    else:
        m, n, block, k, every = 10000, 5000, 100, 50, 10
    t0 = time.perf_counter()
    with untimed():
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

    # The error of re-computing on the whole matrix does not depend on threads: once.
    with untimed():
        full_err = residual_norm(A, *sparselin.truncated_svd(A, k, random_state=0)) / opt

    def one_setting():
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
        _progress()
        rows += recompute_rows()
        return rows

    def recompute_rows() -> list[dict[str, Any]]:
        # Re-computing from scratch after every block: time every `every`-th re-compute (and
        # the first and the last), interpolate the others linearly in the number of columns.
        timed = sorted({0, n_blocks - 1, *range(every - 1, n_blocks, every)})
        times: dict[int, float] = {}
        for idx, b in enumerate(timed):
            ncols = starts[b] + block
            row_b = measure(
                "recompute",
                lambda ncols=ncols: sparselin.truncated_svd(A[:, :ncols], k, random_state=0),
                repeat=1,
                warmup=1 if idx == 0 else 0,
            )
            if "error" in row_b:
                return [{**common, **row_b, "name": "sparselin recompute"}]
            times[b] = row_b["time"]
            _progress()
        x = np.array(sorted(times))
        total = float(np.sum(np.interp(np.arange(n_blocks), x, [times[b] for b in x])))
        return [
            {
                "name": "sparselin recompute (extrapolated)",
                **common,
                "time": total,
                "extrapolated": True,
                "timed_blocks": [int(b) + 1 for b in x],
                "timed_seconds": [times[b] for b in x],
                "err_opt": full_err,
                "note": f"EXTRAPOLATED: {len(x)} of {n_blocks} re-computes timed "
                f"(blocks {', '.join(str(int(b) + 1) for b in x)}), rest interpolated",
            }
        ]

    rows = thread_passes(args.threads, one_setting)
    print(file=sys.stderr)
    print_table(
        rows,
        [
            Column("name", "method"),
            Column("threads", "threads"),
            Column("time", "total"),
            Column("time_median", "median"),
            Column("runs", "runs"),
            Column("err_opt", "err/opt", "{:.4f}"),
        ],
        baselines={"vs IPCA": "sklearn IncrementalPCA"},
        group_by="threads",
        title=f"incremental SVD: {case}  (optimal error of the full matrix {opt:.4g})",
    )
    return rows


# --------------------------------------------------------------------------- targets


def _time_of(rows: list[dict[str, Any]], name: str, like: dict[str, Any]) -> float | None:
    for r in rows:
        if (
            r.get("name") == name
            and r.get("case") == like.get("case")
            and r.get("threads") == like.get("threads")
        ):
            return r.get("time")
    return None


def _target(
    part: str,
    row: dict[str, Any],
    what: str,
    value: float | None,
    ok: bool | None,
    goal: str,
    bound: float | None = None,
) -> dict[str, Any]:
    out = {
        "part": "target",
        "of": part,
        "case": row.get("case"),
        "threads": row.get("threads"),
        "target": what,
        "goal": goal,
        "value": value,
        "met": ok,
    }
    if bound is not None:
        out["passes_only_ceiling"] = bound
    return out


def passes_floor(rows: list[dict[str, Any]], row: dict[str, Any]) -> float | None:
    """Time of sparselin's passes over A alone in ``row``, priced by the gemm_pass rows.

    Each counted pass (per precision and direction, see :func:`count_passes`) is priced at the
    best time of the one-pass row of NumPy's BLAS for that direction at the same thread
    setting.
    """
    if not row.get("passes"):
        return None
    total = 0.0
    for key, count in row["passes"].items():
        dtype, direction = key.split(" ", 1)
        price = next(
            (
                r.get("time")
                for r in rows
                if r.get("part") == "gemm_pass"
                and r.get("name") == _PASS_ROWS[direction]
                and r.get("dtype") == dtype
                and r.get("threads") == row.get("threads")
            ),
            None,
        )
        if not price:
            return None
        total += count * price
    return total


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's speed and accuracy targets, one row per (case, thread setting, target)."""
    out: list[dict[str, Any]] = []

    def ratio(base: float | None, t: float | None) -> float | None:
        return base / t if base and t else None

    for r in rows:
        if r.get("part") == "truncated_svd" and r.get("name") == "sparselin" and r.get("time"):
            e = r.get("err_opt")
            out.append(
                _target(
                    "truncated_svd",
                    r,
                    "err/opt",
                    e,
                    e is not None and e <= TARGET_ERR_OPT,
                    f"<= {TARGET_ERR_OPT}",
                )
            )
            for peer, goal in (
                ("torch svd_lowrank matched", TARGET_VS_TORCH),
                ("sklearn randomized_svd", TARGET_VS_SKLEARN_RSVD),
            ):
                v = ratio(_time_of(rows, peer, r), r["time"])
                ok = None if v is None else v >= goal
                # The ratio if sparselin spent nothing but its passes over A: a target above
                # this ceiling cannot be met by removing overhead, only by fewer or cheaper
                # passes.
                bound = ratio(_time_of(rows, peer, r), passes_floor(rows, r))
                out.append(
                    _target("truncated_svd", r, f"speed vs {peer}", v, ok, f">= {goal}x", bound)
                )
        elif r.get("part") == "lsa" and r.get("name") == "sparselin TruncatedSVD":
            v = ratio(_time_of(rows, "sklearn TruncatedSVD", r), r.get("time"))
            ok = None if v is None else v >= TARGET_VS_SKLEARN_LSA
            goal = f">= {TARGET_VS_SKLEARN_LSA}x"
            out.append(_target("lsa", r, "speed vs sklearn TruncatedSVD", v, ok, goal))
            e = r.get("evr_vs_sklearn")
            ok = None if e is None else e >= 1 - EVR_TOLERANCE
            goal = f">= {1 - EVR_TOLERANCE}"
            out.append(_target("lsa", r, "explained variance / sklearn's", e, ok, goal))
        elif r.get("part") == "streaming" and r.get("name") == "sparselin IncrementalSVD stream":
            v = r.get("time_vs_one_fit")
            ok = None if v is None else v <= TARGET_STREAM_SLOWDOWN
            goal = f"<= {TARGET_STREAM_SLOWDOWN}x"
            out.append(_target("streaming", r, "time / one TruncatedSVD fit", v, ok, goal))
            e = r.get("energy_ratio")
            ok = None if e is None else e >= TARGET_STREAM_ENERGY
            goal = f">= {TARGET_STREAM_ENERGY}"
            out.append(_target("streaming", r, "energy / optimal", e, ok, goal))
    return out


def print_targets(targets: list[dict[str, Any]], *, quick: bool = False) -> None:
    if not targets:
        return
    print("\nthe issue's targets (benchmark figures of this run on this machine):")
    if quick:
        print("  (--quick: the sizes are far too small for these verdicts to mean anything)")
    for t in targets:
        v = t["value"]
        shown = "-" if v is None else f"{v:.4f}" if "energy" in t["target"] else f"{v:.3f}"
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        bound = t.get("passes_only_ceiling")
        shown_bound = "" if bound is None else f"; passes-only ceiling {bound:.2f}x"
        print(
            f"  {verdict:<6} threads={t['threads']:<8} {t['of']:<13} {t['target']:<40} "
            f"{shown:>8} (goal {t['goal']}{shown_bound})  {t['case']}"
        )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, repeat=5, thread_passes=True)
    parts = ("truncated", "lsa", "streaming", "incremental")
    parser.add_argument(
        "--part",
        choices=("all", *parts),
        action="append",
        help="run only this part (repeatable; default: all)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        action="append",
        help="dense truncated SVD part: run only the cases of this dtype (repeatable; "
        "default: both)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    selected = set(parts) if not args.part or "all" in args.part else set(args.part)
    # Load every peer before any thread limit: threadpoolctl only sees libraries loaded so far.
    for name in ("torch", "fbpca", "sklearn.decomposition", "scipy.sparse.linalg", "numba"):
        _import_error(name)
    env = environment()
    print(format_environment(env))
    if env.get("openblas_warning"):
        print(f"bench_svd: WARNING: {env['openblas_warning']}", file=sys.stderr)
    settings = []
    for n in args.threads:
        with thread_setting(n):
            settings.append({"threads": thread_label(n), "threadpool_info": threadpool_snapshot()})
    print("thread settings of every row: " + ", ".join(s["threads"] for s in settings))

    rows: list[dict[str, Any]] = []
    if "truncated" in selected:
        rows += bench_truncated(args)
    if selected & {"lsa", "streaming"}:
        docs, X = tfidf_corpus(args)
        if "lsa" in selected:
            rows += bench_lsa(args, X)
        if "streaming" in selected:
            rows += bench_streaming(args, docs, X)
        del docs, X
    if "incremental" in selected:
        rows += bench_incremental(args)
    targets = check_targets(rows)
    print_targets(targets, quick=args.quick)
    if args.json:
        write_json(
            args.json,
            rows + targets,
            benchmark="svd",
            env=environment(),
            quick=args.quick,
            thread_settings=settings,
            openblas_warning=env.get("openblas_warning"),
        )
        print(f"\nrows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
