"""``lakhnes decode``: TX1 text → NES-MDB MIDI."""

from __future__ import annotations

from lakhnes.cli.encode import convert, write_output


def register(sub) -> None:
    p = sub.add_parser("decode", help=".tx1.txt files or folders → NES-MDB MIDI")
    p.add_argument("inputs", nargs="+", metavar="IN", help=".tx1.txt files, or folders searched recursively for *.tx1.txt")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument("-j", "--workers", type=int, default=None, help="parallel workers (default: all cores)")
    p.set_defaults(func=run)


def _decode(job) -> None:
    src, dst = job
    from lakhnes.core.tx1 import read_tx1
    from lakhnes.formats.midi import write_midi

    score = read_tx1(src)  # refuses an empty song (e.g. only <S>), as synth and --prime do
    write_output(dst, lambda: write_midi(score, dst))


def run(args) -> int:
    return convert(args, _decode, (".tx1.txt",), ".mid")
