-- tests/lua/test_fetch_data.lua: scripts/fetch-data without the network: archives made here and
-- given as file:// URLs with their SHA-256 (on the command line, in a SHA256SUMS file, in a
-- manifest); a corrupt download, a corrupt file inside, a missing hash and a failed download all
-- fail with a clear message and leave nothing behind; --force replaces atomically; the DSB
-- mask-merging step. Run: build/histops tests/lua/test_fetch_data.lua
local hs = require "histops"
local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local capture, read, write, q, sh = T.capture, T.read, T.write, T.q, T.sh

local script = T.top .. "/scripts/fetch-data"
local tmp = T.tmpdir("fetch")
local data = tmp .. "/data"

-- fetch-data ARGS with HISTOPS_DATA=tmp/data -> exit code, stderr
local function fetch(args, env)
  local errf = tmp .. "/stderr.txt"
  local _, _, code = capture(("HISTOPS_DATA=%s HISTOPS_BIN=%s %s bash %s %s >/dev/null 2>%s")
    :format(q(data), q(hs.sys.exe()), env or "", q(script), args, q(errf)))
  return code, read(errf) or ""
end

local function sha(path) return (assert(hs.sys.sha256_file(path))) end
local function leftovers()   -- temporary folders of fetch-data in the data root
  local n = 0
  for _, f in ipairs(hs.sys.listdir(data) or {}) do if f:match("^%.fetch%-") then n = n + 1 end end
  return n
end

-- a class-folder data set inside a top-level folder, with a SHA256SUMS of its files
local function make_set(root, seed)
  for ci, c in ipairs { "neg", "pos" } do
    assert(hs.sys.mkdir_p(root .. "/" .. c))
    for i = 1, 3 do
      local rgb = hs.synth.ihc { width = 16, height = 16, nuclei = 2, seed = seed + 10 * ci + i }
      assert(hs.image.save(("%s/%s/%d.png"):format(root, c, i), rgb))
    end
  end
  sh(("cd %s && find . -type f ! -name SHA256SUMS | sort | sed 's|^\\./||' | xargs sha256sum > SHA256SUMS"):format(q(root)))
end

local ok_all, err_all = pcall(function()
  local src = tmp .. "/src"
  make_set(src .. "/toy-1.0", 1)
  sh(("cd %s && tar czf ../toy.tar.gz toy-1.0"):format(q(src)))
  local arch = tmp .. "/toy.tar.gz"
  local h = sha(arch)

  -- 1. install from a file:// URL with --sha256: the top-level folder becomes the data set
  local code, err = fetch(("toy --url file://%s --sha256 %s"):format(q(arch), h))
  assert(code == 0, "fetch failed: " .. err)
  assert(err:find("SHA-256 ok", 1, true) and err:find("SHA256SUMS ok", 1, true), err)
  assert(read(data .. "/toy/pos/2.png") == read(src .. "/toy-1.0/pos/2.png"), "files installed byte for byte")
  assert(read(data .. "/toy/.fetched"):find(h, 1, true), "provenance recorded")
  local ds = require("hs.data").folder(data .. "/toy")
  assert(#ds.classes == 2 and #ds.items == 6, "an installed folder data set")
  assert(leftovers() == 0, "no temporary folder left")
  -- already there: nothing to do
  code, err = fetch(("toy --url file://%s --sha256 %s"):format(q(arch), h))
  assert(code == 0 and err:find("already present", 1, true), err)

  -- 2. a corrupt download: SHA-256 mismatch, nothing installed
  local bytes = read(arch)
  local bad = tmp .. "/bad.tar.gz"
  write(bad, bytes:sub(1, 100) .. string.char((bytes:byte(101) + 1) % 256) .. bytes:sub(102))
  code, err = fetch(("toy2 --url file://%s --sha256 %s"):format(q(bad), h))
  assert(code == 1, "a corrupt download must fail")
  assert(err:find("SHA-256 mismatch", 1, true) and err:find("expected " .. h, 1, true) and err:find("nothing installed", 1, true), err)
  assert(not hs.sys.stat(data .. "/toy2") and leftovers() == 0, "no partial data set")
  -- a truncated download, with the hash in upper case
  write(bad, bytes:sub(1, #bytes // 2))
  code, err = fetch(("toy2 --url file://%s --sha256 %s"):format(q(bad), h:upper()))
  assert(code == 1 and err:find("mismatch", 1, true) and not hs.sys.stat(data .. "/toy2"), err)

  -- 3. the archive hash matches, but a file inside does not match the set's SHA256SUMS
  make_set(src .. "/toy-2.0", 2)
  local f = src .. "/toy-2.0/neg/1.png"
  local fb = read(f)
  write(f, fb:sub(1, #fb - 1) .. string.char((fb:byte(#fb) + 1) % 256))
  sh(("cd %s && tar czf ../toy2.tar.gz toy-2.0"):format(q(src)))
  code, err = fetch(("toy2 --url file://%s --sha256 %s"):format(q(tmp .. "/toy2.tar.gz"), sha(tmp .. "/toy2.tar.gz")))
  assert(code == 1 and err:find("SHA256SUMS check failed", 1, true) and err:find("neg/1.png", 1, true), err)
  assert(not hs.sys.stat(data .. "/toy2") and leftovers() == 0, "no partial data set")

  -- 4. no hash anywhere: stops and prints the hash it got
  code, err = fetch(("toy3 --url file://%s"):format(q(arch)))
  assert(code == 1 and err:find("no pinned SHA-256", 1, true) and err:find(h, 1, true), err)
  assert(not hs.sys.stat(data .. "/toy3"))
  -- the hash from a SHA256SUMS file next to the archive
  write(tmp .. "/SHA256SUMS", ("%s  toy.tar.gz\n%s  other.tar.gz\n"):format(h, ("0"):rep(64)))
  code, err = fetch(("toy3 --url file://%s --sums file://%s"):format(q(arch), q(tmp .. "/SHA256SUMS")))
  assert(code == 0 and hs.sys.stat(data .. "/toy3/neg/1.png"), err)
  write(tmp .. "/SHA256SUMS", ("%s  toy.tar.gz\n"):format(("f"):rep(64)))
  code, err = fetch(("toy4 --url file://%s --sums file://%s"):format(q(arch), q(tmp .. "/SHA256SUMS")))
  assert(code == 1 and err:find("mismatch", 1, true) and not hs.sys.stat(data .. "/toy4"), err)

  -- 5. a failed download, an unknown name, bad arguments
  code, err = fetch(("toy5 --url file://%s/nope.tar.gz --sha256 %s"):format(q(tmp), h))
  assert(code == 1 and err:find("download of", 1, true) and not hs.sys.stat(data .. "/toy5") and leftovers() == 0, err)
  code, err = fetch("no_such_set")
  assert(code == 1 and err:find("unknown data set 'no_such_set'", 1, true) and err:find("pbc2020_blood_cells", 1, true), err)
  code, err = fetch(("toy6 --url file://%s --sha256 1234"):format(q(arch)))
  assert(code == 1 and err:find("64 hex digits", 1, true), err)
  code = fetch("")
  assert(code == 2, "usage")

  -- 6. --force replaces an installed set in one rename
  code, err = fetch(("toy --force --url file://%s --sha256 %s"):format(q(tmp .. "/toy2.tar.gz"), sha(tmp .. "/toy2.tar.gz")))
  assert(code == 1 and read(data .. "/toy/pos/2.png") == read(src .. "/toy-1.0/pos/2.png"), "a failed --force keeps the old set")
  make_set(src .. "/toy-3.0", 3)
  sh(("cd %s && tar czf ../toy3.tar.gz toy-3.0"):format(q(src)))
  code, err = fetch(("toy --force --url file://%s --sha256 %s"):format(q(tmp .. "/toy3.tar.gz"), sha(tmp .. "/toy3.tar.gz")))
  assert(code == 0 and read(data .. "/toy/pos/2.png") == read(src .. "/toy-3.0/pos/2.png"), err)
  assert(leftovers() == 0)

  -- 7. a manifest entry with a map (a sub-folder of the archive), and --list
  local man = tmp .. "/datasets.txt"
  write(man, ("# test manifest\nmapped url=file://%s sha256=%s map=*/pos:positive,*/neg:negative\nunpinned url=file://%s sha256=-\n")
    :format(arch, h, arch))
  code, err = fetch(("mapped --manifest %s"):format(q(man)))
  assert(code == 0, err)
  assert(hs.sys.stat(data .. "/mapped/positive/1.png") and hs.sys.stat(data .. "/mapped/negative/3.png"), "mapped folders")
  assert(not hs.sys.stat(data .. "/mapped/SHA256SUMS"), "only the mapped parts are installed")
  code, err = fetch(("unpinned --manifest %s"):format(q(man)))
  assert(code == 1 and err:find("no pinned SHA-256", 1, true), err)
  code, err = fetch(("bad --manifest %s --url file://%s --sha256 %s --map '*/nothere:.'"):format(q(man), q(arch), h))
  assert(code == 1 and err:find("nothere is not in the archive", 1, true) and not hs.sys.stat(data .. "/bad"), err)
  local out = capture(("HISTOPS_DATA=%s bash %s --list --manifest %s"):format(q(data), q(script), q(man)))
  assert(out:find("mapped%s+installed") and out:find("unpinned%s+missing"), out)
  out = capture(("HISTOPS_DATA=%s bash %s --list"):format(q(data), q(script)))
  for _, n in ipairs { "pbc2020_blood_cells", "kather2016_crc_tiles", "dsb2018_nuclei", "isbi2012_em_membranes" } do
    assert(out:find(n, 1, true), "datasets.txt lists " .. n)
  end

  -- 8. a zip archive
  if os.execute("command -v zip >/dev/null 2>&1") and os.execute("command -v unzip >/dev/null 2>&1") then
    sh(("cd %s && zip -qr ../toy.zip toy-1.0"):format(q(src)))
    code, err = fetch(("toyzip --url file://%s --sha256 %s"):format(q(tmp .. "/toy.zip"), sha(tmp .. "/toy.zip")))
    assert(code == 0 and hs.sys.stat(data .. "/toyzip/neg/2.png"), err)
  end

  -- 9. DSB 2018 layout: one folder per sample, one mask PNG per nucleus -> pairs folder
  local dsb = src .. "/fixes-abc/stage1_train"
  for s = 1, 2 do
    local id = ("%064x"):format(s)
    assert(hs.sys.mkdir_p(("%s/%s/images"):format(dsb, id)) and hs.sys.mkdir_p(("%s/%s/masks"):format(dsb, id)))
    local rgba = hs.full({ 12, 10, 4 }, 255, "u8")
    rgba:narrow(3, 1, 3):copy(hs.synth.ihc { width = 10, height = 12, nuclei = 1, seed = s }:astype("u8"))
    assert(hs.image.save(("%s/%s/images/%s.png"):format(dsb, id, id), rgba))
    for k = 1, 2 do
      local m = hs.zeros({ 12, 10 }, "u8")
      m:narrow(1, 2 + 4 * (k - 1), 3):narrow(2, 2 + s, 3):fill(255)
      assert(hs.image.save(("%s/%s/masks/n%d.png"):format(dsb, id, k), m))
    end
  end
  sh(("cd %s && tar czf ../dsb.tar.gz fixes-abc"):format(q(src)))
  code, err = fetch(("dsb2018_nuclei --url file://%s --sha256 %s"):format(q(tmp .. "/dsb.tar.gz"), sha(tmp .. "/dsb.tar.gz")))
  assert(code == 0, "dsb: " .. err)
  local id1 = ("%064x"):format(1)
  local img = assert(hs.image.load(data .. "/dsb2018_nuclei/images/" .. id1 .. ".png"))
  assert(img:shape()[3] == 3 and img:shape()[1] == 12, "RGBA -> RGB")
  local mask = assert(hs.image.load(data .. "/dsb2018_nuclei/masks/" .. id1 .. ".png"))
  assert(mask:astype("f32"):sum():item() == 2 * 9 * 255, "the two nucleus masks merged")
  local pairs_ds = require("hs.data").pairs(data .. "/dsb2018_nuclei")
  assert(#pairs_ds.items == 2 and not hs.sys.stat(data .. "/dsb2018_nuclei/stage1_train"))
end)

if ok_all then os.execute("rm -rf " .. q(tmp)) end
if not ok_all then
  io.stderr:write("test_fetch_data: FAILED (files kept in ", tmp, ")\n", tostring(err_all), "\n")
  os.exit(1)
end
print("test_fetch_data: ok")
