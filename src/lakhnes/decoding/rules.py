"""Constrained decoding: small rules that turn the song so far into a mask (and a re-weighting) of
the next token. The decoding loop (:mod:`lakhnes.decoding.loop`) runs them.

Each step, :class:`lakhnes.decoding.constraint.Masker` builds, for every stream, the mask of the token ids it may take from
the song so far (:class:`lakhnes.decoding.state.Stream`: the time, which voices sound, when each note started, when each
voice fell silent, its recent onsets) and from its rules:

- validity (always): a NOTEOFF only for a voice that sounds; at one instant at most one event per
  voice, in the order P1, P2, TR, NO (the canonical TX1 order LakhNES trained on; it also rules out
  zero-length notes); ``<S>`` never (a song ends at its requested length); no NOTEON of the pitch
  a voice already sounds (:class:`NoReattack`);
- kept voices (a :class:`lakhnes.decoding.forced.KeepPlan`): forced at their exact times (see below);
- :class:`Ensemble`: the voices a song uses: each named voice enters by ``entry`` seconds and never
  rests longer than ``max_rest``; voices it does not allow never start a note;
- :class:`MaxHold`: no note longer than ``seconds`` (drones);
- :class:`NoteRate`: at most ``max_onsets`` note starts per voice in any ``window`` (floods);
- :class:`Cycles`: a soft prior against a melodic voice repeating a cycle of 1-4 notes (a
  trill, a struck pitch) longer than real ones do;
- :class:`Pulse`: a soft prior against a voice striking after an inter-onset interval the song has not
  used before, more often than real songs do;
- :class:`Key` (not among the defaults; add it to them): a soft prior against melodic notes outside the
  scale that holds most of the song's;
- :class:`SubMsRun`: at most ``max_run`` notes shorter than 1 ms in a row per voice, and at most
  ``max_share`` of its notes (floods of sub-millisecond notes; single ones are real legato
  re-attacks).

A rule says one of two things about a voice: *not now* (a ban on its NOTEON and/or NOTEOFF) or *by
then* (a deadline by which the voice must speak: with a NOTEON if it is silent, with any event if it
sounds). The model still chooses every pitch and every time: a deadline caps the waits the model
may take (the probability of a longer wait goes to the longest that fits,
:func:`lakhnes.decoding.constraint.reweight`),
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

from lakhnes.core.score import SAMPLE_RATE, VOICES
from lakhnes.core.vocab import PITCH_OF
from lakhnes.decoding.measured import (  # the bounds and priors measured on NES-MDB; callers read them here too
    CYCLE_LENGTHS,
    CYCLE_SURVIVAL,
    ENTRY_S,
    IOI_NOVELTY,
    MAX_HOLD_S,
    MAX_ONSETS,
    MAX_REST_S,
    MAX_SUB_MS_RUN,
    MAX_SUB_MS_SHARE,
    NOTE_SURVIVAL,
    NOVELTY_COUNTS,
    RATE_WINDOW,
    REST_SURVIVAL,
    SURVIVAL_AGES,
)
from lakhnes.decoding.state import _ON_IDS, FAR, IOI_FRAME, IOI_MAX, MAJOR, SUB_MS, IdSet, Stream
from lakhnes.errors import InvalidInputError

#: how strongly :class:`Pulse` tilts against intervals new to the song (1: a plain product of the model and
#: the real-novelty prior). 0.75: the realism benchmark's choice with the waits' nucleus and ``CYCLES`` 0.75
#: (100 songs of 30 s, two seeds: a classifier told them from real songs 0.702 / 0.701 of the time; 0.751 /
#: 0.741 at 0.5, 0.735 at 1; 0.793 / 0.786 without it). Before the nucleus it did not move the classifier
#: (0.830 against 0.840); BENCHMARKS.md
PULSE = 0.75
#: how strongly :class:`Cycles` tilts against cycles longer than real ones (1: a plain product of the
#: model and the real-length prior). 0.75: the realism benchmark's choice with the Pulse prior (at Pulse 0.5,
#: 100 songs of 30 s, two seeds: classifier 0.751 / 0.741, mean overlapping area 0.818 / 0.809, against 0.755 /
#: 0.750 and 0.781 / 0.779 at 0.5; at 1: 0.754, 0.798); 0.5 before the Pulse prior
CYCLES = 0.75
#: how strongly :class:`Key` tilts against melodic notes outside the song's scale (a logit offset). Not a default
#: rule: over 100 songs of 30 s at 0.5, 91 % of melodic notes kept to the song's scale (82 % without; real songs:
#: 89 %), but the songs dwelt on fewer pitch classes and went round more cycles, and were told from real songs
#: more often (0.870 against 0.840); BENCHMARKS.md
KEY = 0.5
#: :class:`Key` waits until the song's melodic voices have played this many notes
KEY_NOTES = 8
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
    - ``penalties(s)`` -> {id: float} or None: added to the logits of single NOTEON ids, of the
      ids ``lo .. hi - 1`` for a key ``(lo, hi)`` (a voice's NOTEONs), or of an :class:`IdSet`'s ids;
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

    def penalties(self, s: Stream):
        """None, or a dict {id or (lo, hi): logit offset} for NOTEON ids (added whatever the top-k)."""
        return None

    def deadlines(self, s: Stream):
        return None


class NoReattack:
    """Validity, applied in every mode: no same-pitch re-attack, i.e. no ``<V>_NOTEON_<p>`` while
    voice V sounds pitch p (real NES-MDB TX1 never has one; unmasked, the model wrote them for 24-36 %
    of its note-ons). Forced events (a user's kept voices or rhythm) are not masked."""

    def forbid(self, s: Stream) -> list[int]:
        """The ids stream ``s`` may not take now: each sounding voice's own NOTEON."""
        return [p for p, on in zip(s.pitch, s.sounding, strict=True) if on]


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
        since, rest, entry = s.since, self.rest, self.entry
        return [FAR if not n or on else (w + rest if p else entry)
                for n, on, p, w in zip(self.named, s.sounding, s.played, since, strict=True)]


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
        young, t = 0, s.t
        for v, (on, o) in enumerate(zip(s.sounding, s.onset, strict=True)):
            if on and t - o < SUB_MS and (
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


class Cycles(Rule):
    """Real cycle lengths as a soft prior: a melodic voice whose last notes repeat with a period of P
    notes (P = 1: one pitch struck again and again; 2: a trill; 3, 4: a short riff) gets
    ``strength * ln(S_P(n) / 0.5)`` added to the logit of the NOTEON that would go on with it, ``n``
    the notes the cycle would then span and ``S_P`` the share of real cycles that long
    (``CYCLE_SURVIVAL``), where it is under one half. Sampled songs otherwise lock into cycles: the
    song and voice caches copy them on and on (a trill for the rest of the song). The model still
    chooses what comes instead; phrases that come back after other notes are not cycles."""

    def __init__(self, strength: float = CYCLES):
        self.strength = float(strength)
        lengths, n = np.array(CYCLE_LENGTHS), np.arange(CYCLE_LENGTHS[-1] + 1)
        self.table = {}
        for P, surv in CYCLE_SURVIVAL.items():
            logs = np.interp(n, lengths, np.log(np.maximum(np.asarray(surv, dtype=float), 1e-6)))
            self.table[P] = (strength * np.minimum(0.0, logs - np.log(0.5))).tolist()

    def penalties(self, s):
        out = None
        for v in (0, 1, 2):
            recent = s.recent[v]
            k = len(recent)
            for q in range(min(k, len(self.table))):
                tok = recent[k - 1 - q]
                if q and tok == recent[-1]:  # the latest pitch again: a period-1 cycle
                    continue
                table = self.table[q + 1]
                x = table[min(s.cycle[v][q] + q + 2, len(table) - 1)]  # the notes it would span
                if x < 0.0:
                    if out is None:
                        out = {}
                    if x < out.get(tok, 0.0):
                        out[tok] = x
        return out


class Pulse(Rule):
    """Real rhythm vocabularies as a soft prior: a voice whose note-on now would make an inter-onset
    interval (IOI, in whole 60 Hz frames, under ``IOI_MAX``) that no voice of the song has made before
    gets ``strength * ln(q(n) / 0.5)`` on its NOTEONs, ``n`` the IOIs the song has made so far and
    ``q(n)`` the share of real IOIs that are new to their song after ``n`` (``IOI_NOVELTY``), where it
    is under one half. A real song keeps to a few IOIs shared by its voices (about 10 under 64 frames in
    30 s); sampled voices strike at one another's instants and scatter over twice as many. The model
    still chooses when; a voice just waits more readily for an interval the song uses (default strength
    ``PULSE``)."""

    def __init__(self, strength: float = PULSE):
        self.strength = float(strength)
        n = np.arange(NOVELTY_COUNTS[-1] + 1)
        k = np.searchsorted(NOVELTY_COUNTS, n, side="right") - 1
        self.table = []
        for v in VOICES:
            q = np.maximum(np.asarray(IOI_NOVELTY["NO" if v == "NO" else "mel"], dtype=float), 1e-6)[k]
            self.table.append((strength * np.minimum(0.0, np.log(q / 0.5))).tolist())
        self.ids = [(sl.start, sl.stop) for sl in _ON_IDS]

    def penalties(self, s):
        out, t, seen = None, s.t, s.iois
        n = min(s.n_iois, NOVELTY_COUNTS[-1])
        for v in range(4):
            if not s.played[v]:
                continue
            r = (t - s.onset[v] + IOI_FRAME // 2) // IOI_FRAME
            if r >= IOI_MAX or seen >> r & 1:
                continue
            x = self.table[v][n]
            if x < 0.0:
                if out is None:
                    out = {}
                out[self.ids[v]] = x
        return out


class Key(Rule):
    """The song's key as a soft prior: once its melodic voices have played ``after`` notes (default
    ``KEY_NOTES``), a melodic NOTEON whose pitch class lies outside the major scale (or its relative minor)
    that holds the most of them gets ``-strength`` (default ``KEY``). Real songs keep 89 % of their melodic
    notes in one such scale; sampled ones strayed (82 %): one wrong note makes the key ambiguous and more
    follow. The model still chooses; notes outside the scale stay possible (passing notes, a raised 7th).
    Not a default rule (see ``KEY``)."""

    def __init__(self, strength: float = KEY, after: int = KEY_NOTES):
        self.strength, self.after = float(strength), int(after)
        self.out = []  # per root: the melodic voices' NOTEON ids outside its scale, one IdSet per voice
        for r in range(12):
            keep = {(r + k) % 12 for k in MAJOR}
            self.out.append([IdSet([i for i in range(sl.start, sl.stop) if PITCH_OF[i] % 12 not in keep], v)
                             for v, sl in enumerate(_ON_IDS[:3])])

    def penalties(self, s):
        if s.n_mel < self.after or not self.strength:
            return None
        x = -self.strength
        return {ids: x for ids in self.out[s.key]}


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
    and keep playing; voices outside ``allowed`` stay silent), :class:`Activity`, :class:`Cycles`,
    :class:`Pulse`, :class:`MaxHold`, :class:`NoteRate`, :class:`SubMsRun` (:class:`Key` is for the asking)."""
    return [Ensemble(named, entry=entry, max_rest=max_rest, allowed=allowed), Activity(named), Cycles(), Pulse(),
            MaxHold(), NoteRate(), SubMsRun()]


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
