"""The listening study's routes (FastAPI's test client): nothing revealing reaches the page, answers
are stored and resumed across a restart, results need the key."""

from __future__ import annotations

import csv
import io

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from lakhnes.listen.study import REAL  # noqa: E402
from lakhnes.studio.listen_routes import create_listen_app  # noqa: E402
from tests.listen_util import SYSTEMS, make_study  # noqa: E402


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("listen-api") / "study")


@pytest.fixture
def client(study):
    with TestClient(create_listen_app(study.root)) as c:
        yield c


def secrets_of(study) -> list[str]:
    """What must not reach a listener: system names, clip ids, song names."""
    out = [*SYSTEMS, "random"]
    for c in study.clips.values():
        out += [c["id"], c["song"]]
    return out


def test_the_page_and_batches_reveal_nothing(client, study):
    seen = []
    for path in ("/", "/listen/", "/static/listen.js", "/static/listen.css", "/listen/api/info"):
        r = client.get(path)
        assert r.status_code == 200, path
        seen.append(r.text)
    lid = client.post("/listen/api/listeners").json()["id"]
    seen.append(client.get(f"/listen/api/listeners/{lid}").text)
    for test in ("turing", "preference"):
        r = client.post(f"/listen/api/listeners/{lid}/batches", json={"test": test})
        assert r.status_code == 200
        seen.append(r.text)
        batch = r.json()
        assert set(batch) == {"id", "test", "number", "question", "seconds", "next", "pairs", "batches_done"}
        assert all(set(p) == {"pair", "answered", "a", "b"} for p in batch["pairs"])
        for p in batch["pairs"][:3]:
            a, b = client.get(p["a"]), client.get(p["b"])
            assert a.headers["content-type"] == "audio/wav" and a.content[:4] == b"RIFF"
            assert len(a.content) == len(b.content)  # same length, same size
            for h in ("etag", "last-modified"):  # no dates that could tell clips apart
                assert h not in a.headers
        urls = [p[s] for p in batch["pairs"] for s in "ab"]
        assert len(set(urls)) == 20  # a fresh token per clip per pair
    page = "\n".join(seen)
    leaks = [s for s in secrets_of(study) if s in page]
    assert leaks == []
    assert client.get("/listen/api/audio/" + "0" * 24).status_code == 404


def hear(client, batch, k) -> None:
    """Fetch both clips of pair ``k``, as the page does before it takes an answer (the server checks)."""
    for side in "ab":
        assert client.get(batch["pairs"][k][side]).status_code == 200


def test_answers_resume_across_a_restart_then_results(study):
    with TestClient(create_listen_app(study.root)) as c:
        lid = c.post("/listen/api/listeners").json()["id"]
        batch = c.post(f"/listen/api/listeners/{lid}/batches", json={"test": "turing"}).json()
        for k in range(3):
            hear(c, batch, k)
            r = c.post("/listen/api/answers", json={"listener": lid, "batch": batch["id"], "pair": k, "choice": "a"})
            assert r.json() == {"next": k + 1, "finished": False, "batches_done": 0}
        r = c.post("/listen/api/answers", json={"listener": lid, "batch": batch["id"], "pair": 2, "choice": "b"})
        assert r.status_code == 409 and r.json()["detail"] == "pair 2 is already answered"
        r = c.post("/listen/api/answers", json={"listener": lid, "batch": batch["id"], "pair": 3, "choice": "c"})
        assert r.status_code == 400 and r.json()["detail"].startswith("choice: ")
        r = c.post("/listen/api/answers", json={"listener": "f" * 16, "batch": batch["id"], "pair": 3, "choice": "a"})
        assert r.status_code == 404
    # a new server on the same folder: the same batch, at pair 3
    with TestClient(create_listen_app(study.root)) as c:
        state = c.get(f"/listen/api/listeners/{lid}").json()
        assert state["tests"]["turing"] == {"batches_done": 0, "open": {"number": 1, "answered": 3}}
        again = c.post(f"/listen/api/listeners/{lid}/batches", json={"test": "turing"}).json()
        assert again["id"] == batch["id"] and again["next"] == 3 and again["pairs"] == [
            p | {"answered": p["pair"] < 3} for p in batch["pairs"]]
        for k in range(3, 10):
            hear(c, batch, k)
            out = c.post("/listen/api/answers", json={"listener": lid, "batch": batch["id"], "pair": k,
                                                      "choice": "b"}).json()
        assert out == {"next": None, "finished": True, "batches_done": 1}
        assert c.post(f"/listen/api/listeners/{lid}/batches", json={"test": "turing"}).json()["number"] == 2

        for path in ("/listen/api/results", "/listen/api/results.png", "/listen/api/answers.csv"):
            assert c.get(path).status_code == 403 and c.get(path + "?key=nope").status_code == 403
        key = "?key=" + study.key
        res = c.get("/listen/api/results" + key).json()
        assert res["turing"]["answers"] == 10 and res["turing"]["listeners"] == 1
        assert res["turing"]["qualified"] == 0  # one batch of the three needed
        assert list(res["preference"]["systems"]) == [REAL, *SYSTEMS]
        assert c.get("/listen/api/results.png" + key).content[:4] == b"\x89PNG"
        rows = list(csv.DictReader(io.StringIO(c.get("/listen/api/answers.csv" + key).text)))
        assert len(rows) == 10 and [int(r["pair"]) for r in rows] == list(range(10))
        db = {r["pair"]: r for r in c.app.state.store.answers()}
        for r in rows:
            want = db[int(r["pair"])]
            assert (r["choice"], r["chosen_system"], r["system_a"], r["offset_b"]) == (
                want["choice"], want["chosen_system"], want["system_a"], str(want["offset_b"]))
        assert c.get("/listen/results").status_code == 200


def test_bad_requests_are_refused(client):
    lid = client.post("/listen/api/listeners").json()["id"]
    r = client.post(f"/listen/api/listeners/{lid}/batches", json={"test": "rhyme"})
    assert r.status_code == 400 and r.json()["detail"].startswith("test: ")
    assert client.post("/listen/api/listeners/0000000000000000/batches", json={"test": "turing"}).status_code == 404
    assert client.get("/listen/api/listeners/0000000000000000").status_code == 404
    r = client.post("/listen/api/listeners", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403


def test_the_studio_serves_a_study_too(study, tmp_path):
    torch = pytest.importorskip("torch")
    from lakhnes.models import build_model
    from lakhnes.studio.app import create_app

    torch.manual_seed(0)
    app = create_app(model=build_model("transformer_xl", "tiny"), out_dir=tmp_path, study_dir=study.root)
    with TestClient(app) as c:
        assert "LakhNES Studio" in c.get("/").text
        assert c.get("/listen/").status_code == 200
        assert [t["id"] for t in c.get("/listen/api/info").json()["tests"]] == ["turing", "preference"]
        assert app.state.study.key == study.key
