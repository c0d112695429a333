-- experiments/mlp_spirals.lua: a small MLP classifier trained end to end
-- with the graph engine and report held-out accuracy.
-- Data: three interleaved spirals (a classic non-linearly separable toy problem), generated
-- from the counter-based RNG so that every run with the same seed is bit-identical.
--   build/histops experiments/mlp_spirals.lua [--epochs N] [--seed S]
local hs = require "histops"
local nn = hs.nn

local opts = { epochs = 60, seed = 7, batch = 64, hidden = 64, lr = 0.01 }
for i = 1, #arg, 2 do
  local k = arg[i]:match("^%-%-(.+)$")
  if not k or opts[k] == nil then error("unknown option " .. tostring(arg[i]) .. " (--epochs, --seed, --batch, --hidden, --lr)") end
  opts[k] = tonumber(arg[i + 1]) or error("option --" .. k .. " needs a number")
end

-- three spirals, 300 points per class, small Gaussian jitter
local K, per = 3, 300
local n = K * per
local noise = hs.randn({ n, 2 }, opts.seed)
local xs, ys = {}, {}
for c = 0, K - 1 do
  for i = 0, per - 1 do
    local r = i / per
    local th = c * 2 * math.pi / K + r * 4 + 0.2 * noise:get(c * per + i + 1, 1)
    xs[#xs + 1] = { r * math.sin(th), r * math.cos(th) }
    ys[#ys + 1] = c
  end
end
-- shuffle with a seeded permutation, then 80/20 train/test split
local u = hs.rand({ n }, opts.seed + 1)
local order = {}
for i = 1, n do order[i] = i end
table.sort(order, function(a, b) return u:get(a) < u:get(b) end)
local function subset(from, to)
  local X, Y = {}, {}
  for i = from, to do X[#X + 1] = xs[order[i]]; Y[#Y + 1] = ys[order[i]] end
  return hs.tensor(X), hs.tensor(Y, "i64")
end
local ntrain = math.floor(n * 0.8)
local Xtr, Ytr = subset(1, ntrain)
local Xte, Yte = subset(ntrain + 1, n)

nn.manual_seed(opts.seed)
local model = nn.Sequential(nn.Linear(2, opts.hidden), nn.ReLU(), nn.Linear(opts.hidden, opts.hidden), nn.ReLU(),
  nn.Linear(opts.hidden, K))
local opt = hs.optim.Adam(model, { lr = opts.lr })
local B = opts.batch
local step = nn.compile(model, { input = { B, 2 }, target = { B }, loss = nn.CrossEntropyLoss(), training = true })

local t0 = hs.sys and hs.sys.clock() or os.clock()
for epoch = 1, opts.epochs do
  local total, batches = 0, 0
  for b = 1, ntrain - B + 1, B do
    model:zero_grad()
    total = total + step:step(Xtr:narrow(1, b, B), Ytr:narrow(1, b, B))
    opt:step()
    batches = batches + 1
  end
  if epoch % 20 == 0 or epoch == opts.epochs then
    print(("epoch %3d  loss %.4f"):format(epoch, total / batches))
  end
end

model:eval()
local logits = model(Xte)
local correct = 0
for i = 1, Yte:numel() do
  local best, arg = -math.huge, 0
  for c = 1, K do
    local v = logits:get(i, c)
    if v > best then best, arg = v, c - 1 end
  end
  if arg == Yte:get(i) then correct = correct + 1 end
end
local acc = correct / Yte:numel()
print(("test accuracy %.3f on %d held-out points (%.1f s)"):format(acc, Yte:numel(),
  (hs.sys and hs.sys.clock() or os.clock()) - t0))
return acc > 0.9 and 0 or 1
