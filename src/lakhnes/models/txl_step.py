"""One-token model steps: :class:`Stepper` (any model), with cached keys, values and position
projections for a Transformer-XL (:class:`CachedSteps`).

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
        scale = 1.0 / math.sqrt(c.d_head)
        self.emb_scale = math.sqrt(c.d_model)
        dev = model.emb.weight.device
        pos = sinusoid(self.n + 1, c.d_model, dev, model.emb.weight.dtype, c.clamp_len)
        self.kt, self.vals, self.r, self.w = [], [], [], []
        # keys (transposed, ready for q·K^T) and values live in buffers of 2 * mem_len + 1 positions:
        # a step writes one position after the window and the window slides; once a buffer is full
        # its window is moved to the front (one copy every mem_len + 1 steps, not one per step)
        cap = 2 * self.n + 1
        # the attention scale is folded into the query rows of the projection and into u and v
        self.u, self.v_bias = model.u[:, None] * scale, model.v[:, None] * scale  # H 1 dh
        self.eps, self.d = (model.layers[0].ln1.eps if model.layers else 1e-5), c.d_model
        self.h, self.dh = c.n_head, c.d_head
        self.s, self.e = 0, state[0].size(1) if len(state) else 0
        for layer, mem in zip(model.layers, state, strict=True):
            a = layer.attn
            B, mlen, _ = mem.shape
            ctx = layer.ln1(mem) if c.pre_norm else mem
            k, v = a.kv(ctx).view(B, mlen, 2, a.h, a.dh).permute(2, 0, 3, 1, 4)  # B H m dh each
            kt = torch.zeros(B, a.h, a.dh, cap, dtype=k.dtype, device=dev)
            kt[..., :mlen] = k.transpose(-1, -2)
            vb = torch.zeros(B, a.h, cap, a.dh, dtype=v.dtype, device=dev)
            vb[:, :, :mlen] = v
            self.kt.append(kt)
            self.vals.append(vb)
            ff1, ff2 = layer.ff[0], layer.ff[3]
            w_qkv = torch.cat([a.q.weight * scale, a.kv.weight])  # one projection for q, k, v
            # weights stored transposed ([in, out]): at batch 1, x @ W^T from this layout runs 25-30 % faster
            # than F.linear on the [out, in] layout (BENCHMARKS.md, "30 s of music after the batch-1 step change")
            self.w.append((_t(w_qkv), _t(a.o.weight), layer.ln1.weight, layer.ln1.bias, layer.ln2.weight,
                           layer.ln2.bias, _t(ff1.weight), ff1.bias, _t(ff2.weight), ff2.bias))
            # position projections [H, dh, n + 1], columns for distances n .. 0
            self.r.append(a.r(pos).view(self.n + 1, a.h, a.dh).permute(1, 2, 0).contiguous())
        self.out_t = _t(model.emb.weight if getattr(model, "out_weight", None) is None else model.out_weight)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, vocab] after feeding ids ``x`` [B] (or [B, 1]); the caches move on by one.

        Plain functional calls (no module dispatch) and as few tensor operations as possible: at
        batch 1 a step costs its per-operation overhead and its weight reads, not arithmetic."""
        m, pre = self.m, self.c.pre_norm
        if self.e == self.vals[0].size(2):  # full: move the window (at most mem_len positions) to the front
            length, s0, e0 = self.e - self.s, self.s, self.e
            for kt, vb in zip(self.kt, self.vals, strict=True):
                kt[..., :length] = kt[..., s0:e0]
                vb[:, :, :length] = vb[:, :, s0:e0]
            self.s, self.e = 0, length
        s, e = self.s, self.e + 1
        h = F.embedding(x.reshape(-1), m.emb.weight) * self.emb_scale  # B d
        B, H, dh, dims, eps = h.size(0), self.h, self.dh, (self.d,), self.eps
        mm, addmm = torch.mm, torch.addmm
        for kt, vb, r, (wqkv, wo, g1, b1, g2, b2, wf1, bf1, wf2, bf2) in zip(self.kt, self.vals, self.r, self.w, strict=True):
            xin = F.layer_norm(h, dims, g1, b1, eps) if pre else h
            qkv = mm(xin, wqkv).view(B, 3, H, 1, dh)
            q = qkv[:, 0]  # B H 1 dh (scaled)
            kt[..., e - 1] = qkv[:, 1, :, 0]
            vb[:, :, e - 1] = qkv[:, 2, :, 0]
            scores = torch.matmul(q + self.u, kt[..., s:e])  # content, B H 1 klen
            scores += torch.matmul(q + self.v_bias, r[:, :, s - e :])  # position
            out = mm(torch.matmul(torch.softmax(scores, -1), vb[:, :, s:e]).view(B, H * dh), wo)
            if pre:
                h = h + out
                h = h + addmm(bf2, torch.relu(addmm(bf1, F.layer_norm(h, dims, g2, b2, eps), wf1)), wf2)
            else:
                h = F.layer_norm(h + out, dims, g1, b1, eps)
                h = F.layer_norm(h + addmm(bf2, torch.relu(addmm(bf1, h, wf1)), wf2), dims, g2, b2, eps)
        self.e = e
        self.s = max(s, e - self.n)
        return addmm(m.out_bias, m.ln_f(h), self.out_t)


def _t(w: torch.Tensor) -> torch.Tensor:
    """``w`` [out, in] as a contiguous [in, out] copy."""
    return w.t().contiguous()


def feed(model, ids: torch.Tensor, state):
    """Feed ids [B, T] in chunks of ``tgt_len``; the logits after the last one [B, V], and the state."""
    n = max(1, int(getattr(model.config, "tgt_len", 256)))
    logits = None
    for a in range(0, ids.size(1), n):
        out, state = model(ids[:, a : a + n], state)
        logits = out[:, -1]
    return logits, state


class Stepper:
    """One token per step after a prompt, for any model: ``step(ids[B]) -> logits [B, V]``
    (``logits``: the latest). The shape :func:`lakhnes.decoding.loop.run` drives.

    The prompt goes through ``model.forward`` in ``tgt_len`` chunks (filling the memory); then a
    Transformer-XL steps through :class:`CachedSteps` (``cache``), any other model through
    ``model(x[B, 1], state)``. Call under ``torch.inference_mode()``.
    """

    def __init__(self, model, prompt: torch.Tensor, cache: bool = True):
        self.model = model
        self.logits, self.state = feed(model, prompt, model.init_state(prompt.size(0), prompt.device))
        self.cached = CachedSteps(model, self.state) if cache and supports(model) else None

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        if self.cached is not None:
            self.logits = self.cached.step(ids)
        else:
            out, self.state = self.model(ids[:, None], self.state)
            self.logits = out[:, -1]
        return self.logits


class HostStepper:
    """:class:`Stepper` with numpy in and out, the shape the decoding loop drives in both runtimes:
    ``HostStepper(model, prompt[B, T] numpy)``, ``logits`` [B, V] float32 numpy, ``step(ids[B])``.
    Steps run under ``torch.inference_mode()``; the logits are copied to the host each step."""

    def __init__(self, model, prompt, cache: bool = True):
        self.device = next(model.parameters()).device
        with torch.inference_mode():
            x = torch.as_tensor(prompt, dtype=torch.long).to(self.device)
            self.inner = Stepper(model, x, cache=cache)
            self.logits = self.inner.logits.float().cpu().numpy()

    def step(self, ids):
        with torch.inference_mode():
            x = torch.as_tensor(ids, dtype=torch.long).to(self.device)
            self.logits = self.inner.step(x).float().cpu().numpy()
        return self.logits
