"""mm/memory.c: page faults and zapping page tables.

3.17: anonymous, COW and swap-in faults charge with mem_cgroup_try_charge before taking the
page-table lock and commit under it once the rmap is set up; a fault that lost a race cancels.
5.8 on: the new page is charged in one step (mem_cgroup_charge) and a page that lost the race
is uncharged when it is freed; a swap-in fault charges nothing, its page was charged when it
entered the swap cache. Zapping drops the mappings; pages are uncharged when the batched final
put frees them.
"""

from __future__ import annotations

import numpy as np

from ..errors import Errno
from .gfp import GFP_KERNEL
from .locking import Lock, TryLock, Unlock, mmap_sem, page_lock, ptl
from .mm_struct import (
    MM_ANONPAGES,
    MM_FILEPAGES,
    MM_SWAPENTS,
    PTE_DIRTY,
    PTE_HUGE,
    PTE_MIGRATION,
    PTE_PRESENT,
    PTE_SWAP,
    PTE_VAL_MASK,
    PTE_WRITE,
    VM_LOCKED,
    VM_SHARED,
    VM_WRITE,
    AnonVma,
    mk_pte,
)
from .mm_types import HPAGE_PMD_NR, PG_anon, PG_mlocked, PG_swapcache, PG_writeback

VM_FAULT_OOM = 0x0001
VM_FAULT_SIGBUS = 0x0002
VM_FAULT_MAJOR = 0x0004
VM_FAULT_WRITE = 0x0008
#: named in 3.19; 3.17's architecture handler sends the SIGSEGV of a fault outside any VMA
#: itself, before handle_mm_fault
VM_FAULT_SIGSEGV = 0x0040
VM_FAULT_RETRY = 0x0400
VM_FAULT_FALLBACK = 0x0800


def anon_vma_prepare(k, vma) -> None:
    if vma.anon_vma is None:
        av = AnonVma(k.new_id())
        av.vmas.append(vma)
        vma.anon_vma = av
        k.anon_vmas[av.id] = av


def fault_node(k, vma) -> int:
    """The node new pages of this fault come from: the faulting task's home node."""
    task = k.current
    return task.node if task is not None else 0


def do_anonymous_page(k, vma, addr: int):
    """Path: first write to an anonymous page."""
    anon_vma_prepare(k, vma)
    pfn = alloc_pages_node(k, fault_node(k, vma), 0)
    if pfn < 0:
        return VM_FAULT_OOM
    mm = vma.mm
    # 3.17 charges in two steps, committed or cancelled under the pte lock; 5.8 on in one
    two_step = not k.profile.charge_at_instantiation
    if two_step:
        ret, memcg = mem_cgroup_try_charge(k, pfn, mm, GFP_KERNEL)
    else:
        ret = mem_cgroup_charge(k, pfn, mm, GFP_KERNEL)
    if ret:
        page_cache_release(k, pfn)
        return VM_FAULT_OOM
    i = addr - vma.start
    yield Lock(ptl(mm.id))
    if vma.pte[i]:
        yield Unlock(ptl(mm.id))
        if two_step:
            mem_cgroup_cancel_charge(k, pfn, memcg)
        page_cache_release(k, pfn)
        return 0
    mm.rss_stat[MM_ANONPAGES] += 1
    page_add_new_anon_rmap(k, pfn, vma, addr)
    if two_step:
        mem_cgroup_commit_charge(k, pfn, memcg, False)
    lru_cache_add_active_or_unevictable(k, pfn, vma)
    vma.pte[i] = mk_pte(pfn, True) | PTE_DIRTY
    yield Unlock(ptl(mm.id))
    return 0


def reuse_swap_page(k, pfn: int) -> bool:
    """Can a write fault take this locked anonymous page for itself (no other user)?"""

    mem_map = k.mem_map
    count = int(mem_map.mapcount[pfn])
    if count <= 1 and mem_map.flags[pfn] & PG_swapcache:
        count += page_swapcount(k, pfn)
        if count == 1 and not mem_map.flags[pfn] & PG_writeback:
            delete_from_swap_cache(k, pfn)
            SetPageDirty(k, pfn)
    return count <= 1


def wp_page_shared(k, vma, addr: int):
    """Path: write to a read-only pte of a shared mapping: the page itself becomes writable
    and dirty (page_mkwrite); a shared mapping never copies, so no charge changes."""

    mm = vma.mm
    i = addr - vma.start
    pte = int(vma.pte[i])
    pfn = pte & PTE_VAL_MASK
    # a reference across the wait for the page lock: without it, a migration or truncation
    # that holds the lock could free the page under us
    page_cache_get(k, pfn)
    yield Lock(page_lock(pfn))
    if not k.mem_map.mapping[pfn]:
        # do_page_mkwrite: truncated or migrated meanwhile; the fault is retried
        yield Unlock(page_lock(pfn))
        page_cache_release(k, pfn)
        return 0
    yield Lock(ptl(mm.id))
    if int(vma.pte[i]) != pte:
        yield Unlock(ptl(mm.id))
        yield Unlock(page_lock(pfn))
        page_cache_release(k, pfn)
        return 0
    vma.pte[i] = pte | PTE_WRITE | PTE_DIRTY
    yield Unlock(ptl(mm.id))
    set_page_dirty(k, pfn)
    yield Unlock(page_lock(pfn))
    page_cache_release(k, pfn)
    return VM_FAULT_WRITE


def do_wp_page(k, vma, addr: int):
    """Path: write to a write-protected present pte: reuse the page, or copy it (COW)."""
    mm = vma.mm
    i = addr - vma.start
    pte = int(vma.pte[i])
    old = pte & PTE_VAL_MASK
    if vma.flags & VM_SHARED:
        return (yield from wp_page_shared(k, vma, addr))
    page_cache_get(k, old)
    if k.mem_map.flags[old] & PG_anon:
        yield Lock(page_lock(old))
        reuse = reuse_swap_page(k, old)
        yield Unlock(page_lock(old))
        if reuse:
            page_cache_release(k, old)
            yield Lock(ptl(mm.id))
            if int(vma.pte[i]) == pte:
                vma.pte[i] = pte | PTE_WRITE | PTE_DIRTY        # wp_page_reuse
            yield Unlock(ptl(mm.id))
            return VM_FAULT_WRITE
    anon_vma_prepare(k, vma)
    new = alloc_pages_node(k, fault_node(k, vma), 0)
    if new < 0:
        page_cache_release(k, old)
        return VM_FAULT_OOM
    # 3.17 charges the copy in two steps, committed or cancelled under the pte lock; 5.8 on
    # in one (wp_page_copy)
    two_step = not k.profile.charge_at_instantiation
    if two_step:
        ret, memcg = mem_cgroup_try_charge(k, new, mm, GFP_KERNEL)
    else:
        ret = mem_cgroup_charge(k, new, mm, GFP_KERNEL)
    if ret:
        page_cache_release(k, new)
        page_cache_release(k, old)
        return VM_FAULT_OOM
    yield Lock(ptl(mm.id))
    if int(vma.pte[i]) == pte:
        if not k.mem_map.flags[old] & PG_anon:
            mm.rss_stat[MM_FILEPAGES] -= 1
            mm.rss_stat[MM_ANONPAGES] += 1
        page_add_new_anon_rmap(k, new, vma, addr)
        if two_step:
            mem_cgroup_commit_charge(k, new, memcg, False)
        lru_cache_add_active_or_unevictable(k, new, vma)
        vma.pte[i] = mk_pte(new, True) | PTE_DIRTY
        page_remove_rmap(k, old)
        release = old          # the old mapping's reference
    else:
        if two_step:
            mem_cgroup_cancel_charge(k, new, memcg)
        release = new
    yield Unlock(ptl(mm.id))
    page_cache_release(k, release)
    page_cache_release(k, old)
    return VM_FAULT_WRITE


def do_swap_page(k, vma, addr: int, write: bool):
    """Path: fault on a swap pte. 3.17: a page read ahead into swap cache is uncharged and maybe
    on the LRU; the fault charges the slot's recorded memcg and commits with lrucare. 5.8 on:
    the page was charged when it entered the swap cache, and the fault charges nothing."""

    mm = vma.mm
    i = addr - vma.start
    orig = int(vma.pte[i])
    entry = orig & PTE_VAL_MASK
    ret = 0
    pfn = lookup_swap_cache(k, entry)
    if pfn < 0:
        pfn = yield from swapin_readahead(k, entry, fault_node(k, vma))
        if pfn < 0:
            return 0 if int(vma.pte[i]) != orig else VM_FAULT_OOM
        ret = VM_FAULT_MAJOR
        mem_cgroup_count_vm_event(k, mm, MEM_CGROUP_EVENTS_PGMAJFAULT)
    yield Lock(page_lock(pfn))
    pm = k.mem_map
    if not pm.flags[pfn] & PG_swapcache or pm.private[pfn] != entry:
        yield Unlock(page_lock(pfn))
        page_cache_release(k, pfn)
        return ret
    # 3.17 charges here, in two steps; 5.8 on the page was charged by
    # mem_cgroup_swapin_charge_page before it entered the swap cache
    two_step = not k.profile.charge_at_instantiation
    if two_step:
        err, memcg = mem_cgroup_try_charge(k, pfn, mm, GFP_KERNEL)
        if err:
            yield Unlock(page_lock(pfn))
            page_cache_release(k, pfn)
            return VM_FAULT_OOM
    yield Lock(ptl(mm.id))
    if int(vma.pte[i]) != orig:
        yield Unlock(ptl(mm.id))
        if two_step:
            mem_cgroup_cancel_charge(k, pfn, memcg)
        yield Unlock(page_lock(pfn))
        page_cache_release(k, pfn)
        return ret
    mm.rss_stat[MM_ANONPAGES] += 1
    mm.rss_stat[MM_SWAPENTS] -= 1
    pte = mk_pte(pfn, False)
    if write and reuse_swap_page(k, pfn):
        pte |= PTE_WRITE | PTE_DIRTY
        write = False
        ret |= VM_FAULT_WRITE
    vma.pte[i] = pte
    do_page_add_anon_rmap(k, pfn, vma, addr)
    if two_step:
        mem_cgroup_commit_charge(k, pfn, memcg, True)
    swap_free(k, entry)
    if vm_swap_full(k) or vma.flags & VM_LOCKED or pm.flags[pfn] & PG_mlocked:
        try_to_free_swap(k, pfn)
    yield Unlock(page_lock(pfn))
    yield Unlock(ptl(mm.id))
    if write:
        ret |= yield from do_wp_page(k, vma, addr)
    return ret


def __do_fault(k, vma, addr: int):
    """Path: the file's page for addr, from the page cache or read in (charged to the faulting
    task if it was not cached); returned locked and referenced, or -VM_FAULT_* on failure."""

    mapping = vma.file
    index = vma.linear_page_index(addr)
    if mapping.shmem:
        pfn = yield from shmem_getpage(k, mapping, index, fault_node(k, vma), SGP_CACHE)
        if pfn < 0:
            return -VM_FAULT_OOM if pfn == -Errno.ENOMEM else -VM_FAULT_SIGBUS
        return pfn
    while True:
        if index >= mapping.size_pages:
            return -VM_FAULT_SIGBUS
        pfn = yield from page_cache_read(k, mapping, index, fault_node(k, vma))
        if pfn < 0:
            return -VM_FAULT_OOM
        yield Lock(page_lock(pfn))
        if k.mem_map.mapping[pfn] == mapping.id:
            break
        # truncated, or replaced in the cache, while we waited for its lock: look again
        yield Unlock(page_lock(pfn))
        page_cache_release(k, pfn)
    if index >= mapping.size_pages:          # i_size, rechecked under the page lock
        yield Unlock(page_lock(pfn))
        page_cache_release(k, pfn)
        return -VM_FAULT_SIGBUS
    return pfn


def do_file_fault(k, vma, addr: int, write: bool):
    """Path: fault on a pte_none of a file or shmem mapping: map the cached page (do_read_fault,
    do_shared_fault), or for a write to a private mapping, a charged copy (do_cow_fault)."""

    if write and not vma.flags & VM_SHARED:
        return (yield from do_cow_fault(k, vma, addr))
    mm = vma.mm
    pfn = yield from __do_fault(k, vma, addr)
    if pfn < 0:
        return -pfn
    i = addr - vma.start
    yield Lock(ptl(mm.id))
    if vma.pte[i]:
        yield Unlock(ptl(mm.id))
        yield Unlock(page_lock(pfn))
        page_cache_release(k, pfn)
        return 0
    mm.rss_stat[MM_FILEPAGES] += 1
    page_add_file_rmap(k, pfn)
    writable = write and vma.flags & VM_WRITE
    vma.pte[i] = mk_pte(pfn, bool(writable)) | (PTE_DIRTY if writable else 0)
    yield Unlock(ptl(mm.id))
    if writable:
        set_page_dirty(k, pfn)
    yield Unlock(page_lock(pfn))
    return 0


def do_cow_fault(k, vma, addr: int):
    """Path: first write to a private file mapping: the new anonymous copy is charged to the
    faulting mm before the file page is looked up (3.17: try-charged, and committed under the
    pte lock)."""
    anon_vma_prepare(k, vma)
    new = alloc_pages_node(k, fault_node(k, vma), 0)
    if new < 0:
        return VM_FAULT_OOM
    mm = vma.mm
    # 3.17 charges in two steps, committed or cancelled later; 5.8 on in one
    two_step = not k.profile.charge_at_instantiation
    if two_step:
        ret, memcg = mem_cgroup_try_charge(k, new, mm, GFP_KERNEL)
    else:
        ret = mem_cgroup_charge(k, new, mm, GFP_KERNEL)
    if ret:
        page_cache_release(k, new)
        return VM_FAULT_OOM
    fault_page = yield from __do_fault(k, vma, addr)
    if fault_page < 0:
        if two_step:
            mem_cgroup_cancel_charge(k, new, memcg)
        page_cache_release(k, new)
        return -fault_page
    i = addr - vma.start
    yield Lock(ptl(mm.id))
    if vma.pte[i]:
        yield Unlock(ptl(mm.id))
        yield Unlock(page_lock(fault_page))
        page_cache_release(k, fault_page)
        if two_step:
            mem_cgroup_cancel_charge(k, new, memcg)
        page_cache_release(k, new)
        return 0
    mm.rss_stat[MM_ANONPAGES] += 1
    page_add_new_anon_rmap(k, new, vma, addr)
    vma.pte[i] = mk_pte(new, True) | PTE_DIRTY
    if two_step:
        mem_cgroup_commit_charge(k, new, memcg, False)
    lru_cache_add_active_or_unevictable(k, new, vma)
    yield Unlock(ptl(mm.id))
    yield Unlock(page_lock(fault_page))
    page_cache_release(k, fault_page)
    return 0


def do_page_fault(k, mm, addr: int, write: bool):
    """Path: the architecture's fault entry: under mmap_sem for reading, find the VMA that
    holds addr (a concurrent munmap, which takes mmap_sem for writing, has either removed it
    already or waits) and fault in it; VM_FAULT_SIGSEGV when no VMA is there any more."""
    yield Lock(mmap_sem(mm.id), shared=True)
    vma = mm.find_vma(addr)
    ret = VM_FAULT_SIGSEGV if vma is None else (yield from handle_mm_fault(k, vma, addr, write))
    yield Unlock(mmap_sem(mm.id))
    return ret


def handle_mm_fault(k, vma, addr: int, write: bool, user: bool = True):
    """Path: a user fault at addr. pgfault is counted on mm->owner's memcg; a charge that fails
    leaves a memcg OOM recorded in the task (memcg_oom_enable for user faults)."""

    mm = vma.mm
    mem_cgroup_count_vm_event(k, mm, MEM_CGROUP_EVENTS_PGFAULT)
    task = k.current
    if task is not None and user:
        task.memcg_may_oom = True
    try:
        i = addr - vma.start
        pte = int(vma.pte[i])
        if not pte:
            if pte_alloc(k, mm, addr):
                return VM_FAULT_OOM
            if vma.file is not None:
                return (yield from do_file_fault(k, vma, addr, write))
            if k.thp_enabled(vma):
                ret = yield from do_huge_pmd_anonymous_page(k, vma, addr)
                if not ret & VM_FAULT_FALLBACK:
                    return ret
            # no zero page in the model: a read fault allocates like a write fault
            return (yield from do_anonymous_page(k, vma, addr))
        if pte & PTE_SWAP:
            return (yield from do_swap_page(k, vma, addr, write))
        if pte & PTE_MIGRATION:
            # migration_entry_wait: sleep until the migration unlocks the page, then return
            # 0; the task faults again and finds the new pte
            old = pte & PTE_VAL_MASK
            if get_page_unless_zero(k, old):
                yield Lock(page_lock(old))
                yield Unlock(page_lock(old))
                page_cache_release(k, old)
            return 0
        if write and not pte & PTE_WRITE:
            if pte & PTE_HUGE:
                head = (pte & PTE_VAL_MASK) & ~511
                page_cache_get(k, head)
                yield from split_huge_page(k, head)
                page_cache_release(k, head)
                pte = int(vma.pte[i])
            return (yield from do_wp_page(k, vma, addr))
        return 0
    finally:
        if task is not None:
            task.memcg_may_oom = False


def zap_pte_range(k, vma, start: int, end: int):
    """Path: clear the ptes of [start, end) (offsets in the vma) and free what they held.

    Pages are collected like an mmu_gather and released after the page-table lock is dropped
    (free_pages_and_swap_cache): swap cache pages nobody maps lose their slot first, and the
    pages that reach refcount zero are uncharged as one list.
    """

    mm = vma.mm
    gather: list[int] = []
    yield Lock(ptl(mm.id))
    for i in (np.flatnonzero(vma.pte[start:end]) + start).tolist():
        pte = int(vma.pte[i])
        if not pte:
            continue                          # cleared with the rest of its PMD mapping
        if pte & PTE_SWAP and k.profile.zap_swap_batch:
            nr = swap_pte_batch(vma, i, end)
            if nr > 1 and free_swap_batch(k, pte & PTE_VAL_MASK, nr):
                vma.pte[i:i + nr] = 0
                mm.rss_stat[MM_SWAPENTS] -= nr
                continue
        if pte & PTE_HUGE:
            zap_huge_pmd(k, vma, i, gather)
            continue
        vma.pte[i] = 0
        if pte & PTE_PRESENT:
            pfn = pte & PTE_VAL_MASK
            if k.mem_map.flags[pfn] & PG_anon:
                mm.rss_stat[MM_ANONPAGES] -= 1
            else:
                if pte & PTE_DIRTY:
                    set_page_dirty(k, pfn)
                mm.rss_stat[MM_FILEPAGES] -= 1
            page_remove_rmap(k, pfn)
            gather.append(pfn)
        elif pte & PTE_SWAP:
            mm.rss_stat[MM_SWAPENTS] -= 1
            yield from free_swap_and_cache(k, pte & PTE_VAL_MASK)
        elif pte & PTE_MIGRATION:
            # the page is being migrated: its mapping goes now, and remove_migration_ptes will
            # not find this entry to restore (the migration holds the page's references)
            old = pte & PTE_VAL_MASK
            mm.rss_stat[MM_ANONPAGES if k.mem_map.flags[old] & PG_anon else MM_FILEPAGES] -= 1
    yield Unlock(ptl(mm.id))
    yield from free_pages_and_swap_cache(k, gather)


def swap_pte_batch(vma, i: int, end: int) -> int:
    """How many ptes from i hold consecutive entries of the same device, within the page
    table of i (zap_pte_range works a PMD at a time)."""
    base = int(vma.pte[i])
    stop = min(end, i + HPAGE_PMD_NR - (vma.start + i) % HPAGE_PMD_NR)
    want = base + np.arange(stop - i, dtype=np.int64)
    same = vma.pte[i:stop] == want
    return int(stop - i if same.all() else np.argmin(same))


def free_pages_and_swap_cache(k, pfns: list[int]):
    """Path: drop the swap slot of unmapped swap cache pages we can lock, then release all."""

    pm = k.mem_map
    for pfn in pfns:
        if pm.flags[pfn] & PG_swapcache and not pm.mapcount[pfn]:
            if (yield TryLock(page_lock(pfn))):
                try_to_free_swap(k, pfn)
                yield Unlock(page_lock(pfn))
    release_pages(k, pfns)


# Imported once this module's functions exist: these modules and this one call each other.
from .filemap import page_cache_read  # noqa: E402
from .huge_memory import do_huge_pmd_anonymous_page, split_huge_page, zap_huge_pmd  # noqa: E402
from .memcontrol import (  # noqa: E402
    MEM_CGROUP_EVENTS_PGFAULT,
    MEM_CGROUP_EVENTS_PGMAJFAULT,
    mem_cgroup_cancel_charge,
    mem_cgroup_charge,
    mem_cgroup_commit_charge,
    mem_cgroup_count_vm_event,
    mem_cgroup_try_charge,
)
from .page_alloc import alloc_pages_node  # noqa: E402
from .page_writeback import SetPageDirty, set_page_dirty  # noqa: E402
from .pgtable import pte_alloc  # noqa: E402
from .rmap import (  # noqa: E402
    do_page_add_anon_rmap,
    page_add_file_rmap,
    page_add_new_anon_rmap,
    page_remove_rmap,
)
from .shmem import SGP_CACHE, shmem_getpage  # noqa: E402
from .swap import (  # noqa: E402
    get_page_unless_zero,
    lru_cache_add_active_or_unevictable,
    page_cache_get,
    page_cache_release,
    release_pages,
)
from .swap_state import (  # noqa: E402
    delete_from_swap_cache,
    lookup_swap_cache,
    swapin_readahead,
    try_to_free_swap,
)
from .swapfile import (  # noqa: E402
    free_swap_and_cache,
    free_swap_batch,
    page_swapcount,
    swap_free,
    vm_swap_full,
)
