"""Memory pressure throughput: anonymous memory faulted under memory.max with swap, and file
reads under memory.max (issue 4's benchmark), on the 6.12 profile with cgroup v2.

The issue's sizes are 8 GiB of anonymous memory under a 2 GiB max with 8 GiB of swap, and
16 GiB of file reads under a 1 GiB max; `--scale S` divides them (default 1: the issue's
sizes). A page event is a fault, a page reclaimed or a page read into the page cache. Prints
the median of --runs.

    python bench/bench_pressure.py [--scale S] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from machine_info import describe
from memcgsim import Machine

GIB = 1 << 18          # pages


def anon_under_max(scale: int) -> tuple[int, float]:
    anon, limit, swap = 8 * GIB // scale, 2 * GIB // scale, 8 * GIB // scale
    m = Machine(anon + 64 * 512, swap_pages=swap, profile="6.12", cgroup="v2")
    m.mkdir("/job")
    assert m.write_file("/job", "memory.max", str(limit * 4096)) == 0
    t = m.spawn("A", "/job")
    v = m.mmap_anon(t, anon)
    t0 = time.perf_counter()
    assert m.touch(t, v) == anon
    dt = time.perf_counter() - t0
    stat = m.stat("/job")
    return stat["pgfault"] + stat["pgsteal"], dt


def reads_under_max(scale: int) -> tuple[int, float]:
    size, limit = 16 * GIB // scale, 1 * GIB // scale
    m = Machine(size + 64 * 512, profile="6.12", cgroup="v2")
    m.mkdir("/job")
    # a file of `size` pages on disk, none of it cached (a sparse file: reading it fills
    # the page cache as any file does)
    m.create("/data/big")
    m.truncate("/data/big", size)
    assert m.write_file("/job", "memory.max", str(limit * 4096)) == 0
    t = m.spawn("R", "/job")
    t0 = time.perf_counter()
    assert m.read(t, "/data/big") == size
    dt = time.perf_counter() - t0
    stat = m.stat("/job")
    return size + stat["pgsteal"], dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(f"{describe()}; sizes / {args.scale}")
    for name, fn in (("anon under max, swap", anon_under_max),
                     ("file reads under max", reads_under_max)):
        runs = [fn(args.scale) for _ in range(args.runs)]
        events = runs[0][0]
        wall = statistics.median(dt for _, dt in runs)
        print(f"{name:<24} {events:>10} page events  {wall:8.2f} s  "
              f"{events / wall / 1e6:6.3f} M events/s (median of {args.runs})")


if __name__ == "__main__":
    main()
