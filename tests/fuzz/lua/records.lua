-- tests/fuzz/lua/records.lua: fuzz harness (tests/fuzz/fuzz_records.c) for reading run and
-- registry records back from git: hs.runs (summary lines in commit messages, run.json; list,
-- read, resolve, compare) and hs.registry (version.json, alias.json; versions, aliases, history,
-- resolve) over an in-memory store that serves the fuzzed texts instead of libgit2 objects.
-- Input: sections split by "\n--8<--\n": [1] a commit message, [2] run.json, [3] version.json,
-- [4] alias.json. Invariant: every call returns or raises a string message, never an internal
-- Lua error (one with a position, "registry.lua:151: assertion failed!"); HS_FUZZ_STRICT=0
-- relaxes that to "any string" while exploring.
local hs = require "histops"
local runs = require "hs.runs"
local registry = require "hs.registry"

local STRICT = os.getenv("HS_FUZZ_STRICT") ~= "0"
local SEP = "\n--8<--\n"
local RUN_ID = "20260101-000000-abcdef"
local C1, C2 = ("a"):rep(40), ("b"):rep(40)

local function sections(input)
  local out, pos = {}, 1
  while #out < 3 do
    local i = input:find(SEP, pos, true)
    if not i then break end
    out[#out + 1] = input:sub(pos, i - 1)
    pos = i + #SEP
  end
  out[#out + 1] = input:sub(pos)
  return out
end

-- the subset of the hs.git store interface that hs.runs and hs.registry read through
local function fake_store(sec)
  local message, run_json, version_json, alias_json = sec[1], sec[2], sec[3], sec[4]
  local S = {}
  function S:list(prefix)
    local all = {
      { id = C1, ref = runs.PREFIX .. RUN_ID, message = message, time = 1700000000 },
      { id = C2, ref = runs.PREFIX .. "20260102-000000-fedcba", message = "run without summary", time = 1700000001 },
      { id = C1, ref = registry.PREFIX .. "m/versions/1", message = "version", time = 1 },
      { id = C2, ref = registry.PREFIX .. "m/versions/2", message = "version", time = 2 },
      { id = C1, ref = registry.PREFIX .. "m/aliases/production", message = "alias", time = 3 },
    }
    local out = {}
    for _, c in ipairs(all) do
      if c.ref:sub(1, #prefix) == prefix then out[#out + 1] = c end
    end
    return out
  end
  function S:read(ref, path)
    if path == "run.json" then return run_json end
    if path == "version.json" then return version_json end
    if path == "alias.json" then return alias_json end
    if path == "metrics.json" or path == "params.json" then return run_json end
    return nil
  end
  function S:resolve(ref)
    if ref == C1 or ref == C2 or ref:find("^refs/histops/") then return C1 end
    return nil
  end
  function S:log(ref, max)
    return { { id = C1, time = 3, author = "a", message = message }, { id = C2, time = 2, author = "b", message = "" } }
  end
  function S:head() return { unborn = false, workdir = "/nonexistent-hs-fuzz", gitdir = "/nonexistent-hs-fuzz/.git" } end
  function S:artifact_dir() return "/nonexistent-hs-fuzz/artifacts" end
  return S
end

local function call(what, f, ...)
  local ok, a, b = pcall(f, ...)
  if ok then return a, b end
  if type(a) ~= "string" then error(("%s raised a %s instead of a message"):format(what, type(a)), 0) end
  if STRICT and a:match("^[^\n]-%.lua:%d+: ") then
    error(("%s: internal error instead of a message: %s"):format(what, a), 0)
  end
  return nil, a
end

return function(input)
  local S = fake_store(sections(input))
  local opts = { store = S }
  -- runs: listing (summaries, falling back to run.json), reading, resolving, comparing
  local list = call("runs.list", runs.list, opts) or {}
  call("runs.list filtered", runs.list, { store = S, experiment = "fuzz", status = "finished", limit = 1 })
  local rows = {}
  for _, s in ipairs(list) do
    rows[#rows + 1] = { tostring(s.id), call("fmt_time", runs.fmt_time, s.start_time) or "?",
      tostring(s.status), call("fmt_value", runs.fmt_value, s.metrics and s.metrics.accuracy) or "?" }
  end
  call("text_table", runs.text_table, { "id", "start", "status", "accuracy" }, rows)
  local rec = call("runs.read", runs.read, RUN_ID, opts)
  call("runs.read prefix", runs.read, "2026", opts)
  call("runs.resolve latest", runs.resolve, "latest", opts)
  call("runs.resolve commit", runs.resolve, C1, opts)
  if type(rec) == "table" then
    call("comparable_params", runs.comparable_params, rec)
    local cmp = call("runs.compare", runs.compare, { rec, rec })
    if cmp then call("compare_json", runs.compare_json, cmp) end
    call("metric_delta", runs.metric_delta, rec, rec, "accuracy")
  end
  -- registry: versions, aliases, their history, and resolving NAME@alias / NAME@n / NAME@latest
  call("registry.versions", registry.versions, "m", opts)
  call("registry.aliases", registry.aliases, "m", opts)
  call("registry.alias", registry.alias, "m", "production", opts)
  call("registry.version", registry.version, "m", 1, opts)
  call("registry.history", registry.history, "m", "production", opts)
  call("registry.names", registry.names, opts)
  for _, spec in ipairs { "m@production", "m@1", "m@v2", "m@latest", "m@staging", "m", RUN_ID } do
    call("registry.resolve " .. spec, registry.resolve, spec, opts)
  end
end
