-- lua/hs/ref/image_color.lua: reference-runner handlers (see hs/cmd/check_ref.lua) for the colour
-- cases of shared/reference/image: rgb2hed, hed2rgb, rgb2hsv, rgb2lab (scikit-image 0.19),
-- rgb2gray and equalize_hist (OpenCV 4.6). Only glue: the numerics are hs.image's.
-- Stored tensors are F32; inputs that were uint8 (the index says so) are cast back with astype.
local hs = require "histops"
local image = hs.image or require "hs.image"

local C = require "hs.ref.lib.case"
local input, one = C.input, C.one

-- Tolerance for a U8 output from the case notes ("exact" / "within 1 LSB"), default exact.
local function u8_tol(case)
  local notes = (case.notes or ""):lower()
  if notes:find("within 1 lsb", 1, true) or notes:find("1 grey", 1, true) then return "grey1" end
  return "exact"
end

local function hed_params_ok(case)
  local s = case.params.stains
  return s == nil or s == "ruifrok_johnston_hed" or s == "hed"
end

return {
  rgb2hed = function(case)
    if not hed_params_ok(case) then return nil, "stains '" .. tostring(case.params.stains) .. "' not handled" end
    return one(image.rgb2hed(input(case)), case, "float")
  end,

  hed2rgb = function(case)
    if not hed_params_ok(case) then return nil, "stains '" .. tostring(case.params.stains) .. "' not handled" end
    return one(image.hed2rgb(case.t.x), case, "float")   -- x holds float HED densities
  end,

  rgb2hsv = function(case)
    return one(image.rgb2hsv(input(case)), case, "float")
  end,

  rgb2lab = function(case)
    local p = case.params
    if (p.illuminant and p.illuminant ~= "D65") or (p.observer and tostring(p.observer) ~= "2") then
      return nil, ("illuminant %s / observer %s not handled (D65, 2 only)"):format(tostring(p.illuminant),
        tostring(p.observer))
    end
    return one(image.rgb2lab(input(case)), case, "float")
  end,

  rgb2gray = function(case)
    local w = case.params.weights
    if w and w ~= "bt601" then return nil, "weights '" .. tostring(w) .. "' not handled (bt601 only)" end
    local x = input(case)
    local got = image.rgb2gray(x)
    return one(got, case, x:dtype() == "u8" and u8_tol(case) or "float")
  end,

  equalize_hist = function(case)
    local x = case.t.x:astype("u8")
    return one(image.equalize_hist(x), case, u8_tol(case))
  end,
}
