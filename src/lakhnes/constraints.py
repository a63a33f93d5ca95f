"""Constrained decoding: per-step masks of the token ids that keep sampled TX1 valid.

Rules applied to every stream at every step (masks, never repairs afterwards):

- a NOTEOFF only for a voice that sounds; NOTEON ids exist only for in-range pitches;
- at one instant at most one event per voice, in the order P1, P2, TR, NO (the canonical TX1
  order LakhNES trained on; it also rules out zero-length notes);
- ``<S>`` is never sampled: a song ends when it reaches its requested length;
- with a :class:`KeepPlan`, the kept voices' events are forced at their exact times: the model may
  not emit kept-voice events itself, a wait longer than the time to the next kept event is masked
  (its probability goes to the longest wait that fits: see :meth:`Constraint.adjust`), and at
  that time only the kept event and free-voice events that precede it in the canonical order are
  allowed;
- past its token budget a stream may only take the longest wait that fits (a guard that always
  ends decoding, even for an untrained model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lakhnes import tx1
from lakhnes import vocab as V
from lakhnes.errors import InvalidInputError
from lakhnes.score import VOICES, NesScore

#: token class of each id: NOTEON of voice v -> v, NOTEOFF of voice v -> 4 + v, wait -> 8, <S> -> 9
TOKEN_CLASS = np.full(V.VOCAB_SIZE, 9, dtype=np.int64)
TOKEN_CLASS[V.IS_WAIT] = 8
TOKEN_CLASS[V.IS_NOTEON] = V.VOICE_OF[V.IS_NOTEON]
TOKEN_CLASS[V.IS_NOTEOFF] = 4 + V.VOICE_OF[V.IS_NOTEOFF]


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


def state_after(ids) -> tuple[list[bool], int]:
    """Which voices sound after token ids, and the last voice that spoke at the final instant (-1
    if the ids end with a wait or are empty)."""
    sounding, last = [False] * 4, -1
    for i in np.asarray(ids, dtype=np.int64).tolist():
        vi = int(V.VOICE_OF[i])
        if V.IS_WAIT[i]:
            last = -1
        elif vi >= 0:
            sounding[vi], last = bool(V.IS_NOTEON[i]), vi
    return sounding, last


class Constraint:
    """Decoding state of ``batch`` streams, and the mask of ids each may take next.

    ``limit``: stop once a stream's sampled wait time reaches it (samples); ``max_tokens``: stop
    after that many tokens; ``plan``: force kept voices (stops at the plan's end). ``budget``: tokens
    after which only the longest fitting wait is allowed. ``sounding``/``last``: the state after a
    prefix (a prime) already fed to the model.
    """

    def __init__(self, batch: int, device="cpu", *, limit: int | None = None, max_tokens: int | None = None,
                 plan: KeepPlan | None = None, budget: int | None = None, sounding=None, last: int = -1):
        if limit is None and max_tokens is None and plan is None:
            raise ValueError("give limit, max_tokens or plan")
        dev = torch.device(device)
        self.B, self.device = batch, dev
        self.limit, self.max_tokens, self.plan = limit, max_tokens, plan
        self.budget = budget
        self.cls = torch.as_tensor(TOKEN_CLASS, device=dev).expand(batch, V.VOCAB_SIZE)
        self.wait_len = torch.as_tensor(V.WAIT_OF, device=dev)
        self.is_wait = torch.as_tensor(V.IS_WAIT, device=dev)
        self.is_on = torch.as_tensor(V.IS_NOTEON, device=dev)
        self.voice_of = torch.as_tensor(V.VOICE_OF.astype(np.int64), device=dev)
        self.waits = torch.as_tensor(V.WAITS, device=dev)
        self.voices = torch.arange(4, device=dev)
        self.rows = torch.arange(batch, device=dev)
        self.false = torch.zeros(batch, 1, dtype=torch.bool, device=dev)
        s = torch.as_tensor(sounding if sounding is not None else [False] * 4, dtype=torch.bool, device=dev)
        self.sounding = s.expand(batch, 4).clone()
        self.last = torch.full((batch,), last, dtype=torch.long, device=dev)
        self.elapsed = torch.zeros(batch, dtype=torch.long, device=dev)
        self.steps = torch.zeros(batch, dtype=torch.long, device=dev)
        self.done = torch.zeros(batch, dtype=torch.bool, device=dev)
        self.length = torch.zeros(batch, dtype=torch.long, device=dev)  # tokens before done
        self.free = torch.ones(4, dtype=torch.bool, device=dev)
        if plan is not None:
            n = len(plan.times)
            self.free[[VOICES.index(v) for v in plan.keep]] = False
            # padded with one sentinel "event" at the end: nothing to force, time = end
            self.p_time = torch.as_tensor(np.append(plan.times, plan.end), device=dev)
            self.p_tok = torch.as_tensor(np.append(plan.tokens, V.START), device=dev)
            self.p_voice = torch.as_tensor(np.append(V.VOICE_OF[plan.tokens].astype(np.int64), 4), device=dev)
            self.p_n = n
            self.kp = torch.zeros(batch, dtype=torch.long, device=dev)
        # Python-side summaries that let a step skip whole groups of tensor operations (at batch 1
        # a step is a few dozen tiny operations, each costing more dispatch than arithmetic)
        self.n_updates = 0  # an upper bound of every stream's steps
        self.n_done = 0
        self._update_done()

    def _update_done(self) -> None:
        if self.plan is None and self.n_done == 0:  # fast path: nobody can have finished yet?
            if self.limit is None and self.n_updates < self.max_tokens:
                return
            if self.limit is not None and not bool((self.elapsed >= self.limit).any()) and (
                    self.max_tokens is None or self.n_updates < self.max_tokens):
                return
        done = torch.zeros_like(self.done)
        if self.limit is not None:
            done |= self.elapsed >= self.limit
        if self.max_tokens is not None:
            done |= self.steps >= self.max_tokens
        if self.plan is not None:
            done |= (self.kp >= self.p_n) & (self.elapsed >= self.plan.end)
        self.length = torch.where(done & ~self.done, self.steps, self.length)
        self.done |= done
        self.n_done = int(self.done.sum())

    def mask(self) -> torch.Tensor:
        """Bool [B, vocab]: the ids each stream may take now (finished streams: ``WT_1`` only)."""
        order = self.voices[None, :] > self.last[:, None]  # [B, 4]
        if self.plan is not None:
            nxt = self.p_time[self.kp]
            dt = nxt - self.elapsed
            at = dt == 0
            order &= ~at[:, None] | (self.voices[None, :] < self.p_voice[self.kp][:, None])
        on = order & self.free
        off = on & self.sounding
        wait = ~self.done[:, None] if self.plan is None else (dt > 0)[:, None]
        table = torch.cat([on, off, wait, self.false], 1)  # [B, 10]
        m = table.gather(1, self.cls)
        if self.plan is not None:
            m &= ~self.is_wait | (self.wait_len <= dt[:, None])
            m[self.rows, self.p_tok[self.kp]] |= at & (self.kp < self.p_n)
        if self.budget is not None and self.n_updates >= self.budget:
            over = (self.steps >= self.budget) & ~self.done
            if bool(over.any()):
                room = dt if self.plan is not None else (self.limit - self.elapsed).clamp(min=1)
                longest = torch.searchsorted(self.waits, room.clamp(min=1), right=True) - 1 + V.WAIT_BASE
                forced = torch.zeros_like(m)
                forced[self.rows, longest] = room > 0
                if self.plan is not None:
                    forced[self.rows, self.p_tok[self.kp]] |= at & (self.kp < self.p_n)
                m = torch.where(over[:, None], forced, m)
        if self.n_done:
            idle = torch.zeros_like(m)
            idle[:, V.WAIT_BASE] = True
            m = torch.where(self.done[:, None], idle, m)
        return m

    def adjust(self, logits: torch.Tensor) -> torch.Tensor:
        """With a plan: give each stream's masked waits (longer than the time to its next kept
        event) to the longest wait that fits, so a model that means to wait past a kept event
        waits up to it instead of spreading that probability over new notes."""
        if self.plan is None:
            return logits
        dt = self.p_time[self.kp] - self.elapsed
        logits = logits.float()
        long = self.is_wait & (self.wait_len > dt[:, None])
        mass = logits.masked_fill(~long, float("-inf")).logsumexp(-1)  # [B]
        land = (torch.searchsorted(self.waits, dt.clamp(min=1), right=True) - 1 + V.WAIT_BASE)[:, None]
        merged = torch.logaddexp(logits.gather(1, land), mass[:, None])
        return logits.scatter(1, land, torch.where((dt > 0)[:, None], merged, logits.gather(1, land)))

    def update(self, ids: torch.Tensor) -> None:
        """Take the sampled ids [B] (ignored for finished streams)."""
        self.n_updates += 1
        if self.n_done == 0 and self.plan is None:  # every stream live: no masking needed
            w, vo = self.wait_len[ids], self.voice_of[ids]
            hit = self.voices[None, :] == vo[:, None]
            self.sounding = torch.where(hit, self.is_on[ids][:, None], self.sounding)
            self.last = torch.where(w > 0, -1, torch.where(vo >= 0, vo, self.last))
            self.elapsed += w
            self.steps += 1
            self._update_done()
            return
        live = ~self.done
        w = self.wait_len[ids]
        vo = self.voice_of[ids]
        speaks = (vo >= 0) & live
        hit = (self.voices[None, :] == vo[:, None]) & speaks[:, None]
        self.sounding = torch.where(hit, self.is_on[ids][:, None], self.sounding)
        self.last = torch.where(live & (w > 0), -1, torch.where(speaks, vo, self.last))
        self.elapsed += torch.where(live, w, 0)
        if self.plan is not None:
            self.kp += (live & (ids == self.p_tok[self.kp]) & (self.kp < self.p_n)).long()
        self.steps += live.long()
        self._update_done()

    def all_done(self) -> bool:
        return self.n_done == self.B


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
