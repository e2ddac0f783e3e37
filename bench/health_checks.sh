#!/usr/bin/env bash
# One agent running N HTTP checks (default 2,000) at a 1 s interval against a local
# target (issue 10's bench). Prints the agent's CPU share and RSS while the checks run,
# and the lag from an instance's target going down (answering 500) to the instance
# leaving DNS answers and `?passing` answers, p50/p99.
#
#   bash bench/health_checks.sh                # N=2000 WINDOW=30 DOWN=100
#   N=500 WINDOW=10 DOWN=20 bash bench/health_checks.sh
#   CAIRN=/path/to/cairn bash bench/health_checks.sh   # an already built binary
#   MODE=client bash bench/health_checks.sh     # checks on a client agent, server apart
#
# Targets: agent CPU < 15% of one core, RSS < 40 MB, lag p99 < Interval + Timeout + 200 ms
# (1,700 ms). Loopback only: the agent on 127.0.5.10, the target on 127.0.5.11:9000.
# Services are registered through the agent's API, as a user would:
#   PUT /v1/agent/service/register {"Name":"web-i","ID":"web-i","Address":"127.0.5.11",
#     "Port":9000,"Check":{"HTTP":"http://127.0.5.11:9000/health/i","Interval":"1s",
#     "Timeout":"500ms"}}
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
WINDOW=${WINDOW:-30}
DOWN=${DOWN:-100}
AGENT_IP=${AGENT_IP:-127.0.5.10}
TARGET=${TARGET:-127.0.5.11:9000}
# MODE=dev (default): one -dev agent, which is also the server holding the catalog and
# the Raft log. MODE=client: the checks run on a client agent joined to a server on
# SERVER_IP, and the figures are the client agent's (Consul's usual deployment).
MODE=${MODE:-dev}
SERVER_IP=${SERVER_IP:-127.0.5.12}

if [ -z "${CAIRN:-}" ]; then
  cargo build --release -q
  CAIRN=target/release/cairn
fi
cargo build --release -q -p cairn-actors --example health_target
WORK=$(mktemp -d)
cleanup() {
  [ -n "${AGENT_PID:-}" ] && kill "$AGENT_PID" 2>/dev/null || true
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "${TARGET_PID:-}" ] && kill "$TARGET_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

target/release/examples/health_target "$TARGET" > "$WORK/target.log" 2>&1 &
TARGET_PID=$!
if [ "$MODE" = client ]; then
  # Consul's usual shape: checks run on the client agent of the service's host; the
  # catalog and the Raft log live on a server. The figures are the client agent's.
  "$CAIRN" agent -server -bootstrap-expect 1 -node bench-server -data-dir "$WORK/server" \
    -bind "$SERVER_IP" -client "$SERVER_IP" -log-level warn > "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  "$CAIRN" agent -node bench -data-dir "$WORK/client" -bind "$AGENT_IP" -client "$AGENT_IP" \
    -join "$SERVER_IP" -log-level warn > "$WORK/agent.log" 2>&1 &
  AGENT_PID=$!
else
  "$CAIRN" agent -dev -node bench -bind "$AGENT_IP" -client "$AGENT_IP" \
    -log-level warn > "$WORK/agent.log" 2>&1 &
  AGENT_PID=$!
fi
for _ in $(seq 1 300); do
  if curl -sf "http://$AGENT_IP:8500/v1/status/leader" | grep -q ':'; then break; fi
  sleep 0.1
done
curl -sf "http://$AGENT_IP:8500/v1/status/leader" | grep -q ':' \
  || { echo "agent did not start"; cat "$WORK/agent.log"; exit 1; }
curl -sf "http://$TARGET/health/0" > /dev/null || { echo "target did not start"; cat "$WORK/target.log"; exit 1; }

echo "== load before start: $(cut -d' ' -f1-3 /proc/loadavg)"
timeout 900 python3 - "$AGENT_IP" "$TARGET" "$AGENT_PID" "$N" "$WINDOW" "$DOWN" <<'PY'
import json, os, random, socket, struct, sys, threading, time, urllib.request

agent_ip, target, pid, n, window, down = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
api = f"http://{agent_ip}:8500"
interval_ms, timeout_ms = 1000, 500

def http(method, path, body=None, base=api):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()

# -- register N services, each with its own HTTP check
t = time.time()
host, port = target.split(":")
for i in range(n):
    http("PUT", "/v1/agent/service/register", {
        "Name": f"web-{i}", "ID": f"web-{i}", "Address": host, "Port": int(port),
        "Check": {"HTTP": f"http://{target}/health/{i}", "Interval": f"{interval_ms // 1000}s",
                  "Timeout": f"{timeout_ms}ms"},
    })
print(f"registered {n} services with HTTP checks in {time.time() - t:.1f}s")

def passing_count():
    checks = json.loads(http("GET", "/v1/agent/checks"))
    return sum(1 for c in checks.values() if c.get("ServiceID", "").startswith("web-") and c["Status"] == "passing")

deadline = time.time() + 120
while True:
    count = passing_count()
    if count >= n:
        break
    if time.time() > deadline:
        sys.exit(f"only {count} of {n} checks passing after 120 s")
    time.sleep(0.5)
print(f"all {n} checks passing {time.time() - t:.1f}s after the first registration")

# -- CPU share and RSS of the agent while every check runs once a second
def cpu_seconds():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def memory():
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out

time.sleep(3)  # let the registration burst's syncs settle
c0, w0 = cpu_seconds(), time.time()
time.sleep(window)
cpu = (cpu_seconds() - c0) / (time.time() - w0) * 100
mem = memory()
print(f"RESULT cpu_percent_of_one_core {cpu:.1f}")
print(f"RESULT rss_mb {mem['VmRSS']:.1f} (peak {mem['VmHWM']:.1f})")

# -- lag from a target going down to the instance leaving DNS and ?passing answers
def dns_has_answer(name):
    qid = random.randrange(65536)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        packet += bytes([len(label)]) + label.encode()
    packet += b"\x00" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    try:
        s.sendto(packet, (agent_ip, 8600))
        while True:
            reply = s.recv(4096)
            if reply[:2] == packet[:2]:
                break
    finally:
        s.close()
    rcode = reply[3] & 0x0F
    ancount = struct.unpack(">H", reply[6:8])[0]
    return rcode == 0 and ancount > 0

def passing_has(i):
    return len(json.loads(http("GET", f"/v1/health/service/web-{i}?passing"))) > 0

dns_lags, http_lags, failures = [], [], []
lock = threading.Lock()

def measure(i):
    try:
        if not (dns_has_answer(f"web-{i}.service.consul") and passing_has(i)):
            raise RuntimeError(f"web-{i} not answered before going down")
        t0 = time.time()
        http("GET", f"/down/{i}", base=f"http://{target}")
        dns_lag = http_lag = None
        while (dns_lag is None or http_lag is None) and time.time() - t0 < 10:
            if dns_lag is None and not dns_has_answer(f"web-{i}.service.consul"):
                dns_lag = time.time() - t0
            if http_lag is None and not passing_has(i):
                http_lag = time.time() - t0
            time.sleep(0.01)
        http("GET", f"/up/{i}", base=f"http://{target}")
        with lock:
            if dns_lag is None or http_lag is None:
                failures.append(i)
            else:
                dns_lags.append(dns_lag * 1000)
                http_lags.append(http_lag * 1000)
    except Exception as e:  # a failed sample is counted, not fatal
        with lock:
            failures.append(i)
        print(f"web-{i}: {e}", file=sys.stderr)

# Independent samples, a few in flight at once, spread over the instances.
chosen = random.Random(1).sample(range(n), min(down, n))
threads = []
for i in chosen:
    th = threading.Thread(target=measure, args=(i,))
    th.start()
    threads.append(th)
    time.sleep(0.37)  # not a multiple of the interval: samples land all over the cycle
for th in threads:
    th.join()

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

limit = interval_ms + timeout_ms + 200
for name, lags in (("dns", dns_lags), ("passing", http_lags)):
    if lags:
        print(f"RESULT lag_{name}_ms p50 {pct(lags, 50):.0f} p99 {pct(lags, 99):.0f} max {max(lags):.0f} (n={len(lags)})")
if failures:
    print(f"RESULT lag_failures {len(failures)}: {sorted(failures)[:20]}")
ok = cpu < 15 and mem["VmRSS"] < 40 and dns_lags and pct(dns_lags, 99) < limit and not failures
print(f"targets: cpu < 15%, rss < 40 MB, lag p99 < {limit} ms -> {'MET' if ok else 'NOT MET'}")
PY
