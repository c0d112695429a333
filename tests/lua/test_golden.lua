-- tests/lua/test_golden.lua: the golden-output regression tests. First the golden file format and
-- the checker (round trips, corrupt files, version/shape mismatches that must print the update
-- command, update reporting what changed), then every case of golden/cases.lua against the
-- committed golden/*.bin, and the cases' determinism: bit-identical with 1 and 2 threads.
-- Run: build/histops tests/lua/test_golden.lua
local hs = require "histops"
local golden = require "hs.golden"

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

local tmp = T.tmpdir("golden")
local sh = T.sh
local null = io.open("/dev/null", "w")

local ok_all, err_all = pcall(function()
  -- format round trip for every dtype, values and shapes preserved exactly
  for _, dt in ipairs { "f32", "f64", "i64", "i32", "u8", "u16" } do
    local t = hs.arange(24):reshape({ 2, 3, 4 }):astype(dt)
    local s = golden.encode(t)
    assert(s:sub(1, 8) == "HSGOLDEN" and #s == 24 + 3 * 8 + 24 * ({ f32 = 4, f64 = 8, i64 = 8, i32 = 4, u8 = 1, u16 = 2 })[dt])
    local r = assert(golden.decode(s))
    assert(r.version == golden.VERSION and r.dtype == dt and golden.shape_str(r.shape) == "2x3x4")
    assert(r.tensor:dtype() == dt and r.tensor:equal(t), dt)
  end
  local x = hs.randn({ 5, 7 }, 3)
  local xs = golden.encode(x:transpose())      -- non-contiguous input is stored row-major
  assert(golden.decode(xs).tensor:equal(x:transpose():contiguous()))
  assert(select(2, string.unpack("<I4I4I4", xs, 9)) == 1)  -- dtype code 1 = f32, little-endian header
  check_error("scalar", golden.encode, hs.zeros({}))

  -- corrupt files: bad magic, other version, truncated data
  local d, msg = golden.decode("not a golden file at all, really")
  assert(d == nil and msg:find("bad magic"), msg)
  local v2 = "HSGOLDEN" .. string.pack("<I4", 2) .. xs:sub(13)
  local d2, msg2, info2 = golden.decode(v2, "x.bin")
  assert(d2 == nil and msg2:find("format version 2") and info2.version == 2, msg2)
  local d3, msg3 = golden.decode(xs:sub(1, -2), "x.bin")
  assert(d3 == nil and msg3:find("truncated"), msg3)

  -- compare: atol + rtol*|want|, first bad element, exact for integers
  local w = hs.tensor { 1, 2, 100 }
  assert(golden.compare(hs.tensor { 1, 2.00001, 100.001 }, w, { atol = 1e-4, rtol = 1e-4 }))
  local okc, det = golden.compare(hs.tensor { 1, 2.1, 100 }, w, { atol = 1e-4, rtol = 1e-4 })
  assert(not okc and det.bad == 1 and det.first.index == 2 and math.abs(det.max_abs - 0.1) < 1e-6)
  assert(not golden.compare(hs.tensor({ 1, 2, 4 }, "i64"), hs.tensor({ 1, 2, 3 }, "i64"), nil))
  assert(not golden.compare(hs.tensor { 0 / 0 }, hs.tensor { 1 }, { atol = 1 }))

  -- the checker on a scratch set of cases: ok, value drift, shape change, version change, missing
  local dir = tmp .. "/g"
  assert(hs.sys.mkdir_p(dir))
  local f = assert(io.open(dir .. "/cases.lua", "w"))
  f:write([[
local hs = require "histops"
local scale = tonumber(os.getenv("HS_TEST_GOLDEN_SCALE") or "1")
local n = tonumber(os.getenv("HS_TEST_GOLDEN_N") or "4")
return { cases = {
  { name = "ramp", tol = { atol = 1e-6, rtol = 1e-6 }, compute = function() return hs.arange(n):astype("f32"):mul(scale) end },
  { name = "ints", compute = function() return hs.tensor({ 1, 2, 3 }, "i64") end },
} }
]])
  f:close()
  golden.update { dir = dir, out = null }
  local res, all = golden.check { dir = dir }
  assert(all and #res == 2 and res[1].status == "ok" and res[2].status == "ok")
  -- stale files are removed by update, reported as such
  assert(io.open(dir .. "/stale.bin", "w")):close()
  local ch = golden.update { dir = dir, out = null }
  assert(#ch == 1 and ch[1].name == "stale" and not hs.sys.stat(dir .. "/stale.bin"))

  local function check_with(env)
    local cmd = ("%s %s golden check --dir %s > %s/out.txt 2>&1"):format(env, hs.sys.exe(), dir, tmp)
    local okx, _, code = os.execute(cmd)
    return okx and 0 or code, hs.sys.read_file(tmp .. "/out.txt")
  end
  local code, out = check_with("HS_TEST_GOLDEN_SCALE=1.001")
  assert(code == 1 and out:find("ramp%s+fail") and out:find("golden%-update") and out:find("first at element 2"), out)
  code, out = check_with("HS_TEST_GOLDEN_N=5")
  assert(code == 1 and out:find("ramp%s+mismatch") and out:find("golden is f32 4, computed f32 5", 1, true)
    and out:find("cmake --build build --target golden-update", 1, true), out)
  code, out = check_with("")
  assert(code == 0 and out:find("2 passed, 0 failed"), out)
  local bin = assert(hs.sys.read_file(dir .. "/ints.bin"))
  assert(hs.sys.write_file_atomic(dir .. "/ints.bin", "HSGOLDEN" .. string.pack("<I4", 9) .. bin:sub(13)))
  code, out = check_with("")
  assert(code == 1 and out:find("ints%s+mismatch") and out:find("format version 9") and out:find("golden-update", 1, true), out)
  os.remove(dir .. "/ints.bin")
  code, out = check_with("")
  assert(code == 1 and out:find("ints%s+missing") and out:find("golden-update", 1, true), out)
  -- update prints what changed and rewrites only what changed
  local buf = {}
  local sink = { write = function(_, ...) for _, s in ipairs { ... } do buf[#buf + 1] = s end end }
  golden.update { dir = dir, out = sink }
  local text = table.concat(buf)
  assert(text:find("ramp%s+unchanged") and text:find("ints%s+new: i64 3"), text)

  -- the committed golden files: every case passes
  local results, pass = golden.check {}
  local lines = {}
  for _, r in ipairs(results) do lines[#lines + 1] = ("  %-28s %-8s %s"):format(r.name, r.status, r.message) end
  assert(pass, "golden cases failed:\n" .. table.concat(lines, "\n"))
  assert(#results >= 9, "expected at least 9 golden cases")
  local total = 0
  for _, name in ipairs(hs.sys.listdir(golden.default_dir())) do
    if name:match("%.bin$") then
      local sz = hs.sys.stat(golden.default_dir() .. "/" .. name).size
      assert(sz <= 100 * 1024, name .. " is over 100 KB")
      total = total + sz
    end
  end
  assert(total <= 1024 * 1024, "golden files total over 1 MB")

  -- determinism: every case bit-identical in fresh processes with 1 and 2 threads
  local outs = {}
  for _, n in ipairs { 1, 2 } do
    local gdir = ("%s/t%d"):format(tmp, n)
    assert(hs.sys.mkdir_p(gdir))
    sh(("cp '%s/cases.lua' '%s/' && HISTOPS_THREADS=%d '%s' golden update --dir '%s' > /dev/null")
      :format(golden.default_dir(), gdir, n, hs.sys.exe(), gdir))
    outs[n] = gdir
  end
  for _, r in ipairs(results) do
    local a = hs.sys.read_file(outs[1] .. "/" .. r.name .. ".bin")
    local b = hs.sys.read_file(outs[2] .. "/" .. r.name .. ".bin")
    assert(a and a == b, r.name .. ": results differ between 1 and 2 threads")
  end
end)

null:close()
os.execute("rm -rf '" .. tmp .. "'")
if not ok_all then error(err_all, 0) end
print("test_golden.lua: ok")
