"""Music without PyTorch: the numpy runtime behind `lakhnes generate` (every mode), `synth`, `plot`
and the studio, with torch out of reach; and the same seed giving the same song in both runtimes.

The ``light`` tests run each command in a fresh interpreter in which any ``import torch`` fails, so they hold in the full environment and in one without torch
(.ci/run: a virtual environment with ``pip install -e ".[dev,studio]"``, ``pytest -m light``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.subprocess_util import ENV, hide_module

ROOT = Path(__file__).resolve().parent.parent
SONG = ROOT / "tests/fixtures/nesmdb/324_SuperMarioBros_3_00_01World1Map.mid"
NO_TORCH = hide_module("torch", top_level=True)

#: every mode, short (the shipped model, the numpy runtime)
MODES = {
    "new": ["--seconds", "3"],
    "prime": ["--prime", str(SONG), "--prime-seconds", "2", "--seconds", "2"],
    "rhythm": ["--rhythm", str(SONG), "--seconds", "3"],
    "keep": ["--keep", "P1", str(SONG), "--seconds", "3"],
    "voices": ["--voices", "P1,TR", "--seconds", "3", "--top-k", "0", "--top-p", "0.9", "--temperature", "1.1"],
    "num": ["--num", "2", "--seconds", "2"],
}


def lakhnes(*argv, torch_free: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    """``lakhnes ARGV`` in a fresh interpreter (torch made unimportable unless ``torch_free`` is False)."""
    code = (NO_TORCH if torch_free else "") + (
        "from lakhnes.cli import main\n"
        f"code = main({list(map(str, argv))!r})\n"
        + ("if 'torch' in sys.modules: print('TORCH IMPORTED', file=sys.stderr); code = 3\n"
           if torch_free else "") +
        "sys.exit(code)\n")
    return subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=ROOT)


def tx1_files(folder: Path, stem: str) -> list[str]:
    return [p.read_text() for p in sorted(folder.glob(f"{stem}*.tx1.txt"))]


@pytest.mark.light
def test_generate_every_mode_synth_and_plot_without_torch(tmp_path):
    for mode, opts in MODES.items():
        r = lakhnes("generate", "-q", "--seed", "3", *opts, "-o", tmp_path / f"{mode}.tx1.txt")
        assert r.returncode == 0, (mode, r.stderr)
        songs = tx1_files(tmp_path, mode)
        assert len(songs) == (2 if mode == "num" else 1) and all("NOTEON" in s for s in songs), mode
    r = lakhnes("generate", "-q", "--seed", "3", "--seconds", "2", "-o", tmp_path / "x.wav", "-o", tmp_path / "x.mid")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.wav").stat().st_size > 44_100 and (tmp_path / "x.mid").exists()
    r = lakhnes("synth", tmp_path / "new.tx1.txt", "-o", tmp_path / "synth.wav")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "synth.wav").stat().st_size > 44_100
    r = lakhnes("plot", tmp_path / "new.tx1.txt", "-o", tmp_path / "roll.png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "roll.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.light
def test_what_needs_torch_says_how_to_install_it(tmp_path):
    for argv in (["generate", "-q", "--runtime", "torch", "--tokens", "16", "-o", tmp_path / "x.tx1.txt"],
                 ["generate", "-q", "--device", "cuda", "--tokens", "16", "-o", tmp_path / "x.tx1.txt"],
                 ["train", "--data", tmp_path, "-o", tmp_path / "run"]):
        r = lakhnes(*argv)
        lines = r.stderr.strip().splitlines()
        assert r.returncode in (1, 2) and len(lines) == 1, (argv, r.stderr)
        assert 'pip install "lakhnes[train]"' in lines[0], (argv, lines)
    assert not (tmp_path / "x.tx1.txt").exists()


@pytest.mark.light
def test_studio_generates_without_torch(tmp_path):
    code = NO_TORCH + (
        "import json\n"
        "from fastapi.testclient import TestClient\n"
        "from lakhnes.studio.app import create_app\n"
        "from lakhnes.studio.modes import Limits\n"
        f"app = create_app(out_dir={str(tmp_path)!r}, limits=Limits(max_seconds=4, max_num=2))\n"
        "with TestClient(app) as c:\n"
        "    assert c.get('/').status_code == 200\n"
        "    r = c.post('/api/jobs', data={'mode': 'new', 'seconds': '2', 'seed': '1'})\n"
        "    assert r.status_code == 202, r.text\n"
        "    app.state.jobs.join(timeout=120)\n"
        "    job = c.get('/api/jobs/' + r.json()['id']).json()\n"
        "    assert job['status'] == 'done', job\n"
        "    wav = c.get(job['songs'][0]['files']['wav'])\n"
        "    assert wav.status_code == 200 and wav.content[:4] == b'RIFF'\n"
        "    print(json.dumps({'model': job['songs'][0].get('model') or '', 'torch': 'torch' in sys.modules}))\n")
    r = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True, timeout=300,
                       env=ENV, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["torch"] is False


@pytest.mark.light
def test_decoding_and_generate_import_no_torch():
    code = NO_TORCH + ("import lakhnes.generate, lakhnes.decoding.loop, lakhnes.decoding.sampler, "
                       "lakhnes.decoding.constraint, lakhnes.decoding.forced, lakhnes.studio.app, lakhnes.cli\n"
                       "from lakhnes.cli import build_parser; build_parser()\n")
    r = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True, timeout=120,
                       env=ENV, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_same_seed_same_song_in_both_runtimes(tmp_path):
    """Byte-identical TX1 from --runtime numpy and --runtime torch, in every mode (the shipped model)."""
    pytest.importorskip("torch")
    for mode, opts in MODES.items():
        for runtime in ("numpy", "torch"):
            r = lakhnes("generate", "-q", "--seed", "11", "--runtime", runtime, *opts,
                        "-o", tmp_path / f"{mode}_{runtime}.tx1.txt", torch_free=runtime == "numpy")
            assert r.returncode == 0, (mode, runtime, r.stderr)
        numpy_songs, torch_songs = tx1_files(tmp_path, f"{mode}_numpy"), tx1_files(tmp_path, f"{mode}_torch")
        assert len(numpy_songs) == (2 if mode == "num" else 1)
        assert numpy_songs == torch_songs, mode
