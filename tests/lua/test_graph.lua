-- tests/lua/test_graph.lua: the hs.graph binding: building with 1-based node ids and dims,
-- attribute parsing (pairs, PyTorch names, class weights), compile/forward/backward, tensor views
-- of values and gradients, introspection, and the error messages of misuse.
-- Run: build/histops tests/lua/test_graph.lua
local hs = require "histops"
local graph = require "hs.graph"

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

local function near(a, b, tol) return math.abs(a - b) <= (tol or 1e-5) * (1 + math.abs(b)) end

-- ---- a tiny regression: y = x W^T + b, loss = mse(y, target) ----
do
  local g = graph.new()
  local x = g:input({ 4, 3 }, "f32", { requires_grad = true })
  assert(x == 1, "node ids are 1-based")
  local W, dW = hs.tensor({ { 1, 2, 3 }, { -1, 0, 1 } }), hs.zeros({ 2, 3 })
  local b, db = hs.tensor({ 0.5, -0.5 }), hs.zeros({ 2 })
  local w = g:param(W, dW)
  local bb = g:param(b, db)
  local y = g:op("linear", { x, w, bb })
  local t = g:input({ 4, 2 })
  local l = g:op("mse", { y, t })
  assert(#g:shape(y) == 2 and g:shape(y)[1] == 4 and g:shape(y)[2] == 2)
  assert(#g:shape(l) == 0, "losses are scalars")
  g:compile { loss = l, outputs = { y } }
  local xv = hs.tensor({ { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 }, { 1, 1, 1 } })
  local tv = hs.zeros({ 4, 2 })
  g:set(x, xv):set(t, tv)
  g:forward()
  local yv = g:value(y)
  local want = { { 1.5, -1.5 }, { 2.5, -0.5 }, { 3.5, 0.5 }, { 6.5, -0.5 } }
  for i = 1, 4 do
    for j = 1, 2 do assert(near(yv:get(i, j), want[i][j]), "linear forward") end
  end
  local loss = 0
  for i = 1, 4 do for j = 1, 2 do loss = loss + want[i][j] ^ 2 end end
  loss = loss / 8
  assert(near(g:value(l):item(), loss), "mse forward")
  g:backward()
  -- dL/dy = 2 y / 8; db = column sums; dW = dy^T x
  local dy = {}
  for i = 1, 4 do dy[i] = { want[i][1] / 4, want[i][2] / 4 } end
  assert(near(db:get(1), dy[1][1] + dy[2][1] + dy[3][1] + dy[4][1]), "bias gradient")
  assert(near(dW:get(1, 1), dy[1][1] + dy[4][1]), "weight gradient")
  local dx = g:grad(x)
  assert(near(dx:get(1, 1), dy[1][1] * 1 + dy[1][2] * -1), "input gradient")
  -- backward again after a forward accumulates into param grads (PyTorch semantics)
  local db1 = db:get(1)
  g:forward(); g:backward()
  assert(near(db:get(1), 2 * db1), "param grads accumulate")
  assert(g:arena_bytes() > 0 and g:naive_bytes() >= g:arena_bytes())
  assert(tostring(g):find("compiled"))
  local nodes = g:nodes()
  assert(#nodes == 6 and #g == 6)
  assert(nodes[1].kind == "input" and nodes[2].kind == "param" and nodes[5].kind == "input")
  assert(nodes[4].kind == "op" and nodes[4].op == "linear" and nodes[4].inputs[1] == 1 and nodes[4].inputs[3] == 3)
  assert(nodes[6].op == "mse" and nodes[6].needs_grad)
  assert(nodes[5].dtype == "f32" and not nodes[5].needs_grad)
end

-- ---- attributes: pairs or numbers, 1-based dims, class weights, dropout step ----
do
  local g = graph.new()
  local x = g:input({ 2, 3, 8, 8 })
  local w = g:param(hs.randn({ 4, 3, 3, 3 }, 1))           -- frozen (no grad tensor)
  local c = g:op("conv2d", { x, w }, { stride = { 2, 1 }, padding = 1 })
  local s = g:shape(c)
  assert(s[1] == 2 and s[2] == 4 and s[3] == 4 and s[4] == 8, "conv2d stride pair")
  local p = g:op("maxpool2d", { c }, { kernel_size = 2 })
  assert(g:shape(p)[3] == 2 and g:shape(p)[4] == 4, "pool stride defaults to kernel_size")
  local f = g:op("flatten", { p }, { start_dim = 2 })
  assert(#g:shape(f) == 2 and g:shape(f)[2] == 4 * 2 * 4, "flatten start_dim is 1-based")
  local sm = g:op("softmax", { c }, { dim = 2 })
  local sum = g:op("sum", { sm }, { dim = 2, keepdim = true })
  assert(g:shape(sum)[2] == 1 and #g:shape(sum) == 4)
  local r = g:op("reshape", { f }, { shape = { -1, 8 } })
  assert(g:shape(r)[1] == 8 and g:shape(r)[2] == 8)
  local cat = g:op("concat", { c, c }, { dim = -3 })
  assert(g:shape(cat)[2] == 8, "negative dims count from the end")
  local up = g:op("upsample_nearest", { x }, { scale_factor = { 2, 3 } })
  assert(g:shape(up)[3] == 16 and g:shape(up)[4] == 24)
  local d = g:op("dropout", { x }, { p = 0.5, seed = 3 })
  g:compile { outputs = { sum, d, up }, training = true }
  assert(g:arena_bytes() > 0)
  local xv = hs.ones({ 2, 3, 8, 8 })
  g:set(x, xv):set_step(1):forward()
  local sv = g:value(sum)
  assert(near(sv:get(1, 1, 1, 1), 1), "softmax over channels sums to 1")
  local d1 = g:value(d):clone()
  g:set_step(2):forward()
  local d2 = g:value(d)
  local zeros, differ = 0, false
  for i = 1, d1:numel() do
    local a, b = d1:tolist()[i], d2:tolist()[i]
    if a == 0 then zeros = zeros + 1 end
    if a ~= b then differ = true end
    assert(a == 0 or near(a, 2), "kept values are scaled by 1/(1-p)")
  end
  assert(zeros > 100 and zeros < 284, "about half dropped")
  assert(differ, "a new step draws a new mask")
  g:set_step(1):forward()
  assert(g:value(d):bytes() == d1:bytes(), "same step, same mask")
  -- an inference graph cannot backward; outputs stay readable
  check_error("without a loss", g.backward, g)
  check_error("grad", g.grad, g, w)
end

-- cross entropy with a class weight tensor and spatial targets
do
  local g = graph.new()
  local logits = g:input({ 2, 3, 2, 2 }, "f32", { requires_grad = true })
  local t = g:input({ 2, 2, 2 }, "i64")
  local l = g:op("cross_entropy", { logits, t }, { weight = hs.tensor({ 1, 2, 0.5 }), label_smoothing = 0 })
  assert(#g:nodes() == 4, "the weight became a buffer node")
  assert(g:nodes()[3].kind == "buffer")
  g:compile { loss = l }
  g:set(logits, hs.zeros({ 2, 3, 2, 2 }))
  g:set(t, hs.tensor({ { { 0, 1 }, { 2, 0 } }, { { 1, 1 }, { 2, 2 } } }, "i64"))
  g:forward():backward()
  assert(near(g:value(l):item(), math.log(3)), "uniform logits: loss log C")
  check_error("0 is not a dim", g.op, graph.new(), "softmax", {}, { dim = 0 })
end

-- batchnorm2d: train updates the running stats in place; eval uses them
do
  local g = graph.new()
  local x = g:input({ 4, 2, 3, 3 })
  local gam, bet = g:param(hs.ones({ 2 }), hs.zeros({ 2 })), g:param(hs.zeros({ 2 }), hs.zeros({ 2 }))
  local rm, rv = hs.zeros({ 2 }), hs.ones({ 2 })
  local bn = g:op("batchnorm2d", { x, gam, bet, g:buffer(rm), g:buffer(rv) }, { momentum = 0.5 })
  local l = g:op("mean", { bn })
  g:compile { loss = l, outputs = { bn }, training = true }
  local xv = hs.full({ 4, 2, 3, 3 }, 3)
  g:set(x, xv):forward()
  assert(near(rm:get(1), 1.5), "running mean moved half way to the batch mean")
  assert(near(rv:get(1), 0.5), "running var moved half way to the (zero) batch variance")
  assert(math.abs(g:value(bn):get(1, 1, 1, 1)) < 1e-3, "a constant input normalises to beta")
end

-- ---- error messages ----
do
  local g = graph.new()
  local x = g:input({ 4, 3 })
  local w = g:param(hs.zeros({ 5, 4 }), hs.zeros({ 5, 4 }))
  check_error("linear: .*%[4,3%], %[5,4%]", g.op, g, "linear", { x, w })
  check_error("unknown op 'lineer'", g.op, g, "lineer", { x, w })
  check_error("unknown attribute 'strid'", g.op, g, "relu", { x }, { strid = 1 })
  check_error("input 2 is not a node id", g.op, g, "add", { x, 99 })
  check_error("weight' is for cross_entropy", g.op, g, "relu", { x }, { weight = hs.ones({ 3 }) })
  check_error("bad argument #2 .*hs.tensor expected, got string", g.param, g, "not a tensor")
  check_error("grad .* does not match", g.param, g, hs.zeros({ 2 }), hs.zeros({ 3 }))
  check_error("I64", g.op, g, "cross_entropy", { x, x })
  check_error("node 42 does not exist", g.shape, g, 42)
  local y = g:op("tanh", { x })
  check_error("not compiled", g.forward, g)
  g:compile { outputs = { y } }
  check_error("already compiled", g.op, g, "relu", { x })
  check_error("never set", g.forward, g)
  check_error("has shape %[4,3%], got %[3,4%]", g.set, g, x, hs.zeros({ 3, 4 }))
  check_error("I64", g.set, g, x, hs.zeros({ 4, 3 }, "i64"))
  g:set(x, hs.ones({ 4, 3 }))
  g:forward()
  local v = g:value(y)
  assert(near(v:get(1, 1), math.tanh(1)))
  g = nil
  collectgarbage()
  assert(near(v:get(2, 2), math.tanh(1)), "a view keeps its graph alive")
  local g2 = graph.new()
  g2:release()
  check_error("released", g2.input, g2, { 2 })
end

print("test_graph.lua: all passed")
