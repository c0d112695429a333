-- golden/cases.lua: the golden-output regression cases and their tolerances. Each case computes
-- one tensor from fixed inputs (a crop of ../shared/data's ihc.png, seeded random tensors,
-- synthetic tiles, seeded weights); `histops golden check` compares it with golden/<name>.bin
-- (format: golden/README.md, lua/hs/golden.lua). Regenerate only with
-- `cmake --build build --target golden-update` (never in CI) and review the diff like code.
--
-- Tolerances absorb only cross-machine float differences (other compilers, -march=native, BLAS
-- kernels): on one machine every case is bit-identical across runs and thread counts
-- (tests/lua/test_golden.lua checks that). Elementwise |got - want| <= atol + rtol*|want|.
local hs = require "histops"

local G = { version = 1 }

local IHC = "skimage_microscopy_samples/ihc.png"

-- a fixed 64x64 crop of the IHC showcase image (u8, HWC)
local function ihc_crop(ctx)
  return ctx.once("ihc_crop", function()
    local img, err = hs.image.load(ctx.data_dir .. "/" .. IHC)
    if not img then error(("golden: %s (set HISTOPS_DATA)"):format(err), 0) end
    return hs.image.crop(img, 161, 241, 64, 64)
  end)
end

-- synthetic IHC tiles: negative (odd i) and positive (even i), as the quickstart experiment
local function tiles(n, size, seed)
  local out, labels = {}, {}
  for i = 1, n do
    local positive = (i % 2 == 0)
    out[i] = hs.synth.ihc { width = size, height = size, nuclei = 6, seed = seed * 100003 + i,
      positive_fraction = positive and 0.9 or 0.05, radius = { 4, 7 }, noise = 0.04 }
    labels[i] = positive and 1 or 0
  end
  return out, labels
end

local INPUT = { size = { 32, 32 }, channels = 3, mean = { 0.8, 0.7, 0.7 }, std = { 0.15, 0.2, 0.2 } }

-- tiles -> normalised (N,3,32,32) batch through the model input pipeline (hs.model_io.batch)
local function batch(images)
  return require("hs.model_io").batch({ meta = { input = INPUT, pipeline = { cache_size = { 32, 32 } } } }, images)
end

-- non-trivial BatchNorm running statistics, so that eval-mode forwards exercise them
local function randomise_bn(model, seed)
  local sd, order = model:state_dict()
  local new = {}
  for i, name in ipairs(order) do
    local t = sd[name]
    if name:match("running_mean$") then
      new[name] = hs.randn(t:shape(), seed + i):mul(0.1)
    elseif name:match("running_var$") then
      new[name] = hs.rand(t:shape(), seed + i):add(0.5)
    else
      new[name] = t:clone()
    end
  end
  model:load_state_dict(new)
end

local TINY_SOURCE = [[
-- golden tiny classifier: the reference CNN, narrow (used by golden/cases.lua)
return {
  name = "golden_tiny",
  input = { size = { 32, 32 }, channels = 3, mean = { 0.8, 0.7, 0.7 }, std = { 0.15, 0.2, 0.2 } },
  model = function(info)
    return require("models.cnn") { classes = info.num_classes, widths = { 4, 8 }, dropout = 0 }
  end,
}
]]

-- a short seeded training run of the tiny classifier: per-step losses and the trained model
local function tiny_training(ctx)
  return ctx.once("tiny_training", function()
    local nn = hs.nn
    nn.manual_seed(3)
    local model = require("models.cnn") { classes = 2, widths = { 4, 8 }, dropout = 0 }
    local images, labels = tiles(32, 40, 11)
    local x = batch(images)
    local y = hs.tensor(labels, "i64")
    local B = 16
    local step = nn.compile(model, { input = { B, 3, 32, 32 }, target = { B }, target_dtype = "i64",
      loss = nn.CrossEntropyLoss(), training = true })
    local opt = hs.optim.AdamW(model, { lr = 3e-3, weight_decay = 1e-4 })
    local losses = {}
    for s = 1, 16 do
      local off = ((s - 1) % 2) * B
      model:zero_grad()
      losses[s] = step:step(x:narrow(1, off + 1, B):contiguous(), y:narrow(1, off + 1, B):contiguous())
      opt:step()
    end
    model:eval()
    return { losses = losses, model = model }
  end)
end

G.cases = {
  -- ---------------------------------------------------------------- training through the runner
  -- First on purpose: nn.Dropout's default seed is a process-wide counter that nn.manual_seed does
  -- not reset (reported), so this case must build its model before any other case builds one.
  {
    name = "quickstart_loss_curve",
    what = "experiments/quickstart.lua (96 tiles) for 3 epochs of 4 steps through the experiment runner (augmentation, prefetching loader, cosine schedule): train_loss per epoch, f64",
    tol = { atol = 1e-3, rtol = 1e-3 },
    compute = function(ctx)
      local config = require "hs.config"
      local exp = require "hs.experiment"
      local tmp = ctx.tmpdir()
      local cfg = config.load((HISTOPS_SOURCE_DIR or ".") .. "/experiments/quickstart.lua",
        { "train.epochs=3", "train.steps_per_epoch=4", "data.synthetic.tiles=96", "eval.bootstrap=10",
          "train.early_stopping.patience=0" })
      local record = exp.run(cfg, { out = tmp .. "/runs", cache_dir = tmp .. "/cache", quiet = true, no_git = true })
      local v = {}
      for i, h in ipairs(record.history) do v[i] = h.train_loss end
      return hs.tensor(v, "f64")
    end,
  },
  -- ---------------------------------------------------------------- preprocessing
  {
    name = "preproc_rgb2hed",
    what = "rgb2hed of a 64x64 crop of ihc.png (u8 -> f32 HED optical densities), HWC",
    tol = { atol = 1e-6, rtol = 1e-5 },
    compute = function(ctx) return hs.image.rgb2hed(ihc_crop(ctx)) end,
  },
  {
    name = "preproc_hed_gaussian_resize",
    what = "the stain pipeline: rgb2hed -> gaussian sigma 1.5 (reflect101) -> area resize to 24x24, f32 HWC",
    tol = { atol = 1e-6, rtol = 1e-5 },
    compute = function(ctx)
      local hed = hs.image.rgb2hed(ihc_crop(ctx))
      return hs.image.resize(hs.image.gaussian(hed, 1.5), 24, 24, "area")
    end,
  },
  {
    name = "preproc_resize_bilinear",
    what = "to_float then bilinear resize of the crop to 40x28 (w x h), f32 HWC",
    tol = { atol = 1e-6, rtol = 1e-5 },
    compute = function(ctx) return hs.image.resize(hs.image.to_float(ihc_crop(ctx)), 40, 28, "bilinear") end,
  },
  {
    name = "preproc_model_batch",
    what = "the model input pipeline (hs.model_io.batch: area resize 64->32, normalise) on the crop and two synthetic tiles, (3,3,32,32)",
    tol = { atol = 1e-5, rtol = 1e-5 },
    compute = function(ctx)
      local t = tiles(2, 48, 5)
      return batch({ ihc_crop(ctx), t[1], t[2] })
    end,
  },
  -- ---------------------------------------------------------------- reference architectures
  {
    name = "cnn_forward",
    what = "experiments/models/cnn.lua (widths 4,8,16, 3 classes), manual_seed(11) weights, random BN statistics, eval forward of randn (2,3,24,24) seed 5 -> logits (2,3)",
    tol = { atol = 1e-5, rtol = 1e-4 },
    compute = function()
      hs.nn.manual_seed(11)
      local model = require("models.cnn") { classes = 3, widths = { 4, 8, 16 }, dropout = 0.5 }
      randomise_bn(model, 100)
      model:eval()
      return model(hs.randn({ 2, 3, 24, 24 }, 5))
    end,
  },
  {
    name = "unet_forward",
    what = "experiments/models/unet.lua (widths 4,8, bottleneck 16, 3 -> 1), manual_seed(12) weights, random BN statistics, eval forward of randn (1,3,16,16) seed 6 -> (1,1,16,16)",
    tol = { atol = 1e-5, rtol = 1e-4 },
    compute = function()
      hs.nn.manual_seed(12)
      local model = require("models.unet") { widths = { 4, 8 }, bottleneck = 16 }
      randomise_bn(model, 200)
      model:eval()
      return model(hs.randn({ 1, 3, 16, 16 }, 6))
    end,
  },
  -- ---------------------------------------------------------------- training
  {
    name = "train_loss_curve",
    what = "16 AdamW steps (lr 3e-3, batch 16) of the tiny CNN (widths 4,8) on 32 synthetic tiles, manual_seed(3): per-step cross-entropy, f64",
    tol = { atol = 1e-4, rtol = 1e-3 },
    compute = function(ctx) return hs.tensor(tiny_training(ctx).losses, "f64") end,
  },
  -- ---------------------------------------------------------------- a registered model
  {
    name = "registered_model_probs",
    what = "the trained tiny CNN saved as a model file, registered in a throw-away git repository and loaded back as golden-tiny@production; predict() class probabilities on 8 synthetic tiles (seed 777, 48x48), (8,2) f32",
    tol = { atol = 2e-3, rtol = 0 },
    compute = function(ctx)
      local model_io = require "hs.model_io"
      local registry = require "hs.registry"
      local model = tiny_training(ctx).model
      local tmp = ctx.tmpdir()
      local repo = tmp .. "/repo"
      assert(os.execute("git init -q " .. repo), "git init failed")
      model_io.save(tmp .. "/tiny.safetensors", model, { format = "histops-model-1", classes = { "negative", "positive" },
        input = INPUT, pipeline = { input = INPUT, cache_size = { 32, 32 }, task = "classification" },
        task = "classification", experiment = "golden_tiny", experiment_file = "golden_tiny.lua",
        experiment_source = TINY_SOURCE, overrides = {}, metrics = {} })
      local v = registry.register(tmp .. "/tiny.safetensors", { name = "golden-tiny", repo = repo, user = "golden" })
      registry.set_alias("golden-tiny", "production", v.version, "golden case", false, { repo = repo, who = "golden" })
      local m = assert(registry.load("golden-tiny@production", { repo = repo }))
      local images = tiles(8, 48, 777)
      local res = m:predict(images)
      local p = {}
      for i, r in ipairs(res) do p[i] = { r.probs.negative, r.probs.positive } end
      return hs.tensor(p)
    end,
  },
}

return G
