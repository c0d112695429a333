-- experiments/sweep_quickstart.lua: the quickstart experiment (synthetic IHC tiles, small CNN) with a
-- search space, for `histops sweep`: learning rate, network width (extra.width, read by the model
-- function through info.config), the HED stain-jitter strength, the training crop size and the
-- sigma of a Gaussian pre-filter (data.preprocess, step 1: applied before training and recorded
-- in the model, so that serving filters the same way). A few
-- epochs on fewer tiles, so that a trial takes a few seconds. Not a tuned model.
--   build/histops sweep experiments/sweep_quickstart.lua [--jobs 2] [--method tpe --trials 12]
-- found through package.path, which holds this file's folder when it runs and experiments/ when
-- a model file rebuilds its architecture from the embedded copy of this script
local base = dofile(assert(package.searchpath("quickstart", package.path)))
base.name = "sweep_quickstart"
base.data.synthetic = { tiles = 160, size = 48, nuclei = 6 }
base.train.epochs = 4
base.train.early_stopping = { metric = "macro_f1", patience = 0 }
base.eval = { bootstrap = 100 }
base.data.preprocess = { { "gaussian", sigma = 0.5 } }   -- sweepable as data.preprocess.1.sigma
base.extra = { width = 8 }            -- free-form settings: any key here is sweepable as extra.<key>
base.model = function(info)
  local w = info.config.extra.width
  return require("models.cnn") { classes = info.num_classes, widths = { w, 2 * w, 4 * w }, dropout = 0.2 }
end
base.sweep = {
  metric = "val.macro_f1", mode = "max",
  method = "random", trials = 8, seed = 1,
  params = {
    ["train.lr"] = { log_uniform = { 2e-3, 3e-2 } },
    ["extra.width"] = { choice = { 4, 8, 16 } },
    ["augment.hed_sigma"] = { uniform = { 0, 0.08 } },
    ["input.size"] = { choice = { { 32, 32 }, { 40, 40 } } },
    ["data.preprocess.1.sigma"] = { uniform = { 0.3, 1.5 } },
  },
}
return base
