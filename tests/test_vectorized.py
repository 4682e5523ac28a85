"""The array versions of the fault and zap paths leave exactly the state of the per-page
reference paths, on random workloads."""

import numpy as np
import pytest
from hypothesis import example, given
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
# swap-in readahead once waited for ever on a freed slot held by the swap slot cache
@example(kind=("6.1", "v2"), limit=40, swap=400, cpus=1, nodes=1,
         ops=[("touch", 1, 1), ("touch", 0, 173), ("touch", 0, 2)])
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


@given(nodes=st.integers(1, 2), node=st.integers(0, 1), run=st.booleans(),
       offsets=st.lists(st.integers(0, (1 << 16) - 1), unique=True, min_size=1, max_size=400),
       start=st.integers(0, (1 << 16) - 1), length=st.integers(1, 3000),
       freed=st.integers(0, 400))
def test_bulk_alloc_and_free_count_pages_per_block_and_node(nodes, node, run, offsets, start,
                                                            length, freed):
    """prep_new_pages and free_pages_bulk keep block_free and nr_free equal to the pages
    mem_map shows free, for a run (slice) or any pfns: few (sorted), many (counted), across
    the node boundary."""
    from memcgsim.mm.mm_types import HPAGE_PMD_NR, PG_buddy
    from memcgsim.mm.page_alloc import free_pages_bulk, prep_new_pages

    m = Machine(1 << 17, nodes=nodes)
    k = m.k
    fa = k.free_area
    node %= nodes
    span = fa.pages_per_node
    lo = node * span

    def agree():
        free = k.mem_map.flags & PG_buddy != 0
        assert fa.block_free.tolist() == free.reshape(-1, HPAGE_PMD_NR).sum(axis=1).tolist()
        assert fa.nr_free == free.reshape(nodes, -1).sum(axis=1).tolist()

    if run:
        a = lo + start % span
        pfns = slice(a, min(a + length, lo + span))
        taken = np.arange(pfns.start, pfns.stop)
    else:
        pfns = taken = lo + np.array(offsets, dtype=np.int64) % span
    prep_new_pages(k, pfns, node)
    agree()
    if freed:
        # a part of them back (an array: perhaps a few), then the rest, then a run across
        # the nodes' boundary
        back = taken[:freed]
        k.mem_map.refcount[back] = 0
        free_pages_bulk(k, back)
        agree()
        rest = taken[freed:]
        free_pages_bulk(k, rest)
        agree()
        cross = slice(max(0, span - length // 2), min(k.nr_pages, span + length // 2))
        prep_new_pages(k, cross, 0)
        fa.nr_free[0] += cross.stop - cross.start        # prep counts them all to node 0
        for n in range(nodes):
            fa.nr_free[n] -= int(np.count_nonzero(
                (np.arange(cross.start, cross.stop) // span) == n))
        agree()
        free_pages_bulk(k, cross)
        agree()


@given(kind=st.sampled_from(KINDS), nodes=st.integers(1, 2), run=st.booleans(),
       pages=st.lists(st.tuples(st.booleans(), st.integers(0, 2), st.integers(0, 2),
                                st.integers(0, 3), st.integers(0, 2)), min_size=1, max_size=200),
       start=st.integers(0, 4095), offsets=st.lists(st.integers(0, 4095), unique=True,
                                                    min_size=200, max_size=200))
def test_bulk_lru_removal_and_uncharge_count_per_memcg_and_list(kind, nodes, run, pages,
                                                               start, offsets):
    """_del_from_lru_bulk and _uncharge_bulk on pages of several memcgs, lists, nodes and
    page_cgroup states move each count as the pages one by one would."""
    from memcgsim.mm.memcontrol import (
        MEM_CGROUP_EVENTS_PGPGOUT,
        MEM_CGROUP_STAT_RSS,
    )
    from memcgsim.mm.mm_types import (
        PG_active,
        PG_anon,
        PG_lru,
        PG_swapbacked,
        PG_unevictable,
        page_lru,
    )
    from memcgsim.mm.page_cgroup import PCG_MEM, PCG_MEMSW, PCG_USED
    from memcgsim.mm.vectorized import _del_from_lru_bulk, _uncharge_bulk

    profile, cgroup = kind
    m = Machine(4096, nodes=nodes, profile=profile, cgroup=cgroup)
    m.mkdir("/a")
    m.mkdir("/a/b")
    k = m.k
    memcgs = list(k.memcg_by_id.values())
    big = 1 << 20
    for memcg in memcgs:
        for lv in memcg.lruvecs:
            lv.lru_size = [big] * len(lv.lru_size)
        for counter in (memcg.res, memcg.memsw):
            counter.usage = big * (1 + len(memcgs))
    if run:
        a = start % (4096 - len(pages))
        pfns = slice(a, a + len(pages))
        arr = np.arange(pfns.start, pfns.stop)
    else:
        pfns = arr = np.array(offsets[:len(pages)], dtype=np.int64)
    lru_bits = (0, PG_lru, PG_lru | PG_active, PG_lru | PG_unevictable)
    pcg = (0, PCG_USED | PCG_MEM, PCG_USED | PCG_MEM | PCG_MEMSW)
    want_lru = {(mc.id, lv.node): list(lv.lru_size) for mc in memcgs for lv in mc.lruvecs}
    want_usage = {id(c): c.usage for mc in memcgs for c in (mc.res, mc.memsw)}
    want_rss = {mc.id: list(mc.stat) for mc in memcgs}
    want_out = {mc.id: list(mc.events) for mc in memcgs}
    for pfn, (swapbacked, on, owner, lru_pick, pc_pick) in zip(arr.tolist(), pages,
                                                               strict=True):
        fl = PG_anon | (PG_swapbacked if swapbacked else 0) | lru_bits[lru_pick]
        lru_memcg, owner = memcgs[on], memcgs[owner]
        k.mem_map.flags[pfn] = fl
        k.mem_map.lru_memcg[pfn] = lru_memcg.id
        k.pc.flags[pfn] = pcg[pc_pick]
        k.pc.memcg[pfn] = owner.id
        if fl & PG_lru:
            want_lru[lru_memcg.id, k.page_to_nid(pfn)][page_lru(fl)] -= 1
        if pcg[pc_pick] & PCG_USED:
            if not owner.is_root():
                for c in owner.res.chain():
                    want_usage[id(c)] -= 1
                if pcg[pc_pick] & PCG_MEMSW:
                    for c in owner.memsw.chain():
                        want_usage[id(c)] -= 1
            if k.profile.stats == "charge-type":
                want_rss[owner.id][MEM_CGROUP_STAT_RSS] -= 1
            want_out[owner.id][MEM_CGROUP_EVENTS_PGPGOUT] += 1
    flags_before = k.mem_map.flags[arr].copy()
    _del_from_lru_bulk(k, pfns)
    _uncharge_bulk(k, pfns)
    assert {(mc.id, lv.node): list(lv.lru_size) for mc in memcgs
            for lv in mc.lruvecs} == want_lru
    assert {id(c): c.usage for mc in memcgs for c in (mc.res, mc.memsw)} == want_usage
    assert {mc.id: list(mc.stat) for mc in memcgs} == want_rss
    assert {mc.id: list(mc.events) for mc in memcgs} == want_out
    assert k.mem_map.flags[arr].tolist() == (
        flags_before & ~(PG_lru | PG_active | PG_unevictable)).tolist()
    assert not np.any(k.pc.flags[arr])


COW_OPS = st.lists(
    st.tuples(st.sampled_from(["touch", "touch", "touch", "fork", "exit", "mmap", "mlock",
                               "reclaim", "limit"]),
              st.integers(0, 7), st.integers(0, 300), st.integers(1, 300)),
    min_size=1, max_size=14)


@given(kind=st.sampled_from(KINDS), limit=st.integers(0, 400), swap=st.sampled_from([0, 300]),
       cpus=st.integers(1, 2), ops=COW_OPS)
def test_write_faults_on_present_ptes_match_the_per_page_faults(kind, limit, swap, cpus, ops):
    """Touching pages already mapped: writable ones only count the fault, write-protected
    ones a fork left are copied (mapped more than once) or taken back (mapped once), with a
    limit, swap, mlock and reclaim in play: the bulk runs leave the per-page paths' state
    after every operation, and they run."""
    import memcgsim.mm.vectorized as vec

    kinds_done = []
    orig = vec._fault_present_run

    def counting(k, task, vma, start, stop):
        got = orig(k, task, vma, start, stop)
        if got:
            kinds_done.append(got)
        return got

    vec._fault_present_run = counting
    try:
        machines = []
        for vectorized in (False, True):
            m = Machine(4096, swap_pages=swap, cpus=cpus, profile=kind[0], cgroup=kind[1],
                        vectorized=vectorized)
            if kind[0] == "3.17":
                assert m.set_use_hierarchy("/", False) == 0
            m.mkdir("/a")
            if limit:
                m.set_limit("/a", limit + 60)
            t = m.spawn("T", "/a", cpu=0)
            m.touch(t, m.mmap_anon(t, 200))
            machines.append(m)
        for step, (op, who, x, n) in enumerate(ops):
            for m in machines:
                tasks = [t for t in m.k.tasks.values() if t.state == "alive"]
                if not tasks:
                    continue
                t = tasks[who % len(tasks)]
                vmas = t.mm.vmas
                if op == "touch" and vmas:
                    v = vmas[x % len(vmas)]
                    start = x % v.npages
                    m.touch(t, v, start, min(n, v.npages - start))
                elif op == "fork" and len(tasks) < 5:
                    m.fork(t, f"F{step}")
                elif op == "exit" and len(tasks) > 1:
                    m.exit(t)
                elif op == "mmap" and len(vmas) < 4:
                    m.touch(t, m.mmap_anon(t, n))
                elif op == "mlock" and vmas:
                    m.mlock(t, vmas[x % len(vmas)])
                elif op == "reclaim" and vmas:
                    v = vmas[x % len(vmas)]
                    pfn = m.pfn_of(v, x % v.npages)
                    if pfn >= 0:
                        m.reclaim(pfn)
                elif op == "limit":
                    m.set_limit("/a", x + 100)
            assert_same(snapshot(machines[0]), snapshot(machines[1]), f"step {step} {op}")
        assert check(machines[1].k) == []
    finally:
        vec._fault_present_run = orig
    # with no limit the first region is all present: a first touch of it runs in bulk
    if not limit and ops[0][0] == "touch":
        assert kinds_done


def test_a_fork_then_writes_copy_and_take_back_in_bulk():
    """The fork-cow shape: the child's writes copy every page, the parent's writes after the
    child exits take every page back; both in bulk, to the per-page paths' state."""
    import memcgsim.mm.vectorized as vec

    runs = []
    orig = vec._fault_present_run

    def counting(k, task, vma, start, stop):
        got = orig(k, task, vma, start, stop)
        runs.append(got)
        return got

    vec._fault_present_run = counting
    try:
        machines = []
        for vectorized in (False, True):
            m = Machine(8192, profile="6.12", cgroup="v2", vectorized=vectorized)
            m.mkdir("/svc")
            m.set_limit("/svc", 3000)
            p = m.spawn("P", "/svc")
            heap = m.mmap_anon(p, 1000)
            m.touch(p, heap)
            c = m.fork(p, "C")
            m.touch(c, c.mm.vmas[0])
            after_copy = snapshot(m)
            m.exit(c)
            m.touch(p, heap)
            machines.append((m, after_copy))
        assert_same(machines[0][1], machines[1][1], "after the child's writes")
        assert_same(snapshot(machines[0][0]), snapshot(machines[1][0]), "after the parent's")
        assert check(machines[1][0].k) == []
    finally:
        vec._fault_present_run = orig
    assert runs == [1000, 1000]


CACHE_OPS = st.lists(
    st.tuples(st.sampled_from(["write", "write", "sync", "read", "reclaim", "limit", "touch",
                               "truncate", "drop", "map"]),
              st.integers(0, 7), st.integers(1, 400)),
    min_size=1, max_size=12)


@given(kind=st.sampled_from(KINDS), swap=st.sampled_from([0, 300]), cpus=st.integers(1, 2),
       ops=CACHE_OPS)
def test_reclaim_of_clean_cache_matches_the_per_page_reclaim(kind, swap, cpus, ops):
    """Page cache written, synced, mapped and read under a limit that reclaim enforces (and,
    on v2, memory.reclaim), and drop_caches: batches of clean, unmapped cache pages dropped
    in bulk leave the per-page paths' state after every operation."""
    machines = []
    for vectorized in (False, True):
        m = Machine(4096, swap_pages=swap, cpus=cpus, profile=kind[0], cgroup=kind[1],
                    vectorized=vectorized)
        if kind[0] == "3.17":
            assert m.set_use_hierarchy("/", False) == 0
        m.mkdir("/a")
        machines.append((m, [m.spawn("T", "/a", cpu=0), m.spawn("U", "/a", cpu=cpus - 1)]))
    for step, (op, who, n) in enumerate(ops):
        for m, tasks in machines:
            t = tasks[who % 2]
            name = f"/data/f{who % 3}"
            if t.state != "alive":
                continue
            if op == "write":
                m.write(t, name, n)
            elif op == "sync":
                m.sync()
            elif op == "read" and name in m.k.files:
                m.read(t, name)
            elif op == "reclaim":
                if m.k.cgroup_v2:
                    m.write_file("/a", "memory.reclaim", str(n * 4096))
                else:
                    m.set_limit("/a", n + 40)
            elif op == "limit":
                m.set_limit("/a", n + 40)
            elif op == "touch":
                m.touch(t, m.mmap_anon(t, n % 64 + 1))
            elif op == "truncate" and name in m.k.files:
                m.truncate(name, n % 50)
            elif op == "drop":
                m.drop_caches()
            elif op == "map" and name in m.k.files and m.k.files[name].size_pages:
                v = m.mmap_file(t, name)
                m.touch(t, v, 0, min(n, v.npages), write=bool(n % 2))
        assert_same(snapshot(machines[0][0]), snapshot(machines[1][0]), f"step {step} {op}")
    assert check(machines[1][0].k) == []


def test_memory_reclaim_drops_clean_cache_in_bulk():
    """memory.reclaim of a synced file: the batches go through _drop_clean_cache, to the
    per-page paths' state."""
    import memcgsim.mm.vectorized as vec

    dropped = []
    orig = vec._drop_clean_cache

    def counting(k, pfns):
        got = orig(k, pfns)
        dropped.append(got)
        return got

    vec._drop_clean_cache = counting
    try:
        machines = []
        for vectorized in (False, True):
            m = Machine(8192, profile="6.12", cgroup="v2", vectorized=vectorized)
            m.mkdir("/web")
            t = m.spawn("W", "/web")
            m.write(t, "/srv/static", 3000)
            m.sync()
            assert m.write_file("/web", "memory.reclaim", str(2000 * 4096)) == 0
            machines.append(m)
        assert_same(snapshot(machines[0]), snapshot(machines[1]), "after memory.reclaim")
        assert check(machines[1].k) == []
    finally:
        vec._drop_clean_cache = orig
    assert sum(d for d in dropped if d) >= 2000 - 32


def test_drop_caches_drops_in_bulk_and_leaves_what_it_must():
    """drop_caches of a file partly dirty and partly mapped: the clean, unmapped pages go in
    bulk, the rest stay, to the per-page paths' state."""
    import memcgsim.machine as machine_mod

    dropped = []
    orig = machine_mod.invalidate_mapping_pages_bulk

    def counting(k, mapping):
        got = orig(k, mapping)
        dropped.append(got)
        return got

    machine_mod.invalidate_mapping_pages_bulk = counting
    try:
        machines = []
        for vectorized in (False, True):
            m = Machine(4096, profile="6.1", cgroup="v2", vectorized=vectorized)
            m.mkdir("/a")
            t = m.spawn("T", "/a")
            m.write(t, "/data/f", 600)
            m.sync()
            m.write(t, "/data/f", 100, offset=50)       # dirty again
            v = m.mmap_file(t, "/data/f")
            m.touch(t, v, 300, 100, write=False)        # mapped
            assert m.drop_caches() == 400
            machines.append(m)
        assert_same(snapshot(machines[0]), snapshot(machines[1]), "after drop_caches")
        assert check(machines[1].k) == []
    finally:
        machine_mod.invalidate_mapping_pages_bulk = orig
    assert dropped == [400]


SIBLING_OPS = st.lists(
    st.tuples(st.sampled_from(["touch", "touch", "touch", "munmap", "low", "high", "max"]),
              st.integers(0, 7), st.integers(1, 500)),
    min_size=1, max_size=12)


@given(kind=st.sampled_from([("6.1", "v1"), ("6.1", "v2"), ("6.12", "v2")]),
       parent_max=st.integers(60, 600), swap=st.sampled_from([0, 400]), cpus=st.integers(1, 2),
       ops=SIBLING_OPS)
def test_faults_under_a_parents_limit_match_the_per_page_faults(kind, parent_max, swap, cpus,
                                                                 ops):
    """Two sibling groups under a parent's memory.max: once the parent's margin is below a
    charge batch, each fault's batch attempt is refused at the parent, raising the peaks of
    the levels below it, and one page is charged; the bulk runs of such faults leave the
    per-page paths' state after every operation."""
    import memcgsim.mm.vectorized as vec

    ancestor_runs = []
    orig = vec._exact_fail_level

    def noting(memcg, batch):
        got = orig(memcg, batch)
        if got is not None and got[1]:
            ancestor_runs.append(True)
        return got

    vec._exact_fail_level = noting
    try:
        machines = []
        for vectorized in (False, True):
            m = Machine(4096, swap_pages=swap, cpus=cpus, profile=kind[0], cgroup=kind[1],
                        swap_accounting=False, vectorized=vectorized)
            m.mkdir("/p")
            if kind[1] == "v2":
                assert m.write_file("/p", "cgroup.subtree_control", "+memory") == 0
            m.mkdir("/p/a")
            m.mkdir("/p/b")
            m.set_limit("/p", parent_max)
            machines.append((m, [m.spawn("A", "/p/a", cpu=0),
                                 m.spawn("B", "/p/b", cpu=cpus - 1)]))
        for step, (op, who, n) in enumerate(ops):
            for m, tasks in machines:
                t = tasks[who % 2]
                if t.state != "alive":
                    continue
                child = "/p/a" if who % 2 == 0 else "/p/b"
                if op == "touch":
                    m.touch(t, m.mmap_anon(t, n))
                elif op == "munmap" and t.mm.vmas:
                    m.munmap(t, t.mm.vmas[0])
                elif op == "low" and kind[1] == "v2":
                    m.write_file(child, "memory.low", str(n * 4096))
                elif op == "high" and kind[1] == "v2":
                    m.write_file("/p", "memory.high", str((parent_max + n // 8) * 4096))
                elif op == "max":
                    m.set_limit(child, n + 100)
            assert_same(snapshot(machines[0][0]), snapshot(machines[1][0]), f"step {step} {op}")
        assert check(machines[1][0].k) == []
    finally:
        vec._exact_fail_level = orig


def test_a_parents_limit_takes_the_bulk_faults_one_page_at_a_time():
    """The pod shape: a sibling fills most of the parent; the other's faults then charge page
    by page, refused a batch at the parent each time, in bulk and to the per-page state."""
    import memcgsim.mm.vectorized as vec

    runs = []
    orig = vec._exact_fail_level

    def noting(memcg, batch):
        got = orig(memcg, batch)
        runs.append(None if got is None else len(got[1]))
        return got

    vec._exact_fail_level = noting
    try:
        machines = []
        for vectorized in (False, True):
            m = Machine(8192, cpus=2, profile="6.12", cgroup="v2", vectorized=vectorized)
            m.mkdir("/pod")
            assert m.write_file("/pod", "cgroup.subtree_control", "+memory") == 0
            m.mkdir("/pod/app")
            m.mkdir("/pod/side")
            s = m.spawn("S", "/pod/side")
            m.touch(s, m.mmap_anon(s, 900))
            a = m.spawn("A", "/pod/app", cpu=1)     # the sidecar's stock stays on CPU 0
            pod = next(c for c in m.k.memcg_by_id.values() if c.name == "/pod")
            m.set_limit("/pod", pod.res.usage + 50)
            # the app's stock (left by its spawn) serves the first faults, then the parent
            # refuses each batch
            assert m.touch(a, m.mmap_anon(a, 90)) == 90
            machines.append(m)
        assert_same(snapshot(machines[0]), snapshot(machines[1]), "after the faults")
        assert check(machines[1].k) == []
        app = next(c for c in machines[1].k.memcg_by_id.values() if c.name == "/pod/app")
        # the refused batch attempts left the app's peak a batch above its usage
        assert app.res.watermark == app.res.usage - 1 + 64
    finally:
        vec._exact_fail_level = orig
    assert 1 in runs, runs


def test_a_present_run_stops_at_a_swap_entry_whose_slot_lies_past_mem_map():
    """A write-protected run followed by a swap entry whose slot number is larger than the
    machine's page count: the run ends there (its slot is not a pfn) and the swap entry is
    faulted the per-page way, to the per-page paths' state."""
    machines = []
    for vectorized in (False, True):
        m = Machine(512, swap_pages=3000, profile="6.12", cgroup="v2", vectorized=vectorized)
        m.mkdir("/a")
        m.set_limit("/a", 200)
        a = m.spawn("A", "/a")
        big = m.mmap_anon(a, 1500)
        m.touch(a, big)                     # swaps most of it out, slots up to about 1,400
        m.munmap(a, big)                    # frees the slots; the next ones come after them
        heap = m.mmap_anon(a, 60)
        m.touch(a, heap)
        m.fork(a, "C")                      # write-protects the heap
        pfn = m.pfn_of(heap, 30)
        assert m.reclaim(pfn) == 1
        pte = int(heap.pte[30])
        assert pte & (1 << 59) and pte & ((1 << 40) - 1) >= 512      # PTE_SWAP, slot > pages
        m.touch(a, heap)
        machines.append(m)
    assert_same(snapshot(machines[0]), snapshot(machines[1]), "after the touch")
    assert check(machines[1].k) == []
