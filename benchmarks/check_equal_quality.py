"""Equal quality check for training speed-ups: the same 400-step run, once per variant, must end
within 1 % of the reference's validation loss.

Each variant trains the `small` preset (same seed, same data order and augmentation) for STEPS
steps through `lakhnes.training.Trainer`, in its own process, then scores the first SEGMENTS segments
of the valid split (8 streams of 128 tokens with memory, as training validates).

    python benchmarks/check_equal_quality.py --data data/nesmdb                 # pad vs strided rel_shift
    python benchmarks/check_equal_quality.py --variants pad,fused,threads2,bf16 # other speed options
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 python benchmarks/check_equal_quality.py \\
        --variants pad                                                          # an allocator
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

VARIANTS = {
    "pad": {},  # the model as it is (reference)
    "strided": {"rel_shift": "strided"},  # the as_strided rel_shift used before
    "fused": {"fused": True},  # fused AdamW
    "threads2": {"threads": 2},
    "bf16": {"bf16": True},  # bf16 autocast (pays on CPUs with avx512_bf16)
}


def run_variant(name: str, args) -> dict:
    import torch

    from lakhnes.models import transformer_xl
    from lakhnes.training import Trainer, evaluate, preset_config

    v = VARIANTS[name]
    threads = v.get("threads", args.threads)
    if v.get("rel_shift") == "strided":
        sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
        from bench_train import strided_rel_shift

        transformer_xl.rel_shift = strided_rel_shift
    if v.get("fused"):
        adamw = torch.optim.AdamW
        torch.optim.AdamW = lambda *a, **k: adamw(*a, fused=True, **k)
    cfg = preset_config("small", data=args.data, threads=threads, steps=args.steps, warmup_steps=args.steps // 10,
                        eval_every=10**9, seed=0, bf16=v.get("bf16", False))
    with tempfile.TemporaryDirectory() as d:
        t = Trainer(cfg, d, progress=False)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            t.train_step()
        dt = time.perf_counter() - t0
        nll, ppl, n = evaluate(t.model, t.valid_split, batch_size=8, tgt_len=t.tgt_len, max_segments=args.segments)
    return {"variant": name, "steps": args.steps, "valid_nll": nll, "valid_ppl": ppl, "tokens_scored": n,
            "train_s": round(dt, 1), "tokens_per_s": round(args.steps * cfg.batch_size * t.tgt_len / dt)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/nesmdb")
    ap.add_argument("--variants", default="pad,strided", help="comma-separated, the first is the reference: "
                    + ", ".join(VARIANTS))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--segments", type=int, default=60, help="valid segments scored (default 60)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_variant(args.one, args)))
        return 0
    names = args.variants.split(",")
    if set(names) - set(VARIANTS):
        ap.error(f"unknown variants {sorted(set(names) - set(VARIANTS))}")
    results = []
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--one", name, "--data", args.data, "--steps", str(args.steps),
                              "--segments", str(args.segments), "--threads", str(args.threads)],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"{name}: failed\n{out.stderr}", file=sys.stderr)
            return 1
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    ref = results[0]["valid_nll"]
    print("\n| variant | steps | valid loss (nats) | vs reference | tokens/s |")
    print("|---|---|---|---|---|")
    ok = True
    for r in results:
        rel = (r["valid_nll"] - ref) / ref
        ok &= abs(rel) <= 0.01
        print(f"| {r['variant']} | {r['steps']} | {r['valid_nll']:.4f} | {rel:+.2%} | {r['tokens_per_s']:,} |")
    print(f"\nwithin 1 %: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
