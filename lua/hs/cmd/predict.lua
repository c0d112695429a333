-- lua/hs/cmd/predict.lua: `histops predict --model MODEL FILES... [--json] [--batch N] [--repeat N]`:
-- classify image files with a model file, run folder or registry name (NAME@alias). Also the
-- inference engine shared with `histops serve`: model resolution and reload detection, the
-- batch classification code path (M.classify), segmentation masks and IHC quantification, so
-- the server and this command give the same answers. Not the HTTP side (hs/cmd/serve.lua).
local M = { help = "classify image files with a model: --model MODEL FILES... [--json]" }

local hs = require "histops"

local function registry()
  local ok, reg = pcall(require, "hs.registry")
  if ok and type(reg) == "table" and reg.resolve then return reg end
  return nil
end

-- spec -> path, info ({name=, version=, run=, ...}) via hs.registry when present, else a path
function M.resolve(spec)
  local reg = registry()
  if reg then
    local ok, path, info = pcall(reg.resolve, spec)
    if not ok then return nil, tostring(path) end
    if not path then return nil, info end
    return path, info or {}
  end
  local st = hs.sys.stat(spec)
  if not st then return nil, ("%s: no such model file"):format(spec) end
  if st.type == "dir" then spec = spec:gsub("/+$", "") .. "/model.safetensors" end
  return spec, { kind = "file", path = spec }
end

-- What spec points at right now: changes when an alias moves or the file (or the file a
-- symlink points to) is replaced. nil, message when it cannot be resolved.
function M.version_key(spec)
  local path, info = M.resolve(spec)
  if not path then return nil, info end
  local st = hs.sys.stat(path)
  if not st then return nil, ("%s: cannot stat"):format(path) end
  return ("%s|%s|%d|%.6f"):format(path, tostring(info.version or ""), st.size, st.mtime), path, info
end

-- Load the model spec points at: an engine { model = model_io object, name, version, path, key }.
function M.load(spec)
  local key, path, info = M.version_key(spec)
  if not key then return nil, path end
  local m, err = require("hs.model_io").load(path)
  if not m then return nil, err end
  local meta = m.meta
  local name = info.name or (spec:match("^([^@/]+)@") ) or meta.experiment or path:match("([^/]+)%.safetensors$") or "model"
  local version = info.version and ("v" .. tostring(info.version)) or meta.run or hs.sys.sha256_file(path):sub(1, 12)
  return { model = m, meta = meta, name = tostring(name), version = tostring(version), path = path, key = key,
    spec = spec, alias = info.alias, run = meta.run }
end

-- The batch code path: classify a list of HWC u8 images in chunks of at most `batch`.
-- -> { {class=, index=, confidence=, probs={class=p}}, ... }
function M.classify(engine, images, batch)
  batch = batch or 32
  local out = {}
  for i = 1, #images, batch do
    local chunk = {}
    for k = i, math.min(#images, i + batch - 1) do chunk[#chunk + 1] = images[k] end
    local r = engine.model:predict(chunk)
    for _, p in ipairs(r) do out[#out + 1] = p end
  end
  return out
end

-- Foreground mask (H,W) u8 0/255 at the image's own size, and the number of connected
-- components. Segmentation models: logits > 0 on the image resized to the model's cache size;
-- other models: Otsu on the gray image (dark objects = nuclei).
function M.segment(engine, img)
  local s = img:shape()
  local H, W = s[1], s[2]
  local rgb = img
  if #s == 3 and s[3] == 4 then rgb = img:narrow(3, 1, 3):contiguous() end
  if #s == 2 or s[3] == 1 then rgb = hs.image.gray2rgb(img:reshape({ H, W })) end
  local mask
  local meta = engine and engine.meta or {}
  if meta.task == "segmentation" then
    local inp, pipe = meta.input, meta.pipeline or {}
    local hw = pipe.cache_size or inp.size
    local C = inp.channels or 3
    local im = C == 1 and hs.image.rgb2gray(rgb):reshape({ H, W, 1 }) or rgb
    local cache = hs.zeros({ 1, hw[1], hw[2], C }, "u8")
    cache:select(1, 1):copy((H == hw[1] and W == hw[2]) and im or hs.image.resize(im, hw[2], hw[1], "bilinear"))
    require("hs.pipeline").apply_cache(pipe.preprocess, cache)
    local L = hs.loader.new(cache, nil, { out = hw, mean = inp.mean, std = inp.std, seed = 0 },
      { batch = 1, shuffle = false, training = false })
    L:start_epoch(0)
    local x = hs.zeros({ 1, C, hw[1], hw[2] })
    L:next(x)
    L:release()
    local logits = engine.model.model(x)
    local m = logits:reshape({ hw[1], hw[2] }):gt(0):astype("u8"):mul(255):astype("u8")
    mask = (H == hw[1] and W == hw[2]) and m or hs.image.resize(m, W, H, "nearest")
  else
    mask = hs.image.otsu(hs.image.rgb2gray(rgb))
  end
  mask = mask:reshape({ H, W }):contiguous()
  local _, count = hs.image.connected_components(mask)
  local fg = mask:astype("f32"):mean():item() / 255
  return mask, count, fg
end

-- IHC quantification of one RGB image (hs.ihc_quant when present, else a plain DAB/H estimate).
function M.ihc(img, opts)
  local s = img:shape()
  local rgb = img
  if #s == 3 and s[3] == 4 then rgb = img:narrow(3, 1, 3):contiguous() end
  if #s == 2 or s[3] == 1 then rgb = hs.image.gray2rgb(img:reshape({ s[1], s[2] })) end
  local ok, Q = pcall(require, "hs.ihc_quant")
  if ok and type(Q) == "table" and Q.quantify then
    local r = Q.quantify(rgb, opts)
    local out = {}
    for k, v in pairs(r) do
      if type(v) ~= "userdata" and k ~= "nuclei" and k ~= "labels" then out[k] = v end
    end
    out.method = "hs.ihc_quant"
    return out
  end
  local st = hs.serve.image_stats(rgb)
  return { method = "mean optical density", hematoxylin_od = st.od[1], dab_od = st.od[3] }
end

local function usage()
  io.stderr:write("usage: histops predict --model MODEL FILE... [--json] [--batch N] [--repeat N]\n",
    "  MODEL: a model file, a run folder, or NAME@alias when the registry is available\n")
  return 2
end

function M.run(args)
  local spec, files, json_out, batch, rep = nil, {}, false, 32, 1
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--model" then spec = args[i + 1]; i = i + 1
    elseif a == "--json" then json_out = true
    elseif a == "--batch" then batch = math.tointeger(tonumber(args[i + 1] or "")); i = i + 1
      if not batch or batch < 1 then io.stderr:write("histops predict: --batch needs a positive integer\n"); return 2 end
    elseif a == "--repeat" then rep = math.tointeger(tonumber(args[i + 1] or "")); i = i + 1
      if not rep or rep < 1 then io.stderr:write("histops predict: --repeat needs a positive integer\n"); return 2 end
    elseif a == "-h" or a == "--help" then return usage()
    elseif a:sub(1, 2) == "--" then io.stderr:write("histops predict: unknown option ", a, "\n"); return 2
    else files[#files + 1] = a end
    i = i + 1
  end
  if not spec or #files == 0 then return usage() end
  local engine, err = M.load(spec)
  if not engine then io.stderr:write("histops predict: ", tostring(err), "\n"); return 1 end
  local images, bad = {}, 0
  local order = {}
  for _, f in ipairs(files) do
    local img, e = hs.image.load(f)
    if not img then
      io.stderr:write("histops predict: ", tostring(e), "\n")
      bad = bad + 1
    else
      if img:dtype() ~= "u8" then img = hs.serve.decode_body("image/png", hs.image.encode_png(img))[1] end
      for _ = 1, rep do   -- --repeat: the same image several times (throughput measurements)
        images[#images + 1] = img
        order[#order + 1] = f
      end
    end
  end
  local t0 = hs.sys.clock()
  local preds = #images > 0 and M.classify(engine, images, batch) or {}
  local dt = hs.sys.clock() - t0
  if json_out then
    local out = {}
    for k, p in ipairs(preds) do
      out[k] = { file = order[k], class = p.class, index = p.index, confidence = p.confidence, probabilities = p.probs }
    end
    print(hs.json.encode({ model = { name = engine.name, version = engine.version }, predictions = hs.json.array(out),
      timing = { seconds = dt, images_per_s = #images / math.max(dt, 1e-9) } }))
  else
    for k, p in ipairs(preds) do print(("%s\t%s\t%.4f"):format(order[k], p.class, p.confidence)) end
    io.stderr:write(("%d images in %.3f s (%.1f images/s), model %s %s\n"):format(#images, dt,
      #images / math.max(dt, 1e-9), engine.name, engine.version))
  end
  return bad > 0 and 1 or 0
end

return M
