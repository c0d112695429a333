-- tests/lua/test_io.lua: hs.io (safetensors save/load/compare), hs.json, hs.sys, and the
-- reference runner `histops check-ref` end to end (a temporary folder of cases served by
-- lua/hs/ref/selftest.lua). Run: build/histops tests/lua/test_io.lua (exit status = verdict).
local hs = require "histops"
local io_, json, sys = hs.io, hs.json, hs.sys
assert(io_ and json and sys, "hs.io, hs.json and hs.sys must all be loaded")

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

local tmp = os.tmpname()
os.remove(tmp)
assert(sys.mkdir_p(tmp .. "/cases/sub"))
local created = {}
local function path(name)
  local p = tmp .. "/" .. name
  created[#created + 1] = p
  return p
end

local sh_quote = T.q

local ntests = 0
local function test(name, f)
  f()
  ntests = ntests + 1
  io.write("ok  ", name, "\n")
end

-- ------------------------------------------------------------------ hs.io

test("save/load round-trips every dtype, shape and metadata", function()
  local ts = {}
  for _, dt in ipairs { "f32", "f64", "i64", "i32", "u8", "u16" } do
    ts[dt] = hs.arange(0, 24, dt):reshape { 2, 3, 4 }
  end
  ts.neg = hs.tensor({ -1.5, 2 ^ 40, -0.0 }, "f64")
  -- exact 64-bit patterns (built from bytes: element get/set go through double)
  ts.big = hs.from_bytes(string.pack("<i8<i8", math.maxinteger, math.mininteger + 1), { 2 }, "i64")
  ts.scalar = hs.zeros({}, "f32"):fill(3.25)
  ts.empty = hs.zeros({ 0, 5 })
  ts.strided = hs.arange(0, 6):reshape { 2, 3 }:transpose()
  local p = path("all.safetensors")
  io_.save(p, ts, { op = "round_trip", n = 7, ["ü key"] = "ü value \"quoted\"\n" })
  local back, meta = io_.load(p)
  assert(meta.op == "round_trip" and meta.n == "7" and meta["ü key"] == "ü value \"quoted\"\n")
  local n = 0
  for name, t in pairs(ts) do
    n = n + 1
    local b = back[name]
    assert(b, "missing " .. name)
    assert(b:dtype() == t:dtype(), name)
    assert(table.concat(b:shape(), ",") == table.concat(t:shape(), ","), name)
    local max_abs, _, n_bad = io_.compare(b, t)
    assert(n_bad == 0 and max_abs == 0, name)
  end
  for _ in pairs(back) do n = n - 1 end
  assert(n == 0, "extra tensors loaded")
  assert(back.big:bytes() == string.pack("<i8<i8", math.maxinteger, math.mininteger + 1))
  assert(back.strided:is_contiguous() and back.strided:get(1, 2) == 3)
end)

test("load returns nil and a message for a missing or corrupt file", function()
  local t, msg = io_.load(tmp .. "/nope.safetensors")
  assert(t == nil and msg:find("nope.safetensors", 1, true) and msg:find("No such file"))
  local p = path("corrupt.safetensors")
  assert(sys.write_file_atomic(p, "\16\0\0\0\0\0\0\0{\"x\": [1, 2, 3]}"))
  t, msg = io_.load(p)
  assert(t == nil and msg:find("corrupt.safetensors", 1, true) and msg:find("'x'"), msg)
  t, msg = io_.load_bytes(("\255"):rep(8), "bytes")
  assert(t == nil and msg:find("absurd"), msg)
  -- every truncation of a valid file is refused with a message, never a crash
  local good = path("good.safetensors")
  io_.save(good, { w = hs.ones { 3 } }, { op = "x" })
  local bytes = assert(sys.read_file(good))
  assert(io_.load_bytes(bytes, "good").w:numel() == 3)
  for len = 0, #bytes - 1 do
    local r, m = io_.load_bytes(bytes:sub(1, len), "cut")
    assert(r == nil and type(m) == "string")
  end
end)

test("save raises on bad arguments and unwritable paths", function()
  check_error("tensor names must be strings", io_.save, path("x.safetensors"), { hs.ones { 1 } })
  check_error("entry 'a' is a number", io_.save, path("x.safetensors"), { a = 1 })
  check_error("metadata 'k' is a table", io_.save, path("x.safetensors"), { a = hs.ones { 1 } }, { k = {} })
  check_error("cannot create a temporary file", io_.save, tmp .. "/no/such/dir/x.safetensors", { a = hs.ones { 1 } })
  check_error("'__metadata__' cannot name a tensor", io_.save, path("x.safetensors"), { __metadata__ = hs.ones { 1 } })
end)

test("saved files have the byte layout Python's safetensors reads", function()
  local p = path("layout.safetensors")
  io_.save(p, { b = hs.tensor({ 1, 2 }), a = hs.tensor({ 7 }, "u8") }, { z = "1", op = "layout" })
  local s = assert(sys.read_file(p))
  local n = string.unpack("<I8", s)
  assert(n % 8 == 0 and #s == 8 + n + 1 + 8)
  local header = s:sub(9, 8 + n)
  assert(header:match("^{\"__metadata__\":{\"op\":\"layout\",\"z\":\"1\"},\"a\":{\"dtype\":\"U8\",\"shape\":%[1%]," ..
    "\"data_offsets\":%[0,1%]},\"b\":{\"dtype\":\"F32\",\"shape\":%[2%],\"data_offsets\":%[1,9%]}} *$"), header)
  local h = json.decode(header)
  assert(h.b.dtype == "F32" and h.b.data_offsets[2] == 9)
  assert(string.unpack("<f", s, 8 + n + 2) == 1.0)
end)

test("load reads the Python-written reference case", function()
  local ref = (os.getenv("HISTOPS_DATA") or "../shared/data") .. "/../reference/torch/linear.safetensors"
  if not sys.stat(ref) then ref = "/work/shared/reference/torch/linear.safetensors" end
  if not sys.stat(ref) then io.write("    (skipped: no reference folder)\n"); return end
  local t, meta = assert(io_.load(ref))
  assert(meta.op == "linear" and json.decode(meta.params).in_features == 10)
  assert(table.concat(t.weight:shape(), ",") == "6,10" and t.x:dtype() == "f32")
end)

test("compare reports max errors, the count and the first bad element", function()
  local want = hs.tensor { 1, 2, 3, 0 }
  local got = hs.tensor({ 1, 2.5, 3, 0 }, "f64")
  local max_abs, max_rel, n_bad, first, gv, wv = io_.compare(got, want, 0.1, 0)
  assert(max_abs == 0.5 and max_rel == 0.25 and n_bad == 1 and first == 2 and gv == 2.5 and wv == 2)
  max_abs, max_rel, n_bad, first = io_.compare(got, want, 0, 0.25)
  assert(n_bad == 0 and first == nil)
  -- any dtypes, compared in row-major order of each tensor (a transposed view included)
  local a = hs.arange(0, 6):reshape { 2, 3 }
  local at = a:transpose()
  _, _, n_bad = io_.compare(at:clone():astype("i32"), at:contiguous(), 0, 0)
  assert(n_bad == 0)
  _, _, n_bad, first = io_.compare(at, a:reshape { 3, 2 }, 0, 0)
  assert(n_bad == 4 and first == 2)
  -- NaN matches NaN only
  local nan = hs.tensor { 0 / 0, 1 }
  _, _, n_bad = io_.compare(nan, nan:clone(), 0, 0)
  assert(n_bad == 0)
  max_abs, _, n_bad, first = io_.compare(hs.tensor { 1, 1 }, nan, 1, 1)
  assert(n_bad == 1 and first == 1 and max_abs == math.huge)
  check_error("has 3 elements, want", io_.compare, hs.ones { 3 }, hs.ones { 4 })
end)

-- ------------------------------------------------------------------ hs.json

test("json encodes deterministically with sorted keys", function()
  local v = { z = 1, a = { 1, 2, 3.5 }, m = { b = true, a = json.null }, s = "q\"\\\n\t\1é" }
  assert(json.encode(v) == '{"a":[1,2,3.5],"m":{"a":null,"b":true},"s":"q\\"\\\\\\n\\t\\u0001é","z":1}',
    json.encode(v))
  assert(json.encode(v, { indent = true }) == [[
{
  "a": [
    1,
    2,
    3.5
  ],
  "m": {
    "a": null,
    "b": true
  },
  "s": "q\"\\\n\t\u0001é",
  "z": 1
}]])
  assert(json.encode({}) == "{}" and json.encode(json.array {}) == "[]")
  assert(json.encode(1.0) == "1.0" and json.encode(3) == "3" and json.encode(0.1) == "0.1")
  assert(json.encode(math.maxinteger) == "9223372036854775807")
  assert(json.encode(nil) == "null" and json.encode("x") == '"x"')
end)

test("json refuses what JSON cannot hold", function()
  check_error("NaN", json.encode, { x = 0 / 0 })
  check_error("inf", json.encode, { 1 / 0 })
  check_error("mixing keys", json.encode, { 1, 2, x = 3 })
  check_error("sparse", json.encode, { [1] = 1, [3] = 3 })
  check_error("boolean key", json.encode, { [true] = 1 })
  check_error("function", json.encode, { f = print })
  local cyc = {}
  cyc.self = cyc
  check_error("deeper than", json.encode, cyc)
end)

test("json decodes values, keeps integers integers and round-trips", function()
  local v = json.decode(' {"a": [1, -2, 3.0, 1e2, 12345678901234567], "b": null, "c": "\\u00e9\\ud83d\\ude00\\n",' ..
    ' "d": {}, "e": [], "f": false} ')
  assert(math.type(v.a[1]) == "integer" and v.a[2] == -2 and math.type(v.a[3]) == "float" and v.a[4] == 100.0)
  assert(v.a[5] == 12345678901234567 and math.type(v.a[5]) == "integer")
  assert(v.b == json.null and v.c == "é😀\n" and next(v.d) == nil and v.f == false)
  assert(json.encode(v.e) == "[]" and json.encode(v.d) == "{}")
  local s = '{"a":[1,-2,3.0,100.0,12345678901234567],"b":null,"c":"é😀\\n","d":{},"e":[],"f":false}'
  assert(json.encode(v) == s, json.encode(v))
  assert(json.encode(json.decode(s)) == s)
  assert(json.decode("[]")[1] == nil and json.decode('"x"') == "x" and json.decode("  7 ") == 7)
end)

test("json decode errors give nil and a position", function()
  local cases = {
    { '{"a": 1,}', "expected a string key at line 1 column 9" },
    { '[1, 2', "unterminated array" },
    { '{"a" 1}', "expected ':'" },
    { '[1]\n  x', "trailing characters after the JSON value at line 2 column 3" },
    { '"abc', "unterminated string" },
    { '"a\\qb"', "invalid escape" },
    { '[01]', "expected ',' or ']'" },
    { '[-]', "invalid number" },
    { '[1.]', "digit expected" },
    { '"\\ud800"', "unpaired UTF%-16 surrogate" },
    { '[tru]', "unexpected character" },
    { '', "unexpected end of input" },
    { ('['):rep(300), "nesting too deep" },
    { '"a\tb"', "control character" },
  }
  for _, c in ipairs(cases) do
    local v, msg = json.decode(c[1])
    assert(v == nil and msg:find(c[2]), ("%q: %s"):format(c[1], tostring(msg)))
    assert(msg:find("^json: "))
  end
end)

-- ------------------------------------------------------------------ hs.sys

test("sys: versions, clocks, process and machine facts", function()
  local v = sys.versions()
  assert(v.openblas:find("OpenBLAS") and v.lua:find("Lua 5.4") and v.cjson and v.libgit2 and v.histops)
  local t0, c0 = sys.time(), sys.clock()
  assert(t0 > 1.6e9 and math.type(t0) == "float")
  sys.sleep(0.02)
  local dc = sys.clock() - c0
  assert(dc >= 0.015 and dc < 5, dc)
  assert(sys.getenv("HOME") == os.getenv("HOME") and sys.getenv("HS_SURELY_UNSET_VAR") == nil)
  assert(#sys.hostname() > 0 and sys.pid() > 0 and sys.nproc() >= 1 and #sys.cpu_model() > 0)
  assert(sys.rss_peak() > 1e6 and type(sys.isatty(1)) == "boolean")
  assert(sys.stat(sys.exe()).type == "file")
  local n, nb = sys.get_threads()
  sys.set_threads(1)
  assert(sys.get_threads() == 1 and select(2, sys.get_threads()) == 1)
  sys.set_threads(n)
  assert(sys.get_threads() == n and nb >= 1)
  check_error("thread count", sys.set_threads, 0)
end)

test("sys: files, folders and hashes", function()
  local d = tmp .. "/a/b/c"
  assert(sys.mkdir_p(d) and sys.mkdir_p(d))
  assert(sys.stat(d).type == "dir")
  local f = d .. "/x.txt"
  assert(sys.write_file_atomic(f, "hello\0world"))
  assert(sys.read_file(f) == "hello\0world" and sys.stat(f).size == 11 and sys.stat(f).type == "file")
  assert(sys.write_file_atomic(f, "abc"))
  assert(sys.read_file(f) == "abc")
  assert(sys.sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  assert(sys.sha256("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  assert(sys.sha256_file(f) == sys.sha256("abc"))
  local big = ("0123456789"):rep(20000)
  assert(sys.write_file_atomic(d .. "/big", big) and sys.sha256_file(d .. "/big") == sys.sha256(big))
  assert(sys.write_file_atomic(d .. "/0first", ""))
  local names = sys.listdir(d)
  assert(#names == 3 and names[1] == "0first" and names[2] == "big" and names[3] == "x.txt")
  local r, msg = sys.read_file(d .. "/nope")
  assert(r == nil and msg:find("nope"))
  r, msg = sys.listdir(d .. "/nope")
  assert(r == nil and msg:find("nope"))
  r, msg = sys.sha256_file(d .. "/nope")
  assert(r == nil and msg:find("nope"))
  assert(sys.stat(d .. "/nope") == nil)
  r, msg = sys.mkdir_p(f .. "/under_a_file")
  assert(r == nil and msg:find("under_a_file"))
  r, msg = sys.write_file_atomic(tmp .. "/no/such/x", "y")
  assert(r == nil and msg:find("no/such"))
  for _, n in ipairs { "0first", "big", "x.txt" } do os.remove(d .. "/" .. n) end
  os.remove(tmp .. "/a/b/c"); os.remove(tmp .. "/a/b"); os.remove(tmp .. "/a")
end)

-- ------------------------------------------------------------------ check-ref end to end

-- A private Lua folder for the runner: the real hs/ modules, but only selftest.lua in hs/ref, so
-- handler modules other engineers add (and their dependencies) cannot change these results.
local luadir = tmp .. "/lua"
do
  local real_hs = assert(package.searchpath("hs.cli", package.path)):gsub("/cli%.lua$", "")
  assert(sys.mkdir_p(luadir .. "/hs/ref"))
  for _, n in ipairs(assert(sys.listdir(real_hs))) do
    if n ~= "ref" then assert(os.execute("ln -s " .. sh_quote(real_hs .. "/" .. n) .. " " .. sh_quote(luadir .. "/hs/" .. n))) end
  end
  assert(os.execute("ln -s " .. sh_quote(real_hs .. "/ref/selftest.lua") .. " " .. sh_quote(luadir .. "/hs/ref/selftest.lua")))
end

local function run_check_ref(...)
  local cmd = "HISTOPS_LUA_DIR=" .. sh_quote(luadir) .. " " .. sh_quote(sys.exe()) .. " check-ref"
  for _, a in ipairs { ... } do cmd = cmd .. " " .. sh_quote(a) end
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

test("check-ref reports PASS, FAIL and SKIP lines, the summary and the exit code", function()
  local d = tmp .. "/cases"
  local x = hs.tensor { { 1, 2, 3 }, { 4, 5, 6 } }
  local bad = x:clone():set(2, 2, 5.5)
  io_.save(d .. "/a_pass.safetensors", { x = x, out = x:clone() }, { op = "identity_selftest", params = "{}" })
  io_.save(d .. "/b_fail.safetensors", { x = x, out = bad }, { op = "identity_selftest", params = '{"tol": "forward"}' })
  io_.save(d .. "/c_unknown.safetensors", { x = x }, { op = "no_such_op_selftest" })
  io_.save(d .. "/d_error.safetensors", { x = x }, { op = "error_selftest" })
  io_.save(d .. "/e_skip.safetensors", { x = x }, { op = "skip_selftest" })
  io_.save(d .. "/sub/f_nested.safetensors", { x = x, out = x:astype("i64") }, { op = "identity_selftest" })
  io_.save(d .. "/h_badparams.safetensors", { x = x }, { op = "identity_selftest", params = "{oops" })
  assert(sys.write_file_atomic(d .. "/g_corrupt.safetensors", "not a safetensors file"))
  assert(sys.write_file_atomic(d .. "/README.md", "ignored: not a case"))

  local out, code = run_check_ref(d)
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  local function line(case)
    for _, l in ipairs(lines) do
      if l:find("  " .. case .. " ", 1, true) then return l end
    end
    error("no line for " .. case .. " in:\n" .. out)
  end
  assert(code == 1, out)
  assert(line("a_pass"):match("^PASS  a_pass +identity_selftest  max_abs=0  max_rel=0$"), line("a_pass"))
  assert(line("b_fail"):match("^FAIL  b_fail +identity_selftest  max_abs=0.5  max_rel=0.0909  " ..
    "out%[2,2%]: got 5 want 5.5 %(1 of 6 bad, tol forward%)$"), line("b_fail"))
  assert(line("c_unknown"):match("^SKIP  c_unknown +no_such_op_selftest  op 'no_such_op_selftest' not implemented yet$"))
  assert(line("d_error"):match("^FAIL  d_error +error_selftest  error: .*deliberate failure in d_error$"), line("d_error"))
  assert(line("e_skip"):match("^SKIP  e_skip +skip_selftest  skipped on purpose$"))
  assert(line("f_nested"):match("^PASS  f_nested"))
  assert(line("g_corrupt"):match("^FAIL  g_corrupt +%?  cannot load: .*g_corrupt.safetensors"))
  assert(line("h_badparams"):match("^FAIL  h_badparams +identity_selftest  params are not valid JSON"))
  assert(lines[#lines] == "2 passed, 4 failed, 2 skipped", lines[#lines])
  assert(#lines == 9, out)

  out, code = run_check_ref(d .. "/a_pass.safetensors", d .. "/sub", "--verbose")
  assert(code == 0 and out:find("\n      out +exact +max_abs=0  max_rel=0  n_bad=0/6\n"), out)
  assert(out:match("\n2 passed, 0 failed, 0 skipped\n$"), out)
  out, code = run_check_ref(d, "--filter", "skip")
  assert(code == 0 and out:match("^SKIP  e_skip[^\n]*\n0 passed, 0 failed, 1 skipped\n$"), out)
  out, code = run_check_ref(d, "--filter=no_such_op")  -- filters on the op as well as the name
  assert(code == 0 and out:find("c_unknown") and out:find("0 passed, 0 failed, 1 skipped"), out)
  out, code = run_check_ref(d .. "/missing")
  assert(code == 2 and out:find("no such file or folder"), out)
  out, code = run_check_ref(d, "--filter", "zzz")
  assert(code == 2 and out:find("no case matches"), out)
  assert(sys.mkdir_p(tmp .. "/empty"))
  out, code = run_check_ref(tmp .. "/empty")
  assert(code == 2 and out:find("no %*.safetensors case found"), out)
  os.remove(tmp .. "/empty")
  out, code = run_check_ref()
  assert(code == 2 and out:find("no PATH given"), out)
  out, code = run_check_ref(d, "--bogus")
  assert(code == 2 and out:find("unknown option"), out)
  -- a handler module that fails to load is a failure of its own; the other cases still run
  assert(sys.write_file_atomic(luadir .. "/hs/ref/zz_broken.lua", "error('boom: missing dependency')"))
  out, code = run_check_ref(d, "--filter", "a_pass")
  os.remove(luadir .. "/hs/ref/zz_broken.lua")
  assert(code == 1 and out:match("^FAIL  hs.ref.zz_broken  %(handler module%)  failed to load: .*boom: missing dependency\n" ..
    "PASS  a_pass[^\n]*\n1 passed, 1 failed, 0 skipped\n$"), out)
  for _, f in ipairs { "a_pass", "b_fail", "c_unknown", "d_error", "e_skip", "g_corrupt", "h_badparams" } do
    os.remove(d .. "/" .. f .. ".safetensors")
  end
  os.remove(d .. "/README.md")
  os.remove(d .. "/sub/f_nested.safetensors")
end)

test("check-ref refuses two handler modules serving one op", function()
  local check_ref = require "hs.cmd.check_ref"
  local handlers, owner = assert(check_ref.load_handlers())
  assert(owner.identity_selftest == "hs.ref.selftest" and type(handlers.skip_selftest) == "function")
  -- a second module serving identity_selftest, found through a private copy of the ref folder
  local root = tmp .. "/luadir"
  assert(sys.mkdir_p(root .. "/hs/ref"))
  assert(sys.write_file_atomic(root .. "/hs/cli.lua", "return {}"))
  assert(sys.write_file_atomic(root .. "/hs/ref/a_first.lua", "return { identity_selftest = function() end }"))
  assert(sys.write_file_atomic(root .. "/hs/ref/b_second.lua", "return { identity_selftest = function() end }"))
  local saved_path = package.path
  package.path = root .. "/?.lua;" .. saved_path
  local saved = { package.loaded["hs.ref.a_first"], package.loaded["hs.ref.b_second"] }
  local h, err = check_ref.load_handlers()
  package.path = saved_path
  package.loaded["hs.ref.a_first"], package.loaded["hs.ref.b_second"] = saved[1], saved[2]
  assert(h == nil and err:find("op 'identity_selftest' is served by both hs.ref.a_first and hs.ref.b_second"), err)
  for _, f in ipairs { "hs/ref/a_first.lua", "hs/ref/b_second.lua", "hs/cli.lua" } do os.remove(root .. "/" .. f) end
  os.remove(root .. "/hs/ref"); os.remove(root .. "/hs"); os.remove(root)
end)

-- ------------------------------------------------------------------ cleanup

for _, n in ipairs(assert(sys.listdir(luadir .. "/hs"))) do
  if n ~= "ref" then os.remove(luadir .. "/hs/" .. n) end
end
os.remove(luadir .. "/hs/ref/selftest.lua"); os.remove(luadir .. "/hs/ref"); os.remove(luadir .. "/hs"); os.remove(luadir)

for _, p in ipairs(created) do os.remove(p) end
os.remove(tmp .. "/cases/sub")
os.remove(tmp .. "/cases")
assert(os.remove(tmp), "temporary folder not empty: " .. tmp)
io.write(("%d passed, 0 failed\n"):format(ntests))
