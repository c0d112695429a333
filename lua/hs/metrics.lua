-- lua/hs/metrics.lua: evaluation metrics on plain Lua arrays (labels are 0-based class
-- indices, probabilities are arrays of per-class arrays): accuracy, balanced accuracy,
-- per-class precision/recall/F1, macro-F1, confusion matrix, one-vs-rest ROC-AUC, expected
-- calibration error, segmentation Dice/IoU/pixel accuracy, and seeded bootstrap confidence
-- intervals. Pure Lua: fast enough for evaluation sets of tens of thousands of items.
local M = {}

local function check_same_length(a, b, what)
  if #a ~= #b then error(("%s: %d predictions but %d targets"):format(what, #a, #b), 3) end
  if #a == 0 then error(what .. ": empty input", 3) end
end

function M.confusion(y_true, y_pred, k)
  check_same_length(y_true, y_pred, "confusion")
  k = k or 0
  for i = 1, #y_true do k = math.max(k, y_true[i] + 1, y_pred[i] + 1) end
  local cm = {}
  for i = 1, k do
    cm[i] = {}
    for j = 1, k do cm[i][j] = 0 end
  end
  for i = 1, #y_true do
    local t, p = y_true[i] + 1, y_pred[i] + 1
    cm[t][p] = cm[t][p] + 1
  end
  return cm   -- cm[true][pred]
end

-- All classification metrics from labels (and optionally probabilities for AUC/ECE).
function M.classification(y_true, y_pred, k, probs)
  local cm = M.confusion(y_true, y_pred, k)
  k = #cm
  local n, correct = #y_true, 0
  local per_class, recall_sum, f1_sum, present = {}, 0, 0, 0
  for c = 1, k do
    correct = correct + cm[c][c]
    local tp, fn, fp = cm[c][c], 0, 0
    for j = 1, k do
      if j ~= c then fn = fn + cm[c][j]; fp = fp + cm[j][c] end
    end
    local support = tp + fn
    local precision = (tp + fp) > 0 and tp / (tp + fp) or 0
    local recall = support > 0 and tp / support or 0
    local f1 = (precision + recall) > 0 and 2 * precision * recall / (precision + recall) or 0
    per_class[c] = { precision = precision, recall = recall, f1 = f1, support = support }
    if support > 0 then
      present = present + 1
      recall_sum = recall_sum + recall
    end
    f1_sum = f1_sum + f1
  end
  local r = {
    n = n, accuracy = correct / n, balanced_accuracy = present > 0 and recall_sum / present or 0,
    macro_f1 = f1_sum / k, per_class = per_class, confusion = cm,
  }
  if probs then
    r.roc_auc = M.roc_auc_ovr(y_true, probs, k)
    r.ece = M.ece(y_true, probs, 15)
  end
  return r
end

-- Area under the ROC curve of scores for a binary problem (Mann-Whitney U with tie handling).
function M.auc(labels, scores)
  local idx = {}
  for i = 1, #labels do idx[i] = i end
  table.sort(idx, function(a, b) return scores[a] < scores[b] end)
  local npos, nneg, rank_sum = 0, 0, 0
  local i = 1
  while i <= #idx do
    local j = i
    while j < #idx and scores[idx[j + 1]] == scores[idx[i]] do j = j + 1 end
    local avg_rank = (i + j) / 2
    for t = i, j do
      if labels[idx[t]] then rank_sum = rank_sum + avg_rank; npos = npos + 1 else nneg = nneg + 1 end
    end
    i = j + 1
  end
  if npos == 0 or nneg == 0 then return nil end
  return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg)
end

-- one-vs-rest ROC curve points for class c (for plotting): list of {fpr, tpr}
function M.roc_curve(y_true, probs, c)
  local idx = {}
  for i = 1, #y_true do idx[i] = i end
  table.sort(idx, function(a, b) return probs[a][c + 1] > probs[b][c + 1] end)
  local P, N = 0, 0
  for i = 1, #y_true do if y_true[i] == c then P = P + 1 else N = N + 1 end end
  local pts, tp, fp = { { 0, 0 } }, 0, 0
  for _, i in ipairs(idx) do
    if y_true[i] == c then tp = tp + 1 else fp = fp + 1 end
    pts[#pts + 1] = { N > 0 and fp / N or 0, P > 0 and tp / P or 0 }
  end
  return pts
end

function M.roc_auc_ovr(y_true, probs, k)
  local per, sum, cnt = {}, 0, 0
  for c = 0, k - 1 do
    local labels, scores = {}, {}
    for i = 1, #y_true do labels[i] = (y_true[i] == c); scores[i] = probs[i][c + 1] end
    local a = M.auc(labels, scores)
    per[c + 1] = a
    if a then sum = sum + a; cnt = cnt + 1 end
  end
  return { macro = cnt > 0 and sum / cnt or nil, per_class = per }
end

-- expected calibration error with equal-width confidence bins
function M.ece(y_true, probs, bins)
  bins = bins or 15
  local cnt, conf, acc = {}, {}, {}
  for b = 1, bins do cnt[b], conf[b], acc[b] = 0, 0, 0 end
  for i = 1, #y_true do
    local best, arg = -1, 0
    for c = 1, #probs[i] do if probs[i][c] > best then best, arg = probs[i][c], c - 1 end end
    local b = math.min(bins, math.floor(best * bins) + 1)
    cnt[b] = cnt[b] + 1
    conf[b] = conf[b] + best
    acc[b] = acc[b] + (arg == y_true[i] and 1 or 0)
  end
  local e = 0
  for b = 1, bins do
    if cnt[b] > 0 then e = e + cnt[b] / #y_true * math.abs(acc[b] / cnt[b] - conf[b] / cnt[b]) end
  end
  return e
end

-- Segmentation: counts for one image from flat 0/1 arrays (or hs tensors via :tolist()).
function M.seg_counts(pred, target)
  check_same_length(pred, target, "seg_counts")
  local tp, fp, fn, tn = 0, 0, 0, 0
  for i = 1, #pred do
    local p, t = pred[i] ~= 0, target[i] ~= 0
    if p and t then tp = tp + 1 elseif p then fp = fp + 1 elseif t then fn = fn + 1 else tn = tn + 1 end
  end
  return { tp = tp, fp = fp, fn = fn, tn = tn }
end
function M.seg_scores(c)
  local denom = 2 * c.tp + c.fp + c.fn
  return {
    dice = denom > 0 and 2 * c.tp / denom or 1,
    iou = (c.tp + c.fp + c.fn) > 0 and c.tp / (c.tp + c.fp + c.fn) or 1,
    pixel_accuracy = (c.tp + c.tn) / math.max(1, c.tp + c.fp + c.fn + c.tn),
  }
end
-- per-image and overall (pooled counts) scores from a list of count tables
function M.segmentation(counts_list)
  local total = { tp = 0, fp = 0, fn = 0, tn = 0 }
  local per, mean_dice, mean_iou = {}, 0, 0
  for i, c in ipairs(counts_list) do
    for k in pairs(total) do total[k] = total[k] + c[k] end
    per[i] = M.seg_scores(c)
    mean_dice = mean_dice + per[i].dice
    mean_iou = mean_iou + per[i].iou
  end
  local o = M.seg_scores(total)
  return { overall = o, per_image = per, mean_dice = mean_dice / math.max(1, #counts_list),
    mean_iou = mean_iou / math.max(1, #counts_list) }
end

-- Seeded bootstrap: resample item indices B times, compute stat(indices) -> number, return the
-- point estimate and the percentile interval. The generator is a small LCG-free counter hash so
-- the interval depends only on the seed.
local function hash_uniform(seed, i)
  local x = (seed * 0x9E3779B1 + i * 0x85EBCA77) & 0xFFFFFFFF
  x = ((x ~ (x >> 16)) * 0x45d9f3b) & 0xFFFFFFFF
  x = ((x ~ (x >> 16)) * 0x45d9f3b) & 0xFFFFFFFF
  x = x ~ (x >> 16)
  return (x & 0xFFFFFF) / 0x1000000
end
function M.bootstrap(n, stat, opts)
  opts = opts or {}
  local B, seed, level = opts.samples or 1000, opts.seed or 1, opts.level or 0.95
  local all = {}
  for i = 1, n do all[i] = i end
  local point = stat(all)
  local vals = {}
  local idx = {}
  for b = 1, B do
    for i = 1, n do idx[i] = 1 + math.floor(hash_uniform(seed + b * 7919, i) * n) end
    vals[b] = stat(idx)
  end
  table.sort(vals)
  local lo = vals[math.max(1, math.floor((1 - level) / 2 * B + 0.5))]
  local hi = vals[math.min(B, math.ceil((1 + level) / 2 * B))]
  return { value = point, lo = lo, hi = hi, level = level, samples = B }
end

-- bootstrap CI of accuracy and macro-F1 from labels
function M.classification_ci(y_true, y_pred, k, opts)
  local function sub(idx)
    local t, p = {}, {}
    for j, i in ipairs(idx) do t[j] = y_true[i]; p[j] = y_pred[i] end
    return t, p
  end
  return {
    accuracy = M.bootstrap(#y_true, function(idx)
      local c = 0
      for _, i in ipairs(idx) do if y_true[i] == y_pred[i] then c = c + 1 end end
      return c / #idx
    end, opts),
    macro_f1 = M.bootstrap(#y_true, function(idx)
      local t, p = sub(idx)
      return M.classification(t, p, k).macro_f1
    end, opts),
  }
end

-- paired bootstrap CI of the difference stat(b) - stat(a) on the same items (non-inferiority)
function M.paired_difference(n, stat_a, stat_b, opts)
  return M.bootstrap(n, function(idx) return stat_b(idx) - stat_a(idx) end, opts)
end

return M
