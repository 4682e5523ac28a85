"""A task's mappings: anon, shm, mmap, touch, unmap, mlock, munlock."""

from __future__ import annotations

from ..scenario.marks import PAGE, error_at, parse_size, read_name
from .op import Arg, Op, errno_name

TASK = Arg("task", "task", "the task")
REGION = Arg("region", "region", "the region (as: of anon, shm or mmap)")
NEW_REGION = Arg("as", "new region", "the region's name")
SIZE = Arg("size", "size", "its size: a whole number of 4 KiB pages, at least one")


def _anon_load(b, a, node, what="an anonymous mapping"):
    vals = {"task": b.task(a), "size": parse_size(a["size"][1], "size", whole_pages=True)}
    if not vals["size"]:
        raise error_at(a["size"][1], f"size: {what} needs at least one page")
    for key, default in (("shared", False), ("locked", False), ("touch", True)):
        if key in a:
            if not isinstance(a[key][1].value, bool):
                raise error_at(a[key][1], f"{key}: want true or false")
            vals[key] = a[key][1].value
        else:
            vals[key] = default
    return _new_region(b, a, vals)


def _new_region(b, a, vals):
    vals["as"] = read_name(a["as"][1], "as")
    b.regions.setdefault(vals["task"], set()).add(vals["as"])
    return vals


def _anon(d, step, t):
    a = step.args
    vma = d.m.mmap_anon(t, a["size"] // PAGE, shared=a.get("shared", False),
                        locked=a.get("locked", False))
    d.regions[(t.comm, a["as"])] = vma
    if a.get("touch", True) and t.state == "alive":
        d.m.touch(t, vma)


def _anon_guest(p, step, t):
    a = step.args
    flags = (1 if a["shared"] else 0) | (2 if a["locked"] else 0) | (0 if a["touch"] else 4)
    return [f"task {t} anon {p.token(step, a['as'], 'region')} {a['size']} {flags}"]


def _mapped_pages(est, a):
    """A new region of size bytes, every page of it named."""
    est.mine(a)[a["as"]] = a["size"] // PAGE
    return a["size"] // PAGE


ANON = Op("anon", "a private anonymous mapping (mmap), every page written",
          (TASK, SIZE, NEW_REGION,
           Arg("shared", "bool", "MAP_SHARED: shmem, as a shared mapping of /dev/zero is; "
                                 "false", False),
           Arg("locked", "bool", "MAP_LOCKED: populated and mlocked by mmap; false", False),
           Arg("touch", "bool", "write every page; true (false: mapped, nothing faulted)",
               False)),
          _anon_load, _anon, _anon_guest, pages=_mapped_pages)


def _shm(d, step, t):
    """shmget + shmat + IPC_RMID, then touch every page: shmem mapped shared, destroyed when
    it is detached (unmap)."""
    vma = d.m.mmap_anon(t, step.args["size"] // PAGE, shared=True)
    d.regions[(t.comm, step.args["as"])] = vma
    d.m.touch(t, vma)


SHM = Op("shm", "SysV shmget + shmat + IPC_RMID, every page touched; unmap detaches and "
                "destroys it",
         (TASK, SIZE, NEW_REGION),
         lambda b, a, node: _anon_load(b, a, node, "a shm segment"), _shm,
         lambda p, step, t: [f"task {t} shm {p.token(step, step.args['as'], 'region')} "
                             f"{step.args['size']}"],
         pages=_mapped_pages)


def _mmap(d, step, t):
    a = step.args
    f = d.m.file(a["file"])
    if not f.size_pages:
        return "EINVAL"
    vma = d.m.mmap_file(t, a["file"])
    d.regions[(t.comm, a["as"])] = vma
    d.m.touch(t, vma, write=False)
    return None


def _mmap_pages(est, a):
    est.mine(a)[a["as"]] = est.files.get(a["file"], 0)
    return est.files.get(a["file"], 0)


MMAP = Op("mmap", "a shared mapping of a whole file, every page read",
          (TASK, Arg("file", "file", "the file (a write made it)"), NEW_REGION),
          lambda b, a, node: _new_region(b, a, {"task": b.task(a), "file": b.file(a)}),
          _mmap,
          lambda p, step, t: [f"task {t} mmap {p.token(step, step.args['as'], 'region')} "
                              f"{p.file_path(step, step.args['file'])}"],
          pages=_mmap_pages)


def _region_load(b, a, node):
    task = b.task(a)
    return {"task": task, "region": b.region(a, task)}


def _region_pages(est, a):
    return est.mine(a).get(a["region"], 0)


def _region_op(name: str, doc: str, apply, load=_region_load, pages=_region_pages) -> Op:
    """An op on one region of a task; the guest names it as the workload does."""
    return Op(name, doc, (TASK, REGION), load, apply,
              lambda p, step, t: [f"task {t} {name} {step.args['region']}"], pages=pages)


def _vma(d, step, t):
    return d.regions[(t.comm, step.args["region"])]


def _unmap_load(b, a, node):
    vals = _region_load(b, a, node)
    b.regions[vals["task"]].discard(vals["region"])
    return vals


def _unmap(d, step, t):
    d.m.munmap(t, d.regions.pop((t.comm, step.args["region"])))


def _touch(d, step, t):
    d.m.touch(t, _vma(d, step, t))


TOUCH = _region_op("touch", "write every page of the region again (breaks COW after fork)",
                   _touch)
UNMAP = _region_op("unmap", "munmap the region", _unmap, _unmap_load,
                   lambda est, a: est.mine(a).pop(a["region"], 0))
MLOCK = _region_op("mlock", "mlock the region: populates it; EAGAIN when it cannot",
                   lambda d, step, t: errno_name(d.m.mlock(t, _vma(d, step, t))))
MUNLOCK = _region_op("munlock", "munlock the region: its pages leave the unevictable list "
                                "(those another locked region maps stay)",
                     lambda d, step, t: d.m.munlock(t, _vma(d, step, t)))

OPS = (ANON, SHM, MMAP, TOUCH, UNMAP, MLOCK, MUNLOCK)
