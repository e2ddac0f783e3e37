#!/usr/bin/env python3
"""Lock acquire/release round trips per second: cairn (3 servers and a client agent)
beside etcd (3 members), in one run (called by bench/locks.sh).

  locks.py CAIRN_BIN WORKDIR

One client, one persistent HTTP connection each, for SECS seconds per system and
ROUNDS alternating rounds (cairn, etcd, cairn, ...), after a 1 s warm-up each:
  - cairn, through the client agent: one session (created once, TTL 1h), then
    `PUT /v1/kv/bench/lock?acquire=<session>` (true) and `PUT ...?release=<session>`
    (true) in a loop: each pair is one round trip of the lock, both Raft writes;
  - etcd, at the leader, through its v3 HTTP gateway: one lease (granted once, TTL
    60), then `POST /v3/lock/lock {"name","lease"}` and `POST /v3/lock/unlock {"key"}`
    in a loop (etcd's lock service, what `etcdctl lock` calls).
The loops run in `seqclient` (bench/seqclient.rs, built by bench/locks.sh: one kept-alive
connection, each request in one write; the Python loop this used before added about
100 us of its own to every request of both systems). SEQCLIENT names the binary
(bench/raft.py's `seqclient` runs it).
Both clusters run with fsync on (cairn's file log, etcd's WAL). The cluster
start-up, leader finding and cleanup are bench/raft.py's, on this benchmark's own
addresses: cairn 127.0.10.21-23 (servers) and 127.0.10.24 (client agent), etcd
127.0.10.25 (ports 2379/2380, 12379/12380, 22379/22380).
For reference, the cairn loop is also run straight at the Raft leader (no client agent).
Prints the figures and tab-separated "RESULT label cairn etcd" lines.
"""
import base64
import http.client
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import raft  # noqa: E402  (the shared cluster helpers)

SECS = float(os.environ.get("SECS", "10"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
CLIENT_IP = "127.0.10.24"


class Cairn(raft.Cairn):
    def ip(self, i):
        return f"127.0.10.{21 + i}"


class Etcd(raft.Etcd):
    IP = "127.0.10.25"


def send(conn, method, path, body, headers):
    """One request on the persistent connection; a connection the server closed while
    idle (between rounds) is opened again once: the request never reached it."""
    try:
        conn.request(method, path, body, headers)
        return conn.getresponse()
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        conn.close()
        conn.request(method, path, body, headers)
        return conn.getresponse()


class CairnLock:
    """acquire/release of one key with one session, through the client agent."""

    def __init__(self, host=CLIENT_IP):
        self.conn = http.client.HTTPConnection(host, 8500, timeout=10)
        body = json.dumps({"Name": "bench", "TTL": "3600s", "LockDelay": "0s"})
        self.session = json.loads(self.call("PUT", "/v1/session/create", body))["ID"]

    def call(self, method, path, body=b""):
        r = send(self.conn, method, path, body, {})
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{method} {path}: {r.status} {data!r}")
        return data

    def seqclient_args(self):
        return ["cairn-lock", f"{self.conn.host}:{self.conn.port}", self.session, "bench/lock"]

    def close(self):
        self.call("PUT", f"/v1/session/destroy/{self.session}")
        self.conn.close()


class EtcdLock:
    """lock/unlock of one name with one lease, at the leader."""

    def __init__(self, host, port):
        self.conn = http.client.HTTPConnection(host, port, timeout=10)
        self.lease = self.call("/v3/lease/grant", {"TTL": 3600})["ID"]
        self.name = base64.b64encode(b"bench-lock").decode()

    def call(self, path, body):
        r = send(self.conn, "POST", path, json.dumps(body), {"Content-Type": "application/json"})
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"POST {path}: {r.status} {data!r}")
        return json.loads(data)

    def seqclient_args(self):
        return ["etcd-lock", f"{self.conn.host}:{self.conn.port}", str(self.lease), self.name]

    def close(self):
        self.call("/v3/lease/revoke", {"ID": self.lease})
        self.conn.close()


def measure(lock, secs):
    """Round trips per second over `secs` (after a 1 s warm-up), and the p50/p99 of one
    round trip (ms), from `seqclient` on its own connection. Any failed round trip
    fails the run: a benchmark of refused locks would measure nothing."""
    mode, addr, *rest = lock.seqclient_args()
    per_sec, p50, p99, errors = raft.seqclient(mode, addr, secs, *rest)
    if errors > 0:
        raise RuntimeError(f"{mode}: {errors} failed round trips")
    return per_sec, p50, p99


def main():
    binary, work = sys.argv[1], sys.argv[2]
    cairn, etcd = Cairn(binary, work), Etcd(work)
    # raft.py's write probe (used to tell that a cluster is whole) reads this body.
    with open(os.path.join(work, "put.json"), "w") as f:
        json.dump({"key": base64.b64encode(b"bench").decode(),
                   "value": base64.b64encode(raft.VALUE).decode()}, f)
    try:
        for i in range(3):
            cairn.start(i)
            etcd.start(i)
        raft.wait("cairn leader", cairn.whole)
        etcd_leader = raft.wait("etcd leader", etcd.whole)
        client_args = [binary, "agent", "-node", "bench-client", "-bind", CLIENT_IP,
                       "-client", CLIENT_IP, "-data-dir", os.path.join(work, "client"),
                       "-log-level", "warn", "-join", cairn.ip(0)]
        cairn.spawn(3, client_args)
        # Sessions need the client's node in the catalog (its serfHealth check).
        cairn_lock = raft.wait("a session through the client agent", CairnLock)
        # The client agent is not a Raft member: leave it out of leader polls.
        client_proc = cairn.procs.pop(3)
        # For reference only: the same loop straight at the Raft leader (no agent hop).
        direct_lock = CairnLock(cairn.ip(raft.wait("cairn leader", cairn.leader_index)))
        host = etcd.IP
        etcd_lock = EtcdLock(host, etcd.client_port(etcd_leader))
        figures = {"cairn": [], "etcd": [], "leader": []}
        for r in range(ROUNDS):
            for name, lock in (("cairn", cairn_lock), ("etcd", etcd_lock),
                               ("leader", direct_lock)):
                rate, p50, p99 = measure(lock, SECS)
                figures[name].append((rate, p50, p99))
                print(f"round {r + 1} {name:6}: {rate:8.1f} round trips/s  "
                      f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms", flush=True)
        cairn_lock.close()
        direct_lock.close()
        etcd_lock.close()
        cairn.procs[3] = client_proc
        med = lambda name, k: statistics.median(f[k] for f in figures[name])
        print(f"RESULT\tlock round trips/s (median of {ROUNDS})\t{med('cairn', 0):.1f}\t{med('etcd', 0):.1f}")
        print(f"RESULT\tround trip p50 ms\t{med('cairn', 1):.2f}\t{med('etcd', 1):.2f}")
        print(f"RESULT\tround trip p99 ms\t{med('cairn', 2):.2f}\t{med('etcd', 2):.2f}")
        print(f"RESULT\tround trips/s, cairn at its leader (no agent)\t{med('leader', 0):.1f}\t{med('etcd', 0):.1f}")
    finally:
        for s in (cairn, etcd):
            s.stop_all()


if __name__ == "__main__":
    main()
