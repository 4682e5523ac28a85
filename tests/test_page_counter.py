"""mm/page_counter.c semantics: charge, try_charge, uncharge, limits, peaks, protected usage and
effective protection, with exact values, plus a random-tree property test.

Sizes are in 4 KiB pages: 1M = 256 pages, 50M = 12800.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memcgsim.errors import Errno, InvalidRequest
from memcgsim.mm.page_counter import (
    PAGE_COUNTER_MAX,
    PageCounter,
    calculate_protection,
)

M = 256     # pages per MiB


def chain(*names: str, protection_support: bool = True) -> list[PageCounter]:
    """root -> names[1] -> names[2] ...: a single line of counters, root first."""
    out: list[PageCounter] = []
    for name in names:
        out.append(PageCounter(name, out[-1] if out else None,
                               protection_support=protection_support))
    return out


def test_page_counter_max_is_long_max_in_pages():
    assert PAGE_COUNTER_MAX == 2**51 - 1
    c = PageCounter("c")
    assert (c.max, c.high, c.usage, c.failcnt) == (PAGE_COUNTER_MAX, PAGE_COUNTER_MAX, 0, 0)


# -- try_charge, charge -----------------------------------------------------------------------

def test_try_charge_fails_at_first_ancestor_over_max():
    root, a, b, c = chain("root", "a", "b", "c")
    root.max = 35       # would refuse too, but the walk stops at a
    a.max = 40
    b.max = 100
    assert c.try_charge(30) is None
    assert [x.usage for x in (root, a, b, c)] == [30, 30, 30, 30]

    assert c.try_charge(20) is a
    assert [x.failcnt for x in (root, a, b, c)] == [0, 1, 0, 0]
    assert [x.usage for x in (root, a, b, c)] == [30, 30, 30, 30]
    # c and b were passed before a refused: their peaks saw 50, a's and root's did not
    assert [x.watermark for x in (root, a, b, c)] == [30, 30, 50, 50]
    assert [x.underflows for x in (root, a, b, c)] == [[], [], [], []]


def test_try_charge_fails_at_the_leaf_itself():
    root, c = chain("root", "c")
    c.set_max(8)
    assert c.try_charge(9) is c
    assert (c.failcnt, c.usage, root.failcnt, root.usage, root.watermark) == (1, 0, 0, 0, 0)
    assert c.try_charge(8) is None
    assert (c.usage, root.usage, c.failcnt) == (8, 8, 1)


def test_charge_ignores_max_and_raises_watermark():
    root, c = chain("root", "c")
    c.set_max(10)
    c.charge(25)
    assert (c.usage, c.watermark, c.local_watermark, c.failcnt) == (25, 25, 25, 0)
    assert (root.usage, root.watermark) == (25, 25)
    assert c.try_charge(1) is c           # over max now, so the next try fails there
    assert (c.usage, c.failcnt) == (25, 1)


# -- uncharge, cancel -------------------------------------------------------------------------

def test_uncharge_underflow_clamps_and_records():
    root, p, c = chain("root", "p", "c")
    p.charge(10)
    c.charge(5)
    c.uncharge(8)
    assert (c.usage, c.underflows) == (0, [(8, 5)])
    assert (p.usage, p.underflows) == (7, [])
    assert (root.usage, root.underflows) == (7, [])


def test_cancel_takes_one_level_only():
    root, c = chain("root", "c")
    c.charge(5)
    c.cancel(5)
    assert (c.usage, root.usage) == (0, 5)


# -- limits and peaks -------------------------------------------------------------------------

def test_set_max_ebusy_below_usage():
    c = PageCounter("c")
    c.charge(10)
    assert c.set_max(9) == -Errno.EBUSY == -16
    assert c.max == PAGE_COUNTER_MAX
    assert c.set_max(10) == 0
    assert c.max == 10
    c.set_high(7)                          # no check: high is a throttling target
    assert c.high == 7


def test_watermark_and_reset():
    root, c = chain("root", "c")
    c.charge(10)
    c.uncharge(4)
    assert (c.usage, c.watermark, c.local_watermark) == (6, 10, 10)
    c.reset_watermark()
    assert (c.watermark, c.local_watermark, root.watermark) == (6, 6, 10)
    c.charge(2)
    assert (c.watermark, c.local_watermark) == (8, 8)
    # a memory.peak write (memcontrol's job) restarts only the local peak
    c.uncharge(5)
    c.local_watermark = c.usage
    c.charge(1)
    assert (c.usage, c.watermark, c.local_watermark) == (4, 8, 4)


# -- protected usage --------------------------------------------------------------------------

def test_protected_usage_propagates_to_parent():
    p = PageCounter("p", protection_support=True)
    a = PageCounter("a", p, protection_support=True)
    b = PageCounter("b", p, protection_support=True)
    a.set_min(20)
    a.set_low(5)
    b.set_low(30)
    assert (p.children_min_usage, p.children_low_usage) == (0, 0)     # nothing used yet
    a.charge(10)
    assert (a.min_usage, a.low_usage) == (10, 5)
    assert (p.children_min_usage, p.children_low_usage) == (10, 5)
    assert a.try_charge(15) is None
    assert (a.usage, a.min_usage, a.low_usage) == (25, 20, 5)
    assert (p.children_min_usage, p.children_low_usage) == (20, 5)
    b.charge(12)
    assert (b.min_usage, b.low_usage) == (0, 12)
    assert (p.children_min_usage, p.children_low_usage) == (20, 17)
    a.uncharge(22)
    assert (a.usage, a.min_usage, a.low_usage) == (3, 3, 3)
    assert (p.children_min_usage, p.children_low_usage) == (3, 15)
    a.set_min(1)
    assert (a.min_usage, p.children_min_usage) == (1, 1)
    # the root has nobody to report to
    p.set_min(100)
    assert (p.min_usage, p.usage) == (0, 15)


def test_failed_try_charge_leaves_protected_usage_as_it_was():
    p, c = chain("p", "c")
    p.set_max(10)
    c.set_min(50)
    c.charge(4)
    assert c.try_charge(7) is p
    assert (c.usage, c.min_usage, p.children_min_usage) == (4, 4, 4)


def test_counter_without_protection_support_does_not_propagate():
    parent, swap = chain("parent", "swap", protection_support=False)
    swap.set_min(5)            # set_min still refreshes, as the kernel's does
    swap.charge(10)
    assert (swap.min_usage, parent.children_min_usage) == (0, 0)
    swap.uncharge(3)
    assert (swap.usage, swap.min_usage, parent.children_min_usage) == (7, 0, 0)


# -- effective protection: the cgroup selftest test_memcg_min / test_memcg_low tree ------------
#
# A (max 200M) -> B (50M) -> C (75M), D (25M), E (0), F (500M), each setting memory.min for
# test_memcg_min, memory.low for test_memcg_low; C, D and E hold 50M of page cache, F is empty;
# A -> G is where the pressure comes from. G's allocation hits A's max, so reclaim is rooted at A.
#
# By hand, in pages (50M = 12800, 75M = 19200, 25M = 6400, 500M = 128000):
#   B: child of the reclaim root -> its setting, 12800.
#   B's children claim and use min(12800, 19200) + min(12800, 6400) + 0 + 0 = 19200 > 12800:
#   overcommitted, so B's 12800 is split in proportion to protected usage (recursive or not,
#   that branch comes first):
#   C: 12800 * 12800 // 19200 = 8533   (33.3M)
#   D:  6400 * 12800 // 19200 = 4266   (16.7M)
#   E:     0 * 12800 // 19200 = 0
#   F: no usage, not computed: stays 0.
# These are the starting point of memcg_protection.m (the older test expected C ~ 33M, D ~ 17M);
# reclaim then shrinks C and D until their protected usage fits B (see the next test).

def selftest_tree(attr: str, usage: tuple[int, int, int, int]) -> dict[str, PageCounter]:
    t: dict[str, PageCounter] = {}
    t["root"] = PageCounter("root", protection_support=True)
    for name, parent in (("A", "root"), ("B", "A"), ("G", "A"),
                         ("C", "B"), ("D", "B"), ("E", "B"), ("F", "B")):
        t[name] = PageCounter(name, t[parent], protection_support=True)
    assert t["A"].set_max(200 * M) == 0
    setter = {"min": PageCounter.set_min, "low": PageCounter.set_low}[attr]
    for name, mib in (("B", 50), ("C", 75), ("D", 25), ("E", 0), ("F", 500)):
        setter(t[name], mib * M)
    for name, pages in zip("CDEF", usage, strict=True):
        if pages:
            t[name].charge(pages)
    return t


def protect_from(t: dict[str, PageCounter], root: str, recursive: bool) -> None:
    """What reclaim rooted at `root` does: visit its subtree top-down (mem_cgroup_iter)."""
    for name in ("root", "A", "B", "G", "C", "D", "E", "F"):
        if t[root] in t[name].chain():
            calculate_protection(t[root], t[name], recursive)


@pytest.mark.parametrize("recursive", [False, True])
@pytest.mark.parametrize("attr", ["min", "low"])
def test_selftest_tree_effective_protection(attr, recursive):
    t = selftest_tree(attr, (50 * M, 50 * M, 50 * M, 0))
    assert (t["B"].usage, t["A"].usage) == (150 * M, 150 * M)
    assert getattr(t["B"], f"children_{attr}_usage") == 19200
    assert getattr(t["A"], f"children_{attr}_usage") == 12800       # min(150M, 50M)
    protect_from(t, "A", recursive)
    effective = {n: getattr(t[n], "e" + attr) for n in "BCDEF"}
    assert effective == {"B": 12800, "C": 8533, "D": 4266, "E": 0, "F": 0}
    other = "elow" if attr == "min" else "emin"
    assert [getattr(t[n], other) for n in "BCDEF"] == [0, 0, 0, 0, 0]


@pytest.mark.parametrize("recursive", [False, True])
def test_selftest_tree_at_the_expected_usages(recursive):
    # C = 29M (7424), D = 21M (5376), E = 1M (256). Claimed and used: 7424 + 5376 + 0 = 12800,
    # exactly B's 50M and not more, so nothing is scaled: C and D are protected in full (emin ==
    # usage) and reclaim can only take from E. E gets nothing, even with recursive protection:
    # the floating rest is 12800 - 12800 = 0. This is why 29M/21M is where reclaim settles.
    t = selftest_tree("min", (29 * M, 21 * M, 1 * M, 0))
    protect_from(t, "A", recursive)
    assert [t[n].emin for n in "BCDE"] == [12800, 7424, 5376, 0]


def test_selftest_tree_under_global_reclaim_protects_nothing():
    # Rooted at the real root: A is its child and gets A's min, 0. B's share of 0 is 0 (B's
    # 12800 claimed > 0 available), and so on down. The test needs A's limit to see protection.
    t = selftest_tree("min", (50 * M, 50 * M, 50 * M, 0))
    protect_from(t, "root", True)
    assert [t[n].emin for n in ("A", "B", "C", "D", "E")] == [0, 0, 0, 0, 0]


def test_reclaim_target_and_empty_counters_keep_stale_values():
    t = selftest_tree("min", (50 * M, 50 * M, 50 * M, 0))
    protect_from(t, "A", False)
    # memory.reclaim on C roots reclaim at C: C's own 8533 is left alone (the caller ignores it)
    calculate_protection(t["C"], t["C"], False)
    assert t["C"].emin == 8533
    # a counter that empties is skipped, so its old value stays
    t["D"].uncharge(50 * M)
    protect_from(t, "A", False)
    assert (t["D"].usage, t["D"].emin) == (0, 4266)
    # C's recount: B's children now claim 12800 + 0 + 0, no more than B's 12800, so C keeps
    # all its protected usage
    assert t["C"].emin == 12800


def test_root_children_get_their_configured_values():
    root, p = chain("root", "p")
    p.set_min(500 * M)
    p.set_low(7)
    p.charge(1)
    calculate_protection(root, p, False)
    assert (p.emin, p.elow) == (128000, 7)      # not capped by usage at the first level


def test_protection_capped_by_parent():
    # P (10M = 2560) -> Q (min 40M, usage 30M = 7680): Q claims 7680 > 2560, so Q gets
    # 7680 * 2560 // 7680 = 2560, P's whole protection and no more.
    root, p, q = chain("root", "p", "q")
    p.set_min(10 * M)
    q.set_min(40 * M)
    q.charge(30 * M)
    for c in (p, q):
        calculate_protection(root, c, False)
    assert (p.emin, q.emin) == (2560, 2560)


@pytest.mark.parametrize("recursive, expected", [
    (False, (2560, 0, 0)),
    # floating = 12800 - 2560 = 10240; P's unprotected usage = 15360 - 2560 = 12800
    # C1: 2560 + 10240 * (7680 - 2560) // 12800 = 2560 + 4096 = 6656  (26M)
    # C2:    0 + 10240 * 5120 // 12800 = 4096                           (16M)
    # C3:    0 + 10240 * 2560 // 12800 = 2048                           (8M); sum 12800 = P's
    (True, (6656, 4096, 2048)),
])
def test_recursive_protection_distributes_the_unclaimed_rest(recursive, expected):
    # P (min 50M) -> C1 (min 10M, 30M used), C2 (0, 20M), C3 (0, 10M)
    root, p = chain("root", "p")
    kids = [PageCounter(f"c{i}", p, protection_support=True) for i in (1, 2, 3)]
    p.set_min(50 * M)
    kids[0].set_min(10 * M)
    for kid, mib in zip(kids, (30, 20, 10), strict=True):
        kid.charge(mib * M)
    assert (p.usage, p.children_min_usage) == (15360, 2560)
    for c in (p, *kids):
        calculate_protection(root, c, recursive)
    assert p.emin == 12800
    assert tuple(k.emin for k in kids) == expected


def test_calculate_protection_outside_the_root_is_refused():
    a, b = PageCounter("a"), PageCounter("b")
    b.charge(1)
    with pytest.raises(InvalidRequest):
        calculate_protection(a, b, False)


# -- random trees -----------------------------------------------------------------------------

OPS = ("charge", "try_charge", "uncharge", "set_max", "set_min", "set_low")


@given(st.data())
def test_random_trees_keep_usage_and_protection_sums(data):
    n = data.draw(st.integers(1, 6), label="nodes")
    parents = [None] + [data.draw(st.integers(0, i - 1), label=f"parent{i}") for i in range(1, n)]
    nodes: list[PageCounter] = []
    for i, p in enumerate(parents):
        nodes.append(PageCounter(f"n{i}", None if p is None else nodes[p],
                                 protection_support=True))
    kids = [[j for j in range(n) if parents[j] == i] for i in range(n)]
    own = [0] * n           # pages charged at each node itself

    for _ in range(data.draw(st.integers(0, 30), label="steps")):
        op = data.draw(st.sampled_from(OPS))
        i = data.draw(st.integers(0, n - 1))
        c = nodes[i]
        if op == "uncharge":
            nr = data.draw(st.integers(0, own[i]))
            c.uncharge(nr)
            own[i] -= nr
        elif op == "charge":
            nr = data.draw(st.integers(0, 20))
            c.charge(nr)
            own[i] += nr
        elif op == "try_charge":
            nr = data.draw(st.integers(0, 20))
            first_over = next((x for x in c.chain() if x.usage + nr > x.max), None)
            before = [x.usage for x in nodes]
            assert c.try_charge(nr) is first_over
            if first_over is None:
                own[i] += nr
            else:
                assert [x.usage for x in nodes] == before
        else:
            v = data.draw(st.integers(0, 60))
            res = getattr(c, op)(v)
            if op == "set_max":
                assert res == (0 if c.usage <= v else -Errno.EBUSY)

        for j, x in enumerate(nodes):
            assert x.usage == own[j] + sum(nodes[k].usage for k in kids[j]) >= 0
            assert x.watermark >= x.local_watermark >= x.usage
            assert x.children_min_usage == sum(nodes[k].min_usage for k in kids[j])
            assert x.children_low_usage == sum(nodes[k].low_usage for k in kids[j])
            if x.parent is not None:
                assert (x.min_usage, x.low_usage) == (min(x.usage, x.min), min(x.usage, x.low))
            assert x.underflows == []

    # effective protection, top-down from node 0 (parents always have smaller indices): what
    # the children of one non-root parent get never adds up to more than the parent has
    recursive = data.draw(st.booleans(), label="recursive")
    for x in nodes:
        calculate_protection(nodes[0], x, recursive)
    for j in range(1, n):
        for attr in ("emin", "elow"):
            assert sum(getattr(nodes[k], attr) for k in kids[j]) <= getattr(nodes[j], attr)
