"""NES scores: four monophonic voices with sample-accurate notes (NES-MDB MIDI I/O: formats.midi).

Times are in samples at 44.1 kHz (one NES-MDB MIDI tick). A voice's notes are a numpy
structured array (``NOTE_DTYPE``) sorted by start; the per-frame volume (CC11) and timbre
(CC12, pulse duty 0-3) curves are arrays of ``CTRL_DTYPE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lakhnes.errors import InvalidInputError

SAMPLE_RATE = 44100
VOICES = ("P1", "P2", "TR", "NO")
#: Inclusive MIDI pitch range of each voice (noise: NES-MDB noise types 1-16).
PITCH_RANGE = {"P1": (33, 108), "P2": (33, 108), "TR": (21, 108), "NO": (1, 16)}
#: General MIDI programs NES-MDB uses for the four tracks (noise on the drum channel).
PROGRAMS = {"P1": 80, "P2": 81, "TR": 38, "NO": 121}
#: Velocity a note gets when the source carries no dynamics (NES-MDB uses 1 for triangle).
DEFAULT_VELOCITY = {"P1": 15, "P2": 15, "TR": 1, "NO": 15}
CC_VOLUME, CC_TIMBRE = 11, 12
MAX_MIDI_BYTES = 8 * 1024 * 1024
#: Longest song accepted (samples): one hour.
MAX_SAMPLES = 3600 * SAMPLE_RATE

NOTE_DTYPE = np.dtype([("start", "<i8"), ("end", "<i8"), ("pitch", "<i2"), ("velocity", "<i2")])
CTRL_DTYPE = np.dtype([("time", "<i8"), ("value", "<i2")])


def _empty(dtype) -> np.ndarray:
    return np.zeros(0, dtype=dtype)


def _voice_dict(dtype) -> dict[str, np.ndarray]:
    return {v: _empty(dtype) for v in VOICES}


@dataclass
class NesScore:
    """An NES score: notes, volume and timbre curves per voice, and the end time (samples)."""

    notes: dict[str, np.ndarray] = field(default_factory=lambda: _voice_dict(NOTE_DTYPE))
    end: int = 0
    volume: dict[str, np.ndarray] = field(default_factory=lambda: _voice_dict(CTRL_DTYPE))
    timbre: dict[str, np.ndarray] = field(default_factory=lambda: _voice_dict(CTRL_DTYPE))
    name: str = ""

    @property
    def seconds(self) -> float:
        return self.end / SAMPLE_RATE

    @property
    def num_notes(self) -> int:
        return sum(len(n) for n in self.notes.values())

    @property
    def is_empty(self) -> bool:
        """No notes and no length: nothing to hear, encode or continue (every reader refuses it)."""
        return self.end <= 0 and not self.num_notes

    def __eq__(self, other) -> bool:
        if not isinstance(other, NesScore) or self.end != other.end:
            return False
        return all(
            np.array_equal(a[v], b[v])
            for a, b in ((self.notes, other.notes), (self.volume, other.volume), (self.timbre, other.timbre))
            for v in VOICES
        )

    def check(self) -> None:
        """Raise ``InvalidInputError`` unless every voice is sorted, monophonic and in range."""
        for v in VOICES:
            n = self.notes[v]
            if not len(n):
                continue
            if np.any(n["end"] <= n["start"]):
                i = int(np.argmax(n["end"] <= n["start"]))
                raise InvalidInputError(f"voice {v}: empty note at sample {n['start'][i]}")
            overlap = n["start"][1:] < n["end"][:-1]
            if np.any(overlap):
                i = int(np.argmax(overlap)) + 1
                raise InvalidInputError(
                    f"voice {v} is polyphonic: a note starts at sample {n['start'][i]} "
                    f"({n['start'][i] / SAMPLE_RATE:.3f} s) before the previous one ends"
                )
            lo, hi = PITCH_RANGE[v]
            bad = (n["pitch"] < lo) | (n["pitch"] > hi)
            if np.any(bad):
                i = int(np.argmax(bad))
                raise InvalidInputError(
                    f"voice {v}: pitch {n['pitch'][i]} at {n['start'][i] / SAMPLE_RATE:.3f} s "
                    f"is outside {lo}-{hi}"
                )

    def slice(self, start: int, stop: int) -> NesScore:
        """The part of the score in [start, stop) samples, shifted to time 0 (notes clipped)."""
        notes, volume, timbre = {}, {}, {}
        for v in VOICES:
            n = self.notes[v]
            keep = n[(n["end"] > start) & (n["start"] < stop)].copy()
            keep["start"] = np.maximum(keep["start"], start) - start
            keep["end"] = np.minimum(keep["end"], stop) - start
            notes[v] = keep
            for src, dst in ((self.volume, volume), (self.timbre, timbre)):
                c = src[v]
                # keep the value in force at `start`, then the changes inside the window
                before = c[c["time"] <= start]
                inside = c[(c["time"] > start) & (c["time"] < stop)].copy()
                head = before[-1:].copy()
                head["time"] = start
                both = np.concatenate([head, inside])
                both["time"] -= start
                dst[v] = both
        return NesScore(notes, max(0, min(stop, self.end) - start), volume, timbre, self.name)


def make_notes(start, end, pitch, velocity=15) -> np.ndarray:
    """Build a ``NOTE_DTYPE`` array from columns (scalars broadcast)."""
    start = np.asarray(start, dtype=np.int64)
    out = np.zeros(start.shape[0], dtype=NOTE_DTYPE)
    out["start"], out["end"], out["pitch"], out["velocity"] = start, end, pitch, velocity
    return out


def too_long(samples: int) -> str:
    """The one reason every reader gives for a song over ``MAX_SAMPLES``."""
    return f"song too long ({samples / SAMPLE_RATE:.0f} s; the limit is {MAX_SAMPLES // SAMPLE_RATE} s)"
