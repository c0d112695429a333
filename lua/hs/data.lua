-- lua/hs/data.lua: data sets as lists of items, before any pixel is decoded:
-- folder data sets (one sub-folder per class), train/val/test folder splits, CSV manifests
-- (path,label[,group]), segmentation pairs (images/ + masks/), seeded stratified (and grouped)
-- splits written as manifests, and content fingerprints (SHA-256 over relative paths and bytes).
-- Decoding, preprocessing and batching are in hs/loader.lua.
local hs = require "histops"

local M = {}

local IMAGE_EXT = { png = true, jpg = true, jpeg = true }
local function is_image(name)
  local ext = name:match("%.([^./]+)$")
  return ext and IMAGE_EXT[ext:lower()] or false
end
M.is_image = is_image

local function join(a, b) return (a:sub(-1) == "/") and (a .. b) or (a .. "/" .. b) end
M.join = join

-- Where data sets live: $HISTOPS_DATA, else ../shared/data beside the checkout.
function M.root()
  local env = os.getenv("HISTOPS_DATA")
  if env and env ~= "" then return env end
  return (HISTOPS_SOURCE_DIR or ".") .. "/../shared/data"
end
function M.resolve(path)
  if path:sub(1, 1) == "/" or path:sub(1, 2) == "./" or path:sub(1, 3) == "../" then return path end
  local st = hs.sys.stat(path)
  if st then return path end
  return join(M.root(), path)
end

local function listdir(dir)
  local names, err = hs.sys.listdir(dir)
  if not names then error(("data: cannot list %s: %s"):format(dir, err), 0) end
  return names
end
local function isdir(p)
  local st = hs.sys.stat(p)
  return st and st.type == "dir"
end

-- A data set: { root =, classes = {names}, items = { {path=, rel=, label=, group=}, ... } }
-- group: the prefix before the first "_" or "-" of the file name unless opts.group is a function
local function default_group(rel)
  local base = rel:match("([^/]+)$")
  return base:match("^(.-)[_%-]") or base:match("^(.-)%.")
end

function M.folder(dir, opts)
  opts = opts or {}
  dir = M.resolve(dir)
  if not isdir(dir) then error(("data: %s is not a folder"):format(dir), 0) end
  local classes = {}
  for _, name in ipairs(listdir(dir)) do
    if isdir(join(dir, name)) and name:sub(1, 1) ~= "." then classes[#classes + 1] = name end
  end
  if opts.classes then classes = opts.classes end
  if #classes == 0 then error(("data: %s has no class sub-folders"):format(dir), 0) end
  local ds = { root = dir, classes = classes, items = {} }
  local group_of = opts.group or default_group
  for ci, cname in ipairs(classes) do
    local cdir = join(dir, cname)
    for _, f in ipairs(listdir(cdir)) do
      if is_image(f) then
        local rel = cname .. "/" .. f
        ds.items[#ds.items + 1] = { path = join(cdir, f), rel = rel, label = ci - 1, group = group_of(rel) }
      end
    end
  end
  if #ds.items == 0 then error(("data: no PNG or JPEG images under %s"):format(dir), 0) end
  return ds
end

-- dir with train/ val/ test/ sub-folders, each a class-folder data set
function M.presplit(dir)
  dir = M.resolve(dir)
  local out = {}
  for _, part in ipairs { "train", "val", "test" } do
    if isdir(join(dir, part)) then out[part] = M.folder(join(dir, part)) end
  end
  if not out.train then return nil end
  local classes = out.train.classes
  for _, part in ipairs { "val", "test" } do
    if out[part] and table.concat(out[part].classes, ",") ~= table.concat(classes, ",") then
      error(("data: %s/%s has classes {%s}, train has {%s}"):format(dir, part, table.concat(out[part].classes, ","),
        table.concat(classes, ",")), 0)
    end
  end
  return out
end

-- CSV manifest: header optional; columns path,label[,group]; paths relative to the CSV's folder
function M.csv(path, opts)
  opts = opts or {}
  local text, err = hs.sys.read_file(path)
  if not text then error(("data: cannot read manifest %s: %s"):format(path, err), 0) end
  local base = path:match("^(.*)/[^/]*$") or "."
  local ds = { root = base, classes = {}, items = {} }
  local cindex = {}
  local lineno = 0
  for line in text:gmatch("[^\r\n]+") do
    lineno = lineno + 1
    local cols = {}
    for c in (line .. ","):gmatch("([^,]*),") do cols[#cols + 1] = c:match("^%s*(.-)%s*$") end
    if lineno == 1 and cols[1]:lower() == "path" then goto continue end
    if #cols < 2 or cols[1] == "" or cols[2] == "" then
      error(("data: %s:%d: expected 'path,label[,group]', got '%s'"):format(path, lineno, line), 0)
    end
    if not cindex[cols[2]] then
      ds.classes[#ds.classes + 1] = cols[2]
      cindex[cols[2]] = #ds.classes
    end
    ds.items[#ds.items + 1] = { path = cols[1]:sub(1, 1) == "/" and cols[1] or join(base, cols[1]), rel = cols[1],
      label = cols[2], group = cols[3] ~= "" and cols[3] or nil, line = lineno }
    ::continue::
  end
  -- class order: sorted names (stable across manifests), labels 0-based
  table.sort(ds.classes)
  for i, c in ipairs(ds.classes) do cindex[c] = i - 1 end
  for _, it in ipairs(ds.items) do it.label = cindex[it.label] end
  return ds
end

-- segmentation pairs: dir/images/<name> with dir/masks/<name> (same stem; any image extension)
function M.pairs(dir)
  dir = M.resolve(dir)
  local idir, mdir = join(dir, "images"), join(dir, "masks")
  if not (isdir(idir) and isdir(mdir)) then error(("data: %s needs images/ and masks/ sub-folders"):format(dir), 0) end
  local masks = {}
  for _, f in ipairs(listdir(mdir)) do
    if is_image(f) then masks[f:match("^(.*)%.[^.]+$")] = f end
  end
  local ds = { root = dir, items = {}, segmentation = true }
  for _, f in ipairs(listdir(idir)) do
    if is_image(f) then
      local stem = f:match("^(.*)%.[^.]+$")
      local m = masks[stem]
      if not m then error(("data: image %s/%s has no mask in %s"):format(idir, f, mdir), 0) end
      ds.items[#ds.items + 1] = { path = join(idir, f), mask = join(mdir, m), rel = "images/" .. f, group = stem }
    end
  end
  if #ds.items == 0 then error(("data: no image/mask pairs under %s"):format(dir), 0) end
  return ds
end

-- Seeded split. opts: {val = 0.15, test = 0.15, seed = 1, stratify = true, grouped = false}
-- Grouped: whole groups go to one part (tiles of one slide never straddle train and test).
local function hash01(seed, s)
  local h = hs.sys.sha256(seed .. "\0" .. s)
  return tonumber(h:sub(1, 12), 16) / 2 ^ 48
end
function M.split(ds, opts)
  opts = opts or {}
  local fv, ft, seed = opts.val or 0.15, opts.test or 0.15, opts.seed or 1
  if fv < 0 or ft < 0 or fv + ft >= 1 then error("data.split: need 0 <= val, test and val + test < 1", 2) end
  local parts = { train = {}, val = {}, test = {} }
  -- units: groups (grouped) or items; strata: labels (stratify) or one stratum
  local strata = {}
  local unit_of = {}
  for i, it in ipairs(ds.items) do
    local key = opts.grouped and ("g:" .. tostring(it.group or it.rel)) or ("i:" .. it.rel)
    local stratum = (opts.stratify ~= false and it.label) or 0
    if opts.grouped then stratum = 0 end   -- a group may hold several classes: stratify by order instead
    local u = unit_of[key]
    if not u then
      u = { key = key, items = {}, r = hash01(seed, key) }
      unit_of[key] = u
      strata[stratum] = strata[stratum] or {}
      table.insert(strata[stratum], u)
    end
    u.items[#u.items + 1] = i
  end
  local keys = {}
  for k in pairs(strata) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local units = strata[k]
    table.sort(units, function(a, b) return a.r < b.r or (a.r == b.r and a.key < b.key) end)
    local n = #units
    local nt = math.floor(n * ft + 0.5)
    local nv = math.floor(n * fv + 0.5)
    if ft > 0 and nt == 0 and n >= 3 then nt = 1 end
    if fv > 0 and nv == 0 and n >= 3 then nv = 1 end
    for j, u in ipairs(units) do
      local part = j <= nt and "test" or (j <= nt + nv and "val" or "train")
      for _, i in ipairs(u.items) do table.insert(parts[part], ds.items[i]) end
    end
  end
  local out = {}
  for name, items in pairs(parts) do
    table.sort(items, function(a, b) return a.rel < b.rel end)
    out[name] = { root = ds.root, classes = ds.classes, items = items, segmentation = ds.segmentation }
  end
  return out
end

-- the split as a manifest (CSV text: split,path,label,group), recorded with the run
function M.manifest(splits)
  local lines = { "split,path,label,group" }
  for _, part in ipairs { "train", "val", "test" } do
    local s = splits[part]
    if s then
      for _, it in ipairs(s.items) do
        lines[#lines + 1] = ("%s,%s,%s,%s"):format(part, it.rel, tostring(it.label or ""), tostring(it.group or ""))
      end
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- Fingerprint: SHA-256 over "relpath\0sha256(bytes)\n" of every item (and mask), in order.
-- Per-file hashes are cached by (path, size, mtime) in a process-wide table.
local file_hash_cache = {}
local function file_hash(path)
  local st = hs.sys.stat(path)
  if not st then return nil, "missing file " .. path end
  local key = path .. "|" .. st.size .. "|" .. st.mtime
  local h = file_hash_cache[key]
  if not h then
    local err
    h, err = hs.sys.sha256_file(path)
    if not h then return nil, err end
    file_hash_cache[key] = h
  end
  return h
end
function M.fingerprint(ds)
  local parts = {}
  for _, it in ipairs(ds.items) do
    local h = assert(file_hash(it.path))
    parts[#parts + 1] = it.rel .. "\0" .. h .. "\0" .. tostring(it.label or "")
    if it.mask then parts[#parts + 1] = "mask:" .. it.rel .. "\0" .. assert(file_hash(it.mask)) end
  end
  return hs.sys.sha256(table.concat(parts, "\n"))
end

function M.class_counts(ds)
  local counts = {}
  for i = 1, #(ds.classes or {}) do counts[i] = 0 end
  for _, it in ipairs(ds.items) do
    if it.label then counts[it.label + 1] = (counts[it.label + 1] or 0) + 1 end
  end
  return counts
end

return M
