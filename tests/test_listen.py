"""The listening studies' core: the random model, clips and loudness, study setup, batches, the
SQLite store (restart and a killed writer), the statistics (hand-computed), the CLI."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lakhnes import synth
from lakhnes.cli import main
from lakhnes.core import tx1
from lakhnes.core import vocab as V
from lakhnes.core.score import SAMPLE_RATE
from lakhnes.errors import InvalidInputError
from lakhnes.formats.midi import read_midi
from lakhnes.listen import clips as C
from lakhnes.listen import results as R
from lakhnes.listen.store import ANSWER_COLUMNS, Conflict, NotFound, Store, answers_csv
from lakhnes.listen.study import RANDOM, REAL, Settings, Study, SystemSpec, compose_batch, setup_study
from tests.listen_util import FIXTURES, SYSTEMS, make_study


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    return make_study(tmp_path_factory.mktemp("listen") / "study")


# ----------------------------------------------------------------------------- the random model


def test_allowed_ids_follow_the_tx1_rules():
    nothing = C.allowed_ids(np.zeros(4, dtype=bool), -1)
    # 370 waits + every NOTEON (P1 76, P2 76, TR 88, NO 16); no NOTEOFF (nothing sounds), no <S>
    assert len(nothing) == 370 + 76 + 76 + 88 + 16 == 626
    assert V.START not in nothing and not V.IS_NOTEOFF[nothing].any()
    # P1 and P2 sound and P2 just spoke at this instant: only TR/NO NOTEONs and waits remain (no
    # NOTEOFF: the sounding voices are at or before P2 in the order)
    after_p2 = C.allowed_ids(np.array([True, True, False, False]), 1)
    assert len(after_p2) == 370 + 88 + 16
    # after a wait, the sounding voices may stop
    after_wait = C.allowed_ids(np.array([True, False, True, False]), -1)
    assert len(after_wait) == 626 + 2
    assert {V.VOICE_OFF["P1"], V.VOICE_OFF["TR"]} <= set(after_wait.tolist())
    # a voice's sounding pitch is no NOTEON for it (a same-pitch re-attack)
    on60 = V.TOKEN_TO_ID["P1_NOTEON_60"]
    pitched = C.allowed_ids(np.array([True, False, True, False]), -1, [on60, -1, -1, -1])
    assert len(pitched) == 626 + 2 - 1 and on60 not in pitched


def test_random_model_matches_the_decoders_constraint_masks():
    torch = pytest.importorskip("torch")
    from lakhnes.decoding.constraint import Constraint

    ids = C.random_ids(3.0, np.random.default_rng(5))
    con = Constraint(1, limit=10**9)
    sounding, last, pitch, waited = np.zeros(4, dtype=bool), -1, [-1] * 4, False
    for i in ids.tolist():
        mine = np.zeros(V.VOCAB_SIZE, dtype=bool)
        mine[C.allowed_ids(sounding, last, pitch, waited)] = True
        assert np.array_equal(con.mask()[0], mine)
        assert mine[i]
        con.update(torch.tensor([i]))
        waited = bool(V.IS_WAIT[i]) and int(V.WAIT_OF[i]) < V.MAX_WAIT
        if V.IS_WAIT[i]:
            last = -1
        else:
            sounding[V.VOICE_OF[i]], last = bool(V.IS_NOTEON[i]), int(V.VOICE_OF[i])
            pitch[last] = i


def test_random_model_is_uniform_and_makes_valid_songs():
    rng = np.random.default_rng(0)
    first = [C.random_ids(0.01, rng)[0] for _ in range(3000)]
    waits = np.mean(V.IS_WAIT[first])
    # 370 of the 626 allowed ids are waits: 0.591, standard deviation sqrt(.591 * .409 / 3000) = 0.009
    assert abs(waits - 370 / 626) < 0.036
    song = C.random_song(4.0, np.random.default_rng(1))
    assert song.end == 4 * SAMPLE_RATE and song.num_notes > 0
    song.check()
    tx1.check_ids(tx1.events_to_ids(tx1.score_to_events(song)))
    assert len(synth.render(song)) == 4 * SAMPLE_RATE
    assert C.random_song(4.0, np.random.default_rng(1)) == song  # seeded


# ----------------------------------------------------------------------------- loudness and clips


def test_match_loudness_levels_fades_and_limits():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    loud, quiet = 0.5 * np.sign(np.sin(2 * np.pi * 220 * t)) + 0.1, 0.01 * np.sin(2 * np.pi * 330 * t)
    for x in (loud, quiet):
        y, gain, limited = C.match_loudness(x, -24.0)
        assert abs(C.rms_dbfs(y) - -24.0) < 1e-6 and not limited
        assert y[0] == 0.0 and y[-1] == 0.0 and abs(y.mean()) < 1e-3
    spike = np.zeros(SAMPLE_RATE)
    spike[SAMPLE_RATE // 2] = 0.3  # one click: its RMS target would put the peak far above full scale
    y, gain, limited = C.match_loudness(spike, -24.0)
    assert limited and abs(np.abs(y).max() - C.PEAK) < 1e-9 and C.rms_dbfs(y) < -24.0
    with pytest.raises(InvalidInputError, match="silent"):
        C.match_loudness(np.zeros(1000))


def test_make_clips_slices_renders_and_matches(tmp_path):
    songs = C.find_songs(FIXTURES / "nesmdb")
    clips, skipped = C.make_clips(songs, 6, 0.75, np.random.default_rng(3), tmp_path, root=FIXTURES / "nesmdb")
    assert len(clips) == 6 and len({c["id"] for c in clips}) == 6
    reasons = dict(skipped)
    assert "shorter than a clip" in reasons["012_AlphaMission_00_01Start.mid"]  # 0.68 s long
    assert reasons["402_ZeldanoDensetsu_09_10SaveScreenPrototype.mid"].startswith("silent")  # no notes
    for c in clips:
        audio, sr = sf.read(tmp_path / f"{c['id']}.wav", dtype="float64")
        assert sr == SAMPLE_RATE and len(audio) == round(0.75 * SAMPLE_RATE)
        # the file is the synth's rendering of that slice of that song, matched: compare exactly
        score = read_midi(FIXTURES / "nesmdb" / c["song"])
        want, gain, _ = C.match_loudness(C.render_slice(score, c["offset_samples"], len(audio)))
        assert np.abs(audio - want).max() <= 1.01 / 32767 and gain == pytest.approx(c["gain_db"], abs=0.01)
        if not c["limited"]:
            assert abs(C.rms_dbfs(audio) - C.TARGET_DBFS) < 0.05
    again, _ = C.make_clips(songs, 6, 0.75, np.random.default_rng(3), tmp_path / "again", root=FIXTURES / "nesmdb")
    assert [(c["song"], c["offset"]) for c in again] == [(c["song"], c["offset"]) for c in clips]
    with pytest.raises(InvalidInputError, match="only 0 of 2 clips"):
        C.make_clips(songs, 2, 30.0, np.random.default_rng(0), tmp_path)  # no fixture is 30 s long


def test_wav_songs_are_sliced_as_audio(tmp_path):
    score = read_midi(FIXTURES / "nesmdb" / "324_SuperMarioBros_3_00_01World1Map.mid")
    audio = synth.render(score.slice(0, 3 * SAMPLE_RATE))
    stereo = np.stack([audio, audio], 1)[::2]  # 22.05 kHz stereo
    sf.write(tmp_path / "song.wav", stereo, SAMPLE_RATE // 2)
    loaded = C.load_song(tmp_path / "song.wav")
    assert loaded.ndim == 1 and len(loaded) == 3 * SAMPLE_RATE
    clips, _ = C.make_clips([tmp_path / "song.wav"], 2, 1.0, np.random.default_rng(0), tmp_path)
    assert [sf.info(tmp_path / f"{c['id']}.wav").frames for c in clips] == [SAMPLE_RATE] * 2
    (tmp_path / "bad.wav").write_text("not audio")
    with pytest.raises(InvalidInputError, match=r"bad\.wav: cannot read WAV"):
        C.load_song(tmp_path / "bad.wav")


# ----------------------------------------------------------------------------- setup


def test_setup_writes_a_complete_study(study):
    meta = json.loads((study.root / "study.json").read_text())
    assert sorted(os.listdir(study.root)) == ["clips", "songs", "study.json"]
    assert study.systems == [REAL, RANDOM, *SYSTEMS]
    count = Counter((c["test"], c["system"]) for c in meta["clips"])
    # 3 clips per pool; the Turing test's real pool holds 3 × (2 systems + 1)
    assert count == {("turing", REAL): 9, ("turing", RANDOM): 3, ("turing", SYSTEMS[0]): 3,
                     ("turing", SYSTEMS[1]): 3, ("preference", REAL): 3, ("preference", RANDOM): 3,
                     ("preference", SYSTEMS[0]): 3, ("preference", SYSTEMS[1]): 3}
    assert len(os.listdir(study.root / "clips")) == len(meta["clips"])
    assert sorted(os.listdir(study.root / "songs" / RANDOM)) == ["000.mid", "001.mid", "002.mid"]
    assert {c["seconds"] for c in meta["clips"] if c["test"] == "turing"} == {0.3}
    for c in meta["clips"]:
        assert sf.info(study.clip_path(c["id"])).frames == round(c["seconds"] * SAMPLE_RATE)
    assert "402_ZeldanoDensetsu_09_10SaveScreenPrototype.mid" in dict(meta["skipped"][REAL])
    assert study.compared("turing") == list(SYSTEMS) and study.compared("preference") == [REAL, *SYSTEMS]


def test_setup_is_seeded_and_refuses_bad_input(study, tmp_path):
    other = make_study(tmp_path / "again")
    key = lambda s: sorted((c["test"], c["system"], c["song"], c["offset"]) for c in s.clips.values())  # noqa: E731
    assert key(other) == key(study)
    with pytest.raises(InvalidInputError, match="never overwritten"):
        make_study(study.root)
    spec = [SystemSpec("a", folder=FIXTURES / "tx1")]
    with pytest.raises(InvalidInputError, match="reserved"):
        setup_study(tmp_path / "x", FIXTURES / "nesmdb", [SystemSpec("random", folder=FIXTURES / "tx1")])
    with pytest.raises(InvalidInputError, match="two systems have this name"):
        setup_study(tmp_path / "x", FIXTURES / "nesmdb", spec + spec)
    with pytest.raises(InvalidInputError, match=r"^clips: 0 is outside"):
        setup_study(tmp_path / "x", FIXTURES / "nesmdb", spec, Settings(clips=0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="empty: no songs here"):
        setup_study(tmp_path / "x", tmp_path / "empty", spec)
    # a system whose only song is 6.5 s long cannot give 8-s clips: the error names the folder, the
    # test, the system and why; nothing is left behind
    short = tmp_path / "short"
    short.mkdir()
    (short / "a.mid").write_bytes((FIXTURES / "nesmdb" / "259_Pac_Man_01_02Intermission.mid").read_bytes())
    with pytest.raises(InvalidInputError, match=r"short: turing test, system 'a': only 0 of 2 clips .*shorter"):
        setup_study(tmp_path / "x", FIXTURES / "nesmdb", [SystemSpec("a", folder=short)],
                    Settings(clips=2, turing_seconds=8))
    assert not (tmp_path / "x").exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".x")]


# ----------------------------------------------------------------------------- batches


def pools(systems=("s1", "s2", "s3"), n=12):
    out = {REAL: [f"real{i}" for i in range(n)], RANDOM: [f"rand{i}" for i in range(n)]}
    return out | {s: [f"{s}_{i}" for i in range(n)] for s in systems}


def test_turing_batch_balances_systems_and_hides_two_controls():
    sides, where = Counter(), set()
    for seed in range(20):
        batch = compose_batch("turing", pools(), rng=np.random.default_rng(seed))
        assert len(batch) == 10
        controls = [p for p in batch if p["control"]]
        assert len(controls) == 2 and all({p["system_a"], p["system_b"]} == {REAL, RANDOM} for p in controls)
        main_pairs = [p for p in batch if not p["control"]]
        assert all(REAL in (p["system_a"], p["system_b"]) for p in main_pairs)
        other = Counter(p["system_b"] if p["system_a"] == REAL else p["system_a"] for p in main_pairs)
        assert sorted(other.values()) == [2, 3, 3] and RANDOM not in other  # 8 pairs over 3 systems
        clips = [c for p in batch for c in (p["clip_a"], p["clip_b"])]
        assert len(set(clips)) == 20  # no clip twice in a batch
        for p in batch:
            assert p["clip_a"].startswith(p["system_a"][:4]) and p["clip_b"].startswith(p["system_b"][:4])
        sides.update(p["system_a"] == REAL for p in batch)
        where.update(k for k, p in enumerate(batch) if p["control"])
    assert 0.4 < sides[True] / 200 < 0.6  # the real clip is A about half the time
    assert len(where) >= 8  # the controls sit anywhere in the batch


def test_preference_batch_pairs_distinct_systems_and_prefers_unheard_clips():
    p = pools(("s1", "s2"), n=4)
    batch = compose_batch("preference", p, rng=np.random.default_rng(1))
    main_pairs = [q for q in batch if not q["control"]]
    assert len(main_pairs) == 8 and sum(q["control"] for q in batch) == 2
    combos = Counter(frozenset((q["system_a"], q["system_b"])) for q in main_pairs)
    # real, s1, s2: three system pairs, 8 pairs in turns: 3 + 3 + 2; never a system with itself
    assert sorted(combos.values()) == [2, 3, 3] and all(len(c) == 2 for c in combos)
    assert all(RANDOM not in c for c in combos)
    # heard clips come last: with real0-real2 heard once, the 4 real draws take real3 first
    heard = {"real0": 1, "real1": 1, "real2": 1}
    for seed in range(10):
        batch = compose_batch("preference", p, rng=np.random.default_rng(seed), heard=heard)
        reals = [q[f"clip_{s}"] for q in batch for s in "ab" if q[f"system_{s}"] == REAL]
        assert "real3" in reals
    assert compose_batch("preference", p, rng=np.random.default_rng(7)) == \
        compose_batch("preference", p, rng=np.random.default_rng(7))
    with pytest.raises(InvalidInputError, match="no system"):
        compose_batch("turing", {REAL: ["r"], RANDOM: ["x"]}, rng=np.random.default_rng(0))


def test_study_batches_are_seeded_per_listener(study):
    a = study.compose("turing", "aaaa", 1, {})
    assert a == study.compose("turing", "aaaa", 1, {}) and a != study.compose("turing", "bbbb", 1, {})
    for p in a:
        for s in "ab":
            c = study.clips[p[f"clip_{s}"]]
            assert c["system"] == p[f"system_{s}"] and c["test"] == "turing"
            assert (p[f"song_{s}"], p[f"offset_{s}"]) == (c["song"], c["offset"])


# ----------------------------------------------------------------------------- the store


def test_store_batches_answers_and_restart(study, tmp_path):
    db = tmp_path / "answers.sqlite"
    store = Store(db)
    lid = store.new_listener()
    compose = lambda n, heard: study.compose("turing", lid, n, heard)  # noqa: E731
    b = store.start_batch(lid, "turing", compose)
    assert b["number"] == 1 and b["next"] == 0 and len(b["pairs"]) == 10
    assert store.start_batch(lid, "turing", compose)["id"] == b["id"]  # the open batch, not a new one
    for k in range(4):
        out = store.answer(lid, b["id"], k, "a")
        assert out == {"next": k + 1, "finished": False, "batches_done": 0}
    assert store.answer(lid, b["id"], 3, "a")["next"] == 4  # the same answer again: harmless
    with pytest.raises(Conflict):
        store.answer(lid, b["id"], 3, "b")
    with pytest.raises(NotFound):
        store.answer("0" * 16, b["id"], 4, "a")
    with pytest.raises(NotFound):
        store.answer(lid, b["id"], 10, "a")
    del store  # "the server stops": a new Store on the same file resumes the batch
    store = Store(db)
    again = store.start_batch(lid, "turing", compose)
    assert again["id"] == b["id"] and again["next"] == 4
    assert [p["answered"] for p in again["pairs"]] == [True] * 4 + [False] * 6
    assert [p["token_a"] for p in again["pairs"]] == [p["token_a"] for p in b["pairs"]]
    for k in range(4, 10):
        out = store.answer(lid, b["id"], k, "b")
    assert out == {"next": None, "finished": True, "batches_done": 1}
    rows = store.answers()
    assert len(rows) == 10 and [r["pair"] for r in rows] == list(range(10))
    for r, p in zip(rows, b["pairs"], strict=True):
        assert r["chosen_system"] == p[f"system_{r['choice']}"] and r["batch_number"] == 1
        assert r["correct"] == int(r["chosen_system"] == REAL)
        assert (r["offset_a"], r["song_b"], r["control"]) == (p["offset_a"], p["song_b"], p["control"])
    assert store.clip_of(b["pairs"][2]["token_b"]) == b["pairs"][2]["clip_b"] and store.clip_of("x") is None
    # the next batch is number 2, and it is told what the listener heard
    seen = {}
    b2 = store.start_batch(lid, "turing", lambda n, heard: seen.update(n=n, heard=heard) or compose(n, heard))
    assert b2["number"] == 2 and seen["n"] == 2
    assert sum(seen["heard"].values()) == 20 and set(seen["heard"]) == {c for p in b["pairs"]
                                                                      for c in (p["clip_a"], p["clip_b"])}
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    text = answers_csv(rows, {rows[0]["id"]})
    lines = text.splitlines()
    assert lines[0].split(",") == [*ANSWER_COLUMNS, "counted"] and len(lines) == 11
    assert lines[1].endswith(",1") and lines[2].endswith(",0")


WRITER = """
import sys
from lakhnes.listen.store import Store
from lakhnes.listen.study import Study
study, store = Study(sys.argv[1]), Store(sys.argv[2])
lid = store.new_listener()
b = store.start_batch(lid, "preference", lambda n, h: study.compose("preference", lid, n, h))
for k in range(10):
    store.answer(lid, b["id"], k, "a")
    print(k, flush=True)
    if k == 5:
        sys.stdin.readline()  # wait here, mid-batch, to be killed
"""


def test_answers_survive_a_killed_server(study, tmp_path):
    db = tmp_path / "answers.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(study.root), str(db)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    lines = [proc.stdout.readline() for _ in range(6)]
    assert lines[-1].strip() == "5", lines
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = Store(db)
    rows = store.answers()
    assert [r["pair"] for r in rows] == list(range(6))  # every answer acknowledged is there
    (lid,) = {r["listener"] for r in rows}
    b = store.open_batch(lid, "preference")
    assert b["next"] == 6 and b["finished"] is None
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ----------------------------------------------------------------------------- statistics


def row(i, listener, test, batch, control, a, b, chosen):
    """An answer row as the store writes it."""
    correct = int(chosen == REAL) if test == "turing" or control else None
    return {"id": i, "listener": listener, "test": test, "batch": batch, "control": int(control),
            "system_a": a, "system_b": b, "chosen_system": chosen, "correct": correct}


def turing_rows():
    """Batches of 4 pairs (1 control). L1: 2 batches, controls right; X right, X right, Y wrong |
    X wrong, Y right, Y wrong. L2: a wrong control. L3: one batch only. L4: 2 batches, controls right:
    X, X, X right | Y wrong, Y wrong, X right; and an unfinished third batch (X wrong)."""
    rows, i = [], 0

    def add(listener, batch, pairs, control=True, control_right=True):
        nonlocal i
        if control:
            i += 1
            rows.append(row(i, listener, "turing", batch, True, REAL, RANDOM, REAL if control_right else RANDOM))
        for system, right in pairs:
            i += 1
            rows.append(row(i, listener, "turing", batch, False, system, REAL, REAL if right else system))

    add("L1", "b1", [("X", 1), ("X", 1), ("Y", 0)])
    add("L1", "b2", [("X", 0), ("Y", 1), ("Y", 0)])
    add("L2", "b3", [("X", 1), ("X", 1), ("Y", 1)])
    add("L2", "b4", [("X", 1), ("Y", 1), ("Y", 1)], control_right=False)
    add("L3", "b5", [("X", 0), ("X", 0), ("Y", 0)])
    add("L4", "b6", [("X", 1), ("X", 1), ("X", 1)])
    add("L4", "b7", [("Y", 0), ("Y", 0), ("X", 1)])
    add("L4", "b8", [("X", 0)])
    return rows


def test_turing_statistics_by_hand():
    s = Settings(pairs=4, controls=1, turing_min_batches=2)
    r = R.analyse_test(turing_rows(), "turing", s, ["X", "Y"])
    assert (r["listeners"], r["qualified"], r["failed_controls"], r["too_few_batches"]) == (4, 2, 1, 1)
    assert r["answers"] == 30 and r["counted"] == 12  # L1's 6 and L4's 6 (not its unfinished batch)
    x, y = r["systems"]["X"], r["systems"]["Y"]
    # X: L1 2 of 3 + L4 4 of 4 = 6/7 = 0.857143; s.e. sqrt(6/7 * 1/7 / 7) = 0.132260
    assert (x["k"], x["n"]) == (6, 7) and x["p"] == pytest.approx(0.857143, abs=1e-6)
    assert x["se"] == pytest.approx(0.132260, abs=1e-6)
    # Y: L1 1 of 3 + L4 0 of 2 = 1/5 = 0.2; s.e. sqrt(0.2 * 0.8 / 5) = 0.178885
    assert (y["k"], y["n"]) == (1, 5) and y["se"] == pytest.approx(0.178885, abs=1e-6)
    (d,) = r["differences"]
    # z = 0.657143 / sqrt(0.132260² + 0.178885²) = 2.95385; p = erfc(2.95385 / sqrt 2) = 0.003138
    assert d["z"] == pytest.approx(2.95385, abs=1e-5) and d["p_value"] == pytest.approx(0.003138, abs=1e-6)
    assert d["significant"]
    # X vs chance: z = (0.857143 - 0.5) / sqrt(0.25 / 7) = 1.88982, p = 0.0588: not significant
    assert x["vs_chance"]["z"] == pytest.approx(1.88982, abs=1e-5)
    assert x["vs_chance"]["p_value"] == pytest.approx(0.058782, abs=1e-6)
    # with one batch enough, L3 counts too (X 0 of 2, Y 0 of 1)
    r1 = R.analyse_test(turing_rows(), "turing", Settings(pairs=4, controls=1, turing_min_batches=1), ["X", "Y"])
    assert (r1["systems"]["X"]["n"], r1["systems"]["Y"]["k"], r1["qualified"]) == (9, 1, 3)


def test_preference_statistics_by_hand():
    rows = []
    for i, (who, batch, control, a, b, chosen) in enumerate([
        ("L1", "p1", True, REAL, RANDOM, REAL), ("L1", "p1", False, REAL, "X", "X"),
        ("L1", "p1", False, "X", "Y", "X"), ("L1", "p1", False, REAL, "Y", REAL),
        ("L2", "p2", True, RANDOM, REAL, RANDOM), ("L2", "p2", False, "X", "Y", "Y"),
        ("L2", "p2", False, REAL, "X", "X"), ("L2", "p2", False, "Y", REAL, "Y"),
        ("L3", "p3", True, REAL, RANDOM, REAL), ("L3", "p3", False, "X", "Y", "X"),
        ("L3", "p3", False, REAL, "X", REAL), ("L3", "p3", False, REAL, "Y", "Y"),
    ]):
        rows.append(row(i, who, "preference", batch, control, a, b, chosen))
    r = R.analyse_test(rows, "preference", Settings(pairs=4, controls=1), [REAL, "X", "Y"])
    assert (r["qualified"], r["failed_controls"], r["counted"]) == (2, 1, 6)  # L2 preferred random
    got = {s: (v["k"], v["n"]) for s, v in r["systems"].items()}
    # X won vs real and vs Y (L1), vs Y (L3), lost to real (L3): 3/4; Y: 1/4; real: 2/4
    assert got == {REAL: (2, 4), "X": (3, 4), "Y": (1, 4)}
    assert r["systems"]["X"]["se"] == pytest.approx(0.216506, abs=1e-6)  # sqrt(.75 * .25 / 4)
    diff = {(d["a"], d["b"]): d for d in r["differences"]}
    # X vs Y: z = 0.5 / sqrt(2 × 0.216506²) = 1.63299, p = 0.10247
    assert diff["X", "Y"]["z"] == pytest.approx(1.63299, abs=1e-5)
    assert diff["X", "Y"]["p_value"] == pytest.approx(0.10247, abs=1e-5) and not diff["X", "Y"]["significant"]
    # real vs X: z = -0.25 / sqrt(0.25² + 0.216506²) = -0.75593
    assert diff[REAL, "X"]["z"] == pytest.approx(-0.75593, abs=1e-5)


def test_z_test_edges_and_empty_systems():
    assert R.z_test(1.0, 0.0, 1.0, 0.0) == (0.0, 1.0)
    z, p = R.z_test(1.0, 0.0, 0.0, 0.0)
    assert z == math.inf and p == 0.0
    r = R.analyse_test([], "turing", Settings(), ["X"])
    assert r["systems"]["X"] == {"k": 0, "n": 0, "p": None, "se": None} and r["differences"] == []
    png = R.figure_png(R.analyse(turing_rows(), Settings(pairs=4, controls=1, turing_min_batches=2),
                                 {"turing": ["X", "Y"], "preference": [REAL, "X"]}))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


# ----------------------------------------------------------------------------- the CLI


def test_cli_setup_results_and_errors(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["listen", "setup", "--real", str(FIXTURES / "nesmdb"), "-o", str(out)]) == 2
    assert "at least one --system" in capsys.readouterr().err
    assert main(["listen", "setup", "--real", str(FIXTURES / "nesmdb"), "--system", "a", "-o", str(out)]) == 2
    assert "write NAME=DIR_OR_MODEL" in capsys.readouterr().err
    assert main(["listen", "setup", "--real", str(FIXTURES / "nesmdb"), "--system", "a=tests/none", "-o",
                 str(out)]) == 2
    assert main(["listen", "setup", "--real", str(FIXTURES / "nesmdb"), "--system", f"a={FIXTURES / 'tx1'}",
                 "--pairs", "3", "--controls", "3", "-o", str(out)]) == 2
    assert "--controls: 3 must be" in capsys.readouterr().err
    assert main(["listen", "setup", "--real", str(FIXTURES / "nesmdb"), "--system", f"tx={FIXTURES / 'tx1'}",
                 "--clips", "2", "--turing-seconds", "0.3", "--preference-seconds", "0.4", "--tests", "turing",
                 "-o", str(out)]) == 0
    assert "lakhnes listen serve" in capsys.readouterr().out
    study = Study(out)
    assert study.settings.tests == ("turing",) and study.pools("preference") == {}
    store = Store(out / "answers.sqlite")
    lid = store.new_listener()
    for _ in range(3):
        b = store.start_batch(lid, "turing", lambda n, h: study.compose("turing", lid, n, h))
        for p in b["pairs"]:  # always name the real clip: every control right, accuracy 1
            store.answer(lid, b["id"], p["pair"], "a" if p["system_a"] == REAL else "b")
    csv, png = tmp_path / "a.csv", tmp_path / "r.png"
    assert main(["listen", "results", str(out), "--csv", str(csv), "--png", str(png)]) == 0
    text = capsys.readouterr().out
    assert "| tx | 24 | 1.000 ± 0.000 | < 0.001 |" in text and "1 counted" in text
    assert len(csv.read_text().splitlines()) == 31 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["listen", "results", str(out), "--turing-min-batches", "4"]) == 0
    assert "| tx | 0 | — | — |" in capsys.readouterr().out
    assert main(["listen", "results", str(tmp_path)]) == 1
    assert "not a study folder" in capsys.readouterr().err
    assert main(["listen", "setup", "--real", str(FIXTURES / "nesmdb"), "--system", f"tx={FIXTURES / 'tx1'}",
                 "-o", str(out)]) == 1
    assert "never overwritten" in capsys.readouterr().err


def test_cli_setup_generates_a_model_systems_songs(tmp_path, capsys, one_torch_thread):
    torch = pytest.importorskip("torch")
    from lakhnes.models import build_model, save_model

    torch.manual_seed(0)
    model = save_model(build_model("transformer_xl", "tiny"), tmp_path / "model")
    out = tmp_path / "study"
    assert main(["listen", "setup", "--real", str(FIXTURES / "nesmdb"), "--system", f"tiny={model}",
                 "--clips", "2", "--turing-seconds", "0.3", "--preference-seconds", "0.4", "--song-seconds", "1",
                 "--threads", "1", "-o", str(out)]) == 0, capsys.readouterr().err
    study = Study(out)
    entry = next(s for s in study.meta["systems"] if s["name"] == "tiny")
    assert entry["kind"] == "model" and entry["model"] == str(model.resolve()) and entry["temperature"] == 0.95
    songs = sorted((out / "songs" / "tiny").glob("*.mid"))
    assert len(songs) == 2 and all(read_midi(p).end == SAMPLE_RATE for p in songs)
    assert len(study.pools("turing")["tiny"]) == 2 and len(study.pools("preference")["tiny"]) == 2


def test_the_study_code_does_not_import_torch():
    code = ("import sys, lakhnes.listen.clips, lakhnes.listen.study, lakhnes.listen.store, lakhnes.listen.results, "
            "lakhnes.studio.listen_routes, lakhnes.cli.listen; print(sorted(m for m in sys.modules if m == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
