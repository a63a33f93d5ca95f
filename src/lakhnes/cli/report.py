"""``lakhnes report``: the perplexity table of every evaluated model (Markdown + JSON)."""

from __future__ import annotations

import sys

from lakhnes.cli.common import fail, unwritable, usage_error

#: a user's results (``lakhnes eval``'s default); the project's table: ``lakhnes report results/evals -o results/table.md``
RESULTS = "lakhnes-results/evals"
TABLE = "lakhnes-results/table.md"


def register(sub) -> None:
    p = sub.add_parser("report", help="table of every `lakhnes eval` result: parameters, epochs, valid/test PPL")
    p.add_argument("inputs", nargs="*", metavar="RESULTS",
                   help=f"result JSON files or folders (default {RESULTS})")
    p.add_argument("-o", "--output", default=TABLE, metavar="TABLE.md",
                   help=f"Markdown table (default {TABLE})")
    p.add_argument("--json", default=None, metavar="OUT",
                   help="JSON rows (default: beside the table, .json)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from lakhnes.errors import InvalidInputError
    from lakhnes.evaluation.report import find_results, write_report

    try:
        results, bad = find_results(args.inputs or [RESULTS])
    except InvalidInputError as e:
        return usage_error(str(e))
    for b in bad:
        fail(b)
    if not results:
        return usage_error("no eval results found (run `lakhnes eval ...` first)")
    out = Path(args.output)
    js = args.json or out.with_suffix(".json")
    problem = unwritable([out, js])
    if problem:
        fail(problem)
        return 1
    rows = write_report(results, out, js)
    print(out.read_text(), end="")
    print(f"wrote {out} and {js} ({len(rows)} models from {len(results)} results)", file=sys.stderr)
    return 1 if bad else 0
