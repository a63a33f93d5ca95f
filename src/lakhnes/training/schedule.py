"""The learning-rate schedule: linear warmup, then cosine decay over the steps or over a training-time budget."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from lakhnes.training.config import TrainConfig


def lr_at(cfg: TrainConfig, step: int, elapsed: float = 0.0) -> float:
    """Learning rate for the step with 0-based index ``step``: linear warmup, then cosine, over
    the steps, or (``schedule="time"``) over ``max_minutes`` of training time (``elapsed`` seconds)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "time":
        t = min(1.0, elapsed / max(cfg.max_minutes * 60, 1e-9))
    else:
        t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def training_clock(cfg: TrainConfig) -> Callable[[], float]:
    """What counts as training time: wall seconds, or this process's CPU seconds (``clock="cpu"``)."""
    return time.process_time if cfg.clock == "cpu" else time.perf_counter


def out_of_time(cfg: TrainConfig, elapsed: float) -> bool:
    """Whether ``elapsed`` seconds of training time have used up the ``max_minutes`` budget (0: none)."""
    return cfg.max_minutes > 0 and elapsed >= cfg.max_minutes * 60
