"""mm/page-writeback.c: dirty and writeback state, with the memcg writeback statistic."""

from __future__ import annotations

from .locking import Lock, Step, TryLock, Unlock, page_lock
from .mm_types import PG_dirty, PG_writeback
from .page_cgroup import PCG_USED


def SetPageDirty(k, pfn: int) -> None:  # noqa: N802 - the kernel's name
    k.mem_map.flags[pfn] |= PG_dirty


def set_page_dirty(k, pfn: int) -> None:
    SetPageDirty(k, pfn)


def clear_page_dirty_for_io(k, pfn: int) -> bool:
    mem_map = k.mem_map
    was = bool(mem_map.flags[pfn] & PG_dirty)
    mem_map.flags[pfn] &= ~PG_dirty
    return was


def test_set_page_writeback(k, pfn: int) -> bool:
    """Start writeback; the memcg writeback statistic counts the page while it is USED."""
    mem_map = k.mem_map
    was = bool(mem_map.flags[pfn] & PG_writeback)
    if not was:
        mem_map.flags[pfn] |= PG_writeback
        mem_cgroup_update_page_stat(k, pfn, MEM_CGROUP_STAT_WRITEBACK, 1)
    return was


def test_clear_page_writeback(k, pfn: int):
    """Path: clear PG_writeback and take the page off its memcg's writeback statistic.

    The memcg is looked up first, and migration leaves a page under writeback alone, so the
    statistic always goes down on the memcg it went up on (the 3.18 fix, with Cc stable 3.17).
    With bug B1 put back (k.inject) the flag is cleared first and the memcg looked up after:
    a migration in between uncharges the page and the decrement is lost."""

    mem_map = k.mem_map
    was = bool(mem_map.flags[pfn] & PG_writeback)
    if "B1" in k.inject:
        mem_map.flags[pfn] &= ~PG_writeback
        yield Step("TestClearPageWriteback")
        if was:
            mem_cgroup_update_page_stat(k, pfn, MEM_CGROUP_STAT_WRITEBACK, -1)
        return was
    memcg = k.memcg_by_id[int(k.pc.memcg[pfn])] if k.pc.flags[pfn] & PCG_USED else None
    yield Step("mem_cgroup_begin_page_stat")
    was = bool(mem_map.flags[pfn] & PG_writeback)
    if was:
        mem_map.flags[pfn] &= ~PG_writeback
        if memcg is not None:
            memcg.stat[MEM_CGROUP_STAT_WRITEBACK] -= 1
    return was


def end_page_writeback(k, pfn: int):
    """Path: the I/O completed."""
    if not (yield from test_clear_page_writeback(k, pfn)):
        k.bug_on(True, pfn, "end_page_writeback of a page not under writeback")


def write_one_page(k, pfn: int, trylock: bool = False):
    """Path: lock, clean, write (the device completes at once), unlock. With trylock (the
    flusher woken by reclaim, which runs while other paths may hold page locks) a locked page
    is skipped. Returns whether the page was written."""

    get_page(k, pfn)
    if trylock:
        if not (yield TryLock(page_lock(pfn))):
            put_page(k, pfn)
            return False
    else:
        yield Lock(page_lock(pfn))
    written = clear_page_dirty_for_io(k, pfn)
    if written:
        test_set_page_writeback(k, pfn)
        yield from end_page_writeback(k, pfn)
    yield Unlock(page_lock(pfn))
    put_page(k, pfn)
    return written


def wakeup_flusher_threads(k, pfns):
    """Path: the flusher writes back the dirty page-cache pages reclaim had to skip (cgroup
    writeback on v2; a global flush on v1); the model's device completes at once."""
    done = 0
    for pfn in pfns:
        mem_map = k.mem_map
        if mem_map.flags[pfn] & PG_dirty and mem_map.refcount[pfn] > 0:
            done += bool((yield from write_one_page(k, pfn, trylock=True)))
    return done


# Imported once this module's functions exist: these modules and this one call each other.
from .memcontrol import MEM_CGROUP_STAT_WRITEBACK, mem_cgroup_update_page_stat  # noqa: E402
from .swap import get_page, put_page  # noqa: E402
