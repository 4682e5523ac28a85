"""mm/vmscan.c: LRU isolation and putback, shrink_page_list, and memcg limit reclaim.

shrink_page_list is the reference path for reclaiming a page: swap-backed pages get a swap slot
(add_to_swap), are unmapped, written (the swap device is synchronous), and __remove_mapping
freezes the references, hands the memsw charge to the slot (mem_cgroup_swapout) and deletes the
page from swap cache; the freed pages are uncharged as one list before they go back.

Scanning is deliberately simple in this model: oldest first through inactive file, inactive anon,
active file, active anon; no reference second chance, no anon/file balancing by swappiness.
"""

from __future__ import annotations

import numpy as np

from .locking import Lock, TryLock, Unlock, page_lock, run_path, tree_lock
from .memcontrol import mem_cgroup_swapout, mem_cgroup_uncharge_list
from .mm_types import (
    LRU_ACTIVE_ANON,
    LRU_ACTIVE_FILE,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    PG_active,
    PG_anon,
    PG_dirty,
    PG_head,
    PG_lru,
    PG_mlocked,
    PG_swapbacked,
    PG_swapcache,
    PG_unevictable,
    PG_writeback,
    page_lru_array,
)
from .page_alloc import free_pages
from .rmap import SWAP_FAIL, SWAP_SUCCESS, page_mapped, try_to_unmap
from .swap import del_page_from_lru, get_page, lru_cache_add, put_page

SWAP_CLUSTER_MAX = 32


def isolate_lru_page(k, pfn: int) -> int:
    """Take a page off its LRU list with a reference held: 0, or -EBUSY if it is not on one."""
    mm = k.mem_map
    k.bug_on(mm.refcount[pfn] <= 0, pfn, "!page_count(page)")
    if not mm.flags[pfn] & PG_lru:
        return -16
    get_page(k, pfn)
    # isolation keeps PG_active / PG_unevictable: putback uses them to pick the list
    del_page_from_lru(k, pfn, page_off_lru=False)
    return 0


def page_evictable(k, pfn: int) -> bool:
    return not k.mem_map.flags[pfn] & PG_mlocked


def putback_lru_page(k, pfn: int) -> None:
    """Return an isolated page to the list its flags and memcg say, and drop the isolation ref."""
    mm = k.mem_map
    mm.flags[pfn] &= ~PG_unevictable
    if not page_evictable(k, pfn):
        mm.flags[pfn] = (mm.flags[pfn] | PG_unevictable) & ~PG_active
    lru_cache_add(k, pfn)
    put_page(k, pfn)


def page_mapping(k, pfn: int):
    """The address_space of a page: its file's, or the swap cache's for a swap cache page."""
    mm = k.mem_map
    flags = int(mm.flags[pfn])
    if flags & PG_swapcache:
        return k.swapper_space
    if flags & PG_anon or not mm.mapping[pfn]:
        return None
    return k.mappings[int(mm.mapping[pfn])]


def __remove_mapping(k, mapping, pfn: int):
    """Path: freeze the page's references (ours and the cache's) and take it out of its cache.

    For a swap cache page the memory+swap charge moves to the swap slot here, while nothing
    can reach the page (refcount 0, off the LRU, under the tree lock).
    """
    from .filemap import __delete_from_page_cache
    from .swap_state import __delete_from_swap_cache
    from .swapfile import swapcache_free

    mm = k.mem_map
    yield Lock(tree_lock(mapping.id))
    if mm.refcount[pfn] != 2:                     # page_freeze_refs(page, 2)
        yield Unlock(tree_lock(mapping.id))
        return False
    mm.refcount[pfn] = 0
    if mm.flags[pfn] & PG_dirty:
        mm.refcount[pfn] = 2                      # page_unfreeze_refs
        yield Unlock(tree_lock(mapping.id))
        return False
    if mm.flags[pfn] & PG_swapcache:
        entry = int(mm.private[pfn])
        mem_cgroup_swapout(k, pfn, entry)
        __delete_from_swap_cache(k, pfn)
        yield Unlock(tree_lock(mapping.id))
        swapcache_free(k, entry)
    else:
        __delete_from_page_cache(k, pfn)
        yield Unlock(tree_lock(mapping.id))
    return True


def pageout(k, pfn: int):
    """Path: write a dirty, locked page; returns True when it is clean and relocked again.

    Swap-backed pages are written to swap: shmem pages first move from their file into the
    swap cache (shmem_writepage). The swap device completes the write at once.
    """
    from .page_writeback import clear_page_dirty_for_io, end_page_writeback, test_set_page_writeback
    from .shmem import shmem_writepage

    mm = k.mem_map
    if not mm.flags[pfn] & PG_swapcache:
        if not (yield from shmem_writepage(k, pfn)):
            return False
    clear_page_dirty_for_io(k, pfn)
    test_set_page_writeback(k, pfn)
    yield Unlock(page_lock(pfn))                  # swap_writepage unlocks once I/O is queued
    end_page_writeback(k, pfn)                    # ... and the synchronous device ends it
    if not (yield TryLock(page_lock(pfn))):
        return None
    return not mm.flags[pfn] & (PG_dirty | PG_writeback)


def shrink_page_list(k, pfns: list[int], may_swap: bool = True):
    """Path: try to reclaim isolated pages; kept pages go back to the LRU. Returns the number
    of pages freed."""
    mm = k.mem_map
    free_list: list[int] = []
    keep: list[int] = []
    for pfn in pfns:
        if not (yield TryLock(page_lock(pfn))):
            keep.append(pfn)
            continue
        flags = int(mm.flags[pfn])
        freed, locked = False, True
        if page_evictable(k, pfn) and not flags & (PG_writeback | PG_head):
            freed, locked = yield from _reclaim_locked_page(k, pfn, may_swap)
        if locked:
            # for a freed page this is __clear_page_locked: nobody else can find it
            yield Unlock(page_lock(pfn))
        (free_list if freed else keep).append(pfn)
    mem_cgroup_uncharge_list(k, free_list)
    for pfn in free_list:
        free_pages(k, pfn)
    for pfn in keep:
        putback_lru_page(k, pfn)
    return len(free_list)


def _reclaim_locked_page(k, pfn: int, may_swap: bool):
    """Path: shrink_page_list's work on one locked page: (freed, still locked)."""
    from .swap_state import add_to_swap

    mm = k.mem_map
    flags = int(mm.flags[pfn])
    if flags & PG_anon and not flags & PG_swapcache:
        if not may_swap or not add_to_swap(k, pfn):
            mm.flags[pfn] |= PG_active            # activate_locked
            return False, True
    if page_mapped(k, pfn):
        ret = try_to_unmap(k, pfn)
        if ret == SWAP_FAIL:
            mm.flags[pfn] |= PG_active
        if ret != SWAP_SUCCESS:
            return False, True
    if mm.flags[pfn] & PG_dirty:
        if not mm.flags[pfn] & PG_swapbacked or not may_swap:
            return False, True   # direct reclaim leaves dirty file pages to the flusher
        ok = yield from pageout(k, pfn)
        if ok is None:
            return False, False  # written, but somebody else has the page locked now
        if not ok:
            return False, True
    mapping = page_mapping(k, pfn)
    if mapping is None:
        return False, True
    return (yield from __remove_mapping(k, mapping, pfn)), True


RECLAIM_ORDER = (LRU_INACTIVE_FILE, LRU_INACTIVE_ANON, LRU_ACTIVE_FILE, LRU_ACTIVE_ANON)


def reclaim_candidates(k, memcg, may_swap: bool) -> np.ndarray:
    """LRU pages of memcg's hierarchy, in the order limit reclaim tries them."""
    mm = k.mem_map
    ids = np.array([m.id for m in memcg.stat_tree()], dtype=np.uint16)
    on = np.flatnonzero((mm.flags & PG_lru) != 0)
    on = on[np.isin(mm.lru_memcg[on], ids)]
    lru = page_lru_array(mm.flags[on])
    lists = RECLAIM_ORDER if may_swap else (LRU_INACTIVE_FILE, LRU_ACTIVE_FILE)
    rank = np.full(5, 99)
    for r, lst in enumerate(lists):
        rank[lst] = r
    keep = rank[lru] < 99
    on, lru = on[keep], lru[keep]
    order = np.lexsort((mm.lru_seq[on], rank[lru]))
    return on[order]


def shrink_mem_cgroup(k, memcg, nr_to_reclaim: int, may_swap: bool):
    """Path: isolate and reclaim pages of memcg's hierarchy, SWAP_CLUSTER_MAX at a time."""
    reclaimed = 0
    tried: set[int] = set()
    while reclaimed < nr_to_reclaim:
        cand = [int(p) for p in reclaim_candidates(k, memcg, may_swap) if int(p) not in tried]
        if not cand:
            break
        batch = []
        for pfn in cand[:SWAP_CLUSTER_MAX]:
            tried.add(pfn)
            if k.mem_map.refcount[pfn] > 0 and isolate_lru_page(k, pfn) == 0:
                batch.append(pfn)
        if batch:
            reclaimed += yield from shrink_page_list(k, batch, may_swap)
    return reclaimed


def try_to_free_mem_cgroup_pages(k, memcg, gfp_mask: int, noswap: bool) -> int:
    """Limit reclaim from inside try_charge: a nested reclaim run on behalf of the charger."""
    may_swap = not noswap and k.swap.nr_slots > 0
    return run_path(k, shrink_mem_cgroup(k, memcg, SWAP_CLUSTER_MAX, may_swap),
                    task=k.current, owner=-1)


def try_to_free_pages(k) -> int:
    """Direct reclaim when the machine is out of free pages: every memcg's pages are
    candidates (the root's hierarchy is the whole tree). Returns the pages freed."""
    may_swap = k.swap.nr_slots > 0
    return run_path(k, shrink_mem_cgroup(k, k.root_mem_cgroup, SWAP_CLUSTER_MAX, may_swap),
                    task=k.current, owner=-1)


def reclaim_page(k, pfn: int):
    """Path: reclaim one given page (isolate, then shrink_page_list), as kswapd would."""
    if isolate_lru_page(k, pfn):
        return 0
    return (yield from shrink_page_list(k, [pfn], may_swap=k.swap.nr_slots > 0))

