#!/usr/bin/env bash
# Snapshot benchmark: one file-backed cairn server gets a 2 GiB KV store (4,096 distinct
# keys of 512 KiB), snapshots it, is killed (-9) and restarted, and must answer with every
# key again. Prints the encoded store size (the snapshot file), the time to snapshot, the
# time to restart and restore, and RSS / encoded size before and after the restart and at
# peak (VmHWM). Needs curl (installed from Debian if missing); targets loopback only;
# bounds every wait; stops what it started.
#
#   bash bench/snapshot.sh                    # 4096 x 512 KiB (2 GiB)
#   KEYS=512 bash bench/snapshot.sh           # a smaller run
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-4096}
VALUE_KIB=${VALUE_KIB:-512}
PAR=${PAR:-4}
IP=${IP:-127.0.0.61}
URL="http://$IP:8500"

command -v curl >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null
}
echo "== building cairn (release)"
cargo build --release -q -p cairn
CAIRN=$PWD/target/release/cairn

WORK=$(mktemp -d /tmp/cairnsnap.XXXXXX)
PID=""
cleanup() {
  local rc=$?
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$rc" != 0 ]; then
    echo "failed (exit $rc); the server's last log lines:" >&2
    tail -5 "$WORK/cairn.log" >&2 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Entry-count trigger at 1024 entries (512 MiB of values): the byte trigger works too,
# but a count lets small filler writes below force a final snapshot covering everything.
echo '{"raft_snapshot_threshold": 1024}' >"$WORK/config.json"
start() {
  "$CAIRN" agent -server -bootstrap -node snap -bind "$IP" -client "$IP" \
    -data-dir "$WORK/data" -config-file "$WORK/config.json" -log-level info \
    >>"$WORK/cairn.log" 2>&1 &
  PID=$!
}
status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$PID/status"; } # kB
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
wait_for() { # seconds what command...
  local secs=$1 what=$2; shift 2
  local deadline=$(($(date +%s) + secs))
  until "$@"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "timed out: $what" >&2; exit 1; fi
    sleep 0.1
  done
}
leader() { curl -sf "$URL/v1/status/leader" 2>/dev/null | grep -q 8300; }
# Index of the newest snapshot file (0 when none).
newest_snapshot() {
  ls "$WORK/data/raft/snapshots" 2>/dev/null | sed -n 's/^[0-9]*-0*\([0-9][0-9]*\)\.snap$/\1/p' |
    sort -n | tail -1 | grep . || echo 0
}
all_keys() {
  [ "$(curl -sf "$URL/v1/kv/bench/?keys" | tr ',' '\n' | grep -c 'bench/')" -eq "$KEYS" ]
}

head -c $((VALUE_KIB * 1024)) /dev/urandom >"$WORK/value"
start
wait_for 60 "leader" leader

echo "== writing $KEYS values of $VALUE_KIB KiB ($PAR at a time)"
T0=$(now)
seq 0 $((KEYS - 1)) | xargs -P "$PAR" -I{} \
  curl -sf -o /dev/null -X PUT --data-binary "@$WORK/value" "$URL/v1/kv/bench/k{}"
WRITE_S=$(elapsed "$T0")
LAST=$(curl -sf -D - -o /dev/null "$URL/v1/kv/bench/?keys" | awk -F': ' 'tolower($1) == "x-consul-index" {print $2+0}')
echo "   wrote in ${WRITE_S}s; last index $LAST"

# A snapshot covering every write: small writes until the entry trigger fires past it.
T1=$(now)
for i in $(seq 1 2100); do
  [ "$(newest_snapshot)" -ge "$LAST" ] && break
  curl -sf -o /dev/null -X PUT --data 'x' "$URL/v1/kv/filler/f$i" || { echo "filler PUT failed" >&2; exit 1; }
done
past_last() { [ "$(newest_snapshot)" -ge "$LAST" ]; }
wait_for 300 "snapshot past $LAST" past_last
SNAP_INDEX=$(newest_snapshot)
SNAP_FILE=$(ls -t "$WORK/data/raft/snapshots/"*.snap | head -1)
ENCODED=$(stat -c %s "$SNAP_FILE")
# The file is renamed into place just before the server logs it.
saved_line() { grep 'raft snapshot saved' "$WORK/cairn.log" | grep " index=$SNAP_INDEX " | tail -1; }
has_saved_line() { [ -n "$(saved_line)" ]; }
wait_for 60 "the log line of snapshot $SNAP_INDEX" has_saved_line
WRITE_MS=$(saved_line | sed -n 's/.*write_ms=\([0-9]*\).*/\1/p')
CLONE_US=$(saved_line | sed -n 's/.*clone_us=\([0-9]*\).*/\1/p')
SNAPSHOTS=$(grep -c 'raft snapshot saved' "$WORK/cairn.log" || true)
# Write amplification: snapshot bytes written per byte of values written.
SNAP_WRITTEN=$(grep 'raft snapshot saved' "$WORK/cairn.log" | sed -n 's/.* bytes=\([0-9]*\).*/\1/p' |
  awk '{s += $1} END {printf "%.0f", s}')
sleep 3 # let the log compaction that follows the snapshot run
RSS_BEFORE=$(status VmRSS)
HWM_BEFORE=$(status VmHWM)
SEGMENTS=$(ls "$WORK/data/raft" | grep -c '\.seg$' || true)
LOG_MB=$(du -sm --exclude=snapshots "$WORK/data/raft" | cut -f1)

echo "== kill -9 and restart"
kill -9 "$PID"; wait "$PID" 2>/dev/null || true; PID=""
T2=$(now)
start
wait_for 600 "leader after restart" leader
wait_for 600 "every key readable" all_keys
RESTART_S=$(elapsed "$T2")
curl -sf -o "$WORK/check" "$URL/v1/kv/bench/k$((KEYS - 1))?raw"
cmp -s "$WORK/check" "$WORK/value" || { echo "value read back differs" >&2; exit 1; }
sleep 3
RSS_AFTER=$(status VmRSS)
HWM_AFTER=$(status VmHWM)

ENC_KB=$((ENCODED / 1024))
PEAK=$((HWM_BEFORE > HWM_AFTER ? HWM_BEFORE : HWM_AFTER))
echo
echo "== snapshot benchmark: $KEYS keys x $VALUE_KIB KiB"
printf '%-44s %s\n' \
  "encoded store (snapshot file)" "$((ENCODED / 1048576)) MiB ($ENCODED bytes)" \
  "snapshots taken while writing" "$SNAPSHOTS" \
  "snapshot bytes written / value bytes" "$(ratio "$SNAP_WRITTEN" "$((KEYS * VALUE_KIB * 1024))")" \
  "time to snapshot (final, clone + write)" "$(awk -v w="$WRITE_MS" -v c="$CLONE_US" 'BEGIN {printf "%.2f s (clone %.1f ms)", w / 1000 + c / 1e6, c / 1000}')" \
  "disk log after compaction" "$SEGMENTS segments, $LOG_MB MiB" \
  "time to restart + restore (all keys read)" "${RESTART_S} s" \
  "RSS / encoded, steady before restart" "$(ratio "$RSS_BEFORE" "$ENC_KB") ($((RSS_BEFORE / 1024)) MiB)" \
  "RSS / encoded, after restart" "$(ratio "$RSS_AFTER" "$ENC_KB") ($((RSS_AFTER / 1024)) MiB)" \
  "peak RSS / encoded (VmHWM, max of both runs)" "$(ratio "$PEAK" "$ENC_KB") (before $((HWM_BEFORE / 1024)) MiB, restore $((HWM_AFTER / 1024)) MiB)"
