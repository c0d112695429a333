#!/usr/bin/env bash
# tests/mpi_sweep.sh: sweeps across MPI ranks (issue 10). Runs the same TPE sweep of a tiny
# experiment once as one process and once with `mpirun -np 2 --oversubscribe` on loopback, in a
# throw-away repository, then checks: the same trials (parameters and results) and the same best
# result are recorded, every trial is exactly one finished run linked to its sweep, the trials were
# spread over both ranks (two process ids), and a bad space ends the MPI job with the error on
# rank 0 and a non-zero status, never a hang. Skips (exit 0) only when mpirun is absent.
#   tests/mpi_sweep.sh [BUILD_DIR]        (default: build; needs the histops target)
set -euo pipefail
source "$(dirname "$0")/lib/mpi_env.sh" mpi-sweep "${1:-}"
export HISTOPS_GIT_FSYNC=0 GIT_CEILING_DIRECTORIES="$tmp"

repo="$tmp/repo"
mpi_repo "$repo"
# the sweep experiment of tests/lua/test_sweep.lua
cp "$src/tests/lua/runs/swtiny.lua" swtiny.lua

# 1. one process, then 2 ranks
timeout 120 "$hs" sweep swtiny.lua > one.out 2> one.err || { cat one.err; fail "sequential sweep"; }
timeout 120 "${MPIRUN[@]}" "$hs" sweep swtiny.lua > two.out 2> two.err || { cat two.err; fail "sweep with 2 ranks"; }
one=$(sed -n 's/^sweep \([^ ]*\) finished: 6\/6 trials.*/\1/p' one.out)
two=$(sed -n 's/^sweep \([^ ]*\) finished: 6\/6 trials.*/\1/p' two.out)
[ -n "$one" ] || { cat one.out one.err; fail "no finished sequential sweep"; }
[ -n "$two" ] || { cat two.out two.err; fail "no finished sweep with 2 ranks (exactly one rank must report)"; }
grep -q "on 2 MPI ranks" two.err || { cat two.err; fail "the sweep did not run on 2 ranks"; }

# 2. the same trials and best result; one finished run per trial; both ranks ran trials
cat > check.lua <<'LUA'
local hs = require "histops"
local json = hs.json
local sweep, runs = require "hs.sweep", require "hs.runs"
local store = assert(hs.git.open("."))
local a, b = assert(sweep.read(store, arg[1])), assert(sweep.read(store, arg[2]))
local function enc(v) return json.encode(v, { sort_keys = true }) end
assert(#a.trials == 6 and #b.trials == 6, ("trial counts %d, %d"):format(#a.trials, #b.trials))
for i = 1, 6 do
  local x, y = a.trials[i], b.trials[i]
  assert(enc(x.params) == enc(y.params), ("trial %d parameters differ: %s vs %s"):format(i, enc(x.params), enc(y.params)))
  assert(x.status == "finished" and y.status == "finished", "trial " .. i .. " not finished")
  assert(x.value == y.value, ("trial %d: %s vs %s"):format(i, tostring(x.value), tostring(y.value)))
end
assert(a.best.index == b.best.index and a.best.value == b.best.value and enc(a.best.params) == enc(b.best.params),
  "best results differ")
local pids = {}
for _, id in ipairs { arg[1], arg[2] } do
  local per = {}
  for _, s in ipairs(runs.list { store = store, sweep = id }) do
    assert(s.status == "finished", "run " .. s.id .. " is " .. s.status)
    per[s.sweep.trial] = (per[s.sweep.trial] or 0) + 1
    if id == arg[2] then pids[s.pid] = true end
  end
  for i = 1, 6 do assert(per[i] == 1, ("sweep %s trial %d: %s runs"):format(id, i, tostring(per[i]))) end
end
local n = 0
for _ in pairs(pids) do n = n + 1 end
assert(n == 2, "the trials of the 2-rank sweep ran in " .. n .. " process(es)")
print(("same 6 trials and best (trial %d, %s = %.4f) with 1 process and 2 ranks"):format(a.best.index, a.def.metric, a.best.value))
LUA
"$hs" check.lua "$one" "$two" || fail "1 process vs 2 ranks"

# 3. a bad space under mpirun: an error from rank 0, a non-zero status, no hang
set +e
timeout 60 "${MPIRUN[@]}" "$hs" sweep swtiny.lua --param train.lrr=log:1e-3:1e-1 > bad.out 2> bad.err
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat bad.err; fail "bad space under mpirun: status $rc (124 = hang)"; }
grep -q "sweep parameter 'train.lrr'" bad.err || { cat bad.err; fail "bad space: no error message"; }
echo "PASS: mpi sweep (1 process vs 2 ranks, bad space)"
