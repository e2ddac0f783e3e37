#!/usr/bin/env python3
"""Gossip membership beside HashiCorp serf, in one run (called by bench/gossip.sh).

  gossip.py CAIRN_BIN WORKDIR N RUNS FLAP_SECS

For each of cairn and serf: start N agents on loopback, each on its own address
(cairn: one server and N-1 client agents on 127.0.2.x with the standard ports; serf:
127.0.3.x:7946), join them all through the first, and measure
  - join convergence: from the join command until every agent sees N alive members;
  - failure detection, RUNS times: SIGKILL one agent, time until every survivor sees it
    failed (and until the first one does);
  - false failures: for FLAP_SECS, one agent is stopped and continued every 0.5 s
    (SIGSTOP/SIGCONT); every other agent's view is sampled and any healthy member
    ever reported failed is counted;
  - idle RSS of one agent (cairn: a client agent).
Prints one line per figure; "RESULT key value" lines are for the shell to tabulate.
Every wait is bounded; a bound reached is reported as a failure, never hangs.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

DEADLINE = 120  # seconds any one wait may take


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Cairn:
    name = "cairn"

    def __init__(self, binary, work, n):
        self.binary, self.work, self.n = binary, work, n
        self.procs = {}

    def ip(self, i):
        return f"127.0.2.{i + 1}"

    def node(self, i):
        return f"c{i}"

    def start(self, i):
        args = [self.binary, "agent", "-node", self.node(i), "-bind", self.ip(i),
                "-client", self.ip(i), "-data-dir", os.path.join(self.work, f"cairn{i}"),
                "-log-level", "warn"]
        if i == 0:
            args += ["-server", "-bootstrap"]
        args += os.environ.get("CAIRN_ARGS", "").split()
        log = open(os.path.join(self.work, f"cairn{i}.log"), "w")
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=log)

    def ready(self, i):
        try:
            urllib.request.urlopen(f"http://{self.ip(i)}:8500/v1/agent/self", timeout=2).read()
            return True
        except Exception:
            return False

    def join_all(self):
        # Every agent joins the first at once (serf's one join command contacts them all).
        def join(i):
            req = urllib.request.Request(f"http://{self.ip(i)}:8500/v1/agent/join/{self.ip(0)}",
                                         method="PUT")
            urllib.request.urlopen(req, timeout=30).read()
        threads = [threading.Thread(target=join, args=(i,)) for i in range(1, self.n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def join_one(self, i):
        req = urllib.request.Request(f"http://{self.ip(i)}:8500/v1/agent/join/{self.ip(0)}",
                                     method="PUT")
        urllib.request.urlopen(req, timeout=30).read()

    def members(self, i):
        try:
            with urllib.request.urlopen(f"http://{self.ip(i)}:8500/v1/agent/members",
                                        timeout=2) as r:
                data = json.load(r)
        except Exception:
            return None
        names = {1: "alive", 2: "leaving", 3: "left", 4: "failed"}
        return {m["Name"]: names.get(m["Status"], "none") for m in data}


class Serf:
    name = "serf"

    def __init__(self, work, n):
        self.work, self.n = work, n
        self.procs = {}

    def ip(self, i):
        return f"127.0.3.{i + 1}"

    def node(self, i):
        return f"s{i}"

    def start(self, i):
        log = open(os.path.join(self.work, f"serf{i}.log"), "w")
        self.procs[i] = subprocess.Popen(
            ["serf", "agent", f"-node={self.node(i)}", f"-bind={self.ip(i)}:7946",
             f"-rpc-addr={self.ip(i)}:7373", "-log-level=warn"], stdout=log, stderr=log)

    def ready(self, i):
        return self.members(i) is not None

    def join_all(self):
        subprocess.run(["serf", "join", f"-rpc-addr={self.ip(0)}:7373"]
                       + [f"{self.ip(i)}:7946" for i in range(1, self.n)],
                       capture_output=True, timeout=60)

    def join_one(self, i):
        subprocess.run(["serf", "join", f"-rpc-addr={self.ip(i)}:7373", f"{self.ip(0)}:7946"],
                       capture_output=True, timeout=60)

    def members(self, i):
        try:
            out = subprocess.run(["serf", "members", f"-rpc-addr={self.ip(i)}:7373",
                                  "-format=json"], capture_output=True, text=True,
                                 timeout=5).stdout
            return {m["name"]: m["status"] for m in json.loads(out)["members"]}
        except Exception:
            return None


def wait(what, check):
    start = time.monotonic()
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() - start > DEADLINE:
            raise SystemExit(f"timed out: {what}")
        time.sleep(0.05)


def measure(system, runs, flap_secs):
    n = system.n
    for i in range(n):
        system.start(i)
    for i in range(n):
        wait(f"{system.name} agent {i} up", lambda i=i: system.ready(i))
    t0 = time.monotonic()
    system.join_all()
    alive_everywhere = lambda: all(
        (m := system.members(i)) is not None
        and sum(1 for s in m.values() if s == "alive") == n for i in range(n))
    wait(f"{system.name}: all see {n} alive", alive_everywhere)
    join_ms = (time.monotonic() - t0) * 1000
    print(f"{system.name} N={n}: join convergence {join_ms:.0f} ms", flush=True)
    time.sleep(3)

    detections, firsts = [], []
    live = list(range(n - 1))  # the survivors; the victim is always the last agent
    victim = n - 1
    for r in range(runs):
        t0 = time.monotonic()
        system.procs[victim].send_signal(signal.SIGKILL)
        system.procs[victim].wait()
        first = None
        while True:
            views = [system.members(i) for i in live]
            seen = [v.get(system.node(victim)) == "failed" for v in views if v is not None]
            if first is None and any(seen):
                first = time.monotonic() - t0
            if len(seen) == len(live) and all(seen):
                break
            if time.monotonic() - t0 > DEADLINE:
                raise SystemExit(f"{system.name}: kill of {victim} not detected everywhere")
            time.sleep(0.05)
        all_s = time.monotonic() - t0
        detections.append(all_s)
        firsts.append(first)
        print(f"{system.name} N={n} run {r}: first sees failed {first * 1000:.0f} ms, "
              f"all {len(live)} survivors {all_s * 1000:.0f} ms", flush=True)
        # Bring the victim back (same name and data) so every run has N members.
        system.start(victim)
        wait(f"{system.name} agent {victim} back", lambda: system.ready(victim))
        system.join_one(victim)
        wait(f"{system.name}: all see {n} alive again", alive_everywhere)
        time.sleep(2)
    live.append(victim)

    # Flapping member: stopped and continued every 0.5 s; count healthy members that
    # anyone reports failed meanwhile.
    flapper = live[-1]
    healthy = {system.node(i) for i in live if i != flapper}
    observers = [i for i in live if i != flapper]
    false_failed = set()
    t0 = time.monotonic()
    stopped = False
    next_flip = t0
    while time.monotonic() - t0 < flap_secs:
        if time.monotonic() >= next_flip:
            system.procs[flapper].send_signal(signal.SIGCONT if stopped else signal.SIGSTOP)
            stopped = not stopped
            next_flip += 0.5
        obs = observers[int(time.monotonic() * 10) % len(observers)]
        view = system.members(obs) or {}
        false_failed |= {name for name, s in view.items() if name in healthy and s == "failed"}
        time.sleep(0.05)
    if stopped:
        system.procs[flapper].send_signal(signal.SIGCONT)
    print(f"{system.name} N={n}: {len(false_failed)} healthy members reported failed during "
          f"{flap_secs} s of a member flapping every 0.5 s {sorted(false_failed)}", flush=True)

    idle_agent = live[1] if len(live) > 1 else live[0]
    time.sleep(1)
    rss = rss_kb(system.procs[idle_agent].pid)
    print(f"{system.name}: idle RSS of one agent {rss / 1024:.1f} MB", flush=True)
    return {
        "join_ms": join_ms,
        "detect_median_ms": statistics.median(detections) * 1000,
        "first_median_ms": statistics.median(firsts) * 1000,
        "false_failed": len(false_failed),
        "rss_mb": rss / 1024,
    }


def stop_all(system):
    for p in system.procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()


def main():
    binary, work, n, runs, flap = (sys.argv[1], sys.argv[2], int(sys.argv[3]),
                                   int(sys.argv[4]), float(sys.argv[5]))
    results = {}
    for system in (Cairn(binary, work, n), Serf(work, n)):
        try:
            results[system.name] = measure(system, runs, flap)
        finally:
            stop_all(system)
    for key in ("join_ms", "detect_median_ms", "first_median_ms", "false_failed", "rss_mb"):
        print(f"RESULT N={n} {key} cairn={results['cairn'][key]:.1f} "
              f"serf={results['serf'][key]:.1f}", flush=True)


if __name__ == "__main__":
    main()
