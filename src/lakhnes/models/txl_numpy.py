"""A torch-free Transformer-XL runtime: the shipped model's inference in numpy.

:class:`NumpyTXL` loads a model folder (``config.json`` + ``model.safetensors``, or 16-bit shards
with their index) through ``safetensors.numpy`` and runs the same network as
:class:`lakhnes.models.transformer_xl.TransformerXL` in eval mode: ``forward(ids[B, T], state)``
(the prompt, many tokens at once) and :class:`NumpySteps` (one token per step after a state, the
interface of :class:`lakhnes.models.txl_step.CachedSteps`). Nothing here imports torch.

Where the optional compiled step is built and can run the model, :func:`make_steps` (``cache="auto"``,
what generation uses) hands the steps to :class:`lakhnes.models.txl_kernel.KernelSteps` (the ``hidden``
scheme below, in C, with float16 weight panels); otherwise numpy steps. The numpy step
(``cache="kv"``) computes what ``CachedSteps`` computes: per layer it caches the memory's keys (transposed) and values and the relative-position projections of every distance
(computed once), takes q, k and v of the new token from one fused matrix, and reads the cache once.
``cache="hidden"`` computes the same regrouped to cache fewer bytes: each layer's input x_j
(d_model floats per position instead of 2 x d_model), the projections folded into the query (content
score of head h ``((q_h + u_h) W_k,h) . x_j``, output ``W_v,h (sum_j p_j x_j)``, position score
``((q_h + v_h) W_r,h) . pos_t`` over one sinusoid table shared by all layers); with numpy's BLAS it
measured slower (benchmarks/bench_step_floor.py), so it stays an option. Both keep their caches in
preallocated buffers of ``2 * mem_len + 1`` positions (a window that slides and moves to the front
once every ``mem_len + 1`` steps), so a step never concatenates.

BLAS threads: a batch-1 step is a chain of small products that extra threads slow down; set
``OPENBLAS_NUM_THREADS=1`` (or OMP/MKL) before numpy is first imported.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lakhnes.errors import InvalidInputError
from lakhnes.models.txl_config import TransformerXLConfig

__all__ = ["NumpyStepper", "NumpySteps", "NumpyTXL", "load_numpy_model", "make_steps", "prime", "sinusoid"]

F32 = np.float32


def sinusoid(klen: int, d_model: int, clamp_len: int = 0) -> np.ndarray:
    """Embeddings of the relative distances klen-1 ... 0 (beyond ``clamp_len`` > 0: its row), rounded
    as torch's float32 ``sinusoid`` rounds them (float32 angles; their sine and cosine rounded from float64)."""
    pos = np.arange(klen - 1, -1, -1.0, dtype=F32)
    if clamp_len > 0:
        pos = np.minimum(pos, F32(clamp_len))
    inv_freq = (1.0 / (10000 ** (np.arange(0.0, d_model, 2.0, dtype=F32) / F32(d_model)))).astype(F32)
    ang = (pos[:, None] * inv_freq[None]).astype(np.float64)
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=-1).astype(F32)


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis (biased variance, as torch's), in few ufunc calls."""
    inv_d = F32(1.0 / x.shape[-1])
    xc = x - np.add.reduce(x, -1, keepdims=True) * inv_d
    var = np.add.reduce(xc * xc, -1, keepdims=True)
    var *= inv_d
    var += F32(eps)
    np.sqrt(var, out=var)
    xc /= var
    xc *= g
    xc += b
    return xc


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = x - np.maximum.reduce(x, axis, keepdims=True)
    np.exp(x, out=x)
    x /= np.add.reduce(x, axis, keepdims=True)
    return x


class NumpyTXL:
    """A Transformer-XL's weights (float32 numpy arrays) and its eval-mode forward pass.

    ``mem_len`` overrides the config's memory length (what ``model.config.mem_len = n`` does to the
    torch model); generation feeds prompts in chunks of ``config.tgt_len``, as the torch path does."""

    def __init__(self, config: TransformerXLConfig, state: dict[str, np.ndarray], mem_len: int | None = None):
        self.config = c = config
        if mem_len is not None:
            c.mem_len = int(mem_len)
        need = ["emb.weight", "u", "v", "out_bias"] + ([] if c.tie_weights else ["out_weight"])
        need += ["ln_f.weight", "ln_f.bias"] if c.pre_norm else []
        names = ("attn.q.weight", "attn.kv.weight", "attn.r.weight", "attn.o.weight", "ln1.weight", "ln1.bias",
                 "ln2.weight", "ln2.bias", "ff.0.weight", "ff.0.bias", "ff.3.weight", "ff.3.bias")
        need += [f"layers.{i}.{n}" for i in range(c.n_layer) for n in names]
        missing = [k for k in need if k not in state]
        if missing:
            raise InvalidInputError(f"weights do not fit the config: {len(missing)} tensor(s) missing "
                                    f"(e.g. {missing[0]})")
        H, dh, d = c.n_head, c.d_head, c.d_model
        shapes = {"emb.weight": (c.vocab_size, d), "u": (H, dh), "v": (H, dh), "out_bias": (c.vocab_size,),
                  "layers.0.attn.q.weight": (H * dh, d), "layers.0.attn.kv.weight": (2 * H * dh, d),
                  "layers.0.ff.0.weight": (c.d_inner, d)}
        for k, shape in shapes.items():
            if k in state and tuple(state[k].shape) != shape:
                raise InvalidInputError(f"{k} has shape {tuple(state[k].shape)}, the config says {shape}")
        self.w = {k: np.ascontiguousarray(a, dtype=F32) for k, a in state.items() if k in need}
        self.eps = 1e-5

    @classmethod
    def load(cls, path, mem_len: int | None = None) -> NumpyTXL:
        """The model at ``path`` (a model or run folder, a ``.safetensors`` file, or a shipped name)."""
        from lakhnes.models.files import CONFIG_FILE, load_numpy_state

        meta, state = load_numpy_state(path)
        if meta["model_type"] != "transformer_xl":
            raise InvalidInputError(f"the numpy runtime runs Transformer-XL models, not {meta['model_type']}",
                                    str(path))
        try:
            config = TransformerXLConfig(**meta["config"])
        except TypeError as e:
            raise InvalidInputError(f"bad {CONFIG_FILE} ({e})", str(path)) from None
        return cls(config, state, mem_len=mem_len)

    def num_parameters(self) -> int:
        return sum(a.size for a in self.w.values())

    @property
    def out_weight(self) -> np.ndarray:
        return self.w["emb.weight" if self.config.tie_weights else "out_weight"]

    def layer(self, i: int, name: str) -> np.ndarray:
        return self.w[f"layers.{i}.{name}"]

    def init_state(self, batch_size: int) -> list[np.ndarray]:
        """Empty memories (length 0), one per layer."""
        return [np.zeros((batch_size, 0, self.config.d_model), F32) for _ in range(self.config.n_layer)]

    def forward(self, ids, state=None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits [B, T, vocab] for ids [B, T] after the memories in ``state``, and the new state
        (each layer's last ``mem_len`` inputs): ``TransformerXL.forward`` in eval mode."""
        c, w = self.config, self.w
        ids = np.asarray(ids, dtype=np.int64)
        B, q = ids.shape
        mems = state if state else self.init_state(B)
        mlen = mems[0].shape[1]
        klen = mlen + q
        H, dh, d, eps = c.n_head, c.d_head, c.d_model, self.eps
        scale = F32(1.0 / math.sqrt(dh))
        h = w["emb.weight"][ids] * F32(math.sqrt(d))
        pos = sinusoid(klen, d, c.clamp_len)
        hidden = np.triu(np.ones((q, klen), dtype=bool), 1 + mlen)
        u, v = w["u"][None, :, None] * scale, w["v"][None, :, None] * scale  # 1 H 1 dh
        new = []
        for i, mem in enumerate(mems):
            n = c.mem_len
            cat = np.concatenate([mem, h], 1) if mem.shape[1] else h
            new.append(cat[:, max(0, cat.shape[1] - n):].copy() if n > 0 else cat[:, :0].copy())
            L = lambda name, i=i: self.layer(i, name)  # noqa: E731
            xin, ctx = (_layer_norm(h, L("ln1.weight"), L("ln1.bias"), eps),
                        _layer_norm(cat, L("ln1.weight"), L("ln1.bias"), eps)) if c.pre_norm else (h, cat)
            qh = (xin @ L("attn.q.weight").T).reshape(B, q, H, dh).transpose(0, 2, 1, 3) * scale  # B H q dh
            kv = (ctx @ L("attn.kv.weight").T).reshape(B, klen, 2, H, dh).transpose(2, 0, 3, 1, 4)
            r = (pos @ L("attn.r.weight").T).reshape(klen, H, dh).transpose(1, 2, 0)  # H dh k
            ac = (qh + u) @ kv[0].transpose(0, 1, 3, 2)  # B H q k
            bd = _rel_shift((qh + v) @ r)
            scores = np.where(hidden, -np.inf, ac + bd).astype(F32)
            out = (_softmax(scores, -1) @ kv[1]).transpose(0, 2, 1, 3).reshape(B, q, H * dh)
            out = out @ L("attn.o.weight").T
            if c.pre_norm:
                h = h + out
                f = np.maximum(_layer_norm(h, L("ln2.weight"), L("ln2.bias"), eps) @ L("ff.0.weight").T
                               + L("ff.0.bias"), 0)
                h = h + f @ L("ff.3.weight").T + L("ff.3.bias")
            else:
                h = _layer_norm(h + out, L("ln1.weight"), L("ln1.bias"), eps)
                f = np.maximum(h @ L("ff.0.weight").T + L("ff.0.bias"), 0)
                h = _layer_norm(h + f @ L("ff.3.weight").T + L("ff.3.bias"), L("ln2.weight"), L("ln2.bias"), eps)
        if c.pre_norm:
            h = _layer_norm(h, w["ln_f.weight"], w["ln_f.bias"], eps)
        return h @ self.out_weight.T + w["out_bias"], new

    def feed(self, ids, state=None, chunk: int | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Feed ids [B, T] in chunks of ``chunk`` (default ``tgt_len``, as generation's prompt feeding
        does): the logits after the last id [B, vocab] and the state."""
        ids = np.asarray(ids, dtype=np.int64)
        n = max(1, int(chunk or self.config.tgt_len))
        state = state if state is not None else self.init_state(ids.shape[0])
        logits = None
        for a in range(0, ids.shape[1], n):
            out, state = self.forward(ids[:, a : a + n], state)
            logits = out[:, -1]
        return logits, state


def _rel_shift(x: np.ndarray) -> np.ndarray:
    """``rel_shift`` of :mod:`lakhnes.models.transformer_xl`: out[..., i, j] = x[..., i, j + q - 1 - i]."""
    *lead, q, k = x.shape
    pad = np.zeros((*lead, q, k + 1), dtype=x.dtype)
    pad[..., 1:] = x
    return pad.reshape(*lead, k + 1, q)[..., 1:, :].reshape(*lead, q, k)


class NumpySteps:
    """Incremental decoding of ``model`` after the memories ``state`` (from :meth:`NumpyTXL.forward`):
    ``step(ids[B]) -> logits [B, vocab]``, the caches moving on by one (memory capped at ``mem_len``)."""

    def __init__(self, model: NumpyTXL, state, cache: str = "kv"):
        if cache not in ("hidden", "kv"):
            raise ValueError(f"cache is 'hidden' or 'kv', not {cache!r}")
        c = model.config
        self.m, self.c, self.mode = model, c, cache
        self.n = n = max(0, c.mem_len)
        H, dh, d = c.n_head, c.d_head, c.d_model
        self.H, self.dh, self.d, self.eps, self.pre = H, dh, d, model.eps, c.pre_norm
        scale = F32(1.0 / math.sqrt(dh))
        self.emb, self.emb_scale = model.w["emb.weight"], F32(math.sqrt(d))
        self.u = (model.w["u"] * scale).astype(F32)  # H dh
        self.v = (model.w["v"] * scale).astype(F32)
        self.uv = np.concatenate([self.u, self.v]).reshape(1, 2, H, 1, dh)
        self.out_t = np.ascontiguousarray(model.out_weight.T)
        self.out_b = model.w["out_bias"]
        self.ln_f = (model.w["ln_f.weight"], model.w["ln_f.bias"]) if c.pre_norm else None
        B = state[0].shape[0] if len(state) else 1
        mlen = state[0].shape[1] if len(state) else 0
        self.B, self.s, self.e = B, 0, mlen
        cap = 2 * n + 1
        pos = sinusoid(n + 1, d, c.clamp_len)  # rows for distances n .. 0
        self.pos = pos
        self.layers, self.bufs = [], []
        for i, mem in enumerate(state):
            L = lambda name, i=i: model.layer(i, name)  # noqa: E731
            ctx = _layer_norm(mem, L("ln1.weight"), L("ln1.bias"), self.eps) if c.pre_norm else mem
            wq, wkv, wr = L("attn.q.weight") * scale, L("attn.kv.weight"), L("attn.r.weight")
            common = (L("ln1.weight"), L("ln1.bias"), L("ln2.weight"), L("ln2.bias"),
                      _t(L("ff.0.weight")), L("ff.0.bias"), _t(L("ff.3.weight")), L("ff.3.bias"), _t(L("attn.o.weight")))
            if cache == "hidden":
                x = np.zeros((B, cap, d), F32)
                x[:, :mlen] = ctx
                self.bufs.append((x,))
                wk = wkv[: H * dh].reshape(H, dh, d)
                wkr = np.ascontiguousarray(np.concatenate([wk, wr.reshape(H, dh, d)]))  # 2H dh d
                wv_t = np.ascontiguousarray(wkv[H * dh :].reshape(H, dh, d).transpose(0, 2, 1))  # H d dh
                self.layers.append((_t(wq), wkr, wv_t, *common))
            else:
                kv = (ctx @ wkv.T).reshape(B, mlen, 2, H, dh)
                kt = np.zeros((B, H, dh, cap), F32)
                kt[..., :mlen] = kv[:, :, 0].transpose(0, 2, 3, 1)
                vb = np.zeros((B, H, cap, dh), F32)
                vb[:, :, :mlen] = kv[:, :, 1].transpose(0, 2, 1, 3)
                r = np.ascontiguousarray((pos @ wr.T).reshape(n + 1, H, dh).transpose(1, 2, 0))  # H dh n+1
                self.bufs.append((kt, vb, r))
                self.layers.append((_t(np.concatenate([wq, wkv])), None, None, *common))

    def _slide(self) -> None:
        """Move the window (at most ``mem_len`` positions) to the front of full buffers."""
        length, s0, e0 = self.e - self.s, self.s, self.e
        for buf in self.bufs:
            if self.mode == "hidden":
                buf[0][:, :length] = buf[0][:, s0:e0]
            else:
                buf[0][..., :length] = buf[0][..., s0:e0]
                buf[1][:, :, :length] = buf[1][:, :, s0:e0]
        self.s, self.e = 0, length

    def step(self, x) -> np.ndarray:
        """Logits [B, vocab] after feeding ids ``x`` [B] (or [B, 1])."""
        cap = 2 * self.n + 1
        if self.e == cap:
            self._slide()
        s, e = self.s, self.e + 1
        h = self.emb[np.asarray(x).reshape(-1)] * self.emb_scale  # B d
        if self.mode == "hidden":
            h = self._hidden(h, s, e)
        else:
            h = self._kv(h, s, e)
        self.e = e
        self.s = max(s, e - self.n)
        if self.ln_f is not None:
            h = _layer_norm(h, *self.ln_f, self.eps)
        out = h @ self.out_t
        out += self.out_b
        return out

    def _ffn(self, h, out, g1, b1, g2, b2, wf1, bf1, wf2, bf2):
        eps = self.eps
        if self.pre:
            h = h + out
            f = _layer_norm(h, g2, b2, eps) @ wf1
            f += bf1
            np.maximum(f, 0, out=f)
            g = f @ wf2
            g += bf2
            return h + g
        h = _layer_norm(h + out, g1, b1, eps)
        f = h @ wf1
        f += bf1
        np.maximum(f, 0, out=f)
        g = f @ wf2
        g += bf2
        g += h
        return _layer_norm(g, g2, b2, eps)

    def _hidden(self, h, s, e):
        B, H, dh, klen = h.shape[0], self.H, self.dh, e - s
        pos = self.pos[self.n + 1 - klen :]  # klen d: distances klen-1 .. 0
        uv = self.uv
        for (xb,), (wq_t, wkr, wv_t, g1, b1, g2, b2, wf1, bf1, wf2, bf2, wo) in zip(self.bufs, self.layers,
                                                                                    strict=True):
            xin = _layer_norm(h, g1, b1, self.eps) if self.pre else h
            xb[:, e - 1] = xin
            q = (xin @ wq_t).reshape(B, 1, H, 1, dh)
            qkr = ((q + uv).reshape(B, 2 * H, 1, dh) @ wkr).reshape(B, 2 * H, -1)  # B 2H d
            ctx = np.empty((B, H, self.d), F32)
            for b in range(B):  # 2-D products: numpy's batched ones are 2-4x slower here
                kt = np.ascontiguousarray(qkr[b].T)  # d 2H
                xs = xb[b, s:e]  # klen d
                scores = xs @ kt[:, :H]  # klen H
                scores += pos @ kt[:, H:]
                p = _softmax(np.ascontiguousarray(scores.T), -1)  # H klen: row reductions are the fast ones
                np.matmul(p, xs, out=ctx[b])  # H d
            o = (ctx[:, :, None] @ wv_t).reshape(B, H * dh) @ wo
            h = self._ffn(h, o, g1, b1, g2, b2, wf1, bf1, wf2, bf2)
        return h

    def _kv(self, h, s, e):
        B, H, dh = h.shape[0], self.H, self.dh
        for (kt, vb, r), (wqkv, _, _, g1, b1, g2, b2, wf1, bf1, wf2, bf2, wo) in zip(self.bufs, self.layers,
                                                                                     strict=True):
            xin = _layer_norm(h, g1, b1, self.eps) if self.pre else h
            qkv = (xin @ wqkv).reshape(B, 3, H, dh)
            q = qkv[:, 0, :, None]  # B H 1 dh
            kt[..., e - 1] = qkv[:, 1]
            vb[:, :, e - 1] = qkv[:, 2]
            scores = (q + self.u[:, None]) @ kt[..., s:e]  # B H 1 klen
            scores += (q + self.v[:, None]) @ r[:, :, s - e :]
            o = (_softmax(scores, -1) @ vb[:, :, s:e]).reshape(B, H * dh) @ wo
            h = self._ffn(h, o, g1, b1, g2, b2, wf1, bf1, wf2, bf2)
        return h


def _t(w: np.ndarray) -> np.ndarray:
    """``w`` [out, in] as a contiguous [in, out] copy."""
    return np.ascontiguousarray(w.T, dtype=F32)


def load_numpy_model(path=None, mem_len: int | None = None) -> NumpyTXL:
    """The model at ``path`` (default: the shipped ``default`` model) for the numpy runtime."""
    from lakhnes.models.files import default_model_path

    return NumpyTXL.load(Path(path) if path is not None else default_model_path(), mem_len=mem_len)


def make_steps(model: NumpyTXL, state, cache: str = "auto"):
    """The step after ``state``: ``cache`` "kernel" (:class:`lakhnes.models.txl_kernel.KernelSteps`, the
    compiled step), "kv" or "hidden" (:class:`NumpySteps`), or "auto": the kernel where it can run the
    model (it is installed, and the model's weight matrices hold float16 values), else "kv"."""
    if cache in ("auto", "kernel"):
        from lakhnes.models import txl_kernel

        if cache == "kernel" or txl_kernel.usable(model):
            return txl_kernel.KernelSteps(model, state)
        cache = "kv"
    return NumpySteps(model, state, cache=cache)


class NumpyStepper:
    """One token per step after a prompt: the numpy twin of :class:`lakhnes.models.txl_step.Stepper`.

    ``NumpyStepper(model, prompt[B, T])`` feeds the prompt in ``tgt_len`` chunks (``logits`` [B, vocab]:
    after its last id), then ``step(ids[B]) -> logits [B, vocab]`` (:func:`make_steps`)."""

    def __init__(self, model: NumpyTXL, prompt, cache: str = "auto"):
        self.model = model
        self.logits, state = model.feed(np.asarray(prompt, dtype=np.int64))
        self.cached = make_steps(model, state, cache=cache)

    def step(self, ids) -> np.ndarray:
        self.logits = self.cached.step(ids)
        return self.logits


def prime(model: NumpyTXL, ids, cache: str = "auto"):
    """Feed the prompt ``ids`` [B, T] (chunks of ``tgt_len``): its last logits [B, vocab] and the step
    that continues it (:func:`make_steps`)."""
    logits, state = model.feed(ids)
    return logits, make_steps(model, state, cache=cache)
