"""mm/page_alloc.c: allocate and free pages (order 0 and THP order 9).

Free pages carry PG_buddy. Allocation is first-fit from a per-node cursor, so runs are repeatable;
free_pages_check reports a page freed with state still set (including a page_cgroup still USED,
mem_cgroup_bad_page_check) as a bad page and leaks it, as the kernel does.
"""

from __future__ import annotations

import numpy as np

from .mm_types import (
    HPAGE_PMD_NR,
    PAGE_FLAG_NAMES,
    PG_anon,
    PG_buddy,
    PG_head,
    PG_locked,
    PG_lru,
    PG_swapcache,
    PG_tail,
    PG_writeback,
    flag_names,
)
from .page_cgroup import PCG_USED

#: flags that must be clear when a page is freed (PAGE_FLAGS_CHECK_AT_FREE)
PAGE_FLAGS_CHECK_AT_FREE = PG_locked | PG_lru | PG_writeback | PG_swapcache | PG_buddy
_BLOCK_OFFSETS = np.arange(HPAGE_PMD_NR, dtype=np.int64)


class FreeArea:
    """Per-node allocation state: the next-fit cursor and free pages per 2 MiB block."""

    def __init__(self, nr_pages: int, nr_nodes: int):
        self.pages_per_node = nr_pages // nr_nodes
        self.cursor = [n * self.pages_per_node for n in range(nr_nodes)]
        self.block_free = np.full(nr_pages // HPAGE_PMD_NR, HPAGE_PMD_NR, dtype=np.int16)
        self.nr_free = [self.pages_per_node] * nr_nodes


def _node_range(k, node: int) -> tuple[int, int]:
    ppn = k.free_area.pages_per_node
    return node * ppn, (node + 1) * ppn


def find_free_pages(k, node: int, nr: int, window: int | None = None) -> np.ndarray:
    """The first nr free pfns of a node from its cursor on (wrapping); fewer if not enough.
    window: look only at the pfns less than that many past the cursor (wrapping).

    Whole 2 MiB blocks without a free page are skipped by their free count, so a search costs
    the blocks it passes and the pages of the blocks it takes, not the node."""
    fa = k.free_area
    lo, hi = _node_range(k, node)
    cur = fa.cursor[node]
    if window is None or window > hi - lo:
        window = hi - lo
    flags = k.mem_map.flags
    end = cur + nr
    if 0 < nr <= window and end <= hi and flags[end - 1] & PG_buddy and np.all(
            flags[cur:end] & PG_buddy):
        return np.arange(cur, end, dtype=np.int64)     # free all the way: the common case
    found = []
    got = 0
    for a, b in ((cur, min(hi, cur + window)), (lo, min(cur, lo + window - (hi - cur)))):
        if a >= b:
            continue
        first, last = a // HPAGE_PMD_NR, (b - 1) // HPAGE_PMD_NR
        blocks = np.flatnonzero(fa.block_free[first:last + 1] > 0) + first
        while len(blocks) and got < nr:
            # the blocks that hold enough free pages (the first may hold some before a, the
            # last some from b on), looked at in one go
            upto = int(np.searchsorted(np.cumsum(fa.block_free[blocks]), nr - got)) + 1
            take = blocks[:upto]
            pfns = (take[:, None] * HPAGE_PMD_NR + _BLOCK_OFFSETS).ravel()
            pfns = pfns[(pfns >= a) & (pfns < b)]
            idx = pfns[flags[pfns] & PG_buddy != 0][: nr - got]
            if len(idx):
                found.append(idx)
                got += len(idx)
            blocks = blocks[upto:]
        if got >= nr:
            break
    if not found:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(found).astype(np.int64)


def prep_new_pages(k, pfns: np.ndarray | slice, node: int) -> None:
    """Take pages out of the free lists: refcount 1, no flags. pfns: an array, or a slice
    (step 1) for an ascending run of them."""
    mem_map = k.mem_map
    mem_map.flags[pfns] = 0
    mem_map.refcount[pfns] = 1
    fa = k.free_area
    _block_free_add(fa, pfns, -1)
    if isinstance(pfns, slice):
        fa.nr_free[node] -= pfns.stop - pfns.start
        last = pfns.stop
    else:
        fa.nr_free[node] -= len(pfns)
        last = int(pfns[-1]) + 1
    lo, hi = _node_range(k, node)
    fa.cursor[node] = last if last < hi else lo


MAX_RECLAIM_RETRIES = 16


def alloc_pages_node(k, node: int, order: int = 0, thisnode: bool = False) -> int:
    """One page (order 0) or one THP (order 9, PG_head on the first pfn); -1 when none.

    The preferred node first, then the others in order (the zonelist fallback), unless
    thisnode (__GFP_THISNODE, as migration asks: it then just fails). When no order-0 page is
    free anywhere, the slow path reclaims machine-wide and tries again until reclaim makes no
    progress; what then fails is the caller's OOM (a fault's ends in the global OOM killer).
    A THP allocation just fails: the fault falls back to small pages.
    """
    nodes = (node,) if thisnode else (node, *(n for n in range(k.nr_nodes) if n != node))
    for n in nodes:
        pfn = _alloc_pages_node(k, n, order)
        if pfn >= 0:
            return pfn
    if order or thisnode:
        return -1

    for _ in range(MAX_RECLAIM_RETRIES):
        if not try_to_free_pages(k):
            break
        for n in nodes:
            pfn = _alloc_pages_node(k, n, 0)
            if pfn >= 0:
                return pfn
    return -1


def _alloc_pages_node(k, node: int, order: int) -> int:
    if order == 0:
        fa = k.free_area
        pfn = fa.cursor[node]
        mem_map = k.mem_map
        if not mem_map.flags[pfn] & PG_buddy:
            pfns = find_free_pages(k, node, 1)
            if not len(pfns):
                return -1
            pfn = int(pfns[0])
        # prep_new_pages for one page, without the array machinery
        mem_map.flags[pfn] = 0
        mem_map.refcount[pfn] = 1
        fa.block_free[pfn // HPAGE_PMD_NR] -= 1
        fa.nr_free[node] -= 1
        lo, hi = _node_range(k, node)
        fa.cursor[node] = pfn + 1 if pfn + 1 < hi else lo
        return pfn
    lo, hi = _node_range(k, node)
    fa = k.free_area
    blocks = np.flatnonzero(fa.block_free[lo // HPAGE_PMD_NR: hi // HPAGE_PMD_NR]
                            == HPAGE_PMD_NR)
    if not len(blocks):
        return -1
    head = (int(blocks[0]) + lo // HPAGE_PMD_NR) * HPAGE_PMD_NR
    mem_map = k.mem_map
    pfns = np.arange(head, head + HPAGE_PMD_NR)
    cursor = fa.cursor[node]
    prep_new_pages(k, pfns, node)
    fa.cursor[node] = cursor
    mem_map.flags[head] = PG_head
    mem_map.flags[head + 1: head + HPAGE_PMD_NR] = PG_tail
    mem_map.refcount[head + 1: head + HPAGE_PMD_NR] = 0
    return head


def free_pages_check(k, pfn: int) -> bool:
    """True if the page can be freed; else report a bad page (and leak it)."""
    mem_map = k.mem_map
    bad = []
    if mem_map.mapcount[pfn] != 0:
        bad.append("nonzero mapcount")
    if mem_map.refcount[pfn] != 0:
        bad.append("nonzero _count")
    if mem_map.mapping[pfn] != 0 and not mem_map.flags[pfn] & PG_anon:
        bad.append("non-NULL mapping")
    if mem_map.flags[pfn] & PAGE_FLAGS_CHECK_AT_FREE:
        bad.append("PAGE_FLAGS_CHECK_AT_FREE flag(s) set: "
                   + flag_names(int(mem_map.flags[pfn]) & PAGE_FLAGS_CHECK_AT_FREE,
                                PAGE_FLAG_NAMES))
    if k.pc.flags[pfn] & PCG_USED:
        bad.append("cgroup check failed")
    if bad:
        k.warn("bad_page", f"BUG: Bad page state: pfn {pfn:#x}: {', '.join(bad)}\n"
               + k.dump_page(pfn))
        return False
    return True


def free_pages(k, pfn: int) -> None:
    """free_hot_cold_page / free_compound_page: back to the allocator."""
    mem_map = k.mem_map
    if not free_pages_check(k, pfn):
        return
    nr = HPAGE_PMD_NR if mem_map.flags[pfn] & PG_head else 1
    sl = slice(pfn, pfn + nr)
    mem_map.flags[sl] = PG_buddy
    mem_map.mapping[sl] = 0
    mem_map.index[sl] = 0
    mem_map.private[sl] = 0
    mem_map.refcount[sl] = 0
    mem_map.mapcount[sl] = 0
    fa = k.free_area
    fa.block_free[pfn // HPAGE_PMD_NR] += nr
    fa.nr_free[k.page_to_nid(pfn)] += nr


def free_pages_bulk(k, pfns: np.ndarray | slice) -> None:
    """Free many order-0 pages whose state is already clean (the vectorized free path).
    pfns: an array, or a slice (step 1) for a run of them."""
    mem_map = k.mem_map
    mem_map.flags[pfns] = PG_buddy
    mem_map.mapping[pfns] = 0
    mem_map.index[pfns] = 0
    mem_map.private[pfns] = 0
    fa = k.free_area
    _block_free_add(fa, pfns, 1)
    ppn = fa.pages_per_node
    if isinstance(pfns, slice):
        a, b = pfns.start, pfns.stop
        for node in range(a // ppn, (b - 1) // ppn + 1) if a < b else ():
            fa.nr_free[node] += min(b, (node + 1) * ppn) - max(a, node * ppn)
    elif len(fa.nr_free) == 1:
        fa.nr_free[0] += len(pfns)
    else:
        counts = np.bincount(pfns // ppn, minlength=len(fa.nr_free))
        for node, cnt in enumerate(counts.tolist()):
            fa.nr_free[node] += cnt


def _block_free_add(fa, pfns: np.ndarray | slice, sign: int) -> None:
    """block_free of each 2 MiB block += sign * the pages of pfns in it: a count per block
    without sorting the pfns (a million pages free in one munmap)."""
    bf = fa.block_free
    if isinstance(pfns, slice):
        a, b = pfns.start, pfns.stop
        if a >= b:
            return
        first, last = a // HPAGE_PMD_NR, (b - 1) // HPAGE_PMD_NR
        counts = np.full(last - first + 1, HPAGE_PMD_NR, dtype=bf.dtype)
        counts[0] -= a - first * HPAGE_PMD_NR
        counts[-1] -= (last + 1) * HPAGE_PMD_NR - b
        bf[first:last + 1] += counts if sign > 0 else -counts
    elif 8 * len(pfns) >= len(bf):
        counts = np.bincount(pfns // HPAGE_PMD_NR, minlength=len(bf)).astype(bf.dtype)
        bf += counts if sign > 0 else -counts
    elif len(pfns):
        blocks, counts = np.unique(pfns // HPAGE_PMD_NR, return_counts=True)
        bf[blocks] += (sign * counts).astype(bf.dtype)


def is_free(k, pfn: int) -> bool:
    return bool(k.mem_map.flags[pfn] & PG_buddy)


# Imported once this module's functions exist: these modules and this one call each other.
from .vmscan import try_to_free_pages  # noqa: E402
