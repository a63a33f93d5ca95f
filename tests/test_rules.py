"""Decoding rules (:mod:`lakhnes.decoding.rules`): each one on a tiny Transformer-XL with fixed seeds,
beside a control run without it (so that every test can fail), and the mechanics of kept voices.

The tiny models have their init weights and a chosen output bias (``out_bias``), so that what they
sample is known in kind: ``lively`` plays, rests, holds and enters late; ``flood`` writes bursts of
notes a few samples apart. Sampling uses ``top_k=0`` (with near-equal logits, top-k would keep only
the biased ids).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lakhnes.core import tx1
from lakhnes.core import vocab as V
from lakhnes.core.frames import STRETCH
from lakhnes.core.score import SAMPLE_RATE, VOICES
from lakhnes.decoding import rules as C
from lakhnes.decoding.constraint import Constraint
from lakhnes.decoding.forced import keep_plan, quantize
from lakhnes.decoding.state import FAR, Stream
from lakhnes.errors import InvalidInputError
from lakhnes.evaluation.stats import voice_bounds
from lakhnes.formats.midi import read_midi

SR = SAMPLE_RATE
#: the rules bound token time; new songs' waits are then read on whole frames, which may lengthen a span by this
ON_FRAMES = 1 + STRETCH
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(bias: dict) -> torch.nn.Module:
    from lakhnes.models import build_model

    torch.manual_seed(0)
    m = build_model("transformer_xl", "tiny").eval()
    b = torch.zeros(V.VOCAB_SIZE)
    w = torch.as_tensor(V.WAIT_OF)
    for kind, value in bias.items():
        if kind == "noteon":
            b[torch.as_tensor(V.IS_NOTEON)] = value
        elif kind == "noteoff":
            b[torch.as_tensor(V.IS_NOTEOFF)] = value
        else:  # (lo, hi): waits of lo..hi samples
            b[(w >= kind[0]) & (w <= kind[1])] = value
    with torch.no_grad():
        m.out_bias.copy_(b)
    return m


@pytest.fixture(scope="module")
def lively():
    return _tiny({"noteon": 1.0, "noteoff": 3.0, (1, 30): 2.5, (5000, 30000): 2.5})


@pytest.fixture(scope="module")
def flood():
    return _tiny({"noteon": 1.0, (1, 40): 4.0})


@pytest.fixture(scope="module")
def song(fixtures):
    return read_midi(fixtures / "nesmdb" / "324_SuperMarioBros_3_00_01World1Map.mid").slice(0, 3 * SR)


def worst(songs, voices=VOICES, window_s: float = 1.0) -> dict[str, float]:
    """The largest of each :func:`voice_bounds` figure over the songs' ``voices``."""
    out: dict[str, float] = {}
    for s in songs:
        for v, fig in voice_bounds(s, window_s).items():
            if v in voices:
                for k, x in fig.items():
                    out[k] = max(out.get(k, 0.0), x)
    return out


def trailing_rest(s, v) -> float:
    n = s.notes[v]
    return (s.end - n["end"][-1]) / SR if len(n) else s.end / SR


# ----------------------------------------------------------------------------- one rule at a time


def test_named_voices_enter_and_the_others_stay_silent(lively):
    from lakhnes.generate import sample

    songs = sample(lively, seconds=3, seed=1, num=6, top_k=0, voices="P1,TR")
    for s in songs:
        assert len(s.notes["P1"]) and len(s.notes["TR"])
        assert not len(s.notes["P2"]) and not len(s.notes["NO"])
        entry = C.ENTRY_S * SR * ON_FRAMES
        assert s.notes["P1"]["start"][0] <= entry and s.notes["TR"]["start"][0] <= entry
    default = sample(lively, seconds=3, seed=1, num=6, top_k=0)
    assert all(all(len(s.notes[v]) for v in VOICES) for s in default)  # default: all four
    control = sample(lively, seconds=3, seed=1, num=6, top_k=0, rules=[])
    assert any(sum(1 for v in VOICES if len(s.notes[v])) < 4 for s in control)
    assert worst(control)["entry_s"] > C.ENTRY_S


def test_rest_bound_holds(lively):
    from lakhnes.generate import sample

    songs = sample(lively, seconds=3, seed=1, num=6, top_k=0, max_rest=0.3)
    assert worst(songs)["longest_rest_s"] <= 0.3 * ON_FRAMES
    assert max(trailing_rest(s, v) for s in songs for v in VOICES) <= 0.3 * ON_FRAMES
    control = sample(lively, seconds=3, seed=1, num=6, top_k=0, max_rest=None)
    assert worst(control)["longest_rest_s"] > 0.3


def test_hold_bound_holds(lively):
    from lakhnes.generate import sample

    songs = sample(lively, seconds=3, seed=1, num=6, top_k=0, rules=[C.MaxHold(0.2)])
    assert worst(songs)["longest_note_s"] <= 0.2 * ON_FRAMES
    assert worst(sample(lively, seconds=3, seed=1, num=6, top_k=0, rules=[]))["longest_note_s"] > 0.2


def test_note_rate_bound_holds(flood):
    from lakhnes.generate import sample

    songs = sample(flood, seconds=1, seed=1, num=4, top_k=0, rules=[C.NoteRate(4, SR // 4)])
    assert worst(songs, window_s=0.25)["max_onsets"] <= 4
    control = sample(flood, seconds=1, seed=1, num=4, top_k=0, rules=[])
    assert worst(control, window_s=0.25)["max_onsets"] > 4


def test_sub_ms_runs_are_bounded(flood):
    from lakhnes.generate import sample

    songs = sample(flood, seconds=1, seed=1, num=4, top_k=0, rules=[C.SubMsRun(1)])
    assert worst(songs)["sub_ms_run"] <= 1
    assert worst(sample(flood, seconds=1, seed=1, num=4, top_k=0, rules=[]))["sub_ms_run"] > 1


def test_sub_ms_share_is_bounded():
    from lakhnes.generate import sample

    burst = _tiny({"noteon": 2.0, (1, 20): 4.0})  # most of its notes are shorter than 1 ms

    def over(songs, share):  # voice parts with more sub-ms notes than the bound lets end (+1: one cut at the end)
        return sum(int(np.sum(n["end"] - n["start"] < C.SUB_MS)) > share * len(n) + 1
                   for s in songs for v in VOICES if len(n := s.notes[v]))

    songs = sample(burst, seconds=1, seed=1, num=4, top_k=0, rules=[C.SubMsRun(max_run=1000, max_share=0.2)])
    assert over(songs, 0.2) == 0
    assert sum(len(s.notes[v]) for s in songs for v in VOICES) > 40
    assert over(sample(burst, seconds=1, seed=1, num=4, top_k=0, rules=[]), 0.2) >= 3


def test_activity_tilts_towards_real_lengths(lively):
    """The soft rule alone (no bound): long notes and rests get rarer, as in real music."""
    from lakhnes.generate import sample

    def long_share(songs):
        d = np.concatenate([(s.notes[v]["end"] - s.notes[v]["start"]) / SR for s in songs for v in VOICES])
        return float(np.mean(d > 0.5))

    tilted = sample(lively, seconds=3, seed=2, num=8, top_k=0, rules=[C.Activity()])
    plain = sample(lively, seconds=3, seed=2, num=8, top_k=0, rules=[])
    assert long_share(tilted) < long_share(plain)
    a = C.Activity()
    s = Stream()
    s.update(int(V.noteon_id("P1", 60)))
    assert a.bias(s) is None  # a fresh note, voices silent since 0 s: no push
    s.update(V.WAIT_BASE + int(np.searchsorted(V.WAITS, 44100)))  # 1 s later
    held, resting = a.bias(s)[0], a.bias(s)[1]
    assert 3.0 < held < 4.0  # ln(0.5 / 0.0167): 1.7 % of real melodic notes last over 1 s
    assert 3.5 < resting < 4.5  # ln(0.5 / 0.0089): 0.9 % of real melodic rests last over 1 s


# ----------------------------------------------------------------------------- rules and the prime


def test_rules_count_the_prime():
    """A continuation's rules start from the prime's state: a voice silent for 2 s at the cut, with
    max_rest 3 s, must play within 1 s; a note held for 2 s must end within 0.5 s with MaxHold(2.5)."""
    w44000 = V.WAIT_BASE + int(np.searchsorted(V.WAITS, 44000))
    ids = [V.START, int(V.noteon_id("P1", 60)), int(V.noteon_id("P2", 64)), V.WAIT_BASE + 99,
           V.VOICE_OFF["P2"], w44000, w44000]
    s = Stream.after(ids)
    assert s.t == 0 and s.sounding[0] and not s.sounding[1]
    assert s.onset[0] == -88100 and s.since[1] == -88000
    e = C.Ensemble(("P1", "P2"), max_rest=3.0)
    due = e.deadlines(s)
    assert due[1] == -88000 + 3 * SR and due[0] == FAR  # P1 sounds: no rest deadline
    assert C.MaxHold(2.5).deadlines(s)[0] == -88100 + round(2.5 * SR)
    con = Constraint(1, limit=SR, prefix=ids, rules=[e])
    m = con.mask_np()[0]
    assert m[V.noteon_ids("P2")].all()
    assert V.WAIT_OF[np.flatnonzero(m & V.IS_WAIT)].max() == 44000  # the longest wait <= 44,300


# ----------------------------------------------------------------------------- kept voices


def _plan_1230():
    """Keep P1 of a source whose P1 note comes 1,230 samples in (a P2 note at 1,000 between):
    1,230 is no vocabulary wait (the longest that fits is 1,200)."""
    ev = np.array([V.noteon_id("P2", 50), -1000, V.VOICE_OFF["P2"], -230, V.noteon_id("P1", 60), -500])
    return keep_plan(tx1.events_to_score(ev), ["P1"])


def test_a_cut_wait_ends_exactly_on_the_kept_event():
    plan = _plan_1230()
    assert plan.times.tolist()[0] == 1230
    con = Constraint(1, plan=plan)
    m = con.mask_np()[0]
    w1200 = V.WAIT_BASE + int(np.searchsorted(V.WAITS, 1200))
    assert V.WAIT_OF[np.flatnonzero(m & V.IS_WAIT)].max() == 1200
    logits = torch.full((1, V.VOCAB_SIZE), -30.0)
    logits[0, V.WAIT_BASE + int(np.searchsorted(V.WAITS, 5000))] = 5.0  # the model wants to wait past it
    adj = con.adjust(logits)  # numpy, whatever the model's runtime
    assert int(np.where(m[None], adj, -np.inf).argmax()) == w1200
    con.update(torch.tensor([w1200]))
    # the remainder, and nothing else: the model is not asked to act 30 samples before the kept note
    assert np.flatnonzero(con.mask_np()[0]).tolist() == [V.WAIT_BASE + 29]  # WT_30
    con.update(torch.tensor([V.WAIT_BASE + 29]))
    assert np.flatnonzero(con.mask_np()[0]).tolist() == [int(plan.tokens[0])]
    # a wait the model chose that stops short (WT_100) is its own instant: it may play there
    con = Constraint(1, plan=plan)
    con.mask_np()
    con.update(torch.tensor([V.WAIT_BASE + 99]))
    m = con.mask_np()[0]
    assert m[V.noteon_ids("P2")].all() and V.WAIT_OF[np.flatnonzero(m & V.IS_WAIT)].max() == 1100


def test_kept_voice_probability_waits_for_the_kept_voice():
    """The model's wish for a kept voice's event (masked) goes to waiting for its next event,
    not to notes of the free voices."""
    plan = _plan_1230()
    con = Constraint(1, plan=plan)
    m = torch.from_numpy(con.mask_np())
    logits = torch.zeros(1, V.VOCAB_SIZE)
    logits[0, V.noteon_ids("P1")] = 8.0  # "the melody plays now"
    p = torch.softmax(torch.from_numpy(con.adjust(logits)).masked_fill(~m, float("-inf")), -1)[0]
    land = V.WAIT_BASE + int(np.searchsorted(V.WAITS, 1200))
    assert p[land] > 0.95
    plain = torch.softmax(logits.masked_fill(~m, float("-inf")), -1)[0]
    assert plain[land] < 0.01  # renormalised, it would have gone over every allowed id


def test_no_floods_in_keep_mode(flood, song):
    from lakhnes.generate import accompany_voices

    ref = tx1.events_to_score(quantize(song), end=keep_plan(song, ["P1", "NO"]).end)
    songs = accompany_voices(flood, song, "P1,NO", seed=3, num=3, top_k=0)
    for s in songs:
        s.check()
        tx1.check_ids(tx1.events_to_ids(tx1.score_to_events(s)))
        for v in ("P1", "NO"):
            assert np.array_equal(s.notes[v][["start", "end", "pitch"]], ref.notes[v][["start", "end", "pitch"]])
    got = worst(songs, ("P2", "TR"))
    assert got["max_onsets"] <= C.MAX_ONSETS and got["sub_ms_run"] <= C.MAX_SUB_MS_RUN
    assert got["longest_note_s"] <= C.MAX_HOLD_S
    written = [s.notes[v] for s in songs for v in ("P2", "TR")]
    assert sum(len(n) for n in written) > 0
    # a tighter bound holds too, where the model alone goes past it
    tight = accompany_voices(flood, song, "P1,NO", seed=3, num=3, top_k=0, rules=[C.NoteRate(10), C.SubMsRun(1)])
    assert worst(tight, ("P2", "TR"))["max_onsets"] <= 10 and worst(tight, ("P2", "TR"))["sub_ms_run"] <= 1
    # (6 streams: with same-pitch re-attacks masked, 3 streams of seed 3 happen to stay under the run bound)
    control = worst(accompany_voices(flood, song, "P1,NO", seed=3, num=6, top_k=0, rules=[]), ("P2", "TR"))
    assert control["max_onsets"] > 10 and control["sub_ms_run"] > 1


def test_rules_keep_keep_mode_valid_at_high_temperature(lively, song):
    """Many streams, every rule at once, kept voices exact: the TX1 stays valid and canonical."""
    from lakhnes.generate import accompany_voices

    kept = ("TR",)
    ref = tx1.events_to_score(quantize(song), end=keep_plan(song, kept).end)
    for s in accompany_voices(lively, song, "TR", temperature=2.0, top_k=0, seed=9, num=24, max_rest=0.5):
        s.check()
        ids = tx1.events_to_ids(tx1.score_to_events(s))
        tx1.check_ids(ids)
        assert np.array_equal(s.notes["TR"][["start", "end"]], ref.notes["TR"][["start", "end"]])
        voice = V.VOICE_OF[ids].astype(int)
        instant = np.cumsum(V.IS_WAIT[ids])
        for t in np.unique(instant):
            spoken = voice[(instant == t) & (voice >= 0)]
            assert np.all(np.diff(spoken) > 0)


# ----------------------------------------------------------------------------- options


def test_voice_options_are_checked(lively, song):
    from lakhnes.generate import accompany_voices, sample

    with pytest.raises(InvalidInputError, match="voices: unknown voice 'P3'"):
        sample(lively, seconds=1, voices="P1,P3")
    with pytest.raises(InvalidInputError, match="voices: name at least one"):
        sample(lively, seconds=1, voices=" , ")
    with pytest.raises(InvalidInputError, match="max_rest must be at least 0.1"):
        sample(lively, seconds=1, max_rest=0)
    with pytest.raises(InvalidInputError, match="no voice for the model to write"):
        accompany_voices(lively, song, "P1", voices="P1")


def test_cli_voices_and_max_rest(lively, tmp_path, capsys):
    from lakhnes.cli import main
    from lakhnes.models import save_model

    mdir = save_model(lively, tmp_path / "lively")
    out = tmp_path / "x.mid"
    assert main(["generate", "-m", str(mdir), "--seconds", "2", "--voices", "P2,NO", "--max-rest", "0.5",
                 "--top-k", "0", "--seed", "1", "-o", str(out), "-q"]) == 0
    s = read_midi(out)
    assert [v for v in VOICES if len(s.notes[v])] == ["P2", "NO"]
    assert worst([s])["longest_rest_s"] <= 0.5 * ON_FRAMES
    import soundfile as sf

    wav, raw = tmp_path / "x.wav", tmp_path / "raw.wav"
    for path, extra in ((wav, []), (raw, ["--raw-level"])):
        assert main(["generate", "-m", str(mdir), "--seconds", "1", "--seed", "1", "-o", str(path), "-q"] + extra) == 0
    loud, quiet = (np.abs(sf.read(str(p), dtype="float32")[0]).max() for p in (wav, raw))
    assert abs(loud - 10 ** (-1 / 20)) < 2 / 32767 and quiet < loud / 2  # default: peak at -1 dBFS
    assert main(["generate", "-m", str(mdir), "--voices", "P5", "-o", str(out)]) == 2
    assert "--voices: unknown voice 'P5'" in capsys.readouterr().err
    assert main(["generate", "-m", str(mdir), "--max-rest", "0", "-o", str(out)]) == 2
    assert "--max-rest" in capsys.readouterr().err


def test_studio_voices_and_max_rest(lively, tmp_path, fixtures):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from lakhnes.studio.app import create_app
    from lakhnes.studio.modes import Limits

    app = create_app(model=lively, out_dir=tmp_path, limits=Limits(max_seconds=4, max_num=1))
    with TestClient(app) as client:
        r = client.post("/api/jobs", data={"mode": "new", "seconds": "2", "seed": "1", "top_k": "0",
                                           "voices": "P1,NO", "max_rest": "0.4"})
        assert r.status_code == 202, r.text
        app.state.jobs.join(timeout=120)
        job = client.get(f"/api/jobs/{r.json()['id']}").json()
        assert job["status"] == "done", job
        song = job["songs"][0]
        assert song["params"]["voices"] == ["P1", "NO"] and song["params"]["max_rest"] == 0.4
        s = read_midi(client.get(song["files"]["mid"]).content)
        assert [v for v in VOICES if len(s.notes[v])] == ["P1", "NO"]
        assert worst([s])["longest_rest_s"] <= 0.4 * ON_FRAMES
        assert max(trailing_rest(s, v) for v in ("P1", "NO")) <= 0.4 * ON_FRAMES
        for data, why in (({"mode": "new", "voices": "P1,XX"}, "voices: unknown voice 'XX'"),
                          ({"mode": "new", "max_rest": "0"}, "max_rest: 0 is outside"),
                          ({"mode": "rhythm", "voices": "P1"}, "rhythm mode plays the upload's voices"),
                          ({"mode": "accompany", "keep": "P1", "voices": "P1"}, "besides the kept ones")):
            r = client.post("/api/jobs", data=data)
            assert r.status_code == 400 and why in r.json()["detail"], (data, r.text)


def test_contradicting_rules_never_leave_nothing_to_sample(lively):
    """A voice named but not allowed to start (custom rules): its deadline gives way."""
    from lakhnes.generate import sample

    for s in sample(lively, seconds=2, seed=1, num=3, top_k=0,
                    rules=[C.Ensemble(("P1", "P2"), allowed=("P1",), max_rest=0.2)]):
        s.check()
        assert len(s.notes["P1"]) and not len(s.notes["P2"]) and not len(s.notes["TR"])


def test_activity_bias_reaches_only_the_models_top_k_ids_of_its_voice():
    """A rule's bias is added to one voice's events, and with top_k only to those among the
    model's own top_k likeliest allowed ids: it never brings in pitches the model ruled out."""
    con = Constraint(1, limit=10**9, rules=[])
    con.mask_np()
    con.masker.bias[0] = [0.0, 0.0, 2.0, 0.0]  # push TR (what Activity says after a long TR rest)
    logits = np.full((1, V.VOCAB_SIZE), -5.0, dtype=np.float32)
    tr = V.noteon_ids("TR")
    logits[0, tr[:3]] = 1.0  # the model's three TR favourites
    logits[0, V.noteon_ids("P1")[:40]] = 3.0  # and forty P1 pitches above them
    adj = con.adjust(logits, top_k=43)[0]
    assert np.array_equal(adj[tr[:3]], np.full(3, 3.0))  # in the top 43: pushed
    assert np.array_equal(adj[tr[3:]], np.full(len(tr) - 3, -5.0))  # outside: untouched
    assert np.array_equal(adj[V.noteon_ids("P1")], logits[0, V.noteon_ids("P1")])  # other voices untouched
    assert np.array_equal(con.adjust(logits)[0, tr], logits[0, tr] + 2.0)  # no top_k: every TR event
    assert np.array_equal(logits[0, tr[:3]], np.ones(3))  # the caller's logits stay as they were


# ------------------------------------------------------------------ same-pitch re-attacks


def reattacks(ids, voices=VOICES) -> int:
    """NOTEONs of the pitch already sounding on their voice, among ``voices``, in token ids (negative
    ids: waits, as in TX1 events)."""
    pitch, n = [None] * 4, 0
    for i in np.asarray(ids, dtype=np.int64).tolist():
        if i < 0 or V.VOICE_OF[i] < 0:
            continue
        v = int(V.VOICE_OF[i])
        if V.IS_NOTEON[i]:
            n += pitch[v] == i and VOICES[v] in voices
            pitch[v] = i
        else:
            pitch[v] = None
    return n


def test_same_pitch_mask():
    """A voice's sounding pitch is masked for it (not for other voices, nor once it stopped)."""
    on60, on61 = V.TOKEN_TO_ID["P1_NOTEON_60"], V.TOKEN_TO_ID["P1_NOTEON_61"]
    p2on60, w = V.TOKEN_TO_ID["P2_NOTEON_60"], V.WAIT_BASE + 99  # WT_100: past SubMsRun's 1 ms
    for rules in ([], C.default_rules()):
        con = Constraint(1, limit=10**9, rules=rules)
        con.mask_np()
        con.update(torch.tensor([on60]))
        con.mask_np()
        con.update(torch.tensor([w]))
        m = con.mask_np()[0]
        assert not m[on60] and m[on61] and m[p2on60]
        con.update(torch.tensor([V.VOICE_OFF["P1"]]))
        con.mask_np()
        con.update(torch.tensor([w]))
        assert con.mask_np()[0][on60]
    assert C.NoReattack().forbid(Stream.after([on60, w])) == [on60]


def test_same_pitch_kept_events_stay():
    """A kept voice's own re-attack (the user's) is still forced."""
    on60 = V.TOKEN_TO_ID["P1_NOTEON_60"]
    ev = np.array([on60, -4410, on60, -4410, V.VOICE_OFF["P1"], -4410])
    plan = keep_plan(tx1.events_to_score(ev), ["P1"])
    con = Constraint(1, plan=plan)
    con.mask_np()
    con.update(torch.tensor([on60]))
    con.mask_np()
    assert plan.tokens[1] == on60
    at = int(plan.times[1])  # the kept re-attack (on the vocabulary's grid)
    while con.state.streams[0].t < at:  # the longest waits allowed, up to it
        waits = np.flatnonzero(con.mask_np()[0] & V.IS_WAIT)
        con.update(torch.tensor([int(waits[-1])]))
    assert con.state.streams[0].t == at and con.state.streams[0].sounding[0]
    assert con.mask_np()[0][on60]


@pytest.fixture(scope="module")
def repeat():
    """Favours one pitch per voice, and short waits: re-attacks galore without the mask."""
    m = _tiny({(1, 100): 2.0})
    with torch.no_grad():
        for v, p in zip(VOICES, (60, 64, 48, 5), strict=True):
            m.out_bias[V.TOKEN_TO_ID[f"{v}_NOTEON_{p}"]] = 6.0
    return m


def _all_modes(model, song, seeds):
    from lakhnes.generate import accompany_rhythm, accompany_voices, prime_events, sample_tokens

    ev, _ = prime_events(song, 1.0)
    prefix = np.concatenate([[V.START], tx1.events_to_ids(ev)])
    out = {"scratch": [], "prime": [], "rhythm": [], "keep": []}
    for seed in seeds:
        out["scratch"].append(sample_tokens(model, seconds=1.0, seed=seed, top_k=0)[0])
        (new,) = sample_tokens(model, prefix=prefix, seconds=1.0, seed=seed, top_k=0)
        out["prime"].append(np.concatenate([prefix, new]))  # counted from the prime's end on
        (s,) = accompany_rhythm(model, song, seed=seed, top_k=0)
        out["rhythm"].append(tx1.score_to_events(s))
        (s,) = accompany_voices(model, song, "P1", seed=seed, top_k=0)
        out["keep"].append(tx1.score_to_events(s))
    return out, len(prefix)


def test_no_same_pitch_reattack_in_any_mode(repeat, song, monkeypatch):
    """20 seeds per mode: no model-written same-pitch re-attack; without the mask, many."""
    rhythm_song = song
    got, cut = _all_modes(repeat, rhythm_song, range(20))
    written = {"scratch": VOICES, "prime": VOICES, "rhythm": ("P1", "P2", "TR"), "keep": ("P2", "TR", "NO")}
    for mode, runs in got.items():
        for ids in runs:
            if mode == "prime":
                assert reattacks(ids, written[mode]) == reattacks(ids[:cut], written[mode]), mode
            else:
                assert reattacks(ids, written[mode]) == 0, mode
    monkeypatch.setattr(C.NoReattack, "forbid", lambda self, s: ())
    control, _ = _all_modes(repeat, rhythm_song, range(2))
    for mode in ("scratch", "rhythm", "keep"):
        assert sum(reattacks(ids, written[mode]) for ids in control[mode]) > 0, mode


def test_rhythm_still_followed_with_the_mask(repeat, song):
    """--rhythm: the same waits, NOTEOFFs and noise as the rhythm, only the pitches are new."""
    from lakhnes.generate import accompany_rhythm

    ref = quantize(song)
    for s in accompany_rhythm(repeat, song, seed=3, num=4, top_k=0):
        ev = tx1.score_to_events(s)
        assert len(ev) == len(ref)
        same = (ref < 0) | ~V.IS_NOTEON[np.clip(ref, 0, None)] | (V.VOICE_OF[np.clip(ref, 0, None)] == 3)
        assert np.array_equal(ev[same], ref[same])
        on = ~same
        assert np.array_equal(V.VOICE_OF[ev[on]], V.VOICE_OF[ref[on]]) and np.all(V.IS_NOTEON[ev[on]])


def test_no_wait_after_a_short_wait():
    """Real TX1 never has two waits in a row unless the first is the longest (WT_100000): after a
    shorter wait a voice must speak (or nothing can: then a wait may)."""
    on60, w = V.TOKEN_TO_ID["P1_NOTEON_60"], V.TOKEN_TO_ID["WT_740"]
    waits = V.IS_WAIT
    for rules in ([], C.default_rules()):
        con = Constraint(1, limit=10**9, rules=rules)
        con.mask_np()
        con.update(torch.tensor([on60]))
        assert con.mask_np()[0][waits].any()
        con.update(torch.tensor([w]))
        m = con.mask_np()[0]
        assert not m[waits].any() and m[V.VOICE_OFF["P1"]]
    longest = V.TOKEN_TO_ID[f"WT_{V.MAX_WAIT}"]  # a gap past the longest wait goes on as a second wait
    s = Stream.after([on60])
    s.update(w)
    assert s.waited
    s.update(V.VOICE_OFF["P1"])
    assert not s.waited
    s.update(longest)
    assert not s.waited
    assert not Stream.after([on60, w]).waited  # a prime may end inside a wait


# ------------------------------------------------------------------ cycles (trills, struck pitches)


def _notes(s: Stream, pitches, voice="P1", wait=V.WAIT_BASE + 99):
    for p in pitches:
        s.update(int(V.noteon_id(voice, p)))
        s.update(wait)


def test_stream_counts_cycles_and_cycles_tilt_against_long_ones():
    s = Stream()
    _notes(s, [60, 62, 60, 62, 60, 62])
    assert s.cycle[0] == [0, 4, 0, 2]  # period 2: four notes in a row repeated the one two before
    assert s.recent[0] == [int(V.noteon_id("P1", p)) for p in (62, 60, 62, 60, 62)][-4:]
    pen = C.Cycles(1.0).penalties(s)
    # going on with 60 would make the trill 7 notes: 5.0 % of real period-2 cycles are that long
    assert set(pen) == {int(V.noteon_id("P1", 60))} and -2.5 < pen[int(V.noteon_id("P1", 60))] < -2.1
    assert C.Cycles(0.5).penalties(s)[int(V.noteon_id("P1", 60))] == pytest.approx(pen[int(V.noteon_id("P1", 60))] / 2)
    assert C.Cycles(0.0).penalties(s) is None
    t = Stream()
    _notes(t, [60, 62, 64])  # no cycle yet
    _notes(t, [40, 40, 40], voice="TR")  # one pitch struck three times (a note-off between)
    pen = C.Cycles(1.0).penalties(t)
    assert list(pen) == [int(V.noteon_id("TR", 40))] and -1.5 < pen[int(V.noteon_id("TR", 40))] < -1.2  # S_1(4): 12.7 %
    u = Stream()
    _notes(u, [5, 5, 5, 5, 5, 5], voice="NO")
    assert C.Cycles().penalties(u) is None  # the noise voice's patterns are its own


class _Favours:
    """A toy model: the same logits every step, ``HIGH`` for the ids in ``FAVOURED``, ``LOW`` for the rest."""

    FAVOURED: list[int] = []
    LOW, HIGH = -6.0, 3.0

    def __init__(self, b):
        self.logits = self._row(b)

    def _row(self, b):
        x = np.full((b, V.VOCAB_SIZE), self.LOW)
        x[:, self.FAVOURED] = self.HIGH
        return x

    def step(self, ids):
        return self._row(len(ids))


class _Trill(_Favours):
    """A model that favours P1 playing 60 and 62 and waiting, nothing else."""

    FAVOURED = [int(V.noteon_id("P1", 60)), int(V.noteon_id("P1", 62)), V.WAIT_BASE + 99]
    LOW, HIGH = -4.0, 4.0


def _longest_trill(ids) -> int:
    """The most P1 notes in a row that alternate between two pitches."""
    p = [int(V.PITCH_OF[i]) for i in ids if V.IS_NOTEON[i] and V.VOICE_OF[i] == 0]
    best = run = 0
    for i in range(2, len(p)):
        run = run + 1 if p[i] == p[i - 2] != p[i - 1] else 0
        best = max(best, run + 2 if run else 0)
    return best


def _songs(model, rules):
    """Four 20-s songs from a toy ``model`` class under ``rules`` (temperature 1, no top-k, seed 0)."""
    from lakhnes.decoding.loop import run
    from lakhnes.decoding.sampler import Sampler

    return run(model(4), Constraint(4, limit=20 * SR, rules=rules), Sampler(temperature=1.0, top_k=None, seed=0))


def test_cycles_end_trills_the_model_would_play_on():
    plain = [_longest_trill(x) for x in _songs(_Trill, [])]
    tilted = [_longest_trill(x) for x in _songs(_Trill, [C.Cycles()])]
    assert min(plain) > 80  # without the prior: trills of 86-139 notes
    assert max(tilted) < 48  # real period-2 cycles of 48 notes or more: 0.08 %


def test_stream_keeps_the_songs_iois_and_pulse_tilts_against_new_ones():
    s = Stream()
    for _ in range(20):  # P1 strikes every 6 frames (a note-off between)
        s.update(int(V.noteon_id("P1", 60)))
        s.update(V.TOKEN_TO_ID["WT_2200"])  # 3 frames - 5 samples
        s.update(int(V.VOICE_OFF["P1"]))
        s.update(V.TOKEN_TO_ID["WT_2200"])
    assert s.n_iois == 19 and s.iois == 1 << 6
    assert s.t - s.onset[0] == 4400  # 5.99 frames: a note-on now repeats the song's IOI of 6 frames
    assert C.Pulse(1.0).penalties(s) is None
    s.update(V.TOKEN_TO_ID["WT_730"])  # 7 frames: new to the song
    pen = C.Pulse(1.0).penalties(s)
    p1 = (int(V.noteon_ids("P1")[0]), int(V.noteon_ids("P1")[-1]) + 1)
    q = C.IOI_NOVELTY["mel"][list(C.NOVELTY_COUNTS).index(16)]  # 19 IOIs so far
    assert list(pen) == [p1] and pen[p1] == pytest.approx(np.log(q / 0.5))
    assert C.Pulse(0.5).penalties(s)[p1] == pytest.approx(pen[p1] / 2)
    # P2, which struck once 6 frames ago, may strike again: that IOI is the song's, if not its own
    s.update(int(V.noteon_id("P2", 64)))
    s.update(V.TOKEN_TO_ID["WT_4400"])
    pen = C.Pulse(1.0).penalties(s)
    assert list(pen) == [p1] and s.n_iois == 19  # P1 at 13 frames: new
    s.update(V.TOKEN_TO_ID["WT_100000"])  # over IOI_MAX frames: neither kept as a rhythm nor tilted
    assert C.Pulse(1.0).penalties(s) is None
    t = Stream()
    t.update(int(V.noteon_id("NO", 5)))
    t.update(V.TOKEN_TO_ID["WT_730"])
    assert C.Pulse(1.0).penalties(t) is None  # the song's first IOI: every one is new


class _Scatter(_Favours):
    """A model that favours P1 or P2 striking 60 or 62 and waits of 1 to 9 frames alike."""

    WAITS = [V.TOKEN_TO_ID[f"WT_{w}"] for w in (730, 1500, 2200, 2900, 3700, 4400, 5100, 5900, 6600)]
    FAVOURED = [int(V.noteon_id(v, p)) for v in ("P1", "P2") for p in (60, 62)] + WAITS


def _p1_iois(ids) -> int:
    """How many distinct P1 inter-onset intervals (whole frames) the ids make."""
    t, on = 0, []
    for i in ids:
        t += int(V.WAIT_OF[i])
        if V.IS_NOTEON[i] and V.VOICE_OF[i] == 0:
            on.append(t)
    return len(set(((np.diff(on) + SR // 120) // (SR // 60)).tolist()))


def test_pulse_keeps_a_voice_to_fewer_iois():
    plain = [_p1_iois(x) for x in _songs(_Scatter, [])]
    tilted = [_p1_iois(x) for x in _songs(_Scatter, [C.Pulse(1.0)])]
    assert sum(tilted) < 0.9 * sum(plain), (plain, tilted)  # 93 against 112 distinct IOIs over 4 songs


def test_default_rules_carry_the_priors_at_the_realism_benchmarks_strengths():
    pulses = [r for r in C.default_rules() if isinstance(r, C.Pulse)]
    assert [r.strength for r in pulses] == [C.PULSE] == [0.75]
    assert [r.strength for r in C.default_rules() if isinstance(r, C.Cycles)] == [C.CYCLES] == [0.75]
    assert not any(isinstance(r, C.Key) for r in C.default_rules())  # the Key prior is for the asking


def test_stream_finds_the_songs_key_and_key_tilts_against_other_pitch_classes():
    s = Stream()
    _notes(s, [60, 62, 64, 65, 67, 69, 71])  # C major: 7 melodic notes, one short of KEY_NOTES
    assert s.n_mel == 7 and s.key == 0 and s.in_key[0] == 7
    assert C.Key().penalties(s) is None
    _notes(s, [36], voice="TR")
    pen = C.Key(1.0).penalties(s)
    assert sorted(k.voice for k in pen) == [0, 1, 2] and set(pen.values()) == {-1.0}
    assert {int(V.PITCH_OF[i]) % 12 for k in pen for i in k.ids} == {1, 3, 6, 8, 10}
    assert int(V.noteon_id("P2", 66)) in next(k for k in pen if k.voice == 1).ids.tolist()
    _notes(s, [5, 5], voice="NO")  # the noise voice has no key
    assert s.n_mel == 8
    _notes(s, [66, 61, 66, 61, 66, 61, 66, 61, 66], voice="P2")  # F# and C# overtake: D major (root 2)
    assert s.key == 2
    assert C.Key(0.0).penalties(s) is None
    t = s.copy()
    _notes(t, [70], voice="P1")
    assert t.n_mel == s.n_mel + 1 and t.in_key != s.in_key


class _Chromatic(_Favours):
    """A model that favours P1 striking any of the 12 pitches 60-71 alike, and waiting."""

    FAVOURED = [int(V.noteon_id("P1", p)) for p in range(60, 72)] + [V.TOKEN_TO_ID["WT_2200"]]


def _in_best_scale(ids) -> float:
    """The share of P1's notes in the major scale that holds most of them."""
    pcs = np.bincount([int(V.PITCH_OF[i]) % 12 for i in ids if V.IS_NOTEON[i] and V.VOICE_OF[i] == 0], minlength=12)
    return max(sum(pcs[(r + k) % 12] for k in (0, 2, 4, 5, 7, 9, 11)) for r in range(12)) / pcs.sum()


def test_key_keeps_a_voice_to_its_scale():
    plain = [_in_best_scale(x) for x in _songs(_Chromatic, [])]
    tilted = [_in_best_scale(x) for x in _songs(_Chromatic, [C.Key(1.0)])]
    # 7 of 12 alike: 0.61-0.66 in the best-fitting scale; out-of-scale odds at e^-1: 0.76-0.81
    assert max(plain) < 0.7 < min(tilted), (plain, tilted)
