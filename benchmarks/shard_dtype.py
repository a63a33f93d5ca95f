"""What 16-bit shards cost: a model's perplexity from its float32 weights, and from float16 and
bfloat16 shards (``save_model_sharded``) read back as float32, on the first N tokens of a split
with the LakhNES protocol's layout (10 streams, segments of 128, memory 896).

    python benchmarks/shard_dtype.py                          # the shipped model, 40,000 test tokens
    python benchmarks/shard_dtype.py -m runs/x --data data/nesmdb --split valid --tokens 100000
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from lakhnes.data.shards import load_split
from lakhnes.evaluation.perplexity import evaluate_lm
from lakhnes.models import default_model_path, load_model, save_model_sharded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default=str(default_model_path()))
    ap.add_argument("--data", default="data/nesmdb")
    ap.add_argument("--split", default="test")
    ap.add_argument("--tokens", type=int, default=40_000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tokens = np.asarray(load_split(args.data, args.split).tokens[: args.tokens])
    model = load_model(args.model)
    print("| weights | NLL (nats) | PPL |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("float32", "float16", "bfloat16"):
            m = model
            if name != "float32":
                save_model_sharded(model, Path(tmp) / name, dtype=getattr(torch, name))
                m = load_model(Path(tmp) / name)
            r = evaluate_lm(m, tokens)
            print(f"| {name} | {r['nll']:.6f} | {r['ppl']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
