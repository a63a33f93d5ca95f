"""The APU's tone channels (pulse, triangle, noise) as numpy array operations.

A voice is cut into *segments* wherever a note starts or ends or a control changes; each
segment holds a step rate (waveform steps per output sample, 0 while silent), a volume 0-15
and a waveform shape (duty, LFSR mode). The phase runs on from segment to segment, so it is
unbroken across notes, as the chip's sequencers are. Each output sample is the waveform's
mean over the span of steps that sample covers (a box filter that removes most aliasing).

An ``Oscillator`` renders any block of samples on its own (the phase is known at every
segment start), so a song is rendered in cache-sized blocks with flat memory. A block is
computed one of two equivalent ways: sample by sample as differences of the waveform's
running integral (fixed cost per sample), or, for slow waveforms, edge by edge: the level is
constant between waveform edges and only samples an edge cuts need blending.

Why Oscillator is long (about 156 lines): its two equivalent block paths share the segment
tables and the running phase; apart, they would pass a dozen arrays back and forth per block on
the synthesizer's hot path.
"""

from __future__ import annotations

import numpy as np

from lakhnes.synth import apu


class Segments:
    """Piecewise-constant controls of one voice: ``bounds`` (n+1 sample times) and per-segment
    ``rate`` (steps/sample), ``volume`` (0-15, 0 = silent) and ``shape`` (waveform index)."""

    def __init__(self, bounds: np.ndarray, rate: np.ndarray, volume: np.ndarray, shape: np.ndarray):
        self.bounds, self.rate, self.volume, self.shape = bounds, rate, volume, shape

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.bounds)


def _last_value(times: np.ndarray, values: np.ndarray, at: np.ndarray, default) -> np.ndarray:
    """The value of a step function (changes at sorted ``times``) at each of ``at``."""
    i = np.searchsorted(times, at, side="right") - 1
    if not len(values):
        return np.full(len(at), default, dtype=np.float64)
    return np.where(i >= 0, values[np.maximum(i, 0)], default)


def segments(
    notes: np.ndarray,
    rate: np.ndarray,
    n: int,
    volume_events: np.ndarray | None = None,
    shape_events: np.ndarray | None = None,
    default_shape: int = 0,
    gated: bool = True,
) -> Segments:
    """Cut a voice into segments over ``[0, n)`` samples.

    ``notes``: NOTE_DTYPE with times in output samples; ``rate``: steps/sample of each note
    (0 mutes the note). The volume is the note's velocity from its start, updated by each
    ``volume_events`` entry (CC11, CTRL_DTYPE) inside it; ``shape_events`` (CC12) set the shape
    from their time on. Outside notes the volume is 0 and the rate 0 (the phase holds).
    """
    empty = np.zeros(0, dtype=np.int64)
    vt = empty if volume_events is None else volume_events["time"]
    st = empty if shape_events is None else shape_events["time"]
    cuts = np.concatenate([[0, n], notes["start"], notes["end"], vt, st])
    bounds = np.unique(np.clip(cuts, 0, n))
    left = bounds[:-1]
    j = np.searchsorted(notes["start"], left, side="right") - 1
    jj = np.maximum(j, 0)
    on = (j >= 0) & (left < notes["end"][jj]) if len(notes) else np.zeros(len(left), dtype=bool)
    seg_rate = np.where(on, rate[jj] if len(notes) else 0.0, 0.0)
    if gated:
        # note-on velocities and CC11 updates, merged in time (CC11 after a note-on at a tie)
        ev_t = np.concatenate([notes["start"], vt])
        ev_v = np.concatenate([notes["velocity"], empty if volume_events is None else volume_events["value"]])
        order = np.argsort(ev_t, kind="stable")
        vol = _last_value(ev_t[order], ev_v[order].astype(np.float64), left, 0.0)
        vol = np.where(on & (seg_rate > 0), np.clip(vol, 0, 15), 0.0)
    else:
        vol = np.where(on, 15.0, 0.0)
    sv = np.zeros(0) if shape_events is None else shape_events["value"].astype(np.int64)
    shape = _last_value(st, sv, left, default_shape).astype(np.int64)
    return Segments(bounds, seg_rate, vol, shape)


class Oscillator:
    """One channel's waveform over a song, rendered block by block (float64 arrays).

    ``tables[k]`` is one period of shape ``k`` (levels per step; all the same length); the
    output is ``level * volume * scale``. With ``hold`` the volume is ignored and a stopped
    sequencer keeps putting out the step it stopped on (the triangle); otherwise the channel
    is silent while its rate is 0.
    """

    #: level changes per sample up to which a block is integrated edge by edge (else sample by sample)
    edge_limit = 0.05

    def __init__(self, seg: Segments, tables, hold: bool = False, scale: float = 1.0):
        self.tables = np.atleast_2d(np.asarray(tables, dtype=np.float64))
        self.key = self.tables.tobytes()  # names the waveform in the tiled-table cache
        self.size = self.tables.shape[1]
        self.bounds, self.rate = seg.bounds, seg.rate
        self.shape = np.clip(seg.shape, 0, len(self.tables) - 1)
        self.uniform = bool(np.all(self.shape == self.shape[:1]))
        # phase at each segment start, reduced to one period (the integral is periodic)
        self.phase = np.mod(np.concatenate([[0.0], np.cumsum(seg.rate * np.diff(seg.bounds))]), self.size)
        moving = seg.rate > 0
        amp = np.full(len(seg.rate), scale) if hold else seg.volume * scale
        self.amp = np.where(moving, amp, 0.0)
        self.gain = np.divide(amp, seg.rate, out=np.zeros(len(seg.rate)), where=moving)
        self.level = np.zeros(len(seg.rate))
        if hold and not moving.all():
            still = np.flatnonzero(~moving)
            step = np.floor(self.phase[still]).astype(np.int64) % self.size
            self.level[still] = self.tables[self.shape[still], step] * scale
        self.silent = not np.any(self.gain) and not np.any(self.level)
        self.changes = _changes(self.tables, self.key)

    def block(self, c0: int, c1: int, ramp: np.ndarray) -> np.ndarray | None:
        """Output for samples ``[c0, c1)`` (None if silent); ``ramp`` is ``arange(> c1 - c0)``.

        Where the level changes rarely (slow waveforms: most pulse notes), the output is
        integrated between the waveform's edges (work per edge); otherwise sample by sample
        (fixed work per sample). Both give the same numbers."""
        if self.silent:
            return None
        b = self.bounds
        i0 = int(np.searchsorted(b, c0, side="right")) - 1
        i1 = int(np.searchsorted(b, c1, side="left"))
        if not self.amp[i0:i1].any() and not self.level[i0:i1].any():
            return None
        edges = b[i0 : i1 + 1] - c0
        edges[0], edges[-1] = 0, c1 - c0
        lengths = np.diff(edges)
        rate = self.rate[i0:i1]
        plan = self._edge_plan(i0, i1, c0, edges, lengths)
        if plan[-1].sum() <= self.edge_limit * (c1 - c0):
            return self._by_edges(i0, i1, edges, plan)
        # phase at the start of each piece, continuous through the block
        x0 = (self.phase[i0] + rate[0] * (c0 - b[i0])) % self.size
        xs = np.empty(len(rate))
        xs[0] = x0
        np.cumsum((rate * lengths)[:-1], out=xs[1:])
        xs[1:] += x0
        # phase at the end of each sample: xs + rate * (j - start + 1)
        x1 = np.repeat(rate, lengths)
        x1 *= ramp[: c1 - c0]
        x1 += np.repeat(xs + rate * (1 - edges[:-1]), lengths)
        cum, val = _tiled(self.tables, self.key, int(xs[-1] + rate[-1] * lengths[-1]) + 2)
        if self.uniform:
            k = int(self.shape[0])
            area = _integral(x1, cum[k], val[k])
            first = _integral(np.array([x0]), cum[k], val[k])[0]
        else:
            shape = self.shape[i0:i1]
            off = np.repeat(shape * cum.shape[1], lengths)
            cf, vf = cum.ravel(), val.ravel()
            area = _integral(x1, cf, vf, off)
            first = _integral(np.array([x0]), cf, vf, off[:1])[0]
            # a sample where the shape changes: measure it with the new shape at both ends
            at = edges[1:-1][shape[1:] != shape[:-1]]
            fix = _integral(x1[at], cf, vf, off[at]) - _integral(x1[at - 1], cf, vf, off[at])
        out = np.empty_like(area)
        np.subtract(area[1:], area[:-1], out=out[1:])
        out[0] = area[0] - first
        if not self.uniform and len(at):
            out[at] = fix
        gain = self.gain[i0:i1]
        if np.all(gain == gain[0]):
            out *= gain[0]
        else:
            out *= np.repeat(gain, lengths)
        area = out
        level = self.level[i0:i1]
        if level.any():
            area += np.repeat(level, lengths)
        return area

    def _edge_plan(self, i0, i1, c0, edges, lengths):
        """Per piece of the block: phase at its start, first level, first change index and
        the number of level changes inside it."""
        size, flat = self.size, self.tables.ravel()
        _, count, per = self.changes
        rate, shape = self.rate[i0:i1], self.shape[i0:i1]
        xp = (self.phase[i0:i1] + rate * (c0 + edges[:-1] - self.bounds[i0:i1])) % size  # phase at piece starts
        lo = xp.astype(np.int64)
        hi = np.ceil(xp + rate * lengths).astype(np.int64) - 1
        n = per[shape]
        # changes at or before step k: whole periods, then the ones up to k's place in its period
        first = lo // size * n + count[shape, lo % size]
        total = np.where(rate > 0, np.maximum(hi // size * n + count[shape, hi % size] - first, 0), 0)
        value = np.where(rate > 0, self.amp[i0:i1] * flat[shape * size + lo % size], self.level[i0:i1])
        return xp, value, first, total

    def _by_edges(self, i0, i1, edges, plan) -> np.ndarray:
        """Box-filtered output from the waveform's edges: between edges the level is constant;
        a sample an edge falls in gets the difference of the running integral (piecewise
        linear) at its two ends."""
        size, flat = self.size, self.tables.ravel()
        at, _, per = self.changes
        rate, amp, shape = self.rate[i0:i1], self.amp[i0:i1], self.shape[i0:i1]
        xp, value, first, kept = plan
        start = edges[:-1]
        # the g-th change of a shape is at step (g // n) * size + at[shape, g % n]
        piece = np.repeat(np.arange(len(rate)), kept)
        g = np.arange(len(piece)) + np.repeat(first - (np.cumsum(kept) - kept), kept)
        n = per[shape[piece]]
        m = g // n * size + at[shape[piece], g % n]
        level = flat[shape[piece] * size + m % size]
        times = start[piece] + (m - xp[piece]) / rate[piece]
        # breakpoints in time order: each piece's start, then its edges
        at_start = np.arange(len(rate)) + np.cumsum(kept) - kept
        t = np.empty(len(rate) + len(piece) + 1)
        v = np.empty(len(t) - 1)
        t[at_start], v[at_start] = start, value
        at_edge = np.arange(len(piece)) + np.repeat(np.arange(1, len(rate) + 1), kept)
        t[at_edge], v[at_edge] = times, level * amp[piece]
        t[-1] = edges[-1]
        # each sample takes the level at its start; samples an edge cuts get their exact mean
        out = np.repeat(v, np.diff(np.ceil(t).astype(np.int64)))
        cut = np.floor(times[times % 1.0 > 0]).astype(np.int64)  # sorted
        if len(cut):
            cut = cut[np.concatenate([[True], cut[1:] != cut[:-1]])]
            integral = np.zeros(len(t))
            np.cumsum(v * np.diff(t), out=integral[1:])
            ends = np.concatenate([cut, cut + 1]).astype(np.float64)
            j = np.searchsorted(t, ends, side="right") - 1
            y = integral[j] + v[np.minimum(j, len(v) - 1)] * (ends - t[j])
            out[cut] = y[len(cut) :] - y[: len(cut)]
        return out

    def render(self, n: int) -> np.ndarray:
        """The whole channel, ``n`` samples (float32; for tests and analysis)."""
        ramp = np.arange(min(n, 1 << 15) + 1, dtype=np.float64)
        out = np.zeros(n, dtype=np.float32)
        for c0 in range(0, n, len(ramp) - 1):
            c1 = min(n, c0 + len(ramp) - 1)
            y = self.block(c0, c1, ramp)
            if y is not None:
                out[c0:c1] = y
        return out


def _integral(x: np.ndarray, cum: np.ndarray, val: np.ndarray, offset=None) -> np.ndarray:
    """Integral from 0 to ``x`` (in steps) of a tiled step waveform with running integral
    ``cum`` and values ``val``."""
    k = x.astype(np.int64)
    y = x - k
    if offset is not None:
        k += offset
    y *= val[k]
    y += cum[k]
    return y


_CHANGES: dict = {}


def _changes(tables: np.ndarray, key: bytes):
    """Where each shape's level changes: ``at[shape, i]`` the steps (within a period) whose
    level differs from the step before, ``count[shape, k]`` how many of those are <= k, and
    ``per[shape]`` how many there are a period."""
    got = _CHANGES.get(key)
    if got is None:
        change = tables != np.roll(tables, 1, axis=1)
        per = change.sum(1)
        at = np.zeros((len(tables), max(int(per.max()), 1)), dtype=np.int64)
        for s, row in enumerate(change):
            at[s, : per[s]] = np.flatnonzero(row)
        got = _CHANGES[key] = (at, np.cumsum(change, axis=1), np.maximum(per, 1))
    return got


_TILED: dict = {}


def _tiled(tables: np.ndarray, key: bytes, length: int):
    """The waveform tables repeated to at least ``length`` steps: running integrals ``cum``
    (steps before k) and values ``val``, one row per shape. float32 holds these sums of small
    integers exactly and halves the memory traffic. Cached per waveform."""
    got = _TILED.get(key)
    if got is None or got[0].shape[1] < length:
        size = tables.shape[1]
        length = max(1 << int(np.ceil(np.log2(max(length, 2)))), size + 1)
        val = np.tile(tables, (1, -(-length // size)))[:, :length]
        cum = np.zeros(val.shape, dtype=np.float64)
        np.cumsum(val[:, :-1], axis=1, out=cum[:, 1:])
        got = _TILED[key] = (cum.astype(np.float32), val.astype(np.float32))
    return got


# ------------------------------------------------------------------------------ channels


def pulse_rates(pitch: np.ndarray, sample_rate: int) -> np.ndarray:
    """Duty-sequencer steps per output sample for each pitch (0 where the chip is silent)."""
    t = apu.pulse_timer(pitch)
    rate = apu.CPU_HZ / (2.0 * (t + 1.0) * sample_rate)
    return np.where(t < apu.PULSE_MIN_TIMER, 0.0, rate)


def triangle_rates(pitch: np.ndarray, sample_rate: int) -> np.ndarray:
    t = apu.triangle_timer(pitch)
    return apu.CPU_HZ / ((t + 1.0) * sample_rate)


def noise_rates(noise_pitch: np.ndarray, sample_rate: int) -> np.ndarray:
    return apu.CPU_HZ / (apu.noise_period(noise_pitch) * sample_rate)


def pulse(seg: Segments, scale: float = 1.0) -> Oscillator:
    """Pulse channel (shape = duty 0-3)."""
    return Oscillator(seg, apu.DUTY_TABLES, scale=scale)


def triangle(seg: Segments, scale: float = 1.0) -> Oscillator:
    """Triangle; between notes it holds its last step, as the chip does."""
    return Oscillator(seg, apu.TRIANGLE_TABLE, hold=True, scale=scale)


class Noise:
    """Noise channel (shape = LFSR mode 0/1). The modes' periods differ, so each mode used is
    its own oscillator and each sample takes the one its mode selects."""

    def __init__(self, seg: Segments, scale: float = 1.0):
        self.modes = np.clip(seg.shape, 0, 1)
        self.bounds = seg.bounds
        used = np.unique(self.modes).tolist() or [0]
        self.osc = {}
        for m in used:
            vol = seg.volume if len(used) == 1 else np.where(self.modes == m, seg.volume, 0.0)
            self.osc[m] = Oscillator(Segments(seg.bounds, seg.rate, vol, self.modes * 0), apu.lfsr_sequence(m),
                                     scale=scale)

    def block(self, c0: int, c1: int, ramp: np.ndarray) -> np.ndarray | None:
        parts = [y for y in (o.block(c0, c1, ramp) for o in self.osc.values()) if y is not None]
        return sum(parts[1:], parts[0]) if parts else None

    def render(self, n: int) -> np.ndarray:
        return sum((o.render(n) for o in self.osc.values()), np.zeros(n, dtype=np.float32))


def noise(seg: Segments, scale: float = 1.0) -> Noise:
    return Noise(seg, scale)
