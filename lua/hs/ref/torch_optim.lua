-- lua/hs/ref/torch_optim.lua: reference handler for the optimizer cases (op "optimizer",
-- optim_*.safetensors). It replays PyTorch's trajectory with hs.optim's low-level steps on
-- loss = sum(w*R) + 0.5*sum(w*w) (gradient R + w) and compares the parameters after every step
-- with w_after[step]. The only arithmetic here is that gradient; the update is core/optim.c.
local tensor = require "hs.tensor"
local optim = require "hs.optim"

local function flag(v) return v == true end   -- JSON true; false, null or absent -> false

local num = require("hs.ref.lib.case").num

-- "sgd" | "adam" and, for Adam, whether the decay is decoupled (AdamW), from the case name
-- (sgd_*, adam*, adamw*) or, failing that, from the hyper-parameters torch recorded.
local function kind_of(name, h)
  name = tostring(name or ""):lower()
  if name:match("^adamw") then return "adam", true end
  if name:match("^adam") then return "adam", false end
  if name:match("^sgd") then return "sgd", false end
  if h.betas == nil and h.momentum ~= nil then return "sgd", false end
  return nil
end

local function optimizer(case)
  local p, t = case.params or {}, case.t
  local h = p.hyper or {}
  local kind, decoupled = kind_of(p.name, h)
  if not kind then return nil, ("optimizer '%s' is not one of sgd*, adam*, adamw*"):format(tostring(p.name)) end
  if flag(h.amsgrad) then return nil, "amsgrad is not implemented" end
  local w0, R, after = t.w0, t.R, t.w_after
  if not (w0 and R and after) then error("optimizer case needs tensors w0, R and w_after", 0) end
  local n = w0:numel()
  if R:numel() ~= n then error(("R has %d elements, w0 has %d"):format(R:numel(), n), 0) end
  local steps = after:dim() > 0 and after:shape(1) or 0
  if steps == 0 or after:numel() ~= steps * n then
    error(("w_after has %d elements, expected (steps, %d)"):format(after:numel(), n), 0)
  end

  local opts, sign
  if kind == "sgd" then
    if type(h.lr) ~= "number" then return nil, "SGD case without a learning rate" end
    opts = { lr = h.lr, momentum = num(h.momentum, 0), dampening = num(h.dampening, 0),
      weight_decay = num(h.weight_decay, 0), nesterov = flag(h.nesterov) }
  else
    local b = type(h.betas) == "table" and h.betas or {}
    opts = { lr = num(h.lr, 1e-3), betas = { num(b[1], 0.9), num(b[2], 0.999) }, eps = num(h.eps, 1e-8),
      weight_decay = num(h.weight_decay, decoupled and 1e-2 or 0), decoupled = decoupled }
  end
  sign = flag(h.maximize) and -1 or 1   -- torch negates the gradient when maximising

  -- flat F32 slabs, as a model keeps them
  local w = tensor(w0:tolist())
  local Rl = R:tolist()
  local s1, s2 = tensor.zeros(n), tensor.zeros(n)
  local list = {}
  for s = 1, steps do
    local wl, gl = w:tolist(), {}
    for i = 1, n do gl[i] = sign * (Rl[i] + wl[i]) end
    local g = tensor(gl)
    if kind == "sgd" then
      optim.sgd_step(w, g, s1, opts, s)
    else
      optim.adam_step(w, g, s1, s2, opts, s)
    end
    list[#list + 1] = { name = ("w_after[%d]"):format(s), got = w:clone(), want = after:select(1, s), tol = "grad" }
  end
  return list
end

return { optimizer = optimizer }
