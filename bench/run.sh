#!/usr/bin/env bash
# Side-by-side benchmark of a single cairn server against a single etcd member (KV over
# HTTP, fsync on for both) and NSD (DNS, the same 1,000 names). Installs its own tools from
# Debian's packages, targets loopback only, bounds every load in time, and stops every
# process it started. Prints a table of figures and cairn/peer ratios.
#
# Then two figures of the read path: 10,000 parked blocking queries (PUT throughput with
# and without them, memory per parked query, wake-up latency; bench/load.py), and GET p99
# while a snapshot of 1,000,000 keys is taken, on a second cairn (127.0.0.53).
#
#   bash bench/run.sh            # full run (about 4 minutes of load)
#   SECS=3 bash bench/run.sh     # shorter loads
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}
CAIRN_IP=127.0.0.50 ETCD_IP=127.0.0.51 NSD_IP=127.0.0.52 SNAP_IP=127.0.0.53
PARKED=${PARKED:-10000} SNAP_KEYS=${SNAP_KEYS:-1000000}
# 10,000 parked queries hold 10,000 sockets in cairn and in the load tool.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

need_install=0
for tool in hey etcd dnsperf nsd; do command -v "$tool" >/dev/null 2>&1 || need_install=1; done
if [ "$need_install" = 1 ]; then
  echo "== installing hey, etcd-server, dnsperf, nsd (Debian packages)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    hey etcd-server dnsperf nsd >/dev/null
fi
echo "== building cairn (release)"
cargo build --release -q
CAIRN=$PWD/target/release/cairn

WORK=$(mktemp -d /tmp/cairnbench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_http() { # url
  for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; return 1
}
# hey output -> "rps p50_ms p99_ms"
hey_figures() {
  awk '/Requests\/sec:/ {rps=$2} /50%% in/ {p50=$3*1000} /99%% in/ {p99=$3*1000}
       /50% in/ {p50=$3*1000} /99% in/ {p99=$3*1000}
       END {printf "%.0f %.2f %.2f\n", rps, p50, p99}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

echo "== load before start: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- cairn: one server, file-backed log (fsync per group commit) ---
"$CAIRN" agent -server -bootstrap -node bench -bind $CAIRN_IP -client $CAIRN_IP \
  -data-dir "$WORK/cairn" -log-level warn >"$WORK/cairn.log" 2>&1 &
PIDS+=($!); CAIRN_PID=$!
wait_http "http://$CAIRN_IP:8500/v1/status/leader"
until curl -sf "http://$CAIRN_IP:8500/v1/status/leader" | grep -q 8300; do sleep 0.1; done

# --- etcd: one member, same disk ---
etcd --name b1 --data-dir "$WORK/etcd" \
  --listen-client-urls "http://$ETCD_IP:2379" --advertise-client-urls "http://$ETCD_IP:2379" \
  --listen-peer-urls "http://$ETCD_IP:2380" --initial-advertise-peer-urls "http://$ETCD_IP:2380" \
  --initial-cluster "b1=http://$ETCD_IP:2380" --log-level error >"$WORK/etcd.log" 2>&1 &
PIDS+=($!); ETCD_PID=$!
wait_http "http://$ETCD_IP:2379/health"

sleep 1
CAIRN_RSS=$(rss_mb $CAIRN_PID); ETCD_RSS=$(rss_mb $ETCD_PID)

VALUE=74a31e96-1d0f-4fa7-aa14-7212a326986e   # 36 bytes, as the peers' recipe
printf '%s' "$VALUE" >"$WORK/value"
echo "{\"key\":\"YmVuY2g=\",\"value\":\"$(printf '%s' "$VALUE" | base64 -w0)\"}" >"$WORK/put.json"
echo '{"key":"YmVuY2g="}' >"$WORK/rl.json"
echo '{"key":"YmVuY2g=","serializable":true}' >"$WORK/rs.json"

declare -A R
run_hey() { # name conc args...
  local name=$1 c=$2; shift 2
  R[$name]=$(hey -z "${SECS}s" -c "$c" "$@" 2>/dev/null | hey_figures)
  echo "   $name: ${R[$name]}"
}
echo "== KV load, ${SECS}s each (rps p50_ms p99_ms)"
for c in 1 64; do
  run_hey cairn_put_$c $c -m PUT -D "$WORK/value" "http://$CAIRN_IP:8500/v1/kv/bench"
  run_hey etcd_put_$c $c -m POST -T application/json -D "$WORK/put.json" "http://$ETCD_IP:2379/v3/kv/put"
done
run_hey cairn_get_64 64 "http://$CAIRN_IP:8500/v1/kv/bench"
run_hey cairn_getstale_64 64 "http://$CAIRN_IP:8500/v1/kv/bench?stale"
run_hey etcd_getser_64 64 -m POST -T application/json -D "$WORK/rs.json" "http://$ETCD_IP:2379/v3/kv/range"
run_hey etcd_getlin_64 64 -m POST -T application/json -D "$WORK/rl.json" "http://$ETCD_IP:2379/v3/kv/range"

# --- DNS: the same 1,000 names in cairn's catalog and in NSD's zone ---
echo "== DNS: registering 1,000 services in cairn, zone for NSD"
python3 - "$CAIRN_IP" "$WORK" <<'PY'
import json, random, sys, urllib.request
ip, work = sys.argv[1], sys.argv[2]
for i in range(1000):
    addr = f"10.0.{i//250}.{i%250+1}"
    body = json.dumps({"Node": f"host{i}", "Address": addr, "Service": {"Service": f"web{i}", "Port": 80}}).encode()
    urllib.request.urlopen(urllib.request.Request(f"http://{ip}:8500/v1/catalog/register", data=body, method="PUT")).read()
lines = ["$ORIGIN service.consul.", "$TTL 0",
         "@ IN SOA ns.service.consul. admin.service.consul. 1 3600 600 86400 0",
         "@ IN NS ns.service.consul.", "ns IN A 127.0.0.1"]
lines += [f"web{i} IN A 10.0.{i//250}.{i%250+1}" for i in range(1000)]
open(f"{work}/service.consul.zone", "w").write("\n".join(lines) + "\n")
random.seed(1)
open(f"{work}/queries.txt", "w").write("".join(f"web{random.randrange(1000)}.service.consul A\n" for _ in range(100000)))
PY
cat >"$WORK/nsd.conf" <<NSD
server:
  ip-address: $NSD_IP@15353
  server-count: 2
  username: ""
  chroot: ""
  zonesdir: "$WORK"
  database: ""
  zonelistfile: "$WORK/zone.list"
  xfrdfile: "$WORK/xfrd.state"
  pidfile: "$WORK/nsd.pid"
  logfile: "$WORK/nsd.log"
  hide-version: yes
  verbosity: 0
remote-control:
  control-enable: no
zone:
  name: "service.consul."
  zonefile: "service.consul.zone"
NSD
nsd -d -c "$WORK/nsd.conf" &
PIDS+=($!)
python3 - "$NSD_IP" <<'PY2'
import socket, sys, time
q = bytes.fromhex("abcd01000001000000000000") + b"\x04web1\x07service\x06consul\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
for _ in range(100):
    try:
        s.sendto(q, (sys.argv[1], 15353)); s.recv(512); break
    except OSError:
        time.sleep(0.1)
PY2

dnsperf_figures() { awk '/Queries per second:/ {qps=$4} /Average Latency/ {lat=$4*1000} /Queries lost:/ {lost=$3} END {printf "%.0f %.3f %s\n", qps, lat, lost}'; }
declare -A D
for who in cairn nsd; do
  if [ $who = cairn ]; then S=$CAIRN_IP; P=8600; else S=$NSD_IP; P=15353; fi
  D[${who}_load]=$(dnsperf -s $S -p $P -d "$WORK/queries.txt" -c 1 -q 200 -l $((SECS * 2)) 2>/dev/null | dnsperf_figures)
  D[${who}_unloaded]=$(dnsperf -s $S -p $P -d "$WORK/queries.txt" -c 1 -q 1 -l "$SECS" 2>/dev/null | dnsperf_figures)
  echo "   $who: loaded(qps avg_ms lost)=${D[${who}_load]} unloaded=${D[${who}_unloaded]}"
done

# --- parked blocking queries (bench/load.py): PUT throughput, memory, wake-up latency ---
echo "== $PARKED parked blocking queries on distinct keys, 64 clients PUT another key (${SECS}s each)"
PARK=$(timeout 600 python3 bench/load.py park $CAIRN_IP $CAIRN_PID "$PARKED" "$SECS" "$WORK/value")
echo "   rps_without rps_with rss_without_kb rss_with_kb kb_per_query p50_ms p99_ms early connected: $PARK"
p() { echo "$PARK" | cut -d' ' -f"$1"; }

# --- GET p99 while a snapshot of SNAP_KEYS keys is taken (second cairn, info log) ---
echo "== GET p99 while a snapshot of $SNAP_KEYS keys is taken"
# The entry threshold is set so that the snapshot starts on the 100th write after the
# bulk load (configuration + no-op + SNAP_KEYS writes come first).
echo "{\"raft_snapshot_threshold\": $((SNAP_KEYS + 100))}" >"$WORK/snap.json"
"$CAIRN" agent -server -bootstrap -node snap -bind $SNAP_IP -client $SNAP_IP \
  -data-dir "$WORK/snap" -config-file "$WORK/snap.json" -log-level info >"$WORK/snap.log" 2>&1 &
PIDS+=($!); SNAP_PID=$!
wait_http "http://$SNAP_IP:8500/v1/status/leader"
until curl -sf "http://$SNAP_IP:8500/v1/status/leader" | grep -q 8300; do sleep 0.1; done
FILL=$(timeout 300 python3 bench/load.py fill $SNAP_IP s/ "$SNAP_KEYS" 128)
echo "   bulk load: $FILL PUT/s; RSS $(rss_mb $SNAP_PID) MB"
curl -sf -X PUT --data-binary @"$WORK/value" "http://$SNAP_IP:8500/v1/kv/bench" >/dev/null
R[snap_get_quiet]=$(hey -z "${SECS}s" -c 64 "http://$SNAP_IP:8500/v1/kv/bench" 2>/dev/null | hey_figures)
SNAP_SECS=$((SECS + 3))
HEY_T0=$(date +%s.%N)
hey -z "${SNAP_SECS}s" -c 64 -o csv "http://$SNAP_IP:8500/v1/kv/bench" >"$WORK/snap_get.csv" 2>/dev/null &
HEY_PID=$!
sleep 1
timeout 60 python3 bench/load.py fill $SNAP_IP trigger/ 100 1 >/dev/null
for _ in $(seq 1 600); do grep -q "raft snapshot saved" "$WORK/snap.log" && break; sleep 0.1; done
SNAP_RSS=$(rss_mb $SNAP_PID)
wait $HEY_PID
SNAP_LINE=$(grep "raft snapshot saved" "$WORK/snap.log" | tail -1)
SNAP_MS=$(echo "$SNAP_LINE" | grep -o 'write_ms=[0-9]*' | cut -d= -f2)
SNAP_MB=$(echo "$SNAP_LINE" | grep -o 'bytes=[0-9]*' | cut -d= -f2 | awk '{printf "%.0f", $1/1048576}')
SNAP_END=$(date -d "$(echo "$SNAP_LINE" | awk '{print $1}')" +%s.%N 2>/dev/null || echo 0)
# "rps p50 p99" of the GETs SENT while the snapshot was being written (hey's offsets are
# seconds since its start), and p99 over the whole run.
R[snap_get_during]=$(python3 - "$WORK/snap_get.csv" "$HEY_T0" "$SNAP_END" "${SNAP_MS:-0}" <<'PY'
import csv, sys
path, t0, end, ms = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
lo, hi = end - t0 - ms / 1000, end - t0
rows = [(float(r["offset"]), float(r["response-time"])) for r in csv.DictReader(open(path))
        if r.get("status-code") == "200"]
inside = sorted(t for off, t in rows if lo <= off <= hi)
every = sorted(t for _, t in rows)
pct = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else 0
span = max(hi - lo, 1e-9)
print(f"{len(inside) / span:.0f} {pct(inside, 0.5):.2f} {pct(inside, 0.99):.2f} {pct(every, 0.99):.2f} {len(inside)}")
PY
)
echo "   GET quiet (rps p50 p99): ${R[snap_get_quiet]}"
echo "   GET sent during the snapshot (rps p50 p99 p99_whole_${SNAP_SECS}s_run count): ${R[snap_get_during]}"
echo "   snapshot: ${SNAP_MS:-none} ms, ${SNAP_MB:-?} MiB; RSS after it $SNAP_RSS MB"

f() { echo "${R[$1]}" | cut -d' ' -f"$2"; }
g() { echo "${D[$1]}" | cut -d' ' -f"$2"; }
echo
echo "== Results (2 shared cores, loopback, load generator co-located)"
printf '%-34s %12s %12s %8s\n' "figure" "cairn" "peer" "ratio"
row() { printf '%-34s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
row "PUT 1 client req/s (etcd)"           "$(f cairn_put_1 1)"  "$(f etcd_put_1 1)"
row "PUT 1 client p50 ms (etcd)"          "$(f cairn_put_1 2)"  "$(f etcd_put_1 2)"
row "PUT 64 clients req/s (etcd)"         "$(f cairn_put_64 1)" "$(f etcd_put_64 1)"
row "PUT 64 clients p99 ms (etcd)"        "$(f cairn_put_64 3)" "$(f etcd_put_64 3)"
row "GET 64 req/s vs etcd serializable"   "$(f cairn_get_64 1)" "$(f etcd_getser_64 1)"
row "GET 64 req/s vs etcd linearizable"   "$(f cairn_get_64 1)" "$(f etcd_getlin_64 1)"
row "GET ?stale 64 req/s vs etcd serial." "$(f cairn_getstale_64 1)" "$(f etcd_getser_64 1)"
row "GET 64 p99 ms (etcd serializable)"   "$(f cairn_get_64 3)" "$(f etcd_getser_64 3)"
row "DNS qps, 200 in flight (NSD)"        "$(g cairn_load 1)"   "$(g nsd_load 1)"
row "DNS unloaded latency ms (NSD)"       "$(g cairn_unloaded 2)" "$(g nsd_unloaded 2)"
row "idle RSS MB (etcd)"                  "$CAIRN_RSS"          "$ETCD_RSS"
row "PUT 64 req/s, $PARKED parked (without)" "$(p 2)"   "$(p 1)"
row "RSS KB per parked query (target 8)" "$(p 5)"       "8"
row "PUT -> parked answer p50 ms"         "$(p 6)"          "10"
row "PUT -> parked answer p99 ms (tgt 10)" "$(p 7)"         "10"
row "GET 64 p99 ms, snapshot (without)"  "$(f snap_get_during 3)" "$(f snap_get_quiet 3)"
row "GET 64 req/s, snapshot (without)"   "$(f snap_get_during 1)" "$(f snap_get_quiet 1)"
row "RSS MB, $SNAP_KEYS keys, after snap." "$SNAP_RSS"       ""
row "snapshot of $SNAP_KEYS keys, ms"     "${SNAP_MS:-n/a}" ""
echo "targets: PUT@64 >= 1.5x etcd; GET >= 3x etcd serializable; DNS qps >= 0.75x NSD;"
echo "         parked: PUT ratio >= 0.9, <= 8 KB/query, wake-up p99 <= 10 ms; GET p99 during a snapshot <= 2x"
