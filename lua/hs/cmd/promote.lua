-- lua/hs/cmd/promote.lua: `histops promote NAME --candidate MODEL [--to ALIAS] [--experiment FILE]
-- [--why TEXT] [--dry-run] [--report FILE] [--json FILE] [--set policy.x=y ...]`: run the
-- promotion gate (hs/gate.lua) of the candidate against the model the alias points at (the
-- incumbent) on the experiment's pinned evaluation set, print the Markdown report, and when every
-- rule passes register the candidate as a version of NAME and move the alias (compare-and-swap
-- from the state read before the evaluation, so two concurrent promotions cannot both win).
-- Exit status: 0 promoted (or, with --dry-run, would be), 1 rejected, 2 error.
local M = { help = "gate a candidate against NAME@production and promote it if every rule passes" }

local USAGE = [[
usage: histops promote NAME --candidate MODEL [--to ALIAS] [--experiment FILE] [--why TEXT]
                       [--dry-run] [--report FILE] [--json FILE] [--set policy.key=value ...]
  MODEL: a run id, run folder, model file, NAME@version or NAME@alias
  exit status: 0 promoted (--dry-run: would be promoted), 1 rejected by the gate, 2 error
]]

local function exists(p) local hs = require "histops"; local st = hs.sys.stat(p); return st and st.type == "file" end

-- The experiment whose policy and evaluation set apply: --experiment, else the file the candidate's
-- run came from, else the experiment source embedded in the model file.
local function load_experiment(file, cand, info, overrides)
  local hs = require "histops"
  local config = require "hs.config"
  if file then return config.load(file, overrides), file end
  local rec = info.run_record or info.record or {}
  local f = rec.experiment_file
  if type(f) == "string" and exists(f) then return config.load(f, overrides), f end
  local src = cand.meta.experiment_source
  if not src then error("no experiment to take the policy from: give --experiment FILE", 0) end
  local tmpdir = os.tmpname()
  os.remove(tmpdir)
  assert(hs.sys.mkdir_p(tmpdir))
  local name = (cand.meta.experiment_file or "experiment.lua"):match("([^/]+)$")
  local path = tmpdir .. "/" .. name
  assert(hs.sys.write_file_atomic(path, src))
  local src_dir = (HISTOPS_SOURCE_DIR or ".") .. "/experiments"
  local old = package.path
  package.path = src_dir .. "/?.lua;" .. src_dir .. "/?/init.lua;" .. package.path
  local ok, cfg = pcall(config.load, path, overrides)
  package.path = old
  os.remove(path)
  os.remove(tmpdir)
  if not ok then error(cfg, 0) end
  cfg.name = cand.meta.experiment or cfg.name
  return cfg, "(embedded in the model file)"
end

local function write_file(path, text)   -- atomic (temp file, fsync, rename): CI reads these
  local ok, err = require("histops").sys.write_file_atomic(path, text)
  if not ok then error(err, 0) end
end

function M.run(args)
  local hs = require "histops"
  local reg = require "hs.registry"
  local gate = require "hs.gate"
  local o, pos = reg.parse_args(args, { ["--candidate"] = "value", ["--to"] = "value", ["--experiment"] = "value",
    ["--why"] = "value", ["--dry-run"] = "bool", ["--report"] = "value", ["--json"] = "value", ["--set"] = "list",
    ["--help"] = "bool", ["--quiet"] = "bool" })
  if o and o.help then io.stdout:write(USAGE); return 0 end
  if not o or #pos ~= 1 or not o.candidate then
    io.stderr:write("histops promote: ", o and "need NAME and --candidate MODEL" or pos, "\n", USAGE)
    return 2
  end
  local name, alias = pos[1], o.to or "production"
  if name:find("@", 1, true) then name, alias = reg.split_spec(name, alias) end
  local function note(fmt, ...) if not o.quiet then io.stderr:write("promote: ", fmt:format(...), "\n") end end
  local res, outcome
  local ok, err = pcall(function()
    if not reg.valid_name(name) then error(("invalid model name '%s'"):format(name), 0) end
    if not reg.valid_name(alias) then error(("invalid alias '%s'"):format(alias), 0) end
    local store, serr = reg.open()
    if not store then error(serr, 0) end
    local cpath, cinfo = reg.resolve(o.candidate, { store = store })
    if not cpath then error("candidate: " .. cinfo, 0) end
    local cand, lerr = require("hs.model_io").load(cpath)
    if not cand then error("candidate: " .. tostring(lerr), 0) end
    -- the incumbent as it is now: the alias move below is a compare-and-swap from this state
    local cur = reg.alias(name, alias, { store = store })
    local inc, ilabel
    if cur then
      local ipath, iinfo = reg.resolve(("%s@%d"):format(name, cur.version), { store = store })
      if not ipath then error("incumbent: " .. iinfo, 0) end
      local ierr
      inc, ierr = require("hs.model_io").load(ipath)
      if not inc then error("incumbent: " .. tostring(ierr), 0) end
      ilabel = ("`%s@%d`, run `%s`"):format(name, cur.version, tostring(iinfo.run))
    end
    local cfg, efile = load_experiment(o.experiment, cand, cinfo, o.set)
    note("candidate %s; incumbent %s; experiment %s", o.candidate, cur and (name .. "@" .. cur.version) or "none", efile)
    local clabel = cinfo.kind == "version" and ("`%s@%d`"):format(cinfo.name, cinfo.version)
      or ("run `%s`"):format(tostring(cinfo.run or cand.meta.run or o.candidate))
    res = gate.evaluate { cfg = cfg, candidate = cand, incumbent = inc, candidate_label = clabel, incumbent_label = ilabel }
    outcome = { name = name, alias = alias, previous = cur and cur.version or nil }
    if not res.passed then
      outcome.status = o.dry_run and "dry-run" or "rejected"
      return
    end
    if o.dry_run then outcome.status = "dry-run"; return end
    local v
    if cinfo.kind == "version" and cinfo.name == name then
      v = cinfo.record
    else
      v = reg.register(o.candidate, { name = name, why = o.why, store = store })
    end
    outcome.status, outcome.version = "promoted", v.version
    local report = gate.report(res, outcome)
    local why = o.why or ("promotion gate passed (%d rules)"):format(#res.rules)
    local mok, merr = pcall(reg.set_alias, name, alias, v.version, why, cur and cur.commit_id or false,
      { store = store, report = report, fields = { gate = "passed", candidate = o.candidate } })
    if not mok then
      outcome.status = "error"
      outcome.message = tostring(merr) .. "; nothing moved, re-run the gate against the new incumbent"
      error(outcome.message, 0)
    end
    note("%s@%s -> v%d", name, alias, v.version)
  end)
  local code
  if not ok then
    io.stderr:write("histops promote: ", tostring(err), "\n")
    outcome = outcome or { name = name, alias = alias }
    outcome.status, outcome.message = "error", outcome.message or tostring(err)
    code = 2
  else
    code = (outcome.status == "promoted" or (outcome.status == "dry-run" and res.passed)) and 0 or 1
  end
  local md
  if res then
    md = gate.report(res, outcome)
  else
    md = ("### histops promotion gate: `%s@%s`\n\n**Verdict: ⚠️ ERROR**: %s\n"):format(name, alias, outcome.message)
  end
  io.stdout:write(md)
  local wok, werr = pcall(function()
    if o.report then write_file(o.report, md) end
    if o.json then
      write_file(o.json, hs.json.encode(res and gate.summary(res, outcome) or { passed = false, outcome = outcome },
        { indent = true }) .. "\n")
    end
  end)
  if not wok then io.stderr:write("histops promote: ", tostring(werr), "\n"); return 2 end
  return code
end

return M
