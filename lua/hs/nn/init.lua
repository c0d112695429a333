-- lua/hs/nn/init.lua: PyTorch-style neural-network modules on top of the hs.graph engine.
--
-- A module's forward(x) is written once, PyTorch style, and works on symbolic nodes: calling a
-- module on a node (`self.conv1(x)`) adds its ops to the graph being built; calling it on a
-- tensor compiles (and caches) an inference graph for that input shape and runs it. Training
-- compiles forward, loss and backward into one planned graph (nn.compile). Parameters live in
-- one flat slab per model (values, gradients), so zero_grad is one fill and an optimizer step
-- is one flat loop. This file is the module protocol; layers are in hs/nn/layers.lua.
local hs = require "histops"
local graph = require "hs.graph"

local nn = {}

-- ---------------------------------------------------------------- classes
local function class(parent)
  local c = {}
  c.__index = c
  c.__call = function(self, ...) return self:__call_impl(...) end
  if parent then setmetatable(c, { __index = parent }) end
  c.new = function(...)
    local o = setmetatable({}, c)
    o:__init(...)
    return o
  end
  -- nn.Linear(4, 3) and nn.Linear.new(4, 3) both construct
  return setmetatable(c, { __index = parent, __call = function(_, ...) return c.new(...) end })
end
nn.class = class

-- ---------------------------------------------------------------- random init state
-- Every initialiser draws from a counter-based stream keyed by (seed, draw number): the same
-- seed gives the same weights, whatever the thread count.
local init_seed, init_draw = 0, 0
function nn.manual_seed(seed)
  init_seed = math.tointeger(seed) or error("manual_seed: integer expected", 2)
  init_draw = 0
end
local function next_seed()
  init_draw = init_draw + 1
  return init_seed * 1000003 + init_draw
end
nn._next_seed = function() return next_seed() end
nn.init = {}
function nn.init.uniform_(t, lo, hi)
  t:copy(hs.rand(t:shape(), { seed = next_seed(), lo = lo, hi = hi }))
  return t
end
function nn.init.normal_(t, mean, std)
  t:copy(hs.randn(t:shape(), { seed = next_seed(), mean = mean or 0, std = std or 1 }))
  return t
end
local function fans(t)
  local s = t:shape()
  local rf = 1
  for i = 3, #s do rf = rf * s[i] end
  local fan_in = (s[2] or s[1]) * rf
  local fan_out = s[1] * rf
  return fan_in, fan_out
end
nn.init.fans = fans
local function gain(nonlinearity, a)
  if nonlinearity == "relu" then return math.sqrt(2) end
  if nonlinearity == "leaky_relu" then return math.sqrt(2 / (1 + (a or 0.01) ^ 2)) end
  if nonlinearity == "tanh" then return 5 / 3 end
  return 1
end
function nn.init.kaiming_uniform_(t, a, mode, nonlinearity)
  local fan_in, fan_out = fans(t)
  local fan = (mode == "fan_out") and fan_out or fan_in
  local bound = gain(nonlinearity or "leaky_relu", a or 0) * math.sqrt(3 / fan)
  return nn.init.uniform_(t, -bound, bound)
end
function nn.init.kaiming_normal_(t, a, mode, nonlinearity)
  local fan_in, fan_out = fans(t)
  local fan = (mode == "fan_out") and fan_out or fan_in
  return nn.init.normal_(t, 0, gain(nonlinearity or "leaky_relu", a or 0) / math.sqrt(fan))
end
function nn.init.xavier_uniform_(t, g)
  local fan_in, fan_out = fans(t)
  local bound = (g or 1) * math.sqrt(6 / (fan_in + fan_out))
  return nn.init.uniform_(t, -bound, bound)
end
function nn.init.xavier_normal_(t, g)
  local fan_in, fan_out = fans(t)
  return nn.init.normal_(t, 0, (g or 1) * math.sqrt(2 / (fan_in + fan_out)))
end
function nn.init.zeros_(t) t:fill(0) return t end
function nn.init.ones_(t) t:fill(1) return t end

-- ---------------------------------------------------------------- parameters
local Parameter = {}
Parameter.__index = Parameter
function nn.Parameter(t, requires_grad)
  local p = setmetatable({ data = t, requires_grad = requires_grad ~= false }, Parameter)
  if p.requires_grad then p.grad = hs.zeros(t:shape()) end
  return p
end
function nn.is_parameter(p) return getmetatable(p) == Parameter end
function Parameter:shape() return self.data:shape() end
function Parameter:numel() return self.data:numel() end

-- ---------------------------------------------------------------- symbolic nodes
-- A Node is a value in a graph being built; ops on nodes add graph ops.
local Node = {}
Node.__index = Node
nn.Node = Node
local function is_node(x) return getmetatable(x) == Node end
nn.is_node = is_node

local Ctx = {}
Ctx.__index = Ctx
local function new_ctx(training)
  return setmetatable({ g = graph.new(), training = training, pnodes = {}, bnodes = {} }, Ctx)
end
function Ctx:node(id) return setmetatable({ ctx = self, id = id }, Node) end
function Ctx:param(p)
  local id = self.pnodes[p]
  if not id then
    id = self.g:param(p.data, p.requires_grad and p.grad or nil)
    self.pnodes[p] = id
  end
  return id
end
function Ctx:buffer(t)
  local id = self.bnodes[t]
  if not id then
    id = self.g:buffer(t)
    self.bnodes[t] = id
  end
  return id
end
-- inputs may be nodes, parameters or plain tensors (registered as buffers)
function Ctx:ids(inputs)
  local ids = {}
  for i, v in ipairs(inputs) do
    if is_node(v) then
      assert(v.ctx == self, "node belongs to another graph")
      ids[i] = v.id
    elseif nn.is_parameter(v) then
      ids[i] = self:param(v)
    elseif hs.tensor.is_tensor(v) then
      ids[i] = self:buffer(v)
    else
      error(("graph input %d is a %s, expected a node, parameter or tensor"):format(i, type(v)), 3)
    end
  end
  return ids
end

function Node:shape(d)
  local s = self.ctx.g:shape(self.id)
  if d then return s[d < 0 and #s + 1 + d or d] end
  return s
end
function Node:dim() return #self:shape() end
-- x:op("relu"), x:op("linear", {w, b}), x:op("conv2d", {w, b}, {stride = 2})
function Node:op(name, extra, attrs)
  local inputs = { self }
  for _, v in ipairs(extra or {}) do inputs[#inputs + 1] = v end
  local ctx = self.ctx
  return ctx:node(ctx.g:op(name, ctx:ids(inputs), attrs))
end
local function binop(name, scalar_name)
  return function(a, b)
    if type(a) == "number" then a, b = b, a
      if name == "sub" then return (-a):op("add_scalar", nil, { value = b }) end
      if name == "div" then error("number / node is not supported", 2) end
    end
    if type(b) == "number" then
      if name == "sub" then return a:op("add_scalar", nil, { value = -b }) end
      if name == "div" then return a:op("mul_scalar", nil, { value = 1 / b }) end
      return a:op(scalar_name, nil, { value = b })
    end
    return a:op(name, { b })
  end
end
Node.__add = binop("add", "add_scalar")
Node.__sub = binop("sub")
Node.__mul = binop("mul", "mul_scalar")
Node.__div = binop("div")
Node.__unm = function(a) return a:op("mul_scalar", nil, { value = -1 }) end
for _, name in ipairs { "relu", "sigmoid", "tanh", "gelu", "silu" } do
  Node[name] = function(self) return self:op(name) end
end
function Node:softmax(dim) return self:op("softmax", nil, { dim = dim }) end
function Node:log_softmax(dim) return self:op("log_softmax", nil, { dim = dim }) end
function Node:reshape(shape) return self:op("reshape", nil, { shape = shape }) end
function Node:view(shape) return self:reshape(shape) end
function Node:flatten(start_dim) return self:op("flatten", nil, { start_dim = start_dim or 2 }) end
function Node:sum(dim, keepdim) return self:op("sum", nil, { dim = dim, keepdim = keepdim }) end
function Node:mean(dim, keepdim) return self:op("mean", nil, { dim = dim, keepdim = keepdim }) end
function Node:matmul(b) return self:op("matmul", { b }) end

-- nn.cat({a, b}, dim): concatenate nodes (dims 1-based; 2 = channels of NCHW)
function nn.cat(list, dim)
  local first = list[1]
  assert(is_node(first), "nn.cat: expected a list of graph nodes")
  local rest = {}
  for i = 2, #list do rest[#rest + 1] = list[i] end
  return first:op("concat", rest, { dim = dim or 2 })
end

-- ---------------------------------------------------------------- Module
local Module = class()
nn.Module = Module
function Module:__init()
  rawset(self, "_params", {})    -- ordered names
  rawset(self, "_buffers", {})
  rawset(self, "_children", {})
  rawset(self, "training", true)
end
-- Assignments of parameters, buffers and child modules are recorded in order, as PyTorch does
-- with __setattr__: register them explicitly with these helpers.
function Module:register_parameter(name, p)
  if p ~= nil then self._params[#self._params + 1] = name end
  self[name] = p
  return p
end
function Module:register_buffer(name, t)
  self._buffers[#self._buffers + 1] = name
  self[name] = t
  return t
end
function Module:add_module(name, m)
  name = tostring(name)
  self._children[#self._children + 1] = name
  self[name] = m
  return m
end
function Module:children()
  local list = {}
  for _, n in ipairs(self._children) do list[#list + 1] = self[n] end
  return list
end
function Module:named_parameters(prefix, out)
  out = out or {}
  prefix = prefix or ""
  for _, n in ipairs(self._params) do
    if self[n] then out[#out + 1] = { prefix .. n, self[n] } end
  end
  for _, c in ipairs(self._children) do self[c]:named_parameters(prefix .. c .. ".", out) end
  return out
end
function Module:parameters()
  local list = {}
  for _, np in ipairs(self:named_parameters()) do list[#list + 1] = np[2] end
  return list
end
function Module:named_buffers(prefix, out)
  out = out or {}
  prefix = prefix or ""
  for _, n in ipairs(self._buffers) do
    if self[n] then out[#out + 1] = { prefix .. n, self[n] } end
  end
  for _, c in ipairs(self._children) do self[c]:named_buffers(prefix .. c .. ".", out) end
  return out
end
function Module:num_parameters()
  local n = 0
  for _, p in ipairs(self:parameters()) do n = n + p.data:numel() end
  return n
end
function Module:train(mode)
  if mode == nil then mode = true end
  self.training = mode
  for _, c in ipairs(self._children) do self[c]:train(mode) end
  return self
end
function Module:eval() return self:train(false) end

-- state_dict with PyTorch's names ("features.0.weight", "1.running_mean", ...): values are the
-- live tensors (clone them to snapshot).
function Module:state_dict()
  local sd, order = {}, {}
  for _, np in ipairs(self:named_parameters()) do sd[np[1]] = np[2].data; order[#order + 1] = np[1] end
  for _, nb in ipairs(self:named_buffers()) do sd[nb[1]] = nb[2]; order[#order + 1] = nb[1] end
  return sd, order
end
function Module:load_state_dict(sd, strict)
  if strict == nil then strict = true end
  local mine = self:state_dict()
  local missing, unexpected = {}, {}
  for name, t in pairs(mine) do
    local src = sd[name]
    if src == nil then
      missing[#missing + 1] = name
    else
      local a, b = table.concat(t:shape(), "x"), table.concat(src:shape(), "x")
      if a ~= b and t:numel() ~= src:numel() then
        error(("load_state_dict: size mismatch for %s: model has [%s], state has [%s]"):format(name, a, b), 2)
      end
      t:copy(src:reshape(t:shape()))
    end
  end
  for name in pairs(sd) do if mine[name] == nil then unexpected[#unexpected + 1] = name end end
  table.sort(missing)
  table.sort(unexpected)
  if strict and (#missing > 0 or #unexpected > 0) then
    error(("load_state_dict: missing keys {%s}, unexpected keys {%s}"):format(table.concat(missing, ", "),
      table.concat(unexpected, ", ")), 2)
  end
  return missing, unexpected
end

-- Move every parameter into two flat slabs (values, gradients); parameter tensors become views.
function Module:flatten_parameters()
  local params = self:parameters()
  local n, all_flat = 0, true
  for _, p in ipairs(params) do
    n = n + p.data:numel()
    if p.slab ~= self then all_flat = false end
  end
  if all_flat and self._slab then return self._slab end
  local data, grad = hs.zeros({ math.max(n, 1) }), hs.zeros({ math.max(n, 1) })
  local off = 1
  for _, p in ipairs(params) do
    local k, shape = p.data:numel(), p.data:shape()
    local dv = data:narrow(1, off, k):reshape(shape)
    dv:copy(p.data)
    p.data = dv
    p.grad = grad:narrow(1, off, k):reshape(shape)
    p.slab = self
    p.offset = off
    off = off + k
  end
  self._slab = { data = data:narrow(1, 1, math.max(n, 1)), grad = grad, numel = n }
  self._eval_graphs = nil
  return self._slab
end
function Module:zero_grad()
  local slab = self._slab or self:flatten_parameters()
  slab.grad:fill(0)
end

-- Calling a module: on a node, build; on a tensor, run an (cached) inference graph.
function Module:__call_impl(x, ...)
  if is_node(x) then return self:forward(x, ...) end
  if hs.tensor.is_tensor(x) then return self:predict(x) end
  error(("%s: expected a graph node or a tensor, got %s"):format(self.__name or "module", type(x)), 2)
end
function Module:forward(x)
  error((self.__name or "Module") .. ": forward not implemented", 2)
end
function Module:predict(x)
  self:flatten_parameters()
  self._eval_graphs = self._eval_graphs or {}
  local key = table.concat(x:shape(), "x")
  local cg = self._eval_graphs[key]
  if not cg then
    -- inference graphs are always compiled in eval mode (running BN stats, no dropout)
    cg = nn.compile(self, { input = x:shape(), training = false })
    self._eval_graphs[key] = cg
  end
  return cg:forward(x):clone()
end

-- ---------------------------------------------------------------- compiled graphs
local Compiled = {}
Compiled.__index = Compiled
-- nn.compile(model, {input = shape, target = shape, target_dtype = "i64"|"f32", loss = criterion,
--                    training = bool}) -> object with :forward(x), :step(x, y) (forward+backward,
-- returns the loss value), :output() (tensor view), :loss_value().
function nn.compile(model, opts)
  assert(type(opts) == "table" and opts.input, "nn.compile: opts.input (input shape) is required")
  model:flatten_parameters()
  local training = opts.training and true or false
  local was = model.training
  model:train(training)
  local ctx = new_ctx(training)
  local x = ctx:node(ctx.g:input(opts.input, opts.input_dtype or "f32"))
  local ok, out = pcall(model.forward, model, x)
  if not ok then model:train(was) error(out, 2) end
  if not is_node(out) then model:train(was) error("nn.compile: forward must return a graph node", 2) end
  local y, loss
  if opts.loss then
    y = ctx:node(ctx.g:input(opts.target, opts.target_dtype or "i64"))
    loss = opts.loss:forward(out, y)
  end
  ctx.g:compile { loss = loss and loss.id or nil, outputs = { out.id }, training = training }
  model:train(was)
  return setmetatable({ ctx = ctx, g = ctx.g, x = x, y = y, out = out, loss = loss, model = model, steps = 0 }, Compiled)
end
function Compiled:forward(x, y)
  self.g:set(self.x.id, x)
  if y and self.y then self.g:set(self.y.id, y) end
  self.g:forward()
  return self.g:value(self.out.id)
end
-- forward + backward; gradients are ADDED to the parameter grads (call model:zero_grad() first)
function Compiled:step(x, y)
  assert(self.loss, "step: graph was compiled without a loss")
  self.steps = self.steps + 1
  -- the step is the dropout stream; data-parallel ranks (hs/dist.lua sets dist_rank = {rank, size})
  -- take distinct streams steps*size + rank, so their shards' masks are not copies of each other
  local dr = self.dist_rank
  self.g:set_step(dr and self.steps * dr[2] + dr[1] or self.steps)
  self:forward(x, y)
  self.g:backward()
  return self.g:value(self.loss.id):item()
end
function Compiled:output() return self.g:value(self.out.id) end
function Compiled:loss_value() return self.g:value(self.loss.id):item() end
function Compiled:arena_bytes() return self.g:arena_bytes() end

nn.Module = Module
nn.new_ctx = new_ctx

-- layers, containers and losses
require("hs.nn.layers")(nn)
return nn
