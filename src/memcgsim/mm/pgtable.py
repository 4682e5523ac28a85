"""Page-table pages and a task's own kernel memory, charged to memcgs as kernel memory (kmem).

From 4.5 (v2) and for every cgroup on 6.x, the kernel charges page-table pages
(GFP_PGTABLE_USER is __GFP_ACCOUNT), kernel stacks and the slab objects of a task to the memcg
of the task that allocates them: memory.current includes them, memory.stat shows them as
`kernel` (all of it), `pagetables` and `kernel_stack`. 3.17 charged kernel memory only to a
memcg with a kmem limit; the 3.17 profile models none.

What the model allocates, per mm: the PGD (two pages: x86-64 with page-table isolation) when
the mm is created; a PUD page per 512 GiB, a PMD page per 1 GiB and a PTE page per 2 MiB of
address space the first time a fault (or fork's copy) needs one there; each freed when munmap
leaves its range without a VMA, and all of them at exit. Per task: a 16 KiB kernel stack and
one page for task_struct and the rest of its slab (the real kernel shows 20-32 KiB of `kernel`
for an idle task). The pages themselves are not taken from mem_map: only their charge is
modelled. A kmem uncharge goes back through the per-CPU stock (refill_stock), as the kernel's
obj_cgroup_uncharge_pages does.
"""

from __future__ import annotations

from ..errors import Errno

PGD_PAGES = 2
KERNEL_STACK_PAGES = 4
TASK_SLAB_PAGES = 1
#: the address bits (in pages) one table page of each level covers
PTE_SHIFT, PMD_SHIFT, PUD_SHIFT = 9, 18, 27
LEVELS = (("pud", PUD_SHIFT), ("pmd", PMD_SHIFT), ("pte", PTE_SHIFT))


def _charging_memcg(k):
    """The memcg kernel allocations of the current task are charged to (get_obj_cgroup_from
    _current): none for root or a kernel thread."""

    task = k.current
    if task is None or task.mm is None:
        return None
    memcg = get_mem_cgroup_from_mm(k, task.mm) if task.mm.owner is not None else task.memcg
    return None if memcg.is_root() else memcg


def mm_alloc_pgd(k, mm) -> int:
    """pgd_alloc when an mm is created (exec or fork). The model does not fail a fork: the
    charge is forced if it must be."""

    memcg = _charging_memcg(k)
    if memcg is not None:
        memcg_kmem_charge_page(k, memcg, PGD_PAGES, "kernel", nofail=True)
    mm.pgd_memcg = memcg.id if memcg is not None else 0
    return 0


def pte_alloc(k, mm, addr: int, nofail: bool = False) -> int:
    """Make sure the tables that map addr exist (pud_alloc, pmd_alloc, __pte_alloc); 0, or
    -ENOMEM when a table page cannot be charged (fork's copy forces it instead)."""

    for level, shift in LEVELS:
        key = (level, addr >> shift)
        if key in mm.pgtables:
            continue
        memcg = _charging_memcg(k)
        if memcg is not None and memcg_kmem_charge_page(k, memcg, 1, "pagetables", nofail):
            return -Errno.ENOMEM
        mm.pgtables[key] = memcg.id if memcg is not None else 0
    return 0


def pte_alloc_would_charge(k, mm, addr: int) -> int:
    """How many table pages pte_alloc(addr) would charge now."""
    if not k.profile.kmem_accounting or _charging_memcg(k) is None:
        return 0
    return sum(1 for level, shift in LEVELS if (level, addr >> shift) not in mm.pgtables)


def free_pgtables(k, mm) -> None:
    """After munmap: free every table whose whole range no VMA of the mm covers any more."""

    if not mm.pgtables:
        return
    covered = {level: set() for level, _ in LEVELS}
    for vma in mm.vmas:
        first, last = vma.start, vma.start + vma.npages - 1
        for level, shift in LEVELS:
            covered[level].update(range(first >> shift, (last >> shift) + 1))
    for key in [key for key in mm.pgtables if key[1] not in covered[key[0]]]:
        memcg_kmem_uncharge_page(k, mm.pgtables.pop(key), 1, "pagetables")


def mm_free_pgd(k, mm) -> None:
    """mmdrop: the remaining tables and the PGD go."""

    for key in list(mm.pgtables):
        memcg_kmem_uncharge_page(k, mm.pgtables.pop(key), 1, "pagetables")
    if mm.pgd_memcg is not None:
        memcg_kmem_uncharge_page(k, mm.pgd_memcg, PGD_PAGES, "kernel")
        mm.pgd_memcg = None


def alloc_task_kmem(k, task) -> int:
    """dup_task_struct: the kernel stack and the task's slab, charged to its memcg (forced:
    the model does not fail a fork)."""

    memcg = task.memcg
    if memcg.is_root() or not k.profile.kmem_accounting:
        return 0
    memcg_kmem_charge_page(k, memcg, KERNEL_STACK_PAGES, "kernel_stack", nofail=True)
    memcg_kmem_charge_page(k, memcg, TASK_SLAB_PAGES, "kernel", nofail=True)
    task.kmem_memcg = memcg.id
    return 0


def free_task_kmem(k, task) -> None:
    """free_task: the kernel stack and slab go back to the memcg they were charged to."""

    if task.kmem_memcg is None:
        return
    memcg_kmem_uncharge_page(k, task.kmem_memcg, KERNEL_STACK_PAGES, "kernel_stack")
    memcg_kmem_uncharge_page(k, task.kmem_memcg, TASK_SLAB_PAGES, "kernel")
    task.kmem_memcg = None


# Imported once this module's functions exist: these modules and this one call each other.
from .memcontrol import (  # noqa: E402
    get_mem_cgroup_from_mm,
    memcg_kmem_charge_page,
    memcg_kmem_uncharge_page,
)
