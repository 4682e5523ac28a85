"""Memory pressure against the numbers a real 6.1 / 6.12 kernel shows (../shared/spec/
real-kernel-notes.md: v2, -smp 1, THP never): reclaim, swap, memory.high, page cache under
memory.max, kernel memory, memory.min protection."""

import pytest

from memcgsim import Machine, check

P = 4096
M = 1 << 20
MIB = 256            # pages


def v2(profile, swap_mib=0, **kw):
    m = Machine(256 * MIB, swap_pages=swap_mib * MIB, profile=profile, cgroup="v2", **kw)
    m.mkdir("/a")
    return m


def read(m, path, name):
    return int(m.read_file(path, name))


def events(m, path):
    return {k: int(v) for k, v in (x.split() for x in m.read_file(path, "memory.events")
                                   .splitlines())}


@pytest.mark.parametrize("profile", ["6.1", "6.12"])
def test_anonymous_memory_and_its_kernel_memory(profile):
    """50 MiB anonymous: anon exactly 52428800, memory.current 52690944, pagetables 100-108
    KiB, kernel 20-32 KiB for a task before it maps anything."""
    m = v2(profile)
    t = m.spawn("A", "/a")
    assert read(m, "/a", "memory.current") == 64 * P
    assert m.stat("/a")["kernel"] == 28 * 1024
    v = m.mmap_anon(t, 50 * MIB)
    m.touch(t, v)
    stat = m.stat("/a")
    assert stat["anon"] == 52428800
    assert read(m, "/a", "memory.current") == 52690944
    assert stat["pagetables"] == 108 * 1024
    assert stat["kernel"] == stat["pagetables"] + 28 * 1024
    m.munmap(t, v)
    # the real kernel shows 148-160 KiB here; the model 256 KiB: the freed page tables go
    # back into the per-CPU stock (see docs/fidelity.md)
    assert read(m, "/a", "memory.current") == 256 * 1024
    assert m.stat("/a")["pagetables"] == 0
    assert check(m.k) == []


@pytest.mark.parametrize("profile", ["6.1", "6.12"])
def test_swap_under_memory_max(profile):
    """max 30M with swap, 50 MiB anonymous: current about 29.9M, anon 29.5-29.8M, swap.current
    20.25-20.5M; swap back to 0 after munmap."""
    m = v2(profile, swap_mib=256)
    assert m.write_file("/a", "memory.max", "30M") == 0
    t = m.spawn("A", "/a")
    v = m.mmap_anon(t, 50 * MIB)
    assert m.touch(t, v) == 50 * MIB and t.state == "alive"
    assert 29.5 * M <= read(m, "/a", "memory.current") <= 30 * M
    assert 29.4 * M <= m.stat("/a")["anon"] <= 29.9 * M
    assert 20.0 * M <= read(m, "/a", "memory.swap.current") <= 20.6 * M
    ev = events(m, "/a")
    assert ev["max"] > 0 and ev["oom"] == 0 and ev["oom_kill"] == 0
    swapped = read(m, "/a", "memory.swap.current") // 4096
    m.munmap(t, v)
    # 6.1 frees the slots one at a time through the CPU's swap slot cache, which keeps the
    # last 1-64 of them and their swap charge (the real kernel: 5168 swapped, 48 pages left,
    # 196608 bytes); 6.12 frees each page table's run of entries at once, past the cache
    left = 0 if profile == "6.12" else ((swapped - 1) % 64 + 1) * 4096
    assert read(m, "/a", "memory.swap.current") == left
    assert check(m.k) == []


@pytest.mark.parametrize("profile", ["6.1", "6.12"])
def test_memory_high_reclaims_to_high_with_high_events(profile):
    """high 20M, 40 MiB anonymous with swap: current 19.80M, swap 20.45M, 81 high events on the
    real kernel; never an OOM."""
    m = v2(profile, swap_mib=256)
    assert m.write_file("/a", "memory.high", "20M") == 0
    t = m.spawn("A", "/a")
    assert m.touch(t, m.mmap_anon(t, 40 * MIB)) == 40 * MIB and t.state == "alive"
    # the real kernel's swap/anon split varies by about 330 KiB from run to run
    assert 19.45 * M <= read(m, "/a", "memory.current") <= 20 * M
    assert 20.1 * M <= read(m, "/a", "memory.swap.current") <= 20.8 * M
    ev = events(m, "/a")
    assert 40 <= ev["high"] <= 100 and ev["max"] == 0 and ev["oom"] == 0
    assert check(m.k) == []


def test_page_cache_under_memory_max_settles_without_an_oom():
    """50 MiB written to a file under max 30M, no swap: the flusher cleans what reclaim finds
    dirty, reclaim drops it, current stays at about max."""
    m = v2("6.12")
    assert m.write_file("/a", "memory.max", "30M") == 0
    t = m.spawn("A", "/a")
    assert m.write(t, m.create("/data/f").name, 50 * MIB) == 50 * MIB
    assert t.state == "alive"
    assert 29 * M <= read(m, "/a", "memory.current") <= 30 * M
    ev = events(m, "/a")
    assert ev["max"] > 0 and ev["oom"] == 0
    assert check(m.k) == []


def test_memory_min_protects_in_proportion():
    """test_memcg_min (B1-3): B min 50M over C (min 75M), D (25M), E (0), each with 50M of
    page cache; 148M of anon next to them under A's max 200M leaves C about 29M, D about 21M,
    E about 0; 170M more is OOM-killed, and memory.reclaim on C ignores C's own protection."""
    m = Machine(1024 * MIB, profile="6.12", cgroup="v2")
    for p in ("/A", "/A/B", "/A/B/C", "/A/B/D", "/A/B/E", "/A/B/F", "/A/G"):
        m.mkdir(p)
    for p in ("/A", "/A/B"):
        assert m.write_file(p, "cgroup.subtree_control", "+memory") == 0
    assert m.write_file("/A", "memory.max", "200M") == 0
    assert m.write_file("/A/B", "memory.min", "50M") == 0
    for name, low in (("C", "75M"), ("D", "25M"), ("E", "0"), ("F", "500M")):
        assert m.write_file(f"/A/B/{name}", "memory.min", low) == 0
    for name in "CDE":
        t = m.spawn(name, f"/A/B/{name}")
        assert m.write(t, m.create(f"/tmp/{name}").name, 50 * MIB) == 50 * MIB
    m.sync()
    g = m.spawn("G", "/A/G")
    assert m.touch(g, m.mmap_anon(g, 148 * MIB)) == 148 * MIB and g.state == "alive"
    cur = {p: read(m, f"/A/B{p}", "memory.current") / M for p in ("", "/C", "/D", "/E", "/F")}
    assert abs(cur["/C"] - 29) <= 29 * 0.15
    assert abs(cur["/D"] - 21) <= 21 * 0.20
    assert cur["/E"] < 1 and cur["/F"] == 0
    assert 49 <= cur[""] <= 52.5          # the kernel test allows 3%; the model is at ~52
    g2 = m.spawn("G2", "/A/G")
    m.touch(g2, m.mmap_anon(g2, 170 * MIB))
    assert g2.state == "killed"
    assert 49 <= read(m, "/A/B", "memory.current") / M <= 52.5
    assert m.write_file("/A/B/C", "memory.reclaim", "10M") == 0
    assert read(m, "/A/B/C", "memory.current") < cur["/C"] * M - 9 * M
    assert check(m.k) == []


def test_swap_max_bounds_swap_and_counts_swap_events():
    m = v2("6.12", swap_mib=256)
    assert m.write_file("/a", "memory.max", "30M") == 0
    assert m.write_file("/a", "memory.swap.max", "5M") == 0
    t = m.spawn("A", "/a")
    m.touch(t, m.mmap_anon(t, 50 * MIB))
    assert t.state == "killed"                # 30M resident and 5M of swap do not hold 50M
    swap_ev = dict(x.split() for x in m.read_file("/a", "memory.swap.events").splitlines())
    assert int(swap_ev["max"]) > 0 and swap_ev["max"] == swap_ev["fail"]
    assert m.read_file("/a", "memory.swap.peak") == f"{5 * M}\n"
    assert events(m, "/a")["oom_kill"] == 1
    assert check(m.k) == []


def test_memory_low_gives_way_only_under_pressure_with_low_events():
    m = Machine(512 * MIB, profile="6.12", cgroup="v2")
    for p in ("/p", "/p/a", "/p/b"):
        m.mkdir(p)
    assert m.write_file("/p", "cgroup.subtree_control", "+memory") == 0
    assert m.write_file("/p", "memory.max", "100M") == 0
    assert m.write_file("/p/a", "memory.low", "40M") == 0
    a, b = m.spawn("A", "/p/a"), m.spawn("B", "/p/b")
    m.write(a, m.create("/data/a").name, 50 * MIB)
    m.write(b, m.create("/data/b").name, 40 * MIB)
    m.sync()
    m.touch(b, m.mmap_anon(b, 40 * MIB))       # b's own cache goes first; a keeps its low
    assert read(m, "/p/a", "memory.current") >= 40 * M
    assert events(m, "/p/a")["low"] == 0
    m.touch(b, m.mmap_anon(b, 40 * MIB))       # now only a's cache is left to reclaim
    assert b.state == "alive"
    assert read(m, "/p/a", "memory.current") < 40 * M
    assert events(m, "/p/a")["low"] > 0 and events(m, "/p/b")["low"] == 0
    assert check(m.k) == []


@pytest.mark.parametrize("vectorized", [False, True])
def test_a_reclaim_run_takes_each_page_from_the_list_once(vectorized):
    """Two limit reclaim runs over a 50-page inactive list, each of the priority rounds
    1 + 1 + 2 + 4 + 7 + 32 = 47 pages: the second finds the list's tail used up after two
    pages and looks at the list again; the pages it took are still on it (they are isolated
    later) and must not be taken twice (the model once scanned one twice, reclaiming 46)."""
    m = Machine(2048, swap_pages=300, profile="6.1", cgroup="v2", vectorized=vectorized)
    m.mkdir("/a")
    assert m.write_file("/a", "memory.max", str(70 * 4096)) == 0
    t, u = m.spawn("T", "/a"), m.spawn("U", "/a")
    m.touch(u, m.mmap_anon(u, 30))
    m.touch(t, m.mmap_anon(t, 68))
    stat = m.stat("/a")
    assert (stat["pgscan"], stat["pgsteal"]) == (94, 94)
    assert m.memcg("/a").memory_events["max"] == 2
    assert check(m.k) == []


@pytest.mark.parametrize("kernel,outcome", [("6.1", "EAGAIN"), ("6.12", None)])
def test_reclaim_of_a_memcg_sees_its_stale_protection_on_6_1(kernel, outcome):
    """test_memcg_min's tree (conformance B1-3): after reclaim from A has given C an effective
    memory.min covering its usage, memory.reclaim on C itself fails with EAGAIN on 6.1, whose
    mem_cgroup_below_min checks the reclaim target's stale emin (as the real 6.1 does under
    memcgsim validate), and reclaims on 6.12, which leaves the target unprotected."""
    import pathlib

    from memcgsim.scenario import load_scenario, run_scenario

    path = pathlib.Path(__file__).parent / "conformance" / "B1-3.yaml"
    text = path.read_text().replace('kernel: "6.12"', f'kernel: "{kernel}"')
    result = run_scenario(load_scenario(str(path), text))
    reclaim = next(s for s in result.steps if s.kind == "set" and s.where.line == 40)
    assert reclaim.error == outcome
    c = next(c for c in result.checks if c.where.line == 41)
    assert c.ok == (outcome is None)
