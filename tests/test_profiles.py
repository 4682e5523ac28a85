"""The kernel profiles side by side: the same operations, and the numbers that differ.

3.17 (res_counter, try/commit/cancel, reparenting), 6.1 (page_counter, charge at instantiation,
migration force-charges the new page) and 6.12 (migration transfers the charge); v1 memsw against
v2's swap counter. Real-kernel figures are from ../shared/spec/real-kernel-notes.md.
"""

import numpy as np
import pytest

from memcgsim import Errno, Machine, check
from memcgsim.mm.migrate import migrate_pages

P = 4096
M = 1 << 20
KINDS = [("3.17", "v1"), ("6.1", "v1"), ("6.1", "v2"), ("6.12", "v2")]


def machine(profile, cgroup, **kw):
    kw.setdefault("swap_pages", 1024)
    m = Machine(kw.pop("pages", 8192), profile=profile, cgroup=cgroup, **kw)
    m.mkdir("/a")
    m.mkdir("/b")
    return m


def current(m, path):
    name = "memory.current" if m.k.cgroup_v2 else "memory.usage_in_bytes"
    return int(m.read_file(path, name))


def ok(m):
    assert check(m.k) == []


@pytest.mark.parametrize("profile,cgroup,batch", [
    ("3.17", "v1", 32), ("6.1", "v1", 64), ("6.1", "v2", 64), ("6.12", "v2", 64)])
def test_one_page_charges_a_whole_stock_batch(profile, cgroup, batch):
    m = machine(profile, cgroup)
    t = m.spawn("A", "/a")
    m.touch(t, m.mmap_anon(t, 1))
    assert current(m, "/a") == batch * P
    # 6.x also charges kernel memory: the task's stack and slab, its PGD, and the PUD, PMD and
    # PTE pages of the fault (10 pages)
    kmem = 10 if m.k.profile.kmem_accounting else 0
    assert m.k.stocks[0].nr_pages == batch - 1 - kmem
    ok(m)


def _migrate_trace(profile, cgroup):
    m = machine(profile, cgroup, nodes=2, pages=8192)
    t = m.spawn("A", "/a")
    v = m.mmap_anon(t, 4)
    m.touch(t, v)
    before = current(m, "/a")
    m.k.trace = []
    pfns = [m.pfn_of(v, i) for i in range(4)]
    assert m.k.run(migrate_pages(m.k, pfns, 1), t) == 0
    trace = m.k.trace
    m.k.trace = None
    assert all(m.k.page_to_nid(m.pfn_of(v, i)) == 1 for i in range(4))
    assert current(m, "/a") == before
    ok(m)
    return [(name, changes) for name, _, changes in trace]


def _counter_deltas(entry, key=("/a", "res")):
    return [a - b for k, b, a in entry if k == key]


def test_migration_double_charges_on_6_1_only():
    """5.8-6.6 force-charge the new page; the old one is uncharged when it is freed."""
    t61 = _migrate_trace("6.1", "v2")
    migr = [c for name, c in t61 if name == "mem_cgroup_migrate"]
    assert [_counter_deltas(c) for c in migr] == [[1]] * 4
    frees = [c for name, c in t61 if name in ("mem_cgroup_uncharge", "mem_cgroup_uncharge_list")]
    assert sum(sum(_counter_deltas(c)) for c in frees) == -4
    # 6.12 (transfer) and 3.17 (transfer): mem_cgroup_migrate changes no counter
    for profile, cgroup in (("6.12", "v2"), ("3.17", "v1")):
        trace = _migrate_trace(profile, cgroup)
        migr = [c for name, c in trace if name == "mem_cgroup_migrate"]
        assert len(migr) == 4
        for c in migr:
            assert not [k for k, b, a in c if k[1] in ("res", "memsw", "swap.usage")], c


def test_migration_never_fails_on_6_1_at_the_limit():
    """The forced charge may take usage past memory.max for a moment (spec 7.4, 6.x)."""
    m = machine("6.1", "v2", nodes=2)
    assert m.write_file("/a", "memory.max", f"{128 * P}") == 0
    t = m.spawn("A", "/a")
    v = m.mmap_anon(t, 64)
    assert m.touch(t, v) == 64
    assert current(m, "/a") == 128 * P          # two batches: 64 pages and 10 of kmem
    assert m.migrate(t, v, 1) == 0
    assert current(m, "/a") == 128 * P
    assert int(m.read_file("/a", "memory.peak")) == 129 * P
    ok(m)


def _swap_out_one(m, t, v):
    pfn = m.pfn_of(v, 0)
    assert m.reclaim(pfn) == 1
    return pfn


def test_swap_is_charged_at_slot_allocation_on_v2_at_swapout_on_v1():
    for profile, cgroup, where in (("6.12", "v2", "mem_cgroup_try_charge_swap"),
                                   ("6.1", "v2", "mem_cgroup_try_charge_swap"),
                                   ("6.1", "v1", "mem_cgroup_swapout"),
                                   ("3.17", "v1", "mem_cgroup_swapout")):
        m = machine(profile, cgroup)
        t = m.spawn("A", "/a")
        v = m.mmap_anon(t, 2)
        m.touch(t, v)
        m.k.trace = []
        _swap_out_one(m, t, v)
        trace = m.k.trace
        m.k.trace = None
        counter = "swap.usage" if cgroup == "v2" else "swap"
        changed = [name for name, _, c in trace
                   for k, b, a in c if k == ("/a", counter) and a == b + 1]
        assert changed == [where], (profile, cgroup, changed)
        ok(m)


def test_v2_swap_cache_page_counts_in_memory_and_swap():
    m = machine("6.12", "v2")
    t = m.spawn("A", "/a")
    v = m.mmap_anon(t, 1)
    m.touch(t, v)
    _swap_out_one(m, t, v)
    assert m.read_file("/a", "memory.swap.current") == f"{P}\n"
    assert current(m, "/a") == 63 * P      # the page is gone; the stock's 63 pages remain
    m.touch(t, v, write=False)             # swap it back in, read fault: the slot stays
    stat = m.stat("/a")
    assert stat["swapcached"] == P and stat["anon"] == P
    assert m.read_file("/a", "memory.swap.current") == f"{P}\n"
    m.touch(t, v)                          # a write fault frees the slot...
    assert m.stat("/a")["swapcached"] == 0
    # ...into the CPU's swap slot cache, which keeps it, and its swap charge, until 64 more
    # come or the cache is drained (the real kernel: 64 pages of a 20 MiB tmpfs file read
    # back in stay charged to swap)
    assert m.k.swap.slots_ret[0] == [int(np.flatnonzero(m.k.swap.swap_map)[1])]
    assert m.read_file("/a", "memory.swap.current") == f"{P}\n"
    ok(m)


# ---------------------------------------------------------------- OOM, as the real kernel shows it


def test_v2_oom_kill_without_swap_matches_the_real_kernel():
    """memory.max 30M, no swap, 50 MiB anonymous: killed, peak 31457280, oom 1, oom_kill 1,
    max 35 (every run of 6.1 and 6.12: the charge goes on retrying after the task killed
    itself, as its memory goes only when it exits)."""
    for profile in ("6.1", "6.12"):
        m = machine(profile, "v2", pages=256 * 256, swap_pages=0)
        assert m.write_file("/a", "memory.max", "30M") == 0
        t = m.spawn("A", "/a")
        # 24 pages of the 30M are the task's kernel memory: 7 of its own, 17 page tables
        assert m.touch(t, m.mmap_anon(t, 50 * 256)) == 30 * 256 - 24
        assert t.state == "killed"
        assert m.read_file("/a", "memory.peak") == "31457280\n"
        ev = dict(line.split() for line in m.read_file("/a", "memory.events").splitlines())
        assert ev == {"low": "0", "high": "0", "max": "35", "oom": "1", "oom_kill": "1",
                      "oom_group_kill": "0"}
        assert m.read_file("/a", "memory.events.local") == m.read_file("/a", "memory.events")
        # what stays charged is the stock: the victim's kernel memory went back into it
        assert m.read_file("/a", "memory.current") == f"{24 * P}\n"
        ok(m)


def test_v1_on_6_1_oom_kill_failcnt_matches_the_real_kernel():
    """limit 30M, 50 MiB anonymous: killed; failcnt 36 (every run of the real 6.1: 18 before
    the kill and 18 after it, oom-with-low-rss) and oom_control oom_kill 1."""
    m = machine("6.1", "v1", pages=256 * 256, swap_pages=0)
    assert m.write_file("/a", "memory.limit_in_bytes", "30M") == 0
    t = m.spawn("A", "/a")
    m.touch(t, m.mmap_anon(t, 50 * 256))
    assert t.state == "killed"
    assert m.read_file("/a", "memory.failcnt") == "36\n"
    assert m.read_file("/a", "memory.oom_control") == (
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert m.read_file("/a", "memory.max_usage_in_bytes") == "31457280\n"
    ok(m)


def test_3_17_oom_records_in_the_fault_and_kills_at_its_end():
    m = machine("3.17", "v1", pages=256 * 256, swap_pages=0)
    assert m.write_file("/a", "memory.limit_in_bytes", "30M") == 0
    t = m.spawn("A", "/a")
    m.touch(t, m.mmap_anon(t, 50 * 256))
    assert t.state == "killed"
    # 3.17's oom_control has no oom_kill line; its charge loop fails the batch, the exact
    # charge and 5 retries (MEM_CGROUP_RECLAIM_RETRIES) before it records the OOM
    assert m.read_file("/a", "memory.oom_control") == "oom_kill_disable 0\nunder_oom 0\n"
    assert m.read_file("/a", "memory.failcnt") == "7\n"
    ok(m)


def test_v2_oom_group_kills_the_whole_group():
    m = machine("6.12", "v2", swap_pages=0)
    assert m.write_file("/a", "memory.max", f"{256 * P}") == 0
    assert m.write_file("/a", "memory.oom.group", "1") == 0
    a, b = m.spawn("A", "/a"), m.spawn("B", "/a")
    m.touch(b, m.mmap_anon(b, 10))
    m.touch(a, m.mmap_anon(a, 300))
    assert a.state == "killed" and b.state == "killed"
    ev = m.read_file("/a", "memory.events")
    # the victim is killed first, then every member of the group, the victim again: the
    # real kernel counts 4 kills for a group of 3 (conformance B1-12 under memcgsim validate)
    assert "oom 1\noom_kill 3\noom_group_kill 1\n" in ev
    ok(m)


# ---------------------------------------------------------------- task moves and rmdir


def test_task_move_v2_leaves_charges_v1_moves_them():
    for profile, cgroup in KINDS:
        m = machine(profile, cgroup, swap_pages=0)
        if cgroup == "v1":
            assert m.write_file("/b", "memory.move_charge_at_immigrate", "1") == 0
        t = m.spawn("A", "/a")
        m.touch(t, m.mmap_anon(t, 10))
        assert m.move_task(t, "/b") == 0
        anon = "rss" if cgroup == "v1" else "anon"
        moved = m.stat("/b")[anon], m.stat("/a")[anon]
        assert moved == ((10 * P, 0) if cgroup == "v1" else (0, 10 * P)), (profile, cgroup)
        ok(m)


def test_v2_move_follows_the_real_kernel_hierarchy_case():
    """p (max 60M) with p/a and p/b: charges stay where they were made when A moves; A's later
    allocation lands in p/b; an OOM in p counts max/oom in p and oom_kill in p and p/b."""
    m = Machine(256 * 256, profile="6.12", cgroup="v2")
    for path in ("/p", "/p/a", "/p/b"):
        m.mkdir(path)
    assert m.write_file("/", "cgroup.subtree_control", "+memory") == 0
    assert m.write_file("/p", "cgroup.subtree_control", "+memory") == 0
    assert m.write_file("/p", "memory.max", "60M") == 0
    a, b = m.spawn("A", "/p/a"), m.spawn("B", "/p/b")
    m.touch(a, m.mmap_anon(a, 20 * 256))
    assert m.write(b, m.create("/dev/shm/x", tmpfs=True).name, 20 * 256) == 20 * 256
    assert m.move_task(a, "/p/b") == 0
    m.touch(a, m.mmap_anon(a, 10 * 256))
    assert m.stat("/p/a")["anon"] == 20 * M and m.stat("/p/b")["anon"] == 10 * M
    assert m.stat("/p/b")["shmem"] == 20 * M
    m.touch(a, m.mmap_anon(a, 30 * 256))
    assert a.state == "killed"
    ev = lambda p: dict(x.split() for x in m.read_file(p, "memory.events").splitlines())  # noqa
    evl = lambda p: dict(x.split() for x in m.read_file(p, "memory.events.local").splitlines())  # noqa
    assert ev("/p")["oom"] == "1" and ev("/p")["oom_kill"] == "1" and int(ev("/p")["max"]) > 0
    assert evl("/p/b")["oom_kill"] == "1" and evl("/p/b")["oom"] == "0"
    assert ev("/p/a")["oom_kill"] == "0"
    m.exit(b)
    assert m.stat("/p/b")["shmem"] == 20 * M       # tmpfs stays with p/b until unlinked
    m.unlink("/dev/shm/x")
    assert m.stat("/p/b")["shmem"] == 0
    ok(m)


def test_rmdir_reparents_on_3_17_and_keeps_a_dead_memcg_on_6_x():
    for profile, cgroup in KINDS:
        m = machine(profile, cgroup, swap_pages=0)
        t = m.spawn("A", "/a")
        f = m.create("/data/f")
        assert m.write(t, f.name, 8) == 8
        m.exit(t)
        dead = m.memcg("/a")
        assert m.rmdir("/a") == 0
        parent = m.k.root_mem_cgroup
        pages = [f.find_page(i) for i in range(8)]
        owners = {int(m.k.pc.memcg[p]) for p in pages}
        if profile == "3.17":
            assert owners == {parent.id}
        else:
            assert owners == {dead.id} and not dead.online
            assert dead.res.usage == 8          # the stock was drained at offline
            assert parent.res.usage == 8        # still counted in the parent
        m.unlink(f.name)
        assert dead.res.usage == 0
        ok(m)


def test_rmdir_is_busy_with_tasks_or_children():
    for profile, cgroup in KINDS:
        m = machine(profile, cgroup)
        m.mkdir("/a/c")
        assert m.rmdir("/a") == -Errno.EBUSY
        t = m.spawn("A", "/a/c")
        assert m.rmdir("/a/c") == -Errno.EBUSY
        m.exit(t)
        assert m.rmdir("/a/c") == 0 and m.rmdir("/a") == 0


# ---------------------------------------------------------------- swap-in ownership


def test_6_x_swapin_is_charged_to_the_recorded_owner_at_swap_cache_insertion():
    m = machine("6.12", "v2")
    t = m.spawn("A", "/a")
    v = m.mmap_anon(t, 1)
    m.touch(t, v)
    _swap_out_one(m, t, v)
    assert m.move_task(t, "/b") == 0
    m.touch(t, v, write=False)
    pfn = m.pfn_of(v, 0)
    assert m.k.pc.memcg[pfn] == m.memcg("/a").id
    assert m.stat("/a")["anon"] == P and m.stat("/b")["anon"] == 0
    ok(m)


def test_6_x_charges_read_ahead_pages_3_17_leaves_them_uncharged():
    from memcgsim.mm.page_cgroup import PCG_USED

    for profile, cgroup in KINDS:
        m = machine(profile, cgroup)
        t = m.spawn("A", "/a")
        v = m.mmap_anon(t, 8)
        m.touch(t, v)
        for i in range(8):
            assert m.reclaim(m.pfn_of(v, i)) == 1
        m.touch(t, v, start=0, count=1, write=False)   # reads the cluster ahead
        # slots 1-7 form the first aligned cluster of 8 (slot 0 is the swap header)
        cached = [int(p) for p in m.k.swap.cache if p >= 0]
        assert len(cached) == 7
        used = sum(1 for p in cached if m.k.pc.flags[p] & PCG_USED)
        assert used == (1 if profile == "3.17" else 7), (profile, cgroup)
        ok(m)


@pytest.mark.parametrize("profile,cgroup", KINDS)
def test_a_read_after_a_write_activates_the_page_on_3_17_only(profile, cgroup):
    """3.17's write marks the page accessed, so the read that follows activates it; 6.x's
    write does not (FGP_WRITEBEGIN has no FGP_ACCESSED): the read only sets PG_referenced.
    The real 6.1 shows inactive_file 20 MiB, active_file 0 after a 20 MiB write and read."""
    m = machine(profile, cgroup)
    t = m.spawn("A", "/a")
    m.write(t, "/data/f", 20)
    m.read(t, "/data/f")
    stat = m.stat("/a")
    lists = stat["active_file"], stat["inactive_file"]
    assert lists == ((20 * P, 0) if profile == "3.17" else (0, 20 * P))
    ok(m)


def test_oom_skips_costly_order_is_what_the_oom_path_reads():
    """A 512-page THP charge that fails in a madvised VMA: with oom_skips_costly_order (6.x)
    the memcg OOM declines it and the fault falls back to small pages, whose order-0 charge
    then OOMs (757 pages faulted); without it the OOM runs for the THP charge, killing the
    task, whose fallback small page then still fits (513 pages: one huge page and that one)."""
    import dataclasses

    from memcgsim import Machine

    seen = {}
    for skip in (True, False):
        m = Machine(8192, profile="6.12", cgroup="v2", thp=True)
        m.k.profile = dataclasses.replace(m.k.profile, oom_skips_costly_order=skip)
        m.mkdir("/a")
        m.write_file("/", "cgroup.subtree_control", "+memory")
        m.write_file("/a", "memory.max", str(3 << 20))
        t = m.spawn("A", cgroup="/a")
        n = m.touch(t, m.mmap_anon(t, 1024, hugepage=True))
        assert t.state == "killed"
        events = dict(line.split() for line in m.read_file("/a", "memory.events").splitlines())
        seen[skip] = (n, [n for _, n in m.k.oom_charges], events["oom"], events["oom_kill"])
    assert seen == {True: (757, [1], "1", "1"), False: (513, [512], "1", "1")}


@pytest.mark.parametrize("profile,cgroup", [("3.17", "v1"), ("6.12", "v2")])
def test_an_anonymous_fault_charges_under_its_kernels_names(profile, cgroup):
    """3.17's do_anonymous_page reserves with mem_cgroup_try_charge and commits under the pte
    lock; 6.x's charges in one step with mem_cgroup_charge, and has no try_charge at all."""
    from memcgsim.errors import ModelBug
    from memcgsim.mm.gfp import GFP_KERNEL
    from memcgsim.mm.memcontrol import mem_cgroup_try_charge
    from memcgsim.mm.memory import handle_mm_fault

    m = machine(profile, cgroup)
    t = m.spawn("A", "/a")
    v = m.mmap_anon(t, 2)
    m.k.trace = []
    assert m.k.run(handle_mm_fault(m.k, v, v.start, True), t) == 0
    names = [name for name, _, _ in m.k.trace]
    m.k.trace = None
    if profile == "3.17":
        assert names == ["mem_cgroup_try_charge", "mem_cgroup_commit_charge"]
    else:
        assert names == ["mem_cgroup_charge"]
        with pytest.raises(ModelBug, match="mem_cgroup_try_charge"):
            mem_cgroup_try_charge(m.k, m.pfn_of(v, 0), t.mm, GFP_KERNEL)
    ok(m)
