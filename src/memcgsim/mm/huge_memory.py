"""mm/huge_memory.c: anonymous THP faults (512 pages charged at once), zap and split.

A PMD mapping is kept as 512 ptes carrying PTE_HUGE; mapcount and refcount live on the head.
A THP charge uses GFP_TRANSHUGE (__GFP_NORETRY): it never OOMs, the fault falls back to small
pages instead; only 6.x's madvised VMAs reclaim and retry, and then a 512-page charge is a costly
order, which does not OOM either (get_order of the bytes, not of the pages: bug B8).
"""

from __future__ import annotations

import numpy as np

from .gfp import __GFP_NORETRY, GFP_TRANSHUGE
from .locking import Lock, Unlock, anon_vma_lock, lru_lock, ptl
from .mm_struct import (
    MM_ANONPAGES,
    PTE_DIRTY,
    PTE_HUGE,
    PTE_PRESENT,
    PTE_VAL_MASK,
    PTE_WRITE,
    VM_HUGEPAGE,
)
from .mm_types import (
    HPAGE_PMD_NR,
    PG_active,
    PG_anon,
    PG_dirty,
    PG_head,
    PG_lru,
    PG_mlocked,
    PG_referenced,
    PG_swapbacked,
    PG_unevictable,
    page_lru,
)

VM_FAULT_OOM = 0x0001
VM_FAULT_FALLBACK = 0x0800


def do_huge_pmd_anonymous_page(k, vma, addr: int):
    """Path: fault a whole 2 MiB aligned range of an anonymous VMA with one THP."""

    haddr = addr & ~(HPAGE_PMD_NR - 1)
    off = haddr - vma.start
    if off < 0 or off + HPAGE_PMD_NR > vma.npages or np.any(vma.pte[off:off + HPAGE_PMD_NR]):
        return VM_FAULT_FALLBACK
    anon_vma_prepare(k, vma)
    head = alloc_pages_node(k, fault_node(k, vma), 9)
    if head < 0:
        return VM_FAULT_FALLBACK
    mm = vma.mm
    gfp = GFP_TRANSHUGE
    if vma.flags & VM_HUGEPAGE and k.profile.thp_madvise_retries:
        gfp &= ~__GFP_NORETRY               # vma_thp_gfp_mask: madvised, defrag=madvise
    # 3.17 charges in two steps, committed or cancelled under the pte lock; 5.8 on in one
    two_step = not k.profile.charge_at_instantiation
    if two_step:
        ret, memcg = mem_cgroup_try_charge(k, head, mm, gfp)
    else:
        ret = mem_cgroup_charge(k, head, mm, gfp)
    if ret:
        put_page(k, head)
        return VM_FAULT_FALLBACK
    yield Lock(ptl(mm.id))
    if np.any(vma.pte[off:off + HPAGE_PMD_NR]):
        yield Unlock(ptl(mm.id))
        if two_step:
            mem_cgroup_cancel_charge(k, head, memcg)
        put_page(k, head)
        return 0
    page_add_new_anon_rmap(k, head, vma, haddr)
    if two_step:
        mem_cgroup_commit_charge(k, head, memcg, False)
    lru_cache_add_active_or_unevictable(k, head, vma)
    vma.pte[off:off + HPAGE_PMD_NR] = (PTE_PRESENT | PTE_HUGE | PTE_WRITE | PTE_DIRTY
                                       | np.arange(head, head + HPAGE_PMD_NR))
    mm.rss_stat[MM_ANONPAGES] += HPAGE_PMD_NR
    yield Unlock(ptl(mm.id))
    return 0


def zap_huge_pmd(k, vma, i: int, gather: list[int]) -> int:
    """Under the ptl: clear the PMD mapping that covers pte i; returns the ptes left in it."""
    pfn = int(vma.pte[i]) & PTE_VAL_MASK
    j = pfn % HPAGE_PMD_NR                 # heads are 2 MiB aligned
    head, start = pfn - j, i - j
    vma.pte[start:start + HPAGE_PMD_NR] = 0
    vma.mm.rss_stat[MM_ANONPAGES] -= HPAGE_PMD_NR
    page_remove_rmap(k, head)
    gather.append(head)
    return HPAGE_PMD_NR - j


def split_huge_page(k, head: int):
    """Path: split an anonymous THP (the caller holds a reference) under its anon_vma's lock,
    which orders two splits of one page: the second finds it no longer compound and does
    nothing. Returns 1 if this call split it."""
    mem_map = k.mem_map
    k.bug_on(not mem_map.flags[head] & PG_anon, head, "!PageAnon(page)")
    lock = anon_vma_lock(int(mem_map.mapping[head]))
    yield Lock(lock)
    split = bool(mem_map.flags[head] & PG_head)
    if split:
        yield from __split_huge_page(k, head)
    yield Unlock(lock)
    return int(split)


def __split_huge_page(k, head: int):
    """Path: split a THP into 512 small pages (__split_huge_page_refcount), each keeping the
    charge bits and memcg of the head; rss_huge drops by 512."""

    mem_map = k.mem_map
    k.bug_on(not mem_map.flags[head] & PG_head, head, "!PageTransHuge(page)")
    mappings = list(rmap_walk(k, head))
    for vma, _ in mappings:
        yield Lock(ptl(vma.mm.id))
    node = k.page_to_nid(head)
    yield Lock(lru_lock(node))
    mem_cgroup_split_huge_fixup(k, head)
    flags = int(mem_map.flags[head])
    mapcount = int(mem_map.mapcount[head])
    tails = slice(head + 1, head + HPAGE_PMD_NR)
    keep = (PG_anon | PG_swapbacked | PG_active | PG_unevictable | PG_mlocked | PG_referenced
            | PG_dirty | PG_lru)
    mem_map.flags[tails] = flags & keep
    mem_map.flags[head] = flags & ~PG_head
    mem_map.mapping[tails] = mem_map.mapping[head]
    mem_map.index[tails] = int(mem_map.index[head]) + np.arange(1, HPAGE_PMD_NR, dtype=np.uint32)
    mem_map.mapcount[tails] = mapcount
    # each tail gets a reference of its own besides its mappings, dropped once the split is
    # done: a tail nobody maps any more is freed then (the lru_lock is needed to free it)
    mem_map.refcount[tails] = mapcount + 1
    if flags & PG_lru:
        # lru_add_page_tail: the tails join the head's list right beside it; the list's
        # lru_size is unchanged (512 for the head before, 1 for each of 512 pages after)
        memcg_id, seq = int(mem_map.lru_memcg[head]), int(mem_map.lru_seq[head])
        mem_map.lru_memcg[tails] = memcg_id
        mem_map.lru_seq[tails] = seq
        k.lru_added_bulk(memcg_id, page_lru(flags), np.arange(head + 1, head + HPAGE_PMD_NR),
                         seq)
    yield Unlock(lru_lock(node))
    for vma, addr in mappings:
        off = addr - vma.start
        vma.pte[off:off + HPAGE_PMD_NR] &= ~PTE_HUGE
    for vma, _ in reversed(mappings):
        yield Unlock(ptl(vma.mm.id))
    for tail in range(head + 1, head + HPAGE_PMD_NR):
        put_page(k, tail)


def split_huge_page_pfn(k, head: int):
    """Path: split a THP found by its pfn, not through a mapping that pins it (as
    memory_failure does): get_page_unless_zero, split_huge_page, put_page. 0 when the page was
    freed first, else what split_huge_page returns."""

    if not get_page_unless_zero(k, head):
        return 0
    split = yield from split_huge_page(k, head)
    put_page(k, head)
    return split


# Imported once this module's functions exist: these modules and this one call each other.
from .memcontrol import (  # noqa: E402
    mem_cgroup_cancel_charge,
    mem_cgroup_charge,
    mem_cgroup_commit_charge,
    mem_cgroup_split_huge_fixup,
    mem_cgroup_try_charge,
)
from .memory import anon_vma_prepare, fault_node  # noqa: E402
from .page_alloc import alloc_pages_node  # noqa: E402
from .rmap import page_add_new_anon_rmap, page_remove_rmap, rmap_walk  # noqa: E402
from .swap import get_page_unless_zero, lru_cache_add_active_or_unevictable, put_page  # noqa: E402
