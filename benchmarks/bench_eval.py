"""Evaluation speed of every model on CPU, and 5-gram training time and peak memory.

    python benchmarks/bench_eval.py --data /tmp/prep/nesmdb [--tokens 40000] [--threads 1]

Neural models are built from their presets with fresh weights (speed does not depend on the
weights) and scored with the eval protocol (10 streams, segments of 128, TXL memory 896) on
the first ``--tokens`` tokens of the test split (``--paper-tokens`` for the paper-size LSTM);
n-grams on the whole test split. Reports wall-clock and CPU-time speeds (the CPU figure is the
one to trust on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc

import numpy as np
import torch

from lakhnes.data.shards import load_split
from lakhnes.evaluation.perplexity import evaluate_lm, evaluate_ngram
from lakhnes.models import build_model
from lakhnes.models.ngram import NGramLM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--tokens", type=int, default=20000, help="test tokens for the neural models")
    ap.add_argument("--paper-tokens", type=int, default=5000, help="test tokens for the paper-size models")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="unigram,5gram,lstm:small,transformer_xl:small,lstm:paper")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    train = np.asarray(load_split(a.data, "train").tokens)
    test = np.asarray(load_split(a.data, "test").tokens)
    print(f"train {len(train)} tokens, test {len(test)} tokens, torch threads {a.threads}")
    rows = []
    for spec in a.models.split(","):
        if spec in ("unigram", "5gram"):
            order = 1 if spec == "unigram" else 5
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            tracemalloc.start()
            t0 = time.perf_counter()
            m = NGramLM.train(train, order)
            secs = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(f"{spec}: trained in {secs:.1f} s, peak numpy memory {peak / 2**20:.0f} MiB "
                  f"(max RSS grew {(rss1 - rss0) / 1024:.0f} MiB), {m.num_parameters()} n-grams")
            c0 = time.process_time()
            r = evaluate_ngram(m, test)
            rows.append((spec, m.num_parameters(), r["targets"], r["tokens_per_s"],
                         r["targets"] / (time.process_time() - c0)))
        else:
            kind, preset = spec.split(":")
            torch.manual_seed(0)
            model = build_model(kind, preset).eval()
            c0 = time.process_time()
            r = evaluate_lm(model, test[: a.paper_tokens if preset == "paper" else a.tokens])
            rows.append((spec, model.num_parameters(), r["targets"], r["tokens_per_s"],
                         r["targets"] / (time.process_time() - c0)))
        print(f"{spec}: {rows[-1][3]:.0f} tokens/s wall, {rows[-1][4]:.0f} tokens/s of CPU time", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    print("\n| model | parameters | tokens scored | tokens/s (wall) | tokens/s (CPU time) |\n|---|---|---|---|---|")
    for name, n, t, tps, cps in rows:
        print(f"| {name} | {n:,} | {t:,} | {tps:,.0f} | {cps:,.0f} |")


if __name__ == "__main__":
    main()
