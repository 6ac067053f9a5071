#!/usr/bin/env bash
# The side-by-side figures of docs/PERFORMANCE.md, "Gateways over NATS
# JetStream" (issue 14): one hark bench, 1,000 identified clients, against
#   bolt     one hark serve, its bbolt store (the default);
#   js1      one hark serve --store nats:// over a 1-node JetStream;
#   js3x2    two hark serve --store nats:// over a 3-node cluster, the
#            clients spread over both, the ads published through the first.
# Every process on this machine and on loopback. NATS is Debian's
# nats-server (apt-get install nats-server). Per configuration and run: a
# fresh store, a closed loop of 20 ads (fetch and publish p99), then ads at
# fixed rates (RATES) for 10 s each, to find the rate where fetch p99
# passes 100 ms. Prints one JSON object per bench run (tagged), then the
# tables.
#
#   bash bench/gateways.sh [RUNS] > /tmp/gateways.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
RATES=${RATES:-"20 50 100 200"}
NATS=${NATS:-$(command -v nats-server || echo /usr/sbin/nats-server)}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/hark" .
HARK="$work/hark"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# nats_cluster N: starts N nats-server nodes in one cluster; sets URLS.
nats_cluster() {
  local n=$1 i routes="" cl=() rt=() mon=()
  for ((i = 0; i < n; i++)); do cl+=("$(port)"); rt+=("$(port)"); mon+=("$(port)"); done
  for ((i = 0; i < n; i++)); do routes+="nats://127.0.0.1:${rt[$i]},"; done
  URLS=""
  for ((i = 0; i < n; i++)); do
    local d="$work/nats$i-$RANDOM"
    mkdir -p "$d"
    {
      echo "server_name: n$i"
      echo "listen: \"127.0.0.1:${cl[$i]}\""
      echo "http: \"127.0.0.1:${mon[$i]}\""
      echo "jetstream { store_dir: \"$d/js\" }"
      if [ "$n" -gt 1 ]; then
        echo "cluster { name: bench, listen: \"127.0.0.1:${rt[$i]}\", routes: [${routes%,}] }"
      fi
    } >"$d/nats.conf"
    "$NATS" -c "$d/nats.conf" >"$d/log" 2>&1 &
    pids+=($!)
    URLS+="nats://127.0.0.1:${cl[$i]},"
  done
  URLS=${URLS%,}
  for ((i = 0; i < n; i++)); do
    for _ in $(seq 300); do
      curl -fs "http://127.0.0.1:${mon[$i]}/healthz" >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
}

# serve ARGS...: starts hark serve; sets PROTO, API, PID.
serve() {
  local log="$work/serve-$RANDOM.log"
  "$HARK" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --data "$work/data-$RANDOM" --max-conns 20000 "$@" 2>"$log" &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 300); do grep -q 'hark serve is running' "$log" && break; sleep 0.1; done
  PROTO=$(sed -n 's/.*hark serve is running.* protocol=\([^ ]*\).*/\1/p' "$log")
  API=$(sed -n 's/.*hark serve is running.* publish_api=\([^ ]*\).*/\1/p' "$log")
  [ -n "$PROTO" ] || { echo "hark serve did not start:" >&2; cat "$log" >&2; exit 1; }
}

stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}

bench() { # TAG ARGS...
  local tag=$1
  shift
  # A run that lost an item still prints its JSON (and exits 1): keep it.
  { "$HARK" bench --json "$@" 2>/dev/null || true; } |
    python3 -c 'import json,sys; r=json.load(sys.stdin); r["tag"]=sys.argv[1]; print(json.dumps(r))' "$tag" |
    tee -a "$work/all.jsonl"
}

for run in $(seq "$RUNS"); do
  for conf in bolt js1 js3x2; do
    case $conf in
      bolt) serve; servers=$PROTO; api=$API; pid=$PID ;;
      js1) nats_cluster 1; serve --store "$URLS"; servers=$PROTO; api=$API; pid=$PID ;;
      js3x2)
        nats_cluster 3
        serve --store "$URLS"; servers=$PROTO; api=$API; pid=$PID
        serve --store "$URLS"; servers+=",$PROTO"
        ;;
    esac
    bench "$conf closed" --server "$servers" --http "$api" --server-pid "$pid" --clients 1000 --items 20
    for r in $RATES; do
      bench "$conf rate=$r" --server "$servers" --http "$api" --server-pid "$pid" --clients 1000 --items $((r * 10)) --rate "$r"
    done
    stop_all
  done
done

# The tables: medians over the runs (min-max), milliseconds.
python3 - "$work/all.jsonl" "$RUNS" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r["tag"], []).append(r)
def med(v):
    return f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"
print()
print("| configuration | fetch p99 | publish call p99 | lost | duplicated |")
print("|---|---|---|---|---|")
confs = ["bolt", "js1", "js3x2"]
for c in confs:
    rs = rows.get(c + " closed", [])
    if rs:
        print(f"| {c} | {med([r['fetch_ms']['p99'] for r in rs])} | {med([r['publish_ms']['p99'] for r in rs])} | {sum(r['lost'] for r in rs)} | {sum(r['duplicated'] for r in rs)} |")
print()
rates = sorted({float(t.split("rate=")[1]) for t in rows if "rate=" in t})
print("| configuration | " + " | ".join(f"{r:g}/s fetch p99" for r in rates) + " | highest rate with p99 <= 100 ms |")
print("|---|" + "---|" * (len(rates) + 1))
for c in confs:
    cells, best = [], "below " + (f"{rates[0]:g}/s" if rates else "?")
    for r in rates:
        rs = rows.get(f"{c} rate={r:g}", [])
        if not rs:
            cells.append("-")
            continue
        p = statistics.median([x["fetch_ms"]["p99"] for x in rs])
        lost = sum(x["lost"] + x["duplicated"] for x in rs)
        cells.append(med([x["fetch_ms"]["p99"] for x in rs]) + ("" if lost == 0 else f" ({lost} lost/dup)"))
        if p <= 100 and lost == 0:
            best = f"{r:g}/s"
    print(f"| {c} | " + " | ".join(cells) + f" | {best} |")
PY
