"""The checkpoint reader on damaged files: a result or a CheckpointError, never a crash or hang.

(1) A deterministic sweep of truncations, bit flips and header edits of a valid compressed file
(every method of the schema); (2) the atheris harness tests/fuzz/fuzz_checkpoint.py for a
bounded number of runs, when atheris is installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sparselin._checkpoint import CheckpointError, SafetensorsReader, read_compressed
from tests.fuzz.fuzz_checkpoint import check, make_seed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASE_SECONDS = 2.0


class _Hang(Exception):
    pass


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("seed") / "seed.safetensors")
    make_seed(path)
    with open(path, "rb") as f:
        return f.read()


def _split(data):
    n = int.from_bytes(data[:8], "little")
    return n, json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(header, body, pad=True):
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + body


def _header_edits(data):
    """(label, bytes) for edits a damaged or hostile header could carry."""
    n, header, body = _split(data)
    meta = header["__metadata__"]
    doc = json.loads(meta["sparselin"])
    names = [k for k in header if k != "__metadata__"]
    out = []

    def edit(label, fn, target="header"):
        h = json.loads(json.dumps(header))
        d = json.loads(json.dumps(doc))
        fn(h, d)
        h["__metadata__"]["sparselin"] = json.dumps(d)
        out.append((label, _join(h, body)))

    for name in names:
        for value in ("X9", 7, None, "BF16", "F8_E4M3", "I32", "BOOL"):
            edit(f"dtype {name} {value}", lambda h, d, v=value, k=name: h[k].update(dtype=v))
        for shape in ([], [0], [-1, 2], [2**40, 2**40], [0, 2**62], [1.5], "3", [True], None):
            edit(f"shape {name} {shape}", lambda h, d, v=shape, k=name: h[k].update(shape=v))
        for off in ([0, 0], [5, 1], [-8, 0], [0, 10**12], [1, 2, 3], [0.0, 4], "x", [None, 1]):
            edit(f"offsets {name} {off}", lambda h, d, v=off, k=name: h[k].update(data_offsets=v))
        edit(f"drop tensor {name}", lambda h, d, k=name: h.pop(k))
        edit(f"entry list {name}", lambda h, d, k=name: h.__setitem__(k, [1, 2]))
    for layer in doc["layers"]:
        for key, values in {
            "method": ["svd", "shared", "dense", "lowrank_sparse", "kronecker", 3, None],
            "shape": [[1, 1], [10**9, 10**9], [-1, 5], [3], "2x2", [2.0, 2]],
            "rank": [0, -1, 1, 10**9, 2.5, None, True],
            "dtype": ["F32", "I64", None],
            "params_after": [-1, "x"],
            "error": [-0.5, "x", None],
            "group": ["g0", "nope", ["g0"], {"a": 1}, None],
        }.items():
            for v in values:
                edit(
                    f"layer {layer} {key}={v}",
                    lambda h, d, L=layer, k=key, v=v: d["layers"][L].__setitem__(k, v),
                )
        for role in (
            "U",
            "V",
            "coef",
            "weight",
            "indptr",
            "indices",
            "values",
            "columns",
            "A",
            "B",
        ):
            for v in (None, "missing", "a.bias", "ids", "g0.basis", "k.weight::B", 5):
                edit(
                    f"layer {layer} tensor {role}={v}",
                    lambda h, d, L=layer, r=role, v=v: d["layers"][L]["tensors"].__setitem__(r, v),
                )
        edit(f"layer {layer} no tensors", lambda h, d, L=layer: d["layers"][L].pop("tensors"))
    for key, v in {
        "format": ["other", None],
        "version": [0, 1, 3, "1", None, 10**100],
        "layers": [[], None, {"x": 1}],
        "groups": [[], None, {"g0": {"basis": "g0.basis", "rank": 0, "members": []}}],
    }.items():
        for value in v:
            edit(f"doc {key}={value!r}", lambda h, d, k=key, value=value: d.__setitem__(k, value))
    edit("group members str", lambda h, d: d["groups"]["g0"].__setitem__("members", "c.weight"))
    edit("group basis missing", lambda h, d: d["groups"]["g0"].__setitem__("basis", "zz"))
    # Raw header damage: not JSON, not an object, nested too deep, not UTF-8, bad metadata.
    for label, text in [
        ("empty json", b""),
        ("json list", b"[1, 2, 3]"),
        ("json number", b"42"),
        ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
        ("not utf8", b'{"a\xff": 1}'),
        ("metadata not str", b'{"__metadata__": {"a": 1}}'),
        ("metadata list", b'{"__metadata__": [1]}'),
        (
            "huge int",
            b'{"t": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 0]}}',
        ),
        ("nan", b'{"__metadata__": {"sparselin": "{\\"format\\": NaN}"}}'),
    ]:
        out.append((label, len(text).to_bytes(8, "little") + text + body))
    # Header length field: zero, one too many, far too many, all ones.
    for value in (0, 1, n - 1, n + 1, len(data) - 8, len(data), 2**63, 2**64 - 1):
        out.append((f"length {value}", value.to_bytes(8, "little") + data[8:]))
    # Metadata JSON cut short.
    edit("sparselin json cut", lambda h, d: None)
    out[-1] = (
        "sparselin json cut",
        _join({**header, "__metadata__": {"sparselin": meta["sparselin"][:40]}}, body),
    )
    # Sparse index values out of range, row pointer broken (in the body, valid header).
    return out


def _body_edits(data):
    """Index arrays of the lowrank_sparse layer rewritten with bad values (header intact)."""
    n, header, body = _split(data)
    out = []
    for name, values in [
        ("b.weight::indices", [7, 0, 2]),
        ("b.weight::indices", [-1, 0, 2]),
        ("b.weight::indptr", [0, 2, 1, 3, 3]),
        ("b.weight::indptr", [1, 1, 1, 3, 3]),
        ("b.weight::indptr", [0, 1, 1, 3, 2]),
        ("b.weight::columns", [6]),
        ("b.weight::columns", [-3]),
    ]:
        info = header[name]
        begin, end = info["data_offsets"]
        dtype = {"I32": "<i4", "I64": "<i8"}[info["dtype"]]
        new = np.array(values, dtype=dtype).tobytes()
        assert len(new) == end - begin
        out.append((f"{name}={values}", data[: 8 + n + begin] + new + data[8 + n + end :]))
    return out


def _cases(data):
    rng = np.random.default_rng(2026)
    n = int.from_bytes(data[:8], "little")
    cases = []
    # Truncations: every length through the header, then a sample of the body.
    cuts = set(range(17)) | set(range(0, 8 + n + 1, max(1, (8 + n) // 120)))
    for cut in sorted(cuts) + sorted(
        rng.choice(np.arange(8 + n, len(data)), 30, replace=False).tolist()
    ):
        cases.append((f"truncate {cut}", data[:cut]))
    cases.append(("append byte", data + b"\0"))
    # Bit flips: one and three bits, in the length, the header and the body.
    for i in range(250):
        b = bytearray(data)
        for _ in range(1 if i % 2 else 3):
            pos = int(rng.integers(0, len(b)))
            b[pos] ^= 1 << int(rng.integers(0, 8))
        cases.append((f"flip {i}", bytes(b)))
    cases += _header_edits(data)
    cases += _body_edits(data)
    return cases


def _alarm(signum, frame):
    raise _Hang


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")
def test_damaged_files_raise_only_checkpoint_error(seed, tmp_path):
    path = str(tmp_path / "case.safetensors")
    cases = _cases(seed)
    assert len(cases) > 500
    outcomes = {"ok": 0, "error": 0}
    errors_seen = set()
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for label, data in cases:
            signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
            t0 = time.perf_counter()
            try:
                with open(path, "wb") as f:
                    f.write(data)
                try:
                    reader = SafetensorsReader(path)
                    for name in reader.tensors:
                        reader.read(name)
                    ckpt = read_compressed(path)
                    for name in ckpt.layers:
                        W = ckpt.dense(name)
                        assert W.shape == ckpt.layers[name].shape
                    outcomes["ok"] += 1
                except CheckpointError as exc:
                    outcomes["error"] += 1
                    msg = str(exc)
                    assert msg.startswith(path) and "\n" not in msg, (label, msg)
                    errors_seen.add(msg.split(": ", 2)[-1].split(" ")[0])
            except _Hang:
                pytest.fail(f"{label}: reading took more than {CASE_SECONDS} s")
            except Exception as exc:
                pytest.fail(f"{label}: {type(exc).__name__}: {exc}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            assert time.perf_counter() - t0 < CASE_SECONDS
    finally:
        signal.signal(signal.SIGALRM, previous)
    # The sweep reaches both outcomes, and many distinct checks.
    assert outcomes["ok"] > 10 and outcomes["error"] > 400
    assert len(errors_seen) > 10


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("truncate 3", "3 bytes, shorter than the 8-byte header length"),
        ("length 18446744073709551615", "is larger than the"),
        ("deep nesting", "header is not valid JSON"),
        ("not utf8", "header is not UTF-8 text"),
        ("json list", "header is a JSON list, expected an object"),
        ("metadata not str", "__metadata__ must map strings to strings"),
        ("shape a.weight::U [0, 4611686018427387904]", "impossibly large"),
        ("offsets a.weight::U [0, 1000000000000]", "data_offsets must be [begin, end] within"),
        ("dtype a.weight::U X9", "unknown dtype 'X9'"),
        ("drop tensor a.weight::U", "data_offsets leaves a gap before it"),
        ("layer a.weight tensor U=missing", "names a missing tensor 'missing'"),
        ("layer e.weight tensor weight=ids", "is I64 (1, 4), expected (2, 2)"),
        ("doc version=3", "format version 3 is newer than this sparselin reads"),
        ("doc version=1", "layer 'k.weight': method 'kronecker' needs format version 2"),
        ("layer k.weight rank=1", "do not make a rank-1 sum of Kronecker products of shape"),
        ("layer k.weight shape=[1, 1]", "do not make a rank-2 sum of Kronecker products"),
        ("layer k.weight tensor A=g0.basis", "tensor 'g0.basis' is 2-D, expected 3-D"),
        ("dtype k.weight::B I32", "B must be floating point, not I32"),
        ("layer c.weight group=nope", "group 'nope' is not defined"),
        ("layer a.weight rank=0", "rank must be a positive integer"),
        ("layer a.weight params_after=-1", "params_before/params_after must be integers"),
        ("b.weight::indices=[7, 0, 2]", "column index out of range"),
        ("b.weight::indptr=[0, 2, 1, 3, 3]", "indptr is not a valid row pointer"),
        ("append byte", "data buffer is"),
    ],
)
def test_damage_messages(seed, tmp_path, label, message):
    data = dict(_cases(seed))[label]
    path = str(tmp_path / "case.safetensors")
    with pytest.raises(CheckpointError, match="^" + str(tmp_path)) as exc:
        check_strict(data, path)
    assert message in str(exc.value)


def check_strict(data, path):
    with open(path, "wb") as f:
        f.write(data)
    ckpt = read_compressed(path)
    for name in ckpt.layers:
        ckpt.dense(name)


def test_seed_is_valid_and_rebuilds(seed, tmp_path):
    path = str(tmp_path / "seed.safetensors")
    with open(path, "wb") as f:
        f.write(seed)
    ckpt = read_compressed(path)
    assert set(ckpt.layers) == {
        "a.weight",
        "b.weight",
        "c.weight",
        "d.weight",
        "e.weight",
        "k.weight",
    }
    assert ckpt.version == 2
    assert sorted(ckpt.passthrough) == ["a.bias", "ids"]
    f = ckpt.factors("b.weight")
    W = ckpt.dense("b.weight")
    expect = f["U"].astype(np.float64) @ f["V"]
    expect[0, 5] += f["values"][0]
    expect[2, 0] += f["values"][1]
    expect[2, 2] += f["values"][2]
    expect[:, 1] += f["column_values"][:, 0]
    np.testing.assert_allclose(W, expect, rtol=1e-12)
    basis = ckpt.factors("c.weight")["basis"]
    np.testing.assert_allclose(
        ckpt.dense("d.weight"), ckpt.factors("d.weight")["coef"] @ basis, rtol=1e-6
    )
    f = ckpt.factors("k.weight")
    expect = sum(np.kron(f["A"][i], f["B"][i]) for i in range(2))
    np.testing.assert_allclose(ckpt.dense("k.weight"), expect, rtol=1e-6)
    check(seed, str(tmp_path / "copy.safetensors"))
    assert ckpt.totals() == (83 + 24, 72 + 20)


def test_atheris_harness(tmp_path):
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tests", "fuzz", "fuzz_checkpoint.py"),
            "-runs=1500",
            "-max_len=4096",
            "-timeout=10",
            "-max_total_time=60",
            str(corpus),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    tail = proc.stderr[-3000:]
    assert proc.returncode == 0, tail
    assert "Done" in tail and "crash" not in tail.lower()
    assert (corpus / "seed.safetensors").exists()
