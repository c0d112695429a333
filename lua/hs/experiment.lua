-- lua/hs/experiment.lua: running an experiment: data -> split -> decoded cache -> training with
-- validation every epoch, best checkpoint, early stopping, crash/Ctrl-C resume -> held-out
-- evaluation with bootstrap intervals -> run folder (params, split manifest, fingerprint,
-- metric history, final metrics, model as safetensors with its metadata, HTML report).
-- `histops run` (hs/cmd/run.lua) is the command-line face of M.run.
local hs = require "histops"
local data = require "hs.data"
local metrics = require "hs.metrics"
local config = require "hs.config"
local model_io = require "hs.model_io"
local json = hs.json

local M = {}

local function now() return hs.sys.time() end
local function clock() return hs.sys.clock() end

local function log(run, fmt, ...)
  local line = fmt:format(...)
  if not run.quiet then io.stderr:write(line, "\n") end
  if run.logf then run.logf:write(os.date("!%Y-%m-%dT%H:%M:%SZ "), line, "\n"); run.logf:flush() end
end

local function write_json(path, v) assert(hs.sys.write_file_atomic(path, json.encode(v, { indent = true }) .. "\n")) end

-- ---------------------------------------------------------------- data
local function limit_items(ds, cfg)
  local lim, limc = cfg.data.limit, cfg.data.limit_per_class
  if not lim and not limc then return ds end
  local out, per = {}, {}
  for _, it in ipairs(ds.items) do
    local c = it.label or 0
    per[c] = (per[c] or 0) + 1
    if (not limc or per[c] <= limc) and (not lim or #out < lim) then out[#out + 1] = it end
  end
  ds.items = out
  return ds
end

-- synthetic IHC tiles as a classification set (positive vs negative dominant) or a
-- segmentation set (nuclei masks): rendered into a temp folder once per seed, then read as files
local function synthetic_dataset(cfg, run)
  local s = cfg.data.synthetic or {}
  local n, size = s.tiles or 240, s.size or 64
  -- the folder is keyed by everything that shapes the tiles, and rendered into a private
  -- temporary folder renamed into place, so concurrent runs never see half a data set
  local key = hs.sys.sha256(json.encode({ s = s, task = cfg.task, seed = cfg.seed })):sub(1, 12)
  local root = ("%s/synthetic_ihc_%s_%d_%d_%s"):format(run.cache_dir, cfg.task, n, size, key)
  local seg = cfg.task == "segmentation"
  local classes = { "negative", "positive" }
  if not hs.sys.stat(root) then
    local tmp = ("%s.tmp%d"):format(root, hs.sys.pid())
    if seg then
      hs.sys.mkdir_p(tmp .. "/images"); hs.sys.mkdir_p(tmp .. "/masks")
    else
      for _, c in ipairs(classes) do hs.sys.mkdir_p(tmp .. "/" .. c) end
    end
    for i = 1, n do
      local positive = (i % 2 == 0)
      local rgb, labels = hs.synth.ihc { width = size, height = size, nuclei = s.nuclei or 6, seed = cfg.seed * 100003 + i,
        positive_fraction = positive and 0.9 or 0.05, radius = s.radius or { 4, 7 }, noise = s.noise or 0.04 }
      local name = ("tile%04d.png"):format(i)
      if seg then
        assert(hs.image.save(tmp .. "/images/" .. name, rgb))
        local mask = (labels:astype("f32"):gt(0)):astype("u8"):mul(255)
        assert(hs.image.save(tmp .. "/masks/" .. name, mask:astype("u8")))
      else
        assert(hs.image.save(tmp .. "/" .. classes[positive and 2 or 1] .. "/" .. name, rgb))
      end
    end
    if not os.rename(tmp, root) then os.execute(("rm -rf '%s'"):format(tmp)) end  -- another run got there first
  end
  if seg then return data.pairs(root) end
  return data.folder(root)
end

function M.load_data(cfg, run)
  local d = cfg.data
  local splits
  if d.kind == "synthetic_ihc" then
    local ds = synthetic_dataset(cfg, run)
    splits = data.split(limit_items(ds, cfg), { val = d.split.val, test = d.split.test, seed = cfg.seed,
      stratify = d.split.stratify, grouped = d.split.grouped })
  elseif d.kind == "presplit" then
    splits = data.presplit(assert(d.path, "data.path is required"))
    if not splits then error(("data: %s has no train/ folder"):format(d.path), 0) end
    for _, k in ipairs { "train", "val", "test" } do if splits[k] then limit_items(splits[k], cfg) end end
  else
    local ds
    if d.kind == "folder" then ds = data.folder(assert(d.path, "data.path is required"), { classes = d.classes })
    elseif d.kind == "csv" then ds = data.csv(data.resolve(assert(d.path, "data.path is required")))
    elseif d.kind == "pairs" then ds = data.pairs(assert(d.path, "data.path is required"))
    else error(("data.kind '%s' is not one of folder, presplit, csv, pairs, synthetic_ihc"):format(tostring(d.kind)), 0) end
    splits = data.split(limit_items(ds, cfg), { val = d.split.val, test = d.split.test, seed = cfg.seed,
      stratify = d.split.stratify, grouped = d.split.grouped })
  end
  if not splits.val or #splits.val.items == 0 then splits.val = splits.test end
  if not splits.test or #splits.test.items == 0 then splits.test = splits.val end
  return splits
end

-- decode a split into a u8 cache (and masks); corrupt files are reported and counted
local function cache_split(run, ds, hw, channels)
  local paths = {}
  for i, it in ipairs(ds.items) do paths[i] = it.path end
  local cache, fails = hs.loader.fill_cache(paths, { height = hw[1], width = hw[2], channels = channels })
  local mcache, mfails
  if ds.segmentation then
    local mpaths = {}
    for i, it in ipairs(ds.items) do mpaths[i] = it.mask end
    mcache, mfails = hs.loader.fill_cache(mpaths, { height = hw[1], width = hw[2], channels = 1 })
    for _, f in ipairs(mfails) do fails[#fails + 1] = f end
  end
  for _, f in ipairs(fails) do log(run, "unreadable file %s: %s", f.path, f.message) end
  if #fails > 0 then
    if not run.cfg.data.allow_skip then
      error(("%d unreadable file(s), first: %s (%s); set data.allow_skip = true to skip them")
        :format(#fails, fails[1].path, fails[1].message), 0)
    end
    run.skipped = (run.skipped or 0) + #fails
    -- drop failed items: rebuild the cache without them
    local bad = {}
    for _, f in ipairs(fails) do bad[f.path] = true end
    local keep = {}
    for _, it in ipairs(ds.items) do if not bad[it.path] and not bad[it.mask or ""] then keep[#keep + 1] = it end end
    ds.items = keep
    return cache_split(run, ds, hw, channels)
  end
  require("hs.pipeline").apply_cache(run.cfg.data.preprocess, cache)   -- data.preprocess, images only
  local labels
  if not ds.segmentation then
    local lab = {}
    for i, it in ipairs(ds.items) do lab[i] = it.label end
    labels = hs.tensor(lab, "i64")
  end
  return { cache = cache, masks = mcache, labels = labels, n = #ds.items, items = ds.items }
end

-- ---------------------------------------------------------------- model and training parts
local function class_weights(cfg, train, k)
  if cfg.task ~= "classification" or cfg.train.class_weights ~= "balanced" then return nil end
  local counts = data.class_counts(train)
  local w, n = {}, #train.items
  for c = 1, k do w[c] = (counts[c] or 0) > 0 and n / (k * counts[c]) or 0 end
  return hs.tensor(w)
end

local function make_loss(cfg, weights)
  local nn = hs.nn
  local kind = cfg.train.loss
  if kind == "auto" then kind = cfg.task == "segmentation" and "bce+dice" or "cross_entropy" end
  if kind == "cross_entropy" then return nn.CrossEntropyLoss { weight = weights, label_smoothing = cfg.train.label_smoothing } end
  if kind == "bce" then return nn.BCEWithLogitsLoss() end
  if kind == "dice" then return nn.DiceLoss() end
  if kind == "bce+dice" then return nn.SumLoss { { nn.BCEWithLogitsLoss(), 1 }, { nn.DiceLoss(), 1 } } end
  error(("train.loss '%s' is not one of auto, cross_entropy, bce, dice, bce+dice"):format(kind), 0)
end

local function make_optimizer(cfg, model)
  local t = cfg.train
  if t.optimizer == "sgd" then
    return hs.optim.SGD(model, { lr = t.lr, momentum = t.momentum, weight_decay = t.weight_decay, nesterov = t.nesterov })
  elseif t.optimizer == "adam" then
    return hs.optim.Adam(model, { lr = t.lr, weight_decay = t.weight_decay })
  elseif t.optimizer == "adamw" then
    return hs.optim.AdamW(model, { lr = t.lr, weight_decay = t.weight_decay })
  end
  error(("train.optimizer '%s' is not one of sgd, adam, adamw"):format(tostring(t.optimizer)), 0)
end

local function lr_factor(cfg, epoch)   -- epoch is 0-based
  local t = cfg.train
  local f = 1
  if t.schedule == "cosine" then
    f = 0.5 * (1 + math.cos(math.pi * epoch / math.max(1, t.epochs)))
  elseif t.schedule == "step" then
    f = (t.gamma or 0.1) ^ (epoch // (t.step_size or math.max(1, t.epochs // 3)))
  end
  if t.warmup_epochs and epoch < t.warmup_epochs then f = f * (epoch + 1) / (t.warmup_epochs + 1) end
  return f
end

-- Evaluate a classification model on a cached split: labels, predictions, probabilities
function M.predict_cache(model, cfg, part, batch)
  local spec = M.batch_spec(cfg, false)
  local L = hs.loader.new(part.cache, part.labels, spec, { batch = batch, shuffle = false, training = false })
  L:start_epoch(0)
  local C, h, w = cfg.input.channels, cfg.input.size[1], cfg.input.size[2]
  local x = hs.zeros({ batch, C, h, w })
  local eval_graph = hs.nn.compile(model, { input = { batch, C, h, w }, training = false })
  local y_true, y_pred, probs = {}, {}, {}
  local idx = {}
  while true do
    local n = L:next(x, nil, idx)
    if n == 0 then break end
    local logits = eval_graph:forward(x)
    local k = logits:shape()[2]
    local p = model_io.softmax_rows(logits, n)
    for i = 1, n do
      local item = idx[i]
      local best, arg = -1, 0
      for c = 1, k do if p[i][c] > best then best, arg = p[i][c], c - 1 end end
      y_true[#y_true + 1] = part.items[item].label
      y_pred[#y_pred + 1] = arg
      probs[#probs + 1] = p[i]
    end
  end
  L:release()
  return y_true, y_pred, probs
end

function M.batch_spec(cfg, training)
  local a = cfg.augment or {}
  local s = { out = cfg.input.size, mean = cfg.input.mean, std = cfg.input.std, seed = cfg.seed,
    invert_mask = (cfg.data or {}).invert_masks }   -- callers outside the runner (hs.gate) pass no data section
  if training then
    s.hflip, s.vflip, s.rot90 = a.hflip, a.vflip, a.rot90
    s.brightness, s.contrast, s.hed_sigma = a.brightness, a.contrast, a.hed_sigma
  end
  return s
end

-- segmentation evaluation on the cached (resized) images: full-image forward (cache size must
-- be divisible by the network's stride), threshold, Dice/IoU per image and pooled
function M.eval_segmentation(model, cfg, part)
  local C = cfg.input.channels
  local H, W = part.cache:shape()[2], part.cache:shape()[3]
  local spec = { out = { H, W }, mean = cfg.input.mean, std = cfg.input.std, seed = cfg.seed,
    invert_mask = (cfg.data or {}).invert_masks }   -- callers outside the runner (hs.gate) pass no data section
  local L = hs.loader.new(part.cache, nil, spec, { batch = 1, shuffle = false, training = false, masks = part.masks })
  L:start_epoch(0)
  local x, m = hs.zeros({ 1, C, H, W }), hs.zeros({ 1, 1, H, W })
  local g = hs.nn.compile(model, { input = { 1, C, H, W }, training = false })
  local counts, thr = {}, cfg.eval.threshold
  local logit_thr = math.log(thr / (1 - thr))
  while L:next(x, m) > 0 do
    local out = g:forward(x)
    local pred = out:gt(logit_thr):astype("u8"):tolist()
    counts[#counts + 1] = metrics.seg_counts(pred, m:astype("u8"):tolist())
  end
  L:release()
  local r = metrics.segmentation(counts)
  r.counts = counts
  return r
end

-- ---------------------------------------------------------------- the run
local function run_id()   -- sorts chronologically (millisecond resolution), then a random suffix
  local nowt = now()
  local t = os.date("!%Y%m%d-%H%M%S", math.floor(nowt)) .. ("%03d"):format(math.floor((nowt % 1) * 1000))
  local r = hs.sys.sha256(tostring(now()) .. tostring(hs.sys.pid()) .. tostring(clock())):sub(1, 6)
  return t .. "-" .. r
end

local function fmt_time(s)
  if s < 60 then return ("%ds"):format(math.floor(s + 0.5)) end
  return ("%dm%02ds"):format(math.floor(s / 60), math.floor(s % 60))
end

local function progress(run, epoch, step, nsteps, loss, ips, eta)
  if run.tty then
    io.stderr:write(("\r epoch %d/%d  step %d/%d  loss %.4f  %.0f img/s  ETA %s   "):format(
      epoch, run.cfg.train.epochs, step, nsteps, loss, ips, fmt_time(eta)))
  end
end

function M.load_weights(model, path)
  local t, meta = hs.io.load(path)
  if not t then error(meta, 0) end
  model:load_state_dict(t)
  return meta
end

-- One atomic file holds everything a bit-exact resume needs: weights and BN statistics, the
-- optimizer's moments (tensors "optimizer.<name>") and step, the graph's step counter (the
-- dropout stream), the steps taken, best metric / early-stopping state and the history (the
-- "state" metadata). The loader needs nothing: its shuffles and augmentations are keyed by
-- (seed, epoch, item), and the LR schedule is a function of the epoch. checkpoint.json is a
-- readable copy of the state, written after the checkpoint (a kill in between leaves it one epoch
-- behind; resume reads the checkpoint's own copy). HISTOPS_TEST_KILL_AT (test-only) kills the
-- process here: see hs.sys.test_kill_point.
local function checkpoint(run, model, opt, epoch, best, counters)
  local dir = run.dir
  local s, bufs = opt:state_dict()
  local extra = {}
  for k, v in pairs(bufs) do extra["optimizer." .. k] = v end
  local state = { epoch = epoch, best = best, history = run.history, time = now(), skipped = run.skipped,
    optimizer_step = s.step, graph_steps = counters.graph_steps, total_steps = counters.total_steps }
  hs.sys.test_kill_point("checkpoint-write")
  model_io.save(dir .. "/checkpoint.safetensors", model, { kind = "checkpoint", state = json.encode(state) }, extra)
  hs.sys.test_kill_point("checkpoint-written")
  write_json(dir .. "/checkpoint.json", state)
end

-- The state saved by checkpoint(): {state, weights, optimizer buffers}. Checkpoints of older
-- versions (weights + optimizer.safetensors + checkpoint.json) are read too.
local function read_checkpoint(dir)
  local path = dir .. "/checkpoint.safetensors"
  local t, meta = hs.io.load(path)
  if not t then error(("--resume: %s"):format(meta), 0) end
  local weights, bufs, state = {}, {}, nil
  for k, v in pairs(t) do
    local b = k:match("^optimizer%.(.+)$")
    if b then bufs[b] = v else weights[k] = v end
  end
  if meta.state then
    local ok, st = pcall(json.decode, meta.state)
    if not ok or type(st) ~= "table" then error(("--resume: %s: unreadable state metadata"):format(path), 0) end
    state = st
  else
    state = json.decode(assert(hs.sys.read_file(dir .. "/checkpoint.json")))
    local ot, ometa = hs.io.load(dir .. "/optimizer.safetensors")
    if not ot then error(("--resume: %s"):format(ometa), 0) end
    bufs, state.optimizer_step = ot, tonumber(ometa.step)
  end
  return state, weights, bufs
end

-- Recording in git (hs/runs.lua): begin when the run starts, progress after every epoch,
-- finish with the record and artifact paths, fail with the error. Outside a repository (or
-- with --no-git) the run folder is the only record.
local function recorder(run, cfg, opts, started)
  if opts.no_git then return nil end
  local ok, runs = pcall(require, "hs.runs")
  if not ok then return nil end
  local rec, err = runs.begin { id = run.id, experiment = cfg.name, experiment_file = cfg._path, dir = run.dir,
    params = config.public(cfg), overrides = opts.overrides or {}, seed = cfg.seed, start_time = started,
    sweep = opts.sweep, repo = opts.repo }
  if not rec then log(run, "not recorded in git: %s", tostring(err)) end
  return rec
end

local run_inner
function M.run(cfg, opts)
  opts = opts or {}
  local state = {}
  local ok, record, run = xpcall(run_inner, debug.traceback, cfg, opts, state)
  if not ok then
    if state.rec then pcall(state.rec.fail, state.rec, tostring(record):match("^[^\n]*")) end
    if state.run and state.run.logf then state.run.logf:write("failed: ", tostring(record), "\n"); state.run.logf:close() end
    error(os.getenv("HISTOPS_TRACEBACK") and record or tostring(record):match("^[^\n]*"), 0)
  end
  return record, run
end

function run_inner(cfg, opts, state)
  local nn = hs.nn
  local dp = opts.dist or require("hs.dist").single()   -- data-parallel hooks (hs/dist.lua); rank 0 writes
  local run = { cfg = cfg, quiet = opts.quiet or dp.rank > 0, tty = hs.sys.isatty(2) and not opts.quiet and dp.rank == 0, history = {} }
  run.root = opts.out or "runs"
  run.cache_dir = opts.cache_dir or (os.getenv("HISTOPS_CACHE") or "runs/.cache")
  hs.sys.mkdir_p(run.cache_dir)
  if opts.resume then
    run.dir = opts.resume
    if not hs.sys.stat(run.dir .. "/checkpoint.safetensors") then error(("--resume: no checkpoint in %s"):format(run.dir), 0) end
    -- a process killed inside an atomic write leaves its temporary file ("<name>.tmp.XXXXXX")
    for _, f in ipairs(hs.sys.listdir(run.dir) or {}) do
      if f:match("%.tmp%.%w%w%w%w%w%w$") then os.remove(run.dir .. "/" .. f) end
    end
    run.id = run.dir:match("([^/]+)/?$")
  else
    run.id = dp:bcast_string(opts.run_id or run_id())   -- a sweep names its trials' runs in advance
    run.dir = ("%s/%s/%s"):format(run.root, cfg.name, run.id)
  end
  assert(hs.sys.mkdir_p(run.dir))
  run.logf = dp.rank == 0 and io.open(run.dir .. "/log.txt", "a") or nil
  if cfg.train.threads and cfg.train.threads > 0 then hs.sys.set_threads(cfg.train.threads) end
  local started = now()
  state.run = run
  log(run, "run %s: experiment %s -> %s", run.id, cfg.name, run.dir)
  state.rec = dp.rank == 0 and recorder(run, cfg, opts, started) or nil

  -- data
  local splits = M.load_data(cfg, run)
  local train = splits.train
  local classes = train.classes
  local k = classes and #classes or 1
  local fp = { train = data.fingerprint(train), val = data.fingerprint(splits.val), test = data.fingerprint(splits.test) }
  fp.all = hs.sys.sha256(fp.train .. fp.val .. fp.test)
  if dp.rank == 0 then assert(hs.sys.write_file_atomic(run.dir .. "/split.csv", data.manifest(splits))) end
  log(run, "data: %d train, %d val, %d test items%s; fingerprint %s", #train.items, #splits.val.items,
    #splits.test.items, classes and (", " .. k .. " classes") or "", fp.all:sub(1, 12))
  local hw = cfg.data.cache_size or cfg.input.size
  local C = cfg.input.channels
  local t0 = clock()
  local ctrain = cache_split(run, train, hw, C)
  local cval = cache_split(run, splits.val, hw, C)
  local ctest = splits.test == splits.val and cval or cache_split(run, splits.test, hw, C)
  log(run, "decoded %d images in %.1f s", ctrain.n + cval.n + (ctest == cval and 0 or ctest.n), clock() - t0)

  -- input normalisation "auto": per-channel mean/std of the first training images (at most
  -- 512 images or 16M values, converted to float at once)
  if cfg.input.mean == "auto" or cfg.input.std == "auto" then
    local per = hw[1] * hw[2] * C
    local m = math.max(1, math.min(ctrain.n, 512, 16777216 // per))
    local sub = ctrain.cache:narrow(1, 1, m):astype("f32")
    local mean, std = {}, {}
    for c = 1, C do
      local ch = sub:select(4, c)
      mean[c] = ch:mean():item() / 255
      std[c] = math.max(ch:std():item() / 255, 1e-3)
    end
    cfg.input.mean, cfg.input.std = mean, std
    log(run, "input normalisation from %d training images: mean {%s} std {%s}", m,
      table.concat((function() local t = {} for i, v in ipairs(mean) do t[i] = ("%.3f"):format(v) end return t end)(), ", "),
      table.concat((function() local t = {} for i, v in ipairs(std) do t[i] = ("%.3f"):format(v) end return t end)(), ", "))
  end

  -- model
  nn.manual_seed(cfg.seed)
  -- info.config: the resolved settings, so a model can read its own (sweepable) keys, e.g. extra.width
  local info = { classes = classes, num_classes = k, input = cfg.input, task = cfg.task, config = cfg }
  if type(cfg.model) ~= "function" then error("experiment: 'model' must be a function(info) returning an nn.Module", 0) end
  local model = cfg.model(info)
  local B = math.min(cfg.train.batch, ctrain.n)
  local in_shape = { dp:local_batch(B), C, cfg.input.size[1], cfg.input.size[2] }   -- B / ranks rows per rank
  local seg = cfg.task == "segmentation"
  local weights = class_weights(cfg, train, k)
  local loss = make_loss(cfg, weights)
  local step = nn.compile(model, { input = in_shape, target = seg and { in_shape[1], 1, in_shape[3], in_shape[4] } or { in_shape[1] },
    target_dtype = seg and "f32" or "i64", loss = loss, training = true })
  local opt = make_optimizer(cfg, model)
  local base_lr = cfg.train.lr
  local loader = hs.loader.new(ctrain.cache, ctrain.labels, M.batch_spec(cfg, true),
    { batch = B, shuffle = true, drop_last = true, training = true, masks = ctrain.masks, shard = dp:shard() })
  local x = hs.zeros(in_shape)
  local y = seg and hs.zeros({ in_shape[1], 1, in_shape[3], in_shape[4] }) or hs.zeros({ in_shape[1] }, "i64")
  log(run, "model: %d parameters; training graph arena %.1f MiB", model:num_parameters(), step:arena_bytes() / 2 ^ 20)

  local monitor = cfg.train.early_stopping.metric
  if monitor == "auto" then monitor = seg and "dice" or "macro_f1" end
  local best, best_epoch, start_epoch = -math.huge, 0, 1
  local resumed_steps
  if opts.resume then
    local ck, weights, bufs = read_checkpoint(run.dir)
    model:load_state_dict(weights)
    opt:load_state_dict({ step = ck.optimizer_step }, bufs)
    step.steps = ck.graph_steps or step.steps
    resumed_steps = ck.total_steps
    run.history = ck.history or {}
    best = ck.best and ck.best.value or best
    best_epoch = ck.best and ck.best.epoch or 0
    start_epoch = ck.epoch + 1
    log(run, "resuming after epoch %d (best %s %.4f at epoch %d)", ck.epoch, monitor, best, best_epoch)
  end

  dp:prepare(model, step)   -- every rank starts from rank 0's weights; per-rank dropout streams
  if dp.size > 1 then log(run, "%s", dp:describe()) end
  local patience, stopped_early = cfg.train.early_stopping.patience, false
  local nsteps = loader:num_batches()
  if cfg.train.steps_per_epoch and cfg.train.steps_per_epoch > 0 then nsteps = math.min(nsteps, cfg.train.steps_per_epoch) end
  local total_steps, max_steps = resumed_steps or 0, cfg.train.max_steps or 0
  local train_t0 = clock()
  for epoch = start_epoch, cfg.train.epochs do
    opt:set_lr(base_lr * lr_factor(cfg, epoch - 1))
    loader:start_epoch(epoch)
    local e0, sum, n = clock(), 0, 0
    model:train()
    for s = 1, nsteps do
      if dp:rows(loader:next(x, y), in_shape[1]) == 0 then break end
      model:zero_grad()
      local l = step:step(x, y)
      dp:allreduce_grads(model)   -- mean gradient over the global batch
      if l ~= l then error(("training diverged: loss is NaN at epoch %d step %d (lower train.lr?)"):format(epoch, s), 0) end
      if cfg.train.grad_clip and cfg.train.grad_clip > 0 then opt:clip_grad_norm(cfg.train.grad_clip) end
      opt:step()
      sum, n = sum + l, n + 1
      total_steps = total_steps + 1
      local el = clock() - e0
      progress(run, epoch, s, nsteps, sum / n, n * B / el, el / s * (nsteps - s) + el / s * nsteps * (cfg.train.epochs - epoch))
      if max_steps > 0 and total_steps >= max_steps then break end
    end
    if run.tty then io.stderr:write("\n") end
    local train_loss = n > 0 and dp:sum_number(sum) / dp.size / n or 0 / 0
    local ips = n * B / math.max(1e-9, clock() - e0)
    -- validation
    model:eval()
    dp:sync_buffers(model)   -- BN running statistics averaged over ranks; rank 0 validates and writes
    if dp.rank == 0 then
      local rec = { epoch = epoch, train_loss = train_loss, lr = opt:get_lr(), images_per_s = ips, time = now() }
      if seg then
        local r = M.eval_segmentation(model, cfg, cval)
        rec.dice, rec.iou, rec.pixel_accuracy = r.overall.dice, r.overall.iou, r.overall.pixel_accuracy
      else
        local yt, yp = M.predict_cache(model, cfg, cval, math.min(B, cval.n))
        local r = metrics.classification(yt, yp, k)
        rec.accuracy, rec.macro_f1, rec.balanced_accuracy = r.accuracy, r.macro_f1, r.balanced_accuracy
      end
      run.history[#run.history + 1] = rec
      log(run, "epoch %d/%d  train_loss %.4f  val %s %.4f  (%.0f img/s, lr %.2g)", epoch, cfg.train.epochs, train_loss,
        monitor, rec[monitor] or 0 / 0, ips, rec.lr)
      local v = rec[monitor]
      if v and v > best then
        best, best_epoch = v, epoch
        model_io.save(run.dir .. "/best.safetensors", model, { kind = "best", epoch = tostring(epoch) })
      end
      checkpoint(run, model, opt, epoch, { value = best, epoch = best_epoch, metric = monitor },
        { graph_steps = step.steps, total_steps = total_steps })
      if state.rec then pcall(state.rec.progress, state.rec, run.history) end
    end
    best_epoch = dp:bcast_number(best_epoch)   -- rank 0's early-stopping state
    if max_steps > 0 and total_steps >= max_steps then break end
    if patience and patience > 0 and epoch - best_epoch >= patience then
      log(run, "early stopping: no %s improvement for %d epochs", monitor, patience)
      stopped_early = true
      break
    end
  end
  local train_time = clock() - train_t0
  loader:release()
  if dp.rank > 0 then   -- data-parallel followers: rank 0 evaluates and writes the run
    return { id = run.id, status = "finished", follower = true, metrics = {}, distributed = dp:info() }, run
  end

  -- final evaluation with the best weights
  if hs.sys.stat(run.dir .. "/best.safetensors") then M.load_weights(model, run.dir .. "/best.safetensors") end
  model:eval()
  local final = { best_epoch = best_epoch, monitor = monitor, train_time_s = train_time, stopped_early = stopped_early }
  local eval_detail = {}
  if seg then
    local r = M.eval_segmentation(model, cfg, ctest)
    final.dice, final.iou, final.pixel_accuracy = r.overall.dice, r.overall.iou, r.overall.pixel_accuracy
    final.mean_dice, final.mean_iou = r.mean_dice, r.mean_iou
    eval_detail.per_image = r.per_image
    -- bootstrap over images: the pooled Dice (all pixels of the resampled images) and the mean
    -- of per-image Dice each get their own interval
    local per, counts = r.per_image, r.counts
    final.dice_ci = metrics.bootstrap(#counts, function(idx)
      local t = { tp = 0, fp = 0, fn = 0, tn = 0 }
      for _, i in ipairs(idx) do for k2 in pairs(t) do t[k2] = t[k2] + counts[i][k2] end end
      return metrics.seg_scores(t).dice
    end, { samples = cfg.eval.bootstrap, seed = cfg.seed })
    final.mean_dice_ci = metrics.bootstrap(#per, function(idx)
      local s = 0
      for _, i in ipairs(idx) do s = s + per[i].dice end
      return s / #idx
    end, { samples = cfg.eval.bootstrap, seed = cfg.seed })
  else
    local yt, yp, pr = M.predict_cache(model, cfg, ctest, math.min(B, ctest.n))
    local r = metrics.classification(yt, yp, k, pr)
    final.accuracy, final.balanced_accuracy, final.macro_f1 = r.accuracy, r.balanced_accuracy, r.macro_f1
    final.roc_auc = r.roc_auc.macro
    final.ece = r.ece
    final.per_class = {}
    for c = 1, k do
      final.per_class[classes[c]] = r.per_class[c]
      r.per_class[c].roc_auc = r.roc_auc.per_class[c]
    end
    final.confusion = r.confusion
    local ci = metrics.classification_ci(yt, yp, k, { samples = cfg.eval.bootstrap, seed = cfg.seed })
    final.accuracy_ci, final.macro_f1_ci = ci.accuracy, ci.macro_f1
    eval_detail = { y_true = yt, y_pred = yp, probs = pr }
    -- classical baseline on the same split (texture/colour features + SVM or logistic regression)
    if cfg.baseline then
      local t0b = clock()
      local b = require("hs.baselines").evaluate(cfg.baseline,
        { cache = ctrain.cache, labels = ctrain.labels, n = ctrain.n }, { cache = ctest.cache, labels = ctest.labels, n = ctest.n })
      local br = metrics.classification(b.y_true, b.y_pred, k)
      local bci = metrics.classification_ci(b.y_true, b.y_pred, k, { samples = cfg.eval.bootstrap, seed = cfg.seed })
      local diff = metrics.paired_difference(#yt, function(idx)
        local c = 0
        for _, i in ipairs(idx) do if b.y_pred[i] == b.y_true[i] then c = c + 1 end end
        return c / #idx
      end, function(idx)
        local c = 0
        for _, i in ipairs(idx) do if yp[i] == yt[i] then c = c + 1 end end
        return c / #idx
      end, { samples = cfg.eval.bootstrap, seed = cfg.seed })
      final.baseline = { classifier = b.classifier or cfg.baseline.classifier, features = cfg.baseline.features,
        n_features = b.n_features, accuracy = br.accuracy, macro_f1 = br.macro_f1, balanced_accuracy = br.balanced_accuracy,
        accuracy_ci = bci.accuracy, macro_f1_ci = bci.macro_f1, confusion = br.confusion,
        cnn_minus_baseline_accuracy = diff, seconds = clock() - t0b }
      log(run, "baseline %s on %d features: accuracy %.4f [%.4f, %.4f], macro-F1 %.4f; CNN - baseline accuracy %+.4f [%+.4f, %+.4f]",
        final.baseline.classifier, b.n_features or 0, br.accuracy, bci.accuracy.lo, bci.accuracy.hi, br.macro_f1,
        diff.value, diff.lo, diff.hi)
    end
  end
  final.test_items = ctest.n
  final.skipped_files = run.skipped or 0

  -- artifacts
  local pipeline = { input = cfg.input, cache_size = hw, task = cfg.task, invert_mask = cfg.data.invert_masks or false,
    threshold = cfg.eval.threshold, preprocess = cfg.data.preprocess and hs.json.array(cfg.data.preprocess) }
  local model_meta = { format = "histops-model-1", experiment = cfg.name, run = run.id, classes = classes or {},
    input = cfg.input, pipeline = pipeline, task = cfg.task, data_fingerprint = fp.all,
    architecture = cfg.architecture or "custom" }
  -- what monitoring compares served inputs against (hs/monitor.lua)
  local okm, monitor_stats = pcall(function() return require("hs.monitor").training_stats(ctrain.cache, ctrain.labels, classes) end)
  if okm then model_meta.monitor = monitor_stats else log(run, "training statistics not recorded: %s", tostring(monitor_stats)) end
  model_meta.policy = cfg.policy
  model_meta.experiment_source = hs.sys.read_file(cfg._path)
  model_meta.experiment_file = cfg._path:match("([^/]+)$")
  model_meta.overrides = opts.overrides or {}
  model_meta.metrics = final
  model_io.save(run.dir .. "/model.safetensors", model, model_meta)
  local record = {
    id = run.id, experiment = cfg.name, experiment_file = cfg._path, status = "finished",
    start_time = started, end_time = now(), params = config.public(cfg), overrides = opts.overrides or {},
    seed = cfg.seed, data = { fingerprint = fp, counts = { train = ctrain.n, val = cval.n, test = ctest.n },
      classes = classes, skipped = run.skipped or 0 },
    pipeline = pipeline, metrics = final, history = run.history,
    environment = M.environment(),
    monitor = model_meta.monitor,
    distributed = dp:info(),   -- nil for one process; world size, per-rank batch, bytes per step
    sweep = opts.sweep,   -- {id=, trial=} when the run is a trial of `histops sweep`
  }
  if eval_detail.y_true then   -- per-item test predictions: paired bootstrap in `histops compare`
    record.predictions = { y_true = eval_detail.y_true, y_pred = eval_detail.y_pred }
  end
  write_json(run.dir .. "/params.json", config.public(cfg))
  write_json(run.dir .. "/metrics.json", final)
  local hist = {}
  for _, h in ipairs(run.history) do hist[#hist + 1] = json.encode(h) end
  assert(hs.sys.write_file_atomic(run.dir .. "/history.jsonl", table.concat(hist, "\n") .. "\n"))
  record.artifacts = { ["model.safetensors"] = hs.sys.sha256_file(run.dir .. "/model.safetensors") }
  write_json(run.dir .. "/run.json", record)
  local ok, rep = pcall(function() return require("hs.run_report").write(run, record, eval_detail, ctest, model) end)
  if not ok then log(run, "report: %s", tostring(rep)) end
  if seg then
    log(run, "test: dice %.4f [%.4f, %.4f] (pooled pixels; mean per image %.4f [%.4f, %.4f])  iou %.4f  pixel accuracy %.4f on %d images",
      final.dice, final.dice_ci.lo, final.dice_ci.hi, final.mean_dice, final.mean_dice_ci.lo, final.mean_dice_ci.hi,
      final.iou, final.pixel_accuracy, ctest.n)
  else
    log(run, "test: accuracy %.4f [%.4f, %.4f]  macro-F1 %.4f  balanced accuracy %.4f on %d items", final.accuracy,
      final.accuracy_ci.lo or 0 / 0, final.accuracy_ci.hi or 0 / 0, final.macro_f1, final.balanced_accuracy, ctest.n)  -- eval.bootstrap=0: no interval
  end
  if state.rec then
    local ok, err = pcall(state.rec.finish, state.rec, record, {
      ["model.safetensors"] = run.dir .. "/model.safetensors", ["report.html"] = run.dir .. "/report.html",
      ["split.csv"] = run.dir .. "/split.csv" })
    if not ok then log(run, "recording in git failed: %s", tostring(err)) end
  end
  if cfg.register or opts.register then
    local name = opts.register or cfg.register
    if name == true then name = cfg.name end
    local ok, v, a = pcall(function() return require("hs.registry").register_after_run(run.dir, name, cfg.name) end)
    if ok and v then log(run, "registered %s@%d", v.name, v.version)
    else log(run, "not registered: %s", tostring(ok and a or v)) end
  end
  log(run, "run folder: %s", run.dir)
  if run.logf then run.logf:close() end
  hs.sys.test_kill_point("run-end")   -- test-only: keeps the last checkpoint for comparison
  os.remove(run.dir .. "/checkpoint.safetensors")
  os.remove(run.dir .. "/optimizer.safetensors")
  return record, run
end

function M.environment()
  local v = hs.sys.versions()
  return { histops = hs.version, lua = _VERSION, openblas = v.openblas, libgit2 = v.libgit2, compiler = v.compiler,
    cpu = hs.sys.cpu_model(), threads = hs.sys.get_threads(), host = hs.sys.hostname(), nproc = hs.sys.nproc() }
end

return M
