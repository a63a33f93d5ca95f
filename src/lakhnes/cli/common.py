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


def unwritable(paths, folder: bool = False) -> str | None:
    """The ``path: reason`` line for the first of ``paths`` (files, or with ``folder`` output
    folders) that cannot be written, or None. Run before the work, so that a long job never
    ends in a write error."""
    from lakhnes.io import check_writable

    for p in paths:
        if p is None or p == "":
            continue
        if folder and Path(p).exists() and not Path(p).is_dir():
            return f"{p}: output must be a folder"
        try:
            check_writable(Path(p) / ".lakhnes-output" if folder else p)
        except OSError as e:
            return f"{p}: cannot write {'into this folder ' if folder else ''}({e.strerror or e})"
    return None


def done(path, seconds: float, extra: str = "") -> None:
    """The one line a command prints for each file it wrote: the path and the music's length."""
    print(f"{path}  ({seconds:.1f} s{extra})", file=sys.stderr)


def summary(converted: int, failed: int, verb: str = "converted") -> int:
    print(f"{converted} {verb}, {failed} failed", file=sys.stderr)
    return 1 if failed else 0
