"""memcgsim validate: the same scenarios on a real kernel (under QEMU) and in the model, side by
side."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from ..errors import InvalidRequest
from ..scenario import Scenario, run_scenario
from ..status import Exit
from . import cache, guest, qemu, serial
from .compare import (
    CHARGE_BATCH,
    PAGE,
    RULES,
    Comparison,
    Context,
    Row,
    compare_files,
    judge,
    mglru_on,
    rule_for,
)

SERIES = tuple(cache.SERIES)


class GuestFailed(cache.SetupError):
    """The guest did not run the scenarios through (a crash, a hang, a missing device)."""


@dataclass
class ScenarioResult:
    scenario: Scenario
    series: str
    comparison: Comparison
    guest: serial.GuestScenario
    boot: dict                         # the boot's settings, uname and timing
    model_failure: str | None = None

    @property
    def matches(self) -> bool:
        return self.comparison.matches and self.guest.ended and not self.model_failure


@dataclass
class Validation:
    results: list = field(default_factory=list)
    boots: list = field(default_factory=list)
    setup_seconds: float = 0.0

    @property
    def exit_status(self) -> int:
        return Exit.OK if all(r.matches for r in self.results) else Exit.ERROR


def series_for(sc: Scenario, kernel: str | None) -> str:
    series = kernel or (sc.machine.kernel if sc.machine.kernel in SERIES else "6.1")
    if sc.machine.cgroup == "v1" and series == "6.12":
        raise guest.Unsupported(f"{sc.file}: a cgroup v1 scenario cannot run on 6.12 (it has "
                                "no v1 memory controller); use --kernel 6.1")
    return series


def model_run(sc: Scenario, series: str):
    """Run the scenario in the model under the real kernel's profile; snapshot every memory.*
    file at each report and expect, as the guest does."""
    sc = dataclasses.replace(sc, machine=dataclasses.replace(sc.machine, kernel=series))
    snaps: dict = {}

    def on_step(i, step, m):
        if step.kind == "report":
            paths = step.args["cgroups"]
        elif step.kind == "expect" and "cgroup" in step.args:
            paths = (step.args["cgroup"],)
        else:
            return
        snaps[i] = {p: _memory_files(m, p) for p in paths if p in m.k.memcg_by_name}

    result = run_scenario(sc, on_step=on_step)
    return result, snaps


def _memory_files(m, path: str) -> dict:
    """Every memory.* file the cgroup shows (none where the parent has not enabled memory)."""
    out = {}
    for name in m.fs.readable(path):
        if name.startswith("memory."):
            try:
                out[name] = m.read_file(path, name)
            except InvalidRequest:
                pass
    return out


def _killed_in(res, task) -> bool:
    """The model's OOM killer killed this step's task during the step."""
    prefix = "memcg OOM killer killed "
    return bool(task) and res.detail.startswith(prefix) and task in res.detail[
        len(prefix):].split(", ")


def _what(step) -> str:
    if step.kind == "report":
        return f"report {step.args['label']}"
    return step.kind


def compare_scenario(plan: guest.GuestPlan, g: serial.GuestScenario, series: str,
                     boot_info: dict) -> ScenarioResult:
    sc = plan.scenario
    mglru = mglru_on(boot_info.get("settings", {}).get("lru_gen"))
    result, snaps = model_run(sc, series)
    cmp = Comparison()
    cpus = sc.machine.cpus

    def add(i, step, cg, key, k, m, rule, ok, allowed=None):
        cmp.rows.append(Row(i, step.where.line, _what(step), cg, key, k, m, rule, ok,
                            allowed or rule.allowed))

    model_states = {c.step: (c.key, c.actual) for c in result.checks if c.key.startswith("task ")}
    model_fd = {c.step: c.actual for c in result.checks if c.key.startswith("fd ")}
    forks = 0
    for i, step in enumerate(sc.steps):
        if i >= len(result.steps):
            break
        forks += step.kind == "fork"
        res = result.steps[i]
        m_out = {"ok": "ok", "error": res.error, "skipped": "skipped"}.get(res.status, res.status)
        k_out = g.outcomes.get(i, "missing")
        if k_out == "killed" and _killed_in(res, step.args.get("task")):
            # a task killed inside a system call never sees its return value
            m_out = "killed"
        if step.kind not in ("report", "expect"):
            rule = rule_for("step outcome")
            add(i, step, None, f"step outcome ({step.kind})", k_out, m_out, rule,
                k_out == m_out)
        if i in model_states:
            key, m_state = model_states[i]
            k_state = g.states.get(i, {}).get(step.args["task"], "missing")
            add(i, step, None, key, k_state, m_state, rule_for(key), k_state == m_state)
        if i in model_fd:
            key = f"fd {step.args['fd']}"
            rule = rule_for(key)
            kv = g.fd_values.get(i)
            add(i, step, None, key, kv, model_fd[i], rule,
                judge(rule, kv, model_fd[i], Context(cpus=cpus)),
                f"±{CHARGE_BATCH * PAGE * cpus}")
        if i in snaps:
            kfiles = g.files.get(i, {})
            for cg, mfiles in snaps[i].items():
                kf = kfiles.get(plan.cg(cg), {})

                def emit(key, k, m, rule, ok, allowed, i=i, step=step, cg=cg):
                    add(i, step, cg, key, k, m, rule, ok, allowed)

                compare_files(kf, mfiles, cpus, emit, mglru=mglru, forked=forks)
    failure = result.failure
    if failure and not result.steps:
        # the model refused the set-up: the same refusal on the kernel is a match
        m_err = next((w for w in failure.replace(":", " ").split() if w.startswith("E")
                      and w.isupper()), failure)
        k_err = g.outcomes.get(-1, "missing")
        rule = rule_for("set-up outcome")
        cmp.rows.append(Row(-1, 0, "set-up", None, "set-up outcome", k_err, m_err, rule,
                            k_err == m_err, rule.allowed))
        if k_err == m_err:
            failure = None
    return ScenarioResult(sc, series, cmp, g, boot_info, failure)


def validate(scenarios: list, kernel: str | None = None, log=lambda s: None,
             timeout: float | None = None) -> Validation:
    """Plan (Unsupported for what the guest cannot do), set up, boot, compare."""
    series = [series_for(sc, kernel) for sc in scenarios]
    plans = [guest.plan(sc, i + 1) for i, sc in enumerate(scenarios)]
    out = Validation()
    t0 = time.monotonic()
    kernels = cache.setup(sorted(set(series)), log=log)
    out.setup_seconds = time.monotonic() - t0
    groups: dict = {}
    for p, s in zip(plans, series, strict=True):
        ms = p.scenario.machine
        groups.setdefault((s, ms.cgroup, ms.memory, ms.cpus), []).append(p)
    by_index = {}
    for (s, cg, memory, cpus), group in groups.items():
        k = kernels[s]
        files = guest.job_files(group, cg == "v2")
        log(f"booting {k.release} with {len(group)} scenario(s)")
        b = qemu.boot(k, files, memory >> 20, cpus,
                      timeout=timeout or 120 + 60 * len(group))
        parsed = serial.parse(b.output)
        info = {"series": s, "release": parsed.info.get("uname", "?"), "package": k.package,
                "memory": f"{memory >> 20}M", "smp": cpus, "cgroup": cg,
                "seconds": round(b.seconds, 2), "qemu": " ".join(b.command),
                "cmdline": qemu.CMDLINE, "settings": dict(parsed.info),
                "scenarios": [p.scenario.file for p in group]}
        out.boots.append(info)
        if not parsed.done or parsed.errors:
            tail = "\n".join(b.console.splitlines()[-25:])
            raise GuestFailed(f"the {k.release} guest did not finish its scenarios "
                              f"(exit {b.returncode}, after {b.seconds:.1f} s; "
                              f"{'; '.join(parsed.errors) or 'no result'}). Console tail:\n"
                              f"{tail}")
        for p in group:
            g = parsed.scenarios.get(p.index, serial.GuestScenario(p.index))
            binfo = dict(info, thp=g.info.get("thp", "?"), swap=g.info.get("swap", "?"))
            by_index[p.index] = compare_scenario(p, g, s, binfo)
    out.results = [by_index[p.index] for p in plans]
    return out


__all__ = ["validate", "Validation", "ScenarioResult", "RULES", "GuestFailed"]
