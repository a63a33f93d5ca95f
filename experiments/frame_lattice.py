"""Frame-lattice timing, an arm: a new song's events land on the NES frame lattice (NTSC: 60.0988 Hz,
733.79 samples at 44.1 kHz), as the sound drivers NES-MDB was recorded from write their registers once
a frame. Each wait the model may take is allowed where it lands within ``tol`` samples of a lattice
point (waits over 10,000 samples, which the vocabulary only has in steps of 1,000, always); the
probability of every other wait goes to the nearest allowed one. ``install(tol)`` patches
:meth:`lakhnes.decoding.constraint.Constraint.adjust` in this process (new songs: lattice from time 0).

NES-MDB's MIDI holds that lattice (test songs of >= 20 s, each at its best phase: 88 % of onsets within
73 samples of it, 68 % within 20; at 735 samples, 26 %); TX1's rounded waits lose it.
"""

from __future__ import annotations

import numpy as np

from lakhnes.core import vocab as V
from lakhnes.decoding import constraint as C
from lakhnes.formats.apu_driver import FRAME  # samples per NTSC frame (29,780.5 CPU cycles)

W = V.WAITS.astype(np.float64)
WB, WE = V.WAIT_BASE, V.WAIT_BASE + len(V.WAITS)
COARSE = W > 10000


def snap(x_row: np.ndarray, allowed: np.ndarray, t: int, tol: float) -> None:
    """In place: the wait logits of one stream at time ``t`` moved onto the lattice-landing waits."""
    d = np.abs((t + W + FRAME / 2) % FRAME - FRAME / 2)
    ok = ((d <= tol) | COARSE) & allowed[WB:WE]
    a = np.flatnonzero(ok)
    if len(a) == 0 or ok[allowed[WB:WE]].all():
        return
    wa = W[a]
    pos = np.clip(np.searchsorted(wa, W), 1, len(a) - 1) if len(a) > 1 else np.zeros(len(W), np.int64)
    if len(a) > 1:
        left = np.abs(W - wa[pos - 1]) <= np.abs(wa[pos] - W)
        pos = np.where(left, pos - 1, pos)
    target = a[pos]
    x = x_row[WB:WE].astype(np.float64)
    m = np.max(x)
    if not np.isfinite(m):
        return
    p = np.exp(x - m)
    q = np.bincount(target, weights=p, minlength=len(W))
    with np.errstate(divide="ignore"):
        x_row[WB:WE] = np.where(ok, np.log(q) + m, -np.inf)


def install(tol: float = 36.0) -> None:
    orig = C.Constraint.adjust

    def adjust(self, logits, top_k=None):
        x = orig(self, logits, top_k)
        m = self.masker
        x = np.array(x, dtype=np.float32, copy=True) if x is logits else x
        for b, s in enumerate(self.state.streams):
            if m.waits[b] and not self.state.done[b]:
                snap(x[b], m.m[b], s.t, tol)
        return x

    C.Constraint.adjust = adjust
