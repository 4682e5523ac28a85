"""Files and the page cache: write, read, truncate, unlink, sync, splice, drop_caches."""

from __future__ import annotations

from ..scenario.marks import PAGE, error_at, parse_size, read_file_name, show
from .op import Arg, Op, errno_name

TASK = Arg("task", "task", "the task")
FILE = Arg("file", "file", "the file (a write made it)")
FILESYSTEMS = ("ext4", "tmpfs", "xfs", "btrfs")


def _write_load(b, a, node):
    vals = {"task": b.task(a), "file": read_file_name(a["file"][1]),
            "size": parse_size(a["size"][1], "size", whole_pages=True)}
    fs = a.get("fs")
    if fs is not None and fs[1].value not in FILESYSTEMS:
        raise error_at(fs[1], f"fs: want ext4, xfs, btrfs or tmpfs, not {show(fs[1].value)}")
    vals["fs"] = fs[1].value if fs else ("tmpfs" if vals["file"].startswith(
        ("/dev/shm/", "/tmp/")) else "ext4")
    b.files.add(vals["file"])
    return vals


def _write(d, step, t):
    a = step.args
    name = a["file"]
    if a["fs"] is not None and name not in d.files:
        d.m.create(name, tmpfs=a["fs"] == "tmpfs")
        d.files.add(name)
    # a race setup's write (no fs) is always made: it makes the file when it is not there
    if not a["size"] and a["fs"] is not None:
        return None
    return errno_name(d.m.write(t, name, a["size"] // PAGE, offset=a.get("offset")))


def _write_pages(est, a):
    est.files[a["file"]] = est.files.get(a["file"], 0) + a["size"] // PAGE
    return a["size"] // PAGE


WRITE = Op("write", "append to a file through the page cache (tmpfs: shmem pages)",
           (TASK, Arg("file", "new file", "the file; made by its first write"),
            Arg("size", "size", "how much: a whole number of 4 KiB pages"),
            Arg("fs", "text", "ext4, xfs, btrfs or tmpfs; tmpfs under /dev/shm/ and /tmp/, "
                              "else ext4", False),
            Arg("offset", "number", "the page to write at; the end of the file", False,
                in_scenarios=False)),
           _write_load, _write,
           lambda p, step, t: [f"task {t} write "
                               f"{p.file_path(step, step.args['file'], step.args['fs'])} "
                               f"{step.args['size']}"],
           pages=_write_pages)


def _file_pages(est, a):
    return est.files.get(a["file"], 0)


def _read(d, step, t):
    a = step.args
    return errno_name(d.m.read(t, a["file"], a.get("index", 0), a.get("pages")))


READ = Op("read", "read the whole file, or some of its pages (faults in what is not cached)",
          (TASK, FILE,
           Arg("index", "number", "the first page; 0", False, in_scenarios=False),
           Arg("pages", "number", "how many; to the end of the file", False,
               in_scenarios=False)),
          lambda b, a, node: {"task": b.task(a), "file": b.file(a)}, _read,
          lambda p, step, t: [f"task {t} read {p.file_path(step, step.args['file'])}"],
          pages=_file_pages)


def _splice(d, step, t):
    f = d.m.file(step.args["file"])
    for index in range(f.size_pages):
        if f.find_page(index) >= 0:
            d.m.splice(t, f.name, index)


SPLICE = Op("splice", "replace each cached page of the file (FUSE splice: "
                      "replace_page_cache_page)",
            (TASK, FILE),
            lambda b, a, node: {"task": b.task(a), "file": b.file(a)}, _splice, None,
            "the guest workload cannot do it (no NUMA nodes, no FUSE)", pages=_file_pages)


def _truncate_pages(est, a):
    old = est.files.get(a["file"], 0)
    est.files[a["file"]] = -(-a["size"] // PAGE)
    return max(old, est.files[a["file"]])


TRUNCATE = Op("truncate", "truncate the file to a size",
              (FILE, Arg("size", "size", "the new size in bytes")),
              lambda b, a, node: {"file": b.file(a),
                                  "size": parse_size(a["size"][1], "size", whole_pages=False)},
              lambda d, step, t: d.m.truncate(step.args["file"],
                                              -(-step.args["size"] // PAGE)),
              lambda p, step, t: [f"truncate {p.file_path(step, step.args['file'])} "
                                  f"{step.args['size']}"],
              pages=_truncate_pages)


def _unlink_load(b, a, node):
    vals = {"file": b.file(a)}
    b.files.discard(vals["file"])
    return vals


def _unlink(d, step, t):
    d.m.unlink(step.args["file"])
    d.files.discard(step.args["file"])


UNLINK = Op("unlink", "remove the file's name; its pages go when nothing maps it",
            (FILE,), _unlink_load, _unlink,
            lambda p, step, t: [f"unlink {p.file_path(step, step.args['file'])}"],
            pages=lambda est, a: est.files.pop(a["file"], 0))


def _every_file(est, a):
    return sum(est.files.values())


def _machine_op(name: str, doc: str, call) -> Op:
    """An op on the whole machine, with no arguments (sync, drop_caches)."""
    def apply(d, step, t):
        call(d.m)

    return Op(name, doc, (), lambda b, a, node: {}, apply, lambda p, step, t: [name],
              pages=_every_file)


SYNC = _machine_op("sync", "write back every dirty page", lambda m: m.sync())
DROP_CACHES = _machine_op("drop_caches", "echo 1 > /proc/sys/vm/drop_caches: drop the clean "
                                         "page cache", lambda m: m.drop_caches())

OPS = (WRITE, READ, TRUNCATE, UNLINK, SYNC, SPLICE, DROP_CACHES)
