"""Helpers of ``experiments/gpu/run.sh``: the GPU check before training, and after it the export,
the evaluation (``lakhnes eval``, LakhNES protocol) and the figures. The training itself is
``lakhnes train``; nothing here trains.

    python experiments/gpu/tools.py check [--allow-cpu]                  # GPU, torch, CUDA; suggested batch
    python experiments/gpu/tools.py finish RUN OUT --data DIR [...]      # shards + config + evals + metrics.json
    python experiments/gpu/tools.py check-out OUT                        # what comes back fits the limits

Model FLOPs per trained token (``train_flops_per_token``; the figure that model FLOPs
utilisation divides by the chip's peak): three times the forward pass (backward = twice the
forward), counting 2 FLOPs per multiply-add of every matrix product the Transformer-XL computes
for a segment of ``tgt`` tokens after ``mem`` remembered positions (klen = tgt + mem):

    forward / token = 2 * n_layer * (d*H*dh                 # queries
                                     + 2*d*H*dh * klen/tgt  # keys and values of memory + segment
                                     + H*dh*d               # attention output
                                     + 2*d*d_inner          # feed-forward
                                     + 3*klen*H*dh          # q.k, (q+v).r and attention.values
                                     + d*H*dh * klen/(B*tgt))  # positions, once per batch
                      + 2*d*V                               # output logits (tied embedding)

Layer norms, softmax, dropout and the optimizer are not counted (standard for MFU). The peak is
the H200 SXM's dense bf16 tensor rate by NVIDIA's datasheet, 989.5 TFLOP/s (1,979 with 2:4
sparsity); the JSON also gives utilisation against 788 TFLOP/s, the bf16 8192^3 matmul rate
measured on this workplace's H200 (/work/.library/device/KINDS.md, 2026-10-28).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

H200_BF16_DENSE_PEAK = 989.5e12  # FLOP/s, NVIDIA H200 SXM datasheet (1,979 TFLOPS is with sparsity)
H200_BF16_MEASURED_MATMUL = 788e12  # FLOP/s, KINDS.md: bf16 8192^3 matmul on random data, 2026-10-28
#: what the device tool brings back: at most 8 files of <= 16 MiB, <= 64 MiB together, <= 2 folders deep
MAX_FILES, MAX_FILE_BYTES, MAX_TOTAL_BYTES = 8, 16 * 2**20, 64 * 2**20


def train_flops_per_token(c: dict, tgt: int, mem: int, batch: int) -> float:
    """Model FLOPs of one trained token (forward + backward) for Transformer-XL config dict ``c``."""
    d, h, dh, n = c["d_model"], c["n_head"], c["d_head"] or c["d_model"] // c["n_head"], c["n_layer"]
    hd, klen = h * dh, tgt + mem
    per_layer = (d * hd + 2 * d * hd * klen / tgt + hd * d + 2 * d * c["d_inner"] + 3 * klen * hd
                 + d * hd * klen / (batch * tgt))
    forward = 2 * n * per_layer + 2 * d * c["vocab_size"]
    return 3 * forward


def suggest_batch(c: dict, tgt: int, mem: int, free_bytes: int) -> int:
    """Streams per step for a card with ``free_bytes`` free: half of it for the activations, by a
    rough count of what one stream keeps for the backward pass (bf16: the attention score and
    position tensors, about five of [heads, tgt, klen] per layer, and some twenty [tgt, d_model]
    and three [tgt, d_inner] activations per layer), a power of two from 8 to 64. 64 x 512
    tokens per step is the choice for an H200: it fills the card's matrix units, and a time
    budget of minutes still gets thousands of optimizer steps."""
    h, d, n, klen = c["n_head"], c["d_model"], c["n_layer"], tgt + mem
    per_stream = 2 * n * (5 * h * tgt * klen + 20 * tgt * d + 3 * tgt * c["d_inner"])
    fit = max(1, int(0.5 * free_bytes // per_stream))
    return max(8, min(64, 2 ** int(math.log2(fit))))


# ----------------------------------------------------------------------------- check


def check(args) -> int:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        free, total = torch.cuda.mem_get_info(0)
        info.update(gpu=p.name, capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count,
                    memory_gib=round(total / 2**30, 1), free_gib=round(free / 2**30, 1),
                    bf16=torch.cuda.is_bf16_supported(), cudnn=torch.backends.cudnn.version(),
                    gpus=torch.cuda.device_count())
    else:
        free = 0
    for k, v in info.items():
        print(f"  {k}: {v}", file=sys.stderr)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("check: no CUDA device visible to torch; stopping (the dry run is --dry-run)", file=sys.stderr)
        return 1
    if args.model_json:
        c = json.loads(args.model_json)
        batch = suggest_batch(c, c["tgt_len"], c["mem_len"], free) if free else 2
        print(batch)
    return 0


# ----------------------------------------------------------------------------- finish


def _latest(run: Path) -> Path:
    f = run / "latest.json"
    if not f.exists():
        raise SystemExit(f"{run}: no checkpoint (latest.json missing): training did not get far enough")
    return run / json.loads(f.read_text())["path"]


def _rows(log_csv: Path) -> list[dict]:
    if not log_csv.exists():
        return []
    with log_csv.open() as fh:
        return list(csv.DictReader(fh))


def throughput(rows: list[dict]) -> dict:
    """Training speed from log.csv: overall (tokens / training seconds, first steps and any
    compilation included) and steady (between the first log row past a tenth of the training
    time and the last row: warm-up and compilation left out)."""
    tr = [r for r in rows if r.get("train_loss")]
    if not tr:
        return {}
    pts = [(int(r["step"]), int(r["tokens"]), float(r["elapsed_s"])) for r in tr]
    step1, tok1, t1 = pts[0]
    step_n, tok_n, t_n = pts[-1]
    out = {"steps": step_n, "tokens": tok_n, "train_seconds": t_n,
           "tokens_per_s_overall": tok_n / t_n if t_n > 0 else None,
           "first_log_row": {"step": step1, "seconds": t1}}
    later = [p for p in pts if p[2] >= 0.1 * t_n and p[0] > step1] or pts[-1:]
    s0, k0, e0 = later[0]
    if step_n > s0 and t_n > e0:
        steady = (tok_n - k0) / (t_n - e0)
        step_s = (t_n - e0) / (step_n - s0)
        out.update(tokens_per_s_steady=steady, seconds_per_step_steady=step_s,
                   steady_window={"from_step": s0, "to_step": step_n},
                   # what the first logged steps took beyond steady steps: compilation + warm-up
                   startup_overhead_s=max(0.0, t1 - step1 * step_s))
    return out


def stage_record(run: Path, command: str | None, hardware: str) -> dict:
    """One training stage for the model card (the fields of experiments/ship_model.py's stages)."""
    tcfg = json.loads((run / "train_config.json").read_text())
    state = json.loads((_latest(run) / "state.json").read_text())
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    return {"command": command or "lakhnes train (experiments/gpu/run.sh)", "data": tcfg["data"],
            "init": tcfg.get("init"), "steps": state["step"], "tokens": state["tokens"],
            "seconds": round(state["elapsed_s"], 1), "clock": tcfg.get("clock", "wall"), "threads": None,
            "augment": tcfg["augment"], "augment_drop": tcfg.get("augment_drop") if tcfg["augment"] else None,
            "lr": tcfg["lr"], "schedule": tcfg.get("schedule", "steps"), "warmup_steps": tcfg["warmup_steps"],
            "batch": tcfg["batch_size"], "tgt_len": tcfg["model"].get("tgt_len"),
            "mem_len": tcfg["model"].get("mem_len"), "compile": tcfg.get("compile", False),
            "stopped": summary.get("stopped"), "hardware": hardware}


def finish(args) -> int:
    import torch

    from lakhnes.cli import main as lakhnes
    from lakhnes.data.shards import load_split
    from lakhnes.models import load_model, model_type_of, save_model_sharded

    run, out = Path(args.run), Path(args.out)
    work = Path(args.work or run.parent)
    tcfg = json.loads((run / "train_config.json").read_text())
    data = args.eval_data or tcfg["data"]
    device = ["--device", args.device] if args.device else []
    # the checkpoint to ship: the last one (the end of the cosine), unless the best one by the
    # in-training validation is another: then whichever scores better on the whole valid split
    candidates = [_latest(run)]
    if (run / "best.json").exists():
        best = run / json.loads((run / "best.json").read_text())["path"]
        if best.resolve() != candidates[0].resolve() and (best / "state.json").exists():
            candidates.append(best)
    selection = {}
    if len(candidates) > 1:
        for ck in candidates:
            js = work / f"select_{ck.name}.json"
            if lakhnes(["eval", str(ck), "--data", data, "--split", "valid", "--json", str(js), "--results", "",
                        "--name", ck.name, *device]) != 0:
                print(f"finish: lakhnes eval {ck} failed", file=sys.stderr)
                return 1
            selection[ck.name] = json.loads(js.read_text())["ppl"]
    ckpt = min(candidates, key=lambda ck: selection.get(ck.name, 0.0))
    if selection:
        print(f"finish: valid PPL {selection}: shipping {ckpt.name}", flush=True)
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    state = json.loads((ckpt / "state.json").read_text())
    run_state = json.loads((_latest(run) / "state.json").read_text())
    model = load_model(ckpt)
    c = dict(model.config.__dict__)
    rows = _rows(run / "log.csv")
    n_train = int(load_split(tcfg["data"], "train").offsets[-1]) or None
    stages = [stage_record(Path(r), cmd, args.hardware) for r, cmd in zip(args.pretrain_run, args.pretrain_command,
                                                                          strict=True)]
    stage = stage_record(run, args.command, args.hardware)
    card = {"name": args.name, "stages": [*stages, stage], "parameters": model.num_parameters(),
            "checkpoint": f"{run.name}/{ckpt.name}", "eval": {},
            "selection": {"valid_ppl": selection, "rule": "the last checkpoint, or the in-training best if it "
                          "scores better on the whole valid split"} if selection else None,
            "weights": f"{args.dtype}; trained with float32 weights under bf16 autocast",
            "license": "MIT", "intended_use": "NES chiptune generation with lakhnes (generate, studio)",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    meta = {"step": state["step"], "train": tcfg, "train_tokens": state["tokens"], "card": card}
    model_dir = out / "model"
    t0 = time.perf_counter()
    shards = save_model_sharded(model, model_dir, dtype=getattr(torch, args.dtype),
                                max_shard_bytes=int(args.shard_mib * 2**20), metadata=meta)
    print(f"finish: {len(shards)} shard(s) of {args.dtype} in {model_dir} ({time.perf_counter() - t0:.1f} s)",
          flush=True)
    evals = {}
    for split in ("valid", "test"):
        js = work / f"eval_{split}.json"
        rc = lakhnes(["eval", str(model_dir), "--data", data, "--split", split, "--json", str(js), "--results", "",
                      "--name", args.name, *device])
        if rc != 0:
            print(f"finish: lakhnes eval --split {split} failed (exit {rc})", file=sys.stderr)
            return rc
        e = json.loads(js.read_text())
        evals[split] = {k: e.get(k) for k in ("ppl", "nll", "targets", "streams", "tgt_len", "mem_len", "seconds",
                                              "tokens_per_s", "device")}
    card["eval"] = evals
    meta["card"] = card
    cfg_all = json.loads((model_dir / "config.json").read_text())
    cfg_all["card"] = card
    from lakhnes.io import write_text_atomic

    write_text_atomic(model_dir / "config.json", json.dumps(cfg_all, indent=2) + "\n")

    speed = throughput(rows)
    flops = train_flops_per_token(c, c["tgt_len"], c["mem_len"], tcfg["batch_size"])
    metrics = {
        "model": {"type": model_type_of(model), "parameters": model.num_parameters(), "config": c},
        "training": {**speed, "batch": tcfg["batch_size"], "tgt_len": c["tgt_len"], "mem_len": c["mem_len"],
                     "tokens_per_step": tcfg["batch_size"] * c["tgt_len"], "lr": tcfg["lr"],
                     "schedule": tcfg.get("schedule"), "max_minutes": tcfg.get("max_minutes"),
                     "compile": tcfg.get("compile", False), "stopped": summary.get("stopped"),
                     "epochs": round(run_state["tokens"] / n_train, 3) if n_train else None,
                     "shipped_checkpoint": {"step": state["step"], "tokens": state["tokens"]},
                     "in_training_valid": [{"step": int(r["step"]), "valid_ppl": float(r["valid_ppl"])}
                                           for r in rows if r.get("valid_ppl")]},
        "flops": {"train_flops_per_token": flops,
                  "formula": "3 x forward; forward/token = 2*n_layer*(d*H*dh + 2*d*H*dh*klen/tgt + H*dh*d + "
                             "2*d*d_inner + 3*klen*H*dh + d*H*dh*klen/(B*tgt)) + 2*d*V; klen = tgt + mem",
                  "peak_bf16_dense_flops": H200_BF16_DENSE_PEAK,
                  "peak_source": "NVIDIA H200 SXM datasheet, dense bf16 (1,979 TFLOPS with sparsity)",
                  "measured_matmul_flops": H200_BF16_MEASURED_MATMUL,
                  "measured_source": "KINDS.md: bf16 8192^3 matmul on this workplace's H200, 2026-10-28"},
        "eval": evals,
        "device": args.hardware,
        "weights": {"dtype": args.dtype, "shards": [p.name for p in shards],
                    "bytes": sum(p.stat().st_size for p in shards)},
    }
    for key in ("tokens_per_s_steady", "tokens_per_s_overall"):
        if speed.get(key):
            metrics["flops"][f"mfu_{key.removeprefix('tokens_per_s_')}"] = speed[key] * flops / H200_BF16_DENSE_PEAK
            metrics["flops"][f"of_measured_matmul_{key.removeprefix('tokens_per_s_')}"] = (
                speed[key] * flops / H200_BF16_MEASURED_MATMUL)
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    tps, mfu = speed.get("tokens_per_s_steady"), metrics["flops"].get("mfu_steady")
    speed_text = f"steady {tps:,.0f} tokens/s, MFU {100 * mfu:.2f} % of 989.5 TFLOP/s; " if tps and mfu else ""
    print(f"finish: {model.num_parameters():,} parameters, {run_state['step']} steps, {run_state['tokens']:,} tokens "
          f"(shipped: step {state['step']}); "
          f"{speed_text}valid PPL {evals['valid']['ppl']:.3f}, test PPL {evals['test']['ppl']:.3f}", flush=True)
    return 0


# ----------------------------------------------------------------------------- check-out


def check_out(args) -> int:
    """What the device tool will bring back: each file <= 16 MiB, <= 8 files, <= 64 MiB together,
    no deeper than two folders, names of letters, digits, '.', '_' and '-'."""
    import re

    out = Path(args.out)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    bad = []
    for p in files:
        rel = p.relative_to(out)
        size = p.stat().st_size
        print(f"  {rel}  {size / 2**20:.2f} MiB")
        if size > MAX_FILE_BYTES:
            bad.append(f"{rel}: {size} bytes, over 16 MiB")
        if len(rel.parts) > 3 or not all(re.fullmatch(r"[A-Za-z0-9._-]+", part) for part in rel.parts):
            bad.append(f"{rel}: too deep or an odd name")
    if len(files) > MAX_FILES:
        bad.append(f"{len(files)} files, over {MAX_FILES}")
    if total > MAX_TOTAL_BYTES:
        bad.append(f"{total} bytes in all, over 64 MiB")
    print(f"check-out: {len(files)} files, {total / 2**20:.2f} MiB in all" + ("" if bad else ": fits"))
    for b in bad:
        print(f"check-out: {b}", file=sys.stderr)
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check", help="print GPU, torch and CUDA; with --model-json, print a batch size")
    p.add_argument("--allow-cpu", action="store_true", help="no GPU is fine (the dry run)")
    p.add_argument("--model-json", help="model config (JSON) to size the batch for")
    p.set_defaults(func=check)
    p = sub.add_parser("finish", help="export RUN's latest checkpoint as shards, evaluate, write metrics.json")
    p.add_argument("run")
    p.add_argument("out")
    p.add_argument("--work", help="folder for the eval JSONs (default: RUN's parent)")
    p.add_argument("--eval-data", help="prepared folder to evaluate on (default: the run's --data)")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    p.add_argument("--shard-mib", type=float, default=15.0)
    p.add_argument("--device", help="device for lakhnes eval (default: cuda when available)")
    p.add_argument("--name", default="lakhnes-large")
    p.add_argument("--command", help="the training command, for the model card")
    p.add_argument("--pretrain-run", action="append", default=[], help="run folder of an earlier stage (--init chain)")
    p.add_argument("--pretrain-command", action="append", default=[], help="its command, for the model card")
    p.add_argument("--hardware", default=os.environ.get("HARDWARE", "1x NVIDIA H200 (device tool)"))
    p.set_defaults(func=finish)
    p = sub.add_parser("check-out", help="check OUT against the device tool's limits on files brought back")
    p.add_argument("out")
    p.set_defaults(func=check_out)
    args = ap.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
