"""The APU's non-linear mixer and the NES's output filters."""

from __future__ import annotations

import math
from functools import cache

import numpy as np

#: First-order output filters of the NES (NESdev "APU Mixer"): high-pass 90 Hz and 440 Hz, low-pass 14 kHz.
HIGH_PASS_HZ = (90.0, 440.0)
LOW_PASS_HZ = 14000.0
#: The same filters by name, each switchable (``render(filters=...)``, ``lakhnes synth --filters``).
FILTERS = {"hp90": ("highpass", 90.0), "hp440": ("highpass", 440.0), "lp14k": ("lowpass", LOW_PASS_HZ)}


#: Channel scales that ``mix_scaled`` expects: its inputs are ``level * scale``.
SCALE = {"P1": 1.0, "P2": 1.0, "TR": 100.0 / 8227.0, "NO": 100.0 / 12241.0}


def mix(p1: np.ndarray, p2: np.ndarray, tr: np.ndarray, no: np.ndarray) -> np.ndarray:
    """Mixer output (0 to about 0.63) from channel levels 0-15 (DMC silent).

    ``pulse = 95.88 / (8128 / (p1 + p2) + 100)`` and
    ``tnd = 159.79 / (1 / (tr / 8227 + no / 12241) + 100)``, each 0 when its inputs are 0.
    """
    shape = np.broadcast(p1, p2, tr, no).shape
    f = [np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (p1, p2, tr, no)]
    out = mix_scaled(f[0] + f[1], None, f[2] * SCALE["TR"] + f[3] * SCALE["NO"], None)
    return out.reshape(shape)


def mix_scaled(p1, p2, tr, no) -> np.ndarray:
    """``mix`` for inputs already scaled by ``SCALE`` (None = silent), computed in place as
    ``0.9588 (1 - 81.28 / (81.28 + p))`` and ``1.5979 (1 - 1 / (1 + u))`` with
    ``p = p1 + p2`` and ``u = 100 (tr / 8227 + no / 12241)``: the same curves, no 0/0."""
    p = p1 if p1 is not None else p2
    if p1 is not None and p2 is not None:
        p = p1 + p2
    u = tr if tr is not None else no
    if tr is not None and no is not None:
        u = tr + no
    out = None
    if p is not None:
        p += 81.28
        np.divide(-0.9588 * 81.28, p, out=p)
        p += 0.9588
        out = p
    if u is not None:
        u += 1.0
        np.divide(-1.5979, u, out=u)
        u += 1.5979
        out = u if out is None else out + u
    return out


def _sections(sample_rate: int, stages: tuple[str, ...]) -> list[tuple[float, float, float]]:
    """First-order Butterworth sections ``(b0, b1, a1)`` of the filters named in ``stages`` (the bilinear
    transform with a pre-warped cutoff, as ``scipy.signal.butter(1, hz, btype, fs=sample_rate)``:
    ``y[n] = b0 x[n] + b1 x[n-1] - a1 y[n-1]``). A low-pass at or above the Nyquist frequency is left out."""
    out = []
    for name in stages:
        kind, hz = FILTERS[name]
        if hz >= sample_rate / 2:
            continue
        k = math.tan(math.pi * hz / sample_rate)
        b0 = k / (k + 1) if kind == "lowpass" else 1 / (k + 1)
        out.append((b0, b0 if kind == "lowpass" else -b0, (k - 1) / (k + 1)))
    return out


@cache
def filter_coefficients(sample_rate: int, stages: tuple[str, ...] = tuple(FILTERS)):
    """(b, a) of the chained first-order filters named in ``stages`` (bilinear transform), as one
    IIR filter. A low-pass at or above the Nyquist frequency is left out."""
    b, a = np.array([1.0]), np.array([1.0])
    for b0, b1, a1 in _sections(sample_rate, stages):
        b, a = np.convolve(b, [b0, b1]), np.convolve(a, [1.0, a1])
    return b, a


@cache
def _block_powers(p: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """p^0 .. p^n, and the [n, n] matrix T[i, k] = p^(i - k) for i >= k (else 0)."""
    powers = p ** np.arange(n + 1, dtype=np.float64)
    i = np.arange(n)
    return powers, np.where(i[:, None] >= i[None, :], powers[np.abs(i[:, None] - i[None, :])], 0.0)


def _recurrence(u: np.ndarray, p: float, y0: float, n: int = 32) -> np.ndarray:
    """y[t] = p y[t-1] + u[t] with y[-1] = y0, in blocks of ``n``: each block's response from rest is one
    matrix product; the levels entering the blocks follow the same recurrence (factor p^n), solved the
    same way, so no Python loop runs over more than ``n`` values."""
    m = len(u)
    if m <= n:
        out = []
        for v in u.tolist():
            y0 = v + p * y0
            out.append(y0)
        return np.array(out)
    powers, t = _block_powers(p, n)
    blocks = np.zeros((-(-m // n), n))
    blocks.reshape(-1)[:m] = u
    y = blocks @ t.T
    ends = _recurrence(y[:, -1].copy(), powers[n], y0, n)  # the level at each block's end
    y[0] += y0 * powers[1:]
    y[1:] += ends[:-1, None] * powers[1:]
    return y.reshape(-1)[:m]


def output_filters(x: np.ndarray, sample_rate: int, stages: tuple[str, ...] = tuple(FILTERS), state=None):
    """Apply the NES output filters named in ``stages`` (default: all three) to a block; returns
    ``(y, state)``, ``state`` to pass with the next block. A first block starts the filter
    settled on its first sample's level, so a constant start (a held triangle step) does not click.
    The first-order sections run one after another in float64 (numpy only: no scipy.signal to import)."""
    sections = _sections(sample_rate, tuple(stages))
    if not sections or not len(x):
        return x, state
    y = np.asarray(x, dtype=np.float64)
    if state is None:  # settled: every section's input and output at their steady levels
        state, level = [], float(y[0])
        for b0, b1, a1 in sections:
            out = level * (b0 + b1) / (1 + a1)
            state.append((level, out))
            level = out
    new = []
    for (b0, b1, a1), (x_prev, y_prev) in zip(sections, state, strict=True):
        u = b0 * y
        u[0] += b1 * x_prev
        u[1:] += b1 * y[:-1]
        x_last = float(y[-1])
        y = _recurrence(u, -a1, y_prev)
        new.append((x_last, float(y[-1])))
    return y, new
