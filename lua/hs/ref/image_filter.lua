-- lua/hs/ref/image_filter.lua: reference-runner handlers (see hs/cmd/check_ref.lua) for the
-- OpenCV 4.6 filter/geometry/segmentation cases of shared/reference/image: gaussian, median,
-- box, resize, threshold_otsu, morphology, connected_components. Only glue: the numerics are
-- hs.imgproc's (core/filter.c, morph.c, geometry.c, segment.c). Stored tensors are F32 holding
-- u8 values (labels I64); inputs are cast back to U8 with astype unless params.dtype is "f32".
local hs = require "histops"
local ip = (hs.image and hs.image.median and hs.image) or hs.imgproc or require "hs.imgproc"

local C = require "hs.ref.lib.case"
local input, one = C.input, C.one

-- U8 outputs: "within 1 LSB" in the notes allows one grey level, otherwise exact.
local function u8_tol(case)
  local notes = (case.notes or ""):lower()
  if notes:find("within 1", 1, true) or notes:find("1 lsb", 1, true) then return "grey1" end
  return "exact"
end

local function out_tol(case)
  if case.params.dtype == "f32" then return "float" end
  return u8_tol(case)
end

local function border_of(case)
  local b = case.params.border
  if b == nil then return "reflect101" end
  return b
end

return {
  gaussian = function(case)
    local p = case.params
    if not p.sigma then return nil, "no sigma in params" end
    return one(ip.gaussian(input(case), p.sigma, { border = border_of(case), ksize = p.ksize }), case,
      out_tol(case))
  end,

  median = function(case)
    return one(ip.median(input(case), case.params.ksize), case, "exact")
  end,

  box = function(case)
    return one(ip.box(input(case), case.params.ksize, { border = border_of(case) }), case, out_tol(case))
  end,

  resize = function(case)
    local p = case.params
    local interp = p.interpolation or "bilinear"
    if interp ~= "bilinear" and interp ~= "area" and interp ~= "nearest" and interp ~= "linear" then
      return nil, "interpolation '" .. tostring(interp) .. "' not handled (nearest, bilinear, area)"
    end
    return one(ip.resize(input(case), p.width, p.height, interp), case, out_tol(case))
  end,

  threshold_otsu = function(case)
    local mask, t = ip.otsu(input(case), { invert = true })   -- THRESH_BINARY_INV: 255 where gray <= t
    local cmp = { { name = "out", got = mask, want = case.t.out, tol = "exact" } }
    if case.t.threshold then
      cmp[#cmp + 1] = { name = "threshold", got = hs.tensor({ t }), want = case.t.threshold, tol = "exact" }
    end
    return cmp
  end,

  morphology = function(case)
    local p = case.params
    local k = p.ksize or 3
    local se = ip.structuring_element(p.shape or "rect", k)
    local cmp = {}
    if case.t.kernel then
      cmp[#cmp + 1] = { name = "kernel", got = se, want = case.t.kernel, tol = "exact" }
    end
    cmp[#cmp + 1] = { name = "out", got = ip.morphology(input(case), p.op, { kernel = se }), want = case.t.out,
      tol = "exact" }
    return cmp
  end,

  connected_components = function(case)
    local conn = case.params.connectivity or 8
    local labels, n, stats = ip.connected_components(input(case), { connectivity = conn, dtype = "i64" })
    local cmp = { { name = "labels", got = labels, want = case.t.labels, tol = "exact" } }
    if case.t.count then
      cmp[#cmp + 1] = { name = "count", got = hs.tensor({ n }), want = case.t.count, tol = "exact" }
    end
    if case.t.areas_sorted then
      local areas = {}
      for i = 1, n do areas[i] = stats[i].area end
      table.sort(areas, function(a, b) return a > b end)   -- the generator sorts descending
      if #areas == 0 then
        cmp[#cmp + 1] = { name = "areas_sorted", got = hs.zeros({ 0 }), want = case.t.areas_sorted, tol = "exact" }
      else
        cmp[#cmp + 1] = { name = "areas_sorted", got = hs.tensor(areas), want = case.t.areas_sorted, tol = "exact" }
      end
    end
    return cmp
  end,
}
