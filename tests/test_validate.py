"""memcgsim validate without QEMU: the guest script, the result port's parsing, the comparison
rules, the set-up's pieces and bad input."""

import gzip
import lzma
import textwrap

import pytest

from memcgsim.cli import main
from memcgsim.scenario import load_scenario
from memcgsim.validate import cache, compare, guest, serial
from memcgsim.validate.cpio import cpio_archive
from memcgsim.validate.run import compare_scenario, model_run, series_for


def scenario(tmp_path, body: str, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return load_scenario(str(path))


BASIC = """\
    format: 1
    machine: {kernel: "6.12", cgroup: v2, memory: 256MiB, swap: 64MiB}
    cgroups:
      /p:
        memory.max: 60M
      /p/a: {}
    steps:
      - spawn: {task: A, cgroup: /p/a, oom_score_adj: 500}
      - anon: {task: A, size: 8KiB, as: buf, touch: false}
      - write: {task: A, file: /data/log, size: 8KiB}
      - write: {task: A, file: /dev/shm/x, size: 4KiB, fs: tmpfs}
      - read: {task: A, file: /data/log}
      - set: {cgroup: /p, memory.high: 20M}
      - report: {label: r, cgroups: [/p, /p/a]}
      - expect: {task: A, state: alive}
      - unlink: {file: /dev/shm/x}
      - exit: {task: A}
"""


def test_plan_translates_every_step(tmp_path):
    p = guest.plan(scenario(tmp_path, BASIC), 3)
    assert p.lines == [
        "begin 3",
        "3 -1 mkdir /s3",
        "3 -1 set /s3 cgroup.subtree_control|+memory",
        "3 -1 mkdir /s3/p",
        "3 -1 set /s3/p memory.max|62914560",
        "3 -1 mkdir /s3/p/a",
        "3 -1 set /s3/p cgroup.subtree_control|+memory",
        "3 0 spawn A /s3/p/a 500 -1",
        "3 1 task A anon buf 8192 4",
        "3 2 task A write /mnt/disk/s3/data/log 8192",
        "3 3 task A write /mnt/tmp/s3/dev/shm/x 4096",
        "3 4 task A read /mnt/disk/s3/data/log",
        "3 5 set /s3/p memory.high|20971520",
        "3 6 dump /s3/p /s3/p/a",
        "3 7 state A",
        "3 8 unlink /mnt/tmp/s3/dev/shm/x",
        "3 9 exit A",
        "end 3",
    ]
    assert p.dirs == {"/mnt/disk/s3/data", "/mnt/tmp/s3/dev/shm"}
    assert p.scenario_cgroup("/s3/p/a") == "/p/a"


def test_job_script_pins_and_records_the_settings(tmp_path):
    p = guest.plan(scenario(tmp_path, BASIC), 1)
    sh = guest.job_script([p], v2=True)
    for line in ("echo 60 > /proc/sys/vm/swappiness", "echo 20 > /proc/sys/vm/dirty_ratio",
                 "echo 10 > /proc/sys/vm/dirty_background_ratio",
                 "echo never > /sys/kernel/mm/transparent_hugepage/enabled",
                 "echo 67108864 > /sys/block/zram0/disksize",
                 "/bin/wl /s1.wl $O",
                 "$B mkdir -p /mnt/disk/s1/data"):
        assert line in sh.splitlines()
    assert '@@I uname' in sh and "@@I lru_gen" in sh
    assert "$B mount -t cgroup2 none /sys/fs/cgroup || say '@@E no cgroup2'" in sh
    files = guest.job_files([p], v2=True)
    assert set(files) == {"job.sh", "s1.wl"} and files["s1.wl"].startswith("begin 1\n")


@pytest.mark.parametrize("step,message", [
    ("- migrate: {task: A, node: 1}", "s.yaml:9: step migrate: the guest workload cannot"),
    ("- splice: {task: A, file: /data/f}", "s.yaml:9: step splice"),
])
def test_steps_the_guest_cannot_run(tmp_path, step, message):
    body = f"""\
        format: 1
        machine: {{kernel: "6.12", cgroup: v2, memory: 256MiB, nodes: 2}}
        cgroups:
          /a: {{}}
        steps:
          - spawn: {{task: A, cgroup: /a}}
          - write: {{task: A, file: /data/f, size: 4KiB}}
          - anon: {{task: A, size: 4KiB, as: b}}
          {step}
    """
    sc = scenario(tmp_path, body)
    with pytest.raises(guest.Unsupported) as e:
        guest.plan(dataclass_replace(sc, nodes=1), 1)
    assert message in str(e.value)
    with pytest.raises(guest.Unsupported, match="s.yaml:2: machine.nodes 2: the guest has one"):
        guest.plan(sc, 1)


def test_a_machine_too_small_for_the_guest(tmp_path):
    sc = scenario(tmp_path, BASIC.replace("memory: 256MiB", "memory: 64MiB"))
    with pytest.raises(guest.Unsupported, match="s.yaml:2: machine.memory 64MiB: the guest "
                                                "kernel itself needs about 100 MiB"):
        guest.plan(sc, 1)


def dataclass_replace(sc, **machine):
    import dataclasses

    return dataclasses.replace(sc, machine=dataclasses.replace(sc.machine, **machine))


def test_cli_unsupported_and_invalid_exit_2(tmp_path, capsys):
    v1 = tmp_path / "v1.yaml"
    v1.write_text("format: 1\nmachine: {kernel: '6.1', cgroup: v1}\ncgroups: {/a: {}}\n"
                  "steps:\n  - spawn: {task: A, cgroup: /a}\n")
    assert main(["validate", str(v1), "--kernel", "6.12"]) == 2
    err = capsys.readouterr().err
    assert "cannot run on 6.12" in err and "Traceback" not in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: 1\nsteps:\n  - fly: {}\n")
    assert main(["validate", str(bad)]) == 2
    assert "bad.yaml:3" in capsys.readouterr().err
    assert main(["validate"]) == 2


def test_series_for_defaults(tmp_path):
    steps = "steps:\n  - sync: {}\n"
    sc = scenario(tmp_path, "format: 1\nmachine: {kernel: '3.17', cgroup: v1}\n" + steps)
    assert series_for(sc, None) == "6.1"
    sc = scenario(tmp_path, "format: 1\nmachine: {kernel: '6.12'}\n" + steps, "b.yaml")
    assert series_for(sc, None) == "6.12" and series_for(sc, "6.1") == "6.1"


OUTPUT = """\
SeaBIOS noise
@@I uname 6.12.117+deb12-amd64\r
@@I swappiness 60
@@I lru_gen 0x0007
@@S 2 begin
@@I 2 thp never
@@R 2 -1 ok
@@R 2 0 ok
@@R 2 1 EINVAL
@@R 2 1 ok
@@F 2 3 /s2/a memory.current
@@L 2 3 /s2/a memory.current 262144
@@F 2 3 /s2/a memory.stat
@@L 2 3 /s2/a memory.stat anon 4096
@@L 2 3 /s2/a memory.stat file 0
@@F 2 3 /s2/a memory.high
@@L 2 3 /s2/a memory.high max
@@T 2 4 A killed
@@V 2 5 fd1 31457280
@@R 2 3 ok
@@Q what
@@R 2 x
@@W 2 3 /s2/a 57 4 settled
@@S 2 end
@@D done
"""


def test_parse_result_port():
    out = serial.parse(OUTPUT)
    assert out.done and out.info == {"uname": "6.12.117+deb12-amd64", "swappiness": "60",
                                     "lru_gen": "0x0007"}
    s = out.scenarios[2]
    assert s.begun and s.ended and s.info == {"thp": "never"}
    assert s.outcomes == {-1: "ok", 0: "ok", 1: "EINVAL", 3: "ok"}
    assert s.files[3]["/s2/a"] == {"memory.current": "262144",
                                   "memory.stat": "anon 4096\nfile 0", "memory.high": "max"}
    assert s.states == {4: {"A": "killed"}} and s.fd_values == {5: 31457280}
    assert s.settle == {3: {"/s2/a": (57, 4, True)}}
    assert out.errors == ["unreadable guest line: '@@R 2 x'"]
    assert compare.values(s.files[3]["/s2/a"]) == {
        "memory.current": 262144, "memory.stat.anon": 4096, "memory.stat.file": 0,
        "memory.high": "max"}


def test_rules_table_is_one_table_with_reasons():
    assert compare.rule_for("memory.stat.anon").kind == "anon"
    assert compare.rule_for("memory.stat.shmem").kind == "file"
    assert compare.rule_for("memory.stat.unevictable").kind == "exact"
    assert compare.rule_for("memory.events.local.oom_kill").kind == "exact"
    assert compare.rule_for("memory.current").kind == "current"
    assert compare.rule_for("memory.swap.current").kind == "swap"
    assert compare.rule_for("memory.stat.inactive_file").kind == "lru"
    assert compare.rule_for("memory.events.max").kind == "events"
    assert compare.rule_for("memory.events.low").kind == "events"
    assert compare.rule_for("memory.swap.events.max").kind == "events"
    assert compare.rule_for("memory.zswap.max").kind == "exact"
    # every other key is shown with its reason, never silently dropped
    for key in ("memory.stat.slab", "memory.stat.pgfault", "memory.kmem.usage_in_bytes",
                "memory.stat.workingset_refault_file", "memory.stat.some_new_key",
                "memory.events.local.some_new_event", "memory.something"):
        assert compare.rule_for(key).kind == "info", key
    assert compare.rule_for("task A").kind == "exact"
    assert all(r.reason and r.allowed for r in compare.RULES)


S = compare.Spread


@pytest.mark.parametrize("key,kernel,model,ctx,ok", [
    ("memory.stat.anon", 52428800, 52428800, {}, True),
    ("memory.stat.anon", 52428800, 52432896, {}, False),
    # the tolerance is the kernel's reclaim, never the model's: a model that swaps where the
    # kernel did not gets no slack
    ("memory.stat.anon", 31195136, 31211520, {"reclaimed": True}, True),
    ("memory.stat.anon", 31195136, 31211520, {}, False),
    ("memory.stat.anon", 31195136, 31195136 + 131072 + 4096, {"reclaimed": True}, False),
    ("memory.stat.anon", 20971520 + 7 * 4096, 20971520, {"forked": 1}, True),
    ("memory.stat.anon", 20971520 + 9 * 4096, 20971520, {"forked": 1}, False),
    ("memory.stat.anon", 20971520 + 9 * 4096, 20971520, {"forked": 2}, True),
    ("memory.stat.anon", 20971520 - 4096, 20971520, {"forked": 1}, False),
    ("memory.stat.anon_thp", 52428800, 50331648, {}, False),
    # memory.current: one charge batch a CPU, never the model's kernel memory
    ("memory.current", 52690944, 52690944 + 262144, {}, True),
    ("memory.current", 52690944, 52690944 + 262144 + 4096, {}, False),
    ("memory.current", 0, 2 * 262144, {"cpus": 2}, True),
    ("memory.swap.current", 21233664, 21217280, {"swapped": True}, True),
    ("memory.swap.current", 21233664, 19000000, {"swapped": True}, False),
    # swap where the kernel never swapped: exact (256 KiB against 0 used to pass)
    ("memory.swap.current", 0, 262144, {}, False),
    ("memory.swap.current", 0, 0, {}, True),
    ("memory.stat.active_anon", 20930560, 0, {}, False),
    # the lists may lack the pages in the CPUs' lru_add batches (15 on 6.1, 31 on 6.12)
    ("memory.stat.inactive_anon", 4169728, 4194304, {}, True),
    ("memory.stat.inactive_anon", 4194304 - 16 * 4096, 4194304, {}, False),
    ("memory.stat.inactive_anon", 4194304 - 16 * 4096, 4194304, {"series": "6.12"}, True),
    ("memory.stat.inactive_anon", 4194304, 4169728, {}, False),
    ("memory.stat.shmem", 110592, 131072, {}, False),
    ("memory.stat.shmem", 110592, 131072, {"reclaimed": True}, True),
    ("memory.stat.file", 23330816, 30625792, {"reclaimed": True}, False),
    ("memory.stat.unevictable", 4096, 8192, {"reclaimed": True}, False),
    # event counts: the kernel's runs and 2 either side, whatever the size of the count
    ("memory.events.max", 35, 18, {}, False),
    ("memory.events.max", 93, 57, {}, False),
    ("memory.events.max", 35, 33, {}, True),
    ("memory.events.max", S((18, 35)), 18, {}, True),
    ("memory.events.max", S((18, 35)), 25, {}, True),
    ("memory.events.max", S((18, 35)), 38, {}, False),
    ("memory.memsw.failcnt", 40, 28, {}, False),
    ("memory.events.oom_kill", 1, 0, {}, False),
    ("memory.max", "max", "max", {}, True),
    ("memory.max", 31457280, "max", {}, False),
    ("memory.stat.slab", 2343616, 0, {}, None),
    ("memory.stat.file", None, 0, {}, False),
    ("task A", S(("alive", "killed")), "killed", {}, True),
    ("task A", S(("alive", "killed")), "exited", {}, False),
])
def test_judge(key, kernel, model, ctx, ok):
    assert compare.judge(compare.rule_for(key), kernel, model, compare.Context(**ctx)) is ok


def test_merge_runs():
    assert compare.merge_runs([5, 5, 5]) == 5
    assert compare.merge_runs([35, 18, 35]) == S((18, 35))
    assert str(compare.merge_runs([35, 18, 20])) == "18..35"
    assert compare.merge_runs([None, 4, None]) == 4 and compare.merge_runs([None]) is None
    assert str(compare.merge_runs(["ok", "ENOMEM"])) == "ENOMEM|ok"


def test_context_is_the_kernels_alone():
    assert compare.reclaimed([{"memory.events.max": 3}]) and compare.reclaimed(
        [{}, {"memory.failcnt": 1}])
    assert compare.reclaimed([{"memory.stat.pgscan": 40}])
    assert not compare.reclaimed([{"memory.events.max": 0, "memory.events.oom": 1}])
    assert compare.swapped([{"memory.swap.peak": 4096}]) and not compare.swapped([{}])
    rows = []
    compare.compare_files([{"memory.stat": "anon 8192\nfile 0"}],
                          {"memory.stat": "anon 4096\nfile 0", "memory.swap.current": "4096"},
                          1, lambda *a: rows.append(a))
    assert {r[0]: r[4] for r in rows} == {"memory.stat.anon": False,
                                          "memory.stat.file": True,
                                          "memory.swap.current": False}


def test_mglru_setting():
    assert compare.mglru_on("0x0007") and not compare.mglru_on("0x0000")
    assert not compare.mglru_on(None) and not compare.mglru_on("absent")


def _guest_from_model(plan, series):
    """A guest result that shows exactly what the model shows."""
    result, snaps = model_run(plan.scenario, series)
    g = serial.GuestScenario(plan.index, begun=True, ended=True)
    for res in result.steps:
        g.outcomes[res.index] = {"ok": "ok", "skipped": "skipped"}.get(res.status, res.error)
    for i, cgs in snaps.items():
        g.files[i] = {plan.cg(cg): files for cg, files in cgs.items()}
    for c in result.checks:
        if c.key.startswith("task "):
            g.states[c.step] = {c.key[5:]: c.actual}
        elif c.key.startswith("fd "):
            g.fd_values[c.step] = c.actual
    return g


def test_compare_scenario_matches_and_mismatches(tmp_path):
    sc = scenario(tmp_path, """\
        format: 1
        machine: {kernel: "6.12", cgroup: v2, memory: 256MiB}
        cgroups:
          /a:
            memory.max: 30M
        steps:
          - spawn: {task: A, cgroup: /a}
          - anon: {task: A, size: 50MiB, as: buf}
          - report: {label: r}
          - expect: {task: A, state: killed}
    """)
    p = guest.plan(sc, 1)
    g = _guest_from_model(p, "6.12")
    r = compare_scenario(p, g, "6.12", {"settings": {"lru_gen": "0x0007"}})
    assert r.matches and len(r.comparison.rows) > 20
    g.files[2]["/s1/a"]["memory.events"] = g.files[2]["/s1/a"]["memory.events"].replace(
        "oom_kill 1", "oom_kill 2")
    g.states[3] = {"A": "alive"}
    g.outcomes[1] = "ENOMEM"
    r = compare_scenario(p, g, "6.12", {"settings": {}})
    bad = sorted((row.key, row.kernel, row.model) for row in r.comparison.mismatches)
    assert bad == [("memory.events.oom_kill", 2, 1), ("step outcome (anon)", "ENOMEM", "ok"),
                   ("task A", "alive", "killed")]
    assert not r.matches
    g = _guest_from_model(p, "6.12")
    g.ended = False
    assert not compare_scenario(p, g, "6.12", {"settings": {}}).matches


def test_extract_vmlinux_finds_the_compressed_elf():
    elf = b"\x7fELF" + bytes(range(256)) * 64
    for packed in (lzma.compress(elf, format=lzma.FORMAT_XZ), gzip.compress(elf)):
        blob = b"MZ setup code \x1f\x8b\x08 not a stream " + packed + b"\0" * 100
        assert cache.extract_vmlinux(blob) == elf
    with pytest.raises(cache.SetupError, match="no xz, zstd or gzip stream"):
        cache.extract_vmlinux(b"MZ" + gzip.compress(b"not an elf"))


def test_cpio_newc_layout():
    blob = cpio_archive({"init": (b"#!/bin/sh\n", 0o755)}, ["bin"])
    assert len(blob) % 512 == 0
    assert blob.startswith(b"070701")
    i = blob.index(b"init\0")
    head = blob[i - 110:i]
    assert head[:6] == b"070701" and int(head[14:22], 16) == 0o100755
    assert int(head[54:62], 16) == len(b"#!/bin/sh\n") and int(head[94:102], 16) == 5
    assert b"TRAILER!!!\0" in blob and b"bin\0" in blob


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMCGSIM_CACHE", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MEMCGSIM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache.cache_dir() == tmp_path / "x" / "memcgsim"
    assert cache.ready("6.12", root=tmp_path / "empty") is None


def test_missing_packages_name_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr(cache, "missing_host_packages", lambda: ["qemu-system-x86", "zstd"])
    monkeypatch.setattr(cache.os, "geteuid", lambda: 1000)
    with pytest.raises(cache.SetupError) as e:
        cache.ensure_host_packages(print)
    assert "apt-get install --no-install-recommends qemu-system-x86 zstd" in str(e.value)
    assert main(["validate", "--setup"]) == 4
    err = capsys.readouterr().err
    assert "setup failed" in err and "qemu-system-x86 zstd" in err and "Traceback" not in err


def test_workload_source_is_shipped():
    src = cache.workload_source()
    assert "int main(" in src and "@@R" in src


def test_an_open_peak_files_value_is_compared(tmp_path):
    sc = scenario(tmp_path, """\
        format: 1
        machine: {kernel: "6.12", cgroup: v2, memory: 256MiB}
        cgroups:
          /t: {}
        steps:
          - spawn: {task: A, cgroup: /t}
          - anon: {task: A, size: 4MiB, as: a}
          - open: {cgroup: /t, file: memory.peak, as: fd1}
          - fd_write: {fd: fd1, text: reset}
          - unmap: {task: A, region: a}
          - expect: {fd: fd1, value: {max: 1MiB}}
    """)
    p = guest.plan(sc, 1)
    assert p.lines[-3:] == ["1 4 task A unmap a", "1 5 fd_read fd1", "end 1"]
    g = _guest_from_model(p, "6.12")
    r = compare_scenario(p, g, "6.12", {"settings": {}})
    row = next(row for row in r.comparison.rows if row.key == "fd fd1")
    assert row.ok and row.kernel == row.model
    g.fd_values[5] = row.model + 262145
    r = compare_scenario(p, g, "6.12", {"settings": {}})
    assert [m.key for m in r.comparison.mismatches] == ["fd fd1"]


def test_a_step_whose_task_was_killed(tmp_path):
    """The kernel cannot show the errno of a system call whose task the OOM killer killed; the
    model's outcome of that step then counts as "killed" when the model killed the task too."""
    sc = scenario(tmp_path, """\
        format: 1
        machine: {kernel: "6.1", cgroup: v1, memory: 256MiB}
        cgroups:
          /ltp:
            memory.limit_in_bytes: 4096
        steps:
          - spawn: {task: P, cgroup: /ltp}
          - anon: {task: P, size: 8192, as: l, touch: false}
          - mlock: {task: P, region: l, may_fail: true}
          - expect: {task: P, state: killed}
    """)
    p = guest.plan(sc, 1)
    g = _guest_from_model(p, "6.1")
    assert g.outcomes[2] == "EAGAIN"
    g.outcomes[2] = "killed"
    r = compare_scenario(p, g, "6.1", {"settings": {}})
    row = next(row for row in r.comparison.rows if row.key == "step outcome (mlock)")
    assert (row.kernel, row.model, row.ok) == ("killed", "killed", True)
    g.outcomes[1] = "killed"       # the model's task was not killed in the anon step
    r = compare_scenario(p, g, "6.1", {"settings": {}})
    assert [m.key for m in r.comparison.mismatches] == ["step outcome (anon)"]


def _fake_boot(monkeypatch, make_output):
    """validate() with the set-up and QEMU replaced: the guest 'prints' make_output(files)."""
    from pathlib import Path

    from memcgsim.validate import qemu, run

    k = cache.GuestKernel("6.12", "6.12.0-test", Path("/nonexistent/vmlinux"),
                          Path("/nonexistent/initramfs"), "linux-image-test")
    monkeypatch.setattr(run.cache, "setup", lambda series, log=None: {s: k for s in series})
    booted = []

    def boot(kernel, job, memory_mib, cpus, timeout=0):
        booted.append((memory_mib, cpus, sorted(job)))
        return qemu.Boot(make_output(job), "console tail line", 1.5, ["qemu"], 0)

    monkeypatch.setattr(run.qemu, "boot", boot)
    return booted


def _as_guest_lines(p, series):
    g = _guest_from_model(p, series)
    n = p.index
    out = [f"@@S {n} begin", f"@@I {n} thp never", f"@@I {n} swap none"]
    out += [f"@@R {n} {i} {o}" for i, o in g.outcomes.items()]
    for i, cgs in g.files.items():
        for cg, files in cgs.items():
            for name, text in files.items():
                out.append(f"@@F {n} {i} {cg} {name}")
                out += [f"@@L {n} {i} {cg} {name} {line}" for line in text.splitlines()]
    for i, states in g.states.items():
        out += [f"@@T {n} {i} {t} {s}" for t, s in states.items()]
    return out + [f"@@S {n} end"]


def _two_files(tmp_path):
    files = [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    files[0].write_text(textwrap.dedent(BASIC))
    files[1].write_text(textwrap.dedent(BASIC).replace("memory: 256MiB", "memory: 512MiB"))
    scs = [load_scenario(str(f)) for f in files]
    return files, scs, {i + 1: guest.plan(sc, i + 1) for i, sc in enumerate(scs)}


def _output(plans, runs=None):
    """A fake guest: prints what the model shows; the runs given (1, 2, ...) also show
    memory.events max 3 more, and say their dumps took 40 ms to settle."""
    booted = []

    def output(job):
        booted.append(1)
        lines = ["@@I uname 6.12.0-test", "@@I swappiness 60", "@@I lru_gen 0x0007"]
        for name in sorted(job):
            if name.endswith(".wl"):
                more = [ln.replace("max 0", "max 3") if runs and len(booted) in runs and
                        "memory.events max 0" in ln else ln
                        for ln in _as_guest_lines(plans[int(name[1:-3])], "6.12")]
                if runs and len(booted) in runs:
                    n = int(name[1:-3])
                    more.insert(-1, f"@@W {n} 6 /s{n}/p 40 3 settled")
                lines += more
        return "\n".join(lines + ["@@D done"]) + "\n"

    return output


def test_validate_end_to_end_without_qemu(tmp_path, monkeypatch, capsys):
    from memcgsim.validate.run import validate

    files, scs, plans = _two_files(tmp_path)
    booted = _fake_boot(monkeypatch, _output(plans))
    v = validate(scs)
    # three boots of each machine size (the default --runs 3)
    assert booted == [(256, 1, ["job.sh", "s1.wl"])] * 3 + [(512, 1, ["job.sh", "s2.wl"])] * 3
    assert v.exit_status == 0 and [r.matches for r in v.results] == [True, True]
    assert len(v.results[0].guests) == 3
    assert v.results[0].boot["release"] == "6.12.0-test" and v.results[0].boot["thp"] == "never"
    assert main(["validate", "--runs", "1", str(files[0])]) == 0
    assert "matches" in capsys.readouterr().out
    assert main(["validate", "--runs", "1", str(files[0]), "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["matches"] and doc["scenarios"][0]["rows"] and doc["rules"]
    assert {r["verdict"] for r in doc["scenarios"][0]["rows"]} == {"ok", "not compared"}


def test_the_kernels_spread_over_runs(tmp_path, monkeypatch, capsys):
    """Runs that disagree give a range; the model passes inside it (and EVENTS_SLACK around
    it), and the text shows the tolerated difference and the settle time."""
    from memcgsim.validate.render import render_text
    from memcgsim.validate.run import validate

    files, scs, plans = _two_files(tmp_path)
    _fake_boot(monkeypatch, _output(plans, runs={2}))
    v = validate(scs[:1])
    row = next(r for r in v.results[0].comparison.rows
               if r.key == "memory.events.max" and r.cgroup == "/p")
    assert row.kernel == compare.Spread((0, 3)) and row.model == 0 and row.ok
    assert v.results[0].settle == (40, 0)
    text = render_text(v)
    assert "values settled within 40 ms" in text
    assert "memory.events.max" in text and "0..3" in text and "ok, runs differ" in text
    assert "memory.events.max" not in render_text(v, "brief")
    # every run 3 more: outside the range's slack? no, 3 > EVENTS_SLACK: a mismatch
    _fake_boot(monkeypatch, _output(plans, runs={1, 2, 3}))
    v = validate(scs[:1])
    bad = [(r.cgroup, r.key) for r in v.results[0].comparison.mismatches]
    assert ("/p", "memory.events.max") in bad and v.exit_status == 1
    assert "MISMATCH" in render_text(v, "brief")


def test_record_and_replay(tmp_path, monkeypatch, capsys):
    """--record keeps the kernel's runs; --replay compares the model with them without a boot,
    and refuses a scenario whose steps changed since."""
    files, scs, plans = _two_files(tmp_path)
    booted = _fake_boot(monkeypatch, _output(plans, runs={2}))
    rec = tmp_path / "rec.json"
    assert main(["validate", str(files[0]), str(files[1]), "--record", str(rec)]) == 0
    first = capsys.readouterr().out
    assert len(booted) == 6 and rec.exists()
    assert main(["validate", str(files[0]), "--record", str(rec)]) == 2
    assert "exists" in capsys.readouterr().err
    booted.clear()
    assert main(["validate", str(files[0]), str(files[1]), "--replay", str(rec)]) == 0
    assert booted == [] and capsys.readouterr().out == first
    files[0].write_text(textwrap.dedent(BASIC).replace("size: 8KiB, as: buf", "size: 12KiB, "
                                                        "as: buf"))
    assert main(["validate", str(files[0]), "--replay", str(rec)]) == 2
    err = capsys.readouterr().err
    assert "holds no kernel runs of this scenario on 6.12" in err and "Traceback" not in err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["validate", str(files[1]), "--replay", str(tmp_path / "bad.json")]) == 2
    assert "not a file of recorded kernel runs" in capsys.readouterr().err
    assert main(["validate", str(files[1]), "--runs", "0"]) == 2
    assert "--runs 0" in capsys.readouterr().err


def test_markdown_lists_each_failure_with_its_cause(tmp_path, monkeypatch, capsys):
    files, scs, plans = _two_files(tmp_path)
    _fake_boot(monkeypatch, _output(plans, runs={1, 2, 3}))
    assert main(["validate", str(files[0]), "--markdown"]) == 1
    md = capsys.readouterr().out
    assert md.startswith("| file | kernel | runs | settled (ms) | exact | anon |")
    assert "**not explained**" in md and "| events |" in md.splitlines()[0]
    row = next(ln for ln in md.splitlines() if ln.startswith("| `") and "a.yaml" in ln)
    assert row.endswith("| **2 of 18 fail** |")     # memory.events max, events.local max
    assert "memory.events.max | 3 | 0 |" in md


def test_a_guest_that_does_not_finish_exits_4(tmp_path, monkeypatch, capsys):
    f = tmp_path / "a.yaml"
    f.write_text(textwrap.dedent(BASIC))
    _fake_boot(monkeypatch, lambda job: "@@I uname 6.12.0-test\n@@E cannot mount the ext4 disk\n")
    assert main(["validate", str(f)]) == 4
    err = capsys.readouterr().err
    assert "did not finish" in err and "cannot mount the ext4 disk" in err
    assert "console tail line" in err and "Traceback" not in err
