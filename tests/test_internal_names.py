"""Internal objects have no name a user can give.

A shared anonymous mapping (MAP_SHARED|MAP_ANONYMOUS) is backed by a tmpfs file the kernel makes
for it (shmem_zero_setup > shmem_kernel_file_setup("dev/zero")), an inode no directory names:
no path lookup reaches it, and the last unmap evicts it (iput_final of an unlinked inode), its
pages truncated and uncharged. The same holds for a file once unlinked. Exact counters and
statistics after every step (usage includes the per-CPU stock: 32 pages a batch on 3.17, 64 on
6.12), and the checker after every step.
"""

import numpy as np
import pytest

from memcgsim import InvalidRequest, Machine, check
from memcgsim.mm.mm_types import PG_anon, PG_buddy

P = 4096
KINDS = [("6.12", "v2"), ("3.17", "v1")]


def ok(m):
    v = check(m.k)
    assert v == [], v


def boot(profile, cgroup, vectorized=True, swap_pages=0):
    m = Machine(2048, profile=profile, cgroup=cgroup, vectorized=vectorized,
                swap_pages=swap_pages)
    m.mkdir("/a")
    t = m.spawn("t", "/a")
    ok(m)
    return m, t


def state(m):
    """Everything a refused request could change."""
    k = m.k
    memcgs = {c.id: (c.res.usage, c.memsw.usage, tuple(c.stat)) for c in k.memcg_by_id.values()}
    pages = {name: a.tobytes() for name, a in k.mem_map.arrays().items()}
    pages.update({name: a.tobytes() for name, a in k.pc.arrays().items()})
    mms = {i: [(v.start, v.npages, v.pte.tobytes()) for v in mm.vmas] for i, mm in k.mms.items()}
    inodes = {i: (f.name, f.nlink, f.i_count, f.size_pages, f.nrpages, f.i_pages.tobytes())
              for i, f in k.mappings.items()}
    files = {n: f.id for n, f in k.files.items()}
    return (memcgs, pages, mms, inodes, files, list(k.free_area.nr_free),
            k.swap.swap_map.tobytes(), [(s.cached and s.cached.name, s.nr_pages)
                                        for s in k.stocks])


def refused(m, call, *args):
    before = state(m)
    with pytest.raises(InvalidRequest, match="unknown file"):
        call(*args)
    assert state(m) == before
    ok(m)


def names_of(f):
    """Every name the backing file might be thought to have: its dentry's name, the device it
    stands for, /proc/<pid>/maps' text, and the names the model once gave it."""
    return (f.name, "/dev/zero", "/dev/zero (deleted)", f"/dev/zero#{f.id}",
            f"/dev/zero#{f.id - 1}")


def cannot_name(m, t, names):
    """read, mmap_file, truncate and unlink of each name are refused and change nothing."""
    for name in names:
        assert name not in m.k.files
        refused(m, m.read, t, name)
        refused(m, m.mmap_file, t, name, 1)
        refused(m, m.truncate, name, 0)
        refused(m, m.unlink, name)


def stat_of(m, keys):
    st = m.stat("/a")
    return {key: st[key] for key in keys}


V2_KEYS = ("anon", "file", "shmem", "file_mapped", "inactive_anon", "inactive_file",
           "active_file", "pagetables", "kernel")
V1_KEYS = ("rss", "cache", "mapped_file", "inactive_anon", "inactive_file", "active_file",
           "pgpgin", "pgpgout")


def counts(m):
    """usage (memory.current / memory.usage_in_bytes) in pages and the memory.stat keys."""
    if m.k.cgroup_v2:
        assert int(m.read_file("/a", "memory.current")) == m.usage("/a") * P
        return m.usage("/a"), stat_of(m, V2_KEYS)
    assert int(m.read_file("/a", "memory.usage_in_bytes")) == m.usage("/a") * P
    return m.usage("/a"), stat_of(m, V1_KEYS)


def v2(usage, anon=0, file=0, shmem=0, mapped=0, inactive_anon=0, inactive_file=0,
       active_file=0, pagetables=0, kernel=7):
    return usage, {"anon": anon * P, "file": file * P, "shmem": shmem * P,
                   "file_mapped": mapped * P, "inactive_anon": inactive_anon * P,
                   "inactive_file": inactive_file * P, "active_file": active_file * P,
                   "pagetables": pagetables * P, "kernel": kernel * P}


def v1(usage, rss=0, cache=0, mapped=0, inactive_anon=0, inactive_file=0, active_file=0,
       pgpgin=0, pgpgout=0):
    return usage, {"rss": rss * P, "cache": cache * P, "mapped_file": mapped * P,
                   "inactive_anon": inactive_anon * P, "inactive_file": inactive_file * P,
                   "active_file": active_file * P, "pgpgin": pgpgin, "pgpgout": pgpgout}


def evicted(m, f):
    """The inode left every table and no live page belongs to its page cache any more."""
    k = m.k
    assert f.id not in k.mappings and f not in k.files.values()
    assert f.nrpages == 0 and f.i_count == 0 and not f.i_mmap
    assert not np.any(f.i_pages)
    mem = k.mem_map
    live_cache = (mem.flags & (PG_anon | PG_buddy)) == 0
    assert not np.any(live_cache & (mem.mapping == f.id))


# after the touch, the write to the would-be name, a read of it (3.17's second access
# activates the pages; 6.12's write only marks them referenced), the munmap and the unlink
EXPECTED = {
    "v2": (v2(64, file=5, shmem=5, mapped=5, inactive_anon=5, pagetables=3, kernel=10),
           v2(64, file=8, shmem=5, mapped=5, inactive_anon=5, inactive_file=3, pagetables=3,
              kernel=10),
           v2(64, file=8, shmem=5, mapped=5, inactive_anon=5, inactive_file=3, pagetables=3,
              kernel=10),
           v2(59, file=3, inactive_file=3),
           v2(56)),
    "v1": (v1(32, cache=5, mapped=5, inactive_anon=5, pgpgin=5),
           v1(32, cache=8, mapped=5, inactive_anon=5, inactive_file=3, pgpgin=8),
           v1(32, cache=8, mapped=5, inactive_anon=5, active_file=3, pgpgin=8),
           v1(27, cache=3, active_file=3, pgpgin=8, pgpgout=5),
           v1(24, pgpgin=8, pgpgout=8)),
}


@pytest.mark.parametrize("vectorized", [True, False])
@pytest.mark.parametrize("profile,cgroup", KINDS)
def test_shared_anon_backing_file_has_no_name(profile, cgroup, vectorized):
    m, t = boot(profile, cgroup, vectorized)
    assert counts(m) == (v2(64) if cgroup == "v2" else v1(0))
    vma = m.mmap_anon(t, 8, shared=True)
    f = vma.file
    ok(m)
    assert (f.name, f.shmem, f.nlink, f.i_count, f.size_pages) == ("dev/zero", True, 0, 1, 8)
    assert m.k.mappings[f.id] is f and m.k.files == {}
    assert m.touch(t, vma, 0, 5) == 5
    ok(m)
    touched, wrote, read, unmapped, unlinked = EXPECTED[cgroup]
    assert counts(m) == touched
    assert f.nrpages == 5
    cannot_name(m, t, names_of(f))

    # write(2) creates or appends by name: to the would-be name it makes a new regular file
    name = f"/dev/zero#{f.id}"
    assert m.write(t, name, 3) == 3
    ok(m)
    g = m.file(name)
    assert g is not f and g.id != f.id and m.k.files == {name: g}
    assert (g.shmem, g.nlink, g.i_count, g.nrpages, g.size_pages) == (False, 1, 0, 3, 3)
    assert (f.nlink, f.i_count, f.nrpages, f.size_pages) == (0, 1, 5, 8)
    assert counts(m) == wrote
    assert m.read(t, name) == 3
    ok(m)
    assert counts(m) == read
    cannot_name(m, t, [n for n in names_of(f) if n != name])

    # the last unmap evicts the backing file: its pages are truncated and uncharged
    m.munmap(t, vma)
    ok(m)
    evicted(m, f)
    assert counts(m) == unmapped
    assert (g.nrpages, g.size_pages) == (3, 3) and m.k.files == {name: g}
    cannot_name(m, t, [n for n in names_of(f) if n != name])
    m.unlink(name)
    ok(m)
    evicted(m, g)
    assert counts(m) == unlinked
    assert m.k.files == {} and m.k.mappings == {}
    cannot_name(m, t, names_of(f))


@pytest.mark.parametrize("profile,cgroup", KINDS)
def test_unmap_evicts_as_an_unlinked_tmpfs_file(profile, cgroup):
    """The same counters and statistics at every step as a tmpfs file of the same size that
    is mapped shared, touched, unlinked and then unmapped."""
    anon, ta = boot(profile, cgroup)
    tmp, tt = boot(profile, cgroup)
    av = anon.mmap_anon(ta, 8, shared=True)
    tmp.create("/dev/shm/x", tmpfs=True)
    tmp.truncate("/dev/shm/x", 8)
    tv = tmp.mmap_file(tt, "/dev/shm/x", 8)
    f = tv.file
    for m in (anon, tmp):
        ok(m)
    assert anon.touch(ta, av, 0, 5) == tmp.touch(tt, tv, 0, 5) == 5
    tmp.unlink("/dev/shm/x")
    for m in (anon, tmp):
        ok(m)
    assert f.id in tmp.k.mappings and (f.nlink, f.i_count, f.nrpages) == (0, 1, 5)
    cannot_name(tmp, tt, ["/dev/shm/x"])
    assert counts(anon) == counts(tmp) == EXPECTED[cgroup][0]
    assert anon.stat("/a") == tmp.stat("/a")
    anon.munmap(ta, av)
    tmp.munmap(tt, tv)
    for m in (anon, tmp):
        ok(m)
    evicted(tmp, f)
    want = v2(59) if cgroup == "v2" else v1(27, pgpgin=5, pgpgout=5)
    assert counts(anon) == counts(tmp) == want
    assert anon.stat("/a") == tmp.stat("/a")
    assert anon.k.mappings == tmp.k.mappings == {}


@pytest.mark.parametrize("profile,cgroup", KINDS)
def test_fork_shares_the_backing_file_until_its_last_mapping(profile, cgroup):
    """A forked child's VMA holds the same backing file; the parent's munmap leaves it (the
    child still maps it), the child's exit evicts it, and with it the swap entries of the pages
    reclaim wrote out."""
    m, t = boot(profile, cgroup, swap_pages=64)
    v2_ = cgroup == "v2"
    vma = m.mmap_anon(t, 8, shared=True)
    f = vma.file
    assert m.touch(t, vma, 0, 5) == 5
    child = m.fork(t, "c")
    ok(m)
    cv = child.mm.vmas[0]
    assert cv.file is f and (f.nlink, f.i_count, f.nrpages) == (0, 2, 5)
    m.munmap(t, vma)
    ok(m)
    assert m.k.mappings[f.id] is f and (f.nlink, f.i_count, f.nrpages) == (0, 1, 5)
    assert counts(m) == (v2(64, file=5, shmem=5, inactive_anon=5, kernel=14) if v2_ else
                         v1(32, cache=5, inactive_anon=5, pgpgin=5))
    cannot_name(m, child, names_of(f))
    assert m.touch(child, cv) == 8
    ok(m)
    assert counts(m) == (v2(64, file=8, shmem=8, mapped=8, inactive_anon=8, pagetables=3,
                            kernel=17) if v2_ else
                         v1(32, cache=8, mapped=8, inactive_anon=8, pgpgin=8))
    pfns = [m.pfn_of(cv, i) for i in range(4)]
    assert [m.reclaim(p) for p in pfns] == [1, 1, 1, 1]        # written out to swap
    ok(m)
    assert f.nrpages == 4 and m.k.swap.inuse_pages == 1 + 4
    swapped = (v2(60, file=4, shmem=4, mapped=4, inactive_anon=4, pagetables=3, kernel=17)
               if v2_ else v1(28, cache=4, mapped=4, inactive_anon=4, pgpgin=8, pgpgout=4))
    assert counts(m) == swapped
    if v2_:
        assert m.memcg("/a").swap.usage == 4
    else:
        assert m.memsw_usage("/a") == 32 and m.stat("/a")["swap"] == 4 * P
    m.exit(child)
    ok(m)
    evicted(m, f)
    assert m.k.swap.inuse_pages == 1 and not m.k.swap_cgroup.id.any()
    assert counts(m) == (v2(56) if v2_ else v1(24, pgpgin=8, pgpgout=8))
    if v2_:
        assert m.memcg("/a").swap.usage == 0
    else:
        assert m.memsw_usage("/a") == 24 and m.stat("/a")["swap"] == 0
    assert m.k.files == {} and m.k.mappings == {}


@pytest.mark.parametrize("profile,cgroup", KINDS)
def test_unlinked_file_name_reaches_a_new_file(profile, cgroup):
    """After unlink the name reaches nothing; a write under it creates a new file, separate
    from the old inode that a mapping still holds."""
    m, t = boot(profile, cgroup)
    assert m.write(t, "/dev/shm/x", 4) == 4
    old = m.file("/dev/shm/x")
    vma = m.mmap_file(t, "/dev/shm/x", 4)
    assert m.touch(t, vma, write=False) == 4
    m.unlink("/dev/shm/x")
    ok(m)
    assert (old.nlink, old.i_count, old.nrpages) == (0, 1, 4) and m.k.files == {}
    cannot_name(m, t, ["/dev/shm/x"])
    assert m.write(t, "/dev/shm/x", 2) == 2
    ok(m)
    new = m.file("/dev/shm/x")
    assert new is not old and (new.shmem, new.nlink, new.nrpages, new.size_pages) == (
        True, 1, 2, 2)
    assert (old.nrpages, old.size_pages) == (4, 4)
    assert counts(m) == (v2(64, file=6, shmem=6, mapped=4, inactive_anon=6, pagetables=3,
                            kernel=10) if cgroup == "v2" else
                         v1(32, cache=6, mapped=4, inactive_anon=6, pgpgin=6))
    m.munmap(t, vma)
    ok(m)
    evicted(m, old)
    assert m.k.files == {"/dev/shm/x": new} and list(m.k.mappings) == [new.id]
    assert counts(m) == (v2(60, file=2, shmem=2, inactive_anon=2) if cgroup == "v2" else
                         v1(28, cache=2, inactive_anon=2, pgpgin=6, pgpgout=4))
