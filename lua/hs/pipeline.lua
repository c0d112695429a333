-- lua/hs/pipeline.lua: declarative image preprocessing pipelines. An experiment declares a list
-- of steps, e.g. { {"stain_normalize", method = "macenko"}, {"auto_contrast", low = 1, high = 99},
-- {"gaussian", sigma = 1}, {"resize", 64, 64} }; compiling it checks every step and parameter
-- (errors name the step index), fills in the defaults, and gives a callable image -> image plus a
-- canonical JSON description and its SHA-256 for the run record. Every image op of hs.image is a
-- step (plus center_crop, stain_normalize and the IHC overlay/labels). Not a data loader.
--
--   local P = require "hs.pipeline"
--   local pipe = P.compile(steps)     -- raises "pipeline step 2 (gaussian): ..." on bad input
--   local out = pipe(img)             -- or pipe:apply(img)
--   pipe:describe() -> { {op = "gaussian", sigma = 1, ksize = 0, border = "reflect101"}, ... }
--   pipe:json(), pipe:hash()          -- canonical (sorted keys, defaults filled) and its sha256
--   P.steps() -> sorted step names; P.help(name) -> "name(param=default, ...): doc"
--   P.register(name, spec)            -- add a step: spec = { params = {...}, run = fn, doc = "" }
-- Positional values fill the parameters in their declared order ({"resize", 64, 64} = width,
-- height). A parameter spec is { name, type, default = v | required = true, one_of = {...},
-- min = , max = } with type number | integer | string | boolean | table | any.
local hs = require "histops"

local M = {}
local STEPS = {}

local function img() return hs.image end
local function mask_of(t) return t end

-- ---------------------------------------------------------------- the step table
local function step(name, params, run, doc) STEPS[name] = { params = params, run = run, doc = doc or "" } end

local BORDERS = { "reflect101", "replicate", "constant", "reflect" }
local SHAPES = { "rect", "ellipse", "cross" }

-- layout and dtype
step("to_float", { { "scale", "number" } }, function(x, p) return img().to_float(x, p.scale) end,
  "U8 /255, U16 /65535 (or scale) -> F32")
step("to_u8", { { "scale", "number" } }, function(x, p) return img().to_u8(x, p.scale) end, "-> U8 (saturating)")
step("to_chw", { { "scale", "number" } }, function(x, p) return img().to_chw(x, p.scale) end, "(H,W,C) -> F32 (C,H,W)")
step("from_chw", { { "scale", "number", default = 255 }, { "dtype", "string", default = "u8" } },
  function(x, p) return img().from_chw(x, p.scale, p.dtype) end, "(C,H,W) -> (H,W,C)")
-- colour
for _, n in ipairs { "rgb2gray", "gray2rgb", "rgb2hsv", "hsv2rgb", "rgb2lab", "lab2rgb", "rgb2hed", "hed2rgb" } do
  step(n, {}, function(x) return img()[n](x) end, "colour conversion (scikit-image conventions)")
end
step("rgb2hsv", { { "dtype", "string", default = "f32", one_of = { "f32", "u8" } } },
  function(x, p) return img().rgb2hsv(x, p.dtype == "u8" and { dtype = "u8" } or nil) end,
  "f32: scikit-image's HSV in [0,1]; u8 (u8 input): OpenCV's 8-bit HSV (H = degrees/2)")
step("deconvolve", { { "stains", "any", default = "hed" } }, function(x, p) return img().deconvolve(x, p.stains) end,
  "stain densities for a named matrix or stain vectors")
step("combine", { { "stains", "any", default = "hed" } }, function(x, p) return img().combine(x, p.stains) end,
  "stain densities -> RGB")
-- stains
step("stain_normalize", { { "method", "string", default = "macenko", one_of = { "macenko", "reinhard" } },
    { "target", "table" }, { "io", "number", default = 240 }, { "alpha", "number", default = 1 },
    { "beta", "number", default = 0.15 } },
  function(x, p)
    if p.method == "reinhard" then
      return img().reinhard_apply(x, p.target or error("method 'reinhard' needs a target {mean=, std=}", 0))
    end
    return img().macenko_apply(x, p.target, { io = p.io, alpha = p.alpha, beta = p.beta })
  end, "Macenko (default target: the usual H&E reference) or Reinhard (target from reinhard_fit)")
step("reinhard", { { "target", "table", required = true } }, function(x, p) return img().reinhard_apply(x, p.target) end,
  "Reinhard colour transfer to target {mean=, std=}")
step("macenko", { { "target", "table" }, { "io", "number", default = 240 }, { "alpha", "number", default = 1 },
    { "beta", "number", default = 0.15 } },
  function(x, p) return img().macenko_apply(x, p.target, { io = p.io, alpha = p.alpha, beta = p.beta }) end,
  "Macenko stain normalisation")
-- contrast
step("auto_contrast", { { "low", "number", default = 1, min = 0, max = 100 }, { "high", "number", default = 99, min = 0, max = 100 },
    { "joint", "boolean", default = false } },
  function(x, p) return img().auto_contrast(x, { low = p.low, high = p.high, joint = p.joint }) end,
  "stretch the low..high percentiles to the full range")
step("gamma", { { "gamma", "number", required = true, min = 0 } }, function(x, p) return img().gamma(x, p.gamma) end, "gamma curve")
step("equalize_hist", {}, function(x) return img().equalize_hist(x) end, "histogram equalisation")
step("clahe", { { "clip", "number", default = 2.0, min = 0 }, { "tiles", "any", default = 8 } },
  function(x, p) return img().clahe(x, { clip = p.clip, tiles = p.tiles }) end, "contrast-limited adaptive equalisation")
-- filters
step("gaussian", { { "sigma", "number", required = true, min = 0 }, { "ksize", "integer", default = 0, min = 0 },
    { "border", "string", default = "reflect101", one_of = BORDERS } },
  function(x, p) return img().gaussian(x, p.sigma, { ksize = p.ksize, border = p.border }) end, "Gaussian blur (cv2)")
step("box", { { "ksize", "integer", required = true, min = 1 }, { "border", "string", default = "reflect101", one_of = BORDERS } },
  function(x, p) return img().box(x, p.ksize, { border = p.border }) end, "box blur")
step("median", { { "ksize", "integer", required = true, min = 3 } }, function(x, p) return img().median(x, p.ksize) end, "median filter")
step("unsharp", { { "sigma", "number", required = true, min = 0 }, { "amount", "number", default = 1 } },
  function(x, p) return img().unsharp(x, p.sigma, p.amount) end, "unsharp mask")
step("separable", { { "kx", "table", required = true }, { "ky", "table", required = true },
    { "border", "string", default = "reflect101", one_of = BORDERS } },
  function(x, p) return img().separable(x, p.kx, p.ky, { border = p.border }) end, "separable filter")
-- morphology
for _, n in ipairs { "erode", "dilate", "open", "close" } do
  step(n, { { "shape", "string", default = "rect", one_of = SHAPES }, { "ksize", "integer", default = 3, min = 1 } },
    function(x, p) return img()[n](x, { shape = p.shape, ksize = p.ksize }) end, "morphology (cv2)")
end
step("morphology", { { "op", "string", required = true, one_of = { "erode", "dilate", "open", "close" } },
    { "shape", "string", default = "rect", one_of = SHAPES }, { "ksize", "integer", default = 3, min = 1 } },
  function(x, p) return img().morphology(x, p.op, { shape = p.shape, ksize = p.ksize }) end, "morphology by name")
-- thresholds and segmentation (image -> mask or label image)
step("threshold", { { "t", "number", required = true }, { "invert", "boolean", default = false } },
  function(x, p) return img().threshold(x, p.t, { invert = p.invert }) end, "U8 mask, 255 where > t")
step("otsu", { { "invert", "boolean", default = true } }, function(x, p) return mask_of(img().otsu(x, { invert = p.invert })) end,
  "Otsu mask (default: dark objects are 255)")
step("adaptive_threshold", { { "block", "integer", default = 11, min = 3 }, { "c", "number", default = 2 },
    { "method", "string", default = "mean", one_of = { "mean", "gaussian" } }, { "invert", "boolean", default = false } },
  function(x, p) return img().adaptive_threshold(x, { block = p.block, c = p.c, method = p.method, invert = p.invert }) end,
  "local threshold (cv2)")
step("connected_components", { { "connectivity", "integer", default = 8, one_of = { 4, 8 } } },
  function(x, p) return (img().connected_components(x, { connectivity = p.connectivity, stats = false })) end, "mask -> I32 labels")
step("distance_transform", {}, function(x) return img().distance_transform(x) end, "mask -> F32 Euclidean distance")
step("split_nuclei", { { "min_distance", "integer", default = 3, min = 1 } },
  function(x, p) return (img().split_nuclei(x, { min_distance = p.min_distance })) end, "mask -> I32 labels of split nuclei")
-- geometry
step("crop", { { "x", "integer", required = true, min = 1 }, { "y", "integer", required = true, min = 1 },
    { "width", "integer", required = true, min = 1 }, { "height", "integer", required = true, min = 1 } },
  function(x, p) return img().crop(x, p.x, p.y, p.width, p.height) end, "crop (1-based top-left)")
step("center_crop", { { "width", "integer", required = true, min = 1 }, { "height", "integer" } },
  function(x, p)
    local h = p.height or p.width
    local sh = x:shape()
    if p.width > sh[2] or h > sh[1] then
      error(("center_crop %dx%d larger than the image %dx%d"):format(p.width, h, sh[2], sh[1]), 0)
    end
    return img().crop(x, (sh[2] - p.width) // 2 + 1, (sh[1] - h) // 2 + 1, p.width, h)
  end, "crop the centre (height defaults to width)")
step("pad", { { "n", "integer", default = 0, min = 0 }, { "top", "integer", min = 0 }, { "bottom", "integer", min = 0 },
    { "left", "integer", min = 0 }, { "right", "integer", min = 0 },
    { "border", "string", default = "constant", one_of = BORDERS }, { "value", "number", default = 0 } },
  function(x, p)
    return img().pad(x, { top = p.top or p.n, bottom = p.bottom or p.n, left = p.left or p.n, right = p.right or p.n },
      { border = p.border, value = p.value })
  end, "pad by n (or per side)")
step("flip", { { "direction", "string", default = "h", one_of = { "h", "v", "horizontal", "vertical" } } },
  function(x, p) return img().flip(x, p.direction) end, "mirror")
step("rot90", { { "k", "integer", default = 1 } }, function(x, p) return img().rot90(x, p.k) end, "rotate by k*90 degrees")
step("resize", { { "width", "integer", required = true, min = 1 }, { "height", "integer" },
    { "interp", "string", default = "bilinear", one_of = { "bilinear", "area", "nearest" } } },
  function(x, p) return img().resize(x, p.width, p.height or p.width, p.interp) end, "resize (cv2; height defaults to width)")
step("augment", { { "seed", "integer", required = true }, { "hflip", "boolean", default = false },
    { "vflip", "boolean", default = false }, { "rot90", "boolean", default = false }, { "crop", "any" },
    { "brightness", "number", default = 0 }, { "contrast", "number", default = 0 }, { "hed_sigma", "number", default = 0 },
    { "hed_bias", "number", default = 0 } },
  function(x, p)
    return (img().augment(x, { hflip = p.hflip, vflip = p.vflip, rot90 = p.rot90, crop = p.crop, brightness = p.brightness,
      contrast = p.contrast, hed_sigma = p.hed_sigma, hed_bias = p.hed_bias }, p.seed))
  end, "seeded random augmentation (same seed, same result)")
-- IHC quantification as picture-producing steps
local IHC_PARAMS = { { "preset", "string", default = "nuclear", one_of = { "nuclear", "cytoplasmic" } },
  { "thresholds", "table" }, { "options", "table" }, { "thickness", "integer", default = 1, min = 1 } }
local function ihc_run(x, p)
  local Q = require "hs.ihc_quant"
  local o = {}
  for k, v in pairs(p.options or {}) do o[k] = v end
  o.preset, o.thresholds = p.preset, p.thresholds or o.thresholds
  return Q.quantify(x, o), Q
end
step("ihc_overlay", IHC_PARAMS, function(x, p)
  local r, Q = ihc_run(x, p)
  return Q.overlay(x, r, p.thickness)
end, "IHC quantification outlines (blue -, yellow 1+, orange 2+, red 3+)")
step("ihc_labels", IHC_PARAMS, function(x, p) return (ihc_run(x, p)).labels end, "IHC nuclei as an I32 label image")

-- ---------------------------------------------------------------- checking
local function fmt(v)
  if type(v) == "string" then return ("'%s'"):format(v) end
  return tostring(v)
end

local function check_value(where, spec, v)
  local name, ty = spec[1], spec[2]
  local bad = function(what) error(("%s: parameter '%s' must be %s, got %s"):format(where, name, what, fmt(v)), 0) end
  if ty == "number" then
    if type(v) ~= "number" or v ~= v then bad("a number") end
    v = v + 0.0   -- canonical: {sigma = 1} and {sigma = 1.0} describe (and hash) the same
  elseif ty == "integer" then
    if math.type(v) ~= "integer" then
      if type(v) == "number" and math.tointeger(v) then v = math.tointeger(v) else bad("an integer") end
    end
  elseif ty == "string" then
    if type(v) ~= "string" then bad("a string") end
  elseif ty == "boolean" then
    if type(v) ~= "boolean" then bad("true or false") end
  elseif ty == "table" then
    if type(v) ~= "table" then bad("a table") end
  end
  if spec.min and v < spec.min then bad((">= %s"):format(spec.min)) end
  if spec.max and v > spec.max then bad(("<= %s"):format(spec.max)) end
  if spec.one_of then
    local ok = false
    for _, o in ipairs(spec.one_of) do if o == v then ok = true end end
    if not ok then
      local names = {}
      for _, o in ipairs(spec.one_of) do names[#names + 1] = tostring(o) end
      bad("one of " .. table.concat(names, ", "))
    end
  end
  return v
end

local function suggest(name)
  local best, bd
  for n in pairs(STEPS) do
    -- cheap similarity: common prefix length, then length difference
    local k = 0
    while k < #n and k < #name and n:sub(k + 1, k + 1) == name:sub(k + 1, k + 1) do k = k + 1 end
    local d = -k * 10 + math.abs(#n - #name)
    if k >= 3 and (not bd or d < bd) then best, bd = n, d end
  end
  return best
end

local function check_step(i, decl)
  if type(decl) == "string" then decl = { decl } end
  if type(decl) ~= "table" then error(("pipeline step %d: a table {\"name\", ...} expected, got %s"):format(i, type(decl)), 0) end
  local name = decl[1] or decl.op
  if type(name) ~= "string" then error(("pipeline step %d: the first entry must be the step name"):format(i), 0) end
  local spec = STEPS[name]
  if not spec then
    local s = suggest(name)
    error(("pipeline step %d: unknown step '%s'%s (see hs.pipeline.steps())"):format(i, name,
      s and (" (did you mean '" .. s .. "'?)") or ""), 0)
  end
  local where = ("pipeline step %d (%s)"):format(i, name)
  local p, known = { op = name }, { op = true, [1] = true }
  local npos = 0
  for k in pairs(decl) do if math.type(k) == "integer" and k > 1 then npos = math.max(npos, k - 1) end end
  if npos > #spec.params then
    error(("%s: %d positional values, the step takes at most %d"):format(where, npos, #spec.params), 0)
  end
  for j, ps in ipairs(spec.params) do
    local pname = ps[1]
    known[pname] = true
    local v = decl[pname]
    if decl[j + 1] ~= nil then
      if v ~= nil then error(("%s: parameter '%s' given twice"):format(where, pname), 0) end
      v = decl[j + 1]
      known[j + 1] = true
    end
    if v == nil then
      if ps.required then error(("%s: missing parameter '%s'"):format(where, pname), 0) end
      v = ps.default
    end
    if v ~= nil then p[pname] = check_value(where, ps, v) end
  end
  for k in pairs(decl) do
    if not known[k] then
      local names = {}
      for _, ps in ipairs(spec.params) do names[#names + 1] = ps[1] end
      error(("%s: unknown parameter '%s' (known: %s)"):format(where, tostring(k),
        #names > 0 and table.concat(names, ", ") or "none"), 0)
    end
  end
  return p
end

-- ---------------------------------------------------------------- pipelines
local Pipeline = {}
Pipeline.__index = Pipeline

function Pipeline:apply(x)
  for i, p in ipairs(self.steps) do
    local ok, out = pcall(STEPS[p.op].run, x, p)
    if not ok then
      local msg = tostring(out):gsub("^[^:\n]*%.lua:%d+: ", "")   -- the step's own position is noise
      error(("in pipeline step %d (%s): %s"):format(i, p.op, msg), 2)
    end
    if not hs.is_tensor(out) then error(("in pipeline step %d (%s): step returned %s, not a tensor"):format(i, p.op, type(out)), 2) end
    x = out
  end
  return x
end
Pipeline.__call = Pipeline.apply

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = deep_copy(x) end
  return c
end

function Pipeline:describe() return deep_copy(self.steps) end
function Pipeline:json() return hs.json.encode(hs.json.array(self:describe()), { sort_keys = true }) end
function Pipeline:hash() return hs.sys.sha256(self:json()) end
function Pipeline:__len() return #self.steps end
function Pipeline:__tostring() return ("hs.pipeline (%d steps) %s"):format(#self.steps, self:json()) end

-- compile(steps) -> pipeline. steps: a list of declarations (or an already compiled pipeline, or
-- a canonical description as returned by describe(), which compiles to the same hash).
function M.compile(steps)
  if getmetatable(steps) == Pipeline then return steps end
  if type(steps) ~= "table" then error("pipeline: a list of steps expected, got " .. type(steps), 2) end
  local out = {}
  for i, decl in ipairs(steps) do
    local ok, p = pcall(check_step, i, decl)
    if not ok then error(p, 2) end
    out[i] = p
  end
  for k in pairs(steps) do
    if math.type(k) ~= "integer" then error(("pipeline: unexpected key '%s' (a list of steps expected)"):format(tostring(k)), 2) end
  end
  return setmetatable({ steps = out }, Pipeline)
end
M.new = M.compile

function M.is_pipeline(v) return getmetatable(v) == Pipeline end

-- An experiment's preprocessing (`data.preprocess`, a list of steps) runs on every decoded
-- image before training and, from the steps recorded in the model file, before every inference
-- (hs.model_io, the promotion gate, sliding-window segmentation, `histops predict`), so training
-- and serving see the same pixels. It must map a u8 (H,W,C) image to a u8 image of the same
-- shape (end with {"to_u8"} after float steps); masks are never preprocessed.
-- steps: nil / {} (nothing to do), a step list, a description, or a compiled pipeline.
local function preprocess_pipe(steps)
  if steps == nil or (type(steps) == "table" and getmetatable(steps) ~= Pipeline and #steps == 0) then return nil end
  return M.compile(steps)
end

-- img: u8 (H,W,C) or (H,W) -> the preprocessed image (same shape and dtype); img itself when
-- there are no steps.
function M.apply_image(steps, img)
  local pipe = preprocess_pipe(steps)
  if not pipe then return img end
  local s = img:shape()
  local x = (#s == 3 and s[3] == 1) and img:reshape({ s[1], s[2] }) or img
  local out = pipe(x)
  if out:dtype() ~= img:dtype() or out:numel() ~= img:numel() then
    local os_ = table.concat(out:shape(), "x")
    error(("data.preprocess: the steps turn a %s %s image into a %s %s one; they must keep the shape and end "
      .. "in u8 (add {\"to_u8\"} after float steps)"):format(img:dtype(), table.concat(s, "x"), out:dtype(), os_), 2)
  end
  return out:reshape(s)
end

-- cache: u8 (N,H,W,C), preprocessed in place image by image; returns cache.
function M.apply_cache(steps, cache)
  local pipe = preprocess_pipe(steps)
  if not pipe then return cache end
  for i = 1, cache:shape()[1] do
    local slot = cache:select(1, i)
    slot:copy(M.apply_image(pipe, slot))
  end
  return cache
end

function M.steps()
  local names = {}
  for n in pairs(STEPS) do names[#names + 1] = n end
  table.sort(names)
  return names
end

function M.help(name)
  local s = STEPS[name]
  if not s then return nil end
  local ps = {}
  for _, p in ipairs(s.params) do
    ps[#ps + 1] = p[1] .. (p.required and "" or ("=" .. (p.default ~= nil and tostring(p.default) or "nil")))
  end
  return ("%s(%s): %s"):format(name, table.concat(ps, ", "), s.doc)
end

function M.register(name, spec)
  assert(type(name) == "string" and type(spec) == "table" and type(spec.run) == "function",
    "register(name, {params = {...}, run = function(img, p) ... end})")
  if STEPS[name] then error(("pipeline step '%s' already exists"):format(name), 2) end
  STEPS[name] = { params = spec.params or {}, run = spec.run, doc = spec.doc or "" }
end

return M
