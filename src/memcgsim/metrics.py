"""Container metrics derived from the cgroup files, under the names people graph them.

Computed from the file texts a report holds, the way the tools compute them from a real
/sys/fs/cgroup: cAdvisor (container_memory_*), `docker stats` (MEM USAGE) and the kubelet
(workingSetBytes). cgroup v1 only in this version.
"""

from __future__ import annotations

#: name -> (help, type)
CADVISOR = {
    "container_memory_usage_bytes": ("Current memory usage in bytes, including all memory "
                                     "regardless of when it was accessed", "gauge"),
    "container_memory_working_set_bytes": ("Current working set in bytes", "gauge"),
    "container_memory_rss": ("Size of RSS in bytes", "gauge"),
    "container_memory_cache": ("Number of bytes of page cache memory", "gauge"),
    "container_memory_swap": ("Container swap usage in bytes", "gauge"),
    "container_memory_mapped_file": ("Size of memory mapped files in bytes", "gauge"),
    "container_memory_max_usage_bytes": ("Maximum memory usage recorded in bytes", "gauge"),
    "container_memory_failcnt": ("Number of memory usage hits limits", "counter"),
}


def _stat(files: dict) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in files["memory.stat"].splitlines())}


def cadvisor_v1(files: dict) -> dict[str, int]:
    """cAdvisor's container_memory_* from v1 files: totals of the subtree from memory.stat,
    working set = usage - total_inactive_file (clamped at 0)."""
    stat = _stat(files)
    usage = int(files["memory.usage_in_bytes"])
    inactive_file = stat.get("total_inactive_file", 0)
    return {
        "container_memory_usage_bytes": usage,
        "container_memory_working_set_bytes": max(0, usage - inactive_file),
        "container_memory_rss": stat["total_rss"],
        "container_memory_cache": stat["total_cache"],
        "container_memory_swap": stat.get("total_swap", 0),
        "container_memory_mapped_file": stat["total_mapped_file"],
        "container_memory_max_usage_bytes": int(files["memory.max_usage_in_bytes"]),
        "container_memory_failcnt": int(files["memory.failcnt"]),
    }


def docker_mem_usage_v1(files: dict) -> int:
    """`docker stats` MEM USAGE on cgroup v1 (docker 20.10 on): usage - total_inactive_file,
    when that is below usage."""
    usage = int(files["memory.usage_in_bytes"])
    inactive = _stat(files).get("total_inactive_file")
    return usage - inactive if inactive is not None and inactive < usage else usage


def kubelet_working_set_v1(files: dict) -> int:
    """kubelet's workingSetBytes (from cAdvisor): usage - total_inactive_file, clamped at 0."""
    return cadvisor_v1(files)["container_memory_working_set_bytes"]


def prometheus_text(reports: list) -> str:
    """Text exposition of the cAdvisor metrics of every report: labels cgroup and report."""
    samples: dict[str, list[str]] = {name: [] for name in CADVISOR}
    for r in reports:
        for path, files in r["cgroups"].items():
            label = r["label"].replace("\\", "\\\\").replace('"', '\\"')
            for name, value in cadvisor_v1(files).items():
                samples[name].append(f'{name}{{cgroup="{path}",report="{label}"}} {value}')
    out = []
    for name, (help_, kind) in CADVISOR.items():
        if samples[name]:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples[name])
    return "\n".join(out) + ("\n" if out else "")
