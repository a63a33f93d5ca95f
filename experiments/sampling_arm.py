"""Sampling arms for the realism benchmark: N songs from a model with the default sampler changed in
one way, into a folder for ``benchmarks/bench_realism.py --songs DIR``.

- ``--floor F``: the wait temperature reshapes only the waits of at least F samples (the rhythm);
- ``--cache-boost C``: the song cache's odds multiplied by C (``lakhnes generate --cache-boost``):
  more of the song's own continuations, less of the network's;
- ``--voice-cache MU.json|off``: the voice cache (:mod:`lakhnes.models.voice_cache`) with that mu
  table (a JSON list), or off;
- ``--rhythm-boost R``: the rhythm cache's odds (:mod:`lakhnes.models.rhythm_cache`) multiplied by R
  (``lakhnes generate --rhythm-boost``; 0: the rhythm cache off);
- ``--class-temp T``: each kind of event at the network's own odds at T (:mod:`class_calibrated`);
- ``--opening K [--opening-waits W]``: the song's first K steps at the network's own odds (:mod:`opening`);
- ``--activity S``: the real-length prior (:class:`lakhnes.decoding.rules.Activity`) at strength S
  (0: off);
- ``--lattice TOL``: events on the NES frame lattice (:mod:`frame_lattice`);
- ``--cycles S``: the real-cycle-length prior (:class:`lakhnes.decoding.rules.Cycles`) at strength S
  (0: off);
- ``--pulse S``: the rhythm-vocabulary prior (:class:`lakhnes.decoding.rules.Pulse`) at strength S
  (0: off);
- ``--key S``: the key prior (:class:`lakhnes.decoding.rules.Key`, not a default rule) at strength S;
- ``--max-onsets N``: at most N note starts per voice in any second (:class:`lakhnes.decoding.rules.NoteRate`;
  a probe of how much the busiest songs give away);
- ``--allow-reattack``: same-pitch re-attacks not masked (a probe: where their probability went);
- ``--no-caches``: the network alone;
- ``--voice-boost F``: the voice cache's odds mu / (1 - mu) multiplied by F (more of the song's own
  melodic turns);
- ``--mem-len M``: the network's memory while generating (the shipped config's: 512);
- ``--activity-notes-only``: that prior on held notes only (no push on resting voices);
- ``--activity-rest P1,P2,TR``: that prior on the rests of these voices only (held notes: all);
- ``--entry S``: the named voices enter within S seconds (:class:`lakhnes.decoding.rules.Ensemble`; default 1);
- ``--max-rest X|none``: the longest rest of a voice (``lakhnes generate --max-rest``);
- ``--voices P1,P2,TR``: as in ``lakhnes generate``;
- ``--voice-sets real``: each song's voices drawn from the train split's voice sets (songs of at
  least 20 s, the voices that play in their first 30 s); the others stay silent;
- ``--mute`` (with ``--voices`` or ``--voice-sets``): the model writes all four voices (the songs of
  the same command without them) and the song leaves the others out;
- ``--wait-top-p P``: as in ``lakhnes generate`` (1: every wait, sharpened with the tempo kept: the
  ``--keep-pace`` arm of before the nucleus);
- ``--temperature``, ``--wait-temperature``, ``--top-k``: as in ``lakhnes generate``.

    python experiments/sampling_arm.py --floor 44 --num 40 --out runs/arms/floor44
    python experiments/sampling_arm.py --cache-boost 3 --num 40 --out runs/arms/boost3
    python benchmarks/bench_realism.py --songs runs/arms/boost3 --json results/realism/arms/boost3.json
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from functools import partial
from pathlib import Path

from lakhnes.core.vocab import IS_WAIT, WAIT_OF
from lakhnes.decoding import rules
from lakhnes.decoding import sampler as S
from lakhnes.decoding.rules import MAX_REST_S


def _opening_waits(text: str) -> float | str:
    """``--opening-waits``: 'shaped' or a wait temperature > 0."""
    if text == "shaped":
        return text
    if not float(text) > 0:
        raise ValueError(text)
    return float(text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", default=None, help="model folder (default: the shipped model)")
    ap.add_argument("--floor", type=int, default=None)
    ap.add_argument("--cache-boost", type=float, default=1.0)
    ap.add_argument("--temperature", type=float, default=0.95)
    ap.add_argument("--wait-temperature", type=float, default=S.WAIT_TEMPERATURE)
    ap.add_argument("--top-k", type=int, default=32)
    ap.add_argument("--num", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--voice-cache", default=None, help="a JSON list of mu values, or off")
    ap.add_argument("--rhythm-boost", type=float, default=None, help="default: lakhnes generate's")
    ap.add_argument("--class-temp", type=float, default=None,
                    help="class-calibrated sampling (experiments/class_calibrated.py) at this temperature")
    ap.add_argument("--command-seeds", action="store_true",
                    help="batch c of 8 songs uses seed + c, as bench_realism.py --gen-batch 8 (default: seed + 8c)")
    ap.add_argument("--opening", type=int, default=None, help="the first K steps at the network's own odds "
                    "(experiments/opening.py)")
    ap.add_argument("--opening-waits", type=_opening_waits, default=None,
                    help="with --opening: a wait temperature, or 'shaped'")
    ap.add_argument("--activity", type=float, default=None, help="the Activity prior's strength (0: off)")
    ap.add_argument("--activity-notes-only", action="store_true", help="the Activity prior on held notes only, not on rests")
    ap.add_argument("--activity-rest", type=lambda x: tuple(x.split(",")), default=None,
                    help="the Activity prior on the rests of these voices only")
    ap.add_argument("--max-rest", type=lambda x: None if x == "none" else float(x), default=MAX_REST_S)
    ap.add_argument("--lattice", type=float, default=None, help="frame-lattice timing (experiments/frame_lattice.py), tolerance in samples")
    ap.add_argument("--cycles", type=float, default=None, help="the Cycles prior's strength (0: off)")
    ap.add_argument("--pulse", type=float, default=None, help="the Pulse prior's strength (0: off)")
    ap.add_argument("--key", type=float, default=None, help="add the Key prior at this strength")
    ap.add_argument("--entry", type=float, default=None, help="seconds within which the named voices enter")
    ap.add_argument("--max-onsets", type=int, default=None, help="note starts per voice per second (NoteRate)")
    ap.add_argument("--allow-reattack", action="store_true", help="same-pitch re-attacks not masked (a probe)")
    ap.add_argument("--no-caches", action="store_true", help="the network alone (song, voice and rhythm caches off)")
    ap.add_argument("--voice-boost", type=float, default=1.0)
    ap.add_argument("--mem-len", type=int, default=None, help="generation memory (default: the config's)")
    ap.add_argument("--voices", default=None, help="the voices the songs use (lakhnes generate --voices)")
    ap.add_argument("--voice-sets", choices=["real"], default=None, help="each song's voices drawn like the train split's")
    ap.add_argument("--mute", action="store_true",
                    help="with --voices or --voice-sets: write all four voices, then leave the others out of the song")
    ap.add_argument("--wait-top-p", type=float, default=S.WAIT_TOP_P)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.lattice is not None:
        import frame_lattice

        frame_lattice.install(a.lattice)
    if a.cycles is not None:
        rules.Cycles.__init__.__defaults__ = (a.cycles,)
    if a.pulse is not None:
        rules.Pulse.__init__.__defaults__ = (a.pulse,)
    extra = [rules.Key(a.key)] if a.key else []
    if extra:  # not default rules: added to the song's rules
        import lakhnes.generate as G

        base = G.default_rules
        G.default_rules = lambda *args, **kw: base(*args, **kw) + extra
    if a.entry is not None:
        rules.default_rules.__kwdefaults__["entry"] = a.entry
    if a.max_onsets is not None:
        rules.NoteRate.__init__.__defaults__ = (a.max_onsets, rules.RATE_WINDOW)
    if a.allow_reattack:
        rules.NoReattack.forbid = lambda self, s: []
    if a.activity is not None or a.activity_notes_only or a.activity_rest:  # default_rules passes the named voices
        init, strength = rules.Activity.__init__, rules.ACTIVITY if a.activity is None else a.activity
        rest = () if a.activity_notes_only else a.activity_rest
        rules.Activity.__init__ = lambda self, named=rules.VOICES, _=None: init(
            self, named if rest is None else [v for v in named if v in rest], strength)  # (): no push on resting voices
    if a.opening is not None:
        import opening

        opening.install(a.opening, a.opening_waits)
    if a.class_temp is not None:
        from class_calibrated import install

        install(a.class_temp)
    if a.floor:  # the general path reshapes through _rescale_waits (the one-row fast path does not)
        S._rescale_waits = partial(S._rescale_waits, waits=IS_WAIT & (WAIT_OF >= a.floor))
        S._pick_row = lambda *args: None
    from lakhnes.formats.midi import write_midi
    from lakhnes.generate import load_default_model, load_model, sample

    model = load_default_model(runtime="numpy") if a.model is None else load_model(a.model, runtime="numpy")
    model.cache_boost = a.cache_boost
    if a.no_caches:
        model.song_cache = model.voice_cache = model.rhythm_cache = None
    if a.voice_boost != 1 and model.voice_cache is not None:
        from lakhnes.models.song_cache import boosted

        model.voice_cache = boosted(model.voice_cache, a.voice_boost)
    if a.mem_len is not None:
        model.config.mem_len = a.mem_len
    if a.voice_cache:
        import json

        model.voice_cache = None if a.voice_cache == "off" else json.loads(Path(a.voice_cache).read_text())
    if a.rhythm_boost == 0:
        model.rhythm_cache = None
    model.rhythm_boost = a.rhythm_boost
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    kw = dict(seconds=a.seconds, temperature=a.temperature, top_k=a.top_k or None,
              wait_temperature=a.wait_temperature, wait_top_p=a.wait_top_p, max_rest=a.max_rest, voices=a.voices)
    sets = _draw_voice_sets(a.num, a.seed) if a.voice_sets else [a.voices] * a.num
    if a.mute:  # the songs of the plain command (all four voices), the others' notes left out
        kw["voices"] = None
    elif a.voice_sets:
        for k, vs in enumerate(sorted(set(sets))):  # one batch per voice set, songs keep their numbers
            idx = [i for i, s in enumerate(sets) if s == vs]
            for first in range(0, len(idx), 8):
                part = idx[first:first + 8]
                songs = sample(model, seed=a.seed + 1000 * k + first, num=len(part), **(kw | {"voices": vs}))
                for i, song in zip(part, songs, strict=True):
                    write_midi(song, out / f"song_{i + 1:03d}.mid")
            print(f"{vs}: {len(idx)} songs", flush=True)
        return
    for first in range(0, a.num, 8):
        n = min(8, a.num - first)
        songs = sample(model, seed=a.seed + (first // 8 if a.command_seeds else first), num=n, **kw)
        for k, song in enumerate(songs):
            keep = sets[first + k]
            if a.mute and keep:
                song = replace(song, notes={v: x if v in keep.split(",") else x[:0] for v, x in song.notes.items()})
            write_midi(song, out / f"song_{first + k + 1:03d}.mid")
        print(f"{first + n}/{a.num}", flush=True)


def _draw_voice_sets(num: int, seed: int) -> list[str]:
    """``num`` voice sets drawn from those of the train split's songs of at least 20 s (the voices
    that start a note in their first 30 s)."""
    from collections import Counter

    import numpy as np

    from lakhnes.core.score import SAMPLE_RATE
    from lakhnes.core.vocab import IS_WAIT, WAIT_OF
    from lakhnes.generate import voices_of

    ids, off = np.load("data/nesmdb/train.npy"), np.load("data/nesmdb/train.offsets.npy")
    count = Counter()
    for a, b in zip(off[:-1], off[1:], strict=True):
        s = ids[a:b]
        t = np.cumsum(np.where(IS_WAIT[s], WAIT_OF[s], 0))
        if t[-1] >= 20 * SAMPLE_RATE:
            count[",".join(voices_of(s[t < 30 * SAMPLE_RATE]))] += 1
    sets, n = list(count), np.array(list(count.values()), dtype=float)
    return [sets[i] for i in np.random.default_rng(seed).choice(len(sets), size=num, p=n / n.sum())]


if __name__ == "__main__":
    main()
