-- lua/hs/cmd/check_ref.lua: `histops check-ref PATH... [--filter PATTERN] [--verbose]`, the
-- reference runner. Every *.safetensors case under PATHs (recursive, sorted) is loaded, given to
-- the handler registered for its metadata `op` by a module in lua/hs/ref/, and each comparison
-- the handler returns is checked with hs.io.compare under a named tolerance. It computes
-- nothing itself: handlers do the work. Prints one PASS/FAIL/SKIP line per case and the summary
-- "N passed, M failed, K skipped"; exit 0 if nothing failed, 1 on failures, 2 on usage errors
-- (missing path, no case, a broken or conflicting handler module).
local hs = require "histops"

local M = { help = "check histops against the reference cases: check-ref PATH... [--filter PAT] [-v]" }

-- |got - want| <= atol + rtol * |want|
M.tolerances = {
  forward = { atol = 1e-5, rtol = 1e-4 },
  grad = { atol = 1e-4, rtol = 1e-3 },
  float = { atol = 1e-4, rtol = 0 },
  grey1 = { atol = 1.0, rtol = 0 },
  exact = { atol = 0, rtol = 0 },
}

local function usage_error(msg)
  io.stderr:write("check-ref: ", msg, "\n",
    "usage: histops check-ref PATH... [--filter PATTERN] [--verbose]\n")
  return 2
end

-- Cases in PATHs: files as given, folders walked recursively in sorted order.
local function collect(paths)
  local files, seen = {}, {}
  local function add(p)
    if not seen[p] then seen[p] = true; files[#files + 1] = p end
  end
  local function walk(dir)
    local names, err = hs.sys.listdir(dir)
    if not names then return nil, err end
    for _, n in ipairs(names) do
      local p = dir:gsub("/+$", "") .. "/" .. n
      local st = hs.sys.stat(p)
      if st and st.type == "dir" then
        local ok, e = walk(p)
        if not ok then return nil, e end
      elseif st and st.type == "file" and n:match("%.safetensors$") then
        add(p)
      end
    end
    return true
  end
  for _, p in ipairs(paths) do
    local st = hs.sys.stat(p)
    if not st then return nil, ("no such file or folder: %s"):format(p) end
    if st.type == "dir" then
      local ok, err = walk(p)
      if not ok then return nil, err end
    else
      add(p)
    end
  end
  return files
end

-- { [op] = handler }, { [op] = module name }, { {module =, err =}, ... } from every module in
-- lua/hs/ref/ (beside hs/cli.lua), in sorted order. Two modules serving one op is an error (nil,
-- message), never a silent override; a module that fails to load is returned in the third list
-- (the runner reports it as a failure and still runs the other cases).
function M.load_handlers()
  local cli_path = package.searchpath("hs.cli", package.path)
  if not cli_path then return nil, "cannot locate hs/cli.lua on package.path" end
  local dir = cli_path:gsub("cli%.lua$", "ref")
  local handlers, owner, broken = {}, {}, {}
  local names = hs.sys.listdir(dir) or {}
  for _, f in ipairs(names) do
    local mod = f:match("^([%w_]+)%.lua$")
    local modname = mod and "hs.ref." .. mod
    local ok, t = true, nil
    if mod then ok, t = pcall(require, modname) end
    if not ok then
      broken[#broken + 1] = { module = modname, err = tostring(t) }
    elseif mod and type(t) ~= "table" then
      broken[#broken + 1] = { module = modname, err = ("returned a %s, expected a table { [op] = function }"):format(type(t)) }
    elseif mod then
      local ops = {}
      for op in pairs(t) do ops[#ops + 1] = op end
      table.sort(ops, function(a, b) return tostring(a) < tostring(b) end)
      for _, op in ipairs(ops) do
        local fn = t[op]
        if type(op) ~= "string" or type(fn) ~= "function" then
          broken[#broken + 1] = { module = modname, err = ("entry %s is not op = function"):format(tostring(op)) }
        elseif handlers[op] then
          return nil, ("op '%s' is served by both %s and %s"):format(op, owner[op], modname)
        else
          handlers[op], owner[op] = fn, modname
        end
      end
    end
  end
  return handlers, owner, broken
end

local function basename(p) return ((p:match("([^/]+)$") or p):gsub("%.safetensors$", "")) end

local function fmt(x)
  if x == nil then return "-" end
  if math.type(x) == "integer" then return tostring(x) end
  return ("%.3g"):format(x)
end

-- 1-based flat index -> "[i,j,k]" in want's shape
local function index_str(shape, flat)
  if #shape == 0 then return "[]" end
  local idx, rest = {}, flat - 1
  for d = #shape, 1, -1 do
    local n = shape[d]
    if n == 0 then return ("[#%d]"):format(flat) end
    idx[d] = rest % n + 1
    rest = rest // n
  end
  return "[" .. table.concat(idx, ",") .. "]"
end

-- Check one comparison entry; returns a result record.
local function check_one(c, k)
  local r = { name = tostring(c.name or ("#" .. k)), tol = c.tol }
  local tol = c.tol
  if type(tol) == "string" then
    tol = M.tolerances[tol]
    if not tol then r.err = ("unknown tolerance '%s'"):format(c.tol); return r end
  elseif type(tol) == "table" then
    r.tol = ("atol=%g,rtol=%g"):format(tol.atol or 0, tol.rtol or 0)
  else
    r.err = "no tolerance (tol = 'forward' | 'grad' | 'float' | 'grey1' | 'exact')"
    return r
  end
  local got, want = c.got, c.want
  if type(got) == "number" then got = hs.tensor({ got }, "f64") end
  if type(want) == "number" then want = hs.tensor({ want }, "f64") end
  if not hs.is_tensor(want) then r.err = ("want is %s (no such tensor in the case?)"):format(type(want)); return r end
  if not hs.is_tensor(got) then r.err = ("got is %s, expected a tensor"):format(type(got)); return r end
  local ok, max_abs, max_rel, n_bad, first, gv, wv =
    pcall(hs.io.compare, got, want, tol.atol or 0, tol.rtol or 0)
  if not ok then r.err = tostring(max_abs); return r end
  r.max_abs, r.max_rel, r.n_bad, r.numel = max_abs, max_rel, n_bad, want:numel()
  if first then
    r.bad = ("%s%s: got %s want %s (%d of %d bad, tol %s)"):format(r.name, index_str(want:shape(), first), fmt(gv),
      fmt(wv), n_bad, r.numel, r.tol)
  end
  return r
end

-- Run one case file; returns status ("PASS"|"FAIL"|"SKIP"), op, detail, results.
local function run_case(path, handlers, filter)
  local name = basename(path)
  local t, meta = hs.io.load(path)
  if not t then
    if filter and not name:find(filter) then return nil end
    return "FAIL", "?", "cannot load: " .. tostring(meta)
  end
  local op = meta.op
  if filter and not (name:find(filter) or (op and op:find(filter))) then return nil end
  if not op then return "FAIL", "?", "no 'op' in the metadata" end
  local params = {}
  if meta.params and meta.params ~= "" then
    local p, err = hs.json.decode(meta.params)
    if p == nil then return "FAIL", op, "params are not valid JSON: " .. tostring(err) end
    params = p
  end
  local handler = handlers[op]
  if not handler then return "SKIP", op, ("op '%s' not implemented yet"):format(op) end
  local case = { name = name, op = op, params = params, notes = meta.notes or "", meta = meta, t = t, path = path }
  local ok, list, why = xpcall(handler, function(e)
    if os.getenv("HISTOPS_TRACEBACK") then return debug.traceback(tostring(e), 2) end
    return tostring(e)
  end, case)
  if not ok then return "FAIL", op, "error: " .. tostring(list) end
  if list == nil then return "SKIP", op, tostring(why or "skipped by its handler") end
  if type(list) ~= "table" then return "FAIL", op, ("handler returned a %s, expected a list of comparisons"):format(type(list)) end
  if #list == 0 then return "FAIL", op, "handler returned no comparisons" end
  local results, status, detail = {}, "PASS", nil
  for k, c in ipairs(list) do
    local r = type(c) == "table" and check_one(c, k) or { name = "#" .. k, err = "comparison is not a table" }
    results[#results + 1] = r
    if (r.err or r.bad) and status == "PASS" then
      status, detail = "FAIL", r.err and (r.name .. ": " .. r.err) or r.bad
    end
  end
  return status, op, detail, results
end

function M.run(args)
  local paths, filter, verbose = {}, nil, false
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--filter" then
      filter = args[i + 1]
      if not filter then return usage_error("--filter needs a pattern") end
      i = i + 1
    elseif a:match("^%-%-filter=") then
      filter = a:match("^%-%-filter=(.*)$")
    elseif a == "--verbose" or a == "-v" then
      verbose = true
    elseif a == "--help" or a == "-h" then
      io.write(M.help, "\n")
      return 0
    elseif a:match("^%-") then
      return usage_error(("unknown option '%s'"):format(a))
    else
      paths[#paths + 1] = a
    end
    i = i + 1
  end
  if #paths == 0 then return usage_error("no PATH given") end
  if filter and not pcall(string.find, "", filter) then return usage_error(("bad --filter pattern '%s'"):format(filter)) end
  local files, err = collect(paths)
  if not files then return usage_error(err) end
  if #files == 0 then return usage_error("no *.safetensors case found under " .. table.concat(paths, " ")) end
  local handlers, herr, broken = M.load_handlers()
  if not handlers then
    io.stderr:write("check-ref: ", herr, "\n")
    return 2
  end

  local width = 0
  for _, f in ipairs(files) do width = math.max(width, #basename(f)) end
  local counts = { PASS = 0, FAIL = 0, SKIP = 0 }
  for _, b in ipairs(broken) do  -- its ops' cases will SKIP; the module itself is a failure
    counts.FAIL = counts.FAIL + 1
    local first = b.err:match("^[^\n]*")
    io.write(("FAIL  %s  (handler module)  failed to load: %s\n"):format(b.module, first))
    if verbose and first ~= b.err then io.write("      ", b.err:gsub("\n", "\n      "), "\n") end
  end
  for _, f in ipairs(files) do
    local t0 = hs.sys.clock()
    local status, op, detail, results = run_case(f, handlers, filter)
    if status then
      counts[status] = counts[status] + 1
      local max_abs, max_rel = 0, 0
      for _, r in ipairs(results or {}) do
        if r.max_abs and r.max_abs > max_abs then max_abs = r.max_abs end
        if r.max_rel and r.max_rel > max_rel then max_rel = r.max_rel end
      end
      local line = ("%s  %-" .. width .. "s  %s"):format(status, basename(f), op)
      if results then line = line .. ("  max_abs=%.3g  max_rel=%.3g"):format(max_abs, max_rel) end
      if detail then line = line .. "  " .. detail end
      io.write(line, "\n")
      if verbose then
        for _, r in ipairs(results or {}) do
          if r.err then
            io.write(("      %-10s error: %s\n"):format(r.name, r.err))
          else
            io.write(("      %-10s %-8s max_abs=%.3g  max_rel=%.3g  n_bad=%d/%d\n"):format(r.name, tostring(r.tol),
              r.max_abs, r.max_rel, r.n_bad, r.numel))
          end
        end
        io.write(("      (%s, %.3f s)\n"):format(f, hs.sys.clock() - t0))
      end
      io.stdout:flush()
    end
    collectgarbage()  -- cases hold images; release them before the next one
  end
  local total = counts.PASS + counts.FAIL + counts.SKIP
  if total == 0 then return usage_error(("no case matches --filter '%s'"):format(filter)) end
  io.write(("%d passed, %d failed, %d skipped\n"):format(counts.PASS, counts.FAIL, counts.SKIP))
  return counts.FAIL > 0 and 1 or 0
end

return M
