-- lua/hs/cmd/monitor.lua: `histops monitor LOG... [--window 1h|1d|1w] [--since T] [--until T]
-- [--json] [--html FILE] [--baseline PATH | --model SPEC]`: read serve request logs, report per
-- window request/error rates, latency percentiles, prediction shift and input drift against the
-- training statistics stored with the model (meta "monitor") or run (run.json "monitor"), with
-- thresholds from the experiment's policy. Exit 0 when healthy, 3 on an alarm (drift or error
-- thresholds exceeded: cron/CI can trigger retraining), 2 on usage errors, 1 on other errors.
local M = { help = "drift and health report from serve request logs; exit 3 on alarm" }

local hs = require "histops"
local mon = require "hs.monitor"

local USAGE = [[
usage: histops monitor LOG... [options]
  --window W          window size: 30m, 1h (default), 1d, 1w, or seconds
  --since T, --until T  time range (2024-05-01, 2024-05-01T12:00:00Z, or epoch seconds)
  --baseline PATH     training statistics: a model file, a run folder, run.json or a JSON file
  --model SPEC        the same through a model spec (file, run folder, NAME@alias)
  --set KEY=VALUE     override a policy threshold (psi, ks, prediction_psi, error_rate,
                      latency_p95_ms, min_samples)
  --json              print the report as JSON
  --html FILE         write an HTML dashboard
exit status: 0 healthy, 3 alarm (drift or errors over the policy thresholds), 1 error, 2 usage
]]

local function decode(v)
  if type(v) == "string" then
    local ok, t = pcall(hs.json.decode, v)
    if ok then return t end
    return nil
  end
  return v
end

-- baseline statistics and policy from a model file / run folder / run.json / stats JSON
function M.load_baseline(path)
  local st = hs.sys.stat(path)
  if not st then return nil, nil, ("%s: not found"):format(path) end
  if st.type == "dir" then
    local rj = path:gsub("/+$", "") .. "/run.json"
    if hs.sys.stat(rj) then
      local rec = decode(hs.sys.read_file(rj))
      if rec and rec.monitor then return decode(rec.monitor), rec.params and rec.params.policy end
    end
    path = path:gsub("/+$", "") .. "/model.safetensors"
  end
  if path:match("%.json$") then
    local t = decode(hs.sys.read_file(path))
    if not t then return nil, nil, ("%s: not valid JSON"):format(path) end
    if t.monitor then return decode(t.monitor), t.params and t.params.policy or t.policy end
    if t.features then return t, t.policy end
    return nil, nil, ("%s: no training statistics (key 'monitor')"):format(path)
  end
  local _, meta = hs.io.load(path)
  if type(meta) ~= "table" then return nil, nil, tostring(meta) end
  local stats = decode(meta.monitor)
  if not stats then return nil, nil, ("%s: the model carries no training statistics (meta 'monitor')"):format(path) end
  local policy = decode(meta.policy)
  if not policy then
    local cfg = decode(meta.config)
    policy = cfg and cfg.policy
  end
  return stats, policy
end

function M.run(args)
  local logs, o, sets = {}, { window = "1h" }, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local function val()
      i = i + 1
      if not args[i] then error(a .. " needs a value", 0) end
      return args[i]
    end
    local ok, err = pcall(function()
      if a == "--window" then o.window = val()
      elseif a == "--since" then o.since = val()
      elseif a == "--until" then o["until"] = val()
      elseif a == "--baseline" then o.baseline = val()
      elseif a == "--model" then o.model = val()
      elseif a == "--html" then o.html = val()
      elseif a == "--set" then sets[#sets + 1] = val()
      elseif a == "--json" then o.json = true
      elseif a == "-h" or a == "--help" then o.help = true
      elseif a:sub(1, 2) == "--" then error("unknown option " .. a, 0)
      else logs[#logs + 1] = a end
    end)
    if not ok then io.stderr:write("histops monitor: ", err, "\n", USAGE); return 2 end
    i = i + 1
  end
  if o.help then io.stdout:write(USAGE); return 0 end
  if #logs == 0 then io.stderr:write(USAGE); return 2 end
  local window = mon.parse_window(o.window)
  if not window then io.stderr:write("histops monitor: bad --window ", o.window, "\n"); return 2 end
  local since, till = mon.parse_time(o.since), mon.parse_time(o["until"])
  if (o.since and not since) or (o["until"] and not till) then
    io.stderr:write("histops monitor: bad --since/--until time\n"); return 2
  end
  local baseline, policy, berr
  local bpath = o.baseline
  if not bpath and o.model then
    local p, e = require("hs.cmd.predict").resolve(o.model)
    if not p then io.stderr:write("histops monitor: ", tostring(e), "\n"); return 1 end
    bpath = p
  end
  if bpath then
    baseline, policy, berr = M.load_baseline(bpath)
    if not baseline then io.stderr:write("histops monitor: ", tostring(berr), "\n"); return 1 end
  end
  policy = policy or {}
  for _, s in ipairs(sets) do
    local k, v = s:match("^([%w_%.]+)=(.+)$")
    if not k or not tonumber(v) then io.stderr:write("histops monitor: bad --set ", s, "\n"); return 2 end
    local flat = {}
    for kk, vv in pairs(type(policy.monitor) == "table" and policy.monitor or policy) do flat[kk] = vv end
    flat[k:gsub("^policy%.", ""):gsub("^monitor%.", "")] = tonumber(v)
    policy = flat
  end
  local recs, bad = mon.read_logs(logs, { since = since, ["until"] = till })
  if not recs then io.stderr:write("histops monitor: ", tostring(bad), "\n"); return 1 end
  local rep = mon.analyze(recs, baseline, policy, { window = window })
  rep.bad_lines = bad
  if o.html then
    local okw, werr = hs.sys.write_file_atomic(o.html, mon.dashboard(rep, "histops monitor: " .. table.concat(logs, ", ")))
    if not okw then io.stderr:write("histops monitor: ", tostring(werr), "\n"); return 1 end
  end
  if o.json then
    local function clean(v)   -- NaN is not JSON; keep the array marks of hs.json.array
      if type(v) == "number" and v ~= v then return hs.json.null end
      if type(v) == "table" then
        local t = {}
        for k, x in pairs(v) do t[k] = clean(x) end
        return setmetatable(t, getmetatable(v))
      end
      return v
    end
    for _, w in ipairs(rep.windows) do w.alarms = hs.json.array(w.alarms) end
    if rep.overall then rep.overall.alarms = hs.json.array(rep.overall.alarms) end
    rep.windows = hs.json.array(rep.windows)
    print(hs.json.encode(clean(rep)))
  else
    print(("%d records in %d window(s) of %s%s%s"):format(rep.records, #rep.windows, o.window,
      bad > 0 and (", " .. bad .. " unreadable line(s)") or "", baseline and "" or " (no baseline: drift not checked)"))
    print(("%-17s %8s %7s %8s %8s %8s %8s %7s %7s  %s"):format("window (UTC)", "requests", "images", "req/s", "err",
      "p50 ms", "p95 ms", "maxPSI", "maxKS", "drift"))
    for _, w in ipairs(rep.windows) do
      local mp, mk = 0, 0
      for _, d in pairs(w.drift) do mp, mk = math.max(mp, d.psi), math.max(mk, d.ks) end
      print(("%-17s %8d %7d %8.3f %8.4f %8.1f %8.1f %7.3f %7.3f  %s"):format(os.date("!%Y-%m-%d %H:%M", math.floor(w.start)),
        w.requests, w.images, w.rate_per_s, w.error_rate, w.latency_ms.p50, w.latency_ms.p95, mp, mk, w.drift_status))
      for _, a in ipairs(w.alarms) do print("  ALARM " .. a) end
    end
    if rep.overall then for _, a in ipairs(rep.overall.alarms) do print("  ALARM (overall) " .. a) end end
    print(rep.alarm and "status: ALARM" or "status: ok")
  end
  return rep.alarm and 3 or 0
end

return M
