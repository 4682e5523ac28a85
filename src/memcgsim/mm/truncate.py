"""mm/truncate.c: truncation and eviction of a file's pages. No memcg call here since 2014:
a truncated page is uncharged at its final put."""

from __future__ import annotations

import numpy as np

from .locking import Lock, Spin, TryLock, Unlock, page_lock
from .mm_struct import PTE_PRESENT, PTE_SWAP, PTE_VAL_MASK
from .mm_types import PG_dirty, PG_writeback


def unmap_mapping_range(k, mapping, start: int, end: int | None = None):
    """Path: zap every pte of the file's VMAs that covers indexes [start, end): the file's
    pages and, as truncation needs (even_cows), private COW copies and their swap entries."""

    for vma in list(mapping.i_mmap):
        lo = max(start, vma.pgoff)
        hi = vma.pgoff + vma.npages if end is None else min(end, vma.pgoff + vma.npages)
        if lo < hi:
            yield from zap_pte_range(k, vma, lo - vma.pgoff, hi - vma.pgoff)


def truncate_inode_page(k, mapping, pfn: int):
    """Path: unmap a locked page and remove it from the page cache."""

    mem_map = k.mem_map
    if mem_map.mapcount[pfn] > 0:
        index = int(mem_map.index[pfn])
        yield from unmap_mapping_range(k, mapping, index, index + 1)
    mem_map.flags[pfn] &= ~PG_dirty                   # cancel_dirty_page
    yield from delete_from_page_cache(k, pfn)


def truncate_inode_pages_range(k, mapping, start: int):
    """Path: drop every cached page (and, for shmem, every swap entry) from index start on."""

    used = np.flatnonzero(mapping.i_pages[start:]) + start
    for index in used.tolist():
        e = mapping.lookup(index)
        if e & PTE_SWAP:
            mapping.i_pages[index] = 0            # shmem_free_swap
            yield from free_swap_and_cache(k, e & PTE_VAL_MASK)
            continue
        if not e & PTE_PRESENT:
            continue
        pfn = e & PTE_VAL_MASK
        page_cache_get(k, pfn)                   # the pagevec lookup's reference
        yield Lock(page_lock(pfn))
        while k.mem_map.flags[pfn] & PG_writeback:
            yield Spin(f"wait_on_page_writeback of pfn {pfn}")
        if mapping.lookup(index) == e:
            yield from truncate_inode_page(k, mapping, pfn)
        yield Unlock(page_lock(pfn))
        page_cache_release(k, pfn)
    mapping.size_pages = min(mapping.size_pages, start)


def invalidate_mapping_pages(k, mapping):
    """Path: drop the clean, unmapped, unlocked cached pages of a file (drop_caches)."""

    dropped = 0
    for index in (np.flatnonzero(mapping.i_pages & PTE_PRESENT)).tolist():
        e = mapping.lookup(index)
        pfn = e & PTE_VAL_MASK
        page_cache_get(k, pfn)
        if (yield TryLock(page_lock(pfn))):
            mem = k.mem_map
            if (mapping.lookup(index) == e and not mem.flags[pfn] & (PG_dirty | PG_writeback)
                    and not mem.mapcount[pfn]):
                yield from delete_from_page_cache(k, pfn)
                dropped += 1
            yield Unlock(page_lock(pfn))
        page_cache_release(k, pfn)
    return dropped


# Imported once this module's functions exist: these modules and this one call each other.
from .filemap import delete_from_page_cache  # noqa: E402
from .memory import zap_pte_range  # noqa: E402
from .swap import page_cache_get, page_cache_release  # noqa: E402
from .swapfile import free_swap_and_cache  # noqa: E402
