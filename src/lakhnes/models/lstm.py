"""LSTM language model baseline (the paper's: one layer of 3072 units, ~40 M parameters).

The state is ``(h, c)``, each [n_layer, B, d_hidden]; passing it back in carries the
recurrence across segments (training with truncated backprop, evaluation, sampling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from lakhnes.core.vocab import VOCAB_SIZE


@dataclass
class LSTMConfig:
    """Sizes of an LSTM language model. ``tgt_len`` is the training segment length (truncated
    backprop); ``mem_len`` is 0 (the state carries the context)."""

    n_layer: int = 1
    d_embed: int = 256
    d_hidden: int = 1024
    dropout: float = 0.1
    tgt_len: int = 128
    mem_len: int = 0
    vocab_size: int = VOCAB_SIZE

    def to_dict(self) -> dict:
        return asdict(self)


#: Named sizes: ``paper`` is LakhNES' LSTM baseline (41.4 M parameters), ``small`` trains on a
#: 2-core CPU in minutes, ``tiny`` is for tests.
PRESETS = {
    "paper": dict(n_layer=1, d_embed=128, d_hidden=3072, dropout=0.1, tgt_len=512),
    "small": dict(n_layer=1, d_embed=128, d_hidden=512, dropout=0.1, tgt_len=128),
    "tiny": dict(n_layer=1, d_embed=16, d_hidden=32, dropout=0.0, tgt_len=16),
}


class LSTMLM(nn.Module):
    """Embedding → LSTM → linear over the 631 TX1 ids."""

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = c = config
        self.emb = nn.Embedding(c.vocab_size, c.d_embed)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = nn.LSTM(c.d_embed, c.d_hidden, num_layers=c.n_layer, batch_first=True,
                           dropout=c.dropout if c.n_layer > 1 else 0.0)
        self.head = nn.Linear(c.d_hidden, c.vocab_size)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def init_state(self, batch_size: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (h, c)."""
        device = device or self.emb.weight.device
        z = torch.zeros(self.config.n_layer, batch_size, self.config.d_hidden, device=device)
        return z, z.clone()

    def forward(self, x: torch.Tensor, state=None):
        """Logits [B, T, vocab] for ids x [B, T] after ``state``; and the new (detached) state."""
        if state is None:
            state = self.init_state(x.size(0), x.device)
        h, c = (s.to(self.emb.weight.dtype) for s in state)
        out, (h, c) = self.rnn(self.drop(self.emb(x)), (h, c))
        return self.head(self.drop(out)), (h.detach(), c.detach())
