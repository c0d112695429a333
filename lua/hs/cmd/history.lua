-- lua/hs/cmd/history.lua: `histops history NAME@ALIAS [--json]`: which version an alias pointed
-- at, from when until when, who moved it and why (the alias ref's commit chain in git).
-- Exit 0, 2 on error.
local M = { help = "show which version an alias served when (NAME@alias, default production)" }

function M.run(args)
  local hs = require "histops"
  local reg = require "hs.registry"
  local o, pos = reg.parse_args(args, { ["--json"] = "bool", ["--help"] = "bool" })
  if o and o.help then print("usage: histops history NAME@ALIAS [--json]"); return 0 end
  if not o or #pos ~= 1 then
    io.stderr:write("histops history: ", o and "need NAME@ALIAS" or pos, "\nusage: histops history NAME@ALIAS [--json]\n")
    return 2
  end
  local name, alias = reg.split_spec(pos[1], "production")
  local ok, err = pcall(function()
    local hist, herr = reg.history(name, alias)
    if not hist then error(herr, 0) end
    if o.json then
      for _, h in ipairs(hist) do h.ref = nil end
      print(hs.json.encode(hist))
      return
    end
    print(("%s@%s: %d move(s), newest first"):format(name, alias, #hist))
    print(("  %-8s %-20s %-20s %-10s %-28s %s"):format("version", "from", "until", "previous", "who", "why"))
    for _, h in ipairs(hist) do
      print(("  v%-7d %-20s %-20s %-10s %-28s %s"):format(h.version, h.when or "-", h["until"] or "(current)",
        h.previous and ("v" .. h.previous) or "-", tostring(h.who or "-"):sub(1, 28), h.why or ""))
    end
  end)
  if not ok then io.stderr:write("histops history: ", tostring(err), "\n"); return 2 end
  return 0
end

return M
