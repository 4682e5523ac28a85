"""address_space and inode: a file's page cache and the VMAs that map it."""

from __future__ import annotations

import numpy as np

from .mm_struct import PTE_PRESENT, PTE_SWAP, PTE_VAL_MASK


class AddressSpace:
    """An inode with its page cache (i_pages). Entries use the pte encoding: a present page, or
    (shmem only) a swap entry, or 0 for a hole."""

    def __init__(self, mapping_id: int, name: str, shmem: bool = False):
        self.id = mapping_id
        self.name = name
        self.shmem = shmem
        self.i_pages = np.zeros(16, dtype=np.int64)
        self.nrpages = 0
        self.size_pages = 0          # i_size in pages
        self.i_mmap: list = []       # VMAs mapping this file
        self.nlink = 1               # names in the file system
        self.i_count = 0             # open files and mappings that keep the inode alive
        #: the node this file's pages must come from, or None: the model's stand-in for a
        #: mapping_gfp_mask that limits the zone (i915's shmem objects ask for GFP_DMA32)
        self.gfp_node: int | None = None

    def __repr__(self) -> str:
        return f"<mapping {self.id} {self.name}>"

    def ensure(self, nr_index: int) -> None:
        """Room for nr_index entries. The array doubles until it fits, so its length depends
        only on the highest index ever stored, not on whether pages came one at a time or in
        a run (whole-state comparisons of the fast and per-page paths see the length)."""
        if nr_index > len(self.i_pages):
            size = len(self.i_pages)
            while size < nr_index:
                size *= 2
            grown = np.zeros(size, dtype=np.int64)
            grown[: len(self.i_pages)] = self.i_pages
            self.i_pages = grown

    def lookup(self, index: int) -> int:
        """The raw entry at index (0 for a hole)."""
        if index >= len(self.i_pages):
            return 0
        return int(self.i_pages[index])

    def find_page(self, index: int) -> int:
        """The pfn cached at index, or -1."""
        e = self.lookup(index)
        return e & PTE_VAL_MASK if e & PTE_PRESENT else -1

    def swap_entry(self, index: int) -> int:
        """The swap slot a shmem page at index was written to, or 0."""
        e = self.lookup(index)
        return e & PTE_VAL_MASK if e & PTE_SWAP else 0
