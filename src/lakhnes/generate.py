"""Sampling NES music from a language model: from scratch, continuing a prime, a new melody on a
given rhythm, and new voices around kept ones.

Decoding is incremental: the prompt is fed in chunks of the model's ``tgt_len`` to fill the
Transformer-XL memory, then each new token costs one step (memory capped at ``mem_len``). Two
runtimes compute it (:func:`lakhnes.runtime.pick_runtime`): numpy (:class:`lakhnes.models.txl_numpy.NumpyTXL`, a
Transformer-XL on the CPU, no torch) and torch (:class:`lakhnes.models.txl_step.CachedSteps` for a
Transformer-XL, ``model(x[B, 1], state)`` for any other model; GPUs). Their logits agree within
1e-4, the rules and the sampler are numpy in both, and every random draw comes from one
``numpy.random.Generator``: a seed gives the same song in both runtimes. ``num`` songs are ``num``
streams of one batch. This module sets up the modes; :func:`lakhnes.decoding.loop.run` samples:
every step masks the ids that would make invalid TX1 or break a rule (:mod:`lakhnes.decoding.rules`),
then applies temperature, top-k, top-p (:mod:`lakhnes.decoding.sampler`).

Length: ``seconds`` counts sampled wait time (vocabulary waits, exact samples); ``<S>`` (end of
song) is masked throughout, so a song always runs to its requested length, and its last wait is cut
so that it ends exactly there. ``tokens`` asks for a number of tokens instead.
Seeds: ``seed`` fixes the whole batch (same seed and ``num`` → the same songs).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lakhnes.core import tx1
from lakhnes.core import vocab as V
from lakhnes.core.frames import SHRINK, on_frames
from lakhnes.core.score import SAMPLE_RATE, VOICES, NesScore
from lakhnes.decoding import loop
from lakhnes.decoding.constraint import Constraint
from lakhnes.decoding.forced import Rhythm, keep_plan, parse_keep, quantize
from lakhnes.decoding.rules import MAX_REST_S, Rule, default_rules, parse_voices
from lakhnes.decoding.sampler import WAIT_TEMPERATURE, WAIT_TOP_P, Sampler, check_sampling
from lakhnes.errors import InvalidInputError
from lakhnes.runtime import (  # noqa: F401  (re-exported: callers load models from here)
    RUNTIMES,
    TORCH_INSTALL,
    _stepper,
    has_torch,
    is_numpy,
    load_default_model,
    load_model,
    load_source,
    model_type,
    pick_runtime,
    require_torch,
    set_threads,
)

__all__ = ["sample", "sample_tokens", "continue_song", "accompany_rhythm", "accompany_voices",
           "load_default_model", "load_model", "load_source", "pick_runtime", "set_threads", "song_rules"]

Progress = Callable[[int, int], None] | None
#: tokens per second of music after which only waits are allowed (NES-MDB peaks near 200/s)
MAX_TOKEN_RATE = 400


def _run(model, prompt: np.ndarray, rules, *, temperature, top_k, top_p, seed, progress: Progress,
         cache: bool = True, wait_temperature: float | None = None, wait_top_p: float | None = None):
    """Feed ``prompt`` [B, T] to the model, then :func:`lakhnes.decoding.loop.run` under ``rules``."""
    sampler = Sampler(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                      wait_temperature=wait_temperature, wait_top_p=wait_top_p)
    return loop.run(_stepper(model, prompt, cache=cache), rules, sampler, progress)


def _prompt(model, prefix, num: int) -> np.ndarray:
    """Token ids ``prefix``, one row per stream [num, T]."""
    return np.tile(np.asarray(prefix, dtype=np.int64), (num, 1))


def _song(events: np.ndarray, end: int, name: str) -> NesScore:
    """Events cut at ``end`` (the last wait shortened), as a score ending at ``end``."""
    ev = np.asarray(events, dtype=np.int64)
    waits = np.where(ev < 0, -ev, 0)
    time = np.cumsum(waits)
    over = np.flatnonzero(time > end)
    if len(over):
        k = over[0]
        ev = ev[: k + 1].copy()
        ev[k] = -(end - (time[k] + ev[k]))  # time[k] + ev[k] is the time before this wait
        if ev[k] == 0:
            ev = ev[:k]
    score = tx1.events_to_score(ev, end=end, name=name)
    return score


def voices_of(ids) -> tuple[str, ...]:
    """The voices that start a note in token ids."""
    ids = np.asarray(ids, dtype=np.int64)
    return tuple(v for k, v in enumerate(VOICES) if np.any(V.IS_NOTEON[ids] & (V.VOICE_OF[ids] == k)))


def song_rules(voices=None, max_rest: float | None = MAX_REST_S, *, implied=VOICES, free=VOICES) -> list[Rule]:
    """The decoding rules of a song (see :mod:`lakhnes.decoding.rules`). ``voices``: the voices it
    uses (e.g. ``"P1,TR"``): each enters near the start and rests at most ``max_rest`` seconds
    (``None``: no bound), and the others stay silent. Default (``None``): the voices ``implied``
    (all four for a new song; the prime's, or the source's, otherwise) are held to that, and the
    model may add the others. Only voices in ``free`` (those the model writes) are concerned."""
    if max_rest is not None and not max_rest >= 0.1:
        raise InvalidInputError(f"max_rest must be at least 0.1 s (or None: no bound), not {max_rest}")
    if voices is None:
        named, allowed = [v for v in implied if v in free], VOICES
    else:
        named = allowed = [v for v in parse_voices(voices) if v in free]
        if not named:
            raise InvalidInputError(f"voices: {','.join(parse_voices(voices))} names no voice for the model to "
                                    f"write (it writes {','.join(free)})")
    return default_rules(named, max_rest=max_rest, allowed=allowed)


def _length_args(seconds, tokens):
    if tokens is not None:
        if int(tokens) < 1:
            raise InvalidInputError(f"tokens must be >= 1, not {tokens}")
        return None, int(tokens)
    if not seconds > 0:
        raise InvalidInputError(f"seconds must be > 0, not {seconds}")
    return int(round(seconds * SAMPLE_RATE)), None


def sample_tokens(model, *, prefix=(V.START,), seconds: float = 30.0, tokens: int | None = None,
                  temperature: float = 0.95, top_k: int | None = 32, top_p: float | None = None,
                  seed: int | None = None, num: int = 1, progress: Progress = None,
                  cache: bool = True, voices=None, max_rest: float | None = MAX_REST_S,
                  rules: list[Rule] | None = None, wait_temperature: float | None = WAIT_TEMPERATURE,
                  wait_top_p: float | None = WAIT_TOP_P) -> list[np.ndarray]:
    """The token ids ``num`` streams sample after the ids ``prefix`` (fed to the model first):
    until ``seconds`` of waits (the last wait may overshoot) or ``tokens`` ids. ``voices`` and
    ``max_rest``: see :func:`song_rules` (implied: all four after ``<S>`` alone, else the prefix's
    voices when it has two or more); ``rules`` replaces those rules (``[]``: validity only)."""
    check_sampling(temperature, top_k, top_p, num, wait_temperature, wait_top_p)
    limit, max_tokens = _length_args(seconds, tokens)
    prefix = np.asarray(prefix, dtype=np.int64)
    if rules is None:
        heard = voices_of(prefix)
        rules = song_rules(voices, max_rest, implied=heard if len(heard) >= 2 else VOICES)
    budget = None if limit is None else MAX_TOKEN_RATE * limit // SAMPLE_RATE + 64
    con = Constraint(num, limit=limit, max_tokens=max_tokens, budget=budget, prefix=prefix,
                     rules=rules, song_start=len(prefix) == 1 and prefix[0] == V.START)
    return _run(model, _prompt(model, prefix, num), con, temperature=temperature, top_k=top_k, top_p=top_p,
                seed=seed, progress=progress, cache=cache, wait_temperature=wait_temperature, wait_top_p=wait_top_p)


def _songs(new, prefix_events, limit: int | None, name: str) -> list[NesScore]:
    """Scores of ``prefix_events`` + each stream's ids, cut at ``limit`` samples of new music. The new
    music's waits are read as whole NES frames where the vocabulary's rounding explains them
    (:func:`lakhnes.core.frames.on_frames`); the prefix keeps its exact times."""
    start = int(-prefix_events[prefix_events < 0].sum())
    songs = []
    for b, ids in enumerate(new):
        ev = on_frames(tx1.ids_to_events(ids))
        gen_len = int(-ev[ev < 0].sum())
        end = start + (gen_len if limit is None else min(limit, gen_len))
        label = f"{name}_{b + 1}" if len(new) > 1 else name
        songs.append(_song(np.concatenate([prefix_events, ev]).astype(np.int64), end, label))
    return songs


def _token_seconds(seconds: float) -> float:
    """Seconds of tokens to sample so that, on frames (up to ``SHRINK`` shorter), they last ``seconds``."""
    return seconds / (1 - SHRINK) if seconds > 0 else seconds


def sample(model, *, seconds: float = 30.0, tokens: int | None = None, temperature: float = 0.95,
           top_k: int | None = 32, top_p: float | None = None, seed: int | None = None, num: int = 1,
           progress: Progress = None, voices=None, max_rest: float | None = MAX_REST_S,
           rules: list[Rule] | None = None, wait_temperature: float | None = WAIT_TEMPERATURE,
           wait_top_p: float | None = WAIT_TOP_P) -> list[NesScore]:
    """``num`` new songs from ``<S>``: ``seconds`` of music each (or ``tokens`` tokens).
    ``voices``: the voices the songs use (default all four), each entering near the start and
    resting at most ``max_rest`` seconds (see :func:`song_rules`)."""
    limit = _length_args(seconds, tokens)[0]
    new = sample_tokens(model, seconds=_token_seconds(seconds), tokens=tokens, temperature=temperature,
                        top_k=top_k, top_p=top_p, seed=seed, num=num, progress=progress, voices=voices,
                        max_rest=max_rest, rules=rules, wait_temperature=wait_temperature, wait_top_p=wait_top_p)
    return _songs(new, np.zeros(0, dtype=np.int64), limit, "sample")


def prime_events(prime: NesScore, prime_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """The prime's events before ``prime_seconds`` (all of it if None), ending with a wait up to
    the cut; notes sounding at the cut stay on (the model decides when they stop). And the cut."""
    cut = prime.end if prime_seconds is None else min(prime.end, int(round(prime_seconds * SAMPLE_RATE)))
    if cut <= 0:
        raise InvalidInputError("the prime is empty (0 seconds)", prime.name or None)
    ev = tx1.score_to_events(prime)
    waits = np.where(ev < 0, -ev, 0)
    at = np.cumsum(waits) - waits  # time each event starts
    ev = ev[at < cut]
    waits = np.where(ev < 0, -ev, 0)
    reach = int(waits.sum())
    if reach > cut:  # shorten the last wait to the cut
        ev = ev.copy()
        ev[-1] += reach - cut
    elif reach < cut:
        ev = np.append(ev, -(cut - reach))
    return ev.astype(np.int64), cut


def continue_song(model, prime: NesScore, *, prime_seconds: float | None = None, only_new: bool = False,
                  seconds: float = 30.0, tokens: int | None = None, temperature: float = 0.95,
                  top_k: int | None = 32, top_p: float | None = None, seed: int | None = None, num: int = 1,
                  progress: Progress = None, voices=None, max_rest: float | None = MAX_REST_S,
                  rules: list[Rule] | None = None, wait_temperature: float | None = WAIT_TEMPERATURE,
                  wait_top_p: float | None = WAIT_TOP_P) -> list[NesScore]:
    """Continue the first ``prime_seconds`` of ``prime`` by ``seconds`` of music.

    The model reads the prime (its waits snapped to the vocabulary) through its memory; each song
    is the prime as written (exact timing) followed by the continuation, or only the continuation
    with ``only_new``. ``voices`` (default: the prime's, or all four if it has fewer than two) and
    ``max_rest``: see :func:`song_rules`; the rules count the prime's rests and notes too.
    """
    ev, cut = prime_events(prime, prime_seconds)
    ids = np.concatenate([[V.START], tx1.events_to_ids(ev)]).astype(np.int64)
    new = sample_tokens(model, prefix=ids, seconds=_token_seconds(seconds), tokens=tokens, temperature=temperature,
                        top_k=top_k, top_p=top_p, seed=seed, num=num, progress=progress, voices=voices,
                        max_rest=max_rest, rules=rules, wait_temperature=wait_temperature, wait_top_p=wait_top_p)
    songs = _songs(new, ev, _length_args(seconds, tokens)[0], (prime.name or "prime") + "_cont")
    if only_new:
        songs = [NesScore(s.slice(cut, s.end).notes, s.end - cut, name=s.name) for s in songs]
    return songs


def accompany_rhythm(model, rhythm: NesScore, *, temperature: float = 0.95, top_k: int | None = 32,
                     top_p: float | None = None, seed: int | None = None, num: int = 1,
                     progress: Progress = None) -> list[NesScore]:
    """New pitches on ``rhythm``: every wait, NOTEOFF and noise event is taken from it (snapped to
    the vocabulary); at each P1/P2/TR NOTEON the model picks the pitch, sampling among that
    voice's NOTEON ids."""
    check_sampling(temperature, top_k, top_p, num)
    ev = quantize(rhythm)
    if not len(ev):
        raise InvalidInputError("the rhythm song is empty", rhythm.name or None)
    template = np.concatenate([[V.START], tx1.events_to_ids(ev)]).astype(np.int64)
    forced = Rhythm(template, num)
    rows = _run(model, forced.ids[:, :1], forced, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                progress=progress)
    end = int(-ev[ev < 0].sum())
    base = rhythm.name or "rhythm"
    names = [f"{base}_rhythm" + (f"_{b + 1}" if num > 1 else "") for b in range(num)]
    return [tx1.events_to_score(tx1.ids_to_events(row), end=end, name=n)
            for row, n in zip(rows, names, strict=True)]


def accompany_voices(model, source: NesScore, keep, *, temperature: float = 0.95, top_k: int | None = 32,
                     top_p: float | None = None, seed: int | None = None, num: int = 1,
                     progress: Progress = None, voices=None, max_rest: float | None = MAX_REST_S,
                     rules: list[Rule] | None = None, wait_temperature: float | None = WAIT_TEMPERATURE,
                     wait_top_p: float | None = WAIT_TOP_P) -> list[NesScore]:
    """Keep voices ``keep`` (e.g. ``["P1", "NO"]`` or ``"P1,NO"``) of ``source`` exactly as written
    (on the vocabulary's time grid) and let the model write the other voices around them.

    The kept events are forced at their exact times (see :mod:`lakhnes.decoding.forced`);
    the model may not speak for a kept voice, and the songs end at the source's end. ``voices``:
    the voices the song uses (default: the kept ones plus the others the source uses, or all four
    if it uses only the kept ones) and ``max_rest``: see :func:`song_rules`.
    """
    check_sampling(temperature, top_k, top_p, num, wait_temperature, wait_top_p)
    kept = parse_keep(keep)
    plan = keep_plan(source, kept)
    if plan.end <= 0:
        raise InvalidInputError("the source song is empty", source.name or None)
    free = [v for v in VOICES if v not in kept]
    if rules is None:
        implied = [v for v in free if len(source.notes[v])] or free
        rules = song_rules(voices, max_rest, implied=implied, free=free)
    budget = 2 * len(plan.times) + MAX_TOKEN_RATE * plan.end // SAMPLE_RATE + 64
    con = Constraint(num, plan=plan, budget=budget, rules=rules)
    new = _run(model, _prompt(model, [V.START], num), con, temperature=temperature, top_k=top_k, top_p=top_p,
               seed=seed, progress=progress, wait_temperature=wait_temperature, wait_top_p=wait_top_p)
    base = (source.name or "source") + "_with_" + "".join(v.lower() for v in plan.keep)
    names = [base + (f"_{b + 1}" if num > 1 else "") for b in range(num)]
    return [tx1.events_to_score(tx1.ids_to_events(ids), end=plan.end, name=n)
            for ids, n in zip(new, names, strict=True)]
