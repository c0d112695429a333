-- tests/lua/test_serve.lua: the inference service end to end. Trains two 1-epoch quickstart
-- models into a temp folder, serves one through a symlink (`histops serve --port 0` in the
-- background), then checks: predictions equal `histops predict` on the same images (single and
-- multipart); /metrics parses as Prometheus text format and its counters move; malformed
-- requests (garbage, truncated PNG, wrong content type, oversized body, unknown route, wrong
-- method) get 4xx JSON errors while the server keeps serving; the request log has one JSON line
-- per request; repointing the symlink (an alias move) reloads the model under load without a
-- failed request; SIGTERM drains in-flight requests (all answered 200) and the process exits.
-- Run: build/histops tests/lua/test_serve.lua
local hs = require "histops"
local json = hs.json
local S = hs.serve

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

if not S.available() then
  print("test_serve: skipped (built without libmicrohttpd)")
  return 0
end

local exe = hs.sys.exe()
local src = HISTOPS_SOURCE_DIR or "."
local tmp = T.tmpdir("serve")
local servers = {}
local sh, capture = T.sh, T.capture
local function cleanup()
  for _, pid in ipairs(servers) do os.execute("kill -9 " .. pid .. " 2>/dev/null") end
  os.execute("rm -rf " .. tmp)
end
local function alive(pid) return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true end

local ok_all, err_all = xpcall(function()
  -- ---- two small models
  local function train(seed)
    sh(("cd %s && %s run experiments/quickstart.lua --set train.epochs=1 --set seed=%d --out %s/runs --no-git --quiet > %s/train%d.log 2>&1")
      :format(src, exe, seed, tmp, tmp, seed))
    local p = capture(("ls -d %s/runs/quickstart/*/ | sort"):format(tmp))
    local dirs = {}
    for d in p:gmatch("[^\n]+") do dirs[#dirs + 1] = d end
    return dirs[#dirs]:gsub("/$", "") .. "/model.safetensors"
  end
  local model_a = train(1)
  local model_b = train(2)
  assert(model_a ~= model_b)
  local run_a = model_a:match("([^/]+)/model%.safetensors$")
  local run_b = model_b:match("([^/]+)/model%.safetensors$")
  local current = tmp .. "/current.safetensors"
  sh(("ln -sfn %s %s"):format(model_a, current))

  -- ---- test images
  local files = {}
  for i = 1, 6 do
    local rgb = hs.synth.ihc { width = 48, height = 48, nuclei = 6, seed = 5000 + i, positive_fraction = i % 2 == 0 and 0.9 or 0.05 }
    files[i] = ("%s/img%d.png"):format(tmp, i)
    hs.image.save(files[i], rgb)
  end
  local function bytes(p) return assert(hs.sys.read_file(p)) end

  -- ---- start a server
  local function start(name, extra)
    local pf = ("%s/%s.port"):format(tmp, name)
    local pid = capture(("%s serve --model %s --port 0 --port-file %s --log %s/%s.jsonl --poll 0.2 %s > %s/%s.out 2>&1 & echo $!")
      :format(exe, current, pf, tmp, name, extra or "", tmp, name)):match("%d+")
    servers[#servers + 1] = pid
    for _ = 1, 200 do
      if hs.sys.stat(pf) then break end
      hs.sys.sleep(0.05)
    end
    local port = math.tointeger(tonumber((hs.sys.read_file(pf) or ""):match("%d+") or ""))
    assert(port, "server did not start: " .. tostring(hs.sys.read_file(("%s/%s.out"):format(tmp, name))))
    return port, pid
  end
  local port, pid = start("main", "--max-body 200k --max-pixels 10000 --batch 8 --window 2")
  local function get(path) return assert(S.fetch { port = port, path = path }) end
  local function post(path, ctype, body, headers)
    local h = headers or {}
    h["Content-Type"] = ctype
    return assert(S.fetch { port = port, method = "POST", path = path, headers = h, body = body })
  end

  assert(get("/healthz").status == 200)
  assert(get("/readyz").status == 200)
  local models = json.decode(get("/v1/models").body)
  assert(models.models[1].version == run_a, "serving model A")

  -- ---- predictions equal `histops predict`
  local out = capture(("%s predict --model %s --json %s"):format(exe, model_a, table.concat(files, " ")))
  local ref = json.decode(out).predictions
  assert(#ref == #files)
  local function same(p, r, what)
    assert(p.class == r.class, ("%s: class %s vs predict %s"):format(what, p.class, r.class))
    for c, v in pairs(r.probabilities) do
      assert(math.abs(p.probabilities[c] - v) < 1e-5, ("%s: p(%s) %.7f vs %.7f"):format(what, c, p.probabilities[c], v))
    end
  end
  for i, f in ipairs(files) do
    local r = post("/v1/predict", "image/png", bytes(f))
    assert(r.status == 200, r.body)
    assert(r.content_type == "application/json")
    local b = json.decode(r.body)
    same(b, ref[i], f)
    assert(b.model.name == "quickstart" and b.model.version == run_a)
    assert(b.timing and b.timing.inference_ms >= 0)
  end
  -- multipart with every image: one request, one batch
  local boundary = "hsBoundary7"
  local parts = {}
  for i, f in ipairs(files) do
    parts[#parts + 1] = ('--%s\r\nContent-Disposition: form-data; name="file%d"; filename="img%d.png"\r\nContent-Type: image/png\r\n\r\n%s\r\n')
      :format(boundary, i, i, bytes(f))
  end
  local mp = table.concat(parts) .. "--" .. boundary .. "--\r\n"
  local r = post("/v1/predict", "multipart/form-data; boundary=" .. boundary, mp)
  assert(r.status == 200, r.body)
  local b = json.decode(r.body)
  assert(#b.predictions == #files)
  for i = 1, #files do
    same(b.predictions[i], ref[i], "multipart " .. i)
    assert(b.predictions[i].filename == ("img%d.png"):format(i))
  end
  -- segment (PNG mask + component count) and ihc
  r = post("/v1/segment", "image/png", bytes(files[1]))
  assert(r.status == 200 and r.content_type == "image/png")
  local mask = hs.image.decode(r.body)
  assert(mask:shape()[1] == 48 and mask:shape()[2] == 48)
  r = post("/v1/segment?format=json", "image/png", bytes(files[1]))
  b = json.decode(r.body)
  assert(r.status == 200 and b.results[1].components >= 1)
  r = post("/v1/ihc", "image/png", bytes(files[2]))
  assert(r.status == 200, r.body)
  b = json.decode(r.body)
  assert(b.results[1].count ~= nil or b.results[1].dab_od ~= nil)

  -- ---- /metrics: valid exposition format, counters move
  local function metrics()
    local m = get("/metrics")
    assert(m.status == 200)
    assert(m.content_type == "text/plain; version=0.0.4; charset=utf-8", m.content_type)
    local samples, types = {}, {}
    for line in m.body:gmatch("([^\n]*)\n") do
      if line:sub(1, 1) == "#" then
        local kind, name, rest = line:match("^# (%u+) ([%a_:][%w_:]*) (.*)$")
        assert(kind == "HELP" or kind == "TYPE", "bad comment line: " .. line)
        if kind == "TYPE" then
          assert(rest == "counter" or rest == "gauge" or rest == "histogram", line)
          types[name] = rest
        end
      else
        local name, labels, value = line:match("^([%a_:][%w_:]*)(%b{}) (%S+)$")
        if not name then name, value = line:match("^([%a_:][%w_:]*) (%S+)$"); labels = "" end
        assert(name, "bad sample line: " .. line)
        assert(tonumber(value) or value == "+Inf" or value == "-Inf" or value == "NaN", "bad value: " .. line)
        if labels ~= "" then
          local inner, pos = labels:sub(2, -2), 1
          while pos <= #inner do     -- name="value" with \\, \" and \n escapes, comma separated
            local e = inner:match('^[%a_][%w_]*="', pos)
            assert(e, "bad labels: " .. line)
            pos = pos + #e
            while inner:sub(pos, pos) ~= '"' do
              assert(pos <= #inner, "unterminated label value: " .. line)
              pos = pos + (inner:sub(pos, pos) == "\\" and 2 or 1)
            end
            pos = pos + 1
            if inner:sub(pos, pos) == "," then pos = pos + 1 end
          end
        end
        local base = name:gsub("_bucket$", ""):gsub("_sum$", ""):gsub("_count$", "")
        assert(types[name] or types[base], "sample without TYPE: " .. line)
        samples[name .. labels] = tonumber(value) or value
      end
    end
    return samples
  end
  local m1 = metrics()
  local key = 'histops_http_requests_total{route="/v1/predict",status="200"}'
  assert(m1[key] and m1[key] >= #files + 1, "predict counter")
  assert(m1['histops_model_info{name="quickstart",version="' .. run_a .. '"}'] == 1)
  assert(m1['histops_input_intensity_count{channel="r"}'] >= #files)
  assert(m1['histops_input_stain_od_count{stain="dab"}'] >= #files)
  local npred = (m1['histops_predictions_total{class="negative"}'] or 0) + (m1['histops_predictions_total{class="positive"}'] or 0)
  assert(npred == 2 * #files, "predictions by class: " .. npred)
  -- histogram buckets cumulative, +Inf equals count
  assert(m1['histops_http_request_duration_seconds_bucket{route="/v1/predict",le="+Inf"}'] ==
    m1['histops_http_request_duration_seconds_count{route="/v1/predict"}'])
  post("/v1/predict", "image/png", bytes(files[1]))
  local m2 = metrics()
  assert(m2[key] == m1[key] + 1, "the counter moved by one")

  -- ---- malformed requests: 4xx + JSON error, server keeps serving
  local function expect(status, resp)
    assert(resp.status == status, ("expected %d, got %d: %s"):format(status, resp.status, resp.body))
    local e = json.decode(resp.body)
    assert(type(e.error) == "string" and e.status == status)
  end
  expect(400, post("/v1/predict", "image/png", "this is not an image"))
  expect(400, post("/v1/predict", "image/png", bytes(files[1]):sub(1, 300)))
  expect(415, post("/v1/predict", "text/plain", "hello"))
  expect(413, post("/v1/predict", "image/png", ("x"):rep(300 * 1024)))
  -- an image over --max-pixels (here 10000) is refused from its header, before decoding
  local big = assert(hs.image.encode_png(hs.zeros({ 120, 100, 3 }, "u8")))
  expect(413, post("/v1/predict", "image/png", big))
  expect(404, get("/v1/nope"))
  expect(405, get("/v1/predict"))
  expect(400, post("/v1/predict", "multipart/form-data; boundary=zz", "--zz\r\nbroken"))
  r = post("/v1/predict", "image/png", bytes(files[3]))
  assert(r.status == 200, "still serving after bad requests")
  same(json.decode(r.body), ref[3], "after errors")

  -- ---- one JSON line per request in the log
  local logtext = assert(hs.sys.read_file(tmp .. "/main.jsonl"))
  local n, n413, npredlog = 0, 0, 0
  for line in logtext:gmatch("[^\n]+") do
    local rec = json.decode(line)
    n = n + 1
    assert(rec.time and rec.ts and rec.route and rec.status and rec.latency_ms)
    if rec.status == 413 then n413 = n413 + 1 end
    if rec.route == "/v1/predict" and rec.status == 200 then
      npredlog = npredlog + 1
      assert(rec.model_version == run_a and rec.predictions and rec.input and #rec.input == #rec.predictions)
      assert(rec.input[1].od and #rec.input[1].intensity == 3)
    end
  end
  assert(n413 == 2 and npredlog >= #files + 3, "log lines")

  -- ---- alias move under load: no failed request, new version served
  local loadfile = tmp .. "/load.lua"
  assert(hs.sys.write_file_atomic(loadfile, ([[
local hs = require "histops"
local port, n, conns, out, body = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]), arg[4], hs.sys.read_file(arg[5])
local r = hs.serve.loadtest { port = port, path = "/v1/predict", content_type = "image/png", body = body,
  connections = conns, requests = n }
hs.sys.write_file_atomic(out, hs.json.encode({ ok = r.ok, http_errors = r.http_errors, failures = r.failures, wall = r.wall }))
]])))
  sh(("(sleep 0.4; ln -sfn %s %s.new && mv -T %s.new %s) &"):format(model_b, current, current, current))
  local t0 = hs.sys.clock()
  local res
  repeat
    res = S.loadtest { port = port, path = "/v1/predict", content_type = "image/png", body = bytes(files[2]),
      connections = 4, requests = 200 }
    assert(res.failures == 0 and res.http_errors == 0, ("failed requests during reload: %d failures, %d errors")
      :format(res.failures, res.http_errors))
    models = json.decode(get("/v1/models").body)
  until models.models[1].version == run_b or hs.sys.clock() - t0 > 20
  assert(models.models[1].version == run_b, "model B after the move")
  local m3 = metrics()
  assert(m3["histops_model_reloads_total"] == 1)
  assert(m3['histops_model_info{name="quickstart",version="' .. run_b .. '"}'] == 1)
  local out_b = json.decode(capture(("%s predict --model %s --json %s"):format(exe, model_b, files[4]))).predictions[1]
  same(json.decode(post("/v1/predict", "image/png", bytes(files[4])).body), out_b, "after reload")
  local versions = {}
  for line in assert(hs.sys.read_file(tmp .. "/main.jsonl")):gmatch("[^\n]+") do
    local rec = json.decode(line)
    if rec.route == "/v1/predict" and rec.status == 200 then versions[rec.model_version] = true end
  end
  assert(versions[run_a] and versions[run_b], "both versions answered")

  -- ---- SIGTERM drains: requests in flight behind a slow (300 ms per batch) model are all answered
  local dport, dpid = start("drain", "--batch 2 --simulate-latency 300")
  sh(("%s %s %d 6 6 %s/drain_result.json %s > %s/drain_client.out 2>&1 &"):format(exe, loadfile, dport, tmp, files[1], tmp))
  hs.sys.sleep(0.2)
  sh("kill -TERM " .. dpid)
  local t_term = hs.sys.clock()
  local dres
  for _ = 1, 200 do
    local t = hs.sys.read_file(tmp .. "/drain_result.json")
    if t then dres = json.decode(t); break end
    hs.sys.sleep(0.05)
  end
  assert(dres, "load client finished")
  assert(hs.sys.clock() - t_term > 0.3, "the server kept answering after SIGTERM")
  assert(dres.ok == 6 and dres.failures == 0 and dres.http_errors == 0,
    ("drained: %d ok, %d errors, %d failures"):format(dres.ok, dres.http_errors, dres.failures))
  for _ = 1, 100 do if not alive(dpid) then break end hs.sys.sleep(0.05) end
  assert(not alive(dpid), "the server exits after draining")
  local dout = hs.sys.read_file(tmp .. "/drain.out")
  local inflight = math.tointeger(tonumber(dout:match("draining (%d+) in%-flight") or ""))
  assert(inflight and inflight >= 2 and dout:find("stopped"), dout)

  -- ---- the main server stops on SIGTERM too
  sh("kill -TERM " .. pid)
  for _ = 1, 100 do if not alive(pid) then break end hs.sys.sleep(0.05) end
  assert(not alive(pid), "main server exits")

  -- ---- argument errors
  local _, okc, code = capture(exe .. " serve --port 1 2>/dev/null")
  assert(not okc and code == 2, "--model is required")
  check_error("bad option 'port'", S.start, { port = 70000 })
  check_error("unknown option 'max_pixel'", S.start, { max_pixel = 4096 })   -- a typo, not a default
end, debug.traceback)
cleanup()
if not ok_all then error(err_all, 0) end
print("test_serve: ok")
