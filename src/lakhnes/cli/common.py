"""Helpers shared by subcommands: input discovery, batch summaries, usage errors."""

from __future__ import annotations

import sys
from pathlib import Path

MIDI_SUFFIXES = (".mid", ".midi")


def usage_error(msg: str) -> int:
    print(f"lakhnes: error: {msg}", file=sys.stderr)
    return 2


def fail(msg: str) -> None:
    """Print a one-line failure (``path: reason``) to stderr."""
    print(msg, file=sys.stderr)


def expand_inputs(inputs: list[str], suffixes: tuple[str, ...]) -> tuple[list[Path], list[str]]:
    """Files named or found recursively under named folders (sorted); and missing inputs."""
    files, missing = [], []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(suffixes))
        elif p.exists():
            files.append(p)
        else:
            missing.append(s)
    return files, missing


def summary(converted: int, failed: int, verb: str = "converted") -> int:
    print(f"{converted} {verb}, {failed} failed", file=sys.stderr)
    return 1 if failed else 0
