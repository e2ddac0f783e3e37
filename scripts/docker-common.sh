# Shared by scripts/docker-walkthrough.sh and scripts/docker-cluster.sh (sourced, not run):
# the Docker-daemon check and the build of the static binary and the `cairn:dev` image.
# The sourcing script defines say() and fail() and runs from the repository root.

readonly TARGET=x86_64-unknown-linux-gnu
readonly BIN=target/static/$TARGET/release/cairn
readonly IMAGE=cairn:dev

# python3 -c "$DNS_QUERY_PY" SERVER PORT QNAME: a raw DNS query for an A record (stdlib
# only, as dig may be absent). Prints "rcode N" and the sorted answers ("CNAME name." /
# "A ip"); exit 2 on timeout or a malformed reply.
readonly DNS_QUERY_PY='
import random, socket, struct, sys
server, port, qname = sys.argv[1], int(sys.argv[2]), sys.argv[3]
qid = random.randrange(1 << 16)
query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD, one question
for label in qname.rstrip(".").split("."):
    query += bytes([len(label)]) + label.encode("ascii")
query += b"\0" + struct.pack(">HH", 1, 1)  # QTYPE A, QCLASS IN
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(1.0)
try:
    sock.sendto(query, (server, port))
    msg, _ = sock.recvfrom(65535)
except OSError as e:
    print(f"no DNS reply: {e}", file=sys.stderr)
    sys.exit(2)

def read_name(off):
    labels, end, hops = [], None, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:  # compression pointer
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            hops += 1
            if hops > 32:
                raise ValueError("compression loop")
        elif n == 0:
            return ".".join(labels) + ".", (end if end is not None else off + 1)
        else:
            labels.append(msg[off + 1 : off + 1 + n].decode("ascii"))
            off += 1 + n

try:
    rid, flags, qdcount, ancount, _, _ = struct.unpack(">HHHHHH", msg[:12])
    if rid != qid:
        raise ValueError(f"reply id {rid} != query id {qid}")
    off = 12
    for _ in range(qdcount):
        _, off = read_name(off)
        off += 4
    answers = []
    for _ in range(ancount):
        _, off = read_name(off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[off : off + 10])
        off += 10
        if rtype == 5:
            answers.append("CNAME " + read_name(off)[0])
        elif rtype == 1:
            answers.append("A " + socket.inet_ntoa(msg[off : off + 4]))
        else:
            answers.append(f"TYPE{rtype}")
        off += rdlen
except (IndexError, ValueError, struct.error, UnicodeDecodeError) as e:
    print(f"malformed DNS reply: {e}", file=sys.stderr)
    sys.exit(2)
print("rcode", flags & 0xF)
for line in sorted(answers):
    print(line)
'

# require_docker: return when a daemon answers; without one, exit 0 if
# CAIRN_DOCKER_OPTIONAL=1 (skip), else fail.
require_docker() {
  if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    if [[ "${CAIRN_DOCKER_OPTIONAL:-}" == 1 ]]; then
      say "skipped: no Docker daemon"
      exit 0
    fi
    fail "no Docker daemon ('docker info' failed); set CAIRN_DOCKER_OPTIONAL=1 to skip instead"
  fi
}

# build_image: the static binary, then the FROM scratch image; checks the binary runs there.
build_image() {
  say "building the static binary ($BIN)"
  RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target "$TARGET" --target-dir target/static --bin cairn
  if command -v file >/dev/null 2>&1; then
    file -L "$BIN" | grep -Eq 'static(-pie)? linked' || fail "$BIN is not static: $(file -L "$BIN")"
  fi
  local version
  version=$("$BIN" version) || fail "$BIN version"
  say "$(echo "$version" | head -n 1)"

  say "building image $IMAGE"
  if docker buildx version >/dev/null 2>&1; then
    docker build -q -t "$IMAGE" . >/dev/null
  else
    # No buildx plugin: the classic builder is all this Dockerfile needs.
    DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" . >/dev/null
  fi
  # No shell, no libc in the image: the binary must run on its own.
  docker run --rm --entrypoint /bin/cairn "$IMAGE" version >/dev/null ||
    fail "'cairn version' does not run inside $IMAGE"
}

# The two below use the sourcing script's `fail` and POLL_INTERVAL_S.

# wait_for DESCRIPTION TIMEOUT_S COMMAND...: poll COMMAND until it succeeds, or fail.
wait_for() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what"
    sleep "$POLL_INTERVAL_S"
  done
}

# json_is EXPR: stdin is JSON `d`; succeed when the Python expression EXPR holds.
json_is() {
  python3 -c 'import json, sys
d = json.load(sys.stdin)
sys.exit(0 if eval(sys.argv[1]) else 1)' "$1"
}
