"""The ops only a race file's setup uses (docs/explore-format.md): cgroups and files made
directly, mappings and touches by page, reclaim of chosen pages. They work on a Drive built
over the race's context (its VMAs named once for the machine; a mapping is also its task's
region of that name, which unmap takes); the real-kernel guest has no
race setups, so none has a guest translation."""

from __future__ import annotations

from ..scenario.marks import PAGE
from .op import Arg, Op

TASK = Arg("task", "task", "the task")
REGION = Arg("region", "region", "the VMA, by the name its mmap gave it")
OFFSET = Arg("offset", "number", "the first page, from the VMA's start; 0", False)
RACE_ONLY = "a race setup step: not a scenario step"


def _race_op(name: str, doc: str, args: tuple, apply) -> Op:
    return Op(name, doc, args, None, apply, None, RACE_ONLY)


def _mkdir(d, step, t):
    d.m.mkdir(step.args["cgroup"])


def _create(d, step, t):
    a = step.args
    d.m.create(a["file"], tmpfs=a["fs"] == "tmpfs").gfp_node = a["node"]


def _mmap_anon(d, step, t):
    a = step.args
    d.vmas[a["as"]] = d.regions[(t.comm, a["as"])] = d.m.mmap_anon(
        t, a["size"] // PAGE, shared=a["shared"], hugepage=a["hugepage"])


def _mmap_file(d, step, t):
    a = step.args
    d.vmas[a["as"]] = d.regions[(t.comm, a["as"])] = d.m.mmap_file(t, a["file"], a["pages"],
                                                                    a["pgoff"])


def _touch_pages(d, step, t):
    a = step.args
    d.m.touch(t, d.vma(a["region"]), a["offset"], a["pages"], write=a["write"])


def _reclaim(d, step, t):
    d.m.reclaim(step.args["pfn"])


def _reclaim_range(d, step, t):
    """Swap out pages [offset, offset+pages) of an anonymous VMA one by one."""
    a = step.args
    v = d.vma(a["region"])
    for i in range(a["offset"], a["offset"] + a["pages"]):
        d.m.reclaim(d.m.pfn_of(v, i))


def _reclaim_file(d, step, t):
    """Reclaim cached pages of a file (tmpfs pages go to swap)."""
    a = step.args
    f = d.m.file(a["file"])
    for i in range(a["index"], a["index"] + a["pages"]):
        pfn = f.find_page(i)
        if pfn >= 0:
            d.m.reclaim(pfn)


MKDIR = _race_op("mkdir", "make a cgroup (its parent first)",
                 (Arg("cgroup", "new cgroup", "its path"),), _mkdir)
CREATE = _race_op("create", "make an empty file",
                  (Arg("file", "new file", "its path"),
                   Arg("fs", "text", "tmpfs or ext4"),
                   Arg("node", "number", "the node its page cache allocates on; any", False)),
                  _create)
MMAP_ANON = _race_op("mmap_anon", "an anonymous mapping, nothing faulted yet",
                     (TASK, Arg("size", "size", "bytes, whole pages"),
                      Arg("as", "new region", "the VMA's name"),
                      Arg("hugepage", "bool", "THP-aligned (MADV_HUGEPAGE)"),
                      Arg("shared", "bool", "MAP_SHARED: shmem")), _mmap_anon)
MMAP_FILE = _race_op("mmap_file", "a shared mapping of a file, nothing faulted yet",
                     (TASK, Arg("file", "file", "the file"),
                      Arg("as", "new region", "the VMA's name"),
                      Arg("pages", "number", "its length in pages; to the end of the file",
                          False),
                      Arg("pgoff", "number", "the file page it starts at")), _mmap_file)
TOUCH_PAGES = _race_op("touch_pages", "fault pages of a VMA in, by write or read",
                       (TASK, REGION, OFFSET,
                        Arg("pages", "number", "how many; to the VMA's end", False),
                        Arg("write", "bool", "a write fault (else a read)")), _touch_pages)
RECLAIM = _race_op("reclaim", "reclaim one page (swap it out, or drop it from the cache)",
                   (Arg("pfn", "number", "the page frame"),), _reclaim)
RECLAIM_RANGE = _race_op("reclaim_range", "swap out pages of an anonymous VMA one by one",
                         (REGION, OFFSET, Arg("pages", "number", "how many")), _reclaim_range)
RECLAIM_FILE = _race_op("reclaim_file", "reclaim the cached pages of a file (tmpfs pages go "
                                        "to swap)",
                        (Arg("file", "file", "the file"),
                         Arg("index", "number", "the first page"),
                         Arg("pages", "number", "how many")), _reclaim_file)

OPS = (MKDIR, CREATE, MMAP_ANON, MMAP_FILE, TOUCH_PAGES, RECLAIM, RECLAIM_RANGE, RECLAIM_FILE)
