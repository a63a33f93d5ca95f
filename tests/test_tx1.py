import numpy as np
import pytest

from lakhnes import InvalidInputError, read_midi
from lakhnes.core import tx1, vocab
from lakhnes.core.score import NesScore, make_notes
from lakhnes.formats.midi import read_midi as read
from lakhnes.formats.midi import write_midi


def _pairs(fixtures):
    for f in sorted((fixtures / "nesmdb").glob("*.mid")):
        yield f, fixtures / "tx1" / (f.stem + ".tx1.txt")


def test_fixture_text_is_byte_identical_to_lakhnes(fixtures):
    for mid, ref in _pairs(fixtures):
        assert tx1.score_to_text(read_midi(mid)) == ref.read_text().rstrip("\n"), mid.name


def test_tx1_score_midi_score_tx1_is_identity(fixtures, tmp_path):
    for _, ref in _pairs(fixtures):
        text = ref.read_text()
        write_midi(tx1.text_to_score(text), tmp_path / "x.mid")
        assert tx1.score_to_text(read(tmp_path / "x.mid")) == text.rstrip("\n")


def test_event_rules():
    s = NesScore(end=1000)
    s.notes["P1"] = make_notes([0, 100, 300], [100, 200, 400], [60, 62, 64])  # legato, then a gap
    s.notes["NO"] = make_notes([100], [150], [5])
    s.notes["P2"] = make_notes([100], [200], [40])
    text = tx1.score_to_text(s).split("\n")
    assert text == [
        "P1_NOTEON_60", "WT_100", "P1_NOTEON_62", "P2_NOTEON_40", "NO_NOTEON_5", "WT_50", "NO_NOTEOFF",
        "WT_50", "P1_NOTEOFF", "P2_NOTEOFF", "WT_100", "P1_NOTEON_64", "WT_100", "P1_NOTEOFF", "WT_600",
    ]
    back = tx1.events_to_score(tx1.score_to_events(s))
    for v in ("P1", "P2", "NO"):
        assert back.notes[v][["start", "end", "pitch"]].tolist() == s.notes[v][["start", "end", "pitch"]].tolist()
    assert back.end == 1000


def test_ids_round_trip_and_song_wrapping(fixtures):
    text = (fixtures / "tx1" / "324_SuperMarioBros_3_00_01World1Map.tx1.txt").read_text()
    ev = tx1.text_to_events(text)
    ids = tx1.events_to_ids(ev)
    assert ids.dtype == np.uint16 and ids.max() < 631
    back = tx1.ids_to_events(ids)
    assert np.array_equal(back >= 0, ev >= 0)  # same structure; waits now on the grid
    assert set((-back[back < 0]).tolist()) <= set(vocab.WAITS.tolist())
    song = tx1.song_ids(ev)
    assert song[0] == song[-1] == vocab.START
    assert not vocab.IS_WAIT[song[1]] and not vocab.IS_WAIT[song[-2]]
    tx1.check_ids(song)


@pytest.mark.parametrize(
    "text, msg",
    [
        ("P1_NOTEON_60\nXX_NOTEON_3\n", "line 2: unknown symbol 'XX_NOTEON_3'"),
        ("P1_NOTEON_20\n", "line 1: pitch in 'P1_NOTEON_20' at 0.000 s is outside the P1 range 33-108"),
        ("WT_22050\nTR_NOTEON_200\n", "line 2: pitch in 'TR_NOTEON_200' at 0.500 s is outside the TR range"),
        ("P1_NOTEON_x\n", "line 1: pitch in 'P1_NOTEON_x' is not a number"),
        ("WT_--5\n", "line 1: wait 'WT_--5' is not a whole number"),
        ("WT_\u00b2\n", "line 1: wait 'WT_\u00b2' is not a whole number"),  # a superscript digit
        ("WT_1.5\n", "line 1: wait 'WT_1.5' is not a whole number"),
        ("WT_99999999999999999999999\n", "line 1: song too long"),
        ("NO_NOTEON_17\n", "outside the NO range 1-16"),
        ("WT_-5\n", "line 1: wait 'WT_-5' must be positive"),
        ("WT_abc\n", "line 1: wait 'WT_abc' is not a whole number"),
        ("P1_NOTEON_60\n\nWT_0\n", "line 3: wait 'WT_0' must be positive"),
    ],
)
def test_invalid_text_names_line_and_symbol(text, msg):
    with pytest.raises(InvalidInputError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        tx1.text_to_events(text, source="song.tx1.txt")


def test_read_tx1_errors_name_the_file(tmp_path):
    big = tmp_path / "big.tx1.txt"
    with open(big, "wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    with pytest.raises(InvalidInputError, match=r"big.tx1.txt: file too large \(52.4 MB; the limit is 34 MB\)"):
        tx1.read_tx1(big)
    with pytest.raises(InvalidInputError, match=r"missing.tx1.txt: cannot read file \(No such file"):
        tx1.read_tx1(tmp_path / "missing.tx1.txt")
    (tmp_path / "latin.tx1.txt").write_bytes(b"P1_NOTEON_60\nWT_5\xe9\n")
    with pytest.raises(InvalidInputError, match=r"latin.tx1.txt: cannot read TX1 text \(not UTF-8: .* at byte 17\)"):
        tx1.read_tx1(tmp_path / "latin.tx1.txt")


def test_check_ids_rejects_noteoff_of_silent_voice():
    with pytest.raises(InvalidInputError, match="P2_NOTEOFF while P2 is silent"):
        tx1.check_ids([vocab.START, vocab.VOICE_OFF["P2"]])


def test_valid_split_byte_identical_to_reference(nesmdb_midi_dir, tx1_reference_dir):
    refs = sorted((tx1_reference_dir / "nesmdb_tx1" / "valid").glob("*.tx1.txt"))
    assert len(refs) == 403
    for ref in refs:
        mid = nesmdb_midi_dir / "valid" / ref.name.replace(".tx1.txt", ".mid")
        text = ref.read_text()
        assert tx1.score_to_text(read_midi(mid)) == text.rstrip("\n"), ref.name
        # TX1 -> score -> MIDI bytes -> score -> TX1 is the identity
        from lakhnes.formats.midi import to_symusic

        again = read_midi(to_symusic(tx1.text_to_score(text)).dumps_midi())
        assert tx1.score_to_text(again) == text.rstrip("\n"), ref.name
