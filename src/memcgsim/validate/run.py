"""memcgsim validate: the same scenarios on a real kernel (under QEMU) and in the model, side by
side."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import time
from dataclasses import dataclass, field

from ..errors import InvalidRequest
from ..scenario import Scenario, run_scenario
from ..status import Exit
from . import cache, guest, qemu, serial
from .compare import (
    RULES,
    Comparison,
    Context,
    Row,
    allowed_text,
    compare_files,
    judge,
    merge_runs,
    rule_for,
)

#: boots per scenario group: the kernel's own spread comes from these
DEFAULT_RUNS = 3

SERIES = tuple(cache.SERIES)


class GuestFailed(cache.SetupError):
    """The guest did not run the scenarios through (a crash, a hang, a missing device)."""


@dataclass
class ScenarioResult:
    scenario: Scenario
    series: str
    comparison: Comparison
    guests: list                       # serial.GuestScenario, one per run
    boot: dict                         # the first boot's settings, uname and timing
    model_failure: str | None = None

    @property
    def guest(self) -> serial.GuestScenario:
        return self.guests[0]

    @property
    def ended(self) -> bool:
        return all(g.ended for g in self.guests)

    @property
    def matches(self) -> bool:
        return self.comparison.matches and self.ended and not self.model_failure

    @property
    def settle(self) -> tuple:
        """(the longest any dump took to settle in ms, dumps that never settled) over the
        runs."""
        waits = [w for g in self.guests for cgs in g.settle.values() for w in cgs.values()]
        return (max((w[0] for w in waits), default=0), sum(1 for w in waits if not w[2]))


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


def compare_scenario(plan: guest.GuestPlan, guests: list, series: str,
                     boot_info: dict) -> ScenarioResult:
    """Compare the model's run of a scenario with what the kernel showed in each run."""
    if isinstance(guests, serial.GuestScenario):
        guests = [guests]
    sc = plan.scenario
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
        k_out = merge_runs([g.outcomes.get(i, "missing") for g in guests])
        seen = k_out.seen if hasattr(k_out, "seen") else (k_out,)
        if "killed" in seen and _killed_in(res, step.args.get("task")):
            # a task killed inside a system call never sees its return value
            m_out = "killed"
        if step.kind not in ("report", "expect"):
            rule = rule_for("step outcome")
            add(i, step, None, f"step outcome ({step.kind})", k_out, m_out, rule,
                judge(rule, k_out, m_out, Context()))
        if i in model_states:
            key, m_state = model_states[i]
            k_state = merge_runs([g.states.get(i, {}).get(step.args["task"], "missing")
                                  for g in guests])
            rule = rule_for(key)
            add(i, step, None, key, k_state, m_state, rule,
                judge(rule, k_state, m_state, Context()))
        if i in model_fd:
            key = f"fd {step.args['fd']}"
            rule = rule_for(key)
            kv = merge_runs([g.fd_values.get(i) for g in guests])
            ctx = Context(cpus=cpus)
            add(i, step, None, key, kv, model_fd[i], rule, judge(rule, kv, model_fd[i], ctx),
                allowed_text(rule, ctx))
        if i in snaps:
            for cg, mfiles in snaps[i].items():
                kruns = [g.files.get(i, {}).get(plan.cg(cg), {}) for g in guests]

                def emit(key, k, m, rule, ok, allowed, i=i, step=step, cg=cg):
                    add(i, step, cg, key, k, m, rule, ok, allowed)

                compare_files(kruns, mfiles, cpus, emit, forked=forks, series=series)
    failure = result.failure
    if failure and not result.steps:
        # the model refused the set-up: the same refusal on the kernel is a match
        m_err = next((w for w in failure.replace(":", " ").split() if w.startswith("E")
                      and w.isupper()), failure)
        k_err = merge_runs([g.outcomes.get(-1, "missing") for g in guests])
        rule = rule_for("set-up outcome")
        ok = judge(rule, k_err, m_err, Context())
        cmp.rows.append(Row(-1, 0, "set-up", None, "set-up outcome", k_err, m_err, rule,
                            ok, rule.allowed))
        if ok:
            failure = None
    return ScenarioResult(sc, series, cmp, guests, boot_info, failure)


#: the layout of a file of recorded kernel runs (validate --record / --replay)
RECORD_FORMAT = 1


def guest_key(sc: Scenario, series: str) -> str:
    """What a recorded kernel run is valid for: the kernel series, the machine and what the
    guest runs (the scenario's steps as the guest program's script), not the file's name."""
    lines = guest.plan(sc, 1).lines
    text = "\n".join([series, repr(sc.machine), *lines])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _guest_json(g: serial.GuestScenario) -> dict:
    return dataclasses.asdict(g)


def _guest_from_json(d: dict) -> serial.GuestScenario:
    g = serial.GuestScenario(d["index"], d["begun"], d["ended"], info=d["info"])
    g.outcomes = {int(k): v for k, v in d["outcomes"].items()}
    g.files = {int(k): v for k, v in d["files"].items()}
    g.states = {int(k): v for k, v in d["states"].items()}
    g.fd_values = {int(k): v for k, v in d["fd_values"].items()}
    g.settle = {int(k): {cg: tuple(w) for cg, w in cgs.items()}
                for k, cgs in d.get("settle", {}).items()}
    return g


def write_record(v: Validation, path: str) -> None:
    """record(v) as JSON, gzip-compressed when path ends in .gz."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        json.dump(record(v), f, separators=(",", ":"))


def record(v: Validation) -> dict:
    """The kernel's side of a validation, to compare a changed model with later (--replay)."""
    return {"format": RECORD_FORMAT, "boots": v.boots, "scenarios": [
        {"file": r.scenario.file, "series": r.series, "key": guest_key(r.scenario, r.series),
         "boot": r.boot, "guests": [_guest_json(g) for g in r.guests]} for r in v.results]}


def load_record(path: str) -> dict:
    """A file written by --record, checked: {key: entry}."""
    try:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, EOFError) as e:
        raise InvalidRequest(f"{path}: cannot read recorded kernel runs: {e}") from None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise InvalidRequest(f"{path}: not a file of recorded kernel runs (format "
                             f"{RECORD_FORMAT}); write one with memcgsim validate --record")
    return {e["key"]: e for e in data.get("scenarios", [])}


def replay(scenarios: list, recorded: dict, kernel: str | None = None,
           source: str = "the record") -> Validation:
    """Compare the model with kernel runs recorded earlier (no QEMU): each scenario must have
    been recorded, on the same kernel series, with the same steps and machine."""
    out = Validation()
    for sc in scenarios:
        series = series_for(sc, kernel)
        entry = recorded.get(guest_key(sc, series))
        if entry is None:
            raise InvalidRequest(f"{sc.file}: {source} holds no kernel runs of this scenario "
                                 f"on {series} (with these steps and this machine)")
        guests = [_guest_from_json(g) for g in entry["guests"]]
        p = guest.plan(sc, guests[0].index)
        out.results.append(compare_scenario(p, guests, series, entry["boot"]))
    return out


def validate(scenarios: list, kernel: str | None = None, log=lambda s: None,
             timeout: float | None = None, runs: int = DEFAULT_RUNS) -> Validation:
    """Plan (Unsupported for what the guest cannot do), set up, boot each group of scenarios
    `runs` times, compare the model with what the runs showed."""
    if runs < 1:
        raise InvalidRequest(f"--runs {runs}: at least one boot")
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
        seen: dict = {p.index: [] for p in group}
        first = None
        for run in range(runs):
            log(f"booting {k.release} with {len(group)} scenario(s), run {run + 1} of {runs}")
            b = qemu.boot(k, files, memory >> 20, cpus,
                          timeout=timeout or 120 + 60 * len(group))
            parsed = serial.parse(b.output)
            info = {"series": s, "release": parsed.info.get("uname", "?"), "package": k.package,
                    "memory": f"{memory >> 20}M", "smp": cpus, "cgroup": cg, "run": run + 1,
                    "seconds": round(b.seconds, 2), "qemu": " ".join(b.command),
                    "cmdline": qemu.CMDLINE, "settings": dict(parsed.info),
                    "scenarios": [p.scenario.file for p in group]}
            out.boots.append(info)
            first = first or info
            if not parsed.done or parsed.errors:
                tail = "\n".join(b.console.splitlines()[-25:])
                raise GuestFailed(f"the {k.release} guest did not finish its scenarios "
                                  f"(exit {b.returncode}, after {b.seconds:.1f} s; "
                                  f"{'; '.join(parsed.errors) or 'no result'}). Console tail:\n"
                                  f"{tail}")
            for p in group:
                seen[p.index].append(parsed.scenarios.get(p.index,
                                                          serial.GuestScenario(p.index)))
        for p in group:
            g = seen[p.index][0]
            binfo = dict(first, thp=g.info.get("thp", "?"), swap=g.info.get("swap", "?"),
                         runs=runs)
            by_index[p.index] = compare_scenario(p, seen[p.index], s, binfo)
    out.results = [by_index[p.index] for p in plans]
    return out


__all__ = ["validate", "replay", "record", "write_record", "load_record", "Validation",
           "ScenarioResult", "RULES", "GuestFailed"]
