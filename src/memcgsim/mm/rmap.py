"""mm/rmap.c: mapcounts, the anon and file reverse maps, mapped_file, and try_to_unmap."""

from __future__ import annotations

from .mm_struct import (
    MM_ANONPAGES,
    MM_FILEPAGES,
    MM_SWAPENTS,
    PTE_MIGRATION,
    PTE_PRESENT,
    PTE_VAL_MASK,
    PTE_WRITE,
    VM_LOCKED,
    swp_entry_to_pte,
)
from .mm_types import PG_anon, PG_head, PG_locked, PG_mlocked, PG_swapbacked, PG_swapcache

SWAP_SUCCESS, SWAP_AGAIN, SWAP_FAIL, SWAP_MLOCK = range(4)
TTU_UNMAP, TTU_MIGRATION = 0, 1


def page_mapped(k, pfn: int) -> bool:
    return k.mem_map.mapcount[pfn] > 0


def __page_set_anon_rmap(k, pfn: int, vma, addr: int) -> None:
    mem_map = k.mem_map
    mem_map.mapping[pfn] = vma.anon_vma.id
    mem_map.flags[pfn] |= PG_anon
    mem_map.index[pfn] = vma.linear_page_index(addr)


def page_add_new_anon_rmap(k, pfn: int, vma, addr: int) -> None:
    """First mapping of a freshly allocated anonymous page."""
    mem_map = k.mem_map
    mem_map.flags[pfn] |= PG_swapbacked
    mem_map.mapcount[pfn] = 1
    __page_set_anon_rmap(k, pfn, vma, addr)


def do_page_add_anon_rmap(k, pfn: int, vma, addr: int) -> None:
    """Map an existing anonymous page (swap cache page, migration target); page locked."""
    mem_map = k.mem_map
    first = mem_map.mapcount[pfn] == 0
    mem_map.mapcount[pfn] += 1
    k.bug_on(not mem_map.flags[pfn] & PG_locked, pfn, "!PageLocked(page)")
    if first:
        __page_set_anon_rmap(k, pfn, vma, addr)


page_add_anon_rmap = do_page_add_anon_rmap


def page_dup_rmap(k, pfn: int) -> None:
    k.mem_map.mapcount[pfn] += 1


def page_add_file_rmap(k, pfn: int) -> None:
    mem_map = k.mem_map
    mem_map.mapcount[pfn] += 1
    if mem_map.mapcount[pfn] == 1:
        mem_cgroup_update_page_stat(k, pfn, MEM_CGROUP_STAT_FILE_MAPPED, 1)


def page_remove_rmap(k, pfn: int) -> None:
    """One mapping fewer; the last one drops mapped_file (file pages) and the mlock."""
    mem_map = k.mem_map
    k.bug_on(mem_map.mapcount[pfn] <= 0, pfn, "page_mapcount(page) <= 0 in page_remove_rmap")
    mem_map.mapcount[pfn] -= 1
    if mem_map.mapcount[pfn]:
        return
    if not mem_map.flags[pfn] & PG_anon:
        mem_cgroup_update_page_stat(k, pfn, MEM_CGROUP_STAT_FILE_MAPPED, -1)
    if mem_map.flags[pfn] & PG_mlocked:
        clear_page_mlock(k, pfn)


def rmap_walk(k, pfn: int, migration: bool = False):
    """Every (vma, addr) whose pte maps this page (or, with migration, holds its migration
    entry): the anon_vma's VMAs for an anonymous page, the file's i_mmap for a file page."""
    mem_map = k.mem_map
    flags = int(mem_map.flags[pfn])
    mapping = int(mem_map.mapping[pfn])
    index = int(mem_map.index[pfn])
    if flags & PG_anon:
        anon_vma = k.anon_vmas.get(mapping)
        if anon_vma is None:
            return      # every VMA of it is gone: the page is mapped nowhere (a split's, say)
        vmas = anon_vma.vmas
    elif mapping:
        vmas = k.mappings[mapping].i_mmap
    else:
        return
    kind = PTE_MIGRATION if migration else PTE_PRESENT
    for vma in list(vmas):
        addr = vma.addr_of_index(index)
        if addr is None:
            continue
        pte = int(vma.pte[addr - vma.start])
        if pte & kind and pte & PTE_VAL_MASK == pfn:
            yield vma, addr


def try_to_unmap_one(k, pfn: int, vma, addr: int, flags: int) -> int:
    """Replace one pte: with a swap entry (swap cache page), a migration entry, or nothing
    (file page, which is found again through the page cache)."""

    mem_map = k.mem_map
    if vma.flags & VM_LOCKED and flags != TTU_MIGRATION:
        # out_mlock: a page reclaim finds in a VM_LOCKED vma is mlocked now (it may have lost
        # PG_mlocked when a migration unmapped it), so it is culled to the unevictable list
        # instead of coming back to the evictable one for ever

        mlock_vma_page(k, pfn)
        return SWAP_MLOCK
    i = addr - vma.start
    pte = int(vma.pte[i])
    owner = vma.mm
    pflags = int(mem_map.flags[pfn])
    if flags == TTU_MIGRATION:
        vma.pte[i] = PTE_MIGRATION | (pte & PTE_WRITE) | pfn
    elif pflags & PG_anon:
        if not pflags & PG_swapcache:
            return SWAP_FAIL
        entry = int(mem_map.private[pfn])
        swap_duplicate(k, entry)
        vma.pte[i] = swp_entry_to_pte(entry)
        owner.rss_stat[MM_ANONPAGES] -= 1
        owner.rss_stat[MM_SWAPENTS] += 1
    else:
        vma.pte[i] = 0
        owner.rss_stat[MM_FILEPAGES] -= 1
    page_remove_rmap(k, pfn)
    page_cache_release(k, pfn)
    return SWAP_AGAIN


def try_to_unmap(k, pfn: int, flags: int = TTU_UNMAP) -> int:
    """Unmap a locked page from every pte; SWAP_SUCCESS when no mapping is left."""
    mem_map = k.mem_map
    k.bug_on(not mem_map.flags[pfn] & PG_locked, pfn, "!PageLocked(page)")
    k.bug_on(mem_map.flags[pfn] & PG_head, pfn, "PageTransHuge(page) in try_to_unmap")
    ret = SWAP_AGAIN
    for vma, addr in list(rmap_walk(k, pfn)):
        ret = try_to_unmap_one(k, pfn, vma, addr, flags)
        if ret != SWAP_AGAIN:
            break
    if ret != SWAP_MLOCK and not page_mapped(k, pfn):
        ret = SWAP_SUCCESS
    return ret


# Imported once this module's functions exist: these modules and this one call each other.
from .memcontrol import MEM_CGROUP_STAT_FILE_MAPPED, mem_cgroup_update_page_stat  # noqa: E402
from .mlock import clear_page_mlock, mlock_vma_page  # noqa: E402
from .swap import page_cache_release  # noqa: E402
from .swapfile import swap_duplicate  # noqa: E402
