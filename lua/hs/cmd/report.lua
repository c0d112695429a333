-- lua/hs/cmd/report.lua: `histops report --compare A B [-o FILE.html]`: two recorded runs side by
-- side in one self-contained HTML page: summary with deltas, training/validation curves overlaid,
-- confusion matrices, per-class scores, parameter differences and each run's sample predictions
-- (taken from its stored report.html artifact). `histops report RUN -o FILE.html` copies one run's
-- own report out of the artifact store. A and B are run ids, commits or branches (see compare).
local M = { help = "HTML report: --compare A B -o FILE.html (curves, confusion, samples side by side)" }

local usage = "usage: histops report --compare A B [-o FILE.html] [--experiment NAME] [-C DIR]\n"
  .. "       histops report RUN -o FILE.html\n"

local function artifact_text(hs, store, rec, name)
  local sha = rec.artifacts and rec.artifacts[name]
  if not sha then return nil end
  local ok, path = pcall(hs.git.artifact_path, store:artifact_dir(), sha)
  if not ok or not path then
    if rec.dir then return hs.sys.read_file(rec.dir .. "/" .. name) end   -- the run folder, when still there
    return nil
  end
  return hs.sys.read_file(path)
end

local function samples_of(html)
  if not html then return nil end
  return html:match('<section id="samples">.-<div class="grid">(.-)</div></section>')
end

function M.run(args)
  local hs = require "histops"
  local runs = require "hs.runs"
  local report = require "hs.report"
  local ok, opts, rest = pcall(runs.parse_args, args, {
    options = { ["--compare"] = "flag", ["--output"] = "value", ["--experiment"] = "value", ["--repo"] = "value",
      ["--help"] = "flag" },
    alias = { ["-o"] = "--output", ["-e"] = "--experiment", ["-C"] = "--repo", ["-h"] = "--help" } })
  if not ok then io.stderr:write("histops report: ", opts, "\n", usage); return 2 end
  if opts.help then io.write(usage); return 0 end
  local store, err = runs.open(opts.repo)
  if not store then io.stderr:write("histops report: ", err, "\n"); return 1 end
  if not opts.compare then
    if #rest ~= 1 or not opts.output then io.stderr:write(usage); return 2 end
    local rec, note = runs.resolve(rest[1], { store = store, experiment = opts.experiment })
    if not rec then io.stderr:write("histops report: ", note, "\n"); return 1 end
    local html = artifact_text(hs, store, rec, "report.html")
    if not html then io.stderr:write(("histops report: run %s has no report.html in the artifact store %s\n")
      :format(rec.id, store:artifact_dir())); return 1 end
    assert(hs.sys.write_file_atomic(opts.output, html))
    io.write("report: ", opts.output, "\n")
    return 0
  end
  if #rest ~= 2 then io.stderr:write(usage); return 2 end
  local experiment = opts.experiment
  if not experiment then
    for _, spec in ipairs(rest) do
      local r = runs.read(spec, { store = store })
      if r then experiment = r.experiment; break end
    end
  end
  local recs = {}
  for i, spec in ipairs(rest) do
    local rec, note = runs.resolve(spec, { store = store, experiment = experiment })
    if not rec then io.stderr:write("histops report: ", spec, ": ", note, "\n"); return 1 end
    recs[i] = rec
    experiment = experiment or rec.experiment
  end
  local a, b = recs[1], recs[2]
  local cmp = runs.compare(recs, { diff = false, store = store })
  local label = { "A " .. a.id, "B " .. b.id }
  local sections = {}

  -- summary
  local srows = {}
  for _, k in ipairs { "experiment", "status", "commit", "branch", "dirty", "start_time" } do
    local function val(r)
      if k == "commit" then return r.commit ~= "" and r.commit:sub(1, 12) or "(none)" end
      if k == "start_time" then return runs.fmt_time(r.start_time) end
      if k == "dirty" then return r.dirty and "yes" or "no" end
      return tostring(r[k] or "-")
    end
    srows[#srows + 1] = { k, val(cmp.runs[1]), val(cmp.runs[2]), "" }
  end
  for _, m in ipairs(cmp.metrics) do
    local d = m.deltas[1]
    local function ci(i)
      local c = m.cis[i]
      return runs.fmt_value(m.values[i]) .. (c and (" [%.4f, %.4f]"):format(c.lo, c.hi) or "")
    end
    srows[#srows + 1] = { m.name, ci(1), ci(2),
      d and (("%+.4f"):format(d.delta) .. (d.lo and (" [%+.4f, %+.4f]"):format(d.lo, d.hi) or "")) or "" }
  end
  sections[#sections + 1] = { title = "Summary", id = "summary",
    html = report.table({ "", label[1], label[2], "delta B − A (95% CI)" }, srows) }

  -- curves
  local function series_of(rec, key)
    local pts = {}
    for _, h in ipairs(rec.history or {}) do
      if type(h[key]) == "number" then pts[#pts + 1] = { h.epoch, h[key] } end
    end
    return pts
  end
  local charts = { report.line_chart { title = "training loss", xlabel = "epoch", ylabel = "loss", series = {
    { name = label[1], points = series_of(a, "train_loss") }, { name = label[2], points = series_of(b, "train_loss") } } } }
  for _, key in ipairs { "macro_f1", "accuracy", "balanced_accuracy", "dice", "iou" } do
    local pa, pb = series_of(a, key), series_of(b, key)
    if #pa + #pb > 0 then
      charts[#charts + 1] = report.line_chart { title = "validation " .. key, xlabel = "epoch", ylabel = key,
        ymin = 0, ymax = 1, series = { { name = label[1], points = pa }, { name = label[2], points = pb } } }
    end
  end
  sections[#sections + 1] = { title = "Curves", id = "curves", html = '<div class="charts">' .. table.concat(charts) .. "</div>" }

  -- confusion matrices
  if a.metrics.confusion or b.metrics.confusion then
    local hm = {}
    for i, r in ipairs(recs) do
      if type(r.metrics.confusion) == "table" then
        hm[#hm + 1] = report.heatmap { matrix = r.metrics.confusion, labels = r.data and r.data.classes or {}, title = label[i] }
      end
    end
    sections[#sections + 1] = { title = "Confusion matrices", id = "confusion",
      html = '<div class="charts">' .. table.concat(hm) .. "</div>" }
  end
  if #cmp.per_class > 0 then
    local rows = {}
    for _, c in ipairs(cmp.per_class) do
      rows[#rows + 1] = { c.class, c.metric, runs.fmt_value(c.values[1]), runs.fmt_value(c.values[2]),
        c.deltas[1] and ("%+.4f"):format(c.deltas[1].delta) or "" }
    end
    sections[#sections + 1] = { title = "Per class", id = "per-class",
      html = report.table({ "class", "metric", label[1], label[2], "delta" }, rows) }
  end
  local prow = {}
  for _, p in ipairs(cmp.params) do prow[#prow + 1] = { p.key, runs.fmt_value(p.values[1]), runs.fmt_value(p.values[2]) } end
  sections[#sections + 1] = { title = "Parameter differences", id = "params",
    html = #prow > 0 and report.table({ "parameter", label[1], label[2] }, prow) or "<p>identical</p>" }

  -- sample predictions from each run's own report
  local cols = {}
  for i, r in ipairs(recs) do
    local grid = samples_of(artifact_text(hs, store, r, "report.html"))
    cols[i] = ('<div style="flex:1;min-width:300px"><h3>%s</h3>%s</div>'):format(report.escape(label[i]),
      grid and ('<div class="grid">' .. grid .. "</div>") or "<p>(no sample predictions stored for this run)</p>")
  end
  sections[#sections + 1] = { title = "Sample predictions", id = "samples",
    html = '<div style="display:flex;gap:24px">' .. table.concat(cols) .. "</div>" }

  local html = report.page(("histops: %s vs %s"):format(a.id, b.id), sections)
  local out = opts.output or ("compare-%s-%s.html"):format(a.id, b.id)
  local okw, werr = hs.sys.write_file_atomic(out, html)
  if not okw then io.stderr:write("histops report: ", tostring(werr), "\n"); return 1 end
  io.write("report: ", out, "\n")
  return 0
end

return M
