"""The song cache: what this song did before after the same recent tokens.

A cache language model over n-gram contexts (after Grave et al., 2017, "continuous cache", and
PPM): before each token, the longest of :data:`ORDERS` recent-token contexts that already occurred
in the song gives a distribution over the next id, the counts of what followed it there. The
neural model's probabilities are mixed with it, ``p = (1 - lam) * p_model + lam * p_cache``, with
``lam`` from a table fitted on held-out songs (:func:`fit_lambdas`) per *bucket*: the order
matched, whether that context always went on the same way, and how often it was seen (1, 2, 3+).

Music repeats itself (NES music is built from loops and repeated phrases); a Transformer-XL only
sees its memory, the cache sees the whole song. The mixture is an ordinary normalized
distribution, scored by perplexity like any model. The cache forgets at every ``<S>`` (one song).
numpy only: the same code serves both runtimes, evaluation and generation.
"""

from __future__ import annotations

import numpy as np

from lakhnes.core.vocab import START

#: context lengths (tokens) the cache matches, shortest first
ORDERS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
#: buckets: 0 (no context seen before) .. ; 8 per order
N_BUCKETS = (len(ORDERS) + 1) * 8


#: generation only: the song cache's odds λ / (1 - λ) multiplied by this (``--cache-boost``; the
#: table is fitted for perplexity). 1: the realism benchmark's choice over 100 songs (2 brings more
#: phrases back but a classifier tells the songs from real ones more often: BENCHMARKS.md,
#: "The song cache"); evaluation never boosts
CACHE_BOOST = 1.0


def boosted(lambdas, factor: float) -> np.ndarray:
    """λ with its odds multiplied by ``factor`` (1: unchanged): ``factor λ / (1 - λ + factor λ)``."""
    lam = np.asarray(lambdas, dtype=np.float64)
    return lam if factor == 1 else factor * lam / (1 - lam + factor * lam)


def bucket(order_index: int, distinct: int, count: int) -> int:
    """The λ bucket of a match: ``order_index`` (1-based into :data:`ORDERS`; 0: none), the number
    of ``distinct`` continuations seen and the context's ``count``."""
    return order_index * 8 + (4 if distinct <= 1 else 0) + min(count, 3)


#: the contexts' keys: polynomial hashes of the ids modulo a Mersenne prime, from prefix sums
_P, _B = (1 << 61) - 1, 1_000_003
_POWS = [(k, pow(_B, k, _P)) for k in ORDERS]
_BACK = [(-1 - k, q) for k, q in _POWS]  # pre[-1 - k] is pre[t - k]


class SongHistory:
    """One song's tokens so far, with the continuations of every context of :data:`ORDERS`."""

    def __init__(self):
        self.seq: list[int] = []
        self.tables: list[dict] = [{} for _ in ORDERS]
        self._prefix = [0]  # hash of seq[:t] for every t
        self._keys: list[int] | None = None  # the current contexts' keys (shortest first), once computed
        # Contexts nest (a context seen before has every suffix seen before), and one token lengthens the
        # longest seen by one at most: at most ``_cap`` orders can match now; ``_found``: how many do
        # (from lookup; -1: not looked up since the last push)
        self._cap, self._found = 0, -1

    def _context_keys(self) -> list[int]:
        if self._keys is None:
            pre = self._prefix
            h, t = pre[-1], len(pre) - 1
            self._keys = ([(h - pre[k] * q) % _P for k, q in _BACK] if t >= ORDERS[-1] else
                          [(h - pre[t - k] * q) % _P for k, q in _POWS if k <= t])
        return self._keys

    def push(self, y: int) -> None:
        """Record ``y`` as the continuation of each current context, then append it (``<S>``: forget)."""
        y = int(y)
        if y == START:
            self.__init__()
            return
        keys, tables, n = self._context_keys(), self.tables, self._found
        if n < 0:
            n = len(keys)
        for i in range(n):
            d = tables[i].get(keys[i])
            if d is None:
                tables[i][keys[i]] = {-1: 1, y: 1}  # the total first (mix reads it so)
            else:
                d[y] = d.get(y, 0) + 1
                d[-1] += 1
        for i in range(n, len(keys)):
            tables[i][keys[i]] = {-1: 1, y: 1}  # contexts never seen (lookup said so)
        self.seq.append(y)
        pre = self._prefix
        pre.append((pre[-1] * _B + y + 1) % _P)
        self._keys, self._cap, self._found = None, self._cap + 1, -1

    def lookup(self) -> tuple[int, dict | None]:
        """(bucket, counts of the next ids with the total under key -1) of the longest context seen
        before; (0, None) if none."""
        keys, tables = self._context_keys(), self.tables
        for i in range(min(self._cap, len(keys)) - 1, -1, -1):
            d = tables[i].get(keys[i])
            if d is not None:
                self._cap = self._found = i + 1
                return bucket(i + 1, len(d) - 1, d[-1]), d
        self._cap = self._found = 0
        return 0, None


def stream_scores(ids) -> tuple[np.ndarray, np.ndarray]:
    """For each target of a token stream (every id but the first): its bucket and the cache's
    probability of it, from the ids before it (each id pushed in turn)."""
    ids = np.asarray(ids, dtype=np.int64).tolist()
    h = SongHistory()
    buckets = np.zeros(max(len(ids) - 1, 0), np.int16)
    probs = np.zeros(max(len(ids) - 1, 0), np.float64)
    for t in range(1, len(ids)):
        h.push(ids[t - 1])
        b, d = h.lookup()
        if d is not None:
            buckets[t - 1] = b
            probs[t - 1] = d.get(ids[t], 0) / d[-1]
    return buckets, probs


def fit_lambdas(buckets: np.ndarray, p_model: np.ndarray, p_cache: np.ndarray, iters: int = 100,
                prior: float = 20.0) -> np.ndarray:
    """λ per bucket that maximises the likelihood of the mixture on these targets (EM; a bucket
    with few targets is drawn toward 0 by ``prior`` pseudo-targets the cache does not predict)."""
    lam = np.zeros(N_BUCKETS)
    for b in np.unique(buckets):
        if b == 0:
            continue
        m = buckets == b
        pm, pc = p_model[m], p_cache[m]
        x = 0.1
        for _ in range(iters):
            r = x * pc / np.maximum(x * pc + (1 - x) * pm, 1e-300)
            x = float(np.clip(r.sum() / (len(r) + prior), 0.0, 0.999))
        lam[int(b)] = x
    return lam


_max, _sum = np.maximum.reduce, np.add.reduce


class SongCache:
    """The caches of ``num`` streams and their λ table: ``mix(logits)`` -> log-probabilities of the
    mixture, ``push(ids)`` after each step."""

    def __init__(self, lambdas, num: int, prompt=None):
        self.lam = np.asarray(lambdas, dtype=np.float64)
        if self.lam.shape != (N_BUCKETS,):
            raise ValueError(f"a song cache needs {N_BUCKETS} λ values, not {self.lam.shape}")
        self.hist = [SongHistory() for _ in range(num)]
        if prompt is not None:
            for b, row in enumerate(np.asarray(prompt, dtype=np.int64)):
                for y in row.tolist():
                    self.hist[b].push(y)

    def push(self, ids) -> None:
        for h, y in zip(self.hist, np.asarray(ids).reshape(-1).tolist(), strict=True):
            h.push(y)

    def mix(self, logits: np.ndarray) -> np.ndarray:
        """Logits [B, V] of the mixture of softmax(``logits``) and each stream's cache, up to a
        constant per row (what sampling needs): ``logits`` where the cache has nothing to add, and
        where it has, ``lse + log(p_i + λ / (1 - λ) c_i)`` on its ids (``lse`` the row's logsumexp)."""
        x = np.array(logits, dtype=np.float64)
        for b, h in enumerate(self.hist):
            k, d = h.lookup()
            if d is None:
                continue
            lam = float(self.lam[k])
            if lam <= 0:
                continue
            row = x[b]
            m = _max(row)
            e = row - m
            lse = m + np.log(_sum(np.exp(e, out=e)))
            counts = list(d.values())  # the total (key -1) first, then the ids'
            ids, coef, total = np.array(list(d)[1:]), lam / (1 - lam), counts[0]
            v = row[ids]
            v -= lse
            np.exp(v, out=v)
            v += [coef * n / total for n in counts[1:]]  # float64 either way: the same roundings
            if coef / total > 0:  # then every term is > 0: no log(0)
                np.log(v, out=v)
            else:
                with np.errstate(divide="ignore"):
                    np.log(v, out=v)
            v += lse
            row[ids] = v
        return x


class CachedStepper:
    """A stepper (``logits`` after the prompt, ``step(ids)``) whose logits are the song cache's
    mixture with the model's: the decoding loop drives it like the model's own."""

    def __init__(self, inner, lambdas, prompt):
        self.inner = inner
        self.cache = SongCache(lambdas, len(prompt), prompt)
        self.logits = self.cache.mix(inner.logits)

    def step(self, ids) -> np.ndarray:
        self.cache.push(ids)
        return self.cache.mix(self.inner.step(ids))


def read_lambdas(path, mem_len: int | None = None) -> np.ndarray | None:
    """The λ table in the ``config.json`` of the model at ``path`` (key ``song_cache``), or None
    when the model has none. A config may hold tables fitted at several memory lengths
    (``by_mem_len``): ``mem_len`` picks the one fitted nearest (by ratio); None: the main table."""
    from lakhnes.errors import InvalidInputError
    from lakhnes.models.files import read_config

    ckpt, meta = read_config(path)
    sc = meta.get("song_cache")
    if sc is None:
        return None
    try:
        if tuple(sc["orders"]) != ORDERS:
            raise ValueError(f"orders {sc['orders']} are not this version's {list(ORDERS)}")
        lam = check_table(sc["lambda"])
        if mem_len is not None and sc.get("by_mem_len") and sc.get("mem_len"):
            tables = {int(sc["mem_len"]): lam, **{int(m): t["lambda"] for m, t in sc["by_mem_len"].items()}}
            lam = check_table(tables[nearest_memory(tables, mem_len)])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InvalidInputError(f"bad song_cache in config.json ({e})", str(ckpt)) from None
    return lam


def nearest_memory(tables: dict, mem_len: int) -> int:
    """The memory length among ``tables``' keys nearest ``mem_len`` by ratio (ties: the shorter)."""
    return min(tables, key=lambda m: (abs(np.log(max(m, 1) / max(int(mem_len), 1))), m))


def check_table(values, n: int = N_BUCKETS, name: str = "lambda") -> np.ndarray:
    lam = np.asarray(values, dtype=np.float64)
    if lam.shape != (n,) or not np.all((lam >= 0) & (lam < 1)):
        raise ValueError(f"{name} must be {n} values in [0, 1)")
    return lam


def merge_table(old: dict | None, lambdas, mem_len: int, **about) -> dict:
    """The ``song_cache`` entry after a fit at ``mem_len``: the main table when there is none or it
    was fitted at that memory (tables of other memories kept), else the table for ``mem_len``."""
    new = table_json(lambdas, **about, mem_len=int(mem_len))
    if not old or tuple(old.get("orders", ())) != ORDERS:
        return new
    by = dict(old.get("by_mem_len") or {})
    if int(old.get("mem_len") or mem_len) == int(mem_len):
        return {**new, "by_mem_len": by} if by else new
    by[str(int(mem_len))] = {k: v for k, v in new.items() if k != "orders"}
    return {**old, "by_mem_len": dict(sorted(by.items(), key=lambda kv: int(kv[0])))}


def table_json(lambdas, **about) -> dict:
    """The ``song_cache`` entry of a model's ``config.json``."""
    return {"orders": list(ORDERS), "lambda": [round(float(x), 6) for x in lambdas], **about}
