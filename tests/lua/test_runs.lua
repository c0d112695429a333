-- tests/lua/test_runs.lua: run records in git (hs.runs and the runs/show/compare/log/report/export
-- commands) with real `histops run`s of tests/lua/runs/tiny.lua in throw-away repositories: runs on
-- several commits and branches, a dirty tree, two concurrent runs, a run killed with SIGKILL, a
-- detached HEAD, a linked worktree, no commits yet, a folder outside any repository, git gc, push
-- to a bare repository and fetch back, the MLflow/DVC export checked against the file-store format,
-- and listing speed with thousands of runs. Run: build/histops tests/lua/test_runs.lua
local hs = require "histops"
local json = hs.json
assert(hs.git, "hs.git binding missing")
local runs = require "hs.runs"
local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error, sh, capture, read, q = T.check_error, T.sh, T.capture, T.read, T.q

local exe = T.exe
local tiny_src = assert(read(T.here .. "/runs/tiny.lua"), "fixture tests/lua/runs/tiny.lua missing")
local tmp = T.tmpdir("runs")
local genv = T.GIT_ENV
-- every child: shared synthetic-tile cache, artifact store inside each repository, no ceiling surprises
local henv = ("HISTOPS_CACHE=%s/cache HISTOPS_GIT_FSYNC=0 GIT_CEILING_DIRECTORIES=%s "):format(tmp, tmp)

local function git(dir, args) return (capture(("cd %s && %s git %s 2>&1"):format(q(dir), genv, args)):gsub("%s+$", "")) end

-- histops in dir; returns stdout, ok, stderr
local function histops(dir, args, extra_env)
  local errf = tmp .. "/stderr.txt"
  local out, ok = capture(("cd %s && %s%s %s %s 2>%s"):format(q(dir), henv, extra_env or "", q(exe), args, q(errf)))
  return out, ok, read(errf) or ""
end

-- a real run; returns its run id (from the runner's own log line)
local function run_tiny(dir, sets, extra_env)
  local out, ok, err = histops(dir, "run tiny.lua --json " .. (sets or ""), extra_env)
  assert(ok, "histops run failed in " .. dir .. ":\n" .. err .. out)
  local id = err:match("run (%S+): experiment tiny")
  assert(id, "no run id in the runner's log:\n" .. err)
  return id, err
end

local function new_repo(name)
  local dir = tmp .. "/" .. name
  sh(("git init -q -b main %s"):format(q(dir)))
  assert(hs.sys.write_file_atomic(dir .. "/tiny.lua", tiny_src))
  sh(("printf 'runs/\\n' >> %s/.git/info/exclude"):format(q(dir)))
  return dir
end

local function set_lr(dir, lr)
  local src = assert(read(dir .. "/tiny.lua")):gsub("lr = [%d%.e%-]+ }", ("lr = %s }"):format(lr))
  assert(hs.sys.write_file_atomic(dir .. "/tiny.lua", src))
end

local timings = {}
local function timed(name, f)
  local t0 = hs.sys.clock()
  local r = f()
  timings[#timings + 1] = ("%s %.2fs"):format(name, hs.sys.clock() - t0)
  return r
end

local slow_pid   -- the run killed in step 11: never left behind, whatever fails
local ok_all, err_all = pcall(function()
  local repo = new_repo("repo")
  git(repo, "add tiny.lua && " .. genv .. "git commit -q -m c1")
  local c1 = git(repo, "rev-parse HEAD")

  -- 1. a clean run: recorded under refs/histops/runs/<id>, work tree, index and HEAD untouched
  local index_before = hs.sys.sha256_file(repo .. "/.git/index")
  local r1 = timed("first run", function() return run_tiny(repo) end)
  assert(hs.sys.sha256_file(repo .. "/.git/index") == index_before, "the index was rewritten")
  assert(git(repo, "rev-parse HEAD") == c1 and git(repo, "status --porcelain") == "", "work tree or HEAD touched")
  assert(git(repo, "rev-parse --abbrev-ref HEAD") == "main")
  assert(git(repo, "for-each-ref --format='%(refname)' refs/histops/runs/") == "refs/histops/runs/" .. r1)
  local store = assert(hs.git.open(repo))
  local rec1 = assert(runs.read(r1, { store = store }))
  assert(rec1.status == "finished" and rec1.stored_status == "finished", rec1.status)
  assert(rec1.id == r1 and rec1.experiment == "tiny" and rec1.code.commit == c1 and rec1.code.branch == "main")
  assert(rec1.code.dirty == false and not rec1.code.detached and not rec1.code.unborn)
  assert(type(rec1.user) == "string" and rec1.host == hs.sys.hostname() and math.type(rec1.pid) == "integer")
  assert(type(rec1.heartbeat) == "number" and rec1.end_time >= rec1.start_time)
  assert(rec1.params.train.lr == 1e-2 and rec1.seed == 1 and rec1.data.fingerprint.all)
  assert(rec1.environment and rec1.environment.lua and rec1.environment.cpu and rec1.environment.threads)
  assert(rec1.pipeline and rec1.metrics.accuracy and rec1.metrics.accuracy_ci.lo and #rec1.history == 1)
  local model_sha = hs.sys.sha256_file(repo .. "/runs/tiny/" .. r1 .. "/model.safetensors")
  assert(rec1.artifacts["model.safetensors"] == model_sha, "model hash recorded")
  assert(rec1.artifacts["report.html"] and rec1.artifacts["split.csv"])
  local adir = store:artifact_dir()
  assert(adir == repo .. "/.git/histops/artifacts", adir)
  assert(hs.git.artifact_path(adir, model_sha), "model in the artifact store")
  assert(hs.git.artifact_verify(adir, model_sha))
  for _, f in ipairs { "run.json", "params.json", "metrics.json", "history.jsonl", "split.csv", "experiment.lua" } do
    assert(store:read("refs/histops/runs/" .. r1, f), "record file " .. f)
  end
  assert(store:read("refs/histops/runs/" .. r1, "dirty.diff") == nil, "no dirty.diff for a clean tree")
  assert(store:read("refs/histops/runs/" .. r1, "split.csv") == read(repo .. "/runs/tiny/" .. r1 .. "/split.csv"))
  local hist = store:log("refs/histops/runs/" .. r1)
  assert(#hist >= 3 and hist[#hist].message:find("running", 1, true) and hist[1].message:find("finished", 1, true),
    "record history: running -> progress -> finished")

  -- 2. a dirty tree: the diff goes with the run
  assert(hs.sys.write_file_atomic(repo .. "/tiny.lua", tiny_src .. "-- dirty edit\n"))
  local r2, err2 = run_tiny(repo, "--set train.lr=0.02")
  assert(err2:find("uncommitted changes", 1, true), err2)
  local rec2 = assert(runs.read(r2, { store = store }))
  assert(rec2.code.dirty == true and rec2.code.commit == c1 and rec2.code.dirty_files == 1)
  local dd = store:read(rec2.ref, "dirty.diff")
  assert(dd and dd:find("+-- dirty edit", 1, true), dd)
  assert(rec2.overrides[1] == "train.lr=0.02" and rec2.params.train.lr == 0.02)
  sh(("cd %s && git checkout -q tiny.lua"):format(q(repo)))

  -- 3. a second commit on main, a feature branch with its own commit
  set_lr(repo, "0.03")
  git(repo, "commit -qam c2")
  local c2 = git(repo, "rev-parse HEAD")
  local r3 = run_tiny(repo)
  git(repo, "checkout -q -b feature")
  set_lr(repo, "0.05")
  git(repo, "commit -qam c3-feature")
  local c3 = git(repo, "rev-parse HEAD")
  local r4 = run_tiny(repo)
  git(repo, "checkout -q main")

  -- 4. listing: newest first, with code state and headline metrics
  local list = runs.list { store = store }
  assert(#list == 4, #list)
  assert(list[1].id == r4 and list[2].id == r3 and list[3].id == r2 and list[4].id == r1)
  assert(list[1].code.branch == "feature" and list[1].code.commit == c3 and list[3].code.dirty == true)
  assert(list[1].status == "finished" and type(list[1].metrics.macro_f1) == "number")
  local out, ok = histops(repo, "runs --json")
  assert(ok)
  local jl = json.decode(out)
  assert(#jl == 4 and jl[1].id == r4 and jl[4].id == r1 and jl[1].code.commit == c3)
  out = histops(repo, "runs")
  assert(out:find(r1, 1, true) and out:find("feature", 1, true) and out:find("macro_f1", 1, true), out)
  assert(#json.decode((histops(repo, "runs --json --experiment nope"))) == 0)

  -- 5. resolving: run id, prefix, branch, commit-ish (clean run preferred), errors
  assert(runs.resolve(r1, { store = store }).id == r1)
  assert(runs.resolve(r4:sub(1, -2), { store = store }).id == r4, "unique prefix")
  assert(runs.resolve("main", { store = store }).id == r3)
  assert(runs.resolve("feature", { store = store }).id == r4)
  assert(runs.resolve(c1, { store = store }).id == r1, "clean run preferred at c1")
  assert(runs.resolve("main~1", { store = store }).id == r1)
  assert(runs.resolve("latest", { store = store }).id == r4)
  local none, msg = runs.resolve("nope", { store = store })
  assert(none == nil and msg:find("neither a run id nor a commit", 1, true), msg)
  none, msg = runs.read("2", { store = store })
  assert(none == nil and msg:find("ambiguous", 1, true), msg)
  none, msg = runs.resolve("main", { store = store, experiment = "other" })
  assert(none == nil and msg:find("no finished run of experiment other", 1, true), msg)

  -- 6. compare, field by field
  out, ok = histops(repo, ("compare %s feature --json"):format(r1))
  assert(ok, out)
  local cmp = json.decode(out)
  assert(cmp.runs[1].id == r1 and cmp.runs[2].id == r4 and cmp.runs[2].spec == "feature")
  assert(cmp.runs[1].commit == c1 and cmp.runs[2].commit == c3 and cmp.runs[2].branch == "feature")
  local pk = {}
  for _, p in ipairs(cmp.params) do pk[p.key] = p end
  assert(pk["train.lr"] and pk["train.lr"].values[1] == 0.01 and pk["train.lr"].values[2] == 0.05 and pk["train.lr"].differs)
  assert(not pk["train.epochs"], "only differences by default")
  local mk = {}
  for _, m in ipairs(cmp.metrics) do mk[m.name] = m end
  local rec4 = runs.read(r4, { store = store })
  local acc = mk.accuracy
  assert(acc.values[1] == rec1.metrics.accuracy and acc.values[2] == rec4.metrics.accuracy)
  local d = acc.deltas[1]
  assert(math.abs(d.delta - (rec4.metrics.accuracy - rec1.metrics.accuracy)) < 1e-12)
  assert(d.lo <= d.delta and d.delta <= d.hi and d.method, "delta interval")
  assert(acc.cis[1].lo == rec1.metrics.accuracy_ci.lo and acc.cis[2].hi == rec4.metrics.accuracy_ci.hi)
  local pcs = 0
  for _, c in ipairs(cmp.per_class) do
    if c.class == "positive" and c.metric == "f1" then
      pcs = pcs + 1
      assert(math.abs(c.deltas[1].delta - (rec4.metrics.per_class.positive.f1 - rec1.metrics.per_class.positive.f1)) < 1e-12)
    end
  end
  assert(pcs == 1, "per-class delta")
  assert(#cmp.code == 1 and cmp.code[1].from == c1 and cmp.code[1].to == c3)
  assert(cmp.code[1].diff:find("-  train = { epochs = 1, batch = 8, optimizer = \"adam\", lr = 1e-2 },", 1, true)
    and cmp.code[1].diff:find("lr = 0.05 }", 1, true), cmp.code[1].diff)
  out = histops(repo, ("compare %s %s --all --json"):format(r1, r2))
  cmp = json.decode(out)
  assert(#cmp.dirty == 1 and cmp.dirty[1].id == r2 and cmp.dirty[1].diff:find("dirty edit", 1, true))
  local nall = #cmp.params
  assert(nall > 30, "--all lists every parameter")
  out = histops(repo, ("compare %s %s main"):format(r1, r2))
  assert(out:find("parameters (differences only", 1, true) and out:find("delta B", 1, true) and out:find("delta C", 1, true))
  assert(out:find("code diff A..C", 1, true) and out:find("uncommitted changes of run " .. r2, 1, true), out)
  out, ok = histops(repo, "compare " .. r1)
  assert(not ok, "compare needs two runs")
  local _, ok2, e2 = histops(repo, "compare " .. r1 .. " nope")
  assert(not ok2 and e2:find("neither a run id", 1, true), e2)

  -- 7. show
  out, ok = histops(repo, "show " .. r2 .. " --diff")
  assert(ok and out:find("dirty edit", 1, true) and out:find("train.lr", 1, true) and out:find("model.safetensors", 1, true), out)
  out = histops(repo, "show feature --json")
  assert(json.decode(out).id == r4)

  -- 8. log across commits, with an HTML chart
  out, ok = histops(repo, "log tiny --json")
  assert(ok, out)
  local lg = json.decode(out)
  assert(lg.metric == "macro_f1" and #lg.points == 2 and lg.points[1].commit == c2 and lg.points[2].commit == c1)
  assert(lg.points[2].run == r1 and lg.points[2].runs == 2 and lg.points[1].value == runs.read(r3, { store = store }).metrics.macro_f1)
  out, ok = histops(repo, ("log tiny --branch feature --metric accuracy -o %s/log.html"):format(tmp))
  assert(ok and out:find("accuracy of experiment tiny along feature", 1, true), out)
  local html = read(tmp .. "/log.html")
  assert(html:find("<svg", 1, true) and html:find(c3:sub(1, 8), 1, true) and not html:find("https://", 1, true))

  -- 9. side-by-side report
  out, ok = histops(repo, ("report --compare %s feature -o %s/cmp.html"):format(r1, tmp))
  assert(ok, out)
  html = read(tmp .. "/cmp.html")
  local _, heat = html:gsub('<svg class="heatmap"', "")
  local _, imgs = html:gsub("<img ", "")
  assert(heat == 2 and imgs >= 2 and html:find("Sample predictions", 1, true) and html:find(r4, 1, true), heat .. " " .. imgs)
  assert(html:find("training loss", 1, true) and html:find("train.lr", 1, true))
  out, ok = histops(repo, ("report %s -o %s/one.html"):format(r1, tmp))
  assert(ok and read(tmp .. "/one.html") == read(repo .. "/runs/tiny/" .. r1 .. "/report.html"))

  -- 10. two concurrent runs from two processes: both recorded
  timed("two concurrent runs", function()
    local cmd = ("%s %s run tiny.lua --quiet --set train.epochs=30 --set train.early_stopping.patience=0 >/dev/null 2>&1")
      :format(henv, q(exe))
    sh(("cd %s && (%s & %s & wait)"):format(q(repo), cmd, cmd))
  end)
  list = runs.list { store = store }
  assert(#list == 6, #list)
  for _, s in ipairs(list) do assert(s.status == "finished", s.id .. " " .. s.status) end
  assert(list[1].epochs == 30 and list[2].epochs == 30 and list[1].id ~= list[2].id)
  assert(list[1].start_time < list[2].end_time and list[2].start_time < list[1].end_time, "the two runs overlapped")

  -- 11. a run killed with SIGKILL mid-training is shown as killed, its ref is sound
  -- "cd; cmd & echo $!": the & binds to the simple command, so $! is histops itself
  local pid = (capture(("cd %s; %s %s run tiny.lua --quiet --set train.epochs=100000 --set train.early_stopping.patience=0 >/dev/null 2>&1 & echo $!")
    :format(q(repo), henv, q(exe))):gsub("%s+$", ""))
  slow_pid = pid
  local killed
  for _ = 1, 200 do
    for _, s in ipairs(runs.list { store = store }) do
      if s.stored_status == "running" then killed = s.id end
    end
    if killed then break end
    hs.sys.sleep(0.05)
  end
  assert(killed, "the slow run never appeared")
  hs.sys.sleep(0.3)
  assert(runs.read(killed, { store = store }).status == "running", "alive while running")
  sh("kill -9 " .. pid)
  for _ = 1, 100 do
    if not runs.process_alive(tonumber(pid)) then break end
    hs.sys.sleep(0.05)
  end
  local krec = assert(runs.read(killed, { store = store }))
  assert(krec.status == "killed" and krec.stored_status == "running", krec.status)
  assert(krec.pid == math.tointeger(tonumber(pid)) and krec.host == hs.sys.hostname(), "the killed process is the recorded one")
  assert(git(repo, "fsck --no-progress 2>&1 && echo fsck-ok"):find("fsck-ok", 1, true), "repository sound after kill -9")
  out = histops(repo, "runs")
  assert(out:find(killed:gsub("%p", "%%%0") .. "%s+tiny%s+killed"), out)
  -- another host: killed once the heartbeat is older than 10 minutes
  local other = { id = "remote-run", experiment = "tiny", status = "running", host = "elsewhere", pid = 1,
    start_time = hs.sys.time() - 3600, heartbeat = hs.sys.time() - 3600, code = {}, metrics = {} }
  store:write("refs/histops/runs/remote-run", { ["run.json"] = json.encode(other) }, "remote", false)
  assert(runs.read("remote-run", { store = store }).status == "killed")
  other.heartbeat = hs.sys.time() - 5
  store:write("refs/histops/runs/remote-run", { ["run.json"] = json.encode(other) }, "remote")
  assert(runs.read("remote-run", { store = store }).status == "running")
  store:delete("refs/histops/runs/remote-run")

  -- 12. detached HEAD
  git(repo, "checkout -q --detach " .. c1)
  local r5, err5 = run_tiny(repo)
  assert(err5:find("HEAD is detached", 1, true), err5)
  local rec5 = runs.read(r5, { store = store })
  assert(rec5.code.detached == true and rec5.code.branch == "" and rec5.code.commit == c1)
  git(repo, "checkout -q main")

  -- 13. a linked worktree records into the shared repository
  git(repo, ("worktree add -q -b wt %s/wt %s"):format(tmp, c2))
  sh(("cd %s/wt && printf 'runs/\\n' >> %s/.git/info/exclude"):format(q(tmp), q(repo)))
  local r6, err6 = run_tiny(tmp .. "/wt")
  assert(err6:find("linked worktree", 1, true), err6)
  local rec6 = runs.read(r6, { store = store })
  assert(rec6.code.worktree == true and rec6.code.branch == "wt" and rec6.code.commit == c2 and not rec6.code.dirty)
  local wstore = assert(hs.git.open(tmp .. "/wt"))
  assert(runs.read(r6, { store = wstore }).id == r6 and #runs.list { store = wstore } == #runs.list { store = store })

  -- 14. a repository with no commits yet
  local unborn = new_repo("unborn")
  git(unborn, "add tiny.lua")
  local r7, err7 = run_tiny(unborn)
  assert(err7:find("no commits yet", 1, true), err7)
  local rec7 = runs.read(r7, { store = assert(hs.git.open(unborn)) })
  assert(rec7.status == "finished" and rec7.code.unborn == true and rec7.code.commit == "" and rec7.code.dirty == true)
  out = histops(unborn, "runs")
  assert(out:find(r7, 1, true) and out:find("(none)", 1, true), out)
  none, msg = runs.resolve("main", { repo = unborn })
  assert(none == nil and msg:find("no commits yet", 1, true), msg)

  -- 15. a folder outside any repository: the run still writes its folder, with a clear message
  local plain = tmp .. "/plain"
  sh("mkdir -p " .. q(plain))
  assert(hs.sys.write_file_atomic(plain .. "/tiny.lua", tiny_src))
  local r8, err8 = run_tiny(plain)
  assert(err8:find("not recorded in git", 1, true) and err8:find("not inside a git repository", 1, true)
    and err8:find("the only record", 1, true), err8)
  assert(read(plain .. "/runs/tiny/" .. r8 .. "/run.json"), "run folder written")
  local _, okp, errp = histops(plain, "runs")
  assert(not okp and errp:find("not inside a git repository", 1, true) and errp:find("-C DIR", 1, true), errp)

  -- 16. git gc keeps every run (packed refs, packed objects)
  local before = runs.list { store = store }
  sh(("cd %s && git gc -q --prune=now 2>/dev/null"):format(q(repo)))
  store:close()
  store = assert(hs.git.open(repo))
  local after = runs.list { store = store }
  assert(#after == #before and #after == 9, #after)
  for i = 1, #after do assert(after[i].id == before[i].id and after[i].record_commit == before[i].record_commit) end
  assert(runs.read(r2, { store = store }).code.dirty and store:read("refs/histops/runs/" .. r2, "dirty.diff"))

  -- 17. push to a bare repository, fetch into a fresh clone
  sh(("git init -q --bare %s/remote.git"):format(q(tmp)))
  sh(("cd %s && git push -q %s/remote.git main feature 'refs/histops/*:refs/histops/*' 2>/dev/null"):format(q(repo), q(tmp)))
  sh(("git clone -q %s/remote.git %s/clone 2>/dev/null"):format(q(tmp), q(tmp)))
  assert(#runs.list { repo = tmp .. "/clone" } == 0, "a plain clone does not fetch runs")
  sh(("cd %s/clone && git fetch -q origin 'refs/histops/*:refs/histops/*'"):format(q(tmp)))
  local cl = runs.list { repo = tmp .. "/clone" }
  assert(#cl == #after, #cl)
  for i = 1, #cl do assert(cl[i].id == after[i].id and cl[i].record_commit == after[i].record_commit) end
  out, ok = histops(tmp .. "/clone", ("compare %s %s --json"):format(r1, r4))
  assert(ok and #json.decode(out).code[1].diff > 0, out)
  out = histops(tmp .. "/clone", "show " .. r1)
  assert(out:find("not in this store", 1, true), "artifacts are shared separately")
  -- a shared artifact store (HISTOPS_ARTIFACTS): the clone finds the weights there
  out = histops(tmp .. "/clone", "show " .. r1, "HISTOPS_ARTIFACTS=" .. q(adir) .. " ")
  assert(out:find(adir, 1, true) and not out:find("not in this store", 1, true), out)

  -- 18. MLflow file-store export with DVC-style files, checked against the format
  out, ok = histops(repo, ("export mlflow %s/export"):format(tmp))
  assert(ok and out:find("exported 9 run", 1, true), out)
  local root = tmp .. "/export/mlruns"
  assert(read(root .. "/0/meta.yaml"):find('name: "Default"', 1, true))
  local expdir
  for e in capture("ls " .. q(root)):gmatch("[^\n]+") do
    if e ~= "0" then assert(not expdir); expdir = e end
  end
  assert(expdir and expdir:match("^%d+$"), "numeric experiment id (migrate-filestore needs int ids)")
  local emeta = read(root .. "/" .. expdir .. "/meta.yaml")
  assert(emeta:find('name: "tiny"', 1, true) and emeta:find(('experiment_id: "%s"'):format(expdir), 1, true)
    and emeta:find('lifecycle_stage: "active"', 1, true) and emeta:find("artifact_location: \"file:///", 1, true))
  local function run_dir(id) return root .. "/" .. expdir .. "/" .. id end
  local meta = read(run_dir(r1) .. "/meta.yaml")
  local fields = {}
  for k, v in meta:gmatch("([%w_]+): ([^\n]*)") do fields[k] = v end
  assert(fields.run_id == '"' .. r1 .. '"' and fields.run_uuid == fields.run_id and fields.status == "3")
  assert(fields.experiment_id == '"' .. expdir .. '"' and fields.lifecycle_stage == '"active"' and fields.tags == "[]")
  assert(tonumber(fields.start_time) == math.floor(rec1.start_time * 1000) and tonumber(fields.end_time))
  assert(fields.artifact_uri == ('"file://%s/artifacts"'):format(run_dir(r1)), fields.artifact_uri)
  assert(read(run_dir(killed) .. "/meta.yaml"):find("status: 5", 1, true), "killed -> KILLED (5)")
  local lines = {}
  for l in read(run_dir(r1) .. "/metrics/val_macro_f1"):gmatch("[^\n]+") do lines[#lines + 1] = l end
  assert(#lines == 1 and lines[1]:match("^%d+ [%d%.e%-]+ 1$"), lines[1])
  assert(math.abs(tonumber(lines[1]:match("^%d+ (%S+)")) - rec1.history[1].macro_f1) < 1e-12)
  local tl = read(run_dir(r1) .. "/metrics/test_accuracy")
  assert(tl:match("^%d+ (%S+) 0\n$") and tonumber(tl:match("^%d+ (%S+)")) == rec1.metrics.accuracy)
  assert(read(run_dir(r1) .. "/params/train.lr") == "0.0100" or tonumber(read(run_dir(r1) .. "/params/train.lr")) == 0.01)
  assert(read(run_dir(r1) .. "/tags/mlflow.source.git.commit") == c1)
  assert(read(run_dir(r4) .. "/tags/mlflow.source.git.branch") == "feature")
  assert(read(run_dir(r2) .. "/tags/histops.dirty") == "true" and read(run_dir(r1) .. "/tags/mlflow.runName") == r1)
  assert(hs.sys.sha256_file(run_dir(r1) .. "/artifacts/model.safetensors") == model_sha)
  local dm = json.decode(read(run_dir(r1) .. "/metrics.json"))
  assert(dm.accuracy == rec1.metrics.accuracy and dm.accuracy_ci.lo == rec1.metrics.accuracy_ci.lo and not dm.confusion)
  local py = read(run_dir(r4) .. "/params.yaml")
  assert(py:find("\ntrain:\n", 1, true) and py:find("\n  lr: 0.05\n", 1, true) and py:find("\n  kind: \"synthetic_ihc\"\n", 1, true), py)
  -- every metric line is "timestamp value step"; every param/tag name is a valid MLflow key
  for f in capture(("find %s -path '*/metrics/*' -type f"):format(q(root))):gmatch("[^\n]+") do
    for l in read(f):gmatch("[^\n]+") do assert(l:match("^%d+ %S+ %-?%d+$"), f .. ": " .. l) end
    assert(f:match("/metrics/([^/]+)$"):match("^[%w_%.%- /]+$"), f)
  end

  -- a commit without runs: its nearest ancestor's run, and the note says so
  git(repo, "commit -q --allow-empty -m docs-only")
  local rec9, note9 = runs.resolve("main", { store = store })
  assert(rec9.code.commit == c2 and note9:find("ancestor", 1, true) and note9:find("1 commit(s) back", 1, true), note9)
  out = histops(repo, ("compare %s main"):format(r1))
  assert(out:find("note: B: no finished run at main itself", 1, true), out)
  assert(git(repo, "status --porcelain") == "", "the work tree is clean after all these runs")

  -- 19. listing thousands of runs reads commit messages only
  local many = new_repo("many")
  git(many, "add tiny.lua && " .. genv .. "git commit -q -m one")
  local head = git(many, "rev-parse HEAD")
  local N = 3000
  local stream = {}
  for i = 1, N do
    local id = ("20250101-000000-%06d"):format(i)
    local s = json.encode { id = id, experiment = i % 2 == 0 and "even" or "odd", status = "finished",
      start_time = 1.7e9 + i, code = { commit = head, branch = "main", dirty = false }, metrics = { accuracy = i / N } }
    local msg = ("run %s finished\n\nhistops-run: %s\n"):format(id, s)
    local body = json.encode { id = id, status = "finished" }
    stream[#stream + 1] = ("commit refs/histops/runs/%s\ncommitter t <t@example.org> %d +0000\ndata %d\n%s\nM 100644 inline run.json\ndata %d\n%s\n")
      :format(id, 1700000000 + i, #msg, msg, #body, body)
  end
  assert(hs.sys.write_file_atomic(tmp .. "/fi.txt", table.concat(stream)))
  sh(("cd %s && git fast-import --quiet < %s/fi.txt"):format(q(many), q(tmp)))
  local mstore = assert(hs.git.open(many))
  local big = timed(("list %d runs"):format(N), function() return runs.list { store = mstore } end)
  assert(#big == N and big[1].id == ("20250101-000000-%06d"):format(N) and big[N].metrics.accuracy == 1 / N)
  local t0 = hs.sys.clock()
  local odd = runs.list { store = mstore, experiment = "odd", limit = 10 }
  assert(#odd == 10 and odd[1].experiment == "odd")
  assert(hs.sys.clock() - t0 < 5, "listing thousands of runs must be fast")
  out, ok = histops(many, "runs --experiment even --limit 5")
  assert(ok and select(2, out:gsub("\n", "")) == 7, out)
end)

if slow_pid then os.execute("kill -9 " .. slow_pid .. " 2>/dev/null") end
io.stderr:write("test_runs timings: ", table.concat(timings, ", "), "\n")
if os.getenv("HS_KEEP_TMP") then
  io.stderr:write("kept ", tmp, "\n")
else
  os.execute("rm -rf " .. q(tmp))
end
if not ok_all then error(err_all, 0) end
print("test_runs: ok")
