"""mm_struct, vm_area_struct, anon_vma and the page tables (one pte array per VMA).

A pte is an int64: 0 is pte_none; otherwise bit flags plus a pfn or a swap slot, so that a range of
ptes can be read or written as one array.
"""

from __future__ import annotations

import numpy as np

PTE_PRESENT = 1 << 62
PTE_WRITE = 1 << 61
PTE_DIRTY = 1 << 60
PTE_SWAP = 1 << 59        # a swap entry: the low bits are the swap slot
PTE_MIGRATION = 1 << 58   # a migration entry: the low bits are the pfn under migration
PTE_HUGE = 1 << 57        # part of a PMD mapping of a THP (all 512 ptes carry it)
PTE_VAL_MASK = (1 << 40) - 1

VM_READ = 1 << 0
VM_WRITE = 1 << 1
VM_SHARED = 1 << 3
VM_LOCKED = 1 << 13
VM_HUGEPAGE = 1 << 29

# mm counters (rss_stat)
MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS = range(3)


def pte_present(pte: int) -> bool:
    return bool(pte & PTE_PRESENT)


def pte_pfn(pte: int) -> int:
    return pte & PTE_VAL_MASK


def mk_pte(pfn: int, write: bool) -> int:
    return PTE_PRESENT | (PTE_WRITE if write else 0) | pfn


def swp_entry_to_pte(slot: int) -> int:
    return PTE_SWAP | slot


def is_swap_pte(pte: int) -> bool:
    return bool(pte & PTE_SWAP)


def is_migration_entry(pte: int) -> bool:
    return bool(pte & PTE_MIGRATION)


class AnonVma:
    """The anon_vma of a family of VMAs (a process and its forked children share it)."""

    def __init__(self, anon_vma_id: int):
        self.id = anon_vma_id
        self.vmas: list[Vma] = []


class Vma:
    """A mapping of npages pages starting at page number `start` of an mm."""

    def __init__(self, mm: MmStruct, start: int, npages: int, flags: int, file=None,
                 pgoff: int = 0):
        self.mm = mm
        self.start = start
        self.npages = npages
        self.flags = flags
        self.file = file            # an AddressSpace, or None for anonymous memory
        self.pgoff = pgoff
        self.anon_vma: AnonVma | None = None
        self.pte = np.zeros(npages, dtype=np.int64)

    def __repr__(self) -> str:
        kind = f"file {self.file.name}" if self.file is not None else "anon"
        return f"<vma {self.mm.id}:{self.start:#x}+{self.npages} {kind}>"

    def linear_page_index(self, addr: int) -> int:
        """The page's index in its file (or in the anon_vma's linear space)."""
        return addr - self.start + self.pgoff

    def addr_of_index(self, index: int) -> int | None:
        off = index - self.pgoff
        if 0 <= off < self.npages:
            return self.start + off
        return None


class MmStruct:
    def __init__(self, mm_id: int):
        self.id = mm_id
        self.owner = None            # the Task whose memcg pays for this mm's pages
        self.vmas: list[Vma] = []
        self.rss_stat = [0, 0, 0]
        self.next_start = 1 << 20    # page number of the next free address range
        self.users = 1
        #: page-table pages: (level, index) -> id of the memcg charged for it (0: none)
        self.pgtables: dict[tuple[str, int], int] = {}
        #: the memcg charged for the PGD, or None once freed
        self.pgd_memcg: int | None = None

    def __repr__(self) -> str:
        return f"<mm {self.id}>"

    def find_vma(self, addr: int) -> Vma | None:
        for vma in self.vmas:
            if vma.start <= addr < vma.start + vma.npages:
                return vma
        return None

    def get_unmapped_area(self, npages: int) -> int:
        """Place new mappings 2 MiB aligned, one after another."""
        start = self.next_start
        self.next_start = start + ((npages + 1023) // 512) * 512
        return start
