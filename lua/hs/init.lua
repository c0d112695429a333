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

for _, name in ipairs { "tensorops", "io", "json", "graph", "optim", "image", "imgproc", "git", "serve", "sys", "synth", "loader", "ihc", "classic", "mpi" } do
  local m = optional("hs." .. name)
  if m then
    hs[name] = hs[name] or m
    if name == "tensorops" or name == "io" then
      for k, v in pairs(m) do if hs[k] == nil then hs[k] = v end end
    end
  end
end

-- image processing lives in two binding files; users see one hs.image table
if hs.image and hs.imgproc then
  for k, v in pairs(hs.imgproc) do if hs.image[k] == nil then hs.image[k] = v end end
end

hs.version = "0.1.0"
package.loaded["histops"] = hs

-- IHC quantification: C kernels (hs.ihc) plus the Lua API (hs.ihc.quantify, ...)
if hs.ihc then
  for k, v in pairs(require "hs.ihc_quant") do hs.ihc[k] = v end
end

-- pure-Lua layers: loaded lazily so that `require "histops"` stays cheap
setmetatable(hs, { __index = function(t, k)
  if k == "nn" and t.graph then t.nn = require "hs.nn"; return t.nn end
  if k == "pipeline" then t.pipeline = require "hs.pipeline"; return t.pipeline end
  if k == "models" then t.models = require "hs.model_io"; return t.models end
  if k == "registry" then t.registry = require "hs.registry"; return t.registry end
  if k == "runs" then t.runs = require "hs.runs"; return t.runs end
  if k == "metrics" then t.metrics = require "hs.metrics"; return t.metrics end
  if k == "data" then t.data = require "hs.data"; return t.data end
  return nil
end })
package.loaded["histops"] = hs
if hs.optim then
  for k, v in pairs(require "hs.optimizers") do hs.optim[k] = v end
end
return hs
