"""The ``sparselin`` command line.

``sparselin --version`` and ``sparselin info`` report the installation;
``sparselin demo`` decomposes a built-in matrix and prints what it found. Further subcommands
(``compress``) arrive with their families.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from ._version import __version__


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _cmd_info(args: argparse.Namespace) -> int:
    from ._info import show_versions

    _out(show_versions())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from .datasets import make_low_rank_matrix
    from .linalg import truncated_svd

    A, s_true = make_low_rank_matrix(
        args.rows, args.cols, decay=args.decay, random_state=args.seed, return_singular_values=True
    )
    _out(
        f"matrix: {A.shape[0]} x {A.shape[1]} float64, singular values {args.decay}**i "
        f"(built in, seed {args.seed})"
    )
    t0 = time.perf_counter()
    U, s, Vt, err = truncated_svd(A, tol=args.tol, random_state=args.seed, return_error=True)
    dt = time.perf_counter() - t0
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
    p_demo.add_argument("--rows", type=int, default=2000)
    p_demo.add_argument("--cols", type=int, default=1500)
    p_demo.add_argument("--decay", type=float, default=0.95, help="singular values decay**i")
    p_demo.add_argument("--tol", type=float, default=1e-2, help="relative Frobenius error")
    p_demo.add_argument("--seed", type=int, default=0)
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
