"""Each mm path of the 3.17 model, with exact counters and statistics after every step.

Reading the numbers: usage includes the per-CPU stock. The first charge of a memcg on a CPU
charges a batch of 32 pages and keeps 31 in the stock; the next 31 charges take from it.
"""

import numpy as np
import pytest

from memcgsim import Machine, check
from memcgsim.mm.memcontrol import (
    mem_cgroup_cancel_charge,
    mem_cgroup_move_account,
    mem_cgroup_try_charge,
)
from memcgsim.mm.mm_types import (
    PG_active,
    PG_buddy,
    PG_dirty,
    PG_lru,
    PG_swapbacked,
    PG_swapcache,
    PG_unevictable,
)
from memcgsim.mm.page_cgroup import PCG_MEM, PCG_MEMSW, PCG_USED
from memcgsim.mm.vmscan import isolate_lru_page, putback_lru_page

FULL = PCG_USED | PCG_MEM | PCG_MEMSW
P = 4096


def ok(m):
    v = check(m.k)
    assert v == [], v


def counters(m, path):
    c = m.memcg(path)
    return c.res.usage, c.memsw.usage


def stock(m, cpu=0):
    s = m.k.stocks[cpu]
    return (s.cached.name if s.cached else None), s.nr_pages


def lruvec_of(m, pfn):
    return m.k.memcg_by_id[int(m.k.mem_map.lru_memcg[pfn])].name


@pytest.fixture
def m():
    m = Machine(4096, swap_pages=256)
    m.mkdir("/a")
    m.mkdir("/b")
    return m


# ---------------------------------------------------------------- anonymous memory


def test_anon_fault_charges_a_batch_and_commits(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 40)
    assert m.touch(a, v, 0, 1) == 1
    pfn = m.pfn_of(v, 0)
    assert counters(m, "/a") == (32, 32)
    assert stock(m) == ("/a", 31)
    assert int(m.k.pc.flags[pfn]) == FULL
    assert m.k.memcg_by_id[int(m.k.pc.memcg[pfn])].name == "/a"
    st = m.stat("/a")
    assert (st["rss"], st["cache"], st["pgpgin"], st["pgfault"]) == (P, 0, 1, 1)
    assert st["active_anon"] == P and lruvec_of(m, pfn) == "/a"
    assert m.k.mem_map.flags[pfn] & PG_active
    ok(m)
    m.touch(a, v, 1, 31)
    assert counters(m, "/a") == (32, 32) and stock(m) == ("/a", 0)
    m.touch(a, v, 32, 1)
    assert counters(m, "/a") == (64, 64) and stock(m) == ("/a", 31)
    assert m.stat("/a")["rss"] == 33 * P
    ok(m)


def test_munmap_uncharges_after_the_final_put(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 2)
    m.touch(a, v)
    pfns = [m.pfn_of(v, i) for i in range(2)]
    m.munmap(a, v)
    # the pages are gone; the stock (30 pages) stays charged
    assert counters(m, "/a") == (30, 30)
    st = m.stat("/a")
    assert (st["rss"], st["pgpgin"], st["pgpgout"], st["active_anon"]) == (0, 2, 2, 0)
    for pfn in pfns:
        assert m.k.mem_map.flags[pfn] == PG_buddy
        assert m.k.pc.flags[pfn] == 0
        assert m.k.memcg_by_id[int(m.k.pc.memcg[pfn])].name == "/a"   # stale, as in 3.17
    ok(m)


def test_exit_frees_and_uncharges_everything_the_task_mapped(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 10)
    m.touch(a, v)
    m.exit(a)
    assert a.state == "exited"
    assert counters(m, "/a") == (22, 22) and m.stat("/a")["rss"] == 0
    assert m.stat("/a")["pgpgout"] == 10
    ok(m)


def test_cow_fault_charges_the_writer_and_keeps_the_original_owner(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 1)
    m.touch(a, v)
    old = m.pfn_of(v, 0)
    b = m.fork(a, "B")
    assert m.k.mem_map.mapcount[old] == 2 and m.k.mem_map.refcount[old] == 2
    m.move_task(b, "/b")
    vb = b.mm.vmas[0]
    m.touch(b, vb)                     # write to the shared page: copy on write
    new = m.pfn_of(vb, 0)
    assert new != old
    # B's batch for /b drained /a's stock on the shared CPU
    assert counters(m, "/a") == (1, 1) and m.stat("/a")["rss"] == P
    assert counters(m, "/b") == (32, 32) and m.stat("/b")["rss"] == P
    assert m.stat("/b")["pgfault"] == 1 and m.stat("/a")["pgfault"] == 1
    assert m.k.mem_map.mapcount[old] == 1 and m.k.mem_map.refcount[old] == 1
    ok(m)
    m.touch(a, v)                      # the parent is the last user: it reuses the page
    assert m.pfn_of(v, 0) == old and m.stat("/a")["rss"] == P
    assert m.stat("/a")["pgfault"] == 2
    ok(m)


def test_dying_task_bypasses_to_root(m):
    m.set_limit("/a", 10)
    a = m.spawn("A", "/a")
    a.fatal_signal = True
    v = m.mmap_anon(a, 12)
    assert m.touch(a, v) == 12
    # pages 1-10: the 32-page batch fails, the exact charge fits (10 failures); pages 11
    # and 12: batch and exact charge fail (4 more), and the dying task bypasses to root,
    # whose counters are never charged
    assert counters(m, "/a") == (10, 10)
    assert m.stat("/a")["rss"] == 10 * P and m.stat("/")["rss"] == 2 * P
    assert m.memcg("/").res.usage == 0
    assert m.memcg("/a").res.failcnt == 14
    assert m.usage("/") == 12
    ok(m)


def test_limit_failcnt_counts_failed_batches_then_the_charge_fails(m):
    m.set_limit("/a", 40)
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 41)
    assert m.touch(a, v, 0, 40) == 40
    # pages 33..40: each one's 32-page batch fails, then the exact charge succeeds
    assert counters(m, "/a") == (40, 40) and m.memcg("/a").res.failcnt == 8
    assert m.memcg("/a").res.max_usage == 40 and m.k.stocks[0].nr_pages == 0
    ok(m)


def test_limit_without_swap_ends_in_a_memcg_oom():
    m = Machine(4096)
    m.mkdir("/a")
    m.set_limit("/a", 40)
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 41)
    m.touch(a, v, 0, 40)
    assert m.memcg("/a").res.failcnt == 8
    assert m.touch(a, v, 40, 1) == 0
    # the batch, the exact retry and five more retries all failed; the fault ends in the
    # memcg OOM killer, whose only candidate is the faulting task itself
    assert m.memcg("/a").res.failcnt == 15
    assert a.state == "killed" and a.memcg_oom is None and a.memdie
    assert counters(m, "/a") == (0, 0) and m.stat("/a")["pgfault"] == 41
    assert m.stat("/a")["pgpgout"] == 40
    ok(m)


def test_memcg_oom_kills_the_biggest_task_and_the_fault_retries():
    m = Machine(4096)
    m.mkdir("/a")
    m.set_limit("/a", 64)
    big, small = m.spawn("Big", "/a"), m.spawn("Small", "/a")
    m.touch(big, m.mmap_anon(big, 40))
    v = m.mmap_anon(small, 30)
    assert m.touch(small, v) == 30            # Big (40 pages) is killed at page 25
    assert big.state == "killed" and small.state == "alive"
    assert m.stat("/a")["rss"] == 30 * P and counters(m, "/a")[0] <= 64
    ok(m)


def test_oom_kill_disable_leaves_the_task_waiting():
    m = Machine(4096)
    m.mkdir("/a")
    m.set_limit("/a", 16)
    m.memcg("/a").oom_kill_disable = True
    a = m.spawn("A", "/a")
    assert m.touch(a, m.mmap_anon(a, 20)) == 16
    assert a.state == "alive" and m.memcg("/a").under_oom == 1
    ok(m)


def test_limit_reclaim_swaps_out_to_make_room(m):
    m.set_limit("/a", 40)
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 41)
    m.touch(a, v, 0, 40)
    assert m.touch(a, v, 40, 1) == 1
    st = m.stat("/a")
    assert counters(m, "/a")[0] <= 40
    assert st["swap"] >= P and st["rss"] + st["swap"] == 41 * P
    ok(m)


def test_hierarchical_charge_fails_at_the_ancestor_and_undoes_below(m):
    assert m.set_use_hierarchy("/b", True) == 0
    m.mkdir("/b/c")
    m.set_limit("/b", 33)
    t = m.spawn("T", "/b/c")
    v = m.mmap_anon(t, 34)
    m.touch(t, v, 0, 33)
    assert counters(m, "/b/c") == (33, 33) and counters(m, "/b") == (33, 33)
    assert m.memcg("/b").res.failcnt == 1 and m.memcg("/b/c").res.failcnt == 0
    assert m.k.stocks[0].nr_pages == 0
    # the next page fails at /b (after reclaim swapped something out of /b/c)
    st = m.stat("/b")
    assert st["hierarchical_memory_limit"] == 33 * P
    assert m.stat("/b/c")["hierarchical_memory_limit"] == 33 * P
    assert st["total_rss"] == 33 * P and st["rss"] == 0
    ok(m)


def test_flat_parent_does_not_see_child_charges(m):
    m.mkdir("/a/c")
    t = m.spawn("T", "/a/c")
    v = m.mmap_anon(t, 3)
    m.touch(t, v)
    assert counters(m, "/a/c") == (32, 32) and counters(m, "/a") == (0, 0)
    assert m.memcg("/a/c").res.parent is None
    # total_* of a flat memcg covers only itself; root always sums the whole tree
    assert m.stat("/a")["total_rss"] == 0
    assert m.stat("/")["total_rss"] == 3 * P
    assert m.usage("/") == 3
    ok(m)


def test_stock_is_drained_when_another_memcg_refills_it(m):
    a = m.spawn("A", "/a")
    b = m.spawn("B", "/b")
    va, vb = m.mmap_anon(a, 1), m.mmap_anon(b, 1)
    m.touch(a, va)
    assert counters(m, "/a") == (32, 32)
    m.touch(b, vb)
    assert counters(m, "/a") == (1, 1) and counters(m, "/b") == (32, 32)
    assert stock(m) == ("/b", 31)
    ok(m)


def test_stock_is_per_cpu():
    m = Machine(4096, cpus=2)
    m.mkdir("/a")
    a0, a1 = m.spawn("A0", "/a", cpu=0), m.spawn("A1", "/a", cpu=1)
    m.touch(a0, m.mmap_anon(a0, 1))
    m.touch(a1, m.mmap_anon(a1, 1))
    assert counters(m, "/a") == (64, 64)
    assert stock(m, 0) == ("/a", 31) and stock(m, 1) == ("/a", 31)
    ok(m)


# ---------------------------------------------------------------- page cache and shmem


def test_page_cache_read_charges_the_first_reader_only(m):
    a = m.spawn("A", "/a")
    b = m.spawn("B", "/b")
    m.write(a, "/data/f", 4)
    m.sync()
    assert m.stat("/a")["cache"] == 4 * P and m.stat("/a")["inactive_file"] == 4 * P
    assert m.read(b, "/data/f") == 4
    assert m.stat("/b")["cache"] == 0 and counters(m, "/b") == (0, 0)
    pfn = m.file("/data/f").find_page(0)
    assert int(m.k.pc.flags[pfn]) == FULL and lruvec_of(m, pfn) == "/a"
    assert not m.k.mem_map.flags[pfn] & PG_swapbacked
    ok(m)


def test_read_of_an_uncached_file_charges_the_reader(m):
    a = m.spawn("A", "/a")
    b = m.spawn("B", "/b")
    m.write(a, "/data/f", 3)
    m.sync()
    m.truncate("/data/f", 0)
    assert m.stat("/a")["cache"] == 0 and m.stat("/a")["pgpgout"] == 3
    m.file("/data/f").size_pages = 3          # the data is still on disk
    assert m.read(b, "/data/f") == 3
    assert m.stat("/b")["cache"] == 3 * P and m.stat("/b")["pgpgin"] == 3
    assert counters(m, "/b") == (32, 32)
    ok(m)


def test_write_dirties_and_sync_counts_writeback_then_clean(m):
    a = m.spawn("A", "/a")
    m.write(a, "/data/f", 2)
    f = m.file("/data/f")
    pfn = f.find_page(0)
    assert m.k.mem_map.flags[pfn] & PG_dirty
    assert m.sync() == 2
    assert not m.k.mem_map.flags[pfn] & PG_dirty
    assert m.stat("/a")["writeback"] == 0
    ok(m)


def test_mapped_file_counts_first_and_last_mapping(m):
    a = m.spawn("A", "/a")
    b = m.spawn("B", "/b")
    m.write(a, "/data/f", 2)
    va = m.mmap_file(a, "/data/f")
    vb = m.mmap_file(b, "/data/f")
    m.touch(a, va, write=False)
    assert m.stat("/a")["mapped_file"] == 2 * P
    m.touch(b, vb, write=False)
    assert m.stat("/a")["mapped_file"] == 2 * P and m.stat("/b")["mapped_file"] == 0
    assert m.stat("/b")["pgfault"] == 2 and m.stat("/b")["cache"] == 0
    m.munmap(a, va)
    assert m.stat("/a")["mapped_file"] == 2 * P
    m.munmap(b, vb)
    assert m.stat("/a")["mapped_file"] == 0 and m.stat("/a")["cache"] == 2 * P
    ok(m)


def test_truncate_of_a_mapped_file_unmaps_and_uncharges(m):
    a = m.spawn("A", "/a")
    m.write(a, "/data/f", 3)
    v = m.mmap_file(a, "/data/f")
    m.touch(a, v, write=False)
    assert m.stat("/a")["mapped_file"] == 3 * P
    m.truncate("/data/f", 1)
    st = m.stat("/a")
    assert (st["cache"], st["mapped_file"], st["pgpgout"]) == (P, P, 2)
    assert counters(m, "/a") == (30, 30)
    ok(m)


def test_unlink_of_an_open_mapped_file_keeps_the_charge_until_munmap(m):
    a = m.spawn("A", "/a")
    m.write(a, "/data/f", 2)
    v = m.mmap_file(a, "/data/f")
    m.touch(a, v, write=False)
    m.unlink("/data/f")
    assert m.stat("/a")["cache"] == 2 * P
    m.munmap(a, v)
    assert m.stat("/a")["cache"] == 0 and m.stat("/a")["mapped_file"] == 0
    ok(m)


def test_tmpfs_is_cache_on_the_anon_lru_and_outlives_the_writer(m):
    a = m.spawn("A", "/a")
    assert m.write(a, "/dev/shm/x", 5) == 5
    pfn = m.file("/dev/shm/x").find_page(0)
    st = m.stat("/a")
    assert (st["cache"], st["rss"], st["inactive_anon"]) == (5 * P, 0, 5 * P)
    assert m.k.mem_map.flags[pfn] & PG_swapbacked
    m.exit(a)
    assert m.stat("/a")["cache"] == 5 * P
    m.unlink("/dev/shm/x")
    assert m.stat("/a")["cache"] == 0 and counters(m, "/a") == (27, 27)
    ok(m)


def test_shmem_swapout_and_swapin_by_another_task(m):
    a = m.spawn("A", "/a")
    b = m.spawn("B", "/b")
    m.write(a, "/dev/shm/x", 1)
    f = m.file("/dev/shm/x")
    pfn = f.find_page(0)
    assert m.reclaim(pfn) == 1
    slot = f.swap_entry(0)
    assert slot and m.k.swap_cgroup.lookup(slot) == m.memcg("/a").id
    assert counters(m, "/a") == (31, 32)
    st = m.stat("/a")
    assert (st["cache"], st["swap"]) == (0, P)
    m.write(b, "/dev/shm/x", 1, offset=0)    # swapped back in: charged to the slot's owner
    st = m.stat("/a")
    assert (st["cache"], st["swap"]) == (P, 0)
    assert counters(m, "/a") == (31, 31) and counters(m, "/b") == (0, 0)
    assert m.k.swap.swap_map[slot] == 0
    ok(m)


def test_shmem_read_swaps_in_and_leaves_holes_alone(m):
    """read(2) of tmpfs (SGP_READ): a swapped-out page comes back, charged to the slot's
    owner; a hole allocates nothing; the read stops at i_size."""
    a = m.spawn("A", "/a")
    b = m.spawn("B", "/b")
    m.write(a, "/dev/shm/x", 1)
    m.truncate("/dev/shm/x", 3)               # two holes after the page
    f = m.file("/dev/shm/x")
    slot_pfn = f.find_page(0)
    assert m.reclaim(slot_pfn) == 1
    slot = f.swap_entry(0)
    assert (m.stat("/a")["cache"], m.stat("/a")["swap"]) == (0, P)
    assert m.read(b, "/dev/shm/x", 0, 10) == 3
    assert f.nrpages == 1 and f.find_page(1) < 0 and f.find_page(2) < 0
    assert (m.stat("/a")["cache"], m.stat("/a")["swap"]) == (P, 0)
    assert counters(m, "/b") == (0, 0) and m.k.swap.swap_map[slot] == 0
    ok(m)


# ---------------------------------------------------------------- swap


def test_swapout_hands_memsw_to_the_slot_and_the_final_put_drops_memory(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 3)
    m.touch(a, v)
    before = counters(m, "/a")
    pfn = m.pfn_of(v, 1)
    assert m.reclaim(pfn) == 1
    slot = m.swap_entry_of(v, 1)
    assert slot
    assert counters(m, "/a") == (before[0] - 1, before[1])
    assert m.k.swap_cgroup.lookup(slot) == m.memcg("/a").id
    assert m.k.swap.swap_map[slot] == 1
    st = m.stat("/a")
    assert (st["swap"], st["rss"], st["pgpgout"]) == (P, 2 * P, 1)
    assert m.k.mem_map.flags[pfn] == PG_buddy and m.k.pc.flags[pfn] == 0
    assert m.memcg("/a").swap_css_refs == 1
    ok(m)


def test_swapin_commit_drops_the_slots_memsw(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 1)
    m.touch(a, v)
    m.reclaim(m.pfn_of(v, 0))
    slot = m.swap_entry_of(v, 0)
    assert counters(m, "/a") == (31, 32)
    m.touch(a, v, write=False)
    pfn = m.pfn_of(v, 0)
    # the charge comes from the stock (31 -> 30): res unchanged, memsw one less
    assert counters(m, "/a") == (31, 31)
    assert m.k.swap_cgroup.lookup(slot) == 0
    st = m.stat("/a")
    assert (st["swap"], st["rss"], st["pgmajfault"], st["pgpgin"]) == (0, P, 1, 2)
    # a read fault leaves the page in swap cache, holding the slot
    assert m.k.mem_map.flags[pfn] & PG_swapcache
    assert m.k.swap.swap_map[slot] == 0x40
    assert int(m.k.pc.flags[pfn]) == FULL and lruvec_of(m, pfn) == "/a"
    ok(m)
    m.munmap(a, v)
    assert counters(m, "/a") == (30, 30) and m.k.swap.swap_map[slot] == 0
    ok(m)


def test_write_swapin_reuses_the_page_and_frees_the_slot(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 1)
    m.touch(a, v)
    m.reclaim(m.pfn_of(v, 0))
    slot = m.swap_entry_of(v, 0)
    m.touch(a, v, write=True)
    pfn = m.pfn_of(v, 0)
    assert not m.k.mem_map.flags[pfn] & PG_swapcache
    assert m.k.swap.swap_map[slot] == 0 and m.k.swap_cgroup.lookup(slot) == 0
    assert counters(m, "/a") == (31, 31) and m.stat("/a")["swap"] == 0
    ok(m)


def test_swap_slot_free_on_munmap_uncharges_memsw(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 2)
    m.touch(a, v)
    m.reclaim(m.pfn_of(v, 0))
    slot = m.swap_entry_of(v, 0)
    assert counters(m, "/a") == (31, 32)
    m.munmap(a, v)
    assert counters(m, "/a") == (30, 30)
    assert m.k.swap.swap_map[slot] == 0 and m.k.swap_cgroup.lookup(slot) == 0
    assert m.stat("/a")["swap"] == 0 and m.memcg("/a").swap_css_refs == 0
    ok(m)


def test_readahead_pages_sit_uncharged_until_a_fault_commits_them(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 8)
    m.touch(a, v)
    for i in range(8):
        m.reclaim(m.pfn_of(v, i))
    assert m.stat("/a")["swap"] == 8 * P and counters(m, "/a") == (24, 32)
    assert [m.swap_entry_of(v, i) for i in range(8)] == list(range(1, 9))
    # page 3 is in slot 4: the aligned cluster is slots 0-7, less the header slot 0
    m.touch(a, v, 3, 1, write=False)
    st = m.stat("/a")
    assert (st["rss"], st["swap"], st["pgmajfault"]) == (P, 7 * P, 1)
    assert counters(m, "/a") == (24, 31)
    cached = {slot: int(p) for slot, p in enumerate(m.k.swap.cache) if p >= 0}
    assert sorted(cached) == [1, 2, 3, 4, 5, 6, 7]
    for slot, pfn in cached.items():
        if slot == 4:
            continue
        assert m.k.pc.flags[pfn] == 0
        assert m.k.mem_map.flags[pfn] & PG_lru and lruvec_of(m, pfn) == "/"
    assert m.stat("/")["inactive_anon"] == 6 * P
    ok(m)
    m.touch(a, v, 5, 1, write=False)         # a swap cache hit: minor fault, lrucare commit
    pfn = m.pfn_of(v, 5)
    assert pfn == cached[6]
    assert lruvec_of(m, pfn) == "/a" and int(m.k.pc.flags[pfn]) == FULL
    assert m.stat("/a")["pgmajfault"] == 1 and m.stat("/a")["swap"] == 6 * P
    assert m.stat("/")["inactive_anon"] == 5 * P
    ok(m)


def test_swap_accounting_off_keeps_no_memsw_and_no_records():
    m = Machine(4096, swap_pages=64, swap_accounting=False)
    m.mkdir("/a")
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 1)
    m.touch(a, v)
    pfn = m.pfn_of(v, 0)
    assert int(m.k.pc.flags[pfn]) == PCG_USED | PCG_MEM
    m.reclaim(pfn)
    assert counters(m, "/a") == (31, 0)
    assert not m.k.swap_cgroup.id.any() and "swap" not in m.stat("/a")
    m.touch(a, v)
    assert counters(m, "/a") == (31, 0) and m.stat("/a")["rss"] == P
    ok(m)


# ---------------------------------------------------------------- migration and replacement


def test_migrate_moves_the_charge_without_counter_traffic():
    m = Machine(4096, nodes=2)
    m.mkdir("/a")
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 2)
    m.touch(a, v)
    old = m.pfn_of(v, 0)
    before = counters(m, "/a")
    assert m.migrate(a, v, 1) == 0
    new = m.pfn_of(v, 0)
    assert m.k.page_to_nid(old) == 0 and m.k.page_to_nid(new) == 1
    assert counters(m, "/a") == before
    st = m.stat("/a")
    assert (st["rss"], st["pgpgin"], st["pgpgout"]) == (2 * P, 4, 2)
    assert int(m.k.pc.flags[new]) == FULL and m.k.pc.flags[old] == 0
    assert m.k.mem_map.flags[old] == PG_buddy
    assert m.memcg("/a").lruvecs[1].lru_size[1] == 2 and m.memcg("/a").lruvecs[0].lru_size[1] == 0
    ok(m)


def test_migrate_of_a_mapped_file_page_keeps_mapped_file():
    m = Machine(4096, nodes=2)
    m.mkdir("/a")
    a = m.spawn("A", "/a")
    m.write(a, "/data/f", 1)
    m.sync()
    v = m.mmap_file(a, "/data/f")
    m.touch(a, v, write=False)
    assert m.migrate(a, v, 1) == 0
    new = m.pfn_of(v, 0)
    assert m.k.page_to_nid(new) == 1 and m.file("/data/f").find_page(0) == new
    st = m.stat("/a")
    assert (st["cache"], st["mapped_file"]) == (P, P)
    ok(m)


def test_replace_page_cache_with_a_fresh_page_moves_the_charge(m):
    a = m.spawn("A", "/a")
    m.write(a, "/data/f", 1)
    m.sync()
    old = m.file("/data/f").find_page(0)
    before = counters(m, "/a")
    assert m.splice(a, "/data/f", 0) == 0
    new = m.file("/data/f").find_page(0)
    assert new != old and m.k.mem_map.flags[old] == PG_buddy
    assert counters(m, "/a") == before
    st = m.stat("/a")
    assert (st["cache"], st["pgpgin"], st["pgpgout"]) == (P, 2, 1)
    assert int(m.k.pc.flags[new]) == FULL and lruvec_of(m, new) == "/a"
    ok(m)


def test_replace_page_cache_with_both_pages_charged_and_on_lru(m):
    a = m.spawn("A", "/a")
    b = m.spawn("B", "/b")
    m.write(a, "/data/f", 1)
    m.write(b, "/data/g", 1)
    m.sync()
    old = m.file("/data/f").find_page(0)
    new = m.file("/data/g").find_page(0)
    assert lruvec_of(m, old) == "/a" and lruvec_of(m, new) == "/b"
    assert m.splice(a, "/data/f", 0, steal_from="/data/g") == 0
    # the new page was charged already: it keeps /b's charge and stays on /b's lruvec;
    # the old page kept /a's charge until its final put, which just uncharged it
    assert m.file("/data/f").find_page(0) == new
    assert m.k.mem_map.flags[new] & PG_lru and lruvec_of(m, new) == "/b"
    assert m.k.mem_map.flags[old] == PG_buddy
    assert m.stat("/a")["cache"] == 0 and m.stat("/b")["cache"] == P
    # (B's batch had drained /a's stock, so /a is back to nothing)
    assert counters(m, "/a") == (0, 0) and counters(m, "/b") == (32, 32)
    ok(m)


# ---------------------------------------------------------------- THP, mlock, charge moving


def test_thp_fault_charges_512_pages_at_once():
    m = Machine(4096, thp=True)
    m.mkdir("/a")
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 512)
    m.touch(a, v, 0, 1)
    head = m.pfn_of(v, 0)
    assert m.pfn_of(v, 511) == head + 511
    assert counters(m, "/a") == (512, 512) and stock(m) == (None, 0)
    st = m.stat("/a")
    assert (st["rss"], st["rss_huge"], st["pgpgin"], st["active_anon"]) == (
        512 * P, 512 * P, 1, 512 * P)
    assert m.k.pc.flags[head + 1] == 0
    ok(m)
    m.munmap(a, v)
    assert counters(m, "/a") == (0, 0)
    st = m.stat("/a")
    assert (st["rss"], st["rss_huge"], st["pgpgout"]) == (0, 0, 1)
    ok(m)


def test_thp_split_gives_each_page_the_heads_charge():
    m = Machine(4096, thp=True)
    m.mkdir("/a")
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 512)
    m.touch(a, v, 0, 1)
    head = m.pfn_of(v, 0)
    m.split_thp(a, v)
    assert counters(m, "/a") == (512, 512)
    st = m.stat("/a")
    assert (st["rss"], st["rss_huge"], st["active_anon"]) == (512 * P, 0, 512 * P)
    assert np.all(m.k.pc.flags[head:head + 512] == FULL)
    assert m.memcg("/a").lruvecs[0].lru_size[1] == 512
    ok(m)
    m.munmap(a, v)
    st = m.stat("/a")
    assert counters(m, "/a") == (0, 0) and (st["pgpgout"], st["rss"]) == (512, 0)
    ok(m)


def test_thp_charge_failure_falls_back_to_small_pages():
    m = Machine(4096, thp=True)
    m.mkdir("/a")
    m.set_limit("/a", 100)
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 512)
    assert m.touch(a, v, 0, 1) == 1
    assert m.stat("/a")["rss_huge"] == 0 and m.stat("/a")["rss"] == P
    assert m.memcg("/a").res.failcnt == 1
    assert a.memcg_oom is None
    ok(m)


def test_mlock_moves_pages_to_unevictable_and_back(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 3)
    m.touch(a, v)
    m.mlock(a, v)
    pfn = m.pfn_of(v, 0)
    assert m.k.mem_map.flags[pfn] & PG_unevictable
    st = m.stat("/a")
    assert (st["unevictable"], st["active_anon"], st["rss"]) == (3 * P, 0, 3 * P)
    assert m.reclaim(pfn) == 0 and m.stat("/a")["swap"] == 0
    ok(m)
    m.munlock(a, v)
    st = m.stat("/a")
    assert (st["unevictable"], st["inactive_anon"] + st["active_anon"]) == (0, 3 * P)
    ok(m)


def test_move_account_moves_binding_and_stats_not_counters(m):
    a = m.spawn("A", "/a")
    m.write(a, "/data/f", 1)
    v = m.mmap_file(a, "/data/f")
    m.touch(a, v, write=False)
    pfn = m.pfn_of(v, 0)
    k = m.k
    src, dst = m.memcg("/a"), m.memcg("/b")
    assert isolate_lru_page(k, pfn) == 0
    assert mem_cgroup_move_account(k, pfn, 1, src, dst) == 0
    putback_lru_page(k, pfn)
    assert counters(m, "/a") == (32, 32) and counters(m, "/b") == (0, 0)
    sa, sb = m.stat("/a"), m.stat("/b")
    assert (sa["cache"], sa["mapped_file"], sa["pgpgout"]) == (0, 0, 1)
    assert (sb["cache"], sb["mapped_file"], sb["pgpgin"]) == (P, P, 1)
    assert lruvec_of(m, pfn) == "/b"
    # the charge-moving caller settles the counters: to was precharged, from is uncharged
    dst.res.charge(1)
    dst.memsw.charge(1)
    src.res.uncharge(1)
    src.memsw.uncharge(1)
    ok(m)


def test_try_charge_in_flight_is_counted_until_cancelled(m):
    a = m.spawn("A", "/a")
    k = m.k
    from memcgsim.mm.page_alloc import alloc_pages_node
    from memcgsim.mm.swap import put_page

    pfn = alloc_pages_node(k, 0, 0)
    k.current = a
    ret, memcg = mem_cgroup_try_charge(k, pfn, a.mm, 1)
    k.current = None
    assert ret == 0 and memcg.name == "/a"
    assert k.inflight[memcg.id] == 1 and counters(m, "/a") == (32, 32)
    assert check(k, quiescent=False) == []
    # at a quiescent point the open charge is a violation, and so is the page we hold
    assert sorted({v.invariant for v in check(k)}) == ["exactly-once", "refs"]
    mem_cgroup_cancel_charge(k, pfn, memcg)
    put_page(k, pfn)
    assert counters(m, "/a") == (31, 31) and memcg.id not in k.inflight
    ok(m)


def test_private_file_write_charges_an_anonymous_copy(m):
    a = m.spawn("A", "/a")
    b = m.spawn("B", "/b")
    m.write(a, "/data/f", 2)
    m.sync()
    v = m.mmap_file(b, "/data/f", shared=False)
    m.touch(b, v, 0, 1, write=True)            # do_cow_fault
    m.touch(b, v, 1, 1, write=False)           # do_read_fault: the file page itself
    copy, mapped = m.pfn_of(v, 0), m.pfn_of(v, 1)
    assert copy != m.file("/data/f").find_page(0)
    assert mapped == m.file("/data/f").find_page(1)
    sa, sb = m.stat("/a"), m.stat("/b")
    assert (sb["rss"], sb["cache"], sb["pgfault"], sb["mapped_file"]) == (P, 0, 2, 0)
    assert (sa["cache"], sa["mapped_file"]) == (2 * P, P)
    assert m.k.mem_map.mapcount[m.file("/data/f").find_page(0)] == 0
    ok(m)
    m.touch(b, v, 1, 1, write=True)            # write to the read-only file pte: COW
    assert m.pfn_of(v, 1) != mapped
    assert m.stat("/b")["rss"] == 2 * P and m.stat("/a")["mapped_file"] == 0
    ok(m)
    m.munmap(b, v)
    assert m.stat("/b")["rss"] == 0 and m.stat("/a")["cache"] == 2 * P
    ok(m)


def test_truncate_zaps_private_cow_copies_too(m):
    a = m.spawn("A", "/a")
    m.write(a, "/data/f", 1)
    ro = m.mmap_file(a, "/data/f", shared=False)
    m.touch(a, ro, write=False)
    cow = m.mmap_file(a, "/data/f", shared=False)
    m.touch(a, cow, write=True)                 # an anonymous copy in a file mapping
    assert m.stat("/a")["rss"] == P and m.stat("/a")["mapped_file"] == P
    m.truncate("/data/f", 0)
    assert m.pfn_of(ro, 0) == -1 and m.pfn_of(cow, 0) == -1
    st = m.stat("/a")
    assert (st["rss"], st["cache"], st["mapped_file"]) == (0, 0, 0)
    assert a.mm.rss_stat == [0, 0, 0]
    ok(m)


def test_machine_wide_reclaim_swaps_when_ram_runs_out():
    m = Machine(1024, swap_pages=512)            # 4 MiB of RAM, 2 MiB of swap
    m.mkdir("/a")
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 1200)
    assert m.touch(a, v) == 1200
    st = m.stat("/a")
    assert st["rss"] + st["swap"] == 1200 * P and st["swap"] >= 176 * P
    assert a.state == "alive"
    ok(m)


def test_global_oom_kills_the_biggest_task_when_ram_and_swap_run_out():
    m = Machine(1024)                            # 4 MiB of RAM, no swap
    m.mkdir("/a")
    m.mkdir("/b")
    big, small = m.spawn("Big", "/a"), m.spawn("Small", "/b")
    m.touch(big, m.mmap_anon(big, 700))
    v = m.mmap_anon(small, 400)
    assert m.touch(small, v) == 400              # Big is killed machine-wide, Small goes on
    assert big.state == "killed" and small.state == "alive"
    assert m.stat("/a")["rss"] == 0 and m.stat("/b")["rss"] == 400 * P
    ok(m)
