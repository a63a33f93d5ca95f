import numpy as np
import pytest
import symusic

from lakhnes import InvalidInputError, read_midi, write_midi
from lakhnes.core.score import VOICES, NesScore, make_notes


def test_read_nesmdb_fixture(nesmdb_fixture_files):
    s = read_midi(next(f for f in nesmdb_fixture_files if "SuperMarioBros" in f.name))
    assert s.end == 633_997  # the last time-signature event
    assert {v: len(s.notes[v]) for v in VOICES} == {"P1": 59, "P2": 41, "TR": 35, "NO": 77}
    assert len(s.volume["P1"]) == 319 and len(s.timbre["P1"]) == 108
    assert s.timbre["P1"]["value"].max() <= 3
    s.check()


def test_midi_round_trip_keeps_every_event(nesmdb_fixture_files, tmp_path):
    for f in nesmdb_fixture_files:
        s = read_midi(f)
        write_midi(s, tmp_path / "x.mid")
        assert read_midi(tmp_path / "x.mid") == s, f.name


def test_empty_song_keeps_its_length(nesmdb_fixture_files):
    s = read_midi(next(f for f in nesmdb_fixture_files if "Zelda" in f.name))
    assert s.num_notes == 0 and s.end == 117416


def test_slice():
    s = NesScore(end=1000)
    s.notes["P1"] = make_notes([0, 400], [300, 900], [60, 62])
    part = s.slice(200, 600)
    assert part.end == 400
    assert part.notes["P1"]["start"].tolist() == [0, 200] and part.notes["P1"]["end"].tolist() == [100, 400]


def _midi(tracks, tpq=22050) -> bytes:
    sm = symusic.Score(tpq)
    for name, notes in tracks:
        t = symusic.Track(name=name, program=0)
        for start, dur, pitch in notes:
            t.notes.append(symusic.Note(start, dur, pitch, 15))
        sm.tracks.append(t)
    return sm.dumps_midi()


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"RIFF1234WAVEfmt ", "not a MIDI file"),
        (b"MThd" + bytes(range(64)), "corrupt MIDI"),
        (_midi([("Piano", [(0, 480, 60)])], 480), "no NES tracks"),
        (_midi([("p1", [(0, 1000, 60), (500, 1000, 64)])]), "voice P1 is polyphonic"),
    ],
)
def test_bad_input_one_line_errors(tmp_path, data, reason):
    f = tmp_path / "bad.mid"
    f.write_bytes(data)
    with pytest.raises(InvalidInputError) as e:
        read_midi(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}: ") and reason in msg and "\n" not in msg


def test_truncated_and_huge_files(nesmdb_fixture_files, tmp_path):
    data = nesmdb_fixture_files[0].read_bytes()
    f = tmp_path / "trunc.mid"
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match="corrupt MIDI"):
        read_midi(f)
    big = tmp_path / "big.mid"
    with open(big, "wb") as fh:
        fh.write(b"MThd")
        fh.truncate(50 * 1024 * 1024)
    with pytest.raises(InvalidInputError, match="too large"):
        read_midi(big)
    with pytest.raises(InvalidInputError, match="cannot read"):
        read_midi(tmp_path / "missing.mid")


def test_check_flags_out_of_range_pitch():
    s = NesScore(end=100)
    s.notes["TR"] = make_notes([0], [50], [12])
    with pytest.raises(InvalidInputError, match="TR: pitch 12"):
        s.check()
    assert np.array_equal(s.notes["TR"]["pitch"], [12])
