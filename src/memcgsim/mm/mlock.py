"""mm/mlock.c: mlocked pages live on the unevictable list."""

from __future__ import annotations

from .mm_types import PG_lru, PG_mlocked


def clear_page_mlock(k, pfn: int) -> None:
    """The last mlocked mapping went: move the page back to an evictable list."""

    mem_map = k.mem_map
    if not mem_map.flags[pfn] & PG_mlocked:
        return
    mem_map.flags[pfn] &= ~PG_mlocked
    if mem_map.flags[pfn] & PG_lru and isolate_lru_page(k, pfn) == 0:
        putback_lru_page(k, pfn)


def mlock_vma_page(k, pfn: int) -> None:
    """Mark a mapped page mlocked and move it to the unevictable list."""

    mem_map = k.mem_map
    if mem_map.flags[pfn] & PG_mlocked:
        return
    mem_map.flags[pfn] |= PG_mlocked
    if mem_map.flags[pfn] & PG_lru and isolate_lru_page(k, pfn) == 0:
        putback_lru_page(k, pfn)


# Imported once this module's functions exist: these modules and this one call each other.
from .vmscan import isolate_lru_page, putback_lru_page  # noqa: E402
