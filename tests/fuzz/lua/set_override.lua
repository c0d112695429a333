-- tests/fuzz/lua/set_override.lua: fuzz harness (tests/fuzz/fuzz_set_override.c) for the
-- `--set key=value` overrides of lua/hs/config.lua. Returns function(input): every line of the
-- input is one override. Invariants (a violation raises, which the C side turns into a crash):
--   * a refused override raises a string naming the offending --set, raised as a message
--     (level 0), never an internal Lua error ("config.lua:123: attempt to index a nil value");
--   * an accepted override stores parse_value(value) at the key's path;
--   * config.load(file, overrides) agrees, and its public view encodes to JSON and back.
local hs = require "histops"
local config = require "hs.config"
local runs = require "hs.runs"
local json = hs.json

local EXPERIMENT = FUZZ_LUA_DIR .. "/experiment.lua"

local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b or (a ~= a and b ~= b) end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- a runtime error inside Lua code carries its position ("...lua:123: "); the messages config
-- raises for the user are raised at level 0, without one
local function internal(err)
  return err:match("^[^\n]-%.lua:%d+: ") ~= nil
end

local function check_error(err, spec)
  if type(err) ~= "string" then error(("override %q raised a %s, not a message"):format(spec, type(err)), 0) end
  if not (err:find(spec, 1, true) or err:find("unknown setting", 1, true)) then
    error(("override %q: the error does not name it: %s"):format(spec, err), 0)
  end
  if internal(err) then
    error(("override %q: internal error instead of a message: %s"):format(spec, err), 0)
  end
end

return function(input)
  local specs = {}
  for line in (input .. "\n"):gmatch("([^\n]*)\n") do
    if #specs < 16 then specs[#specs + 1] = line end
  end
  -- one by one on a fresh copy of the defaults
  local accepted = {}
  for _, spec in ipairs(specs) do
    local cfg = config.deep_copy(config.defaults)
    local ok, err = pcall(config.apply_override, cfg, spec)
    if not ok then
      check_error(err, spec)
    else
      accepted[#accepted + 1] = spec
      local key, value = spec:match("^([%w_%.]+)=(.*)$")
      assert(key, "accepted an override without key=value: " .. spec)
      local node = cfg
      for part in key:gmatch("[^%.]+") do
        if type(node) ~= "table" then error(("--set %s accepted but %s is not reachable"):format(spec, key), 0) end
        node = node[part]
      end
      if not same(node, config.parse_value(value)) then
        error(("--set %s: stored %s, parse_value gives %s"):format(spec, tostring(node), tostring(config.parse_value(value))), 0)
      end
    end
  end
  -- all together through load (the path of `histops run FILE --set ...`)
  local ok, cfg = pcall(config.load, EXPERIMENT, specs)
  if not ok then
    if type(cfg) ~= "string" then error("config.load raised a " .. type(cfg), 0) end
    if internal(cfg) then error("config.load: internal error: " .. cfg, 0) end
    return
  end
  local pub = config.public(cfg)
  local flat = config.flatten(pub)
  for k in pairs(flat) do assert(type(k) == "string", "flatten produced a non-string key") end
  -- the record of a run stores these parameters as JSON (runs.clean maps NaN/inf to null)
  local text = json.encode(runs.clean(pub))
  local back = json.decode(text)
  assert(type(back) == "table", "params JSON did not decode to a table")
  assert(json.encode(back) == json.encode(runs.clean(pub)), "params JSON round trip changed the record")
end
