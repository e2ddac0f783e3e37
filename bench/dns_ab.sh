#!/usr/bin/env bash
# A/B DNS throughput of two cairn binaries (e.g. this tree's and an older commit's
# release build), the same 1,000 services and queries as bench/run.sh, alternating three
# rounds so that machine noise hits both. Loopback only (127.0.0.90/91), bounded runs.
#
#   bash bench/dns_ab.sh target/release/cairn /path/to/older/cairn   # SECS=8 for longer
set -euo pipefail
command -v dnsperf >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf >/dev/null; }
A=$1; B=$2; SECS=${SECS:-5}
W=$(mktemp -d)
python3 - "$W" <<'PY'
import random, sys
w = sys.argv[1]
random.seed(1)
open(f"{w}/q.txt", "w").write("".join(f"web{random.randrange(1000)}.service.consul A\n" for _ in range(100000)))
PY
run() { # bin ip
  "$1" agent -server -bootstrap -node ab -bind $2 -client $2 -data-dir "$W/d-$2" -log-level warn >/dev/null 2>&1 &
  local pid=$!
  until curl -sf "http://$2:8500/v1/status/leader" | grep -q 8300; do sleep 0.1; done
  python3 - "$2" <<'PY'
import json, sys, urllib.request
ip = sys.argv[1]
for i in range(1000):
    body = json.dumps({"Node": f"host{i}", "Address": f"10.0.{i//250}.{i%250+1}", "Service": {"Service": f"web{i}", "Port": 80}}).encode()
    urllib.request.urlopen(urllib.request.Request(f"http://{ip}:8500/v1/catalog/register", data=body, method="PUT")).read()
PY
  local qps
  qps=$(dnsperf -s $2 -p 8600 -d "$W/q.txt" -l $SECS -c 1 -q 200 2>/dev/null | awk '/Queries per second:/ {print $4}')
  kill $pid; wait $pid 2>/dev/null || true
  echo "$qps"
}
for round in 1 2 3; do
  a=$(run "$A" 127.0.0.90); b=$(run "$B" 127.0.0.91)
  echo "round $round: A=$a B=$b ratio=$(awk -v a=$a -v b=$b 'BEGIN{printf "%.3f", a/b}')"
  rm -rf "$W"/d-*
done
rm -rf "$W"
