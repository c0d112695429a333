-- tests/lua/runs/tiny.lua: a throw-away experiment for tests/lua/test_runs.lua (copied into
-- temporary repositories): 24 synthetic IHC tiles of 16x16, a 4-channel CNN, one epoch in well
-- under a second. Not a real experiment: its metrics mean nothing.
return {
  name = "tiny",
  seed = 1,
  data = { kind = "synthetic_ihc", synthetic = { tiles = 24, size = 16, nuclei = 2 }, cache_size = { 16, 16 },
    split = { val = 0.25, test = 0.25 } },
  input = { size = { 16, 16 }, channels = 3, mean = { 0.8, 0.7, 0.7 }, std = { 0.15, 0.2, 0.2 } },
  augment = { hflip = true },
  model = function(info)
    local nn = require("histops").nn
    return nn.Sequential { nn.Conv2d(3, 4, 3, { padding = 1 }), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
      nn.Linear(4, info.num_classes) }
  end,
  train = { epochs = 1, batch = 8, optimizer = "adam", lr = 1e-2 },
  eval = { bootstrap = 50 },
  report = { samples = 4 },
}
