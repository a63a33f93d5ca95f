"""Training throughput (tokens/s) and peak memory of Transformer-XL configs.

Each config runs in its own subprocess (so peak RSS is its own): a few warm-up steps, then
timed optimizer steps (forward + backward + clip + AdamW, bf16 autocast where asked) on real
NES-MDB tokens streamed with memory, as ``lakhnes train`` does (no augmentation: the data side
is measured apart). Random ids stand in when ``--data`` is absent (speed does not depend on
the values). Prints the exact ``paper`` parameter count first.

    python benchmarks/bench_train.py                      # CPU: ref + small (+ paper at batch 1)
    python benchmarks/bench_train.py --configs ref --compile --threads 2
    python benchmarks/bench_train.py --attention manual   # softmax(QK^T + BD) V by hand
    python benchmarks/bench_train.py --gpu                # CUDA, bf16, paper at batch 30 x 512
    python benchmarks/bench_train.py --configs ref,small --steps 2 --warmup 1   # smoke test

Prints one JSON line per config and a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

CONFIGS = {
    # the reference: LakhNES' small comparison config (batch 4 x 256 tokens, memory 256)
    "ref": dict(model=dict(n_layer=4, n_head=8, d_model=256, d_inner=1024, tgt_len=256, mem_len=256), batch=4),
    "small": dict(model="small", batch=8),  # the preset's training batch: 8 x 128, memory 128
    # the `small` preset before issue 12: 8 heads of 32, dropout 0.1
    "small-v1": dict(model=dict(n_layer=4, n_head=8, d_model=256, d_inner=1024, tgt_len=128, mem_len=128,
                                dropout=0.1), batch=8),
    "paper": dict(model="paper", batch=1),  # batch 30 with --gpu
}
GPU_BATCH = 30


def _manual_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, **_):
    import torch

    s = torch.matmul(q, k.transpose(-1, -2)) * q.size(-1) ** -0.5
    if attn_mask is not None:
        s = s + attn_mask
    return torch.matmul(torch.softmax(s, -1), v)


def strided_rel_shift(x):
    """The rel_shift lakhnes used before issue 12: an ``as_strided`` view (same values; on CPU its
    backward is an index_add over the whole score tensor)."""
    *lead, q, k = x.shape
    x = x.contiguous()
    stride = list(x.stride())
    return x.as_strided((*lead, q, k), (*stride[:-2], k - 1, 1), x.storage_offset() + q - 1)


def run_one(name: str, args) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from lakhnes.models import build_model, transformer_xl
    from lakhnes.training.loop import _param_groups

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rel_shift == "strided":
        transformer_xl.rel_shift = strided_rel_shift
    if args.attention == "manual":
        transformer_xl.F = type("F", (), {**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")},
                                          "scaled_dot_product_attention": staticmethod(_manual_sdpa)})
    dev = torch.device(args.device)
    spec = CONFIGS[name]
    torch.manual_seed(0)
    cfg = spec["model"]
    if args.set:
        from lakhnes.models import make_config

        base = dataclasses.asdict(make_config("transformer_xl", cfg))
        sets = dict(kv.split("=", 1) for kv in args.set.split(","))
        base.update({k: json.loads(v) for k, v in sets.items()})
        if {"n_head", "d_model"} & set(sets) and "d_head" not in sets:
            base["d_head"] = 0
        cfg = base
    model = build_model("transformer_xl", cfg).to(dev)
    model.train()
    c = model.config
    B, T = args.batch or spec["batch"], c.tgt_len
    tokens = _tokens(args.data, B * T * (args.steps + args.warmup + 1) + 1)
    rows = torch.from_numpy(tokens[: len(tokens) // B * B].reshape(B, -1).astype(np.int64)).to(dev)
    opt = torch.optim.AdamW(_param_groups(model, 0.01), lr=1e-4, betas=(0.9, 0.99),  # as lakhnes.training
                            **({"fused": True} if args.fused else {}))
    net = torch.compile(model) if args.compile else model
    state = model.init_state(B, dev)

    def step(i):
        nonlocal state
        x, y = rows[:, i * T : (i + 1) * T], rows[:, i * T + 1 : (i + 1) * T + 1]
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits, state = net(x, state)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for i in range(args.warmup):
        step(i)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        step(i)
    sync()
    dt = time.perf_counter() - t0
    out = {"config": name, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "params": model.num_parameters(), "batch": B, "tgt_len": T, "mem_len": c.mem_len,
           "tokens_per_s": round(B * T * args.steps / dt, 1), "s_per_step": round(dt / args.steps, 4),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "threads": torch.get_num_threads(), "compile": args.compile, "attention": args.attention,
           "bf16": args.bf16, "steps": args.steps, "set": args.set, "fused": args.fused,
           "heads": c.n_head, "dropout": c.dropout, "malloc": os.environ.get("LD_PRELOAD", "").rsplit("/", 1)[-1],
           "rel_shift": args.rel_shift}
    if dev.type == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(dev) / 2**20)
    return out


def _tokens(data: str, n: int):
    import numpy as np

    from lakhnes.data.shards import load_split

    if data and os.path.exists(os.path.join(data, "train.npy")):
        t = np.asarray(load_split(data, "train").tokens[:n])
        if len(t) >= n:
            return t
    rng = np.random.default_rng(0)  # no data: random ids (speed does not depend on the values)
    return rng.integers(0, 631, n)


def paper_parameters() -> int:
    """The exact parameter count of the ``paper`` preset (built on the meta device: no memory)."""
    import torch

    from lakhnes.models import build_model

    with torch.device("meta"):
        return build_model("transformer_xl", "paper").num_parameters()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=None, help="comma-separated, of: " + ", ".join(CONFIGS)
                    + " (default ref,small,paper; paper with --gpu)")
    ap.add_argument("--data", default="/tmp/prep/nesmdb", help="prepared folder (random ids if absent)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--batch", type=int, default=0, help="override the batch size")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--attention", choices=["sdpa", "manual"], default="sdpa")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (as lakhnes train on CUDA)")
    ap.add_argument("--fused", action="store_true", help="fused AdamW")
    ap.add_argument("--rel-shift", choices=["pad", "strided"], default="pad",
                    help="pad: the model's; strided: the as_strided view used before (for comparison)")
    ap.add_argument("--set", default="", help="model config overrides, e.g. n_head=4,dropout=0")
    ap.add_argument("--gpu", action="store_true",
                    help=f"the GPU measurement: --device cuda --bf16, paper config, batch {GPU_BATCH} x 512")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.gpu:
        args.device, args.bf16 = ("cuda" if args.device == "cpu" else args.device), True
        args.configs, args.batch = args.configs or "paper", args.batch or GPU_BATCH
    args.configs = args.configs or "ref,small,paper"
    unknown = set(args.configs.split(",")) - set(CONFIGS)
    if unknown or args.steps < 1 or args.warmup < 0 or args.batch < 0:
        ap.error(f"unknown configs {sorted(unknown)}" if unknown else "--steps >= 1, --warmup/--batch >= 0")
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return 0
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(f"--device {args.device}: no CUDA device here (run this on a GPU machine)", file=sys.stderr)
            return 1
    print(f"paper preset: {paper_parameters():,} parameters (exact)", flush=True)
    load = os.getloadavg()[0]
    results, failed = [], 0
    for name in args.configs.split(","):
        cmd = [sys.executable, __file__, "--one", name, "--data", args.data, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch", str(args.batch), "--threads", str(args.threads),
               "--attention", args.attention, "--device", args.device]
        cmd += ["--compile"] * args.compile + ["--bf16"] * args.bf16 + ["--fused"] * args.fused
        cmd += ["--set", args.set] if args.set else []
        cmd += ["--rel-shift", args.rel_shift]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(f"{name}: failed\n{out.stderr}", file=sys.stderr)
            failed += 1
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(json.dumps(r), flush=True)
    print(f"\nload average (1 min) at start: {load:.2f}; cores: {os.cpu_count()}\n")
    print("| config | device | params | heads, dropout | batch × tgt_len, mem | threads | bf16 | compile | fused AdamW "
          "| malloc | rel_shift | tokens/s | s/step | peak RSS | peak GPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        gpu = f"{r['peak_gpu_mib']} MiB" if "peak_gpu_mib" in r else "—"
        print(f"| {r['config']}{' (' + r['set'] + ')' if r['set'] else ''} | {r['device']} | {r['params']:,} "
              f"| {r['heads']}, {r['dropout']} | {r['batch']} × {r['tgt_len']}, {r['mem_len']} "
              f"| {r['threads']} | {'yes' if r['bf16'] else 'no'} | {'yes' if r['compile'] else 'no'} "
              f"| {'yes' if r['fused'] else 'no'} | {r['malloc'] or 'glibc'} | {r['rel_shift']} | {r['tokens_per_s']:,.0f} "
              f"| {r['s_per_step']} | {r['peak_rss_mib']} MiB | {gpu} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
