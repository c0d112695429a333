-- lua/hs/cmd/sweep_report.lua: `histops sweep-report SWEEP_ID|latest [-o report.html] [-C REPO]`:
-- a self-contained HTML page for a recorded sweep: summary, the best configuration and the command
-- that reproduces it, the trials ranked, one parameter-vs-metric scatter plot (inline SVG) per
-- parameter and the metric over trials. Reads the sweep record only; writes nothing else.
local M = { help = "HTML report of a sweep: ranking, parameter-vs-metric plots, best configuration" }

local usage = "usage: histops sweep-report SWEEP_ID|latest [-o report.html] [-C REPO]\n"

-- points: list of {x, y, label, best}; xlog: logarithmic x axis; xcats: category names (x = 1..n)
local function scatter(opts)
  local report = require "hs.report"
  local esc = report.escape
  local W, H, L, R, T, B = 420, 280, 60, 16, 28, 44
  local xs, ys = {}, {}
  for _, p in ipairs(opts.points) do
    if p.y then xs[#xs + 1] = opts.xlog and math.log(p.x, 10) or p.x; ys[#ys + 1] = p.y end
  end
  local function range(v, lo, hi)
    for _, x in ipairs(v) do lo, hi = math.min(lo, x), math.max(hi, x) end
    if lo == math.huge then lo, hi = 0, 1 end
    if hi == lo then lo, hi = lo - 0.5, hi + 0.5 end
    local pad = (hi - lo) * 0.06
    return lo - pad, hi + pad
  end
  local xmin, xmax
  if opts.xcats then xmin, xmax = 0.5, #opts.xcats + 0.5 else xmin, xmax = range(xs, math.huge, -math.huge) end
  local ymin, ymax = range(ys, math.huge, -math.huge)
  local function X(x) return L + ((opts.xlog and math.log(x, 10) or x) - xmin) / (xmax - xmin) * (W - L - R) end
  local function Y(y) return H - B - (y - ymin) / (ymax - ymin) * (H - T - B) end
  local function fmt(v)
    if math.abs(v) >= 1000 or (math.abs(v) < 0.01 and v ~= 0) then return ("%.2g"):format(v) end
    return ("%.3g"):format(v)
  end
  local o = { ('<svg class="scatter" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">'):format(W, H, W, H),
    ('<rect width="%d" height="%d" fill="white"/>'):format(W, H),
    ('<text x="%d" y="18" font-size="13" font-family="sans-serif">%s</text>'):format(L, esc(opts.title)) }
  for i = 0, 4 do
    local yv = ymin + (ymax - ymin) * i / 4
    o[#o + 1] = ('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'):format(L, Y(yv), W - R, Y(yv))
    o[#o + 1] = ('<text x="%d" y="%.1f" font-size="10" text-anchor="end" font-family="sans-serif">%s</text>'):format(L - 4, Y(yv) + 3, fmt(yv))
  end
  if opts.xcats then
    for i, c in ipairs(opts.xcats) do
      o[#o + 1] = ('<text x="%.1f" y="%d" font-size="10" text-anchor="middle" font-family="sans-serif">%s</text>'):format(X(i), H - B + 14, esc(c))
    end
  else
    for i = 0, 4 do
      local xv = xmin + (xmax - xmin) * i / 4
      local xt = opts.xlog and 10 ^ xv or xv
      o[#o + 1] = ('<text x="%.1f" y="%d" font-size="10" text-anchor="middle" font-family="sans-serif">%s</text>')
        :format(L + i / 4 * (W - L - R), H - B + 14, fmt(xt))
    end
  end
  o[#o + 1] = ('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>'):format(L, T, W - L - R, H - T - B)
  for _, p in ipairs(opts.points) do
    if p.y then
      local x = opts.xcats and p.x + (p.jitter or 0) or p.x
      o[#o + 1] = ('<circle class="trial" cx="%.1f" cy="%.1f" r="%d" fill="%s" fill-opacity="0.75" stroke="#222" stroke-width="%s"><title>%s</title></circle>')
        :format(opts.xcats and L + (x - xmin) / (xmax - xmin) * (W - L - R) or X(x), Y(p.y), p.best and 6 or 4,
          p.best and "#d62728" or "#1f77b4", p.best and "1.5" or "0.5", esc(p.label))
    end
  end
  o[#o + 1] = ('<text x="%d" y="%d" font-size="11" text-anchor="middle" font-family="sans-serif">%s%s</text>')
    :format((L + W - R) // 2, H - 8, esc(opts.xlabel), opts.xlog and " (log scale)" or "")
  o[#o + 1] = ('<text x="12" y="%d" font-size="11" font-family="sans-serif" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>')
    :format((T + H - B) // 2, (T + H - B) // 2, esc(opts.ylabel))
  o[#o + 1] = "</svg>"
  return table.concat(o, "\n")
end
M.scatter = scatter

-- The report page of a sweep state (hs.sweep.read) as a string.
function M.page(state, store)
  local sweep = require "hs.sweep"
  local report = require "hs.report"
  local esc = report.escape
  local def = state.def
  local ranked = sweep.ranking(state, store)
  local sections = {}
  local nfin, nfail = 0, 0
  for _, t in ipairs(ranked) do
    if t.status == "finished" then nfin = nfin + 1 elseif t.status == "failed" then nfail = nfail + 1 end
  end
  local space = {}
  for _, p in ipairs(def.params) do
    local d
    if p.kind == "choice" then
      local v = {}
      for i, x in ipairs(p.values) do v[i] = sweep.show_value(x) end
      d = "choice {" .. table.concat(v, ", ") .. "}"
    else
      d = ("%s [%s, %s]"):format(p.kind, sweep.show_value(p.lo), sweep.show_value(p.hi))
    end
    space[#space + 1] = { p.key, d }
  end
  if def.budget then
    space[#space + 1] = { def.budget.param, ("halving budget %s..%s, eta %s"):format(sweep.show_value(def.budget.min),
      sweep.show_value(def.budget.max), sweep.show_value(def.budget.eta)) }
  end
  sections[#sections + 1] = { title = "Summary", id = "summary", html = report.table({ "field", "value" }, {
    { "sweep", state.id }, { "experiment", ("%s (%s)"):format(tostring(state.experiment), tostring(state.experiment_file)) },
    { "status", sweep.effective_status(state) .. (state.error and (": " .. state.error) or "") }, { "method", def.method }, { "seed", tostring(def.seed) },
    { "metric", ("%s (%s)"):format(def.metric, def.mode == "min" and "lower is better" or "higher is better") },
    { "trials", ("%d (%d finished, %d failed)"):format(#ranked, nfin, nfail) },
    { "overrides", table.concat(state.overrides or {}, " ") },
  }) .. "<h3>Search space</h3>" .. report.table({ "parameter", "distribution" }, space) }
  local best = state.best
  if best then
    local bt = state.trials[best.index]
    local rows = {}
    local keys = {}
    for k in pairs(bt.params) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do rows[#rows + 1] = { k, sweep.show_value(bt.params[k]) } end
    sections[#sections + 1] = { title = "Best configuration", id = "best", html =
      ("<p>trial %d, run <code>%s</code>: <b>%s = %.4f</b></p>"):format(best.index, esc(best.run_id), esc(def.metric), best.value)
      .. report.table({ "parameter", "value" }, rows)
      .. ("<p>reproduce: <code>%s</code></p>"):format(esc(sweep.reproduce_command(state, bt))) }
  end
  -- ranking
  local header = { "rank", "trial", "run", "status", def.metric }
  if def.method == "halving" then header[#header + 1] = "rung" end
  local keys = {}
  for _, p in ipairs(def.params) do keys[#keys + 1] = p.key end
  if def.budget then keys[#keys + 1] = def.budget.param end
  for _, k in ipairs(keys) do header[#header + 1] = k end
  local rows = {}
  for _, t in ipairs(ranked) do
    local r = { t.rank, t.index, t.run_id or "-", t.status, t.value and ("%.4f"):format(t.value) or "-" }
    if def.method == "halving" then r[#r + 1] = t.rung or 0 end
    for _, k in ipairs(keys) do r[#r + 1] = t.params[k] ~= nil and sweep.show_value(t.params[k]) or "-" end
    rows[#rows + 1] = r
  end
  sections[#sections + 1] = { title = "Trials ranked", id = "ranking", html = report.table(header, rows) }
  -- parameter-vs-metric plots
  local charts = {}
  for _, p in ipairs(def.params) do
    local pts, cats = {}, nil
    if p.kind == "choice" then
      cats = {}
      for i, v in ipairs(p.values) do cats[i] = sweep.show_value(v) end
    end
    for _, t in ipairs(ranked) do
      local v = t.params[p.key]
      local x = v
      if cats then
        x = nil
        for i, c in ipairs(p.values) do if sweep.format_value(c) == sweep.format_value(v) then x = i end end
      end
      if type(x) == "number" then
        pts[#pts + 1] = { x = x, y = t.value, best = best and t.index == best.index,
          jitter = cats and ((t.index * 0.618) % 1 - 0.5) * 0.3 or 0,
          label = ("trial %d: %s = %s, %s = %s"):format(t.index, p.key, sweep.show_value(v), def.metric,
            t.value and ("%.4f"):format(t.value) or "failed") }
      end
    end
    charts[#charts + 1] = scatter { title = p.key .. " vs " .. def.metric, xlabel = p.key, ylabel = def.metric,
      points = pts, xlog = p.kind == "log_uniform", xcats = cats }
  end
  -- the metric over trials (and the best so far)
  local byidx, pts, bestpts, cur = {}, {}, {}, nil
  for _, t in ipairs(ranked) do byidx[t.index] = t end
  for i = 1, #state.trials do
    local t = byidx[i]
    if t and t.value then
      pts[#pts + 1] = { i, t.value }
      if cur == nil or (def.mode == "min" and t.value < cur) or (def.mode ~= "min" and t.value > cur) then cur = t.value end
    end
    if cur then bestpts[#bestpts + 1] = { i, cur } end
  end
  charts[#charts + 1] = report.line_chart { title = def.metric .. " by trial", xlabel = "trial", ylabel = def.metric,
    series = { { name = "trial", points = pts }, { name = "best so far", points = bestpts } } }
  sections[#sections + 1] = { title = "Parameters vs " .. def.metric, id = "plots",
    html = '<div class="charts">' .. table.concat(charts, "\n") .. "</div>" }
  return report.page(("Sweep %s: %s"):format(state.id, tostring(state.experiment)), sections)
end

function M.run(args)
  local hs = require "histops"
  local runs = require "hs.runs"
  local sweep = require "hs.sweep"
  local ok, opts, rest = pcall(runs.parse_args, args, { options = { ["--out"] = "value", ["--repo"] = "value", ["--help"] = "flag" },
    alias = { ["-o"] = "--out", ["-C"] = "--repo", ["-h"] = "--help" } })
  if not ok then io.stderr:write("histops sweep-report: ", opts, "\n", usage); return 2 end
  if opts.help then io.write(usage); return 0 end
  if #rest ~= 1 then io.stderr:write(usage); return 2 end
  local store, err = runs.open(opts.repo)
  if not store then io.stderr:write("histops sweep-report: ", err, "\n"); return 1 end
  local state, e2 = sweep.read(store, rest[1])
  if not state then io.stderr:write("histops sweep-report: ", e2, "\n"); return 1 end
  local out = opts.out or ("sweep-" .. state.id .. ".html")
  local okw, werr = hs.sys.write_file_atomic(out, M.page(state, store))
  if not okw then io.stderr:write("histops sweep-report: cannot write ", out, ": ", tostring(werr), "\n"); return 1 end
  io.write(("wrote %s (%d trials)\n"):format(out, #state.trials))
  return 0
end

return M
