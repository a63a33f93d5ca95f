"""The evaluation protocol: token accounting, exact perplexities, memory, one target set for all models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from lakhnes.cli import main
from lakhnes.data.shards import ShardWriter, load_split, write_manifest
from lakhnes.evaluation.perplexity import evaluate_lm, evaluate_ngram, layout_streams, uniform_nll
from lakhnes.models import build_model, save_model
from lakhnes.models.ngram import NGramLM

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Uniform(nn.Module):
    """A model that gives every id the same score."""

    def __init__(self):
        super().__init__()
        self.config = type("C", (), {"mem_len": 0})()
        self.w = nn.Parameter(torch.zeros(1))

    def init_state(self, batch_size, device=None):
        return None

    def forward(self, x, state=None):
        return torch.zeros(*x.shape, 631) + self.w, state


class BigramTorch(nn.Module):
    """A torch wrapper of an n-gram bigram: logits[t] = log p(. | x[t]); p(. | nothing) for the
    first token of a stream is never needed (the first token is not a target)."""

    def __init__(self, m: NGramLM):
        super().__init__()
        table = np.stack([m.distribution([i]) for i in range(631)])
        self.logp = nn.Parameter(torch.from_numpy(np.log(table)), requires_grad=False)
        self.config = type("C", (), {})()

    def init_state(self, batch_size, device=None):
        return None

    def forward(self, x, state=None):
        return self.logp[x], state


def _tokens(n=997, seed=0):
    rng = np.random.default_rng(seed)
    return np.tile(rng.integers(0, 631, 37), n // 37 + 1)[:n] ^ (rng.random(n) < 0.1)


def test_layout_keeps_every_token_once():
    t = np.arange(103)
    rows, lengths = layout_streams(t, 10)
    assert lengths.tolist() == [11, 11, 11] + [10] * 7
    back = np.concatenate([rows[s, : lengths[s]] for s in range(10)])
    assert np.array_equal(back, t)
    with pytest.raises(ValueError, match="too few"):
        layout_streams(np.arange(15), 10)


def test_uniform_model_has_ppl_631():
    r = evaluate_lm(Uniform(), _tokens(), streams=10, tgt_len=16)
    assert r["targets"] == 997 - 10 and r["tokens"] == 997
    assert r["nll"] == pytest.approx(uniform_nll(), rel=1e-12)
    assert r["ppl"] == pytest.approx(631.0, rel=1e-9)


def test_torch_and_ngram_paths_score_the_same_targets():
    t = _tokens(1500, seed=1)
    m = NGramLM.train(_tokens(5000, seed=1), 2)
    a = evaluate_ngram(m, t, streams=7)
    for tgt_len in (5, 128):
        b = evaluate_lm(BigramTorch(m), t, streams=7, tgt_len=tgt_len)
        assert b["targets"] == a["targets"] == 1500 - 7
        assert b["nll"] == pytest.approx(a["nll"], rel=1e-6)


def test_lstm_state_is_carried_across_segments():
    torch.manual_seed(0)
    m = build_model("lstm", "tiny")
    t = _tokens(300)
    a = evaluate_lm(m, t, streams=3, tgt_len=4)
    b = evaluate_lm(m, t, streams=3, tgt_len=200)
    assert a["targets"] == b["targets"] == 297
    assert a["nll"] == pytest.approx(b["nll"], rel=1e-5)


def _txl(**kw):
    torch.manual_seed(0)
    return build_model("transformer_xl", dict(n_layer=2, n_head=4, d_model=64, d_inner=128, tgt_len=8,
                                              mem_len=8, dropout=0.0, pre_norm=True, **kw))


def test_txl_long_memory_equals_one_segment():
    m = _txl().eval()
    t = _tokens(120)
    whole = evaluate_lm(m, t, streams=2, tgt_len=60, mem_len=0)
    pieces = evaluate_lm(m, t, streams=2, tgt_len=7, mem_len=64)
    assert pieces["targets"] == whole["targets"] == 118
    assert pieces["nll"] == pytest.approx(whole["nll"], rel=1e-4)
    assert m.config.mem_len == 8  # restored


def test_txl_memory_lowers_perplexity_on_a_pattern():
    """After A the next id depends on the id before A: a 2-token context decides every target."""
    pat = np.array([0, 1, 0, 2, 0, 3]) + 380
    seq = torch.from_numpy(np.tile(pat, 40))
    m = _txl()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        b = torch.stack([seq[o : o + 17] for o in torch.randint(0, 100, (16,), generator=g)])
        logits, _ = m(b[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, 631), b[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    test = np.tile(pat, 10)
    without = evaluate_lm(m, test, streams=2, tgt_len=2, mem_len=0)
    with_mem = evaluate_lm(m, test, streams=2, tgt_len=2, mem_len=16)
    assert without["targets"] == with_mem["targets"] == 58
    assert with_mem["ppl"] < without["ppl"] - 0.1


@pytest.fixture()
def prepared(tmp_path, nesmdb_fixture_files):
    from lakhnes.core import tx1
    from lakhnes.formats.midi import read_midi

    d = tmp_path / "data"
    ids = [tx1.song_ids(tx1.score_to_events(read_midi(f))) for f in nesmdb_fixture_files]
    ids = [s for s in ids if len(s) >= 10]  # as `prepare` keeps them
    for split, songs in (("train", ids[:-2]), ("valid", ids[-2:-1]), ("test", ids[-1:])):
        w = ShardWriter(d, split)
        for k, s in enumerate(songs):
            w.add(f"song{k}", s)
        w.close()
    write_manifest(d, {})
    return d


def test_cli_eval_ngram_and_lstm(prepared, tmp_path, capsys):
    res = tmp_path / "results"
    n_test = len(load_split(prepared, "test").tokens)
    assert main(["eval", "5gram", "--data", str(prepared), "--results", str(res),
                 "--save", str(tmp_path / "ng")]) == 0
    out = capsys.readouterr()
    assert f"{n_test - 10} tokens scored" in out.out and "PPL" in out.out
    assert "every token but the first of each stream is a target" in out.out
    r5 = json.loads((res / "5gram.test.json").read_text())
    assert r5["targets"] == n_test - 10 and r5["ppl"] > 1
    # the saved model scores identically
    assert main(["eval", str(tmp_path / "ng"), "--data", str(prepared), "--results", "",
                 "--json", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["nll"] == pytest.approx(r5["nll"], rel=1e-12)
    assert main(["eval", "unigram", "--data", str(prepared), "--results", str(res)]) == 0
    r1 = json.loads((res / "unigram.test.json").read_text())
    assert r1["targets"] == r5["targets"] and r5["ppl"] < r1["ppl"]
    torch.manual_seed(0)
    save_model(build_model("lstm", "tiny"), tmp_path / "lstm_run", {"step": 0})
    assert main(["eval", str(tmp_path / "lstm_run"), "--data", str(prepared), "--split", "valid",
                 "--results", str(res), "--tgt-len", "32"]) == 0
    rl = json.loads((res / "lstm_run.valid.json").read_text())
    assert rl["model_type"] == "lstm" and rl["split"] == "valid"
    assert rl["ppl"] == pytest.approx(631, rel=0.05)  # untrained: close to uniform
    assert math.isfinite(rl["tokens_per_s"])
    assert rl["step"] == 0 or "step" not in rl
    # the report gathers every result into one table, worst test PPL first
    assert main(["eval", "5gram", "--data", str(prepared), "--split", "valid", "--results", str(res)]) == 0
    table = tmp_path / "table.md"
    assert main(["report", str(res), "-o", str(table)]) == 0
    md = table.read_text()
    rows = json.loads(table.with_suffix(".json").read_text())
    assert [r["model"] for r in rows] == ["unigram", "5gram", "lstm_run"]
    assert rows[1]["valid_ppl"] == pytest.approx(
        json.loads((res / "5gram.valid.json").read_text())["ppl"]) and rows[1]["test_ppl"] == r5["ppl"]
    assert "| model | type | parameters | epochs | valid PPL | test PPL |" in md
    assert f"| 5gram | 5gram (interpolated modified Kneser-Ney) | {r5['parameters'] / 1e3:.1f} k n-grams" in md
    assert main(["report", str(tmp_path / "empty_dir_missing")]) == 2


def test_cli_eval_errors(prepared, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope"), "--data", str(prepared)]) == 2
    assert "no such model" in capsys.readouterr().err
    assert main(["eval", "5gram", "--data", str(tmp_path), "--results", ""]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "test" in err
    assert main(["eval", "5gram", "--data", str(prepared), "--streams", "0"]) == 2


class _Crash(nn.Module):
    """Wraps a model and fails on its n-th call (an interrupted evaluation)."""

    def __init__(self, model, n):
        super().__init__()
        self.m, self.n, self.config = model, n, model.config

    def init_state(self, batch_size, device=None):
        return self.m.init_state(batch_size, device)

    def forward(self, x, state=None):
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt
        return self.m(x, state)


@pytest.mark.parametrize("kind", ["lstm", "transformer_xl"])
def test_interrupted_eval_resumes_exactly(tmp_path, kind):
    torch.manual_seed(0)
    m = build_model(kind, "tiny").eval()
    t = _tokens(400)
    full = evaluate_lm(m, t, streams=3, tgt_len=10, mem_len=20)
    part = tmp_path / "p.safetensors"
    with pytest.raises(KeyboardInterrupt):
        evaluate_lm(_Crash(m, 9), t, streams=3, tgt_len=10, mem_len=20, partial=str(part), save_every=3,
                    partial_key="k")
    assert part.exists()
    said = []
    again = evaluate_lm(m, t, streams=3, tgt_len=10, mem_len=20, partial=str(part), partial_key="k",
                        log=said.append)
    assert said and "resuming from segment 6" in said[0]
    assert again["targets"] == full["targets"] and again["nll"] == pytest.approx(full["nll"], rel=1e-9)
    assert not part.exists()


def test_song_cache_in_perplexity():
    """λ = 0 is the network alone; a fitted cache lowers the perplexity of songs that repeat."""
    from lakhnes.models.song_cache import N_BUCKETS

    m = _txl().eval()
    rng = np.random.default_rng(3)
    song = np.concatenate([[0], np.tile(rng.integers(1, 631, 40), 5), [0]])
    t = np.concatenate([song, song[::-1]])
    alone = evaluate_lm(m, t, streams=2, tgt_len=16, mem_len=8)
    zero = evaluate_lm(m, t, streams=2, tgt_len=16, mem_len=8, song_cache=np.zeros(N_BUCKETS))
    assert zero["nll"] == pytest.approx(alone["nll"], rel=1e-9) and zero["ppl_network"] == pytest.approx(alone["ppl"])
    collect = []
    evaluate_lm(m, t, streams=2, tgt_len=16, mem_len=8, collect=collect)
    from lakhnes.models.song_cache import fit_lambdas

    b, pm, pc = (np.concatenate([c[k] for c in collect]) for k in ("b", "pm", "pc"))
    assert len(b) == alone["targets"]
    cached = evaluate_lm(m, t, streams=2, tgt_len=16, mem_len=8, song_cache=fit_lambdas(b, pm, pc))
    assert cached["ppl"] < alone["ppl"] / 3 and cached["song_cache"] is True


def test_voice_cache_in_perplexity():
    """mu = 0 is the song cache alone; fitted, the voice cache predicts a melody that comes back
    transposed, in another voice, with other timing (which the song cache cannot)."""
    from lakhnes.core.vocab import noteon_id
    from lakhnes.models import voice_cache as vc
    from lakhnes.models.song_cache import N_BUCKETS, fit_lambdas

    m = _txl().eval()
    rng = np.random.default_rng(4)
    song = [0]
    for rep in range(8):
        voice, shift = ("P1", "P2", "TR")[rep % 3], int(rng.integers(-5, 6))
        for p in (60, 62, 64, 67, 65, 64, 62, 59, 60, 64):
            song += [int(noteon_id(voice, p + shift)), int(rng.integers(1, 300))]
    t = np.array(song * 4)
    lam = np.zeros(N_BUCKETS)
    plain = evaluate_lm(m, t, streams=2, tgt_len=16, mem_len=8, song_cache=lam)
    zero = evaluate_lm(m, t, streams=2, tgt_len=16, mem_len=8, song_cache=lam, voice_cache=np.zeros(vc.N_BUCKETS))
    assert zero["nll"] == pytest.approx(plain["nll"], rel=1e-12) and zero["ppl_song_cache"] == pytest.approx(plain["ppl"])
    collect = []
    evaluate_lm(m, t, streams=2, tgt_len=16, mem_len=8, collect=collect)
    a = {k: np.concatenate([c[k] for c in collect]) for k in collect[0]}
    assert np.all(a["pmf"][a["fam"] >= 0] > a["pm"][a["fam"] >= 0]) and np.all(a["pmf"][a["fam"] < 0] == 0)
    mu = fit_lambdas(a["vb"], a["pm"], a["pmf"] * a["cv"])[: vc.N_BUCKETS]
    voiced = evaluate_lm(m, t, streams=2, tgt_len=16, mem_len=8, song_cache=lam, voice_cache=mu)
    assert mu.max() > 0.5 and voiced["ppl"] < plain["ppl"] / 1.5 and voiced["voice_cache"] is True


def test_cli_fits_the_song_cache_on_valid_only(prepared, tmp_path, capsys):
    run = tmp_path / "txl"
    save_model(_txl(), run, {"step": 0})
    assert main(["eval", str(run), "--data", str(prepared), "--results", "", "--fit-song-cache"]) == 1
    assert "never on test" in capsys.readouterr().err
    assert "song_cache" not in json.loads((run / "config.json").read_text())
    assert main(["eval", str(run), "--data", str(prepared), "--split", "valid", "--results", "",
                 "--fit-song-cache", "--tgt-len", "32"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    table, voices, rhythm = cfg["song_cache"], cfg["voice_cache"], cfg["rhythm_cache"]
    assert table["fitted_on"] == "valid" and len(table["lambda"]) > 100
    assert voices["tables"]["896"]["fitted_on"] == "valid" and len(rhythm["tables"]["896"]["rho"]) > 100
    assert main(["eval", str(run), "--data", str(prepared), "--results", "", "--json", str(tmp_path / "r.json"),
                 "--tgt-len", "32"]) == 0
    assert "the network alone" in capsys.readouterr().out
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["song_cache"] is True and r["voice_cache"] is True and r["ppl"] != r["ppl_network"]
    assert r["rhythm_cache"] is True
    assert main(["eval", str(run), "--data", str(prepared), "--results", "", "--json", str(tmp_path / "v.json"),
                 "--tgt-len", "32", "--no-rhythm-cache"]) == 0
    assert json.loads((tmp_path / "v.json").read_text())["ppl"] == pytest.approx(r["ppl_voice_cache"])
    assert main(["eval", str(run), "--data", str(prepared), "--results", "", "--json", str(tmp_path / "s.json"),
                 "--tgt-len", "32", "--no-voice-cache", "--no-rhythm-cache"]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["ppl"] == pytest.approx(r["ppl_song_cache"])
    assert main(["eval", str(run), "--data", str(prepared), "--results", "", "--json", str(tmp_path / "n.json"),
                 "--tgt-len", "32", "--no-song-cache"]) == 0
    assert json.loads((tmp_path / "n.json").read_text())["ppl"] == pytest.approx(r["ppl_network"])


def test_rhythm_cache_in_perplexity():
    """rho = 0 is the song and voice caches alone; fitted, the rhythm cache predicts a rhythm that
    comes back under new pitches (which the song cache cannot)."""
    from lakhnes.core.vocab import TOKEN_TO_ID, noteon_id
    from lakhnes.models import rhythm_cache as rc
    from lakhnes.models.song_cache import N_BUCKETS

    m = _txl().eval()
    rng = np.random.default_rng(5)
    waits = [TOKEN_TO_ID[f"WT_{w}"] for w in (3000, 1500, 1500, 3000, 6000)]
    song = [0]
    for _ in range(12):
        for w in waits:
            song += [int(noteon_id("P1", int(rng.integers(40, 90)))), w]
    t = np.array(song * 3)
    lam = np.zeros(N_BUCKETS)
    plain = evaluate_lm(m, t, streams=2, tgt_len=16, mem_len=8, song_cache=lam, voice_cache=np.zeros(72))
    zero = evaluate_lm(m, t, streams=2, tgt_len=16, mem_len=8, song_cache=lam, voice_cache=np.zeros(72),
                       rhythm_cache=np.zeros(rc.N_BUCKETS))
    assert zero["nll"] == pytest.approx(plain["nll"], rel=1e-12) and zero["ppl_voice_cache"] == pytest.approx(plain["ppl"])
    collect = []
    evaluate_lm(m, t, streams=2, tgt_len=16, mem_len=8, collect=collect)
    a = {k: np.concatenate([c[k] for c in collect]) for k in collect[0]}
    pf = np.where(a["fam"] >= 0, a["pmf"], 0.0)
    from lakhnes.models.song_cache import fit_lambdas

    rho = fit_lambdas(a["rb"], a["pm"], rc.mixed(a["pm"], pf, a["fam"], a["rb"], a["rc"], np.ones(rc.N_BUCKETS)))
    timed = evaluate_lm(m, t, streams=2, tgt_len=16, mem_len=8, song_cache=lam, voice_cache=np.zeros(72),
                        rhythm_cache=rho)
    assert rho.max() > 0.5 and timed["ppl"] < plain["ppl"] / 1.5 and timed["rhythm_cache"] is True
