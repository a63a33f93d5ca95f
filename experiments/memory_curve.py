"""Perplexity against memory length: does a model use its memory? (And does clamping distances help?)

Scores a model on a split by the LakhNES protocol (streams of whole songs, segments of 128) at each
memory length, with and without ``clamp_len`` (distances beyond it share its position embedding:
Transformer-XL's option for memories longer than the distances seen in training).

Usage: python experiments/memory_curve.py MODEL --data data/nesmdb [--split test] [--mems 256,896,2048]
           [--clamps 0,1023] [--max-tokens N] [--threads 2] [--json results/memory_curve.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from lakhnes.data.shards import load_split
from lakhnes.evaluation.perplexity import evaluate_lm
from lakhnes.models import load_model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--mems", default="256,896,2048")
    p.add_argument("--clamps", default="0", help="clamp_len values to try (0: none)")
    p.add_argument("--max-tokens", type=int, default=0, help="score only the first songs up to this many tokens")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    split = load_split(a.data, a.split)
    songs = list(split.songs())
    if a.max_tokens:
        keep, n = [], 0
        for s in songs:
            if n >= a.max_tokens:
                break
            keep.append(s)
            n += len(s)
        songs = keep
    tokens = np.concatenate(songs)
    model = load_model(a.model)
    out = {"command": " ".join(["python", "experiments/memory_curve.py", *(argv or sys.argv[1:])]),
           "date": time.strftime("%Y-%m-%d"), "songs": len(songs), "tokens": int(len(tokens)), "ppl": {}}
    print(f"{len(songs)} songs, {len(tokens)} tokens")
    for clamp in (int(c) for c in a.clamps.split(",")):
        model.config.clamp_len = clamp
        for mem in (int(m) for m in a.mems.split(",")):
            with torch.no_grad():
                r = evaluate_lm(model, tokens, mem_len=mem)
            out["ppl"][f"mem {mem}, clamp {clamp}"] = round(r["ppl"], 4)
            print(f"mem {mem:5d}  clamp {clamp:5d}  ppl {r['ppl']:.4f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
