"""The interleaving explorer: the correct model passes every race set, each bug put back is
found with its counterexample, and the partial-order reduction changes nothing it finds."""

import pytest

from memcgsim.cli import main
from memcgsim.errors import VMBugOnPage
from memcgsim.explore import explore, explore_random, independent
from memcgsim.races import INJECTIONS, RACE_SETS


@pytest.mark.parametrize("name", sorted(RACE_SETS))
def test_every_race_set_is_clean(name):
    out = explore(RACE_SETS[name])
    assert out.violation is None, "\n".join([out.violation] + out.counterexample)
    assert not out.truncated and out.schedules >= 1 and out.finals
    assert out.states > 1


def test_race_sets_of_three_and_four_paths():
    sizes = {name: len(r.paths) for name, r in RACE_SETS.items()}
    assert sizes["migrate-vs-truncate-vs-reclaim"] == 3
    assert sizes["writeback-migrate-reclaim-munmap"] == 4


@pytest.mark.parametrize("name", sorted(RACE_SETS))
def test_reduction_reaches_the_same_final_states_with_fewer_steps(name):
    full = explore(RACE_SETS[name], por=False)
    reduced = explore(RACE_SETS[name], por=True)
    assert reduced.finals == full.finals
    assert reduced.transitions <= full.transitions


def test_reduction_visits_fewer_schedules_on_the_larger_sets():
    for name in ("migrate-vs-truncate-vs-reclaim", "writeback-migrate-reclaim-munmap",
                 "reclaim-vs-truncate", "swapin-vs-reclaim"):
        full = explore(RACE_SETS[name], por=False)
        reduced = explore(RACE_SETS[name])
        assert reduced.transitions < full.transitions, name
        assert reduced.schedules <= full.schedules, name


@pytest.mark.parametrize("bug,expected", [
    ("B1", "[stats] /a writeback 1 but 0 pages"),
    ("B2", "[underflow] /a stat mapped_file = -1"),
    ("B3", "[flags] pfn 0x0: PCG_USED without PCG_MEM"),
    ("B4", "VMBugOnPage: VM_BUG_ON_PAGE(!lrucare && PageLRU(oldpage))"),
    ("B5", "VMBugOnPage: VM_BUG_ON_PAGE(!lrucare && PageLRU(oldpage))"),
    ("B7", "[warn:bad_page] BUG: Bad page state: pfn 0x0: cgroup check failed"),
    ("B8", "[oom-order] /a: OOM invoked for a charge of 512 pages (a costly order)"),
    ("MEMSW-NOACCT", "[flags] pfn 0x0: PCG_MEMSW set with swap accounting off"),
])
def test_each_injected_bug_is_found_with_and_without_reduction(bug, expected):
    race = RACE_SETS[INJECTIONS[bug][1]]
    for por in (True, False):
        out = explore(race, inject=[bug], por=por)
        assert out.violation is not None and out.violation.startswith(expected), out.violation
        assert out.counterexample and out.counterexample[0][:3] in ("0. ", "1. ")


def test_counterexample_is_numbered_per_path_and_shows_the_pages():
    out = explore(RACE_SETS["replace-page-cache-vs-reclaim"], inject=["B4"])
    assert out.counterexample == [
        "1. splice  #1: takes page lock of pfn 1",
        "2. splice  #2: takes tree_lock of mapping 4",
        "3. splice  #3: releases tree_lock of mapping 4",
        "4. splice  #4: takes page lock of pfn 0",
        "5. splice  #5: takes tree_lock of mapping 3",
        "6. splice  #6: releases tree_lock of mapping 3",
    ]
    assert out.pages[0].splitlines() == [
        "page pfn:0x0 node:0 count:2 mapcount:0 mapping:0 index:0x0 private:0",
        "flags: locked|referenced|lru",
        "page_cgroup: flags USED|MEM|MEMSW mem_cgroup /a",
        "lru: inactive_file of lruvec /a node 0",
    ]


def test_a_problem_carries_its_kind_and_pages_to_the_report():
    """The search hands on a Problem, never a string to parse back: the rule's kind (what the
    shortest counterexample must break again), the message, and the pages the steps changed."""
    from memcgsim.explore import Problem

    out = explore(RACE_SETS["migrate-vs-truncate"], inject=["B2"])
    assert out.problem == Problem("underflow", "/a stat mapped_file = -1", invariant=True,
                                  pages=out.problem.pages)
    assert out.violation == str(out.problem) and out.pages == list(out.problem.pages)
    assert out.pages[0].startswith("page pfn:")
    bug = explore(RACE_SETS["replace-page-cache-vs-reclaim"], inject=["B4"]).problem
    assert (bug.kind, bug.invariant) == ("VMBugOnPage", False)
    assert str(bug) == f"VMBugOnPage: {bug.message}"
    several = Problem("flags", "a", invariant=True, also=(Problem("lru", "b", invariant=True),))
    assert str(several) == "[flags] a; [lru] b"
    assert str(Problem("deadlock", "every unfinished path waits")).startswith("deadlock: ")


def test_counterexample_is_the_shortest():
    """Depth first finds B2 on a longer schedule; the breadth-first pass shortens it to the
    seven steps that lose the count: the migration's re-map before its charge, then the
    truncation's unmap."""
    long = explore(RACE_SETS["migrate-vs-truncate"], inject=["B2"], minimize=False)
    short = explore(RACE_SETS["migrate-vs-truncate"], inject=["B2"])
    assert len(short.schedule) == 7 < len(long.schedule)
    assert short.schedule == [0, 0, 0, 0, 0, 1, 1]


def test_b1_is_an_interleaving():
    """The writeback statistic is lost only when the migration runs between the end of
    writeback's flag clear and its statistic update."""
    out = explore(RACE_SETS["writeback-vs-migrate"], inject=["B1"])
    wb, mig = 0, 1
    s = out.schedule
    assert s[0] == wb and mig in s[1:s.index(wb, 1)]
    assert out.counterexample[0].startswith("1. end-writeback #1: TestClearPageWriteback")


def test_b3_the_second_migration_hits_the_vm_bug_on():
    """With B3 the old page keeps PCG_USED without PCG_MEM (the checker's flag invariant);
    a second migration of it, taken from the LRU in the first one's putback window, then
    trips VM_BUG_ON(!PCG_MEM)."""
    from memcgsim.explore.run import replay

    race = RACE_SETS["migrate-vs-migrate"]
    first = [0] * 7                            # migrate-1 up to its putback window
    run = replay(race, frozenset(["B3"]), first + [1])       # migrate-2 isolates the page
    assert run.log[-2][1] == "putback_lru_page: on the LRU, isolation reference still held"
    run.step(0)                                # migrate-1 drops its isolation reference
    with pytest.raises(VMBugOnPage, match=r"!\(pc->flags & PCG_MEM\)"):
        for _ in range(10):
            run.step(1)
    clean = replay(race, frozenset(), first + [1, 0])
    while 1 in clean.enabled():
        clean.step(1)
    assert clean.done[1] and clean.log[-1] == (1, "returns 0")   # migrated, nothing moved


def test_independence_rule():
    page = ("page", 5)
    other = ("page", 6)
    read5 = (frozenset({page}), frozenset())
    write5 = (frozenset(), frozenset({page}))
    write6 = (frozenset(), frozenset({other}))
    write_all = (frozenset(), frozenset({("page", None)}))
    assert independent(read5, read5)
    assert not independent(read5, write5)
    assert independent(write5, write6)
    assert not independent(write_all, read5)


def test_explore_command(capsys):
    assert main(["explore", "migrate-vs-munmap"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("migrate-vs-munmap: 62 states, 3 complete schedules, 72 steps, ")
    assert out.splitlines()[1:] == ["  migrate returns 0 or 1", "  munmap returns None"]
    assert main(["explore", "--inject", "B3"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("migrate-vs-migrate: ") and "violation: [flags]" in out
    assert "  1. migrate-1 #1: trylock page lock of pfn 0: taken" in out
    assert "  pages:" in out and "page_cgroup: flags USED mem_cgroup /a" in out
    assert main(["explore", "nope"]) == 2
    assert "unknown race set or bug: nope" in capsys.readouterr().err
    assert main(["explore", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "--inject B2" in listing and "--inject B8" in listing
    assert "path migrate " in listing


def test_random_walks_are_seeded_and_find_injected_bugs(capsys):
    a = explore_random(RACE_SETS["swapin-vs-reclaim"], 20, seed=3)
    b = explore_random(RACE_SETS["swapin-vs-reclaim"], 20, seed=3)
    assert a.violation is None and a.schedules == b.schedules == 20
    assert a.transitions == b.transitions and a.finals == b.finals
    assert a.transitions > 20
    bad = explore_random(RACE_SETS["replace-page-cache-vs-reclaim"], 20, seed=1,
                         inject=["B4"])
    assert "!lrucare && PageLRU(oldpage)" in bad.violation
    assert main(["explore", "--random", "5", "--seed", "2", "reclaim-vs-munmap"]) == 0
    assert "reclaim-vs-munmap: " in capsys.readouterr().out


def test_split_of_an_unmapped_thp_frees_its_tails():
    """The tails get a reference each besides their mappings, dropped after the split: a THP
    unmapped while a split held it leaves no page on an LRU list without a reference (found
    by thp-split-vs-munmap)."""
    from memcgsim.machine import Machine
    from memcgsim.mm.huge_memory import split_huge_page
    from memcgsim.mm.swap import get_page, put_page

    m = Machine(1024, thp=True, vectorized=False)
    m.mkdir("/a")
    t = m.spawn("T", "/a")
    vma = m.mmap_anon(t, 512)
    m.touch(t, vma, 0, 1)
    head = m.pfn_of(vma, 0)
    assert m.stat("/a")["rss_huge"] == 512 * 4096
    get_page(m.k, head)
    m.munmap(t, vma)
    m.k.run(split_huge_page(m.k, head))
    assert m.usage("/a") == 1 and m.stat("/a")["rss"] == 4096
    put_page(m.k, head)
    assert m.usage("/a") == 0 and m.check() == []


def test_a_binding_changed_without_its_protection_breaks_the_locking_rule():
    """Spec 4.1: moving a page's charge under nothing but its isolation (no trylock_page, as
    charge moving did before page cache replacement needed excluding) is reported."""
    from memcgsim.explore import RaceSet
    from memcgsim.mm.locking import Step
    from memcgsim.mm.memcontrol import mem_cgroup_move_account
    from memcgsim.mm.vmscan import isolate_lru_page, putback_lru_page
    from memcgsim.races import run_setup

    def setup(m):
        ctx = run_setup(m, [("mkdir", {"path": "/a"}), ("mkdir", {"path": "/b"}),
                            ("spawn", {"task": "T", "cgroup": "/a"}),
                            ("mmap_anon", {"task": "T", "pages": 1, "name": "v"}),
                            ("touch", {"task": "T", "vma": "v"})])
        ctx["pfn"] = m.pfn_of(ctx["vmas"]["v"], 0)
        return ctx

    def careless_move(k, pfn, a, b):
        yield Step("isolate")
        isolate_lru_page(k, pfn)
        mem_cgroup_move_account(k, pfn, 1, a, b)
        putback_lru_page(k, pfn)
        yield Step("putback")

    race = RaceSet("careless", "", setup, (
        ("move", lambda m, ctx: (None, careless_move(m.k, ctx["pfn"], m.memcg("/a"),
                                                      m.memcg("/b")))),), {"memory_pages": 512})
    out = explore(race)
    assert out.violation == ("LockingRuleBroken: pfn 0x0: page_cgroup changed by move without "
                             "its page lock, a page-table lock or the lru_lock, with "
                             "references left (spec 4.1)")
    assert out.counterexample == ["1. move #1: isolate", "2. move #2: putback"]


def test_a_second_swapin_waits_for_swap_has_cache_instead_of_failing():
    """Parent and child fault the same swapped-out page. The one that finds SWAP_HAS_CACHE
    taken, before the page is in the swap cache, retries until it is there (the kernel's
    -EEXIST loop in read_swap_cache_async): neither fault may end in VM_FAULT_OOM (1). Both
    are major faults (4) when the second waited; 0 is a fault that found the pte changed."""
    out = explore(RACE_SETS["swapin-vs-swapin"])
    assert out.violation is None
    assert out.results == {(4, 4), (4, 0), (0, 4)}


def test_a_busy_wait_with_nothing_else_running_is_a_deadlock():
    """Run alone, the child's fault would spin for ever on a slot whose SWAP_HAS_CACHE the
    half-done parent fault holds: run_path reports it."""
    from memcgsim.errors import Deadlock
    from memcgsim.explore.run import replay
    from memcgsim.mm.locking import run_path

    race = RACE_SETS["swapin-vs-swapin"]
    run = replay(race, frozenset(), [0, 0])      # the parent claimed the slot's cache
    assert run.log == [(0, "takes mmap_sem of mm 1 for reading"),
                       (0, "takes page lock of pfn 1")]
    k = run.m.k
    k.locks.concurrent = False                    # nothing else will run
    with pytest.raises(Deadlock, match=r"swapcache_prepare of slot 1: -EEXIST, retry"):
        run_path(k, run.gens[1], run.tasks[1], owner=2)


def test_a_path_that_keeps_a_kernel_array_across_a_yield_is_refused():
    """Replays run on plain arrays and the watched views go in before the first step that
    needs a footprint; a path holding a plain array in a local would escape them."""
    from memcgsim.explore import RaceSet
    from memcgsim.mm.locking import Step

    def sneaky(m, ctx):
        flags = m.k.mem_map.flags
        yield Step("read flags")
        flags[0] |= 0                     # through the plain array

    def idle(m, ctx):
        yield Step("idle")

    race = RaceSet("sneaky", "", lambda m: {},
                   (("sneaky", lambda m, ctx: (None, sneaky(m, ctx))),
                    ("idle", lambda m, ctx: (None, idle(m, ctx)))))
    out = explore(race)
    assert out.violation.startswith(
        "ModelBug: sneaky keeps the kernel array in local 'flags' across a yield")
    assert out.counterexample == ["1. sneaky #1: read flags"]


def test_a_built_in_expectation_that_fails_is_a_violation():
    from dataclasses import replace

    from memcgsim.races import expect_returns

    race = RACE_SETS["swapin-vs-swapin"]
    strict = replace(race, expect=(expect_returns("child", (4,))(["parent", "child"]),))
    out = explore(strict)
    assert out.violation == "[expect] child returned 0, not 4"


def test_mmap_sem_orders_a_fault_and_the_munmap_of_its_vma():
    """The fault (mmap_sem for reading) either maps its page before the munmap (mmap_sem for
    writing) frees it, or comes after it and finds no VMA (VM_FAULT_SIGSEGV): no page is left
    charged and mapped by a VMA that is gone."""
    out = explore(RACE_SETS["fault-vs-munmap"])
    assert out.violation is None
    assert out.results == {(0, None), (64, None)}


def test_rwsem_readers_share_and_the_writer_excludes_them():
    from memcgsim.errors import Deadlock
    from memcgsim.machine import Machine
    from memcgsim.mm.locking import Lock, Unlock, mmap_sem, run_path

    locks = Machine().k.locks
    sem = mmap_sem(1)
    assert locks.try_acquire(sem, 1, shared=True) and locks.try_acquire(sem, 2, shared=True)
    assert not locks.can_acquire(sem) and not locks.try_acquire(sem, 3)
    assert locks.held_by(2) == [sem] and locks.holders() == [(sem, 1), (sem, 2)]
    locks.release(sem, 1)
    assert locks.readers == {sem: (2,)} and not locks.can_acquire(sem)
    locks.release(sem, 2)
    assert locks.try_acquire(sem, 3) and not locks.can_acquire(sem, shared=True)

    def reader():
        yield Lock(sem, shared=True)
        yield Unlock(sem)
    with pytest.raises(Deadlock, match=r"\('mmap_sem', 1\) is held by path 3"):
        run_path(locks.k, reader(), owner=5)
    locks.release(sem, 3)
    assert not locks.is_held(sem)
    run_path(locks.k, reader(), owner=5)
    assert locks.state() == (frozenset(), frozenset())


def test_two_readers_of_an_rwsem_commute():
    """Two threads fault different pages of one mm: their mmap_sem read locks are independent
    steps, the munmap's write lock is not independent of either."""
    from memcgsim.explore.run import replay
    from memcgsim.races import race_set

    setup = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
             ("mmap_anon", {"task": "T", "pages": 2, "name": "v"})]
    race = race_set("two-faults", "", setup,
                    [("f0", "fault", {"task": "T", "vma": "v", "offset": 0}),
                     ("f1", "fault", {"task": "T", "vma": "v", "offset": 1}),
                     ("munmap", "munmap", {"task": "T", "vma": "v"})], {})
    run = replay(race, frozenset(), [])
    f0 = run.step(0, footprint=True, fresh=True)
    f1 = run.step(1, footprint=True, fresh=True)
    assert run.log == [(0, "takes mmap_sem of mm 1 for reading"),
                       (1, "takes mmap_sem of mm 1 for reading")]
    assert independent(f0, f1)
    w = replay(race, frozenset(), [])
    fw = w.step(2, footprint=True, fresh=True)
    assert w.log == [(2, "takes mmap_sem of mm 1")]
    assert not independent(f0, fw) and not independent(f1, fw)
    out = explore(race)
    assert out.violation is None and out.results == {(0, 0, None), (64, 64, None),
                                                     (0, 64, None), (64, 0, None)}


def _race(name, setup, paths, machine, **kw):
    from memcgsim.races import race_set

    return race_set(name, "", setup, paths, machine, **kw)


def test_two_splits_of_one_thp_are_ordered_by_its_anon_vma_lock():
    """The second split finds the page no longer compound and does nothing (it used to trip
    VM_BUG_ON(!PageTransHuge))."""
    setup = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
             ("mmap_anon", {"task": "T", "pages": 512, "name": "v"}),
             ("touch", {"task": "T", "vma": "v", "pages": 1})]
    page = {"vma": "v", "offset": 0}
    race = _race("split-vs-split", setup, [("s1", "split_thp", {"page": page}),
                                           ("s2", "split_thp", {"page": page})],
                 {"memory_pages": 1024, "thp": True})
    out = explore(race)
    assert out.violation is None and out.results == {(1, 0), (0, 1)}


def test_two_splices_stealing_one_page_fall_back_to_copying():
    """Only one splice can take the page out of the other file's cache (its references frozen
    at two); the others find it gone or held, and copy instead (-EBUSY here), or find their
    own page already replaced (-ENOENT)."""
    from memcgsim.races import _SPLICE

    args = {"task": "T", "file": "/data/f", "steal": "/data/g"}
    race = _race("splice-vs-splice", _SPLICE, [("a", "splice", args), ("b", "splice", args)],
                 {"memory_pages": 1024})
    out = explore(race)
    assert out.violation is None
    assert out.results == {(0, -16), (-16, 0), (-16, -16), (0, -2), (-2, 0)}


def test_truncation_waits_for_writeback_and_without_its_end_never_finishes():
    from memcgsim.races import _writeback_setup

    out = explore(RACE_SETS["truncate-vs-end-writeback"])
    assert out.violation is None and out.results == {(None, None)}
    alone = _race("truncate-alone", _writeback_setup,
                  [("truncate", "truncate", {"file": "/data/f"})], {"memory_pages": 1024})
    out = explore(alone)
    assert out.violation == ("deadlock: truncate spins: wait_on_page_writeback of pfn 0 for "
                             "ever: no other path can run")


def test_a_file_fault_rechecks_the_page_it_waited_to_lock():
    """A fault waits for the lock of a cached page that a FUSE splice replaces and a
    truncation then drops: it must look the page up again (filemap_fault's page->mapping
    check) and find the file truncated (VM_FAULT_SIGBUS, 2), not map the dead page."""
    from memcgsim.races import _CHARGE_MOVE

    race = _race("splice-truncate-fault", _CHARGE_MOVE,
                 [("splice", "splice", {"task": "T", "file": "/data/f", "steal": "/data/g"}),
                  ("truncate", "truncate", {"file": "/data/f"}),
                  ("fault", "fault", {"task": "T", "vma": "v"})], {"memory_pages": 1024})
    out = explore(race)
    assert out.violation is None
    assert {r[2] for r in out.results} == {0, 2}


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_shmem_replace_page_on_6x_uses_the_page_cache_replacement_charge(kernel):
    """6.12's shmem_replace_folio calls mem_cgroup_replace_folio (the new page force-charged,
    the old one keeps its charge until freed), not the migration transfer, which would leave
    the old page uncharged on its memcg's LRU list; 6.1 calls mem_cgroup_migrate."""
    from memcgsim.races import _SHMEM_REPLACE

    race = _race("shmem-replace", _SHMEM_REPLACE,
                 [("shmem-read", "shmem_read", {"task": "T", "file": "/dev/shm/gem"})],
                 {"memory_pages": 1024, "nodes": 2, "swap_pages": 16, "profile": kernel,
                  "cgroup": "v2"})
    out = explore(race)
    assert out.violation is None and out.results == {(1,)}     # one page read


def test_a_step_that_only_reads_a_files_size_depends_on_the_truncation():
    """A tmpfs read that swaps a page in looks at i_size without changing it when it is
    already large enough; the truncation writes it. The reduction must see the read (the
    file's compared-by-value fields are watched), or it misses an end state."""
    from memcgsim.races import _SHMEM_REPLACE

    race = _race("truncate-vs-tmpfs-read", _SHMEM_REPLACE,
                 [("truncate", "truncate", {"file": "/dev/shm/gem"}),
                  ("read", "shmem_read", {"task": "T", "file": "/dev/shm/gem"})],
                 {"memory_pages": 1024, "nodes": 2, "swap_pages": 16})
    reduced, full = explore(race), explore(race, por=False)
    assert reduced.violation is None and full.violation is None
    assert reduced.finals == full.finals and reduced.results == full.results



def test_reclaim_inside_a_charge_waits_for_a_lock_another_path_holds():
    """The fault's charge reclaims (its memcg is at memory.max), running reclaim whole inside
    the fault's step. While kswapd holds the lru_lock that reclaim needs, the step cannot run
    (WouldBlock) and the explorer runs kswapd first; run alone, the same wait is a deadlock."""
    from memcgsim.errors import Deadlock
    from memcgsim.explore.run import replay
    from memcgsim.mm.locking import WouldBlock

    race = RACE_SETS["charge-reclaim-vs-kswapd"]
    run = replay(race, frozenset(), [1, 1])
    assert run.log[-1] == (1, "takes lru_lock of node 0")
    run.step(0)                                   # mmap_sem
    with pytest.raises(WouldBlock) as wait:
        run.step(0)
    assert wait.value.lock == ("lru", 0)
    alone = replay(race, frozenset(), [1, 1, 0])
    alone.m.k.locks.concurrent = False
    with pytest.raises(Deadlock, match=r"\('lru', 0\) is held by path 2"):
        alone.step(0)
    out = explore(race)
    assert out.violation is None and out.results == {(0, 0), (0, 1)}


def test_random_walks_step_around_a_step_that_would_block():
    out = explore_random(RACE_SETS["charge-reclaim-vs-kswapd"], 40, seed=1)
    assert out.violation is None and out.schedules == 40
    assert out.results <= {(0, 0), (0, 1)}
