"""Model files: safetensors weights + JSON config (no pickle), shards, and resolving a model path.

A model folder holds ``config.json`` and either ``model.safetensors`` (what training writes) or
16-bit shards ``model-0000K-of-0000N.safetensors`` with ``model.safetensors.index.json`` (the
usual sharded layout: the index maps each tensor name to its shard). Both load the same way,
as float32. The models shipped in the package are named: ``default`` and, once one is shipped,
``large`` (``src/lakhnes/assets/<name>``).

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
from lakhnes.models.safetensors_numpy import read_safetensors_numpy

#: model type -> (module, config class, model class); imported on first use
MODEL_TYPES = {
    "transformer_xl": ("lakhnes.models.transformer_xl", "TransformerXLConfig", "TransformerXL"),
    "lstm": ("lakhnes.models.lstm", "LSTMConfig", "LSTMLM"),
}
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
SHARD_NAME = "model-{k:05d}-of-{n:05d}.safetensors"
#: names of the models that may ship inside the package (``src/lakhnes/assets/<name>``)
SHIPPED = ("default", "large")


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


def shipped_model_path(name: str) -> Path:
    """Where the shipped model ``name`` lives (``default``, ``large``); it may be absent."""
    return Path(__file__).resolve().parent.parent / "assets" / name


def has_weights(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a model's weights (one file, or an index of shards)."""
    return (Path(folder) / WEIGHTS_FILE).exists() or (Path(folder) / INDEX_FILE).exists()


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder meant by ``path``: a run folder (its best checkpoint, else the latest),
    a model folder (one weights file or shards), a ``.safetensors`` file beside ``config.json``,
    or the name of a shipped model (``default``, ``large``) when no such file or folder exists."""
    p = Path(path)
    if not p.exists() and str(path) in SHIPPED:
        p = shipped_model_path(str(path))
        if not ((p / CONFIG_FILE).exists() and has_weights(p)):
            raise InvalidInputError(f"no {path!r} model is shipped in this installation (train one on a GPU: "
                                    "experiments/gpu/run.sh, then experiments/gpu/ship.py; or pass -m RUN)", str(p))
        return p
    if not p.exists():
        raise InvalidInputError("no such model file or folder", str(p))
    if p.is_file():
        if p.name == INDEX_FILE:
            return p.parent
        if p.suffix != ".safetensors":
            raise InvalidInputError("not a model (expected a run folder, checkpoint folder or .safetensors)", str(p))
        return p.parent
    if (p / CONFIG_FILE).exists() and has_weights(p):
        return p
    for pointer in ("best.json", "latest.json"):
        f = p / pointer
        if f.exists():
            target = p / json.loads(f.read_text())["path"]
            if (target / WEIGHTS_FILE).exists():
                return target
    raise InvalidInputError(f"no model here (needs {CONFIG_FILE} + {WEIGHTS_FILE} or {INDEX_FILE}, "
                            "or a training run)", str(p))


def _one_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _shard_plan(folder: Path) -> dict[str, list[str]]:
    """Shard file name -> the tensor names ``model.safetensors.index.json`` puts there (checked: a
    non-empty ``weight_map`` of plain ``.safetensors`` names beside the index). Torch-free."""
    index_file = folder / INDEX_FILE
    try:
        index = json.loads(index_file.read_text())
        weight_map = index["weight_map"]
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError("weight_map is not a non-empty object")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InvalidInputError(f"bad {INDEX_FILE} ({_one_line(e)})", str(index_file)) from None
    by_shard: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or Path(shard).name != shard or not shard.endswith(".safetensors"):
            raise InvalidInputError(f"bad shard name {shard!r} for {name} (a .safetensors file beside the index)",
                                    str(index_file))
        by_shard.setdefault(shard, []).append(name)
    return by_shard


def _read_shards(folder: Path, framework: str, convert) -> dict:
    """Every tensor of a sharded model folder through ``convert`` (``safe_open`` with ``framework``
    "pt", or :func:`read_safetensors_numpy` with "np"); every tensor the index names must be in its
    shard, and every shard tensor in the index."""
    from contextlib import nullcontext

    from safetensors import safe_open

    def opened(f: Path):
        return safe_open(str(f), framework=framework, device="cpu") if framework != "np" else \
            nullcontext(_NumpyFile(read_safetensors_numpy(f)))

    state = {}
    for shard, names in _shard_plan(folder).items():
        f = folder / shard
        if not f.exists():
            raise InvalidInputError(f"shard listed in {INDEX_FILE} is missing", str(f))
        try:
            with opened(f) as h:
                keys = set(h.keys())
                missing, extra = sorted(set(names) - keys), sorted(keys - set(names))
                if missing or extra:
                    what = (f"lacks {len(missing)} tensor(s) the index puts there (e.g. {missing[0]})" if missing
                            else f"holds {len(extra)} tensor(s) the index does not list (e.g. {extra[0]})")
                    raise InvalidInputError(what, str(f))
                for name in names:
                    state[name] = convert(h.get_tensor(name))
        except InvalidInputError:
            raise
        except Exception as e:  # not safetensors, truncated, ...
            raise InvalidInputError(f"cannot read shard ({_one_line(e)})", str(f)) from None
    return state


def load_sharded_state(folder: str | os.PathLike, dtype=None) -> dict:
    """The tensors of a sharded model folder (``model.safetensors.index.json`` + its shards),
    each cast to ``dtype`` (default float32; integer tensors keep theirs). Every tensor the index
    names must be in its shard, and every shard tensor in the index."""
    import torch

    dtype = dtype or torch.float32
    return _read_shards(Path(folder), "pt", lambda t: t.to(dtype) if t.is_floating_point() else t)


def read_config(path: str | os.PathLike) -> tuple[Path, dict]:
    """The checkpoint folder meant by ``path`` (see :func:`resolve_checkpoint`) and its parsed
    ``config.json`` (``model_type``, ``config``, ...). Torch-free."""
    ckpt = resolve_checkpoint(path)
    cfg_file = ckpt / CONFIG_FILE
    if not cfg_file.exists():
        raise InvalidInputError(f"missing {CONFIG_FILE} beside the weights", str(ckpt))
    try:
        meta = json.loads(cfg_file.read_text())
        if not isinstance(meta, dict) or not isinstance(meta["model_type"], str) or not isinstance(meta["config"], dict):
            raise TypeError("model_type (a string) and config (an object) are required")
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InvalidInputError(f"bad {CONFIG_FILE} ({e})", str(cfg_file)) from None
    return ckpt, meta


def _single_file(path: str | os.PathLike, ckpt: Path) -> Path:
    """The one-file weights meant by ``path`` (it may not exist: then the folder is sharded)."""
    p = Path(path)
    return p if p.is_file() and p.name != INDEX_FILE else ckpt / WEIGHTS_FILE


class _NumpyFile:
    def __init__(self, tensors: dict):
        self.tensors = tensors

    def keys(self):
        return self.tensors.keys()

    def get_tensor(self, name: str):
        return self.tensors[name]


def load_numpy_state(path: str | os.PathLike) -> tuple[dict, dict]:
    """``config.json`` and the weights of the model at ``path`` as float32 numpy arrays (16-bit
    shards are widened), through ``safetensors.numpy``: nothing imports torch."""
    import numpy as np

    ckpt, meta = read_config(path)
    single = _single_file(path, ckpt)

    def f32(a):
        return a.astype(np.float32) if a.dtype.kind == "f" and a.dtype != np.float32 else a

    if single.exists():
        try:
            state = {k: f32(a) for k, a in read_safetensors_numpy(single).items()}
        except Exception as e:  # not safetensors, truncated, ...
            raise InvalidInputError(f"cannot load weights ({_one_line(e)})", str(single)) from None
    else:
        state = _read_shards(ckpt, "np", f32)
    return meta, state


def _pack(names: list[str], sizes: dict, limit: int, first_fit: bool = False) -> list[list[str]]:
    """Group ``names`` into shards of at most ``limit`` bytes: each into the last shard (or, with
    ``first_fit``, the first one with room), else into a new one."""
    bins: list[list[str]] = []
    room: list[int] = []
    for name in names:
        n = sizes[name]
        k = next((i for i in (range(len(bins)) if first_fit else range(max(0, len(bins) - 1), len(bins)))
                  if room[i] >= n), None)
        if k is None:
            bins.append([])
            room.append(limit)
            k = len(bins) - 1
        bins[k].append(name)
        room[k] -= n
    return bins


def save_model_sharded(model, out_dir: str | os.PathLike, *, dtype=None, max_shard_bytes: int = 15 * 2**20,
                       metadata: dict | None = None) -> list[Path]:
    """Write ``model`` into ``out_dir`` as 16-bit safetensors files of at most ``max_shard_bytes``
    each (``model-0000K-of-0000N.safetensors``, tensors in state-dict order, none split), the index
    ``model.safetensors.index.json`` and ``config.json`` (``metadata`` merged into it: the model card).
    Every file is written atomically, the index after its shards; other model files in ``out_dir``
    are removed. ``dtype``: float16 (default) or bfloat16. Returns the shard paths."""
    import torch
    from safetensors.torch import save_file

    from lakhnes.io import atomic_path, write_text_atomic

    dtype = dtype or torch.float16
    if dtype not in (torch.float16, torch.bfloat16):
        raise InvalidInputError(f"shards are float16 or bfloat16, not {dtype}")
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu")
        if t.is_floating_point():
            if not torch.isfinite(t).all():
                raise InvalidInputError(f"{name} holds NaN or infinite values (did training diverge?)")
            big = t.abs().max().item()
            t = t.to(dtype)
            if not torch.isfinite(t).all():
                raise InvalidInputError(f"{name} does not fit in {dtype} (largest |value| {big:.3g}); try bfloat16")
        tensors[name] = t.contiguous()
    # a file's bytes: its tensors', plus its JSON header: at most 128 bytes per tensor + 128
    sizes = {name: t.numel() * t.element_size() + len(name) + 128 for name, t in tensors.items()}
    limit = max_shard_bytes - 128
    for name, n in sizes.items():
        if n > limit:
            raise InvalidInputError(f"{name} alone is {n} bytes, over the {max_shard_bytes}-byte shard limit")
    shards = _pack(list(sizes), sizes, limit)  # in state-dict order
    fewest = -(-sum(sizes.values()) // limit)
    if len(shards) > fewest:  # first-fit decreasing may need fewer files
        ffd = _pack(sorted(sizes, key=lambda k: -sizes[k]), sizes, limit, first_fit=True)
        shards = ffd if len(ffd) < len(shards) else shards
    shards = [{name: tensors[name] for name in part} for part in shards]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [SHARD_NAME.format(k=k + 1, n=len(shards)) for k in range(len(shards))]
    for stale in [*out.glob("model-*-of-*.safetensors"), out / WEIGHTS_FILE]:
        if stale.exists() and stale.name not in names:
            stale.unlink()
    paths = []
    for fname, part in zip(names, shards, strict=True):
        with atomic_path(out / fname) as tmp:
            save_file(part, str(tmp), metadata={"format": "pt"})
        paths.append(out / fname)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total, "dtype": str(dtype).removeprefix("torch.")},
             "weight_map": {name: fname for fname, part in zip(names, shards, strict=True) for name in part}}
    write_text_atomic(out / INDEX_FILE, json.dumps(index, indent=2) + "\n")
    cfg = {"model_type": model_type_of(model), "config": dataclasses.asdict(model.config),
           "weights": {"layout": "sharded", "dtype": index["metadata"]["dtype"], "shards": len(names),
                       "parameters": sum(t.numel() for t in tensors.values()), "bytes": total},
           **(metadata or {})}
    write_text_atomic(out / CONFIG_FILE, json.dumps(cfg, indent=2) + "\n")
    return paths


def load_model(path: str | os.PathLike, device="cpu"):
    """Load a model in eval mode from a run folder, checkpoint folder, sharded model folder,
    ``.safetensors`` file or shipped model name; weights become float32.

    Reads JSON and safetensors only: nothing is unpickled.
    """
    from safetensors.torch import load_model as st_load

    ckpt, meta = read_config(path)
    single = _single_file(path, ckpt)
    try:
        model = build_model(meta["model_type"], meta["config"])
    except (KeyError, TypeError) as e:
        raise InvalidInputError(f"bad {CONFIG_FILE} ({e})", str(ckpt / CONFIG_FILE)) from None
    if single.exists():
        try:
            st_load(model, str(single), strict=True, device="cpu")
        except Exception as e:  # safetensors / shape mismatch
            raise InvalidInputError(f"cannot load weights ({_one_line(e)})", str(single)) from None
    else:
        state = load_sharded_state(ckpt)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:  # names or shapes that do not fit config.json
            raise InvalidInputError(f"shards do not fit {CONFIG_FILE} ({_one_line(e)})", str(ckpt)) from None
    return model.float().to(device).eval()


def default_model_path() -> Path:
    """Where the shipped model lives (it may not exist in a development checkout)."""
    return shipped_model_path("default")
