-- lua/hs/cmd/rollback.lua: `histops rollback NAME[@ALIAS] [--to VERSION] [--why TEXT]`: move an
-- alias (default production) back to the version it served before the current one, or to
-- --to VERSION; compare-and-swap like every alias move, recorded in the alias history.
-- Exit 0, 2 on error.
local M = { help = "move an alias back to its previous version (NAME@alias [--to N] [--why TEXT])" }

local USAGE = "usage: histops rollback NAME[@ALIAS] [--to VERSION] [--why TEXT] [--json]\n"

function M.run(args)
  local hs = require "histops"
  local reg = require "hs.registry"
  local o, pos = reg.parse_args(args, { ["--to"] = "value", ["--why"] = "value", ["--json"] = "bool", ["--help"] = "bool" })
  if o and o.help then io.stdout:write(USAGE); return 0 end
  if not o or #pos ~= 1 then io.stderr:write("histops rollback: ", o and "need NAME@ALIAS" or pos, "\n", USAGE); return 2 end
  local name, alias = reg.split_spec(pos[1], "production")
  local ok, err = pcall(function()
    local rec = reg.rollback(name, alias, { to = o.to, why = o.why })
    if o.json then rec.ref = nil; print(hs.json.encode(rec)); return end
    print(("%s@%s: v%s -> v%d (%s)"):format(name, alias, tostring(rec.previous), rec.version, rec.why))
  end)
  if not ok then io.stderr:write("histops rollback: ", tostring(err), "\n"); return 2 end
  return 0
end

return M
