-- tests/lua/test_experiment.lua: the experiment runner (`histops run`, hs/experiment.lua) end to
-- end on small data sets made on the fly (PNG tiles from hs.synth in a temp folder): every run
-- artifact, seeded determinism (twice, and 1 vs 2 threads), config and script errors, unreadable
-- files and data.allow_skip, kill + --resume, CSV manifests, presplit folders, grouped splits;
-- plus `histops eval` (classification and segmentation) and hs.sliding. Not the git recording
-- (test_runs.lua). Run: build/histops tests/lua/test_experiment.lua   (about 20 s)
local hs = require "histops"
local json = hs.json
local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error, capture, read, write, q, plain = T.check_error, T.capture, T.read, T.write, T.q, T.plain

local exe, top = T.exe, T.top
local tmp = T.tmpdir("exp")
local henv = ("HISTOPS_CACHE=%s/cache "):format(tmp)

-- histops ARGS in tmp -> stdout, exit code, stderr
local function histops(args, env)
  local errf = tmp .. "/stderr.txt"
  local out, _, code = capture(("cd %s && %s%s %s %s 2>%s"):format(q(tmp), henv, env or "", q(exe), args, q(errf)))
  return out, code, read(errf) or ""
end

-- the only run folder under an --out root for an experiment
local function run_dir(out, name)
  local ids = hs.sys.listdir(out .. "/" .. name) or {}
  local dirs = {}
  for _, id in ipairs(ids) do if id:sub(1, 1) ~= "." then dirs[#dirs + 1] = id end end
  assert(#dirs == 1, ("expected one run under %s/%s, found %d"):format(out, name, #dirs))
  return out .. "/" .. name .. "/" .. dirs[1]
end

local function lines(text)
  local t = {}
  for l in text:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- split.csv -> { train = {rel=true}, ... }, rows
local function read_split(dir)
  local parts, rows = { train = {}, val = {}, test = {} }, {}
  for i, l in ipairs(lines(assert(read(dir .. "/split.csv")))) do
    if i > 1 then
      local part, path, label, group = l:match("^([^,]*),([^,]*),([^,]*),([^,]*)$")
      assert(part and parts[part], "split.csv row: " .. l)
      assert(not parts[part][path], "duplicate row " .. l)
      parts[part][path] = true
      rows[#rows + 1] = { part = part, path = path, label = label, group = group }
    end
  end
  return parts, rows
end

local function history(dir)
  local h = {}
  for _, l in ipairs(lines(assert(read(dir .. "/history.jsonl")))) do h[#h + 1] = json.decode(l) end
  return h
end

-- history without the wall-clock fields
local function history_values(dir)
  local out = {}
  for _, r in ipairs(history(dir)) do
    r.time, r.images_per_s = nil, nil
    out[#out + 1] = json.encode(r)
  end
  return table.concat(out, "\n")
end

-- ---------------------------------------------------------------- fixtures
local function tile(seed, positive, size)
  local rgb = hs.synth.ihc { width = size or 16, height = size or 16, nuclei = 2, seed = seed,
    positive_fraction = positive and 0.9 or 0.05, radius = { 2, 4 } }
  return rgb
end

-- class folders negative/ positive/ with n tiles each, named <group>_<i>.png
local function make_folder(dir, n, groups, seed0)
  for ci, cname in ipairs { "negative", "positive" } do
    assert(hs.sys.mkdir_p(dir .. "/" .. cname))
    for i = 1, n do
      local g = groups and ("slide%02d"):format((i - 1) % groups + 1) or ("t" .. i)
      assert(hs.image.save(("%s/%s/%s_%03d.png"):format(dir, cname, g, i), tile((seed0 or 0) + ci * 1000 + i, ci == 2)))
    end
  end
end

-- a throw-away experiment: tiny CNN on 16x16 tiles; data_src is the Lua source of its data table
local function experiment(name, data_src, extra)
  local src = ([[
return {
  name = %q,
  seed = 3,
  data = %s,
  input = { size = { 16, 16 }, channels = 3, mean = { 0.8, 0.7, 0.7 }, std = { 0.15, 0.2, 0.2 } },
  augment = { hflip = true, vflip = true },
  model = function(info)
    local nn = require("histops").nn
    return nn.Sequential { nn.Conv2d(3, 4, 3, { padding = 1 }), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
      nn.Linear(4, info.num_classes) }
  end,
  train = { epochs = 2, batch = 8, optimizer = "adam", lr = 1e-2, early_stopping = { patience = 0 } },
  eval = { bootstrap = 50 },
  report = { samples = 4 },
  %s
}
]]):format(name, data_src, extra or "")
  local path = ("%s/%s.lua"):format(tmp, name)
  write(path, src)
  return path
end

local timings = {}
local function timed(name, f)
  local t0 = hs.sys.clock()
  f()
  timings[#timings + 1] = ("%s %.1fs"):format(name, hs.sys.clock() - t0)
end

local bg_pid   -- the run killed for --resume: never left behind, whatever fails
local ok_all, err_all = pcall(function()

  -- 1. quickstart, short: every artifact of the run folder
  timed("quickstart", function()
    local out = tmp .. "/q"
    local stdout, code, err = histops(("run %s --no-git --quiet --json --out %s --set train.epochs=2")
      :format(q(top .. "/experiments/quickstart.lua"), q(out)))
    assert(code == 0, "quickstart failed:\n" .. err .. stdout)
    local printed = json.decode(stdout)
    local dir = run_dir(out, "quickstart")
    for _, f in ipairs { "run.json", "params.json", "metrics.json", "history.jsonl", "split.csv", "model.safetensors",
      "report.html", "log.txt" } do
      assert(hs.sys.stat(dir .. "/" .. f), "missing artifact " .. f)
    end
    assert(not hs.sys.stat(dir .. "/checkpoint.safetensors") and not hs.sys.stat(dir .. "/optimizer.safetensors"),
      "checkpoint weights are removed after a finished run")
    local rec = json.decode(read(dir .. "/run.json"))
    assert(rec.id == dir:match("([^/]+)$") and rec.experiment == "quickstart" and rec.status == "finished", rec.status)
    assert(rec.seed == 1 and rec.params.train.epochs == 2 and rec.overrides[1] == "train.epochs=2")
    assert(rec.end_time >= rec.start_time and rec.environment.histops == hs.version)
    assert(#rec.data.fingerprint.all == 64 and rec.data.counts.train + rec.data.counts.val + rec.data.counts.test == 320)
    assert(rec.artifacts["model.safetensors"] == hs.sys.sha256_file(dir .. "/model.safetensors"), "model checksum recorded")
    assert(#rec.history == 2 and rec.pipeline.cache_size[1] == 48)
    local params = json.decode(read(dir .. "/params.json"))
    assert(params.name == "quickstart" and params.train.epochs == 2 and params.model == "<function>")
    local m = json.decode(read(dir .. "/metrics.json"))
    assert(m.accuracy >= 0 and m.accuracy <= 1 and m.accuracy_ci.lo <= m.accuracy and m.accuracy <= m.accuracy_ci.hi)
    assert(#m.confusion == 2 and m.test_items == 64 and m.skipped_files == 0 and m.per_class.positive)
    assert(printed.accuracy == m.accuracy, "--json prints the final metrics")
    local h = history(dir)
    assert(#h == 2 and h[1].epoch == 1 and h[2].epoch == 2 and h[1].train_loss > 0 and h[2].macro_f1)
    -- the split: 60/20/20, stratified (every part half positive), no file in two parts
    local parts, rows = read_split(dir)
    assert(#rows == 320)
    local counts = {}
    for _, r in ipairs(rows) do
      counts[r.part] = counts[r.part] or { 0, 0 }
      counts[r.part][tonumber(r.label) + 1] = counts[r.part][tonumber(r.label) + 1] + 1
      for p, set in pairs(parts) do assert(p == r.part or not set[r.path], "file in two parts: " .. r.path) end
    end
    assert(counts.train[1] == 96 and counts.train[2] == 96, "train stratified")
    assert(counts.val[1] == 32 and counts.val[2] == 32 and counts.test[1] == 32 and counts.test[2] == 32, "val/test stratified")
    -- the model file loads on its own and predicts
    local mio = require "hs.model_io"
    local model = assert(mio.load(dir .. "/model.safetensors"))
    assert(model.meta.run == rec.id and model.meta.classes[2] == "positive" and model.meta.data_fingerprint == rec.data.fingerprint.all)
    local root = (capture(("ls -d %s/cache/synthetic_ihc_classification_320_48_*/ | head -1"):format(q(tmp))):gsub("/?%s+$", ""))
    local imgs = { assert(hs.image.load(root .. "/positive/tile0002.png")), assert(hs.image.load(root .. "/negative/tile0001.png")) }
    local preds = model:predict(imgs)
    assert(#preds == 2 and preds[1].class and math.abs(preds[1].probs.positive + preds[1].probs.negative - 1) < 1e-5)
    local html = read(dir .. "/report.html")
    assert(html:find("<svg", 1, true) and html:find('id="samples"', 1, true) and html:find('id="roc"', 1, true), "report sections")

    -- histops eval on the run's own test split (a CSV manifest) reproduces the runner's numbers
    local man = { "path,label" }
    local classes = { [0] = "negative", [1] = "positive" }
    for _, r in ipairs(rows) do
      if r.part == "test" then man[#man + 1] = ("%s/%s,%s"):format(root, r.path, classes[tonumber(r.label)]) end
    end
    write(tmp .. "/q_test.csv", table.concat(man, "\n") .. "\n")
    local eo, ec, ee = histops(("eval --model %s --data %s --json --bootstrap 50"):format(q(dir), q(tmp .. "/q_test.csv")))
    assert(ec == 0, "eval failed: " .. ee)
    local ev = json.decode(eo)
    assert(ev.data.evaluated == 64 and ev.model.run == rec.id and ev.model.task == "classification")
    assert(math.abs(ev.metrics.accuracy - m.accuracy) < 1e-12, ("eval accuracy %g, run %g"):format(ev.metrics.accuracy, m.accuracy))
    assert(math.abs(ev.metrics.macro_f1 - m.macro_f1) < 1e-12 and math.abs(ev.metrics.ece - m.ece) < 1e-6)
    assert(ev.metrics.confusion[2][2] == m.confusion[2][2] and ev.metrics.confusion[1][2] == m.confusion[1][2])
    assert(math.abs(ev.metrics.roc_auc - m.roc_auc) < 1e-6, "same probabilities")
    -- text output and a model given by run id
    local to, tc = histops(("eval --model %s --data %s --bootstrap 20"):format(q(dir), q(tmp .. "/q_test.csv")))
    assert(tc == 0 and to:find("macro%-F1") and to:find("confusion"), to)
  end)

  -- regression: hs.gate evaluates with a config that has no data section (batch_spec and
  -- eval_segmentation indexed cfg.data.invert_masks and raised)
  local exp = require "hs.experiment"
  local spec = exp.batch_spec({ input = { size = { 8, 8 }, channels = 3, mean = { 0.5, 0.5, 0.5 }, std = { 0.2, 0.2, 0.2 } },
    seed = 0, augment = {}, eval = { threshold = 0.5 } }, false)
  assert(spec.out[1] == 8 and not spec.invert_mask)

  -- 2. same seed twice -> identical numbers; 1 vs 2 threads -> identical numbers
  local data_dir = tmp .. "/folder"
  make_folder(data_dir, 16)
  local fexp = experiment("tiny_folder", ("{ kind = 'folder', path = %q, split = { val = 0.25, test = 0.25 } }"):format(data_dir))
  timed("determinism", function()
    local dirs = {}
    for i, env in ipairs { "HISTOPS_THREADS=2 ", "HISTOPS_THREADS=2 ", "HISTOPS_THREADS=1 " } do
      local out = tmp .. "/det" .. i
      local so, code, err = histops(("run %s --no-git --quiet --out %s --set train.epochs=3"):format(q(fexp), q(out)), env)
      assert(code == 0, "run failed: " .. err .. so)
      dirs[i] = run_dir(out, "tiny_folder")
    end
    local h1, h2, h3 = history_values(dirs[1]), history_values(dirs[2]), history_values(dirs[3])
    assert(#lines(h1) == 3)
    assert(h1 == h2, "same seed twice: histories differ\n" .. h1 .. "\n" .. h2)
    assert(h1 == h3, "1 vs 2 threads: histories differ\n" .. h1 .. "\n" .. h3)
    local function metrics_of(d)
      local m = json.decode(read(d .. "/metrics.json"))
      m.train_time_s = nil
      return json.encode(m)
    end
    assert(metrics_of(dirs[1]) == metrics_of(dirs[2]) and metrics_of(dirs[1]) == metrics_of(dirs[3]), "final metrics differ")
    assert(read(dirs[1] .. "/split.csv") == read(dirs[3] .. "/split.csv"))
    local r1, r3 = json.decode(read(dirs[1] .. "/run.json")), json.decode(read(dirs[3] .. "/run.json"))
    assert(r1.data.fingerprint.all == r3.data.fingerprint.all)
    assert(r1.environment.threads == 2 and r3.environment.threads == 1, "HISTOPS_THREADS honoured")
    local w1, w3 = assert(hs.io.load(dirs[1] .. "/model.safetensors")), assert(hs.io.load(dirs[3] .. "/model.safetensors"))
    local nt = 0
    for k, t in pairs(w1) do
      nt = nt + 1
      assert(w3[k] and t:equal(w3[k]), "weights differ: " .. k)
    end
    assert(nt >= 4, "weights compared")
  end)

  -- 3. configuration and script errors
  timed("errors", function()
    local so, code, err = histops(("run %s --no-git --quiet --out %s --set train.epoch=2"):format(q(fexp), q(tmp .. "/typo")))
    assert(code == 2, "typo: exit " .. tostring(code))
    assert(err:find("train.epoch", 1, true) and err:find("did you mean 'epochs'", 1, true), err)
    _, code, err = histops(("run %s --no-git --quiet --set data.splt.val=0.1"):format(q(fexp)))
    assert(code == 2 and err:find("did you mean 'split'", 1, true), err)
    -- a syntax error, an error while the script runs, an error in its model function: FILE:LINE
    write(tmp .. "/broken_syntax.lua", "return {\n  name = 'b',\n  seed = ,\n}\n")
    _, code, err = histops(("run %s --no-git --quiet"):format(q(tmp .. "/broken_syntax.lua")))
    assert(code ~= 0 and err:find("broken_syntax.lua:3:", 1, true), err)
    write(tmp .. "/broken_run.lua", "local t = {}\nlocal x = t.missing.field\nreturn {}\n")
    _, code, err = histops(("run %s --no-git --quiet"):format(q(tmp .. "/broken_run.lua")))
    assert(code ~= 0 and err:find("broken_run.lua:2:", 1, true), err)
    local src = read(fexp):gsub("local nn = require%(\"histops\"%).nn", "local nn = require(\"histops\").nn\n    error(\"no such layer\")")
    write(tmp .. "/broken_model.lua", src)
    local line
    for i, l in ipairs(lines(src)) do if l:find("no such layer", 1, true) and not line then line = i end end
    _, code, err = histops(("run %s --no-git --quiet --out %s"):format(q(tmp .. "/broken_model.lua"), q(tmp .. "/bm")))
    assert(code ~= 0 and err:find(("broken_model.lua:%d: no such layer"):format(line), 1, true), err)
    _, code, err = histops("run")
    assert(code == 2 and err:find("usage", 1, true))
  end)

  -- 4. an unreadable (truncated) PNG: the run fails naming it, unless data.allow_skip
  timed("allow_skip", function()
    local dir = tmp .. "/trunc"
    make_folder(dir, 12, nil, 500)
    local bad = dir .. "/positive/t5_005.png"
    local bytes = read(bad)
    write(bad, bytes:sub(1, #bytes // 2))
    local texp = experiment("tiny_trunc", ("{ kind = 'folder', path = %q, split = { val = 0.25, test = 0.25 } }"):format(dir))
    local so, code, err = histops(("run %s --no-git --quiet --out %s"):format(q(texp), q(tmp .. "/tr1")))
    assert(code ~= 0, "a truncated file must fail the run")
    assert(err:find(plain(bad)) and err:find("allow_skip", 1, true), err)
    so, code, err = histops(("run %s --no-git --quiet --json --out %s --set data.allow_skip=true"):format(q(texp), q(tmp .. "/tr2")))
    assert(code == 0, "allow_skip run failed: " .. err)
    assert(json.decode(so).skipped_files == 1)
    local rdir = run_dir(tmp .. "/tr2", "tiny_trunc")
    local m = json.decode(read(rdir .. "/metrics.json"))
    assert(m.skipped_files == 1 and json.decode(read(rdir .. "/run.json")).data.skipped == 1)
    assert(read(rdir .. "/log.txt"):find(plain(bad)), "the skipped file is named in the log")
    -- eval: the same file fails the evaluation, or is skipped and counted with --allow-skip
    local eo, ec, ee = histops(("eval --model %s --data %s --json --bootstrap 0"):format(q(rdir), q(dir)))
    assert(ec == 1 and ee:find(plain(bad)) and ee:find("--allow-skip", 1, true), ee)
    eo, ec, ee = histops(("eval --model %s --data %s --json --bootstrap 0 --allow-skip"):format(q(rdir), q(dir)))
    assert(ec == 0, ee)
    local ev = json.decode(eo)
    assert(ev.data.skipped == 1 and ev.data.evaluated == 23 and ev.data.skipped_files[1].path == bad)
    -- class folders are matched by name: a folder with one class is fine, an unknown one is an error
    local one = tmp .. "/oneclass"
    assert(hs.sys.mkdir_p(one .. "/positive"))
    for i = 1, 3 do assert(hs.image.save(("%s/positive/p%d.png"):format(one, i), tile(900 + i, true))) end
    eo, ec, ee = histops(("eval --model %s --data %s --json --bootstrap 0"):format(q(rdir), q(one)))
    assert(ec == 0, ee)
    ev = json.decode(eo)
    assert(ev.metrics.per_class.positive.support == 3 and ev.metrics.per_class.negative.support == 0)
    assert(hs.sys.mkdir_p(one .. "/mitosis"))
    assert(hs.image.save(one .. "/mitosis/m.png", tile(999, true)))
    eo, ec, ee = histops(("eval --model %s --data %s"):format(q(rdir), q(one)))
    assert(ec == 1 and ee:find("'mitosis'", 1, true) and ee:find("negative, positive", 1, true), ee)
    eo, ec, ee = histops(("eval --model %s --data %s"):format(q(tmp .. "/no_such_model"), q(one)))
    assert(ec == 1 and ee:find("no_such_model", 1, true), ee)
    eo, ec = histops("eval --model x")
    assert(ec == 2)
  end)

  -- 5. kill a run after its first checkpoint, resume it: it continues from the next epoch
  timed("resume", function()
    local out = tmp .. "/res"
    local pid = (capture(("cd %s; %s %s run %s --no-git --quiet --out %s --set train.epochs=100000 >/dev/null 2>&1 & echo $!")
      :format(q(tmp), henv, q(exe), q(fexp), q(out))):gsub("%s+$", ""))
    bg_pid = pid
    local dir
    for _ = 1, 600 do
      local ids = hs.sys.listdir(out .. "/tiny_folder")
      if ids and ids[1] and hs.sys.stat(out .. "/tiny_folder/" .. ids[1] .. "/checkpoint.json") then
        dir = out .. "/tiny_folder/" .. ids[1]
        break
      end
      hs.sys.sleep(0.02)
    end
    assert(dir, "no checkpoint.json appeared")
    assert(os.execute("kill -9 " .. pid))
    for _ = 1, 200 do
      if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
      hs.sys.sleep(0.02)
    end
    bg_pid = nil
    -- the checkpoint's own state (checkpoint.json, a readable copy written after it, may lag an epoch)
    local _, cmeta = hs.io.load(dir .. "/checkpoint.safetensors")
    local ck = json.decode(assert(cmeta and cmeta.state, "checkpoint.safetensors carries its state"))
    local e = ck.epoch
    assert(e >= 1 and #ck.history == e, "checkpoint after epoch " .. tostring(e))
    assert(not hs.sys.stat(dir .. "/run.json"), "the killed run did not finish")
    local target = e + 2
    local so, code, err = histops(("run %s --no-git --quiet --resume %s --set train.epochs=%d"):format(q(fexp), q(dir), target))
    assert(code == 0, "resume failed: " .. err .. so)
    local h = history(dir)
    assert(#h == target, ("history has %d epochs, want %d"):format(#h, target))
    for i, r in ipairs(h) do assert(r.epoch == i, "epochs run in order without gaps") end
    local log = read(dir .. "/log.txt")
    assert(log:find(("resuming after epoch %d"):format(e), 1, true), log)
    assert(not log:find(("epoch %d/%d"):format(e, target), 1, true), "epoch " .. e .. " was not trained again")
    assert(log:find(("epoch %d/%d"):format(e + 1, target), 1, true), "training continued at epoch " .. (e + 1))
    local rec = json.decode(read(dir .. "/run.json"))
    assert(rec.status == "finished" and #rec.history == target)
    assert(not hs.sys.stat(dir .. "/checkpoint.safetensors"))
  end)

  -- 6. data sets: CSV manifest, presplit folders, grouped split
  timed("data sets", function()
    -- CSV manifest (paths relative to the manifest, a group column)
    local cdir = tmp .. "/csvset"
    make_folder(cdir .. "/img", 10, 5, 2000)
    local man = { "path,label,group" }
    for _, c in ipairs { "negative", "positive" } do
      for _, f in ipairs(hs.sys.listdir(cdir .. "/img/" .. c)) do
        man[#man + 1] = ("img/%s/%s,%s,%s"):format(c, f, c, f:match("^(slide%d+)"))
      end
    end
    write(cdir .. "/manifest.csv", table.concat(man, "\n") .. "\n")
    local cexp = experiment("tiny_csv", ("{ kind = 'csv', path = %q, split = { val = 0.2, test = 0.2 } }"):format(cdir .. "/manifest.csv"))
    local so, code, err = histops(("run %s --no-git --quiet --out %s"):format(q(cexp), q(tmp .. "/csv")))
    assert(code == 0, "csv run failed: " .. err .. so)
    local d = run_dir(tmp .. "/csv", "tiny_csv")
    local parts, rows = read_split(d)
    assert(#rows == 20 and rows[1].path:match("^img/"), "paths as written in the manifest")
    local rec = json.decode(read(d .. "/run.json"))
    assert(rec.data.classes[1] == "negative" and rec.data.classes[2] == "positive")
    local n = 0
    for _ in pairs(parts.test) do n = n + 1 end
    assert(n == 4, "stratified 20% test of 20 items: " .. n)

    -- presplit train/val/test folders: the given split is used as is
    local pdir = tmp .. "/presplit"
    make_folder(pdir .. "/train", 8, nil, 3000)
    make_folder(pdir .. "/val", 3, nil, 4000)
    make_folder(pdir .. "/test", 4, nil, 5000)
    local pexp = experiment("tiny_presplit", ("{ kind = 'presplit', path = %q }"):format(pdir))
    so, code, err = histops(("run %s --no-git --quiet --out %s"):format(q(pexp), q(tmp .. "/pre")))
    assert(code == 0, "presplit run failed: " .. err .. so)
    d = run_dir(tmp .. "/pre", "tiny_presplit")
    parts, rows = read_split(d)
    local cnt = { train = 0, val = 0, test = 0 }
    for _, r in ipairs(rows) do
      cnt[r.part] = cnt[r.part] + 1
      assert(hs.sys.stat(pdir .. "/" .. r.part .. "/" .. r.path), "row names a file of its own part folder: " .. r.path)
    end
    assert(cnt.train == 16 and cnt.val == 6 and cnt.test == 8)
    rec = json.decode(read(d .. "/run.json"))
    assert(rec.data.counts.test == 8 and json.decode(read(d .. "/metrics.json")).test_items == 8)

    -- grouped split: all tiles of a slide on one side (folder groups from the file-name prefix)
    local gdir = tmp .. "/grouped"
    make_folder(gdir, 18, 6, 6000)
    local gexp = experiment("tiny_grouped", ("{ kind = 'folder', path = %q, split = { val = 0.2, test = 0.2, grouped = true } }"):format(gdir))
    so, code, err = histops(("run %s --no-git --quiet --out %s"):format(q(gexp), q(tmp .. "/grp")))
    assert(code == 0, "grouped run failed: " .. err .. so)
    d = run_dir(tmp .. "/grp", "tiny_grouped")
    local _, grows = read_split(d)
    local side = {}
    local used = { train = false, val = false, test = false }
    for _, r in ipairs(grows) do
      assert(r.group:match("^slide%d+$"), "group from the file name: " .. r.group)
      assert(side[r.group] == nil or side[r.group] == r.part, "group " .. r.group .. " is on two sides")
      side[r.group] = r.part
      used[r.part] = true
    end
    assert(used.train and used.test and #grows == 36, "grouped split uses train and test")
    -- the same through the CSV group column
    local g2 = experiment("tiny_csv_grouped", ("{ kind = 'csv', path = %q, split = { val = 0.2, test = 0.4, grouped = true } }")
      :format(cdir .. "/manifest.csv"))
    so, code, err = histops(("run %s --no-git --quiet --out %s"):format(q(g2), q(tmp .. "/grp2")))
    assert(code == 0, "csv grouped run failed: " .. err .. so)
    _, grows = read_split(run_dir(tmp .. "/grp2", "tiny_csv_grouped"))
    side = {}
    for _, r in ipairs(grows) do
      assert(side[r.group] == nil or side[r.group] == r.part, "csv group " .. r.group .. " is on two sides")
      side[r.group] = r.part
    end
  end)

  -- 7. hs.sliding: windows cover the image; tiled inference equals the whole-image forward for
  -- a pointwise model; images smaller than a tile; segmentation eval on images of any size
  timed("sliding + seg eval", function()
    local sliding = require "hs.sliding"
    for _, c in ipairs { { 40, 35, 16, 16, 0.25 }, { 16, 16, 16, 16, 0.5 }, { 100, 17, 32, 16, 0 }, { 33, 64, 8, 8, 0.75 } } do
      local H, W, th, tw, ov = table.unpack(c)
      local cover = {}
      for _, w in ipairs(sliding.windows(H, W, th, tw, ov)) do
        assert(w[1] >= 1 and w[2] >= 1 and w[1] + th - 1 <= H and w[2] + tw - 1 <= W, "window inside the image")
        for y = w[1], w[1] + th - 1 do for x = w[2], w[2] + tw - 1 do cover[y * 10000 + x] = true end end
      end
      for y = 1, H do for x = 1, W do assert(cover[y * 10000 + x], ("pixel %d,%d of %dx%d not covered"):format(y, x, H, W)) end end
    end
    check_error("overlap", sliding.windows, 10, 10, 4, 4, 1)

    local nn = hs.nn
    nn.manual_seed(7)
    local mean, std = { 0.6, 0.5, 0.4 }, { 0.2, 0.25, 0.3 }
    local pm = { model = nn.Sequential { nn.Conv2d(3, 1, 1) }, meta = { input = { size = { 16, 16 }, channels = 3, mean = mean, std = std } } }
    pm.model:eval()
    local img = tile(77, true, 53):narrow(1, 1, 37):contiguous()   -- 37 x 53
    local prob, mask = sliding.segment(pm, img, { overlap = 0.3, batch = 4 })
    assert(prob:shape()[1] == 37 and prob:shape()[2] == 53 and mask:dtype() == "u8")
    local x = img:astype("f32"):div(255):permute({ 3, 1, 2 }):contiguous()
    for c = 1, 3 do x:select(1, c):sub_(mean[c]):div_(std[c]) end
    local want = pm.model(x:reshape({ 1, 3, 37, 53 })):reshape({ 37, 53 }):sigmoid()
    assert(prob:allclose(want, 1e-5, 1e-4), "tiled inference differs from the whole-image forward")
    assert(mask:astype("f32"):div(255):equal(want:gt(0.5):astype("f32")), "mask = probability > 0.5")
    local p2 = sliding.segment(pm, img:narrow(1, 1, 9):narrow(2, 1, 11):contiguous())
    assert(p2:shape()[1] == 9 and p2:shape()[2] == 11, "an image smaller than a tile")
    local g = sliding.segment(pm, hs.image.rgb2gray(img))   -- gray input to an RGB model
    assert(g:shape()[1] == 37)

    -- a segmentation run, then eval on whole images of other sizes
    local sexp = tmp .. "/tiny_seg.lua"
    write(sexp, ([[
return {
  name = "tiny_seg", seed = 2, task = "segmentation",
  data = { kind = "synthetic_ihc", synthetic = { tiles = 16, size = 32, nuclei = 3 }, cache_size = { 32, 32 },
    split = { val = 0.25, test = 0.25 } },
  input = { size = { 16, 16 }, channels = 3, mean = { 0.8, 0.7, 0.7 }, std = { 0.15, 0.2, 0.2 } },
  model = function(info)
    local nn = require("histops").nn
    return nn.Sequential { nn.Conv2d(3, 4, 3, { padding = 1 }), nn.ReLU(), nn.Conv2d(4, 1, 1) }
  end,
  train = { epochs = 3, batch = 4, optimizer = "adam", lr = 1e-2 },
  eval = { bootstrap = 50 },
  report = { samples = 3 },
}
]]))
    local so, code, err = histops(("run %s --no-git --quiet --out %s"):format(q(sexp), q(tmp .. "/seg")))
    assert(code == 0, "segmentation run failed: " .. err .. so)
    local d = run_dir(tmp .. "/seg", "tiny_seg")
    local html = read(d .. "/report.html")
    local _, nimg = html:gsub('<figure class="overlay"><img', "")
    assert(nimg == 3, "the report shows 3 segmentation overlays, got " .. nimg)
    assert(html:find('id="per-image"', 1, true))
    local pdir = tmp .. "/pairs"
    assert(hs.sys.mkdir_p(pdir .. "/images") and hs.sys.mkdir_p(pdir .. "/masks"))
    for i, sz in ipairs { { 50, 40 }, { 24, 24 }, { 70, 33 } } do
      local rgb, labels = hs.synth.ihc { width = sz[1], height = sz[2], nuclei = 5, seed = 70 + i, radius = { 3, 6 } }
      assert(hs.image.save(("%s/images/im%d.png"):format(pdir, i), rgb))
      assert(hs.image.save(("%s/masks/im%d.png"):format(pdir, i), labels:astype("f32"):gt(0):astype("u8"):mul(255):astype("u8")))
    end
    local eo, ec, ee = histops(("eval --model %s --data %s --json --bootstrap 20 --masks %s"):format(q(d), q(pdir), q(tmp .. "/pred")))
    assert(ec == 0, "seg eval failed: " .. ee)
    local ev = json.decode(eo)
    assert(ev.model.task == "segmentation" and ev.data.evaluated == 3 and #ev.metrics.per_image == 3)
    assert(ev.metrics.dice > 0.5, "the trained model finds nuclei: Dice " .. ev.metrics.dice)
    assert(ev.metrics.per_image[1].width == 50 and ev.metrics.per_image[1].height == 40)
    local pm1 = assert(hs.image.load(tmp .. "/pred/im1.png"))
    assert(pm1:shape()[1] == 40 and pm1:shape()[2] == 50, "predicted mask at the image's own size")
    -- --resize: resampled to the training cache size (32x32) first; masks still at the image's size
    local rz = json.decode((histops(("eval --model %s --data %s --json --bootstrap 0 --resize --masks %s"):format(q(d), q(pdir), q(tmp .. "/pred2")))))
    assert(rz.metrics.resized == true and rz.metrics.per_image[3].width == 70 and rz.metrics.dice > 0.3)
    local pm3 = assert(hs.image.load(tmp .. "/pred2/im3.png"))
    assert(pm3:shape()[1] == 33 and pm3:shape()[2] == 70)
    -- inverted polarity flips the scores; the wrong kind of data set is a clear error
    local io2 = json.decode((histops(("eval --model %s --data %s --json --bootstrap 0 --invert-masks"):format(q(d), q(pdir)))))
    assert(io2.metrics.dice < ev.metrics.dice and io2.metrics.invert_masks == true)
    _, ec, ee = histops(("eval --model %s --data %s"):format(q(d), q(data_dir)))
    assert(ec == 1 and ee:find("segmentation model", 1, true), ee)
    -- the run's own test images through eval: close to the runner's (full-image) numbers
    local m = json.decode(read(d .. "/metrics.json"))
    local sroot = (capture(("ls -d %s/cache/synthetic_ihc_segmentation_16_32_*/ | head -1"):format(q(tmp))):gsub("/?%s+$", ""))
    local td = tmp .. "/segtest"
    assert(hs.sys.mkdir_p(td .. "/images") and hs.sys.mkdir_p(td .. "/masks"))
    local _, rows = read_split(d)
    for _, r in ipairs(rows) do
      if r.part == "test" then
        local f = r.path:match("([^/]+)$")
        write(td .. "/images/" .. f, read(sroot .. "/images/" .. f))
        write(td .. "/masks/" .. f, read(sroot .. "/masks/" .. f))
      end
    end
    local te = json.decode((histops(("eval --model %s --data %s --json --bootstrap 0"):format(q(d), q(td)))))
    assert(te.data.evaluated == m.test_items and math.abs(te.metrics.dice - m.dice) < 0.05,
      ("eval Dice %.4f vs run Dice %.4f"):format(te.metrics.dice, m.dice))
  end)
end)

if bg_pid then os.execute("kill -9 " .. bg_pid .. " 2>/dev/null") end
if ok_all and not os.getenv("HISTOPS_KEEP_TMP") then os.execute("rm -rf " .. q(tmp)) end
if not ok_all then
  io.stderr:write("test_experiment: FAILED (files kept in ", tmp, ")\n", tostring(err_all), "\n")
  os.exit(1)
end
print("test_experiment: ok (" .. table.concat(timings, ", ") .. ")")
