"""memcgsim run --trace: every memcg call of a step, with the counters it changed."""

from memcgsim.cli import main

SCENARIO = """\
format: 1
machine: {kernel: "3.17", cgroup: v1, memory: 64MiB, swap: 16MiB}
cgroups:
  /a: {}
steps:
  - spawn: {task: A, cgroup: /a}
  - anon: {task: A, size: 8KiB, as: x}
  - write: {task: A, file: /data/f, size: 4KiB}
  - truncate: {file: /data/f, size: 0}
  - unmap: {task: A, region: x}
"""


def test_trace_lists_each_call_and_its_counter_changes(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(SCENARIO)
    assert main(["run", "--trace", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    i = lines.index("step 2 (line 7): anon")
    assert lines[i + 1:i + 5] == [
        "    mem_cgroup_try_charge 0x0: /a: res 0 -> 32, memsw 0 -> 32",
        "    mem_cgroup_commit_charge 0x0: /a: rss 0 B -> 4096 B",
        "    mem_cgroup_try_charge 0x1: no counter change",
        "    mem_cgroup_commit_charge 0x1: /a: rss 4096 B -> 8192 B",
    ]
    i = lines.index("step 4 (line 9): truncate")
    assert lines[i + 1] == ("    mem_cgroup_uncharge 0x2: /a: res 32 -> 31, memsw 32 -> 31, "
                            "cache 4096 B -> 0 B")
    i = lines.index("step 5 (line 10): unmap")
    assert lines[i + 1] == ("    mem_cgroup_uncharge_list [0x0, 0x1]: /a: res 31 -> 29, "
                            "memsw 31 -> 29, rss 8192 B -> 0 B")


def test_without_trace_no_calls_are_listed(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(SCENARIO)
    assert main(["run", str(path)]) == 0
    assert "mem_cgroup_" not in capsys.readouterr().out
