"""``lakhnes prepare``: corpora → token shards for training."""

from __future__ import annotations

import json
import sys

from lakhnes.cli.common import fail, unwritable, usage_error


def register(sub) -> None:
    p = sub.add_parser("prepare", help="build token shards from NES-MDB or any MIDI collection (Lakh)")
    corp = p.add_subparsers(dest="corpus", metavar="CORPUS")
    n = corp.add_parser("nesmdb", help="NES-MDB (nesmdb_midi.tar.gz or its folder), official split")
    n.add_argument("source", metavar="SRC", help="nesmdb_midi.tar.gz or the extracted nesmdb_midi folder")
    n.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    n.add_argument("-j", "--workers", type=int, default=None, help="parallel workers (default: all cores)")
    n.set_defaults(func=run_nesmdb)
    g = corp.add_parser("vgm", help="a folder of NES VGM rips (.vgm/.vgz), read as NES-MDB reads them",
                        description="Token shards from NES VGM rips. Files under train/valid/test folders keep "
                                    "that split; the others go to valid by a hash of their name (--valid-percent). "
                                    "DPCM and expansion-chip sound are left out (counted in the manifest); a "
                                    "corrupt or non-NES file is skipped with its reason.")
    g.add_argument("source", metavar="DIR", help="folder of .vgm/.vgz files (searched recursively)")
    g.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    g.add_argument("-j", "--workers", type=int, default=None, help="parallel workers (default: all cores)")
    g.add_argument("--valid-percent", type=float, default=5.0, help="share of unsplit files for valid (default 5)")
    g.set_defaults(func=run_vgm)
    register_lakh(corp)
    p.set_defaults(func=lambda a: usage_error("prepare: name a corpus (nesmdb, vgm or lakh)"))


def run_nesmdb(args) -> int:
    from lakhnes.data.nesmdb import prepare_nesmdb

    return _run(args, lambda: prepare_nesmdb(args.source, args.output, workers=args.workers))


def run_vgm(args) -> int:
    from lakhnes.data.vgm import prepare_vgm

    if not 0 <= args.valid_percent <= 100:
        return usage_error("--valid-percent must be 0-100")
    return _run(args, lambda: prepare_vgm(args.source, args.output, workers=args.workers,
                                          valid_percent=args.valid_percent))


def _run(args, prepare) -> int:
    from lakhnes.errors import InvalidInputError

    if args.workers is not None and args.workers < 1:
        return usage_error("--workers must be at least 1")
    problem = unwritable([args.output], folder=True)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        m = prepare()
    except InvalidInputError as e:
        print(e, file=sys.stderr)
        return 1
    for what, n in m.get("left_out", {}).items():
        print(f"left out: {what} in {n['files']} files", file=sys.stderr)
    for s in m["skipped"]:
        print(f"{s['file']}: {s['reason']}", file=sys.stderr)
    for split, st in m["splits"].items():
        print(f"{split}: {st['songs']} songs, {st['tokens']} tokens, {st['seconds'] / 3600:.2f} h, "
              f"{st['skipped']} skipped")
    print(json.dumps({"output": args.output, "files": m["files"], "skipped": len(m["skipped"])}))
    return 0


def register_lakh(subparsers) -> None:
    """Add ``lakh`` to the ``lakhnes prepare`` sub-commands."""
    p = subparsers.add_parser(
        "lakh",
        help="map any multi-instrument MIDI (e.g. the Lakh MIDI Dataset) to NES token shards",
        description="Map every MIDI file under SRC (a folder, searched recursively, or a .tar.gz) to "
        "up to --max-per-file NES examples (random assignments of monophonic parts to P1/P2/TR, "
        "drums to noise) and write train/valid token shards to OUT. Rerun the same command to "
        "resume an interrupted run. Exit status 0 when a corpus was written, 1 when no file "
        "gave an example, 2 for bad usage.",
    )
    p.add_argument("src", metavar="SRC", help="folder of MIDI files or a .tar.gz of them")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (e.g. data/lakh)")
    p.add_argument("--max-per-file", type=int, default=16, help="examples per file at most (default 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("-j", "--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--valid-percent", type=float, default=5.0,
                   help="percent of files (by hash of their path) in the valid split (default 5)")
    p.add_argument("--midi-out", metavar="DIR", default=None,
                   help="also write every example as NES MIDI under DIR, to listen to the mapping")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_lakh)


def run_lakh(args) -> int:
    from lakhnes.data.prepare_lakh import prepare_lakh
    from lakhnes.errors import InvalidInputError

    if args.workers is not None and args.workers < 1:
        return usage_error(f"--workers must be at least 1 (got {args.workers})")
    problem = unwritable([args.output, args.midi_out], folder=True)
    if problem:
        fail(problem)
        return 1
    try:
        m = prepare_lakh(args.src, args.output, max_per_file=args.max_per_file, seed=args.seed,
                         workers=args.workers, midi_out=args.midi_out, progress=not args.quiet,
                         valid_percent=args.valid_percent)
    except InvalidInputError as e:
        fail(str(e))
        return 2
    reasons = ", ".join(f"{k} {v}" for k, v in m["skipped"].items() if v) or "none"
    print(f"{m['files_read']} files read, {m['files_used']} used, {m['files_skipped']} skipped ({reasons}); "
          f"{m['examples']['train']} train + {m['examples']['valid']} valid examples "
          f"({m['examples_too_short']} too short dropped) -> {args.output}", file=sys.stderr)
    return 0 if m["files_used"] else 1
