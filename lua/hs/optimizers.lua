-- lua/hs/optimizers.lua: torch.optim-style optimizers and learning-rate schedules over a
-- model's flat parameter slab (one C call per step, see core/optim.h); merged into hs.optim.
--   local opt = hs.optim.SGD(model, {lr = 0.1, momentum = 0.9, weight_decay = 1e-4})
--   model:zero_grad(); compiled:step(x, y); opt:step()
local hs = require "histops"
local C = require "hs.optim"

local M = {}

local function slab_of(model)
  if type(model) == "table" and model.flatten_parameters then return model:flatten_parameters() end
  error("optimizer: expected a model (nn.Module)", 3)
end

local Optimizer = {}
Optimizer.__index = Optimizer
function Optimizer:zero_grad() self.slab.grad:fill(0) end
function Optimizer:set_lr(lr) self.hyper.lr = lr end
function Optimizer:get_lr() return self.hyper.lr end
-- clip the global gradient norm before stepping (returns the norm before clipping)
function Optimizer:clip_grad_norm(max_norm) return C.clip_grad_norm(self.slab.grad, max_norm) end
function Optimizer:state_dict()
  local s = { step = self.t, hyper = self.hyper, kind = self.kind }
  local bufs = {}
  for k, v in pairs(self.state) do bufs[k] = v end
  return s, bufs
end
function Optimizer:load_state_dict(s, bufs)
  self.t = s.step
  for k, v in pairs(bufs or {}) do self.state[k]:copy(v) end
end

local function new(kind, model, hyper, names)
  local slab = slab_of(model)
  local o = setmetatable({ kind = kind, slab = slab, hyper = hyper, t = 0, state = {} }, Optimizer)
  for _, n in ipairs(names) do o.state[n] = hs.zeros(slab.grad:shape()) end
  return o
end

function M.SGD(model, opts)
  opts = opts or {}
  local h = { lr = assert(opts.lr, "SGD: lr is required"), momentum = opts.momentum or 0,
    dampening = opts.dampening or 0, weight_decay = opts.weight_decay or 0, nesterov = opts.nesterov or false }
  local o = new("sgd", model, h, { "momentum_buffer" })
  function o.step(self)
    self.t = self.t + 1
    C.sgd_step(self.slab.data, self.slab.grad, self.state.momentum_buffer, self.hyper, self.t)
  end
  return o
end

local function adam(kind, decoupled, default_wd)
  return function(model, opts)
    opts = opts or {}
    local h = { lr = opts.lr or 1e-3, betas = opts.betas or { 0.9, 0.999 }, eps = opts.eps or 1e-8,
      weight_decay = opts.weight_decay or default_wd, decoupled = decoupled }
    local o = new(kind, model, h, { "exp_avg", "exp_avg_sq" })
    function o.step(self)
      self.t = self.t + 1
      C.adam_step(self.slab.data, self.slab.grad, self.state.exp_avg, self.state.exp_avg_sq, self.hyper, self.t)
    end
    return o
  end
end
M.Adam = adam("adam", false, 0)
M.AdamW = adam("adamw", true, 1e-2)

-- ---------------------------------------------------------------- schedules
-- Each schedule is a function(epoch_or_step) -> lr multiplier; M.scheduler applies it.
M.lr = {}
function M.lr.step(step_size, gamma)
  return function(t) return (gamma or 0.1) ^ (t // step_size) end
end
function M.lr.cosine(t_max, eta_min_ratio)
  local m = eta_min_ratio or 0
  return function(t) return m + (1 - m) * (1 + math.cos(math.pi * math.min(t, t_max) / t_max)) / 2 end
end
function M.lr.warmup(warmup, inner)
  return function(t)
    local f = inner and inner(t) or 1
    if t < warmup then return f * (t + 1) / warmup end
    return f
  end
end
function M.scheduler(opt, fn)
  local base = opt:get_lr()
  return { t = 0, step = function(self) self.t = self.t + 1; opt:set_lr(base * fn(self.t)) end,
    apply = function(_, t) opt:set_lr(base * fn(t)) end }
end

return M
