"""Array versions of the page-cache write and writeback paths: write(2) of a page-cache file
(generic_perform_write_vectorized) and sync's write_one_page of every dirty page
(sync_vectorized). Each leaves exactly the state the per-page reference path
(filemap.generic_perform_write, page_writeback.write_one_page) leaves;
tests/test_vectorized_write.py shows it on random inputs.

They take the common case in bulk (holes in the cache whose charges surely fit, or at a v2 leaf
limit whose reclaim drops the oldest clean cache; dirty pages nobody holds locked or under
writeback) and hand everything else, page by page, to the reference path: overwrites of cached
pages, charges that would reclaim otherwise, a task being killed, injected bugs.
"""

from __future__ import annotations

import numpy as np

from .filemap import generic_perform_write
from .locking import run_path, tree_lock
from .memcontrol import (
    get_mem_cgroup_from_mm,
    mem_cgroup_charge_statistics_bulk,
)
from .mm_struct import PTE_PRESENT, PTE_VAL_MASK
from .mm_types import (
    LRU_INACTIVE_FILE,
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
    PG_tail,
    PG_unevictable,
    PG_writeback,
)
from .page_alloc import find_free_pages, prep_new_pages
from .page_cgroup import PCG_MEM, PCG_MEMSW, PCG_USED
from .page_writeback import write_one_page
from .vectorized import (
    BULK_CHUNK,
    _as_run,
    _charge_fits,
    _charge_prefix,
    _exact_charge_fits,
    _free_clean_cache_victims,
    _LimitRun,
)
from .vmscan import SWAP_CLUSTER_MAX, lruvec_size

#: calls of the bulk steps, for the tests to see that they ran
calls = {"write": 0, "write_limit": 0, "sync": 0}


def generic_perform_write_vectorized(k, task, mapping, start: int, nr: int):
    """Path: write(2) of nr whole pages at index start of a page-cache file
    (generic_perform_write), with runs of holes written in bulk where _write_run or
    _write_reclaim_run takes them."""
    node = task.node
    i, end = start, start + nr
    per_page_until = i
    while i < end:
        if i >= per_page_until:
            stop = min(end, i + BULK_CHUNK)
            window = mapping.i_pages[i:min(stop, len(mapping.i_pages))]
            cached = np.flatnonzero(window)
            if len(cached) and not cached[0]:
                # an overwrite of cached pages allocates nothing: those stay cached, and are
                # written the per-page way without looking again
                holes = np.flatnonzero(window == 0)
                per_page_until = i + (int(holes[0]) if len(holes) else len(window))
            else:
                stop = i + int(cached[0]) if len(cached) else stop
                done = _write_run(k, task, mapping, i, stop - i)
                if i + done < stop:
                    done += _write_reclaim_run(k, task, mapping, i + done, stop - i - done)
                i += done
                if i == stop:
                    continue
                if not done:
                    # not the bulk case: a few pages the per-page way before asking again
                    per_page_until = i + SWAP_CLUSTER_MAX
        ret = yield from generic_perform_write(k, mapping, i, 1, node)
        if ret < 0:
            return ret
        i += 1
    return nr


def _write_usable(k, task, mapping) -> bool:
    """Nothing about the writer or the file keeps the bulk paths off."""
    return not (task.mm is None or mapping.shmem or k.inject or k.trace is not None
                or k.locks.is_held(tree_lock(mapping.id)))


def _write_run(k, task, mapping, start: int, n: int) -> int:
    """Write up to n pages that are holes in the cache from index start, as long as each
    page's charge surely fits without reclaim; return how many were written."""
    if not _write_usable(k, task, mapping):
        return 0
    memcg = get_mem_cgroup_from_mm(k, task.mm)
    if not memcg.is_root():
        # a charge that would reclaim goes the per-page way: find that out before searching
        stock = k.this_cpu_stock()
        if not (stock.cached is memcg and stock.nr_pages) and not _charge_fits(
                k, memcg, k.profile.charge_batch) and not _exact_charge_fits(
                k, memcg, k.profile.charge_batch):
            return 0
    node = task.node
    avail = find_free_pages(k, node, min(n, BULK_CHUNK))
    if not len(avail):
        return 0
    # find_or_create_page allocates before it charges; a charge that fits neither reclaims
    # nor fails, so the allocations of the run are those of its pages
    done = _charge_prefix(k, memcg, len(avail))
    if not done:
        return 0
    calls["write"] += 1
    new = avail[:done]
    _install_dirty_cache_pages(k, mapping, start, new, memcg, node)
    memcg.lruvecs[node].lru_size[LRU_INACTIVE_FILE] += done
    return done


def _install_dirty_cache_pages(k, mapping, start: int, pfns: np.ndarray, memcg,
                               node: int) -> None:
    """What find_or_create_page (alloc, add_to_page_cache_lru with its charge) and the write's
    set_page_dirty, unlock, mark_page_accessed and put leave for new pages pfns (free pages
    in find_free_pages's order, charged already) at index start onwards: cached, dirty, on
    memcg's inactive file list, held by the cache alone. The list's size is the caller's."""
    n = len(pfns)
    mem, pc = k.mem_map, k.pc
    at = _as_run(pfns, found=True)
    prep_new_pages(k, at, node)
    # mark_page_accessed of a new inactive page only sets PG_referenced
    accessed = PG_referenced if k.profile.write_marks_accessed else 0
    mem.flags[at] = PG_lru | PG_dirty | accessed
    mem.mapping[at] = mapping.id
    mem.index[at] = np.arange(start, start + n, dtype=np.int64)
    pc.memcg[at] = memcg.id
    pc.flags[at] = PCG_USED | PCG_MEM | (PCG_MEMSW if k.do_swap_account else 0)
    mem.lru_memcg[at] = memcg.id
    first = k.take_lru_seqs(n)
    seqs = np.arange(first, first + n, dtype=np.uint32)
    mem.lru_seq[at] = seqs
    k.lru_added_bulk(memcg.id, LRU_INACTIVE_FILE, pfns, seqs)
    # 3.17 commits after the insertion: the page is page cache by then (CACHE, not RSS)
    mem_cgroup_charge_statistics_bulk(k, memcg, n, anon=False)
    mapping.ensure(start + n)
    mapping.i_pages[start:start + n] = PTE_PRESENT | pfns
    mapping.nrpages += n
    mapping.size_pages = max(mapping.size_pages, start + n)


def _write_reclaim_run(k, task, mapping, start: int, n: int) -> int:
    """Write up to n pages that are holes in the cache from index start at a cgroup-v2 leaf
    limit: a _LimitRun on the inactive file list whose reclaim only ever reaches the oldest
    clean, unmapped cache pages, never the run's own dirty ones. Returns how many pages were
    written (0: not this case)."""
    if not _write_usable(k, task, mapping):
        return 0
    saved, k.current = k.current, task
    try:
        return _write_reclaim_steps(k, task, mapping, start, n)
    finally:
        k.current = saved


def _write_reclaim_steps(k, task, mapping, start: int, n: int) -> int:
    memcg = get_mem_cgroup_from_mm(k, task.mm)
    res = memcg.res
    if not k.cgroup_v2 or memcg.is_root() or res.usage + k.profile.charge_batch <= res.max:
        return 0
    # few enough pages that the run's reclaim (at most the overshoot, the run's pages and
    # their slack: _LimitRun's bound) stays within the pages on the list before it
    nr_old = lruvec_size(memcg, LRU_INACTIVE_FILE)
    slack = max(0, res.usage - res.max) + k.profile.charge_batch + 94 + 4
    n = min(n, (nr_old - slack) * 512 // 513 - 1)
    if n <= 0:
        return 0
    mem, pc = k.mem_map, k.pc
    for _ in range(3):
        run = _LimitRun(k, task, memcg, LRU_INACTIVE_FILE, n)
        if run.pfns is None:
            return 0
        old = run.old
        # the run reclaims at most `bound` pages, all of them older clean pages when there
        # are that many: dirty pages (the run's own, the last write's) are never scanned
        # (reclaim would skip them and wake the flusher, which the bulk path does not model)
        if len(old) < run.bound:
            return 0
        dirty = np.flatnonzero(mem.flags[old] & PG_dirty)
        if not len(dirty):
            break
        n -= run.bound - int(dirty[0]) + 1
        if n <= 0:
            return 0
    else:
        return 0
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
    assert reclaimed <= len(old), "reclaim reached the run's own dirty pages"
    calls["write_limit"] += 1
    new = run.pfns[:done]
    _install_dirty_cache_pages(k, mapping, start, new, memcg, run.node)
    if reclaimed:
        _free_clean_cache_victims(k, memcg, run.victims(new, reclaimed)[0])
        run.count_reclaim(reclaimed)
    return done


# ------------------------------------------------------------------------------------------
# writeback


def sync_vectorized(k) -> int:
    """What sync's write_one_page of every dirty page-cache page (files in k.mappings order,
    pages by index below i_size) leaves: for a dirty page nobody holds locked or under
    writeback, only a clean page (the get and put, and the writeback statistic's rise and
    fall on the memcg it is charged to, cancel out). Any other page goes the per-page way,
    in its turn. Returns the pages written."""
    mem = k.mem_map
    done = 0
    bulk_ok = not k.inject and k.trace is None
    for f in list(k.mappings.values()):
        if f.shmem:
            continue
        ents = f.i_pages[:f.size_pages]
        idx = np.flatnonzero(ents & PTE_PRESENT)
        if not len(idx):
            continue
        pfns = ents[idx] & PTE_VAL_MASK
        fl = mem.flags[pfns]
        dirty = fl & PG_dirty != 0
        pfns, fl = pfns[dirty], fl[dirty]
        if not len(pfns):
            continue
        simple = ((fl & (PG_locked | PG_writeback | PG_tail) == 0)
                  & (mem.refcount[pfns] > 0)) if bulk_ok else np.zeros(len(pfns), bool)
        # write_one_page_bulk for runs of simple pages, write_one_page for each other one
        others = np.flatnonzero(~simple)
        prev = 0
        for j in (*others.tolist(), len(pfns)):
            if j > prev:
                write_one_page_bulk(k, pfns[prev:j])
            if j < len(pfns):
                # writing one page touches no other: this one is still dirty
                run_path(k, write_one_page(k, int(pfns[j])))
                done += 1
            prev = j + 1
        done += int(np.count_nonzero(simple))
    return done


def write_one_page_bulk(k, pfns: np.ndarray) -> None:
    """write_one_page for dirty, unlocked page-cache pages not under writeback: cleaned
    (clear_page_dirty_for_io), written and completed at once (test_set_page_writeback,
    end_page_writeback); nothing else stays changed."""
    calls["sync"] += 1
    k.mem_map.flags[pfns] &= ~PG_dirty
