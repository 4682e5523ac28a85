"""Text and JSON renderings of a validation: kernel and model side by side, with the rule."""

from __future__ import annotations

from .compare import RULES


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) and abs(v) >= 1 << 20:
        return f"{v} ({v / (1 << 20):.2f}M)"
    return str(v)


def _verdict(ok) -> str:
    return {True: "ok", False: "MISMATCH", None: "~"}[ok]


def boot_line(b: dict) -> str:
    s = b["settings"]
    return (f"{b['release']} ({b['package']}), cgroup {b['cgroup']}, -m {b['memory']} "
            f"-smp {b['smp']}, THP {b.get('thp', '?')}, swap {b.get('swap', '?')}, "
            f"swappiness {s.get('swappiness', '?')}, dirty_ratio {s.get('dirty_ratio', '?')}, "
            f"dirty_background_ratio {s.get('dirty_background_ratio', '?')}, "
            f"lru_gen {s.get('lru_gen', '?')}, "
            f"guest MemTotal {s.get('memtotal', '?')}; boot {b['seconds']} s")


def render_text(v, show_all: bool = False) -> str:
    out = []
    for r in v.results:
        out.append(f"== {r.scenario.file} on {boot_line(r.boot)}")
        if r.model_failure:
            out.append(f"   model: {r.model_failure}")
        if not r.guest.ended:
            out.append("   kernel: the scenario did not run to its end")
        last = None
        for row in r.comparison.rows:
            if not show_all and (row.ok is None or (row.ok and row.kernel == row.model)):
                continue
            head = (row.step, row.cgroup)
            if head != last:
                where = f" {row.cgroup}" if row.cgroup else ""
                out.append(f"-- step {row.step} (line {row.line}) {row.what}{where}")
                last = head
            out.append(f"   {row.key:<34} kernel {_fmt(row.kernel):>22}  model "
                       f"{_fmt(row.model):>22}  {row.allowed:<22} {_verdict(row.ok)}")
        n = len(r.comparison.mismatches)
        compared = sum(1 for row in r.comparison.rows if row.ok is not None)
        out.append(f"   {'matches' if r.matches else 'DOES NOT MATCH'}: {compared - n} of "
                   f"{compared} compared values agree" + (f", {n} differ" if n else ""))
    return "\n".join(out) + "\n"


def render_json(v) -> dict:
    return {
        "matches": v.exit_status == 0,
        "setup_seconds": round(v.setup_seconds, 2),
        "boots": v.boots,
        "rules": [{"pattern": r.pattern, "kind": r.kind, "allowed": r.allowed,
                   "reason": r.reason} for r in RULES],
        "scenarios": [{
            "file": r.scenario.file, "kernel": r.series, "boot": r.boot,
            "matches": r.matches, "model_failure": r.model_failure,
            "rows": [{"step": row.step, "line": row.line, "what": row.what,
                      "cgroup": row.cgroup, "key": row.key, "kernel": row.kernel,
                      "model": row.model, "allowed": row.allowed, "ok": row.ok}
                     for row in r.comparison.rows],
        } for r in v.results],
    }
