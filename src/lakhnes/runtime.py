"""Models and runtimes for decoding: which runtime runs a model (numpy on the CPU, torch for GPUs and
other models), loading a model with its caches' tables, and the stepper the decoding loop drives.
The modes that use them: :mod:`lakhnes.generate`."""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np

from lakhnes.core.score import NesScore
from lakhnes.errors import InvalidInputError

__all__ = ["RUNTIMES", "TORCH_INSTALL", "has_torch", "is_numpy", "load_default_model", "load_model", "load_source",
           "model_type", "pick_runtime", "require_torch", "set_threads"]

#: the runtimes a model decodes in ("auto": :func:`pick_runtime` picks)
RUNTIMES = ("auto", "numpy", "torch")
#: what to install for the torch runtime (training, eval, the LSTM, CUDA)
TORCH_INSTALL = 'pip install "lakhnes[train]"'


def has_torch() -> bool:
    """Whether PyTorch can be imported (without importing it)."""
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def require_torch(what: str) -> None:
    """A one-line :class:`InvalidInputError` naming the install command when torch is missing."""
    if not has_torch():
        raise InvalidInputError(f"{what} needs PyTorch, which is not installed: {TORCH_INSTALL}")


def _gpu_here() -> bool:
    """An NVIDIA driver on this machine (checked before importing torch to ask CUDA)."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


def pick_runtime(runtime: str = "auto", device: str | None = None,
                 model_type: str = "transformer_xl") -> tuple[str, str]:
    """(runtime, device) to decode a ``model_type`` on ``device`` (None: a GPU when there is one).
    ``auto``: numpy for a Transformer-XL on the CPU (no torch import: starts in a fraction of a
    second, steps as fast as torch's), torch for a GPU or any other model."""
    if runtime not in RUNTIMES:
        raise InvalidInputError(f"runtime: {runtime!r} is none of {', '.join(RUNTIMES)}")
    cpu = device is None or str(device) == "cpu"
    if runtime == "numpy":
        if model_type != "transformer_xl":
            raise InvalidInputError(f"the numpy runtime runs Transformer-XL models, not {model_type} (use the torch "
                                    "runtime)")
        if not cpu:
            raise InvalidInputError(f"the numpy runtime runs on the CPU, not {device} (use the torch runtime)")
        return "numpy", "cpu"
    if runtime == "auto" and cpu and model_type == "transformer_xl":
        if device is None and has_torch() and _gpu_here():
            import torch

            if torch.cuda.is_available():
                return "torch", "cuda"
        return "numpy", "cpu"
    require_torch("the torch runtime" if runtime == "torch" else
                  f"a {model_type} model" if model_type != "transformer_xl" else f"device {device}")
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "torch", str(device)


def model_type(path=None) -> str:
    """The type of the model at ``path`` (None: the shipped one) from its ``config.json``; a
    Transformer-XL when there is none to read (loading the model then says what is wrong)."""
    from lakhnes.models.files import default_model_path, read_config

    try:
        return str(read_config(default_model_path() if path is None else path)[1]["model_type"])
    except InvalidInputError:
        return "transformer_xl"


def load_model(path, device="cpu", runtime: str = "torch"):
    """A model from a run folder, checkpoint folder or ``.safetensors`` file (no pickle), for
    ``runtime`` (see :func:`pick_runtime`): a torch module, or a
    :class:`lakhnes.models.txl_numpy.NumpyTXL` for numpy."""
    from lakhnes.models import rhythm_cache, song_cache, voice_cache

    if runtime != "torch":
        runtime, device = pick_runtime(runtime, device, model_type(path))
    if runtime == "numpy":
        from lakhnes.models.txl_numpy import NumpyTXL

        model = NumpyTXL.load(path)
    else:
        require_torch("the torch runtime")
        from lakhnes.models import load_model as _load

        model = _load(path, device=device or "cpu")
    mem = getattr(getattr(model, "config", None), "mem_len", None)  # the tables fitted nearest it
    model.song_cache, model.voice_cache = song_cache.read_lambdas(path, mem), voice_cache.read_mu(path, mem)
    model.rhythm_cache = rhythm_cache.read_rho(path, mem)
    return model


def load_default_model(device="cpu", runtime: str = "torch"):
    """The shipped model (``src/lakhnes/assets/default``) for ``runtime`` (see :func:`load_model`)."""
    from lakhnes.models import default_model_path, has_weights

    path = default_model_path()
    if not (path / "config.json").exists() or not has_weights(path):
        raise InvalidInputError("no shipped model here (needs config.json + model.safetensors or shards); "
                                "pass -m MODEL (a run or checkpoint folder)", str(path))
    return load_model(path, device=device, runtime=runtime)


def set_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads; default 1: a decoding step is a chain of small operations that
    extra threads slow down (on the 2-core dev machine under load, a tiny-model step took 1.8 ms
    with one thread and 100 ms with two). (numpy's BLAS threads: the ``lakhnes`` command sets
    ``OPENBLAS_NUM_THREADS`` and friends to 1 before numpy loads, unless they are set.)"""
    threads = 1 if threads is None else max(1, int(threads))
    if has_torch():
        import torch

        torch.set_num_threads(threads)
    return threads


def load_source(path, seed: int = 0) -> NesScore:
    """A song to prime or accompany: see :func:`lakhnes.formats.files.load_source` (torch-free)."""
    from lakhnes.formats.files import load_source as _load_source

    return _load_source(path, seed=seed)


def is_numpy(model) -> bool:
    """Whether ``model`` runs in the numpy runtime."""
    from lakhnes.models.txl_numpy import NumpyTXL

    return isinstance(model, NumpyTXL)


def _stepper(model, prompt: np.ndarray, cache: bool = True):
    """The stepper the decoding loop drives (numpy logits in both runtimes), with the model's caches
    (``model.song_cache``, ``.voice_cache``, ``.rhythm_cache``: tables; None: off) mixed in."""
    if is_numpy(model):
        from lakhnes.models.txl_numpy import NumpyStepper

        inner = NumpyStepper(model, prompt)
    else:
        from lakhnes.models.txl_step import HostStepper

        inner = HostStepper(model, prompt, cache=cache)
    from lakhnes.models.caches import with_caches
    keys = ("song_cache", "voice_cache", "cache_boost", "rhythm_cache", "rhythm_boost")
    return with_caches(inner, prompt, *(getattr(model, k, None) for k in keys))
