#!/usr/bin/env bash
# tests/valgrind.sh HISTOPS_BINARY: valgrind (memcheck) over a short training run (quickstart,
# 1 epoch on 48 synthetic tiles) and over a serve session (histops serve on 127.0.0.1 with the
# model just trained: health, readiness, models, metrics, predictions, malformed requests, then
# SIGTERM). Any memcheck error or definite leak fails (exit 99 from valgrind, 1 from here).
# Builds nothing: give it a binary built without sanitizers and without -march=native (valgrind
# cannot run AddressSanitizer binaries, and knows no AVX-512), e.g.
#   cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHS_NATIVE=OFF && cmake --build build-valgrind -j2 --target histops
#   tests/valgrind.sh build-valgrind/histops            (about 3-5 minutes on 2 cores)
# Third-party noise is suppressed by tests/valgrind.supp (each entry justified there).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
exe=${1:-}
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
    echo "usage: tests/valgrind.sh HISTOPS_BINARY (a RelWithDebInfo build, see the header)" >&2
    exit 2
fi
exe=$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
command -v curl >/dev/null || { echo "valgrind.sh: curl is not installed (apt-get install curl)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/hs-valgrind-XXXXXX)
server=
cleanup() {
    [ -n "$server" ] && kill -9 "$server" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

export HISTOPS_CACHE=$tmp/cache HISTOPS_THREADS=2 OPENBLAS_NUM_THREADS=2 OPENBLAS_CORETYPE=Haswell
vg=(valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --track-origins=no --num-callers=30
    --suppressions="$top/tests/valgrind.supp")
failed=0
t0=$(date +%s)

# ---- 1. a short training run (no git: libgit2 is exercised by the C tests)
echo "== valgrind: training run"
if "${vg[@]}" --log-file="$tmp/train.vg" "$exe" run "$top/experiments/quickstart.lua" --no-git --quiet \
        --out "$tmp/runs" --set train.epochs=1 --set data.synthetic.tiles=48 --set train.batch=8 \
        --set eval.bootstrap=10 >"$tmp/train.out" 2>&1; then
    echo "-- training run: ok ($(( $(date +%s) - t0 )) s)"
else
    rc=$?
    echo "-- training run: FAILED (exit $rc)"; cat "$tmp/train.vg" "$tmp/train.out" | tail -80
    failed=1
fi
run_dir=$(ls -d "$tmp"/runs/quickstart/*/ 2>/dev/null | head -1)
if [ -z "$run_dir" ] || [ ! -f "$run_dir/model.safetensors" ]; then
    echo "valgrind.sh: the training run left no model; cannot test serve" >&2
    exit 1
fi

# ---- 2. a serve session on the loopback interface
echo "== valgrind: serve session"
t1=$(date +%s)
"${vg[@]}" --log-file="$tmp/serve.vg" "$exe" serve --model "$run_dir" --host 127.0.0.1 --port 0 \
    --port-file "$tmp/port" --log "$tmp/requests.jsonl" --poll 1 --drain-timeout 20 >"$tmp/serve.out" 2>&1 &
server=$!
for _ in $(seq 1 600); do  # valgrind startup is slow: up to 2 minutes
    [ -s "$tmp/port" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
done
port=$(cat "$tmp/port" 2>/dev/null || true)
if [ -z "$port" ]; then
    echo "-- serve: FAILED (did not start)"; cat "$tmp/serve.out" "$tmp/serve.vg" | tail -60
    exit 1
fi
img=$(find "$HISTOPS_CACHE" -name '*.png' | head -1)
expect() {  # expect STATUS CURL-ARGS...: one request, its HTTP status must be STATUS
    local want=$1; shift
    local got
    got=$(curl -s -o "$tmp/body" -w '%{http_code}' --max-time 120 "$@")
    if [ "$got" != "$want" ]; then
        echo "   request $* -> $got, want $want: $(head -c 300 "$tmp/body")"
        failed=1
    fi
}
base=http://127.0.0.1:$port
expect 200 "$base/healthz"
expect 200 "$base/readyz"
expect 200 "$base/v1/models"
expect 200 "$base/metrics"
for _ in 1 2 3; do
    expect 200 -X POST -H 'Content-Type: image/png' --data-binary @"$img" "$base/v1/predict"
done
expect 200 -X POST -F "image=@$img;type=image/png" -F "image2=@$img;type=image/png" "$base/v1/predict"
expect 400 -X POST -H 'Content-Type: image/png' --data-binary 'not a png' "$base/v1/predict"
expect 415 -X POST -H 'Content-Type: text/plain' --data-binary 'hello' "$base/v1/predict"
expect 404 "$base/no/such/route"
kill -TERM "$server"
wait "$server"
rc=$?
server=
if [ "$rc" -eq 0 ]; then
    echo "-- serve session: ok ($(( $(date +%s) - t1 )) s)"
else
    echo "-- serve session: FAILED (exit $rc)"; tail -80 "$tmp/serve.vg"; tail -20 "$tmp/serve.out"
    failed=1
fi

echo "valgrind.sh: $(( $(date +%s) - t0 )) s"
if [ "$failed" -ne 0 ]; then
    echo "valgrind: FAILED"
    exit 1
fi
echo "valgrind: no errors, no definite leaks"
