"""mm/memcontrol.c: memcgs, the per-CPU charge stock and the page charge API, of 3.17 and of
6.1 and 6.12 (what differs is read off the kernel profile, memcgsim.profile).

The 2014 design (3.17): a page is charged in two steps, mem_cgroup_try_charge (reserve on the
counters) and then mem_cgroup_commit_charge (bind the page) or mem_cgroup_cancel_charge; it keeps
its charge through mapping, LRU, page cache and swap cache life and is uncharged once, after the
final put (mem_cgroup_uncharge); mem_cgroup_migrate transfers a charge; mem_cgroup_swapout hands
the memsw charge to the swap entry. From 5.8 (the 6.x profiles) a page is charged in one step,
mem_cgroup_charge, before anyone can see it, and the two-step API is gone: the callers choose
by profile.charge_at_instantiation. Functions here are atomic steps: the paths that call them
hold the page's serialization.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from ..errors import Errno, ModelBug
from .gfp import (
    __GFP_HIGH,
    __GFP_NOFAIL,
    __GFP_NORETRY,
    __GFP_RETRY_MAYFAIL,
    __GFP_WAIT,
    GFP_KERNEL,
)
from .mm_types import (
    HPAGE_PMD_NR,
    LRU_NAMES,
    NR_LRU_LISTS,
    PG_anon,
    PG_head,
    PG_locked,
    PG_lru,
    PG_swapcache,
    PG_writeback,
    page_lru,
)
from .page_cgroup import PCG_MEM, PCG_MEMSW, PCG_USED
from .page_counter import PAGE_COUNTER_MAX, PageCounter
from .res_counter import ResCounter
from .vmstat import memcg_page_state

# enum mem_cgroup_stat_index (3.17)
(MEM_CGROUP_STAT_CACHE, MEM_CGROUP_STAT_RSS, MEM_CGROUP_STAT_RSS_HUGE,
 MEM_CGROUP_STAT_FILE_MAPPED, MEM_CGROUP_STAT_WRITEBACK, MEM_CGROUP_STAT_SWAP) = range(6)
MEM_CGROUP_STAT_NSTATS = 6
MEM_CGROUP_STAT_NAMES = ("cache", "rss", "rss_huge", "mapped_file", "writeback", "swap")
MEM_CGROUP_STAT_INDEX = {name: i for i, name in enumerate(MEM_CGROUP_STAT_NAMES)}

# enum mem_cgroup_events_index
(MEM_CGROUP_EVENTS_PGPGIN, MEM_CGROUP_EVENTS_PGPGOUT, MEM_CGROUP_EVENTS_PGFAULT,
 MEM_CGROUP_EVENTS_PGMAJFAULT) = range(4)
MEM_CGROUP_EVENTS_NSTATS = 4
MEM_CGROUP_EVENTS_NAMES = ("pgpgin", "pgpgout", "pgfault", "pgmajfault")

# enum memcg_memory_event (6.x)
MEMCG_EVENT_NAMES = ("low", "high", "max", "oom", "oom_kill", "oom_group_kill",
                     "swap_high", "swap_max", "swap_fail")


# ------------------------------------------------------------------------------------------
# tracing: when Kernel.trace is a list, each API call below appends what it changed


_TRACED_STATS = ("rss", "cache", "rss_huge", "mapped_file", "writeback", "swap")


def _counter_snapshot(k) -> dict:
    snap = {}
    for m in k.memcg_by_id.values():
        snap[(m.name, "res")] = m.res.usage
        snap[(m.name, "memsw")] = m.memsw.usage
        if m.swap is not None:
            snap[(m.name, "swap.usage")] = m.swap.usage
        for name in _TRACED_STATS:
            snap[(m.name, name)] = m.stat[MEM_CGROUP_STAT_INDEX[name]]
    return snap


def traced(fn):
    """Record the call and the counters it changed in k.trace (outermost call only)."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(k, *args, **kwargs):
        if k.trace is None or k.tracing:
            return fn(k, *args, **kwargs)
        before = _counter_snapshot(k)
        k.tracing = True
        try:
            ret = fn(k, *args, **kwargs)
        finally:
            k.tracing = False
        after = _counter_snapshot(k)
        changes = [(key, before.get(key, 0), v) for key, v in after.items()
                   if before.get(key, 0) != v]
        k.trace.append((name, args[0] if args else None, changes))
        return ret
    return wrapper


class Lruvec:
    """The LRU lists of one memcg on one node (3.17 has one per zone; the model has one zone)."""

    __slots__ = ("memcg", "node", "lru_size")

    def __init__(self, memcg: MemCgroup, node: int):
        self.memcg = memcg
        self.node = node
        self.lru_size = [0] * NR_LRU_LISTS

    def __repr__(self) -> str:
        return f"<lruvec {self.memcg.name} node {self.node}>"


class MemCgroup:
    """struct mem_cgroup: counters, statistics, lruvecs, events and the v1 knobs."""

    def __init__(self, memcg_id: int, name: str, parent: MemCgroup | None, nr_nodes: int,
                 profile=None):
        self.id = memcg_id
        self.name = name
        #: the cgroup parent (css.parent); parent_mem_cgroup() follows res.parent instead
        self.parent = parent
        self.children: list[MemCgroup] = []
        self.online = True
        page_counters = profile is not None and profile.counter == "page_counter"
        if page_counters:
            # page_counter era: every memcg hangs off its parent, root included
            self.use_hierarchy = True
        else:
            self.use_hierarchy = parent.use_hierarchy if parent is not None else False
        # css_online: hang the counters off the parent's when it is hierarchical; under a flat
        # parent the chain ends here (3.17 after the revert of "use root_mem_cgroup res_counter")
        top = parent if (parent is not None and parent.use_hierarchy) else None
        if page_counters:
            self.res = PageCounter(f"{name}.memory", top.res if top else None, owner=self,
                                   protection_support=True)
            #: the v2 swap counter (swap.current, swap.max)
            self.swap = PageCounter(f"{name}.swap", top.swap if top else None, owner=self)
            self.memsw = PageCounter(f"{name}.memsw", top.memsw if top else None, owner=self)
            self.kmem = PageCounter(f"{name}.kmem", top.kmem if top else None, owner=self)
        else:
            self.res = ResCounter(f"{name}.res", top.res if top else None, owner=self)
            self.swap = None
            self.memsw = ResCounter(f"{name}.memsw", top.memsw if top else None, owner=self)
            self.kmem = ResCounter(f"{name}.kmem", top.kmem if top else None, owner=self)
        #: v1 soft_limit_in_bytes, in pages (a res_counter field in 3.17, memcg's from 3.19)
        self.soft_limit = self.res.limit
        self.stat = [0] * MEM_CGROUP_STAT_NSTATS
        self.events = [0] * MEM_CGROUP_EVENTS_NSTATS
        #: memory_events[] (counted here and in every ancestor below root) and
        #: memory_events_local[], by name: low, high, max, oom, oom_kill, oom_group_kill,
        #: swap_high, swap_max, swap_fail
        self.memory_events: dict[str, int] = dict.fromkeys(MEMCG_EVENT_NAMES, 0)
        self.memory_events_local: dict[str, int] = dict.fromkeys(MEMCG_EVENT_NAMES, 0)
        #: kernel memory charged to this memcg itself, in pages, by kind ("kernel" is the
        #: rest: PGD, task slab); memory.stat's kernel is their sum
        self.kmem_stat: dict[str, int] = {"kernel_stack": 0, "pagetables": 0, "kernel": 0}
        #: vm events counted per memcg (6.x memory.stat: pgfault, pgscan, pswpout, ...)
        self.vm_events: dict[str, int] = {}
        self.nr_page_events = 0
        self.lruvecs = [Lruvec(self, n) for n in range(nr_nodes)]
        self.swappiness = 60
        self.move_charge_at_immigrate = 0
        self.oom_kill_disable = False
        self.oom_group = False
        #: memory.zswap.max and memory.zswap.writeback: kept, without effect (no zswap)
        self.zswap_max = PAGE_COUNTER_MAX
        self.zswap_writeback = True
        #: memory.peak / memory.swap.peak files written through (6.12's per-file resets)
        self.memory_peaks: list = []
        self.swap_peaks: list = []
        #: v2 cgroup.subtree_control: controllers this cgroup enables for its children (the
        #: root starts with memory enabled, as after boot with systemd)
        self.subtree_control: set[str] = {"memory"} if parent is None else set()
        self.under_oom = 0
        #: css references taken by swap records (css_get in mem_cgroup_swapout)
        self.swap_css_refs = 0

    def __repr__(self) -> str:
        return f"<memcg {self.name} id={self.id}>"

    def parent_mem_cgroup(self) -> MemCgroup | None:
        return self.res.parent.owner if self.res.parent is not None else None

    def is_root(self) -> bool:
        return self.parent is None

    def subtree(self) -> Iterable[MemCgroup]:
        """Pre-order walk of the cgroup subtree, this memcg first."""
        yield self
        for c in self.children:
            yield from c.subtree()

    def stat_tree(self) -> Iterable[MemCgroup]:
        """for_each_mem_cgroup_tree: the subtree, or only this memcg when it is flat (not root)."""
        if not self.use_hierarchy and not self.is_root():
            return iter((self,))
        return self.subtree()

    def same_or_subtree(self, other: MemCgroup) -> bool:
        """mem_cgroup_same_or_subtree(self, other): other is self or below it in the hierarchy."""
        if other is self:
            return True
        if not self.use_hierarchy:
            return False
        c = other.parent
        while c is not None:
            if c is self:
                return True
            c = c.parent
        return False


class MemcgStock:
    """struct memcg_stock_pcp: pages pre-charged to one memcg on one CPU."""

    __slots__ = ("cached", "nr_pages")

    def __init__(self):
        self.cached: MemCgroup | None = None
        self.nr_pages = 0


# ------------------------------------------------------------------------------------------
# statistics


def mem_cgroup_charge_statistics(k, memcg: MemCgroup, pfn: int, nr_pages: int) -> None:
    """Charge-type counters (3.17) and page events for nr_pages (negative on the uncharge
    side). From 5.8 the page is not yet anon or cache when it is charged, and only the page
    events are counted here."""
    if k.profile.stats == "charge-type":
        flags = int(k.mem_map.flags[pfn])
        if flags & PG_anon:
            memcg.stat[MEM_CGROUP_STAT_RSS] += nr_pages
        else:
            memcg.stat[MEM_CGROUP_STAT_CACHE] += nr_pages
        if flags & PG_head:
            memcg.stat[MEM_CGROUP_STAT_RSS_HUGE] += nr_pages
    # pagein of a big page is one event: ignore the size
    if nr_pages > 0:
        memcg.events[MEM_CGROUP_EVENTS_PGPGIN] += 1
    else:
        memcg.events[MEM_CGROUP_EVENTS_PGPGOUT] += 1
        nr_pages = -nr_pages
    memcg.nr_page_events += nr_pages


def mem_cgroup_update_page_stat(k, pfn: int, idx: int, val: int) -> None:
    """mapped_file and writeback: counted on pc->mem_cgroup, and only while the page is USED."""
    if not k.pc.flags[pfn] & PCG_USED:
        return
    k.memcg_by_id[int(k.pc.memcg[pfn])].stat[idx] += val


def mem_cgroup_charge_statistics_bulk(k, memcg: MemCgroup, nr_pages: int, anon: bool) -> None:
    """mem_cgroup_charge_statistics for nr_pages small pages (anonymous, or page cache)
    committed one by one."""
    if k.profile.stats == "charge-type":
        memcg.stat[MEM_CGROUP_STAT_RSS if anon else MEM_CGROUP_STAT_CACHE] += nr_pages
    memcg.events[MEM_CGROUP_EVENTS_PGPGIN] += nr_pages
    memcg.nr_page_events += nr_pages


def memcg_memory_event(memcg: MemCgroup, event: str) -> None:
    """Count a memory.events event locally, and in this memcg and each ancestor below root."""
    memcg.memory_events_local[event] += 1
    m = memcg
    while m is not None and not m.is_root():
        m.memory_events[event] += 1
        m = m.parent_mem_cgroup()


def count_memcg_event(memcg: MemCgroup, item: str, nr: int = 1) -> None:
    """A vm event (pgscan, pswpout, ...) counted on memcg; memory.stat sums the subtree."""
    memcg.vm_events[item] = memcg.vm_events.get(item, 0) + nr


def mem_cgroup_count_vm_event(k, mm, idx: int) -> None:
    """pgfault / pgmajfault: counted against the memcg of mm->owner, not the page's."""
    if mm is None or mm.owner is None:
        return
    mm.owner.memcg.events[idx] += 1


def mem_cgroup_swap_statistics(memcg: MemCgroup, charge: bool) -> None:
    memcg.stat[MEM_CGROUP_STAT_SWAP] += 1 if charge else -1


# ------------------------------------------------------------------------------------------
# lruvecs


def mem_cgroup_page_lruvec(k, pfn: int, node: int) -> Lruvec:
    """The lruvec a page goes on: its memcg's if USED, else root's.

    As in the kernel, an uncharged page off the LRU is switched to root here, because nothing
    keeps its former memcg alive.
    """
    pc = k.pc
    memcg_id = int(pc.memcg[pfn])
    root = k.root_mem_cgroup
    if (not k.mem_map.flags[pfn] & PG_lru and not pc.flags[pfn] & PCG_USED
            and memcg_id != root.id):
        pc.memcg[pfn] = root.id
        memcg_id = root.id
    return k.memcg_by_id[memcg_id].lruvecs[node]


def mem_cgroup_update_lru_size(k, lruvec: Lruvec, lru: int, nr_pages: int) -> None:
    size = lruvec.lru_size[lru] + nr_pages
    if size < 0:
        k.warn("lru_size", f"{lruvec!r} {LRU_NAMES[lru]} would go to {size}")
        size = 0
    lruvec.lru_size[lru] = size


def add_page_to_lru_list(k, pfn: int, lruvec: Lruvec, lru: int) -> None:
    """Add at the head of the list: lru_seq orders each list, newest highest."""
    mem_map = k.mem_map
    mem_cgroup_update_lru_size(k, lruvec, lru, mem_map.nr_pages_of(pfn))
    mem_map.lru_memcg[pfn] = lruvec.memcg.id
    seq = k.next_lru_seq()
    mem_map.lru_seq[pfn] = seq
    k.lru_added(lruvec.memcg.id, lru, pfn, seq)


def del_page_from_lru_list(k, pfn: int, lruvec: Lruvec, lru: int) -> None:
    mem_cgroup_update_lru_size(k, lruvec, lru, -k.mem_map.nr_pages_of(pfn))


def lock_page_lru(k, pfn: int) -> bool:
    """Under zone->lru_lock: take the page off its LRU list if it is on one (for lrucare)."""
    mem_map = k.mem_map
    flags = int(mem_map.flags[pfn])
    if not flags & PG_lru:
        return False
    lruvec = k.memcg_by_id[int(mem_map.lru_memcg[pfn])].lruvecs[k.page_to_nid(pfn)]
    mem_map.flags[pfn] = flags & ~PG_lru
    del_page_from_lru_list(k, pfn, lruvec, page_lru(flags))
    return True


def unlock_page_lru(k, pfn: int, isolated: bool) -> None:
    """Put the page back on the lruvec its (possibly new) memcg implies."""
    if not isolated:
        return
    mem_map = k.mem_map
    lruvec = mem_cgroup_page_lruvec(k, pfn, k.page_to_nid(pfn))
    mem_map.flags[pfn] |= PG_lru
    add_page_to_lru_list(k, pfn, lruvec, page_lru(int(mem_map.flags[pfn])))


# ------------------------------------------------------------------------------------------
# per-CPU charge stock


def consume_stock(k, memcg: MemCgroup, nr_pages: int) -> bool:
    if nr_pages > k.profile.charge_batch:
        return False
    stock = k.this_cpu_stock()
    if stock.cached is memcg and stock.nr_pages >= nr_pages:
        stock.nr_pages -= nr_pages
        return True
    return False


def drain_stock(k, stock: MemcgStock) -> None:
    """Return the stocked pages to the counters of the memcg they were charged to."""
    old = stock.cached
    if stock.nr_pages:
        old.res.uncharge(stock.nr_pages)
        if k.do_swap_account:
            old.memsw.uncharge(stock.nr_pages)
        stock.nr_pages = 0
    stock.cached = None


def refill_stock(k, memcg: MemCgroup, nr_pages: int) -> None:
    stock = k.this_cpu_stock()
    if stock.cached is not memcg:
        drain_stock(k, stock)
        stock.cached = memcg
    stock.nr_pages += nr_pages


@traced
def drain_all_stock(k, root_memcg: MemCgroup) -> None:
    """Drain every CPU's stock that holds pages of root_memcg's subtree (done synchronously)."""
    for stock in k.stocks:
        if stock.cached is not None and root_memcg.same_or_subtree(stock.cached):
            drain_stock(k, stock)


# ------------------------------------------------------------------------------------------
# charging


def mem_cgroup_margin(k, memcg: MemCgroup) -> int:
    """Pages that can be charged to memcg before it hits its own limit."""
    margin = memcg.res.margin()
    if k.do_swap_account:
        margin = min(margin, memcg.memsw.margin())
    return margin


def _charge_counters(k, memcg: MemCgroup, nr_pages: int):
    """Charge memory and memsw; return (None, False) or (the memcg over its limit, noswap).

    3.17 charges res first; from 3.19 memsw is charged first, so a memsw limit failure leaves
    memory's failcnt alone."""
    if k.do_swap_account and k.profile.charge_loop != "3.17":
        fail = memcg.memsw.try_charge(nr_pages)
        if fail is not None:
            return fail.owner, True
        fail = memcg.res.try_charge(nr_pages)
        if fail is None:
            return None, False
        memcg.memsw.uncharge(nr_pages)
        return fail.owner, False
    fail = memcg.res.try_charge(nr_pages)
    if fail is not None:
        return fail.owner, False
    if not k.do_swap_account:
        return None, False
    fail = memcg.memsw.try_charge(nr_pages)
    if fail is None:
        return None, False
    memcg.res.uncharge(nr_pages)
    return fail.owner, True


def try_charge(k, memcg: MemCgroup, gfp_mask: int, nr_pages: int) -> tuple[int, MemCgroup]:
    """Reserve nr_pages on memcg's counters: 0, -ENOMEM, or -EINTR for a bypass.

    Root is never charged. A bypass (the task is dying, or a NOFAIL charge) charges nothing;
    mem_cgroup_try_charge turns it into success with root as the memcg, so the page is
    committed to root.
    """
    prof = k.profile
    if prof.charge_loop == "6.x":
        return try_charge_memcg(k, memcg, gfp_mask, nr_pages)
    batch = max(prof.charge_batch, nr_pages)
    nr_retries = prof.reclaim_retries
    noswap = False
    current = k.current
    if memcg.is_root():
        return 0, memcg
    while True:
        if consume_stock(k, memcg, nr_pages):
            return 0, memcg
        over, memsw_failed = _charge_counters(k, memcg, batch)
        if over is None:
            if batch > nr_pages:
                refill_stock(k, memcg, batch - nr_pages)
            return 0, memcg
        noswap = noswap or memsw_failed
        if batch > nr_pages:
            batch = nr_pages
            continue
        if current is not None and (current.memdie or current.fatal_signal or current.exiting):
            return -Errno.EINTR, memcg
        if current is not None and current.memcg_oom is not None:
            return -Errno.ENOMEM, memcg
        if not gfp_mask & __GFP_WAIT:
            return -Errno.ENOMEM, memcg
        nr_reclaimed = mem_cgroup_reclaim(k, over, gfp_mask, noswap)
        if mem_cgroup_margin(k, over) >= nr_pages:
            continue
        if gfp_mask & __GFP_NORETRY:
            return -Errno.ENOMEM, memcg
        if nr_reclaimed and nr_pages <= prof.costly_order_pages:
            continue
        if nr_retries:
            nr_retries -= 1
            continue
        if gfp_mask & __GFP_NOFAIL or (current is not None and current.fatal_signal):
            return -Errno.EINTR, memcg
        mem_cgroup_oom(k, over, gfp_mask, get_order_bug(nr_pages), nr_pages)
        if not gfp_mask & __GFP_NOFAIL:
            return -Errno.ENOMEM, memcg
        return -Errno.EINTR, memcg


def try_charge_memcg(k, memcg: MemCgroup, gfp_mask: int, nr_pages: int) -> tuple[int, MemCgroup]:
    """The 6.x charge loop: 0 or -ENOMEM, never a bypass to root.

    Batch attempt, exact attempt, then rounds of reclaim on the memcg over its limit (a `max`
    event each), one drain of the per-CPU stocks, MAX_RECLAIM_RETRIES more rounds, and the
    OOM killer, which runs here, in the charge. A charge that must not fail is forced past the
    limit."""

    prof = k.profile
    batch = max(prof.charge_batch, nr_pages)
    nr_retries = prof.reclaim_retries
    noswap = drained = passed_oom = raised_max_event = False
    current = k.current
    if memcg.is_root():
        return 0, memcg
    while True:
        if consume_stock(k, memcg, nr_pages):
            return 0, memcg
        over, memsw_failed = _charge_counters(k, memcg, batch)
        if over is None:
            if batch > nr_pages:
                refill_stock(k, memcg, batch - nr_pages)
            _note_over_high(k, memcg, batch, gfp_mask)
            return 0, memcg
        noswap = noswap or memsw_failed
        if batch > nr_pages:
            batch = nr_pages
            continue
        if current is not None and current.memcg_oom is not None:
            return _nomem_or_force(k, memcg, over, gfp_mask, nr_pages, raised_max_event)
        if not gfp_mask & __GFP_WAIT:
            return _nomem_or_force(k, memcg, over, gfp_mask, nr_pages, raised_max_event)
        memcg_memory_event(over, "max")
        raised_max_event = True
        nr_reclaimed = try_to_free_mem_cgroup_pages(k, over, gfp_mask, noswap)
        if mem_cgroup_margin(k, over) >= nr_pages:
            continue
        if not drained:
            drain_all_stock(k, over)
            drained = True
            continue
        if gfp_mask & __GFP_NORETRY:
            return _nomem_or_force(k, memcg, over, gfp_mask, nr_pages, raised_max_event)
        if nr_reclaimed and nr_pages <= prof.costly_order_pages:
            continue
        if gfp_mask & __GFP_RETRY_MAYFAIL:
            return _nomem_or_force(k, memcg, over, gfp_mask, nr_pages, raised_max_event)
        if nr_retries:
            nr_retries -= 1
            continue
        if gfp_mask & __GFP_NOFAIL:
            return _force_charge(k, memcg, over, nr_pages, raised_max_event)
        if passed_oom and task_is_dying(current):
            return _nomem_or_force(k, memcg, over, gfp_mask, nr_pages, raised_max_event)
        # bug B8 put back: the order of nr_pages, not of nr_pages * PAGE_SIZE
        order = get_order_bug(nr_pages) if "B8" in k.inject else get_order(nr_pages)
        if mem_cgroup_oom(k, over, gfp_mask, order, nr_pages):
            # Retry, MAX_RECLAIM_RETRIES rounds more, even when the charging task itself was
            # the victim: its memory goes only when it exits, after this charge (the OOM
            # reaper waits 2 s since 5.18), so those rounds fail unless reclaim finds pages,
            # and then passed_oom ends the charge (35 `max` events in all, every run on the
            # real 6.1 and 6.12, against 18 without them)
            passed_oom = True
            nr_retries = prof.reclaim_retries
            continue
        return _nomem_or_force(k, memcg, over, gfp_mask, nr_pages, raised_max_event)


def _note_over_high(k, memcg: MemCgroup, batch: int, gfp_mask: int) -> None:
    """After a charge: if the memcg or an ancestor is over memory.high (or swap.high), the task
    owes reclaim, paid on its way back to user space; past a batch's worth, at once."""
    current = k.current
    if current is None:
        return
    m = memcg
    while m is not None:
        if m.res.usage > m.res.high or (m.swap is not None and m.swap.usage > m.swap.high):
            current.memcg_nr_pages_over_high += batch
            break
        m = m.parent_mem_cgroup()
    if (current.memcg_nr_pages_over_high > k.profile.charge_batch
            and gfp_mask & __GFP_WAIT):
        mem_cgroup_handle_over_high(k, current)


MEMCG_DELAY_PRECISION_SHIFT = 20
MEMCG_DELAY_SCALING_SHIFT = 14
HZ = 250
MEMCG_MAX_HIGH_DELAY_JIFFIES = 2 * HZ


def _max_overage(memcg: MemCgroup, counter: str) -> int:
    """mem_find_max_overage / swap_find_max_overage: the largest (usage - high) / high up the
    tree, in 1 / 2**20; a swap overage counts a swap_high event where it is found."""
    top = 0
    m = memcg
    while m is not None and not m.is_root():
        c = getattr(m, counter)
        if c.usage > c.high:
            if counter == "swap":
                memcg_memory_event(m, "swap_high")
            high = max(c.high, 1)
            top = max(top, ((c.usage - c.high) << MEMCG_DELAY_PRECISION_SHIFT) // high)
        m = m.parent_mem_cgroup()
    return top


def calculate_high_delay(nr_pages: int, max_overage: int, batch: int) -> int:
    """The throttling penalty in jiffies: quadratic in the overage, scaled by the charge."""
    if not max_overage:
        return 0
    penalty = (max_overage * max_overage * HZ) >> (MEMCG_DELAY_PRECISION_SHIFT
                                                  + MEMCG_DELAY_SCALING_SHIFT)
    return penalty * nr_pages // batch


def reclaim_high(k, memcg: MemCgroup, nr_pages: int) -> int:
    """Reclaim nr_pages from each memcg up the tree that is over memory.high (a `high` event
    each)."""

    nr_reclaimed = 0
    m = memcg
    while m is not None and not m.is_root():
        if m.res.usage > m.res.high:
            memcg_memory_event(m, "high")
            nr_reclaimed += try_to_free_mem_cgroup_pages(k, m, GFP_KERNEL, False, nr_pages)
        m = m.parent_mem_cgroup()
    return nr_reclaimed


def mem_cgroup_handle_over_high(k, task) -> None:
    """On return to user space: reclaim what the task's charges put over memory.high, retrying
    while reclaim progresses and the overage would cost a throttling delay. (The delay itself
    is time, which the model does not have: the task goes on.)"""

    nr_pages = task.memcg_nr_pages_over_high
    if not nr_pages:
        return
    task.memcg_nr_pages_over_high = 0
    memcg = get_mem_cgroup_from_mm(k, task.mm)
    nr_retries = k.profile.reclaim_retries
    in_retry = False
    saved = k.current
    k.current = task
    try:
        while not task_is_dying(task):
            nr_reclaimed = reclaim_high(k, memcg, 32 if in_retry else nr_pages)
            batch = k.profile.charge_batch
            penalty = calculate_high_delay(nr_pages, _max_overage(memcg, "res"), batch)
            if memcg.swap is not None:
                penalty += calculate_high_delay(nr_pages, _max_overage(memcg, "swap"), batch)
            penalty = min(penalty, MEMCG_MAX_HIGH_DELAY_JIFFIES)
            if penalty <= HZ // 100:
                break
            if nr_reclaimed or nr_retries:
                if not nr_reclaimed:
                    nr_retries -= 1
                in_retry = True
                continue
            break
    finally:
        k.current = saved


def _nomem_or_force(k, memcg, over, gfp_mask: int, nr_pages: int,
                    raised_max_event: bool) -> tuple[int, MemCgroup]:
    if not gfp_mask & (__GFP_NOFAIL | __GFP_HIGH):
        if k.current is not None:
            k.current.memcg_nomem = True
        return -Errno.ENOMEM, memcg
    return _force_charge(k, memcg, over, nr_pages, raised_max_event)


def _force_charge(k, memcg, over, nr_pages: int, raised_max_event: bool):
    """page_counter_charge past the limit: usage may end above max."""
    if not raised_max_event:
        memcg_memory_event(over, "max")
    memcg.res.charge(nr_pages)
    if k.do_swap_account:
        memcg.memsw.charge(nr_pages)
    return 0, memcg


def get_order(nr_pages: int) -> int:
    """get_order(nr_pages * PAGE_SIZE): the allocation order of nr_pages."""
    order = 0
    while (1 << order) < nr_pages:
        order += 1
    return order


def get_order_bug(nr_pages: int) -> int:
    """3.17 passes get_order(nr_pages), not get_order(nr_pages * PAGE_SIZE) (bug B8): a THP
    charge looks like order 0 to the OOM decision."""
    size = nr_pages
    order = 0
    while (4096 << order) < size:
        order += 1
    return order


MEM_CGROUP_MAX_RECLAIM_LOOPS = 100


def mem_cgroup_reclaim(k, memcg: MemCgroup, gfp_mask: int, noswap: bool,
                       shrink: bool = False) -> int:
    """Limit reclaim on memcg's subtree: rounds of try_to_free_mem_cgroup_pages until there is
    room, or two rounds freed nothing; stocks are drained from the second round on.

    Without swapping when the memsw limit failed, or (except for a limit shrink) when it equals
    the memory limit (memsw_is_minimum): swapping would not make room. A limit shrink
    (MEM_CGROUP_RECLAIM_SHRINK) stops at the first progress; and as the old limit still leaves
    a margin, a 3.17 v1 resize never drains the stocks. (The kernel drains other CPUs' stocks
    asynchronously; here the drain completes at once.)
    """
    from . import vmscan

    if not shrink:
        noswap = noswap or (k.do_swap_account and memcg.res.limit == memcg.memsw.limit)
    total = 0
    for loop in range(MEM_CGROUP_MAX_RECLAIM_LOOPS):
        if loop:
            drain_all_stock(k, memcg)
        total += vmscan.try_to_free_mem_cgroup_pages(k, memcg, gfp_mask, noswap)
        if total and shrink:
            break
        if mem_cgroup_margin(k, memcg):
            break
        if loop and not total:
            break
    return total


def mem_cgroup_oom(k, memcg: MemCgroup, gfp_mask: int, order: int, nr_pages: int) -> bool:
    """A charge found memcg full after reclaim: True when the OOM killer freed (or is freeing)
    memory, so that the charge may be retried.

    3.17 (profile.charge_loop) only records the OOM in a task in a user fault: the charge
    fails, and mem_cgroup_oom_synchronize kills (or waits) at the end of the fault. 6.x records
    it that way only for a v1 memcg with oom_kill_disable, and otherwise runs the killer now;
    a costly order never OOMs (oom_skips_costly_order)."""

    prof = k.profile
    current = k.current
    if prof.charge_loop == "3.17":
        if current is not None and current.memcg_may_oom:
            k.oom_charges.append((memcg.id, nr_pages))
            current.memcg_oom = memcg
            current.memcg_oom_order = order
        return False
    if prof.oom_skips_costly_order and (1 << order) > prof.costly_order_pages:
        return False
    k.oom_charges.append((memcg.id, nr_pages))
    memcg_memory_event(memcg, "oom")
    if memcg.oom_kill_disable:
        if current is not None and current.memcg_may_oom:
            current.memcg_oom = memcg
            current.memcg_oom_order = order
        return False
    return mem_cgroup_out_of_memory(k, memcg, order)


def get_mem_cgroup_from_mm(k, mm) -> MemCgroup:
    """The memcg of mm->owner; root for a kernel context (mm NULL) or an offline memcg."""
    if mm is None or mm.owner is None:
        return k.root_mem_cgroup
    memcg = mm.owner.memcg
    return memcg if memcg.online else k.root_mem_cgroup


def try_get_mem_cgroup_from_page(k, pfn: int) -> MemCgroup | None:
    """For a locked page: its memcg if USED, else the owner recorded for its swap slot."""
    k.bug_on(not k.mem_map.flags[pfn] & PG_locked, pfn, "!PageLocked(page)")
    memcg = None
    if k.pc.flags[pfn] & PCG_USED:
        memcg = k.memcg_by_id[int(k.pc.memcg[pfn])]
    elif k.mem_map.flags[pfn] & PG_swapcache:
        memcg = k.memcg_by_id.get(k.swap_cgroup.lookup(int(k.mem_map.private[pfn])))
    if memcg is not None and not memcg.online:
        return None
    return memcg


@traced
def mem_cgroup_try_charge(k, pfn: int, mm, gfp_mask: int) -> tuple[int, MemCgroup | None]:
    """Reserve the charge for a page about to be instantiated (3.17; mem_cgroup_charge from
    5.8); returns (0 or -ENOMEM, memcg) for mem_cgroup_commit_charge or _cancel_charge.

    memcg None with 0 means nothing to commit (a repeat fault on a charged swap-cache page).
    """
    if k.profile.charge_at_instantiation:
        raise ModelBug("mem_cgroup_try_charge on a 5.8+ kernel, which charges with "
                       "mem_cgroup_charge")
    flags = int(k.mem_map.flags[pfn])
    if flags & PG_swapcache and k.pc.flags[pfn] & PCG_USED:
        return 0, None
    nr_pages = HPAGE_PMD_NR if flags & PG_head else 1
    memcg = None
    if k.do_swap_account and flags & PG_swapcache:
        memcg = try_get_mem_cgroup_from_page(k, pfn)
    if memcg is None:
        memcg = get_mem_cgroup_from_mm(k, mm)
    ret, memcg = try_charge(k, memcg, gfp_mask, nr_pages)
    if ret == -Errno.EINTR:
        memcg, ret = k.root_mem_cgroup, 0
    if ret == 0:
        k.inflight[memcg.id] = k.inflight.get(memcg.id, 0) + nr_pages
    return ret, memcg


@traced
def mem_cgroup_charge(k, pfn: int, mm, gfp_mask: int) -> int:
    """Charge a page nobody can see yet to mm's memcg, in one step (5.8 on): 0 or -ENOMEM.

    Nothing is left to commit or cancel: a page that then loses its race is uncharged when it
    is freed."""
    memcg = get_mem_cgroup_from_mm(k, mm)
    return _charge_memcg(k, pfn, memcg, gfp_mask)


def memcg_kmem_charge_page(k, memcg: MemCgroup, nr_pages: int, item: str,
                           nofail: bool = False) -> int:
    """__memcg_kmem_charge_page: charge kernel memory like any page (it may reclaim and OOM),
    and, on v1, the kmem counter too. 0 or -ENOMEM."""
    if not k.profile.kmem_accounting or memcg.is_root():
        return 0
    ret, _ = try_charge(k, memcg, GFP_KERNEL | (__GFP_NOFAIL if nofail else 0), nr_pages)
    if ret:
        return ret
    if not k.cgroup_v2:
        memcg.kmem.charge(nr_pages)
    memcg.kmem_stat[item] += nr_pages
    return 0


def memcg_kmem_uncharge_page(k, memcg_id: int, nr_pages: int, item: str) -> None:
    """obj_cgroup_uncharge_pages: the pages go back into the per-CPU stock (refill_stock)."""
    memcg = k.memcg_by_id.get(memcg_id)
    if memcg is None or not k.profile.kmem_accounting:
        return
    memcg.kmem_stat[item] -= nr_pages
    if not k.cgroup_v2:
        memcg.kmem.uncharge(nr_pages)
    if memcg.is_root():
        # charged below and reparented to root when that memcg went offline; root keeps no
        # stock, so its counters give the pages back at once
        memcg.res.uncharge(nr_pages)
        if k.do_swap_account:
            memcg.memsw.uncharge(nr_pages)
        return
    refill_stock(k, memcg, nr_pages)
    stock = k.this_cpu_stock()
    if stock.nr_pages > k.profile.charge_batch:
        drain_stock(k, stock)


def memcg_offline_kmem(k, memcg: MemCgroup) -> None:
    """css_offline (6.x): kernel memory charged to a dying memcg is the parent's from now on
    (its obj_cgroup is reparented); the dead memcg's own level lets go of it."""
    parent = memcg.parent
    nr = sum(memcg.kmem_stat.values())
    if not nr:
        return
    for item, pages in memcg.kmem_stat.items():
        parent.kmem_stat[item] += pages
        memcg.kmem_stat[item] = 0
    memcg.res.cancel(nr)
    if k.do_swap_account:
        memcg.memsw.cancel(nr)
    if not k.cgroup_v2:
        memcg.kmem.cancel(nr)
    for mm in k.mms.values():
        for key, owner in mm.pgtables.items():
            if owner == memcg.id:
                mm.pgtables[key] = parent.id
        if mm.pgd_memcg == memcg.id:
            mm.pgd_memcg = parent.id
    for task in k.tasks.values():
        if task.kmem_memcg == memcg.id:
            task.kmem_memcg = parent.id


def _charge_memcg(k, pfn: int, memcg: MemCgroup, gfp_mask: int) -> int:
    nr_pages = k.mem_map.nr_pages_of(pfn)
    ret, memcg = try_charge(k, memcg, gfp_mask, nr_pages)
    if ret:
        return ret
    commit_charge(k, pfn, memcg, False)
    mem_cgroup_charge_statistics(k, memcg, pfn, nr_pages)
    return 0


@traced
def mem_cgroup_swapin_charge_page(k, pfn: int, mm, entry: int) -> int:
    """Charge a page entering the swap cache from a swap read (5.8 on; read-ahead pages too):
    to the memcg recorded for the slot if it is online, else to mm's. 0 or -ENOMEM; a no-op
    where pages are charged at the fault (3.17)."""
    if not k.profile.charge_at_instantiation:
        return 0
    memcg = k.memcg_by_id.get(k.swap_cgroup.lookup(entry))
    if memcg is None or not memcg.online:
        memcg = get_mem_cgroup_from_mm(k, mm)
    return _charge_memcg(k, pfn, memcg, GFP_KERNEL)


@traced
def mem_cgroup_swapin_uncharge_swap(k, entry: int) -> None:
    """v1, after a swapped-in page entered the swap cache: the page holds memory+swap now, so
    drop the slot's duplicate memsw charge (v2 keeps swap charged until the slot is freed)."""
    if k.profile.charge_at_instantiation and k.do_swap_account:
        mem_cgroup_uncharge_swap(k, entry)


def mem_cgroup_id_get_online(memcg: MemCgroup) -> MemCgroup:
    """The memcg itself, or its closest online ancestor: who a swap slot is charged to."""
    while not memcg.online:
        memcg = memcg.parent
    return memcg


@traced
def mem_cgroup_try_charge_swap(k, pfn: int, entry: int) -> int:
    """v2, when a page gets a swap slot: charge the swap counter of the page's memcg (its
    closest online ancestor) and record it for the slot. -ENOMEM at swap.max (events max and
    fail), and entry 0 (no slot) counts a fail event. A no-op with memsw accounting (v1) or a
    3.17 kernel, where the slot takes the page's charge at swapout."""
    if k.do_swap_account or not k.cgroup_v2:
        return 0
    pcf = int(k.pc.flags[pfn])
    if not pcf & PCG_USED:
        return 0
    memcg = k.memcg_by_id[int(k.pc.memcg[pfn])]
    if not entry:
        memcg_memory_event(memcg, "swap_fail")
        return 0
    memcg = mem_cgroup_id_get_online(memcg)
    nr_pages = k.mem_map.nr_pages_of(pfn)
    if not memcg.is_root():
        fail = memcg.swap.try_charge(nr_pages)
        if fail is not None:
            memcg_memory_event(fail.owner, "swap_max")
            memcg_memory_event(fail.owner, "swap_fail")
            return -Errno.ENOMEM
    oldid = k.swap_cgroup.record(entry, memcg.id)
    k.bug_on(oldid != 0, pfn, f"swap_cgroup_record(entry {entry}) found id {oldid}")
    memcg.swap_css_refs += nr_pages
    memcg.stat[MEM_CGROUP_STAT_SWAP] += nr_pages
    return 0


def commit_charge(k, pfn: int, memcg: MemCgroup, lrucare: bool) -> None:
    """Bind a page to memcg: pc->mem_cgroup and USED|MEM(|MEMSW); lrucare moves it between
    lruvecs if it already sits on an LRU list."""
    pc = k.pc
    k.bug_on(pc.flags[pfn] & PCG_USED, pfn, "PageCgroupUsed(pc)")
    isolated = lock_page_lru(k, pfn) if lrucare else False
    pc.memcg[pfn] = memcg.id
    # "MEMSW-NOACCT" puts back the bug of setting PCG_MEMSW with swap accounting off
    memsw = k.do_swap_account or "MEMSW-NOACCT" in k.inject
    pc.flags[pfn] = PCG_USED | PCG_MEM | (PCG_MEMSW if memsw else 0)
    if lrucare:
        unlock_page_lru(k, pfn, isolated)


def _end_inflight(k, memcg: MemCgroup, nr_pages: int, what: str) -> None:
    left = k.inflight.get(memcg.id, 0) - nr_pages
    if left < 0:
        k.warn("charge", f"{what} of {nr_pages} pages on {memcg.name} without a try_charge")
        left = 0
    if left:
        k.inflight[memcg.id] = left
    else:
        k.inflight.pop(memcg.id, None)


@traced
def mem_cgroup_commit_charge(k, pfn: int, memcg: MemCgroup | None, lrucare: bool) -> None:
    """Commit a try_charge reservation to a page that now has its mapping."""
    mem_map = k.mem_map
    k.bug_on(mem_map.mapping[pfn] == 0, pfn, "!page->mapping")
    k.bug_on(mem_map.flags[pfn] & PG_lru and not lrucare, pfn, "PageLRU(page) && !lrucare")
    if memcg is None:
        return
    nr_pages = mem_map.nr_pages_of(pfn)
    commit_charge(k, pfn, memcg, lrucare)
    mem_cgroup_charge_statistics(k, memcg, pfn, nr_pages)
    _end_inflight(k, memcg, nr_pages, "commit")
    # A swap-cache page now holds memory+swap itself: drop the slot's duplicate memsw charge.
    # (reuse_swap_page may have taken the page out of swap cache since try_charge, which is why
    # the test is here and why a repeat fault passes memcg None instead.)
    if k.do_swap_account and mem_map.flags[pfn] & PG_swapcache:
        mem_cgroup_uncharge_swap(k, int(mem_map.private[pfn]))


def _cancel_charge(k, memcg: MemCgroup, nr_pages: int) -> None:
    """cancel_charge: give nr_pages of charge back (root was never charged)."""
    if memcg.is_root():
        return
    memcg.res.uncharge(nr_pages)
    if k.do_swap_account:
        memcg.memsw.uncharge(nr_pages)


@traced
def mem_cgroup_cancel_charge(k, pfn: int, memcg: MemCgroup | None) -> None:
    """Give a try_charge reservation back: the page was never committed."""
    if memcg is None:
        return
    nr_pages = k.mem_map.nr_pages_of(pfn)
    _cancel_charge(k, memcg, nr_pages)
    _end_inflight(k, memcg, nr_pages, "cancel")


# ------------------------------------------------------------------------------------------
# uncharging


def _uncharge_batch(k, memcg: MemCgroup, pgpgout: int, nr_mem: int, nr_memsw: int,
                    nr_anon: int, nr_file: int, nr_huge: int) -> None:
    if not memcg.is_root():
        if nr_mem:
            memcg.res.uncharge(nr_mem)
        if nr_memsw:
            memcg.memsw.uncharge(nr_memsw)
    if k.profile.stats == "charge-type":
        memcg.stat[MEM_CGROUP_STAT_RSS] -= nr_anon
        memcg.stat[MEM_CGROUP_STAT_CACHE] -= nr_file
        memcg.stat[MEM_CGROUP_STAT_RSS_HUGE] -= nr_huge
    memcg.events[MEM_CGROUP_EVENTS_PGPGOUT] += pgpgout
    memcg.nr_page_events += nr_anon + nr_file


@traced
def mem_cgroup_uncharge_list(k, pfns: Iterable[int]) -> None:
    """Uncharge pages after their final put, batching runs of pages of the same memcg."""
    mem_map, pc = k.mem_map, k.pc
    memcg = None
    nr_mem = nr_memsw = nr_anon = nr_file = nr_huge = pgpgout = 0
    for pfn in pfns:
        k.bug_on(mem_map.flags[pfn] & PG_lru, pfn, "PageLRU(page)")
        k.bug_on(mem_map.refcount[pfn] != 0, pfn, "page_count(page)")
        pcf = int(pc.flags[pfn])
        if not pcf & PCG_USED:
            continue
        this = k.memcg_by_id[int(pc.memcg[pfn])]
        if this is not memcg:
            if memcg is not None:
                _uncharge_batch(k, memcg, pgpgout, nr_mem, nr_memsw, nr_anon, nr_file, nr_huge)
                nr_mem = nr_memsw = nr_anon = nr_file = nr_huge = pgpgout = 0
            memcg = this
        nr = 1
        if mem_map.flags[pfn] & PG_head:
            nr = HPAGE_PMD_NR
            nr_huge += nr
        if mem_map.flags[pfn] & PG_anon:
            nr_anon += nr
        else:
            nr_file += nr
        if pcf & PCG_MEM:
            nr_mem += nr
        if pcf & PCG_MEMSW:
            nr_memsw += nr
        pc.flags[pfn] = 0      # pc->mem_cgroup is left stale
        pgpgout += 1
    if memcg is not None:
        _uncharge_batch(k, memcg, pgpgout, nr_mem, nr_memsw, nr_anon, nr_file, nr_huge)


@traced
def mem_cgroup_uncharge(k, pfn: int) -> None:
    """Uncharge one page after its final put (every final put passes here)."""
    if not k.pc.flags[pfn] & PCG_USED:
        return
    mem_cgroup_uncharge_list(k, (pfn,))


# ------------------------------------------------------------------------------------------
# migration, swap, charge moving, THP split


@traced
def mem_cgroup_migrate(k, oldpage: int, newpage: int, lrucare: bool) -> None:
    """Give newpage the charge of oldpage, whose place it takes (migration, and page cache
    replacement up to 6.6); both pages are locked. The kernel's rule is profile.migrate."""
    mem_map, pc = k.mem_map, k.pc
    k.bug_on(not mem_map.flags[oldpage] & PG_locked, oldpage, "!PageLocked(oldpage)")
    k.bug_on(not mem_map.flags[newpage] & PG_locked, newpage, "!PageLocked(newpage)")
    k.bug_on(not lrucare and mem_map.flags[oldpage] & PG_lru, oldpage,
             "!lrucare && PageLRU(oldpage)")
    k.bug_on(not lrucare and mem_map.flags[newpage] & PG_lru, newpage,
             "!lrucare && PageLRU(newpage)")
    k.bug_on(bool(mem_map.flags[oldpage] & PG_anon) != bool(mem_map.flags[newpage] & PG_anon),
             newpage, "PageAnon(oldpage) != PageAnon(newpage)")
    if pc.flags[newpage] & PCG_USED:     # page cache replacement: new page already charged
        return
    rule = {"transfer-with-stats": _migrate_transfer_with_stats,
            "force-charge": _migrate_force_charge,
            "transfer": _migrate_transfer}[k.profile.migrate]
    rule(k, oldpage, newpage, lrucare)


def _charge_of_oldpage(k, oldpage: int, newpage: int) -> tuple[MemCgroup, int] | None:
    """oldpage's memcg and size, or None when it is uncharged already (re-entrant migration)."""
    mem_map, pc = k.mem_map, k.pc
    pcf = int(pc.flags[oldpage])
    if not pcf & PCG_USED:
        return None
    k.bug_on(not pcf & PCG_MEM, oldpage, "!(pc->flags & PCG_MEM)")
    k.bug_on(k.do_swap_account and not pcf & PCG_MEMSW, oldpage,
             "do_swap_account && !(pc->flags & PCG_MEMSW)")
    nr_pages = 1
    if mem_map.flags[oldpage] & PG_head:
        nr_pages = HPAGE_PMD_NR
        k.bug_on(not mem_map.flags[newpage] & PG_head, newpage, "!PageTransHuge(newpage)")
    return k.memcg_by_id[int(pc.memcg[oldpage])], nr_pages


def _migrate_transfer_with_stats(k, oldpage: int, newpage: int, lrucare: bool) -> None:
    """3.17: the charge moves to newpage with no counter change; the charge statistics of
    oldpage go down and those of newpage up."""
    pc = k.pc
    if "B3" in k.inject:
        # bug B3 put back (the first version of the rewrite): the old page keeps PCG_USED and
        # its statistics, only the charge bits go, and nothing stops a second migration
        pcf = int(pc.flags[oldpage])
        k.bug_on(not pcf & PCG_MEM, oldpage, "!(pc->flags & PCG_MEM)")
        memcg = k.memcg_by_id[int(pc.memcg[oldpage])]
        pc.flags[oldpage] = pcf & ~(PCG_MEM | PCG_MEMSW)
        commit_charge(k, newpage, memcg, lrucare)
        mem_cgroup_charge_statistics(k, memcg, newpage, k.mem_map.nr_pages_of(oldpage))
        return
    charge = _charge_of_oldpage(k, oldpage, newpage)
    if charge is None:
        return
    memcg, nr_pages = charge
    isolated = lock_page_lru(k, oldpage) if lrucare else False
    pc.flags[oldpage] = 0
    if lrucare:
        unlock_page_lru(k, oldpage, isolated)
    mem_cgroup_charge_statistics(k, memcg, oldpage, -nr_pages)
    commit_charge(k, newpage, memcg, lrucare)
    mem_cgroup_charge_statistics(k, memcg, newpage, nr_pages)


def _migrate_force_charge(k, oldpage: int, newpage: int, lrucare: bool) -> None:
    """4.5 to 6.6 (the 6.1 profile): newpage is charged to oldpage's memcg past any limit, and
    oldpage keeps its charge until it is freed, so usage counts both pages meanwhile."""
    charge = _charge_of_oldpage(k, oldpage, newpage)
    if charge is None:
        return
    memcg, nr_pages = charge
    _force_charge_new(k, memcg, newpage, nr_pages, lrucare)


def _migrate_transfer(k, oldpage: int, newpage: int, lrucare: bool) -> None:
    """6.7 on: the memcg binding (memcg_data) moves from oldpage to newpage; no counter or
    statistic changes."""
    pc = k.pc
    if _charge_of_oldpage(k, oldpage, newpage) is None:
        return
    pc.memcg[newpage] = pc.memcg[oldpage]
    pc.flags[newpage] = pc.flags[oldpage]
    pc.flags[oldpage] = 0


def _force_charge_new(k, memcg: MemCgroup, newpage: int, nr_pages: int, lrucare: bool) -> None:
    """Charge newpage to memcg past any limit (the old page stays charged until freed)."""
    if not memcg.is_root():
        memcg.res.charge(nr_pages)
        if k.do_swap_account:
            memcg.memsw.charge(nr_pages)
    commit_charge(k, newpage, memcg, lrucare)
    mem_cgroup_charge_statistics(k, memcg, newpage, nr_pages)


@traced
def mem_cgroup_replace_folio(k, old: int, new: int, lrucare: bool = True) -> None:
    """Page cache replacement (FUSE splice, shmem_replace_page). Through mem_cgroup_migrate
    (lrucare: old may sit on an LRU list) until 6.6; from 6.7 new is force-charged to old's
    memcg and old is uncharged when freed."""
    if k.profile.replace_page_cache == "migrate":
        mem_cgroup_migrate(k, old, new, lrucare)
        return
    pc = k.pc
    if pc.flags[new] & PCG_USED or not pc.flags[old] & PCG_USED:
        return
    memcg = k.memcg_by_id[int(pc.memcg[old])]
    _force_charge_new(k, memcg, new, k.mem_map.nr_pages_of(old), True)


@traced
def mem_cgroup_swapout(k, pfn: int, entry: int) -> None:
    """Hand the page's memory+swap charge to its swap entry (refcount frozen, off LRU)."""
    mem_map, pc = k.mem_map, k.pc
    k.bug_on(mem_map.flags[pfn] & PG_lru, pfn, "PageLRU(page)")
    k.bug_on(mem_map.refcount[pfn] != 0, pfn, "page_count(page)")
    if not k.do_swap_account:
        return
    pcf = int(pc.flags[pfn])
    if not pcf & PCG_USED:               # read-ahead page, never charged
        return
    k.bug_on(not pcf & PCG_MEMSW, pfn, "!(pc->flags & PCG_MEMSW)")
    memcg = k.memcg_by_id[int(pc.memcg[pfn])]
    if k.profile.swapout_uncharges_memory:
        # 6.x: the page gives up its whole charge now; the slot is charged to the closest
        # online ancestor, whose memsw takes the page's memsw charge
        swap_memcg = mem_cgroup_id_get_online(memcg)
        oldid = k.swap_cgroup.record(entry, swap_memcg.id)
        k.bug_on(oldid != 0, pfn, f"swap_cgroup_record(entry {entry}) found id {oldid}")
        swap_memcg.swap_css_refs += 1
        mem_cgroup_swap_statistics(swap_memcg, True)
        pc.flags[pfn] = 0
        if not memcg.is_root():
            memcg.res.uncharge(1)
        if swap_memcg is not memcg:
            if not swap_memcg.is_root():
                swap_memcg.memsw.charge(1)
            memcg.memsw.uncharge(1)
        mem_cgroup_charge_statistics(k, memcg, pfn, -1)
        return
    oldid = k.swap_cgroup.record(entry, memcg.id)
    k.bug_on(oldid != 0, pfn, f"swap_cgroup_record(entry {entry}) found id {oldid}")
    pc.flags[pfn] = pcf & ~PCG_MEMSW
    memcg.swap_css_refs += 1
    mem_cgroup_swap_statistics(memcg, True)


@traced
def mem_cgroup_uncharge_swap(k, entry: int) -> None:
    """Clear the slot's record and drop the memsw page it held, if any."""
    memcg_id = k.swap_cgroup.record(entry, 0)
    memcg = k.memcg_by_id.get(memcg_id)
    if memcg is None:
        return
    if not memcg.is_root():
        if k.do_swap_account:
            memcg.memsw.uncharge(1)
        elif memcg.swap is not None:
            memcg.swap.uncharge(1)
    mem_cgroup_swap_statistics(memcg, False)
    memcg.swap_css_refs -= 1


@traced
def mem_cgroup_move_account(k, pfn: int, nr_pages: int, from_: MemCgroup,
                            to: MemCgroup, page_locked: bool = False) -> int:
    """Move a charged, isolated page's binding and statistics (not its counters) to `to`.
    page_locked: the caller took the page lock (the charge-moving path's trylock_page)."""
    mem_map, pc = k.mem_map, k.pc
    if from_ is to:
        raise AssertionError("VM_BUG_ON(from == to)")
    k.bug_on(mem_map.flags[pfn] & PG_lru, pfn, "PageLRU(page)")
    if nr_pages > 1 and not mem_map.flags[pfn] & PG_head:
        return -Errno.EBUSY
    # trylock_page excludes mem_cgroup_migrate of page cache replacement, which does not
    # isolate the old page
    if not page_locked and mem_map.flags[pfn] & PG_locked:
        return -Errno.EBUSY
    if not pc.flags[pfn] & PCG_USED or pc.memcg[pfn] != from_.id:
        return -Errno.EINVAL
    flags = int(mem_map.flags[pfn])
    if not flags & PG_anon and mem_map.mapcount[pfn] > 0:
        from_.stat[MEM_CGROUP_STAT_FILE_MAPPED] -= nr_pages
        to.stat[MEM_CGROUP_STAT_FILE_MAPPED] += nr_pages
    if flags & PG_writeback:
        from_.stat[MEM_CGROUP_STAT_WRITEBACK] -= nr_pages
        to.stat[MEM_CGROUP_STAT_WRITEBACK] += nr_pages
    pc.memcg[pfn] = to.id
    mem_cgroup_charge_statistics(k, to, pfn, nr_pages)
    mem_cgroup_charge_statistics(k, from_, pfn, -nr_pages)
    return 0


@traced
def mem_cgroup_move_swap_account(k, entry: int, from_: MemCgroup, to: MemCgroup) -> int:
    """Move a swap record from one memcg to another (cmpxchg); counters are fixed up by the
    charge-moving caller."""
    if not k.swap_cgroup.cmpxchg(entry, from_.id, to.id):
        return -Errno.EINVAL
    mem_cgroup_swap_statistics(from_, False)
    mem_cgroup_swap_statistics(to, True)
    to.swap_css_refs += 1
    from_.swap_css_refs -= 1
    return 0


@traced
def mem_cgroup_split_huge_fixup(k, head: int) -> None:
    """THP split (under lru_lock): every tail takes the head's memcg and charge bits."""
    pc = k.pc
    tails = slice(head + 1, head + HPAGE_PMD_NR)
    pc.memcg[tails] = pc.memcg[head]
    pc.flags[tails] = pc.flags[head]
    if pc.flags[head] & PCG_USED and k.profile.stats == "charge-type":
        k.memcg_by_id[int(pc.memcg[head])].stat[MEM_CGROUP_STAT_RSS_HUGE] -= HPAGE_PMD_NR


# ------------------------------------------------------------------------------------------
# memory.stat (v1, 3.17)


def mem_cgroup_usage(k, memcg: MemCgroup, swap: bool) -> int:
    """usage_in_bytes in pages: the res (or memsw) counter; root's counters are never charged,
    so root reports the cache + rss (+ swap) of the whole tree."""
    if not memcg.is_root():
        return memcg.memsw.usage if swap else memcg.res.usage
    if k.profile.stats == "state":
        state = memcg_page_state(k, memcg)
        return state["file"] + state["anon"] + (state["swap"] if swap else 0)
    stats = [MEM_CGROUP_STAT_CACHE, MEM_CGROUP_STAT_RSS]
    if swap:
        stats.append(MEM_CGROUP_STAT_SWAP)
    return sum(m.stat[i] for m in memcg.subtree() for i in stats)


def mem_cgroup_nr_lru_pages(memcg: MemCgroup, lru: int) -> int:
    return sum(lv.lru_size[lru] for lv in memcg.lruvecs)


def memcg_get_hierarchical_limit(memcg: MemCgroup) -> tuple[int, int]:
    """The smallest res and memsw limits up the use_hierarchy chain."""
    limit, memsw_limit = memcg.res.limit, memcg.memsw.limit
    if not memcg.use_hierarchy:
        return limit, memsw_limit
    c = memcg.parent
    while c is not None and c.use_hierarchy:
        limit = min(limit, c.res.limit)
        memsw_limit = min(memsw_limit, c.memsw.limit)
        c = c.parent
    return limit, memsw_limit


def memcg_stat_show(k, memcg: MemCgroup, page_size: int = 4096) -> list[tuple[str, int]]:
    """The lines of 3.17's memory.stat, as (key, value): bytes for sizes, counts for events."""
    out: list[tuple[str, int]] = []
    stats = [i for i in range(MEM_CGROUP_STAT_NSTATS)
             if i != MEM_CGROUP_STAT_SWAP or k.do_swap_account]
    for i in stats:
        out.append((MEM_CGROUP_STAT_NAMES[i], memcg.stat[i] * page_size))
    for i in range(MEM_CGROUP_EVENTS_NSTATS):
        out.append((MEM_CGROUP_EVENTS_NAMES[i], memcg.events[i]))
    for lru in range(NR_LRU_LISTS):
        out.append((LRU_NAMES[lru], mem_cgroup_nr_lru_pages(memcg, lru) * page_size))
    limit, memsw_limit = memcg_get_hierarchical_limit(memcg)
    out.append(("hierarchical_memory_limit", k.v1_limit_bytes(limit)))
    if k.do_swap_account:
        out.append(("hierarchical_memsw_limit", k.v1_limit_bytes(memsw_limit)))
    tree = list(memcg.stat_tree())
    for i in stats:
        out.append((f"total_{MEM_CGROUP_STAT_NAMES[i]}",
                    sum(m.stat[i] for m in tree) * page_size))
    for i in range(MEM_CGROUP_EVENTS_NSTATS):
        out.append((f"total_{MEM_CGROUP_EVENTS_NAMES[i]}", sum(m.events[i] for m in tree)))
    for lru in range(NR_LRU_LISTS):
        out.append((f"total_{LRU_NAMES[lru]}",
                    sum(mem_cgroup_nr_lru_pages(m, lru) for m in tree) * page_size))
    return out


# ------------------------------------------------------------------------------------------
# memory.stat (v2, 6.x)

#: v2 memory.stat keys that are LRU list sizes
_LRU_KEYS = dict(zip(LRU_NAMES, range(NR_LRU_LISTS), strict=True))


def memcg_events(memcg: MemCgroup, item: str) -> int:
    """A vm event summed over the subtree (offline children included), as rstat shows it."""
    if item in ("pgfault", "pgmajfault", "pgpgin", "pgpgout"):
        idx = MEM_CGROUP_EVENTS_NAMES.index(item)
        return sum(m.events[idx] for m in memcg.subtree())
    return sum(m.vm_events.get(item, 0) for m in memcg.subtree())


def memory_stat_format(k, memcg: MemCgroup, local=None,
                       page_size: int = 4096) -> list[tuple[str, int]]:
    """The lines of v2 memory.stat, as (key, value): bytes for sizes, counts for events.

    kernel, pagetables and kernel_stack are the modelled kernel memory (mm/pgtable.py); slab,
    percpu, sock, vmalloc and zswap are not modelled and read 0."""

    state = memcg_page_state(k, memcg, local)
    tree = tuple(memcg.subtree())
    kmem = {item: sum(m.kmem_stat[item] for m in tree) for item in memcg.kmem_stat}
    state["kernel"] = sum(kmem.values())
    state["pagetables"] = kmem["pagetables"]
    state["kernel_stack"] = kmem["kernel_stack"]
    out: list[tuple[str, int]] = []
    for key in k.profile.v2_stat_keys:
        if key in state:
            out.append((key, state[key] * page_size))
        elif key in _LRU_KEYS:
            lru = _LRU_KEYS[key]
            out.append((key, sum(mem_cgroup_nr_lru_pages(m, lru) for m in memcg.subtree())
                        * page_size))
        elif key.startswith("workingset_"):
            out.append((key, memcg_events(memcg, key)))
        else:
            out.append((key, 0))
    for key in k.profile.v2_stat_events:
        if key in ("pgscan", "pgsteal"):
            val = sum(memcg_events(memcg, f"{key}_{how}")
                      for how in ("kswapd", "direct", "khugepaged", "proactive"))
        else:
            val = memcg_events(memcg, key)
        out.append((key, val))
    return out


# ------------------------------------------------------------------------------------------
# v2 control file writes


def memory_high_write(k, memcg: MemCgroup, high: int) -> int:
    """memory.high: set it, then reclaim down to it (never an OOM kill)."""

    memcg.res.set_high(high)
    drained = False
    nr_retries = k.profile.reclaim_retries
    while True:
        nr_pages = memcg.res.usage
        if nr_pages <= high:
            break
        if not drained:
            drain_all_stock(k, memcg)
            drained = True
            continue
        reclaimed = try_to_free_mem_cgroup_pages(k, memcg, GFP_KERNEL, False, nr_pages - high)
        if not reclaimed:
            if not nr_retries:
                break           # only rounds that free nothing use up the retries
            nr_retries -= 1
    return 0


def memory_max_write(k, memcg: MemCgroup, max_pages: int) -> int:
    """memory.max: set it at once (no -EBUSY), then reclaim, then OOM-kill until under it."""

    memcg.res.max = max_pages
    drained = False
    nr_reclaims = k.profile.reclaim_retries
    while True:
        nr_pages = memcg.res.usage
        if nr_pages <= max_pages:
            break
        if not drained:
            drain_all_stock(k, memcg)
            drained = True
            continue
        if nr_reclaims:
            if not try_to_free_mem_cgroup_pages(k, memcg, GFP_KERNEL, False, nr_pages - max_pages):
                nr_reclaims -= 1
            continue
        memcg_memory_event(memcg, "oom")
        if not mem_cgroup_out_of_memory(k, memcg, 0):
            break
    return 0


def memory_reclaim(k, memcg: MemCgroup, nr_to_reclaim: int, swappiness: int | None = None) -> int:
    """memory.reclaim: proactive reclaim of nr_to_reclaim pages; -EAGAIN after
    MAX_RECLAIM_RETRIES rounds that reclaim nothing; swappiness= (6.12) overrides the
    anon/file balance. The target's own protection does not count (it is the reclaim root)."""

    nr_reclaimed = 0
    nr_retries = k.profile.reclaim_retries
    while nr_reclaimed < nr_to_reclaim:
        reclaimed = try_to_free_mem_cgroup_pages(k, memcg, GFP_KERNEL, False,
                                                 nr_to_reclaim - nr_reclaimed,
                                                 swappiness=swappiness, proactive=True)
        if not reclaimed:
            if not nr_retries:
                return -Errno.EAGAIN
            nr_retries -= 1
        nr_reclaimed += reclaimed
    return 0


# Imported once this module's functions exist: these modules and this one call each other.
from .oom_kill import mem_cgroup_out_of_memory, task_is_dying  # noqa: E402
from .vmscan import try_to_free_mem_cgroup_pages  # noqa: E402
