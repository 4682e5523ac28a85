"""Bytes of model state per simulated page on a 16 GiB machine.

Counts the pfn-indexed arrays (struct page, page_cgroup, allocator blocks) and, separately,
the process's resident memory growth while building the machine (tracemalloc sees numpy's
allocations too).

    python bench/bench_memory.py [--gib N]
"""

from __future__ import annotations

import argparse
import tracemalloc

from machine_info import describe
from memcgsim import Kernel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=int, default=16)
    args = ap.parse_args()
    nr_pages = args.gib << 18
    tracemalloc.start()
    k = Kernel(nr_pages)
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    arrays = {**k.mem_map.arrays(), **k.pc.arrays()}
    per_page = {name: a.nbytes / nr_pages for name, a in arrays.items()}
    total = sum(per_page.values()) + k.free_area.block_free.nbytes / nr_pages
    print(describe())
    print(f"{args.gib} GiB = {nr_pages} pages")
    for name, b in per_page.items():
        print(f"  {name:10s} {b:5.2f} B/page")
    print(f"pfn-indexed state: {total:.2f} B/page ({total * nr_pages / 2**20:.0f} MiB)")
    print(f"all allocations while booting the model: {traced / nr_pages:.2f} B/page")


if __name__ == "__main__":
    main()
