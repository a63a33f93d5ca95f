import json
import shutil

import numpy as np

from lakhnes.cli import main
from lakhnes.datasets import load_manifest, load_split


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


def test_decode_bad_text_and_usage(tmp_path, capsys):
    (tmp_path / "bad.tx1.txt").write_text("P1_NOTEON_60\nWT_x\n")
    assert main(["decode", str(tmp_path / "bad.tx1.txt"), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{tmp_path / 'bad.tx1.txt'}: line 2: wait 'WT_x' is not a whole number of samples"
    assert main(["decode", str(tmp_path / "nope.tx1.txt"), "-o", str(tmp_path / "o")]) == 1
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


def test_prepare_rejects_a_non_nesmdb_source(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert main(["prepare", "nesmdb", str(tmp_path / "x"), "-o", str(tmp_path / "o")]) == 1
    assert "no train/valid/test folders" in capsys.readouterr().err


def test_prepare_full_nesmdb_tarball(shared_data, tmp_path):
    from lakhnes.nesmdb import prepare_nesmdb

    m = prepare_nesmdb(shared_data / "nesmdb_midi.tar.gz", tmp_path / "p", progress=False)
    assert m["files"] == 5278
    assert {s: m["splits"][s]["songs"] for s in m["splits"]} == {"train": 4497, "valid": 402, "test": 371}
    assert m["splits"]["test"]["tokens"] == 407513
