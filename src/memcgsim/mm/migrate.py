"""mm/migrate.c: move a page's contents, mappings and charge to a page on another node.

The charge moves with mem_cgroup_migrate(old, new, false) after the mapping has moved and BEFORE
the migration ptes are replaced by the new page, so that re-mapping counts mapped_file on a
charged page (the fix for bug B2).
"""

from __future__ import annotations

from ..errors import Errno
from .huge_memory import split_huge_page
from .locking import Lock, Step, TryLock, Unlock, page_lock, tree_lock
from .memcontrol import mem_cgroup_migrate
from .mlock import mlock_vma_page
from .mm_struct import PTE_DIRTY, PTE_PRESENT, PTE_WRITE, VM_LOCKED
from .mm_types import (
    PG_active,
    PG_anon,
    PG_dirty,
    PG_head,
    PG_mlocked,
    PG_referenced,
    PG_swapbacked,
    PG_swapcache,
    PG_unevictable,
    PG_writeback,
)
from .page_alloc import alloc_pages_node
from .rmap import (
    TTU_MIGRATION,
    do_page_add_anon_rmap,
    page_add_file_rmap,
    page_mapped,
    rmap_walk,
    try_to_unmap,
)
from .swap import get_page, page_cache_release, put_page
from .vmscan import isolate_lru_page, page_mapping, putback_lru_page

MIGRATEPAGE_SUCCESS = 0


def migrate_page_move_mapping(k, mapping, new: int, old: int):
    """Path: move the cache slot (page cache or swap cache) and its reference to the new page."""
    mem_map = k.mem_map
    if mapping is None:
        return MIGRATEPAGE_SUCCESS if mem_map.refcount[old] == 1 else -Errno.EAGAIN
    yield Lock(tree_lock(mapping.id))
    if mem_map.refcount[old] != 2:
        yield Unlock(tree_lock(mapping.id))
        return -Errno.EAGAIN
    get_page(k, new)
    if mem_map.flags[old] & PG_swapcache:
        entry = int(mem_map.private[old])
        mem_map.flags[new] |= PG_swapcache
        mem_map.private[new] = entry
        k.swap.cache[entry] = new
    else:
        mapping.i_pages[int(mem_map.index[old])] = PTE_PRESENT | new
    mem_map.refcount[old] -= 1
    yield Unlock(tree_lock(mapping.id))
    return MIGRATEPAGE_SUCCESS


def migrate_page_copy(k, new: int, old: int) -> None:
    """Copy the page state that travels with the contents, and clear it on the old page."""
    mem_map = k.mem_map
    fl = int(mem_map.flags[old])
    mem_map.flags[new] |= fl & (PG_referenced | PG_active | PG_unevictable | PG_dirty | PG_mlocked)
    mem_map.flags[old] = fl & ~(PG_active | PG_unevictable | PG_dirty | PG_mlocked | PG_swapcache)
    mem_map.private[old] = 0


def move_to_new_page(k, new: int, old: int, page_was_mapped: bool):
    """Path: both pages locked, old unmapped to migration entries."""

    mem_map = k.mem_map
    mem_map.index[new] = mem_map.index[old]
    mem_map.mapping[new] = mem_map.mapping[old]
    mem_map.flags[new] |= int(mem_map.flags[old]) & (PG_swapbacked | PG_anon)
    rc = yield from migrate_page_move_mapping(k, page_mapping(k, old), new, old)
    if rc != MIGRATEPAGE_SUCCESS:
        mem_map.mapping[new] = 0
        mem_map.flags[new] &= ~(PG_swapbacked | PG_anon)
        return rc
    migrate_page_copy(k, new, old)
    if "B2" in k.inject:
        # bug B2 put back: the new page is mapped before it has the charge, so mapping it
        # counts no mapped_file, and the unmap later takes one that was never there
        if page_was_mapped:
            remove_migration_ptes(k, old, new)
        mem_cgroup_migrate(k, old, new, False)
    else:
        mem_cgroup_migrate(k, old, new, False)
        if page_was_mapped:
            remove_migration_ptes(k, old, new)
    mem_map.mapping[old] = 0
    mem_map.flags[old] &= ~PG_anon
    return MIGRATEPAGE_SUCCESS


def remove_migration_ptes(k, old: int, new: int) -> None:
    """Replace every migration entry for old with a pte for new (mapped_file counts on new)."""
    mem_map = k.mem_map
    for vma, addr in list(rmap_walk(k, old, migration=True)):
        i = addr - vma.start
        pte = int(vma.pte[i])
        get_page(k, new)
        vma.pte[i] = PTE_PRESENT | (pte & (PTE_WRITE | PTE_DIRTY)) | new
        if mem_map.flags[new] & PG_anon:
            do_page_add_anon_rmap(k, new, vma, addr)
        else:
            page_add_file_rmap(k, new)
        if vma.flags & VM_LOCKED and k.profile.migration_remlocks:
            mlock_vma_page(k, new)


def unmap_and_move(k, old: int, node: int):
    """Path: migrate one isolated page to node; the old page is put back (and freed when it
    was migrated), the new one goes on the LRU."""
    mem_map = k.mem_map
    new = alloc_pages_node(k, node, 0, thisnode=True)
    if new < 0:
        putback_lru_page(k, old)
        return -Errno.ENOMEM
    rc = -Errno.EAGAIN
    if (yield TryLock(page_lock(old))):
        if mem_map.flags[old] & PG_writeback:
            rc = -Errno.EBUSY
        else:
            yield Lock(page_lock(new))
            page_was_mapped = page_mapped(k, old)
            if page_was_mapped:
                try_to_unmap(k, old, TTU_MIGRATION)
            if not page_mapped(k, old):
                rc = yield from move_to_new_page(k, new, old, page_was_mapped)
            if rc != MIGRATEPAGE_SUCCESS and page_was_mapped:
                remove_migration_ptes(k, old, old)
            yield Unlock(page_lock(new))
        yield Unlock(page_lock(old))
    # putback_lru_page adds the page to its list and only then drops the isolation reference:
    # in between, compaction may isolate (and migrate) the page again (bug B3's window)
    get_page(k, old)
    putback_lru_page(k, old)
    yield Step("putback_lru_page: on the LRU, isolation reference still held")
    put_page(k, old)
    if rc == MIGRATEPAGE_SUCCESS:
        putback_lru_page(k, new)
    else:
        page_cache_release(k, new)
    return rc


def migrate_pages(k, pfns: list[int], node: int):
    """Path: isolate the pages first (THPs are split, as 3.17's migrate_pages does), then move
    each isolated page to node, so reclaim run by an allocation on the way cannot take them.
    Returns the number of pages that could not be migrated. One pass: the kernel tries a page
    that failed with -EAGAIN (still referenced elsewhere, say by an unmap that has cleared its
    pte but not yet freed it) up to ten times; the model does not retry."""

    failed = 0
    isolated = []
    for pfn in pfns:
        if k.mem_map.refcount[pfn] <= 0:
            failed += 1                       # freed since the caller looked
            continue
        if k.mem_map.flags[pfn] & PG_head:
            get_page(k, pfn)
            yield from split_huge_page(k, pfn)
            page_cache_release(k, pfn)
        if k.page_to_nid(pfn) == node:
            continue
        if isolate_lru_page(k, pfn):
            failed += 1
            continue
        isolated.append(pfn)
    for pfn in isolated:
        rc = yield from unmap_and_move(k, pfn, node)
        if rc != MIGRATEPAGE_SUCCESS:
            failed += 1
    return failed
