"""The training config: ``TrainConfig``, the size presets, its validation and what a resumed run may change."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from lakhnes.data.augment import SPEED_MODES
from lakhnes.errors import InvalidInputError
from lakhnes.models import make_config


@dataclass
class TrainConfig:
    """Everything a run needs; stored as ``train_config.json`` in the run folder."""

    data: str = ""
    model_type: str = "transformer_xl"
    model: dict = field(default_factory=dict)  # model config (from a preset, or the --init model)
    init: str | None = None
    batch_size: int = 8  # streams per process
    tgt_len: int = 0  # 0: the model's tgt_len (128 when it has none)
    mem_len: int | None = None  # None: the model's mem_len; else it replaces it (also for an --init model)
    accum_steps: int = 1  # the batch is split into this many chunks
    steps: int = 10000
    lr: float = 5e-4
    min_lr_ratio: float = 0.02
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 0.25
    augment: bool = True
    augment_drop: float = 0.5  # chance of the voice-subset augmentation (0: never drop voices)
    augment_swap: float = 0.5  # chance of the voice-swap augmentation (0: every part stays on its voice)
    augment_speed: str = "grid"  # speed augmentation: "grid" (whole frames), "free" (LakhNES), "off"
    seed: int = 0
    eval_every: int = 250
    eval_batch: int = 8
    eval_segments: int = 0  # 0: the whole valid split
    patience: int = 0  # stop after this many evaluations without improvement (0: never)
    log_every: int = 10
    save_every: int = 0  # 0: at each evaluation
    keep_last: int = 2  # checkpoints kept besides the best (0: every one)
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much training time, all sessions
    schedule: str = "steps"  # cosine over the steps, or over the max_minutes of training time ("time")
    clock: str = "wall"  # training time as wall seconds, or as this process's CPU seconds ("cpu": all
    #                      threads summed; a budget that other programs on the machine do not eat into)
    compile: bool = False
    threads: int = 0
    bf16: bool | None = None  # bf16 autocast for training steps; None: on CUDA and on CPUs with native bf16

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


#: Training settings that go with each model preset.
TRAIN_PRESETS = {
    "tiny": dict(batch_size=2, steps=200, lr=3e-3, warmup_steps=10, eval_every=50, eval_batch=2,
                 eval_segments=8, log_every=10),
    "small": dict(batch_size=8, steps=6000, lr=5e-4, warmup_steps=200, eval_every=250, eval_batch=8,
                  eval_segments=60, patience=8, log_every=10),
    "paper": dict(batch_size=8, steps=200000, lr=2.5e-4, warmup_steps=2000, eval_every=2000, eval_batch=8,
                  eval_segments=0, patience=5, log_every=50),
}


def preset_config(name: str, model_type: str = "transformer_xl", **overrides) -> TrainConfig:
    """A TrainConfig for a named size: model preset + its training settings + overrides."""
    if name not in TRAIN_PRESETS:
        raise InvalidInputError(f"unknown config {name!r} (known: {', '.join(TRAIN_PRESETS)})")
    model = dataclasses.asdict(make_config(model_type, name))
    return TrainConfig(model_type=model_type, model=model, **{**TRAIN_PRESETS[name], **overrides})


def check_config(cfg: TrainConfig) -> None:
    """Raise ``InvalidInputError`` for a config no run can start from."""
    if not cfg.data:
        raise InvalidInputError("no training data given (--data)")
    if cfg.batch_size % cfg.accum_steps:
        raise InvalidInputError(f"batch size {cfg.batch_size} is not a multiple of --accum {cfg.accum_steps}")
    if cfg.schedule not in ("steps", "time") or (cfg.schedule == "time" and not cfg.max_minutes > 0):
        raise InvalidInputError(f"schedule {cfg.schedule!r}: 'steps', or 'time' with a --max-minutes budget")
    if cfg.clock not in ("wall", "cpu"):
        raise InvalidInputError(f"clock {cfg.clock!r}: 'wall' or 'cpu'")
    for name, option in (("augment_drop", "--aug-drop"), ("augment_swap", "--aug-swap")):
        if not 0 <= getattr(cfg, name) <= 1:
            raise InvalidInputError(f"{option} ({name}) must lie in [0, 1] (got {getattr(cfg, name)})")
    if cfg.augment_speed not in SPEED_MODES:
        raise InvalidInputError(f"augment_speed {cfg.augment_speed!r}: one of {', '.join(SPEED_MODES)}")



#: What a resumed run may change: its budget, validation, logging, kept checkpoints, learning-rate schedule and
#: speed settings. The other fields fix the model, the data and its order, or the shape of the saved state.
RESUMABLE = frozenset({"steps", "max_minutes", "patience", "eval_every", "eval_batch", "eval_segments", "log_every",
                       "save_every", "keep_last", "lr", "min_lr_ratio", "warmup_steps", "grad_clip", "schedule",
                       "clock", "compile", "threads", "bf16"})


def _same(key: str, old, new) -> bool:
    if key in ("data", "init") and old and new:
        return os.path.realpath(old) == os.path.realpath(new)
    return old == new


def resume_conflicts(cfg: TrainConfig, overrides: dict) -> list[str]:
    """The fields of ``overrides`` that a resumed run of ``cfg`` cannot take: not ``RESUMABLE``, and unlike the
    stored value (giving the same value again, as re-running a run's command does, is fine)."""
    return [k for k, v in overrides.items() if v is not None and k not in RESUMABLE and hasattr(cfg, k)
            and not _same(k, getattr(cfg, k), v)]


def resume_config(stored: dict, overrides: dict | None = None) -> TrainConfig:
    """The config of a run being resumed: the ``stored`` one with ``overrides`` applied; an override that cannot
    change on resume (``resume_conflicts``) raises ``InvalidInputError`` naming the field."""
    cfg = TrainConfig.from_dict(stored)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    bad = resume_conflicts(cfg, overrides)
    if bad:
        raise InvalidInputError(f"{bad[0]} cannot change when a run resumes (it is {getattr(cfg, bad[0])!r}, "
                                f"given {overrides[bad[0]]!r}); train into a new run folder to change it")
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if k in RESUMABLE})
