"""Scenario files (format 1, docs/scenario-format.md): load, validate, run.

`load_scenario(path)` reads the YAML (safe loading) and checks everything before a step runs:
a mistake raises ScenarioError with file:line:column and what is wrong. `run_scenario` runs the
steps on a Machine and returns a `RunResult` with the reports, the expectations and the exit
status. Nothing here prints.

Every kernel profile runs: "3.17" (cgroup v1), "6.1" (v1 or v2) and "6.12" (v2). Which files
a scenario may write and expect is read off the model of the same kernel and interface, so the
validator and the run always agree.

The package: `marks` (YAML with positions, ScenarioError, the value readers; shared with the
race files), `files` (the kernel's cgroup files and expectations), `load` and `run`. What a
step is and does is its op, in memcgsim.ops.
"""

from __future__ import annotations

from .files import (
    KEYED,
    WORD_FILES,
    Check,
    CheckResult,
    expected_value,
    file_ok,
    interface,
    keyed_file,
    read_value,
    value_text,
)
from .load import (
    MAX_NUMNODES,
    NR_CPUS,
    Limits,
    MachineSpec,
    Scenario,
    Step,
    load_scenario,
    page_events,
)
from .marks import (
    MAX_NAME,
    MAX_PATH,
    MAX_SIZE,
    PAGE,
    Node,
    ScenarioError,
    Where,
    did_you_mean,
    error_at,
    parse_size,
    parse_yaml,
    read_source,
    show,
    text_line_of,
)
from .run import RunResult, StepFailed, StepResult, run_scenario


def __getattr__(name: str):
    if name == "STEP_ARGS":
        # kind: (required arguments, optional arguments), read off the ops
        from ..ops import OPS

        return {op.name: (op.required, op.optional) for op in OPS.values()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KEYED", "MAX_NAME", "MAX_NUMNODES", "MAX_PATH", "MAX_SIZE", "NR_CPUS", "PAGE",
    "WORD_FILES", "Check", "CheckResult", "Limits", "MachineSpec", "Node",
    "RunResult", "Scenario", "ScenarioError", "Step", "StepFailed", "StepResult", "Where",
    "did_you_mean", "error_at", "expected_value", "file_ok", "interface", "keyed_file",
    "load_scenario", "page_events", "parse_size", "parse_yaml", "read_source", "read_value",
    "run_scenario", "show", "text_line_of", "value_text",
]
