"""Class-calibrated sampling, an arm (not the product's sampler): the *kind* of the next event (a wait,
a note-on of each voice, each voice's note-off) keeps the network's own odds at ``class_temp``, while
which wait or which pitch is chosen is sharpened as the product's sampler does (temperature, wait
temperature, top-k). ``install(class_temp)`` swaps :func:`lakhnes.decoding.sampler.pick` for it in this
process (the general path; no top-p).

Asks whether truncated sampling, which favours a concentrated kind (one noise sound) over a spread
one (370 waits), is what fills songs with noise (BENCHMARKS.md, "The wait-after-wait mask").
"""

from __future__ import annotations

import numpy as np

from lakhnes.core import vocab as V
from lakhnes.decoding import sampler as S

#: each id's kind: 0 waits, 1-4 a voice's note-ons, 5-8 a voice's note-off, 9 <S>
KIND = np.zeros(V.VOCAB_SIZE, np.int64)
KIND[V.IS_NOTEON] = 1 + V.VOICE_OF[V.IS_NOTEON]
KIND[V.IS_NOTEOFF] = 5 + V.VOICE_OF[V.IS_NOTEOFF]
KIND[V.START] = 9


def pick(logits, allowed, *, temperature=0.95, top_k=32, top_p=None, rng=None, wait_temperature=None,
         class_temp=1.0):
    """:func:`lakhnes.decoding.sampler.pick` with each kind's total probability among the kept ids
    set to its probability under softmax(logits / class_temp) over all allowed ids."""
    x = np.where(S._host(allowed), S._host(logits).astype(np.float64), -np.inf)
    lp = x / class_temp
    p_kind = np.exp(lp - S._logsumexp(lp))
    xq = x / temperature
    if wait_temperature is not None and wait_temperature != temperature:
        xq = S._rescale_waits(xq, temperature / wait_temperature)
    rng = np.random.default_rng() if rng is None else rng
    u = rng.random(len(x))
    out = np.empty(len(x), np.int64)
    for b in range(len(x)):
        ids = np.flatnonzero(xq[b] > -np.inf)
        vals = xq[b, ids]
        if top_k and top_k < len(ids):
            keep = np.sort(np.argpartition(-vals, top_k - 1)[:top_k])
            ids, vals = ids[keep], vals[keep]
        q = np.exp(vals - vals.max())
        q /= q.sum()
        k = KIND[ids]
        q = q / np.bincount(k, weights=q, minlength=10)[k] * np.bincount(KIND, weights=p_kind[b], minlength=10)[k]
        c = np.cumsum(q)
        out[b] = ids[min(int(np.searchsorted(c, u[b] * c[-1], side="right")), len(ids) - 1)]
    return out


def install(class_temp: float = 1.0) -> None:
    """Sample with :func:`pick` at ``class_temp`` in this process."""
    S.pick = lambda *a, **kw: pick(*a, **kw, class_temp=class_temp)
