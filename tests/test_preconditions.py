"""Every VM_BUG_ON_PAGE of the charge API (and of the page reference, rmap and swap cache helpers
the charge lifecycle leans on), each reached from a real machine state that violates exactly the
one precondition under test.

Each test checks the pfn, the condition and that dump_page() names the page's flags and
page_cgroup, then that nothing was changed: these functions check before they act. Where the
state is recoverable the test then finishes the interrupted path correctly and runs the checker.
move_account's refusals are errno returns, not BUGs, and must leave everything as it was.
"""

import pytest

from memcgsim import Errno, Machine, VMBugOnPage, check
from memcgsim.mm.gfp import GFP_KERNEL
from memcgsim.mm.memcontrol import (
    mem_cgroup_cancel_charge,
    mem_cgroup_commit_charge,
    mem_cgroup_migrate,
    mem_cgroup_move_account,
    mem_cgroup_swapout,
    mem_cgroup_try_charge,
    mem_cgroup_uncharge_list,
)
from memcgsim.mm.mm_struct import mk_pte
from memcgsim.mm.mm_types import HPAGE_PMD_NR, PG_anon, PG_head, PG_swapbacked
from memcgsim.mm.page_alloc import alloc_pages_node, free_pages
from memcgsim.mm.page_cgroup import PCG_USED
from memcgsim.mm.page_writeback import clear_page_dirty_for_io
from memcgsim.mm.rmap import SWAP_SUCCESS, do_page_add_anon_rmap, page_remove_rmap, try_to_unmap
from memcgsim.mm.swap import (
    del_page_from_lru,
    get_page,
    lru_cache_add_anon,
    put_page,
    put_page_testzero,
)
from memcgsim.mm.swap_state import (
    __add_to_swap_cache,
    __delete_from_swap_cache,
    add_to_swap,
    delete_from_swap_cache,
    lookup_swap_cache,
)
from memcgsim.mm.swapfile import get_swap_page, swap_free, swapcache_free
from memcgsim.mm.vmscan import isolate_lru_page, putback_lru_page

OWNER = 7                       # the lock owner of page locks the tests take by hand
FULL = "USED|MEM|MEMSW mem_cgroup /a"
ANON = "active|swapbacked|anon"
ANON_LRU = "lru|active|swapbacked|anon"


def machine(npages=4, thp=False):
    m = Machine(4096, swap_pages=256, thp=thp)
    m.mkdir("/a")
    t = m.spawn("A", "/a")
    v = m.mmap_anon(t, npages)
    assert m.touch(t, v) == npages
    return m, t, v


def snap(k, *pfns):
    """Everything a charge function could change: counters, statistics, LRU sizes, in-flight
    charges, swap records and slots, and the pages' struct page and page_cgroup."""
    memcgs = {c.name: (c.res.usage, c.memsw.usage, tuple(c.stat), tuple(c.events),
                       c.swap_css_refs, tuple(tuple(lv.lru_size) for lv in c.lruvecs))
              for c in k.memcg_by_id.values()}
    return (memcgs, dict(k.inflight), [k.dump_page(p) for p in pfns],
            k.swap_cgroup.id.tolist(), k.swap.swap_map.tolist(), list(k.warnings))


def bug(excinfo, pfn, condition, flags, pcg):
    e = excinfo.value
    assert e.pfn == pfn
    assert e.condition == condition
    lines = e.dump.splitlines()
    assert lines[0].startswith(f"page pfn:{pfn:#x} ")
    assert f"flags: {flags}" in lines
    assert f"page_cgroup: flags {pcg}" in lines


def lock(k, pfn):
    assert k.locks.try_acquire(("page", pfn), OWNER)


def unlock(k, pfn):
    k.locks.release(("page", pfn), OWNER)


def ok(k):
    assert check(k) == []


def readahead_page(m, t, v):
    """An uncharged swap cache page on the LRU: swap everything out, fault page 0 back in, and
    the slot of page 1 is read ahead. Returns (pfn, slot)."""
    for i in range(v.npages):
        assert m.reclaim(m.pfn_of(v, i)) == 1
    assert m.touch(t, v, 0, 1) == 1
    entry = m.swap_entry_of(v, 1)
    pfn = int(m.k.swap.cache[entry])
    assert pfn >= 0 and m.k.pc.flags[pfn] == 0
    return pfn, entry


def reclaim_until_freeze(m, v, i=0, isolate=True, freeze=True):
    """shrink_page_list on page i up to __remove_mapping's page_freeze_refs: the page is
    locked, in swap cache, unmapped (its pte holds the slot) and clean; with freeze its
    references (the swap cache's and, with isolate, the isolation's) are frozen to 0."""
    k = m.k
    pfn = m.pfn_of(v, i)
    if isolate:
        assert isolate_lru_page(k, pfn) == 0
    lock(k, pfn)
    assert add_to_swap(k, pfn)
    assert try_to_unmap(k, pfn) == SWAP_SUCCESS
    clear_page_dirty_for_io(k, pfn)          # pageout: the synchronous write is done
    assert k.mem_map.refcount[pfn] == (2 if isolate else 1)
    if freeze:
        k.mem_map.refcount[pfn] = 0
    return pfn, int(k.mem_map.private[pfn])


def finish_reclaim(k, pfn, entry):
    """The rest of __remove_mapping and shrink_page_list for a frozen, swapped-out page."""
    __delete_from_swap_cache(k, pfn)
    unlock(k, pfn)
    swapcache_free(k, entry)
    mem_cgroup_uncharge_list(k, [pfn])
    free_pages(k, pfn)


# ------------------------------------------------------------------ try_charge / commit


def test_try_charge_of_an_unlocked_swapcache_page():
    """try_get_mem_cgroup_from_page reads the slot's record: the page must be locked."""
    m, t, v = machine()
    k = m.k
    pfn, _ = readahead_page(m, t, v)
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_try_charge(k, pfn, t.mm, GFP_KERNEL)
    bug(ei, pfn, "!PageLocked(page)", "lru|swapcache|swapbacked", "0 mem_cgroup / (stale)")
    assert snap(k, pfn) == before
    ok(k)


def test_commit_charge_of_a_page_already_used():
    m, t, v = machine()
    k = m.k
    pfn = m.pfn_of(v, 0)
    ret, memcg = mem_cgroup_try_charge(k, pfn, t.mm, GFP_KERNEL)
    assert (ret, memcg) == (0, m.memcg("/a"))
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_commit_charge(k, pfn, memcg, True)
    bug(ei, pfn, "PageCgroupUsed(pc)", ANON_LRU, FULL)
    assert snap(k, pfn) == before
    mem_cgroup_cancel_charge(k, pfn, memcg)
    ok(k)


def test_commit_charge_of_a_page_without_mapping():
    m, t, v = machine()
    k = m.k
    pfn = alloc_pages_node(k, 0, 0)
    ret, memcg = mem_cgroup_try_charge(k, pfn, t.mm, GFP_KERNEL)
    assert ret == 0 and k.inflight[memcg.id] == 1
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_commit_charge(k, pfn, memcg, False)
    bug(ei, pfn, "!page->mapping", "0", "0 mem_cgroup NULL")
    assert snap(k, pfn) == before
    mem_cgroup_cancel_charge(k, pfn, memcg)
    put_page(k, pfn)
    ok(k)


def test_commit_charge_of_a_page_on_the_lru_without_lrucare():
    """do_swap_page on a read-ahead page (on the LRU, uncharged) must commit with lrucare."""
    m, t, v = machine()
    k = m.k
    _, entry = readahead_page(m, t, v)
    pfn = lookup_swap_cache(k, entry)
    lock(k, pfn)
    do_page_add_anon_rmap(k, pfn, v, v.start + 1)
    ret, memcg = mem_cgroup_try_charge(k, pfn, t.mm, GFP_KERNEL)
    assert (ret, memcg) == (0, m.memcg("/a"))
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_commit_charge(k, pfn, memcg, False)
    bug(ei, pfn, "PageLRU(page) && !lrucare", "locked|lru|swapcache|swapbacked|anon",
        "0 mem_cgroup / (stale)")
    assert snap(k, pfn) == before
    # the rest of do_swap_page, done right
    v.pte[1] = mk_pte(pfn, False)
    mem_cgroup_commit_charge(k, pfn, memcg, True)
    swap_free(k, entry)
    unlock(k, pfn)
    assert k.mem_map.lru_memcg[pfn] == memcg.id
    ok(k)


# ------------------------------------------------------------------ uncharge


def test_uncharge_of_a_page_still_on_the_lru():
    """release_pages must take the page off its LRU list before it uncharges it."""
    m, _, v = machine()
    k = m.k
    pfn = m.pfn_of(v, 0)
    v.pte[0] = 0                                 # zap_pte_range
    page_remove_rmap(k, pfn)
    assert put_page_testzero(k, pfn)             # the last reference
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_uncharge_list(k, [pfn])
    bug(ei, pfn, "PageLRU(page)", ANON_LRU, FULL)
    assert snap(k, pfn) == before
    del_page_from_lru(k, pfn, page_off_lru=True)
    mem_cgroup_uncharge_list(k, [pfn])
    free_pages(k, pfn)
    ok(k)


def test_uncharge_of_a_page_still_referenced():
    m, _, v = machine()
    k = m.k
    pfn = m.pfn_of(v, 0)
    assert isolate_lru_page(k, pfn) == 0         # off the LRU, refcount 2
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_uncharge_list(k, [pfn])
    bug(ei, pfn, "page_count(page)", ANON, FULL)
    assert snap(k, pfn) == before
    putback_lru_page(k, pfn)
    ok(k)


# ------------------------------------------------------------------ migrate


def migration_pages(m, v, isolate_old=True, lock_old=True, lock_new=True, anon_new=True):
    """unmap_and_move's pages: old isolated, new fresh; both locked; new made anonymous the
    way move_to_new_page does."""
    k = m.k
    old = m.pfn_of(v, 0)
    if isolate_old:
        assert isolate_lru_page(k, old) == 0
    new = alloc_pages_node(k, 0, 0)
    if anon_new:
        k.mem_map.mapping[new] = k.mem_map.mapping[old]
        k.mem_map.flags[new] |= PG_swapbacked | PG_anon
    if lock_old:
        lock(k, old)
    if lock_new:
        lock(k, new)
    return old, new


def undo_migration(m, old, new, isolated=True):
    k = m.k
    for pfn in (old, new):
        if k.locks.is_held(("page", pfn)):
            unlock(k, pfn)
    if isolated:
        putback_lru_page(k, old)
    put_page(k, new)
    ok(k)


def test_migrate_with_old_page_unlocked():
    m, _, v = machine()
    k = m.k
    old, new = migration_pages(m, v, lock_old=False)
    before = snap(k, old, new)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_migrate(k, old, new, False)
    bug(ei, old, "!PageLocked(oldpage)", ANON, FULL)
    assert snap(k, old, new) == before
    undo_migration(m, old, new)


def test_migrate_with_new_page_unlocked():
    m, _, v = machine()
    k = m.k
    old, new = migration_pages(m, v, lock_new=False)
    before = snap(k, old, new)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_migrate(k, old, new, False)
    bug(ei, new, "!PageLocked(newpage)", "swapbacked|anon", "0 mem_cgroup NULL")
    assert snap(k, old, new) == before
    undo_migration(m, old, new)


def test_migrate_without_lrucare_of_an_old_page_on_the_lru():
    m, _, v = machine()
    k = m.k
    old, new = migration_pages(m, v, isolate_old=False)
    before = snap(k, old, new)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_migrate(k, old, new, False)
    bug(ei, old, "!lrucare && PageLRU(oldpage)", "locked|" + ANON_LRU, FULL)
    assert snap(k, old, new) == before
    undo_migration(m, old, new, isolated=False)


def test_migrate_without_lrucare_of_a_new_page_on_the_lru():
    m, _, v = machine()
    k = m.k
    old, new = migration_pages(m, v)
    lru_cache_add_anon(k, new)
    before = snap(k, old, new)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_migrate(k, old, new, False)
    bug(ei, new, "!lrucare && PageLRU(newpage)", "locked|lru|swapbacked|anon",
        "0 mem_cgroup / (stale)")
    assert snap(k, old, new) == before
    undo_migration(m, old, new)


def test_migrate_between_anon_and_file_pages():
    m, _, v = machine()
    k = m.k
    old, new = migration_pages(m, v, anon_new=False)
    before = snap(k, old, new)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_migrate(k, old, new, False)
    bug(ei, new, "PageAnon(oldpage) != PageAnon(newpage)", "locked", "0 mem_cgroup NULL")
    assert snap(k, old, new) == before
    undo_migration(m, old, new)


def test_migrate_of_a_used_page_without_pcg_mem():
    """USED without MEM is no state a user page reaches: the test writes the flags."""
    m, _, v = machine()
    k = m.k
    old, new = migration_pages(m, v)
    full = int(k.pc.flags[old])
    k.pc.flags[old] = PCG_USED
    before = snap(k, old, new)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_migrate(k, old, new, False)
    bug(ei, old, "!(pc->flags & PCG_MEM)", "locked|" + ANON, "USED mem_cgroup /a")
    assert snap(k, old, new) == before
    k.pc.flags[old] = full
    undo_migration(m, old, new)


def test_migrate_of_a_page_whose_memsw_went_to_its_slot():
    """A page between mem_cgroup_swapout and its uncharge is USED|MEM without MEMSW."""
    m, _, v = machine()
    k = m.k
    old, entry = reclaim_until_freeze(m, v)
    mem_cgroup_swapout(k, old, entry)
    new = alloc_pages_node(k, 0, 0)
    k.mem_map.mapping[new] = k.mem_map.mapping[old]
    k.mem_map.flags[new] |= PG_swapbacked | PG_anon
    lock(k, new)
    before = snap(k, old, new)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_migrate(k, old, new, False)
    bug(ei, old, "do_swap_account && !(pc->flags & PCG_MEMSW)",
        "locked|active|swapcache|swapbacked|anon", "USED|MEM mem_cgroup /a")
    assert snap(k, old, new) == before
    unlock(k, new)
    put_page(k, new)
    finish_reclaim(k, old, entry)
    ok(k)


def test_migrate_of_a_thp_to_a_small_page():
    m, _, v = machine(HPAGE_PMD_NR, thp=True)
    k = m.k
    old, new = migration_pages(m, v)
    assert k.mem_map.flags[old] & PG_head
    before = snap(k, old, new)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_migrate(k, old, new, False)
    bug(ei, new, "!PageTransHuge(newpage)", "locked|swapbacked|anon", "0 mem_cgroup NULL")
    assert snap(k, old, new) == before
    undo_migration(m, old, new)


# ------------------------------------------------------------------ swapout


def test_swapout_of_a_page_on_the_lru():
    """__remove_mapping on a page reclaim never isolated: frozen, but still on its list."""
    m, _, v = machine()
    k = m.k
    pfn, entry = reclaim_until_freeze(m, v, isolate=False)
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_swapout(k, pfn, entry)
    bug(ei, pfn, "PageLRU(page)", "locked|lru|active|swapcache|swapbacked|anon", FULL)
    assert snap(k, pfn) == before
    k.mem_map.refcount[pfn] = 1                  # page_unfreeze_refs
    unlock(k, pfn)
    ok(k)


def test_swapout_of_a_page_still_referenced():
    m, _, v = machine()
    k = m.k
    pfn, entry = reclaim_until_freeze(m, v, freeze=False)
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_swapout(k, pfn, entry)
    bug(ei, pfn, "page_count(page)", "locked|active|swapcache|swapbacked|anon", FULL)
    assert snap(k, pfn) == before
    unlock(k, pfn)
    putback_lru_page(k, pfn)
    ok(k)


def test_swapout_twice():
    """The second swapout finds USED without MEMSW: the memsw charge is with the slot."""
    m, _, v = machine()
    k = m.k
    pfn, entry = reclaim_until_freeze(m, v)
    mem_cgroup_swapout(k, pfn, entry)
    assert k.swap_cgroup.lookup(entry) == m.memcg("/a").id
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_swapout(k, pfn, entry)
    bug(ei, pfn, "!(pc->flags & PCG_MEMSW)", "locked|active|swapcache|swapbacked|anon",
        "USED|MEM mem_cgroup /a")
    assert snap(k, pfn) == before
    finish_reclaim(k, pfn, entry)
    ok(k)


def test_swapout_onto_a_slot_that_has_a_record():
    """The slot of page 1, swapped out before, already holds /a's record.

    swap_cgroup_record() writes before the VM_BUG_ON (as in 3.17); with one memcg the value
    written is the one that was there, so the snapshot still matches."""
    m, _, v = machine()
    k = m.k
    a = m.memcg("/a")
    assert m.reclaim(m.pfn_of(v, 1)) == 1
    taken = m.swap_entry_of(v, 1)
    assert k.swap_cgroup.lookup(taken) == a.id
    pfn, entry = reclaim_until_freeze(m, v, 0)
    assert entry != taken
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_swapout(k, pfn, taken)
    bug(ei, pfn, f"swap_cgroup_record(entry {taken}) found id {a.id}",
        "locked|active|swapcache|swapbacked|anon", FULL)
    assert snap(k, pfn) == before
    mem_cgroup_swapout(k, pfn, entry)
    finish_reclaim(k, pfn, entry)
    ok(k)


# ------------------------------------------------------------------ move_account


def move_machine(isolate=True):
    m, t, v = machine()
    m.mkdir("/b")
    pfn = m.pfn_of(v, 0)
    if isolate:
        assert isolate_lru_page(m.k, pfn) == 0
    return m, pfn, m.memcg("/a"), m.memcg("/b")


def test_move_account_to_the_same_memcg():
    m, pfn, a, _ = move_machine()
    before = snap(m.k, pfn)
    with pytest.raises(AssertionError, match=r"^VM_BUG_ON\(from == to\)$"):
        mem_cgroup_move_account(m.k, pfn, 1, a, a)
    assert snap(m.k, pfn) == before


def test_move_account_of_a_page_on_the_lru():
    m, pfn, a, b = move_machine(isolate=False)
    before = snap(m.k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        mem_cgroup_move_account(m.k, pfn, 1, a, b)
    bug(ei, pfn, "PageLRU(page)", ANON_LRU, FULL)
    assert snap(m.k, pfn) == before
    ok(m.k)


def test_move_account_of_a_locked_page_is_ebusy():
    m, pfn, a, b = move_machine()
    lock(m.k, pfn)
    before = snap(m.k, pfn)
    assert mem_cgroup_move_account(m.k, pfn, 1, a, b) == -Errno.EBUSY
    assert snap(m.k, pfn) == before
    unlock(m.k, pfn)
    putback_lru_page(m.k, pfn)
    ok(m.k)


def test_move_account_of_many_pages_of_a_small_page_is_ebusy():
    m, pfn, a, b = move_machine()
    before = snap(m.k, pfn)
    assert mem_cgroup_move_account(m.k, pfn, 2, a, b) == -Errno.EBUSY
    assert snap(m.k, pfn) == before
    putback_lru_page(m.k, pfn)
    ok(m.k)


def test_move_account_of_an_uncharged_page_is_einval():
    m, _, a, b = move_machine()
    pfn = alloc_pages_node(m.k, 0, 0)
    before = snap(m.k, pfn)
    assert mem_cgroup_move_account(m.k, pfn, 1, a, b) == -Errno.EINVAL
    assert snap(m.k, pfn) == before
    put_page(m.k, pfn)


def test_move_account_of_another_memcgs_page_is_einval():
    m, pfn, a, b = move_machine()
    before = snap(m.k, pfn)
    assert mem_cgroup_move_account(m.k, pfn, 1, b, a) == -Errno.EINVAL
    assert snap(m.k, pfn) == before
    putback_lru_page(m.k, pfn)
    ok(m.k)


# ------------------------------------------------------------------ references and rmap


def test_put_page_twice_is_a_double_free():
    m, t, v = machine()
    k = m.k
    pfn = m.pfn_of(v, 0)
    m.munmap(t, v)
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        put_page(k, pfn)
    bug(ei, pfn, "atomic_read(&page->_count) == 0", "buddy", "0 mem_cgroup /a (stale)")
    assert snap(k, pfn) == before
    assert k.mem_map.refcount[pfn] == 0
    ok(k)


def test_put_page_of_a_thp_tail():
    m, _, v = machine(HPAGE_PMD_NR, thp=True)
    k = m.k
    tail = m.pfn_of(v, 1)
    head = tail - 1
    assert k.mem_map.flags[head] & PG_head
    before = snap(k, head, tail)
    with pytest.raises(VMBugOnPage) as ei:
        put_page(k, tail)
    bug(ei, tail, "PageTail(page) in put_page", "tail", "0 mem_cgroup NULL")
    assert snap(k, head, tail) == before
    ok(k)


def test_get_page_of_a_free_page():
    m, t, v = machine()
    k = m.k
    pfn = m.pfn_of(v, 0)
    m.munmap(t, v)
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        get_page(k, pfn)
    bug(ei, pfn, "page_count(page) <= 0 in get_page", "buddy", "0 mem_cgroup /a (stale)")
    assert snap(k, pfn) == before
    ok(k)


def test_page_remove_rmap_of_an_unmapped_page():
    m, t, _ = machine()
    k = m.k
    assert m.write(t, "f", 1) == 1
    pfn = m.file("f").find_page(0)
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        page_remove_rmap(k, pfn)
    bug(ei, pfn, "page_mapcount(page) <= 0 in page_remove_rmap", "referenced|dirty|lru",
        "USED|MEM|MEMSW mem_cgroup /a")
    assert snap(k, pfn) == before
    ok(k)


# ------------------------------------------------------------------ swap cache


def test_add_to_swap_cache_of_an_unlocked_page():
    m, _, v = machine()
    k = m.k
    pfn = m.pfn_of(v, 0)
    entry = get_swap_page(k, pfn)
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        __add_to_swap_cache(k, pfn, entry)
    bug(ei, pfn, "!PageLocked(page)", ANON_LRU, FULL)
    assert snap(k, pfn) == before and k.swap.cache[entry] == -1
    swapcache_free(k, entry)
    ok(k)


def test_add_to_swap_cache_of_a_swapcache_page():
    m, _, v = machine()
    k = m.k
    pfn = m.pfn_of(v, 0)
    lock(k, pfn)
    assert add_to_swap(k, pfn)
    first = int(k.mem_map.private[pfn])
    entry = get_swap_page(k, pfn)
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        __add_to_swap_cache(k, pfn, entry)
    bug(ei, pfn, "PageSwapCache(page)", "locked|dirty|lru|active|swapcache|swapbacked|anon",
        FULL)
    assert snap(k, pfn) == before
    assert k.mem_map.private[pfn] == first and k.swap.cache[entry] == -1
    swapcache_free(k, entry)
    delete_from_swap_cache(k, pfn)
    unlock(k, pfn)
    ok(k)


def test_add_to_swap_cache_of_a_file_page():
    m, t, _ = machine()
    k = m.k
    assert m.write(t, "f", 1) == 1
    pfn = m.file("f").find_page(0)
    lock(k, pfn)
    entry = get_swap_page(k, pfn)
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        __add_to_swap_cache(k, pfn, entry)
    bug(ei, pfn, "!PageSwapBacked(page)", "locked|referenced|dirty|lru", FULL)
    assert snap(k, pfn) == before and k.swap.cache[entry] == -1
    swapcache_free(k, entry)
    unlock(k, pfn)
    ok(k)


def test_delete_from_swap_cache_of_a_page_not_in_it():
    m, _, v = machine()
    k = m.k
    pfn = m.pfn_of(v, 0)
    lock(k, pfn)
    before = snap(k, pfn)
    with pytest.raises(VMBugOnPage) as ei:
        __delete_from_swap_cache(k, pfn)
    bug(ei, pfn, "!PageSwapCache(page)", "locked|" + ANON_LRU, FULL)
    assert snap(k, pfn) == before
    unlock(k, pfn)
    ok(k)
