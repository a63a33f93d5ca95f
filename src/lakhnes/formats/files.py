"""Load and save NES scores in every format lakhnes speaks, picked by the file's extension.

Formats:

- ``.mid`` / ``.midi``: NES-MDB MIDI (tracks p1, p2, tr, no; 44100 ticks a second; velocity
  and CC11 are NES volumes 0-15, CC12 the pulse duty). Lossless: lakhnes and NES-MDB's tools
  read it back exactly. Programs are NES-MDB's own General MIDI choices (80 square lead,
  81 saw lead, 38 synth bass, noise on the drum channel).
- ``.gm.mid``: the same music for a General MIDI player or a DAW: velocities and CC11 scaled
  from 0-15 to 0-127 (the triangle, which has no volume, at 100), both pulses on program 80 (square lead), triangle on 38 (synth bass 1),
  noise on the drum channel as closed hi-hat / snare / bass drum by its period (it does not
  read back as NES-MDB: the noise pitches are lost).
- ``.tx1.txt``: LakhNES TX1 text (notes and timing only; no volume or timbre).
- ``.npy`` (load only): TX1 token ids.
- ``.wav``: 16-bit mono 44.1 kHz audio from :mod:`lakhnes.synth` (save only).
- ``.png``: a piano roll from :mod:`lakhnes.formats.png` (save only).
- ``.vgm`` / ``.vgz`` (gzip): VGM 1.61 for the NES APU (:mod:`lakhnes.formats.vgm`): register
  writes any VGM player plays; rips are read as NES-MDB read them (also any file starting ``Vgm ``).
- ``.famitracker.txt``: FamiTracker's text export 0.4.2 (:mod:`lakhnes.formats.famitracker`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lakhnes.core import tx1
from lakhnes.core.score import CC_VOLUME, MAX_SAMPLES, VOICES, NesScore, too_long
from lakhnes.errors import InvalidInputError
from lakhnes.formats.midi import read_midi

__all__ = ["save", "load", "load_source", "load_any", "SAVE_SUFFIXES", "LOAD_SUFFIXES", "kind_of", "file_kind",
           "to_general_midi"]

SAVE_SUFFIXES = (".wav", ".mid", ".midi", ".gm.mid", ".tx1.txt", ".png", ".vgm", ".vgz", ".famitracker.txt")
LOAD_SUFFIXES = (".mid", ".midi", ".tx1.txt", ".npy", ".vgm", ".vgz", ".famitracker.txt")
#: Kinds ``load`` reads.
_READABLE = ("mid", "gm.mid", "tx1", "npy", "vgm", "ftm")
#: General MIDI programs of the ``.gm.mid`` export (noise goes to the drum channel).
GM_PROGRAMS = {"P1": 80, "P2": 80, "TR": 38, "NO": 0}


def kind_of(path: str | os.PathLike) -> str | None:
    """The format a file name asks for: "wav", "mid", "gm.mid", "tx1", "png", "npy", "vgm" (``.vgm``,
    ``.vgz``), "ftm" (``.famitracker.txt``) or None."""
    name = Path(path).name.lower()
    for suffix, kind in ((".gm.mid", "gm.mid"), (".tx1.txt", "tx1"), (".mid", "mid"), (".midi", "mid"),
                         (".wav", "wav"), (".png", "png"), (".npy", "npy"), (".vgm", "vgm"), (".vgz", "vgm"),
                         (".famitracker.txt", "ftm")):
        if name.endswith(suffix) and len(name) > len(suffix):
            return kind
    return None


def save(score: NesScore, path: str | os.PathLike, duty: int | None = None, mute: str | Iterable[str] = (),
         filters: bool | str | Iterable[str] = True, peak_db: float | None = -1.0) -> None:
    """Write ``score`` to ``path`` in the format its extension names (atomically).

    ``duty``, ``filters`` and ``mute`` apply to audio (see :func:`lakhnes.synth.render`), written
    with its peak at ``peak_db`` dBFS (default -1, ``lakhnes.synth.PEAK_DB``; None: the chip's level);
    ``mute`` also leaves the muted voices out of the piano roll and the MIDI/TX1 files.
    """
    kind = kind_of(path)
    if kind is None or kind == "npy":
        raise InvalidInputError(f"cannot save this file type (use one of {', '.join(SAVE_SUFFIXES)})", path)
    if kind == "wav":
        from lakhnes.synth import render_wav

        render_wav(score, path, duty=duty, mute=mute, filters=filters, peak_db=peak_db)
        return
    from lakhnes.synth import parse_mute

    score = without(score, parse_mute(mute))
    if kind == "mid":
        from lakhnes.formats.midi import write_midi

        write_midi(score, path)
    elif kind == "gm.mid":
        from lakhnes.io import atomic_path

        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(to_general_midi(score).dumps_midi())
    elif kind == "tx1":
        from lakhnes.io import write_text_atomic

        write_text_atomic(path, tx1.score_to_text(score))
    elif kind == "vgm":
        from lakhnes.formats.vgm import write_vgm

        write_vgm(score, path, duty=duty)
    elif kind == "ftm":
        from lakhnes.formats.famitracker import write_famitracker

        write_famitracker(score, path, duty=duty)
    else:
        from lakhnes.formats.png import piano_roll
        from lakhnes.io import atomic_path

        fig = piano_roll(score, title=score.name or None)
        with atomic_path(path) as tmp:
            fig.savefig(str(tmp), format="png")


def file_kind(path: str | os.PathLike) -> str | None:
    """What a file to read holds: its name's kind (see ``kind_of``), else its content's: MIDI
    (``MThd``, e.g. Lakh's ``.mid0`` ... ``.mid13``), VGM (``Vgm ``, gzipped too) or numpy token ids;
    None if none of these."""
    kind = kind_of(path)
    if kind is not None:
        return kind
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
            if head[:2] == b"\x1f\x8b":  # gzip: a VGZ?
                import zlib

                fh.seek(0)
                head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(fh.read(4096), 6)
    except Exception:  # noqa: BLE001 - unreadable or damaged (OSError, zlib.error): no kind
        return None
    if head[:4] == b"Vgm ":
        return "vgm"
    return "mid" if head[:4] == b"MThd" else "npy" if head == b"\x93NUMPY" else None


def load(path: str | os.PathLike) -> NesScore:
    """Read a score from NES-MDB MIDI, TX1 text, a ``.npy`` of TX1 token ids, an NES VGM/VGZ or
    FamiTracker text (by name, else by content). TX1 is read as LakhNES defines it (see
    :mod:`lakhnes.core.tx1`); empty songs and songs over the one-hour limit are refused."""
    p = Path(path)
    kind = file_kind(path) if p.is_file() else kind_of(path)
    if kind not in _READABLE:
        raise InvalidInputError(f"unknown file type (expected MIDI, or one of {', '.join(LOAD_SUFFIXES)})", path)
    if not p.exists():
        raise InvalidInputError("no such file", path)
    if p.is_dir():
        raise InvalidInputError("is a folder, not a file", path)
    if kind in ("mid", "gm.mid"):
        return read_midi(p)
    if kind == "tx1":
        return tx1.read_tx1(p)
    if kind == "vgm":
        from lakhnes.formats.vgm import read_vgm

        return read_vgm(p)
    if kind == "ftm":
        from lakhnes.formats.famitracker import read_famitracker

        return read_famitracker(p)
    if p.stat().st_size > tx1.MAX_TX1_BYTES:
        raise InvalidInputError(f"file too large ({p.stat().st_size / 1e6:.1f} MB; the limit is "
                                f"{tx1.MAX_TX1_BYTES / 1e6:.0f} MB)", path)
    try:
        ids = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InvalidInputError(f"not a numpy token file ({e})", path) from None
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise InvalidInputError(f"token ids must be a 1-D integer array, not {ids.dtype} {ids.shape}", path)
    try:
        events = tx1.ids_to_events(ids)
        total = int(-events[events < 0].sum())
        if total > MAX_SAMPLES:
            raise InvalidInputError(too_long(total))
        score = tx1.events_to_score(events, name=p.name.split(".")[0])
        if score.is_empty:
            raise InvalidInputError("empty song: no notes and no waits")
        return score
    except InvalidInputError as e:
        raise e.with_path(path) from None


def load_source(path: str | os.PathLike, seed: int = 0, mapping=None) -> NesScore:
    """A song to prime or accompany: NES-MDB MIDI, TX1 text or token ids, NES VGM, FamiTracker text, or
    any MIDI (mapped onto the NES voices with :func:`lakhnes.formats.any_midi.general_midi_to_nes` when it has no NES tracks, or
    when ``mapping``, a ``--map`` value, is given). MIDI is recognised by its content (Lakh's
    ``.mid0`` ... too); every path caps songs at one hour."""
    return load_any(path, seed, mapping)[0]


def load_any(path: str | os.PathLike, seed: int = 0, mapping=None):
    """``(score, mapping)``: :func:`load_source`'s song and, for a MIDI file mapped onto the NES
    voices, its :class:`lakhnes.formats.any_midi.MidiMapping` (None otherwise)."""
    p = Path(path)
    kind = file_kind(p) if p.is_file() else kind_of(p)
    if kind not in _READABLE:
        raise InvalidInputError("not a MIDI (.mid, .midi), TX1 (.tx1.txt), VGM (.vgm, .vgz) or FamiTracker "
                                "text (.famitracker.txt) file", str(p))
    if not p.is_file():
        raise InvalidInputError("no such file" if not p.exists() else "is a folder, not a file", str(p))
    if kind in ("tx1", "npy", "vgm", "ftm"):
        if mapping:
            raise InvalidInputError("--map applies to MIDI files, not token files", str(p))
        return load(p), None
    if not mapping:
        try:
            return read_midi(p), None
        except InvalidInputError as e:
            if not e.reason.startswith("no NES tracks"):
                raise
    from lakhnes.formats.any_midi import general_midi_mapping

    return general_midi_mapping(p, seed=seed, mapping=mapping or None)


def without(score: NesScore, voices: Iterable[str]) -> NesScore:
    """A copy of the score with the given voices emptied."""
    voices = set(voices)
    if not voices:
        return score
    out = NesScore(dict(score.notes), score.end, dict(score.volume), dict(score.timbre), score.name)
    for v in voices:
        out.notes[v] = score.notes[v][:0]
        out.volume[v] = score.volume[v][:0]
        out.timbre[v] = score.timbre[v][:0]
    return out


def _gm_drum(noise_pitch: np.ndarray) -> np.ndarray:
    """GM drum key for an NES-MDB noise pitch (16 = fastest): hi-hat, snare, bass drum."""
    return np.select([noise_pitch >= 13, noise_pitch >= 8], [42, 38], 36).astype(np.int8)


def to_general_midi(score: NesScore):
    """The score as a ``symusic.Score`` for General MIDI players (see the module notes)."""
    import symusic

    from lakhnes.formats.midi import to_symusic

    sm = to_symusic(score)
    for track in sm.tracks:
        v = track.name.upper()
        if v not in VOICES:
            continue
        track.program = GM_PROGRAMS[v]
        n = score.notes[v]
        if len(n):
            pitch = _gm_drum(n["pitch"]) if v == "NO" else n["pitch"].astype(np.int8)
            vel = np.clip(np.round(np.clip(n["velocity"], 0, 15) * 127 / 15), 1, 127).astype(np.int8)
            if v == "TR":  # the triangle has no volume: NES-MDB writes velocity 1 for "on"
                vel[:] = 100
            track.notes = symusic.Note.from_numpy(
                n["start"].astype(np.int32), (n["end"] - n["start"]).astype(np.int32), pitch, vel
            )
        if len(track.controls):
            c = track.controls.numpy()
            keep = c["number"] == CC_VOLUME  # CC12 (duty) means nothing to a GM player
            value = np.clip(np.round(c["value"][keep].astype(np.float64) * 127 / 15), 0, 127)
            track.controls = symusic.ControlChange.from_numpy(
                c["time"][keep], c["number"][keep], value.astype(np.uint8)
            )
    return sm
