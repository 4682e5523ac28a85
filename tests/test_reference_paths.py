"""Every scenario of the repository (examples, conformance cases, validation files) gives the
same output with the fast paths off (`memcgsim run --reference`: the per-page reference paths
alone) as with them on, so a bug in a reference path cannot hide behind a fast path that the
scenarios always take."""

import json
import pathlib

import pytest

from memcgsim.cli import main

ROOT = pathlib.Path(__file__).parent.parent
FILES = sorted([*ROOT.glob("examples/*.yaml"), *ROOT.glob("tests/conformance/*.yaml"),
                *ROOT.glob("tests/validate/*.yaml")])


def _run(capsys, path, *flags) -> tuple[int, dict, str]:
    status = main(["run", "--json", "--check", *flags, str(path)])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    for step in doc["steps"]:
        del step["seconds"]              # the wall time: the one field that differs
    return status, doc, err


def test_every_scenario_is_covered():
    assert len(FILES) >= 70


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_reference_paths_give_the_same_output(capsys, path):
    fast = _run(capsys, path)
    reference = _run(capsys, path, "--reference")
    assert fast[0] in (0, 1)
    assert reference == fast


def test_the_reference_flag_turns_the_fast_paths_off(monkeypatch, capsys):
    from memcgsim import machine

    seen = []
    real = machine.Machine.__init__

    def spy(self, *a, **kw):
        real(self, *a, **kw)
        seen.append(self.vectorized)

    monkeypatch.setattr(machine.Machine, "__init__", spy)
    path = ROOT / "examples" / "first-touch.yaml"
    _run(capsys, path)
    _run(capsys, path, "--reference")
    assert seen == [True, False]
