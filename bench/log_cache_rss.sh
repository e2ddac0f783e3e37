#!/usr/bin/env bash
# Resident memory of a single server whose log holds MIB MiB of values that no snapshot
# covers (issue 8: the Raft log is a bounded cache, not held whole in memory).
#
#   bash bench/log_cache_rss.sh BINARY [MIB] [IP]
#
# Writes MIB MiB (default 200) of 256 KiB values to 4 keys (so the store stays ~1 MiB
# and the log is what costs memory), with `raft_snapshot_threshold` set high through a
# config file, then prints the server's VmRSS / VmHWM, restarts it on the same data dir
# and prints them again once every entry is applied.
# NOTE: the Fsm also snapshots once 64 MiB of commands were applied since the last
# snapshot (`fsm::SNAPSHOT_LOG_BYTES`, not configurable), which caps the un-snapshotted
# log at 64 MiB on a small store. To hold 200 MiB un-snapshotted, build BINARY with that
# constant raised (e.g. to 1 << 40), the same way for the before and after builds.
set -euo pipefail
BIN=${1:?binary}
MIB=${2:-200}
IP=${3:-127.0.0.230}
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
echo '{"raft_snapshot_threshold": 100000000}' > "$WORK/cfg.json"
head -c $((256 * 1024)) /dev/urandom > "$WORK/value"

start() {
  "$BIN" agent -server -bootstrap -node n1 -bind "$IP" -client "$IP" -dns-port -1 \
    -data-dir "$WORK/data" -config-file "$WORK/cfg.json" > "$WORK/log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    if curl -sf "http://$IP:8500/v1/status/leader" | grep -q ':'; then return; fi
    sleep 0.1
  done
  echo "server did not elect itself"; cat "$WORK/log"; exit 1
}
mem() {
  echo "$1: $(grep -E 'VmRSS|VmHWM' /proc/$PID/status | tr -s ' \n' ' ')"
}

start
mem "started"
for i in $(seq 1 $((MIB * 4))); do
  curl -sf -X PUT --data-binary @"$WORK/value" "http://$IP:8500/v1/kv/k$((i % 4))" > /dev/null
done
sleep 2 # a tick or two: the cache is trimmed at the core's next input
mem "after ${MIB} MiB of un-snapshotted values"
ls "$WORK/data/raft/snapshots" 2>/dev/null | sed 's/^/snapshot: /' || true
du -sh "$WORK/data/raft" | sed 's/^/log on disk: /'
kill "$PID"; wait "$PID" 2>/dev/null || true
start
# Every entry is applied once the restart's no-op is: a read of the last key shows it.
for _ in $(seq 1 600); do
  curl -sf "http://$IP:8500/v1/kv/k0?consistent" > /dev/null && break
  sleep 0.1
done
sleep 2
mem "restarted, log applied"
