"""Random walks over every path of the Machine facade, with the invariant checker after each step.

A small machine (a kernel profile and interface: 3.17 v1, 6.1 v1, 6.1 v2 or 6.12 v2; 8 MiB,
optional swap, 1-2 CPUs, 1-2 nodes, swap accounting, THP and the vectorized fault/zap paths on or
off) gets the cgroups /a, /b and /a/c with optional limits (and optionally use_hierarchy on /a;
on v2 /a hands memory to /a/c and so holds no tasks: a task meant for /a goes to /a/c), a few
first tasks, then a random sequence of task,
anonymous-memory, file, reclaim, migration, limit and cgroup-file operations (charge moving,
force_empty, rmdir with reparenting). After every step `check(k)` must be empty, and the
properties this test tracks itself (`tracked_properties`) must hold as well.

Bundles only ever hold live objects, so a rule that draws from a bundle is always enabled: exit
consumes its task, munmap its VMA, unlink its file name; after an exit or a fault (whose memcg
OOM may kill any task of the hierarchy) the dead tasks and their VMAs are dropped from the
bundles, and shutdown empties them all. The mappings a forked child inherits enter the VMA
bundle through `adopt_inherited_vmas`. Rules that need something else (a second node, a THP, a
data file, an LRU page, dirty or clean page cache) say so in a precondition.

Names that reach nothing: the tmpfs file backing a shared anonymous mapping (shmem_zero_setup)
and a file once unlinked have no name a user can give. `name_backing_file` and
`name_unlinked_file` name them anyway through the Machine API (read, mmap_file, truncate,
unlink: InvalidRequest and nothing changed; write: a fresh, separate file under that name) and
check that the object they meant is not reached.

Profiles (tests/conftest.py): HYPOTHESIS_PROFILE=default (200 examples of 40 steps) or ci.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from memcgsim import Errno, InvalidRequest, InvariantViolation, Machine, check
from memcgsim.kernel import PAGE_SIZE
from memcgsim.mm.mm_struct import PTE_HUGE, PTE_PRESENT, PTE_SWAP, PTE_VAL_MASK, VM_SHARED
from memcgsim.mm.mm_types import (
    HPAGE_PMD_NR,
    PG_anon,
    PG_buddy,
    PG_dirty,
    PG_head,
    PG_lru,
    PG_swapbacked,
)
from memcgsim.mm.page_cgroup import PCG_MEMSW, PCG_USED
from memcgsim.mm.page_counter import PAGE_COUNTER_MAX
from memcgsim.mm.res_counter import RES_COUNTER_MAX

MEMORY_PAGES = 2048
CGROUPS = ("/", "/a", "/b", "/a/c")
LIMITED = CGROUPS[1:]
KINDS = (("3.17", "v1"), ("6.1", "v1"), ("6.1", "v2"), ("6.12", "v2"))
FILE_NAMES = ("/data/f0", "/data/f1", "/data/f2", "/dev/shm/f0", "/dev/shm/f1")
#: what a name that reaches nothing is used for: the refused calls, and write, which creates
NAME_OPS = ("read", "mmap_file", "truncate", "unlink", "write")

limits = st.sampled_from([None, 16, 64, 128, 256, 600])
memsw_slacks = st.one_of(st.none(), st.sampled_from([0, 32, 128]))
READABLE = ("memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.limit_in_bytes",
            "memory.failcnt", "memory.stat", "memory.numa_stat", "memory.use_hierarchy",
            "memory.move_charge_at_immigrate", "memory.oom_control", "tasks")
READABLE_MEMSW = ("memory.memsw.usage_in_bytes", "memory.memsw.limit_in_bytes",
                  "memory.memsw.max_usage_in_bytes", "memory.memsw.failcnt")
#: cgroups that rmdir_and_mkdir may remove (no children) and create again
LEAVES = ("/b", "/a/c")
cgroups = st.sampled_from(CGROUPS)
small_counts = st.integers(1, 64)
offsets = st.integers(0, 1023)
#: shutdown (everything exits; nothing may stay charged) waits for this much memory in use
SHUTDOWN_PAGES = 256


def _nr_ids(k) -> int:
    return max(k.memcg_by_id) + 1


def _charged_pages(k, flag: int = PCG_USED) -> np.ndarray:
    """Pages committed per memcg id (a THP head counts 512) with `flag` set in page_cgroup."""
    sel = (k.pc.flags & flag) != 0
    nr = np.where(k.mem_map.flags & PG_head, HPAGE_PMD_NR, 1)
    return np.bincount(k.pc.memcg[sel], weights=nr[sel], minlength=_nr_ids(k)).astype(np.int64)


class MemcgStateMachine(RuleBasedStateMachine):
    tasks = Bundle("tasks")
    vmas = Bundle("vmas")
    files = Bundle("files")

    def __init__(self):
        super().__init__()
        self.m: Machine | None = None
        self.limits: dict[str, tuple[int, int]] = {}
        #: the cgroup of every live task, as move_task left it
        self.task_cgroup: dict[str, str] = {}
        self.nr_tasks = 0
        #: every tmpfs file a shared anonymous mapping was given (live or evicted)
        self.backing: list = []
        #: name -> the inodes unlinked from under that name
        self.unlinked: dict[str, list] = {}

    # ------------------------------------------------------------------ helpers
    @property
    def k(self):
        return self.m.k

    def _values(self, bundle: str) -> list:
        return [self.names_to_values[ref.name] for ref in self.bundle(bundle)]

    def _forget_the_dead(self) -> None:
        """Drop tasks that exited or were OOM-killed, and their VMAs, from the bundles."""
        tasks = self.bundle("tasks")
        tasks[:] = [r for r in tasks if self.names_to_values[r.name].state == "alive"]
        vmas = self.bundle("vmas")
        vmas[:] = [r for r in vmas if self._mapped(self.names_to_values[r.name])]
        for name in [n for n in self.task_cgroup if self.k.tasks[n].state != "alive"]:
            del self.task_cgroup[name]

    @staticmethod
    def _mapped(vma) -> bool:
        task = vma.mm.owner
        return task is not None and task.state == "alive" and vma in task.mm.vmas

    def _unbundled_vmas(self) -> list:
        bundled = {id(v) for v in self._values("vmas")}
        return [v for t in self._values("tasks") for v in t.mm.vmas if id(v) not in bundled]

    def _data_files(self) -> list[str]:
        """Files of the ext4-like file system (FUSE-style splice works on those only)."""
        return sorted(n for n in self._values("files") if n.startswith("/data/"))

    def _pages_in_use(self) -> int:
        return self.k.nr_pages - sum(self.k.free_area.nr_free)

    def _file_cache(self, dirty: bool) -> bool:
        """Whether the (non-tmpfs) page cache holds a dirty page, or a clean unmapped one."""
        mem = self.k.mem_map
        cache = (mem.flags & (PG_anon | PG_swapbacked) == 0) & (mem.mapping != 0)
        if dirty:
            return bool(np.any(cache & (mem.flags & PG_dirty != 0)))
        return bool(np.any(cache & (mem.flags & PG_dirty == 0) & (mem.mapcount == 0)))

    def _thp_mappings(self) -> list[tuple]:
        """(vma, offset) of the first pte of every PMD-mapped THP in a bundled VMA."""
        flags = self.k.mem_map.flags
        found = []
        for vma in self._values("vmas"):
            pte = vma.pte
            pfn = pte & PTE_VAL_MASK
            first = ((pte & PTE_PRESENT) != 0) & (pfn % HPAGE_PMD_NR == 0)
            for off in np.flatnonzero(first).tolist():
                if flags[int(pfn[off])] & PG_head:
                    found.append((vma, off))
        return found

    def _lru_pfns(self) -> np.ndarray:
        return np.flatnonzero(self.k.mem_map.flags & PG_lru)

    @property
    def unlimited(self) -> int:
        return RES_COUNTER_MAX if self.k.profile.counter == "res_counter" else PAGE_COUNTER_MAX

    def _placed(self, cgroup: str) -> str:
        """Where a task meant for cgroup can live: on v2 /a has no processes of its own."""
        return "/a/c" if self.k.cgroup_v2 and cgroup == "/a" else cgroup

    def _set_limit(self, path: str, pages: int | None, memsw: bool) -> int:
        """set_limit with what it must return, and the shadow limits kept up to date."""
        memcg = self.m.memcg(path)
        want = self.unlimited if pages is None else pages
        res_limit, memsw_limit = self.limits[path]
        if self.k.cgroup_v2:
            # memory.max: set at once, then reclaim and OOM-kill down to it; never an error
            assert self.m.set_limit(path, pages) == 0
            self._forget_the_dead()
            self.limits[path] = (want, memsw_limit)
            return 0
        ret = self.m.set_limit(path, pages, memsw=memsw)
        counter = memcg.memsw if memsw else memcg.res
        # memory.limit may not exceed memsw.limit, nor memsw.limit go below memory.limit
        order_ok = want >= res_limit if memsw else want <= memsw_limit
        if not order_ok:
            assert ret == -Errno.EINVAL, (path, pages, memsw, ret)
        else:
            assert ret in (0, -Errno.EBUSY), (path, pages, memsw, ret)
            if ret == -Errno.EBUSY:
                assert counter.usage > want, f"EBUSY with usage {counter.usage} <= {want}"
        if ret == 0:
            self.limits[path] = (res_limit, want) if memsw else (want, memsw_limit)
        return ret

    # ------------------------------------------------------------------ setup
    @initialize(target=tasks, kind=st.sampled_from(KINDS), swap_pages=st.sampled_from([0, 128]),
                cpus=st.integers(1, 2),
                nodes=st.integers(1, 2), swap_accounting=st.booleans(), thp=st.booleans(),
                vectorized=st.booleans(), hierarchy=st.booleans(),
                cgroup_limits=st.fixed_dictionaries(
                    {path: st.tuples(limits, memsw_slacks) for path in LIMITED}),
                first_tasks=st.lists(cgroups, min_size=1, max_size=3))
    def boot(self, kind, swap_pages, cpus, nodes, swap_accounting, thp, vectorized, hierarchy,
             cgroup_limits, first_tasks):
        """The machine, its cgroups and limits, and the first tasks (one per cgroup listed)."""
        profile, cgroup = kind
        self.m = Machine(MEMORY_PAGES, swap_pages=swap_pages, cpus=cpus, nodes=nodes,
                         swap_accounting=swap_accounting, thp=thp, vectorized=vectorized,
                         profile=profile, cgroup=cgroup)
        self.m.mkdir("/a")
        self.m.mkdir("/b")
        if hierarchy:
            assert self.m.set_use_hierarchy("/a", True) == 0
        self.m.mkdir("/a/c")
        if self.k.cgroup_v2:
            assert self.m.write_file("/a", "cgroup.subtree_control", "+memory") == 0
        for path in LIMITED:
            self.limits[path] = (self.unlimited, self.unlimited)
            pages, slack = cgroup_limits[path]
            if pages is None:
                continue
            assert self._set_limit(path, pages, memsw=False) == 0
            if self.k.do_swap_account and slack is not None:
                assert self._set_limit(path, pages + slack, memsw=True) == 0
        return multiple(*(self._spawn(cgroup, i, i) for i, cgroup in enumerate(first_tasks)))

    def _spawn(self, cgroup: str, cpu: int, node: int):
        cgroup = self._placed(cgroup)
        self.nr_tasks += 1
        task = self.m.spawn(f"t{self.nr_tasks}", cgroup, cpu % self.k.nr_cpus,
                            node % self.k.nr_nodes)
        self.task_cgroup[task.comm] = cgroup
        return task

    # ------------------------------------------------------------------ tasks
    @rule(target=tasks, cgroup=cgroups, cpu=st.integers(0, 1), node=st.integers(0, 1))
    def spawn(self, cgroup, cpu, node):
        return self._spawn(cgroup, cpu, node)

    @rule(target=tasks, task=tasks)
    def fork(self, task):
        self.nr_tasks += 1
        child = self.m.fork(task, f"t{self.nr_tasks}")
        self.task_cgroup[child.comm] = task.memcg.name
        return child

    @precondition(lambda self: self._unbundled_vmas())
    @rule(target=vmas)
    def adopt_inherited_vmas(self):
        """The mappings a forked child inherited become VMAs the rules can use."""
        return multiple(*self._unbundled_vmas())

    @precondition(lambda self: len(self.bundle("tasks")) >= 2)
    @rule(task=consumes(tasks))
    def exit(self, task):
        """Any task but the last one (so the walk keeps a task to drive; see shutdown)."""
        self.m.exit(task)
        assert task.state == "exited"
        self._forget_the_dead()

    @rule(task=tasks, cgroup=cgroups)
    def move_task(self, task, cgroup):
        """With the destination's move_charge_at_immigrate set, the charges move too."""
        cgroup = self._placed(cgroup)
        ret = self.m.move_task(task, cgroup)
        assert ret in (0, -Errno.ENOMEM), ret
        assert task.state == "alive"         # a precharge never OOM-kills (no retries on 6.x)
        if ret == 0:
            self.task_cgroup[task.comm] = cgroup

    # ------------------------------------------------------------------ anonymous memory
    @rule(target=vmas, task=tasks,
          npages=st.one_of(small_counts, st.sampled_from([HPAGE_PMD_NR, 2 * HPAGE_PMD_NR])),
          shared=st.booleans(), count=st.integers(0, 64), write=st.booleans())
    def mmap_anon(self, task, npages, shared, count, write):
        vma = self.m.mmap_anon(task, npages, shared=shared)
        if shared:
            f = vma.file
            assert (f.shmem, f.nlink, f.i_count, f.size_pages) == (True, 0, 1, npages)
            assert self.k.mappings[f.id] is f
            assert all(g is not f for g in self.k.files.values())
            self.backing.append(f)
        else:
            assert vma.file is None
        self._touch(vma, 0, count, write)
        return vma if self._mapped(vma) else multiple()

    @rule(vma=vmas, start=offsets, count=small_counts, write=st.booleans())
    def touch(self, vma, start, count, write):
        self._touch(vma, start % vma.npages, count, write)

    def _touch(self, vma, start, count, write):
        """Fault pages in; a memcg OOM on the way may kill this task or another one."""
        count = min(count, vma.npages - start)
        if count:
            assert 0 <= self.m.touch(vma.mm.owner, vma, start, count, write=write) <= count
            self._forget_the_dead()

    @rule(vma=consumes(vmas))
    def munmap(self, vma):
        self.m.munmap(vma.mm.owner, vma)
        assert vma not in vma.mm.vmas
        f = vma.file
        if f is not None and not f.nlink and not f.i_count:
            self._assert_evicted(f)         # the last user of an unlinked inode went away

    @rule(vma=vmas, lock=st.booleans())
    def mlock(self, vma, lock):
        (self.m.mlock if lock else self.m.munlock)(vma.mm.owner, vma)
        self._forget_the_dead()            # mlock faults the pages in

    # ------------------------------------------------------------------ files
    @rule(target=files, task=tasks, name=st.sampled_from(FILE_NAMES),
          offset=st.one_of(st.none(), offsets), npages=small_counts)
    def write(self, task, name, offset, npages):
        """write(2), creating the file (ext4-like under /data, tmpfs under /dev/shm)."""
        existed = name in self.k.files
        if offset is not None:
            offset %= (self.m.file(name).size_pages + 1) if existed else 1
        ret = self.m.write(task, name, npages, offset)
        assert ret == npages or ret < 0, ret
        self._forget_the_dead()            # 6.x OOM-kills inside any charge
        return multiple() if existed else name

    @rule(task=tasks, name=files, start=offsets, count=small_counts)
    def read(self, task, name, start, count):
        size = self.m.file(name).size_pages
        start %= size + 1
        count = min(count, size - start)
        ret = self.m.read(task, name, start, count)
        assert ret == count or ret < 0, ret
        self._forget_the_dead()

    @rule(target=vmas, task=tasks, name=files, npages=st.integers(1, 16),
          pgoff=st.integers(0, 8), shared=st.booleans(), count=st.integers(0, 16),
          write=st.booleans())
    def mmap_file(self, task, name, npages, pgoff, shared, count, write):
        vma = self.m.mmap_file(task, name, npages, pgoff, shared=shared)
        self._touch(vma, 0, count, write)
        return vma if self._mapped(vma) else multiple()

    @rule(name=files, npages=offsets)
    def truncate(self, name, npages):
        npages %= self.m.file(name).size_pages + 1
        self.m.truncate(name, npages)
        assert self.m.file(name).size_pages == npages

    @rule(name=consumes(files))
    def unlink(self, name):
        f = self.m.file(name)
        self.m.unlink(name)
        assert name not in self.k.files and f.nlink == 0
        if not f.i_count:
            self._assert_evicted(f)
        else:
            assert self.k.mappings[f.id] is f      # still mapped: it lives on, nameless
        self.unlinked.setdefault(name, []).append(f)

    # ------------------------------------------------------------------ names that reach nothing
    @precondition(lambda self: self.backing)
    @rule(target=files, task=tasks, pick=st.integers(0, 63), which=st.integers(0, 4),
          op=st.sampled_from(NAME_OPS), npages=small_counts)
    def name_backing_file(self, task, pick, which, op, npages):
        """The tmpfs file of a shared anonymous mapping (still mapped or evicted) by the name
        its dentry has, the device it stands for, or a generated one: none reaches it."""
        f = self.backing[pick % len(self.backing)]
        names = (f.name, "/dev/zero", "/dev/zero (deleted)", f"/dev/zero#{f.id}",
                 f"/dev/zero#{f.id - 1}")
        return self._name_what_is_gone(task, names[which], [f], op, npages)

    @precondition(lambda self: self.unlinked)
    @rule(target=files, task=tasks, pick=st.integers(0, 63), op=st.sampled_from(NAME_OPS),
          npages=small_counts)
    def name_unlinked_file(self, task, pick, op, npages):
        """A name a file was unlinked from reaches none of the inodes it named before (some may
        still be mapped); it may reach a file created under it since."""
        names = sorted(self.unlinked)
        name = names[pick % len(names)]
        return self._name_what_is_gone(task, name, self.unlinked[name], op, npages)

    def _name_what_is_gone(self, task, name, gone, op, npages):
        """op on name: refused and nothing changed when no file has the name, a file that is
        none of `gone` otherwise; write creates a fresh file (ext4-like, or tmpfs under
        /dev/shm and /tmp) or appends to the one the name has."""
        k = self.k
        f = k.files.get(name)
        assert f is None or all(f is not g for g in gone), (name, f)
        if op == "write":
            ret = self.m.write(task, name, npages)
            assert ret == npages or ret < 0, ret
            self._forget_the_dead()
            new = k.files[name]
            assert all(new is not g for g in gone) and k.mappings[new.id] is new
            assert new.nlink == 1 and new.shmem == name.startswith(("/dev/shm/", "/tmp/"))
            if f is None:
                assert new.id > max(g.id for g in gone)          # a new inode
                if ret == npages:
                    assert new.size_pages == npages
            else:
                assert new is f
            for g in gone:
                assert g.nlink == 0 and (k.mappings.get(g.id) is g) == (g.i_count > 0)
            return multiple() if f is not None else name
        if f is not None:
            return multiple()               # the name's own file: the other rules use it
        before = self._snapshot()
        call = {"read": lambda: self.m.read(task, name),
                "mmap_file": lambda: self.m.mmap_file(task, name, npages),
                "truncate": lambda: self.m.truncate(name, 0),
                "unlink": lambda: self.m.unlink(name)}[op]
        with pytest.raises(InvalidRequest, match="unknown file"):
            call()
        assert self._snapshot() == before
        return multiple()

    def _snapshot(self):
        """What a refused request must leave as it was."""
        k = self.k
        return ({n: f.id for n, f in k.files.items()},
                {i: (f.nlink, f.i_count, f.size_pages, f.nrpages, f.i_pages.tobytes())
                 for i, f in k.mappings.items()},
                {i: [(v.start, v.npages, v.pte.tobytes()) for v in mm.vmas]
                 for i, mm in k.mms.items()},
                {m.id: (m.res.usage, m.memsw.usage, tuple(m.stat))
                 for m in k.memcg_by_id.values()},
                k.mem_map.refcount.tobytes(), k.pc.flags.tobytes(), list(k.free_area.nr_free))

    def _assert_evicted(self, f):
        """iput_final evicted the inode: it left the kernel's tables, and no page is in its
        page cache any more."""
        k = self.k
        assert f.id not in k.mappings and all(g is not f for g in k.files.values())
        assert f.nrpages == 0 and not f.i_mmap and not np.any(f.i_pages)
        mem = k.mem_map
        cache = (mem.flags & (PG_anon | PG_buddy)) == 0
        assert not np.any(cache & (mem.mapping == f.id)), f"pages left in {f!r}"

    @precondition(lambda self: self._file_cache(dirty=True))
    @rule()
    def sync(self):
        assert self.m.sync() >= 0

    @precondition(lambda self: self._file_cache(dirty=False))
    @rule()
    def drop_caches(self):
        assert self.m.drop_caches() >= 0

    @precondition(lambda self: self._data_files())
    @rule(task=tasks, pick=st.integers(0, 7), index=offsets,
          steal=st.one_of(st.none(), st.tuples(st.integers(0, 7), offsets)))
    def splice(self, task, pick, index, steal):
        """Replace a cached page by a fresh one, or by one stolen from another file's cache."""
        names = self._data_files()
        name = names[pick % len(names)]
        steal_from = steal_index = None
        others = [n for n in names if n != name]
        if steal is not None and others:
            steal_from = others[steal[0] % len(others)]
            steal_index = steal[1] % max(self.m.file(steal_from).size_pages, 1)
        index %= max(self.m.file(name).size_pages, 1)
        ret = self.m.splice(task, name, index, steal_from=steal_from,
                            steal_index=steal_index or 0)
        assert ret in (0, -Errno.ENOENT, -Errno.EBUSY, -Errno.ENOMEM), ret
        self._forget_the_dead()

    # ------------------------------------------------------------------ reclaim, migration
    @rule(vma=vmas, offset=offsets)
    def reclaim_mapped(self, vma, offset):
        pfn = self.m.pfn_of(vma, offset % vma.npages)
        if pfn >= 0:
            assert self.m.reclaim(pfn) in (0, 1)

    @rule(name=files, index=offsets)
    def reclaim_cached(self, name, index):
        f = self.m.file(name)
        pfn = f.find_page(index % max(f.size_pages, 1))
        if pfn >= 0:
            assert self.m.reclaim(pfn) in (0, 1)

    @precondition(lambda self: len(self._lru_pfns()))
    @rule(pick=st.integers(0, MEMORY_PAGES))
    def reclaim_lru_page(self, pick):
        """Any page on an LRU list, swap cache read-ahead pages included."""
        pfns = self._lru_pfns()
        assert self.m.reclaim(int(pfns[pick % len(pfns)])) in (0, 1)

    @precondition(lambda self: len(self._lru_pfns()))
    @rule(cgroup=cgroups, npages=small_counts)
    def reclaim_memcg(self, cgroup, npages):
        assert self.m.reclaim_memcg(cgroup, npages) >= 0

    @precondition(lambda self: self.k.nr_nodes == 2)
    @rule(vma=vmas, node=st.integers(0, 1))
    def migrate(self, vma, node):
        assert self.m.migrate(vma.mm.owner, vma, node) >= 0
        self._forget_the_dead()

    @precondition(lambda self: self.k.thp and self._thp_mappings())
    @rule(pick=st.integers(0, 15))
    def split_thp(self, pick):
        found = self._thp_mappings()
        vma, offset = found[pick % len(found)]
        head = self.m.pfn_of(vma, offset)
        self.m.split_thp(vma.mm.owner, vma, offset)
        assert not self.k.mem_map.flags[head] & PG_head

    # ------------------------------------------------------------------ limits
    @rule(path=st.sampled_from(LIMITED), pages=limits, memsw=st.booleans())
    def set_limit(self, path, pages, memsw):
        self._set_limit(path, pages, memsw=memsw and self.k.do_swap_account)

    @precondition(lambda self: self.k.cgroup_v2)
    @rule(path=st.sampled_from(LIMITED), knob=st.sampled_from(
        ["memory.high", "memory.low", "memory.min", "memory.swap.max", "memory.swap.high"]),
        pages=limits)
    def set_v2_knob(self, path, knob, pages):
        """memory.high reclaims down to it (never a kill); min/low protect from reclaim;
        swap.max and swap.high bound swap."""
        text = "max" if pages is None else str(pages * PAGE_SIZE)
        assert self.m.write_file(path, knob, text) == 0
        self._forget_the_dead()

    @precondition(lambda self: self.k.cgroup_v2)
    @rule(path=st.sampled_from(LIMITED), npages=small_counts)
    def memory_reclaim(self, path, npages):
        ret = self.m.write_file(path, "memory.reclaim", str(npages * PAGE_SIZE))
        assert ret in (0, -Errno.EAGAIN), ret

    # ------------------------------------------------------------------ cgroup files
    @precondition(lambda self: not self.k.cgroup_v2)
    @rule(path=cgroups, flags=st.integers(0, 3))
    def set_move_charge_at_immigrate(self, path, flags):
        """1: anonymous pages and swap move with a task that moves in, 2: file pages, 3: both."""
        assert self.m.write_file(path, "memory.move_charge_at_immigrate", str(flags)) == 0

    @rule(path=st.sampled_from(LEAVES), force_empty=st.booleans())
    def rmdir_and_mkdir(self, path, force_empty):
        """Optionally force_empty (reclaim all it can, tasks or not), then rmdir, which
        reparents the charges (-EBUSY while a task lives there); then create the cgroup again,
        fresh."""
        if force_empty and self.k.cgroup_v2:
            ret = self.m.write_file(path, "memory.reclaim", "1G")
            assert ret in (0, -Errno.EAGAIN), ret
        elif force_empty:
            assert self.m.write_file(path, "memory.force_empty", "0") == 0
        old = self.m.memcg(path)
        busy = any(cgroup == path for cgroup in self.task_cgroup.values())
        ret = self.m.rmdir(path)
        if busy:
            assert ret == -Errno.EBUSY, ret
            return
        assert ret == 0, ret
        charged = np.flatnonzero((self.k.pc.flags & PCG_USED != 0) & (self.k.pc.memcg == old.id))
        if self.k.profile.offline == "reparent":
            assert not len(charged), f"still charged to removed {path}:\n" + self.k.dump_page(
                int(charged[0]))
        else:
            assert not old.online and path not in self.k.memcg_by_name
        self.m.mkdir(path)
        self.limits[path] = (self.unlimited, self.unlimited)

    @rule(path=cgroups)
    def read_cgroup_files(self, path):
        if self.k.cgroup_v2:
            text = {name: self.m.read_file(path, name) for name in self.m.fs.readable(path)}
            if path != "/":
                assert int(text["memory.current"]) == self.m.usage(path) * PAGE_SIZE
                assert int(text["memory.swap.current"]) == (
                    self.m.memcg(path).swap.usage * PAGE_SIZE)
            return
        names = READABLE + (READABLE_MEMSW if self.k.do_swap_account else ())
        text = {name: self.m.read_file(path, name) for name in names}
        assert int(text["memory.usage_in_bytes"]) == self.m.usage(path) * PAGE_SIZE
        if self.k.do_swap_account:
            memsw = int(text["memory.memsw.usage_in_bytes"])
            assert memsw == self.m.memsw_usage(path) * PAGE_SIZE

    # ------------------------------------------------------------------ shutdown
    @precondition(lambda self: self._pages_in_use() >= SHUTDOWN_PAGES)
    @rule()
    def shutdown(self):
        """Every task exits and every file goes: nothing may stay charged or allocated."""
        m, k = self.m, self.k
        for task in [t for t in k.tasks.values() if t.state == "alive"]:
            m.exit(task)
        for name in list(k.files):
            m.unlink(name)
        for bundle in ("tasks", "vmas", "files"):
            self.bundle(bundle).clear()
        self.task_cgroup.clear()
        assert not k.mms and not k.mappings and not k.anon_vmas
        used = np.flatnonzero(k.pc.flags & PCG_USED)
        assert not len(used), "charged after shutdown:\n" + "\n".join(
            k.dump_page(int(p)) for p in used[:3])
        assert not k.swap_cgroup.id.any(), "swap records left after shutdown"
        busy = np.flatnonzero((k.mem_map.flags & PG_buddy) == 0)
        assert not len(busy), f"{len(busy)} pages not freed after shutdown:\n" + "\n".join(
            k.dump_page(int(p)) for p in busy[:3])

    # ------------------------------------------------------------------ invariants
    @invariant()
    def kernel_invariants(self):
        violations = check(self.k)
        assert violations == [], str(InvariantViolation(self.k, violations))

    @invariant()
    def tracked_properties(self):
        self._stats_match_page_cgroup()
        self._usage_covers_commits()
        self._limits_and_cgroups_as_set()
        self._rss_counters_match_ptes()
        self._shared_mappings_map_no_anon_pages()
        self._free_counts_match_mem_map()

    def _stats_match_page_cgroup(self):
        """rss + cache of a memcg without children is the pages committed to it (3.17's
        charge-type statistics; 6.x's are page states, which the checker reads directly)."""
        if self.k.profile.stats != "charge-type":
            return
        per = _charged_pages(self.k)
        for path in CGROUPS:
            memcg = self.m.memcg(path)
            if memcg.children:
                continue
            stat = self.m.stat(path)
            have = (stat["rss"] + stat["cache"]) // PAGE_SIZE
            assert have == per[memcg.id], f"{path}: rss+cache {have}, {per[memcg.id]} USED"

    def _usage_covers_commits(self):
        """A counter holds at least the pages committed at or below it (memsw: and their swap
        records)."""
        k = self.k
        used = _charged_pages(k)
        memsw = _charged_pages(k, PCG_MEMSW) + np.bincount(
            k.swap_cgroup.id[k.swap_cgroup.id > 0], minlength=_nr_ids(k))
        for path in LIMITED:
            memcg = self.m.memcg(path)
            below = [c.id for c in k.memcg_by_id.values() if memcg.res in c.res.chain()]
            assert self.m.usage(path) >= used[below].sum(), path
            if k.do_swap_account:
                assert self.m.memsw_usage(path) >= memsw[below].sum(), path

    def _limits_and_cgroups_as_set(self):
        for path, (res_limit, memsw_limit) in self.limits.items():
            memcg = self.m.memcg(path)
            assert (memcg.res.limit, memcg.memsw.limit) == (res_limit, memsw_limit), path
        for name, cgroup in self.task_cgroup.items():
            assert self.k.tasks[name].memcg.name == cgroup, name

    def _rss_counters_match_ptes(self):
        """Each mm's rss_stat [file, anon, swap] counts what its page tables hold (the kernel
        checks this at mm teardown: "BUG: Bad rss-counter state")."""
        flags = self.k.mem_map.flags
        for mm in self.k.mms.values():
            anon = file = swap = 0
            for vma in mm.vmas:
                pte = vma.pte
                present = (pte & PTE_PRESENT) != 0
                huge = present & ((pte & PTE_HUGE) != 0)
                small = (flags[pte[present & ~huge] & PTE_VAL_MASK] & PG_anon) != 0
                anon += int(huge.sum()) + int(small.sum())
                file += int((~small).sum())
                swap += int(((pte & PTE_SWAP) != 0).sum())
            assert mm.rss_stat == [file, anon, swap], (
                f"{mm} rss_stat {mm.rss_stat}, page tables {[file, anon, swap]}")

    def _shared_mappings_map_no_anon_pages(self):
        """A write fault in a VM_SHARED mapping writes the shared page (do_wp_page's
        wp_page_shared), it never COWs: no PageAnon page is mapped by a shared VMA."""
        flags = self.k.mem_map.flags
        for mm in self.k.mms.values():
            for vma in mm.vmas:
                if not vma.flags & VM_SHARED:
                    continue
                pte = vma.pte
                pfns = pte[(pte & PTE_PRESENT) != 0] & PTE_VAL_MASK
                anon = pfns[(flags[pfns] & PG_anon) != 0]
                assert not len(anon), (f"{vma!r} maps anonymous pfn(s) "
                                       f"{[hex(int(p)) for p in anon[:4]]}\n"
                                       + self.k.dump_page(int(anon[0])))

    def _free_counts_match_mem_map(self):
        k = self.k
        ppn = k.free_area.pages_per_node
        for node in range(k.nr_nodes):
            free = int(np.count_nonzero(k.mem_map.flags[node * ppn:(node + 1) * ppn] & PG_buddy))
            assert k.free_area.nr_free[node] == free, (
                f"node {node}: nr_free {k.free_area.nr_free[node]}, {free} PG_buddy pages")


TestMemcgStateMachine = MemcgStateMachine.TestCase
# The profile's settings, without the explain phase: once a run fails it traces every line of
# every shrink step (sys.settrace before Python 3.12), which makes shrinking this machine several
# times slower. The falsifying example is shrunk and printed all the same.
TestMemcgStateMachine.settings = settings(
    TestMemcgStateMachine.settings,
    phases=[phase for phase in TestMemcgStateMachine.settings.phases if phase != Phase.explain])


@pytest.mark.parametrize("vectorized", [False, True])
def test_tmpfs_read_whose_swapin_charge_fails(vectorized):
    """A walk found this: the `read` rule's tmpfs page was swapped out while mlock filled /b
    to its limit, and the read's swap-in charge failed. read(2) fails with -ENOMEM
    (shmem_file_read_iter: `retval ? retval : error`), it does not return a short count of 0;
    nothing is charged and the page stays in swap."""
    m = Machine(MEMORY_PAGES, swap_pages=128, swap_accounting=False, vectorized=vectorized)
    m.mkdir("/b")
    assert m.set_limit("/b", 16) == 0
    t = m.spawn("t1", "/b")
    assert m.write(t, "/dev/shm/f0", 1) == 1
    vma = m.mmap_anon(t, 512)
    assert m.mlock(t, vma) == -Errno.EAGAIN
    f = m.file("/dev/shm/f0")
    assert (m.usage("/b"), int(np.count_nonzero(vma.pte)), f.nrpages, f.swap_entry(0)) == (
        16, 16, 0, 1)
    assert check(m.k) == []
    assert m.read(t, "/dev/shm/f0", 0, 1) == -Errno.ENOMEM
    assert check(m.k) == []
    assert (m.usage("/b"), f.nrpages, f.swap_entry(0), t.state) == (16, 0, 1, "alive")
    stat = m.stat("/b")
    assert (stat["cache"], stat["rss"], stat["unevictable"]) == (0, 16 * PAGE_SIZE,
                                                                 16 * PAGE_SIZE)
