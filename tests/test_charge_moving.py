"""v1 charge moving at task attach (move_charge_at_immigrate) and reparenting at rmdir, 3.17."""

import pytest

from memcgsim import Errno, Machine, check

P = 4096


def counters(m, path):
    c = m.memcg(path)
    return c.res.usage, c.memsw.usage


def ok(m):
    v = check(m.k)
    assert v == [], v


@pytest.fixture
def m():
    m = Machine(4096, swap_pages=256)
    m.mkdir("/a")
    m.mkdir("/b")
    return m


def test_without_move_charge_the_charges_stay(m):
    a = m.spawn("A", "/a")
    m.touch(a, m.mmap_anon(a, 10))
    assert m.move_task(a, "/b") == 0
    assert a.memcg is m.memcg("/b")
    assert counters(m, "/a") == (32, 32) and counters(m, "/b") == (0, 0)
    assert m.stat("/a")["rss"] == 10 * P
    ok(m)


def test_anon_charges_move_with_bit_0(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 10)
    m.touch(a, v)
    m.write_file("/b", "memory.move_charge_at_immigrate", "1")
    assert m.move_task(a, "/b") == 0
    # /b precharged a 32-page batch (its refill drained /a's stock), ten pages moved
    assert counters(m, "/a") == (0, 0) and counters(m, "/b") == (32, 32)
    sa, sb = m.stat("/a"), m.stat("/b")
    assert (sa["rss"], sa["pgpgout"], sb["rss"], sb["pgpgin"]) == (0, 10, 10 * P, 10)
    pfn = m.pfn_of(v, 0)
    assert m.k.memcg_by_id[int(m.k.pc.memcg[pfn])].name == "/b"
    assert m.k.memcg_by_id[int(m.k.mem_map.lru_memcg[pfn])].name == "/b"
    ok(m)


def test_swap_records_move_with_the_task(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 2)
    m.touch(a, v)
    m.reclaim(m.pfn_of(v, 0))
    slot = m.swap_entry_of(v, 0)
    assert counters(m, "/a") == (31, 32)
    m.write_file("/b", "memory.move_charge_at_immigrate", "1")
    assert m.move_task(a, "/b") == 0
    assert m.k.swap_cgroup.lookup(slot) == m.memcg("/b").id
    # /b: one page and one swap record, plus the rest of its 32-page precharge batch
    assert counters(m, "/b") == (31, 32) and counters(m, "/a") == (0, 0)
    assert m.stat("/b")["swap"] == P and m.stat("/a")["swap"] == 0
    assert m.memcg("/b").swap_css_refs == 1 and m.memcg("/a").swap_css_refs == 0
    ok(m)
    m.munmap(a, v)
    assert counters(m, "/b") == (30, 30) and m.stat("/b")["swap"] == 0
    ok(m)


def test_file_pages_move_with_bit_1_even_unmapped_ones(m):
    a = m.spawn("A", "/a")
    m.write(a, "/data/f", 3)
    v = m.mmap_file(a, "/data/f")
    m.touch(a, v, 0, 1, write=False)           # one page mapped, two only cached
    m.write_file("/b", "memory.move_charge_at_immigrate", "2")
    assert m.move_task(a, "/b") == 0
    sa, sb = m.stat("/a"), m.stat("/b")
    assert (sa["cache"], sa["mapped_file"]) == (0, 0)
    assert (sb["cache"], sb["mapped_file"]) == (3 * P, P)
    ok(m)


def test_anon_only_leaves_file_pages(m):
    a = m.spawn("A", "/a")
    m.write(a, "/data/f", 2)
    m.touch(a, m.mmap_file(a, "/data/f"), write=False)
    m.touch(a, m.mmap_anon(a, 1))
    m.write_file("/b", "memory.move_charge_at_immigrate", "1")
    assert m.move_task(a, "/b") == 0
    assert m.stat("/a")["cache"] == 2 * P and m.stat("/b")["rss"] == P
    ok(m)


def test_a_move_that_does_not_fit_fails_and_changes_nothing():
    m = Machine(4096)
    m.mkdir("/a")
    m.mkdir("/b")
    a = m.spawn("A", "/a")
    m.touch(a, m.mmap_anon(a, 10))
    m.write_file("/b", "memory.limit_in_bytes", f"{5 * P}")
    m.write_file("/b", "memory.move_charge_at_immigrate", "1")
    assert m.move_task(a, "/b") == -Errno.ENOMEM
    assert a.memcg is m.memcg("/a")
    assert counters(m, "/b") == (0, 0) and m.stat("/a")["rss"] == 10 * P
    # the bulk precharge, then the page-by-page one past five pages, hit the limit
    assert m.memcg("/b").res.failcnt > 0
    ok(m)


def test_rmdir_refuses_tasks_and_children(m):
    a = m.spawn("A", "/a")
    assert m.rmdir("/a") == -Errno.EBUSY
    m.move_task(a, "/b")
    m.mkdir("/a/c")
    assert m.rmdir("/a") == -Errno.EBUSY
    assert m.rmdir("/a/c") == 0 and m.rmdir("/a") == 0
    assert "/a" not in m.k.memcg_by_name
    assert m.rmdir("/") == -Errno.EBUSY


def test_rmdir_reparents_to_root_in_flat_mode(m):
    a = m.spawn("A", "/a")
    v = m.mmap_anon(a, 3)
    m.touch(a, v)
    m.write(a, "/data/f", 2)
    m.move_task(a, "/b")
    dead = m.memcg("/a")
    assert m.rmdir("/a") == 0
    assert (dead.res.usage, dead.memsw.usage) == (0, 0)
    root = m.stat("/")
    assert (root["rss"], root["cache"]) == (3 * P, 2 * P)
    pfn = m.pfn_of(v, 0)
    assert m.k.pc.memcg[pfn] == m.memcg("/").id and not dead.online
    ok(m)


def test_rmdir_reparents_to_a_hierarchical_parent_without_counter_traffic(m):
    m.set_use_hierarchy("/b", True)
    m.mkdir("/b/c")
    t = m.spawn("T", "/b/c")
    v = m.mmap_anon(t, 4)
    m.touch(t, v)
    m.reclaim(m.pfn_of(v, 0))
    m.move_task(t, "/b")
    assert counters(m, "/b") == (31, 32) and counters(m, "/b/c") == (31, 32)
    dead = m.memcg("/b/c")
    assert m.rmdir("/b/c") == 0
    # the pages and the stock are /b's now; the swap record still names the dead child,
    # whose memsw (and /b's through it) stays charged until the slot is freed
    assert counters(m, "/b") == (3, 4)
    assert (dead.res.usage, dead.memsw.usage) == (0, 1)
    st = m.stat("/b")
    assert (st["rss"], st["total_rss"], st["swap"]) == (3 * P, 3 * P, 0)
    ok(m)
    m.munmap(t, v)
    assert counters(m, "/b") == (0, 0) and dead.memsw.usage == 0
    ok(m)


def test_6_1_precharge_does_not_retry_so_it_never_oom_kills():
    """6.x precharges page by page with __GFP_NORETRY: a move that does not fit fails with
    -ENOMEM and kills nobody (3.17 retried, but its OOM needs a user fault)."""
    from memcgsim import Machine

    m = Machine(4096, profile="6.1", cgroup="v1")
    m.mkdir("/c")
    assert m.write_file("/c", "memory.limit_in_bytes", str(64 * 4096)) == 0
    assert m.write_file("/c", "memory.move_charge_at_immigrate", "1") == 0
    victim = m.spawn("V", "/c")
    m.touch(victim, m.mmap_anon(victim, 40))
    mover = m.spawn("M", "/")
    m.touch(mover, m.mmap_anon(mover, 40))
    assert m.move_task(mover, "/c") == -Errno.ENOMEM
    assert victim.state == "alive" and mover.state == "alive" and mover.memcg.name == "/"
    assert m.check() == []
