#!/usr/bin/env bash
# tests/mpi_dp.sh: data-parallel training under MPI (issue 10). Trains a tiny experiment (a CNN
# without batch norm or dropout, so equality is exact up to float rounding) once single-process
# and once with `mpirun -np 2 --oversubscribe` on loopback, then checks: final weights and every
# epoch's train loss agree (max |diff| <= 1e-5 * max(1, max |w|)), exactly one run record and one
# run folder per run, the record's world size / per-rank batch / bytes per step; a global batch not
# divisible by the ranks and a failure on one rank end the job with the error, never a hang; the
# hs.mpi collectives with 2 ranks. Skips (exit 0) only when mpirun is absent.
#   tests/mpi_dp.sh [BUILD_DIR]        (default: build; needs the histops and test_dist targets)
set -euo pipefail
source "$(dirname "$0")/lib/mpi_env.sh" mpi-dp "${1:-}"

# 1. the hs.mpi collectives, with 2 ranks (each rank checks what every rank can compute)
(cd "$src" && HS_TEST_MPI_SIZE=2 timeout 60 "${MPIRUN[@]}" "$hs" tests/lua/test_dist_mpi.lua) \
  || fail "hs.mpi collectives with 2 ranks"

(cd "$src" && timeout 60 "${MPIRUN[@]}" "$build/test_dist" > "$tmp/test_dist.log" 2>&1) \
  || { cat "$tmp/test_dist.log"; fail "test_dist with 2 ranks"; }
echo "test_dist with 2 ranks: $(grep -c '\[       OK \]' "$tmp/test_dist.log") checks passed"

# 2. a throw-away repository so the run records can be counted
repo="$tmp/repo"
mpi_repo "$repo"
cat > dp_tiny.lua <<'LUA'
-- tests/mpi_dp.sh's experiment: no batch norm, no dropout (data-parallel equals one process)
return {
  name = "dp_tiny",
  seed = 3,
  data = { kind = "synthetic_ihc", synthetic = { tiles = 96, size = 20, nuclei = 3 }, cache_size = { 20, 20 },
    split = { val = 0.25, test = 0.25 } },
  input = { size = { 16, 16 }, channels = 3, mean = { 0.8, 0.7, 0.7 }, std = { 0.15, 0.2, 0.2 } },
  augment = { hflip = true, vflip = true, rot90 = true, brightness = 0.05, contrast = 0.05, hed_sigma = 0.03 },
  model = function(info)
    local nn = require("histops").nn
    if os.getenv("DP_FAIL_RANK") and require("hs.mpi").rank() == tonumber(os.getenv("DP_FAIL_RANK")) then
      error("injected failure on rank " .. require("hs.mpi").rank())
    end
    return nn.Sequential { nn.Conv2d(3, 8, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(8, 8, 3, { padding = 1 }), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
      nn.Linear(8, info.num_classes) }
  end,
  train = { epochs = 3, batch = 8, optimizer = "adamw", lr = 0.01,
    early_stopping = { metric = "macro_f1", patience = 0 } },
  eval = { bootstrap = 20 },
}
LUA
refs() { git for-each-ref refs/histops/runs | wc -l; }

HISTOPS_THREADS=2 timeout 60 "$hs" run dp_tiny.lua --out "$tmp/one" --quiet || fail "single-process run"
[ "$(refs)" = 1 ] || fail "single-process run: $(refs) run records, want 1"
HISTOPS_THREADS=1 timeout 90 "${MPIRUN[@]}" "$hs" run dp_tiny.lua --out "$tmp/two" > "$tmp/two.log" 2>&1 \
  || { cat "$tmp/two.log"; fail "2-rank run"; }
[ "$(refs)" = 2 ] || fail "2-rank run wrote $(( $(refs) - 1 )) run records, want 1"
n2=$(ls "$tmp/two/dp_tiny" | wc -l)
[ "$n2" = 1 ] || fail "2-rank run made $n2 run folders, want 1"
grep -q "data-parallel over 2 ranks: per-rank batch 4 of 8" "$tmp/two.log" || { cat "$tmp/two.log"; fail "no data-parallel log line"; }
[ "$(grep -c '^epoch 1/3' "$tmp/two.log")" = 1 ] || fail "console log not from rank 0 alone"

cat > compare.lua <<'LUA'
local hs = require "histops"
local a_dir, b_dir = arg[1], arg[2]
local A = assert(hs.io.load(a_dir .. "/model.safetensors"))
local B = assert(hs.io.load(b_dir .. "/model.safetensors"))
local maxdiff, scale, n = 0, 1, 0
for name, ta in pairs(A) do
  local tb = assert(B[name], "missing tensor " .. name)
  local fa, fb = ta:astype("f64"):reshape({ -1 }), tb:astype("f64"):reshape({ -1 })
  for i = 1, fa:numel() do
    local d = math.abs(fa:get(i) - fb:get(i))
    if d > maxdiff then maxdiff = d end
    scale = math.max(scale, math.abs(fa:get(i)))
    n = n + 1
  end
end
local tol = 1e-5 * scale
print(("weights: %d values, max |diff| %.3g, tolerance %.3g"):format(n, maxdiff, tol))
assert(n > 100 and maxdiff <= tol, "data-parallel weights differ from the single-process run")
local ra = hs.json.decode(assert(hs.sys.read_file(a_dir .. "/run.json")))
local rb = hs.json.decode(assert(hs.sys.read_file(b_dir .. "/run.json")))
assert(#ra.history == #rb.history and #ra.history == 3, "epoch histories differ in length")
for e = 1, #ra.history do
  local la, lb = ra.history[e].train_loss, rb.history[e].train_loss
  assert(math.abs(la - lb) <= 1e-5 * math.max(1, math.abs(la)), ("epoch %d train loss %.8g vs %.8g"):format(e, la, lb))
end
assert(ra.distributed == nil, "a single-process record has no 'distributed' section")
local d = assert(rb.distributed, "the data-parallel record lacks 'distributed'")
assert(d.world_size == 2 and d.per_rank_batch == 4 and d.global_batch == 8, hs.json.encode(d))
assert(d.allreduce_bytes_per_step == 4 * d.allreduce_floats_per_step and d.allreduce_floats_per_step > 100)
print(("record: world size %d, per-rank batch %d, %d bytes allreduced per step"):format(d.world_size,
  d.per_rank_batch, d.allreduce_bytes_per_step))
LUA
one_dir=$(ls -d "$tmp"/one/dp_tiny/*) two_dir=$(ls -d "$tmp"/two/dp_tiny/*)
"$hs" compare.lua "$one_dir" "$two_dir" || fail "data-parallel result differs from the single-process result"

# 3. errors end the job with the message, never a hang
before=$(refs)
set +e
out=$(HISTOPS_THREADS=1 timeout 60 "${MPIRUN[@]}" "$hs" run dp_tiny.lua --out "$tmp/bad" --set train.batch=7 2>&1)
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { echo "$out"; fail "odd global batch: exit $rc (124 = hang)"; }
grep -q "global batch train.batch = 7 is not divisible by the 2 ranks" <<<"$out" || { echo "$out"; fail "odd batch message"; }
[ "$(refs)" -le $((before + 1)) ] || fail "a failed 2-rank run left more than one record"
before=$(refs)
set +e
t0=$(date +%s)
out=$(DP_FAIL_RANK=1 HISTOPS_THREADS=1 timeout 60 "${MPIRUN[@]}" "$hs" run dp_tiny.lua --out "$tmp/bad" 2>&1)
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { echo "$out"; fail "failure on rank 1: exit $rc (124 = hang)"; }
grep -q "injected failure on rank 1" <<<"$out" || { echo "$out"; fail "failure on rank 1: message lost"; }
echo "failure on one rank: job ended in $(( $(date +%s) - t0 )) s with exit $rc"
[ "$(refs)" -le $((before + 1)) ] || fail "a failed 2-rank run left more than one record"
echo "PASS: tests/mpi_dp.sh"
