"""The Machine facade refuses impossible requests.

A bad request raises InvalidRequest, whose message names what was wrong, before anything
changes; a request the kernel itself refuses returns a negative errno and changes nothing
either. Every test compares the whole model state before and after and runs the checker.
"""

import re

import pytest

from memcgsim import Errno, InvalidRequest, Kernel, Machine, check
from memcgsim.mm.res_counter import RES_COUNTER_MAX


@pytest.fixture
def m():
    m = Machine(4096, swap_pages=256)
    m.mkdir("/a")
    t = m.spawn("A", "/a")
    v = m.mmap_anon(t, 4)
    assert m.touch(t, v) == 4
    return m


def state(m):
    """Everything a request could change."""
    k = m.k
    memcgs = {c.id: (c.name, c.res.usage, c.memsw.usage, c.res.limit, c.memsw.limit,
                     c.res.failcnt, c.use_hierarchy, tuple(c.stat), tuple(c.events),
                     tuple(x.name for x in c.children)) for c in k.memcg_by_id.values()}
    pages = {name: a.tobytes() for name, a in k.mem_map.arrays().items()}
    pages.update({name: a.tobytes() for name, a in k.pc.arrays().items()})
    mms = {i: (mm.next_start, [(v.start, v.npages, v.pte.tobytes()) for v in mm.vmas])
           for i, mm in k.mms.items()}
    tasks = {n: (t.state, t.memcg.name, t.cpu, t.node) for n, t in k.tasks.items()}
    files = {n: (f.size_pages, f.nrpages, f.i_pages.tobytes()) for n, f in k.files.items()}
    return (memcgs, pages, mms, tasks, files, sorted(k.mappings), list(k.free_area.nr_free),
            k.swap.swap_map.tobytes(), k.swap_cgroup.id.tobytes(), dict(k.inflight),
            [(s.cached and s.cached.name, s.nr_pages) for s in k.stocks], dict(k.locks.held),
            list(k.warnings))


def refused(m, match, call, *args, **kwargs):
    """call(*args) raises InvalidRequest matching `match` and changes nothing."""
    before = state(m)
    with pytest.raises(InvalidRequest, match=match):
        call(*args, **kwargs)
    assert state(m) == before
    assert check(m.k) == []


def errno(m, expected, call, *args, **kwargs):
    """call(*args) returns -errno and changes nothing."""
    before = state(m)
    assert call(*args, **kwargs) == -expected
    assert state(m) == before
    assert check(m.k) == []


def vma(m):
    return m.task("A").mm.vmas[0]


# ------------------------------------------------------------------ cgroups


UNKNOWN_CGROUP = [
    ("memcg", lambda m: m.memcg("/nope")),
    ("spawn", lambda m: m.spawn("B", "/nope")),
    ("move_task", lambda m: m.move_task(m.task("A"), "/nope")),
    ("set_limit", lambda m: m.set_limit("/nope", 10)),
    ("set_memsw_limit", lambda m: m.set_limit("/nope", 10, memsw=True)),
    ("set_use_hierarchy", lambda m: m.set_use_hierarchy("/nope", True)),
    ("usage", lambda m: m.usage("/nope")),
    ("stat", lambda m: m.stat("/nope")),
    ("reclaim_memcg", lambda m: m.reclaim_memcg("/nope", 1)),
]


@pytest.mark.parametrize("call", [c for _, c in UNKNOWN_CGROUP],
                         ids=[n for n, _ in UNKNOWN_CGROUP])
def test_unknown_cgroup(m, call):
    refused(m, r"^unknown memory cgroup '/nope'$", call, m)


def test_mkdir_of_an_existing_cgroup(m):
    refused(m, r"^cgroup /a already exists$", m.mkdir, "/a")
    assert m.mkdir("/b").id == 3                 # the refusal used up no memcg id


def test_mkdir_under_a_missing_parent(m):
    refused(m, r"^cannot create /x/y: parent /x does not exist$", m.mkdir, "/x/y")
    assert m.mkdir("/b").id == 3


@pytest.mark.parametrize("path", ["", "a", "/", "/a/", "//a", "/a//b", "a/b"])
def test_mkdir_of_a_malformed_path(m, path):
    refused(m, rf"^bad cgroup path {path!r}: want /name or /parent/name$", m.mkdir, path)


def test_use_hierarchy_cannot_change_with_children(m):
    m.mkdir("/a/b")
    errno(m, Errno.EBUSY, m.set_use_hierarchy, "/a", True)
    assert m.memcg("/a").use_hierarchy is False
    assert m.memcg("/a/b").res.parent is None


def test_use_hierarchy_cannot_change_under_a_hierarchical_parent(m):
    m.mkdir("/h")
    assert m.set_use_hierarchy("/h", True) == 0
    m.mkdir("/h/c")
    assert m.memcg("/h/c").use_hierarchy is True
    errno(m, Errno.EINVAL, m.set_use_hierarchy, "/h/c", False)
    assert m.memcg("/h/c").use_hierarchy is True
    assert m.memcg("/h/c").res.parent is m.memcg("/h").res


# ------------------------------------------------------------------ limits


@pytest.mark.parametrize("memsw", [False, True])
def test_negative_limit(m, memsw):
    refused(m, r"^limit of -1 pages: want a whole number >= 0 or None$", m.set_limit, "/a", -1,
            memsw=memsw)


@pytest.mark.parametrize("memsw", [False, True])
@pytest.mark.parametrize("pages", [0, 100, None])
def test_limit_on_root_is_einval(m, pages, memsw):
    errno(m, Errno.EINVAL, m.set_limit, "/", pages, memsw=memsw)
    root = m.memcg("/")
    assert root.res.limit == root.memsw.limit == RES_COUNTER_MAX


def test_memsw_limit_below_the_memory_limit_is_einval(m):
    assert m.set_limit("/a", 100) == 0
    errno(m, Errno.EINVAL, m.set_limit, "/a", 99, memsw=True)
    a = m.memcg("/a")
    assert (a.res.limit, a.memsw.limit) == (100, RES_COUNTER_MAX)


@pytest.mark.parametrize("pages", [201, None])
def test_memory_limit_above_the_memsw_limit_is_einval(m, pages):
    assert m.set_limit("/a", 100) == 0
    assert m.set_limit("/a", 200, memsw=True) == 0
    errno(m, Errno.EINVAL, m.set_limit, "/a", pages)
    a = m.memcg("/a")
    assert (a.res.limit, a.memsw.limit) == (100, 200)


def test_memory_limit_below_usage_reclaims_until_it_fits(m):
    assert m.usage("/a") == 32                   # 4 pages and a stock of 28
    assert m.set_limit("/a", 31) == 0
    # one reclaim round (SWAP_CLUSTER_MAX pages) swapped out all four pages; memsw stays
    assert (m.usage("/a"), m.memsw_usage("/a")) == (28, 32)
    assert m.stat("/a")["swap"] == 4 * 4096 and m.memcg("/a").res.limit == 31
    assert check(m.k) == []


def test_memory_limit_below_unreclaimable_usage_is_ebusy(m):
    m.mlock(m.task("A"), vma(m))                 # nothing reclaimable left
    assert m.set_limit("/a", 3) == -Errno.EBUSY
    # the four mlocked pages stay, and so does the stock of 28: a 3.17 v1 resize does not drain
    # the charge stocks (its reclaim stops at once while the old limit leaves a margin)
    assert m.usage("/a") == 32 and m.memcg("/a").res.limit == RES_COUNTER_MAX
    assert m.stat("/a")["unevictable"] == 4 * 4096
    assert m.set_limit("/a", 31) == -Errno.EBUSY
    assert m.set_limit("/a", 32) == 0
    assert check(m.k) == []


def test_memsw_limit_below_memsw_usage_is_ebusy(m):
    assert m.reclaim(m.pfn_of(vma(m), 0)) == 1  # memory 31, memory+swap still 32
    assert (m.usage("/a"), m.memsw_usage("/a")) == (31, 32)
    assert m.set_limit("/a", 31) == 0
    # memsw reclaim may not swap: the three resident pages are anonymous, nothing to free,
    # but the stock drain on the way gives back its 28 pages
    assert m.set_limit("/a", 31, memsw=True) == 0
    assert (m.usage("/a"), m.memsw_usage("/a")) == (3, 4)
    assert m.set_limit("/a", 3) == 0
    assert m.set_limit("/a", 3, memsw=True) == -Errno.EBUSY
    assert m.memsw_usage("/a") == 4 and m.memcg("/a").memsw.limit == 31
    assert check(m.k) == []


@pytest.mark.parametrize("pages", [1.5, 100.0, "100"])
def test_non_integer_limit(m, pages):
    m.mkdir("/b")
    refused(m, r"limit", m.set_limit, "/b", pages)


# ------------------------------------------------------------------ sizes


@pytest.mark.parametrize("npages", [0, -1, 1.5, 2.0, "4", None])
def test_bad_mmap_size(m, npages):
    refused(m, rf"^size of {npages!r} pages: want a positive whole number$",
            m.mmap_anon, m.task("A"), npages)


@pytest.mark.parametrize("npages", [0, -3, 2.5, "1"])
def test_bad_write_size(m, npages):
    refused(m, rf"^size of {npages!r} pages: want a positive whole number$",
            m.write, m.task("A"), "f", npages)
    assert "f" not in m.k.files


@pytest.mark.parametrize("call", ["mmap_anon", "write"])
def test_bool_size(m, call):
    t = m.task("A")
    args = (t, True) if call == "mmap_anon" else (t, "f", True)
    refused(m, r"^size of True pages: want a positive whole number$", getattr(m, call), *args)


def test_write_at_a_negative_offset(m):
    refused(m, r"offset", m.write, m.task("A"), "f", 1, offset=-1)


@pytest.mark.parametrize("start,count", [(-1, 1), (0, -2)])
def test_read_with_a_negative_start_or_count(m, start, count):
    t = m.task("A")
    assert m.write(t, "f", 1) == 1
    refused(m, rf"^read of {count} pages at {start}: want whole numbers >= 0$", m.read, t, "f",
            start, count)


def test_read_past_the_end_of_the_file_reads_nothing(m):
    t = m.task("A")
    assert m.write(t, "f", 1) == 1
    before = m.stat("/a")
    assert m.read(t, "f", 5, 3) == 0
    assert m.stat("/a") == before
    assert m.read(t, "f", 0, 3) == 1           # the one page there: a hit, which activates it
    after = m.stat("/a")
    assert (after["cache"], after["pgpgin"]) == (before["cache"], before["pgpgin"])
    assert m.file("f").nrpages == 1
    assert check(m.k) == []


def test_truncate_to_a_negative_size(m):
    refused(m, r"^truncate to -1 pages$", m.truncate, "f", -1)


def test_unknown_file(m):
    refused(m, r"^unknown file 'nope'$", m.read, m.task("A"), "nope")
    refused(m, r"^unknown file 'nope'$", m.unlink, "nope")


# ------------------------------------------------------------------ tasks and VMAs


def test_unknown_task(m):
    refused(m, r"^unknown task 'nobody'$", m.task, "nobody")


def test_spawn_of_an_existing_task(m):
    refused(m, r"^task 'A' already exists$", m.spawn, "A", "/")


AFTER_EXIT = [
    ("touch", lambda m, t, v: m.touch(t, v)),
    ("mmap_anon", lambda m, t, v: m.mmap_anon(t, 1)),
    ("munmap", lambda m, t, v: m.munmap(t, v)),
    ("mlock", lambda m, t, v: m.mlock(t, v)),
    ("munlock", lambda m, t, v: m.munlock(t, v)),
    ("write", lambda m, t, v: m.write(t, "f", 1)),
    ("read", lambda m, t, v: m.read(t, "f")),
    ("fork", lambda m, t, v: m.fork(t, "C")),
    ("move_task", lambda m, t, v: m.move_task(t, "/")),
    ("migrate", lambda m, t, v: m.migrate(t, v, 0)),
    ("exit", lambda m, t, v: m.exit(t)),
]


@pytest.mark.parametrize("call", [c for _, c in AFTER_EXIT], ids=[n for n, _ in AFTER_EXIT])
def test_task_used_after_exit(m, call):
    t = m.task("A")
    v = vma(m)
    m.exit(t)
    refused(m, r"^task A has exited$", call, m, t, v)


def test_munmap_of_a_vma_not_mapped(m):
    t = m.task("A")
    v = vma(m)
    m.munmap(t, v)
    refused(m, r"^<vma .* anon> is not mapped in task A$", m.munmap, t, v)


def test_munmap_of_another_tasks_vma(m):
    u = m.spawn("B", "/")
    refused(m, r"^<vma .* anon> is not mapped in task B$", m.munmap, u, vma(m))


@pytest.mark.parametrize("start,count,shown", [
    (3, 2, "[3, 5)"), (0, 5, "[0, 5)"), (4, 1, "[4, 5)"), (-1, 1, "[-1, 0)"), (0, -1, "[0, -1)"),
])
def test_touch_outside_the_vma(m, start, count, shown):
    refused(m, rf"^pages {re.escape(shown)} are outside <vma ",
            m.touch, m.task("A"), vma(m), start, count)


@pytest.mark.parametrize("call", ["touch", "mlock"])
def test_fault_in_a_vma_that_is_no_longer_mapped(m, call):
    t = m.task("A")
    v = vma(m)
    m.munmap(t, v)
    refused(m, r"not mapped", getattr(m, call), t, v)


@pytest.mark.parametrize("offset", [4, 10])
def test_split_thp_outside_the_vma(m, offset):
    refused(m, r"outside", m.split_thp, m.task("A"), vma(m), offset)


# ------------------------------------------------------------------ CPUs, nodes, machines


@pytest.mark.parametrize("kw,msg", [
    ({"cpu": 1}, r"^cpu 1 does not exist \(0\.\.0\)$"),
    ({"cpu": -1}, r"^cpu -1 does not exist \(0\.\.0\)$"),
    ({"node": 1}, r"^node 1 does not exist \(0\.\.0\)$"),
    ({"node": -1}, r"^node -1 does not exist \(0\.\.0\)$"),
])
def test_spawn_on_a_cpu_or_node_that_does_not_exist(m, kw, msg):
    refused(m, msg, m.spawn, "B", "/a", **kw)


def test_migrate_to_a_node_that_does_not_exist(m):
    refused(m, r"^node 1 does not exist \(0\.\.0\)$", m.migrate, m.task("A"), vma(m), 1)


def test_spawn_on_the_last_cpu_and_node_of_a_bigger_machine():
    m = Machine(4096, cpus=4, nodes=2)
    t = m.spawn("T", "/", cpu=3, node=1)
    refused(m, r"^cpu 4 does not exist \(0\.\.3\)$", m.spawn, "U", "/", cpu=4)
    refused(m, r"^node 2 does not exist \(0\.\.1\)$", m.spawn, "U", "/", node=2)
    assert (t.cpu, t.node) == (3, 1)


@pytest.mark.parametrize("nr_pages,nodes,per_node", [
    (1000, 1, 512), (513, 1, 512), (0, 1, 512), (-512, 1, 512), (512, 2, 1024), (1536, 2, 1024),
    (4096, 3, 1536),
])
def test_memory_not_a_multiple_of_2mib_per_node(nr_pages, nodes, per_node):
    msg = (rf"^memory of {nr_pages} pages is not a positive multiple of 2 MiB per node "
           rf"\({per_node} pages\)$")
    with pytest.raises(InvalidRequest, match=msg):
        Kernel(nr_pages, nr_nodes=nodes)
    with pytest.raises(InvalidRequest, match=msg):
        Machine(nr_pages, nodes=nodes)


@pytest.mark.parametrize("kw", [{"cpus": 0}, {"nodes": 0}, {"cpus": -1}])
def test_machine_without_cpus_or_nodes(kw):
    with pytest.raises(InvalidRequest, match=r"^a machine needs at least one node and one CPU$"):
        Machine(4096, **kw)


def test_negative_swap_size():
    with pytest.raises(InvalidRequest, match=r"^swap size -1 is negative$"):
        Machine(4096, swap_pages=-1)


@pytest.mark.parametrize("profile", ["3.18", "", "4.0"])
def test_unknown_kernel_profile(profile):
    msg = rf"^unknown kernel profile {profile!r} \(known: 3\.17, 6\.1, 6\.12\)$"
    with pytest.raises(InvalidRequest, match=msg):
        Kernel(4096, profile=profile)
    with pytest.raises(InvalidRequest, match=msg):
        Machine(4096, profile=profile)
