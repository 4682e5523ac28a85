"""The noun: an operation on a Machine, and what its verbs see.

An `Op` is data: its name, a doc line, its arguments (`Arg`, one set of names), and four
functions, one per front-end:

- `load(built, a, node)`: the arguments of one step (`a`: name -> (key node, value node);
  `node`: the step's mapping) checked against the machine as the steps before it leave it
  (`Built`); returns their values (and an expect's "checks") or raises ScenarioError at the
  value that is wrong;
- `apply(drive, step, task)`: performs it on the Machine (`Drive` holds what the steps made);
  returns None or the errno name of a kernel refusal;
- `guest(plan, step, task)`: the workload commands the real-kernel guest runs for it, or None
  when the guest cannot (`unsupported` says why);
- `pages(est, a)`: about how many pages it names (docs/limits.md's page events).

What an argument names is its `kind`; the run-time check that it is still there when the step
runs (`Drive.missing`) is read off the kinds, so no op writes one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Errno, InvalidRequest
from ..scenario.marks import error_at, read_cgroup_path, read_file_name, read_name, show

#: the kinds of argument: what an argument names or holds
KINDS = {
    "task": "a task a step before made (spawn, fork); skipped at run time once it is gone",
    "new task": "a task name not used yet",
    "region": "a region of the task that a step before mapped (as:)",
    "new region": "the name this step gives the region it maps",
    "file": "a file a write before made; skipped at run time if that write did not run",
    "new file": "a file path; the step makes the file if it is not there",
    "cgroup": "a cgroup path of the cgroups section",
    "new cgroup": "a cgroup path not made yet (its parent is)",
    "cgroup file": "a file of the cgroup's interface",
    "fd": "an open file (open ... as:)",
    "new fd": "the name this step gives the file it opens",
    "name": "a name the step only reads or reports",
    "size": "bytes, or a number with a unit (B, K, KiB, M, MiB, G, GiB, T, TiB)",
    "number": "a whole number",
    "bool": "true or false",
    "text": "a plain value (text, number or boolean)",
}


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str
    doc: str
    required: bool = True
    #: False: only a race file's setup gives it (a scenario file has no such key)
    in_scenarios: bool = True


@dataclass(frozen=True)
class Op:
    name: str
    doc: str
    args: tuple[Arg, ...]
    #: None: not a scenario step (a race setup's own)
    load: Callable[[Built, dict, Any], dict] | None
    apply: Callable[[Any, Any, Any], str | None]
    guest: Callable | None = None
    #: why the real-kernel guest cannot perform it (when guest is None)
    unsupported: str = ""
    pages: Callable | None = None
    #: the keys other than args name files (set, expect)
    open_keys: bool = False
    #: it only reads: the step_error a later expect sees is the last changing step's
    reads_only: bool = False

    @property
    def required(self) -> set:
        """The keys a scenario step of it must have."""
        return {a.name for a in self.args if a.required and a.in_scenarios}

    @property
    def optional(self) -> set:
        """The keys a scenario step of it may have."""
        return {a.name for a in self.args if not a.required and a.in_scenarios}


@dataclass
class Built:
    """What the steps so far have made, as the loader follows them (names only)."""

    machine: Any
    cgroups: set
    tasks: set = field(default_factory=set)
    regions: dict = field(default_factory=dict)     # task -> its region names
    files: set = field(default_factory=set)
    fds: set = field(default_factory=set)

    def task(self, a: dict, key: str = "task") -> str:
        name = read_name(a[key][1], key)
        if name not in self.tasks:
            raise error_at(a[key][1], f"task {show(name)} is used before it was spawned")
        return name

    def new_task(self, a: dict, key: str) -> str:
        name = read_name(a[key][1], key)
        if name in self.tasks:
            raise error_at(a[key][1], f"task {show(name)} exists already")
        self.tasks.add(name)
        return name

    def region(self, a: dict, task: str) -> str:
        name = read_name(a["region"][1], "region")
        if name not in self.regions.get(task, set()):
            raise error_at(a["region"][1], f"task {task} has no region {show(name)} (define "
                                           "it with anon or mmap ... as:)")
        return name

    def file(self, a: dict) -> str:
        name = read_file_name(a["file"][1])
        if name not in self.files:
            raise error_at(a["file"][1],
                           f"file {show(name)} does not exist yet (create it with write)")
        return name

    def cgroup(self, a: dict, key: str = "cgroup") -> str:
        path = read_cgroup_path(a[key][1])
        if path not in self.cgroups:
            raise error_at(a[key][1], f"cgroup {path} is not defined in cgroups:")
        return path


@dataclass
class Estimate:
    """What page_events follows: file sizes and each task's region sizes, in pages."""

    files: dict = field(default_factory=dict)
    regions: dict = field(default_factory=dict)     # task -> {region: pages}

    def mine(self, a: dict) -> dict:
        return self.regions.setdefault(a.get("task"), {}) if "task" in a else {}


def errno_name(ret: int) -> str | None:
    """A Machine call's return as a step's outcome: None, or the errno name of a refusal."""
    return Errno(-ret).name if ret < 0 else None


class Drive:
    """What the steps applied to a Machine made, by the names they gave it: the state every
    op's apply works on. A scenario run has one per run; a race setup builds one over its
    context (`over`), whose VMAs are named once for the whole machine."""

    def __init__(self, m, result=None):
        self.m = m
        #: the scenario run's RunResult (reports and checks), None in a race setup
        self.result = result
        self.tasks: dict[str, Any] = {}
        self.regions: dict[tuple, Any] = {}         # (task, region) -> its VMA
        #: a race setup's VMAs by name (a fork names the child's copies CHILD:NAME)
        self.vmas: dict[str, Any] = {}
        self.fds: dict[str, Any] = {}
        #: the files the scenario's own writes made and it has not unlinked
        self.files: set[str] = set()
        self.last_error: str | None = None
        self.dead: set[str] = set()

    @classmethod
    def over(cls, m, ctx: dict) -> Drive:
        """A Drive whose tasks and VMAs are a race setup context's."""
        d = cls(m)
        d.tasks = ctx.setdefault("tasks", {})
        d.vmas = ctx.setdefault("vmas", {})
        return d

    def vma(self, name: str):
        v = self.vmas.get(name)
        if v is None:
            raise InvalidRequest(f"unknown VMA {name!r} (give an mmap step `as: {name}`)")
        return v

    def missing(self, op: Op, a: dict, task) -> str | None:
        """Why a step cannot run (a task, region, file or fd it names is not there), or None;
        read off the kinds of the op's arguments."""
        kinds = {arg.name: arg.kind for arg in op.args}
        if kinds.get("task") == "task":
            if task is None:
                return f"task {a['task']} does not exist (the step that made it did not run)"
            if task.state != "alive":
                return f"task {task.comm} was {task.state}"
        if kinds.get("region") == "region" and (task.comm, a["region"]) not in self.regions:
            return (f"task {task.comm} has no region {a['region']} (the step that made it "
                    "did not run or failed)")
        if kinds.get("file") == "file" and a["file"] not in self.files:
            return f"file {a['file']} does not exist (the write that made it did not run)"
        if kinds.get("fd") == "fd" and a["fd"] not in self.fds:
            return f"fd {a['fd']} is not open (its open did not run or failed)"
        return None
