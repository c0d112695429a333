-- tests/lua/test_sweep.lua: hyper-parameter sweeps (hs.sweep, histops sweep / runs --sweep /
-- sweep-report). Pure parts with fake results: space parsing and its errors, grid order, counter-based
-- random trials, TPE proposals independent of result order, successive-halving promotion and rungs,
-- metric lookup. Then real sweeps of a tiny experiment in a throw-away repository: --jobs 2 records
-- the same trials and best result as --jobs 1 (TPE), a sweep SIGKILLed mid-way (parent and a child)
-- resumes without duplicate trial runs, bad spaces fail before any trial, the ranking and the report.
-- Run: build/histops tests/lua/test_sweep.lua
local hs = require "histops"
local json = hs.json
local sweep = require "hs.sweep"
local config = require "hs.config"

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

local function same(a, b) return json.encode(a, { sort_keys = true }) == json.encode(b, { sort_keys = true }) end

local timings = {}
local function timed(name, f)
  local t0 = hs.sys.clock()
  local r = table.pack(f())
  timings[#timings + 1] = ("%s %.1fs"):format(name, hs.sys.clock() - t0)
  return table.unpack(r, 1, r.n)
end

-- ---------------------------------------------------------------- 0. hs.proc (child processes)
do
  local proc = require "hs.proc"
  local out = os.tmpname()
  local pid = assert(proc.spawn({ "sh", "-c", "echo \"$SWEEP_X\" $0; exit 3", "arg0" }, { env = { SWEEP_X = "hello" }, stdout = out }))
  local p, how, code = proc.wait(pid)
  assert(p == pid and how == "exit" and code == 3, ("%s %s %s"):format(p, how, code))
  assert(hs.sys.read_file(out) == "hello arg0\n", hs.sys.read_file(out))
  local slow = assert(proc.spawn({ "sleep", "30" }))
  assert(proc.wait(slow, true) == nil, "nohang: nothing ended yet")
  assert(proc.kill(slow, "KILL"))
  p, how, code = proc.wait()
  assert(p == slow and how == "signal" and code == 9)
  local none, msg = proc.wait()
  assert(none == nil and msg:find("No child"), msg)
  local bad, berr = proc.spawn({ "/no/such/program" })
  assert(bad == nil and berr:find("cannot start /no/such/program"), berr)
  check_error("argv must be a non%-empty array", proc.spawn, {})
  check_error("bad option 'stdout'", proc.spawn, { "true" }, { stdout = 1 })
  check_error("invalid option 'BOGUS'", proc.kill, 1, "BOGUS")
  os.remove(out)
end

-- ---------------------------------------------------------------- 1. the search space
do
  local key, d = sweep.parse_cli_param("train.lr=log:1e-4:1e-1")
  assert(key == "train.lr" and d.log_uniform[1] == 1e-4 and d.log_uniform[2] == 1e-1)
  key, d = sweep.parse_cli_param("extra.width=8,16,32")
  assert(key == "extra.width" and same(d.choice, { 8, 16, 32 }))
  key, d = sweep.parse_cli_param("input.size={32,32},{40,40}")
  assert(same(d.choice, { { 32, 32 }, { 40, 40 } }), json.encode(d))
  key, d = sweep.parse_cli_param("train.optimizer=adam,sgd")
  assert(same(d.choice, { "adam", "sgd" }))
  key, d = sweep.parse_cli_param("train.epochs=int:1:5")
  assert(key == "train.epochs" and d.int_uniform[1] == 1 and d.int_uniform[2] == 5)
  check_error("expected key=", sweep.parse_cli_param, "train.lr")
  check_error("'gauss' is not one of log, uniform, int", sweep.parse_cli_param, "train.lr=gauss:0:1")
  check_error("bounds must be numbers", sweep.parse_cli_param, "train.lr=log:a:1")
  check_error("empty choice 2", sweep.parse_cli_param, "extra.width=8,,16")

  check_error("'train.lr': choice needs a non%-empty list", sweep.normalize_param, "train.lr", { choice = {} })
  check_error("'train.lr': min 0.1 must be below max 0.01", sweep.normalize_param, "train.lr", { uniform = { 0.1, 0.01 } })
  check_error("min 5 > max 1", sweep.normalize_param, "train.epochs", { int_uniform = { 5, 1 } })
  check_error("log_uniform needs min > 0", sweep.normalize_param, "train.lr", { log_uniform = { 0, 1 } })
  check_error("unknown field 'normal'", sweep.normalize_param, "train.lr", { normal = { 0, 1 } })
  check_error("exactly one of", sweep.normalize_param, "train.lr", { uniform = { 0, 1 }, log_uniform = { 1, 2 } })
  check_error("dotted setting path", sweep.normalize_param, "train..lr", { choice = { 1 } })
  assert(sweep.normalize_param("extra.width", { 4, 8 }).kind == "choice", "a plain list is a choice")

  check_error("method 'bayes' is not one of", sweep.definition, { params = { ["train.lr"] = { 1 } }, method = "bayes" })
  check_error("no parameters to search", sweep.definition, {})
  check_error("grid search needs choice values", sweep.definition,
    { method = "grid", params = { ["train.lr"] = { uniform = { 0, 1 } } } })
  check_error("halving needs budget", sweep.definition, { method = "halving", params = { ["train.lr"] = { 1, 2 } } })
  check_error("unknown field 'param'", sweep.definition, { param = {} })
  check_error("mode 'maximum' is not max or min", sweep.definition, { params = { ["train.lr"] = { 1 } }, mode = "maximum" })

  -- keys are checked against the configuration, with a suggestion
  local cfg = config.deep_copy(config.defaults)
  local def = sweep.definition({ params = { ["train.lrr"] = { log_uniform = { 1e-3, 1e-1 } } } })
  check_error("sweep parameter 'train.lrr': unknown setting 'train.lrr' %(did you mean 'lr'%?%)", sweep.validate, def, cfg)
  def = sweep.definition({ params = { ["optim.lr"] = { 1e-3 } } })
  check_error("sweep parameter 'optim.lr': unknown setting 'optim'", sweep.validate, def, cfg)
  def = sweep.definition({ params = { ["train.lr"] = { 1e-3 }, ["extra.width"] = { 4 } }, metric = "val.loss!" })
  check_error("metric 'val.loss!' must be", sweep.validate, def, cfg)
end

-- ---------------------------------------------------------------- 2. grid and random
do
  local def = sweep.definition({ method = "grid", params = { ["b.x"] = { 1, 2, 3 }, ["a.y"] = { "p", "q" },
    ["c.z"] = { log_uniform = { 1e-3, 1e-1 }, steps = 3 } } })
  local g = sweep.grid(def)
  assert(#g == 18, #g)
  assert(g[1]["a.y"] == "p" and g[1]["b.x"] == 1 and g[1]["c.z"] == 1e-3, json.encode(g[1]))
  assert(g[2]["c.z"] == 0.01 and g[3]["c.z"] == 0.1, "the last key varies fastest")
  assert(g[18]["a.y"] == "q" and g[18]["b.x"] == 3)
  local seen = {}
  for _, c in ipairs(g) do
    local k = json.encode(c, { sort_keys = true })
    assert(not seen[k], "duplicate grid point " .. k)
    seen[k] = true
  end
  assert(same(sweep.next_batch(def, {})[5].params, g[5]) and sweep.next_batch(def, { {} }) == nil)

  local rdef = sweep.definition({ method = "random", trials = 20, seed = 7, params = {
    ["train.lr"] = { log_uniform = { 1e-4, 1e-1 } }, ["extra.width"] = { 8, 16, 32 },
    ["train.epochs"] = { int_uniform = { 1, 5 } }, ["augment.hed_sigma"] = { uniform = { 0, 0.1 } } } })
  local a, b = sweep.next_batch(rdef, {}), sweep.next_batch(rdef, {})
  assert(#a == 20 and same(a, b), "same seed, same trials")
  -- trial i depends only on (seed, i): a longer sweep starts with the same trials
  local rdef2 = config.deep_copy(rdef); rdef2.trials = 30
  local c = sweep.next_batch(rdef2, {})
  for i = 1, 20 do assert(same(c[i], a[i]), "trial " .. i .. " changed with the trial count") end
  local rdef3 = config.deep_copy(rdef); rdef3.seed = 8
  assert(not same(sweep.next_batch(rdef3, {}), a), "another seed, other trials")
  local widths, ep = {}, {}
  for _, t in ipairs(a) do
    local p = t.params
    assert(p["train.lr"] >= 1e-4 and p["train.lr"] <= 1e-1)
    assert(p["augment.hed_sigma"] >= 0 and p["augment.hed_sigma"] <= 0.1)
    assert(math.type(p["train.epochs"]) == "integer" and p["train.epochs"] >= 1 and p["train.epochs"] <= 5)
    widths[p["extra.width"]] = true; ep[p["train.epochs"]] = true
  end
  assert(widths[8] and widths[16] and widths[32], "every choice drawn in 20 trials")
  -- a value's --set text reads back as the same number
  for _, t in ipairs(a) do
    assert(tonumber(sweep.format_value(t.params["train.lr"])) == t.params["train.lr"])
  end
end

-- ---------------------------------------------------------------- 3. TPE with fake results
do
  local def = sweep.definition({ method = "tpe", trials = 12, batch = 3, seed = 5, n_startup = 6, params = {
    ["train.lr"] = { log_uniform = { 1e-4, 1e-1 } }, ["extra.width"] = { 8, 16, 32 } } })
  -- the objective: best at lr = 1e-2, width 16
  local function f(p) return -math.abs(math.log(p["train.lr"], 10) + 2) - (p["extra.width"] == 16 and 0 or 0.5) end
  local trials = {}
  local function complete(batch)
    for _, t in ipairs(batch) do
      trials[#trials + 1] = { index = #trials + 1, params = t.params, value = f(t.params) }
    end
  end
  local b1 = sweep.next_batch(def, trials)
  assert(#b1 == 6, "startup batch")
  complete(b1)
  local b2 = sweep.next_batch(def, trials)
  assert(#b2 == 3, "then batches of 3")
  -- the proposals depend on the completed results only, not on the order they arrived in
  local shuffled = {}
  for i = #trials, 1, -1 do shuffled[#shuffled + 1] = trials[i] end
  assert(same(sweep.next_batch(def, shuffled), b2), "proposals independent of completion order")
  assert(same(sweep.next_batch(def, trials), b2), "proposals deterministic")
  assert(not same(b2[1].params, b2[2].params), "a batch's proposals differ")
  complete(b2)
  complete(sweep.next_batch(def, trials))
  assert(#trials == 12 and sweep.next_batch(def, trials) == nil, "stops at the trial count")
  -- TPE concentrates near the optimum: the proposed trials beat the random start on average
  local s1, s2 = 0, 0
  for i = 1, 6 do s1 = s1 + trials[i].value end
  for i = 7, 12 do s2 = s2 + trials[i].value end
  assert(s2 / 6 > s1 / 6, ("tpe proposals (mean %.3f) better than random (%.3f)"):format(s2 / 6, s1 / 6))
  -- minimising the same objective turns the proposals around
  local dmin = config.deep_copy(def); dmin.mode = "min"
  assert(not same(sweep.next_batch(dmin, { table.unpack(trials, 1, 6) }), b2))
end

-- ---------------------------------------------------------------- 4. successive halving
do
  local r = { { index = 1, config = 1, value = 0.5 }, { index = 2, config = 2, value = 0.9 },
    { index = 3, config = 3, value = 0.9 }, { index = 4, config = 4, value = nil }, { index = 5, config = 5, value = 0.7 },
    { index = 6, config = 6, value = 0.1 } }
  assert(same(sweep.halving_promote(r, 3, "max"), { 2, 3 }), "top n/eta, ties by trial index")
  assert(same(sweep.halving_promote(r, 2, "max"), { 2, 3, 5 }))
  assert(same(sweep.halving_promote(r, 3, "min"), { 6, 1 }), "min mode; failed never promoted")
  assert(same(sweep.halving_promote({ r[4] }, 3, "max"), {}), "nothing to promote")
  local b = { param = "train.epochs", min = 1, max = 9, eta = 3 }
  assert(sweep.halving_budget(b, 0) == 1 and sweep.halving_budget(b, 1) == 3 and sweep.halving_budget(b, 2) == 9)
  assert(sweep.halving_budget(b, 3) == nil)
  assert(sweep.halving_budget({ min = 1, max = 5, eta = 3 }, 2) == 5, "last rung capped at max")

  local def = sweep.definition({ method = "halving", seed = 3, params = { ["train.lr"] = { log_uniform = { 1e-4, 1e-1 } } },
    budget = { param = "train.epochs", min = 1, max = 9, eta = 3 } })
  local trials, rungs = {}, {}
  while true do
    local batch = sweep.next_batch(def, trials)
    if not batch then break end
    for _, t in ipairs(batch) do
      -- fake metric: closer to lr 1e-3 is better, more epochs slightly better
      local v = -math.abs(math.log(t.params["train.lr"], 10) + 3) + 0.01 * t.params["train.epochs"]
      trials[#trials + 1] = { index = #trials + 1, params = t.params, rung = t.rung, config = t.config, value = v }
      rungs[t.rung] = (rungs[t.rung] or 0) + 1
      assert(t.params["train.epochs"] == sweep.halving_budget(def.budget, t.rung))
    end
  end
  assert(rungs[0] == 9 and rungs[1] == 3 and rungs[2] == 1, ("%s %s %s"):format(rungs[0], rungs[1], rungs[2]))
  -- the final config is rung 0's best
  local best0
  for _, t in ipairs(trials) do
    if t.rung == 0 and (not best0 or t.value > best0.value) then best0 = t end
  end
  assert(trials[#trials].config == best0.config, "the best rung-0 configuration reaches the last rung")
  assert(sweep.rank(trials, "max")[1].index == #trials, "ranking puts the highest rung first")
end

-- ---------------------------------------------------------------- 5. metric lookup
do
  local rec = { id = "r1", metrics = { accuracy = 0.8, best_epoch = 2 },
    history = { { epoch = 1, macro_f1 = 0.5 }, { epoch = 2, macro_f1 = 0.7 }, { epoch = 3, macro_f1 = 0.6 } } }
  assert(sweep.metric_value(rec, "val.macro_f1") == 0.7, "the best epoch's validation value")
  assert(sweep.metric_value(rec, "accuracy") == 0.8)
  local v, err = sweep.metric_value(rec, "val.loss")
  assert(v == nil and err:find("no metric 'val.loss'") and err:find("val.macro_f1") and err:find("accuracy"), err)
end

-- ---------------------------------------------------------------- 6. real sweeps in a repository
local capture, q = T.capture, T.q
local exe = T.exe
local tmp = T.tmpdir("sweep")
local genv = T.GIT_ENV
local henv = ("HISTOPS_CACHE=%s/cache HISTOPS_GIT_FSYNC=0 GIT_CEILING_DIRECTORIES=%s "):format(tmp, tmp)
local repo = tmp .. "/repo"

local TINY = assert(T.read(T.here .. "/runs/swtiny.lua"), "fixture tests/lua/runs/swtiny.lua missing")

-- histops in the repository; returns stdout, ok, stderr
local function histops(args, extra_env)
  local errf = tmp .. "/stderr.txt"
  local out, ok = capture(("cd %s && %s%s %s %s 2>%s"):format(q(repo), henv, extra_env or "", q(exe), args, q(errf)))
  return out, ok, T.read(errf) or ""
end

local function ranking(id)
  local out, ok, err = histops("runs --sweep " .. id .. " --json")
  assert(ok, err)
  return json.decode(out)
end

-- the sweep's trials: {index -> {params, value}} and the best
local function trials_of(id)
  local r = ranking(id)
  local byindex = {}
  for _, t in ipairs(r.trials) do byindex[t.index] = { params = t.params, value = t.value, status = t.status } end
  return byindex, r.best, r
end

local runs = require "hs.runs"
local pids = {}
local bg_pid   -- the sweep killed in 6d: never left behind, whatever fails
local ok_all, err_all = pcall(function()
  assert(os.execute(("git init -q -b main %s"):format(q(repo))))
  assert(hs.sys.write_file_atomic(repo .. "/swtiny.lua", TINY))
  assert(os.execute(("printf 'runs/\\n' >> %s/.git/info/exclude"):format(q(repo))))
  assert(os.execute(("cd %s && git add swtiny.lua && %s git commit -q -m c1"):format(q(repo), genv)))
  local store = assert(hs.git.open(repo))

  -- 6a. a bad space fails before any trial runs, naming the parameter
  local out, ok, err = histops("sweep swtiny.lua --param train.lrr=log:1e-3:1e-1")
  assert(not ok and err:find("sweep parameter 'train.lrr'") and err:find("did you mean 'lr'"), err)
  out, ok, err = histops("sweep swtiny.lua --param train.lr=uniform:0.1:0.01")
  assert(not ok and err:find("min 0.1 must be below max 0.01"), err)
  out, ok, err = histops("sweep swtiny.lua --param extra.width=")
  assert(not ok and err:find("bad %-%-param"), err)
  out, ok, err = histops("sweep swtiny.lua --method grid")
  assert(not ok and err:find("grid search needs choice values"), err)
  out, ok, err = histops("sweep swtiny.lua --jobs 0")
  assert(not ok and err:find("%-%-jobs needs a positive integer"), err)
  out, ok, err = histops("sweep --resume nosuchsweep")
  assert(not ok and err:find("no sweep 'nosuchsweep'"), err)
  assert(#runs.list { store = store } == 0 and #sweep.list(store) == 0, "nothing recorded by failed sweeps")
  out, ok, err = histops("sweep swtiny.lua --param extra.width=2 --trials 1 --metric val.loss")
  assert(not ok and err:find("has no metric 'val.loss' %(available: .*val%.accuracy"), err)
  -- a trial that fails is recorded as failed, ranked last, and the sweep goes on
  out, ok, err = histops("sweep swtiny.lua --method grid --param train.optimizer=adam,nope --param extra.width=2 "
    .. "--param train.lr=0.01 --param augment.hed_sigma=0 --jobs 2")
  assert(ok and out:find("finished: 1/2 trials"), out .. err)
  local failed_id = out:match("sweep (%S+) finished")
  out, ok = histops("runs --sweep " .. failed_id)
  assert(ok and out:find("2%s+2%s+%S+%s+failed%s+%-.*nope") and out:find("trial 2 failed: .*nope"), out)
  assert(runs.list { store = store, sweep = failed_id }[1], "the failed trial's run is recorded")

  -- 6b. TPE: 1 process and 2 parallel jobs record the same trials and the same best result
  local ids = {}
  for _, jobs in ipairs { 1, 2 } do
    timed("tpe --jobs " .. jobs, function()
      out, ok, err = histops("sweep swtiny.lua --jobs " .. jobs)
      assert(ok, err .. out)
    end)
    ids[jobs] = assert(out:match("sweep (%S+) finished: 6/6 trials"), out .. err)
  end
  local t1, best1 = trials_of(ids[1])
  local t2, best2 = trials_of(ids[2])
  for i = 1, 6 do
    assert(t1[i] and t2[i], "trial " .. i .. " recorded")
    assert(same(t1[i].params, t2[i].params), ("trial %d: %s vs %s"):format(i, json.encode(t1[i].params), json.encode(t2[i].params)))
    assert(t1[i].value == t2[i].value and t1[i].status == "finished", "trial " .. i .. " result")
  end
  assert(best1.index == best2.index and best1.value == best2.value and same(best1.params, best2.params), "same best")
  -- every trial is an ordinary run linked to its sweep, recorded once
  for _, id in ipairs(ids) do
    local linked = runs.list { store = store, sweep = id }
    assert(#linked == 6, #linked)
    local seen = {}
    for _, s in ipairs(linked) do
      assert(s.status == "finished" and s.experiment == "swtiny")
      assert(not seen[s.sweep.trial], "trial recorded twice"); seen[s.sweep.trial] = true
      local rec = assert(runs.read(s.id, { store = store }))
      assert(rec.sweep.id == id, "run record links its sweep")
    end
  end
  -- the runs with 2 jobs came from separate processes, the sequential ones from the sweep's own
  for _, s in ipairs(runs.list { store = store, sweep = ids[2] }) do pids[s.pid] = true end
  local np = 0
  for _ in pairs(pids) do np = np + 1 end
  assert(np >= 2, "--jobs 2 ran trials in child processes")

  -- 6b'. successive halving end to end (4 configurations, epochs 1 -> 2 -> 4), 2 jobs
  out, ok, err = timed("halving", function()
    return histops("sweep swtiny.lua --method halving --trials 4 --budget train.epochs:1:4:2 --jobs 2")
  end)
  assert(ok, err .. out)
  local hid = assert(out:match("sweep (%S+) finished: 7/7 trials"), out .. err)
  local hstate = assert(sweep.read(store, hid))
  local per_rung = {}
  for _, t in ipairs(hstate.trials) do
    per_rung[t.rung] = (per_rung[t.rung] or 0) + 1
    assert(t.params["train.epochs"] == ({ [0] = 1, 2, 4 })[t.rung], "the rung's budget")
  end
  assert(per_rung[0] == 4 and per_rung[1] == 2 and per_rung[2] == 1)
  assert(hstate.best.rung == 2, "the best is ranked from the last rung")
  local hrec = assert(runs.read(hstate.best.run_id, { store = store }))
  assert(#hrec.history == 4 and hrec.params.train.epochs == 4, "the last rung trained 4 epochs")
  out, ok, err = histops("sweep swtiny.lua --method random --budget train.epochs:1:4")
  assert(not ok and err:find("only used by method halving"), err)
  out, ok, err = histops("sweep swtiny.lua --method halving --budget train.epochs:4:1")
  assert(not ok and err:find("0 < min <= max"), err)

  -- 6c. the ranking and the report
  out, ok, err = histops("runs --sweep " .. ids[1])
  assert(ok and out:find("rank%s+trial%s+run%s+status%s+val%.accuracy") and out:find("best: trial " .. best1.index), out .. err)
  -- the printed command reproduces the best trial's result
  local cmd = assert(out:match("reproduce: histops (run [^\n]+)"), out)
  local rout, rok, rerr = histops(cmd .. " --json")
  assert(rok, rerr)
  local brec = assert(runs.read(best1.run_id, { store = store }))
  assert(json.decode(rout).accuracy == brec.metrics.accuracy, "the reproduced run has the best trial's result")
  out, ok, err = histops("runs --sweep latest")
  assert(ok and out:find(hid, 1, true), out)
  out, ok, err = histops("sweep-report " .. ids[1] .. " -o " .. q(tmp .. "/report.html"))
  assert(ok, err)
  local html = assert(hs.sys.read_file(tmp .. "/report.html"))
  local svgs = select(2, html:gsub('<svg class="scatter"', ""))
  assert(svgs == 3, "one parameter-vs-metric plot per parameter, got " .. svgs)
  assert(select(2, html:gsub('<circle class="trial"', "")) == 18, "a point per trial and parameter")
  assert(html:find("Best configuration") and html:find("histops run swtiny.lua --set", 1, true))
  assert(not html:find("http://", 1, true) or html:find('xmlns="http://www.w3.org/2000/svg"', 1, true), "self-contained")
  out, ok, err = histops("sweep-report nosuch")
  assert(not ok and err:find("no sweep 'nosuch'"), err)

  -- 6d. killing a sweep and resuming completes it without duplicate trials (random, 6 trials,
  -- 2 jobs, trials slowed to ~1 s): SIGKILL the sweep and one of its running children mid-way
  local known = {}
  for _, s in ipairs(sweep.list(store)) do known[s.id] = true end
  local sargs = "sweep swtiny.lua --method random --trials 6 --jobs 2"
  local pidf = tmp .. "/sweep.pid"
  assert(os.execute(("cd %s && %s SWEEP_TEST_SLOW=0.8 sh -c 'echo $$ > %s; exec %s %s' >/dev/null 2>%s/killed.txt &")
    :format(q(repo), henv, q(pidf), q(exe), sargs, q(tmp))))
  local spid
  local t0 = hs.sys.clock()
  local killed_id, state
  while hs.sys.clock() - t0 < 60 do
    hs.sys.sleep(0.1)
    spid = spid or tonumber(hs.sys.read_file(pidf) or "")
    bg_pid = spid
    local list = sweep.list(store)
    for _, s in ipairs(list) do
      if not known[s.id] then killed_id = s.id end
    end
    if killed_id then
      state = sweep.read(store, killed_id)
      -- wait for a finished trial and a child whose run is recorded and still running
      local fin, running = 0, nil
      for _, t in ipairs(state.trials) do
        if t.status == "finished" then fin = fin + 1
        elseif t.status == "running" and t.run_id then
          local rec = runs.read(t.run_id, { store = store })
          if rec and rec.status == "running" then running = rec end
        end
      end
      if fin >= 1 and running then
        assert(os.execute(("kill -KILL %d"):format(spid)))
        assert(os.execute(("kill -KILL %d"):format(running.pid)))
        break
      end
    end
  end
  assert(killed_id and state, "the sweep to kill never got going")
  hs.sys.sleep(0.2)
  state = sweep.read(store, killed_id)
  local before = 0
  for _, t in ipairs(state.trials) do if t.status == "finished" then before = before + 1 end end
  assert(before < 6, "killed before the end")
  out, ok = histops("runs --sweep " .. killed_id)
  assert(ok and out:find("(killed)", 1, true), "a sweep whose driver died shows as killed:\n" .. out)
  out, ok, err = timed("resume", function() return histops("sweep swtiny.lua --method random --trials 6 --resume --jobs 2", "SWEEP_TEST_SLOW=0.2 ") end)
  assert(ok, err .. out)
  assert(err:find("resuming sweep " .. killed_id, 1, true), err)
  local tk = trials_of(killed_id)
  local plan = sweep.next_batch(state.def, {})
  for i = 1, 6 do
    assert(tk[i] and tk[i].status == "finished", "trial " .. i .. " finished after resume")
    assert(same(tk[i].params, plan[i].params), "trial " .. i .. " kept its parameters")
  end
  assert(tk[7] == nil, "no extra trials")
  local after = assert(sweep.read(store, killed_id))
  local reruns = 0
  for _, t in ipairs(after.trials) do
    for _, a in ipairs(t.attempts or {}) do
      assert(a.status ~= "finished", "a finished attempt was rerun")
      reruns = reruns + 1
    end
  end
  assert(reruns >= 1, "the killed child's trial was rerun")
  assert(after.status == "finished")
  timings[#timings + 1] = ("killed after %d/6 trials, %d rerun"):format(before, reruns)
  -- exactly one finished run per trial (a killed attempt stays recorded as killed, never finished)
  local per = {}
  for _, s in ipairs(runs.list { store = store, sweep = killed_id }) do
    if s.status == "finished" then per[s.sweep.trial] = (per[s.sweep.trial] or 0) + 1 end
    assert(s.status ~= "running", "no run left running")
  end
  for i = 1, 6 do assert(per[i] == 1, ("trial %d has %s finished runs"):format(i, tostring(per[i]))) end
  -- resuming a finished sweep by id runs nothing more
  local nruns = #runs.list { store = store }
  out, ok, err = histops("sweep --resume " .. killed_id)
  assert(ok, err)
  assert(#runs.list { store = store } == nruns, "a finished sweep reruns nothing")
end)

if bg_pid and not ok_all then os.execute(("kill -KILL %d 2>/dev/null"):format(bg_pid)) end
if ok_all or not os.getenv("SWEEP_TEST_KEEP") then os.execute("rm -rf " .. q(tmp)) else io.stderr:write("kept ", tmp, "\n") end
if not ok_all then error(err_all, 0) end
io.write("test_sweep: all passed (", table.concat(timings, ", "), ")\n")
