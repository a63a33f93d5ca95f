"""The run folder: checkpoints (save, load, rotate, resume; RNG states and memories) and its ``log.csv``.

A run folder holds ``train_config.json``, ``log.csv``, ``checkpoints/step_NNNNNNNN/`` and
the pointers ``latest.json`` / ``best.json``. A checkpoint is a folder written under a
temporary name and renamed: ``config.json`` + ``model.safetensors`` (a loadable model),
``optimizer.safetensors`` + ``optimizer.json``, ``state.json`` (step, data position, early
stopping, logs) and ``state_rank{R}.safetensors`` (RNG states and the model memories).
Nothing is pickled. The functions taking ``t`` read and set the fields of a :class:`~lakhnes.training.Trainer`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch

from lakhnes.errors import InvalidInputError
from lakhnes.io import atomic_path, write_text_atomic
from lakhnes.models import save_model
from lakhnes.training.distributed import barrier

LOG_FIELDS = ["step", "epoch", "lr", "train_loss", "train_ppl", "valid_loss", "valid_ppl", "tokens",
              "tokens_per_s", "elapsed_s"]


# ----------------------------------------------------------------------------- state files


def flat_state(state) -> list[torch.Tensor]:
    """A model state (tensor, or nested lists/tuples of tensors) as a flat list."""
    if state is None:
        return []
    if torch.is_tensor(state):
        return [state]
    return [t for s in state for t in flat_state(s)]


def unflat_state(template, flat: list[torch.Tensor]):
    """Rebuild a state shaped like ``template`` from the tensors of ``flat_state``."""
    it = iter(flat)

    def build(t):
        if torch.is_tensor(t):
            return next(it)
        return type(t)(build(s) for s in t)

    return build(template)


def save_optimizer(opt: torch.optim.Optimizer, folder: Path) -> None:
    from safetensors.torch import save_file

    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    save_file(tensors, str(folder / "optimizer.safetensors"))
    (folder / "optimizer.json").write_text(json.dumps({"param_groups": sd["param_groups"], "scalars": scalars}))


def load_optimizer(opt: torch.optim.Optimizer, folder: Path, device) -> None:
    from safetensors.torch import load_file

    meta = json.loads((folder / "optimizer.json").read_text())
    state: dict[int, dict] = {}
    for key, v in list(load_file(str(folder / "optimizer.safetensors"), device=str(device)).items()) + list(
        meta["scalars"].items()
    ):
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_tensors() -> dict[str, torch.Tensor]:
    out = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda.{i}"] = s
    return out


def set_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng.cpu"].cpu())
    cuda = [tensors[k].cpu() for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


# ----------------------------------------------------------------------------- checkpoints


def latest_checkpoint(run: Path) -> Path | None:
    """The checkpoint ``latest.json`` points at, if it is complete; None for a new run."""
    f = run / "latest.json"
    if not f.exists():
        return None
    p = run / json.loads(f.read_text())["path"]
    return p if (p / "state.json").exists() else None


def start_run(run: Path, cfg) -> None:
    """A new run: ``train_config.json`` written, the logs of an earlier run without a checkpoint removed."""
    run.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run / "train_config.json", json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    for f in ("log.csv", "summary.json"):
        (run / f).unlink(missing_ok=True)


def state_json(t) -> dict:
    return {
        "step": t.step, "tokens": t.tokens, "elapsed_s": t.elapsed,
        "streams": t.streams.state_dict(), "best_ppl": t.best_ppl, "best_step": t.best_step,
        "bad_evals": t.bad_evals, "log_acc": t.log_acc, "world_size": t.world,
    }


def save_checkpoint(t, valid_ppl: float | None = None) -> Path:
    """Write a checkpoint folder atomically and point ``latest.json`` (and maybe ``best.json``) at it."""
    from safetensors.torch import save_file

    name = f"step_{t.step:08d}"
    final = t.run / "checkpoints" / name
    tmp = t.run / "checkpoints" / f".tmp_{name}"
    if t.rank == 0:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    barrier(t.world)
    flat = [x for m in t.mems for x in flat_state(m)]
    save_file({**rng_tensors(), **{f"mem.{i}": x.contiguous() for i, x in enumerate(flat)}},
              str(tmp / f"state_rank{t.rank}.safetensors"))
    barrier(t.world)
    if t.rank == 0:
        meta = {"step": t.step, "valid_ppl": valid_ppl, "train": dataclasses.asdict(t.cfg)}
        save_model(t.model, tmp, metadata=meta)
        save_optimizer(t.opt, tmp)
        (tmp / "state.json").write_text(json.dumps(state_json(t), indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        rel = str(final.relative_to(t.run))
        write_text_atomic(t.run / "latest.json", json.dumps({"path": rel, "step": t.step}) + "\n")
        if valid_ppl is not None and t.best_step == t.step:
            write_text_atomic(t.run / "best.json",
                              json.dumps({"path": rel, "step": t.step, "valid_ppl": valid_ppl}) + "\n")
        rotate(t.run, t.cfg.keep_last, t.best_step)
    barrier(t.world)
    return final


def rotate(run: Path, keep_last: int, best_step: int | None) -> None:
    """Delete the checkpoints besides the best and the ``keep_last`` latest (0: keep every one)."""
    keep = {f"step_{best_step:08d}"} if best_step is not None else set()
    found = sorted(p for p in (run / "checkpoints").glob("step_*") if p.is_dir())
    keep |= {p.name for p in (found[-keep_last:] if keep_last > 0 else found)}
    for p in found:
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(t, ckpt: Path) -> None:
    """Resume ``t`` exactly from ``ckpt``: weights, optimizer, RNG, memories, data position, counters."""
    from safetensors.torch import load_file
    from safetensors.torch import load_model as st_load

    st = json.loads((ckpt / "state.json").read_text())
    if st.get("world_size", 1) != t.world:
        raise InvalidInputError(f"checkpoint was written by {st['world_size']} processes, now {t.world}", str(ckpt))
    st_load(t.model, str(ckpt / "model.safetensors"), device=str(t.device))
    load_optimizer(t.opt, ckpt, t.device)
    extra = load_file(str(ckpt / f"state_rank{t.rank}.safetensors"), device=str(t.device))
    set_rng(extra)
    flat = [extra[f"mem.{i}"] for i in range(sum(1 for k in extra if k.startswith("mem.")))]
    per = len(flat) // max(1, len(t.mems))
    t.mems = [unflat_state(m, flat[i * per:(i + 1) * per]) for i, m in enumerate(t.mems)]
    t.step, t.tokens, t.elapsed = st["step"], st["tokens"], st["elapsed_s"]
    t.streams.load_state_dict(st["streams"])
    t.best_ppl, t.best_step, t.bad_evals = st["best_ppl"], st["best_step"], st["bad_evals"]
    t.log_acc = st["log_acc"]
    if t.rank == 0:
        truncate_log(t.run / "log.csv", t.step)


# ----------------------------------------------------------------------------- log.csv


def truncate_log(f: Path, step: int) -> None:
    """Drop the log lines after ``step`` (written after the checkpoint a run resumes from)."""
    if not f.exists():
        return
    with f.open() as fh:
        rows = [r for r in csv.DictReader(fh)  # a line cut short by a kill is dropped too
                if (r.get("step") or "").isdigit() and None not in r.values() and int(r["step"]) <= step]
    with atomic_path(f) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, LOG_FIELDS)
        w.writeheader()
        w.writerows(rows)


class RunLog:
    """Appends rows to a run's ``log.csv`` (and TensorBoard, when installed); silent on ranks other than 0."""

    def __init__(self, run: Path, rank: int):
        self.file, self.on = run / "log.csv", rank == 0
        self.tb = None
        if self.on:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard not installed
                return
            self.tb = SummaryWriter(str(run / "tensorboard"))

    def write(self, row: dict) -> None:
        if not self.on:
            return
        new = not self.file.exists()
        with self.file.open("a", newline="") as fh:
            w = csv.DictWriter(fh, LOG_FIELDS)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in LOG_FIELDS})
        if self.tb is not None:
            for k in ("train_loss", "valid_loss", "valid_ppl", "lr", "tokens_per_s"):
                if row.get(k, "") != "":
                    self.tb.add_scalar(k, float(row[k]), row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
