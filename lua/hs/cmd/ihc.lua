-- lua/hs/cmd/ihc.lua: `histops ihc IMAGE... [options]`: IHC quantification of DAB + hematoxylin
-- images (hs/ihc_quant.lua) from the command line, and `histops ihc --validate N` to measure its
-- errors on N synthetic tiles with known truth. Argument parsing and printing only.
local M = { help = "count DAB-positive/negative nuclei: labelling index, H-score, overlay (--validate N: synthetic check)" }

local USAGE = [[
usage: histops ihc IMAGE... [--overlay OUT.png|DIR/] [--labels OUT.png|DIR/] [--json]
                            [--thresholds T1,T2,T3] [--preset nuclear|cytoplasmic] [--set key=value ...]
                            [--thickness N]
       histops ihc --validate N [--size S] [--seed K] [--json] [same options]
Options (--set): nuclear=hdab|h sigma background_sigma threshold=otsu|OD min_threshold open_radius
  fill_holes min_distance min_area max_area compartment=nucleus|cell cell_radius.
Labels are written as 16-bit PNG (0 background, nucleus k = k).
]]

local function parse_value(s)
  if s == "true" then return true elseif s == "false" then return false end
  return math.tointeger(tonumber(s)) or tonumber(s) or s
end

local function out_path(spec, image, suffix, many)
  local base = image:match("([^/]+)$"):gsub("%.[^.]*$", "")
  if spec:sub(-1) == "/" then return spec .. base .. suffix .. ".png" end
  local hs = require "histops"
  local st = hs.sys.stat(spec)
  if st and st.type == "directory" then return spec .. "/" .. base .. suffix .. ".png" end
  if many then error("with several images, " .. spec .. " must be a folder (end it with /)", 0) end
  return spec
end

function M.run(args)
  local hs = require "histops"
  local Q = require "hs.ihc_quant"
  local images, opts = {}, {}
  local overlay, labels, as_json, validate, size, seed, thickness
  local i = 1
  local function value(name)
    i = i + 1
    if args[i] == nil then error(name .. " needs a value", 0) end
    return args[i]
  end
  local ok, err = pcall(function()
    while i <= #args do
      local a = args[i]
      if a == "--overlay" then overlay = value(a)
      elseif a == "--labels" then labels = value(a)
      elseif a == "--json" then as_json = true
      elseif a == "--thresholds" then
        local t = {}
        for x in value(a):gmatch("[^,]+") do t[#t + 1] = tonumber(x) or error("--thresholds: '" .. x .. "' is not a number", 0) end
        if #t ~= 3 then error("--thresholds needs three numbers T1,T2,T3", 0) end
        opts.thresholds = t
      elseif a == "--preset" then opts.preset = value(a)
      elseif a == "--set" then
        local k, v = value(a):match("^([%w_]+)=(.*)$")
        if not k then error("--set needs key=value", 0) end
        opts[k] = parse_value(v)
      elseif a == "--validate" then validate = math.tointeger(tonumber(value(a))) or error("--validate needs a tile count", 0)
      elseif a == "--size" then size = math.tointeger(tonumber(value(a))) or error("--size needs an integer", 0)
      elseif a == "--seed" then seed = math.tointeger(tonumber(value(a))) or error("--seed needs an integer", 0)
      elseif a == "--thickness" then thickness = math.tointeger(tonumber(value(a))) or error("--thickness needs an integer", 0)
      elseif a == "--help" or a == "-h" then io.stdout:write(USAGE); images = nil; return
      elseif a:sub(1, 2) == "--" then error("unknown option " .. a, 0)
      else images[#images + 1] = a end
      i = i + 1
    end
    Q.options(opts)  -- fail early on a bad option
  end)
  if not ok then
    io.stderr:write("histops ihc: ", tostring(err):gsub("^[^:]+:%d+: ", ""), "\n", USAGE)
    return 2
  end
  if images == nil then return 0 end

  if validate then
    local v = Q.validate { tiles = validate, size = size, seed = seed, options = opts }
    if as_json then
      print(hs.json.encode({ tiles = validate, size = size or 256, count_error_percent = v.count,
        labelling_index_error = v.labelling_index, h_score_error = v.h_score, seconds = v.seconds }))
    else
      io.write(("%-5s %6s %6s %8s %8s %8s %8s\n"):format("tile", "truth", "found", "LI true", "LI", "H true", "H"))
      for k, t in ipairs(v.tiles) do
        io.write(("%-5d %6d %6d %8.1f %8.1f %8.0f %8.0f\n"):format(k, t.truth.count, t.got.count,
          t.truth.labelling_index, t.got.labelling_index, t.truth.h_score, t.got.h_score))
      end
      io.write(("%d synthetic tiles (%dx%d): count error %.2f %% mean, %.2f %% max; labelling index error %.2f mean, %.2f max (points); H-score error %.2f mean, %.2f max (%.2f s)\n")
        :format(validate, size or 256, size or 256, v.count.mean, v.count.max, v.labelling_index.mean,
          v.labelling_index.max, v.h_score.mean, v.h_score.max, v.seconds))
    end
    return 0
  end

  if #images == 0 then io.stderr:write(USAGE); return 2 end
  local results, failed = {}, 0
  for _, path in ipairs(images) do
    local r, msg = Q.quantify(path, opts)
    if not r then
      io.stderr:write("histops ihc: ", msg, "\n")
      failed = failed + 1
    else
      local s = Q.summary(r)
      s.image = path
      if overlay then
        local p = out_path(overlay, path, "_overlay", #images > 1)
        assert(hs.image.save(p, r:overlay(assert(hs.image.load(path)), thickness)))
        s.overlay = p
      end
      if labels then
        if r.count > 65535 then error("more than 65535 nuclei: labels do not fit a 16-bit PNG", 0) end
        local p = out_path(labels, path, "_labels", #images > 1)
        assert(hs.image.save(p, r.labels:astype("u16")))
        s.labels = p
      end
      results[#results + 1] = s
      if not as_json then io.write(path, ": ", Q.format(r), "\n") end
    end
  end
  if as_json then print(hs.json.encode(#images == 1 and results[1] or results)) end
  return failed > 0 and 1 or 0
end

return M
