-- experiments/models/cnn.lua: the reference classification CNN, written with hs.nn.
-- Blocks of conv3x3 (no bias: BatchNorm follows) - BatchNorm - ReLU, with 2x2 max pooling
-- between blocks, then global average pooling, dropout and a linear classifier. With the
-- defaults it is exactly the benchmark's CNN-S/CNN-M (../shared/bench/torch_cnn.py), so
-- weights and timings compare one to one with PyTorch.
--   local cnn = require "models.cnn"      (package.path includes experiments/)
--   local model = cnn{ in_channels = 3, classes = 8, widths = {32, 64, 128, 256}, dropout = 0.5 }
local hs = require "histops"

return function(opts)
  local nn = hs.nn
  opts = opts or {}
  local widths = opts.widths or { 32, 64, 128, 256 }
  local layers, c = {}, opts.in_channels or 3
  for i, w in ipairs(widths) do
    layers[#layers + 1] = nn.Conv2d(c, w, 3, { padding = 1, bias = false })
    layers[#layers + 1] = nn.BatchNorm2d(w)
    layers[#layers + 1] = nn.ReLU()
    if i < #widths then layers[#layers + 1] = nn.MaxPool2d(2) end  -- no pooling after the last block
    c = w
  end
  layers[#layers + 1] = nn.AdaptiveAvgPool2d(1)
  layers[#layers + 1] = nn.Flatten()
  layers[#layers + 1] = nn.Dropout(opts.dropout or 0.5)
  layers[#layers + 1] = nn.Linear(c, opts.classes or 8)
  return nn.Sequential(layers)
end
