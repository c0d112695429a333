-- lua/hs/cmd/eval.lua: `histops eval --model MODEL --data DIR [--json] [--allow-skip] ...`:
-- evaluate a saved model on a labelled data set with the model's own recorded preprocessing.
-- Classification: a class-folder data set (or a CSV manifest path,label), classes matched by
-- name against the model's classes; accuracy, balanced accuracy, per-class P/R/F1, macro-F1,
-- confusion, ROC-AUC, ECE, bootstrap intervals. Segmentation: an images/ + masks/ pairs folder,
-- whole images of any size by sliding windows (hs/sliding.lua); Dice/IoU/pixel accuracy per image
-- and pooled. Not a trainer (hs/experiment.lua) and not a server (hs/cmd/serve.lua).
local M = { help = "evaluate a model on a labelled folder: --model MODEL --data DIR [--json] [--allow-skip]" }

local hs = require "histops"

local usage_text = [[
usage: histops eval --model MODEL --data DIR [options]
  MODEL   a model file, a run folder, a run id, or NAME@alias / NAME@<n> (model registry)
  DIR     classification: one sub-folder per class (names as the model's classes), or a CSV
          manifest (path,label); a folder with train/ and test/ evaluates test/ (see --split)
          segmentation: images/ and masks/ with matching names (masks 0/255, any size)
options:
  --json            machine-readable result on stdout
  --allow-skip      evaluate without unreadable files (they are listed and counted); default: fail
  --split NAME      sub-folder of a train/val/test folder to evaluate (default test)
  --batch N         images per forward pass (classification, default 32; segmentation tiles, 8)
  --bootstrap N     bootstrap samples for the 95% intervals (default 1000; 0 = none)
  --seed N          bootstrap seed (default 1)
  --overlap F       segmentation: tile overlap fraction in [0, 1) (default 0.25)
  --threshold P     segmentation: probability threshold (default: the experiment's eval.threshold)
  --invert-masks    segmentation: foreground is where the mask is < 128 (default: as in training)
  --masks DIR       segmentation: write predicted masks (PNG, 0/255) into DIR
  --resize          segmentation: resample each image to the model's training cache size first
                    (as the runner did), then slide windows; default: the image's own resolution
]]

local function is_dir(p) local st = hs.sys.stat(p); return st and st.type == "dir" end
local function is_file(p) local st = hs.sys.stat(p); return st and st.type == "file" end

-- MODEL spec -> path: the registry's resolver, else a file or a run folder
function M.resolve(spec)
  if is_dir(spec) then spec = spec:gsub("/+$", "") end
  local ok, reg = pcall(require, "hs.registry")
  if ok and type(reg) == "table" and reg.resolve then
    local ok2, path, info = pcall(reg.resolve, spec)
    if ok2 and path then return path, info end
    if is_file(spec) then return spec end
    return nil, ok2 and info or tostring(path)
  end
  if is_file(spec) then return spec end
  if is_dir(spec) and is_file(spec:gsub("/+$", "") .. "/model.safetensors") then
    return spec:gsub("/+$", "") .. "/model.safetensors"
  end
  return nil, ("%s: no such model file"):format(spec)
end

-- Settings recorded with the model that are not preprocessing of the input tensor: the mask
-- polarity and the threshold. The pipeline metadata when present, else the embedded experiment
-- (with its overrides), else defaults.
function M.recorded_settings(meta)
  local out = { threshold = 0.5, invert_masks = false }
  local ok, cfg = pcall(function()
    if not meta.experiment_source then return nil end
    local chunk = load(meta.experiment_source, "=" .. (meta.experiment_file or "experiment"), "t")
    if not chunk then return nil end
    local src_dir = (HISTOPS_SOURCE_DIR or ".") .. "/experiments"
    local old = package.path
    package.path = src_dir .. "/?.lua;" .. src_dir .. "/?/init.lua;" .. package.path
    local ok2, user = pcall(chunk)
    package.path = old
    if not ok2 or type(user) ~= "table" then return nil end
    local config = require "hs.config"
    local c = config.deep_copy(user)
    c.data, c.eval = c.data or {}, c.eval or {}
    for _, o in ipairs(meta.overrides or {}) do pcall(config.apply_override, c, o) end
    return c
  end)
  if ok and cfg then
    if type(cfg.eval.threshold) == "number" then out.threshold = cfg.eval.threshold end
    out.invert_masks = cfg.data.invert_masks and true or false
  end
  local pipe = meta.pipeline or {}
  if pipe.invert_mask ~= nil then out.invert_masks = pipe.invert_mask and true or false end
  if type(pipe.threshold) == "number" then out.threshold = pipe.threshold end
  return out
end

-- ---------------------------------------------------------------- data sets

-- DIR -> data set (hs.data) and what it is: "folder" | "csv" | "pairs"
local function open_data(dir, split)
  local data = require "hs.data"
  local path = data.resolve(dir)
  if is_file(path) and path:lower():match("%.csv$") then return data.csv(path), "csv", path end
  if not is_dir(path) then error(("%s: no such folder or CSV manifest"):format(dir), 0) end
  if is_dir(path .. "/images") and is_dir(path .. "/masks") then return data.pairs(path), "pairs", path end
  if split or (is_dir(path .. "/train") and is_dir(path .. "/test")) then
    local part = split or "test"
    if not is_dir(path .. "/" .. part) then error(("%s has no %s/ sub-folder"):format(path, part), 0) end
    path = path .. "/" .. part
  end
  return data.folder(path), "folder", path
end

-- load an image; nil, message for unreadable files (the message names the path)
local function load_image(path)
  local img, err = hs.image.load(path)
  if not img then
    err = tostring(err)
    if not err:find(path, 1, true) then err = path .. ": " .. err end
    return nil, err
  end
  return img
end

-- ---------------------------------------------------------------- classification

local function eval_classification(m, ds, opts, report)
  local metrics = require "hs.metrics"
  local classes = m.meta.classes or {}
  if #classes == 0 then error("the model file records no class names; cannot match class folders", 0) end
  local index = {}
  for i, c in ipairs(classes) do index[c] = i - 1 end
  local unknown = {}
  for _, c in ipairs(ds.classes) do if not index[c] then unknown[#unknown + 1] = c end end
  if #unknown > 0 then
    error(("class folder(s) %s not among the model's classes {%s}"):format(
      "'" .. table.concat(unknown, "', '") .. "'", table.concat(classes, ", ")), 0)
  end
  local k = #classes
  local y_true, y_pred, probs, files = {}, {}, {}, {}
  local B = opts.batch or 32
  local items = ds.items
  for first = 1, #items, B do
    local imgs, its = {}, {}
    for i = first, math.min(#items, first + B - 1) do
      local it = items[i]
      local img, err = load_image(it.path)
      if img and img:dtype() ~= "u8" then img = require("hs.sliding").to_channels(img, #img:shape() == 3 and img:shape()[3] or 1) end
      if not img then report.skip(it.path, err)
      else imgs[#imgs + 1] = img; its[#its + 1] = it end
    end
    if #imgs > 0 then
      local preds = m:predict(imgs)   -- model_io.batch: the recorded resize, crop and normalisation
      for j, p in ipairs(preds) do
        local row = {}
        for c = 1, k do row[c] = p.probs[classes[c]] or 0 end
        local name = ds.classes[its[j].label + 1]
        y_true[#y_true + 1] = index[name]
        y_pred[#y_pred + 1] = p.index
        probs[#probs + 1] = row
        files[#files + 1] = its[j].path
      end
    end
    report.progress(math.min(#items, first + B - 1), #items)
  end
  if #y_true == 0 then error("no readable images to evaluate", 0) end
  local r = metrics.classification(y_true, y_pred, k, probs)
  local out = { n = #y_true, accuracy = r.accuracy, balanced_accuracy = r.balanced_accuracy, macro_f1 = r.macro_f1,
    roc_auc = r.roc_auc.macro, ece = r.ece, confusion = r.confusion, per_class = {}, classes = classes }
  for c = 1, k do
    local pc = r.per_class[c]
    out.per_class[classes[c]] = { precision = pc.precision, recall = pc.recall, f1 = pc.f1, support = pc.support,
      roc_auc = r.roc_auc.per_class[c] }
  end
  if (opts.bootstrap or 1000) > 0 then
    local bo = { samples = opts.bootstrap or 1000, seed = opts.seed or 1 }
    local ci = metrics.classification_ci(y_true, y_pred, k, bo)
    out.accuracy_ci, out.macro_f1_ci = ci.accuracy, ci.macro_f1
    out.balanced_accuracy_ci = metrics.bootstrap(#y_true, function(idx)
      local t, p = {}, {}
      for j, i in ipairs(idx) do t[j] = y_true[i]; p[j] = y_pred[i] end
      return metrics.classification(t, p, k).balanced_accuracy
    end, bo)
  end
  out.predictions = { files = files, y_true = y_true, y_pred = y_pred }
  return out
end

-- ---------------------------------------------------------------- segmentation

local function counts_of(pred, truth)   -- (H,W) u8 0/255 prediction and 0/1 truth -> tp/fp/fn/tn
  local p = pred:gt(0):astype("f64")
  local t = truth:astype("f64")
  local tp = p:mul(t):sum():item()
  local pp, tt = p:sum():item(), t:sum():item()
  local n = p:numel()
  local fp, fn = pp - tp, tt - tp
  return { tp = math.tointeger(tp) or tp, fp = math.tointeger(fp) or fp, fn = math.tointeger(fn) or fn,
    tn = math.tointeger(n - tp - fp - fn) or (n - tp - fp - fn) }
end

local function eval_segmentation(m, ds, opts, report)
  local metrics = require "hs.metrics"
  local sliding = require "hs.sliding"
  local rec = M.recorded_settings(m.meta)
  local thr = opts.threshold or rec.threshold
  local invert = opts.invert_masks
  if invert == nil then invert = rec.invert_masks end
  if opts.masks then assert(hs.sys.mkdir_p(opts.masks)) end
  local counts, per = {}, {}
  for i, it in ipairs(ds.items) do
    local img, err = load_image(it.path)
    local mask, merr
    if img then mask, merr = load_image(it.mask) end
    if not img then report.skip(it.path, err)
    elseif not mask then report.skip(it.mask, merr)
    else
      local g = sliding.to_channels(mask, 1)
      local s, ms = img:shape(), g:shape()
      if s[1] ~= ms[1] or s[2] ~= ms[2] then
        report.skip(it.mask, ("%s: mask is %dx%d, image %s is %dx%d"):format(it.mask, ms[2], ms[1], it.path, s[2], s[1]))
      else
        local pipe = m.meta.pipeline or {}
        local _, pred = sliding.segment(m, img, { overlap = opts.overlap or 0.25, threshold = thr, batch = opts.batch,
          resize = opts.resize and (pipe.cache_size or m.meta.input.size) or nil })
        local truth = g:reshape({ ms[1], ms[2] })
        truth = invert and truth:lt(128) or truth:ge(128)
        local c = counts_of(pred, truth)
        counts[#counts + 1] = c
        local sc = metrics.seg_scores(c)
        per[#per + 1] = { file = it.path, mask = it.mask, height = s[1], width = s[2], dice = sc.dice, iou = sc.iou,
          pixel_accuracy = sc.pixel_accuracy, foreground_true = (c.tp + c.fn) / math.max(1, pred:numel()),
          foreground_pred = (c.tp + c.fp) / math.max(1, pred:numel()) }
        if opts.masks then
          local name = it.path:match("([^/]+)$"):gsub("%.[^.]+$", "") .. ".png"
          local okw, werr = hs.image.save(opts.masks .. "/" .. name, pred)
          if not okw then error(("cannot write %s/%s: %s"):format(opts.masks, name, tostring(werr)), 0) end
        end
      end
    end
    report.progress(i, #ds.items)
  end
  if #counts == 0 then error("no readable image/mask pairs to evaluate", 0) end
  local r = metrics.segmentation(counts)
  local out = { n = #counts, dice = r.overall.dice, iou = r.overall.iou, pixel_accuracy = r.overall.pixel_accuracy,
    mean_dice = r.mean_dice, mean_iou = r.mean_iou, threshold = thr, invert_masks = invert,
    overlap = opts.overlap or 0.25, resized = opts.resize and true or false, per_image = per }
  if (opts.bootstrap or 1000) > 0 then
    local bo = { samples = opts.bootstrap or 1000, seed = opts.seed or 1 }
    out.mean_dice_ci = metrics.bootstrap(#per, function(idx)
      local s = 0
      for _, i in ipairs(idx) do s = s + per[i].dice end
      return s / #idx
    end, bo)
    out.dice_ci = metrics.bootstrap(#counts, function(idx)   -- pooled Dice over resampled images
      local t = { tp = 0, fp = 0, fn = 0, tn = 0 }
      for _, i in ipairs(idx) do for key in pairs(t) do t[key] = t[key] + counts[i][key] end end
      return metrics.seg_scores(t).dice
    end, bo)
  end
  return out
end

-- ---------------------------------------------------------------- the command

-- Evaluate programmatically: M.evaluate{model = spec, data = dir, allow_skip =, ...}
-- -> result table (what --json prints) | raises with a message
function M.evaluate(opts, report)
  report = report or { skip = function() end, progress = function() end }
  local path, info = M.resolve(opts.model)
  if not path then error(tostring(info), 0) end
  local mio = require "hs.model_io"
  local m, err = mio.load(path)
  if not m then error(tostring(err), 0) end
  local ds, kind, dpath = open_data(opts.data, opts.split)
  local task = m.meta.task or "classification"
  if task == "segmentation" and kind ~= "pairs" then
    error(("%s is a segmentation model, but %s is not an images/ + masks/ folder"):format(path, dpath), 0)
  elseif task ~= "segmentation" and kind == "pairs" then
    error(("%s is a %s model, but %s is a segmentation (images/ + masks/) folder"):format(path, task, dpath), 0)
  end
  local skipped = {}
  local rep = { progress = report.progress, skip = function(p, msg)
    skipped[#skipped + 1] = { path = p, message = msg }
    report.skip(p, msg)
  end }
  local t0 = hs.sys.clock()
  local res = task == "segmentation" and eval_segmentation(m, ds, opts, rep) or eval_classification(m, ds, opts, rep)
  if #skipped > 0 and not opts.allow_skip then
    error(("%d unreadable file(s), first: %s; pass --allow-skip to evaluate without them"):format(#skipped,
      skipped[1].message), 0)
  end
  local meta = m.meta
  return {
    model = { path = path, spec = opts.model, experiment = meta.experiment, run = meta.run, task = task,
      classes = hs.json.array(meta.classes or {}), input = meta.input, pipeline = meta.pipeline,
      name = info and info.name, version = info and info.version },
    data = { path = dpath, kind = kind, items = #ds.items, evaluated = res.n, skipped = #skipped,
      skipped_files = hs.json.array(skipped) },
    metrics = res, seconds = hs.sys.clock() - t0,
  }
end

local function fmt_ci(v, ci)
  if not ci then return ("%.4f"):format(v) end
  return ("%.4f [%.4f, %.4f]"):format(v, ci.lo, ci.hi)
end

local function print_text(r)
  local mm, d = r.metrics, r.data
  print(("model  %s (experiment %s, run %s, task %s)"):format(r.model.path, tostring(r.model.experiment),
    tostring(r.model.run), r.model.task))
  print(("data   %s (%s): %d items, %d evaluated, %d skipped"):format(d.path, d.kind, d.items, d.evaluated, d.skipped))
  if r.model.task == "segmentation" then
    print(("Dice (pooled)        %s"):format(fmt_ci(mm.dice, mm.dice_ci)))
    print(("Dice (mean of images) %s"):format(fmt_ci(mm.mean_dice, mm.mean_dice_ci)))
    print(("IoU (pooled)         %.4f   mean %.4f"):format(mm.iou, mm.mean_iou))
    print(("pixel accuracy       %.4f"):format(mm.pixel_accuracy))
    print(("threshold %.3g, overlap %.3g, masks %s"):format(mm.threshold, mm.overlap, mm.invert_masks and "inverted" or "as stored"))
    print(("%-40s %8s %8s %8s %10s"):format("image", "dice", "iou", "pix.acc", "size"))
    for _, p in ipairs(mm.per_image) do
      print(("%-40s %8.4f %8.4f %8.4f %10s"):format(p.file:match("([^/]+)$"), p.dice, p.iou, p.pixel_accuracy,
        p.width .. "x" .. p.height))
    end
  else
    print(("accuracy             %s"):format(fmt_ci(mm.accuracy, mm.accuracy_ci)))
    print(("balanced accuracy    %s"):format(fmt_ci(mm.balanced_accuracy, mm.balanced_accuracy_ci)))
    print(("macro-F1             %s"):format(fmt_ci(mm.macro_f1, mm.macro_f1_ci)))
    print(("ROC-AUC (macro OvR)  %s"):format(mm.roc_auc and ("%.4f"):format(mm.roc_auc) or "n/a"))
    print(("ECE (15 bins)        %.4f"):format(mm.ece))
    print(("%-20s %9s %9s %9s %8s %8s"):format("class", "precision", "recall", "F1", "support", "AUC"))
    for _, c in ipairs(mm.classes) do
      local pc = mm.per_class[c]
      print(("%-20s %9.4f %9.4f %9.4f %8d %8s"):format(c, pc.precision, pc.recall, pc.f1, pc.support,
        pc.roc_auc and ("%.4f"):format(pc.roc_auc) or "n/a"))
    end
    print("confusion (rows: true, columns: predicted)")
    for i, row in ipairs(mm.confusion) do
      local cells = {}
      for j, v in ipairs(row) do cells[j] = ("%6d"):format(v) end
      print(("%-20s %s"):format(mm.classes[i], table.concat(cells)))
    end
  end
end

-- JSON has no NaN: undefined scores become null
local function json_safe(v)
  if type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge) then return hs.json.null end
  if type(v) ~= "table" then return v end
  local o = {}
  for k, x in pairs(v) do o[k] = json_safe(x) end
  return setmetatable(o, getmetatable(v))
end

function M.run(args)
  local opts, i = {}, 1
  local function num(name, v, lo, hi)
    local n = tonumber(v or "")
    if not n or n < lo or n > hi then error(("%s needs a number in [%s, %s]"):format(name, lo, hi), 0) end
    return n
  end
  local ok, perr = pcall(function()
    while i <= #args do
      local a = args[i]
      local function val() i = i + 1; return args[i] or error(a .. " needs a value", 0) end
      if a == "--model" then opts.model = val()
      elseif a == "--data" then opts.data = val()
      elseif a == "--json" then opts.json = true
      elseif a == "--allow-skip" then opts.allow_skip = true
      elseif a == "--split" then opts.split = val()
      elseif a == "--batch" then opts.batch = math.tointeger(num(a, val(), 1, 4096)) or error("--batch needs an integer", 0)
      elseif a == "--bootstrap" then opts.bootstrap = math.tointeger(num(a, val(), 0, 1e6)) or error("--bootstrap needs an integer", 0)
      elseif a == "--seed" then opts.seed = math.tointeger(num(a, val(), 0, 2 ^ 31)) or error("--seed needs an integer", 0)
      elseif a == "--overlap" then opts.overlap = num(a, val(), 0, 0.95)
      elseif a == "--threshold" then opts.threshold = num(a, val(), 1e-6, 1 - 1e-6)
      elseif a == "--invert-masks" then opts.invert_masks = true
      elseif a == "--masks" then opts.masks = val()
      elseif a == "--resize" then opts.resize = true
      elseif a == "-h" or a == "--help" then opts.help = true
      else error("unknown argument " .. a, 0) end
      i = i + 1
    end
  end)
  if not ok then io.stderr:write("histops eval: ", tostring(perr), "\n", usage_text); return 2 end
  if opts.help then io.write(usage_text); return 0 end
  if not opts.model or not opts.data then io.stderr:write(usage_text); return 2 end
  local tty = hs.sys.isatty(2) and not opts.json
  local report = {
    skip = function(_, msg) io.stderr:write("histops eval: unreadable: ", msg, "\n") end,
    progress = function(k, n) if tty then io.stderr:write(("\r%d/%d"):format(k, n)); if k == n then io.stderr:write("\n") end end end,
  }
  local okr, res = pcall(M.evaluate, opts, report)
  if not okr then io.stderr:write("histops eval: ", tostring(res), "\n"); return 1 end
  if opts.json then
    if res.metrics.predictions then res.metrics.predictions = nil end
    print(hs.json.encode(json_safe(res)))
  else
    print_text(res)
  end
  return 0
end

return M
