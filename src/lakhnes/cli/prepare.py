"""``lakhnes prepare``: corpora → token shards for training."""

from __future__ import annotations

import json
import sys

from lakhnes.cli.common import unwritable, usage_error


def register(sub) -> None:
    p = sub.add_parser("prepare", help="build token shards from NES-MDB or any MIDI collection (Lakh)")
    corp = p.add_subparsers(dest="corpus", metavar="CORPUS")
    n = corp.add_parser("nesmdb", help="NES-MDB (nesmdb_midi.tar.gz or its folder), official split")
    n.add_argument("source", metavar="SRC", help="nesmdb_midi.tar.gz or the extracted nesmdb_midi folder")
    n.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    n.add_argument("-j", "--workers", type=int, default=None, help="parallel workers (default: all cores)")
    n.set_defaults(func=run_nesmdb)
    try:
        from lakhnes.data.prepare_lakh import register_lakh
    except ModuleNotFoundError:
        pass
    else:
        register_lakh(corp)
    p.set_defaults(func=lambda a: usage_error("prepare: name a corpus (nesmdb or lakh)"))


def run_nesmdb(args) -> int:
    from lakhnes.data.nesmdb import prepare_nesmdb
    from lakhnes.errors import InvalidInputError

    if args.workers is not None and args.workers < 1:
        return usage_error("--workers must be at least 1")
    problem = unwritable([args.output], folder=True)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        m = prepare_nesmdb(args.source, args.output, workers=args.workers)
    except InvalidInputError as e:
        print(e, file=sys.stderr)
        return 1
    for s in m["skipped"]:
        print(f"{s['file']}: {s['reason']}", file=sys.stderr)
    for split, st in m["splits"].items():
        print(f"{split}: {st['songs']} songs, {st['tokens']} tokens, {st['seconds'] / 3600:.2f} h, "
              f"{st['skipped']} skipped")
    print(json.dumps({"output": args.output, "files": m["files"], "skipped": len(m["skipped"])}))
    return 0
