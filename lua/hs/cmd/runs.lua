-- lua/hs/cmd/runs.lua: `histops runs [--experiment E] [--status S] [--limit N] [--json] [-C DIR]`:
-- the runs recorded in this repository (refs/histops/runs/*) across commits and branches, newest
-- first: id, experiment, status, commit, branch, dirty, date, headline metrics. Reads commit
-- messages only (one summary line each), so it stays fast with thousands of runs.
local M = { help = "list recorded runs across commits and branches (--experiment E, --json)" }

local usage = "usage: histops runs [--experiment NAME] [--status running|finished|failed|killed] [--limit N] [--json] [-C DIR]\n"
  .. "       histops runs --sweep SWEEP_ID|latest [--json] [-C DIR]   (a sweep's trials ranked by its metric)\n"

function M.run(args)
  local hs = require "histops"
  local runs = require "hs.runs"
  local ok, opts = pcall(runs.parse_args, args, {
    options = { ["--experiment"] = "value", ["--status"] = "value", ["--limit"] = "value", ["--json"] = "flag",
      ["--repo"] = "value", ["--help"] = "flag", ["--metrics"] = "value", ["--sweep"] = "value" },
    alias = { ["-e"] = "--experiment", ["-C"] = "--repo", ["-n"] = "--limit", ["-h"] = "--help" } })
  if not ok then io.stderr:write("histops runs: ", opts, "\n", usage); return 2 end
  if opts.help then io.write(usage); return 0 end
  local store, err = runs.open(opts.repo)
  if not store then io.stderr:write("histops runs: ", err, "\n"); return 1 end
  -- --sweep S (an id, a unique prefix or "latest"): the sweep's trials ranked by its metric
  if opts.sweep then return require("hs.sweep").print_ranking(store, opts.sweep, opts.json) end
  local list = runs.list { store = store, experiment = opts.experiment, status = opts.status,
    limit = opts.limit and math.tointeger(tonumber(opts.limit)) or nil }
  if opts.json then
    io.write(hs.json.encode(runs.clean(hs.json.array(list)), { indent = true }), "\n")
    return 0
  end
  if #list == 0 then
    io.write(("no runs recorded%s in %s (histops run EXPERIMENT.lua records one)\n")
      :format(opts.experiment and (" for experiment " .. opts.experiment) or "", store:head().gitdir))
    return 0
  end
  -- headline metric columns: the requested ones, else those the listed runs have
  local cols = {}
  if opts.metrics then
    for m in opts.metrics:gmatch("[^,]+") do cols[#cols + 1] = m end
  else
    local have = {}
    for _, s in ipairs(list) do for k in pairs(s.metrics) do have[k] = true end end
    for _, k in ipairs { "accuracy", "macro_f1", "dice", "iou" } do if have[k] then cols[#cols + 1] = k end end
  end
  local header = { "id", "experiment", "status", "commit", "branch", "dirty", "date" }
  for _, c in ipairs(cols) do header[#header + 1] = c end
  local rows = {}
  for _, s in ipairs(list) do
    local c = s.code
    local branch = c.branch ~= nil and c.branch ~= "" and c.branch or (c.detached and "(detached)" or "-")
    local row = { s.id, s.experiment or "?", s.status, c.unborn and "(none)" or runs.short(c.commit), branch,
      c.dirty and "yes" or "", runs.fmt_time(s.start_time) }
    for _, k in ipairs(cols) do
      local v = s.metrics[k]
      row[#row + 1] = type(v) == "number" and ("%.4f"):format(v) or "-"
    end
    rows[#rows + 1] = row
  end
  io.write(runs.text_table(header, rows))
  return 0
end

return M
