"""The rules applied to a batch of streams: :class:`Masker` turns the song so far (validity, with
:class:`lakhnes.decoding.rules.NoReattack`, the rules' bans, deadlines and biases, the kept events) into the mask of the ids each stream may take
next, :func:`reweight` adjusts the model's logits for it, and :class:`Constraint` holds the three
parts (state, mask, kept events) that :func:`lakhnes.decoding.loop.run` drives.

Bookkeeping is O(1) per token and stream; masks are precomputed rows, looked up by what the rules
decided (see :mod:`lakhnes.decoding.rules` for what a rule may say)."""

from __future__ import annotations

import numpy as np

from lakhnes.core import vocab as V
from lakhnes.decoding.forced import KeepPlan, Kept
from lakhnes.decoding.measured import DUE_WINDOW
from lakhnes.decoding.rules import NoReattack, Rule
from lakhnes.decoding.state import (
    _EVENT_VOICE,
    _OFF_ID,
    _ON_IDS,
    _WAIT_END,
    FAR,
    IdSet,
    SongState,
    longest_wait,
)


class Masker:
    """The mask of the ids each stream of ``state`` may take now, under ``rules`` and ``kept``
    events; ``budget``: tokens after which only the longest fitting wait (and what is due) is
    allowed; ``song_start``: the first token is a note. Keeps, per stream, what :func:`reweight`
    and :meth:`Kept.take` read: ``room`` (samples to the next deadline), ``land`` (the longest wait
    that fits), ``waits`` (whether the stream may wait), ``bias`` (the rules' logit offsets)."""

    def __init__(self, state: SongState, rules=(), *, kept: Kept | None = None, budget: int | None = None,
                 song_start: bool = False):
        self.state, self.kept, self.budget, self.song_start = state, kept, budget, song_start
        rules = list(rules)
        self.banning = [r for r in rules if type(r).bans is not Rule.bans]
        self.biasing = [r for r in rules if type(r).bias is not Rule.bias]
        self.penalizing = [r for r in rules if type(r).penalties is not Rule.penalties]
        self.timing = [r for r in rules if type(r).deadlines is not Rule.deadlines]
        start_ok = 0b1111
        for r in rules:
            start_ok &= r.may_start
        self.free = 0b1111 if kept is None else kept.free  # voices the model writes (bits)
        self.start_ok = start_ok & self.free
        self.kept_ids: list[slice] = [] if kept is None else kept.ids
        self._rows: dict = {}  # mask rows by (NOTEON bits, NOTEOFF bits, waits or not)
        self._offsets: dict = {}  # offset rows by the rules' biases (see offsets)
        B = len(state.streams)
        self.bias: list = [None] * B
        self.pen: list = [None] * B  # the rules' offsets of single ids ({id: offset} or None)
        self.room, self.land, self.waits = [FAR] * B, [0] * B, [False] * B
        self.m = np.zeros((B, V.VOCAB_SIZE), dtype=bool)
        self.reattack = NoReattack()  # validity, whatever the rules

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

    def offsets(self, bias: list) -> np.ndarray:
        """The rules' 4 logit offsets as one per id (float32; a copy of a row kept per offsets seen)."""
        key = tuple(bias)
        row = self._offsets.get(key)
        if row is None:
            if len(self._offsets) >= 4096:
                self._offsets.clear()
            row = self._offsets[key] = np.array(bias + [0.0], dtype=np.float32)[_EVENT_VOICE]
        return row.copy()

    def mask(self) -> np.ndarray:
        """Bool [B, vocab]: the ids each stream may take now (finished streams: ``WT_1`` only)."""
        streams, forbid = self.state.streams, self.reattack.forbid
        m = np.empty((len(streams), V.VOCAB_SIZE), dtype=bool)
        for b, mb in enumerate(m):
            row, extra, land = self._decide(b)
            mb[:] = row
            if land < _WAIT_END - 1:
                mb[land + 1 : _WAIT_END] = False
            for i in forbid(streams[b]):
                mb[i] = False
            if extra >= 0:  # a kept event is the user's: never masked
                mb[extra] = True
        self.m = m
        return m

    def _decide(self, b: int) -> tuple[np.ndarray, int, int]:
        """Stream ``b``'s mask row (before the waits are cut), the kept token allowed now (-1:
        none), and the longest wait allowed (an id; the row's waits above it are cut)."""
        st, kept = self.state, self.kept
        s = st.streams[b]
        if st.done[b]:
            self.bias[b], self.pen[b], self.waits[b] = None, None, False
            return self._row(0, 0, False), V.WAIT_BASE, V.WAIT_BASE
        t, free = s.t, self.free
        no_on = no_off = 0
        for rule in self.banning:
            a, c = rule.bans(s)
            no_on |= a
            no_off |= c
        dl = None
        for rule in self.timing:
            d = rule.deadlines(s)
            if d is not None:
                dl = d if dl is None else list(map(min, dl, d))
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
        for rule in self.biasing:
            x = rule.bias(s)
            if x is not None:
                bias = x if bias is None else [p + q for p, q in zip(bias, x, strict=True)]
        if bias is not None and free != 0b1111:
            bias = [x if free >> v & 1 else 0.0 for v, x in enumerate(bias)]
        self.bias[b] = bias
        self.pen[b] = _penalties(self.penalizing, s, free) if self.penalizing else None
        kept_tok = -1
        if kept is not None:
            k = kept.next[b]
            kt = kept.time[k] - t  # time to the next kept event (the song's end after the last)
            if kt == 0 and k < kept.n:
                kv = kept.voice[k]
                if kv <= fd:
                    fd, kept_tok = kv, kept.tok[k]
            if kt < room:
                room = kt
        # voices that may speak now: free ones after the last speaker, up to the first due one
        speak = free & ((0b1111 << (after + 1)) & 0b1111) & ((1 << (fd + 1)) - 1)
        req = (1 << fd) & speak  # the due voice: it must speak, whatever the bans say
        on = speak & (~no_on | req) & self.start_ok
        sd = s.sounding
        off = speak & (~no_off | req) & (sd[0] | sd[1] << 1 | sd[2] << 2 | sd[3] << 3)
        if req and not (on | off) & req:  # the due voice cannot speak (rules that contradict): not due
            fd = 4
        wait = fd == 4 and not (self.song_start and st.steps[b] == 0 and on)
        if wait and ((kept is not None and kept.carry[b]) or (self.budget is not None and st.steps[b] >= self.budget)):
            # a forced wait (the remainder of a cut one, or past the budget): the longest that fits
            if kept is None and st.limit is not None and room >= FAR // 2:
                room = max(st.limit - (t - st.t0), 1)
            land = longest_wait(min(room, V.MAX_WAIT))
            self.room[b], self.land[b], self.waits[b] = room, land, False
            return self._row(0, 0, False), land, land
        if s.waited and on | off and kept is None:  # real TX1 never has a wait after a shorter wait than
            wait = False  # the longest (kept events may split one: their timing is the user's)
        land = longest_wait(min(room, V.MAX_WAIT))
        self.room[b], self.land[b], self.waits[b] = room, land, wait
        return self._row(on, off, wait), kept_tok, land


def _penalties(rules, s, free: int):
    """The ``rules``' offsets of NOTEON ids for stream ``s`` ({id, (lo, hi) or IdSet: offset}, the lowest where
    two give one key, added where two keys hold one id; None: none), for the ids of the ``free`` voices
    (bits) only."""
    pen = None
    for rule in rules:
        x = rule.penalties(s)
        if x:
            if pen is None:
                pen = x
            else:
                for i, o in x.items():
                    pen[i] = min(o, pen.get(i, 0.0))
    if pen is not None and free != 0b1111:
        pen = {i: o for i, o in pen.items() if free >> _key_voice(i) & 1} or None
    return pen


def _key_voice(i) -> int:
    """The voice of a penalty key: an id, an id range ``(lo, hi)`` or an :class:`IdSet`."""
    return i.voice if type(i) is IdSet else int(_EVENT_VOICE[i[0] if type(i) is tuple else i])


_max, _sum = np.maximum.reduce, np.add.reduce


def reweight(logits, masker: Masker, top_k: int | None = None):
    """The model's logits (numpy [B, vocab]) re-weighted for the mask ``masker`` just made,
    where a stream may wait: the probability of waits longer than the room before the next deadline
    goes to the longest wait that fits (a model that means to wait past a kept event waits up to it,
    instead of that probability spreading over new notes), and so does the probability of the kept
    voices' events, which the model may not emit. And the rules' biases are added
    (:class:`lakhnes.decoding.rules.Activity`): with ``top_k``, only to the ids among the model's
    own ``top_k`` likeliest allowed ones (a push towards a voice never brings in pitches the model
    itself would not have considered), and their offsets of NOTEON ids
    (:class:`lakhnes.decoding.rules.Cycles`, :class:`lakhnes.decoding.rules.Pulse`). The caller's logits stay as they are."""
    kept, waits, room, bias, pen = masker.kept_ids, masker.waits, masker.room, masker.bias, masker.pen
    give = [b for b in range(len(waits)) if waits[b] and (kept or room[b] < V.MAX_WAIT)]
    tilt = [b for b in range(len(waits)) if bias[b] is not None]
    single = [b for b in range(len(waits)) if pen[b] is not None]
    if not give and not tilt and not single:
        return logits
    x = np.array(logits.detach().float().cpu().numpy() if hasattr(logits, "detach") else logits,
                 dtype=np.float32)  # a copy (a torch tensor is read as numpy)
    for b in tilt:
        row = x[b]
        add = masker.offsets(bias[b])
        if top_k:
            ok = row[masker.m[b]]
            if len(ok) > top_k:
                ok.sort()  # the k-th largest (faster than np.partition)
                add[row < ok[-top_k]] = 0.0
        row += add
    for b in single:
        for i, o in pen[b].items():
            if type(i) is tuple:
                x[b, i[0] : i[1]] += o
            elif type(i) is IdSet:
                x[b, i.ids] += o
            else:
                x[b, i] += o
    for b in give:
        land = masker.land[b]
        parts = [x[b, land + 1 : _WAIT_END]] + [x[b, k] for k in kept]
        extra = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if extra.size:
            top = float(_max(extra))
            if top > -np.inf:
                e = extra - top
                x[b, land] = np.logaddexp(x[b, land], top + np.log(_sum(np.exp(e, out=e))))
    return x


class Constraint:
    """Decoding state of ``batch`` streams under ``rules``, as :func:`lakhnes.decoding.loop.run`
    drives it: :meth:`mask` (the allowed ids), :meth:`adjust` (the re-weighted logits), then
    :meth:`update` with the sampled ids.

    ``limit``: stop once a stream's sampled wait time reaches it (samples); ``max_tokens``: stop
    after that many tokens; ``plan``: force kept voices (stops at the plan's end). ``budget``:
    tokens after which only the longest fitting wait (and what is due) is allowed: a guard that
    always ends decoding, even for an untrained model. ``prefix``: token ids already fed to the
    model (a prime). ``rules``: see :func:`lakhnes.decoding.rules.default_rules` (``()``: validity
    only). ``song_start``: the streams begin a song (after ``<S>`` alone): the first token is a
    note, as in every song the model was trained on (their leading silence is trimmed)."""

    def __init__(self, batch: int, device="cpu", *, limit: int | None = None, max_tokens: int | None = None,
                 plan: KeepPlan | None = None, budget: int | None = None, prefix=(), rules=(),
                 song_start: bool = False):
        if limit is None and max_tokens is None and plan is None:
            raise ValueError("give limit, max_tokens or plan")
        self.B, self.device = batch, device
        rules = list(rules)
        self.kept = None if plan is None else Kept(plan, batch)
        ring = max([r.ring for r in rules] + [1])
        self.state = SongState(batch, limit=limit, max_tokens=max_tokens, prefix=prefix, ring=ring, kept=self.kept)
        self.masker = Masker(self.state, rules, kept=self.kept, budget=budget, song_start=song_start and plan is None)

    @property
    def elapsed(self) -> np.ndarray:
        """Samples of waits sampled so far, per stream."""
        return self.state.elapsed

    def all_done(self) -> bool:
        return self.state.all_done()

    def forced(self):
        """None: kept events are offered through the mask, never imposed."""
        return None

    def mask(self) -> np.ndarray:
        """Bool [B, vocab]: the ids each stream may take now (see :meth:`Masker.mask`)."""
        return self.masker.mask()

    mask_np = mask

    def adjust(self, logits, top_k: int | None = None):
        """:func:`reweight` for the mask just made (call after :meth:`mask`)."""
        return reweight(logits, self.masker, top_k)

    def update(self, ids) -> None:
        """Take the sampled ids [B] (ignored for finished streams)."""
        ids = np.asarray(ids.cpu() if hasattr(ids, "cpu") else ids).tolist()
        st, kept, m = self.state, self.kept, self.masker
        for b, tok in enumerate(ids):
            if st.done[b]:
                continue
            if kept is not None:
                kept.take(b, st.streams[b].t, tok, m.room[b], m.land[b])
            st.take(b, tok)

    def progress(self) -> tuple[int, int]:
        """(done, total): mean samples of music (tokens, for a token count) against the target."""
        st = self.state
        if self.kept is not None:
            total, done = self.kept.end, int(st.elapsed.mean())
        elif st.limit is not None:
            total, done = st.limit, int(np.minimum(st.elapsed, st.limit).mean())
        else:
            total, done = st.max_tokens, int(np.mean(st.steps))
        return min(total, done), total

    def result(self) -> list[np.ndarray]:
        """Each stream's sampled ids, up to where it finished."""
        return [np.array(t, dtype=np.int64) for t in self.state.tokens]
