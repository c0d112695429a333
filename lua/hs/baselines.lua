-- lua/hs/baselines.lua: classical baselines for experiment scripts and reports: hand-crafted image
-- features (colour/HED histograms, LBP, GLCM; core/feature.h) fed to logistic regression, a linear
-- SVM or an RBF SVM (core/classic.h), through the hs.classic binding. Not a training loop for
-- networks (hs/nn, hs/experiment.lua) and no metrics of its own (hs/metrics.lua).
--
--   local B = require "hs.baselines"
--   local X = B.features(cache_u8_NHW3, { "rgb_hist", "hed_hist", "lbp", "glcm", bins = 16 })  -- (N,F) f32
--   local r = B.evaluate({ classifier = "rbf_svm", features = { "lbp", "glcm" }, C = 1, gamma = "scale",
--                          seed = 1 }, train, test)     -- train/test = { cache =, labels =, n = }
--   -- r = { y_true = {0-based}, y_pred = {...}, probs = {{...}} (logreg only) or nil,
--   --       scores = {{...}}, fit_seconds =, feature_seconds =, n_features =, classifier =, info = }
--   local model = B.fit({ classifier = "logreg", features = {...} }, X_or_cache, y)
--   model:predict(X_or_cache) -> (N) i64 tensor; model:labels(X) -> { 0-based labels }
--
-- Probabilities: logistic regression's are the model's (softmax). The SVMs have no Platt scaling:
-- model:proba() gives only a softmax of their decision scores, which is why evaluate() leaves
-- `probs` nil for them and returns their `scores`.
local classic = require "hs.classic"
local hs = require "histops"

local M = {}

M.DEFAULT_FEATURES = { "rgb_hist", "hed_hist", "lbp", "glcm" }
M.CLASSIFIERS = { logreg = true, linear_svm = true, rbf_svm = true }

local function clock()
  return (hs.sys and hs.sys.clock) and hs.sys.clock() or os.clock()
end

-- A feature spec from a list of names plus options; `outer` may supply bins/levels/hed_max.
local function feature_spec(spec, outer)
  spec = spec or M.DEFAULT_FEATURES
  if type(spec) ~= "table" then error("baselines: features must be a list of feature names", 3) end
  local s = {}
  for i, name in ipairs(spec) do s[i] = name end
  outer = outer or {}
  s.bins = spec.bins or outer.bins
  s.levels = spec.levels or outer.levels
  s.hed_max = spec.hed_max or outer.hed_max
  return s
end

local function is_images(t)
  return hs.tensor.is_tensor(t) and t:dim() == 4 and t:dtype() == "u8"
end

-- (N,F) f32 features of an (N,H,W,3) u8 image cache.
function M.features(cache, spec)
  if not is_images(cache) then error("baselines.features: expected an (N,H,W,3) u8 tensor", 2) end
  return classic.features(cache, feature_spec(spec))
end

function M.feature_names(spec)
  return classic.feature_names(feature_spec(spec))
end

local function check_spec(spec, where)
  if type(spec) ~= "table" then error(where .. ": spec must be a table", 3) end
  local c = spec.classifier or "logreg"
  if not M.CLASSIFIERS[c] then
    error(("%s: unknown classifier '%s' (logreg, linear_svm, rbf_svm)"):format(where, tostring(c)), 3)
  end
  return c
end

local function fit_options(spec, classifier)
  return { classifier = classifier, C = spec.C, gamma = spec.gamma, tol = spec.tol, max_iter = spec.max_iter,
    seed = spec.seed or 1, standardize = spec.standardize }
end

local Baseline = {}
Baseline.__index = Baseline

-- X: (N,F) f32 features, or an (N,H,W,3) u8 image cache (features computed with spec.features).
function Baseline:transform(X)
  if is_images(X) then return classic.features(X, self.feature_spec) end
  return X
end
function Baseline:predict(X) return self.model:predict(self:transform(X)) end
function Baseline:labels(X) return self:predict(X):tolist() end
function Baseline:decision(X) return self.model:decision(self:transform(X)) end
function Baseline:proba(X) return self.model:proba(self:transform(X)) end
function Baseline:info() return self.model:info() end
-- Everything needed to rebuild the model (tensors and plain values): M.from_state(state).
function Baseline:state()
  return { spec = self.spec, feature_spec = self.feature_spec, model = self.model:state() }
end

function M.from_state(state)
  local self = setmetatable({ spec = state.spec or {}, feature_spec = state.feature_spec }, Baseline)
  self.model = classic.from_state(state.model)
  self.classifier = self.model:info().classifier
  self.n_features = self.model:info().n_features
  return self
end

-- spec = { classifier = "logreg"|"linear_svm"|"rbf_svm", features = {...}, C =, gamma =, seed =, ... }
function M.fit(spec, X, y)
  local classifier = check_spec(spec, "baselines.fit")
  local self = setmetatable({ spec = spec, classifier = classifier,
    feature_spec = feature_spec(spec.features, spec) }, Baseline)
  local t0 = clock()
  X = self:transform(X)
  self.feature_seconds = clock() - t0
  if not hs.tensor.is_tensor(X) or X:dim() ~= 2 then
    error("baselines.fit: X must be (N,F) f32 features or an (N,H,W,3) u8 image cache", 2)
  end
  t0 = clock()
  self.model = classic.fit(X, y, fit_options(spec, classifier))
  self.fit_seconds = clock() - t0
  self.n_features = X:shape()[2]
  return self
end

-- the first n rows of a split's cache and labels
local function rows(part, what)
  if type(part) ~= "table" or not part.cache or not part.labels then
    error(("baselines.evaluate: %s must be { cache = (N,H,W,3) u8, labels = (N) i64, n = N }"):format(what), 3)
  end
  local n = part.n or part.cache:shape()[1]
  local cache, labels = part.cache, part.labels
  if cache:shape()[1] ~= n then cache = cache:narrow(1, 1, n) end
  if labels:shape()[1] ~= n then labels = labels:narrow(1, 1, n) end
  return cache, labels, n
end

-- Fit on train, predict test: features, fit time and predictions for metrics.classification.
function M.evaluate(spec, train, test)
  local classifier = check_spec(spec, "baselines.evaluate")
  local fspec = feature_spec(spec.features, spec)
  local tr_cache, tr_labels = rows(train, "train")
  local te_cache, te_labels = rows(test, "test")
  local t0 = clock()
  local Xtr = classic.features(tr_cache, fspec)
  local Xte = classic.features(te_cache, fspec)
  local feature_seconds = clock() - t0
  local model = M.fit(spec, Xtr, tr_labels)
  local r = {
    classifier = classifier,
    y_true = te_labels:tolist(),
    y_pred = model:predict(Xte):tolist(),
    scores = model:decision(Xte):totable(),
    fit_seconds = model.fit_seconds,
    feature_seconds = feature_seconds,
    n_features = model.n_features,
    info = model:info(),
    model = model,
  }
  if classifier == "logreg" then r.probs = model:proba(Xte):totable() end
  return r
end

return M
