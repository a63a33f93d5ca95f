"""Constrained decoding: small rules that turn the song so far into a mask (and a re-weighting) of
the next token. :mod:`lakhnes.generate` only runs them.

Each step, :class:`Constraint` builds, for every stream, the mask of the token ids it may take from
the song so far (:class:`Stream`: the time, which voices sound, when each note started, when each
voice fell silent, its recent onsets) and from its rules:

- validity (always): a NOTEOFF only for a voice that sounds; at one instant at most one event per
  voice, in the order P1, P2, TR, NO (the canonical TX1 order LakhNES trained on; it also rules out
  zero-length notes); ``<S>`` never (a song ends at its requested length);
- kept voices (a :class:`KeepPlan`): forced at their exact times (see below);
- :class:`Ensemble`: the voices a song uses: each named voice enters by ``entry`` seconds and never
  rests longer than ``max_rest``; voices it does not allow never start a note;
- :class:`MaxHold`: no note longer than ``seconds`` (drones);
- :class:`NoteRate`: at most ``max_onsets`` note starts per voice in any ``window`` (floods);
- :class:`SubMsRun`: at most ``max_run`` notes shorter than 1 ms in a row per voice, and at most
  ``max_share`` of its notes (floods of sub-millisecond notes; single ones are real legato
  re-attacks).

A rule says one of two things about a voice: *not now* (a ban on its NOTEON and/or NOTEOFF) or *by
then* (a deadline by which the voice must speak: with a NOTEON if it is silent, with any event if it
sounds). The model still chooses every pitch and every time: a deadline caps the waits the model
may take (the probability of a longer wait goes to the longest that fits, :meth:`Constraint.adjust`),
and once it is due (within ``DUE_WINDOW``) the due voice must speak before any later voice or wait
(any pitch), after whichever voices precede it at that instant. Rules apply to the voices the model
writes, never to kept ones. Defaults are measured on NES-MDB's train split
(``benchmarks/rule_bounds.py``, figures in BENCHMARKS.md): bounds that nearly every real voice part
meets.

Kept voices: their events are forced at their exact times, and the model may not speak for them.
Two things about the waits around them matter (they caused the floods of sub-millisecond notes):

- A wait that would pass the next kept event is cut to end *on* it. When the time to it is not one
  vocabulary wait (1,234 samples: the longest that fits is 1,200), the cut wait is followed by the
  forced remainder (``carry``): the model is never asked to act at an instant it did not choose,
  34 samples before the kept note. (Before, it was: having just waited, a model trained on songs
  in which every wait ends in an event wrote a note there, which the kept note's instant then
  re-attacked: a sub-millisecond note, and in-context copying turned those into floods.)
- The probability the model gives the kept voices' events, which it may not emit, goes to waiting
  for their next event (the longest wait that fits). Renormalised as before, it went to notes of
  the model's own voices: where the model meant "the melody plays now", P2 or TR played instead.
"""

from __future__ import annotations

import bisect

import numpy as np

from lakhnes.core import vocab as V
from lakhnes.core.score import SAMPLE_RATE, VOICES
from lakhnes.decoding.forced import KeepPlan, keep_plan, parse_keep, quantize  # noqa: F401
from lakhnes.decoding.state import (  # noqa: F401  (re-exported: the rules' vocabulary)
    _EVENT_VOICE,
    _IS_ON,
    _OFF_ID,
    _ON_IDS,
    _VOICE_OF,
    _WAIT_END,
    _WAIT_OF,
    _WAITS,
    FAR,
    NEVER,
    SUB_MS,
    Stream,
    longest_wait,
)
from lakhnes.errors import InvalidInputError

# ------------------------------------------------------------------ defaults, measured on NES-MDB
# `python benchmarks/rule_bounds.py` over the train split (4,502 songs, 15,285 voice parts: the voices
# that play in each song); "p99" = the 99th percentile over voice parts.
#: named voices enter within this many seconds (90th percentile of a voice part's first note: 0.80 s)
ENTRY_S = 1.0
#: the longest rest of a named voice (p99 of a voice part's longest rest between two notes: 8.37 s)
MAX_REST_S = 8.4
#: the longest note (p99 of a voice part's longest note: 7.21 s)
MAX_HOLD_S = 7.5
#: note starts per voice in any RATE_WINDOW samples (p99 of a voice part's most in one second: 61)
MAX_ONSETS = 64
RATE_WINDOW = SAMPLE_RATE
#: notes shorter than 1 ms in a row, per voice (p99 of a voice part's longest such run: 2)
MAX_SUB_MS_RUN = 2
#: the largest share of a voice's notes (ended since decoding began) that may be shorter than 1 ms
#: (p99 of a NES-MDB train voice part's share: 0.505; 98.9 % of voice parts have at most 0.5)
MAX_SUB_MS_SHARE = 0.5
#: a rule's deadline is due this many samples before it: a wait cut for it lands at most 999 short
DUE_WINDOW = 1000

#: ages (s) of the survival curves below
SURVIVAL_AGES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
#: share of notes longer than each age (P1/P2/TR, NO), and of rests between two notes of a voice
NOTE_SURVIVAL = {  # 2,207,401 melodic notes (median 0.094 s), 837,902 noise notes (median 0.017 s)
    "mel": (0.84140, 0.73221, 0.65517, 0.42195, 0.16526, 0.09601, 0.04605, 0.02838, 0.01666, 0.00811, 0.00349,
            0.00132, 0.00049, 0.00020, 0.00012),
    "NO": (0.85959, 0.49171, 0.31376, 0.09604, 0.02318, 0.01104, 0.00385, 0.00178, 0.00085, 0.00038, 0.00027,
           0.00019, 0.00015, 0.00008, 0.00004),
}
REST_SURVIVAL = {  # 748,892 melodic rests (median 0.050 s), 423,954 noise rests (median 0.083 s)
    "mel": (0.92982, 0.72870, 0.47774, 0.28202, 0.10952, 0.05506, 0.02448, 0.01359, 0.00893, 0.00468, 0.00245,
            0.00133, 0.00082, 0.00045, 0.00023),
    "NO": (0.96813, 0.90912, 0.73933, 0.39357, 0.15381, 0.07353, 0.02428, 0.01098, 0.00627, 0.00253, 0.00117,
           0.00056, 0.00030, 0.00021, 0.00014),
}
#: how strongly :class:`Activity` tilts the model towards real note and rest lengths (1: a plain
#: product of the model and the real-length prior)
ACTIVITY = 1.0


# ------------------------------------------------------------------ rules


class Rule:
    """A decoding rule: reads a :class:`Stream` and says *not now* or *by then* per voice.
    Override what applies:

    - ``bans(s)`` -> ``(no_on, no_off)``: bit masks of voices (bit v = voice v) that may not start
      (NOTEON) / end (NOTEOFF, or a new NOTEON) a note now;
    - ``deadlines(s)`` -> 4 times (``FAR``: none) by which each voice must speak, or None: a silent
      voice speaks with a NOTEON, a sounding one with any event. A due voice may speak whatever
      the bans say;
    - ``bias(s)`` -> 4 floats or None: added to the logits of each voice's events (a re-weighting:
      the model still ranks the pitches);
    - ``may_start``: bit mask of the voices that may ever start a note (default all);
    - ``ring``: how many past onsets per voice the :class:`Stream` must keep for the rule.
    """

    ring = 1
    may_start = 0b1111

    def bans(self, s: Stream) -> tuple[int, int]:
        return 0, 0

    def bias(self, s: Stream):
        """None, or 4 logit offsets for each voice's events (NOTEON and NOTEOFF ids)."""
        return None

    def deadlines(self, s: Stream):
        return None


class Ensemble(Rule):
    """The voices a song uses. Each voice of ``named`` enters by ``entry`` seconds (counted from
    the start of decoding) and, once it has played, never rests longer than ``max_rest`` seconds
    (``None``: no bound). Voices outside ``allowed`` (default: all) never start a note.
    Defaults ``ENTRY_S``, ``MAX_REST_S``."""

    def __init__(self, named=VOICES, *, entry: float = ENTRY_S, max_rest: float | None = MAX_REST_S,
                 allowed=VOICES):
        self.named = [v in named for v in VOICES]
        self.may_start = sum(1 << k for k, v in enumerate(VOICES) if v in allowed)
        self.entry = int(round(entry * SAMPLE_RATE))
        self.rest = FAR if max_rest is None else int(round(max_rest * SAMPLE_RATE))
        self._none = not any(self.named)

    def deadlines(self, s):
        if self._none:
            return None
        return [FAR if not n or on else (s.since[v] + self.rest if p else self.entry)
                for v, (n, on, p) in enumerate(zip(self.named, s.sounding, s.played, strict=True))]


class MaxHold(Rule):
    """No note longer than ``seconds`` (default ``MAX_HOLD_S``): a voice that has held one note
    that long must end it (NOTEOFF) or move on (a new NOTEON, any pitch)."""

    def __init__(self, seconds: float = MAX_HOLD_S):
        self.hold = int(round(seconds * SAMPLE_RATE))

    def deadlines(self, s):
        h = self.hold
        return [o + h if on else FAR for o, on in zip(s.onset, s.sounding, strict=True)]


class NoteRate(Rule):
    """At most ``max_onsets`` note starts per voice in any ``window`` samples (defaults
    ``MAX_ONSETS`` per ``RATE_WINDOW``)."""

    def __init__(self, max_onsets: int = MAX_ONSETS, window: int = RATE_WINDOW):
        self.ring, self.window = max(1, int(max_onsets)), int(window)

    def bans(self, s):
        # the earliest of the voice's last `ring` onsets lies inside the window: one more is too many
        start = s.t - self.window
        o = s.oldest
        return (o[0] > start) | (o[1] > start) << 1 | (o[2] > start) << 2 | (o[3] > start) << 3, 0


class SubMsRun(Rule):
    """At most ``max_run`` (default ``MAX_SUB_MS_RUN``) notes shorter than 1 ms in a row per voice,
    and at most ``max_share`` (default ``MAX_SUB_MS_SHARE``) of the notes it ends after decoding
    began: past either bound, a note started less than 1 ms ago may not end yet."""

    def __init__(self, max_run: int = MAX_SUB_MS_RUN, max_share: float = MAX_SUB_MS_SHARE):
        self.max_run, self.max_share = int(max_run), float(max_share)

    def bans(self, s):
        young = 0
        for v in range(4):
            if s.sounding[v] and s.t - s.onset[v] < SUB_MS and (
                    s.sub_run[v] >= self.max_run or s.subs[v] + 1 > self.max_share * (s.ended[v] + 1)):
                young |= 1 << v
        return young, young


class Activity(Rule):
    """Real note and rest lengths as a soft prior: a voice that has held its note for ``a`` seconds
    gets ``strength * ln(S(median) / S(a))`` added to the logits of its events once ``a`` passes the
    median note length, with ``S`` the share of real notes longer than ``a`` (``NOTE_SURVIVAL``);
    likewise for a resting voice of ``named`` (its NOTEONs, with ``REST_SURVIVAL``; before it has
    played, the time since the start counts as its rest). The model still chooses when and what;
    held notes and rests just grow as unlikely as they are in NES-MDB (the hard bounds above stay)."""

    def __init__(self, named=VOICES, strength: float = ACTIVITY):
        self.named = [v in named for v in VOICES]
        self.strength = float(strength)
        self.note = [_tilt(NOTE_SURVIVAL["NO" if v == "NO" else "mel"], strength) for v in VOICES]
        self.rest = [_tilt(REST_SURVIVAL["NO" if v == "NO" else "mel"], strength) for v in VOICES]

    def bias(self, s):
        t, out, any_ = s.t, [0.0] * 4, False
        for v in range(4):
            if s.sounding[v]:
                ages, values = self.note[v]
                age = t - s.onset[v]
            elif self.named[v]:
                ages, values = self.rest[v]
                age = t - s.since[v] if s.played[v] else t
            else:
                continue
            if age > ages[0]:
                k = bisect.bisect_right(ages, age) - 1
                out[v], any_ = values[k], True
        return out if any_ else None


def _tilt(survival, strength: float):
    """(ages in samples, logit offsets) of a survival curve: ``strength * ln(0.5 / S)`` where the
    curve is under 0.5, on a fine grid (log-linear between the measured ages)."""
    ages = np.array(SURVIVAL_AGES)
    logs = np.log(np.maximum(np.asarray(survival, dtype=float), 1e-6))
    grid = np.geomspace(ages[0], ages[-1], 96)
    value = strength * np.maximum(0.0, np.log(0.5) - np.interp(grid, ages, logs))
    first = int(np.argmax(value > 0)) if (value > 0).any() else len(grid) - 1
    return (np.round(grid[first:] * SAMPLE_RATE).astype(np.int64).tolist(), value[first:].tolist())


def default_rules(named=VOICES, *, max_rest: float | None = MAX_REST_S, allowed=VOICES,
                  entry: float = ENTRY_S) -> list[Rule]:
    """The rules every mode samples under by default: :class:`Ensemble` (``named`` voices enter
    and keep playing; voices outside ``allowed`` stay silent), :class:`MaxHold`,
    :class:`NoteRate`, :class:`SubMsRun`."""
    return [Ensemble(named, entry=entry, max_rest=max_rest, allowed=allowed), Activity(named), MaxHold(), NoteRate(),
            SubMsRun()]


# ------------------------------------------------------------------ the core


class Constraint:
    """Decoding state of ``batch`` streams, and the mask of ids each may take next.

    ``limit``: stop once a stream's sampled wait time reaches it (samples); ``max_tokens``: stop
    after that many tokens; ``plan``: force kept voices (stops at the plan's end). ``budget``:
    tokens after which only the longest fitting wait (and what is due) is allowed: a guard that
    always ends decoding, even for an untrained model. ``prefix``: token ids already fed to the
    model (a prime). ``rules``: see :func:`default_rules` (``()``: validity only). ``song_start``:
    the streams begin a song (after ``<S>`` alone): the first token is a note, as in every song
    the model was trained on (their leading silence is trimmed).

    Each step: :meth:`mask` (the allowed ids), :meth:`adjust` (the re-weighted logits), then
    :meth:`update` with the sampled ids. Bookkeeping is O(1) per token and stream; masks are
    precomputed rows, looked up by what the rules decided.
    """

    def __init__(self, batch: int, device="cpu", *, limit: int | None = None, max_tokens: int | None = None,
                 plan: KeepPlan | None = None, budget: int | None = None, prefix=(), rules=(),
                 song_start: bool = False):
        if limit is None and max_tokens is None and plan is None:
            raise ValueError("give limit, max_tokens or plan")
        self.B, self.device = batch, device
        self.limit, self.max_tokens, self.plan, self.budget = limit, max_tokens, plan, budget
        self.rules = list(rules)
        self._banning = [r for r in self.rules if type(r).bans is not Rule.bans]
        self._biasing = [r for r in self.rules if type(r).bias is not Rule.bias]
        self._bias: list = [None] * batch
        self._timing = [r for r in self.rules if type(r).deadlines is not Rule.deadlines]
        ring = max([r.ring for r in self.rules] + [1])
        first = Stream.after(prefix, ring) if len(prefix) else Stream(ring)
        self.streams = [first] + [first.copy() for _ in range(batch - 1)]
        self.t0 = first.t
        self.steps = [0] * batch
        self.song_start = song_start and plan is None
        self.done = [False] * batch
        self.length = np.zeros(batch, dtype=np.int64)  # tokens before done
        self.carry = [False] * batch  # the last wait was cut short of a kept event
        self.free = 0b1111  # voices the model writes (bits)
        start_ok = 0b1111
        for r in self.rules:
            start_ok &= r.may_start
        self.kept_ids: list[slice] = []
        self.kp = [0] * batch
        if plan is not None:
            for v in plan.keep:
                self.free &= ~(1 << VOICES.index(v))
            # padded with one sentinel "event" at the end: nothing to force, time = end
            self.p_time = np.append(plan.times, plan.end).astype(np.int64).tolist()
            self.p_tok = np.append(plan.tokens, V.START).astype(np.int64).tolist()
            self.p_voice = np.append(V.VOICE_OF[plan.tokens].astype(np.int64), 4).tolist()
            self.p_n = len(plan.times)
            for v in plan.keep:
                ids = V.noteon_ids(v)
                self.kept_ids.append(slice(V.VOICE_OFF[v], int(ids[-1]) + 1))
        self.start_ok = start_ok & self.free
        self._rows: dict = {}  # mask rows by (NOTEON bits, NOTEOFF bits, waits or not)
        self._room = [FAR] * batch
        self._land = [0] * batch
        self._waits = [False] * batch
        self._m = np.zeros((batch, V.VOCAB_SIZE), dtype=bool)
        self.n_updates = 0
        for b in range(batch):
            self._check_done(b)

    # -------------------------------------------------------------- bookkeeping
    @property
    def elapsed(self) -> np.ndarray:
        """Samples of waits sampled so far, per stream."""
        return np.array([s.t - self.t0 for s in self.streams], dtype=np.int64)

    def _check_done(self, b: int) -> None:
        if self.done[b]:
            return
        s = self.streams[b]
        if self.plan is None:
            done = self.limit is not None and s.t - self.t0 >= self.limit
        else:
            done = self.kp[b] >= self.p_n and s.t - self.t0 >= self.plan.end
        if done or (self.max_tokens is not None and self.steps[b] >= self.max_tokens):
            self.done[b] = True
            self.length[b] = self.steps[b]

    def all_done(self) -> bool:
        return all(self.done)

    # -------------------------------------------------------------- the mask
    def _row(self, on: int, off: int, wait: bool) -> np.ndarray:
        """The mask row of these voice bits, every wait allowed or none (at most 512 rows)."""
        key = (on, off, wait)
        row = self._rows.get(key)
        if row is None:
            row = np.zeros(V.VOCAB_SIZE, dtype=bool)
            for v in range(4):
                if on >> v & 1:
                    row[_ON_IDS[v]] = True
                if off >> v & 1:
                    row[_OFF_ID[v]] = True
            if wait:
                row[V.WAIT_BASE : _WAIT_END] = True
            self._rows[key] = row
        return row

    def _decide(self, b: int) -> tuple[np.ndarray, int, int]:
        """Stream ``b``'s mask row (before the waits are cut), the kept token allowed now (-1:
        none), and the longest wait allowed (an id; the row's waits above it are cut)."""
        s = self.streams[b]
        if self.done[b]:
            self._bias[b], self._waits[b] = None, False
            return self._row(0, 0, False), V.WAIT_BASE, V.WAIT_BASE
        t, free = s.t, self.free
        no_on = no_off = 0
        for rule in self._banning:
            a, c = rule.bans(s)
            no_on |= a
            no_off |= c
        dl = None
        for rule in self._timing:
            d = rule.deadlines(s)
            if d is not None:
                dl = d if dl is None else [min(x, y) for x, y in zip(dl, d, strict=True)]
        fd, room = 4, FAR
        after = s.last
        if dl is not None:
            for v in range(4):
                if free >> v & 1:
                    x = dl[v] - t
                    if x < room:
                        room = x
                    if fd == 4 and v > after and x < DUE_WINDOW:
                        fd = v
        bias = None
        for rule in self._biasing:
            x = rule.bias(s)
            if x is not None:
                bias = x if bias is None else [p + q for p, q in zip(bias, x, strict=True)]
        if bias is not None and free != 0b1111:
            bias = [x if free >> v & 1 else 0.0 for v, x in enumerate(bias)]
        self._bias[b] = bias
        kept_tok = -1
        if self.plan is not None:
            k = self.kp[b]
            kt = self.p_time[k] - t  # time to the next kept event (the song's end after the last)
            if kt == 0 and k < self.p_n:
                kv = self.p_voice[k]
                if kv <= fd:
                    fd, kept_tok = kv, self.p_tok[k]
            if kt < room:
                room = kt
        # voices that may speak now: free ones after the last speaker, up to the first due one
        speak = free & ((0b1111 << (after + 1)) & 0b1111) & ((1 << (fd + 1)) - 1)
        req = (1 << fd) & speak  # the due voice: it must speak, whatever the bans say
        on = speak & (~no_on | req) & self.start_ok
        off = speak & (~no_off | req) & sum(1 << v for v in range(4) if s.sounding[v])
        if req and not (on | off) & req:  # the due voice cannot speak (rules that contradict): not due
            fd = 4
        wait = fd == 4 and not (self.song_start and self.steps[b] == 0 and on)
        if wait and (self.carry[b] or (self.budget is not None and self.steps[b] >= self.budget)):
            # a forced wait (the remainder of a cut one, or past the budget): the longest that fits
            if self.plan is None and self.limit is not None and room >= FAR // 2:
                room = max(self.limit - (t - self.t0), 1)
            land = longest_wait(min(room, V.MAX_WAIT))
            self._room[b], self._land[b], self._waits[b] = room, land, False
            return self._row(0, 0, False), land, land
        land = longest_wait(min(room, V.MAX_WAIT))
        self._room[b], self._land[b], self._waits[b] = room, land, wait
        return self._row(on, off, wait), kept_tok, land

    def mask_np(self) -> np.ndarray:
        """Bool [B, vocab]: the ids each stream may take now (finished streams: ``WT_1`` only)."""
        m = np.empty((self.B, V.VOCAB_SIZE), dtype=bool)
        for b in range(self.B):
            row, extra, land = self._decide(b)
            m[b] = row
            if land < _WAIT_END - 1:
                m[b, land + 1 : _WAIT_END] = False
            if extra >= 0:
                m[b, extra] = True
        self._m = m
        return m

    def mask(self):
        """:meth:`mask_np` as a torch tensor on the model's device."""
        import torch

        return torch.from_numpy(self.mask_np()).to(self.device)

    def adjust(self, logits, top_k: int | None = None):
        """Re-weight the model's logits (a torch tensor [B, vocab]) for the mask just made (call after :meth:`mask`),
        where the stream may wait: the probability of waits longer than the room before the next
        deadline goes to the longest wait that fits (a model that means to wait past a kept event
        waits up to it, instead of that probability spreading over new notes), and so does the
        probability of the kept voices' events, which the model may not emit. And the rules'
        biases are added (:class:`Activity`): with ``top_k``, only to the ids among the model's own
        ``top_k`` likeliest allowed ones (a push towards a voice never brings in pitches the
        model itself would not have considered)."""
        kept = self.kept_ids
        give = [b for b in range(self.B) if self._waits[b] and (kept or self._room[b] < V.MAX_WAIT)]
        tilt = [b for b in range(self.B) if self._bias[b] is not None]
        if not give and not tilt:
            return logits
        x = logits.detach().float().cpu().numpy().copy()  # the caller's logits stay as they are
        for b in tilt:
            row = x[b]
            add = np.array(self._bias[b] + [0.0], dtype=np.float32)[_EVENT_VOICE]  # each voice's offset, per id
            if top_k:
                ok = row[self._m[b]]
                if len(ok) > top_k:
                    add[row < np.partition(ok, -top_k)[-top_k]] = 0.0
            row += add
        for b in give:
            land = self._land[b]
            parts = [x[b, land + 1 : _WAIT_END]] + [x[b, k] for k in kept]
            extra = np.concatenate(parts) if len(parts) > 1 else parts[0]
            if extra.size:
                top = float(extra.max())
                if top > -np.inf:
                    x[b, land] = np.logaddexp(x[b, land], top + np.log(np.exp(extra - top).sum()))
        import torch

        out = torch.from_numpy(x)
        return out if logits.device.type == "cpu" else out.to(logits.device)

    # -------------------------------------------------------------- taking a token
    def update(self, ids) -> None:
        """Take the sampled ids [B] (ignored for finished streams)."""
        ids = (ids.cpu().numpy() if hasattr(ids, "cpu") else np.asarray(ids)).tolist()
        self.n_updates += 1
        plan = self.plan is not None
        for b, tok in enumerate(ids):
            if self.done[b]:
                continue
            s = self.streams[b]
            if plan:
                k = self.kp[b]
                kt = self.p_time[k] - s.t
                w = _WAIT_OF[tok]
                # a wait that stops short of the kept event it was cut for: the remainder is forced
                self.carry[b] = 0 < w < kt and self._room[b] == kt and tok == self._land[b]
                if kt == 0 and k < self.p_n and tok == self.p_tok[k]:
                    self.kp[b] = k + 1
            s.update(tok)
            self.steps[b] += 1
            self._check_done(b)


def parse_voices(spec, option: str = "voices") -> tuple[str, ...]:
    """``"P1,TR"`` (or a list) → those voices in canonical order; at least one."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [s.strip().upper() for s in items if s.strip()]
    bad = [s for s in names if s not in VOICES]
    if bad:
        raise InvalidInputError(f"{option}: unknown voice {bad[0]!r} (voices are {', '.join(VOICES)})")
    if not names:
        raise InvalidInputError(f"{option}: name at least one voice ({', '.join(VOICES)})")
    return tuple(v for v in VOICES if v in names)
