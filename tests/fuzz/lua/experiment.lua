-- tests/fuzz/lua/experiment.lua: the experiment the set_override fuzz harness loads with
-- overrides (a small but complete table: nested sections, a list, a model function). Not run.
return {
  name = "fuzz",
  seed = 3,
  data = { kind = "synthetic_ihc", split = { val = 0.2 } },
  input = { size = { 32, 32 } },
  train = { epochs = 1, batch = 8, milestones = { 1, 2 } },
  policy = { min_accuracy = 0.5 },
  model = function(info) return info end,
}
