#!/usr/bin/env bash
# The best Transformer-XL recipe at the `small` scale on a 2-core CPU, by measurement (issue 12).
#
# Every arm trains for the same CPU budget (MINUTES of its own CPU time in training steps, one torch
# thread, niced: `--clock cpu`, so other work on the machine does not shorten an arm; the cosine
# learning-rate schedule spans that time: `--schedule time`), two arms side by side, then each is scored on the WHOLE valid split with the LakhNES protocol (`lakhnes eval
# --split valid`: 10 streams, segments of 128, memory 896). One factor changes per arm:
#
#   full-data arms (the NES-MDB train split):
#     base        the `small` preset before this experiment: 4 layers x 256, 8 heads, dropout 0.1,
#                 lr 5e-4, memory 128, post-norm, tied embeddings, LakhNES augmentation
#     h4          4 heads of 64 instead of 8 of 32 (half the attention-score memory traffic)
#     fast        h4 + dropout 0 (the `small` preset since, untied since the untied arms)  (the arms
#                 below change one thing from it; every arm names tie_weights, so the preset's
#                 default does not change what an arm means)
#     lr1e-3      fast, peak lr 1e-3        lr2e-3   fast, peak lr 2e-3
#     l6          6 layers x 256            w192x8   8 layers x 192 (d_inner 768)
#     mem256      training memory 256       prenorm  pre-norm blocks     untied  untied output matrix
#     lr3e-4      fast, peak lr 3e-4        bf16     fast in bf16 autocast (what the long run trains in)
#     bf16-untied bf16 with an untied output matrix (does untying still pay at twice the steps?)
#     fast-s1     fast with seed 1 (the noise between two runs of one recipe; likewise sub-aug-s1,
#                 sub-noaug-s1)
#   data-limited proxy arms (1/16 of the train songs, so the budget covers ~3 epochs, as the long
#   run covers the full split): which augmentation and dropout pay once songs repeat
#     sub-noaug   no augmentation           sub-aug      LakhNES' four (voice drop p 0.5)
#     sub-nodrop  augmentation without voice dropping    sub-drop2    voice drop p 0.2
#     sub-aug-d1  LakhNES' four + dropout 0.1
#
# Arms train in float32 (`--no-bf16`), as the first arms did before bf16 autocast existed; BF16=--bf16
# trains them in bf16. Tokens per CPU-second depend on the CPU: compare arms run on one machine.
#
# Re-running resumes: finished arms and evaluations are kept. Results: $WORK/recipe.md
# (experiments/recipe_table.py), run folders $WORK/runs/*, evaluations $WORK/eval/*.json.
#
# Usage: experiments/recipe.sh                         (15 minutes per arm)
#        MINUTES=0.2 WORK=/tmp/recipe ARMS="base fast" experiments/recipe.sh   (a smoke run)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MINUTES="${MINUTES:-15}"
WORK="${WORK:-$ROOT/runs/recipe}"
NESMDB="${NESMDB:-$ROOT/data/nesmdb}"
NESMDB_SRC="${NESMDB_SRC:-$ROOT/../shared/data/nesmdb_midi.tar.gz}"
NICE="nice -n ${NICE:-0}"
mkdir -p "$WORK/logs" "$WORK/eval" "$WORK/runs"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$WORK/logs/recipe.log" >&2; }

if [[ ! -f "$NESMDB/manifest.json" ]]; then
  log "preparing NES-MDB -> $NESMDB"
  $NICE lakhnes prepare nesmdb "$NESMDB_SRC" -o "$NESMDB" > "$WORK/logs/prepare_nesmdb.log" 2>&1
fi
SUB="$WORK/nesmdb_sub16"
if [[ ! -f "$SUB/manifest.json" ]]; then
  log "writing the 1/16 train subset -> $SUB"
  python "$ROOT/experiments/subset_split.py" "$NESMDB" "$SUB" --every 16
fi

FAST=(--set n_head=4 --set dropout=0 --set tie_weights=true)  # tied, as when the arms ran
declare -A ARM_ARGS=(
  [base]="--set n_head=8 --set dropout=0.1 --set tie_weights=true"
  [h4]="--set n_head=4 --set dropout=0.1 --set tie_weights=true"
  [fast]="${FAST[*]}"
  [lr1e-3]="${FAST[*]} --lr 1e-3"
  [lr2e-3]="${FAST[*]} --lr 2e-3"
  [lr3e-4]="${FAST[*]} --lr 3e-4"
  [bf16]="${FAST[*]} --bf16"
  [l6]="${FAST[*]} --set n_layer=6"
  [w192x8]="${FAST[*]} --set n_layer=8 --set d_model=192 --set d_inner=768"
  [mem256]="${FAST[*]} --mem-len 256"
  [prenorm]="${FAST[*]} --set pre_norm=true"
  [untied]="${FAST[*]} --set tie_weights=false"
  [bf16-untied]="${FAST[*]} --bf16 --set tie_weights=false"
  [sub-noaug]="${FAST[*]} --no-augment"
  [sub-aug]="${FAST[*]}"
  [sub-nodrop]="${FAST[*]} --aug-drop 0"
  [sub-drop2]="${FAST[*]} --aug-drop 0.2"
  [sub-aug-d1]="--set n_head=4 --set dropout=0.1 --set tie_weights=true"
  [fast-s1]="${FAST[*]} --seed 1"
  [sub-aug-s1]="${FAST[*]} --seed 1"
  [sub-noaug-s1]="${FAST[*]} --no-augment --seed 1"
)
# most telling first: a later pair can be left out when the machine's time runs short
ARMS="${ARMS:-base h4 fast lr1e-3 sub-aug sub-noaug sub-nodrop lr2e-3 l6 mem256 sub-drop2 sub-aug-d1 prenorm untied w192x8 bf16 lr3e-4}"

train_arm() {  # train_arm NAME
  local name=$1 data="$NESMDB"
  [[ $name == sub-* ]] && data="$SUB"
  if [[ -f "$WORK/runs/$name/summary.json" ]] && grep -q '"stopped": "time"' "$WORK/runs/$name/summary.json"; then
    log "$name: already trained"; return 0
  fi
  log "$name: training $MINUTES min on $(basename "$data") ${ARM_ARGS[$name]}"
  # shellcheck disable=SC2086
  $NICE lakhnes train --config small --data "$data" -o "$WORK/runs/$name" --threads 1 --seed 0 \
    --schedule time --clock cpu --max-minutes "$MINUTES" --steps 100000000 --warmup 200 --eval-every 100000000 \
    --no-progress ${BF16:---no-bf16} ${ARM_ARGS[$name]} > "$WORK/logs/$name.train.log" 2>&1
  log "$name: $(tr -d '\n ' < "$WORK/runs/$name/summary.json")"
}

eval_arm() {  # eval_arm NAME
  local name=$1 out="$WORK/eval/$1.valid.json"
  [[ -f $out ]] && { log "$name: already evaluated"; return 0; }
  $NICE lakhnes eval "$WORK/runs/$name" --data "$NESMDB" --split valid --threads 1 --results "" \
    --json "$out" --name "$name" > "$WORK/logs/$name.eval.log" 2>&1
  log "$name: $(tail -1 "$WORK/logs/$name.eval.log")"
}

set -- $ARMS
while (($#)); do
  a=$1; b=${2:-}
  shift; [[ -n $b ]] && shift
  train_arm "$a" & pa=$!
  if [[ -n $b ]]; then train_arm "$b" & pb=$!; wait $pb; fi
  wait $pa
  eval_arm "$a" & ea=$!
  if [[ -n $b ]]; then eval_arm "$b"; fi
  wait $ea
done
python "$ROOT/experiments/recipe_table.py" "$WORK" | tee "$WORK/recipe.md"
