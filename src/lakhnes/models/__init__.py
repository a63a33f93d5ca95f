"""Language models over TX1 tokens, and their files (safetensors weights + JSON config, no pickle).

Every model is an ``nn.Module`` with ``.config`` (a dataclass), ``forward(x, state=None) ->
(logits, new_state)``, ``init_state(batch_size, device=None)`` and ``num_parameters()``.
Each model module also holds ``PRESETS``: named config dicts (``tiny``, ``small``, ``paper``).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from pathlib import Path

from lakhnes.errors import InvalidInputError

#: model type -> (module, config class, model class); imported on first use
MODEL_TYPES = {
    "transformer_xl": ("lakhnes.models.transformer_xl", "TransformerXLConfig", "TransformerXL"),
    "lstm": ("lakhnes.models.lstm", "LSTMConfig", "LSTMLM"),
}
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


def _classes(model_type: str):
    if model_type not in MODEL_TYPES:
        raise InvalidInputError(f"unknown model type {model_type!r} (known: {', '.join(MODEL_TYPES)})")
    mod, cfg, cls = MODEL_TYPES[model_type]
    m = importlib.import_module(mod)
    return m, getattr(m, cfg), getattr(m, cls)


def presets(model_type: str) -> dict[str, dict]:
    """The named configs of a model type."""
    return dict(getattr(_classes(model_type)[0], "PRESETS", {}))


def make_config(model_type: str, config: dict | str):
    """A config dataclass from a dict or a preset name (unknown keys are an error)."""
    _, cfg_cls, _ = _classes(model_type)
    if isinstance(config, str):
        known = presets(model_type)
        if config not in known:
            raise InvalidInputError(f"no preset {config!r} for {model_type} (known: {', '.join(known)})")
        config = known[config]
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    extra = set(config) - names
    if extra:
        raise InvalidInputError(f"unknown {model_type} config keys: {', '.join(sorted(extra))}")
    return cfg_cls(**config)


def build_model(model_type: str, config: dict | str):
    """A freshly initialised model from a config dict or preset name."""
    _, _, cls = _classes(model_type)
    return cls(make_config(model_type, config))


def model_type_of(model) -> str:
    name = type(getattr(model, "module", model)).__name__
    for t, (_, _, cls) in MODEL_TYPES.items():
        if cls == name:
            return t
    raise ValueError(f"unregistered model class {name}")


def save_model(model, out_dir: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``out_dir`` (each atomically)."""
    from safetensors.torch import save_model as st_save

    from lakhnes.io import atomic_path, write_text_atomic

    model = getattr(model, "module", model)  # unwrap DDP / compile
    model = getattr(model, "_orig_mod", model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        st_save(model, str(tmp))
    cfg = {"model_type": model_type_of(model), "config": dataclasses.asdict(model.config), **(metadata or {})}
    write_text_atomic(out / CONFIG_FILE, json.dumps(cfg, indent=2) + "\n")
    return out


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder meant by ``path``: a run folder (its best checkpoint, else the latest),
    a checkpoint folder, or a ``.safetensors`` file beside ``config.json``."""
    p = Path(path)
    if not p.exists():
        raise InvalidInputError("no such model file or folder", str(p))
    if p.is_file():
        if p.suffix != ".safetensors":
            raise InvalidInputError("not a model (expected a run folder, checkpoint folder or .safetensors)", str(p))
        return p.parent
    if (p / CONFIG_FILE).exists() and (p / WEIGHTS_FILE).exists():
        return p
    for pointer in ("best.json", "latest.json"):
        f = p / pointer
        if f.exists():
            target = p / json.loads(f.read_text())["path"]
            if (target / WEIGHTS_FILE).exists():
                return target
    raise InvalidInputError(f"no model here (needs {CONFIG_FILE} + {WEIGHTS_FILE}, or a training run)", str(p))


def load_model(path: str | os.PathLike, device="cpu"):
    """Load a model in eval mode from a run folder, checkpoint folder or ``.safetensors`` file.

    Reads JSON and safetensors only: nothing is unpickled.
    """
    from safetensors.torch import load_model as st_load

    ckpt = resolve_checkpoint(path)
    weights = Path(path) if Path(path).is_file() else ckpt / WEIGHTS_FILE
    cfg_file = ckpt / CONFIG_FILE
    if not cfg_file.exists():
        raise InvalidInputError(f"missing {CONFIG_FILE} beside the weights", str(ckpt))
    try:
        meta = json.loads(cfg_file.read_text())
        model = build_model(meta["model_type"], meta["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InvalidInputError(f"bad {CONFIG_FILE} ({e})", str(cfg_file)) from None
    try:
        st_load(model, str(weights), strict=True, device=str(device))
    except Exception as e:  # safetensors / shape mismatch
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidInputError(f"cannot load weights ({msg})", str(weights)) from None
    return model.to(device).eval()


def default_model_path() -> Path:
    """Where the shipped model lives (it may not exist in a development checkout)."""
    return Path(__file__).resolve().parent.parent / "assets" / "default"
