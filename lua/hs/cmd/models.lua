-- lua/hs/cmd/models.lua: `histops models [NAME] [--json]`: list the registered models (versions
-- and aliases per name) or, with NAME, every version of NAME with its run, key metrics, size and
-- the aliases that point at it. Reads the git registry (hs/registry.lua); exit 0, 2 on error.
local M = { help = "list registered models, their versions and aliases ([NAME] [--json])" }

local function metric_str(m)
  if type(m) ~= "table" then return "" end
  local parts = {}
  for _, k in ipairs { "macro_f1", "accuracy", "dice", "iou" } do
    if type(m[k]) == "number" then parts[#parts + 1] = ("%s %.4f"):format(k, m[k]) end
  end
  return table.concat(parts, "  ")
end

function M.run(args)
  local hs = require "histops"
  local reg = require "hs.registry"
  local o, pos = reg.parse_args(args, { ["--json"] = "bool", ["--help"] = "bool" })
  if not o or #pos > 1 then
    io.stderr:write("histops models: ", o and "at most one NAME" or pos, "\nusage: histops models [NAME] [--json]\n")
    return 2
  end
  if o.help then print("usage: histops models [NAME] [--json]"); return 0 end
  local ok, err = pcall(function()
    local store, serr = reg.open()
    if not store then error("model registry: " .. tostring(serr), 0) end
    store:close()
    local names = pos[1] and { (reg.split_spec(pos[1])) } or reg.names()
    local out = {}
    for _, name in ipairs(names) do
      local vs, as = reg.versions(name), reg.aliases(name)
      if pos[1] and #vs == 0 then error(("no model named '%s' in the registry"):format(name), 0) end
      local alias_list = {}
      for a, rec in pairs(as) do alias_list[#alias_list + 1] = { alias = a, version = rec.version, who = rec.who,
        when = rec.when, why = rec.why } end
      table.sort(alias_list, function(x, y) return x.alias < y.alias end)
      out[#out + 1] = { name = name, versions = vs, aliases = alias_list }
    end
    if o.json then
      for _, m in ipairs(out) do
        for _, v in ipairs(m.versions) do v.ref, v.commit_id = nil, nil end
      end
      print(hs.json.encode(pos[1] and out[1] or out))
      return
    end
    if #out == 0 then print("no registered models (histops register RUN --name NAME)"); return end
    for _, m in ipairs(out) do
      local al = {}
      for _, a in ipairs(m.aliases) do al[#al + 1] = ("%s -> v%d"):format(a.alias, a.version) end
      if not pos[1] then
        local last = m.versions[#m.versions]
        print(("%-24s %3d version(s)  latest v%d (%s)  %s"):format(m.name, #m.versions, last and last.version or 0,
          last and last.created or "-", table.concat(al, ", ")))
      else
        print(("%s: %d version(s)%s"):format(m.name, #m.versions, #al > 0 and ("; " .. table.concat(al, ", ")) or ""))
        local by = {}
        for _, a in ipairs(m.aliases) do by[a.version] = (by[a.version] and by[a.version] .. "," or "") .. a.alias end
        print(("  %-5s %-20s %-24s %-9s %-28s %s"):format("ver", "created", "run", "size", "metrics", "aliases"))
        for _, v in ipairs(m.versions) do
          print(("  v%-4d %-20s %-24s %-9s %-28s %s"):format(v.version, v.created or "-", tostring(v.run or "-"),
            ("%.1f kB"):format((v.size_bytes or 0) / 1000), metric_str(v.metrics), by[v.version] or ""))
        end
      end
    end
  end)
  if not ok then io.stderr:write("histops models: ", tostring(err), "\n"); return 2 end
  return 0
end

return M
