-- lua/hs/report.lua: self-contained HTML reports (no network): inline SVG line charts,
-- confusion-matrix heat maps, ROC curves, tables and image grids (PNG as data: URIs).
-- Pure string building; the experiment runner and `histops report` assemble pages from it.
local M = {}

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end
M.escape = esc

local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function M.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local q = {}
    for k = 3, 0, -1 do
      local v = (n >> (6 * k)) & 63
      q[#q + 1] = b64:sub(v + 1, v + 1)
    end
    if not b then q[3], q[4] = "=", "=" elseif not c then q[4] = "=" end
    out[#out + 1] = table.concat(q)
  end
  return table.concat(out)
end

local palette = { "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf" }
M.palette = palette

local function fmt(v)
  if math.abs(v) >= 1000 or (math.abs(v) < 0.01 and v ~= 0) then return ("%.2g"):format(v) end
  return ("%.3g"):format(v)
end

-- opts: {title=, xlabel=, ylabel=, width=, height=, series = { {name=, points = {{x, y}, ...}}, ... },
--        ymin=, ymax=, diagonal = bool}
function M.line_chart(opts)
  local W, H = opts.width or 480, opts.height or 300
  local L, R, T, B = 56, 16, 28, 40
  local xmin, xmax, ymin, ymax = math.huge, -math.huge, math.huge, -math.huge
  for _, s in ipairs(opts.series) do
    for _, p in ipairs(s.points) do
      if p[2] == p[2] and math.abs(p[2]) ~= math.huge then
        xmin, xmax = math.min(xmin, p[1]), math.max(xmax, p[1])
        ymin, ymax = math.min(ymin, p[2]), math.max(ymax, p[2])
      end
    end
  end
  if xmin == math.huge then xmin, xmax, ymin, ymax = 0, 1, 0, 1 end
  ymin, ymax = opts.ymin or ymin, opts.ymax or ymax
  if xmax == xmin then xmax = xmin + 1 end
  if ymax == ymin then ymax = ymin + 1 end
  local function X(x) return L + (x - xmin) / (xmax - xmin) * (W - L - R) end
  local function Y(y) return H - B - (y - ymin) / (ymax - ymin) * (H - T - B) end
  local o = { ('<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">'):format(W, H, W, H),
    ('<rect width="%d" height="%d" fill="white"/>'):format(W, H) }
  if opts.title then o[#o + 1] = ('<text x="%d" y="18" font-size="14" font-family="sans-serif">%s</text>'):format(L, esc(opts.title)) end
  for i = 0, 4 do   -- grid and ticks
    local yv = ymin + (ymax - ymin) * i / 4
    local xv = xmin + (xmax - xmin) * i / 4
    o[#o + 1] = ('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'):format(L, Y(yv), W - R, Y(yv))
    o[#o + 1] = ('<text x="%d" y="%.1f" font-size="10" text-anchor="end" font-family="sans-serif">%s</text>'):format(L - 4, Y(yv) + 3, fmt(yv))
    o[#o + 1] = ('<text x="%.1f" y="%d" font-size="10" text-anchor="middle" font-family="sans-serif">%s</text>'):format(X(xv), H - B + 14, fmt(xv))
  end
  o[#o + 1] = ('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>'):format(L, T, W - L - R, H - T - B)
  if opts.diagonal then
    o[#o + 1] = ('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#aaa" stroke-dasharray="4"/>'):format(X(0), Y(0), X(1), Y(1))
  end
  for i, s in ipairs(opts.series) do
    local pts = {}
    for _, p in ipairs(s.points) do
      if p[2] == p[2] then pts[#pts + 1] = ("%.1f,%.1f"):format(X(p[1]), Y(p[2])) end
    end
    local col = s.color or palette[(i - 1) % #palette + 1]
    o[#o + 1] = ('<polyline class="series" fill="none" stroke="%s" stroke-width="1.8" points="%s"/>'):format(col, table.concat(pts, " "))
    o[#o + 1] = ('<text x="%d" y="%d" font-size="11" fill="%s" font-family="sans-serif">%s</text>'):format(W - R - 120, T + 14 * i, col, esc(s.name or ("series " .. i)))
  end
  if opts.xlabel then o[#o + 1] = ('<text x="%d" y="%d" font-size="11" text-anchor="middle" font-family="sans-serif">%s</text>'):format((L + W - R) // 2, H - 6, esc(opts.xlabel)) end
  if opts.ylabel then o[#o + 1] = ('<text x="12" y="%d" font-size="11" font-family="sans-serif" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>'):format((T + H - B) // 2, (T + H - B) // 2, esc(opts.ylabel)) end
  o[#o + 1] = "</svg>"
  return table.concat(o, "\n")
end

-- confusion matrix heat map: matrix[true][pred] counts, labels = class names
function M.heatmap(opts)
  local m, labels = opts.matrix, opts.labels or {}
  local k = #m
  local cell = math.max(18, math.min(48, 360 // math.max(k, 1)))
  local L, T = 110, 40
  local W, H = L + cell * k + 20, T + cell * k + 70
  local o = { ('<svg class="heatmap" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">'):format(W, H, W, H),
    ('<rect width="%d" height="%d" fill="white"/>'):format(W, H) }
  if opts.title then o[#o + 1] = ('<text x="%d" y="18" font-size="14" font-family="sans-serif">%s</text>'):format(10, esc(opts.title)) end
  for i = 1, k do
    local row = 0
    for j = 1, k do row = row + m[i][j] end
    for j = 1, k do
      local f = row > 0 and m[i][j] / row or 0
      local shade = math.floor(255 - f * 200)
      o[#o + 1] = ('<rect class="cell" x="%d" y="%d" width="%d" height="%d" fill="rgb(%d,%d,255)" stroke="#fff"><title>true %s, predicted %s: %d</title></rect>')
        :format(L + (j - 1) * cell, T + (i - 1) * cell, cell, cell, shade, shade, esc(labels[i] or i - 1), esc(labels[j] or j - 1), m[i][j])
      o[#o + 1] = ('<text x="%d" y="%d" font-size="10" text-anchor="middle" font-family="sans-serif" fill="%s">%d</text>')
        :format(L + (j - 1) * cell + cell // 2, T + (i - 1) * cell + cell // 2 + 4, f > 0.6 and "white" or "black", m[i][j])
    end
    o[#o + 1] = ('<text x="%d" y="%d" font-size="10" text-anchor="end" font-family="sans-serif">%s</text>'):format(L - 4, T + (i - 1) * cell + cell // 2 + 4, esc(labels[i] or i - 1))
    o[#o + 1] = ('<text x="%d" y="%d" font-size="10" font-family="sans-serif" transform="rotate(45 %d %d)">%s</text>')
      :format(L + (i - 1) * cell + cell // 2, T + k * cell + 12, L + (i - 1) * cell + cell // 2, T + k * cell + 12, esc(labels[i] or i - 1))
  end
  o[#o + 1] = ('<text x="4" y="%d" font-size="11" font-family="sans-serif">true ↓ / predicted →</text>'):format(T - 6)
  o[#o + 1] = "</svg>"
  return table.concat(o, "\n")
end

-- rows: list of lists; header: list
function M.table(header, rows, class)
  local o = { ('<table class="%s">'):format(class or "data"), "<tr>" }
  for _, h in ipairs(header) do o[#o + 1] = "<th>" .. esc(h) .. "</th>" end
  o[#o + 1] = "</tr>"
  for _, r in ipairs(rows) do
    o[#o + 1] = "<tr>"
    for _, v in ipairs(r) do
      if type(v) == "number" then v = math.type(v) == "integer" and tostring(v) or ("%.4f"):format(v) end
      o[#o + 1] = "<td>" .. esc(v) .. "</td>"
    end
    o[#o + 1] = "</tr>"
  end
  o[#o + 1] = "</table>"
  return table.concat(o)
end

-- items: list of {png = bytes, caption = text, ok = bool}
function M.image_grid(items, size)
  size = size or 96
  local o = { '<div class="grid">' }
  for _, it in ipairs(items) do
    o[#o + 1] = ('<figure class="%s"><img width="%d" height="%d" src="data:image/png;base64,%s"/><figcaption>%s</figcaption></figure>')
      :format(it.ok == false and "wrong" or "right", size, size, M.base64(it.png), esc(it.caption or ""))
  end
  o[#o + 1] = "</div>"
  return table.concat(o)
end

local css = [[
body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table.data{border-collapse:collapse;font-size:13px} table.data td,table.data th{border:1px solid #ccc;padding:3px 8px;text-align:right}
table.data th{background:#f3f3f3} .grid{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;font-size:11px;text-align:center} figure.wrong img{outline:3px solid #d62728} figure.right img{outline:3px solid #2ca02c}
.charts{display:flex;flex-wrap:wrap;gap:16px}
]]

-- sections: list of {title = text, html = string}
function M.page(title, sections)
  local o = { "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>' .. esc(title) .. "</title>",
    "<style>" .. css .. "</style></head><body>", "<h1>" .. esc(title) .. "</h1>" }
  for _, s in ipairs(sections) do
    o[#o + 1] = ('<section id="%s"><h2>%s</h2>%s</section>'):format(esc(s.id or s.title:lower():gsub("%W+", "-")), esc(s.title), s.html)
  end
  o[#o + 1] = "</body></html>"
  return table.concat(o, "\n")
end

return M
