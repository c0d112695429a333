-- tests/lua/test_crash_safety.lua: crash safety of `histops run` end to end, on a tiny quickstart
-- (synthetic tiles, 8 epochs, dropout and AdamW, recorded in a throw-away git repository):
--   1. a run killed with SIGKILL again and again — at seeded-random moments from outside, in
--      the middle of an atomic file write, between the checkpoint and its JSON copy, before a
--      record commit and between a record's objects and its ref move (HISTOPS_TEST_KILL_AT,
--      test-only hooks, core/sys.h) — and resumed with --resume each time reaches bit-identical
--      final weights and metrics to an uninterrupted run, with a complete git record;
--   2. a full disk — injected (HISTOPS_FAULT_WRITE_AFTER) and real (a 64 KB tmpfs, when mount is
--      allowed) — fails the run with "No space left on device" naming the file, leaves the
--      previous checkpoint and the run record readable, and a resume finishes the same run.
-- Not the resume bookkeeping details (test_experiment.lua) or git recording (test_runs.lua).
-- Run: build/histops tests/lua/test_crash_safety.lua   (about 10 s; HS_CRASH_SEED=n varies the kills)
local hs = require "histops"
local json = hs.json
local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local capture, read, q = T.capture, T.read, T.q
-- true when cmd exits 0 (unlike T.sh, a failure is an answer here, not an error)
local function sh(cmd) local _, ok = capture(cmd .. " >/dev/null 2>&1"); return ok end

local exe, top = T.exe, T.top
local tmp = T.tmpdir("crash")
local repo = tmp .. "/repo"
local seed = tonumber(os.getenv("HS_CRASH_SEED") or "") or 20261126
math.randomseed(seed)

local bg_pid, mounted
local function cleanup()
  if bg_pid then os.execute("kill -9 " .. bg_pid .. " 2>/dev/null") end
  if mounted then os.execute("umount " .. q(mounted) .. " 2>/dev/null") end
  os.execute("rm -rf " .. q(tmp))
end

-- a git repository holding the experiment (quickstart + the CNN it uses), committed
assert(hs.sys.mkdir_p(repo .. "/models"))
assert(hs.sys.write_file_atomic(repo .. "/quickstart.lua", assert(read(top .. "/experiments/quickstart.lua"))))
assert(hs.sys.write_file_atomic(repo .. "/models/cnn.lua", assert(read(top .. "/experiments/models/cnn.lua"))))
assert(sh(("cd %s && git init -q && git -c user.name=t -c user.email=t@t add -A && git -c user.name=t -c user.email=t@t commit -qm exp")
  :format(q(repo))), "git init")

local SETS = "--set train.epochs=8 --set data.synthetic.tiles=96 --set eval.bootstrap=20 --set train.early_stopping.patience=0"
local ENV = ("HISTOPS_CACHE=%s/cache HISTOPS_THREADS=1 GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t ")
  :format(q(tmp))

-- histops run in the repository -> exit code, stderr
local function run(out, extra, env)
  local errf = tmp .. "/stderr.txt"
  local _, _, code = capture(("cd %s && %s%s %s run quickstart.lua --quiet --out %s %s %s >/dev/null 2>%s")
    :format(q(repo), ENV, env or "", q(exe), q(out), SETS, extra or "", q(errf)))
  return code, read(errf) or ""
end

local function only_dir(out)
  local ids = hs.sys.listdir(out .. "/quickstart") or {}
  local dirs = {}
  for _, id in ipairs(ids) do if id:sub(1, 1) ~= "." then dirs[#dirs + 1] = id end end
  assert(#dirs <= 1, "more than one run folder under " .. out)
  return dirs[1] and (out .. "/quickstart/" .. dirs[1]) or nil, dirs[1]
end

-- every tensor of a safetensors file, as raw bytes by name
local function tensors(path)
  local t, meta = hs.io.load(path)
  assert(t, meta)
  local out = {}
  for k, v in pairs(t) do out[k] = v:contiguous():bytes() end
  return out, meta
end

local function same_weights(a, b, what)
  local ta, tb = tensors(a), tensors(b)
  local n = 0
  for k, v in pairs(ta) do
    assert(tb[k], what .. ": tensor " .. k .. " missing")
    assert(tb[k] == v, what .. ": tensor " .. k .. " differs from the uninterrupted run")
    n = n + 1
  end
  for k in pairs(tb) do assert(ta[k], what .. ": extra tensor " .. k) end
  assert(n > 4, what .. ": too few tensors compared")
end

local function same_results(ref_dir, dir, what)
  same_weights(ref_dir .. "/model.safetensors", dir .. "/model.safetensors", what)
  local a, b = json.decode(read(ref_dir .. "/run.json")), json.decode(read(dir .. "/run.json"))
  assert(#b.history == #a.history, what .. ": history length")
  for i, h in ipairs(a.history) do
    assert(b.history[i].train_loss == h.train_loss and b.history[i].macro_f1 == h.macro_f1,
      ("%s: epoch %d: train_loss %s / %s"):format(what, i, tostring(b.history[i].train_loss), tostring(h.train_loss)))
  end
  assert(b.metrics.accuracy == a.metrics.accuracy and b.metrics.best_epoch == a.metrics.best_epoch, what .. ": final metrics")
end

-- the git record of run id: readable by `histops show` and complete
local function check_record(id, status, what)
  local out, _, code = capture(("cd %s && %s%s show %s 2>&1"):format(q(repo), ENV, q(exe), q(id)))
  assert(code == 0, what .. ": histops show failed: " .. out)
  assert(out:find(status, 1, true), what .. ": record status is not " .. status .. ": " .. out)
  local ref = capture(("cd %s && git show refs/histops/runs/%s:run.json"):format(q(repo), id))
  local rec = json.decode(ref)
  assert(rec.id == id and rec.status == status, what .. ": run.json in the ref")
  return rec
end

local function no_temp_files(dir, what)
  for _, f in ipairs(hs.sys.listdir(dir) or {}) do
    assert(not f:find(".tmp.", 1, true), what .. ": temporary file left behind: " .. f)
  end
end

local t_start = hs.sys.clock()
local ok, err = pcall(function()
  -- the uninterrupted reference, stopped at its very end (kill point run-end) to keep its last
  -- checkpoint (weights, BN statistics, optimizer moments), then resumed to finish
  local ref_out = tmp .. "/ref"
  local code, e = run(ref_out, "", "HISTOPS_TEST_KILL_AT=run-end:1 ")
  local ref_dir, ref_id = only_dir(ref_out)
  assert(code == 137 and ref_dir and hs.sys.stat(ref_dir .. "/run.json"), "reference run failed: " .. e)
  local last_checkpoint = tensors(ref_dir .. "/checkpoint.safetensors")
  code, e = run(ref_out, "--resume " .. q(ref_dir))
  assert(code == 0, "reference run: resume after its end failed: " .. e)
  check_record(ref_id, "finished", "reference")
  local ref_time = hs.sys.clock() - t_start
  print(("reference run: %.1f s"):format(ref_time))

  -- a run resumed after one kill of each kind, then after seeded-random external kills
  local kills = {}
  -- external kills: once the checkpoint of epoch e is there (e = 0: once the run folder is), wait a
  -- seeded-random 0-150 ms, then SIGKILL from outside
  for e = 0, 2 do kills[#kills + 1] = ("external:%d:%.3f"):format(e, math.random() * 0.15) end
  for _, k in ipairs { "checkpoint-write:1", "atomic-write:" .. math.random(2, 5), "checkpoint-written:1",
    "record-write:2", "record-ref:2", "atomic-write:" .. math.random(2, 6) } do kills[#kills + 1] = k end
  local out = tmp .. "/crash"
  local dir, id
  local attempts, killed, compared = 0, 0, nil
  local function attempt(kill)
    attempts = attempts + 1
    assert(attempts < 40, "the run never finished")
    local resume = dir and hs.sys.stat(dir .. "/checkpoint.safetensors") and ("--resume " .. q(dir)) or ""
    if dir and resume == "" then os.execute("rm -rf " .. q(dir)); dir, id = nil, nil end  -- killed before its first checkpoint
    local stop = compared and "" or "run-end:1,"   -- stop at the end once, to compare the last checkpoint
    local ext = kill and kill:match("^external:(.*)$")
    local points = stop .. ((kill and not ext) and kill or "")
    local env = points ~= "" and ("HISTOPS_TEST_KILL_AT=" .. points .. " ") or ""
    local rc
    if ext then
      local pid = (capture(("cd %s; %s%s %s run quickstart.lua --quiet --out %s %s %s >/dev/null 2>&1 & echo $!")
        :format(q(repo), ENV, env, q(exe), q(out), SETS, resume)):gsub("%s+$", ""))
      bg_pid = pid
      local epoch, delay = ext:match("^(%d+):(.*)$")
      epoch, delay = tonumber(epoch), tonumber(delay)
      for _ = 1, 3000 do
        local d = only_dir(out)
        local ck = d and read(d .. "/checkpoint.json")
        local ok_ck, st = pcall(json.decode, ck or "")
        if d and (epoch == 0 or (ok_ck and type(st) == "table" and (st.epoch or 0) >= epoch)) then break end
        if not hs.sys.stat("/proc/" .. pid) then break end
        hs.sys.sleep(0.005)
      end
      hs.sys.sleep(delay)
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      for _ = 1, 500 do   -- gone, or a zombie (state Z) where nobody reaps it
        local st = read("/proc/" .. pid .. "/stat")
        if not st or st:match("^%d+ %b() (%a)") == "Z" then break end
        hs.sys.sleep(0.01)
      end
      bg_pid = nil
    else
      rc = run(out, resume, env)
    end
    dir, id = only_dir(out)
    local finished = dir and hs.sys.stat(dir .. "/run.json") and not hs.sys.stat(dir .. "/checkpoint.safetensors")
    if dir and hs.sys.stat(dir .. "/run.json") and hs.sys.stat(dir .. "/checkpoint.safetensors") and not compared then
      -- at its end (run-end kill): the last checkpoint equals the uninterrupted run's, bit for bit
      local got = tensors(dir .. "/checkpoint.safetensors")
      local n = 0
      for k, v in pairs(last_checkpoint) do
        assert(got[k] == v, ("last checkpoint: tensor %s differs from the uninterrupted run (seed %d)"):format(k, seed))
        n = n + 1
      end
      for k in pairs(got) do assert(last_checkpoint[k], "last checkpoint: extra tensor " .. k) end
      assert(n > 10, "last checkpoint: too few tensors")
      compared = n
    end
    if not (dir and hs.sys.stat(dir .. "/run.json")) then killed = killed + 1 end   -- not counting the stop at the end
    return rc or (finished and 0 or 137), finished
  end
  local finished
  for _, k in ipairs(kills) do
    local rc
    rc, finished = attempt(k)
    local ck = dir and read(dir .. "/checkpoint.json")
    print(("  kill %-22s -> exit %s, checkpoint after epoch %s"):format(k, tostring(rc),
      ck and tostring(json.decode(ck).epoch) or "-"))
    if dir and hs.sys.stat(dir .. "/checkpoint.safetensors") then  -- the checkpoint is complete and readable
      local _, meta = tensors(dir .. "/checkpoint.safetensors")
      assert(json.decode(meta.state).epoch >= 1, "checkpoint state after kill " .. k)
    end
    if dir and rc ~= 0 and id then  -- the record, if any, is readable (a running run whose process died)
      local rout = capture(("cd %s && git show refs/histops/runs/%s:run.json 2>/dev/null"):format(q(repo), id))
      if rout ~= "" then assert(json.decode(rout).id == id, "record after kill " .. k) end
    end
    if finished then break end
  end
  while not finished do
    local rc
    rc, finished = attempt(nil)
    assert(rc == 0 or rc == 137, "resume failed")
  end
  assert(compared, "the last checkpoint was never compared")
  assert(killed >= 7, ("only %d of the kills hit the run"):format(killed))
  no_temp_files(dir, "killed and resumed run")   -- temporary files of killed writes are cleaned up
  same_results(ref_dir, dir, ("run killed %d times (seed %d)"):format(killed, seed))
  local rec = check_record(id, "finished", "killed run")
  assert((rec.resumed or 0) >= 1 and #rec.history == 8, "record: resumed count and full history")
  print(("killed %d times in %d attempts (seed %d): identical final checkpoint (%d tensors incl. optimizer moments),"
    .. " weights and metrics; record complete"):format(killed, attempts, seed, compared))

  -- full disk, injected: the second epoch's writes fail
  local best_size = hs.sys.stat(ref_dir .. "/best.safetensors").size
  out = tmp .. "/full"
  code, e = run(out, "", ("HISTOPS_FAULT_WRITE_AFTER=%d "):format(best_size * 6))
  assert(code ~= 0, "a full disk must fail the run")
  assert(e:find("No space left on device", 1, true), "message: " .. e)
  assert(e:find(out, 1, true) and e:find("%.safetensors") or e:find("%.json"), "the message names the file: " .. e)
  dir, id = only_dir(out)
  no_temp_files(dir, "full disk")
  local _, meta = tensors(dir .. "/checkpoint.safetensors")
  local st = json.decode(meta.state)
  assert(st.epoch >= 1 and st.epoch < 8, "the previous checkpoint survives (epoch " .. tostring(st.epoch) .. ")")
  check_record(id, "failed", "full disk")
  code, e = run(out, "--resume " .. q(dir))
  assert(code == 0, "resume after freeing space: " .. e)
  same_results(ref_dir, dir, "run resumed after a full disk")
  print(("injected full disk after %d bytes: clean error, checkpoint of epoch %d kept, resumed to identical weights")
    :format(best_size * 6, st.epoch))

  -- full disk, real: a 64 KB tmpfs as the output folder (root only)
  local mnt = tmp .. "/tmpfs"
  assert(hs.sys.mkdir_p(mnt))
  if sh(("mount -t tmpfs -o size=64k tmpfs %s"):format(q(mnt))) then
    mounted = mnt
    code, e = run(mnt, "", "")
    assert(code ~= 0, "a run on a 64 KB file system must fail")
    assert(e:find("No space left on device", 1, true), "message: " .. e)
    assert(e:find(mnt, 1, true), "the message names the file: " .. e)
    dir = only_dir(mnt)
    if dir then no_temp_files(dir, "tmpfs") end
    sh("umount " .. q(mnt))
    mounted = nil
    print("real full disk (64 KB tmpfs): " .. e:match("[^\n]*No space left on device[^\n]*"))
  else
    print("SKIP real full disk: cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)")
  end
end)
cleanup()
if not ok then error(err, 0) end
print(("crash safety: ok (%.1f s)"):format(hs.sys.clock() - t_start))
