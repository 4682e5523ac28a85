"""The v1 memory controller files as 3.17 prints and parses them."""

import pytest

from memcgsim import Errno, InvalidRequest, Machine, check

P = 4096
UNLIMITED = "18446744073709551615\n"


@pytest.fixture
def m():
    m = Machine(4096, swap_pages=256)
    m.mkdir("/a")
    return m


def test_a_new_cgroup_reads_as_3_17_prints_it(m):
    r = lambda name: m.read_file("/a", name)  # noqa: E731
    assert r("memory.usage_in_bytes") == "0\n"
    assert r("memory.max_usage_in_bytes") == "0\n"
    assert r("memory.limit_in_bytes") == UNLIMITED
    assert r("memory.soft_limit_in_bytes") == UNLIMITED
    assert r("memory.memsw.limit_in_bytes") == UNLIMITED
    assert r("memory.failcnt") == "0\n" and r("memory.memsw.failcnt") == "0\n"
    assert r("memory.use_hierarchy") == "0\n"
    assert r("memory.swappiness") == "60\n"
    assert r("memory.move_charge_at_immigrate") == "0\n"
    assert r("memory.oom_control") == "oom_kill_disable 0\nunder_oom 0\n"
    assert r("tasks") == "" and r("cgroup.procs") == ""
    assert r("memory.numa_stat") == (
        "total=0 N0=0\nfile=0 N0=0\nanon=0 N0=0\nunevictable=0 N0=0\n"
        "hierarchical_total=0 N0=0\nhierarchical_file=0 N0=0\nhierarchical_anon=0 N0=0\n"
        "hierarchical_unevictable=0 N0=0\n")


def test_memory_stat_lists_every_key_in_the_kernels_order(m):
    t = m.spawn("A", "/a")
    m.touch(t, m.mmap_anon(t, 3))
    m.write(t, "/data/f", 2)
    text = m.read_file("/a", "memory.stat")
    keys = [line.split()[0] for line in text.splitlines()]
    base = ["cache", "rss", "rss_huge", "mapped_file", "writeback", "swap", "pgpgin",
            "pgpgout", "pgfault", "pgmajfault", "inactive_anon", "active_anon",
            "inactive_file", "active_file", "unevictable"]
    assert keys == base + ["hierarchical_memory_limit", "hierarchical_memsw_limit"] + [
        f"total_{k}" for k in base]
    assert text.startswith(f"cache {2 * P}\nrss {3 * P}\nrss_huge 0\n")
    assert "\npgpgin 5\npgpgout 0\npgfault 3\npgmajfault 0\n" in text
    assert f"\nhierarchical_memory_limit {UNLIMITED}" in text
    assert text.endswith("total_unevictable 0\n")


def test_usage_of_root_sums_the_tree(m):
    t = m.spawn("A", "/a")
    m.touch(t, m.mmap_anon(t, 3))
    assert m.read_file("/a", "memory.usage_in_bytes") == f"{32 * P}\n"
    assert m.read_file("/", "memory.usage_in_bytes") == f"{3 * P}\n"
    m.reclaim(m.pfn_of(t.mm.vmas[0], 0))
    assert m.read_file("/", "memory.memsw.usage_in_bytes") == f"{3 * P}\n"
    assert m.read_file("/", "memory.usage_in_bytes") == f"{2 * P}\n"


@pytest.mark.parametrize("text,want", [
    ("10M", 10 << 20), ("10m", 10 << 20), ("1k", P), ("4097", 2 * P), ("4096\n", P),
    (" 8192 ", 2 * P), ("0x1000", P), ("010000", P), ("1G", 1 << 30), ("0", 0),
    ("-1", None), ("", 0), ("1e", 1 << 60),
])
def test_limit_writes_parse_as_memparse_and_round_up(m, text, want):
    assert m.write_file("/a", "memory.memsw.limit_in_bytes", "-1") == 0
    assert m.write_file("/a", "memory.limit_in_bytes", text) == 0
    got = m.read_file("/a", "memory.limit_in_bytes")
    assert got == (UNLIMITED if want is None else f"{want}\n")
    assert check(m.k) == []


@pytest.mark.parametrize("text", ["abc", "10MB", "-2", "-1k", "1.5G", "10 M", "--1", "1x"])
def test_limit_garbage_is_einval(m, text):
    assert m.write_file("/a", "memory.limit_in_bytes", text) == -Errno.EINVAL
    assert m.read_file("/a", "memory.limit_in_bytes") == UNLIMITED


def test_limit_rules(m):
    assert m.write_file("/", "memory.limit_in_bytes", "10M") == -Errno.EINVAL
    assert m.write_file("/a", "memory.limit_in_bytes", "10M") == 0
    assert m.write_file("/a", "memory.memsw.limit_in_bytes", "5M") == -Errno.EINVAL
    assert m.write_file("/a", "memory.memsw.limit_in_bytes", "20M") == 0
    assert m.write_file("/a", "memory.limit_in_bytes", "30M") == -Errno.EINVAL
    assert m.read_file("/a", "memory.limit_in_bytes") == f"{10 << 20}\n"
    assert m.read_file("/a", "memory.memsw.limit_in_bytes") == f"{20 << 20}\n"
    st = m.read_file("/a", "memory.stat")
    assert f"hierarchical_memory_limit {10 << 20}\nhierarchical_memsw_limit {20 << 20}\n" in st


def test_shrinking_the_limit_reclaims_page_cache(m):
    t = m.spawn("A", "/a")
    m.write(t, "/data/f", 20)
    m.sync()
    # one reclaim round takes up to 32 pages: all 20 clean pages go; the 12 pages the stock
    # holds do not (3.17's v1 resize never drains stocks), so the limit cannot be set
    assert m.write_file("/a", "memory.limit_in_bytes", "8K") == -Errno.EBUSY
    assert m.read_file("/a", "memory.usage_in_bytes") == f"{12 * P}\n"
    assert m.stat("/a")["cache"] == 0 and m.stat("/a")["pgpgout"] == 20
    assert m.write_file("/a", "memory.limit_in_bytes", "48K") == 0
    assert check(m.k) == []


def test_max_usage_and_failcnt_reset_on_any_write(m):
    t = m.spawn("A", "/a")
    v = m.mmap_anon(t, 40)
    m.write_file("/a", "memory.limit_in_bytes", f"{40 * P}")
    m.touch(t, v)
    m.munmap(t, v)
    assert m.read_file("/a", "memory.max_usage_in_bytes") == f"{40 * P}\n"
    assert m.read_file("/a", "memory.failcnt") == "8\n"
    assert m.write_file("/a", "memory.max_usage_in_bytes", "0") == 0
    assert m.write_file("/a", "memory.failcnt", "whatever") == 0
    assert m.read_file("/a", "memory.max_usage_in_bytes") == "0\n"
    assert m.read_file("/a", "memory.failcnt") == "0\n"


def test_knobs_and_their_errors(m):
    w = lambda name, text, path="/a": m.write_file(path, name, text)  # noqa: E731
    assert w("memory.swappiness", "101") == -Errno.EINVAL
    assert w("memory.swappiness", "-1") == -Errno.EINVAL
    assert w("memory.swappiness", "0") == 0 and m.read_file("/a", "memory.swappiness") == "0\n"
    assert w("memory.swappiness", "30", "/") == 0
    assert m.read_file("/", "memory.swappiness") == "30\n"
    assert w("memory.move_charge_at_immigrate", "4") == -Errno.EINVAL
    assert w("memory.move_charge_at_immigrate", "3") == 0
    assert w("memory.oom_control", "2") == -Errno.EINVAL
    assert w("memory.oom_control", "1", "/") == -Errno.EINVAL
    assert w("memory.oom_control", "1") == 0
    assert m.read_file("/a", "memory.oom_control").startswith("oom_kill_disable 1\n")
    assert w("memory.use_hierarchy", "x") == -Errno.EINVAL
    assert w("memory.use_hierarchy", "2") == -Errno.EINVAL
    assert w("memory.use_hierarchy", "99999999999999999999999") == -Errno.ERANGE
    m.mkdir("/a/c")
    assert w("memory.use_hierarchy", "1") == -Errno.EBUSY
    assert w("memory.use_hierarchy", "0") == 0
    # root opens the read-only file (cgroupfs asks kernfs for no open-time mode check) and
    # cgroup_file_write has no handler for it
    assert w("memory.usage_in_bytes", "0") == -Errno.EINVAL
    assert w("memory.force_empty", "1", "/") == -Errno.EINVAL


def test_force_empty_reclaims_what_it_can(m):
    t = m.spawn("A", "/a")
    m.write(t, "/data/f", 5)
    m.sync()
    v = m.mmap_anon(t, 2)
    m.touch(t, v)
    m.mlock(t, v)
    assert m.write_file("/a", "memory.force_empty", "0") == 0
    st = m.stat("/a")
    assert (st["cache"], st["rss"], st["unevictable"]) == (0, 2 * P, 2 * P)
    assert check(m.k) == []


def test_unknown_and_wrong_direction_files(m):
    with pytest.raises(InvalidRequest, match="no such file"):
        m.read_file("/a", "memory.max")
    with pytest.raises(InvalidRequest, match="write-only"):
        m.read_file("/a", "memory.force_empty")
    with pytest.raises(InvalidRequest, match="unknown memory cgroup"):
        m.read_file("/nope", "memory.stat")


def test_no_memsw_files_without_swap_accounting():
    m = Machine(4096, swap_pages=64, swap_accounting=False)
    m.mkdir("/a")
    assert not any("memsw" in f for f in m.fs.files())
    with pytest.raises(InvalidRequest):
        m.read_file("/a", "memory.memsw.usage_in_bytes")
    assert "hierarchical_memsw_limit" not in m.read_file("/a", "memory.stat")


def test_tasks_file_moves_and_lists_pids(m):
    m.mkdir("/b")
    a = m.spawn("A", "/a")
    b = m.spawn("B", "/a")
    assert m.read_file("/a", "tasks") == f"{a.pid}\n{b.pid}\n"
    assert m.write_file("/b", "cgroup.procs", f"{b.pid}\n") == 0
    assert m.read_file("/a", "cgroup.procs") == f"{a.pid}\n"
    assert m.read_file("/b", "tasks") == f"{b.pid}\n"
    assert m.write_file("/b", "tasks", "999") == -Errno.ESRCH
    assert m.write_file("/b", "tasks", "abc") == -Errno.EINVAL


def test_numa_stat_per_node():
    m = Machine(4096, nodes=2)
    m.mkdir("/a")
    t0 = m.spawn("A", "/a", node=0)
    t1 = m.spawn("B", "/a", node=1)
    m.touch(t0, m.mmap_anon(t0, 3))
    m.touch(t1, m.mmap_anon(t1, 2))
    m.write(t1, "/data/f", 1)
    assert m.read_file("/a", "memory.numa_stat").splitlines()[:4] == [
        "total=6 N0=3 N1=3", "file=1 N0=0 N1=1", "anon=5 N0=3 N1=2",
        "unevictable=0 N0=0 N1=0"]
