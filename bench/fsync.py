#!/usr/bin/env python3
"""fdatasync latency of small appends, the way the Raft log writes, with and without
preallocating the file (what `actors/src/log_store/file.rs` does for its active segment).

WRITERS threads (default 3: the three servers of a local cluster on one disk) each append
RECORD-byte records (default 200) to their own file and fdatasync after each, COUNT times
(default 1500), in DIR (default bench/.fsync-tmp, on the disk the data dirs use). Modes,
alternated twice: `append` (the file grows with every write, so ext4 commits its journal
for the new size) and `fallocate` (the file is preallocated, writes land inside it).
Prints p50/p99 per mode. Uses only the Python standard library; removes its files.

    python3 bench/fsync.py
    WRITERS=1 DIR=/tmp python3 bench/fsync.py
"""
import os
import threading
import time

WRITERS = int(os.environ.get("WRITERS", "3"))
RECORD = int(os.environ.get("RECORD", "200"))
COUNT = int(os.environ.get("COUNT", "1500"))
DIR = os.environ.get("DIR", os.path.join(os.path.dirname(__file__), ".fsync-tmp"))
PREALLOC = 64 << 20


def writer(mode, idx, out):
    path = os.path.join(DIR, f"{mode}-{idx}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        if mode == "fallocate":
            os.posix_fallocate(fd, 0, PREALLOC)
            os.fsync(fd)
        record = b"x" * RECORD
        lat = []
        for i in range(COUNT):
            start = time.perf_counter()
            os.pwrite(fd, record, i * RECORD)
            os.fdatasync(fd)
            lat.append((time.perf_counter() - start) * 1e6)
        out.extend(lat)
    finally:
        os.close(fd)
        os.remove(path)


def main():
    os.makedirs(DIR, exist_ok=True)
    print(f"== {WRITERS} writers, {RECORD}-byte appends + fdatasync, {COUNT} each, in {DIR}")
    for mode in ["append", "fallocate", "append", "fallocate"]:
        out = []
        threads = [threading.Thread(target=writer, args=(mode, i, out)) for i in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out.sort()
        n = len(out)
        print(f"{mode:10s} p50 {out[n // 2]:6.0f} us   p99 {out[int(n * 0.99)]:6.0f} us")
    os.rmdir(DIR)


if __name__ == "__main__":
    main()
