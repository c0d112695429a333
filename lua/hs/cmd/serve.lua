-- lua/hs/cmd/serve.lua: `histops serve --model SPEC [--host 127.0.0.1] [--port 8080] [--threads N]
-- [...]`: the inference service. The C side (core/httpd.c via hs.serve) accepts connections,
-- validates and decodes requests, computes input statistics, answers health/metrics/models, and
-- queues model work; this loop pops whatever arrived together (a short batching window), runs
-- the model once for the whole batch (hs/cmd/predict.lua's code path), answers each request,
-- polls the registry between batches and swaps the model when the alias (or file) moves, and on
-- SIGTERM drains in-flight requests before stopping. Not the HTTP parser and not the model.
local M = { help = "HTTP inference service: --model NAME@alias|FILE [--host H] [--port P] [--threads N]" }

local hs = require "histops"
local engine_mod = require "hs.cmd.predict"
local json = hs.json

local USAGE = [[
usage: histops serve --model SPEC [options]
  --model SPEC          model file, run folder, or NAME@alias (registry; polled for moves)
  --host ADDR           bind address (default 127.0.0.1; 0.0.0.0 to listen on all interfaces)
  --port N              TCP port (default 8080; 0 = ephemeral, see --port-file)
  --threads N           compute threads for the model (default: HISTOPS_THREADS or all cores)
  --batch N             most images per model batch (default 32)
  --window MS           batching window after the first request of a batch (default 2)
  --queue N             queued requests before 503 (default 64)
  --max-body BYTES      request body limit, suffixes k/m (default 16m)
  --max-images N        images per multipart request (default 16)
  --max-pixels N        pixels per image, from its header before decoding (413 above; default 33554432)
  --timeout S           seconds a request waits for the model before 504 (default 30)
  --log FILE|none       JSON-lines request log (default requests.jsonl)
  --log-max-bytes B     rotate the log at this size, suffixes k/m (default 10m)
  --log-keep N          rotated logs kept (default 5)
  --poll S              seconds between registry/file checks for a new model (default 5)
  --drain-timeout S     on SIGTERM, wait at most this long for in-flight requests (default 30)
  --port-file FILE      write the bound port there once listening
  --simulate-latency MS add MS to every batch (testing timeouts and draining)
]]

local function size_arg(s)
  if not s then return nil end
  local n, suf = s:lower():match("^(%d+)([km]?)b?$")
  n = tonumber(n)
  if not n then return nil end
  return math.tointeger(n * (suf == "k" and 1024 or suf == "m" and 1024 * 1024 or 1))
end

local function parse(args)
  local o = { host = "127.0.0.1", port = 8080, batch = 32, window = 2, queue = 64, max_body = 16 * 2 ^ 20,
    max_images = 16, max_pixels = 1 << 25, timeout = 30, simulate_latency = 0, log = "requests.jsonl", log_max_bytes = 10 * 2 ^ 20, log_keep = 5, poll = 5,
    drain_timeout = 30 }
  local ints = { ["--port"] = "port", ["--threads"] = "threads", ["--batch"] = "batch", ["--window"] = "window",
    ["--queue"] = "queue", ["--max-images"] = "max_images", ["--max-pixels"] = "max_pixels", ["--log-keep"] = "log_keep",
    ["--simulate-latency"] = "simulate_latency" }
  local nums = { ["--timeout"] = "timeout", ["--poll"] = "poll", ["--drain-timeout"] = "drain_timeout" }
  local sizes = { ["--max-body"] = "max_body", ["--log-max-bytes"] = "log_max_bytes" }
  local strs = { ["--model"] = "model", ["--host"] = "host", ["--log"] = "log", ["--port-file"] = "port_file" }
  local i = 1
  while i <= #args do
    local a, v = args[i], args[i + 1]
    local key, eq = a:match("^(%-%-[%w-]+)=(.*)$")
    if key then a, v = key, eq else i = i + 1 end
    if a == "-h" or a == "--help" then return nil, "help" end
    if ints[a] then
      local n = math.tointeger(tonumber(v or ""))
      if not n or n < 0 then return nil, a .. " needs a non-negative integer" end
      o[ints[a]] = n
    elseif nums[a] then
      local n = tonumber(v or "")
      if not n or n <= 0 then return nil, a .. " needs a positive number" end
      o[nums[a]] = n
    elseif sizes[a] then
      local n = size_arg(v)
      if not n then return nil, a .. " needs a size such as 16m" end
      o[sizes[a]] = n
    elseif strs[a] then
      if not v then return nil, a .. " needs a value" end
      o[strs[a]] = v
    else
      return nil, "unknown option " .. a
    end
    i = i + 1
  end
  if not o.model then return nil, "--model is required" end
  return o
end

local function log(fmt, ...)
  io.stderr:write(os.date("!%Y-%m-%dT%H:%M:%SZ "), fmt:format(...), "\n")
  io.stderr:flush()
end

local function models_json(engine)
  local meta = engine.meta
  return json.encode({ models = json.array({ {
    name = engine.name, version = engine.version, spec = engine.spec, alias = engine.alias, path = engine.path,
    run = meta.run, experiment = meta.experiment, task = meta.task or "classification",
    classes = json.array(meta.classes or {}), input = meta.input, loaded_at = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  } }) })
end

local function publish(srv, engine)
  srv:set_model(engine.name, engine.version, models_json(engine))
end

local function err_body(status, msg)
  return json.encode({ error = msg, status = status }) .. "\n"
end

-- log fields: JSON object members without the braces
local function fields(t)
  return json.encode(t):sub(2, -2)
end

local function wants_json(job)
  local f = job:param("format")
  if f then return f == "json" end
  return job:accept():find("application/json", 1, true) ~= nil
end

-- ---------------------------------------------------------------- routes

local function do_predict(srv, engine, jobs, batch)
  local images, owner = {}, {}
  for ji, job in ipairs(jobs) do
    for k = 1, job:count() do
      images[#images + 1] = job:image(k)
      owner[#owner + 1] = ji
    end
  end
  local t0 = hs.sys.clock()
  local ok, preds = pcall(engine_mod.classify, engine, images, batch)
  local dt = hs.sys.clock() - t0
  if not ok then
    log("inference failed: %s", tostring(preds))
    for _, job in ipairs(jobs) do
      job:respond(500, "application/json", err_body(500, "inference failed: " .. tostring(preds)),
        fields({ model_error = tostring(preds) }))
    end
    return
  end
  srv:metric_observe("histops_batch_size", nil, #images)
  srv:metric_observe("histops_inference_seconds", nil, dt)
  local per = {}
  for i, p in ipairs(preds) do
    local ji = owner[i]
    per[ji] = per[ji] or {}
    per[ji][#per[ji] + 1] = p
    srv:metric_add("histops_predictions_total", { class = p.class }, 1)
  end
  for ji, job in ipairs(jobs) do
    local list, logp = {}, {}
    for k, p in ipairs(per[ji] or {}) do
      local fname = job:filename(k)
      list[k] = { class = p.class, index = p.index, confidence = p.confidence, probabilities = p.probs,
        filename = fname ~= "" and fname or nil }
      logp[k] = { class = p.class, confidence = p.confidence }
    end
    local body = { model = { name = engine.name, version = engine.version }, predictions = json.array(list),
      timing = { queue_ms = job:queue_seconds() * 1000, inference_ms = dt * 1000, batch_images = #images } }
    if #list == 1 then body.class, body.probabilities, body.confidence = list[1].class, list[1].probabilities, list[1].confidence end
    job:respond(200, "application/json", json.encode(body) .. "\n",
      fields({ predictions = json.array(logp), batch_images = #images, inference_ms = dt * 1000 }))
  end
end

local function do_segment(engine, job)
  local results, masks = {}, {}
  local t0 = hs.sys.clock()
  for k = 1, job:count() do
    local mask, count, fg = engine_mod.segment(engine, job:image(k))
    masks[k] = mask
    results[k] = { components = count, foreground_fraction = fg, width = mask:shape()[2], height = mask:shape()[1] }
  end
  local dt = hs.sys.clock() - t0
  local logf = fields({ segment = json.array(results), inference_ms = dt * 1000 })
  if #masks == 1 and not wants_json(job) then
    job:respond(200, "image/png", hs.image.encode_png(masks[1]), logf, ("X-Components: %d"):format(results[1].components))
    return
  end
  local b64 = require("hs.report").base64
  for k, r in ipairs(results) do r.mask_png_base64 = b64(hs.image.encode_png(masks[k])) end
  job:respond(200, "application/json", json.encode({ model = { name = engine.name, version = engine.version },
    results = json.array(results), timing = { inference_ms = dt * 1000 } }) .. "\n", logf)
end

local function do_ihc(engine, job)
  local results = {}
  local t0 = hs.sys.clock()
  for k = 1, job:count() do results[k] = engine_mod.ihc(job:image(k)) end
  local dt = hs.sys.clock() - t0
  local short = {}
  for k, r in ipairs(results) do
    short[k] = { count = r.count, positive = r.positive, labelling_index = r.labelling_index, h_score = r.h_score }
  end
  job:respond(200, "application/json", json.encode({ model = { name = engine.name, version = engine.version },
    results = json.array(results), timing = { inference_ms = dt * 1000 } }) .. "\n",
    fields({ ihc = json.array(short), inference_ms = dt * 1000 }))
end

local function process(srv, engine, jobs, opts)
  if opts.simulate_latency > 0 then hs.sys.sleep(opts.simulate_latency / 1000) end
  local predict = {}
  for _, job in ipairs(jobs) do
    local route = job:route()
    if route == "predict" then
      predict[#predict + 1] = job
    else
      local ok, err = pcall(route == "segment" and do_segment or do_ihc, engine, job)
      if not ok then
        log("%s failed: %s", route, tostring(err))
        pcall(job.respond, job, 500, "application/json", err_body(500, tostring(err)), fields({ runner_error = tostring(err) }))
      end
    end
  end
  if #predict > 0 then
    if engine.meta.task == "segmentation" then
      for _, job in ipairs(predict) do
        job:respond(400, "application/json", err_body(400, "this is a segmentation model: use /v1/segment"))
      end
    else
      do_predict(srv, engine, predict, opts.batch)
    end
  end
end

-- ---------------------------------------------------------------- main loop

function M.run(args)
  local o, err = parse(args)
  if not o then
    if err == "help" then io.stdout:write(USAGE); return 0 end
    io.stderr:write("histops serve: ", err, "\n", USAGE)
    return 2
  end
  if not hs.serve or not hs.serve.available() then
    io.stderr:write("histops serve: this build has no HTTP server (libmicrohttpd not linked)\n")
    return 1
  end
  if o.threads and o.threads > 0 then hs.sys.set_threads(o.threads) end
  local engine, lerr = engine_mod.load(o.model)
  if not engine then io.stderr:write("histops serve: ", tostring(lerr), "\n"); return 1 end
  local srv, serr = hs.serve.start { host = o.host, port = o.port, max_body = o.max_body, max_images = o.max_images,
    max_pixels = o.max_pixels,
    queue = o.queue, request_timeout = math.floor(o.timeout * 1000), log = o.log ~= "none" and o.log or nil,
    log_max_bytes = o.log_max_bytes, log_keep = o.log_keep, max_connections = math.max(2 * o.queue, 16) }
  if not srv then io.stderr:write("histops serve: ", tostring(serr), "\n"); return 1 end
  publish(srv, engine)
  hs.serve.catch_signals()
  local port = srv:port()
  if o.port_file then hs.sys.write_file_atomic(o.port_file, tostring(port) .. "\n") end
  log("serving %s %s (%s) on http://%s:%d", engine.name, engine.version, engine.path, o.host:find(":") and ("[" .. o.host .. "]") or o.host, port)

  local next_poll = hs.sys.clock() + o.poll
  local function poll()
    next_poll = hs.sys.clock() + o.poll
    local key, kerr = engine_mod.version_key(o.model)
    if not key then log("model check failed (keeping %s): %s", engine.version, tostring(kerr)); return end
    if key == engine.key then return end
    local t0 = hs.sys.clock()
    local fresh, ferr = engine_mod.load(o.model)
    if not fresh then log("reload failed (keeping %s): %s", engine.version, tostring(ferr)); return end
    local old = engine.version
    engine = fresh
    publish(srv, engine)
    log("model reloaded: %s -> %s in %.2f s", old, engine.version, hs.sys.clock() - t0)
  end

  local max_jobs = math.max(1, o.batch)
  while true do
    local sig = hs.serve.signal()
    if sig == "term" then break end
    if sig == "hup" or hs.sys.clock() >= next_poll then poll() end
    local jobs = srv:pop(max_jobs, 100, o.window)
    if #jobs > 0 then process(srv, engine, jobs, o) end
  end

  -- SIGTERM: refuse new work, answer everything already accepted, then stop
  log("SIGTERM: draining %d in-flight request(s)", srv:pending())
  srv:drain()
  local deadline = hs.sys.clock() + o.drain_timeout
  while srv:pending() > 0 and hs.sys.clock() < deadline do
    local jobs = srv:pop(max_jobs, 20, 0)
    if #jobs > 0 then process(srv, engine, jobs, o) end
  end
  local left = srv:pending()
  srv:stop()
  log("stopped%s", left > 0 and (" (%d request(s) still pending at the drain deadline)"):format(left) or "")
  return 0
end

return M
