-- experiments/quickstart.lua: the whole pipeline in under two minutes on 2 cores, with no data
-- set needed: synthetic IHC tiles (hematoxylin nuclei, some DAB-positive) rendered by hs.synth,
-- classified "positive" (most nuclei DAB-stained) vs "negative" by a small CNN.
--   build/histops run experiments/quickstart.lua [--set train.epochs=2 ...]
return {
  name = "quickstart",
  seed = 1,
  data = {
    kind = "synthetic_ihc",          -- rendered once into runs/.cache, then read like any folder set
    synthetic = { tiles = 320, size = 48, nuclei = 6 },
    cache_size = { 48, 48 },
    split = { val = 0.2, test = 0.2 },  -- seeded and stratified by class
  },
  -- 48x48 tiles are cropped to 40x40 at random for training (centre crop for evaluation)
  input = { size = { 40, 40 }, channels = 3, mean = { 0.8, 0.7, 0.7 }, std = { 0.15, 0.2, 0.2 } },
  augment = { hflip = true, vflip = true, rot90 = true, brightness = 0.05, contrast = 0.05, hed_sigma = 0.03 },
  -- the reference CNN (experiments/models/cnn.lua), narrow: 3 blocks of 8/16/32 channels
  model = function(info)
    return require("models.cnn") { classes = info.num_classes, widths = { 8, 16, 32 }, dropout = 0.2 }
  end,
  train = { epochs = 8, batch = 32, optimizer = "adamw", lr = 3e-3, weight_decay = 1e-4, schedule = "cosine",
    early_stopping = { metric = "macro_f1", patience = 4 } },
  eval = { bootstrap = 500 },
  -- the promotion gate (histops promote, scripts/ci-promote): see lua/hs/gate.lua for the schema.
  -- The 64-tile test set gives wide intervals, hence a generous non-inferiority margin.
  policy = {
    floors = { macro_f1 = 0.9 },
    recall_floor = 0.8,
    non_inferiority = { metric = "macro_f1", delta = 0.05 },
    golden = { max_disagreement = 0, set = { tiles = 16, seed = 4242 } },
    budgets = { latency_ms = 50, size_mb = 1 },
    eval_set = { split = "test", seed = 1 },
  },
}
