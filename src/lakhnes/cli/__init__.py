"""The ``lakhnes`` command: one entry point, one small module per subcommand.

Each module in this package defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed args, returning the exit status). Exit status: 0 success,
1 some inputs failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

#: BLAS thread variables: a batch-1 decoding step is a chain of small products that a second
#: thread only slows down (many times over on a loaded machine); set to 1 before numpy loads
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: commands that keep the BLAS/OpenMP defaults (training and evaluation use every core)
ALL_THREADS = {"train", "eval"}


def _one_blas_thread(argv: list[str]) -> None:
    """One BLAS thread for every command but training and evaluation, unless the user set any of
    ``BLAS_THREADS`` (then all are left alone). Runs when this module loads: before numpy."""
    command = next((a for a in argv if not a.startswith("-")), "")
    if command not in ALL_THREADS and not any(v in os.environ for v in BLAS_THREADS):
        for v in BLAS_THREADS:
            os.environ[v] = "1"


if "numpy" not in sys.modules:
    _one_blas_thread(sys.argv[1:])

#: subcommand modules, in the order ``lakhnes --help`` lists them
COMMANDS = ["generate", "synth", "plot", "encode", "decode", "prepare", "train", "eval", "report", "stats", "serve", "listen"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lakhnes", description="NES chiptunes with Transformer-XL (LakhNES).")
    from lakhnes import __version__

    parser.add_argument("--version", action="version", version=f"lakhnes {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"lakhnes.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"lakhnes.cli.{name}":
                continue  # not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "torch":
            raise
        print(f'lakhnes {args.command}: this needs PyTorch, which is not installed: pip install "lakhnes[train]"',
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
