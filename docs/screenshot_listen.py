"""Take the README's listening-study screenshots: set a study up, serve it, answer in headless Chromium.

    python docs/screenshot_listen.py [--real DIR] [--system NAME=DIR_OR_MODEL ...] [-o docs/listen.png]
                                     [--results docs/listen_results.png]

Defaults: the committed NES-MDB fixtures as the real songs and the shipped model as the one system.
``-o``: a Turing-test pair with both clips heard. ``--results``: the results page after a scripted
listener (it answers at random, controls right) has done three batches of each test: the page's
shape, not a study's result. Needs the ``studio`` and ``dev`` extras and Debian's chromium.
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import expect, sync_playwright

from lakhnes.cli import main as lakhnes
from lakhnes.studio.listen_routes import create_listen_app

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def scripted_listener(app, rng: random.Random) -> None:
    """Three batches of each test through the store: random answers, every control right."""
    store, study = app.state.store, app.state.study
    lid = store.new_listener()
    for test in study.settings.tests:
        for _ in range(3):
            b = store.start_batch(lid, test, lambda n, h, t=test: study.compose(t, lid, n, h))
            for p in b["pairs"]:
                if p["control"]:
                    choice = "a" if p["system_a"] == "real" else "b"
                else:
                    choice = rng.choice("ab")
                store.answer(lid, b["id"], p["pair"], choice)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", default=str(ROOT / "tests" / "fixtures" / "nesmdb"))
    ap.add_argument("--system", action="append", default=None)
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "listen.png"))
    ap.add_argument("--results", default=None, help="also screenshot the results page here")
    ap.add_argument("--port", type=int, default=8766)
    a = ap.parse_args()
    study = Path(tempfile.mkdtemp(prefix="lakhnes-listen-shot-")) / "study"
    systems = a.system or ["shipped=default"]
    setup = ["listen", "setup", "--real", a.real, "-o", str(study), "--clips", "6", "--threads", "1"]
    if lakhnes(setup + [x for s in systems for x in ("--system", s)]) != 0:
        raise SystemExit("setup failed")
    app = create_listen_app(study)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=a.port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 440})
        page.goto(f"http://127.0.0.1:{a.port}/")
        page.locator(".test-card[data-test=turing]").click()
        for side in "ab":
            page.locator(f"#clip-{side} .play").click()
            expect(page.locator(f"#clip-{side}")).to_have_class(re.compile(r"\bheard\b"), timeout=10_000)
            page.wait_for_timeout(1500)
        page.locator("#clip-a .play").click()  # clip A playing again in the picture
        page.wait_for_timeout(1800)
        page.screenshot(path=a.output)
        print(a.output)
        if a.results:
            scripted_listener(app, random.Random(0))
            page.set_viewport_size({"width": 1100, "height": 900})
            page.goto(f"http://127.0.0.1:{a.port}/listen/results?key={app.state.study.key}")
            expect(page.locator("#tests table").first).to_be_visible()
            page.wait_for_function("document.querySelector('#figure').complete")
            page.screenshot(path=a.results, full_page=True)
            print(a.results)
        browser.close()
    srv.should_exit = True


if __name__ == "__main__":
    main()
