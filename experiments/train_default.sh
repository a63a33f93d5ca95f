#!/usr/bin/env bash
# Train the default (shipped) model: the recipe that won experiments/recipe.sh, trained long on
# both cores (issue 12), then scored and shipped if it beats the shipped model.
#
#   1. (PRE_MINUTES > 0) pre-training on the Lakh stand-in (`lakhnes prepare lakh`), cosine over
#      PRE_MINUTES of wall time;
#   2. NES-MDB train split with augmentation (init: stage 1's model), cosine over MINUTES of wall
#      time, validation on 100 segments every 1,000 steps (the best checkpoint is kept);
#   3. whole valid and test splits scored (LakhNES protocol);
#   4. shipped into src/lakhnes/assets/default (experiments/ship_model.py) when its test PPL is
#      lower than the shipped model's; song statistics are re-measured by the caller
#      (benchmarks/bench_songs.py) before committing.
# Everything resumes: re-running continues the stage in progress (runs/default/state tells which),
# with the settings the run started with (runs/default/settings.env; the environment overrides them).
#
# Usage: experiments/train_default.sh
#        STOP_AFTER=pretrain experiments/train_default.sh    (stage 1 only; run again for the rest)
#        PRE_MINUTES=0 MINUTES=1 WORK=/tmp/td experiments/train_default.sh     (a smoke run)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-$ROOT/runs/default}"
NESMDB="${NESMDB:-$ROOT/data/nesmdb}"
LAKH="${LAKH:-$ROOT/data/lakh}"
NESMDB_SRC="${NESMDB_SRC:-$ROOT/../shared/data/nesmdb_midi.tar.gz}"
LAKH_SRC="${LAKH_SRC:-$ROOT/../shared/data/multitrack_midi.tar.gz}"
SHIPPED="${SHIPPED:-$ROOT/src/lakhnes/assets/default}"
# a resumed run keeps the settings it started with (runs/default/settings.env), unless overridden
if [[ -f "$WORK/settings.env" ]]; then
  while IFS="=" read -r k v; do if [[ -n $k && -z ${!k+x} ]]; then export "$k=$v"; fi; done < "$WORK/settings.env"
fi
PRE_MINUTES="${PRE_MINUTES:-40}"
MINUTES="${MINUTES:-140}"
LR="${LR:-5e-4}"
PRE_LR="${PRE_LR:-$LR}"
MODEL_ARGS="${MODEL_ARGS:---set n_head=4 --set dropout=0}"
AUG_ARGS="${AUG_ARGS:-}"
THREADS="${THREADS:-2}"
NICE="nice -n ${NICE:-5}"
mkdir -p "$WORK"
[[ -f "$WORK/settings.env" ]] || for k in PRE_MINUTES MINUTES LR PRE_LR MODEL_ARGS AUG_ARGS; do
  printf '%s=%s\n' "$k" "${!k}"; done > "$WORK/settings.env"
log() { echo "[$(date '+%F %T')] $*" | tee -a "$WORK/train_default.log" >&2; }
finished() { [[ -f "$1/summary.json" ]] && grep -q '"stopped": "time"' "$1/summary.json"; }

[[ -f "$NESMDB/manifest.json" ]] || $NICE lakhnes prepare nesmdb "$NESMDB_SRC" -o "$NESMDB" > /dev/null
echo running > "$WORK/state"

INIT=()
STAGE_ARGS=()
if awk "BEGIN { exit !($PRE_MINUTES > 0) }"; then
  [[ -f "$LAKH/manifest.json" ]] || $NICE lakhnes prepare lakh "$LAKH_SRC" -o "$LAKH" -j 1 --quiet 2> /dev/null
  # shellcheck disable=SC2206
  PRE_CMD=(lakhnes train --config small --data "$LAKH" -o "$WORK/lakh" --lr "$PRE_LR" --warmup 200
           --schedule time --max-minutes "$PRE_MINUTES" --steps 100000000 --eval-every 2000 --eval-segments 40
           --threads "$THREADS" --seed 0 --no-progress $MODEL_ARGS)
  if ! finished "$WORK/lakh"; then
    log "stage 1: pre-training on the Lakh stand-in for $PRE_MINUTES min: ${PRE_CMD[*]}"
    $NICE "${PRE_CMD[@]}" >> "$WORK/lakh.log" 2>&1
  fi
  INIT=(--init "$WORK/lakh")
  STAGE_ARGS=(--stage-run "$WORK/lakh" --stage "${PRE_CMD[*]/#$ROOT\//}")
  MODEL_ARGS=""  # the --init model brings its shape
  if [[ ${STOP_AFTER:-} == pretrain ]]; then log "stopping after stage 1 (STOP_AFTER=pretrain)"; exit 0; fi
fi

# shellcheck disable=SC2206
CMD=(lakhnes train --config small --data "$NESMDB" -o "$WORK/nesmdb" "${INIT[@]}" --lr "$LR" --warmup 200
     --schedule time --max-minutes "$MINUTES" --steps 100000000 --eval-every 1000 --eval-segments 100
     --threads "$THREADS" --seed 0 --no-progress $MODEL_ARGS $AUG_ARGS)
if ! finished "$WORK/nesmdb"; then
  log "stage 2: NES-MDB for $MINUTES min: ${CMD[*]}"
  $NICE "${CMD[@]}" >> "$WORK/nesmdb.log" 2>&1
fi
log "stage 2: $(tr -d '\n ' < "$WORK/nesmdb/summary.json")"

for split in valid test; do
  [[ -f $WORK/$split.json ]] || $NICE lakhnes eval "$WORK/nesmdb" --data "$NESMDB" --split "$split" \
    --threads "$THREADS" --results "" --json "$WORK/$split.json" --name default >> "$WORK/eval.log" 2>&1
  log "$split: $(python -c "import json,sys; print(round(json.load(open(sys.argv[1]))['ppl'], 3))" "$WORK/$split.json")"
done

old=$(python - "$SHIPPED" <<'EOF'
import json, sys
card = json.load(open(f"{sys.argv[1]}/config.json")).get("card", {})
print(card.get("eval", {}).get("test", {}).get("ppl", "inf"))
EOF
)
new=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['ppl'])" "$WORK/test.json")
if python -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$new" "$old"; then
  python "$ROOT/experiments/ship_model.py" "$WORK/nesmdb" "${STAGE_ARGS[@]}" --stage-run "$WORK/nesmdb" \
    --stage "${CMD[*]/#$ROOT\//}" --valid "$WORK/valid.json" --test "$WORK/test.json" --to "$SHIPPED"
  log "shipped: test PPL $new < $old"
else
  log "kept the shipped model: test PPL $new >= $old"
fi
echo done > "$WORK/state"
