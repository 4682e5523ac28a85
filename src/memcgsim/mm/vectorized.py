"""Array versions of the hottest paths: anonymous write faults over a range of ptes
(fault_anon_range), page-cache reads (do_generic_file_read_vectorized), runs of either at a
cgroup-v2 limit (_LimitRun), zapping a range (zap_pte_range_vectorized) and reclaim of a batch
(shrink_page_list_bulk). Each leaves exactly the state that running the per-page reference path
(memory.handle_mm_fault per address, filemap.do_generic_file_read, memory.zap_pte_range,
vmscan.shrink_page_list) leaves; tests/test_vectorized.py shows it on random inputs.

They only take the common case in bulk (pte_none, small pages, charges that surely fit; private
anonymous pages with no other user) and hand everything else, page by page, to the reference
path: near a limit, with THP, for swap entries, shared or mlocked pages.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .locking import run_path, tree_lock
from .mm_struct import (
    MM_ANONPAGES,
    MM_SWAPENTS,
    PTE_DIRTY,
    PTE_HUGE,
    PTE_MIGRATION,
    PTE_PRESENT,
    PTE_SWAP,
    PTE_VAL_MASK,
    PTE_WRITE,
    VM_LOCKED,
)
from .mm_types import (
    HPAGE_PMD_NR,
    LRU_ACTIVE_ANON,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    LRU_UNEVICTABLE,
    NR_LRU_LISTS,
    PG_active,
    PG_anon,
    PG_buddy,
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
    page_lru,
    page_lru_array,
)
from .page_cgroup import PCG_MEM, PCG_MEMSW, PCG_USED

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
        nb = _batches_that_fit(k, memcg, batch)
        if nb:
            # a batch charge each time the stock runs dry, the pages between served from
            # it: nb batches leave the counters as one charge of nb * batch does (usage,
            # watermarks and protected usage follow the final usage). The first refill
            # may drain another memcg's stock, after its own charge: that one alone.
            nb = 1 if stock.cached is not memcg else min(nb, -(-(n - done) // batch))
            over, _ = _charge_counters(k, memcg, nb * batch)
            assert over is None
            take = min(n - done, nb * batch)
            refill_stock(k, memcg, nb * batch - take)
            done += take
            continue
        if not _exact_charge_fits(k, memcg, batch):
            break
        # the batch attempt fails at one level (failcnt there), the exact one succeeds: what
        # try_charge does for every page once the margin is below a batch, for as many
        # pages as surely go that way
        fail, below = _exact_fail_level(memcg, batch)
        take = min(n - done, _exact_room(memcg, batch, below))
        fail.failcnt += take
        over, _ = _charge_counters(k, memcg, take)
        assert over is None
        # page_counter_try_charge adds the batch to each level below the refusing one
        # before it gets there: the last attempt left their peaks at its usage + batch - 1
        for c in below:
            peak = c.usage - 1 + batch
            c.local_watermark = max(c.local_watermark, peak)
            c.watermark = max(c.watermark, peak)
        done += take
    return done


def _batches_that_fit(k, memcg, batch: int) -> int:
    """How many batch charges in a row surely succeed: _charge_fits(k, memcg, batch) before
    each, usage growing by the batches in between."""
    room = min(c.limit - c.usage for c in memcg.res.chain())
    if k.profile.counter == "page_counter":
        if any(c.usage > c.high for c in memcg.swap.chain() if c.parent is not None):
            return 0
        room = min([room] + [c.high - c.usage for c in memcg.res.chain()
                             if c.parent is not None])
    if k.do_swap_account:
        room = min([room] + [c.limit - c.usage for c in memcg.memsw.chain()])
    return max(0, room // batch)


def _exact_room(memcg, batch: int, below: list) -> int:
    """Pages that fit under every limit (and memory.high) up the tree, one by one, while the
    levels below the one refusing the batch keep taking it."""
    room = min(c.limit - c.usage for c in memcg.res.chain())
    if memcg.swap is not None:
        room = min([room] + [c.high - c.usage for c in memcg.res.chain() if c.parent])
    room = min([room] + [c.limit - c.usage - batch + 1 for c in below])
    return max(room, 1)


def _exact_fail_level(memcg, batch: int):
    """(the lowest level a batch charge goes over, the levels below it), or None if none."""
    below = []
    for c in memcg.res.chain():
        if c.usage + batch > c.limit:
            return c, below
        below.append(c)
    return None


def _exact_charge_fits(k, memcg, batch: int) -> bool:
    """A batch charge fails at one level, touching nothing else but the peaks of the levels
    below it (page_counter; 3.17's res_counter only at the memcg's own level), and a one-page
    charge then surely succeeds and stays at or below memory.high."""
    if k.do_swap_account:
        return False             # memsw goes first on 6.x: its watermark would see the batch
    found = _exact_fail_level(memcg, batch)
    if found is None or not _charge_fits(k, memcg, 1):
        return False
    fail, below = found
    return not below or k.profile.counter == "page_counter"


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
        table_memcg = _charging_memcg(k)
        uncharged_tables = not k.profile.kmem_accounting or table_memcg is None
    finally:
        k.current = saved
    if not n:
        return 0
    if uncharged_tables:
        # the tables exist as the per-page faults would leave them, though none is charged
        # (3.17, or a task of the root memcg): pte_alloc's bookkeeping, in its order
        owner = table_memcg.id if table_memcg is not None else 0
        pgtables = mm.pgtables
        first = vma.start + start
        for addr in (*range(first, first + n, PTRS_PER_PTE), first + n - 1):
            for level, shift in LEVELS:
                key = (level, addr >> shift)
                if key not in pgtables:
                    pgtables[key] = owner
    anon_vma_prepare(k, vma)
    _install_anon_pages(k, task, vma, start, avail[:n], memcg)
    return n


def _install_anon_pages(k, task, vma, start: int, pfns: np.ndarray, memcg,
                        lru_sized: bool = False, new_rss: bool = True) -> None:
    """What do_anonymous_page leaves for pfns (free pages in find_free_pages's order),
    charged already, faulted at start onwards: new pages mapped, committed to memcg and on
    its LRU (lru_sized: the list's size counts them already; new_rss False: they replace
    anonymous pages, which the rss counted already)."""
    n = len(pfns)
    node = task.node
    mm = vma.mm
    at = _as_run(pfns, found=True)
    prep_new_pages(k, at, node)
    mem = k.mem_map
    locked = bool(vma.flags & VM_LOCKED)
    active = k.profile.new_anon_active
    lru_flags = PG_mlocked | PG_unevictable if locked else (PG_active if active else 0)
    mem.flags[at] = PG_swapbacked | PG_anon | PG_lru | lru_flags
    mem.mapcount[at] = 1
    mem.mapping[at] = vma.anon_vma.id
    mem.index[at] = np.arange(vma.pgoff + start, vma.pgoff + start + n, dtype=np.uint32)
    k.pc.memcg[at] = memcg.id
    k.pc.flags[at] = PCG_USED | PCG_MEM | (PCG_MEMSW if k.do_swap_account else 0)
    mem.lru_memcg[at] = memcg.id
    first = k.take_lru_seqs(n)
    seqs = np.arange(first, first + n, dtype=np.uint32)
    mem.lru_seq[at] = seqs
    lru = LRU_UNEVICTABLE if locked else (LRU_ACTIVE_ANON if active else LRU_INACTIVE_ANON)
    k.lru_added_bulk(memcg.id, lru, pfns, seqs)
    if not lru_sized:
        memcg.lruvecs[node].lru_size[lru] += n
    mem_cgroup_charge_statistics_bulk(k, memcg, n, anon=True)
    if mm.owner is not None:
        mm.owner.memcg.events[MEM_CGROUP_EVENTS_PGFAULT] += n
    if new_rss:
        mm.rss_stat[MM_ANONPAGES] += n
    vma.pte[start:start + n] = PTE_PRESENT | PTE_WRITE | PTE_DIRTY | pfns


def _fault_present_run(k, task, vma, start: int, stop: int) -> int:
    """Write faults on present ptes from start, as many in a row as are of one kind: already
    writable (the fault counts, nothing else), write-protected on an anonymous page mapped
    once and not in the swap cache (do_wp_page takes it back: wp_page_reuse), or on one
    mapped more than once, after a fork (do_wp_page copies it: a new page charged and
    mapped, the old one loses this mapping and its reference). Returns how many were done
    (0: not this case, or the copies would reclaim)."""
    if k.locks.held or task.memcg_nr_pages_over_high:
        return 0
    pte = vma.pte[start:stop]
    write = pte[0] & PTE_WRITE
    run = (pte & PTE_PRESENT != 0) & (pte & (PTE_SWAP | PTE_MIGRATION | PTE_HUGE) == 0) & (
        pte & PTE_WRITE == write)
    ends = np.flatnonzero(~run)
    if len(ends):
        # only present ptes hold pfns: a swap entry's slot may lie past mem_map
        pte, run = pte[:int(ends[0])], run[:int(ends[0])]
    mm, mem = vma.mm, k.mem_map
    if not write and len(pte):
        old = pte & PTE_VAL_MASK
        fl = mem.flags[old]
        shared = mem.mapcount[old] > 1
        run &= (fl & PG_anon != 0) & (shared == shared[0])
        if not shared[0]:
            run &= fl & PG_swapcache == 0
    ends = np.flatnonzero(~run)
    n = int(ends[0]) if len(ends) else len(pte)
    if not n:
        return 0
    if not write and shared[0]:
        memcg = get_mem_cgroup_from_mm(k, mm)
        saved = k.current
        k.current = task
        try:
            if not memcg.is_root():
                # a copy that would reclaim goes the per-page way
                stock = k.this_cpu_stock()
                batch = k.profile.charge_batch
                if not (stock.cached is memcg and stock.nr_pages) and not _charge_fits(
                        k, memcg, batch) and not _exact_charge_fits(k, memcg, batch):
                    return 0
            avail = find_free_pages(k, task.node, n)
            n = _charge_prefix(k, memcg, min(n, len(avail)))
        finally:
            k.current = saved
        if not n:
            return 0
        _install_anon_pages(k, task, vma, start, avail[:n], memcg, new_rss=False)
        old = old[:n]
        mem.mapcount[old] -= 1
        mem.refcount[old] -= 1
        return n
    if not write:
        vma.pte[start:start + n] |= PTE_WRITE | PTE_DIRTY
    if mm.owner is not None:
        mm.owner.memcg.events[MEM_CGROUP_EVENTS_PGFAULT] += n
    return n


def _as_run(pfns: np.ndarray, found: bool = False) -> np.ndarray | slice:
    """pfns as a slice of mem_map when they are one ascending run (what find_free_pages finds
    in memory not yet fragmented, what a range faulted in one go maps), else pfns: numpy
    then writes and reads a run's fields as blocks instead of one by one. found: pfns are in
    find_free_pages's order (ascending from the cursor, wrapping once), so the ends tell."""
    n = len(pfns)
    if not n:
        return pfns
    first = int(pfns[0])
    if int(pfns[-1]) - first != n - 1 or (
            not found and n > 2 and not np.all(np.diff(pfns) == 1)):
        return pfns
    return slice(first, first + n)


def _peek_oldest(k, memcg, lru: int, n: int):
    """Up to n of the oldest pages on memcg's list lru, oldest first, as _next_pages would
    take them, without taking them: returns (pfns, take) where take(m) leaves the list's
    cached tail as if _next_pages had taken the first m."""
    key = (memcg.id, lru)
    tail = k.lru_tails.get(key)
    mem = k.mem_map
    got: list[np.ndarray] = []
    for _ in range(2):
        if tail is None or tail.pos >= len(tail.pfns):
            if not lruvec_size(memcg, lru):
                break
            # a fresh look is a valid tail whatever the caller then does: keep it
            tail = k.lru_tails[key] = _look_at_list(k, memcg, lru)
        got, at = [], []
        have, pos = 0, tail.pos
        while have < n and pos < len(tail.pfns):
            end = min(len(tail.pfns), pos + max(2 * (n - have), 64))
            pf = np.array(tail.pfns[pos:end], dtype=np.int64)
            seq = np.array(tail.seqs[pos:end], dtype=np.int64)
            fl = mem.flags[pf]
            ok = np.flatnonzero((fl & PG_lru != 0) & (mem.lru_memcg[pf] == memcg.id)
                                & (page_lru_array(fl) == lru) & (mem.lru_seq[pf] == seq))
            ok = ok[: n - have]
            got.append(pf[ok])
            at.append(ok + pos)
            have += len(ok)
            pos = end
        if have == n:
            break
        # the entries ran out: the pages added since the last look are missing, so look
        # again (the pages found so far are the oldest, at its front)
        tail = None
    if tail is None or not got:
        return np.zeros(0, dtype=np.int64), lambda m: None
    pfns = np.concatenate(got)
    ends = np.concatenate(at)

    def take(m: int) -> None:
        if m:
            tail.pos = int(ends[m - 1]) + 1
            k.lru_tails[key] = tail

    return pfns, take


def _try_to_free_mem_cgroup_pages_counts(k, memcg, lruvec, lru: int) -> int:
    """try_to_free_mem_cgroup_pages(memcg, 1 page) in the case the limit runs below take:
    the priority rounds and SWAP_CLUSTER_MAX chunks of do_try_to_free_pages/shrink_lruvec
    over a leaf memcg whose evictable pages all sit on the one inactive list lru, each of
    which its reclaim frees. Moves the counts only (list size, memory charge); the caller
    frees the pages, oldest first."""
    sc = ScanControl(memcg, SWAP_CLUSTER_MAX, may_swap=k.swap.nr_slots > 0)
    for priority in range(DEF_PRIORITY, -1, -1):
        sc.priority = priority
        nr = get_scan_count(k, memcg, sc, 0)
        start = sc.nr_reclaimed
        left = nr[lru]
        while left:
            chunk = min(left, SWAP_CLUSTER_MAX)
            left -= chunk
            got = min(chunk, lruvec_size(memcg, lru))
            if got:
                lruvec.lru_size[lru] -= got
                memcg.res.uncharge(got)
                sc.nr_reclaimed += got
            if sc.nr_reclaimed - start >= sc.nr_to_reclaim:
                break
        if sc.nr_reclaimed >= sc.nr_to_reclaim:
            break
    return sc.nr_reclaimed


class _LimitRun:
    """A run of n page instantiations (anonymous faults or page-cache reads) by one task
    whose charges may reclaim: the case the bulk paths take, the pages to use, and the
    stepping of the charges.

    The case (else the per-page path runs): cgroup v2 on 6.x, a leaf memcg that is the only
    one at a limit (its ancestors and memory.high have room for the whole run), whose
    evictable pages all sit on the inactive list `lru` and are pages its reclaim frees with
    nothing in the way (the caller checks the oldest `bound` of them). Then each charge is
    the stock, a batch, an exact charge or, with nothing left, a `max` event and a reclaim
    run; the charges and reclaim runs are stepped through on the counters one by one, and
    the caller writes the pages' state at the end: the new pages on the list, the oldest R
    pages of the list (older pages first, then the run's own) freed in that order."""

    def __init__(self, k, task, memcg, lru: int, n: int):
        self.k, self.task, self.memcg, self.lru = k, task, memcg, lru
        self.pfns = self.old = None
        prof = k.profile
        res = memcg.res
        if (not k.cgroup_v2 or prof.charge_loop != "6.x" or k.do_swap_account
                or memcg.is_root() or not memcg.online or memcg.children
                or task.memdie or task.fatal_signal or task.exiting
                or task.memcg_oom is not None or task.memcg_nr_pages_over_high
                or res.usage > res.max or res.high < res.max
                # 6.1's reclaim still obeys the memory.min/low an earlier reclaim from an
                # ancestor left computed on its target
                or (prof.stale_target_protection and (res.emin or res.elow))
                or any(lruvec_size(memcg, other) for other in EVICTABLE if other != lru)):
            return
        batch = prof.charge_batch
        if any(c.max - c.usage <= batch or c.high - c.usage <= batch
               for c in res.chain() if c is not res and c.parent is not None):
            return                      # an ancestor has no room even for one page's batch
        node = self.node = task.node
        want = min(n, BULK_CHUNK)
        fa = k.free_area
        if fa.pages_per_node % HPAGE_PMD_NR == 0:
            # how many find_free_pages(want) would return, without the search: only the
            # pages before the first clash below are looked for
            cand = None
            nr_cand = min(want, fa.nr_free[node])
        else:
            cand = find_free_pages(k, node, want)
            nr_cand = len(cand)
        self.nr_old = lruvec_size(memcg, lru)
        # at most this many pages get reclaimed: usage never passes max, the last reclaim
        # run starts at max and frees at most 94 (a round that starts 31 short of the goal
        # of 32 goes on until it has 32 of its own: at most 31 + 32 more), usage only grows
        # after it, and the charges that raise it are the run's pages, their page tables
        # and at most a batch less one left in the stock
        tables = nr_cand // PTRS_PER_PTE + 4
        bound = max(0, res.usage - res.max + nr_cand + tables + prof.charge_batch - 1 + 94)
        old, self.take_old = _peek_oldest(k, memcg, lru, min(self.nr_old, bound))
        if len(old) != min(self.nr_old, bound):
            return
        # a page reclaimed ahead of the allocator's cursor would be handed out again: stop
        # the run before the first such page
        span = k.free_area.pages_per_node
        lo, cursor = node * span, k.free_area.cursor[node]
        same_node = old[(old >= lo) & (old < lo + span)]
        first_clash = int(np.min((same_node - cursor) % span)) if len(same_node) else span
        if cand is None:
            cand = find_free_pages(k, node, want, window=first_clash) if nr_cand else old[:0]
        else:
            cand = cand[(cand - cursor) % span < first_clash]
        if not len(cand):
            return
        for c in res.chain():
            if c is not res and c.parent is not None and (
                    c.max - c.usage < len(cand) + prof.charge_batch
                    or c.high - c.usage < len(cand) + prof.charge_batch):
                return
        self.pfns, self.old = cand, old
        self.bound = min(self.nr_old + len(cand), bound)

    def charge(self, tables: np.ndarray | None = None) -> tuple[int, int]:
        """Step through the run's charges: (pages charged, pages reclaimed). tables: the
        charge units (sorted) that are page-table pages charged before a page's own (a
        fault's pte_alloc), which the caller has made sure never need a reclaim run that
        finds the list empty."""
        k, memcg, lru = self.k, self.memcg, self.lru
        res = memcg.res
        stock = k.this_cpu_stock()
        batch = k.profile.charge_batch
        lruvec = memcg.lruvecs[self.node]
        nr_tables = 0 if tables is None else len(tables)
        n = len(self.pfns) + nr_tables
        done = reclaimed = 0
        t = 0                      # tables among the first `done` charges
        while done < n:
            if stock.cached is memcg and stock.nr_pages:
                took = min(stock.nr_pages, n - done)
                stock.nr_pages -= took
            elif res.usage + batch <= res.max:
                over, _ = _charge_counters(k, memcg, batch)
                assert over is None
                refill_stock(k, memcg, batch - 1)
                took = 1
            elif res.usage < res.max:
                # the batch attempt fails here (failcnt), the exact one succeeds: each
                # charge until the margin is used up
                took = min(n - done, res.max - res.usage)
                res.failcnt += took
                over, _ = _charge_counters(k, memcg, took)
                assert over is None
            else:
                if not lruvec_size(memcg, lru):
                    assert t == 0 or tables[t - 1] < done, "a fault's charges cut in two"
                    break        # nothing to reclaim: the per-page path takes it from here
                # the batch and the exact attempt fail at memcg's own level, the first they
                # try
                res.failcnt += 2
                memcg_memory_event(memcg, "max")
                reclaimed += _try_to_free_mem_cgroup_pages_counts(k, memcg, lruvec, lru)
                # the retry after reclaim is for the page alone (the batch is gone)
                over, _ = _charge_counters(k, memcg, 1)
                assert over is None
                took = 1
            done += took
            if nr_tables:
                t_end = int(np.searchsorted(tables, done))
                lruvec.lru_size[lru] += took - (t_end - t)
                t = t_end
            else:
                lruvec.lru_size[lru] += took
        self.tables_charged = t
        return done - t, reclaimed

    def victims(self, new: np.ndarray, reclaimed: int) -> tuple[np.ndarray, int]:
        """The pages reclaim took, oldest first, taken off the list; and how many of them
        were on it before the run."""
        nr_old = min(reclaimed, len(self.old))
        assert reclaimed <= len(self.old) or len(self.old) == self.nr_old, \
            "reclaim took more of the older pages than the limit run looked at"
        self.take_old(nr_old)
        victims = np.concatenate([self.old[:nr_old], new[: reclaimed - nr_old]])
        self.k.mem_map.flags[victims] &= ~PG_lru
        # the counts moved on this node's lruvec; the older pages may sit on others
        lruvecs = self.memcg.lruvecs
        span = self.k.free_area.pages_per_node
        for nid, cnt in zip(*np.unique(self.old[:nr_old] // span, return_counts=True),
                            strict=True):
            if int(nid) != self.node:
                lruvecs[int(nid)].lru_size[self.lru] -= int(cnt)
                lruvecs[self.node].lru_size[self.lru] += int(cnt)
        return victims, nr_old

    def count_reclaim(self, reclaimed: int) -> None:
        count_memcg_event(self.memcg, "pgscan_direct", reclaimed)
        count_memcg_event(self.memcg, "pgsteal_direct", reclaimed)


def _missing_tables(k, mm, addr: int, n: int) -> list[tuple[int, tuple]]:
    """The page-table pages faults at addr .. addr+n-1 would allocate, in the order they
    would: (fault offset, pgtables key), level by level (PUD, PMD, PTE) within a fault."""
    out = []
    for order, (level, shift) in enumerate(LEVELS):
        for region in range(addr >> shift, ((addr + n - 1) >> shift) + 1):
            if (level, region) not in mm.pgtables:
                out.append((max(addr, region << shift) - addr, order, (level, region)))
    out.sort()
    return [(f, key) for f, _, key in out]


@contextmanager
def _current(k, task):
    """Run as task (k.current): what the charges, the stock and pte_alloc look at."""
    saved, k.current = k.current, task
    try:
        yield
    finally:
        k.current = saved


def _fault_anon_reclaim_run(k, task, vma, start: int, n: int) -> int:
    """Fault up to n pte_none pages from offset start of a private anonymous vma while the
    charges reclaim (a _LimitRun on the inactive anon list; limit reclaim swaps the oldest
    pages out), with swap room for all of it; the page tables of the faults are charged on
    the way. Returns how many faults were done (0: not this case)."""
    with _current(k, task):
        return _fault_anon_reclaim_steps(k, task, vma, start, n)


def _fault_anon_reclaim_steps(k, task, vma, start: int, n: int) -> int:
    mm = vma.mm
    memcg = get_mem_cgroup_from_mm(k, mm)
    if vma.flags & VM_LOCKED or k.locks.is_held(tree_lock(k.swapper_space.id)):
        return 0
    if not k.profile.kmem_accounting or _charging_memcg(k) is not memcg:
        return 0
    run = _LimitRun(k, task, memcg, LRU_INACTIVE_ANON, n)
    if run.pfns is None:
        return 0
    tables = _missing_tables(k, mm, vma.start + start, len(run.pfns))
    if len(tables) and run.nr_old <= run.bound:
        # a reclaim run could find the list empty between a fault's table and its page:
        # the faults up to the first new table only
        if not tables[0][0]:
            return 0
        run.pfns = run.pfns[: tables[0][0]]
        tables = []
    units = np.array([f + j for j, (f, _) in enumerate(tables)], dtype=np.int64)
    old = run.old
    if len(old) and not (_simple_anon(k, old, memcg.id)
                         and np.all(k.mem_map.refcount[old] == 1)):
        return 0
    si = k.swap
    if si.nr_slots - 1 - si.inuse_pages <= run.bound or not swap_slots_cache_steady(k,
                                                                                   run.bound):
        return 0
    for c in memcg.swap.chain():
        if c.parent is not None and (c.max - c.usage < run.bound
                                     or c.high - c.usage < run.bound):
            return 0
    groups = _anon_pte_groups(k, old)
    if groups is None:
        return 0
    done, reclaimed = run.charge(units if len(tables) else None)
    if not done:
        return 0
    for _, key in tables[: run.tables_charged]:
        # pte_alloc's bookkeeping for each table page charged (memcg_kmem_charge_page)
        mm.pgtables[key] = memcg.id
        memcg.kmem_stat["pagetables"] += 1
    anon_vma_prepare(k, vma)
    new = run.pfns[:done]
    _install_anon_pages(k, task, vma, start, new, memcg, lru_sized=True)
    if reclaimed:
        victims, nr_old = run.victims(new, reclaimed)
        victim_groups = []
        for g_vma, where, idx in groups:
            sel = where < nr_old
            if np.any(sel):
                victim_groups.append((g_vma, where[sel], idx[sel]))
        if reclaimed > nr_old:
            victim_groups.append((vma, np.arange(nr_old, reclaimed),
                                  np.arange(start, start + reclaimed - nr_old)))
        _swap_out_and_free(k, victims, memcg, victim_groups, mem_uncharged=True)
        run.count_reclaim(reclaimed)
    return done


def _first_used(pte: np.ndarray, start: int, stop: int) -> int:
    """The first offset in [start, stop) whose pte is not none, else stop."""
    used = np.flatnonzero(pte[start:stop])
    return start + int(used[0]) if len(used) else stop


def fault_anon_range(k, task, vma, start: int, count: int) -> int:
    """Write-fault pages [start, start+count) of a private anonymous vma; return the number
    faulted before the first VM_FAULT_OOM (the per-page path's handle_mm_fault loop)."""
    bulk_ok = vma.file is None and not k.thp_enabled(vma)
    i, end = start, start + count
    per_page_until = i
    while i < end:
        if bulk_ok and not vma.pte[i]:
            limit = region_stop = min(end, i + BULK_CHUNK)
            if k.profile.kmem_accounting:
                # one page-table page's worth at a time: a new one is charged first
                region_end = ((vma.start + i) // PTRS_PER_PTE + 1) * PTRS_PER_PTE - vma.start
                region_stop = min(limit, region_end)
            # the ptes are looked at as far as they are needed: the region, and up to
            # limit only for a reclaim run
            stop = region_stop = _first_used(vma.pte, i, region_stop)
            if stop < limit and k.swap.nr_slots and not vma.pte[stop]:
                stop = _first_used(vma.pte, stop, limit)
            i += _fault_anon_run(k, task, vma, i, region_stop - i)
            if i < stop and k.swap.nr_slots:
                i += _fault_anon_reclaim_run(k, task, vma, i, stop - i)
            if i == stop or i == region_stop:
                continue
        elif bulk_ok and i >= per_page_until and vma.pte[i] & PTE_PRESENT:
            done = _fault_present_run(k, task, vma, i, min(end, i + BULK_CHUNK))
            i += done
            if done:
                continue
            # not the bulk case: a few pages the per-page way before asking again
            per_page_until = i + SWAP_CLUSTER_MAX
        ret = run_path(k, handle_mm_fault(k, vma, vma.start + i, True), task=task)
        if ret & VM_FAULT_OOM:
            return i - start
        i += 1
        if task.memdie:
            return i - start        # the OOM killer chose it: it dies on its return to user space
        if task.memcg_nr_pages_over_high:
            mem_cgroup_handle_over_high(k, task)   # the fault's return to user space
    return count


def do_generic_file_read_vectorized(k, task, mapping, start: int, count: int):
    """Path: read(2) of pages [start, start+count) of a page-cache file (do_generic_file_read),
    with runs of pages not in the cache read in bulk where _read_reclaim_run takes them."""

    node = task.node
    i, end = start, start + count
    per_page_until = i
    while i < end:
        if i >= per_page_until:
            stop = min(end, i + BULK_CHUNK)
            window = mapping.i_pages[i:min(stop, len(mapping.i_pages))]
            if len(window) and window[0] & PTE_PRESENT:
                # a run of cached pages: reading them allocates nothing, so they stay cached
                # and are read the per-page way without looking again
                gaps = np.flatnonzero(window & PTE_PRESENT == 0)
                per_page_until = i + (int(gaps[0]) if len(gaps) else len(window))
                stop = i
            else:
                cached = np.flatnonzero(window)
                stop = i + int(cached[0]) if len(cached) else stop
            if stop > i:
                done = _read_reclaim_run(k, task, mapping, i, stop - i)
                i += done
                if i == stop:
                    continue
                if not done:
                    # not the bulk case: a few pages the per-page way before asking again
                    per_page_until = i + SWAP_CLUSTER_MAX
        ret = yield from do_generic_file_read(k, mapping, i, 1, node)
        if ret < 0:
            return ret
        i += 1
    return count


def _read_reclaim_run(k, task, mapping, start: int, n: int) -> int:
    """Read up to n pages not in the cache from index start: a _LimitRun on the inactive file
    list, whose reclaim drops the oldest clean, unmapped cache pages. Returns how many pages
    were read (0: not this case)."""
    with _current(k, task):
        return _read_reclaim_steps(k, task, mapping, start, n)


def _read_reclaim_steps(k, task, mapping, start: int, n: int) -> int:
    if task.mm is None or mapping.shmem or k.locks.is_held(tree_lock(mapping.id)):
        return 0
    memcg = get_mem_cgroup_from_mm(k, task.mm)
    run = _LimitRun(k, task, memcg, LRU_INACTIVE_FILE, n)
    if run.pfns is None:
        return 0
    mem, pc = k.mem_map, k.pc
    old = run.old
    if len(old):
        fl = mem.flags[old]
        bad = (PG_anon | PG_swapbacked | PG_dirty | PG_writeback | PG_locked | PG_head
               | PG_mlocked | PG_unevictable | PG_swapcache | PG_active)
        owners = np.unique(mem.mapping[old])
        if (np.any(fl & bad) or np.any(mem.mapcount[old]) or np.any(mem.refcount[old] != 1)
                or np.any(pc.memcg[old] != memcg.id)
                or np.any(pc.flags[old] & (PCG_USED | PCG_MEM) != PCG_USED | PCG_MEM)
                or any(k.mappings.get(int(m)) is None or k.mappings[int(m)].shmem
                       or k.locks.is_held(tree_lock(int(m))) for m in owners.tolist())):
            return 0
    done, reclaimed = run.charge()
    if not done:
        return 0
    new = run.pfns[:done]
    # find_or_create_page and add_to_page_cache_lru, then mark_page_accessed and the reader's
    # put: each page cached, on the inactive list, referenced once, held by the cache alone
    prep_new_pages(k, new, run.node)
    mem.flags[new] = PG_lru | PG_referenced
    mem.refcount[new] = 1
    mem.mapping[new] = mapping.id
    index = np.arange(start, start + done, dtype=np.int64)
    mem.index[new] = index
    pc.memcg[new] = memcg.id
    pc.flags[new] = PCG_USED | PCG_MEM
    mem.lru_memcg[new] = memcg.id
    first = k.take_lru_seqs(done)
    seqs = np.arange(first, first + done, dtype=np.uint32)
    mem.lru_seq[new] = seqs
    k.lru_added_bulk(memcg.id, LRU_INACTIVE_FILE, new, seqs)
    mem_cgroup_charge_statistics_bulk(k, memcg, done, anon=False)
    mapping.ensure(start + done)
    mapping.i_pages[start:start + done] = PTE_PRESENT | new
    mapping.nrpages += done
    if reclaimed:
        _free_clean_cache_victims(k, memcg, run.victims(new, reclaimed)[0])
        run.count_reclaim(reclaimed)
    return done


def _free_clean_cache_victims(k, memcg, victims: np.ndarray) -> None:
    """The end of a limit run's reclaim of clean, unmapped cache pages of memcg, in LRU
    order: __remove_mapping takes each out of its file's cache, then the list is uncharged
    and freed."""
    mem = k.mem_map
    owner = mem.mapping[victims].astype(np.int64)
    for m_id in np.unique(owner).tolist():
        sel = victims[owner == m_id]
        m = k.mappings[m_id]
        m.i_pages[mem.index[sel].astype(np.int64)] = 0
        m.nrpages -= len(sel)
    mem.mapping[victims] = 0
    mem.flags[victims] &= ~PG_referenced
    mem.refcount[victims] = 0
    k.pc.flags[victims] = 0
    _uncharge_batch(k, memcg, len(victims), 0, 0, 0, len(victims), 0)
    free_pages_bulk(k, victims)


def zap_pte_range_vectorized(k, vma, start: int, end: int):
    """Path: zap_pte_range with the exclusively mapped small anonymous pages done in bulk."""
    mem = k.mem_map
    ptes = vma.pte[start:end]
    present = (ptes & (PTE_PRESENT | PTE_HUGE)) == PTE_PRESENT
    # at: the offsets (from start) of the ptes zapped here, None for all of them
    at = None if present.all() else np.flatnonzero(present)
    pfns = ptes & PTE_VAL_MASK if at is None else ptes[at] & PTE_VAL_MASK
    run = _as_run(pfns)
    fl = mem.flags[run]
    simple = (((fl & (PG_anon | PG_swapcache | PG_mlocked | PG_head | PG_locked
                      | PG_writeback)) == PG_anon)
              & (mem.mapcount[run] == 1) & (mem.refcount[run] == 1))
    if not simple.all():
        keep = np.flatnonzero(simple)
        at = keep if at is None else at[keep]
        pfns, fl = pfns[keep], fl[keep]
        run = _as_run(pfns)
    if len(pfns):
        if at is None:
            vma.pte[start:end] = 0
        else:
            vma.pte[start + at] = 0
        vma.mm.rss_stat[MM_ANONPAGES] -= len(pfns)
        mem.mapcount[run] = 0
        mem.refcount[run] = 0
        _del_from_lru_bulk(k, run, fl)
        _uncharge_bulk(k, run)
        free_pages_bulk(k, run)
    yield from zap_pte_range(k, vma, start, end)


def _subset(pfns: np.ndarray | slice, sel: np.ndarray) -> np.ndarray:
    """pfns[sel] for an array or a run (slice) of pfns."""
    return sel + pfns.start if isinstance(pfns, slice) else pfns[sel]


def _del_from_lru_bulk(k, pfns: np.ndarray | slice, flags: np.ndarray | None = None) -> None:
    """del_page_from_lru_list for the pages on a list (flags: theirs, read already): each
    lruvec's list size drops by its pages, and the pages lose their LRU flags."""
    mem = k.mem_map
    fl = mem.flags[pfns] if flags is None else flags
    on_lru = fl & PG_lru != 0
    if on_lru.all() and len(fl):
        on = pfns
    else:
        sel = np.flatnonzero(on_lru)
        if not len(sel):
            return
        on, fl = _subset(pfns, sel), fl[sel]
    lru_memcg = mem.lru_memcg[on]
    ppn = k.free_area.pages_per_node
    if isinstance(on, slice):
        one_node = on.start // ppn == (on.stop - 1) // ppn
        nid = on.start // ppn if one_node else np.arange(on.start, on.stop) // ppn
    else:
        one_node = k.nr_nodes == 1
        nid = 0 if one_node else on // ppn
    if one_node and np.all(fl == fl[0]) and np.all(lru_memcg == lru_memcg[0]):
        # one list of one lruvec (the usual munmap)
        counts = [((int(lru_memcg[0]) * k.nr_nodes + nid) * NR_LRU_LISTS
                   + page_lru(int(fl[0])), len(fl))]
    else:
        key = ((lru_memcg.astype(np.int64) * k.nr_nodes + nid) * NR_LRU_LISTS
               + page_lru_array(fl))
        counts = np.bincount(key)
        keys = np.flatnonzero(counts)
        counts = zip(keys.tolist(), counts[keys].tolist(), strict=True)
    for key, cnt in counts:
        memcg_id, rest = divmod(key, k.nr_nodes * NR_LRU_LISTS)
        node, lst = divmod(rest, NR_LRU_LISTS)
        k.memcg_by_id[memcg_id].lruvecs[node].lru_size[lst] -= cnt
    mem.flags[on] &= ~(PG_lru | PG_active | PG_unevictable)


#: which page_cgroup flag combinations (PCG_USED | PCG_MEM | PCG_MEMSW) hold each charge
_PCG_COMBOS = np.arange(8)
_HOLDS_MEM = (_PCG_COMBOS & PCG_MEM) != 0
_HOLDS_MEMSW = (_PCG_COMBOS & PCG_MEMSW) != 0


def _uncharge_bulk(k, pfns: np.ndarray | slice, anon: bool = True) -> None:
    """mem_cgroup_uncharge_list for small pages, anonymous or (anon False) page cache, one
    batch per memcg."""
    pc = k.pc
    pcf = pc.flags[pfns]
    used_mask = pcf & PCG_USED != 0
    if used_mask.all():
        used = pfns
    else:
        sel = np.flatnonzero(used_mask)
        used, pcf = _subset(pfns, sel), pcf[sel]
    ids = pc.memcg[used]
    if not len(ids):
        batches = []
    elif np.all(ids == ids[0]):
        batches = [(int(ids[0]), len(ids), int(np.count_nonzero(pcf & PCG_MEM)),
                    int(np.count_nonzero(pcf & PCG_MEMSW)))]
    else:
        # pages per (memcg, flag combination), without sorting: one row per memcg id
        combos = np.bincount(ids.astype(np.int64) * 8 + (pcf & 7),
                             minlength=8 * (int(ids.max()) + 1)).reshape(-1, 8)
        nr = combos.sum(axis=1)
        nr_mem = combos[:, _HOLDS_MEM].sum(axis=1)
        nr_memsw = combos[:, _HOLDS_MEMSW].sum(axis=1)
        present = np.flatnonzero(nr)
        batches = zip(present.tolist(), nr[present].tolist(), nr_mem[present].tolist(),
                      nr_memsw[present].tolist(), strict=True)
    for memcg_id, nr, nr_mem, nr_memsw in batches:
        memcg = k.memcg_by_id[memcg_id]
        if not memcg.is_root():
            if nr_mem:
                memcg.res.uncharge(nr_mem)
            if nr_memsw:
                memcg.memsw.uncharge(nr_memsw)
        if k.profile.stats == "charge-type":
            memcg.stat[MEM_CGROUP_STAT_RSS if anon else MEM_CGROUP_STAT_CACHE] -= nr
        memcg.events[MEM_CGROUP_EVENTS_PGPGOUT] += nr
        memcg.nr_page_events += nr
    pc.flags[used] = 0


def invalidate_mapping_pages_bulk(k, mapping) -> int | None:
    """invalidate_mapping_pages (drop_caches) of a file in array operations: its clean,
    unmapped cached pages that the cache alone holds are taken out, taken off their lists,
    uncharged and freed; the others stay, as the per-page path leaves them. None when a page
    to drop is held by someone else, huge or mlocked: the per-page path runs then."""
    if k.locks.held or k.locks.readers:
        return None
    mem = k.mem_map
    idx = np.flatnonzero(mapping.i_pages & PTE_PRESENT)
    pfns = (mapping.i_pages[idx] & PTE_VAL_MASK).astype(np.int64)
    fl = mem.flags[pfns]
    drop = (fl & (PG_dirty | PG_writeback) == 0) & (mem.mapcount[pfns] == 0)
    pfns, fl, idx = pfns[drop], fl[drop], idx[drop]
    if np.any(mem.refcount[pfns] != 1) or np.any(fl & (PG_head | PG_mlocked | PG_swapcache)):
        return None
    mapping.i_pages[idx] = 0
    mapping.nrpages -= len(pfns)
    mem.mapping[pfns] = 0
    mem.refcount[pfns] = 0
    # the cache's reference was the last: __page_cache_release, then the free
    _del_from_lru_bulk(k, pfns, fl)
    _uncharge_bulk(k, pfns, anon=False)
    free_pages_bulk(k, pfns)
    return len(pfns)


# ------------------------------------------------------------------------------------------
# reclaim: shrink_page_list over isolated, singly mapped private anonymous pages


def _simple_anon(k, arr: np.ndarray, memcg_id: int | None = None) -> bool:
    """Every page is a private anonymous page on an LRU list (or isolated from one, refs
    says which refcount), mapped once, charged, and in nobody else's hands: reclaim swaps it
    out and frees it with nothing in the way."""
    mem, pc = k.mem_map, k.pc
    fl = mem.flags[arr]
    need = PG_anon | PG_swapbacked
    bad = PG_swapcache | PG_locked | PG_writeback | PG_head | PG_mlocked | PG_unevictable
    ok = (np.all(fl & need == need) and not np.any(fl & bad)
          and np.all(mem.mapcount[arr] == 1) and np.all(pc.flags[arr] & PCG_USED != 0))
    if ok and memcg_id is not None:
        ok = bool(np.all(pc.memcg[arr] == memcg_id) and np.all(pc.flags[arr] & PCG_MEM != 0))
    return bool(ok)


def _anon_pte_groups(k, arr: np.ndarray):
    """Where each page is mapped, found as page_referenced/try_to_unmap would walk its
    anon_vma (the first of its VMAs whose pte maps it): [(vma, positions in arr, pte
    indices)], or None if a page is not found or sits in an mlocked VMA."""
    mem = k.mem_map
    mapping = mem.mapping[arr].astype(np.int64)
    index = mem.index[arr].astype(np.int64)
    groups = []
    for av_id in np.unique(mapping).tolist():
        left = np.flatnonzero(mapping == av_id)
        anon_vma = k.anon_vmas.get(av_id)
        if anon_vma is None:
            return None
        for vma in anon_vma.vmas:
            if not len(left):
                break
            off = index[left] - vma.pgoff
            inside = (off >= 0) & (off < vma.npages)
            cand, off = left[inside], off[inside]
            pte = vma.pte[off].astype(np.int64)
            hit = (pte & PTE_PRESENT != 0) & (pte & PTE_VAL_MASK == arr[cand])
            if np.any(hit):
                if vma.flags & VM_LOCKED:
                    return None
                groups.append((vma, cand[hit], off[hit]))
                left = np.setdiff1d(left, cand[hit], assume_unique=True)
        if len(left):
            return None
    return groups


def _bulk_reclaimable(k, pfns: list[int], may_swap: bool):
    """The pages' (memcg, pte groups) if shrink_page_list would swap every one out and free
    it with nothing else in the way (cgroup v2: no memsw records), else None."""

    if not (may_swap and k.cgroup_v2 and pfns):
        return None
    mem, pc = k.mem_map, k.pc
    arr = np.asarray(pfns, dtype=np.int64)
    if (not _simple_anon(k, arr) or np.any(mem.flags[arr] & PG_lru)
            or np.any(mem.refcount[arr] != 2)):
        return None
    memcg_ids = np.unique(pc.memcg[arr])
    if len(memcg_ids) != 1 or k.locks.is_held(tree_lock(k.swapper_space.id)):
        return None
    si = k.swap
    if si.nr_slots - si.inuse_pages < len(arr) or not swap_slots_cache_steady(k, len(arr)):
        return None
    memcg = k.memcg_by_id[int(memcg_ids[0])]
    while not memcg.online:
        memcg = memcg.parent
    if not memcg.is_root() and not memcg.swap.fits(len(arr)):
        return None
    groups = _anon_pte_groups(k, arr)
    if groups is None:
        return None
    return arr, memcg, groups


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
    pages are not all that simple: the caller then runs the per-page path. Clean, unmapped
    page-cache pages are dropped the same way (_drop_clean_cache)."""
    if k.mem_map.flags[pfns[0]] & PG_anon:
        found = _bulk_reclaimable(k, pfns, may_swap)
        if found is None:
            return None
        arr, swap_memcg, groups = found
        _swap_out_and_free(k, arr, swap_memcg, groups, mem_uncharged=False)
        return len(arr)
    return _drop_clean_cache(k, pfns)


def _drop_clean_cache(k, pfns: list[int]) -> int | None:
    """shrink_page_list for isolated page-cache pages of regular files that are clean,
    unmapped, unlocked and referenced by the cache and the isolation alone, all charged to
    one memcg: each is taken out of its file (__remove_mapping), uncharged and freed. None
    when the pages are not all that: the caller then runs the per-page path."""
    mem, pc = k.mem_map, k.pc
    arr = np.asarray(pfns, dtype=np.int64)
    bad = (PG_anon | PG_swapbacked | PG_swapcache | PG_dirty | PG_writeback | PG_locked
           | PG_head | PG_mlocked | PG_unevictable | PG_lru | PG_buddy)
    memcg_ids = pc.memcg[arr]
    if (np.any(mem.flags[arr] & bad) or np.any(mem.mapcount[arr])
            or np.any(mem.refcount[arr] != 2) or np.any(pc.flags[arr] & PCG_USED == 0)
            or np.any(memcg_ids != memcg_ids[0])):
        return None
    ids = mem.mapping[arr]
    owners = []
    for mapping_id in np.unique(ids).tolist():
        mapping = k.mappings.get(mapping_id)
        if (not mapping_id or mapping is None or mapping.shmem
                or k.locks.is_held(tree_lock(mapping_id))):
            return None
        owners.append((mapping_id, mapping))
    # TestClearPageReferenced; __remove_mapping freezes the two references and deletes the
    # page from its file (__delete_from_page_cache); then the batch's uncharge and free
    mem.flags[arr] &= ~PG_referenced
    mem.refcount[arr] = 0
    index = mem.index[arr].astype(np.int64)
    for mapping_id, mapping in owners:
        mine = ids == mapping_id
        mapping.i_pages[index[mine]] = 0
        mapping.nrpages -= int(np.count_nonzero(mine))
    n = len(arr)
    pcf = pc.flags[arr]
    nr_mem = int(np.count_nonzero(pcf & PCG_MEM))
    nr_memsw = int(np.count_nonzero(pcf & PCG_MEMSW))
    pc.flags[arr] = 0
    _uncharge_batch(k, k.memcg_by_id[int(memcg_ids[0])], n, nr_mem, nr_memsw, 0, n, 0)
    free_pages_bulk(k, arr)
    return n


def _swap_out_and_free(k, arr: np.ndarray, swap_memcg, groups, mem_uncharged: bool) -> None:
    """The end of shrink_page_list for isolated simple anonymous pages, in LRU order: each
    gets the next swap slot, its pte becomes the swap entry, and it is uncharged (its memory
    charge already, if mem_uncharged) and freed."""

    n = len(arr)
    mem, pc, si = k.mem_map, k.pc, k.swap
    # add_to_swap: a slot each, charged to the swap counter and recorded (the slot caches
    # switch as the first allocation's check switches them: swap_slots_cache_steady)
    check_cache_active(k)
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
    for vma, where, idx in groups:
        vma.pte[idx] = PTE_SWAP | slots[where]
        rss = vma.mm.rss_stat
        rss[MM_ANONPAGES] -= len(where)
        rss[MM_SWAPENTS] += len(where)
    # the pages end unmapped, clean, out of the swap cache, unreferenced: uncharged and freed
    mem.flags[arr] &= ~(PG_referenced | PG_dirty)
    mem.mapcount[arr] = 0
    mem.refcount[arr] = 0
    memcg = k.memcg_by_id[int(pc.memcg[arr[0]])]
    nr_mem = 0 if mem_uncharged else int(np.count_nonzero(pc.flags[arr] & PCG_MEM))
    pc.flags[arr] = 0
    _uncharge_batch(k, memcg, n, nr_mem, 0, n, 0, 0)
    free_pages_bulk(k, arr)


# Imported once this module's functions exist: these modules and this one call each other.
from .filemap import do_generic_file_read  # noqa: E402
from .memcontrol import (  # noqa: E402
    MEM_CGROUP_EVENTS_PGFAULT,
    MEM_CGROUP_EVENTS_PGPGOUT,
    MEM_CGROUP_STAT_CACHE,
    MEM_CGROUP_STAT_RSS,
    MEM_CGROUP_STAT_SWAP,
    _charge_counters,
    _uncharge_batch,
    count_memcg_event,
    get_mem_cgroup_from_mm,
    mem_cgroup_charge_statistics_bulk,
    mem_cgroup_handle_over_high,
    memcg_memory_event,
    refill_stock,
)
from .memory import anon_vma_prepare, handle_mm_fault, zap_pte_range  # noqa: E402
from .page_alloc import find_free_pages, free_pages_bulk, prep_new_pages  # noqa: E402
from .pgtable import LEVELS, _charging_memcg, pte_alloc, pte_alloc_would_charge  # noqa: E402
from .swapfile import check_cache_active, swap_slots_cache_steady  # noqa: E402
from .vmscan import (  # noqa: E402
    DEF_PRIORITY,
    EVICTABLE,
    SWAP_CLUSTER_MAX,
    ScanControl,
    _look_at_list,
    get_scan_count,
    lruvec_size,
)
