"""The rhythm cache: the song cache over rhythm tokens (melodic pitches taken away), and how it mixes."""

from __future__ import annotations

import numpy as np
import pytest

from lakhnes.core.vocab import IS_NOTEOFF, IS_WAIT, TOKEN_TO_ID, VOCAB_SIZE, noteon_id, noteon_ids
from lakhnes.models import rhythm_cache as rc
from lakhnes.models.song_cache import N_BUCKETS
from lakhnes.models.song_cache import stream_scores as song_scores

pytestmark = pytest.mark.light

_FAMS = [noteon_ids(v) for v in ("P1", "P2", "TR")]


def _bar(pitches, noise=2):
    """A bar: a P1 note per beat over a kick, each held 300 samples then a 400-sample rest."""
    out = []
    for p in pitches:
        out += [int(noteon_id("P1", p)), int(noteon_ids("NO")[noise]), TOKEN_TO_ID["WT_300"],
                TOKEN_TO_ID["P1_NOTEOFF"], TOKEN_TO_ID["WT_400"]]
    return out


def test_rhythm_tokens_drop_melodic_pitches_only():
    for fam in _FAMS:
        assert set(rc.RHYTHM_OF[fam].tolist()) == {int(fam[0])}
    rest = np.setdiff1d(np.arange(VOCAB_SIZE), np.concatenate(_FAMS))
    assert np.array_equal(rc.RHYTHM_OF[rest], rest)
    assert IS_WAIT[rc.RHYTHM_OF[IS_WAIT]].all() and IS_NOTEOFF[rc.RHYTHM_OF[IS_NOTEOFF]].all()


def test_a_rhythm_under_new_pitches_is_the_rhythm_caches_and_not_the_song_caches():
    song = [0] + _bar([60, 62, 64, 65]) + _bar([67, 65, 64, 62])
    b, p = rc.stream_scores(song)
    sb, sp = song_scores(song)
    second = slice(len(_bar([0] * 4)) + 1, len(song) - 1)  # the second bar's targets but its first
    assert (b[second] > 0).all() and np.allclose(p[second], 1.0)
    pitched = [i for i in range(second.start, second.stop) if song[i + 1] in set(_FAMS[0].tolist())]
    assert pitched and all(sp[i] < 1 for i in pitched)  # the exact-token cache has not seen these notes


def test_mix_is_the_mixture_and_keeps_each_voices_pitch_choice():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=VOCAB_SIZE) * 3
    row = logits - np.log(np.exp(logits).sum())
    p1 = int(_FAMS[0][0])
    d = {-1: 10, int(_FAMS[1][0]): 4, 3: 3, int(noteon_ids("NO")[2]): 2, 0: 1}
    out = rc.mix(row.copy(), d, 0.3)
    assert np.isclose(np.exp(out).sum(), 1.0)
    fam = _FAMS[1]
    assert np.allclose(out[fam] - out[fam[0]], row[fam] - row[fam[0]])  # pitches in the same ratios
    assert np.isclose(np.exp(out[fam]).sum(), 0.7 * np.exp(row[fam]).sum() + 0.3 * 0.4)
    assert np.isclose(np.exp(out[3]), 0.7 * np.exp(row[3]) + 0.3 * 0.3)
    assert np.isclose(np.exp(out[p1]), 0.7 * np.exp(row[p1]))  # a voice the rhythm did not play here
    p = np.exp(row)
    famof = np.full(VOCAB_SIZE, -1)
    for f, ids in enumerate(_FAMS):
        famof[ids] = f
    pf = np.array([p[_FAMS[f]].sum() if f >= 0 else 0.0 for f in famof])
    share = np.array([d.get(int(rc.RHYTHM_OF[y]), 0) / 10 for y in range(VOCAB_SIZE)])
    rho = np.full(N_BUCKETS, 0.3)
    assert np.allclose(rc.mixed(p, pf, famof, np.full(VOCAB_SIZE, 9), share, rho), np.exp(out), rtol=1e-12)


class _Fixed:
    """A stepper that always says the same logits."""

    def __init__(self, logits):
        self.logits = logits

    def step(self, ids):
        return self.logits


def test_stepper_mixes_where_the_rhythm_matched_only():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(2, VOCAB_SIZE))
    song = [0] + _bar([60, 62, 64, 65]) + _bar([67, 65])
    prompt = np.array([song, [0] * len(song)])
    s = rc.RhythmCachedStepper(_Fixed(base), np.full(N_BUCKETS, 0.5), prompt)
    lp = s.logits - np.log(np.exp(s.logits).sum(-1, keepdims=True))
    assert np.array_equal(s.logits[1], base[1])  # only <S>: nothing matched
    nxt = song[1 + len(_bar([0] * 2))]  # what the first bar did after two notes: its third note
    assert rc.RHYTHM_OF[nxt] == _FAMS[0][0]
    p = np.exp(base[0] - np.log(np.exp(base[0]).sum()))
    assert np.exp(lp[0][_FAMS[0]]).sum() == pytest.approx(0.5 * p[_FAMS[0]].sum() + 0.5)
    with pytest.raises(ValueError, match="rho values"):
        rc.RhythmCachedStepper(_Fixed(base), np.zeros(3), prompt)


def _model_with_table(tmp_path, rho):
    import json
    import shutil

    from lakhnes.models import default_model_path

    model = tmp_path / "model"
    shutil.copytree(default_model_path(), model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["rhythm_cache"] = rc.merge_tables(None, rho, 896, fitted_on="valid")
    (model / "config.json").write_text(json.dumps(cfg))
    return model


def test_table_in_config_and_bad_tables(tmp_path):
    import json

    from lakhnes.errors import InvalidInputError

    model = _model_with_table(tmp_path, np.full(N_BUCKETS, 0.25))
    cfg = json.loads((model / "config.json").read_text())
    cfg["rhythm_cache"] = rc.merge_tables(cfg["rhythm_cache"], np.full(N_BUCKETS, 0.5), 2048, fitted_on="valid")
    (model / "config.json").write_text(json.dumps(cfg))
    assert rc.read_rho(model, 512)[1] == 0.25 and rc.read_rho(model, 4096)[1] == 0.5
    cfg["rhythm_cache"]["tables"]["896"]["rho"] = [0.5] * 3
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InvalidInputError, match="rhythm_cache.*rho must be"):
        rc.read_rho(model, 896)


def test_generation_uses_the_rhythm_cache_and_can_turn_it_off(tmp_path):
    from lakhnes.cli import main
    from lakhnes.generate import _stepper, load_model

    model = _model_with_table(tmp_path, np.r_[0.0, np.full(N_BUCKETS - 1, 0.5)])  # boosted or not, far from 1
    m = load_model(model, runtime="numpy")
    s = _stepper(m, np.zeros((1, 1), np.int64))
    assert isinstance(s, rc.RhythmCachedStepper)
    assert s.rho[1] == pytest.approx(0.5 * rc.RHYTHM_BOOST / (0.5 + 0.5 * rc.RHYTHM_BOOST))  # boosted for sampling
    m.rhythm_boost = 1.0
    assert _stepper(m, np.zeros((1, 1), np.int64)).rho[1] == pytest.approx(0.5)
    m.song_cache = None  # the rhythm cache sits on the song cache: off with it
    assert not isinstance(_stepper(m, np.zeros((1, 1), np.int64)), rc.RhythmCachedStepper)
    outs = []
    for extra in ([], ["--no-rhythm-cache"], ["--rhythm-boost", "1"]):
        out = tmp_path / f"r{len(extra)}.tx1.txt"
        assert main(["generate", "-m", str(model), "--tokens", "600", "--seed", "3", "-q", "-o", str(out), *extra]) == 0
        outs.append(out.read_text())
    assert len(set(outs)) == 3 and all(o.count("NOTEON") > 20 for o in outs)
    assert main(["generate", "-m", str(model), "--tokens", "10", "--rhythm-boost", "0", "-o", str(out)]) == 2
