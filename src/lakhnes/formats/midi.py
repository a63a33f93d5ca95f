"""NES-MDB MIDI in and out: tracks ``p1``, ``p2``, ``tr``, ``no`` at 44,100 ticks per second,
velocity as NES volume, CC11 per-frame volume and CC12 timbre (pulse duty 0-3)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lakhnes.core.score import (
    CC_TIMBRE,
    CC_VOLUME,
    CTRL_DTYPE,
    MAX_MIDI_BYTES,
    MAX_SAMPLES,
    PROGRAMS,
    SAMPLE_RATE,
    VOICES,
    NesScore,
    make_notes,
    too_long,
)
from lakhnes.errors import InvalidInputError


def _load_symusic(src: str | os.PathLike | bytes, path: str | None):
    import symusic

    try:
        if isinstance(src, (bytes, bytearray)):
            data = bytes(src)
        else:
            size = os.path.getsize(src)
            if size > MAX_MIDI_BYTES:
                raise InvalidInputError(
                    f"file too large ({size / 1e6:.1f} MB; the limit is {MAX_MIDI_BYTES / 1e6:.0f} MB)", path
                )
            data = Path(src).read_bytes()
    except OSError as e:
        raise InvalidInputError(f"cannot read file ({e.strerror or e})", path) from None
    if not data:
        raise InvalidInputError("empty file", path)
    if len(data) > MAX_MIDI_BYTES:
        raise InvalidInputError(f"file too large ({len(data) / 1e6:.1f} MB)", path)
    if data[:4] != b"MThd":
        raise InvalidInputError("not a MIDI file (no MThd header)", path)
    try:
        data = check_midi_header(data)
    except InvalidInputError as e:
        raise e.with_path(path) from None
    try:
        return symusic.Score.from_midi(data)
    except Exception as e:  # symusic raises plain RuntimeError/ValueError on corrupt data
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidInputError(f"corrupt MIDI ({msg})", path) from None


def check_midi_header(data: bytes) -> bytes:
    """The MIDI bytes, checked before parsing; raises ``InvalidInputError`` (no path) for a header
    no reader can time: 0 ticks per quarter note, or SMPTE time division.

    A header whose track count is smaller than the ``MTrk`` chunks that follow it (0 after a
    damaged header) is repaired: every complete chunk is read, as the file's layout shows it.
    """
    if len(data) < 14:
        raise InvalidInputError("corrupt MIDI (header cut short)")
    division = int.from_bytes(data[12:14], "big")
    if division == 0:
        raise InvalidInputError("corrupt MIDI header: 0 ticks per quarter note (no timing)")
    if division & 0x8000:
        raise InvalidInputError("SMPTE time division is not supported (ticks per quarter note only)")
    pos, found = 8 + int.from_bytes(data[4:8], "big"), 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "big")
        if pos + 8 + size > len(data):
            break
        found += data[pos : pos + 4] == b"MTrk"
        pos += 8 + size
    if int.from_bytes(data[10:12], "big") < found <= 0xFFFF:
        data = data[:10] + found.to_bytes(2, "big") + data[12:]
    return data


def tick_to_sample(sm):
    """A function mapping a ``symusic.Score``'s ticks to samples through its tempo map.

    Before the first tempo event the MIDI default (120 bpm) holds; a tempo of 0 (invalid: a
    beat would take no time) is skipped, the tempo before it staying in force.
    """
    tpq = int(sm.ticks_per_quarter)
    if tpq <= 0:
        raise InvalidInputError("corrupt MIDI header: 0 ticks per quarter note (no timing)")
    t = sm.tempos.numpy() if len(sm.tempos) else {"time": np.zeros(0), "mspq": np.zeros(0)}
    times = np.asarray(t["time"], dtype=np.int64)
    mspq = np.asarray(t["mspq"], dtype=np.float64)
    valid = mspq > 0
    times, mspq = times[valid], mspq[valid]
    order = np.argsort(times, kind="stable")
    times, mspq = times[order], mspq[order]
    if not len(times) or times[0] > 0:  # MIDI default tempo until the first change
        times, mspq = np.insert(times, 0, 0), np.insert(mspq, 0, 500000.0)
    sec_per_tick = mspq / 1e6 / tpq
    at = np.concatenate([[0.0], np.cumsum(np.diff(times) * sec_per_tick[:-1])])

    def convert(ticks) -> np.ndarray:
        ticks = np.asarray(ticks, dtype=np.int64)
        i = np.maximum(np.searchsorted(times, ticks, side="right") - 1, 0)
        return np.round((at[i] + (ticks - times[i]) * sec_per_tick[i]) * SAMPLE_RATE).astype(np.int64)

    return convert


def _raw(src) -> bytes:
    return bytes(src) if isinstance(src, (bytes, bytearray)) else Path(src).read_bytes()


def _names_nes_tracks(data: bytes) -> bool:
    """Whether the MIDI names an NES track (symusic drops tracks without notes)."""
    return any(b"\xff\x03\x02" + n in data for n in (b"p1", b"p2", b"tr", b"no"))


def read_midi(src: str | os.PathLike | bytes, name: str | None = None) -> NesScore:
    """Read NES-MDB MIDI (tracks ``p1``, ``p2``, ``tr``, ``no``) into an ``NesScore``.

    ``src`` is a path or the file's bytes. Raises ``InvalidInputError`` naming the file.
    """
    path = None if isinstance(src, (bytes, bytearray)) else str(src)
    if name is None:
        name = Path(path).name.split(".")[0] if path else ""
    sm = _load_symusic(src, path)
    # NES-MDB's own layout: a tick is exactly one sample (22050 ticks a beat at 120 bpm)
    native = sm.ticks_per_quarter == 22050 and all(t.mspq == 500000 for t in sm.tempos if t.mspq > 0)
    to_samples = None if native else tick_to_sample(sm)
    tracks = {}
    for t in sm.tracks:
        key = t.name.strip().upper()
        if key in VOICES:
            if key in tracks:
                raise InvalidInputError(f"two tracks named {t.name!r}", path)
            tracks[key] = t
    if not tracks and not _names_nes_tracks(_raw(src)):
        found = ", ".join(repr(t.name) for t in sm.tracks) or "none"
        raise InvalidInputError(f"no NES tracks (expected p1, p2, tr, no; found {found})", path)

    def ticks(x) -> np.ndarray:
        x = np.asarray(x, dtype=np.int64)
        return x if native else to_samples(x)

    score = NesScore(name=name)
    last = 0
    for v, t in tracks.items():
        if len(t.notes):
            a = t.notes.numpy()
            start = ticks(a["time"])
            end = ticks(a["time"].astype(np.int64) + a["duration"])
            order = np.lexsort((a["pitch"], start))
            notes = make_notes(start[order], end[order], a["pitch"][order], a["velocity"][order])
            notes = notes[notes["end"] > notes["start"]]  # zero-length notes make no sound
            score.notes[v] = notes
            if len(notes):
                last = max(last, int(notes["end"].max()))
        if len(t.controls):
            c = t.controls.numpy()
            ct = ticks(c["time"])
            order = np.argsort(ct, kind="stable")
            for number, dst in ((CC_VOLUME, score.volume), (CC_TIMBRE, score.timbre)):
                sel = order[c["number"][order] == number]
                arr = np.zeros(len(sel), dtype=CTRL_DTYPE)
                arr["time"], arr["value"] = ct[sel], c["value"][sel]
                dst[v] = arr
    ts = sm.time_signatures
    marker = int(ticks([ts[-1].time])[0]) if len(ts) else 0
    score.end = marker if marker > 0 else last
    if score.end > MAX_SAMPLES or last > MAX_SAMPLES:
        raise InvalidInputError(too_long(max(score.end, last)), path)
    if score.is_empty:
        raise InvalidInputError("empty song: no notes and no length", path)
    try:
        score.check()
    except InvalidInputError as e:
        raise e.with_path(path) from None
    return score


# -------------------------------------------------------------------------- MIDI output


def to_symusic(score: NesScore):
    """The score as a ``symusic.Score`` in NES-MDB layout (22050 ticks/beat at 120 bpm)."""
    import symusic

    sm = symusic.Score(22050)
    sm.tempos.append(symusic.Tempo(0, qpm=120.0))
    sm.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    if score.end > 0:
        sm.time_signatures.append(symusic.TimeSignature(int(score.end), 1, 1))
    for v in VOICES:
        n = score.notes[v]
        track = symusic.Track(name=v.lower(), program=PROGRAMS[v], is_drum=(v == "NO"))
        if len(n):
            track.notes = symusic.Note.from_numpy(
                n["start"].astype(np.int32),
                (n["end"] - n["start"]).astype(np.int32),
                n["pitch"].astype(np.int8),
                np.clip(n["velocity"], 1, 127).astype(np.int8),
            )
        ctrl = [(c, CC_VOLUME) for c in [score.volume[v]] if len(c)]
        ctrl += [(c, CC_TIMBRE) for c in [score.timbre[v]] if len(c)]
        if ctrl:
            times = np.concatenate([c["time"] for c, _ in ctrl])
            nums = np.concatenate([np.full(len(c), k) for c, k in ctrl])
            vals = np.concatenate([c["value"] for c, _ in ctrl])
            order = np.argsort(times, kind="stable")
            track.controls = symusic.ControlChange.from_numpy(
                times[order].astype(np.int32), nums[order].astype(np.uint8), vals[order].astype(np.uint8)
            )
        sm.tracks.append(track)
    return sm


def write_midi(score: NesScore, path: str | os.PathLike) -> None:
    """Write NES-MDB-style MIDI atomically (temporary name, then rename)."""
    from lakhnes.io import atomic_path

    with atomic_path(path) as tmp:  # bytes written by Python: a failure is an OSError naming the file
        Path(tmp).write_bytes(to_symusic(score).dumps_midi())
