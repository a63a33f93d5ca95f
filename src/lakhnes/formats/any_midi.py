"""Which track of a multi-instrument MIDI plays which NES voice: the automatic choice, ``--map``,
and the mapped song.

A file is read into its note tracks (:class:`MidiTrack`: index, name, notes). Each voice gets at
most one track: a melodic track plays on P1, P2 or TR as its top line (the highest note at each
onset; notes out of the voice's range dropped), a track on NO plays each of its keys as one noise
type (random, from the seed).

The automatic mapping (:func:`auto_mapping`):

- P1 gets the melody: a track named like one (MELODY, VOCAL, LEAD, MELODIE, ...) first, else the
  track that is most often sounding as a single line within a singable range (activity, then
  range and monophony; a wide track such as piano glissandos C2-C7 loses, whatever its mean pitch);
- of the other melodic tracks, the two busiest go to TR (the lower one, or one named BASS) and P2;
  with one left, it goes to TR;
- the busiest drum track goes to NO.

``--map TRACK=VOICE,...`` (track name or index, voice P1, P2, TR, NO or ``-`` to leave the track
out) fixes some choices; the voices it does not name are filled automatically from the tracks it
does not name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lakhnes.core.score import NOTE_DTYPE, VOICES, NesScore, make_notes
from lakhnes.errors import InvalidInputError
from lakhnes.formats.midi import _load_symusic, read_midi

MELODIC = ("P1", "P2", "TR")
#: track names that say "melody" (whole words, any case), in order of trust
MELODY_NAMES = ("melody", "melodie", "melodia", "mélodie", "melodía", "vocal", "vocals", "voice", "vox", "lead",
                "sing", "singer", "solo", "theme", "main")
BASS_NAMES = ("bass", "basso", "bajo", "contrabass")
#: the widest span (semitones, 5th to 95th percentile) of a line the automatic choice calls a melody
MELODY_SPAN = 18


@dataclass
class MidiTrack:
    """One note track of a MIDI file: ``notes`` in samples (``NOTE_DTYPE``, sorted; velocity as
    NES volume 1-15), ``line`` its top line (monophonic)."""

    index: int
    name: str
    is_drum: bool
    notes: np.ndarray
    line: np.ndarray = field(repr=False, default=None)

    @property
    def label(self) -> str:
        return f"{self.index} {self.name!r}" if self.name else str(self.index)

    def describe(self) -> str:
        n = self.notes
        if self.is_drum:
            return f"{len(n)} drum hits"
        return f"{len(n)} notes, pitches {int(n['pitch'].min())}-{int(n['pitch'].max())}"

    def to_json(self) -> dict:
        n = self.notes
        return {"index": self.index, "name": self.name, "drum": self.is_drum, "notes": int(len(n)),
                "low": int(n["pitch"].min()), "high": int(n["pitch"].max()),
                "first": round(float(n["start"].min()) / 44100, 2)}


@dataclass
class MidiMapping:
    """The tracks of a file and the voice each one plays (``voice_of``: track index → voice;
    a track not in it is left out)."""

    tracks: list[MidiTrack]
    voice_of: dict[int, str]

    def lines(self) -> list[str]:
        """One line per track: ``track 0 'MELODY' (443 notes, pitches 61-80) -> P1`` (``-`` left out)."""
        return [f"track {t.label} ({t.describe()}) -> {self.voice_of.get(t.index, '-')}" for t in self.tracks]

    def spec(self) -> str:
        """The mapping as a ``--map`` value (by index)."""
        return ",".join(f"{t.index}={self.voice_of.get(t.index, '-')}" for t in self.tracks)

    def to_json(self) -> list[dict]:
        return [{**t.to_json(), "voice": self.voice_of.get(t.index)} for t in self.tracks]


def parse_map(spec) -> list[tuple[str, str | None]]:
    """``"MELODY=P1,2=TR,BRIDGE=-"`` (or a dict, or pairs) → ``[(track, voice or None), ...]``;
    ``InvalidInputError`` (naming ``--map``) for a malformed value."""
    if spec is None:
        return []
    if isinstance(spec, dict):
        pairs = list(spec.items())
    elif isinstance(spec, str):
        pairs = []
        for item in spec.split(","):
            if not item.strip():
                continue
            track, eq, voice = item.rpartition("=")
            if not eq or not track.strip():
                raise InvalidInputError(f"--map: {item.strip()!r} is not TRACK=VOICE (track name or index; "
                                        "voice P1, P2, TR, NO or - to leave it out)")
            pairs.append((track, voice))
    else:
        pairs = list(spec)
    out, seen = [], {}
    for track, voice in pairs:
        track = str(track).strip()
        v = (voice or "-").strip().upper() if voice is not None else "-"
        if v not in (*VOICES, "-"):
            raise InvalidInputError(f"--map: unknown voice {voice!r} for track {track!r} "
                                    f"(voices are {', '.join(VOICES)}, or - to leave the track out)")
        v = None if v == "-" else v
        if v is not None and v in seen:
            raise InvalidInputError(f"--map: voice {v} is given two tracks ({seen[v]!r} and {track!r})")
        if v is not None:
            seen[v] = track
        out.append((track, v))
    return out


def read_tracks(src, path: str | None = None) -> tuple[list[MidiTrack], int]:
    """The note tracks of a MIDI file (path or bytes), and its end (samples). No corpus limits
    (the one-hour cap holds)."""
    from lakhnes.formats.midi import tick_to_sample
    from lakhnes.formats.midi_parts import SkippedFile, read_symusic, skyline

    try:
        sm = read_symusic(src, path, None)
        to_samples = tick_to_sample(sm)
    except SkippedFile as e:
        raise InvalidInputError(e.reason, path) from None
    except InvalidInputError as e:
        raise e.with_path(path) from None
    from lakhnes.core.score import MAX_SAMPLES, too_long

    tracks, last = [], 0
    for index, track in enumerate(sm.tracks):
        if not len(track.notes):
            continue
        a = track.notes.numpy()
        time, dur = a["time"].astype(np.int64), a["duration"].astype(np.int64)
        if np.any(time < 0) or np.any(dur < 0):
            raise InvalidInputError(f"negative or reversed note times in track {track.name.strip()!r}", path)
        start, end = to_samples(time), to_samples(time + dur)
        keep = end > start
        if not keep.any():
            continue
        last = max(last, int(end[keep].max()))
        if last > MAX_SAMPLES:
            raise InvalidInputError(too_long(last), path)
        pitch, vel = a["pitch"].astype(np.int16)[keep], a["velocity"].astype(np.int16)[keep]
        order = np.lexsort((pitch, start[keep]))
        volume = np.clip(np.round(vel[order] * (15 / 127)), 1, 15)
        notes = make_notes(start[keep][order], end[keep][order], pitch[order], volume)
        name = re.sub(r"\s+", " ", track.name.replace("\x00", "")).strip()[:60]
        tracks.append(MidiTrack(index, name, bool(track.is_drum), notes,
                                None if track.is_drum else skyline(notes)))
    return tracks, last


def _words(name: str) -> set[str]:
    return set(re.findall(r"[^\W\d_]+", name.lower()))


def _melody_score(t: MidiTrack, length: int, most: int) -> float:
    """How much a track looks like a melody: how often its top line sounds and how many notes it
    has (of the busiest line's ``most``), less for chords, for a span wider than ``MELODY_SPAN``
    and for a low register. (Weights fit on POP909 with the track names hidden: the MELODY track
    wins in 93 of 100 songs.)"""
    line = t.line
    if not len(line):
        return -1e9
    active = float(np.sum(line["end"] - line["start"])) / max(length, 1)
    lo, hi = np.percentile(line["pitch"], [5, 95])
    mono = len(line) / len(t.notes)  # 1 for a single line, lower with chords
    mean = float(np.mean(line["pitch"]))
    return (min(active, 1.0) + 0.5 * len(line) / max(most, 1) - 4.0 * (1.0 - mono)
            - 0.1 * max(0.0, float(hi - lo) - MELODY_SPAN) - 0.05 * max(0.0, 55.0 - mean))


def auto_mapping(tracks: list[MidiTrack], fixed: dict[int, str] | None = None,
                 dropped: set[int] = frozenset()) -> dict[int, str]:
    """The automatic mapping (see the module notes), around the choices in ``fixed`` (track index →
    voice) and leaving out the tracks in ``dropped``."""
    voice_of = dict(fixed or {})
    taken = set(voice_of.values())
    free = [t for t in tracks if t.index not in voice_of and t.index not in dropped]
    melodic = [t for t in free if not t.is_drum and len(t.line)
               and np.any((t.line["pitch"] >= 21) & (t.line["pitch"] <= 108))]
    length = max((int(t.notes["end"].max()) - int(t.notes["start"].min()) for t in tracks), default=1)
    if "P1" not in taken and melodic:
        named = [t for t in melodic if _words(t.name) & set(MELODY_NAMES) and not _words(t.name) & set(BASS_NAMES)]
        pool = named or [t for t in melodic if not _words(t.name) & set(BASS_NAMES)] or melodic
        most = max(len(t.line) for t in pool)
        best = max(pool, key=lambda t: _melody_score(t, length, most))
        voice_of[best.index] = "P1"
        melodic.remove(best)
        taken.add("P1")
    rest = sorted(melodic, key=lambda t: -len(t.line))[: len([v for v in ("P2", "TR") if v not in taken])]
    if "TR" not in taken and rest:
        bass = [t for t in rest if _words(t.name) & set(BASS_NAMES)]
        low = bass[0] if bass else min(rest, key=lambda t: float(np.mean(t.line["pitch"])))
        voice_of[low.index] = "TR"
        rest.remove(low)
        taken.add("TR")
    if "P2" not in taken and rest:
        voice_of[rest[0].index] = "P2"
        taken.add("P2")
    drums = [t for t in free if t.is_drum]
    if "NO" not in taken and drums:
        voice_of[max(drums, key=lambda t: len(t.notes)).index] = "NO"
    return voice_of


def resolve(tracks: list[MidiTrack], spec=None) -> dict[int, str]:
    """The mapping of ``tracks`` under a ``--map`` value (see :func:`parse_map`): the named choices,
    the rest automatic. ``InvalidInputError`` for a track the file does not have."""
    fixed, dropped = {}, set()
    by_index = {t.index: t for t in tracks}
    for ref, voice in parse_map(spec):
        if re.fullmatch(r"\d+", ref):
            t = by_index.get(int(ref))
            if t is None:
                raise InvalidInputError(f"--map: no track {ref} with notes (tracks: {_listing(tracks)})")
        else:
            hits = [t for t in tracks if t.name.lower() == ref.lower()]
            if not hits:
                raise InvalidInputError(f"--map: no track named {ref!r} (tracks: {_listing(tracks)})")
            if len(hits) > 1:
                raise InvalidInputError(f"--map: {len(hits)} tracks are named {ref!r}; name one by its index "
                                        f"(tracks: {_listing(tracks)})")
            t = hits[0]
        if t.index in fixed or t.index in dropped:
            raise InvalidInputError(f"--map: track {t.label} is named twice")
        if voice is None:
            dropped.add(t.index)
        else:
            fixed[t.index] = voice
    return auto_mapping(tracks, fixed, dropped)


def _listing(tracks) -> str:
    return ", ".join(t.label for t in tracks) or "none"


def map_tracks(tracks: list[MidiTrack], voice_of: dict[int, str], seed: int = 0, name: str = "") -> NesScore:
    """The NES score of a mapping: from its first note to its last (no other clipping)."""
    from lakhnes.core.score import DEFAULT_VELOCITY
    from lakhnes.formats.midi_parts import drums_to_noise, in_range, skyline

    score = NesScore(name=name)
    rng = np.random.default_rng(seed)
    keymap = rng.integers(1, 17, size=128).astype(np.int16)
    by_index = {t.index: t for t in tracks}
    for index, voice in voice_of.items():
        t = by_index[index]
        if voice == "NO":
            score.notes["NO"] = drums_to_noise(t.notes, keymap)
        else:
            line = t.line if t.line is not None else skyline(t.notes)
            notes = in_range(line, voice).copy()
            if voice == "TR":
                notes["velocity"] = DEFAULT_VELOCITY["TR"]
            score.notes[voice] = notes
    for v in VOICES:
        score.notes[v] = np.asarray(score.notes[v], dtype=NOTE_DTYPE)
    sounding = [n for n in score.notes.values() if len(n)]
    if not sounding:
        return score
    score.end = max(int(n["end"].max()) for n in sounding)
    first = min(int(n["start"][0]) for n in sounding)
    return score.slice(first, score.end) if first > 0 else score  # the song starts with its first note


def map_midi(src, *, seed: int = 0, spec=None, path: str | None = None) -> tuple[NesScore, MidiMapping]:
    """Any MIDI file (path or bytes) as an NES score, and the mapping used (``spec``: a ``--map``
    value, see :func:`parse_map`). ``InvalidInputError`` naming the file when nothing playable is left."""
    if path is None and not isinstance(src, (bytes, bytearray)):
        path = str(src)
    tracks, _ = read_tracks(src, path)
    if not tracks:
        raise InvalidInputError("no notes", path)
    try:
        voice_of = resolve(tracks, spec)
    except InvalidInputError as e:
        raise e.with_path(path) from None
    mapping = MidiMapping(tracks, voice_of)
    if spec is None and not set(voice_of.values()) & set(MELODIC) or not voice_of:
        raise InvalidInputError("no melodic part in the NES range (pitches 21-108) to map"
                                if spec is None else "--map leaves no track to play", path)
    name = Path(path).name.split(".")[0] if path else ""
    score = map_tracks(tracks, voice_of, seed=seed, name=name)
    if not score.num_notes:
        raise InvalidInputError("no playable notes after mapping to the NES voices", path)
    return score, mapping


__all__ = ["MidiTrack", "MidiMapping", "parse_map", "read_tracks", "auto_mapping", "resolve", "map_tracks",
           "map_midi", "MELODY_NAMES"]


def _is_nes_mdb(sm) -> bool:
    names = {t.name.strip().lower() for t in sm.tracks}
    return bool(names) and names <= {"p1", "p2", "tr", "no"}


def general_midi_to_nes(path, seed: int = 0, mapping=None) -> NesScore:
    """One NES score from any MIDI file, to prime generation with.

    NES-MDB files are read as they are (unless ``mapping`` is given). Otherwise the tracks go to
    the voices by :func:`lakhnes.formats.any_midi.map_midi` (the melody on P1, the bass on TR, ...;
    ``mapping``: a ``--map`` value fixing some choices), with a random noise type per drum sound
    (from ``seed``). No length limits or clipping.
    """
    return general_midi_mapping(path, seed, mapping)[0]


def general_midi_mapping(path, seed: int = 0, mapping=None):
    """``(score, MidiMapping or None)`` of :func:`general_midi_to_nes` (None: an NES-MDB file read as it is)."""
    p = str(path)
    if mapping is None:
        sm = _load_symusic(p, p)
        if _is_nes_mdb(sm):
            return read_midi(p), None
    return map_midi(p, seed=seed, spec=mapping)
