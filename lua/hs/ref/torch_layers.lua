-- lua/hs/ref/torch_layers.lua: reference handlers for the PyTorch layer and loss cases
-- (torch/*.safetensors made by make_torch_refs.py). Each handler builds a one-op hs.graph, feeds
-- the case's inputs, runs forward, then backward with the case's dout (loss cases: upstream 1),
-- and returns the output and every gradient d<name> the case stores for comparison. No math here:
-- everything is computed by the graph and its kernels.
local hs = require "histops"
local graph = require "hs.graph"

local num = require("hs.ref.lib.case").num

-- Torch dims are 0-based; hs.graph dims are 1-based (negative dims mean the same in both).
local function lua_dim(d)
  d = num(d, 0)
  return d >= 0 and d + 1 or d
end

-- spec = { op =, leaves = { {name, role}, ... }, attrs =, training =, extra = function(g, nodes, bufs) }
-- roles: "x" differentiable input, "w" parameter (gradient compared), "t" plain input (targets),
-- "buf" buffer (a copy of the case tensor: training updates it in place).
local function run(case, spec)
  local t = case.t
  local g = graph.new()
  local ids, grads, bufs = {}, {}, {}
  for _, leaf in ipairs(spec.leaves) do
    local name, role = leaf[1], leaf[2]
    local v = t[name]
    if v == nil then return nil, ("case has no tensor '%s'"):format(name) end
    if role == "x" then
      ids[name] = g:input(v:shape(), v:dtype(), { requires_grad = true })
    elseif role == "t" then
      ids[name] = g:input(v:shape(), v:dtype())
    elseif role == "w" then
      local gr = hs.zeros(v:shape())
      ids[name] = g:param(v:clone(), gr)
      grads[name] = gr
    elseif role == "buf" then
      bufs[name] = v:clone()
      ids[name] = g:buffer(bufs[name])
    else
      error("unknown leaf role " .. tostring(role))
    end
  end
  local inputs = {}
  for i, leaf in ipairs(spec.leaves) do inputs[i] = ids[leaf[1]] end
  local out = g:op(spec.op, inputs, spec.attrs)
  g:compile { loss = out, outputs = { out }, training = spec.training or false }
  for _, leaf in ipairs(spec.leaves) do
    if leaf[2] == "x" or leaf[2] == "t" then g:set(ids[leaf[1]], t[leaf[1]]) end
  end
  g:forward()
  local cmp = { { name = "out", got = g:value(out):clone(), want = t.out, tol = "forward" } }
  if spec.extra then spec.extra(cmp, bufs) end
  g:backward(t.dout)
  for _, leaf in ipairs(spec.leaves) do
    local name, role = leaf[1], leaf[2]
    local want = t["d" .. name]
    if want and role == "x" then
      cmp[#cmp + 1] = { name = "d" .. name, got = g:grad(ids[name]):clone(), want = want, tol = "grad" }
    elseif want and role == "w" then
      cmp[#cmp + 1] = { name = "d" .. name, got = grads[name], want = want, tol = "grad" }
    end
  end
  return cmp
end

local function pair(p, key, default)
  local v = p[key]
  if type(v) == "table" then return { num(v[1], default), num(v[2], default) } end
  return num(v, default)
end

local H = {}

function H.conv2d(case)
  local p = case.params
  return run(case, {
    op = "conv2d", leaves = { { "x", "x" }, { "weight", "w" }, { "bias", "w" } },
    attrs = { stride = pair(p, "stride", 1), padding = pair(p, "padding", 0), dilation = pair(p, "dilation", 1),
              groups = num(p.groups, 1) },
  })
end

function H.conv_transpose2d(case)
  local p = case.params
  return run(case, {
    op = "conv_transpose2d", leaves = { { "x", "x" }, { "weight", "w" }, { "bias", "w" } },
    attrs = { stride = pair(p, "stride", 1), padding = pair(p, "padding", 0), dilation = pair(p, "dilation", 1),
              output_padding = pair(p, "output_padding", 0), groups = num(p.groups, 1) },
  })
end

local function pool(op)
  return function(case)
    local p = case.params
    local k = pair(p, "kernel", nil) or pair(p, "kernel_size", nil)
    if k == nil then return nil, "case has no kernel size" end
    local attrs = { kernel_size = k, stride = pair(p, "stride", nil) or k, padding = pair(p, "padding", 0),
                    ceil_mode = p.ceil_mode == true }
    if op == "avgpool2d" then attrs.count_include_pad = p.count_include_pad ~= false end
    return run(case, { op = op, leaves = { { "x", "x" } }, attrs = attrs })
  end
end
H.maxpool2d = pool("maxpool2d")
H.avgpool2d = pool("avgpool2d")

function H.global_avgpool(case)
  return run(case, { op = "global_avgpool", leaves = { { "x", "x" } } })
end

function H.batchnorm2d(case)
  local p, t = case.params, case.t
  local attrs = { momentum = num(p.momentum, 0.1), eps = num(p.eps, 1e-5) }
  if p.training == true then
    return run(case, {
      op = "batchnorm2d", training = true, attrs = attrs,
      leaves = { { "x", "x" }, { "weight", "w" }, { "bias", "w" }, { "running_mean_in", "buf" }, { "running_var_in", "buf" } },
      extra = function(cmp, bufs)
        if t.running_mean_out then
          cmp[#cmp + 1] = { name = "running_mean_out", got = bufs.running_mean_in, want = t.running_mean_out, tol = "forward" }
        end
        if t.running_var_out then
          cmp[#cmp + 1] = { name = "running_var_out", got = bufs.running_var_in, want = t.running_var_out, tol = "forward" }
        end
      end,
    })
  end
  return run(case, {
    op = "batchnorm2d", training = false, attrs = attrs,
    leaves = { { "x", "x" }, { "weight", "w" }, { "bias", "w" }, { "running_mean", "buf" }, { "running_var", "buf" } },
  })
end

function H.linear(case)
  local leaves = { { "x", "x" }, { "weight", "w" } }
  if case.t.bias then leaves[3] = { "bias", "w" } end
  return run(case, { op = "linear", leaves = leaves })
end

local function unary(op, attrs_of)
  return function(case)
    return run(case, { op = op, leaves = { { "x", "x" } }, attrs = attrs_of and attrs_of(case.params or {}) })
  end
end
H.relu = unary("relu")
H.leaky_relu = unary("leaky_relu", function(p) return { negative_slope = num(p.negative_slope, 0.01) } end)
H.sigmoid = unary("sigmoid")
H.tanh = unary("tanh")
H.gelu = unary("gelu")
H.silu = unary("silu")
H.softmax = unary("softmax", function(p) return { dim = lua_dim(p.dim or 1) } end)
H.log_softmax = unary("log_softmax", function(p) return { dim = lua_dim(p.dim or 1) } end)
H.softmax_dim1 = unary("softmax", function() return { dim = 2 } end)
H.log_softmax_dim1 = unary("log_softmax", function() return { dim = 2 } end)

local function upsample(op)
  return function(case)
    local p = case.params
    if p.align_corners == true then return nil, "align_corners=True is not supported" end
    local s = pair(p, "scale", nil) or pair(p, "scale_factor", nil)
    if s == nil then return nil, "case has no scale" end
    return run(case, { op = op, leaves = { { "x", "x" } }, attrs = { scale_factor = s } })
  end
end
H.upsample_nearest = upsample("upsample_nearest")
H.upsample_bilinear = upsample("upsample_bilinear")

function H.concat(case)
  -- inputs are the case's tensors that have a gradient d<name>, in name order (a, b, ...)
  local names = {}
  for k in pairs(case.t) do
    if case.t["d" .. k] and k ~= "out" then names[#names + 1] = k end
  end
  table.sort(names)
  local leaves = {}
  for i, n in ipairs(names) do leaves[i] = { n, "x" } end
  return run(case, { op = "concat", leaves = leaves, attrs = { dim = lua_dim(case.params.dim) } })
end

function H.cross_entropy(case)
  local p, t = case.params, case.t
  local attrs = { label_smoothing = num(p.label_smoothing, 0) }
  if p.weighted == true or (p.weighted == nil and t.class_weight) then
    if not t.class_weight then return nil, "weighted case without class_weight" end
    attrs.weight = t.class_weight
  end
  return run(case, { op = "cross_entropy", leaves = { { "logits", "x" }, { "target", "t" } }, attrs = attrs })
end

function H.bce_with_logits(case)
  local p = case.params
  return run(case, { op = "bce_with_logits", leaves = { { "logits", "x" }, { "target", "t" } },
                     attrs = { pos_weight = num(p.pos_weight, 1) } })
end

function H.dice_loss(case)
  local p = case.params
  return run(case, { op = "dice_loss", leaves = { { "logits", "x" }, { "target", "t" } },
                     attrs = { smooth = num(p.smooth, 1) } })
end

function H.mse(case)
  return run(case, { op = "mse", leaves = { { "x", "x" }, { "target", "t" } } })
end

return H
