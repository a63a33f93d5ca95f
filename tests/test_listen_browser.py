"""The listening study's page in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): a listener answers a whole Turing-test batch through the page while the server is
stopped and a new one started on the same study folder in the middle. Skips where Chromium or
Playwright is missing."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")

from lakhnes.listen.store import Store  # noqa: E402
from lakhnes.studio.listen_routes import create_listen_app  # noqa: E402
from tests.listen_util import SYSTEMS, make_study  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("needs Chromium (apt-get install chromium)", allow_module_level=True)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
expect = sync_api.expect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``lakhnes listen serve``'s app in a uvicorn thread; a new app each start, as after a restart."""

    def __init__(self, study_dir: Path, port: int):
        self.study_dir, self.port = study_dir, port

    def start(self) -> Server:
        self.srv = uvicorn.Server(uvicorn.Config(create_listen_app(self.study_dir), host="127.0.0.1",
                                                 port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.srv.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.srv.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.srv.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()


def hear_both(page) -> None:
    for side in "ab":
        page.locator(f"#clip-{side} .play").click()
        expect(page.locator(f"#clip-{side}")).to_have_class(re.compile(r"\bheard\b"), timeout=10_000)
    expect(page.locator(".choice[data-choice=a]")).to_be_enabled()


def no_secrets(page) -> None:
    html = page.content()
    assert not [s for s in (*SYSTEMS, "random", ".mid") if s in html]


def test_a_batch_through_the_page_with_a_server_restart(tmp_path):
    study = make_study(tmp_path / "study")
    server = Server(study.root, free_port()).start()
    db = study.root / "answers.sqlite"
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as e:  # a Chromium that Playwright cannot drive
            server.stop()
            pytest.skip(f"cannot launch {CHROMIUM}: {str(e).splitlines()[0]}")
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{server.port}/")
        expect(page.locator(".test-card")).to_have_count(2)
        expect(page.locator(".test-card[data-test=turing]")).to_contain_text("Which one did a human write?")
        page.locator(".test-card[data-test=turing]").click()
        expect(page.locator("#question")).to_have_text("Which one did a human write?")

        answer_buttons = page.locator(".choice")
        for k in range(4):
            expect(page.locator("#pair-count")).to_have_text(f"pair {k + 1} of 10")
            expect(answer_buttons.first).to_be_disabled()  # not before both clips are heard
            hear_both(page)
            no_secrets(page)
            page.locator(".choice[data-choice=a]").click()

        # pair 5: heard, then the server stops before the answer is sent
        expect(page.locator("#pair-count")).to_have_text("pair 5 of 10")
        hear_both(page)
        server.stop()
        page.locator(".choice[data-choice=b]").click()
        expect(page.locator("#banner")).to_contain_text("Not saved yet")
        assert len(Store(db).answers()) == 4
        server = Server(study.root, server.port).start()  # a new server on the same folder
        expect(page.locator("#banner")).to_be_hidden(timeout=20_000)
        expect(page.locator("#pair-count")).to_have_text("pair 6 of 10")
        assert [r["choice"] for r in Store(db).answers()] == ["a"] * 4 + ["b"]

        # reloading the page resumes the same batch, at its first unanswered pair
        page.reload()
        resume = page.locator(".test-card[data-test=turing] .resume")
        expect(resume).to_have_text("continue batch 1: 5 of 10 answered")
        page.locator(".test-card[data-test=turing]").click()
        for k in range(5, 10):
            expect(page.locator("#pair-count")).to_have_text(f"pair {k + 1} of 10")
            hear_both(page)
            page.locator(".choice[data-choice=a]").click()
        expect(page.locator("#done")).to_be_visible()
        expect(page.locator("#done-text")).to_contain_text("batch 1 is saved (1 done)")
        expect(page.locator("#done-text")).to_contain_text("3 batches: 2 to go")
        no_secrets(page)
        listener = page.evaluate("localStorage.getItem('lakhnes-listener')")
        page.screenshot(path=str(tmp_path / "listen.png"))
        browser.close()
    server.stop()

    rows = Store(db).answers()
    assert [r["pair"] for r in rows] == list(range(10)) and {r["listener"] for r in rows} == {listener}
    assert [r["choice"] for r in rows] == ["a"] * 4 + ["b"] + ["a"] * 5
    assert sum(r["control"] for r in rows) == 2 and len({r["batch"] for r in rows}) == 1
    assert Store(db).batches_done(listener, "turing") == 1
    assert errors == []
