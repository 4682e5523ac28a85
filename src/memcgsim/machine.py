"""Machine: the model driven the way a user would, in pages, with tasks, files and cgroups.

Each method runs one kernel path (or a short sequence) to completion and returns what a system
call would. Bad requests (an unknown cgroup, a negative size, a page freed twice) raise
InvalidRequest before anything changes; kernel refusals come back as negative errno values.
"""

from __future__ import annotations

from .checker import assert_invariants, check
from .errors import Errno, InvalidRequest
from .kernel import PAGE_SIZE, Kernel
from .mm import fork as fork_mod
from .mm import fs_ops, memcontrol, memcontrol_v1, mmap, pgtable
from .mm.filemap import do_generic_file_read, generic_perform_write
from .mm.fuse_dev import fuse_try_move_page
from .mm.huge_memory import split_huge_page_pfn
from .mm.memory import VM_FAULT_OOM, handle_mm_fault
from .mm.migrate import migrate_pages
from .mm.mm_struct import (
    PTE_PRESENT,
    PTE_SWAP,
    PTE_VAL_MASK,
    VM_HUGEPAGE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    MmStruct,
)
from .mm.mm_types import HPAGE_PMD_NR, PG_dirty, PG_head, PG_lru, PG_tail
from .mm.oom_kill import finish_oom_kill, mem_cgroup_oom_synchronize, out_of_memory
from .mm.page_counter import PAGE_COUNTER_MAX
from .mm.page_writeback import (
    write_one_page,
)
from .mm.res_counter import RES_COUNTER_MAX
from .mm.sched import Task
from .mm.shmem import shmem_file_read_iter, shmem_write
from .mm.vectorized import (
    do_generic_file_read_vectorized,
    fault_anon_range,
    invalidate_mapping_pages_bulk,
    zap_pte_range_vectorized,
)
from .mm.vectorized_write import generic_perform_write_vectorized, sync_vectorized
from .mm.vmscan import reclaim_page, shrink_mem_cgroup


class Machine:
    """A simulated machine: memory, swap, CPUs and nodes, running the chosen kernel profile."""

    def __init__(self, memory_pages: int = 4096, *, swap_pages: int = 0, cpus: int = 1,
                 nodes: int = 1, profile: str = "3.17", swap_accounting: bool = True,
                 thp: bool = False, vectorized: bool = True, cgroup: str | None = None):
        self.k = Kernel(memory_pages, profile=profile, swap_pages=swap_pages, nr_cpus=cpus,
                        nr_nodes=nodes, swap_accounting=swap_accounting, thp=thp,
                        cgroup=cgroup)
        #: run anonymous faults and unmaps over ranges through the array versions of the paths
        #: (same end state as the per-page reference paths, which vectorized=False runs)
        self.k.vectorized = vectorized
        self._zap = zap_pte_range_vectorized if vectorized else None
        self._pids = 0
        self._fs = None

    @property
    def vectorized(self) -> bool:
        return self.k.vectorized

    def _run(self, path, task=None):
        """Run a kernel path for task; if the OOM killer chose the task itself during it (6.x
        kills inside the charge), the task exits as it returns to user space."""
        ret = self.k.run(path, task)
        if task is not None:
            self._return_to_user(task)
        return ret

    def _return_to_user(self, task) -> None:
        """exit_to_user_mode: a task the OOM killer chose exits; one over memory.high pays
        its reclaim."""
        if task.memdie and task.state == "alive":
            finish_oom_kill(self.k, task)
        if task.memcg_nr_pages_over_high and task.state == "alive":
            memcontrol.mem_cgroup_handle_over_high(self.k, task)

    # -------------------------------------------------------------- cgroups
    def mkdir(self, path: str) -> memcontrol.MemCgroup:
        return self.k.mem_cgroup_create(path)

    def memcg(self, path: str) -> memcontrol.MemCgroup:
        return self.k.memcg(path)

    def set_use_hierarchy(self, path: str, value: bool) -> int:
        """memory.use_hierarchy: 0, -EBUSY with children, -EINVAL under a hierarchical parent
        (and for 0 on the page_counter kernels, which are always hierarchical)."""
        m = self.memcg(path)
        if self.k.profile.counter == "page_counter":
            return 0 if value else -Errno.EINVAL     # always hierarchical from 5.x
        if m.use_hierarchy == value:
            return 0
        if m.parent is not None and m.parent.use_hierarchy:
            return -Errno.EINVAL
        if m.children:
            return -Errno.EBUSY
        m.use_hierarchy = value
        return 0

    def set_limit(self, path: str, pages: int | None, memsw: bool = False) -> int:
        """limit_in_bytes / memsw.limit_in_bytes (v2: memory.max) in pages (None: unlimited);
        0 or -errno.

        As a write to the file does: below usage, reclaim until it fits (-EBUSY when it does
        not); the memory limit may not exceed the memsw limit nor the memsw limit go below the
        memory limit (-EINVAL); root cannot be limited (-EINVAL).
        """
        m = self.memcg(path)
        if pages is not None and (not _is_int(pages) or pages < 0):
            raise InvalidRequest(f"limit of {pages!r} pages: want a whole number >= 0 or None")
        if self.k.cgroup_v2:
            if memsw:
                raise InvalidRequest("cgroup v2 has no memsw limit (see memory.swap.max)")
            text = "max" if pages is None else str(pages * PAGE_SIZE)
            return self.write_file(path, "memory.max", text)
        if m.is_root():
            return -Errno.EINVAL
        if pages is not None:
            limit = pages
        else:
            limit = RES_COUNTER_MAX if self.k.profile.counter == "res_counter" else PAGE_COUNTER_MAX
        return memcontrol_v1.mem_cgroup_resize_limit(self.k, m, limit, memsw)

    def rmdir(self, path: str) -> int:
        """Remove a cgroup: -EBUSY with tasks or children; its charges move to the parent."""
        return memcontrol_v1.mem_cgroup_rmdir(self.k, self.memcg(path))

    @property
    def fs(self):
        """The cgroup files of the machine's interface (v1 or v2), as its kernel shows them."""
        if self._fs is None:
            from .cgroupfs import CgroupV1, CgroupV2

            self._fs = CgroupV2(self) if self.k.cgroup_v2 else CgroupV1(self)
        return self._fs

    def read_file(self, path: str, name: str) -> str:
        """The text a read of /sys/fs/cgroup/memory<path>/<name> (v2: /sys/fs/cgroup<path>/<name>)
        gives."""
        return self.fs.read(path, name)

    def open_file(self, path: str, name: str):
        """open(2) of memory.peak or memory.swap.peak: a cgroupfs.PeakFile with read(),
        write(text) and close(), for 6.12's per-file peak resets."""
        return self.fs.open(path, name)

    def write_file(self, path: str, name: str, text: str) -> int:
        """Write text to a cgroup file: 0, or the negative errno write(2) fails with."""
        return self.fs.write(path, name, text)

    # -------------------------------------------------------------- tasks
    def spawn(self, name: str, cgroup: str = "/", cpu: int = 0, node: int = 0) -> Task:
        """A new task with an empty mm, in cgroup."""
        memcg = self.memcg(cgroup)
        self._check_cpu_node(cpu, node)
        if name in self.k.tasks:
            raise InvalidRequest(f"task {name!r} already exists")
        if self.k.cgroup_v2 and not memcg.is_root() and memcg.subtree_control:
            raise InvalidRequest(f"cannot put task {name!r} in {cgroup}: a v2 cgroup that "
                                 "enables controllers for its children has no processes of "
                                 "its own (EBUSY)")
        self._pids += 1
        mm = MmStruct(self.k.new_id())
        task = Task(self._pids, name, memcg, mm, cpu, node)
        mm.owner = task
        self.k.mms[mm.id] = mm
        self.k.tasks[name] = task
        saved, self.k.current = self.k.current, task       # the new task's exec
        try:
            pgtable.alloc_task_kmem(self.k, task)
            pgtable.mm_alloc_pgd(self.k, mm)
        finally:
            self.k.current = saved
        return task

    def task(self, name: str) -> Task:
        try:
            return self.k.tasks[name]
        except KeyError:
            raise InvalidRequest(f"unknown task {name!r}") from None

    def _check_cpu_node(self, cpu: int, node: int) -> None:
        if not 0 <= cpu < self.k.nr_cpus:
            raise InvalidRequest(f"cpu {cpu} does not exist (0..{self.k.nr_cpus - 1})")
        if not 0 <= node < self.k.nr_nodes:
            raise InvalidRequest(f"node {node} does not exist (0..{self.k.nr_nodes - 1})")

    def _alive(self, task: Task) -> Task:
        if task.state != "alive":
            raise InvalidRequest(f"task {task.comm} has {task.state}")
        return task

    def move_task(self, task: Task, cgroup: str) -> int:
        """Write the pid to tasks: new charges go to the new memcg; old ones stay, unless the
        new memcg's move_charge_at_immigrate asks to move them (-ENOMEM if they do not fit)."""
        self._alive(task)
        if self.k.cgroup_v2:
            return self.fs.write(cgroup, "cgroup.procs", str(task.pid))
        return memcontrol_v1.mem_cgroup_attach_task(self.k, task, self.memcg(cgroup))

    def fork(self, task: Task, child: str) -> Task:
        """fork(): the child shares the parent's anonymous pages copy-on-write."""
        self._alive(task)
        new = self.spawn(child, task.memcg.name, task.cpu, task.node)
        pgtable.mm_free_pgd(self.k, new.mm)      # the child's mm is fork's copy, not a new one
        del self.k.mms[new.mm.id]
        new.mm = self._run(fork_mod.copy_mm(self.k, task.mm), task)
        new.mm.owner = new
        return new

    def exit(self, task: Task) -> None:
        """exit(): every mapping goes; pages nobody else holds are uncharged and freed."""
        self._alive(task)
        task.exiting = True
        self._run(fork_mod.exit_mmap(self.k, task.mm, self._zap), task)
        pgtable.free_task_kmem(self.k, task)
        task.state = "exited"

    # -------------------------------------------------------------- anonymous memory
    def mmap_anon(self, task: Task, npages: int, shared: bool = False, locked: bool = False,
                  hugepage: bool = False):
        """A private (or shared: shmem-backed, as MAP_SHARED|MAP_ANONYMOUS, /dev/zero and SysV
        shm are, by an unlinked tmpfs file no name reaches) anonymous mapping of npages, not yet
        touched; locked (MAP_LOCKED) populates and mlocks it at once, as mmap does: a page that
        cannot be charged ends the population (and may OOM-kill), not the mmap. hugepage:
        madvise(MADV_HUGEPAGE)."""
        self._alive(task)
        self._check_size(npages)
        # shared: do_mmap backs it by an unlinked tmpfs file (shmem_zero_setup) that no name
        # reaches; it is evicted, its pages truncated and uncharged, with its last mapping
        vma = mmap.do_mmap(self.k, task.mm, npages,
                           VM_READ | VM_WRITE | (VM_SHARED if shared else 0))
        if hugepage:
            vma.flags |= VM_HUGEPAGE
        if locked:
            self.mlock(task, vma)
        return vma

    def touch(self, task: Task, vma, start: int = 0, count: int | None = None,
              write: bool = True) -> int:
        """Fault pages [start, start+count) of vma; returns the pages faulted.

        A fault whose charge fails ends in the memcg OOM killer, one that finds no free page
        even after reclaim in the global OOM killer: when it kills another task the fault is
        retried; when it kills this task, or cannot kill (oom_kill_disable, nothing to kill),
        touching stops there.
        """
        self._mapped(self._alive(task), vma)
        count = vma.npages - start if count is None else count
        self._check_range(vma, start, count)
        i, end = start, start + count
        while i < end:
            task.memcg_nomem = False
            if self.vectorized and write and vma.file is None:
                i += fault_anon_range(self.k, task, vma, i, end - i)
                self._return_to_user(task)
            else:
                while i < end and not self._run(
                        handle_mm_fault(self.k, vma, vma.start + i, write), task) & VM_FAULT_OOM:
                    i += 1
                    if task.state != "alive":
                        break           # killed in that fault, which still completed
            if i == end:
                break
            # pagefault_out_of_memory: the memcg OOM if the charge failed, else the global one
            if task.state != "alive":
                break                   # the OOM killer chose this task during the fault
            if task.memcg_oom is not None:
                outcome = mem_cgroup_oom_synchronize(self.k, task)
            elif task.memcg_nomem:
                # 6.x: the memcg OOM already ran in the charge and freed nothing; the kernel
                # would retry this fault for ever, the model stops here
                task.memcg_nomem = False
                outcome = "none"
            else:
                outcome = out_of_memory(self.k, task)
            if outcome != "killed" or task.state != "alive":
                break
        return i - start

    def munmap(self, task: Task, vma) -> None:
        self._mapped(self._alive(task), vma)
        self._run(mmap.do_munmap(self.k, vma, self._zap), task)

    def mlock(self, task: Task, vma) -> int:
        """mlock(2): 0, or -EAGAIN when the pages could not all be populated."""
        self._mapped(self._alive(task), vma)
        return self._run(mmap.mlock_vma(self.k, vma), task)

    def munlock(self, task: Task, vma) -> None:
        self._mapped(self._alive(task), vma)
        self._run(mmap.munlock_vma(self.k, vma), task)

    # -------------------------------------------------------------- files
    def create(self, name: str, tmpfs: bool = False):
        if name in self.k.files:
            raise InvalidRequest(f"file {name} already exists")
        return fs_ops.create_file(self.k, name, shmem=tmpfs)

    def file(self, name: str):
        """The file a path names (`Kernel.files`): never the kernel's internal unlinked shmem
        files nor an unlinked file, which no path lookup reaches."""
        try:
            return self.k.files[name]
        except KeyError:
            raise InvalidRequest(f"unknown file {name!r}") from None

    def write(self, task: Task, name: str, npages: int, offset: int | None = None) -> int:
        """write(2) npages at offset (default: append); creates the file. Pages written or
        -ENOMEM."""
        self._alive(task)
        self._check_size(npages)
        if offset is not None and (not _is_int(offset) or offset < 0):
            raise InvalidRequest(f"write offset {offset!r}: want a whole number of pages >= 0")
        f = self.k.files.get(name) or fs_ops.create_file(self.k, name, shmem=name.startswith(
            ("/dev/shm/", "/tmp/")))
        start = f.size_pages if offset is None else offset
        if self.vectorized and not f.shmem:
            return self._run(generic_perform_write_vectorized(self.k, task, f, start, npages),
                             task)
        path = (shmem_write if f.shmem else generic_perform_write)(
            self.k, f, start, npages, task.node)
        return self._run(path, task)

    def read(self, task: Task, name: str, start: int = 0, count: int | None = None) -> int:
        """read(2) of the file's pages: what is not cached is read in and charged to task."""
        self._alive(task)
        f = self.file(name)
        if not _is_int(start) or start < 0 or (count is not None and (
                not _is_int(count) or count < 0)):
            raise InvalidRequest(f"read of {count!r} pages at {start!r}: want whole numbers "
                                 ">= 0")
        # a read stops at the end of the file
        end = f.size_pages if count is None else min(f.size_pages, start + count)
        count = max(0, end - start)
        if f.shmem:
            return self._run(shmem_file_read_iter(self.k, f, start, count, task.node), task)
        if self.vectorized:
            return self._run(do_generic_file_read_vectorized(self.k, task, f, start, count), task)
        return self._run(do_generic_file_read(self.k, f, start, count, task.node), task)

    def mmap_file(self, task: Task, name: str, npages: int | None = None, pgoff: int = 0,
                  shared: bool = True):
        self._alive(task)
        f = self.file(name)
        npages = f.size_pages - pgoff if npages is None else npages
        self._check_size(npages)
        flags = VM_READ | VM_WRITE | (VM_SHARED if shared else 0)
        return mmap.do_mmap(self.k, task.mm, npages, flags, f, pgoff)

    def truncate(self, name: str, npages: int = 0) -> None:
        if npages < 0:
            raise InvalidRequest(f"truncate to {npages} pages")
        self._run(fs_ops.do_truncate(self.k, self.file(name), npages))

    def unlink(self, name: str) -> None:
        self._run(fs_ops.do_unlink(self.k, self.file(name)))

    def sync(self) -> int:
        """Write back every dirty page-cache page (the device completes at once)."""
        k = self.k
        if self.vectorized:
            return sync_vectorized(k)
        done = 0
        for f in list(k.mappings.values()):
            if f.shmem:
                continue
            for index in range(f.size_pages):
                pfn = f.find_page(index)
                if pfn < 0 or not k.mem_map.flags[pfn] & PG_dirty:
                    continue
                k.run(write_one_page(k, pfn))
                done += 1
        return done

    def drop_caches(self) -> int:
        """echo 1 > /proc/sys/vm/drop_caches: clean, unmapped page cache goes (tmpfs stays)."""
        from .mm.truncate import invalidate_mapping_pages

        dropped = 0
        for f in list(self.k.mappings.values()):
            if f.shmem:
                continue
            n = invalidate_mapping_pages_bulk(self.k, f) if self.vectorized else None
            dropped += self._run(invalidate_mapping_pages(self.k, f)) if n is None else n
        return dropped

    def splice(self, task: Task, name: str, index: int, steal_from: str | None = None,
               steal_index: int = 0) -> int:
        """FUSE splice: replace the cached page at index by a page from a pipe. The pipe page
        is fresh, or (steal_from) stolen from another file's page cache, still charged and on
        its LRU list: replace_page_cache_page moves the charge with lrucare. -EBUSY (the
        kernel copies instead) when the cached page is mapped, dirty or under writeback."""
        self._alive(task)
        return self._run(fuse_try_move_page(self.k, self.file(name), index,
                                  self.file(steal_from) if steal_from else None, steal_index,
                                  task.node), task)

    # -------------------------------------------------------------- reclaim and migration
    def reclaim(self, pfn: int) -> int:
        """Reclaim one page as kswapd would: 1 if it was freed."""
        self._check_pfn(pfn)
        if not self.k.mem_map.flags[pfn] & PG_lru:
            return 0
        return self._run(reclaim_page(self.k, pfn))

    def reclaim_memcg(self, path: str, npages: int) -> int:
        """Reclaim up to npages from the memcg's hierarchy (limit reclaim); pages freed."""
        m = self.memcg(path)
        may_swap = self.k.swap.nr_slots > 0
        return self._run(shrink_mem_cgroup(self.k, m, npages, may_swap))

    def migrate(self, task: Task, vma, node: int) -> int:
        """Move vma's present pages to node (NUMA migration); returns pages not migrated."""
        self._alive(task)
        self._check_cpu_node(0, node)
        pfns = []
        for pte in vma.pte.tolist():
            if pte & PTE_PRESENT:
                pfn = pte & PTE_VAL_MASK
                if self.k.mem_map.flags[pfn] & PG_tail:
                    continue
                pfns.append(pfn)
        return self._run(migrate_pages(self.k, pfns, node), task)

    def split_thp(self, task: Task, vma, offset: int = 0) -> None:
        self._mapped(self._alive(task), vma)
        self._check_range(vma, offset, 1)
        pte = int(vma.pte[offset])
        if not pte & PTE_PRESENT:
            raise InvalidRequest(f"nothing mapped at offset {offset} of {vma!r}")
        pfn = pte & PTE_VAL_MASK
        head = pfn - pfn % HPAGE_PMD_NR
        if not self.k.mem_map.flags[head] & PG_head:
            raise InvalidRequest(f"offset {offset} of {vma!r} is not a THP")
        self._run(split_huge_page_pfn(self.k, head), task)

    # -------------------------------------------------------------- inspection
    def pfn_of(self, vma, offset: int) -> int:
        """The pfn mapped at offset of vma, or -1 (not present)."""
        self._check_range(vma, offset, 1)
        pte = int(vma.pte[offset])
        return pte & PTE_VAL_MASK if pte & PTE_PRESENT else -1

    def swap_entry_of(self, vma, offset: int) -> int:
        self._check_range(vma, offset, 1)
        pte = int(vma.pte[offset])
        return pte & PTE_VAL_MASK if pte & PTE_SWAP else 0

    def stat(self, path: str) -> dict[str, int]:
        """memory.stat of the memcg as a dict (bytes and counts, the interface's keys)."""
        text = self.fs.read(path, "memory.stat")
        return {key: int(val) for key, val in (line.split() for line in text.splitlines())}

    def usage(self, path: str) -> int:
        """memory.usage_in_bytes (v1) or memory.current (v2), in pages; on root, v1's sum."""
        return memcontrol.mem_cgroup_usage(self.k, self.memcg(path), swap=False)

    def memsw_usage(self, path: str) -> int:
        return memcontrol.mem_cgroup_usage(self.k, self.memcg(path), swap=True)

    def page_state(self, pfn: int) -> str:
        return self.k.dump_page(pfn)

    def check(self) -> list:
        return check(self.k)

    def assert_invariants(self) -> None:
        assert_invariants(self.k)

    # -------------------------------------------------------------- argument checks
    @staticmethod
    def _mapped(task: Task, vma) -> None:
        if vma not in task.mm.vmas:
            raise InvalidRequest(f"{vma!r} is not mapped in task {task.comm}")

    @staticmethod
    def _check_size(npages: int) -> None:
        if not _is_int(npages) or npages <= 0:
            raise InvalidRequest(f"size of {npages!r} pages: want a positive whole number")

    @staticmethod
    def _check_range(vma, start: int, count: int) -> None:
        if (not _is_int(start) or not _is_int(count) or start < 0 or count < 0
                or start + count > vma.npages):
            raise InvalidRequest(f"pages [{start}, {start + count}) are outside {vma!r}")

    def _check_pfn(self, pfn: int) -> None:
        if not 0 <= pfn < self.k.nr_pages:
            raise InvalidRequest(f"pfn {pfn} is outside memory (0..{self.k.nr_pages - 1})")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
