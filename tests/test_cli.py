"""The command line as a user meets it: usage errors for bad arguments, a labelled BLAS report."""

from __future__ import annotations

import os
import sys

import pytest
from threadpoolctl import threadpool_info

from sparselin import _info, _threads, cli


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rows", "-3"], "--rows: expected an integer >= 1, got -3"),
        (["--rows", "0"], "--rows: expected an integer >= 1"),
        (["--rows", "abc"], "--rows: expected an integer, got 'abc'"),
        (["--cols", "2.5"], "--cols: expected an integer"),
        (["--cols", "0"], "--cols: expected an integer >= 1"),
        (["--tol", "0"], "--tol: expected a number in (0, 1)"),
        (["--tol", "1"], "--tol: expected a number in (0, 1)"),
        (["--tol", "-0.1"], "--tol: expected a number in (0, 1)"),
        (["--tol", "nan"], "--tol: expected a number in (0, 1)"),
        (["--tol", "inf"], "--tol: expected a number in (0, 1)"),
        (["--tol", "x"], "--tol: expected a number, got 'x'"),
        (["--decay", "0"], "--decay: expected a number in (0, 1]"),
        (["--decay", "1.5"], "--decay: expected a number in (0, 1]"),
        (["--seed", "-1"], "--seed: expected an integer in [0, 4294967295]"),
        (["--seed", str(2**32)], "--seed: expected an integer in [0, 4294967295]"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_demo_bad_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", *argv])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["nonsense"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_demo_on_edge_arguments(capsys):
    # The smallest matrix, a flat spectrum and the largest decay allowed all run to the end.
    assert cli.main(["demo", "--rows", "1", "--cols", "1", "--tol", "0.5"]) == 0
    assert "rank 1" in capsys.readouterr().out
    assert cli.main(["demo", "--rows", "40", "--cols", "30", "--decay", "1", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "40 x 30" in out and "seed 7" in out and "relative error" in out


def test_demo_reports_library_warnings_as_lines(capsys):
    # A tol below what float64 can reach runs, and says so as a plain line on stderr.
    assert cli.main(["demo", "--rows", "50", "--cols", "30", "--tol", "1e-300"]) == 0
    captured = capsys.readouterr()
    assert "rank 30" in captured.out
    assert captured.err.startswith("warning: tol=1e-300 is below")


def test_demo_out_of_memory_is_an_error_not_a_traceback(monkeypatch, capsys):
    import sparselin.datasets

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(sparselin.datasets, "make_low_rank_matrix", no_memory)
    assert cli.main(["demo", "--rows", "100000", "--cols", "100000"]) == 1
    assert "not enough memory for a 100000 x 100000 matrix" in capsys.readouterr().err


def test_info_labels_every_blas_library(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    loaded = threadpool_info()
    lines = [line for line in out.splitlines() if line.startswith("blas: ")]
    assert len(lines) == len(loaded) >= 1
    for lib in loaded:
        owner = _threads.library_owner(lib["filepath"])
        line = next(line for line in lines if f"{owner:<13}{lib['internal_api']}" in line)
        assert f"{lib['num_threads']} threads" in line
        if lib.get("version"):
            assert lib["version"] in line
        if lib.get("threading_layer"):
            assert f"{lib['threading_layer']} threading" in line
        assert lib["filepath"] in out
    # This environment's wheels: NumPy's and SciPy's OpenBLAS, each labelled as such.
    owners = {_threads.library_owner(d["filepath"]) for d in loaded}
    assert "numpy" in owners
    openblas = {d["filepath"] for d in loaded if d["internal_api"] == "openblas"}
    assert ("warning: " in out) == (len(openblas) >= 2)
    if len(openblas) >= 2:
        text = " ".join(out.split())  # the warning is wrapped over several lines
        assert "OpenBLAS thread pools are loaded" in text
        assert "NumPy's BLAS only" in text


def test_blas_warnings_needs_two_distinct_openblas():
    def lib(package, api="openblas", path=None):
        return {"package": package, "internal_api": api, "filepath": path or f"/x/{package}.so"}

    assert _info.blas_warnings([]) == []
    assert _info.blas_warnings([lib("numpy"), lib("scikit-learn", api="openmp")]) == []
    # One library seen twice (NumPy and SciPy sharing conda's) is one pool.
    shared = "/opt/conda/lib/libopenblas.so"
    assert _info.blas_warnings([lib("system", path=shared), lib("system", path=shared)]) == []
    (warning,) = _info.blas_warnings([lib("numpy"), lib("scipy"), lib("torch", api="mkl")])
    assert warning.startswith("2 OpenBLAS thread pools are loaded (numpy's and scipy's)")
    assert "busy-waiting" in warning and "NumPy's BLAS only" in warning


def test_system_info_blas_entries():
    info = _info.system_info()
    assert info["dependencies"]["threadpoolctl"] is not None
    for entry in info["blas"]:
        assert set(entry) >= {"package", "internal_api", "version", "num_threads", "filepath"}
    assert info["blas_warnings"] == _info.blas_warnings(info["blas"])


@pytest.mark.parametrize(
    ("parts", "owner"),
    [
        (("numpy.libs", "libscipy_openblas64_-1.so"), "numpy"),
        (("scipy.libs", "libscipy_openblas-2.so"), "scipy"),
        (("scipy", ".dylibs", "libopenblas.dylib"), "scipy"),
        (("scikit_learn.libs", "libgomp-3.so.1.0.0"), "scikit-learn"),
        (("sklearn", ".dylibs", "libomp.dylib"), "scikit-learn"),
        (("torch", "lib", "libgomp-4.so.1"), "torch"),
        (("libstray.so",), "system"),
    ],
)
def test_library_owner_from_path(parts, owner, tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    monkeypatch.setattr(sys, "path", [str(tmp_path), str(site)])
    assert _threads.library_owner(os.path.join(site, *parts)) == owner


def test_library_owner_outside_sys_path(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site-packages")])
    assert _threads.library_owner("/usr/lib/x86_64-linux-gnu/libopenblas.so.0") == "system"
    assert _threads.library_owner(None) == "unknown"
