-- tests/lua/test_report.lua: the HTML report builders produce well-formed, self-contained output.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local r = require "hs.report"

assert(r.base64("") == "" and r.base64("f") == "Zg==" and r.base64("fo") == "Zm8=" and r.base64("foobar") == "Zm9vYmFy",
  "base64 matches RFC 4648 vectors")
local svg = r.line_chart { title = "loss", series = { { name = "train", points = { { 1, 2 }, { 2, 1 }, { 3, 0.5 } } } } }
assert(svg:find("<svg", 1, true) and svg:find("<polyline", 1, true) and svg:find("</svg>", 1, true), "line chart is svg")
local hm = r.heatmap { matrix = { { 5, 1 }, { 0, 4 } }, labels = { "a<b", "c" } }
local _, cells = hm:gsub('class="cell"', "")
assert(cells == 4, "heat map has one cell per matrix entry")
assert(hm:find("a&lt;b", 1, true), "labels are escaped")
local page = r.page("run <1>", { { title = "Curves", html = svg } })
assert(page:find("<!DOCTYPE html>", 1, true) and page:find("<h2>Curves</h2>", 1, true), "page renders")
assert(not page:find("<script src", 1, true) and not page:find("https://", 1, true), "no external resources")
print("test_report: ok")
