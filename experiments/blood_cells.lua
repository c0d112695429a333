-- experiments/blood_cells.lua: peripheral blood-cell type, 8 classes (pbc2020_blood_cells:
-- 4,800 original JPEGs of 360x363, 600 per class). Target: >= 95% held-out accuracy in <= 15
-- minutes on 2 cores.
--   build/histops run experiments/blood_cells.lua
-- Choices:
-- * The cell fills the centre of each image, so images are decoded once and shrunk (area
--   interpolation) to 72x72; training sees random 64x64 crops, evaluation the centre crop.
-- * Smears have no orientation: flips and 90-degree rotations are free augmentation; a small
--   brightness/contrast jitter and HED stain jitter cover staining differences between slides.
-- * The split is seeded and stratified: 70/15/15. The set is balanced, so class weights are 1.
-- * The reference CNN (models/cnn.lua) with 4 blocks of 24..192 channels, AdamW with a cosine
--   schedule; the best epoch by validation macro-F1 is kept, early stopping after 4 flat epochs.
return {
  name = "blood_cells",
  seed = 1,
  data = {
    kind = "folder",
    path = "pbc2020_blood_cells",             -- under $HISTOPS_DATA (default ../shared/data)
    split = { val = 0.15, test = 0.15, stratify = true },
    cache_size = { 72, 72 },
  },
  input = { size = { 64, 64 }, channels = 3, mean = "auto", std = "auto" },
  augment = { hflip = true, vflip = true, rot90 = true, brightness = 0.05, contrast = 0.1, hed_sigma = 0.03 },
  model = function(info)
    return require("models.cnn") { classes = info.num_classes, widths = { 24, 48, 96, 192 }, dropout = 0.3 }
  end,
  train = { epochs = 14, batch = 32, optimizer = "adamw", lr = 3e-3, weight_decay = 5e-4, schedule = "cosine",
    warmup_epochs = 1, class_weights = "none", early_stopping = { metric = "macro_f1", patience = 4 } },
  eval = { bootstrap = 1000 },
  policy = {
    floors = { accuracy = 0.95, macro_f1 = 0.95 },
    recall_floor = 0.85,
    non_inferiority = { metric = "macro_f1", delta = 0.01 },
    budgets = { latency_ms = 50, size_mb = 10 },
  },
}
