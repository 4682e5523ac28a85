"""Running a scenario: each step's op applied to a fresh Machine, in order.

`run_scenario` builds the machine and the cgroup tree, then hands each step to `Drive`, which
skips it when something it names is gone, applies its op (memcgsim.ops) and records what
happened. Nothing here prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import ops
from ..errors import Errno, InvalidRequest, ModelBug
from ..status import Exit
from .load import Scenario, Step, page_events
from .marks import PAGE, Where, show


@dataclass
class StepResult:
    index: int
    kind: str
    where: Where
    status: str = "ok"          # ok | error | skipped | failed
    error: str | None = None
    detail: str = ""
    #: with tracing: (memcg API call, its page or entry, [((memcg, counter), before, after)])
    trace: list = field(default_factory=list)
    #: the pages the step names (scenario.page_events) and the wall time it took
    page_events: int = 0
    seconds: float = 0.0


@dataclass
class RunResult:
    scenario: Scenario
    steps: list = field(default_factory=list)
    reports: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    violations: list = field(default_factory=list)
    failure: str | None = None
    #: after each step, per cgroup: (step index, usage bytes, swap bytes, limit bytes or None)
    series: dict = field(default_factory=dict)

    @property
    def exit_status(self) -> int:
        if self.violations:
            return Exit.VIOLATIONS
        if self.failure or not all(c.ok for c in self.checks):
            return Exit.ERROR
        return Exit.OK


class StepFailed(Exception):
    """A kernel refusal or a model error in a step that may not fail."""


def run_scenario(sc: Scenario, check_every_step: bool = False, on_step=None,
                 trace: bool = False, reference: bool = False) -> RunResult:
    """Run a validated scenario on a fresh Machine. With trace, every memcg API call of every
    step is recorded with the counters it changed (and the per-page paths are used); with
    reference, the per-page reference paths run without the fast paths, to the same end."""
    from ..checker import check
    from ..machine import Machine

    ms = sc.machine
    m = Machine(ms.memory // PAGE, swap_pages=ms.swap // PAGE, cpus=ms.cpus, nodes=ms.nodes,
                profile=ms.kernel, swap_accounting=ms.swap_accounting, thp=ms.thp,
                vectorized=not (trace or reference), cgroup=ms.cgroup)
    result = RunResult(sc)
    drive = ops.Drive(m, result)
    try:
        for path, files, _where in sc.cgroups:
            m.mkdir(path)
            if m.k.cgroup_v2:
                # as anyone setting up a v2 tree does: the parent hands memory to its children
                parent = path.rsplit("/", 1)[0] or "/"
                m.write_file(parent, "cgroup.subtree_control", "+memory")
            for name, text, fwhere in files:
                ret = m.write_file(path, name, text)
                if ret:
                    raise StepFailed(f"{fwhere}: writing {show(text)} to {path}/{name} failed: "
                                     f"{Errno(-ret).name}")
        for i, (step, cost) in enumerate(zip(sc.steps, page_events(sc), strict=True)):
            res = StepResult(i, step.kind, step.where, page_events=cost)
            result.steps.append(res)
            if trace:
                m.k.trace = res.trace
            t0 = time.perf_counter()
            _run_step(drive, step, res)
            res.seconds = time.perf_counter() - t0
            m.k.trace = None
            _sample(m, i, result.series)
            if on_step is not None:
                on_step(i, step, m)
            if check_every_step:
                v = check(m.k)
                if v:
                    result.violations = v
                    result.failure = f"{step.where}: invariant violated after {step.kind}"
                    break
    except StepFailed as e:
        result.failure = str(e)
    except ModelBug as e:
        result.failure = f"model error: {e}"
        result.violations = [e]
    result.machine = m
    return result


def _sample(m, index: int, series: dict) -> None:
    """Memory and swap of every cgroup after a step, for plots."""
    from ..mm.memcontrol import MEM_CGROUP_STAT_SWAP, mem_cgroup_usage
    from ..mm.page_counter import PAGE_COUNTER_MAX

    for path, memcg in m.k.memcg_by_name.items():
        if path == "/":
            continue
        limit = memcg.res.limit
        swap = memcg.swap.usage if m.k.cgroup_v2 else memcg.stat[MEM_CGROUP_STAT_SWAP]
        series.setdefault(path, []).append(
            (index, mem_cgroup_usage(m.k, memcg, swap=False) * PAGE, swap * PAGE,
             None if limit >= PAGE_COUNTER_MAX else limit * PAGE))


def _run_step(d: ops.Drive, step: Step, res: StepResult) -> None:
    """Apply one step's op, unless something it names is gone (then it is skipped); a kernel
    refusal fails the run unless the step may fail."""
    op = ops.OPS[step.kind]
    task = d.tasks.get(step.args.get("task")) if "task" in step.args else None
    gone = d.missing(op, step.args, task)
    if gone:
        # what the loader could only assume: a task killed or exited, or an object
        # whose step was skipped or failed under may_fail
        res.status, res.detail = "skipped", gone
        return
    try:
        err = op.apply(d, step, task)
    except InvalidRequest as e:
        err, res.detail = "EINVAL", str(e)
    killed = [t.comm for t in d.tasks.values() if t.state == "killed" and t.comm not in d.dead]
    if killed:
        d.dead.update(killed)
        res.detail = f"memcg OOM killer killed {', '.join(killed)}"
    if not op.reads_only:
        d.last_error = err
    if err:
        res.status, res.error = "error", err
        if not step.may_fail:
            raise StepFailed(f"{step.where}: {step.kind} failed with {err}"
                             + (f": {res.detail}" if res.detail else ""))
