#!/usr/bin/env bash
# Resident memory of a single server whose log holds MIB MiB of values that no snapshot
# covers (issue 8: the Raft log is a bounded cache, not held whole in memory), before
# and after a restart on that log.
#
#   bash bench/log_cache_rss.sh BINARY [MIB] [IP]
#
# Writes MIB MiB (default 200) of 256 KiB values to 4 keys (so the store stays ~1 MiB
# and the log is what costs memory), each followed by a small key `seq/<n>` (so every
# part of the log leaves a trace in the store), with `raft_snapshot_threshold` set high
# through a config file, then prints the server's VmRSS / VmHWM. Then it restarts the
# server on the same data dir, waits until the whole log is applied (the restart's
# no-op is, through a consistent read), prints VmRSS / VmHWM again and checks that the
# restarted server serves every key: all `seq/<n>` and each big key's last value.
# Set RAFT_LOG_CACHE_MB to pass `raft_log_cache_mb` in the config file as well.
# NOTE: the Fsm also snapshots once 64 MiB of commands were applied since the last
# snapshot (`fsm::SNAPSHOT_LOG_BYTES`, not configurable), which caps the un-snapshotted
# log at 64 MiB on a small store. To hold 200 MiB un-snapshotted, build BINARY with that
# constant raised (e.g. to 1 << 40), the same way for the before and after builds.
set -euo pipefail
BIN=${1:?binary}
MIB=${2:-200}
IP=${3:-127.0.0.230}
WORK=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
if [ -n "${RAFT_LOG_CACHE_MB:-}" ]; then
  echo "{\"raft_snapshot_threshold\": 100000000, \"raft_log_cache_mb\": $RAFT_LOG_CACHE_MB}" > "$WORK/cfg.json"
else
  echo '{"raft_snapshot_threshold": 100000000}' > "$WORK/cfg.json"
fi
head -c $((256 * 1024)) /dev/urandom > "$WORK/blob"
URL="http://$IP:8500/v1/kv"

start() {
  "$BIN" agent -server -bootstrap -node n1 -bind "$IP" -client "$IP" -dns-port -1 \
    -data-dir "$WORK/data" -config-file "$WORK/cfg.json" > "$WORK/log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do
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
WRITES=$((MIB * 4))
for i in $(seq 1 "$WRITES"); do
  # A distinct value per write: "<i>:" then the 256 KiB blob.
  { printf '%d:' "$i"; cat "$WORK/blob"; } > "$WORK/value"
  curl -sf -X PUT --data-binary @"$WORK/value" "$URL/k$((i % 4))" > /dev/null
  curl -sf -X PUT --data "$i" "$URL/seq/$i" > /dev/null
done
sleep 2 # a tick or two: the cache is trimmed at the core's next input
mem "after ${MIB} MiB of un-snapshotted values"
ls "$WORK/data/raft/snapshots" 2>/dev/null | sed 's/^/snapshot: /' || true
du -sh "$WORK/data/raft" | sed 's/^/log on disk: /'
kill "$PID"; wait "$PID" 2>/dev/null || true
T0=$(date +%s.%N)
start
# Every entry is applied once the restart's no-op is: a consistent read waits for it.
for _ in $(seq 1 1200); do
  curl -sf "$URL/k0?consistent" > /dev/null && break
  sleep 0.1
done
T1=$(date +%s.%N)
mem "restarted, log applied ($(echo "$T1 - $T0" | bc) s after the restart)"
sleep 2
mem "restarted, 2 s later"
# The restarted server serves every key.
seqs=$(curl -sf "$URL/seq/?keys" | tr -cd ',' | wc -c)
seqs=$((seqs + 1))
bad=0
for k in 0 1 2 3; do
  last=$(( WRITES - (WRITES - k) % 4 )) # the last i with i % 4 == k
  got=$(curl -sf "$URL/k$k?raw" | head -c 32 | cut -d: -f1 || true)
  [ "$got" = "$last" ] || { echo "k$k holds write $got, expected $last"; bad=1; }
done
for i in 1 $((WRITES / 2)) "$WRITES"; do
  [ "$(curl -sf "$URL/seq/$i?raw")" = "$i" ] || { echo "seq/$i missing"; bad=1; }
done
echo "keys: $seqs of $WRITES seq/<n> keys, big keys hold their last write: $([ $bad = 0 ] && echo yes || echo NO)"
[ "$seqs" -eq "$WRITES" ] && [ $bad = 0 ]
