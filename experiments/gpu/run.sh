#!/usr/bin/env bash
# One GPU call: train lakhnes' `large` Transformer-XL on NES-MDB, evaluate it, bring it back.
#
# The device call (device tool `run`, one NVIDIA H200; data/nesmdb is gitignored, so it is carried):
#
#     run(command="experiments/gpu/run.sh", carry=["data/nesmdb"], timeout_s=570)
#
# then give the machine back, and ship what came back: `python experiments/gpu/ship.py DIR/model`
# (DIR: the folder the tool names in files_at). Before that, here: `lakhnes prepare nesmdb
# ../shared/data/nesmdb_midi.tar.gz -o data/nesmdb` (4 s; 19 MB of token shards travel).
# CPU rehearsal of this exact script (tests/test_gpu_run.py runs it): experiments/gpu/run.sh --dry-run
#
# What it does (each step is the project's own code: `python -m lakhnes train|eval`, src/ on PYTHONPATH,
# since the device has no package registry; it has no symusic/tqdm/fastapi and needs none of them):
#   1. GPU check: name, memory, torch, CUDA (experiments/gpu/tools.py check); sizes the batch.
#   2. `lakhnes train`: bf16 autocast, fused AdamW, TF32 (lakhnes/training does these on CUDA), the next
#      epoch's augmentation built in a helper process, eager mode (COMPILE=1: torch.compile, its
#      compile time inside the budget); cosine decay over the *time* budget (`--schedule time
#      --max-minutes M`, M computed so that the whole call ends by BUDGET_S seconds), and a
#      SIGTERM at the hard limit (the loop stops after its step and checkpoints).
#   3. tools.py finish: the last checkpoint (the end of the cosine; or the in-training best, if
#      `lakhnes eval` on the whole valid split prefers it) as float16 safetensors shards of
#      <= 15 MiB + index + config.json (model card); `lakhnes eval` of those shards (read back as
#      float32) on valid and test, LakhNES protocol, on the GPU; metrics.json.
#   4. tools.py check-out: $OUT fits what the tool brings back (<= 8 files, <= 16 MiB each, <= 64 MiB).
# $OUT afterwards: model/config.json, model/model.safetensors.index.json, model/model-0000K-of-0000N
# .safetensors (4 shards for 27.6 M parameters), log.txt (this script's output + the training
# log.csv), metrics.json (tokens/s, model FLOPs utilisation, PPLs, the FLOPs formula): 8 files.
#
# Model and budget. 8 layers, d_model 512, 8 heads of 64, d_inner 2048, segments of 512 with a
# memory of 512 (the paper's model with 8 of its 12 layers): 27,624,567 parameters, 52.7 MiB as
# float16; 254 MFLOP per trained token (tools.py's formula), so 300,000 tokens/s is 7.7 % of the
# H200's 989.5 TFLOP/s bf16 dense peak. Batch 64 x 512 = 32,768 tokens per step (tools.py
# suggest_batch estimates ~30 GB of activations for it, of the card's 141). Of the 555 s, about
# 410 s train (the rest: start, evaluations, checkpoints, export); at 300,000-600,000 tokens/s
# that is 120-250 M tokens: 15-29 epochs of NES-MDB's 8.4 M train tokens, with the paper's
# augmentation on (fresh transpositions, tempo changes and voice drops
# every epoch): the paper's 12-layer 41 M model would see fewer epochs in the same minutes and
# its weights would not come back (8 files x 16 MiB), hence 8 layers.
#
# Learning rate. The paper's 2e-5 over a day of 4 GPUs does not fit minutes. Measured here on
# CPU (experiments/gpu/lr_sweep.sh: 250 steps of 8 x 128 tokens each, warmup 25, cosine, one
# thread, post-norm Transformer-XL of 4 layers with head size 32; valid NLL on 40 segments):
#     peak LR:                 5e-4     1e-3     2e-3     4e-3     8e-3
#     d_model 128 (0.94 M)       -      5.310    4.858    5.494    5.519
#     d_model 256 (3.58 M)     4.828    4.764    4.842    5.518      -
#   (mean train loss over the last 50 steps, same order: d128 5.156 4.671 5.499 5.486;
#    d256 4.672 4.422 4.438 5.499). Above the best rate, both widths fall off a cliff (~5.5).
# The best rate halves when the width doubles (2e-3 at d_model 128, 1e-3 at 256): the 1/width
# rule for Adam, which extrapolates to 5e-4 for d_model 512 at these 1,024-token batches. The
# GPU batch is 32 times larger (32,768 tokens), which tolerates a higher rate (by up to
# sqrt(32) = 5.7 by the square-root rule for Adam: a lead, not measured here), while a run of
# thousands of steps wants a lower one than 250 steps did, and the post-norm Transformer-XL
# falls off a cliff just above its best rate (the 4e-3 column). So: 1e-3 (twice the width-scaled
# 5e-4, well inside the square-root allowance), 300 warmup steps (~10 M tokens), gradient clip
# 0.25 as every lakhnes run; the cosine over the time budget ends at 2 % of it.
#
# Settings (environment): OUT (default runs/gpu_out), DATA (data/nesmdb), WORK (a new temp
# folder), BUDGET_S (555: seconds for the whole call), LR, WARMUP, BATCH (default: from the card),
# COMPILE (0|1), DTYPE (float16|bfloat16), LAKH (a prepared Lakh folder: pre-train on it for
# LAKH_SHARE (0.3) of the training time first, then fine-tune on DATA; carry it too, e.g. a half
# of it made by `python experiments/subset_split.py data/lakh data/lakh_half --every 2`).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
T0=$(date +%s)
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
if [[ $# -gt 0 ]]; then echo "usage: experiments/gpu/run.sh [--dry-run]" >&2; exit 2; fi

PY="${PYTHON:-python3}"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-$ROOT/runs/gpu_out}"
DATA="${DATA:-$ROOT/data/nesmdb}"
WORK="${WORK:-$(mktemp -d /tmp/lakhnes_gpu.XXXXXX)}"
LAKH="${LAKH:-}"
LAKH_SHARE="${LAKH_SHARE:-0.3}"
COMPILE="${COMPILE:-0}"
DTYPE="${DTYPE:-float16}"
TOOLS=("$PY" "$ROOT/experiments/gpu/tools.py")
if [[ $DRY == 1 ]]; then  # CPU rehearsal: tiny model, a few steps, the same files
  export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1
  BUDGET_S="${BUDGET_S:-120}"; POST_S=30; TRAIN_OVERHEAD_S=20
  BASE_ARGS=(--config tiny --steps 6 --threads 1); SHAPE_ARGS=()
  LR="${LR:-3e-3}"; WARMUP="${WARMUP:-2}"; BATCH="${BATCH:-2}"
  EVAL_ARGS=(--eval-every 3 --eval-segments 2 --patience 0)
  SHARD_MIB="${SHARD_MIB:-0.04}"; CHECK=(--allow-cpu)
  MODEL_JSON='{"n_layer": 2, "n_head": 2, "d_model": 32, "d_head": 16, "d_inner": 64, "tgt_len": 16, "mem_len": 16}'
  HARDWARE="CPU dry run"
else
  BUDGET_S="${BUDGET_S:-555}"; POST_S=75; TRAIN_OVERHEAD_S=60
  BASE_ARGS=(--config paper --steps 1000000000); SHAPE_ARGS=(--set n_layer=8)
  LR="${LR:-1e-3}"; WARMUP="${WARMUP:-300}"; BATCH="${BATCH:-}"
  EVAL_ARGS=(--eval-every 1500 --eval-segments 40 --patience 0)
  SHARD_MIB="${SHARD_MIB:-15}"; CHECK=()
  MODEL_JSON='{"n_layer": 8, "n_head": 8, "d_model": 512, "d_head": 64, "d_inner": 2048, "tgt_len": 512, "mem_len": 512}'
  HARDWARE="${HARDWARE:-1x NVIDIA H200 (device tool)}"
fi
export HARDWARE
mkdir -p "$OUT" "$WORK"

left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }
minutes() { awk -v s="$1" 'BEGIN { m = s / 60; if (m < 0.02) m = 0.02; printf "%.2f", m }'; }
latest() { "$PY" -c 'import json,sys; from pathlib import Path; r=Path(sys.argv[1]); print(r / json.loads((r / "latest.json").read_text())["path"])' "$1"; }

train() {  # train RUN SECONDS ARGS...: lakhnes train with a time budget and a hard stop
  local run=$1 secs=$2; shift 2
  local cmd=("$PY" -m lakhnes train -o "$run" --schedule time --max-minutes "$(minutes "$((secs - TRAIN_OVERHEAD_S))")"
             --lr "$LR" --warmup "$WARMUP" --batch "$BATCH" "${EVAL_ARGS[@]}" --seed 0 --no-progress "$@")
  if [[ $COMPILE == 1 ]]; then cmd+=(--compile); fi
  echo "+ ${cmd[*]}"
  echo "${cmd[*]}" > "$run.command"
  local rc=0
  timeout -s TERM -k 30 "$secs" "${cmd[@]}" || rc=$?
  if [[ $rc != 0 && ! -f "$run/latest.json" && $COMPILE == 1 ]]; then
    echo "train: failed with --compile before its first checkpoint (exit $rc); again without it"
    COMPILE=0
    train "$run.eager" "$(( $(left) - POST_S ))" "$@"
    return
  fi
  [[ -f "$run/latest.json" ]] || { echo "train: no checkpoint in $run (exit $rc)" >&2; return 1; }
  echo "$run" > "$WORK/final_run"
}

SMI=""
stop_smi() { if [[ -n "$SMI" ]]; then kill "$SMI" 2> /dev/null || true; SMI=""; fi; }

main() {
  set -e
  trap stop_smi EXIT
  echo "== lakhnes GPU run $(date -u +%FT%TZ), budget ${BUDGET_S} s, dry run: $DRY"
  echo "== 1. check"
  if [[ $DRY == 0 ]] && command -v nvidia-smi > /dev/null; then nvidia-smi -L; fi
  local batch
  batch=$("${TOOLS[@]}" check "${CHECK[@]}" --model-json "$MODEL_JSON")
  BATCH="${BATCH:-$batch}"
  [[ -f "$DATA/manifest.json" ]] || { echo "no prepared data in $DATA (lakhnes prepare nesmdb ...; carry it)" >&2; return 1; }
  echo "data: $DATA; batch $BATCH; lr $LR; warmup $WARMUP; compile $COMPILE; $(( $(left) )) s left"

  echo "== 2. train"
  if [[ $DRY == 0 ]] && command -v nvidia-smi > /dev/null; then  # GPU load and memory every 30 s
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv -l 30 &
    SMI=$!
  fi
  local secs=$(( $(left) - POST_S )) pre=()
  if [[ -n "$LAKH" ]]; then
    local s1
    s1=$(awk -v s="$secs" -v f="$LAKH_SHARE" 'BEGIN { printf "%d", s * f }')
    train "$WORK/lakh" "$s1" --data "$LAKH" "${BASE_ARGS[@]}" "${SHAPE_ARGS[@]}"
    local first init
    first=$(cat "$WORK/final_run")
    pre=(--pretrain-run "$first" --pretrain-command "$(cat "$first.command")")
    init=$(latest "$first")
    train "$WORK/nesmdb" "$(( $(left) - POST_S ))" --data "$DATA" --init "$init" "${BASE_ARGS[@]}"
  else
    train "$WORK/nesmdb" "$secs" --data "$DATA" "${BASE_ARGS[@]}" "${SHAPE_ARGS[@]}"
  fi
  stop_smi
  local run
  run=$(cat "$WORK/final_run")

  echo "== 3. export + evaluate ($(left) s left)"
  "${TOOLS[@]}" finish "$run" "$OUT" --work "$WORK" --dtype "$DTYPE" --shard-mib "$SHARD_MIB" \
    --command "$(cat "$run.command")" "${pre[@]}"
  echo "== done in $(( $(date +%s) - T0 )) s"
}

set +e
main 2>&1 | tee "$OUT/log.txt"
rc=${PIPESTATUS[0]}
set -e
run=$(cat "$WORK/final_run" 2> /dev/null || true)
if [[ -n "$run" && -f "$run/log.csv" ]]; then
  { echo; echo "== training log: $run/log.csv"; cat "$run/log.csv"; } >> "$OUT/log.txt"
fi
echo "== 4. what comes back"
"${TOOLS[@]}" check-out "$OUT" || rc=1
exit "$rc"
