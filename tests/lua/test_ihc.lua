-- tests/lua/test_ihc.lua: IHC quantification from Lua (hs.ihc kernels, hs.ihc_quant API, the
-- `histops ihc` command) and the synthetic generator it is validated on (hs.synth): known counts
-- recovered on a grid of tiles (touching nuclei included), given nuclei, options errors.
-- Run: build/histops tests/lua/test_ihc.lua (exit status is the verdict).
local hs = require "histops"
local C = require "hs.ihc"
local Q = require "hs.ihc_quant"

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

-- synth: a count, or nuclei at chosen places; truth agrees with the labels
local rgb, labels, truth = hs.synth.ihc { width = 96, height = 64, nuclei = {
  { x = 20, y = 20, r = 7 }, { x = 50, y = 30, rx = 9, ry = 6, angle = 0.3, intensity = 3 },
  { x = 62, y = 30, r = 6, positive = true }, { x = 80, y = 50, r = 5, intensity = 1 } }, seed = 3 }
assert(truth.count == 4 and truth.positive == 3 and truth.by_intensity[1] == 1 and truth.by_intensity[2] == 1)
assert(labels:get(20, 20) == 1 and labels:get(30, 50) == 2 and labels:get(1, 1) == 0)
assert(math.abs(truth.nuclei[2].x - 50) < 1e-6 and truth.nuclei[3].intensity == 2)
assert(math.abs(truth.h_score - 100 * (3 + 2 + 1) / 4) < 1e-9)
check_error("entry 2 needs numbers x and y", hs.synth.ihc, { nuclei = { { x = 1, y = 1 }, { x = 1 } } })
check_error("positive=false with intensity 2", hs.synth.ihc, { nuclei = { { x = 9, y = 9, positive = false, intensity = 2 } } })
check_error("texture", hs.synth.ihc, { texture = 3 })
local a = hs.synth.ihc { width = 48, height = 48, seed = 9, texture = 0.3, eosin_od = 0.1 }
local b = hs.synth.ihc { width = 48, height = 48, seed = 9, texture = 0.3, eosin_od = 0.1 }
assert(a:equal(b), "same seed, same tile")

-- the given tile quantified: 4 nuclei with the right classes (overlapping nuclei 2 and 3 split)
local r = Q.quantify(rgb)
assert(r.count == 4, "count " .. r.count)
local classes = {}
for _, n in ipairs(r.nuclei) do
  local id = labels:get(math.floor(n.y + 0.5), math.floor(n.x + 0.5))
  classes[id] = n.class
end
assert(classes[1] == 0 and classes[2] == 3 and classes[3] == 2 and classes[4] == 1,
  ("classes %s %s %s %s"):format(classes[1], classes[2], classes[3], classes[4]))
assert(r.labels:dtype() == "i32" and r.labels:shape()[1] == 64)
local ov = r:overlay(rgb, 2)
assert(ov:dtype() == "u8" and ov:shape()[3] == 3 and not ov:equal(rgb))
assert(r:class_map():max() == 4)
assert(Q.format(r):find("4 nuclei: 3 positive"))
local s = Q.summary(r)
assert(hs.json.decode(hs.json.encode(s)).count == 4)

-- the validation grid: counts within 10 %, labelling index within 5 points, H-score within 20
local v = Q.validate { tiles = 12, size = 192 }
for i, t in ipairs(v.tiles) do
  assert(t.errors.count <= 10, ("tile %d: count %d vs %d"):format(i, t.got.count, t.truth.count))
  assert(t.errors.labelling_index <= 5, ("tile %d: LI %.1f vs %.1f"):format(i, t.got.labelling_index, t.truth.labelling_index))
  assert(t.errors.h_score <= 20, ("tile %d: H %.0f vs %.0f"):format(i, t.got.h_score, t.truth.h_score))
end
assert(v.count.mean < 5 and v.labelling_index.mean < 2 and v.h_score.mean < 5)

-- an empty tile has no nuclei; thresholds move nuclei between classes
local empty = hs.synth.ihc { width = 64, height = 64, nuclei = 0 }
assert(Q.quantify(empty).count == 0 and Q.quantify(empty).labelling_index == 0)
local strict = Q.quantify(rgb, { thresholds = { 0.5, 0.7, 0.9 } })
assert(strict.positive < r.positive)

-- options: defaults, presets, errors naming the field
assert(Q.defaults().min_distance == 4 and Q.defaults().threshold == "otsu")
assert(Q.options({ preset = "cytoplasmic" }).compartment == "cell")
check_error("unknown ihc option 'sgima'", Q.quantify, rgb, { sgima = 1 })
check_error("unknown ihc preset 'x'", Q.quantify, rgb, { preset = "x" })
check_error("thresholds must satisfy", Q.quantify, rgb, { thresholds = { 0.3, 0.2, 0.5 } })
check_error("bad option 'nuclear'", Q.quantify, rgb, { nuclear = "dab" })
check_error("expected an %(H,W,3%) RGB image", C.quantify, hs.zeros({ 8, 8 }, "u8"))
local none, msg = Q.quantify("/nonexistent/x.png")
assert(none == nil and msg:find("nonexistent"))

-- kernels
local m = hs.zeros({ 5, 5 }, "u8")
for i = 1, 5 do m:set(1, i, 255); m:set(5, i, 255); m:set(i, 1, 255); m:set(i, 5, 255) end
assert(C.fill_holes(m):get(3, 3) == 255)
local l = hs.zeros({ 1, 7 }, "i32"); l:set(1, 1, 1); l:set(1, 7, 2)
local e = C.expand_labels(l, 2)
assert(e:get(1, 3) == 1 and e:get(1, 4) == 0 and e:get(1, 5) == 2)
local f, n = C.filter_area(e, 2, 4)
assert(n == 0 and f:max() == 0)

-- the command: --validate and --json on a rendered file
local tmp = os.tmpname()
local png = tmp .. ".png"
assert(hs.image.save(png, rgb))
local cmd = require "hs.cmd.ihc"
local out = io.popen(("%q ihc %q --json --overlay %q --labels %q"):format(hs.sys.exe(), png, tmp .. "_ov.png", tmp .. "_lab.png"))
local js = hs.json.decode(out:read("a")); out:close()
assert(js.count == 4 and js.positive == 3, "ihc --json")
assert(hs.image.load(tmp .. "_ov.png"):shape()[2] == 96)
assert(hs.image.load(tmp .. "_lab.png"):dtype() == "u16")
assert(cmd.help and type(cmd.run) == "function")
os.remove(tmp); os.remove(png); os.remove(tmp .. "_ov.png"); os.remove(tmp .. "_lab.png")
print("test_ihc.lua: ok")
