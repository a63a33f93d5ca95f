"""Sampling one id per stream from a model's logits, among the allowed ids: temperature (0:
greedy), then top-k or top-p. torch is imported when first needed, not with this module."""

from __future__ import annotations

from lakhnes.errors import InvalidInputError


def check_sampling(temperature, top_k, top_p, num) -> None:
    """Raise :class:`InvalidInputError` for settings no sampler takes."""
    if not temperature >= 0:
        raise InvalidInputError(f"temperature must be >= 0 (0 = greedy), not {temperature}")
    if top_k is not None and top_k < 0:
        raise InvalidInputError(f"top_k must be >= 0 (0 = off), not {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise InvalidInputError(f"top_p must be in (0, 1], not {top_p}")
    if num < 1:
        raise InvalidInputError(f"num must be >= 1, not {num}")


def pick(logits, allowed, *, temperature=0.95, top_k=32, top_p=None, generator=None):
    """Sample one id per row of ``logits`` [B, V] (a torch tensor) among ``allowed`` [B, V] (each
    row has one)."""
    import torch

    logits = logits.float().masked_fill(~allowed, float("-inf"))
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    idx = None
    if top_k and top_k < logits.size(-1):
        logits, idx = torch.topk(logits, top_k, dim=-1)
    elif top_p is not None and top_p < 1:
        logits, idx = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(logits, -1)
    if top_p is not None and top_p < 1:  # probs are sorted here: keep the smallest head with mass >= top_p
        probs = probs.masked_fill(probs.cumsum(-1) - probs >= top_p, 0.0)
    choice = torch.multinomial(probs, 1, generator=generator)
    return (choice if idx is None else idx.gather(-1, choice)).squeeze(-1)


class Sampler:
    """:func:`pick` with fixed settings and its own generator on ``device``, seeded with ``seed``
    (None: a random seed): ``sampler(logits, allowed) -> ids [B]``."""

    def __init__(self, *, temperature: float = 0.95, top_k: int | None = 32, top_p: float | None = None,
                 seed: int | None = None, device="cpu"):
        import torch

        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.generator = torch.Generator(device=device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))

    def __call__(self, logits, allowed):
        return pick(logits, allowed, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                    generator=self.generator)
