"""The rhythm cache: what this song's rhythm did before after the same recent rhythm.

The song cache (:mod:`lakhnes.models.song_cache`) matches exact token contexts, so a rhythm that
comes back under other pitches is new to it. The rhythm cache is the same cache over the song's
*rhythm*: every token with the pitch of a melodic note-on (P1, P2, TR) taken away, so that it only
says which voice strikes, which voice stops, which noise sound plays and how long to wait. Before each
token, the longest rhythm context of :data:`ORDERS` seen before in the song gives the counts of the
rhythm token that followed it, ``c(r)``; the mixture is

``p(y) = (1 - rho) p(y) + rho c(r(y)) w(y)``

with ``w(y) = p(y) / P(F)`` inside a melodic voice's note-ons ``F`` (which pitch stays the model's
and the other caches' choice) and 1 for every other token. ``rho`` comes from a table fitted on
held-out songs per bucket (as the song cache's λ). NES music keeps its tempo and repeats its bars,
its drum patterns and its rhythms under new notes; this is what keeps them. numpy only.
"""

from __future__ import annotations

import numpy as np

from lakhnes.core.vocab import VOCAB_SIZE, VOICES, noteon_ids
from lakhnes.models import caches
from lakhnes.models.song_cache import N_BUCKETS, ORDERS, SongHistory
from lakhnes.models.song_cache import stream_scores as song_scores

__all__ = ["N_BUCKETS", "ORDERS", "RHYTHM_BOOST", "RHYTHM_OF", "RhythmCachedStepper", "RhythmHistory",
           "merge_tables", "mix", "mixed", "read_rho", "stream_scores"]

#: generation only: the rhythm cache's odds rho / (1 - rho) multiplied by this (``--rhythm-boost``; the
#: table is fitted for perplexity). 3: the realism benchmark's choice over 100 songs, two seeds, with the
#: waits' nucleus (BENCHMARKS.md, "The wait nucleus at the network's tempo"; 2 before it); evaluation never boosts
RHYTHM_BOOST = 3.0

_SPANS = [(int(noteon_ids(v)[0]), int(noteon_ids(v)[-1]) + 1) for v in VOICES[:3]]
#: each id's rhythm token: a melodic voice's note-ons become its first note-on id; the rest stay
RHYTHM_OF = np.arange(VOCAB_SIZE)
for _lo, _hi in _SPANS:
    RHYTHM_OF[_lo:_hi] = _lo
#: the melodic family (0-2) each melodic rhythm token stands for
_FAMILY = {lo: f for f, (lo, _) in enumerate(_SPANS)}


class RhythmHistory(SongHistory):
    """One song's rhythm tokens so far (a :class:`~lakhnes.models.song_cache.SongHistory` over
    :data:`RHYTHM_OF`)."""

    def push(self, y: int) -> None:
        super().push(RHYTHM_OF[int(y)])


def mix(row: np.ndarray, d: dict, rho: float) -> np.ndarray:
    """Log-probabilities of the mixture of softmax(``row``) [V] and the rhythm counts ``d`` (total
    under key -1) with weight ``rho``, written into ``row``."""
    total = d[-1]
    m = row.max()
    p = np.exp(row - m)
    p *= (1 - rho) / p.sum()
    for r, n in d.items():
        if r < 0:
            continue
        f = _FAMILY.get(r)
        if f is None:
            p[r] += rho * n / total
        else:  # the voice's note-ons keep their ratios: (1 - rho) p + rho c p / P(F)
            lo, hi = _SPANS[f]
            mass = p[lo:hi].sum()  # (1 - rho) P(F)
            if mass > 0:  # else no note of the voice is possible: that share is dropped (sampling normalizes)
                p[lo:hi] *= 1 + rho * n / total / mass
    with np.errstate(divide="ignore"):  # an id nothing gives probability stays at -inf
        np.log(p, out=row)
    return row


class RhythmCachedStepper(caches.HistoryStepper):
    """A stepper whose logits are mixed with each stream's rhythm cache (table: ``rho``)."""

    history, kind, name, n = RhythmHistory, "rhythm cache", "rho", N_BUCKETS
    rho = property(lambda self: self.table)

    def _mix(self, logits) -> np.ndarray:
        x = np.array(logits, dtype=np.float64)
        for row, h in zip(x, self.hist, strict=True):
            k, d = h.lookup()
            rho = float(self.rho[k]) if d is not None else 0.0
            if rho > 0:
                mix(row, d, rho)
        return x


def stream_scores(ids) -> tuple[np.ndarray, np.ndarray]:
    """For each target of a token stream (every id but the first), from the ids before it: the
    rhythm cache's bucket and its share of the target's rhythm token, ``c(r(y))``."""
    return song_scores(RHYTHM_OF[np.asarray(ids, dtype=np.int64)])


def mixed(p: np.ndarray, pf: np.ndarray, fam: np.ndarray, rb: np.ndarray, rc: np.ndarray, rho) -> np.ndarray:
    """Each target's probability under the rhythm cache's mixture: ``(1 - rho) p + rho c w`` with ``p``
    its probability before, ``pf`` its melodic family's mass (``fam`` >= 0 for a melodic note-on),
    ``rb`` / ``rc`` the rhythm cache's bucket and share (:func:`stream_scores`)."""
    r = np.asarray(rho, dtype=np.float64)[rb]
    w = np.where(fam >= 0, p / np.maximum(pf, 1e-300), 1.0)
    return (1 - r) * p + r * rc * w


def merge_tables(old: dict | None, rho, mem_len: int, **about) -> dict:
    """The ``rhythm_cache`` entry after a fit at ``mem_len``: one table per memory length."""
    return caches.merge_tables(old, "rho", rho, ORDERS, mem_len, **about)


def read_rho(path, mem_len: int | None = None) -> np.ndarray | None:
    """The rho table in the ``config.json`` of the model at ``path`` (key ``rhythm_cache``) fitted
    nearest ``mem_len`` (None: the longest memory fitted), or None when the model has none."""
    return caches.read_table(path, "rhythm_cache", "rho", ORDERS, N_BUCKETS, mem_len)
