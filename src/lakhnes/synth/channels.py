"""The APU's four tone channels as whole-song numpy operations.

A voice is cut into *segments* wherever a note starts or ends or a control changes; each
segment holds a step rate (waveform steps per output sample, 0 while silent), a volume 0-15
and a waveform shape. The phase is the running sum of the per-sample step rates, so it carries
on unbroken from note to note, as the chip's sequencers do. Each output sample is the
waveform's mean over the steps that sample covers (a box filter that removes most aliasing),
computed as a difference of the waveform's running integral. An ``Oscillator`` renders any
block of samples on its own (phase carried), so a song is rendered in cache-sized blocks.
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
    """One channel's waveform over a song, rendered block by block (float64).

    ``tables[k]`` is one period of shape ``k`` (levels per step; all the same length); the
    output is ``level * volume * scale``. With ``hold`` the volume is ignored and a stopped
    sequencer keeps putting out the step it stopped on (the triangle); otherwise the channel
    is silent while its rate is 0.
    """

    def __init__(self, seg: Segments, tables, hold: bool = False, scale: float = 1.0):
        self.tables = np.atleast_2d(np.asarray(tables, dtype=np.float64))
        self.size = self.tables.shape[1]
        self.bounds, self.rate = seg.bounds, seg.rate
        self.shape = np.clip(seg.shape, 0, len(self.tables) - 1)
        self.uniform = bool(np.all(self.shape == self.shape[:1]))
        # phase at each segment start, reduced to one period (the integral is periodic)
        self.phase = np.mod(np.concatenate([[0.0], np.cumsum(seg.rate * np.diff(seg.bounds))]), self.size)
        moving = seg.rate > 0
        amp = np.full(len(seg.rate), scale) if hold else seg.volume * scale
        self.gain = np.divide(amp, seg.rate, out=np.zeros(len(seg.rate)), where=moving)
        self.level = np.zeros(len(seg.rate))
        if hold and not moving.all():
            still = np.flatnonzero(~moving)
            step = np.floor(self.phase[still]).astype(np.int64) % self.size
            self.level[still] = self.tables[self.shape[still], step] * scale
        self.silent = not np.any(self.gain) and not np.any(self.level)
        self._cum = self._val = None

    def _tables(self):
        """Running integral ``cum[k]`` (steps 0..k-1) and values ``val[k]`` of each shape over
        one period plus one step (so a phase that rounds up to a full period still indexes)."""
        if self._cum is None:
            val = np.concatenate([self.tables, self.tables[:, :1]], axis=1)
            cum = np.zeros_like(val)
            np.cumsum(val[:, :-1], axis=1, out=cum[:, 1:])
            self._cum, self._val = cum, val
        return self._cum, self._val

    def block(self, c0: int, c1: int, ramp: np.ndarray) -> np.ndarray | None:
        """Output for samples ``[c0, c1)`` (None if silent); ``ramp`` is ``arange(>= c1 - c0)``."""
        if self.silent:
            return None
        b = self.bounds
        i0 = int(np.searchsorted(b, c0, side="right")) - 1
        i1 = int(np.searchsorted(b, c1, side="left"))
        edges = b[i0 : i1 + 1] - c0
        edges[0], edges[-1] = 0, c1 - c0
        lengths = np.diff(edges)
        rate = self.rate[i0:i1]
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
        cum, val = self._tables()
        size = self.size
        if self.uniform:
            k = int(self.shape[0])
            area = _integral(x1, size, cum[k], val[k])
            first = _integral(np.array([x0]), size, cum[k], val[k])[0]
        else:
            shape = self.shape[i0:i1]
            off = np.repeat(shape * cum.shape[1], lengths)
            cf, vf = cum.ravel(), val.ravel()
            area = _integral(x1, size, cf, vf, off)
            first = _integral(np.array([x0]), size, cf, vf, off[:1])[0]
            # a sample where the shape changes: measure it with the new shape at both ends
            at = edges[1:-1][shape[1:] != shape[:-1]]
            fix = _integral(x1[at], size, cf, vf, off[at]) - _integral(x1[at - 1], size, cf, vf, off[at])
        area[1:] -= area[:-1].copy()
        area[0] -= first
        if not self.uniform and len(at):
            area[at] = fix
        area *= np.repeat(self.gain[i0:i1], lengths)
        level = self.level[i0:i1]
        if level.any():
            area += np.repeat(level, lengths)
        return area

    def render(self, n: int) -> np.ndarray:
        """The whole channel, ``n`` samples (float32; for tests and analysis)."""
        ramp = np.arange(min(n, 1 << 15), dtype=np.float64)
        out = np.zeros(n, dtype=np.float32)
        for c0 in range(0, n, len(ramp)):
            c1 = min(n, c0 + len(ramp))
            y = self.block(c0, c1, ramp)
            if y is not None:
                out[c0:c1] = y
        return out


def _integral(x: np.ndarray, size: int, cum: np.ndarray, val: np.ndarray, offset=None) -> np.ndarray:
    """Integral from 0 to ``x`` (in steps) of the periodic step waveform whose one period
    has running integral ``cum`` and values ``val`` (``size + 1`` entries each)."""
    cycles = np.floor(x * (1.0 / size))
    y = x - cycles * size
    k = y.astype(np.int64)
    y -= k
    if offset is not None:
        k += offset
    y *= val[k]
    y += cum[k]
    cycles *= cum[size] if offset is None else cum[np.asarray(offset) + size]
    y += cycles
    return y


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
