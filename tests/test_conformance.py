"""The conformance suite (tests/conformance/*.yaml, one file per case of
../shared/conformance/cases.md): every case holds, with the invariant checker after every step,
and `memcgsim conformance` tabulates them."""

import pathlib

import pytest

from memcgsim.cli import main
from memcgsim.conformance import run_case

SUITE = pathlib.Path(__file__).parent / "conformance"
CASES = sorted(SUITE.glob("*.yaml"))


def test_the_suite_has_every_expressible_case():
    assert len(CASES) >= 51


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_holds(path):
    r = run_case(path)
    assert r.features, f"{path.name} names no features"
    assert r.passed, (r.failure, r.seen, r.expected)


def test_conformance_command_prints_the_table(capsys):
    assert main(["conformance", str(SUITE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["case", "features", "result", "seen", "expected"]
    assert out[-1] == f"{len(CASES)} of {len(CASES)} cases pass"
    assert any(line.startswith("A1-USAGE-1 ") and "= 4456448" in line for line in out)


def test_conformance_command_without_cases(tmp_path, capsys):
    assert main(["conformance", str(tmp_path)]) == 2
    assert "no case files" in capsys.readouterr().err


def test_a_failing_case_is_reported(tmp_path, capsys):
    (tmp_path / "X-1.yaml").write_text(
        '# features: ANON\nformat: 1\nmachine: {kernel: "6.12", cgroup: v2}\n'
        "cgroups: {/a: {}}\nsteps:\n  - spawn: {task: T, cgroup: /a}\n"
        "  - anon: {task: T, size: 1MiB, as: x}\n"
        "  - expect: {cgroup: /a, memory.stat.anon: 2MiB}\n")
    assert main(["conformance", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "X-1" in out and "FAIL" in out and "= 1048576" in out and "2MiB" in out
    assert out.endswith("0 of 1 cases pass\n")
