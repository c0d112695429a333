-- experiments/nuclei_unet.lua: nucleus segmentation with the reference U-Net (dsb2018_nuclei:
-- 531 image/mask pairs, 256x256 .. 1388x1040, fluorescence and bright-field). Target: Dice >=
-- 0.85 on held-out images.
--   build/histops run experiments/nuclei_unet.lua
-- Choices:
-- * Mixed sizes: every image and mask is resampled once to 256x256 (area when shrinking), the
--   network trains on random 128x128 crops with flips and rotations, and evaluation runs on
--   the whole 256x256 held-out images (fully convolutional, no tiling seams).
-- * Loss: BCE + soft Dice on the logits (nuclei cover ~15% of the pixels; Dice counters the
--   imbalance). Threshold 0.5 on the sigmoid for the metrics.
-- * A U-Net of 4 levels, 16..128 channels: the benchmark's UNet-S.
return {
  name = "nuclei_unet",
  seed = 1,
  task = "segmentation",
  data = { kind = "pairs", path = "dsb2018_nuclei", split = { val = 0.1, test = 0.15 }, cache_size = { 256, 256 } },
  input = { size = { 128, 128 }, channels = 3, mean = "auto", std = "auto" },
  augment = { hflip = true, vflip = true, rot90 = true, brightness = 0.05, contrast = 0.1 },
  model = function(info)
    return require("models.unet") { in_channels = 3, out_channels = 1, widths = { 16, 32, 64, 128 }, bottleneck = 256 }
  end,
  train = { epochs = 12, batch = 8, optimizer = "adamw", lr = 2e-3, weight_decay = 1e-4, schedule = "cosine",
    warmup_epochs = 1, early_stopping = { metric = "dice", patience = 4 } },
  eval = { bootstrap = 1000, threshold = 0.5 },
}
