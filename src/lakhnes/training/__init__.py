"""Training: the loop (``loop``), its config and presets, schedule, checkpoints and DDP glue."""

from lakhnes.training.loop import TrainConfig, Trainer, evaluate, lr_at, native_bf16_cpu, preset_config, train

__all__ = ["TrainConfig", "Trainer", "evaluate", "lr_at", "native_bf16_cpu", "preset_config", "train"]
