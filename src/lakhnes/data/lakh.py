"""Any multi-instrument MIDI → NES scores: the LakhNES mapping used to pre-train on Lakh.

A file is read once into *parts* (one per MIDI track, times in samples at 44.1 kHz): melodic
parts that are monophonic and reach the NES range, and drum parts. Each *example* is a random
assignment of distinct melodic parts to the pulse and triangle voices (notes outside a
voice's range dropped) plus one drum part on the noise voice, each drum sound (MIDI key)
mapped to a random noise type 1-16. Everything per part is a numpy operation.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lakhnes.core.score import (
    DEFAULT_VELOCITY,
    MAX_SAMPLES,
    PITCH_RANGE,
    SAMPLE_RATE,
    NesScore,
    make_notes,
    too_long,
)
from lakhnes.formats.midi import tick_to_sample
from lakhnes.formats.midi_parts import (  # re-exported: the corpus mapping's building blocks
    SKIP_REASONS,
    SkippedFile,
    drums_to_noise,
    in_range,
    is_monophonic,
    read_symusic,
    skyline,
)

#: Corpus filters (the paper's): file size, song length; examples are clipped to CLIP_SECONDS.
MAX_BYTES = 512 * 1024
MIN_SECONDS, MAX_SECONDS = 5.0, 600.0
CLIP_SECONDS = 180.0
MELODIC_VOICES = ("P1", "P2", "TR")
#: Pitches any melodic NES voice can play (a part must reach them to be kept).
NES_LOW = min(PITCH_RANGE[v][0] for v in MELODIC_VOICES)
NES_HIGH = max(PITCH_RANGE[v][1] for v in MELODIC_VOICES)
_ENUMERATE_LIMIT = 4096  # enumerate all 3-permutations below this many, else sample them


@dataclass
class Parts:
    """A MIDI file as note arrays (``NOTE_DTYPE``, samples, sorted by start then pitch;
    velocity already scaled to the NES volume 1-15).

    ``melodic`` parts are monophonic and reach the NES range; ``polyphonic`` ones are kept
    aside (not used for the corpus); ``drums`` are the drum-channel parts. Duplicates dropped.
    """

    melodic: list[np.ndarray] = field(default_factory=list)
    polyphonic: list[np.ndarray] = field(default_factory=list)
    drums: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0
    _voiced: dict = field(default_factory=dict, repr=False)

    def voice_notes(self, k: int, voice: str) -> np.ndarray:
        """Melodic part ``k`` as ``voice`` plays it: notes out of its range dropped (cached)."""
        got = self._voiced.get((k, voice))
        if got is None:
            got = in_range(self.melodic[k], voice)
            if voice == "TR":  # the triangle has no volume control
                got["velocity"] = DEFAULT_VELOCITY["TR"]
            self._voiced[(k, voice)] = got
        return got


def rng_for(seed: int, key: str) -> np.random.Generator:
    """The random generator of one file: a function of the seed and its relative path only."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()[:8], "little")
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, h])


def read_parts(src, path: str | None = None, *, limits: bool = True) -> Parts:
    """Read a MIDI file (path or bytes) into parts; raise ``SkippedFile`` saying why not.

    With ``limits`` the corpus filters apply (size, length 5-600 s).
    """
    if path is None and not isinstance(src, (bytes, bytearray)):
        path = str(src)
    sm = read_symusic(src, path, MAX_BYTES if limits else None)
    to_samples = tick_to_sample(sm)
    raw = []
    last = 0
    for track in sm.tracks:
        if not len(track.notes):
            continue
        a = track.notes.numpy()
        time = a["time"].astype(np.int64)
        dur = a["duration"].astype(np.int64)
        if np.any(time < 0) or np.any(dur < 0):
            raise SkippedFile("bad_times", f"negative or reversed note times in track {track.name.strip()!r}", path)
        start, end = to_samples(time), to_samples(time + dur)
        last = max(last, int(end.max()))
        raw.append((track, start, end, a["pitch"].astype(np.int16), a["velocity"].astype(np.int16)))
    seconds = last / SAMPLE_RATE
    if not raw:
        raise SkippedFile("too_short", "no notes", path)
    if last > MAX_SAMPLES:  # every reader's one-hour cap, before any per-sample or per-token work
        raise SkippedFile("too_long", too_long(last), path)
    if limits and seconds < MIN_SECONDS:
        raise SkippedFile("too_short", f"too short ({seconds:.1f} s < {MIN_SECONDS:.0f} s)", path)
    if limits and seconds > MAX_SECONDS:
        raise SkippedFile("too_long", f"too long ({seconds:.0f} s > {MAX_SECONDS:.0f} s)", path)

    parts = Parts(seconds=seconds)
    seen = set()
    for track, start, end, pitch, vel in raw:
        keep = end > start  # zero-length notes make no sound
        order = np.lexsort((pitch[keep], start[keep]))
        volume = np.clip(np.round(vel[keep][order] * (15 / 127)), 1, 15)  # MIDI velocity → NES volume
        notes = make_notes(start[keep][order], end[keep][order], pitch[keep][order], volume)
        if not len(notes):
            continue
        key = (track.is_drum, notes["start"].tobytes(), notes["end"].tobytes(), notes["pitch"].tobytes())
        if key in seen:  # exact duplicate part (same notes; velocity is not part of TX1)
            continue
        seen.add(key)
        if track.is_drum:
            parts.drums.append(notes)
            continue
        if not np.any((notes["pitch"] >= NES_LOW) & (notes["pitch"] <= NES_HIGH)):
            continue
        (parts.melodic if is_monophonic(notes) else parts.polyphonic).append(notes)
    return parts


def assignments(num_parts: int, max_examples: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Up to ``max_examples`` distinct assignments of parts to (P1, P2, TR); -1 = silent voice.

    One part goes to each of the 3 voices in turn, two parts give 6 orders, more give random
    3-permutations of distinct parts.
    """
    if num_parts <= 0 or max_examples <= 0:
        return []
    if num_parts < 3:
        cands = sorted(set(itertools.permutations(list(range(num_parts)) + [-1] * (3 - num_parts))))
    elif num_parts * (num_parts - 1) * (num_parts - 2) <= _ENUMERATE_LIMIT:
        cands = list(itertools.permutations(range(num_parts), 3))
    else:  # many parts: sample distinct 3-permutations
        out: list[tuple[int, int, int]] = []
        seen = set()
        while len(out) < max_examples:
            p = tuple(int(x) for x in rng.choice(num_parts, 3, replace=False))
            if p not in seen:
                seen.add(p)
                out.append(p)
        return out
    pick = rng.permutation(len(cands))[:max_examples]
    return [cands[i] for i in pick]


def make_example(parts: Parts, assign: tuple[int, int, int], drum: np.ndarray | None,
                 keymap: np.ndarray | None, *, clip_seconds: float | None = CLIP_SECONDS,
                 name: str = "") -> NesScore:
    """One NES score from an assignment of melodic parts and a drum part (clipped from its
    first note to ``clip_seconds``)."""
    score = NesScore(name=name)
    for voice, k in zip(MELODIC_VOICES, assign, strict=True):
        if k >= 0:
            score.notes[voice] = parts.voice_notes(k, voice)
    if drum is not None and keymap is not None:
        score.notes["NO"] = drums_to_noise(drum, keymap)
    starts = [int(n["start"][0]) for n in score.notes.values() if len(n)]
    if not starts:
        return score
    score.end = max(int(n["end"].max()) for n in score.notes.values() if len(n))
    first = min(starts)
    stop = score.end if clip_seconds is None else min(score.end, first + int(round(clip_seconds * SAMPLE_RATE)))
    if first > 0 or stop < score.end:
        score = score.slice(first, stop)
    return score


def examples(parts: Parts, rng: np.random.Generator, max_examples: int = 16,
             clip_seconds: float | None = CLIP_SECONDS, name: str = "") -> list[NesScore]:
    """The random examples of one file's parts (empty scores dropped)."""
    out = []
    for k, assign in enumerate(assignments(len(parts.melodic), max_examples, rng)):
        drum = parts.drums[int(rng.integers(len(parts.drums)))] if parts.drums else None
        keymap = rng.integers(1, 17, size=128).astype(np.int16)
        score = make_example(parts, assign, drum, keymap, clip_seconds=clip_seconds,
                             name=f"{name}#{k}" if name else str(k))
        if score.num_notes:
            out.append(score)
    return out


def midi_to_nes(src, *, max_examples: int = 16, seed: int = 0, key: str | None = None) -> list[NesScore]:
    """Map any multi-instrument MIDI (path or bytes) to up to ``max_examples`` NES scores.

    The random choices depend only on ``seed`` and ``key`` (default: the file name), so a
    file maps the same way wherever it is processed. Raises ``SkippedFile`` (an
    ``InvalidInputError``) for a file the corpus filters reject or one with no usable part.
    """
    path = None if isinstance(src, (bytes, bytearray)) else str(src)
    if key is None:
        key = Path(path).name if path else ""
    parts = read_parts(src, path)
    if not parts.melodic:
        why = "only polyphonic melodic parts" if parts.polyphonic else "no melodic part in the NES range"
        raise SkippedFile("no_parts", why, path)
    return examples(parts, rng_for(seed, key), max_examples, name=key.split("/")[-1].split(".")[0])


__all__ = [
    "MAX_BYTES", "MIN_SECONDS", "MAX_SECONDS", "CLIP_SECONDS", "SKIP_REASONS", "SkippedFile", "Parts",
    "read_parts", "is_monophonic", "in_range", "skyline", "drums_to_noise", "assignments", "make_example",
    "examples", "midi_to_nes", "rng_for",
]
