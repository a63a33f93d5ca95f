"""Transformer-XL: relative attention, memory, causality, incremental decoding, safe loading."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
import torch.nn.functional as F

import lakhnes
from lakhnes.errors import InvalidInputError
from lakhnes.models import build_model, load_model, presets, save_model
from lakhnes.models.transformer_xl import TransformerXL, TransformerXLConfig, rel_shift

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(**kw) -> TransformerXL:
    torch.manual_seed(0)
    cfg = dict(n_layer=2, n_head=2, d_model=32, d_inner=64, tgt_len=8, mem_len=64, dropout=0.0)
    return build_model("transformer_xl", {**cfg, **kw}).eval()


def test_rel_shift_aligns_relative_positions():
    q, m = 3, 2
    k = q + m
    x = torch.arange(q * k, dtype=torch.float32).view(q, k)
    out = rel_shift(x)
    for i in range(q):
        for j in range(m + i + 1):  # visible keys
            assert out[i, j] == x[i, j + q - 1 - i]


@pytest.mark.parametrize("pre_norm,tie", [(False, True), (True, True), (False, False)])
def test_incremental_decoding_matches_full_forward(pre_norm, tie):
    m = tiny(pre_norm=pre_norm, tie_weights=tie)
    assert (m.out_weight is None) == tie
    x = torch.randint(0, 631, (2, 20))
    full, _ = m(x)
    state = m.init_state(2)
    steps = []
    for t in range(20):
        logits, state = m(x[:, t : t + 1], state)
        steps.append(logits)
    assert torch.allclose(full, torch.cat(steps, 1), atol=1e-5)
    # and in segments of 7 (memory shorter than the context would not be exact; 64 covers it)
    state, segs = None, []
    for a in range(0, 20, 7):
        logits, state = m(x[:, a : a + 7], state)
        segs.append(logits)
    assert torch.allclose(full, torch.cat(segs, 1), atol=1e-5)
    assert all(s.shape == (2, 20, 32) for s in state) and not any(s.requires_grad for s in state)


def test_causal_mask_across_memory():
    m = tiny(mem_len=8)
    x = torch.randint(0, 631, (1, 16))
    _, mem = m(x[:, :8])
    base, _ = m(x[:, 8:], mem)
    # a future token does not change earlier logits
    y = x.clone()
    y[0, 12] = (y[0, 12] + 1) % 631
    changed, _ = m(y[:, 8:], mem)
    assert torch.equal(changed[:, :4], base[:, :4])
    assert not torch.allclose(changed[:, 4:], base[:, 4:])
    # a token in memory changes every later logit
    z = x.clone()
    z[0, 2] = (z[0, 2] + 1) % 631
    _, mem2 = m(z[:, :8])
    other, _ = m(x[:, 8:], mem2)
    assert (other - base).abs().amax(-1).min() > 0


def test_memory_is_capped_and_detached():
    m = tiny(mem_len=5)
    m.train()
    _, state = m(torch.randint(0, 631, (3, 8)))
    assert [s.shape for s in state] == [(3, 5, 32)] * 2
    assert not any(s.requires_grad for s in state)
    m.config.mem_len = 0
    _, state = m(torch.randint(0, 631, (3, 8)), state)
    assert all(s.shape[1] == 0 for s in state)


def test_memory_helps_on_a_pattern_longer_than_a_segment():
    """Random 16-token patterns repeated, read in segments of 16: every target of segment 2
    repeats a token 16 positions back, i.e. (all but the last) in segment 1 — in memory."""
    torch.manual_seed(0)
    m = tiny(n_layer=1, pre_norm=True, tgt_len=16, mem_len=16).train()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)

    def batch(n):
        return torch.randint(400, 416, (n, 16)).repeat(1, 3)[:, :33]

    for _ in range(300):
        x = batch(16)
        _, mem = m(x[:, :16])
        logits, _ = m(x[:, 16:32], mem)
        loss = F.cross_entropy(logits.reshape(-1, 631), x[:, 17:33].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    x = batch(64)
    with torch.no_grad():
        _, mem = m(x[:, :16])
        with_mem, _ = m(x[:, 16:32], mem)
        without, _ = m(x[:, 16:32])
    y = x[:, 17:33].reshape(-1)
    loss_with = F.cross_entropy(with_mem.reshape(-1, 631), y).item()
    loss_without = F.cross_entropy(without.reshape(-1, 631), y).item()
    assert loss_with < 0.5 < 2.0 < loss_without, (loss_with, loss_without)


def test_presets_and_parameter_counts():
    assert set(presets("transformer_xl")) >= {"tiny", "small", "paper"}
    paper = TransformerXLConfig(**presets("transformer_xl")["paper"])
    assert (paper.n_layer, paper.n_head, paper.d_model, paper.d_inner, paper.tgt_len, paper.mem_len) == (
        12, 8, 512, 2048, 512, 512)
    assert build_model("transformer_xl", "paper").num_parameters() == 41_274_487
    with pytest.raises(InvalidInputError, match="unknown transformer_xl config keys"):
        build_model("transformer_xl", {"n_layers": 3})
    with pytest.raises(InvalidInputError, match="unknown model type"):
        build_model("gpt", {})


def test_tied_embeddings_and_dropout_switch():
    m = tiny(dropout=0.5)
    names = [n for n, _ in m.named_parameters()]
    assert "emb.weight" in names and not any("head" in n or "out.weight" in n for n in names)
    x = torch.randint(0, 631, (1, 8))
    m.train()
    torch.manual_seed(1)
    a, _ = m(x)
    b, _ = m(x)
    assert not torch.equal(a, b)
    m.eval()
    assert torch.equal(m(x)[0], m(x)[0])


def test_save_and_load_never_unpickle(tmp_path, monkeypatch):
    m = tiny(pre_norm=True)
    save_model(m, tmp_path / "ckpt", metadata={"note": "test"})
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["model_type"] == "transformer_xl"

    def boom(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    x = torch.randint(0, 631, (1, 10))
    for path in (tmp_path / "ckpt", tmp_path / "ckpt" / "model.safetensors"):
        loaded = lakhnes.load_model(path)
        assert not loaded.training and loaded.config.pre_norm
        assert torch.equal(loaded(x)[0], m(x)[0])


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(InvalidInputError, match="no such model"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no model here"):
        load_model(tmp_path / "empty")
    bad = tmp_path / "bad"
    save_model(tiny(), bad)
    (bad / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(InvalidInputError, match="cannot load weights") as e:
        load_model(bad)
    assert str(bad) in str(e.value)
