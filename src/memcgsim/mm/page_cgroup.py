"""page_cgroup (3.17): one per struct page, holding the memcg binding and the charge bits.

Since the 2014 rewrite these are written non-atomically, protected by whatever protects the page
(page lock, page-table lock, refcount zero, LRU isolation); PCG_LOCK is gone.
"""

from __future__ import annotations

import numpy as np

PCG_USED = 1 << 0    # associated with pc->mem_cgroup (committed)
PCG_MEM = 1 << 1     # holds nr_pages of memcg->res
PCG_MEMSW = 1 << 2   # holds nr_pages of memcg->memsw

PCG_FLAG_NAMES = {PCG_USED: "USED", PCG_MEM: "MEM", PCG_MEMSW: "MEMSW"}

#: the combinations a user page may show (§1.2 of the spec)
LEGAL_PCG_FLAGS = frozenset({0, PCG_USED | PCG_MEM | PCG_MEMSW, PCG_USED | PCG_MEM})


class PageCgroupMap:
    """The page_cgroup array: flags and the mem_cgroup id (0 = NULL) per pfn."""

    def __init__(self, nr_pages: int):
        self.flags = np.zeros(nr_pages, dtype=np.uint8)
        self.memcg = np.zeros(nr_pages, dtype=np.uint16)

    def nbytes(self) -> int:
        return self.flags.nbytes + self.memcg.nbytes

    def arrays(self) -> dict[str, np.ndarray]:
        return {"pc_flags": self.flags, "pc_memcg": self.memcg}
