"""Render a scenario run: text (the cgroup files, a compact table, the expectations) and a
stable JSON document. Pure functions from a RunResult to text or plain data."""

from __future__ import annotations

from .kernel import PAGE_SIZE

JSON_SCHEMA_VERSION = 1


def _mib(b: int) -> str:
    return f"{b / (1 << 20):.2f}M"


def _kv(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in text.splitlines())}


def _table(report: dict) -> list[str]:
    """One line per cgroup: usage, anon, file, shmem, swap and the events that matter."""
    rows = report["cgroups"]
    v2 = not any("memory.usage_in_bytes" in files for files in rows.values())
    head = (("current", "anon", "file") if v2 else ("usage", "rss", "cache"))
    lines = [f"  {'cgroup':<20} {head[0]:>10} {head[1]:>10} {head[2]:>10} {'shmem':>10} "
             f"{'swap':>10}  events"]
    for path, files in rows.items():
        stat = _kv(files["memory.stat"])
        if v2:
            # the v2 root has no memory.current, memory.swap.current or memory.events
            usage = int(files["memory.current"]) if "memory.current" in files else None
            swap = int(files.get("memory.swap.current", "0"))
            ev = _kv(files["memory.events"]) if "memory.events" in files else None
            events = f"max {ev['max']} oom {ev['oom']} oom_kill {ev['oom_kill']}" if ev \
                else "-"
        else:
            usage = int(files["memory.usage_in_bytes"])
            swap = stat.get("swap", 0)
            events = f"failcnt {files['memory.failcnt'].strip()}"
            oom = _kv(files["memory.oom_control"])
            if "oom_kill" in oom:
                events += f" oom_kill {oom['oom_kill']}"
        shmem = _mib(stat["shmem"]) if "shmem" in stat else "-"
        shown = _mib(usage) if usage is not None else "-"
        lines.append(f"  {path:<20} {shown:>10} {_mib(stat[head[1]]):>10} "
                     f"{_mib(stat[head[2]]):>10} {shmem:>10} {_mib(swap):>10}  {events}")
    return lines


def _trace_lines(events) -> list[str]:
    lines = []
    for name, arg, changes in events:
        if isinstance(arg, int):
            what = f" {arg:#x}"
        elif isinstance(arg, (list, tuple)):
            shown = ", ".join(f"{p:#x}" for p in arg[:8])
            what = f" [{shown}{', ...' if len(arg) > 8 else ''}]"
        else:
            what = ""
        by_memcg: dict[str, list[str]] = {}
        for (memcg, counter), old, new in changes:
            scale = 1 if counter in ("res", "memsw", "swap.usage") else PAGE_SIZE
            unit = "" if scale == 1 else " B"
            by_memcg.setdefault(memcg, []).append(
                f"{counter} {old * scale}{unit} -> {new * scale}{unit}"
                if scale != 1 else f"{counter} {old} -> {new}")
        change = "; ".join(f"{m}: {', '.join(c)}" for m, c in by_memcg.items())
        lines.append(f"    {name}{what}: {change or 'no counter change'}")
    return lines


def render_text(result) -> str:
    sc = result.scenario
    ms = sc.machine
    out = [f"== {sc.file}: kernel {ms.kernel}, cgroup {ms.cgroup}, memory {_mib(ms.memory)}, "
           f"swap {_mib(ms.swap)}, {ms.cpus} cpu(s), {ms.nodes} node(s)"]
    reports = {r["step"]: r for r in result.reports}
    checks_by_step: dict[int, list] = {}
    for c in result.checks:
        checks_by_step.setdefault(c.step, []).append(c)
    for st in result.steps:
        if st.trace:
            out.append(f"step {st.index + 1} (line {st.where.line}): {st.kind}")
            out.extend(_trace_lines(st.trace))
        if st.status in ("skipped", "error") or st.detail:
            why = st.error or st.detail
            out.append(f"step {st.index + 1} (line {st.where.line}): {st.kind} {st.status}"
                       + (f": {why}" if why else ""))
        if st.index in reports:
            r = reports[st.index]
            out.append(f"-- report {r['label']} (line {r['line']})")
            for path, files in r["cgroups"].items():
                mount = "/sys/fs/cgroup" if ms.cgroup == "v2" else "/sys/fs/cgroup/memory"
                base = mount + ("" if path == "/" else path)
                for name, text in files.items():
                    out.append(f"# {base}/{name}")
                    out.extend(text.splitlines())
            out.extend(_table(r))
        for c in checks_by_step.get(st.index, []):
            mark = "ok  " if c.ok else "FAIL"
            where = f"{c.cgroup} " if c.cgroup else ""
            out.append(f"{mark} {c.where}: {where}{c.key} = {c.actual} (expected {c.expected})")
    if result.failure:
        out.append(f"FAILED: {result.failure}")
    for v in result.violations:
        out.append(f"violation: {v}")
    n_ok = sum(c.ok for c in result.checks)
    out.append(f"{n_ok} of {len(result.checks)} expectations hold; exit {result.exit_status}")
    return "\n".join(out) + "\n"


def render_json(result) -> dict:
    """The documented JSON schema (version 1): machine, steps, reports, checks, exit_status."""
    sc = result.scenario
    ms = sc.machine
    return {
        "schema": JSON_SCHEMA_VERSION,
        "file": sc.file,
        "machine": {"kernel": ms.kernel, "cgroup": ms.cgroup, "memory": ms.memory,
                    "swap": ms.swap, "cpus": ms.cpus, "nodes": ms.nodes, "thp": ms.thp,
                    "swap_accounting": ms.swap_accounting, "page_size": PAGE_SIZE},
        "steps": [{"index": s.index, "line": s.where.line, "kind": s.kind,
                   "status": s.status, "error": s.error, "detail": s.detail,
                   "page_events": s.page_events, "seconds": round(s.seconds, 6)}
                  for s in result.steps],
        "reports": result.reports,
        "checks": [{"step": c.step, "line": c.where.line, "cgroup": c.cgroup, "key": c.key,
                    "expected": c.expected, "actual": c.actual, "ok": c.ok}
                   for c in result.checks],
        "failure": result.failure,
        "violations": [str(v) for v in result.violations],
        "exit_status": result.exit_status,
    }
