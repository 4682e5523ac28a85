"""The conformance suite: each public kernel test case as a scenario file, run and tabulated.

A case file is an ordinary scenario (format 1) named after the case's ID, whose comment header
names the features it covers (`# features: ANON, STAT`). `run_suite` runs every case with the
invariant checker on; `render_table` prints case, features, pass or fail, and for each case the
value seen against the value expected (the first failing expectation, else the last one).
"""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass

FEATURES_RE = re.compile(r"^#\s*features:\s*(.+)$", re.MULTILINE)


@dataclass
class CaseResult:
    case: str
    features: str
    passed: bool
    seen: str
    expected: str
    failure: str | None = None


def _features(path: pathlib.Path) -> str:
    m = FEATURES_RE.search(path.read_text(encoding="utf-8"))
    return m.group(1).strip() if m else ""


def run_case(path: pathlib.Path) -> CaseResult:
    from .scenario import ScenarioError, load_scenario, run_scenario

    try:
        result = run_scenario(load_scenario(str(path)), check_every_step=True)
    except ScenarioError as e:
        return CaseResult(path.stem, _features(path), False, "-", "-", f"invalid: {e}")
    failed = [c for c in result.checks if not c.ok]
    shown = failed[0] if failed else (result.checks[-1] if result.checks else None)
    where = f"{shown.cgroup} " if shown is not None and shown.cgroup else ""
    seen = f"{where}{shown.key} = {shown.actual}" if shown is not None else "-"
    expected = shown.expected if shown is not None else "-"
    passed = result.exit_status == 0 and bool(result.checks)
    return CaseResult(path.stem, _features(path), passed, seen, expected, result.failure)


def run_suite(directory: str) -> list[CaseResult]:
    return [run_case(p) for p in sorted(pathlib.Path(directory).glob("*.yaml"))]


def render_table(results: list[CaseResult]) -> str:
    rows = [("case", "features", "result", "seen", "expected")]
    for r in results:
        rows.append((r.case, r.features, "pass" if r.passed else "FAIL", r.seen, r.expected))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(row[:4], widths, strict=True))
             + f"  {row[4]}" for row in rows]
    for r in results:
        if r.failure:
            lines.append(f"{r.case}: {r.failure}")
    passed = sum(r.passed for r in results)
    lines.append(f"{passed} of {len(results)} cases pass")
    return "\n".join(lines) + "\n"
