-- lua/hs/bench/nn.lua: our side of `scripts/bench nn`: times the reference CNN-S, CNN-M and
-- UNet-S (experiments/models/, identical to ../shared/bench/torch_cnn.py) in this process and
-- prints one JSON line, with the keys torch_cnn.py uses. Not the comparison itself: scripts/bench-nn
-- runs this and PyTorch alternately and prints the ratios.
--
--   histops lua/hs/bench/nn.lua --model cnn_s|cnn_m|unet_s --phase train|infer [--threads N]
--                               [--reps N] [--profile]
--   histops lua/hs/bench/nn.lua compare --bin B --torch torch_cnn.py --python P [--rounds N]
--                               [--models a,b] [--threads N] [--out FILE]   (what scripts/bench-nn runs)
--   local bench = require "hs.bench.nn"; bench.run_one("cnn_s", "train", {threads = 2})
--
-- Phases as torch_cnn.py: "train" = forward + backward + SGD (lr 0.01, momentum 0.9) steps at the
-- model's training batch, median of 7 timed steps after 3 warm-up steps; "infer" = eval-mode
-- forward at batch 32 (median of 7 after 2) and at batch 1 (median of 30 after 5). Inputs are
-- seeded, so every run sees the same data. Peak RSS is this process's (one phase per process).
local hs = require "histops"
local json = require "hs.json"

local M = {}

-- name: input side, training batch, loss kind (as torch_cnn.py's SPEC)
M.SPEC = {
  cnn_s = { hw = 64, batch = 32, loss = "ce" },
  cnn_m = { hw = 128, batch = 32, loss = "ce" },
  unet_s = { hw = 128, batch = 8, loss = "bce" },
}
M.MODELS = { "cnn_s", "cnn_m", "unet_s" }

local function build(name)
  hs.nn.manual_seed(0)
  if name == "unet_s" then return (require "models.unet")() end
  return (require "models.cnn")()
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end
M.median = median

local function timed(fn, reps, warmup)
  local clock = hs.sys.clock
  for _ = 1, warmup do fn() end
  local ts = {}
  for i = 1, reps do
    local t0 = clock()
    fn()
    ts[i] = clock() - t0
  end
  return ts
end

local function round(x, d)
  local m = 10 ^ (d or 2)
  return math.floor(x * m + 0.5) / m
end

-- Forward FLOPs per image (2 x multiply-adds of convs, transposed convs and linears), counted
-- from the model's parameters and the input size as torch_cnn.py's hooks do.
local function fwd_flops(name, hw)
  local model = build(name)
  local total = 0
  if name ~= "unet_s" then
    local s = hw
    for i = 0, model:size() - 1 do
      local m = model:get(i + 1)
      if m.__name == "Conv2d" then
        local w = m.weight.data:shape()
        total = total + 2 * s * s * w[1] * w[2] * w[3] * w[4]
      elseif m.__name == "MaxPool2d" then
        s = s // 2
      elseif m.__name == "Linear" then
        total = total + 2 * m.in_features * m.out_features
      end
    end
    return total
  end
  -- U-Net: walk the levels as its forward does
  local function dbl(seq, s)
    local f = 0
    for _, i in ipairs { 1, 4 } do
      local w = seq:get(i).weight.data:shape()
      f = f + 2 * s * s * w[1] * w[2] * w[3] * w[4]
    end
    return f
  end
  local s = hw
  for i = 1, model.downs:size() do
    total = total + dbl(model.downs:get(i), s)
    s = s // 2
  end
  total = total + dbl(model.bottleneck, s)
  for i = 1, model.ups:size() do
    local w = model.ups:get(i).weight.data:shape()   -- (Cin, Cout, 2, 2): scatter per input pixel
    total = total + 2 * s * s * w[1] * w[2] * w[3] * w[4]
    s = s * 2
    total = total + dbl(model.decs:get(i), s)
  end
  local w = model.head.weight.data:shape()
  return total + 2 * s * s * w[1] * w[2]
end
M.fwd_flops = fwd_flops

-- Run one model and phase in this process; returns the result table (torch_cnn.py's keys).
function M.run_one(name, phase, opts)
  opts = opts or {}
  local spec = assert(M.SPEC[name], "unknown model " .. tostring(name))
  if opts.threads then hs.sys.set_threads(opts.threads) end
  local hw, bs = spec.hw, spec.batch
  local rss_start = hs.sys.rss_peak()
  local model = build(name)
  local flops = fwd_flops(name, hw)
  local res = {
    kind = "histops_model_phase", phase = phase, model = name, input = { 3, hw, hw },
    params = model:num_parameters(), threads = hs.sys.get_threads(),
    fwd_gflop_per_image = round(flops / 1e9, 4), train_gflop_per_image_3x = round(3 * flops / 1e9, 4),
    rss_mib_at_start = round(rss_start / 1048576, 1),
  }
  local prof = opts.profile
  if phase == "infer" then
    model:eval()
    local x32 = hs.randn({ 32, 3, hw, hw }, 2)
    local x1 = hs.randn({ 1, 3, hw, hw }, 3)
    local g32 = hs.nn.compile(model, { input = x32:shape(), training = false })
    local g1 = hs.nn.compile(model, { input = x1:shape(), training = false })
    if prof then g32.g:profile(true) end
    local t_inf = timed(function() g32:forward(x32) end, opts.reps or 7, 2)
    local t_lat = timed(function() g1:forward(x1) end, opts.lat_reps or 30, 5)
    local med_inf, med_lat = median(t_inf), median(t_lat)
    local lat_min = math.huge
    for _, t in ipairs(t_lat) do lat_min = math.min(lat_min, t) end
    res.infer_batch = 32
    res.infer_images_per_s = round(32 / med_inf, 2)
    res.infer_batch_ms_median = round(med_inf * 1e3, 2)
    res.latency_bs1_ms_median = round(med_lat * 1e3, 3)
    res.latency_bs1_ms_min = round(lat_min * 1e3, 3)
    res.infer_achieved_gflops = round(32 / med_inf * flops / 1e9, 2)
    res.latency_achieved_gflops = round(flops / med_lat / 1e9, 2)
    res.arena_mib_infer32 = round(g32:arena_bytes() / 1048576, 1)
    res.peak_rss_mib_inference = round(hs.sys.rss_peak() / 1048576, 1)
    if prof then res.profile = g32.g:profile() end
    return res
  end
  assert(phase == "train", "phase must be train or infer")
  local x = hs.randn({ bs, 3, hw, hw }, 2)
  local y, loss, target, tdt
  if spec.loss == "ce" then
    y = hs.rand({ bs }, { seed = 4, lo = 0, hi = 7.49 }):astype("i64")
    loss, target, tdt = hs.nn.CrossEntropyLoss(), { bs }, "i64"
  else
    y = hs.rand({ bs, 1, hw, hw }, { seed = 4 }):gt(0.5):astype("f32")
    loss, target, tdt = hs.nn.BCEWithLogitsLoss(), { bs, 1, hw, hw }, "f32"
  end
  model:train()
  local cg = hs.nn.compile(model, { input = x:shape(), target = target, target_dtype = tdt, loss = loss, training = true })
  local opt = hs.optim.SGD(model, { lr = 0.01, momentum = 0.9 })
  local last
  local function step()
    model:zero_grad()
    last = cg:step(x, y)
    opt:step()
  end
  if prof then cg.g:profile(true) end
  local t_train = timed(step, opts.reps or 7, 3)
  local med = median(t_train)
  local all = {}
  for i, t in ipairs(t_train) do all[i] = round(t * 1e3, 2) end
  res.train_batch = bs
  res.train_images_per_s = round(bs / med, 2)
  res.train_step_ms_median = round(med * 1e3, 2)
  res.train_step_ms_all = all
  res.train_achieved_gflops = round(bs / med * 3 * flops / 1e9, 2)
  res.arena_mib_train = round(cg:arena_bytes() / 1048576, 1)
  res.final_loss = last
  res.peak_rss_mib_train = round(hs.sys.rss_peak() / 1048576, 1)
  if prof then res.profile = cg.g:profile() end
  return res
end

local function parse(args)
  local o = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--model" then o.model = args[i + 1]; i = i + 2
    elseif a == "--phase" then o.phase = args[i + 1]; i = i + 2
    elseif a == "--threads" then o.threads = math.tointeger(tonumber(args[i + 1])); i = i + 2
    elseif a == "--reps" then o.reps = math.tointeger(tonumber(args[i + 1])); i = i + 2
    elseif a == "--profile" then o.profile = true; i = i + 1
    else error("bench nn: unknown argument " .. tostring(a), 0) end
  end
  return o
end

-- ---------------------------------------------------------------- side by side with PyTorch
local TUNED_ENV = "OPENBLAS_NUM_THREADS=1 GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"

-- metric key, phase, label, higher is better, targets (ratio vs default, ratio vs tuned)
M.METRICS = {
  { key = "train_images_per_s", phase = "train", label = "train img/s", higher = true, t_def = 1.5, t_tuned = 1.0 },
  { key = "infer_images_per_s", phase = "infer", label = "infer img/s (bs32)", higher = true, t_def = 1.5, t_tuned = 1.0 },
  { key = "latency_bs1_ms_median", phase = "infer", label = "latency bs1 ms", higher = false, t_def = 1.0, t_tuned = 1.0 },
  { key = "peak_rss_mib_train", phase = "train", label = "peak RSS train MiB", higher = false, t_def = 1.0, t_tuned = 1.0 },
  { key = "peak_rss_mib_inference", phase = "infer", label = "peak RSS infer MiB", higher = false, t_def = 1.0, t_tuned = 1.0 },
}

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- run a child and decode the last JSON line of its output; nil, message on failure
local function run_child(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  local last
  for line in out:gmatch("[^\n]+") do
    if line:sub(1, 1) == "{" then last = line end
  end
  if not ok or not last then return nil, ("child failed: %s\n%s"):format(cmd, out) end
  local r, e = json.decode(last)
  if type(r) ~= "table" then return nil, ("child printed bad JSON (%s): %s"):format(tostring(e), last) end
  return r
end

local function busy_pct()
  local function stat()
    local f = io.open("/proc/stat")
    if not f then return nil end
    local l = f:read("l")
    f:close()
    local v, tot = {}, 0
    for x in l:gmatch("%d+") do v[#v + 1] = tonumber(x) end
    for i = 1, math.min(8, #v) do tot = tot + v[i] end
    return tot, v[4] + (v[5] or 0)
  end
  local t0, i0 = stat()
  if not t0 then return nil end
  hs.sys.sleep(1.0)
  local t1, i1 = stat()
  local dt = t1 - t0
  return dt > 0 and round(100 * (dt - (i1 - i0)) / dt, 1) or nil
end

function M.compare(o)
  local rounds = o.rounds or 3
  local models = o.models or M.MODELS
  local threads = o.threads or 2
  local out_lines = {}
  local function emit(t) out_lines[#out_lines + 1] = json.encode(t) end
  local busy = busy_pct()
  io.stderr:write(("[bench nn] background CPU busy before start: %s%%%s\n"):format(tostring(busy),
    (busy or 0) > 10 and "  WARNING: another process is using the CPUs; results will be noisy" or ""))
  emit({ kind = "env", threads = threads, rounds = rounds, background_busy_pct = busy, cpu = hs.sys.cpu_model(),
    versions = hs.sys.versions(), torch_script = o.torch })
  local impls = {
    ours = function(m, ph)
      return ("%s %s --model %s --phase %s --threads %d"):format(sh_quote(o.bin), sh_quote(o.script), m, ph, threads)
    end,
    torch_default = function(m, ph)
      return ("env -u OPENBLAS_NUM_THREADS -u GLIBC_TUNABLES %s %s --model %s --phase %s --threads %d"):format(
        sh_quote(o.python), sh_quote(o.torch), m, ph, threads)
    end,
    torch_tuned = function(m, ph)
      return ("env %s %s %s --model %s --phase %s --threads %d"):format(TUNED_ENV, sh_quote(o.python), sh_quote(o.torch),
        m, ph, threads)
    end,
  }
  local order = { "ours", "torch_default", "torch_tuned" }
  local res = {}   -- res[model][impl][round] = merged phase results
  for _, m in ipairs(models) do
    res[m] = { ours = {}, torch_default = {}, torch_tuned = {} }
  end
  for r = 1, rounds do
    for _, m in ipairs(models) do
      for _, ph in ipairs { "infer", "train" } do
        local seq = {}
        for i = 1, #order do seq[i] = order[(r % 2 == 1) and i or (#order + 1 - i)] end
        for _, impl in ipairs(seq) do
          local rec, err = run_child(impls[impl](m, ph))
          if not rec then
            io.stderr:write("[bench nn] ", err, "\n")
            return 1
          end
          local slot = res[m][impl][r] or {}
          for k, v in pairs(rec) do slot[k] = v end
          res[m][impl][r] = slot
          emit({ kind = "run", impl = impl, round = r, model = m, phase = ph,
            train_images_per_s = rec.train_images_per_s, infer_images_per_s = rec.infer_images_per_s,
            latency_bs1_ms_median = rec.latency_bs1_ms_median, peak_rss_mib_train = rec.peak_rss_mib_train,
            peak_rss_mib_inference = rec.peak_rss_mib_inference, train_step_ms_median = rec.train_step_ms_median,
            infer_batch_ms_median = rec.infer_batch_ms_median })
          io.stderr:write(("[bench nn] round %d/%d %-7s %-5s %-13s %s\n"):format(r, rounds, m, ph, impl,
            ph == "train" and ("%.1f img/s, %.0f MiB"):format(rec.train_images_per_s, rec.peak_rss_mib_train)
            or ("%.1f img/s, %.2f ms bs1, %.0f MiB"):format(rec.infer_images_per_s, rec.latency_bs1_ms_median,
              rec.peak_rss_mib_inference)))
        end
      end
    end
  end
  -- summary
  local rows, all_pass = {}, true
  for _, m in ipairs(models) do
    for _, mt in ipairs(M.METRICS) do
      local vals = { ours = {}, torch_default = {}, torch_tuned = {} }
      local rd, rt = {}, {}
      for r = 1, rounds do
        local a, b, c = res[m].ours[r][mt.key], res[m].torch_default[r][mt.key], res[m].torch_tuned[r][mt.key]
        vals.ours[r], vals.torch_default[r], vals.torch_tuned[r] = a, b, c
        rd[r], rt[r] = a / b, a / c
      end
      local row = { kind = "summary", model = m, metric = mt.key, higher_is_better = mt.higher,
        ours = median(vals.ours), torch_default = median(vals.torch_default), torch_tuned = median(vals.torch_tuned),
        ratio_vs_default = round(median(rd), 3), ratio_vs_tuned = round(median(rt), 3),
        target_vs_default = mt.t_def, target_vs_tuned = mt.t_tuned }
      if mt.higher then
        row.pass = row.ratio_vs_default >= mt.t_def and row.ratio_vs_tuned >= mt.t_tuned
      else
        row.pass = row.ratio_vs_default < mt.t_def and row.ratio_vs_tuned < mt.t_tuned
      end
      all_pass = all_pass and row.pass
      row.label = mt.label
      rows[#rows + 1] = row
      emit(row)
    end
  end
  local w = io.stdout
  w:write(("\nhistops vs PyTorch %s, %d thread(s), median of %d round(s); ratio = ours / PyTorch\n"):format(
    "(default | tuned env)", threads, rounds))
  w:write(("%-7s %-20s %10s %12s %12s %9s %9s  %s\n"):format("model", "metric", "ours", "torch def", "torch tuned",
    "vs def", "vs tuned", "target"))
  for _, row in ipairs(rows) do
    local tgt = row.higher_is_better and (">=%.1fx def, >=%.1fx tuned"):format(row.target_vs_default, row.target_vs_tuned)
      or "< 1 (lower is better)"
    w:write(("%-7s %-20s %10.2f %12.2f %12.2f %8.2fx %8.2fx  %s %s\n"):format(row.model, row.label, row.ours,
      row.torch_default, row.torch_tuned, row.ratio_vs_default, row.ratio_vs_tuned, tgt, row.pass and "PASS" or "MISS"))
  end
  if o.out then
    local f = assert(io.open(o.out, "w"))
    f:write(table.concat(out_lines, "\n"), "\n")
    f:close()
    w:write("written: ", o.out, "\n")
  end
  return 0
end

-- Script entry: print one JSON line (or, with "compare", run the side-by-side benchmark);
-- returns the exit status.
function M.main(args)
  if args[1] == "compare" then
    local o = { script = arg and arg[0] or "lua/hs/bench/nn.lua" }
    local i = 2
    while i <= #args do
      local a, v = args[i], args[i + 1]
      if a == "--rounds" then o.rounds = math.tointeger(tonumber(v))
      elseif a == "--threads" then o.threads = math.tointeger(tonumber(v))
      elseif a == "--out" then o.out = v
      elseif a == "--bin" then o.bin = v
      elseif a == "--torch" then o.torch = v
      elseif a == "--python" then o.python = v
      elseif a == "--models" then
        o.models = {}
        for m in v:gmatch("[^,]+") do
          if not M.SPEC[m] then io.stderr:write("bench nn: unknown model ", m, "\n") return 2 end
          o.models[#o.models + 1] = m
        end
      else io.stderr:write("bench nn: unknown argument ", tostring(a), "\n") return 2 end
      i = i + 2
    end
    if not (o.bin and o.torch and o.python) then
      io.stderr:write("bench nn compare: --bin, --torch and --python are required (use scripts/bench-nn)\n")
      return 2
    end
    if not o.rounds or o.rounds < 1 then o.rounds = 3 end
    return M.compare(o)
  end
  local o = parse(args)
  if not M.SPEC[o.model or ""] then
    io.stderr:write("usage: histops lua/hs/bench/nn.lua --model cnn_s|cnn_m|unet_s --phase train|infer [--threads N]\n")
    return 2
  end
  local res = M.run_one(o.model, o.phase or "infer", o)
  io.write(json.encode(res), "\n")
  io.flush()
  return 0
end

local first = ...
if first ~= "hs.bench.nn" then return M.main({ ... }) end
return M
