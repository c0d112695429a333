-- tests/lua/test_registry.lua: the model registry (hs.registry), its commands (register, models,
-- history, rollback, promote) and the promotion gate's policy handling and report (hs.gate), in a
-- throw-away git repository with two short quickstart runs; compare-and-swap alias moves,
-- including two processes racing for the same alias; then the end-to-end test of
-- scripts/ci-promote (tests/ci_promote_e2e.sh; HISTOPS_SKIP_E2E=1 skips it).
-- Run: build/histops tests/lua/test_registry.lua
local hs = require "histops"
local registry = require "hs.registry"
local gate = require "hs.gate"

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

local sh, q = T.sh, T.q
-- output, exit code (0 on success)
local function capture(cmd)
  local out, ok, code = T.capture(cmd)
  return out, ok and 0 or code
end

local exe = T.exe
local src = HISTOPS_SOURCE_DIR or "."
local tmp = T.tmpdir("registry")
local repo = tmp .. "/repo"
local env = T.GIT_ENV
  .. "HISTOPS_GIT_FSYNC=0 HISTOPS_REPO= HISTOPS_ARTIFACTS= HISTOPS_CACHE=" .. q(tmp .. "/cache") .. " "
-- run a histops command inside the repository: output, exit code
local function histops(args) return capture(("cd %s && %s HISTOPS_USER=tester %s %s 2>&1"):format(q(repo), env, q(exe), args)) end

local ok_all, err_all = pcall(function()
  T.git_repo(repo, "a.txt", "x\n")
  -- two short runs of the quickstart experiment (different seeds, so different weights)
  for i, seed in ipairs { 1, 2 } do
    local out, code = histops(("run %s/experiments/quickstart.lua --quiet --no-git --out runs%d --set seed=%d "
      .. "--set train.epochs=1 --set train.steps_per_epoch=2 --set data.synthetic.tiles=64 --set eval.bootstrap=10")
      :format(q(src), i, seed))
    assert(code == 0, out)
  end
  local function run_dir(i)
    local exp = repo .. "/runs" .. i .. "/quickstart"
    return exp .. "/" .. hs.sys.listdir(exp)[1]
  end
  local r1, r2 = run_dir(1), run_dir(2)
  local id1 = r1:match("([^/]+)$")
  local R = { repo = repo }

  -- resolve: files, run folders, run ids (runs/<experiment>/<id> under runs_root), unknowns
  local p, info = registry.resolve(r1 .. "/model.safetensors", R)
  assert(p == r1 .. "/model.safetensors" and info.kind == "file")
  p, info = registry.resolve(r1, R)
  assert(p == r1 .. "/model.safetensors" and info.kind == "run" and info.run == id1 and info.run_record.id == id1)
  p, info = registry.resolve(id1, { repo = repo, runs_root = repo .. "/runs1" })
  assert(p == r1 .. "/model.safetensors" and info.kind == "run", tostring(info))
  local none, msg = registry.resolve("no-such-run", R)
  assert(none == nil and msg:find("not a model file"), msg)
  none, msg = registry.resolve("m@production", R)
  assert(none == nil and msg:find("no alias 'production'"), msg)
  none, msg = registry.resolve("m@3", R)
  assert(none == nil and msg:find("no version 3"), msg)
  check_error("model spec", registry.resolve, nil)

  -- register: version 1, the same weights again -> the same version, --force -> a new one
  local v1, created = registry.register(r1, { name = "m", repo = repo, user = "alice" })
  assert(created and v1.version == 1 and v1.name == "m" and v1.run == id1)
  for _, k in ipairs { "name", "version", "run", "commit", "branch", "experiment", "data_fingerprint", "classes", "input",
    "pipeline", "task", "metrics", "weights", "size_bytes", "created", "user" } do
    assert(v1[k] ~= nil, "version.json lacks " .. k)
  end
  assert(#v1.weights == 64 and v1.user == "alice" and v1.branch == "main" and #v1.commit == 40)
  assert(v1.classes[1] == "negative" and v1.classes[2] == "positive" and v1.metrics.accuracy)
  assert(v1.size_bytes == hs.sys.stat(r1 .. "/model.safetensors").size)
  local store = assert(hs.git.open(repo))
  assert(hs.git.artifact_verify(store:artifact_dir(), v1.weights) == true)
  local again, created2 = registry.register(r1 .. "/model.safetensors", { name = "m", repo = repo })
  assert(not created2 and again.version == 1)
  local v2 = registry.register(r2, { name = "m", repo = repo, user = "bob" })
  assert(v2.version == 2 and v2.weights ~= v1.weights)
  check_error("invalid model name", registry.register, r1, { name = "bad name", repo = repo })
  check_error("invalid model name", registry.register, r1, { name = "a@b", repo = repo })
  check_error("register: ", registry.register, tmp .. "/nothing", { name = "m", repo = repo })
  local vs = registry.versions("m", R)
  assert(#vs == 2 and vs[1].version == 1 and vs[2].version == 2)
  assert(registry.names(R)[1] == "m")

  -- aliases: create, move with compare-and-swap, reserved names
  local a = registry.set_alias("m", "production", 1, "first", false, { repo = repo, who = "alice" })
  assert(a.version == 1 and a.previous == nil and a.who == "alice" and a.why == "first" and #a.commit_id == 40)
  check_error("moved concurrently %(expected no alias", registry.set_alias, "m", "production", 2, "x", false, R)
  check_error("moved concurrently %(expected version 2", registry.set_alias, "m", "production", 2, "x", 2, R)
  check_error("no version 7", registry.set_alias, "m", "production", 7, "x", nil, R)
  check_error("reserved", registry.set_alias, "m", "latest", 1, "x", nil, R)
  check_error("reserved", registry.set_alias, "m", "v2", 1, "x", nil, R)
  local stale = a.commit_id
  local b = registry.set_alias("m", "production", 2, "better", 1, { repo = repo, who = "bob" })
  assert(b.version == 2 and b.previous == 1)
  check_error("moved concurrently", registry.set_alias, "m", "production", 1, "stale", stale, R)
  assert(registry.alias("m", "production", R).version == 2)
  registry.set_alias("m", "staging", 1, "try", nil, R)

  -- resolve by alias, version, latest, bare name (its production alias); load and predict
  assert(select(2, registry.resolve("m@production", R)).version == 2)
  assert(select(2, registry.resolve("m@v1", R)).version == 1)
  assert(select(2, registry.resolve("m@1", R)).version == 1)
  assert(select(2, registry.resolve("m@latest", R)).version == 2)
  local pi = select(2, registry.resolve("m", R))
  assert(pi.kind == "version" and pi.alias == "production" and pi.version == 2)
  local _, amsg = registry.resolve("m@canary", R)
  assert(amsg:find("aliases: production, staging", 1, true), amsg)
  local m = assert(registry.load("m@staging", R))
  assert(m.registry.version == 1 and m.meta.classes[2] == "positive")
  local tile = hs.synth.ihc { width = 48, height = 48, nuclei = 6, seed = 5, positive_fraction = 0.9 }
  local pred = m:predict({ tile })
  assert(pred[1].class == "negative" or pred[1].class == "positive")

  -- history and rollback
  registry.set_alias("m", "production", 1, "oops, back", nil, { repo = repo, who = "carol" })
  local h = registry.history("m", "production", R)
  assert(#h == 3 and h[1].version == 1 and h[2].version == 2 and h[3].version == 1)
  assert(h[1].who == "carol" and h[1].why == "oops, back" and h[1].previous == 2 and h[1]["until"] == nil)
  assert(h[2]["until"] == h[1].when and h[3]["until"] == h[2].when)
  local rb = registry.rollback("m", "production", { repo = repo, who = "dave" })
  assert(rb.version == 2 and rb.previous == 1 and rb.why:find("rollback from v1"))
  rb = registry.rollback("m", "production", { repo = repo, to = "v1", why = "pin" })
  assert(rb.version == 1)
  check_error("already points at version 1", registry.rollback, "m", "production", { repo = repo, to = 1 })
  check_error("no earlier version", registry.rollback, "m", "staging", R)
  local nh, nmsg = registry.history("m", "nope", R)
  assert(nh == nil and nmsg:find("no alias 'nope'"), nmsg)

  -- two processes racing to move the same alias from the same state: exactly one wins
  local cur = registry.alias("m", "production", R)
  local racer = tmp .. "/race.lua"
  local f = assert(io.open(racer, "w"))
  f:write(([[
local hs = require "histops"
local reg = require "hs.registry"
while not hs.sys.stat(%q) do hs.sys.sleep(0.001) end
local ok, err = pcall(reg.set_alias, "m", "production", tonumber(arg[1]), "race " .. arg[1], %q, { repo = %q })
io.write(ok and "won" or ("lost: " .. tostring(err)))
]]):format(tmp .. "/go", cur.commit_id, repo))
  f:close()
  sh(("cd %s && (%s %s %s 2 > %s/race2.txt &) && (%s %s %s 1 > %s/race1.txt &) && sleep 0.3 && touch %s/go")
    :format(q(repo), env, q(exe), q(racer), q(tmp), env, q(exe), q(racer), q(tmp), q(tmp)))
  local outs
  for _ = 1, 200 do
    outs = { hs.sys.read_file(tmp .. "/race1.txt") or "", hs.sys.read_file(tmp .. "/race2.txt") or "" }
    if outs[1] ~= "" and outs[2] ~= "" then break end
    hs.sys.sleep(0.05)
  end
  local won = 0
  for _, o in ipairs(outs) do
    if o == "won" then won = won + 1 else assert(o:find("moved concurrently"), o) end
  end
  assert(won == 1, "racing promotions: " .. outs[1] .. " / " .. outs[2])
  local after = registry.history("m", "production", R)
  assert(#after == #h + 3 and after[2].commit_id == cur.commit_id)

  -- the commands
  local out, code = histops("models")
  assert(code == 0 and out:find("^m%s+2 version%(s%)") and out:find("staging %-> v1"), out)
  out, code = histops("models m")
  assert(code == 0 and out:find("v1 ") and out:find("v2 ") and out:find("staging"), out)
  out, code = histops("models m --json")
  local j = hs.json.decode(out)
  assert(code == 0 and j.name == "m" and #j.versions == 2 and #j.aliases == 2, out)
  out, code = histops("models nope")
  assert(code == 2 and out:find("no model named 'nope'"), out)
  out, code = histops("history m@production")
  assert(code == 0 and out:find("%(current%)") and out:find("carol") and out:find("race"), out)
  out, code = histops("history m@production --json")
  assert(code == 0 and #hs.json.decode(out) == #after, out)
  out, code = histops("rollback m@staging")
  assert(code == 2 and out:find("no earlier version"), out)
  local before = registry.alias("m", "production", R).version
  out, code = histops("rollback m --why 'bad numbers'")
  assert(code == 0 and registry.alias("m", "production", R).version ~= before, out)
  assert(registry.history("m", "production", R)[1].who == "tester")
  out, code = histops(("register %s --name other --alias staging --why 'from a test'"):format(q(r2)))
  assert(code == 0 and out:find("registered other@1") and out:find("other@staging %-> v1"), out)
  out, code = histops(("register %s --name other --json"):format(q(r2)))
  assert(code == 0 and hs.json.decode(out).version == 1 and hs.json.decode(out).created_now == false, out)
  out, code = histops("register --name other")
  assert(code == 2 and out:find("usage"), out)
  out, code = histops("register /nowhere --name other")
  assert(code == 2 and out:find("/nowhere"), out)

  -- missing weights: the registry says where it looked
  local st = assert(hs.git.open(repo))
  local wpath = assert(hs.git.artifact_path(st:artifact_dir(), v1.weights))
  sh(("chmod u+w %s && mv %s %s.away"):format(q(wpath), q(wpath), q(wpath)))
  local nw, wmsg = registry.resolve("m@1", R)
  assert(nw == nil and wmsg:find("not in the artifact store") and wmsg:find("HISTOPS_ARTIFACTS"), wmsg)
  sh(("mv %s.away %s"):format(q(wpath), q(wpath)))

  -- promote (dry run) with a policy given on the command line; errors exit 2
  out, code = histops(("promote m --candidate m@1 --dry-run --quiet --experiment %s/experiments/quickstart.lua "
    .. "--set policy.floors.accuracy=1.01 --report %s/r.md --json %s/r.json"):format(q(src), q(tmp), q(tmp)))
  assert(code == 1 and out:find("REJECTED") and out:find("accuracy >= 1.01"), out)
  local rj = hs.json.decode(assert(hs.sys.read_file(tmp .. "/r.json")))
  assert(rj.passed == false and rj.outcome.status == "dry-run" and #rj.rules >= 1)
  assert(hs.sys.read_file(tmp .. "/r.md") == out:match("(### histops.*)$"))
  out, code = histops("promote m --candidate nowhere --quiet")
  assert(code == 2 and out:find("ERROR"), out)
  out, code = histops(("promote m --candidate m@1 --quiet --experiment %s/experiments/quickstart.lua --set policy.flors.x=1")
    :format(q(src)))
  assert(code == 2 and out:find("unknown policy setting 'flors'"), out)
  out, code = histops("promote")
  assert(code == 2 and out:find("usage"), out)

  -- the gate's policy schema
  check_error("unknown policy setting 'golden.agains'", gate.normalize, { golden = { agains = "labels" } })
  check_error("policy.floors.f1: unknown metric", gate.normalize, { floors = { f1 = 0.9 } })
  check_error("max_disagreement is a fraction", gate.normalize, { golden = { max_disagreement = 2 } })
  check_error("classification only", gate.normalize, { recall_floor = 0.5 }, { task = "segmentation" })
  local np = gate.normalize({}, { seed = 7 })
  assert(np.default and np.non_inferiority.delta == 0.02 and np.metric == "macro_f1" and np.eval_set.seed == 7)
  local sp = gate.normalize({ non_inferiority = {} }, { task = "segmentation" })
  assert(sp.metric == "dice" and sp.non_inferiority.metric == "dice" and not sp.default)

  -- the report: verdicts, deltas, rules
  local res = { passed = false, policy = np, eval = { n = 10, fingerprint = "abc", split = "test", seed = 1, experiment = "e",
    classes = { "a", "b" } }, candidate = { label = "run `x`", metrics = { macro_f1 = 0.8, accuracy = 0.9, recall = { a = 1, b = 0.5 } },
    latency_ms = 1.5, size_mb = 0.1, params = 10 }, incumbent = { label = "`m@1`", metrics = { macro_f1 = 0.9, accuracy = 0.95,
    recall = { a = 1, b = 0.8 } }, latency_ms = 1, size_mb = 0.1, params = 10 },
    rules = { { rule = "floor", requirement = "macro_f1 >= 0.85", observed = "0.8000", pass = false },
      { rule = "non-inferiority", requirement = "x", observed = "no incumbent", pass = true, na = true } } }
  res.failed = { res.rules[1] }
  local md = gate.report(res, { status = "rejected", name = "m", alias = "production" })
  assert(md:find("REJECTED") and md:find("1 of 2 rule") and md:find("| macro_f1 | 0.8000 | 0.9000 | %-0.1000 |")
    and md:find("| recall b | 0.5000 | 0.8000 | %-0.3000 |") and md:find("❌ fail") and md:find("➖ n/a")
    and md:find("default rule"), md)
  res.passed, res.failed = true, {}
  md = gate.report(res, { status = "promoted", name = "m", alias = "production", version = 3, previous = 2 })
  assert(md:find("PROMOTED") and md:find("version 3 %(was version 2%)"), md)

  -- automatic registration after a run (for the experiment runner): never raises
  local av, aa = registry.register_after_run(r1, { name = "auto", alias = "staging" }, "quickstart", R)
  assert(av.version == 1 and av.name == "auto" and aa.alias == "staging" and aa.version == 1)
  local bv = registry.register_after_run(r2, true, "quickstart", R)
  assert(bv.name == "quickstart" and bv.version == 1)
  local nv, nmsg2 = registry.register_after_run(tmp .. "/none", "auto", "quickstart", R)
  assert(nv == nil and nmsg2:find("none"), nmsg2)
end)

if ok_all and os.getenv("HISTOPS_SKIP_E2E") ~= "1" then
  local out, code = capture(("HISTOPS_BIN=%s bash %s/tests/ci_promote_e2e.sh 2>&1"):format(q(exe), q(src)))
  if code ~= 0 then ok_all, err_all = false, "tests/ci_promote_e2e.sh failed:\n" .. out end
end

os.execute("rm -rf " .. q(tmp))
if not ok_all then error(err_all, 0) end
print("test_registry.lua: ok")
