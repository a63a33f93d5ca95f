"""Any MIDI as a source: the automatic track → voice mapping, ``--map``, and every command that reads
a multi-instrument MIDI (POP909 song 077, MIT licensed: tracks MELODY, BRIDGE with piano glissandos
C2-C7, PIANO)."""

from __future__ import annotations

import numpy as np
import pytest
import symusic

from lakhnes.cli import main
from lakhnes.errors import InvalidInputError
from lakhnes.formats import any_midi as M


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    import torch

    from lakhnes.models import build_model, save_model

    torch.manual_seed(0)
    return str(save_model(build_model("transformer_xl", "tiny"), tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def pop(fixtures):
    return fixtures / "pop909_077.mid"


def _midi(tracks, path) -> None:
    sm = symusic.Score(480)
    for name, drum, notes in tracks:
        t = symusic.Track(name=name, program=0, is_drum=drum)
        t.notes.extend(symusic.Note(a, d, p, 90) for a, d, p in notes)
        sm.tracks.append(t)
    sm.dump_midi(str(path))


def test_the_melody_goes_to_p1_by_name_and_without_one(pop):
    tracks, _ = M.read_tracks(pop)
    assert [t.name for t in tracks] == ["MELODY", "BRIDGE", "PIANO"]
    assert M.auto_mapping(tracks) == {0: "P1", 1: "P2", 2: "TR"}
    for t in tracks:  # no names: activity, range and monophony still find the melody (not mean pitch)
        t.name = ""
    assert M.auto_mapping(tracks)[0] == "P1"
    score, mapping = M.map_midi(pop)
    melody = tracks[0].notes
    assert np.array_equal(np.sort(score.notes["P1"]["pitch"]), np.sort(melody["pitch"]))
    assert mapping.lines()[0] == "track 0 'MELODY' (443 notes, pitches 61-80) -> P1"


def test_map_fixes_some_choices_and_fills_the_rest(pop):
    tracks, _ = M.read_tracks(pop)
    assert M.resolve(tracks, "bridge=P1") == {1: "P1", 0: "TR", 2: "P2"} or M.resolve(tracks, "bridge=P1")[1] == "P1"
    assert M.resolve(tracks, "MELODY=TR,2=-") == {0: "TR", 1: "P1"}
    assert M.resolve(tracks, {"PIANO": "NO", "MELODY": "P2"})[2] == "NO"
    for spec, msg in (("MELODY", "not TRACK=VOICE"), ("MELODY=P5", "unknown voice"), ("0=P1,1=P1", "two tracks"),
                      ("9=P1", "no track 9"), ("DRUMS=NO", "no track named 'DRUMS'"), ("0=P1,MELODY=TR", "twice")):
        with pytest.raises(InvalidInputError, match=msg):
            M.resolve(tracks, spec)


def test_name_hints_and_bass(tmp_path):
    f = tmp_path / "band.mid"
    line = [(480 * k, 400, 60 + k % 5) for k in range(32)]
    _midi([("Strings", False, [(480 * k, 400, 84 + k % 3) for k in range(32)]), ("Lead Vocal", False, line),
           ("Bass", False, [(480 * k, 400, 60 + k % 2) for k in range(32)]), ("Kit", True, line)], f)
    _, mapping = M.map_midi(f)
    assert mapping.voice_of == {1: "P1", 2: "TR", 0: "P2", 3: "NO"}


def test_plot_synth_stats_encode_accept_any_midi_and_show_the_mapping(pop, tmp_path, capsys):
    assert main(["plot", str(pop), "-o", str(tmp_path / "a.png")]) == 0
    err = capsys.readouterr().err
    assert f"{pop}: track 0 'MELODY' (443 notes, pitches 61-80) -> P1" in err
    assert f"{pop}: track 1 'BRIDGE' (550 notes, pitches 32-102) -> P2" in err
    assert main(["synth", str(pop), "--map", "MELODY=TR,PIANO=-", "-o", str(tmp_path / "a.mid")]) == 0
    err = capsys.readouterr().err
    assert "'MELODY' (443 notes, pitches 61-80) -> TR" in err and "'PIANO' (1120 notes, pitches 37-70) -> -" in err
    from lakhnes.formats.midi import read_midi

    song = read_midi(tmp_path / "a.mid")
    assert len(song.notes["TR"]) == 443 and len(song.notes["P1"]) > 0 and not len(song.notes["P2"])
    assert main(["stats", str(pop), "-o", str(tmp_path / "t.md")]) == 0
    assert "-> P1" in capsys.readouterr().err
    assert main(["encode", str(pop), "-o", str(tmp_path / "enc"), "--map", "MELODY=P1", "-j", "1"]) == 0
    assert (tmp_path / "enc" / "pop909_077.tx1.txt").stat().st_size > 0
    capsys.readouterr()
    assert main(["synth", str(pop), "--map", "MELODY=P9", "-o", str(tmp_path / "b.mid")]) == 2
    assert "--map: unknown voice 'P9'" in capsys.readouterr().err
    assert main(["synth", str(pop), "--map", "LEAD=P1", "-o", str(tmp_path / "b.mid")]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0  # one line
    assert not (tmp_path / "b.mid").exists()


def test_keep_p1_keeps_the_melody(pop, tmp_path, tiny_model, capsys, one_torch_thread):
    from lakhnes.formats.midi import read_midi

    out = tmp_path / "k.mid"
    assert main(["generate", "-m", tiny_model, "--keep", "P1", str(pop), "--seconds", "30", "--seed", "0",
                 "-o", str(out)]) == 0
    assert "'MELODY' (443 notes, pitches 61-80) -> P1" in capsys.readouterr().err
    kept = read_midi(out).notes["P1"]
    assert len(kept) > 5 and kept["pitch"].min() >= 61 and kept["pitch"].max() <= 80


def test_a_pop_prime_continues_on_all_four_voices(pop, tmp_path, tiny_model, capsys, one_torch_thread):
    """The first 8 s of 077 play only P2 (BRIDGE) and TR (PIANO): the melody enters at 21 s and there is
    no drum track. Those silences are the mapping's, not an arrangement: the continuation uses all four."""
    from lakhnes.core.score import SAMPLE_RATE
    from lakhnes.formats.midi import read_midi

    out = tmp_path / "c.mid"
    assert main(["generate", "-m", tiny_model, "--prime", str(pop), "--prime-seconds", "8", "--seconds", "6",
                 "--seed", "0", "-q", "-o", str(out)]) == 0
    song = read_midi(out)
    assert round(song.seconds) == 14
    for v, n in song.notes.items():
        assert (n["start"] >= 8 * SAMPLE_RATE).sum() > 0, v


def test_from_to_pick_the_part_of_the_source(pop, tmp_path, tiny_model, capsys, one_torch_thread):
    from lakhnes.formats.midi import read_midi

    out = tmp_path / "k.mid"
    assert main(["generate", "-m", tiny_model, "--keep", "P1", str(pop), "--from", "20", "--to", "26", "--seed", "0",
                 "-q", "-o", str(out)]) == 0
    song = read_midi(out)
    assert abs(song.seconds - 6.0) < 0.05 and len(song.notes["P1"]) > 3
    assert main(["generate", "-m", tiny_model, "--rhythm", str(pop), "--from", "20", "--seconds", "4", "-q",
                 "-o", str(out)]) == 0
    assert abs(read_midi(out).seconds - 4.0) < 0.05
    capsys.readouterr()
    for extra, msg in ((["--from", "9", "--to", "3"], "--to 3 must be after --from 9"),
                       (["--to", "5", "--seconds", "3"], "not both"), (["--from", "inf"], "outside"),
                       (["--from", "nan"], "outside")):
        assert main(["generate", "-m", tiny_model, "--keep", "P1", str(pop), *extra, "-o", str(out)]) == 2
        assert msg in capsys.readouterr().err
    assert main(["generate", "-m", tiny_model, "--keep", "P1", str(pop), "--from", "999", "-o", str(out)]) == 1
    assert "is past the song's end (252.2 s)" in capsys.readouterr().err
    assert main(["generate", "-m", tiny_model, "--from", "3", "-o", str(out)]) == 2
    from lakhnes.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["generate"].format_help()
    assert "default: all of" in " ".join(text.split()) and "--from" in text


def test_studio_shows_the_tracks_and_sends_the_chosen_mapping(pop, tmp_path, one_torch_thread):
    pytest.importorskip("fastapi")
    import torch
    from fastapi.testclient import TestClient

    from lakhnes.models import build_model
    from lakhnes.studio.app import STATIC, create_app
    from lakhnes.studio.modes import Limits

    torch.manual_seed(0)
    app = create_app(model=build_model("transformer_xl", "tiny"), out_dir=tmp_path / "studio",
                     limits=Limits(max_seconds=4))
    with TestClient(app) as c:
        files = {"file": ("pop909_077.mid0", pop.read_bytes(), "audio/midi")}  # any name: MIDI by its content
        info = c.post("/api/tracks", files=files).json()
        assert info["mapped"] and info["map"] == "0=P1,1=P2,2=TR"
        assert [(t["name"], t["voice"], t["notes"]) for t in info["tracks"]] == [
            ("MELODY", "P1", 443), ("BRIDGE", "P2", 550), ("PIANO", "TR", 1120)]
        nes = sorted((pop.parent / "nesmdb").glob("*.mid"))[0]
        assert c.post("/api/tracks", files={"file": ("a.mid", nes.read_bytes())}).json()["mapped"] is False
        assert c.post("/api/tracks", files={"file": ("a.mid", b"junk")}).status_code == 400
        job = c.post("/api/jobs", data={"mode": "accompany", "keep": "P1", "seconds": "4", "seed": "1",
                                        "map": "0=-,1=P1,2=TR"}, files=files).json()
        assert job["params"]["map"] == "0=-,1=P1,2=TR", job
        bad = c.post("/api/jobs", data={"mode": "accompany", "keep": "P1", "map": "7=P1"}, files=files)
        assert bad.status_code == 400 and "no track 7" in bad.json()["detail"]
        app.state.jobs.join(timeout=60)
        done = c.get(f"/api/jobs/{job['id']}").json()
        assert done["status"] == "done", done
        p1 = done["songs"][0]["notes"]["voices"]["P1"]["pitch"]
        assert p1[:4] == [68, 61, 66, 68]  # the BRIDGE (the MELODY enters at 21 s)
    page = (STATIC / "index.html").read_text()
    assert ".mid0" in page and ".mid13" in page and "Any MIDI" in page and 'id="tracks"' in page
    assert "NES-MDB MIDI (.mid) or LakhNES TX1" not in page
    js = (STATIC / "app.js").read_text()
    assert "/api/tracks" in js and 'fd.append("map"' in js
