"""Piano rolls: lanes, colours, pitch names, highlights, the ``lakhnes plot`` command."""

from __future__ import annotations

import numpy as np
import pytest

from lakhnes.cli import main
from lakhnes.core.score import NesScore, make_notes
from lakhnes.errors import InvalidInputError
from lakhnes.formats.midi import read_midi
from lakhnes.formats.png import COLORS, piano_roll, pitch_name


def test_pitch_names():
    assert pitch_name(60) == "C4" and pitch_name(69) == "A4" and pitch_name(21) == "A0" and pitch_name(61) == "C#4"


def test_piano_roll_lanes(nesmdb_fixture_files, tmp_path):
    score = read_midi(nesmdb_fixture_files[4])
    fig = piano_roll(score, tmp_path / "r.png", title="smb3", highlight=(1.0, 2.0))
    axes = fig.axes
    assert len(axes) == 4
    assert [a.get_ylabel().split("\n")[0] for a in axes] == ["Pulse 1", "Pulse 2", "Triangle", "Noise"]
    assert axes[-1].get_xlabel() == "time (s)"
    assert np.isclose(axes[-1].get_xlim()[1], score.seconds)
    for ax, v in zip(axes, ("P1", "P2", "TR", "NO"), strict=True):
        coll = ax.collections[0]
        assert len(coll.get_paths()) == len(score.notes[v])
        assert np.allclose(coll.get_facecolors()[0][:3], np.array(
            [int(COLORS[v][i : i + 2], 16) / 255 for i in (1, 3, 5)]))
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert any(lab.startswith("C") and lab[-1].isdigit() for lab in labels)
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_piano_roll_silent_voice_and_voice_highlight():
    s = NesScore(end=44100)
    s.notes["TR"] = make_notes([0], [22050], [45])
    fig = piano_roll(s, highlight=["tr"])
    assert any(t.get_text() == "(silent)" for t in fig.axes[0].texts)
    assert fig.axes[2].get_facecolor() != fig.axes[0].get_facecolor()
    with pytest.raises(InvalidInputError, match="cannot highlight"):
        piano_roll(s, highlight=["P5"])


def test_cli_plot(nesmdb_fixture_files, fixtures, tmp_path, capsys):
    assert main(["plot", str(nesmdb_fixture_files[0]), "-o", str(tmp_path / "a.png"), "--highlight", "0-0.5"]) == 0
    tx = sorted((fixtures / "tx1").glob("*.tx1.txt"))[0]
    assert main(["plot", str(tx), "-o", str(tmp_path / "b.png"), "--highlight", "P1,TR"]) == 0
    assert (tmp_path / "a.png").stat().st_size > 1000 and (tmp_path / "b.png").exists()
    assert main(["plot", str(tx), "-o", str(tmp_path / "b.jpg")]) == 2
    assert main(["plot", str(tmp_path / "none.mid"), "-o", str(tmp_path / "c.png")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["plot", str(tx), "-o", str(tmp_path / "c.png"), "--highlight", "P9"]) == 2
