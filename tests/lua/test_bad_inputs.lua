-- tests/lua/test_bad_inputs.lua: what a user sees for bad inputs to the command line that no other
-- test covers: a missing data folder, a corrupt / truncated / non-histops model file given to
-- predict and eval, a file that is not an image given to predict, an unknown command, a missing
-- script, a missing --resume folder, a diverging training run. Each case requires a non-zero exit status and a message that
-- names the culprit (the rows of the README table "What happens when…").
-- Run: build/histops tests/lua/test_bad_inputs.lua   (about 3 s)
local hs = require "histops"
local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local capture, q, read = T.capture, T.q, T.read

local exe, top = T.exe, T.top
local tmp = T.tmpdir("bad")

-- histops ARGS -> exit code, stdout + stderr
local function histops(args)
  local out, _, code = capture(("cd %s && HISTOPS_CACHE=%s/cache %s %s 2>&1"):format(q(tmp), q(tmp), q(exe), args))
  return code, out
end

local failures = {}
local function case(name, f)
  local ok, err = pcall(f)
  print(("%s %s"):format(ok and "ok  " or "FAIL", name))
  if not ok then failures[#failures + 1] = name .. ": " .. tostring(err) end
end

-- expect(code, pattern..., args): exit status and every plain pattern in the output
local function expect(want, patterns, args)
  local code, out = histops(args)
  assert(code == want, ("histops %s: exit %s, want %d: %s"):format(args, tostring(code), want, out))
  for _, p in ipairs(patterns) do assert(out:find(p, 1, true), ("histops %s: no '%s' in: %s"):format(args, p, out)) end
end

-- a tiny trained model to feed bad data to
local code, out = histops(("run %s --no-git --quiet --out %s/runs --set train.epochs=1 --set data.synthetic.tiles=32 --set eval.bootstrap=10")
  :format(q(top .. "/experiments/quickstart.lua"), q(tmp)))
assert(code == 0, "training the test model failed: " .. out)
local model = assert((hs.sys.listdir(tmp .. "/runs/quickstart") or {})[1], "no run folder")
model = tmp .. "/runs/quickstart/" .. model .. "/model.safetensors"
local image = tmp .. "/tile.png"
assert(hs.image.save(image, (hs.synth.ihc { width = 48, height = 48, nuclei = 4, seed = 3 })))

case("missing data folder", function()
  local exp = tmp .. "/nodata.lua"
  assert(hs.sys.write_file_atomic(exp, ("local e = dofile(%q)\ne.name = 'nodata'\ne.data = { kind = 'folder', path = %q }\nreturn e\n")
    :format(top .. "/experiments/quickstart.lua", tmp .. "/no_such_folder")))
  expect(1, { "no_such_folder", "is not a folder" }, ("run %s --no-git --quiet --out %s/nd"):format(q(exp), q(tmp)))
end)

case("corrupt model file", function()
  assert(hs.sys.write_file_atomic(tmp .. "/garbage.safetensors", "this is not a model at all"))
  expect(1, { "garbage.safetensors", "header length" }, ("predict --model %s %s"):format(q(tmp .. "/garbage.safetensors"), q(image)))
end)

case("truncated model file", function()
  local bytes = assert(read(model))
  assert(hs.sys.write_file_atomic(tmp .. "/trunc.safetensors", bytes:sub(1, #bytes // 2)))
  expect(1, { "trunc.safetensors" }, ("eval --model %s --data %s"):format(q(tmp .. "/trunc.safetensors"), q(tmp)))
  expect(1, { "trunc.safetensors" }, ("predict --model %s %s"):format(q(tmp .. "/trunc.safetensors"), q(image)))
end)

case("safetensors file that is not a histops model", function()
  hs.io.save(tmp .. "/plain.safetensors", { w = hs.ones { 2 } })
  expect(1, { "plain.safetensors", "not a histops model" }, ("predict --model %s %s"):format(q(tmp .. "/plain.safetensors"), q(image)))
end)

case("predict on a file that is not an image", function()
  assert(hs.sys.write_file_atomic(tmp .. "/notes.png", "just text"))
  expect(1, { "notes.png", "not a PNG or JPEG" }, ("predict --model %s %s"):format(q(model), q(tmp .. "/notes.png")))
end)

case("missing model file", function()
  expect(1, { "no_such_model" }, ("predict --model %s %s"):format(q(tmp .. "/no_such_model.safetensors"), q(image)))
end)

case("training diverges", function()
  expect(1, { "training diverged: loss is NaN", "lower train.lr" },
    ("run %s --no-git --quiet --out %s/nan --set train.epochs=2 --set data.synthetic.tiles=32 --set eval.bootstrap=10 --set train.optimizer=sgd --set train.lr=1e30")
      :format(q(top .. "/experiments/quickstart.lua"), q(tmp)))
end)

case("unknown command", function()
  expect(2, { "unknown command 'frobnicate'", "usage" }, "frobnicate")
end)

case("missing script", function()
  expect(1, { "nosuch.lua", "No such file" }, q(tmp .. "/nosuch.lua"))
end)

case("--resume of a folder without a checkpoint", function()
  expect(1, { "--resume: no checkpoint in", "empty_run" },
    ("run %s --no-git --quiet --resume %s"):format(q(top .. "/experiments/quickstart.lua"), q(tmp .. "/empty_run")))
end)

os.execute("rm -rf " .. q(tmp))
if #failures > 0 then error(table.concat(failures, "\n"), 0) end
print("bad inputs: ok")
