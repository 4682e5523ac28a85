"""mm/swap.c: page references, the final put, and adding pages to the LRU lists.

The per-CPU lru_add pagevecs are drained at once: a page handed to lru_cache_add is on its LRU
list when the call returns. (In the kernel it may wait in a pagevec of up to 14 pages; nothing in
the charge lifecycle depends on that delay, and isolation would simply drain it.)
"""

from __future__ import annotations

from collections.abc import Iterable

from .mm_struct import VM_LOCKED
from .mm_types import (
    PG_active,
    PG_huge,
    PG_lru,
    PG_mlocked,
    PG_tail,
    PG_unevictable,
    page_lru,
)


def get_page(k, pfn: int) -> None:
    k.bug_on(k.mem_map.refcount[pfn] <= 0, pfn, "page_count(page) <= 0 in get_page")
    k.mem_map.refcount[pfn] += 1


page_cache_get = get_page


def get_page_unless_zero(k, pfn: int) -> bool:
    if k.mem_map.refcount[pfn] <= 0:
        return False
    k.mem_map.refcount[pfn] += 1
    return True


def put_page_testzero(k, pfn: int) -> bool:
    mem_map = k.mem_map
    k.bug_on(mem_map.refcount[pfn] <= 0, pfn, "atomic_read(&page->_count) == 0")
    mem_map.refcount[pfn] -= 1
    return mem_map.refcount[pfn] == 0


def del_page_from_lru(k, pfn: int, page_off_lru: bool) -> None:
    """Under lru_lock: take a page off its LRU list. page_off_lru (a page leaving for good)
    also clears PG_active and PG_unevictable; isolation keeps them for the putback."""
    mem_map = k.mem_map
    flags = int(mem_map.flags[pfn])
    lruvec = k.memcg_by_id[int(mem_map.lru_memcg[pfn])].lruvecs[k.page_to_nid(pfn)]
    clear = PG_lru | (PG_active | PG_unevictable if page_off_lru else 0)
    mem_map.flags[pfn] = flags & ~clear
    del_page_from_lru_list(k, pfn, lruvec, page_lru(flags))


def __page_cache_release(k, pfn: int) -> None:
    """The final put: off the LRU, then uncharge; the page is now exclusively ours."""
    if k.mem_map.flags[pfn] & PG_lru:
        del_page_from_lru(k, pfn, page_off_lru=True)
    mem_cgroup_uncharge(k, pfn)


def put_page(k, pfn: int) -> None:
    """Drop a reference; the last one releases, uncharges and frees the page."""
    k.bug_on(k.mem_map.flags[pfn] & PG_tail, pfn, "PageTail(page) in put_page")
    if put_page_testzero(k, pfn):
        if k.mem_map.flags[pfn] & PG_huge:
            free_huge_page(k, pfn)        # a huge page's own destructor
            return
        __page_cache_release(k, pfn)
        free_pages(k, pfn)


page_cache_release = put_page


def release_pages(k, pfns: Iterable[int]) -> None:
    """Drop one reference on each page; those that reach zero are taken off the LRU, uncharged
    as one list, then freed (the munmap/exit and reclaim batch)."""
    mem_map = k.mem_map
    to_free = []
    for pfn in pfns:
        if not put_page_testzero(k, pfn):
            continue
        if mem_map.flags[pfn] & PG_lru:
            del_page_from_lru(k, pfn, page_off_lru=True)
        to_free.append(pfn)
    mem_cgroup_uncharge_list(k, to_free)
    for pfn in to_free:
        free_pages(k, pfn)


def __lru_cache_add(k, pfn: int) -> None:
    mem_map = k.mem_map
    k.bug_on(mem_map.flags[pfn] & PG_lru, pfn, "PageLRU(page) in lru_cache_add")
    lruvec = mem_cgroup_page_lruvec(k, pfn, k.page_to_nid(pfn))
    mem_map.flags[pfn] |= PG_lru
    add_page_to_lru_list(k, pfn, lruvec, page_lru(int(mem_map.flags[pfn])))


def lru_cache_add(k, pfn: int) -> None:
    __lru_cache_add(k, pfn)


def lru_cache_add_anon(k, pfn: int) -> None:
    k.mem_map.flags[pfn] &= ~PG_active
    __lru_cache_add(k, pfn)


lru_cache_add_file = lru_cache_add_anon


def lru_cache_add_active_or_unevictable(k, pfn: int, vma) -> None:
    """New anonymous pages start on the active list (3.17; the inactive one from 5.9), or the
    unevictable one under VM_LOCKED."""

    mem_map = k.mem_map
    if not vma.flags & VM_LOCKED:
        if k.profile.new_anon_active:
            mem_map.flags[pfn] |= PG_active
        else:
            mem_map.flags[pfn] &= ~PG_active
    else:
        mem_map.flags[pfn] = (mem_map.flags[pfn] | PG_mlocked | PG_unevictable) & ~PG_active
    __lru_cache_add(k, pfn)


# Imported once this module's functions exist: these modules and this one call each other.
from .hugetlb import free_huge_page  # noqa: E402
from .memcontrol import (  # noqa: E402
    add_page_to_lru_list,
    del_page_from_lru_list,
    mem_cgroup_page_lruvec,
    mem_cgroup_uncharge,
    mem_cgroup_uncharge_list,
)
from .page_alloc import free_pages  # noqa: E402
