-- lua/hs/cmd/register.lua: `histops register RUN --name NAME [--alias ALIAS] [--why TEXT] [--force]
-- [--json]`: make the model of a run (run id, run folder, model file, or NAME@version) a new
-- version of NAME in the git model registry (hs/registry.lua); optionally point an alias at it.
-- Exit 0 on success, 2 on error.
local M = { help = "register a run's model as a new version in the model registry (--name NAME)" }

local USAGE = "usage: histops register RUN --name NAME [--alias ALIAS] [--why TEXT] [--force] [--json]\n"

function M.run(args)
  local hs = require "histops"
  local reg = require "hs.registry"
  local o, pos = reg.parse_args(args, { ["--name"] = "value", ["--alias"] = "value", ["--why"] = "value",
    ["--force"] = "bool", ["--json"] = "bool", ["--help"] = "bool" })
  if o and o.help then io.stdout:write(USAGE); return 0 end
  if not o or #pos ~= 1 or not o.name then
    io.stderr:write("histops register: ", o and "need one RUN and --name NAME" or pos, "\n", USAGE)
    return 2
  end
  local ok, err = pcall(function()
    local v, created = reg.register(pos[1], { name = o.name, why = o.why, force = o.force })
    local a
    if o.alias then a = reg.set_alias(o.name, o.alias, v.version, o.why or ("register " .. pos[1])) end
    if o.json then
      v.created_now = created
      v.alias = a
      print(hs.json.encode(v))
    else
      print(("%s %s@%d (run %s, weights %s, %.1f kB)"):format(created and "registered" or "already registered as",
        v.name, v.version, tostring(v.run), v.weights:sub(1, 12), v.size_bytes / 1000))
      if a then print(("%s@%s -> v%d"):format(o.name, o.alias, v.version)) end
    end
  end)
  if not ok then io.stderr:write("histops register: ", tostring(err), "\n"); return 2 end
  return 0
end

return M
