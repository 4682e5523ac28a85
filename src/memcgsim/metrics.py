"""Container metrics derived from the cgroup files, under the names people graph them.

Computed from the file texts a report holds, the way the tools compute them from a real
/sys/fs/cgroup: cAdvisor (container_memory_*, setMemoryStats over runc's libcontainer stats),
`docker stats` (MEM USAGE, docker CLI 20.10 on) and the kubelet (workingSetBytes).

v1 reads usage_in_bytes, max_usage_in_bytes, failcnt and the total_* keys of memory.stat; v2
reads memory.current, memory.peak, memory.swap.current and the v2 keys (anon, file,
file_mapped, inactive_file). On v2 runc never sets failcnt (it reads 0), and cAdvisor's swap is
runc's (swap.current + current) minus current, i.e. memory.swap.current.

container_oom_events_total is counted by cAdvisor from the kernel log, one per OOM kill, for
the killed task's own cgroup: on v2 that is memory.events.local's oom_kill. v1 has no local
count; 6.1's memory.oom_control oom_kill (hierarchical) stands in, and 3.17 shows none.
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
    "container_oom_events_total": ("Count of out of memory events observed for the container",
                                   "counter"),
}


def _stat(files: dict, name: str = "memory.stat") -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in files[name].splitlines())}


def is_v2(files: dict) -> bool:
    return "memory.current" in files


def cadvisor(files: dict) -> dict[str, int]:
    """container_memory_* of either interface; none for the v2 root, which has no
    memory.current (cAdvisor reads the root's usage from /proc/meminfo, outside the model)."""
    if is_v2(files):
        return cadvisor_v2(files)
    return cadvisor_v1(files) if "memory.usage_in_bytes" in files else {}


def cadvisor_v2(files: dict) -> dict[str, int]:
    """cAdvisor's container_memory_* from v2 files: working set = current - inactive_file
    (clamped at 0); rss = anon; cache = file; swap = swap.current; max usage = memory.peak."""
    stat = _stat(files)
    usage = int(files["memory.current"])
    out = {
        "container_memory_usage_bytes": usage,
        "container_memory_working_set_bytes": max(0, usage - stat.get("inactive_file", 0)),
        "container_memory_rss": stat["anon"],
        "container_memory_cache": stat["file"],
        "container_memory_swap": int(files.get("memory.swap.current", "0")),
        "container_memory_mapped_file": stat["file_mapped"],
        "container_memory_max_usage_bytes": int(files.get("memory.peak", "0")),
        "container_memory_failcnt": 0,
    }
    if "memory.events.local" in files:
        out["container_oom_events_total"] = _stat(files, "memory.events.local")["oom_kill"]
    return out


def docker_mem_usage(files: dict) -> int:
    """`docker stats` MEM USAGE: usage minus total_inactive_file (v1) or inactive_file (v2),
    when that is below usage; else the whole usage (no clamp, unlike cAdvisor)."""
    if not is_v2(files):
        return docker_mem_usage_v1(files)
    usage = int(files["memory.current"])
    inactive = _stat(files).get("inactive_file", 0)
    return usage - inactive if inactive < usage else usage


def kubelet_working_set(files: dict) -> int:
    """kubelet's workingSetBytes: cAdvisor's working set."""
    return cadvisor(files)["container_memory_working_set_bytes"]


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
    } | _v1_oom_events(files)


def _v1_oom_events(files: dict) -> dict[str, int]:
    oom = _stat(files, "memory.oom_control") if "memory.oom_control" in files else {}
    return {"container_oom_events_total": oom["oom_kill"]} if "oom_kill" in oom else {}


def docker_mem_usage_v1(files: dict) -> int:
    """`docker stats` MEM USAGE on cgroup v1 (docker 20.10 on): usage - total_inactive_file,
    when that is below usage."""
    usage = int(files["memory.usage_in_bytes"])
    inactive = _stat(files).get("total_inactive_file")
    return usage - inactive if inactive is not None and inactive < usage else usage


def kubelet_working_set_v1(files: dict) -> int:
    """kubelet's workingSetBytes (from cAdvisor): usage - total_inactive_file, clamped at 0."""
    return cadvisor_v1(files)["container_memory_working_set_bytes"]


def _label_value(text: str) -> str:
    """A label value as the text format escapes it: backslash, double quote and newline."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(reports: list) -> str:
    """Text exposition of the cAdvisor metrics of every report: labels cgroup and report."""
    samples: dict[str, list[str]] = {name: [] for name in CADVISOR}
    for r in reports:
        label = _label_value(r["label"])
        for path, files in r["cgroups"].items():
            for name, value in cadvisor(files).items():
                samples[name].append(
                    f'{name}{{cgroup="{_label_value(path)}",report="{label}"}} {value}')
    out = []
    for name, (help_, kind) in CADVISOR.items():
        if samples[name]:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples[name])
    return "\n".join(out) + ("\n" if out else "")
