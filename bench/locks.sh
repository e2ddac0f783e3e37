#!/usr/bin/env bash
# Lock acquire/release round trips per second from one client: cairn (3 servers, through
# a client agent: session + ?acquire/?release) beside etcd (3 members, at the leader:
# its lock service /v3/lock/lock + /v3/lock/unlock with a lease, what `etcdctl lock`
# does) in the same run; bench/locks.py does the work. Prints both, and the ratio
# (target: cairn at least 2x etcd). Installs etcd-server and etcd-client (Debian
# packages) if missing; cairn is a release build with its file-backed log; everything
# is on loopback (127.0.10.21-25), bounded in time, and every process started is
# stopped by its PID.
#
#   bash bench/locks.sh                    # SECS=10 ROUNDS=3
#   SECS=5 ROUNDS=1 bash bench/locks.sh    # quicker
set -euo pipefail
cd "$(dirname "$0")/.."
export SECS=${SECS:-10} ROUNDS=${ROUNDS:-3}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-900}

need_install=0
for tool in etcd etcdctl; do command -v "$tool" >/dev/null 2>&1 || need_install=1; done
if [ "$need_install" = 1 ]; then
  echo "== installing etcd-server, etcd-client (Debian packages)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    etcd-server etcd-client >/dev/null
fi
if [ -z "${CAIRN:-}" ]; then
  echo "== building cairn (release)"
  cargo build --release -q --bin cairn
  CAIRN=$PWD/target/release/cairn
fi

WORK=$(mktemp -d /tmp/cairnlocks.XXXXXX)
: >"$WORK/pids"
cleanup() {
  # locks.py stops what it started; this catches anything left if it was interrupted.
  while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$WORK/pids"
  rm -rf "$WORK"
}
trap cleanup EXIT

# The one-client loops run in a compiled client (see bench/seqclient.rs for why).
rustc -O --edition 2021 -o "$WORK/seqclient" bench/seqclient.rs
export SEQCLIENT=$WORK/seqclient

echo "== uptime before start: $(uptime)"
echo "== etcd $(etcd --version 2>/dev/null | head -1 | awk '{print $NF}'), SECS=$SECS ROUNDS=$ROUNDS"
timeout "$BENCH_TIMEOUT" python3 bench/locks.py "$CAIRN" "$WORK" | tee "$WORK/out.txt"
echo "== uptime after: $(uptime)"

echo
echo "== Results (2 shared cores, loopback, one client; ratio = cairn / etcd, target >= 2)"
printf '%-48s %10s %10s %7s\n' "figure" "cairn" "etcd" "ratio"
grep '^RESULT' "$WORK/out.txt" | while IFS=$'\t' read -r _ label c e; do
  ratio=$(awk -v a="$c" -v b="$e" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  printf '%-48s %10s %10s %7s\n' "$label" "$c" "$e" "$ratio"
done
