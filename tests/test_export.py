"""lakhnes.formats.files (formats by extension) and the ``lakhnes synth`` command."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import symusic

from lakhnes.cli import main
from lakhnes.core import tx1, vocab
from lakhnes.errors import InvalidInputError
from lakhnes.formats.files import kind_of, load, save, to_general_midi
from lakhnes.formats.midi import read_midi, to_symusic
from lakhnes.synth import peak_gain, render


@pytest.fixture
def song(nesmdb_fixture_files):
    return nesmdb_fixture_files[4]  # Super Mario Bros. 3 world map: all four voices, CC11 and CC12


def test_kind_of():
    assert kind_of("a.wav") == "wav" and kind_of("A.MID") == "mid" and kind_of("x.midi") == "mid"
    assert kind_of("x.gm.mid") == "gm.mid" and kind_of("x.tx1.txt") == "tx1" and kind_of("r.png") == "png"
    assert kind_of("x.txt") is None and kind_of(".wav") is None and kind_of("x") is None


def test_save_every_format_and_load_back(song, tmp_path):
    score = read_midi(song)
    for name in ("s.wav", "s.mid", "s.gm.mid", "s.tx1.txt", "s.png"):
        save(score, tmp_path / name)
    assert load(tmp_path / "s.mid") == score  # NES-MDB MIDI is lossless
    assert tx1.score_to_text(load(tmp_path / "s.tx1.txt")) == tx1.score_to_text(score)
    audio, sr = sf.read(str(tmp_path / "s.wav"), dtype="float32")
    assert sr == 44100 and len(audio) == score.end
    gain = peak_gain(score)  # WAV is written with its peak at -1 dBFS (PEAK_DB) by default
    assert np.allclose(audio, render(score) * gain, atol=1.5 / 32767)
    assert abs(np.abs(audio).max() - 10 ** (-1 / 20)) < 2 / 32767
    save(score, tmp_path / "raw.wav", peak_db=None)  # the chip's own level
    raw, _ = sf.read(str(tmp_path / "raw.wav"), dtype="float32")
    assert np.allclose(raw, render(score), atol=1.5 / 32767) and np.abs(raw).max() < 0.5
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))


def test_general_midi_export(song):
    score = read_midi(song)
    gm = to_general_midi(score)
    tracks = {t.name: t for t in gm.tracks}
    assert tracks["p1"].program == 80 and tracks["p2"].program == 80 and tracks["tr"].program == 38
    assert tracks["no"].is_drum
    drums = {int(n.pitch) for n in tracks["no"].notes}
    assert drums and drums <= {36, 38, 42}
    vel = [n.velocity for n in tracks["p1"].notes]
    assert max(vel) > 15  # scaled from NES volume to MIDI velocity
    assert {int(n.velocity) for n in tracks["tr"].notes} == {100}
    assert all(c.number == 11 for c in tracks["p1"].controls)
    assert symusic.Score.from_midi(gm.dumps_midi()).note_num() == score.num_notes


def test_load_token_ids(song, tmp_path):
    ids = tx1.song_ids(tx1.score_to_events(read_midi(song)))
    np.save(tmp_path / "ids.npy", ids)
    score = load(tmp_path / "ids.npy")
    assert score.num_notes == read_midi(song).num_notes
    np.save(tmp_path / "bad.npy", np.array([[1, 2]]))
    with pytest.raises(InvalidInputError, match="1-D integer"):
        load(tmp_path / "bad.npy")
    # TX1 as LakhNES' tx1_to_midi reads it: a NOTEOFF for a silent voice does nothing, <S> is
    # skipped, and a song with neither notes nor waits is empty
    np.save(tmp_path / "off.npy", np.array([0, vocab.VOICE_OFF["P1"]], dtype=np.uint16))
    with pytest.raises(InvalidInputError, match="off.npy: empty song"):
        load(tmp_path / "off.npy")
    on = vocab.noteon_id("P1", 60)
    np.save(tmp_path / "off2.npy", np.array([0, vocab.VOICE_OFF["P1"], on, vocab.WAIT_BASE + 99], dtype=np.uint16))
    assert load(tmp_path / "off2.npy").notes["P1"].tolist() == [(0, 100, 60, 15)]


def test_load_and_save_errors(tmp_path, song):
    with pytest.raises(InvalidInputError, match="unknown file type"):
        load(tmp_path / "x.ogg")
    with pytest.raises(InvalidInputError, match="no such file"):
        load(tmp_path / "x.mid")
    (tmp_path / "junk.mid").write_bytes(b"hello")
    with pytest.raises(InvalidInputError, match=r"junk.mid: not a MIDI file"):
        load(tmp_path / "junk.mid")
    (tmp_path / "bin.tx1.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidInputError, match=r"bin.tx1.txt: cannot read TX1 text"):
        load(tmp_path / "bin.tx1.txt")
    (tmp_path / "dir.mid").mkdir()
    with pytest.raises(InvalidInputError, match="is a folder"):
        load(tmp_path / "dir.mid")
    (tmp_path / "empty.tx1.txt").write_text("")
    with pytest.raises(InvalidInputError, match="empty TX1 file"):
        load(tmp_path / "empty.tx1.txt")
    with pytest.raises(InvalidInputError, match="cannot save"):
        save(read_midi(song), tmp_path / "x.mp3")


def test_cli_synth(song, tmp_path, capsys):
    outs = [tmp_path / n for n in ("a.wav", "a.mid", "a.tx1.txt", "a.png")]
    args = ["synth", str(song)] + [x for o in outs for x in ("-o", str(o))]
    assert main(args + ["--mute", "P2,no", "--duty", "1"]) == 0
    assert all(o.exists() for o in outs)
    muted = read_midi(outs[1])
    assert not len(muted.notes["P2"]) and not len(muted.notes["NO"]) and len(muted.notes["P1"])
    audio, _ = sf.read(str(outs[0]), dtype="float32")
    full = read_midi(song)  # normalised by the full song's gain: the muted voices make no one louder
    assert np.allclose(audio, render(full, duty=1, mute="P2,NO") * peak_gain(full, duty=1), atol=1.5 / 32767)
    assert main(args[:4] + ["--mute", "P2,no", "--duty", "1", "--raw-level"]) == 0
    raw, _ = sf.read(str(outs[0]), dtype="float32")
    assert np.allclose(raw, render(full, duty=1, mute="P2,NO"), atol=1.5 / 32767)
    assert main(["synth", str(outs[2]), "-o", str(tmp_path / "b.wav"), "--no-filters"]) == 0
    raw, _ = sf.read(str(tmp_path / "b.wav"), dtype="float32")
    assert raw.min() >= 0  # unfiltered: the mixer's unipolar level
    assert main(["synth", str(outs[2]), "-o", str(tmp_path / "c.wav"), "--filters", "lp14k"]) == 0
    low, _ = sf.read(str(tmp_path / "c.wav"), dtype="float32")
    score = tx1.read_tx1(outs[2])
    assert np.allclose(low, render(score, filters="lp14k") * peak_gain(score, filters="lp14k"), atol=1.5 / 32767)
    # NES-MDB MIDI: General MIDI programs square lead, saw lead, synth bass; noise on the drum channel
    assert main(["synth", str(song), "-o", str(tmp_path / "full.mid")]) == 0
    tracks = {t.name: t for t in symusic.Score(str(tmp_path / "full.mid")).tracks}
    assert [tracks[n].program for n in ("p1", "p2", "tr")] == [80, 81, 38] and tracks["no"].is_drum


def test_cli_synth_errors(tmp_path, capsys, song):
    (tmp_path / "bad.mid").write_bytes(b"MThd")
    assert main(["synth", str(tmp_path / "bad.mid"), "-o", str(tmp_path / "x.wav")]) == 1
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'bad.mid'}: corrupt MIDI")
    assert main(["synth", str(tmp_path / "in.ogg"), "-o", str(tmp_path / "x.wav")]) == 1
    assert "unknown file type" in capsys.readouterr().err
    (tmp_path / "plain").write_text("")
    assert main(["synth", str(song), "-o", str(tmp_path / "plain" / "x.wav")]) == 1
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'plain' / 'x.wav'}: cannot write " \
        f"({tmp_path / 'plain'} is a file, not a folder)"
    assert main(["synth", str(song), "-o", str(tmp_path / "x.flac")]) == 2
    assert "unknown output type" in capsys.readouterr().err
    assert main(["synth", str(song), "-o", str(tmp_path / "x.wav"), "--mute", "P3"]) == 2
    assert "cannot mute 'P3'" in capsys.readouterr().err
    assert main(["synth", str(song), "-o", str(tmp_path / "x.wav"), "--filters", "hp90,notch"]) == 2
    assert "unknown filter 'notch'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["synth", str(song), "-o", str(tmp_path / "x.wav"), "--filters", "hp90", "--no-filters"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["synth", str(song), "-o", str(tmp_path / "x.wav"), "--duty", "4"])
    assert e.value.code == 2
    assert not (tmp_path / "x.wav").exists()
    pitch = tmp_path / "high.tx1.txt"
    pitch.write_text("P1_NOTEON_109\nWT_100\n")
    assert main(["synth", str(pitch), "-o", str(tmp_path / "x.wav")]) == 1
    assert "'P1_NOTEON_109' at 0.000 s is outside the P1 range 33-108" in capsys.readouterr().err
    score = read_midi(song)  # a MIDI note out of range: the error names voice, time and pitch
    score.notes["TR"]["pitch"][3] = 12
    to_symusic(score).dump_midi(str(tmp_path / "low.mid"))  # write_midi would not check either
    assert main(["synth", str(tmp_path / "low.mid"), "-o", str(tmp_path / "x.wav")]) == 1
    t = score.notes["TR"]["start"][3] / 44100
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'low.mid'}: voice TR: pitch 12 at {t:.3f} s is outside 21-108"
    assert not (tmp_path / "x.wav").exists()
