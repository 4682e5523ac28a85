"""struct page for every pfn (the kernel's mem_map), kept as parallel numpy arrays.

One array per field, indexed by pfn, so that an operation over many pfns is one array operation.
Per page: flags (2 B; int16 with bit 15 unused, so ~FLAG masks fit), _refcount (4), _mapcount
(4), mapping (4), index (4), private (4), lru_memcg (2) and lru_seq (4): 28 bytes, plus 3 for
the page_cgroup (see page_cgroup.py).
"""

from __future__ import annotations

import numpy as np

# Page flags (PG_*). PG_anon stands for the PAGE_MAPPING_ANON bit of page->mapping.
PG_locked = 1 << 0
PG_referenced = 1 << 1
PG_dirty = 1 << 2
PG_lru = 1 << 3
PG_active = 1 << 4
PG_writeback = 1 << 5
PG_head = 1 << 6          # head of a compound page (THP)
PG_tail = 1 << 7          # tail of a compound page; its head is pfn & ~(HPAGE_PMD_NR - 1)
PG_swapcache = 1 << 8
PG_swapbacked = 1 << 9
PG_unevictable = 1 << 10
PG_mlocked = 1 << 11
PG_anon = 1 << 12
PG_buddy = 1 << 13        # free, in the page allocator
PG_huge = 1 << 14         # hugetlbfs page (PageHuge): never memcg-charged in 3.17

PAGE_FLAG_NAMES = {
    PG_locked: "locked", PG_referenced: "referenced", PG_dirty: "dirty", PG_lru: "lru",
    PG_active: "active", PG_writeback: "writeback", PG_head: "head", PG_tail: "tail",
    PG_swapcache: "swapcache", PG_swapbacked: "swapbacked", PG_unevictable: "unevictable",
    PG_mlocked: "mlocked", PG_anon: "anon", PG_buddy: "buddy", PG_huge: "hugetlb",
}

HPAGE_PMD_ORDER = 9
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER

# enum lru_list, in the kernel's order
LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE, LRU_UNEVICTABLE = range(5)
NR_LRU_LISTS = 5
LRU_NAMES = ("inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable")


def flag_names(flags: int, names: dict[int, str] = PAGE_FLAG_NAMES) -> str:
    return "|".join(n for bit, n in names.items() if flags & bit) or "0"


def page_lru(flags: int) -> int:
    """page_lru(): the LRU list a page with these flags belongs on."""
    if flags & PG_unevictable:
        return LRU_UNEVICTABLE
    lru = LRU_INACTIVE_ANON if flags & PG_swapbacked else LRU_INACTIVE_FILE
    if flags & PG_active:
        lru += 1
    return lru


_SWAPBACKED_TO_2 = PG_swapbacked.bit_length() - 2
_ACTIVE_TO_1 = PG_active.bit_length() - 1
assert LRU_INACTIVE_FILE - LRU_INACTIVE_ANON == 2 and LRU_ACTIVE_ANON == LRU_INACTIVE_ANON + 1


def page_lru_array(flags: np.ndarray) -> np.ndarray:
    """page_lru() over an array of flags (worked out in the flags' own dtype: the bulk paths
    call it on a million pages)."""
    # PG_swapbacked shifted down to 2 (file lists -> anon lists), PG_active down to 1
    lru = ((LRU_INACTIVE_FILE - ((flags & PG_swapbacked) >> _SWAPBACKED_TO_2))
           | ((flags & PG_active) >> _ACTIVE_TO_1))
    lru = np.where(flags & PG_unevictable, np.int16(LRU_UNEVICTABLE), lru)
    return lru.astype(np.int64)


class MemMap:
    """mem_map: the struct page array of one machine."""

    FIELDS = (("flags", np.int16), ("refcount", np.int32), ("mapcount", np.int32),
              ("mapping", np.int32), ("index", np.uint32), ("private", np.int32),
              ("lru_memcg", np.uint16), ("lru_seq", np.uint32))

    def __init__(self, nr_pages: int):
        self.nr_pages = nr_pages
        for name, dtype in self.FIELDS:
            setattr(self, name, np.zeros(nr_pages, dtype=dtype))
        # every page starts free, in the allocator
        self.flags[:] = PG_buddy

    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name, _ in self.FIELDS)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name, _ in self.FIELDS}

    def nr_pages_of(self, pfn: int) -> int:
        """hpage_nr_pages(): 512 for a THP head, else 1."""
        return HPAGE_PMD_NR if self.flags[pfn] & PG_head else 1
