"""One training loop for every language model in :mod:`lakhnes.models`: the ``Trainer`` and ``train()``.

AdamW with linear warmup and cosine decay, gradient clipping, gradient accumulation (the batch is split into
chunks, each with its own memory), bf16 autocast on CUDA and on CPUs with native bf16, optional ``torch.compile``,
validation perplexity with early stopping, and ``torchrun`` data parallelism with no code change. Training into a
run folder that has a checkpoint resumes it exactly (:mod:`lakhnes.training.checkpoints`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lakhnes.core.vocab import VOCAB_SIZE
from lakhnes.data.augment import AugmentConfig
from lakhnes.data.shards import load_manifest, load_split
from lakhnes.data.streams import SongStreams
from lakhnes.errors import InvalidInputError
from lakhnes.io import write_text_atomic
from lakhnes.models import build_model, load_model, model_type_of
from lakhnes.training.checkpoints import (
    RunLog,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    start_run,
)
from lakhnes.training.config import TrainConfig, check_config, resume_config
from lakhnes.training.distributed import grad_sync, init_process, wrap_model
from lakhnes.training.schedule import lr_at, out_of_time, set_lr, training_clock

# ----------------------------------------------------------------------------- helpers


def _param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def detach_state(state):
    """A model state cut from the graph of the step that made it."""
    if torch.is_tensor(state):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


@torch.no_grad()
def evaluate(model, split, *, batch_size: int, tgt_len: int, max_segments: int | None = None, device="cpu"):
    """Mean negative log-likelihood (nats/token) and perplexity of ``split``, read as
    ``batch_size`` streams with memory. Returns ``(nll, ppl, n_tokens)``."""
    model = getattr(model, "module", model)
    was_training = model.training
    model.eval()
    device = torch.device(device)
    total = len(split.tokens)
    batch_size = max(1, min(batch_size, total // (tgt_len + 1)))
    streams = SongStreams(split, batch_size, tgt_len, shuffle=False)
    state = model.init_state(batch_size, device)
    nll, n = 0.0, 0
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for x, y in streams.one_pass(max_segments or None):
            logits, state = model(torch.from_numpy(x).to(device), state)
            yt = torch.from_numpy(y).to(device)
            nll += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), yt.reshape(-1), reduction="sum").item()
            n += yt.numel()
    model.train(was_training)
    mean = nll / max(n, 1)
    return mean, math.exp(min(mean, 50.0)), n


class _StopFlag:
    """SIGTERM / first Ctrl-C ask the loop to stop after the current step (with a checkpoint)."""

    def __init__(self):
        self.set = False
        self._old = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, sig, frame):
        self.set = True
        signal.signal(sig, self._old.get(sig, signal.SIG_DFL))  # a second signal acts at once

    def __exit__(self, *exc):
        for sig, h in self._old.items():
            signal.signal(sig, h)


# ----------------------------------------------------------------------------- the loop


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (``avx512_bf16`` or AMX): there bf16 autocast trains the
    ``small`` preset 1.8x faster at the same loss (benchmarks/check_equal_quality.py); elsewhere it is emulated
    and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


# ----------------------------------------------------------------------------- the parts of a run


def make_model(cfg: TrainConfig, fresh: bool) -> torch.nn.Module:
    """The model a run trains: a new one of ``cfg.model``, or (a fresh run with ``cfg.init``) the init model, whose
    type and config then replace ``cfg``'s; ``cfg.mem_len`` (not a weight) applies to both."""
    if cfg.init and fresh:
        model = load_model(cfg.init, device="cpu").train()
        if model.config.vocab_size != VOCAB_SIZE:
            raise InvalidInputError(f"--init model has {model.config.vocab_size} token types, not the "
                                    f"TX1 vocabulary's {VOCAB_SIZE}", str(cfg.init))
        cfg.model_type, cfg.model = model_type_of(model), dataclasses.asdict(model.config)
    else:
        model = build_model(cfg.model_type, cfg.model)
    if cfg.mem_len is not None and "mem_len" in cfg.model:
        model.config.mem_len = cfg.model["mem_len"] = cfg.mem_len
    return model


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    return torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.99),
                             fused=device.type == "cuda" or None)  # one kernel per step on a GPU


def make_streams(cfg: TrainConfig, split, tgt_len: int, rank: int, world: int, device: torch.device) -> SongStreams:
    """This process's share of the training streams, augmented as ``cfg`` says."""
    aug = AugmentConfig(drop_voices=cfg.augment_drop > 0, p_drop=cfg.augment_drop,
                        swap_voices=cfg.augment_swap > 0, p_swap=cfg.augment_swap,
                        speed_mode=cfg.augment_speed) if cfg.augment else None
    return SongStreams(split, cfg.batch_size, tgt_len, seed=cfg.seed, augment=aug, rank=rank, world_size=world,
                       prefetch=device.type == "cuda")  # augment the next epoch meanwhile


def accumulate_grads(net, x: torch.Tensor, y: torch.Tensor, mems: list, *, world: int, bf16: bool) -> float:
    """Forward and backward over the batch in ``len(mems)`` chunks, each with its memory (updated in place);
    gradients sum over the chunks (and, under DDP, sync on the last). Returns the mean loss."""
    accum, total = len(mems), 0.0
    chunk = x.size(0) // accum
    for c in range(accum):
        sl = slice(c * chunk, (c + 1) * chunk)
        with grad_sync(net, c == accum - 1 or world == 1), torch.autocast(x.device.type, dtype=torch.bfloat16,
                                                                         enabled=bf16):
            logits, state = net(x[sl], mems[c])
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y[sl].reshape(-1))
            (loss / accum).backward()
        mems[c] = detach_state(state)
        total += loss.item() / accum
    return total


def stop_reason(cfg: TrainConfig, step: int, elapsed: float, stop_at: int, *, signal: bool, early: bool) -> str:
    """Why training stops after ``step``: the time budget, a signal, ``until``, early stopping; or "steps" (it goes
    on, or ends at ``cfg.steps``)."""
    if out_of_time(cfg, elapsed):
        return "time"
    if signal:
        return "signal"
    if step >= stop_at and stop_at < cfg.steps:
        return "until"
    return "early_stop" if early else "steps"


# ----------------------------------------------------------------------------- the loop


class Trainer:
    """Holds a run: model, optimizer, data streams, memories and bookkeeping."""

    def __init__(self, cfg: TrainConfig, run_dir: str | os.PathLike, *, progress: bool = True,
                 resume_overrides: dict | None = None):
        self.run = Path(run_dir)
        self.progress = progress
        self.rank, self.world, self.device = init_process()
        ckpt = latest_checkpoint(self.run)
        if ckpt is not None:  # resume: the stored config, with the overrides a resumed run may take
            cfg = resume_config(json.loads((self.run / "train_config.json").read_text()), resume_overrides)
        self.resumed_from, self.cfg = ckpt, cfg
        self.bf16 = cfg.bf16 if cfg.bf16 is not None else (self.device.type == "cuda" or native_bf16_cpu())
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed + self.rank)
        check_config(cfg)
        load_manifest(cfg.data)
        self.train_split = load_split(cfg.data, "train")
        self.valid_split = load_split(cfg.data, "valid")
        self.model = make_model(cfg, fresh=ckpt is None).to(self.device)
        self.tgt_len = cfg.tgt_len or getattr(self.model.config, "tgt_len", 0) or 128
        self.chunk = cfg.batch_size // cfg.accum_steps
        self.opt = make_optimizer(self.model, cfg, self.device)
        self._clock = training_clock(cfg)
        self.streams = make_streams(cfg, self.train_split, self.tgt_len, self.rank, self.world, self.device)
        self.mems = [self.model.init_state(self.chunk, self.device) for _ in range(cfg.accum_steps)]
        self.step, self.tokens, self.elapsed = 0, 0, 0.0
        self.best_ppl, self.best_step, self.bad_evals = float("inf"), None, 0
        self.log_acc = [0.0, 0]
        if ckpt is not None:
            load_checkpoint(self, ckpt)
        elif self.rank == 0:
            start_run(self.run, cfg)
        self.net = wrap_model(self.model, self.world, self.device, cfg.compile)

    def train_step(self) -> float:
        """One optimizer step over the next segment of every stream; returns the mean loss."""
        cfg, dev = self.cfg, self.device
        set_lr(self.opt, lr_at(cfg, self.step, self.elapsed))
        x, y = self.streams.next_batch()
        x, y = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
        loss = accumulate_grads(self.net, x, y, self.mems, world=self.world, bf16=self.bf16)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens += x.numel() * self.world
        return loss

    def fit(self, until: int | None = None) -> dict:
        """Train to ``cfg.steps`` (or ``until``, or the time budget, or early stopping);
        checkpoint on the way and at the end. Returns a summary dict."""
        from lakhnes.progress import progress_bar

        cfg = self.cfg
        stop_at = min(cfg.steps, until) if until else cfg.steps
        self.log = RunLog(self.run, self.rank)
        self.model.train()
        bar = progress_bar(total=cfg.steps, initial=self.step, disable=not self.progress or self.rank != 0,
                           desc="train", unit="step", dynamic_ncols=True)
        reason, last_ppl = "steps", None
        t_start, tok_start = time.perf_counter(), self.tokens
        with _StopFlag() as flag:
            while reason == "steps" and self.step < stop_at:
                t0 = self._clock()
                loss = self.train_step()
                self.elapsed += self._clock() - t0
                tps = (self.tokens - tok_start) / max(time.perf_counter() - t_start, 1e-9)
                bar.update(1)
                self._log_train(loss, tps, bar, force=self.step == stop_at)
                do_eval = self.step % cfg.eval_every == 0 or self.step >= cfg.steps
                if do_eval:
                    last_ppl = self._evaluate(bar)
                reason = stop_reason(cfg, self.step, self.elapsed, stop_at, signal=flag.set,
                                     early=do_eval and bool(cfg.patience) and self.bad_evals >= cfg.patience)
                save = do_eval or (cfg.save_every and self.step % cfg.save_every == 0)
                if save or reason != "steps" or self.step >= stop_at:
                    save_checkpoint(self, last_ppl if do_eval else None)
        bar.close()
        self.streams.close()
        self.log.close()
        summary = {"step": self.step, "stopped": reason, "best_valid_ppl": self.best_ppl,
                   "best_step": self.best_step, "tokens": self.tokens, "elapsed_s": round(self.elapsed, 1),
                   "parameters": self.model.num_parameters(), "bf16": self.bf16}
        if self.rank == 0:
            write_text_atomic(self.run / "summary.json", json.dumps(summary, indent=2) + "\n")
        return summary

    def _log_train(self, loss: float, tps: float, bar, force: bool) -> None:
        """Count the step's loss; every ``log_every`` steps (or when ``force``d) log the mean since the last row."""
        self.log_acc = [self.log_acc[0] + loss, self.log_acc[1] + 1]
        if self.step % self.cfg.log_every and not force:
            return
        mean = self.log_acc[0] / max(self.log_acc[1], 1)
        self.log_acc = [0.0, 0]
        bar.set_postfix(loss=f"{mean:.3f}", tok_s=f"{tps:.0f}", lr=f"{lr_at(self.cfg, self.step - 1, self.elapsed):.2e}")
        self.log.write(self._row(train_loss=mean, tokens_per_s=tps))

    def _row(self, **kw) -> dict:
        return {"step": self.step, "epoch": self.streams.epoch, "lr": f"{lr_at(self.cfg, self.step - 1, self.elapsed):.6g}",
                "tokens": self.tokens, "elapsed_s": f"{self.elapsed:.1f}",
                **{k: (f"{v:.5g}" if isinstance(v, float) else v) for k, v in kw.items()}}

    def _evaluate(self, bar) -> float:
        cfg = self.cfg
        nll, ppl, _ = evaluate(self.model, self.valid_split, batch_size=cfg.eval_batch, tgt_len=self.tgt_len,
                               max_segments=cfg.eval_segments or None, device=self.device)
        if ppl < self.best_ppl:
            self.best_ppl, self.best_step, self.bad_evals = ppl, self.step, 0
        else:
            self.bad_evals += 1
        self.log.write(self._row(valid_loss=nll, valid_ppl=ppl))
        if self.rank == 0:  # under torchrun every rank evaluates; one line is enough
            best = f"best {self.best_ppl:.3f} at step {self.best_step}" if self.best_step is not None else "no best yet"
            bar.write(f"step {self.step}: valid ppl {ppl:.3f} ({best})")
        return ppl


def train(cfg: TrainConfig, run_dir: str | os.PathLike, *, until: int | None = None, progress: bool = True,
          resume_overrides: dict | None = None) -> dict:
    """Train, or resume if ``run_dir`` holds a checkpoint (then its stored config is used, with
    ``resume_overrides`` for steps/max_minutes/patience), and return the summary."""
    return Trainer(cfg, run_dir, progress=progress, resume_overrides=resume_overrides).fit(until=until)
