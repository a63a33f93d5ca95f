"""``lakhnes stats``: music statistics of songs (generated vs real), as a table and histograms."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lakhnes.cli.common import (
    add_map_option,
    check_map,
    expand_inputs,
    fail,
    show_mapping,
    summary,
    unwritable,
    usage_error,
)


def register(sub) -> None:
    p = sub.add_parser("stats", help="music statistics of songs, optionally vs a reference set (table + PNG)")
    p.add_argument("inputs", nargs="+", metavar="DIR_OR_FILES",
                   help=".mid/.midi (NES-MDB, or any MIDI: mapped onto the NES voices)/.tx1.txt files or folders")
    p.add_argument("--vs", nargs="+", metavar="REFERENCE", help="reference songs to compare with")
    p.add_argument("-o", "--output", metavar="TABLE.md", help="write the Markdown table here (default: print)")
    p.add_argument("--png", metavar="HIST.png", help="write histograms of every statistic, sets overlaid")
    p.add_argument("--json", metavar="OUT", help="write per-song values and summaries as JSON")
    p.add_argument("--name", help="label of the inputs (default: the folder name)")
    p.add_argument("--vs-name", help="label of the reference (default: the folder name)")
    p.add_argument("--measure-s", type=float, default=2.0, help="measure length for groove consistency (s)")
    p.add_argument("--grid", type=int, default=16, help="grid steps per measure for groove consistency")
    add_map_option(p)
    p.set_defaults(func=run)


def _label(inputs: list[str], given: str | None, default: str) -> str:
    if given:
        return given
    return Path(inputs[0]).resolve().name if len(inputs) == 1 and Path(inputs[0]).is_dir() else default


def run(args) -> int:
    from lakhnes.evaluation import stats
    from lakhnes.io import write_text_atomic

    if args.measure_s <= 0 or args.grid < 1:
        return usage_error("--measure-s must be > 0 and --grid >= 1")
    problem = check_map(args.map)
    if problem:
        return usage_error(problem)
    problem = unwritable([args.output, args.png, args.json])
    if problem:
        fail(problem)
        return 1
    groups = [(args.inputs, _label(args.inputs, args.name, "songs"))]
    if args.vs:
        groups.append((args.vs, _label(args.vs, args.vs_name, "reference")))
    sets, failed, measured = {}, 0, 0
    for inputs, label in groups:
        files, missing = expand_inputs(inputs, stats.SUFFIXES)
        for m in missing:
            fail(f"{m}: no such file or folder")
        if not files:
            return usage_error(f"no .mid/.midi/.tx1.txt files in {' '.join(inputs)}")
        rows, bad = stats.collect(files, args.measure_s, args.grid, on_error=fail, progress=True,
                                  mapping=args.map, on_mapping=show_mapping)
        while label in sets:
            label += "'"
        sets[label] = rows
        failed += bad + len(missing)
        measured += len(rows)
    table = stats.markdown_table(sets)
    if args.output:
        write_text_atomic(args.output, table)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(table, end="")
    if args.png:
        stats.plot_histograms(sets, args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    if args.json:
        doc = {"measure_s": args.measure_s, "grid": args.grid,
               "sets": {n: {"summary": stats.summarize(r), "songs": r} for n, r in sets.items()}}
        write_text_atomic(args.json, json.dumps(doc, indent=1, allow_nan=True) + "\n")
    return summary(measured, failed, "measured")
