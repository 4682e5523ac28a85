"""mm/swap_state.c: the swap cache, add_to_swap and swap read-ahead."""

from __future__ import annotations

from ..errors import Errno
from .locking import Lock, Spin, Unlock, page_lock
from .mm_types import PG_active, PG_head, PG_locked, PG_swapbacked, PG_swapcache, PG_writeback


def current_mm(k):
    return k.current.mm if k.current is not None else None


def __add_to_swap_cache(k, pfn: int, entry: int) -> None:
    """Insert into the swap cache, which holds one reference."""

    mem_map = k.mem_map
    k.bug_on(not mem_map.flags[pfn] & PG_locked, pfn, "!PageLocked(page)")
    k.bug_on(mem_map.flags[pfn] & PG_swapcache, pfn, "PageSwapCache(page)")
    k.bug_on(not mem_map.flags[pfn] & PG_swapbacked, pfn, "!PageSwapBacked(page)")
    page_cache_get(k, pfn)
    mem_map.flags[pfn] |= PG_swapcache
    mem_map.private[pfn] = entry
    k.swap.cache[entry] = pfn


add_to_swap_cache = __add_to_swap_cache


def __delete_from_swap_cache(k, pfn: int) -> None:
    """Remove from the swap cache index; the caller drops the cache's reference and slot."""
    mem_map = k.mem_map
    k.bug_on(not mem_map.flags[pfn] & PG_swapcache, pfn, "!PageSwapCache(page)")
    entry = int(mem_map.private[pfn])
    k.swap.cache[entry] = -1
    mem_map.private[pfn] = 0
    mem_map.flags[pfn] &= ~PG_swapcache


def delete_from_swap_cache(k, pfn: int) -> None:
    """Remove a locked page from the swap cache, free its slot reference and the cache's ref."""

    entry = int(k.mem_map.private[pfn])
    __delete_from_swap_cache(k, pfn)
    swapcache_free(k, entry)
    page_cache_release(k, pfn)


def add_to_swap(k, pfn: int) -> bool:
    """Give a locked anonymous page a swap slot and put it in the swap cache (reclaim)."""

    entry = get_swap_page(k, pfn)
    if not entry:
        return False
    if k.mem_map.flags[pfn] & PG_head:      # reclaim splits THPs before it gets here
        swapcache_free(k, entry)
        return False
    add_to_swap_cache(k, pfn, entry)
    SetPageDirty(k, pfn)
    return True


def try_to_free_swap(k, pfn: int) -> bool:
    """Drop a locked, unmapped-from-swap page's slot when no pte refers to the slot any more."""

    mem_map = k.mem_map
    if not mem_map.flags[pfn] & PG_swapcache or mem_map.flags[pfn] & PG_writeback:
        return False
    if page_swapcount(k, pfn):
        return False
    delete_from_swap_cache(k, pfn)
    SetPageDirty(k, pfn)
    return True


def lookup_swap_cache(k, entry: int) -> int:
    """The swap cache page of a slot with a reference taken, or -1."""

    pfn = int(k.swap.cache[entry])
    if pfn >= 0:
        page_cache_get(k, pfn)
    return pfn


def read_swap_cache_async(k, entry: int, node: int):
    """Path: find or read the page of a slot into the swap cache; return it referenced, or -1.

    A slot whose SWAP_HAS_CACHE another path holds is waited for, not failed: the other path
    is reading it in (or dropping it from the swap cache).

    A page read here is uncharged in 3.17: it sits in swap cache, on the inactive anon list,
    with no mapping, until a fault commits it or it is reclaimed again. From 5.8 it is charged
    before it enters the swap cache (to the slot's recorded memcg), and fails if that fails.
    """

    while True:
        pfn = lookup_swap_cache(k, entry)
        if pfn >= 0:
            return pfn
        if k.profile.swap_slots_cache and not _swap_count(int(k.swap.swap_map[entry])):
            # a freed slot (waiting in a slot cache, or already back): readahead skips it
            return -1
        err = swapcache_prepare(k, entry)
        if err != -Errno.EEXIST:
            break
        # another path owns SWAP_HAS_CACHE and has not put its page in the swap cache yet
        # (or is taking it out): retry until it has
        yield Spin(f"swapcache_prepare of slot {entry}: -EEXIST, retry")
    if err:
        return -1
    new = alloc_pages_node(k, node, 0)
    if new < 0:
        swapcache_free(k, entry)
        return -1
    yield Lock(page_lock(new))
    mem_map = k.mem_map
    mem_map.flags[new] |= PG_swapbacked
    if mem_cgroup_swapin_charge_page(k, new, current_mm(k), entry):
        yield Unlock(page_lock(new))
        put_page(k, new)
        swapcache_free(k, entry)
        return -1
    # swapcache_prepare already holds SWAP_HAS_CACHE: insert without taking it again
    page_cache_get(k, new)
    mem_map.flags[new] |= PG_swapcache
    mem_map.private[new] = entry
    k.swap.cache[entry] = new
    mem_cgroup_swapin_uncharge_swap(k, entry)
    mem_map.flags[new] &= ~PG_active
    lru_cache_add_anon(k, new)
    # swap_readpage: the device is synchronous, the read completes and unlocks the page
    yield Unlock(page_lock(new))
    return new


def swapin_readahead(k, entry: int, node: int):
    """Path: read the aligned cluster of slots around entry, then return the entry's page."""

    mask = (1 << k.profile.page_cluster) - 1
    start, end = entry & ~mask, entry | mask
    for offset in range(max(start, 1), min(end + 1, k.swap.nr_slots)):
        if offset == entry:
            continue
        if not k.swap.swap_map[offset]:
            continue
        pfn = yield from read_swap_cache_async(k, offset, node)
        if pfn >= 0:
            page_cache_release(k, pfn)
    return (yield from read_swap_cache_async(k, entry, node))


# Imported once this module's functions exist: these modules and this one call each other.
from .memcontrol import mem_cgroup_swapin_charge_page, mem_cgroup_swapin_uncharge_swap  # noqa: E402
from .page_alloc import alloc_pages_node  # noqa: E402
from .page_writeback import SetPageDirty  # noqa: E402
from .swap import lru_cache_add_anon, page_cache_get, page_cache_release, put_page  # noqa: E402
from .swapfile import (  # noqa: E402
    _swap_count,
    get_swap_page,
    page_swapcount,
    swapcache_free,
    swapcache_prepare,
)
