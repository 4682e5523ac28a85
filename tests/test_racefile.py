"""Race files: the examples load and run, and each kind of mistake is named with its file,
line and column, exit status 2 and no traceback."""

import pathlib

import pytest

from memcgsim.cli import main
from memcgsim.explore import explore
from memcgsim.racefile import RaceFileError, load_race_file
from memcgsim.races import RACE_SETS

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples" / "races"

GOOD = """\
race: 1
name: mine
machine: {memory_pages: 1024, nodes: 2}
setup:
  - mkdir: /a
  - spawn: {task: T, cgroup: /a}
  - create: /data/f
  - write: {task: T, file: /data/f, pages: 1}
  - sync:
  - mmap_file: {task: T, file: /data/f, name: v, pages: 1}
  - touch: {task: T, vma: v, write: false}
paths:
  - {path: migrate, page: {file: /data/f, index: 0}, node: 1, task: T}
  - {path: truncate, file: /data/f}
"""


def test_a_race_file_explores_as_the_built_in_set_does():
    mine = explore(load_race_file("mine.yaml", GOOD))
    builtin = explore(RACE_SETS["migrate-vs-truncate"])
    assert mine.violation is None
    assert (mine.states, mine.transitions, mine.finals) == (builtin.states,
                                                            builtin.transitions,
                                                            builtin.finals)
    bug = explore(load_race_file("mine.yaml", GOOD), inject=["B2"])
    assert bug.violation == "[underflow] /a stat mapped_file = -1"


def test_example_race_files_run_clean(capsys):
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) == 2
    assert main(["explore", *map(str, files)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("my-migrate-vs-truncate: 123 states, 8 complete schedules, 180 steps")
    assert "\nswapin-vs-reclaim-vs-attach: 9984 states, " in out


def test_example_race_file_with_an_injected_bug(capsys):
    assert main(["explore", "--inject", "B2", str(EXAMPLES / "migrate-vs-truncate.yaml")]) == 1
    out = capsys.readouterr().out
    assert "  violation: [underflow] /a stat mapped_file = -1\n" in out
    assert "  7. truncate #2: releases page-table lock of mm 1\n" in out


def _replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


@pytest.mark.parametrize("text,where,message", [
    (_replace("race: 1\n", ""), "1:1", "missing 'race: 1' (the format version)"),
    (_replace("race: 1", "race: 2"), "1:7", "race format 2 is not known: this version reads 1"),
    (_replace("name: mine", "nmae: mine"), "2:1",
     "unknown top-level key 'nmae' (did you mean 'name'?)"),
    (_replace("memory_pages: 1024", "memory_pages: lots"), "3:25",
     "machine memory_pages must be a int, not 'lots'"),
    (_replace("nodes: 2}", "nodes: 2, numa: 1}"), "3:41", "unknown machine key 'numa'"),
    (_replace("  - mkdir: /a", "  - mkdri: /a"), "5:5",
     "unknown setup step 'mkdri' (did you mean 'mkdir'?)"),
    (_replace("{task: T, cgroup: /a}", "{task: T, group: /a}"), "6:22",
     "setup step spawn has no argument 'group' (did you mean 'cgroup'?); it takes task, "
     "cgroup, node"),
    (_replace("{task: T, file: /data/f, pages: 1}", "{task: T, file: /data/f}"), "8:12",
     "setup step write needs pages"),
    (_replace("{task: T, vma: v, write: false}", "{task: U, vma: v, write: false}"), "11:5",
     "setup step touch: unknown task 'U' (spawn it in the setup)"),
    (_replace("{path: truncate, file: /data/f}", "{path: truncate, file: /data/g}"), "14:5",
     "path truncate: unknown file '/data/g'"),
    (_replace("{path: truncate", "{path: truncat"), "14:12",
     "unknown path 'truncat' (did you mean 'truncate'?)"),
    (_replace("index: 0}, node: 1", "index: 3}, node: 1"), "13:5",
     "path migrate: no page cached at index 3 of /data/f"),
    (_replace("  - {path: truncate, file: /data/f}\n",
              "  - {path: truncate, file: /data/f}\n" * 4), "13:3", "5 paths: a race runs 1 to 4"),
    (_replace("  - {path: truncate, file: /data/f}\n",
              "  - {path: truncate, file: /data/f}\n" * 2), "15:5",
     "path label 'truncate' is used twice: give each a `label`"),
    (_replace("paths:", "paths: ["), "13:3", "not valid YAML: expected the node content"),
    (GOOD + "expect: {cgroup: /a}\n", "15:9", "expect must be a list of"),
    (GOOD + "expect:\n  - {returns: {migrat: [0]}}\n", "16:16",
     "no path is labelled 'migrat' (did you mean 'migrate'?)"),
    (GOOD + "expect:\n  - {returns: {migrate: [zero]}}\n", "16:25",
     "migrate: a path returns a number (or null)"),
    (GOOD + "expect:\n  - {cgroup: /b, memory.usage_in_bytes: 0}\n", "16:14",
     "cgroup /b does not exist after the setup"),
    (GOOD + "expect:\n  - {cgroup: /a, memory.current: 0}\n", "16:18",
     "/a has no file memory.current"),
    (GOOD + "expect:\n  - {cgroup: /a, memory.stat.nope: 0}\n", "16:18",
     "/a memory.stat.nope: not a number in this kernel's memory.stat"),
    (GOOD + "expect:\n  - {cgroup: /a, memory.stat.cache: lots}\n", "16:37",
     "memory.stat.cache: "),
    (GOOD + "expect:\n  - {cgroup: /a}\n", "16:5", "name at least one file to check"),
    (GOOD + "expect:\n  - {when: end}\n", "16:5", "an expectation is"),
])
def test_mistakes_are_named_with_file_and_line(text, where, message, tmp_path, capsys):
    with pytest.raises(RaceFileError) as e:
        load_race_file("race.yaml", text)
    assert str(e.value).startswith(f"race.yaml:{where}: {message}"), str(e.value)
    f = tmp_path / "race.yaml"
    f.write_text(text)
    assert main(["explore", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"memcgsim: {f}:{where}: {message}") and "Traceback" not in err


def test_a_missing_file(capsys):
    assert main(["explore", "/nonexistent/race.yaml"]) == 2
    assert ("memcgsim: /nonexistent/race.yaml:1:1: cannot read the file: No such file or "
            "directory") in capsys.readouterr().err


def test_expectations_hold_at_the_end_of_every_schedule(capsys):
    """expect: is checked at each complete schedule's end; one that fails is a violation with
    the schedule that led there."""
    ok = load_race_file("mine.yaml", GOOD + """\
expect:
  - {returns: {migrate: [0, 1], truncate: null}}
  - {cgroup: /a, memory.stat.cache: 0, memory.stat.mapped_file: 0}
""")
    out = explore(ok)
    assert out.violation is None and out.schedules == 8
    assert {r[0] for r in out.results} == {0, 1}
    wrong = load_race_file("mine.yaml", GOOD + """\
expect:
  - {cgroup: /a, memory.stat.cache: 4096}
""")
    out = explore(wrong)
    assert out.violation == "[expect] /a memory.stat.cache is 0, not 4096"
    # the shortest schedule to an end: the truncation first, then the migration finds no page
    assert out.counterexample[-2:] == ["7. truncate #7: returns None",
                                       "8. migrate  #1: returns 1"]
    only_moved = load_race_file("mine.yaml", GOOD + """\
expect:
  - {returns: {migrate: 0}}
""")
    out = explore(only_moved)
    assert out.violation == "[expect] migrate returned 1, not 0"


# ------------------------------------------------------------------------------------------
# what tests/test_racefile_fuzz.py found: each crash class (a traceback, a hang, an internal
# object's repr or an unprintable name in the output) and the smallest input that showed it

LONG_RACE = """\
race: 1
machine: {memory_pages: 1024}
setup:
  - mkdir: /a
  - spawn: {task: T, cgroup: /a}
  - write: {task: T, file: /data/f, pages: 256}
  - sync:
paths:
  - {path: truncate, file: /data/f}
"""


@pytest.mark.parametrize("text,where,message", [
    # an internal Node's repr quoted in a message
    pytest.param(_replace("race: 1", "race: {a: 1}"), "1:7",
                 "race format {'a': 1} is not known: this version reads 1", id="node-repr"),
    pytest.param(_replace("memory_pages: 1024", "memory_pages: [1]"), "3:25",
                 "machine memory_pages must be a int, not [1]", id="node-repr-machine"),
    pytest.param(_replace("{path: truncate,", "{path: truncate, label: {a: 1},"), "14:29",
                 "path label: want a name, not {'a': 1}", id="node-repr-label"),
    # an unbounded machine: MemoryError, or a hang building a CPU's stock at a time
    pytest.param(_replace("memory_pages: 1024", "memory_pages: 1000000000000"), "3:25",
                 "machine memory_pages must be from 512 to 4096 on a race machine",
                 id="huge-memory"),
    pytest.param(_replace("nodes: 2", "nodes: 2, cpus: 100000000"), "3:47",
                 "machine cpus must be from 1 to 16 on a race machine", id="many-cpus"),
    pytest.param(_replace("nodes: 2", "nodes: 2, swap_pages: 10000000000"), "3:53",
                 "machine swap_pages must be from 0 to 4096", id="huge-swap"),
    # an argument of the wrong kind reaching the model (AttributeError, ValueError, TypeError
    # or IndexError out of the setup or, later, out of the explorer)
    pytest.param(_replace("mkdir: /a", "mkdir: 5"), "5:12",
                 "setup step mkdir path: want a name, not 5", id="arg-type"),
    pytest.param(_replace("index: 0", "index: x"), "13:50",
                 "path migrate page index: want a whole number from 0 to 4096, not 'x'",
                 id="page-index-type"),
    pytest.param(_replace("page: {file: /data/f, index: 0}", "page: 5000"), "13:27",
                 "path migrate page: want {file: F, index: I} or {vma: V, offset: I}, not 5000",
                 id="raw-pfn"),
    pytest.param(_replace("node: 1", "node: 7"), "13:60",
                 "path migrate node: want a whole number from 0 to 1, not 7", id="path-node"),
    pytest.param(_replace("file: /data/f}\n", "file: /data/f, pages: x}\n"), "14:44",
                 "path truncate pages: want a whole number from 0 to 4096, not 'x'",
                 id="path-pages-type"),
    pytest.param(_replace("{path: truncate,", "{path: [truncate],"), "14:12",
                 "unknown path ['truncate']", id="unhashable-path"),
    pytest.param(_replace("nodes: 2", "nodes: 1").replace(", node: 1, task: T", ", task: T"),
                 "13:5", "path migrate: node defaults to 1, which this machine does not have",
                 id="default-node"),
    # sizes that hang the setup, or a race too long for the explorer's recursion
    pytest.param(_replace("pages: 1}", "pages: 100000000}"), "8:44",
                 "setup step write pages: want a whole number from 0 to 4096", id="huge-write"),
    pytest.param(_replace("  - sync:\n", "  - reclaim_file: {file: /data/f, pages: 10000000}\n"),
                 "9:42", "setup step reclaim_file pages: want a whole number from 0 to 4096",
                 id="huge-reclaim"),
    pytest.param(_replace("  - sync:\n", "  - write: {task: T, file: /data/g, pages: 4096}\n" * 3),
                 "10:5", "setup step write: the setup handles more than 8192 pages in all",
                 id="setup-budget"),
    pytest.param(_replace("  - sync:\n", "  - sync:\n" * 70), "69:5",
                 "76 setup steps: a race's setup takes at most 64", id="many-steps"),
    pytest.param(LONG_RACE, "9:5", "path truncate: the paths take more than 400 steps run one "
                 "after another", id="long-race"),
    # a name the output cannot print, a value quoted whole, a VMA named by its address
    pytest.param(_replace("{path: truncate,", '{path: truncate, label: "\\ud800",'), "14:29",
                 "path label: '\\ud800' has a character that cannot be printed",
                 id="unprintable-label"),
    pytest.param(_replace("name: mine", "name: " + "x" * 300), "2:7",
                 "name: a name of 300 characters: at most 255", id="long-name"),
    pytest.param(_replace("  - touch: {task: T, vma: v, write: false}",
                          "  - spawn: U\n  - touch: {task: U, vma: v}"), "12:5",
                 "setup step touch: VMA v is not mapped in task U", id="vma-repr"),
    # a file the cgroup lists but cannot read: an error with no file:line:col, exit 1
    pytest.param(_replace("nodes: 2}", "nodes: 2, profile: '6.12'}").replace(
        "  - spawn:", "  - mkdir: /a/b\n  - spawn:") + "expect:\n  - {cgroup: /a/b, "
        "memory.stat.file: 0}\n", "17:20", "/a/b memory.stat.file: /a/b/memory.stat: no such "
        "file: the parent has not enabled +memory in cgroup.subtree_control",
        id="unreadable-expect"),
    # what used to run as if it were right
    pytest.param(_replace("  - sync:\n",
                          "  - set: {cgroup: /a, file: memory.limit_in_bytes, value: lots}\n"),
                 "9:5", "setup step set: writing 'lots' to /a memory.limit_in_bytes fails with "
                 "EINVAL", id="failed-set"),
    pytest.param(_replace("{path: truncate, file: /data/f}",
                          "{path: fault, task: T, vma: v, offset: 5}"), "14:5",
                 "path fault: offset 5 is outside VMA v (1 page)", id="fault-offset"),
])
def test_what_the_fuzzer_found_is_a_mistake_named_where_it_is(text, where, message, tmp_path,
                                                              capsys):
    """Each used to end in a traceback, a hang, a repr of an internal object or unprintable
    output (or to run as if it were right); now exit 2 with file:line:col, and nothing runs
    (the default --max-states: the long race used to overflow the explorer's recursion)."""
    test_mistakes_are_named_with_file_and_line(text, where, message, tmp_path, capsys)


def test_a_setup_step_takes_a_page_alone():
    """`reclaim: {vma: V, offset: I}`: the step's one required argument given alone."""
    text = """\
race: 1
machine: {memory_pages: 1024, swap_pages: 16}
setup:
  - mkdir: /a
  - spawn: {task: T, cgroup: /a}
  - mmap_anon: {task: T, pages: 2, name: v}
  - touch: {task: T, vma: v}
  - reclaim: {vma: v, offset: 1}
paths:
  - {path: fault, task: T, vma: v, offset: 1}
"""
    out = explore(load_race_file("race.yaml", text))
    assert out.violation is None and {r[0] for r in out.results} == {4}    # a major fault
    with pytest.raises(RaceFileError, match="race.yaml:8:5: setup step reclaim: unknown VMA"):
        load_race_file("race.yaml", text.replace("{vma: v, offset: 1}", "{vma: w}"))


def test_every_argument_has_a_kind():
    """Each argument of the vocabulary is checked for its kind (a name, a page count, a node,
    ...) before it reaches the model; a new one needs its kind in racefile.ARG_KINDS."""
    from memcgsim.racefile import ARG_KIND_OF, ARG_KINDS
    from memcgsim.races import PATHS, SETUP_STEPS

    args = {a for _, req, opt in SETUP_STEPS.values() for a in req + opt}
    args |= {a for spec in PATHS.values() for a in spec.required + spec.optional}
    assert args <= set(ARG_KINDS)
    assert {step for step, _ in ARG_KIND_OF} <= set(SETUP_STEPS) | set(PATHS)
