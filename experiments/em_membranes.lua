-- experiments/em_membranes.lua: neuronal membrane segmentation in serial-section electron
-- microscopy (isbi2012_em_membranes: 24 gray 512x512 slices). Reports Dice of the membranes and
-- pixel accuracy on held-out slices.
--   build/histops run experiments/em_membranes.lua
-- Choices:
-- * The masks mark cell interiors (255) and membranes (0); the network predicts the membranes
--   (data.invert_masks), the thin structure the task is about, so Dice is not inflated by the
--   78% interior.
-- * Gray input (1 channel), random 128x128 crops of the full slices with flips/rotations;
--   evaluation on whole 512x512 held-out slices.
return {
  name = "em_membranes",
  seed = 1,
  task = "segmentation",
  data = { kind = "pairs", path = "isbi2012_em_membranes", split = { val = 0.15, test = 0.25 }, cache_size = { 512, 512 },
    invert_masks = true },
  input = { size = { 128, 128 }, channels = 1, mean = "auto", std = "auto" },
  augment = { hflip = true, vflip = true, rot90 = true, brightness = 0.05, contrast = 0.1 },
  model = function(info)
    return require("models.unet") { in_channels = 1, out_channels = 1, widths = { 16, 32, 64, 128 }, bottleneck = 256 }
  end,
  train = { epochs = 40, batch = 8, optimizer = "adamw", lr = 3e-3, weight_decay = 1e-4, schedule = "cosine",
    warmup_epochs = 1, steps_per_epoch = 20, early_stopping = { metric = "dice", patience = 10 } },
  eval = { bootstrap = 1000, threshold = 0.5 },
}
