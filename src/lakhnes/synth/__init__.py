"""NES audio: render an ``NesScore`` the way the 2A03 APU plays it, and write WAV files.

``render`` builds each channel's segments for the whole song (``channels``), then renders,
mixes (the chip's non-linear mixer) and filters (the console's output filters, ``mixer``) one
block of ``BLOCK`` samples at a time; ``render_wav`` writes those blocks straight to a WAV file,
so memory stays flat at any song length.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator

import numpy as np

from lakhnes.core.score import SAMPLE_RATE, VOICES, NesScore
from lakhnes.errors import InvalidInputError
from lakhnes.synth import channels, mixer

__all__ = ["render", "render_blocks", "render_wav", "write_wav", "peak_gain", "DEFAULT_DUTY", "PEAK_DB", "parse_mute",
           "parse_filters"]

#: Pulse duty (0-3 = 12.5/25/50/75 %) used where a score carries no timbre (e.g. TX1).
DEFAULT_DUTY = 2
#: Level WAV files are written at by default (``lakhnes generate``, ``lakhnes synth``, the studio): the
#: song's peak at -1 dBFS. The chip's own level peaks at 0.13-0.26 of full scale: quiet beside other audio.
PEAK_DB = -1.0
#: Samples rendered at a time (keeps the working arrays in cache and memory flat).
BLOCK = 1 << 16


def parse_mute(mute: str | Iterable[str] | None) -> tuple[str, ...]:
    """Voices to silence, from ``"P2,NO"`` or an iterable of names (any case)."""
    if not mute:
        return ()
    items = mute.split(",") if isinstance(mute, str) else list(mute)
    out = []
    for m in items:
        v = str(m).strip().upper()
        if not v:
            continue
        if v not in VOICES:
            raise InvalidInputError(f"cannot mute {m!r}: voices are {', '.join(VOICES)}")
        out.append(v)
    return tuple(out)


def parse_filters(filters: bool | str | Iterable[str] | None) -> tuple[str, ...]:
    """Output filters to apply, in the chip's order: ``True`` all (``hp90,hp440,lp14k``),
    ``False``/``None``/``""`` none, or names as ``"hp90,lp14k"`` or an iterable (any case)."""
    if filters is None or isinstance(filters, (bool, int, np.bool_)):
        return tuple(mixer.FILTERS) if filters else ()
    if not filters:
        return ()
    items = filters.split(",") if isinstance(filters, str) else list(filters)
    names = {str(f).strip().lower() for f in items} - {""}
    bad = sorted(names - set(mixer.FILTERS))
    if bad:
        raise InvalidInputError(f"unknown filter {bad[0]!r}: filters are {', '.join(mixer.FILTERS)}")
    return tuple(f for f in mixer.FILTERS if f in names)


def _check_options(sample_rate, duty) -> None:
    if not isinstance(sample_rate, (int, np.integer)) or not 8000 <= sample_rate <= 192000:
        raise InvalidInputError(f"sample rate must be a whole number of Hz in 8000-192000, not {sample_rate!r}")
    if duty is not None and duty not in (0, 1, 2, 3):
        raise InvalidInputError(f"duty must be 0-3 (12.5/25/50/75 %), not {duty!r}")


def _scaled(a: np.ndarray, field: str, scale: float) -> np.ndarray:
    if scale == 1.0:
        return a
    a = a.copy()
    a[field] = np.round(a[field] * scale).astype(np.int64)
    return a


def render(
    score: NesScore,
    sample_rate: int = SAMPLE_RATE,
    duty: int | None = None,
    filters: bool | str | Iterable[str] = True,
    mute: str | Iterable[str] = (),
) -> np.ndarray:
    """Render a score to mono float32 audio, ``round(score.end * sample_rate / 44100)`` samples.

    Pulse volume is each note's velocity, updated by the score's CC11 curve; pulse duty comes
    from its CC12 curve (``DEFAULT_DUTY`` where it has none), or ``duty`` for every note.
    Triangle notes are on/off. Noise uses its velocity/CC11 volume and LFSR mode 0 (mode 1
    where a noise CC12 value of 1 asks for it). ``filters`` switches the console's high-pass
    (90, 440 Hz) and low-pass (14 kHz) filters: all (True), none (False: the mixer's unipolar
    level, as the chip produces it) or each by name (``"hp90,hp440"``, see ``parse_filters``).
    ``mute`` silences voices (``"P2,NO"``).

    Raises ``InvalidInputError`` for out-of-range pitches (naming the voice, time and pitch),
    polyphonic voices, bad options, or a score with neither notes nor length.
    """
    n, blocks = _mixed_blocks(score, sample_rate, duty, filters, mute)
    out = np.empty(n, dtype=np.float32)
    at = 0
    for block in blocks:
        out[at : at + len(block)] = block  # float64 -> float32 as it is stored: no extra copy
        at += len(block)
    return out


def render_blocks(
    score: NesScore,
    sample_rate: int = SAMPLE_RATE,
    duty: int | None = None,
    filters: bool | str | Iterable[str] = True,
    mute: str | Iterable[str] = (),
) -> tuple[int, Iterator[np.ndarray]]:
    """``render`` one block at a time: the song's length in samples, and an iterator of its
    float32 blocks (``BLOCK`` samples, the last one shorter). Concatenated, the blocks are
    ``render``'s output exactly; memory stays that of one block whatever the song's length.
    Everything is checked before this returns (same errors as ``render``)."""
    n, blocks = _mixed_blocks(score, sample_rate, duty, filters, mute)
    return n, (b.astype(np.float32) for b in blocks)


def _mixed_blocks(score: NesScore, sample_rate, duty, filters, mute) -> tuple[int, Iterator[np.ndarray]]:
    """The song's length and its blocks as the mixer and filters leave them (float64)."""
    _check_options(sample_rate, duty)
    muted = parse_mute(mute)
    stages = parse_filters(filters)
    score.check()
    end = int(score.end)
    if end <= 0:
        last = [int(score.notes[v]["end"].max()) for v in VOICES if len(score.notes[v])]
        if not last:
            raise InvalidInputError("empty score: no notes and no length to render", score.name or None)
        end = max(last)
    scale = sample_rate / SAMPLE_RATE
    n = int(round(end * scale))
    oscs = {}
    for v in VOICES:
        if v in muted or not len(score.notes[v]) and v != "TR":
            continue
        notes = _scaled(_scaled(score.notes[v], "start", scale), "end", scale)
        vol = _scaled(score.volume[v], "time", scale)
        tim = _scaled(score.timbre[v], "time", scale)
        pitch, gain = notes["pitch"], mixer.SCALE[v]
        if v in ("P1", "P2"):
            seg = channels.segments(
                notes, channels.pulse_rates(pitch, sample_rate), n, vol,
                tim if duty is None else None, DEFAULT_DUTY if duty is None else duty,
            )
            oscs[v] = channels.pulse(seg, gain)
        elif v == "TR":
            seg = channels.segments(notes, channels.triangle_rates(pitch, sample_rate), n, gated=False)
            oscs[v] = channels.triangle(seg, gain)
        else:
            seg = channels.segments(notes, channels.noise_rates(pitch, sample_rate), n, vol, tim, 0)
            oscs[v] = channels.noise(seg, gain)

    def blocks() -> Iterator[np.ndarray]:
        ramp = np.arange(min(n, BLOCK) + 1, dtype=np.float64)
        state = None
        for c0 in range(0, n, BLOCK):
            c1 = min(n, c0 + BLOCK)
            mixed = mixer.mix_scaled(*(oscs[v].block(c0, c1, ramp) if v in oscs else None for v in VOICES))
            if mixed is None:
                mixed = np.zeros(c1 - c0)
            if stages:
                mixed, state = mixer.output_filters(mixed, sample_rate, stages, state=state)
            yield mixed

    return n, blocks()


def _pcm16(audio: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0) * 32767.0).astype(np.int16)


def write_wav(audio: np.ndarray | Iterable[np.ndarray], path: str | os.PathLike,
              sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono audio (float, -1..1; clipped) as a 16-bit PCM WAV, atomically. ``audio`` is
    one array or an iterable of blocks, written as they come (memory: one block)."""
    import soundfile as sf

    from lakhnes.io import atomic_path

    blocks = [audio] if isinstance(audio, np.ndarray) else audio
    with atomic_path(path) as tmp:
        try:
            with sf.SoundFile(str(tmp), "w", int(sample_rate), 1, subtype="PCM_16", format="WAV") as fh:
                for block in blocks:
                    fh.write(_pcm16(block))
        except sf.SoundFileRuntimeError as e:  # libsndfile's errors are not OSErrors: say it as one
            raise OSError(errno.EIO, str(getattr(e, "error_string", e)), str(path)) from None


def peak_gain(score: NesScore, peak_db: float = PEAK_DB, sample_rate: int = SAMPLE_RATE, duty: int | None = None,
              filters: bool | str | Iterable[str] = True) -> float:
    """The gain that brings the song's full mix (every voice) to a peak of ``peak_db`` dBFS (1.0 for
    a silent song). One extra rendering pass, block by block."""
    _, blocks = render_blocks(score, sample_rate, duty, filters)
    return _gain_to(blocks, peak_db)


def _gain_to(blocks, peak_db: float) -> float:
    peak = max((float(np.abs(b).max()) for b in blocks if len(b)), default=0.0)
    return float(10 ** (peak_db / 20) / peak) if peak > 0 else 1.0


#: songs up to this many samples (5 minutes; 106 MB as float64) are rendered once for a WAV at a set peak
HOLD_SAMPLES = 5 * 60 * SAMPLE_RATE


def render_wav(score: NesScore, path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, duty: int | None = None,
               filters: bool | str | Iterable[str] = True, mute: str | Iterable[str] = (),
               peak_db: float | None = None) -> int:
    """Render ``score`` straight into a 16-bit WAV file block by block (``render`` + ``write_wav``
    with the same bytes, without holding the song in memory); returns its length in samples.
    ``peak_db``: scale to that peak (dBFS) first, by the gain of the full mix (:func:`peak_gain`:
    muted voices do not make the others louder); None: the chip's own level. A song of at most
    :data:`HOLD_SAMPLES` without muted voices is rendered once and held for its peak."""
    n, blocks = render_blocks(score, sample_rate, duty, filters, mute)
    if peak_db is not None:
        if n <= HOLD_SAMPLES and not parse_mute(mute):
            blocks = list(blocks)
            gain = _gain_to(blocks, peak_db)
        else:
            gain = peak_gain(score, peak_db, sample_rate, duty, filters)
        blocks = (b * gain for b in blocks)
    write_wav(blocks, path, sample_rate)
    return n
