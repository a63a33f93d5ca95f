"""Hostile options and requests (a probe's findings): one line and no traceback for every out-of-range
value, memory that does not grow with --num, no near-empty or half-written outputs."""

from __future__ import annotations

import pytest

from lakhnes.cli import main
from lakhnes.core.score import NesScore, make_notes
from lakhnes.formats.midi import write_midi


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    import torch

    from lakhnes.models import build_model, save_model

    torch.manual_seed(0)
    return str(save_model(build_model("transformer_xl", "tiny"), tmp_path_factory.mktemp("tiny")))


@pytest.fixture
def only_p1(tmp_path):
    s = NesScore(end=4 * 44100)
    s.notes["P1"] = make_notes([0, 44100], [22050, 66150], [60, 62], [10, 10])
    write_midi(s, tmp_path / "only_p1.mid")
    return tmp_path / "only_p1.mid"


HOSTILE = [
    (["--max-rest", "inf"], "--max-rest inf is outside"), (["--max-rest", "1e308"], "--max-rest 1e+308 is outside"),
    (["--temperature", "inf"], "--temperature inf"), (["--temperature", "1e308"], "--temperature 1e+308"),
    (["--temperature", "1e-300"], "--temperature 1e-300"), (["--temperature", "nan"], "--temperature nan"),
    (["--prime", "{only_p1}", "--prime-seconds", "inf"], "--prime-seconds inf"),
    (["--seed", "1180591620717411303424"], "--seed 1180591620717411303424 is outside"),
    (["--seed", "-1"], "--seed -1 is outside"), (["--device", "bogus"], "--device bogus: not a torch device"),
    (["--device", "cuda:99"], "--device cuda:99"), (["--num", "10000"], "--num 10000 is outside 1-1000"),
    (["--tokens", "1"], "--tokens 1: ask for at least"), (["--seconds", "1e-9"], "--seconds 1e-09: ask for at least"),
    (["--map", "A=P1"], "--map applies to the file of"), (["--wait-top-p", "0"], "--wait-top-p 0 is outside (0, 1]"),
    (["--wait-top-p", "nan"], "--wait-top-p nan is outside"),
]


def test_hostile_options_are_one_line_before_the_model(tmp_path, only_p1, capsys):
    out = [str(tmp_path / "o.wav"), str(tmp_path / "o.mid")]
    for extra, msg in HOSTILE:
        extra = [a.format(only_p1=only_p1) for a in extra]
        rc = main(["generate", "-m", str(tmp_path / "no-model"), *extra, "-q", "-o", out[0], "-o", out[1]])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and msg in err and "\n" not in err, (extra, err)
    assert not list(tmp_path.glob("o.*"))


def test_keep_of_a_silent_voice_is_one_line(tmp_path, only_p1, tiny_model, capsys):
    assert main(["generate", "-m", tiny_model, "--keep", "TR", str(only_p1), "-q", "-o", str(tmp_path / "o.mid")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"{only_p1}: --keep TR keeps nothing: the song has no TR notes (its voices: P1)"
    assert not (tmp_path / "o.mid").exists()


def test_num_is_sampled_in_batches_and_written_as_it_goes(tmp_path, tiny_model, monkeypatch, capsys,
                                                         one_torch_thread):
    import lakhnes.cli.generate as cli
    from lakhnes import generate as G

    sizes, real = [], G.sample

    def sample(model, **kw):
        sizes.append(kw["num"])
        written = sorted(p.name for p in tmp_path.glob("s_*.mid"))
        assert len(written) == sum(sizes[:-1])  # the batches before this one are on disk already
        return real(model, **kw)

    monkeypatch.setattr(G, "sample", sample)
    monkeypatch.setattr(cli, "BATCH", 2)
    assert main(["generate", "-m", tiny_model, "--num", "5", "--tokens", "64", "--seed", "3", "-q",
                 "-o", str(tmp_path / "s.mid")]) == 0
    assert sizes == [2, 2, 1]
    assert sorted(p.name for p in tmp_path.glob("s_*.mid")) == [f"s_{k}.mid" for k in range(1, 6)]
    capsys.readouterr()


def test_a_failed_output_leaves_none_and_an_empty_song_is_refused(tmp_path, tiny_model, monkeypatch, capsys):
    import lakhnes.cli.generate as cli
    from lakhnes import generate as G
    from lakhnes.errors import InvalidInputError

    real = cli.save

    def save(score, path, peak_db=-1.0):
        if str(path).endswith(".wav"):
            raise InvalidInputError("cannot render", str(path))
        real(score, path, peak_db)

    monkeypatch.setattr(cli, "save", save)
    args = ["generate", "-m", tiny_model, "--tokens", "32", "--seed", "0", "-q",
            "-o", str(tmp_path / "o.mid"), "-o", str(tmp_path / "o.wav"), "-o", str(tmp_path / "o.tx1.txt")]
    assert main(args) == 1
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'o.wav'}: cannot render"
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))
    monkeypatch.setattr(G, "sample", lambda model, **kw: [NesScore(end=44100, name="sample")])
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "the model wrote no notes" in err and "\n" not in err
    assert not list(tmp_path.glob("o.*"))



# --------------------------------------------------------------------- servers: body caps, study answers


def _stream(total_mb: int, sent: list, head: bytes = b""):
    async def gen():
        yield head
        for _ in range(total_mb):
            sent[0] += 1 << 20
            yield b"x" * (1 << 20)
    return gen()


def _post_chunked(app, url: str, total_mb: int, content_type: str, head: bytes = b"") -> tuple[int, str, int]:
    import asyncio

    import httpx

    sent = [0]

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            r = await c.post(url, content=_stream(total_mb, sent, head), headers={"content-type": content_type})
            return r.status_code, r.text

    status, text = asyncio.run(go())
    return status, text, sent[0]


@pytest.fixture
def study(tmp_path):
    pytest.importorskip("fastapi")
    from tests.listen_util import make_study

    return make_study(tmp_path / "study")


def test_body_caps_hold_for_chunked_requests(study, tmp_path):
    import torch

    from lakhnes.models import build_model
    from lakhnes.studio.app import create_app
    from lakhnes.studio.listen_routes import create_listen_app

    listen = create_listen_app(study.root)
    status, text, sent = _post_chunked(listen, "/listen/api/answers", 40, "application/json")
    assert status == 413 and "too large" in text and sent < 8 << 20
    torch.manual_seed(0)
    studio = create_app(model=build_model("transformer_xl", "tiny"), out_dir=tmp_path / "studio")
    part = (b'--xyz\r\nContent-Disposition: form-data; name="mode"\r\n\r\ncontinue\r\n--xyz\r\n'
            b'Content-Disposition: form-data; name="file"; filename="big.mid"\r\n'
            b"Content-Type: audio/midi\r\n\r\nMThd")
    for url, kind, head in (("/api/jobs", "multipart/form-data; boundary=xyz", part),
                            ("/api/songs/0123456789ab/render", "application/json", b'{"mute": ["')):
        status, text, sent = _post_chunked(studio, url, 40, kind, head)
        assert status == 413 and "too large" in text and sent < 8 << 20, (url, status, text)
    assert not list((tmp_path / "studio").rglob("*.tmp*"))


def test_study_answers_need_both_clips_fetched(study):
    from fastapi.testclient import TestClient

    from lakhnes.studio.listen_routes import create_listen_app

    with TestClient(create_listen_app(study.root)) as c:
        lid = c.post("/listen/api/listeners").json()["id"]
        batch = c.post(f"/listen/api/listeners/{lid}/batches", json={"test": "turing"}).json()
        answer = {"listener": lid, "batch": batch["id"], "pair": 0, "choice": "a"}
        r = c.post("/listen/api/answers", json=answer)
        assert r.status_code == 409 and r.json()["detail"] == "play both clips of pair 0 first"
        assert c.get(batch["pairs"][0]["a"]).status_code == 200
        assert c.post("/listen/api/answers", json=answer).status_code == 409
        assert c.get(batch["pairs"][0]["b"]).status_code == 200
        assert c.post("/listen/api/answers", json=answer).json()["next"] == 1


def test_csv_cells_cannot_be_formulas():
    import csv
    import io

    from lakhnes.listen.store import ANSWER_COLUMNS, answers_csv

    row = dict.fromkeys(ANSWER_COLUMNS, "x") | {"id": 1, "song_a": '=HYPERLINK("http://evil","x")',
                                               "song_b": "+cmd|' /C calc'!A0", "system_a": "@SUM(1+1)",
                                               "system_b": "-2+3", "clip_a": "\tx", "offset_a": -1.5}
    out = list(csv.DictReader(io.StringIO(answers_csv([row]))))[0]
    assert out["song_a"] == "'" + row["song_a"] and out["song_b"] == "'" + row["song_b"]
    assert out["system_a"] == "'@SUM(1+1)" and out["system_b"] == "'-2+3" and out["clip_a"] == "'\tx"
    assert out["offset_a"] == "-1.5"  # numbers stay numbers


def test_damaged_answers_database_and_busy_port_are_one_line(study, capsys):
    import socket

    db = study.root / "answers.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    for argv in (["listen", "results", str(study.root)], ["listen", "serve", str(study.root), "--port", str(port)]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"{db}: damaged answers database") and "\n" not in err, err
    db.unlink()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        assert main(["listen", "serve", str(study.root), "--port", str(port)]) == 1
        out = capsys.readouterr()
        assert out.out == "" and out.err.count("\n") == 1 and f"127.0.0.1:{port}: cannot listen" in out.err
    finally:
        busy.close()


def test_progress_prints_plain_lines_into_a_log(capsys):
    from lakhnes.progress import progress_bar

    assert list(progress_bar(range(3), desc="eval", unit="seg", disable=True, plain=True)) == [0, 1, 2]
    assert capsys.readouterr().err == ""  # disabled: silent
    items = list(progress_bar(range(5), desc="eval", unit="seg", disable=None, plain=True, every=0, initial=0))
    assert items == [0, 1, 2, 3, 4]
    lines = capsys.readouterr().err.splitlines()  # stderr is captured: not a terminal
    assert lines[0].startswith("eval: 1/5 seg (20%), ") and "min left" in lines[0]
    assert lines[-1].startswith("eval: 5/5 seg (100%)")



# --------------------------------------------------------------------- after kill -9


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_are_removed_on_the_next_write(tmp_path, fixtures, capsys):
    import os

    dead = _dead_pid()
    stale = tmp_path / f".out.wav.tmp{dead}"
    other = tmp_path / f".other.mid.tmp{dead}"
    live = tmp_path / f".busy.wav.tmp{os.getppid()}"  # a running process's: left alone
    for p in (stale, other, live):
        p.write_bytes(b"RIFF" + bytes(1000))
    song = sorted((fixtures / "nesmdb").glob("*.mid"))[0]
    assert main(["synth", str(song), "-o", str(tmp_path / "out.wav")]) == 0
    assert not stale.exists() and not other.exists() and live.exists()
    capsys.readouterr()


def test_studio_removes_a_killed_studios_temporary_folders(tmp_path):
    import os
    import time

    from lakhnes.studio.songs import SongStore

    root = tmp_path / "studio" / "songs"
    (root / ".tmp-0123456789ab").mkdir(parents=True)
    (root / ".tmp-0123456789ab" / "song.wav").write_bytes(bytes(100))
    old = time.time() - 3600
    os.utime(root / ".tmp-0123456789ab", (old, old))
    (root / "abcdefabcdef").mkdir()
    (root / "abcdefabcdef" / f".mute-P1.wav.tmp{_dead_pid()}").write_bytes(bytes(10))
    SongStore(tmp_path / "studio")
    assert sorted(p.name for p in root.rglob("*")) == ["abcdefabcdef"]


WORKER_SCRIPT = """
import os, sys, time
from pathlib import Path
from lakhnes.batch import run_batch

def slow(item):
    Path(sys.argv[1], str(os.getpid())).touch()
    time.sleep(60)

if __name__ == "__main__":
    for _ in run_batch(slow, [(str(i), i) for i in range(64)], workers=2, progress=False):
        pass
"""


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_batch_workers_die_with_their_parent(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "slow.py"
    script.write_text(WORKER_SCRIPT)
    pids = tmp_path / "pids"
    pids.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(pids)])
    try:
        end = time.monotonic() + 30
        while len(list(pids.iterdir())) < 2 and time.monotonic() < end:
            time.sleep(0.1)
        workers = [int(p.name) for p in pids.iterdir()]
        assert len(workers) == 2
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()

    def running(pid: int) -> bool:
        try:
            return " Z " not in open(f"/proc/{pid}/stat").read().split(")", 1)[1][:4]
        except OSError:
            return False

    end = time.monotonic() + 5
    while any(running(p) for p in workers) and time.monotonic() < end:
        time.sleep(0.1)
    assert not [p for p in workers if running(p)]
