"""mm/vmscan.c: LRU isolation and putback, shrink_page_list, and memcg limit reclaim.

shrink_page_list is the reference path for reclaiming a page: swap-backed pages get a swap slot
(add_to_swap), are unmapped, written (the swap device is synchronous), and __remove_mapping
freezes the references, hands the memsw charge to the slot (mem_cgroup_swapout) and deletes the
page from swap cache; the freed pages are uncharged as one list before they go back.

Reclaim runs as the kernel's does, in priority rounds (DEF_PRIORITY down to 0) over each memcg of
the target's subtree: get_scan_count splits the scan between anon and file by swappiness (file
only when swapping is impossible or inactive cache is plenty) and scales it down by memory.min/
memory.low protection; inactive lists are reclaimed from their oldest page; an active list is
aged onto its inactive one when the inactive list is low. Where the model simplifies: there are
no pte accessed bits (so mapped pages are not rotated for being referenced), anon/file balance
uses swappiness alone (not the recent reclaim cost), and the flusher woken for dirty cache
completes its writeback at once.
"""

from __future__ import annotations

import numpy as np

from .locking import Lock, Step, TryLock, Unlock, lru_lock, page_lock, run_path, tree_lock
from .mm_types import (
    HPAGE_PMD_NR,
    LRU_ACTIVE_ANON,
    LRU_ACTIVE_FILE,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    PG_active,
    PG_anon,
    PG_dirty,
    PG_head,
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
from .page_counter import PageCounter, calculate_protection

SWAP_CLUSTER_MAX = 32


def isolate_lru_page(k, pfn: int) -> int:
    """Take a page off its LRU list with a reference held: 0, or -EBUSY if it is not on one."""
    mem_map = k.mem_map
    k.bug_on(mem_map.refcount[pfn] <= 0, pfn, "!page_count(page)")
    if not mem_map.flags[pfn] & PG_lru:
        return -16
    get_page(k, pfn)
    # isolation keeps PG_active / PG_unevictable: putback uses them to pick the list
    del_page_from_lru(k, pfn, page_off_lru=False)
    return 0


def page_evictable(k, pfn: int) -> bool:
    return not k.mem_map.flags[pfn] & PG_mlocked


def putback_lru_page(k, pfn: int) -> None:
    """Return an isolated page to the list its flags and memcg say, and drop the isolation ref."""
    mem_map = k.mem_map
    mem_map.flags[pfn] &= ~PG_unevictable
    if not page_evictable(k, pfn):
        mem_map.flags[pfn] = (mem_map.flags[pfn] | PG_unevictable) & ~PG_active
    lru_cache_add(k, pfn)
    put_page(k, pfn)


def page_mapping(k, pfn: int):
    """The address_space of a page: its file's, or the swap cache's for a swap cache page."""
    mem_map = k.mem_map
    flags = int(mem_map.flags[pfn])
    if flags & PG_swapcache:
        return k.swapper_space
    if flags & PG_anon or not mem_map.mapping[pfn]:
        return None
    return k.mappings[int(mem_map.mapping[pfn])]


def __remove_mapping(k, mapping, pfn: int):
    """Path: freeze the page's references (ours and the cache's) and take it out of its cache.

    For a swap cache page the memory+swap charge moves to the swap slot here, while nothing
    can reach the page (refcount 0, off the LRU, under the tree lock).
    """

    mem_map = k.mem_map
    yield Lock(tree_lock(mapping.id))
    if mem_map.refcount[pfn] != 2:                     # page_freeze_refs(page, 2)
        yield Unlock(tree_lock(mapping.id))
        return False
    mem_map.refcount[pfn] = 0
    if mem_map.flags[pfn] & PG_dirty:
        mem_map.refcount[pfn] = 2                      # page_unfreeze_refs
        yield Unlock(tree_lock(mapping.id))
        return False
    if mem_map.flags[pfn] & PG_swapcache:
        entry = int(mem_map.private[pfn])
        mem_cgroup_swapout(k, pfn, entry)
        __delete_from_swap_cache(k, pfn)
        yield Unlock(tree_lock(mapping.id))
        swapcache_free(k, entry)
    else:
        __delete_from_page_cache(k, pfn)
        yield Unlock(tree_lock(mapping.id))
    return True


def pageout(k, pfn: int):
    """Path: write a dirty, locked page; returns True when it is clean and relocked again.

    Swap-backed pages are written to swap: shmem pages first move from their file into the
    swap cache (shmem_writepage). The swap device completes the write at once.
    """

    mem_map = k.mem_map
    if not mem_map.flags[pfn] & PG_swapcache:
        if not (yield from shmem_writepage(k, pfn)):
            return False
    clear_page_dirty_for_io(k, pfn)
    test_set_page_writeback(k, pfn)
    yield Unlock(page_lock(pfn))                  # swap_writepage unlocks once I/O is queued
    yield from end_page_writeback(k, pfn)         # ... and the synchronous device ends it
    if not (yield TryLock(page_lock(pfn))):
        return None
    return not mem_map.flags[pfn] & (PG_dirty | PG_writeback)


def shrink_page_list(k, pfns: list[int], may_swap: bool = True, dirty: list | None = None):
    """Path: try to reclaim isolated pages; kept pages go back to the LRU. Returns the number
    of pages freed; dirty page-cache pages left for the flusher are appended to `dirty`."""
    mem_map = k.mem_map
    free_list: list[int] = []
    keep: list[int] = []
    for pfn in pfns:
        if not (yield TryLock(page_lock(pfn))):
            keep.append(pfn)
            continue
        # page_check_references: TestClearPageReferenced
        mem_map.flags[pfn] &= ~PG_referenced
        flags = int(mem_map.flags[pfn])
        freed, locked = False, True
        if page_evictable(k, pfn) and not flags & (PG_writeback | PG_head):
            freed, locked = yield from _reclaim_locked_page(k, pfn, may_swap)
            if (not freed and dirty is not None and mem_map.flags[pfn] & PG_dirty
                    and not mem_map.flags[pfn] & PG_swapbacked):
                dirty.append(pfn)
        if locked:
            # for a freed page this is __clear_page_locked: nobody else can find it
            yield Unlock(page_lock(pfn))
        (free_list if freed else keep).append(pfn)
    mem_cgroup_uncharge_list(k, free_list)
    for pfn in free_list:
        free_pages(k, pfn)
    if keep:
        nodes = yield from _lock_lrus(k, keep)
        for pfn in keep:
            putback_lru_page(k, pfn)
        yield from _unlock_lrus(nodes)
    return len(free_list)


def _lock_lrus(k, pfns):
    """Path: take the lru_lock of every node the pages sit on, in node order."""
    nodes = sorted({k.page_to_nid(pfn) for pfn in pfns})
    for node in nodes:
        yield Lock(lru_lock(node))
    return nodes


def _unlock_lrus(nodes):
    for node in reversed(nodes):
        yield Unlock(lru_lock(node))


def _reclaim_locked_page(k, pfn: int, may_swap: bool):
    """Path: shrink_page_list's work on one locked page: (freed, still locked)."""

    mem_map = k.mem_map
    flags = int(mem_map.flags[pfn])
    if flags & PG_anon and not flags & PG_swapcache:
        if not may_swap or not add_to_swap(k, pfn):
            mem_map.flags[pfn] |= PG_active            # activate_locked
            return False, True
    if page_mapped(k, pfn):
        ret = try_to_unmap(k, pfn)
        if ret == SWAP_FAIL:
            mem_map.flags[pfn] |= PG_active
        if ret != SWAP_SUCCESS:
            return False, True
    if mem_map.flags[pfn] & PG_dirty:
        if not mem_map.flags[pfn] & PG_swapbacked or not may_swap:
            return False, True   # direct reclaim leaves dirty file pages to the flusher
        ok = yield from pageout(k, pfn)
        if ok is None:
            return False, False  # written, but somebody else has the page locked now
        if not ok:
            return False, True
    mapping = page_mapping(k, pfn)
    if mapping is None:
        return False, True
    return (yield from __remove_mapping(k, mapping, pfn)), True


DEF_PRIORITY = 12
#: the anon/file balance's denominator: swappiness runs 0-200 (MAX_SWAPPINESS) from 5.8
MAX_SWAPPINESS = 200
SCAN_FILE, SCAN_ANON, SCAN_EQUAL, SCAN_FRACT = range(4)
EVICTABLE = (LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE)


class ScanControl:
    """struct scan_control: one reclaim run's target, goals and bookkeeping."""

    def __init__(self, target, nr_to_reclaim: int, may_swap: bool, *,
                 swappiness: int | None = None, global_reclaim: bool = False,
                 proactive: bool = False):
        self.target = target
        self.nr_to_reclaim = nr_to_reclaim
        self.may_swap = may_swap
        self.swappiness = swappiness
        self.global_reclaim = global_reclaim
        self.proactive = proactive
        self.priority = DEF_PRIORITY
        self.nr_reclaimed = 0
        self.nr_scanned = 0
        self.memcg_low_reclaim = False
        self.memcg_low_skipped = False
        #: dirty page-cache pages reclaim had to leave for the flusher
        self.dirty: list[int] = []


class LruTail:
    """A list's pages oldest first, as of the last look, with the lru_seq each had then.

    Pages only ever join a list at its head (a higher lru_seq), so the oldest page on the list
    is the first entry here that is still on it with the same lru_seq; pages added since are
    newer than all of them. When the entries run out, the list is looked at again. This keeps
    reclaim's "take from the tail" at the cost of one look per list drained."""

    __slots__ = ("pfns", "seqs", "pos")

    def __init__(self, pfns: list[int], seqs: list[int]):
        self.pfns = pfns
        self.seqs = seqs
        self.pos = 0


#: a log entry is lru_seq << 32 | pfn: sorting entries sorts as a list is ordered (by lru_seq,
#: ties by pfn, the order of a stable argsort by lru_seq over ascending pfns)
_PFN_MASK = (1 << 32) - 1
#: a look at this many entries or fewer is done in Python (numpy's per-call cost dominates)
_SMALL_LOOK = 64
_NO_PFNS = np.zeros(0, dtype=np.int64)


class LruLog:
    """What a look at one LRU list (memcg id, lru) starts from, so that it costs the list and
    not mem_map: the entries the last look found (`seen`, a sorted list or array) and those of
    the pages that joined the list since (`added`, then `chunks`). An entry is stale once its
    page left the list or got a new lru_seq; a page on the list is in the log under its present
    lru_seq as long as every place that puts a page on a list (gives it PG_lru, an lru_memcg,
    an lru_seq or the flags that pick its list) reports it: Kernel.lru_added and
    lru_added_bulk. A look's result is the valid entries, which depend on mem_map alone."""

    __slots__ = ("seen", "added", "chunks", "nr_chunked", "compact_at")
    #: entries kept as Python ints before they go into an array
    FOLD = 4096

    def __init__(self):
        self.restart([])

    def restart(self, seen) -> None:
        self.seen = seen
        self.added: list[int] = []
        self.chunks: list[np.ndarray] = []
        self.nr_chunked = 0
        self.compact_at = self.FOLD

    def add_chunk(self, k, key: tuple[int, int], entries: np.ndarray,
                  fresh: bool = False) -> None:
        """Log entries; fresh says they are all valid now (pages just put on the list)."""
        self.chunks.append(entries)
        self.nr_chunked += len(entries)
        if self.nr_chunked >= self.compact_at:
            # a list reclaim does not look at would grow its log forever: drop the stale
            # entries once the log is twice what was valid at the last drop (what was added
            # since pays for it)
            old = self.chunks[:-1] if fresh else self.chunks
            kept = _valid_entries(k.mem_map, np.concatenate(old), key, watched=False) if old \
                else entries[:0]
            if fresh:
                kept = np.concatenate((kept, entries))
            kept = _sorted_unique(kept)
            self.chunks = [kept]
            self.nr_chunked = len(kept)
            self.compact_at = 2 * len(kept) + self.FOLD

    def fold(self, k, key: tuple[int, int]) -> None:
        added, self.added = self.added, []
        self.add_chunk(k, key, np.array(added, dtype=np.uint64))

    def look(self, k, key: tuple[int, int]) -> tuple[list[int], list[int], int]:
        """The list's pages oldest first, their lru_seqs and the pages lru_size counts for
        them, from the valid entries; those become `seen` and the log starts again."""
        mem_map = k.mem_map
        if len(self.seen) + self.nr_chunked + len(self.added) <= _SMALL_LOOK:
            # indexed by an array, an explorer footprint takes this for a read of all of
            # mem_map, as the scan was: the look depends on every page that could be on it
            mem_map.flags[_NO_PFNS]
            entries = set(self.added)
            entries.update(self.seen if isinstance(self.seen, list) else self.seen.tolist())
            for chunk in self.chunks:
                entries.update(chunk.tolist())
            flags, lru_memcg, lru_seq = mem_map.flags, mem_map.lru_memcg, mem_map.lru_seq
            memcg_id, lru = key
            kept, pfns, seqs, nr = [], [], [], 0
            for entry in sorted(entries):
                pfn, seq = entry & _PFN_MASK, entry >> 32
                fl = int(flags[pfn])
                if (fl & PG_lru and page_lru(fl) == lru and int(lru_memcg[pfn]) == memcg_id
                        and int(lru_seq[pfn]) == seq):
                    kept.append(entry)
                    pfns.append(pfn)
                    seqs.append(seq)
                    nr += HPAGE_PMD_NR if fl & PG_head else 1
            self.restart(kept)
            return pfns, seqs, nr
        parts = [self.seen] if isinstance(self.seen, np.ndarray) else [
            np.array(self.seen, dtype=np.uint64)]
        parts += self.chunks
        if self.added:
            parts.append(np.array(self.added, dtype=np.uint64))
        entries = _sorted_unique(_valid_entries(mem_map, np.concatenate(parts), key))
        self.restart(entries)
        pfns = (entries & _PFN_MASK).astype(np.int64)
        heads = np.count_nonzero(mem_map.flags.view(np.ndarray)[pfns] & PG_head)
        return pfns.tolist(), (entries >> 32).tolist(), len(pfns) + heads * (HPAGE_PMD_NR - 1)


def _valid_entries(mem_map, entries: np.ndarray, key: tuple[int, int], *,
                   watched: bool = True) -> np.ndarray:
    """The entries whose page is on list key with that lru_seq now. Indexed by arrays, the
    arrays are read whole as an explorer footprint sees it, as the scan read them: the look
    depends on every page that could be on the list. A log's own upkeep changes no look's
    result and reads them unwatched (watched=False)."""
    memcg_id, lru = key
    flags, lru_memcg, lru_seq = mem_map.flags, mem_map.lru_memcg, mem_map.lru_seq
    if not watched:
        flags, lru_memcg, lru_seq = (a.view(np.ndarray) for a in (flags, lru_memcg, lru_seq))
    pfns = (entries & _PFN_MASK).astype(np.int64)
    fl = flags[pfns]
    ok = ((fl & PG_lru != 0) & (lru_memcg[pfns] == memcg_id) & (page_lru_array(fl) == lru)
          & (lru_seq[pfns] == entries >> 32))
    return entries[ok]


def _sorted_unique(entries: np.ndarray) -> np.ndarray:
    """np.unique, faster on the few sorted runs a log is made of."""
    entries = np.sort(entries, kind="stable")
    if len(entries) > 1:
        entries = entries[np.concatenate(([True], entries[1:] != entries[:-1]))]
    return entries


def _scan_list(k, memcg, lru: int) -> tuple[list[int], list[int]]:
    """The list's pages oldest first and their lru_seqs, from all of mem_map: the reference a
    look must equal."""
    mem_map = k.mem_map
    on = np.flatnonzero((mem_map.lru_memcg == memcg.id) & ((mem_map.flags & PG_lru) != 0))
    on = on[page_lru_array(mem_map.flags[on]) == lru]
    seqs = mem_map.lru_seq[on]
    order = np.argsort(seqs, kind="stable")
    return on[order].tolist(), seqs[order].tolist()


def _look_at_list(k, memcg, lru: int) -> LruTail:
    """The list as _scan_list finds it, from the list's LruLog."""
    key = (memcg.id, lru)
    log = k.lru_logs.get(key)
    if log is None:
        log = k.lru_logs[key] = LruLog()
    pfns, seqs, nr = log.look(k, key)
    if k.check_lru_tails:
        want_pfns, want_seqs = _scan_list(k, memcg, lru)
        if pfns != want_pfns or seqs != want_seqs:
            raise AssertionError(
                f"the look at list {key} from its log differs from the scan of mem_map: "
                f"{len(pfns)} pages against {len(want_pfns)}; missing "
                f"{sorted(set(want_pfns) - set(pfns))[:10]}, extra "
                f"{sorted(set(pfns) - set(want_pfns))[:10]}")
    elif nr != lruvec_size(memcg, lru):
        # the entries are the list's pages or fewer; when they miss some of what lru_size
        # counts (a page put on a list without telling the log, or a count gone wrong),
        # the scan is the answer
        pfns, seqs = _scan_list(k, memcg, lru)
        log.restart([seq << 32 | pfn for pfn, seq in zip(pfns, seqs, strict=True)])
    return LruTail(pfns, seqs)


def _next_pages(k, sc: ScanControl, memcg, lru: int, n: int) -> list[int]:
    """Up to n pages from the tail (oldest end) of memcg's list lru."""
    key = (memcg.id, lru)
    tail = k.lru_tails.get(key)
    mem_map = k.mem_map
    out: list[int] = []
    looked = False
    while len(out) < n:
        if tail is None or tail.pos >= len(tail.pfns):
            if looked or not lruvec_size(memcg, lru):
                break
            tail = k.lru_tails[key] = _look_at_list(k, memcg, lru)
            # the pages taken so far are still on the list, and its oldest: skip them
            tail.pos = len(out)
            looked = True
            continue
        pfn, seq = tail.pfns[tail.pos], tail.seqs[tail.pos]
        tail.pos += 1
        flags = int(mem_map.flags[pfn])
        if (flags & PG_lru and int(mem_map.lru_memcg[pfn]) == memcg.id and page_lru(flags) == lru
                and int(mem_map.lru_seq[pfn]) == seq):
            out.append(pfn)
    return out


def lruvec_size(memcg, lru: int) -> int:
    lruvecs = memcg.lruvecs
    if len(lruvecs) == 1:
        return lruvecs[0].lru_size[lru]
    return sum(lv.lru_size[lru] for lv in lruvecs)


def inactive_is_low(memcg, inactive_lru: int) -> bool:
    """Too little on the inactive list for its active one: inactive * ratio < active, ratio
    sqrt(10 * GiB of the pair), at least 1."""
    inactive = lruvec_size(memcg, inactive_lru)
    active = lruvec_size(memcg, inactive_lru + 1)
    gb = (inactive + active) >> (30 - 12)
    ratio = int((10 * gb) ** 0.5) if gb else 1
    return inactive * ratio < active


def can_reclaim_anon_pages(k, memcg, sc: ScanControl) -> bool:
    """Whether swapping is allowed and possible: a free slot, and (v2) room under every
    swap.max up the tree."""
    if not sc.may_swap or k.swap.inuse_pages >= k.swap.nr_slots - 1 or not k.swap.nr_slots:
        return False
    if k.cgroup_v2:
        m = memcg
        while m is not None and not m.is_root():
            if m.swap.usage >= m.swap.max:
                return False
            m = m.parent
    return True


def get_scan_count(k, memcg, sc: ScanControl, protection: int) -> dict[int, int]:
    """How many pages of each evictable list to scan at this priority: the list sizes shifted
    by the priority, split between anon and file by swappiness, and scaled down by the memcg's
    memory.min/low protection (proportionally to how much of its usage is protected)."""
    if sc.swappiness is not None:
        swappiness = sc.swappiness
    elif k.cgroup_v2 or memcg.is_root():
        swappiness = 60                     # vm_swappiness; v2 has no per-cgroup value
    else:
        swappiness = memcg.swappiness
    if not can_reclaim_anon_pages(k, memcg, sc):
        balance = SCAN_FILE
    elif not sc.global_reclaim and swappiness == 0:
        balance = SCAN_FILE
    elif sc.priority == 0 and swappiness:
        balance = SCAN_EQUAL
    elif not inactive_is_low(memcg, LRU_INACTIVE_FILE) and lruvec_size(
            memcg, LRU_INACTIVE_FILE) >> sc.priority:
        balance = SCAN_FILE                 # plenty of inactive cache: leave anon alone
    else:
        balance = SCAN_FRACT
    ap, fp = swappiness, MAX_SWAPPINESS - swappiness
    nr = {}
    usage = memcg.res.usage
    for lru in EVICTABLE:
        size = lruvec_size(memcg, lru)
        if protection:
            cgroup_size = max(usage, protection)
            scan = size - size * protection // (cgroup_size + 1)
            scan = max(scan, SWAP_CLUSTER_MAX)
        else:
            scan = size
        scan >>= sc.priority
        file = lru >= LRU_INACTIVE_FILE
        if balance == SCAN_FILE and not file:
            scan = 0
        elif balance == SCAN_FRACT:
            frac = fp if file else ap
            scan = -(-scan * frac // (ap + fp + 1))
        nr[lru] = min(scan, size)
    return nr


def shrink_lruvec(k, memcg, sc: ScanControl, protection: int):
    """Path: scan this memcg's own lists for one priority round."""
    nr = get_scan_count(k, memcg, sc, protection)
    start = sc.nr_reclaimed
    while nr[LRU_INACTIVE_ANON] or nr[LRU_ACTIVE_FILE] or nr[LRU_INACTIVE_FILE]:
        for lru in EVICTABLE:
            if not nr[lru]:
                continue
            n = min(nr[lru], SWAP_CLUSTER_MAX)
            nr[lru] -= n
            if lru in (LRU_ACTIVE_ANON, LRU_ACTIVE_FILE):
                if inactive_is_low(memcg, lru - 1):
                    yield from shrink_active_list(k, memcg, sc, lru, n)
            else:
                yield from shrink_inactive_list(k, memcg, sc, lru, n)
        # each lruvec may reclaim up to the whole goal (the kernel then trims its remaining
        # scan; the model stops it)
        if sc.nr_reclaimed - start >= sc.nr_to_reclaim:
            break
    if can_reclaim_anon_pages(k, memcg, sc) and inactive_is_low(memcg, LRU_INACTIVE_ANON):
        yield from shrink_active_list(k, memcg, sc, LRU_ACTIVE_ANON, SWAP_CLUSTER_MAX)


def shrink_inactive_list(k, memcg, sc: ScanControl, lru: int, n: int):
    """Path: isolate up to n pages from the tail of an inactive list and reclaim them."""

    batch = []
    candidates = _next_pages(k, sc, memcg, lru, n)
    if not candidates:
        return
    nodes = yield from _lock_lrus(k, candidates)        # isolate_lru_folios
    for pfn in candidates:
        if k.mem_map.refcount[pfn] > 0 and isolate_lru_page(k, pfn) == 0:
            batch.append(pfn)
    yield from _unlock_lrus(nodes)
    if not batch:
        return
    how = "proactive" if sc.proactive else ("kswapd" if sc.global_reclaim else "direct")
    count_memcg_event(memcg, f"pgscan_{how}", len(batch))
    sc.nr_scanned += len(batch)
    may_swap = sc.may_swap and can_reclaim_anon_pages(k, memcg, sc)
    freed = None
    if k.vectorized and len(batch) > 1:
        # (one page costs less on the per-page path than the array operations' fixed cost)
        freed = shrink_page_list_bulk(k, batch, may_swap)
    if freed is None:
        freed = yield from shrink_page_list(k, batch, may_swap, sc.dirty)
    count_memcg_event(memcg, f"pgsteal_{how}", freed)
    sc.nr_reclaimed += freed


def shrink_active_list(k, memcg, sc: ScanControl, lru: int, n: int):
    """Path: move up to n of the oldest active pages to the inactive list (the model has no
    accessed bits, so none is rotated back as referenced)."""

    mem_map = k.mem_map
    moved = 0
    candidates = _next_pages(k, sc, memcg, lru, n)
    if not candidates:
        return
    nodes = yield from _lock_lrus(k, candidates)
    for pfn in candidates:
        if mem_map.refcount[pfn] <= 0 or isolate_lru_page(k, pfn):
            continue
        mem_map.flags[pfn] &= ~PG_active
        putback_lru_page(k, pfn)
        moved += 1
    yield from _unlock_lrus(nodes)
    if moved:
        count_memcg_event(memcg, "pgrefill", moved)
        count_memcg_event(memcg, "pgdeactivate", moved)


def shrink_node_memcgs(k, sc: ScanControl):
    """Path: one priority round over every memcg of the target's subtree, skipping what
    memory.min protects (and memory.low, unless nothing else could be reclaimed)."""

    stale_target = k.profile.stale_target_protection
    for memcg in sc.target.stat_tree():
        protection = 0
        counter = memcg.res
        target = memcg is sc.target
        if isinstance(counter, PageCounter) and not memcg.is_root() and (
                not target or stale_target):
            if not target:
                calculate_protection(sc.target.res, counter, recursive_protection=False)
            # (6.1: the target's emin/elow are not computed for this reclaim but still
            # checked, as whatever an earlier reclaim from an ancestor left them)
            if counter.usage <= counter.emin:
                continue                        # hard protection
            if counter.usage <= counter.elow:
                if not sc.memcg_low_reclaim:
                    sc.memcg_low_skipped = True
                    continue
                memcg_memory_event(memcg, "low")
            if target:
                pass                            # the scan is never scaled for the target
            elif not sc.memcg_low_reclaim and counter.elow > counter.emin:
                protection = counter.elow
                sc.memcg_low_skipped = True
            else:
                protection = counter.emin
        yield from shrink_lruvec(k, memcg, sc, protection)


def do_try_to_free_pages(k, sc: ScanControl):
    """Path: priority rounds from DEF_PRIORITY down to 0 until nr_to_reclaim pages are freed;
    once a round has scanned more than half as much again, the flusher writes back the dirty
    cache reclaim skipped. With nothing reclaimed because of memory.low, one more run that
    ignores it."""

    while True:
        for priority in range(DEF_PRIORITY, -1, -1):
            sc.priority = priority
            yield from shrink_node_memcgs(k, sc)
            if sc.nr_reclaimed >= sc.nr_to_reclaim:
                break
            if sc.dirty and sc.nr_scanned > sc.nr_to_reclaim + sc.nr_to_reclaim // 2:
                dirty, sc.dirty = sc.dirty, []
                yield from wakeup_flusher_threads(k, dirty)
        if sc.nr_reclaimed or not sc.memcg_low_skipped or sc.memcg_low_reclaim:
            return sc.nr_reclaimed
        sc.memcg_low_reclaim = True
        sc.memcg_low_skipped = False


def shrink_mem_cgroup(k, memcg, nr_to_reclaim: int, may_swap: bool, *,
                      swappiness: int | None = None, proactive: bool = False):
    """Path: reclaim up to nr_to_reclaim pages from memcg's hierarchy; returns pages freed."""
    sc = ScanControl(memcg, nr_to_reclaim, may_swap, swappiness=swappiness,
                     proactive=proactive)
    return (yield from do_try_to_free_pages(k, sc))


def try_to_free_mem_cgroup_pages(k, memcg, gfp_mask: int, noswap: bool, nr_pages: int = 1,
                                 *, swappiness: int | None = None,
                                 proactive: bool = False) -> int:
    """Limit reclaim from inside try_charge (or a limit write): a nested reclaim run on behalf
    of the charger, of at least SWAP_CLUSTER_MAX pages."""
    may_swap = not noswap and k.swap.nr_slots > 0
    return run_path(k, shrink_mem_cgroup(k, memcg, max(nr_pages, SWAP_CLUSTER_MAX), may_swap,
                                         swappiness=swappiness, proactive=proactive),
                    task=k.current, owner=-1)


def try_to_free_pages(k) -> int:
    """Direct reclaim when the machine is out of free pages: every memcg's pages are
    candidates (the root's hierarchy is the whole tree). Returns the pages freed."""
    may_swap = k.swap.nr_slots > 0
    sc = ScanControl(k.root_mem_cgroup, SWAP_CLUSTER_MAX, may_swap, global_reclaim=True)
    return run_path(k, do_try_to_free_pages(k, sc), task=k.current, owner=-1)


def reclaim_page(k, pfn: int):
    """Path: reclaim one given page (isolate, then shrink_page_list), as kswapd would."""
    nodes = yield from _lock_lrus(k, [pfn])
    # as __isolate_lru_page: only a page still on its list with a reference left
    mem_map = k.mem_map
    busy = (not mem_map.flags[pfn] & PG_lru or mem_map.refcount[pfn] <= 0
            or isolate_lru_page(k, pfn))
    yield from _unlock_lrus(nodes)
    if busy:
        return 0
    return (yield from shrink_page_list(k, [pfn], may_swap=k.swap.nr_slots > 0))


def kswapd_shrink_page(k, pfn: int):
    """Path: kswapd (balance_pgdat, shrink_inactive_list) meets the page at the tail of its
    LRU list: it looks at the tail, then isolates the page under the lru_lock only if it is
    still there with a reference left, and shrink_page_list runs."""
    yield Step("lru_lock: look at the list's tail")
    if not k.mem_map.flags[pfn] & PG_lru or k.mem_map.refcount[pfn] <= 0:
        return 0
    return (yield from reclaim_page(k, pfn))


# Imported once this module's functions exist: these modules and this one call each other.
from .filemap import __delete_from_page_cache  # noqa: E402
from .memcontrol import (  # noqa: E402
    count_memcg_event,
    mem_cgroup_swapout,
    mem_cgroup_uncharge_list,
    memcg_memory_event,
)
from .page_alloc import free_pages  # noqa: E402
from .page_writeback import (  # noqa: E402
    clear_page_dirty_for_io,
    end_page_writeback,
    test_set_page_writeback,
    wakeup_flusher_threads,
)
from .rmap import SWAP_FAIL, SWAP_SUCCESS, page_mapped, try_to_unmap  # noqa: E402
from .shmem import shmem_writepage  # noqa: E402
from .swap import del_page_from_lru, get_page, lru_cache_add, put_page  # noqa: E402
from .swap_state import __delete_from_swap_cache, add_to_swap  # noqa: E402
from .swapfile import swapcache_free  # noqa: E402
from .vectorized import shrink_page_list_bulk  # noqa: E402
