-- tests/lua/test_baselines.lua: hs.classic and hs.baselines from Lua: feature shapes and names,
-- fit/predict of the three classifiers (XOR needs the RBF kernel), determinism, saved state,
-- evaluate() on synthetic image caches, and argument/core errors.
local hs = require "histops"
local classic = require "hs.classic"
local B = require "hs.baselines"

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

-- N images (H=W=16): class 0 dark, smooth reds; class 1 bright blue with a checker texture
local function image_cache(n, seed)
  local cache, labels = hs.zeros({ n, 16, 16, 3 }, "u8"), hs.zeros({ n }, "i64")
  local noise = hs.rand({ n, 16, 16, 3 }, seed)
  for i = 1, n do
    local c = (i - 1) % 2
    labels:set(i, c)
    for y = 1, 16 do
      for x = 1, 16 do
        for ch = 1, 3 do
          local v
          if c == 0 then
            v = (ch == 1 and 150 or 60) + 30 * noise:get(i, y, x, ch)
          else
            v = (ch == 3 and 200 or 90) + (((x + y) % 2 == 0) and 40 or -40) + 20 * noise:get(i, y, x, ch)
          end
          cache:set(i, y, x, ch, math.floor(v))
        end
      end
    end
  end
  return cache, labels
end

-- features: shape, names, normalised histograms, identical images give identical rows
local cache, labels = image_cache(12, 1)
local spec = { "rgb_hist", "hed_hist", "lbp", "glcm", bins = 8 }
local X = B.features(cache, spec)
local names = B.feature_names(spec)
assert(X:dtype() == "f32" and X:shape()[1] == 12 and X:shape()[2] == #names, "features shape")
assert(#names == 3 * 8 + 3 * 8 + 20 + 72, "feature count")
assert(names[1] == "rgb_hist_r_00" and names[#names] == "glcm_ASM_d4_a135", "feature names")
local row = X:select(1, 1):tolist()
local s = 0
for j = 1, 8 do s = s + row[j] end
assert(math.abs(s - 1) < 1e-6, "an RGB histogram channel sums to 1")
local single = classic.features(cache:select(1, 3), spec)   -- one (H,W,3) image -> (1,F)
local r3 = X:select(1, 3):tolist()
for j, v in ipairs(single:select(1, 1):tolist()) do assert(v == r3[j], "single image == batch row") end
assert(#B.feature_names(nil) == #B.feature_names(B.DEFAULT_FEATURES), "default features")

check_error("unknown feature 'sift'", B.features, cache, { "sift" })
check_error("listed twice", B.features, cache, { "lbp", "lbp" })
check_error("levels 16", B.features, cache, { "glcm", levels = 16 })
check_error("u8 tensor", B.features, hs.zeros({ 2, 8, 8, 3 }), { "lbp" })

-- classifiers on 2-D XOR data given as plain features
local n = 80
local Xx, yx = hs.zeros({ n, 2 }), hs.zeros({ n }, "i64")
local r = hs.randn({ n, 2 }, 7)
for i = 1, n do
  local q = (i - 1) % 4
  local sx, sy = (q % 2 == 1) and 1 or -1, (q >= 2) and 1 or -1
  Xx:set(i, 1, sx + 0.25 * r:get(i, 1))
  Xx:set(i, 2, sy + 0.25 * r:get(i, 2))
  yx:set(i, sx ~= sy and 1 or 0)
end
local function accuracy(pred, y)
  local ok = 0
  for i, p in ipairs(pred) do if p == y[i] then ok = ok + 1 end end
  return ok / #pred
end
local ytab = yx:tolist()
local rbf = B.fit({ classifier = "rbf_svm" }, Xx, yx)
assert(accuracy(rbf:labels(Xx), ytab) >= 0.95, "RBF SVM solves XOR")
local lin = B.fit({ classifier = "linear_svm" }, Xx, ytab)             -- labels as a Lua table
assert(accuracy(lin:labels(Xx), ytab) <= 0.8, "a linear SVM cannot solve XOR")
local lr = B.fit({ classifier = "logreg", C = 10 }, Xx, yx)
assert(accuracy(lr:labels(Xx), ytab) <= 0.8, "logistic regression cannot solve XOR")
local info = rbf:info()
assert(info.classifier == "rbf_svm" and info.n_classes == 2 and info.n_sv > 0 and info.converged, "info")

-- determinism and saved state
for _, c in ipairs { "logreg", "linear_svm", "rbf_svm" } do
  local a = B.fit({ classifier = c, seed = 3 }, Xx, yx)
  local b = B.fit({ classifier = c, seed = 3 }, Xx, yx)
  assert(a:decision(Xx):bytes() == b:decision(Xx):bytes(), c .. ": same seed, same scores")
  local back = B.from_state(a:state())
  assert(back:decision(Xx):bytes() == a:decision(Xx):bytes(), c .. ": state round trip")
  local p = a:proba(Xx):totable()
  assert(math.abs(p[5][1] + p[5][2] - 1) < 1e-6, c .. ": proba rows sum to 1")
end

-- bad inputs: mismatched N, non-finite features, one class, unknown classifier, wrong F
check_error("%(80%) labels", classic.fit, Xx, hs.zeros({ 79 }, "i64"))
local Xnan = Xx:clone()
Xnan:set(4, 2, 0 / 0)
check_error("X%[4,2%] is not finite", B.fit, { classifier = "logreg" }, Xnan, yx)
check_error("only one class", B.fit, { classifier = "rbf_svm" }, Xx, hs.zeros({ n }, "i64"))
check_error("unknown classifier 'knn'", B.fit, { classifier = "knn" }, Xx, yx)
check_error("fitted on 2", function() return lr:predict(hs.zeros({ 3, 5 })) end)
check_error("'gamma' must be", classic.fit, Xx, yx, { classifier = "rbf_svm", gamma = "auto" })
check_error("label 2 is not an integer", classic.fit, Xx, { 0, 0.5 })

-- evaluate on image caches: the two synthetic classes are easy for every classifier
local tr_cache, tr_labels = image_cache(16, 11)
local te_cache, te_labels = image_cache(10, 12)
for _, c in ipairs { "logreg", "linear_svm", "rbf_svm" } do
  local res = B.evaluate({ classifier = c, features = { "rgb_hist", "lbp", "glcm", bins = 8 }, seed = 1 },
    { cache = tr_cache, labels = tr_labels, n = 16 }, { cache = te_cache, labels = te_labels, n = 8 })
  assert(#res.y_true == 8 and #res.y_pred == 8, c .. ": n rows evaluated")
  assert(res.y_true[1] == 0 and res.y_true[2] == 1 and math.type(res.y_pred[1]) == "integer", c .. ": 0-based labels")
  assert(accuracy(res.y_pred, res.y_true) == 1, c .. ": separable synthetic images")
  assert(res.n_features == 24 + 20 + 72 and res.fit_seconds >= 0 and res.feature_seconds >= 0, c .. ": report fields")
  assert(#res.scores == 8 and #res.scores[1] == 2, c .. ": scores")
  if c == "logreg" then
    assert(#res.probs == 8 and math.abs(res.probs[1][1] + res.probs[1][2] - 1) < 1e-6, "logreg probs")
  else
    assert(res.probs == nil, c .. ": SVM scores are not probabilities")
  end
end
check_error("train must be", B.evaluate, { classifier = "logreg" }, {}, {})

print("test_baselines: ok")
