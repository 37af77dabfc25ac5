#!/usr/bin/env bash
# After a training run: ship its best checkpoint as the f16 model, evaluate it on the validation
# split, and regenerate the figures and the measured tables used in the docs.
#   tools/finish_run.sh [RUN_DIR] [MODEL_NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/gmd-small}
name=${2:-gmd-4bar-small}
fig=docs/figures
mkdir -p models "$fig"
data=$(mktemp -d)/groove.mvd
bin/musicvae prepare ../shared/data/groove --info ../shared/data/groove/info.csv -o "$data" >/dev/null
steps=$(tail -1 "$run/log.csv" | cut -d, -f1)
secs=$(tail -1 "$run/log.csv" | cut -d, -f3)
lua5.4 tools/ship_model.lua "$run/best.safetensors" "models/$name.safetensors" \
  "trained_steps=$steps" "trained_seconds=$secs" "config_name=small"
bin/musicvae eval --model "models/$name.safetensors" "$data" --split validation --json | tail -1 >"$fig/$name-eval-validation.json"
bin/musicvae eval --model "$run/best.safetensors" "$data" --split validation --json | tail -1 >"$fig/$name-eval-validation-f32.json"
cp "$run/log.csv" "$fig/$name-log.csv"
tools/make_figures.sh "models/$name.safetensors" "$fig/$name-log.csv"
lua5.4 bench/latency.lua "models/$name.safetensors" 10000 >"$fig/latency.jsonl"
bench/scaling.sh 20 >"$fig/scaling.jsonl"
cat "$fig/$name-eval-validation.json" "$fig/latency.jsonl" "$fig/scaling.jsonl"
