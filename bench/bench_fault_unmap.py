"""Bulk anonymous fault then munmap of N pages in one cgroup: page events per second.

A page event is one page faulted in (charged, committed, put on the LRU) or one page unmapped
(uncharged at its final put and freed). Prints the median of several runs and the machine.

    python bench/bench_fault_unmap.py [--pages N] [--runs R] [--per-page]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from machine_info import describe
from memcgsim import Machine


def one_run(npages: int, memory_pages: int, vectorized: bool) -> tuple[float, float]:
    m = Machine(memory_pages, vectorized=vectorized)
    m.mkdir("/bench")
    t = m.spawn("T", "/bench")
    vma = m.mmap_anon(t, npages)
    t0 = time.perf_counter()
    assert m.touch(t, vma) == npages
    t1 = time.perf_counter()
    m.munmap(t, vma)
    t2 = time.perf_counter()
    assert m.stat("/bench")["rss"] == 0
    return t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=1 << 20, help="pages to fault (default 4 GiB)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--per-page", action="store_true",
                    help="run the per-page reference paths instead of the array versions")
    args = ap.parse_args()
    memory_pages = ((args.pages + 1024 + 511) // 512) * 512
    fault, unmap = [], []
    for _ in range(args.runs):
        f, u = one_run(args.pages, memory_pages, not args.per_page)
        fault.append(f)
        unmap.append(u)
    mf, mu = statistics.median(fault), statistics.median(unmap)
    total = mf + mu
    print(describe())
    # the figures move with what else runs on the machine: say how busy it was
    print("load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"paths: {'per-page reference' if args.per_page else 'vectorized'}; "
          f"{args.pages} pages ({args.pages * 4096 >> 20} MiB), median of {args.runs} runs")
    print(f"fault:  {mf * 1e3:9.1f} ms  {args.pages / mf / 1e6:8.2f} M pages/s")
    print(f"munmap: {mu * 1e3:9.1f} ms  {args.pages / mu / 1e6:8.2f} M pages/s")
    print(f"fault+munmap: {2 * args.pages / total / 1e6:.2f} M page events/s")


if __name__ == "__main__":
    main()
