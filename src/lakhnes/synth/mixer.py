"""The APU's non-linear mixer and the NES's output filters."""

from __future__ import annotations

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


@cache
def filter_coefficients(sample_rate: int, stages: tuple[str, ...] = tuple(FILTERS)):
    """(b, a) of the chained first-order filters named in ``stages`` (bilinear transform), as one
    IIR filter. A low-pass at or above the Nyquist frequency is left out."""
    from scipy import signal  # here, not at import: scipy.signal takes 0.3-2 s to import

    b, a = np.array([1.0]), np.array([1.0])
    for name in stages:
        kind, hz = FILTERS[name]
        if hz >= sample_rate / 2:
            continue
        bb, aa = signal.butter(1, hz, btype=kind, fs=sample_rate)
        b, a = np.convolve(b, bb), np.convolve(a, aa)
    return b, a


def output_filters(x: np.ndarray, sample_rate: int, stages: tuple[str, ...] = tuple(FILTERS), state=None):
    """Apply the NES output filters named in ``stages`` (default: all three) to a block; returns
    ``(y, state)``, ``state`` to pass with the next block. A first block starts the filter
    settled on its first sample's level, so a constant start (a held triangle step) does not click."""
    b, a = filter_coefficients(sample_rate, tuple(stages))
    if len(b) == 1 or not len(x):
        return x, state
    from scipy import signal

    if state is None:
        state = signal.lfilter_zi(b, a) * float(x[0])
    y, state = signal.lfilter(b, a, x.astype(np.float64, copy=False), zi=state)
    return y, state
