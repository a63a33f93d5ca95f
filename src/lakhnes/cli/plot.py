"""``lakhnes plot``: draw an NES score as a four-lane piano roll (PNG)."""

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
    p = sub.add_parser("plot", help="piano roll of IN.mid|IN.tx1.txt as PNG")
    p.add_argument("input", metavar="IN", help="score: .mid/.midi (NES-MDB, or any MIDI: mapped onto the NES voices), "
                   ".tx1.txt or .npy (token ids)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png", help="PNG file to write")
    add_map_option(p)
    p.add_argument("--title", default=None, help="figure title (default: the file's name)")
    p.add_argument("--highlight", default=None, metavar="A-B|VOICES",
                   help="shade a time span in seconds (e.g. 0-8) or voices (e.g. P1,TR)")
    p.set_defaults(func=run)


def _highlight(text: str | None):
    if not text:
        return None
    if "-" in text:
        a, _, b = text.partition("-")
        try:
            return float(a), float(b)
        except ValueError:
            raise ValueError(f"--highlight {text!r}: expected START-END in seconds or voices like P1,TR") from None
    from lakhnes.core.score import VOICES

    voices = [v.strip().upper() for v in text.split(",") if v.strip()]
    bad = [v for v in voices if v not in VOICES]
    if bad:
        raise ValueError(f"--highlight: unknown voice {bad[0]!r} (voices are {', '.join(VOICES)})")
    return voices


def run(args) -> int:
    from lakhnes.errors import InvalidInputError
    from lakhnes.formats.png import piano_roll

    if not args.output.lower().endswith(".png"):
        return usage_error(f"{args.output}: the piano roll is written as .png")
    try:
        highlight = _highlight(args.highlight)
    except ValueError as e:
        return usage_error(str(e))
    problem = check_map(args.map)
    if problem:
        return usage_error(problem)
    problem = unwritable([args.output])
    if problem:
        fail(problem)
        return 1
    try:
        score, mapping = load_song(args.input, args.map)
        show_mapping(args.input, mapping)
        piano_roll(score, args.output, title=args.title or score.name, highlight=highlight)
    except InvalidInputError as e:
        fail(str(e.with_path(args.input)))
        return 1
    except OSError as e:
        fail(f"{args.output}: cannot write ({e.strerror or e})")
        return 1
    done(args.output, score.seconds)
    return 0
