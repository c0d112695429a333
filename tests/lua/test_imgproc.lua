-- tests/lua/test_imgproc.lua: the hs.imgproc binding: every function once on small images,
-- 1-based coordinates in crop/tiles/stats, option tables, and error messages for bad arguments.
-- Run: build/histops tests/lua/test_imgproc.lua (exit status is the verdict).
local hs = require "histops"
local ip = hs.imgproc or require "hs.imgproc"

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

local function u8(t) return hs.tensor(t):astype("u8") end

local function shape(t) return table.concat(t:shape(), "x") end

-- an RGB test image: 20x30, values vary smoothly
local img = hs.zeros({ 20, 30, 3 }, "u8")
for y = 1, 20 do
  for x = 1, 30 do
    img:set(y, x, 1, (x * 7) % 256); img:set(y, x, 2, (y * 11) % 256); img:set(y, x, 3, 128)
  end
end

-- filters keep shape and dtype
for _, out in ipairs { ip.gaussian(img, 1.0), ip.gaussian(img, 1.0, { border = "replicate", ksize = 5 }),
  ip.box(img, 3), ip.median(img, 3), ip.median(img, 7), ip.unsharp(img, 1.0, 0.5),
  ip.separable(img, { 0.25, 0.5, 0.25 }, { 1 }) } do
  assert(shape(out) == "20x30x3" and out:dtype() == "u8", shape(out))
end
local c = hs.full({ 5, 5 }, 100, "u8")
assert(ip.gaussian(c, 2.0):get(3, 3) == 100)
assert(ip.box(c:astype("f32"), 3):dtype() == "f32")
check_error("median: ksize must be odd >= 3, got 4", ip.median, img, 4)
check_error("unknown mode 'wrap'", ip.gaussian, img, 1.0, { border = "wrap" })
check_error("hs.tensor expected", ip.gaussian, nil, 1.0)
check_error("dtype must be U8 or F32, got I64", ip.box, hs.zeros({ 4, 4 }, "i64"), 3)

-- morphology
local se = ip.structuring_element("ellipse", 5)
assert(shape(se) == "5x5" and se:get(1, 1) == 0 and se:get(1, 3) == 1 and se:get(2, 1) == 1)
local m = hs.zeros({ 9, 9 }, "u8")
m:set(5, 5, 255)
assert(ip.dilate(m, { shape = "rect", ksize = 3 }):get(4, 4) == 255)
assert(ip.dilate(m, { shape = "cross", ksize = 3 }):get(4, 4) == 0)
assert(ip.erode(m, { shape = "rect", ksize = 3 }):get(5, 5) == 0)
assert(ip.open(m, { ksize = 3 }):get(5, 5) == 0)
assert(ip.close(m, { kernel = se }):get(5, 5) == 255)
assert(ip.morphology(m, "dilate", se):get(3, 5) == 255)
check_error("unknown shape 'star'", ip.erode, m, { shape = "star" })
check_error("unknown op 'thin'", ip.morphology, m, "thin", {})

-- thresholds
local g = u8 { { 10, 20, 200 }, { 30, 220, 240 } }
local mask = ip.threshold(g, 100)
assert(mask:get(1, 3) == 255 and mask:get(1, 1) == 0)
assert(ip.threshold(g, 100, { invert = true }):get(1, 1) == 255)
local om, t = ip.otsu(g)
assert(t >= 30 and t < 200, "otsu threshold " .. t)
assert(om:get(1, 1) == 255 and om:get(2, 3) == 0)   -- default: dark objects are 255
assert(ip.otsu(g, { invert = false }):get(1, 1) == 0)
check_error("otsu: image must be gray", ip.otsu, img)
assert(shape(ip.adaptive_threshold(ip.gaussian(img, 1):select(3, 1):contiguous(), { block = 5, c = 2,
  method = "gaussian" })) == "20x30")
check_error("block must be odd >= 3", ip.adaptive_threshold, g, { block = 4 })

-- components with stats (1-based coordinates)
local cm = u8 { { 0, 0, 0, 0, 0 }, { 0, 1, 1, 0, 0 }, { 0, 1, 1, 0, 1 }, { 0, 0, 0, 0, 1 } }
local inten = hs.full({ 4, 5 }, 7, "f32")
local labels, n, stats = ip.connected_components(cm, inten, { connectivity = 8 })
assert(n == 2 and labels:dtype() == "i32")
assert(stats[1].area == 4 and stats[1].bbox.x == 2 and stats[1].bbox.y == 2 and stats[1].bbox.w == 2)
assert(stats[1].centroid.x == 2.5 and stats[1].centroid.y == 2.5 and stats[1].mean[1] == 7)
assert(stats[2].area == 2 and stats[2].bbox.x == 5)
local l64 = ip.connected_components(cm, { dtype = "i64", connectivity = 4 })
assert(l64:dtype() == "i64")
check_error("connectivity must be 4 or 8", ip.connected_components, cm, { connectivity = 6 })

-- distance transform, watershed, nuclei splitting
local disc = hs.zeros({ 30, 44 }, "u8")
for y = 1, 30 do
  for x = 1, 44 do
    if (y - 15) ^ 2 + (x - 14) ^ 2 <= 64 or (y - 15) ^ 2 + (x - 28) ^ 2 <= 64 then disc:set(y, x, 255) end
  end
end
local d = ip.distance_transform(disc)
assert(d:dtype() == "f32" and d:get(1, 1) == 0 and d:get(15, 14) > 7)
local nl, nn = ip.split_nuclei(disc, { min_distance = 4 })
assert(nn == 2, "split_nuclei found " .. nn)
assert(nl:get(15, 14) ~= nl:get(15, 28))
local markers = hs.zeros({ 30, 44 }, "i32")
markers:set(15, 14, 1); markers:set(15, 28, 2)
local neg = hs.zeros({ 30, 44 })
for y = 1, 30 do for x = 1, 44 do neg:set(y, x, -d:get(y, x)) end end
local ws = ip.watershed(neg, markers, disc)
assert(ws:get(15, 8) == 1 and ws:get(15, 34) == 2 and ws:get(1, 1) == 0)

-- geometry: crop is 1-based (x, y, w, h)
local cr = ip.crop(img, 2, 3, 4, 5)
assert(shape(cr) == "5x4x3" and cr:get(1, 1, 1) == img:get(3, 2, 1))
check_error("leaves the", ip.crop, img, 28, 1, 5, 5)
local p = ip.pad(g, { top = 1, left = 2 }, { border = "replicate" })
assert(shape(p) == "3x5" and p:get(1, 1) == 10)
assert(ip.pad(g, 1):get(1, 1) == 0)
assert(ip.flip(g, "h"):get(1, 1) == 200 and ip.flip(g, "v"):get(1, 1) == 30)
check_error("direction must be 'h' or 'v'", ip.flip, g, "x")
local r = ip.rot90(g, 1)
assert(shape(r) == "3x2" and r:get(1, 1) == 200)
assert(shape(ip.resize(img, 15, 10, "area")) == "10x15x3")
assert(shape(ip.resize(img, 45, 31)) == "31x45x3")
assert(shape(ip.resize(img, 7, 7, "nearest")) == "7x7x3")
check_error("unknown interpolation 'cubic'", ip.resize, img, 5, 5, "cubic")

-- tiles: 1-based origins, tissue fraction filter
local tiles = ip.tiles(img, { size = 10, stride = 10 })
assert(#tiles == 6 and tiles[2].x == 11 and tiles[2].y == 1 and shape(tiles[2].tile) == "10x10x3")
assert(tiles[1].tissue >= 0 and tiles[1].tissue <= 1)
local white = hs.full({ 20, 20, 3 }, 250, "u8")
assert(#ip.tiles(white, { size = 10, min_tissue = 0.5 }) == 0)
assert(ip.tissue_fraction(white) == 0)

-- augmentation: reproducible for a seed
local spec = { hflip = true, vflip = true, rot90 = true, crop = { 16, 12 }, brightness = 0.1, contrast = 0.1,
  hed_sigma = 0.05, hed_bias = 0.01 }
local a1, plan = ip.augment(img, spec, 42)
local a2 = ip.augment(img, spec, 42)
assert(a1:bytes() == a2:bytes())
assert((plan.k % 2 == 0 and shape(a1) == "12x16x3") or (plan.k % 2 == 1 and shape(a1) == "16x12x3"))
check_error("does not fit", ip.augment, img, { crop = 40 }, 1)

print("test_imgproc.lua: all passed")
