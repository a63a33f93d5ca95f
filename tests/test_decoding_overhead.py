"""The decoding loop's cheaper paths give what the plain numpy code gives, float for float: the compiled top-k of
the sampler, the song cache's bounded lookup, the rules' offset rows."""

from __future__ import annotations

import numpy as np
import pytest

from lakhnes.core.vocab import START
from lakhnes.decoding import sampler
from lakhnes.decoding.constraint import Masker
from lakhnes.decoding.rules import default_rules
from lakhnes.decoding.state import SongState
from lakhnes.models.song_cache import _P, _POWS, ORDERS, SongHistory, bucket

pytestmark = pytest.mark.light
needs_topk = pytest.mark.skipif(sampler._topk is None, reason="the compiled kernel is not built here")


def _rows(n_rows: int, seed: int = 0):
    """Random float64 rows with -inf (masked) entries, ties, and some rows with nothing allowed."""
    rng = np.random.default_rng(seed)
    for i in range(n_rows):
        n = int(rng.integers(1, 700))
        x = rng.normal(size=n) * 3
        if i % 3 == 0:
            x = np.round(x, 1)  # ties at the k-th largest
        x[rng.random(n) < rng.random()] = -np.inf
        if i % 40 == 0:
            x[:] = -np.inf
        yield x, int(rng.integers(0, 70))


def _numpy_top(x, top_k):
    ids = np.flatnonzero(x > -np.inf)
    if not len(ids):
        return None, None
    vals = x[ids]
    if top_k and top_k < len(ids):
        keep = np.sort(np.argpartition(-vals, top_k - 1)[:top_k])
        ids, vals = ids[keep], vals[keep]
    return ids, vals - vals.max()


@needs_topk
def test_compiled_top_k_keeps_the_ids_and_values_of_numpy():
    for x, k in _rows(3000):
        ids, p = sampler._top(x, k)
        want_ids, want_p = _numpy_top(x, k)
        if want_ids is None:
            assert ids is None
        else:
            assert ids.tolist() == want_ids.tolist() and p.tobytes() == want_p.tobytes()


@needs_topk
def test_compiled_top_k_refuses_what_it_cannot_do():
    x, ids, p = np.zeros(8), np.empty(8, np.int64), np.empty(8)
    with pytest.raises(ValueError):
        sampler._topk(x, 65, ids, p)
    with pytest.raises(ValueError):
        sampler._topk(x, 3, ids[:4], p)
    assert sampler._topk(np.array([1.0, 2.0, 2.0, 0.5]), 1, ids, p) == -1  # tied: numpy chooses


@needs_topk
@pytest.mark.parametrize("top_p", [None, 0.9])
def test_pick_row_is_the_same_with_and_without_the_compiled_top_k(monkeypatch, top_p):
    rng = np.random.default_rng(3)
    cases = [(rng.normal(size=631).astype(np.float32) * 4, rng.random(631) < rng.random()) for _ in range(400)]
    def picks():
        g = np.random.default_rng(7)
        return [sampler._pick_row(lg, al, 0.95, k, top_p, g, 0.7) for (lg, al), k in zip(cases, [32, 0, 5, 64] * 100, strict=True)]
    fast = picks()
    monkeypatch.setattr(sampler, "_topk", None)
    assert fast == picks()


def _keys(seq):
    t, pre = len(seq), [0]
    for y in seq:
        pre.append((pre[-1] * 1_000_003 + y + 1) % _P)
    return [(pre[t] - pre[t - k] * q) % _P for k, q in _POWS if k <= t]


def test_song_history_finds_the_longest_context_as_a_full_scan_does():
    rng = np.random.default_rng(0)
    for trial in range(12):
        h, seq, tables = SongHistory(), [], [{} for _ in ORDERS]
        phrase = rng.integers(1, 12, int(rng.integers(2, 300))).tolist()
        for step in range(1500):
            if rng.random() < 0.7:  # the scan over every order, longest first
                keys = _keys(seq)
                found = [i for i in range(len(keys)) if keys[i] in tables[i]]
                d = tables[found[-1]][keys[found[-1]]] if found else None
                want = (bucket(found[-1] + 1, len(d) - 1, d[-1]), d) if found else (0, None)
                assert h.lookup() == want, (trial, step)
            r = rng.random()
            y = START if r < 0.002 else phrase[step % len(phrase)] if r < 0.85 else int(rng.integers(1, 12))
            if y == START:
                seq, tables = [], [{} for _ in ORDERS]
            else:
                for key, table in zip(_keys(seq), tables, strict=False):
                    d = table.setdefault(key, {-1: 0})
                    d[y] = d.get(y, 0) + 1
                    d[-1] += 1
                seq.append(y)
            h.push(y)
        assert h.tables == tables


def test_offset_rows_are_fresh_copies_of_the_rules_offsets():
    m = Masker(SongState(1, limit=44100), default_rules())
    a = m.offsets([0.5, 0.0, 1.25, 0.0])
    a[:] = 7
    b = m.offsets([0.5, 0.0, 1.25, 0.0])
    assert not np.any(b == 7) and set(np.unique(b).tolist()) == {0.0, 0.5, 1.25}
