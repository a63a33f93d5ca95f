"""N-gram baselines over TX1 token ids (numpy only, no torch).

- ``order=1``: unigram with add-one (Laplace) smoothing: ``p(w) = (c(w) + 1) / (N + V)``.
- ``order>=2``: interpolated modified Kneser-Ney (Chen & Goodman 1998): three discounts per
  order (for counts 1, 2, 3+) from the count-of-counts; the highest order uses raw counts,
  lower orders continuation counts (distinct left extensions); the unigram level is
  interpolated with the uniform distribution, so every id has a non-zero probability.

An n-gram of order k is stored as one int64 key, its ids read as base-631 digits
(631^5 < 2^63). Counting is a sort of all keys; a lookup is ``np.searchsorted``.
Saved as ``config.json`` + ``ngram.npz`` (loaded with ``allow_pickle=False``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lakhnes.core.vocab import VOCAB_SIZE
from lakhnes.errors import InvalidInputError
from lakhnes.io import atomic_path

V = VOCAB_SIZE
MAX_ORDER = 6  # 631**6 < 2**63
NGRAM_FILE = "ngram.npz"
SMOOTHING = {1: "add-one", "kn": "interpolated modified Kneser-Ney"}


@dataclass
class NGramConfig:
    order: int = 5
    vocab_size: int = V

    @property
    def smoothing(self) -> str:
        return SMOOTHING[1] if self.order == 1 else SMOOTHING["kn"]


def _keys(tokens: np.ndarray, k: int) -> np.ndarray:
    """Key of every k-gram of ``tokens`` (one per end position k-1 .. n-1)."""
    n = len(tokens) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    key = np.zeros(n, dtype=np.int64)
    for j in range(k):
        key = key * V + tokens[j : j + n]
    return key


def _unique(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and their counts (sort-based: much faster than the hash-based
    ``np.unique`` of numpy 2 on millions of int64 keys)."""
    a = np.sort(a)
    if not len(a):
        return a, np.zeros(0, dtype=np.int64)
    first = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
    return a[first], np.diff(np.r_[first, len(a)]).astype(np.int64)


def _fold(ctx: np.ndarray) -> np.ndarray:
    """Keys of rows of ids [M, k] (left to right)."""
    key = np.zeros(len(ctx), dtype=np.int64)
    for j in range(ctx.shape[1]):
        key = key * V + ctx[:, j]
    return key


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Modified KN discounts D(0)=0, D(1), D(2), D(3+) from the count-of-counts."""
    n = np.array([np.count_nonzero(counts == i) for i in (1, 2, 3, 4)], dtype=np.float64)
    if np.all(n > 0):
        y = n[0] / (n[0] + 2 * n[1])
        d = np.array([1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])
    else:  # too little data for the estimate
        d = np.array([0.5, 1.0, 1.5])
    return np.concatenate([[0.0], np.clip(d, 0.0, [1.0, 2.0, 3.0])])


class _Level:
    """One order's table: sorted gram keys, their counts, and per-context sums."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray):
        self.keys, self.counts = keys, counts
        self.disc = _discounts(counts)
        removed = np.minimum(counts, self.disc[np.minimum(counts, 3)])  # discount mass per gram
        ctx = keys // V
        starts = np.flatnonzero(np.r_[True, ctx[1:] != ctx[:-1]]) if len(keys) else np.zeros(0, np.int64)
        self.ctx = ctx[starts]
        self.total = np.add.reduceat(counts, starts).astype(np.float64) if len(keys) else np.zeros(0)
        self.removed = np.add.reduceat(removed, starts) if len(keys) else np.zeros(0)

    def find(self, table: np.ndarray, q: np.ndarray):
        i = np.minimum(np.searchsorted(table, q), max(len(table) - 1, 0))
        found = table[i] == q if len(table) else np.zeros(len(q), bool)
        return i, found


class NGramLM:
    """An n-gram language model over the 631 TX1 ids."""

    model_type = "ngram"

    def __init__(self, config: NGramConfig, levels: list[tuple[np.ndarray, np.ndarray]], train_tokens: int):
        if not 1 <= config.order <= MAX_ORDER:
            raise InvalidInputError(f"n-gram order must be 1-{MAX_ORDER}, not {config.order}")
        self.config = config
        self.train_tokens = int(train_tokens)
        self.raw = levels  # (keys, counts) per order 1..n, as trained and saved
        self.levels = [_Level(k.astype(np.int64), c.astype(np.int64)) for k, c in levels]

    @property
    def order(self) -> int:
        return self.config.order

    def num_parameters(self) -> int:
        """Stored n-grams (all orders)."""
        return int(sum(len(k) for k, _ in self.raw))

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, tokens: np.ndarray, order: int = 5) -> NGramLM:
        """Count n-grams of one token sequence (songs back to back, as in the shards)."""
        if not 1 <= order <= MAX_ORDER:
            raise InvalidInputError(f"n-gram order must be 1-{MAX_ORDER}, not {order}")
        t = np.asarray(tokens, dtype=np.int64)
        if len(t) < order:
            raise InvalidInputError(f"{len(t)} training tokens are too few for a {order}-gram")
        if order == 1:
            counts = np.bincount(t, minlength=V).astype(np.int64)
            return cls(NGramConfig(1), [(np.arange(V, dtype=np.int64), counts)], len(t))
        levels: list = [None] * order
        top, cnt = _unique(_keys(t, order))
        levels[order - 1] = (top, cnt)
        upper = top
        for k in range(order - 1, 0, -1):  # continuation counts: distinct left extensions
            levels[k - 1] = _unique(upper % V**k)
            if k > 1:
                upper = _unique(_keys(t, k))[0]
        return cls(NGramConfig(order), levels, len(t))

    # ------------------------------------------------------------------ scoring
    def prob(self, context: np.ndarray, target: np.ndarray) -> np.ndarray:
        """p(target | context) for M rows. ``context`` [M, c] holds the previous ids, oldest
        first, -1 where there is none (start of a stream); only the last order-1 are used."""
        w = np.asarray(target, dtype=np.int64)
        ctx = np.asarray(context, dtype=np.int64).reshape(len(w), -1)
        if self.order == 1:
            counts = self.levels[0].counts
            return (counts[w] + 1.0) / (self.train_tokens + V)
        lv = self.levels[0]
        i, found = lv.find(lv.keys, w)
        c = np.where(found, lv.counts[i], 0)
        p = (c - np.minimum(c, lv.disc[np.minimum(c, 3)])) / lv.total.sum()
        p = p + lv.removed.sum() / lv.total.sum() / V
        for k in range(2, self.order + 1):
            if ctx.shape[1] < k - 1:
                break
            h = ctx[:, ctx.shape[1] - (k - 1) :]
            ok = np.all(h >= 0, axis=1)
            hkey = _fold(np.where(h >= 0, h, 0))
            lv = self.levels[k - 1]
            hi, hfound = lv.find(lv.ctx, hkey)
            hfound &= ok
            gi, gfound = lv.find(lv.keys, hkey * V + w)
            c = np.where(gfound, lv.counts[gi], 0)
            tot = np.where(hfound, lv.total[hi], 1.0)
            new = (c - np.minimum(c, lv.disc[np.minimum(c, 3)]) + lv.removed[hi] * p) / tot
            p = np.where(hfound, new, p)
        return p

    def distribution(self, context) -> np.ndarray:
        """The full next-id distribution [631] after ``context`` (a sequence of previous ids)."""
        ctx = np.full(self.order - 1, -1, dtype=np.int64)
        c = np.asarray(context, dtype=np.int64)[-(self.order - 1) :] if self.order > 1 else []
        if len(c):
            ctx[len(ctx) - len(c) :] = c
        return self.prob(np.tile(ctx, (V, 1)), np.arange(V))

    def stream_nll(self, stream: np.ndarray, chunk: int = 1 << 18) -> float:
        """Summed negative log-likelihood (nats) of ``stream[1:]``, each id given the ids
        before it in the same stream."""
        s = np.asarray(stream, dtype=np.int64)
        n = self.order - 1
        padded = np.concatenate([np.full(n, -1, dtype=np.int64), s])
        total = 0.0
        for a in range(1, len(s), chunk):
            b = min(len(s), a + chunk)
            pos = np.arange(a, b)
            ctx = np.stack([padded[pos + j] for j in range(n)], axis=1) if n else np.zeros((b - a, 0), np.int64)
            total -= float(np.log(self.prob(ctx, s[a:b])).sum())
        return total

    # ------------------------------------------------------------------ files
    def save(self, out_dir: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Write ``config.json`` + ``ngram.npz`` (atomically) into ``out_dir``."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for k, (keys, counts) in enumerate(self.raw, 1):
            arrays[f"keys{k}"], arrays[f"counts{k}"] = keys, counts
        with atomic_path(d / NGRAM_FILE) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        cfg = {"model_type": self.model_type, "config": asdict(self.config),
               "smoothing": self.config.smoothing, "train_tokens": self.train_tokens,
               "parameters": self.num_parameters(), **(metadata or {})}
        with atomic_path(d / "config.json") as tmp:
            Path(tmp).write_text(json.dumps(cfg, indent=2) + "\n")
        return d

    @classmethod
    def load(cls, path: str | os.PathLike) -> NGramLM:
        """Load a folder written by :meth:`save` (or its ``ngram.npz``)."""
        p = Path(path)
        d = p.parent if p.name == NGRAM_FILE else p
        try:
            cfg = json.loads((d / "config.json").read_text())
            conf = NGramConfig(**cfg["config"])
            with np.load(d / NGRAM_FILE, allow_pickle=False) as z:
                levels = [(z[f"keys{k}"], z[f"counts{k}"]) for k in range(1, conf.order + 1)]
        except (OSError, KeyError, TypeError, ValueError) as e:
            raise InvalidInputError(f"not a saved n-gram model ({e})", str(p)) from None
        return cls(conf, levels, cfg["train_tokens"])


def is_ngram_dir(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (p / NGRAM_FILE).exists() or (p.name == NGRAM_FILE and p.exists())


def parse_name(name: str) -> int | None:
    """``unigram`` → 1, ``5gram``/``5-gram`` → 5, ``bigram`` → 2; None for anything else."""
    words = {"unigram": 1, "bigram": 2, "trigram": 3}
    n = name.lower().replace("-", "")
    if n in words:
        return words[n]
    if n.endswith("gram") and n[:-4].isdigit() and 1 <= int(n[:-4]) <= MAX_ORDER:
        return int(n[:-4])
    return None


def train_ngram(data_dir, out_dir, order: int = 5, split: str = "train") -> NGramLM:
    """Train on a prepared folder's split and save into ``out_dir``."""
    from lakhnes.data.shards import load_split

    s = load_split(data_dir, split)
    model = NGramLM.train(np.asarray(s.tokens), order)
    model.save(out_dir, {"data": str(data_dir), "train_split": split, "songs": len(s)})
    return model
