"""Fast tests of the realism benchmark's measures on hand-made songs (benchmarks/bench_realism.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_realism.py"


def _load():
    name = "bench_realism_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look the module up
    spec.loader.exec_module(mod)
    return mod


br = _load()
SR, FRAME = br.SR, br.FRAME


def song(voices: dict, length: int | None = None, name: str = "t") -> object:
    """voices: voice -> list of (start, end, pitch) in samples."""
    raw = {v: tuple(zip(*notes, strict=True)) for v, notes in voices.items() if notes}
    end = max((n[1] for notes in voices.values() for n in notes), default=0)
    return br.make_song(name, length or end, raw)


def seq_notes(pitches, step=SR // 4, dur=SR // 8, t0=0):
    return [(t0 + i * step, t0 + i * step + dur, p) for i, p in enumerate(pitches)]


def test_module_does_not_import_lakhnes():
    assert "import lakhnes" not in _PATH.read_text() and "from lakhnes" not in _PATH.read_text()


def test_repetition_of_a_phrase():
    phrase = [60, 62, 64, 65, 67, 65, 64, 62, 60]  # 9 notes, 8 intervals, 5 distinct pitches
    s = song({"p1": seq_notes(phrase + [50, 71] + [p + 5 for p in phrase])})  # repeated, transposed
    f = br.song_features(s)["scalars"]
    assert f["rep8"] == pytest.approx(18 / 20)
    assert f["rep4"] >= f["rep8"] > 0
    # the same phrase on another voice counts too
    s2 = song({"p1": seq_notes(phrase), "p2": seq_notes([p - 12 for p in phrase])})
    assert br.song_features(s2)["scalars"]["rep8"] == pytest.approx(1.0)


def test_no_repetition():
    rng = np.random.default_rng(1)
    s = song({"p1": seq_notes(rng.permutation(np.arange(40, 80)).tolist())})
    assert br.song_features(s)["scalars"]["rep8"] == 0.0
    # a repeated pattern with fewer than 4 distinct pitches does not count
    s = song({"p1": seq_notes([60, 62, 64] * 10)})
    assert br.song_features(s)["scalars"]["rep8"] == 0.0


def test_repetition_occurrences_must_not_overlap():
    # 60 62 64 65 repeated: the 9-note window at i and i + 4 overlap; i and i + 8 do not
    assert br.repetition_share([np.array([60, 62, 64, 65] * 6)], 8) == 1.0  # windows at i and i + 12
    assert br.repetition_share([np.array([60, 62, 64, 65, 67, 69, 71, 72, 74, 76])], 8) == 0.0
    # 17 notes: the pattern at 0 recurs at 4 and 8, each overlapping the first
    assert br.repetition_share([np.array([60, 62, 64, 65] * 4 + [60])], 8) == 0.0


def test_standing_still_and_buzz():
    notes = [(i * SR, i * SR + SR // 2, 60) for i in range(10)]  # one pitch, 0 .. 9.5 s
    f = br.song_features(song({"p1": notes, "p2": seq_notes([60, 62, 64])}, length=12 * SR))["scalars"]
    assert f["still_max_s"] == pytest.approx(9.5)
    fast = [(i * 5513, i * 5513 + 100, 70) for i in range(40)]  # 8 notes/s on one pitch (16 in 2 s)
    f = br.song_features(song({"tr": fast}, length=10 * SR))["scalars"]
    assert f["buzz_per_s"] == pytest.approx(8.0)
    assert f["still_max_s"] == pytest.approx((39 * 5513 + 100) / SR)


def test_cycling():
    trill = seq_notes([60, 62] * 6)  # 12 notes alternating: 0 .. 2.875 s
    riff = seq_notes([50, 53, 57, 50, 53, 57, 50, 55], t0=4 * SR)  # a 3-note cycle of 7 notes, then another
    f = br.song_features(song({"p1": trill, "tr": riff}, length=8 * SR))["scalars"]
    assert f["cycle_max_s"] == pytest.approx((11 * (SR // 4) + SR // 8) / SR)
    assert f["cycle_share"] == pytest.approx(12 / 20)  # the riff's 7 notes are under 8: not counted
    f = br.song_features(song({"p1": seq_notes([60] * 12)}, length=4 * SR))["scalars"]
    assert f["cycle_max_s"] == 0 and f["cycle_share"] == 0  # one pitch: standing still, not cycling


def test_reattack_share():
    legato_same = [(0, 100, 60), (100, 200, 60), (200, 300, 62), (400, 500, 62)]
    f = br.song_features(song({"p1": legato_same}))["scalars"]
    assert f["reattack_share"] == pytest.approx(1 / 4)  # only the no-gap same-pitch note-on
    assert f["reattack_near"] == pytest.approx(2 / 4)  # and the one after a 100-sample gap


def test_frame_grid_pulse():
    on_grid = [(i * FRAME * 8, i * FRAME * 8 + 300, 60 + i % 5) for i in range(30)]
    f = br.song_features(song({"p1": on_grid, "no": [(i * FRAME, i * FRAME + 100, 3) for i in range(50)]}))
    assert f["scalars"]["grid_share"] == 1.0
    assert f["scalars"]["distinct_iois"] == 2.0
    assert f["scalars"]["top3_ioi"] == 1.0
    off_grid = [(i * 1100, i * 1100 + 300, 60) for i in range(30)]  # 1.497 frames
    assert br.song_features(song({"p1": off_grid}))["scalars"]["grid_share"] == 0.0


def test_other_features():
    notes = seq_notes([60, 64, 67, 72]) + seq_notes([48, 40], t0=SR)
    s = song({"p1": notes, "tr": seq_notes([36, 50]), "no": seq_notes([1, 5, 1, 16])}, length=2 * SR)
    f = br.song_features(s)["scalars"]
    assert f["pitch_count"] == 8
    assert f["pitch_range"] == 72 - 36
    assert f["tri_range"] == 14
    assert f["noise_types"] == 3
    assert f["density_p1"] == pytest.approx(3.0)
    assert f["occupancy_tr"] == pytest.approx(2 * (SR // 8) / (2 * SR))
    assert f["scale_share"] == 1.0  # C E G C C E / C D: all in C major


def test_crop():
    s = song({"p1": [(0, SR, 60), (SR // 2 * 3, 3 * SR, 62), (5 * SR, 6 * SR, 64)]}, length=7 * SR)
    c = br.crop(s, 2)
    assert c.length == 2 * SR
    assert c.voice("p1")[1].tolist() == [SR, 2 * SR]


def test_of_voices_keeps_songs_of_one_voice_set_in_the_crop():
    trio = song({"p1": [(0, SR, 60)], "p2": [(0, SR, 64)], "tr": [(0, SR, 48)]}, length=4 * SR)
    late_drums = song({"p1": [(0, SR, 60)], "p2": [(0, SR, 64)], "tr": [(0, SR, 48)],
                       "no": [(3 * SR, 4 * SR, 5)]}, length=4 * SR)
    duo = song({"p1": [(0, SR, 60)], "p2": [(0, SR, 64)]}, length=4 * SR)
    assert [s is trio for s in br.of_voices([trio, late_drums, duo], "P1,P2,TR", 2)] == [True, False]
    assert br.of_voices([trio, late_drums, duo], "P1, P2,TR", None) == [trio]
    with pytest.raises(ValueError, match="unknown voice 'p3'"):
        br.of_voices([trio], "P1,P3", None)


def test_monophonic_voices():
    s = song({"p1": [(0, 1000, 60), (500, 1500, 62), (500, 900, 64)]})
    st, en, p = s.voice("p1")
    assert st.tolist() == [0, 500] and en.tolist() == [500, 900] and p.tolist() == [60, 64]


def test_wait_snapping():
    w = [1, 100, 104, 105, 106, 1049, 1050, 1051, 99400, 100000, 100001, 100499, 250000, 350600]
    want = [1, 100, 100, 100, 110, 1000, 1000, 1100, 99000, 100000, 100001, 100500, 250000, 351000]
    assert br.snap_waits(w).tolist() == want
    assert len(br.WAITS) == 370


def test_through_vocab():
    s = song({"p1": [(0, 104, 60), (104, 1049 + 104, 62)], "no": [(1153, 1153 + 106, 5)]}, length=1300)
    v = br.through_vocab(s)
    assert v.voice("p1")[0].tolist() == [0, 100]
    assert v.voice("p1")[1].tolist() == [100, 1100]
    assert v.voice("no")[0].tolist() == [1100] and v.voice("no")[1].tolist() == [1210]
    assert v.length == 1210 + 41  # the last wait, 41, is a vocabulary wait


def test_tx1_reader():
    s = br.read_tx1(
        "<S> P1_NOTEON_60 WT_100 P1_NOTEON_62 WT_50 P1_NOTEOFF NO_NOTEOFF TR_NOTEON_40 WT_1000 <S>", "x"
    )
    assert s.voice("p1")[0].tolist() == [0, 100] and s.voice("p1")[1].tolist() == [100, 150]
    assert s.voice("tr")[0].tolist() == [150] and s.voice("tr")[1].tolist() == [1150]
    assert s.length == 1150 and s.voice("no")[0].size == 0


def test_midi_reader(tmp_path):
    symusic = pytest.importorskip("symusic")
    sc = symusic.Score(22050)
    sc.tempos.append(symusic.Tempo(0, 120))
    sc.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    sc.time_signatures.append(symusic.TimeSignature(88200, 1, 1))  # end of song: 2 s
    for name, pitch in (("p1", 60), ("p2", 64), ("tr", 48), ("no", 3)):
        t = symusic.Track(name=name)
        t.notes.append(symusic.Note(735, 735 * 3, pitch, 8))
        t.notes.append(symusic.Note(735 * 5, 735, pitch + 1, 8))
        sc.tracks.append(t)
    path = tmp_path / "song_1.mid"
    sc.dump_midi(str(path))
    (tmp_path / "broken.mid").write_bytes(b"not a midi")
    skips = br.Skips()
    songs = br.load_folder(tmp_path, skips)
    assert skips.count["gen"] == 1 and len(songs) == 1
    s = songs[0]
    assert s.length == 88200
    assert s.voice("p1")[0].tolist() == [735, 3675] and s.voice("p1")[1].tolist() == [2940, 4410]
    assert s.voice("no")[2].tolist() == [3, 4]


def test_originality_index():
    rng = np.random.default_rng(0)
    tune = rng.integers(50, 80, 60)
    idx = br.TrainIndex()
    idx.add(song({"p1": seq_notes(tune.tolist())}))
    idx.freeze()
    copied = song({"p2": seq_notes((tune[:40] + 3).tolist())})  # transposed copy of 40 notes
    orig13, run32 = idx.originality(copied)
    assert orig13 == 1.0 and run32 == 1.0
    new = song({"p1": seq_notes(rng.integers(50, 80, 40).tolist())})
    assert idx.originality(new) == (0.0, 0.0)


def test_overlapping_area():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 300)
    assert br.kde_oa(a, a) == pytest.approx(1.0, abs=1e-4)
    assert br.kde_oa(a, rng.normal(0, 1, 300)) > 0.85
    assert br.kde_oa(a, rng.normal(10, 1, 300)) < 0.01


def test_classifier_two_sample_test():
    rng = np.random.default_rng(0)
    names = [f"x{i}" for i in range(6)]
    a = rng.normal(0, 1, (100, 6))
    b = rng.normal(0, 1, (100, 6))
    b[:, 2] += 3.0
    sep = br.two_sample_test(a, b, names, seed=0)
    assert sep["accuracy"] > 0.9 and sep["top_features"][0][0] == "x2" and sep["top_features"][0][1] > 0
    same = br.two_sample_test(rng.normal(0, 1, (300, 6)), rng.normal(0, 1, (300, 6)), names, seed=0)
    assert abs(same["accuracy"] - 0.5) < 0.1  # null spread: about 0.03 at 300 + 300
    paired = br.two_sample_test(a, a + rng.normal(0, 0.01, a.shape), names, seed=0, paired=True)
    assert abs(paired["accuracy"] - 0.5) < 0.15
    again = br.two_sample_test(a, b, names, seed=0)
    assert again["fold_acc"] == sep["fold_acc"]  # deterministic


def test_classifier_repeats_average_the_splits():
    rng = np.random.default_rng(1)
    names = [f"x{i}" for i in range(4)]
    a, b = rng.normal(0, 1, (60, 4)), rng.normal(0, 1, (90, 4))
    b[:, 0] += 0.8
    one = [br.two_sample_test(a, b, names, seed=s) for s in range(4)]
    four = br.two_sample_test(a, b, names, seed=0, repeats=4)
    assert four["repeats"] == 4 and len(four["fold_acc"]) == 20
    assert four["repeat_acc"] == pytest.approx([x["accuracy"] for x in one])  # repeat r = seed + r alone
    assert four["accuracy"] == pytest.approx(np.mean(four["repeat_acc"]))
    assert four["top_features"] == one[0]["top_features"]  # weights of the first subsample
    assert len({round(x, 6) for x in four["repeat_acc"]}) > 1  # the splits differ


def test_feature_matrix_is_key_independent():
    s = song({"p1": seq_notes([60, 62, 64, 65, 67, 69, 71, 72]), "tr": seq_notes([48, 55])}, length=3 * SR)
    t = song(
        {"p1": seq_notes([p + 5 for p in [60, 62, 64, 65, 67, 69, 71, 72]]), "tr": seq_notes([53, 60])},
        length=3 * SR,
    )
    X, names = br.feature_matrix([br.song_features(s), br.song_features(t)])
    assert X.shape[1] == len(names)
    assert np.allclose(X[0], X[1])


@pytest.mark.skipif(not Path(br.DEFAULT_REAL).exists(), reason="NES-MDB archive absent")
def test_real_archive_song_reads():
    import tarfile

    with tarfile.open(br.DEFAULT_REAL) as tf:
        for m in tf:
            if m.isfile() and m.name.endswith(".mid"):
                s = br.read_midi(tf.extractfile(m).read(), m.name)
                break
    assert s.length > 0 and set(s.notes) <= set(br.VOICES) and s.notes
    v = br.through_vocab(s)
    assert v.notes.keys() == s.notes.keys()
    assert all(len(v.voice(k)[0]) == len(s.voice(k)[0]) for k in s.notes)


def _write_nes_midi(path: Path, rng, seconds: float, pulse: int) -> None:
    symusic = pytest.importorskip("symusic")
    sc = symusic.Score(22050)
    sc.tempos.append(symusic.Tempo(0, 120))
    sc.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    end = int(seconds * SR)
    sc.time_signatures.append(symusic.TimeSignature(end, 1, 1))
    for name, lo, hi in (("p1", 60, 84), ("p2", 48, 72), ("tr", 36, 60), ("no", 1, 16)):
        t = symusic.Track(name=name)
        time = 0
        while time < end - pulse:
            t.notes.append(symusic.Note(time, pulse - 100, int(rng.integers(lo, hi)), 8))
            time += pulse * int(rng.integers(1, 3))
        sc.tracks.append(t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sc.dump_midi(str(path))


def test_end_to_end_and_compare(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 7)):
        for i in range(n):
            _write_nes_midi(tmp_path / "real" / "nesmdb_midi" / split / f"{i:03d}.mid", rng, 25, FRAME * 8)
    _write_nes_midi(tmp_path / "real" / "nesmdb_midi" / "test" / "short.mid", rng, 5, FRAME * 8)  # < 20 s
    for i in range(6):
        _write_nes_midi(tmp_path / "gen" / f"song_{i + 1}.mid", rng, 10, 5000)
    (tmp_path / "gen" / "song_7.mid").write_bytes(b"MThd broken")
    out = tmp_path / "out"
    res = br.main(
        [
            "--real",
            str(tmp_path / "real"),
            "--songs",
            str(tmp_path / "gen"),
            "--name",
            "toy",
            "--json",
            str(out / "r.json"),
            "--md",
            str(out / "r.md"),
            "--png",
            str(out / "r.png"),
        ]
    )
    assert res["seconds"] == 10
    assert res["n"] == {"real": 7, "vocab": 7, "gen": 6, "train_sample": 7, "real_at_full_length": 7}
    assert res["skipped"] == {"gen": 1}
    assert res["features"]["real"]["grid_share"]["mean"] == 1.0
    assert res["features"]["gen"]["grid_share"]["mean"] < 0.5
    assert res["classifier"]["gen_vs_real"]["n_per_class"] == 6
    assert (out / "r.png").stat().st_size > 0 and "| 4 pulse |" in (out / "r.md").read_text()
    again = br.main(["--real", str(tmp_path / "real"), "--songs", str(tmp_path / "gen"), "--name", "toy"])
    assert again["classifier"] == res["classifier"] and again["oa"] == res["oa"]  # deterministic
    capsys.readouterr()
    br.main(["--compare", str(out / "r.json"), str(out / "r.json")])
    assert "toy 10s" in capsys.readouterr().out
