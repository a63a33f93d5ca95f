"""LakhNES' four data augmentations on a song's token ids (numpy only).

Each is switchable and driven by a seeded ``numpy.random.Generator``:

- voice swap (p = 0.5): permute which melodic voice (P1, P2, TR) plays which part;
- transpose: shift the melodic voices by a uniform integer in -6..+5;
- speed: scale all times by a uniform factor in [0.95, 1.05], waits re-quantised;
- voice subset (p = 0.5): keep a random non-empty subset of the voices that play.

The song goes ids → events → score (:mod:`lakhnes.tx1`), its note arrays are transformed as
arrays, and it goes back to ids. Notes that leave a voice's range are dropped (their time
becomes silence, so the TX1 stays valid); so are notes squeezed to zero length by the speed
change. Same-instant events come out in the order P1, P2, TR, NO.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakhnes import tx1
from lakhnes.score import PITCH_RANGE, VOICES, NesScore

MELODIC = ("P1", "P2", "TR")


@dataclass
class AugmentConfig:
    """Which augmentations run, and their ranges."""

    swap_voices: bool = True
    transpose: bool = True
    speed: bool = True
    drop_voices: bool = True
    transpose_range: tuple[int, int] = (-6, 5)  # inclusive
    speed_range: tuple[float, float] = (0.95, 1.05)
    p_swap: float = 0.5
    p_drop: float = 0.5

    @property
    def active(self) -> bool:
        return self.swap_voices or self.transpose or self.speed or self.drop_voices


def _in_range(notes: np.ndarray, voice: str) -> np.ndarray:
    lo, hi = PITCH_RANGE[voice]
    return notes[(notes["pitch"] >= lo) & (notes["pitch"] <= hi)]


def augment_score(score: NesScore, rng: np.random.Generator, cfg: AugmentConfig | None = None) -> NesScore:
    """A randomly augmented copy of a score's notes (volume/timbre curves are not carried)."""
    cfg = cfg or AugmentConfig()
    notes = {v: score.notes[v] for v in VOICES}
    if cfg.swap_voices and rng.random() < cfg.p_swap:
        perm = rng.permutation(3)
        notes = {**notes, **{MELODIC[i]: _in_range(notes[MELODIC[j]], MELODIC[i]) for i, j in enumerate(perm)}}
    if cfg.transpose:
        lo, hi = cfg.transpose_range
        shift = int(rng.integers(lo, hi + 1))
        if shift:
            for v in MELODIC:
                n = notes[v].copy()
                n["pitch"] += shift
                notes[v] = _in_range(n, v)
    end = score.end
    if cfg.speed:
        a, b = cfg.speed_range
        factor = float(rng.uniform(a, b))
        for v in VOICES:
            n = notes[v].copy()
            n["start"] = np.round(n["start"] * factor)
            n["end"] = np.round(n["end"] * factor)
            notes[v] = n[n["end"] > n["start"]]
        end = int(round(end * factor))
    if cfg.drop_voices and rng.random() < cfg.p_drop:
        playing = [v for v in VOICES if len(notes[v])]
        if playing:
            while True:  # uniform over the non-empty subsets of the playing voices
                keep = rng.random(len(playing)) < 0.5
                if keep.any():
                    break
            for v, k in zip(playing, keep, strict=True):
                if not k:
                    notes[v] = notes[v][:0]
    return NesScore(notes=notes, end=end, name=score.name)


def augment_ids(ids: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig | None = None) -> np.ndarray:
    """An augmented copy of a song's ids (``<S> … <S>``). Returns the song unchanged when nothing
    is switched on, or when augmentation would leave it without notes."""
    cfg = cfg or AugmentConfig()
    if not cfg.active:
        return np.asarray(ids, dtype=np.uint16)
    score = tx1.events_to_score(tx1.ids_to_events(ids))
    out = augment_score(score, rng, cfg)
    if out.num_notes == 0:
        return np.asarray(ids, dtype=np.uint16)
    return tx1.song_ids(tx1.score_to_events(out))
