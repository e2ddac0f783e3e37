#!/usr/bin/env bash
# Gossip membership beside HashiCorp serf, in one run: join convergence, failure
# detection (kill -9 until every survivor sees it failed; medians of RUNS kills), false
# failures while one member flaps (SIGSTOP/SIGCONT every 0.5 s for FLAP_SECS), and idle
# RSS, for N = 5 and N = 20. Installs serf (Debian package) if missing.
#
#   bash bench/gossip.sh            # RUNS=3 FLAP_SECS=300 (the issue's 5 minutes)
#   RUNS=2 FLAP_SECS=30 bash bench/gossip.sh   # quicker
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
FLAP_SECS=${FLAP_SECS:-300}
SIZES=${SIZES:-"5 20"}

if ! command -v serf >/dev/null 2>&1; then
  echo "== installing serf (Debian package)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends serf >/dev/null
fi
cargo build --release -q
WORK=$(mktemp -d)
trap 'pkill -f "$WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "== load before start: $(cut -d' ' -f1-3 /proc/loadavg)"
for n in $SIZES; do
  timeout 3600 python3 bench/gossip.py "$PWD/target/release/cairn" "$WORK" "$n" "$RUNS" "$FLAP_SECS" \
    | tee "$WORK/result-$n.txt"
  rm -rf "$WORK"/cairn* "$WORK"/serf*
done

echo
printf '%-34s %12s %12s %8s\n' "figure" "cairn" "serf" "ratio"
for n in $SIZES; do
  grep '^RESULT' "$WORK/result-$n.txt" | while read -r _ size key c s; do
    c=${c#cairn=}; s=${s#serf=}
    ratio=$(awk -v a="$c" -v b="$s" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
    printf '%-34s %12s %12s %8s\n' "$size $key" "$c" "$s" "$ratio"
  done
done
echo "targets: detect_median ratio <= 0.5; join_ms ratio <= 1; false_failed = 0; cairn client rss_mb <= serf's"
