"""Music statistics on hand-made songs whose values are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lakhnes.cli import main
from lakhnes.core.score import SAMPLE_RATE, NesScore, make_notes
from lakhnes.evaluation import stats

S = SAMPLE_RATE


def _song() -> NesScore:
    """P1: C4 E4 G4 one second each; TR: C3 for two seconds; 4 s long; P2 and NO silent."""
    sc = NesScore(end=4 * S)
    sc.notes["P1"] = make_notes([0, S, 2 * S], [S, 2 * S, 3 * S], [60, 64, 67])
    sc.notes["TR"] = make_notes([0], [2 * S], [48], 1)
    return sc


def test_hand_made_song():
    r = stats.song_stats(_song())
    assert set(r) == set(stats.keys())
    assert r["note_density/all"] == 1.0 and r["note_density/P1"] == 0.75 and r["note_density/TR"] == 0.25
    assert r["note_density/P2"] == 0 and r["note_density/NO"] == 0
    # pooled pitch classes C, E, G, C: probabilities 1/2, 1/4, 1/4
    assert r["pitch_class_entropy/all"] == pytest.approx(1.5)
    assert r["pitch_class_entropy/P1"] == pytest.approx(math.log2(3))
    assert r["pitch_class_entropy/TR"] == 0.0
    assert math.isnan(r["pitch_class_entropy/P2"])
    assert r["pitch_range/all"] == 19 and r["pitch_range/P1"] == 7 and r["pitch_range/TR"] == 0
    # two voices for 2 s, one for 1 s, none for 1 s
    assert r["polyphony/all"] == pytest.approx(5 / 3)
    assert r["empty_time/all"] == pytest.approx(0.25)
    assert r["empty_time/P1"] == pytest.approx(0.25) and r["empty_time/TR"] == pytest.approx(0.5)
    assert r["empty_time/P2"] == 1.0 and r["empty_time/NO"] == 1.0
    assert r["scale_consistency/all"] == 1.0
    # 2-s measures on 16 steps: onsets {0, 8} then {0}: one differing cell
    assert r["groove_consistency/all"] == pytest.approx(1 - 1 / 16)
    assert r["groove_consistency/TR"] == pytest.approx(1 - 1 / 16)
    assert math.isnan(r["groove_consistency/P2"])


def test_metric_functions():
    assert stats.scale_consistency([60, 61, 62]) == pytest.approx(2 / 3)
    assert stats.scale_consistency([57, 59, 60, 62, 64, 65, 67]) == 1.0  # A natural minor
    assert stats.pitch_class_entropy(np.arange(12) + 60) == pytest.approx(math.log2(12))
    m = S  # measures of 1 s, 4 steps: identical bars -> 1; alternating full/empty -> 0
    assert stats.groove_consistency([0, S // 2, S, S + S // 2], 2 * S, m, 4) == 1.0
    full = [0, S // 4, S // 2, 3 * S // 4]
    assert stats.groove_consistency(full, 2 * S, m, 4) == 0.0
    assert math.isnan(stats.groove_consistency([0], S, m, 4))  # one measure


def test_polyphony_counts_overlapping_voices():
    sc = NesScore(end=2 * S)
    for v in ("P1", "P2", "TR", "NO"):
        sc.notes[v] = make_notes([0], [S], [40 if v != "NO" else 5])
    r = stats.song_stats(sc)
    assert r["polyphony/all"] == 4.0 and r["empty_time/all"] == 0.5
    assert r["note_density/NO"] == 0.5


def test_midi_and_tx1_agree(nesmdb_fixture_files, fixtures):
    for f in nesmdb_fixture_files[:3]:
        a = stats.song_stats(stats.load_score(f))
        b = stats.song_stats(stats.load_score(fixtures / "tx1" / (f.stem + ".tx1.txt")))
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], nan_ok=True), k


def test_cli_stats(tmp_path, fixtures, capsys):
    bad = tmp_path / "gen" / "bad.mid"
    bad.parent.mkdir()
    bad.write_bytes(b"not midi")
    for f in sorted((fixtures / "tx1").glob("*.tx1.txt"))[:4]:
        (tmp_path / "gen" / f.name).write_text(f.read_text())
    out, png = tmp_path / "t.md", tmp_path / "h.png"
    rc = main(["stats", str(tmp_path / "gen"), "--vs", str(fixtures / "nesmdb"), "-o", str(out),
               "--png", str(png), "--json", str(tmp_path / "s.json")])
    assert rc == 1  # one input failed, the rest measured
    err = capsys.readouterr().err
    assert "bad.mid" in err and "1 failed" in err
    table = out.read_text()
    assert "| statistic |" in table and "gen (4 songs)" in table and "nesmdb" in table
    assert "| pitch_class_entropy/all |" in table
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["stats", str(tmp_path / "nothing")]) == 2


def test_stats_reads_vgm_and_famitracker_text(tmp_path, fixtures):
    """VGM/VGZ rips (by name, or by content) and FamiTracker text measure as the MIDI they hold."""
    import json
    from pathlib import Path

    from lakhnes.formats.files import save
    from lakhnes.formats.midi import read_midi
    from lakhnes.formats.vgm import write_vgm

    mid = fixtures / "nesmdb" / "324_SuperMarioBros_3_00_01World1Map.mid"
    score = read_midi(mid)
    src = tmp_path / "in"
    src.mkdir()
    write_vgm(score, src / "a.vgm", sample_exact=True)  # as a rip: the game's writes at their samples
    write_vgm(score, src / "b.vgz", sample_exact=True)
    save(score, src / "c.famitracker.txt")
    (tmp_path / "rip.bin").write_bytes((src / "a.vgm").read_bytes())
    assert main(["stats", str(src), str(tmp_path / "rip.bin"), str(mid), "--json", str(tmp_path / "s.json")]) == 0
    sets = json.loads((tmp_path / "s.json").read_text())["sets"]
    by = {Path(r["file"]).name: r for s in sets.values() for r in s["songs"]}
    assert set(by) == {"a.vgm", "b.vgz", "c.famitracker.txt", "rip.bin", mid.name}
    for name in ("a.vgm", "b.vgz", "rip.bin"):  # a VGM reads back as NES-MDB's MIDI of it
        assert {k: v for k, v in by[name].items() if k != "file"} == {k: v for k, v in by[mid.name].items()
                                                                      if k != "file"}
