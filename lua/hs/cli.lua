-- lua/hs/cli.lua: command-line dispatch for the histops executable.
--   histops script.lua [args...]   run a Lua script (arg[0] = script)
--   histops COMMAND [args...]      run lua/hs/cmd/COMMAND.lua's run(args) (e.g. check-ref)
--   histops --version | --help
local cli = {}

local function usage(out)
  out:write([[
usage: histops SCRIPT.lua [ARGS...]     run an experiment or any Lua script
       histops COMMAND [ARGS...]         run a command:
]])
  for _, c in ipairs(cli.commands()) do out:write(("         %-12s %s\n"):format(c.name, c.help or "")) end
  out:write("       histops --version\n")
end

function cli.commands()
  local list = {}
  local dir = package.searchpath("hs.cli", package.path):gsub("cli%.lua$", "cmd")
  local p = io.popen('ls "' .. dir .. '" 2>/dev/null')
  if p then
    for f in p:lines() do
      local name = f:match("^(.-)%.lua$")
      if name then
        local ok, m = pcall(require, "hs.cmd." .. name)
        list[#list + 1] = { name = name:gsub("_", "-"), help = ok and m.help or nil }
      end
    end
    p:close()
  end
  return list
end

local function dispatch(...)
  local argv = { ... }
  local first = argv[1]
  if first == nil or first == "--help" or first == "-h" or first == "help" then
    usage(first and io.stdout or io.stderr)
    return first and 0 or 2
  end
  if first == "--version" then
    local hs = require "histops"
    local v = hs.sys and hs.sys.versions() or {}
    io.write(("histops %s\n"):format(hs.version))
    io.write(("%s\n"):format(v.lua or _VERSION))
    for _, k in ipairs { "openblas", "libpng", "libjpeg", "libgit2", "cjson", "compiler" } do
      if v[k] then io.write(("%s %s\n"):format(k, v[k])) end
    end
    return 0
  end
  if first:match("%.lua$") or first:find("/", 1, true) then
    local chunk, err = loadfile(first)
    if not chunk then
      io.stderr:write("histops: ", err, "\n")
      return 1
    end
    local sargs = {}
    for i = 2, #argv do sargs[#sargs + 1] = argv[i] end
    arg = { [0] = first, table.unpack(sargs) }
    local r = chunk(table.unpack(sargs))
    if type(r) == "number" then return math.tointeger(r) or 1 end
    return 0
  end
  local modname = "hs.cmd." .. first:gsub("-", "_")
  if not package.searchpath(modname, package.path) then
    io.stderr:write(("histops: unknown command '%s'\n"):format(first))
    usage(io.stderr)
    return 2
  end
  local cmd = require(modname)
  local rest = {}
  for i = 2, #argv do rest[#rest + 1] = argv[i] end
  local code = cmd.run(rest)
  return code or 0
end

-- Under mpirun/srun a rank that fails takes the job down at once (the other ranks may be waiting
-- in a collective and would otherwise hang until the exit timeout of hs.mpi).
function cli.main(...)
  local okm, mpi = pcall(require, "hs.mpi")
  if not (okm and mpi.launched()) then return dispatch(...) end
  local ok, code = pcall(dispatch, ...)
  if not ok then
    if mpi.size() > 1 then mpi.abort(1, "histops: " .. tostring(code)) end
    error(code, 0)
  end
  return code
end

return cli
