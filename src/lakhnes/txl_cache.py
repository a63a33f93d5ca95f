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
        self.k, self.v, self.r, self.w_qkv, self.w = [], [], [], [], []
        # keys/values live in buffers of 2 * mem_len + 1 rows: a step writes one row after the
        # window and the window slides; once a buffer is full its window is moved to the front
        # (one copy every mem_len + 1 steps instead of a concatenation per step)
        cap = 2 * self.n + 1
        self.u, self.v_bias = model.u[:, None], model.v[:, None]  # H 1 dh
        self.eps, self.d = model.layers[0].ln1.eps, c.d_model if model.layers else 0
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
            ff1, ff2 = layer.ff[0], layer.ff[3]
            self.w.append((a.o.weight, layer.ln1.weight, layer.ln1.bias, layer.ln2.weight, layer.ln2.bias,
                           ff1.weight, ff1.bias, ff2.weight, ff2.bias))
            # position projections [H, dh, n + 1], columns for distances n .. 0
            self.r.append(a.r(pos).view(self.n + 1, a.h, a.dh).permute(1, 2, 0).contiguous())

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, vocab] after feeding ids ``x`` [B] (or [B, 1]); the caches move on by one.

        Plain functional calls (no module dispatch): at batch 1 a step is dominated by per-op
        overhead and weight reads, not arithmetic."""
        m, pre = self.m, self.c.pre_norm
        if self.e == self.k[0].size(2):  # full: move the window (at most mem_len rows) to the front
            length = self.e - self.s
            for buf in self.k + self.v:
                buf[:, :, :length] = buf[:, :, self.s : self.e]
            self.s, self.e = 0, length
        s, e = self.s, self.e + 1
        h = F.embedding(x.reshape(-1, 1), m.emb.weight) * self.emb_scale  # B 1 d
        B, dims, eps = h.size(0), (self.d,), self.eps
        for i, (wo, g1, b1, g2, b2, wf1, bf1, wf2, bf2) in enumerate(self.w):
            H, dh = self.u.size(0), self.u.size(-1)
            xin = F.layer_norm(h, dims, g1, b1, eps) if pre else h
            qkv = F.linear(xin, self.w_qkv[i]).view(B, 3, H, dh)
            q = qkv[:, :1].transpose(1, 2)  # B H 1 dh
            kb, vb = self.k[i], self.v[i]
            kb[:, :, e - 1] = qkv[:, 1]
            vb[:, :, e - 1] = qkv[:, 2]
            scores = torch.matmul(q + self.u, kb[:, :, s:e].transpose(-1, -2))  # content, B H 1 klen
            scores += torch.matmul(q + self.v_bias, self.r[i][:, :, s - e :])  # position
            att = torch.softmax(scores * self.scale, -1)
            out = F.linear(torch.matmul(att, vb[:, :, s:e]).view(B, 1, H * dh), wo)
            if pre:
                h = h + out
                h = h + F.linear(torch.relu(F.linear(F.layer_norm(h, dims, g2, b2, eps), wf1, bf1)), wf2, bf2)
            else:
                h = F.layer_norm(h + out, dims, g1, b1, eps)
                h = F.layer_norm(h + F.linear(torch.relu(F.linear(h, wf1, bf1)), wf2, bf2), dims, g2, b2, eps)
        self.e = e
        self.s = max(s, e - self.n)
        h = m.ln_f(h)
        return F.linear(h[:, 0], m.emb.weight, m.out_bias)
