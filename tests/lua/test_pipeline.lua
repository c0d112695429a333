-- tests/lua/test_pipeline.lua: declarative preprocessing pipelines (hs.pipeline): steps run in
-- order and equal the direct calls, canonical description and hash (defaults filled, positional
-- and named forms agree), every registered step runs on a suitable image, and errors name the
-- step index for unknown steps, bad or unknown parameters and failures at run time.
-- Run: build/histops tests/lua/test_pipeline.lua (exit status is the verdict).
local hs = require "histops"
local P = require "hs.pipeline"

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

local rgb = hs.synth.ihc { width = 64, height = 48, nuclei = 6, seed = 2 }

-- a pipeline equals the direct calls
local pipe = P.compile { { "auto_contrast", low = 1, high = 99 }, { "gaussian", sigma = 1 }, { "resize", 32, 24 } }
local want = hs.image.resize(hs.image.gaussian(hs.image.auto_contrast(rgb, { low = 1, high = 99 }), 1), 32, 24)
local got = pipe(rgb)
assert(got:equal(want), "pipeline differs from direct calls")
assert(pipe:apply(rgb):equal(want) and #pipe == 3)

-- canonical description: defaults filled, positional == named, integers == floats for numbers
local named = P.compile { { "auto_contrast" }, { "gaussian", sigma = 1.0, border = "reflect101" }, { "resize", width = 32, height = 24 } }
assert(named:hash() == pipe:hash(), "named and positional forms must hash the same")
assert(P.compile(pipe:describe()):hash() == pipe:hash(), "describe() round-trips")
assert(#pipe:hash() == 64)
local d = pipe:describe()
assert(d[2].op == "gaussian" and d[2].ksize == 0 and d[2].border == "reflect101" and d[3].interp == "bilinear")
assert(hs.json.decode(pipe:json())[1].op == "auto_contrast")
assert(P.compile { { "gaussian", sigma = 2 } }:hash() ~= P.compile { { "gaussian", sigma = 1 } }:hash())
assert(P.compile({}):json() == "[]" and P.compile({})(rgb) == rgb)
assert(tostring(pipe):find("3 steps"))

-- every step runs on a suitable input
local gray = hs.image.rgb2gray(rgb)
local mask = hs.image.otsu(gray)
local inputs = {
  gray2rgb = gray, threshold = gray, otsu = gray, adaptive_threshold = gray, equalize_hist = gray, clahe = gray,
  connected_components = mask, distance_transform = mask, split_nuclei = mask,
  hsv2rgb = hs.image.rgb2hsv(rgb), lab2rgb = hs.image.rgb2lab(rgb), hed2rgb = hs.image.rgb2hed(rgb),
  combine = hs.image.rgb2hed(rgb), from_chw = hs.image.to_chw(rgb),
}
local args = {
  gamma = { gamma = 0.8 }, box = { ksize = 3 }, median = { ksize = 3 }, unsharp = { sigma = 1 }, gaussian = { sigma = 1 },
  separable = { kx = { 0.25, 0.5, 0.25 }, ky = { 1 } }, morphology = { op = "open" }, threshold = { t = 128 },
  crop = { x = 2, y = 3, width = 10, height = 8 }, center_crop = { width = 16 }, resize = { width = 16 },
  augment = { seed = 3, hflip = true }, reinhard = { target = hs.image.reinhard_fit(rgb) }, pad = { n = 2 },
}
for _, name in ipairs(P.steps()) do
  local decl = { name }
  for k, v in pairs(args[name] or {}) do decl[k] = v end
  local ok, out = pcall(function() return P.compile({ decl })(inputs[name] or rgb) end)
  assert(ok, ("step %s failed: %s"):format(name, tostring(out)))
  assert(hs.is_tensor(out), name)
end
assert(P.help("resize"):find("^resize%(width, height=nil, interp=bilinear%)"))
assert(P.compile { { "center_crop", 16, 8 } }(rgb):shape()[2] == 16)
assert(P.compile { { "ihc_labels" } }(rgb):dtype() == "i32")

-- errors name the step index
check_error("pipeline step 2: unknown step 'gausian' %(did you mean 'gaussian'%?%)", P.compile, { { "to_float" }, { "gausian", sigma = 1 } })
check_error("pipeline step 1 %(gaussian%): missing parameter 'sigma'", P.compile, { { "gaussian" } })
check_error("pipeline step 1 %(gaussian%): parameter 'sigma' must be a number, got 'x'", P.compile, { { "gaussian", sigma = "x" } })
check_error("parameter 'sigma' must be >= 0", P.compile, { { "gaussian", sigma = -1 } })
check_error("pipeline step 3 %(resize%): parameter 'interp' must be one of bilinear, area, nearest", P.compile,
  { { "to_u8" }, { "flip" }, { "resize", 8, 8, "cubic" } })
check_error("unknown parameter 'sgma' %(known: sigma, ksize, border%)", P.compile, { { "gaussian", sigma = 1, sgma = 2 } })
check_error("parameter 'width' given twice", P.compile, { { "resize", 8, width = 8 } })
check_error("at most 3", P.compile, { { "resize", 8, 8, "area", 4 } })
check_error("parameter 'ksize' must be an integer", P.compile, { { "box", ksize = 2.5 } })
check_error("pipeline step 1: a table", P.compile, { 42 })
check_error("in pipeline step 2 %(crop%): crop: window", P.compile { { "flip" }, { "crop", 1, 1, 500, 500 } }, rgb)
check_error("in pipeline step 1 %(stain_normalize%): method 'reinhard' needs a target", P.compile { { "stain_normalize", method = "reinhard" } }, rgb)

-- custom steps
P.register("invert_test", { params = { { "max", "number", default = 255 } }, run = function(x, p) return hs.full(x:shape(), p.max, x:dtype()):sub(x) end })
assert(P.compile { { "invert_test" } }(rgb):get(1, 1, 1) == 255 - rgb:get(1, 1, 1))
check_error("already exists", P.register, "gaussian", { run = function(x) return x end })
print("test_pipeline.lua: ok")
