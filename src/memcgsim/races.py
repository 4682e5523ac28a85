"""Race sets for the explorer: small machines and the kernel paths that race on them, the
historical bugs (spec section 8) the model can put back, and the two vocabularies race files
(memcgsim.racefile) are written in: setup steps (SETUP_STEPS) and named paths (PATHS).

A setup step or a path names what it works on with references resolved in a context: tasks and
VMAs by the names the setup gave them, files by path, pages as {file: F, index: I} or
{vma: V, offset: I} (the page there when the paths start).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from inspect import Parameter, Signature

from .errors import InvalidRequest
from .explore import RaceSet
from .kernel import PAGE_SIZE
from .machine import Machine
from .ops import OPS, RACE_OPS, Drive, Op
from .scenario import Step

# ------------------------------------------------------------------------------------------
# references


def _task(m: Machine, ctx: dict, name):
    t = ctx.get("tasks", {}).get(name)
    if t is None:
        raise InvalidRequest(f"unknown task {name!r} (spawn it in the setup)")
    return t


def _vma(ctx: dict, name):
    return Drive.over(None, ctx).vma(name)


def _page(m: Machine, ctx: dict, ref) -> int:
    """The pfn a page reference names: {file: F, index: I} or {vma: V, offset: I}."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        return ref
    if not isinstance(ref, dict) or not ({"file", "vma"} & ref.keys()):
        raise InvalidRequest(f"page {ref!r}: want {{file: F, index: I}} or "
                             "{vma: V, offset: I}")
    if "file" in ref:
        f = m.file(ref["file"])
        pfn = f.find_page(int(ref.get("index", 0)))
        slot = f.swap_entry(int(ref.get("index", 0)))
        if pfn < 0 and slot and m.k.swap.cache[slot] >= 0:
            pfn = int(m.k.swap.cache[slot])                # a tmpfs page in the swap cache
        if pfn < 0:
            raise InvalidRequest(f"no page cached at index {ref.get('index', 0)} of "
                                 f"{ref['file']}")
        return pfn
    vma = _vma(ctx, ref["vma"])
    off = int(ref.get("offset", 0))
    from .mm.mm_struct import PTE_PRESENT, PTE_SWAP, PTE_VAL_MASK

    pte = int(vma.pte[off]) if 0 <= off < vma.npages else 0
    if pte & PTE_PRESENT:
        return pte & PTE_VAL_MASK
    if pte & PTE_SWAP and m.k.swap.cache[pte & PTE_VAL_MASK] >= 0:
        return int(m.k.swap.cache[pte & PTE_VAL_MASK])     # its swap cache page
    raise InvalidRequest(f"no page at offset {off} of VMA {ref['vma']}")


# ------------------------------------------------------------------------------------------
# setup steps: the race file's names for ops (memcgsim.ops), as
# name -> (function(m, ctx, **args), required args, optional args)


def _setup_step(op: Op, required: tuple, optional: dict, to_op=None) -> tuple:
    """A race file's setup step: op, given by the race file's argument names (required, and
    optional with their defaults), which to_op(m, ctx, args) maps onto the op's own."""
    params = [Parameter(n, Parameter.POSITIONAL_ONLY) for n in ("m", "ctx")]
    params += [Parameter(n, Parameter.KEYWORD_ONLY) for n in required]
    params += [Parameter(n, Parameter.KEYWORD_ONLY, default=v) for n, v in optional.items()]
    sig = Signature(params)
    task_arg = any(a.name == "task" and a.kind == "task" for a in op.args)

    def step(m, ctx, /, **given):
        bound = sig.bind(m, ctx, **given)
        bound.apply_defaults()
        args = {k: v for k, v in bound.arguments.items() if k not in ("m", "ctx")}
        args = to_op(m, ctx, args) if to_op else args
        task = _task(m, ctx, args["task"]) if task_arg else None
        op.apply(Drive.over(m, ctx), Step(op.name, args, False, None), task)

    step.__signature__ = Signature(params[2:])
    step.__name__ = step.__qualname__ = f"setup_{op.name}"
    step.__doc__ = op.doc
    return step, tuple(required), tuple(optional)


def _renamed(**names):
    """to_op for a step whose arguments only change names (race file name=op name)."""
    return lambda m, ctx, args: {names.get(k, k): v for k, v in args.items()}


def _in_bytes(fixed: dict | None = None, **names):
    """to_op that renames, turns the page count `pages` into the op's size in bytes and adds
    the fixed arguments."""
    rename = _renamed(**names)

    def to_op(m, ctx, args):
        out = rename(m, ctx, args)
        out["size"] = out.pop("pages") * PAGE_SIZE
        return {**out, **(fixed or {})}
    return to_op


SETUP_STEPS: dict[str, tuple[Callable, tuple, tuple]] = {
    "mkdir": _setup_step(RACE_OPS["mkdir"], ("path",), {}, _renamed(path="cgroup")),
    "set": _setup_step(OPS["set"], ("cgroup", "file", "value"), {}, lambda m, ctx, a: {
        "cgroup": a["cgroup"], "writes": ((a["file"], str(a["value"])),)}),
    "spawn": _setup_step(OPS["spawn"], ("task",), {"cgroup": "/", "node": 0}),
    "fork": _setup_step(OPS["fork"], ("task", "child"), {}),
    "create": _setup_step(RACE_OPS["create"], ("file",), {"tmpfs": False, "node": None},
                          lambda m, ctx, a: {"file": a["file"], "node": a["node"],
                                             "fs": "tmpfs" if a["tmpfs"] else "ext4"}),
    # no fs: the write makes the file as write(2) does when it is not there
    "write": _setup_step(OPS["write"], ("task", "file", "pages"), {"offset": None},
                         _in_bytes({"fs": None})),
    "read": _setup_step(OPS["read"], ("task", "file"), {"index": 0, "pages": None}),
    "sync": _setup_step(OPS["sync"], (), {}),
    "mmap_anon": _setup_step(RACE_OPS["mmap_anon"], ("task", "pages", "name"),
                             {"hugepage": False, "shared": False}, _in_bytes(name="as")),
    "mmap_file": _setup_step(RACE_OPS["mmap_file"], ("task", "file", "name"),
                             {"pages": None, "pgoff": 0}, _renamed(name="as")),
    "touch": _setup_step(RACE_OPS["touch_pages"], ("task", "vma"),
                         {"offset": 0, "pages": None, "write": True}, _renamed(vma="region")),
    "reclaim": _setup_step(RACE_OPS["reclaim"], ("page",), {},
                           lambda m, ctx, a: {"pfn": _page(m, ctx, a["page"])}),
    "reclaim_range": _setup_step(RACE_OPS["reclaim_range"], ("vma",),
                                 {"offset": 0, "pages": 1}, _renamed(vma="region")),
    "reclaim_file": _setup_step(RACE_OPS["reclaim_file"], ("file",), {"index": 0, "pages": 1}),
}


def run_setup(m: Machine, steps: list[tuple[str, dict]], ctx: dict | None = None) -> dict:
    """Apply setup steps (name, arguments) to a machine; returns the context."""
    ctx = {} if ctx is None else ctx
    for name, args in steps:
        SETUP_STEPS[name][0](m, ctx, **args)
    return ctx


# ------------------------------------------------------------------------------------------
# paths: name -> PathSpec


@dataclass(frozen=True)
class PathSpec:
    """A kernel path a race can run: start(m, ctx, **args) -> (task or None, generator)."""

    start: Callable
    doc: str
    required: tuple = ()
    optional: tuple = ()


def _p_migrate(m, ctx, page, node=1, task=None):
    from .mm.migrate import migrate_pages

    return (_task(m, ctx, task) if task else None,
            migrate_pages(m.k, [_page(m, ctx, page)], node))


def _p_truncate(m, ctx, file, pages=0):
    from .mm import fs_ops

    return None, fs_ops.do_truncate(m.k, m.file(file), pages)


def _p_reclaim(m, ctx, page):
    from .mm.vmscan import kswapd_shrink_page

    return None, kswapd_shrink_page(m.k, _page(m, ctx, page))


def _p_munmap(m, ctx, task, vma):
    from .mm import mmap

    return _task(m, ctx, task), mmap.vm_munmap(m.k, _vma(ctx, vma))


def _p_splice(m, ctx, task, file, steal, index=0, steal_index=0):
    from .mm.fuse_dev import fuse_try_move_page

    return _task(m, ctx, task), fuse_try_move_page(m.k, m.file(file), index, m.file(steal),
                                                   steal_index, 0)


def _p_end_writeback(m, ctx, page):
    from .mm.page_writeback import end_page_writeback

    return None, end_page_writeback(m.k, _page(m, ctx, page))


def _p_fault(m, ctx, task, vma, offset=0, write=False):
    from .mm.memory import do_page_fault

    v = _vma(ctx, vma)
    return _task(m, ctx, task), do_page_fault(m.k, v.mm, v.start + offset, write)


def _p_attach(m, ctx, task, cgroup):
    from .mm.memcontrol_v1 import attach_task

    t = _task(m, ctx, task)
    return t, attach_task(m.k, t, m.memcg(cgroup))


def _p_split_thp(m, ctx, page):
    from .mm.huge_memory import split_huge_page_pfn
    from .mm.mm_types import HPAGE_PMD_NR

    pfn = _page(m, ctx, page)
    return None, split_huge_page_pfn(m.k, pfn - pfn % HPAGE_PMD_NR)


def _p_shmem_read(m, ctx, task, file, index=0):
    from .mm.shmem import shmem_file_read_iter

    t = _task(m, ctx, task)
    return t, shmem_file_read_iter(m.k, m.file(file), index, 1, t.node)


def _p_read(m, ctx, task, file, index=0, pages=1):
    from .mm.filemap import do_generic_file_read

    t = _task(m, ctx, task)
    return t, do_generic_file_read(m.k, m.file(file), index, pages, t.node)


def _p_hugetlb_add(m, ctx, file, index=0, node=0, task=None):
    from .mm.hugetlb import hugetlb_add_page

    return (_task(m, ctx, task) if task else None,
            hugetlb_add_page(m.k, m.file(file), index, node))


def _p_hugetlb_truncate(m, ctx, file, pages=0):
    from .mm.hugetlb import truncate_hugepages

    return None, truncate_hugepages(m.k, m.file(file), pages)


PATHS: dict[str, PathSpec] = {
    "migrate": PathSpec(_p_migrate, "migrate_pages of one page to a node (isolate, lock both "
                        "pages, move the mapping and the charge, re-map, putback)",
                        ("page",), ("node", "task")),
    "truncate": PathSpec(_p_truncate, "truncate a file to `pages` pages", ("file",),
                         ("pages",)),
    "reclaim": PathSpec(_p_reclaim, "kswapd reclaims the page (isolate, trylock, unmap, "
                        "add_to_swap, writeback, __remove_mapping, swapout, free)", ("page",)),
    "munmap": PathSpec(_p_munmap, "munmap a VMA under mmap_sem for writing (zap, the final "
                       "puts)", ("task", "vma")),
    "splice": PathSpec(_p_splice, "FUSE splice: replace_page_cache_page steals a page of "
                       "`steal` into `file` (lrucare)", ("task", "file", "steal"),
                       ("index", "steal_index")),
    "end_writeback": PathSpec(_p_end_writeback, "the I/O of a page under writeback completes",
                              ("page",)),
    "fault": PathSpec(_p_fault, "a page fault under mmap_sem for reading (anonymous, file, "
                      "swapin with read-ahead and the commit with lrucare, THP)",
                      ("task", "vma"), ("offset", "write")),
    "attach": PathSpec(_p_attach, "move a task to a cgroup: precharge, then the charge move "
                       "(isolation, trylock_page, move_lock)", ("task", "cgroup")),
    "split_thp": PathSpec(_p_split_thp, "split the THP a page belongs to", ("page",)),
    "shmem_read": PathSpec(_p_shmem_read, "read(2) of one tmpfs page (shmem_getpage "
                           "SGP_READ: swapin, shmem_replace_page when the file asks for "
                           "another node; a hole allocates nothing)",
                           ("task", "file"), ("index",)),
    "read": PathSpec(_p_read, "read(2): page cache insertion (charged to the reader) of "
                     "what is not cached", ("task", "file"), ("index", "pages")),
    "hugetlb_add": PathSpec(_p_hugetlb_add, "a hugetlbfs fault's page cache insertion of a "
                            "new huge page", ("file",), ("index", "node", "task")),
    "hugetlb_truncate": PathSpec(_p_hugetlb_truncate, "truncate a hugetlbfs file",
                                 ("file",), ("pages",)),
}


def race_set(name: str, doc: str, setup, paths: list[tuple[str, str, dict]],
             machine: dict, expect: tuple = ()) -> RaceSet:
    """A RaceSet from setup steps (or a setup function), (label, path name, arguments) and
    what every schedule must end with (expect_returns, expect_value)."""
    def build(m: Machine) -> dict:
        return setup(m) if callable(setup) else run_setup(m, setup)

    def starter(spec: PathSpec, args: dict):
        return lambda m, ctx: spec.start(m, ctx, **args)

    labels = [label for label, _, _ in paths]
    return RaceSet(name, doc, build,
                   tuple((label, starter(PATHS[p], args)) for label, p, args in paths),
                   machine, tuple(make(labels) for make in expect))


def expect_returns(label: str, allowed) -> Callable:
    """Every schedule ends with the path `label` having returned one of `allowed`."""
    allowed = tuple(allowed)

    def make(labels: list[str]):
        i = labels.index(label)

        def check(m: Machine, results: tuple) -> str | None:
            if results[i] not in allowed:
                return (f"{label} returned {results[i]!r}, not "
                        f"{' or '.join(map(repr, allowed))}")
            return None
        return check
    return make


def expect_value(cgroup: str, key: str, want) -> Callable:
    """Every schedule ends with the cgroup file (FILE or FILE.KEY) holding `want`: a number,
    or a scenario Check (a tolerance or a range)."""
    from .scenario import read_value

    ok = want.holds if hasattr(want, "holds") else want.__eq__
    text = want.text if hasattr(want, "holds") else str(want)

    def make(labels: list[str]):
        def holds(m: Machine, results: tuple) -> str | None:
            value = read_value(m, cgroup, key)
            if value is None or not ok(value):
                return f"{cgroup} {key} is {value}, not {text}"
            return None
        return holds
    return make


# ------------------------------------------------------------------------------------------
# the standard race sets

_FILE_PAGE = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
              ("create", {"file": "/data/f"}),
              ("write", {"task": "T", "file": "/data/f", "pages": 1}), ("sync", {}),
              ("mmap_file", {"task": "T", "file": "/data/f", "name": "v", "pages": 1}),
              ("touch", {"task": "T", "vma": "v", "write": False})]
_F0 = {"file": "/data/f", "index": 0}

_ANON_PAGE = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
              ("mmap_anon", {"task": "T", "pages": 2, "name": "v"}),
              ("touch", {"task": "T", "vma": "v"})]
_V0 = {"vma": "v", "offset": 0}

_SPLICE = [("mkdir", {"path": "/a"}), ("mkdir", {"path": "/b"}),
           ("spawn", {"task": "T", "cgroup": "/a"}), ("spawn", {"task": "U", "cgroup": "/b"}),
           ("create", {"file": "/data/f"}), ("create", {"file": "/data/g"}),
           ("write", {"task": "T", "file": "/data/f", "pages": 1}),
           ("write", {"task": "U", "file": "/data/g", "pages": 1}), ("sync", {})]


def _writeback_setup(m: Machine) -> dict:
    """A page-cache page whose writeback has started (the device will complete it)."""
    from .mm.page_writeback import clear_page_dirty_for_io, test_set_page_writeback

    ctx = run_setup(m, _FILE_PAGE)
    pfn = m.file("/data/f").find_page(0)
    m.write(ctx["tasks"]["T"], "/data/f", 1, offset=0)     # dirty again
    clear_page_dirty_for_io(m.k, pfn)
    test_set_page_writeback(m.k, pfn)
    return ctx


_SWAPIN = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
           ("mmap_anon", {"task": "T", "pages": 8, "name": "v"}),
           ("touch", {"task": "T", "vma": "v"}),
           ("reclaim_range", {"vma": "v", "pages": 8}),
           ("touch", {"task": "T", "vma": "v", "pages": 1, "write": False})]

# two pages swapped out and shared with a child by fork: the child's swapin reads the
# neighbour's slot ahead while the parent unmaps its copy
_READAHEAD = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
              ("mmap_anon", {"task": "T", "pages": 2, "name": "v"}),
              ("touch", {"task": "T", "vma": "v"}),
              ("reclaim_range", {"vma": "v", "pages": 2}),
              ("fork", {"task": "T", "child": "C"})]

_CHARGE_MOVE = _SPLICE[:2] + [("set", {"cgroup": "/b", "file": "memory.move_charge_at_immigrate",
                                       "value": 3})] + _SPLICE[2:] + [
    ("mmap_file", {"task": "T", "file": "/data/f", "name": "v", "pages": 1})]

_THP = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
        ("mmap_anon", {"task": "T", "pages": 512, "name": "v"}),
        ("touch", {"task": "T", "vma": "v", "pages": 1})]

# i915's case: a tmpfs page is swapped out; a neighbour's swapin reads its slot ahead into a
# page of the wrong node (the file asks for node 1), so shmem_getpage must replace it
_SHMEM_REPLACE = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
                  ("create", {"file": "/dev/shm/gem", "tmpfs": True, "node": 1}),
                  ("write", {"task": "T", "file": "/dev/shm/gem", "pages": 1}),
                  ("reclaim_file", {"file": "/dev/shm/gem"}),
                  ("mmap_anon", {"task": "T", "pages": 1, "name": "v"}),
                  ("touch", {"task": "T", "vma": "v"}),
                  ("reclaim_range", {"vma": "v"}),
                  ("touch", {"task": "T", "vma": "v", "write": False})]
_GEM0 = {"file": "/dev/shm/gem", "index": 0}

_HUGETLB = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
            ("create", {"file": "/hugetlbfs/f"})]

_THP_LIMIT = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
              ("mmap_anon", {"task": "T", "pages": 200, "name": "small"}),
              ("touch", {"task": "T", "vma": "small"}),
              ("mmap_anon", {"task": "T", "pages": 512, "name": "big", "hugepage": True})]


def _limit_at_usage(m: Machine, path: str, room: int = 0) -> None:
    """Drain the memcg's stock, then set its limit to its usage plus `room` pages."""
    from .mm.memcontrol import drain_all_stock

    drain_all_stock(m.k, m.memcg(path))
    limit = "memory.max" if m.k.cgroup_v2 else "memory.limit_in_bytes"
    m.write_file(path, limit, str((m.usage(path) + room) * 4096))


def _thp_limit_setup(m: Machine) -> dict:
    """The memcg full to its memory.max but for the fault's page table: with room for even
    one page more, the OOM killer asked about an order-0 charge would report success without
    a kill (its margin check is by the order), and the charge loop would retry forever."""
    ctx = run_setup(m, _THP_LIMIT)
    # room for the page table the fault allocates (kernel memory, charged on 6.x), no more
    _limit_at_usage(m, "/a", room=1)
    return ctx


_AT_LIMIT = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
             ("create", {"file": "/data/f"}),
             ("write", {"task": "T", "file": "/data/f", "pages": 2}), ("sync", {}),
             ("mmap_anon", {"task": "T", "pages": 4, "name": "v"}),
             ("touch", {"task": "T", "vma": "v", "pages": 2})]


def _at_limit_setup(m: Machine) -> dict:
    """/a's limit at its usage (stock drained): every new charge reclaims, inside the path
    that charges, before it can go on."""
    ctx = run_setup(m, _AT_LIMIT)
    _limit_at_usage(m, "/a")
    return ctx


_READ = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
         ("create", {"file": "/data/f"}), ("write", {"task": "T", "file": "/data/f", "pages": 1}),
         ("sync", {}), ("reclaim_file", {"file": "/data/f"})]

_ANON_ATTACH = [("mkdir", {"path": "/a"}), ("mkdir", {"path": "/b"}),
                ("set", {"cgroup": "/b", "file": "memory.move_charge_at_immigrate",
                         "value": 3}),
                ("spawn", {"task": "T", "cgroup": "/a"}),
                ("mmap_anon", {"task": "T", "pages": 2, "name": "v"}),
                ("touch", {"task": "T", "vma": "v", "pages": 1})]

_SHARED_SWAP = [("mkdir", {"path": "/a"}), ("spawn", {"task": "T", "cgroup": "/a"}),
                ("mmap_anon", {"task": "T", "pages": 1, "name": "v"}),
                ("touch", {"task": "T", "vma": "v"}), ("reclaim_range", {"vma": "v"}),
                ("fork", {"task": "T", "child": "C"})]

_SWAP = {"memory_pages": 1024, "swap_pages": 16}
_NUMA = {"memory_pages": 1024, "nodes": 2}

RACE_SETS = {r.name: r for r in (
    race_set("migrate-vs-truncate", "a mapped page-cache page migrated while its file is "
             "truncated", _FILE_PAGE,
             [("migrate", "migrate", {"page": _F0, "task": "T"}),
              ("truncate", "truncate", {"file": "/data/f"})], _NUMA),
    race_set("reclaim-vs-truncate", "a mapped page-cache page reclaimed while its file is "
             "truncated", _FILE_PAGE,
             [("reclaim", "reclaim", {"page": _F0}),
              ("truncate", "truncate", {"file": "/data/f"})], _SWAP),
    race_set("migrate-vs-munmap", "an anonymous page migrated while it is unmapped", _ANON_PAGE,
             [("migrate", "migrate", {"page": _V0, "task": "T"}),
              ("munmap", "munmap", {"task": "T", "vma": "v"})], _NUMA),
    race_set("reclaim-vs-munmap", "an anonymous page swapped out while it is unmapped",
             _ANON_PAGE, [("reclaim", "reclaim", {"page": _V0}),
                          ("munmap", "munmap", {"task": "T", "vma": "v"})], _SWAP),
    race_set("replace-page-cache-vs-reclaim", "FUSE splice steals another file's page into "
             "the cache (replace_page_cache_page) while reclaim takes the old one", _SPLICE,
             [("splice", "splice", {"task": "T", "file": "/data/f", "steal": "/data/g"}),
              ("reclaim", "reclaim", {"page": _F0})], {"memory_pages": 1024}),
    race_set("writeback-vs-migrate", "the end of a page's writeback while it is migrated",
             _writeback_setup,
             [("end-writeback", "end_writeback", {"page": _F0}),
              ("migrate", "migrate", {"page": _F0, "task": "T"})], _NUMA),
    race_set("swapin-vs-reclaim", "a fault maps a read-ahead swap cache page (commit with "
             "lrucare) while reclaim takes the page", _SWAPIN,
             [("swapin", "fault", {"task": "T", "vma": "v", "offset": 1}),
              ("reclaim", "reclaim", {"page": {"vma": "v", "offset": 1}})], _SWAP),
    race_set("reclaim-vs-munmap-noacct", "reclaim-vs-munmap with swap accounting off",
             _ANON_PAGE, [("reclaim", "reclaim", {"page": _V0}),
                          ("munmap", "munmap", {"task": "T", "vma": "v"})],
             {**_SWAP, "swap_accounting": False}),
    race_set("migrate-vs-migrate", "compaction migrates a page twice: the second isolation "
             "takes the old page back from the LRU before the first migration's putback "
             "dropped its reference", _FILE_PAGE,
             [("migrate-1", "migrate", {"page": _F0}),
              ("migrate-2", "migrate", {"page": _F0})], _NUMA),
    race_set("replace-page-cache-vs-charge-move", "FUSE splice replaces a cached page while "
             "the task that maps the file moves to a memcg with move_charge_at_immigrate "
             "(the charge move trylocks the page)", _CHARGE_MOVE,
             [("splice", "splice", {"task": "U", "file": "/data/f", "steal": "/data/g"}),
              ("attach", "attach", {"task": "T", "cgroup": "/b"})], {"memory_pages": 1024}),
    race_set("swapin-readahead-vs-munmap", "a forked child's swapin fault reads its "
             "neighbour's slot ahead while the parent unmaps its copy (zap drops the slots' "
             "counts and may free their swap cache pages)",
             _READAHEAD,
             [("swapin", "fault", {"task": "C", "vma": "C:v", "offset": 0}),
              ("munmap", "munmap", {"task": "T", "vma": "v"})], _SWAP),
    race_set("thp-split-vs-munmap", "a THP split (lru_lock, page-table lock, memcg fixup) "
             "while the VMA is unmapped", _THP,
             [("split", "split_thp", {"page": _V0}),
              ("munmap", "munmap", {"task": "T", "vma": "v"})],
             {"memory_pages": 1024, "thp": True}),
    race_set("shmem-replace-vs-reclaim", "a tmpfs page swapped in by read-ahead on the wrong "
             "node is replaced (shmem_replace_page, lrucare) while reclaim takes it",
             _SHMEM_REPLACE,
             [("shmem-read", "shmem_read", {"task": "T", "file": "/dev/shm/gem"}),
              ("reclaim", "reclaim", {"page": _GEM0})],
             {**_SWAP, "nodes": 2}),
    race_set("hugetlb-add-vs-truncate", "a hugetlbfs page enters the page cache while the "
             "file is truncated (sequential in effect: the bug B7 shows needs no race)",
             _HUGETLB,
             [("hugetlb-fault", "hugetlb_add", {"file": "/hugetlbfs/f", "task": "T"}),
              ("truncate", "hugetlb_truncate", {"file": "/hugetlbfs/f"})],
             {"memory_pages": 1024}),
    race_set("thp-fault-at-limit", "6.1 v2: a THP fault in a madvised VMA whose 512-page "
             "charge does not fit memory.max (one path: B8 is an order computed wrongly, "
             "not a race)", _thp_limit_setup,
             [("thp-fault", "fault", {"task": "T", "vma": "big", "write": True})],
             {"memory_pages": 1024, "profile": "6.1", "cgroup": "v2", "thp": True}),
    race_set("read-vs-truncate", "read(2) brings a page back into the cache (charge, "
             "insertion under the page lock and tree_lock) while the file is truncated", _READ,
             [("read", "read", {"task": "T", "file": "/data/f"}),
              ("truncate", "truncate", {"file": "/data/f"})], {"memory_pages": 1024}),
    race_set("anon-fault-vs-charge-move", "a page fault commits a new anonymous page under "
             "the page-table lock while the task moves to a memcg that takes its charges",
             _ANON_ATTACH,
             [("fault", "fault", {"task": "T", "vma": "v", "offset": 1, "write": True}),
              ("attach", "attach", {"task": "T", "cgroup": "/b"})], {"memory_pages": 1024}),
    race_set("write-fault-vs-migrate", "a write to a read-only pte of a shared file mapping "
             "(page_mkwrite under the page lock) while the page is migrated: the fault holds a "
             "reference across its wait for the lock, and a fault on the migration entry waits "
             "for the migration", _FILE_PAGE,
             [("fault", "fault", {"task": "T", "vma": "v", "write": True}),
              ("migrate", "migrate", {"page": _F0, "task": "T"})], {**_NUMA, "swap_pages": 16},
             expect=(expect_returns("fault", (0, 8)),)),        # 8: VM_FAULT_WRITE
    race_set("truncate-vs-end-writeback", "truncation waits for the writeback of a page it "
             "has locked to end before it drops the page", _writeback_setup,
             [("truncate", "truncate", {"file": "/data/f"}),
              ("end-writeback", "end_writeback", {"page": _F0})], _SWAP,
             expect=(expect_value("/a", "memory.stat.cache", 0),
                     expect_value("/a", "memory.stat.writeback", 0))),
    race_set("charge-reclaim-vs-kswapd", "6.12 v2: a fault in a memcg at its memory.max "
             "reclaims inside its charge while kswapd reclaims a page of the same memcg (the "
             "charge's reclaim runs whole inside the fault's step, and waits while kswapd "
             "holds a lock it needs)", _at_limit_setup,
             [("fault", "fault", {"task": "T", "vma": "v", "offset": 2, "write": True}),
              ("kswapd", "reclaim", {"page": _F0})],
             {**_NUMA, "swap_pages": 16, "profile": "6.12", "cgroup": "v2"},
             expect=(expect_returns("fault", (0,)),)),
    race_set("fault-vs-munmap", "a task faults a page of a VMA that another of its threads "
             "unmaps: mmap_sem orders them, so the fault maps the page and the unmap frees it, "
             "or the fault finds no VMA", _ANON_PAGE[:3] + [
                 ("touch", {"task": "T", "vma": "v", "pages": 1})],
             [("fault", "fault", {"task": "T", "vma": "v", "offset": 1, "write": True}),
              ("munmap", "munmap", {"task": "T", "vma": "v"})], _SWAP,
             expect=(expect_returns("fault", (0, 64)),      # 64: VM_FAULT_SIGSEGV
                     expect_value("/a", "memory.stat.rss", 0))),
    race_set("swapin-vs-swapin", "parent and forked child fault the same swapped-out page: "
             "one reads it in, both commit (the second finds it charged); the one that finds "
             "the slot claimed waits for it, neither fault fails", _SHARED_SWAP,
             [("parent", "fault", {"task": "T", "vma": "v"}),
              ("child", "fault", {"task": "C", "vma": "C:v"})], _SWAP,
             # 0: the fault found its pte already changed; 4: VM_FAULT_MAJOR; 1 would be OOM
             expect=(expect_returns("parent", (0, 4)), expect_returns("child", (0, 4)))),
    race_set("migrate-vs-truncate-vs-reclaim", "three paths on one mapped page-cache page: "
             "migration, truncation and reclaim", _FILE_PAGE,
             [("migrate", "migrate", {"page": _F0, "task": "T"}),
              ("truncate", "truncate", {"file": "/data/f"}),
              ("reclaim", "reclaim", {"page": _F0})], {**_NUMA, "swap_pages": 16}),
    race_set("writeback-migrate-reclaim-munmap", "four paths on a page under writeback: its "
             "I/O completes while it is migrated, reclaimed and unmapped", _writeback_setup,
             [("end-writeback", "end_writeback", {"page": _F0}),
              ("migrate", "migrate", {"page": _F0, "task": "T"}),
              ("reclaim", "reclaim", {"page": _F0}),
              ("munmap", "munmap", {"task": "T", "vma": "v"})], {**_NUMA, "swap_pages": 16}),
)}

#: the historical bugs (spec section 8) the model can put back, and a race set that shows each
INJECTIONS = {
    "B1": ("end of writeback against migration: the writeback statistic is never decremented",
           "writeback-vs-migrate"),
    "B2": ("migration after re-mapping: mapped_file of the new page is never counted",
           "migrate-vs-truncate"),
    "B3": ("double migration: the old page keeps PCG_USED without its charge, and a second "
           "migration takes it again", "migrate-vs-migrate"),
    "B4": ("replace_page_cache without lrucare: the page changes memcg on its LRU list",
           "replace-page-cache-vs-reclaim"),
    "B5": ("shmem_replace_page with lrucare false: the read-ahead page is on its LRU list",
           "shmem-replace-vs-reclaim"),
    "B7": ("hugetlb pages charged through the page cache: freed with PCG_USED set",
           "hugetlb-add-vs-truncate"),
    "B8": ("the OOM order of a THP charge computed from pages, not bytes: a costly charge "
           "OOM-kills", "thp-fault-at-limit"),
    "MEMSW-NOACCT": ("PCG_MEMSW set with swap accounting off: memsw uncharged below zero",
                     "reclaim-vs-munmap-noacct"),
}
