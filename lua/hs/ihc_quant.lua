-- lua/hs/ihc_quant.lua: IHC quantification for people: count DAB-positive and negative nuclei of
-- a DAB + hematoxylin image, labelling index (Ki-67 index) and H-score, a label image and an
-- overlay; validation against synthetic tiles with known truth (hs.synth). Not the kernels
-- (core/ihc.c via hs.ihc) and not a cell classifier.
--
-- Method (core/ihc.h): rgb2hed (skimage conventions; OD = 6 * rgb2hed, base-10 optical density)
-- -> nuclear channel H + DAB (preset "nuclear", for nuclear markers such as Ki-67/ER/PR/p53) or H
-- alone minus its local background (preset "cytoplasmic", for membrane/cytoplasmic markers such
-- as HER2 or FHL2) -> Gaussian smoothing (sigma 1) -> Otsu, floored at min_threshold OD (or a
-- fixed OD threshold) -> opening (radius 1) -> fill holes -> distance transform + watershed
-- (min_distance 4) splits touching nuclei -> objects outside [min_area, max_area] dropped ->
-- mean DAB OD per nucleus (preset "cytoplasmic": over the nucleus grown by cell_radius = 4 px)
-- -> negative below t1, 1+ in [t1, t2), 2+ in [t2, t3), 3+ from t3; defaults 0.10, 0.30, 0.60
-- (tuned on synthetic tiles whose classes are rendered at DAB OD 0.18, 0.45, 0.85).
-- Labelling index = 100 * positive / count; H-score = 1*%1+ + 2*%2+ + 3*%3+ (0..300).
--
--   local Q = require "hs.ihc_quant"
--   local r = Q.quantify(rgb_or_path [, opts])   -- r.count, r.positive, r.negative, r.by_intensity,
--                                                -- r.labelling_index, r.h_score, r.nuclei, r.labels
--   local ov = Q.overlay(rgb, r [, thickness])    -- outlines: blue -, yellow 1+, orange 2+, red 3+
--   local v = Q.validate { tiles = 20 }           -- errors against synthetic truth
local hs = require "histops"
local C = {}   -- a copy: hs.ihc may later be given this module's functions (hs.ihc.quantify)
for k, v in pairs(require "hs.ihc") do C[k] = v end

local M = {}

M.PRESETS = {
  nuclear = {},
  cytoplasmic = { nuclear = "h", compartment = "cell", background_sigma = 15, min_threshold = 0.05 },
}

local KNOWN = {}
for k in pairs(C.defaults()) do KNOWN[k] = true end
KNOWN.preset = true

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = tostring(k) end
  table.sort(ks)
  return ks
end

-- Full option table: defaults < preset < explicit options. Raises on unknown names/bad values.
function M.options(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("ihc options must be a table, got " .. type(opts), 2) end
  for k in pairs(opts) do
    if not KNOWN[k] then
      error(("unknown ihc option '%s' (known: %s)"):format(tostring(k), table.concat(sorted_keys(KNOWN), ", ")), 2)
    end
  end
  local preset = opts.preset or "nuclear"
  local base = M.PRESETS[preset]
  if not base then
    error(("unknown ihc preset '%s' (known: %s)"):format(tostring(preset), table.concat(sorted_keys(M.PRESETS), ", ")), 2)
  end
  local merged = {}
  for k, v in pairs(base) do merged[k] = v end
  for k, v in pairs(opts) do if k ~= "preset" then merged[k] = v end end
  local full = C.check_options(merged)   -- raises "bad option 'x' ..." / "ihc: thresholds ..."
  full.preset = preset
  return full
end

function M.defaults() return M.options {} end

local function copy_opts(o)
  local c = {}
  for k, v in pairs(o) do if k ~= "preset" then c[k] = v end end
  return c
end

local result_mt = { __index = {} }
function result_mt.__index.overlay(r, rgb, thickness) return M.overlay(rgb, r, thickness) end
function result_mt.__index.class_map(r) return C.class_map(r.labels, r.nuclei) end
function result_mt.__index.summary(r) return M.summary(r) end

-- quantify(image, opts): image is an (H,W,3) tensor (U8/U16/F32) or a file path. A path that
-- cannot be read gives nil, message (like io.open).
function M.quantify(image, opts)
  local full = M.options(opts)
  if type(image) == "string" then
    local img, err = hs.image.load(image)
    if not img then return nil, err end
    image = img
  end
  if not hs.is_tensor(image) then error("quantify: image must be an hs.tensor or a path, got " .. type(image), 2) end
  local sh = image:shape()
  if #sh == 3 and sh[3] == 4 then image = image:narrow(3, 1, 3):contiguous() end
  local r = C.quantify(image, copy_opts(full))
  r.options = full
  r.size = { sh[2], sh[1] }
  return setmetatable(r, result_mt)
end

-- An RGB U8 image with the outline of each nucleus in its class colour.
function M.overlay(rgb, r, thickness)
  if rgb:dtype() ~= "u8" then rgb = hs.image.to_u8(rgb) end
  local sh = rgb:shape()
  if #sh == 3 and sh[3] == 4 then rgb = rgb:narrow(3, 1, 3):contiguous() end
  return C.overlay(rgb, r.labels, r.nuclei, thickness or 1)
end

-- The numbers of a result as a plain table (JSON-ready: no tensors).
function M.summary(r)
  local o = copy_opts(r.options); o.preset = r.options.preset
  return {
    count = r.count, positive = r.positive, negative = r.negative,
    by_intensity = { r.by_intensity[1], r.by_intensity[2], r.by_intensity[3] },
    labelling_index = r.labelling_index, h_score = r.h_score, threshold = r.threshold,
    options = o,
  }
end

function M.format(r)
  return ("%d nuclei: %d positive (1+ %d, 2+ %d, 3+ %d), %d negative; labelling index %.1f %%; H-score %.0f")
    :format(r.count, r.positive, r.by_intensity[1], r.by_intensity[2], r.by_intensity[3], r.negative,
      r.labelling_index, r.h_score)
end

-- The synthetic validation grid: tile i varies density, positivity, intensity mix, spacing
-- (including touching and overlapping nuclei), radius and texture; all deterministic in (i, seed).
function M.validation_tile(i, seed, size)
  local dens = { 15, 30, 50, 80, 110 }
  local gaps = { 2, 0, -2, 1, -3 }
  local radii = { { 6, 10 }, { 5, 8 }, { 7, 11 }, { 4, 7 } }
  local mixes = { { 1, 1, 1 }, { 3, 1, 1 }, { 1, 2, 3 }, { 1, 3, 1 } }
  size = size or 256
  local scale = (size * size) / (256 * 256)
  return {
    width = size, height = size, seed = (seed or 1) * 7919 + i,
    nuclei = math.max(1, math.floor(dens[(i - 1) % #dens + 1] * scale + 0.5)),
    positive_fraction = ((i * 37) % 100) / 100,
    min_gap = gaps[(i - 1) % #gaps + 1],
    radius = radii[(i - 1) % #radii + 1],
    intensity_mix = mixes[(i - 1) % #mixes + 1],
    texture = (i % 3) * 0.15, eosin_od = (i % 2) * 0.08, noise = 0.03,
  }
end

-- validate{tiles = 20, size = 256, seed = 1, options = {...}} -> { tiles = { {truth=, got=, spec=} },
--   count = {mean=, max=} (percent error of the total), labelling_index = {mean=, max=} (points),
--   h_score = {mean=, max=}, seconds = }
function M.validate(args)
  args = args or {}
  local n = args.tiles or 20
  local opts = args.options
  local out = { tiles = {}, count = { mean = 0, max = 0 }, labelling_index = { mean = 0, max = 0 },
    h_score = { mean = 0, max = 0 } }
  local t0 = hs.sys and hs.sys.clock() or os.clock()
  for i = 1, n do
    local spec = M.validation_tile(i, args.seed, args.size)
    local rgb, _, truth = hs.synth.ihc(spec)
    local r = M.quantify(rgb, opts)
    local e = {
      count = truth.count > 0 and 100 * math.abs(r.count - truth.count) / truth.count or r.count,
      labelling_index = math.abs(r.labelling_index - truth.labelling_index),
      h_score = math.abs(r.h_score - truth.h_score),
    }
    for k, v in pairs(e) do
      out[k].mean = out[k].mean + v / n
      if v > out[k].max then out[k].max = v end
    end
    out.tiles[i] = { spec = spec, errors = e,
      truth = { count = truth.count, positive = truth.positive, labelling_index = truth.labelling_index, h_score = truth.h_score },
      got = { count = r.count, positive = r.positive, labelling_index = r.labelling_index, h_score = r.h_score } }
  end
  out.seconds = (hs.sys and hs.sys.clock() or os.clock()) - t0
  return out
end

return M
