"""``lakhnes serve`` as a user starts it (issue 14): the port is checked before the model loads and
before the banner; one API reference URL, served offline; the songs folder is capped."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
torch = pytest.importorskip("torch")

from lakhnes.formats.midi import read_midi  # noqa: E402
from lakhnes.studio.songs import SongStore  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from lakhnes.models import build_model, save_model

    torch.manual_seed(0)
    return save_model(build_model("transformer_xl", "tiny"), tmp_path_factory.mktemp("model"))


def test_serve_banner_docs_and_a_busy_port(tiny_model_dir, tmp_path):
    port = _free_port()
    argv = [sys.executable, "-m", "lakhnes", "serve", "--port", str(port), "-m", str(tiny_model_dir),
            "-o", str(tmp_path / "studio"), "--threads", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = first.stdout.readline()  # printed once the port is held and the model is loaded
        assert banner.startswith(f"LakhNES Studio: http://127.0.0.1:{port}/  (API: http://127.0.0.1:{port}/docs;")
        deadline = time.monotonic() + 120
        while True:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=10).read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, "the studio did not answer"
                time.sleep(0.2)
        assert "/openapi.json" in page and not re.search(r"(src|href)=[\"']?(https?:)?//", page)  # no CDN
        # a second server on the same port: one line, exit 1, no banner, before loading any model
        t0 = time.monotonic()
        second = subprocess.run(argv[:-4] + ["-m", str(tmp_path / "no_such_model")], capture_output=True,
                                text=True, timeout=120, env=env)
        assert second.returncode == 1 and second.stdout == ""
        assert second.stderr.splitlines() == [
            f"127.0.0.1:{port}: cannot listen (Address already in use); is another `lakhnes serve` running? "
            "Pick another --port"]
        assert time.monotonic() - t0 < 60
    finally:
        first.send_signal(signal.SIGINT)
        try:
            first.wait(timeout=30)
        except subprocess.TimeoutExpired:
            first.kill()


def test_songs_folder_keeps_the_newest(fixtures, tmp_path):
    score = read_midi(fixtures / "nesmdb" / "402_ZeldanoDensetsu_09_10SaveScreenPrototype.mid")
    store = SongStore(tmp_path, max_songs=3)
    ids = []
    for k in range(5):
        ids.append(store.add(score, {"mode": "new", "k": k})["id"])
        time.sleep(0.01)  # distinct creation times
    assert [s["id"] for s in store.list()] == ids[:1:-1]  # newest first, the two oldest gone
    assert sorted(p.name for p in (tmp_path / "songs").iterdir()) == sorted(ids[2:])
    assert SongStore(tmp_path / "all", max_songs=None).max_songs is None
    with pytest.raises(Exception, match="max_songs must be at least 1"):
        SongStore(tmp_path, max_songs=0)
