"""Fuzz the checkpoint reader: any bytes must give a result or a CheckpointError, nothing else.

Run as a script with atheris (libFuzzer flags pass through), e.g.::

    python tests/fuzz/fuzz_checkpoint.py -runs=20000 -max_len=8192 CORPUS_DIR

``CORPUS_DIR`` empty is fine: a valid compressed file holding every method (svd,
lowrank_sparse with entries and columns, shared, kronecker, dense) is added as the seed. The
pytest suite (tests/test_checkpoint_fuzz.py) imports :func:`make_seed` and :func:`check` from here.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np


def make_seed(path: str) -> None:
    """Write a small valid compressed checkpoint that uses every layout of the schema."""
    from sparselin._checkpoint import (
        GroupRecord,
        LayerRecord,
        RawTensor,
        atomic_write_safetensors,
        build_metadata,
    )

    rng = np.random.default_rng(0)
    t: dict[str, RawTensor] = {}

    def put(name: str, a: np.ndarray, dtype: str | None = None) -> str:
        t[name] = RawTensor.from_array(a, dtype)
        return name

    layers = [
        LayerRecord(
            "a.weight",
            "svd",
            (6, 5),
            "F32",
            2,
            30,
            22,
            0.1,
            {
                "U": put("a.weight::U", rng.standard_normal((6, 2)).astype(np.float32)),
                "V": put("a.weight::V", rng.standard_normal((2, 5)).astype(np.float32)),
            },
        ),
        LayerRecord(
            "b.weight",
            "lowrank_sparse",
            (4, 6),
            "BF16",
            1,
            24,
            26,
            0.2,
            {
                "U": put("b.weight::U", rng.standard_normal((4, 1)), "BF16"),
                "V": put("b.weight::V", rng.standard_normal((1, 6)), "BF16"),
                "indptr": put("b.weight::indptr", np.array([0, 1, 1, 3, 3], np.int32)),
                "indices": put("b.weight::indices", np.array([5, 0, 2], np.int32)),
                "values": put("b.weight::values", rng.standard_normal(3), "BF16"),
                "columns": put("b.weight::columns", np.array([1], np.int64)),
                "column_values": put(
                    "b.weight::column_values", rng.standard_normal((4, 1)), "BF16"
                ),
            },
        ),
        LayerRecord(
            "c.weight",
            "shared",
            (3, 5),
            "F16",
            2,
            15,
            6,
            0.05,
            {
                "coef": put("c.weight::coef", rng.standard_normal((3, 2)).astype(np.float16)),
            },
            "g0",
        ),
        LayerRecord(
            "d.weight",
            "shared",
            (2, 5),
            "F16",
            2,
            10,
            4,
            0.05,
            {
                "coef": put("d.weight::coef", rng.standard_normal((2, 2)).astype(np.float16)),
            },
            "g0",
        ),
        LayerRecord(
            "e.weight",
            "dense",
            (2, 2),
            "F64",
            2,
            4,
            4,
            0.0,
            {
                "weight": put("e.weight::weight", rng.standard_normal((2, 2))),
            },
        ),
        LayerRecord(
            "k.weight",
            "kronecker",
            (6, 4),
            "F32",
            2,
            24,
            20,
            0.3,
            {
                "A": put("k.weight::A", rng.standard_normal((2, 3, 2)).astype(np.float32)),
                "B": put("k.weight::B", rng.standard_normal((2, 2, 2)).astype(np.float32)),
            },
        ),
    ]
    put("g0.basis", rng.standard_normal((2, 5)).astype(np.float16))
    put("a.bias", np.ones(6, np.float32))
    put("ids", np.arange(4, dtype=np.int64)[None, :])
    groups = [GroupRecord("g0", "g0.basis", 2, ["c.weight", "d.weight"])]
    meta = build_metadata(layers, groups, settings={"tol": 0.1}, extra={"format": "pt"})
    atomic_write_safetensors(path, t, meta)


def check(data: bytes, path: str) -> None:
    """Read ``data`` as a checkpoint end to end; only CheckpointError may escape."""
    from sparselin._checkpoint import CheckpointError, SafetensorsReader, read_compressed

    with open(path, "wb") as f:
        f.write(data)
    try:
        reader = SafetensorsReader(path)
        for name in reader.tensors:
            raw = reader.read(name)
            if raw.dtype in ("F64", "F32", "F16", "BF16"):
                raw.to_float()
        ckpt = read_compressed(path)
        for name in ckpt.layers:
            ckpt.dense(name)
        ckpt.totals()
    except CheckpointError:
        pass


def main() -> None:  # pragma: no cover - run in a subprocess by the tests
    import inspect

    import atheris

    import sparselin._checkpoint as mod

    # Coverage feedback for the reader only: instrumenting every import (NumPy, SciPy) would
    # make each run slow and the coverage signal mostly noise.
    for name, obj in vars(mod).items():
        if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
            setattr(mod, name, atheris.instrument_func(obj))
        elif inspect.isclass(obj) and obj.__module__ == mod.__name__:
            for attr, fn in vars(obj).items():
                if inspect.isfunction(fn):
                    setattr(obj, attr, atheris.instrument_func(fn))

    work = tempfile.mkdtemp(prefix="sparselin-fuzz-")
    target = os.path.join(work, "case.safetensors")
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    if corpus and os.path.isdir(corpus[0]) and not os.listdir(corpus[0]):
        make_seed(os.path.join(corpus[0], "seed.safetensors"))

    def one_input(data: bytes) -> None:
        check(data, target)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main()
