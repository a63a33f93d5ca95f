"""The caches together: their tables in a model's ``config.json`` and the stepper with them mixed in.

A model may carry three cache tables, each fitted on held-out songs per memory length: the song
cache's λ (:mod:`lakhnes.models.song_cache`, key ``song_cache``), the voice cache's mu
(:mod:`lakhnes.models.voice_cache`, key ``voice_cache``) and the rhythm cache's rho
(:mod:`lakhnes.models.rhythm_cache`, key ``rhythm_cache``). The voice and rhythm caches keep one
table per memory length (``{"orders": [...], "tables": {"896": {"mu": [...], ...}}}``). numpy only.
"""

from __future__ import annotations

import numpy as np

from lakhnes.models.song_cache import check_table, nearest_memory


def read_table(path, key: str, name: str, orders, n: int, mem_len: int | None = None) -> np.ndarray | None:
    """The ``name`` table under ``key`` in the ``config.json`` of the model at ``path``, fitted
    nearest ``mem_len`` (None: the longest memory fitted), or None when the model has none."""
    from lakhnes.errors import InvalidInputError
    from lakhnes.models.files import read_config

    ckpt, meta = read_config(path)
    entry = meta.get(key)
    if entry is None:
        return None
    try:
        if tuple(entry["orders"]) != tuple(orders):
            raise ValueError(f"orders {entry['orders']} are not this version's {list(orders)}")
        tables = {int(m): t[name] for m, t in entry["tables"].items()}
        near = nearest_memory(tables, max(tables) if mem_len is None else mem_len)
        table = check_table(tables[near], n, name)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InvalidInputError(f"bad {key} in config.json ({e})", str(ckpt)) from None
    return table


def merge_tables(old: dict | None, name: str, values, orders, mem_len: int, **about) -> dict:
    """A cache's ``config.json`` entry after a fit at ``mem_len``: one table per memory length (the
    others kept when the orders agree)."""
    tables = dict((old or {}).get("tables") or {}) if (old or {}).get("orders") == list(orders) else {}
    tables[str(int(mem_len))] = {name: [round(float(x), 6) for x in values], **about}
    return {"orders": list(orders), "tables": dict(sorted(tables.items(), key=lambda kv: int(kv[0])))}


class HistoryStepper:
    """A stepper (``logits`` after the prompt [B, T], ``step(ids)``) wrapping ``inner``, whose logits
    each stream's history (a ``history()``, fed every id) re-weights with ``table`` (``name``: its
    values' name, ``n`` of them) in ``_mix`` (the decoding loop drives it like the model's own)."""

    history: type
    kind, name, n = "cache", "table", 0

    def __init__(self, inner, table, prompt):
        self.inner = inner
        self.table = np.asarray(table, dtype=np.float64)
        if self.table.shape != (self.n,):
            raise ValueError(f"a {self.kind} needs {self.n} {self.name} values, not {self.table.shape}")
        self.hist = [self.history() for _ in range(len(prompt))]
        for h, row in zip(self.hist, np.asarray(prompt, dtype=np.int64).tolist(), strict=True):
            for y in row:
                h.push(y)
        self.logits = self._mix(inner.logits)

    def step(self, ids) -> np.ndarray:
        for h, y in zip(self.hist, np.asarray(ids).reshape(-1).tolist(), strict=True):
            h.push(y)
        return self._mix(self.inner.step(ids))

    def _mix(self, logits) -> np.ndarray:
        raise NotImplementedError


def with_caches(inner, prompt, lam, mu=None, boost: float | None = None, rho=None,
                rhythm_boost: float | None = None):
    """The stepper ``inner`` with the song cache (λ table ``lam``, its odds x ``boost``, default
    :data:`lakhnes.models.song_cache.CACHE_BOOST`), then the voice cache (``mu``), then the rhythm
    cache (``rho``, its odds x ``rhythm_boost``, default :data:`lakhnes.models.rhythm_cache.RHYTHM_BOOST`)
    mixed in; a cache whose table is None is off (the others need the song cache)."""
    from lakhnes.models.rhythm_cache import RHYTHM_BOOST, RhythmCachedStepper
    from lakhnes.models.song_cache import CACHE_BOOST, CachedStepper, boosted
    from lakhnes.models.voice_cache import VoiceCachedStepper

    if lam is None:
        return inner
    inner = CachedStepper(inner, boosted(lam, CACHE_BOOST if boost is None else boost), prompt)
    if mu is not None:
        inner = VoiceCachedStepper(inner, mu, prompt)
    if rho is None:
        return inner
    return RhythmCachedStepper(inner, boosted(rho, RHYTHM_BOOST if rhythm_boost is None else rhythm_boost), prompt)
