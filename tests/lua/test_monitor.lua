-- tests/lua/test_monitor.lua: drift monitoring (hs.monitor and `histops monitor`) on generated
-- request logs: training statistics of synthetic IHC tiles, then logs whose input statistics
-- come from new tiles of the same distribution (no alarm), from tiles with a shifted stain
-- (hematoxylin OD 0.55 -> 0.95 in the second hour: drift detected in that window only), with
-- 10% server errors, and with all predictions one class. Also PSI/KS on known samples, the JSON
-- and HTML outputs and the exit status (0 healthy, 3 alarm).
-- Run: build/histops tests/lua/test_monitor.lua
local hs = require "histops"
local json = hs.json
local mon = require "hs.monitor"

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

local tmp = T.tmpdir("monitor")
local exe = T.exe

local function tile(seed, hema)
  return (hs.synth.ihc { width = 32, height = 32, nuclei = 4, seed = seed, positive_fraction = (seed % 2 == 0) and 0.9 or 0.05,
    hema_od = hema or 0.55, noise = 0.04 })
end

-- ---- training statistics
local N = 240
local cache = hs.zeros({ N, 32, 32, 3 }, "u8")
local labels = {}
for i = 1, N do
  cache:select(1, i):copy(tile(i))
  labels[i] = i % 2 == 0 and 1 or 0
end
local stats = mon.training_stats(cache, hs.tensor(labels, "i64"), { "negative", "positive" })
assert(stats.images == N)
for _, f in ipairs(mon.FEATURES) do
  local s = stats.features[f]
  assert(#s.quantiles == 101, f)
  for k = 2, 101 do assert(s.quantiles[k] >= s.quantiles[k - 1], "quantiles sorted") end
  local total = 0
  for _, c in ipairs(s.hist.counts) do total = total + c end
  assert(total == N, "histogram holds every image")
end
assert(math.abs(stats.classes.negative - 0.5) < 1e-9 and math.abs(stats.classes.positive - 0.5) < 1e-9)
-- JSON-able (it is stored in run.json and the model metadata)
local back = json.decode(json.encode(stats))
assert(back.features.od_hematoxylin.mean == stats.features.od_hematoxylin.mean)
-- the per-image statistics are the ones the server logs (hs.serve.image_stats)
local st1 = hs.serve.image_stats(cache:select(1, 1))
assert(math.abs(st1.od[1]) < 1 and st1.intensity[1] > 0 and st1.intensity[1] <= 1)

-- ---- PSI and KS on known samples
do
  local q = {}
  for k = 0, 100 do q[k + 1] = k / 100 end        -- uniform(0,1) training distribution
  local same, shifted = {}, {}
  for i = 1, 1000 do same[i] = (i - 0.5) / 1000; shifted[i] = 0.3 + 0.7 * (i - 0.5) / 1000 end
  assert(mon.psi(q, same) < 0.01, "same distribution: PSI ~ 0")
  assert(mon.psi(q, shifted) > 0.25, "shifted distribution: PSI large")
  local d = mon.ks(q, same, 1000)
  assert(d < 0.01, "same distribution: KS ~ 0, got " .. d)
  local d2, crit = mon.ks(q, shifted, 1000)
  assert(math.abs(d2 - 0.3) < 0.01, "KS of the shifted uniform is 0.3, got " .. d2)
  assert(crit > 0.05 and crit < 0.1)
end

-- ---- log generation
local T0 = 1714557600   -- 2024-05-01T10:00:00Z
local function record(ts, img, opts)
  opts = opts or {}
  local st = hs.serve.image_stats(img)
  local cls = opts.class or "negative"
  return json.encode({ time = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(ts)), ts = ts, route = "/v1/predict", method = "POST",
    status = opts.status or 200, latency_ms = 5 + (ts % 7), model = "quickstart", model_version = "v1", images = 1,
    input = { { h = 32, w = 32, c = 3, intensity = st.intensity, od = st.od } },
    predictions = { { class = cls, confidence = 0.9 } } })
end

local function write_log(path, n_per_hour, hours, opts)
  local f = assert(io.open(path, "w"))
  local seed = 10000
  for h = 1, hours do
    for i = 1, n_per_hour do
      seed = seed + 1
      local ts = T0 + (h - 1) * 3600 + (i - 1) * (3600 / n_per_hour)
      local o = opts(h, i)
      o.class = o.class or (i % 2 == 0 and "positive" or "negative")   -- 50/50 as in training
      f:write(record(ts, tile(seed, o.hema), o), "\n")
    end
    f:write(json.encode({ time = "x", ts = T0 + (h - 1) * 3600 + 5, route = "/metrics", method = "GET", status = 200, latency_ms = 0.3 }), "\n")
  end
  f:write("not json at all\n")
  f:close()
end

local clean_log, drift_log, err_log, pred_log = tmp .. "/clean.jsonl", tmp .. "/drift.jsonl", tmp .. "/err.jsonl", tmp .. "/pred.jsonl"
write_log(clean_log, 120, 2, function() return {} end)
write_log(drift_log, 120, 2, function(h) return { hema = h == 2 and 0.95 or 0.55 } end)
write_log(err_log, 120, 1, function(_, i) return { status = i % 10 == 0 and 500 or 200 } end)
write_log(pred_log, 120, 1, function() return { class = "positive" } end)

-- ---- no drift: no alarm
local recs, bad = mon.read_logs({ clean_log })
assert(bad == 1, "the garbage line is counted, not fatal")
assert(#recs == 242)
local rep = mon.analyze(recs, stats, {}, { window = 3600 })
assert(#rep.windows == 2)
for _, w in ipairs(rep.windows) do
  assert(w.images == 120 and w.drift_status == "ok", w.drift_status)
  for f, d in pairs(w.drift) do assert(not d.drift, ("false drift alarm on %s: PSI %.3f KS %.3f"):format(f, d.psi, d.ks)) end
  assert(w.error_rate == 0)
  assert(w.latency_ms.p50 >= 5 and w.latency_ms.p99 <= 12)
end
assert(not rep.alarm, "clean logs must not raise an alarm")

-- ---- shifted stain in hour 2: detected there only
rep = mon.analyze(mon.read_logs({ drift_log }), stats, {}, { window = 3600 })
assert(#rep.windows[1].alarms == 0, "hour 1 is clean")
assert(rep.windows[2].drift_status == "drift", "hour 2 must be flagged")
assert(rep.windows[2].drift.od_hematoxylin.drift, "hematoxylin OD drift")
assert(rep.windows[2].drift.od_hematoxylin.psi > 0.25)
assert(rep.alarm)

-- ---- error rate and prediction shift
rep = mon.analyze(mon.read_logs({ err_log }), stats, {}, { window = 3600 })
assert(rep.alarm and rep.windows[1].error_rate > 0.05, "10% errors over the 5% default")
rep = mon.analyze(mon.read_logs({ err_log }), stats, { monitor = { error_rate = 0.2 } }, { window = 3600 })
assert(not rep.alarm, "policy threshold 20% errors: no alarm")
rep = mon.analyze(mon.read_logs({ pred_log }), stats, {}, { window = 3600 })
assert(rep.windows[1].prediction_psi > 0.25 and rep.alarm, "all-positive predictions vs 50/50 training")

-- ---- windows, time range, parsing
assert(mon.parse_window("1h") == 3600 and mon.parse_window("1d") == 86400 and mon.parse_window("1w") == 604800)
assert(mon.parse_window("30m") == 1800 and mon.parse_window("bogus") == nil)
assert(mon.parse_time("2024-05-01T10:00:00Z") == T0)
assert(mon.parse_time("2024-05-01") == T0 - 10 * 3600)
recs = mon.read_logs({ drift_log }, { since = T0 + 3600 })
assert(#recs == 121)
rep = mon.analyze(recs, stats, {}, { window = 86400 })
assert(#rep.windows == 1 and rep.alarm)

-- ---- the command: exit status, JSON, HTML, baseline file
local base = tmp .. "/baseline.json"
assert(hs.sys.write_file_atomic(base, json.encode({ monitor = stats, policy = { monitor = { psi = 0.25 } } })))
local function run(args)
  local ok, _, code = os.execute(("%s monitor %s > %s/out.txt 2>&1"):format(exe, args, tmp))
  return ok and 0 or code, hs.sys.read_file(tmp .. "/out.txt")
end
local code, out = run(clean_log .. " --baseline " .. base)
assert(code == 0, "clean log: exit 0, got " .. tostring(code) .. "\n" .. out)
assert(out:find("status: ok"))
code, out = run(drift_log .. " --baseline " .. base .. " --window 1h --html " .. tmp .. "/dash.html")
assert(code == 3, "drift: exit 3, got " .. tostring(code) .. "\n" .. out)
assert(out:find("ALARM input drift in od_hematoxylin"))
local html = assert(hs.sys.read_file(tmp .. "/dash.html"))
assert(html:find("<svg") and html:find("input drift: PSI") and html:find("ALARM"))
code, out = run(drift_log .. " --baseline " .. base .. " --until 2024-05-01T11:00:00Z --json")
assert(code == 0, "only the clean hour: exit 0\n" .. out)
local j = json.decode(out)
assert(j.alarm == false and #j.windows == 1 and j.windows[1].images == 120)
code = run(err_log .. " --baseline " .. base .. " --set error_rate=0.5")
assert(code == 0, "--set raises the error threshold")
code = run(err_log)
assert(code == 3, "errors alarm without a baseline too")
code = run("")
assert(code == 2, "usage error")
code = run(tmp .. "/missing.jsonl")
assert(code == 1, "missing log: exit 1")
check_error("needs a value", function() error("--window needs a value", 0) end)

os.execute("rm -rf " .. tmp)
print("test_monitor: ok")
