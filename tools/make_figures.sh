#!/usr/bin/env bash
# Regenerates the figures in docs/figures/ from a trained model and its training log.
#   tools/make_figures.sh [MODEL] [LOG.csv]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/gmd-4bar-small.safetensors}
log=${2:-docs/figures/gmd-4bar-small-log.csv}
out=docs/figures
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin/musicvae plot "$log" -o "$out/training-curves.svg" >/dev/null
for t in 0.1 0.5 1; do
  bin/musicvae sample --model "$model" -n 3 --seed 2026 --temperature "$t" -o "$tmp/s$t" -q >/dev/null
  for i in 1 2 3; do
    bin/musicvae show "$tmp/s$t/sample-s2026-t$t-00$i.mid" --svg "$out/sample-t$t-$i.svg" \
      --title "sample $i, seed 2026, temperature $t" >/dev/null
  done
done
a=../shared/data/groove/drummer1/session1/102_funk_95_beat_4-4.mid
b=../shared/data/groove/drummer1/session1/100_neworleans-secondline_94_beat_4-4.mid
if [ -f "$a" ] && [ -f "$b" ]; then
  bin/musicvae interpolate --model "$model" "$a" "$b" --steps 5 -o "$tmp/i" -q >/dev/null
  bin/musicvae show "$tmp/i/interpolate-s0-t0-all.mid" --svg "$out/interpolation.svg" \
    --title "slerp in 5 points from $(basename "$a") (bars 1-4) to $(basename "$b") (bars 1-4), argmax" >/dev/null
fi
# humanize: a flat 8th-note beat (velocity 80, on the grid) through the shipped groove model
if [ -f models/gmd-4bar-humanize.safetensors ]; then
  cat > "$tmp/flat.lua" <<'LUA'
    package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
    package.cpath = "./build/?.so;" .. package.cpath
    local mv = require "musicvae"
    local labels = {}
    for s = 0, 63 do  -- classes: bit 0 kick, 1 snare, 2 closed hi-hat
      labels[s + 1] = (s % 2 == 0 and 4 or 0) | (s % 8 == 0 and 1 or 0) | (s % 8 == 4 and 2 or 0)
    end
    assert(mv.midi.write(arg[1], mv.pattern { labels = labels, qpm = 100 }))
LUA
  lua5.4 "$tmp/flat.lua" "$tmp/flat.mid"
  bin/musicvae humanize "$tmp/flat.mid" -o "$tmp/human.mid" -q >/dev/null
  bin/musicvae show "$tmp/flat.mid" --svg "$out/humanize-input.svg" \
    --title "input: every hit at velocity 80, on the grid" >/dev/null
  bin/musicvae show "$tmp/human.mid" --svg "$out/humanize.svg" \
    --title "a flat 8th-note beat, humanized (bin/musicvae humanize)" >/dev/null
fi
echo "figures written to $out"
