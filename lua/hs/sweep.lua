-- lua/hs/sweep.lua: hyper-parameter sweeps over any experiment setting: the search space (declared
-- in the experiment's `sweep` table or with --param), the search methods (grid, random, tpe, halving)
-- as pure functions of (seed, trial index, completed results), the sweep record in git
-- (refs/histops/sweeps/<id>: sweep.json), and the driver that runs trials in-process, as parallel
-- child processes (--jobs N) or as MPI ranks, resuming an interrupted sweep without duplicates.
-- Every trial is an ordinary run (hs.experiment) linked to its sweep. Not a command: hs/cmd/sweep.lua
-- and hs/cmd/sweep_report.lua are the command-line faces.
local hs = require "histops"
local config = require "hs.config"
local json = hs.json

local M = {}

M.PREFIX = "refs/histops/sweeps/"
M.SUMMARY_TAG = "histops-sweep: "
M.METHODS = { grid = true, random = true, tpe = true, halving = true }
M.KINDS = { "choice", "uniform", "log_uniform", "int_uniform" }

-- ---------------------------------------------------------------- search space

local function fmt_num(v)
  if math.type(v) == "integer" then return tostring(v) end
  for digits = 15, 16 do   -- the shortest text that reads back as the same double
    local s = ("%." .. digits .. "g"):format(v)
    if tonumber(s) == v then return s end
  end
  return ("%.17g"):format(v)
end

-- The --set text of a value: numbers round-trip exactly, tables of scalars as {a,b,c}.
function M.format_value(v)
  if type(v) == "number" then return fmt_num(v) end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = M.format_value(x) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return tostring(v)
end

-- short human text of a value (tables, 4 significant digits)
function M.show_value(v)
  if type(v) == "number" and math.type(v) ~= "integer" then return ("%.4g"):format(v) end
  return M.format_value(v)
end

local function round6(v) return tonumber(("%.6g"):format(v)) end

-- Normalise one parameter declaration (from a sweep table) -> {key, kind, lo, hi, values, steps}.
-- Raises "sweep parameter 'k': ..." on a malformed declaration.
function M.normalize_param(key, d)
  local function bad(fmt, ...) error(("sweep parameter '%s': " .. fmt):format(key, ...), 0) end
  if type(key) ~= "string" or not key:match("^[%w_]+[%w_%.]*$") or key:match("%.%.") or key:match("%.$") then
    error(("sweep parameter '%s': the key must be a dotted setting path such as train.lr"):format(tostring(key)), 0)
  end
  if type(d) ~= "table" then
    d = { choice = { d } }
  elseif #d > 0 then
    d = { choice = d }
  end
  local kind, found = nil, 0
  for _, k in ipairs(M.KINDS) do
    if d[k] ~= nil then kind, found = k, found + 1 end
  end
  for k in pairs(d) do
    if k ~= "steps" and not (kind and k == kind) then
      local known = false
      for _, kk in ipairs(M.KINDS) do if kk == k then known = true end end
      if not known then bad("unknown field '%s' (expected one of %s, and steps)", tostring(k), table.concat(M.KINDS, ", ")) end
    end
  end
  if found ~= 1 then bad("give exactly one of %s (got %d)", table.concat(M.KINDS, ", "), found) end
  local p = { key = key, kind = kind }
  local v = d[kind]
  if kind == "choice" then
    if type(v) ~= "table" or #v == 0 then bad("choice needs a non-empty list of values") end
    p.values = {}
    for i, x in ipairs(v) do
      local t = type(x)
      if t ~= "number" and t ~= "string" and t ~= "boolean" and t ~= "table" then
        bad("choice value %d is a %s (numbers, strings, booleans or lists of them)", i, t)
      end
      p.values[i] = x
    end
  else
    if type(v) ~= "table" or type(v[1]) ~= "number" or type(v[2]) ~= "number" or #v ~= 2 then
      bad("%s needs {min, max} (two numbers)", kind)
    end
    local lo, hi = v[1], v[2]
    if lo ~= lo or hi ~= hi or math.abs(lo) == math.huge or math.abs(hi) == math.huge then bad("bounds must be finite") end
    if kind == "int_uniform" then
      if math.type(lo) ~= "integer" and lo ~= math.floor(lo) or hi ~= math.floor(hi) then
        bad("int_uniform bounds must be integers, got {%s, %s}", fmt_num(lo), fmt_num(hi))
      end
      lo, hi = math.tointeger(lo), math.tointeger(hi)
      if lo > hi then bad("min %d > max %d", lo, hi) end
    else
      if not (lo < hi) then bad("min %s must be below max %s", fmt_num(lo), fmt_num(hi)) end
      if kind == "log_uniform" and lo <= 0 then bad("log_uniform needs min > 0, got %s", fmt_num(lo)) end
    end
    p.lo, p.hi = lo, hi
  end
  if d.steps ~= nil then
    if math.type(d.steps) ~= "integer" and not (type(d.steps) == "number" and d.steps == math.floor(d.steps)) or d.steps < 1 then
      bad("steps must be a positive integer")
    end
    p.steps = math.tointeger(d.steps)
  end
  return p
end

-- Parse a command-line parameter "key=spec": spec is log:MIN:MAX, uniform:MIN:MAX, int:MIN:MAX
-- (each with an optional :STEPS, the grid points of the range), or a comma-separated list of choices (values typed as in --set; a single value is a fixed choice).
function M.parse_cli_param(s)
  local key, spec = tostring(s):match("^([^=]+)=(.*)$")
  if not key or spec == "" then
    error(("bad --param '%s': expected key=log:MIN:MAX, key=uniform:MIN:MAX, key=int:MIN:MAX or key=v1,v2,..."):format(tostring(s)), 0)
  end
  local kinds = { log = "log_uniform", uniform = "uniform", int = "int_uniform" }
  local k, a, b, steps = spec:match("^(%a+):([^:]*):([^:]*):([^:]*)$")
  if not k then k, a, b = spec:match("^(%a+):([^:]*):([^:]*)$") end
  if k then
    if not kinds[k] then
      error(("bad --param '%s': '%s' is not one of log, uniform, int (or give v1,v2,...)"):format(s, k), 0)
    end
    local lo, hi = tonumber(a), tonumber(b)
    if not lo or not hi then error(("bad --param '%s': bounds must be numbers"):format(s), 0) end
    local n = steps and math.tointeger(tonumber(steps))
    if steps and (not n or n < 1) then error(("bad --param '%s': STEPS must be a positive integer"):format(s), 0) end
    return key, { [kinds[k]] = { lo, hi }, steps = n }
  end
  local values = {}
  -- commas inside {..} belong to a list value
  local depth, cur = 0, {}
  for c in spec:gmatch(".") do
    if c == "{" then depth = depth + 1 elseif c == "}" then depth = depth - 1 end
    if c == "," and depth == 0 then values[#values + 1] = table.concat(cur); cur = {}
    else cur[#cur + 1] = c end
  end
  values[#values + 1] = table.concat(cur)
  local out = {}
  for i, v in ipairs(values) do
    if v == "" then error(("bad --param '%s': empty choice %d"):format(s, i), 0) end
    out[i] = config.parse_value(v)
  end
  return key, { choice = out }
end

-- The sweep definition from the experiment's `sweep` table and command-line options.
-- cli: { params = {{key, decl}...}, method=, trials=, seed=, metric=, mode=, batch=, n_startup=, budget= }
-- Returns def = { method, trials, seed, metric, mode, batch, n_startup, budget, params = sorted list }.
function M.definition(sweep_tbl, cli)
  sweep_tbl = sweep_tbl or {}
  cli = cli or {}
  if type(sweep_tbl) ~= "table" then error("the experiment's 'sweep' must be a table", 0) end
  local known = { metric = 1, mode = 1, method = 1, trials = 1, seed = 1, batch = 1, params = 1, budget = 1, n_startup = 1 }
  for k in pairs(sweep_tbl) do
    if not known[k] then
      error(("sweep: unknown field '%s' (expected metric, mode, method, trials, seed, batch, n_startup, params, budget)")
        :format(tostring(k)), 0)
    end
  end
  local decl = {}
  for k, v in pairs(sweep_tbl.params or {}) do decl[k] = v end
  for _, kv in ipairs(cli.params or {}) do decl[kv[1]] = kv[2] end
  local def = {
    method = cli.method or sweep_tbl.method or "random",
    seed = cli.seed or sweep_tbl.seed or 1,
    metric = cli.metric or sweep_tbl.metric,
    mode = cli.mode or sweep_tbl.mode or "max",
    batch = cli.batch or sweep_tbl.batch or 4,
    budget = cli.budget or (sweep_tbl.budget and config.deep_copy(sweep_tbl.budget)),
    params = {},
  }
  def.trials = cli.trials or sweep_tbl.trials
  def.n_startup = cli.n_startup or sweep_tbl.n_startup
  if not M.METHODS[def.method] then
    error(("sweep: method '%s' is not one of grid, random, tpe, halving"):format(tostring(def.method)), 0)
  end
  if def.mode ~= "max" and def.mode ~= "min" then error(("sweep: mode '%s' is not max or min"):format(tostring(def.mode)), 0) end
  if math.type(def.seed) ~= "integer" then error("sweep: seed must be an integer", 0) end
  for _, f in ipairs { "trials", "batch", "n_startup" } do
    local v = def[f]
    if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
      error(("sweep: %s must be a positive integer, got %s"):format(f, tostring(v)), 0)
    end
  end
  local keys = {}
  for k in pairs(decl) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do def.params[#def.params + 1] = M.normalize_param(k, decl[k]) end
  if #def.params == 0 then
    error("sweep: no parameters to search (declare sweep = { params = {...} } in the experiment or pass --param key=spec)", 0)
  end
  if def.method == "grid" then
    for _, p in ipairs(def.params) do
      if p.kind ~= "choice" and p.kind ~= "int_uniform" and not p.steps then
        error(("sweep parameter '%s': grid search needs choice values, int_uniform, or steps = N for a continuous range"):format(p.key), 0)
      end
    end
  elseif not def.trials then
    if def.method ~= "halving" then def.trials = 10 end
  end
  if def.method == "halving" then
    local b = def.budget
    if type(b) ~= "table" or type(b.param) ~= "string" or type(b.min) ~= "number" or type(b.max) ~= "number" then
      error("sweep: method halving needs budget = { param = 'train.epochs', min = 1, max = 9, eta = 3 }", 0)
    end
    b.eta = b.eta or 3
    if not (b.min > 0 and b.min <= b.max) then error(("sweep: budget needs 0 < min <= max, got min %s max %s"):format(b.min, b.max), 0) end
    if not (type(b.eta) == "number" and b.eta >= 2) then error("sweep: budget.eta must be a number >= 2", 0) end
    for _, p in ipairs(def.params) do
      if p.key == b.param then error(("sweep: '%s' is the halving budget: it cannot also be a searched parameter"):format(p.key), 0) end
    end
  elseif cli.budget ~= nil then
    error(("sweep: --budget is only used by method halving (method is %s)"):format(def.method), 0)
  else
    def.budget = nil   -- the experiment's halving budget, unused by the method chosen on the command line
  end
  return def
end

-- Check every key (and the budget) against the loaded configuration: each is applied to a copy of
-- cfg as `--set` would be, so unknown keys fail before any trial runs, with a suggestion.
function M.validate(def, cfg)
  local function try(key, value)
    local copy = config.deep_copy(cfg)
    local ok, err = pcall(config.apply_override, copy, key .. "=" .. M.format_value(value))
    if not ok then error(("sweep parameter '%s': %s"):format(key, (tostring(err):gsub("^%-%-set [^:]*: ", ""))), 0) end
  end
  for _, p in ipairs(def.params) do try(p.key, p.values and p.values[1] or p.lo) end
  if def.budget then try(def.budget.param, def.budget.min) end
  local m = def.metric
  if m ~= nil and (type(m) ~= "string" or not m:match("^[%w_]+$") and not m:match("^val%.[%w_]+$")) then
    error(("sweep: metric '%s' must be NAME (a test metric, e.g. accuracy) or val.NAME (validation, at the best epoch)")
      :format(tostring(m)), 0)
  end
end

-- ---------------------------------------------------------------- sampling (counter-based)

-- a uniform number in [0, 1) that depends only on (seed, trial index, key, j)
function M.uniform01(seed, index, key, j)
  local h = hs.sys.sha256(("%d|%d|%s|%d"):format(seed, index, key, j or 0))
  return tonumber(h:sub(1, 13), 16) / 2 ^ 52
end

local function from_unit(p, u)
  if p.kind == "choice" then return p.values[math.min(#p.values, 1 + math.floor(u * #p.values))] end
  if p.kind == "int_uniform" then return math.min(p.hi, p.lo + math.floor(u * (p.hi - p.lo + 1))) end
  if p.kind == "log_uniform" then return round6(math.exp(math.log(p.lo) + u * (math.log(p.hi) - math.log(p.lo)))) end
  return round6(p.lo + u * (p.hi - p.lo))
end
M.from_unit = from_unit

-- position of value v of parameter p in [0, 1] (for TPE kernels and plots)
local function to_unit(p, v)
  if p.kind == "choice" then
    for i, x in ipairs(p.values) do if M.format_value(x) == M.format_value(v) then return (i - 0.5) / #p.values end end
    return 0.5
  end
  if p.kind == "log_uniform" then return (math.log(v) - math.log(p.lo)) / (math.log(p.hi) - math.log(p.lo)) end
  if p.hi == p.lo then return 0.5 end
  return (v - p.lo) / (p.hi - p.lo)
end
M.to_unit = to_unit

-- trial index i's random configuration
function M.sample(def, i, salt)
  local out = {}
  for _, p in ipairs(def.params) do out[p.key] = from_unit(p, M.uniform01(def.seed, i, (salt or "") .. p.key, 0)) end
  return out
end

-- the grid points of one parameter
local function grid_values(p)
  if p.kind == "choice" then return p.values end
  local out = {}
  if p.kind == "int_uniform" and not p.steps then
    for v = p.lo, p.hi do out[#out + 1] = v end
    return out
  end
  local n = p.steps
  for s = 0, n - 1 do
    local u = n == 1 and 0.5 or s / (n - 1)
    local v
    if p.kind == "log_uniform" then v = round6(math.exp(math.log(p.lo) + u * (math.log(p.hi) - math.log(p.lo))))
    elseif p.kind == "int_uniform" then v = math.tointeger(math.floor(p.lo + u * (p.hi - p.lo) + 0.5))
    else v = round6(p.lo + u * (p.hi - p.lo)) end
    if #out == 0 or out[#out] ~= v then out[#out + 1] = v end
  end
  return out
end

-- The cartesian product in a fixed order: the first parameter (sorted by key) varies slowest.
function M.grid(def)
  local lists = {}
  for i, p in ipairs(def.params) do lists[i] = grid_values(p) end
  local out = {}
  local function rec(i, cur)
    if i > #lists then
      local c = {}
      for k, v in pairs(cur) do c[k] = v end
      out[#out + 1] = c
      return
    end
    for _, v in ipairs(lists[i]) do
      cur[def.params[i].key] = v
      rec(i + 1, cur)
    end
    cur[def.params[i].key] = nil
  end
  rec(1, {})
  return out
end

-- ---------------------------------------------------------------- ranking and the methods

-- better(a, b): is value a strictly better than b under mode (nil values are worst)
local function better(mode, a, b)
  if a == nil then return false end
  if b == nil then return true end
  if mode == "min" then return a < b end
  return a > b
end

-- Rank trials (list of {index, value, rung?}): best first; for halving a higher rung first; ties by
-- trial index. Returns a new list.
function M.rank(trials, mode)
  local out = {}
  for i, t in ipairs(trials) do out[i] = t end
  table.sort(out, function(a, b)
    local ra, rb = a.rung or 0, b.rung or 0
    if ra ~= rb then return ra > rb end
    if better(mode, a.value, b.value) then return true end
    if better(mode, b.value, a.value) then return false end
    return a.index < b.index
  end)
  return out
end

-- Successive halving promotion: of the rung's trials ({index, config, value}), the configs of the
-- best max(1, floor(n / eta)) by value (ties by trial index; failed trials never promoted).
function M.halving_promote(rung_trials, eta, mode)
  local ranked = {}
  for _, t in ipairs(rung_trials) do if t.value ~= nil then ranked[#ranked + 1] = { index = t.index, value = t.value, config = t.config } end end
  ranked = M.rank(ranked, mode)
  local k = math.max(1, math.floor(#rung_trials / eta))
  local out = {}
  for i = 1, math.min(k, #ranked) do out[i] = ranked[i].config end
  return out
end

-- the budget of rung r (0-based), or nil past the last rung
function M.halving_budget(b, r)
  local v = b.min * b.eta ^ r
  if r > 0 and b.min * b.eta ^ (r - 1) >= b.max then return nil end
  v = math.min(v, b.max)
  if b.min == math.floor(b.min) and b.max == math.floor(b.max) then v = math.tointeger(math.floor(v + 0.5)) end
  return v
end

local function halving_rungs(b)
  local r = 0
  while M.halving_budget(b, r + 1) do r = r + 1 end
  return r + 1
end

-- Tree-structured Parzen estimator: propose the configuration for trial index from completed trials
-- ({params, value}), each parameter independently: split at the best gamma fraction into good and
-- bad, draw candidates from the good kernel density l(x), keep the one maximising l(x)/g(x).
-- Deterministic: randomness is counter-based on (seed, index, key, candidate).
M.TPE = { gamma = 0.25, candidates = 24, bandwidth_min = 0.05 }
function M.tpe_propose(def, done, index)
  local ranked = {}
  for _, t in ipairs(done) do if t.value ~= nil then ranked[#ranked + 1] = t end end
  if #ranked < 2 then return M.sample(def, index) end
  table.sort(ranked, function(a, b)
    if better(def.mode, a.value, b.value) then return true end
    if better(def.mode, b.value, a.value) then return false end
    return a.index < b.index
  end)
  local ngood = math.max(1, math.floor(M.TPE.gamma * #ranked + 0.5))
  local out = {}
  for _, p in ipairs(def.params) do
    local good, bad = {}, {}
    for i, t in ipairs(ranked) do
      local u = to_unit(p, t.params[p.key])
      if i <= ngood then good[#good + 1] = u else bad[#bad + 1] = u end
    end
    local function density(xs, x)
      if p.kind == "choice" then   -- smoothed category frequencies
        local n, c = #p.values, 0
        for _, y in ipairs(xs) do if math.abs(y - x) < 0.5 / n then c = c + 1 end end
        return (c + 1) / (#xs + n)
      end
      local bw = math.max(M.TPE.bandwidth_min, 1.0 / math.max(1, #xs) ^ 0.2 * 0.3)
      local s = 1.0   -- a uniform prior component keeps the density positive everywhere
      for _, y in ipairs(xs) do s = s + math.exp(-0.5 * ((x - y) / bw) ^ 2) / (bw * math.sqrt(2 * math.pi)) end
      return s / (#xs + 1)
    end
    local best_u, best_score = nil, -math.huge
    for j = 1, M.TPE.candidates do
      local u1 = M.uniform01(def.seed, index, "tpe-pick|" .. p.key, j)
      local u2 = M.uniform01(def.seed, index, "tpe-jitter|" .. p.key, j)
      local u
      if p.kind == "choice" then
        -- sample a category from the good density (with smoothing)
        local n = #p.values
        local weights, tot = {}, 0
        for c = 1, n do weights[c] = density(good, (c - 0.5) / n); tot = tot + weights[c] end
        local acc, pick = 0, n
        for c = 1, n do acc = acc + weights[c] / tot; if u1 < acc then pick = c; break end end
        u = (pick - 0.5) / n
      else
        local centre = good[1 + math.floor(u1 * #good) % #good]
        local bw = math.max(M.TPE.bandwidth_min, 1.0 / (#good) ^ 0.2 * 0.3)
        -- Box-Muller from two counter-based uniforms
        local u3 = math.max(1e-12, M.uniform01(def.seed, index, "tpe-bm|" .. p.key, j))
        local z = math.sqrt(-2 * math.log(u3)) * math.cos(2 * math.pi * u2)
        u = math.min(1 - 1e-9, math.max(0, centre + bw * z))
      end
      local score = density(good, u) / density(bad, u)
      if score > best_score then best_u, best_score = u, score end
    end
    local v = from_unit(p, best_u)
    out[p.key] = v
  end
  return out
end

-- The next batch of trials given the sweep's trials so far (all complete). Returns a list of
-- {params, rung?, config?} (params include the halving budget), or nil when the sweep is done.
-- A pure function of (def, completed results): the same whatever ran them, with 1 process or N.
function M.next_batch(def, trials)
  local n = #trials
  local m = def.method
  if m == "grid" then
    if n > 0 then return nil end
    local g = M.grid(def)
    local out = {}
    for i = 1, math.min(#g, def.trials or #g) do out[i] = { params = g[i] } end
    return out
  elseif m == "random" then
    if n > 0 then return nil end
    local out = {}
    for i = 1, def.trials do out[i] = { params = M.sample(def, i) } end
    return out
  elseif m == "tpe" then
    if n >= def.trials then return nil end
    local startup = math.min(def.trials, def.n_startup or math.max(def.batch, 2 * #def.params + 1))
    local out = {}
    if n < startup then
      for i = n + 1, startup do out[#out + 1] = { params = M.sample(def, i) } end
      return out
    end
    for i = n + 1, math.min(def.trials, n + def.batch) do out[#out + 1] = { params = M.tpe_propose(def, trials, i) } end
    return out
  elseif m == "halving" then
    local b = def.budget
    local rung = -1
    for _, t in ipairs(trials) do rung = math.max(rung, t.rung or 0) end
    local configs
    if rung < 0 then
      local n0 = def.trials or math.tointeger(math.floor(b.eta ^ (halving_rungs(b) - 1) + 0.5))
      configs = {}
      for c = 1, n0 do configs[c] = { config = c, params = M.sample(def, c) } end
    else
      local budget = M.halving_budget(b, rung + 1)
      local last = {}
      for _, t in ipairs(trials) do if (t.rung or 0) == rung then last[#last + 1] = t end end
      if not budget or #last <= 1 then return nil end
      configs = {}
      local byconfig = {}
      for _, t in ipairs(last) do byconfig[t.config] = t.params end
      for i, c in ipairs(M.halving_promote(last, b.eta, def.mode)) do
        local params = {}
        for k, v in pairs(byconfig[c]) do params[k] = v end
        configs[i] = { config = c, params = params }
      end
      if #configs == 0 then return nil end
    end
    local budget = M.halving_budget(b, rung + 1)
    for _, c in ipairs(configs) do c.rung = rung + 1; c.params[b.param] = budget end
    return configs
  end
end

-- ---------------------------------------------------------------- metrics of a run record

-- The value of metric name in a run record: "val.X" = X of the validation history at the best
-- epoch (the weights the run kept; the last epoch when there is none), "X" = the test metric.
-- nil, message (with the available names) when the record has no such metric.
function M.metric_value(rec, name)
  local m = rec.metrics or {}
  local v
  if name:match("^val%.") then
    local k = name:sub(5)
    local h = rec.history or {}
    local e = tonumber(m.best_epoch)
    local entry
    for _, x in ipairs(h) do if x.epoch == e then entry = x end end
    entry = entry or h[#h]
    v = entry and entry[k]
  else
    v = m[name]
  end
  if type(v) == "number" and v == v then return v end
  local avail = {}
  local last = (rec.history or {})[#(rec.history or {})] or {}
  for k, x in pairs(last) do if type(x) == "number" and k ~= "epoch" and k ~= "time" then avail[#avail + 1] = "val." .. k end end
  for k, x in pairs(m) do if type(x) == "number" then avail[#avail + 1] = k end end
  table.sort(avail)
  return nil, ("run %s has no metric '%s' (available: %s)"):format(tostring(rec.id), name, table.concat(avail, ", "))
end

-- ---------------------------------------------------------------- the sweep record in git

local function clean(v) return require("hs.runs").clean(v) end

function M.new_id()
  local t = hs.sys.time()
  return os.date("!%Y%m%d-%H%M%S", math.floor(t)) .. "-"
    .. hs.sys.sha256(("%.6f|%d|%.9f"):format(t, hs.sys.pid(), hs.sys.clock())):sub(1, 6)
end

-- the definition's identity: resuming "the same sweep" means the same file, overrides and space
function M.def_hash(state)
  return hs.sys.sha256(json.encode(clean { file = state.experiment_file, overrides = state.overrides, def = state.def },
    { sort_keys = true }))
end

local function summary(state)
  local done, failed = 0, 0
  for _, t in ipairs(state.trials) do
    if t.status == "finished" then done = done + 1 elseif t.status == "failed" then failed = failed + 1 end
  end
  local b = state.best
  return { id = state.id, experiment = state.experiment, method = state.def.method, metric = state.def.metric,
    mode = state.def.mode, status = state.status, trials = #state.trials, finished = done, failed = failed,
    best = b and { trial = b.index, run = b.run_id, value = b.value } or nil, created = state.created,
    hash = state.hash }
end

-- Write the sweep's state (sweep.json) as a new commit of refs/histops/sweeps/<id>.
function M.write(store, state)
  local doc = {}   -- private fields and the experiment's source (its own file) stay out of sweep.json
  for k, v in pairs(state) do
    if k:sub(1, 1) ~= "_" and k ~= "experiment_source" then doc[k] = v end
  end
  local files = { ["sweep.json"] = json.encode(clean(doc), { indent = true, sort_keys = true }) .. "\n" }
  if state.experiment_source and not state._wrote_source then files["experiment.lua"] = state.experiment_source end
  local s = summary(state)
  local msg = ("sweep %s %s: %s, %d/%d trials%s\n\n%s%s\n"):format(state.id, state.status, tostring(state.experiment),
    s.finished, #state.trials, s.best and (", best " .. M.show_value(s.best.value)) or "", M.SUMMARY_TAG, json.encode(clean(s)))
  store:write(M.PREFIX .. state.id, files, msg, "", { keep = true })
  state._wrote_source = true
end

local function decode_summary(message)
  local line = message and message:match(M.SUMMARY_TAG:gsub("%p", "%%%0") .. "([^\n]*)")
  local s = line and json.decode(line)
  return type(s) == "table" and s or nil
end

-- All sweeps: summaries newest first.
function M.list(store)
  local out = {}
  for _, c in ipairs(store:list(M.PREFIX) or {}) do
    local s = decode_summary(c.message)
    if s then s.ref = c.ref; s.time = c.time; out[#out + 1] = s end
  end
  table.sort(out, function(a, b) return (a.created or 0) > (b.created or 0) end)
  return out
end

-- The state of sweep id (exact or a unique prefix, or "latest"): decoded sweep.json, or nil, message.
function M.read(store, id)
  if id == "latest" then
    local l = M.list(store)
    if #l == 0 then return nil, "no sweeps recorded in this repository (histops sweep EXPERIMENT.lua records one)" end
    id = l[1].id
  end
  local ok, raw = pcall(store.read, store, M.PREFIX .. id, "sweep.json")
  if not ok or not raw then
    local ids = {}
    for _, c in ipairs(store:list(M.PREFIX .. id) or {}) do ids[#ids + 1] = c.ref:sub(#M.PREFIX + 1) end
    if #ids == 1 then
      raw = store:read(M.PREFIX .. ids[1], "sweep.json")
    elseif #ids > 1 then
      table.sort(ids)
      return nil, ("sweep id prefix '%s' is ambiguous: %s"):format(id, table.concat(ids, ", ", 1, math.min(#ids, 8)))
    else
      return nil, ("no sweep '%s' in this repository (histops runs --sweep latest shows the newest)"):format(id)
    end
  end
  local st, err = json.decode(raw)
  if type(st) ~= "table" then return nil, ("sweep %s: corrupt sweep.json: %s"):format(id, tostring(err)) end
  st = require("hs.runs").nullfree(st)
  st.trials = st.trials or {}
  st._wrote_source = true
  return st
end

-- ---------------------------------------------------------------- ranking for `histops runs --sweep`

-- The sweep's trials ranked (best first): list of {rank, index, run_id, status, value, rung, params}
-- with the status of each trial's run taken from its own record (a trial left running by a killed
-- sweep shows as killed).
function M.ranking(state, store)
  local runs = require "hs.runs"
  local list = {}
  for _, t in ipairs(state.trials) do
    local status = t.status
    if status == "running" and t.run_id then
      local rec = runs.read(t.run_id, { store = store })
      status = rec and rec.status or "killed"
    end
    list[#list + 1] = { index = t.index, run_id = t.run_id, status = status, value = t.value, rung = t.rung,
      params = t.params, error = t.error }
  end
  local ranked = M.rank(list, state.def.mode)
  for i, t in ipairs(ranked) do t.rank = i end
  return ranked
end

-- The sweep's status with a driver that is gone counted as killed (as runs.effective_status does).
function M.effective_status(state)
  if state.status == "running" and state.pid and state.host == hs.sys.hostname()
      and not require("hs.runs").process_alive(state.pid) then
    return "killed"
  end
  return state.status
end

-- Print the ranking of sweep id (text table, or JSON). Returns an exit status.
function M.print_ranking(store, id, as_json)
  local runs = require "hs.runs"
  local state, err = M.read(store, id)
  if not state then io.stderr:write("histops runs: ", err, "\n"); return 1 end
  local ranked = M.ranking(state, store)
  state.status = M.effective_status(state)
  if as_json then
    io.write(json.encode(clean { sweep = state.id, experiment = state.experiment, metric = state.def.metric,
      mode = state.def.mode, method = state.def.method, status = state.status, best = state.best,
      trials = json.array(ranked) }, { indent = true }), "\n")
    return 0
  end
  local keys = {}
  for _, p in ipairs(state.def.params) do keys[#keys + 1] = p.key end
  if state.def.budget then keys[#keys + 1] = state.def.budget.param end
  local header = { "rank", "trial", "run", "status", state.def.metric }
  if state.def.method == "halving" then header[#header + 1] = "rung" end
  for _, k in ipairs(keys) do header[#header + 1] = k end
  local rows = {}
  for _, t in ipairs(ranked) do
    local row = { tostring(t.rank), tostring(t.index), t.run_id or "-", t.status,
      t.value and ("%.4f"):format(t.value) or "-" }
    if state.def.method == "halving" then row[#row + 1] = tostring(t.rung or 0) end
    for _, k in ipairs(keys) do row[#row + 1] = t.params[k] ~= nil and M.show_value(t.params[k]) or "-" end
    rows[#rows + 1] = row
  end
  io.write(("sweep %s (%s): %s, %s search, %d trials, metric %s (%s)\n"):format(state.id, state.status,
    tostring(state.experiment), state.def.method, #state.trials, state.def.metric, state.def.mode))
  io.write(runs.text_table(header, rows))
  for _, t in ipairs(ranked) do
    if t.status == "failed" and t.error then io.write(("trial %d failed: %s\n"):format(t.index, t.error:match("^[^\n]*"))) end
  end
  if state.best then
    io.write(("best: trial %d, run %s, %s = %.4f\n  reproduce: %s\n"):format(state.best.index, state.best.run_id,
      state.def.metric, state.best.value, M.reproduce_command(state, state.trials[state.best.index])))
  end
  return 0
end

-- ---------------------------------------------------------------- the driver

local function log(opts, fmt, ...)
  if not opts.quiet then io.stderr:write(fmt:format(...), "\n") end
end

-- the --set overrides of a trial: the sweep's own, then the trial's parameters (sorted keys)
function M.trial_overrides(state, t)
  local out = {}
  for _, o in ipairs(state.overrides or {}) do out[#out + 1] = o end
  local keys = {}
  for k in pairs(t.params) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do out[#out + 1] = k .. "=" .. M.format_value(t.params[k]) end
  return out
end

-- the command that reproduces trial t as a plain run
function M.reproduce_command(state, t)
  local parts = { "histops run", state.experiment_file }
  for _, o in ipairs(M.trial_overrides(state, t)) do parts[#parts + 1] = "--set '" .. o:gsub("'", "'\\''") .. "'" end
  return table.concat(parts, " ")
end

local function params_text(t)
  local keys, parts = {}, {}
  for k in pairs(t.params) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. M.show_value(t.params[k]) end
  return table.concat(parts, " ")
end
M.params_text = params_text

local function update_best(state)
  local cands = {}
  for _, t in ipairs(state.trials) do
    if t.status == "finished" and t.value ~= nil then cands[#cands + 1] = t end
  end
  local r = M.rank(cands, state.def.mode)
  local b = r[1]
  state.best = b and { index = b.index, run_id = b.run_id, value = b.value, params = b.params, rung = b.rung } or nil
end

-- Outcome of a trial's run from its record: sets t.status, t.value, t.error. fatal is a message when
-- the metric does not exist at all (a wrong metric name: stop the sweep).
local function collect(state, store, t, child_note)
  local runs = require "hs.runs"
  local rec = t.run_id and runs.read(t.run_id, { store = store })
  if rec and rec.status == "finished" then
    local v, err = M.metric_value(rec, state.def.metric)
    t.value, t.status, t.end_time = v, v ~= nil and "finished" or "failed", rec.end_time
    t.seconds = rec.end_time and rec.start_time and rec.end_time - rec.start_time or nil
    if v == nil then t.error = err; return err end
    t.error = nil
    return nil
  end
  t.status = "failed"
  t.value = nil
  t.error = rec and rec.error or child_note or "the trial's run was not recorded"
  return nil
end

local function trial_line(state, t)
  local total = state.def.method ~= "halving" and state.def.trials or #state.trials
  return ("trial %d/%d%s  %s  -> %s %s%s"):format(t.index, math.max(total, #state.trials), t.rung and (" rung " .. t.rung) or "",
    params_text(t), state.def.metric, t.value and ("%.4f"):format(t.value) or "failed",
    t.error and ("  (" .. t.error:match("^[^\n]*") .. ")") or "")
end

-- Run one trial in this process (also used by child processes and MPI ranks).
function M.run_trial_inprocess(state, t, opts)
  local exp = require "hs.experiment"
  local ok, cfg = pcall(config.load, state.experiment_file, M.trial_overrides(state, t))
  if not ok then return false, tostring(cfg) end
  local ok2, err = pcall(exp.run, cfg, { run_id = t.run_id, sweep = { id = state.id, trial = t.index },
    overrides = M.trial_overrides(state, t), quiet = true, out = opts.out, repo = opts.repo })
  if not ok2 then return false, tostring(err) end
  return true
end

local function new_run_id(state, t)
  -- unique per attempt, sorted by time like the runner's ids, naming the sweep's trial
  local attempt = #(t.attempts or {}) + 1
  local base = M.new_id()
  return ("%s-s%s-t%03d%s"):format(base, state.id:sub(-6), t.index, attempt > 1 and ("a" .. attempt) or "")
end

-- pids of the live processes on this host whose command line contains text (a trial's run id)
function M.processes_with(text)
  local out = {}
  local names = hs.sys.listdir("/proc") or {}
  for _, n in ipairs(names) do
    local pid = n:match("^%d+$") and tonumber(n)
    if pid and pid ~= hs.sys.pid() then
      local cmd = hs.sys.read_file("/proc/" .. n .. "/cmdline")
      if cmd and cmd:find(text, 1, true) then out[#out + 1] = pid end
    end
  end
  return out
end

-- Bring trials marked running in a previous (interrupted) invocation up to date: finished runs are
-- collected, runs still alive (an orphaned child) are waited for, the rest are to be rerun.
local function reconcile(state, store, opts)
  local runs = require "hs.runs"
  for _, t in ipairs(state.trials) do
    if t.status == "running" or t.status == "pending" and t.run_id then
      local rec = runs.read(t.run_id, { store = store })
      while rec and rec.status == "running" do
        log(opts, "sweep %s: trial %d's run %s is still running (pid %s): waiting for it", state.id, t.index, t.run_id, tostring(rec.pid))
        hs.sys.sleep(0.5)
        rec = runs.read(t.run_id, { store = store })
      end
      if not rec and (not t.host or t.host == hs.sys.hostname()) then
        -- a child started by the interrupted sweep that has not recorded its run yet: stop it, or it
        -- would record a second run of this trial after the rerun
        local pids = M.processes_with(t.run_id)
        if #pids > 0 then
          for _, pid in ipairs(pids) do require("hs.proc").kill(pid, "KILL") end
          while #M.processes_with(t.run_id) > 0 do hs.sys.sleep(0.05) end
          rec = runs.read(t.run_id, { store = store })   -- it may have written its first record meanwhile
        end
      end
      if rec and rec.status == "finished" then
        collect(state, store, t)
      else
        t.attempts = t.attempts or {}
        t.attempts[#t.attempts + 1] = { run_id = t.run_id, status = rec and rec.status or "not recorded" }
        t.status, t.run_id, t.value = "pending", nil, nil
      end
    elseif t.status == "failed" then
      t.attempts = t.attempts or {}
      t.attempts[#t.attempts + 1] = { run_id = t.run_id, status = "failed", error = t.error }
      t.status, t.run_id, t.value, t.error = "pending", nil, nil, nil
    end
  end
end

-- run the pending trials of the current batch with up to opts.jobs child processes
local function run_children(state, store, todo, opts)
  local proc = require "hs.proc"
  local exe = hs.sys.exe()
  local jobs = opts.jobs
  local threads = math.max(1, (opts.threads or hs.sys.get_threads()) // jobs)
  local logdir = ("%s/.sweeps/%s"):format(opts.out or "runs", state.id)
  hs.sys.mkdir_p(logdir)
  local running, queue, fatal = {}, {}, nil
  for _, t in ipairs(todo) do queue[#queue + 1] = t end
  local qi = 1
  local function start(t)
    t.run_id = new_run_id(state, t)
    t.status = "running"
    t.log = ("%s/trial-%03d.log"):format(logdir, t.index)
    local argv = { exe, "sweep", "--trial", ("%s:%d:%s"):format(state.id, t.index, t.run_id), state.experiment_file }
    for _, o in ipairs(M.trial_overrides(state, t)) do argv[#argv + 1] = "--set"; argv[#argv + 1] = o end
    if opts.out then argv[#argv + 1] = "--out"; argv[#argv + 1] = opts.out end
    if opts.repo then argv[#argv + 1] = "-C"; argv[#argv + 1] = opts.repo end
    M.write(store, state)   -- the run id is on record before the child can record anything under it
    local pid, err = proc.spawn(argv, { env = { HISTOPS_THREADS = tostring(threads), HISTOPS_RUNS_QUIET = "1" },
      stdout = t.log, stderr = t.log })
    if not pid then error(("sweep: cannot start trial %d: %s"):format(t.index, err), 0) end
    running[pid] = t
    t.pid, t.host = pid, hs.sys.hostname()
    M.write(store, state)
  end
  local n = 0
  while true do
    while not fatal and qi <= #queue and n < jobs do
      start(queue[qi]); qi = qi + 1; n = n + 1
    end
    if n == 0 then break end
    local pid, how, code = proc.wait()
    if not pid then error("sweep: " .. tostring(how), 0) end
    local t = running[pid]
    if t then
      running[pid] = nil
      n = n - 1
      local note
      if how ~= "exit" or code ~= 0 then
        local s = hs.sys.read_file(t.log) or ""
        local last = s:match("([^\n]+)\n*$") or ""
        note = ("trial process %s %d: %s (log %s)"):format(how == "exit" and "exited with" or "killed by signal", code, last, t.log)
      end
      local f = collect(state, store, t, note)
      if f then fatal = fatal or f end
      update_best(state)
      M.write(store, state)
      log(opts, "%s", trial_line(state, t))
    end
  end
  if fatal then error("sweep: " .. fatal, 0) end
end

local function run_inprocess(state, store, todo, opts)
  for _, t in ipairs(todo) do
    t.run_id = new_run_id(state, t)
    t.status = "running"
    M.write(store, state)
    local ok, err = M.run_trial_inprocess(state, t, opts)
    local f = collect(state, store, t, not ok and err or nil)
    update_best(state)
    M.write(store, state)
    log(opts, "%s", trial_line(state, t))
    if f then error("sweep: " .. f, 0) end
  end
end

-- MPI: every rank runs the pending trials whose index % size == rank, in-process; rank 0 plans,
-- collects the outcomes (gather) and writes the record. Every rank takes part in every collective.
local function run_mpi(state, store, todo, opts)
  local mpi = opts.mpi
  local rank, size = mpi.rank(), mpi.size()
  local msg
  if rank == 0 then
    for _, t in ipairs(todo) do t.run_id = new_run_id(state, t); t.status = "running" end
    M.write(store, state)
    local list = {}
    for i, t in ipairs(todo) do list[i] = { index = t.index, run_id = t.run_id, params = t.params, rung = t.rung, config = t.config } end
    msg = json.encode(clean { state = { id = state.id, experiment_file = state.experiment_file, overrides = state.overrides },
      trials = json.array(list) })
  end
  local work = json.decode(mpi.bcast(msg, 0))
  local mine = {}
  for _, t in ipairs(work.trials) do
    if t.index % size == rank then
      local ok, err = M.run_trial_inprocess(work.state, t, opts)
      mine[#mine + 1] = { index = t.index, ok = ok, error = not ok and err or nil }
    end
  end
  local all = mpi.gather(json.encode(clean(json.array(mine))), 0)
  if rank ~= 0 then return end
  local byindex = {}
  for _, s in ipairs(all) do for _, r in ipairs(json.decode(s)) do byindex[r.index] = r end end
  local fatal
  for _, t in ipairs(todo) do
    local r = byindex[t.index]
    local f = collect(state, store, t, r and r.ok == false and tostring(r.error) or nil)
    fatal = fatal or f
    log(opts, "%s", trial_line(state, t))
  end
  update_best(state)
  M.write(store, state)
  if fatal then return fatal end
end

-- Run (or resume) a sweep. state: a new or loaded state (see hs/cmd/sweep.lua); opts: jobs, out,
-- quiet, mpi (the hs.mpi module when launched by mpirun with size > 1), store.
-- Returns the final state.
function M.drive(state, opts)
  local store = opts.store
  local mpi = opts.mpi
  local rank = mpi and mpi.rank() or 0
  if rank == 0 then   -- who drives the sweep now: a sweep whose driver is gone shows as killed
    state.status, state.error = "running", nil
    state.pid, state.host = hs.sys.pid(), hs.sys.hostname()
    state.workers = mpi and mpi.size() or (opts.jobs or 1)
  end
  local reconciled = false
  local function plan()
    -- rank 0 decides; the others learn whether there is more work through the broadcast. Trials
    -- left running or failed by an earlier invocation are settled once, at the start.
    if not reconciled then reconcile(state, store, opts); reconciled = true end
    local pending = {}
    for _, t in ipairs(state.trials) do if t.status == "pending" then pending[#pending + 1] = t end end
    if #pending > 0 then return pending end
    local batch = M.next_batch(state.def, state.trials)
    if not batch or #batch == 0 then return nil end
    for _, b in ipairs(batch) do
      local t = { index = #state.trials + 1, params = b.params, rung = b.rung, config = b.config, status = "pending",
        batch = (state.batches or 0) + 1 }
      state.trials[#state.trials + 1] = t
      pending[#pending + 1] = t
    end
    state.batches = (state.batches or 0) + 1
    M.write(store, state)
    return pending
  end
  while true do
    local todo
    if rank == 0 then todo = plan() end
    if mpi then
      local more = mpi.bcast(rank == 0 and (todo and "more" or "done") or nil, 0)
      if more == "done" then break end
      local fatal = run_mpi(state, store, todo or {}, opts)
      local f = mpi.bcast(rank == 0 and (fatal or "") or nil, 0)
      if f ~= "" then error("sweep: " .. f, 0) end
    else
      if not todo then break end
      if opts.jobs and opts.jobs > 1 then run_children(state, store, todo, opts) else run_inprocess(state, store, todo, opts) end
    end
  end
  if rank == 0 then
    update_best(state)
    state.status = "finished"
    state.end_time = hs.sys.time()
    M.write(store, state)
  end
  return state
end

return M
