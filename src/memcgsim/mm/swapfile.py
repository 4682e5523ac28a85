"""mm/swapfile.c: one swap device, its swap_map of reference counts and slot allocation.

A swap entry is a slot number; slot 0 holds the swap header and is never handed out, so 0 means
"no entry" (as page_private() of a page that is not in swap cache). The device is synchronous, like
zram: a swap write completes before swap_writepage returns.
"""

from __future__ import annotations

import numpy as np

from ..errors import Errno
from .locking import TryLock, Unlock, page_lock
from .mm_types import PG_swapcache, PG_writeback

SWAP_HAS_CACHE = 0x40   # the slot is in the swap cache
SWAP_MAP_MAX = 0x3e     # largest count kept in the map itself (no continuation in the model)
SWAP_MAP_SHMEM = 0xbf   # owned by a shmem/tmpfs inode


class SwapInfo:
    """swap_info_struct: the swap_map and the swap cache index of one device."""

    def __init__(self, nr_slots: int):
        self.nr_slots = nr_slots
        self.swap_map = np.zeros(max(nr_slots, 1), dtype=np.uint8)
        if nr_slots:
            self.swap_map[0] = SWAP_MAP_MAX + 1   # the header slot: never free
        #: swapper_space: the swap cache, slot -> pfn (-1 none)
        self.cache = np.full(max(nr_slots, 1), -1, dtype=np.int32)
        self.inuse_pages = 1 if nr_slots else 0
        self.cluster_next = 1

    def usable(self) -> int:
        return max(self.nr_slots - 1, 0)


def _swap_count(v: int) -> int:
    return v & ~SWAP_HAS_CACHE


def get_swap_page(k, page: int) -> int:
    """Allocate a slot for page's swap cache entry (SWAP_HAS_CACHE set); 0 when swap is full
    or (v2) the page's memcg may not swap more."""

    entry = _scan_swap_map(k)
    if mem_cgroup_try_charge_swap(k, page, entry):
        swapcache_free(k, entry)
        return 0
    return entry


def _first_free(swap_map, a: int, b: int) -> int:
    """The first free slot in [a, b), looking in growing windows; -1 if none."""
    if a < b and not swap_map[a]:
        return a                # the usual case: the slot after the last one handed out
    step = 256
    while a < b:
        e = min(b, a + step)
        free = np.flatnonzero(swap_map[a:e] == 0)
        if len(free):
            return a + int(free[0])
        a = e
        step *= 4
    return -1


def _scan_swap_map(k) -> int:
    si = k.swap
    if si.inuse_pages >= si.nr_slots:
        return 0
    n = si.nr_slots
    start = si.cluster_next
    slot = _first_free(si.swap_map, start, n)
    if slot < 0:
        slot = _first_free(si.swap_map, 1, start)
    si.swap_map[slot] = SWAP_HAS_CACHE
    si.inuse_pages += 1
    si.cluster_next = slot + 1 if slot + 1 < n else 1
    return slot


def swap_entry_free(k, entry: int, usage: int) -> int:
    """Drop one map reference (usage 1) or the swap cache's (SWAP_HAS_CACHE); return what is
    left. The swap charge of the slot goes when no pte or shmem entry refers to it any more,
    even while the swap cache still holds the slot (3.17), or when the slot is free (6.x)."""

    si = k.swap
    v = int(si.swap_map[entry])
    has_cache = v & SWAP_HAS_CACHE
    count = _swap_count(v)
    if usage == SWAP_HAS_CACHE:
        if not has_cache:
            k.warn("swap", f"swapcache_free of slot {entry} which is not in swap cache")
        has_cache = 0
    elif count == SWAP_MAP_SHMEM:
        count = 0
    elif count == 0:
        k.warn("swap", f"swap_free of slot {entry} with no map count")
    else:
        count -= 1
    v = count | has_cache
    if not (v if k.profile.uncharge_swap_at_slot_free else count):
        mem_cgroup_uncharge_swap(k, entry)
    si.swap_map[entry] = v
    if not v:
        si.inuse_pages -= 1
    return v


def swap_free(k, entry: int) -> None:
    swap_entry_free(k, entry, 1)


def swapcache_free(k, entry: int) -> None:
    swap_entry_free(k, entry, SWAP_HAS_CACHE)


def swap_duplicate(k, entry: int) -> None:
    """One more pte (or shmem entry) refers to the slot."""
    si = k.swap
    v = int(si.swap_map[entry])
    count = _swap_count(v)
    if count >= SWAP_MAP_MAX:
        k.warn("swap", f"swap count overflow on slot {entry}")
        return
    si.swap_map[entry] = v + 1


def swap_shmem_alloc(k, entry: int) -> None:
    si = k.swap
    si.swap_map[entry] = (int(si.swap_map[entry]) & SWAP_HAS_CACHE) | SWAP_MAP_SHMEM


def swapcache_prepare(k, entry: int) -> int:
    """Claim the slot for a swap cache page being read: 0, -EEXIST (cached) or -ENOENT (free)."""
    si = k.swap
    v = int(si.swap_map[entry])
    if v & SWAP_HAS_CACHE:
        return -Errno.EEXIST
    if not _swap_count(v):
        return -Errno.ENOENT
    si.swap_map[entry] = v | SWAP_HAS_CACHE
    return 0


def page_swapcount(k, pfn: int) -> int:
    entry = int(k.mem_map.private[pfn])
    return _swap_count(int(k.swap.swap_map[entry]))


def vm_swap_full(k) -> bool:
    """More than half of swap in use."""
    si = k.swap
    return si.nr_slots > 0 and si.inuse_pages * 2 > si.nr_slots


def free_swap_and_cache(k, entry: int):
    """Path: a pte with this swap entry is zapped. Free the slot, and its swap cache page when
    nothing maps it any more."""

    pfn = -1
    if swap_entry_free(k, entry, 1) == SWAP_HAS_CACHE:
        pfn = int(k.swap.cache[entry])
        if pfn >= 0:
            page_cache_get(k, pfn)
            if not (yield TryLock(page_lock(pfn))):
                page_cache_release(k, pfn)
                pfn = -1
    if pfn < 0:
        return
    mem_map = k.mem_map
    flags = int(mem_map.flags[pfn])
    if (flags & PG_swapcache and not flags & PG_writeback
            and (mem_map.mapcount[pfn] == 0 or vm_swap_full(k))):
        delete_from_swap_cache(k, pfn)
        SetPageDirty(k, pfn)
    yield Unlock(page_lock(pfn))
    page_cache_release(k, pfn)


# Imported once this module's functions exist: these modules and this one call each other.
from .memcontrol import mem_cgroup_try_charge_swap, mem_cgroup_uncharge_swap  # noqa: E402
from .page_writeback import SetPageDirty  # noqa: E402
from .swap import page_cache_get, page_cache_release  # noqa: E402
from .swap_state import delete_from_swap_cache  # noqa: E402
