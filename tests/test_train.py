"""The training loop: learns, resumes exactly, checkpoints without pickle, CLI, DDP."""

from __future__ import annotations

import copy
import csv
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lakhnes.cli import main
from lakhnes.core import tx1
from lakhnes.data.shards import ShardWriter, load_split, write_manifest
from lakhnes.errors import InvalidInputError
from lakhnes.formats.midi import read_midi
from lakhnes.models import load_model, presets
from lakhnes.models.transformer_xl import TransformerXLConfig
from lakhnes.training import TrainConfig, Trainer, evaluate, lr_at, native_bf16_cpu, preset_config, train

MICRO = dict(n_layer=2, n_head=2, d_model=32, d_inner=64, tgt_len=16, mem_len=16, dropout=0.1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_data(out: Path, songs: dict[str, list[np.ndarray]]) -> Path:
    for split, ids in songs.items():
        w = ShardWriter(out, split)
        for k, s in enumerate(ids):
            w.add(f"{split}{k}", s)
        w.close()
    write_manifest(out, {"corpus": "test"})
    return out


@pytest.fixture(scope="module")
def fixture_songs(nesmdb_fixture_files):
    songs = [tx1.song_ids(tx1.score_to_events(read_midi(f))) for f in nesmdb_fixture_files]
    return [s for s in songs if len(s) > 100]


@pytest.fixture(scope="module")
def data(tmp_path_factory, fixture_songs) -> Path:
    return write_data(tmp_path_factory.mktemp("data"), {"train": fixture_songs, "valid": fixture_songs[:2]})


def micro_config(data: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), model=dict(MICRO), batch_size=2, steps=40, lr=3e-3, warmup_steps=5,
                eval_every=15, eval_batch=2, eval_segments=4, log_every=5, threads=1)
    return TrainConfig(**{**base, **kw})


def test_overfits_one_song(tmp_path, fixture_songs):
    """The ``tiny`` preset learns one 160-token song by heart within a few hundred steps."""
    song = fixture_songs[0][:161]  # Pac-Man intermission, first 160 tokens
    d = write_data(tmp_path / "one", {"train": [song], "valid": [song]})
    cfg = preset_config("tiny", data=str(d), batch_size=1, steps=300, lr=1e-2, warmup_steps=10, eval_every=1000,
                        eval_batch=1, augment=False, weight_decay=0.0, threads=1, log_every=50)
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["step"] == 300
    model = load_model(tmp_path / "run")
    assert model.config == TransformerXLConfig(**presets("transformer_xl")["tiny"])
    _, ppl, n = evaluate(model, load_split(d, "valid"), batch_size=1, tgt_len=model.config.tgt_len)
    assert n == 160 and ppl < 1.5, ppl


def test_resume_is_exact(tmp_path, data, monkeypatch):
    cfg = micro_config(data, accum_steps=2, batch_size=2, augment=True)  # dropout, augmentation, 2 memories
    straight = train(copy.deepcopy(cfg), tmp_path / "a", progress=False)
    first = train(copy.deepcopy(cfg), tmp_path / "b", progress=False, until=20)
    assert first["step"] == 20 and first["stopped"] == "until"
    with (tmp_path / "b/log.csv").open("a") as fh:
        fh.write("2")  # a log line cut short by a kill
    resumed = train(copy.deepcopy(cfg), tmp_path / "b", progress=False)
    # killed (SIGTERM) after step 20: stops there with a checkpoint, then `train` again resumes
    real = Trainer.train_step

    def killed_at_20(self):
        loss = real(self)
        if self.step == 20:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss

    monkeypatch.setattr(Trainer, "train_step", killed_at_20)
    killed = train(copy.deepcopy(cfg), tmp_path / "c", progress=False)
    assert killed["step"] == 20 and killed["stopped"] == "signal"
    monkeypatch.undo()
    after_kill = train(copy.deepcopy(cfg), tmp_path / "c", progress=False)
    assert straight["step"] == resumed["step"] == after_kill["step"] == 40
    a = load_file(str(tmp_path / "a/checkpoints/step_00000040/model.safetensors"))
    for other in ("b", "c"):
        b = load_file(str(tmp_path / other / "checkpoints/step_00000040/model.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)
    cols = ["step", "train_loss", "valid_ppl"]
    rows = [[{k: r[k] for k in cols} for r in csv.DictReader((tmp_path / x / "log.csv").open())]
            for x in ("a", "b", "c")]
    assert rows[0] == rows[1] == rows[2] and len(rows[0]) == 8 + 3  # same loss curve, nothing logged twice
    assert straight["best_valid_ppl"] == resumed["best_valid_ppl"] == after_kill["best_valid_ppl"]


def test_checkpoints_are_safetensors_and_json_only(tmp_path, data, monkeypatch):
    train(micro_config(data, steps=6, eval_every=3), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    latest = json.loads((run / "latest.json").read_text())
    best = json.loads((run / "best.json").read_text())
    assert latest["step"] == 6 and best["step"] in (3, 6)
    files = {p.name for p in (run / latest["path"]).iterdir()}
    assert files == {"config.json", "model.safetensors", "optimizer.json", "optimizer.safetensors",
                     "state.json", "state_rank0.safetensors"}
    assert not list(run.rglob(".tmp*"))

    def boom(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    model = load_model(run)  # the best checkpoint
    assert model.config.d_model == 32 and not model.training
    resumed = train(micro_config(data, steps=6), run, progress=False, resume_overrides={"steps": 8})
    assert resumed["step"] == 8


def test_time_budget_and_early_stopping(tmp_path, data):
    s = train(micro_config(data, max_minutes=1e-6), tmp_path / "t", progress=False)
    assert s["stopped"] == "time" and s["step"] == 1
    assert json.loads((tmp_path / "t/latest.json").read_text())["step"] == 1
    s = train(micro_config(data, lr=0.0, eval_every=2, patience=2), tmp_path / "e", progress=False)
    assert s["stopped"] == "early_stop" and s["step"] == 6 and s["best_step"] == 2


def test_init_fine_tunes_from_a_model(tmp_path, data):
    train(micro_config(data, steps=5, eval_every=5), tmp_path / "pre", progress=False)
    cfg = micro_config(data, steps=3, lr=0.0, init=str(tmp_path / "pre"), model={"ignored": 1}, mem_len=8)
    s = train(cfg, tmp_path / "ft", progress=False)
    assert s["step"] == 3  # a fresh schedule
    a = load_model(tmp_path / "pre")
    b = load_model(tmp_path / "ft/checkpoints/step_00000003")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))  # lr 0: weights kept
    stored = json.loads((tmp_path / "ft/train_config.json").read_text())["model"]
    assert stored["d_model"] == 32 and stored["mem_len"] == 8 == b.config.mem_len  # memory length overridable
    # a fresh optimizer: AdamW has counted the 3 fine-tuning steps only, not the 5 before
    steps = {k: v for k, v in load_file(str(tmp_path / "ft/checkpoints/step_00000003/optimizer.safetensors")).items()
             if k.endswith(".step")}
    assert steps and all(float(v) == 3 for v in steps.values())
    assert float(load_file(str(tmp_path / "pre/checkpoints/step_00000005/optimizer.safetensors"))["0.step"]) == 5


def test_lr_schedule():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, steps=110, min_lr_ratio=0.0)
    assert lr_at(cfg, 0) == pytest.approx(0.1) and lr_at(cfg, 9) == pytest.approx(1.0)
    assert lr_at(cfg, 60) == pytest.approx(0.5) and lr_at(cfg, 110) == pytest.approx(0.0)
    assert preset_config("small").model["d_model"] == 256


def test_time_schedule_and_cpu_clock():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, steps=10**9, min_lr_ratio=0.0, schedule="time", max_minutes=2.0)
    assert lr_at(cfg, 5, 0.0) == pytest.approx(0.6)  # warmup still counts steps
    assert lr_at(cfg, 50, 60.0) == pytest.approx(0.5) and lr_at(cfg, 50, 120.0) == pytest.approx(0.0)
    assert lr_at(cfg, 50, 30.0) > lr_at(cfg, 50_000, 31.0)  # the clock, not the step, drives the decay


def test_cpu_clock_budget_and_bad_options(tmp_path, data):
    s = train(micro_config(data, max_minutes=1e-6, schedule="time", clock="cpu", steps=10**6), tmp_path / "c",
              progress=False)
    assert s["stopped"] == "time" and s["step"] == 1
    for bad in (dict(schedule="time"), dict(schedule="epochs"), dict(clock="gpu"), dict(augment_drop=1.5),
                dict(augment_swap=-0.1)):
        with pytest.raises(InvalidInputError):
            Trainer(micro_config(data, **bad), tmp_path / "bad", progress=False)


def test_bf16_autocast_on_cpu(tmp_path, data):
    """--bf16 / --no-bf16 reach the step: the same run gives a different but close loss curve; the default follows
    the CPU (native bf16 or not) and a resumed run may switch it."""
    runs = {on: train(micro_config(data, steps=10, eval_every=100, bf16=on), tmp_path / str(on), progress=False)
            for on in (True, False)}
    assert runs[True]["bf16"] is True and runs[False]["bf16"] is False
    loss = {on: [float(r["train_loss"]) for r in csv.DictReader((tmp_path / str(on) / "log.csv").open())
                 if r["train_loss"]] for on in runs}
    assert loss[True] != loss[False] and loss[True] == pytest.approx(loss[False], rel=0.05)
    native = train(micro_config(data, steps=2, eval_every=100), tmp_path / "auto", progress=False)
    assert native["bf16"] is native_bf16_cpu()
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    assert native_bf16_cpu() is ("avx512_bf16" in flags or "amx_bf16" in flags)
    assert main(["train", "--resume", str(tmp_path / "auto"), "--steps", "4", "--bf16", "--no-progress"]) == 0
    assert json.loads((tmp_path / "auto/summary.json").read_text())["bf16"] is True


def test_keep_last_zero_keeps_every_checkpoint(tmp_path, data):
    train(micro_config(data, steps=6, eval_every=2, keep_last=0), tmp_path / "all", progress=False)
    assert sorted(p.name for p in (tmp_path / "all/checkpoints").iterdir()) == [
        "step_00000002", "step_00000004", "step_00000006"]
    train(micro_config(data, steps=6, eval_every=2, keep_last=1, lr=0.0), tmp_path / "one", progress=False)
    assert len(list((tmp_path / "one/checkpoints").iterdir())) == 2  # the latest + the best


def test_voice_drop_rate_reaches_the_augmentation(tmp_path, data):
    t = Trainer(micro_config(data, augment_drop=0.0), tmp_path / "d0", progress=False)
    assert t.streams.augment.drop_voices is False and t.streams.augment.transpose
    t = Trainer(micro_config(data, augment_drop=0.2), tmp_path / "d2", progress=False)
    assert t.streams.augment.drop_voices and t.streams.augment.p_drop == 0.2


def test_voice_swap_rate_reaches_the_augmentation(tmp_path, data):
    """--aug-swap 0 keeps every part on its voice: the P1 of each augmented song is the original P1's
    notes (transposed, sped up or dropped, never another voice's); LakhNES' 0.5 moves parts."""
    t = Trainer(micro_config(data, augment_swap=0.0), tmp_path / "s0", progress=False)
    assert t.streams.augment.swap_voices is False and t.streams.augment.drop_voices
    t = Trainer(micro_config(data, augment_swap=0.3), tmp_path / "s3", progress=False)
    assert t.streams.augment.swap_voices and t.streams.augment.p_swap == 0.3
    assert Trainer(micro_config(data), tmp_path / "s5", progress=False).streams.augment.p_swap == 0.5


def test_cli_set_model_options(tmp_path, data, capsys):
    run = tmp_path / "set"
    args = ["train", "--config", "tiny", "--data", str(data), "-o", str(run), "--steps", "2", "--eval-every", "2",
            "--batch", "2", "--no-progress", "--threads", "1", "--set", "n_head=4", "--set", "tie_weights=false",
            "--set", "d_model=48", "--schedule", "time", "--max-minutes", "5", "--clock", "cpu", "--aug-drop", "0",
            "--aug-swap", "0"]
    assert main(args) == 0
    m = load_model(run)
    assert (m.config.n_head, m.config.d_head, m.config.d_model) == (4, 12, 48) and m.out_weight is not None
    stored = json.loads((run / "train_config.json").read_text())
    assert (stored["schedule"], stored["clock"], stored["augment_drop"], stored["augment_swap"]) == (
        "time", "cpu", 0.0, 0.0)
    for bad, msg in ((["--set", "n_heads=4"], "not a model config key"), (["--set", "n_head"], "KEY=VALUE")):
        assert main(args[:5] + ["-o", str(tmp_path / "bad")] + bad) == 2
        assert msg in capsys.readouterr().err


def test_cli(tmp_path, data, capsys):
    run = tmp_path / "run"
    args = ["train", "--config", "tiny", "--data", str(data), "-o", str(run), "--steps", "4", "--eval-every", "2",
            "--batch", "2", "--no-progress", "--threads", "1", "--no-augment"]
    assert main(args) == 0
    assert "step 4 (steps)" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--steps", "6", "--no-progress"]) == 0
    assert json.loads((run / "latest.json").read_text())["step"] == 6
    assert json.loads((run / "train_config.json").read_text())["augment"] is False
    assert main(["train", "--resume", str(tmp_path / "none")]) == 2
    assert main(["train", "--data", str(tmp_path / "nodata"), "-o", str(tmp_path / "r2"), "--no-progress"]) == 1
    assert "nodata: no manifest.json" in capsys.readouterr().err
    assert main(["train", "--config", "huge", "--data", str(data), "-o", str(tmp_path / "r3")]) == 1
    capsys.readouterr()
    for bad in (["--steps", "0"], ["--batch", "-1"], ["--lr", "0"], ["--warmup", "-5"]):
        assert main(["train", "--data", str(data), "-o", str(tmp_path / "r4"), *bad]) == 2
        assert bad[0] in capsys.readouterr().err
    assert not (tmp_path / "r4").exists()


def test_cli_resume_takes_the_options_given(tmp_path, data, capsys):
    """A resume applies --eval-every, --lr, --keep-last... (not only --steps); an option a resumed run cannot change
    (data, model, batch, lengths, seed, augmentation) is a one-line error naming it, unless it repeats the run's
    value: re-running a run's own command resumes it."""
    run = tmp_path / "run"
    base = ["train", "--config", "tiny", "--data", str(data), "-o", str(run), "--batch", "2", "--no-progress",
            "--threads", "1", "--set", "dropout=0.05"]
    assert main(base + ["--steps", "2", "--eval-every", "2"]) == 0
    capsys.readouterr()
    assert main(base + ["--steps", "6", "--eval-every", "3", "--keep-last", "5", "--lr", "1e-3"]) == 0
    out = capsys.readouterr().out
    assert all(s in out for s in ("now steps 6", "eval_every 3", "keep_last 5", "lr 0.001"))
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["step"]) for r in rows if r["valid_ppl"]] == [2, 3, 6]
    assert [r["lr"] for r in rows if r["step"] == "6" and r["train_loss"]] == ["0.0006"]  # 1e-3 x warmup 6/10
    for bad, named in ((["--batch", "4"], "--batch 4"), (["--seed", "3"], "--seed 3"), (["--tgt-len", "32"], "--tgt-len"),
                       (["--no-augment"], "--augment"), (["--data", str(tmp_path)], "--data"),
                       (["--model", "lstm"], "--model lstm"), (["--set", "dropout=0.2"], "--set dropout=0.2"),
                       (["--config", "small"], "--config small"), (["--config", "tiny"], "--config tiny")):
        assert main(["train", "--resume", str(run), "--steps", "8", "--no-progress", *bad]) == 2
        err = capsys.readouterr().err
        assert named in err and err.count("\n") == 1, err
    assert json.loads((run / "latest.json").read_text())["step"] == 6
    with pytest.raises(InvalidInputError, match="batch_size"):
        train(TrainConfig(), run, progress=False, resume_overrides={"batch_size": 4})


def test_cli_stopped_before_any_validation(tmp_path, data, capsys):
    args = ["train", "--config", "tiny", "--data", str(data), "-o", str(tmp_path / "run"), "--steps", "4",
            "--eval-every", "100", "--max-minutes", "1e-6", "--batch", "2", "--no-progress", "--threads", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "step 1 (time), no validation yet" in out and "None" not in out and "inf" not in out


def test_cli_trains_ngram_baselines(tmp_path, data, capsys):
    """``lakhnes train --model 5gram|unigram`` counts the train split; ``lakhnes eval RUN`` scores it."""
    for name in ("5gram", "unigram"):
        run = tmp_path / name
        assert main(["train", "--model", name, "--data", str(data), "-o", str(run)]) == 0
        assert "n-grams" in capsys.readouterr().out
        assert json.loads((run / "config.json").read_text())["config"]["order"] == (5 if name == "5gram" else 1)
    train_tokens = len(load_split(data, "train").tokens)
    from lakhnes.models.ngram import NGramLM

    assert NGramLM.load(tmp_path / "5gram").train_tokens == train_tokens
    assert main(["eval", str(tmp_path / "5gram"), "--data", str(data), "--split", "valid", "--results", "",
                 "--json", str(tmp_path / "r.json")]) == 0
    assert "interpolated modified Kneser-Ney" in (tmp_path / "r.json").read_text()
    assert main(["train", "--model", "5gram", "-o", str(tmp_path / "x")]) == 2  # no --data
    assert main(["train", "--model", "5gram", "--data", str(tmp_path / "none"), "-o", str(tmp_path / "x")]) == 1
    assert "none" in capsys.readouterr().err


def test_lstm_trains_through_the_same_loop(tmp_path, data):
    cfg = preset_config("tiny", "lstm", data=str(data), steps=4, eval_every=4, batch_size=2, threads=1)
    s = train(cfg, tmp_path / "lstm", progress=False, until=2)
    s = train(cfg, tmp_path / "lstm", progress=False)
    assert s["step"] == 4 and np.isfinite(s["best_valid_ppl"])
    assert type(load_model(tmp_path / "lstm")).__name__ == "LSTMLM"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP_SCRIPT = """
import sys
from lakhnes.training import train, TrainConfig
import json
cfg = TrainConfig(**json.loads(sys.argv[1]))
train(cfg, sys.argv[2], progress=False)
"""


@pytest.mark.slow
def test_ddp_two_processes_match_one(tmp_path, data):
    """2 gloo processes × 1 stream reproduce 1 process × 2 streams (same rows, averaged gradients)."""
    kw = dict(steps=4, eval_every=4, augment=False, model=dict(MICRO, dropout=0.0),
              bf16=False)  # float32: bf16 rounding differs between batch sizes
    one = micro_config(data, batch_size=2, **kw)
    two = micro_config(data, batch_size=1, **kw)
    train(one, tmp_path / "one", progress=False)
    port = _free_port()
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "OMP_NUM_THREADS": "1"}
    import dataclasses

    procs = [subprocess.Popen([sys.executable, "-c", DDP_SCRIPT, json.dumps(dataclasses.asdict(two)),
                               str(tmp_path / "two")], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)})
             for r in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    a = load_file(str(tmp_path / "one/checkpoints/step_00000004/model.safetensors"))
    b = load_file(str(tmp_path / "two/checkpoints/step_00000004/model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert (tmp_path / "two/checkpoints/step_00000004/state_rank1.safetensors").exists()
