"""The song cache: what it predicts, how it mixes with a model, its λ table and perplexity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lakhnes.errors import InvalidInputError
from lakhnes.models.song_cache import (
    N_BUCKETS,
    ORDERS,
    CachedStepper,
    SongCache,
    SongHistory,
    bucket,
    fit_lambdas,
    read_lambdas,
    stream_scores,
    table_json,
)

pytestmark = pytest.mark.light


def _push(h, ids):
    for y in ids:
        h.push(y)


def test_history_predicts_what_followed_the_longest_context():
    h = SongHistory()
    _push(h, [0, 10, 11, 12, 13, 10, 11, 12, 14, 10, 11])
    b, d = h.lookup()  # "14 10 11" is new; "10 11" came twice, followed by 12 both times
    assert b == bucket(ORDERS.index(2) + 1, 1, 2)
    assert {k: v for k, v in d.items() if k >= 0} == {12: 2}
    h.push(12)
    b, d = h.lookup()  # "14 10 11 12" is new; "10 11 12" came twice, followed by 13 and by 14
    assert d[-1] == 2 and d[13] == d[14] == 1 and b == bucket(ORDERS.index(3) + 1, 2, 2)


def test_history_forgets_at_every_song_start():
    h = SongHistory()
    _push(h, [0, 5, 6, 5, 6])
    assert h.lookup()[1] is not None
    h.push(0)
    assert h.lookup() == (0, None) and h.seq == []


def test_stream_scores_give_the_cache_probability_of_each_target():
    b, p = stream_scores([0, 7, 8, 7, 8, 7, 9])
    assert len(b) == len(p) == 6
    # targets: 7 (nothing seen), 8 (nothing before "7"), 7 ("8" new), 8 ("7" -> 8 once),
    # 7 ("7 8" -> 7 once), 9 ("8 7" -> 8 once: 9 never seen)
    assert p.tolist() == [0, 0, 0, 1, 1, 0]
    assert b[0] == b[1] == b[2] == 0 and b[3] > 0


def test_fit_lambdas_trusts_a_cache_that_is_right():
    rng = np.random.default_rng(0)
    n = 2000
    buckets = np.where(np.arange(n) < n // 2, 9, 17)
    pm = np.full(n, 0.1)
    pc = np.where(buckets == 9, 1.0, 0.0)  # bucket 9 always right, bucket 17 always wrong
    pc[rng.random(n) < 0.05] = 0.0
    lam = fit_lambdas(buckets, pm, pc)
    assert lam.shape == (N_BUCKETS,) and lam[0] == 0
    assert lam[9] > 0.85 and lam[17] < 0.01


def test_mix_gives_the_mixture_up_to_a_constant_and_the_model_without_a_match():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 631))
    lam = np.full(N_BUCKETS, 0.5)
    lam[0] = 0
    cache = SongCache(lam, 2, prompt=np.array([[0, 3, 4, 3], [0, 3, 4, 5]]))
    out = cache.mix(logits)
    assert np.array_equal(out[1], logits[1])  # "5" never seen before: the model alone
    p = np.exp(logits[0] - logits[0].max())
    p /= p.sum()
    mixture = 0.5 * p
    mixture[4] += 0.5  # "3" was followed by 4, once
    q = np.exp(out[0] - out[0].max())
    assert np.allclose(q / q.sum(), mixture)


class _Steps:
    """A stepper whose logits favour nothing (uniform)."""

    def __init__(self, b):
        self.logits = np.zeros((b, 631))

    def step(self, ids):
        return np.zeros((len(ids), 631))


def test_cached_stepper_mixes_after_each_step():
    lam = np.full(N_BUCKETS, 0.9)
    s = CachedStepper(_Steps(1), lam, np.array([[0, 20, 21, 20]]))
    p = np.exp(s.logits[0] - s.logits[0].max())
    assert p[21] / p.sum() > 0.9  # "20" was followed by 21
    out = s.step(np.array([22]))
    assert np.ptp(out[0]) == 0  # "22" is new: the model's (uniform) logits


def test_lambda_table_in_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    cfg = {"model_type": "transformer_xl", "config": {}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert read_lambdas(tmp_path) is None
    lam = np.linspace(0, 0.9, N_BUCKETS)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "song_cache": table_json(lam, fitted_on="valid")}))
    assert np.allclose(read_lambdas(tmp_path), lam, atol=1e-6)
    bad = table_json(lam)
    bad["orders"] = [1, 2]
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "song_cache": bad}))
    with pytest.raises(InvalidInputError, match="orders"):
        read_lambdas(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "song_cache": table_json(lam * 2)}))
    with pytest.raises(InvalidInputError, match="lambda"):
        read_lambdas(tmp_path)


def test_a_table_per_memory_length(tmp_path):
    """A fit at another memory adds its table; scoring at a memory takes the table fitted nearest."""
    from lakhnes.models.song_cache import merge_table

    (tmp_path / "model.safetensors").write_bytes(b"")
    main, long_, short = (np.full(N_BUCKETS, v) for v in (0.5, 0.3, 0.7))
    sc = merge_table(None, main, 896, fitted_on="valid")
    sc = merge_table(sc, long_, 2048, fitted_on="valid")
    sc = merge_table(sc, short, 256, fitted_on="valid")
    assert sc["mem_len"] == 896 and sorted(sc["by_mem_len"]) == ["2048", "256"]
    cfg = {"model_type": "transformer_xl", "config": {}, "song_cache": sc}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    for mem, want in ((None, 0.5), (896, 0.5), (512, 0.5), (2048, 0.3), (4096, 0.3), (256, 0.7), (128, 0.7)):
        assert read_lambdas(tmp_path, mem_len=mem)[0] == pytest.approx(want), mem
    refit = merge_table(sc, np.full(N_BUCKETS, 0.4), 896, fitted_on="valid")  # the main table again
    assert refit["lambda"][0] == pytest.approx(0.4) and refit["by_mem_len"] == sc["by_mem_len"]
    cfg["song_cache"]["by_mem_len"]["2048"]["lambda"] = [2.0] * N_BUCKETS
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InvalidInputError, match="lambda"):
        read_lambdas(tmp_path, mem_len=2048)


def test_cache_lowers_perplexity_of_a_repeating_song():
    """A repeated phrase the model cannot predict: the cache can, from the second time on."""
    from lakhnes.models.song_cache import fit_lambdas as fit

    rng = np.random.default_rng(2)
    phrase = rng.integers(1, 631, 50)
    song = np.concatenate([[0], np.tile(phrase, 6)])
    b, pc = stream_scores(song)
    pm = np.full(len(b), 1 / 631)
    lam = fit(b, pm, pc)
    mix = lam[b] * pc + (1 - lam[b]) * pm
    assert math.exp(-np.log(mix).mean()) < 631 / 4


def test_shipped_model_generates_with_its_song_cache(tmp_path):
    """The shipped model carries a fitted table; --no-song-cache samples from the network alone."""
    from lakhnes.cli import main
    from lakhnes.generate import load_default_model

    model = load_default_model(runtime="numpy")
    assert model.song_cache is not None and model.song_cache.max() > 0.5
    outs = []
    for extra in ([], ["--no-song-cache"]):
        out = tmp_path / f"s{len(extra)}.tx1.txt"
        assert main(["generate", "--tokens", "300", "--seed", "5", "-q", "--runtime", "numpy", "-o", str(out), *extra]) == 0
        outs.append(out.read_text())
    assert outs[0] != outs[1] and all(o.count("NOTEON") > 10 for o in outs)


def test_generation_boosts_the_cache_odds(tmp_path):
    """Sampling multiplies the fitted odds by CACHE_BOOST or --cache-boost (1: as fitted); bad factors are refused."""
    from lakhnes.cli import main
    from lakhnes.generate import _stepper, load_default_model
    from lakhnes.models.song_cache import CACHE_BOOST, boosted

    lam = np.array([0.0, 0.2, 0.5, 0.9])
    assert np.array_equal(boosted(lam, 1), lam)
    odds = boosted(lam, 3) / (1 - boosted(lam, 3))
    assert np.allclose(odds, 3 * lam / (1 - lam))
    model = load_default_model(runtime="numpy")
    prompt = np.zeros((1, 1), dtype=np.int64)
    assert np.allclose(_stepper(model, prompt).inner.inner.cache.lam, boosted(model.song_cache, CACHE_BOOST))
    model.voice_cache = model.rhythm_cache = None  # the song cache's own stepper
    model.cache_boost = 1
    assert np.array_equal(_stepper(model, prompt).cache.lam, model.song_cache)
    outs = []
    for extra in (["--cache-boost", "3"], ["--cache-boost", "1"]):
        out = tmp_path / f"b{len(extra)}.tx1.txt"
        assert main(["generate", "--tokens", "400", "--seed", "2", "-q", "-o", str(out), *extra]) == 0
        outs.append(out.read_text())
    assert outs[0] != outs[1]
    assert main(["generate", "--tokens", "20", "-q", "--cache-boost", "0", "-o", str(tmp_path / "x.tx1.txt")]) == 2
