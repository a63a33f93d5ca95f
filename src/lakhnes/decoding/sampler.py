"""Sampling one id per stream from a model's logits, among the allowed ids: temperature (0:
greedy; the waits may be reshaped among themselves: a temperature and a nucleus of their own, the tempo
kept), then top-k or top-p.

numpy only: both runtimes (numpy and torch) hand the loop numpy logits, and every random draw
comes from one ``numpy.random.Generator`` (one uniform number per stream and sampled step), so a
seed gives the same song in both. To keep float rounding between the runtimes (logits within
1e-4) from reordering the candidates, the kept ids are sampled in id order (inverse CDF), never in
the order of their probabilities."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

import numpy as np

from lakhnes.core.vocab import IS_WAIT, WAIT_OF
from lakhnes.errors import InvalidInputError

try:  # the compiled top-k of lakhnes.models._txl_kernel (optional: numpy's calls without it)
    from lakhnes.models._txl_kernel import topk as _topk
except ImportError:  # pragma: no cover - depends on the installation
    _topk = None

#: default temperature of the waits alone (the timing): chosen with the realism benchmark (with the
#: song cache, 40 songs of 30 s per arm: the most repetition for the least standing still; BENCHMARKS.md)
WAIT_TEMPERATURE = 0.7
#: default nucleus of the waits alone: only the likeliest waits holding this share of the waits'
#: probability stay (the odd intervals go); chosen with the realism benchmark (100 songs of 30 s; BENCHMARKS.md)
WAIT_TOP_P = 0.8
#: log of each wait's length in samples (0 for the other ids): the tempo the reshaped waits keep
_LOG_WAIT = np.log(np.maximum(WAIT_OF, 1)).astype(np.float64)


def check_sampling(temperature, top_k, top_p, num, wait_temperature=None, wait_top_p=None) -> None:
    """Raise :class:`InvalidInputError` for settings no sampler takes."""
    if not temperature >= 0:
        raise InvalidInputError(f"temperature must be >= 0 (0 = greedy), not {temperature}")
    if wait_temperature is not None and not wait_temperature > 0:
        raise InvalidInputError(f"wait temperature must be > 0, not {wait_temperature}")
    if wait_top_p is not None and not 0 < wait_top_p <= 1:
        raise InvalidInputError(f"wait top-p must be in (0, 1], not {wait_top_p}")
    if top_k is not None and top_k < 0:
        raise InvalidInputError(f"top_k must be >= 0 (0 = off), not {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise InvalidInputError(f"top_p must be in (0, 1], not {top_p}")
    if num < 1:
        raise InvalidInputError(f"num must be >= 1, not {num}")


def _host(x) -> np.ndarray:
    """A torch tensor or array-like as a numpy array (torch is never imported here)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _rescale_waits(x: np.ndarray, factor: float, waits: np.ndarray = IS_WAIT, top_p: float | None = None) -> np.ndarray:
    """Log-probabilities in which the waits (``waits``: a mask over ids) are reshaped by
    :func:`_shape_waits` (sharpened by ``factor``, cut to their ``top_p`` head, the tempo kept) and keep
    their total probability; the other ids are unchanged (rows of log-odds ``x`` at the temperature)."""
    waits = waits[: x.shape[-1]]
    x = x - _logsumexp(x)  # log-probabilities at the temperature
    ld = _LOG_WAIT[: x.shape[-1]][waits]
    for row in x:
        row[waits] = _shape_waits(row[waits], ld, factor, top_p)
    return x


def _lse1(v: np.ndarray) -> float:
    """log(sum(exp(v))) of a 1-D array of finite values."""
    m = float(_max(v))
    return m + float(np.log(_sum(np.exp(v - m))))


def _shape_waits(w: np.ndarray, ld: np.ndarray, factor: float, top_p: float | None) -> np.ndarray:
    """Wait log-probabilities ``w`` (-inf: not allowed; ``ld``: the waits' log lengths) reshaped among
    themselves: sharpened by ``factor`` (a temperature ratio), cut to the smallest head holding ``top_p``
    of their probability (None or 1: all), then tilted by ``length ** lam`` within what is left, with
    ``lam`` solved (Newton) so that the mean wait is the one before, where the waits left can reach it (the
    tempo stays the model's: sharpening alone favours the likeliest, short waits, and every voice would
    strike more often). The waits' total probability is kept; a new array."""
    fin = w > -np.inf
    if not fin.any():
        return w.copy()
    wf, d = w[fin], ld[fin]
    mass = _lse1(wf)
    target = _lse1(wf + d) - mass  # log of the mean wait before
    sharp = wf * factor
    if top_p is not None and top_p < 1:
        q = np.exp(sharp - _lse1(sharp))
        order = np.argsort(-q, kind="stable")
        head = q[order]
        keep = np.zeros(len(q), dtype=bool)
        keep[order[np.cumsum(head) - head < top_p]] = True
        sharp, d, fin[fin] = sharp[keep], d[keep], keep
    lam = 0.0
    for _ in range(30):
        a = sharp + lam * d
        za, zd = _lse1(a), _lse1(a + d)
        f = zd - za - target
        if abs(f) < 1e-4:
            break
        slope = float(_sum(np.exp(a + d - zd) * d) - _sum(np.exp(a - za) * d))  # d f / d lam >= 0
        if slope < 1e-9:  # one wait left, or all alike: the mean cannot move
            break
        lam -= max(-2.0, min(2.0, f / slope))
    a = sharp + lam * d
    out = np.full_like(w, -np.inf)
    out[fin] = mass + a - _lse1(a)
    return out


def _reshapes(temperature, wait_temperature, wait_top_p) -> bool:
    """Whether the waits are reshaped among themselves (a wait temperature of their own, or a nucleus)."""
    return (wait_temperature is not None and wait_temperature != temperature) or (
        wait_top_p is not None and wait_top_p < 1)


def _logsumexp(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return m + np.log(np.exp(x - m).sum(-1, keepdims=True))


def pick(logits, allowed, *, temperature=0.95, top_k=32, top_p=None, rng=None, wait_temperature=None,
         wait_top_p=None):
    """Sample one id per row of ``logits`` [B, V] (numpy) among ``allowed`` [B, V] (each row has
    one), with uniform draws from ``rng`` (a ``numpy.random.Generator``; one per row).
    ``wait_temperature`` (None: ``temperature``) and ``wait_top_p`` (None: all) reshape the choice among
    the wait tokens alone (:func:`_shape_waits`): a wait is as likely, and the mean wait as long, as at
    ``temperature``; which wait it is follows ``wait_temperature``, among the likeliest holding ``wait_top_p``."""
    if (temperature and type(logits) is np.ndarray and logits.ndim == 2 and len(logits) == 1
            and type(allowed) is np.ndarray and (wait_temperature is None or wait_temperature > 0)):
        out = _pick_row(logits[0], allowed[0], temperature, top_k, top_p, rng, wait_temperature, wait_top_p)
        if out is not None:
            return np.array([out], dtype=np.int64)
    x = np.where(_host(allowed), _host(logits).astype(np.float64), -np.inf)
    if temperature == 0:
        return x.argmax(-1).astype(np.int64)
    x /= temperature
    if _reshapes(temperature, wait_temperature, wait_top_p):
        x = _rescale_waits(x, temperature / (wait_temperature or temperature), top_p=wait_top_p)
    rng = np.random.default_rng() if rng is None else rng
    u = rng.random(len(x))
    out = np.empty(len(x), dtype=np.int64)
    for b, row in enumerate(x):
        ids = np.flatnonzero(row > -np.inf)
        if not len(ids):  # nothing allowed (callers never ask): the likeliest id
            out[b] = int(np.argmax(row))
            continue
        vals = row[ids]
        if top_k and top_k < len(ids):
            keep = np.sort(np.argpartition(-vals, top_k - 1)[:top_k])
            ids, vals = ids[keep], vals[keep]
        p = np.exp(vals - vals.max())
        p /= p.sum()
        if top_p is not None and top_p < 1:  # the smallest head (by probability) with mass >= top_p
            order = np.argsort(-p, kind="stable")
            head = p[order]
            keep = np.sort(order[np.cumsum(head) - head < top_p])
            ids, p = ids[keep], p[keep]
        c = np.cumsum(p)
        out[b] = ids[min(int(np.searchsorted(c, u[b] * c[-1], side="right")), len(ids) - 1)]
    return out


_WB, _WE = int(np.flatnonzero(IS_WAIT)[0]), int(np.flatnonzero(IS_WAIT)[-1]) + 1  # the waits: one run of ids
_max, _sum, _NINF = np.maximum.reduce, np.add.reduce, np.float64(-np.inf)


def _pick_row(logits, allowed, temperature, top_k, top_p, rng, wait_temperature, wait_top_p=None):
    """:func:`pick` for one row: the same float operations in fewer numpy calls (no errstate, no
    wrappers, in place); None where :func:`pick`'s own code must run (nothing allowed, infinities)."""
    x = np.where(allowed, logits, _NINF)  # float64 (a float64 scalar), float32 logits widened exactly
    if x.dtype != np.float64:
        x = x.astype(np.float64)
    x /= temperature
    if _reshapes(temperature, wait_temperature, wait_top_p):
        m = _max(x)
        if not -np.inf < m < np.inf:
            return None
        e = x - m
        x -= m + np.log(_sum(np.exp(e, out=e)))  # log-probabilities at the temperature
        w = x[_WB:_WE]
        if _max(w) > -np.inf:  # else no wait is allowed: the waits stay -inf
            if not np.isfinite(w[w > -np.inf]).all():
                return None
            x[_WB:_WE] = _shape_waits(w, _LOG_WAIT[_WB:_WE], temperature / (wait_temperature or temperature),
                                      wait_top_p)
    ids, p = _top(x, top_k)
    if ids is None:
        return None
    np.exp(p, out=p)
    total = float(_sum(p))
    u = (np.random.default_rng() if rng is None else rng).random()
    if top_p is not None and top_p < 1:
        p /= total
        order = np.argsort(-p, kind="stable")
        head = p[order]
        keep = np.sort(order[np.cumsum(head) - head < top_p])
        ids, p = ids[keep], p[keep]
        c = p.cumsum()
        return int(ids[min(int(c.searchsorted(u * c[-1], side="right")), len(ids) - 1)])
    # numpy's p / total, its cumsum (sequential) and searchsorted, in Python floats: the same roundings
    c = list(accumulate([q / total for q in p.tolist()]))
    return int(ids[min(bisect_right(c, u * c[-1]), len(c) - 1)])


def _top(x, top_k):
    """The ids of the finite entries of ``x`` among its ``top_k`` largest (all: None or 0), in id order, and their
    values less the largest (float64); (None, None) if none. The compiled top-k where it is installed; numpy's
    argpartition where the ``top_k``-th largest is tied (its choice among them)."""
    if _topk is not None and (top_k or 0) <= 64:
        ids, p = np.empty(len(x), np.int64), np.empty(len(x))
        n = _topk(x, top_k or 0, ids, p)
        if n >= 0:
            return (ids[:n], p[:n]) if n else (None, None)
    ids = np.greater(x, _NINF).nonzero()[0]
    if not len(ids):
        return None, None
    vals = x[ids]
    if top_k and top_k < len(ids):
        keep = np.argpartition(-vals, top_k - 1)[:top_k]
        keep.sort()
        ids, vals = ids[keep], vals[keep]
    return ids, vals - _max(vals)

class Sampler:
    """:func:`pick` with fixed settings and its own ``numpy.random.Generator`` seeded with ``seed``
    (None: a random seed): ``sampler(logits, allowed) -> ids [B]`` (numpy int64)."""

    def __init__(self, *, temperature: float = 0.95, top_k: int | None = 32, top_p: float | None = None,
                 seed: int | None = None, wait_temperature: float | None = None, wait_top_p: float | None = None,
                 device=None):
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.wait_temperature, self.wait_top_p = wait_temperature, wait_top_p
        self.rng = np.random.default_rng(None if seed is None else int(seed))

    def __call__(self, logits, allowed):
        return pick(logits, allowed, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                    rng=self.rng, wait_temperature=self.wait_temperature, wait_top_p=self.wait_top_p)
