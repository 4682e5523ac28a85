"""Array versions of the two hottest paths: anonymous write faults over a range of ptes, and
zapping a range. Each leaves exactly the state that running the per-page reference path
(memory.handle_mm_fault per address, memory.zap_pte_range) leaves; tests/test_vectorized.py
shows it on random inputs.

They only take the common case in bulk (pte_none, small pages, charges that surely fit; private
anonymous pages with no other user) and hand everything else, page by page, to the reference
path: near a limit, with THP, for swap entries, shared or mlocked pages.
"""

from __future__ import annotations

import numpy as np

from .locking import run_path
from .memcontrol import (
    MEM_CGROUP_EVENTS_PGFAULT,
    MEM_CGROUP_EVENTS_PGPGOUT,
    MEM_CGROUP_STAT_RSS,
    _charge_counters,
    get_mem_cgroup_from_mm,
    mem_cgroup_charge_anon_bulk,
    mem_cgroup_handle_over_high,
    refill_stock,
)
from .memory import anon_vma_prepare, handle_mm_fault, zap_pte_range
from .mm_struct import (
    MM_ANONPAGES,
    PTE_DIRTY,
    PTE_HUGE,
    PTE_PRESENT,
    PTE_VAL_MASK,
    PTE_WRITE,
    VM_LOCKED,
)
from .mm_types import (
    LRU_ACTIVE_ANON,
    LRU_INACTIVE_ANON,
    LRU_UNEVICTABLE,
    NR_LRU_LISTS,
    PG_active,
    PG_anon,
    PG_dirty,
    PG_head,
    PG_locked,
    PG_lru,
    PG_mlocked,
    PG_referenced,
    PG_swapbacked,
    PG_swapcache,
    PG_unevictable,
    PG_writeback,
    page_lru_array,
)
from .page_alloc import find_free_pages, free_pages_bulk, prep_new_pages
from .page_cgroup import PCG_MEM, PCG_MEMSW, PCG_USED
from .pgtable import pte_alloc, pte_alloc_would_charge

VM_FAULT_OOM = 0x0001
#: pages faulted per bulk step at most (the free-page search is sized by it)
BULK_CHUNK = 1 << 16
PTRS_PER_PTE = 512


def _charge_fits(k, memcg, nr: int) -> bool:
    """The charge surely succeeds, and leaves everything at or below memory.high (whose
    enforcement the per-page path does, fault by fault)."""
    if not memcg.res.fits(nr):
        return False
    if k.profile.counter == "page_counter" and (
            any(c.usage + nr > c.high for c in memcg.res.chain() if c.parent is not None)
            or any(c.usage > c.high for c in memcg.swap.chain() if c.parent is not None)):
        return False
    return not k.do_swap_account or memcg.memsw.fits(nr)


def _charge_prefix(k, memcg, n: int) -> int:
    """Charge up to n single pages the way n try_charge calls would, as long as every batch
    charge surely succeeds; return how many were charged."""
    if memcg.is_root():
        return n
    task = k.current
    if task is not None and (task.memdie or task.fatal_signal or task.exiting):
        return 0
    batch = k.profile.charge_batch
    stock = k.this_cpu_stock()
    done = 0
    while done < n:
        if stock.cached is memcg and stock.nr_pages:
            take = min(stock.nr_pages, n - done)
            stock.nr_pages -= take
            done += take
            continue
        if _charge_fits(k, memcg, batch):
            over, _ = _charge_counters(k, memcg, batch)
            assert over is None
            refill_stock(k, memcg, batch - 1)
            done += 1
            continue
        if not _exact_charge_fits(k, memcg, batch):
            break
        # the batch attempt fails at the memcg's own limit (failcnt there), the exact one
        # succeeds: what try_charge does for every page once the margin is below a batch,
        # for as many pages as surely fit
        take = min(n - done, _exact_room(memcg))
        memcg.res.failcnt += take
        over, _ = _charge_counters(k, memcg, take)
        assert over is None
        done += take
    return done


def _exact_room(memcg) -> int:
    """Pages that fit under every limit (and memory.high) up the tree, one by one."""
    room = min(c.limit - c.usage for c in memcg.res.chain())
    if memcg.swap is not None:
        room = min([room] + [c.high - c.usage for c in memcg.res.chain() if c.parent])
    return max(room, 1)


def _exact_charge_fits(k, memcg, batch: int) -> bool:
    """A batch charge fails at the memcg's own level, touching nothing else, and a one-page
    charge then surely succeeds and stays at or below memory.high."""
    if k.do_swap_account:
        return False             # memsw goes first on 6.x: its watermark would see the batch
    res = memcg.res
    if res.usage + batch <= res.limit or not _charge_fits(k, memcg, 1):
        return False
    return True


def _fault_anon_run(k, task, vma, start: int, n: int) -> int:
    """Fault n pte_none pages from offset start in bulk; return how many were done."""
    mm = vma.mm
    memcg = get_mem_cgroup_from_mm(k, mm)
    node = task.node
    saved = k.current
    k.current = task
    try:
        tables = pte_alloc_would_charge(k, mm, vma.start + start)
        if not memcg.is_root():
            # a fault that would reclaim goes the per-page way: find that out before searching
            stock = k.this_cpu_stock()
            batch = k.profile.charge_batch
            if not (stock.cached is memcg and stock.nr_pages > tables) and not _charge_fits(
                    k, memcg, batch + tables) and not (
                    not tables and _exact_charge_fits(k, memcg, batch)):
                return 0
        avail = find_free_pages(k, node, min(n, BULK_CHUNK))
        n = min(n, len(avail))
        if not n:
            return 0
        if tables:
            # handle_mm_fault's pte_alloc of the run's first fault, before its page's charge
            assert pte_alloc(k, mm, vma.start + start) == 0
        n = _charge_prefix(k, memcg, n)
    finally:
        k.current = saved
    if not n:
        return 0
    if not k.profile.kmem_accounting:
        # the tables exist as the per-page faults would leave them, though none is charged
        saved, k.current = k.current, task
        try:
            for addr in range(vma.start + start, vma.start + start + n, PTRS_PER_PTE):
                pte_alloc(k, mm, addr)
            pte_alloc(k, mm, vma.start + start + n - 1)
        finally:
            k.current = saved
    anon_vma_prepare(k, vma)
    pfns = avail[:n]
    prep_new_pages(k, pfns, node)
    mem = k.mem_map
    locked = bool(vma.flags & VM_LOCKED)
    active = k.profile.new_anon_active
    lru_flags = PG_mlocked | PG_unevictable if locked else (PG_active if active else 0)
    mem.flags[pfns] = PG_swapbacked | PG_anon | PG_lru | lru_flags
    mem.mapcount[pfns] = 1
    mem.mapping[pfns] = vma.anon_vma.id
    mem.index[pfns] = np.arange(vma.pgoff + start, vma.pgoff + start + n, dtype=np.uint32)
    k.pc.memcg[pfns] = memcg.id
    k.pc.flags[pfns] = PCG_USED | PCG_MEM | (PCG_MEMSW if k.do_swap_account else 0)
    mem.lru_memcg[pfns] = memcg.id
    first = k.take_lru_seqs(n)
    mem.lru_seq[pfns] = np.arange(first, first + n, dtype=np.uint32)
    lru = LRU_UNEVICTABLE if locked else (LRU_ACTIVE_ANON if active else LRU_INACTIVE_ANON)
    memcg.lruvecs[node].lru_size[lru] += n
    mem_cgroup_charge_anon_bulk(k, memcg, n)
    if mm.owner is not None:
        mm.owner.memcg.events[MEM_CGROUP_EVENTS_PGFAULT] += n
    mm.rss_stat[MM_ANONPAGES] += n
    vma.pte[start:start + n] = PTE_PRESENT | PTE_WRITE | PTE_DIRTY | pfns
    return n


def fault_anon_range(k, task, vma, start: int, count: int) -> int:
    """Write-fault pages [start, start+count) of a private anonymous vma; return the number
    faulted before the first VM_FAULT_OOM (the per-page path's handle_mm_fault loop)."""
    bulk_ok = vma.file is None and not k.thp_enabled(vma)
    i, end = start, start + count
    while i < end:
        if bulk_ok and not vma.pte[i]:
            run = np.flatnonzero(vma.pte[i:end])
            stop = i + (int(run[0]) if len(run) else end - i)
            if k.profile.kmem_accounting:
                # one page-table page's worth at a time: a new one is charged first
                region_end = ((vma.start + i) // PTRS_PER_PTE + 1) * PTRS_PER_PTE - vma.start
                stop = min(stop, region_end)
            i += _fault_anon_run(k, task, vma, i, stop - i)
            if i == stop:
                continue
        ret = run_path(k, handle_mm_fault(k, vma, vma.start + i, True), task=task)
        if ret & VM_FAULT_OOM:
            return i - start
        i += 1
        if task.memcg_nr_pages_over_high:
            mem_cgroup_handle_over_high(k, task)   # the fault's return to user space
    return count


def zap_pte_range_vectorized(k, vma, start: int, end: int):
    """Path: zap_pte_range with the exclusively mapped small anonymous pages done in bulk."""
    mem = k.mem_map
    ptes = vma.pte[start:end]
    present = np.flatnonzero((ptes & PTE_PRESENT != 0) & (ptes & PTE_HUGE == 0))
    pfns = ptes[present] & PTE_VAL_MASK
    fl = mem.flags[pfns]
    simple = ((fl & PG_anon != 0)
              & (fl & (PG_swapcache | PG_mlocked | PG_head | PG_locked | PG_writeback) == 0)
              & (mem.mapcount[pfns] == 1) & (mem.refcount[pfns] == 1))
    pfns = pfns[simple]
    if len(pfns):
        vma.pte[start + present[simple]] = 0
        vma.mm.rss_stat[MM_ANONPAGES] -= len(pfns)
        mem.mapcount[pfns] = 0
        mem.refcount[pfns] = 0
        _del_from_lru_bulk(k, pfns)
        _uncharge_bulk(k, pfns)
        free_pages_bulk(k, pfns)
    yield from zap_pte_range(k, vma, start, end)


def _del_from_lru_bulk(k, pfns: np.ndarray) -> None:
    mem = k.mem_map
    on = pfns[mem.flags[pfns] & PG_lru != 0]
    if not len(on):
        return
    lru = page_lru_array(mem.flags[on])
    nid = on // k.free_area.pages_per_node
    key = (mem.lru_memcg[on].astype(np.int64) * k.nr_nodes + nid) * NR_LRU_LISTS + lru
    keys, counts = np.unique(key, return_counts=True)
    for key, cnt in zip(keys.tolist(), counts.tolist(), strict=True):
        memcg_id, rest = divmod(key, k.nr_nodes * NR_LRU_LISTS)
        node, lst = divmod(rest, NR_LRU_LISTS)
        k.memcg_by_id[memcg_id].lruvecs[node].lru_size[lst] -= cnt
    mem.flags[on] &= ~(PG_lru | PG_active | PG_unevictable)


def _uncharge_bulk(k, pfns: np.ndarray) -> None:
    """mem_cgroup_uncharge_list for small anonymous pages, one batch per memcg."""
    pc = k.pc
    pcf = pc.flags[pfns]
    used = pfns[pcf & PCG_USED != 0]
    pcf = pc.flags[used]
    ids = pc.memcg[used]
    for memcg_id in np.unique(ids).tolist():
        sel = ids == memcg_id
        nr = int(np.count_nonzero(sel))
        nr_mem = int(np.count_nonzero(pcf[sel] & PCG_MEM))
        nr_memsw = int(np.count_nonzero(pcf[sel] & PCG_MEMSW))
        memcg = k.memcg_by_id[memcg_id]
        if not memcg.is_root():
            if nr_mem:
                memcg.res.uncharge(nr_mem)
            if nr_memsw:
                memcg.memsw.uncharge(nr_memsw)
        if k.profile.stats == "charge-type":
            memcg.stat[MEM_CGROUP_STAT_RSS] -= nr
        memcg.events[MEM_CGROUP_EVENTS_PGPGOUT] += nr
        memcg.nr_page_events += nr
    pc.flags[used] = 0


# ------------------------------------------------------------------------------------------
# reclaim: shrink_page_list over isolated, singly mapped private anonymous pages


def _bulk_reclaimable(k, pfns: list[int], may_swap: bool):
    """The pages' (vma, pte index) if shrink_page_list would swap every one out and free it
    with nothing else in the way (cgroup v2: no memsw records), else None."""
    from .locking import tree_lock
    from .mm_struct import VM_LOCKED

    if not (may_swap and k.cgroup_v2 and pfns):
        return None
    mem, pc = k.mem_map, k.pc
    arr = np.asarray(pfns, dtype=np.int64)
    fl = mem.flags[arr]
    need = PG_anon | PG_swapbacked
    bad = PG_swapcache | PG_locked | PG_writeback | PG_head | PG_mlocked | PG_unevictable | PG_lru
    if (np.any(fl & need != need) or np.any(fl & bad) or np.any(mem.mapcount[arr] != 1)
            or np.any(mem.refcount[arr] != 2) or np.any(pc.flags[arr] & PCG_USED == 0)):
        return None
    memcg_ids = np.unique(pc.memcg[arr])
    if len(memcg_ids) != 1 or k.locks.is_held(tree_lock(k.swapper_space.id)):
        return None
    si = k.swap
    if si.nr_slots - si.inuse_pages < len(arr):
        return None
    memcg = k.memcg_by_id[int(memcg_ids[0])]
    while not memcg.online:
        memcg = memcg.parent
    if not memcg.is_root() and not memcg.swap.fits(len(arr)):
        return None
    where = []
    for pfn in pfns:
        anon_vma = k.anon_vmas[int(mem.mapping[pfn])]
        index = int(mem.index[pfn])
        found = None
        for vma in anon_vma.vmas:
            addr = vma.addr_of_index(index)
            if addr is None:
                continue
            pte = int(vma.pte[addr - vma.start])
            if pte & PTE_PRESENT and pte & PTE_VAL_MASK == pfn:
                found = (vma, addr - vma.start)
                break
        if found is None or found[0].flags & VM_LOCKED:
            return None
        where.append(found)
    return arr, memcg, where


def _next_free_slots(k, n: int) -> np.ndarray:
    """The slots n calls of the swap allocator would hand out: the free ones in circular order
    from cluster_next (slot 0 is the header)."""
    si = k.swap
    got: list[np.ndarray] = []
    have = 0
    for a, b in ((si.cluster_next, si.nr_slots), (1, si.cluster_next)):
        step = max(256, 2 * n)
        while a < b and have < n:
            e = min(b, a + step)
            free = np.flatnonzero(si.swap_map[a:e] == 0)[: n - have] + a
            got.append(free)
            have += len(free)
            a = e
            step *= 4
    return np.concatenate(got)[:n] if got else np.zeros(0, dtype=np.int64)


def shrink_page_list_bulk(k, pfns: list[int], may_swap: bool) -> int | None:
    """shrink_page_list for isolated private anonymous pages that each end swapped out and
    freed: the same end state as the per-page path (add_to_swap, try_to_unmap, pageout,
    __remove_mapping, mem_cgroup_uncharge_list, free), in array operations. None when the
    pages are not all that simple: the caller then runs the per-page path."""
    from .memcontrol import MEM_CGROUP_STAT_SWAP, _uncharge_batch
    from .mm_struct import MM_SWAPENTS, swp_entry_to_pte

    found = _bulk_reclaimable(k, pfns, may_swap)
    if found is None:
        return None
    arr, swap_memcg, where = found
    n = len(arr)
    mem, pc, si = k.mem_map, k.pc, k.swap
    # add_to_swap: a slot each, charged to the swap counter and recorded
    slots = _next_free_slots(k, n)
    if not swap_memcg.is_root():
        swap_memcg.swap.charge(n)
    k.swap_cgroup.id[slots] = swap_memcg.id
    swap_memcg.swap_css_refs += n
    swap_memcg.stat[MEM_CGROUP_STAT_SWAP] += n
    # try_to_unmap leaves the pte's reference on the slot; the swap cache's goes with
    # __remove_mapping
    si.swap_map[slots] = 1
    si.inuse_pages += n
    last = int(slots[-1]) + 1
    si.cluster_next = last if last < si.nr_slots else 1
    for (vma, i), slot in zip(where, slots.tolist(), strict=True):
        vma.pte[i] = swp_entry_to_pte(slot)
        rss = vma.mm.rss_stat
        rss[MM_ANONPAGES] -= 1
        rss[MM_SWAPENTS] += 1
    # the pages end unmapped, clean, out of the swap cache, unreferenced: uncharged and freed
    mem.flags[arr] &= ~(PG_referenced | PG_dirty)
    mem.mapcount[arr] = 0
    mem.refcount[arr] = 0
    memcg = k.memcg_by_id[int(pc.memcg[arr[0]])]
    nr_mem = int(np.count_nonzero(pc.flags[arr] & PCG_MEM))
    pc.flags[arr] = 0
    _uncharge_batch(k, memcg, n, nr_mem, 0, n, 0, 0)
    free_pages_bulk(k, arr)
    mem.refcount[arr] = 0
    mem.mapcount[arr] = 0
    return n
