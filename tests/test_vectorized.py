"""The array versions of the fault and zap paths leave exactly the state of the per-page
reference paths, on random workloads."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memcgsim import Machine, check


def snapshot(m):
    """Everything the model keeps, as comparable Python values."""
    k = m.k
    out = {name: arr.copy() for name, arr in k.mem_map.arrays().items()}
    out.update({name: arr.copy() for name, arr in k.pc.arrays().items()})
    out["block_free"] = k.free_area.block_free.copy()
    out["alloc"] = (list(k.free_area.cursor), list(k.free_area.nr_free))
    out["swap"] = (k.swap.swap_map.copy(), k.swap.cache.copy(), k.swap_cgroup.id.copy(),
                   k.swap.inuse_pages, k.swap.cluster_next)
    out["memcgs"] = [
        (m_.name, [(c.usage, c.max_usage, c.limit, c.failcnt, list(c.underflows))
                   for c in (m_.res, m_.memsw, *((m_.swap,) if m_.swap else ()))],
         list(m_.stat), list(m_.events), m_.nr_page_events,
         dict(m_.memory_events), dict(m_.memory_events_local), dict(m_.vm_events),
         [list(lv.lru_size) for lv in m_.lruvecs], m_.swap_css_refs)
        for m_ in k.memcg_by_id.values()]
    out["stocks"] = [(s.cached.name if s.cached else None, s.nr_pages) for s in k.stocks]
    out["mms"] = [(mm.id, list(mm.rss_stat), [(v.start, v.pte.copy()) for v in mm.vmas],
                   sorted(mm.pgtables.items()), mm.pgd_memcg)
                  for mm in k.mms.values()]
    out["seq"] = (k._lru_seq, k._obj_ids, dict(k.inflight), list(k.warnings))
    out["tasks"] = [(t.comm, t.state, t.memdie, t.memcg_oom.name if t.memcg_oom else None)
                    for t in k.tasks.values()]
    return out


def assert_same(a, b, where):
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y), f"{where}: {key} differs"
        else:
            assert _eq(x, y), f"{where}: {key} differs:\n{x}\n{y}"


def _eq(x, y):
    if isinstance(x, np.ndarray):
        return np.array_equal(x, y)
    if isinstance(x, (list, tuple)):
        return len(x) == len(y) and all(_eq(a, b) for a, b in zip(x, y, strict=True))
    return x == y


OPS = st.lists(
    st.tuples(st.sampled_from(["mmap", "touch", "munmap", "fork", "exit", "reclaim", "mlock",
                               "write", "limit"]),
              st.integers(0, 3), st.integers(0, 200), st.integers(1, 120)),
    min_size=1, max_size=25)


KINDS = (("3.17", "v1"), ("6.1", "v1"), ("6.1", "v2"), ("6.12", "v2"))


@given(ops=OPS, kind=st.sampled_from(KINDS), cpus=st.integers(1, 2),
       swap=st.sampled_from([0, 64]), swap_accounting=st.booleans(), thp=st.booleans(),
       limits=st.tuples(st.integers(0, 300), st.integers(0, 300)))
def test_vectorized_paths_match_the_per_page_paths(ops, kind, cpus, swap, swap_accounting, thp,
                                                   limits):
    machines = []
    profile, cgroup = kind
    for vectorized in (False, True):
        m = Machine(2048, swap_pages=swap, cpus=cpus, swap_accounting=swap_accounting,
                    thp=thp, vectorized=vectorized, profile=profile, cgroup=cgroup)
        if profile == "3.17":
            assert m.set_use_hierarchy("/", False) == 0
        m.mkdir("/a")
        m.mkdir("/b")
        for path, lim in zip(("/a", "/b"), limits, strict=True):
            if lim:
                if m.k.do_swap_account:
                    m.set_limit(path, lim + 50, memsw=True)
                m.set_limit(path, lim)
        m.spawn("T0", "/a", cpu=0)
        m.spawn("T1", "/b", cpu=cpus - 1)
        machines.append(m)
    assert_same(snapshot(machines[0]), snapshot(machines[1]), "setup")
    for step, (op, who, x, n) in enumerate(ops):
        for m in machines:
            apply(m, op, who, x, n, step)
        assert_same(snapshot(machines[0]), snapshot(machines[1]), f"step {step} {op}")
    assert check(machines[1].k) == []


def apply(m, op, who, x, n, step):
    tasks = [t for t in m.k.tasks.values() if t.state == "alive"]
    if not tasks:
        return
    t = tasks[who % len(tasks)]
    vmas = t.mm.vmas
    if op == "mmap":
        m.mmap_anon(t, n)
    elif op == "touch" and vmas:
        v = vmas[x % len(vmas)]
        start = x % v.npages
        m.touch(t, v, start, min(n, v.npages - start))
    elif op == "munmap" and vmas:
        m.munmap(t, vmas[x % len(vmas)])
    elif op == "fork" and len(m.k.tasks) < 8:
        m.fork(t, f"F{step}")
    elif op == "exit" and len(tasks) > 1:
        m.exit(t)
    elif op == "reclaim" and vmas:
        v = vmas[x % len(vmas)]
        pfn = m.pfn_of(v, x % v.npages)
        if pfn >= 0:
            m.reclaim(pfn)
    elif op == "mlock" and vmas:
        m.mlock(t, vmas[x % len(vmas)])
    elif op == "write":
        m.write(t, f"/data/f{who}", 1 + n % 8)
    elif op == "limit":
        path = "/a" if who % 2 else "/b"
        m.set_limit(path, x + 40)


@given(kind=st.sampled_from([("6.1", "v2"), ("6.12", "v2")]), limit=st.integers(70, 400),
       swap=st.sampled_from([16, 300, 2000]), pages=st.integers(1, 900),
       mlock_first=st.booleans(), second_task=st.booleans())
def test_bulk_reclaim_matches_the_per_page_reclaim(kind, limit, swap, pages, mlock_first,
                                                   second_task):
    """Anonymous memory over memory.max with swap: reclaim's bulk shrink (and the bulk faults
    at the limit, which step through whole reclaim runs) leave exactly the per-page paths'
    state."""
    import memcgsim.mm.vectorized as vec

    used = []
    orig = vec._swap_out_and_free

    def counting(*args, **kwargs):
        used.append(True)
        return orig(*args, **kwargs)

    vec._swap_out_and_free = counting
    try:
        machines = []
        for vectorized in (False, True):
            m = Machine(2048, swap_pages=swap, profile=kind[0], cgroup=kind[1],
                        vectorized=vectorized)
            m.mkdir("/a")
            assert m.write_file("/a", "memory.max", str(limit * 4096)) == 0
            t = m.spawn("T", "/a")
            if mlock_first:
                m.mlock(t, m.mmap_anon(t, 8))
            if second_task:
                u = m.spawn("U", "/a")
                m.touch(u, m.mmap_anon(u, 30))
            m.touch(t, m.mmap_anon(t, pages))
            machines.append(m)
        assert_same(snapshot(machines[0]), snapshot(machines[1]), "after the faults")
        assert check(machines[1].k) == []
    finally:
        vec._swap_out_and_free = orig
    if pages > limit + 64 and swap > 300:
        assert any(used), "the bulk shrink never ran"


def _limited(vectorized, kind, limit, swap, cpus, nodes):
    """A machine with /p/a at memory.max `limit` pages and two tasks in it (other CPU, node)."""
    m = Machine(4096, swap_pages=swap, profile=kind[0], cgroup=kind[1], cpus=cpus, nodes=nodes,
                vectorized=vectorized)
    m.mkdir("/p")
    assert m.write_file("/p", "cgroup.subtree_control", "+memory") == 0
    m.mkdir("/p/a")
    assert m.write_file("/p/a", "memory.max", str(limit * 4096)) == 0
    return m, [m.spawn("T", "/p/a", cpu=0), m.spawn("U", "/p/a", cpu=cpus - 1, node=nodes - 1)]


PRESSURE_OPS = st.lists(
    st.tuples(st.sampled_from(["touch", "touch", "touch", "mmap", "munmap", "other", "file",
                               "swap.max", "memory.high", "memory.low", "parent.max"]),
              st.integers(0, 7), st.integers(1, 700)),
    min_size=1, max_size=12)


@given(kind=st.sampled_from([("6.1", "v2"), ("6.12", "v2")]), limit=st.integers(40, 300),
       swap=st.sampled_from([40, 400, 3000]), cpus=st.integers(1, 2), nodes=st.integers(1, 2),
       ops=PRESSURE_OPS)
def test_faults_at_the_limit_match_the_per_page_faults(kind, limit, swap, cpus, nodes, ops):
    """Faults at memory.max, with the pages of other tasks, other CPUs and nodes, protection,
    swap and high limits and a parent's limit in play: the bulk fault-and-reclaim runs leave
    the per-page paths' state after every operation."""
    machines = [_limited(vec, kind, limit, swap, cpus, nodes) for vec in (False, True)]
    for step, (op, who, n) in enumerate(ops):
        for m, tasks in machines:
            t = tasks[who % 2]
            if t.state != "alive":
                continue
            if op == "touch" or (op == "mmap" and len(t.mm.vmas) < 3):
                if op == "mmap" or not t.mm.vmas:
                    m.mmap_anon(t, n)
                v = t.mm.vmas[who % len(t.mm.vmas)]
                start = (who * 37) % v.npages
                m.touch(t, v, start, min(n, v.npages - start))
            elif op == "munmap" and t.mm.vmas:
                m.munmap(t, t.mm.vmas[0])
            elif op == "other":
                if len(tasks) < 3:
                    tasks.append(m.spawn("O", "/"))
                if tasks[2].state == "alive":
                        m.touch(tasks[2], m.mmap_anon(tasks[2], n % 50 + 1))
            elif op == "file":
                m.write(t, "/data/f", n % 20 + 1)
            elif op == "swap.max":
                m.write_file("/p/a", "memory.swap.max", str(n * 4096))
            elif op == "memory.high":
                m.write_file("/p/a", "memory.high", str((limit - who) * 4096))
            elif op == "memory.low":
                m.write_file("/p/a", "memory.low", str(n * 4096))
            elif op == "parent.max":
                m.write_file("/p", "memory.max", str((limit + n) * 4096))
        assert_same(snapshot(machines[0][0]), snapshot(machines[1][0]), f"step {step} {op}")
    assert check(machines[1][0].k) == []


READ_OPS = st.lists(
    st.tuples(st.sampled_from(["read", "read", "read", "write", "touch", "truncate", "other",
                               "memory.high", "parent.max", "drop"]),
              st.integers(0, 7), st.integers(0, 400), st.integers(1, 600)),
    min_size=1, max_size=12)


@given(kind=st.sampled_from([("6.1", "v2"), ("6.12", "v2")]), limit=st.integers(40, 300),
       swap=st.sampled_from([0, 300]), cpus=st.integers(1, 2), nodes=st.integers(1, 2),
       ops=READ_OPS)
def test_reads_at_the_limit_match_the_per_page_reads(kind, limit, swap, cpus, nodes, ops):
    """Page-cache reads at memory.max, among other files' pages, writes, anonymous memory,
    truncation and other tasks: the bulk read-and-reclaim runs leave the per-page paths'
    state after every operation."""
    machines = []
    for vectorized in (False, True):
        m, tasks = _limited(vectorized, kind, limit, swap, cpus, nodes)
        w = m.spawn("W", "/")
        for name, size in (("/data/f0", 700), ("/data/f1", 90)):
            m.write(w, name, size)
        m.sync()
        m.drop_caches()
        machines.append((m, [*tasks, w]))
    assert_same(snapshot(machines[0][0]), snapshot(machines[1][0]), "setup")
    for step, (op, who, x, n) in enumerate(ops):
        for m, tasks in machines:
            t = tasks[who % 2]
            name = f"/data/f{who % 2}"
            if t.state != "alive":
                continue
            if op == "read":
                m.read(t, name, x, n)
            elif op == "write":
                m.write(t, name, n % 30 + 1, offset=x)
            elif op == "touch":
                m.touch(t, m.mmap_anon(t, n % 40 + 1))
            elif op == "truncate":
                m.truncate(name, x)
            elif op == "other":
                m.read(tasks[2], name, x, n)
            elif op == "memory.high":
                m.write_file("/p/a", "memory.high", str((limit - who) * 4096))
            elif op == "parent.max":
                m.write_file("/p", "memory.max", str((limit + n) * 4096))
            elif op == "drop":
                m.sync()
                m.drop_caches()
        assert_same(snapshot(machines[0][0]), snapshot(machines[1][0]), f"step {step} {op}")
    assert check(machines[1][0].k) == []


@pytest.mark.parametrize("kind", [("6.1", "v2"), ("6.12", "v2")])
def test_a_limit_run_charges_the_page_tables_of_its_faults(kind, monkeypatch):
    """A list long enough for any reclaim in the run: the run goes across page-table pages,
    charging each before its fault's page as pte_alloc does, with the per-page state."""
    import memcgsim.mm.vectorized as vec

    tables = []
    orig = vec._LimitRun.charge

    def charge(self, units=None):
        out = orig(self, units)
        tables.append(self.tables_charged if units is not None else 0)
        return out

    monkeypatch.setattr(vec._LimitRun, "charge", charge)
    machines = []
    for vectorized in (False, True):
        m = Machine(8192, swap_pages=6000, profile=kind[0], cgroup=kind[1],
                    vectorized=vectorized)
        m.mkdir("/a")
        assert m.write_file("/a", "memory.max", str(1500 * 4096)) == 0
        t = m.spawn("T", "/a")
        v = m.mmap_anon(t, 5000)
        assert m.touch(t, v, 0, 1700) == 1700
        assert m.touch(t, v, 1700, 3300) == 3300
        machines.append(m)
    assert_same(snapshot(machines[0]), snapshot(machines[1]), "after the faults")
    assert sum(tables) >= 5
    stat = machines[1].stat("/a")
    # ten PTE pages for 5000 pages, a PMD and a PUD page
    assert stat["pagetables"] == 12 * 4096 and stat["pgsteal"] > 3000
    assert check(machines[1].k) == []


@given(used=st.lists(st.integers(0, 4095), max_size=3000), cursor=st.integers(0, 2047),
       node=st.integers(0, 1), nr=st.integers(1, 2500),
       window=st.one_of(st.none(), st.integers(0, 2500)))
def test_find_free_pages_is_first_fit_from_the_cursor(used, cursor, node, nr, window):
    """The free pages a search finds, against a brute force: the node's free pfns ordered by
    their distance past the cursor (wrapping), those within the window, the first nr."""
    from memcgsim.mm.mm_types import HPAGE_PMD_NR, PG_buddy
    from memcgsim.mm.page_alloc import find_free_pages

    m = Machine(4096, nodes=2)
    k = m.k
    fa = k.free_area
    span = fa.pages_per_node
    taken = np.unique(np.array(used, dtype=np.int64))
    k.mem_map.flags[taken] &= ~PG_buddy
    free = k.mem_map.flags & PG_buddy != 0
    fa.block_free[:] = free.reshape(-1, HPAGE_PMD_NR).sum(axis=1)
    lo = node * span
    fa.cursor[node] = lo + cursor
    pfns = np.flatnonzero(free[lo:lo + span]) + lo
    dist = (pfns - fa.cursor[node]) % span
    order = np.argsort(dist, kind="stable")
    want = pfns[order][dist[order] < (span if window is None else window)][:nr]
    got = find_free_pages(k, node, nr, window=window)
    assert got.tolist() == want.tolist()


LOOK_OPS = st.lists(
    st.tuples(st.sampled_from(["mmap", "shared", "locked", "huge", "huge", "split", "split",
                               "touch", "touch", "munmap", "fork", "exit", "mlock", "munlock",
                               "write", "read", "truncate", "drop", "reclaim", "reclaim_memcg",
                               "migrate", "move", "limit"]),
              st.integers(0, 7), st.integers(0, 300), st.integers(1, 200), st.booleans()),
    min_size=3, max_size=25)


@given(ops=LOOK_OPS, kind=st.sampled_from(KINDS), vectorized=st.booleans(), thp=st.booleans(),
       nodes=st.integers(1, 2), swap=st.sampled_from([0, 300]), fold=st.sampled_from([2, 4096]),
       limit=st.integers(60, 1500))
def test_a_look_at_an_lru_list_is_the_scan_of_mem_map(ops, kind, vectorized, thp, nodes, swap,
                                                      fold, limit):
    """Reclaim's look at an LRU list, made from the list's log of the pages that joined it,
    is what a scan of all of mem_map finds (check_lru_tails raises AssertionError where not):
    on random operations with reclaim, some followed by a look at every list; fold=2 drops
    the stale entries of the logs all the time."""
    from memcgsim.mm.mm_types import NR_LRU_LISTS
    from memcgsim.mm.vmscan import LruLog, _look_at_list

    orig_fold = LruLog.FOLD
    LruLog.FOLD = fold
    try:
        m = Machine(2048, swap_pages=swap, nodes=nodes, thp=thp, vectorized=vectorized,
                    profile=kind[0], cgroup=kind[1])
        k = m.k
        k.check_lru_tails = True
        for path in ("/a", "/b"):
            m.mkdir(path)
            if k.cgroup_v2:
                assert m.write_file(path, "memory.max", str(limit * 4096)) == 0
            else:
                m.set_limit(path, limit)
                assert m.write_file(path, "memory.move_charge_at_immigrate", "3") == 0
        tasks = [m.spawn("T0", "/a"), m.spawn("T1", "/b", node=nodes - 1)]
        for step, (op, who, x, n, look) in enumerate(ops):
            _look_op(m, tasks, op, who, x, n, step)
            if look or step == len(ops) - 1:
                for memcg in list(k.memcg_by_id.values()):
                    for lru in range(NR_LRU_LISTS):
                        _look_at_list(k, memcg, lru)
        assert check(k) == []
    finally:
        LruLog.FOLD = orig_fold


def _look_op(m, tasks, op, who, x, n, step):
    from memcgsim.mm.mm_struct import PTE_HUGE

    alive = [t for t in tasks if t.state == "alive"]
    if not alive:
        return
    t = alive[who % len(alive)]
    vmas = t.mm.vmas
    vma = vmas[x % len(vmas)] if vmas else None
    if op in ("mmap", "shared", "locked", "huge") and len(vmas) < 6:
        v = m.mmap_anon(t, 1024 if op == "huge" else n, shared=op == "shared",
                        locked=op == "locked", hugepage=op == "huge")
        if op == "huge":
            m.touch(t, v, x % 512, 512)
    elif op == "touch" and vma is not None:
        start = x % vma.npages
        m.touch(t, vma, start, min(n, vma.npages - start))
    elif op == "munmap" and vma is not None:
        m.munmap(t, vma)
    elif op == "fork" and len(tasks) < 6:
        tasks.append(m.fork(t, f"F{step}"))
    elif op == "exit" and len(alive) > 1:
        m.exit(t)
    elif op == "mlock" and vma is not None:
        m.mlock(t, vma)
    elif op == "munlock" and vma is not None:
        m.munlock(t, vma)
    elif op == "write":
        m.write(t, f"/data/f{who % 3}", 1 + n % 40, offset=x % 50)
    elif op == "read" and f"/data/f{who % 3}" in m.k.files:
        m.read(t, f"/data/f{who % 3}", x % 50, n)
    elif op == "truncate" and f"/data/f{who % 3}" in m.k.files:
        m.truncate(f"/data/f{who % 3}", x % 30)
    elif op == "drop":
        m.sync()
        m.drop_caches()
    elif op == "reclaim" and vma is not None:
        pfn = m.pfn_of(vma, x % vma.npages)
        if pfn >= 0:
            m.reclaim(pfn)
    elif op == "reclaim_memcg":
        m.reclaim_memcg("/a" if who % 2 else "/b", n)
    elif op == "migrate" and vma is not None and m.k.nr_nodes > 1:
        m.migrate(t, vma, who % 2)
    elif op == "split":
        for v in vmas:
            huge = np.flatnonzero(v.pte & PTE_HUGE)
            if len(huge):
                m.split_thp(t, v, int(huge[x % len(huge)]))
                break
    elif op == "move":
        m.move_task(t, "/b" if t.memcg.name == "/a" else "/a")
    elif op == "limit":
        path = "/a" if who % 2 else "/b"
        if m.k.cgroup_v2:
            m.write_file(path, "memory.high" if who % 4 < 2 else "memory.max",
                         str((x + 40) * 4096))
        else:
            m.set_limit(path, x + 40)


def test_a_look_that_misses_pages_of_the_list_scans_mem_map():
    """A look whose log lost pages of the list (nothing in the model does that; a new place
    that put pages on a list without telling the log would) still finds the whole list: the
    pages lru_size counts are more than it found, so it scans."""
    from memcgsim.mm.mm_types import LRU_INACTIVE_FILE
    from memcgsim.mm.vmscan import _look_at_list, _scan_list

    m = Machine(2048, profile="6.12", cgroup="v2")
    m.mkdir("/a")
    t = m.spawn("T", "/a")
    m.write(t, "/data/f", 30)
    k = m.k
    k.check_lru_tails = False
    memcg = m.memcg("/a")
    k.lru_logs.clear()
    tail = _look_at_list(k, memcg, LRU_INACTIVE_FILE)
    want = _scan_list(k, memcg, LRU_INACTIVE_FILE)
    assert len(tail.pfns) == 30 and (tail.pfns, tail.seqs) == want
