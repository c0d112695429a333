-- lua/hs/cmd/golden.lua: `histops golden check|update|list [CASE...] [--dir DIR]`: the golden-output
-- regression tests (hs/golden.lua, cases in golden/cases.lua). check compares and never writes
-- (exit 0 all pass, 1 any failure, 2 error); update regenerates the files and prints what changed
-- (the golden-update build target runs it; never part of CI); list shows the cases.
local M = { help = "golden-output regression tests: check | update | list [CASE...]" }

local USAGE = "usage: histops golden check|update|list [CASE...] [--dir DIR]\n"

function M.run(args)
  local golden = require "hs.golden"
  local reg = require "hs.registry"
  local o, pos = reg.parse_args(args, { ["--dir"] = "value", ["--help"] = "bool" })
  if o and o.help then io.stdout:write(USAGE); return 0 end
  if not o or #pos < 1 then io.stderr:write("histops golden: ", o and "need a subcommand" or pos, "\n", USAGE); return 2 end
  local sub = table.remove(pos, 1)
  local ok, code = pcall(function()
    if sub == "check" then
      local results, all = golden.check { dir = o.dir, cases = pos, out = io.stdout }
      local nfail = 0
      for _, r in ipairs(results) do if not r.ok then nfail = nfail + 1 end end
      print(("golden: %d passed, %d failed"):format(#results - nfail, nfail))
      return all and 0 or 1
    elseif sub == "update" then
      golden.update { dir = o.dir, cases = pos, out = io.stdout }
      return 0
    elseif sub == "list" then
      local set = golden.load_cases(o.dir)
      for _, c in ipairs(set.cases) do
        print(("%-28s %-22s %s"):format(c.name, golden.tol_str(c.tol), c.what or ""))
      end
      return 0
    end
    io.stderr:write("histops golden: unknown subcommand '", sub, "'\n", USAGE)
    return 2
  end)
  if not ok then io.stderr:write("histops golden: ", tostring(code), "\n"); return 2 end
  return code
end

return M
