"""The studio's JSON API, driven by FastAPI's test client with a real tiny Transformer-XL."""

from __future__ import annotations

import io
import os
import re
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
torch = pytest.importorskip("torch")

from fastapi.testclient import TestClient  # noqa: E402

from lakhnes import synth  # noqa: E402
from lakhnes.core.score import SAMPLE_RATE  # noqa: E402
from lakhnes.errors import InvalidInputError  # noqa: E402
from lakhnes.formats.midi import read_midi  # noqa: E402
from lakhnes.studio.app import create_app  # noqa: E402
from lakhnes.studio.jobs import JobQueue, QueueFull  # noqa: E402
from lakhnes.studio.modes import Limits  # noqa: E402
from lakhnes.studio.songs import SongStore, mute_name  # noqa: E402

SMB3 = "324_SuperMarioBros_3_00_01World1Map"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from lakhnes.models import build_model, save_model

    torch.manual_seed(0)
    return save_model(build_model("transformer_xl", "tiny"), tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model decodes far faster on one thread of a busy machine
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def studio(tiny_model_dir, tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("studio")
    app = create_app(tiny_model_dir, out, limits=Limits(max_seconds=4, max_num=2))
    with TestClient(app) as client:
        client.out = out
        yield client


def run_job(client, data, files=None) -> dict:
    r = client.post("/api/jobs", data=data, files=files)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    client.app.state.jobs.join(timeout=120)
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "done", job
    assert job["progress"] == 1.0
    return job


def midi_of(client, song) -> object:
    r = client.get(song["files"]["mid"])
    assert r.status_code == 200
    return read_midi(r.content)


def upload(fixtures, name):
    path = fixtures / ("nesmdb" if name.endswith(".mid") else "tx1") / name
    return {"file": (name, path.read_bytes(), "application/octet-stream")}


# ----------------------------------------------------------------------------- page and docs


def test_page_static_files_and_openapi(studio):
    page = studio.get("/")
    assert page.status_code == 200 and "LakhNES" in page.text and "/static/app.js" in page.text
    for f in ("app.js", "style.css"):
        assert studio.get(f"/static/{f}").status_code == 200
    paths = studio.get("/openapi.json").json()["paths"]
    for p in ("/api/jobs", "/api/jobs/{job_id}", "/api/songs", "/api/songs/{song_id}/render",
              "/api/files/{song_id}/{name}"):
        assert p in paths
    # one API reference, /docs: the package's own page (no CDN: it draws /openapi.json itself)
    docs = studio.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", docs.text)  # nothing loaded from another host
    assert studio.get("/reference").status_code == 404 and studio.get("/redoc").status_code == 404
    info = studio.get("/api/info").json()
    assert info["limits"]["max_seconds"] == 4 and info["limits"]["max_upload_bytes"] == 2 * 1024 * 1024
    assert [m["id"] for m in info["modes"]] == ["new", "continue", "rhythm", "accompany"]
    assert info["model"].startswith("TransformerXL")


# ----------------------------------------------------------------------------- each mode


def test_new_song_files_and_notes_agree(studio):
    job = run_job(studio, {"mode": "new", "seconds": "1.5", "seed": "3", "temperature": "0.9", "top_k": "16"})
    (song,) = job["songs"]
    assert song["mode"] == "new" and song["params"]["seed"] == 3 and song["seconds"] == 1.5
    assert song["highlight"] == {"span": None, "voices": []}
    score = midi_of(studio, song)
    assert score.end == int(1.5 * SAMPLE_RATE)
    for v, cols in song["notes"]["voices"].items():
        assert cols["pitch"] == score.notes[v]["pitch"].tolist()
        assert np.allclose(cols["start"], score.notes[v]["start"] / SAMPLE_RATE, atol=1e-4)
    wav = studio.get(song["files"]["wav"])
    assert wav.headers["content-type"] == "audio/wav"
    import soundfile as sf

    audio, sr = sf.read(io.BytesIO(wav.content))
    assert sr == SAMPLE_RATE and len(audio) == score.end
    tx1 = studio.get(song["files"]["tx1"])
    assert tx1.status_code == 200 and tx1.text.startswith(("P1_", "P2_", "TR_", "NO_", "WT_"))
    # the same seed makes the same song
    again = run_job(studio, {"mode": "new", "seconds": "1.5", "seed": "3", "temperature": "0.9", "top_k": "16"})
    assert again["songs"][0]["notes"] == song["notes"]
    assert again["songs"][0]["id"] != song["id"]


def test_continue_keeps_the_prime(studio, fixtures):
    job = run_job(studio, {"mode": "continue", "seconds": "1", "prime_seconds": "1.5", "seed": "1"},
                  upload(fixtures, f"{SMB3}.mid"))
    (song,) = job["songs"]
    assert song["source"] == f"{SMB3}.mid" and song["highlight"]["span"] == [0.0, 1.5]
    assert song["seconds"] == 2.5
    src = read_midi(fixtures / "nesmdb" / f"{SMB3}.mid")
    out = midi_of(studio, song)
    cut = int(1.5 * SAMPLE_RATE)
    for v in ("P1", "P2", "TR", "NO"):  # notes that start in the prime are the prime's notes
        a, b = src.notes[v], out.notes[v]
        a, b = a[a["start"] < cut], b[b["start"] < cut]
        assert b["start"].tolist() == a["start"].tolist() and b["pitch"].tolist() == a["pitch"].tolist()


def test_rhythm_keeps_the_timing_and_noise(studio, fixtures):
    job = run_job(studio, {"mode": "rhythm", "seconds": "1.5", "seed": "2"}, upload(fixtures, f"{SMB3}.tx1.txt"))
    (song,) = job["songs"]
    assert song["highlight"]["voices"] == ["NO"]
    src = read_midi(fixtures / "nesmdb" / f"{SMB3}.mid").slice(0, int(1.5 * SAMPLE_RATE))
    out = midi_of(studio, song)
    for v in ("P1", "P2", "TR", "NO"):
        assert len(out.notes[v]) == len(src.notes[v])
    assert out.notes["NO"]["pitch"].tolist() == src.notes["NO"]["pitch"].tolist()


def test_accompany_keeps_the_chosen_voice(studio, fixtures):
    job = run_job(studio, {"mode": "accompany", "seconds": "1", "keep": "p1", "seed": "4"},
                  upload(fixtures, f"{SMB3}.mid"))
    (song,) = job["songs"]
    assert song["highlight"] == {"span": None, "voices": ["P1"]}
    src = read_midi(fixtures / "nesmdb" / f"{SMB3}.mid").slice(0, SAMPLE_RATE)
    out = midi_of(studio, song)
    assert out.notes["P1"]["pitch"].tolist() == src.notes["P1"]["pitch"].tolist()


@pytest.mark.parametrize("name", [f"{SMB3}.vgm", f"{SMB3}.vgz", "rip.bin"])
def test_vgm_uploads_are_read_as_nesmdb_read_them(studio, fixtures, tmp_path, name):
    """An NES VGM rip (or VGZ; or either known by its content) primes a song like its NES-MDB MIDI."""
    from lakhnes.formats.vgm import write_vgm

    src = read_midi(fixtures / "nesmdb" / f"{SMB3}.mid")
    path = tmp_path / (name if name != "rip.bin" else "rip.vgz")
    write_vgm(src, path, sample_exact=True)  # as a rip: the game's writes at their samples
    job = run_job(studio, {"mode": "continue", "seconds": "1", "prime_seconds": "1.5", "seed": "1"},
                  {"file": (name, path.read_bytes(), "application/octet-stream")})
    (song,) = job["songs"]
    assert song["source"] == name and song["highlight"]["span"] == [0.0, 1.5]
    out, cut = midi_of(studio, song), int(1.5 * SAMPLE_RATE)
    for v in ("P1", "P2", "TR", "NO"):
        a, b = src.notes[v], out.notes[v]
        a, b = a[a["start"] < cut], b[b["start"] < cut]
        assert b["start"].tolist() == a["start"].tolist() and b["pitch"].tolist() == a["pitch"].tolist()
    r = studio.post("/api/tracks", files={"file": (name, path.read_bytes(), "application/octet-stream")})
    assert r.status_code == 200 and r.json()["mapped"] is False


def test_downloads_include_vgm_and_famitracker_text(studio, a_song, tmp_path):
    """Each song offers VGM and FamiTracker text, as the CLI writes them (the VGM reads back as the
    song's notes); songs made before these downloads existed get them on first request."""
    from lakhnes.formats.apu_driver import frame_grid
    from lakhnes.formats.famitracker import read_famitracker
    from lakhnes.formats.files import save
    from lakhnes.formats.vgm import parse, read_vgm

    files = a_song["files"]
    assert files["vgm"].endswith("/song.vgm") and files["ftm"].endswith("/song.famitracker.txt")
    score = midi_of(studio, a_song)
    r = studio.get(files["vgm"], params={"download": "1"})
    assert r.status_code == 200 and r.content[:4] == b"Vgm "
    assert f'lakhnes-{a_song["id"]}.vgm' in r.headers["content-disposition"]
    save(score, tmp_path / "x.vgm")  # the register writes `lakhnes synth song.mid -o x.vgm` writes
    for got, want in zip(parse(r.content)[:4], parse((tmp_path / "x.vgm").read_bytes())[:4], strict=True):
        assert np.array_equal(got, want)
    back = read_vgm(r.content)  # the song as a once-a-frame driver plays it (two notes in one frame: the later)
    grid = frame_grid(score)
    for v in ("P1", "P2", "TR", "NO"):
        assert back.notes[v]["pitch"].tolist() == grid.notes[v]["pitch"].tolist()
        assert np.abs(back.notes[v]["start"] - grid.notes[v]["start"]).max(initial=0) < SAMPLE_RATE // 60
    r = studio.get(files["ftm"], params={"download": "1"})
    assert r.status_code == 200 and r.text.startswith("# FamiTracker text export")
    assert f'lakhnes-{a_song["id"]}.famitracker.txt' in r.headers["content-disposition"]
    save(score, tmp_path / "x.famitracker.txt")  # what `lakhnes synth song.mid -o x.famitracker.txt` writes
    untitled = [[line for line in t.splitlines() if not line.startswith(("TITLE", "TRACK"))]
                for t in (r.text, (tmp_path / "x.famitracker.txt").read_text())]
    assert untitled[0] == untitled[1]
    assert read_famitracker(tmp_path / "x.famitracker.txt").num_notes > 0
    folder = studio.out / "songs" / a_song["id"]
    vgm = parse((folder / "song.vgm").read_bytes())
    for name in ("song.vgm", "song.famitracker.txt"):  # an older song without them
        (folder / name).unlink()
        assert studio.get(f"/api/files/{a_song['id']}/{name}").status_code == 200
    for got, want in zip(parse((folder / "song.vgm").read_bytes())[:4], vgm[:4], strict=True):
        assert np.array_equal(got, want)


def test_any_midi_is_mapped_onto_the_nes_voices(studio):
    import symusic

    sm = symusic.Score(480)
    piano = symusic.Track(name="Piano", program=0)
    for k, pitch in enumerate([60, 64, 67, 72, 67, 64, 60, 55]):
        piano.notes.append(symusic.Note(k * 240, 200, pitch, 90))
    sm.tracks.append(piano)
    job = run_job(studio, {"mode": "continue", "seconds": "1", "prime_seconds": "1", "seed": "6"},
                  {"file": ("piano.mid", sm.dumps_midi(), "audio/midi")})
    out = midi_of(studio, job["songs"][0])
    assert out.notes["P1"]["pitch"][:4].tolist() == [60, 64, 67, 72]  # the melody went to P1


def test_several_songs_and_history(studio):
    job = run_job(studio, {"mode": "new", "seconds": "1", "num": "2", "seed": "5"})
    ids = [s["id"] for s in job["songs"]]
    assert len(ids) == 2 and ids[0] != ids[1]
    history = studio.get("/api/songs").json()
    assert {s["id"] for s in history} >= set(ids)
    assert [s["created"] for s in history] == sorted((s["created"] for s in history), reverse=True)
    assert all("notes" not in s for s in history)
    one = studio.get(f"/api/songs/{ids[0]}").json()
    assert one["notes"] == job["songs"][0]["notes"]


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "name, data, status, message",
    [
        ("song.mid", b"", 400, "song.mid: empty file"),
        ("song.mid", b"hello, I am not a MIDI file", 400, "song.mid: not a MIDI file (no MThd header)"),
        ("song.mid", b"MThd\x00\x00\x00\x06\x00\x01\x00\x04\x01", 400, "song.mid: corrupt MIDI"),
        ("notes.wav", b"RIFF....WAVE", 400, "notes.wav: not a MIDI (.mid, .midi), TX1 (.tx1.txt), VGM (.vgm, "
         ".vgz) or FamiTracker text (.famitracker.txt) file"),
        ("bad.tx1.txt", b"P1_NOTEON_60\nBANANA\n", 400, "bad.tx1.txt: line 2: unknown symbol 'BANANA'"),
        ("big.mid", b"MThd" + bytes(2 * 1024 * 1024), 413, "big.mid: file too large"),
        ("huge.mid", b"MThd" + bytes(3 * 1024 * 1024), 413, "upload too large"),
        ("../../etc/evil.mid", b"nope", 400, "evil.mid: not a MIDI file"),
    ],
    ids=["empty", "not-midi", "corrupt", "wrong-type", "bad-tx1", "too-big", "huge", "path-in-name"],
)
def test_bad_uploads_are_refused_with_the_reason(studio, name, data, status, message):
    r = studio.post("/api/jobs", data={"mode": "continue", "seconds": "1"}, files={"file": (name, data)})
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(message)
    assert "/tmp" not in r.json()["detail"]  # the temporary upload path never leaks


@pytest.mark.parametrize(
    "data, message",
    [
        ({"mode": "continue", "seconds": "1"}, "mode 'continue' needs a song file"),
        ({"mode": "karaoke"}, "mode: unknown mode 'karaoke'"),
        ({"mode": "new", "seconds": "500"}, "seconds: 500 is outside 1-4"),
        ({"mode": "new", "seconds": "0"}, "seconds: 0 is outside"),
        ({"mode": "new", "num": "9"}, "num: 9 is outside 1-2"),
        ({"mode": "new", "temperature": "hot"}, "temperature: "),
        ({"mode": "new", "top_k": "-1"}, "top_k: -1 is outside"),
        ({"mode": "new", "seed": "-5"}, "seed: -5 is outside"),
        ({"mode": "accompany", "keep": "P1,XX"}, "keep: unknown voice 'XX'"),
        ({"mode": "accompany", "keep": "P1,P2,TR,NO"}, "keep: choose one to three voices"),
        ({}, "mode: "),
    ],
)
def test_bad_options_are_refused(studio, data, message):
    r = studio.post("/api/jobs", data=data)
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith(message)


# ----------------------------------------------------------------------------- files and safety


@pytest.fixture(scope="module")
def a_song(studio):
    return run_job(studio, {"mode": "new", "seconds": "1", "seed": "9"})["songs"][0]


@pytest.mark.parametrize(
    "url",
    [
        "/api/files/../../etc/passwd",
        "/api/files/{id}/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/files/{id}/%2e%2e%2f{id}%2fsong.json",
        "/api/files/..%2f..%2fetc/passwd",
        "/api/files/%2e%2e/song.json",
        "/api/files/{id}/..",
        "/api/files/{id}/secret.txt",
        "/api/files/{id}/song.json%00.wav",
        "/api/files/{ID}/song.wav",
        "/api/files/{id}x/song.wav",
        "/api/files/{id}/%2Fetc%2Fpasswd",
        "/api/files/{id}/mute-XX.wav",
        "/api/songs/..%2F..%2Fetc",
        "/api/jobs/..%2F..%2Fetc%2Fpasswd",
    ],
)
def test_path_traversal_is_refused(studio, a_song, url):
    (studio.out / "songs" / a_song["id"] / "secret.txt").write_text("secret")
    r = studio.get(url.format(id=a_song["id"], ID=a_song["id"].upper()))
    assert r.status_code in (400, 404), (url, r.status_code)
    assert b"secret" not in r.content and b"root:" not in r.content


def test_symlinks_out_of_the_folder_are_not_served(studio, a_song, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text('{"id": "000000000000", "created": 0, "secret": true}')
    songs = studio.out / "songs"
    os.symlink(tmp_path, songs / "abcdefabcdef")  # a song folder that points elsewhere
    (tmp_path / "song.json").write_text(outside.read_text())
    link = songs / a_song["id"] / "mute-NO.wav"  # a file name the pattern allows, pointing out
    os.symlink(outside, link)
    try:
        assert studio.get("/api/files/abcdefabcdef/song.json").status_code == 404
        assert studio.get(f"/api/files/{a_song['id']}/mute-NO.wav").status_code == 404
        assert "abcdefabcdef" not in {s["id"] for s in studio.get("/api/songs").json()}
    finally:
        link.unlink()
        (songs / "abcdefabcdef").unlink()


def test_store_file_path_checks_names(tmp_path):
    store = SongStore(tmp_path)
    d = tmp_path / "songs" / ("0" * 12)
    d.mkdir()
    for name in ("song.wav", "song.wav\n", "notes.txt"):
        (d / name).write_bytes(b"x")
    (tmp_path / "songs" / ("0" * 12 + "\n")).mkdir()
    (tmp_path / "songs" / ("0" * 12 + "\n") / "song.wav").write_bytes(b"x")
    assert store.file_path("0" * 12, "song.wav") == d / "song.wav"
    bad = [("../songs", "song.wav"), ("abc", "song.wav"), ("1" * 12, "song.wav"), ("0" * 12, "../x"),
           ("0" * 12, "/etc/passwd"), (None, "song.wav"), ("0" * 12, None), ("0" * 12, "notes.txt"),
           ("0" * 12 + "\n", "song.wav"), ("0" * 12, "song.wav\n")]
    for song_id, name in bad:
        with pytest.raises(KeyError):
            store.file_path(song_id, name)
    assert mute_name(["NO", "P1"]) == "mute-P1-NO.wav" and mute_name([]) == "song.wav"
    with pytest.raises(InvalidInputError):
        mute_name(["P1", "P2", "TR", "NO"])


def test_failed_song_leaves_nothing_behind(tmp_path):
    from lakhnes.core.score import NesScore

    store = SongStore(tmp_path)
    with pytest.raises(InvalidInputError):
        store.add(NesScore(), {"mode": "new"})  # nothing to render
    assert list((tmp_path / "songs").iterdir()) == []


# ----------------------------------------------------------------------------- muted renders


def test_mute_rerenders_on_the_server(studio, a_song):
    sid = a_song["id"]
    r = studio.post(f"/api/songs/{sid}/render", json={"mute": ["TR", "P1"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["url"] == f"/api/files/{sid}/mute-P1-TR.wav" and body["mute"] == ["P1", "TR"]
    import soundfile as sf

    got, _ = sf.read(io.BytesIO(studio.get(body["url"]).content), dtype="int16")
    score = midi_of(studio, a_song)
    gain = synth.peak_gain(score)  # the studio plays songs at -1 dBFS; a muted render keeps the song's gain
    want = np.round(np.clip(synth.render(score, mute=("P1", "TR")) * gain, -1, 1) * 32767).astype(np.int16)
    # within one LSB: the server renders the stored score, this its MIDI (seed 9's song since the numpy
    # sampler: one sample of 44,100 rounds the other way)
    assert np.abs(got.astype(np.int32) - want).max() <= 1
    full, _ = sf.read(io.BytesIO(studio.get(a_song["files"]["wav"]).content), dtype="int16")
    assert len(full) == len(got)
    assert studio.post(f"/api/songs/{sid}/render", json={"mute": []}).json()["url"].endswith("/song.wav")
    bad = studio.post(f"/api/songs/{sid}/render", json={"mute": ["P1", "P2", "TR", "NO"]})
    assert bad.status_code == 400 and "all four" in bad.json()["detail"]
    assert studio.post(f"/api/songs/{sid}/render", json={"mute": ["XX"]}).status_code == 400
    assert studio.post("/api/songs/000000000000/render", json={"mute": ["P1"]}).status_code == 404


def test_cross_site_posts_and_foreign_hosts_are_refused(studio, tiny_model_dir, tmp_path):
    r = studio.post("/api/jobs", data={"mode": "new", "seconds": "1"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["detail"] == "cross-site request refused"
    same = studio.post("/api/jobs", data={"mode": "bogus"}, headers={"Origin": "http://testserver"})
    assert same.status_code == 400  # same origin: reaches the option checks
    from lakhnes.cli.serve import LOOPBACK_NAMES

    app = create_app(tiny_model_dir, tmp_path, trusted_hosts=LOOPBACK_NAMES)
    client = TestClient(app, base_url="http://127.0.0.1:8000")
    assert client.get("/api/info").status_code == 200
    assert client.get("/api/info", headers={"Host": "rebind.example:8000"}).status_code == 400
    app.state.jobs.close()


def test_unknown_ids_are_404(studio):
    assert studio.get("/api/jobs/000000000000").status_code == 404
    assert studio.get("/api/songs/000000000000").status_code == 404
    assert studio.get("/api/files/000000000000/song.wav").status_code == 404


# ----------------------------------------------------------------------------- the job queue


def test_queue_runs_one_job_at_a_time_in_order():
    running, peak, order = [0], [0], []
    lock = threading.Lock()

    def run(job, report):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        report(0.5, "working")
        time.sleep(0.03)
        order.append(job.params["k"])
        with lock:
            running[0] -= 1
        if job.params["k"] == 2:
            raise InvalidInputError("bad song", "x.mid")
        if job.params["k"] == 3:
            raise RuntimeError("boom")
        return [job.params["k"]]

    q = JobQueue(run, max_waiting=8)
    try:
        jobs = [q.submit("new", {"k": k}) for k in range(6)]
        assert q.position(jobs[-1]) >= 1
        q.join(timeout=10)
        assert order == list(range(6)) and peak[0] == 1
        assert [j.status for j in jobs] == ["done", "done", "failed", "failed", "done", "done"]
        assert jobs[2].error == "x.mid: bad song" and jobs[3].error == "RuntimeError: boom"
        assert jobs[5].songs == [5] and jobs[5].progress == 1.0 and q.position(jobs[5]) == 0
    finally:
        q.close()


def test_queue_is_capped():
    gate = threading.Event()
    q = JobQueue(lambda job, report: gate.wait(5) and [], max_waiting=2)
    try:
        q.submit("new", {})  # runs (blocked on the gate)
        time.sleep(0.1)
        q.submit("new", {})
        q.submit("new", {})
        with pytest.raises(QueueFull):
            q.submit("new", {})
    finally:
        gate.set()
        q.join(timeout=10)
        q.close()


# ----------------------------------------------------------------------------- CLI


def test_serve_cli_refuses_bad_options(tmp_path, capsys):
    from lakhnes.cli import build_parser, main

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 8000
    assert main(["serve", "--port", "70000"]) == 2
    assert main(["serve", "-m", str(tmp_path / "nope"), "-o", str(tmp_path / "out")]) == 1
    assert "nope: no such model" in capsys.readouterr().err
