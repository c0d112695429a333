-- experiments/models/unet.lua: the reference U-Net, written with hs.nn in plain Lua.
-- Encoder: per level two conv3x3-BN-ReLU blocks, then 2x2 max pooling; a bottleneck; decoder:
-- 2x2 transposed convolution (stride 2), concatenation with the skip connection of the same
-- level, two conv blocks; a 1x1 head. Defaults are the benchmark's UNet-S (base widths
-- 16,32,64,128, bottleneck 256, 3 -> 1 channel) so that it compares one to one with PyTorch.
--   local unet = require "models.unet"
--   local model = unet{ in_channels = 3, out_channels = 1, widths = {16, 32, 64, 128}, bottleneck = 256 }
-- Inputs must have H and W divisible by 2^#widths.
local hs = require "histops"

return function(opts)
  local nn = hs.nn
  opts = opts or {}
  local widths = opts.widths or { 16, 32, 64, 128 }
  local bottleneck = opts.bottleneck or 2 * widths[#widths]

  local function double(cin, cout)
    return nn.Sequential(
      nn.Conv2d(cin, cout, 3, { padding = 1, bias = false }), nn.BatchNorm2d(cout), nn.ReLU(),
      nn.Conv2d(cout, cout, 3, { padding = 1, bias = false }), nn.BatchNorm2d(cout), nn.ReLU())
  end

  local UNet = nn.class(nn.Module)
  UNet.__name = "UNet"
  function UNet:__init()
    nn.Module.__init(self)
    self:add_module("downs", nn.ModuleList())
    local c = opts.in_channels or 3
    for _, w in ipairs(widths) do
      self.downs:append(double(c, w))
      c = w
    end
    self:add_module("pool", nn.MaxPool2d(2))
    self:add_module("bottleneck", double(c, bottleneck))
    c = bottleneck
    self:add_module("ups", nn.ModuleList())
    self:add_module("decs", nn.ModuleList())
    for i = #widths, 1, -1 do
      self.ups:append(nn.ConvTranspose2d(c, widths[i], 2, { stride = 2 }))
      self.decs:append(double(2 * widths[i], widths[i]))
      c = widths[i]
    end
    self:add_module("head", nn.Conv2d(c, opts.out_channels or 1, 1))
  end

  function UNet:forward(x)
    local skips = {}
    for i = 1, self.downs:size() do
      x = self.downs:get(i)(x)
      skips[i] = x
      x = self.pool(x)
    end
    x = self.bottleneck(x)
    for i = 1, self.ups:size() do
      x = self.ups:get(i)(x)
      x = self.decs:get(i)(nn.cat({ skips[#skips + 1 - i], x }, 2))
    end
    return self.head(x)
  end

  return UNet()
end
