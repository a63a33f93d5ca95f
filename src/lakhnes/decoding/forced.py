"""Forced events: the kept voices of ``--keep`` (a :class:`KeepPlan`, placed at their exact times
on the vocabulary's time grid, :class:`Kept` following each stream through it) and the rhythm of
``--rhythm`` (:class:`Rhythm`: every event forced but the pitches)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakhnes.core import tx1
from lakhnes.core import vocab as V
from lakhnes.core.score import VOICES, NesScore
from lakhnes.decoding.rules import NoReattack
from lakhnes.decoding.state import _WAIT_OF, Stream
from lakhnes.errors import InvalidInputError


@dataclass
class KeepPlan:
    """The kept voices' events of a source, on the vocabulary's time grid."""

    times: np.ndarray  # int64 [n]: time (samples) of each kept event, non-decreasing
    tokens: np.ndarray  # int64 [n]: its token id
    end: int  # the source's end (samples, vocabulary grid)
    keep: tuple[str, ...]


def quantize(score: NesScore) -> np.ndarray:
    """A score's TX1 events with every wait snapped to the vocabulary (what the model can say)."""
    return tx1.ids_to_events(tx1.events_to_ids(tx1.score_to_events(score)))


def keep_plan(source: NesScore, keep) -> KeepPlan:
    """The events of voices ``keep`` in ``source``, snapped to vocabulary waits."""
    keep = tuple(v for v in VOICES if v in set(keep))
    ev = quantize(source)
    waits = np.where(ev < 0, -ev, 0)
    time = np.cumsum(waits) - waits  # time at which each event happens
    voice = np.where(ev >= 0, V.VOICE_OF[np.clip(ev, 0, V.VOCAB_SIZE - 1)], -1)
    sel = np.isin(voice, [VOICES.index(v) for v in keep])
    return KeepPlan(time[sel].astype(np.int64), ev[sel].astype(np.int64), int(waits.sum()), keep)



def parse_keep(spec) -> tuple[str, ...]:
    """``"P1,NO"`` (or a list) → the kept voices in canonical order; 1-3 voices."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [s.strip().upper() for s in items if s.strip()]
    bad = [s for s in names if s not in VOICES]
    if bad:
        raise InvalidInputError(f"keep: unknown voice {bad[0]!r} (voices are {', '.join(VOICES)})")
    keep = tuple(v for v in VOICES if v in names)
    if not 1 <= len(keep) <= 3:
        raise InvalidInputError("keep: name one to three voices to keep (the model writes the others)")
    return keep


class Kept:
    """Where each of ``batch`` streams stands in ``plan``: ``next`` (its next kept event),
    ``carry`` (its last wait was cut short of a kept event: the remainder is forced), ``free`` (bits
    of the voices the model writes) and ``ids`` (slices of the kept voices' event ids)."""

    def __init__(self, plan: KeepPlan, batch: int):
        self.plan, self.end, self.n = plan, plan.end, len(plan.times)
        # padded with one sentinel "event" at the end: nothing to force, time = end
        self.time = np.append(plan.times, plan.end).astype(np.int64).tolist()
        self.tok = np.append(plan.tokens, V.START).astype(np.int64).tolist()
        self.voice = np.append(V.VOICE_OF[plan.tokens].astype(np.int64), 4).tolist()
        self.next = [0] * batch
        self.carry = [False] * batch
        self.free = 0b1111
        self.ids: list[slice] = []
        for v in plan.keep:
            self.free &= ~(1 << VOICES.index(v))
            self.ids.append(slice(V.VOICE_OFF[v], int(V.noteon_ids(v)[-1]) + 1))

    def take(self, b: int, t: int, tok: int, room: int, land: int) -> None:
        """Stream ``b``, at time ``t``, takes ``tok``; ``room`` and ``land``: the room before its
        next deadline and the longest wait that fitted (see :class:`lakhnes.decoding.constraint.Masker`)."""
        k = self.next[b]
        kt = self.time[k] - t
        w = _WAIT_OF[tok]
        # a wait that stops short of the kept event it was cut for: the remainder is forced
        self.carry[b] = 0 < w < kt and room == kt and tok == land
        if kt == 0 and k < self.n and tok == self.tok[k]:
            self.next[b] = k + 1


class Rhythm:
    """``--rhythm`` for ``batch`` streams: every token of ``template`` (ids after ``<S>``) is forced,
    but at each P1/P2/TR NOTEON the model picks the pitch among that voice's NOTEON ids, never the
    pitch that voice already sounds (:class:`lakhnes.decoding.rules.NoReattack`). Drives
    :func:`lakhnes.decoding.loop.run` like :class:`lakhnes.decoding.constraint.Constraint`; the
    result is the template with those pitches, [batch, len(template)] (numpy, as everything here)."""

    def __init__(self, template, batch: int, device=None):
        template = np.asarray(template, dtype=np.int64)
        voice = V.VOICE_OF[template]
        pitched = V.IS_NOTEON[template] & (voice >= 0) & (voice < 3)
        at = np.flatnonzero(pitched)
        self.voice, self.pitched = voice.tolist(), pitched.tolist()
        self.last = int(at[-1]) if len(at) else 0  # nothing to decode after the last pitch
        self.p, self.B = 1, batch  # the position decoded next
        self.ids = np.tile(template, (batch, 1))
        self.masks = np.zeros((3, V.VOCAB_SIZE), dtype=bool)
        for vi in range(3):
            self.masks[vi, V.noteon_ids(VOICES[vi])] = True
        self.streams, self.reattack = [Stream() for _ in range(batch)], NoReattack()

    def all_done(self) -> bool:
        return self.p > self.last

    def forced(self):
        return None if self.pitched[self.p] else self.ids[:, self.p].copy()

    def mask(self):
        m = np.tile(self.masks[self.voice[self.p]], (self.B, 1))
        bad = [(b, i) for b, s in enumerate(self.streams) for i in self.reattack.forbid(s)]
        if bad:
            for b, i in bad:
                m[b, i] = False
        return m

    def adjust(self, logits, top_k=None):
        return logits

    def update(self, ids) -> None:
        if self.pitched[self.p]:
            self.ids[:, self.p] = np.asarray(ids.cpu() if hasattr(ids, "cpu") else ids)
        for s, tok in zip(self.streams, self.ids[:, self.p].tolist(), strict=True):
            s.update(tok)
        self.p += 1

    def progress(self) -> tuple[int, int]:
        return self.p - 1, self.last

    def result(self) -> np.ndarray:
        return self.ids.copy()
