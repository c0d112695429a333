-- lua/hs/monitor.lua: production monitoring of a served model from its request logs (the JSON
-- lines written by `histops serve`): per time window, request rate, error rate, latency
-- percentiles, the prediction distribution against the training class distribution, and input
-- drift of per-image features (mean RGB intensity, mean H/E/DAB optical density) against the
-- statistics recorded at training time: population stability index (PSI, on the training
-- deciles) and the two-sample Kolmogorov-Smirnov statistic. Alarms use the experiment's policy.
-- Not the log writer (core/reqlog.c) and not a scheduler: `histops monitor` exits 3 on alarm.
--
--   M.training_stats(cache_u8, labels, classes) -> JSON-able table (stored with the model/run)
--   M.read_logs(paths, {since=, ["until"]=}) -> records, bad_lines
--   M.analyze(records, baseline, policy, {window = seconds}) -> report
--   M.psi(quantiles, values), M.ks(quantiles, values, n_train), M.dashboard(report) -> html
local hs = require "histops"

local M = {}

M.FEATURES = { "intensity_r", "intensity_g", "intensity_b", "od_hematoxylin", "od_eosin", "od_dab" }
local HIST_RANGE = { intensity = { 0, 1, 20 }, od = { 0, 0.2, 20 } }

-- thresholds used when the experiment's policy does not set them (policy.monitor.* or policy.*)
M.DEFAULT_POLICY = {
  psi = 0.25,              -- input feature PSI above this is drift
  ks = 0.2,                -- KS statistic above this (and above the 1% critical value) is drift
  prediction_psi = 0.25,   -- PSI of the predicted class distribution vs training
  error_rate = 0.05,       -- share of 5xx answers on model routes
  latency_p95_ms = nil,    -- optional latency objective
  min_samples = 50,        -- fewer images in a window: no drift verdict
}

local function features_of(st)
  return { st.intensity[1], st.intensity[2], st.intensity[3], st.od[1], st.od[2], st.od[3] }
end

local function quantiles(sorted, k)
  local q, n = {}, #sorted
  for i = 0, k do
    local pos = i / k * (n - 1) + 1
    local lo = math.floor(pos)
    local hi = math.min(lo + 1, n)
    local f = pos - lo
    q[i + 1] = sorted[lo] * (1 - f) + sorted[hi] * f
  end
  return q
end

local function histogram(values, lo, hi, bins)
  local counts = {}
  for b = 1, bins do counts[b] = 0 end
  for _, v in ipairs(values) do
    local b = math.floor((v - lo) / (hi - lo) * bins) + 1
    counts[math.max(1, math.min(bins, b))] = counts[math.max(1, math.min(bins, b))] + 1
  end
  local edges = {}
  for b = 0, bins do edges[b + 1] = lo + (hi - lo) * b / bins end
  return { edges = edges, counts = counts }
end

-- Statistics of the training images that monitoring compares against. cache_u8: (N,H,W,C) u8
-- (the decoded training cache); labels: (N) i64 0-based class indices or nil; classes: names.
-- At most 2000 images (evenly spaced) are measured.
function M.training_stats(cache, labels, classes)
  local n = cache:shape()[1]
  local step = math.max(1, n // 2000)
  local cols = {}
  for f = 1, #M.FEATURES do cols[f] = {} end
  for i = 1, n, step do
    local fv = features_of(hs.serve.image_stats(cache:select(1, i)))
    for f = 1, #fv do cols[f][#cols[f] + 1] = fv[f] end
  end
  local out = { version = 1, images = #cols[1], features = {} }
  for f, name in ipairs(M.FEATURES) do
    local v = cols[f]
    table.sort(v)
    local s, s2 = 0, 0
    for _, x in ipairs(v) do s, s2 = s + x, s2 + x * x end
    local mean = s / #v
    local r = HIST_RANGE[name:match("^(%a+)_")]
    out.features[name] = { quantiles = quantiles(v, 100), mean = mean,
      std = math.sqrt(math.max(0, s2 / #v - mean * mean)), hist = histogram(v, r[1], r[2], r[3]) }
  end
  if labels then
    local counts, total = {}, 0
    local t = labels:tolist()
    for _, c in ipairs(t) do
      local name = classes and classes[c + 1] or tostring(c)
      counts[name] = (counts[name] or 0) + 1
      total = total + 1
    end
    local frac = {}
    for k, c in pairs(counts) do frac[k] = c / total end
    out.class_counts, out.classes = counts, frac
  end
  return out
end

-- ---------------------------------------------------------------- drift statistics

-- training CDF at x from its quantiles (piecewise linear between quantile points)
local function cdf(q, x)
  local k = #q - 1
  if x < q[1] then return 0 end
  if x >= q[#q] then return 1 end
  local lo, hi = 1, #q
  while hi - lo > 1 do
    local mid = (lo + hi) // 2
    if q[mid] <= x then lo = mid else hi = mid end
  end
  local span = q[hi] - q[lo]
  local f = span > 0 and (x - q[lo]) / span or 1
  return ((lo - 1) + f) / k
end

-- PSI of values against the training distribution, binned at the training deciles.
function M.psi(q, values)
  if #values == 0 then return 0 / 0 end
  local k = #q - 1
  local edges = {}
  for d = 1, 9 do
    local e = q[1 + d * k // 10]
    if #edges == 0 or e > edges[#edges] then edges[#edges + 1] = e end
  end
  local nb = #edges + 1
  local exp, act = {}, {}
  local prev = 0
  for b = 1, nb do
    local c = b <= #edges and cdf(q, edges[b]) or 1
    exp[b], prev = c - prev, c
    act[b] = 0
  end
  for _, v in ipairs(values) do
    local b = 1
    while b <= #edges and v > edges[b] do b = b + 1 end
    act[b] = act[b] + 1
  end
  local psi, eps = 0, 1e-4
  for b = 1, nb do
    local e = math.max(exp[b], eps)
    local a = math.max(act[b] / #values, eps)
    psi = psi + (a - e) * math.log(a / e)
  end
  return psi
end

-- KS statistic sup |F_train - F_live| (F_train from the quantiles) and the 1% critical value
-- for sample sizes n_live and n_train.
function M.ks(q, values, n_train)
  local n = #values
  if n == 0 then return 0 / 0, 1 end
  local v = {}
  for i, x in ipairs(values) do v[i] = x end
  table.sort(v)
  local d = 0
  for i, x in ipairs(v) do
    local f = cdf(q, x)
    d = math.max(d, math.abs(i / n - f), math.abs((i - 1) / n - f))
  end
  local m = n_train or 1e9
  return d, 1.63 * math.sqrt((n + m) / (n * m))
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 / 0 end
  local pos = p / 100 * (#sorted - 1) + 1
  local lo = math.floor(pos)
  local hi = math.min(lo + 1, #sorted)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
end

-- ---------------------------------------------------------------- logs

-- "2024-05-01", "2024-05-01T12:00:00Z", "2024-05-01 12:00", or epoch seconds -> epoch seconds
function M.parse_time(s)
  if s == nil then return nil end
  local n = tonumber(s)
  if n then return n end
  local y, mo, d, rest = s:match("^(%d%d%d%d)-(%d%d)-(%d%d)(.*)$")
  if not y then return nil end
  local h, mi, se = rest:match("^[T ](%d%d):(%d%d):?(%d?%d?)")
  local t = { year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h) or 0,
    min = tonumber(mi) or 0, sec = tonumber(se) or 0, isdst = false }
  -- os.time reads local time; correct by the local offset of that moment to get UTC
  local lt = os.time(t)
  local utc = os.time(os.date("!*t", lt))
  return lt + (lt - utc)
end

function M.parse_window(s)
  if type(s) == "number" then return s end
  local n, u = tostring(s):match("^(%d*%.?%d+)([smhdw]?)$")
  n = tonumber(n)
  if not n or n <= 0 then return nil end
  return n * ({ s = 1, m = 60, h = 3600, d = 86400, w = 604800 })[u ~= "" and u or "s"]
end

function M.read_logs(paths, opts)
  opts = opts or {}
  local recs, bad = {}, 0
  for _, p in ipairs(paths) do
    local f, err = io.open(p, "r")
    if not f then return nil, err end
    for line in f:lines() do
      local ok, r = pcall(hs.json.decode, line)
      if ok and type(r) == "table" and tonumber(r.ts) then
        r.ts = tonumber(r.ts)
        if (not opts.since or r.ts >= opts.since) and (not opts["until"] or r.ts < opts["until"]) then recs[#recs + 1] = r end
      elseif line:match("%S") then
        bad = bad + 1
      end
    end
    f:close()
  end
  table.sort(recs, function(a, b) return a.ts < b.ts end)
  return recs, bad
end

-- ---------------------------------------------------------------- analysis

local MODEL_ROUTES = { ["/v1/predict"] = true, ["/v1/segment"] = true, ["/v1/ihc"] = true }

local function merged_policy(policy)
  local p = {}
  for k, v in pairs(M.DEFAULT_POLICY) do p[k] = v end
  policy = policy or {}
  local src = type(policy.monitor) == "table" and policy.monitor or policy
  for k in pairs(M.DEFAULT_POLICY) do if src[k] ~= nil then p[k] = src[k] end end
  for k, v in pairs(src) do if type(v) == "number" and p[k] == nil then p[k] = v end end
  return p
end

local function analyze_window(recs, t0, t1, baseline, pol)
  local w = { start = t0, ["end"] = t1, requests = #recs, model_requests = 0, errors = 0, client_errors = 0,
    images = 0, alarms = {}, drift = {}, predictions = {}, versions = {} }
  local lat, feats, classes, npred = {}, {}, {}, 0
  for f = 1, #M.FEATURES do feats[f] = {} end
  for _, r in ipairs(recs) do
    if MODEL_ROUTES[r.route] then
      w.model_requests = w.model_requests + 1
      local st = tonumber(r.status) or 0
      if st >= 500 then w.errors = w.errors + 1 elseif st >= 400 then w.client_errors = w.client_errors + 1 end
      if st == 200 then lat[#lat + 1] = tonumber(r.latency_ms) or 0 end
      if r.model_version and r.model_version ~= "" then w.versions[r.model_version] = (w.versions[r.model_version] or 0) + 1 end
      for _, inp in ipairs(type(r.input) == "table" and r.input or {}) do
        if type(inp.intensity) == "table" and type(inp.od) == "table" then
          local fv = features_of(inp)
          for f = 1, #fv do feats[f][#feats[f] + 1] = tonumber(fv[f]) end
          w.images = w.images + 1
        end
      end
      for _, p in ipairs(type(r.predictions) == "table" and r.predictions or {}) do
        if p.class then classes[p.class] = (classes[p.class] or 0) + 1; npred = npred + 1 end
      end
    end
  end
  local span = math.max(t1 - t0, 1e-9)
  w.rate_per_s = #recs / span
  w.error_rate = w.model_requests > 0 and w.errors / w.model_requests or 0
  table.sort(lat)
  w.latency_ms = { p50 = percentile(lat, 50), p95 = percentile(lat, 95), p99 = percentile(lat, 99), n = #lat }
  for c, k in pairs(classes) do w.predictions[c] = k / npred end
  w.prediction_count = npred
  if w.model_requests > 0 and w.error_rate > pol.error_rate then
    w.alarms[#w.alarms + 1] = ("error rate %.3f > %.3f"):format(w.error_rate, pol.error_rate)
  end
  if pol.latency_p95_ms and #lat > 0 and w.latency_ms.p95 > pol.latency_p95_ms then
    w.alarms[#w.alarms + 1] = ("p95 latency %.1f ms > %.1f ms"):format(w.latency_ms.p95, pol.latency_p95_ms)
  end
  if not baseline then w.drift_status = "no baseline"; return w end
  if w.images < pol.min_samples then
    w.drift_status = ("insufficient data (%d < %d images)"):format(w.images, pol.min_samples)
    return w
  end
  w.drift_status = "ok"
  for f, name in ipairs(M.FEATURES) do
    local b = baseline.features and baseline.features[name]
    if b and b.quantiles then
      local psi = M.psi(b.quantiles, feats[f])
      local ks, crit = M.ks(b.quantiles, feats[f], baseline.images)
      local mean = 0
      for _, x in ipairs(feats[f]) do mean = mean + x end
      mean = mean / #feats[f]
      local drift = psi > pol.psi or (ks > pol.ks and ks > crit)
      w.drift[name] = { psi = psi, ks = ks, ks_critical = crit, mean = mean, train_mean = b.mean, drift = drift }
      if drift then
        w.alarms[#w.alarms + 1] = ("input drift in %s: PSI %.3f, KS %.3f (mean %.4f, training %.4f)")
          :format(name, psi, ks, mean, b.mean or 0 / 0)
        w.drift_status = "drift"
      end
    end
  end
  if baseline.classes and npred >= pol.min_samples then
    local psi, eps = 0, 1e-4
    local names = {}
    for c in pairs(baseline.classes) do names[c] = true end
    for c in pairs(w.predictions) do names[c] = true end
    for c in pairs(names) do
      local e = math.max(baseline.classes[c] or 0, eps)
      local a = math.max(w.predictions[c] or 0, eps)
      psi = psi + (a - e) * math.log(a / e)
    end
    w.prediction_psi = psi
    if psi > pol.prediction_psi then
      w.alarms[#w.alarms + 1] = ("prediction distribution shift: PSI %.3f > %.3f"):format(psi, pol.prediction_psi)
      w.drift_status = "drift"
    end
  end
  return w
end

-- report: { windows = {...}, overall = window, alarm = bool, policy = ... }
function M.analyze(recs, baseline, policy, opts)
  opts = opts or {}
  local pol = merged_policy(policy)
  local size = opts.window or 3600
  local out = { policy = pol, window_seconds = size, windows = {}, alarm = false, records = #recs,
    baseline_images = baseline and baseline.images or 0 }
  if #recs == 0 then return out end
  local first = math.floor(recs[1].ts / size) * size
  local cur, bucket = nil, {}
  local function flush()
    if cur then out.windows[#out.windows + 1] = analyze_window(bucket, cur, cur + size, baseline, pol) end
  end
  for _, r in ipairs(recs) do
    local b = first + math.floor((r.ts - first) / size) * size
    if b ~= cur then flush(); cur, bucket = b, {} end
    bucket[#bucket + 1] = r
  end
  flush()
  out.overall = analyze_window(recs, recs[1].ts, math.max(recs[#recs].ts, recs[1].ts + 1), baseline, pol)
  for _, w in ipairs(out.windows) do if #w.alarms > 0 then out.alarm = true end end
  if #out.overall.alarms > 0 then out.alarm = true end
  return out
end

-- ---------------------------------------------------------------- dashboard

function M.dashboard(rep, title)
  local R = require "hs.report"
  local sections = {}
  local ov = rep.overall or {}
  local status = rep.alarm and "ALARM" or "ok"
  local rows = { { "status", status }, { "records", rep.records }, { "windows", #rep.windows },
    { "window (s)", rep.window_seconds }, { "training images (baseline)", rep.baseline_images } }
  if ov.latency_ms then
    rows[#rows + 1] = { "error rate", ov.error_rate or 0 }
    rows[#rows + 1] = { "latency p50/p95/p99 (ms)", ("%.1f / %.1f / %.1f"):format(ov.latency_ms.p50, ov.latency_ms.p95, ov.latency_ms.p99) }
  end
  sections[#sections + 1] = { title = "Summary", html = R.table({ "", "" }, rows) }
  local alarms = {}
  for _, w in ipairs(rep.windows) do
    for _, a in ipairs(w.alarms) do alarms[#alarms + 1] = { os.date("!%Y-%m-%d %H:%M", math.floor(w.start)), a } end
  end
  for _, a in ipairs(ov.alarms or {}) do alarms[#alarms + 1] = { "overall", a } end
  sections[#sections + 1] = { title = "Alarms", html = #alarms > 0 and R.table({ "window", "alarm" }, alarms) or "<p>none</p>" }
  local function series(name, get)
    local pts = {}
    for _, w in ipairs(rep.windows) do
      local v = get(w)
      if v and v == v then pts[#pts + 1] = { (w.start - rep.windows[1].start) / 3600, v } end
    end
    return { name = name, points = pts }
  end
  local charts = {
    R.line_chart { title = "requests per second", xlabel = "hours", series = { series("rate", function(w) return w.rate_per_s end) } },
    R.line_chart { title = "error rate (5xx)", xlabel = "hours", ymin = 0, series = { series("errors", function(w) return w.error_rate end) } },
    R.line_chart { title = "latency (ms)", xlabel = "hours", series = {
      series("p50", function(w) return w.latency_ms.p50 end), series("p95", function(w) return w.latency_ms.p95 end),
      series("p99", function(w) return w.latency_ms.p99 end) } },
  }
  local psi_series, ks_series = {}, {}
  for _, f in ipairs(M.FEATURES) do
    psi_series[#psi_series + 1] = series(f, function(w) return w.drift[f] and w.drift[f].psi end)
    ks_series[#ks_series + 1] = series(f, function(w) return w.drift[f] and w.drift[f].ks end)
  end
  charts[#charts + 1] = R.line_chart { title = "input drift: PSI (threshold " .. rep.policy.psi .. ")", xlabel = "hours", ymin = 0, series = psi_series }
  charts[#charts + 1] = R.line_chart { title = "input drift: KS statistic", xlabel = "hours", ymin = 0, series = ks_series }
  local classes = {}
  for _, w in ipairs(rep.windows) do for c in pairs(w.predictions) do classes[c] = true end end
  local cs = {}
  for c in pairs(classes) do cs[#cs + 1] = series(c, function(w) return w.predictions[c] or 0 end) end
  table.sort(cs, function(a, b) return a.name < b.name end)
  if #cs > 0 then charts[#charts + 1] = R.line_chart { title = "predicted class share", xlabel = "hours", ymin = 0, ymax = 1, series = cs } end
  sections[#sections + 1] = { title = "Charts", html = '<div class="charts">' .. table.concat(charts, "\n") .. "</div>" }
  local wrows = {}
  for _, w in ipairs(rep.windows) do
    local maxpsi, maxks = 0, 0
    for _, d in pairs(w.drift) do maxpsi, maxks = math.max(maxpsi, d.psi), math.max(maxks, d.ks) end
    wrows[#wrows + 1] = { os.date("!%Y-%m-%d %H:%M", math.floor(w.start)), w.requests, w.images, w.error_rate,
      w.latency_ms.p95 == w.latency_ms.p95 and w.latency_ms.p95 or "-", maxpsi, maxks, w.drift_status }
  end
  sections[#sections + 1] = { title = "Windows", html = R.table({ "start (UTC)", "requests", "images", "error rate",
    "p95 ms", "max PSI", "max KS", "drift" }, wrows) }
  return R.page(title or "histops monitor", sections)
end

return M
