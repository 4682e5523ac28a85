"""The interleaving explorer: the correct model passes every race set, and each bug put back
is found with its counterexample."""

import pytest

from memcgsim.cli import main
from memcgsim.explore import explore
from memcgsim.races import INJECTIONS, RACE_SETS


@pytest.mark.parametrize("name", sorted(RACE_SETS))
def test_every_race_set_is_clean(name):
    out = explore(RACE_SETS[name])
    assert out.violation is None, "\n".join([out.violation] + out.counterexample)
    assert out.schedules > 1 and out.states > out.schedules


@pytest.mark.parametrize("bug,expected", [
    ("B1", "[stats] /a writeback 1 but 0 pages"),
    ("B2", "[underflow] /a stat mapped_file = -1"),
    ("B4", "VM_BUG_ON_PAGE(!lrucare && PageLRU(oldpage))"),
    ("MEMSW-NOACCT", "PCG_MEMSW set with swap accounting off"),
])
def test_each_injected_bug_is_found(bug, expected):
    out = explore(RACE_SETS[INJECTIONS[bug][1]], inject=[bug])
    assert out.violation is not None and expected in out.violation
    assert out.counterexample and out.counterexample[0][:3] in ("0. ", "1. ")


def test_b1_is_an_interleaving():
    """The writeback statistic is lost only when the migration runs between the end of
    writeback's flag clear and its statistic update."""
    out = explore(RACE_SETS["writeback-vs-migrate"], inject=["B1"])
    wb, mig = 0, 1
    s = out.schedule
    assert s[0] == wb and mig in s[1:s.index(wb, 1)]
    assert out.counterexample[0].startswith("1. end-writeback #1: TestClearPageWriteback")


def test_explore_command(capsys):
    assert main(["explore", "migrate-vs-munmap"]) == 0
    assert "migrate-vs-munmap: 33 states, 6 complete schedules" in capsys.readouterr().out
    assert main(["explore", "--inject", "B4"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("replace-page-cache-vs-reclaim: ") and "violation:" in out
    assert main(["explore", "nope"]) == 2
    assert "unknown race set or bug: nope" in capsys.readouterr().err
    assert main(["explore", "--list"]) == 0
    assert "--inject B2" in capsys.readouterr().out


def test_random_walks_are_seeded_and_find_injected_bugs(capsys):
    from memcgsim.explore import explore_random

    a = explore_random(RACE_SETS["swapin-vs-reclaim"], 20, seed=3)
    b = explore_random(RACE_SETS["swapin-vs-reclaim"], 20, seed=3)
    assert a.violation is None and (a.schedules, a.states) == (b.schedules, b.states) == (
        20, a.states) and a.states > 20
    bad = explore_random(RACE_SETS["replace-page-cache-vs-reclaim"], 20, seed=1,
                         inject=["B4"])
    assert "!lrucare && PageLRU(oldpage)" in bad.violation
    assert main(["explore", "--random", "5", "--seed", "2", "reclaim-vs-munmap"]) == 0
    assert "reclaim-vs-munmap: " in capsys.readouterr().out
