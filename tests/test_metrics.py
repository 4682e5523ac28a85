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
