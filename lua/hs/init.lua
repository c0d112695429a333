-- lua/hs/init.lua: the `histops` Lua API table (what `require "histops"` returns).
-- It gathers the C bindings (hs.tensor, hs.io, ...) and the pure-Lua modules; it holds no logic.
local hs = {}

local tensor = require "hs.tensor"
hs.tensor = tensor
for k, v in pairs(tensor) do
  if hs[k] == nil then hs[k] = v end   -- hs.zeros, hs.ones, hs.arange, hs.rand, hs.randn ...
end

-- optional pieces: present once their binding file exists
local function optional(name)
  local ok, mod = pcall(require, name)
  if ok then return mod end
  if not tostring(mod):find("module '" .. name .. "' not found", 1, true) then error(mod, 0) end
  return nil
end

for _, name in ipairs { "tensorops", "io", "json", "graph", "nnf", "image", "git", "serve", "sys" } do
  local m = optional("hs." .. name)
  if m then
    hs[name] = hs[name] or m
    if name == "tensorops" or name == "io" then
      for k, v in pairs(m) do if hs[k] == nil then hs[k] = v end end
    end
  end
end

hs.version = HISTOPS_VERSION or "0.1.0"
return hs
