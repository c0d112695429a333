-- tests/lua/test_metrics.lua: hs.metrics against hand-computed values (sklearn conventions).
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local m = require "hs.metrics"

local function near(a, b, tol) return math.abs(a - b) <= (tol or 1e-12) end

-- confusion, accuracy, per-class P/R/F1, macro-F1, balanced accuracy
local y = { 0, 0, 0, 1, 1, 2 }
local p = { 0, 0, 1, 1, 2, 2 }
local r = m.classification(y, p, 3)
assert(r.confusion[1][1] == 2 and r.confusion[1][2] == 1 and r.confusion[2][3] == 1, "confusion counts")
assert(near(r.accuracy, 4 / 6), "accuracy")
assert(near(r.per_class[1].recall, 2 / 3) and near(r.per_class[1].precision, 1), "class 0 P/R")
assert(near(r.per_class[2].precision, 0.5) and near(r.per_class[2].recall, 0.5), "class 1 P/R")
assert(near(r.per_class[3].precision, 0.5) and near(r.per_class[3].recall, 1), "class 2 P/R")
local f1 = { 2 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * 0.5 / 1.5 }
assert(near(r.macro_f1, (f1[1] + f1[2] + f1[3]) / 3), "macro F1")
assert(near(r.balanced_accuracy, (2 / 3 + 0.5 + 1) / 3), "balanced accuracy")

-- AUC: perfect, inverted, ties count one half
assert(near(m.auc({ false, false, true, true }, { 0.1, 0.2, 0.8, 0.9 }), 1))
assert(near(m.auc({ true, true, false, false }, { 0.1, 0.2, 0.8, 0.9 }), 0))
assert(near(m.auc({ true, false }, { 0.5, 0.5 }), 0.5))
-- sklearn: roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) == 0.75
assert(near(m.auc({ false, false, true, true }, { 0.1, 0.4, 0.35, 0.8 }), 0.75))

-- ECE: perfectly calibrated confident predictions have zero error
assert(near(m.ece({ 0, 1 }, { { 1, 0 }, { 0, 1 } }), 0))
assert(near(m.ece({ 1, 0 }, { { 1, 0 }, { 0, 1 } }), 1))

-- segmentation scores
local c = m.seg_counts({ 1, 1, 0, 0 }, { 1, 0, 1, 0 })
local s = m.seg_scores(c)
assert(near(s.dice, 0.5) and near(s.iou, 1 / 3) and near(s.pixel_accuracy, 0.5), "dice/iou/pixel accuracy")

-- bootstrap: deterministic for a seed, interval contains the point estimate
local yy, pp = {}, {}
for i = 1, 200 do yy[i] = i % 3; pp[i] = (i % 7 == 0) and (i + 1) % 3 or i % 3 end
local ci1 = m.classification_ci(yy, pp, 3, { samples = 200, seed = 5 })
local ci2 = m.classification_ci(yy, pp, 3, { samples = 200, seed = 5 })
assert(ci1.accuracy.lo == ci2.accuracy.lo and ci1.accuracy.hi == ci2.accuracy.hi, "bootstrap is deterministic")
assert(ci1.accuracy.lo <= ci1.accuracy.value and ci1.accuracy.value <= ci1.accuracy.hi, "CI brackets the estimate")
assert(ci1.accuracy.hi - ci1.accuracy.lo > 0.01, "CI has width")

-- errors name the problem
local ok, err = pcall(m.confusion, { 0, 1 }, { 0 })
assert(not ok and err:find("2 predictions but 1 targets", 1, true), err)
print("test_metrics: ok")
