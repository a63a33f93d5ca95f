"""``lakhnes generate``: new songs, continuations, new melodies on a rhythm, new voices around kept ones."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from lakhnes.cli.common import (
    add_map_option,
    check_device,
    check_map,
    fail,
    show_mapping,
    unwritable,
    usage_error,
)
from lakhnes.decoding.sampler import WAIT_TEMPERATURE, WAIT_TOP_P

OUT_SUFFIXES = (".wav", ".mid", ".midi", ".tx1.txt", ".png", ".vgm", ".vgz", ".famitracker.txt")
#: new music a song may ask for: without --long, and with it (every song file is capped at one hour)
MAX_SECONDS, MAX_TOKENS = 600.0, 40_000
LONG_SECONDS, LONG_TOKENS = 3600.0, 250_000
#: the shortest request: a shorter one may hold no note at all
MIN_SECONDS, MIN_TOKENS = 1.0, 10
#: songs a run may ask for, and how many are sampled at once (memory grows with a batch, not with --num)
MAX_NUM, BATCH = 1000, 8
#: temperatures other than 0 (greedy) outside this range overflow the softmax or are greedy in all but name
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 10.0


def register(sub) -> None:
    p = sub.add_parser("generate", help="sample NES music (from scratch, --prime, --rhythm or --keep)",
                       description="Sample NES music with a language model. Outputs by extension: "
                                   ".wav, .mid, .tx1.txt, .png (-o may repeat).")
    p.add_argument("-m", "--model", default=None, help="run folder, model folder (one weights file or shards), "
                   ".safetensors, or a packaged model: default, large (default: the shipped model)")
    p.add_argument("-o", "--output", action="append", required=True, metavar="OUT",
                   help="output file (.wav, .mid, .tx1.txt, .png); repeat for several formats")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=None,
                        help="music to generate (default 30); with --rhythm/--keep: use SECONDS of the source "
                             "from --from (default: all of it, which for a 4-minute pop song takes about a minute)")
    length.add_argument("--tokens", type=int, default=None, help="generate this many tokens instead")
    p.add_argument("--long", action="store_true",
                   help=f"allow up to {LONG_SECONDS:.0f} s ({LONG_TOKENS:,} tokens) of new music a song; without it "
                        f"--seconds stops at {MAX_SECONDS:.0f} and --tokens at {MAX_TOKENS:,} (a long song takes minutes)")
    p.add_argument("--temperature", type=float, default=0.95,
                   help="softmax temperature (default 0.95; 0 = greedy)")
    p.add_argument("--wait-temperature", type=float, default=WAIT_TEMPERATURE, metavar="T",
                   help=f"temperature of the wait tokens (the timing) alone: a wait stays as likely, and the mean "
                        f"wait as long, as at --temperature; which wait, sharper below it (default "
                        f"{WAIT_TEMPERATURE:g}; not with --rhythm)")
    p.add_argument("--wait-top-p", type=float, default=WAIT_TOP_P, metavar="P",
                   help=f"the waits alone: only the likeliest holding P of their probability stay, so the song "
                        f"keeps to fewer note lengths (default {WAIT_TOP_P:g}; 1 = all; not with --rhythm)")
    p.add_argument("--top-k", type=int, default=32,
                   help="sample among the k likeliest ids (default 32; 0 = off)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass (default off)")
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed, same songs)")
    p.add_argument("--num", type=int, default=1,
                   help=f"songs to generate, at most {MAX_NUM}, sampled {BATCH} at a time and written as they are done "
                        "(outputs get _1, _2, ...)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--prime", metavar="FILE", help="continue this song (NES MIDI, TX1, or any MIDI)")
    mode.add_argument("--rhythm", metavar="FILE", help="new P1/P2/TR pitches on this song's timing and noise "
                      "(all of FILE unless --from/--to/--seconds say which part)")
    mode.add_argument("--keep", nargs=2, metavar=("VOICES", "FILE"),
                      help="keep these voices of FILE (e.g. P1 or P1,NO) and write the others (all of FILE "
                           "unless --from/--to/--seconds say which part)")
    add_map_option(p)
    p.add_argument("--from", dest="from_s", type=float, default=None, metavar="SECONDS",
                   help="with --rhythm/--keep: start at this second of the source (default 0)")
    p.add_argument("--to", dest="to_s", type=float, default=None, metavar="SECONDS",
                   help="with --rhythm/--keep: stop at this second of the source (default: its end; the whole "
                        "source is the default)")
    p.add_argument("--prime-seconds", type=float, default=None,
                   help="how much of the prime the model reads (default: all of it)")
    p.add_argument("--only-new", action="store_true", help="with --prime: write only the continuation")
    p.add_argument("--voices", default=None, metavar="VOICES",
                   help="the voices the song uses, e.g. P1,P2,TR (default: all four for a new song or a source "
                        "mapped from any MIDI; the prime's with an NES --prime; the source's with --keep): each enters "
                        "within 1 s and rests at most --max-rest; the others stay silent")
    p.add_argument("--max-rest", type=float, default=None, metavar="SECONDS",
                   help="longest rest of a voice the song uses (default 8.4: 99 %% of the voices of NES-MDB's "
                        "train split never rest longer)")
    p.add_argument("--raw-level", action="store_true",
                   help="write WAV at the NES chip's own level (default: normalised to a peak of -1 dBFS)")
    p.add_argument("--no-song-cache", dest="song_cache", action="store_false",
                   help="sample from the network alone: without the song, voice and rhythm caches that make the "
                        "song's own phrases come back (on by default for a model that has them)")
    p.add_argument("--no-voice-cache", dest="voice_cache", action="store_false",
                   help="without the voice cache that brings each voice's melodies back (also transposed)")
    p.add_argument("--no-rhythm-cache", dest="rhythm_cache", action="store_false",
                   help="without the rhythm cache that keeps the song's tempo, drum patterns and rhythms")
    p.add_argument("--rhythm-boost", type=float, default=None, metavar="FACTOR",
                   help="how strongly the rhythm cache keeps the song's rhythms: its odds times FACTOR (default 3)")
    p.add_argument("--cache-boost", type=float, default=None, metavar="FACTOR",
                   help="how strongly the song cache brings the song's own phrases back: its odds times FACTOR "
                        "(default 1: as fitted for perplexity; 2-3: more repetition, fewer pitches)")
    p.add_argument("--runtime", choices=("auto", "numpy", "torch"), default="auto",
                   help="auto (default): numpy on the CPU for a Transformer-XL (no PyTorch needed), torch on a GPU "
                        "or for other models; numpy or torch forces one (the same seed gives the same song in both)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1; numpy: set "
                   "OPENBLAS_NUM_THREADS, default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def output_paths(outputs: list[str], num: int) -> list[list[Path]]:
    """For each song, its output paths: with ``num`` > 1, ``x.wav`` becomes ``x_1.wav``, ``x_2.wav`` ..."""
    songs = []
    for k in range(1, num + 1):
        paths = []
        for o in outputs:
            p = Path(o)
            if num > 1:
                suffix = next(s for s in OUT_SUFFIXES if p.name.lower().endswith(s))
                p = p.with_name(f"{p.name[: -len(suffix)]}_{k}{p.name[len(p.name) - len(suffix):]}")
            paths.append(p)
        songs.append(paths)
    return songs


def save(score, path: Path, peak_db: float | None = -1.0) -> None:
    """Write a score in the format its extension names (via :mod:`lakhnes.formats.files`); WAV with its
    peak at ``peak_db`` dBFS (None: the chip's own level)."""
    from lakhnes.formats import files as export

    export.save(score, path, peak_db=peak_db)


def _check(args) -> str | None:
    problem = check_map(args.map)
    if problem:
        return problem
    if args.map is not None and not (args.prime or args.rhythm or args.keep):
        return "--map applies to the file of --prime, --rhythm or --keep"
    for o in args.output:
        if not o.lower().endswith(OUT_SUFFIXES):
            return f"{o}: unknown output format (use {', '.join(OUT_SUFFIXES)})"
    if not 1 <= args.num <= MAX_NUM:
        return f"--num {args.num} is outside 1-{MAX_NUM}"
    for flag, v in (("--cache-boost", args.cache_boost), ("--rhythm-boost", args.rhythm_boost)):
        if v is not None and not 0 < v <= 1000:
            return f"{flag} {v:g} is outside (0, 1000]"
    only_new = not (args.prime or args.rhythm or args.keep) or args.only_new  # no prime in the song
    if args.tokens is not None and args.tokens < (MIN_TOKENS if only_new else 1):
        return f"--tokens {args.tokens}: ask for at least {MIN_TOKENS if only_new else 1} (a shorter song may " \
               "hold no note)"
    if args.seconds is not None and not args.seconds >= (MIN_SECONDS if only_new else 1e-3):
        return f"--seconds {args.seconds:g}: ask for at least {MIN_SECONDS if only_new else 1e-3:g} s (a shorter " \
               "song may hold no note)"
    if not (args.temperature == 0 or MIN_TEMPERATURE <= args.temperature <= MAX_TEMPERATURE):
        return f"--temperature {args.temperature:g} is outside {MIN_TEMPERATURE:g}-{MAX_TEMPERATURE:g} (or 0: greedy)"
    wt = args.wait_temperature
    if wt is not None and not MIN_TEMPERATURE <= wt <= MAX_TEMPERATURE:
        return f"--wait-temperature {wt:g} is outside {MIN_TEMPERATURE:g}-{MAX_TEMPERATURE:g}"
    if not 0 < args.wait_top_p <= 1:
        return f"--wait-top-p {args.wait_top_p:g} is outside (0, 1]"
    if args.seed is not None and not 0 <= args.seed < 2**63:
        return f"--seed {args.seed} is outside 0-{2**63 - 1}"
    if args.top_k < 0:
        return "--top-k must be >= 0"
    if args.top_p is not None and not 0 < args.top_p <= 1:
        return "--top-p must be in (0, 1]"
    if args.threads is not None and args.threads < 1:
        return "--threads must be at least 1"
    if (args.prime_seconds is not None or args.only_new) and not args.prime:
        return "--prime-seconds and --only-new need --prime"
    if args.prime_seconds is not None and not 0 < args.prime_seconds <= LONG_SECONDS:
        return f"--prime-seconds {args.prime_seconds:g} is outside 0-{LONG_SECONDS:g} s"
    if (args.from_s is not None or args.to_s is not None) and not (args.rhythm or args.keep):
        return "--from and --to apply to --rhythm and --keep (--prime reads the prime's first --prime-seconds)"
    for name, value in (("--from", args.from_s), ("--to", args.to_s)):
        if value is not None and not 0 <= value <= LONG_SECONDS:
            return f"{name} {value:g} is outside 0-{LONG_SECONDS:g} s"
    if args.to_s is not None and args.seconds is not None:
        return "give --to or --seconds, not both (--seconds counts from --from)"
    if args.to_s is not None and not args.to_s > (args.from_s or 0.0):
        return f"--to {args.to_s:g} must be after --from {args.from_s or 0.0:g}"
    if (args.rhythm or args.keep) and args.tokens is not None:
        return "--tokens does not apply to --rhythm or --keep (the length is the source's)"
    if args.rhythm and (args.voices is not None or args.max_rest is not None):
        return "--voices and --max-rest do not apply to --rhythm (the rhythm's voices play, on its timing)"
    if args.max_rest is not None and not 0.1 <= args.max_rest <= LONG_SECONDS:
        return f"--max-rest {args.max_rest:g} is outside 0.1-{LONG_SECONDS:g} s"
    if args.voices is not None:
        from lakhnes.decoding.forced import parse_keep
        from lakhnes.decoding.rules import parse_voices
        from lakhnes.errors import InvalidInputError

        try:
            voices = parse_voices(args.voices, option="--voices")
            kept = parse_keep(args.keep[0]) if args.keep else ()
        except InvalidInputError as e:
            return str(e)
        if kept and set(voices) <= set(kept):
            return f"--voices {','.join(voices)} names no voice for the model to write (--keep keeps {','.join(kept)})"
    for name, value, cap, most, unit in (("--seconds", args.seconds, MAX_SECONDS, LONG_SECONDS, "s"),
                                         ("--tokens", args.tokens, MAX_TOKENS, LONG_TOKENS, "tokens")):
        if value is not None and value > most:
            return f"{name} {value:g}: a song holds at most {most:g} {unit} of new music"
        if value is not None and value > cap and not args.long:
            return f"{name} {value:g} is over {cap:g} {unit}: a long song takes minutes to sample; add --long " \
                   f"to allow up to {most:g} {unit}"
    return None


def run(args) -> int:
    problem = _check(args) or check_device(args.device)
    if problem:
        return usage_error(problem)
    from lakhnes.core.score import SAMPLE_RATE, VOICES
    from lakhnes.errors import InvalidInputError
    from lakhnes.formats.files import load_any

    # before the expensive steps (torch, the model, sampling): the outputs can be written, the source reads
    songs_paths = output_paths(args.output, args.num)
    problem = unwritable(songs_paths[0]) or next((f"{p}: is a folder, not a file" for song in songs_paths[1:]
                                                  for p in song if p.is_dir()), None)
    if problem:
        fail(problem)
        return 1
    source_file = args.prime or args.rhythm or (args.keep[1] if args.keep else None)
    try:
        source, mapping = load_any(source_file, seed=args.seed or 0, mapping=args.map) if source_file else (None, None)
    except InvalidInputError as e:
        fail(str(e))
        return 1
    if not args.quiet:
        show_mapping(source_file, mapping)
    if source is not None and (args.rhythm or args.keep):  # the part of the source --from/--to/--seconds name
        start = round((args.from_s or 0.0) * SAMPLE_RATE)
        if start >= source.end:
            fail(f"{source_file}: --from {args.from_s:g} is past the song's end ({source.seconds:.1f} s)")
            return 1
        span = args.seconds if args.to_s is None else args.to_s - (args.from_s or 0.0)
        stop = source.end if span is None else start + round(span * SAMPLE_RATE)
        if start > 0 or stop < source.end:
            source = source.slice(start, min(source.end, stop))
        if args.rhythm and not source.num_notes:
            fail(f"{source_file}: no notes between {start / SAMPLE_RATE:g} s and {min(source.end, stop) / SAMPLE_RATE:g} s "
                 "(the song's notes make the rhythm; see --from/--to)")
            return 1
    if args.prime and not args.only_new and args.seconds is not None:
        kept = source.seconds if args.prime_seconds is None else min(source.seconds, args.prime_seconds)
        if kept + args.seconds > LONG_SECONDS:
            return usage_error(f"{source_file}: {kept:.0f} s of prime + {args.seconds:g} s is over the one-hour "
                               "limit of a song (use --prime-seconds or --only-new)")
    from lakhnes import generate as G
    from lakhnes.decoding.forced import parse_keep

    try:
        keep = parse_keep(args.keep[0]) if args.keep else None
    except InvalidInputError as e:
        return usage_error(str(e))
    if keep and not any(len(source.notes[v]) for v in keep):
        part = "" if args.from_s is None and args.to_s is None and args.seconds is None else " in the part used"
        fail(f"{source_file}: --keep {','.join(keep)} keeps nothing: the song has no {'/'.join(keep)} notes{part} "
             f"(its voices: {','.join(v for v in VOICES if len(source.notes[v])) or 'none'})")
        return 1
    try:
        runtime, device = G.pick_runtime(args.runtime, args.device, G.model_type(args.model))
        if runtime == "torch" and device == "cpu":
            G.set_threads(args.threads)
        model = G.load_model(args.model, device, runtime) if args.model else G.load_default_model(device, runtime)
        if not args.song_cache:
            model.song_cache = None
        if not args.voice_cache:
            model.voice_cache = None
        if not args.rhythm_cache:
            model.rhythm_cache = None
        if args.cache_boost is not None:
            model.cache_boost = args.cache_boost
        if args.rhythm_boost is not None:
            model.rhythm_boost = args.rhythm_boost
    except InvalidInputError as e:
        fail(str(e))
        return 1
    bar = None if args.quiet else _bar()
    kw = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    seconds = 30.0 if args.seconds is None else args.seconds
    ensemble = {"voices": args.voices}
    if mapping is not None and args.voices is None and not args.rhythm:
        # a MIDI mapped onto the NES voices: a voice its first seconds leave silent (a melody entering
        # late, no drum track) is the mapping's gap, not the arrangement; the model writes all four
        ensemble["voices"] = ",".join(VOICES)
    if args.max_rest is not None:
        ensemble["max_rest"] = args.max_rest

    def batch(first: int, n: int, progress):
        """Songs first+1 .. first+n: the first batch with the seed as given (so --num up to BATCH keeps
        its songs), the others with a seed derived from it and the batch."""
        seed = args.seed if args.seed is None or first == 0 else _batch_seed(args.seed, first)
        opts = dict(kw, seed=seed, num=n, progress=progress)
        if args.rhythm:  # the rhythm's waits are given: no wait temperature
            return G.accompany_rhythm(model, source, **opts)
        opts["wait_temperature"], opts["wait_top_p"] = args.wait_temperature, args.wait_top_p
        if args.prime:
            return G.continue_song(model, source, prime_seconds=args.prime_seconds, only_new=args.only_new,
                                   seconds=seconds, tokens=args.tokens, **ensemble, **opts)
        if keep:
            return G.accompany_voices(model, source, keep, **ensemble, **opts)
        return G.sample(model, seconds=seconds, tokens=args.tokens, **ensemble, **opts)

    failed = 0
    try:
        for first in range(0, args.num, BATCH):
            n = min(BATCH, args.num - first)
            progress = None if bar is None else bar.part(first / args.num, n / args.num)
            try:
                scores = batch(first, n, progress)
            except InvalidInputError as e:
                fail(str(e.with_path(source_file)) if source_file else str(e))
                return 1
            for k, score in enumerate(scores):
                if args.num > 1:
                    score.name = f"{re.sub(r'_[0-9]+$', '', score.name)}_{first + k + 1}"
                failed += not _write_song(score, songs_paths[first + k], None if args.raw_level else -1.0)
            del scores
    finally:
        if bar is not None:
            bar.close()
    return 1 if failed else 0


def _batch_seed(seed: int, first: int) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{seed}:{first}".encode()).digest()[:7], "big")


def _write_song(score, paths: list[Path], peak_db: float | None) -> bool:
    """Write one song to every output, or to none: a song without notes is refused, and when one
    output fails, the others already written are removed. One line per output (or one failure)."""
    from lakhnes.errors import InvalidInputError

    if not score.num_notes:
        fail(f"{paths[0]}: the model wrote no notes in {score.seconds:.1f} s; nothing written (ask for more "
             "--seconds or --tokens)")
        return False
    written = []
    for p in paths:
        try:
            save(score, p, peak_db=peak_db)
        except (InvalidInputError, OSError) as e:
            fail(str(e) if isinstance(e, InvalidInputError) else f"{p}: cannot write ({e.strerror or e})")
            for q in written:
                q.unlink(missing_ok=True)
            return False
        written.append(p)
    for p in paths:
        print(f"{p}  ({score.seconds:.1f} s, {score.num_notes} notes)", file=sys.stderr)
    return True


class _bar:
    """A tqdm bar driven by ``progress(done, total)`` callbacks (``part(start, share)``: the callback of
    one batch, which covers ``share`` of the run from ``start``; both fractions of the whole)."""

    SCALE = 1000

    def __init__(self):
        self.t = None

    def __call__(self, done: int, total: int) -> None:
        self.part(0.0, 1.0)(done, total)

    def part(self, start: float, share: float):
        def progress(done: int, total: int) -> None:
            from tqdm import tqdm

            if self.t is None:
                self.t = tqdm(total=self.SCALE, file=sys.stderr, leave=False, desc="generating",
                              bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
            at = int(self.SCALE * (start + share * min(1.0, done / max(total, 1))))
            if at > self.t.n:
                self.t.update(at - self.t.n)

        return progress

    def close(self) -> None:
        if self.t is not None:
            self.t.close()
