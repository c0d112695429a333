-- lua/hs/cmd/export.lua: `histops export mlflow DIR [--experiment E] [--no-artifacts] [-C DIR]`:
-- the recorded runs in MLflow's file-store layout, which `mlflow ui --backend-store-uri DIR/mlruns`
-- reads and `mlflow migrate-filestore --source DIR --target sqlite:///mlflow.db` imports:
--   DIR/mlruns/<experiment id>/meta.yaml                 experiment (numeric id, stable per name)
--   DIR/mlruns/<experiment id>/<run id>/meta.yaml        run info (status 1..5, times in ms)
--     params/<key>    one value per file (flattened parameters: train.lr, ...)
--     metrics/<key>   lines "timestamp_ms value step" (train_loss and val_* per epoch, test_* once)
--     tags/<key>      mlflow.source.git.commit, mlflow.source.git.branch, mlflow.runName, histops.*
--     artifacts/      model.safetensors, report.html, split.csv copied from the artifact store
--     metrics.json, params.yaml   DVC-style files (`dvc metrics diff` / `dvc params diff`)
-- Re-exporting rewrites the same folders (ids are stable). Not an MLflow client: no server needed.
local M = { help = "export runs: mlflow DIR (MLflow file-store layout + DVC metrics.json/params.yaml)" }

local usage = "usage: histops export mlflow DIR [--experiment NAME] [--no-artifacts] [-C DIR]\n"

local STATUS = { running = 1, scheduled = 2, finished = 3, failed = 4, killed = 5 }
M.STATUS = STATUS

-- ---------------------------------------------------------------- a small YAML writer

-- shortest decimal that reads back as the same double
local function num(v)
  for _, f in ipairs { "%.15g", "%.16g" } do
    local s = f:format(v)
    if tonumber(s) == v then return s end
  end
  return ("%.17g"):format(v)
end
M.num = num

local function yaml_scalar(json, v)
  if v == nil or v == json.null then return "null" end
  if type(v) == "boolean" then return tostring(v) end
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v then return ".nan" end
    if v == math.huge then return ".inf" end
    if v == -math.huge then return "-.inf" end
    local s = num(v)
    if not s:find("[%.eEn]") then s = s .. ".0" end   -- stays a float in YAML
    return s
  end
  return json.encode(tostring(v))   -- a JSON string is a valid YAML double-quoted scalar
end

local function yaml_key(json, k)
  k = tostring(k)
  if k:match("^[%a_][%w_%.%-]*$") and k ~= "null" and k ~= "true" and k ~= "false" then return k end
  return json.encode(k)
end

local function sorted_keys(t)
  local k = {}
  for x in pairs(t) do k[#k + 1] = x end
  table.sort(k, function(a, b) return tostring(a) < tostring(b) end)
  return k
end

-- Block YAML of a Lua table (maps sorted by key; arrays of scalars in flow style).
function M.yaml(json, t, indent, out)
  indent = indent or 0
  out = out or {}
  local pad = (" "):rep(indent)
  local function is_array(v) return type(v) == "table" and (#v > 0 or getmetatable(v) ~= nil) end
  for _, k in ipairs(sorted_keys(t)) do
    local v = t[k]
    if type(v) == "table" and v ~= json.null then
      if is_array(v) then
        local flat = true
        for _, x in ipairs(v) do if type(x) == "table" then flat = false end end
        if flat then
          local parts = {}
          for i, x in ipairs(v) do parts[i] = yaml_scalar(json, x) end
          out[#out + 1] = ("%s%s: [%s]"):format(pad, yaml_key(json, k), table.concat(parts, ", "))
        else
          out[#out + 1] = ("%s%s:"):format(pad, yaml_key(json, k))
          for _, x in ipairs(v) do
            if type(x) == "table" then
              local sub = M.yaml(json, x, indent + 4, {})
              sub[1] = pad .. "  - " .. sub[1]:sub(indent + 5)
              for _, l in ipairs(sub) do out[#out + 1] = l end
            else
              out[#out + 1] = pad .. "  - " .. yaml_scalar(json, x)
            end
          end
        end
      elseif next(v) == nil then
        out[#out + 1] = ("%s%s: {}"):format(pad, yaml_key(json, k))
      else
        out[#out + 1] = ("%s%s:"):format(pad, yaml_key(json, k))
        M.yaml(json, v, indent + 2, out)
      end
    else
      out[#out + 1] = ("%s%s: %s"):format(pad, yaml_key(json, k), yaml_scalar(json, v))
    end
  end
  return out
end

-- ---------------------------------------------------------------- helpers

local function safe_name(k)
  k = tostring(k):gsub("[^%w_%.%- /]", "_")
  k = k:gsub("/+", "/"):gsub("^/", ""):gsub("/$", "")
  if k == "" or k == "." or k:match("^%.%.") or k:find("/%.%.?/") or k:find("/%.%.?$") then k = "_" .. k end
  return k
end
M.safe_name = safe_name

local function write(hs, path, s)
  local dir = path:match("^(.*)/[^/]*$")
  if dir then assert(hs.sys.mkdir_p(dir)) end
  local ok, err = hs.sys.write_file_atomic(path, s)
  if not ok then error(("cannot write %s: %s"):format(path, tostring(err)), 0) end
end

local function copy_file(src, dst)
  local i = io.open(src, "rb")
  if not i then return false end
  local o = assert(io.open(dst, "wb"))
  while true do
    local chunk = i:read(1 << 20)
    if not chunk then break end
    local ok, err = o:write(chunk)   -- a full disk must fail the export, not truncate the copy
    if not ok then i:close(); o:close(); error(("cannot write %s: %s"):format(dst, tostring(err)), 0) end
  end
  i:close()
  local ok, err = o:close()
  if not ok then error(("cannot write %s: %s"):format(dst, tostring(err)), 0) end
  return true
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local p = io.popen("pwd")
  local cwd = p and p:read("l") or "."
  if p then p:close() end
  return (cwd .. "/" .. path):gsub("/%./", "/"):gsub("/%.$", "")
end

-- stable numeric MLflow experiment id for an experiment name (never "0", the Default experiment)
function M.experiment_id(hs, name)
  local v = tonumber(hs.sys.sha256(name):sub(1, 12), 16)
  return tostring(v == 0 and 1 or v)
end

local function ms(t) return t and math.floor(tonumber(t) * 1000) or nil end

local function numeric_tree(v)
  if type(v) == "number" then return v == v and v ~= math.huge and v ~= -math.huge and v or nil end
  if type(v) ~= "table" or #v > 0 then return nil end
  local o, any = {}, false
  for k, x in pairs(v) do
    local y = numeric_tree(x)
    if y ~= nil then o[k] = y; any = true end
  end
  return any and o or nil
end

-- metric series of a record: name -> list of {timestamp_ms, value, step}
function M.metric_series(rec)
  local series = {}
  local function add(name, t, v, step)
    if type(v) ~= "number" then return end
    name = safe_name(name)
    series[name] = series[name] or {}
    table.insert(series[name], { t, v, step })
  end
  local t_end = ms(rec.end_time or rec.heartbeat or rec.start_time) or 0
  for _, h in ipairs(rec.history or {}) do
    local t = ms(h.time) or t_end
    local step = math.tointeger(h.epoch) or 0
    for k, v in pairs(h) do
      if k ~= "epoch" and k ~= "time" then
        local name = (k == "train_loss" or k == "lr" or k == "images_per_s") and k or ("val_" .. k)
        add(name, t, v, step)
      end
    end
  end
  for k, v in pairs(rec.metrics or {}) do
    if type(v) == "number" then add("test_" .. k, t_end, v, 0)
    elseif type(v) == "table" and k:match("_ci$") then
      add("test_" .. k .. "_lo", t_end, v.lo, 0)
      add("test_" .. k .. "_hi", t_end, v.hi, 0)
    end
  end
  for cls, pc in pairs(type(rec.metrics) == "table" and type(rec.metrics.per_class) == "table" and rec.metrics.per_class or {}) do
    for k, v in pairs(pc) do add(("test_%s.%s"):format(k, cls), t_end, v, 0) end
  end
  return series
end

-- Write one run (full record) into root/<exp_id>/<run id>. Returns the run folder.
function M.write_run(hs, store, root, exp_id, rec, opts)
  local json = hs.json
  local runs = require "hs.runs"
  local dir = ("%s/%s/%s"):format(root, exp_id, rec.id)
  assert(hs.sys.mkdir_p(dir .. "/artifacts"))
  local status = STATUS[rec.status] or STATUS.failed
  local meta = {
    artifact_uri = "file://" .. absolute(dir .. "/artifacts"), end_time = rec.status ~= "running" and ms(rec.end_time or rec.heartbeat) or json.null,
    entry_point_name = "", experiment_id = exp_id, lifecycle_stage = "active", run_id = rec.id, run_name = rec.id,
    run_uuid = rec.id, source_name = "", source_type = 4, source_version = "", start_time = ms(rec.start_time) or 0,
    status = status, tags = json.array({}), user_id = tostring(rec.user or "unknown"),
  }
  write(hs, dir .. "/meta.yaml", table.concat(M.yaml(json, meta), "\n") .. "\n")
  -- params
  local params = runs.comparable_params(rec)
  for k, v in pairs(params) do
    if not k:match("^env%.") and not k:match("^data%.") then
      local s = tostring(v)
      if #s > 6000 then s = s:sub(1, 6000) end
      write(hs, dir .. "/params/" .. safe_name(k), s)
    end
  end
  -- metrics
  for name, pts in pairs(M.metric_series(rec)) do
    table.sort(pts, function(a, b) return a[3] < b[3] end)
    local lines = {}
    for i, p in ipairs(pts) do
      local v = p[2]
      lines[i] = ("%d %s %d"):format(p[1], v ~= v and "nan" or num(v), p[3])
    end
    write(hs, dir .. "/metrics/" .. name, table.concat(lines, "\n") .. "\n")
  end
  -- tags
  local c = rec.code or {}
  local tags = {
    ["mlflow.runName"] = rec.id, ["mlflow.user"] = rec.user, ["mlflow.source.type"] = "LOCAL",
    ["mlflow.source.name"] = rec.experiment_file, ["mlflow.source.git.commit"] = c.commit ~= "" and c.commit or nil,
    ["mlflow.source.git.branch"] = c.branch ~= "" and c.branch or nil,
    ["histops.status"] = rec.status, ["histops.dirty"] = tostring(c.dirty and true or false),
    ["histops.experiment"] = rec.experiment, ["histops.host"] = rec.host, ["histops.record"] = rec.ref,
    ["histops.data_fingerprint"] = rec.data and rec.data.fingerprint and rec.data.fingerprint.all or nil,
    ["histops.error"] = rec.error,
  }
  for k, v in pairs(tags) do write(hs, dir .. "/tags/" .. k, tostring(v)) end
  -- DVC-style files
  write(hs, dir .. "/params.yaml", table.concat(M.yaml(json, runs.clean(rec.params or {})), "\n") .. "\n")
  local m = {}
  for k, v in pairs(rec.metrics or {}) do
    if k ~= "confusion" then m[k] = numeric_tree(v) end
  end
  write(hs, dir .. "/metrics.json", json.encode(m, { indent = true }) .. "\n")
  -- artifacts
  if not opts.no_artifacts then
    local adir = store:artifact_dir()
    for name, sha in pairs(rec.artifacts or {}) do
      local ok, src = pcall(hs.git.artifact_path, adir, sha)
      if ok and src then copy_file(src, dir .. "/artifacts/" .. safe_name(name)) end
    end
  end
  return dir
end

function M.run(args)
  local hs = require "histops"
  local runs = require "hs.runs"
  local ok, opts, rest = pcall(runs.parse_args, args, {
    options = { ["--experiment"] = "value", ["--repo"] = "value", ["--no-artifacts"] = "flag", ["--help"] = "flag" },
    alias = { ["-e"] = "--experiment", ["-C"] = "--repo", ["-h"] = "--help" } })
  if not ok then io.stderr:write("histops export: ", opts, "\n", usage); return 2 end
  if opts.help then io.write(usage); return 0 end
  if #rest ~= 2 or rest[1] ~= "mlflow" then
    io.stderr:write(rest[1] and rest[1] ~= "mlflow" and ("histops export: unknown format '%s' (mlflow)\n"):format(rest[1]) or "", usage)
    return 2
  end
  local store, err = runs.open(opts.repo)
  if not store then io.stderr:write("histops export: ", err, "\n"); return 1 end
  local root = rest[2] .. "/mlruns"
  assert(hs.sys.mkdir_p(root .. "/.trash"))
  local now = math.floor(hs.sys.time() * 1000)
  local json = hs.json
  local default = root .. "/0/meta.yaml"
  if not hs.sys.stat(default) then
    write(hs, default, table.concat(M.yaml(json, { artifact_location = "file://" .. absolute(root .. "/0"),
      creation_time = now, experiment_id = "0", last_update_time = now, lifecycle_stage = "active", name = "Default" }), "\n") .. "\n")
  end
  local list = runs.list { store = store, experiment = opts.experiment }
  local exps, n = {}, 0
  for _, s in ipairs(list) do
    local rec = runs.read(s.id, { store = store })
    if rec then
      local name = rec.experiment or "unnamed"
      local id = M.experiment_id(hs, name)
      local e = exps[name]
      if not e then
        e = { id = id, first = ms(rec.start_time) or now, last = ms(rec.start_time) or now }
        exps[name] = e
      end
      e.first = math.min(e.first, ms(rec.start_time) or now)
      e.last = math.max(e.last, ms(rec.end_time or rec.start_time) or now)
      M.write_run(hs, store, root, id, rec, opts)
      n = n + 1
    end
  end
  for name, e in pairs(exps) do
    write(hs, ("%s/%s/meta.yaml"):format(root, e.id), table.concat(M.yaml(json, {
      artifact_location = "file://" .. absolute(root .. "/" .. e.id), creation_time = e.first, experiment_id = e.id,
      last_update_time = e.last, lifecycle_stage = "active", name = name }), "\n") .. "\n")
  end
  io.write(("exported %d run(s) of %d experiment(s) to %s\n"):format(n, (function()
    local c = 0
    for _ in pairs(exps) do c = c + 1 end
    return c
  end)(), root))
  io.write(("  mlflow ui --backend-store-uri %s    or    mlflow migrate-filestore --source %s --target sqlite:///mlflow.db\n")
    :format(root, rest[2]))
  return 0
end

return M
