"""The checker made cheaper (issue 21: `memcgsim run --check` at most 2x a plain run) finds
exactly what it found before: the same Violation list, in the same order, with the same
messages, on any state. The original checker is kept here, frozen (`_reference_check`, its
`_RefSums` and `_ref_inv_*` functions: src/memcgsim/checker.py as it was before the change,
renamed and nothing else but the swap slot caches' exemption), and compared with
memcgsim.checker.check on states with planted corruptions (the kinds of damage the tests
plant: references, mapcounts, page and page_cgroup flags, LRU sizes, counters, statistics,
swap records and the swap cache, ptes, page cache entries, inodes, held locks) and on random
small machines, quiescent or not. A state on which the original raised must make the new
checker raise the same exception type."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from memcgsim import Machine, check
from memcgsim.checker import INVARIANTS, Violation
from memcgsim.errors import InvalidRequest
from memcgsim.mm.memcontrol import (
    MEM_CGROUP_STAT_CACHE,
    MEM_CGROUP_STAT_FILE_MAPPED,
    MEM_CGROUP_STAT_NAMES,
    MEM_CGROUP_STAT_RSS,
    MEM_CGROUP_STAT_RSS_HUGE,
    MEM_CGROUP_STAT_SWAP,
    MEM_CGROUP_STAT_WRITEBACK,
)
from memcgsim.mm.mm_struct import PTE_HUGE, PTE_PRESENT, PTE_VAL_MASK
from memcgsim.mm.mm_types import (
    HPAGE_PMD_NR,
    LRU_NAMES,
    NR_LRU_LISTS,
    PG_active,
    PG_anon,
    PG_buddy,
    PG_head,
    PG_locked,
    PG_lru,
    PG_swapcache,
    PG_tail,
    PG_unevictable,
    PG_writeback,
    page_lru_array,
)
from memcgsim.mm.page_cgroup import PCG_MEM, PCG_MEMSW, PCG_USED
from memcgsim.mm.swapfile import SWAP_HAS_CACHE

# ------------------------------------------------------------------------------------------
# the original checker, frozen


class _RefSums:
    """Per-memcg page sums over mem_map, computed once per check."""

    def __init__(self, k):
        mem_map, pc = k.mem_map, k.pc
        self.n = max(k.memcg_by_id) + 1
        self.nr = np.where(mem_map.flags & PG_head, HPAGE_PMD_NR, 1).astype(np.int64)
        used = (pc.flags & PCG_USED) != 0
        self.used = used
        memcg = pc.memcg.astype(np.int64)
        self.memcg = memcg

        def by_memcg(mask):
            return np.bincount(memcg[mask], weights=self.nr[mask], minlength=self.n).astype(
                np.int64)

        self.by_memcg = by_memcg
        self.pmem = by_memcg(used & ((pc.flags & PCG_MEM) != 0))
        self.pmsw = by_memcg(used & ((pc.flags & PCG_MEMSW) != 0))
        rec = k.swap_cgroup.id.astype(np.int64)
        self.rec = np.bincount(rec[rec > 0], minlength=self.n)
        self.stock = np.zeros(self.n, dtype=np.int64)
        for s in k.stocks:
            if s.cached is not None:
                self.stock[s.cached.id] += s.nr_pages
        self.tx = np.zeros(self.n, dtype=np.int64)
        for memcg_id, pages in k.inflight.items():
            self.tx[memcg_id] += pages
        #: a charge move under way (spec 7, MC terms): `to` holds its unused precharge and,
        #: for moved swap records, res; `from` keeps res and memsw of the moved pages and
        #: memsw of the moved records until mem_cgroup_clear_mc settles them
        self.mc_res = np.zeros(self.n, dtype=np.int64)
        self.mc_memsw = np.zeros(self.n, dtype=np.int64)
        mc = k.mc
        if mc is not None:
            self.mc_res[mc.to.id] += mc.precharge + mc.moved_swap
            self.mc_memsw[mc.to.id] += mc.precharge
            self.mc_res[mc.from_.id] += mc.moved_charge
            self.mc_memsw[mc.from_.id] += mc.moved_charge + mc.moved_swap
        #: kernel memory charged to each memcg itself (6.x: page tables, stacks, task slab)
        self.kmem = np.zeros(self.n, dtype=np.int64)
        for m in k.memcg_by_id.values():
            self.kmem[m.id] = sum(m.kmem_stat.values())


def _ref_inv_counter_tree(k, s: _RefSums, quiescent: bool) -> Iterator[Violation]:
    """1, 2: every counter is its own charges plus its children's counters."""
    children: dict[int, list] = {}
    for m in k.memcg_by_id.values():
        if m.res.parent is not None:
            children.setdefault(m.res.parent.owner.id, []).append(m)
    for m in k.memcg_by_id.values():
        kids = children.get(m.id, [])
        if m.is_root():
            # root is never charged itself; it holds only kernel memory reparented to it
            local_res = local_memsw = s.kmem[m.id]
        else:
            local_res = (s.pmem[m.id] + s.stock[m.id] + s.tx[m.id] + s.kmem[m.id]
                         + s.mc_res[m.id])
            local_memsw = (s.pmsw[m.id] + s.rec[m.id] + s.stock[m.id] + s.tx[m.id]
                           + s.kmem[m.id] + s.mc_memsw[m.id])
        want = local_res + sum(c.res.usage for c in kids)
        if m.res.usage != want:
            yield Violation("counter-tree", f"{m.name} res.usage {m.res.usage} != {want} (pages "
                            f"{s.pmem[m.id]} + stock {s.stock[m.id]} + in-flight {s.tx[m.id]} "
                            f"+ charge move {s.mc_res[m.id]} + children "
                            f"{[c.name for c in kids]})")
        if k.do_swap_account:
            want = local_memsw + sum(c.memsw.usage for c in kids)
            if m.memsw.usage != want:
                yield Violation("counter-tree", f"{m.name} memsw.usage {m.memsw.usage} != "
                                f"{want} (pages {s.pmsw[m.id]} + swap records {s.rec[m.id]} + "
                                f"stock {s.stock[m.id]} + in-flight {s.tx[m.id]} + children)")
        elif m.memsw.usage:
            yield Violation("counter-tree", f"{m.name} memsw charged without swap accounting")
        if k.profile.kmem_accounting and not k.cgroup_v2:
            want = s.kmem[m.id] + sum(c.kmem.usage for c in kids)
            if m.kmem.usage != want:
                yield Violation("counter-tree", f"{m.name} kmem.usage {m.kmem.usage} != "
                                f"{want} (kernel pages {s.kmem[m.id]} + children)")
        if k.cgroup_v2:
            want = (0 if m.is_root() else s.rec[m.id]) + sum(c.swap.usage for c in kids)
            if m.swap.usage != want:
                yield Violation("counter-tree", f"{m.name} swap.usage {m.swap.usage} != "
                                f"{want} (swap records {s.rec[m.id]} + children)")


def _ref_inv_no_underflow(k, s: _RefSums, quiescent: bool) -> Iterator[Violation]:
    """3: no counter, statistic or LRU size went below zero; nothing the kernel WARNs about."""
    for m in k.memcg_by_id.values():
        for c in (m.res, m.memsw, m.kmem, *((m.swap,) if m.swap is not None else ())):
            for asked, had in c.underflows:
                yield Violation("underflow", f"{c.name}: uncharge of {asked} with usage {had}")
        for i, v in enumerate(m.stat):
            if v < 0:
                yield Violation("underflow", f"{m.name} stat {MEM_CGROUP_STAT_NAMES[i]} = {v}")
    for kind, message in k.warnings:
        yield Violation(f"warn:{kind}", message.splitlines()[0])


def _ref_inv_limits(k, s: _RefSums, quiescent: bool) -> Iterator[Violation]:
    """4, 5: usage within limits; memsw covers res; res.limit <= memsw.limit."""
    hard = k.profile.usage_within_limit
    for m in k.memcg_by_id.values():
        if m.is_root():
            continue
        if hard and m.res.usage > m.res.limit:
            yield Violation("limit", f"{m.name} res {m.res.usage} over limit {m.res.limit}")
        if k.do_swap_account:
            if hard and m.memsw.usage > m.memsw.limit:
                yield Violation("limit", f"{m.name} memsw {m.memsw.usage} over limit "
                                f"{m.memsw.limit}")
            # between mem_cgroup_swapout and the page's uncharge at its free, another path
            # may free the slot (and its memsw): memsw < res only in the middle of paths
            if quiescent and m.memsw.usage < m.res.usage:
                yield Violation("memsw>=res", f"{m.name} memsw {m.memsw.usage} < res "
                                f"{m.res.usage}")
            if m.res.limit > m.memsw.limit:
                yield Violation("memsw>=res", f"{m.name} limit {m.res.limit} > memsw limit "
                                f"{m.memsw.limit}")


def _ref_inv_flags(k, s: _RefSums, quiescent: bool) -> Iterator[Violation]:
    """6: legal page and page_cgroup flag combinations."""
    mem_map, pc = k.mem_map, k.pc
    f = mem_map.flags
    pcf = pc.flags

    def bad(mask, what):
        for pfn in np.flatnonzero(mask)[:5].tolist():
            yield Violation("flags", f"pfn {pfn:#x}: {what}", pfn)

    yield from bad((pcf & (PCG_MEM | PCG_MEMSW) != 0) & (pcf & PCG_USED == 0),
                   "PCG_MEM/PCG_MEMSW without PCG_USED")
    yield from bad((pcf & PCG_MEMSW != 0) & (pcf & PCG_MEM == 0), "PCG_MEMSW without PCG_MEM")
    yield from bad((pcf & PCG_USED != 0) & (pcf & PCG_MEM == 0), "PCG_USED without PCG_MEM")
    if not k.do_swap_account:
        yield from bad(pcf & PCG_MEMSW != 0, "PCG_MEMSW set with swap accounting off")
    elif quiescent:
        yield from bad((pcf & PCG_USED != 0) & (pcf & PCG_MEMSW == 0),
                       "charged page without PCG_MEMSW outside swapout-to-free")
    yield from bad((f & PG_buddy != 0) & (f != PG_buddy), "free page with other flags")
    yield from bad((f & PG_buddy != 0) & (pcf & PCG_USED != 0), "free page still charged")
    yield from bad((f & PG_tail != 0) & (pcf != 0), "THP tail with page_cgroup flags")
    yield from bad((f & PG_active != 0) & (f & PG_unevictable != 0), "active and unevictable")
    yield from bad((f & PG_lru != 0) & (mem_map.refcount <= 0), "on an LRU list with no reference")
    yield from bad((f & PG_anon != 0) & (mem_map.mapping == 0), "PageAnon without an anon_vma")
    swc = np.flatnonzero(f & PG_swapcache)
    if len(swc):
        slots = mem_map.private[swc]
        wrong = (slots <= 0) | (k.swap.cache[np.clip(slots, 0, None)] != swc)
        if not quiescent:
            # shmem_replace_page puts the new page in the slot under the tree lock and clears
            # the old page's PageSwapCache after, under the old page's lock
            wrong &= (f[swc] & PG_locked) == 0
        yield from bad(np.isin(np.arange(len(f)), swc[wrong]), "swap cache entry mismatch")


def _ref_inv_exactly_once(k, s: _RefSums, quiescent: bool) -> Iterator[Violation]:
    """7: every try_charge ended; every charged page is alive and referenced exactly by its
    mappings and its cache."""
    if not quiescent:
        return
    for memcg_id, pages in k.inflight.items():
        if pages:
            yield Violation("exactly-once", f"{k.memcg_by_id[memcg_id].name}: {pages} pages "
                            "try-charged but never committed or cancelled")
    mem_map = k.mem_map
    ptes = np.zeros(k.nr_pages, dtype=np.int64)
    for m in k.mms.values():
        for vma in m.vmas:
            pte = vma.pte
            small = pte[(pte & PTE_PRESENT != 0) & (pte & PTE_HUGE == 0)] & PTE_VAL_MASK
            ptes += np.bincount(small, minlength=k.nr_pages)
            huge = pte[(pte & PTE_HUGE != 0)] & PTE_VAL_MASK
            heads = huge[huge % HPAGE_PMD_NR == 0]
            ptes += np.bincount(heads, minlength=k.nr_pages)
    cached = np.zeros(k.nr_pages, dtype=np.int64)
    for mapping in list(k.mappings.values()):
        e = mapping.i_pages
        cached[e[e & PTE_PRESENT != 0] & PTE_VAL_MASK] += 1
    sc = k.swap.cache
    cached[sc[sc >= 0]] += 1
    live = (mem_map.flags & (PG_buddy | PG_tail)) == 0
    bad_map = live & (mem_map.mapcount != ptes)
    for pfn in np.flatnonzero(bad_map)[:5].tolist():
        yield Violation("refs", f"pfn {pfn:#x}: mapcount {int(mem_map.mapcount[pfn])} but "
                        f"{int(ptes[pfn])} ptes map it", pfn)
    bad_ref = live & (mem_map.refcount != ptes + cached)
    for pfn in np.flatnonzero(bad_ref)[:5].tolist():
        yield Violation("refs", f"pfn {pfn:#x}: refcount {int(mem_map.refcount[pfn])} but "
                        f"{int(ptes[pfn])} mappings + {int(cached[pfn])} cache references "
                        "(a leaked or missing reference)", pfn)


def _ref_inv_lru(k, s: _RefSums, quiescent: bool) -> Iterator[Violation]:
    """9: every LRU page is on the lruvec of its memcg (root when uncharged), and each
    lruvec's lru_size matches the pages on its lists."""
    mem_map, pc = k.mem_map, k.pc
    on = np.flatnonzero(mem_map.flags & PG_lru)
    want = np.where(pc.flags[on] & PCG_USED, pc.memcg[on], k.root_mem_cgroup.id)
    wrong = on[mem_map.lru_memcg[on] != want]
    for pfn in wrong[:5].tolist():
        have = k.memcg_by_id[int(mem_map.lru_memcg[pfn])].name
        yield Violation("lru", f"pfn {pfn:#x} sits on the lruvec of {have}, its memcg is "
                        f"{k.memcg_by_id[int(want[np.searchsorted(on, pfn)])].name}", pfn)
    lru = page_lru_array(mem_map.flags[on])
    nid = on // k.free_area.pages_per_node
    key = (mem_map.lru_memcg[on].astype(np.int64) * k.nr_nodes + nid) * NR_LRU_LISTS + lru
    sizes = np.bincount(key, weights=s.nr[on], minlength=s.n * k.nr_nodes * NR_LRU_LISTS)
    for m in k.memcg_by_id.values():
        for lv in m.lruvecs:
            for i in range(NR_LRU_LISTS):
                have = lv.lru_size[i]
                real = int(sizes[(m.id * k.nr_nodes + lv.node) * NR_LRU_LISTS + i])
                if have != real:
                    yield Violation("lru", f"{m.name} node {lv.node} {LRU_NAMES[i]} lru_size "
                                    f"{have} but {real} pages on the list")


def _ref_inv_swap(k, s: _RefSums, quiescent: bool) -> Iterator[Violation]:
    """10: swap records belong to allocated slots, never duplicate a page's own memsw charge,
    and match the swap statistic and the css references."""
    si = k.swap
    rec = k.swap_cgroup.id
    if si.nr_slots:
        orphan = np.flatnonzero((rec != 0) & (si.swap_map == 0))
        for slot in orphan[:5].tolist():
            yield Violation("swap", f"slot {slot} recorded to memcg id {int(rec[slot])} "
                            "but free")
        cache_bit = (si.swap_map & SWAP_HAS_CACHE) != 0
        in_cache = si.cache >= 0
        cache_bit[0] = in_cache[0]
        # (the one change since the freeze, for a model feature that came later, as the
        # checker has it: a freed slot waiting in a swap slot cache reads SWAP_HAS_CACHE with
        # no page)
        held = np.array([e for ret in si.slots_ret for e in ret], dtype=np.int64)
        if len(held):
            for slot in held[si.swap_map[held] != SWAP_HAS_CACHE][:5].tolist():
                yield Violation("swap", f"slot {slot} in a slot cache reads "
                                f"{int(si.swap_map[slot]):#x}")
            for slot in held[in_cache[held]][:5].tolist():
                yield Violation("swap", f"slot {slot} in a slot cache and in the swap cache")
            if len(np.unique(held)) != len(held):
                yield Violation("swap", "a slot twice in the slot caches")
            cache_bit[held] = False
        # a slot leaves the swap cache under the tree lock and drops SWAP_HAS_CACHE after it
        # (swapcache_free): between the two only a page in the swap cache must have the bit
        mismatch = (cache_bit != in_cache) if quiescent else (in_cache & ~cache_bit)
        for slot in np.flatnonzero(mismatch)[:5].tolist():
            yield Violation("swap", f"slot {slot}: SWAP_HAS_CACHE and the swap cache disagree")
        inuse = int(np.count_nonzero(si.swap_map))
        if inuse != si.inuse_pages:
            yield Violation("swap", f"inuse_pages {si.inuse_pages} but {inuse} slots in use")
        mem_map, pc = k.mem_map, k.pc
        dup = np.flatnonzero((mem_map.flags & PG_swapcache != 0) & (pc.flags & PCG_MEMSW != 0))
        dup = dup[rec[mem_map.private[dup]] != 0]
        for pfn in dup[:5].tolist():
            yield Violation("swap", f"pfn {pfn:#x} holds memsw and so does its slot "
                            f"{int(mem_map.private[pfn])}", pfn)
    for m in k.memcg_by_id.values():
        if m.stat[MEM_CGROUP_STAT_SWAP] != s.rec[m.id]:
            yield Violation("swap", f"{m.name} swap stat {m.stat[MEM_CGROUP_STAT_SWAP]} but "
                            f"{s.rec[m.id]} records")
        if m.swap_css_refs != s.rec[m.id]:
            yield Violation("swap", f"{m.name} holds {m.swap_css_refs} css refs for "
                            f"{s.rec[m.id]} records")


def _ref_inv_stats(k, s: _RefSums, quiescent: bool) -> Iterator[Violation]:
    """11: rss, cache, rss_huge, mapped_file and writeback agree with the pages (3.17), at
    quiescent points: a statistic is updated next to the page flag it counts, not with it."""
    if k.profile.stats != "charge-type" or not quiescent:
        return
    mem_map = k.mem_map
    used = s.used
    anon = (mem_map.flags & PG_anon) != 0
    rss = s.by_memcg(used & anon)
    cache = s.by_memcg(used & ~anon)
    huge = s.by_memcg(used & ((mem_map.flags & PG_head) != 0))
    mapped = np.bincount(s.memcg[used & ~anon & (mem_map.mapcount > 0)], minlength=s.n)
    wb = np.bincount(s.memcg[used & ((mem_map.flags & PG_writeback) != 0)], minlength=s.n)
    for m in k.memcg_by_id.values():
        for idx, real in ((MEM_CGROUP_STAT_RSS, rss), (MEM_CGROUP_STAT_CACHE, cache),
                          (MEM_CGROUP_STAT_RSS_HUGE, huge),
                          (MEM_CGROUP_STAT_FILE_MAPPED, mapped),
                          (MEM_CGROUP_STAT_WRITEBACK, wb)):
            if m.stat[idx] != int(real[m.id]):
                yield Violation("stats", f"{m.name} {MEM_CGROUP_STAT_NAMES[idx]} "
                                f"{m.stat[idx]} but {int(real[m.id])} pages")


def _ref_inv_oom_order(k, s: _RefSums, quiescent: bool) -> Iterator[Violation]:
    """Bug B8's check: no memcg OOM for a charge of a costly order, where the kernel's OOM
    path declines those (get_order of the charge's bytes is above PAGE_ALLOC_COSTLY_ORDER)."""
    if not k.profile.oom_skips_costly_order:
        return
    for memcg_id, nr_pages in k.oom_charges:
        if nr_pages > k.profile.costly_order_pages:
            yield Violation("oom-order", f"{k.memcg_by_id[memcg_id].name}: OOM invoked for a "
                            f"charge of {nr_pages} pages (a costly order)")


def _ref_inv_inodes(k, s: _RefSums, quiescent: bool) -> Iterator[Violation]:
    """Names and inodes (at quiescent points: iput_final truncates an inode before it leaves
    `Kernel.mappings`): a name (`Kernel.files`) reaches only a live inode linked under that
    name, so never an unlinked file nor the kernel's internal shmem files; every live inode is
    linked or still in use (i_count), the last iput of an unlinked one having evicted it; each
    VMA's file is a live inode whose i_mmap lists the VMA, and i_count counts those VMAs."""
    if not quiescent:
        return
    named = set()
    for name, mapping in k.files.items():
        named.add(id(mapping))
        if k.mappings.get(mapping.id) is not mapping:
            yield Violation("inodes", f"name {name} reaches {mapping!r}, which was evicted")
        elif mapping.nlink <= 0 or mapping.name != name:
            yield Violation("inodes", f"name {name} reaches {mapping!r} with nlink "
                            f"{mapping.nlink} (an unlinked or internal inode)")
    vmas = {id(v) for m in k.mms.values() for v in m.vmas}
    for mapping in k.mappings.values():
        if mapping.nlink and id(mapping) not in named:
            yield Violation("inodes", f"{mapping!r} has nlink {mapping.nlink} but no name "
                            "reaches it")
        if not mapping.nlink and not mapping.i_count:
            yield Violation("inodes", f"{mapping!r} is unlinked and unused but was never "
                            f"evicted ({mapping.nrpages} pages cached)")
        if mapping.i_count < len(mapping.i_mmap):
            yield Violation("inodes", f"{mapping!r} i_count {mapping.i_count} below its "
                            f"{len(mapping.i_mmap)} mappings")
        gone = [v for v in mapping.i_mmap if id(v) not in vmas]
        if gone:
            yield Violation("inodes", f"{mapping!r} i_mmap lists {gone[0]!r}, which is unmapped")
    for m in k.mms.values():
        for vma in m.vmas:
            f = vma.file
            if f is None:
                continue
            if k.mappings.get(f.id) is not f:
                yield Violation("inodes", f"{vma!r} maps {f!r}, which was evicted")
            elif not any(v is vma for v in f.i_mmap):
                yield Violation("inodes", f"{vma!r} is missing from the i_mmap of {f!r}")


_REF_INVARIANTS = (_ref_inv_counter_tree, _ref_inv_no_underflow, _ref_inv_limits,
                   _ref_inv_flags, _ref_inv_exactly_once, _ref_inv_lru, _ref_inv_swap,
                   _ref_inv_stats, _ref_inv_oom_order, _ref_inv_inodes)


def _reference_check(k, quiescent: bool = True) -> list[Violation]:
    """The original check: run every invariant; an empty list means the state is consistent.

    quiescent: no path is running, so no lock may be held and no charge be in flight.
    """
    sums = _RefSums(k)
    out: list[Violation] = []
    if quiescent:
        for lock, owner in k.locks.holders():
            out.append(Violation("locks", f"{lock} still held by path {owner} with no path "
                                 "running", lock[1] if lock[0] == "page" else None))
    for inv in _REF_INVARIANTS:
        out.extend(inv(k, sums, quiescent))
    return out



# ------------------------------------------------------------------------------------------
# machines and the comparison


def outcome(fn, k, quiescent):
    """What a checker made of the state: its violations as (invariant, message, pfn), or the
    type of the exception it raised."""
    try:
        return [(v.invariant, v.message, v.pfn) for v in fn(k, quiescent)]
    except Exception as e:      # noqa: BLE001 - an exception is an outcome to compare
        return type(e)


def assert_same_verdict(k, where=""):
    """The new checker's verdict is the original's, at a quiescent point and mid-path."""
    verdicts = []
    for quiescent in (True, False):
        want = outcome(_reference_check, k, quiescent)
        have = outcome(check, k, quiescent)
        assert have == want, f"{where} quiescent={quiescent}:\nnew {have}\noriginal {want}"
        verdicts.append(want)
    return verdicts[0]


KINDS = (("3.17", "v1"), ("6.1", "v1"), ("6.1", "v2"), ("6.12", "v2"))
CGROUPS = ("/p", "/p/a", "/p/b")


def build(kind, *, memory=1024, cpus=2, nodes=1, swap=200, swap_accounting=True, thp=True,
          limits=(0, 0, 0)):
    """A parent /p over /p/a and /p/b (limits in pages, 0 for none), a task in each child and
    one in the root, and files on disk and in tmpfs."""
    profile, cgroup = kind
    m = Machine(memory, swap_pages=swap, cpus=cpus, nodes=nodes, swap_accounting=swap_accounting,
                thp=thp, profile=profile, cgroup=cgroup)
    m.mkdir("/p")
    if m.k.cgroup_v2:
        assert m.write_file("/p", "cgroup.subtree_control", "+memory") == 0
    else:
        assert m.set_use_hierarchy("/p", True) == 0
    for path in CGROUPS[1:]:
        m.mkdir(path)
    for path, lim in zip(CGROUPS, limits, strict=True):
        if lim:
            if m.k.do_swap_account:
                m.set_limit(path, lim + 40, memsw=True)
            m.set_limit(path, lim)
    m.spawn("A", "/p/a", cpu=0)
    m.spawn("B", "/p/b", cpu=cpus - 1, node=nodes - 1)
    r = m.spawn("R", "/", cpu=cpus - 1)
    for name, size in (("/data/f0", 60), ("/data/f1", 20), ("/tmp/s0", 16)):
        m.write(r, name, size)
    m.sync()
    return m


OPS_VOCABULARY = ("mmap", "mmap", "touch", "touch", "touch", "munmap", "fork", "exit", "mlock",
                  "write", "read", "mmap_file", "truncate", "unlink", "drop", "reclaim",
                  "reclaim_memcg", "limit", "move", "split", "migrate")


def apply(m, op, who, x, n, step):
    """One operation through the Machine's methods (a refused one changes nothing)."""
    k = m.k
    alive = [t for t in k.tasks.values() if t.state == "alive"]
    if not alive:
        return
    t = alive[who % len(alive)]
    vmas = t.mm.vmas
    vma = vmas[x % len(vmas)] if vmas else None
    path = CGROUPS[who % 3]
    name = f"/tmp/s{who % 2}" if x % 3 == 0 else f"/data/f{who % 2}"
    try:
        if op == "mmap" and len(vmas) < 5:
            huge = x % 4 == 0
            v = m.mmap_anon(t, 600 if huge else n, shared=x % 5 == 1, hugepage=huge)
            if huge and t.state == "alive" and v in t.mm.vmas:
                m.touch(t, v, 0, HPAGE_PMD_NR)
        elif op == "touch" and vma is not None:
            start = (x * 7) % vma.npages
            m.touch(t, vma, start, min(n, vma.npages - start), write=x % 4 != 3)
        elif op == "munmap" and vma is not None:
            m.munmap(t, vma)
        elif op == "fork" and len(k.tasks) < 6:
            m.fork(t, f"F{step}")
        elif op == "exit" and len(alive) > 1:
            m.exit(t)
        elif op == "mlock" and vma is not None:
            m.mlock(t, vma)
        elif op == "write":
            m.write(t, name, n % 40 + 1, offset=None if x % 2 else x % 48)
        elif op == "read" and name in k.files:
            m.read(t, name, x % 48, n)
        elif op == "mmap_file" and len(vmas) < 5 and name in k.files \
                and k.files[name].size_pages:
            v = m.mmap_file(t, name, shared=x % 2 == 0)
            m.touch(t, v, 0, min(n, v.npages), write=x % 3 == 0)
        elif op == "truncate" and name in k.files:
            m.truncate(name, x % 30)
        elif op == "unlink" and name in k.files:
            m.unlink(name)
        elif op == "drop":
            m.sync()
            m.drop_caches()
        elif op == "reclaim":
            on_lru = np.flatnonzero(k.mem_map.flags & PG_lru)
            if len(on_lru):
                m.reclaim(int(on_lru[(x * 7919 + n) % len(on_lru)]))
        elif op == "reclaim_memcg":
            m.reclaim_memcg(path, n)
        elif op == "limit":
            m.set_limit(path, None if x % 8 == 0 else x + 20)
        elif op == "move":
            m.move_task(t, "/p/b" if t.memcg.name == "/p/a" else "/p/a")
        elif op == "split":
            for v in vmas:
                huge = np.flatnonzero(v.pte & PTE_HUGE)
                if len(huge):
                    m.split_thp(t, v, int(huge[x % len(huge)]))
                    break
        elif op == "migrate" and vma is not None and k.nr_nodes > 1:
            m.migrate(t, vma, who % 2)
    except InvalidRequest:
        pass


# ------------------------------------------------------------------------------------------
# planted corruptions: each takes the kernel and a number that picks what to damage


def pick(k, x, mask=None) -> int:
    """A pfn chosen by x among the pages of mask (any page when none is)."""
    pfns = np.flatnonzero(mask) if mask is not None else np.zeros(0, dtype=np.int64)
    if not len(pfns):
        pfns = np.arange(k.nr_pages)
    return int(pfns[x % len(pfns)])


def memcg(k, x):
    memcgs = list(k.memcg_by_id.values())
    return memcgs[x % len(memcgs)]


def set_limit_field(c, value):
    if isinstance(type(c).__dict__.get("limit"), property):
        c.max = value           # page_counter: limit reads max
    else:
        c.limit = value


def used(k):
    return (k.pc.flags & PCG_USED) != 0


def present_pte(k, x):
    """(vma, index) of a present pte chosen by x, or None."""
    found = [(v, int(i)) for mm in k.mms.values() for v in mm.vmas
             for i in np.flatnonzero(v.pte & PTE_PRESENT)]
    return found[x % len(found)] if found else None


def cached_entry(k, x):
    """(mapping, index) of a page cache entry chosen by x, or None."""
    found = [(a, int(i)) for a in k.mappings.values()
             for i in np.flatnonzero(a.i_pages & PTE_PRESENT)]
    return found[x % len(found)] if found else None


def _pte_to(k, x):
    hit = present_pte(k, x)
    if hit:
        v, i = hit
        v.pte[i] = PTE_PRESENT | pick(k, x * 31, used(k))


def _pte_cleared(k, x):
    hit = present_pte(k, x)
    if hit:
        hit[0].pte[hit[1]] = 0


def _pte_huge(k, x):
    hit = present_pte(k, x)
    if hit:
        v, i = hit
        v.pte[i] = PTE_HUGE | (pick(k, x, used(k)) & ~(HPAGE_PMD_NR - 1))


def _pte_past_mem_map(k, x):
    hit = present_pte(k, x)
    if hit:
        hit[0].pte[hit[1]] = PTE_PRESENT | (k.nr_pages + x % 3)


def _cache_entry_to(k, x):
    """A page cache entry pointing at another page: often one in a second place."""
    hit = cached_entry(k, x)
    if hit:
        a, i = hit
        a.i_pages[i] = PTE_PRESENT | pick(k, x * 17, used(k))


def _cache_entry_twice(k, x):
    """One page twice in the same address space (counted once, as the kernel would)."""
    hit = cached_entry(k, x)
    if hit:
        a, i = hit
        a.ensure(i + 2)
        a.i_pages[i + 1] = a.i_pages[i]


def _cache_entry_elsewhere(k, x):
    """A cached page also in a second address space."""
    hit = cached_entry(k, x)
    others = [a for a in k.mappings.values() if hit and a is not hit[0]]
    if hit and others:
        other = others[x % len(others)]
        other.ensure(1)
        other.i_pages[0] = hit[0].i_pages[hit[1]]


def _swap_cache_to(k, x):
    si = k.swap
    if si.nr_slots:
        slot = 1 + x % max(si.nr_slots - 1, 1)
        si.cache[slot] = pick(k, x, used(k))


def _swap_cache_twice(k, x):
    si = k.swap
    if si.nr_slots > 2:
        pfn = pick(k, x, used(k))
        si.cache[1] = si.cache[2] = pfn


def _swapcache_flag(k, x):
    pfn = pick(k, x, used(k))
    k.mem_map.flags[pfn] |= PG_swapcache
    k.mem_map.private[pfn] = x % max(k.swap.nr_slots, 1)


def _swap_map(k, x):
    si = k.swap
    if si.nr_slots:
        slots = np.flatnonzero(si.swap_map)
        slot = int(slots[x % len(slots)]) if len(slots) else x % si.nr_slots
        si.swap_map[slot] = 0 if x % 2 else si.swap_map[slot] ^ SWAP_HAS_CACHE


def _swap_record(k, x):
    if k.swap.nr_slots:
        k.swap_cgroup.id[x % k.swap.nr_slots] = memcg(k, x).id


def _lru_size(k, x):
    m = memcg(k, x)
    lv = m.lruvecs[x % len(m.lruvecs)]
    lv.lru_size[x % NR_LRU_LISTS] += 1 if x % 2 else -1


def _stat(k, x):
    m = memcg(k, x)
    m.stat[x % len(m.stat)] += -1 if x % 3 == 0 else 1


def _counter(attr, by=1):
    def corrupt(k, x):
        c = getattr(memcg(k, x), attr)
        if c is not None:
            c.usage += by
    return corrupt


def _limit_below_usage(k, x):
    m = memcg(k, x + 1)
    set_limit_field(m.res, max(m.res.usage - 1, 0))


def _res_limit_over_memsw(k, x):
    m = memcg(k, x + 1)
    set_limit_field(m.memsw, 5)
    set_limit_field(m.res, 10)


def _stock(k, x):
    s = k.stocks[x % len(k.stocks)]
    if s.cached is None:
        s.cached = memcg(k, x)
    s.nr_pages += 1


def _i_mmap(k, x):
    files = [a for a in k.mappings.values() if a.i_mmap]
    if files:
        files[x % len(files)].i_mmap.pop()


def _lock(k, x):
    k.locks.held[("page", pick(k, x, used(k)))] = 99


CORRUPTIONS = {
    "refcount +1": lambda k, x: k.mem_map.refcount.__setitem__(
        p := pick(k, x, used(k)), k.mem_map.refcount[p] + 1),
    "refcount -1": lambda k, x: k.mem_map.refcount.__setitem__(
        p := pick(k, x, used(k)), k.mem_map.refcount[p] - 1),
    "refcount of a free page": lambda k, x: k.mem_map.refcount.__setitem__(
        pick(k, x, (k.mem_map.flags & PG_buddy) != 0), 1),
    "mapcount +1": lambda k, x: k.mem_map.mapcount.__setitem__(
        p := pick(k, x, k.mem_map.mapcount > 0), k.mem_map.mapcount[p] + 1),
    "mapcount of an unmapped page": lambda k, x: k.mem_map.mapcount.__setitem__(
        pick(k, x, used(k) & (k.mem_map.mapcount == 0)), 1),
    "page flag": lambda k, x: k.mem_map.flags.__setitem__(
        p := pick(k, x, used(k)), k.mem_map.flags[p] ^ (1 << (x % 15))),
    "free page flag": lambda k, x: k.mem_map.flags.__setitem__(
        p := pick(k, x, (k.mem_map.flags & PG_buddy) != 0), k.mem_map.flags[p] ^ (1 << (x % 15))),
    "THP tail flag": lambda k, x: k.mem_map.flags.__setitem__(
        p := pick(k, x, (k.mem_map.flags & PG_tail) != 0), k.mem_map.flags[p] ^ (1 << (x % 15))),
    "active and unevictable": lambda k, x: k.mem_map.flags.__setitem__(
        p := pick(k, x, used(k)), k.mem_map.flags[p] | PG_active | PG_unevictable),
    "page_cgroup flag": lambda k, x: k.pc.flags.__setitem__(
        p := pick(k, x, used(k) if x % 2 else None), k.pc.flags[p] ^ (1 << (x % 3))),
    "page_cgroup memcg": lambda k, x: k.pc.memcg.__setitem__(
        pick(k, x, used(k)), memcg(k, x).id),
    "lru_memcg": lambda k, x: k.mem_map.lru_memcg.__setitem__(
        pick(k, x, (k.mem_map.flags & PG_lru) != 0), memcg(k, x).id),
    "anon without anon_vma": lambda k, x: k.mem_map.mapping.__setitem__(
        pick(k, x, (k.mem_map.flags & PG_anon) != 0), 0),
    "writeback": lambda k, x: k.mem_map.flags.__setitem__(
        p := pick(k, x, used(k)), k.mem_map.flags[p] | PG_writeback),
    "pte to another page": _pte_to,
    "pte cleared": _pte_cleared,
    "PMD pte": _pte_huge,
    "pte past mem_map": _pte_past_mem_map,
    "page cache entry moved": _cache_entry_to,
    "page twice in one address space": _cache_entry_twice,
    "page in two address spaces": _cache_entry_elsewhere,
    "swap cache entry": _swap_cache_to,
    "page twice in the swap cache": _swap_cache_twice,
    "PG_swapcache": _swapcache_flag,
    "swap_map": _swap_map,
    "swap record": _swap_record,
    "inuse_pages": lambda k, x: setattr(k.swap, "inuse_pages", k.swap.inuse_pages + 1),
    "swap css refs": lambda k, x: setattr(memcg(k, x), "swap_css_refs",
                                          memcg(k, x).swap_css_refs + 1),
    "lru_size": _lru_size,
    "statistic": _stat,
    "res usage": _counter("res"),
    "memsw usage": _counter("memsw", -1),
    "kmem usage": _counter("kmem"),
    "swap usage": _counter("swap"),
    "kmem_stat": lambda k, x: memcg(k, x).kmem_stat.__setitem__("planted", 1 + x % 3),
    "limit below usage": _limit_below_usage,
    "res limit over memsw limit": _res_limit_over_memsw,
    "underflow": lambda k, x: memcg(k, x).res.underflows.append((3, 1)),
    "warning": lambda k, x: k.warnings.append(("planted", "a warning\nwith a second line")),
    "try_charge in flight": lambda k, x: k.inflight.__setitem__(memcg(k, x + 1).id, 1 + x % 3),
    "per-CPU stock": _stock,
    "costly OOM": lambda k, x: k.oom_charges.append((memcg(k, x).id, 1000)),
    "nlink": lambda k, x: [setattr(a, "nlink", 0) for a in list(k.files.values())[:1]],
    "i_count": lambda k, x: [setattr(a, "i_count", 0) for a in list(k.mappings.values())[:2]],
    "name to another inode": lambda k, x: [k.files.__setitem__("/planted", a)
                                           for a in list(k.files.values())[-1:]],
    "i_mmap": _i_mmap,
    "page lock held": _lock,
    "PG_locked": lambda k, x: k.mem_map.flags.__setitem__(
        p := pick(k, x, (k.mem_map.flags & PG_swapcache) != 0), k.mem_map.flags[p] | PG_locked),
}


#: a workload that leaves THPs, swap, page cache, tmpfs and shared memory behind
WORKLOAD = [("mmap", 0, 0, 0), ("mmap", 1, 3, 50), ("touch", 1, 3, 50), ("mmap", 0, 1, 40),
            ("touch", 0, 1, 40), ("write", 0, 3, 20), ("mmap_file", 1, 1, 10),
            ("reclaim_memcg", 1, 0, 30), ("touch", 1, 1, 20), ("fork", 0, 1, 1),
            ("read", 2, 2, 30), ("reclaim", 0, 5, 9), ("reclaim", 1, 9, 3),
            ("limit", 1, 40, 1), ("touch", 0, 2, 60), ("split", 0, 3, 1)]


@pytest.fixture(scope="module", params=KINDS, ids=lambda kind: "-".join(kind))
def kind(request):
    return request.param


def worked(kind, nodes=1):
    m = build(kind, nodes=nodes)
    for step, op in enumerate(WORKLOAD):
        apply(m, *op, step)
    assert assert_same_verdict(m.k, "the workload") == []
    return m


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_a_planted_corruption_gets_the_original_verdict(kind, name):
    for nodes, x in ((1, 0), (2, 1), (1, 7), (2, 12)):
        m = worked(kind, nodes)
        CORRUPTIONS[name](m.k, x)
        assert_same_verdict(m.k, f"{name} x={x} nodes={nodes}")


#: corruptions that break an invariant on the workload's state whatever x picks
ALWAYS_SEEN = ("refcount +1", "refcount -1", "mapcount +1", "pte cleared", "lru_size",
               "res usage", "inuse_pages", "underflow", "warning", "try_charge in flight",
               "page lock held", "active and unevictable", "anon without anon_vma")


@pytest.mark.parametrize("name", ALWAYS_SEEN)
def test_the_planted_corruptions_are_seen(kind, name):
    m = worked(kind)
    CORRUPTIONS[name](m.k, 3)
    assert check(m.k), name


def test_several_violations_keep_their_order_and_the_first_five_pfns():
    m = worked(("3.17", "v1"), nodes=2)
    k = m.k
    rng = np.random.default_rng(5)
    for name in CORRUPTIONS:
        if name != "pte past mem_map":
            for x in rng.integers(0, 1000, 3).tolist():
                CORRUPTIONS[name](k, x)
    # many pages broken at once: each rule reports its first five
    k.mem_map.refcount[used(k)] += 1
    k.mem_map.flags[np.flatnonzero((k.mem_map.flags & PG_buddy) != 0)[:9]] |= PG_lru
    verdict = assert_same_verdict(k, "all at once")
    assert len({v[0] for v in verdict}) >= 8


def test_a_pte_past_mem_map_raises_as_before():
    m = worked(("6.12", "v2"))
    _pte_past_mem_map(m.k, 0)
    assert outcome(check, m.k, True) is outcome(_reference_check, m.k, True) is ValueError


def test_no_tasks_no_files_no_swap():
    m = Machine(512, profile="6.12", cgroup="v2")
    assert assert_same_verdict(m.k) == []
    m.k.mem_map.refcount[3] = 1
    assert assert_same_verdict(m.k) == []       # a free page is not checked for references
    m.k.mem_map.flags[3] |= PG_lru
    assert assert_same_verdict(m.k)


def test_mid_path_states_get_the_original_verdict():
    """A try_charge outstanding and a page held by the path (tests/test_paths.py)."""
    from memcgsim.mm.memcontrol import mem_cgroup_try_charge
    from memcgsim.mm.page_alloc import alloc_pages_node

    m = build(("3.17", "v1"))
    a = m.task("A")
    k = m.k
    pfn = alloc_pages_node(k, 0, 0)
    k.current = a
    ret, _ = mem_cgroup_try_charge(k, pfn, a.mm, 1)
    k.current = None
    assert ret == 0
    verdict = assert_same_verdict(k)
    assert sorted({v[0] for v in verdict}) == ["exactly-once", "refs"]


def test_the_explorers_watched_arrays_get_the_original_verdict():
    """The explorer checks states whose arrays are watched views (memcgsim.explore.footprint);
    the new checker reads them as the original did, with and without a planted corruption."""
    from memcgsim.explore.footprint import track

    for kind in KINDS:
        m = worked(kind, nodes=2)
        track(m.k)
        assert type(m.k.mem_map.flags).__name__ == "_Tracked"
        assert assert_same_verdict(m.k, f"{kind} watched") == []
        for name in ("refcount +1", "page twice in one address space", "lru_size",
                     "page in two address spaces", "PMD pte"):
            CORRUPTIONS[name](m.k, 5)
            assert_same_verdict(m.k, f"{kind} watched, {name}")


def test_the_public_surface_is_kept():
    assert [inv.__name__ for inv in INVARIANTS] == [
        inv.__name__.removeprefix("_ref_") for inv in _REF_INVARIANTS]
    assert all(inv.__doc__ == ref.__doc__ for inv, ref in zip(INVARIANTS, _REF_INVARIANTS,
                                                               strict=True))
    assert Violation("x", "y") == Violation("x", "y", None)


# ------------------------------------------------------------------------------------------
# random machines

OPS = st.lists(st.tuples(st.sampled_from(OPS_VOCABULARY), st.integers(0, 5),
                         st.integers(0, 300), st.integers(1, 200)),
               min_size=1, max_size=20)
PLANTED = st.lists(st.tuples(st.sampled_from(sorted(CORRUPTIONS)), st.integers(0, 10_000)),
                   max_size=4)
LIMIT = st.sampled_from([0, 0, 60, 150, 400])


@given(kind=st.sampled_from(KINDS), ops=OPS, planted=PLANTED,
       memory=st.sampled_from([1024, 2048]), cpus=st.integers(1, 2),
       nodes=st.integers(1, 2), swap=st.sampled_from([0, 100, 1500]),
       swap_accounting=st.booleans(), thp=st.booleans(), limits=st.tuples(LIMIT, LIMIT, LIMIT))
# damage planted on a slot the swap slot cache holds
@example(kind=("6.1", "v1"), ops=[("mmap", 0, 0, 1), ("mmap", 0, 0, 1), ("touch", 0, 0, 1)],
         planted=[("swap_map", 1)], memory=1024, cpus=1, nodes=1, swap=1500,
         swap_accounting=False, thp=False, limits=(0, 0, 0))
def test_random_machines_get_the_original_verdict(kind, ops, planted, memory, cpus, nodes, swap,
                                                  swap_accounting, thp, limits):
    """After every operation of a random workload, and after each planted corruption that
    follows it, the new checker's verdict is the original's."""
    m = build(kind, memory=memory, cpus=cpus, nodes=nodes, swap=swap,
              swap_accounting=swap_accounting, thp=thp, limits=limits)
    for step, op in enumerate(ops):
        apply(m, *op, step)
        assert_same_verdict(m.k, f"step {step} {op}")
    for name, x in planted:
        CORRUPTIONS[name](m.k, x)
        assert_same_verdict(m.k, f"after planting {name} x={x}")
