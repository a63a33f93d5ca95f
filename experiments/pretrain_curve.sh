#!/usr/bin/env bash
# The LakhNES paper's Figure 3 at CPU scale (issue 15): does more pre-training on heterogeneous
# MIDI give a better model after the same fine-tuning on NES-MDB?
#
# One pre-training run on the Lakh stand-in (`lakhnes prepare lakh` of multitrack_midi.tar.gz),
# one cosine schedule over 4 units (UNIT optimizer steps of batch 8 x 128 tokens each), with its
# checkpoints after 1, 2 and 4 units kept. Each of 0 (no pre-training: a fresh model), 1, 2, 4
# units is then fine-tuned on NES-MDB with augmentation for the same FT_STEPS (fresh optimizer,
# warmup, cosine) and scored on the NES-MDB test split with the LakhNES protocol (`lakhnes eval
# --split test`). The model shape is the `small` preset changed by MODEL_ARGS (default: 4 heads, no dropout).
#
# Re-running resumes: finished stages are kept. Results: $WORK/pretrain_curve.md and
# docs/pretrain_curve.png (experiments/pretrain_curve_plot.py).
#
# Usage: experiments/pretrain_curve.sh
#        UNIT=20 FT_STEPS=20 WORK=/tmp/pc experiments/pretrain_curve.sh     (a smoke run)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
UNIT="${UNIT:-500}"
FT_STEPS="${FT_STEPS:-1000}"
WORK="${WORK:-$ROOT/runs/pretrain_curve}"
NESMDB="${NESMDB:-$ROOT/data/nesmdb}"
LAKH="${LAKH:-$ROOT/data/lakh}"
NESMDB_SRC="${NESMDB_SRC:-$ROOT/../shared/data/nesmdb_midi.tar.gz}"
LAKH_SRC="${LAKH_SRC:-$ROOT/../shared/data/multitrack_midi.tar.gz}"
MODEL_ARGS="${MODEL_ARGS:---set n_head=4 --set dropout=0}"
LR="${LR:-5e-4}"
PLOT="${PLOT:-$ROOT/docs/pretrain_curve.png}"
NICE="nice -n ${NICE:-10}"
PRE_THREADS="${PRE_THREADS:-2}"  # torch threads of the pre-training run (1 beside other work)
mkdir -p "$WORK/logs" "$WORK/eval" "$WORK/runs"

log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$WORK/logs/pretrain_curve.log" >&2; }
done_at() { [[ -f "$1/summary.json" ]] && grep -q "\"step\": $2," "$1/summary.json"; }

[[ -f "$NESMDB/manifest.json" ]] || $NICE lakhnes prepare nesmdb "$NESMDB_SRC" -o "$NESMDB" > "$WORK/logs/prep_nesmdb.log"
[[ -f "$LAKH/manifest.json" ]] || $NICE lakhnes prepare lakh "$LAKH_SRC" -o "$LAKH" -j 1 --quiet 2> "$WORK/logs/prep_lakh.log"

# ---------------------------------------------------------------- pre-training (both cores)
PRE="$WORK/runs/pretrain"
TOTAL=$((4 * UNIT))
if ! done_at "$PRE" "$TOTAL"; then
  log "pre-training $TOTAL steps on the Lakh stand-in (unit $UNIT steps) $MODEL_ARGS"
  # shellcheck disable=SC2086
  $NICE lakhnes train --config small --data "$LAKH" -o "$PRE" --steps "$TOTAL" --warmup $((UNIT / 5 > 0 ? UNIT / 5 : 1)) \
    --lr "$LR" --eval-every "$UNIT" --eval-segments 20 --keep-last 0 --threads "$PRE_THREADS" --seed 0 --no-progress \
    $MODEL_ARGS > "$WORK/logs/pretrain.log" 2>&1
fi
log "pre-training: $(tr -d '\n ' < "$PRE/summary.json")"

# ---------------------------------------------------------------- fine-tuning (two at a time, one core each)
finetune() {  # finetune UNITS
  local u=$1 run="$WORK/runs/ft_$1"
  done_at "$run" "$FT_STEPS" && { log "ft_$u: already trained"; return 0; }
  local init=()
  if ((u > 0)); then init=(--init "$PRE/checkpoints/step_$(printf %08d $((u * UNIT)))"); fi
  log "ft_$u: fine-tuning $FT_STEPS steps on NES-MDB after $u units of pre-training"
  # shellcheck disable=SC2086
  $NICE lakhnes train --config small --data "$NESMDB" -o "$run" "${init[@]}" --steps "$FT_STEPS" \
    --warmup $((FT_STEPS / 10 > 0 ? FT_STEPS / 10 : 1)) --lr "$LR" --eval-every "$FT_STEPS" --eval-segments 20 \
    --threads 1 --seed 0 --no-progress $( ((u > 0)) || echo "$MODEL_ARGS") > "$WORK/logs/ft_$u.log" 2>&1
}
score() {  # score UNITS
  local out="$WORK/eval/ft_$1.test.json"
  [[ -f $out ]] && return 0
  $NICE lakhnes eval "$WORK/runs/ft_$1" --data "$NESMDB" --split test --threads 1 --results "" --json "$out" \
    --name "pretrain $1 units" > "$WORK/logs/ft_$1.eval.log" 2>&1
  log "ft_$1: $(tail -1 "$WORK/logs/ft_$1.eval.log")"
}
for pair in "0 1" "2 4"; do
  set -- $pair
  finetune "$1" & p=$!; finetune "$2"; wait $p
  score "$1" & p=$!; score "$2"; wait $p
done
python "$ROOT/experiments/pretrain_curve_plot.py" "$WORK" --unit "$UNIT" --ft-steps "$FT_STEPS" --plot "$PLOT" \
  | tee "$WORK/pretrain_curve.md"
