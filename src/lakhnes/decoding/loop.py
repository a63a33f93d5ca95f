"""The decoding loop: model step -> rules -> sampler -> state update, until every stream is done.

It knows its three parts only by their shape:

- the *stepper* (the model): ``stepper.logits``, the logits [B, V] after the prompt, and
  ``stepper.step(ids[B]) -> logits [B, V]`` (:class:`lakhnes.models.txl_step.Stepper`, or any
  runtime with that shape);
- the *rules* of the batch (:class:`lakhnes.decoding.constraint.Constraint`,
  :class:`lakhnes.decoding.forced.Rhythm`): ``forced()`` (ids every stream takes now, or None),
  ``mask()`` (the ids each stream may take), ``adjust(logits, top_k)`` (the re-weighted logits for
  that mask), ``update(ids)`` (the state moves on), ``all_done()``, ``progress()`` -> (done, total)
  and ``result()``;
- the *sampler* (:class:`lakhnes.decoding.sampler.Sampler`): ``sampler(logits, allowed) -> ids``.
"""

from __future__ import annotations

from collections.abc import Callable

#: how many tokens between two progress reports
PROGRESS_EVERY = 32


def run(stepper, rules, sampler, progress: Callable[[int, int], None] | None = None):
    """Sample until ``rules.all_done()``; returns ``rules.result()``. The model steps only on a
    token some stream still needs the logits after."""
    logits, tok, n = stepper.logits, None, 0
    while not rules.all_done():
        if tok is not None:
            logits = stepper.step(tok)
        tok = rules.forced()
        if tok is None:
            allowed = rules.mask()  # first: adjust re-weights for this mask
            tok = sampler(rules.adjust(logits, top_k=sampler.top_k), allowed)
        rules.update(tok)
        n += 1
        if progress is not None and n % PROGRESS_EVERY == 0:
            progress(*rules.progress())
    if progress is not None:
        total = rules.progress()[1]
        progress(total, total)
    return rules.result()
