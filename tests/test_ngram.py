"""N-gram baselines: normalisation, hand-computed values, persistence without pickle."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lakhnes.errors import InvalidInputError
from lakhnes.models.ngram import NGramLM, parse_name


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    """A small corpus with structure (a repeating riff with noise) over part of the vocabulary."""
    rng = np.random.default_rng(0)
    riff = np.array([0, 5, 380, 17, 381, 5, 400, 9, 530])
    t = np.tile(riff, 300)
    noise = rng.random(len(t)) < 0.2
    t[noise] = rng.integers(0, 631, noise.sum())
    return t


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_sum_to_one_for_random_contexts(corpus, order):
    m = NGramLM.train(corpus, order)
    rng = np.random.default_rng(order)
    for _ in range(20):
        n = int(rng.integers(0, 6))
        # half the contexts are seen in training, half are random ids
        ctx = corpus[(s := int(rng.integers(10, 2000))) - n : s] if rng.random() < 0.5 else rng.integers(0, 631, n)
        p = m.distribution(ctx)
        assert p.shape == (631,)
        assert np.all(p > 0)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_unigram_is_add_one():
    t = np.array([3, 3, 3, 7])
    m = NGramLM.train(t, 1)
    p = m.distribution([])
    assert p[3] == pytest.approx(4 / (4 + 631))
    assert p[7] == pytest.approx(2 / (4 + 631))
    assert p[0] == pytest.approx(1 / (4 + 631))


def test_bigram_kneser_ney_by_hand():
    # bigrams: (1,2) x2, (2,1) x1, (2,3) x1, (3,1)... from 1 2 1 2 3 1
    t = np.array([1, 2, 1, 2, 3, 1])
    m = NGramLM.train(t, 2)
    # too few count-of-counts for the estimate -> D1=0.5, D2=1.0, D3+=1.5
    # unigram continuation counts: N1+(.w): 1 <- {2,3} = 2, 2 <- {1} = 1, 3 <- {2} = 1; total 4
    # discounted: 1: 2-1.0=1, 2: 1-.5=.5, 3: 1-.5=.5; removed mass 2/4 spread uniformly
    p1 = {1: 1 / 4 + 0.5 / 631, 2: 0.5 / 4 + 0.5 / 631, 3: 0.5 / 4 + 0.5 / 631, 0: 0.5 / 631}
    # context 2: c(2,1)=1, c(2,3)=1, total 2, removed 0.5+0.5=1
    p = m.distribution([2])
    assert p[1] == pytest.approx((1 - 0.5 + 1.0 * p1[1]) / 2)
    assert p[3] == pytest.approx((1 - 0.5 + 1.0 * p1[3]) / 2)
    assert p[0] == pytest.approx(1.0 * p1[0] / 2)
    # unseen context backs off to the unigram level entirely
    q = m.distribution([600])
    assert q[1] == pytest.approx(p1[1]) and q[0] == pytest.approx(p1[0])


def test_higher_order_helps_on_structure(corpus):
    nll = {o: NGramLM.train(corpus, o).stream_nll(corpus[:900]) for o in (1, 2, 5)}
    assert nll[5] < nll[2] < nll[1]


def test_stream_nll_matches_distribution(corpus):
    m = NGramLM.train(corpus, 3)
    s = corpus[100:130]
    want = -sum(math.log(m.distribution(s[max(0, i - 2) : i])[s[i]]) for i in range(1, len(s)))
    assert m.stream_nll(s) == pytest.approx(want, rel=1e-12)


def test_save_load_roundtrip_without_pickle(tmp_path, corpus):
    m = NGramLM.train(corpus, 5)
    m.save(tmp_path / "run")
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model_type"] == "ngram" and cfg["config"]["order"] == 5
    assert "Kneser-Ney" in cfg["smoothing"]
    with np.load(tmp_path / "run" / "ngram.npz", allow_pickle=False) as z:
        assert all(z[k].dtype == np.int64 for k in z.files)
    m2 = NGramLM.load(tmp_path / "run")
    ctx = corpus[40:44]
    assert np.array_equal(m.distribution(ctx), m2.distribution(ctx))
    assert [f.name for f in (tmp_path / "run").iterdir() if f.name.startswith(".")] == []


def test_bad_inputs(tmp_path):
    with pytest.raises(InvalidInputError, match="too few"):
        NGramLM.train(np.array([1, 2]), 5)
    with pytest.raises(InvalidInputError, match="order"):
        NGramLM.train(np.arange(100), 9)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InvalidInputError, match="not a saved n-gram"):
        NGramLM.load(tmp_path)


def test_parse_name():
    assert parse_name("unigram") == 1 and parse_name("5gram") == 5 and parse_name("5-gram") == 5
    assert parse_name("runs/x") is None and parse_name("12gram") is None


def test_train_ngram_from_prepared_folder(tmp_path, corpus):
    from lakhnes.data.shards import ShardWriter, write_manifest
    from lakhnes.models.ngram import train_ngram

    w = ShardWriter(tmp_path / "data", "train")
    w.add("a", corpus[:1500])
    w.add("b", corpus[1500:])
    w.close()
    write_manifest(tmp_path / "data", {})
    m = train_ngram(tmp_path / "data", tmp_path / "run", 3)
    assert m.train_tokens == len(corpus)
    again = NGramLM.load(tmp_path / "run")
    assert np.array_equal(again.distribution(corpus[7:9]), NGramLM.train(corpus, 3).distribution(corpus[7:9]))
    with pytest.raises(InvalidInputError, match="no train split"):
        train_ngram(tmp_path / "nothing", tmp_path / "run2", 5)
