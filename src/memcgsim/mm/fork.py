"""kernel/fork.c and kernel/exit.c: a forked child shares anonymous pages copy-on-write; exit
unmaps everything."""

from __future__ import annotations

import numpy as np

from .locking import Lock, Unlock, ptl
from .mm_struct import (
    MM_ANONPAGES,
    MM_FILEPAGES,
    MM_SWAPENTS,
    PTE_HUGE,
    PTE_PRESENT,
    PTE_SWAP,
    PTE_VAL_MASK,
    PTE_WRITE,
    VM_SHARED,
    MmStruct,
    Vma,
)
from .mm_types import HPAGE_PMD_NR, PG_anon


def copy_mm(k, parent_mm):
    """Path: dup_mmap. Anonymous pages are shared read-only (COW); swap entries gain a map
    reference; shared file mappings are left to fault again, as the kernel does."""

    mm = MmStruct(k.new_id())
    k.mms[mm.id] = mm
    mm.next_start = parent_mm.next_start
    mm_alloc_pgd(k, mm)
    yield Lock(ptl(parent_mm.id))
    for pv in parent_mm.vmas:
        vma = Vma(mm, pv.start, pv.npages, pv.flags, pv.file, pv.pgoff)
        mm.vmas.append(vma)
        if pv.file is not None:
            pv.file.i_mmap.append(vma)
            pv.file.i_count += 1
        if pv.anon_vma is not None:
            vma.anon_vma = pv.anon_vma              # anon_vma_fork: same rmap family
            pv.anon_vma.vmas.append(vma)
        if pv.file is not None and pv.anon_vma is None:
            continue
        for i in np.flatnonzero(pv.pte).tolist():      # copy_pte_range's tables
            pte_alloc(k, mm, pv.start + i, nofail=True)
        cow = not pv.flags & VM_SHARED
        i = 0
        while i < pv.npages:
            pte = int(pv.pte[i])
            if not pte:
                i += 1
                continue
            if pte & PTE_HUGE:                      # copy_huge_pmd
                head = (pte & PTE_VAL_MASK) - (pte & PTE_VAL_MASK) % HPAGE_PMD_NR
                sl = slice(i, i + HPAGE_PMD_NR)
                pv.pte[sl] &= ~PTE_WRITE
                vma.pte[sl] = pv.pte[sl]
                get_page(k, head)
                page_dup_rmap(k, head)
                mm.rss_stat[MM_ANONPAGES] += HPAGE_PMD_NR
                i += HPAGE_PMD_NR
                continue
            if pte & PTE_SWAP:
                swap_duplicate(k, pte & PTE_VAL_MASK)
                mm.rss_stat[MM_SWAPENTS] += 1
            elif pte & PTE_PRESENT:
                pfn = pte & PTE_VAL_MASK
                if cow:
                    pte &= ~PTE_WRITE
                    pv.pte[i] = pte
                get_page(k, pfn)
                page_dup_rmap(k, pfn)
                anon = k.mem_map.flags[pfn] & PG_anon
                mm.rss_stat[MM_ANONPAGES if anon else MM_FILEPAGES] += 1
            vma.pte[i] = pte
            i += 1
    yield Unlock(ptl(parent_mm.id))
    return mm


def exit_mmap(k, mm, zap=None):
    """Path: the mm's last user is gone: unmap every VMA."""

    for vma in list(mm.vmas):
        yield from do_munmap(k, vma, zap)
    mm_free_pgd(k, mm)
    k.mms.pop(mm.id, None)


# Imported once this module's functions exist: these modules and this one call each other.
from .mmap import do_munmap  # noqa: E402
from .pgtable import mm_alloc_pgd, mm_free_pgd, pte_alloc  # noqa: E402
from .rmap import page_dup_rmap  # noqa: E402
from .swap import get_page  # noqa: E402
from .swapfile import swap_duplicate  # noqa: E402
