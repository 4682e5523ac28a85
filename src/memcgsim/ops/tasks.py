"""Tasks: spawn, fork, move, migrate, exit."""

from __future__ import annotations

from ..scenario.marks import error_at, read_int
from .op import Arg, Op, errno_name


def _spawn_load(b, a, node):
    vals = {"task": b.new_task(a, "task"), "cgroup": b.cgroup(a)}
    for key, lo, hi in (("cpu", 0, b.machine.cpus - 1), ("node", 0, b.machine.nodes - 1),
                        ("oom_score_adj", -1000, 1000)):
        if key in a:
            v = a[key][1]
            if not isinstance(v.value, int) or isinstance(v.value, bool) or not (
                    lo <= v.value <= hi):
                raise error_at(v, f"{key}: want a whole number from {lo} to {hi}")
            vals[key] = v.value
    return vals


def _spawn(d, step, _):
    a = step.args
    t = d.m.spawn(a["task"], a["cgroup"], cpu=a.get("cpu", 0), node=a.get("node", 0))
    t.oom_score_adj = a.get("oom_score_adj", 0)
    d.tasks[a["task"]] = t


def _spawn_guest(p, step, t):
    a = step.args
    cpu = a.get("cpu", -1) if p.scenario.machine.cpus > 1 else -1
    return [f"spawn {t} {p.cg(a['cgroup'])} {a.get('oom_score_adj', 0)} {cpu}"]


SPAWN = Op("spawn", "start a task in a cgroup",
           (Arg("task", "new task", "its name"),
            Arg("cgroup", "cgroup", "where it runs"),
            Arg("cpu", "number", "the CPU it runs on (its charge stock); 0", False),
            Arg("node", "number", "the NUMA node it allocates from; 0", False),
            Arg("oom_score_adj", "number", "-1000 to 1000; 0", False)),
           _spawn_load, _spawn, _spawn_guest)


def _fork_load(b, a, node):
    task = b.task(a)
    child = b.new_task(a, "child")
    b.regions[child] = set(b.regions.get(task, set()))
    return {"task": task, "child": child}


def _fork(d, step, t):
    child = d.m.fork(t, step.args["child"])
    d.tasks[step.args["child"]] = child
    for (owner, name), vma in list(d.regions.items()):
        if owner == t.comm:
            d.regions[(child.comm, name)] = child.mm.vmas[t.mm.vmas.index(vma)]
    for name, vma in list(d.vmas.items()):
        if vma in t.mm.vmas:
            d.vmas[f"{step.args['child']}:{name}"] = child.mm.vmas[t.mm.vmas.index(vma)]


def _fork_pages(est, a):
    mine = est.mine(a)
    est.regions[a["child"]] = dict(mine)
    return sum(mine.values())


FORK = Op("fork", "fork: the child shares the task's anonymous pages copy-on-write and has "
                  "its regions by the same names (a race setup's VMAs as CHILD:NAME)",
          (Arg("task", "task", "the parent"), Arg("child", "new task", "the child's name")),
          _fork_load, _fork,
          lambda p, step, t: [f"fork {t} {p.token(step, step.args['child'], 'task')}"],
          pages=_fork_pages)


def _walk(est, a):
    """What a step that walks all the task's regions names."""
    return sum(est.mine(a).values())


MOVE = Op("move", "write the task's pid to the cgroup's cgroup.procs (v1: tasks)",
          (Arg("task", "task", "the task"), Arg("cgroup", "cgroup", "where it goes")),
          lambda b, a, node: {"task": b.task(a), "cgroup": b.cgroup(a)},
          lambda d, step, t: errno_name(d.m.move_task(t, step.args["cgroup"])),
          lambda p, step, t: [f"move {t} {p.cg(step.args['cgroup'])}"], pages=_walk)


def _migrate_load(b, a, node):
    vals = {"task": b.task(a), "node": read_int(a["node"][1], "node")}
    if vals["node"] >= b.machine.nodes:
        raise error_at(a["node"][1], f"node {vals['node']} does not exist: the machine has "
                                     f"{b.machine.nodes} node(s)")
    return vals


def _migrate(d, step, t):
    for vma in list(t.mm.vmas):
        d.m.migrate(t, vma, step.args["node"])


MIGRATE = Op("migrate", "NUMA-migrate every page of the task's regions to a node",
             (Arg("task", "task", "the task"),
              Arg("node", "number", "the target node (needs machine.nodes >= 2)")),
             _migrate_load, _migrate, None, "the guest workload cannot do it (no NUMA nodes, "
             "no FUSE)", pages=_walk)

EXIT = Op("exit", "the task exits: its memory is unmapped",
          (Arg("task", "task", "the task"),),
          lambda b, a, node: {"task": b.task(a)},
          lambda d, step, t: d.m.exit(t),
          lambda p, step, t: [f"exit {t}"], pages=_walk)

OPS = (SPAWN, FORK, MOVE, MIGRATE, EXIT)
