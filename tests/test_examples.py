"""Every example scenario runs clean: all expectations hold, no invariant breaks."""

import pathlib

import pytest

from memcgsim.scenario import load_scenario, run_scenario

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.yaml"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 7


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_holds(path):
    result = run_scenario(load_scenario(str(path)), check_every_step=True)
    failed = [c for c in result.checks if not c.ok]
    assert result.exit_status == 0, (result.failure, failed, result.violations)
    assert result.checks and not failed
