#!/usr/bin/env bash
# Keep improving the shipped model whenever the CPU would otherwise idle (issue 12).
#
# Each stage continues training the shipped model (src/lakhnes/assets/default) on NES-MDB:
#   - a run folder left on the machine comes first: an unfinished long run (experiments/
#     train_default.sh, runs/default) is resumed and shipped by that script; an unfinished stage
#     of this script (runs/continue_default/stage_NNN) is resumed exactly where it stopped;
#   - otherwise a new stage starts from the shipped weights: fresh AdamW, a short warm-up (WARMUP
#     steps), peak lr LR, cosine over MINUTES of this process's CPU time (`--clock cpu`, one
#     thread, nice 19, so it only takes what the machine leaves idle).
# After a stage the whole valid split is scored (LakhNES protocol); the stage replaces the shipped
# model only when its valid perplexity is lower (then the test split is scored too and the model
# card re-written with the stage appended: experiments/ship_model.py). Git is left to you.
# SHIP=0 never touches the shipped model: each stage becomes a candidate (stage_NNN/candidate, a packaged
# model with its card and caches fitted, both splits scored), and a new stage trains on from the newest
# candidate in WORK. Perplexity alone does not make better songs: check a candidate with
# `python benchmarks/bench_realism.py -m WORK/stage_NNN/candidate` before shipping it by hand.
#
# Usage: experiments/continue_default.sh                 (one 60-minute stage)
#        STAGES=0 nohup experiments/continue_default.sh &   (stage after stage until stopped)
#        MINUTES=0.2 STAGES=1 WORK=/tmp/cd experiments/continue_default.sh   (a smoke run)
#        BF16=1 experiments/continue_default.sh   (bf16 autocast: 1.8x on CPUs with avx512_bf16)
#        TRAIN_ARGS="--tgt-len 512 --mem-len 2048" WORK=runs/long_memory experiments/continue_default.sh
#                                                  (more lakhnes train options: a long-memory stage)
#        SHIP=0 WORK=runs/long_memory experiments/continue_default.sh   (candidates only, see above)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-$ROOT/runs/continue_default}"
SHIPPED="${SHIPPED:-$ROOT/src/lakhnes/assets/default}"
NESMDB="${NESMDB:-$ROOT/data/nesmdb}"
NESMDB_SRC="${NESMDB_SRC:-$ROOT/../shared/data/nesmdb_midi.tar.gz}"
MINUTES="${MINUTES:-60}"
LR="${LR:-2e-4}"
SHIP="${SHIP:-1}"
WARMUP="${WARMUP:-100}"
STAGES="${STAGES:-1}"
THREADS="${THREADS:-1}"
NICE="nice -n ${NICE:-19}"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
mkdir -p "$WORK"
log() { echo "[$(date '+%F %T')] $*" | tee -a "$WORK/continue.log" >&2; }

[[ -f "$NESMDB/manifest.json" ]] || $NICE lakhnes prepare nesmdb "$NESMDB_SRC" -o "$NESMDB" > /dev/null

if [[ -f "$ROOT/runs/default/state" && "$(cat "$ROOT/runs/default/state")" != "done" ]]; then
  log "an unfinished long run is on this machine (runs/default): resuming it first"
  # with the budget and lr it started with (runs/default/settings.env), this script's threads and nice
  env -u WORK -u MINUTES -u LR -u WARMUP THREADS="$THREADS" NICE="${NICE##* }" "$ROOT/experiments/train_default.sh"
fi

shipped_valid() {
  python - "$SHIPPED" <<'EOF'
import json, sys
card = json.load(open(f"{sys.argv[1]}/config.json")).get("card", {})
print(card.get("eval", {}).get("valid", {}).get("ppl", "inf"))
EOF
}

package() {  # score $stage on test, package it into $1 with its card, fit the caches on it and score them
  local to=$1
  [[ -f $stage/test.json ]] || $NICE lakhnes eval "$stage/run" --data "$NESMDB" --split test --threads "$THREADS" \
    --results "" --json "$stage/test.json" --name "$(basename "$stage")" >> "$stage/eval.log" 2>&1
  python "$ROOT/experiments/ship_model.py" "$stage/run" --base "$stage/base_config.json" --to "$to" \
    --stage "${cmd[*]/#$ROOT\//}" --valid "$stage/valid.json" --test "$stage/test.json" \
    --name "$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['card'].get('name','lakhnes-small'))" "$stage/base_config.json")"
  # the song cache's weights belong to the network they were fitted with: fit them again (valid), score test
  $NICE lakhnes eval "$to" --data "$NESMDB" --split valid --fit-song-cache --threads "$THREADS" --results "" \
    --json "$stage/valid_song_cache.json" >> "$stage/eval.log" 2>&1
  $NICE lakhnes eval "$to" --data "$NESMDB" --split test --threads "$THREADS" --results "" \
    --json "$stage/test_song_cache.json" >> "$stage/eval.log" 2>&1
  python "$ROOT/experiments/ship_model.py" --card-only "$to" \
    --song-cache "$stage/valid_song_cache.json" "$stage/test_song_cache.json"
}

n=0
while [[ $STAGES == 0 || $n -lt $STAGES ]]; do
  n=$((n + 1))
  stage=$(find "$WORK" -maxdepth 1 -name 'stage_*' -type d ! -exec test -e '{}/outcome' ';' -print | sort | tail -1)
  from="$SHIPPED"
  if [[ -z $stage ]]; then
    k=$(find "$WORK" -maxdepth 1 -name 'stage_*' -type d | wc -l)
    stage="$WORK/stage_$(printf %03d $((k + 1)))"
    last=$(find "$WORK" -maxdepth 2 -path '*/stage_*/candidate' -type d | sort | tail -1)
    [[ $SHIP == 0 && -n $last ]] && from="$last"  # with SHIP=0: the newest candidate, if any
    mkdir -p "$stage"
    cp "$from/config.json" "$stage/base_config.json"  # the card this stage extends
    mkdir -p "$stage/init" && cp "$from/config.json" "$from/model.safetensors" "$stage/init/"
  fi
  cmd=(lakhnes train --data "$NESMDB" -o "$stage/run" --init "$stage/init" --lr "$LR" --warmup "$WARMUP"
       --schedule time --clock cpu --max-minutes "$MINUTES" --steps 100000000 --eval-every 100000000
       --threads "$THREADS" --seed "$((10#${stage##*_}))" --no-progress ${BF16:+--bf16} ${TRAIN_ARGS:-})
  if [[ -f $stage/run/latest.json ]]; then log "$(basename "$stage"): resuming"; else
    log "$(basename "$stage"): $MINUTES CPU-minutes from ${from#"$ROOT"/} (the shipped model's valid PPL: $(shipped_valid))"; fi
  $NICE "${cmd[@]}" >> "$stage/train.log" 2>&1
  [[ -f $stage/valid.json ]] || $NICE lakhnes eval "$stage/run" --data "$NESMDB" --split valid --threads "$THREADS" \
    --results "" --json "$stage/valid.json" --name "$(basename "$stage")" >> "$stage/eval.log" 2>&1
  new=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['ppl'])" "$stage/valid.json")
  old=$(shipped_valid)
  if [[ $SHIP == 0 ]]; then
    package "$stage/candidate.tmp"
    rm -rf "$stage/candidate" && mv "$stage/candidate.tmp" "$stage/candidate"
    echo "candidate: valid $new (shipped $old); check its songs before shipping it" > "$stage/outcome"
    log "$(basename "$stage"): valid PPL $new (shipped $old): a candidate, $stage/candidate"
  elif python -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$new" "$old"; then
    package "$SHIPPED"
    echo shipped > "$stage/outcome"
    log "$(basename "$stage"): valid PPL $new < $old: shipped"
  else
    echo "rejected $new >= $old" > "$stage/outcome"
    log "$(basename "$stage"): valid PPL $new >= $old: kept the shipped model"
  fi
done
