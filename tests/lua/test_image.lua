-- tests/lua/test_image.lua: the hs.image binding: file I/O (nil, message on environmental
-- failures; raised errors on bad arguments), layout conversions, colour, stains, contrast.
-- Run: build/histops tests/lua/test_image.lua (exit status is the verdict).
local hs = require "histops"
local image = hs.image or require "hs.image"

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

local function max_abs_diff(a, b)
  local la, lb = a:tolist(), b:tolist()
  assert(#la == #lb, "sizes differ")
  local m = 0
  for i = 1, #la do m = math.max(m, math.abs(la[i] - lb[i])) end
  return m
end

local tmp = os.tmpname()
os.remove(tmp)
local function tmpfile(ext) return tmp .. ext end

-- a small synthetic RGB image
local img = hs.zeros({ 12, 10, 3 }, "u8")
for y = 1, 12 do
  for x = 1, 10 do
    img:set(y, x, 1, (y * 20) % 256); img:set(y, x, 2, (x * 25) % 256); img:set(y, x, 3, 128)
  end
end

-- PNG round trip through a file and a string
assert(image.save(tmpfile(".png"), img) == true)
local back = assert(image.load(tmpfile(".png")))
assert(back:dtype() == "u8" and back:shape(3) == 3 and max_abs_diff(back, img) == 0)
local info = assert(image.info(tmpfile(".png")))
assert(info.width == 10 and info.height == 12 and info.channels == 3 and info.bit_depth == 8 and info.format == "png")
local s = image.encode_png(img)
assert(s:sub(2, 4) == "PNG")
assert(max_abs_diff(assert(image.decode(s)), img) == 0)
-- JPEG with quality
assert(image.save(tmpfile(".jpg"), img, { quality = 95 }))
local j = assert(image.load(tmpfile(".jpg")))
assert(j:shape(1) == 12 and j:shape(2) == 10 and j:shape(3) == 3)
assert(#image.encode_jpeg(img, 10) < #image.encode_jpeg(img, 95))
os.remove(tmpfile(".png")); os.remove(tmpfile(".jpg"))

-- environmental failures: nil, message
local t, msg = image.load("/nonexistent/x.png")
assert(t == nil and msg:find("/nonexistent/x.png", 1, true))
t, msg = image.decode("not an image at all")
assert(t == nil and msg:find("unknown signature"))
t, msg = image.decode(s:sub(1, #s // 2))
assert(t == nil and msg:find("truncated"))
t, msg = image.info("/nonexistent/x.png")
assert(t == nil and msg)
local ok, err = image.save("/nonexistent-dir/x.png", img)
assert(ok == nil and err:find("nonexistent%-dir"))
-- bad arguments raise
check_error("U8 or U16", image.save, tmpfile(".png"), hs.zeros({ 4, 4, 3 }))
check_error("unknown image extension", image.save, tmpfile(".bmp"), img)
check_error("hs.tensor expected", image.save, tmpfile(".png"), 42)

-- layout conversions
local chw = image.to_chw(img)
assert(chw:dtype() == "f32" and chw:shape(1) == 3 and chw:shape(2) == 12 and chw:shape(3) == 10)
assert(math.abs(chw:get(2, 3, 4) - img:get(3, 4, 2) / 255) < 1e-7)
assert(max_abs_diff(image.from_chw(chw), img) == 0)
assert(max_abs_diff(image.to_u8(image.to_float(img)), img) == 0)
assert(image.to_chw(hs.zeros({ 5, 6 }, "u8")):shape(1) == 1)

-- colour
local g = image.rgb2gray(img)
assert(g:dim() == 2 and g:dtype() == "u8")
assert(image.gray2rgb(g):shape(3) == 3)
local hsv = image.rgb2hsv(img)
assert(max_abs_diff(image.hsv2rgb(hsv), image.to_float(img)) < 1e-6)
local lab = image.rgb2lab(img)
assert(max_abs_diff(image.lab2rgb(lab), image.to_float(img)) < 1e-5)
check_error("rgb2hed: expected %(H,W,3%) image, got %[5,5%]", image.rgb2hed, hs.zeros({ 5, 5 }))
check_error("rgb2lab: expected %(H,W,3%) image", image.rgb2lab, hs.zeros({ 5, 5, 4 }))

-- stains
local hed = image.rgb2hed(img)
assert(hed:dtype() == "f32")
local m = image.stain_matrix("hed")
assert(m:shape(1) == 3 and math.abs(m:get(1, 1) - 0.65) < 1e-12)
assert(max_abs_diff(image.deconvolve(img, m), hed) == 0)
assert(max_abs_diff(image.deconvolve(img, "hed"), hed) == 0)
local hd = image.stain_matrix({ { 0.65, 0.704, 0.286 }, { 0.268, 0.57, 0.776 } })
assert(hd:shape(1) == 3)
assert(image.deconvolve(img, { { 0.65, 0.704, 0.286 }, { 0.268, 0.57, 0.776 } }):shape(3) == 3)
check_error("unknown stain set", image.stain_matrix, "nope")
check_error("parallel", image.stain_matrix, { { 1, 1, 0 }, { 2, 2, 0 } })
assert(max_abs_diff(image.combine(image.deconvolve(img, "hdx"), "hdx"), image.hed2rgb(image.rgb2hed(img))) < 1)

-- normalisation on a real tissue image when the data are present
local data = os.getenv("HISTOPS_DATA") or (HISTOPS_SOURCE_DIR and HISTOPS_SOURCE_DIR .. "/../shared/data")
  or "/work/shared/data"
local ihc = image.load(data .. "/skimage_microscopy_samples/ihc.png")
if ihc then
  local crop = ihc:narrow(1, 1, 128):narrow(2, 1, 128)
  local r = image.reinhard_fit(crop)
  assert(#r.mean == 3 and #r.std == 3 and r.mean[1] > 0)
  local out = image.reinhard_apply(crop, r)
  assert(out:dtype() == "u8" and max_abs_diff(out, crop) <= 2)
  local mk = image.macenko_fit(crop)
  assert(#mk.stains == 2 and #mk.stains[1] == 3 and mk.max_conc[1] > 0)
  local n1 = image.macenko_apply(crop)            -- default H&E target
  local n2 = image.macenko_apply(crop, mk, { io = 240, alpha = 1, beta = 0.15 })
  assert(n1:shape(3) == 3 and n2:dtype() == "u8")
else
  print("test_image.lua: shared data not found, skipping the tissue checks")
end
check_error("tissue pixels", image.macenko_fit, hs.full({ 4, 4, 3 }, 255, "u8"))
check_error("field 'mean'", image.reinhard_apply, img, { std = { 1, 1, 1 } })

-- contrast
local ac = image.auto_contrast(img, { low = 1, high = 99 })
assert(ac:dtype() == "u8")
assert(image.auto_contrast(img, { joint = true }):shape(3) == 3)
assert(max_abs_diff(image.gamma(img, 1.0), img) == 0)
check_error("gamma must be positive", image.gamma, img, 0)
local eq = image.equalize_hist(g)
assert(eq:dtype() == "u8")
local cl = image.clahe(g, { clip = 2.0, tiles = 4 })
assert(cl:dim() == 2)
assert(image.clahe(g, { tiles = { 2, 3 } }):dim() == 2)
check_error("U8", image.equalize_hist, hs.zeros({ 4, 4 }))
check_error("tile grid", image.clahe, g, { tiles = 0 })

print("test_image.lua: ok")
