-- lua/hs/cmd/log.lua: `histops log EXPERIMENT [--branch B] [--metric M] [--max N] [-o FILE.html]
-- [--json]`: one metric of an experiment across the first-parent commit history of a branch
-- (default HEAD), as a table (newest commit first) and optionally as a self-contained HTML chart.
-- At each commit the latest finished clean run is used (a dirty one, marked, when there is none).
local M = { help = "a metric of an experiment across a branch's commit history (table, -o chart.html)" }

local usage = "usage: histops log EXPERIMENT [--branch B] [--metric M] [--max N] [-o FILE.html] [--json] [-C DIR]\n"

local function pick_metric(list)
  for _, s in ipairs(list) do
    if s.metrics.macro_f1 then return "macro_f1" end
    if s.metrics.dice then return "dice" end
    if s.metrics.accuracy then return "accuracy" end
  end
  return "macro_f1"
end

function M.run(args)
  local hs = require "histops"
  local runs = require "hs.runs"
  local ok, opts, rest = pcall(runs.parse_args, args, {
    options = { ["--branch"] = "value", ["--metric"] = "value", ["--max"] = "value", ["--output"] = "value",
      ["--json"] = "flag", ["--repo"] = "value", ["--help"] = "flag" },
    alias = { ["-b"] = "--branch", ["-m"] = "--metric", ["-o"] = "--output", ["-C"] = "--repo", ["-n"] = "--max",
      ["-h"] = "--help" } })
  if not ok then io.stderr:write("histops log: ", opts, "\n", usage); return 2 end
  if opts.help then io.write(usage); return 0 end
  if #rest ~= 1 then io.stderr:write(usage); return 2 end
  local experiment = rest[1]
  local store, err = runs.open(opts.repo)
  if not store then io.stderr:write("histops log: ", err, "\n"); return 1 end
  local branch = opts.branch or "HEAD"
  local hist, herr = store:log(branch, math.tointeger(tonumber(opts.max or "")) or 200)
  if not hist then io.stderr:write("histops log: ", herr, "\n"); return 1 end
  local list = runs.list { store = store, experiment = experiment }
  if #list == 0 then
    io.stderr:write(("histops log: no runs of experiment '%s' recorded (see histops runs)\n"):format(experiment))
    return 1
  end
  local metric = opts.metric or pick_metric(list)
  local by_commit = {}
  for _, s in ipairs(list) do
    if s.status == "finished" and s.code.commit and s.code.commit ~= "" then
      local t = by_commit[s.code.commit] or {}
      by_commit[s.code.commit] = t
      t[#t + 1] = s   -- newest first (list order)
    end
  end
  local points = {}
  for _, c in ipairs(hist) do
    local at = by_commit[c.id]
    if at then
      local pick
      for _, s in ipairs(at) do if not s.code.dirty then pick = s; break end end
      pick = pick or at[1]
      local ci = pick.metrics[metric .. "_ci"]
      points[#points + 1] = { commit = c.id, time = c.time, subject = (c.message or ""):match("^[^\n]*"),
        run = pick.id, runs = #at, dirty = pick.code.dirty and true or false, value = pick.metrics[metric],
        lo = type(ci) == "table" and ci.lo or nil, hi = type(ci) == "table" and ci.hi or nil }
    end
  end
  if opts.json then
    io.write(hs.json.encode(runs.clean({ experiment = experiment, branch = branch, metric = metric,
      commits = #hist, points = hs.json.array(points) }), { indent = true }), "\n")
  else
    io.write(("%s of experiment %s along %s (%d of %d commits have finished runs)\n")
      :format(metric, experiment, branch, #points, #hist))
    local rows = {}
    for _, p in ipairs(points) do
      rows[#rows + 1] = { runs.short(p.commit), os.date("%Y-%m-%d %H:%M", p.time), p.subject:sub(1, 40),
        runs.fmt_value(p.value) .. (p.dirty and " (dirty)" or ""),
        p.lo and ("[%.4f, %.4f]"):format(p.lo, p.hi) or "", p.run, tostring(p.runs) }
    end
    io.write(runs.text_table({ "commit", "date", "subject", metric, "95% CI", "run", "runs" }, rows))
  end
  if opts.output then
    local report = require "hs.report"
    local val, lo, hi = {}, {}, {}
    local n = #points
    for i = n, 1, -1 do   -- oldest left
      local p, x = points[i], n - i + 1
      if type(p.value) == "number" then val[#val + 1] = { x, p.value } end
      if p.lo then lo[#lo + 1] = { x, p.lo }; hi[#hi + 1] = { x, p.hi } end
    end
    local series = { { name = metric, points = val } }
    if #lo > 0 then
      series[2] = { name = "95% CI low", points = lo, color = "#9ab" }
      series[3] = { name = "95% CI high", points = hi, color = "#9ab" }
    end
    local chart = report.line_chart { title = ("%s along %s"):format(metric, branch), xlabel = "commit (oldest → newest)",
      ylabel = metric, series = series, width = 720, height = 360 }
    local trows = {}
    for i = n, 1, -1 do
      local p = points[i]
      trows[#trows + 1] = { tostring(n - i + 1), runs.short(p.commit), os.date("%Y-%m-%d %H:%M", p.time), p.subject,
        type(p.value) == "number" and p.value or "-", p.lo and ("[%.4f, %.4f]"):format(p.lo, p.hi) or "",
        p.run .. (p.dirty and " (dirty)" or "") }
    end
    local html = report.page(("histops log: %s of %s along %s"):format(metric, experiment, branch), {
      { title = "Chart", id = "chart", html = chart },
      { title = "Commits", id = "commits", html = report.table({ "#", "commit", "date", "subject", metric, "95% CI", "run" }, trows) },
    })
    local okw, werr = hs.sys.write_file_atomic(opts.output, html)
    if not okw then io.stderr:write("histops log: ", tostring(werr), "\n"); return 1 end
    if not opts.json then io.write("chart: ", opts.output, "\n") end
  end
  return 0
end

return M
