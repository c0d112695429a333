-- lua/hs/golden.lua: golden-output regression tests: the golden file format (reader and writer),
-- the comparison with per-case tolerances, and the check / update drivers behind
-- `histops golden check|update` and tests/lua/test_golden.lua. The cases themselves (what is
-- computed, with which tolerance) live in golden/cases.lua; golden/README.md documents the format.
-- Checking never writes; updating is an explicit command that prints what changed.
--
-- File format (golden/<case>.bin), all little-endian:
--   offset 0   8 bytes  magic "HSGOLDEN"
--          8   u32      format version (M.VERSION)
--         12   u32      dtype code: 1 f32, 2 f64, 3 i64, 4 i32, 5 u8, 6 u16
--         16   u32      ndim (1..8)
--         20   u32      reserved, 0
--         24   i64 x ndim  shape, outermost first
--         ..   data     prod(shape) elements, row-major
local hs = require "histops"

local M = {}

M.VERSION = 1
M.MAGIC = "HSGOLDEN"
M.UPDATE_COMMAND = "cmake --build build --target golden-update"

local CODES = { f32 = 1, f64 = 2, i64 = 3, i32 = 4, u8 = 5, u16 = 6 }
local NAMES, SIZES = {}, { f32 = 4, f64 = 8, i64 = 8, i32 = 4, u8 = 1, u16 = 2 }
local PACK = { f32 = "<f", f64 = "<d", i64 = "<i8", i32 = "<i4", u8 = "<I1", u16 = "<I2" }
for k, v in pairs(CODES) do NAMES[v] = k end

local LITTLE = string.pack("=i4", 1):byte(1) == 1

local function shape_str(s) return #s == 0 and "scalar" or table.concat(s, "x") end
M.shape_str = shape_str

-- bytes of a tensor's elements, little-endian, row-major
local function le_bytes(t)
  t = t:contiguous()
  if LITTLE then return t:bytes() end
  local dt, out = t:dtype(), {}
  local flat = t:reshape({ t:numel() }):tolist()
  for i, v in ipairs(flat) do out[i] = string.pack(PACK[dt], v) end
  return table.concat(out)
end

function M.encode(t)
  local dt = t:dtype()
  local code = CODES[dt]
  if not code then error(("golden: dtype %s cannot be stored"):format(tostring(dt)), 2) end
  local shape = t:shape()
  if #shape == 0 then error("golden: store a scalar as shape {1}", 2) end
  local parts = { M.MAGIC, string.pack("<I4I4I4I4", M.VERSION, code, #shape, 0) }
  for _, d in ipairs(shape) do parts[#parts + 1] = string.pack("<i8", d) end
  parts[#parts + 1] = le_bytes(t)
  return table.concat(parts)
end

-- decode -> { version =, dtype =, shape =, tensor = } | nil, message
function M.decode(s, what)
  what = what or "golden file"
  if #s < 24 or s:sub(1, 8) ~= M.MAGIC then return nil, ("%s: not a golden file (bad magic)"):format(what) end
  local version, code, nd = string.unpack("<I4I4I4", s, 9)
  local info = { version = version }
  if version ~= M.VERSION then
    return nil, ("%s: format version %d, this histops reads version %d"):format(what, version, M.VERSION), info
  end
  local dt = NAMES[code]
  if not dt then return nil, ("%s: unknown dtype code %d"):format(what, code), info end
  if nd < 1 or nd > 8 then return nil, ("%s: %d dimensions"):format(what, nd), info end
  local shape, pos, n = {}, 25, 1
  for i = 1, nd do
    shape[i], pos = string.unpack("<i8", s, pos)
    if shape[i] < 0 then return nil, ("%s: negative dimension"):format(what), info end
    n = n * shape[i]
  end
  info.dtype, info.shape = dt, shape
  local body = s:sub(pos)
  if #body ~= n * SIZES[dt] then
    return nil, ("%s: %d data bytes for a %s %s tensor (want %d): truncated?"):format(what, #body, dt, shape_str(shape),
      n * SIZES[dt]), info
  end
  local t
  if LITTLE then
    t = hs.from_bytes(body, shape, dt)
  else
    local vals, p = {}, 1
    for i = 1, n do vals[i], p = string.unpack(PACK[dt], body, p) end
    t = hs.tensor(vals, dt)
  end
  info.tensor = t
  return info
end

function M.write(path, t)
  local ok, err = hs.sys.write_file_atomic(path, M.encode(t))
  if not ok then error(("golden: cannot write %s: %s"):format(path, tostring(err)), 0) end
end

function M.read(path)
  local s, err = hs.sys.read_file(path)
  if not s then return nil, err end
  return M.decode(s, path)
end

-- ---------------------------------------------------------------- comparison

-- Elementwise |got - want| <= atol + rtol*|want| (exact when tol.exact or both atol and rtol are 0).
-- -> ok, { n =, bad =, max_abs =, max_rel =, first = {index, got, want} }
function M.compare(got, want, tol)
  tol = tol or {}
  local atol, rtol = tol.atol or 0, tol.rtol or 0
  local g = got:contiguous():reshape({ got:numel() }):astype("f64"):tolist()
  local w = want:contiguous():reshape({ want:numel() }):astype("f64"):tolist()
  local d = { n = #w, bad = 0, max_abs = 0, max_rel = 0 }
  if #g ~= #w then return false, d end
  for i = 1, #w do
    local a, b = g[i], w[i]
    local e = math.abs(a - b)
    if a ~= a or b ~= b then e = (a ~= a and b ~= b) and 0 or math.huge end
    if e > d.max_abs then d.max_abs = e end
    local r = e / math.max(math.abs(b), 1e-30)
    if e > 0 and r > d.max_rel then d.max_rel = r end
    if e > atol + rtol * math.abs(b) then
      d.bad = d.bad + 1
      if not d.first then d.first = { index = i, got = a, want = b } end
    end
  end
  return d.bad == 0, d
end

local function tol_str(tol)
  if not tol or tol.exact or ((tol.atol or 0) == 0 and (tol.rtol or 0) == 0) then return "exact" end
  return ("atol %g, rtol %g"):format(tol.atol or 0, tol.rtol or 0)
end
M.tol_str = tol_str

-- ---------------------------------------------------------------- cases

function M.default_dir()
  return os.getenv("HISTOPS_GOLDEN") or ((HISTOPS_SOURCE_DIR or ".") .. "/golden")
end

-- golden/cases.lua -> { version =, cases = { {name, what, tol, compute}, ... } }
function M.load_cases(dir)
  dir = dir or M.default_dir()
  local src = (HISTOPS_SOURCE_DIR or ".") .. "/experiments"
  if not package.path:find(src .. "/?.lua", 1, true) then
    package.path = src .. "/?.lua;" .. src .. "/?/init.lua;" .. package.path
  end
  local chunk, err = loadfile(dir .. "/cases.lua")
  if not chunk then error(err, 0) end
  local set = chunk()
  assert(type(set) == "table" and type(set.cases) == "table", dir .. "/cases.lua must return { cases = {...} }")
  local seen = {}
  for i, c in ipairs(set.cases) do
    assert(type(c.name) == "string" and c.name:match("^[%w_%-]+$"), ("case %d: bad name"):format(i))
    assert(not seen[c.name], "duplicate golden case " .. c.name)
    assert(type(c.compute) == "function", c.name .. ": compute must be a function")
    seen[c.name] = true
  end
  return set
end

-- a context shared by the cases of one check/update: memoised shared work and scratch folders
local function new_context(dir)
  local ctx = { dir = dir, memo = {}, tmp = {} }
  function ctx.once(key, fn)
    if ctx.memo[key] == nil then ctx.memo[key] = fn() end
    return ctx.memo[key]
  end
  function ctx.tmpdir()
    local p = os.tmpname()
    os.remove(p)
    assert(hs.sys.mkdir_p(p))
    ctx.tmp[#ctx.tmp + 1] = p
    return p
  end
  function ctx.close()
    for _, p in ipairs(ctx.tmp) do os.execute("rm -rf '" .. p:gsub("'", "") .. "'") end
    ctx.tmp = {}
  end
  ctx.data_dir = require("hs.data").root()
  return ctx
end
M.new_context = new_context

local function select_cases(set, names)
  if not names or #names == 0 then return set.cases end
  local by, out = {}, {}
  for _, c in ipairs(set.cases) do by[c.name] = c end
  for _, n in ipairs(names) do
    if not by[n] then error(("no golden case '%s'"):format(n), 0) end
    out[#out + 1] = by[n]
  end
  return out
end

local function compute(c, ctx)
  local ok, t = pcall(c.compute, ctx)
  if not ok then return nil, tostring(t) end
  if not hs.is_tensor(t) then return nil, "compute returned " .. type(t) .. ", not a tensor" end
  return t:contiguous()
end

-- Check every case (or those named). Returns results { {name, ok, status, message}, ... }, all_ok.
-- status: ok | fail (values) | mismatch (version, dtype or shape) | missing | error (compute failed)
function M.check(opts)
  opts = opts or {}
  local dir = opts.dir or M.default_dir()
  local set = M.load_cases(dir)
  local ctx = new_context(dir)
  local results, all_ok = {}, true
  local how = ("if the change is intended, regenerate with `%s` (or `histops golden update`) and review the diff like code")
    :format(M.UPDATE_COMMAND)
  for _, c in ipairs(select_cases(set, opts.cases)) do
    local path = dir .. "/" .. c.name .. ".bin"
    local r = { name = c.name, what = c.what, tol = tol_str(c.tol) }
    local got, cerr = compute(c, ctx)
    local want, rerr, info = M.read(path)
    if not got then
      r.status, r.message = "error", cerr
    elseif not want and not info then
      r.status, r.message = "missing", ("%s: %s; %s"):format(path, tostring(rerr), how)
    elseif not want then
      r.status, r.message = "mismatch", ("%s; %s"):format(rerr, how)
    elseif want.dtype ~= got:dtype() or shape_str(want.shape) ~= shape_str(got:shape()) then
      r.status, r.message = "mismatch", ("%s: golden is %s %s, computed %s %s; %s"):format(path, want.dtype,
        shape_str(want.shape), got:dtype(), shape_str(got:shape()), how)
    else
      local ok, d = M.compare(got, want.tensor, c.tol)
      r.max_abs, r.max_rel = d.max_abs, d.max_rel
      if ok then
        r.status, r.message = "ok", ("max |diff| %.3g (%s)"):format(d.max_abs, r.tol)
      else
        r.status = "fail"
        r.message = ("%d of %d values differ beyond %s; first at element %d: got %.9g, want %.9g; max |diff| %.3g; %s")
          :format(d.bad, d.n, r.tol, d.first.index, d.first.got, d.first.want, d.max_abs, how)
      end
    end
    r.ok = r.status == "ok"
    all_ok = all_ok and r.ok
    results[#results + 1] = r
    if opts.out then opts.out:write(("%-28s %-8s %s\n"):format(c.name, r.status, r.message)) end
  end
  ctx.close()
  return results, all_ok
end

-- Regenerate the golden files (all cases or those named): writes only files whose bytes change
-- and prints, per case, new / unchanged / changed within tolerance / CHANGED beyond tolerance /
-- shape or dtype changed. Stale .bin files (no case) are listed and removed. Returns the changes.
function M.update(opts)
  opts = opts or {}
  local out = opts.out or io.stdout
  local dir = opts.dir or M.default_dir()
  local set = M.load_cases(dir)
  local ctx = new_context(dir)
  local changes = {}
  for _, c in ipairs(select_cases(set, opts.cases)) do
    local path = dir .. "/" .. c.name .. ".bin"
    local got, cerr = compute(c, ctx)
    if not got then ctx.close(); error(("golden case %s failed: %s"):format(c.name, cerr), 0) end
    local bytes = M.encode(got)
    local old = hs.sys.read_file(path)
    local msg
    if old == bytes then
      msg = "unchanged"
    else
      local want, rerr = old and M.decode(old, path)
      if not old then
        msg = ("new: %s %s (%d bytes)"):format(got:dtype(), shape_str(got:shape()), #bytes)
      elseif not want then
        msg = ("rewritten: %s"):format(rerr)
      elseif want.dtype ~= got:dtype() or shape_str(want.shape) ~= shape_str(got:shape()) then
        msg = ("SHAPE/DTYPE CHANGED: %s %s -> %s %s"):format(want.dtype, shape_str(want.shape), got:dtype(), shape_str(got:shape()))
      else
        local ok, d = M.compare(got, want.tensor, c.tol)
        msg = ("%s: %d of %d values beyond %s, max |diff| %.3g, max rel %.3g"):format(ok and "changed within tolerance"
          or "CHANGED beyond tolerance", d.bad, d.n, tol_str(c.tol), d.max_abs, d.max_rel)
      end
      M.write(path, got)
      changes[#changes + 1] = { name = c.name, message = msg }
    end
    out:write(("%-28s %s\n"):format(c.name, msg))
  end
  if not opts.cases or #opts.cases == 0 then
    local names = {}
    for _, c in ipairs(set.cases) do names[c.name] = true end
    for _, f in ipairs(hs.sys.listdir(dir) or {}) do
      local n = f:match("^(.*)%.bin$")
      if n and not names[n] then
        os.remove(dir .. "/" .. f)
        out:write(("%-28s removed (no such case in cases.lua)\n"):format(n))
        changes[#changes + 1] = { name = n, message = "removed" }
      end
    end
  end
  ctx.close()
  out:write(#changes == 0 and "golden: nothing changed\n" or
    ("golden: %d file(s) changed: review them (git diff --stat golden/) before committing\n"):format(#changes))
  return changes
end

return M
