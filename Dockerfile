# cairn in a container, built without pulling anything: the image is `scratch` plus one
# statically linked binary built on the host first:
#
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --release \
#     --target x86_64-unknown-linux-gnu --target-dir target/static --bin cairn
#   docker build -t cairn:dev .
#
# (scripts/docker-walkthrough.sh does both and then runs the README walkthrough against
# the container.) There is no shell, no libc and no /tmp in the image: give a server a
# volume for its -data-dir.
FROM scratch

COPY target/static/x86_64-unknown-linux-gnu/release/cairn /bin/cairn

# HTTP API, DNS (UDP and TCP), server RPC, LAN gossip: Consul's ports.
EXPOSE 8500 8600/udp 8600/tcp 8300 8301

ENTRYPOINT ["/bin/cairn", "agent"]

# A development agent reachable from outside the container. -dev alone would bind and
# serve on 127.0.0.1 only; explicit flags win over the -dev layer. Bound to 0.0.0.0, the
# agent advertises the container's single private address, read from /proc/net/fib_trie.
# Any arguments given to `docker run cairn:dev ...` replace these.
CMD ["-dev", "-client", "0.0.0.0", "-bind", "0.0.0.0"]
