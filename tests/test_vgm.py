"""VGM: score -> VGM -> score round trips (on the driver's frame grid, and sample-exact), writes once a
frame and only of changed registers, the file layout, bad files, and (with ../shared/data) the
reader against NES-MDB's own MIDI and LakhNES' TX1 for a sample of the valid split."""

from __future__ import annotations

import gzip
import struct
import tarfile
import time

import numpy as np
import pytest

from lakhnes.core import tx1
from lakhnes.core.score import CTRL_DTYPE, VOICES, NesScore, make_notes
from lakhnes.errors import InvalidInputError
from lakhnes.formats import files
from lakhnes.formats.apu_driver import FRAME, frame_grid, frame_phase, register_writes
from lakhnes.formats.midi import read_midi
from lakhnes.formats.vgm import parse, read_vgm, vgm_bytes, write_vgm


def _vgm(score: NesScore, frame: float | None = FRAME) -> bytes:
    writes, n = register_writes(score, frame=frame)
    return vgm_bytes(writes, n, title=score.name)


def _step(curve: np.ndarray, at: np.ndarray, default: int) -> np.ndarray:
    i = np.searchsorted(curve["time"], at, side="right") - 1
    return np.where(i >= 0, curve["value"][np.maximum(i, 0)] if len(curve) else default, default)


def assert_same_music(a: NesScore, b: NesScore) -> None:
    """Same notes and volume curves; the same duty/noise mode wherever a note sounds."""
    assert a.end == b.end
    for v in VOICES:
        np.testing.assert_array_equal(a.notes[v], b.notes[v], err_msg=v)
        np.testing.assert_array_equal(a.volume[v], b.volume[v], err_msg=v)
        at = a.notes[v]["start"]
        default = 2 if v in ("P1", "P2") else 0
        np.testing.assert_array_equal(_step(a.timbre[v], at, default), _step(b.timbre[v], at, default))


def _as_read(grid: NesScore) -> NesScore:
    """A song on the frame grid as the VGM reader reads it: a triangle note on the first frame one
    sample late (the reader clocks the linear counter on the sample after the start, as NES-MDB did)."""
    tr = grid.notes["TR"]
    if len(tr) and tr["start"][0] == 0:
        tr["start"][0] = 1
    return grid


def test_nesmdb_fixtures_round_trip(nesmdb_fixture_files):
    """Sample-exact writes give the song back; per-frame writes give it back on the frame grid."""
    for f in nesmdb_fixture_files:
        score = read_midi(f)
        back = read_vgm(_vgm(score, frame=None), name=score.name)
        assert_same_music(back, score)
        assert tx1.score_to_text(back) == tx1.score_to_text(score)
        grid = _as_read(frame_grid(score))
        grid.check()
        assert_same_music(read_vgm(_vgm(score), name=score.name), grid)
        starts = np.concatenate([grid.notes[v]["start"] for v in VOICES])
        off = frame_phase(score)
        k = np.round((starts - off) / FRAME)
        assert np.all(np.abs(starts - np.maximum(np.round(off + k * FRAME), 0)) <= 1)


def test_frame_grid_keeps_lengths_and_frame_volumes():
    score = NesScore(end=4000)
    score.notes["P1"] = make_notes([100, 800, 3000], [500, 2900, 3300], [60, 62, 64], [5, 6, 7])
    score.volume["P1"] = np.array([(900, 9), (1200, 3), (1300, 4), (2000, 6)], dtype=CTRL_DTYPE)
    g = frame_grid(score, frame=735, offset=0)
    # 400 samples: one frame; 2100: three frames; 300: at least one frame
    assert g.notes["P1"].tolist() == [(0, 735, 60, 5), (735, 2940, 62, 9), (2940, 3675, 64, 7)]
    # 1200 and 1300 fall on one frame: the last wins; 2000 is 6 again: nothing to write
    assert g.volume["P1"].tolist() == [(1470, 4), (2205, 6)]
    nxt = frame_grid(score, frame=735, onset="next", offset=0)
    assert nxt.notes["P1"].tolist()[0] == (735, 1470, 60, 5)


def test_shifted_frame_grid_round_trips_exactly():
    """A song whose changes sit on a driver's frames at some offset (733.8 samples apart, starting
    at sample 321.4) is written at exactly those times and reads back unchanged."""
    rng = np.random.default_rng(7)
    off = 321.37

    def at(k):
        return np.round(off + np.asarray(k) * FRAME).astype(np.int64)

    score = NesScore(end=int(at(130)), name="shifted")
    for v, lo, hi in (("P1", 48, 84), ("P2", 48, 84), ("TR", 36, 72), ("NO", 1, 16)):
        k0 = np.sort(rng.choice(np.arange(1, 120), 20, replace=False))
        k1 = np.minimum(np.append(k0[1:], 125), k0 + rng.integers(1, 6, len(k0)))
        score.notes[v] = make_notes(at(k0), at(k1), rng.integers(lo, hi, len(k0)), 1 if v == "TR" else 8)
        if v == "P1":  # a volume change on the second frame of each note that has one
            score.volume[v] = np.array([(int(at(a + 1)), 12) for a, b in zip(k0, k1, strict=True) if b - a > 1],
                                       dtype=CTRL_DTYPE)
    assert frame_phase(score) == pytest.approx(off, abs=0.5)
    writes, n = register_writes(score)
    times = np.array([t for t, _, _ in writes if t > 0])  # after the start's settings
    assert np.array_equal(times, at(np.round((times - off) / FRAME)))
    back = read_vgm(vgm_bytes(writes, n), name="shifted")
    assert_same_music(back, frame_grid(score))
    for v in VOICES:
        np.testing.assert_array_equal(back.notes[v], score.notes[v], err_msg=v)


def test_writes_once_a_frame_and_only_changes(nesmdb_fixture_files):
    """Writes come in one batch a frame, each register at most once in it, and only when its value
    changes ($400B again only to reload the triangle's length counter after $4015 enabled it);
    $4003/$4007 (a phase restart) only when the timer's high bits change."""
    for f in nesmdb_fixture_files:
        score = read_midi(f)
        writes, _ = register_writes(score)
        init, writes = writes[:6], writes[6:]
        assert all(t == 0 for t, _, _ in init)
        value = {r: v for _, r, v in init}
        times = sorted({t for t, _, _ in writes})
        off = frame_phase(score)  # the song's own frame phase; sample 0 is a frame too
        t = np.array([t for t in times if t > 0])
        assert np.array_equal(t, np.round(off + np.round((t - off) / FRAME) * FRAME).astype(np.int64))
        for t in times:
            batch = [(r, v) for s, r, v in writes if s == t]
            regs = [r for r, _ in batch]
            assert len(regs) == len(set(regs)), (f.name, t, batch)
            for r, v in batch:
                if value.get(r) == v:
                    assert r == 0x0B and (0x15, 0x0F) in batch, (f.name, t, hex(r), v)
                value[r] = v


def test_tx1_song_round_trip_and_layout(tmp_path):
    notes = {"P1": make_notes([100, 5000, 9000], [4000, 9000, 20000], [60, 72, 33]),
             "P2": make_notes([0, 800], [700, 30000], [108, 64], [7, 3]),
             "TR": make_notes([300, 10000], [10000, 15000], [21, 45], 1),
             "NO": make_notes([2000, 2100], [2100, 6000], [1, 16], [15, 4])}
    score = NesScore(notes=notes, end=44100, name="Song")
    score.volume["P2"] = np.array([(1000, 9), (20000, 0), (25000, 12)], dtype=CTRL_DTYPE)
    score.timbre["NO"] = np.array([(2100, 1)], dtype=CTRL_DTYPE)
    out = tmp_path / "song.vgm"
    write_vgm(score, out, sample_exact=True)
    _check_exact_song(files.load(out), notes)
    files.save(score, out)  # once a frame
    data = out.read_bytes()
    assert data[:4] == b"Vgm " and struct.unpack_from("<I", data, 8)[0] == 0x161
    assert struct.unpack_from("<I", data, 0x84)[0] == 1789772
    assert struct.unpack_from("<I", data, 4)[0] + 4 == len(data)
    assert struct.unpack_from("<I", data, 0x18)[0] == 44100
    gd3 = 0x14 + struct.unpack_from("<I", data, 0x14)[0]
    assert data[gd3:gd3 + 4] == b"Gd3 " and data[gd3 - 1] == 0x66
    tag = data[gd3 + 12:].decode("utf-16-le")
    assert "Song" in tag and "lakhnes" in tag
    back = files.load(out)
    grid = _as_read(frame_grid(score))
    for v in ("P1", "TR", "NO"):
        np.testing.assert_array_equal(back.notes[v], grid.notes[v], err_msg=v)
    assert back.notes["P2"]["pitch"].tolist() == [108, 64, 64]  # the volume-0 dip, on the grid
    # .vgz, and a VGM known by its content alone
    files.save(score, tmp_path / "song.vgz")
    assert gzip.decompress((tmp_path / "song.vgz").read_bytes()) == data
    (tmp_path / "song.bin").write_bytes(data)
    assert files.file_kind(tmp_path / "song.bin") == "vgm"
    assert files.load_source(tmp_path / "song.vgz") == back


def _check_exact_song(back: NesScore, notes: dict) -> None:
    # P2's volume dips to 0 inside its note: two notes, as NES-MDB reads silence
    expect = NesScore(notes=dict(notes), end=44100)
    expect.notes["P2"] = make_notes([0, 800, 25000], [700, 20000, 30000], [108, 64, 64], [7, 3, 12])
    for v in VOICES:
        np.testing.assert_array_equal(back.notes[v], expect.notes[v], err_msg=v)
    assert back.volume["P2"]["value"].tolist() == [9]


@pytest.mark.parametrize("mutate, reason", [
    (lambda d: d[:100], "cut short"),
    (lambda d: b"Vgm " + b"\0" * 200, "not an NES VGM"),
    (lambda d: b"RIFF" + d[4:], "not a VGM file"),
    (lambda d: d[:0xC0] + b"\x01" + d[0xC1:], "unknown command"),
    (lambda d: b"\x1f\x8b\x08garbage", "gzip"),
    (lambda d: b"", "empty"),
])
def test_bad_vgm_is_one_line_naming_the_file(tmp_path, nesmdb_fixture_files, mutate, reason):
    data = _vgm(read_midi(nesmdb_fixture_files[0]))
    p = tmp_path / "bad.vgm"
    p.write_bytes(mutate(data))
    with pytest.raises(InvalidInputError) as e:
        files.load(p)
    assert reason in str(e.value) and str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def test_left_out_sound_is_counted(nesmdb_fixture_files):
    writes, n = register_writes(read_midi(nesmdb_fixture_files[0]))
    writes = [(0, 0x10, 0x0F), (0, 0x15, 0x1F), (0, 0x40, 1), (0, 0x81, 3)] + writes
    *_, info = parse(vgm_bytes(writes, n))
    assert set(info.left_out) == {"DPCM", "Famicom Disk System", "second NES APU"}


SAMPLE = 40


def test_valid_split_against_nesmdb(shared_data, tmp_path, tx1_reference_dir):
    """A sample of NES-MDB's valid split: VGM -> TX1 byte-identical to LakhNES' reference for
    >= 95 %, note F1 against NES-MDB's MIDI >= 0.99 (the whole split: benchmarks/bench_vgm.py)."""
    from lakhnes.data.vgm import note_f1

    with tarfile.open(shared_data / "nesmdb_vgm_valid.tar.gz") as t:
        members = sorted((m for m in t.getmembers() if m.name.endswith(".vgm")), key=lambda m: m.name)
        vgms = {m.name.rsplit("/", 1)[-1][:-4]: t.extractfile(m).read() for m in members[::len(members) // SAMPLE]}
    names = set(vgms)
    with tarfile.open(shared_data / "nesmdb_midi.tar.gz") as t:
        mids = {}
        for m in t:
            stem = m.name.rsplit("/", 1)[-1][:-4]
            if "/valid/" in m.name and stem in names:
                mids[stem] = t.extractfile(m).read()
    t0 = time.perf_counter()
    same, f1 = 0, []
    for stem, data in vgms.items():
        score = read_vgm(data, name=stem)
        ref = (tx1_reference_dir / "nesmdb_tx1" / "valid" / f"{stem}.tx1.txt").read_text()
        same += tx1.score_to_text(score).strip() == ref.strip()
        f1.append(note_f1(score, read_midi(mids[stem])))
    assert same / len(vgms) >= 0.95, (same, len(vgms))
    assert np.mean(f1) >= 0.99
    assert time.perf_counter() - t0 < 120


def test_generate_writes_vgm_and_famitracker_text(tmp_path):
    """`lakhnes generate -o song.vgm -o song.famitracker.txt`: the same song as its MIDI (the VGM on
    the driver's frame grid)."""
    pytest.importorskip("torch")
    from lakhnes.cli import main
    from lakhnes.formats.famitracker import read_famitracker

    outs = [tmp_path / "s.mid", tmp_path / "s.vgm", tmp_path / "s.famitracker.txt"]
    args = ["generate", "--tokens", "80", "--seed", "2", "-q"]
    assert main([*args, *(a for o in outs for a in ("-o", str(o)))]) == 0
    mid = read_midi(outs[0])
    assert tx1.score_to_text(read_vgm(outs[1])) == tx1.score_to_text(_as_read(frame_grid(mid)))
    assert sum(len(n) for n in read_famitracker(outs[2]).notes.values()) > 0
