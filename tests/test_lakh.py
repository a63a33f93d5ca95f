"""The Lakh → NES mapping and ``lakhnes prepare lakh``, on small MIDI files built here."""

from __future__ import annotations

import argparse
import json
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import symusic

from lakhnes.cli.prepare import register_lakh
from lakhnes.core import tx1
from lakhnes.core.score import SAMPLE_RATE, VOICES
from lakhnes.data import lakh
from lakhnes.data import prepare_lakh as P
from lakhnes.data.shards import load_manifest, load_split
from lakhnes.errors import InvalidInputError
from lakhnes.formats.any_midi import general_midi_to_nes
from lakhnes.formats.midi import read_midi

TPQ = 480  # at 120 bpm one tick is 1/960 s


def midi(tracks, seconds_per_beat=0.5, tempo_changes=()) -> bytes:
    """MIDI bytes: ``tracks`` = [(name, is_drum, [(beat, beats, pitch), ...]), ...]."""
    s = symusic.Score(TPQ)
    s.tempos.append(symusic.Tempo(0, qpm=60.0 / seconds_per_beat))
    for tick, qpm in tempo_changes:
        s.tempos.append(symusic.Tempo(tick, qpm=qpm))
    for name, drum, notes in tracks:
        t = symusic.Track(name=name, program=0, is_drum=drum)
        for beat, beats, pitch in notes:
            t.notes.append(symusic.Note(int(beat * TPQ), int(beats * TPQ), pitch, 100))
        s.tracks.append(t)
    return bytes(s.dumps_midi())


def line(pitches, beats=1.0, start=0.0):
    return [(start + i * beats, beats, p) for i, p in enumerate(pitches)]


MELODY = line([60, 62, 64, 65, 67, 69, 71, 72] * 3)          # 24 beats = 12 s, monophonic
BASS = line([20, 24, 28, 33, 36, 40, 110, 45] * 3)            # includes notes outside every range
CHORDS = [(b, 2, p) for b in range(0, 24, 2) for p in (60, 64, 67)]
DRUMS = [(b / 2, 0.5, k) for b in range(48) for k in ((36, 42) if b % 2 == 0 else (38,))]


def assert_valid_examples(scores):
    for s in scores:
        s.check()  # every voice sorted, monophonic, in range
        ids = tx1.song_ids(tx1.score_to_events(s))
        tx1.check_ids(ids)
        back = tx1.events_to_score(tx1.ids_to_events(ids))
        back.check()
        assert back.num_notes == s.num_notes


def test_monophonic_part_kept_polyphonic_rejected():
    parts = lakh.read_parts(midi([("melody", False, MELODY), ("piano", False, CHORDS)]))
    assert len(parts.melodic) == 1 and len(parts.polyphonic) == 1
    assert parts.melodic[0]["pitch"].tolist() == [p for _, _, p in MELODY]
    assert lakh.is_monophonic(parts.melodic[0]) and not lakh.is_monophonic(parts.polyphonic[0])
    # a part whose notes only touch (legato) is monophonic; one that overlaps by a tick is not
    legato = lakh.read_parts(midi([("a", False, [(0, 1, 60), (1, 1, 62), (2, 9, 64)])]))
    assert len(legato.melodic) == 1
    overlap = lakh.read_parts(midi([("a", False, [(0, 1 + 1 / TPQ, 60), (1, 9, 62)])]))
    assert not overlap.melodic and len(overlap.polyphonic) == 1


def test_one_part_file_gives_three_examples_and_tr_keeps_its_range():
    scores = lakh.midi_to_nes(midi([("bass", False, BASS)]), seed=3)
    assert len(scores) == 3
    used = sorted(next(v for v in VOICES if len(s.notes[v])) for s in scores)
    assert used == ["P1", "P2", "TR"]  # the part went to each voice once
    tr = next(s for s in scores if len(s.notes["TR"]))
    assert tr.notes["TR"]["pitch"].tolist() == [p for _, _, p in BASS if 21 <= p <= 108]
    p1 = next(s for s in scores if len(s.notes["P1"]))
    assert p1.notes["P1"]["pitch"].tolist() == [p for _, _, p in BASS if 33 <= p <= 108]
    assert_valid_examples(scores)


def test_two_parts_give_six_orders_and_many_parts_distinct_assignments():
    two = lakh.midi_to_nes(midi([("a", False, MELODY), ("b", False, line([48, 50] * 12))]))
    assert len(two) == 6
    rng = np.random.default_rng(0)
    many = lakh.assignments(7, 16, rng)
    assert len(many) == 16 and len(set(many)) == 16
    assert all(len(set(a)) == 3 for a in many)
    big = lakh.assignments(40, 16, rng)  # sampled rather than enumerated
    assert len(set(big)) == 16 and all(len(set(a)) == 3 for a in big)
    assert lakh.assignments(4, 100, rng).__len__() == 24  # all 3-permutations of 4 parts


def test_drums_become_monophonic_noise_types():
    scores = lakh.midi_to_nes(midi([("melody", False, MELODY), ("drums", True, DRUMS)]), seed=1)
    assert len(scores) == 3
    for s in scores:
        no = s.notes["NO"]
        assert len(no) == 48  # one hit per onset: simultaneous kick + hat thinned to one
        assert no["pitch"].min() >= 1 and no["pitch"].max() <= 16
        assert np.all(no["start"][1:] >= no["end"][:-1])
    # each drum key maps to one noise type within an example
    keymap = np.arange(128, dtype=np.int16) % 16 + 1
    parts = lakh.read_parts(midi([("drums", True, DRUMS)] + [("m", False, MELODY)]))
    noise = lakh.drums_to_noise(parts.drums[0], keymap)
    assert noise["pitch"].tolist() == [keymap[36] if b % 2 == 0 else keymap[38] for b in range(48)]
    # overlapping (not simultaneous) hits: the earlier is cut where the next starts
    cut = lakh.drums_to_noise(lakh.read_parts(midi([("d", True, [(0, 4, 49), (1, 1, 38)]),
                                                    ("m", False, MELODY)])).drums[0], keymap)
    assert cut["end"][0] == cut["start"][1]
    assert_valid_examples(scores)


def test_every_example_is_valid_tx1_and_clipped():
    long_line = line([60, 64, 67, 72] * 60, beats=2.0)  # 480 beats = 240 s
    data = midi([("a", False, long_line), ("b", False, line([48, 43] * 100, beats=2.0)),
                 ("c", False, MELODY), ("d", True, DRUMS), ("e", False, line([79, 81] * 20, start=4))])
    scores = lakh.midi_to_nes(data, seed=5, max_examples=16)
    assert len(scores) == 16
    for s in scores:
        assert s.end <= lakh.CLIP_SECONDS * SAMPLE_RATE
    assert_valid_examples(scores)


def test_duplicate_parts_and_out_of_range_parts_dropped():
    data = midi([("a", False, MELODY), ("a copy", False, MELODY), ("sub", False, line([5, 10, 12] * 10))])
    sm = symusic.Score.from_midi(data)
    for n in sm.tracks[1].notes:
        n.velocity = 50  # a louder or softer copy is still the same part
    parts = lakh.read_parts(bytes(sm.dumps_midi()))
    assert len(parts.melodic) == 1


def test_times_follow_the_tempo_map():
    data = midi([("a", False, MELODY)], tempo_changes=[(4 * TPQ, 90.0)])
    parts = lakh.read_parts(data)
    ref = symusic.Score.from_midi(data).to("second").tracks[0].notes.numpy()
    np.testing.assert_allclose(parts.melodic[0]["start"], ref["time"] * SAMPLE_RATE, atol=2)
    assert parts.melodic[0]["start"][5] == round((4 * 0.5 + 1 * 60 / 90) * SAMPLE_RATE)


def _overflowing_midi() -> bytes:
    """A MIDI whose huge delta times overflow symusic's tick counter into negative times."""
    def vlq(n):
        out = [n & 0x7F]
        n >>= 7
        while n:
            out.append(0x80 | (n & 0x7F))
            n >>= 7
        return bytes(reversed(out))

    ev = b"".join(vlq(0x0FFFFFFF) + b"\x90\x3c\x64" + vlq(10) + b"\x80\x3c\x00" for _ in range(10))
    ev += b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(ev)) + ev


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x01\x00\x90", "corrupt"),
        (b"RIFF not a midi", "corrupt"),
        (b"MThd" + b"\x00" * (600 * 1024), "too_large"),
        (midi([("a", False, line([60, 62]))]), "too_short"),
        (midi([("a", False, line([60, 62] * 310, beats=2.0))]), "too_long"),
        (midi([("piano", False, CHORDS)]), "no_parts"),
        (midi([("drums", True, DRUMS)]), "no_parts"),
        (_overflowing_midi(), "bad_times"),
    ],
    ids=["truncated", "not-midi", "large", "short", "long", "polyphonic", "drums-only", "overflow"],
)
def test_rejected_files_say_why(data, kind):
    with pytest.raises(lakh.SkippedFile) as e:
        lakh.midi_to_nes(data)
    assert e.value.kind == kind


def test_valid_split_by_path_hash():
    names = [f"lmd/{i:05d}.mid" for i in range(4000)]
    share = sum(P.split_of(n, 5.0) == "valid" for n in names) / len(names)
    assert 0.04 < share < 0.06
    assert [P.split_of(n, 5.0) for n in names] == [P.split_of(n, 5.0) for n in names]
    assert {P.split_of(n, 0) for n in names} == {"train"}


def _corpus(root: Path) -> Path:
    src = root / "src"
    (src / "band" / "sub").mkdir(parents=True)
    (src / "band" / "one.mid").write_bytes(midi([("bass", False, BASS), ("drums", True, DRUMS)]))
    (src / "band" / "sub" / "two.MID3").write_bytes(
        midi([("a", False, MELODY), ("b", False, line([48, 50] * 12)), ("c", False, line([72, 74] * 12))]))
    (src / "band" / "three.midi").write_bytes(midi([("a", False, MELODY), ("p", False, CHORDS)]))
    (src / "four.mid").write_bytes(midi([("a", False, line([55, 57] * 12)), ("b", False, line([40, 45] * 12))]))
    (src / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\xff\xff")
    (src / "poly.mid").write_bytes(midi([("piano", False, CHORDS)]))
    (src / "notes.txt").write_text("not a midi name, not read")
    return src


def _outputs(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.name != "manifest.json"}


def test_prepare_counts_skips_and_is_deterministic_across_workers(tmp_path):
    src = _corpus(tmp_path)
    m1 = P.prepare_lakh(src, tmp_path / "w1", workers=1, progress=False, valid_percent=40, chunk_files=2)
    m2 = P.prepare_lakh(src, tmp_path / "w2", workers=2, progress=False, valid_percent=40)
    assert m1["files_read"] == 6 and m1["files_used"] == 4
    assert m1["skipped"]["corrupt"] == 1 and m1["skipped"]["no_parts"] == 1 and m1["files_skipped"] == 2
    # one.mid: 1 part → 3; two: 3 parts → 3! = 6; three: 1 monophonic part → 3; four: 2 parts → 6
    assert m1["examples"] == {"train": 3 + 6 + 6, "valid": 3}  # three.midi hashes into valid at 40 %
    assert _outputs(tmp_path / "w1") == _outputs(tmp_path / "w2")
    assert {k: v for k, v in m1.items() if k != "source"} == {k: v for k, v in m2.items() if k != "source"}
    load_manifest(tmp_path / "w1")
    songs = [s for split in ("train", "valid") for s in load_split(tmp_path / "w1", split).songs()]
    assert len(songs) == 18
    for ids in songs:
        assert ids[0] == 0 and ids[-1] == 0 and len(ids) >= 10
        tx1.check_ids(ids)
        tx1.events_to_score(tx1.ids_to_events(ids)).check()
    skipped = (tmp_path / "w1" / "skipped.tsv").read_text().splitlines()
    assert sorted(s.split("\t")[:2] for s in skipped) == [["broken.mid", "corrupt"], ["poly.mid", "no_parts"]]
    assert not list(tmp_path.glob("*.partial"))
    # another seed gives other examples
    P.prepare_lakh(src, tmp_path / "s1", seed=1, workers=1, progress=False, valid_percent=40)
    assert _outputs(tmp_path / "s1") != _outputs(tmp_path / "w1")


def test_prepare_from_tar_matches_folder(tmp_path):
    src = _corpus(tmp_path)
    tar = tmp_path / "corpus.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        for p in sorted(q for q in src.rglob("*") if q.is_file()):
            t.add(p, arcname=p.relative_to(src).as_posix())
    P.prepare_lakh(src, tmp_path / "dir", workers=1, progress=False)
    P.prepare_lakh(tar, tmp_path / "tar", workers=2, progress=False)
    assert _outputs(tmp_path / "dir") == _outputs(tmp_path / "tar")


def test_interrupted_run_leaves_no_output_and_resumes(tmp_path, monkeypatch):
    src = _corpus(tmp_path)
    P.prepare_lakh(src, tmp_path / "clean", workers=1, progress=False, chunk_files=2)
    real, calls = P._run_chunk, []

    def flaky(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(P, "_run_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        P.prepare_lakh(src, tmp_path / "out", workers=1, progress=False, chunk_files=2)
    assert not (tmp_path / "out").exists()
    staged = sorted(p.name for p in (tmp_path / "out.partial").iterdir())
    assert staged == ["chunk-00000", "settings.json"]
    monkeypatch.setattr(P, "_run_chunk", real)
    done = []
    monkeypatch.setattr(P, "_run_chunk", lambda *a: done.append(1) or real(*a))
    P.prepare_lakh(src, tmp_path / "out", workers=1, progress=False, chunk_files=2)
    assert len(done) == 2  # the finished chunk was not redone
    assert _outputs(tmp_path / "out") == _outputs(tmp_path / "clean")
    assert not (tmp_path / "out.partial").exists()
    # a staging folder whose settings.json was cut short by a kill: started afresh, no crash
    (tmp_path / "again.partial").mkdir()
    (tmp_path / "again.partial" / "settings.json").write_text('{"source": ')
    P.prepare_lakh(src, tmp_path / "again", workers=1, progress=False, chunk_files=2)
    assert _outputs(tmp_path / "again") == _outputs(tmp_path / "clean")


def test_cli_writes_shards_and_listenable_midi(tmp_path, capsys):
    src = _corpus(tmp_path)
    parser = argparse.ArgumentParser()
    register_lakh(parser.add_subparsers())
    args = parser.parse_args(["lakh", str(src), "-o", str(tmp_path / "out"), "--max-per-file", "2",
                              "--seed", "4", "-j", "1", "--midi-out", str(tmp_path / "mid"), "--quiet"])
    assert args.func(args) == 0
    err = capsys.readouterr().err
    assert "6 files read, 4 used, 2 skipped (corrupt 1, no_parts 1)" in err
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["examples"]["train"] + m["examples"]["valid"] == 8
    mids = sorted((tmp_path / "mid").rglob("*.mid"))
    assert len(mids) == 8 and (tmp_path / "mid" / "band" / "sub" / "two.00.mid").exists()
    for f in mids:
        read_midi(f).check()
    bad = parser.parse_args(["lakh", str(tmp_path / "missing"), "-o", str(tmp_path / "x"), "--quiet"])
    assert bad.func(bad) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err
    from lakhnes.cli import main  # the real entry point dispatches `prepare lakh` here

    assert main(["prepare", "lakh", str(src), "-o", str(tmp_path / "via_main"), "--max-per-file", "2",
                 "--seed", "4", "-j", "1", "--quiet"]) == 0
    assert _outputs(tmp_path / "via_main") == _outputs(tmp_path / "out")


def test_general_midi_to_nes(tmp_path, nesmdb_fixture_files):
    f = tmp_path / "song.mid"
    f.write_bytes(midi([("piano", False, CHORDS), ("melody", False, line([76, 79] * 12)),
                        ("bass", False, line([36, 38] * 12)), ("drums", True, DRUMS)]))
    s = general_midi_to_nes(f, seed=2)
    s.check()
    assert s.notes["P1"]["pitch"].min() >= 76  # highest part on P1
    assert s.notes["TR"]["pitch"].max() <= 38  # lowest on the triangle
    assert s.notes["P2"]["pitch"].tolist()[:2] == [67, 67]  # the piano's top line
    assert len(s.notes["NO"]) == 48
    assert general_midi_to_nes(f, seed=2) == s
    nes = nesmdb_fixture_files[0]
    assert general_midi_to_nes(nes) == read_midi(nes)
    g = tmp_path / "drums.mid"
    g.write_bytes(midi([("drums", True, DRUMS)]))
    with pytest.raises(InvalidInputError, match="drums.mid: no melodic part"):
        general_midi_to_nes(g)
