"""The opening, an arm (not the product's sampler): a new song's first K sampled steps read the network
at its own odds, the rest as the sampler is asked. ``install(k, waits=...)`` patches
:class:`lakhnes.decoding.sampler.Sampler` in this process:

- ``waits=None``: plain, temperature 1 and no top-k for every id;
- ``waits=0.7`` (a number): the same, with the waits reshaped at that wait temperature;
- ``waits="shaped"``: every id but the waits plain; the waits keep their total probability at
  temperature 1, and which wait it is follows the sampler's own settings (temperature, wait
  temperature, top-k among the waits).

Asks whether the sharpened first steps are what set a song's noise voice striking every frame
(BENCHMARKS.md, "The opening").
"""

from __future__ import annotations

import numpy as np

from lakhnes.core.vocab import IS_WAIT
from lakhnes.decoding import sampler as S


def _shaped(self, logits, allowed) -> np.ndarray:
    x = np.where(S._host(allowed), S._host(logits).astype(np.float64), -np.inf)
    p = np.exp(x - S._logsumexp(x))
    xq = x / self.temperature
    if self.wait_temperature is not None:
        xq = S._rescale_waits(xq, self.temperature / self.wait_temperature)
    waits = IS_WAIT[: x.shape[1]]
    u = self.rng.random(len(x))
    out = np.empty(len(x), np.int64)
    for b in range(len(x)):
        ids = np.flatnonzero(waits & (xq[b] > -np.inf))
        r = p[b].copy()
        if len(ids):
            vals = xq[b, ids]
            if self.top_k and self.top_k < len(ids):
                keep = np.sort(np.argpartition(-vals, self.top_k - 1)[: self.top_k])
                ids, vals = ids[keep], vals[keep]
            e = np.exp(vals - vals.max())
            r[waits] = 0.0
            r[ids] = p[b][waits].sum() * e / e.sum()
        c = np.cumsum(r)
        out[b] = min(int(np.searchsorted(c, u[b] * c[-1], side="right")), len(c) - 1)
    return out


def install(k: int, waits=None, top_k: int | None = None) -> None:
    """Sample the first ``k`` steps of every :class:`~lakhnes.decoding.sampler.Sampler` as ``waits`` says
    (``top_k``: keep that top-k in the opening too)."""
    orig = S.Sampler.__call__

    def call(self, logits, allowed):
        self.opening_steps = getattr(self, "opening_steps", 0) + 1
        if self.opening_steps > k or not self.temperature:
            return orig(self, logits, allowed)
        if waits == "shaped":
            return _shaped(self, logits, allowed)
        return S.pick(logits, allowed, temperature=1.0, top_k=top_k, rng=self.rng, wait_temperature=waits)

    S.Sampler.__call__ = call
