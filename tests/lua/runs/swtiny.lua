-- tests/lua/runs/swtiny.lua: a throw-away experiment for sweeps, copied into temporary repositories by
-- tests/lua/test_sweep.lua and tests/mpi_sweep.sh: 24 tiny tiles, one epoch, a TPE search over three
-- settings. SWEEP_TEST_SLOW=s makes each trial last s seconds longer (the kill test). Its metrics mean nothing.
return {
  name = "swtiny",
  seed = 1,
  data = { kind = "synthetic_ihc", synthetic = { tiles = 24, size = 16, nuclei = 2 }, cache_size = { 16, 16 },
    split = { val = 0.25, test = 0.25 } },
  input = { size = { 16, 16 }, channels = 3, mean = { 0.8, 0.7, 0.7 }, std = { 0.15, 0.2, 0.2 } },
  augment = { hflip = true },
  extra = { width = 4 },
  model = function(info)
    local hs = require "histops"
    local slow = tonumber(os.getenv("SWEEP_TEST_SLOW") or "")
    if slow then hs.sys.sleep(slow) end   -- the kill test needs trials that last a moment
    local nn = hs.nn
    local w = info.config.extra.width
    return nn.Sequential { nn.Conv2d(3, w, 3, { padding = 1 }), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
      nn.Linear(w, info.num_classes) }
  end,
  train = { epochs = 1, batch = 8, optimizer = "adam", lr = 1e-2 },
  eval = { bootstrap = 20 },
  report = { samples = 2 },
  sweep = { method = "tpe", trials = 6, batch = 2, n_startup = 2, seed = 3, metric = "val.accuracy",
    params = { ["train.lr"] = { log_uniform = { 1e-3, 1e-1 } }, ["extra.width"] = { 2, 4, 8 },
      ["augment.hed_sigma"] = { uniform = { 0, 0.05 } } } },
}
