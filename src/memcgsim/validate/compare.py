"""The rules that decide whether the model's value of a cgroup file matches the real kernel's.

One table (RULES), first match wins. Each rule says how close the two must be and why: the
kernel's own run-to-run variation and the memory the model does not model set the tolerances
(../shared/spec/real-kernel-notes.md, "Repeatability").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

PAGE = 4096
#: MEMCG_CHARGE_BATCH: the pages one CPU's charge stock may hold (6.1 and 6.12)
CHARGE_BATCH = 64
#: how far the anon/swap split may differ once a cgroup swaps
SWAP_SPLIT = 1 << 20
#: anon pages a fork adds of the guest's own: the workload program's stack and data pages that
#: the child and the parent copy on their first writes after it (7 measured on 6.1 and 6.12,
#: 0-3 of them the parent's, which stay after the child exits)
FORK_PAGES = 8
#: how far an active or inactive list may differ (MGLRU on 6.12, no accessed bits in the model)
LRU_SPLIT = 1 << 20
#: reclaim-driven event counts: within this many, or within EVENTS_FRACTION of the larger
EVENTS_SLACK = 20
EVENTS_FRACTION = 0.5

#: files that hold no comparable values (per-node copies of memory.stat, pressure averages)
SKIP_FILES = ("memory.numa_stat", "memory.pressure", "memory.pressure_level")


@dataclass(frozen=True)
class Rule:
    pattern: str
    kind: str          # exact | anon | current | swap | lru | events | info
    allowed: str       # the tolerance, as printed
    reason: str


RULES: tuple = (
    Rule("step outcome", "exact", "exact", "a refused write or failed step is the kernel's "
         "errno, deterministic"),
    Rule("set-up outcome", "exact", "exact", "the cgroups' files written before the steps"),
    Rule("task *", "exact", "exact", "alive/exited/killed is deterministic"),
    *(Rule(f"memory.stat.{k}", "anon", "exact (+8 pages a fork); ±1 MiB once "
           "the cgroup swaps", "faulted pages are counted one by one; which ones reclaim swaps "
           "out is not; after a fork the guest's own process pages are copied on write")
      for k in ("anon", "rss", "total_rss")),
    *(Rule(f"memory.stat.{k}", "file", "exact; ±1 MiB once the cgroup reclaimed",
           "huge pages are counted when faulted; reclaim splits them")
      for k in ("anon_thp", "rss_huge", "total_rss_huge")),
    *(Rule(f"memory.stat.{k}", "file", "exact; ±1 MiB once the cgroup reclaimed",
           "page cache, tmpfs and mapped pages are counted one by one; which ones reclaim "
           "evicts under a limit is not")
      for k in ("file", "shmem", "file_mapped", "cache", "mapped_file", "total_cache",
                "total_shmem", "total_mapped_file")),
    *(Rule(f"memory.stat.{k}", "exact", "exact", "mlocked pages are counted one by one")
      for k in ("unevictable", "total_unevictable")),
    *(Rule(f"memory.events{loc}.{k}", "exact", "exact", "one OOM, one kill, every run")
      for loc in ("", ".local") for k in ("oom", "oom_kill", "oom_group_kill")),
    Rule("memory.oom_control.oom_kill", "exact", "exact", "v1's kill count"),
    Rule("memory.oom_control.under_oom", "exact", "exact", "v1: no task waits in an OOM"),
    *(Rule(f"memory.{f}", "exact", "exact", "what was written, as the kernel rounds it")
      for f in ("max", "high", "low", "min", "swap.max", "swap.high", "oom.group",
                "limit_in_bytes", "memsw.limit_in_bytes", "soft_limit_in_bytes",
                "swappiness", "use_hierarchy", "move_charge_at_immigrate")),
    *(Rule(f"memory.{f}", "current",
           "one charge batch per CPU + the model's kernel memory",
           "the per-CPU stock holds up to a batch; kernel memory (slab, page tables, stacks) is "
           "modelled only in part")
      for f in ("current", "peak", "usage_in_bytes", "max_usage_in_bytes",
                "memsw.usage_in_bytes", "memsw.max_usage_in_bytes")),
    Rule("fd *", "current", "one charge batch per CPU",
         "an open memory.peak reads like memory.peak (its cgroup's kernel memory is not "
         "looked up here, so the tolerance is the batch alone)"),
    *(Rule(f"memory.{f}", "swap", "±1 MiB", "which pages reclaim swaps out depends on LRU "
           "order (zram: identical run to run on 6.12)")
      for f in ("swap.current", "swap.peak", "stat.swap", "stat.total_swap",
                "stat.swapcached")),
    *(Rule(f"memory.stat.{p}{a}_{t}", "lru", "±1 MiB; not compared under MGLRU",
           "the active/inactive split follows reclaim and aging (the model has no accessed "
           "bits); with MGLRU on (6.12's default) the two lists are a view of its generations, "
           "which the model does not have")
      for p in ("", "total_") for a in ("active", "inactive") for t in ("anon", "file")),
    *(Rule(f"memory.events{loc}.{k}", "events", f"±{EVENTS_SLACK} or ±50%",
           "reclaim retries: the real kernel itself varies (18-35 max events for one OOM)")
      for loc in ("", ".local") for k in ("max", "high")),
    Rule("memory.failcnt", "events", f"±{EVENTS_SLACK} or ±50%", "v1's max events"),
    Rule("memory.memsw.failcnt", "events", f"±{EVENTS_SLACK} or ±50%", "v1's max events"),
    *(Rule(f"memory.stat.{k}", "info", "shown, not compared",
           "kernel memory: the model has page tables, stacks and one slab page a task; no "
           "file-system slab, percpu, sock or vmalloc (docs/fidelity.md)")
      for k in ("kernel", "kernel_stack", "pagetables", "sec_pagetables", "percpu", "sock",
                "vmalloc", "slab", "slab_reclaimable", "slab_unreclaimable")),
    *(Rule(f"memory.stat.{k}", "info", "shown, not compared",
           "the model has no dirty throttling: written pages stay dirty until sync")
      for k in ("file_dirty", "file_writeback", "dirty", "writeback")),
    Rule("*", "ignored", "not shown", "event counters and statistics the model does not keep"),
)


def rule_for(key: str) -> Rule:
    for r in RULES:
        if fnmatchcase(key, r.pattern):
            return r
    raise AssertionError("the last rule matches everything")


@dataclass
class Context:
    """What a cgroup's tolerances depend on, at one snapshot."""

    cpus: int = 1
    model_kernel: int = 0
    swapping: bool = False
    mglru: bool = False
    reclaimed: bool = False
    forked: int = 0         # fork steps so far


def judge(rule: Rule, kernel, model, ctx: Context) -> bool | None:
    """True/False for a compared key (None when the rule compares nothing or a side lacks it)."""
    if rule.kind in ("info", "ignored") or (rule.kind == "lru" and ctx.mglru):
        return None
    if kernel is None or model is None:
        return kernel == model      # a file or key only one side shows
    if isinstance(kernel, str) or isinstance(model, str):
        return kernel == model
    diff = abs(kernel - model)
    if rule.kind == "anon" and not ctx.swapping:
        return 0 <= kernel - model <= FORK_PAGES * PAGE * ctx.forked
    if rule.kind == "exact" or (rule.kind == "file" and not ctx.reclaimed):
        return diff == 0
    if rule.kind in ("anon", "swap", "file"):
        return diff <= SWAP_SPLIT
    if rule.kind == "current":
        return diff <= CHARGE_BATCH * PAGE * ctx.cpus + ctx.model_kernel
    if rule.kind == "lru":
        return diff <= LRU_SPLIT
    if rule.kind == "events":
        return diff <= max(EVENTS_SLACK, EVENTS_FRACTION * max(kernel, model))
    raise AssertionError(rule.kind)


def values(files: dict) -> dict:
    """{file: text} -> {key: value}: FILE for one-value files, FILE.KEY for keyed ones."""
    out: dict = {}
    for name, text in files.items():
        if name in SKIP_FILES:
            continue
        lines = [ln.split() for ln in text.splitlines() if ln.strip()]
        if len(lines) == 1 and len(lines[0]) == 1:
            v = lines[0][0]
            out[name] = int(v) if v.lstrip("-").isdigit() else v
            continue
        for parts in lines:
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                out[f"{name}.{parts[0]}"] = int(parts[1])
    return out


def mglru_on(setting: str | None) -> bool:
    """/sys/kernel/mm/lru_gen/enabled as the guest read it (0x0007 on, 0x0000 off)."""
    try:
        return int(setting or "0", 16) != 0
    except ValueError:
        return False


def model_kernel_memory(vals: dict) -> int:
    if "memory.stat.kernel" in vals:
        return vals["memory.stat.kernel"]
    return sum(vals.get(f"memory.stat.{k}", 0) for k in (
        "kernel_stack", "pagetables", "slab", "percpu", "sock", "vmalloc"))


def swapping(*sides: dict) -> bool:
    return any(v.get(k, 0) for v in sides for k in (
        "memory.swap.current", "memory.swap.peak", "memory.stat.swap",
        "memory.stat.swapcached"))


def reclaimed(*sides: dict) -> bool:
    """The cgroup hit a limit (and so reclaimed) on either side."""
    return any(v.get(k, 0) for v in sides for k in (
        "memory.events.max", "memory.events.high", "memory.failcnt", "memory.memsw.failcnt"))


@dataclass
class Row:
    step: int
    line: int
    what: str          # "report LABEL", "expect", ...
    cgroup: str | None
    key: str
    kernel: object
    model: object
    rule: Rule
    ok: bool | None
    allowed: str = ""


@dataclass
class Comparison:
    rows: list = field(default_factory=list)

    @property
    def mismatches(self) -> list:
        return [r for r in self.rows if r.ok is False]

    @property
    def matches(self) -> bool:
        return not self.mismatches


def compare_files(kernel_files: dict, model_files: dict, cpus: int, emit,
                  mglru: bool = False, forked: int = 0) -> None:
    """Compare one cgroup's snapshot; emit(key, kernel, model, rule, ok, allowed) per key."""
    kv, mv = values(kernel_files), values(model_files)
    ctx = Context(cpus=cpus, model_kernel=model_kernel_memory(mv), swapping=swapping(kv, mv),
                  mglru=mglru, reclaimed=reclaimed(kv, mv) or swapping(kv, mv), forked=forked)
    for key in sorted(set(kv) | set(mv)):
        rule = rule_for(key)
        if rule.kind == "ignored":
            continue
        ok = judge(rule, kv.get(key), mv.get(key), ctx)
        allowed = rule.allowed
        if rule.kind == "current":
            allowed = f"±{CHARGE_BATCH * PAGE * cpus + ctx.model_kernel}"
        elif rule.kind == "anon":
            allowed = f"±{SWAP_SPLIT}" if ctx.swapping else (
                f"+0..{FORK_PAGES * PAGE * forked}" if forked else "exact")
        elif rule.kind == "file":
            allowed = f"±{SWAP_SPLIT}" if ctx.reclaimed else "exact"
        elif rule.kind == "lru":
            allowed = "not compared (MGLRU)" if ctx.mglru else f"±{LRU_SPLIT}"
        emit(key, kv.get(key), mv.get(key), rule, ok, allowed)
