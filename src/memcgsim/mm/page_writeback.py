"""mm/page-writeback.c: dirty and writeback state, with the memcg writeback statistic."""

from __future__ import annotations

from .memcontrol import MEM_CGROUP_STAT_WRITEBACK, mem_cgroup_update_page_stat
from .mm_types import PG_dirty, PG_writeback


def SetPageDirty(k, pfn: int) -> None:  # noqa: N802 - the kernel's name
    k.mem_map.flags[pfn] |= PG_dirty


def set_page_dirty(k, pfn: int) -> None:
    SetPageDirty(k, pfn)


def clear_page_dirty_for_io(k, pfn: int) -> bool:
    mm = k.mem_map
    was = bool(mm.flags[pfn] & PG_dirty)
    mm.flags[pfn] &= ~PG_dirty
    return was


def test_set_page_writeback(k, pfn: int) -> bool:
    """Start writeback; the memcg writeback statistic counts the page while it is USED."""
    mm = k.mem_map
    was = bool(mm.flags[pfn] & PG_writeback)
    if not was:
        mm.flags[pfn] |= PG_writeback
        mem_cgroup_update_page_stat(k, pfn, MEM_CGROUP_STAT_WRITEBACK, 1)
    return was


def test_clear_page_writeback(k, pfn: int) -> bool:
    mm = k.mem_map
    was = bool(mm.flags[pfn] & PG_writeback)
    if was:
        mm.flags[pfn] &= ~PG_writeback
        mem_cgroup_update_page_stat(k, pfn, MEM_CGROUP_STAT_WRITEBACK, -1)
    return was


def end_page_writeback(k, pfn: int) -> None:
    if not test_clear_page_writeback(k, pfn):
        k.bug_on(True, pfn, "end_page_writeback of a page not under writeback")
