-- lua/hs/ref/torch_model.lua: reference handler for whole-model cases (op "model"):
-- tiny_cnn_train_step builds the described CNN with hs.nn (PyTorch state_dict names), loads the
-- case's initial parameters, runs one training step (BN in training mode, cross-entropy, SGD with
-- momentum) and compares logits, loss, every parameter gradient and the state after the step.
local hs = require "histops"

local function parse_layers(layers)
  local nn = hs.nn
  local mods = {}
  for _, spec in ipairs(layers) do
    local cin, cout, pad = spec:match("^conv3x3%((%d+)%->(%d+),p(%d+)%)$")
    local lin_in, lin_out = spec:match("^linear%((%d+)%->(%d+)%)$")
    local pool = spec:match("^maxpool(%d+)$")
    if cin then
      mods[#mods + 1] = nn.Conv2d(tonumber(cin), tonumber(cout), 3, { padding = tonumber(pad) })
      mods[#mods].out_channels = tonumber(cout)
    elseif spec == "bn" then
      mods[#mods + 1] = nn.BatchNorm2d(mods[#mods].out_channels)
    elseif spec == "relu" then
      mods[#mods + 1] = nn.ReLU()
    elseif pool then
      mods[#mods + 1] = nn.MaxPool2d(tonumber(pool))
    elseif spec == "global_avgpool" then
      mods[#mods + 1] = nn.AdaptiveAvgPool2d(1)
      mods[#mods + 1] = nn.Flatten()
    elseif lin_in then
      mods[#mods + 1] = nn.Linear(tonumber(lin_in), tonumber(lin_out))
    else
      return nil, "layer '" .. spec .. "' not understood"
    end
  end
  return nn.Sequential(mods)
end

local function tiny_cnn(case)
  if not (hs.graph and hs.optim) then return nil, "graph or optimizer not available" end
  local p = case.params
  local model, why = parse_layers(p.layers)
  if not model then return nil, why end
  local t = case.t
  local sd = {}
  for k, v in pairs(t) do
    local name = k:match("^param%.(.+)$")
    if name then sd[name] = v end
  end
  -- the case stores float32 state only; num_batches_tracked (int64) is not part of it
  for name, buf in pairs(model:state_dict()) do
    if sd[name] == nil and buf:dtype() == "i64" then sd[name] = buf end
  end
  model:load_state_dict(sd)
  local lr, momentum = p.optimizer:match("lr=([%d%.]+) momentum=([%d%.]+)")
  local opt = hs.optim.SGD(model, { lr = tonumber(lr), momentum = tonumber(momentum) })
  local step = hs.nn.compile(model, { input = t.x:shape(), target = t.target:shape(), target_dtype = "i64",
    loss = hs.nn.CrossEntropyLoss(), training = true })
  model:zero_grad()
  local loss = step:step(t.x, t.target)
  local cmp = {
    { name = "logits", got = step:output():clone(), want = t.logits, tol = "forward" },
    { name = "loss", got = hs.tensor { loss }, want = t.loss, tol = "forward" },
  }
  for _, np in ipairs(model:named_parameters()) do
    local want = t["grad." .. np[1]]
    if want then cmp[#cmp + 1] = { name = "grad." .. np[1], got = np[2].grad:clone(), want = want, tol = "grad" } end
  end
  opt:step()
  for name, v in pairs(model:state_dict()) do
    local want = t["after_step." .. name]
    if want then cmp[#cmp + 1] = { name = "after_step." .. name, got = v:clone(), want = want, tol = "grad" } end
  end
  table.sort(cmp, function(a, b) return a.name < b.name end)
  return cmp
end

return { model = tiny_cnn }
