"""FamiTracker text export 0.4.2: the file's layout, score -> text -> score on the row grid, and
note counts against the source."""

from __future__ import annotations

import numpy as np
import pytest

from lakhnes.core.score import VOICES, NesScore, make_notes
from lakhnes.errors import InvalidInputError
from lakhnes.formats import files
from lakhnes.formats.famitracker import FRAME, famitracker_text, read_famitracker, row_frames
from lakhnes.formats.midi import read_midi


def _on_grid(score: NesScore, row_len: int) -> dict[str, list[tuple[int, int]]]:
    """(row, pitch) of each note of at least a frame, the first of each row (what the writer keeps)."""
    out = {}
    for v in VOICES:
        n = score.notes[v]
        n = n[n["end"] - n["start"] >= FRAME]
        seen, cells = set(), []
        for s, p in zip(np.round(n["start"] / row_len).astype(int).tolist(), n["pitch"].tolist(), strict=True):
            if s not in seen and (not cells or s > cells[-1][0]):
                seen.add(s)
                cells.append((s, p))
        out[v] = cells
    return out


def test_layout_and_round_trip(tmp_path):
    notes = {"P1": make_notes([0, 4410, 8820], [4410, 8820, 13230], [60, 61, 108 - 12]),
             "P2": make_notes([2205], [22050], [45], [9]),
             "TR": make_notes([0, 13230], [13230, 30000], [33, 40], 1),
             "NO": make_notes([0, 8820], [1470, 10290], [16, 3], [12, 6])}
    score = NesScore(notes=notes, end=44100, name="Tune")
    out = tmp_path / "tune.famitracker.txt"
    files.save(score, out)
    text = out.read_text()
    lines = text.splitlines()
    assert lines[0] == "# FamiTracker text export 0.4.2"
    assert 'TITLE           "Tune"' in lines and "COLUMNS : 1 1 1 1 1" in lines
    assert any(ln.startswith("TRACK  64   3 150") for ln in lines)  # all notes on 3-frame rows
    row = next(ln for ln in lines if ln.startswith("ROW 00"))
    assert row == "ROW 00 : C-4 02 F ... : ... .. . ... : A-2 00 . ... : F-# 00 C ... : ... .. . ..."
    back = files.load(out)
    for v in VOICES:
        np.testing.assert_array_equal(back.notes[v]["pitch"], notes[v]["pitch"], err_msg=v)
        np.testing.assert_array_equal(back.notes[v]["start"], np.round(notes[v]["start"] / FRAME) * FRAME)
    assert back.notes["P2"]["velocity"].tolist() == [9]


def test_nesmdb_songs_on_the_row_grid(nesmdb_fixture_files, tmp_path):
    for f in nesmdb_fixture_files:
        score = read_midi(f)
        row_len = row_frames(score) * FRAME
        p = tmp_path / f"{score.name}.famitracker.txt"
        files.save(score, p)
        back = read_famitracker(p)
        want = _on_grid(score, row_len)
        for v in VOICES:
            got = list(zip((back.notes[v]["start"] // row_len).tolist(), back.notes[v]["pitch"].tolist(),
                           strict=True))
            fold = [(r, q if (q + 12 if v == "TR" else q) <= 107 else q - 12) for r, q in want[v]]
            assert got == fold, (f.name, v)
            long_notes = int((score.notes[v]["end"] - score.notes[v]["start"] >= FRAME).sum())
            assert abs(len(got) - long_notes) <= 0.1 * long_notes, (f.name, v)


@pytest.mark.parametrize("text, reason", [
    ("hello", "not a FamiTracker text export"),
    ("# FamiTracker text export 0.4.2\nTRACK 64 3 150 \"x\"\n", "no track with an order list"),
    ("# FamiTracker text export 0.4.2\nTRACK 64 3 150 \"x\"\nORDER 00 : 00 00 00 00 00\nPATTERN 00\n"
     "ROW 00 : Z-9 00 F ... : ... .. . ... : ... .. . ... : ... .. . ... : ... .. . ...\n", "bad note"),
    ("# FamiTracker text export 0.4.2\nTRACK 64 0 150 \"x\"\nORDER 00 : 00 00 00 00 00\n", "bad TRACK"),
    ("# FamiTracker text export 0.4.2\nTRACK x\n", "malformed line"),
])
def test_bad_text_is_one_line_naming_the_file(tmp_path, text, reason):
    p = tmp_path / "bad.famitracker.txt"
    p.write_text(text)
    with pytest.raises(InvalidInputError) as e:
        files.load(p)
    assert reason in str(e.value) and str(e.value).startswith(str(p))


def test_text_is_deterministic(nesmdb_fixture_files):
    score = read_midi(nesmdb_fixture_files[0])
    assert famitracker_text(score) == famitracker_text(score)
