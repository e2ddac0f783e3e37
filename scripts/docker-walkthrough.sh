#!/usr/bin/env bash
# The README walkthrough, run against cairn in a container: builds the static binary and
# the `cairn:dev` image (FROM scratch, nothing is pulled), starts one bootstrap server on a
# private Docker network with its data dir on a volume, talks to it from the host over
# HTTP and DNS, SIGKILLs it, checks the image's default command (-dev) is reachable too,
# starts a new server container (usually on a new address) on the same volume and checks
# that every acknowledged write survived. The host reaches containers by their bridge IPs
# (Linux Docker; not Docker Desktop's VM).
#
# The image's conventions (progrium/consul's: node name from -h, /data, DNS on 53) are
# what the servers rely on: they get no -node, -data-dir, -client or -bind flags.
#
# Needs: cargo, docker (a running daemon), curl, python3. Every docker object it creates
# (containers, network, volume) is removed on exit; the image is kept.
# Without a Docker daemon it fails, unless CAIRN_DOCKER_OPTIONAL=1 (then it skips, exit 0).
set -euo pipefail
cd "$(dirname "$0")/.."

# Unique per run, so parallel runs and leftovers from a killed run never collide.
readonly PREFIX="cairn-walk-$$-${RANDOM}"
readonly NET=$PREFIX-net
readonly VOL=$PREFIX-data
readonly START_TIMEOUT_S=60
readonly POLL_INTERVAL_S=0.2

say() { echo "docker-walkthrough: $*"; }
FAILURE=""
fail() {
  FAILURE="docker-walkthrough: FAILED: $*"
  echo "$FAILURE" >&2
  exit 1
}

source scripts/docker-common.sh # wait_for, json_is, TARGET, BIN, IMAGE, require_docker, build_image
require_docker
for tool in cargo curl python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is required"
done

# --- cleanup -----------------------------------------------------------------------------
CONTAINERS=()
NET_CREATED=0
VOL_CREATED=0
cleanup() {
  local status=$?
  set +e
  if ((status != 0)); then
    for c in "${CONTAINERS[@]}"; do
      docker inspect "$c" >/dev/null 2>&1 || continue
      echo "--- docker logs $c (last 40 lines)" >&2
      docker logs --tail 40 "$c" >&2 2>&1
    done
    # Repeated after the logs, so the reason is the last thing on screen.
    [[ -n "$FAILURE" ]] && echo "$FAILURE" >&2
  fi
  for c in "${CONTAINERS[@]}"; do docker rm -f -v "$c" >/dev/null 2>&1; done
  ((NET_CREATED)) && docker network rm "$NET" >/dev/null 2>&1
  ((VOL_CREATED)) && docker volume rm "$VOL" >/dev/null 2>&1
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers -----------------------------------------------------------------------------

running() { [[ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" == true ]]; }

container_ip() {
  docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$1"
}

# start_server NAME: one bootstrap server on the private network, data on the volume, as
# the seed starts it: the image supplies -data-dir /data, -client and -bind 0.0.0.0 (it
# advertises the container's one private address) and DNS on 53; the node name is -h.
start_server() {
  docker run -d --name "$1" -h node1 --network "$NET" -v "$VOL:/data" "$IMAGE" \
    -server -bootstrap >/dev/null
  CONTAINERS+=("$1")
}

# The image serves DNS on port 53 (progrium/consul's convention; the seed maps 8600:53/udp).
dns_query() { python3 -c "$DNS_QUERY_PY" "$1" 53 "$2"; }

# --- checks shared by both runs --------------------------------------------------------

node1_listed() {
  curl -sf "http://$IP:8500/v1/catalog/nodes" 2>/dev/null |
    json_is "any(n.get('Node') == 'node1' and n.get('Address') == '$IP' for n in d)"
}

check_services() {
  local body
  body=$(curl -sf "http://$IP:8500/v1/catalog/services") || fail "GET /v1/catalog/services"
  echo "$body" | json_is 'd == {"consul": [], "search": []}' ||
    fail "/v1/catalog/services: want {\"consul\":[],\"search\":[]}, got $body"
  body=$(curl -sf "http://$IP:8500/v1/catalog/service/search") ||
    fail "GET /v1/catalog/service/search"
  echo "$body" | json_is \
    "sorted((s['Node'], s['Address'], s['ServicePort']) for s in d) == [('bing', 'www.bing.com', 80), ('google', 'www.google.com', 80)]" ||
    fail "/v1/catalog/service/search: want bing and google on port 80, got $body"
}

check_dns() {
  local want answer="" deadline=$((SECONDS + 10))
  want=$(printf 'rcode 0\nCNAME www.bing.com.\nCNAME www.google.com.')
  # UDP: a lost datagram is retried, within a bound.
  until answer=$(dns_query "$IP" search.service.consul.); do
    ((SECONDS < deadline)) || fail "no DNS answer from $IP:53 within 10s"
    sleep "$POLL_INTERVAL_S"
  done
  [[ "$answer" == "$want" ]] ||
    fail "DNS search.service.consul.: want \"$want\", got \"$answer\""
}

check_kv() {
  local body
  body=$(curl -sf "http://$IP:8500/v1/kv/key1") || fail "GET /v1/kv/key1 after the write"
  echo "$body" | json_is \
    "len(d) == 1 and d[0]['Key'] == 'key1' and d[0]['Value'] == 'dGVzdA==' and d[0]['LockIndex'] == 0 and d[0]['Flags'] == 0" ||
    fail "/v1/kv/key1: want Key key1 with Value dGVzdA==, got $body"
}

# --- build ---------------------------------------------------------------------------------

build_image

# --- first run -----------------------------------------------------------------------------

docker network create "$NET" >/dev/null
NET_CREATED=1
docker volume create "$VOL" >/dev/null
VOL_CREATED=1

start_server "$PREFIX-1"
IP=$(container_ip "$PREFIX-1")
[[ -n "$IP" ]] || fail "container $PREFIX-1 has no address on $NET (did it exit?)"
say "server $PREFIX-1 at $IP (network $NET, volume $VOL)"

server_up() {
  running "$PREFIX-1" || fail "container $PREFIX-1 exited"
  node1_listed
}
wait_for "node1 at $IP in /v1/catalog/nodes" "$START_TIMEOUT_S" server_up
say "ok: /v1/catalog/nodes lists node1 at $IP"

for node in google bing; do
  reply=$(curl -sf -X PUT \
    -d "{\"Datacenter\": \"dc1\", \"Node\": \"$node\", \"Address\": \"www.$node.com\", \"Service\": {\"Service\": \"search\", \"Port\": 80}}" \
    "http://$IP:8500/v1/catalog/register") || fail "register $node"
  [[ "$reply" == true ]] || fail "register $node: want true, got $reply"
done
check_services
say "ok: /v1/catalog/services == {\"consul\":[],\"search\":[]}"
check_dns
say "ok: DNS search.service.consul. -> CNAME www.bing.com., www.google.com."

headers=$(curl -s -o /dev/null -D - "http://$IP:8500/v1/kv/key1")
[[ "$headers" =~ ^HTTP/[0-9.]+\ 404 ]] || fail "GET /v1/kv/key1 before the write: want 404, got: ${headers%%$'\r'*}"
grep -qi '^X-Consul-Index: [0-9]' <<<"$headers" || fail "404 for /v1/kv/key1 lacks X-Consul-Index"
reply=$(curl -sf -X PUT -d 'test' "http://$IP:8500/v1/kv/key1") || fail "PUT /v1/kv/key1"
[[ "$reply" == true ]] || fail "PUT /v1/kv/key1: want true, got $reply"
check_kv
say "ok: KV key1 = test"

# --- crash and restart ---------------------------------------------------------------------

docker kill "$PREFIX-1" >/dev/null # SIGKILL: no shutdown path runs
not_running() { ! running "$PREFIX-1"; }
wait_for "$PREFIX-1 to stop" 30 not_running
say "killed $PREFIX-1 (SIGKILL)"
OLD_IP=$IP

# The image's default command (-dev, serving on 0.0.0.0) must be reachable from outside
# too. Started now, it usually takes the dead server's address, so the restarted server
# gets a new one, as a rescheduled container would.
docker run -d --name "$PREFIX-dev" --network "$NET" "$IMAGE" >/dev/null
CONTAINERS+=("$PREFIX-dev")
DEV_IP=$(container_ip "$PREFIX-dev")
[[ -n "$DEV_IP" ]] || fail "container $PREFIX-dev has no address on $NET (did it exit?)"
dev_up() {
  running "$PREFIX-dev" || fail "container $PREFIX-dev (default command) exited"
  curl -sf "http://$DEV_IP:8500/v1/catalog/nodes" 2>/dev/null |
    json_is "len(d) == 1 and d[0]['Address'] == '$DEV_IP'"
}
wait_for "the default-command (-dev) agent at $DEV_IP" "$START_TIMEOUT_S" dev_up
say "ok: the default command (-dev) serves HTTP at $DEV_IP"

start_server "$PREFIX-2"
IP=$(container_ip "$PREFIX-2")
[[ -n "$IP" ]] || fail "container $PREFIX-2 has no address on $NET (did it exit?)"
if [[ "$IP" == "$OLD_IP" ]]; then
  say "server $PREFIX-2 on the same volume, at $IP (same address)"
else
  say "server $PREFIX-2 on the same volume, at $IP (new address; was $OLD_IP)"
fi

restarted_and_leading() {
  running "$PREFIX-2" || fail "container $PREFIX-2 exited"
  node1_listed && curl -sf "http://$IP:8500/v1/kv/key1" >/dev/null 2>&1
}
wait_for "the restarted server at $IP to serve node1 and key1" "$START_TIMEOUT_S" restarted_and_leading
check_kv
check_services
check_dns
say "ok: after SIGKILL and restart, KV key1, both search services and DNS are intact"

# The Raft configuration follows the server to its new address (proposed through the log).
leader_is_here() {
  [[ "$(curl -sf "http://$IP:8500/v1/status/leader" 2>/dev/null)" == "\"$IP:8300\"" ]] &&
    curl -sf "http://$IP:8500/v1/status/peers" 2>/dev/null | json_is "d == ['$IP:8300']"
}
wait_for "status/leader and status/peers to report $IP:8300" 10 leader_is_here
say "ok: status/leader and status/peers report the server's current address"
say "passed in ${SECONDS}s"
