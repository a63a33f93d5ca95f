"""Generation: seeds, lengths, validity under sampling, the prime, rhythm and keep modes, the CLI.

All with the ``tiny`` Transformer-XL preset and random weights (fixed by a torch seed), one thread.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lakhnes.core import tx1
from lakhnes.core import vocab as V
from lakhnes.core.score import SAMPLE_RATE, VOICES
from lakhnes.decoding.constraint import Constraint
from lakhnes.decoding.forced import keep_plan, parse_keep, quantize
from lakhnes.errors import InvalidInputError
from lakhnes.formats.midi import read_midi

SR = SAMPLE_RATE
SONG = "324_SuperMarioBros_3_00_01World1Map.mid"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    from lakhnes.models import build_model

    torch.manual_seed(0)
    m = build_model("transformer_xl", "tiny").eval()
    with torch.no_grad():  # livelier than the 0.02-std init, so sampling really varies
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m


@pytest.fixture(scope="module")
def song(fixtures):
    return read_midi(fixtures / "nesmdb" / SONG).slice(0, 2 * SR)


def notes(score, v):
    n = score.notes[v]
    return np.stack([n["start"], n["end"], n["pitch"]], 1)


def test_cached_steps_match_forward():
    from lakhnes.models import build_model
    from lakhnes.models.txl_step import CachedSteps

    torch.manual_seed(1)
    for pre_norm, mem_len, tie in ((False, 6, True), (True, 6, True), (False, 0, True), (True, 6, False)):
        cfg = dict(n_layer=2, n_head=2, d_model=16, d_inner=32, tgt_len=8, mem_len=mem_len, dropout=0.0,
                   pre_norm=pre_norm, tie_weights=tie)
        m = build_model("transformer_xl", cfg).eval()
        x = torch.randint(0, V.VOCAB_SIZE, (2, 20))
        with torch.inference_mode():
            _, state = m(x[:, :5])
            steps = CachedSteps(m, state)
            for t in range(5, 20):
                ref, state = m(x[:, t : t + 1], state)
                torch.testing.assert_close(steps.step(x[:, t]), ref[:, 0], atol=1e-5, rtol=1e-5)


def test_same_seed_same_songs(model):
    from lakhnes.generate import sample

    a = sample(model, seconds=1.0, seed=7, num=2)
    b = sample(model, seconds=1.0, seed=7, num=2)
    c = sample(model, seconds=1.0, seed=8, num=2)
    assert a == b
    assert a != c
    assert all(s.end == SR for s in a)  # exactly the requested length


def test_new_songs_sit_on_whole_frames(model):
    """Each wait that a whole number of NES frames rounds to is written as that many frames; the rest
    stay vocabulary waits; the TX1 of the song is the sampled one."""
    from lakhnes.core.frames import FRAME_OF
    from lakhnes.generate import sample, sample_tokens

    song = sample(model, seconds=4.0, seed=3)[0]
    ids = sample_tokens(model, seconds=4.0, seed=3)[0]
    ev = tx1.score_to_events(song)
    waits = -ev[ev < 0][:-1]  # the last one is cut at the song's end
    framed = np.isin(waits, FRAME_OF[FRAME_OF > 0])
    assert framed.any() and (framed | np.isin(waits, V.WAITS[FRAME_OF == 0])).all()
    written, drawn = tx1.events_to_ids(ev), tx1.events_to_ids(tx1.ids_to_events(ids))
    n = len(written) - 8  # the end differs: notes cut at the song's end
    assert n > 20 and np.array_equal(written[:n], drawn[:n])


def test_tokens_mode_counts_tokens(model):
    from lakhnes.generate import sample_tokens

    ids = sample_tokens(model, tokens=40, seed=0, num=3)
    assert [len(x) for x in ids] == [40, 40, 40]
    assert not any(V.START in x for x in ids)


def test_many_streams_at_high_temperature_stay_valid(model):
    from lakhnes.generate import sample_tokens

    streams = sample_tokens(model, seconds=2.0, temperature=2.0, top_k=0, seed=123, num=200)
    assert len(streams) == 200
    for ids in streams:
        assert len(ids) and not np.any(ids == V.START)  # <S> is masked
        tx1.check_ids(ids)
        ev = tx1.ids_to_events(ids)
        assert -ev[ev < 0].sum() >= 2 * SR  # ran to its length
        tx1.events_to_score(ev).check()
        # canonical order: at one instant at most one event per voice, voices ascending
        voice = V.VOICE_OF[ids].astype(int)
        instant = np.cumsum(V.IS_WAIT[ids])
        for t in np.unique(instant):
            spoken = voice[(instant == t) & (voice >= 0)]
            assert np.all(np.diff(spoken) > 0)


def test_top_p_and_greedy(model):
    from lakhnes.generate import sample_tokens

    a = sample_tokens(model, tokens=30, temperature=0, seed=1)
    b = sample_tokens(model, tokens=30, temperature=0, seed=2)
    assert np.array_equal(a[0], b[0])  # greedy ignores the seed
    for ids in sample_tokens(model, tokens=30, top_k=0, top_p=0.5, seed=1, num=4):
        tx1.check_ids(ids)


def test_continuation_starts_with_prime(model, song):
    from lakhnes.generate import continue_song, prime_events

    cut = int(1.5 * SR)
    out = continue_song(model, song, prime_seconds=1.5, seconds=1.0, seed=3, num=2)
    ev, at = prime_events(song, 1.5)
    assert at == cut
    for s in out:
        s.check()
        assert s.end == cut + SR
        head = s.slice(0, cut)
        for v in VOICES:
            assert np.array_equal(notes(head, v), notes(song.slice(0, cut), v))
        assert np.array_equal(tx1.score_to_events(s)[: len(ev) - 1], ev[:-1])  # same events up to the cut
    new = continue_song(model, song, prime_seconds=1.5, seconds=1.0, seed=3, num=2, only_new=True)
    for s, full in zip(new, out, strict=True):
        assert s.end == SR
        for v in VOICES:
            assert np.array_equal(notes(s, v), notes(full.slice(cut, full.end), v))


def test_rhythm_keeps_timing_and_noise(model, song):
    from lakhnes.generate import accompany_rhythm

    template = quantize(song)
    out = accompany_rhythm(model, song, temperature=1.5, seed=0, num=3)
    changed = 0
    melodic = V.IS_NOTEON[np.clip(template, 0, None)] & (template >= 0)
    melodic &= V.VOICE_OF[np.clip(template, 0, None)] < 3
    for s in out:
        s.check()
        ev = tx1.score_to_events(s)
        assert len(ev) == len(template)
        assert np.array_equal(ev[~melodic], template[~melodic])  # waits, NOTEOFFs, noise: as written
        assert np.array_equal(V.VOICE_OF[ev[melodic]], V.VOICE_OF[template[melodic]])
        assert V.IS_NOTEON[ev[melodic]].all()
        changed += int(np.sum(ev[melodic] != template[melodic]))
        ref = tx1.events_to_score(template)
        for v in ("P1", "P2", "TR"):
            assert np.array_equal(s.notes[v][["start", "end"]], ref.notes[v][["start", "end"]])
        assert np.array_equal(notes(s, "NO"), notes(ref, "NO"))
    assert changed > 0


@pytest.mark.parametrize("keep", ["P1,NO", "TR"])
def test_keep_voices_exactly(model, song, keep):
    """The source is first quantized to the vocabulary's waits (the model can only say those);
    the kept voices then come back exactly, and the songs end at the source's end."""
    from lakhnes.generate import accompany_voices

    kept = parse_keep(keep)
    plan = keep_plan(song, kept)
    ref = tx1.events_to_score(quantize(song), end=plan.end)
    out = accompany_voices(model, song, keep, temperature=1.5, seed=5, num=4)
    wrote = 0
    for s in out:
        s.check()
        assert s.end == plan.end
        for v in kept:
            assert np.array_equal(notes(s, v), notes(ref, v))
        wrote += sum(len(s.notes[v]) for v in VOICES if v not in kept)
        tx1.check_ids(tx1.events_to_ids(tx1.score_to_events(s)))
    assert wrote > 0


def test_keep_mask_forces_kept_events():
    src = tx1.events_to_score(np.array([V.noteon_id("P1", 60), -1000, V.VOICE_OFF["P1"], -500]))
    plan = keep_plan(src, ["P1"])
    con = Constraint(1, plan=plan)
    m = con.mask()[0]
    # at time 0 the P1 note is due: only it, or free voices before P1 (none) -> exactly one choice
    assert np.flatnonzero(m).tolist() == [int(plan.tokens[0])]
    con.update(torch.tensor([int(plan.tokens[0])]))
    m = con.mask()[0]
    assert not m[V.VOICE_OFF["P1"]] and not m[V.noteon_ids("P1")].any()  # kept voice: not the model's
    assert m[V.noteon_ids("P2")].all() and not m[V.VOICE_OFF["P2"]]  # P2 silent: no NOTEOFF
    waits = V.WAIT_OF[np.flatnonzero(m & V.IS_WAIT)]
    assert waits.max() == 1000  # cannot wait past the next kept event


def test_long_waits_land_on_the_next_kept_event():
    plan = keep_plan(tx1.events_to_score(np.array([-1050, V.noteon_id("P1", 60), -500])), ["P1"])
    con = Constraint(1, plan=plan)
    logits = torch.full((1, V.VOCAB_SIZE), -30.0)
    long_wait = V.WAIT_BASE + int(np.searchsorted(V.WAITS, 5000))
    logits[0, long_wait] = 5.0  # the model wants to wait past the kept note (due at 1050)
    allowed = con.mask()  # first the mask, then the re-weighting for it
    adj = con.adjust(logits)
    land = V.WAIT_BASE + int(np.searchsorted(V.WAITS, 1000))  # longest vocabulary wait <= 1050
    assert int(np.where(allowed, adj, -np.inf).argmax()) == land
    assert adj[0, land] > 4.9


def test_budget_forces_longest_wait():
    con = Constraint(1, limit=5000, budget=0)
    m = con.mask()[0]
    assert np.flatnonzero(m).tolist() == [V.WAIT_BASE + int(np.searchsorted(V.WAITS, 5000))]


def test_bad_options(model, song):
    from lakhnes.generate import accompany_voices, sample

    with pytest.raises(InvalidInputError, match="top_p"):
        sample(model, seconds=1, top_p=1.5)
    with pytest.raises(InvalidInputError, match="unknown voice"):
        accompany_voices(model, song, "P3")
    with pytest.raises(InvalidInputError, match="one to three"):
        accompany_voices(model, song, "P1,P2,TR,NO")


def test_lstm_generates(song):
    from lakhnes.generate import accompany_voices, sample
    from lakhnes.models import build_model

    torch.manual_seed(0)
    m = build_model("lstm", "tiny").eval()
    (s,) = sample(m, seconds=0.5, seed=0)
    s.check()
    assert s.end == SR // 2
    (k,) = accompany_voices(m, song.slice(0, SR), "NO", seed=0)
    k.check()


def test_default_model_error_names_path(monkeypatch, tmp_path):
    import lakhnes.models as M
    from lakhnes.generate import load_default_model

    monkeypatch.setattr(M, "default_model_path", lambda: tmp_path / "nothing")
    with pytest.raises(InvalidInputError, match="nothing: no shipped model"):
        load_default_model()


def test_cli_writes_outputs(model, tmp_path, fixtures):
    import soundfile as sf

    from lakhnes.cli import main
    from lakhnes.models import save_model

    mdir = save_model(model, tmp_path / "tiny")
    wav, mid = tmp_path / "x.wav", tmp_path / "x.mid"
    assert main(["generate", "-m", str(mdir), "--seconds", "2", "-o", str(wav), "-o", str(mid), "--seed", "1",
                 "-q"]) == 0
    assert sf.info(str(wav)).frames == 2 * SR
    assert read_midi(mid).end == 2 * SR
    out = tmp_path / "k.tx1.txt"
    prime = fixtures / "nesmdb" / SONG
    assert main(["generate", "-m", str(mdir), "--prime", str(prime), "--prime-seconds", "1", "--seconds", "1",
                 "--num", "2", "-o", str(out), "-q"]) == 0
    for k in (1, 2):
        assert tx1.read_tx1(tmp_path / f"k_{k}.tx1.txt").end == 2 * SR
    rhythm = tmp_path / "r.mid"
    assert main(["generate", "-m", str(mdir), "--rhythm", str(prime), "--seconds", "1", "-o", str(rhythm),
                 "-q"]) == 0
    assert abs(read_midi(rhythm).end - SR) < 0.05 * SR  # the source's first second, on the wait grid
    assert main(["generate", "-m", str(mdir), "-o", str(tmp_path / "x.mp3")]) == 2
    assert main(["generate", "-m", str(mdir), "--keep", "P1", str(tmp_path / "missing.mid"),
                 "-o", str(out)]) == 1
    assert main(["generate", "-m", str(mdir), "--keep", "XX", str(prime), "-o", str(out)]) == 2


def test_general_midi_prime_is_mapped(tmp_path):
    """A MIDI without NES tracks (here a two-part piano file) is mapped onto the NES voices."""
    import symusic

    from lakhnes.generate import load_source

    sm = symusic.Score(480)
    for program, pitches in ((0, [72, 74, 76, 77]), (32, [40, 43, 45, 47])):
        t = symusic.Track(name=f"part{program}", program=program)
        for k, p in enumerate(pitches):
            t.notes.append(symusic.Note(k * 480, 480, p, 90))
        sm.tracks.append(t)
    path = tmp_path / "piano.mid"
    sm.dump_midi(str(path))
    score = load_source(path)
    score.check()
    assert score.num_notes == 8
    assert sorted(score.notes["P1"]["pitch"].tolist()) == [72, 74, 76, 77]
    with pytest.raises(InvalidInputError, match="not a MIDI"):
        load_source(tmp_path / "song.mp3")


def test_shipped_model_readme_command(tmp_path, monkeypatch):
    """The README's main job: ``lakhnes generate -o tune.wav`` with the shipped model (no -m)."""
    import json

    import soundfile as sf

    from lakhnes.cli import main
    from lakhnes.models import default_model_path

    shipped = default_model_path()
    if not (shipped / "model.safetensors").exists():
        pytest.skip(f"no shipped model in {shipped}")
    meta = json.loads((shipped / "config.json").read_text())
    assert meta["model_type"] == "transformer_xl"
    assert (shipped / "model.safetensors").stat().st_size <= 30 * 2**20
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "-o", "tune.wav", "--seconds", "3", "--seed", "0", "-q"]) == 0
    info = sf.info("tune.wav")
    assert info.samplerate == SR and info.frames == 3 * SR


def test_wait_temperature_sharpens_the_waits_only():
    from lakhnes.decoding.sampler import pick

    logits = np.zeros((4000, V.VOCAB_SIZE), dtype=np.float32)
    w1, w2 = V.TOKEN_TO_ID["WT_730"], V.TOKEN_TO_ID["WT_740"]
    n1, n2 = int(V.noteon_id("P1", 60)), int(V.noteon_id("P1", 62))
    logits[:, w1], logits[:, n1] = 1.0, 1.0
    allowed = np.zeros(logits.shape, dtype=bool)
    allowed[:, [w1, w2, n1, n2]] = True
    ids = pick(logits, allowed, temperature=1.0, top_k=0, rng=np.random.default_rng(0), wait_temperature=0.1)
    waits, notes = ids[(ids == w1) | (ids == w2)], ids[(ids == n1) | (ids == n2)]
    assert 0.48 < len(waits) / len(ids) < 0.52  # a wait as likely as at temperature 1 ((e + 1) : (e + 1))
    assert (waits == w1).mean() > 0.99  # e^(1/0.1) : 1 among the waits
    assert 0.66 < (notes == n1).mean() < 0.80  # e : 1 among the notes, as at temperature 1
    same = pick(logits, allowed, temperature=0.7, top_k=0, rng=np.random.default_rng(1), wait_temperature=0.7)
    assert np.array_equal(same, pick(logits, allowed, temperature=0.7, top_k=0, rng=np.random.default_rng(1)))
