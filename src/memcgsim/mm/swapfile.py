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


#: THRESHOLD_ACTIVATE_SWAP_SLOTS_CACHE and THRESHOLD_DEACTIVATE_SWAP_SLOTS_CACHE, in
#: SWAP_SLOTS_CACHE_SIZEs a CPU
SLOTS_CACHE_ACTIVATE = 5
SLOTS_CACHE_DEACTIVATE = 1


class SwapInfo:
    """swap_info_struct: the swap_map and the swap cache index of one device, and the per-CPU
    swap slot caches' return side (mm/swap_slots.c, 4.11 on)."""

    def __init__(self, nr_slots: int, nr_cpus: int = 1):
        self.nr_slots = nr_slots
        #: swp_slots[cpu].slots_ret: freed slots waiting to go back to the device; each still
        #: reads SWAP_HAS_CACHE in the swap_map, counts in inuse_pages and keeps its swap charge
        self.slots_ret: list[list[int]] = [[] for _ in range(nr_cpus)]
        #: swap_slot_cache_active: switched on and off by the free swap left (check_cache_active)
        self.slots_cache_active = False
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

    check_cache_active(k)
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
    if not v and k.profile.swap_slots_cache:
        # the slot goes back through this CPU's slot cache, still reserved meanwhile
        if not k.profile.uncharge_swap_at_slot_free:
            mem_cgroup_uncharge_swap(k, entry)
        si.swap_map[entry] = SWAP_HAS_CACHE
        free_swap_slot(k, entry)
        return 0
    if not (v if k.profile.uncharge_swap_at_slot_free else count):
        mem_cgroup_uncharge_swap(k, entry)
    si.swap_map[entry] = v
    if not v:
        si.inuse_pages -= 1
    return v


def free_swap_batch(k, entry: int, nr: int) -> bool:
    """free_swap_and_cache_nr's batch (6.10 on): nr consecutive entries that each hold one
    pte's last reference and no swap cache page go back to the device at once, uncharged now,
    past the slot caches. False, with nothing done, for any other batch: the caller frees
    those entries one by one."""
    si = k.swap
    m = si.swap_map[entry:entry + nr]
    if len(m) != nr or not np.all(m == 1):
        return False
    m[:] = SWAP_HAS_CACHE
    swapcache_free_entries(k, range(entry, entry + nr))
    return True


def get_nr_swap_pages(k) -> int:
    """Free slots (nr_swap_pages): not the header, not those held by the slot caches."""
    si = k.swap
    return max(si.nr_slots - si.inuse_pages, 0)


def check_cache_active(k) -> bool:
    """On each allocation: switch the slot caches on once plenty of swap is free, and off
    (returning what they hold) once little is."""
    size = k.profile.swap_slots_cache
    si = k.swap
    if not size or not si.nr_slots:
        return False
    cpus = len(si.slots_ret)
    free = get_nr_swap_pages(k)
    if not si.slots_cache_active:
        if free > cpus * SLOTS_CACHE_ACTIVATE * size:
            si.slots_cache_active = True
    elif free < cpus * SLOTS_CACHE_DEACTIVATE * size:
        si.slots_cache_active = False
        drain_swap_slots_cache(k)
    return si.slots_cache_active


def swap_slots_cache_steady(k, n: int) -> bool:
    """Whether n allocations in a row find the slot caches as one check before the first
    leaves them (what a bulk swap-out assumes): no switch on or off after the first."""
    size = k.profile.swap_slots_cache
    si = k.swap
    if not size or not si.nr_slots:
        return True
    cpus = len(si.slots_ret)
    free = get_nr_swap_pages(k)
    active = si.slots_cache_active
    if not active and free > cpus * SLOTS_CACHE_ACTIVATE * size:
        active = True
    elif active and free < cpus * SLOTS_CACHE_DEACTIVATE * size:
        return False
    return not active or free - (n - 1) >= cpus * SLOTS_CACHE_DEACTIVATE * size


def free_swap_slot(k, entry: int) -> None:
    """A slot nothing refers to any more: into this CPU's return cache when the caches are on
    (a full cache first goes back to the device whole), else straight back."""
    si = k.swap
    if not si.slots_cache_active:
        swapcache_free_entries(k, [entry])
        return
    ret = si.slots_ret[k.current.cpu if k.current is not None else 0]
    if len(ret) >= k.profile.swap_slots_cache:
        swapcache_free_entries(k, ret)
        ret.clear()
    ret.append(entry)


def swapcache_free_entries(k, entries) -> None:
    """The slots go back to the device: free in the swap_map, and their swap charge (6.x
    uncharges at slot free) with them."""
    si = k.swap
    for entry in entries:
        if int(si.swap_map[entry]) != SWAP_HAS_CACHE:
            k.warn("swap", f"swap_entry_free: slot {entry} reads {int(si.swap_map[entry]):#x}")
        si.swap_map[entry] = 0
        if k.profile.uncharge_swap_at_slot_free:
            mem_cgroup_uncharge_swap(k, entry)
        si.inuse_pages -= 1


def drain_swap_slots_cache(k) -> None:
    """Every CPU's return cache back to the device (deactivate_swap_slots_cache)."""
    for ret in k.swap.slots_ret:
        swapcache_free_entries(k, ret)
        ret.clear()


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
