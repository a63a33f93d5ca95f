"""The studio's four modes: option checks, upload validation and the generation call."""

from __future__ import annotations

import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lakhnes.core.score import SAMPLE_RATE, VOICES, NesScore
from lakhnes.core.vocab import VOCAB_SIZE
from lakhnes.errors import InvalidInputError

#: mode → (label, needs an uploaded file)
MODES = {
    "new": ("New song", False),
    "continue": ("Continue my MIDI", True),
    "rhythm": ("New melody for my rhythm", True),
    "accompany": ("Accompany my voice", True),
}
UPLOAD_SUFFIXES = (".mid", ".midi", ".tx1.txt", ".vgm", ".vgz", ".famitracker.txt")


@dataclass(frozen=True)
class Limits:
    """Caps on what one request may ask for."""

    max_seconds: float = 120.0  # music generated (or taken from the upload) per song
    max_num: int = 4  # songs per job
    max_upload_bytes: int = 2 * 1024 * 1024
    max_waiting: int = 16  # jobs queued behind the running one


def check_params(mode: str, *, seconds: float, temperature: float, top_k: int, top_p: float | None,
                 seed: int | None, num: int, prime_seconds: float | None, keep: list[str],
                 limits: Limits, voices: list[str] | None = None, max_rest: float | None = None) -> dict:
    """Validated generation options; raises ``InvalidInputError`` naming the bad option.
    ``voices``: the voices the song uses (None: all four for a new song, the upload's otherwise);
    ``max_rest``: their longest rest in seconds (None: the default, ``decoding.rules.MAX_REST_S``)."""
    if mode not in MODES:
        raise InvalidInputError(f"mode: unknown mode {mode!r} (choose from {', '.join(MODES)})")
    if not 1.0 <= seconds <= limits.max_seconds:
        raise InvalidInputError(f"seconds: {seconds:g} is outside 1-{limits.max_seconds:g}")
    if not 0.05 <= temperature <= 2.0:
        raise InvalidInputError(f"temperature: {temperature:g} is outside 0.05-2")
    if not 0 <= top_k <= VOCAB_SIZE:
        raise InvalidInputError(f"top_k: {top_k} is outside 0-{VOCAB_SIZE} (0 turns it off)")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise InvalidInputError(f"top_p: {top_p:g} is outside (0, 1]")
    if seed is not None and not 0 <= seed < 2**31:
        raise InvalidInputError(f"seed: {seed} is outside 0-{2**31 - 1}")
    if not 1 <= num <= limits.max_num:
        raise InvalidInputError(f"num: {num} is outside 1-{limits.max_num}")
    if prime_seconds is not None and not 0.5 <= prime_seconds <= limits.max_seconds:
        raise InvalidInputError(f"prime_seconds: {prime_seconds:g} is outside 0.5-{limits.max_seconds:g}")
    bad = [v for v in keep if v not in VOICES]
    if bad:
        raise InvalidInputError(f"keep: unknown voice {bad[0]!r} (voices are {', '.join(VOICES)})")
    keep = [v for v in VOICES if v in keep]
    if mode == "accompany" and not 1 <= len(keep) <= 3:
        raise InvalidInputError("keep: choose one to three voices to keep")
    if voices is not None:
        bad = [v for v in voices if v not in VOICES]
        if bad:
            raise InvalidInputError(f"voices: unknown voice {bad[0]!r} (voices are {', '.join(VOICES)})")
        voices = [v for v in VOICES if v in voices]
        if not voices:
            raise InvalidInputError("voices: choose at least one voice")
        if mode == "accompany" and set(voices) <= set(keep):
            raise InvalidInputError("voices: choose a voice for the model to write besides the kept ones")
    if max_rest is not None and not 0.1 <= max_rest <= 60.0:
        raise InvalidInputError(f"max_rest: {max_rest:g} is outside 0.1-60 s")
    if mode == "rhythm" and (voices is not None or max_rest is not None):
        raise InvalidInputError("voices: the rhythm mode plays the upload's voices on its timing")
    if seed is None:  # pick one, so that every song can be made again
        seed = secrets.randbelow(2**31)
    params = {"seconds": seconds, "temperature": temperature, "top_k": top_k, "top_p": top_p,
              "seed": seed, "num": num}
    if mode == "continue":
        params["prime_seconds"] = prime_seconds if prime_seconds is not None else 8.0
    if mode == "accompany":
        params["keep"] = keep
    if mode != "rhythm":
        params["voices"] = voices
        if max_rest is not None:
            params["max_rest"] = max_rest
    return params


def clean_name(filename: str | None) -> str:
    """An uploaded file's name, safe to show and store (no folders, no odd characters)."""
    name = Path(str(filename or "upload").replace("\\", "/")).name
    name = re.sub(r"[^\w.\- ]+", "_", name).strip(" .")[:100]
    return name or "upload"


def load_upload(data: bytes, filename: str, limits: Limits, mapping=None, with_mapping: bool = False):
    """Read an uploaded file with the CLI's checks (NES-MDB MIDI, TX1 text, an NES VGM/VGZ rip,
    FamiTracker text, or any MIDI mapped onto the NES voices; ``mapping``: a ``--map`` value,
    e.g. ``"0=P1,1=-"``); errors name ``filename``. The score; with ``with_mapping``,
    ``(score, MidiMapping or None)``."""
    from lakhnes.formats.files import load_any

    if not data:
        raise InvalidInputError("empty file", filename)
    if len(data) > limits.max_upload_bytes:
        raise InvalidInputError(f"file too large (the limit is {limits.max_upload_bytes // 1024} KB)", filename)
    low = filename.lower()
    suffix = next((s for s in UPLOAD_SUFFIXES if low.endswith(s)), None)
    if suffix is None:  # known by its content: MIDI (Lakh's .mid0 ...), VGM, or gzip (a VGZ)
        suffix = {b"MThd": ".mid", b"Vgm ": ".vgm"}.get(data[:4], ".vgz" if data[:2] == b"\x1f\x8b" else None)
        if suffix is None:
            raise InvalidInputError("not a MIDI (.mid, .midi), TX1 (.tx1.txt), VGM (.vgm, .vgz) or FamiTracker "
                                    "text (.famitracker.txt) file", filename)
    with tempfile.TemporaryDirectory(prefix="lakhnes-upload-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            score, used = load_any(path, mapping=mapping or None)
        except InvalidInputError as e:
            raise InvalidInputError(e.reason, filename) from None
    if not score.num_notes:
        raise InvalidInputError("the song has no notes", filename)
    score.name = filename.split(".")[0]
    return (score, used) if with_mapping else score


def upload_tracks(data: bytes, filename: str, limits: Limits) -> dict:
    """What the page shows of an uploaded file before a job: for a MIDI file without NES tracks, its
    tracks and the automatic mapping (``tracks``: index, name, drum, notes, low, high, first (s),
    voice or None; ``map``: the mapping as a ``--map`` value); for NES-MDB MIDI or TX1, no tracks."""
    score, used = load_upload(data, filename, limits, with_mapping=True)
    if used is None:
        return {"file": filename, "mapped": False, "tracks": [], "map": None, "seconds": round(score.seconds, 2)}
    return {"file": filename, "mapped": True, "tracks": used.to_json(), "map": used.spec(),
            "seconds": round(score.seconds, 2)}


def generate(model, mode: str, params: dict, source: NesScore | None, progress=None):
    """Run one mode; return ``[(score, highlight), ...]`` where ``highlight`` marks the part
    that came from the upload: ``{"span": [start_s, end_s] | None, "voices": [...]}``."""
    from lakhnes import generate as G

    kw = {k: params[k] for k in ("temperature", "top_k", "top_p", "seed", "num")}
    ensemble = {k: params[k] for k in ("voices", "max_rest") if k in params}
    seconds = params["seconds"]
    if mode == "new":
        scores = G.sample(model, seconds=seconds, progress=progress, **ensemble, **kw)
        return [(s, None) for s in scores]
    if source is None:
        raise InvalidInputError(f"mode {mode!r} needs an uploaded song file (MIDI, VGM, FamiTracker text or TX1)")
    if mode == "continue":
        prime = min(params["prime_seconds"], source.end / SAMPLE_RATE)
        scores = G.continue_song(model, source, prime_seconds=prime, seconds=seconds, progress=progress, **ensemble,
                                 **kw)
        return [(s, {"span": [0.0, round(prime, 4)], "voices": []}) for s in scores]
    part = source.slice(0, min(source.end, int(seconds * SAMPLE_RATE)))
    if mode == "rhythm":
        scores = G.accompany_rhythm(model, part, progress=progress, **kw)
        return [(s, {"span": None, "voices": ["NO"]}) for s in scores]
    keep = params["keep"]
    if not any(len(part.notes[v]) for v in keep):
        raise InvalidInputError(f"keep: the upload has no {'/'.join(keep)} notes in its first {seconds:g} s: "
                                "nothing to keep (choose another voice, or another track for it)")
    scores = G.accompany_voices(model, part, keep, progress=progress, **ensemble, **kw)
    return [(s, {"span": None, "voices": keep}) for s in scores]
