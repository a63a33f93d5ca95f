"""``lakhnes encode``: NES-MDB MIDI, NES VGM/VGZ rips or FamiTracker text → LakhNES TX1 text."""

from __future__ import annotations

import functools
from pathlib import Path

from lakhnes.cli.common import (
    MIDI_SUFFIXES,
    add_map_option,
    check_map,
    fail,
    summary,
    unwritable,
    usage_error,
)
from lakhnes.errors import InvalidInputError

#: what a folder gives ``encode`` (files named directly may have any name: their content tells)
ENCODE_SUFFIXES = (*MIDI_SUFFIXES, ".vgm", ".vgz", ".famitracker.txt")


def register(sub) -> None:
    p = sub.add_parser("encode", help="NES-MDB MIDI, NES VGM/VGZ or FamiTracker text → .tx1.txt (TX1 event text)",
                       description="Encode NES-MDB MIDI, NES VGM/VGZ rips (read as NES-MDB read them) or FamiTracker "
                                   "text exports as TX1 text; a file is known by its name, else by its content. "
                                   "With --map, any MIDI is mapped onto the NES voices first (the same mapping for "
                                   "every file; folders then give their MIDI files only).")
    p.add_argument("inputs", nargs="+", metavar="IN",
                   help="files or folders (searched recursively for .mid, .midi, .vgm, .vgz, .famitracker.txt)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    add_map_option(p)
    p.add_argument("-j", "--workers", type=int, default=None, help="parallel workers (default: all cores)")
    p.set_defaults(func=run)


def _encode(job, mapping=None) -> None:
    src, dst = job
    from lakhnes.core.tx1 import score_to_text
    from lakhnes.formats.files import load, load_source
    from lakhnes.io import write_text_atomic

    # load: NES-MDB MIDI, VGM/VGZ, FamiTracker text (or TX1/token ids named directly), by name, else content
    score = load_source(src, mapping=mapping) if mapping else load(src)
    text = score_to_text(score)
    if not text:  # never an empty output counted as converted (the readers refuse empty songs too)
        raise InvalidInputError("empty song: nothing to encode")
    write_output(dst, lambda: write_text_atomic(dst, text))


def write_output(dst, write) -> None:
    """Run ``write()``; a failure names the output file ``dst`` (not the input, nor a temporary name)."""
    try:
        write()
    except OSError as e:
        raise InvalidInputError(f"cannot write ({e.strerror or e})", str(dst)) from None


def plan(inputs: list[str], out: Path, suffixes, new_suffix: str) -> tuple[list[tuple[str, Path]], list[str]]:
    """Pair each input file with its output path (folders keep their sub-folder layout; files
    named directly may have any suffix). Returns the jobs and one ``path: reason`` line for
    each input that is missing or whose output another input already takes."""
    jobs, failed, taken = [], [], {}
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            pairs = [(f, f.relative_to(p).parent)
                     for f in sorted(q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(suffixes))]
        elif p.is_file():
            pairs = [(p, Path())]
        else:
            failed.append(f"{s}: no such file or folder")
            continue
        for f, sub in pairs:
            dst = out / sub / (_stem(f.name, suffixes) + new_suffix)
            if dst in taken:
                failed.append(f"{f}: output {dst} is already written from {taken[dst]}")
                continue
            taken[dst] = f
            jobs.append((str(f), dst))
    return jobs, failed


def _stem(name: str, suffixes) -> str:
    low = name.lower()
    for s in sorted(suffixes, key=len, reverse=True):
        if low.endswith(s):
            return name[: -len(s)]
    return Path(name).stem


def convert(args, func, suffixes, new_suffix: str) -> int:
    from lakhnes.batch import run_batch

    if args.workers is not None and args.workers < 1:
        return usage_error("--workers must be at least 1")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        return usage_error(f"{out}: output must be a folder")
    problem = unwritable([out], folder=True)
    if problem:
        fail(problem)
        return 1
    jobs, refused = plan(args.inputs, out, suffixes, new_suffix)
    for line in refused:
        fail(line)
    failed = len(refused)
    ok = 0
    for _, _, err in run_batch(func, jobs, workers=args.workers, desc=args.command):
        if err:
            fail(err)
            failed += 1
        else:
            ok += 1
    return summary(ok, failed)


def run(args) -> int:
    problem = check_map(args.map)
    if problem:
        return usage_error(problem)
    func = functools.partial(_encode, mapping=args.map) if args.map else _encode
    return convert(args, func, MIDI_SUFFIXES if args.map else ENCODE_SUFFIXES, ".tx1.txt")
