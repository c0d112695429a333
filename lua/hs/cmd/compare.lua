-- lua/hs/cmd/compare.lua: `histops compare A B [C...] [--all] [--no-diff] [--json] [--experiment E]`:
-- recorded runs side by side, the first as the baseline. Each argument is a run id (or unique
-- prefix), "latest", or a commit-ish/branch meaning the latest finished run of the experiment
-- there (the experiment is taken from the first argument that is a run when not given).
-- Prints parameters (only differences unless --all), metrics with their intervals and deltas
-- with 95% intervals, per-class deltas, and the code diff between the commits plus dirty diffs.
local M = { help = "compare runs (ids, commits or branches): params, metric deltas with CIs, code diff" }

local usage = "usage: histops compare A B [C...] [--experiment NAME] [--all] [--no-diff] [--json] [-C DIR]\n"

local function section(title) io.write("\n", title, "\n", ("-"):rep(#title), "\n") end

function M.run(args)
  local hs = require "histops"
  local runs = require "hs.runs"
  local ok, opts, rest = pcall(runs.parse_args, args, {
    options = { ["--experiment"] = "value", ["--json"] = "flag", ["--repo"] = "value", ["--all"] = "flag",
      ["--no-diff"] = "flag", ["--help"] = "flag" },
    alias = { ["-e"] = "--experiment", ["-C"] = "--repo", ["-a"] = "--all", ["-h"] = "--help" } })
  if not ok then io.stderr:write("histops compare: ", opts, "\n", usage); return 2 end
  if opts.help then io.write(usage); return 0 end
  if #rest < 2 then io.stderr:write(usage); return 2 end
  local store, err = runs.open(opts.repo)
  if not store then io.stderr:write("histops compare: ", err, "\n"); return 1 end
  local records, notes = {}, {}
  local experiment = opts.experiment
  -- exact run ids first: they fix the experiment for commit/branch arguments
  if not experiment then
    for _, spec in ipairs(rest) do
      local r = runs.read(spec, { store = store })
      if r then experiment = r.experiment; break end
    end
  end
  for i, spec in ipairs(rest) do
    local rec, note = runs.resolve(spec, { store = store, experiment = experiment })
    if not rec then io.stderr:write("histops compare: ", spec, ": ", note, "\n"); return 1 end
    records[i] = rec
    notes[i] = note
    experiment = experiment or rec.experiment
  end
  local cmp = runs.compare(records, { all = opts.all, diff = not opts.no_diff, store = store })
  for i, r in ipairs(cmp.runs) do r.spec, r.resolved = rest[i], notes[i] end
  if opts.json then
    io.write(hs.json.encode(runs.compare_json(cmp), { indent = true }), "\n")
    return 0
  end

  section("runs")
  local rows = {}
  for i, r in ipairs(cmp.runs) do
    rows[i] = { string.char(64 + i), r.spec, r.id, r.experiment or "?", r.status,
      r.commit and r.commit ~= "" and runs.short(r.commit) or "(none)",
      r.branch ~= nil and r.branch ~= "" and r.branch or (r.detached and "(detached)" or "-"),
      r.dirty and "yes" or "", runs.fmt_time(r.start_time) }
  end
  io.write(runs.text_table({ "", "argument", "run", "experiment", "status", "commit", "branch", "dirty", "date" }, rows))
  for i, n in ipairs(notes) do
    if n and n:find("ancestor", 1, true) then io.write(("note: %s: %s\n"):format(string.char(64 + i), n)) end
  end

  section(opts.all and "parameters" or "parameters (differences only; --all for all)")
  if #cmp.params == 0 then
    io.write("(identical)\n")
  else
    local header = { "parameter" }
    for i = 1, #records do header[#header + 1] = string.char(64 + i) end
    local prow = {}
    for _, p in ipairs(cmp.params) do
      local r = { p.key .. (p.differs and " *" or "") }
      for i = 1, #records do r[#r + 1] = runs.fmt_value(p.values[i]) end
      prow[#prow + 1] = r
    end
    io.write(runs.text_table(header, prow))
  end

  section("metrics (delta = X - A, 95% interval; * = interval excludes 0)")
  local header = { "metric", "A" }
  for i = 2, #records do
    header[#header + 1] = string.char(64 + i)
    header[#header + 1] = "delta " .. string.char(64 + i)
  end
  local mrow = {}
  local function with_ci(v, ci)
    local s = runs.fmt_value(v)
    if ci then s = s .. (" [%.4f, %.4f]"):format(ci.lo, ci.hi) end
    return s
  end
  for _, m in ipairs(cmp.metrics) do
    if m.differs or opts.all or m.cis[1] then
      local r = { m.name, with_ci(m.values[1], m.cis[1]) }
      for i = 2, #records do
        r[#r + 1] = with_ci(m.values[i], m.cis[i])
        local d = m.deltas[i - 1]
        if d then
          local s = ("%+.4f"):format(d.delta)
          if d.lo then
            s = s .. (" [%+.4f, %+.4f]"):format(d.lo, d.hi)
            if d.lo > 0 or d.hi < 0 then s = s .. " *" end
          end
          r[#r + 1] = s
        else
          r[#r + 1] = "-"
        end
      end
      mrow[#mrow + 1] = r
    end
  end
  io.write(#mrow > 0 and runs.text_table(header, mrow) or "(no metrics)\n")
  for _, m in ipairs(cmp.metrics) do
    local d = m.deltas[1]
    if d and d.method then io.write(("intervals of deltas: %s\n"):format(d.method)); break end
  end

  if #cmp.per_class > 0 then
    section("per class")
    local ph = { "class", "metric", "A" }
    for i = 2, #records do
      ph[#ph + 1] = string.char(64 + i)
      ph[#ph + 1] = "delta " .. string.char(64 + i)
    end
    local crow = {}
    for _, c in ipairs(cmp.per_class) do
      local r = { c.class, c.metric, runs.fmt_value(c.values[1]) }
      for i = 2, #records do
        r[#r + 1] = runs.fmt_value(c.values[i])
        r[#r + 1] = c.deltas[i - 1] and ("%+.4f"):format(c.deltas[i - 1].delta) or "-"
      end
      crow[#crow + 1] = r
    end
    io.write(runs.text_table(ph, crow))
  end

  if not opts.no_diff then
    for i, c in ipairs(cmp.code) do
      section(("code diff A..%s (%s..%s)"):format(string.char(65 + i), runs.short(c.from), runs.short(c.to)))
      io.write(c.diff ~= "" and c.diff or "(same commit)\n")
    end
    for _, d in ipairs(cmp.dirty) do
      section(("uncommitted changes of run %s"):format(d.id))
      io.write(d.diff)
    end
  end
  return 0
end

return M
