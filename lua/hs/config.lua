-- lua/hs/config.lua: experiment tables: loading a script (errors name the file and line),
-- defaults, `--set a.b=c` overrides with typed values, validation of known keys (with a
-- suggestion for typos), and a stable JSON-able view of the resolved parameters.
local M = {}

M.defaults = {
  name = nil,
  seed = 1,
  task = "classification",           -- or "segmentation"
  data = {
    kind = "folder",                 -- folder | presplit | csv | pairs | synthetic_ihc
    path = nil,
    split = { val = 0.15, test = 0.15, stratify = true, grouped = false },
    allow_skip = false,
    cache_size = nil,                -- {h, w} decoded once; default: input size (+ crop margin)
    limit_per_class = nil,
    limit = nil,
  },
  input = { size = { 64, 64 }, channels = 3, mean = { 0.5, 0.5, 0.5 }, std = { 0.25, 0.25, 0.25 } },
  augment = { hflip = true, vflip = true, rot90 = true, brightness = 0.0, contrast = 0.0, hed_sigma = 0.0 },
  model = nil,                       -- function(info) -> nn.Module
  train = {
    epochs = 10, batch = 32, optimizer = "adamw", lr = 1e-3, weight_decay = 1e-4, momentum = 0.9,
    schedule = "cosine", warmup_epochs = 0, grad_clip = 0, class_weights = "balanced",
    early_stopping = { metric = "auto", patience = 5 }, max_steps = 0, loss = "auto",
    threads = 0,
  },
  eval = { bootstrap = 1000, threshold = 0.5, batch = 0 },
  policy = {},
  report = { samples = 24 },
}

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local o = {}
  for k, x in pairs(v) do o[k] = deep_copy(x) end
  return o
end
M.deep_copy = deep_copy

-- merge user table over defaults; unknown keys of known sections are errors
local function levenshtein(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local c = a:sub(i, i) == b:sub(j, j) and 0 or 1
      d[i][j] = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + c)
    end
  end
  return d[#a][#b]
end
local function suggest(key, known)
  local best, bd = nil, 3
  for k in pairs(known) do
    local dd = levenshtein(key, k)
    if dd < bd then best, bd = k, dd end
  end
  return best and (" (did you mean '" .. best .. "'?)") or ""
end

-- sections whose contents are free-form (policy, user extras)
local FREE = { policy = true, extra = true, report = false }

local function merge(def, user, path)
  local out = deep_copy(def)
  for k, v in pairs(user) do
    local p = path == "" and tostring(k) or (path .. "." .. tostring(k))
    if FREE[path] or FREE[p] then
      out[k] = deep_copy(v)
    elseif def[k] == nil then
      if not M.known_nil[p] then
        local known = {}
        for kk in pairs(def) do known[kk] = true end
        for kk in pairs(M.known_nil) do
          local head, tail = kk:match("^(.*)%.([^.]+)$")
          if (head or "") == path then known[tail or kk] = true end
        end
        error(("unknown setting '%s'%s"):format(p, suggest(tostring(k), known)), 0)
      end
      out[k] = deep_copy(v)
    elseif type(v) == "table" and type(def[k]) == "table" and #v == 0 then
      out[k] = merge(def[k], v, p)
    else
      out[k] = v
    end
  end
  return out
end
M.known_nil = { name = true, model = true, description = true, tags = true, register = true, architecture = true, sweep = true, ["data.path"] = true, ["data.cache_size"] = true, ["data.limit_per_class"] = true,
  ["data.limit"] = true, ["data.synthetic"] = true, ["data.preprocess"] = true, ["data.classes"] = true, ["data.group"] = true,
  ["eval.window"] = true, ["eval.stride"] = true, ["train.milestones"] = true, ["train.checkpoint_every"] = true,
  ["data.mask_cache_size"] = true, ["data.invert_masks"] = true, baseline = true, ["eval.max_images"] = true, ["train.steps_per_epoch"] = true }

-- typed value of an override string
local function parse_value(s)
  if s == "true" then return true end
  if s == "false" then return false end
  if s == "nil" or s == "null" then return nil end
  local n = tonumber(s)
  if n then return n end
  if s:match("^{.*}$") then
    local t = {}
    for item in s:sub(2, -2):gmatch("[^,]+") do t[#t + 1] = parse_value(item:match("^%s*(.-)%s*$")) end
    return t
  end
  return s
end
M.parse_value = parse_value

function M.apply_override(cfg, spec)
  local key, value = spec:match("^([%w_%.]+)=(.*)$")
  if not key or key:find("^%.") or key:find("%.$") or key:find("..", 1, true) then
    error(("bad --set '%s': expected key.path=value"):format(spec), 0)
  end
  local node, parts = cfg, {}
  for part in key:gmatch("[^%.]+") do parts[#parts + 1] = part end
  -- every level of the key must be a known setting (a typo in a section name, e.g.
  -- data.splt.val, would otherwise create a new table and be silently ignored)
  local d = M.defaults
  for i = 1, #parts - 1 do
    local p, prefix = parts[i], table.concat(parts, ".", 1, i)
    if FREE[parts[1]] or M.known_nil[prefix] or type(d) ~= "table" then break end
    if d[p] == nil then
      local known = {}
      for k in pairs(d) do known[k] = true end
      error(("--set %s: unknown setting '%s'%s"):format(spec, prefix, suggest(p, known)), 0)
    end
    d = d[p]
  end
  for i = 1, #parts - 1 do
    local p = parts[i]
    local idx = #node > 0 and p:match("^%d+$") and tonumber(p) or nil
    if idx then   -- an entry of a list of tables, by index: data.preprocess.2.sigma=1.5
      if type(node[idx]) ~= "table" then
        error(("--set %s: '%s' has no entry %d"):format(spec, table.concat(parts, ".", 1, i - 1), idx), 0)
      end
      node = node[idx]
    else
      if type(node[p]) ~= "table" then
        if node[p] == nil then node[p] = {} else error(("--set %s: '%s' is not a table"):format(spec, p), 0) end
      end
      node = node[p]
    end
    -- a key into a list would mix string and integer keys, which no record can store as JSON;
    -- a list is only entered by the index of one of its tables
    if #node > 0 and not (i < #parts - 1 and parts[i + 1]:match("^%d+$")) then
      local list = table.concat(parts, ".", 1, i)
      error(("--set %s: '%s' is a list: set it whole, e.g. %s={1,2}"):format(spec, list, list), 0)
    end
  end
  local last = parts[#parts]
  local def = M.defaults
  for i = 1, #parts - 1 do def = type(def) == "table" and def[parts[i]] or nil end
  if type(def) == "table" and next(def) and def[last] == nil and not M.known_nil[key] and not FREE[parts[1]] then
    local known = {}
    for k in pairs(def) do known[k] = true end
    error(("--set %s: unknown setting '%s'%s"):format(spec, key, suggest(last, known)), 0)
  end
  -- a whole section (data, train.early_stopping, ...) is set key by key, never replaced
  local dv = type(def) == "table" and def[last] or nil
  if type(dv) == "table" and next(dv) and #dv == 0 and not FREE[parts[1]] then
    local k1 = next(dv)
    error(("--set %s: '%s' is a section: set its keys, e.g. %s.%s=..."):format(spec, key, key, tostring(k1)), 0)
  end
  node[last] = parse_value(value)
  if parts[1] == "data" and parts[2] == "preprocess" then
    local ok, steps = pcall(M.canonical_preprocess, cfg.data.preprocess)
    if not ok then error(("--set %s: %s"):format(spec, steps), 0) end
    cfg.data.preprocess = steps
  end
end

-- data.preprocess (hs.pipeline steps) -> its canonical description: a list of {op = name,
-- every parameter by name}, checked, so that `--set data.preprocess.<i>.<param>=v` and sweeps
-- reach every parameter and the record stores plain JSON. nil stays nil.
function M.canonical_preprocess(steps)
  if steps == nil then return nil end
  local ok, pipe = pcall(require("hs.pipeline").compile, steps)
  if not ok then error("data.preprocess: " .. tostring(pipe):gsub("^[^:\n]*%.lua:%d+: ", ""), 0) end
  return pipe:describe()
end

-- Load an experiment file -> resolved config. Errors: "FILE:LINE: message".
function M.load(path, overrides)
  local chunk, err = loadfile(path)
  if not chunk then error(err, 0) end
  local dir = path:match("^(.*)/[^/]*$") or "."
  local old = package.path
  package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
  local ok, user = pcall(chunk)
  if not ok then package.path = old; error(user, 0) end
  if type(user) ~= "table" then
    package.path = old
    error(("%s: an experiment must return a table, got %s"):format(path, type(user)), 0)
  end
  local cfg = merge(M.defaults, user, "")
  local okp, steps = pcall(M.canonical_preprocess, cfg.data.preprocess)
  if not okp then package.path = old; error(("%s: %s"):format(path, steps), 0) end
  cfg.data.preprocess = steps
  for _, o in ipairs(overrides or {}) do M.apply_override(cfg, o) end
  cfg.name = cfg.name or path:match("([^/]+)%.lua$")
  cfg._path = path
  cfg._dir = dir
  return cfg
end

-- JSON-able resolved parameters (functions replaced by a marker)
function M.public(cfg)
  local function clean(v)
    if type(v) == "function" then return "<function>" end
    if type(v) ~= "table" then return v end
    local o = {}
    for k, x in pairs(v) do
      if type(k) ~= "string" or k:sub(1, 1) ~= "_" then o[k] = clean(x) end
    end
    return o
  end
  return clean(cfg)
end

-- flatten nested params to "a.b.c" = value (for MLflow/DVC params and compare)
function M.flatten(t, prefix, out)
  out = out or {}
  for k, v in pairs(t) do
    local key = prefix and (prefix .. "." .. tostring(k)) or tostring(k)
    if type(v) == "table" and not (#v > 0) then M.flatten(v, key, out)
    elseif type(v) == "table" then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = tostring(x) end
      out[key] = "{" .. table.concat(parts, ",") .. "}"
    else out[key] = v end
  end
  return out
end

return M
