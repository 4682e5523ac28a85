"""Each field of KernelProfile is a behaviour of its own, not part of one "era" switch.

For every field: take the real profile on which the field means something, make a variant that
differs in that one field only (`flipped`), run the same small workload on both, and assert
the exact values on each side. A meta-test keeps the table complete. Where the flip works on
one profile only (the field is tied to another one there), the test says why. A field the model
does not read is marked xfail(strict=True), so that the mark has to go once the model reads it.
"""

import dataclasses
import pathlib
import re

import pytest

import memcgsim
from memcgsim import Errno, InvalidRequest, Machine, check
from memcgsim.mm.memcontrol import MEM_CGROUP_STAT_CACHE, MEM_CGROUP_STAT_RSS
from memcgsim.profile import (
    PAGE_COUNTER_MAX_BYTES,
    PROFILES,
    ULLONG_MAX,
    V2_STAT_EVENTS_6_1,
    V2_STAT_KEYS_6_1,
    KernelProfile,
)

P = 4096
FIELDS = [f.name for f in dataclasses.fields(KernelProfile)]

#: field name -> the test showing that it changes what the model does
FIELD_TESTS: dict = {}

def covers(field):
    """Register the decorated test as the one for `field`."""
    def register(fn):
        assert field not in FIELD_TESTS, f"two tests for {field}"
        FIELD_TESTS[field] = fn
        return fn
    return register


def flipped(profile, field, value):
    """profile with `field` set to value and every other field as it is (the one place that
    builds a variant, so that renaming a field means editing only this file's field names)."""
    assert getattr(profile, field) != value, f"{field} is {value!r} already: not a flip"
    return dataclasses.replace(profile, **{field: value})


def boot(monkeypatch, profile, pages=4096, **kw):
    """A Machine running `profile`. The profile is put in PROFILES under its name for the rest
    of the test, so what Kernel() reads while it boots (cgroup_versions, counter) is the
    variant's too, as is every later k.profile.<field>."""
    monkeypatch.setitem(PROFILES, profile.name, profile)
    return Machine(pages, profile=profile.name, **kw)


def boot_v2(monkeypatch, profile, pages=4096, **kw):
    """A v2 machine with /a under a root that enables +memory."""
    m = boot(monkeypatch, profile, pages, cgroup="v2", **kw)
    m.mkdir("/a")
    assert m.write_file("/", "cgroup.subtree_control", "+memory") == 0
    return m


def events(m, path, name="memory.events"):
    return dict(line.split() for line in m.read_file(path, name).splitlines())


def traced(m, run):
    """The memcg API calls `run()` makes: [(name, [((memcg, counter), before, after)...])]."""
    m.k.trace = []
    try:
        run()
        return [(name, changes) for name, _, changes in m.k.trace]
    finally:
        m.k.trace = None


# ---------------------------------------------------------------- the table is complete


def test_every_profile_field_has_a_test_here():
    missing = [f for f in FIELDS if f not in FIELD_TESTS]
    unknown = sorted(set(FIELD_TESTS) - set(FIELDS))
    assert (missing, unknown) == ([], [])


SOURCES = {path: path.read_text()
           for path in pathlib.Path(memcgsim.__file__).parent.rglob("*.py")
           if path.name not in ("profile.py", "checker.py")}


@pytest.mark.parametrize("field", FIELDS)
def test_the_model_reads_the_field(field):
    """A read of profile.<field> (k.profile., prof., PROFILES[...].) somewhere in
    src/memcgsim outside profile.py and checker.py."""
    read = re.compile(rf"(\bprofile|\bprof|\bPROFILES\[[^]]*\])\.{field}\b")
    assert [p.name for p, text in SOURCES.items() if read.search(text)]


# ---------------------------------------------------------------- identity and interfaces


@covers("name")
def test_name_is_what_the_demo_prints(monkeypatch):
    from memcgsim import demo

    def kernel_line(profile):
        monkeypatch.setitem(PROFILES, "3.17", profile)   # the demo boots Machine() (3.17)
        return demo.run().lines[2]

    tail = ", cgroup v1, swap accounting on, CHARGE_BATCH 32 pages"
    assert kernel_line(PROFILES["3.17"]) == "kernel   3.17" + tail
    assert kernel_line(flipped(PROFILES["3.17"], "name", "3.17-x")) == "kernel   3.17-x" + tail


@covers("cgroup_versions")
def test_cgroup_versions_decide_which_interfaces_a_machine_offers(monkeypatch):
    real = PROFILES["6.1"]
    assert boot(monkeypatch, real, cgroup="v1").k.cgroup == "v1"
    assert boot(monkeypatch, real).k.cgroup == "v2"                # the default
    v2_only = flipped(real, "cgroup_versions", ("v2",))
    with pytest.raises(InvalidRequest) as err:
        boot(monkeypatch, v2_only, cgroup="v1")
    assert str(err.value) == "kernel 6.1 has no cgroup v1 memory controller (it has v2)"
    assert boot(monkeypatch, flipped(real, "cgroup_versions", ("v1",))).k.cgroup == "v1"


# ---------------------------------------------------------------- the charge path


@covers("charge_batch")
@pytest.mark.parametrize("vectorized", [True, False])
def test_charge_batch_is_what_one_page_precharges(monkeypatch, vectorized):
    def one_page(profile):
        m = boot_v2(monkeypatch, profile, vectorized=vectorized)
        t = m.spawn("A", "/a")
        m.touch(t, m.mmap_anon(t, 1))
        assert check(m.k) == []
        # the stock keeps the batch less the page and the 10 pages of kernel memory
        return m.read_file("/a", "memory.current"), m.k.stocks[0].nr_pages

    real = PROFILES["6.12"]
    assert one_page(real) == (f"{64 * P}\n", 53)
    assert one_page(flipped(real, "charge_batch", 32)) == (f"{32 * P}\n", 21)


@covers("reclaim_retries")
def test_reclaim_retries_count_the_reclaim_rounds_before_the_oom(monkeypatch):
    def oom(profile):
        m = boot_v2(monkeypatch, profile)
        assert m.write_file("/a", "memory.max", str(1 << 20)) == 0
        t = m.spawn("A", "/a")
        assert m.touch(t, m.mmap_anon(t, 512)) == 246 and t.state == "killed"
        assert check(m.k) == []
        ev = events(m, "/a")
        return ev["max"], ev["oom"], ev["oom_kill"]

    real = PROFILES["6.12"]
    # before the kill: 1 + a round after the drain + MAX_RECLAIM_RETRIES; after it (the task
    # killed itself and its memory goes only at its exit): MAX_RECLAIM_RETRIES + 1
    assert oom(real) == ("35", "1", "1")
    assert oom(flipped(real, "reclaim_retries", 5)) == ("13", "1", "1")


@covers("counter")
def test_counter_decides_hierarchy(monkeypatch):
    """3.19 brought page_counter while the rest of 3.17 stayed: flip it on 3.17. What an
    unlimited limit reads as is v1_unlimited_bytes's (3.17's ULLONG_MAX on both sides)."""
    def v1_files(profile):
        m = boot(monkeypatch, profile)
        m.mkdir("/a")
        t = m.spawn("A", "/a")
        m.touch(t, m.mmap_anon(t, 3))
        assert check(m.k) == []
        return (m.read_file("/a", "memory.use_hierarchy"),
                m.write_file("/a", "memory.use_hierarchy", "0"),
                m.read_file("/a", "memory.limit_in_bytes"),
                m.read_file("/a", "memory.usage_in_bytes"))

    real = PROFILES["3.17"]
    assert v1_files(real) == ("0\n", 0, f"{ULLONG_MAX}\n", f"{32 * P}\n")
    assert v1_files(flipped(real, "counter", "page_counter")) == (
        "1\n", -Errno.EINVAL, f"{ULLONG_MAX}\n", f"{32 * P}\n")


@covers("charge_loop")
def test_charge_loop_decides_which_counter_fails_first(monkeypatch):
    """With memory and memsw limits equal, 3.17's loop fails on res (memory.failcnt), 6.x's,
    which charges memsw first, on memsw (memory.memsw.failcnt)."""
    def at_the_limit(profile):
        m = boot(monkeypatch, profile, swap_pages=256)
        m.mkdir("/a")
        assert m.write_file("/a", "memory.limit_in_bytes", str(1 << 20)) == 0
        assert m.write_file("/a", "memory.memsw.limit_in_bytes", str(1 << 20)) == 0
        t = m.spawn("A", "/a")
        assert m.touch(t, m.mmap_anon(t, 512)) == 256 and t.state == "killed"
        assert check(m.k) == []
        return (m.read_file("/a", "memory.failcnt"), m.read_file("/a", "memory.memsw.failcnt"),
                m.memcg("/a").memory_events["max"])

    real = PROFILES["3.17"]
    assert at_the_limit(real) == ("7\n", "0\n", 0)
    # 6.x: a `max` event per reclaim round, too, 7 before the kill and 6 after it (3.17's 5
    # retries)
    assert at_the_limit(flipped(real, "charge_loop", "6.x")) == ("0\n", "14\n", 13)


@covers("charge_at_instantiation")
def test_charge_at_instantiation_charges_in_one_step_and_read_ahead_too(monkeypatch):
    """Flipped on 6.12 (to 3.17's two steps). Not on 3.17 (to one step): with 3.17's
    charge-type stats the read-ahead pages charged in the swap cache count as cache, and the
    checker finds rss and cache wrong (see test_stats_...)."""
    def fault_and_swapin(profile):
        m = boot_v2(monkeypatch, profile, swap_pages=64, vectorized=False)
        t = m.spawn("A", "/a")
        v = m.mmap_anon(t, 16)
        calls = [name for name, _ in traced(m, lambda: m.touch(t, v, 0, 1))]
        m.touch(t, v)
        for i in range(16):
            assert m.reclaim(m.pfn_of(v, i)) == 1
        m.touch(t, v, 0, 1, write=False)       # swap-in: page_cluster 3 reads 7 pages ahead
        assert check(m.k) == []
        st = m.stat("/a")
        return calls, st["anon"] // P, st["swapcached"] // P

    real = PROFILES["6.12"]
    assert fault_and_swapin(real) == (["mem_cgroup_charge"], 1, 7)
    assert fault_and_swapin(flipped(real, "charge_at_instantiation", False)) == (
        ["mem_cgroup_try_charge", "mem_cgroup_commit_charge"], 1, 1)


def test_usage_within_limit_follows_from_the_charge_behaviours(monkeypatch):
    """Not a field: whether usage may pass a limit follows from the charge loop, migration and
    page cache replacement, and the checker holds the model to it. memory.max set below what
    tmpfs holds (nothing to reclaim or kill) is over the limit on 6.12 and a violation on a
    profile that claims usage stays within it."""
    assert PROFILES["3.17"].usage_within_limit
    assert not PROFILES["6.1"].usage_within_limit and not PROFILES["6.12"].usage_within_limit
    p317 = PROFILES["3.17"]
    assert not flipped(p317, "migrate", "force-charge").usage_within_limit
    assert not flipped(p317, "replace_page_cache", "force-charge").usage_within_limit
    assert not flipped(p317, "charge_loop", "6.x").usage_within_limit

    def over_max(profile):
        m = boot_v2(monkeypatch, profile)
        t = m.spawn("A", "/a")
        assert m.write(t, "/dev/shm/s", 4) == 4
        assert m.move_task(t, "/") == 0
        assert m.write_file("/a", "memory.max", "0") == 0
        return m.read_file("/a", "memory.current"), events(m, "/a")["oom"], check(m.k)

    real = PROFILES["6.12"]
    assert over_max(real) == (f"{11 * P}\n", "1", [])
    monkeypatch.setattr(type(real), "usage_within_limit", property(lambda self: True))
    current, oom, violations = over_max(real)
    assert (current, oom) == (f"{11 * P}\n", "1")
    assert [(v.invariant, v.message) for v in violations] == [
        ("limit", "/a res 11 over limit 0")]


@covers("kmem_accounting")
@pytest.mark.parametrize("vectorized", [True, False])
def test_kmem_accounting_charges_stacks_and_page_tables(monkeypatch, vectorized):
    def kernel_memory(profile):
        m = boot_v2(monkeypatch, profile, vectorized=vectorized)
        t = m.spawn("A", "/a")
        m.touch(t, m.mmap_anon(t, 4))
        assert check(m.k) == []
        st = m.stat("/a")
        return (st["anon"] // P, st["kernel"] // P, st["kernel_stack"] // P,
                st["pagetables"] // P, m.read_file("/a", "memory.current"),
                m.k.stocks[0].nr_pages)

    real = PROFILES["6.12"]
    assert kernel_memory(real) == (4, 10, 4, 3, f"{64 * P}\n", 50)
    assert kernel_memory(flipped(real, "kmem_accounting", False)) == (
        4, 0, 0, 0, f"{64 * P}\n", 60)


def _thp_oom(monkeypatch, profile):
    """A 1024-page MADV_HUGEPAGE region under a 3 MiB memory.max: (pages faulted, the
    charges that OOMed, oom events, oom_kill events)."""
    m = boot_v2(monkeypatch, profile, pages=8192, thp=True)
    assert m.write_file("/a", "memory.max", str(3 << 20)) == 0
    t = m.spawn("A", "/a")
    n = m.touch(t, m.mmap_anon(t, 1024, hugepage=True))
    assert t.state == "killed" and check(m.k) == []
    ev = events(m, "/a")
    return n, [n for _, n in m.k.oom_charges], ev["oom"], ev["oom_kill"]


@covers("costly_order_pages")
def test_costly_order_pages_is_what_the_oom_path_compares(monkeypatch):
    """A failing 512-page THP charge: with PAGE_ALLOC_COSTLY_ORDER at 8 pages the memcg OOM
    declines it (oom_skips_costly_order) and small pages fault on up to an order-0 OOM;
    counted as not costly, the THP charge OOMs, killing the task, whose fallback small page
    still fits: one huge page and that one."""
    real = PROFILES["6.12"]
    assert _thp_oom(monkeypatch, real) == (757, [1], "1", "1")
    assert _thp_oom(monkeypatch, flipped(real, "costly_order_pages", 512)) == (
        513, [512], "1", "1")


@covers("oom_skips_costly_order")
def test_oom_skips_costly_order_declines_a_thp_charge(monkeypatch):
    """(The same as test_oom_skips_costly_order_is_what_the_oom_path_reads of
    test_profiles.py, through flipped.)"""
    real = PROFILES["6.12"]
    assert _thp_oom(monkeypatch, real) == (757, [1], "1", "1")
    assert _thp_oom(monkeypatch, flipped(real, "oom_skips_costly_order", False)) == (
        513, [512], "1", "1")


@covers("thp_madvise_retries")
def test_thp_madvise_retries_reclaim_for_a_madvised_thp(monkeypatch):
    def thp_max_events(profile):
        m = boot_v2(monkeypatch, profile, pages=8192, thp=True)
        assert m.write_file("/a", "memory.max", str(3 << 20)) == 0
        t = m.spawn("A", "/a")
        assert m.touch(t, m.mmap_anon(t, 1024, hugepage=True)) == 757
        assert t.state == "killed" and check(m.k) == []
        ev = events(m, "/a")
        return ev["max"], ev["oom"], ev["oom_kill"]

    real = PROFILES["6.12"]
    # the THP charges' rounds, then the order-0 charge's 35 (18 before its kill, 17 after)
    assert thp_max_events(real) == ("53", "1", "1")
    # __GFP_NORETRY: the THP charge gives up after one reclaim round and a drain
    assert thp_max_events(flipped(real, "thp_madvise_retries", False)) == ("37", "1", "1")


# ---------------------------------------------------------------- migration, swap, offline


@covers("migrate")
def test_migrate_force_charges_the_new_page_or_transfers(monkeypatch):
    def migrate_at_the_limit(profile):
        m = boot_v2(monkeypatch, profile, nodes=2)
        assert m.write_file("/a", "memory.max", str(128 * P)) == 0
        t = m.spawn("A", "/a")
        v = m.mmap_anon(t, 64)
        assert m.touch(t, v) == 64
        assert m.migrate(t, v, 1) == 0
        assert check(m.k) == []
        return m.read_file("/a", "memory.current"), m.read_file("/a", "memory.peak")

    real = PROFILES["6.1"]
    assert migrate_at_the_limit(real) == (f"{128 * P}\n", f"{129 * P}\n")
    assert migrate_at_the_limit(flipped(real, "migrate", "transfer")) == (
        f"{128 * P}\n", f"{128 * P}\n")


@covers("replace_page_cache")
def test_replace_page_cache_force_charges_or_goes_through_migrate(monkeypatch):
    """Flipped on 6.12: on 6.1 "migrate" reaches migrate's own force-charge, so both values of
    this field do the same there (they differ only where `migrate` is "transfer")."""
    def splice(profile):
        m = boot_v2(monkeypatch, profile)
        t = m.spawn("A", "/a")
        m.write(t, "/data/f", 1)
        m.sync()
        calls = traced(m, lambda: m.splice(t, "/data/f", 0))
        assert check(m.k) == []
        return calls, m.read_file("/a", "memory.current"), m.read_file("/a", "memory.peak")

    real = PROFILES["6.12"]
    up, down = [(("/", "res"), 64, 65), (("/a", "res"), 64, 65)], [
        (("/", "res"), 65, 64), (("/a", "res"), 65, 64)]
    assert splice(real) == ([("mem_cgroup_replace_folio", up), ("mem_cgroup_uncharge", down)],
                            f"{64 * P}\n", f"{65 * P}\n")
    assert splice(flipped(real, "replace_page_cache", "migrate")) == (
        [("mem_cgroup_replace_folio", []), ("mem_cgroup_uncharge", [])],
        f"{64 * P}\n", f"{64 * P}\n")


@covers("migration_remlocks")
def test_migration_remlocks_keeps_a_locked_page_unevictable(monkeypatch):
    def locked_then_migrated(profile):
        m = boot_v2(monkeypatch, profile, nodes=2)
        t = m.spawn("A", "/a")
        v = m.mmap_anon(t, 8, locked=True)
        assert m.migrate(t, v, 1) == 0
        assert check(m.k) == []
        st = m.stat("/a")
        return st["unevictable"] // P, st["inactive_anon"] // P, st["active_anon"] // P

    real = PROFILES["6.1"]
    assert locked_then_migrated(real) == (8, 0, 0)
    assert locked_then_migrated(flipped(real, "migration_remlocks", False)) == (0, 8, 0)


@covers("swapout_uncharges_memory")
def test_swapout_uncharges_memory_at_swapout_or_at_the_free(monkeypatch):
    """v1 (memsw accounting) only: the trace shows which call gives the memory charge back."""
    def swap_out_one(profile):
        m = boot(monkeypatch, profile, cgroup="v1", swap_pages=64)
        m.mkdir("/a")
        t = m.spawn("A", "/a")
        v = m.mmap_anon(t, 2)
        m.touch(t, v)
        calls = traced(m, lambda: m.reclaim(m.pfn_of(v, 0)))
        assert check(m.k) == []
        return calls

    real = PROFILES["6.1"]
    res = [(("/", "res"), 64, 63), (("/a", "res"), 64, 63)]
    swap = [(("/a", "swap"), 0, 1)]
    assert swap_out_one(real) == [("mem_cgroup_try_charge_swap", []),
                                  ("mem_cgroup_swapout", res + swap),
                                  ("mem_cgroup_uncharge_list", [])]
    assert swap_out_one(flipped(real, "swapout_uncharges_memory", False)) == [
        ("mem_cgroup_try_charge_swap", []), ("mem_cgroup_swapout", swap),
        ("mem_cgroup_uncharge_list", res)]


@covers("uncharge_swap_at_slot_free")
def test_uncharge_swap_at_slot_free_keeps_the_swap_cache_slot_charged(monkeypatch):
    """v2's memory.swap.current across a read fault (the slot stays, held by the swap cache)
    and a write fault (the slot is freed). On v1 this workload shows no difference: the
    swap-in drops the slot's memsw charge on either side (mem_cgroup_swapin_uncharge_swap on
    6.1, mem_cgroup_commit_charge on 3.17)."""
    def swap_current(profile):
        m = boot_v2(monkeypatch, profile, swap_pages=64)
        t = m.spawn("A", "/a")
        v = m.mmap_anon(t, 8)
        m.touch(t, v)
        for i in range(8):
            assert m.reclaim(m.pfn_of(v, i)) == 1
        seen = [m.read_file("/a", "memory.swap.current")]
        m.touch(t, v, 0, 1, write=False)
        seen.append(m.read_file("/a", "memory.swap.current"))
        m.touch(t, v, 0, 1)
        seen.append(m.read_file("/a", "memory.swap.current"))
        assert check(m.k) == []
        return seen

    real = PROFILES["6.12"]
    assert swap_current(real) == [f"{8 * P}\n", f"{8 * P}\n", f"{7 * P}\n"]
    assert swap_current(flipped(real, "uncharge_swap_at_slot_free", False)) == [
        f"{8 * P}\n", f"{7 * P}\n", f"{7 * P}\n"]


@covers("page_cluster")
def test_page_cluster_sizes_the_swap_read_ahead(monkeypatch):
    def read_ahead(profile):
        m = boot_v2(monkeypatch, profile, swap_pages=64)
        t = m.spawn("A", "/a")
        v = m.mmap_anon(t, 16)
        m.touch(t, v)
        for i in range(16):
            assert m.reclaim(m.pfn_of(v, i)) == 1
        m.touch(t, v, 0, 1, write=False)
        assert check(m.k) == []
        st = m.stat("/a")
        return st["anon"] // P, st["swapcached"] // P

    real = PROFILES["6.12"]
    assert read_ahead(real) == (1, 7)        # slots 1-7 of the 8-slot window (0: the header)
    assert read_ahead(flipped(real, "page_cluster", 0)) == (1, 1)


@covers("offline")
def test_offline_reparents_or_keeps_the_dead_memcgs_pages(monkeypatch):
    """Flipped on 3.17 only: "reparent" on a page_counter kernel (6.1) fails at once,
    mem_cgroup_reparent_charges calling ResCounter.uncharge_until on a PageCounter; offline
    "reparent" goes with counter "res_counter"."""
    def rmdir_child(profile):
        m = boot(monkeypatch, profile)
        m.mkdir("/p")
        assert m.write_file("/p", "memory.use_hierarchy", "1") == 0
        m.mkdir("/p/c")
        t = m.spawn("A", "/p/c")
        assert m.write(t, "/data/f", 4) == 4
        assert m.move_task(t, "/p") == 0
        assert m.rmdir("/p/c") == 0
        assert check(m.k) == []
        st = m.stat("/p")
        return st["cache"] // P, st["total_cache"] // P, [c.name for c in m.memcg("/p").children]

    real = PROFILES["3.17"]
    assert rmdir_child(real) == (4, 4, [])
    assert rmdir_child(flipped(real, "offline", "keep")) == (0, 4, ["/p/c"])


# ---------------------------------------------------------------- LRU and reclaim


@covers("new_anon_active")
@pytest.mark.parametrize("vectorized", [True, False])
def test_new_anon_active_picks_the_list_of_a_new_anon_page(monkeypatch, vectorized):
    def lists(profile):
        m = boot_v2(monkeypatch, profile, vectorized=vectorized)
        t = m.spawn("A", "/a")
        m.touch(t, m.mmap_anon(t, 4))
        assert check(m.k) == []
        st = m.stat("/a")
        return st["inactive_anon"] // P, st["active_anon"] // P

    real = PROFILES["6.12"]
    assert lists(real) == (4, 0)
    assert lists(flipped(real, "new_anon_active", True)) == (0, 4)


@covers("write_marks_accessed")
def test_write_marks_accessed_so_a_read_after_it_activates(monkeypatch):
    def lists(profile):
        m = boot_v2(monkeypatch, profile)
        t = m.spawn("A", "/a")
        assert m.write(t, "/data/f", 4) == 4
        assert m.read(t, "/data/f") == 4
        assert check(m.k) == []
        st = m.stat("/a")
        return st["inactive_file"] // P, st["active_file"] // P

    real = PROFILES["6.12"]
    assert lists(real) == (4, 0)
    assert lists(flipped(real, "write_marks_accessed", True)) == (0, 4)


@covers("stale_target_protection")
def test_stale_target_protection_makes_memory_reclaim_fail(monkeypatch):
    """test_memcg_min in small (conformance B1-3): reclaim from /A, forced by G, leaves C an
    effective memory.min covering its usage; 6.1 then checks it when C itself is reclaimed."""
    def reclaim_c(profile):
        m = boot(monkeypatch, profile, cgroup="v2")
        for path in ("/A", "/A/C", "/A/G"):
            m.mkdir(path)
        assert m.write_file("/", "cgroup.subtree_control", "+memory") == 0
        assert m.write_file("/A", "cgroup.subtree_control", "+memory") == 0
        assert m.write_file("/A", "memory.max", str(4 << 20)) == 0
        assert m.write_file("/A/C", "memory.min", str(2 << 20)) == 0
        c = m.spawn("C", "/A/C")
        assert m.write(c, "/data/c", 256) == 256
        m.sync()
        g = m.spawn("G", "/A/G")
        m.touch(g, m.mmap_anon(g, 900))
        assert g.state == "killed"
        ret = m.write_file("/A/C", "memory.reclaim", str(1 << 20))
        assert check(m.k) == []
        return ret, m.read_file("/A/C", "memory.current"), m.stat("/A/C")["file"] // P

    real = PROFILES["6.1"]
    assert reclaim_c(real) == (-Errno.EAGAIN, f"{263 * P}\n", 256)
    assert reclaim_c(flipped(real, "stale_target_protection", False)) == (0, f"{7 * P}\n", 0)


@covers("precharge_noretry")
def test_precharge_noretry_fails_a_move_instead_of_oom_killing(monkeypatch):
    """(test_charge_moving.py's test_6_1_precharge_does_not_retry_so_it_never_oom_kills, and
    its other side.)"""
    def move_into_full(profile):
        m = boot(monkeypatch, profile, cgroup="v1")
        m.mkdir("/c")
        assert m.write_file("/c", "memory.limit_in_bytes", str(64 * P)) == 0
        assert m.write_file("/c", "memory.move_charge_at_immigrate", "1") == 0
        victim = m.spawn("V", "/c")
        m.touch(victim, m.mmap_anon(victim, 40))
        mover = m.spawn("M", "/")
        m.touch(mover, m.mmap_anon(mover, 40))
        ret = m.move_task(mover, "/c")
        assert check(m.k) == []
        return (ret, victim.state, mover.memcg.name, m.read_file("/c", "memory.oom_control"),
                m.read_file("/c", "memory.failcnt"))

    real = PROFILES["6.1"]
    assert move_into_full(real) == (-Errno.ENOMEM, "alive", "/",
                                    "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", "5\n")
    assert move_into_full(flipped(real, "precharge_noretry", False)) == (
        0, "killed", "/c", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n", "37\n")


# ---------------------------------------------------------------- statistics


@covers("stats")
def test_stats_counts_cache_and_rss_at_commit_or_from_page_state(monkeypatch):
    """Flipped on 3.17, where both count the same pages by the time a read comes: the trace
    shows charge-type counting at commit, state keeping no counter. Not on 6.1: there pages
    are charged before they are anon or cache (charge_at_instantiation), and charge-type
    counts swap read-ahead as cache (the checker: "/a rss 4 but 5 pages"); charge-type stats
    go with two-step charging."""
    def fault_and_write(profile):
        m = boot(monkeypatch, profile, vectorized=False)
        m.mkdir("/a")
        t = m.spawn("A", "/a")
        v = m.mmap_anon(t, 2)
        calls = traced(m, lambda: (m.touch(t, v), m.write(t, "/data/f", 1)))
        assert check(m.k) == []
        st = m.stat("/a")
        own = m.memcg("/a").stat
        return ([c for name, c in calls if name == "mem_cgroup_commit_charge"],
                (own[MEM_CGROUP_STAT_RSS], own[MEM_CGROUP_STAT_CACHE]),
                (st["rss"] // P, st["cache"] // P))

    real = PROFILES["3.17"]
    assert fault_and_write(real) == (
        [[(("/a", "rss"), 0, 1)], [(("/a", "rss"), 1, 2)], [(("/a", "cache"), 0, 1)]],
        (2, 1), (2, 1))
    assert fault_and_write(flipped(real, "stats", "state")) == ([[], [], []], (0, 0), (2, 1))


# ---------------------------------------------------------------- cgroup files


@covers("limit_round_up")
def test_limit_round_up_rounds_a_v1_limit_write(monkeypatch):
    def limits(profile):
        m = boot(monkeypatch, profile, cgroup="v1")
        m.mkdir("/a")
        assert m.write_file("/a", "memory.limit_in_bytes", "4097") == 0
        assert m.write_file("/a", "memory.soft_limit_in_bytes", "1") == 0
        return (m.read_file("/a", "memory.limit_in_bytes"),
                m.read_file("/a", "memory.soft_limit_in_bytes"))

    real = PROFILES["6.1"]
    assert limits(real) == ("4096\n", "0\n")
    assert limits(flipped(real, "limit_round_up", True)) == ("8192\n", "4096\n")


@covers("v1_unlimited_bytes")
def test_v1_unlimited_bytes_is_what_an_unlimited_v1_limit_reads(monkeypatch):
    def unlimited(profile):
        m = boot(monkeypatch, profile, cgroup="v1")
        m.mkdir("/a")
        return m.read_file("/a", "memory.limit_in_bytes")

    real = PROFILES["6.1"]
    assert unlimited(real) == f"{PAGE_COUNTER_MAX_BYTES}\n"
    assert unlimited(flipped(real, "v1_unlimited_bytes", ULLONG_MAX)) == f"{ULLONG_MAX}\n"


@covers("peak_writable")
def test_peak_writable_lets_a_write_restart_the_peak(monkeypatch):
    def reset(profile):
        m = boot_v2(monkeypatch, profile)
        t = m.spawn("A", "/a")
        v = m.mmap_anon(t, 100)
        m.touch(t, v)
        m.munmap(t, v)
        f = m.open_file("/a", "memory.peak")
        ret = (m.write_file("/a", "memory.peak", "reset"), f.write("reset"))
        return ret, f.read(), m.read_file("/a", "memory.peak")

    real = PROFILES["6.12"]
    assert reset(real) == ((0, 0), f"{28 * P}\n", f"{128 * P}\n")
    assert reset(flipped(real, "peak_writable", False)) == (
        (-Errno.EINVAL, -Errno.EINVAL), f"{128 * P}\n", f"{128 * P}\n")


@covers("swap_peak")
def test_swap_peak_offers_memory_swap_peak(monkeypatch):
    real = PROFILES["6.12"]
    m = boot_v2(monkeypatch, real, swap_pages=64)
    assert m.read_file("/a", "memory.swap.peak") == "0\n"
    assert m.write_file("/a", "memory.swap.peak", "reset") == 0
    m = boot_v2(monkeypatch, flipped(real, "swap_peak", False), swap_pages=64)
    assert "memory.swap.peak" not in m.fs.files("/a")
    with pytest.raises(InvalidRequest) as err:
        m.read_file("/a", "memory.swap.peak")
    assert str(err.value) == "/a/memory.swap.peak: no such file in the v2 memory controller"


@covers("charge_moving")
def test_charge_moving_moves_charges_with_the_task(monkeypatch):
    def move(profile):
        m = boot(monkeypatch, profile, cgroup="v1")
        m.mkdir("/a")
        m.mkdir("/b")
        t = m.spawn("A", "/a")
        m.touch(t, m.mmap_anon(t, 4))
        assert m.write_file("/b", "memory.move_charge_at_immigrate", "1") == 0
        assert m.move_task(t, "/b") == 0
        assert check(m.k) == []
        return (m.stat("/a")["rss"] // P, m.stat("/b")["rss"] // P,
                m.read_file("/a", "memory.usage_in_bytes"),
                m.read_file("/b", "memory.usage_in_bytes"))

    real = PROFILES["6.1"]
    assert move(real) == (0, 4, f"{10 * P}\n", f"{64 * P}\n")
    assert move(flipped(real, "charge_moving", False)) == (4, 0, f"{64 * P}\n", "0\n")


@covers("v1_oom_kill_line")
def test_v1_oom_kill_line_adds_the_count_to_oom_control(monkeypatch):
    def oom_control(profile):
        m = boot(monkeypatch, profile, cgroup="v1")
        m.mkdir("/a")
        return m.read_file("/a", "memory.oom_control")

    real = PROFILES["6.1"]
    assert oom_control(real) == "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"
    assert oom_control(flipped(real, "v1_oom_kill_line", False)) == (
        "oom_kill_disable 0\nunder_oom 0\n")


@covers("reclaim_syntax")
def test_reclaim_syntax_parses_memory_reclaim(monkeypatch):
    def reclaim(profile):
        m = boot_v2(monkeypatch, profile)
        t = m.spawn("A", "/a")
        assert m.write(t, "/data/f", 8) == 8
        m.sync()
        seen = [m.write_file("/a", "memory.reclaim", f"{P} swappiness=0"),
                m.stat("/a")["file"] // P]
        seen += [m.write_file("/a", "memory.reclaim", ""), m.stat("/a")["file"] // P]
        assert check(m.k) == []
        return seen

    real = PROFILES["6.1"]
    # 6.1: swappiness= is garbage; an empty write reclaims all it can, then fails
    assert reclaim(real) == [-Errno.EINVAL, 8, -Errno.EAGAIN, 0]
    assert reclaim(flipped(real, "reclaim_syntax", "6.12")) == [0, 0, -Errno.EINVAL, 0]


@covers("max_swappiness")
def test_max_swappiness_bounds_memory_swappiness(monkeypatch):
    def swappiness(profile):
        m = boot(monkeypatch, profile, cgroup="v1")
        m.mkdir("/a")
        ret = m.write_file("/a", "memory.swappiness", "150")
        return ret, m.read_file("/a", "memory.swappiness")

    real = PROFILES["6.1"]
    assert swappiness(real) == (0, "150\n")
    assert swappiness(flipped(real, "max_swappiness", 100)) == (-Errno.EINVAL, "60\n")


def keys(text):
    return [line.split()[0] for line in text.splitlines()]


@covers("v2_stat_keys")
def test_v2_stat_keys_are_the_state_lines_of_memory_stat(monkeypatch):
    real = PROFILES["6.12"]
    text = boot_v2(monkeypatch, real).read_file("/a", "memory.stat")
    assert keys(text) == list(real.v2_stat_keys + real.v2_stat_events)
    assert "\npgdemote_kswapd 0\npgdemote_direct 0\n" in text
    text = boot_v2(monkeypatch, flipped(real, "v2_stat_keys", V2_STAT_KEYS_6_1)).read_file(
        "/a", "memory.stat")
    assert keys(text) == list(V2_STAT_KEYS_6_1 + real.v2_stat_events)
    assert "pgdemote" not in text and "\npgpromote_success" not in text


@covers("v2_stat_events")
def test_v2_stat_events_are_the_event_lines_of_memory_stat(monkeypatch):
    real = PROFILES["6.12"]
    text = boot_v2(monkeypatch, real).read_file("/a", "memory.stat")
    assert "\npgscan_khugepaged 0\n" in text and text.endswith("\nnuma_hint_faults 0\n")
    text = boot_v2(monkeypatch, flipped(real, "v2_stat_events", V2_STAT_EVENTS_6_1)).read_file(
        "/a", "memory.stat")
    assert keys(text) == list(real.v2_stat_keys + V2_STAT_EVENTS_6_1)
    assert "pgscan_khugepaged" not in text and text.endswith("\nthp_collapse_alloc 0\n")


@covers("v2_events_keys")
def test_v2_events_keys_are_the_lines_of_memory_events(monkeypatch):
    real = PROFILES["6.12"]
    m = boot_v2(monkeypatch, real)
    full = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"
    assert m.read_file("/a", "memory.events") == m.read_file("/a", "memory.events.local") == full
    m = boot_v2(monkeypatch, flipped(real, "v2_events_keys", real.v2_events_keys[:-1]))
    short = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"
    assert m.read_file("/a", "memory.events") == m.read_file("/a", "memory.events.local") == short


@covers("v1_stat_keys")
def test_v1_stat_keys_are_the_first_lines_of_v1_memory_stat(monkeypatch):
    def stat_keys(profile):
        m = boot(monkeypatch, profile, cgroup="v1")
        m.mkdir("/a")
        return keys(m.read_file("/a", "memory.stat"))

    real = PROFILES["6.1"]
    lru = ["inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable"]
    events_ = ["pgpgin", "pgpgout", "pgfault", "pgmajfault"]
    tail = lru + ["hierarchical_memory_limit", "hierarchical_memsw_limit"]

    def whole(stat):
        local = stat + events_ + lru
        return stat + events_ + tail + [f"total_{key}" for key in local]

    assert stat_keys(real) == whole(
        ["cache", "rss", "rss_huge", "shmem", "mapped_file", "dirty", "writeback",
         "workingset_refault_anon", "workingset_refault_file", "swap"])
    old = ("cache", "rss", "rss_huge", "mapped_file", "writeback", "swap")
    assert stat_keys(flipped(real, "v1_stat_keys", old)) == whole(list(old))


@covers("v1_stat_events")
def test_v1_stat_events_are_the_event_lines_of_v1_memory_stat(monkeypatch):
    def stat(profile):
        m = boot(monkeypatch, profile, cgroup="v1")
        m.mkdir("/a")
        t = m.spawn("A", "/a")
        m.touch(t, m.mmap_anon(t, 3))
        return dict(line.split() for line in m.read_file("/a", "memory.stat").splitlines())

    real = PROFILES["6.1"]
    st = stat(real)
    assert [st[k] for k in ("pgpgin", "pgpgout", "pgfault", "pgmajfault")] == ["3", "0", "3", "0"]
    assert [st[f"total_{k}"] for k in ("pgpgin", "pgfault")] == ["3", "3"]
    st = stat(flipped(real, "v1_stat_events", ("pgfault",)))
    assert (st["pgfault"], st["total_pgfault"]) == ("3", "3")
    assert not {"pgpgin", "pgpgout", "pgmajfault", "total_pgpgin"} & set(st)


# ---------------------------------------------------------------- swap slots and zswap files


def _swapped_then_unmapped(m, n=100):
    """n anonymous pages of a task in /a reclaimed to swap, then unmapped: (swap.current in
    pages before the munmap, after it)."""
    t = m.spawn("A", "/a")
    v = m.mmap_anon(t, n)
    m.touch(t, v)
    assert m.write_file("/a", "memory.reclaim", str(n * P)) == 0
    before = int(m.read_file("/a", "memory.swap.current")) // P
    m.munmap(t, v)
    assert check(m.k) == []
    return before, int(m.read_file("/a", "memory.swap.current")) // P


@covers("swap_slots_cache")
def test_swap_slots_cache_keeps_freed_slots_charged(monkeypatch):
    """6.1 frees swap slots through a per-CPU cache of 64 that goes back whole when full: of
    100 slots freed, the last 36 stay, charged to swap. The cache switches on only once more
    than 5 * 64 slots a CPU are free: not with 300 slots of swap."""
    real = PROFILES["6.1"]
    assert _swapped_then_unmapped(boot_v2(monkeypatch, real, swap_pages=1024)) == (100, 36)
    m = boot_v2(monkeypatch, real, swap_pages=1024)
    _swapped_then_unmapped(m)
    assert len(m.k.swap.slots_ret[0]) == 36 and m.k.swap.inuse_pages == 1 + 36
    assert _swapped_then_unmapped(boot_v2(monkeypatch, real, swap_pages=300)) == (100, 0)
    flip = flipped(real, "swap_slots_cache", 0)
    assert _swapped_then_unmapped(boot_v2(monkeypatch, flip, swap_pages=1024)) == (100, 0)


@covers("zap_swap_batch")
def test_zap_swap_batch_frees_runs_of_entries_past_the_cache(monkeypatch):
    """6.12's munmap frees a page table's run of consecutive swap entries at once, uncharged
    at once: nothing stays (the real kernel: swap.current 0 after 20 MiB swapped out and
    unmapped, where 6.1 keeps 48 pages)."""
    real = PROFILES["6.12"]
    assert _swapped_then_unmapped(boot_v2(monkeypatch, real, swap_pages=1024)) == (100, 0)
    flip = flipped(real, "zap_swap_batch", False)
    assert _swapped_then_unmapped(boot_v2(monkeypatch, flip, swap_pages=1024)) == (100, 36)


@covers("zswap_files")
def test_zswap_files_are_offered_kept_and_checked(monkeypatch):
    real = PROFILES["6.12"]
    m = boot_v2(monkeypatch, real)
    assert (m.read_file("/a", "memory.zswap.max"), m.read_file("/a", "memory.zswap.writeback")
            ) == ("max\n", "1\n")
    assert m.write_file("/a", "memory.zswap.max", "10M") == 0
    assert m.write_file("/a", "memory.zswap.writeback", "0") == 0
    assert m.write_file("/a", "memory.zswap.writeback", "2") == -Errno.EINVAL
    assert (m.read_file("/a", "memory.zswap.max"), m.read_file("/a", "memory.zswap.writeback")
            ) == ("10485760\n", "0\n")
    assert "memory.zswap.writeback" not in boot_v2(monkeypatch, PROFILES["6.1"]).fs.files("/a")
    m = boot_v2(monkeypatch, flipped(real, "zswap_files", ()))
    assert not [f for f in m.fs.files("/a") if "zswap" in f]
