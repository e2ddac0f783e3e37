#!/usr/bin/env bash
# A 3-server cairn cluster beside a 3-member etcd cluster, in the same run, same load
# (bench/raft.py does the work): PUT throughput and p50/p99 at 1, 16 and 64 clients
# (36-byte value), reads at 64 clients in each consistency mode, leader failover time
# (kill -9 the leader until a write through a follower succeeds; median of RUNS), and
# idle RSS. Installs hey, etcd-server and etcd-client (Debian packages) if missing;
# cairn is the static release build the Docker image ships, with its file-backed log
# (fsync per group commit), etcd has its WAL fsync; everything is on loopback
# (127.0.0.236-239, or BENCH_IP and the three addresses after it) and bounded in time,
# and every process started is stopped by its PID.
#
#   bash bench/raft.sh                           # SECS=5 RUNS=20
#   SECS=3 RUNS=5 STABLE_SECS=60 bash bench/raft.sh   # quicker, on a busy machine
# STABLE_SECS (default 600): PUT load at 70 % of the measured peak through the leader;
# the Raft term must not move (no leader change). 0 skips it.
#   CLIENTS=1 READS=0 RUNS=0 STABLE_SECS=0 bash bench/raft.sh   # PUT at 1 client only
#   BENCH_IP=127.0.4.1 bash bench/raft.sh        # cairn on .1-.3, etcd on .4
#   CAIRN_BIN=/tmp/cairn-before bash bench/raft.sh   # that binary, no build
#   BENCH_WORK_PARENT=/dev/shm bash bench/raft.sh      # data on tmpfs: the cost without the disk
set -euo pipefail
cd "$(dirname "$0")/.."
export SECS=${SECS:-5} RUNS=${RUNS:-20} FAILOVER_TIMEOUT=${FAILOVER_TIMEOUT:-15} STABLE_SECS=${STABLE_SECS:-600}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-3600}

need_install=0
for tool in hey etcd etcdctl; do command -v "$tool" >/dev/null 2>&1 || need_install=1; done
if [ "$need_install" = 1 ]; then
  echo "== installing hey, etcd-server, etcd-client (Debian packages)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    hey etcd-server etcd-client >/dev/null
fi
if [ -n "${CAIRN_BIN:-}" ]; then
  CAIRN=$(realpath "$CAIRN_BIN")  # a given build (comparing two builds in turn)
else
  # The binary the Docker image ships (scripts/docker-common.sh builds the same one):
  # static, so its idle RSS holds the little of libc it uses rather than all of the
  # shared libc and libm that fault-around maps (11.1 MB against 12.2 MB dynamic).
  echo "== building cairn (release, static, as the Docker image ships it)"
  target=$(rustc -vV | sed -n 's/^host: //p')
  RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release -q --target "$target" --target-dir target/static --bin cairn
  CAIRN=$PWD/target/static/$target/release/cairn
fi

WORK=$(mktemp -d ${BENCH_WORK_PARENT:-/tmp}/cairnraft.XXXXXX)
: >"$WORK/pids"
cleanup() {
  # raft.py stops what it started; this catches anything left if it was interrupted.
  while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$WORK/pids"
  rm -rf "$WORK"
}
trap cleanup EXIT

# The one-client loops run in a compiled client (see bench/seqclient.rs for why).
rustc -O --edition 2021 -o "$WORK/seqclient" bench/seqclient.rs
export SEQCLIENT=$WORK/seqclient

echo "== uptime before start: $(uptime)"
echo "== etcd $(etcd --version 2>/dev/null | head -1 | awk '{print $NF}'), SECS=$SECS RUNS=$RUNS"
timeout "$BENCH_TIMEOUT" python3 bench/raft.py "$CAIRN" "$WORK" | tee "$WORK/out.txt"
echo "== uptime after: $(uptime)"

echo
echo "== Results (2 shared cores, loopback, load generator co-located; ratio = cairn / etcd)"
printf '%-44s %10s %10s %7s\n' "figure" "cairn" "etcd" "ratio"
grep '^RESULT' "$WORK/out.txt" | while IFS=$'\t' read -r _ label c e; do
  ratio=$(awk -v a="$c" -v b="$e" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  printf '%-44s %10s %10s %7s\n' "$label" "$c" "$e" "$ratio"
done
