-- lua/hs/run_report.lua: the per-run HTML report (self-contained: inline SVG and PNG data URIs):
-- loss and metric curves, confusion-matrix heat map, one-vs-rest ROC curves, per-class table,
-- and a grid of sample test predictions with their images.
local hs = require "histops"
local report = require "hs.report"
local metrics = require "hs.metrics"

local M = {}

local function curves(history)
  local loss, val = {}, {}
  local keys = {}
  for _, h in ipairs(history) do
    loss[#loss + 1] = { h.epoch, h.train_loss }
    for _, k in ipairs { "accuracy", "macro_f1", "balanced_accuracy", "dice", "iou" } do
      if h[k] then
        val[k] = val[k] or {}
        table.insert(val[k], { h.epoch, h[k] })
        keys[k] = true
      end
    end
  end
  local series = {}
  for _, k in ipairs { "accuracy", "macro_f1", "balanced_accuracy", "dice", "iou" } do
    if keys[k] then series[#series + 1] = { name = "val " .. k, points = val[k] } end
  end
  return report.line_chart { title = "training loss", xlabel = "epoch", ylabel = "loss",
      series = { { name = "train loss", points = loss } } },
    report.line_chart { title = "validation metrics", xlabel = "epoch", ylabel = "score", series = series, ymin = 0, ymax = 1 }
end

local function sample_grid(run, detail, part, n)
  if not detail.y_true or not part.cache then return "" end
  local items = {}
  local classes = run.cfg and run.cfg._classes or nil
  local cache = part.cache
  local step = math.max(1, #detail.y_true // n)
  for i = 1, #detail.y_true, step do
    if #items >= n then break end
    local img = cache:select(1, i):contiguous()
    local png = hs.image.encode_png(img)
    local t, p = detail.y_true[i], detail.y_pred[i]
    local names = run.classes or {}
    items[#items + 1] = { png = png, ok = t == p,
      caption = ("true %s / pred %s (%.2f)"):format(names[t + 1] or t, names[p + 1] or p, detail.probs[i][p + 1]) }
  end
  return report.image_grid(items, 96)
end

function M.write(run, record, detail, part, model)
  local sections = {}
  local m = record.metrics
  local summary = {
    { "experiment", record.experiment }, { "run", record.id }, { "status", record.status },
    { "data fingerprint", record.data.fingerprint.all:sub(1, 16) },
    { "train / val / test", ("%d / %d / %d"):format(record.data.counts.train, record.data.counts.val, record.data.counts.test) },
    { "best epoch", m.best_epoch }, { "training time (s)", m.train_time_s },
  }
  if m.accuracy then
    summary[#summary + 1] = { "test accuracy", ("%.4f [%.4f, %.4f]"):format(m.accuracy, m.accuracy_ci.lo, m.accuracy_ci.hi) }
    summary[#summary + 1] = { "test macro-F1", ("%.4f [%.4f, %.4f]"):format(m.macro_f1, m.macro_f1_ci.lo, m.macro_f1_ci.hi) }
    summary[#summary + 1] = { "balanced accuracy", m.balanced_accuracy }
    if m.roc_auc then summary[#summary + 1] = { "ROC-AUC (macro, one-vs-rest)", m.roc_auc } end
    summary[#summary + 1] = { "expected calibration error", m.ece }
  end
  if m.dice then
    summary[#summary + 1] = { "test Dice", ("%.4f [%.4f, %.4f]"):format(m.dice, m.dice_ci.lo, m.dice_ci.hi) }
    summary[#summary + 1] = { "test IoU", m.iou }
    summary[#summary + 1] = { "pixel accuracy", m.pixel_accuracy }
  end
  sections[#sections + 1] = { title = "Summary", id = "summary", html = report.table({ "", "" }, summary) }
  if m.baseline then
    local b = m.baseline
    local rows = {
      { "CNN (this run)", m.accuracy, ("[%.3f, %.3f]"):format(m.accuracy_ci.lo, m.accuracy_ci.hi), m.macro_f1, m.balanced_accuracy },
      { ("%s on %s (%d features)"):format(b.classifier, table.concat(b.features or {}, "+"), b.n_features or 0), b.accuracy,
        ("[%.3f, %.3f]"):format(b.accuracy_ci.lo, b.accuracy_ci.hi), b.macro_f1, b.balanced_accuracy },
    }
    local d = b.cnn_minus_baseline_accuracy
    sections[#sections + 1] = { title = "CNN vs classical baseline", id = "baseline",
      html = report.table({ "model", "accuracy", "95% CI", "macro-F1", "balanced accuracy" }, rows) ..
        ("<p>CNN minus baseline accuracy on the same test items: %+.4f (paired bootstrap 95%% CI [%+.4f, %+.4f]).</p>")
          :format(d.value, d.lo, d.hi) ..
        report.heatmap { matrix = b.confusion, labels = record.data.classes or {}, title = "baseline confusion (test set)" } }
  end
  local c1, c2 = curves(record.history)
  sections[#sections + 1] = { title = "Curves", id = "curves", html = '<div class="charts">' .. c1 .. c2 .. "</div>" }
  if m.confusion then
    local classes = record.data.classes or {}
    sections[#sections + 1] = { title = "Confusion matrix", id = "confusion",
      html = report.heatmap { matrix = m.confusion, labels = classes, title = "test set" } }
    local rows = {}
    for c, name in ipairs(classes) do
      local pc = m.per_class[name]
      rows[#rows + 1] = { name, pc.precision, pc.recall, pc.f1, pc.support, pc.roc_auc or "" }
    end
    sections[#sections + 1] = { title = "Per class", id = "per-class",
      html = report.table({ "class", "precision", "recall", "F1", "support", "ROC-AUC" }, rows) }
    if detail.probs then
      local series = {}
      for c, name in ipairs(classes) do
        series[#series + 1] = { name = name, points = metrics.roc_curve(detail.y_true, detail.probs, c - 1) }
      end
      sections[#sections + 1] = { title = "ROC curves", id = "roc",
        html = report.line_chart { title = "one-vs-rest ROC", xlabel = "false positive rate", ylabel = "true positive rate",
          series = series, ymin = 0, ymax = 1, diagonal = true, width = 520, height = 360 } }
    end
    run.classes = classes
    sections[#sections + 1] = { title = "Sample predictions", id = "samples",
      html = sample_grid(run, detail, part, run.cfg.report.samples or 24) }
  end
  local html = report.page(("histops run %s — %s"):format(record.id, record.experiment), sections)
  assert(hs.sys.write_file_atomic(run.dir .. "/report.html", html))
  return run.dir .. "/report.html"
end

return M
