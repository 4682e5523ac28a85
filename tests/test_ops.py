"""The operations (memcgsim.ops): each defined once, used by the loader, the runner, the
limits and the real-kernel guest; and munlock, the step added as one definition."""

from __future__ import annotations

import textwrap

import pytest

from memcgsim.ops import KINDS, OPS, RACE_OPS
from memcgsim.scenario import ScenarioError, load_scenario, run_scenario
from memcgsim.validate import guest

MUNLOCK = """\
format: 1
machine: {kernel: "6.12", cgroup: v2, memory: 64MiB}
cgroups: {/a: {}}
steps:
  - spawn: {task: A, cgroup: /a}
  - anon: {task: A, size: 1MiB, as: buf, locked: true}
  - anon: {task: A, size: 1MiB, as: other}
  - mlock: {task: A, region: other}
  - munlock: {task: A, region: buf}
  - expect:
      cgroup: /a
      memory.current: 2359296
      memory.stat.anon: 2MiB
      memory.stat.unevictable: 1MiB
      memory.stat.inactive_anon: 1MiB
      memory.stat.active_anon: 0
"""


def test_every_op_documents_its_arguments_with_known_kinds():
    for op in (*OPS.values(), *RACE_OPS.values()):
        assert op.doc and op.apply, op.name
        assert (op.load is not None) == (op.name in OPS), op.name
        assert op.guest is not None or op.unsupported, op.name
        for arg in op.args:
            assert arg.doc and arg.kind in KINDS, (op.name, arg.name)


def test_every_race_setup_step_applies_an_op_by_the_race_files_names():
    import inspect

    from memcgsim.races import SETUP_STEPS

    for name, (fn, required, optional) in SETUP_STEPS.items():
        assert fn.__name__.removeprefix("setup_") in OPS.keys() | RACE_OPS.keys(), name
        assert tuple(inspect.signature(fn).parameters) == required + optional, name


def test_every_step_is_in_the_format_document():
    with open("docs/scenario-format.md", encoding="utf-8") as f:
        doc = f.read()
    for name in OPS:
        assert f"- {name}:" in doc, name


def test_munlock_moves_the_pages_back_to_the_lru_and_keeps_the_charge():
    result = run_scenario(load_scenario("munlock.yaml", MUNLOCK), check_every_step=True)
    assert result.failure is None and not result.violations
    assert [(c.key, c.actual) for c in result.checks] == [
        ("memory.current", 2359296), ("memory.stat.anon", 2 << 20),
        ("memory.stat.unevictable", 1 << 20), ("memory.stat.inactive_anon", 1 << 20),
        ("memory.stat.active_anon", 0)]
    assert all(c.ok for c in result.checks)


def test_munlock_of_a_region_the_task_does_not_have_is_refused_at_load():
    text = MUNLOCK.replace("munlock: {task: A, region: buf}", "munlock: {task: A, region: bf}")
    with pytest.raises(ScenarioError) as e:
        load_scenario("bad.yaml", text)
    assert str(e.value) == ("bad.yaml:9:32: task A has no region 'bf' (define it with anon or "
                            "mmap ... as:)")


def test_munlock_with_an_unknown_key_names_the_known_ones():
    text = MUNLOCK.replace("munlock: {task: A, region: buf}", "munlock: {task: A, vma: buf}")
    with pytest.raises(ScenarioError) as e:
        load_scenario("bad.yaml", text)
    assert str(e.value) == "bad.yaml:9:24: munlock: unknown key 'vma'"


def test_munlock_after_the_task_exited_is_skipped_at_run_time():
    text = textwrap.dedent(MUNLOCK[:MUNLOCK.index("  - munlock:")]) + (
        "  - exit: {task: A}\n  - munlock: {task: A, region: buf}\n")
    result = run_scenario(load_scenario("s.yaml", text))
    assert result.failure is None
    assert (result.steps[-1].status, result.steps[-1].detail) == ("skipped",
                                                                  "task A was exited")


def test_munlock_is_one_workload_command_in_the_guest():
    lines = guest.plan(load_scenario("s.yaml", MUNLOCK.replace("64MiB", "256MiB")), 0).lines
    assert "0 4 task A munlock buf" in lines
