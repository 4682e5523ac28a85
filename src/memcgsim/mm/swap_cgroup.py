"""mm/swap_cgroup.c: the 16-bit memcg id recorded for each swap slot (0 = none)."""

from __future__ import annotations

import numpy as np


class SwapCgroup:
    def __init__(self, nr_slots: int):
        self.id = np.zeros(max(nr_slots, 1), dtype=np.uint16)

    def record(self, entry: int, memcg_id: int) -> int:
        """swap_cgroup_record: store memcg_id, return the id that was there."""
        old = int(self.id[entry])
        self.id[entry] = memcg_id
        return old

    def lookup(self, entry: int) -> int:
        return int(self.id[entry])

    def cmpxchg(self, entry: int, old: int, new: int) -> bool:
        if self.id[entry] != old:
            return False
        self.id[entry] = new
        return True
