"""The TX1 vocabulary: 631 token ids (``<S>`` = 0, then the 630 lines of LakhNES' ``tx1_vocab.txt``).

Layout: ``<S>``, 370 waits ``WT_n``, then per voice (P1, P2, TR, NO) its ``NOTEOFF`` followed
by ``NOTEON_p`` for every pitch in the voice's range.
"""

from __future__ import annotations

import hashlib

import numpy as np

from lakhnes.core.score import PITCH_RANGE, VOICES

#: The 370 wait lengths (samples at 44.1 kHz) a token can hold.
WAITS = np.concatenate(
    [np.arange(1, 101), np.arange(110, 1001, 10), np.arange(1100, 10001, 100), np.arange(11000, 100001, 1000)]
).astype(np.int64)
MAX_WAIT = int(WAITS[-1])

START = 0  # <S>
WAIT_BASE = 1
VOICE_OFF = {}  # voice -> id of its NOTEOFF; NOTEON_p is VOICE_OFF[v] + 1 + (p - lo)
_next = WAIT_BASE + len(WAITS)
for _v in VOICES:
    VOICE_OFF[_v] = _next
    _lo, _hi = PITCH_RANGE[_v]
    _next += 1 + _hi - _lo + 1
VOCAB_SIZE = _next
assert VOCAB_SIZE == 631

TOKENS: list[str] = ["<S>"] + [f"WT_{w}" for w in WAITS]
for _v in VOICES:
    _lo, _hi = PITCH_RANGE[_v]
    TOKENS += [f"{_v}_NOTEOFF"] + [f"{_v}_NOTEON_{p}" for p in range(_lo, _hi + 1)]
TOKEN_TO_ID = {t: i for i, t in enumerate(TOKENS)}

#: voice index (0-3) of each id, -1 for <S> and waits
VOICE_OF = np.full(VOCAB_SIZE, -1, dtype=np.int8)
#: pitch of each NOTEON id, 0 for NOTEOFF, -1 otherwise
PITCH_OF = np.full(VOCAB_SIZE, -1, dtype=np.int16)
for _i, _v in enumerate(VOICES):
    _lo, _hi = PITCH_RANGE[_v]
    VOICE_OF[VOICE_OFF[_v] : VOICE_OFF[_v] + 2 + _hi - _lo] = _i
    PITCH_OF[VOICE_OFF[_v]] = 0
    PITCH_OF[VOICE_OFF[_v] + 1 : VOICE_OFF[_v] + 2 + _hi - _lo] = np.arange(_lo, _hi + 1)
#: samples of each wait id, 0 otherwise
WAIT_OF = np.zeros(VOCAB_SIZE, dtype=np.int64)
WAIT_OF[WAIT_BASE : WAIT_BASE + len(WAITS)] = WAITS
IS_WAIT = WAIT_OF > 0
IS_NOTEON = PITCH_OF > 0
IS_NOTEOFF = PITCH_OF == 0

VOCAB_VERSION = "tx1-631"
VOCAB_HASH = hashlib.sha256("\n".join(TOKENS).encode()).hexdigest()[:16]


def noteon_id(voice: str, pitch) -> np.ndarray | int:
    lo, _ = PITCH_RANGE[voice]
    return VOICE_OFF[voice] + 1 + (np.asarray(pitch) - lo)


def noteon_ids(voice: str) -> np.ndarray:
    """All NOTEON ids of a voice."""
    lo, hi = PITCH_RANGE[voice]
    return np.arange(VOICE_OFF[voice] + 1, VOICE_OFF[voice] + 2 + hi - lo)


def snap_wait(samples) -> np.ndarray:
    """Index (0-369) of the nearest vocabulary wait for each length (ties go to the shorter)."""
    s = np.asarray(samples, dtype=np.int64)
    hi = np.clip(np.searchsorted(WAITS, s), 1, len(WAITS) - 1)
    lo = hi - 1
    return np.where(s - WAITS[lo] <= WAITS[hi] - s, lo, hi)


def decode_ids(ids) -> list[str]:
    """Token ids → token strings."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= VOCAB_SIZE):
        bad = ids[(ids < 0) | (ids >= VOCAB_SIZE)][0]
        raise ValueError(f"token id {bad} is outside 0-{VOCAB_SIZE - 1}")
    return [TOKENS[i] for i in ids.tolist()]
