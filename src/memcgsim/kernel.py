"""The model's state: one simulated machine running one modelled kernel.

`Kernel` holds what the kernel keeps globally (mem_map, page_cgroup, the memcg tree, per-CPU
stocks, the swap device and its swap_cgroup map, address spaces, mms and tasks, locks) and the few
helpers every mm module uses (VM_BUG_ON_PAGE, dump_page, WARN). The kernel paths themselves are
the functions of memcgsim.mm.*; `memcgsim.machine.Machine` is the friendlier face over both.
"""

from __future__ import annotations

import itertools

import numpy as np

from .errors import InvalidRequest, VMBugOnPage
from .mm.fs import AddressSpace
from .mm.locking import LockTable, run_path
from .mm.memcontrol import MemCgroup, MemcgStock
from .mm.mm_struct import VM_SHARED
from .mm.mm_types import (
    HPAGE_PMD_NR,
    LRU_NAMES,
    MemMap,
    PG_anon,
    PG_lru,
    flag_names,
    page_lru,
)
from .mm.page_alloc import FreeArea
from .mm.page_cgroup import PCG_FLAG_NAMES, PCG_USED, PageCgroupMap
from .mm.page_counter import PAGE_COUNTER_MAX
from .mm.res_counter import RES_COUNTER_MAX
from .mm.swap_cgroup import SwapCgroup
from .mm.swapfile import SwapInfo
from .mm.vmscan import LruLog
from .profile import get_profile

PAGE_SIZE = 4096
MAX_MEMCG_ID = 65535
#: check every look at an LRU list against a scan of all of mem_map (AssertionError when they
#: differ): the default of Kernel.check_lru_tails; the tests turn it on with
#: MEMCGSIM_CHECK_LRU_TAILS=1 (tests/conftest.py)
CHECK_LRU_TAILS = False


class Kernel:
    """A booted kernel: memory of `nr_pages` pages on `nr_nodes` nodes, `nr_cpus` CPUs and a
    swap device of `swap_pages` slots (plus the header slot)."""

    def __init__(self, nr_pages: int, *, profile: str = "3.17", swap_pages: int = 0,
                 nr_cpus: int = 1, nr_nodes: int = 1, swap_accounting: bool = True,
                 thp: bool = False, cgroup: str | None = None):
        if nr_nodes < 1 or nr_cpus < 1:
            raise InvalidRequest("a machine needs at least one node and one CPU")
        if nr_pages <= 0 or nr_pages % (HPAGE_PMD_NR * nr_nodes):
            raise InvalidRequest(f"memory of {nr_pages} pages is not a positive multiple of "
                                 f"2 MiB per node ({HPAGE_PMD_NR * nr_nodes} pages)")
        if swap_pages < 0:
            raise InvalidRequest(f"swap size {swap_pages} is negative")
        self.profile = get_profile(profile)
        cgroup = self.profile.default_cgroup if cgroup is None else cgroup
        if cgroup not in self.profile.cgroup_versions:
            have = " and ".join(self.profile.cgroup_versions)
            raise InvalidRequest(f"kernel {profile} has no cgroup {cgroup} memory controller "
                                 f"(it has {have})")
        #: the memory controller's interface: "v1" or "v2" (the unified hierarchy)
        self.cgroup = cgroup
        self.cgroup_v2 = cgroup == "v2"
        self.nr_pages = nr_pages
        self.nr_nodes = nr_nodes
        self.nr_cpus = nr_cpus
        self.mem_map = MemMap(nr_pages)
        self.pc = PageCgroupMap(nr_pages)
        self.free_area = FreeArea(nr_pages, nr_nodes)
        #: do_swap_account (do_memsw_account from 4.x): v1 memsw counters, PCG_MEMSW and
        #: swap_cgroup records at swapout. v2 never has memsw; it charges a separate swap
        #: counter when a page gets a slot.
        self.do_swap_account = swap_accounting and not self.cgroup_v2
        self.swap = SwapInfo(swap_pages + 1 if swap_pages else 0, nr_cpus)
        self.swap_cgroup = SwapCgroup(self.swap.nr_slots)
        self.swapper_space = AddressSpace(0, "swapper_space")
        self.stocks = [MemcgStock() for _ in range(nr_cpus)]
        self.locks = LockTable(self)
        self.current = None
        #: a list to record the memcg API calls and what they changed, or None (not tracing)
        self.trace = None
        self.tracing = False
        #: pages try-charged but not yet committed or cancelled, per memcg id (for the checker)
        self.inflight: dict[int, int] = {}
        #: what the kernel would WARN about or report as a bad page: (kind, message)
        self.warnings: list[tuple[str, str]] = []
        #: the charge move under way (v1 move_charge_at_immigrate; the kernel's global `mc`)
        self.mc = None
        #: the memcg OOMs the charge path invoked: (memcg id, pages of the charge)
        self.oom_charges: list[tuple[int, int]] = []
        self._lru_seq = 0
        #: names of historical bugs put back for the explorer (memcgsim.explore.INJECTIONS)
        self.inject: frozenset = frozenset()
        #: run reclaim's common case in bulk (vectorized.shrink_page_list_bulk); the Machine
        #: sets it with its own vectorized flag
        self.vectorized = False
        #: reclaim's view of each LRU list's tail, (memcg id, lru) -> vmscan.LruTail
        self.lru_tails: dict = {}
        #: what the next look at each list starts from, (memcg id, lru) -> vmscan.LruLog
        self.lru_logs: dict = {}
        self.check_lru_tails = CHECK_LRU_TAILS
        self._ids = itertools.count(1)
        self._obj_ids = 0
        self.memcg_by_id: dict[int, MemCgroup] = {}
        self.memcg_by_name: dict[str, MemCgroup] = {}
        self.root_mem_cgroup = self._new_memcg("/", None)
        #: transparent_hugepage=always for anonymous memory
        self.thp = thp
        #: every live inode's address_space by id: named files, unlinked files something still
        #: maps, the kernel's own unlinked shmem files (shmem_zero_setup); what rmap, reclaim
        #: and the checker reach page caches through (iput_final removes an evicted one)
        self.mappings: dict[int, AddressSpace] = {}
        #: the names a path lookup can reach (the dentries), path -> address_space: only named
        #: files, never an unlinked one nor a kernel-internal one (mm.fs_ops)
        self.files: dict[str, AddressSpace] = {}
        self.anon_vmas: dict = {}
        self.mms: dict = {}
        self.tasks: dict = {}

    # ------------------------------------------------------------------ helpers for mm/*
    def bug_on(self, cond, pfn: int, text: str) -> None:
        """VM_BUG_ON_PAGE(cond, page)."""
        if cond:
            raise VMBugOnPage(pfn, text, self.dump_page(pfn))

    def warn(self, kind: str, message: str) -> None:
        self.warnings.append((kind, message))

    def page_to_nid(self, pfn: int) -> int:
        return pfn // self.free_area.pages_per_node

    def this_cpu_stock(self) -> MemcgStock:
        cpu = self.current.cpu if self.current is not None else 0
        return self.stocks[cpu]

    def new_id(self) -> int:
        """An id for an mm, anon_vma or address_space (unique in this kernel)."""
        self._obj_ids += 1
        return self._obj_ids

    def thp_enabled(self, vma) -> bool:
        return self.thp and vma.file is None and not vma.flags & VM_SHARED

    def next_lru_seq(self) -> int:
        self._lru_seq += 1
        return self._lru_seq

    def take_lru_seqs(self, n: int) -> int:
        """Reserve n consecutive LRU sequence numbers; return the first."""
        first = self._lru_seq + 1
        self._lru_seq += n
        return first

    def lru_added(self, memcg_id: int, lru: int, pfn: int, seq: int) -> None:
        """A page joined memcg's list lru with this lru_seq (as mem_map keeps it, 32 bits):
        the next look at the list must find it."""
        key = (memcg_id, lru)
        log = self.lru_logs.get(key)
        if log is None:
            log = self.lru_logs[key] = LruLog()
        added = log.added
        added.append((seq & 0xFFFFFFFF) << 32 | pfn)
        if len(added) >= log.FOLD:
            log.fold(self, key)

    def lru_added_bulk(self, memcg_id: int, lru: int, pfns: np.ndarray,
                       seqs: np.ndarray | int) -> None:
        """lru_added for many pages of one list (seqs: each page's, or one for all)."""
        key = (memcg_id, lru)
        log = self.lru_logs.get(key)
        if log is None:
            log = self.lru_logs[key] = LruLog()
        entries = (np.asarray(seqs).astype(np.uint64) & 0xFFFFFFFF) << 32
        log.add_chunk(self, key, entries | np.asarray(pfns).astype(np.uint64), fresh=True)

    def v1_limit_bytes(self, limit_pages: int) -> int:
        """A limit as the v1 files print it: the profile's v1_unlimited_bytes when unlimited
        (RES_COUNTER_MAX or PAGE_COUNTER_MAX pages, by the counter type)."""
        prof = self.profile
        unlimited = RES_COUNTER_MAX if prof.counter == "res_counter" else PAGE_COUNTER_MAX
        if limit_pages >= unlimited:
            return prof.v1_unlimited_bytes
        return limit_pages * PAGE_SIZE

    def run(self, path, task=None):
        """Run a kernel path (a generator) to its end on behalf of task."""
        return run_path(self, path, task=task)

    # ------------------------------------------------------------------ memcgs
    def _new_memcg(self, name: str, parent: MemCgroup | None) -> MemCgroup:
        memcg_id = next(self._ids)
        if memcg_id > MAX_MEMCG_ID:
            raise InvalidRequest("out of memcg ids (65535)")
        memcg = MemCgroup(memcg_id, name, parent, self.nr_nodes, self.profile)
        self.memcg_by_id[memcg_id] = memcg
        self.memcg_by_name[name] = memcg
        if parent is not None:
            parent.children.append(memcg)
        return memcg

    def mem_cgroup_create(self, path: str) -> MemCgroup:
        """mkdir in the memory cgroup hierarchy: css_alloc + css_online."""
        if not path.startswith("/") or path == "/" or path.endswith("/") or "//" in path:
            raise InvalidRequest(f"bad cgroup path {path!r}: want /name or /parent/name")
        if path in self.memcg_by_name:
            raise InvalidRequest(f"cgroup {path} already exists")
        parent_path = path.rsplit("/", 1)[0] or "/"
        parent = self.memcg_by_name.get(parent_path)
        if parent is None:
            raise InvalidRequest(f"cannot create {path}: parent {parent_path} does not exist")
        return self._new_memcg(path, parent)

    def memcg(self, path: str) -> MemCgroup:
        try:
            return self.memcg_by_name[path]
        except KeyError:
            raise InvalidRequest(f"unknown memory cgroup {path!r}") from None

    # ------------------------------------------------------------------ dump_page
    def dump_page(self, pfn: int) -> str:
        """dump_page(): the page's struct page and page_cgroup, in one block."""
        if not 0 <= pfn < self.nr_pages:
            return f"pfn {pfn:#x} is outside mem_map (0..{self.nr_pages - 1:#x})"
        mem_map, pc = self.mem_map, self.pc
        flags = int(mem_map.flags[pfn])
        mapping = int(mem_map.mapping[pfn])
        kind = "anon_vma" if flags & PG_anon else "mapping"
        lines = [
            f"page pfn:{pfn:#x} node:{self.page_to_nid(pfn)} count:{int(mem_map.refcount[pfn])} "
            f"mapcount:{int(mem_map.mapcount[pfn])} {kind}:{mapping} "
            f"index:{int(mem_map.index[pfn]):#x} "
            f"private:{int(mem_map.private[pfn])}",
            f"flags: {flag_names(flags)}",
        ]
        memcg = self.memcg_by_id.get(int(pc.memcg[pfn]))
        lines.append(f"page_cgroup: flags {flag_names(int(pc.flags[pfn]), PCG_FLAG_NAMES)} "
                     f"mem_cgroup {memcg.name if memcg else 'NULL'}"
                     + ("" if pc.flags[pfn] & PCG_USED or memcg is None else " (stale)"))
        if flags & PG_lru:
            lv = self.memcg_by_id.get(int(mem_map.lru_memcg[pfn]))
            lines.append(f"lru: {LRU_NAMES[page_lru(flags)]} of lruvec "
                         f"{lv.name if lv else '?'} node {self.page_to_nid(pfn)}")
        return "\n".join(lines)
