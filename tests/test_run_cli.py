"""`memcgsim run FILE... [--json] [--check]` end to end, through memcgsim.cli.main.

The exact values in SMALL come from the 3.17 charge path (mm/memcontrol.py): a charge of one page
that the per-CPU stock cannot satisfy charges a batch of CHARGE_BATCH = 32 pages to res and memsw
and keeps the 31 it did not need in the stock (refill_stock); the next 31 one-page charges consume
the stock (consume_stock) and touch no counter. Uncharges go straight to the counters, the stock
stays. So:

    anon 1MiB   256 faults = 8 batches exactly        rss 1MiB      usage 1MiB (stock 0)
    anon 4KiB   1 fault: a new batch, 31 stocked       rss 257 pages usage 288 pages = 1179648
    unmap buf   256 pages uncharged                    rss 1 page    usage 32 pages = 131072
    write 64KiB 16 page-cache pages from the stock     cache 16 pages, usage still 131072
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from memcgsim.cli import main

ROOT = Path(__file__).resolve().parent.parent

SMALL = """\
    # 3.17 / v1: exact charges with the 32-page per-CPU stock
    format: 1
    machine:
      kernel: "3.17"
      cgroup: v1
      memory: 64MiB
    cgroups:
      /web:
        memory.limit_in_bytes: 16MiB
    steps:
      - spawn: {task: A, cgroup: /web}
      - anon: {task: A, size: 1MiB, as: buf}
      - expect:
          cgroup: /web
          memory.stat.rss: 1MiB
          memory.usage_in_bytes: 1MiB
          memory.memsw.usage_in_bytes: 1MiB
      - anon: {task: A, size: 4KiB, as: one}
      - report: {label: after-anon, cgroups: [/web]}
      - expect:
          cgroup: /web
          memory.stat.rss: 1052672
          memory.usage_in_bytes: 1179648
          memory.max_usage_in_bytes: 1179648
          memory.stat.pgpgin: 257
      - unmap: {task: A, region: buf}
      - write: {task: A, file: /data/log, size: 64KiB}
      - expect:
          cgroup: /web
          memory.stat.rss: 4KiB
          memory.stat.cache: 64KiB
          memory.usage_in_bytes: 131072
          memory.stat.pgpgout: 256
          memory.failcnt: 0
      - expect: {task: A, state: alive}
    """
SMALL_CHECKS = 13


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["run", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_exit_0_when_every_expectation_holds(tmp_path, capsys):
    path = write(tmp_path, "small.yaml", SMALL)
    status, out, err = run(capsys, path)
    assert status == 0, out
    assert err == ""
    assert "FAIL" not in out
    lines = out.splitlines()
    assert lines[0] == (f"== {path}: kernel 3.17, cgroup v1, memory 64.00M, swap 0.00M, "
                        "1 cpu(s), 1 node(s)")
    assert lines[-1] == f"{SMALL_CHECKS} of {SMALL_CHECKS} expectations hold; exit 0"
    assert f"ok   {path}:23:30: /web memory.usage_in_bytes = 1179648 (expected 1179648)" in lines
    assert f"ok   {path}:32:30: /web memory.usage_in_bytes = 131072 (expected 131072)" in lines
    assert f"ok   {path}:35:5: task A = alive (expected alive)" in lines


def test_report_prints_the_cgroup_files(tmp_path, capsys):
    path = write(tmp_path, "small.yaml", SMALL)
    status, out, _ = run(capsys, path)
    assert status == 0
    lines = out.splitlines()
    assert "-- report after-anon (line 19)" in lines
    base = "/sys/fs/cgroup/memory/web/"
    for name, value in (("memory.usage_in_bytes", "1179648"),
                        ("memory.max_usage_in_bytes", "1179648"),
                        ("memory.memsw.usage_in_bytes", "1179648"),
                        ("memory.limit_in_bytes", "16777216"),
                        ("memory.failcnt", "0"),
                        ("memory.use_hierarchy", "0")):
        i = lines.index(f"# {base}{name}")
        assert lines[i + 1] == value, name
    i = lines.index(f"# {base}memory.stat")
    end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("# "))
    stat = dict(line.split() for line in lines[i + 1:end])
    assert stat["rss"] == "1052672" and stat["cache"] == "0" and stat["pgpgin"] == "257"
    i = lines.index(f"# {base}memory.numa_stat")
    assert lines[i + 1] == "total=257 N0=257"
    assert lines[i + 3] == "anon=257 N0=257"


def test_exit_1_when_an_expectation_fails(tmp_path, capsys):
    path = write(tmp_path, "fail.yaml", """\
        format: 1
        machine: {kernel: "3.17", cgroup: v1, memory: 64MiB}
        cgroups: {/web: {}}
        steps:
          - spawn: {task: A, cgroup: /web}
          - anon: {task: A, size: 1MiB, as: buf}
          - expect: {cgroup: /web, memory.stat.rss: 2MiB, memory.usage_in_bytes: 1MiB}
          - expect: {cgroup: /web, memory.stat.rss: {min: 2MiB}}
          - expect: {task: A, state: exited}
        """)
    status, out, err = run(capsys, path)
    assert status == 1
    assert err == ""
    lines = out.splitlines()
    assert f"FAIL {path}:7:45: /web memory.stat.rss = 1048576 (expected 2MiB)" in lines
    assert f"ok   {path}:7:74: /web memory.usage_in_bytes = 1048576 (expected 1MiB)" in lines
    assert f"FAIL {path}:8:45: /web memory.stat.rss = 1048576 (expected >= 2097152)" in lines
    assert f"FAIL {path}:9:5: task A = alive (expected exited)" in lines
    assert lines[-1] == "1 of 4 expectations hold; exit 1"


def test_exit_1_when_a_step_fails(tmp_path, capsys):
    path = write(tmp_path, "stepfail.yaml", """\
        format: 1
        machine: {kernel: "3.17", cgroup: v1, memory: 64MiB}
        cgroups: {/web: {}}
        steps:
          - spawn: {task: A, cgroup: /web}
          - set: {cgroup: /web, memory.limit_in_bytes: garbage}
          - expect: {cgroup: /web, memory.usage_in_bytes: 0}
        """)
    status, out, err = run(capsys, path)
    assert status == 1
    assert err == ""
    lines = out.splitlines()
    assert "step 2 (line 6): set error: EINVAL" in lines
    assert f"FAILED: {path}:6:5: set failed with EINVAL" in lines
    # the run stopped at the failed step: the expectation after it was never checked
    assert lines[-1] == "0 of 0 expectations hold; exit 1"


def test_may_fail_records_the_error_and_goes_on(tmp_path, capsys):
    path = write(tmp_path, "mayfail.yaml", """\
        format: 1
        machine: {kernel: "3.17", cgroup: v1, memory: 64MiB}
        cgroups: {/web: {}}
        steps:
          - spawn: {task: A, cgroup: /web}
          - set: {cgroup: /web, memory.limit_in_bytes: garbage}
            may_fail: true
          - expect: {step_error: EINVAL}
          - set: {cgroup: /web, memory.limit_in_bytes: 8MiB}
          - expect: {step_error: none}
          - expect: {cgroup: /web, memory.limit_in_bytes: 8MiB}
        """)
    status, out, err = run(capsys, path)
    assert status == 0, out
    assert err == ""
    lines = out.splitlines()
    assert "step 2 (line 6): set error: EINVAL" in lines
    assert f"ok   {path}:8:5: step_error = EINVAL (expected EINVAL)" in lines
    assert f"ok   {path}:10:5: step_error = none (expected none)" in lines
    assert f"ok   {path}:11:51: /web memory.limit_in_bytes = 8388608 (expected 8MiB)" in lines
    assert lines[-1] == "3 of 3 expectations hold; exit 0"


INVALID = """\
    format: 1
    machine: {kernel: "3.17", cgroup: v1, memory: 64MiB}
    cgroups: {/web: {}}
    steps:
      - spawn: {task: A, cgroup: /web}
      - spwan: {task: B, cgroup: /web}
    """


def test_exit_2_for_an_invalid_file(tmp_path, capsys):
    path = write(tmp_path, "invalid.yaml", INVALID)
    status, out, err = run(capsys, path)
    assert status == 2
    assert out == ""
    assert err == f"{path}:6:5: unknown step 'spwan' (did you mean 'spawn'?)\n"
    assert "Traceback" not in err


def test_exit_2_when_one_of_two_files_is_invalid_and_nothing_runs(tmp_path, capsys):
    good = write(tmp_path, "good.yaml", SMALL)
    bad = write(tmp_path, "bad.yaml", INVALID)
    for argv in ((good, bad), (bad, good), ("--json", good, bad)):
        status, out, err = run(capsys, *argv)
        assert status == 2, argv
        assert out == "", argv          # the good file did not run either
        assert err == f"{bad}:6:5: unknown step 'spwan' (did you mean 'spawn'?)\n"


def test_every_invalid_file_is_named(tmp_path, capsys):
    bad1 = write(tmp_path, "bad1.yaml", INVALID)
    bad2 = write(tmp_path, "bad2.yaml", "format: 2\n")
    status, out, err = run(capsys, bad1, bad2)
    assert status == 2
    assert out == ""
    assert err.splitlines() == [
        f"{bad1}:6:5: unknown step 'spwan' (did you mean 'spawn'?)",
        f"{bad2}:1:9: format 2 is not known: this version reads format 1"]


def test_exit_2_for_a_missing_file(tmp_path, capsys):
    path = str(tmp_path / "nope.yaml")
    status, out, err = run(capsys, path)
    assert status == 2
    assert out == ""
    assert err.startswith(f"{path}:") and "cannot read the file" in err
    assert "Traceback" not in err


def test_json(tmp_path, capsys):
    path = write(tmp_path, "small.yaml", SMALL)
    status, out, err = run(capsys, "--json", path)
    assert status == 0
    assert err == ""
    doc = json.loads(out)
    assert {"schema", "file", "machine", "steps", "reports", "checks", "exit_status"} <= set(doc)
    assert doc["schema"] == 1
    assert doc["file"] == path
    assert doc["exit_status"] == 0
    assert doc["machine"] == {"kernel": "3.17", "cgroup": "v1", "memory": 64 << 20, "swap": 0,
                              "cpus": 1, "nodes": 1, "thp": False, "swap_accounting": True,
                              "page_size": 4096}
    assert [s["kind"] for s in doc["steps"]] == [
        "spawn", "anon", "expect", "anon", "report", "expect", "unmap", "write", "expect",
        "expect"]
    assert all(s["status"] == "ok" and s["error"] is None for s in doc["steps"])
    assert [s["line"] for s in doc["steps"]] == [11, 12, 13, 18, 19, 20, 26, 27, 28, 35]
    # anon 1 MiB, anon 4 KiB, unmap of the 1 MiB region, write of 64 KiB
    assert [s["page_events"] for s in doc["steps"]] == [0, 256, 0, 1, 0, 0, 256, 16, 0, 0]
    assert all(isinstance(s["seconds"], float) and 0 <= s["seconds"] < 60 for s in doc["steps"])
    (report,) = doc["reports"]
    assert report["label"] == "after-anon" and report["line"] == 19 and report["step"] == 4
    web = report["cgroups"]["/web"]
    assert web["memory.usage_in_bytes"].strip() == "1179648"
    assert "rss 1052672" in web["memory.stat"].splitlines()
    assert len(doc["checks"]) == SMALL_CHECKS
    assert all(c["ok"] for c in doc["checks"])
    usage = [c for c in doc["checks"] if c["key"] == "memory.usage_in_bytes"]
    assert [(c["step"], c["line"], c["cgroup"], c["actual"]) for c in usage] == [
        (2, 16, "/web", 1 << 20), (5, 23, "/web", 1179648), (8, 32, "/web", 131072)]
    assert doc["failure"] is None and doc["violations"] == []


def test_json_failed_run_and_two_files(tmp_path, capsys):
    good = write(tmp_path, "good.yaml", SMALL)
    failing = write(tmp_path, "failing.yaml", SMALL.replace(
        "memory.usage_in_bytes: 131072", "memory.usage_in_bytes: 131073"))
    status, out, _ = run(capsys, "--json", good, failing)
    assert status == 1
    docs = json.loads(out)
    assert [d["file"] for d in docs] == [good, failing]
    assert [d["exit_status"] for d in docs] == [0, 1]
    (bad,) = [c for c in docs[1]["checks"] if not c["ok"]]
    assert (bad["key"], bad["expected"], bad["actual"], bad["line"]) == (
        "memory.usage_in_bytes", "131073", 131072, 32)


def test_check_flag_on_a_clean_run(tmp_path, capsys):
    path = write(tmp_path, "small.yaml", SMALL)
    status, out, err = run(capsys, "--check", path)
    assert status == 0, out
    assert err == ""
    assert "violation" not in out
    assert out.splitlines()[-1] == f"{SMALL_CHECKS} of {SMALL_CHECKS} expectations hold; exit 0"
    status, out, _ = run(capsys, "--check", "--json", path)
    assert status == 0 and json.loads(out)["violations"] == []


def test_oom_killed_task_skips_its_later_steps(tmp_path, capsys):
    path = write(tmp_path, "oom.yaml", """\
        format: 1
        machine: {kernel: "3.17", cgroup: v1, memory: 64MiB, swap: 0}
        cgroups:
          /web:
            memory.limit_in_bytes: 4MiB
        steps:
          - spawn: {task: A, cgroup: /web}
          - spawn: {task: B, cgroup: /web}
          - anon: {task: B, size: 64KiB, as: small}
          - anon: {task: A, size: 8MiB, as: buf}
          - touch: {task: A, region: buf}
          - anon: {task: A, size: 4KiB, as: more}
          - touch: {task: B, region: small}
          - expect: {task: A, state: killed}
          - expect: {task: B, state: alive}
          - expect:
              cgroup: /web
              memory.stat.rss: 64KiB
              memory.oom_control.under_oom: 0
              memory.failcnt: {min: 1}
        """)
    status, out, err = run(capsys, path)
    assert status == 0, out
    assert err == ""
    lines = out.splitlines()
    assert "step 5 (line 11): touch skipped: task A was killed" in lines
    assert "step 6 (line 12): anon skipped: task A was killed" in lines
    assert not any(line.startswith("step 7 ") for line in lines)   # B goes on
    assert f"ok   {path}:14:5: task A = killed (expected killed)" in lines
    assert f"ok   {path}:15:5: task B = alive (expected alive)" in lines
    assert f"ok   {path}:18:24: /web memory.stat.rss = 65536 (expected 64KiB)" in lines
    assert lines[-1] == "5 of 5 expectations hold; exit 0"
    status, out, _ = run(capsys, "--json", path)
    assert [s["status"] for s in json.loads(out)["steps"]] == [
        "ok", "ok", "ok", "ok", "skipped", "skipped", "ok", "ok", "ok", "ok"]


def test_time_the_example_in_a_subprocess(capsys):
    example = ROOT / "examples" / "v1-swap-under-limit.yaml"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "memcgsim", "run", str(example)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    wall = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n[timing] python -m memcgsim run {example.name}: {wall:.2f} s wall")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "7 of 7 expectations hold; exit 0"


@pytest.mark.parametrize("argv", [["run"], ["run", "--bogus", "x.yaml"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    assert ei.value.code == 2
    assert "usage:" in capsys.readouterr().err
