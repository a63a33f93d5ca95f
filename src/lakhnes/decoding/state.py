"""The song so far, as the decoding rules read it: per stream, the time, which voice sounds, when
each note started, when each voice fell silent, and the counters the rules bound (:class:`Stream`).
A token costs a few Python operations, whatever the song's length."""

from __future__ import annotations

import bisect

import numpy as np

from lakhnes.core import vocab as V
from lakhnes.core.score import SAMPLE_RATE, VOICES

#: a note shorter than this many samples is "sub-millisecond" (1 ms = 44.1 samples)
SUB_MS = SAMPLE_RATE / 1000

#: the longest period (in notes) of the cycles a :class:`Stream` counts (trills, repeated notes, short riffs)
CYCLE_MAX = 4
#: a :class:`Stream` keeps the song's inter-onset intervals in whole frames of this many samples (60 Hz),
#: those under :data:`IOI_MAX` frames
IOI_FRAME = SAMPLE_RATE // 60
IOI_MAX = 128
#: the pitch classes of a major scale on 0 (C); its relative minor has the same ones
MAJOR = (0, 2, 4, 5, 7, 9, 11)

NEVER = -(1 << 40)  # a time long before any song
FAR = 1 << 60  # no deadline

_WAITS = V.WAITS.tolist()
_WAIT_END = V.WAIT_BASE + len(V.WAITS)
_ON_IDS = [slice(int(V.noteon_ids(v)[0]), int(V.noteon_ids(v)[-1]) + 1) for v in VOICES]
_OFF_ID = [V.VOICE_OFF[v] for v in VOICES]
_VOICE_OF = V.VOICE_OF.tolist()
_WAIT_OF = V.WAIT_OF.tolist()
_IS_ON = V.IS_NOTEON.tolist()
_EVENT_VOICE = np.where(V.IS_NOTEON | V.IS_NOTEOFF, V.VOICE_OF, 4)  # an id's voice if a note event, else 4
_PC_OF = np.where(V.PITCH_OF > 0, V.PITCH_OF % 12, -1).tolist()
_ROOTS_WITH = [[r for r in range(12) if (pc - r) % 12 in MAJOR] for pc in range(12)]  # the scales holding pc


class IdSet:
    """Some NOTEON ids of one voice (``ids``: a numpy index array), as one key of a rule's penalties:
    the offset goes to all of them at once."""

    __slots__ = ("ids", "voice")

    def __init__(self, ids, voice: int):
        self.ids, self.voice = np.asarray(ids, dtype=np.intp), int(voice)


def longest_wait(room: int) -> int:
    """The id of the longest vocabulary wait <= ``room`` samples (``WT_1`` if ``room`` < 1)."""
    return max(bisect.bisect_right(_WAITS, room), 1) - 1 + V.WAIT_BASE


class Stream:
    """The song so far of one stream, as the rules read it: the time ``t`` (samples since decoding
    started; a prefix lies before 0), the voice that spoke last at this instant (``last``, -1 after a
    wait), and per voice (lists of 4): ``sounding``, ``pitch`` (the NOTEON id of its current or last
    note, -1 before any), ``onset`` (start of its current or last note),
    ``since`` (when it fell silent), ``played``, ``sub_run`` (how many notes shorter than 1 ms it just
    played in a row), ``ended`` and ``subs`` (how many of its notes ended since decoding began, and
    how many of those were shorter than 1 ms) and ``oldest``: the earliest of its last ``ring``
    onsets; ``waited``: the last token was a wait shorter than the longest (another wait may not follow);
    ``recent``: its last :data:`CYCLE_MAX` NOTEON ids (latest last) and ``cycle``: for each period P of
    1 .. :data:`CYCLE_MAX` notes, how many of its note-ons in a row repeated the one P notes before;
    and for the whole song: ``n_iois``, how many inter-onset intervals (IOIs: from a voice's note-on to
    its next) its voices have made, and ``iois``, the set (bit r) of those under :data:`IOI_MAX` frames,
    in whole frames (:data:`IOI_FRAME`); ``n_mel``, how many melodic (P1, P2, TR) notes it has, ``in_key``,
    how many of those lie in the major scale (:data:`MAJOR`) on each of the 12 roots, and ``key``, the root
    whose scale holds the most (the earlier one while tied; -1 before any)."""

    __slots__ = ("t", "last", "waited", "sounding", "played", "pitch", "onset", "since", "sub_run", "ended", "subs", "ring",
                 "ptr", "oldest", "recent", "cycle", "iois", "n_iois", "n_mel", "in_key", "key")

    def __init__(self, ring: int = 1):
        self.t, self.last, self.waited = 0, -1, False
        self.sounding, self.played, self.pitch = [False] * 4, [False] * 4, [-1] * 4
        self.onset, self.since = [NEVER] * 4, [NEVER] * 4
        self.sub_run, self.ptr, self.oldest = [0] * 4, [0] * 4, [NEVER] * 4
        self.ended, self.subs = [0] * 4, [0] * 4
        self.ring = [[NEVER] * max(1, int(ring)) for _ in range(4)]
        self.recent = [[] for _ in range(4)]
        self.cycle = [[0] * CYCLE_MAX for _ in range(4)]
        self.iois = self.n_iois = self.n_mel = 0
        self.in_key, self.key = [0] * 12, -1

    @classmethod
    def after(cls, prefix, ring: int = 1) -> Stream:
        """The state after token ids ``prefix`` (a prime), with time 0 at its end."""
        s = cls(ring)
        ids = np.asarray(prefix, dtype=np.int64)
        s.t = -int(V.WAIT_OF[ids].sum())
        for i in ids.tolist():
            s.update(i)
        s.waited = False  # the prime may be cut inside a wait: the song goes on from there
        return s

    def copy(self) -> Stream:
        c = Stream.__new__(Stream)
        c.t, c.last, c.waited, c.iois, c.n_iois = self.t, self.last, self.waited, self.iois, self.n_iois
        c.n_mel, c.in_key, c.key = self.n_mel, list(self.in_key), self.key
        for k in ("sounding", "played", "pitch", "onset", "since", "sub_run", "ended", "subs", "ptr", "oldest"):
            setattr(c, k, list(getattr(self, k)))
        c.ring = [list(r) for r in self.ring]
        c.recent = [list(r) for r in self.recent]
        c.cycle = [list(r) for r in self.cycle]
        return c

    def update(self, tok: int) -> None:
        w = _WAIT_OF[tok]
        if w:
            self.t += w
            self.last, self.waited = -1, w < V.MAX_WAIT
            return
        self.waited = False
        v = _VOICE_OF[tok]
        if v < 0:
            return
        now = self.t
        if self.sounding[v]:  # this event ends the voice's note
            short = now - self.onset[v] < SUB_MS
            self.sub_run[v] = self.sub_run[v] + 1 if short else 0
            if now >= 0:  # notes of the prime (before time 0) are not counted
                self.ended[v] += 1
                self.subs[v] += short
        if _IS_ON[tok]:
            if self.played[v]:
                r = (now - self.onset[v] + IOI_FRAME // 2) // IOI_FRAME
                self.n_iois += 1
                if r < IOI_MAX:
                    self.iois |= 1 << r
            self.sounding[v] = self.played[v] = True
            self.pitch[v] = tok
            self.onset[v] = now
            ring, k = self.ring[v], self.ptr[v]
            ring[k] = now
            k = (k + 1) % len(ring)
            self.ptr[v], self.oldest[v] = k, ring[k]
            recent, cycle = self.recent[v], self.cycle[v]
            n = len(recent)
            for q in range(CYCLE_MAX):  # period q + 1
                cycle[q] = cycle[q] + 1 if q < n and recent[n - 1 - q] == tok else 0
            recent.append(tok)
            if n >= CYCLE_MAX:
                del recent[0]
            if v < 3:
                self.n_mel += 1
                in_key, key = self.in_key, self.key
                for r in _ROOTS_WITH[_PC_OF[tok]]:  # only these scales gained: only they may overtake
                    in_key[r] += 1
                    if key < 0 or in_key[r] > in_key[key]:
                        key = r
                self.key = key
        else:
            self.sounding[v] = False
            self.since[v] = now
        self.last = v


class SongState:
    """The song so far of ``batch`` streams (a :class:`Stream` each, all after token ids ``prefix``)
    and when each is done: once its sampled waits reach ``limit`` samples, after ``max_tokens``
    tokens, or (``kept``, a :class:`lakhnes.decoding.forced.Kept`) once every kept event is placed
    and the kept plan's end is reached. ``ring``: the onsets per voice a stream keeps for the rules."""

    def __init__(self, batch: int, *, limit: int | None = None, max_tokens: int | None = None, prefix=(),
                 ring: int = 1, kept=None):
        self.limit, self.max_tokens, self.kept = limit, max_tokens, kept
        first = Stream.after(prefix, ring) if len(prefix) else Stream(ring)
        self.streams = [first] + [first.copy() for _ in range(batch - 1)]
        self.t0 = first.t
        self.steps = [0] * batch
        self.done = [False] * batch
        self.length = np.zeros(batch, dtype=np.int64)  # tokens before done
        self.tokens: list[list[int]] = [[] for _ in range(batch)]  # the ids each stream took
        for b in range(batch):
            self._check_done(b)

    @property
    def elapsed(self) -> np.ndarray:
        """Samples of waits sampled so far, per stream."""
        return np.array([s.t - self.t0 for s in self.streams], dtype=np.int64)

    def all_done(self) -> bool:
        return all(self.done)

    def take(self, b: int, tok: int) -> None:
        """Stream ``b`` (not done) takes token id ``tok``."""
        self.streams[b].update(tok)
        self.tokens[b].append(tok)
        self.steps[b] += 1
        self._check_done(b)

    def _check_done(self, b: int) -> None:
        if self.done[b]:
            return
        s, kept = self.streams[b], self.kept
        if kept is None:
            done = self.limit is not None and s.t - self.t0 >= self.limit
        else:
            done = kept.next[b] >= kept.n and s.t - self.t0 >= kept.end
        if done or (self.max_tokens is not None and self.steps[b] >= self.max_tokens):
            self.done[b] = True
            self.length[b] = self.steps[b]
