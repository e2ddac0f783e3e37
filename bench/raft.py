#!/usr/bin/env python3
"""A 3-server cairn cluster beside a 3-member etcd cluster, in one run (called by
bench/raft.sh).

  raft.py CAIRN_BIN WORKDIR

Both clusters run on loopback with fsync on (cairn's file log, etcd's WAL) for the
whole run: cairn on BENCH_IP .. +2 (default 127.0.0.236-238, standard ports), etcd on
BENCH_IP + 3 (default 127.0.0.239, ports 2379/2380, 12379/12380, 22379/22380). The same load goes to both, one after the other,
through `hey` at the current leader:
  - PUT of a 36-byte value with 1, 16 and 64 clients: req/s, p50, p99. One client is
    `seqclient` (bench/seqclient.rs, built by bench/raft.sh; SEQCLIENT names it): one
    kept-alive connection, requests in turn, timed to the microsecond. hey's one-client
    figures are printed beside them: hey prints latencies in 0.1 ms steps (coarse at
    ~0.5 ms) and its own time per request (~0.1 ms here) is in them;
  - reads with 64 clients in each mode: cairn ?stale / default / ?consistent, etcd
    serializable / linearizable;
  - leader failover, RUNS times alternating cairn and etcd: SIGKILL the leader, PUT
    through a follower every 5 ms (each attempt bounded by 0.5 s) until one succeeds;
    then restart the killed one and wait until the cluster is whole again;
  - idle RSS of a server / member (mean of the three, before any load).
Env: SECS (each load, default 5), RUNS (failovers per system, default 20),
FAILOVER_TIMEOUT (s, default 15), CLIENTS (default "1 16 64"), BENCH_IP (the first of
four consecutive loopback addresses, default 127.0.0.236), READS (0 skips the reads).
RUNS=0 skips the failovers, STABLE_SECS=0 the stability run.
Prints the figures and tab-separated "RESULT label cairn etcd" lines for the shell's table. Every wait
is bounded; every process started is recorded in WORKDIR/pids and stopped by PID.
"""
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

SECS = int(os.environ.get("SECS", "5"))
SEQCLIENT = os.environ.get("SEQCLIENT", "seqclient")
RUNS = int(os.environ.get("RUNS", "20"))
FAILOVER_TIMEOUT = float(os.environ.get("FAILOVER_TIMEOUT", "15"))
STABLE_SECS = int(os.environ.get("STABLE_SECS", "600"))
CLIENTS = [int(c) for c in os.environ.get("CLIENTS", "1 16 64").split()]
READS = os.environ.get("READS", "1") != "0"
BENCH_IP = os.environ.get("BENCH_IP", "127.0.0.236")


def bench_ip(offset):
    """The address `offset` after BENCH_IP (its last octet stays within 1..254)."""
    a, b, c, d = (int(x) for x in BENCH_IP.split("."))
    if not 1 <= d + offset <= 254:
        raise SystemExit(f"BENCH_IP {BENCH_IP}: {BENCH_IP} + {offset} leaves the /24")
    return f"{a}.{b}.{c}.{d + offset}"

DEADLINE = 60  # seconds any one wait for a cluster may take
VALUE = b"74a31e96-1d0f-4fa7-aa14-7212a326986e"  # 36 bytes, as in the peers' recipe


def http(method, url, body=None, timeout=2.0, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait(what, check, deadline=DEADLINE):
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            v = check()
            if v is not None and v is not False:  # member 0 is a fine answer
                return v
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out after {deadline}s waiting for {what}")


class Cluster:
    """Three members; subclasses say how to start one, find the leader and write."""

    def __init__(self, work):
        self.work = work
        self.procs = {}

    def spawn(self, i, args):
        log = open(os.path.join(self.work, f"{self.name}{i}.log"), "a")
        p = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        with open(os.path.join(self.work, "pids"), "a") as f:
            f.write(f"{p.pid}\n")
        self.procs[i] = p

    def kill9(self, i):
        p = self.procs.pop(i)
        p.send_signal(signal.SIGKILL)
        p.wait()

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()

    def leader_index(self):
        """The member every live member names as leader, or None."""
        named = set()
        for i in self.procs:
            named.add(self.leader_named_by(i))
        if len(named) == 1:
            (leader,) = named
            return leader
        return None

    def whole(self):
        """All three agree on a leader and a write through each follower works."""
        if len(self.procs) != 3:
            return None
        leader = self.leader_index()
        if leader is None:
            return None
        for i in range(3):
            if i != leader and not self.put(i, timeout=2.0):
                return None
        return leader

    def idle_rss_mb(self):
        return statistics.mean(rss_kb(p.pid) for p in self.procs.values()) / 1024


class Cairn(Cluster):
    name = "cairn"

    def __init__(self, binary, work):
        super().__init__(work)
        self.binary = binary

    def ip(self, i):
        return bench_ip(i)

    def start(self, i):
        args = [self.binary, "agent", "-server", "-bootstrap-expect", "3", "-node", f"b{i}",
                "-bind", self.ip(i), "-client", self.ip(i),
                "-data-dir", os.path.join(self.work, f"cairn{i}"), "-log-level", "warn"]
        for j in range(3):
            if j != i:
                args += ["-join", self.ip(j)]
        self.spawn(i, args)

    def url(self, i):
        return f"http://{self.ip(i)}:8500"

    def leader_named_by(self, i):
        _, body = http("GET", self.url(i) + "/v1/status/leader", timeout=1.0)
        addr = json.loads(body)
        for j in range(3):
            if addr == f"{self.ip(j)}:8300":
                return j
        return None

    def put(self, i, timeout):
        try:
            status, body = http("PUT", self.url(i) + "/v1/kv/bench", VALUE, timeout=timeout)
            return status == 200 and body.strip() == b"true"
        except Exception:
            return False

    def hey_put(self, i):
        return ["-m", "PUT", "-D", os.path.join(self.work, "value"), self.url(i) + "/v1/kv/bench"]

    def put_request(self, i):
        """(host, port, method, path, file holding the body) of one PUT."""
        return self.ip(i), 8500, "PUT", "/v1/kv/bench", os.path.join(self.work, "value")

    def hey_get(self, i, mode):
        query = {"stale": "?stale", "default": "", "consistent": "?consistent"}[mode]
        return [self.url(i) + "/v1/kv/bench" + query]


class Etcd(Cluster):
    name = "etcd"
    IP = bench_ip(3)

    def __init__(self, work):
        super().__init__(work)
        self.members = ",".join(f"e{j}=http://{self.IP}:{self.peer_port(j)}" for j in range(3))

    def client_port(self, i):
        return 2379 + 10000 * i

    def peer_port(self, i):
        return 2380 + 10000 * i

    def start(self, i):
        client = f"http://{self.IP}:{self.client_port(i)}"
        peer = f"http://{self.IP}:{self.peer_port(i)}"
        args = ["etcd", "--name", f"e{i}", "--data-dir", os.path.join(self.work, f"etcd{i}"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", self.members, "--initial-cluster-state", "new",
                "--initial-cluster-token", "cairn-raft-bench", "--log-level", "error"]
        self.spawn(i, args)

    def url(self, i):
        return f"http://{self.IP}:{self.client_port(i)}"

    def leader_named_by(self, i):
        _, body = http("POST", self.url(i) + "/v3/maintenance/status", b"{}", timeout=1.0,
                       headers={"Content-Type": "application/json"})
        status = json.loads(body)
        if status.get("leader") in (None, "0"):
            return None
        if status["leader"] == status["header"]["member_id"]:
            return i
        # Another member leads: ask the others which one says it is itself.
        for j in self.procs:
            if j == i:
                continue
            try:
                _, b = http("POST", self.url(j) + "/v3/maintenance/status", b"{}", timeout=1.0,
                            headers={"Content-Type": "application/json"})
                s = json.loads(b)
                if s["header"]["member_id"] == status["leader"]:
                    return j
            except Exception:
                pass
        return None

    def put(self, i, timeout):
        try:
            with open(os.path.join(self.work, "put.json"), "rb") as f:
                body = f.read()
            status, out = http("POST", self.url(i) + "/v3/kv/put", body, timeout=timeout,
                               headers={"Content-Type": "application/json"})
            return status == 200 and b"error" not in out
        except Exception:
            return False

    def hey_put(self, i):
        return ["-m", "POST", "-T", "application/json", "-D", os.path.join(self.work, "put.json"),
                self.url(i) + "/v3/kv/put"]

    def put_request(self, i):
        return self.IP, self.client_port(i), "POST", "/v3/kv/put", os.path.join(self.work, "put.json")

    def hey_get(self, i, mode):
        body = {"serializable": "rs.json", "linearizable": "rl.json"}[mode]
        return ["-m", "POST", "-T", "application/json", "-D", os.path.join(self.work, body),
                self.url(i) + "/v3/kv/range"]


def hey(clients, target_args):
    """req/s, p50 ms, p99 ms, non-2xx-or-error count of one `hey -z SECS` run."""
    out = subprocess.run(["hey", "-z", f"{SECS}s", "-c", str(clients)] + target_args,
                         capture_output=True, text=True, timeout=SECS + 120).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%+ in ([\d.]+) secs", out)
    p99 = re.search(r"99%+ in ([\d.]+) secs", out)
    codes = dict((int(c), int(n)) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    bad = sum(n for c, n in codes.items() if c >= 300)
    err_section = out.split("Error distribution:")[1] if "Error distribution:" in out else ""
    errors = sum(int(n) for n in re.findall(r"\[(\d+)\]", err_section))
    return (float(rps.group(1)) if rps else 0.0,
            float(p50.group(1)) * 1000 if p50 else 0.0,
            float(p99.group(1)) * 1000 if p99 else 0.0,
            bad + errors)


FIGURES = ["req/s", "p50 ms", "p99 ms", "errors"]


def seqclient(mode, addr, secs, *args):
    """FIGURES (req/s, p50 ms, p99 ms, errors) of `seqclient MODE ADDR SECS 1 ARGS...`
    (bench/seqclient.rs: one kept-alive connection, requests in turn, each in one write,
    timed to the microsecond after a 1 s warm-up). bench/locks.py runs its loops here too."""
    out = subprocess.run([SEQCLIENT, mode, addr, str(secs), "1", *args], capture_output=True,
                         text=True, timeout=secs + 30, check=True).stdout
    fig = dict(kv.split("=") for kv in out.split())
    return (int(fig["count"]) / float(fig["secs"]), float(fig["p50_us"]) / 1000,
            float(fig["p99_us"]) / 1000, int(fig["errors"]))


def sequential_puts(request):
    """FIGURES of PUTs one after the other for SECS on one kept-alive connection (a Python
    loop added about 100 us of its own to every request, and hey prints latencies in
    0.1 ms steps with its own time in them)."""
    host, port, method, path, body_file = request
    return seqclient("request", f"{host}:{port}", SECS, method, path, body_file)


def result(label, cairn, etcd):
    """One row of the shell's table: tab-separated, after "RESULT"."""
    digits = 3 if label.endswith(" ms") else 2  # ms figures: to the microsecond
    print(f"RESULT\t{label}\t{cairn:.{digits}f}\t{etcd:.{digits}f}", flush=True)


def cairn_term(cluster, i):
    _, body = http("GET", cluster.url(i) + "/v1/agent/self", timeout=2.0)
    return int(json.loads(body)["Stats"]["raft"]["term"])


def stable_under_load(cairn, peak_rps):
    """PUTs at 70 % of the measured 64-client peak for STABLE_SECS through the leader;
    the Raft term must not move (no election, so no leader change)."""
    leader = wait("cairn leader", cairn.leader_index)
    terms = [cairn_term(cairn, i) for i in range(3)]
    rate = max(1, int(0.7 * peak_rps / 64))
    out = subprocess.run(["hey", "-z", f"{STABLE_SECS}s", "-c", "64", "-q", str(rate)]
                         + cairn.hey_put(leader), capture_output=True, text=True,
                         timeout=STABLE_SECS + 120).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    after = [cairn_term(cairn, i) for i in range(3)]
    changes = max(after) - max(terms)
    print(f"stability: {STABLE_SECS}s at {float(rps.group(1)) if rps else 0:.0f} PUT/s "
          f"(70% of {peak_rps:.0f}); terms {terms} -> {after}", flush=True)
    result(f"elections during {STABLE_SECS}s at 70% of peak PUT load", changes, float("nan"))


def failover_once(cluster):
    """ms from SIGKILL of the leader until a PUT through a follower succeeds."""
    leader = wait(f"{cluster.name} whole", cluster.whole)
    followers = [i for i in range(3) if i != leader]
    t0 = time.monotonic()
    cluster.kill9(leader)
    n = 0
    took = None
    while time.monotonic() - t0 < FAILOVER_TIMEOUT:
        if cluster.put(followers[n % 2], timeout=0.5):
            took = (time.monotonic() - t0) * 1000
            break
        n += 1
        time.sleep(0.005)
    cluster.start(leader)
    return took


def main():
    binary, work = sys.argv[1], sys.argv[2]
    with open(os.path.join(work, "value"), "wb") as f:
        f.write(VALUE)
    import base64
    key = base64.b64encode(b"bench").decode()
    val = base64.b64encode(VALUE).decode()
    with open(os.path.join(work, "put.json"), "w") as f:
        json.dump({"key": key, "value": val}, f)
    with open(os.path.join(work, "rl.json"), "w") as f:
        json.dump({"key": key}, f)
    with open(os.path.join(work, "rs.json"), "w") as f:
        json.dump({"key": key, "serializable": True}, f)

    cairn, etcd = Cairn(binary, work), Etcd(work)
    systems = [cairn, etcd]
    try:
        for s in systems:
            for i in range(3):
                s.start(i)
        for s in systems:
            leader = wait(f"{s.name} cluster formed", s.whole)
            print(f"{s.name}: leader is member {leader}", flush=True)
        time.sleep(2)  # idle: let start-up allocations settle before sampling RSS
        rss = {s.name: s.idle_rss_mb() for s in systems}
        print(f"idle RSS MB: cairn {rss['cairn']:.1f}, etcd {rss['etcd']:.1f}", flush=True)
        result("idle RSS MB (mean of the 3 servers/members)", rss["cairn"], rss["etcd"])

        results = {}
        for c in CLIENTS:
            for s in systems:
                leader = wait(f"{s.name} leader", s.leader_index)
                if c == 1:
                    # One client: timed to the microsecond by seqclient; hey beside it.
                    results[(s.name, "put_1")] = sequential_puts(s.put_request(leader))
                    results[(s.name, "put_1_hey")] = hey(1, s.hey_put(leader))
                    print(f"{s.name} PUT 1 client, hey: {results[(s.name, 'put_1_hey')]}",
                          flush=True)
                else:
                    results[(s.name, f"put_{c}")] = hey(c, s.hey_put(leader))
                print(f"{s.name} PUT {c} clients: {results[(s.name, f'put_{c}')]}", flush=True)
        reads = [("stale", "serializable"), ("default", "linearizable"),
                 ("consistent", "linearizable")] if READS else []
        for cmode, emode in reads:
            for s, mode in ((cairn, cmode), (etcd, emode)):
                leader = wait(f"{s.name} leader", s.leader_index)
                key = f"get_{mode}"
                if (s.name, key) not in results:
                    results[(s.name, key)] = hey(64, s.hey_get(leader, mode))
                    print(f"{s.name} GET 64 {mode}: {results[(s.name, key)]}", flush=True)
        for c in CLIENTS:
            for i, fig in enumerate(FIGURES):
                a, b = results[("cairn", f"put_{c}")][i], results[("etcd", f"put_{c}")][i]
                result(f"PUT, {c} client(s): {fig}", a, b)
        if 1 in CLIENTS:
            for i, fig in enumerate(FIGURES):
                a, b = results[("cairn", "put_1_hey")][i], results[("etcd", "put_1_hey")][i]
                result(f"PUT, 1 client, hey (0.1 ms steps): {fig}", a, b)
        for cmode, emode in reads:
            for i, fig in enumerate(FIGURES):
                a, b = results[("cairn", f"get_{cmode}")][i], results[("etcd", f"get_{emode}")][i]
                result(f"GET 64, {cmode} vs {emode}: {fig}", a, b)

        if STABLE_SECS > 0:
            # The peak is the PUT load with the most clients (64 by default).
            stable_under_load(cairn, results[("cairn", f"put_{max(CLIENTS)}")][0])

        if RUNS > 0:
            times = {"cairn": [], "etcd": []}
            for run in range(RUNS):
                for s in systems:
                    took = failover_once(s)
                    times[s.name].append(took)
                    shown = f"{took:.0f} ms" if took is not None else f"none within {FAILOVER_TIMEOUT}s"
                    print(f"failover {run + 1}/{RUNS} {s.name}: {shown}", flush=True)
            for fig, fn in (("median", statistics.median), ("min", min), ("max", max)):
                vals = []
                for s in systems:
                    ok = [t for t in times[s.name] if t is not None]
                    vals.append(fn(ok) if ok else float("nan"))
                result(f"failover ms, {fig} of {RUNS}", vals[0], vals[1])
            failed = [sum(t is None for t in times[s.name]) for s in systems]
            result("failover runs without success", failed[0], failed[1])
    finally:
        for s in systems:
            s.stop_all()


if __name__ == "__main__":
    main()
