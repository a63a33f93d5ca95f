"""Training: the loop (``loop``), its config and presets, schedule, checkpoints and DDP glue."""

from lakhnes.training.config import TRAIN_PRESETS, TrainConfig, preset_config
from lakhnes.training.loop import Trainer, evaluate, native_bf16_cpu, train
from lakhnes.training.schedule import lr_at

__all__ = ["TRAIN_PRESETS", "TrainConfig", "Trainer", "evaluate", "lr_at", "native_bf16_cpu", "preset_config", "train"]
