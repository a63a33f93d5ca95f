"""Forced events: the kept voices of ``--keep`` (:class:`KeepPlan`, forced at their exact times on
the vocabulary's time grid)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakhnes.core import tx1
from lakhnes.core import vocab as V
from lakhnes.core.score import VOICES, NesScore
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
