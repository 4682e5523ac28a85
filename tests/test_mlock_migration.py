"""Migration of mlocked pages, and reclaim meeting a page in a VM_LOCKED vma.

Unmapping a page for migration clears PG_mlocked (page_remove_rmap of its last mapping). From
4.4 remove_migration_pte mlocks the new page again (profile migration_remlocks); 3.17 left it
evictable until reclaim met it in the locked vma, where try_to_unmap_one mlocks it (out_mlock)
and shrink_page_list culls it to the unevictable list. Before this, the model returned
SWAP_MLOCK without mlocking, so reclaim put the page back on an evictable list and met it again
for ever (a memory.high run of a few MiB took 20 s).
"""

import pytest

from memcgsim import Machine

KEYS = ("unevictable", "inactive_anon", "active_anon")


def locked_then_migrated(profile, cgroup):
    m = Machine(4096, swap_pages=4096, nodes=2, profile=profile, cgroup=cgroup)
    m.mkdir("/b")
    if cgroup == "v2":
        m.write_file("/", "cgroup.subtree_control", "+memory")
    t = m.spawn("A", cgroup="/b")
    v = m.mmap_anon(t, 256, locked=True)
    assert m.migrate(t, v, 1) == 0
    assert m.check() == []
    return m, v


def stat(m):
    s = m.stat("/b")
    return tuple(s[k] for k in KEYS)


def test_6x_keeps_a_migrated_page_mlocked():
    m, v = locked_then_migrated("6.12", "v2")
    assert stat(m) == (1 << 20, 0, 0)
    assert m.reclaim(m.pfn_of(v, 0)) == 0          # not on an evictable list: not isolated
    assert stat(m) == (1 << 20, 0, 0)
    assert m.check() == []


def test_3_17_reclaim_culls_a_migrated_page_of_a_locked_vma():
    m, v = locked_then_migrated("3.17", "v1")
    assert stat(m) == (0, 1 << 20, 0)               # PG_mlocked lost on the way
    assert m.reclaim(m.pfn_of(v, 0)) == 0           # SWAP_MLOCK: mlocked, culled, not freed
    assert stat(m) == (4096, (1 << 20) - 4096, 0)
    assert m.check() == []


@pytest.mark.parametrize("profile, cgroup", [("6.12", "v2"), ("3.17", "v1")])
def test_reclaim_under_high_or_limit_stops_scanning_locked_pages(profile, cgroup):
    """memory.high (v2) / a limit (v1) over migrated mlocked pages, then more anonymous
    memory: the locked pages end on the unevictable list and the rest is swapped."""
    m, v = locked_then_migrated(profile, cgroup)
    m.write_file("/b", "memory.high" if cgroup == "v2" else "memory.limit_in_bytes",
                 str(2 << 20) if cgroup == "v2" else str(3 << 20))
    t = m.k.tasks["A"]
    assert m.touch(t, m.mmap_anon(t, 1024)) == 1024
    assert m.stat("/b")["unevictable"] == 1 << 20
    assert m.check() == []
