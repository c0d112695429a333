#!/usr/bin/env bash
# tests/ci_promote_e2e.sh: end-to-end test of scripts/ci-promote in a throw-away repository (with a
# bare "origin" to push the registry refs to): a good candidate (the quickstart experiment as is)
# is promoted on first use and pushed; the same config passes a pull-request check without moving
# anything; a deliberately worse one (one training step at lr 1e-6) is rejected with exit 1 in both
# modes and the alias does not move; a missing experiment is an error (exit 2).
#   tests/ci_promote_e2e.sh [HISTOPS_BIN]      (default $HISTOPS_BIN, else build/histops); ~20 s
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-${HISTOPS_BIN:-$top/build/histops}}
[ -x "$bin" ] || { echo "ci_promote_e2e: no histops executable at $bin" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tmp=$(mktemp -d /tmp/hs-ci-promote-e2e-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export GIT_AUTHOR_NAME=ci GIT_AUTHOR_EMAIL=ci@example.org GIT_COMMITTER_NAME=ci GIT_COMMITTER_EMAIL=ci@example.org
export HISTOPS_CACHE=$tmp/cache HISTOPS_USER=ci-bot HISTOPS_GIT_FSYNC=0
unset HISTOPS_ARTIFACTS HISTOPS_REPO

passed=0 failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
bad() { echo "FAIL - $*"; failed=$((failed + 1)); }
expect() {  # expect DESCRIPTION WANT_EXIT COMMAND...
    local what=$1 want=$2; shift 2
    "$@" >"$tmp/out.txt" 2>"$tmp/err.txt"
    local got=$?
    if [ "$got" = "$want" ]; then ok "$what (exit $got)"; else
        bad "$what: exit $got, want $want"; sed 's/^/    /' "$tmp/err.txt" | tail -n 20
    fi
}
alias_version() {  # the version NAME@production points at in the repository, or "none"
    git -C "$repo" show refs/histops/models/gated/aliases/production:alias.json 2>/dev/null |
        sed -n 's/.*"version": *\([0-9]*\).*/\1/p' | head -n 1 | grep . || echo none
}
n_versions() { git -C "$repo" for-each-ref 'refs/histops/models/gated/versions/' | wc -l; }

# the throw-away repository: the quickstart experiment, its models, and a gated variant with a policy
repo=$tmp/repo
git init -q -b main "$repo" && git init -q --bare "$tmp/origin.git" || { echo "git init failed"; exit 1; }
mkdir -p "$repo/experiments"
cp -r "$top/experiments/quickstart.lua" "$top/experiments/models" "$repo/experiments/"
cat > "$repo/experiments/gated.lua" <<'EOF'
-- the quickstart experiment with a promotion policy (the gate's end-to-end test)
local e = {}
for k, v in pairs(require "quickstart") do e[k] = v end
e.name = "gated"
e.policy = {
  floors = { macro_f1 = 0.9 }, recall_floor = 0.8,
  non_inferiority = { metric = "macro_f1", delta = 0.05, samples = 300 },
  golden = { max_disagreement = 0, set = { tiles = 16, seed = 4242 } },
  budgets = { latency_ms = 500, size_mb = 5 },
  eval_set = { split = "test", seed = 1 },
}
return e
EOF
(cd "$repo" && git add -A && git commit -q -m "experiments" && git remote add origin "$tmp/origin.git") ||
    { echo "setting up the repository failed"; exit 1; }
cd "$repo" || exit 1
ci=("$top/scripts/ci-promote" --histops "$bin" --experiment experiments/gated.lua --name gated)

# 1. first promotion: no incumbent, a good candidate is promoted and the refs are pushed
expect "good candidate promoted (no incumbent)" 0 "${ci[@]}" --mode promote --push origin --out "$tmp/o1"
[ "$(alias_version)" = 1 ] && ok "production -> v1" || bad "production is $(alias_version), want 1"
grep -q "PROMOTED" "$tmp/o1/gate-report.md" && grep -q "first promotion" "$tmp/o1/gate-report.md" &&
    ok "report says PROMOTED (first promotion)" || bad "report: $(head -n 3 "$tmp/o1/gate-report.md")"
git -C "$tmp/origin.git" rev-parse -q --verify refs/histops/models/gated/aliases/production >/dev/null &&
    ok "alias ref pushed to origin" || bad "alias ref not pushed"

# 2. pull-request check with a good candidate: passes, nothing moves, nothing is registered
expect "good candidate passes the check" 0 "${ci[@]}" --mode check --out "$tmp/o2"
grep -q "PASSES" "$tmp/o2/gate-report.md" && ok "check report says PASSES" || bad "check report: $(head -n 3 "$tmp/o2/gate-report.md")"
[ "$(alias_version)" = 1 ] && [ "$(n_versions)" = 1 ] && ok "check moved nothing" || bad "check moved something"

# 3. a deliberately worse candidate: rejected with exit 1 in both modes, the alias stays
expect "worse candidate rejected (check)" 1 "${ci[@]}" --mode check --set train.max_steps=1 --set train.lr=1e-6 --out "$tmp/o3"
expect "worse candidate rejected (promote)" 1 "${ci[@]}" --mode promote --push origin --set train.max_steps=1 --set train.lr=1e-6 --out "$tmp/o4"
grep -q "REJECTED" "$tmp/o4/gate-report.md" && grep -q "non-inferiority .*fail" "$tmp/o4/gate-report.md" &&
    ok "report says REJECTED with the failing rules" || bad "reject report: $(cat "$tmp/o4/gate-report.md")"
grep -q '"passed": *false' "$tmp/o4/gate.json" && ok "gate.json says passed=false" || bad "gate.json: $(head -c 300 "$tmp/o4/gate.json")"
[ "$(alias_version)" = 1 ] && [ "$(n_versions)" = 1 ] && ok "alias did not move after the rejection" ||
    bad "after rejection production is $(alias_version) with $(n_versions) versions"
[ "$(git -C "$tmp/origin.git" rev-parse refs/histops/models/gated/aliases/production)" = \
  "$(git -C "$repo" rev-parse refs/histops/models/gated/aliases/production)" ] && ok "origin unchanged" || bad "origin alias moved"

# 4. the registry commands see the promotion
"$bin" history gated@production >"$tmp/h.txt" 2>&1 && grep -q "ci-bot" "$tmp/h.txt" && ok "history shows who" ||
    bad "history: $(cat "$tmp/h.txt")"
"$bin" models gated --json >"$tmp/m.json" 2>&1 && grep -q '"alias": *"production"' "$tmp/m.json" && ok "models --json lists the alias" ||
    bad "models: $(head -c 300 "$tmp/m.json")"

# 5. errors are exit 2
expect "missing experiment is an error" 2 "$top/scripts/ci-promote" --histops "$bin" --experiment experiments/none.lua
expect "bad mode is an error" 2 "${ci[@]}" --mode sideways

echo "ci_promote_e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
