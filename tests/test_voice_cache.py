"""The voice cache: transposition-invariant phrase memory per melodic voice, and how it mixes."""

from __future__ import annotations

import numpy as np
import pytest

from lakhnes.core.vocab import START, VOCAB_SIZE, noteon_id, noteon_ids
from lakhnes.models.voice_cache import N_BUCKETS, ORDERS, VoiceHistory, bucket, mix

pytestmark = pytest.mark.light


def _notes(voice, pitches):
    return [int(noteon_id(voice, p)) for p in pitches]


def test_a_phrase_comes_back_transposed_in_another_voice():
    h = VoiceHistory()
    for y in _notes("P1", [60, 62, 64, 65, 67]) + _notes("P2", [50, 52, 54, 55]):
        h.push(y)
    b, dist = h.predict(1)  # P2 played +2 +2 +1: P1 went on +2 after that
    assert b == bucket(ORDERS.index(3) + 1, 1, 1)
    assert dist == {int(noteon_id("P2", 57)): 1.0}
    assert h.predict(2) == (0, None)  # the triangle has played nothing


def test_waits_offs_and_noise_leave_it_alone_and_start_forgets():
    h = VoiceHistory()
    for y in _notes("P1", [60, 62, 60, 62]):
        h.push(y)
        h.push(int(noteon_ids("NO")[3]))
        h.push(1)  # a wait
    assert h.predict(0)[1] == {int(noteon_id("P1", 60)): 1.0}
    h.push(START)
    assert h.predict(0) == (0, None)


def test_out_of_range_continuations_are_dropped():
    h = VoiceHistory()
    for y in _notes("P1", [60, 80, 50]) + _notes("P2", [40, 60]):
        h.push(y)  # after +20 P1 went -30: P2 would go to 30, below its range (33)
    assert h.predict(1) == (0, None)
    for y in _notes("TR", [40, 60]):
        h.push(y)  # the triangle reaches 30 (range from 21)
    assert h.predict(2)[1] == {int(noteon_id("TR", 30)): 1.0}


def test_mix_moves_mass_within_the_family_only():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=VOCAB_SIZE)
    row = logits - np.log(np.exp(logits).sum())
    h = VoiceHistory()
    for y in _notes("P1", [60, 64, 67, 60, 64]):
        h.push(y)
    mu = np.zeros(N_BUCKETS)
    b, dist = h.predict(0)
    mu[b] = 0.5
    out = mix(row.copy(), h, mu)
    fam = noteon_ids("P1")
    assert np.isclose(np.exp(out).sum(), 1.0)
    assert np.isclose(np.exp(out[fam]).sum(), np.exp(row[fam]).sum())
    rest = np.setdiff1d(np.arange(VOCAB_SIZE), fam)
    assert np.array_equal(out[rest], row[rest])
    y = int(noteon_id("P1", 67))
    assert dist == {y: 1.0}
    expect = 0.5 * np.exp(row[y]) + 0.5 * np.exp(row[fam]).sum()
    assert np.isclose(np.exp(out[y]), expect)


def _model_with_table(tmp_path, mu):
    import json
    import shutil

    from lakhnes.models import default_model_path
    from lakhnes.models.voice_cache import merge_tables

    model = tmp_path / "model"
    shutil.copytree(default_model_path(), model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["voice_cache"] = merge_tables(None, mu, 896, fitted_on="valid")
    (model / "config.json").write_text(json.dumps(cfg))
    return model


def test_table_in_config_and_bad_tables(tmp_path):
    import json

    from lakhnes.errors import InvalidInputError
    from lakhnes.models.voice_cache import merge_tables, read_mu

    model = _model_with_table(tmp_path, np.full(N_BUCKETS, 0.25))
    cfg = json.loads((model / "config.json").read_text())
    cfg["voice_cache"] = merge_tables(cfg["voice_cache"], np.full(N_BUCKETS, 0.5), 2048, fitted_on="valid")
    assert sorted(cfg["voice_cache"]["tables"]) == ["2048", "896"]
    (model / "config.json").write_text(json.dumps(cfg))
    assert read_mu(model, 512)[1] == 0.25 and read_mu(model, 4096)[1] == 0.5 and read_mu(model)[1] == 0.5
    cfg["voice_cache"]["tables"]["896"]["mu"] = [1.5] * N_BUCKETS
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InvalidInputError, match="mu must be"):
        read_mu(model, 896)


def test_generation_uses_the_voice_cache_and_can_turn_it_off(tmp_path):
    from lakhnes.cli import main
    from lakhnes.generate import _stepper, load_model
    from lakhnes.models.voice_cache import VoiceCachedStepper

    model = _model_with_table(tmp_path, np.r_[0.0, np.full(N_BUCKETS - 1, 0.9)])
    m = load_model(model, runtime="numpy")
    m.rhythm_cache = None  # the rhythm cache would wrap the voice cache's stepper
    assert isinstance(_stepper(m, np.zeros((1, 1), np.int64)), VoiceCachedStepper)
    m.song_cache = None  # the voice cache sits on the song cache: off with it
    assert not isinstance(_stepper(m, np.zeros((1, 1), np.int64)), VoiceCachedStepper)
    outs = []
    for extra in ([], ["--no-voice-cache"]):
        out = tmp_path / f"v{len(extra)}.tx1.txt"
        assert main(["generate", "-m", str(model), "--tokens", "600", "--seed", "3", "-q", "-o", str(out), *extra]) == 0
        outs.append(out.read_text())
    assert outs[0] != outs[1] and all(o.count("NOTEON") > 20 for o in outs)
