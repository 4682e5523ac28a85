"""Race sets for the explorer: small machines and the kernel paths that race on them, the
historical bugs (spec section 8) the model can put back, and the registry of named paths and
setup steps that race files (memcgsim.racefile) are written in.
"""

from __future__ import annotations

from .explore import RaceSet
from .machine import Machine
from .mm.locking import Step


def _file_page_setup(m: Machine) -> dict:
    m.mkdir("/a")
    t = m.spawn("T", "/a")
    f = m.create("/data/f")
    m.write(t, f.name, 1)
    m.sync()
    vma = m.mmap_file(t, f.name, 1)
    m.touch(t, vma, write=False)
    return {"task": t, "file": f, "pfn": f.find_page(0)}


def _migrate(m: Machine, ctx: dict):
    from .mm.migrate import migrate_pages

    return ctx["task"], migrate_pages(m.k, [ctx["pfn"]], 1)


def _truncate(m: Machine, ctx: dict):
    from .mm import fs_ops

    return None, fs_ops.do_truncate(m.k, ctx["file"], 0)


def _reclaim(m: Machine, ctx: dict):
    return None, _kswapd_page(m.k, ctx["pfn"])


def _kswapd_page(k, pfn: int):
    """Path: kswapd meets the page at the tail of its LRU list: under the lru_lock it is
    isolated only if it is still there (and referenced), then shrink_page_list runs."""
    from .mm.mm_types import PG_lru
    from .mm.vmscan import reclaim_page

    yield Step("lru_lock: look at the list's tail")
    if not k.mem_map.flags[pfn] & PG_lru or k.mem_map.refcount[pfn] <= 0:
        return 0
    return (yield from reclaim_page(k, pfn))


def _anon_setup(m: Machine) -> dict:
    m.mkdir("/a")
    t = m.spawn("T", "/a")
    vma = m.mmap_anon(t, 2)
    m.touch(t, vma)
    return {"task": t, "vma": vma, "pfn": m.pfn_of(vma, 0)}


def _munmap(m: Machine, ctx: dict):
    from .mm import mmap

    return ctx["task"], mmap.do_munmap(m.k, ctx["vma"])


def _splice_setup(m: Machine) -> dict:
    m.mkdir("/a")
    m.mkdir("/b")
    t, u = m.spawn("T", "/a"), m.spawn("U", "/b")
    f, g = m.create("/data/f"), m.create("/data/g")
    m.write(t, f.name, 1)
    m.write(u, g.name, 1)
    m.sync()
    return {"task": t, "file": f, "steal": g, "pfn": f.find_page(0)}


def _splice(m: Machine, ctx: dict):
    from .machine import _splice as splice_path

    return ctx["task"], splice_path(m.k, ctx["file"], 0, ctx["steal"], 0, 0)


def _writeback_setup(m: Machine) -> dict:
    """A page-cache page whose writeback has started (the device will complete it)."""
    from .mm.page_writeback import clear_page_dirty_for_io, test_set_page_writeback

    ctx = _file_page_setup(m)
    pfn = ctx["pfn"]
    m.write(ctx["task"], ctx["file"].name, 1, offset=0)     # dirty again
    clear_page_dirty_for_io(m.k, pfn)
    test_set_page_writeback(m.k, pfn)
    return ctx


def _end_writeback(m: Machine, ctx: dict):
    from .mm.page_writeback import end_page_writeback

    return None, end_page_writeback(m.k, ctx["pfn"])


def _swapin_setup(m: Machine) -> dict:
    """Eight anonymous pages swapped out; a fault on the first reads its neighbours ahead into
    the swap cache (uncharged on 3.17, on the LRU). The race is on the second one."""
    m.mkdir("/a")
    t = m.spawn("T", "/a")
    vma = m.mmap_anon(t, 8)
    m.touch(t, vma)
    for i in range(8):
        m.reclaim(m.pfn_of(vma, i))
    m.touch(t, vma, 0, 1, write=False)
    entry = m.swap_entry_of(vma, 1)
    return {"task": t, "vma": vma, "pfn": int(m.k.swap.cache[entry])}


def _swapin(m: Machine, ctx: dict):
    from .mm.memory import handle_mm_fault

    vma = ctx["vma"]
    return ctx["task"], handle_mm_fault(m.k, vma, vma.start + 1, False)


RACE_SETS = {
    r.name: r for r in (
        RaceSet("migrate-vs-truncate", "a mapped page-cache page migrated while its file is "
                "truncated", _file_page_setup, (("migrate", _migrate), ("truncate", _truncate)),
                {"memory_pages": 2048, "nodes": 2}),
        RaceSet("reclaim-vs-truncate", "a mapped page-cache page reclaimed while its file is "
                "truncated", _file_page_setup, (("reclaim", _reclaim), ("truncate", _truncate)),
                {"memory_pages": 2048, "swap_pages": 64}),
        RaceSet("migrate-vs-munmap", "an anonymous page migrated while it is unmapped",
                _anon_setup, (("migrate", _migrate), ("munmap", _munmap)),
                {"memory_pages": 2048, "nodes": 2}),
        RaceSet("reclaim-vs-munmap", "an anonymous page swapped out while it is unmapped",
                _anon_setup, (("reclaim", _reclaim), ("munmap", _munmap)),
                {"memory_pages": 2048, "swap_pages": 64}),
        RaceSet("replace-page-cache-vs-reclaim", "FUSE splice steals another file's page "
                "into the cache (replace_page_cache_page) while reclaim takes the old one",
                _splice_setup, (("splice", _splice), ("reclaim", _reclaim)),
                {"memory_pages": 2048}),
        RaceSet("writeback-vs-migrate", "the end of a page's writeback while it is migrated",
                _writeback_setup, (("end-writeback", _end_writeback), ("migrate", _migrate)),
                {"memory_pages": 2048, "nodes": 2}),
        RaceSet("swapin-vs-reclaim", "a fault maps a read-ahead swap cache page (commit with "
                "lrucare) while reclaim takes the page", _swapin_setup,
                (("swapin", _swapin), ("reclaim", _reclaim)),
                {"memory_pages": 2048, "swap_pages": 64}),
        RaceSet("reclaim-vs-munmap-noacct", "reclaim-vs-munmap with swap accounting off",
                _anon_setup, (("reclaim", _reclaim), ("munmap", _munmap)),
                {"memory_pages": 2048, "swap_pages": 64, "swap_accounting": False}),
    )
}

#: the historical bugs (spec section 8) the model can put back, and a race set that shows each
INJECTIONS = {
    "B1": ("end of writeback against migration: the writeback statistic is never decremented",
           "writeback-vs-migrate"),
    "B2": ("migration after re-mapping: mapped_file of the new page is never counted",
           "migrate-vs-truncate"),
    "B4": ("replace_page_cache without lrucare: the page changes memcg on its LRU list",
           "replace-page-cache-vs-reclaim"),
    "MEMSW-NOACCT": ("PCG_MEMSW set with swap accounting off: memsw uncharged below zero",
                     "reclaim-vs-munmap-noacct"),
}
