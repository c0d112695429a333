-- lua/hs/cmd/loadtest.lua: `histops loadtest --port P [--host H] [--path /v1/predict]
-- [--requests N] [--connections C] [--image FILE] [--json]`: a bounded load test against a
-- running `histops serve` (keep-alive connections, one thread each, in C: hs.serve.loadtest);
-- prints throughput and latency percentiles. Used by scripts/loadtest. Not a benchmark of the
-- model alone (that is `histops predict`).
local M = { help = "load-test a running server: --port P [--requests N] [--connections C] [--image FILE]" }

local hs = require "histops"

local function pct(sorted, p)
  if #sorted == 0 then return 0 / 0 end
  local pos = p / 100 * (#sorted - 1) + 1
  local lo = math.floor(pos)
  local hi = math.min(lo + 1, #sorted)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
end

function M.run(args)
  local o = { host = "127.0.0.1", path = "/v1/predict", requests = 500, connections = 4 }
  local i = 1
  while i <= #args do
    local a, v = args[i], args[i + 1]
    if a == "--port" then o.port = math.tointeger(tonumber(v or "")); i = i + 1
    elseif a == "--host" then o.host = v; i = i + 1
    elseif a == "--path" then o.path = v; i = i + 1
    elseif a == "--requests" then o.requests = math.tointeger(tonumber(v or "")); i = i + 1
    elseif a == "--connections" then o.connections = math.tointeger(tonumber(v or "")); i = i + 1
    elseif a == "--image" then o.image = v; i = i + 1
    elseif a == "--json" then o.json = true
    else io.stderr:write("histops loadtest: unknown argument ", a, "\n"); return 2 end
    i = i + 1
  end
  if not o.port or not o.requests or o.requests < 1 or o.requests > 1000000 or not o.connections
    or o.connections < 1 or o.connections > 256 or not o.host or not o.path then
    io.stderr:write("usage: histops loadtest --port P [--host H] [--path /v1/predict] [--requests N<=1e6] ",
      "[--connections C<=256] [--image FILE] [--json]\n")
    return 2
  end
  local body
  if o.image then
    body = hs.sys.read_file(o.image)
    if not body then io.stderr:write("histops loadtest: cannot read ", o.image, "\n"); return 1 end
  else
    body = hs.image.encode_png(hs.synth.ihc { width = 64, height = 64, nuclei = 8, seed = 1 })
  end
  local ctype = body:sub(1, 4) == "\137PNG" and "image/png" or "image/jpeg"
  local r = hs.serve.loadtest { host = o.host, port = o.port, path = o.path, content_type = ctype, body = body,
    connections = o.connections, requests = o.requests }
  local lat = r.latencies
  table.sort(lat)
  local res = { requests = o.requests, connections = o.connections, ok = r.ok, http_errors = r.http_errors,
    failures = r.failures, seconds = r.wall, throughput_rps = r.ok / math.max(r.wall, 1e-9),
    p50_ms = pct(lat, 50) * 1000, p95_ms = pct(lat, 95) * 1000, p99_ms = pct(lat, 99) * 1000,
    max_ms = (lat[#lat] or 0 / 0) * 1000, body_bytes = #body }
  if o.json then
    for k, v in pairs(res) do if v ~= v then res[k] = hs.json.null end end
    print(hs.json.encode(res))
  else
    print(("%d requests over %d connections in %.2f s: %d ok, %d HTTP errors, %d failures"):format(o.requests,
      o.connections, r.wall, r.ok, r.http_errors, r.failures))
    print(("throughput %.1f requests/s   latency p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms"):format(
      res.throughput_rps, res.p50_ms, res.p95_ms, res.p99_ms, res.max_ms))
  end
  return (r.failures > 0 or r.http_errors > 0) and 1 or 0
end

return M
