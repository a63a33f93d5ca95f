#!/usr/bin/env bash
# Which peak learning rate trains fastest per step? A small CPU measurement that sets the LR of
# experiments/gpu/run.sh (its header has the reasoning and the table this prints).
#
# Two widths of the post-norm Transformer-XL (4 layers, head size 32: d_model 128 and the `small`
# preset's 256), batch 8 x 128 tokens, STEPS optimizer steps each (warmup STEPS/10, cosine to the
# end), NES-MDB with the paper's augmentation, one torch thread, niced; read out: valid NLL on the
# first 40 segments of 8 x 128 tokens, and the mean train loss over the last 50 steps.
#
# Usage: NESMDB=data/nesmdb experiments/gpu/lr_sweep.sh          (WORK=/tmp/lr_sweep STEPS=250)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
NESMDB="${NESMDB:-$ROOT/data/nesmdb}"
WORK="${WORK:-/tmp/lr_sweep}"
STEPS="${STEPS:-250}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$WORK"
run() {  # run NAME LR [--set ...]
  local name=$1 lr=$2; shift 2
  [[ -f "$WORK/$name/summary.json" ]] && return 0
  nice -n 10 python -m lakhnes train --config small --data "$NESMDB" -o "$WORK/$name" --steps "$STEPS" \
    --warmup $((STEPS / 10)) --lr "$lr" --batch 8 --eval-every "$STEPS" --eval-segments 40 --threads 1 \
    --seed 0 --no-progress "$@" > "$WORK/$name.log" 2>&1
}
for lr in 5e-4 1e-3 2e-3 4e-3; do run "d256_lr$lr" "$lr"; done
for lr in 1e-3 2e-3 4e-3 8e-3; do run "d128_lr$lr" "$lr" --set d_model=128 --set n_head=4 --set d_inner=512; done
python - "$WORK" <<'PY'
import csv, json, sys
from pathlib import Path
print("| run | peak LR | valid NLL (40 segments) | train loss, last 50 steps | train s |")
print("|---|---|---|---|---|")
for d in sorted((p for p in Path(sys.argv[1]).glob("d*_lr*") if p.is_dir()), key=lambda p: (p.name.split("_")[0], float(p.name.split("lr")[1]))):
    if not (d / "summary.json").exists():
        continue
    rows = list(csv.DictReader(open(d / "log.csv")))
    tr = [float(r["train_loss"]) for r in rows if r["train_loss"]][-5:]
    va = [float(r["valid_loss"]) for r in rows if r["valid_loss"]]
    s = json.loads((d / "summary.json").read_text())
    print(f"| {d.name} | {d.name.split('lr')[1]} | {va[-1]:.4f} | {sum(tr) / len(tr):.4f} | {s['elapsed_s']} |")
PY
