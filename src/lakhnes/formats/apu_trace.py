"""NES APU register writes -> NesScore, the way NES-MDB turned its VGM rips into MIDI.

NES-MDB (Donahue et al. 2018, ``nesmdb.score.rawsco``) emulates the APU's control logic sample by
sample at 44.1 kHz: the frame counter (quarter frames at 240 Hz NTSC / 200 Hz PAL, or 192/160 Hz in
5-step mode, advanced by adding 1/44100 s to a float until it passes the frame period), envelopes,
length counters, the triangle's linear counter and the pulse sweep units. A voice sounds where its
length counter (and the triangle's linear counter) is above 0, its volume above 0 and, for a pulse,
its timer at least 8 with the sweep target below 0x800. Its pitch is the timer period's frequency
(``CPU / (16 (t + 1))`` pulse, ``CPU / (32 (t + 1))`` triangle) rounded to the nearest MIDI note in
float32 (notes outside 21-108 are silence); noise pitch is ``16 - period index``, its timbre the
mode bit, a pulse's timbre its duty. A note lasts while its pitch holds; volume changes inside it
are CC11 events, timbre changes CC12 events (as NES-MDB's ``exprsco_to_midi`` writes them).

Here the same logic runs only at the samples where something happens (a register write or a
frame-counter step): between them nothing changes. The result is the score lakhnes reads from
NES-MDB's MIDI of the same rip.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lakhnes.core.score import CTRL_DTYPE, VOICES, NesScore, make_notes

#: Length counter load values (index = the top 5 bits of $4003/$4007/$400B/$400F).
LENGTH_TABLE = (10, 254, 20, 2, 40, 4, 80, 6, 160, 8, 60, 10, 14, 12, 26, 14,
                12, 16, 24, 18, 48, 20, 96, 22, 192, 24, 72, 26, 16, 28, 32, 30)
DT = 1.0 / 44100.0
NTSC_CLOCKS = (1789772, 1789773)


@lru_cache(maxsize=8)
def pitch_tables(clock: int) -> tuple[np.ndarray, np.ndarray]:
    """MIDI pitch (0 = out of 21-108) of each 11-bit timer period: pulse, triangle (float32 as NES-MDB)."""
    t = np.arange(2048, dtype=np.float32)
    out = []
    for div in (16, 32):
        f = np.float32(clock) / (np.float32(div) * (t + np.float32(1)))
        m = np.float32(69) + (np.float32(12) * np.log(f / np.float32(440))) / np.float32(np.log(2))
        m = np.round(m)
        m[(m < 21) | (m > 108)] = 0
        out.append(m.astype(np.int16))
    return out[0], out[1]


@lru_cache(maxsize=64)
def _next_tick(residual: float, period: float) -> tuple[int, float]:
    """Samples until the frame counter's float passes ``period``, and what is left after it."""
    x, n = residual, 0
    while True:
        x += DT
        n += 1
        if x > period:
            return n, x - period


class _Channel:
    __slots__ = ("du", "lh", "cv", "vo", "se", "sp", "sn", "ss", "timer", "stimer", "length", "env_start",
                 "env_div", "env", "swe_div", "swe_write", "status", "neg_one")

    def __init__(self, neg_one: int = 0):
        self.du = self.lh = self.cv = self.vo = self.se = self.sp = self.sn = self.ss = 0
        self.timer = self.stimer = self.length = self.env_div = self.env = 0
        self.env_start = self.swe_write = False
        self.swe_div, self.status, self.neg_one = 1, 1, neg_one

    def sweep(self) -> None:
        shifted = self.timer >> self.ss
        if self.sn:
            shifted = -(shifted + self.neg_one)
        self.stimer = self.timer + shifted

    def envelope(self) -> None:
        if self.env_start:
            self.env_start, self.env, self.env_div = False, 15, 0
            return
        self.env_div += 1
        if self.env_div > self.vo:
            self.env_div = 0
            if self.lh and self.env == 0:
                self.env = 15
            elif self.env > 0:
                self.env -= 1

    def sweep_step(self) -> None:
        if self.se:
            self.swe_div -= 1
            if self.swe_div <= 0:
                self.sweep()
                if self.timer >= 8 and self.stimer < 0x800 and self.ss > 0:
                    self.timer = max(0, self.stimer)
                self.swe_div = self.sp + 1
            if self.swe_write:
                self.swe_div, self.swe_write = self.sp + 1, False

    def volume(self) -> int:
        return self.vo if self.cv else self.env


class ApuTrace:
    """The APU state NES-MDB tracks, fed register writes and frame-counter steps in time order."""

    def __init__(self, clock: int):
        ntsc = abs(clock - 1789773) < 2
        self.rate4, self.rate5 = (1 / 240.0, 1 / 192.0) if ntsc else (1 / 200.0, 1 / 160.0)
        self.p = (_Channel(1), _Channel(0))
        self.tr, self.no = _Channel(), _Channel()
        self.tr_lr = self.tr_linear = self.no_nl = self.no_np = 0
        self.tr_reload = False
        self.fc_dt, self.fc_tick = self.rate4, 0
        self.pulse_pitch, self.tri_pitch = pitch_tables(clock)

    def quarter(self) -> None:
        self.tr_linear = self.tr_lr if self.tr_reload else self.tr_linear - 1
        if self.tr.lh == 0:
            self.tr_reload = False
        for c in (self.p[0], self.p[1], self.no):
            c.envelope()

    def half(self) -> None:
        for c in (self.p[0], self.p[1], self.tr, self.no):
            if c.lh == 0:
                c.length -= 1
        self.p[0].sweep_step()
        self.p[1].sweep_step()

    def write(self, reg: int, val: int) -> bool:
        """Apply one write to $4000+reg; True where it was $4017 (the frame counter restarts)."""
        if reg < 8:
            c = self.p[reg >> 2]
            r = reg & 3
            if r == 0:
                c.du, c.lh, c.cv, c.vo = val >> 6, (val >> 5) & 1, (val >> 4) & 1, val & 15
            elif r == 1:
                c.se, c.swe_write = val >> 7, True
                c.sweep()  # NES-MDB computes the target before taking the new period, negate and shift
                c.sp, c.sn, c.ss = (val >> 4) & 7, (val >> 3) & 1, val & 7
            elif r == 2:
                c.timer = (c.timer & 0x700) | val
                c.sweep()
            else:
                if c.status:
                    c.length = LENGTH_TABLE[val >> 3]
                c.env_start = True
                c.timer = (c.timer & 0xFF) | ((val & 7) << 8)
                c.sweep()
        elif reg < 12:
            c, r = self.tr, reg & 3
            if r == 0:
                c.lh, self.tr_lr = val >> 7, val & 0x7F
            elif r == 2:
                c.timer = (c.timer & 0x700) | val
            elif r == 3:
                if c.status:
                    c.length = LENGTH_TABLE[val >> 3]
                self.tr_reload = True
                c.timer = (c.timer & 0xFF) | ((val & 7) << 8)
        elif reg < 16:
            c, r = self.no, reg & 3
            if r == 0:
                c.lh, c.cv, c.vo = (val >> 5) & 1, (val >> 4) & 1, val & 15
            elif r == 2:
                self.no_nl, self.no_np = val >> 7, val & 15
            elif r == 3:
                if c.status:
                    c.length = LENGTH_TABLE[val >> 3]
                c.env_start = True
        elif reg == 0x15:
            for bit, c in ((3, self.no), (2, self.tr), (1, self.p[1]), (0, self.p[0])):
                c.status = (val >> bit) & 1
                if not c.status:
                    c.length = 0
        elif reg == 0x17:
            self.fc_dt, self.fc_tick = (self.rate5 if val & 0x80 else self.rate4), 0
            return True
        return False

    def row(self) -> tuple:
        """(pitch, volume, timbre) of P1, P2, TR, NO now (pitch 0: silent)."""
        out = []
        for c in self.p:
            pitch = vol = 0
            if c.length > 0:
                v = c.volume()
                if v > 0 and c.timer >= 8 and c.stimer < 0x800:
                    pitch = int(self.pulse_pitch[c.timer])
                    vol = v if pitch else 0
            out.append((pitch, vol, c.du))
        tr = self.tr
        pitch = int(self.tri_pitch[tr.timer]) if min(tr.length, self.tr_linear) > 0 else 0
        out.append((pitch, 1, 0))
        pitch = vol = 0
        if self.no.length > 0:
            v = self.no.volume()
            if v > 0:
                pitch, vol = 16 - self.no_np, v
        out.append((pitch, vol, self.no_nl))
        return tuple(out)


def trace_to_score(samples: np.ndarray, regs: np.ndarray, vals: np.ndarray, nsamps: int, clock: int,
                   name: str = "") -> NesScore:
    """The score of APU writes ``regs``/``vals`` (register offset from $4000) made at ``samples``
    (sorted), over a song of ``nsamps`` samples, as NES-MDB's MIDI holds it."""
    apu = ApuTrace(clock)
    changes: list[list] = [[] for _ in VOICES]
    last = ((0, 0, 0), (0, 0, 0), (0, 1, 0), (0, 0, 0))
    n_w = len(samples)
    samples = samples.tolist()
    regs, vals = regs.tolist(), vals.tolist()
    i = 0
    tick, residual = _next_tick(0.0, apu.fc_dt)
    next_tick = tick - 1  # the first increment lands on sample 0
    pending = -1  # a frame-counter restart clocks everything on the next sample
    while True:
        s = min(next_tick, samples[i] if i < n_w else nsamps, pending if pending >= 0 else nsamps)
        if s >= nsamps:
            break
        quarter = half = False
        if pending == s:
            quarter = half = True
            pending = -1
        if next_tick == s:
            quarter, half = True, apu.fc_tick % 2 == 1
            apu.fc_tick += 1
            n, residual = _next_tick(residual, apu.fc_dt)
            next_tick = s + n
        if quarter:
            apu.quarter()
        if half:
            apu.half()
        while i < n_w and samples[i] == s:
            if apu.write(regs[i], vals[i]):
                pending = s + 1
                n, residual = _next_tick(0.0, apu.fc_dt)
                next_tick = s + n
            i += 1
        row = apu.row()
        if row != last:
            for k in range(4):
                if row[k] != last[k]:
                    changes[k].append((s, *row[k]))
            last = row
    return _to_score(changes, nsamps, name)


def _to_score(changes: list[list], nsamps: int, name: str) -> NesScore:
    """Notes and CC11/CC12 curves of each voice's (sample, pitch, volume, timbre) changes."""
    score = NesScore(name=name, end=int(nsamps))
    for k, v in enumerate(VOICES):
        starts, ends, pitches, vels, cc11, cc12 = [], [], [], [], [], []
        last_note, last_vel, last_tim = 0, (1 if v == "TR" else 0), 0
        for s, note, vel, tim in changes[k]:
            if note != last_note:
                if last_note:
                    ends.append(s)
                if note:
                    starts.append(s)
                    pitches.append(note)
                    vels.append(vel)
            elif vel != last_vel:
                cc11.append((s, vel))
            if tim != last_tim:
                cc12.append((s, tim))
            last_note, last_vel, last_tim = note, vel, tim
        if last_note:
            ends.append(nsamps)
        score.notes[v] = make_notes(np.array(starts, dtype=np.int64), ends, pitches, vels)
        score.volume[v] = np.array(cc11, dtype=CTRL_DTYPE)
        score.timbre[v] = np.array(cc12, dtype=CTRL_DTYPE)
    return score
