"""Take the README's studio screenshot: serve MODEL, continue a song in headless Chromium, save a PNG.

    python docs/screenshot.py [MODEL] [-o docs/studio.png]

MODEL defaults to the shipped model. Needs the ``studio`` and ``dev`` extras and Debian's chromium.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import torch
import uvicorn
from playwright.sync_api import expect, sync_playwright

from lakhnes.models import default_model_path
from lakhnes.studio.app import create_app

ROOT = Path(__file__).resolve().parent.parent
SONG = ROOT / "tests" / "fixtures" / "nesmdb" / "324_SuperMarioBros_3_00_01World1Map.mid"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=str(default_model_path()))
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "studio.png"))
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--seed", default="3")
    a = ap.parse_args()
    torch.set_num_threads(1)
    app = create_app(a.model, Path(tempfile.mkdtemp(prefix="lakhnes-shot-")))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=a.port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{a.port}")
        page.locator("#seconds").fill("16")
        page.locator("#seed").fill(a.seed)
        page.locator("#go").click()  # a first song, so the history has two
        expect(page.locator("#song")).to_be_visible(timeout=120_000)
        page.locator("label.mode:has(input[value=continue])").click()
        page.locator("#file").set_input_files(str(SONG))
        page.locator("#prime").fill("6")
        page.locator("#seconds").fill("14")
        page.locator("#go").click()
        expect(page.locator("#song-title")).to_contain_text("Continuation", timeout=120_000)
        page.wait_for_timeout(500)
        page.screenshot(path=a.output, full_page=True)
        browser.close()
    srv.should_exit = True
    print(a.output)


if __name__ == "__main__":
    main()
