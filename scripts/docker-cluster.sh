#!/usr/bin/env bash
# The seed's Docker cluster, run: builds the static binary and the `cairn:dev` image (as
# scripts/docker-walkthrough.sh does), brings up docker-compose.yml (three servers, node1
# with -bootstrap-expect 3, and two clients, node5 joined through node4) under a unique
# project name, then checks what the seed shows: /v1/catalog/nodes through node4 and
# through node5 lists node1..node5; a KV write through node4 is read through node5; DNS
# through node4's published port answers node1.node.consul. Then it SIGKILLs the leader's
# container, waits for a new leader, writes again through node4 and checks that no
# acknowledged write was lost. node4's and node5's ports are published on ephemeral
# loopback ports (the compose file's fixed 8500/8600 could clash with other agents).
#
# Needs: cargo, docker (a running daemon), docker-compose, curl, python3. `docker-compose
# down -v` runs on every exit; the image is kept. Without a Docker daemon it fails, unless
# CAIRN_DOCKER_OPTIONAL=1 (then it skips, exit 0).
set -euo pipefail
cd "$(dirname "$0")/.."

# Unique per run, so parallel runs and leftovers from a killed run never collide.
readonly PROJECT="cairn-cluster-$$-${RANDOM}"
readonly START_TIMEOUT_S=90
readonly ELECTION_TIMEOUT_S=60
readonly POLL_INTERVAL_S=0.2
readonly NODES=(node1 node2 node3 node4 node5)
readonly KEYS_BEFORE=10 KEYS_AFTER=10

say() { echo "docker-cluster: $*"; }
FAILURE=""
fail() {
  FAILURE="docker-cluster: FAILED: $*"
  echo "$FAILURE" >&2
  exit 1
}

source scripts/docker-common.sh # wait_for, json_is, IMAGE, DNS_QUERY_PY, require_docker, build_image
require_docker
for tool in cargo docker-compose curl python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is required"
done

# Ephemeral host ports on loopback for the clients; read back with `docker-compose port`.
export CAIRN_NODE4_HTTP=127.0.0.1::8500 CAIRN_NODE4_DNS=127.0.0.1::53/udp
export CAIRN_NODE5_HTTP=127.0.0.1::8500 CAIRN_NODE5_DNS=127.0.0.1::53/udp

dc() { docker-compose --ansi never -p "$PROJECT" -f docker-compose.yml "$@"; }

# --- cleanup -----------------------------------------------------------------------------
UP=0
cleanup() {
  local status=$?
  set +e
  if ((status != 0 && UP)); then
    for n in "${NODES[@]}"; do
      echo "--- logs of $n (last 30 lines)" >&2
      dc logs --no-color --tail 30 "$n" >&2 2>&1
    done
    # Repeated after the logs, so the reason is the last thing on screen.
    [[ -n "$FAILURE" ]] && echo "$FAILURE" >&2
  fi
  ((UP)) && dc down -v -t 2 >/dev/null 2>&1
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers -----------------------------------------------------------------------------

# published SERVICE PORT/PROTO: the loopback host:port docker published it on.
published() {
  local hp
  hp=$(dc port --protocol "${2#*/}" "$1" "${2%/*}") || fail "no published port for $1 $2"
  [[ "$hp" == *:* ]] || fail "no published port for $1 $2 (got '$hp')"
  echo "$hp"
}

# container_ip SERVICE: its address on the project's network.
container_ip() {
  docker inspect -f "{{(index .NetworkSettings.Networks \"${PROJECT}_default\").IPAddress}}" \
    "$(dc ps -q "$1")"
}

all_running() {
  local n
  for n in "${NODES[@]}"; do
    [[ "$(docker inspect -f '{{.State.Running}}' "$(dc ps -q "$n")" 2>/dev/null)" == true ]] ||
      fail "container $n is not running"
  done
}

# nodes_listed URL: /v1/catalog/nodes at URL names exactly node1..node5.
nodes_listed() {
  curl -sf "$1/v1/catalog/nodes" 2>/dev/null |
    json_is "sorted(n.get('Node') for n in d) == ['node1', 'node2', 'node3', 'node4', 'node5']"
}

leader() { curl -sf "$HTTP4/v1/status/leader" 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin))'; }

# put KEY VALUE: through node4; succeeds only on an acknowledged write (body `true`).
put() { [[ "$(curl -sf -X PUT -d "$2" "$HTTP4/v1/kv/$1" 2>/dev/null)" == true ]]; }

# check_keys URL N: keys seq/1..seq/N all hold their values (a consistent read at URL).
check_keys() {
  local body
  body=$(curl -sf "$1/v1/kv/seq/?recurse&consistent") || fail "GET $1/v1/kv/seq/?recurse"
  python3 -c 'import base64, json, sys
got = {e["Key"]: base64.b64decode(e["Value"]).decode() for e in json.loads(sys.argv[1])}
want = {f"seq/{i}": f"value-{i}" for i in range(1, int(sys.argv[2]) + 1)}
sys.exit(0 if got == want else 1)' "$body" "$2" ||
    fail "$1: want seq/1..seq/$2 holding value-1..value-$2, got $body"
}

# --- build and start -------------------------------------------------------------------------

build_image

say "docker-compose up (project $PROJECT)"
UP=1
out=$(dc up -d 2>&1) || fail "docker-compose up -d failed: $(tail -n 5 <<<"$out")"
HTTP4="http://$(published node4 8500/tcp)"
HTTP5="http://$(published node5 8500/tcp)"
DNS4=$(published node4 53/udp)
say "node4 HTTP at $HTTP4, DNS at $DNS4; node5 HTTP at $HTTP5"

cluster_up() {
  all_running
  nodes_listed "$HTTP4" && nodes_listed "$HTTP5" && [[ -n "$(leader)" ]]
}
wait_for "node1..node5 in /v1/catalog/nodes through node4 and node5, and a leader" \
  "$START_TIMEOUT_S" cluster_up
say "ok: /v1/catalog/nodes through node4 and through node5 lists node1..node5 (${SECONDS}s)"

peers=$(curl -sf "$HTTP4/v1/status/peers") || fail "GET /v1/status/peers"
echo "$peers" | json_is 'len(d) == 3' || fail "/v1/status/peers: want 3 servers, got $peers"
say "ok: three Raft peers, leader $(leader)"

# --- KV through the clients ------------------------------------------------------------------

put seq/1 value-1 || fail "PUT seq/1 through node4 was not acknowledged"
body=$(curl -sf "$HTTP5/v1/kv/seq/1?raw") || fail "GET seq/1 through node5"
[[ "$body" == value-1 ]] || fail "GET seq/1 through node5: want value-1, got $body"
say "ok: a write through node4 is read through node5"
for ((i = 2; i <= KEYS_BEFORE; i++)); do
  put "seq/$i" "value-$i" || fail "PUT seq/$i through node4 was not acknowledged"
done

# --- DNS through node4's published port --------------------------------------------------------

NODE1_IP=$(container_ip node1)
want=$(printf 'rcode 0\nA %s' "$NODE1_IP")
dns_ok() {
  [[ "$(python3 -c "$DNS_QUERY_PY" "${DNS4%:*}" "${DNS4##*:}" node1.node.consul. 2>/dev/null)" == "$want" ]]
}
wait_for "DNS node1.node.consul. -> A $NODE1_IP through $DNS4" 10 dns_ok
say "ok: DNS through node4 (container port 53): node1.node.consul. -> A $NODE1_IP"

# --- kill the leader -------------------------------------------------------------------------

OLD_LEADER=$(leader) || fail "GET /v1/status/leader through node4"
OLD_IP=${OLD_LEADER%:*}
VICTIM=""
for n in node1 node2 node3; do
  [[ "$(container_ip "$n")" == "$OLD_IP" ]] && VICTIM=$n
done
[[ -n "$VICTIM" ]] || fail "leader $OLD_LEADER is none of node1..node3"
docker kill "$(dc ps -q "$VICTIM")" >/dev/null # SIGKILL: no leave, no shutdown path
say "killed the leader, $VICTIM ($OLD_LEADER)"
KILLED_AT=$SECONDS

new_leader() {
  local l
  l=$(leader) && [[ -n "$l" && "$l" != "$OLD_LEADER" ]]
}
wait_for "a new leader after killing $VICTIM" "$ELECTION_TIMEOUT_S" new_leader
say "ok: new leader $(leader), $((SECONDS - KILLED_AT))s after the kill"

# The first write after the election may still meet a stale route: retry it, bounded (a
# retried PUT of the same value is harmless). Every later write must succeed first time.
first=$((KEYS_BEFORE + 1))
wait_for "a write through node4 after the election" "$ELECTION_TIMEOUT_S" \
  put "seq/$first" "value-$first"
for ((i = first + 1; i <= KEYS_BEFORE + KEYS_AFTER; i++)); do
  put "seq/$i" "value-$i" || fail "PUT seq/$i through node4 was not acknowledged"
done
say "ok: writes through node4 succeed again, $((SECONDS - KILLED_AT))s after the kill"

check_keys "$HTTP4" $((KEYS_BEFORE + KEYS_AFTER))
check_keys "$HTTP5" $((KEYS_BEFORE + KEYS_AFTER))
say "ok: all $((KEYS_BEFORE + KEYS_AFTER)) acknowledged writes read back through node4 and node5"
say "passed in ${SECONDS}s"
