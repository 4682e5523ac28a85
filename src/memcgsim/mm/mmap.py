"""mm/mmap.c and mm/mlock.c: creating and removing mappings, mlock/munlock."""

from __future__ import annotations

from ..errors import Errno
from .locking import Lock, Unlock, mmap_sem, page_lock
from .mm_struct import PTE_PRESENT, PTE_VAL_MASK, VM_LOCKED, VM_SHARED, Vma


def do_mmap(k, mm, npages: int, flags: int, file=None, pgoff: int = 0) -> Vma:
    """A new VMA of npages pages; nothing is faulted in. A shared mapping without a file
    (MAP_SHARED|MAP_ANONYMOUS) gets an unlinked tmpfs file of its own (shmem_zero_setup)."""

    vma = Vma(mm, mm.get_unmapped_area(npages), npages, flags, file, pgoff)
    if file is None and flags & VM_SHARED:
        shmem_zero_setup(k, vma)
        file = vma.file
    mm.vmas.append(vma)
    if file is not None:
        file.i_mmap.append(vma)
        file.i_count += 1
    return vma


def unlink_vma(k, vma) -> None:
    mm = vma.mm
    mm.vmas.remove(vma)
    if vma.anon_vma is not None:
        vma.anon_vma.vmas.remove(vma)
        if not vma.anon_vma.vmas:
            del k.anon_vmas[vma.anon_vma.id]
    if vma.file is not None:
        vma.file.i_mmap.remove(vma)
        vma.file.i_count -= 1


def do_munmap(k, vma, zap=None):
    """Path: unmap a whole VMA: zap its ptes (pages are uncharged when freed), then drop it.
    `zap` may name vectorized.zap_pte_range_vectorized instead of the per-page reference."""

    yield from (zap or zap_pte_range)(k, vma, 0, vma.npages)
    unlink_vma(k, vma)
    free_pgtables(k, vma.mm)
    if vma.file is not None:
        yield from iput_final(k, vma.file)


def vm_munmap(k, vma, zap=None):
    """Path: munmap(2) of a VMA, under mmap_sem for writing: faults and charge moving on the
    same mm (readers) wait, and it waits for them. A VMA already gone unmaps nothing."""
    mm = vma.mm
    yield Lock(mmap_sem(mm.id))
    if vma in mm.vmas:
        yield from do_munmap(k, vma, zap)
    yield Unlock(mmap_sem(mm.id))


def mlock_vma(k, vma):
    """Path: mlock(2) a VMA: fault in what is missing (__mm_populate: not a user fault, so a
    3.17 memcg does not OOM for it), move present pages to unevictable. 0, or -EAGAIN when
    population fails (mlock turns -ENOMEM into -EAGAIN); the VMA stays VM_LOCKED."""

    vma.flags |= VM_LOCKED
    for i in range(vma.npages):
        if not vma.pte[i]:
            ret = yield from handle_mm_fault(k, vma, vma.start + i, True, user=False)
            if ret & VM_FAULT_OOM:
                return -Errno.EAGAIN
        pte = int(vma.pte[i])
        if pte & PTE_PRESENT:
            pfn = pte & PTE_VAL_MASK
            if pfn % 512 and k.mem_map.flags[pfn] & (1 << 7):
                continue                           # THP tail: the head stands for it
            yield Lock(page_lock(pfn))
            mlock_vma_page(k, pfn)
            yield Unlock(page_lock(pfn))
    return 0


def munlock_vma(k, vma):
    """Path: munlock(2): pages no other VM_LOCKED mapping holds become evictable again."""

    vma.flags &= ~VM_LOCKED
    for i in range(vma.npages):
        pte = int(vma.pte[i])
        if not pte & PTE_PRESENT:
            continue
        pfn = pte & PTE_VAL_MASK
        if any(v.flags & VM_LOCKED for v, _ in rmap_walk(k, pfn)):
            continue
        yield Lock(page_lock(pfn))
        clear_page_mlock(k, pfn)
        yield Unlock(page_lock(pfn))


# Imported once this module's functions exist: these modules and this one call each other.
from .fs_ops import iput_final  # noqa: E402
from .memory import VM_FAULT_OOM, handle_mm_fault, zap_pte_range  # noqa: E402
from .mlock import clear_page_mlock, mlock_vma_page  # noqa: E402
from .pgtable import free_pgtables  # noqa: E402
from .rmap import rmap_walk  # noqa: E402
from .shmem import shmem_zero_setup  # noqa: E402
