"""One-token Transformer-XL steps with cached keys, values and position projections.

``TransformerXL.forward(x[B, 1], state)`` recomputes the key/value projections of the whole
memory (``mem_len`` rows per layer) and the relative-position projections at every step. Both are
fixed once computed: a memory row never changes, and the position table depends only on the
length. :class:`CachedSteps` keeps them, so a step costs the new token's projections plus one
attention read of the cache. It computes exactly what ``forward`` computes (the memory update
rule is the same: the last ``mem_len`` inputs of each layer), up to float rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lakhnes.models.transformer_xl import TransformerXL, sinusoid


def supports(model) -> bool:
    """Whether ``model`` is a Transformer-XL this cache can step (in eval mode)."""
    return isinstance(model, TransformerXL) and not model.training


class CachedSteps:
    """Incremental decoding of ``model`` after the memories ``state`` (from ``model.forward``)."""

    def __init__(self, model: TransformerXL, state):
        c = model.config
        self.m, self.c = model, c
        self.n = max(0, c.mem_len)
        self.scale = 1.0 / math.sqrt(c.d_head)
        self.emb_scale = math.sqrt(c.d_model)
        dev = model.emb.weight.device
        pos = sinusoid(self.n + 1, c.d_model, dev, model.emb.weight.dtype)
        self.k, self.v, self.r, self.w_qkv = [], [], [], []
        # keys/values live in buffers of 2 * mem_len + 1 rows: a step writes one row after the
        # window and the window slides; once a buffer is full its window is moved to the front
        # (one copy every mem_len + 1 steps instead of a concatenation per step)
        cap = 2 * self.n + 1
        self.s, self.e = 0, state[0].size(1) if len(state) else 0
        for layer, mem in zip(model.layers, state, strict=True):
            a = layer.attn
            B, mlen, _ = mem.shape
            ctx = layer.ln1(mem) if c.pre_norm else mem
            kv = a.kv(ctx).view(B, mlen, 2, a.h, a.dh).permute(2, 0, 3, 1, 4)  # 2 B H m dh
            buf = torch.zeros(2, B, a.h, cap, a.dh, dtype=kv.dtype, device=dev)
            buf[:, :, :, :mlen] = kv
            self.k.append(buf[0])
            self.v.append(buf[1])
            self.w_qkv.append(torch.cat([a.q.weight, a.kv.weight]))  # one projection for q, k, v
            # position projections [H, dh, n + 1], columns for distances n .. 0
            self.r.append(a.r(pos).view(self.n + 1, a.h, a.dh).permute(1, 2, 0).contiguous())

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, vocab] after feeding ids ``x`` [B] (or [B, 1]); the caches move on by one."""
        m, c = self.m, self.c
        if self.e == self.k[0].size(2):  # full: move the window (at most mem_len rows) to the front
            length = self.e - self.s
            for buf in self.k + self.v:
                buf[:, :, :length] = buf[:, :, self.s : self.e]
            self.s, self.e = 0, length
        s, e = self.s, self.e + 1
        h = m.emb(x.reshape(-1, 1)) * self.emb_scale  # B 1 d
        B = h.size(0)
        for i, layer in enumerate(m.layers):
            a = layer.attn
            xin = layer.ln1(h) if c.pre_norm else h
            qkv = F.linear(xin, self.w_qkv[i]).view(B, 3, a.h, a.dh)
            q = qkv[:, :1].transpose(1, 2)  # B H 1 dh
            self.k[i][:, :, e - 1] = qkv[:, 1]
            self.v[i][:, :, e - 1] = qkv[:, 2]
            k, v = self.k[i][:, :, s:e], self.v[i][:, :, s:e]
            content = torch.matmul(q + m.u[:, None], k.transpose(-1, -2))  # B H 1 klen
            position = torch.matmul(q + m.v[:, None], self.r[i][:, :, s - e :])  # B H 1 klen
            att = torch.softmax((content + position) * self.scale, -1)
            out = a.o(torch.matmul(att, v).transpose(1, 2).reshape(B, 1, a.h * a.dh))
            if c.pre_norm:
                h = h + out
                h = h + layer.ff(layer.ln2(h))
            else:
                h = layer.ln1(h + out)
                h = layer.ln2(h + layer.ff(h))
        self.e = e
        self.s = max(s, e - self.n)
        h = m.ln_f(h)
        return F.linear(h[:, 0], m.emb.weight, m.out_bias)
