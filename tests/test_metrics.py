"""cAdvisor, docker and kubelet memory metrics derived from the v1 files."""

import re

from memcgsim import Machine
from memcgsim.cli import main
from memcgsim.metrics import (
    cadvisor_v1,
    docker_mem_usage_v1,
    kubelet_working_set_v1,
    prometheus_text,
)

P = 4096
SAMPLE = re.compile(r'^(\w+)\{cgroup="([^"]*)",report="((?:[^"\\]|\\.)*)"\} (\d+)$')


def files_of(m, path):
    return {name: m.read_file(path, name) for name in
            ("memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.failcnt",
             "memory.stat")}


def test_working_set_is_usage_minus_inactive_file():
    m = Machine(4096, swap_pages=64)
    m.mkdir("/a")
    t = m.spawn("A", "/a")
    m.touch(t, m.mmap_anon(t, 10))
    m.write(t, "/data/f", 6)
    m.reclaim(m.pfn_of(t.mm.vmas[0], 0))
    f = files_of(m, "/a")
    met = cadvisor_v1(f)
    usage = int(f["memory.usage_in_bytes"])
    assert usage == 31 * P                      # 9 + 6 pages and a stock of 16
    assert met["container_memory_usage_bytes"] == usage
    assert met["container_memory_working_set_bytes"] == usage - 6 * P
    assert (met["container_memory_rss"], met["container_memory_cache"]) == (9 * P, 6 * P)
    assert met["container_memory_swap"] == P
    assert docker_mem_usage_v1(f) == usage - 6 * P
    assert kubelet_working_set_v1(f) == usage - 6 * P


def test_working_set_is_clamped_at_zero():
    stat = "total_rss 0\ntotal_cache 8192\ntotal_mapped_file 0\ntotal_inactive_file 8192\n"
    f = {"memory.usage_in_bytes": "4096\n", "memory.max_usage_in_bytes": "4096\n",
         "memory.failcnt": "0\n", "memory.stat": stat}
    assert cadvisor_v1(f)["container_memory_working_set_bytes"] == 0
    assert docker_mem_usage_v1(f) == 4096


def test_prometheus_output_parses_back(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text('format: 1\nmachine: {kernel: "3.17", cgroup: v1, memory: 64MiB}\n'
                    "cgroups:\n  /web: {}\n  /db: {}\nsteps:\n"
                    "  - spawn: {task: A, cgroup: /web}\n"
                    "  - anon: {task: A, size: 1MiB, as: x}\n"
                    '  - report: {label: "one \\"quoted\\"", cgroups: [/web, /db]}\n')
    assert main(["run", "--prometheus", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    samples = [SAMPLE.match(line) for line in out if not line.startswith("#")]
    assert all(samples), out
    got = {(s.group(1), s.group(2)): int(s.group(4)) for s in samples}
    assert got[("container_memory_rss", "/web")] == 1 << 20
    assert got[("container_memory_usage_bytes", "/web")] == 1 << 20
    assert got[("container_memory_usage_bytes", "/db")] == 0
    assert {s.group(3) for s in samples} == {'one \\"quoted\\"'}
    assert "# TYPE container_memory_failcnt counter" in out
    assert len([x for x in out if x.startswith("# HELP")]) == 8


def test_no_reports_no_samples():
    assert prometheus_text([]) == ""


def test_v2_metrics_come_from_current_stat_and_swap_current():
    from memcgsim.metrics import cadvisor, docker_mem_usage, kubelet_working_set

    m = Machine(4096, swap_pages=64, profile="6.12", cgroup="v2")
    m.mkdir("/a")
    t = m.spawn("A", "/a")
    m.touch(t, m.mmap_anon(t, 10))
    m.write(t, "/data/f", 6)
    m.reclaim(m.pfn_of(t.mm.vmas[0], 0))
    f = {name: m.read_file("/a", name) for name in m.fs.readable("/a")
         if name.startswith("memory.")}
    met = cadvisor(f)
    usage = int(f["memory.current"])
    assert usage == 63 * P             # one 64-page batch, less the page swapped out and freed
    assert met["container_memory_usage_bytes"] == usage
    assert met["container_memory_working_set_bytes"] == usage - 6 * P
    assert (met["container_memory_rss"], met["container_memory_cache"]) == (9 * P, 6 * P)
    assert met["container_memory_swap"] == P and met["container_memory_failcnt"] == 0
    assert met["container_memory_max_usage_bytes"] == 64 * P
    assert met["container_oom_events_total"] == 0
    assert docker_mem_usage(f) == usage - 6 * P
    assert kubelet_working_set(f) == usage - 6 * P


def test_oom_events_count_the_killed_tasks_own_cgroup():
    from memcgsim.metrics import cadvisor

    m = Machine(4096, swap_pages=0, profile="6.12", cgroup="v2")
    m.mkdir("/p")
    m.mkdir("/p/a")
    assert m.write_file("/p", "cgroup.subtree_control", "+memory") == 0
    assert m.write_file("/p", "memory.max", f"{100 * P}") == 0
    t = m.spawn("A", "/p/a")
    m.touch(t, m.mmap_anon(t, 200))
    assert t.state == "killed"
    files = {p: {n: m.read_file(p, n) for n in m.fs.readable(p) if n.startswith("memory.")}
             for p in ("/p", "/p/a")}
    assert cadvisor(files["/p/a"])["container_oom_events_total"] == 1
    assert cadvisor(files["/p"])["container_oom_events_total"] == 0
    v1 = Machine(4096, swap_pages=0, profile="6.1", cgroup="v1")
    v1.mkdir("/a")
    assert v1.write_file("/a", "memory.limit_in_bytes", f"{100 * P}") == 0
    t = v1.spawn("A", "/a")
    v1.touch(t, v1.mmap_anon(t, 200))
    f = {n: v1.read_file("/a", n) for n in v1.fs.readable("/a") if n.startswith("memory.")}
    assert cadvisor(f)["container_oom_events_total"] == 1
