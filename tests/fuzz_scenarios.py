"""A structure-aware fuzzer of scenario files (docs/scenario-format.md) for `memcgsim run --check`.

The strategies build valid scenarios from the whole vocabulary (every machine key, the three
kernels with the cgroup versions each allows, cgroups with control files of the chosen interface,
every step kind with its optional keys, may_fail, every form of expect) on small machines, then
mutate them: steps dropped, duplicated and reordered (so later steps refer to tasks, regions,
files and fds that were never made or are gone), wrong types, huge and negative numbers, unicode
and 100,000-character names, odd cgroup paths, YAML anchors, aliases (an alias bomb among them)
and tags, and finally bytes flipped, inserted or cut off the rendered text.

`run_one(text, tmp_path)` runs one file through `memcgsim.cli.main(["run", "--check", FILE])`
in-process and checks the properties every input must have:

  - the exit status is 0, 1 or 2: never 3 (the invariant checker fails only on a model bug),
    never an uncaught exception;
  - exit 2 prints a message whose first line starts with FILE:LINE:COLUMN;
  - the run ends within a time limit (SIGALRM; a run over it is run again untraced with a
    longer one, HANG_LIMIT: a run that then ends is counted as slow, and only a run over that
    too is a hang) and its traced memory peak
    (tracemalloc, which sees numpy's buffers too) stays under a limit; RLIMIT_AS is lowered
    during the run so that a runaway allocation is a MemoryError, not a dead fuzzer;
  - a second run of the same file gives byte-identical stdout, stderr and exit status;
  - a file that runs (exit 0 or 1) has no tag safe loading cannot construct (!!python/...,
    a local !tag, on a collection as on a scalar) and is one yaml.safe_load takes too.

A broken property is a *finding*; `Outcome.finding` names its class (e.g. "crash: KeyError in
do_touch (scenario.py)") so that findings can be told apart and counted.

Standalone, for long campaigns (prints the count per outcome class and every distinct finding
with a minimised input):

    python tests/fuzz_scenarios.py --examples 5000 --seed 1 [--across-every 100]

(--across-every K also runs every K-th example in two fresh interpreters with different
PYTHONHASHSEEDs, which the in-process repeat cannot do.)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import re
import resource
import signal
import sys
import tempfile
import threading
import time
import traceback
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hypothesis import strategies as st

from fuzz_yaml import ROUND_TRIP, Alias, Anchor, Raw, Tagged

PAGE = 4096
KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40

#: per example: the time limit (seconds) and the traced-memory limit (bytes)
TIMEOUT = 20.0
#: a run over TIMEOUT is run again untraced with this limit: one that ends is slow (counted,
#: not a finding: the per-page reclaim under memory.high can take 30-40 s, issue 21), one
#: that does not is a hang
HANG_LIMIT = 150.0
MEMORY_LIMIT = 512 * MiB
#: the model's own bound on machine size, lowered so that the largest machine a file may ask
#: for fits MEMORY_LIMIT (31 bytes of state a page of RAM: docs/limits.md); the default, 256
#: GiB of RAM and swap, costs about 2 GiB
RUN_LIMITS = ("--limit", f"pages={8 << 20}")
#: a safety net under tracemalloc: during a run the address space may grow by at most this
#: much (RLIMIT_AS), so that a runaway allocation is a MemoryError, not the fuzzer killed
ADDRESS_SPACE_HEADROOM = 2 * GiB

# ---------------------------------------------------------------------------- the vocabulary

KERNELS = {"3.17": ("v1",), "6.1": ("v1", "v2"), "6.12": ("v2",)}
MACHINE_KEYS = ("kernel", "cgroup", "memory", "swap", "cpus", "nodes", "thp", "swap_accounting")

#: every step kind, in the order the generator prefers them (shrinking goes towards the first)
KINDS = ("spawn", "anon", "write", "expect", "report", "touch", "read", "mmap", "unmap", "mlock",
         "munlock", "shm", "fork", "move", "set", "exit", "sync", "drop_caches", "truncate",
         "unlink", "splice", "migrate", "rmdir", "open", "fd_write", "close")

ERRNOS = ("none", "EINVAL", "EBUSY", "ENOMEM", "EAGAIN", "ENOSPC", "EPERM", "ENOENT", "ESRCH",
          "EINTR", "EACCES", "EEXIST", "ERANGE", "EOPNOTSUPP")

TASKS = ("A", "B", "C", "D")
REGIONS = ("buf", "r2", "map", "seg")
FILES = ("/data/log", "/dev/shm/x", "/tmp/t", "/data/big", "/mnt/f")
FDS = ("fd1", "fd2")
CGROUP_TREE = ("/a", "/b", "/a/c", "/a/c/d", "/b/e", "/f")
FS_NAMES = ("ext4", "tmpfs", "xfs", "btrfs")

V1_SIZE_FILES = ("memory.limit_in_bytes", "memory.soft_limit_in_bytes")
V2_SIZE_FILES = ("memory.max", "memory.high", "memory.low", "memory.min", "memory.swap.max",
                 "memory.swap.high")


def writable_files(kernel: str, cgroup: str, swap_accounting: bool) -> tuple:
    if cgroup == "v1":
        files = list(V1_SIZE_FILES) + [
            "memory.swappiness", "memory.use_hierarchy", "memory.move_charge_at_immigrate",
            "memory.oom_control", "memory.force_empty", "memory.failcnt",
            "memory.max_usage_in_bytes", "cgroup.procs", "tasks"]
        if swap_accounting:
            files += ["memory.memsw.limit_in_bytes", "memory.memsw.failcnt",
                      "memory.memsw.max_usage_in_bytes"]
        return tuple(files)
    files = list(V2_SIZE_FILES) + ["memory.oom.group", "memory.reclaim",
                                   "cgroup.subtree_control", "cgroup.procs"]
    if kernel == "6.12":
        files += ["memory.peak", "memory.swap.peak"]
    return tuple(files)


V1_STAT = ("cache", "rss", "rss_huge", "mapped_file", "pgfault", "pgmajfault", "pgpgin",
           "pgpgout", "inactive_anon", "active_anon", "inactive_file", "active_file",
           "unevictable", "writeback", "hierarchical_memory_limit", "total_cache", "total_rss")
V1_STAT_61 = ("shmem", "dirty", "workingset_refault_file", "total_shmem")
V2_STAT = ("anon", "file", "kernel", "kernel_stack", "pagetables", "percpu", "sock", "shmem",
           "file_mapped", "file_dirty", "file_writeback", "anon_thp", "inactive_anon",
           "active_anon", "inactive_file", "active_file", "unevictable", "slab", "pgfault",
           "pgmajfault", "swapcached", "workingset_refault_file", "pgscan", "pgsteal", "zswap")
EVENTS = ("high", "low", "max", "oom", "oom_kill", "oom_group_kill")


def expect_keys(kernel: str, cgroup: str, swap_accounting: bool) -> tuple:
    """The keys an expect may name: plain files and FILE.KEY of the keyed files."""
    if cgroup == "v1":
        keys = ["memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.failcnt",
                "memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.swappiness",
                "memory.use_hierarchy", "memory.move_charge_at_immigrate",
                "memory.oom_control.oom_kill_disable", "memory.oom_control.under_oom",
                "memory.numa_stat.total", "memory.numa_stat.file", "memory.numa_stat.anon",
                "memory.numa_stat.hierarchical_total"]
        keys += [f"memory.stat.{k}" for k in V1_STAT]
        if kernel == "6.1":
            keys += [f"memory.stat.{k}" for k in V1_STAT_61] + ["memory.oom_control.oom_kill"]
        if swap_accounting:
            keys += ["memory.memsw.usage_in_bytes", "memory.memsw.max_usage_in_bytes",
                     "memory.memsw.failcnt", "memory.memsw.limit_in_bytes",
                     "memory.stat.swap"]
        return tuple(keys)
    keys = ["memory.current", "memory.swap.current", "memory.peak", "memory.max",
            "memory.high", "memory.low", "memory.min", "memory.swap.max", "memory.swap.high",
            "memory.oom.group", "cgroup.controllers", "cgroup.subtree_control",
            "memory.swap.events.fail", "memory.swap.events.max", "memory.swap.events.high",
            "memory.numa_stat.anon", "memory.numa_stat.file", "memory.numa_stat.shmem"]
    keys += [f"memory.events.{k}" for k in EVENTS]
    keys += [f"memory.events.local.{k}" for k in EVENTS]
    keys += [f"memory.stat.{k}" for k in V2_STAT]
    if kernel == "6.12":
        keys += ["memory.swap.peak", "memory.stat.swpin_zero", "memory.stat.numa_pages_migrated"]
    return tuple(keys)


#: files that exist on a child but not on the root cgroup (v2's CFTYPE_NOT_ON_ROOT; the v1
#: root has every file, and refuses limits with EINVAL)
ROOT_MISSING = {
    "v1": (),
    "v2": ("memory.current", "memory.peak", "memory.max", "memory.high", "memory.low",
           "memory.min", "memory.oom.group", "memory.swap.current", "memory.swap.max",
           "memory.swap.high", "memory.swap.peak", "memory.events", "memory.events.local",
           "memory.swap.events"),
}


def on_root(cgroup: str, key: str) -> bool:
    """Whether the root cgroup has the file of this key (FILE or FILE.KEY)."""
    return not any(key == f or key.startswith(f + ".") for f in ROOT_MISSING[cgroup])


# ---------------------------------------------------------------------------- the document

# the YAML writer is tests/fuzz_yaml.py (shared with the race-file fuzzer): a string is plain
# wherever PyYAML reads it back as itself
scalar, flow, block_map = ROUND_TRIP.scalar, ROUND_TRIP.flow, ROUND_TRIP.block_map


def render(doc, block: frozenset = frozenset()) -> str:
    """The YAML text of a document: top level in block style; machine, cgroups and the steps
    whose index is in block in block style too, everything else in flow style (one step a
    line)."""
    if not isinstance(doc, dict):
        return flow(doc) + "\n"
    lines = []
    for key, v in doc.items():
        k = scalar(key)
        if key == "steps" and isinstance(v, list) and v:
            lines.append(f"{k}:")
            for i, item in enumerate(v):
                if not isinstance(item, dict) or not item:
                    lines.append(f"  - {flow(item)}")
                    continue
                if i not in block and len(item) == 1:
                    lines.append(f"  - {flow(item)}")
                    continue
                first = True
                for sk, sv in item.items():
                    lead = "  - " if first else "    "
                    first = False
                    if i in block and isinstance(sv, dict) and sv:
                        lines.append(f"{lead}{scalar(sk)}:")
                        lines.extend(block_map(sv, 6))
                    else:
                        lines.append(f"{lead}{scalar(sk)}: {flow(sv)}")
        elif key in ("machine", "cgroups") and isinstance(v, dict) and v and key in block:
            lines.append(f"{k}:")
            lines.extend(block_map(v, 2))
        else:
            lines.append(f"{k}: {flow(v)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- generation

@dataclass
class Gen:
    """What the steps generated so far made: what later steps may refer to."""

    kernel: str
    cgroup: str
    swap_accounting: bool
    memory: int
    swap: int
    cpus: int
    nodes: int
    cgroups: list
    tasks: list = field(default_factory=list)
    regions: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    fds: list = field(default_factory=list)
    fresh: int = 0

    @property
    def pages(self) -> int:
        return self.memory // PAGE

    def new_name(self, pool, used) -> str:
        for n in pool:
            if n not in used:
                return n
        self.fresh += 1
        return f"{pool[0]}{self.fresh}"


def size_text(draw, nbytes: int):
    """nbytes written one of the ways the format allows."""
    opts: list = [nbytes]
    for units, mult in ((("KiB", "K", "Ki"), KiB), (("MiB", "M", "Mi"), MiB),
                        (("GiB", "G", "Gi"), GiB)):
        if nbytes and nbytes % mult == 0:
            opts += [f"{nbytes // mult}{u}" for u in units]
    out = draw(st.sampled_from(opts))
    if isinstance(out, str) and draw(st.integers(0, 9)) == 0:
        spaced = re.sub(r"(\d+)", r"\1 ", out, count=1)
        out = draw(st.sampled_from([out.lower(), f" {out} ", spaced]))
    return out


def draw_pages(draw, g: Gen, big: bool = False) -> int:
    """A number of pages: a few, up to half the machine (twice it with big), or whole 2 MiB
    huge pages."""
    hi = g.pages * 2 if big else max(1, g.pages // 2)
    return draw(st.one_of(st.integers(1, 64), st.integers(1, hi),
                          st.integers(1, max(1, hi // 512)).map(lambda n: n * 512)))


def control_value(draw, g: Gen, name: str):
    """A value to write to a control file: usually one the kernel takes."""
    if name in V1_SIZE_FILES + V2_SIZE_FILES + ("memory.memsw.limit_in_bytes",
                                                "memory.reclaim"):
        kind = draw(st.integers(0, 5))
        if kind == 0 and name != "memory.reclaim":
            return "max" if g.cgroup == "v2" else -1
        if kind == 1:
            return draw(st.integers(0, 2 * g.memory))          # rounded down to a page
        if kind == 2:                                            # tight: reclaim, OOM
            return size_text(draw, draw(st.integers(0, g.pages // 4)) * PAGE)
        return size_text(draw, draw(st.integers(0, 2 * g.pages)) * PAGE)
    if name == "memory.swappiness":
        return draw(st.integers(0, 100))
    if name == "memory.move_charge_at_immigrate":
        return draw(st.integers(0, 3))
    if name in ("memory.use_hierarchy", "memory.oom_control", "memory.oom.group"):
        return draw(st.sampled_from([1, 0, True, False]))
    if name == "cgroup.subtree_control":
        return draw(st.sampled_from(["+memory", "-memory"]))
    if name in ("memory.peak", "memory.swap.peak"):
        return draw(st.sampled_from(["reset", "1", "x"]))
    if name in ("cgroup.procs", "tasks"):
        return draw(st.integers(0, 8))
    return 0                                                   # the resets: failcnt, ...


@st.composite
def machines(draw):
    """(Gen, the machine mapping as written): small machines, 8-64 MiB."""
    kernel = draw(st.sampled_from(sorted(KERNELS)))
    cgroup = draw(st.sampled_from(KERNELS[kernel]))
    nodes = draw(st.sampled_from([1, 1, 1, 2, 4]))
    per = 2 * MiB * nodes
    memory = draw(st.integers(max(1, 8 * MiB // per), 64 * MiB // per)) * per
    swap = draw(st.sampled_from([0, 0, 4 * MiB, 16 * MiB, 64 * MiB]))
    cpus = draw(st.integers(1, 4))
    thp = draw(st.sampled_from(["never", "always"]))
    sa = draw(st.booleans()) if cgroup == "v1" else True
    m: dict = {}
    keys = list(MACHINE_KEYS)
    if draw(st.booleans()):
        keys = draw(st.permutations(keys))
    for key in keys:
        omit = draw(st.integers(0, 4)) == 0
        if key == "kernel" and (kernel != "6.12" or not omit):
            m["kernel"] = kernel
        elif key == "cgroup" and (cgroup != "v2" or not omit):
            m["cgroup"] = cgroup
        elif key == "memory":          # always: the default, 256 MiB, is slow to run
            m["memory"] = size_text(draw, memory)
        elif key == "swap" and (swap or not omit):
            m["swap"] = size_text(draw, swap)
        elif key == "cpus" and (cpus != 1 or not omit):
            m["cpus"] = cpus
        elif key == "nodes" and (nodes != 1 or not omit):
            m["nodes"] = nodes
        elif key == "thp" and (thp != "never" or not omit):
            m["thp"] = thp
        elif key == "swap_accounting" and cgroup == "v1" and (not sa or not omit):
            m["swap_accounting"] = sa
    g = Gen(kernel, cgroup, sa, memory, swap, cpus, nodes, [])
    return g, m


def draw_cgroups(draw, g: Gen) -> dict:
    """The cgroups section: a small tree, parents first, each with a few control files."""
    out: dict = {}
    n = draw(st.integers(0, 4))
    for path in CGROUP_TREE:
        if len(out) >= n:
            break
        parent = path.rsplit("/", 1)[0] or "/"
        if parent != "/" and parent not in out:
            continue
        if not draw(st.integers(0, 3)):
            continue
        files: dict = {}
        names = writable_files(g.kernel, g.cgroup, g.swap_accounting)
        if draw(st.integers(0, 9)):          # no task exists yet: writing a pid fails
            names = tuple(x for x in names if x not in ("cgroup.procs", "tasks"))
        for _ in range(draw(st.integers(0, 2))):
            name = draw(st.sampled_from(names[:2] if draw(st.integers(0, 2)) else names))
            files[name] = control_value(draw, g, name)
        out[path] = files if files or draw(st.booleans()) else None
        g.cgroups.append(path)
    return out


def any_cgroup(draw, g: Gen, root: int = 6, leaf: bool = False) -> str:
    """A defined cgroup, now and then the root; with leaf, on v2, mostly one without children
    (a v2 cgroup that hands memory to its children has no tasks of its own)."""
    pool = g.cgroups
    if leaf and g.cgroup == "v2" and draw(st.integers(0, 9)):
        pool = [c for c in g.cgroups if not any(x.startswith(c + "/") for x in g.cgroups)]
    if not pool or draw(st.integers(0, root)) == 0:
        return "/"
    return draw(st.sampled_from(pool))


def expect_value(draw, g: Gen, key: str):
    if key in ("cgroup.controllers", "cgroup.subtree_control"):
        return draw(st.sampled_from(["memory", "", "memory memory"]))
    form = draw(st.integers(0, 5))
    big = key.startswith(("memory.stat", "memory.usage", "memory.current", "memory.peak",
                          "memory.max", "memory.numa", "memory.memsw", "memory.swap",
                          "memory.limit", "memory.soft"))
    hi = g.memory * 2 if big else 50
    v = draw(st.integers(0, hi))
    if big and draw(st.booleans()):
        v -= v % PAGE
    text = size_text(draw, v) if big else v
    if form == 0:
        return text
    if form == 1:
        pct = draw(st.sampled_from(["0%", "5%", "50%", "100%", "12.5%"]))
        return f"{text} {draw(st.sampled_from(['±', '+-']))}{pct}"
    if form == 2:
        return f"{text} ±{size_text(draw, draw(st.integers(0, 64)) * PAGE)}"
    lo = draw(st.integers(0, hi))
    r: dict = {}
    if form in (3, 5):
        r["min"] = size_text(draw, lo) if big else lo
    if form in (4, 5):
        r["max"] = size_text(draw, lo + draw(st.integers(0, hi))) if big else lo + 5
    return r


def draw_expect(draw, g: Gen) -> dict:
    form = draw(st.integers(0, 5))
    if form == 3 and g.tasks:
        return {"task": draw(st.sampled_from(g.tasks)),
                "state": draw(st.sampled_from(["alive", "exited", "killed"]))}
    if form == 4:
        return {"step_error": draw(st.sampled_from(ERRNOS))}
    if form == 5 and g.fds:
        return {"fd": draw(st.sampled_from(g.fds)),
                "value": expect_value(draw, g, "memory.peak")}
    a: dict = {"cgroup": any_cgroup(draw, g, root=8)}
    keys = expect_keys(g.kernel, g.cgroup, g.swap_accounting)
    if a["cgroup"] == "/":
        keys = tuple(k for k in keys if on_root(g.cgroup, k))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(keys))
        a[key] = expect_value(draw, g, key)
    return a


def draw_step(draw, g: Gen) -> dict:
    kind = draw(st.sampled_from(KINDS))
    if not g.tasks and kind not in ("expect", "report", "sync", "drop_caches", "set", "rmdir",
                                    "open", "truncate", "unlink"):
        kind = "spawn"
    with_regions = [t for t in g.tasks if g.regions.get(t)]
    if kind in ("touch", "unmap", "mlock", "munlock") and not with_regions:
        kind = "anon"
    if kind in ("read", "mmap", "truncate", "unlink", "splice") and not g.files:
        kind = "write" if g.tasks else "spawn"
    if kind == "rmdir" and not g.cgroups:
        kind = "report"
    if kind in ("fd_write", "close") and not g.fds:
        kind = "open"
    if kind == "open" and (g.cgroup == "v1" or not g.cgroups):
        kind = "report"
    a: dict = {}
    if kind == "spawn":
        a["task"] = g.new_name(TASKS, g.tasks)
        a["cgroup"] = any_cgroup(draw, g, leaf=True)
        if draw(st.integers(0, 3)) == 0:
            a["cpu"] = draw(st.integers(0, g.cpus - 1))
        if draw(st.integers(0, 3)) == 0:
            a["node"] = draw(st.integers(0, g.nodes - 1))
        if draw(st.integers(0, 3)) == 0:
            a["oom_score_adj"] = draw(st.integers(-1000, 1000))
        g.tasks.append(a["task"])
    elif kind in ("anon", "shm"):
        a["task"] = draw(st.sampled_from(g.tasks))
        a["size"] = size_text(draw, draw_pages(draw, g, big=draw(st.integers(0, 5)) == 0) * PAGE)
        a["as"] = draw(st.sampled_from(REGIONS))
        if kind == "anon":
            for key in ("shared", "locked", "touch"):
                if draw(st.integers(0, 3)) == 0:
                    a[key] = draw(st.booleans())
        g.regions.setdefault(a["task"], [])
        if a["as"] not in g.regions[a["task"]]:
            g.regions[a["task"]].append(a["as"])
    elif kind in ("touch", "unmap", "mlock", "munlock"):
        a["task"] = draw(st.sampled_from(with_regions))
        a["region"] = draw(st.sampled_from(g.regions[a["task"]]))
        if kind == "unmap":
            g.regions[a["task"]].remove(a["region"])
    elif kind == "write":
        a["task"] = draw(st.sampled_from(g.tasks))
        a["file"] = draw(st.sampled_from(FILES))
        a["size"] = size_text(draw, (draw_pages(draw, g) - 1) * PAGE)
        if draw(st.booleans()):
            a["fs"] = draw(st.sampled_from(FS_NAMES))
        if a["file"] not in g.files:
            g.files.append(a["file"])
    elif kind in ("read", "splice"):
        a["task"] = draw(st.sampled_from(g.tasks))
        a["file"] = draw(st.sampled_from(g.files))
    elif kind == "mmap":
        a["task"] = draw(st.sampled_from(g.tasks))
        a["file"] = draw(st.sampled_from(g.files))
        a["as"] = draw(st.sampled_from(REGIONS))
        g.regions.setdefault(a["task"], [])
        if a["as"] not in g.regions[a["task"]]:
            g.regions[a["task"]].append(a["as"])
    elif kind == "truncate":
        a["file"] = draw(st.sampled_from(g.files))
        a["size"] = size_text(draw, draw(st.integers(0, 4 * MiB)))
    elif kind == "unlink":
        a["file"] = draw(st.sampled_from(g.files))
        g.files.remove(a["file"])
    elif kind == "fork":
        a["task"] = draw(st.sampled_from(g.tasks))
        a["child"] = g.new_name(TASKS, g.tasks)
        g.tasks.append(a["child"])
        g.regions[a["child"]] = list(g.regions.get(a["task"], []))
    elif kind == "move":
        a["task"] = draw(st.sampled_from(g.tasks))
        a["cgroup"] = any_cgroup(draw, g, leaf=True)
    elif kind == "set":
        a["cgroup"] = any_cgroup(draw, g, root=10)
        names = writable_files(g.kernel, g.cgroup, g.swap_accounting)
        if a["cgroup"] == "/":
            names = tuple(n for n in names if on_root(g.cgroup, n))
        for _ in range(draw(st.integers(1, 2))):
            name = draw(st.sampled_from(names))
            a[name] = control_value(draw, g, name)
    elif kind == "migrate":
        a["task"] = draw(st.sampled_from(g.tasks))
        a["node"] = draw(st.integers(0, g.nodes - 1))
    elif kind == "exit":
        a["task"] = draw(st.sampled_from(g.tasks))
    elif kind == "rmdir":
        a["cgroup"] = draw(st.sampled_from(g.cgroups))
        g.cgroups.remove(a["cgroup"])
    elif kind == "report":
        a["label"] = draw(st.sampled_from(["r", "after", "x y", "42"]))
        if draw(st.booleans()):
            a["cgroups"] = [any_cgroup(draw, g, root=8) for _ in range(draw(st.integers(1, 2)))]
    elif kind == "expect":
        a = draw_expect(draw, g)
    elif kind == "open":
        a["cgroup"] = draw(st.sampled_from(g.cgroups))
        a["file"] = draw(st.sampled_from(["memory.peak", "memory.swap.peak"]
                                         if g.kernel == "6.12" else ["memory.peak"]))
        a["as"] = g.new_name(FDS, g.fds)
        g.fds.append(a["as"])
    elif kind == "fd_write":
        a["fd"] = draw(st.sampled_from(g.fds))
        a["text"] = draw(st.sampled_from(["reset", "reset\n", "1", "", "x"]))
    elif kind == "close":
        a["fd"] = draw(st.sampled_from(g.fds))
        g.fds.remove(a["fd"])
    item: dict = {kind: a}
    risky = kind in ("rmdir", "set", "mlock", "munlock", "move") or any(
        k in a for k in ("cgroup.procs", "tasks"))
    may = draw(st.integers(0, 3 if risky else 7))
    if may == 0:
        item = {"may_fail": True, kind: a}
    elif may == 1:
        item = {kind: a, "may_fail": draw(st.booleans())}
    elif may == 2:
        a["may_fail"] = True
    return item


@st.composite
def valid_docs(draw):
    """(document, Gen, block-style sections): a scenario the loader should take."""
    g, machine = draw(machines())
    cgroups = draw_cgroups(draw, g)
    n = draw(st.one_of(st.integers(1, 12), st.integers(12, 30)))
    steps = [draw_step(draw, g) for _ in range(n)]
    doc: dict = {"format": 1, "machine": machine, "cgroups": cgroups, "steps": steps}
    if not cgroups and draw(st.booleans()):
        del doc["cgroups"]
    if draw(st.integers(0, 4)) == 0:
        doc = dict(draw(st.permutations(list(doc.items()))))
    block = set()
    for key in ("machine", "cgroups"):
        if draw(st.booleans()):
            block.add(key)
    for i in range(len(steps)):
        if draw(st.integers(0, 4)) == 0:
            block.add(i)
    return doc, g, frozenset(block)


# ---------------------------------------------------------------------------- nasty values

#: a machine key's value that means: leave the key out (the default applies)
DELETE = object()
HUGE_DIGITS = "9" * 5000
TEN30 = "1" + "0" * 30
LONG = "x" * 100_000

BOMB_LEVELS = 9


def alias_bomb(levels: int = BOMB_LEVELS, width: int = 9) -> Raw:
    """The billion laughs: levels of lists, each holding width aliases of the one before."""
    parts = ["&l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        parts.append(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return Raw("[" + ", ".join(parts) + "]")


#: values of the wrong type, too big, too small, oddly written or tagged
NASTY_VALUES = (
    None, True, False, 0, -1, -4096, 1.5, Raw(".nan"), Raw(".inf"), Raw("-.inf"), [], {},
    [1, 2], {"a": 1}, {"min": 1}, Raw(TEN30), f"{TEN30}TiB", Raw(HUGE_DIGITS),
    Raw(HUGE_DIGITS + "MiB"), HUGE_DIGITS, "-4MiB", "4.5MiB", "1e6", "0x1000", Raw("0x1000"),
    Raw("0o777"), Raw("1_000"), Raw("+12"), "12 parsecs", "max", "", " ", "-", "±", "5MiB ±",
    "5MiB ±-3%", "5MiB ± 1000%", "5MiB ± nan%", "5MiB ±inf%", "5MiB ±1e400%",
    f"5MiB ± {TEN30}TiB", f"{TEN30}TiB ±5%", "Ω", "名前", "\u202e", "a\u0000b", "\U0001f642" * 3,
    "\t", "\ufeff", LONG, "$HOME$", "$(id)$", "$x^2$", Raw("!!timestamp 2024-13-45"),
    Raw("!!timestamp 2001-12-14t21:59:43.10+25:00"), Raw("!!timestamp x"),
    Raw("!!binary aGVsbG8="), Raw("!!binary '!!!'"), Raw("!!set {a, b}"),
    Raw("!!python/object:os.system {}"), Raw("!!python/name:os.system ''"),
    Raw("!!python/object/apply:os.system [echo hi]"), Raw("!!float 1e400"),
    Raw("!!int 0x10"), Raw("!!int x"), Raw("!!str 12"), Raw("!!null ''"), Raw("!!bool maybe"),
    Raw("!!omap [a: 1, b: 2]"), Raw("!!pairs [a: 1]"), Raw("!custom 1"), Raw("!<tag:x> 1"),
    Raw("&r [*r]"), Raw("{<<: {a: 1}}"), Raw("2024-01-01"), Raw("1:30"), Raw("~"),
)

#: tags put on a mapping or a list: the unsafe ones, a local one, and safe ones of the wrong kind
COLLECTION_TAGS = ("!!python/object:os.system", "!!python/object/new:os.system",
                   "!!python/object/apply:os.system", "!mine", "!!seq", "!!map", "!!set",
                   "!!omap", "!!pairs", "!!str", "!!binary", "!<tag:x,2000:y>")

NASTY_NAMES = ("", " ", "Ω", "名前", "\u202e", "\U0001f642", "$HOME$", "$(id)$", "a\tb", "null",
               "true", "1", "-", "*", "&", "!", "%", "@", "`", "'", '"', "\\", "\x7f", "a" * 300,
               LONG, "a\u0000b", "\ufeff")

NASTY_PATHS = ("/$HOME$", "/$(id)$", "/$x^2$", "/" + LONG, "/Ω", "/名前", "/a/", "a", "//", "/a//b",
               "/.", "/..", "/a/../b", "/a b", "/a\u0000", "/" + "a/" * 500 + "b", "", "/\u202e",
               "/cgroup.procs", "/memory.max", "/\ufeff")

NASTY_KEYS = ("bogus", "", "Ω", LONG, "may_fail", "task", "cgroup", "size", "as", "memory.max",
              "memory.limit_in_bytes", "memory.stat", "memory.stat.", "memory.stat.nope",
              "memory.events.local", "memory.bogus", "cgroup.procs", "memory.swap.peak",
              "memory.memsw.usage_in_bytes", "memory.pressure", "memory.stat.swap")

NASTY_MACHINE = (
    ("cpus", 1_000_000_000), ("cpus", 0), ("cpus", -1), ("cpus", Raw(TEN30)), ("cpus", "4"),
    ("nodes", 1000), ("nodes", 0), ("nodes", 3), ("memory", f"{TEN30}TiB"), ("memory", 0),
    ("memory", Raw(HUGE_DIGITS)), ("memory", "256GiB"), ("memory", "258GiB"),
    ("memory", "-64MiB"), ("memory", "3MiB"), ("memory", "1TiB"), ("memory", 4096),
    ("swap", "1TiB"), ("swap", "256GiB"), ("swap", f"{TEN30}TiB"), ("swap", -1),
    ("swap", "4097"), ("kernel", Raw("6.1")), ("kernel", Raw("6.12")), ("kernel", "5.10"),
    ("kernel", 6), ("cgroup", "v3"), ("cgroup", "v1"), ("cgroup", "v2"), ("thp", "madvise"),
    ("thp", True), ("swap_accounting", "yes"), ("swap_accounting", True),
    ("swap_accounting", False), ("bogus", 1), ("memory", DELETE), ("kernel", DELETE),
    ("cgroup", DELETE), ("swap", DELETE), ("nodes", DELETE),
)


def special_steps(g: Gen) -> list:
    """Steps chosen to hit known soft spots: each is a list of step items to insert."""
    t = g.tasks[0] if g.tasks else "A"
    spawn = [] if g.tasks else [{"spawn": {"task": t, "cgroup": "/"}}]
    v2 = g.cgroup == "v2"
    root_files = ROOT_MISSING[g.cgroup] or ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
                                            "memory.soft_limit_in_bytes")
    return [
        [{"expect": {"step_error": Raw("[EINVAL]")}}],
        [{"expect": {"step_error": Raw("{EINVAL: 1}")}}],
        spawn + [{"write": {"task": t, "file": "/data/huge", "size": "1TiB"}}],
        spawn + [{"write": {"task": t, "file": "/dev/shm/huge", "size": "1TiB",
                            "fs": "tmpfs"}}],
        spawn + [{"anon": {"task": t, "size": "1TiB", "as": "huge"}}],
        spawn + [{"anon": {"task": t, "size": f"{TEN30}TiB", "as": "huge"}}],
        spawn + [{"shm": {"task": t, "size": "64GiB", "as": "huge"}}],
        spawn + [{"anon": {"task": t, "size": HUGE_DIGITS + "MiB", "as": "huge"}}],
        [{"truncate": {"file": g.files[0] if g.files else "/data/log", "size": "1TiB"}}],
        [{"expect": {"cgroup": "/", f: 0}} for f in root_files[:3]],
        [{"set": {"cgroup": "/", root_files[0]: "10MiB"}}],
        [{"report": {"label": "root", "cgroups": ["/"]}}],
        [{"open": {"cgroup": "/", "file": "memory.peak", "as": "rootfd"}},
         {"expect": {"fd": "rootfd", "value": 0}}],
        [{"rmdir": {"cgroup": "/"}}],
        spawn + [{"spawn": {"task": t + "2", "cgroup": "/", "cpu": Raw(TEN30)}}],
        spawn + [{"migrate": {"task": t, "node": -1}}],
        spawn + [{"migrate": {"task": t, "node": 1_000_000}}],
        [{"expect": {"task": t, "state": "zombie"}}],
        [{"expect": {"cgroup": "/", "cgroup.controllers": "memory"}}] if v2 else
        [{"expect": {"cgroup": "/", "memory.use_hierarchy": 1}}],
        spawn + [{"fork": {"task": t, "child": t}}],
        spawn + [{"mmap": {"task": t, "file": "/data/empty", "as": "m"}}],
        spawn + [{"write": {"task": t, "file": "/data/empty", "size": 0}},
                 {"mmap": {"task": t, "file": "/data/empty", "as": "m", "may_fail": True}},
                 {"touch": {"task": t, "region": "m"}}],
        [{"set": {"cgroup": g.cgroups[0] if g.cgroups else "/",
                  "memory.max" if v2 else "memory.limit_in_bytes": f"{TEN30}TiB"}}],
        [{"set": {"cgroup": g.cgroups[0] if g.cgroups else "/",
                  "memory.max" if v2 else "memory.limit_in_bytes": "garbage"},
          "may_fail": True}, {"expect": {"step_error": "EINVAL"}}],
        [{"report": {"label": LONG}}],
        [{"sync": None}, {"drop_caches": []}],
    ]


# ---------------------------------------------------------------------------- mutation

MUTATIONS = ("semantic", "drop", "dup", "move", "swap", "value", "key", "kind", "machine",
             "path", "cgroup-file", "special", "may_fail", "anchor", "bomb", "tag", "top",
             "rename", "semantic")


def _step_args(item):
    """(kind, args dict) of a step item, or None."""
    if not isinstance(item, dict):
        return None
    for k, v in item.items():
        if k != "may_fail" and isinstance(v, dict):
            return k, v
    return None


def mutate(draw, doc: dict, g: Gen, what: str) -> str:
    """Apply one structural mutation to doc in place; describe it."""
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        steps = doc["steps"] = [{"sync": {}}]
    n = len(steps)
    i = draw(st.integers(0, n - 1))
    j = draw(st.integers(0, n))
    if what == "semantic":
        return semantic(draw, doc, g, steps, i, j)
    if what == "drop" and n > 1:
        del steps[i]
        return f"drop step {i}"
    if what == "dup":
        steps.insert(j, copy.deepcopy(steps[i]))
        return f"duplicate step {i} at {j}"
    if what == "move":
        steps.insert(j, steps.pop(i))
        return f"move step {i} to {j}"
    if what == "swap":
        j = min(j, n - 1)
        steps[i], steps[j] = steps[j], steps[i]
        return f"swap steps {i} {j}"
    if what == "value":
        sa = _step_args(steps[i])
        if sa and sa[1]:
            key = draw(st.sampled_from(sorted(sa[1], key=str)))
            sa[1][key] = draw(st.sampled_from(NASTY_VALUES))
            return f"step {i}: {key} = {scalar(sa[1][key])[:40]}"
        steps[i] = draw(st.sampled_from(NASTY_VALUES))
        return f"step {i} replaced"
    if what == "key":
        sa = _step_args(steps[i])
        if sa:
            args = sa[1]
            op = draw(st.integers(0, 2))
            if op == 0 and args:
                key = draw(st.sampled_from(sorted(args, key=str)))
                del args[key]
                return f"step {i}: drop {key}"
            new = draw(st.sampled_from(NASTY_KEYS))
            if op == 1 and args:
                key = draw(st.sampled_from(sorted(args, key=str)))
                args[new] = args.pop(key)
                return f"step {i}: rename {key} to {new[:20]!r}"
            args[new] = draw(st.sampled_from(NASTY_VALUES[:12] + ("memory", 0, "A")))
            return f"step {i}: add {new[:20]!r}"
        return "no-op"
    if what == "kind":
        sa = _step_args(steps[i])
        if sa:
            kind = draw(st.sampled_from(KINDS + ("Spawn", "bogus", "", "may_fail")))
            item = steps[i]
            steps[i] = {(kind if k == sa[0] else k): v for k, v in item.items()}
            return f"step {i}: kind {sa[0]} -> {kind}"
        return "no-op"
    if what == "machine":
        key, value = draw(st.sampled_from(NASTY_MACHINE))
        if not isinstance(doc.get("machine"), dict):
            doc["machine"] = {}
        if value is DELETE:
            doc["machine"].pop(key, None)
            return f"machine.{key} left out"
        doc["machine"][key] = value
        return f"machine.{key} = {scalar(value)[:40]}"
    if what == "path":
        new = draw(st.sampled_from(NASTY_PATHS))
        cg = doc.get("cgroups")
        if isinstance(cg, dict) and cg and draw(st.booleans()):
            old = draw(st.sampled_from(sorted(cg, key=str)))
            doc["cgroups"] = {(new if k == old else k): v for k, v in cg.items()}
            if draw(st.booleans()):       # the steps follow
                _replace_everywhere(steps, old, new)
            return f"cgroup {old} renamed {new[:20]!r}"
        sa = _step_args(steps[i])
        if sa and "cgroup" in sa[1]:
            sa[1]["cgroup"] = new
            return f"step {i}: cgroup {new[:20]!r}"
        doc.setdefault("cgroups", {})
        if isinstance(doc["cgroups"], dict):
            doc["cgroups"][new] = {}
        return f"cgroup {new[:20]!r} added"
    if what == "cgroup-file":
        cg = doc.get("cgroups")
        if isinstance(cg, dict) and cg:
            path = draw(st.sampled_from(sorted(cg, key=str)))
            if not isinstance(cg[path], dict):
                cg[path] = {}
            name = draw(st.sampled_from(NASTY_KEYS + writable_files(
                g.kernel, g.cgroup, g.swap_accounting)))
            value = draw(st.sampled_from(NASTY_VALUES + ("max", "-1", "0", "+memory")))
            cg[path][name] = value
            return f"cgroup {path}: {name[:30]} = {scalar(value)[:30]}"
        doc["cgroups"] = draw(st.sampled_from(NASTY_VALUES[:16]))
        return "cgroups replaced"
    if what == "special":
        items = draw(st.sampled_from(special_steps(g)))
        steps[j:j] = [dict(x) for x in items]
        return f"insert {flow(items)[:60]} at {j}"
    if what == "may_fail":
        sa = _step_args(steps[i])
        value = draw(st.sampled_from([True, False, "yes", 1, None, [], Raw("!!bool true")]))
        if sa and draw(st.booleans()):
            sa[1]["may_fail"] = value
        elif isinstance(steps[i], dict):
            steps[i]["may_fail"] = value
        return f"step {i}: may_fail {scalar(value)}"
    if what == "anchor":
        name = f"s{i}"
        steps[i] = Anchor(name, steps[i])
        steps.insert(max(j, i + 1), Alias(name))
        return f"step {i} anchored and aliased"
    if what == "bomb":
        levels = draw(st.integers(2, BOMB_LEVELS))
        bomb = alias_bomb(levels)
        where = draw(st.integers(0, 3))
        if where == 0:
            sa = _step_args(steps[i])
            if sa:
                key = draw(st.sampled_from(sorted(sa[1], key=str))) if sa[1] else "label"
                sa[1][key] = bomb
                return f"step {i}: {key} = alias bomb of {levels} levels"
        if where == 1:
            steps.insert(j, {"report": {"label": "b", "cgroups": bomb}})
            return f"report cgroups = alias bomb of {levels} levels at {j}"
        if where == 2:
            if isinstance(doc.get("machine"), dict):
                doc["machine"]["memory"] = bomb
            return f"machine.memory = alias bomb of {levels} levels"
        doc["bomb"] = bomb
        return f"top-level alias bomb of {levels} levels"
    if what == "tag" and draw(st.booleans()):
        tag = draw(st.sampled_from(COLLECTION_TAGS))
        sa = _step_args(steps[i])
        where = draw(st.integers(0, 3))
        if where == 0 and sa:
            steps[i] = {k: (Tagged(tag, v) if k == sa[0] else v) for k, v in steps[i].items()}
            return f"step {i}: {tag} on its arguments"
        if where == 1 and isinstance(doc.get("machine"), dict):
            doc["machine"] = Tagged(tag, doc["machine"])
            return f"{tag} on machine"
        if where == 2 and isinstance(doc.get("cgroups"), dict):
            doc["cgroups"] = Tagged(tag, doc["cgroups"])
            return f"{tag} on cgroups"
        doc["steps"] = Tagged(tag, steps)
        return f"{tag} on steps"
    if what == "tag":
        tagged = [v for v in NASTY_VALUES if isinstance(v, Raw) and v.text.startswith("!")]
        value = draw(st.sampled_from(tagged))
        sa = _step_args(steps[i])
        if sa and sa[1]:
            key = draw(st.sampled_from(sorted(sa[1], key=str)))
            sa[1][key] = value
            return f"step {i}: {key} = {value.text}"
        doc["format"] = value
        return f"format = {value.text}"
    if what == "top":
        op = draw(st.integers(0, 8))
        if op == 0:
            doc["format"] = draw(st.sampled_from([2, "1", True, 1.0, 0, -1, Raw(TEN30), None,
                                                  Raw("!!int 1")]))
            return f"format = {scalar(doc['format'])}"
        if op == 1:
            key = draw(st.sampled_from(["format", "machine", "cgroups", "steps"]))
            doc.pop(key, None)
            return f"drop {key}"
        if op == 2:
            doc[draw(st.sampled_from(["Steps", "bogus", "", LONG, "version"]))] = 1
            return "unknown top-level key"
        if op == 3:
            doc["steps"] = draw(st.sampled_from([[], {}, None, "spawn", [[]], [{}], [None],
                                                 [{"may_fail": True}]]))
            return f"steps = {flow(doc['steps'])}"
        if op == 4:
            doc["machine"] = draw(st.sampled_from([None, [], "6.12", 1]))
            return f"machine = {flow(doc['machine'])}"
        if op == 5:
            steps.insert(j, {"spawn": {"task": "A", "cgroup": "/"}, "anon": {"task": "A"}})
            return "two steps in one item"
        if op == 6:
            steps.append(Raw("&x [*x]"))
            return "a recursive alias as a step"
        if op == 7:
            doc[Raw("? [complex, key]")] = 1
            return "a complex key"
        doc[Raw("<<")] = Raw("{format: 1}")
        return "a merge key"
    if what == "rename":
        olds = [x for x in (list(TASKS) + list(REGIONS) + list(FILES) + list(FDS))
                if _contains(steps, x)]
        if olds:
            old = draw(st.sampled_from(olds))
            new = draw(st.sampled_from(NASTY_NAMES))
            _replace_everywhere(steps, old, new)
            return f"rename {old} to {new[:20]!r} everywhere"
        return "no-op"
    return "no-op"


def semantic(draw, doc: dict, g: Gen, steps: list, i: int, j: int) -> str:
    """A mutation that keeps the file valid but changes what happens at run time: tasks that
    exit or are OOM-killed half-way, steps that fail and go on."""
    op = draw(st.integers(0, 4))
    t = draw(st.sampled_from(g.tasks)) if g.tasks else None
    late = draw(st.sampled_from([len(steps), j]))
    if op == 0 and t:
        steps.insert(late, {"exit": {"task": t}})
        return f"exit {t} at {late}"
    if op == 1 and t:
        c = draw(st.sampled_from(g.cgroups)) if g.cgroups else "/"
        name = "memory.max" if g.cgroup == "v2" else "memory.limit_in_bytes"
        items = [{"set": {"cgroup": c, name: "1MiB"}, "may_fail": True}] if c != "/" else []
        items.append({"anon": {"task": t, "size": size_text(draw, g.memory // 2 * 3),
                               "as": "oom"}, "may_fail": True})
        items.append({"expect": {"task": t, "state": "killed"}})
        steps[late:late] = items
        return f"OOM {t} at {late}"
    if op == 2:
        for item in steps:
            if isinstance(item, dict):
                item["may_fail"] = True
        return "every step may_fail"
    if op == 3 and t:
        steps.insert(late, {"expect": {"task": t, "state": draw(st.sampled_from(
            ["killed", "exited", "alive"]))}})
        return f"expect {t}'s state at {late}"
    kind = draw(st.sampled_from(["drop_caches", "sync"]))
    steps.insert(j, {kind: {}})
    return f"{kind} at {j}"


def _contains(v, s) -> bool:
    if isinstance(v, dict):
        return any(_contains(x, s) for x in v.values())
    if isinstance(v, list):
        return any(_contains(x, s) for x in v)
    return v == s


def _replace_everywhere(v, old, new):
    """Replace the string old by new in every value (not key) under v, in place."""
    if isinstance(v, dict):
        for k, x in v.items():
            if x == old and isinstance(x, str):
                v[k] = new
            else:
                _replace_everywhere(x, old, new)
    elif isinstance(v, list):
        for n, x in enumerate(v):
            if x == old and isinstance(x, str):
                v[n] = new
            else:
                _replace_everywhere(x, old, new)
    elif isinstance(v, (Anchor, Tagged)):
        _replace_everywhere(v.value, old, new)


INSERTS = (b"\x00", b"\xff", b"\xc3", b"\t", b"\r", b"\xef\xbb\xbf", b"&", b"*", b"!", b"%",
           b"{", b"}", b"[", b"]", b":", b"- ", b"\n", b"'", b'"', b"\\", b"|", b">", b"#",
           b"---\n", b"...\n", b"? ", b",", b"@", b"`", b"  ", b"\n  ", b"0", b"9" * 30,
           "\u2028".encode(), "\u00b1".encode(), b"\x85", b"\x1b[31m", b"%YAML 1.1\n",
           b"%TAG ! tag:x,2000:\n", b"&a ", b"*a ", b"!!binary ", b"<<: ")


def text_mutation(draw, data: bytes) -> tuple[bytes, str]:
    n = len(data)
    pos = draw(st.integers(0, n))
    op = draw(st.integers(0, 6))
    if op == 0 and n:
        p = min(pos, n - 1)
        bit = 1 << draw(st.integers(0, 7))
        return data[:p] + bytes([data[p] ^ bit]) + data[p + 1:], f"flip bit {bit} of byte {p}"
    if op == 1:
        ins = draw(st.sampled_from(INSERTS))
        return data[:pos] + ins + data[pos:], f"insert {ins!r} at {pos}"
    if op == 2:
        ln = draw(st.integers(1, 40))
        return data[:pos] + data[pos + ln:], f"delete {ln} bytes at {pos}"
    if op == 3:
        return data[:pos], f"truncate at {pos}"
    lines = data.split(b"\n")
    k = draw(st.integers(0, len(lines) - 1))
    if op == 4:
        lines.insert(draw(st.integers(0, len(lines))), lines[k])
        return b"\n".join(lines), f"duplicate line {k + 1}"
    if op == 5:
        m = draw(st.integers(0, len(lines) - 1))
        lines[k], lines[m] = lines[m], lines[k]
        return b"\n".join(lines), f"swap lines {k + 1} and {m + 1}"
    b = draw(st.integers(0, 255))
    return data[:pos] + bytes([b]) + data[pos:], f"insert byte {b:#x} at {pos}"


@dataclass
class Example:
    """A generated input: its bytes and how it was made."""

    text: bytes
    how: tuple = ()

    def __repr__(self) -> str:
        shown = self.text.decode("utf-8", "backslashreplace")
        if len(shown) > 3000:
            shown = shown[:3000] + f"... ({len(self.text)} bytes)"
        return f"Example(how={list(self.how)!r}, text=\n{shown}\n)"


@st.composite
def examples(draw, mutate_structure: bool = True, mutate_text: bool = True):
    """Scenario files: valid ones, structurally mutated ones, and textually mutated ones."""
    doc, g, block = draw(valid_docs())
    how = []
    level = draw(st.integers(0, 9))
    if mutate_structure and level >= 3:            # 70%: structural, 20% also textual
        for what in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
            how.append(mutate(draw, doc, g, what))
    data = render(doc, block).encode("utf-8", "surrogatepass")
    if mutate_text and level >= 8:
        for _ in range(draw(st.integers(1, 3))):
            data, what = text_mutation(draw, data)
            how.append(what)
    return Example(data, tuple(how))


# ---------------------------------------------------------------------------- the harness

@dataclass
class Outcome:
    """One run of `memcgsim run --check FILE`."""

    status: int | None          # exit status; None when the run crashed or hung
    stdout: str
    stderr: str
    seconds: float
    peak: int                   # traced memory peak, bytes
    finding: str | None = None  # the class of a broken property, None when all hold
    detail: str = ""            # the traceback, or what differed
    kind: str = ""              # the outcome class, for counting

    def summary(self) -> str:
        lines = [f"outcome: {self.kind} (exit {self.status}, {self.seconds:.2f} s, "
                 f"peak {self.peak / MiB:.1f} MiB)"]
        if self.finding:
            lines.append(f"finding: {self.finding}")
        if self.detail:
            lines.append(self.detail.rstrip())
        if self.stderr and self.finding:
            lines.append("stderr: " + _cut(self.stderr, 2000))
        return "\n".join(lines)


class _Hang(BaseException):
    """Raised by the SIGALRM handler: the run took too long (a BaseException so that no
    `except Exception` in the code under test swallows it)."""


_armed = False


def _on_alarm(signum, frame):
    if _armed:
        raise _Hang()


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _norm(text: str) -> str:
    """A message with its numbers, quoted values and paths blurred (so that one bug is one
    finding class)."""
    text = re.sub(r"0x[0-9a-f]+", "N", text)
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\d+", "N", text)
    return _cut(text.strip(), 160)


def _vmsize() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@contextlib.contextmanager
def _address_space_cap(headroom: int):
    """Lower the soft RLIMIT_AS to what the process uses now plus headroom, for the block."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = _vmsize() + headroom if headroom else 0
        if headroom and _vmsize() and (soft == resource.RLIM_INFINITY or soft > cap) and (
                hard == resource.RLIM_INFINITY or hard >= cap):
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        else:
            soft = None
    except (ValueError, OSError):
        soft = None
    try:
        yield
    finally:
        if soft is not None:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _crash_class(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    frame = tb[-1] if tb else None
    where = f" in {frame.name} ({os.path.basename(frame.filename)})" if frame else ""
    prefix = "memory" if isinstance(exc, MemoryError) else "crash"
    return f"{prefix}: {type(exc).__name__}{where}"


def _run(path: Path, timeout: float, trace_memory: bool, headroom: int) -> Outcome:
    """One in-process run: (status, stdout, stderr, seconds, peak, crash class, traceback)."""
    global _armed
    from memcgsim import cli

    out, err = io.StringIO(), io.StringIO()
    status = None
    finding = None
    detail = ""
    use_timer = threading.current_thread() is threading.main_thread() and timeout > 0
    if use_timer:
        old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    started_tracing = False
    if trace_memory:
        if not tracemalloc.is_tracing():
            tracemalloc.start()
            started_tracing = True
        tracemalloc.reset_peak()
    t0 = time.perf_counter()
    try:
        with _address_space_cap(headroom):
            if use_timer:
                _armed = True
                signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    status = cli.main(["run", "--check", *RUN_LIMITS, str(path)])
            finally:
                _armed = False
                if use_timer:
                    signal.setitimer(signal.ITIMER_REAL, 0)
    except _Hang:
        finding = f"hang: over {timeout:g} s"
        detail = f"the run did not end within {timeout:g} s"
    except SystemExit as e:             # sys.exit() inside: its status, as the shell sees it
        status = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
        if not isinstance(e.code, (int, type(None))):
            err.write(f"{e.code}\n")
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - every escape is a finding
        finding = _crash_class(e)
        detail = "".join(traceback.format_exception(e))
        if isinstance(e, MemoryError):
            detail = "MemoryError (the address space cap was reached)\n" + detail
    finally:
        seconds = time.perf_counter() - t0
        peak = 0
        if trace_memory:
            peak = tracemalloc.get_traced_memory()[1]
            if started_tracing:
                tracemalloc.stop()
        if use_timer:
            signal.signal(signal.SIGALRM, old_handler)
    return Outcome(status, out.getvalue(), err.getvalue(), seconds, peak, finding, detail)


def classify(o: Outcome, path: Path, memory_limit: int = MEMORY_LIMIT) -> Outcome:
    """Check the properties of one run; fill in finding (if any) and kind."""
    if o.finding is None:
        if o.status == 3:
            lines = [ln for ln in o.stdout.splitlines()
                     if ln.startswith(("violation:", "FAILED:"))]
            first = next((ln for ln in lines if ln.startswith("violation:")),
                         lines[0] if lines else "")
            o.finding = "exit 3: " + _norm(first.split(":", 1)[-1] if first else "")
            o.detail = "\n".join(lines[:20])
        elif o.status not in (0, 1, 2):
            o.finding = f"exit status {o.status!r}"
        elif o.status == 2:
            first = o.stderr.splitlines()[0] if o.stderr else ""
            if not re.match(re.escape(str(path)) + r":\d+:\d+: ", first):
                o.finding = "exit 2 without FILE:LINE:COLUMN"
                o.detail = f"first line of stderr: {_cut(first)!r}"
    if o.finding is None and o.status in (0, 1):
        tag = unsafe_tag(path)
        refused = safe_load_refuses(path)
        if tag:
            o.finding = "unsafe tag accepted: " + (
                "!!python/..." if ":python/" in tag else "a tag no safe constructor knows")
            o.detail = (f"the file has a node tagged {tag!r}, which safe loading cannot "
                        f"construct, and the run exited {o.status}")
        elif refused:
            why = re.sub(r"expected an? \w+ node, but found \w+",
                         "a tag of one kind of node on another", refused)
            o.finding = f"accepted what yaml.safe_load refuses: {_norm(why)}"
            o.detail = f"yaml.safe_load: {refused}; the run exited {o.status}"
    if o.finding is None and o.peak > memory_limit:
        o.finding = f"memory: traced peak over {memory_limit // MiB} MiB"
        o.detail = f"traced peak {o.peak / MiB:.1f} MiB"
    o.kind = finding_kind(o.finding) if o.finding else _kind(o)
    return o


#: the tags safe loading can construct: any other tag (!!python/..., a local !tag) must be
#: refused, on a collection as on a scalar
SAFE_TAGS = frozenset(k for k in yaml.constructor.SafeConstructor.yaml_constructors if k)


def unsafe_tag(path: Path) -> str | None:
    """The first tag in the file that safe loading cannot construct, or None (also when the
    file is not YAML at all)."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError, ValueError):
        return None
    seen, todo = set(), [root]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.tag not in SAFE_TAGS:
            return node.tag
        if isinstance(node, yaml.MappingNode):
            todo.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
    return None


def safe_load_refuses(path: Path) -> str | None:
    """Why yaml.safe_load refuses the file (a file memcgsim ran), or None when it takes it."""
    try:
        yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        return str(getattr(e, "problem", None) or e).splitlines()[0]
    except (ValueError, TypeError, RecursionError, UnicodeDecodeError) as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


def finding_kind(finding: str) -> str:
    """The coarse class of a finding, for counting: crash and memory findings by exception
    type, the others by property."""
    if finding.startswith(("crash", "memory: MemoryError")):
        return "FINDING " + finding.split(" in ")[0]
    return "FINDING " + finding.split(":")[0]


def _kind(o: Outcome) -> str:
    if o.status == 0:
        return "exit 0"
    if o.status == 2:
        return "exit 2 (invalid file)"
    if o.stderr.startswith("memcgsim: "):
        name = o.stderr[len("memcgsim: "):].split(":", 1)[0]
        return f"exit 1 (model error: {name})"
    failed = [ln for ln in o.stdout.splitlines() if ln.startswith("FAILED:")]
    if failed:
        m = re.search(r"failed with (\w+)|failed: (\w+)", failed[0])
        why = (m.group(1) or m.group(2)) if m else "?"
        return f"exit 1 (step failed: {why})"
    return "exit 1 (expectation failed)"


def run_one(text: str | bytes, tmp_path, *, timeout: float = TIMEOUT,
            memory_limit: int = MEMORY_LIMIT, repeat: bool = True, trace_memory: bool = True,
            headroom: int = ADDRESS_SPACE_HEADROOM, name: str = "scenario.yaml",
            hang_limit: float = HANG_LIMIT) -> Outcome:
    """Write text to tmp_path/name, run `memcgsim run --check` on it in-process (twice when
    repeat, the second time to check that the output is the same), and check the properties.
    Outcome.finding is None when they all hold. Without trace_memory the memory peak is not
    measured (tracemalloc slows a run 3-7 times); RLIMIT_AS still catches a runaway. A run over
    timeout is run again untraced up to hang_limit: if it ends it is slow (its kind says so),
    else a hang."""
    path = Path(tmp_path) / name
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    first = classify(_run(path, timeout, trace_memory, headroom), path, memory_limit)
    if first.finding and first.finding.startswith("hang") and (trace_memory
                                                               or hang_limit > timeout):
        untraced = _run(path, max(hang_limit, timeout), False, headroom)
        if not untraced.finding:
            untraced.peak = first.peak
            untraced = classify(untraced, path, memory_limit)
            untraced.kind += (" (slow: over the time limit only under tracemalloc)"
                              if trace_memory and untraced.seconds <= timeout else
                              f" (slow: over {timeout:g} s, under {hang_limit:g} s)")
            untraced.seconds += first.seconds
            return untraced
        untraced.seconds += first.seconds
        untraced.peak = first.peak
        return untraced
    if first.finding or not repeat:
        return first
    second = _run(path, timeout, False, headroom)
    if second.finding:           # a crash or a hang only the second time
        second.seconds += first.seconds
        second.peak = first.peak
        second.finding = "nondeterministic: " + second.finding
        second.kind = finding_kind(second.finding)
        return second
    diffs = [what for what, a, b in (("exit status", first.status, second.status),
                                     ("stdout", first.stdout, second.stdout),
                                     ("stderr", first.stderr, second.stderr)) if a != b]
    if diffs:
        first.finding = "nondeterministic: " + ", ".join(diffs) + " differ"
        first.kind = finding_kind(first.finding)
        first.detail = _first_difference(first, second)
    first.seconds += second.seconds
    return first


def across_processes(text: bytes, tmp_path, seeds=(1, 2), timeout: float = 120.0) -> str | None:
    """Run the file in fresh interpreters with different PYTHONHASHSEEDs (the in-process
    repeat cannot see an order that follows string hashing); what differed, or None."""
    import subprocess

    path = Path(tmp_path) / "across.yaml"
    path.write_bytes(text)
    seen = []
    for seed in seeds:
        env = dict(os.environ, PYTHONHASHSEED=str(seed))
        try:
            p = subprocess.run([sys.executable, "-m", "memcgsim", "run", "--check", *RUN_LIMITS,
                                str(path)],
                               capture_output=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None                   # a hang is the in-process run's to report
        seen.append((p.returncode, p.stdout, p.stderr))
    (s1, o1, e1), (s2, o2, e2) = seen[0], seen[1]
    a = Outcome(s1, o1.decode("utf-8", "replace"), e1.decode("utf-8", "replace"), 0, 0)
    b = Outcome(s2, o2.decode("utf-8", "replace"), e2.decode("utf-8", "replace"), 0, 0)
    return _first_difference(a, b) or None


def _first_difference(a: Outcome, b: Outcome) -> str:
    if a.status != b.status:
        return f"exit status {a.status} then {b.status}"
    for what, x, y in (("stdout", a.stdout, b.stdout), ("stderr", a.stderr, b.stderr)):
        if x != y:
            xl, yl = x.splitlines(), y.splitlines()
            for n, (p, q) in enumerate(zip(xl, yl, strict=False), 1):
                if p != q:
                    return f"{what} line {n}: {p!r} then {q!r}"
            return f"{what}: {len(xl)} lines then {len(yl)}"
    return ""


# ---------------------------------------------------------------------------- minimising

def minimise(data: bytes, finding: str, tmp_path, budget: float = 120.0,
             timeout: float = TIMEOUT) -> bytes:
    """A smaller input with the same finding class: delta debugging over lines, then over the
    items of flow mappings, then over characters of long lines, within budget seconds."""
    deadline = time.monotonic() + budget
    repeat = finding.startswith("nondeterministic")

    def same(candidate: bytes) -> bool:
        if time.monotonic() > deadline:
            return False
        if finding.startswith("nondeterministic across"):
            return across_processes(candidate, tmp_path) is not None
        o = run_one(candidate, tmp_path, timeout=timeout, repeat=repeat, hang_limit=timeout)
        return o.finding == finding

    def ddmin(parts: list, join) -> list:
        n = 2
        while len(parts) >= 2 and time.monotonic() < deadline:
            chunk = max(1, len(parts) // n)
            reduced = False
            for start in range(0, len(parts), chunk):
                rest = parts[:start] + parts[start + chunk:]
                if rest and same(join(rest)):
                    parts, n, reduced = rest, max(n - 1, 2), True
                    break
            if not reduced:
                if chunk == 1:
                    break
                n = min(len(parts), n * 2)
        return parts

    lines = ddmin(data.split(b"\n"), lambda p: b"\n".join(p))
    data = b"\n".join(lines)
    # the items of each flow mapping ({a: 1, b: 2}) one line at a time
    lines = data.split(b"\n")
    for k in range(len(lines)):
        parts = lines[k].split(b", ")
        if len(parts) < 2:
            continue

        def join(p, k=k):
            return b"\n".join(lines[:k] + [b", ".join(p)] + lines[k + 1:])
        best = ddmin(parts, join)
        lines[k] = b", ".join(best)
        fixed = _balance(lines[k])
        if fixed != lines[k] and same(b"\n".join(lines[:k] + [fixed] + lines[k + 1:])):
            lines[k] = fixed
    data = b"\n".join(lines)
    # shorten very long tokens (100,000-character names, 5,000-digit numbers)
    for long_run in sorted(set(re.findall(rb"(.)\1{200,}", data)), key=len):
        m = re.search(re.escape(long_run) + rb"{200,}", data)
        if m:
            for size in (50, 250, 1000, 5000):
                cand = data[:m.start()] + long_run * size + data[m.end():]
                if len(cand) < len(data) and same(cand):
                    data = cand
                    break
    return data


def _balance(line: bytes) -> bytes:
    """Close brackets the item deletions may have left open."""
    opens = line.count(b"{") - line.count(b"}")
    sq = line.count(b"[") - line.count(b"]")
    return line + b"]" * max(sq, 0) + b"}" * max(opens, 0)


# ---------------------------------------------------------------------------- the campaign

@dataclass
class Campaign:
    counts: Counter = field(default_factory=Counter)
    findings: dict = field(default_factory=dict)     # class -> (Example, Outcome, count)
    seconds: float = 0.0
    slowest: tuple = (0.0, None)
    peak: tuple = (0, None)
    notes: Counter = field(default_factory=Counter)
    note_examples: dict = field(default_factory=dict)

    def record(self, ex: Example, o: Outcome) -> None:
        self.counts[o.kind] += 1
        self.seconds += o.seconds
        if o.seconds > self.slowest[0]:
            self.slowest = (o.seconds, ex)
        if o.peak > self.peak[0]:
            self.peak = (o.peak, ex)
        if o.status == 2 and len(o.stderr) > 2000:
            note = "exit 2 message over 2,000 characters"
            self.notes[note] += 1
            if note not in self.note_examples or len(ex.text) < len(
                    self.note_examples[note][0].text):
                self.note_examples[note] = (ex, o)
        if o.finding:
            old = self.findings.get(o.finding)
            count = old[2] + 1 if old else 1
            if old is None or len(ex.text) < len(old[0].text):
                self.findings[o.finding] = (ex, o, count)
            else:
                self.findings[o.finding] = (old[0], old[1], count)


def campaign(n: int, seed: int, tmp_path, log=print, structure=True, text=True,
             across_every: int = 0) -> Campaign:
    """Run n generated examples (hypothesis, generation only, seeded) and collect outcomes;
    with across_every, every across_every-th example that ran (exit 0 or 1) is also run in
    two fresh interpreters with different hash seeds."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    c = Campaign()
    t0 = time.monotonic()

    @hseed(seed)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(examples(mutate_structure=structure, mutate_text=text))
    def body(ex):
        o = run_one(ex.text, tmp_path)
        done = sum(c.counts.values()) + 1
        if across_every and not o.finding and o.status in (0, 1) and done % across_every == 0:
            diff = across_processes(ex.text, tmp_path)
            c.counts["(checked across processes)"] += 1
            if diff:
                o.finding = "nondeterministic across processes (PYTHONHASHSEED)"
                o.kind = finding_kind(o.finding)
                o.detail = diff
        c.record(ex, o)
        if o.finding and c.findings[o.finding][2] == 1:
            log(f"[{done}] new finding: {o.finding}")
        if done % 100 == 0:
            log(f"[{done}] {time.monotonic() - t0:.0f} s, {len(c.findings)} finding classes")

    body()
    return c


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-minimise", action="store_true", help="report the smallest input seen")
    p.add_argument("--minimise-budget", type=float, default=90.0,
                   help="seconds of minimising per finding class")
    p.add_argument("--json", metavar="OUT", help="also write the findings as JSON")
    p.add_argument("--structure-only", action="store_true", help="no textual mutations")
    p.add_argument("--across-every", type=int, default=0, metavar="K",
                   help="run every K-th example that ran also in two fresh interpreters with "
                        "different PYTHONHASHSEEDs and compare (slow: about 2 s each)")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-scenarios-") as tmp:
        c = campaign(args.examples, args.seed, tmp, log=lambda s: print(s, flush=True),
                     text=not args.structure_only, across_every=args.across_every)
        gen_time = time.monotonic() - t0
        total = sum(n for k, n in c.counts.items() if not k.startswith("("))
        print(f"\n{total} examples in {gen_time:.0f} s ({c.seconds:.0f} s running memcgsim; "
              f"slowest {c.slowest[0]:.2f} s, largest traced peak {c.peak[0] / MiB:.0f} MiB)")
        print("\noutcome classes:")
        for kind, count in sorted(c.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {count:6d}  {kind}")
        for note, count in c.notes.items():
            ex, o = c.note_examples[note]
            print(f"  note: {count} x {note}; the smallest input ({len(ex.text)} bytes, "
                  f"{ex.how}):\n    {_cut(o.stderr, 300)}")
        out = []
        print(f"\n{len(c.findings)} distinct findings:")
        for n, (finding, (ex, o, count)) in enumerate(sorted(c.findings.items()), 1):
            data = ex.text
            if not args.no_minimise:
                budget = args.minimise_budget
                timeout = 5.0 if finding.startswith("hang") else TIMEOUT
                data = minimise(data, finding, tmp, budget=budget, timeout=timeout)
                if not finding.startswith("nondeterministic across"):
                    o = run_one(data, tmp, repeat=finding.startswith("nondeterministic"),
                                timeout=TIMEOUT)
            last = _last_line(o)
            print(f"\n--- {n}. {finding}  ({count} examples)")
            print(f"    last line: {last}")
            print("    input:")
            print("      " + data.decode("utf-8", "backslashreplace").replace("\n", "\n      "))
            out.append({"finding": finding, "count": count, "input": data.decode(
                "utf-8", "backslashreplace"), "last_line": last, "how": list(ex.how),
                "detail": o.detail[-3000:], "still": o.finding})
        print(f"\ntotal time {time.monotonic() - t0:.0f} s")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "examples": total, "seed": args.seed, "counts": dict(c.counts),
                "seconds": time.monotonic() - t0, "findings": out}, indent=2))
    return 1 if c.findings else 0


def _last_line(o: Outcome) -> str:
    if o.detail:
        lines = [ln for ln in o.detail.strip().splitlines() if ln.strip()]
        return lines[-1].strip() if lines else ""
    return o.finding or ""


if __name__ == "__main__":
    sys.exit(main())
