"""The cgroup-v1 parts of mm/memcontrol.c in 3.17: limit resizing with reclaim, force_empty,
charge moving when a task moves (move_charge_at_immigrate), and reparenting at rmdir.

(Later kernels moved these to mm/memcontrol-v1.c, hence the module's name.)
"""

from __future__ import annotations

import numpy as np

from ..errors import Errno
from .gfp import __GFP_NORETRY, __GFP_WAIT, GFP_KERNEL
from .locking import Lock, TryLock, Unlock, mmap_sem, move_lock, page_lock, ptl, run_path
from .memcontrol import (
    MEM_CGROUP_EVENTS_NAMES,
    MemCgroup,
    _cancel_charge,
    drain_all_stock,
    mem_cgroup_move_account,
    mem_cgroup_move_swap_account,
    mem_cgroup_nr_lru_pages,
    mem_cgroup_reclaim,
    memcg_events,
    memcg_offline_kmem,
    try_charge,
)
from .mm_struct import PTE_HUGE, PTE_PRESENT, PTE_SWAP, PTE_VAL_MASK
from .mm_types import HPAGE_PMD_NR, LRU_NAMES, NR_LRU_LISTS, PG_anon, PG_lru
from .page_cgroup import PCG_USED
from .page_counter import PageCounter
from .swap import get_page_unless_zero, put_page
from .vmscan import isolate_lru_page, putback_lru_page
from .vmstat import memcg_page_state_local

MOVE_CHARGE_TYPE_ANON = 1 << 0
MOVE_CHARGE_TYPE_FILE = 1 << 1
MC_TARGET_NONE, MC_TARGET_PAGE, MC_TARGET_SWAP = range(3)


# ------------------------------------------------------------------------------------------
# limits


def mem_cgroup_resize_limit(k, memcg: MemCgroup, val: int, memsw: bool) -> int:
    """Set limit_in_bytes (or memsw.limit_in_bytes) in pages: reclaim while usage is above the
    new limit, giving up with -EBUSY after MEM_CGROUP_RECLAIM_RETRIES rounds per descendant
    that did not lower usage; -EINVAL if the memory limit would exceed the memsw limit."""
    if k.profile.counter == "page_counter":
        return mem_cgroup_resize_max(k, memcg, val, memsw)
    counter = memcg.memsw if memsw else memcg.res
    retry_count = k.profile.reclaim_retries * sum(1 for _ in memcg.subtree())
    oldusage = counter.usage
    ret = 0
    while retry_count:
        if memsw and memcg.res.limit > val or not memsw and memcg.memsw.limit < val:
            return -Errno.EINVAL
        ret = counter.set_limit(val)
        if not ret:
            break
        mem_cgroup_reclaim(k, memcg, GFP_KERNEL, noswap=memsw, shrink=True)
        if counter.usage >= oldusage:
            retry_count -= 1
        else:
            oldusage = counter.usage
    return ret


def mem_cgroup_resize_max(k, memcg: MemCgroup, val: int, memsw: bool) -> int:
    """The page_counter era's resize: set the limit, or drain the stocks once and then reclaim
    until it fits; -EBUSY on the first reclaim pass that frees nothing, -EINVAL if the memory
    limit would exceed the memsw limit. (No retry count: reclaim progress alone decides.)"""
    from . import vmscan

    counter = memcg.memsw if memsw else memcg.res
    drained = False
    while True:
        if memsw and memcg.res.limit > val or not memsw and memcg.memsw.limit < val:
            return -Errno.EINVAL
        if not counter.set_max(val):
            return 0
        if not drained:
            drain_all_stock(k, memcg)
            drained = True
            continue
        if not vmscan.try_to_free_mem_cgroup_pages(k, memcg, GFP_KERNEL, noswap=memsw):
            return -Errno.EBUSY


def mem_cgroup_force_empty(k, memcg: MemCgroup) -> int:
    """Reclaim everything reclaimable; 0 even if usage remains (reclaim_retries rounds without
    progress). From 3.19 the stocks are drained first."""
    from . import vmscan

    if k.profile.counter == "page_counter":
        drain_all_stock(k, memcg)
    nr_retries = k.profile.reclaim_retries
    while nr_retries and memcg.res.usage > 0:
        if not vmscan.try_to_free_mem_cgroup_pages(k, memcg, GFP_KERNEL, False):
            nr_retries -= 1
    return 0


# ------------------------------------------------------------------------------------------
# charge moving (cgroup attach with move_charge_at_immigrate)


class MoveCharge:
    """struct move_charge_struct `mc`: one charge move in progress."""

    def __init__(self, from_: MemCgroup, to: MemCgroup, flags: int):
        self.from_ = from_
        self.to = to
        self.flags = flags
        self.precharge = 0
        self.moved_charge = 0
        self.moved_swap = 0


def get_mctgt_type(k, mc: MoveCharge, vma, i: int):
    """What the pte at offset i of vma offers to move: (MC_TARGET_*, pfn or slot)."""
    pte = int(vma.pte[i])
    mem = k.mem_map
    pfn, ent = -1, 0
    if pte & PTE_PRESENT:
        pfn = pte & PTE_VAL_MASK
        if pte & PTE_HUGE:
            pfn -= pfn % HPAGE_PMD_NR
        anon = mem.flags[pfn] & PG_anon
        if not mc.flags & (MOVE_CHARGE_TYPE_ANON if anon else MOVE_CHARGE_TYPE_FILE):
            return MC_TARGET_NONE, 0
    elif pte & PTE_SWAP:
        if not mc.flags & MOVE_CHARGE_TYPE_ANON:
            return MC_TARGET_NONE, 0
        ent = pte & PTE_VAL_MASK
        pfn = int(k.swap.cache[ent])
    elif not pte and vma.file is not None:
        if not mc.flags & MOVE_CHARGE_TYPE_FILE:
            return MC_TARGET_NONE, 0
        # a page of the file is moved even if this task never faulted it
        index = vma.linear_page_index(vma.start + i)
        mapping = vma.file
        pfn = mapping.find_page(index)
        if pfn < 0 and mapping.shmem:
            ent = mapping.swap_entry(index)
            pfn = int(k.swap.cache[ent]) if ent else -1
    else:
        return MC_TARGET_NONE, 0
    if pfn >= 0 and k.pc.flags[pfn] & PCG_USED and k.pc.memcg[pfn] == mc.from_.id:
        return MC_TARGET_PAGE, pfn
    if ent and k.do_swap_account and k.swap_cgroup.lookup(ent) == mc.from_.id:
        return MC_TARGET_SWAP, ent
    return MC_TARGET_NONE, 0


def _pte_walk(mm):
    """(vma, i, pte) over the mm's ptes, a PMD-mapped THP once (at the pte the walk meets)."""
    for vma in list(mm.vmas):
        i = 0
        while i < vma.npages:
            pte = int(vma.pte[i])
            yield vma, i, pte
            i += HPAGE_PMD_NR - (pte & PTE_VAL_MASK) % HPAGE_PMD_NR if pte & PTE_HUGE else 1


def _targets(k, mc: MoveCharge, mm):
    for vma, i, pte in _pte_walk(mm):
        kind, what = get_mctgt_type(k, mc, vma, i)
        if kind != MC_TARGET_NONE:
            nr = HPAGE_PMD_NR if kind == MC_TARGET_PAGE and pte & PTE_HUGE else 1
            yield kind, what, nr


def mem_cgroup_precharge_mc(k, mc: MoveCharge, mm) -> int:
    """Charge `to` for everything that will move: in bulk without reclaim first, then page by
    page with reclaim. -ENOMEM if it does not fit (the task then does not move)."""
    count = sum(nr for _, _, nr in _targets(k, mc, mm))
    if not count:
        return 0
    ret, _ = try_charge(k, mc.to, GFP_KERNEL & ~__GFP_WAIT, count)
    if ret == 0:
        mc.precharge += count
        return 0
    if ret == -Errno.EINTR:
        return ret
    gfp = GFP_KERNEL | __GFP_NORETRY if k.profile.precharge_noretry else GFP_KERNEL
    while count:
        count -= 1
        ret, _ = try_charge(k, mc.to, gfp, 1)
        if ret:
            return ret
        mc.precharge += 1
    return 0


def mem_cgroup_move_charge(k, mc: MoveCharge, mm):
    """Path: walk the mm's page tables under mmap_sem for reading (munmap waits), each pte
    under the page-table lock: a target page is isolated from its LRU, then trylocked
    (move_account's trylock_page excludes page cache replacement, which moves a charge without
    isolating the old page) and its binding moved under the source memcg's move_lock; a swap
    record is moved by cmpxchg.

    The kernel only trylocks mmap_sem and, while a writer holds it, gives the precharge back
    and tries again; the model waits for it holding the precharge."""
    yield Lock(mmap_sem(mm.id), shared=True)
    yield from _move_charge_pte_range(k, mc, mm)
    yield Unlock(mmap_sem(mm.id))


def _move_charge_pte_range(k, mc: MoveCharge, mm):
    for vma, i, pte in _pte_walk(mm):
        yield Lock(ptl(mm.id))
        kind, what = get_mctgt_type(k, mc, vma, i)
        nr = HPAGE_PMD_NR if kind == MC_TARGET_PAGE and pte & PTE_HUGE else 1
        if kind != MC_TARGET_NONE and mc.precharge < nr:
            yield Unlock(ptl(mm.id))
            return
        if kind == MC_TARGET_PAGE and get_page_unless_zero(k, what):
            pfn = what
            if isolate_lru_page(k, pfn) == 0:
                if (yield TryLock(page_lock(pfn))):
                    yield Lock(move_lock(mc.from_.id))
                    if not mem_cgroup_move_account(k, pfn, nr, mc.from_, mc.to,
                                                   page_locked=True):
                        mc.precharge -= nr
                        mc.moved_charge += nr
                    yield Unlock(move_lock(mc.from_.id))
                    yield Unlock(page_lock(pfn))
                putback_lru_page(k, pfn)
            put_page(k, pfn)
        elif kind == MC_TARGET_SWAP:
            if not mem_cgroup_move_swap_account(k, what, mc.from_, mc.to):
                mc.precharge -= 1
                mc.moved_swap += 1
        yield Unlock(ptl(mm.id))


def mem_cgroup_clear_mc(k, mc: MoveCharge) -> None:
    """Settle the counters: unused precharge off `to`, moved pages off `from`, and for moved
    swap records memsw off `from` and res off `to` (which was precharged res and memsw)."""

    if mc.precharge:
        _cancel_charge(k, mc.to, mc.precharge)
        mc.precharge = 0
    if mc.moved_charge:
        _cancel_charge(k, mc.from_, mc.moved_charge)
        mc.moved_charge = 0
    if mc.moved_swap:
        if not mc.from_.is_root():
            mc.from_.memsw.uncharge(mc.moved_swap)
        if not mc.to.is_root():
            mc.to.res.uncharge(mc.moved_swap)
        mc.moved_swap = 0


def mem_cgroup_attach_task(k, task, to: MemCgroup) -> int:
    """Move a task to `to` (a write of its pid to tasks): with to's move_charge_at_immigrate
    set and the task owning its mm, its charges move too; -ENOMEM if `to` cannot take them."""
    return run_path(k, attach_task(k, task, to), task=task)


def attach_task(k, task, to: MemCgroup):
    """Path: can_attach's precharge, the move of the task, then the charge move."""
    from_ = task.memcg
    if from_ is to:
        return 0
    # v2 never moves charges: "a memory area stays charged to the cgroup which instantiated it"
    flags = to.move_charge_at_immigrate if k.profile.charge_moving and not k.cgroup_v2 else 0
    mm = task.mm
    if flags and mm is not None and mm.owner is task:
        mc = k.mc = MoveCharge(from_, to, flags)
        ret = mem_cgroup_precharge_mc(k, mc, mm)
        if ret:
            mem_cgroup_clear_mc(k, mc)
            k.mc = None
            return -Errno.ENOMEM
        task.memcg = to
        yield from mem_cgroup_move_charge(k, mc, mm)
        mem_cgroup_clear_mc(k, mc)
        k.mc = None
        return 0
    task.memcg = to
    return 0


# ------------------------------------------------------------------------------------------
# rmdir


def mem_cgroup_reparent_charges(k, memcg: MemCgroup) -> None:
    """css_offline: move every page charged to memcg to its parent (root in flat mode), then
    take the charges off memcg's own counters only: the parent already holds them."""

    parent = memcg.parent_mem_cgroup() or k.root_mem_cgroup
    mem, pc = k.mem_map, k.pc
    while True:
        drain_all_stock(k, memcg)
        pfns = np.flatnonzero((mem.flags & PG_lru != 0) & (pc.flags & PCG_USED != 0)
                              & (pc.memcg == memcg.id)).tolist()
        for pfn in pfns:
            if not get_page_unless_zero(k, pfn):
                continue
            if isolate_lru_page(k, pfn) == 0:
                nr = mem.nr_pages_of(pfn)
                if not mem_cgroup_move_account(k, pfn, nr, memcg, parent):
                    memcg.res.uncharge_until(memcg.res.parent, nr)
                    if k.do_swap_account:
                        memcg.memsw.uncharge_until(memcg.memsw.parent, nr)
                putback_lru_page(k, pfn)
            put_page(k, pfn)
        if memcg.res.usage - memcg.kmem.usage <= 0 or not pfns:
            break


def mem_cgroup_rmdir(k, memcg: MemCgroup) -> int:
    """rmdir: -EBUSY while tasks or child cgroups remain; else offline the memcg.

    3.17 reparents every charge to the parent and the memcg is gone. From 3.19 the pages keep
    their (now offline) memcg, which lingers, still counted in its ancestors, until its last
    page is freed; only the stocks are drained and the protection reset (css_offline)."""
    if memcg.is_root():
        return -Errno.EBUSY
    if any(c.online for c in memcg.children) or any(
            t.memcg is memcg and t.state == "alive" for t in k.tasks.values()):
        return -Errno.EBUSY
    memcg.online = False
    if k.profile.offline == "keep":
        if isinstance(memcg.res, PageCounter):
            memcg.res.set_min(0)
            memcg.res.set_low(0)
        drain_all_stock(k, memcg)
        memcg_offline_kmem(k, memcg)
        del k.memcg_by_name[memcg.name]
        for t in k.tasks.values():
            if t.memcg is memcg:
                t.memcg = memcg.parent
        return 0
    mem_cgroup_reparent_charges(k, memcg)
    memcg.parent.children.remove(memcg)
    del k.memcg_by_name[memcg.name]
    for t in k.tasks.values():
        if t.memcg is memcg:          # exited tasks keep a pointer; give them the parent
            t.memcg = memcg.parent
    return 0



# ------------------------------------------------------------------------------------------
# memory.stat (v1 on 6.x): state counters under the old names

#: v1 name -> the state item (mm/vmstat.py) or vm event it reads
MEMCG1_STAT_ITEMS = {"cache": "file", "rss": "anon", "rss_huge": "anon_thp", "shmem": "shmem",
                     "mapped_file": "file_mapped", "dirty": "file_dirty",
                     "writeback": "file_writeback", "swap": "swap"}


def memcg1_stat_format(k, memcg: MemCgroup, local=None,
                       page_size: int = 4096) -> list[tuple[str, int]]:
    """The lines of a 6.x kernel's v1 memory.stat: local values, the hierarchical limits, then
    total_* over the subtree."""

    local = memcg_page_state_local(k) if local is None else local
    keys = [key for key in k.profile.v1_stat_keys if key != "swap" or k.do_swap_account]

    def stat(group, key: str) -> int:
        if key in MEMCG1_STAT_ITEMS:
            return sum(local[m.id][MEMCG1_STAT_ITEMS[key]] for m in group) * page_size
        return sum(m.vm_events.get(key, 0) for m in group)

    out: list[tuple[str, int]] = []
    own = (memcg,)
    for key in keys:
        out.append((key, stat(own, key)))
    for key in k.profile.v1_stat_events:
        out.append((key, memcg.events[MEM_CGROUP_EVENTS_NAMES.index(key)]))
    for lru in range(NR_LRU_LISTS):
        out.append((LRU_NAMES[lru], mem_cgroup_nr_lru_pages(memcg, lru) * page_size))
    memory, memsw = memcg.res.limit, memcg.memsw.limit
    m = memcg
    while m is not None:
        memory = min(memory, m.res.limit)
        memsw = min(memsw, m.memsw.limit)
        m = m.parent
    out.append(("hierarchical_memory_limit", k.v1_limit_bytes(memory)))
    if k.do_swap_account:
        out.append(("hierarchical_memsw_limit", k.v1_limit_bytes(memsw)))
    tree = tuple(memcg.subtree())
    for key in keys:
        out.append((f"total_{key}", stat(tree, key)))
    for key in k.profile.v1_stat_events:
        out.append((f"total_{key}", memcg_events(memcg, key)))
    for lru in range(NR_LRU_LISTS):
        out.append((f"total_{LRU_NAMES[lru]}",
                    sum(mem_cgroup_nr_lru_pages(m, lru) for m in tree) * page_size))
    return out
