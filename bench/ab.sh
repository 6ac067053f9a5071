#!/usr/bin/env bash
# Side-by-side hark bench runs (docs/PERFORMANCE.md, issue 15): each
# variant is "NAME|BINARY|BENCH-ARGS", run against a fresh `BINARY serve`
# and store, the variants alternating, RUNS times (default 3). Prints one
# line per run; the median is left to the reader (three numbers).
#   bench/ab.sh "old|/tmp/hark-old|--clients 1000 --items 20" "new|/tmp/hark-new|--clients 1000 --items 20"
# RUNS=5 bench/ab.sh ... for more. Needs python3 for the summary line.
set -euo pipefail
runs=${RUNS:-3}
dir=$(mktemp -d)
pid=""
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
ulimit -n 20000 2>/dev/null || true # 10,000 clients and their server
one() { # one NAME BINARY ARGS RUN
  local name=$1 bin=$2 args=$3 n=$4
  rm -rf "$dir/data"
  "$bin" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --data "$dir/data" \
    --max-conns 20000 --max-conns-per-addr 20000 2>"$dir/serve.log" &
  pid=$!
  for _ in $(seq 100); do grep -q 'hark serve is running' "$dir/serve.log" && break; sleep 0.1; done
  local proto api
  proto=$(sed -n 's/.*hark serve is running.* protocol=\([^ ]*\).*/\1/p' "$dir/serve.log")
  api=$(sed -n 's/.*hark serve is running.* publish_api=\([^ ]*\).*/\1/p' "$dir/serve.log")
  # shellcheck disable=SC2086 # ARGS are words
  "$bin" bench --server "$proto" --http "$api" $args --server-pid "$pid" --json >"$dir/r.json" 2>/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
  python3 - "$dir/r.json" "$name" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r["server_process"]
print(f'{sys.argv[2]} run {sys.argv[3]}: fetch p50 {r["fetch_ms"]["p50"]} p99 {r["fetch_ms"]["p99"]} ms, '
      f'notif p99 {r["notif_ms"]["p99"]} ms, server CPU {s.get("run_cpu_s", s.get("cpu_s"))} s, '
      f'lost {r["lost"]}, duplicated {r["duplicated"]}', flush=True)
PY
}
for n in $(seq "$runs"); do
  for v in "$@"; do
    IFS='|' read -r name bin args <<<"$v"
    one "$name" "$bin" "$args" "$n"
  done
done
