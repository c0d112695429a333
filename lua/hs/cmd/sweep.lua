-- lua/hs/cmd/sweep.lua: `histops sweep EXPERIMENT.lua [--param key=spec ...] [--method M] [--jobs N]
-- [--resume [ID]] ...`: a hyper-parameter sweep whose trials are ordinary runs recorded in git and
-- linked to the sweep record refs/histops/sweeps/<id> (hs/sweep.lua does the work). Under
-- `mpirun -np P` the trials are spread over the ranks. `--trial` is internal (one child trial).
local M = { help = "hyper-parameter sweep over any setting: grid, random, tpe, halving; --jobs N or mpirun (see README)" }

local usage = [==[
usage: histops sweep EXPERIMENT.lua [--param key=spec ...] [--method grid|random|tpe|halving]
         [--trials N] [--seed S] [--metric NAME|val.NAME] [--mode max|min] [--batch B]
         [--budget PARAM:MIN:MAX[:ETA]] [--n-startup N] [--set key=value ...] [--jobs N]
         [--resume [SWEEP_ID]] [--out DIR] [-C REPO] [--quiet] [--json]
       histops sweep --resume SWEEP_ID [--jobs N]
  spec: log:MIN:MAX[:STEPS] | uniform:MIN:MAX[:STEPS] | int:MIN:MAX[:STEPS] | v1,v2,... (choices, typed as in --set)
]==]

local function posint(name, v)
  local n = math.tointeger(tonumber(v))
  if not n or n < 1 then error(("%s needs a positive integer, got '%s'"):format(name, tostring(v)), 0) end
  return n
end

local function parse(args)
  local o = { sets = {}, params = {} }
  local i = 1
  local function val(a)
    i = i + 1
    local v = args[i]
    if v == nil then error(("%s needs a value"):format(a), 0) end
    return v
  end
  while i <= #args do
    local a = args[i]
    local k, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    if k then a = k; table.insert(args, i + 1, inline) end
    if a == "--param" or a == "-p" then
      local key, decl = require("hs.sweep").parse_cli_param(val(a))
      o.params[#o.params + 1] = { key, decl }
    elseif a == "--set" then o.sets[#o.sets + 1] = val(a)
    elseif a == "--method" then o.method = val(a)
    elseif a == "--trials" then o.trials = posint(a, val(a))
    elseif a == "--seed" then o.seed = math.tointeger(tonumber(val(a))) or error("--seed needs an integer", 0)
    elseif a == "--metric" then o.metric = val(a)
    elseif a == "--mode" then o.mode = val(a)
    elseif a == "--batch" then o.batch = posint(a, val(a))
    elseif a == "--n-startup" then o.n_startup = posint(a, val(a))
    elseif a == "--budget" then
      local v = val(a)
      local p, lo, hi, eta = v:match("^([^:]+):([^:]+):([^:]+):?([^:]*)$")
      lo, hi, eta = tonumber(lo), tonumber(hi), eta ~= "" and tonumber(eta) or nil
      if not p or not lo or not hi or (eta == nil and v:match(":[^:]*:[^:]*:[^:]+$")) then
        error(("--budget '%s': expected PARAM:MIN:MAX[:ETA], e.g. train.epochs:1:9:3"):format(v), 0)
      end
      o.budget = { param = p, min = lo, max = hi, eta = eta }
    elseif a == "--jobs" or a == "-j" then o.jobs = posint(a, val(a))
    elseif a == "--out" then o.out = val(a)
    elseif a == "-C" or a == "--repo" then o.repo = val(a)
    elseif a == "--quiet" then o.quiet = true
    elseif a == "--json" then o.json = true
    elseif a == "--help" or a == "-h" then o.help = true
    elseif a == "--trial" then o.trial = val(a)
    elseif a == "--resume" then
      o.resume = true
      local nxt = args[i + 1]
      if nxt and nxt:sub(1, 1) ~= "-" and not nxt:match("%.lua$") then o.resume_id = nxt; i = i + 1 end
    elseif a:sub(1, 1) == "-" then error(("unknown option %s"):format(a), 0)
    elseif not o.file then o.file = a
    else error(("unexpected argument %s"):format(a), 0) end
    i = i + 1
  end
  return o
end

-- internal: one trial in a child process (hs/sweep.lua run_children)
local function run_trial(o)
  local id, index, run_id = o.trial:match("^([^:]+):(%d+):(.+)$")
  if not id or not o.file then error("--trial needs SWEEP:INDEX:RUN_ID and the experiment file", 0) end
  local config = require "hs.config"
  local ok, cfg = pcall(config.load, o.file, o.sets)
  if not ok then io.stderr:write("histops sweep: ", tostring(cfg), "\n"); return 2 end
  local okr, err = pcall(require("hs.experiment").run, cfg, { run_id = run_id, sweep = { id = id, trial = tonumber(index) },
    overrides = o.sets, quiet = true, out = o.out, repo = o.repo or os.getenv("HISTOPS_REPO") })
  if not okr then io.stderr:write("histops sweep: trial ", index, ": ", tostring(err), "\n"); return 1 end
  return 0
end

-- A new state (or the matching unfinished one with --resume) from the experiment and options.
local function setup(o, store)
  local sweep = require "hs.sweep"
  local config = require "hs.config"
  local hs = require "histops"
  if o.resume_id then
    local st, err = sweep.read(store, o.resume_id)
    if not st then error(err, 0) end
    if o.file or #o.params > 0 or #o.sets > 0 or o.method or o.trials then
      error("--resume SWEEP_ID continues the recorded sweep as it was defined: drop the experiment file and "
        .. "search options (or use EXPERIMENT.lua --resume to resume the matching sweep)", 0)
    end
    return st, ("resuming sweep %s (%d trials recorded)"):format(st.id, #st.trials)
  end
  if not o.file then error("no experiment file (or --resume SWEEP_ID)", 0) end
  local cfg = config.load(o.file, o.sets)
  local def = sweep.definition(cfg.sweep, { params = o.params, method = o.method, trials = o.trials, seed = o.seed,
    metric = o.metric, mode = o.mode, batch = o.batch, n_startup = o.n_startup, budget = o.budget })
  if not def.metric then
    local m = cfg.train.early_stopping.metric
    if m == "auto" then m = cfg.task == "segmentation" and "dice" or "macro_f1" end
    def.metric = "val." .. m
  end
  sweep.validate(def, cfg)
  local st = { id = sweep.new_id(), experiment = cfg.name, experiment_file = o.file, overrides = o.sets, def = def,
    created = hs.sys.time(), status = "running", trials = {}, experiment_source = hs.sys.read_file(o.file) }
  st.hash = sweep.def_hash(st)
  if o.resume then
    for _, s in ipairs(sweep.list(store)) do
      if s.hash == st.hash then
        local old = assert(sweep.read(store, s.id))
        return old, ("resuming sweep %s (same experiment and space; %d trials recorded)"):format(old.id, #old.trials)
      end
    end
    return st, ("no earlier sweep of this experiment and space: starting sweep %s"):format(st.id)
  end
  return st, ("sweep %s: %s, %s over %d parameter(s), metric %s (%s)"):format(st.id, cfg.name, def.method, #def.params,
    def.metric, def.mode)
end

function M.run(args)
  local hs = require "histops"
  local sweep = require "hs.sweep"
  local ok, o = pcall(parse, args)
  if not ok then io.stderr:write("histops sweep: ", tostring(o), "\n", usage); return 2 end
  if o.help then io.write(usage); return 0 end
  if o.trial then return run_trial(o) end
  if not o.file and not o.resume_id then io.stderr:write(usage); return 2 end

  -- MPI: with more than one rank, every rank runs its share of each batch; rank 0 plans and records
  local mpi
  local okm, m = pcall(require, "hs.mpi")
  if okm and m.launched() then
    local oki, _, size = pcall(m.init)
    if not oki then io.stderr:write("histops sweep: ", tostring(_), "\n"); return 2 end
    if size > 1 then mpi = m end
  end
  local rank = mpi and mpi.rank() or 0
  if mpi and o.jobs and o.jobs > 1 then
    if rank == 0 then io.stderr:write("histops sweep: --jobs and mpirun are exclusive (each rank runs its trials itself)\n") end
    return 2
  end

  if o.file and not hs.sys.stat(o.file) then
    if rank == 0 then io.stderr:write("histops sweep: no experiment file ", o.file, "\n") end
    return 2
  end
  -- the repository the runner would record in: -C, $HISTOPS_REPO, the experiment's folder, "."
  local store, err
  for _, p in ipairs { o.repo or false, os.getenv("HISTOPS_REPO") or false,
      o.file and (o.file:match("^(.*)/[^/]*$") or ".") or false, "." } do
    if p then
      store, err = require("hs.runs").open(p)
      if store or o.repo then break end
    end
  end
  if not store then
    err = ("no git repository for the sweep (%s): a sweep and its trials are recorded in git; run inside a "
      .. "repository (git init), or pass -C REPO"):format(tostring(o.repo or os.getenv("HISTOPS_REPO") or "."))
  end
  local state, note
  if store then
    ok, state, note = pcall(setup, o, store)
    if not ok then err = state end
  end
  if mpi then   -- every rank learns whether rank 0's setup worked before anyone waits in a collective
    local e = mpi.bcast(rank == 0 and (ok and store and "" or tostring(err)) or nil, 0)
    if e ~= "" then err, store = e, nil end
  end
  if not store or not ok then
    if rank == 0 then io.stderr:write("histops sweep: ", tostring(err), "\n") end
    if mpi then mpi.finalize() end
    return 2
  end
  if mpi and rank > 0 then state = { trials = {} } end
  if rank == 0 and not o.quiet then
    io.stderr:write(note, mpi and (" on %d MPI ranks"):format(mpi.size()) or (o.jobs and o.jobs > 1 and (" with %d parallel jobs"):format(o.jobs) or ""), "\n")
  end
  if mpi then
    -- each rank trains with its share of the machine's cores (ranks may share a node)
    hs.sys.set_threads(math.max(1, hs.sys.get_threads() // mpi.size()))
  end
  local h = store:head()
  local okd, res = pcall(sweep.drive, state, { store = store, repo = h.workdir ~= "" and h.workdir or h.gitdir, jobs = o.jobs or 1, out = o.out, quiet = o.quiet, mpi = mpi })
  if not okd then
    if rank == 0 and state.id then   -- the record says why the sweep stopped (--resume continues it)
      state.status, state.error = "failed", tostring(res)
      pcall(sweep.write, store, state)
    end
    if mpi then mpi.abort(1, "histops sweep: rank " .. rank .. ": " .. tostring(res)) end
    io.stderr:write("histops sweep: ", tostring(res), "\n")
    return 1
  end
  if mpi then mpi.barrier(); if rank > 0 then mpi.finalize(); return 0 end end
  state = res
  local b = state.best
  local nfin = 0
  for _, t in ipairs(state.trials) do if t.status == "finished" then nfin = nfin + 1 end end
  if o.json then
    io.write(hs.json.encode(require("hs.runs").clean { id = state.id, status = state.status, trials = #state.trials,
      finished = nfin, best = b }), "\n")
  elseif b then
    local bt = state.trials[b.index]
    io.write(("sweep %s finished: %d/%d trials; best trial %d (run %s): %s = %.4f\n  %s\n  reproduce: %s\n")
      :format(state.id, nfin, #state.trials, b.index, b.run_id, state.def.metric, b.value, sweep.params_text(bt),
        sweep.reproduce_command(state, bt)))
    io.write(("  ranking: histops runs --sweep %s   report: histops sweep-report %s -o sweep.html\n"):format(state.id, state.id))
  else
    local first
    for _, t in ipairs(state.trials) do first = first or t.error end
    io.stderr:write(("histops sweep: sweep %s: no trial succeeded (%d trials)%s\n"):format(state.id, #state.trials,
      first and ("; first error: " .. first:match("^[^\n]*")) or ""))
  end
  if mpi then mpi.finalize() end
  return b and 0 or 1
end

return M
