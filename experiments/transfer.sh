#!/usr/bin/env bash
# Transfer learning at the CPU `small` scale: does pre-training on heterogeneous MIDI help?
#
# Three arms with the same budget (STEPS optimizer steps x batch 8 x 128 tokens each),
# compared on NES-MDB test perplexity (`lakhnes eval ... --split test`):
#   a  NES-MDB only, no augmentation
#   b  NES-MDB with augmentation
#   c  pre-trained on the Lakh stand-in (multitrack_midi.tar.gz) for STEPS/2 steps, then
#      fine-tuned on NES-MDB with augmentation for STEPS/2 steps
# Runs at most two jobs at a time (arms a and b together, then arm c beside the evaluations), one torch thread each, niced. Re-running resumes: finished
# runs and evaluations are kept. Results: $WORK/transfer.md (table) and $WORK/eval/*.json.
#
# Usage: experiments/transfer.sh                      (defaults below)
#        STEPS=256 WORK=/tmp/transfer NESMDB=/tmp/prep/nesmdb experiments/transfer.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STEPS="${STEPS:-256}"
WORK="${WORK:-/tmp/transfer}"
LAKH_SRC="${LAKH_SRC:-$ROOT/../shared/data/multitrack_midi.tar.gz}"
NESMDB_SRC="${NESMDB_SRC:-$ROOT/../shared/data/nesmdb_midi.tar.gz}"
THREADS="${THREADS:-1}"
NICE="nice -n ${NICE:-10}"
HALF=$((STEPS / 2))
WARMUP=$((STEPS / 10 > 0 ? STEPS / 10 : 1))
HALF_WARMUP=$((WARMUP / 2 > 0 ? WARMUP / 2 : 1))
mkdir -p "$WORK/logs" "$WORK/eval" "$WORK/runs"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"

log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$WORK/logs/transfer.log" >&2; }

# ---------------------------------------------------------------- data
if [[ -z "${NESMDB:-}" ]]; then
  if [[ -f /tmp/prep/nesmdb/manifest.json ]]; then NESMDB=/tmp/prep/nesmdb; else NESMDB="$WORK/nesmdb"; fi
fi
if [[ ! -f "$NESMDB/manifest.json" ]]; then
  log "preparing NES-MDB -> $NESMDB"
  $NICE lakhnes prepare nesmdb "$NESMDB_SRC" -o "$NESMDB" -j 1 > "$WORK/logs/prepare_nesmdb.log" 2>&1
fi
LAKH="$WORK/lakh"
if [[ ! -f "$LAKH/manifest.json" ]]; then
  log "preparing the Lakh stand-in -> $LAKH"
  t0=$(date +%s)
  $NICE lakhnes prepare lakh "$LAKH_SRC" -o "$LAKH" -j 1 --quiet 2> "$WORK/logs/prepare_lakh.log"
  echo "$(( $(date +%s) - t0 ))" > "$WORK/logs/prepare_lakh.seconds"
fi

# ---------------------------------------------------------------- helpers
COMMON=(--config small --batch 8 --eval-every 100000 --eval-segments 20 --threads "$THREADS" --seed 0 --no-progress)

train() {  # train NAME DATA STEPS WARMUP [extra args...]
  local name=$1 data=$2 steps=$3 warmup=$4; shift 4
  if [[ -f "$WORK/runs/$name/summary.json" ]] && grep -q "\"step\": $steps," "$WORK/runs/$name/summary.json"; then
    log "$name: already trained"; return 0
  fi
  log "$name: training $steps steps on $(basename "$data") $*"
  local t0; t0=$(date +%s)
  $NICE lakhnes train "${COMMON[@]}" --data "$data" -o "$WORK/runs/$name" --steps "$steps" --warmup "$warmup" "$@" \
    > "$WORK/logs/$name.log" 2>&1
  echo "$(( $(date +%s) - t0 ))" > "$WORK/runs/$name/wall_seconds"
  log "$name: done in $(cat "$WORK/runs/$name/wall_seconds") s"
}

evaluate() {  # evaluate NAME RUN
  local name=$1 run=$2
  [[ -f "$WORK/eval/$name.json" ]] && { log "$name: already evaluated"; return 0; }
  log "$name: evaluating on NES-MDB test"
  local t0; t0=$(date +%s)
  $NICE lakhnes eval "$run" --data "$NESMDB" --split test --threads "$THREADS" --results '' \
    --name "$name" --json "$WORK/eval/$name.json" > "$WORK/logs/eval_$name.log" 2>&1
  echo "$(( $(date +%s) - t0 ))" > "$WORK/eval/$name.seconds"
  log "$name: $(tail -1 "$WORK/logs/eval_$name.log")"
}

# ---------------------------------------------------------------- phase 1: arms a and b side by side
T0=$(date +%s)
train a_nesmdb "$NESMDB" "$STEPS" "$WARMUP" --no-augment &
PA=$!
train b_nesmdb_aug "$NESMDB" "$STEPS" "$WARMUP" --augment &
PB=$!
wait "$PA"
wait "$PB"

# ---------------------------------------------------------------- phase 2: arm c beside the evaluations
# (an evaluation of the whole test split costs about as much as a training arm on this machine)
(
  train c_pretrain_lakh "$LAKH" "$HALF" "$HALF_WARMUP" --augment
  train c_finetune "$NESMDB" "$HALF" "$HALF_WARMUP" --augment --init "$WORK/runs/c_pretrain_lakh"
) &
PC=$!
( evaluate a_nesmdb "$WORK/runs/a_nesmdb"; evaluate b_nesmdb_aug "$WORK/runs/b_nesmdb_aug" ) &
PE=$!
wait "$PC"
evaluate c_lakh_then_nesmdb_aug "$WORK/runs/c_finetune"
wait "$PE"
echo "$(( $(date +%s) - T0 ))" > "$WORK/logs/total.seconds"

python "$ROOT/experiments/transfer_table.py" "$WORK" | tee "$WORK/transfer.md"
