-- lua/hs/registry.lua: the model registry. Versions and aliases are records in git (as runs
-- are) under refs/histops/models/<name>/..., weights live in the content-addressed artifact
-- store; a model can be named by a file path, NAME@alias, NAME@<n> / NAME@v<n>, NAME@latest,
-- a run folder or a run id. Not a server and not a training runner (see hs.experiment).
--
-- Layout (read by the HTTP server too; keep it fixed):
--   refs/histops/models/<name>/versions/<n>   commit with version.json: {name, version, run,
--       commit, branch, experiment, data_fingerprint, classes, input, pipeline, task, metrics,
--       weights (sha256 in the artifact store), size_bytes, created, user}
--   refs/histops/models/<name>/aliases/<alias> commit chain (each move a commit whose parent is
--       the previous move) with alias.json: {name, alias, version, who, when, why, previous}
--       (and report.md when the move came from `histops promote`)
-- Moves are compare-and-swap on the ref: of two concurrent moves from the same state only one
-- lands, the other raises "... moved concurrently ...".
--
--   M.resolve(spec [, opts])  -> path, info | nil, message   (opts.repo: a folder in the repository,
--                                 default $HISTOPS_REPO, else the current folder; opts.store: an open hs.git store)
--   M.load(spec [, opts])     -> model_io.load result with .registry = info | nil, message
--   M.register(source, {name=, why=, repo=, force=}) -> version record (source: run id, run
--       folder, model file or another NAME@...; the same weights registered twice return the
--       existing version unless force)
--   M.set_alias(name, alias, version, why, expected [, opts]) -> alias record
--       expected: nil = the alias as read now, false = must not exist yet, 40-hex commit id,
--       or a version number the alias must currently point at
--   M.history(name, alias [, opts]) -> moves, newest first
--   M.versions(name [, opts]) / M.version(name, n) / M.aliases(name) / M.alias(name, alias) / M.names()
--   M.rollback(name, alias, {to=, why=}) -> alias record
--   M.register_after_run(run_dir, spec, experiment_name) -> version, alias (never raises)
local hs = require "histops"
local json = hs.json

local M = {}

M.PREFIX = "refs/histops/models/"

local function fail(fmt, ...) error(fmt:format(...), 0) end

-- ---------------------------------------------------------------- helpers

local function valid_name(s)
  return type(s) == "string" and #s <= 100 and s:match("^[%w][%w%._%-]*$") ~= nil and not s:find("..", 1, true)
    and not s:match("%.lock$")
end
M.valid_name = valid_name

local function check_name(what, s)
  if not valid_name(s) then
    fail("invalid %s '%s': use letters, digits, '.', '_' and '-', starting with a letter or digit", what, tostring(s))
  end
end

-- The repository holding the registry: path, else $HISTOPS_REPO, else the current folder.
function M.open(path)
  local env = os.getenv("HISTOPS_REPO")
  local s, err = hs.git.open(path or (env ~= "" and env) or ".")
  if not s then return nil, err end
  return s
end

local function store_of(opts)
  opts = opts or {}
  if opts.store then return opts.store end
  return M.open(opts.repo)
end

local function need_store(opts)
  local s, err = store_of(opts)
  if not s then fail("model registry: %s", err) end
  return s
end

local function version_ref(name, n) return ("%s%s/versions/%d"):format(M.PREFIX, name, n) end
local function alias_ref(name, alias) return ("%s%s/aliases/%s"):format(M.PREFIX, name, alias) end
M.version_ref, M.alias_ref = version_ref, alias_ref

local function is_file(p) local st = hs.sys.stat(p); return st and st.type == "file" end
local function is_dir(p) local st = hs.sys.stat(p); return st and st.type == "dir" end

local function iso_now() return os.date("!%Y-%m-%dT%H:%M:%SZ") end

local function capture(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  if not p then return nil end
  local out = p:read("a")
  p:close()
  out = out and out:gsub("%s+$", "")
  return out ~= "" and out or nil
end

-- who is acting: $HISTOPS_USER, else git's user.name (and e-mail), else $USER
function M.who(store)
  local u = os.getenv("HISTOPS_USER")
  if u and u ~= "" then return u end
  local dir = store and hs.git and store:head().workdir or "."
  if dir == "" then dir = store:head().gitdir end
  local q = "'" .. dir:gsub("'", "'\\''") .. "'"
  local name = capture("git -C " .. q .. " config user.name")
  if name then
    local mail = capture("git -C " .. q .. " config user.email")
    return mail and (name .. " <" .. mail .. ">") or name
  end
  return os.getenv("USER") or "unknown"
end

-- need_version: version.json and alias.json must carry an integer version (a corrupt record
-- would otherwise fail later as an internal error, e.g. comparing nil versions)
local function decode(text, what, need_version)
  if text == nil then fail("%s: missing (corrupt registry record)", what) end
  local ok, v = pcall(json.decode, text)
  if not ok or type(v) ~= "table" then fail("%s: not valid JSON (%s)", what, tostring(v)) end
  if need_version and (type(v.version) ~= "number" or math.tointeger(v.version) == nil) then
    fail("%s: 'version' is %s, not an integer (corrupt registry record)", what, tostring(v.version))
  end
  return v
end

local function encode(v) return json.encode(v, { indent = true }) .. "\n" end

local function moved_concurrently(err) return tostring(err):find("moved concurrently", 1, true) ~= nil end

-- ---------------------------------------------------------------- reading the registry

-- All model names (sorted).
function M.names(opts)
  local s = store_of(opts)
  if not s then return {} end
  local seen, out = {}, {}
  for _, c in ipairs(s:list(M.PREFIX) or {}) do
    local name = c.ref:sub(#M.PREFIX + 1):match("^([^/]+)/")
    if name and not seen[name] then seen[name] = true; out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

-- The record of version n of name (nil, message when absent).
function M.version(name, n, opts)
  local s, err = store_of(opts)
  if not s then return nil, err end
  local ref = version_ref(name, n)
  local text = s:read(ref, "version.json")
  if not text then return nil, ("model %s has no version %s"):format(name, tostring(n)) end
  local v = decode(text, ref .. ":version.json", true)
  v.ref, v.commit_id = ref, s:resolve(ref)
  return v
end

-- All versions of name, oldest first.
function M.versions(name, opts)
  check_name("model name", name)
  local s = store_of(opts)
  if not s then return {} end
  local out = {}
  for _, c in ipairs(s:list(M.PREFIX .. name .. "/versions/") or {}) do
    local n = math.tointeger(tonumber(c.ref:match("/versions/(%d+)$")))
    if n then
      local v = decode(s:read(c.id, "version.json"), c.ref .. ":version.json", true)
      v.ref, v.commit_id = c.ref, c.id
      out[#out + 1] = v
    end
  end
  table.sort(out, function(a, b) return a.version < b.version end)
  return out
end

local function latest_version(name, opts)
  local vs = M.versions(name, opts)
  return vs[#vs]
end

-- The current state of alias (nil, message when it does not exist).
function M.alias(name, alias, opts)
  local s, err = store_of(opts)
  if not s then return nil, err end
  local ref = alias_ref(name, alias)
  local id = s:resolve(ref)
  if not id then return nil, ("model %s has no alias '%s'"):format(name, alias) end
  local a = decode(s:read(id, "alias.json"), ref .. ":alias.json", true)
  a.commit_id, a.ref = id, ref
  return a
end

-- { alias = record, ... } for every alias of name.
function M.aliases(name, opts)
  check_name("model name", name)
  local s = store_of(opts)
  if not s then return {} end
  local out = {}
  for _, c in ipairs(s:list(M.PREFIX .. name .. "/aliases/") or {}) do
    local alias = c.ref:match("/aliases/(.+)$")
    local a = decode(s:read(c.id, "alias.json"), c.ref .. ":alias.json", true)
    a.commit_id, a.ref = c.id, c.ref
    out[alias] = a
  end
  return out
end

-- The moves of an alias, newest first: { {version, previous, who, when, why, commit_id, time,
-- until = when the next move replaced it (nil for the current one)}, ... }
function M.history(name, alias, opts)
  check_name("model name", name)
  check_name("alias", alias)
  local s = need_store(opts)
  local log = s:log(alias_ref(name, alias))
  if not log then return nil, ("model %s has no alias '%s'"):format(name, alias) end
  local out = {}
  for i, c in ipairs(log) do
    local a = decode(s:read(c.id, "alias.json"), alias_ref(name, alias) .. "@" .. c.id:sub(1, 8), true)
    a.commit_id, a.time, a.author = c.id, c.time, c.author
    if i > 1 then a["until"] = out[i - 1].when end
    out[i] = a
  end
  return out
end

-- ---------------------------------------------------------------- run records

-- A run's record and model file from its id: hs.runs when present, else run.json read from
-- refs/histops/runs/<id>, else a run folder runs/*/<id>/ under the working directory.
local function run_from_id(id, opts)
  local rec, model_sha
  local s = store_of(opts)
  local ok, runs = pcall(require, "hs.runs")
  if s and ok and type(runs) == "table" then
    -- hs.runs.resolve: exact ids, unique prefixes, "latest", commit-ish (latest run there)
    local f = runs.resolve or runs.read
    local ok2, got = pcall(f, id, { store = s })
    if ok2 and type(got) == "table" then rec = got end
  end
  if not rec and s then
    local text = s:read("refs/histops/runs/" .. id, "run.json")
    if text then rec = decode(text, "refs/histops/runs/" .. id .. ":run.json") end
  end
  if rec then
    model_sha = rec.artifacts and rec.artifacts["model.safetensors"]
    if type(model_sha) == "table" then model_sha = model_sha.sha256 or model_sha.sha end
    if model_sha and s then
      local p = hs.git.artifact_path(s:artifact_dir(), model_sha)
      if p then return p, rec end
    end
  end
  -- a run folder in the working directory (runs/<experiment>/<id>/)
  local root = (opts and opts.runs_root) or "runs"
  local rid = rec and rec.id or id
  for _, exp in ipairs(hs.sys.listdir(root) or {}) do
    local dir = root .. "/" .. exp .. "/" .. rid
    if is_file(dir .. "/model.safetensors") then
      local r = rec
      if not r and is_file(dir .. "/run.json") then r = decode(hs.sys.read_file(dir .. "/run.json"), dir .. "/run.json") end
      return dir .. "/model.safetensors", r or { id = rid }
    end
  end
  if rec then
    return nil, ("run %s: its model (artifact %s) is not in the artifact store %s"):format(id, tostring(model_sha),
      s and s:artifact_dir() or "?")
  end
  return nil, ("'%s' is not a model file, a run folder, NAME@alias, NAME@version or a known run id"):format(id)
end

-- ---------------------------------------------------------------- resolving a model spec

local function version_path(v, s)
  if type(v.weights) ~= "string" or #v.weights ~= 64 or not v.weights:match("^[0-9a-f]+$") then
    return nil, ("%s@%s: the version record's weights %s are not a SHA-256 (corrupt registry record)")
      :format(tostring(v.name), tostring(v.version), tostring(v.weights))
  end
  local p, err = hs.git.artifact_path(s:artifact_dir(), v.weights)
  if not p then
    return nil, ("%s@%d: weights %s are not in the artifact store %s (fetch them, or point HISTOPS_ARTIFACTS at the shared store): %s")
      :format(v.name, v.version, tostring(v.weights), s:artifact_dir(), err)
  end
  return p
end

-- spec -> path of a local model file, info { kind = "file"|"run"|"version", spec, path, name,
-- version, alias, record (version.json), run, run_record }; nil, message when not found.
function M.resolve(spec, opts)
  if type(spec) ~= "string" or spec == "" then error("registry.resolve: model spec (string) expected", 2) end
  opts = opts or {}
  -- 1. a file or a run folder
  if is_file(spec) then
    return spec, { kind = "file", spec = spec, path = spec }
  end
  if is_dir(spec) then
    local p = spec:gsub("/+$", "") .. "/model.safetensors"
    if not is_file(p) then return nil, ("%s: no model.safetensors in this folder"):format(spec) end
    local rec
    local rj = spec:gsub("/+$", "") .. "/run.json"
    if is_file(rj) then rec = decode(hs.sys.read_file(rj), rj) end
    return p, { kind = "run", spec = spec, path = p, run = rec and rec.id or spec:match("([^/]+)/*$"), run_record = rec }
  end
  -- 2. NAME@alias, NAME@<n>, NAME@v<n>, NAME@latest
  local name, sel = spec:match("^([^@/]+)@([^@/]+)$")
  if name then
    if not valid_name(name) then return nil, ("'%s': invalid model name '%s'"):format(spec, name) end
    local s, err = store_of(opts)
    if not s then return nil, err end
    local n = math.tointeger(tonumber(sel:match("^v?(%d+)$") or ""))
    local v, alias
    if n then
      v, err = M.version(name, n, { store = s })
      if not v then return nil, err end
    else
      local a = M.alias(name, sel, { store = s })
      if a then
        alias = sel
        v, err = M.version(name, a.version, { store = s })
        if not v then return nil, ("%s points at version %s: %s"):format(spec, tostring(a.version), err) end
      elseif sel == "latest" then
        v = latest_version(name, { store = s })
        if not v then return nil, ("model %s has no versions"):format(name) end
      else
        local have = {}
        for k in pairs(M.aliases(name, { store = s })) do have[#have + 1] = k end
        table.sort(have)
        return nil, ("model %s has no alias '%s'%s"):format(name, sel,
          #have > 0 and (" (aliases: " .. table.concat(have, ", ") .. ")") or "")
      end
    end
    local p, perr = version_path(v, s)
    if not p then return nil, perr end
    return p, { kind = "version", spec = spec, path = p, name = name, version = v.version, alias = alias, record = v,
      run = v.run }
  end
  -- 3. a run id (or a bare registered name: its production alias)
  if not spec:find("/", 1, true) then
    local s = store_of(opts)
    if s and valid_name(spec) and M.alias(spec, "production", { store = s }) then
      return M.resolve(spec .. "@production", { store = s })
    end
    local p, rec = run_from_id(spec, { store = s, runs_root = opts.runs_root, repo = opts.repo })
    if not p then return nil, rec end
    return p, { kind = "run", spec = spec, path = p, run = rec.id or spec, run_record = rec }
  end
  return nil, ("%s: no such file or folder"):format(spec)
end

function M.load(spec, opts)
  local path, info = M.resolve(spec, opts)
  if not path then return nil, info end
  local m, err = require("hs.model_io").load(path)
  if not m then return nil, err end
  m.registry = info
  return m, info
end

-- ---------------------------------------------------------------- writing

-- Register the model of source (run id, run folder, model file, or another model spec) as the
-- next version of name. Returns the version record and whether it was newly created.
function M.register(source, opts)
  opts = opts or {}
  local name = opts.name
  check_name("model name", name)
  local s = need_store(opts)
  local path, info = M.resolve(source, { store = s, runs_root = opts.runs_root })
  if not path then fail("register: %s", info) end
  local tensors, meta = require("hs.model_io").read_meta(path)
  if not tensors then fail("register: %s", meta) end
  if meta.format ~= "histops-model-1" then
    fail("register: %s is not a histops model file (format '%s')", path, tostring(meta.format))
  end
  local sha = s:artifact_put(path)
  if not sha then fail("register: cannot store %s in the artifact store", path) end
  local existing = M.versions(name, { store = s })
  if not opts.force then
    for _, v in ipairs(existing) do
      if v.weights == sha then return v, false end
    end
  end
  local rec = info.run_record or {}
  if info.kind == "version" then rec = info.record or {} end
  if info.kind == "run" and info.run and not rec.code then
    -- a run folder: the git record (hs.runs) knows the commit and branch it ran at
    local ok, runs = pcall(require, "hs.runs")
    if ok and type(runs) == "table" and runs.read then
      local ok2, r = pcall(runs.read, info.run, { store = s })
      if ok2 and type(r) == "table" then rec = r end
    end
  end
  local code = rec.code or {}
  local head = s:head()
  local metrics = rec.metrics or meta.metrics or {}
  local fp = rec.data and rec.data.fingerprint
  if type(fp) == "table" then fp = fp.all end
  local v = {
    name = name,
    run = info.run or rec.id or meta.run,
    commit = code.commit or rec.commit or (head.commit ~= "" and head.commit or nil),
    branch = code.branch or rec.branch or (head.branch ~= "" and head.branch or nil),
    experiment = rec.experiment or meta.experiment,
    experiment_file = rec.experiment_file or meta.experiment_file,
    data_fingerprint = fp or rec.data_fingerprint or meta.data_fingerprint,
    classes = meta.classes or {},
    input = meta.input,
    pipeline = meta.pipeline,
    task = meta.task,
    architecture = meta.architecture,
    metrics = metrics,
    weights = sha,
    size_bytes = hs.sys.stat(path).size,
    created = iso_now(),
    user = opts.user or M.who(s),
    source = info.kind == "file" and path or nil,
    why = opts.why,
  }
  local n = existing[#existing] and existing[#existing].version or 0
  for _ = 1, 20 do
    n = n + 1
    v.version = n
    local ok, err = pcall(s.write, s, version_ref(name, n), { ["version.json"] = encode(v) },
      ("register %s@%d from %s"):format(name, n, tostring(v.run or source)), false)
    if ok then
      v.ref, v.commit_id = version_ref(name, n), err
      return v, true
    end
    if not moved_concurrently(err) then error(err, 0) end
  end
  fail("register: could not allocate a version number for %s (too many concurrent registrations)", name)
end

-- Move alias of name to version (compare-and-swap). expected: nil = the alias as read now,
-- false = it must not exist yet, a 40-hex commit id, or the version number it must point at.
-- extra: optional { report = markdown text, fields = {...} } stored with the move.
function M.set_alias(name, alias, version, why, expected, opts)
  opts = opts or {}
  check_name("model name", name)
  check_name("alias", alias)
  if alias == "latest" or alias:match("^v?%d+$") then fail("alias '%s' is reserved (it names versions)", alias) end
  local n = math.tointeger(tonumber(version))
  if not n then fail("set_alias: version number expected, got %s", tostring(version)) end
  local s = need_store(opts)
  local target, verr = M.version(name, n, { store = s })
  if not target then fail("%s", verr) end
  local cur = M.alias(name, alias, { store = s })
  local exp_id
  if expected == nil then
    exp_id = cur and cur.commit_id or false
  elseif expected == false then
    if cur then fail("alias %s@%s moved concurrently (expected no alias, found version %d)", name, alias, cur.version) end
    exp_id = false
  elseif type(expected) == "number" and math.tointeger(expected) then
    if not cur or cur.version ~= expected then
      fail("alias %s@%s moved concurrently (expected version %d, found %s)", name, alias, expected,
        cur and ("version " .. cur.version) or "no alias")
    end
    exp_id = cur.commit_id
  elseif type(expected) == "string" and expected:match("^%x+$") and #expected == 40 then
    exp_id = expected
  else
    fail("set_alias: expected must be nil, false, a version number or a 40-hex commit id")
  end
  local rec = {
    name = name, alias = alias, version = n, who = opts.who or M.who(s), when = iso_now(), why = why or "",
    previous = cur and cur.version or nil,
  }
  for k, v in pairs(opts.fields or {}) do if rec[k] == nil then rec[k] = v end end
  local files = { ["alias.json"] = encode(rec) }
  if opts.report then files["report.md"] = opts.report end
  local msg = ("%s@%s: %s -> v%d%s"):format(name, alias, cur and ("v" .. cur.version) or "(new)", n,
    (why and why ~= "") and (": " .. why) or "")
  local id = s:write(alias_ref(name, alias), files, msg, exp_id)
  rec.commit_id, rec.ref = id, alias_ref(name, alias)
  return rec
end

-- Move alias back: to opts.to, else to the version that served before the current one.
function M.rollback(name, alias, opts)
  opts = opts or {}
  local s = need_store(opts)
  local hist, err = M.history(name, alias, { store = s })
  if not hist then fail("%s", err) end
  local cur = hist[1]
  local to = opts.to and math.tointeger(tonumber(tostring(opts.to):match("^v?(%d+)$") or ""))
  if opts.to and not to then fail("rollback: --to needs a version number, got '%s'", tostring(opts.to)) end
  if not to then
    for i = 2, #hist do
      if hist[i].version ~= cur.version then to = hist[i].version; break end
    end
    if not to then fail("%s@%s has no earlier version to roll back to (history: %d move(s))", name, alias, #hist) end
  end
  if to == cur.version then fail("%s@%s already points at version %d", name, alias, to) end
  local why = opts.why or ("rollback from v%d"):format(cur.version)
  return M.set_alias(name, alias, to, why, cur.commit_id, { store = s, who = opts.who })
end

-- For the experiment runner (automatic registration): spec is the experiment's `register`
-- setting: true (name = the experiment's name), "NAME", or { name =, alias =, why = }.
-- Never raises (a registry problem must not fail a finished run): version, alias record | nil, message.
function M.register_after_run(run_dir, spec, experiment_name, opts)
  if not spec then return nil, "no register setting" end
  if type(spec) == "string" then spec = { name = spec } end
  if spec == true then spec = {} end
  if type(spec) ~= "table" then return nil, "register: true, a model name or { name =, alias =, why = }" end
  local name = spec.name or experiment_name
  local ok, v = pcall(M.register, run_dir, { name = name, why = spec.why or "registered by histops run",
    repo = opts and opts.repo })
  if not ok then return nil, tostring(v) end
  local a
  if spec.alias then
    local ok2, rec = pcall(M.set_alias, name, spec.alias, v.version, spec.why or ("histops run " .. tostring(v.run)), nil,
      { repo = opts and opts.repo })
    if not ok2 then return v, nil, tostring(rec) end
    a = rec
  end
  return v, a
end

-- ---------------------------------------------------------------- command-line helpers

-- Parse args for the registry commands: flags = { ["--name"] = "value" | "bool" | "list" }.
-- Returns options (keys without the dashes, '-' -> '_'), positionals; nil, message on misuse.
function M.parse_args(args, flags)
  local o, pos = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local key, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    key = key or a
    local kind = flags[key]
    if a:sub(1, 2) == "--" and a ~= "--" then
      if not kind then return nil, ("unknown option %s"):format(key) end
      local k = key:sub(3):gsub("%-", "_")
      if kind == "bool" then
        o[k] = true
      else
        local v = inline
        if not v then
          v = args[i + 1]
          if v == nil then return nil, ("%s needs a value"):format(key) end
          i = i + 1
        end
        if kind == "list" then o[k] = o[k] or {}; o[k][#o[k] + 1] = v else o[k] = v end
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return o, pos
end

-- "NAME@alias" -> name, alias (alias defaults to def)
function M.split_spec(spec, def)
  local name, alias = tostring(spec):match("^([^@]+)@(.+)$")
  if name then return name, alias end
  return spec, def
end

return M
