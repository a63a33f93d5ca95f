"""The voice cache: where this song's melodies went before after the same intervals.

The song cache (:mod:`lakhnes.models.song_cache`) matches whole-ensemble token contexts, so a phrase
that comes back with other voices, other timing or in another key is new to it. The voice cache
looks at each melodic voice (P1, P2, TR) alone: before each token, the longest run of the voice's
last :data:`ORDERS` pitch intervals that occurred before in the song (in any melodic voice) gives a
distribution over the voice's next interval, the counts of what followed it, and so over its next
pitch. It only moves probability *within* a voice's note-ons:
``p(y) = (1 - mu) p(y) + mu P(F) c(y)`` for ``y`` in the voice's note-on family ``F`` of mass
``P(F)``, ``mu`` from a table fitted on held-out songs per bucket (as the song cache's λ). NES
music repeats and transposes its phrases; this is what brings them back. numpy only.
"""

from __future__ import annotations

import numpy as np

from lakhnes.core.vocab import IS_NOTEON, PITCH_OF, PITCH_RANGE, START, VOICE_OF, VOICES, noteon_ids
from lakhnes.models import caches
from lakhnes.models.song_cache import SongHistory

#: interval-context lengths matched, shortest first
ORDERS = (1, 2, 3, 4, 6, 8, 12, 16)
#: buckets: 0 (no match) .. ; 8 per order, as the song cache's
N_BUCKETS = (len(ORDERS) + 1) * 8
#: the melodic voices (indices into VOICES) and each one's note-on ids and pitch range
MELODIC = (0, 1, 2)
_IDS = [noteon_ids(VOICES[v]) for v in MELODIC]
_RANGE = [PITCH_RANGE[VOICES[v]] for v in MELODIC]
_SPANS = [(int(i[0]), int(i[-1]) + 1) for i in _IDS]  # each family's ids: a contiguous slice


def bucket(order_index: int, distinct: int, count: int) -> int:
    """The mu bucket of a match: ``order_index`` (1-based into :data:`ORDERS`), the number of
    ``distinct`` continuations seen and the context's ``count``."""
    return order_index * 8 + (4 if distinct <= 1 else 0) + min(count, 3)


class VoiceHistory:
    """One song's melodic voices so far: each voice's intervals, and for every interval context of
    :data:`ORDERS` (shared by the voices) the counts of the interval that followed it."""

    def __init__(self):
        self.last = [None] * len(MELODIC)  # each voice's last pitch
        self.ints: list[list[int]] = [[] for _ in MELODIC]  # each voice's intervals
        self.tables: list[dict] = [{} for _ in ORDERS]
        self._memo: list = [None] * len(MELODIC)

    def push(self, y: int) -> None:
        """Record token ``y`` (``<S>``: forget the song)."""
        y = int(y)
        if y == START:
            self.__init__()
            return
        if not IS_NOTEON[y] or VOICE_OF[y] not in MELODIC:
            return
        v, p = int(VOICE_OF[y]), int(PITCH_OF[y])
        if self.last[v] is not None:
            iv, ints = p - self.last[v], self.ints[v]
            for k, table in zip(ORDERS, self.tables, strict=True):
                if k > len(ints):
                    break
                key = tuple(ints[-k:])
                d = table.get(key)
                if d is None:
                    table[key] = {None: 1, iv: 1}  # the total under None
                else:
                    d[iv] = d.get(iv, 0) + 1
                    d[None] += 1
            ints.append(iv)
        self.last[v] = p
        self._memo = [None] * len(MELODIC)

    def predict(self, v: int) -> tuple[int, dict | None]:
        """(bucket, {note-on id: probability}) for melodic voice ``v``'s next pitch from the longest
        matched context; (0, None) when none matches or no interval stays in the voice's range."""
        if self._memo[v] is None:
            self._memo[v] = self._predict(v)
        return self._memo[v]

    def _predict(self, v: int) -> tuple[int, dict | None]:
        ints, last = self.ints[v], self.last[v]
        for i in range(len(ORDERS) - 1, -1, -1):
            k = ORDERS[i]
            if k > len(ints):
                continue
            d = self.tables[i].get(tuple(ints[-k:]))
            if d is None:
                continue
            lo, hi = _RANGE[v]
            base = int(_IDS[v][0]) - lo
            hits = {base + last + iv: n for iv, n in d.items() if iv is not None and lo <= last + iv <= hi}
            if not hits:
                return 0, None
            total = sum(hits.values())
            return bucket(i + 1, len(d) - 1, d[None]), {y: n / total for y, n in hits.items()}
        return 0, None


def mix(row: np.ndarray, hist: VoiceHistory, mu: np.ndarray) -> np.ndarray:
    """Log-probabilities ``row`` [V] (normalized) with each melodic voice's note-ons re-weighted by
    the voice cache, in place: ``log((1 - mu) p + mu P(F) c)`` on the family's ids."""
    for v in MELODIC:
        b, dist = hist.predict(v)
        m = float(mu[b]) if dist is not None else 0.0
        if m <= 0:
            continue
        lo, hi = _SPANS[v]
        fam = np.exp(row[lo:hi])
        c = np.zeros(hi - lo)
        c[np.fromiter(dist, np.int64, len(dist)) - lo] = list(dist.values())
        c *= m * fam.sum()
        fam *= 1 - m
        fam += c
        with np.errstate(divide="ignore"):  # an id neither predicts stays at -inf
            row[lo:hi] = np.log(fam)
    return row


class VoiceCachedStepper(caches.HistoryStepper):
    """A stepper whose logits are re-weighted by each stream's voice cache (table: ``mu``)."""

    history, kind, name, n = VoiceHistory, "voice cache", "mu", N_BUCKETS
    mu = property(lambda self: self.table)

    def _mix(self, logits) -> np.ndarray:
        x = np.array(logits, dtype=np.float64)
        for row, h in zip(x, self.hist, strict=True):
            if any(self.mu[b] > 0 for b, d in map(h.predict, MELODIC) if d is not None):
                m = row.max()
                row -= m + np.log(np.exp(row - m).sum())  # normalized: the families' masses
                mix(row, h, self.mu)
        return x


def stream_scores(ids) -> dict[str, np.ndarray]:
    """For each target of a token stream (every id but the first), from the ids before it: the song
    cache's bucket ``b`` and probability ``pc`` (as :func:`lakhnes.models.song_cache.stream_scores`),
    the target's melodic voice ``fam`` (-1 unless a melodic note-on), the song cache's mass ``pcf`` on
    that voice's note-ons, and the voice cache's bucket ``vb`` and probability ``cv`` of the target."""
    ids = np.asarray(ids, dtype=np.int64).tolist()
    n = max(len(ids) - 1, 0)
    out = {"b": np.zeros(n, np.int16), "pc": np.zeros(n), "fam": np.full(n, -1, np.int8), "pcf": np.zeros(n),
           "vb": np.zeros(n, np.int16), "cv": np.zeros(n)}
    b_, pc_, fam_, pcf_, vb_, cv_ = out.values()
    spans = [(int(i[0]), int(i[-1])) for i in _IDS]
    h, vh = SongHistory(), VoiceHistory()
    for t in range(1, len(ids)):
        h.push(ids[t - 1])
        vh.push(ids[t - 1])
        y = ids[t]
        k, d = h.lookup()
        if d is not None:
            b_[t - 1], pc_[t - 1] = k, d.get(y, 0) / d[-1]
        f = int(VOICE_OF[y]) if IS_NOTEON[y] else -1
        if f in MELODIC:
            fam_[t - 1] = f
            lo, hi = spans[f]
            if d is not None:
                pcf_[t - 1] = sum(c for i, c in d.items() if lo <= i <= hi) / d[-1]
            vb, dist = vh.predict(f)
            if dist is not None:
                vb_[t - 1], cv_[t - 1] = vb, dist.get(y, 0.0)
    return out


def mixed(p1: np.ndarray, p1f: np.ndarray, vb: np.ndarray, cv: np.ndarray, mu) -> np.ndarray:
    """Each target's probability under the voice cache's mixture: ``(1 - mu) p1 + mu P1(F) c`` (``p1``
    the target's probability before it, ``p1f`` its family's mass)."""
    m = np.asarray(mu, dtype=np.float64)[vb]
    return (1 - m) * p1 + m * p1f * cv


def merge_tables(old: dict | None, mu, mem_len: int, **about) -> dict:
    """The ``voice_cache`` entry after a fit at ``mem_len``: one table per memory length."""
    return caches.merge_tables(old, "mu", mu, ORDERS, mem_len, **about)


def read_mu(path, mem_len: int | None = None) -> np.ndarray | None:
    """The mu table in the ``config.json`` of the model at ``path`` (key ``voice_cache``) fitted nearest
    ``mem_len`` (None: the longest memory fitted), or None when the model has none."""
    return caches.read_table(path, "voice_cache", "mu", ORDERS, N_BUCKETS, mem_len)
