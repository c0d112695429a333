-- lua/hs/run_report.lua: the per-run HTML report (self-contained: inline SVG and PNG data URIs):
-- loss and metric curves, confusion-matrix heat map, one-vs-rest ROC curves, per-class table,
-- and a grid of sample test predictions with their images; for segmentation runs, per-image Dice
-- and a grid of test images with the true and predicted mask outlines (the model is re-run on a
-- few cached test images here, so the runner needs to pass nothing more). Not the page builders
-- (hs/report.lua) and not `histops report --compare` (hs/cmd/report.lua).
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
  local N = #detail.y_true
  -- evenly spread over the whole test set (it is sorted by path, i.e. by class folder)
  for j = 1, math.min(n, N) do
    local i = 1 + (j - 1) * N // math.min(n, N)
    local img = cache:select(1, i):contiguous()
    local png = hs.image.encode_png(img)
    local t, p = detail.y_true[i], detail.y_pred[i]
    local names = run.classes or {}
    items[#items + 1] = { png = png, ok = t == p,
      caption = ("true %s / pred %s (%.2f)"):format(names[t + 1] or t, names[p + 1] or p, detail.probs[i][p + 1]) }
  end
  return report.image_grid(items, 96)
end

-- ---------------------------------------------------------------- segmentation overlays
local TRUTH, PRED, BOTH = { 0, 200, 0 }, { 230, 30, 30 }, { 255, 220, 0 }

-- 1-pixel inner outline of a (H,W) u8 0/1 mask -> u8 0/1
local function outline(mask01, k)
  local er = hs.image.erode(mask01, { shape = "rect", ksize = k or 3 })
  return mask01:sub(er):gt(0):astype("u8")
end

-- RGB u8 (H,W,3) image with truth (green) and prediction (red) outlines; overlap in yellow.
-- img: (H,W,C) u8; truth, pred: (H,W) u8 0/1. The picture is resampled so that its longer side
-- is `side` pixels (masks nearest-neighbour), then outlined at that resolution.
function M.overlay(img, truth, pred, side)
  local H, W, C = img:shape()[1], img:shape()[2], img:shape()[3]
  local rgb = C == 3 and img:contiguous() or hs.image.gray2rgb(img:narrow(3, 1, 1):contiguous():reshape({ H, W }))
  side = side or 160
  local s = side / math.max(H, W)
  local h, w = math.max(1, math.floor(H * s + 0.5)), math.max(1, math.floor(W * s + 0.5))
  if h ~= H or w ~= W then
    rgb = hs.image.resize(rgb, w, h, s < 1 and "area" or "bilinear")
    truth = hs.image.resize(truth, w, h, "nearest")
    pred = hs.image.resize(pred, w, h, "nearest")
  end
  local k = s >= 3 and 5 or 3   -- 2-pixel outlines on enlarged small images
  local ot, op = outline(truth, k), outline(pred, k)
  local both = ot:astype("f32"):mul(op:astype("f32")):gt(0):astype("u8")
  rgb = rgb:clone()
  for c = 1, 3 do
    local ch = rgb:select(3, c)
    ch:masked_fill_(ot, TRUTH[c])
    ch:masked_fill_(op, PRED[c])
    ch:masked_fill_(both, BOTH[c])
  end
  return rgb
end

-- the model on n evenly spread cached test images, preprocessed as the runner's evaluation
local function seg_samples(run, detail, part, model, n)
  if not (part and part.cache and part.masks and model and run.cfg) then return nil end
  local cfg = run.cfg
  local N, H, W, C = part.cache:shape()[1], part.cache:shape()[2], part.cache:shape()[3], part.cache:shape()[4]
  n = math.min(n, N)
  if n == 0 then return nil end
  local idx = {}
  for j = 1, n do idx[j] = 1 + math.floor((j - 1) * N / n) end
  local cache, masks = hs.zeros({ n, H, W, C }, "u8"), hs.zeros({ n, H, W, 1 }, "u8")
  for j, i in ipairs(idx) do
    cache:select(1, j):copy(part.cache:select(1, i))
    masks:select(1, j):copy(part.masks:select(1, i))
  end
  local L = hs.loader.new(cache, nil, { out = { H, W }, mean = cfg.input.mean, std = cfg.input.std, seed = cfg.seed,
    invert_mask = cfg.data.invert_masks }, { batch = 1, shuffle = false, training = false, masks = masks })
  L:start_epoch(0)
  local x, m = hs.zeros({ 1, C, H, W }), hs.zeros({ 1, 1, H, W })
  local thr = (cfg.eval and cfg.eval.threshold) or 0.5
  local logit_thr = math.log(thr / (1 - thr))
  local items, j = {}, 0
  while L:next(x, m) > 0 do
    j = j + 1
    local logits = model(x)
    local pred = logits:gt(logit_thr):astype("u8"):reshape({ H, W }):contiguous()
    local truth = m:gt(0.5):astype("u8"):reshape({ H, W }):contiguous()
    local sc = metrics.seg_scores(metrics.seg_counts(pred:reshape({ H * W }):tolist(), truth:reshape({ H * W }):tolist()))
    local it = part.items and part.items[idx[j]]
    local name = it and (it.rel or it.path or ""):match("([^/]+)$") or ("#" .. idx[j])
    items[#items + 1] = { png = hs.image.encode_png(M.overlay(cache:select(1, j), truth, pred)),
      caption = ("%s: Dice %.3f"):format(name, sc.dice) }
  end
  L:release()
  return items
end

local function overlay_grid(items)
  local o = { '<p class="legend">outlines: <b style="color:rgb(0,200,0)">truth</b>, ' ..
    '<b style="color:rgb(230,30,30)">prediction</b>, <b style="color:rgb(200,170,0)">both</b></p>', '<div class="grid">' }
  for _, it in ipairs(items) do
    o[#o + 1] = ('<figure class="overlay"><img alt="%s" src="data:image/png;base64,%s"/><figcaption>%s</figcaption></figure>')
      :format(report.escape(it.caption), report.base64(it.png), report.escape(it.caption))
  end
  o[#o + 1] = "</div>"
  return table.concat(o)
end

local function dice_chart(per)
  local d = {}
  for i, p in ipairs(per) do d[i] = p.dice end
  table.sort(d)
  local pts = {}
  for i, v in ipairs(d) do pts[i] = { i, v } end
  return report.line_chart { title = "per-image Dice (test set, sorted)", xlabel = "image (rank)", ylabel = "Dice",
    series = { { name = "Dice", points = pts } }, ymin = 0, ymax = 1 }
end

-- a value with its bootstrap interval; eval.bootstrap = 0 records no interval
local function interval(ci)
  if type(ci) == "table" and ci.lo then return ("[%.3f, %.3f]"):format(ci.lo, ci.hi) end
  return "-"
end
local function with_ci(v, ci)
  if type(ci) == "table" and ci.lo then return ("%.4f [%.4f, %.4f]"):format(v, ci.lo, ci.hi) end
  return ("%.4f"):format(v)
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
    summary[#summary + 1] = { "test accuracy", with_ci(m.accuracy, m.accuracy_ci) }
    summary[#summary + 1] = { "test macro-F1", with_ci(m.macro_f1, m.macro_f1_ci) }
    summary[#summary + 1] = { "balanced accuracy", m.balanced_accuracy }
    if m.roc_auc then summary[#summary + 1] = { "ROC-AUC (macro, one-vs-rest)", m.roc_auc } end
    summary[#summary + 1] = { "expected calibration error", m.ece }
  end
  if m.dice then
    summary[#summary + 1] = { "test Dice", with_ci(m.dice, m.dice_ci) }
    summary[#summary + 1] = { "test IoU", m.iou }
    summary[#summary + 1] = { "pixel accuracy", m.pixel_accuracy }
  end
  sections[#sections + 1] = { title = "Summary", id = "summary", html = report.table({ "", "" }, summary) }
  if m.baseline then
    local b = m.baseline
    local rows = {
      { "CNN (this run)", m.accuracy, interval(m.accuracy_ci), m.macro_f1, m.balanced_accuracy },
      { ("%s on %s (%d features)"):format(b.classifier, table.concat(b.features or {}, "+"), b.n_features or 0), b.accuracy,
        interval(b.accuracy_ci), b.macro_f1, b.balanced_accuracy },
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
  if m.dice then
    if detail and detail.per_image and #detail.per_image > 0 then
      sections[#sections + 1] = { title = "Per-image Dice", id = "per-image", html = dice_chart(detail.per_image) }
    end
    local ok, items = pcall(seg_samples, run, detail, part, model, (run.cfg and run.cfg.report.samples) or 12)
    if ok and items and #items > 0 then
      sections[#sections + 1] = { title = "Sample predictions", id = "samples", html = overlay_grid(items) }
    elseif not ok then
      sections[#sections + 1] = { title = "Sample predictions", id = "samples",
        html = "<p>overlays unavailable: " .. report.escape(tostring(items)) .. "</p>" }
    end
  end
  local html = report.page(("histops run %s — %s"):format(record.id, record.experiment), sections)
  assert(hs.sys.write_file_atomic(run.dir .. "/report.html", html))
  return run.dir .. "/report.html"
end

return M
