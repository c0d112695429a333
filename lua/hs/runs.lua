-- lua/hs/runs.lua: every `histops run` recorded in the git repository itself, and read back.
-- One ref per run, refs/histops/runs/<run id>, whose commits are the run's states (running ->
-- progress... -> finished | failed); the tree holds run.json (the full record), params.json,
-- metrics.json, history.jsonl, split.csv, experiment.lua and, for a dirty work tree, dirty.diff.
-- Each commit message carries a one-line JSON summary so listing thousands of runs reads commit
-- objects only. Large artifacts go to the content-addressed store (hs.git artifact_put).
-- Written with hs.git (libgit2): never touches the work tree, the index or HEAD.
-- Not a command: hs/cmd/{runs,show,compare,log,report,export}.lua are the command-line faces.
local hs = require "histops"
local json = hs.json

local M = {}

M.PREFIX = "refs/histops/runs/"
M.SUMMARY_TAG = "histops-run: "
M.HEARTBEAT_TIMEOUT = 600          -- seconds: a running run from another host is killed after this
M.PROGRESS_INTERVAL = 1.0          -- seconds between progress commits (the first is always written)

local function now() return hs.sys.time() end

-- call a store method, nil on a raised error (an odd user spec must not crash a lookup)
local function try(f, ...)
  local ok, a, b = pcall(f, ...)
  if ok then return a, b end
  return nil, a
end

-- ---------------------------------------------------------------- small helpers

-- JSON-safe deep copy: NaN/inf become null, functions a marker, keys stay as they are
local function clean(v, seen)
  local t = type(v)
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return json.null end
    return v
  elseif t == "function" then return "<function>"
  elseif t == "userdata" then return v == json.null and v or tostring(v)
  elseif t ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local o = {}
  for k, x in pairs(v) do o[k] = clean(x, seen) end
  seen[v] = nil
  if getmetatable(v) and next(o) == nil and #v == 0 then return json.array(o) end
  return o
end
M.clean = clean

local function encode(v, pretty)
  return json.encode(clean(v), pretty and { indent = true } or nil)
end

local read_file = hs.sys.read_file   -- contents, or nil and a message

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function short(id) return id and id ~= "" and id:sub(1, 8) or "-" end
M.short = short

local function user_name()
  local u = os.getenv("USER") or os.getenv("LOGNAME") or os.getenv("USERNAME")
  if u and u ~= "" then return u end
  local p = io.popen("id -un 2>/dev/null")
  if p then u = p:read("l"); p:close() end
  return u and u ~= "" and u or "unknown"
end

-- start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or nil
local function proc_stat(pid)
  local s = read_file("/proc/" .. tostring(pid) .. "/stat")
  if not s then return nil end
  local rest = s:match("^.*%)%s+(.*)$")
  if not rest then return nil end
  local f = {}
  for w in rest:gmatch("%S+") do f[#f + 1] = w end
  return { state = f[1], start = tonumber(f[20]) }
end

-- Is process pid (started at start ticks, when known) still alive on this host?
function M.process_alive(pid, start)
  if type(pid) ~= "number" then return false end
  if not hs.sys.stat("/proc/self") then   -- no procfs: ask the kernel
    return os.execute(("kill -0 %d 2>/dev/null"):format(math.tointeger(pid) or 0)) == true
  end
  local st = proc_stat(pid)
  if not st or st.state == "Z" or st.state == "X" then return false end
  if start and st.start and st.start ~= start then return false end   -- pid reused
  return true
end

-- ---------------------------------------------------------------- repository

-- Open the repository that holds runs: opts.repo, $HISTOPS_REPO, else the current folder.
-- nil, message (clear, with what to do) when there is none.
function M.open(path)
  path = path or os.getenv("HISTOPS_REPO") or "."
  local store, err = hs.git.open(path)
  if not store then
    return nil, ("%s (run records live in a git repository: run histops inside one, pass -C DIR, or set HISTOPS_REPO)")
      :format(tostring(err))
  end
  return store
end

local function is_linked_worktree(h)
  if h.bare or h.workdir == "" then return false end
  return h.gitdir ~= h.workdir .. "/.git"
end

-- The code state of the repository: {commit, branch, detached, unborn, dirty, workdir, ...}
-- plus the dirty diff (string or nil) and notes for the user.
function M.code_state(store)
  local h = store:head()
  local code = { commit = h.commit, branch = h.branch, detached = h.detached, unborn = h.unborn,
    workdir = h.workdir, gitdir = h.gitdir, worktree = is_linked_worktree(h), dirty = false }
  local notes, diff = {}, nil
  if h.bare then
    notes[#notes + 1] = "the repository is bare (no work tree): the run is recorded without a code state"
    return code, nil, notes
  end
  local ok, dirty, patch = pcall(store.dirty, store)
  if ok and dirty ~= nil then
    code.dirty = dirty and true or false
    if dirty then diff = patch end
  elseif not ok then
    notes[#notes + 1] = "could not compute the work tree's state: " .. tostring(dirty)
  end
  if h.unborn then
    notes[#notes + 1] = ("the repository has no commits yet (branch %s): the run is recorded without a code commit; "
      .. "commit your code so that runs can be compared across commits"):format(h.branch)
  elseif h.detached then
    notes[#notes + 1] = ("HEAD is detached at %s: the run is recorded with that commit and no branch"):format(short(h.commit))
  end
  if code.worktree then
    notes[#notes + 1] = ("linked worktree %s: the run is recorded in the shared repository %s"):format(h.workdir, h.gitdir)
  end
  if code.dirty then
    local files = 0
    for _ in (diff or ""):gmatch("diff %-%-git ") do files = files + 1 end
    code.dirty_files = files
    notes[#notes + 1] = ("the work tree has uncommitted changes in %d tracked file(s): the diff is recorded with the run"):format(files)
  end
  return code, diff, notes
end

-- ---------------------------------------------------------------- summaries

local HEADLINE = { "accuracy", "macro_f1", "balanced_accuracy", "roc_auc", "ece", "dice", "iou", "pixel_accuracy",
  "mean_dice", "mean_iou", "best_epoch", "train_time_s" }

-- scalar metrics (and the lo/hi of *_ci tables) of a metrics table
local function headline(m)
  local out = {}
  if type(m) ~= "table" then return out end
  for k, v in pairs(m) do
    if type(v) == "number" and v == v then out[k] = v
    elseif type(k) == "string" and k:match("_ci$") and type(v) == "table" and type(v.lo) == "number" then
      out[k] = { lo = v.lo, hi = v.hi, value = v.value }
    end
  end
  return out
end
M.HEADLINE = HEADLINE

local function summary_of(rec)
  local code = rec.code or {}
  return {
    id = rec.id, experiment = rec.experiment, status = rec.status, start_time = rec.start_time,
    end_time = rec.end_time, heartbeat = rec.heartbeat, pid = rec.pid, proc_start = rec.proc_start, host = rec.host,
    user = rec.user, task = rec.params and rec.params.task or rec.task, error = rec.error,
    code = { commit = code.commit, branch = code.branch, detached = code.detached, unborn = code.unborn,
      dirty = code.dirty },
    metrics = headline(rec.metrics), epochs = rec.history and #rec.history or nil,
    sweep = type(rec.sweep) == "table" and { id = rec.sweep.id, trial = rec.sweep.trial } or nil,
  }
end

local function commit_message(rec)
  local first = ("run %s %s: %s"):format(rec.id, rec.status, rec.experiment or "?")
  return first .. "\n\n" .. M.SUMMARY_TAG .. encode(summary_of(rec)) .. "\n"
end

-- Effective status: a "running" record whose process is gone is "killed".
function M.effective_status(s)
  if s.status ~= "running" then return s.status end
  local host = hs.sys.hostname()
  if s.host == host and s.pid then
    return M.process_alive(s.pid, s.proc_start) and "running" or "killed"
  end
  local hb = tonumber(s.heartbeat) or tonumber(s.start_time) or 0
  if now() - hb > M.HEARTBEAT_TIMEOUT then return "killed" end
  return "running"
end

-- ---------------------------------------------------------------- recording

local Recorder = {}
Recorder.__index = Recorder

local function history_jsonl(history)
  local lines = {}
  for _, h in ipairs(history or {}) do lines[#lines + 1] = encode(h) end
  return #lines > 0 and (table.concat(lines, "\n") .. "\n") or ""
end

function Recorder:_write(files, keep)
  self.rec.heartbeat = now()
  files["run.json"] = encode(self.rec, true) .. "\n"
  hs.sys.test_kill_point("record-write")   -- test-only crash hook (HISTOPS_TEST_KILL_AT, core/sys.h)
  local id = self.store:write(self.ref, files, commit_message(self.rec), "", { keep = keep })
  self.head = id
  self.last_write = hs.sys.clock()
  return id
end

-- Start recording run opts.id (see the file header). Returns a recorder, or nil, message when the
-- run cannot be recorded (outside a repository, bare repository...): the caller logs it and goes on.
-- opts: id, experiment, experiment_file, dir, params, overrides, seed, start_time, repo (optional)
local begin
function M.begin(opts)
  assert(type(opts) == "table" and opts.id, "runs.begin: opts.id is required")
  -- a repository problem (a lock held elsewhere, a read-only .git) must not stop the run itself
  local ok, rec, err = pcall(begin, opts)
  if not ok then return nil, "recording in git failed: " .. tostring(rec) end
  return rec, err
end

M.MAX_DIFF = 16 * 1024 * 1024   -- bytes of dirty.diff kept (a huge unborn repository, generated files)

function begin(opts)
  local tries = {}
  if opts.repo then tries[#tries + 1] = opts.repo end
  if os.getenv("HISTOPS_REPO") then tries[#tries + 1] = os.getenv("HISTOPS_REPO") end
  if opts.experiment_file then tries[#tries + 1] = dirname(opts.experiment_file) end
  tries[#tries + 1] = "."
  local store, first_err
  for _, p in ipairs(tries) do
    local s, err = hs.git.open(p)
    if s then store = s; break end
    first_err = first_err or err
  end
  if not store then
    return nil, ("%s; the run folder %s is the only record (git init and commit your code to record runs)")
      :format(tostring(first_err), tostring(opts.dir or "?"))
  end
  local h = store:head()
  if h.bare then
    return nil, ("%s is a bare repository (no work tree, no code state): run histops inside a clone"):format(h.gitdir)
  end
  local code, diff, notes = M.code_state(store)
  local stat = proc_stat(hs.sys.pid())
  local ref = M.PREFIX .. opts.id
  local rec = {
    id = opts.id, experiment = opts.experiment, experiment_file = opts.experiment_file, status = "running",
    start_time = opts.start_time or now(), params = opts.params, overrides = opts.overrides or {}, seed = opts.seed,
    user = user_name(), host = hs.sys.hostname(), pid = hs.sys.pid(), proc_start = stat and stat.start,
    code = code, dir = opts.dir, heartbeat = now(), sweep = opts.sweep,
  }
  local okenv, env = pcall(function() return require("hs.experiment").environment() end)
  if okenv then rec.environment = env end
  local files = { ["params.json"] = encode(opts.params or {}, true) .. "\n" }
  if opts.experiment_file then
    local src = read_file(opts.experiment_file)
    if src then files["experiment.lua"] = src end
  end
  if diff and #diff > M.MAX_DIFF then
    diff = diff:sub(1, M.MAX_DIFF) .. ("\n[histops: diff truncated at %d bytes]\n"):format(M.MAX_DIFF)
    rec.code.dirty_truncated = true
  end
  if diff and diff ~= "" then files["dirty.diff"] = diff end
  local self = setmetatable({ store = store, ref = ref, rec = rec, notes = notes, last_write = -math.huge }, Recorder)
  -- a resumed run (same id) continues its record
  local old = store:read(ref, "run.json")
  if old then
    local prev = json.decode(old)
    if type(prev) == "table" then
      rec.resumed = (tonumber(prev.resumed) or 0) + 1
      rec.start_time = prev.start_time or rec.start_time
    end
    self:_write(files, true)
  else
    rec.heartbeat = now()
    files["run.json"] = encode(rec, true) .. "\n"
    self.head = store:write(ref, files, commit_message(rec), false)
    self.last_write = hs.sys.clock()
  end
  if not os.getenv("HISTOPS_RUNS_QUIET") then
    for _, n in ipairs(notes) do io.stderr:write("histops: note: ", n, "\n") end
  end
  return self
end

-- After every epoch: history = list of {epoch=, train_loss=, <val metrics>...}. Commits at most
-- once per PROGRESS_INTERVAL seconds (the first call always), which also refreshes the heartbeat.
function Recorder:progress(history, force)
  self.rec.history = history
  local t = hs.sys.clock()
  if not force and self.wrote_progress and t - self.last_write < M.PROGRESS_INTERVAL then return self.head end
  self.wrote_progress = true
  return self:_write({ ["history.jsonl"] = history_jsonl(history) }, true)
end

-- The run ended: record = the runner's run.json table, artifacts = {name = local path}.
-- Artifacts go to the content-addressed store; the record keeps their SHA-256.
function Recorder:finish(record, artifacts)
  local rec = self.rec
  for k, v in pairs(record or {}) do
    if k ~= "artifacts" then rec[k] = v end
  end
  rec.status = record and record.status or "finished"
  if rec.status == "running" then rec.status = "finished" end
  rec.end_time = rec.end_time or now()
  rec.artifacts = {}
  for k, v in pairs(record and record.artifacts or {}) do rec.artifacts[k] = v end
  local missing = {}
  for name, path in pairs(artifacts or {}) do
    if hs.sys.stat(path) then
      local sha, err = self.store:artifact_put(path)
      if sha then rec.artifacts[name] = sha else missing[#missing + 1] = name .. ": " .. tostring(err) end
    else
      missing[#missing + 1] = name .. ": no file " .. path
    end
  end
  if #missing > 0 then table.sort(missing); rec.artifacts_missing = missing end
  local files = {
    ["params.json"] = encode(rec.params or {}, true) .. "\n",
    ["metrics.json"] = encode(rec.metrics or {}, true) .. "\n",
    ["history.jsonl"] = history_jsonl(rec.history),
  }
  local split = artifacts and artifacts["split.csv"] and read_file(artifacts["split.csv"])
    or (rec.dir and read_file(rec.dir .. "/split.csv"))
  if split then files["split.csv"] = split end
  return self:_write(files, true)
end

-- The run failed with message.
function Recorder:fail(message)
  self.rec.status = "failed"
  self.rec.error = tostring(message)
  self.rec.end_time = now()
  return self:_write({ ["history.jsonl"] = history_jsonl(self.rec.history) }, true)
end

M.Recorder = Recorder

-- ---------------------------------------------------------------- reading

local function store_of(opts)
  if opts and opts.store then return opts.store end
  local s, err = M.open(opts and opts.repo)
  if not s then error(err, 0) end
  return s
end

local function decode_summary(message)
  local line = message and message:match(M.SUMMARY_TAG:gsub("%p", "%%%0") .. "([^\n]*)")
  if not line then return nil end
  local s = json.decode(line)
  if type(s) ~= "table" then return nil end
  return s
end

-- v with every JSON null (json.null) removed, tables changed in place.
local function nullfree(v)
  if v == json.null then return nil end
  if type(v) ~= "table" then return v end
  for k, x in pairs(v) do v[k] = nullfree(x) end
  return v
end
M.nullfree = nullfree

-- All runs, newest first: list of summaries {id, experiment, status (effective), stored_status,
-- code{commit,branch,detached,unborn,dirty}, start_time, end_time, metrics{...}, user, host, ref,
-- record_commit, time, sweep{id,trial}}. opts: store | repo, experiment, status, limit, sweep (a
-- sweep id: only its trials).
function M.list(opts)
  opts = opts or {}
  local store = store_of(opts)
  local commits = store:list(M.PREFIX) or {}
  local out = {}
  for _, c in ipairs(commits) do
    local s = decode_summary(c.message)
    if not s then   -- written by something else: read the record itself
      local raw = store:read(c.id, "run.json")
      local rec = raw and json.decode(raw)
      s = type(rec) == "table" and summary_of(rec) or nil
    end
    if s then
      s = nullfree(s)
      s.id = s.id or c.ref:sub(#M.PREFIX + 1)
      s.ref, s.record_commit, s.time = c.ref, c.id, c.time
      s.stored_status = s.status
      s.code = s.code or {}
      s.metrics = s.metrics or {}
      if (not opts.experiment or s.experiment == opts.experiment)
          and (not opts.sweep or (type(s.sweep) == "table" and s.sweep.id == opts.sweep)) then
        s.status = M.effective_status(s)
        if not opts.status or s.status == opts.status then out[#out + 1] = s end
      end
    end
  end
  table.sort(out, function(a, b)
    local ta, tb = tonumber(a.start_time) or a.time or 0, tonumber(b.start_time) or b.time or 0
    if ta ~= tb then return ta > tb end
    return a.id > b.id
  end)
  if opts.limit and #out > opts.limit then
    for i = #out, opts.limit + 1, -1 do out[i] = nil end
  end
  return out
end

local function find_ids(store, spec)
  local commits = store:list(M.PREFIX .. spec) or {}
  local ids = {}
  for _, c in ipairs(commits) do ids[#ids + 1] = c.ref:sub(#M.PREFIX + 1) end
  return ids
end

-- The full record of run id (an exact id or a unique prefix): decoded run.json plus status
-- (effective), stored_status, ref, record_commit. nil, message when there is no such run.
function M.read(id, opts)
  opts = opts or {}
  local store = store_of(opts)
  local ref = M.PREFIX .. id
  local raw = try(store.read, store, ref, "run.json")
  if not raw then
    local ids = try(find_ids, store, id) or {}
    if #ids == 1 then
      ref = M.PREFIX .. ids[1]
      raw = store:read(ref, "run.json")
    elseif #ids > 1 then
      table.sort(ids)
      return nil, ("run id prefix '%s' is ambiguous: %s"):format(id, table.concat(ids, ", ", 1, math.min(#ids, 8)))
    end
  end
  if not raw then return nil, ("no run '%s' in this repository (see histops runs)"):format(id) end
  local rec, err = json.decode(raw)
  if type(rec) ~= "table" then return nil, ("run %s: corrupt run.json: %s"):format(id, tostring(err)) end
  rec = nullfree(rec)
  rec.ref = ref
  rec.record_commit = store:resolve(ref)
  rec.stored_status = rec.status
  rec.status = M.effective_status(rec)
  rec.code = rec.code or {}
  rec.metrics = rec.metrics or {}
  rec.params = rec.params or {}
  return rec
end

-- A file of a run's record tree (e.g. "dirty.diff"), or nil.
function M.read_file(rec, path, opts)
  local store = store_of(opts)
  return store:read(rec.ref or (M.PREFIX .. rec.id), path)
end

-- latest finished run among list whose commit is id (clean runs before dirty ones)
local function pick_at(list, id, experiment)
  local best
  for _, s in ipairs(list) do
    if s.status == "finished" and s.code.commit == id and (not experiment or s.experiment == experiment) then
      if not best or (best.code.dirty and not s.code.dirty) then best = s end
    end
  end
  return best
end

local function experiments_at(list, id)
  local e, names = {}, {}
  for _, s in ipairs(list) do
    if s.status == "finished" and s.code.commit == id and not e[s.experiment] then
      e[s.experiment] = true
      names[#names + 1] = s.experiment
    end
  end
  table.sort(names)
  return names
end

-- Resolve spec to a full record. spec: a run id, a unique run id prefix, "latest", or a
-- commit-ish / branch / tag (the latest finished run of the experiment at that commit, else at
-- the nearest first-parent ancestor that has one). opts: store | repo, experiment.
-- Returns record, note (how spec was understood) or nil, message.
function M.resolve(spec, opts)
  opts = opts or {}
  local store = store_of(opts)
  opts = { store = store, experiment = opts.experiment, max_depth = opts.max_depth }
  if try(store.read, store, M.PREFIX .. spec, "run.json") then return M.read(spec, opts), "run " .. spec end
  local list = M.list { store = store, experiment = opts.experiment }
  if spec == "latest" or spec == "last" then
    for _, s in ipairs(list) do
      if s.status == "finished" then return M.read(s.id, opts), "latest finished run" end
    end
    return nil, "no finished run" .. (opts.experiment and (" of experiment " .. opts.experiment) or "")
  end
  local ids = try(find_ids, store, spec) or {}
  local commit = try(store.resolve, store, spec)
  if commit and #ids > 0 then
    return nil, ("'%s' is both a run id prefix (%s) and a commit: give more of the run id or a full commit id")
      :format(spec, ids[1])
  end
  if #ids > 0 then return M.read(spec, opts) end
  if not commit then
    local h = store:head()
    if h.unborn then return nil, ("no run or commit '%s' (the repository has no commits yet)"):format(spec) end
    return nil, ("'%s' is neither a run id nor a commit, branch or tag (see histops runs)"):format(spec)
  end
  local experiment = opts.experiment
  if not experiment then
    local names = experiments_at(list, commit)
    if #names > 1 then
      return nil, ("several experiments have finished runs at %s (%s): pass --experiment NAME")
        :format(spec, table.concat(names, ", "))
    end
  end
  local hist = try(store.log, store, commit, opts.max_depth or 1000) or {}
  for depth, c in ipairs(hist) do
    local names = experiment and { experiment } or experiments_at(list, c.id)
    if #names > 1 then
      return nil, ("several experiments have finished runs at %s (%s): pass --experiment NAME")
        :format(short(c.id), table.concat(names, ", "))
    end
    local s = #names == 1 and pick_at(list, c.id, names[1])
    if s then
      local note = depth == 1 and ("latest finished run at %s (%s)"):format(spec, short(c.id))
        or ("no finished run at %s itself: using %s from its ancestor %s (%d commit(s) back)")
          :format(spec, s.id, short(c.id), depth - 1)
      return M.read(s.id, opts), note
    end
  end
  return nil, ("no finished run%s at %s (%s) or its ancestors"):format(
    experiment and (" of experiment " .. experiment) or "", spec, short(commit))
end

-- ---------------------------------------------------------------- comparing

local function flatten(t, prefix, out)
  out = out or {}
  if type(t) ~= "table" then out[prefix] = t; return out end
  local n = #t
  if n > 0 or (next(t) == nil and prefix) then
    local allscalar = true
    for _, x in ipairs(t) do if type(x) == "table" then allscalar = false end end
    if allscalar then
      local parts = {}
      for i, x in ipairs(t) do parts[i] = type(x) == "number" and ("%.6g"):format(x) or tostring(x) end
      out[prefix] = "{" .. table.concat(parts, ",") .. "}"
      return out
    end
  end
  for k, v in pairs(t) do
    local key = prefix and (prefix .. "." .. tostring(k)) or tostring(k)
    flatten(v, key, out)
  end
  return out
end
M.flatten = flatten

-- The comparable parameters of a record: params, overrides, seed, data fingerprint, code, environment.
function M.comparable_params(rec)
  local out = flatten(rec.params or {}, nil, {})
  out.seed = rec.seed
  if rec.overrides and #rec.overrides > 0 then out.overrides = table.concat(rec.overrides, " ") end
  local fp = rec.data and rec.data.fingerprint
  if type(fp) == "table" then
    for k, v in pairs(fp) do out["data.fingerprint." .. k] = type(v) == "string" and v:sub(1, 16) or v end
  end
  if rec.data and type(rec.data.counts) == "table" then
    for k, v in pairs(rec.data.counts) do out["data.count." .. k] = v end
  end
  for k, v in pairs(rec.environment or {}) do out["env." .. k] = v end
  return out
end

local Z = 1.959963984540054

-- a record's class labels (0-based integers), of length n when given; records read back from
-- git may be corrupt, and a label of 1e9 would size a 1e9 x 1e9 confusion matrix
local function labels_ok(t, n)
  if type(t) ~= "table" or (n and #t ~= n) then return false end
  for i = 1, #t do
    local y = t[i]
    if math.type(y) ~= "integer" or y < 0 or y > 65535 then return false end
  end
  return true
end

-- Delta of metric name between a (baseline) and b with a 95% interval: paired bootstrap when both
-- records hold per-item predictions on the same test set, else from the two runs' bootstrap
-- intervals taken as independent normals. Returns {delta, lo, hi, method} or {delta} alone.
function M.metric_delta(a, b, name)
  local va, vb = a.metrics[name], b.metrics[name]
  if type(va) ~= "number" or type(vb) ~= "number" then return nil end
  local d = { delta = vb - va }
  local pa, pb = a.predictions, b.predictions
  local same_test = a.data and b.data and a.data.fingerprint and b.data.fingerprint
    and a.data.fingerprint.test == b.data.fingerprint.test
  if (name == "accuracy" or name == "macro_f1") and type(pa) == "table" and type(pb) == "table" and same_test
      and labels_ok(pa.y_true) and labels_ok(pb.y_true) and #pa.y_true == #pb.y_true and #pa.y_true > 0
      and labels_ok(pa.y_pred, #pa.y_true) and labels_ok(pb.y_pred, #pa.y_true) then
    local metrics = require "hs.metrics"
    local k = 0
    for _, y in ipairs(pa.y_true) do k = math.max(k, y + 1) end
    for _, y in ipairs(pa.y_pred) do k = math.max(k, y + 1) end
    for _, y in ipairs(pb.y_pred) do k = math.max(k, y + 1) end
    local function stat(p)
      return function(idx)
        if name == "accuracy" then
          local c = 0
          for _, i in ipairs(idx) do if p.y_true[i] == p.y_pred[i] then c = c + 1 end end
          return c / #idx
        end
        local t, q = {}, {}
        for j, i in ipairs(idx) do t[j] = p.y_true[i]; q[j] = p.y_pred[i] end
        return metrics.classification(t, q, k).macro_f1
      end
    end
    local r = metrics.paired_difference(#pa.y_true, stat(pa), stat(pb), { samples = 1000, seed = 1 })
    d.lo, d.hi, d.method = r.lo, r.hi, "paired bootstrap"
    return d
  end
  local ca, cb = a.metrics[name .. "_ci"], b.metrics[name .. "_ci"]
  local function num(x) return type(x) == "number" and x == x end
  if type(ca) == "table" and type(cb) == "table" and num(ca.lo) and num(ca.hi) and num(cb.lo) and num(cb.hi) then
    local sa, sb = (ca.hi - ca.lo) / (2 * Z), (cb.hi - cb.lo) / (2 * Z)
    local se = math.sqrt(sa * sa + sb * sb)
    d.lo, d.hi, d.method = d.delta - Z * se, d.delta + Z * se, "independent bootstrap intervals"
  end
  return d
end

local function sorted_keys(t)
  local k = {}
  for x in pairs(t) do k[#k + 1] = x end
  table.sort(k, function(a, b) return tostring(a) < tostring(b) end)
  return k
end
M.sorted_keys = sorted_keys

local function same(a, b)
  if type(a) == "number" and type(b) == "number" then return a == b end
  return tostring(a) == tostring(b)
end

-- Compare records (the first is the baseline). opts: all (all params, not only differences),
-- diff (include code diffs, default true), store. Returns a JSON-able table:
-- { runs = {...}, params = { {key, values, differs} }, metrics = { {name, values, cis, deltas} },
--   per_class = { {class, metric, values, deltas} }, code = { {from, to, diff} }, dirty = { {id, diff} } }
function M.compare(records, opts)
  opts = opts or {}
  local out = { runs = {}, params = {}, metrics = {}, per_class = {}, code = {}, dirty = {} }
  for i, r in ipairs(records) do
    out.runs[i] = { id = r.id, experiment = r.experiment, status = r.status, commit = r.code.commit,
      branch = r.code.branch, dirty = r.code.dirty and true or false, detached = r.code.detached,
      start_time = r.start_time, end_time = r.end_time, user = r.user, host = r.host }
  end
  -- parameters
  local flat, keys = {}, {}
  for i, r in ipairs(records) do
    flat[i] = M.comparable_params(r)
    for k in pairs(flat[i]) do keys[k] = true end
  end
  for _, k in ipairs(sorted_keys(keys)) do
    local values, differs = {}, false
    for i = 1, #records do
      values[i] = flat[i][k]
      if i > 1 and not same(values[i], values[1]) then differs = true end
    end
    if differs or opts.all then
      out.params[#out.params + 1] = { key = k, values = values, differs = differs }
    end
  end
  -- metrics
  local mkeys = {}
  for _, r in ipairs(records) do
    for k, v in pairs(r.metrics) do if type(v) == "number" then mkeys[k] = true end end
  end
  local order = {}
  for _, k in ipairs(HEADLINE) do if mkeys[k] then order[#order + 1] = k; mkeys[k] = nil end end
  for _, k in ipairs(sorted_keys(mkeys)) do order[#order + 1] = k end
  for _, k in ipairs(order) do
    local values, cis, deltas, differs = {}, {}, {}, false
    for i, r in ipairs(records) do
      values[i] = r.metrics[k]
      local ci = r.metrics[k .. "_ci"]
      cis[i] = type(ci) == "table" and ci.lo and { lo = ci.lo, hi = ci.hi } or nil
      if i > 1 then
        deltas[i - 1] = M.metric_delta(records[1], r, k) or nil
        if not same(values[i], values[1]) then differs = true end
      end
    end
    out.metrics[#out.metrics + 1] = { name = k, values = values, cis = cis, deltas = deltas, differs = differs }
  end
  -- per class
  local classes = {}
  for _, r in ipairs(records) do
    for c in pairs(type(r.metrics.per_class) == "table" and r.metrics.per_class or {}) do classes[c] = true end
  end
  for _, c in ipairs(sorted_keys(classes)) do
    for _, m in ipairs { "precision", "recall", "f1", "support" } do
      local values, deltas = {}, {}
      for i, r in ipairs(records) do
        local pc = r.metrics.per_class and r.metrics.per_class[c]
        values[i] = pc and pc[m]
        if i > 1 and type(values[i]) == "number" and type(values[1]) == "number" then
          deltas[i - 1] = { delta = values[i] - values[1] }
        end
      end
      out.per_class[#out.per_class + 1] = { class = c, metric = m, values = values, deltas = deltas }
    end
  end
  -- code
  if opts.diff ~= false then
    local store = opts.store
    local a = records[1].code.commit
    for i = 2, #records do
      local b = records[i].code.commit
      if a and b and a ~= "" and b ~= "" then
        local d = store and a ~= b and store:diff(a, b) or ""
        out.code[#out.code + 1] = { from = a, to = b, diff = d }
      end
    end
    for _, r in ipairs(records) do
      if r.code.dirty and store then
        out.dirty[#out.dirty + 1] = { id = r.id, diff = store:read(r.ref, "dirty.diff") or "" }
      end
    end
  end
  return out
end

-- The JSON form of a compare() result: missing values become null (arrays keep their length n).
function M.compare_json(cmp)
  local n = #cmp.runs
  local function dense(t, len)
    local o = json.array({})
    for i = 1, len do
      local v = t[i]
      if v == nil then o[i] = json.null else o[i] = v end
    end
    return o
  end
  for _, p in ipairs(cmp.params) do p.values = dense(p.values, n) end
  for _, m in ipairs(cmp.metrics) do
    m.values, m.cis, m.deltas = dense(m.values, n), dense(m.cis, n), dense(m.deltas, n - 1)
  end
  for _, c in ipairs(cmp.per_class) do c.values, c.deltas = dense(c.values, n), dense(c.deltas, n - 1) end
  for _, k in ipairs { "runs", "params", "metrics", "per_class", "code", "dirty" } do json.array(cmp[k]) end
  return clean(cmp)
end

-- ---------------------------------------------------------------- formatting helpers for commands

-- A record's time (seconds since the epoch) as local "YYYY-mm-dd HH:MM"; "-" for what is not a
-- representable time (a record may hold anything: nil, text, inf, nan, year 10^12).
function M.fmt_time(t)
  t = tonumber(t)
  local i = t and math.tointeger(math.floor(t))   -- nil for nan, inf and beyond 2^63
  if not i then return "-" end
  local ok, s = pcall(os.date, "%Y-%m-%d %H:%M", i)   -- os.date raises for years it cannot represent
  return ok and s or "-"
end

function M.fmt_value(v)
  if v == nil then return "-" end
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v then return "nan" end
    if v == math.floor(v) and math.abs(v) < 1e9 then return ("%d"):format(v) end
    return ("%.4f"):format(v)
  end
  if type(v) == "boolean" then return tostring(v) end
  return tostring(v)
end

-- plain-text table: header list, rows of lists (strings)
function M.text_table(header, rows)
  local w = {}
  for i, h in ipairs(header) do w[i] = #h end
  for _, r in ipairs(rows) do
    for i = 1, #header do w[i] = math.max(w[i], #tostring(r[i] or "")) end
  end
  local out = {}
  local function line(r)
    local cells = {}
    for i = 1, #header do
      local s = tostring(r[i] or "")
      cells[i] = s .. (" "):rep(w[i] - #s)
    end
    out[#out + 1] = (table.concat(cells, "  "):gsub("%s+$", ""))
  end
  line(header)
  local dash = {}
  for i = 1, #header do dash[i] = ("-"):rep(w[i]) end
  line(dash)
  for _, r in ipairs(rows) do line(r) end
  return table.concat(out, "\n") .. "\n"
end

-- Common command-line options: -C/--repo DIR, --experiment/-e NAME, --json; returns opts, rest
function M.parse_args(args, spec)
  local opts, rest = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local key, val = a:match("^%-%-([%w%-]+)=(.*)$")
    if key then a = "--" .. key end
    local name = (spec.alias and spec.alias[a]) or a
    local kind = spec.options[name]
    if kind == nil and a:sub(1, 1) == "-" and a ~= "-" then
      error(("unknown option %s"):format(a), 0)
    elseif kind == "flag" then
      opts[name:gsub("^%-+", ""):gsub("%-", "_")] = true
    elseif kind == "value" then
      if not val then
        i = i + 1
        val = args[i]
        if val == nil then error(("option %s needs a value"):format(a), 0) end
      end
      opts[name:gsub("^%-+", ""):gsub("%-", "_")] = val
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return opts, rest
end

return M
