"""LakhNES' four data augmentations on a song's token ids (numpy only).

Each is switchable and driven by a seeded ``numpy.random.Generator``:

- voice swap (p = 0.5): permute which melodic voice (P1, P2, TR) plays which part;
- transpose: shift the melodic voices by a uniform integer in -6..+5;
- speed: scale all times by a uniform factor in [0.95, 1.05], waits re-quantised. By default
  (``speed_mode="grid"``) the factor scales whole 60 Hz frames and each time keeps its offset from
  the frame grid, so a song whose notes sit on the frames NES drivers play on stays on them;
  ``"free"`` scales every tick (LakhNES), ``"off"`` leaves times alone;
- voice subset (p = 0.5): keep a random non-empty subset of the voices that play.

The song goes ids → events → score (:mod:`lakhnes.core.tx1`), its note arrays are transformed as
arrays, and it goes back to ids. Notes that leave a voice's range are dropped (their time
becomes silence, so the TX1 stays valid); so are notes squeezed to zero length by the speed
change. Same-instant events come out in the order P1, P2, TR, NO.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakhnes.core import tx1
from lakhnes.core.score import PITCH_RANGE, VOICES, NesScore

MELODIC = ("P1", "P2", "TR")
FRAME = 735  # ticks of one 60 Hz frame (44100 / 60)
SPEED_MODES = ("grid", "free", "off")


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
    speed_mode: str = "grid"  # "grid": whole frames scaled, offsets kept; "free": every tick scaled

    @property
    def active(self) -> bool:
        return self.swap_voices or self.transpose or self.speed or self.drop_voices


def scale_times(t: np.ndarray, factor: float, mode: str = "grid") -> np.ndarray:
    """Times (ticks) scaled by ``factor``: every tick (``"free"``), or whole 60 Hz frames with each
    time's offset from its nearest frame kept (``"grid"``: on-grid times stay on the grid)."""
    t = np.asarray(t, dtype=np.int64)
    if mode == "free":
        return np.round(t * factor).astype(np.int64)
    frames = np.round(t / FRAME).astype(np.int64)
    return np.round(frames * factor).astype(np.int64) * FRAME + (t - frames * FRAME)


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
    if cfg.speed and cfg.speed_mode != "off":
        a, b = cfg.speed_range
        factor = float(rng.uniform(a, b))
        for v in VOICES:
            n = notes[v].copy()
            n["start"] = scale_times(n["start"], factor, cfg.speed_mode)
            n["end"] = scale_times(n["end"], factor, cfg.speed_mode)
            notes[v] = n[n["end"] > n["start"]]
        end = max(int(scale_times(np.array([end]), factor, cfg.speed_mode)[0]),
                  max((int(notes[v]["end"].max()) for v in VOICES if len(notes[v])), default=0))
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
