"""Wall seconds for 30 s of music with the shipped model over several seeds (batch 1, one thread).

    python benchmarks/bench_generate_seeds.py [--model DIR] [--seeds 10] [--seconds 30]

The token count per 30 s depends on what the model writes; this gives the spread over seeds
(``bench_generate.py`` times one seed and a fixed token count).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from lakhnes.generate import load_default_model, load_model, sample_tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=30.0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(a.model) if a.model else load_default_model()
    sample_tokens(model, tokens=64, seed=0)  # warm-up
    rows = []
    for seed in range(a.seeds):
        t0 = time.perf_counter()
        (ids,) = sample_tokens(model, seconds=a.seconds, seed=seed)
        rows.append((seed, len(ids), time.perf_counter() - t0))
        print(f"| {seed} | {len(ids)} | {rows[-1][2]:.2f} |", flush=True)
    walls = sorted(r[2] for r in rows)
    toks = sum(r[1] for r in rows)
    print(f"\n{a.seeds} seeds: median {statistics.median(walls):.2f} s, max {walls[-1]:.2f} s per {a.seconds:g} s "
          f"of music; {toks / sum(walls):.0f} tokens/s; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
