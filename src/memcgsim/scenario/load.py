"""Loading a scenario file: the machine, the cgroup tree and the steps, every one checked
against the machine as the steps before it leave it (each step by its op's load), and what
the whole file asks of the model checked against the limits (docs/limits.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import ops
from ..profile import PROFILES
from .files import file_ok, value_text
from .marks import (
    PAGE,
    Node,
    Where,
    did_you_mean,
    error_at,
    parse_size,
    parse_yaml,
    read_cgroup_path,
    read_int,
    read_source,
    show,
)


@dataclass(frozen=True)
class Limits:
    """What a scenario may ask of the model, checked before it runs (docs/limits.md). Each
    bounds the model's memory or its run time; `memcgsim run --limit NAME=N` raises one."""

    #: RAM + swap in 4 KiB pages: 256 GiB, about 2 GiB of model state at 31 bytes a page
    pages: int = 1 << 26
    #: per-CPU charge stocks, drained one by one whenever a charge hits a limit
    cpus: int = 1024
    #: cgroups in the cgroups section, a few KiB each
    cgroups: int = 10_000
    #: tasks spawned and forked, each with its mm, page tables and kernel stack
    tasks: int = 10_000
    #: pages the steps name (faulted, written, read, mapped, unmapped, moved, truncated): a
    #: measure of run time; 16 GiB of page traffic, minutes on the per-page paths
    page_events: int = 1 << 22

    @staticmethod
    def names() -> tuple[str, ...]:
        return tuple(f.replace("_", "-") for f in Limits.__dataclass_fields__)

    def raised(self, name: str, value: int) -> Limits:
        """These limits with one of them (by its command-line name) set to value."""
        import dataclasses

        field_name = name.replace("-", "_")
        if field_name not in Limits.__dataclass_fields__:
            raise ValueError(f"unknown limit {name!r}: want one of {', '.join(self.names())}")
        return dataclasses.replace(self, **{field_name: value})


#: the kernel's own bounds on a machine: NR_CPUS and MAX_NUMNODES of Debian's x86_64 config
NR_CPUS, MAX_NUMNODES = 8192, 1024


@dataclass(frozen=True)
class MachineSpec:
    kernel: str = "6.12"
    cgroup: str = "v2"
    memory: int = 256 << 20
    swap: int = 0
    cpus: int = 1
    nodes: int = 1
    thp: bool = False
    swap_accounting: bool = True



@dataclass(frozen=True)
class Step:
    kind: str
    args: dict
    may_fail: bool
    where: Where
    checks: tuple = ()


@dataclass(frozen=True)
class Scenario:
    file: str
    machine: MachineSpec
    cgroups: tuple          # ((path, ((file, text, where), ...), where), ...)
    steps: tuple


def load_scenario(file: str, text: str | None = None, limits: Limits | None = None
                  ) -> Scenario:
    """Read and validate a scenario file, and check what it asks of the model against
    limits; ScenarioError names the first mistake."""
    root = parse_yaml(read_source(file) if text is None else text, file)
    if not isinstance(root.value, dict):
        raise error_at(root, "a scenario is a mapping with format, machine, cgroups and steps")
    top = root.value
    for key, (knode, _) in top.items():
        if key not in ("format", "machine", "cgroups", "steps"):
            raise error_at(knode, f"unknown top-level key {show(key)}"
                       + did_you_mean(key, ("format", "machine", "cgroups", "steps")))
    if "format" not in top:
        raise error_at(root, "missing 'format: 1'")
    fmt = top["format"][1]
    if fmt.value != 1 or not isinstance(fmt.value, int) or isinstance(fmt.value, bool):
        raise error_at(fmt, f"format {show(fmt.value)} is not known: this version reads format 1")
    machine = _machine(top["machine"][1] if "machine" in top else Node({}, root.where))
    cgroups = _cgroups(top["cgroups"][1] if "cgroups" in top else Node({}, root.where), machine)
    if "steps" not in top:
        raise error_at(root, "missing 'steps': a scenario needs at least one step")
    steps = _steps(top["steps"][1], machine, {c[0] for c in cgroups} | {"/"})
    sc = Scenario(file, machine, tuple(cgroups), tuple(steps))
    _check_limits(sc, top.get("machine", (None, root))[1], limits or Limits())
    return sc


def _check_limits(sc: Scenario, machine_node: Node, limits: Limits) -> None:
    """Refuse, at the line that crosses it, a scenario that asks for more than limits."""
    def over(node_or_where, what: str, value: int, name: str):
        return error_at(node_or_where, f"{what}: over the limit of {getattr(limits, name):,} "
                    f"{name.replace('_', ' ')} (docs/limits.md; raise it with "
                    f"--limit {name.replace('_', '-')}=N)")

    ms = sc.machine
    mkeys = machine_node.value if isinstance(machine_node.value, dict) else {}
    pages = (ms.memory + ms.swap) // PAGE
    if pages > limits.pages:
        where = mkeys.get("memory", mkeys.get("swap", (None, machine_node)))[1]
        raise over(where, f"memory and swap make {pages:,} pages", pages, "pages")
    if ms.cpus > limits.cpus:
        raise over(mkeys["cpus"][1], f"{ms.cpus:,} cpus", ms.cpus, "cpus")
    if len(sc.cgroups) > limits.cgroups:
        raise over(sc.cgroups[limits.cgroups][2], f"{len(sc.cgroups):,} cgroups",
                   len(sc.cgroups), "cgroups")
    tasks = events = 0
    for step, cost in zip(sc.steps, page_events(sc), strict=True):
        tasks += step.kind in ("spawn", "fork")
        if tasks > limits.tasks:
            raise over(step.where, f"this {step.kind} makes {tasks:,} tasks", tasks, "tasks")
        events += cost
        if events > limits.page_events:
            raise over(step.where, f"the steps up to this {step.kind} name about {events:,} "
                       "page events", events, "page_events")


def page_events(sc: Scenario) -> list[int]:
    """For each step, about how many pages it names: what it faults, writes, reads, maps,
    unmaps, truncates, or walks (fork, exit, migrate and move walk the task's regions; sync
    and drop_caches every cached page), as its op's pages says. Reclaim inside a charge is
    bounded by the faults that charge, so it is not counted again."""
    est = ops.Estimate()
    out = []
    for step in sc.steps:
        count = ops.OPS[step.kind].pages
        out.append(count(est, step.args) if count else 0)
    return out


def _machine(node: Node) -> MachineSpec:
    if not isinstance(node.value, dict):
        raise error_at(node, "machine: want a mapping of kernel, cgroup, memory, swap, cpus, ...")
    known = ("kernel", "cgroup", "memory", "swap", "cpus", "nodes", "thp", "swap_accounting")
    kw: dict[str, Any] = {}
    for key, (knode, v) in node.value.items():
        if key not in known:
            raise error_at(knode, f"unknown machine key {show(key)}" + did_you_mean(key, known))
        if key == "kernel":
            if isinstance(v.value, float):
                raise error_at(v, f"kernel: quote the version, as kernel: \"6.12\" (unquoted, YAML "
                              f"reads it as the number {show(v.value)})")
            kernel = v.value
            if kernel not in ("3.17", "6.1", "6.12"):
                raise error_at(v, f"kernel {show(v.value)}: want \"3.17\", \"6.1\" or \"6.12\"")
            kw["kernel"] = kernel
        elif key == "cgroup":
            if v.value not in ("v1", "v2"):
                raise error_at(v, f"cgroup: want v1 or v2, not {show(v.value)}")
            kw["cgroup"] = v.value
        elif key in ("memory", "swap"):
            kw[key] = parse_size(v, f"machine.{key}", whole_pages=True)
        elif key in ("cpus", "nodes"):
            kw[key] = read_int(v, f"machine.{key}", lo=1,
                           hi=NR_CPUS if key == "cpus" else MAX_NUMNODES)
        elif key == "thp":
            if v.value not in ("never", "always"):
                raise error_at(v, f"thp: want never or always, not {show(v.value)}")
            kw["thp"] = v.value == "always"
        else:
            if not isinstance(v.value, bool):
                raise error_at(v, f"swap_accounting: want true or false, not {show(v.value)}")
            kw["swap_accounting"] = v.value
    spec = MachineSpec(**kw)
    if "swap_accounting" in kw and spec.cgroup == "v2":
        raise error_at(node.value["swap_accounting"][1], "swap_accounting is a cgroup v1 setting "
                   "(v2 always accounts swap in memory.swap.current)")
    allowed = PROFILES[spec.kernel].cgroup_versions
    if spec.cgroup not in allowed:
        where = node.value["cgroup"][1] if "cgroup" in node.value else node
        raise error_at(where, f"kernel {spec.kernel} offers cgroup {' and '.join(allowed)}, "
                          f"not {spec.cgroup}")
    if spec.memory % ((2 << 20) * spec.nodes) or not spec.memory:
        where = node.value["memory"][1] if "memory" in node.value else node
        raise error_at(where, "machine.memory must be a whole number of 2 MiB per node")
    return spec


def _cgroups(node: Node, machine: MachineSpec) -> list:
    if not isinstance(node.value, dict):
        raise error_at(node, "cgroups: want a mapping of cgroup paths to their files")
    out = []
    seen = {"/"}
    for path, (knode, v) in node.value.items():
        read_cgroup_path(knode, "cgroup")
        if path == "/":
            raise error_at(knode, "the root cgroup exists already and cannot be configured here")
        parent = path.rsplit("/", 1)[0] or "/"
        if parent not in seen:
            raise error_at(knode, f"{path}: its parent {parent} must be listed before it")
        seen.add(path)
        if v.value is None:
            v = Node({}, v.where)
        if not isinstance(v.value, dict):
            raise error_at(v, f"{path}: want a mapping of control files to values, or {{}}")
        files = []
        for name, (fk, fv) in v.value.items():
            file_ok(fk, name, machine, writable=True)
            files.append((name, value_text(fv, name), fk.where))
        out.append((path, tuple(files), knode.where))
    return out


def _steps(node: Node, machine: MachineSpec, cgroups: set) -> list:
    if not isinstance(node.value, list) or not node.value:
        raise error_at(node, "steps: want a list of steps")
    built = ops.Built(machine, cgroups)
    out = []
    for item in node.value:
        if not isinstance(item.value, dict) or not item.value:
            raise error_at(item, "a step is a mapping like '- spawn: {task: A, cgroup: /a}'")
        entries = dict(item.value)
        may_fail = False
        if "may_fail" in entries:
            mk, mv = entries.pop("may_fail")
            if not isinstance(mv.value, bool):
                raise error_at(mv, "may_fail: want true or false")
            may_fail = mv.value
        if not entries:
            raise error_at(item, "this list item has may_fail but no step")
        if len(entries) != 1:
            names = [k for k in entries]
            raise error_at(item.value[names[1]][0],
                       f"one step per list item, found {', '.join(names)}")
        ((kind, (knode, args)),) = entries.items()
        op = ops.OPS.get(kind)
        if op is None:
            raise error_at(knode, f"unknown step {show(kind)}" + did_you_mean(kind, ops.OPS))
        if args.value is None:
            args = Node({}, args.where)
        if not isinstance(args.value, dict):
            raise error_at(args, f"{kind}: want a mapping of arguments, like {{task: A}}")
        a = dict(args.value)
        if "may_fail" in a:
            mk, mv = a.pop("may_fail")
            if not isinstance(mv.value, bool):
                raise error_at(mv, "may_fail: want true or false")
            may_fail = may_fail or mv.value
        required, optional = op.required, op.optional
        if not op.open_keys:
            for key, (ak, _) in a.items():
                if key not in required | optional:
                    raise error_at(ak, f"{kind}: unknown key {show(key)}"
                                   + did_you_mean(key, required | optional))
        for key in sorted(required - set(a)):
            raise error_at(args, f"{kind}: missing {show(key)}")
        vals = op.load(built, a, args)
        checks = vals.pop("checks", ())
        step = Step(kind, vals, may_fail, knode.where, checks)
        out.append(step)
    return out
