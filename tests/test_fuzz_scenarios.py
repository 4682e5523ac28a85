"""Fuzzing `memcgsim run --check` with scenario files (the fuzzer is tests/fuzz_scenarios.py).

Three parts:
  - a property test under hypothesis: no generated or mutated file makes `memcgsim run
    --check` exit 3, raise, hang, use too much memory, print an exit-2 message without
    FILE:LINE:COLUMN, accept a tag safe loading cannot construct, or answer differently twice.
    The number of examples follows HYPOTHESIS_PROFILE (tests/conftest.py): default about half a
    minute, ci a few minutes, long as long as it takes;
  - a property test of the generator and the loader together: a file the generator means to
    be valid is never refused (exit 2);
  - fixed regression inputs, one or more for each class of input the fuzzer throws at the
    loader and the runner, each with its exact exit status and a fragment of its message.

Each distinct finding class raises its own exception type, so hypothesis reports (and shrinks)
every distinct bug it meets, not only the first.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import HealthCheck, given, settings

import fuzz_scenarios as fz

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
#: (mutated files, valid files) per profile: default about 25 s, ci about 5 minutes
EXAMPLES, VALID_EXAMPLES = {"default": (100, 25), "ci": (1000, 200),
                            "long": (20000, 4000)}.get(PROFILE, (100, 25))

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much, HealthCheck.large_base_example],
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


_FINDING_TYPES: dict[str, type] = {}


def finding_error(finding: str) -> type:
    """One AssertionError subclass per finding class: hypothesis tells bugs apart by the type
    (and place) of what they raise."""
    if finding not in _FINDING_TYPES:
        _FINDING_TYPES[finding] = type("Finding", (AssertionError,), {
            "__qualname__": f"Finding[{finding}]", "__module__": __name__})
    return _FINDING_TYPES[finding]


# ---------------------------------------------------------------------------- properties

@FUZZ_SETTINGS
@given(ex=fz.examples())
def test_no_scenario_file_breaks_memcgsim_run(ex, fuzz_dir):
    outcome = fz.run_one(ex.text, fuzz_dir)
    if outcome.finding:
        raise finding_error(outcome.finding)(outcome.summary())


@settings(FUZZ_SETTINGS, max_examples=VALID_EXAMPLES)
@given(ex=fz.examples(mutate_structure=False, mutate_text=False))
def test_a_valid_scenario_is_never_refused(ex, fuzz_dir):
    outcome = fz.run_one(ex.text, fuzz_dir, repeat=False, trace_memory=False)
    if outcome.finding:
        raise finding_error(outcome.finding)(outcome.summary())
    assert outcome.status in (0, 1), outcome.summary()


def test_the_generator_knows_every_step_kind_and_machine_key():
    from memcgsim.scenario import STEP_ARGS, MachineSpec

    assert set(fz.KINDS) == set(STEP_ARGS)
    assert set(fz.MACHINE_KEYS) == {f.name for f in dataclasses.fields(MachineSpec)}


@pytest.mark.parametrize("kernel,cgroup,accounting", [
    ("3.17", "v1", True), ("3.17", "v1", False), ("6.1", "v1", True), ("6.1", "v2", True),
    ("6.12", "v2", True)])
def test_the_generator_writes_and_expects_files_the_interface_has(kernel, cgroup, accounting):
    from memcgsim import scenario

    readable, writable, keys = scenario.interface(kernel, cgroup, accounting)[:3]
    assert set(fz.writable_files(kernel, cgroup, accounting)) <= set(writable)
    for key in fz.expect_keys(kernel, cgroup, accounting):
        name = scenario.keyed_file(key)
        assert name in readable, key
        if name != key:
            assert key[len(name) + 1:] in keys[name], key


# ---------------------------------------------------------------------------- the harness

@pytest.mark.parametrize("behaviour,finding", [
    ("raise", "crash: KeyError"),
    ("exit3", "exit 3"),
    ("exit7", "exit status 7"),
    ("bad2", "exit 2 without FILE:LINE:COLUMN"),
    ("hang", "hang"),
    ("memory", "memory: traced peak"),
    ("random", "nondeterministic"),
])
def test_the_harness_sees_each_kind_of_finding(behaviour, finding, fuzz_dir, monkeypatch):
    import itertools
    import sys
    import time

    from memcgsim import cli

    counter = itertools.count()

    def fake_main(argv):
        if behaviour == "raise":
            raise KeyError("x")
        if behaviour == "hang":
            time.sleep(5)
        if behaviour == "memory":
            blob = bytearray(4 << 20)
            del blob
        if behaviour == "random":
            print(next(counter))
        if behaviour == "bad2":
            print("something is wrong", file=sys.stderr)
            return 2
        return {"exit3": 3, "exit7": 7}.get(behaviour, 0)

    monkeypatch.setattr(cli, "main", fake_main)
    o = fz.run_one("format: 1\n", fuzz_dir, timeout=0.5, memory_limit=1 << 20, hang_limit=2.0)
    assert o.finding is not None and o.finding.startswith(finding), o.summary()


def test_the_harness_tells_slow_from_hung(fuzz_dir, monkeypatch):
    """Over the time limit but within the hang limit (run again untraced): slow, no finding."""
    import time

    from memcgsim import cli

    monkeypatch.setattr(cli, "main", lambda argv: time.sleep(0.8) or 0)
    o = fz.run_one("format: 1\n", fuzz_dir, timeout=0.5, repeat=False, trace_memory=False,
                   hang_limit=3.0)
    assert o.finding is None and o.status == 0 and "(slow: over 0.5 s, under 3 s)" in o.kind


def test_the_harness_passes_a_good_run(fuzz_dir):
    o = fz.run_one(EVERY_STEP_V2, fuzz_dir)
    assert o.finding is None and o.status == 0, o.summary()
    assert o.peak > 0 and o.seconds > 0


def test_the_minimiser_keeps_the_finding(fuzz_dir, monkeypatch):
    from memcgsim import cli

    def fake_main(argv):
        with open(argv[-1], "rb") as f:
            if b"boom" in f.read():
                raise ValueError("boom")
        return 0

    monkeypatch.setattr(cli, "main", fake_main)
    text = b"format: 1\nsteps:\n  - {sync: {}}\n  - {report: {label: boom, cgroups: [/]}}\n"
    finding = fz.run_one(text, fuzz_dir).finding
    small = fz.minimise(text, finding, fuzz_dir, budget=30)
    assert b"boom" in small and len(small) < len(text)
    assert fz.run_one(small, fuzz_dir).finding == finding


# ---------------------------------------------------------------------------- regressions

HEAD = """\
format: 1
machine: {kernel: "6.12", cgroup: v2, memory: 16MiB}
cgroups: {/a: {memory.max: 4MiB, memory.swap.max: 0}}
steps:
  - spawn: {task: A, cgroup: /a}
"""

V1HEAD = """\
format: 1
machine: {kernel: "3.17", cgroup: v1, memory: 16MiB}
cgroups: {/a: {memory.limit_in_bytes: 4MiB}}
steps:
  - spawn: {task: A, cgroup: /a}
"""

EVERY_STEP_V2 = """\
format: 1
machine:
  kernel: "6.12"
  cgroup: v2
  memory: 32MiB
  swap: 8MiB
  cpus: 2
  nodes: 2
  thp: always
cgroups:
  /web:
    memory.max: 16MiB
    memory.high: 12MiB
    memory.swap.max: max
  /web/worker: {memory.low: 1MiB, memory.oom.group: 0}
  /batch: {}
steps:
  - spawn: {task: A, cgroup: /web/worker, cpu: 1, node: 0, oom_score_adj: -500}
  - anon: {task: A, size: 2MiB, as: buf}
  - anon: {task: A, size: 1MiB, as: z, shared: true}
  - anon: {task: A, size: 8KiB, as: l, locked: true}
  - anon: {task: A, size: 8KiB, as: n, touch: false}
  - mlock: {task: A, region: n, may_fail: true}
  - munlock: {task: A, region: l}
  - shm: {task: A, size: 1MiB, as: seg}
  - touch: {task: A, region: buf}
  - write: {task: A, file: /data/log, size: 2MiB, fs: ext4}
  - write: {task: A, file: /dev/shm/x, size: 1MiB, fs: tmpfs}
  - read: {task: A, file: /data/log}
  - mmap: {task: A, file: /data/log, as: map}
  - splice: {task: A, file: /data/log}
  - sync: {}
  - fork: {task: A, child: B}
  - touch: {task: B, region: buf}
  - migrate: {task: A, node: 1}
  - open: {cgroup: /web, file: memory.peak, as: fd1}
  - fd_write: {fd: fd1, text: reset}
  - expect: {fd: fd1, value: {max: 16MiB}}
  - close: {fd: fd1}
  - move: {task: B, cgroup: /batch}
  - set: {cgroup: /web, memory.high: max}
  - set: {cgroup: /web, memory.swap.max: lots}
    may_fail: true
  - expect: {step_error: EINVAL}
  - report: {label: after-load, cgroups: [/web, /batch, /]}
  - expect:
      cgroup: /web
      memory.current: 8MiB ±100%
      memory.stat.anon: {min: 0, max: 16MiB}
      memory.events.oom_kill: 0
      memory.events.local.max: {min: 0}
      memory.swap.current: {max: 8MiB}
      cgroup.subtree_control: memory
  - expect: {cgroup: /web/worker, cgroup.controllers: memory}
  - expect: {cgroup: /, memory.stat.anon: {min: 0}}
  - unmap: {task: A, region: buf}
  - truncate: {file: /data/log, size: 5000}
  - unlink: {file: /dev/shm/x}
  - drop_caches: {}
  - exit: {task: B}
  - expect: {task: B, state: exited}
  - expect: {task: A, state: alive}
  - exit: {task: A}
  - rmdir: {cgroup: /batch}
"""

EVERY_STEP_V1 = """\
format: 1
machine: {kernel: "3.17", cgroup: v1, memory: 32MiB, swap: 8MiB, swap_accounting: true}
cgroups:
  /old: {memory.limit_in_bytes: 16MiB, memory.memsw.limit_in_bytes: 20MiB}
  /new: {memory.move_charge_at_immigrate: 1, memory.swappiness: 60, memory.use_hierarchy: 1}
steps:
  - spawn: {task: A, cgroup: /old}
  - anon: {task: A, size: 4MiB, as: buf}
  - write: {task: A, file: /data/f, size: 1MiB}
  - move: {task: A, cgroup: /new}
  - set: {cgroup: /old, memory.soft_limit_in_bytes: 1MiB, memory.force_empty: 0}
    may_fail: true
  - report: {label: moved}
  - expect:
      cgroup: /new
      memory.stat.rss: 4MiB ±8KiB
      memory.memsw.usage_in_bytes: {min: 4MiB}
      memory.oom_control.under_oom: 0
      memory.numa_stat.total: {min: 0}
  - set: {cgroup: /, memory.limit_in_bytes: 1MiB}
    may_fail: true
  - expect: {step_error: EINVAL}
  - expect: {cgroup: /, memory.usage_in_bytes: {min: 0}}
"""

LONG = "x" * 100_000
DIGITS = "9" * 5000
TEN30 = "1" + "0" * 30
BOMB = fz.alias_bomb().text


@dataclasses.dataclass
class Case:
    text: str | bytes
    status: int
    fragment: str | None = None
    #: for exit 2: the line the message names (a number, or a text on that line)
    line: int | str | None = None
    #: the time limit of the run, seconds
    timeout: float = fz.TIMEOUT


def case(id_, text, status, fragment=None, line=None, timeout=fz.TIMEOUT):
    return pytest.param(Case(text, status, fragment, line, timeout), id=id_)


REGRESSIONS = [
    # valid files of every step kind, both interfaces
    case("every-step-v2", EVERY_STEP_V2, 0),
    case("every-step-v1", EVERY_STEP_V1, 0),
    # steps dropped, duplicated, reordered: references to what was never made or is gone
    case("dropped-spawn", "format: 1\nsteps:\n  - anon: {task: A, size: 4KiB, as: b}\n", 2,
         "spawned", 3),
    case("duplicated-spawn", HEAD + "  - spawn: {task: A, cgroup: /a}\n", 2, "exists", 6),
    case("unmap-before-anon", HEAD + "  - unmap: {task: A, region: b}\n"
         "  - anon: {task: A, size: 4KiB, as: b}\n", 2, "region", 6),
    case("touch-after-unmap", HEAD + "  - anon: {task: A, size: 4KiB, as: b}\n"
         "  - unmap: {task: A, region: b}\n  - touch: {task: A, region: b}\n", 2, "region", 8),
    case("read-after-unlink", HEAD + "  - write: {task: A, file: /f, size: 4KiB}\n"
         "  - unlink: {file: /f}\n  - read: {task: A, file: /f}\n", 2, "exist", 8),
    case("fd-after-close", HEAD + "  - open: {cgroup: /a, file: memory.peak, as: p}\n"
         "  - close: {fd: p}\n  - fd_write: {fd: p, text: reset}\n", 2, "not open", 8),
    case("fd-never-opened", HEAD + "  - expect: {fd: p, value: 0}\n", 2, "not open", 6),
    case("spawn-into-removed-cgroup", "format: 1\ncgroups: {/a: {}}\nsteps:\n"
         "  - rmdir: {cgroup: /a}\n  - spawn: {task: A, cgroup: /a}\n", 2, "/a", 5),
    # what only the run knows: OOM kills, exits, steps that failed under may_fail
    case("steps-of-an-oom-killed-task", HEAD + "  - anon: {task: A, size: 8MiB, as: b}\n"
         "  - touch: {task: A, region: b}\n  - fork: {task: A, child: B}\n"
         "  - touch: {task: B, region: b}\n  - expect: {task: A, state: killed}\n", 0,
         "skipped"),
    case("child-of-a-killed-task-never-exists", HEAD + "  - anon: {task: A, size: 8MiB, as: b}\n"
         "  - fork: {task: A, child: B}\n  - expect: {task: B, state: alive}\n", 1, "B"),
    case("steps-of-an-exited-task", HEAD + "  - exit: {task: A}\n"
         "  - anon: {task: A, size: 4KiB, as: b}\n  - expect: {task: A, state: exited}\n", 0,
         "skipped"),
    case("region-whose-mmap-failed", HEAD + "  - write: {task: A, file: /e, size: 0}\n"
         "  - mmap: {task: A, file: /e, as: m, may_fail: true}\n"
         "  - expect: {step_error: EINVAL}\n  - touch: {task: A, region: m}\n"
         "  - unmap: {task: A, region: m}\n", 0, "skipped"),
    case("file-whose-write-was-skipped", HEAD + "  - exit: {task: A}\n"
         "  - write: {task: A, file: /f, size: 4KiB}\n  - truncate: {file: /f, size: 0}\n"
         "  - unlink: {file: /f}\n", 0, "skipped"),
    case("failed-set-then-step_error", HEAD + "  - set: {cgroup: /a, memory.max: garbage}\n"
         "    may_fail: true\n  - expect: {step_error: EINVAL}\n", 0),
    case("failed-step-without-may_fail", HEAD + "  - set: {cgroup: /a, memory.max: garbage}\n",
         1, "EINVAL"),
    # wrong types
    case("size-is-a-list", HEAD + "  - anon: {task: A, size: [4096], as: b}\n", 2, "size", 6),
    case("task-is-a-number", "format: 1\nsteps:\n  - spawn: {task: 5, cgroup: /}\n", 2,
         "task", 3),
    case("may_fail-is-text", HEAD + "  - sync: {may_fail: yes please}\n", 2, "may_fail", 6),
    case("label-is-a-mapping", HEAD + "  - report: {label: {a: 1}}\n", 2, "label", 6),
    case("steps-is-a-mapping", "format: 1\nsteps: {spawn: {task: A, cgroup: /}}\n", 2, "steps",
         2),
    case("machine-is-text", "format: 1\nmachine: \"6.12\"\nsteps: [{sync: {}}]\n", 2, "machine",
         2),
    case("format-is-text", "format: \"1\"\nsteps: [{sync: {}}]\n", 2, "format", 1),
    case("cgroups-is-a-list", "format: 1\ncgroups: [/a]\nsteps: [{sync: {}}]\n", 2, "cgroups",
         2),
    case("kernel-unquoted", "format: 1\nmachine: {kernel: 6.1, cgroup: v1}\nsteps: [{sync: {}}]\n",
         2, "quote", 2),
    case("step-is-a-list", HEAD + "  - [sync]\n", 2, "step", 6),
    case("two-steps-in-one-item", HEAD + "  - {sync: {}, drop_caches: {}}\n", 2, "one step", 6),
    case("unknown-step", HEAD + "  - bogus: {}\n", 2, "bogus", 6),
    case("expect-value-is-a-list", HEAD + "  - expect: {cgroup: /a, memory.current: [1]}\n", 2,
         "memory.current", 6),
    # huge and negative numbers
    case("memory-5000-digits", f"format: 1\nmachine: {{memory: {DIGITS}}}\n"
         "steps: [{sync: {}}]\n", 2, None, 2),
    case("size-5000-digits-MiB", HEAD + f"  - anon: {{task: A, size: {DIGITS}MiB, as: b}}\n", 2,
         None, 6),
    case("memory-10**30-TiB", f"format: 1\nmachine: {{memory: {TEN30}TiB}}\n"
         "steps: [{sync: {}}]\n", 2, "memory", 2),
    case("anon-10**30-TiB", HEAD + f"  - anon: {{task: A, size: {TEN30}TiB, as: b}}\n", 2, None,
         6),
    case("expect-10**30-TiB", HEAD + f"  - expect: {{cgroup: /a, memory.current: {TEN30}TiB}}\n",
         2, None, 6),
    case("tolerance-10**30-TiB", HEAD + f"  - expect: {{cgroup: /a, memory.current: 1MiB ±{TEN30}"
         "TiB}\n", 2, None, 6),
    case("tolerance-1e400-percent", HEAD + "  - expect: {cgroup: /a, memory.current: "
         "1MiB ±1e400%}\n", 2, None, 6),
    case("cpus-a-billion", "format: 1\nmachine: {memory: 16MiB, cpus: 1000000000}\n"
         "steps: [{sync: {}}]\n", 2, "cpus", 2),
    case("cpus-10**30", f"format: 1\nmachine: {{memory: 16MiB, cpus: {TEN30}}}\n"
         "steps: [{sync: {}}]\n", 2, None, 2),
    case("nodes-zero", "format: 1\nmachine: {memory: 16MiB, nodes: 0}\nsteps: [{sync: {}}]\n", 2,
         "nodes", 2),
    case("negative-size", HEAD + "  - anon: {task: A, size: -4096, as: b}\n", 2, "negative", 6),
    case("negative-swap", "format: 1\nmachine: {memory: 16MiB, swap: -1}\nsteps: [{sync: {}}]\n",
         2, "swap", 2),
    case("oom_score_adj-below-range", "format: 1\nsteps:\n"
         "  - spawn: {task: A, cgroup: /, oom_score_adj: -1001}\n", 2, "oom_score_adj", 3),
    case("migrate-to-node-minus-one", HEAD + "  - migrate: {task: A, node: -1}\n", 2, "node", 6),
    case("write-1TiB-on-256MiB", "format: 1\nmachine: {memory: 256MiB}\nsteps:\n"
         "  - spawn: {task: A, cgroup: /}\n  - write: {task: A, file: /f, size: 1TiB}\n", 2,
         None, 5),
    case("anon-1TiB-on-16MiB", HEAD + "  - anon: {task: A, size: 1TiB, as: b}\n", 2, None, 6),
    case("machine-memory-1TiB", "format: 1\nmachine: {memory: 1TiB}\nsteps: [{sync: {}}]\n", 2,
         "memory", 2),
    # unicode, long names, odd paths
    case("unicode-names", "format: 1\nmachine: {memory: 16MiB}\ncgroups: {/Ω名: {}}\nsteps:\n"
         "  - spawn: {task: 名前, cgroup: /Ω名}\n  - anon: {task: 名前, size: 4KiB, as: 🙂}\n"
         "  - report: {label: ☃}\n", 0, "/Ω名"),
    case("100k-task-name", f"format: 1\nsteps:\n  - spawn: {{task: {LONG}, cgroup: /}}\n", 2,
         None, 3),
    case("100k-cgroup-path", f"format: 1\ncgroups: {{/{LONG}: {{}}}}\nsteps: [{{sync: {{}}}}]\n",
         2, None, 2),
    case("100k-label", HEAD + f"  - report: {{label: {LONG}}}\n", 2, None, 6),
    case("dollar-math-cgroup-path", "format: 1\nmachine: {memory: 16MiB}\n"
         "cgroups: {/$x^2$: {memory.max: 4MiB}, /$HOME$: {}}\nsteps:\n"
         "  - spawn: {task: A, cgroup: /$x^2$}\n  - report: {label: $x$}\n", 0, "/$x^2$"),
    case("nul-in-a-name", "format: 1\nsteps:\n  - spawn: {task: \"a\\0b\", cgroup: /}\n", 2, None,
         3),
    case("cgroup-path-trailing-slash", "format: 1\ncgroups: {/a/: {}}\nsteps: [{sync: {}}]\n", 2,
         "/a/", 2),
    case("cgroup-parent-missing", "format: 1\ncgroups: {/a/b: {}}\nsteps: [{sync: {}}]\n", 2,
         "parent", 2),
    # anchors, aliases, tags
    case("anchor-and-alias", "format: 1\nmachine: {memory: 16MiB}\n"
         "cgroups: {/a: {memory.max: &lim 4MiB}, /b: {memory.max: *lim}}\n"
         "steps: [{report: {label: r}}]\n", 0),
    case("aliased-spawn-step", "format: 1\nsteps:\n  - &s {spawn: {task: A, cgroup: /}}\n"
         "  - *s\n", 2, "exists"),
    case("alias-bomb", f"format: 1\nsteps:\n  - report: {{label: r, cgroups: {BOMB}}}\n", 2,
         "alias", 3),
    case("alias-bomb-at-the-top", f"format: 1\nsteps: [{{sync: {{}}}}]\nlol: {BOMB}\n", 2,
         "alias", 3),
    case("recursive-alias", "format: 1\nsteps: &r [*r]\n", 2, "itself", 2),
    case("undefined-alias", "format: 1\nsteps: [*nope]\n", 2, "alias", 2),
    case("timestamp-month-13", HEAD + "  - report: {label: !!timestamp 2024-13-45}\n", 2,
         "timestamp", 6),
    case("timestamp-garbage", HEAD + "  - report: {label: !!timestamp x}\n", 2, None, 6),
    case("binary-task-name", "format: 1\nsteps:\n  - spawn: {task: !!binary aGVsbG8=, cgroup: /}\n",
         2, "task", 3),
    case("binary-not-base64", HEAD + "  - report: {label: !!binary '!!!'}\n", 2, None, 6),
    case("set-where-a-list-belongs", HEAD + "  - report: {label: r, cgroups: !!set {/a}}\n", 2,
         "cgroups", 6),
    case("int-tag-on-text", HEAD + "  - report: {label: !!int x}\n", 2, None, 6),
    case("python-object-on-a-scalar", HEAD + "  - report: {label: !!python/object:os.system x}\n",
         2, "python", 6),
    case("python-name", HEAD + "  - report: {label: !!python/name:os.system ''}\n", 2, "python",
         6),
    case("python-apply-on-a-list", HEAD + "  - report: {label: r, cgroups: "
         "!!python/object/apply:os.system [/a]}\n", 2, "python", 6),
    case("python-object-on-a-mapping", "format: 1\nmachine: !!python/object:memcgsim.scenario."
         "MachineSpec {memory: 16MiB}\nsteps: [{sync: {}}]\n", 2, "python", 2),
    case("local-tag-on-a-mapping", "format: 1\nmachine: !mine {memory: 16MiB}\n"
         "steps: [{sync: {}}]\n", 2, "mine", 2),
    case("seq-tag-on-a-mapping", "format: 1\nmachine: !!seq {memory: 16MiB}\n"
         "steps: [{sync: {}}]\n", 2, None, 2),
    case("map-tag-on-a-list", "format: 1\nmachine: {memory: 16MiB}\nsteps: !!map [{sync: {}}]\n",
         2, None, 3),
    case("duplicate-key", "format: 1\nformat: 1\nsteps: [{sync: {}}]\n", 2, "duplicate", 2),
    case("merge-key", "format: 1\nmachine: {<<: {memory: 16MiB}}\nsteps: [{sync: {}}]\n", 2,
         None, 2),
    case("two-documents", "format: 1\nsteps: [{sync: {}}]\n---\nformat: 1\n", 2, None, 3),
    # the root cgroup's files
    case("v2-root-has-no-memory.current", HEAD + "  - expect: {cgroup: /, memory.current: 0}\n",
         2, "root", 6),
    case("v2-root-has-no-memory.max", HEAD + "  - set: {cgroup: /, memory.max: 1MiB}\n", 2,
         "root", 6),
    case("v2-root-has-no-memory.peak", HEAD + "  - open: {cgroup: /, file: memory.peak, as: p}\n",
         2, "root", 6),
    case("v2-root-has-no-events", HEAD + "  - expect: {cgroup: /, memory.events.oom: 0}\n", 2,
         "root", 6),
    case("v2-report-of-the-root", HEAD + "  - report: {label: r, cgroups: [/]}\n", 0,
         "memory.stat"),
    case("v2-root-subtree_control", HEAD + "  - expect: {cgroup: /, cgroup.subtree_control: "
         "memory}\n", 0),
    case("v1-root-limit-is-EINVAL", V1HEAD + "  - set: {cgroup: /, memory.limit_in_bytes: 1MiB}\n"
         "    may_fail: true\n  - expect: {step_error: EINVAL}\n", 0),
    case("rmdir-of-the-root", HEAD + "  - rmdir: {cgroup: /}\n", 2, "root", 6),
    case("configure-the-root", "format: 1\ncgroups: {/: {memory.max: 1MiB}}\n"
         "steps: [{sync: {}}]\n", 2, "root", 2),
    # step_error
    case("step_error-is-a-list", HEAD + "  - expect: {step_error: [EINVAL]}\n", 2, "step_error",
         6),
    case("step_error-is-a-mapping", HEAD + "  - expect: {step_error: {EINVAL: 1}}\n", 2,
         "step_error", 6),
    case("step_error-unknown", HEAD + "  - expect: {step_error: EWHAT}\n", 2, "EWHAT", 6),
    case("expect-with-nothing", HEAD + "  - expect: {}\n", 2, "expect", 6),
    # run time: a few MiB must not take seconds (bench/README.md: 12,000+ page events/s)
    case("reclaim-of-migrated-mlocked-pages", "format: 1\n"
         "machine: {memory: 16MiB, swap: 16MiB, nodes: 2}\ncgroups: {/b: {memory.high: 2MiB}}\n"
         "steps:\n  - spawn: {task: A, cgroup: /b}\n"
         "  - anon: {task: A, size: 4MiB, as: buf, locked: true}\n"
         "  - migrate: {task: A, node: 1}\n  - anon: {task: A, size: 4MiB, as: r2}\n", 0,
         timeout=5),
    # keyed files
    case("v2-numa_stat-key", HEAD + "  - anon: {task: A, size: 8KiB, as: b}\n"
         "  - expect: {cgroup: /a, memory.numa_stat.anon: 8KiB, memory.numa_stat.file: 0}\n", 0),
    case("v1-numa_stat-key", V1HEAD + "  - anon: {task: A, size: 8KiB, as: b}\n"
         "  - expect: {cgroup: /a, memory.numa_stat.anon: {min: 0}}\n", 0),
    case("keyed-file-without-key", HEAD + "  - expect: {cgroup: /a, memory.stat: 0}\n", 2,
         "memory.stat", 6),
    case("unknown-stat-key", HEAD + "  - expect: {cgroup: /a, memory.stat.nope: 0}\n", 2, "nope",
         6),
    case("v1-file-on-v2", HEAD + "  - expect: {cgroup: /a, memory.usage_in_bytes: 0}\n", 2, "v1",
         6),
    # the text itself
    case("truncated-in-a-flow-mapping", HEAD + "  - anon: {task: A, size: 4K", 2, None, 6),
    case("nul-byte", HEAD.encode() + b"  - sync: {}\x00\n", 2, None, 6),
    case("not-utf8", HEAD.encode() + b"  - report: {label: \xff\xfe}\n", 2, "UTF-8", 6),
    case("tab-indentation", "format: 1\nsteps:\n\t- sync: {}\n", 2, None, 3),
    case("empty-file", "", 2, "empty", 1),
    case("only-a-document-marker", "---\n", 2, "mapping"),
    case("a-comment-only", "# nothing\n", 2, "empty", 1),
    case("bom-at-the-start", b"\xef\xbb\xbf" + HEAD.encode(), 0),
    case("escape-sequence", HEAD + "  - report: {label: \x1b[31mred}\n", 2, None, 6),
    case("flipped-bit-in-a-key", HEAD.replace("format", "formct"), 2, "formct", 1),
    case("yaml-directive-twice", "%YAML 1.1\n%YAML 1.1\n---\nformat: 1\n", 2, None, 2),
    case("scalar-document", "format\n", 2, None, 1),
]


@pytest.mark.parametrize("c", REGRESSIONS)
def test_regression(c: Case, fuzz_dir):
    o = fz.run_one(c.text, fuzz_dir, timeout=c.timeout, hang_limit=c.timeout)
    assert o.finding is None, o.summary()
    assert o.status == c.status, o.summary()
    path = str(fuzz_dir / "scenario.yaml")
    if c.status == 2:
        first = o.stderr.splitlines()[0]
        assert first.startswith(path + ":"), first
        line = int(first[len(path) + 1:].split(":", 1)[0])
        if c.line is not None:
            text = c.text.decode("utf-8", "replace") if isinstance(c.text, bytes) else c.text
            want = c.line if isinstance(c.line, int) else next(
                n for n, ln in enumerate(text.splitlines(), 1) if c.line in ln)
            assert line == want, first
        # a message quotes at most a short piece of a value (docs/limits.md)
        assert len(first) < len(path) + 400, first[:500]
    if c.fragment is not None:
        assert c.fragment in (o.stderr if c.status == 2 else o.stdout + o.stderr), o.summary()
