"""The sizes of a Transformer-XL (:class:`TransformerXLConfig`), free of torch: the torch network
(:mod:`lakhnes.models.transformer_xl`) and the numpy runtime (:mod:`lakhnes.models.txl_numpy`) share it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lakhnes.core.vocab import VOCAB_SIZE


@dataclass
class TransformerXLConfig:
    """Sizes of a Transformer-XL. ``tgt_len`` is the training segment length."""

    n_layer: int = 4
    n_head: int = 8
    d_model: int = 256
    d_head: int = 0  # 0: d_model // n_head
    d_inner: int = 1024
    tgt_len: int = 256
    mem_len: int = 256
    dropout: float = 0.1
    dropatt: float = 0.0
    pre_norm: bool = False
    tie_weights: bool = True  # output projection = the input embedding (LakhNES); False: its own matrix
    clamp_len: int = 0  # distances beyond this share its position embedding (Transformer-XL's clamp_len); 0: none
    vocab_size: int = VOCAB_SIZE

    def __post_init__(self):
        if not self.d_head:
            self.d_head = self.d_model // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)
