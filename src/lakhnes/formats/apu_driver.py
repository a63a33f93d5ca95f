"""NesScore -> NES APU register writes, as a sound driver makes them (for VGM output).

Each voice is a step function of (sounding?, pitch, volume, duty/mode); wherever it changes (a note
starts or ends, a CC11 volume or CC12 timbre event; for songs of NES-MDB these are the frames the
game's driver wrote in, at the sample it wrote), the registers whose value changes are written:

- pulses: ``$4000`` duty | length-counter halt | constant volume | volume (volume 0 between notes),
  ``$4001`` = ``$08`` once (sweep off, negate on: low notes are never muted), ``$4002`` the timer's
  low byte, ``$4003`` its high bits with a length-counter load at each note onset (the phase restart
  a driver makes on a new note) or when the high bits change;
- triangle: ``$4008`` = ``$FF`` once (linear counter control set, reload 127: it never runs out);
  notes are gated by its enable bit in ``$4015``, with ``$400A``/``$400B`` its timer;
- noise: ``$400C`` halt | constant volume | volume, ``$400E`` mode | period index (16 - pitch),
  ``$400F`` a length load at each onset.

At the start, ``$400B`` (with the triangle disabled) sets the linear counter's reload flag and
``$4017`` = ``$C0`` clocks the frame counter at once: the linear counter holds 127 from then on. Values follow :mod:`lakhnes.synth`: a note's volume is its velocity,
then each CC11 inside it; the duty is the last CC12 (``DEFAULT_DUTY`` before the first); noise mode
the last CC12 (0 before). Timer periods are the ones :mod:`lakhnes.formats.apu_trace` reads back as
the same MIDI pitch, so score -> VGM -> score gives the notes back.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lakhnes.core.score import VOICES, NesScore

NTSC_CLOCK = 1789772
#: Length counter load written at onsets (index 1: 254 half frames; halted anyway).
LENGTH_LOAD = 0x08


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
    """Change points of a voice: sorted times, and at each the (note index or -1, onset?, volume, timbre)."""
    vt = np.zeros(0, np.int64) if vol is None else vol["time"]
    tt = np.zeros(0, np.int64) if tim is None else tim["time"]
    times = np.unique(np.concatenate([[0], notes["start"], notes["end"], vt, tt]).astype(np.int64))
    j = np.searchsorted(notes["start"], times, side="right") - 1
    jj = np.maximum(j, 0)
    on = (j >= 0) & (times < notes["end"][jj]) if len(notes) else np.zeros(len(times), bool)
    idx = np.where(on, j, -1)
    onset = on & (notes["start"][jj] == times) if len(notes) else on
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
    return times.tolist(), idx.tolist(), onset.tolist(), np.clip(volume, 0, 15).tolist(), timbre.tolist()


def register_writes(score: NesScore, duty: int | None = None,
                    clock: int = NTSC_CLOCK) -> tuple[list[tuple[int, int, int]], int]:
    """``(writes, length)``: the song's ``(sample, register offset from $4000, value)`` writes in
    time order, and its length in samples. ``duty`` (0-3) overrides every pulse note's duty."""
    from lakhnes.synth import DEFAULT_DUTY

    pulse_t, tri_t = timer_tables(clock)
    ends = [int(score.notes[v]["end"].max()) for v in VOICES if len(score.notes[v])]
    nsamps = max([int(score.end), *ends])
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
        times, idx, onset, vol, timbre = _steps(notes, score.volume[v], tim, default)
        base = 4 * vi
        regs = [-1, -1, -1, -1]
        period = 0
        for t, j, first, vo, tb in zip(times, idx, onset, vol, timbre, strict=True):
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
                if val != regs[r] or (r == 3 and first):
                    writes.append((t, vi, base + r, val))
                    regs[r] = val
    writes.sort(key=lambda w: (w[0], w[1]))  # stable: each voice's writes in their own order
    return [(t, r, val) for t, _, r, val in writes if t < nsamps], nsamps


def _triangle(notes: np.ndarray, tri_t: np.ndarray) -> list[tuple[int, int, int, int]]:
    out = []
    hi = -1
    for k in range(len(notes)):
        s, e, p = int(notes["start"][k]), int(notes["end"][k]), int(notes["pitch"][k])
        timer = int(tri_t[p])
        joined = k > 0 and int(notes["end"][k - 1]) == s
        if not joined:
            out.append((s, 2, 0x15, 0x0F))
        out.append((s, 2, 0x0A, timer & 0xFF))
        if not joined or timer >> 8 != hi:
            out.append((s, 2, 0x0B, LENGTH_LOAD | timer >> 8))
        hi = timer >> 8
        if k + 1 == len(notes) or int(notes["start"][k + 1]) != e:
            out.append((e, 2, 0x15, 0x0B))
    return out
