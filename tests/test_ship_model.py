"""experiments/ship_model.py: a checkpoint packaged with its model card, the stages' figures taken
at the shipped checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lakhnes.cli import main
from lakhnes.models import load_model
from lakhnes.training import train

from .test_train import data, fixture_songs, micro_config  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ship(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "ship_model.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_ships_a_checkpoint_with_its_card(tmp_path, data):  # noqa: F811
    train(micro_config(data, steps=5, eval_every=5), tmp_path / "pre", progress=False)
    train(micro_config(data, steps=30, eval_every=15, keep_last=0, init=str(tmp_path / "pre")), tmp_path / "ft",
          progress=False)
    assert main(["eval", str(tmp_path / "ft/checkpoints/step_00000015"), "--data", str(data), "--split", "valid",
                 "--results", "", "--json", str(tmp_path / "valid.json"), "--threads", "1"]) == 0
    to = tmp_path / "shipped"
    r = ship(tmp_path / "ft/checkpoints/step_00000015", "--stage-run", tmp_path / "pre", "--stage", "lakhnes train A",
             "--stage-run", tmp_path / "ft", "--stage", "lakhnes train B", "--valid", tmp_path / "valid.json",
             "--to", to, "--note", "stage B was resumed once")
    assert r.returncode == 0, r.stderr
    card = json.loads((to / "config.json").read_text())["card"]
    a, b = card["stages"]
    assert (a["command"], a["steps"], a["tokens"]) == ("lakhnes train A", 5, 5 * 2 * 16)
    # the shipped checkpoint is step 15 of the 30-step run: its figures, not the run's end
    assert (b["command"], b["steps"], b["tokens"]) == ("lakhnes train B", 15, 15 * 2 * 16)
    assert card["notes"] == ["stage B was resumed once"] and "test" not in card["eval"]
    assert card["eval"]["valid"]["ppl"] == pytest.approx(json.loads((tmp_path / "valid.json").read_text())["ppl"])
    text = (to / "README.md").read_text()
    assert "- stage B was resumed once" in text and "Cumulative: **20 steps, 640 tokens" in text
    assert "| NES-MDB test | **not measured** |" in text
    assert b["hardware"].endswith(f"torch {torch.__version__.split('+')[0]}") and "core CPU" in b["hardware"]
    assert "Not measured for this checkpoint yet" in text  # no song statistics given
    shipped, ckpt = load_model(to), load_model(tmp_path / "ft/checkpoints/step_00000015")
    for (name, p), q in zip(shipped.named_parameters(), ckpt.parameters(), strict=True):
        # weight matrices are shipped rounded to float16 values (the compiled decoding step's weights)
        want = q.half().float() if name.endswith(".weight") and q.dim() == 2 else q
        assert torch.equal(p, want), name
    assert sorted(p.name for p in to.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    # the card alone, with new notes
    r = ship("--card-only", to, "--note", "re-written")
    assert r.returncode == 0, r.stderr
    assert "- re-written" in (to / "README.md").read_text() and "resumed once" not in (to / "README.md").read_text()
