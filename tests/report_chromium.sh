#!/usr/bin/env bash
# tests/report_chromium.sh [HISTOPS]: the per-run HTML report in a real browser. Runs the
# quickstart experiment (2 epochs) into a temp folder, loads its report.html in headless Chromium
# (no network: every host resolves to nothing), checks the rendered DOM for the summary table,
# the SVG charts, the confusion heat-map cells, the ROC chart and the sample-prediction images,
# then takes a screenshot and checks (with histops itself) that it is not blank.
# Prints SKIP and exits 0 when Chromium is not installed (apt-get install -y chromium).
# Run: tests/report_chromium.sh [build/histops]   (tests/lua/test_report_chromium.lua runs it)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
hs=${1:-${HISTOPS_BIN:-$top/build/histops}}
[ -x "$hs" ] || { echo "report_chromium: no histops executable at $hs (build first)" >&2; exit 1; }

chrome=""
for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null 2>&1; then chrome=$(command -v "$c"); break; fi
done
if [ -z "$chrome" ]; then
    echo "SKIP: report_chromium: chromium is not installed (apt-get install -y chromium)"
    exit 0
fi

tmp=$(mktemp -d /tmp/hs-report-chromium-XXXXXX)
cleanup() { rm -rf -- "$tmp"; }
trap cleanup EXIT

fail() { echo "report_chromium: FAIL: $*" >&2; exit 1; }

# 1. a short quickstart run
HISTOPS_CACHE="$tmp/cache" "$hs" run "$top/experiments/quickstart.lua" --no-git --quiet --out "$tmp/runs" \
    --set train.epochs=2 >/dev/null || fail "the quickstart run failed"
report=$(find "$tmp/runs/quickstart" -name report.html | head -1)
[ -s "$report" ] || fail "no report.html"
if grep -Eq '(src|href)="(https?:)?//' "$report"; then fail "the report loads something from the network"; fi

# shellcheck disable=SC2054  # the comma in --window-size is chromium's syntax
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --disable-extensions --disable-dev-shm-usage
       --host-resolver-rules="MAP * ~NOTFOUND" --user-data-dir="$tmp/profile" --window-size=1280,2400)

# 2. the rendered DOM
timeout 120 "$chrome" "${flags[@]}" --dump-dom "file://$report" > "$tmp/dom.html" 2> "$tmp/chrome.log" \
    || { tail -5 "$tmp/chrome.log" >&2; fail "chromium --dump-dom failed"; }
[ -s "$tmp/dom.html" ] || fail "chromium rendered nothing"
count() { grep -o -- "$1" "$tmp/dom.html" | wc -l; }
# section bodies, one per line, to check what each holds
tr -d '\n' < "$tmp/dom.html" | sed 's/<section /\n<section /g' > "$tmp/sections.txt"
section() { grep "^<section id=\"$1\"" "$tmp/sections.txt" || true; }

grep -q '<table class="data">' <<< "$(section summary)" || fail "no summary table"
[ "$(section summary | grep -o '<tr>' | wc -l)" -ge 5 ] || fail "the summary table has fewer than 5 rows"
[ "$(count '<svg class="chart"')" -ge 2 ] || fail "fewer than 2 SVG charts"
[ "$(count '<polyline class="series"')" -ge 2 ] || fail "the charts have no curves"
[ "$(section confusion | grep -o 'class="cell"' | wc -l)" -ge 4 ] || fail "no confusion heat-map cells (2x2 expected)"
grep -q '<svg class="chart"' <<< "$(section roc)" || fail "no ROC chart"
[ "$(section samples | grep -o '<img[^>]*src="data:image/png;base64,' | wc -l)" -ge 4 ] || fail "fewer than 4 sample images"
grep -q '<h1>histops run' "$tmp/dom.html" || fail "no title"

# 3. a screenshot that is not blank
(cd "$tmp" && timeout 120 "$chrome" "${flags[@]}" --screenshot="$tmp/shot.png" "file://$report" >/dev/null 2>>"$tmp/chrome.log") \
    || { tail -5 "$tmp/chrome.log" >&2; fail "chromium --screenshot failed"; }
[ -s "$tmp/shot.png" ] || fail "no screenshot"
cat > "$tmp/pixels.lua" <<'EOF'
local hs = require "histops"
local img = assert(hs.image.load(arg[1]))
local s = img:shape()
local g = img:narrow(3, 1, 3):contiguous():astype("f32")
local std = g:std():item()
local dark = g:lt(200):astype("f32"):mean():item()
print(("%dx%d std %.2f non-white %.4f"):format(s[2], s[1], std, dark))
if s[1] < 100 or s[2] < 100 then error("screenshot too small") end
if std < 5 or dark < 0.005 then error("the screenshot looks blank") end
EOF
stats=$("$hs" "$tmp/pixels.lua" "$tmp/shot.png") || fail "screenshot check: $stats"
echo "report_chromium: ok (DOM: $(count '<svg') svg, $(count 'class="cell"') heat-map cells, $(count 'data:image/png') images; screenshot $stats)"
