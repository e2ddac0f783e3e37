# cairn in a container, built without pulling anything: the image is `scratch` plus one
# statically linked binary built on the host first:
#
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --release \
#     --target x86_64-unknown-linux-gnu --target-dir target/static --bin cairn
#   docker build -t cairn:dev .
#
# (build_image in scripts/docker-common.sh does both, for scripts/docker-walkthrough.sh and
# scripts/docker-cluster.sh.) There is no shell, no libc and no /tmp in the image.
#
# The image follows progrium/consul's conventions, so the commands written for that image
# work with only the image name changed:
#
#   docker run -p 8500:8500 -p 8600:53/udp -h node1 cairn:dev -server -bootstrap
#   docker run -d --name node2 -h node2 cairn:dev -server -join $JOIN_IP
#
# node name = the container's host name (-h), data in /data, HTTP and DNS served on every
# address (client 0.0.0.0), gossip and RPC bound to 0.0.0.0 (advertising the container's
# one private address, read from /proc/net/fib_trie), and DNS on port 53 inside the
# container. Flags given to `docker run` come later on the command line and win.
FROM scratch

COPY target/static/x86_64-unknown-linux-gnu/release/cairn /bin/cairn

# Creates the (empty) data directory, as scratch has none; a volume may be mounted there.
WORKDIR /data

# HTTP API, DNS (UDP and TCP), server RPC, LAN gossip (TCP and UDP).
EXPOSE 8500 53/udp 53/tcp 8300 8301 8301/udp

ENTRYPOINT ["/bin/cairn", "agent", "-data-dir", "/data", "-client", "0.0.0.0", "-bind", "0.0.0.0", "-dns-port", "53"]

# With no arguments: a development agent (in memory; -dev ignores -data-dir) reachable
# from outside the container. Any arguments given to `docker run cairn:dev ...` replace it.
CMD ["-dev"]
