"""Training throughput (tokens/s) and peak RAM of Transformer-XL configs on this machine.

Each config runs in its own subprocess (so peak RSS is its own): a few warm-up steps, then
timed optimizer steps (forward + backward + clip + AdamW) on real NES-MDB tokens streamed with
memory, exactly as ``lakhnes train`` does (no augmentation: the data side is measured apart).

    python benchmarks/bench_train.py                      # ref + small + paper (batch 1)
    python benchmarks/bench_train.py --configs ref --compile --threads 2
    python benchmarks/bench_train.py --attention manual   # softmax(QK^T + BD) V by hand

Prints one line per config and a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CONFIGS = {
    # the reference: LakhNES' small comparison config
    "ref": dict(model=dict(n_layer=4, n_head=8, d_model=256, d_inner=1024, tgt_len=256, mem_len=256), batch=4),
    "small": dict(model="small", batch=8),
    "paper": dict(model="paper", batch=1),
}


def _manual_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, **_):
    import torch

    s = torch.matmul(q, k.transpose(-1, -2)) * q.size(-1) ** -0.5
    if attn_mask is not None:
        s = s + attn_mask
    return torch.matmul(torch.softmax(s, -1), v)


def run_one(name: str, args) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from lakhnes.models import build_model, transformer_xl

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.attention == "manual":
        transformer_xl.F = type("F", (), {**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")},
                                          "scaled_dot_product_attention": staticmethod(_manual_sdpa)})
    spec = CONFIGS[name]
    torch.manual_seed(0)
    model = build_model("transformer_xl", spec["model"])
    model.train()
    c = model.config
    B, T = args.batch or spec["batch"], c.tgt_len
    tokens = _tokens(args.data, B * T * (args.steps + args.warmup + 1) + 1)
    rows = torch.from_numpy(tokens[: len(tokens) // B * B].reshape(B, -1).astype(np.int64))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    net = torch.compile(model) if args.compile else model
    state = model.init_state(B)

    def step(i):
        nonlocal state
        x, y = rows[:, i * T : (i + 1) * T], rows[:, i * T + 1 : (i + 1) * T + 1]
        logits, state = net(x, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(args.warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        step(i)
    dt = time.perf_counter() - t0
    return {"config": name, "params": model.num_parameters(), "batch": B, "tgt_len": T, "mem_len": c.mem_len,
            "tokens_per_s": round(B * T * args.steps / dt, 1), "s_per_step": round(dt / args.steps, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "threads": torch.get_num_threads(), "compile": args.compile, "attention": args.attention}


def _tokens(data: str, n: int):
    import numpy as np

    from lakhnes.datasets import load_split

    if data and os.path.exists(os.path.join(data, "train.npy")):
        t = np.asarray(load_split(data, "train").tokens[:n])
        if len(t) >= n:
            return t
    rng = np.random.default_rng(0)  # no data: random ids (speed does not depend on the values)
    return rng.integers(0, 631, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="ref,small,paper")
    ap.add_argument("--data", default="/tmp/prep/nesmdb", help="prepared folder (random ids if absent)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=0, help="override the batch size")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--attention", choices=["sdpa", "manual"], default="sdpa")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return
    load = os.getloadavg()[0]
    results = []
    for name in args.configs.split(","):
        cmd = [sys.executable, __file__, "--one", name, "--data", args.data, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch", str(args.batch), "--threads", str(args.threads),
               "--attention", args.attention] + (["--compile"] if args.compile else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(json.dumps(r), flush=True)
    print(f"\nload average (1 min) at start: {load:.2f}; cores: {os.cpu_count()}\n")
    print("| config | params | batch × tgt_len, mem | threads | compile | attention | tokens/s | s/step | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['config']} | {r['params']:,} | {r['batch']} × {r['tgt_len']}, {r['mem_len']} | {r['threads']} | "
              f"{'yes' if r['compile'] else 'no'} | {r['attention']} | {r['tokens_per_s']:,.0f} | {r['s_per_step']} | "
              f"{r['peak_rss_mib']} MiB |")


if __name__ == "__main__":
    main()
