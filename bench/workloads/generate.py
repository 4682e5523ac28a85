"""Write the workload benchmark set: each class at about 1 GiB and about 8 GiB of page events.

    python bench/workloads/generate.py        # rewrites bench/workloads/*.yaml

Each class is a template over one unit U (MiB); the sizes are chosen so that
memcgsim.scenario.page_events(file) adds up to about 1 GiB (U = 1) or 8 GiB (U = 8) of pages.
The files are checked in; run.py runs them.
"""

from __future__ import annotations

import pathlib

HERE = pathlib.Path(__file__).parent

POD = """\
# {title}
# A pod under a node-level parent: app and sidecar in their own leaves; the app builds a heap, the
# sidecar writes a log (dirty page cache), the app reads it, then grows its heap again. The pod's
# limit is below what the steps touch, so reclaim writes back, swaps and drops cache.
format: 1
machine:
  kernel: "{kernel}"
  cgroup: {cgroup}
  memory: {ram}MiB
  swap: {swap}MiB
  cpus: 2
cgroups:
  /kubepods:
    {max}: {parent}MiB{memsw_parent}
  /kubepods/pod:
    {max}: {pod}MiB{memsw_pod}
  /kubepods/pod/app: {{}}
  /kubepods/pod/sidecar: {{}}
steps:
  - spawn: {{task: app, cgroup: /kubepods/pod/app}}
  - spawn: {{task: sidecar, cgroup: /kubepods/pod/sidecar, cpu: 1}}
  - anon: {{task: app, size: {heap}MiB, as: heap}}
  - write: {{task: sidecar, file: /var/log/app.log, size: {log}MiB, fs: ext4}}
  - read: {{task: app, file: /var/log/app.log}}
  - anon: {{task: app, size: {heap}MiB, as: heap2}}
  - report: {{label: end, cgroups: [/kubepods/pod]}}
"""


def pod(u: int, kernel: str, cgroup: str) -> str:
    v1 = cgroup == "v1"
    memsw = "\n    memory.memsw.limit_in_bytes: {}MiB"
    return POD.format(
        title=f"pod on {kernel} cgroup {cgroup}" + (" with memsw" if v1 else ""),
        kernel=kernel, cgroup=cgroup, ram=2736 * u, swap=680 * u,
        max="memory.limit_in_bytes" if v1 else "memory.max",
        parent=1024 * u, pod=512 * u,
        memsw_parent=memsw.format(1536 * u) if v1 else "",
        memsw_pod=memsw.format(768 * u) if v1 else "",
        heap=170 * u, log=340 * u)


def pagecache_317(u: int) -> str:
    return f"""\
# 3.17, cgroup v1: a writer fills the page cache under a limit (writeback in reclaim), syncs,
# and reads the file back.
format: 1
machine: {{kernel: "3.17", cgroup: v1, memory: {1024 * u}MiB, swap: 0}}
cgroups:
  /db:
    memory.limit_in_bytes: {64 * u}MiB
steps:
  - spawn: {{task: db, cgroup: /db}}
  - write: {{task: db, file: /data/table, size: {256 * u}MiB, fs: ext4}}
  - sync: {{}}
  - read: {{task: db, file: /data/table}}
  - truncate: {{file: /data/table, size: 0}}
  - report: {{label: end, cgroups: [/db]}}
"""


def tmpfs_swap(u: int) -> str:
    return f"""\
# 6.12, v2: tmpfs files written past memory.max go to swap; the reader brings them back.
format: 1
machine: {{kernel: "6.12", cgroup: v2, memory: {1024 * u}MiB, swap: {1024 * u}MiB}}
cgroups:
  /cache:
    memory.max: {96 * u}MiB
steps:
  - spawn: {{task: t, cgroup: /cache}}
  - write: {{task: t, file: /dev/shm/blob, size: {320 * u}MiB, fs: tmpfs}}
  - read: {{task: t, file: /dev/shm/blob}}
  - unlink: {{file: /dev/shm/blob}}
  - report: {{label: end, cgroups: [/cache]}}
"""


def fork_cow(u: int) -> str:
    return f"""\
# 6.12, v2: a big heap, forked; the child writes every page (COW), then both exit.
format: 1
machine: {{kernel: "6.12", cgroup: v2, memory: {2048 * u}MiB, swap: 0}}
cgroups:
  /svc:
    memory.max: {768 * u}MiB
steps:
  - spawn: {{task: parent, cgroup: /svc}}
  - anon: {{task: parent, size: {170 * u}MiB, as: heap}}
  - fork: {{task: parent, child: child}}
  - touch: {{task: child, region: heap}}
  - exit: {{task: child}}
  - touch: {{task: parent, region: heap}}
  - exit: {{task: parent}}
  - report: {{label: end, cgroups: [/svc]}}
"""


def shared_mmap(u: int) -> str:
    return f"""\
# 6.1, v2: one cgroup writes a file; tasks of two cgroups map it shared and read every page.
# The pages stay charged to the first cgroup that faulted them in.
format: 1
machine: {{kernel: "6.1", cgroup: v2, memory: {1024 * u}MiB, swap: 0}}
cgroups:
  /a:
    memory.max: {192 * u}MiB
  /b:
    memory.max: {192 * u}MiB
steps:
  - spawn: {{task: w, cgroup: /a}}
  - spawn: {{task: r, cgroup: /b, cpu: 0}}
  - write: {{task: w, file: /data/shared, size: {144 * u}MiB, fs: ext4}}
  - sync: {{}}
  - drop_caches: {{}}
  - mmap: {{task: r, file: /data/shared, as: m1}}
  - mmap: {{task: w, file: /data/shared, as: m2}}
  - unmap: {{task: r, region: m1}}
  - unmap: {{task: w, region: m2}}
  - report: {{label: end, cgroups: [/a, /b]}}
"""


def mlock_pressure(u: int) -> str:
    return f"""\
# 6.12, v2: half the limit mlocked, then anonymous memory beyond the limit: reclaim must skip
# the locked pages and swap the rest.
format: 1
machine: {{kernel: "6.12", cgroup: v2, memory: {1024 * u}MiB, swap: {512 * u}MiB}}
cgroups:
  /rt:
    memory.max: {128 * u}MiB
steps:
  - spawn: {{task: t, cgroup: /rt}}
  - anon: {{task: t, size: {64 * u}MiB, as: locked}}
  - mlock: {{task: t, region: locked}}
  - anon: {{task: t, size: {288 * u}MiB, as: heap}}
  - touch: {{task: t, region: heap}}
  - unmap: {{task: t, region: heap}}
  - report: {{label: end, cgroups: [/rt]}}
"""


def high_throttle(u: int) -> str:
    return f"""\
# 6.12, v2: memory.high well below memory.max: every charge past high reclaims on the way back
# to user space (mem_cgroup_handle_over_high).
format: 1
machine: {{kernel: "6.12", cgroup: v2, memory: {2048 * u}MiB, swap: {1024 * u}MiB}}
cgroups:
  /batch:
    memory.high: {128 * u}MiB
    memory.max: {512 * u}MiB
steps:
  - spawn: {{task: t, cgroup: /batch}}
  - anon: {{task: t, size: {384 * u}MiB, as: heap}}
  - write: {{task: t, file: /data/out, size: {256 * u}MiB, fs: ext4}}
  - touch: {{task: t, region: heap}}
  - report: {{label: end, cgroups: [/batch]}}
"""


def reclaim_cache(u: int) -> str:
    return f"""\
# 6.12, v2: a cache-heavy group read from disk, then shrunk by memory.reclaim (proactive
# reclaim, as senpai-like agents do), and read again.
format: 1
machine: {{kernel: "6.12", cgroup: v2, memory: {1024 * u}MiB, swap: 0}}
cgroups:
  /web: {{}}
steps:
  - spawn: {{task: w, cgroup: /web}}
  - write: {{task: w, file: /srv/static, size: {320 * u}MiB, fs: ext4}}
  - sync: {{}}
  - set: {{cgroup: /web, memory.reclaim: {256 * u}MiB}}
  - read: {{task: w, file: /srv/static}}
  - set: {{cgroup: /web, memory.reclaim: {256 * u}MiB}}
  - report: {{label: end, cgroups: [/web]}}
"""


def many_cgroups(u: int) -> str:
    lines = [f"""\
# 6.12, v2: 100 small cgroups under one parent, each with a task that maps {10 * u} MiB;
# the parent's limit makes them reclaim from each other.
format: 1
machine: {{kernel: "6.12", cgroup: v2, memory: {2048 * u}MiB, swap: {512 * u}MiB}}
cgroups:
  /fleet:
    memory.max: {768 * u}MiB"""]
    for i in range(100):
        lines.append(f"  /fleet/c{i:02d}: {{}}")
    lines.append("steps:")
    for i in range(100):
        lines.append(f"  - spawn: {{task: t{i:02d}, cgroup: /fleet/c{i:02d}}}")
        lines.append(f"  - anon: {{task: t{i:02d}, size: {10 * u}MiB, as: heap}}")
    lines.append("  - report: {label: end, cgroups: [/fleet]}")
    return "\n".join(lines) + "\n"


def four_cpus(u: int) -> str:
    lines = [f"""\
# 6.12, v2: four CPUs, a task on each, all charging one cgroup near its limit: the per-CPU
# stocks are drained whenever the limit is hit (drain_all_stock).
format: 1
machine: {{kernel: "6.12", cgroup: v2, memory: {2048 * u}MiB, swap: {1024 * u}MiB, cpus: 4}}
cgroups:
  /job:
    memory.max: {512 * u}MiB
steps:"""]
    for c in range(4):
        lines.append(f"  - spawn: {{task: w{c}, cgroup: /job, cpu: {c}}}")
    for part in range(4):
        for c in range(4):
            lines.append(f"  - anon: {{task: w{c}, size: {64 * u}MiB, as: r{part}}}")
    lines.append("  - report: {label: end, cgroups: [/job]}")
    return "\n".join(lines) + "\n"


CLASSES = {
    "pod-6.12-v2": lambda u: pod(u, "6.12", "v2"),
    "pod-6.1-v1": lambda u: pod(u, "6.1", "v1"),
    "pagecache-3.17-v1": pagecache_317,
    "tmpfs-swap": tmpfs_swap,
    "fork-cow": fork_cow,
    "shared-mmap": shared_mmap,
    "mlock-pressure": mlock_pressure,
    "high-throttle": high_throttle,
    "reclaim-cache": reclaim_cache,
    "many-cgroups": many_cgroups,
    "four-cpus": four_cpus,
}
SIZES = {"1g": 1, "8g": 8}


def main() -> None:
    for name, make in CLASSES.items():
        for size, u in SIZES.items():
            (HERE / f"{name}-{size}.yaml").write_text(make(u))


if __name__ == "__main__":
    main()
