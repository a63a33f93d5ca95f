"""Language models over TX1 tokens: the networks, their cached decoding step, and their files.

- :mod:`~lakhnes.models.transformer_xl`, :mod:`~lakhnes.models.lstm`, :mod:`~lakhnes.models.ngram`:
  the networks (and the n-gram baselines);
- :mod:`~lakhnes.models.txl_step`: one-token Transformer-XL steps with cached keys and values;
- :mod:`~lakhnes.models.files`: safetensors + JSON config (no pickle), shards, resolving a model
  path, building a model from a preset.

Every neural model is an ``nn.Module`` with ``.config`` (a dataclass), ``forward(x, state=None) ->
(logits, new_state)``, ``init_state(batch_size, device=None)`` and ``num_parameters()``; each model
module holds ``PRESETS``. Importing this package does not import torch.
"""

from lakhnes.models.files import (
    CONFIG_FILE,
    INDEX_FILE,
    MODEL_TYPES,
    SHARD_NAME,
    SHIPPED,
    WEIGHTS_FILE,
    build_model,
    default_model_path,
    has_weights,
    load_model,
    load_sharded_state,
    make_config,
    model_type_of,
    presets,
    resolve_checkpoint,
    save_model,
    save_model_sharded,
    shipped_model_path,
)

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "INDEX_FILE", "MODEL_TYPES", "SHARD_NAME", "SHIPPED", "build_model", "default_model_path", "has_weights",
           "load_model", "load_sharded_state", "make_config", "model_type_of", "presets", "resolve_checkpoint",
           "save_model", "save_model_sharded", "shipped_model_path"]
