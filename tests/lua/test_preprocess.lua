-- tests/lua/test_preprocess.lua: an experiment's data.preprocess (hs.pipeline steps): canonical in
-- the config, reachable by --set data.preprocess.<i>.<param> (and so by sweeps), applied to the
-- training cache and, from the recorded steps, by every inference path (hs.model_io.batch).
local hs = require "histops"
local config = require "hs.config"
local P = require "hs.pipeline"
local model_io = require "hs.model_io"

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

local write = T.write
local dir = T.tmpdir("preprocess")
local exp = dir .. "/exp.lua"
write(exp, [[return { name = "pp", data = { kind = "folder", path = "x",
  preprocess = { { "gaussian", 1.0 }, { "auto_contrast", low = 1, high = 99 } } } }]])

-- the config holds the canonical description: every parameter by name, defaults filled in
local cfg = config.load(exp)
assert(cfg.data.preprocess[1].op == "gaussian" and cfg.data.preprocess[1].sigma == 1.0, "positional sigma named")
assert(cfg.data.preprocess[1].border == "reflect101", "defaults filled in")
assert(cfg.data.preprocess[2].op == "auto_contrast")

-- --set reaches a step's parameter by index; the pipeline checks the new value
cfg = config.load(exp, { "data.preprocess.1.sigma=2.5" })
assert(cfg.data.preprocess[1].sigma == 2.5, "override applied")
check_error("unknown parameter 'sigmx'", config.load, exp, { "data.preprocess.1.sigmx=2" })
check_error("'data.preprocess' has no entry 3", config.load, exp, { "data.preprocess.3.sigma=2" })
check_error("'data.preprocess' is a list", config.load, exp, { "data.preprocess.sigma=2" })
write(dir .. "/bad.lua", [[return { name = "pp", data = { preprocess = { { "gausian", 1 } } } }]])
check_error("bad.lua: data.preprocess: pipeline step 1: unknown step 'gausian' %(did you mean 'gaussian'%?%)",
  config.load, dir .. "/bad.lua")

-- apply_cache filters every image in place, exactly like the pipeline on one image
local imgs = {}
local cache = hs.zeros({ 3, 20, 24, 3 }, "u8")
for i = 1, 3 do
  imgs[i] = hs.rand({ 20, 24, 3 }):mul(255):astype("u8")
  cache:select(1, i):copy(imgs[i])
end
local steps = { { "gaussian", sigma = 1.5 } }
P.apply_cache(steps, cache)
for i = 1, 3 do
  local want = hs.image.gaussian(imgs[i], 1.5)
  assert((hs.io.compare(cache:select(1, i):contiguous(), want)) == 0, "image " .. i .. " filtered as one image")
end
assert(P.apply_cache(nil, cache) == cache and P.apply_cache({}, cache) == cache, "no steps: nothing done")
-- a step list that changes the shape or the dtype cannot feed a u8 cache
check_error("must keep the shape and end in u8", P.apply_cache, { { "to_float" } }, cache)
check_error("must keep the shape and end in u8", P.apply_cache, { { "resize", 10, 10 } }, cache)

-- inference preprocesses as training did: model_io.batch with and without recorded steps
local meta = { input = { size = { 20, 24 }, channels = 3, mean = { 0, 0, 0 }, std = { 1, 1, 1 } },
  pipeline = { cache_size = { 20, 24 } } }
local plain = model_io.batch({ meta = meta }, { imgs[1] })
meta.pipeline.preprocess = config.canonical_preprocess(steps)
local filtered = model_io.batch({ meta = meta }, { imgs[1] })
local want = model_io.batch({ meta = { input = meta.input, pipeline = { cache_size = { 20, 24 } } } },
  { hs.image.gaussian(imgs[1], 1.5) })
assert((hs.io.compare(filtered, want)) == 0, "model_io.batch applies the recorded preprocessing")
assert((hs.io.compare(filtered, plain)) > 0, "and it changes the input")
print("test_preprocess: all passed")
