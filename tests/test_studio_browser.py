"""The studio page in a real headless Chromium (Debian's ``chromium``) driven by Playwright.

Uvicorn serves the app from a thread on 127.0.0.1; the test generates a short song with a tiny
Transformer-XL, sees the player and the piano roll, mutes a voice, downloads the MIDI and
saves a screenshot. Skips where Chromium or Playwright is missing.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
torch = pytest.importorskip("torch")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("needs Chromium (apt-get install chromium)", allow_module_level=True)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SMB3 = Path(__file__).parent / "fixtures" / "nesmdb" / "324_SuperMarioBros_3_00_01World1Map.mid"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from lakhnes.models import build_model, save_model
    from lakhnes.studio.app import create_app
    from lakhnes.studio.modes import Limits

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model_dir = save_model(build_model("transformer_xl", "tiny"), tmp_path_factory.mktemp("model"))
    app = create_app(model_dir, tmp_path_factory.mktemp("studio"), limits=Limits(max_seconds=8))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as e:  # a Chromium that Playwright cannot drive
            pytest.skip(f"cannot launch {CHROMIUM}: {str(e).splitlines()[0]}")
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server)
        page.errors = errors
        yield page
        browser.close()


def lit_pixels(page, selector) -> int:
    """How many pixels of a canvas are drawn (not transparent)."""
    return page.evaluate(
        """(sel) => { const c = document.querySelector(sel);
           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
           let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""",
        selector,
    )


def test_generate_play_mute_download(page, tmp_path):
    from lakhnes.core.score import SAMPLE_RATE
    from lakhnes.formats.midi import read_midi

    sync_api.expect(page.locator("#model")).to_contain_text("TransformerXL")
    assert page.locator("#drop").is_hidden()  # "new song" needs no file
    page.locator("#seconds").fill("2")
    page.locator("#seed").fill("7")
    page.locator("#go").click()
    sync_api.expect(page.locator("#song")).to_be_visible(timeout=60_000)
    sync_api.expect(page.locator("#song-meta")).to_contain_text("2.0 s")
    sync_api.expect(page.locator("#song-meta")).to_contain_text("seed 7")
    assert lit_pixels(page, "#roll") > 5000  # four lanes, grid and notes are drawn
    page.wait_for_function("document.querySelector('#audio').readyState >= 1", timeout=20_000)
    assert abs(page.evaluate("document.querySelector('#audio').duration") - 2.0) < 0.01
    sync_api.expect(page.locator("#history li")).to_have_count(1)

    page.locator(".mute[data-voice=P1]").click()
    sync_api.expect(page.locator("#render-note")).to_have_text("muted: P1")
    assert page.locator("#audio").get_attribute("src").endswith("/mute-P1.wav")
    sync_api.expect(page.locator(".mute[data-voice=P1]")).to_have_attribute("aria-pressed", "true")

    with page.expect_download() as dl:
        page.locator("#dl-mid").click()
    saved = tmp_path / dl.value.suggested_filename
    dl.value.save_as(saved)
    assert saved.suffix == ".mid"
    assert read_midi(saved).end == 2 * SAMPLE_RATE

    page.screenshot(path=str(tmp_path / "studio.png"))
    assert (tmp_path / "studio.png").stat().st_size > 10_000
    assert page.errors == []


def test_continue_shades_the_prime_and_reports_bad_files(page, tmp_path):
    page.locator("label.mode:has(input[value=continue])").click()
    sync_api.expect(page.locator("#drop")).to_be_visible()
    bad = tmp_path / "notes.mid"
    bad.write_text("not a midi file")
    page.locator("#file").set_input_files(str(bad))
    page.locator("#go").click()
    sync_api.expect(page.locator("#error")).to_have_text("notes.mid: not a MIDI file (no MThd header)")

    page.locator("#file").set_input_files(str(SMB3))
    page.locator("#prime").fill("2")
    page.locator("#seconds").fill("1")
    page.locator("#go").click()
    sync_api.expect(page.locator("#song-title")).to_contain_text("Continuation", timeout=60_000)
    sync_api.expect(page.locator("#legend-kept")).to_be_visible()
    sync_api.expect(page.locator("#song-meta")).to_contain_text("3.0 s")
    sync_api.expect(page.locator("#history li")).to_have_count(2)
    assert page.locator("#error").is_hidden()
    page.screenshot(path=str(tmp_path / "studio-continue.png"))

    page.locator("#history li").nth(1).click()  # back to the first song, from the history
    sync_api.expect(page.locator("#song-title")).to_have_text("New song")
    sync_api.expect(page.locator("#history li").nth(1)).to_have_class("active")
    assert page.errors == []


def test_api_reference_renders_offline(page, server):
    page.goto(f"{server}/docs")
    sync_api.expect(page.locator(".op h3").first).to_be_visible()
    heads = page.locator(".op h3").all_inner_texts()
    assert any("/api/jobs" in h for h in heads) and any("/render" in h for h in heads)
    sync_api.expect(page.locator("#ops")).to_contain_text("prime_seconds")
    assert page.errors == []
