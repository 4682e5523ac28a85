"""The per-memcg page state counters of 6.x memory.stat (enum node_stat_item, memcg_stat_item).

From 5.x memcg statistics are state counters: NR_ANON_MAPPED moves when an anonymous page is
first mapped or last unmapped, NR_FILE_PAGES when a page enters or leaves the page cache, and so
on, each on the lruvec of the page's memcg at that moment. Each is therefore a function of the
page state, and the model reads them that way: one pass over mem_map and page_cgroup counts, per
memcg, the pages in each state. What the kernel's rstat flush shows at a quiescent point is the
same number (the kernel's per-CPU deltas only delay it).

The 3.17 charge-type counters (cache and rss counted at commit and uncharge) are different:
they are kept incrementally in memcontrol.py.
"""

from __future__ import annotations

import numpy as np

from .mm_types import (
    HPAGE_PMD_NR,
    PG_anon,
    PG_dirty,
    PG_head,
    PG_swapbacked,
    PG_swapcache,
    PG_tail,
    PG_writeback,
)
from .page_cgroup import PCG_USED

#: the state items the model counts, by their memory.stat name
NR_ANON_MAPPED = "anon"
NR_FILE_PAGES = "file"
NR_SHMEM = "shmem"
NR_FILE_MAPPED = "file_mapped"
NR_FILE_DIRTY = "file_dirty"
NR_WRITEBACK = "file_writeback"
NR_SWAPCACHE = "swapcached"
NR_ANON_THPS = "anon_thp"
MEMCG_SWAP = "swap"

STATE_ITEMS = (NR_ANON_MAPPED, NR_FILE_PAGES, NR_SHMEM, NR_FILE_MAPPED, NR_FILE_DIRTY,
               NR_WRITEBACK, NR_SWAPCACHE, NR_ANON_THPS)


def memcg_page_state_local(k) -> dict[int, dict[str, int]]:
    """{memcg id: {item: pages}} for the pages charged to each memcg itself (state_local).

    MEMCG_SWAP is the swap slots recorded to the memcg (the kernel moves it at the same points
    where it records and clears a slot's owner)."""
    mem, pc = k.mem_map, k.pc
    charged = np.flatnonzero((pc.flags & PCG_USED) != 0)
    flags = mem.flags[charged].astype(np.int64)
    charged = charged[(flags & PG_tail) == 0]
    flags = flags[(flags & PG_tail) == 0]
    ids = pc.memcg[charged].astype(np.int64)
    nr = np.where(flags & PG_head, HPAGE_PMD_NR, 1)
    anon = (flags & PG_anon) != 0
    mapped = mem.mapcount[charged] > 0
    in_page_cache = ~anon & (mem.mapping[charged] != 0)
    masks = {
        NR_ANON_MAPPED: anon & mapped,
        NR_FILE_PAGES: in_page_cache,
        NR_SHMEM: in_page_cache & ((flags & PG_swapbacked) != 0),
        NR_FILE_MAPPED: ~anon & mapped,
        # shmem cannot be written back: its dirty pages are not file_dirty
        NR_FILE_DIRTY: in_page_cache & ((flags & (PG_dirty | PG_swapbacked)) == PG_dirty),
        NR_WRITEBACK: (flags & PG_writeback) != 0,
        NR_SWAPCACHE: (flags & PG_swapcache) != 0,
        NR_ANON_THPS: anon & mapped & ((flags & PG_head) != 0),
    }
    size = max(k.memcg_by_id) + 1
    table = {item: np.bincount(ids[m], weights=nr[m], minlength=size).astype(np.int64)
             for item, m in masks.items()}
    rec = k.swap_cgroup.id[k.swap_cgroup.id != 0].astype(np.int64)
    table[MEMCG_SWAP] = np.bincount(rec, minlength=size).astype(np.int64)
    return {mid: {item: int(col[mid]) for item, col in table.items()}
            for mid in k.memcg_by_id}


def memcg_page_state(k, memcg, local: dict[int, dict[str, int]] | None = None) -> dict[str, int]:
    """The subtree's counters (memcg_page_state: what memory.stat prints), offline children
    included: their pages still count in the parent until freed."""
    local = memcg_page_state_local(k) if local is None else local
    total = dict.fromkeys((*STATE_ITEMS, MEMCG_SWAP), 0)
    for m in memcg.subtree():
        for item, v in local[m.id].items():
            total[item] += v
    return total
