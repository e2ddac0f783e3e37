#!/usr/bin/env python3
"""Load tool for bench/run.sh: bulk KV writes and parked blocking queries against cairn.

Plain asyncio over raw HTTP/1.1 (no dependency to install). Every phase is bounded in
count and time; every failure exits non-zero with the reason.

  load.py fill IP PREFIX COUNT [CONNS]
      PUT PREFIX<i> for i < COUNT over CONNS keep-alive connections (pipelined 32 deep),
      spread over source addresses 127.99.x.y (the per-client limit is 200 connections).
      Prints "puts/s".
  load.py park IP PID COUNT SECS VALUEFILE
      Creates park/<i> (i < COUNT), then: RSS and hey PUT req/s (64 clients, other key)
      without parked queries; COUNT blocking GETs parked on park/<i> from 127.77.x.y
      (100 per address); RSS and hey PUT req/s with them; then 200 samples of the time from
      a PUT on a watched key to its query's answer. Prints
      "rps_without rps_with rss_without_kb rss_with_kb kb_per_query p50_ms p99_ms early
      connected" (early: queries answered before their key changed; must be 0).
"""
import asyncio
import re
import subprocess
import sys
import time

DEADLINE = 240  # seconds any one phase may take


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def source(i, base, per_ip):
    n = i // per_ip
    return f"127.{base}.{n // 250}.{n % 250 + 1}"


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    status = int(head.split(b" ", 2)[1])
    index = re.search(rb"(?i)x-consul-index:\s*(\d+)", head)
    return status, body, int(index.group(1)) if index else 0


def put_request(ip, key, value=b"v"):
    return (f"PUT /v1/kv/{key} HTTP/1.1\r\nHost: {ip}\r\nContent-Length: {len(value)}\r\n\r\n"
            .encode() + value)


async def fill(ip, prefix, count, conns):
    """PUT prefix<i> for every i < count; returns puts/s."""
    next_key = iter(range(count))
    started = time.monotonic()

    async def worker(c):
        reader, writer = await asyncio.open_connection(ip, 8500, local_addr=(source(c, 99, 100), 0))
        while True:
            batch = [k for _, k in zip(range(32), next_key)]
            if not batch:
                break
            writer.write(b"".join(put_request(ip, f"{prefix}{k}") for k in batch))
            for _ in batch:
                status, body, _ = await read_response(reader)
                if status != 200:
                    raise SystemExit(f"PUT answered {status}: {body[:200]!r}")
        writer.close()

    await asyncio.wait_for(asyncio.gather(*(worker(c) for c in range(conns))), DEADLINE)
    return count / (time.monotonic() - started)


def hey_put_rps(ip, secs, value_file):
    out = subprocess.run(["hey", "-z", f"{secs}s", "-c", "64", "-m", "PUT", "-D", value_file,
                          f"http://{ip}:8500/v1/kv/bench-other"],
                         capture_output=True, text=True, timeout=secs + 60).stdout
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


async def park(ip, pid, count, secs, value_file):
    await fill(ip, "park/", count, 64)
    # The current index: every park/<i> has a ModifyIndex at or below it.
    r, w = await asyncio.open_connection(ip, 8500)
    w.write(f"GET /v1/kv/park/?keys HTTP/1.1\r\nHost: {ip}\r\n\r\n".encode())
    _, _, index = await read_response(r)
    w.close()
    await asyncio.sleep(1)
    rss_without = rss_kb(pid)
    rps_without = await asyncio.to_thread(hey_put_rps, ip, secs, value_file)

    answered = {}  # key number -> monotonic time its parked query answered
    early = 0

    connected = 0

    async def parked_query(i):
        nonlocal early, connected
        reader, writer = await asyncio.open_connection(ip, 8500, local_addr=(source(i, 77, 100), 0))
        writer.write(f"GET /v1/kv/park/{i}?index={index}&wait=5m HTTP/1.1\r\nHost: {ip}\r\n\r\n"
                     .encode())
        await writer.drain()
        connected += 1
        try:
            status, _, _ = await read_response(reader)
            answered[i] = time.monotonic()
            if status != 200 or i not in sampled:
                early += 1
        finally:
            writer.close()

    sampled = set()
    opened = []
    for start in range(0, count, 500):  # open in waves: the listen backlog is 1024
        opened += [asyncio.ensure_future(parked_query(i)) for i in range(start, min(count, start + 500))]
        await asyncio.sleep(0.05)
    for _ in range(3000):  # bounded: 30 s
        if connected == count:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(2)  # let every query reach the server and park
    rss_with = rss_kb(pid)
    rps_with = await asyncio.to_thread(hey_put_rps, ip, secs, value_file)

    # Time from a PUT on a watched key to its query's answer.
    latencies = []
    r, w = await asyncio.open_connection(ip, 8500)
    for n in range(200):
        i = (n * 37) % count
        sampled.add(i)
        sent = time.monotonic()
        w.write(put_request(ip, f"park/{i}", b"changed"))
        await read_response(r)
        for _ in range(2000):  # bounded: 2 s
            if i in answered:
                break
            await asyncio.sleep(0.001)
        if i not in answered:
            raise SystemExit(f"the query parked on park/{i} did not answer its PUT")
        latencies.append((answered[i] - sent) * 1000)
    w.close()
    for task in opened:
        task.cancel()
    await asyncio.gather(*opened, return_exceptions=True)
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    per_query = (rss_with - rss_without) / count
    print(f"{rps_without:.0f} {rps_with:.0f} {rss_without} {rss_with} {per_query:.2f} "
          f"{p(0.5):.2f} {p(0.99):.2f} {early} {connected}")


def main():
    cmd = sys.argv[1]
    if cmd == "fill":
        ip, prefix, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
        conns = int(sys.argv[5]) if len(sys.argv) > 5 else 128
        print(f"{asyncio.run(fill(ip, prefix, count, conns)):.0f}")
    elif cmd == "park":
        ip, pid, count, secs, value_file = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
        asyncio.run(park(ip, pid, count, secs, value_file))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
