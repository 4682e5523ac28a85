"""mm/hugetlb.c and fs/hugetlbfs: huge pages in a hugetlbfs file's page cache.

They are never memcg pages in 3.17: the page cache insertion skips PageHuge pages (the fix for
bug B7), and their last put goes to their own destructor, free_huge_page, which knows nothing
of memcg. The model has no separate pool: a freed huge page goes back to the buddy allocator
(as update_and_free_page does when the pool shrinks), through the bad-page check that reported
B7 ("cgroup check failed").
"""

from __future__ import annotations

import numpy as np

from .gfp import GFP_KERNEL
from .locking import Lock, Unlock, page_lock
from .mm_struct import PTE_PRESENT, PTE_VAL_MASK
from .mm_types import PG_huge


def alloc_huge_page(k, node: int) -> int:
    """A huge page (a compound head with PG_huge) with one reference, or -1."""
    pfn = alloc_pages_node(k, node, 9)
    if pfn >= 0:
        k.mem_map.flags[pfn] |= PG_huge
    return pfn


def free_huge_page(k, pfn: int) -> None:
    """The compound destructor of a huge page: no memcg uncharge here."""
    k.mem_map.flags[pfn] &= ~PG_huge
    free_pages(k, pfn)


def hugetlb_add_page(k, mapping, index: int, node: int):
    """Path: the page cache half of hugetlb_no_page: a new huge page, locked, inserted into
    the file (huge_add_to_page_cache). Returns 0 or -errno."""

    pfn = alloc_huge_page(k, node)
    if pfn < 0:
        return -12
    yield Lock(page_lock(pfn))
    ret = yield from add_to_page_cache_locked(k, pfn, mapping, index, GFP_KERNEL)
    yield Unlock(page_lock(pfn))
    put_page(k, pfn)
    return ret


def truncate_hugepages(k, mapping, start: int):
    """Path: hugetlbfs truncation: each huge page from index start on is locked and removed
    from the cache; its last put frees it."""

    for index in np.flatnonzero(mapping.i_pages[start:] & PTE_PRESENT).tolist():
        index += start
        e = mapping.lookup(index)
        pfn = e & PTE_VAL_MASK
        page_cache_get(k, pfn)
        yield Lock(page_lock(pfn))
        if mapping.lookup(index) == e:
            yield from delete_from_page_cache(k, pfn)
        yield Unlock(page_lock(pfn))
        put_page(k, pfn)
    mapping.size_pages = min(mapping.size_pages, start)


# Imported once this module's functions exist: these modules and this one call each other.
from .filemap import add_to_page_cache_locked, delete_from_page_cache  # noqa: E402
from .page_alloc import alloc_pages_node, free_pages  # noqa: E402
from .swap import page_cache_get, put_page  # noqa: E402
