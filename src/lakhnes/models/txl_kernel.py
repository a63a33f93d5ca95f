"""The compiled decoding step: :class:`KernelSteps`, the interface of
:class:`lakhnes.models.txl_numpy.NumpySteps` on a small C kernel (``_txl_kernel.c``).

A batch-1 step moves the model's weights and its keys/values through the CPU once; numpy reads float32
weights and cannot widen 16-bit ones fast enough to gain. The kernel keeps the weight matrices as
float16 in panels of 64 outputs ([out / 64, in, 64]) and widens them in registers inside each product
(F16C / AVX-512, picked at run time; portable C elsewhere), keeps keys and values float32, and takes
the relative-position scores from one sinusoid table shared by every layer: fewer bytes per step than
float32 weights plus keys/values (``benchmarks/bench_step_floor.py``).

It runs a model only where every weight matrix holds float16 values exactly (the shipped model does;
so do 16-bit shards): then it computes with the same weights as numpy and torch, and its logits match
theirs to float32 rounding. Elsewhere, where the extension was not built (no compiler at install time),
where the CPU lacks AVX2 + F16C (the portable C path is slower than numpy) or ``LAKHNES_KERNEL=0`` is
set, :func:`usable` is False and the numpy step runs.
"""

from __future__ import annotations

import math
import os

import numpy as np

from lakhnes.models.txl_numpy import NumpyTXL, _layer_norm, sinusoid

try:  # the optional extension (setup.py builds it where a C compiler exists)
    from lakhnes.models import _txl_kernel as _k
except ImportError:  # pragma: no cover - depends on the installation
    _k = None

__all__ = ["KernelSteps", "available", "fits", "isa", "usable"]

F32 = np.float32
#: descriptor layout (the enums G_* and L_* of _txl_kernel.c)
_HEAD, _PER_LAYER = 21, 14


def available() -> bool:
    """Whether the compiled kernel is installed and not switched off (``LAKHNES_KERNEL=0``)."""
    return _k is not None and os.environ.get("LAKHNES_KERNEL", "1") != "0"


def isa(name: str | None = None) -> str | None:
    """The instruction set the kernel uses (``avx512``, ``avx2`` or ``c``; None without the kernel);
    ``name`` picks one this CPU runs (tests)."""
    return None if _k is None else _k.isa(name)[0]


def _matrices(model: NumpyTXL) -> list[str]:
    c = model.config
    names = ["emb.weight" if c.tie_weights else "out_weight", "emb.weight"]
    return names + [f"layers.{i}.{n}" for i in range(c.n_layer)
                    for n in ("attn.q.weight", "attn.kv.weight", "attn.r.weight", "attn.o.weight", "ff.0.weight",
                              "ff.3.weight")]


def usable(model) -> bool:
    """Whether generation should step ``model`` on the kernel: it is available with a vector instruction set
    (the portable C path is there for correctness, and slower than numpy), and :func:`fits` the model."""
    return available() and _k.isa()[0] != "c" and fits(model)


def fits(model) -> bool:
    """Whether :class:`KernelSteps` can run ``model``: its shapes fit the kernel's blocks, and every weight
    matrix holds float16 values exactly (checked once per model)."""
    if _k is None or not isinstance(model, NumpyTXL):
        return False
    ok = getattr(model, "_kernel_ok", None)
    if ok is None:
        c = model.config
        ok = c.d_model % 64 == 0 and c.d_inner % 64 == 0 and c.d_head % 64 == 0
        ok = ok and all(_f16_exact(model.w[n]) for n in _matrices(model))
        model._kernel_ok = ok
    return ok


def _f16_exact(w: np.ndarray) -> bool:
    with np.errstate(over="ignore"):
        return bool(np.array_equal(w.astype(np.float16).astype(F32), w))


def _panels(w: np.ndarray) -> np.ndarray:
    """``w`` [in, out] as float16 panels [out / 64, in, 64] (out padded with zeros to a multiple of 64)."""
    i, o = w.shape
    pad = -o % 64
    if pad:
        w = np.concatenate([w, np.zeros((i, pad), w.dtype)], 1)
    return np.ascontiguousarray(w.reshape(i, -1, 64).transpose(1, 0, 2).astype(np.float16))


def _pack(model: NumpyTXL) -> dict:
    """The model's weights as the kernel reads them (built once per model and kept on it)."""
    packed = getattr(model, "_kernel_pack", None)
    if packed is not None:
        return packed
    c, w = model.config, model.w
    H, dh, d = c.n_head, c.d_head, c.d_model
    scale = F32(1.0 / math.sqrt(dh))
    vpad = -(-c.vocab_size // 64) * 64
    out_b = np.zeros(vpad, F32)
    out_b[: c.vocab_size] = w["out_bias"]
    packed = {"emb": np.ascontiguousarray(w["emb.weight"].astype(np.float16)), "out": _panels(model.out_weight.T),
              "out_b": out_b, "u": (w["u"] * scale).astype(F32).reshape(-1), "v": (w["v"] * scale).astype(F32).reshape(-1),
              "gf": w["ln_f.weight"] if c.pre_norm else out_b, "bf": w["ln_f.bias"] if c.pre_norm else out_b,
              "vpad": vpad, "layers": []}
    for i in range(c.n_layer):
        L = lambda name, i=i: model.layer(i, name)  # noqa: E731
        hd = H * dh
        wk, wv = L("attn.kv.weight")[:hd].reshape(H, dh, d), L("attn.kv.weight")[hd:].reshape(H, dh, d)
        heads = lambda ms: np.ascontiguousarray(np.stack([_panels(m) for m in ms]))  # noqa: E731
        packed["layers"].append({  # per head: W_k,h and W_r,h as [dh -> d], W_v,h as [d -> dh]
            "q": _panels(L("attn.q.weight").T), "k": heads(wk), "r": heads(L("attn.r.weight").reshape(H, dh, d)),
            "v": heads(wv.transpose(0, 2, 1)), "o": _panels(L("attn.o.weight").T), "f1": _panels(L("ff.0.weight").T),
            "f2": _panels(L("ff.3.weight").T), "bf1": L("ff.0.bias"), "bf2": L("ff.3.bias"), "g1": L("ln1.weight"),
            "b1": L("ln1.bias"), "g2": L("ln2.weight"), "b2": L("ln2.bias")})
    flat = [(k, v) for k, v in packed.items() if isinstance(v, np.ndarray)]
    flat += [(i, k, v) for i, lw in enumerate(packed["layers"]) for k, v in lw.items()]
    placed = iter(_arena([item[-1] for item in flat]))
    for item in flat:
        (packed if len(item) == 2 else packed["layers"][item[0]])[item[-2]] = next(placed)
    model._kernel_pack = packed
    return packed


def _addr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _arena(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Copies of ``arrays`` side by side in one buffer aligned to 2 MiB: large enough, numpy asks the kernel
    for huge pages there, and a step then walks far fewer pages (a 4 KiB page holds 4 rows of a cache)."""
    sizes = [-(-a.nbytes // 64) * 64 for a in arrays]
    buf = np.empty(sum(sizes) + 2**21, np.uint8)
    at = -_addr(buf) % 2**21
    out = []
    for a, n in zip(arrays, sizes, strict=True):
        view = buf[at : at + a.nbytes].view(a.dtype).reshape(a.shape)
        view[...] = a
        out.append(view)
        at += n
    return out


class KernelSteps:
    """Incremental decoding of ``model`` after the memories ``state`` (from :meth:`NumpyTXL.forward`) on the
    compiled kernel: ``step(ids[B]) -> logits [B, vocab]``, as :class:`lakhnes.models.txl_numpy.NumpySteps`.
    Keys and values live in buffers of ``2 * mem_len + 1`` positions per row and layer (the window
    slides, and moves to the front once every ``mem_len + 1`` steps)."""

    def __init__(self, model: NumpyTXL, state):
        if not fits(model):
            raise ValueError("the compiled kernel cannot run this model (see txl_kernel.fits)")
        c, pk = model.config, _pack(model)
        self.c, self.n = c, max(0, c.mem_len)
        H, dh, d = c.n_head, c.d_head, c.d_model
        cap = 2 * self.n + 1
        self.B = B = state[0].shape[0] if len(state) else 1
        mlen = state[0].shape[1] if len(state) else 0
        self.s, self.e, self.cap = 0, mlen, cap
        inputs = [np.zeros((B, cap, d), F32) for _ in state]  # each layer's inputs (LayerNormed with pre_norm)
        for x, i, mem in zip(inputs, range(len(state)), state, strict=True):
            L = lambda name, i=i: model.layer(i, name)  # noqa: E731
            x[:, :mlen] = _layer_norm(mem, L("ln1.weight"), L("ln1.bias"), model.eps) if c.pre_norm else mem
        self.pos, *self.x = _arena([sinusoid(self.n + 1, d, c.clamp_len), *inputs])
        self.logits = np.zeros((B, pk["vpad"]), F32)
        self.tokens = np.zeros(B, np.int64)
        desc = np.zeros(_HEAD + _PER_LAYER * c.n_layer, np.int64)
        desc[:10] = (c.n_layer, d, H, dh, c.d_inner, pk["vpad"], int(c.pre_norm), cap, self.n, B)
        desc[10:12].view(np.float64)[:] = (model.eps, math.sqrt(d))
        desc[12:_HEAD] = [_addr(a) for a in (pk["emb"], pk["out"], pk["out_b"], pk["gf"], pk["bf"], pk["u"], pk["v"],
                                             self.pos, self.logits)]
        for i, lw in enumerate(pk["layers"]):
            arrays = [lw[n] for n in ("q", "k", "r", "v", "o", "f1", "f2", "bf1", "bf2", "g1", "b1", "g2", "b2")]
            desc[_HEAD + _PER_LAYER * i :][:_PER_LAYER] = [_addr(a) for a in (*arrays, self.x[i])]
        self.desc, self._keep, self.vocab = desc, pk, c.vocab_size
        self._call = (_addr(desc), _addr(self.tokens))

    def _slide(self) -> None:
        length, s0, e0 = self.e - self.s, self.s, self.e
        for buf in self.x:
            buf[:, :length] = buf[:, s0:e0]
        self.s, self.e = 0, length

    def step(self, x) -> np.ndarray:
        """Logits [B, vocab] after feeding ids ``x`` [B] (or [B, 1])."""
        x = np.asarray(x).reshape(-1)
        if x.shape != (self.B,) or not (0 <= x[0] < self.vocab if self.B == 1 else
                                        0 <= x.min() and x.max() < self.vocab):
            raise IndexError(f"expected {self.B} token ids in 0..{self.vocab - 1}")
        if self.e == self.cap:
            self._slide()
        s, e = self.s, self.e + 1
        self.tokens[:] = x
        _k.step(*self._call, s, e)
        self.e, self.s = e, max(s, e - self.n)
        return self.logits[:, : self.vocab].copy()
