#!/usr/bin/env bash
# Data-parallel throughput on this machine: 1 rank (2 BLAS threads) vs 2 ranks (1 thread each),
# small config, global batch 64, on a synthetic dataset. Prints JSON lines.
#   bench/scaling.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-30}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lua5.4 - "$tmp/syn.mvd" <<'LUA'
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local mv = require "musicvae"
local r = mv.rng(3, "synthetic")
local rows = {}
for i = 1, 1024 do
  local row = {}
  for s = 1, 64 do row[s] = r:integer(0, 511) end
  rows[i] = row
end
assert(mv.data.save(arg[1], { train = { labels = rows }, validation = { labels = { rows[1] } } }, {}))
LUA
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
run() { # label, run dir, command...
  local label=$1 dir=$2
  shift 2
  "$@" >"$tmp/out.txt" 2>&1
  local payload
  payload=$(grep -o 'allreduce payload [0-9.]* MB' "$tmp/out.txt" | grep -o '[0-9.]*' || echo 0)
  # mean seq/s over the logged intervals after the first (warm-up)
  awk -F, -v label="$label" -v steps="$steps" -v payload="$payload" \
    'NR > 2 && $4 != "" { s += $4; n++ } END { printf "{\"impl\":\"musicvae\",\"what\":\"train_small\",\"setup\":\"%s\",\"steps\":%d,\"batch\":64,\"sequences_per_s\":%.1f,\"allreduce_mb_per_rank\":%s}\n", label, steps, s / n, payload }' \
    "$dir/log.csv"
}
run "1 rank x 2 threads" "$tmp/r1" env OPENBLAS_NUM_THREADS=2 bin/musicvae train --data "$tmp/syn.mvd" \
  --config small --out "$tmp/r1" --steps "$steps" --val-every 0 --log-every 5
run "2 ranks x 1 thread" "$tmp/r2" mpirun -np 2 env OPENBLAS_NUM_THREADS=1 bin/musicvae train --data "$tmp/syn.mvd" \
  --config small --out "$tmp/r2" --steps "$steps" --val-every 0 --log-every 5 --dist
