"""Text and JSON renderings of a validation: kernel and model side by side, with the rule."""

from __future__ import annotations

from .compare import COMPARED, RULES, Spread


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, Spread) and all(isinstance(x, int) for x in v.seen) and abs(v.hi) >= 1 << 20:
        return f"{v} ({v.lo / (1 << 20):.2f}..{v.hi / (1 << 20):.2f}M)"
    if isinstance(v, int) and abs(v) >= 1 << 20:
        return f"{v} ({v / (1 << 20):.2f}M)"
    return str(v)


def _json(v):
    return list(v.seen) if isinstance(v, Spread) else v


def _verdict(row) -> str:
    if row.ok is None:
        return "not compared"
    if row.ok is False:
        return "MISMATCH"
    if row.differs:
        return "tolerated"
    return "ok, runs differ" if isinstance(row.kernel, Spread) else "ok"


def _shown(row, level: str) -> bool:
    """brief: failures; default: and tolerated differences, and values the kernel's runs did
    not repeat; all: every key."""
    if level == "all" or row.ok is False:
        return True
    return level == "default" and row.ok is True and (
        row.differs or isinstance(row.kernel, Spread))


def boot_line(b: dict) -> str:
    s = b["settings"]
    return (f"{b['release']} ({b['package']}), cgroup {b['cgroup']}, -m {b['memory']} "
            f"-smp {b['smp']}, THP {b.get('thp', '?')}, swap {b.get('swap', '?')}, "
            f"swappiness {s.get('swappiness', '?')}, dirty_ratio {s.get('dirty_ratio', '?')}, "
            f"dirty_background_ratio {s.get('dirty_background_ratio', '?')}, "
            f"lru_gen {s.get('lru_gen', '?')}, "
            f"guest MemTotal {s.get('memtotal', '?')}; boot {b['seconds']} s")


def render_text(v, level: str = "default") -> str:
    """level: "brief" (failures only), "default" (and tolerated differences) or "all"."""
    out = []
    for r in v.results:
        runs = r.boot.get("runs", 1)
        out.append(f"== {r.scenario.file} on {boot_line(r.boot)}; {runs} run(s)")
        worst, unsettled = r.settle
        out.append(f"   values settled within {worst} ms of the first read" +
                   (f"; {unsettled} dump(s) never settled" if unsettled else ""))
        if r.model_failure:
            out.append(f"   model: {r.model_failure}")
        if not r.ended:
            out.append("   kernel: the scenario did not run to its end")
        last = None
        for row in r.comparison.rows:
            if not _shown(row, level):
                continue
            head = (row.step, row.cgroup)
            if head != last:
                where = f" {row.cgroup}" if row.cgroup else ""
                out.append(f"-- step {row.step} (line {row.line}) {row.what}{where}")
                last = head
            out.append(f"   {row.key:<34} kernel {_fmt(row.kernel):>22}  model "
                       f"{_fmt(row.model):>22}  {row.allowed:<22} {_verdict(row)}")
        n = len(r.comparison.mismatches)
        rows = r.comparison.rows
        compared = sum(1 for row in rows if row.ok is not None)
        tolerated = sum(1 for row in rows if row.ok and row.differs)
        skipped = len({row.key for row in rows if row.ok is None})
        out.append(f"   {'matches' if r.matches else 'DOES NOT MATCH'}: {compared - n} of "
                   f"{compared} compared values agree ({tolerated} within a tolerance)" +
                   (f", {n} differ" if n else "") +
                   f"; {skipped} keys shown, not compared (--all lists them)")
    return "\n".join(out) + "\n"


def render_json(v) -> dict:
    return {
        "matches": v.exit_status == 0,
        "setup_seconds": round(v.setup_seconds, 2),
        "boots": v.boots,
        "rules": [{"pattern": r.pattern, "kind": r.kind, "allowed": r.allowed,
                   "compared": r.kind in COMPARED, "reason": r.reason} for r in RULES],
        "scenarios": [{
            "file": r.scenario.file, "kernel": r.series, "boot": r.boot,
            "matches": r.matches, "model_failure": r.model_failure,
            "settle": [{"run": n + 1, "step": step, "cgroup": cg, "ms": w[0], "reads": w[1],
                        "settled": w[2]}
                       for n, g in enumerate(r.guests) for step, cgs in sorted(g.settle.items())
                       for cg, w in sorted(cgs.items())],
            "rows": [{"step": row.step, "line": row.line, "what": row.what,
                      "cgroup": row.cgroup, "key": row.key, "kernel": _json(row.kernel),
                      "model": row.model, "allowed": row.allowed, "ok": row.ok,
                      "verdict": _verdict(row)}
                     for row in r.comparison.rows],
        } for r in v.results],
    }



def _kind_rows(rows) -> dict:
    """The rows of one scenario by rule kind (the key classes of docs/fidelity.md)."""
    out: dict = {}
    for row in rows:
        out.setdefault(row.rule.kind, []).append(row)
    return out


def _cell(rows) -> str:
    if not rows:
        return ""
    fail = sum(1 for row in rows if row.ok is False)
    tol = sum(1 for row in rows if row.ok and row.differs)
    if fail:
        return f"**{fail} of {len(rows)} fail**"
    return f"{len(rows)}" + (f" ({tol} tol.)" if tol else "")


def render_markdown(v) -> str:
    """Per file and kernel, each class of keys: how many values were compared, how many only
    within their rule's tolerance (tol.), how many failed; then every failing value, with its
    known cause where there is one."""
    from .known import explain

    out = ["| file | kernel | runs | settled (ms) | " + " | ".join(COMPARED) + " |",
           "|---|---|---:|---:|" + "---:|" * len(COMPARED)]
    for r in v.results:
        worst, unsettled = r.settle
        settle = f"{worst}" + (f" ({unsettled} unsettled)" if unsettled else "")
        kinds = _kind_rows(r.comparison.rows)
        name = f"`{r.scenario.file}`" + ("" if r.ended and not r.model_failure else
                                        f" ({r.model_failure or 'not run to its end'})")
        out.append(f"| {name} | {r.series} | {r.boot.get('runs', 1)} | {settle} | " +
                   " | ".join(_cell(kinds.get(kind, [])) for kind in COMPARED) + " |")
    out += ["", "Every value that fails its rule:", "",
            "| file | kernel | step | cgroup | key | kernel's runs | model | allowed | cause |",
            "|---|---|---:|---|---|---:|---:|---|---|"]
    for r in v.results:
        for row in r.comparison.mismatches:
            known = explain(r, row)
            cause = known.cause if known else "**not explained**"
            out.append(f"| `{r.scenario.file}` | {r.series} | {row.step} | "
                       f"{row.cgroup or ''} | {row.key} | {_fmt(row.kernel)} | "
                       f"{_fmt(row.model)} | {row.allowed} | {cause} |")
    return "\n".join(out) + "\n"


def render_rules() -> str:
    """The rule table as Markdown: what each key is held to, and why."""
    out = ["| keys | class | allowed | why |", "|---|---|---|---|"]
    for r in RULES:
        out.append(f"| `{r.pattern}` | {r.kind if r.kind in COMPARED else 'not compared'} | "
                   f"{r.allowed} | {r.reason} |")
    return "\n".join(out) + "\n"
