-- lua/hs/sliding.lua: whole-image inference of a segmentation model by sliding windows: the
-- image (any size) is padded by reflection, cut into overlapping tiles of the model's input size,
-- each tile preprocessed exactly as in training (hs.loader: v/255, mean/std of the model file),
-- the logits of overlapping tiles averaged, then sigmoid and threshold. Not a trainer and not a
-- metric: `histops eval` and the run report call it. Binary (1-channel output) models only.
--   M.segment(m, img, opts) -> prob (H,W) f32 in [0,1], mask (H,W) u8 0/255
--     m: a model_io object ({model=, meta=}); img: HWC (or HW) u8 image at its own size
--     opts: overlap = 0.25 (fraction of the tile shared by neighbours, 0 <= overlap < 1),
--           threshold = 0.5 (on the probability), batch = 8 (tiles per forward),
--           resize = nil | {h, w} (resample the image first, e.g. to the training cache size;
--           the maps are resampled back to the image size)
--   M.windows(H, W, th, tw, overlap) -> list of {y, x} (1-based top-left corners) covering an
--     H x W image with th x tw tiles (H >= th, W >= tw); the last row/column ends at the border
--   M.to_channels(img, C) -> HWC u8 image with C channels (gray <-> RGB, alpha dropped)
local hs = require "histops"

local M = {}

local function positions(n, t, stride)
  local out = { 1 }
  if n <= t then return out end
  local p = 1
  while p + t - 1 < n do
    p = math.min(p + stride, n - t + 1)
    out[#out + 1] = p
  end
  return out
end

function M.windows(H, W, th, tw, overlap)
  overlap = overlap or 0.25
  if overlap < 0 or overlap >= 1 then error(("sliding: overlap %s is not in [0, 1)"):format(tostring(overlap)), 2) end
  local sy = math.max(1, math.floor(th * (1 - overlap) + 0.5))
  local sx = math.max(1, math.floor(tw * (1 - overlap) + 0.5))
  local out = {}
  for _, y in ipairs(positions(H, th, sy)) do
    for _, x in ipairs(positions(W, tw, sx)) do out[#out + 1] = { y, x } end
  end
  return out
end

-- u16 and f32 images (16-bit PNGs, decoded floats in [0,1]) become u8 first
local function to_u8(img)
  local dt = img:dtype()
  if dt == "u8" then return img end
  if dt == "u16" then return img:astype("f32"):div(257):round():clamp(0, 255):astype("u8") end
  if dt == "f32" or dt == "f64" then return img:astype("f32"):mul(255):round():clamp(0, 255):astype("u8") end
  error(("sliding: image dtype %s is not supported (u8, u16, f32)"):format(dt), 3)
end

function M.to_channels(img, C)
  img = to_u8(img)
  local s = img:shape()
  if #s == 2 then img = img:reshape({ s[1], s[2], 1 }); s = img:shape() end
  if #s ~= 3 then error(("sliding: image must be HW or HWC, got %d dims"):format(#s), 2) end
  local c = s[3]
  if c == C then return img:contiguous() end
  if C == 3 and c == 1 then return hs.image.gray2rgb(img:reshape({ s[1], s[2] })) end
  if C == 3 and c == 4 then return img:narrow(3, 1, 3):contiguous() end
  if C == 1 and (c == 3 or c == 4) then
    return hs.image.rgb2gray(img:narrow(3, 1, 3):contiguous()):reshape({ s[1], s[2], 1 })
  end
  if C == 1 and c == 2 then return img:narrow(3, 1, 1):contiguous() end
  error(("sliding: image has %d channels, the model expects %d"):format(c, C), 2)
end

function M.segment(m, img, opts)
  opts = opts or {}
  local meta = m.meta or {}
  local inp = meta.input or {}
  if not inp.size then error("sliding: the model metadata has no input size", 2) end
  local th, tw = inp.size[1], inp.size[2]
  local C = inp.channels or 3
  local overlap = opts.overlap or 0.25
  local thr = opts.threshold or 0.5
  if thr <= 0 or thr >= 1 then error(("sliding: threshold %s is not in (0, 1)"):format(tostring(thr)), 2) end
  local B = opts.batch or 8

  local im = M.to_channels(img, C)
  local H0, W0 = im:shape()[1], im:shape()[2]
  if opts.resize and (opts.resize[1] ~= H0 or opts.resize[2] ~= W0) then
    local shrink = opts.resize[1] <= H0 and opts.resize[2] <= W0
    im = hs.image.resize(im, opts.resize[2], opts.resize[1], shrink and "area" or "bilinear")
    if #im:shape() == 2 then im = im:reshape({ opts.resize[1], opts.resize[2], 1 }) end
  end
  local H, W = im:shape()[1], im:shape()[2]
  -- the model's recorded data.preprocess, on the whole image (as training did on whole images)
  im = require("hs.pipeline").apply_image(meta.pipeline and meta.pipeline.preprocess, im:contiguous())

  -- reflection margin: border pixels get context like interior ones; at least the tile size
  local my = math.floor(th * overlap / 2 + 0.5)
  local mx = math.floor(tw * overlap / 2 + 0.5)
  local top, left = my, mx
  local bottom, right = my + math.max(0, th - (H + 2 * my)), mx + math.max(0, tw - (W + 2 * mx))
  local padded = im
  if top + bottom + left + right > 0 then
    padded = hs.image.pad(im, { top = top, bottom = bottom, left = left, right = right }, { border = "reflect101" })
    if #padded:shape() == 2 then padded = padded:reshape({ H + top + bottom, W + left + right, 1 }) end
  end
  local Hp, Wp = padded:shape()[1], padded:shape()[2]
  local wins = M.windows(Hp, Wp, th, tw, overlap)

  local acc, cnt = hs.zeros({ Hp, Wp }), hs.zeros({ Hp, Wp })
  local spec = { out = { th, tw }, mean = inp.mean, std = inp.std, seed = 0 }
  local x = hs.zeros({ B, C, th, tw })
  for first = 1, #wins, B do
    local n = math.min(B, #wins - first + 1)
    local cache = hs.zeros({ n, th, tw, C }, "u8")
    for i = 1, n do
      local w = wins[first + i - 1]
      cache:select(1, i):copy(padded:narrow(1, w[1], th):narrow(2, w[2], tw))
    end
    local L = hs.loader.new(cache, nil, spec, { batch = B, shuffle = false, training = false })
    L:start_epoch(0)
    L:next(x)
    L:release()
    local out = m.model(x)   -- one inference graph for (B,C,th,tw), reused by every batch
    local os_ = out:shape()
    if os_[2] ~= 1 or os_[3] ~= th or os_[4] ~= tw then
      error(("sliding: model output is %s for a %dx%d tile; a binary segmentation model gives (B,1,%d,%d)")
        :format(table.concat(os_, "x"), th, tw, th, tw), 2)
    end
    for i = 1, n do
      local w = wins[first + i - 1]
      acc:narrow(1, w[1], th):narrow(2, w[2], tw):add_(out:select(1, i):select(1, 1))
      cnt:narrow(1, w[1], th):narrow(2, w[2], tw):add_(1)
    end
  end
  local logit = acc:div(cnt):narrow(1, top + 1, H):narrow(2, left + 1, W):contiguous()
  local prob = logit:sigmoid()
  if H ~= H0 or W ~= W0 then
    prob = hs.image.resize(prob, W0, H0, "bilinear")
  end
  prob = prob:reshape({ H0, W0 }):contiguous()
  local mask = prob:gt(thr):astype("u8"):mul(255):astype("u8")
  return prob, mask
end

return M
