"""Smoke test of ``benchmarks/bench_svd.py --quick``: it runs end to end, at default threads and
at one thread, and its JSON holds what benchmarks/README.md promises.

No timing is checked (timings belong in the benchmark, not in tests); the checks are on the
structure of the output and on the accuracy metrics, which the benchmark computes against
exact references (ARPACK, known spectra) and so can be checked against them here.
"""

from __future__ import annotations

import argparse
import json
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


def test_bench_svd_quick(tmp_path: Path) -> None:
    # One test, not one per check: under pytest-xdist a module-scoped fixture would run the
    # benchmark once per worker.
    out = tmp_path / "svd.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
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
    before = [p["num_threads"] for p in threadpool_info()]
    numba_before = numba.get_num_threads()
    with harness.thread_setting(1):
        assert all(p["num_threads"] == 1 for p in threadpool_info())
        assert numba.get_num_threads() == 1
        assert harness.measure("x", lambda: None, repeat=1)["threads"] == "1"
    # Pools loaded inside the block (none here) aside, every limit is undone.
    assert [p["num_threads"] for p in threadpool_info()][: len(before)] == before
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
