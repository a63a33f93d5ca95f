"""Transformer-XL (Dai et al. 2019) as LakhNES used it: a decoder-only language model with
relative positional attention (global biases u and v), segment-level recurrence and tied
input/output embeddings (or, with ``tie_weights=False`` as in the ``small`` preset, an output matrix
of its own).

The state is a list with one memory per layer: the detached hidden states entering that
layer over the last ``mem_len`` positions. Feeding one token at a time with that state is
incremental decoding. Attention runs in ``scaled_dot_product_attention``: the content term
uses ``q + u`` as the query, and the position term ``(q + v) R^T`` (aligned with the rel-shift
trick, scaled, and -inf where a key lies in the future) is passed as its float ``attn_mask``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lakhnes.models.txl_config import TransformerXLConfig

__all__ = ["PRESETS", "TransformerXL", "TransformerXLConfig", "rel_shift", "sinusoid"]


#: Named sizes: ``paper`` is LakhNES' model, ``small`` fits an hour on a 2-core CPU. ``small`` has 4
#: heads of 64, no dropout and its own output matrix: at an equal CPU budget (experiments/recipe.sh)
#: 4 heads of 64 without dropout beat 8 of 32 with dropout 0.1 (valid PPL 62.4 vs 68.7, ~24 % more
#: tokens per CPU-second), and the untied output beat the tied one (49.7 vs 57.1 in float32, 17.8 vs
#: 27.3 in bf16).
PRESETS = {
    "paper": dict(n_layer=12, n_head=8, d_model=512, d_inner=2048, tgt_len=512, mem_len=512, dropout=0.1),
    "small": dict(n_layer=4, n_head=4, d_model=256, d_inner=1024, tgt_len=128, mem_len=128, dropout=0.0,
                  tie_weights=False),
    "tiny": dict(n_layer=2, n_head=2, d_model=32, d_inner=64, tgt_len=16, mem_len=16, dropout=0.0),
}


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """Align ``x[..., i, k]`` (query i, relative-position row k) so that column j holds the
    term for key j: out[i, j] = x[i, j + qlen - 1 - i] wherever key j is visible (j <= i + mlen).

    Transformer-XL's pad-and-reshape trick: a zero column in front, the [q, k+1] block read as
    [k+1, q], its first row dropped. Entries for hidden keys hold neighbouring values; mask them.
    (Its backward is a pad and a slice, far cheaper on CPU than an ``as_strided`` view's.)"""
    *lead, q, k = x.shape
    return F.pad(x, (1, 0)).view(*lead, k + 1, q)[..., 1:, :].reshape(*lead, q, k)


def sinusoid(klen: int, d_model: int, device=None, dtype=None, clamp_len: int = 0) -> torch.Tensor:
    """Embeddings of the relative distances klen-1 … 0 (one row each); distances beyond
    ``clamp_len`` (when > 0) take its embedding."""
    pos = torch.arange(klen - 1, -1, -1.0, device=device)
    if clamp_len > 0:
        pos = pos.clamp_max(clamp_len)
    inv_freq = 1.0 / (10000 ** (torch.arange(0.0, d_model, 2.0, device=device) / d_model))
    ang = pos[:, None] * inv_freq[None]
    return torch.cat([ang.sin(), ang.cos()], dim=-1).to(dtype or torch.float32)


class RelAttention(nn.Module):
    """Multi-head attention over [memory, segment] with relative positions."""

    def __init__(self, c: TransformerXLConfig):
        super().__init__()
        self.h, self.dh = c.n_head, c.d_head
        self.q = nn.Linear(c.d_model, c.n_head * c.d_head, bias=False)
        self.kv = nn.Linear(c.d_model, 2 * c.n_head * c.d_head, bias=False)
        self.r = nn.Linear(c.d_model, c.n_head * c.d_head, bias=False)
        self.o = nn.Linear(c.n_head * c.d_head, c.d_model, bias=False)
        self.dropatt = c.dropatt
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, ctx, pos, u, v, mask):
        """x [B, q, d] the segment, ctx [B, k, d] memory + segment, pos [k, d], mask [q, k] (True = hidden)."""
        B, q, _ = x.shape
        k = ctx.size(1)
        qh = self.q(x).view(B, q, self.h, self.dh).transpose(1, 2)  # B H q dh
        kh, vh = self.kv(ctx).view(B, k, 2, self.h, self.dh).permute(2, 0, 3, 1, 4)  # B H k dh each
        rh = self.r(pos).view(k, self.h, self.dh).permute(1, 2, 0)  # H dh k
        scale = 1.0 / math.sqrt(self.dh)
        bd = rel_shift(torch.matmul((qh + v[:, None]) * scale, rh))  # B H q k, scaled as SDPA scales q·k
        bd = bd.masked_fill(mask, float("-inf")).to(qh.dtype)
        out = F.scaled_dot_product_attention(
            qh + u[:, None], kh, vh, attn_mask=bd, dropout_p=self.dropatt if self.training else 0.0
        )
        return self.drop(self.o(out.transpose(1, 2).reshape(B, q, self.h * self.dh)))


class Block(nn.Module):
    """Attention + feed-forward, each with a residual; layer norm after (post) or before (pre)."""

    def __init__(self, c: TransformerXLConfig):
        super().__init__()
        self.pre_norm = c.pre_norm
        self.attn = RelAttention(c)
        self.ln1, self.ln2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.ff = nn.Sequential(
            nn.Linear(c.d_model, c.d_inner), nn.ReLU(), nn.Dropout(c.dropout),
            nn.Linear(c.d_inner, c.d_model), nn.Dropout(c.dropout),
        )

    def forward(self, x, mem, pos, u, v, mask):
        ctx = torch.cat([mem.to(x.dtype), x], 1) if mem.size(1) else x
        if self.pre_norm:
            x = x + self.attn(self.ln1(x), self.ln1(ctx), pos, u, v, mask)
            return x + self.ff(self.ln2(x))
        x = self.ln1(x + self.attn(x, ctx, pos, u, v, mask))
        return self.ln2(x + self.ff(x))


class TransformerXL(nn.Module):
    """Decoder-only Transformer-XL language model over the TX1 vocabulary."""

    def __init__(self, config: TransformerXLConfig):
        super().__init__()
        self.config = c = config
        self.emb = nn.Embedding(c.vocab_size, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.u = nn.Parameter(torch.zeros(c.n_head, c.d_head))
        self.v = nn.Parameter(torch.zeros(c.n_head, c.d_head))
        self.ln_f = nn.LayerNorm(c.d_model) if c.pre_norm else nn.Identity()
        self.out_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.out_weight = None if c.tie_weights else nn.Parameter(torch.empty(c.vocab_size, c.d_model))
        self.apply(self._init)
        nn.init.normal_(self.u, std=0.02)
        nn.init.normal_(self.v, std=0.02)
        if self.out_weight is not None:
            nn.init.normal_(self.out_weight, std=0.02)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def init_state(self, batch_size: int, device=None) -> list[torch.Tensor]:
        """Empty memories (length 0), one per layer."""
        device = device or self.emb.weight.device
        return [torch.zeros(batch_size, 0, self.config.d_model, device=device) for _ in self.layers]

    def forward(self, x: torch.Tensor, state=None):
        """Logits [B, T, vocab] for ids x [B, T] after the memories in ``state``; and the new state."""
        c = self.config
        B, q = x.shape
        mems = state if state else self.init_state(B, x.device)
        mlen = mems[0].size(1)
        klen = mlen + q
        h = self.drop(self.emb(x) * math.sqrt(c.d_model))
        pos = self.drop(sinusoid(klen, c.d_model, x.device, h.dtype, c.clamp_len))
        mask = torch.ones(q, klen, dtype=torch.bool, device=x.device).triu_(1 + mlen)
        new = []
        for layer, mem in zip(self.layers, mems, strict=True):
            new.append(self._remember(mem, h))
            h = layer(h, mem, pos, self.u, self.v, mask)
        h = self.drop(self.ln_f(h))
        w = self.emb.weight if self.out_weight is None else self.out_weight
        return F.linear(h, w, self.out_bias), new

    def _remember(self, mem, h):
        n = self.config.mem_len
        if n <= 0:
            return mem[:, :0].detach()
        cat = torch.cat([mem.to(h.dtype), h], 1) if mem.size(1) else h
        return cat[:, -n:].detach()
