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
- :class:`Pulse` (not among the defaults; add it to them): a soft prior against a voice striking
  after an inter-onset interval the song has not used before, more often than real songs do;
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
from lakhnes.decoding.state import _ON_IDS, FAR, IOI_FRAME, IOI_MAX, SUB_MS, Stream
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
#: lengths (notes) of the cycle survival curves below
CYCLE_LENGTHS = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128)
#: per period P (1-4 notes): the share of real cycles (a melodic voice's maximal stretch of notes each
#: repeating the pitch P notes before: P + 1 notes or more, two pitches or more where P > 1) at least as
#: long as each length; 2,207,397 melodic notes (178,142 / 192,014 / 133,994 / 171,941 such stretches)
CYCLE_SURVIVAL = {
    1: (1.0, 0.24473, 0.1271, 0.07893, 0.06096, 0.04028, 0.02355, 0.01869, 0.0102, 0.00552, 0.00438, 0.00239,
        0.00096, 0.00057, 0.00023, 0.00016),
    2: (1.0, 1.0, 0.24298, 0.11265, 0.06731, 0.03741, 0.01991, 0.01557, 0.00935, 0.00474, 0.004, 0.00212, 0.00084,
        0.00044, 0.00014, 0.00005),
    3: (1.0, 1.0, 1.0, 0.31564, 0.14946, 0.05944, 0.02844, 0.02107, 0.00902, 0.00683, 0.00481, 0.00183, 0.00102,
        0.0006, 0.00055, 0.0004),
    4: (1.0, 1.0, 1.0, 1.0, 0.3738, 0.1214, 0.05842, 0.04276, 0.02557, 0.01277, 0.00998, 0.00588, 0.00223, 0.00117,
        0.00035, 0.0002),
}
#: counts of a song's earlier inter-onset intervals from which each share of the table below holds
NOVELTY_COUNTS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
#: the share of a song's inter-onset intervals (IOIs: whole 60 Hz frames from a voice's note-on to its next,
#: under ``IOI_MAX``) that are new to it (no earlier IOI of any of its voices as long), after at least each
#: count of earlier IOIs, for melodic voices' and noise IOIs; 2,185,237 melodic IOIs (47,342 new), 834,456
#: noise IOIs (8,822 new)
IOI_NOVELTY = {
    "mel": [1.0, 0.4168, 0.38557, 0.23778, 0.13721, 0.08239, 0.05037, 0.0305, 0.02073, 0.0134, 0.00895, 0.0055,
            0.00158],
    "NO": [1.0, 0.49446, 0.41667, 0.29142, 0.15336, 0.07595, 0.03454, 0.01952, 0.00978, 0.00501, 0.00303, 0.00221,
           0.00064],
}
#: how strongly :class:`Pulse` tilts against intervals new to the song (1: a plain product of the model and
#: the real-novelty prior). Not a default rule: over 100 songs of 30 s at 0.5 it cut the distinct intervals
#: (22.6 to 19.2) and lifted the frame grid (0.545 to 0.559), but notes were held longer (standing still
#: 2.06 s to 2.81 s in the median song) and the classifier did not move (0.840, 0.830); BENCHMARKS.md
PULSE = 0.5
#: how strongly :class:`Cycles` tilts against cycles longer than real ones (1: a plain product of the
#: model and the real-length prior). 0.5: chosen with the realism benchmark (100 songs of 30 s at 0.5 and
#: 0.75, 40 at 1: 0.5 brings the share of notes in cycles closest to real songs' and is told from them least)
CYCLES = 0.5
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
    - ``penalties(s)`` -> {id: float} or None: added to the logits of single NOTEON ids, or of the
      ids ``lo .. hi - 1`` for a key ``(lo, hi)`` (a voice's NOTEONs);
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
    still chooses when; a voice just waits more readily for an interval the song uses. Not a default
    rule (see ``PULSE``)."""

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
    :class:`MaxHold`, :class:`NoteRate`, :class:`SubMsRun` (:class:`Pulse` is for the asking)."""
    return [Ensemble(named, entry=entry, max_rest=max_rest, allowed=allowed), Activity(named), Cycles(), MaxHold(),
            NoteRate(), SubMsRun()]


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
