"""The invariant checker (spec section 7), for every kernel profile.

One checker serves all profiles; where an invariant differs, the profile says so and the
invariant's docstring states the difference:
- counter tree: 3.17 flat children hang off nothing; with page_counter (6.x) every memcg hangs
  off its parent and root's counters hold the sum of its children (never a charge of its own).
  6.x counts kernel memory (page tables, stacks, task slab) in memory (and v1's kmem counter);
  v2's swap counter holds exactly the slots recorded to the memcg.
- limits: 3.17 never lets usage pass a limit; 6.x may (forced charges, memory.max writes).
- statistics: 3.17's charge-type counters are checked against the pages; 6.x's state counters
  are read off the pages themselves, so there is nothing separate to compare.
- names and inodes (`inv_inodes`) are the same on every profile.

Each invariant is a function that reads the kernel state through its public data and yields
`Violation`s; `check` runs them all. Some invariants hold only at a quiescent point, when no path
is half-way (no lock held, no try_charge outstanding); pass quiescent=False to check a state in
the middle of interleaved paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import MemcgsimError
from .mm.memcontrol import (
    MEM_CGROUP_STAT_CACHE,
    MEM_CGROUP_STAT_FILE_MAPPED,
    MEM_CGROUP_STAT_NAMES,
    MEM_CGROUP_STAT_RSS,
    MEM_CGROUP_STAT_RSS_HUGE,
    MEM_CGROUP_STAT_SWAP,
    MEM_CGROUP_STAT_WRITEBACK,
)
from .mm.mm_struct import PTE_HUGE, PTE_PRESENT, PTE_VAL_MASK
from .mm.mm_types import (
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
from .mm.page_cgroup import PCG_MEM, PCG_MEMSW, PCG_USED
from .mm.swapfile import SWAP_HAS_CACHE


@dataclass(frozen=True)
class Violation:
    invariant: str
    message: str
    pfn: int | None = None


class InvariantViolation(MemcgsimError):
    """The checker found violations; `violations` lists them, the message shows page dumps."""

    def __init__(self, kernel, violations: list[Violation]):
        self.violations = violations
        lines = [f"{len(violations)} invariant violation(s):"]
        for v in violations[:20]:
            lines.append(f"  [{v.invariant}] {v.message}")
        shown = set()
        for v in violations:
            if v.pfn is not None and v.pfn not in shown and len(shown) < 3:
                shown.add(v.pfn)
                lines.append(kernel.dump_page(v.pfn))
        super().__init__("\n".join(lines))


class _Sums:
    """Per-memcg page sums over mem_map, and the page masks several invariants share (THP heads,
    charged pages), computed once per check."""

    def __init__(self, k):
        mem_map, pc = k.mem_map, k.pc
        self.n = max(k.memcg_by_id) + 1
        f, pcf = mem_map.flags, pc.flags
        self.flags, self.pc_flags = f, pcf
        #: page masks read by more than one invariant (the others make their own: a check
        #: holds little memory, so that the allocator keeps it from one check to the next)
        self.head = (f & PG_head) != 0
        self.used = (pcf & PCG_USED) != 0
        self.memcg = pc.memcg
        self.pmem = self.by_memcg(self.used & ((pcf & PCG_MEM) != 0))
        self.pmsw = self.by_memcg(self.used & ((pcf & PCG_MEMSW) != 0))
        rec = k.swap_cgroup.id
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

    def by_memcg(self, mask) -> np.ndarray:
        """Pages (a THP head counting HPAGE_PMD_NR) under `mask`, per memcg id: a count of the
        struct pages plus HPAGE_PMD_NR - 1 for each head."""
        out = np.bincount(self.memcg[mask], minlength=self.n)
        heads = self.memcg[mask & self.head]
        if len(heads):
            out += (HPAGE_PMD_NR - 1) * np.bincount(heads, minlength=len(out))
        return out


def _first_pfns(mask) -> list[int]:
    """The first five pfns set in a page mask (none without a pass of its own when it is
    empty)."""
    if not mask.any():
        return []
    return np.flatnonzero(mask)[:5].tolist()


def inv_counter_tree(k, s: _Sums, quiescent: bool) -> Iterator[Violation]:
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


def inv_no_underflow(k, s: _Sums, quiescent: bool) -> Iterator[Violation]:
    """3: no counter, statistic or LRU size went below zero; nothing the kernel WARNs about."""
    for m in k.memcg_by_id.values():
        for c in (m.res, m.memsw, m.kmem, *((m.swap,) if m.swap is not None else ())):
            for asked, had in c.underflows:
                yield Violation("underflow", f"{c.name}: uncharge of {asked} with usage {had}")
        if not m.stat or min(m.stat) >= 0:
            continue
        for i, v in enumerate(m.stat):
            if v < 0:
                yield Violation("underflow", f"{m.name} stat {MEM_CGROUP_STAT_NAMES[i]} = {v}")
    for kind, message in k.warnings:
        yield Violation(f"warn:{kind}", message.splitlines()[0])


def inv_limits(k, s: _Sums, quiescent: bool) -> Iterator[Violation]:
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


def inv_flags(k, s: _Sums, quiescent: bool) -> Iterator[Violation]:
    """6: legal page and page_cgroup flag combinations."""
    mem_map = k.mem_map
    f = s.flags
    pcf = s.pc_flags

    def bad(mask, what):
        for pfn in _first_pfns(mask):
            yield Violation("flags", f"pfn {pfn:#x}: {what}", pfn)

    used = s.used
    mem = (pcf & PCG_MEM) != 0
    memsw = (pcf & PCG_MEMSW) != 0
    yield from bad((mem | memsw) & ~used, "PCG_MEM/PCG_MEMSW without PCG_USED")
    yield from bad(memsw & ~mem, "PCG_MEMSW without PCG_MEM")
    yield from bad(used & ~mem, "PCG_USED without PCG_MEM")
    if not k.do_swap_account:
        yield from bad(memsw, "PCG_MEMSW set with swap accounting off")
    elif quiescent:
        yield from bad(used & ~memsw, "charged page without PCG_MEMSW outside swapout-to-free")
    del mem, memsw
    buddy = (f & PG_buddy) != 0
    if buddy.any():
        yield from bad(buddy & (f != PG_buddy), "free page with other flags")
        yield from bad(buddy & used, "free page still charged")
    del buddy
    yield from bad((f & PG_tail != 0) & (pcf != 0), "THP tail with page_cgroup flags")
    yield from bad((f & (PG_active | PG_unevictable)) == (PG_active | PG_unevictable),
                   "active and unevictable")
    yield from bad((f & PG_lru != 0) & (mem_map.refcount <= 0), "on an LRU list with no reference")
    yield from bad((f & PG_anon != 0) & (mem_map.mapping == 0), "PageAnon without an anon_vma")
    swc = np.flatnonzero((f & PG_swapcache) != 0)
    if len(swc):
        slots = mem_map.private[swc]
        wrong = (slots <= 0) | (k.swap.cache[np.clip(slots, 0, None)] != swc)
        if not quiescent:
            # shmem_replace_page puts the new page in the slot under the tree lock and clears
            # the old page's PageSwapCache after, under the old page's lock
            wrong &= (f[swc] & PG_locked) == 0
        # swc is sorted: its pfns under `wrong` are the mask's pfns in order
        for pfn in swc[wrong][:5].tolist():
            yield Violation("flags", f"pfn {pfn:#x}: swap cache entry mismatch", pfn)


def inv_exactly_once(k, s: _Sums, quiescent: bool) -> Iterator[Violation]:
    """7: every try_charge ended; every charged page is alive and referenced exactly by its
    mappings and its cache."""
    if not quiescent:
        return
    for memcg_id, pages in k.inflight.items():
        if pages:
            yield Violation("exactly-once", f"{k.memcg_by_id[memcg_id].name}: {pages} pages "
                            "try-charged but never committed or cancelled")
    mem_map = k.mem_map
    nr_pages = k.nr_pages
    # the ptes of all VMAs at once: a present pte not of a PMD mapping maps its page; of a PMD
    # mapping's 512 ptes, the one of the head page counts the THP's mapping
    # (np.asarray: the plain arrays behind the explorer's watched views, which an array
    # function given a list of them would not unwrap)
    tables = [np.asarray(vma.pte) for m in k.mms.values() for vma in m.vmas]
    pte = np.concatenate(tables) if tables else np.zeros(0, dtype=np.int64)
    bits = np.bitwise_and(pte, PTE_PRESENT | PTE_HUGE)
    counted = bits == PTE_PRESENT
    np.bitwise_and(pte, PTE_HUGE | (HPAGE_PMD_NR - 1), out=bits)
    counted |= bits == PTE_HUGE
    del bits
    mapped = pte[counted]
    del pte, counted
    mapped &= PTE_VAL_MASK
    ptes = np.bincount(mapped, minlength=nr_pages)
    del mapped
    if len(ptes) != nr_pages:
        raise ValueError(f"a pte maps pfn {len(ptes) - 1}, past the {nr_pages} pages")
    live = (mem_map.flags & (PG_buddy | PG_tail)) == 0
    bad_map = live & (mem_map.mapcount != ptes)
    for pfn in _first_pfns(bad_map):
        yield Violation("refs", f"pfn {pfn:#x}: mapcount {int(mem_map.mapcount[pfn])} but "
                        f"{int(ptes[pfn])} ptes map it", pfn)
    del bad_map
    # references: the mappings plus one per page cache holding the page; an address space
    # (the swap cache too) counts a page once however many of its entries hold it
    spaces = [np.asarray(mapping.i_pages) for mapping in list(k.mappings.values())]
    refs = ptes             # ptes turns into refs from here on
    if spaces:
        e = np.concatenate(spaces)
        in_cache = e[e & PTE_PRESENT != 0] & PTE_VAL_MASK
        seen = np.zeros(nr_pages, dtype=bool)
        seen[in_cache] = True
        if np.count_nonzero(seen) == len(in_cache):
            refs[in_cache] += 1     # no page in two places: one pass for all address spaces
        else:
            for e in spaces:
                refs[e[e & PTE_PRESENT != 0] & PTE_VAL_MASK] += 1
    sc = k.swap.cache
    refs[sc[sc >= 0]] += 1
    bad_ref = _first_pfns(live & (mem_map.refcount != refs))
    if bad_ref:
        cached = np.zeros(nr_pages, dtype=np.int64)
        for e in spaces:
            cached[e[e & PTE_PRESENT != 0] & PTE_VAL_MASK] += 1
        cached[sc[sc >= 0]] += 1
        for pfn in bad_ref:
            yield Violation("refs", f"pfn {pfn:#x}: refcount {int(mem_map.refcount[pfn])} but "
                            f"{int(refs[pfn] - cached[pfn])} mappings + {int(cached[pfn])} cache "
                            "references (a leaked or missing reference)", pfn)


def inv_lru(k, s: _Sums, quiescent: bool) -> Iterator[Violation]:
    """9: every LRU page is on the lruvec of its memcg (root when uncharged), and each
    lruvec's lru_size matches the pages on its lists."""
    mem_map, pc = k.mem_map, k.pc
    on = np.flatnonzero((s.flags & PG_lru) != 0)
    lru_memcg = mem_map.lru_memcg[on]
    want = np.where(pc.flags[on] & PCG_USED, pc.memcg[on], k.root_mem_cgroup.id)
    wrong = on[lru_memcg != want]
    for pfn in wrong[:5].tolist():
        have = k.memcg_by_id[int(mem_map.lru_memcg[pfn])].name
        yield Violation("lru", f"pfn {pfn:#x} sits on the lruvec of {have}, its memcg is "
                        f"{k.memcg_by_id[int(want[np.searchsorted(on, pfn)])].name}", pfn)
    lru = page_lru_array(s.flags[on])
    nr_nodes = k.nr_nodes
    key = lru_memcg.astype(np.int64)
    if nr_nodes != 1 or len(s.flags) > k.free_area.pages_per_node:
        key *= nr_nodes
        key += on // k.free_area.pages_per_node
    key *= NR_LRU_LISTS
    key += lru
    # pages on each list: one per struct page, HPAGE_PMD_NR - 1 more for each THP head
    sizes = np.bincount(key, minlength=s.n * nr_nodes * NR_LRU_LISTS)
    heads = key[s.head[on]]
    if len(heads):
        sizes += (HPAGE_PMD_NR - 1) * np.bincount(heads, minlength=len(sizes))
    lruvecs = [(m, lv) for m in k.memcg_by_id.values() for lv in m.lruvecs]
    first = np.array([(m.id * nr_nodes + lv.node) * NR_LRU_LISTS for m, lv in lruvecs],
                     dtype=np.int64)
    real_sizes = sizes[first[:, None] + np.arange(NR_LRU_LISTS)].tolist() if lruvecs else []
    for (m, lv), reals in zip(lruvecs, real_sizes, strict=True):
        for i in range(NR_LRU_LISTS):
            have = lv.lru_size[i]
            real = reals[i]
            if have != real:
                yield Violation("lru", f"{m.name} node {lv.node} {LRU_NAMES[i]} lru_size "
                                f"{have} but {real} pages on the list")


def inv_swap(k, s: _Sums, quiescent: bool) -> Iterator[Violation]:
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
        # a freed slot waiting in a CPU's slot cache reads SWAP_HAS_CACHE, with no page
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
        mem_map = k.mem_map
        dup = np.flatnonzero((s.flags & PG_swapcache != 0) & (s.pc_flags & PCG_MEMSW != 0))
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


def inv_stats(k, s: _Sums, quiescent: bool) -> Iterator[Violation]:
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


def inv_oom_order(k, s: _Sums, quiescent: bool) -> Iterator[Violation]:
    """Bug B8's check: no memcg OOM for a charge of a costly order, where the kernel's OOM
    path declines those (get_order of the charge's bytes is above PAGE_ALLOC_COSTLY_ORDER)."""
    if not k.profile.oom_skips_costly_order:
        return
    for memcg_id, nr_pages in k.oom_charges:
        if nr_pages > k.profile.costly_order_pages:
            yield Violation("oom-order", f"{k.memcg_by_id[memcg_id].name}: OOM invoked for a "
                            f"charge of {nr_pages} pages (a costly order)")


def inv_inodes(k, s: _Sums, quiescent: bool) -> Iterator[Violation]:
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


INVARIANTS = (inv_counter_tree, inv_no_underflow, inv_limits, inv_flags, inv_exactly_once,
              inv_lru, inv_swap, inv_stats, inv_oom_order, inv_inodes)


def check(k, quiescent: bool = True) -> list[Violation]:
    """Run every invariant; an empty list means the state is consistent.

    quiescent: no path is running, so no lock may be held and no charge be in flight.
    """
    sums = _Sums(k)
    out: list[Violation] = []
    if quiescent:
        for lock, owner in k.locks.holders():
            out.append(Violation("locks", f"{lock} still held by path {owner} with no path "
                                 "running", lock[1] if lock[0] == "page" else None))
    for inv in INVARIANTS:
        out.extend(inv(k, sums, quiescent))
    return out


def assert_invariants(k, quiescent: bool = True) -> None:
    violations = check(k, quiescent)
    if violations:
        raise InvariantViolation(k, violations)
