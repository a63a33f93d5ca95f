import json
import shutil

import numpy as np

from lakhnes.cli import main
from lakhnes.data.shards import load_manifest, load_split


def test_encode_decode_folder(fixtures, tmp_path, capsys):
    src = tmp_path / "in"
    shutil.copytree(fixtures / "nesmdb", src / "sub")
    (src / "sub" / "broken.mid").write_bytes(b"MThd\x00\x00")
    (src / "empty.mid").write_bytes(b"")
    assert main(["encode", str(src), "-o", str(tmp_path / "tx1"), "-j", "2"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "7 converted, 2 failed"
    assert any(line.startswith(str(src / "empty.mid") + ": empty file") for line in err)
    assert any(line.startswith(str(src / "sub" / "broken.mid") + ": corrupt MIDI") for line in err)
    for ref in (fixtures / "tx1").glob("*.tx1.txt"):
        assert (tmp_path / "tx1" / "sub" / ref.name).read_bytes() == ref.read_bytes()

    assert main(["decode", str(tmp_path / "tx1"), "-o", str(tmp_path / "mid")]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == "7 converted, 0 failed"
    assert main(["encode", str(tmp_path / "mid"), "-o", str(tmp_path / "tx1b")]) == 0
    for ref in (fixtures / "tx1").glob("*.tx1.txt"):
        assert (tmp_path / "tx1b" / "sub" / ref.name).read_bytes() == ref.read_bytes()
    assert not list(tmp_path.rglob("*.tmp*"))


def test_every_bad_file_gets_one_line_and_the_batch_goes_on(fixtures, tmp_path, capsys, monkeypatch):
    import symusic

    import lakhnes.batch

    monkeypatch.setattr(lakhnes.batch, "MIN_PARALLEL", 1)  # take the worker-process path with few files
    good = fixtures / "nesmdb" / "324_SuperMarioBros_3_00_01World1Map.mid"
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(good, src / "good.mid")

    def midi(tracks) -> bytes:
        sm = symusic.Score(22050)
        for name, notes in tracks:
            t = symusic.Track(name=name, program=0)
            t.notes.extend(symusic.Note(a, d, p, 15) for a, d, p in notes)
            sm.tracks.append(t)
        return sm.dumps_midi()

    bad = {
        "corrupt.mid": (bytes(range(256)) * 4, "not a MIDI file"),
        "junk_header.mid": (b"MThd" + bytes(range(200)), "corrupt MIDI"),
        "truncated.mid": (good.read_bytes()[:300], "corrupt MIDI"),
        "piano.mid": (midi([("Piano", [(0, 100, 60)])]), "no NES tracks"),
        "chord.mid": (midi([("p1", [(0, 1000, 60), (0, 1000, 64)])]), "voice P1 is polyphonic"),
        "empty.mid": (b"", "empty file"),
        "big.mid": (None, "file too large (52.4 MB"),
    }
    for name, (data, _) in bad.items():
        if data is None:
            with open(src / name, "wb") as fh:
                fh.write(b"MThd")
                fh.truncate(50 * 1024 * 1024)
        else:
            (src / name).write_bytes(data)
    assert main(["encode", str(src), "-o", str(tmp_path / "out"), "-j", "2"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "1 converted, 7 failed"
    lines = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in err[:-1]}
    assert set(lines) == {str(src / n) for n in bad}
    for name, (_, reason) in bad.items():
        assert lines[str(src / name)].startswith(reason), (name, lines[str(src / name)])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.tx1.txt"]


def test_clashing_outputs_and_stray_text_files(fixtures, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        shutil.copy(fixtures / "tx1" / "012_AlphaMission_00_01Start.tx1.txt", d / "x.tx1.txt")
    (a / "README.txt").write_text("not a TX1 file")  # a folder's other .txt files are not inputs
    assert main(["decode", str(a), str(b / "x.tx1.txt"), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{b / 'x.tx1.txt'}: output {tmp_path / 'o' / 'x.mid'} is already written from {a / 'x.tx1.txt'}",
                   "1 converted, 1 failed"]
    shutil.copy(a / "x.tx1.txt", a / "plain.txt")  # a file named on the command line may have any suffix
    assert main(["decode", str(a / "plain.txt"), "-o", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "plain.mid").exists()


def test_decode_bad_text_and_usage(tmp_path, capsys):
    (tmp_path / "bad.tx1.txt").write_text("P1_NOTEON_60\nWT_x\n")
    assert main(["decode", str(tmp_path / "bad.tx1.txt"), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{tmp_path / 'bad.tx1.txt'}: line 2: wait 'WT_x' is not a whole number of samples"
    assert main(["decode", str(tmp_path / "nope.tx1.txt"), "-o", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.splitlines() == [f"{tmp_path / 'nope.tx1.txt'}: no such file or folder",
                                                    "0 converted, 1 failed"]
    assert main(["decode", str(tmp_path / "bad.tx1.txt"), "-o", str(tmp_path / "bad.tx1.txt")]) == 2
    assert "output must be a folder" in capsys.readouterr().err
    assert main(["encode", str(tmp_path), "-o", str(tmp_path / "o"), "-j", "0"]) == 2
    try:
        main(["encode", "-o"])
    except SystemExit as e:
        assert e.code == 2
    else:
        raise AssertionError("bad usage must exit 2")


def _nesmdb_folder(fixtures, tmp_path):
    root = tmp_path / "nesmdb_midi"
    files = sorted((fixtures / "nesmdb").glob("*.mid"))
    for split, chunk in (("train", files[:4]), ("valid", files[4:6]), ("test", files[6:])):
        (root / split).mkdir(parents=True)
        for f in chunk:
            shutil.copy(f, root / split / f.name)
    return root


def test_prepare_nesmdb_folder_is_deterministic(fixtures, tmp_path, capsys):
    root = _nesmdb_folder(fixtures, tmp_path)
    (root / "train" / "zz_corrupt.mid").write_bytes(b"MThd junk")
    assert main(["prepare", "nesmdb", str(root), "-o", str(tmp_path / "a")]) == 0
    assert main(["prepare", "nesmdb", str(root), "-o", str(tmp_path / "b"), "-j", "1"]) == 0
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name
    m = load_manifest(tmp_path / "a")
    reasons = {s["file"]: s["reason"] for s in m["skipped"]}
    assert reasons["train/zz_corrupt.mid"].startswith("corrupt MIDI")
    assert any("fewer than 10 tokens" in r for r in reasons.values())  # the empty Zelda song
    train = load_split(tmp_path / "a", "train")
    assert m["splits"]["train"]["songs"] == len(train) == len(train.names)
    assert m["splits"]["train"]["tokens"] == len(train.tokens)
    for song in train.songs():
        assert song[0] == song[-1] == 0 and len(song) >= 10
    assert np.all(np.asarray(train.tokens) < 631)
    out = capsys.readouterr().out
    assert json.loads(out.splitlines()[-1])["files"] == 8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_prepare_from_the_tarball_matches_the_folder(fixtures, tmp_path):
    import tarfile

    from lakhnes.data.nesmdb import prepare_nesmdb

    root = _nesmdb_folder(fixtures, tmp_path)
    with tarfile.open(tmp_path / "nesmdb_midi.tar.gz", "w:gz") as tar:
        tar.add(root, arcname="nesmdb_midi")
    m_dir = prepare_nesmdb(root, tmp_path / "a", progress=False)
    m_tar = prepare_nesmdb(tmp_path / "nesmdb_midi.tar.gz", tmp_path / "b", progress=False)
    assert m_tar["source"] == "nesmdb_midi.tar.gz"
    assert {**m_dir, "source": ""} == {**m_tar, "source": ""}
    for f in sorted((tmp_path / "a").glob("*.*")):
        if f.name != "manifest.json":
            assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name
    assert load_split(tmp_path / "b", "valid").names == [f.stem for f in sorted((root / "valid").glob("*.mid"))]


def test_interrupted_prepare_leaves_no_partial_output(fixtures, tmp_path, monkeypatch, capsys):
    import lakhnes.data.nesmdb

    root = _nesmdb_folder(fixtures, tmp_path)
    assert main(["prepare", "nesmdb", str(root), "-o", str(tmp_path / "out")]) == 0
    before = {f.name: f.read_bytes() for f in (tmp_path / "out").iterdir()}
    real, calls = lakhnes.data.nesmdb._convert, []

    def interrupted(item):
        calls.append(item)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(item)

    monkeypatch.setattr(lakhnes.data.nesmdb, "_convert", interrupted)
    for out in ("out", "fresh"):  # an earlier output stays as it was; a new one is not made
        calls.clear()
        assert main(["prepare", "nesmdb", str(root), "-o", str(tmp_path / out)]) == 130
    assert {f.name: f.read_bytes() for f in (tmp_path / "out").iterdir()} == before
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nesmdb_midi", "out"]


def test_prepare_rejects_a_non_nesmdb_source(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert main(["prepare", "nesmdb", str(tmp_path / "x"), "-o", str(tmp_path / "o")]) == 1
    assert "no train/valid/test folders" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["prepare", "nesmdb", str(tmp_path / "x"), "-o", str(tmp_path / "file")]) == 1
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'file'}: output must be a folder"
    assert (tmp_path / "file").read_text() == "x"


def test_prepare_full_nesmdb_tarball(shared_data, tmp_path):
    from lakhnes.data.nesmdb import prepare_nesmdb

    m = prepare_nesmdb(shared_data / "nesmdb_midi.tar.gz", tmp_path / "p", progress=False)
    assert m["files"] == 5278
    assert {s: m["splits"][s]["songs"] for s in m["splits"]} == {"train": 4497, "valid": 402, "test": 371}
    assert m["splits"]["test"]["tokens"] == 407513


def test_encode_reads_vgm_vgz_and_famitracker_text(fixtures, tmp_path, capsys):
    """encode reads every format formats/files.py reads: VGM/VGZ rips and FamiTracker text (from a
    folder by their names, named directly by name or content), as well as MIDI."""
    from lakhnes.formats.famitracker import read_famitracker
    from lakhnes.formats.files import save
    from lakhnes.formats.midi import read_midi
    from lakhnes.formats.vgm import write_vgm

    mid = fixtures / "nesmdb" / "324_SuperMarioBros_3_00_01World1Map.mid"
    ref = (fixtures / "tx1" / "324_SuperMarioBros_3_00_01World1Map.tx1.txt").read_text()
    src = tmp_path / "in"
    src.mkdir()
    score = read_midi(mid)
    write_vgm(score, src / "a.vgm", sample_exact=True)  # as a rip: the game's writes at their samples
    write_vgm(score, src / "b.vgz", sample_exact=True)
    save(score, src / "c.famitracker.txt")
    shutil.copy(src / "a.vgm", tmp_path / "rip.bin")  # a VGM known by its content ("Vgm ")
    assert main(["encode", str(src), str(tmp_path / "rip.bin"), "-o", str(tmp_path / "out"), "-j", "1"]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == "4 converted, 0 failed"
    out = tmp_path / "out"
    assert (out / "a.tx1.txt").read_text() == ref  # a VGM reads back as NES-MDB's MIDI of it
    assert (out / "b.tx1.txt").read_text() == ref
    assert (out / "rip.tx1.txt").read_text() == ref
    from lakhnes.core.tx1 import score_to_text

    assert (out / "c.tx1.txt").read_text() == score_to_text(read_famitracker(src / "c.famitracker.txt"))
    # --map is for MIDI: a VGM named with it gets one line
    assert main(["encode", str(src / "a.vgm"), "-o", str(tmp_path / "o2"), "--map", "0=P1"]) == 1
    assert "--map applies to MIDI files" in capsys.readouterr().err
