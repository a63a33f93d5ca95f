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


MAP_HELP = ("which track of a multi-instrument MIDI plays which voice, e.g. MELODY=P1,BASS=TR,3=- (track name "
            "or index; voice P1, P2, TR, NO, or - to leave the track out); voices not named are filled "
            "automatically (the melody on P1: a track named MELODY/VOCAL/LEAD first). The mapping used is printed")


def add_map_option(p) -> None:
    """The ``--map TRACK=VOICE,...`` option of every command that reads a multi-instrument MIDI."""
    p.add_argument("--map", default=None, metavar="TRACK=VOICE,...", help=MAP_HELP)


def check_map(spec) -> str | None:
    """The usage error of a malformed ``--map`` value, or None."""
    if spec is None:
        return None
    from lakhnes.errors import InvalidInputError
    from lakhnes.formats.any_midi import parse_map

    try:
        if not parse_map(spec):
            return "--map: expected TRACK=VOICE,... (e.g. MELODY=P1,BASS=TR)"
    except InvalidInputError as e:
        return str(e)
    return None


def show_mapping(path, mapping) -> None:
    """Print how a MIDI file's tracks became NES voices: ``path: track 0 'MELODY' (...) -> P1``, one line each."""
    if mapping is None:
        return
    for line in mapping.lines():
        print(f"{path}: {line}", file=sys.stderr)


def check_device(name: str | None) -> str | None:
    """The one-line usage error of a ``--device`` that is no torch device, or that this machine lacks
    (CUDA without a GPU, ``cuda:3`` with one GPU, ...); None if it can be used (or is None: the default)."""
    if name is None or name == "cpu":
        return None
    import importlib.util

    try:
        found = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return f'--device {name} needs PyTorch, which is not installed: pip install "lakhnes[train]"'
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        return f"--device {name}: not a torch device (cpu, cuda, cuda:1, ...)"
    if dev.type == "cpu":
        return None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return f"--device {name}: no CUDA device here (use --device cpu)"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        return None
    if dev.type == "mps":
        return None if torch.backends.mps.is_available() else f"--device {name}: no Apple GPU (MPS) here (use --device cpu)"
    return f"--device {name}: not supported (cpu, cuda, cuda:N or mps)"


def load_song(path, mapping=None):
    """``(score, MidiMapping or None)`` of a file to convert, render or plot: any MIDI through
    :func:`lakhnes.formats.files.load_any` (mapped onto the NES voices when it has no NES tracks, or
    with ``mapping``), every other kind through :func:`lakhnes.formats.files.load` (its messages)."""
    from lakhnes.errors import InvalidInputError
    from lakhnes.formats.files import file_kind, kind_of, load, load_any

    p = Path(path)
    kind = file_kind(p) if p.is_file() else kind_of(p)
    if kind in ("mid", "gm.mid"):
        return load_any(p, mapping=mapping)
    if mapping:
        raise InvalidInputError("--map applies to MIDI files", str(p))
    return load(p), None
