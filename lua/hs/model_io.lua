-- lua/hs/model_io.lua: self-contained model files. A model is saved as safetensors whose
-- tensor names are PyTorch's state_dict names (loadable with torch.load_state_dict after
-- safetensors.torch.load_file) and whose __metadata__ holds everything needed to use it:
-- format, classes, input spec (size, channels, mean, std), preprocessing pipeline, task, the
-- run/experiment it came from, the data fingerprint, and the experiment's source text plus the
-- resolved overrides, so the architecture can be rebuilt without the original checkout.
--   M.save(path, model, meta[, extra]) meta values: strings or JSON-able tables; extra: more
--                                      {name = tensor} saved beside the weights (checkpoints
--                                      keep the optimizer state there, so one atomic file holds it all)
--   local m = M.load(path)             -> { model = nn.Module (eval mode), meta = {...},
--                                            predict = function(images_hwc_u8_list) -> results }
local hs = require "histops"

local M = {}

local function encode_meta(meta)
  local out = {}
  for k, v in pairs(meta) do
    if type(v) == "string" then out[k] = v else out[k] = hs.json.encode(v) end
  end
  return out
end

local JSON_KEYS = { classes = true, input = true, pipeline = true, metrics = true, overrides = true, config = true }

function M.save(path, model, meta, extra)
  local sd, order = model:state_dict()
  local tensors = {}
  for _, name in ipairs(order) do tensors[name] = sd[name]:contiguous() end
  for name, t in pairs(extra or {}) do
    assert(not tensors[name], "model_io.save: extra tensor name clashes with a weight: " .. name)
    tensors[name] = t:contiguous()
  end
  -- atomic: temp file, fsync, rename, fsync folder. Called through pcall so that the message of
  -- a failed write ("cannot write 'PATH': No space left on device") carries no position inside
  -- this file; the caller's error handling adds its own
  local ok, err = pcall(hs.io.save, path, tensors, encode_meta(meta))
  if not ok then error(err, 0) end
end

function M.read_meta(path)
  local tensors, meta = hs.io.load(path)
  if not tensors then return nil, meta end
  local out = {}
  for k, v in pairs(meta) do
    if JSON_KEYS[k] then
      local ok, dec = pcall(hs.json.decode, v)
      out[k] = ok and dec or v
    else
      out[k] = v
    end
  end
  return tensors, out
end

-- Rebuild the architecture from the embedded experiment source and config.
local function build_model(meta, path)
  if not meta.experiment_source then
    return nil, ("%s: no experiment_source in the model metadata (not a histops model file?)"):format(path)
  end
  local config = require "hs.config"
  local src_dir = (HISTOPS_SOURCE_DIR or ".") .. "/experiments"
  local old = package.path
  package.path = src_dir .. "/?.lua;" .. src_dir .. "/?/init.lua;" .. package.path
  local chunk, err = load(meta.experiment_source, "=" .. (meta.experiment_file or "experiment"), "t")
  if not chunk then package.path = old; return nil, err end
  local ok, user = pcall(chunk)
  package.path = old
  if not ok then return nil, user end
  if type(user) ~= "table" or type(user.model) ~= "function" then
    return nil, ("%s: embedded experiment has no model function"):format(path)
  end
  local cfg = config.deep_copy(config.defaults)
  for k, v in pairs(user) do cfg[k] = v end
  for _, o in ipairs(meta.overrides or {}) do pcall(config.apply_override, cfg, o) end
  hs.nn.manual_seed(0)
  local classes = meta.classes or {}
  local info = { classes = classes, num_classes = math.max(#classes, 1), input = meta.input, task = meta.task,
    config = cfg }   -- as the runner passes it: a model may read its own settings (extra.width)
  local ok2, model = pcall(cfg.model, info)
  if not ok2 then return nil, model end
  return model
end

function M.load(path)
  local tensors, meta = M.read_meta(path)
  if not tensors then return nil, meta end
  if meta.format ~= "histops-model-1" then
    return nil, ("%s: not a histops model (format '%s')"):format(path, tostring(meta.format))
  end
  local model, err = build_model(meta, path)
  if not model then return nil, err end
  local ok, e = pcall(model.load_state_dict, model, tensors)
  if not ok then return nil, ("%s: %s"):format(path, e) end
  model:eval()
  local m = { model = model, meta = meta, path = path }
  return setmetatable(m, { __index = M })
end

-- Preprocess HWC u8 images exactly as training did (resize to the cache size, centre crop to
-- the input size, normalise) into a (B,C,h,w) batch.
function M.batch(m, images)
  local inp, pipe = m.meta.input, m.meta.pipeline or {}
  local hw = pipe.cache_size or inp.size
  local C = inp.channels or 3
  local n = #images
  local cache = hs.zeros({ n, hw[1], hw[2], C }, "u8")
  for i, img in ipairs(images) do
    local s = img:shape()
    local im = img
    if #s == 2 then im = img:reshape({ s[1], s[2], 1 }); s = im:shape() end
    if s[3] ~= C then
      if C == 3 and s[3] == 1 then im = hs.image.gray2rgb(im:reshape({ s[1], s[2] }))
      elseif C == 3 and s[3] == 4 then im = im:narrow(3, 1, 3):contiguous()
      elseif C == 1 and s[3] >= 3 then im = hs.image.rgb2gray(im:narrow(3, 1, 3):contiguous()):reshape({ s[1], s[2], 1 })
      else error(("image %d has %d channels, model expects %d"):format(i, s[3], C), 2) end
    end
    local slot = cache:select(1, i)
    if im:shape()[1] == hw[1] and im:shape()[2] == hw[2] then
      slot:copy(im)
    else
      local shrink = im:shape()[1] >= hw[1] and im:shape()[2] >= hw[2]
      slot:copy(hs.image.resize(im, hw[2], hw[1], shrink and "area" or "bilinear"))
    end
  end
  require("hs.pipeline").apply_cache(pipe.preprocess, cache)   -- the recorded data.preprocess
  local L = hs.loader.new(cache, nil, { out = inp.size, mean = inp.mean, std = inp.std, seed = 0 },
    { batch = n, shuffle = false, training = false })
  L:start_epoch(0)
  local x = hs.zeros({ n, C, inp.size[1], inp.size[2] })
  L:next(x)
  L:release()
  return x
end

-- Softmax of the first n rows of a (N, K) logits tensor: a list of per-class probability lists.
function M.softmax_rows(logits, n)
  local k = logits:shape()[2]
  local probs = {}
  for i = 1, n do
    local mx, row, s = -math.huge, {}, 0
    for c = 1, k do mx = math.max(mx, logits:get(i, c)) end
    for c = 1, k do row[c] = math.exp(logits:get(i, c) - mx); s = s + row[c] end
    for c = 1, k do row[c] = row[c] / s end
    probs[i] = row
  end
  return probs
end

-- Classify a list of HWC u8 images: { {class =, index = 0-based, probs = {...}}, ... }
function M.predict(m, images)
  local x = M.batch(m, images)
  local classes = m.meta.classes or {}
  local out = {}
  for i, row in ipairs(M.softmax_rows(m.model(x), #images)) do
    local best, arg = -1, 0
    for c = 1, #row do
      if row[c] > best then best, arg = row[c], c end
    end
    local probs = {}
    for c = 1, #row do probs[classes[c] or tostring(c - 1)] = row[c] end
    out[i] = { class = classes[arg] or tostring(arg - 1), index = arg - 1, confidence = best, probs = probs }
  end
  return out
end

return M
