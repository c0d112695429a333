-- lua/hs/cmd/show.lua: `histops show RUN [--experiment E] [--json] [--diff] [-C DIR]`: one recorded
-- run in full: status, code state, parameters, data, environment, metrics with intervals, per-class
-- scores, history and artifacts (with where they are in the artifact store). RUN is a run id, a
-- unique id prefix, "latest", or a commit-ish/branch (its latest finished run).
local M = { help = "show one recorded run (id, prefix, commit or branch): params, metrics, code, artifacts" }

local usage = "usage: histops show RUN [--experiment NAME] [--json] [--diff] [-C DIR]\n"

local function section(title) io.write("\n", title, "\n", ("-"):rep(#title), "\n") end

function M.run(args)
  local hs = require "histops"
  local runs = require "hs.runs"
  local ok, opts, rest = pcall(runs.parse_args, args, {
    options = { ["--experiment"] = "value", ["--json"] = "flag", ["--repo"] = "value", ["--diff"] = "flag",
      ["--help"] = "flag" },
    alias = { ["-e"] = "--experiment", ["-C"] = "--repo", ["-h"] = "--help" } })
  if not ok then io.stderr:write("histops show: ", opts, "\n", usage); return 2 end
  if opts.help then io.write(usage); return 0 end
  if #rest ~= 1 then io.stderr:write(usage); return 2 end
  local store, err = runs.open(opts.repo)
  if not store then io.stderr:write("histops show: ", err, "\n"); return 1 end
  local rec, note = runs.resolve(rest[1], { store = store, experiment = opts.experiment })
  if not rec then io.stderr:write("histops show: ", note, "\n"); return 1 end
  if note and not note:match("^run ") then io.stderr:write("histops show: ", note, "\n") end
  if opts.json then
    io.write(hs.json.encode(runs.clean(rec), { indent = true }), "\n")
    return 0
  end
  local c = rec.code
  local rows = {
    { "run", rec.id }, { "experiment", rec.experiment or "?" }, { "status", rec.status .. (rec.status ~= rec.stored_status
      and (" (recorded as " .. tostring(rec.stored_status) .. ")") or "") },
    { "started", runs.fmt_time(rec.start_time) }, { "ended", runs.fmt_time(rec.end_time) },
    { "user", ("%s on %s (pid %s)"):format(tostring(rec.user), tostring(rec.host), tostring(rec.pid)) },
    { "commit", c.unborn and "(no commits yet)" or tostring(c.commit) },
    { "branch", c.branch ~= nil and c.branch ~= "" and c.branch or (c.detached and "(detached HEAD)" or "-") },
    { "dirty", c.dirty and ("yes, %d file(s): histops show %s --diff"):format(c.dirty_files or 0, rec.id) or "no" },
    { "work tree", tostring(c.workdir) .. (c.worktree and " (linked worktree)" or "") },
    { "experiment file", tostring(rec.experiment_file) }, { "run folder", tostring(rec.dir) },
    { "record", rec.ref .. " @ " .. runs.short(rec.record_commit) },
  }
  if rec.error then rows[#rows + 1] = { "error", rec.error } end
  if rec.resumed then rows[#rows + 1] = { "resumed", tostring(rec.resumed) .. " time(s)" } end
  for _, r in ipairs(rows) do io.write(("%-16s %s\n"):format(r[1], r[2])) end

  section("parameters")
  local p = runs.comparable_params(rec)
  for _, k in ipairs(runs.sorted_keys(p)) do io.write(("%-36s %s\n"):format(k, runs.fmt_value(p[k]))) end
  if rec.pipeline then
    section("preprocessing")
    local f = runs.flatten(rec.pipeline, nil, {})
    for _, k in ipairs(runs.sorted_keys(f)) do io.write(("%-36s %s\n"):format(k, runs.fmt_value(f[k]))) end
  end

  section("metrics")
  local m = rec.metrics
  local shown = {}
  for _, k in ipairs(runs.HEADLINE) do
    if type(m[k]) == "number" then
      local ci = m[k .. "_ci"]
      io.write(("%-20s %s%s\n"):format(k, runs.fmt_value(m[k]),
        type(ci) == "table" and ci.lo and ("  [%.4f, %.4f]"):format(ci.lo, ci.hi) or ""))
      shown[k] = true
    end
  end
  for _, k in ipairs(runs.sorted_keys(m)) do
    if not shown[k] and type(m[k]) == "number" then io.write(("%-20s %s\n"):format(k, runs.fmt_value(m[k]))) end
  end
  if type(m.per_class) == "table" and next(m.per_class) then
    section("per class")
    local rows2 = {}
    for _, cl in ipairs(runs.sorted_keys(m.per_class)) do
      local pc = m.per_class[cl]
      rows2[#rows2 + 1] = { cl, runs.fmt_value(pc.precision), runs.fmt_value(pc.recall), runs.fmt_value(pc.f1),
        runs.fmt_value(pc.support) }
    end
    io.write(runs.text_table({ "class", "precision", "recall", "f1", "support" }, rows2))
  end
  if type(rec.history) == "table" and #rec.history > 0 then
    section("history")
    local keys = {}
    for _, h in ipairs(rec.history) do for k, v in pairs(h) do if type(v) == "number" then keys[k] = true end end end
    keys.epoch, keys.time = nil, nil
    local cols = runs.sorted_keys(keys)
    local header = { "epoch" }
    for _, k in ipairs(cols) do header[#header + 1] = k end
    local rows3 = {}
    for _, h in ipairs(rec.history) do
      local r = { runs.fmt_value(h.epoch) }
      for _, k in ipairs(cols) do r[#r + 1] = runs.fmt_value(h[k]) end
      rows3[#rows3 + 1] = r
    end
    io.write(runs.text_table(header, rows3))
  end
  if type(rec.artifacts) == "table" and next(rec.artifacts) then
    section("artifacts")
    local dir = store:artifact_dir()
    for _, name in ipairs(runs.sorted_keys(rec.artifacts)) do
      local sha = rec.artifacts[name]
      local okp, path = pcall(hs.git.artifact_path, dir, sha)
      if not okp then path = nil end
      io.write(("%-20s %s  %s\n"):format(name, sha, path or "(not in this store: " .. dir .. ")"))
    end
  end
  if opts.diff and c.dirty then
    section("uncommitted changes (dirty.diff)")
    io.write(store:read(rec.ref, "dirty.diff") or "(missing)\n")
  end
  return 0
end

return M
