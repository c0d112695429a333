-- lua/hs/bench/images.lua: our side of `scripts/bench images`: times histops' image operations
-- on the same 2048x2048 RGB test image as ../shared/bench/opencv_img.py, with its repeat/median
-- rules, and prints JSON lines; `--report FILE` merges our lines with the reference's (OpenCV /
-- scikit-image, measured by scripts/bench-images) into the comparison table. Not the reference
-- side (that is Python, inline in scripts/bench-images) and not a test.
--
--   histops lua/hs/bench/images.lua [--round R] [--threads 2,1] [--only PATTERN] [--quick]
--                                   [--files DIR]
--   histops lua/hs/bench/images.lua --report FILE [--out FILE]
local hs = require "histops"
local json = require "hs.json"
local im = hs.image
local sys = hs.sys

local M = {}

local SIZE = 2048
local MPIX = SIZE * SIZE / 1e6

-- The comparisons: id -> our op (dtype of its input) and the reference op it is set against.
-- ref_lib "opencv" rows are compared at equal thread counts; "skimage/scipy" rows (single
-- threaded by design) against our 1-thread time. target: minimum ratio ours/reference in MP/s
-- (nil: shown for information). `extra`: reference ops not in opencv_img.py (same rules).
M.ops = {
  { id = "gauss_u8", what = "Gaussian sigma 2 (ksize 13)", dtype = "u8", ref_lib = "opencv",
    ref = "GaussianBlur sigma2 ksize(0,0)->13", target = 0.5 },
  { id = "gauss_f32", what = "Gaussian sigma 2 (ksize 17)", dtype = "f32", ref_lib = "opencv",
    ref = "GaussianBlur sigma2 ksize(0,0)->17", target = 1.0 },
  { id = "median5_u8", what = "median 5x5", dtype = "u8", ref_lib = "opencv", ref = "medianBlur 5", target = 0.5 },
  { id = "median5_f32", what = "median 5x5", dtype = "f32", ref_lib = "opencv", ref = "medianBlur 5", target = 1.0 },
  { id = "box5_u8", what = "box 5x5", dtype = "u8", ref_lib = "opencv", ref = "blur 5x5", extra = true },
  { id = "box5_f32", what = "box 5x5", dtype = "f32", ref_lib = "opencv", ref = "blur 5x5", extra = true, target = 1.0 },
  { id = "resize_lin_u8", what = "resize 2048->512 bilinear", dtype = "u8", ref_lib = "opencv",
    ref = "resize 2048->512 INTER_LINEAR", target = 1.0 },
  { id = "resize_lin_f32", what = "resize 2048->512 bilinear", dtype = "f32", ref_lib = "opencv",
    ref = "resize 2048->512 INTER_LINEAR", target = 0.5 },
  { id = "resize_area_u8", what = "resize 2048->512 area", dtype = "u8", ref_lib = "opencv",
    ref = "resize 2048->512 INTER_AREA", target = 0.5 },
  { id = "resize_area_f32", what = "resize 2048->512 area", dtype = "f32", ref_lib = "opencv",
    ref = "resize 2048->512 INTER_AREA", target = 0.5 },
  { id = "gray_u8", what = "rgb2gray", dtype = "u8", ref_lib = "opencv", ref = "cvtColor RGB2GRAY", target = 1.0 },
  { id = "gray_f32", what = "rgb2gray", dtype = "f32", ref_lib = "opencv", ref = "cvtColor RGB2GRAY", target = 1.0 },
  -- OpenCV's u8 HSV is u8 -> u8 (H = degrees / 2): compared with ours in the same convention;
  -- our u8 -> f32 (skimage's convention, 4x the bytes written) is shown against it for information.
  { id = "hsv_u8", what = "rgb2hsv (u8 -> u8, OpenCV's)", dtype = "u8", ref_lib = "opencv", ref = "cvtColor RGB2HSV",
    target = 1.0 },
  { id = "hsv_u8f", what = "rgb2hsv (u8 -> f32)", dtype = "u8", ref_lib = "opencv", ref = "cvtColor RGB2HSV" },
  { id = "hsv_f32", what = "rgb2hsv", dtype = "f32", ref_lib = "opencv", ref = "cvtColor RGB2HSV", target = 1.0 },
  { id = "lab_f32", what = "rgb2lab", dtype = "f32", ref_lib = "opencv", ref = "cvtColor RGB2Lab", extra = true,
    target = 1.0 },
  { id = "equalize", what = "equalize_hist (gray)", dtype = "u8", ref_lib = "opencv", ref = "equalizeHist (gray)" },
  { id = "clahe", what = "CLAHE clip 2, 8x8 (gray)", dtype = "u8", ref_lib = "opencv", ref = "CLAHE clip2 tiles8x8 (gray)" },
  { id = "otsu", what = "Otsu threshold (gray)", dtype = "u8", ref_lib = "opencv", ref = "threshold Otsu (gray)" },
  { id = "open_rect5", what = "open rect 5x5 (mask)", dtype = "u8", ref_lib = "opencv",
    ref = "morphologyEx OPEN rect5x5 (mask)" },
  { id = "cc_stats", what = "connected components 8 + stats", dtype = "u8", ref_lib = "opencv",
    ref = "connectedComponentsWithStats 8-conn (mask)" },
  { id = "png_enc1", what = "PNG encode level 1", dtype = "u8", ref_lib = "opencv", ref = "imencode PNG level1 (RGB)" },
  { id = "png_enc6", what = "PNG encode level 6", dtype = "u8", ref_lib = "opencv", ref = "imencode PNG level6 (RGB)" },
  { id = "png_dec1", what = "PNG decode (level 1 file)", dtype = "u8", ref_lib = "opencv",
    ref = "imdecode PNG (level1 file)", target = 0.9 },
  { id = "png_dec6", what = "PNG decode (level 6 file)", dtype = "u8", ref_lib = "opencv",
    ref = "imdecode PNG (level6 file)", target = 0.9 },
  { id = "jpeg_dec", what = "JPEG decode (q95 4:2:0 file)", dtype = "u8", ref_lib = "opencv",
    ref = "imdecode JPEG (q95 file)", extra = true, target = 0.9 },
  { id = "png_dec_enc1", what = "PNG decode + encode level 1", dtype = "u8", ref_lib = "opencv",
    ref = "PNG decode+encode level1" },
  { id = "hed_u8", what = "rgb2hed (u8 -> f32)", dtype = "u8", ref_lib = "skimage/scipy",
    ref = "skimage.color.rgb2hed", ref_dtype = "u8->f64", target = 10 },
  { id = "hed_f32", what = "rgb2hed", dtype = "f32", ref_lib = "skimage/scipy", ref = "skimage.color.rgb2hed",
    target = 10 },
  { id = "sk_gauss_f32", what = "Gaussian sigma 2 (ksize 17)", dtype = "f32", ref_lib = "skimage/scipy",
    ref = "skimage.filters.gaussian sigma2 (mode reflect, truncate4)", info = true, same_as = "gauss_f32" },
  { id = "sk_median5_u8", what = "median 5x5", dtype = "u8", ref_lib = "skimage/scipy",
    ref = "scipy.ndimage.median_filter 5x5 per channel", info = true, same_as = "median5_u8" },
  { id = "sk_area_f32", what = "resize 2048->512 area", dtype = "f32", ref_lib = "skimage/scipy",
    ref = "skimage.transform.downscale_local_mean 4x4 (=INTER_AREA)", info = true, same_as = "resize_area_f32" },
  { id = "sk_gray_u8", what = "rgb2gray (u8)", dtype = "u8", ref_lib = "skimage/scipy", ref = "skimage.color.rgb2gray",
    ref_dtype = "u8->f64", info = true, same_as = "gray_u8" },
  { id = "sk_hsv_u8", what = "rgb2hsv (u8 -> f32)", dtype = "u8", ref_lib = "skimage/scipy",
    ref = "skimage.color.rgb2hsv", ref_dtype = "u8->f64", info = true, same_as = "hsv_u8f" },
  { id = "sk_lab_u8", what = "rgb2lab (u8 -> f32)", dtype = "u8", ref_lib = "skimage/scipy",
    ref = "skimage.color.rgb2lab", ref_dtype = "u8->f64", info = true, extra = true },
  { id = "sk_label", what = "connected components 8", dtype = "u8", ref_lib = "skimage/scipy",
    ref = "skimage.measure.label 8-conn (mask)", ref_dtype = "bool", info = true },
}

local by_id = {}
for _, op in ipairs(M.ops) do by_id[op.id] = op end

-- ---- the test image: skimage's ihc.png mirrored-tiled 4x4 (as opencv_img.make_image) ----

function M.data_dir()
  return os.getenv("HISTOPS_DATA") or (sys.exe():match("^(.*)/[^/]+/[^/]+$") or ".") .. "/../shared/data"
end

function M.make_image()
  local path = M.data_dir() .. "/skimage_microscopy_samples/ihc.png"
  local ihc, err = im.load(path)
  if not ihc then error("cannot load the test image: " .. tostring(err)) end
  if ihc:shape()[3] ~= 3 then ihc = ihc:narrow(3, 1, 3):contiguous() end
  local row = hs.cat({ ihc, im.flip(ihc, "h") }, 2)        -- [ihc, ihc[:, ::-1]]
  local block = hs.cat({ row, im.flip(row, "v") }, 1)      -- [row; row[::-1]]
  local two = hs.cat({ block, block }, 2)
  local img = hs.cat({ two, two }, 1)
  local s = img:shape()
  assert(s[1] == SIZE and s[2] == SIZE and s[3] == 3, "test image is not 2048x2048x3")
  return img
end

-- ---- timing: opencv_img.bench's rules ----

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end
M.median = median

local function release(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if hs.tensor.is_tensor(v) then v:release() end
  end
end

-- Median wall time of fn() after one warm-up call; a warm-up slower than 1 s counts as a repeat.
-- Outputs are released right away, so the C heap behaves like numpy's (freed on return).
function M.bench(fn, min_reps, min_time, max_reps)
  min_reps, min_time, max_reps = min_reps or 5, min_time or 0.25, max_reps or 50
  local t0 = sys.clock()
  release(fn())
  local first = sys.clock() - t0
  local ts = {}
  if first > 1.0 then ts[1] = first end
  local start = sys.clock()
  while #ts < max_reps and (#ts < min_reps or sys.clock() - start < min_time) do
    t0 = sys.clock()
    local a, b, c = fn()
    ts[#ts + 1] = sys.clock() - t0
    release(a, b, c)
  end
  return median(ts), #ts
end

local function read_bytes(path) return assert(hs.sys.read_file(path)) end

-- Our op closures, given the inputs.
local function make_fns(files)
  local img = M.make_image()
  local imgf = im.to_float(img)
  local gray = im.rgb2gray(img)
  local mask = im.otsu(gray, { invert = true })
  local png1 = files and read_bytes(files .. "/ihc2048_l1.png") or im.encode_png(img, 1)
  local png6 = files and read_bytes(files .. "/ihc2048_l6.png") or im.encode_png(img, 6)
  local jpg = files and read_bytes(files .. "/ihc2048_q95.jpg") or im.encode_jpeg(img, 95)
  local fns = {
    gauss_u8 = function() return im.gaussian(img, 2) end,
    gauss_f32 = function() return im.gaussian(imgf, 2) end,
    median5_u8 = function() return im.median(img, 5) end,
    median5_f32 = function() return im.median(imgf, 5) end,
    box5_u8 = function() return im.box(img, 5) end,
    box5_f32 = function() return im.box(imgf, 5) end,
    resize_lin_u8 = function() return im.resize(img, 512, 512, "bilinear") end,
    resize_lin_f32 = function() return im.resize(imgf, 512, 512, "bilinear") end,
    resize_area_u8 = function() return im.resize(img, 512, 512, "area") end,
    resize_area_f32 = function() return im.resize(imgf, 512, 512, "area") end,
    gray_u8 = function() return im.rgb2gray(img) end,
    gray_f32 = function() return im.rgb2gray(imgf) end,
    hsv_u8 = function() return im.rgb2hsv(img, { dtype = "u8" }) end,
    hsv_u8f = function() return im.rgb2hsv(img) end,
    hsv_f32 = function() return im.rgb2hsv(imgf) end,
    lab_f32 = function() return im.rgb2lab(imgf) end,
    equalize = function() return im.equalize_hist(gray) end,
    clahe = function() return im.clahe(gray, { clip = 2, tiles = 8 }) end,
    otsu = function() return im.otsu(gray, { invert = true }) end,
    open_rect5 = function() return im.open(mask, { shape = "rect", ksize = 5 }) end,
    cc_stats = function() return im.connected_components(mask, { connectivity = 8 }) end,
    png_enc1 = function() return im.encode_png(img, 1) end,
    png_enc6 = function() return im.encode_png(img, 6) end,
    png_dec1 = function() return im.decode(png1) end,
    png_dec6 = function() return im.decode(png6) end,
    jpeg_dec = function() return im.decode(jpg) end,
    png_dec_enc1 = function()
      local t = im.decode(png1)
      local s = im.encode_png(t, 1)
      t:release()
      return s
    end,
    hed_u8 = function() return im.rgb2hed(img) end,
    hed_f32 = function() return im.rgb2hed(imgf) end,
    sk_lab_u8 = function() return im.rgb2lab(img) end,
    sk_label = function() return im.connected_components(mask, { connectivity = 8, stats = false }) end,
  }
  for _, op in ipairs(M.ops) do
    if op.same_as then fns[op.id] = fns[op.same_as] end
  end
  return fns
end

local function parse_args(argv)
  local a = { threads = { 2, 1 }, round = 0 }
  local i = 1
  while i <= #argv do
    local k = argv[i]
    local function val()
      i = i + 1
      if argv[i] == nil then error("missing value after " .. k) end
      return argv[i]
    end
    if k == "--round" then a.round = tonumber(val())
    elseif k == "--threads" then
      a.threads = {}
      for n in val():gmatch("%d+") do a.threads[#a.threads + 1] = tonumber(n) end
    elseif k == "--only" then a.only = val()
    elseif k == "--quick" then a.quick = true
    elseif k == "--files" then a.files = val()
    elseif k == "--report" then a.report = val()
    elseif k == "--out" then a.out = val()
    elseif k == "--list" then a.list = true
    else error("unknown argument " .. k) end
    i = i + 1
  end
  return a
end

-- --only ID[,ID...]: ops whose id starts with one of the given prefixes.
local function selected(op, a)
  if a.quick and op.info then return false end
  if not a.only then return true end
  for p in a.only:gmatch("[^,]+") do
    if op.id:sub(1, #p) == p then return true end
  end
  return false
end

-- One round of our side: every selected op at every thread count (skimage-referenced ops at 1
-- thread only, unless an OpenCV row already measures the same op), JSON lines on stdout.
function M.measure(a)
  local fns = make_fns(a.files)
  local env = { kind = "env", side = "histops", version = hs.version, cpu = sys.cpu_model(), nproc = sys.nproc(),
    image = "ihc.png mirrored-tiled to 2048x2048x3 uint8; float32 = to_float" }
  print(json.encode(env))
  local min_reps, min_time = 5, 0.25
  if a.quick then min_reps, min_time = 3, 0.1 end
  local want, order = {}, {}   -- our op id -> thread counts it is compared at
  for _, op in ipairs(M.ops) do
    if selected(op, a) then
      local oid = op.same_as or op.id
      if not want[oid] then want[oid] = {}; order[#order + 1] = oid end
      want[oid][1] = true
      if op.ref_lib == "opencv" then want[oid].all = true end
    end
  end
  for _, threads in ipairs(a.threads) do
    sys.set_threads(threads)
    for _, oid in ipairs(order) do
      if want[oid].all or threads == 1 then
        local med, n = M.bench(fns[oid], min_reps, min_time)
        print(json.encode({ kind = "img_op_round", side = "histops", id = oid, round = a.round,
          dtype = by_id[oid].dtype, threads = threads, median_ms = med * 1e3, reps = n }))
        io.stdout:flush()
      end
    end
  end
end

-- ---- the report: median over rounds, ratio per op and thread count ----

local function fmt_mp(t) return t and string.format("%8.1f", MPIX / t) or "       -" end

function M.report(a)
  local ours, refs = {}, {}   -- [id or ref key][threads] = { seconds per round }
  local env = {}
  for line in io.lines(a.report) do
    if line:match("^%s*{") then
      local r = json.decode(line)
      if r.kind == "img_op_round" then
        local store, key = ours, r.id
        if r.side ~= "histops" then store, key = refs, r.lib .. "|" .. r.op .. "|" .. r.dtype end
        store[key] = store[key] or {}
        store[key][r.threads] = store[key][r.threads] or {}
        table.insert(store[key][r.threads], r.median_ms / 1e3)
      elseif r.kind == "env" then
        env[#env + 1] = r
      end
    end
  end
  local rows, n_pass, n_miss = {}, 0, 0
  local out = a.out and assert(io.open(a.out, "w"))
  print(string.format("%-34s %-4s %3s %9s %9s %-8s %7s %6s  %s", "op (ours)", "dt", "thr", "ours MP/s", "ref MP/s",
    "ref", "ratio", "target", "verdict"))
  for _, op in ipairs(M.ops) do
    local oid = op.same_as or op.id
    local rkey = op.ref_lib .. "|" .. op.ref .. "|" .. (op.ref_dtype or op.dtype)
    local threads_list = op.ref_lib == "opencv" and { 1, 2 } or { 1 }
    for _, th in ipairs(threads_list) do
      local o = ours[oid] and ours[oid][th]
      local r = refs[rkey] and refs[rkey][th]
      if (o or r) and not (op.info and not r) then   -- info rows only when the reference ran
        local to, tr = o and median(o), r and median(r)
        local ratio = (to and tr) and tr / to or nil
        local verdict = "info"
        if op.target and ratio then
          if ratio >= op.target then verdict, n_pass = "PASS", n_pass + 1 else verdict, n_miss = "MISS", n_miss + 1 end
        elseif op.target then
          verdict = "n/a"
        end
        print(string.format("%-34s %-4s %3d %9s %9s %-8s %7s %6s  %s", op.what:sub(1, 34), op.dtype, th, fmt_mp(to),
          fmt_mp(tr), op.ref_lib == "opencv" and "opencv" or "skimage", ratio and string.format("%6.2fx", ratio) or "     -",
          op.target and string.format("%.1fx", op.target) or "-", verdict))
        rows[#rows + 1] = { kind = "img_cmp", id = op.id, op = op.what, dtype = op.dtype, threads = th,
          ours_ms = to and to * 1e3, ref_ms = tr and tr * 1e3, ours_mpix_s = to and MPIX / to,
          ref_mpix_s = tr and MPIX / tr, ref_lib = op.ref_lib, ref_op = op.ref, ratio = ratio, target = op.target,
          verdict = verdict, rounds = o and #o or 0 }
        if out then out:write(json.encode(rows[#rows]), "\n") end
      end
    end
  end
  print(string.format("targets: %d PASS, %d MISS (ratio = our MP/s / reference MP/s, median over rounds; "
    .. "skimage/scipy rows are single-threaded and compared with our 1-thread time)", n_pass, n_miss))
  if out then
    for _, e in ipairs(env) do out:write(json.encode(e), "\n") end
    out:close()
  end
  return rows
end

function M.main(argv)
  local a = parse_args(argv)
  if a.list then
    for _, op in ipairs(M.ops) do print(op.id, op.what, op.dtype, op.ref_lib, op.ref) end
  elseif a.report then
    M.report(a)
  else
    M.measure(a)
  end
  return 0
end

if ... ~= "hs.bench.images" then   -- run as a script: histops lua/hs/bench/images.lua ...
  os.exit(M.main(arg or {}))
end
return M
