"""The v2 memory files as Debian's 6.1.192 and 6.12.117 print and parse them, and v1 on 6.1."""

import pytest

from memcgsim import Errno, InvalidRequest, Machine, check
from memcgsim.profile import PROFILES

P = 4096
MAX_BYTES = "9223372036854771712\n"


@pytest.fixture(params=["6.1", "6.12"])
def m(request):
    m = Machine(4096, swap_pages=256, profile=request.param, cgroup="v2")
    m.mkdir("/a")
    return m


def events(m, path, name="memory.events"):
    return dict(line.split() for line in m.read_file(path, name).splitlines())


def test_a_new_cgroup_reads_as_the_kernel_prints_it(m):
    r = lambda name: m.read_file("/a", name)  # noqa: E731
    assert r("memory.current") == "0\n" and r("memory.peak") == "0\n"
    assert r("memory.min") == "0\n" and r("memory.low") == "0\n"
    assert r("memory.high") == "max\n" and r("memory.max") == "max\n"
    assert r("memory.swap.current") == "0\n"
    assert r("memory.swap.high") == "max\n" and r("memory.swap.max") == "max\n"
    assert r("memory.oom.group") == "0\n"
    assert r("memory.events") == ("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"
                                  "oom_group_kill 0\n")
    assert r("memory.events.local") == r("memory.events")
    assert r("memory.swap.events") == "high 0\nmax 0\nfail 0\n"
    assert r("cgroup.procs") == "" and r("cgroup.subtree_control") == ""
    assert r("cgroup.controllers") == "memory\n"
    assert m.read_file("/", "cgroup.controllers") == (
        "cpuset cpu io memory hugetlb pids rdma misc\n")
    if m.k.profile.name == "6.12":
        assert r("memory.swap.peak") == "0\n"
    else:
        with pytest.raises(InvalidRequest, match="no such file"):
            r("memory.swap.peak")


def test_memory_stat_keys_in_the_kernels_order(m):
    t = m.spawn("A", "/a")
    m.touch(t, m.mmap_anon(t, 3))
    assert m.write(t, m.create("/data/f").name, 2) == 2
    assert m.write(t, m.create("/dev/shm/s", tmpfs=True).name, 1) == 1
    text = m.read_file("/a", "memory.stat")
    keys = [line.split()[0] for line in text.splitlines()]
    prof = m.k.profile
    assert keys == list(prof.v2_stat_keys + prof.v2_stat_events)
    stat = m.stat("/a")
    assert stat["anon"] == 3 * P and stat["file"] == 3 * P and stat["shmem"] == P
    assert stat["file_dirty"] == 2 * P            # tmpfs pages are not file_dirty
    assert stat["inactive_anon"] == 4 * P     # 5.9 on: new anon pages start inactive
    assert stat["pgfault"] == 3
    # kernel: the 16 KiB stack, a page of task slab, the 2-page PGD and a PUD, PMD and PTE page
    assert text.startswith(f"anon {3 * P}\nfile {3 * P}\nkernel {10 * P}\n"
                           f"kernel_stack {4 * P}\npagetables {3 * P}\n")
    if prof.name == "6.12":
        assert "\npgdemote_kswapd 0\n" in text and text.endswith("numa_hint_faults 0\n")
    else:
        assert "pgdemote_kswapd" not in text and text.endswith("thp_collapse_alloc 0\n")


def test_root_has_no_limits_or_counters_but_has_stat_and_reclaim(m):
    for name in ("memory.current", "memory.max", "memory.events", "memory.swap.current",
                 "memory.peak", "memory.oom.group"):
        with pytest.raises(InvalidRequest, match="root cgroup has no such file"):
            m.read_file("/", name)
    assert m.read_file("/", "memory.stat").startswith("anon 0\n")
    assert m.write_file("/", "memory.reclaim", "4096") == -Errno.EAGAIN


@pytest.mark.parametrize("name,default", [("memory.min", "0\n"), ("memory.low", "0\n"),
                                          ("memory.high", "max\n"), ("memory.max", "max\n"),
                                          ("memory.swap.high", "max\n"),
                                          ("memory.swap.max", "max\n")])
def test_limit_files_parse_as_page_counter_memparse(m, name, default):
    w = lambda text: m.write_file("/a", name, text)  # noqa: E731
    r = lambda: m.read_file("/a", name)  # noqa: E731
    assert r() == default
    assert w("1M\n") == 0 and r() == f"{1 << 20}\n"
    assert w("4097") == 0 and r() == f"{P}\n"                  # rounded down to a page
    assert w("100") == 0 and r() == "0\n"
    assert w("0x2000") == 0 and r() == f"{2 * P}\n"
    assert w("  max  ") == 0 and r() == "max\n"
    assert w("8E") == 0 and r() == "max\n"                      # clamps to PAGE_COUNTER_MAX
    assert w("2g") == 0 and r() == f"{2 << 30}\n"
    assert w("\n") == 0 and r() == "0\n"                        # echo > file: 0 bytes
    for bad in ("MAX", "-1", "+5", "1KB", "1.5G", "abc", "1 K", "08", "1M 2M"):
        assert w(bad) == -Errno.EINVAL, bad
    assert w("max") == 0


def test_read_only_and_write_only_files(m):
    for name in ("memory.current", "memory.stat", "memory.events", "memory.events.local",
                 "memory.swap.current", "memory.swap.events", "cgroup.controllers"):
        # root opens the 0444 file; cgroup_file_write has no handler for it
        assert m.write_file("/a", name, "0") == -Errno.EINVAL, name
    with pytest.raises(InvalidRequest, match="write-only"):
        m.read_file("/a", "memory.reclaim")
    peak = m.write_file("/a", "memory.peak", "reset")
    assert peak == (0 if m.k.profile.peak_writable else -Errno.EINVAL)


def test_oom_group_and_its_errors(m):
    w = lambda text: m.write_file("/a", "memory.oom.group", text)  # noqa: E731
    assert w("1") == 0 and m.read_file("/a", "memory.oom.group") == "1\n"
    assert w("+0") == 0 and m.read_file("/a", "memory.oom.group") == "0\n"
    assert w("2") == -Errno.EINVAL and w("x") == -Errno.EINVAL
    assert w("99999999999") == -Errno.ERANGE


def test_memory_max_write_reclaims_then_kills(m):
    t = m.spawn("A", "/a")
    f = m.create("/data/f")
    assert m.write(t, f.name, 40) == 40
    m.sync()
    assert m.write_file("/a", "memory.max", f"{20 * P}") == 0       # clean cache: reclaimed
    assert int(m.read_file("/a", "memory.current")) <= 20 * P
    assert t.state == "alive" and events(m, "/a")["oom"] == "0"
    v = m.mmap_anon(t, 16)
    m.touch(t, v)
    m.mlock(t, v)
    assert m.write_file("/a", "memory.max", "0") == 0     # nothing reclaimable: OOM kill
    assert t.state == "killed"
    # the victim's kernel memory went back into the per-CPU stock (refill_stock) and the
    # write drains only once: one more OOM round, with nobody left to kill, ends the loop
    assert events(m, "/a")["oom"] == "2" and events(m, "/a")["oom_kill"] == "1"
    assert check(m.k) == []


def test_memory_high_write_reclaims_and_never_kills(m):
    t = m.spawn("A", "/a")
    m.touch(t, m.mmap_anon(t, 64))
    assert m.write_file("/a", "memory.high", "0") == 0
    assert t.state == "alive" and m.read_file("/a", "memory.high") == "0\n"
    assert int(m.read_file("/a", "memory.swap.current")) > 0


def test_memory_reclaim_syntax_per_version(m):
    t = m.spawn("A", "/a")
    assert m.write(t, m.create("/data/f").name, 40) == 40
    m.sync()
    assert m.write_file("/a", "memory.reclaim", f"{8 * P}") == 0
    assert m.write_file("/a", "memory.reclaim", "1G") == -Errno.EAGAIN
    swappiness = m.write_file("/a", "memory.reclaim", "4096 swappiness=10")
    empty = m.write_file("/a", "memory.reclaim", "\n")
    if m.k.profile.name == "6.12":
        assert swappiness in (0, -Errno.EAGAIN) and empty == -Errno.EINVAL
        assert m.write_file("/a", "memory.reclaim", "4096 swappiness=201") == -Errno.EINVAL
        assert m.write_file("/a", "memory.reclaim", "4096 x=1") == -Errno.EINVAL
    else:
        assert swappiness == -Errno.EINVAL and empty == -Errno.EAGAIN


def test_subtree_control_decides_which_files_exist(m):
    m.mkdir("/a/c")
    with pytest.raises(InvalidRequest, match=r"has not enabled \+memory"):
        m.read_file("/a/c", "memory.current")
    assert m.read_file("/a/c", "cgroup.controllers") == ""
    assert m.write_file("/a", "cgroup.subtree_control", "+memory") == 0
    assert m.read_file("/a", "cgroup.subtree_control") == "memory\n"
    assert m.read_file("/a/c", "memory.current") == "0\n"
    assert m.write_file("/a", "cgroup.subtree_control", "+bogus") == -Errno.EINVAL
    assert m.write_file("/a", "cgroup.subtree_control", "memory") == -Errno.EINVAL
    assert m.write_file("/a", "cgroup.subtree_control", "+cpu") == -Errno.ENOENT
    assert m.write_file("/a/c", "cgroup.subtree_control", "+memory") == 0
    assert m.write_file("/a", "cgroup.subtree_control", "-memory") == -Errno.EBUSY
    assert m.write_file("/a/c", "cgroup.subtree_control", "-memory +memory -memory") == 0
    assert m.write_file("/a", "cgroup.subtree_control", "-memory") == 0


def test_no_internal_processes(m):
    t = m.spawn("A", "/a")
    m.mkdir("/a/c")
    assert m.write_file("/a", "cgroup.subtree_control", "+memory") == -Errno.EBUSY
    assert m.move_task(t, "/") == 0
    assert m.write_file("/a", "cgroup.subtree_control", "+memory") == 0
    assert m.write_file("/a", "cgroup.procs", str(t.pid)) == -Errno.EBUSY
    with pytest.raises(InvalidRequest, match="no processes of its own"):
        m.spawn("B", "/a")
    assert m.write_file("/a/c", "cgroup.procs", str(t.pid)) == 0
    assert m.read_file("/a/c", "cgroup.procs") == f"{t.pid}\n"
    assert m.write_file("/a/c", "cgroup.procs", "999") == -Errno.ESRCH
    assert m.write_file("/a/c", "cgroup.procs", "-1") == -Errno.EINVAL
    assert m.write_file("/a/c", "cgroup.procs", "x") == -Errno.EINVAL


def test_v2_has_no_v1_files_and_6_12_has_no_v1_at_all(m):
    with pytest.raises(InvalidRequest, match="no such file in the v2 memory controller"):
        m.read_file("/a", "memory.usage_in_bytes")
    with pytest.raises(InvalidRequest, match="kernel 6.12 has no cgroup v1 memory controller"):
        Machine(4096, profile="6.12", cgroup="v1")
    with pytest.raises(InvalidRequest, match="kernel 3.17 has no cgroup v2"):
        Machine(4096, profile="3.17", cgroup="v2")


# ---------------------------------------------------------------- v1 on 6.1


@pytest.fixture
def v1():
    m = Machine(4096, swap_pages=256, profile="6.1", cgroup="v1")
    m.mkdir("/a")
    return m


def test_6_1_v1_reads(v1):
    r = lambda name: v1.read_file("/a", name)  # noqa: E731
    assert r("memory.limit_in_bytes") == MAX_BYTES
    assert r("memory.memsw.limit_in_bytes") == MAX_BYTES
    assert r("memory.soft_limit_in_bytes") == MAX_BYTES
    assert r("memory.use_hierarchy") == "1\n"
    assert r("memory.oom_control") == "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"
    t = v1.spawn("A", "/a")
    v1.touch(t, v1.mmap_anon(t, 3))
    keys = [line.split()[0] for line in r("memory.stat").splitlines()]
    base = list(PROFILES["6.1"].v1_stat_keys) + ["pgpgin", "pgpgout", "pgfault", "pgmajfault",
                                                 "inactive_anon", "active_anon",
                                                 "inactive_file", "active_file", "unevictable"]
    assert keys == base + ["hierarchical_memory_limit", "hierarchical_memsw_limit"] + [
        f"total_{k}" for k in base]
    stat = v1.stat("/a")
    assert stat["rss"] == 3 * P and stat["cache"] == 0 and stat["pgpgin"] == 3
    assert stat["hierarchical_memory_limit"] == int(MAX_BYTES)


def test_6_1_v1_writes(v1):
    w = lambda name, text, path="/a": v1.write_file(path, name, text)  # noqa: E731
    r = lambda name: v1.read_file("/a", name)  # noqa: E731
    assert w("memory.limit_in_bytes", "4097") == 0 and r("memory.limit_in_bytes") == f"{P}\n"
    assert w("memory.limit_in_bytes", "-1") == 0 and r("memory.limit_in_bytes") == MAX_BYTES
    assert w("memory.limit_in_bytes", "max") == -Errno.EINVAL
    assert w("memory.limit_in_bytes", "1M", "/") == -Errno.EINVAL
    assert w("memory.soft_limit_in_bytes", "1M", "/") == 0
    assert w("memory.use_hierarchy", "1") == 0
    assert w("memory.use_hierarchy", "0") == -Errno.EINVAL
    assert w("memory.swappiness", "200") == 0 and w("memory.swappiness", "201") == -Errno.EINVAL
    assert w("memory.move_charge_at_immigrate", "3") == 0
    assert w("memory.move_charge_at_immigrate", "4") == -Errno.EINVAL
    assert w("memory.memsw.limit_in_bytes", "1M") == -Errno.EINVAL  # below the memory limit
    assert w("memory.limit_in_bytes", "1M") == 0
    assert w("memory.memsw.limit_in_bytes", "1M") == 0
    assert w("memory.limit_in_bytes", "2M") == -Errno.EINVAL      # above memsw
    t = v1.spawn("A", "/a")
    v1.touch(t, v1.mmap_anon(t, 100))
    assert t.state == "alive"
    assert w("memory.memsw.limit_in_bytes", "-1") == 0
    assert w("memory.limit_in_bytes", "-1") == 0
    v1.mlock(t, t.mm.vmas[0])
    assert w("memory.limit_in_bytes", f"{10 * P}") == -Errno.EBUSY  # mlocked: no progress
    assert check(v1.k) == []


# ---------------------------------------------------------------- every writable file


GOOD = {
    "memory.min": ("1M", "1048576\n"), "memory.low": ("1M", "1048576\n"),
    "memory.high": ("2M", "2097152\n"), "memory.max": ("4M", "4194304\n"),
    "memory.swap.high": ("1M", "1048576\n"), "memory.swap.max": ("1M", "1048576\n"),
    "memory.zswap.max": ("1M", "1048576\n"), "memory.zswap.writeback": ("0", "0\n"),
    "memory.oom.group": ("1", "1\n"), "memory.peak": ("reset", None),
    "memory.swap.peak": ("reset", None), "memory.reclaim": ("0", None),
    "cgroup.subtree_control": ("+memory", "memory\n"), "cgroup.procs": (None, None),
    "memory.limit_in_bytes": ("4M", "4194304\n"),
    "memory.memsw.limit_in_bytes": ("8M", "8388608\n"),
    "memory.soft_limit_in_bytes": ("2M", "2097152\n"),
    "memory.max_usage_in_bytes": ("0", None), "memory.memsw.max_usage_in_bytes": ("0", None),
    "memory.failcnt": ("0", "0\n"), "memory.memsw.failcnt": ("0", "0\n"),
    "memory.force_empty": ("0", None), "memory.use_hierarchy": ("1", "1\n"),
    "memory.swappiness": ("10", "10\n"), "memory.move_charge_at_immigrate": ("3", "3\n"),
    "memory.oom_control": ("1", None), "tasks": (None, None),
}


@pytest.mark.parametrize("profile,cgroup", [("3.17", "v1"), ("6.1", "v1"), ("6.1", "v2"),
                                            ("6.12", "v2")])
def test_every_writable_file_takes_a_value_and_reads_it_back(profile, cgroup):
    m = Machine(4096, swap_pages=256, profile=profile, cgroup=cgroup)
    m.mkdir("/a")
    t = m.spawn("A", "/")
    writable = [n for n in m.fs.files("/a") if n in m.fs._write]
    assert writable and set(writable) <= set(GOOD), set(writable) - set(GOOD)
    for name in writable:
        text, back = GOOD[name]
        if text is None:                     # a pid
            text = str(t.pid)
            back = f"{t.pid}\n"
        if name == "memory.use_hierarchy" and profile == "3.17":
            text, back = "0", "0\n"
        assert m.write_file("/a", name, text) == 0, (name, text)
        if back is not None:
            assert m.read_file("/a", name) == back, name
        if name in ("tasks", "cgroup.procs"):
            assert m.move_task(t, "/") == 0
    assert check(m.k) == []


def test_6_12_peak_resets_are_per_open_file():
    m = Machine(65536, profile="6.12", cgroup="v2")
    m.mkdir("/t")
    t = m.spawn("A", "/t")
    m.touch(t, m.mmap_anon(t, 1000))
    m.exit(t)
    a, b = m.open_file("/t", "memory.peak"), m.open_file("/t", "memory.peak")
    assert a.read() == b.read() == f"{1024 * P}\n"      # never written: the lifetime peak
    assert a.write("reset\n") == 0
    after_exit = m.read_file("/t", "memory.current")      # what the stock still holds
    assert a.read() == after_exit != f"{1024 * P}\n"     # restarted at the current usage
    assert b.read() == m.read_file("/t", "memory.peak") == f"{1024 * P}\n"
    u = m.spawn("B", "/t")
    m.touch(u, m.mmap_anon(u, 100))
    grown = m.read_file("/t", "memory.current")
    assert a.read() == grown                             # the highest usage since the reset
    m.exit(u)
    now = m.read_file("/t", "memory.current")
    assert b.write("reset") == 0
    # 6.12's peak_write, literally: the shared local_watermark restarts at the current usage
    # and the other written files are only raised to that usage, so a loses the peak it saw
    assert a.read() == now != grown
    a.close()
    b.close()
    v = Machine(65536, profile="6.1", cgroup="v2")
    v.mkdir("/t")
    assert v.open_file("/t", "memory.peak").write("reset") == -Errno.EINVAL
    with pytest.raises(InvalidRequest, match="only memory.peak and memory.swap.peak"):
        m.open_file("/t", "memory.current")
