"""A wait temperature that keeps the pace (an arm of ``sampling_arm.py --keep-pace``; not adopted).

The shipped wait temperature (0.7) keeps the probability of a wait and sharpens which wait it is. The
likeliest waits are short, so the mean wait falls and every voice strikes more often. Here the sharpened
waits are also tilted by ``d ** lam`` (``d`` the wait in samples), with ``lam`` solved per step (Newton)
so that the mean wait is the one at the song's temperature: the choice is as sharp, the pace the model's.
"""

import numpy as np

from lakhnes.core.vocab import IS_WAIT, WAIT_OF
from lakhnes.decoding import sampler as S

LOG_D = np.log(np.maximum(WAIT_OF, 1)).astype(np.float64)


def _lse(v: np.ndarray) -> float:
    m = v.max()
    return float(m + np.log(np.exp(v - m).sum()))


def keep_pace(w: np.ndarray, ld: np.ndarray, factor: float) -> np.ndarray:
    """Finite wait log-probabilities ``w`` (waits ``exp(ld)``) sharpened by ``factor`` and tilted so that
    the mean wait is unchanged; the total probability of a wait is kept."""
    mass = _lse(w)
    target = _lse(w + ld) - mass  # log of the mean wait at the temperature
    sharp, lam = w * factor, 0.0
    for _ in range(30):
        a = sharp + lam * ld
        za, zd = _lse(a), _lse(a + ld)
        f = zd - za - target
        if abs(f) < 1e-4:
            break
        slope = float((np.exp(a + ld - zd) * ld).sum() - (np.exp(a - za) * ld).sum())  # d f / d lam >= 0
        if slope < 1e-9:
            break
        lam -= max(-2.0, min(2.0, f / slope))
    a = sharp + lam * ld
    return mass + a - _lse(a)


def rescale_pace(x: np.ndarray, factor: float, waits: np.ndarray = IS_WAIT) -> np.ndarray:
    """:func:`lakhnes.decoding.sampler._rescale_waits` with the pace kept (rows of log-odds ``x``)."""
    waits = waits[: x.shape[-1]]
    x = x - S._logsumexp(x)
    ld_all = LOG_D[: x.shape[-1]][waits]
    for row in x:
        w = row[waits]
        fin = np.isfinite(w)
        if fin.any():
            new = np.full_like(w, -np.inf)
            new[fin] = keep_pace(w[fin], ld_all[fin], factor)
            row[waits] = new
    return x


def install() -> None:
    """Sample every step through :func:`rescale_pace` (the one-row fast path off)."""
    S._rescale_waits = rescale_pace
    S._pick_row = lambda *args: None
