"""No input crashes or hangs `memcgsim run`: one regression test per class the fuzzer found.

Each test writes a scenario file, runs the command line in-process and asserts the exit status
and the message: exit 2 with FILE:LINE:COLUMN for what the loader refuses, the exact step
outcome for what only the run can know (a task killed, a region whose mmap failed), and never
a traceback.
"""

from __future__ import annotations

import textwrap

import pytest

from memcgsim.cli import main
from memcgsim.scenario import Limits, ScenarioError, load_scenario, page_events


def run(tmp_path, capsys, text: str, *args: str, name: str = "s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text) if isinstance(text, str) else text)
    status = main(["run", *args, str(path)])
    out, err = capsys.readouterr()
    return status, out, err, str(path)


HEAD = """\
    format: 1
    machine: {kernel: "6.12", cgroup: v2, memory: 64MiB}
    cgroups: {/a: {memory.max: 4MiB}}
    steps:
      - spawn: {task: A, cgroup: /a}
"""


# ---------------------------------------------------------------- the runner checks what exists


def test_fork_of_a_killed_task_is_skipped_and_its_child_never_exists(tmp_path, capsys):
    status, out, err, _ = run(tmp_path, capsys, HEAD + """\
      - anon: {task: A, size: 16MiB, as: buf}
      - fork: {task: A, child: B}
      - touch: {task: B, region: buf}
      - expect: {task: B, state: alive}
      - expect: {task: A, state: killed}
    """, "--check")
    assert status == 1, err
    assert "step 2 (line 6): anon ok: memcg OOM killer killed A" in out
    assert "step 3 (line 7): fork skipped: task A was killed" in out
    assert ("step 4 (line 8): touch skipped: task B does not exist (the step that made it "
            "did not run)") in out
    assert "FAIL " in out and "task B = never created (expected alive)" in out
    assert "1 of 2 expectations hold; exit 1" in out


def test_touch_of_a_region_whose_mmap_failed_is_skipped(tmp_path, capsys):
    status, out, err, _ = run(tmp_path, capsys, HEAD + """\
      - write: {task: A, file: /x, size: 0}
      - mmap: {task: A, file: /x, as: m, may_fail: true}
      - expect: {step_error: EINVAL}
      - touch: {task: A, region: m}
      - unmap: {task: A, region: m}
      - expect: {task: A, state: alive}
    """, "--check")
    assert status == 0, out + err
    assert "step 3 (line 7): mmap error: EINVAL" in out
    assert ("step 5 (line 9): touch skipped: task A has no region m (the step that made it "
            "did not run or failed)") in out
    assert "step 6 (line 10): unmap skipped" in out
    assert "2 of 2 expectations hold; exit 0" in out


def test_steps_of_an_exited_task_are_skipped(tmp_path, capsys):
    status, out, err, _ = run(tmp_path, capsys, """\
        format: 1
        machine: {kernel: "6.12", cgroup: v2, memory: 64MiB}
        cgroups: {/a: {}}
        steps:
          - spawn: {task: A, cgroup: /a}
          - write: {task: A, file: /f, size: 1MiB}
          - exit: {task: A}
          - read: {task: A, file: /f}
          - unlink: {file: /f}
          - expect: {cgroup: /a, memory.stat.file: 0}
    """, "--check")
    assert status == 0, out + err
    assert "step 4 (line 8): read skipped: task A was exited" in out


def test_read_of_a_file_whose_write_was_skipped(tmp_path, capsys):
    status, out, err, _ = run(tmp_path, capsys, HEAD + """\
      - spawn: {task: B, cgroup: /}
      - anon: {task: A, size: 16MiB, as: buf}
      - write: {task: A, file: /log, size: 1MiB}
      - read: {task: B, file: /log}
      - mmap: {task: B, file: /log, as: m}
      - truncate: {file: /log, size: 0}
      - unlink: {file: /log}
    """, "--check")
    assert status == 0, out + err
    assert "step 4 (line 8): write skipped: task A was killed" in out
    for line, kind in ((9, "read"), (10, "mmap"), (11, "truncate"), (12, "unlink")):
        assert (f"(line {line}): {kind} skipped: file /log does not exist (the write that "
                "made it did not run)") in out


# ---------------------------------------------------------------- numbers are bounded at load


@pytest.mark.parametrize("value, where, words", [
    ("9" * 5000, "6:34", "is too large a number"),
    ('"' + "9" * 3000 + 'KiB"', "6:34", "is larger than a 64-bit size"),
    ("1000000000000000000000000000000TiB", "6:34", "is larger than a 64-bit size"),
    (str(1 << 64), "6:34", "is too large: numbers here are at most 2**64"),
    ("-4096", "6:34", "size: a size cannot be negative"),
])
def test_huge_and_negative_sizes(tmp_path, capsys, value, where, words):
    status, out, err, path = run(tmp_path, capsys,
                                 HEAD + f"      - anon: {{task: A, as: b, size: {value}}}\n")
    assert status == 2 and out == ""
    assert err.startswith(f"{path}:{where}: "), err
    assert words in err
    assert len(err) < 400


def test_a_tolerance_on_a_huge_value(tmp_path, capsys):
    status, _, err, path = run(tmp_path, capsys, HEAD + (
        '      - expect: {cgroup: /a, memory.current: "' + "9" * 400 + ' ±5%"}\n'))
    assert status == 2 and err.startswith(f"{path}:6:") and "64-bit size" in err


@pytest.mark.parametrize("tol, words", [
    ("1e999999999%", "is not a percentage"),
    ("nan%", "is not a percentage"),
    ("101%", "must be a percent from 0 to 100"),
    ("-1%", "(not negative)"),
])
def test_bad_percentages(tmp_path, capsys, tol, words):
    status, _, err, path = run(tmp_path, capsys, HEAD + (
        f'      - expect: {{cgroup: /a, memory.current: "4MiB ±{tol}"}}\n'))
    assert status == 2 and err.startswith(f"{path}:6:") and words in err


def test_a_percentage_is_exact():
    sc = load_scenario("t.yaml", textwrap.dedent(HEAD + (
        '      - expect: {cgroup: /a, memory.current: "1000 ±2.5%"}\n')))
    (check,) = sc.steps[-1].checks
    assert (check.low, check.high) == (975, 1025)


# ---------------------------------------------------------------- YAML


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path, capsys):
    lines = ["format: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    status, out, err, path = run(tmp_path, capsys, "\n".join(lines) + "\n")
    assert status == 2 and out == ""
    assert err.startswith(f"{path}:6:5: this value expands to more than 100,000 values"), err


def test_an_alias_that_is_small_enough_is_fine(tmp_path, capsys):
    status, out, err, _ = run(tmp_path, capsys, """\
        format: 1
        machine: {kernel: "6.12", cgroup: v2, memory: 64MiB}
        cgroups: {/a: &lim {memory.max: 8MiB}, /b: *lim}
        steps:
          - spawn: {task: A, cgroup: /b}
          - expect: {cgroup: /b, memory.max: 8MiB}
    """)
    assert status == 0, err
    assert "1 of 1 expectations hold" in out


@pytest.mark.parametrize("value, words", [
    ("!!timestamp 2020-99-99x", "'2020-99-99x' is not a valid timestamp value"),
    ("!!timestamp 2020-13-45", "'2020-13-45' is not a valid timestamp value"),
    ("!!binary 'not base64!'", "not valid YAML"),
    ("!!python/object:os.system ls", "not valid YAML"),
    ("!!int x", "'x' is not a valid int value"),
])
def test_bad_tagged_values(tmp_path, capsys, value, words):
    status, _, err, path = run(tmp_path, capsys, HEAD + f"      - report: {{label: {value}}}\n")
    assert status == 2 and err.startswith(f"{path}:6:"), err
    assert words in err


def test_a_list_where_a_version_belongs_is_shown_as_data(tmp_path, capsys):
    text = 'format: 1\nmachine: {kernel: ["6.12"]}\nsteps: [{sync: {}}]\n'
    first = run(tmp_path, capsys, text)
    assert first[0] == 2
    assert first[2] == (f"{first[3]}:2:19: kernel ['6.12']: want \"3.17\", \"6.1\" or "
                        "\"6.12\"\n")
    assert run(tmp_path, capsys, text) == first        # the same on every run


@pytest.mark.parametrize("key, value", [
    ("task", "A" * 100_000),
    ("task", "B" * 300),
])
def test_long_names_are_not_echoed_whole(tmp_path, capsys, key, value):
    status, _, err, path = run(tmp_path, capsys,
                               f"format: 1\nsteps:\n  - spawn: {{{key}: {value}, cgroup: /}}\n")
    assert status == 2 and err.startswith(f"{path}:3:") and len(err) < 300, err[:300]


def test_a_label_must_be_text(tmp_path, capsys):
    status, _, err, path = run(tmp_path, capsys, HEAD + "      - report: {label: [a, b]}\n")
    assert status == 2
    assert err == f"{path}:6:21: report.label: want a text, not ['a', 'b']\n"


# ---------------------------------------------------------------- bounds before the run


def test_cpus_beyond_nr_cpus(tmp_path, capsys):
    status, _, err, path = run(tmp_path, capsys, """\
        format: 1
        machine: {kernel: "6.12", cgroup: v2, memory: 256MiB, cpus: 1000000000}
        steps: [{sync: {}}]
    """)
    assert status == 2
    assert err == (f"{path}:2:61: machine.cpus: want a whole number from 1 to 8192, not "
                   "1000000000\n")


def test_a_terabyte_write_is_over_the_page_event_limit(tmp_path, capsys):
    text = """\
        format: 1
        machine: {kernel: "6.12", cgroup: v2, memory: 256MiB}
        steps:
          - spawn: {task: A, cgroup: /}
          - write: {task: A, file: /big, size: 1TiB}
    """
    status, _, err, path = run(tmp_path, capsys, text)
    assert status == 2
    assert err == (f"{path}:5:5: the steps up to this write name about 268,435,456 page "
                   "events: over the limit of 4,194,304 page events (docs/limits.md; raise "
                   "it with --limit page-events=N)\n")


def test_limits_can_be_raised_and_lowered(tmp_path, capsys):
    text = HEAD + "      - anon: {task: A, size: 1MiB, as: b}\n"
    assert run(tmp_path, capsys, text, "--limit", "page-events=256")[0] == 0
    status, _, err, path = run(tmp_path, capsys, text, "--limit", "page-events=255")
    assert status == 2 and err.startswith(f"{path}:6:5: the steps up to this anon name "
                                          "about 256 page events: over the limit of 255")
    status, _, err, path = run(tmp_path, capsys, text, "--limit", "tasks=0")
    assert status == 2 and err == ("memcgsim run: --limit tasks=0: want tasks=N, N a whole "
                                   "number >= 1\n")
    status, _, err, path = run(tmp_path, capsys, text, "--limit", "memory=1")
    assert status == 2 and "unknown limit 'memory': want one of pages, cpus, cgroups, " \
                           "tasks, page-events" in err


@pytest.mark.parametrize("limit, value, where, words", [
    ("pages", 16383, "2:47", "memory and swap make 16,384 pages: over the limit of 16,383"),
    ("cpus", 1, "2:60", "2 cpus: over the limit of 1 cpus"),
    ("cgroups", 1, "3:19", "2 cgroups: over the limit of 1 cgroups"),
    ("tasks", 1, "6:5", "this fork makes 2 tasks: over the limit of 1 tasks"),
])
def test_each_limit(limit, value, where, words):
    text = textwrap.dedent("""\
        format: 1
        machine: {kernel: "6.12", cgroup: v2, memory: 64MiB, cpus: 2}
        cgroups: {/a: {}, /b: {}}
        steps:
          - spawn: {task: A, cgroup: /a}
          - fork: {task: A, child: B}
    """)
    with pytest.raises(ScenarioError) as e:
        load_scenario("t.yaml", text, limits=Limits().raised(limit, value))
    assert str(e.value).startswith(f"t.yaml:{where}: {words}"), str(e.value)


def test_page_events_per_step():
    sc = load_scenario("t.yaml", textwrap.dedent("""\
        format: 1
        machine: {kernel: "6.12", cgroup: v2, memory: 64MiB}
        steps:
          - spawn: {task: A, cgroup: /}
          - anon: {task: A, size: 1MiB, as: b}
          - write: {task: A, file: /f, size: 2MiB}
          - mmap: {task: A, file: /f, as: m}
          - fork: {task: A, child: B}
          - touch: {task: B, region: m}
          - truncate: {file: /f, size: 4MiB}
          - read: {task: A, file: /f}
          - sync: {}
          - unmap: {task: A, region: b}
          - exit: {task: A}
    """))
    assert page_events(sc) == [0, 256, 512, 512, 768, 512, 1024, 1024, 1024, 256, 512]


# ---------------------------------------------------------------- found late, now found at load


@pytest.mark.parametrize("step, where, message", [
    ("set: {cgroup: /, memory.max: 1M}", "6:22",
     "the root cgroup has no memory.max (only its children have it)"),
    ("expect: {cgroup: /, memory.current: 0}", "6:25",
     "the root cgroup has no memory.current (only its children have it)"),
    ("expect: {cgroup: /, memory.events.max: 0}", "6:25",
     "the root cgroup has no memory.events (only its children have it)"),
    ("open: {cgroup: /, file: memory.peak, as: p}", "6:29",
     "the root cgroup has no memory.peak (only its children have it)"),
    ("expect: {step_error: [EINVAL]}", "6:26",
     "step_error: want an errno name like EINVAL or EBUSY, not ['EINVAL']"),
])
def test_root_files_and_step_errors_are_checked_at_load(tmp_path, capsys, step, where,
                                                        message):
    status, _, err, path = run(tmp_path, capsys, HEAD + f"      - {step}\n")
    assert status == 2
    assert err.startswith(f"{path}:{where}: {message}"), err


def test_the_root_files_that_exist_work(tmp_path, capsys):
    status, out, err, _ = run(tmp_path, capsys, HEAD + """\
      - anon: {task: A, size: 1MiB, as: b}
      - expect: {cgroup: /, memory.stat.anon: 1MiB, cgroup.subtree_control: memory}
      - set: {cgroup: /, memory.reclaim: 1M, may_fail: true}
      - expect: {step_error: EAGAIN}
    """, "--check")
    assert status == 0, out + err
    assert "3 of 3 expectations hold; exit 0" in out


# ---------------------------------------------------------------- output files


def test_plot_never_overwrites_without_force(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "p.png"
    out.write_bytes(b"mine")
    status, _, err, _ = run(tmp_path, capsys, HEAD, "--plot", str(out))
    assert status == 2 and out.read_bytes() == b"mine"
    assert err == f"memcgsim run: --plot {out}: exists: not overwritten (use --force to " \
                  "replace it)\n"
    status, _, err, _ = run(tmp_path, capsys, HEAD, "--plot", str(out), "--force")
    assert status == 0 and out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("target, words", [
    ("nodir/p.png", "no folder"),
    ("p.xyz", "unknown picture format 'xyz': want one of .png, .svg"),
    ("p", "no file extension"),
    (".", "is a folder"),
])
def test_plot_target_problems_are_exit_2_before_the_run(tmp_path, capsys, target, words):
    status, out, err, _ = run(tmp_path, capsys, HEAD, "--plot", str(tmp_path / target))
    assert status == 2 and out == ""
    assert words in err


def test_plot_labels_are_plain_text(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "p.svg"
    status, _, err, _ = run(tmp_path, capsys, """\
        format: 1
        machine: {kernel: "6.12", cgroup: v2, memory: 64MiB}
        cgroups: {"/a$x^{$b": {memory.max: 8MiB}}
        steps:
          - spawn: {task: A, cgroup: "/a$x^{$b"}
          - anon: {task: A, size: 4MiB, as: buf}
    """, "--plot", str(out))
    assert status == 0, err
    assert "/a$x^{$b" in out.read_text()


# ---------------------------------------------------------------- reports of any cgroup


def test_a_report_of_the_v2_root(tmp_path, capsys):
    text = """\
        format: 1
        machine: {kernel: "6.12", cgroup: v2, memory: 64MiB}
        steps:
          - spawn: {task: A, cgroup: /}
          - anon: {task: A, size: 1MiB, as: b}
          - report: {label: r, cgroups: [/]}
    """
    status, out, err, _ = run(tmp_path, capsys, text)
    assert status == 0, err
    assert "  /                             -      1.00M      0.00M      0.00M      0.00M  -\n" \
        in out
    status, out, err, _ = run(tmp_path, capsys, text, "--prometheus")
    assert status == 0 and out == "" and err == ""


def test_prometheus_escapes_paths_and_labels(tmp_path, capsys):
    status, out, err, _ = run(tmp_path, capsys, """\
        format: 1
        machine: {kernel: "6.12", cgroup: v2, memory: 64MiB}
        cgroups: {'/a"b\\c': {}}
        steps:
          - spawn: {task: A, cgroup: '/a"b\\c'}
          - report: {label: "x\\ny\\"", cgroups: ['/a"b\\c']}
    """, "--prometheus")
    assert status == 0, err
    assert ('container_memory_rss{cgroup="/a\\"b\\\\c",report="x\\ny\\""} 0\n') in out


@pytest.mark.parametrize("kernel, cgroup, key, want", [
    ("6.12", "v2", "memory.numa_stat.anon", 3 << 20),
    ("6.1", "v1", "memory.numa_stat.total", 768),
    ("6.1", "v1", "memory.numa_stat.anon", 768),
])
def test_numa_stat_keys(tmp_path, capsys, kernel, cgroup, key, want):
    status, out, err, _ = run(tmp_path, capsys, f"""\
        format: 1
        machine: {{kernel: "{kernel}", cgroup: {cgroup}, memory: 64MiB, nodes: 2}}
        cgroups: {{/a: {{}}}}
        steps:
          - spawn: {{task: A, cgroup: /a, node: 1}}
          - anon: {{task: A, size: 3MiB, as: b}}
          - expect: {{cgroup: /a, {key}: {want}}}
    """)
    assert status == 0, out + err
