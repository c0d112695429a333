-- lua/hs/gate.lua: the promotion gate. Evaluates a candidate model and the incumbent (the
-- version an alias points at) on the experiment's pinned evaluation set, applies the policy
-- declared in the experiment script (floors, per-class recall floors, paired-bootstrap
-- non-inferiority, golden-set agreement, latency and size budgets) and renders a Markdown report
-- fit for a pull-request comment. It decides; it does not move aliases (hs/cmd/promote.lua does).
--
-- Policy schema (the `policy` section of an experiment; every key optional):
--   policy = {
--     metric = "macro_f1",                 -- primary metric (default macro_f1; dice for segmentation)
--     floors = { macro_f1 = 0.90, accuracy = 0.9 },   -- candidate value >= floor
--     ceilings = { ece = 0.15 },           -- candidate value <= ceiling (lower-is-better metrics)
--     recall_floor = 0.8,                  -- every class; or per class: { positive = 0.9, negative = 0.8 }
--     non_inferiority = { metric = "macro_f1", delta = 0.02, level = 0.95, samples = 1000 },
--         -- paired bootstrap of candidate - incumbent on the same items; passes when the lower
--         -- bound of the level-CI (2.5th percentile for 0.95) is > -delta; n/a without incumbent
--     golden = { max_disagreement = 0, against = "labels" | "incumbent",
--                set = { tiles = 16, seed = 4242 } | { path = "folder/with/class/subfolders" } },
--         -- fraction of golden items whose predicted class differs from the expected one
--     budgets = { latency_ms = 50, size_mb = 20, params = 1e6 },
--         -- latency: median of 10 single-image preprocess + forward passes (after 2 warm-ups), ms;
--         -- size: weights file, 10^6 bytes; params: parameter count
--     eval_set = { split = "test", seed = 1, fingerprint = nil },
--         -- which split of the experiment's data, rendered/split with this seed (default: the
--         -- experiment's seed) so that every candidate meets the same items; a fingerprint pins
--         -- the exact files (a mismatch is an error, not a rejection)
--   }
-- An empty policy means { non_inferiority = { delta = 0.02 } } (the report says so).
--
--   M.normalize(policy, cfg)  -> policy with defaults (raises on unknown keys)
--   M.evaluate{ cfg =, candidate = loaded model, incumbent = loaded model or nil,
--               candidate_label =, incumbent_label =, cache_dir = } -> result
--   M.report(result, outcome) -> Markdown text
local hs = require "histops"
local metrics = require "hs.metrics"

local M = {}

local function fail(fmt, ...) error(fmt:format(...), 0) end

local KEYS = {
  [""] = { metric = true, floors = true, ceilings = true, recall_floor = true, non_inferiority = true, golden = true,
    budgets = true, eval_set = true },
  non_inferiority = { metric = true, delta = true, level = true, samples = true, seed = true },
  golden = { max_disagreement = true, against = true, set = true },
  budgets = { latency_ms = true, size_mb = true, params = true },
  eval_set = { split = true, seed = true, fingerprint = true },
}

local CLS_METRICS = { accuracy = true, balanced_accuracy = true, macro_f1 = true, roc_auc = true, ece = true }
local SEG_METRICS = { dice = true, iou = true, pixel_accuracy = true, mean_dice = true, mean_iou = true }

local function check_keys(t, section)
  if t == nil then return end
  if type(t) ~= "table" then fail("policy.%s must be a table", section) end
  local known = KEYS[section]
  for k in pairs(t) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      fail("unknown policy setting '%s%s' (known: %s)", section == "" and "" or (section .. "."), tostring(k),
        table.concat(names, ", "))
    end
  end
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local o = {}
  for k, x in pairs(v) do o[k] = copy(x) end
  return o
end

function M.normalize(policy, cfg)
  policy = copy(policy or {})
  cfg = cfg or {}
  local seg = cfg.task == "segmentation"
  local p = policy
  local is_default = next(p) == nil
  if is_default then p.non_inferiority = { delta = 0.02 } end
  check_keys(p, "")
  for _, s in ipairs { "non_inferiority", "golden", "budgets", "eval_set" } do check_keys(p[s], s) end
  local valid = seg and SEG_METRICS or CLS_METRICS
  p.metric = p.metric or (seg and "dice" or "macro_f1")
  if not valid[p.metric] then fail("policy.metric '%s' is not a %s metric", p.metric, seg and "segmentation" or "classification") end
  for _, sec in ipairs { "floors", "ceilings" } do
    p[sec] = p[sec] or {}
    for k, v in pairs(p[sec]) do
      if not valid[k] then fail("policy.%s.%s: unknown metric (one of: %s)", sec, k, seg and "dice, iou, pixel_accuracy, mean_dice, mean_iou"
        or "accuracy, balanced_accuracy, macro_f1, roc_auc, ece") end
      if type(v) ~= "number" then fail("policy.%s.%s must be a number", sec, k) end
    end
  end
  if p.recall_floor ~= nil and type(p.recall_floor) ~= "number" and type(p.recall_floor) ~= "table" then
    fail("policy.recall_floor must be a number or a table { class = floor }")
  end
  if seg and p.recall_floor then fail("policy.recall_floor applies to classification only") end
  if p.non_inferiority then
    local ni = p.non_inferiority
    ni.metric = ni.metric or p.metric
    if not valid[ni.metric] or ni.metric == "ece" or ni.metric == "roc_auc" then
      fail("policy.non_inferiority.metric '%s' is not supported (use %s)", ni.metric,
        seg and "dice" or "accuracy, balanced_accuracy or macro_f1")
    end
    if seg and ni.metric ~= "dice" then fail("policy.non_inferiority.metric: segmentation supports dice (per-image mean)") end
    ni.delta = ni.delta or 0.02
    ni.level = ni.level or 0.95
    ni.samples = ni.samples or (cfg.eval and cfg.eval.bootstrap) or 1000
    if type(ni.delta) ~= "number" or ni.delta < 0 then fail("policy.non_inferiority.delta must be a number >= 0") end
    if type(ni.level) ~= "number" or ni.level <= 0 or ni.level >= 1 then fail("policy.non_inferiority.level must be in (0, 1)") end
  end
  if p.golden then
    local g = p.golden
    g.max_disagreement = g.max_disagreement or 0
    g.against = g.against or "labels"
    if g.against ~= "labels" and g.against ~= "incumbent" then fail("policy.golden.against must be 'labels' or 'incumbent'") end
    if type(g.max_disagreement) ~= "number" or g.max_disagreement < 0 or g.max_disagreement > 1 then
      fail("policy.golden.max_disagreement is a fraction in [0, 1]")
    end
    if seg then fail("policy.golden applies to classification only") end
  end
  p.budgets = p.budgets or {}
  p.eval_set = p.eval_set or {}
  p.eval_set.split = p.eval_set.split or "test"
  if p.eval_set.split ~= "test" and p.eval_set.split ~= "val" then fail("policy.eval_set.split must be 'test' or 'val'") end
  p.eval_set.seed = p.eval_set.seed or cfg.seed or 1
  p.default = is_default
  return p
end

-- ---------------------------------------------------------------- evaluation set

-- The pinned evaluation set: the experiment's data split with the policy's seed.
function M.eval_set(cfg, policy, opts)
  opts = opts or {}
  local exp = require "hs.experiment"
  local data = require "hs.data"
  local c = copy(cfg)
  c.model = cfg.model
  c.seed = policy.eval_set.seed
  local run = { cfg = c, quiet = true, cache_dir = opts.cache_dir or os.getenv("HISTOPS_CACHE") or "runs/.cache" }
  hs.sys.mkdir_p(run.cache_dir)
  local splits = exp.load_data(c, run)
  local ds = splits[policy.eval_set.split]
  if not ds or #ds.items == 0 then fail("evaluation set: the %s split is empty", policy.eval_set.split) end
  local fp = data.fingerprint(ds)
  if policy.eval_set.fingerprint and policy.eval_set.fingerprint ~= fp then
    fail("evaluation set changed: fingerprint %s, policy.eval_set.fingerprint pins %s", fp, policy.eval_set.fingerprint)
  end
  return { items = ds.items, classes = splits.train.classes or ds.classes, fingerprint = fp, split = policy.eval_set.split,
    seed = policy.eval_set.seed, n = #ds.items, segmentation = ds.segmentation or cfg.task == "segmentation",
    experiment = cfg.name }
end

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- Predictions of a loaded model (hs.model_io) on the evaluation set, with its own input pipeline.
function M.score(m, es)
  local exp = require "hs.experiment"
  local meta = m.meta
  local inp = meta.input
  local hw = (meta.pipeline and meta.pipeline.cache_size) or inp.size
  local C = inp.channels or 3
  local paths = {}
  for i, it in ipairs(es.items) do paths[i] = it.path end
  local cache, fails = hs.loader.fill_cache(paths, { height = hw[1], width = hw[2], channels = C })
  if #fails > 0 then fail("evaluation set: %d unreadable file(s), first %s (%s)", #fails, fails[1].path, fails[1].message) end
  require("hs.pipeline").apply_cache(meta.pipeline and meta.pipeline.preprocess, cache)
  local mcfg = { input = inp, seed = 0, augment = {}, eval = { threshold = 0.5 } }
  if es.segmentation then
    local mp = {}
    for i, it in ipairs(es.items) do mp[i] = it.mask end
    local masks, mf = hs.loader.fill_cache(mp, { height = hw[1], width = hw[2], channels = 1 })
    if #mf > 0 then fail("evaluation set: %d unreadable mask(s), first %s", #mf, mf[1].path) end
    local r = exp.eval_segmentation(m.model, mcfg, { cache = cache, masks = masks, n = #paths, items = es.items })
    local per = {}
    for i, x in ipairs(r.per_image) do per[i] = x.dice end
    local mt = { dice = r.overall.dice, iou = r.overall.iou, pixel_accuracy = r.overall.pixel_accuracy,
      mean_dice = r.mean_dice, mean_iou = r.mean_iou }
    return { per_image_dice = per, metrics = mt }
  end
  if not same_list(meta.classes or {}, es.classes or {}) then
    fail("model classes {%s} differ from the evaluation set's classes {%s}", table.concat(meta.classes or {}, ", "),
      table.concat(es.classes or {}, ", "))
  end
  local lab = {}
  for i, it in ipairs(es.items) do lab[i] = it.label end
  local part = { cache = cache, labels = hs.tensor(lab, "i64"), n = #paths, items = es.items }
  local k = #es.classes
  local yt, yp, pr = exp.predict_cache(m.model, mcfg, part, math.min(32, #paths))
  local r = metrics.classification(yt, yp, k, pr)
  local mt = { accuracy = r.accuracy, balanced_accuracy = r.balanced_accuracy, macro_f1 = r.macro_f1,
    roc_auc = r.roc_auc and r.roc_auc.macro, ece = r.ece, recall = {} }
  for c = 1, k do mt.recall[es.classes[c]] = r.per_class[c].recall end
  return { y_true = yt, y_pred = yp, probs = pr, metrics = mt, k = k }
end

-- statistic over an index subset, for the paired bootstrap
local function subset_stat(sc, metric)
  if sc.per_image_dice then
    local d = sc.per_image_dice
    return function(idx)
      local s = 0
      for _, i in ipairs(idx) do s = s + d[i] end
      return s / #idx
    end
  end
  local yt, yp, k = sc.y_true, sc.y_pred, sc.k
  if metric == "accuracy" then
    return function(idx)
      local c = 0
      for _, i in ipairs(idx) do if yt[i] == yp[i] then c = c + 1 end end
      return c / #idx
    end
  end
  return function(idx)
    local t, p = {}, {}
    for j, i in ipairs(idx) do t[j] = yt[i]; p[j] = yp[i] end
    return metrics.classification(t, p, k)[metric]
  end
end

-- ---------------------------------------------------------------- golden set

-- The golden items: { images = {HWC u8 tensors}, expected = {class names}, source = text }
function M.golden_set(cfg, g)
  local set = g.set or {}
  if set.path then
    local data = require "hs.data"
    local ds = data.folder(set.path)
    local images, expected = {}, {}
    for i, it in ipairs(ds.items) do
      local img, err = hs.image.load(it.path)
      if not img then fail("golden set: %s", err) end
      images[i], expected[i] = img, ds.classes[it.label + 1]
    end
    if #images == 0 then fail("golden set %s has no images", set.path) end
    return { images = images, expected = expected, source = set.path }
  end
  if cfg.data.kind ~= "synthetic_ihc" then
    fail("policy.golden.set.path is required (a folder with one sub-folder per class) for data.kind '%s'", tostring(cfg.data.kind))
  end
  local s = cfg.data.synthetic or {}
  local n, seed, size = set.tiles or 16, set.seed or 4242, set.size or s.size or 64
  local images, expected = {}, {}
  for i = 1, n do
    local positive = (i % 2 == 0)
    local rgb = hs.synth.ihc { width = size, height = size, nuclei = s.nuclei or 6, seed = seed * 100003 + i,
      positive_fraction = positive and 0.9 or 0.05, radius = s.radius or { 4, 7 }, noise = s.noise or 0.04 }
    images[i], expected[i] = rgb, positive and "positive" or "negative"
  end
  return { images = images, expected = expected, source = ("%d synthetic IHC tiles, seed %d"):format(n, seed) }
end

local function predicted_classes(m, images)
  local out = {}
  for i, r in ipairs(m:predict(images)) do out[i] = r.class end
  return out
end

-- ---------------------------------------------------------------- budgets

-- median wall time of preprocessing + forward pass of one image (model_io.batch, model(x)), ms
function M.latency_ms(m, image, runs)
  runs = runs or 10
  local function once() return m.model(m:batch({ image })) end
  for _ = 1, 2 do once() end
  local t = {}
  for i = 1, runs do
    local t0 = hs.sys.clock()
    once()
    t[i] = (hs.sys.clock() - t0) * 1000
  end
  table.sort(t)
  return (t[(runs + 1) // 2] + t[runs // 2 + 1]) / 2
end

local function model_size(m)
  local st = m.path and hs.sys.stat(m.path)
  return st and st.size or 0
end

-- ---------------------------------------------------------------- the gate

local function add(rules, r)
  if r.pass == nil then r.pass = true; r.na = true end
  rules[#rules + 1] = r
end

function M.evaluate(args)
  local cfg = assert(args.cfg, "gate.evaluate: cfg (the experiment) is required")
  local cand, inc = assert(args.candidate, "gate.evaluate: candidate model is required"), args.incumbent
  local policy = M.normalize(cfg.policy, cfg)
  local es = M.eval_set(cfg, policy, { cache_dir = args.cache_dir })
  local res = { policy = policy, eval = { n = es.n, fingerprint = es.fingerprint, split = es.split, seed = es.seed,
    experiment = es.experiment, classes = es.classes, segmentation = es.segmentation },
    candidate = { label = args.candidate_label or "candidate" }, incumbent = inc and { label = args.incumbent_label or "incumbent" },
    rules = {} }
  local csc = M.score(cand, es)
  res.candidate.metrics = csc.metrics
  local isc
  if inc then
    isc = M.score(inc, es)
    res.incumbent.metrics = isc.metrics
  end
  local rules = res.rules
  -- floors and ceilings
  local fkeys = {}
  for k in pairs(policy.floors) do fkeys[#fkeys + 1] = k end
  table.sort(fkeys)
  for _, k in ipairs(fkeys) do
    local v = csc.metrics[k]
    add(rules, { rule = "floor", what = k, requirement = ("%s >= %.4g"):format(k, policy.floors[k]),
      observed = v and ("%.4f"):format(v) or "n/a", pass = v ~= nil and v == v and v >= policy.floors[k] })
  end
  local ckeys = {}
  for k in pairs(policy.ceilings) do ckeys[#ckeys + 1] = k end
  table.sort(ckeys)
  for _, k in ipairs(ckeys) do
    local v = csc.metrics[k]
    add(rules, { rule = "ceiling", what = k, requirement = ("%s <= %.4g"):format(k, policy.ceilings[k]),
      observed = v and ("%.4f"):format(v) or "n/a", pass = v ~= nil and v == v and v <= policy.ceilings[k] })
  end
  -- per-class recall floors
  if policy.recall_floor then
    for _, c in ipairs(es.classes) do
      local f = type(policy.recall_floor) == "number" and policy.recall_floor or policy.recall_floor[c]
      if f then
        local v = csc.metrics.recall[c]
        add(rules, { rule = "recall floor", what = c, requirement = ("recall(%s) >= %.4g"):format(c, f),
          observed = ("%.4f"):format(v), pass = v >= f })
      end
    end
    if type(policy.recall_floor) == "table" then
      for c in pairs(policy.recall_floor) do
        if csc.metrics.recall[c] == nil then fail("policy.recall_floor: no class '%s' (classes: %s)", c, table.concat(es.classes, ", ")) end
      end
    end
  end
  -- non-inferiority against the incumbent
  if policy.non_inferiority then
    local ni = policy.non_inferiority
    local req = ("lower %g%% CI bound of Δ%s > -%.4g"):format(ni.level * 100, ni.metric, ni.delta)
    if not isc then
      add(rules, { rule = "non-inferiority", what = ni.metric, requirement = req, observed = "no incumbent", pass = nil })
    else
      local d = metrics.paired_difference(es.n, subset_stat(isc, ni.metric), subset_stat(csc, ni.metric),
        { samples = ni.samples, level = ni.level, seed = ni.seed or es.seed })
      res.non_inferiority = d
      add(rules, { rule = "non-inferiority", what = ni.metric, requirement = req,
        observed = ("Δ %+.4f [%+.4f, %+.4f]"):format(d.value, d.lo, d.hi), pass = d.lo > -ni.delta })
    end
  end
  -- golden set
  if policy.golden then
    local g = policy.golden
    local gs = M.golden_set(cfg, g)
    local cp = predicted_classes(cand, gs.images)
    local ref, against = gs.expected, "expected labels"
    if g.against == "incumbent" then
      ref, against = inc and predicted_classes(inc, gs.images), "the incumbent"
    end
    local req = ("disagreement with %s <= %.4g"):format(against, g.max_disagreement)
    if not ref then
      add(rules, { rule = "golden", what = "golden", requirement = req, observed = "no incumbent", pass = nil })
    else
      local bad = 0
      for i = 1, #cp do if cp[i] ~= ref[i] then bad = bad + 1 end end
      res.golden = { n = #cp, disagree = bad, source = gs.source }
      add(rules, { rule = "golden", what = "golden", requirement = req,
        observed = ("%d/%d disagree (%.4g)"):format(bad, #cp, bad / #cp), pass = bad / #cp <= g.max_disagreement })
      res.candidate.golden_disagreement = bad / #cp
    end
    if inc and g.against == "labels" then
      local ip = predicted_classes(inc, gs.images)
      local bad = 0
      for i = 1, #ip do if ip[i] ~= gs.expected[i] then bad = bad + 1 end end
      res.incumbent.golden_disagreement = bad / #ip
    end
  end
  -- budgets: latency on the first evaluation image, weights size, parameter count
  local img = hs.image.load(es.items[1].path)
  res.candidate.latency_ms = img and M.latency_ms(cand, img) or nil
  res.candidate.size_mb = model_size(cand) / 1e6
  res.candidate.params = cand.model:num_parameters()
  if inc then
    res.incumbent.latency_ms = img and M.latency_ms(inc, img) or nil
    res.incumbent.size_mb = model_size(inc) / 1e6
    res.incumbent.params = inc.model:num_parameters()
  end
  local b = policy.budgets
  if b.latency_ms then
    local v = res.candidate.latency_ms
    add(rules, { rule = "budget", what = "latency", requirement = ("latency <= %.4g ms"):format(b.latency_ms),
      observed = v and ("%.2f ms"):format(v) or "n/a", pass = v ~= nil and v <= b.latency_ms })
  end
  if b.size_mb then
    local v = res.candidate.size_mb
    add(rules, { rule = "budget", what = "size", requirement = ("size <= %.4g MB"):format(b.size_mb),
      observed = ("%.3f MB"):format(v), pass = v <= b.size_mb })
  end
  if b.params then
    local v = res.candidate.params
    add(rules, { rule = "budget", what = "params", requirement = ("parameters <= %d"):format(math.floor(b.params)),
      observed = tostring(v), pass = v <= b.params })
  end
  res.passed = true
  res.failed = {}
  for _, r in ipairs(rules) do
    if not r.pass then res.passed = false; res.failed[#res.failed + 1] = r end
  end
  return res
end

-- ---------------------------------------------------------------- the Markdown report

local function num(v, fmt)
  if type(v) ~= "number" or v ~= v then return "–" end
  return (fmt or "%.4f"):format(v)
end

local function delta(a, b, fmt)
  if type(a) ~= "number" or type(b) ~= "number" or a ~= a or b ~= b then return "" end
  return (fmt or "%+.4f"):format(a - b)
end

-- outcome: { status = "promoted" | "rejected" | "dry-run" | "error", name =, alias =, version =,
--            previous =, message = }
function M.report(res, outcome)
  outcome = outcome or {}
  local o = {}
  local function w(fmt, ...) o[#o + 1] = select("#", ...) > 0 and fmt:format(...) or fmt end
  local target = outcome.name and ("`%s@%s`"):format(outcome.name, outcome.alias or "production") or "the alias"
  w("### histops promotion gate: %s", target)
  w("")
  local nfail = #(res.failed or {})
  local st = outcome.status or (res.passed and "dry-run" or "rejected")
  if st == "promoted" then
    w("**Verdict: ✅ PROMOTED**: %s now points at version %s%s.", target, tostring(outcome.version),
      outcome.previous and (" (was version " .. outcome.previous .. ")") or " (first promotion)")
  elseif st == "dry-run" then
    if res.passed then
      w("**Verdict: ✅ PASSES**: every rule passes; %s would move on merge (dry run, nothing moved).", target)
    else
      w("**Verdict: ❌ REJECTED**: %d of %d rule(s) failed (dry run, nothing moved).", nfail, #res.rules)
    end
  elseif st == "error" then
    w("**Verdict: ⚠️ ERROR**: %s", outcome.message or "the gate could not finish")
  else
    w("**Verdict: ❌ REJECTED**: %d of %d rule(s) failed; %s did not move.", nfail, #res.rules, target)
  end
  w("")
  local inc = res.incumbent
  w("| | candidate (%s) | incumbent (%s) | Δ |", res.candidate.label, inc and inc.label or "none")
  w("|---|---:|---:|---:|")
  local cm, im = res.candidate.metrics or {}, inc and inc.metrics or {}
  local keys = res.eval.segmentation and { "dice", "iou", "pixel_accuracy", "mean_dice" }
    or { "accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "ece" }
  for _, k in ipairs(keys) do
    w("| %s | %s | %s | %s |", k, num(cm[k]), num(im[k]), delta(cm[k], im[k]))
  end
  if not res.eval.segmentation then
    for _, c in ipairs(res.eval.classes or {}) do
      local a, b = cm.recall and cm.recall[c], im.recall and im.recall[c]
      w("| recall %s | %s | %s | %s |", c, num(a), num(b), delta(a, b))
    end
  end
  if res.candidate.golden_disagreement or (inc and inc.golden_disagreement) then
    w("| golden disagreement | %s | %s | %s |", num(res.candidate.golden_disagreement),
      num(inc and inc.golden_disagreement), delta(res.candidate.golden_disagreement, inc and inc.golden_disagreement))
  end
  w("| latency (ms/image) | %s | %s | %s |", num(res.candidate.latency_ms, "%.2f"), num(inc and inc.latency_ms, "%.2f"),
    delta(res.candidate.latency_ms, inc and inc.latency_ms, "%+.2f"))
  w("| size (MB) | %s | %s | %s |", num(res.candidate.size_mb, "%.3f"), num(inc and inc.size_mb, "%.3f"),
    delta(res.candidate.size_mb, inc and inc.size_mb, "%+.3f"))
  w("| parameters | %s | %s | %s |", tostring(res.candidate.params or "–"), tostring(inc and inc.params or "–"),
    delta(res.candidate.params, inc and inc.params, "%+d"))
  w("")
  w("| rule | requirement | observed | verdict |")
  w("|---|---|---|---|")
  for _, r in ipairs(res.rules) do
    w("| %s | %s | %s | %s |", r.rule, r.requirement, r.observed, r.na and "➖ n/a" or (r.pass and "✅ pass" or "❌ fail"))
  end
  if #res.rules == 0 then w("| – | no rules | – | – |") end
  w("")
  local ni = res.policy and res.policy.non_inferiority
  w("<sub>Evaluation set: %s split of `%s` (seed %s), %d items, fingerprint `%s`.%s%s%s</sub>", res.eval.split,
    tostring(res.eval.experiment), tostring(res.eval.seed), res.eval.n, tostring(res.eval.fingerprint):sub(1, 16),
    ni and (" Non-inferiority: %d paired bootstrap resamples."):format(ni.samples) or "",
    res.golden and (" Golden set: %s."):format(res.golden.source) or "",
    res.policy and res.policy.default and " No policy declared in the experiment: default rule (non-inferiority, δ = 0.02)." or "")
  return table.concat(o, "\n") .. "\n"
end

-- JSON-able summary of a result (for --json and CI)
function M.summary(res, outcome)
  local rules = {}
  for i, r in ipairs(res.rules) do
    rules[i] = { rule = r.rule, what = r.what, requirement = r.requirement, observed = r.observed,
      verdict = r.na and "n/a" or (r.pass and "pass" or "fail") }
  end
  return { passed = res.passed, outcome = outcome, eval = res.eval, candidate = res.candidate, incumbent = res.incumbent,
    rules = rules, non_inferiority = res.non_inferiority, golden = res.golden }
end

return M
