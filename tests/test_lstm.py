"""LSTM baseline: the shared model contract, state carrying, sizes, files."""

from __future__ import annotations

import torch

from lakhnes.models import build_model, load_model, presets, save_model
from lakhnes.models.lstm import LSTMLM, LSTMConfig


def _tiny(seed=0) -> LSTMLM:
    torch.manual_seed(seed)
    return build_model("lstm", "tiny").eval()


def test_contract_shapes():
    m = _tiny()
    x = torch.randint(0, 631, (3, 7))
    logits, (h, c) = m(x)
    assert logits.shape == (3, 7, 631)
    assert h.shape == c.shape == (1, 3, m.config.d_hidden)
    assert not h.requires_grad
    h0, c0 = m.init_state(3)
    assert torch.count_nonzero(h0) == 0 and h0.shape == h.shape


def test_state_carries_across_segments():
    m = _tiny()
    x = torch.randint(0, 631, (2, 20))
    with torch.no_grad():
        whole, _ = m(x)
        a, s = m(x[:, :7])
        b, s = m(x[:, 7:15], s)
        c, _ = m(x[:, 15:], s)
    torch.testing.assert_close(torch.cat([a, b, c], 1), whole, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        fresh, _ = m(x[:, 7:15])
    assert not torch.allclose(fresh, b, atol=1e-4)  # the state matters


def test_presets_sizes():
    assert set(presets("lstm")) >= {"tiny", "small", "paper"}
    with torch.device("meta"):
        paper = LSTMLM(LSTMConfig(**presets("lstm")["paper"]))
    # one layer of 3072 units: 4*3072*(128+3072) + 8*3072 + 631*128 + 3072*631 + 631
    assert paper.num_parameters() == 41_366_007
    assert paper.config.n_layer == 1 and paper.config.d_hidden == 3072


def test_trains_and_round_trips(tmp_path):
    m = _tiny().train()
    x = torch.arange(40).repeat(4, 3) % 12 + 380
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        logits, _ = m(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 631), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 2
    save_model(m, tmp_path / "ck", {"step": 30})
    m2 = load_model(tmp_path / "ck")
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(m2(x)[0], m(x)[0])
