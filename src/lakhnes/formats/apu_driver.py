"""NesScore -> NES APU register writes, as a sound driver makes them (for VGM output).

A driver runs once a frame (60 Hz) and writes the registers whose value changed since the last
frame. :func:`frame_phase` finds where in a frame the song's own events sit (a game's driver runs at
some offset from the start of the recording; a song with no clear phase gets offset 0), and
:func:`frame_grid` puts the score on the grid with that offset: every change (a note starts or ends, a CC11
volume or CC12 timbre event) takes effect at a frame's update, and each note keeps its length in
whole frames (at least one; where two notes fall on one frame, the later one plays: the glitches
of a game's driver in NES-MDB songs, a pitch for a few samples, go). Each voice is then a step function of (sounding?, pitch, volume, duty/mode); wherever it
changes, the registers whose value changes are written, at most once per register and frame:

- pulses: ``$4000`` duty | length-counter halt | constant volume | volume (volume 0 between notes),
  ``$4001`` = ``$08`` once (sweep off, negate on: low notes are never muted), ``$4002`` the timer's
  low byte, ``$4003`` its high bits with a length-counter load, written only when those bits
  change (a write restarts the waveform: rewriting it would click, so drivers do not);
- triangle: ``$4008`` = ``$FF`` once (linear counter control set, reload 127: it never runs out);
  notes are gated by its enable bit in ``$4015`` (``$400B`` reloads the length counter after it),
  with ``$400A``/``$400B`` its timer;
- noise: ``$400C`` halt | constant volume | volume, ``$400E`` mode | period index (16 - pitch),
  ``$400F`` a length load at the first note (halted: it never runs out).

At the start, ``$400B`` (with the triangle disabled) sets the linear counter's reload flag and
``$4017`` = ``$C0`` clocks the frame counter at once: the linear counter holds 127 from then on.
Values follow :mod:`lakhnes.synth`: a note's volume is its velocity, then each CC11 inside it; the
duty is the last CC12 (``DEFAULT_DUTY`` before the first); noise mode the last CC12 (0 before).
Timer periods are the ones :mod:`lakhnes.formats.apu_trace` reads back as the same MIDI pitch, so
score -> VGM -> score gives the notes of ``frame_grid(score)`` back. ``frame=None`` writes each
change at its exact sample instead (no frame grid).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lakhnes.core.frames import FRAME as NTSC_FRAME
from lakhnes.core.score import CTRL_DTYPE, VOICES, NesScore, make_notes

NTSC_CLOCK = 1789772
#: Length counter load written at onsets (index 1: 254 half frames; halted anyway).
LENGTH_LOAD = 0x08
#: Samples (44.1 kHz) between two driver updates: one NTSC video frame (29780.5 CPU cycles,
#: 60.0988 Hz), when a game's driver runs. (A grid of exactly 735 samples drifts from the frames of
#: NES-MDB songs by a frame every ~10 s and played them less faithfully: see BENCHMARKS.md.)
FRAME = NTSC_FRAME


#: Choosing a song's grid (:func:`frame_phase`): an event within this many samples of a grid line
#: is on it ...
NEAR = 4
#: ... and the song's own phase is used when at least this share of its note starts and ends, and
#: at least ``MIN_ON`` of them, are on its grid (a handful of events make up a phase by chance);
#: otherwise the grid starts at sample 0.
CLEAR = 0.1
MIN_ON = 8


def _frame_sample(k: np.ndarray, frame: float, offset: float) -> np.ndarray:
    """Sample of frame ``k``: ``round(offset + k * frame)``, the frame before the first at sample 0."""
    return np.maximum(np.round(offset + k * frame), 0).astype(np.int64)


def frame_phase(score: NesScore, frame: float = FRAME) -> float:
    """The offset (samples, ``0 <= offset < frame``) of the frame grid the song's own note starts and
    ends sit on: the one that puts the most of them within ``NEAR`` samples of a grid line, then,
    within that, the most exactly on one (so that a song written on a driver's frames keeps those
    times exactly). 0 when no offset holds a ``CLEAR`` share of them and at least ``MIN_ON`` (a song
    with no frame phase). The period stays ``frame``: a 735-sample grid fits NES-MDB songs worse."""
    t = np.concatenate([np.concatenate([score.notes[v]["start"], score.notes[v]["end"]]) for v in VOICES])
    t = t[t > 0].astype(np.float64)
    if len(t) < MIN_ON:
        return 0.0
    bins = int(np.ceil(frame))
    hist = np.bincount(np.floor(np.mod(t, frame)).astype(np.int64) % bins, minlength=bins)
    near = sum(np.roll(hist, d) for d in range(-NEAR, NEAR + 1))  # events within NEAR of bin b
    b = int(np.argmax(near))
    if near[b] < max(MIN_ON, CLEAR * len(t)):
        return 0.0
    d = t - b
    t = t[np.abs(d - np.round(d / frame) * frame) <= NEAR + 1]
    cands = b + np.arange(-NEAR * 16, (NEAR + 1) * 16) / 16.0
    exact = [int((_frame_sample(np.floor((t - c) / frame + 0.5), frame, c) == t).sum()) for c in cands]
    best = np.flatnonzero(np.array(exact) == max(exact))
    return float(np.mod(cands[best[len(best) // 2]], frame))


def _snap(t: np.ndarray, frame: float, onset: str, offset: float = 0.0) -> np.ndarray:
    """Frame index of each time: the nearest frame, or the next one (at or after ``t``)."""
    x = (np.asarray(t, dtype=np.float64) - offset) / frame
    return (np.ceil(x - 1e-9) if onset == "next" else np.floor(x + 0.5)).astype(np.int64)


def frame_grid(score: NesScore, frame: float = FRAME, onset: str = "nearest",
               offset: float | None = None) -> NesScore:
    """``score`` as a once-per-frame driver plays it (and a VGM reader reads it back): each note
    starts at the frame ``onset`` names (``"nearest"`` or ``"next"``) and lasts its length rounded
    to whole frames (at least one), cut where the next note starts (none left: the note goes); each CC11 inside a kept note
    and each CC12 takes effect at its frame, the last of a frame winning (a CC11 on a note's first
    frame is its volume). A note that now starts where one of the same pitch ends goes on as that
    note (its volume a CC11). Frame ``k`` is at sample ``round(offset + k * frame)`` (the one before
    the first at sample 0); ``offset=None``: :func:`frame_phase` of the song."""
    if offset is None:
        offset = frame_phase(score, frame)
    out = NesScore(name=score.name, end=int(score.end))
    ends = [int(score.notes[v]["end"].max()) for v in VOICES if len(score.notes[v])]
    length = max([int(score.end), *ends])
    for v in VOICES:
        out.notes[v], out.volume[v] = _voice_on_grid(score.notes[v], score.volume[v], frame, onset, length, offset)
        tim = score.timbre[v]
        out.timbre[v] = _last_per_time(_at_frame(tim["time"], frame, onset, offset), tim["value"])
    return out


def _at_frame(t: np.ndarray, frame: float, onset: str, offset: float) -> np.ndarray:
    return _frame_sample(_snap(t, frame, onset, offset), frame, offset)


def _voice_on_grid(notes: np.ndarray, vol: np.ndarray, frame: float, onset: str,
                   length: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """One voice's notes and CC11 curve on the frame grid (see :func:`frame_grid`)."""
    k0 = _snap(notes["start"], frame, onset, offset)
    k1 = k0 + np.maximum(np.floor((notes["end"] - notes["start"]) / frame + 0.5).astype(np.int64), 1)
    keep = k1 > k0
    at = np.flatnonzero(keep)
    k1[at[:-1]] = np.minimum(k1[at[:-1]], k0[at[1:]])
    s0 = _frame_sample(k0, frame, offset)
    s1 = np.minimum(_frame_sample(k1, frame, offset), length)
    keep &= s1 > s0  # two notes on one frame: the later one plays
    # CC11 events inside a kept note whose frame is still inside it; the last of a frame
    tv = _at_frame(vol["time"], frame, onset, offset)
    j = np.maximum(np.searchsorted(notes["start"], vol["time"], side="right") - 1, 0)
    ok = np.zeros(len(vol), dtype=bool)
    if len(notes):
        ok = (vol["time"] >= notes["start"][j]) & (vol["time"] < notes["end"][j]) & keep[j]
        ok &= (tv >= s0[j]) & (tv < s1[j])
    t_ok, j_ok, v_ok = tv[ok], j[ok], vol["value"][ok]
    last = np.ones(len(t_ok), dtype=bool)
    last[:-1] = t_ok[1:] != t_ok[:-1]
    ccs = list(zip(t_ok[last].tolist(), j_ok[last].tolist(), v_ok[last].tolist(), strict=True))
    out: list[list[int]] = []
    cc: list[tuple[int, int]] = []
    level, c = -1, 0
    for i in np.flatnonzero(keep).tolist():
        start, end, pitch, vel = int(s0[i]), int(s1[i]), int(notes["pitch"][i]), int(notes["velocity"][i])
        while c < len(ccs) and ccs[c][1] < i:
            c += 1
        if c < len(ccs) and ccs[c][1] == i and ccs[c][0] == start:
            vel = ccs[c][2]
            c += 1
        if out and out[-1][1] == start and out[-1][2] == pitch:
            out[-1][1] = end  # the same pitch goes on: one note
            if vel != level:
                cc.append((start, vel))
        else:
            out.append([start, end, pitch, vel])
        level = vel
        while c < len(ccs) and ccs[c][1] == i:
            if ccs[c][2] != level:
                cc.append((ccs[c][0], ccs[c][2]))
                level = ccs[c][2]
            c += 1
    cols = np.array(out, dtype=np.int64).reshape(-1, 4).T
    return make_notes(cols[0], cols[1], cols[2], cols[3]), np.array(cc, dtype=CTRL_DTYPE)


def _last_per_time(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A CTRL_DTYPE curve of sorted ``times``, keeping the last value of each time."""
    last = np.ones(len(times), dtype=bool)
    last[:-1] = times[1:] != times[:-1]
    out = np.zeros(int(last.sum()), dtype=CTRL_DTYPE)
    out["time"], out["value"] = times[last], values[last]
    return out


@lru_cache(maxsize=4)
def timer_tables(clock: int = NTSC_CLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Timer period for each MIDI pitch 0-127 (pulse, triangle): the one nearest the exact
    frequency among those the VGM reader rounds back to that pitch (0 where none)."""
    from lakhnes.formats.apu_trace import pitch_tables

    out = []
    for div, table in zip((16, 32), pitch_tables(clock), strict=True):
        timers = np.zeros(128, dtype=np.int64)
        for p in range(128):
            ok = np.flatnonzero(table == p)
            if len(ok) and p:
                exact = clock / (div * 440.0 * 2 ** ((p - 69) / 12)) - 1
                timers[p] = ok[np.argmin(np.abs(ok - exact))]
        out.append(timers)
    return out[0], out[1]


def _steps(notes: np.ndarray, vol: np.ndarray | None, tim: np.ndarray | None, default_tim: int):
    """Change points of a voice: sorted times, and at each the (note index or -1, volume, timbre)."""
    vt = np.zeros(0, np.int64) if vol is None else vol["time"]
    tt = np.zeros(0, np.int64) if tim is None else tim["time"]
    times = np.unique(np.concatenate([[0], notes["start"], notes["end"], vt, tt]).astype(np.int64))
    j = np.searchsorted(notes["start"], times, side="right") - 1
    jj = np.maximum(j, 0)
    on = (j >= 0) & (times < notes["end"][jj]) if len(notes) else np.zeros(len(times), bool)
    idx = np.where(on, j, -1)
    ev_t = np.concatenate([notes["start"], vt])
    ev_v = np.concatenate([notes["velocity"], np.zeros(0, np.int64) if vol is None else vol["value"]])
    order = np.argsort(ev_t, kind="stable")
    k = np.searchsorted(ev_t[order], times, side="right") - 1
    volume = np.where(k >= 0, ev_v[order][np.maximum(k, 0)] if len(ev_v) else 0, 0)
    if tim is None or not len(tim):
        timbre = np.full(len(times), default_tim)
    else:
        k = np.searchsorted(tt, times, side="right") - 1
        timbre = np.where(k >= 0, tim["value"][np.maximum(k, 0)], default_tim)
    return times.tolist(), idx.tolist(), np.clip(volume, 0, 15).tolist(), timbre.tolist()


def register_writes(score: NesScore, duty: int | None = None, clock: int = NTSC_CLOCK,
                    frame: float | None = FRAME, onset: str = "nearest",
                    offset: float | None = None) -> tuple[list[tuple[int, int, int]], int]:
    """``(writes, length)``: the song's ``(sample, register offset from $4000, value)`` writes in
    time order, and its length in samples. ``duty`` (0-3) overrides every pulse note's duty.
    ``frame``/``onset``/``offset``: the driver's update grid (:func:`frame_grid`; ``offset=None``:
    the song's own :func:`frame_phase`); ``frame=None``: every change at its exact sample."""
    from lakhnes.synth import DEFAULT_DUTY

    pulse_t, tri_t = timer_tables(clock)
    ends = [int(score.notes[v]["end"].max()) for v in VOICES if len(score.notes[v])]
    nsamps = max([int(score.end), *ends])
    if frame is not None:
        score = frame_grid(score, frame, onset, offset)
    # triangle off, sweeps off, linear counter control and reload flag set, then a frame-counter
    # restart that clocks the linear counter at once
    writes: list[tuple[int, int, int, int]] = [(0, -1, r, val) for r, val in (
        (0x15, 0x0B), (0x01, 0x08), (0x05, 0x08), (0x08, 0xFF), (0x0B, LENGTH_LOAD), (0x17, 0xC0))]
    for vi, v in enumerate(VOICES):
        notes = score.notes[v]
        if v == "TR":
            writes += _triangle(notes, tri_t)
            continue
        pulse = v != "NO"
        tim = None if (pulse and duty is not None) else score.timbre[v]
        default = (DEFAULT_DUTY if duty is None else duty) if pulse else 0
        times, idx, vol, timbre = _steps(notes, score.volume[v], tim, default)
        base = 4 * vi
        regs = [-1, -1, -1, -1]
        period = 0
        for t, j, vo, tb in zip(times, idx, vol, timbre, strict=True):
            level = vo if j >= 0 else 0
            out = []
            if pulse:
                out.append((0, (int(tb) & 3) << 6 | 0x30 | level))
                if j >= 0:
                    timer = int(pulse_t[notes["pitch"][j]])
                    out.append((2, timer & 0xFF))
                    out.append((3, LENGTH_LOAD | timer >> 8))
            else:
                if j >= 0:
                    period = (16 - int(notes["pitch"][j])) & 15
                out.append((0, 0x30 | level))
                out.append((2, (int(tb) & 1) << 7 | period))
                if j >= 0:
                    out.append((3, LENGTH_LOAD))
            for r, val in out:
                if val != regs[r]:
                    writes.append((t, vi, base + r, val))
                    regs[r] = val
    writes.sort(key=lambda w: (w[0], w[1]))  # stable: each voice's writes in their own order
    return [(t, r, val) for t, _, r, val in writes if t < nsamps], nsamps


def _triangle(notes: np.ndarray, tri_t: np.ndarray) -> list[tuple[int, int, int, int]]:
    out = []
    hi = lo = -1
    for k in range(len(notes)):
        s, e, p = int(notes["start"][k]), int(notes["end"][k]), int(notes["pitch"][k])
        timer = int(tri_t[p])
        joined = k > 0 and int(notes["end"][k - 1]) == s
        if not joined:
            out.append((s, 2, 0x15, 0x0F))
        if timer & 0xFF != lo:
            out.append((s, 2, 0x0A, timer & 0xFF))
        if not joined or timer >> 8 != hi:  # after $4015 enables it, $400B reloads the length counter
            out.append((s, 2, 0x0B, LENGTH_LOAD | timer >> 8))
        hi, lo = timer >> 8, timer & 0xFF
        if k + 1 == len(notes) or int(notes["start"][k + 1]) != e:
            out.append((e, 2, 0x15, 0x0B))
    return out
