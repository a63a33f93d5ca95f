"""TX1: NES scores ⇄ event sequences ⇄ LakhNES text ⇄ token ids.

An *event array* is an ``int64`` array: a value ``>= 0`` is a note token id from
:mod:`lakhnes.core.vocab` (``<S>``, NOTEON, NOTEOFF), a value ``< 0`` is a wait of ``-value``
samples. Raw waits keep the exact timing (the LakhNES text files hold raw waits); token ids
snap them to the 370 vocabulary waits.

Reading TX1 (text or token ids) follows LakhNES' ``tx1_to_midi``, the format's definition, and
every command that reads it (``decode``, ``synth``, ``plot``, ``generate --prime/--rhythm/--keep``,
the studio) goes through the same functions, so they agree:

- a NOTEON while the voice sounds ends the sounding note there (legato);
- a NOTEOFF for a silent voice does nothing (``tx1_to_midi`` skips it); the writers and the
  sampler never produce one (:func:`check_ids` is their check);
- ``<S>``, the model's song separator, is not music and is skipped;
- a song with neither a note nor a wait (e.g. a file holding only ``<S>``) is empty and refused:
  there is nothing to decode, render or continue.
"""

from __future__ import annotations

import re

import numpy as np

from lakhnes.core import vocab as V
from lakhnes.core.score import (
    DEFAULT_VELOCITY,
    MAX_SAMPLES,
    PITCH_RANGE,
    SAMPLE_RATE,
    VOICES,
    NesScore,
    make_notes,
    too_long,
)
from lakhnes.errors import InvalidInputError

__all__ = [
    "score_to_events", "events_to_score", "events_to_text", "text_to_events",
    "events_to_ids", "ids_to_events", "song_ids", "score_to_text", "text_to_score",
    "read_tx1", "check_ids",
]

#: Largest TX1 file read (an hour of dense music is a few MB).
MAX_TX1_BYTES = 32 * 1024 * 1024


def score_to_events(score: NesScore) -> np.ndarray:
    """The TX1 events of a score, exactly as LakhNES' ``midi_to_tx1`` writes them.

    Each note is a NOTEON at its start; a NOTEOFF follows at its end unless the next note of
    the voice starts right then (legato). Events at one instant go P1, P2, TR, NO; a final
    wait runs to the score's end.
    """
    times, voices, codes = [], [], []
    for vi, v in enumerate(VOICES):
        n = score.notes[v]
        if not len(n):
            continue
        off = np.ones(len(n), dtype=bool)
        off[:-1] = n["end"][:-1] != n["start"][1:]
        times += [n["start"], n["end"][off]]
        codes += [V.noteon_id(v, n["pitch"].astype(np.int64)), np.full(int(off.sum()), V.VOICE_OFF[v])]
        voices.append(np.full(len(n) + int(off.sum()), vi, dtype=np.int8))
    if not times:
        return np.array([-score.end] if score.end > 0 else [], dtype=np.int64)
    t = np.concatenate(times)
    c = np.concatenate(codes).astype(np.int64)
    order = np.lexsort((np.concatenate(voices), t))  # by time, then voice; stable
    t, c = t[order], c[order]
    gap = np.diff(t, prepend=0)
    wait_at = np.flatnonzero(gap > 0)
    out = np.insert(c, wait_at, -gap[wait_at])
    if score.end > t[-1]:
        out = np.append(out, -(score.end - t[-1]))
    return out


def events_to_score(events, end: int | None = None, name: str = "") -> NesScore:
    """Rebuild a score from events. A NOTEON while a note sounds ends it (legato); the last
    note of a voice without NOTEOFF runs to the end. ``<S>`` is ignored."""
    ev = np.asarray(events, dtype=np.int64)
    is_wait = ev < 0
    time = np.cumsum(np.where(is_wait, -ev, 0))
    total = int(time[-1]) if len(ev) else 0
    end = total if end is None else int(end)
    code = np.where(is_wait, 0, ev)
    vidx = np.where(is_wait, -1, V.VOICE_OF[np.clip(code, 0, V.VOCAB_SIZE - 1)])
    score = NesScore(end=end, name=name)
    for vi, v in enumerate(VOICES):
        sel = vidx == vi
        tv, cv = time[sel], code[sel]
        if not len(tv):
            continue
        on = np.flatnonzero(cv != V.VOICE_OFF[v])
        nxt = np.append(tv[1:], max(end, total))
        start, stop = tv[on], nxt[on]
        pitch = V.PITCH_OF[cv[on]]
        keep = stop > start
        score.notes[v] = make_notes(start[keep], stop[keep], pitch[keep], DEFAULT_VELOCITY[v])
    return score


def events_to_text(events) -> str:
    """Events → LakhNES TX1 text: one token a line, raw waits, no trailing newline (the
    published files' exact bytes)."""
    toks = V.TOKENS
    return "\n".join([toks[e] if e >= 0 else f"WT_{-e}" for e in np.asarray(events, dtype=np.int64).tolist()])


def text_to_events(text: str, source: str | None = None) -> np.ndarray:
    """TX1 text → events. Raises ``InvalidInputError`` naming the line and the symbol."""
    out = []
    lookup = V.TOKEN_TO_ID
    now = 0  # samples, to say when a bad note falls
    for lineno, raw in enumerate(text.splitlines(), 1):
        tok = raw.strip()
        if not tok:
            continue
        i = lookup.get(tok)
        if i is not None and not V.IS_WAIT[i]:
            out.append(i)
            continue
        if tok.startswith("WT_"):
            num = tok[3:]
            if not _INT.fullmatch(num):
                raise InvalidInputError(f"line {lineno}: wait {_short(tok)!r} is not a whole number of samples",
                                        source)
            sig = num.lstrip("-").lstrip("0") or "0"  # leading zeros do not count
            digits = len(sig)
            if digits > _MAX_WAIT_DIGITS:  # checked before int(): thousands of digits are slow (and raise)
                raise InvalidInputError(f"line {lineno}: song too long: wait {_short(tok)!r} has {digits} digits "
                                        f"(the limit is {MAX_SAMPLES // SAMPLE_RATE} s)", source)
            w = -int(sig) if num.startswith("-") else int(sig)
            if w <= 0:
                raise InvalidInputError(f"line {lineno}: wait {tok!r} must be positive", source)
            now += w
            if now > MAX_SAMPLES:
                raise InvalidInputError(f"line {lineno}: {too_long(now)}", source)
            out.append(-w)
            continue
        raise InvalidInputError(f"line {lineno}: {_why_unknown(_short(tok, 40), now)}", source)
    return np.array(out, dtype=np.int64)


_INT = re.compile(r"-?[0-9]+")
#: digits of the longest wait worth parsing (one hour is 158,760,000 samples: 9 digits)
_MAX_WAIT_DIGITS = len(str(MAX_SAMPLES))


def _short(tok: str, n: int = 24) -> str:
    return tok if len(tok) <= n else f"{tok[:n]}...({len(tok)} characters)"


def _why_unknown(tok: str, now: int = 0) -> str:
    parts = tok.split("_")
    if len(parts) == 3 and parts[0] in VOICES and parts[1] == "NOTEON":
        lo, hi = PITCH_RANGE[parts[0]]
        if parts[2].lstrip("-").isdigit():
            return f"pitch in {tok!r} at {now / SAMPLE_RATE:.3f} s is outside the {parts[0]} range {lo}-{hi}"
        return f"pitch in {tok!r} is not a number"
    return f"unknown symbol {tok!r}"


def events_to_ids(events) -> np.ndarray:
    """Events → token ids (uint16). Each wait snaps to the nearest vocabulary wait; waits
    longer than the longest (100000 samples) become several wait tokens."""
    ev = np.asarray(events, dtype=np.int64)
    w = np.where(ev < 0, -ev, 0)
    big = w > V.MAX_WAIT
    if np.any(big):
        reps = np.where(big, w // V.MAX_WAIT + (w % V.MAX_WAIT > 0), 1)
        ev = np.repeat(ev, reps)
        first = np.cumsum(reps) - reps
        rest = np.where(big, w - (reps - 1) * V.MAX_WAIT, 0)
        w = np.where(np.repeat(big, reps), V.MAX_WAIT, np.repeat(w, reps))
        w[first[big] + reps[big] - 1] = rest[big]
    ids = np.where(ev < 0, V.WAIT_BASE + V.snap_wait(w), ev)
    return ids.astype(np.uint16)


def ids_to_events(ids) -> np.ndarray:
    """Token ids → events (waits take their vocabulary length; ``<S>`` dropped)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= V.VOCAB_SIZE):
        raise InvalidInputError(f"token id outside 0-{V.VOCAB_SIZE - 1}")
    ids = ids[ids != V.START]
    return np.where(V.IS_WAIT[ids], -V.WAIT_OF[ids], ids)


def song_ids(events) -> np.ndarray:
    """A song as LakhNES trained on it: leading/trailing waits trimmed, wrapped in ``<S>``."""
    ids = events_to_ids(events)
    notes = np.flatnonzero(~V.IS_WAIT[ids])
    body = ids[notes[0] : notes[-1] + 1] if len(notes) else ids[:0]
    return np.concatenate([[V.START], body, [V.START]]).astype(np.uint16)


def check_ids(ids) -> None:
    """Raise ``InvalidInputError`` if ids are not playable TX1: a NOTEOFF for a silent voice."""
    sounding = [False] * 4
    for k, i in enumerate(np.asarray(ids).tolist()):
        vi = int(V.VOICE_OF[i])
        if vi < 0:
            continue
        if V.IS_NOTEOFF[i]:
            if not sounding[vi]:
                raise InvalidInputError(f"token {k}: {V.TOKENS[i]} while {VOICES[vi]} is silent")
            sounding[vi] = False
        else:
            sounding[vi] = True


def score_to_text(score: NesScore) -> str:
    return events_to_text(score_to_events(score))


def text_to_score(text: str, name: str = "", source: str | None = None) -> NesScore:
    return events_to_score(text_to_events(text, source), name=name)


def read_tx1(path) -> NesScore:
    """Read a ``.tx1.txt`` file into a score."""
    from pathlib import Path

    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_TX1_BYTES:
            raise InvalidInputError(
                f"file too large ({size / 1e6:.1f} MB; the limit is {MAX_TX1_BYTES / 1e6:.0f} MB)", str(p))
        text = p.read_text()
    except OSError as e:
        raise InvalidInputError(f"cannot read file ({e.strerror or e})", str(p)) from None
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"cannot read TX1 text (not UTF-8: {e.reason} at byte {e.start})", str(p)) from None
    if not text.strip():
        raise InvalidInputError("empty TX1 file", str(p))
    score = text_to_score(text, name=p.name.split(".")[0], source=str(p))
    if score.is_empty:  # e.g. only <S>, or only NOTEOFFs: no note and no wait
        raise InvalidInputError("empty song: no notes and no waits", str(p))
    return score
