"""The ``sparselin`` command line.

``sparselin --version`` and ``sparselin info`` report the installation;
``sparselin demo`` decomposes a built-in matrix and prints what it found. Further subcommands
(``compress``) arrive with their families.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable, Sequence

from ._version import __version__


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
