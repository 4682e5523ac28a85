"""mm/filemap.c: the page cache. Insertion charges the inserting task's memcg (first touch);
removal does not uncharge: the charge goes at the page's final put."""

from __future__ import annotations

from ..errors import Errno
from .gfp import GFP_KERNEL
from .locking import Lock, Unlock, page_lock, tree_lock
from .mm_struct import PTE_PRESENT
from .mm_types import PG_active, PG_huge, PG_locked, PG_lru, PG_referenced, PG_swapbacked


def current_mm(k):
    return k.current.mm if k.current is not None else None


def __add_to_page_cache_locked(k, pfn: int, mapping, index: int, gfp_mask: int):
    """Path: charge (to current->mm's owner) and insert a locked page; 0 or -errno."""
    mem_map = k.mem_map
    k.bug_on(not mem_map.flags[pfn] & PG_locked, pfn, "!PageLocked(page)")
    k.bug_on(mem_map.flags[pfn] & PG_swapbacked, pfn, "PageSwapBacked(page)")
    # 3.17 charges in two steps, committed or cancelled after the insertion; 5.8 on in one
    two_step = not k.profile.charge_at_instantiation
    ret, memcg = 0, None
    # hugetlb pages are not memcg pages (B7 charged them)
    if not mem_map.flags[pfn] & PG_huge or "B7" in k.inject:
        if two_step:
            ret, memcg = mem_cgroup_try_charge(k, pfn, current_mm(k), gfp_mask)
        else:
            ret = mem_cgroup_charge(k, pfn, current_mm(k), gfp_mask)
    if ret:
        return ret
    page_cache_get(k, pfn)
    mem_map.mapping[pfn] = mapping.id
    mem_map.index[pfn] = index
    yield Lock(tree_lock(mapping.id))
    if mapping.lookup(index):
        yield Unlock(tree_lock(mapping.id))
        mem_map.mapping[pfn] = 0
        if two_step:
            mem_cgroup_cancel_charge(k, pfn, memcg)
        page_cache_release(k, pfn)
        return -Errno.EEXIST
    mapping.ensure(index + 1)
    mapping.i_pages[index] = PTE_PRESENT | pfn
    mapping.nrpages += 1
    yield Unlock(tree_lock(mapping.id))
    if two_step:
        mem_cgroup_commit_charge(k, pfn, memcg, False)
    return 0


add_to_page_cache_locked = __add_to_page_cache_locked


def add_to_page_cache_lru(k, pfn: int, mapping, index: int, gfp_mask: int):
    """Path: insert, then put the page on the inactive file list."""
    ret = yield from __add_to_page_cache_locked(k, pfn, mapping, index, gfp_mask)
    if ret == 0:
        k.mem_map.flags[pfn] &= ~PG_active
        lru_cache_add_file(k, pfn)
    return ret


def __delete_from_page_cache(k, pfn: int) -> None:
    """Under tree_lock: drop the page from its mapping; the cache's reference is the caller's."""
    mem_map = k.mem_map
    mapping = k.mappings[int(mem_map.mapping[pfn])]
    mapping.i_pages[int(mem_map.index[pfn])] = 0
    mapping.nrpages -= 1
    mem_map.mapping[pfn] = 0


def delete_from_page_cache(k, pfn: int):
    """Path: remove a locked page from the page cache and drop the cache's reference."""
    mem_map = k.mem_map
    k.bug_on(not mem_map.flags[pfn] & PG_locked, pfn, "!PageLocked(page)")
    mapping_id = int(mem_map.mapping[pfn])
    yield Lock(tree_lock(mapping_id))
    __delete_from_page_cache(k, pfn)
    yield Unlock(tree_lock(mapping_id))
    page_cache_release(k, pfn)


def find_get_page(k, mapping, index: int) -> int:
    pfn = mapping.find_page(index)
    if pfn >= 0:
        page_cache_get(k, pfn)
    return pfn


def mark_page_accessed(k, pfn: int) -> None:
    """Second touch of an inactive page activates it; the first sets PG_referenced."""

    mem_map = k.mem_map
    flags = int(mem_map.flags[pfn])
    if not flags & PG_active and flags & PG_referenced and flags & PG_lru:
        if isolate_lru_page(k, pfn) == 0:
            mem_map.flags[pfn] = (mem_map.flags[pfn] | PG_active) & ~PG_referenced
            putback_lru_page(k, pfn)
    elif not flags & PG_referenced:
        mem_map.flags[pfn] |= PG_referenced


def find_or_create_page(k, mapping, index: int, node: int):
    """Path: the page at index, locked and referenced; a new one is allocated, charged to the
    current task and inserted (and read in). Returns the pfn or a negative errno."""
    while True:
        pfn = find_get_page(k, mapping, index)
        if pfn >= 0:
            yield Lock(page_lock(pfn))
            if mapping.find_page(index) == pfn:
                return pfn
            yield Unlock(page_lock(pfn))          # truncated meanwhile: look again
            page_cache_release(k, pfn)
            continue
        pfn = alloc_pages_node(k, node, 0)
        if pfn < 0:
            return -Errno.ENOMEM
        yield Lock(page_lock(pfn))
        ret = yield from add_to_page_cache_lru(k, pfn, mapping, index, GFP_KERNEL)
        if ret == 0:
            return pfn
        yield Unlock(page_lock(pfn))
        page_cache_release(k, pfn)
        if ret != -Errno.EEXIST:                  # EEXIST: somebody else inserted one first
            return ret


def page_cache_read(k, mapping, index: int, node: int):
    """Path: find the page at index or read it in (charging the reader); return it referenced
    and unlocked, or a negative errno."""
    pfn = find_get_page(k, mapping, index)
    if pfn >= 0:
        return pfn
    pfn = yield from find_or_create_page(k, mapping, index, node)
    if pfn >= 0:
        yield Unlock(page_lock(pfn))              # readpage completes and unlocks the page
    return pfn


def do_generic_file_read(k, mapping, start: int, nr: int, node: int):
    """Path: read(2) of nr pages from index start. Returns pages read, or -errno at the first
    failure (a charge that failed: -ENOMEM)."""
    for index in range(start, start + nr):
        pfn = yield from page_cache_read(k, mapping, index, node)
        if pfn < 0:
            return pfn
        mark_page_accessed(k, pfn)
        page_cache_release(k, pfn)
    return nr


def generic_perform_write(k, mapping, start: int, nr: int, node: int):
    """Path: write(2) of nr whole pages at index start through the page cache."""

    for index in range(start, start + nr):
        pfn = yield from find_or_create_page(k, mapping, index, node)  # write_begin
        if pfn < 0:
            return pfn
        set_page_dirty(k, pfn)                       # write_end
        yield Unlock(page_lock(pfn))
        if k.profile.write_marks_accessed:
            mark_page_accessed(k, pfn)
        page_cache_release(k, pfn)
        mapping.size_pages = max(mapping.size_pages, index + 1)
    return nr


def replace_page_cache_page(k, old: int, new: int, gfp_mask: int):
    """Path: put `new` in the page cache in place of `old` (FUSE splice). Both pages locked;
    either may already be charged and on an LRU list, hence mem_cgroup_migrate with lrucare."""
    mem_map = k.mem_map
    k.bug_on(not mem_map.flags[old] & PG_locked, old, "!PageLocked(old)")
    k.bug_on(not mem_map.flags[new] & PG_locked, new, "!PageLocked(new)")
    k.bug_on(mem_map.mapping[new] != 0, new, "new->mapping")
    mapping = k.mappings[int(mem_map.mapping[old])]
    index = int(mem_map.index[old])
    page_cache_get(k, new)
    mem_map.mapping[new] = mapping.id
    mem_map.index[new] = index
    yield Lock(tree_lock(mapping.id))
    __delete_from_page_cache(k, old)
    mapping.i_pages[index] = PTE_PRESENT | new
    mapping.nrpages += 1
    yield Unlock(tree_lock(mapping.id))
    # bug B4 put back: without lrucare, pages on an LRU list change memcg under it
    mem_cgroup_replace_folio(k, old, new, lrucare="B4" not in k.inject)
    page_cache_release(k, old)
    return 0


# Imported once this module's functions exist: these modules and this one call each other.
from .memcontrol import (  # noqa: E402
    mem_cgroup_cancel_charge,
    mem_cgroup_charge,
    mem_cgroup_commit_charge,
    mem_cgroup_replace_folio,
    mem_cgroup_try_charge,
)
from .page_alloc import alloc_pages_node  # noqa: E402
from .page_writeback import set_page_dirty  # noqa: E402
from .swap import lru_cache_add_file, page_cache_get, page_cache_release  # noqa: E402
from .vmscan import isolate_lru_page, putback_lru_page  # noqa: E402
