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
    PG_head,
    PG_locked,
    PG_lru,
    PG_mlocked,
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
    if memcg.swap is not None and any(c.usage + nr > c.high for c in memcg.res.chain()
                                      if c.parent is not None):
        return False
    if memcg.swap is not None and any(c.usage > c.high for c in memcg.swap.chain()
                                      if c.parent is not None):
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
        if not _charge_fits(k, memcg, batch):
            break
        over, _ = _charge_counters(k, memcg, batch)
        assert over is None
        refill_stock(k, memcg, batch - 1)
        done += 1
    return done


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
            # near the limit every fault goes the per-page way: find that out before searching
            stock = k.this_cpu_stock()
            if not (stock.cached is memcg and stock.nr_pages > tables) and not _charge_fits(
                    k, memcg, k.profile.charge_batch):
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
