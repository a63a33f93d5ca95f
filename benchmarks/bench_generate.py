"""Generation speed on CPU, batch 1: tokens/s and wall seconds for 30 s of music.

    python benchmarks/bench_generate.py [--model DIR] [--configs small,paper] [--threads 1]
        [--tokens 1728] [--seconds 30] [--uncached-tokens 200]

For each model (``--model``: a trained run or checkpoint; else each preset of ``--configs`` with
random weights), it times:
- ``tokens``: ``sample_tokens(tokens=N)``: the steady decoding rate (a fixed number of tokens, so
  an untrained model's odd waits do not change the work). N = 1728 is 30 s of NES-MDB music at its
  mean rate (57.6 tokens per second of music over the valid split);
- ``30 s``: ``sample_tokens(seconds=30)`` (what ``sample`` runs before building the score), and
  how many tokens it took;
- ``cached/uncached, full memory``: ``--uncached-tokens`` tokens after a ``mem_len`` prompt,
  with the key/value cache (:mod:`lakhnes.models.txl_step`) and through ``model(x[B, 1], state)`` (the
  keys/values of the whole memory recomputed every step), for comparison. Includes the prompt.
Each row gives the best of ``--repeat`` runs' wall and CPU seconds and the machine's load average (the dev machine is shared).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from lakhnes.generate import sample_tokens
from lakhnes.models import build_model, load_model
from lakhnes.models.txl_step import Stepper


def timed(fn, repeat: int):
    """``fn()``'s result and the wall and CPU seconds of the fastest of ``repeat`` runs (the
    same seed each time, so every run does the same work)."""
    best = None
    for _ in range(max(1, repeat)):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        t = (time.perf_counter() - w0, time.process_time() - c0)
        best = t if best is None or t[0] < best[0] else best
    return out, *best


def bench(name: str, model, a) -> None:
    load = os.getloadavg()[0]
    with torch.inference_mode():  # warm-up: first calls allocate
        Stepper(model, torch.zeros(1, 4, dtype=torch.long)).step(torch.zeros(1, dtype=torch.long))
    ids, wall, cpu = timed(lambda: sample_tokens(model, tokens=a.tokens, seed=0), a.repeat)
    n = len(ids[0])
    print(f"| {name} | tokens | {n} | {wall:.2f} | {cpu:.2f} | {n / wall:.0f} | "
          f"{a.tokens / (n / wall):.2f} | {load:.1f} |", flush=True)
    (ids,), wall, cpu = timed(lambda: sample_tokens(model, seconds=a.seconds, seed=0), a.repeat)
    n30 = len(ids)
    print(f"| {name} | {a.seconds:g} s | {n30} | {wall:.2f} | {cpu:.2f} | {n30 / wall:.0f} | {wall:.2f} | "
          f"{os.getloadavg()[0]:.1f} |", flush=True)
    if a.uncached_tokens:  # both after a full memory, so every step sees mem_len positions
        full = [0] + [1 + 99] * getattr(model.config, "mem_len", 0)  # <S>, then WT_100s
        for label, cache in (("cached, full memory", True), ("uncached, full memory", False)):
            ids, wall, cpu = timed(lambda c=cache: sample_tokens(model, prefix=full, tokens=a.uncached_tokens,
                                                                   seed=0, cache=c), a.repeat)
            n = len(ids[0])
            print(f"| {name} | {label} | {n} | {wall:.2f} | {cpu:.2f} | {n / wall:.0f} | "
                  f"{a.tokens / (n / wall):.2f} | {os.getloadavg()[0]:.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="trained model (run or checkpoint folder)")
    ap.add_argument("--configs", default="small,paper", help="Transformer-XL presets with random weights")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=1728)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--uncached-tokens", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} thread(s), {os.cpu_count()} cores, batch 1")
    print("| model | run | tokens | wall s | CPU s | tokens/s (wall) | s per 30 s of music | load avg |")
    print("|---|---|---|---|---|---|---|---|")
    if a.model:
        bench(f"trained ({a.model})", load_model(a.model), a)
    for cfg in filter(None, a.configs.split(",")):
        torch.manual_seed(0)
        bench(f"{cfg} (random weights)", build_model("transformer_xl", cfg).eval(), a)


if __name__ == "__main__":
    main()
