"""Mistakes in scenario files (../shared/scenario-format.md) and what the loader says about them.

Every case is a small file that is wrong in exactly one way. Loading it must raise ScenarioError
(never another exception) whose text starts with `bad.yaml:LINE:COLUMN: ` (1-based, the offending
key or value) and names what is wrong. The cases in LOADER_BUGS are mistakes the loader does not
handle yet (a traceback instead of a ScenarioError, or a file accepted that should not be); they
fail until the loader (memcgsim.scenario) is fixed.
"""

from __future__ import annotations

import re
import textwrap

import pytest

from memcgsim.scenario import ScenarioError, load_scenario

PREFIX_RE = re.compile(r"^bad\.yaml:(\d+):(\d+): ")


def load_error(text: str, file: str = "bad.yaml") -> ScenarioError:
    """The ScenarioError that loading `text` raises; any other outcome fails the test."""
    try:
        load_scenario(file, textwrap.dedent(text))
    except ScenarioError as e:
        return e
    except Exception as e:  # anything but ScenarioError is a loader bug
        pytest.fail(f"load_scenario raised {type(e).__name__}: {e!s:.300} "
                    "instead of a ScenarioError")
    pytest.fail("load_scenario accepted the file")


def p(text: str, where: str, *words: str, id: str):
    """One case: the file, the expected `line:col` (or `line:` when any column will do), and
    words the message must contain."""
    prefix = f"bad.yaml:{where}" if where.endswith(":") else f"bad.yaml:{where}: "
    return pytest.param(text, prefix, words, id=id)


MISTAKES = [
    # ------------------------------------------------------------------ the file as a whole
    p("this is: not: yaml\n", "1:13", "not valid YAML", "mapping values are not allowed",
      id="not-yaml-at-all"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1
      steps: []
      """, "3:6", "not valid YAML", "expected ',' or '}'", id="unclosed-flow-mapping"),
    p("format: 1\n\tmachine: {}\n", "2:1", "not valid YAML", "'\\t'", id="tab-indentation"),
    p("", "1:1", "the file is empty", "format: 1", id="empty-file"),
    p("# only a comment\n", "1:1", "the file is empty", id="only-comments"),
    p("""\
      - format: 1
      - steps: []
      """, "1:1", "a scenario is a mapping", id="list-at-top"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      machine: {kernel: "3.17", cgroup: v1}
      steps: [sync: {}]
      """, "3:1", "duplicate key 'machine'", id="duplicate-key"),
    p("""\
      machine: {kernel: "3.17", cgroup: v1}
      steps:
        - sync: {}
      """, "1:1", "missing 'format: 1'", id="missing-format"),
    p("""\
      format: 2
      machine: {kernel: "3.17", cgroup: v1}
      steps:
        - sync: {}
      """, "1:9", "format 2 is not known", "format 1", id="format-2"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      step:
        - sync: {}
      """, "3:1", "unknown top-level key 'step'", "did you mean 'steps'?",
      id="unknown-top-level-key"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      """, "1:1", "missing 'steps'", id="missing-steps"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      steps: []
      """, "3:8", "steps: want a list of steps", id="empty-steps"),
    # ------------------------------------------------------------------ machine
    p("""\
      format: 1
      machine:
        kernel: "3.17"
        cgroup: v1
        memroy: 64MiB
      steps:
        - sync: {}
      """, "5:3", "unknown machine key 'memroy'", "did you mean 'memory'?",
      id="unknown-machine-key"),
    p("""\
      format: 1
      machine:
        kernel: "5.4"
        cgroup: v1
      steps:
        - sync: {}
      """, "3:11", "kernel '5.4'", '"3.17", "6.1" or "6.12"', id="kernel-5.4"),
    p("""\
      format: 1
      machine:
        kernel: "6.12"
        cgroup: v2
        swap_accounting: false
      steps:
        - sync: {}
      """, "5:20", "swap_accounting is a cgroup v1 setting", id="swap-accounting-on-v2"),
    p("""\
      format: 1
      machine:
        cgroup: v1
        memory: 64MiB
      steps:
        - sync: {}
      """, "3:11", "kernel 6.12 offers cgroup v2, not v1", id="missing-kernel-default-6.12-v1"),
    p("""\
      format: 1
      machine:
        kernel: "6.12"
        cgroup: v1
      steps:
        - sync: {}
      """, "4:11", "kernel 6.12 offers cgroup v2, not v1", id="cgroup-v1-with-6.12"),
    p("""\
      format: 1
      machine:
        kernel: "3.17"
        cgroup: v2
      steps:
        - sync: {}
      """, "4:11", "kernel 3.17 offers cgroup v1, not v2", id="cgroup-v2-with-3.17"),
    p("""\
      format: 1
      machine:
        kernel: "3.17"
      steps:
        - sync: {}
      """, "3:3", "kernel 3.17 offers cgroup v1, not v2", id="default-cgroup-v2-with-3.17"),
    p("""\
      format: 1
      machine:
        kernel: "3.17"
        cgroup: v3
      steps:
        - sync: {}
      """, "4:11", "cgroup: want v1 or v2, not 'v3'", id="cgroup-v3"),
    p("""\
      format: 1
      machine:
        kernel: "3.17"
        cgroup: v1
        memory: 3MiB
      steps:
        - sync: {}
      """, "5:11", "machine.memory must be a whole number of 2 MiB", id="memory-not-2MiB"),
    p("""\
      format: 1
      machine:
        kernel: "3.17"
        cgroup: v1
        memory: 256MB
      steps:
        - sync: {}
      """, "5:11", "machine.memory: '256MB' is not a size", "MiB", id="memory-unit-MB"),
    p("""\
      format: 1
      machine:
        kernel: "3.17"
        cgroup: v1
        cpus: 0
      steps:
        - sync: {}
      """, "5:9", "machine.cpus: want a whole number from 1 to 8192, not 0", id="cpus-0"),
    p("""\
      format: 1
      machine:
        kernel: "3.17"
        cgroup: v1
        thp: sometimes
      steps:
        - sync: {}
      """, "5:8", "thp: want never or always, not 'sometimes'", id="thp-sometimes"),
    p("""\
      format: 1
      machine:
        kernel: "3.17"
        cgroup: v1
        swap_accounting: "yes"
      steps:
        - sync: {}
      """, "5:20", "swap_accounting: want true or false, not 'yes'",
      id="swap-accounting-string"),
    # ------------------------------------------------------------------ cgroups
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups:
        web: {}
      steps:
        - sync: {}
      """, "4:3", "want a cgroup path like /web/worker, not 'web'", id="cgroup-without-slash"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups:
        /web/worker: {}
        /web: {}
      steps:
        - sync: {}
      """, "4:3", "/web/worker: its parent /web must be listed before it",
      id="child-before-parent"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups:
        /:
          memory.limit_in_bytes: 1GiB
      steps:
        - sync: {}
      """, "4:3", "the root cgroup exists already", id="configure-root"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups:
        /web:
          memory.max: 30MiB
      steps:
        - sync: {}
      """, "5:5", "memory.max is a cgroup v2 file", "uses cgroup v1", id="v2-file-in-cgroups"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups:
        /web:
          memory.limit_in_byte: 30MiB
      steps:
        - sync: {}
      """, "5:5", "unknown writable cgroup v1 file 'memory.limit_in_byte'",
      "did you mean 'memory.limit_in_bytes'?", id="unknown-v1-file"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups:
        /web:
          memory.usage_in_bytes: 0
      steps:
        - sync: {}
      """, "5:5", "memory.usage_in_bytes is read-only",
      id="read-only-file-in-cgroups"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups:
        /web: 30MiB
      steps:
        - sync: {}
      """, "4:9", "/web: want a mapping of control files", id="cgroup-not-a-mapping"),
    # ------------------------------------------------------------------ steps in general
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spwan: {task: A, cgroup: /web}
      """, "5:5", "unknown step 'spwan'", "did you mean 'spawn'?", id="unknown-step"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
          anon: {task: A, size: 1MiB, as: buf}
      """, "6:5", "one step per list item, found spawn, anon", id="two-steps-in-one-item"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn
      """, "5:5", "a step is a mapping", id="step-not-a-mapping"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: [A, /web]
      """, "5:12", "spawn: want a mapping of arguments", id="step-arguments-not-a-mapping"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web, cpus: 0}
      """, "5:36", "spawn: unknown key 'cpus'", "did you mean 'cpu'?",
      id="unknown-step-argument"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A}
      """, "5:12", "spawn: missing 'cgroup'", id="missing-argument"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - set: {cgroup: /web, memory.limit_in_bytes: 1MiB}
          may_fail: maybe
      """, "6:15", "may_fail: want true or false", id="may-fail-not-boolean"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - set: {cgroup: /web, memory.limit_in_bytes: 1MiB, may_fail: 1}
      """, "5:64", "may_fail: want true or false", id="may-fail-argument-not-boolean"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - may_fail: true
      """, "5:5", "may_fail but no step", id="item-with-only-may-fail"),
    # ------------------------------------------------------------------ tasks, regions, files
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - anon: {task: A, size: 1MiB, as: buf}
      """, "5:18", "task 'A' is used before it was spawned", id="task-before-spawn"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - spawn: {task: A, cgroup: /web}
      """, "6:19", "task 'A' exists already", id="spawn-twice"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - spawn: {task: B, cgroup: /web}
        - fork: {task: A, child: B}
      """, "7:28", "task 'B' exists already", id="fork-to-existing-task"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /nope}
      """, "5:30", "cgroup /nope is not defined in cgroups:", id="spawn-into-undefined-cgroup"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - move: {task: A, cgroup: /batch}
      """, "6:29", "cgroup /batch is not defined in cgroups:", id="move-into-undefined-cgroup"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1, cpus: 2}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web, cpu: 2}
      """, "5:41", "cpu: want a whole number from 0 to 1", id="cpu-out-of-range"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web, oom_score_adj: 5000}
      """, "5:51", "oom_score_adj: want a whole number from -1000 to 1000",
      id="oom-score-adj-5000"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - migrate: {task: A, node: 1}
      """, "6:30", "node 1 does not exist", "1 node(s)", id="migrate-to-missing-node"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - anon: {task: A, size: 1000, as: buf}
      """, "6:27", "size: 1000 is not a whole number of 4 KiB pages", id="size-not-whole-pages"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - anon: {task: A, size: 50MB, as: buf}
      """, "6:27", "size: '50MB' is not a size", "MiB", id="size-unit-MB"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - anon: {task: A, size: 1.5GiB, as: buf}
      """, "6:27", "size: '1.5GiB' is not a size", id="size-fraction"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - anon: {task: A, size: -4096, as: buf}
      """, "6:27", "size: a size cannot be negative", id="size-negative"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - anon: {task: A, size: 0, as: buf}
      """, "6:27", "at least one page", id="size-zero-anon"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - touch: {task: A, region: buf}
      """, "6:30", "task A has no region 'buf'", id="region-before-defined"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - anon: {task: A, size: 1MiB, as: buf}
        - unmap: {task: A, region: buf}
        - touch: {task: A, region: buf}
      """, "8:30", "task A has no region 'buf'", id="region-after-unmap"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - read: {task: A, file: /data/log}
      """, "6:27", "file '/data/log' does not exist yet", id="read-never-written"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - write: {task: A, file: /data/log, size: 1MiB}
        - unlink: {file: /data/log}
        - read: {task: A, file: /data/log}
      """, "8:27", "file '/data/log' does not exist yet", id="read-after-unlink"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - write: {task: A, file: /data/log, size: 1MiB, fs: ntfs}
      """, "6:55", "fs: want ext4, xfs, btrfs or tmpfs, not 'ntfs'", id="unknown-fs"),
    # ------------------------------------------------------------------ set
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - set: {cgroup: /web, memory.max: 30MiB}
      """, "5:25", "memory.max is a cgroup v2 file", "uses cgroup v1", id="v2-file-in-set"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - set: {cgroup: /web}
      """, "5:10", "set: name at least one control file", id="set-nothing"),
    # ------------------------------------------------------------------ report
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - report: {label: x, cgroups: /web}
      """, "5:33", "report.cgroups: want a list of cgroup paths", id="report-cgroups-not-list"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - report: {label: x, cgroups: [/web, /db]}
      """, "5:40", "cgroup /db is not defined in cgroups:", id="report-undefined-cgroup"),
    # ------------------------------------------------------------------ expect
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.current: 0}
      """, "5:28", "memory.current is a cgroup v2 file", "uses cgroup v1",
      id="v2-file-in-expect"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.usage_in_byte: 0}
      """, "5:28", "unknown cgroup v1 file 'memory.usage_in_byte'",
      "did you mean 'memory.usage_in_bytes'?", id="unknown-file-in-expect"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.events.oom_kill: 1}
      """, "5:28", "memory.events is a cgroup v2 file", id="v2-keyed-file-in-expect"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.stat: 0}
      """, "5:28", "memory.stat has many values", "memory.stat.KEY", id="keyed-file-without-key"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - expect: {task: A, state: dead}
      """, "6:30", "state: want alive, exited or killed, not 'dead'", id="state-dead"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {task: A, state: alive}
      """, "5:20", "task 'A' is used before it was spawned", id="expect-unknown-task"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - spawn: {task: A, cgroup: /web}
        - expect: {task: A}
      """, "6:13", "a task check is {task: NAME, state:", id="expect-task-without-state"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {step_error: EFOO}
      """, "5:26", "step_error: want an errno name like EINVAL or EBUSY, not 'EFOO'",
      id="step-error-EFOO"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web}
      """, "5:13", "expect: name at least one file to check", id="expect-no-files"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {}
      """, "5:13", "expect: name a cgroup", "step_error", id="expect-nothing"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /db, memory.usage_in_bytes: 0}
      """, "5:22", "cgroup /db is not defined in cgroups:", id="expect-undefined-cgroup"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.usage_in_bytes: {min: 2MiB, max: 1MiB}}
      """, "5:51", "memory.usage_in_bytes: min is above max", id="range-min-above-max"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.usage_in_bytes: {low: 1MiB}}
      """, "5:51", "a range is {min: V, max: V}", id="range-unknown-key"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.usage_in_bytes: 30MiB ±lots}
      """, "5:51", "memory.usage_in_bytes tolerance: 'lots' is not a size", id="bad-tolerance"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.usage_in_bytes: 30MiB ±5x%}
      """, "5:51", "'5x%' is not a percentage", id="bad-tolerance-percent"),
    p("""\
      format: 1
      machine: {kernel: "6.12", cgroup: v2}
      cgroups:
        /web:
          memory.limit_in_bytes: 1M
      steps:
        - sync: {}
      """, "5:5", "memory.limit_in_bytes is a cgroup v1 file", "uses cgroup v2",
      id="v1-file-in-v2"),
    p("""\
      format: 1
      machine: {kernel: "6.12", cgroup: v2}
      cgroups:
        /web:
          memory.current: 1M
      steps:
        - sync: {}
      """, "5:5", "memory.current is read-only", id="v2-read-only-file"),
    p("""\
      format: 1
      machine: {kernel: "6.12", cgroup: v2}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.events.oom_kills: 0}
      """, "5:28", "memory.events has no key 'oom_kills'", "did you mean 'oom_kill'?",
      id="v2-events-key"),
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.stat.shmem: 0}
      """, "5:28", "memory.stat has no key 'shmem'", id="6.1-stat-key-on-3.17"),
    p("""\
      format: 1
      machine: {kernel: "6.1", cgroup: v2}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.swap.peak: 0}
      """, "5:28", "unknown cgroup v2 file 'memory.swap.peak'", id="6.12-file-on-6.1"),
    p("""\
      format: 1
      machine: {kernel: "6.12", cgroup: v2}
      cgroups: {/web: {}}
      steps:
        - fd_write: {fd: f1, text: reset}
      """, "5:20", "fd 'f1' is not open", id="fd-not-open"),
    p("""\
      format: 1
      machine: {kernel: "6.12", cgroup: v2}
      cgroups: {/web: {}}
      steps:
        - open: {cgroup: /web, file: memory.current, as: f1}
      """, "5:32", "only memory.peak and memory.swap.peak keep per-file state",
      id="open-non-peak-file"),
]

#: Mistakes the loader does not handle yet: each fails until the loader is fixed (see the
#: comment on each for what happens today).
LOADER_BUGS = [
    # ConstructorError escapes: _to_nodes constructs scalars outside _parse_yaml's try
    p("format: !foo 1\n", "1:9", "not valid YAML", id="bug-unknown-yaml-tag"),
    # ValueError from int('abc') escapes the same way
    p("format: !!int abc\n", "1:9", id="bug-bad-int-tag"),
    # RecursionError: _to_nodes follows a self-referencing alias for ever
    p("format: 1\nsteps: &s [*s]\n", "2:", id="bug-recursive-alias"),
    # KeyError: 'cgroup': set (and expect) skip the required-argument check
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - set: {memory.limit_in_bytes: 1MiB}
      """, "5:10", "set: missing 'cgroup'", id="bug-set-without-cgroup"),
    # ValueError: int(nan) in _check
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.usage_in_bytes: 30MiB ±nan%}
      """, "5:51", "percent", id="bug-tolerance-nan-percent"),
    # OverflowError: int(inf) in _check
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.usage_in_bytes: 30MiB ±inf%}
      """, "5:51", "percent", id="bug-tolerance-inf-percent"),
    # accepted: a negative tolerance makes low > high, an expectation that can never hold
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.usage_in_bytes: 30MiB ±-5%}
      """, "5:51", "negative", id="bug-tolerance-negative"),
    # accepted: `True == 1` in Python, so `format: true` passes the format check
    p("""\
      format: true
      machine: {kernel: "3.17", cgroup: v1}
      steps:
        - sync: {}
      """, "1:9", "format True is not known", id="bug-format-true"),
    # accepted: an unknown memory.stat key is only noticed at run time (FAIL, actual None)
    p("""\
      format: 1
      machine: {kernel: "3.17", cgroup: v1}
      cgroups: {/web: {}}
      steps:
        - expect: {cgroup: /web, memory.stat.rsss: 0}
      """, "5:28", "rsss", "did you mean 'rss'?", id="bug-unknown-stat-key"),
    # RecursionError from deep nesting (yaml's composer and _to_nodes recurse per level)
    p("format: 1\nsteps: " + "[" * 2000 + "]" * 2000 + "\n", "2:", id="bug-deep-nesting"),
]


def check_mistake(text: str, prefix: str, words: tuple) -> None:
    e = load_error(text)
    msg = str(e)
    assert msg.startswith("bad.yaml:"), msg
    assert msg.startswith(prefix), f"want {prefix!r}..., got {msg!r}"
    for word in words:
        assert word in msg, f"{word!r} not in {msg!r}"
    m = PREFIX_RE.match(msg)
    assert m, msg
    assert (e.file, e.line, e.col) == ("bad.yaml", int(m.group(1)), int(m.group(2)))
    assert e.line >= 1 and e.col >= 1
    assert e.message and msg == f"bad.yaml:{e.line}:{e.col}: {e.message}"


@pytest.mark.parametrize("text, prefix, words", MISTAKES)
def test_mistake(text, prefix, words):
    check_mistake(text, prefix, words)


@pytest.mark.parametrize("text, prefix, words", LOADER_BUGS)
def test_loader_bug(text, prefix, words):
    check_mistake(text, prefix, words)


def test_corpus_is_distinct_and_large_enough():
    texts = [c.values[0] for c in MISTAKES]
    ids = [c.id for c in MISTAKES + LOADER_BUGS]
    assert len(set(texts)) == len(texts)
    assert len(set(ids)) == len(ids)
    assert len(MISTAKES) >= 30


def test_the_mistakes_are_the_only_problem():
    """Sanity: the small files the cases are cut from load when the mistake is removed."""
    good = """\
        format: 1
        machine: {kernel: "3.17", cgroup: v1, cpus: 2}
        cgroups:
          /web:
            memory.limit_in_bytes: 30MiB
          /web/worker: {}
        steps:
          - spawn: {task: A, cgroup: /web, cpu: 1, oom_score_adj: 1000}
          - anon: {task: A, size: 1MiB, as: buf}
          - touch: {task: A, region: buf}
          - write: {task: A, file: /data/log, size: 1MiB}
          - read: {task: A, file: /data/log}
          - fork: {task: A, child: B}
          - move: {task: B, cgroup: /web/worker}
          - set: {cgroup: /web, memory.limit_in_bytes: 1MiB, may_fail: true}
          - expect: {step_error: EBUSY}
          - report: {label: x, cgroups: [/web]}
          - expect: {cgroup: /web, memory.stat.rss: 1MiB ±5%, memory.usage_in_bytes: {max: 3MiB}}
          - unmap: {task: A, region: buf}
          - expect: {task: A, state: alive}
        """
    sc = load_scenario("good.yaml", textwrap.dedent(good))
    assert [s.kind for s in sc.steps][:3] == ["spawn", "anon", "touch"]
    assert sc.machine.kernel == "3.17" and sc.machine.cgroup == "v1" and sc.machine.cpus == 2


def test_unreadable_file(tmp_path):
    path = tmp_path / "missing.yaml"
    with pytest.raises(ScenarioError) as ei:
        load_scenario(str(path))
    assert str(ei.value).startswith(f"{path}:")
    assert "cannot read the file" in str(ei.value)


def test_bug_file_not_utf8(tmp_path):
    """A file that is not UTF-8 raises UnicodeDecodeError today (only OSError is caught)."""
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"format: 1\n\xff\xfe\n")
    try:
        load_scenario(str(path))
    except ScenarioError as e:
        assert str(e).startswith(f"{path}:")
    except Exception as e:
        pytest.fail(f"load_scenario raised {type(e).__name__}: {e} instead of a ScenarioError")
    else:
        pytest.fail("a file that is not UTF-8 was accepted")


def test_unquoted_kernel_version_is_named_as_a_number():
    e = load_error("format: 1\nmachine: {kernel: 6.10, cgroup: v1}\nsteps: [sync: {}]\n")
    assert str(e).startswith("bad.yaml:2:19: kernel: quote the version")
    assert "number 6.1" in str(e)
