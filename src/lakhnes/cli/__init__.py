"""The ``lakhnes`` command: one entry point, one small module per subcommand.

Each module in this package defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed args, returning the exit status). Exit status: 0 success,
1 some inputs failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
