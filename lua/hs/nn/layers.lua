-- lua/hs/nn/layers.lua: the standard layers, containers and losses, with PyTorch's names,
-- constructor arguments, default initialisation and state_dict names. Each forward(x) works on
-- graph nodes (see hs/nn/init.lua); the math is in the C core.
local hs = require "histops"

return function(nn)
  local class, Module = nn.class, nn.Module

  local function pair(v, name)
    if type(v) == "table" then return { v[1], v[2] or v[1] } end
    if math.type(v) ~= "integer" then error(("%s: integer or pair expected, got %s"):format(name, tostring(v)), 3) end
    return { v, v }
  end
  local function bias_uniform(t, fan_in)
    local bound = fan_in > 0 and 1 / math.sqrt(fan_in) or 0
    return nn.init.uniform_(t, -bound, bound)
  end

  -- ------------------------------------------------------------ containers
  local Sequential = class(Module)
  Sequential.__name = "Sequential"
  nn.Sequential = Sequential
  function Sequential:__init(...)
    Module.__init(self)
    local mods = { ... }
    if #mods == 1 and type(mods[1]) == "table" and getmetatable(mods[1]) == nil then mods = mods[1] end
    for i, m in ipairs(mods) do self:add_module(tostring(i - 1), m) end
  end
  function Sequential:add(m) return self:add_module(tostring(#self._children), m) end
  function Sequential:get(i) return self[tostring(i - 1)] end
  function Sequential:size() return #self._children end
  function Sequential:forward(x)
    for i, name in ipairs(self._children) do
      local m = self[name]
      local ok, y = pcall(m.forward, m, x)
      if not ok then
        error(("in module %d (%s) of Sequential: %s"):format(i, m.__name or "?", tostring(y)), 0)
      end
      x = y
    end
    return x
  end

  local ModuleList = class(Module)
  ModuleList.__name = "ModuleList"
  nn.ModuleList = ModuleList
  function ModuleList:__init(list)
    Module.__init(self)
    for i, m in ipairs(list or {}) do self:add_module(tostring(i - 1), m) end
  end
  function ModuleList:append(m) return self:add_module(tostring(#self._children), m) end
  function ModuleList:get(i) return self[tostring(i - 1)] end
  function ModuleList:size() return #self._children end

  -- ------------------------------------------------------------ layers with parameters
  local Linear = class(Module)
  Linear.__name = "Linear"
  nn.Linear = Linear
  function Linear:__init(in_features, out_features, bias)
    Module.__init(self)
    self.in_features, self.out_features = in_features, out_features
    self:register_parameter("weight", nn.Parameter(hs.zeros({ out_features, in_features })))
    nn.init.kaiming_uniform_(self.weight.data, math.sqrt(5))
    if bias ~= false then
      self:register_parameter("bias", nn.Parameter(hs.zeros({ out_features })))
      bias_uniform(self.bias.data, in_features)
    end
  end
  function Linear:forward(x)
    return x:op("linear", { self.weight, self.bias })
  end

  local Conv2d = class(Module)
  Conv2d.__name = "Conv2d"
  nn.Conv2d = Conv2d
  -- nn.Conv2d(in, out, kernel_size, {stride=1, padding=0, dilation=1, groups=1, bias=true})
  function Conv2d:__init(cin, cout, k, opts)
    Module.__init(self)
    opts = opts or {}
    local ks = pair(k, "Conv2d kernel_size")
    self.groups = opts.groups or 1
    if cin % self.groups ~= 0 or cout % self.groups ~= 0 then
      error(("Conv2d: in_channels %d and out_channels %d must be divisible by groups %d"):format(cin, cout, self.groups), 2)
    end
    self.stride = pair(opts.stride or 1, "stride")
    self.padding = pair(opts.padding or 0, "padding")
    self.dilation = pair(opts.dilation or 1, "dilation")
    self:register_parameter("weight", nn.Parameter(hs.zeros({ cout, cin // self.groups, ks[1], ks[2] })))
    nn.init.kaiming_uniform_(self.weight.data, math.sqrt(5))
    if opts.bias ~= false then
      self:register_parameter("bias", nn.Parameter(hs.zeros({ cout })))
      bias_uniform(self.bias.data, cin // self.groups * ks[1] * ks[2])
    end
  end
  function Conv2d:forward(x)
    return x:op("conv2d", { self.weight, self.bias },
      { stride = self.stride, padding = self.padding, dilation = self.dilation, groups = self.groups })
  end

  local ConvTranspose2d = class(Module)
  ConvTranspose2d.__name = "ConvTranspose2d"
  nn.ConvTranspose2d = ConvTranspose2d
  function ConvTranspose2d:__init(cin, cout, k, opts)
    Module.__init(self)
    opts = opts or {}
    local ks = pair(k, "ConvTranspose2d kernel_size")
    self.groups = opts.groups or 1
    self.stride = pair(opts.stride or 1, "stride")
    self.padding = pair(opts.padding or 0, "padding")
    self.output_padding = pair(opts.output_padding or 0, "output_padding")
    self.dilation = pair(opts.dilation or 1, "dilation")
    self:register_parameter("weight", nn.Parameter(hs.zeros({ cin, cout // self.groups, ks[1], ks[2] })))
    nn.init.kaiming_uniform_(self.weight.data, math.sqrt(5))
    if opts.bias ~= false then
      self:register_parameter("bias", nn.Parameter(hs.zeros({ cout })))
      bias_uniform(self.bias.data, cout // self.groups * ks[1] * ks[2])
    end
  end
  function ConvTranspose2d:forward(x)
    return x:op("conv_transpose2d", { self.weight, self.bias },
      { stride = self.stride, padding = self.padding, output_padding = self.output_padding,
        dilation = self.dilation, groups = self.groups })
  end

  local BatchNorm2d = class(Module)
  BatchNorm2d.__name = "BatchNorm2d"
  nn.BatchNorm2d = BatchNorm2d
  function BatchNorm2d:__init(c, opts)
    Module.__init(self)
    opts = opts or {}
    self.num_features, self.eps, self.momentum = c, opts.eps or 1e-5, opts.momentum or 0.1
    self:register_parameter("weight", nn.Parameter(hs.ones({ c })))
    self:register_parameter("bias", nn.Parameter(hs.zeros({ c })))
    self:register_buffer("running_mean", hs.zeros({ c }))
    self:register_buffer("running_var", hs.ones({ c }))
    self:register_buffer("num_batches_tracked", hs.zeros({}, "i64"))
  end
  function BatchNorm2d:forward(x)
    local s = x:shape()
    local y = x
    if #s == 2 then y = x:reshape({ s[1], s[2], 1, 1 }) end   -- BatchNorm1d on (N, C)
    y = y:op("batchnorm2d", { self.weight, self.bias, self.running_mean, self.running_var },
      { momentum = self.momentum, eps = self.eps })
    if #s == 2 then y = y:reshape(s) end
    return y
  end
  nn.BatchNorm1d = BatchNorm2d

  -- ------------------------------------------------------------ parameter-free layers
  local function simple(name, op, attrs_of)
    local C = class(Module)
    C.__name = name
    function C:__init(...)
      Module.__init(self)
      self.attrs = attrs_of and attrs_of(...) or nil
    end
    function C:forward(x) return x:op(op, nil, self.attrs) end
    nn[name] = C
    return C
  end
  simple("ReLU", "relu")
  simple("Sigmoid", "sigmoid")
  simple("Tanh", "tanh")
  simple("GELU", "gelu")
  simple("SiLU", "silu")
  simple("LeakyReLU", "leaky_relu", function(slope) return { negative_slope = slope or 0.01 } end)
  simple("Softmax", "softmax", function(dim) return { dim = dim or 2 } end)
  simple("LogSoftmax", "log_softmax", function(dim) return { dim = dim or 2 } end)
  simple("Flatten", "flatten", function(start_dim) return { start_dim = start_dim or 2 } end)
  local function pool_attrs(k, opts)
    opts = opts or {}
    return { kernel_size = pair(k, "kernel_size"), stride = pair(opts.stride or k, "stride"),
      padding = pair(opts.padding or 0, "padding"), ceil_mode = opts.ceil_mode or false,
      count_include_pad = opts.count_include_pad ~= false }
  end
  simple("MaxPool2d", "maxpool2d", pool_attrs)
  simple("AvgPool2d", "avgpool2d", pool_attrs)
  local Upsample = simple("Upsample", "upsample_nearest", function(opts)
    opts = opts or {}
    return { scale_factor = pair(opts.scale_factor or 2, "scale_factor"), mode = opts.mode or "nearest" }
  end)
  function Upsample:forward(x)
    local op = self.attrs.mode == "bilinear" and "upsample_bilinear" or "upsample_nearest"
    return x:op(op, nil, { scale_factor = self.attrs.scale_factor })
  end

  local Identity = class(Module)
  Identity.__name = "Identity"
  nn.Identity = Identity
  function Identity:forward(x) return x end

  -- AdaptiveAvgPool2d(1): global average pooling keeping (N, C, 1, 1) like PyTorch
  local AdaptiveAvgPool2d = class(Module)
  AdaptiveAvgPool2d.__name = "AdaptiveAvgPool2d"
  nn.AdaptiveAvgPool2d = AdaptiveAvgPool2d
  function AdaptiveAvgPool2d:__init(size)
    Module.__init(self)
    if size ~= 1 and not (type(size) == "table" and size[1] == 1 and size[2] == 1) then
      error("AdaptiveAvgPool2d: only output size 1 is supported", 2)
    end
  end
  function AdaptiveAvgPool2d:forward(x)
    local s = x:shape()
    return x:op("global_avgpool"):reshape({ s[1], s[2], 1, 1 })
  end

  local Dropout = class(Module)
  Dropout.__name = "Dropout"
  nn.Dropout = Dropout
  function Dropout:__init(p, seed)
    Module.__init(self)
    self.p = p or 0.5
    if self.p < 0 or self.p >= 1 then error("Dropout: p must be in [0, 1), got " .. tostring(self.p), 2) end
    -- default seed from the nn.manual_seed stream: the same model code gives the same masks
    self.seed = seed or nn._next_seed()
  end
  function Dropout:forward(x)
    if not self.training or self.p == 0 then return x end
    return x:op("dropout", nil, { p = self.p, seed = self.seed })
  end

  -- ------------------------------------------------------------ losses: forward(output, target)
  local CrossEntropyLoss = class(Module)
  CrossEntropyLoss.__name = "CrossEntropyLoss"
  nn.CrossEntropyLoss = CrossEntropyLoss
  function CrossEntropyLoss:__init(opts)
    Module.__init(self)
    opts = opts or {}
    self.weight = opts.weight
    self.label_smoothing = opts.label_smoothing or 0
  end
  function CrossEntropyLoss:forward(logits, target)
    return logits:op("cross_entropy", { target }, { weight = self.weight, label_smoothing = self.label_smoothing })
  end

  local MSELoss = class(Module)
  MSELoss.__name = "MSELoss"
  nn.MSELoss = MSELoss
  function MSELoss:forward(x, target) return x:op("mse", { target }) end

  local BCEWithLogitsLoss = class(Module)
  BCEWithLogitsLoss.__name = "BCEWithLogitsLoss"
  nn.BCEWithLogitsLoss = BCEWithLogitsLoss
  function BCEWithLogitsLoss:__init(opts)
    Module.__init(self)
    self.pos_weight = (opts or {}).pos_weight
  end
  function BCEWithLogitsLoss:forward(x, target)
    return x:op("bce_with_logits", { target }, { pos_weight = self.pos_weight })
  end

  local DiceLoss = class(Module)
  DiceLoss.__name = "DiceLoss"
  nn.DiceLoss = DiceLoss
  function DiceLoss:__init(opts)
    Module.__init(self)
    self.smooth = (opts or {}).smooth or 1.0
  end
  function DiceLoss:forward(x, target) return x:op("dice_loss", { target }, { smooth = self.smooth }) end

  -- weighted sum of losses, e.g. nn.SumLoss{ {nn.BCEWithLogitsLoss(), 1}, {nn.DiceLoss(), 1} }
  local SumLoss = class(Module)
  SumLoss.__name = "SumLoss"
  nn.SumLoss = SumLoss
  function SumLoss:__init(terms)
    Module.__init(self)
    self.terms = terms
  end
  function SumLoss:forward(x, target)
    local total
    for _, t in ipairs(self.terms) do
      local l = t[1]:forward(x, target)
      if t[2] and t[2] ~= 1 then l = l * t[2] end
      total = total and (total + l) or l
    end
    return total
  end
end
