-- experiments/kather_baseline.lua: classical texture baselines on the Kather 2016 colorectal H&E
-- tiles (8 classes x 24 tiles of 150x150): hand-crafted features (colour/HED histograms, LBP,
-- GLCM) with logistic regression, a linear SVM and an RBF SVM, on a seeded stratified 75/25 split.
-- Not the CNN experiment: this is the baseline its report compares against.
--
--   build/histops experiments/kather_baseline.lua [--seed N] [--dump features.safetensors]
-- prints test accuracy, macro-F1, feature and fit times per (features, classifier); --dump writes
-- the feature matrices and labels (X_train, y_train, X_test, y_test per feature set) for checking
-- against other implementations by hand.
local hs = require "histops"
local data = require "hs.data"
local metrics = require "hs.metrics"
local B = require "hs.baselines"

local seed, dump = 1, nil
local i = 1
while arg and arg[i] do
  if arg[i] == "--seed" then seed = math.tointeger(tonumber(arg[i + 1])); i = i + 2
  elseif arg[i] == "--dump" then dump = arg[i + 1]; i = i + 2
  else error("usage: kather_baseline.lua [--seed N] [--dump features.safetensors]", 0) end
end

local ds = data.folder("kather2016_crc_tiles")
local splits = data.split(ds, { val = 0, test = 0.25, seed = seed, stratify = true })

local function load(part)
  local paths, labels = {}, hs.zeros({ #part.items }, "i64")
  for k, it in ipairs(part.items) do
    paths[k] = it.path
    labels:set(k, it.label)
  end
  local t0 = hs.sys.clock()
  local cache, failures = hs.loader.fill_cache(paths, { height = 150, width = 150, channels = 3 })
  if #failures > 0 then error("cannot decode " .. failures[1].path .. ": " .. failures[1].message, 0) end
  return { cache = cache, labels = labels, n = #paths }, hs.sys.clock() - t0
end
local train, dt_train = load(splits.train)
local test, dt_test = load(splits.test)
print(("kather2016_crc_tiles: %d classes, train %d, test %d (seed %d), decoded in %.2f s, threads %d"):format(
  #ds.classes, train.n, test.n, seed, dt_train + dt_test, hs.sys.get_threads()))

local feature_sets = {
  { name = "texture", features = { "lbp", "glcm" } },
  { name = "colour+texture", features = { "rgb_hist", "hed_hist", "lbp", "glcm", bins = 16 } },
}
local classifiers = {
  { classifier = "logreg", C = 1.0 },
  { classifier = "linear_svm", C = 1.0 },
  { classifier = "rbf_svm", C = 1.0, gamma = "scale" },
}

local dumped = {}
print(("%-16s %-11s %5s %9s %9s %9s %9s"):format("features", "classifier", "F", "accuracy", "macro_f1", "feat_s", "fit_s"))
for _, fs in ipairs(feature_sets) do
  for _, c in ipairs(classifiers) do
    local spec = { classifier = c.classifier, C = c.C, gamma = c.gamma, features = fs.features, seed = seed }
    local r = B.evaluate(spec, train, test)
    local m = metrics.classification(r.y_true, r.y_pred, #ds.classes, r.probs)
    print(("%-16s %-11s %5d %9.4f %9.4f %9.3f %9.4f"):format(fs.name, c.classifier, r.n_features, m.accuracy,
      m.macro_f1, r.feature_seconds, r.fit_seconds))
  end
  if dump then
    local key = fs.name:gsub("[^%w]", "_")
    dumped[key .. ".X_train"] = B.features(train.cache, fs.features)
    dumped[key .. ".X_test"] = B.features(test.cache, fs.features)
  end
end
if dump then
  dumped.y_train, dumped.y_test = train.labels, test.labels
  hs.io.save(dump, dumped)
  print("features written to " .. dump)
end
