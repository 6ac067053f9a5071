#!/usr/bin/env bash
# The TLS fetch cycle against the plaintext one (docs/PERFORMANCE.md,
# "TLS and tokens"): one binary, a fresh hark serve and store per run,
# plaintext and TLS with tokens alternated three times, 1,000 identified
# clients, 100 ads each. Usage: bench/tls_vs_plain.sh [scratch-dir]
# HARK_BENCH_ARGS adds flags to each hark bench (--classic: the fetch
# cycle instead of items in pushes).
set -euo pipefail
umask 077 # token files must be readable by their owner only
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$(mktemp -d)}
mkdir -p "$dir"
cd "$dir"
go build -C "$repo" -o "$dir/hark" .
[ -f cert.pem ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout key.pem -out cert.pem 2>/dev/null
one() { # one MODE RUN
  local mode=$1 n=$2 extra=() bextra=()
  rm -rf data
  ./hark token add --data data --scope subscribe >sub.token 2>/dev/null
  ./hark token add --data data --scope publish >pub.token 2>/dev/null
  if [ "$mode" = tls ]; then
    extra=(--auth --tls-cert cert.pem --tls-key key.pem)
    bextra=(--ca cert.pem --token-file sub.token --publish-token-file pub.token)
  fi
  ./hark serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --data data "${extra[@]}" 2>serve.log &
  local pid=$!
  for _ in $(seq 100); do grep -q 'hark serve is running' serve.log && break; sleep 0.1; done
  local proto api
  proto=$(sed -n 's/.*hark serve is running.* protocol=\([^ ]*\).*/\1/p' serve.log)
  api=$(sed -n 's/.*hark serve is running.* publish_api=\([^ ]*\).*/\1/p' serve.log)
  ./hark bench --server "$proto" --http "$api" "${bextra[@]}" --clients 1000 --items 100 ${HARK_BENCH_ARGS:-} \
    --server-pid "$pid" --json >"$mode-$n.json" 2>/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  python3 - "$mode-$n.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r["server_process"]
print(f'{sys.argv[1]}: fetch p50 {r["fetch_ms"]["p50"]} p99 {r["fetch_ms"]["p99"]} ms, notif p99 {r["notif_ms"]["p99"]} ms, '
      f'connect {r["connect_s"]} s (server CPU {s["connect_cpu_s"]} s), run server CPU {s.get("run_cpu_s", s.get("cpu_s"))} s, server RSS connected {s["connected_rss_mib"]} MiB, '
      f'lost {r["lost"]}, duplicated {r["duplicated"]}')
PY
}
for n in 1 2 3; do one plain "$n"; one tls "$n"; done
