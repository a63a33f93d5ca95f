"""Clips for the listening studies: the random model, song folders, seeded slices, loudness.

- :func:`random_song`: the control pairs' "uniformly random model": at every step one token id
  drawn uniformly among those that keep TX1 valid (the decoding rules of
  :mod:`lakhnes.decoding.rules`: a NOTEOFF only for a sounding voice, at one instant at most one event
  per voice in the order P1, P2, TR, NO, never ``<S>``, no NOTEON of the pitch its voice sounds),
  until the song is long enough.
- :func:`find_songs` / :func:`load_song`: a system's songs: NES-MDB MIDI (or any MIDI, mapped onto
  the NES voices), TX1 text, or WAV audio (mixed to mono, resampled to 44.1 kHz).
- :func:`make_clips`: seeded random slices of a system's songs, rendered by :mod:`lakhnes.synth`
  (WAV songs are sliced as audio), each loudness-matched by :func:`match_loudness` and written as a
  16-bit WAV under an opaque name.

Loudness matching (so that level gives nothing away): every clip loses its DC offset, gets
20 ms raised-cosine fades at both ends, and is scaled to the same RMS, ``TARGET_DBFS``; a clip
whose peak would then pass ``PEAK`` is scaled to that peak instead (``limited``, counted in the
study's manifest). A slice whose RMS is under ``SILENT_DBFS`` before matching is silence: another
offset is drawn.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lakhnes.core import tx1
from lakhnes.core import vocab as V
from lakhnes.core.score import MAX_SAMPLES, SAMPLE_RATE, NesScore
from lakhnes.errors import InvalidInputError

SONG_SUFFIXES = (".mid", ".midi", ".tx1.txt", ".wav")
#: every clip's RMS after matching (dB full scale). 5-s slices of NES-MDB test songs rendered by the
#: synth measure -32 to -24 dBFS RMS with peaks 4-23 dB above it, so -24 leaves nearly all unlimited
TARGET_DBFS = -24.0
#: the highest sample value a matched clip may reach
PEAK = 0.99
#: a slice quieter than this (RMS, before matching) counts as silence
SILENT_DBFS = -45.0
FADE_S = 0.02
#: offsets tried per song visit before it counts as silent
TRIES = 8

# token class of each id: NOTEON of voice v -> v, NOTEOFF of voice v -> 4 + v, wait -> 8, <S> -> 9
_CLASS = np.full(V.VOCAB_SIZE, 9, dtype=np.int64)
_CLASS[V.IS_WAIT] = 8
_CLASS[V.IS_NOTEON] = V.VOICE_OF[V.IS_NOTEON]
_CLASS[V.IS_NOTEOFF] = 4 + V.VOICE_OF[V.IS_NOTEOFF]
_VOICES = np.arange(4)


def allowed_ids(sounding: np.ndarray, last: int, pitch=None, waited: bool = False) -> np.ndarray:
    """The ids valid TX1 may take next, given which voices sound, the last voice that spoke at this
    instant (-1 after a wait), (``pitch``) the NOTEON id each voice sounds and (``waited``) whether the
    last token was a wait shorter than the longest: the validity masks of
    :class:`lakhnes.decoding.constraint.Masker` (with no rules)."""
    order = _VOICES > last
    table = np.concatenate([order, order & sounding, [not (waited and order.any()), False]])
    ok = table[_CLASS]
    if pitch is not None:
        ok[[p for p, on in zip(pitch, sounding, strict=True) if on and p >= 0]] = False  # no same-pitch re-attack
    return np.flatnonzero(ok)


def random_ids(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Token ids of the uniformly random model: each id uniform among :func:`allowed_ids`, until
    the waits reach ``seconds``."""
    limit = int(round(seconds * SAMPLE_RATE))
    sounding, pitch = np.zeros(4, dtype=bool), [-1] * 4
    last, elapsed, out, waited = -1, 0, [], False
    while elapsed < limit:
        ok = allowed_ids(sounding, last, pitch, waited)
        i = int(ok[rng.integers(len(ok))])
        out.append(i)
        waited = bool(V.IS_WAIT[i]) and int(V.WAIT_OF[i]) < V.MAX_WAIT
        if V.IS_WAIT[i]:
            elapsed += int(V.WAIT_OF[i])
            last = -1
        else:
            vi = int(V.VOICE_OF[i])
            sounding[vi] = bool(V.IS_NOTEON[i])
            pitch[vi], last = i, vi
    return np.array(out, dtype=np.int64)


def random_song(seconds: float, rng: np.random.Generator, name: str = "random") -> NesScore:
    """A song of exactly ``seconds`` from the uniformly random model (its last wait cut to fit)."""
    limit = int(round(seconds * SAMPLE_RATE))
    ev = tx1.ids_to_events(random_ids(seconds, rng))
    over = int(-ev[ev < 0].sum()) - limit  # the loop stops on a wait, so the last event is one
    if over > 0:
        ev = ev.copy()
        ev[-1] += over
        if ev[-1] == 0:
            ev = ev[:-1]
    return tx1.events_to_score(ev, end=limit, name=name)


# ----------------------------------------------------------------------------- songs


def find_songs(folder: str | os.PathLike) -> list[Path]:
    """The song files under ``folder`` (recursively, sorted): MIDI, TX1 text or WAV."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError("no such folder" if not root.exists() else "not a folder", str(root))
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(SONG_SUFFIXES))


def load_song(path: str | os.PathLike) -> NesScore | np.ndarray:
    """A score (MIDI, TX1) or mono float64 audio at 44.1 kHz (WAV). Errors name the file."""
    p = Path(path)
    low = p.name.lower()
    if low.endswith(".wav"):
        return _read_wav(p)
    if low.endswith(".tx1.txt"):
        return tx1.read_tx1(p)
    if not low.endswith((".mid", ".midi")):
        raise InvalidInputError("not a song (expected .mid, .midi, .tx1.txt or .wav)", str(p))
    from lakhnes.formats.midi import read_midi

    try:
        return read_midi(p)
    except InvalidInputError as e:
        if not e.reason.startswith("no NES tracks"):
            raise e.with_path(p) from None
    from lakhnes.formats.any_midi import general_midi_to_nes

    return general_midi_to_nes(p, seed=0)


def _read_wav(p: Path) -> np.ndarray:
    import soundfile as sf

    try:
        info = sf.info(str(p))
        if info.frames > MAX_SAMPLES * info.samplerate / SAMPLE_RATE:
            raise InvalidInputError(f"too long ({info.frames / info.samplerate:.0f} s; the limit is "
                                    f"{MAX_SAMPLES // SAMPLE_RATE} s)", str(p))
        audio, sr = sf.read(str(p), dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise InvalidInputError(f"cannot read WAV ({str(e).splitlines()[0]})", str(p)) from None
    audio = audio.mean(axis=1)
    if sr != SAMPLE_RATE:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(sr), SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // g, int(sr) // g)
    return audio


def song_length(song: NesScore | np.ndarray) -> int:
    """Samples (44.1 kHz) of a loaded song."""
    return len(song) if isinstance(song, np.ndarray) else int(song.end)


def render_slice(song: NesScore | np.ndarray, offset: int, length: int) -> np.ndarray:
    """``length`` samples of the song from ``offset``: the synth's rendering of that slice of a
    score, or that part of the audio."""
    if isinstance(song, np.ndarray):
        return np.asarray(song[offset : offset + length], dtype=np.float64)
    from lakhnes import synth

    return synth.render(song.slice(offset, offset + length)).astype(np.float64)


# ----------------------------------------------------------------------------- loudness


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level in dB full scale (``-inf`` for silence)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def match_loudness(audio: np.ndarray, target_dbfs: float = TARGET_DBFS, peak: float = PEAK,
                   fade_s: float = FADE_S) -> tuple[np.ndarray, float, bool]:
    """The clip without DC, faded in and out, at ``target_dbfs`` RMS (or at ``peak`` where the
    target would pass it). Returns the audio, the gain applied (dB) and whether it was limited."""
    a = np.asarray(audio, dtype=np.float64)
    a = a - a.mean()
    n = min(int(fade_s * SAMPLE_RATE), len(a) // 2)
    if n > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))
        a[:n] *= ramp
        a[-n:] *= ramp[::-1]
    level = rms_dbfs(a)
    if not np.isfinite(level):
        raise InvalidInputError("silent clip: nothing to match")
    gain_db = target_dbfs - level
    top = float(np.abs(a).max())
    limited = top * 10 ** (gain_db / 20) > peak
    if limited:
        gain_db = 20.0 * np.log10(peak / top)
    return a * 10 ** (gain_db / 20), gain_db, bool(limited)


# ----------------------------------------------------------------------------- clips


def make_clips(songs: list[Path], k: int, seconds: float, rng: np.random.Generator, clip_dir: Path, *,
               root: Path | None = None, target_dbfs: float = TARGET_DBFS,
               on_clip: Callable[[], None] | None = None) -> tuple[list[dict], list[tuple[str, str]]]:
    """``k`` clips of ``seconds`` from ``songs``: songs visited in a seeded random order, one clip
    per visit at a random offset (another offset when the slice is silent), round after round
    until there are ``k``. Each clip is matched and written to ``clip_dir/<id>.wav`` (``id``
    random, telling nothing). Returns the clips' records (``id``, ``song`` relative to ``root``,
    ``offset`` and ``seconds``, ``gain_db``, ``limited``) and the songs left out with the reason.
    Raises ``InvalidInputError`` when the songs cannot give ``k`` clips."""
    from lakhnes.synth import write_wav

    length = int(round(seconds * SAMPLE_RATE))
    silent = 10 ** (SILENT_DBFS / 20)
    skipped: list[tuple[str, str]] = []
    cache: dict[Path, NesScore | np.ndarray] = {}
    live = [songs[i] for i in rng.permutation(len(songs))]
    used: set[tuple[Path, int]] = set()
    gave: set[Path] = set()  # the songs that gave at least one clip
    clips: list[dict] = []

    def label(p: Path) -> str:
        return str(p.relative_to(root)) if root is not None and p.is_relative_to(root) else p.name

    while len(clips) < k and live:
        keep = []  # the songs that gave a clip this round: visited again in the next
        for path in live:
            if len(clips) >= k:
                break
            try:
                song = cache[path] if path in cache else load_song(path)
            except InvalidInputError as e:
                skipped.append((label(path), e.reason))
                continue
            n = song_length(song)
            if n < length:
                skipped.append((label(path), f"shorter than a clip ({n / SAMPLE_RATE:.2f} s < {seconds:g} s)"))
                continue
            cache[path] = song
            offsets = [int(o) for o in rng.integers(n - length + 1, size=TRIES)]
            for off in offsets:
                if (path, off) in used:
                    continue
                audio = render_slice(song, off, length)
                if np.sqrt(np.mean(np.square(audio - audio.mean()))) < silent:
                    continue
                used.add((path, off))
                gave.add(path)
                audio, gain, limited = match_loudness(audio, target_dbfs)
                cid = secrets.token_hex(8)
                write_wav(audio, clip_dir / f"{cid}.wav")
                clips.append({"id": cid, "song": label(path), "offset": round(off / SAMPLE_RATE, 4),
                              "offset_samples": off, "seconds": seconds, "gain_db": round(gain, 2),
                              "limited": limited})
                if on_clip is not None:
                    on_clip()
                keep.append(path)
                break
            else:
                if path not in gave:
                    skipped.append((label(path), f"silent ({TRIES} slices under {SILENT_DBFS:g} dBFS RMS)"))
                cache.pop(path, None)
        live = keep
    if len(clips) < k:
        why = f"; {len(skipped)} songs left out (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise InvalidInputError(f"only {len(clips)} of {k} clips of {seconds:g} s from {len(songs)} songs{why}")
    return clips, skipped
