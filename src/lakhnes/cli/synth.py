"""``lakhnes synth``: render an NES score as NES audio, or convert it (MIDI, TX1, PNG)."""

from __future__ import annotations

from lakhnes.cli.common import (
    add_map_option,
    check_map,
    done,
    fail,
    load_song,
    show_mapping,
    unwritable,
    usage_error,
)


def register(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="render IN.mid|IN.tx1.txt as NES audio (.wav) or convert it (.mid, .gm.mid, .tx1.txt, .png)",
        description="Render an NES-MDB MIDI (or any MIDI, mapped onto the NES voices; see --map), TX1 text or token-id (.npy) file with the NES APU model. "
        "Each -o picks its format by extension: .wav (16-bit mono 44.1 kHz), .mid (NES-MDB MIDI), "
        ".gm.mid (General MIDI for any player/DAW), .tx1.txt (TX1 text), .png (piano roll).",
    )
    p.add_argument("input", metavar="IN", help="score: .mid/.midi (NES-MDB, or any MIDI: mapped onto the NES voices), "
                   ".tx1.txt or .npy (token ids)")
    add_map_option(p)
    p.add_argument("-o", "--output", action="append", required=True, metavar="OUT",
                   help="output file; repeat for several formats")
    p.add_argument("--duty", type=int, choices=range(4), metavar="0-3",
                   help="pulse duty for every note: 0-3 = 12.5/25/50/75%% (default: the score's CC12, else 50%%)")
    f = p.add_mutually_exclusive_group()
    f.add_argument("--no-filters", action="store_true", help="leave out the NES output filters (raw mixer level)")
    f.add_argument("--filters", default=None, metavar="LIST",
                   help="apply only these output filters: hp90, hp440 (high-pass), lp14k (low-pass), "
                   "e.g. hp90,lp14k (default: all three)")
    p.add_argument("--mute", default="", metavar="VOICES", help="voices to silence, e.g. P2,NO")
    p.add_argument("--raw-level", action="store_true",
                   help="write WAV at the chip's own level (default: the song's peak at -1 dBFS; muted voices "
                        "keep the full song's gain)")
    p.set_defaults(func=run)


def run(args) -> int:
    from lakhnes.errors import InvalidInputError
    from lakhnes.formats.files import SAVE_SUFFIXES, kind_of, save, without
    from lakhnes.synth import PEAK_DB, parse_filters, parse_mute, render_wav

    try:
        mute = parse_mute(args.mute)
        filters = not args.no_filters if args.filters is None else parse_filters(args.filters)
    except InvalidInputError as e:
        return usage_error(str(e))
    problem = check_map(args.map)
    if problem:
        return usage_error(problem)
    for out in args.output:
        if kind_of(out) in (None, "npy"):
            return usage_error(f"{out}: unknown output type (use one of {', '.join(SAVE_SUFFIXES)})")
    problem = unwritable(args.output)
    if problem:
        fail(problem)
        return 1
    try:
        score, mapping = load_song(args.input, args.map)
    except InvalidInputError as e:
        fail(str(e))
        return 1
    show_mapping(args.input, mapping)
    failed = 0
    for out in args.output:
        try:
            if kind_of(out) == "wav":  # streamed to the file block by block: flat memory at any length
                render_wav(score, out, duty=args.duty, filters=filters, mute=mute,
                           peak_db=None if args.raw_level else PEAK_DB)
            else:
                save(without(score, mute), out)
        except InvalidInputError as e:
            fail(str(e.with_path(args.input)))
            failed += 1
            continue
        except OSError as e:
            fail(f"{out}: cannot write ({e.strerror or e})")
            failed += 1
            continue
        done(out, score.seconds)
    return 1 if failed else 0
