"""Building blocks for reading any MIDI onto the NES voices: reading a file (with a one-line
reason when it cannot be used), monophonic lines (skyline), voice ranges, and drum hits as noise.

Shared by the user-file mapping (:mod:`lakhnes.formats.any_midi`) and the Lakh corpus mapping
(:mod:`lakhnes.data.lakh`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lakhnes.core.score import NOTE_DTYPE, PITCH_RANGE
from lakhnes.errors import InvalidInputError
from lakhnes.formats.midi import check_midi_header

#: Why a file yields nothing (keys of the manifest's ``skipped`` counts).
SKIP_REASONS = ("too_large", "corrupt", "bad_times", "too_short", "too_long", "no_parts", "no_examples")


class SkippedFile(InvalidInputError):
    """A file the corpus mapping does not use; ``kind`` is one of ``SKIP_REASONS``."""

    def __init__(self, kind: str, reason: str, path: str | None = None):
        self.kind = kind
        super().__init__(reason, path)

    def with_path(self, path) -> SkippedFile:
        return self if self.path else SkippedFile(self.kind, self.reason, path)


def read_symusic(src, path: str | None, max_bytes: int | None):
    """A MIDI file (path or bytes) as a ``symusic.Score``; ``SkippedFile`` says why not (one line)."""
    import symusic

    try:
        if isinstance(src, (bytes, bytearray)):
            data = bytes(src)
        else:
            size = os.path.getsize(src)
            if max_bytes is not None and size > max_bytes:
                raise SkippedFile("too_large", f"file too large ({size // 1024} KB > {max_bytes // 1024} KB)", path)
            data = Path(src).read_bytes()
    except OSError as e:
        raise SkippedFile("corrupt", f"cannot read file ({e.strerror or e})", path) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise SkippedFile("too_large", f"file too large ({len(data) // 1024} KB > {max_bytes // 1024} KB)", path)
    if data[:4] != b"MThd":
        raise SkippedFile("corrupt", "not a MIDI file (no MThd header)", path)
    try:
        data = check_midi_header(data)
    except InvalidInputError as e:
        raise SkippedFile("corrupt", e.reason, path) from None
    try:
        return symusic.Score.from_midi(data)
    except Exception as e:  # symusic raises plain RuntimeError/ValueError on corrupt data
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SkippedFile("corrupt", f"corrupt MIDI ({msg})", path) from None


def is_monophonic(notes: np.ndarray) -> bool:
    """No note starts before the previous one ends (notes sorted by start)."""
    return bool(np.all(notes["start"][1:] >= notes["end"][:-1]))


def in_range(notes: np.ndarray, voice: str) -> np.ndarray:
    """The notes a voice can play."""
    lo, hi = PITCH_RANGE[voice]
    return notes[(notes["pitch"] >= lo) & (notes["pitch"] <= hi)]


def skyline(notes: np.ndarray) -> np.ndarray:
    """A monophonic line from a polyphonic part: the highest note at each onset, cut at the next."""
    if not len(notes):
        return notes
    order = np.lexsort((-notes["pitch"], notes["start"]))
    n = notes[order]
    first = np.ones(len(n), dtype=bool)
    first[1:] = n["start"][1:] != n["start"][:-1]
    n = n[first].copy()
    n["end"][:-1] = np.minimum(n["end"][:-1], n["start"][1:])
    return n


def drums_to_noise(drums: np.ndarray, keymap: np.ndarray) -> np.ndarray:
    """A drum part on the noise voice: each key becomes ``keymap[key]`` (1-16); of hits that
    start together the lowest key is kept, and a hit is cut where the next one starts."""
    if not len(drums):
        return np.zeros(0, dtype=NOTE_DTYPE)
    order = np.lexsort((drums["pitch"], drums["start"]))
    n = drums[order]
    first = np.ones(len(n), dtype=bool)
    first[1:] = n["start"][1:] != n["start"][:-1]
    n = n[first].copy()
    n["end"][:-1] = np.minimum(n["end"][:-1], n["start"][1:])
    n["pitch"] = keymap[n["pitch"]]
    return n
