"""The rules that decide whether the model's value of a cgroup file matches the real kernel's.

One table (RULES), first match wins. The kernel side is what K boots showed: a value every run
repeated, or the range of those it did not repeat (a Spread). Each rule allows a fixed
tolerance around that, stated in the table: it never grows with the value and never depends on
anything the model reports. Which tolerance applies (exact, or reclaim's slack) is decided from
the kernel's side alone: whether the kernel reclaimed or swapped in that cgroup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

PAGE = 4096
#: MEMCG_CHARGE_BATCH: the pages one CPU's charge stock may hold (6.1 and 6.12)
CHARGE_BATCH = 64
#: SWAP_CLUSTER_MAX: reclaim isolates and frees pages in batches of this many
SWAP_CLUSTER_MAX = 32
#: once the kernel reclaimed: where reclaim stopped may differ by one batch either way
RECLAIM_SLACK = SWAP_CLUSTER_MAX * PAGE
#: anon pages a fork adds of the guest's own: the workload program's stack and data pages that
#: the child and the parent copy on their first writes after it (7 measured on 6.1 and 6.12,
#: 0-3 of them the parent's, which stay after the child exits)
FORK_PAGES = 8
#: event counts (max, high, low, failcnt): one more or less charge attempt at the limit
EVENTS_SLACK = 2
#: PAGEVEC_SIZE: a new page waits in its CPU's lru_add batch before it reaches an LRU list;
#: the model puts it on the list at once, so the kernel's lists may show up to this many pages
#: a CPU fewer (15 on 6.1; 31 from 6.10 on)
LRU_ADD_BATCH = {"6.1": 15, "6.12": 31}

#: files that hold no comparable values (per-node copies of memory.stat, pressure averages)
SKIP_FILES = ("memory.numa_stat", "memory.pressure", "memory.pressure_level")

#: kinds whose keys are compared (the others are shown with their reason only)
COMPARED = ("exact", "anon", "file", "swap", "current", "lru", "events")


@dataclass(frozen=True)
class Spread:
    """A value the kernel did not repeat over its runs: every value the runs showed."""

    seen: tuple

    @property
    def lo(self):
        return self.seen[0]

    @property
    def hi(self):
        return self.seen[-1]

    def __str__(self) -> str:
        if all(isinstance(v, int) for v in self.seen):
            return f"{self.lo}..{self.hi}"
        return "|".join(str(v) for v in self.seen)


def merge_runs(values: list):
    """What K runs showed for one key: the value, or a Spread where they differ (None where
    no run showed it)."""
    seen = [v for v in values if v is not None]
    if not seen:
        return None
    distinct = sorted(set(seen), key=lambda v: (isinstance(v, str), v))
    return distinct[0] if len(distinct) == 1 else Spread(tuple(distinct))


def _bounds(kernel):
    return (kernel.lo, kernel.hi) if isinstance(kernel, Spread) else (kernel, kernel)


@dataclass(frozen=True)
class Rule:
    pattern: str
    kind: str          # one of COMPARED, or info (shown, not compared)
    allowed: str       # the tolerance, as printed
    reason: str


_RECLAIM = f"exact; ±{RECLAIM_SLACK >> 10} KiB once the kernel reclaimed"
_EVENTS = f"the runs' range ±{EVENTS_SLACK}"

RULES: tuple = (
    Rule("step outcome", "exact", "exact", "a refused write or failed step is the kernel's "
         "errno, deterministic"),
    Rule("set-up outcome", "exact", "exact", "the cgroups' files written before the steps"),
    Rule("task *", "exact", "exact", "alive/exited/killed is deterministic"),
    *(Rule(f"memory.stat.{k}", "anon", f"exact (+{FORK_PAGES} pages a fork); "
           f"±{RECLAIM_SLACK >> 10} KiB once the kernel reclaimed",
           "faulted pages are counted one by one; after a fork the guest's own process pages "
           "are copied on write; reclaim stops within a batch")
      for k in ("anon", "rss", "total_rss")),
    *(Rule(f"memory.stat.{k}", "file", _RECLAIM,
           "huge pages are counted when faulted; reclaim splits them")
      for k in ("anon_thp", "rss_huge", "total_rss_huge", "file_thp", "shmem_thp")),
    *(Rule(f"memory.stat.{k}", "file", _RECLAIM,
           "page cache, tmpfs and mapped pages are counted one by one; reclaim stops within a "
           "batch of SWAP_CLUSTER_MAX pages")
      for k in ("file", "shmem", "file_mapped", "cache", "mapped_file", "total_cache",
                "total_shmem", "total_mapped_file")),
    *(Rule(f"memory.stat.{k}", "exact", "exact", "mlocked pages are counted one by one")
      for k in ("unevictable", "total_unevictable")),
    *(Rule(f"memory.events{loc}.{k}", "exact", "exact", "one OOM, one kill, every run")
      for loc in ("", ".local") for k in ("oom", "oom_kill", "oom_group_kill")),
    Rule("memory.oom_control.oom_kill", "exact", "exact", "v1's kill count"),
    Rule("memory.oom_control.under_oom", "exact", "exact", "v1: no task waits in an OOM"),
    Rule("memory.oom_control.oom_kill_disable", "exact", "exact", "what was written"),
    *(Rule(f"memory.{f}", "exact", "exact", "what was written, as the kernel rounds it")
      for f in ("max", "high", "low", "min", "swap.max", "swap.high", "oom.group",
                "limit_in_bytes", "memsw.limit_in_bytes", "soft_limit_in_bytes",
                "swappiness", "use_hierarchy", "move_charge_at_immigrate",
                "zswap.max", "zswap.writeback")),
    *(Rule(f"memory.{f}", "current", f"±{CHARGE_BATCH} pages per CPU",
           "the per-CPU stock holds up to a batch of charged pages")
      for f in ("current", "peak", "usage_in_bytes", "max_usage_in_bytes",
                "memsw.usage_in_bytes", "memsw.max_usage_in_bytes")),
    Rule("fd *", "current", f"±{CHARGE_BATCH} pages per CPU",
         "an open memory.peak reads like memory.peak"),
    *(Rule(f"memory.{f}", "swap",
           f"exact (0) where the kernel did not swap; ±{RECLAIM_SLACK >> 10} KiB",
           "which pages reclaim swaps out depends on LRU order; reclaim stops within a batch")
      for f in ("swap.current", "swap.peak", "stat.swap", "stat.total_swap",
                "stat.swapcached", "stat.total_swapcached")),
    *(Rule(f"memory.stat.{p}{a}_{t}", "lru", "exact, less the lru_add batch a CPU "
           f"(anon: +{FORK_PAGES} pages a fork); ±{RECLAIM_SLACK >> 10} KiB more once the "
           "kernel reclaimed",
           "new pages go on known lists (6.1: inactive; 6.12's MGLRU: the generations its "
           "stats show as active or inactive), after waiting in a per-CPU lru_add batch "
           "(PAGEVEC_SIZE pages, not modelled); reclaim and aging move them")
      for p in ("", "total_") for a in ("active", "inactive") for t in ("anon", "file")),
    *(Rule(f"memory.events{loc}.{k}", "events", _EVENTS,
           "reclaim retries: the kernel itself varies from run to run (18-35 max events for "
           "one OOM), so the runs' range, and a fixed slack of one charge attempt either way")
      for loc in ("", ".local") for k in ("max", "high", "low")),
    *(Rule(f"memory.swap.events.{k}", "events", _EVENTS,
           "swap.max refusals and swap.high throttling, counted per attempt")
      for k in ("max", "high", "fail")),
    Rule("memory.failcnt", "events", _EVENTS, "v1's max events"),
    Rule("memory.memsw.failcnt", "events", _EVENTS, "v1's max events"),
    *(Rule(f"memory.{f}", "info", "not compared",
           "kernel memory is the kernel-memory issue's (20): the model has page tables, "
           "stacks and one slab page a task; no file-system slab, percpu, sock or vmalloc")
      for f in ("stat.kernel", "stat.kernel_stack", "stat.pagetables", "stat.sec_pagetables",
                "stat.percpu", "stat.sock", "stat.vmalloc", "stat.slab",
                "stat.slab_reclaimable", "stat.slab_unreclaimable", "kmem.*")),
    *(Rule(f"memory.stat.{k}", "info", "not compared",
           "the model has no dirty throttling or background writeback: written pages stay "
           "dirty until sync")
      for k in ("file_dirty", "file_writeback", "dirty", "writeback", "total_dirty",
                "total_writeback")),
    Rule("memory.stat.zswap*", "info", "not compared", "the guest has no zswap"),
    Rule("memory.stat.workingset_*", "info", "not compared",
         "refault detection (shadow entries) is not modelled"),
    *(Rule(f"memory.stat.{k}", "info", "not compared",
           "reclaim and fault event counters: the model counts faults and reclaim per its "
           "own batches; compared through the page counts they leave")
      for k in ("pgfault", "pgmajfault", "pgscan*", "pgsteal*", "pgrefill", "pgactivate",
                "pgdeactivate", "pglazyfree*", "pgpgin", "pgpgout", "pgpromote*",
                "pgdemote*", "thp_*", "total_pg*", "swapin", "swapout")),
    Rule("memory.stat.*", "info", "not compared",
         "a statistic the model does not keep (listed so that every key the kernel prints is "
         "seen)"),
    Rule("memory.events.local.*", "info", "not compared",
         "an event the model does not count"),
    Rule("memory.events.*", "info", "not compared", "an event the model does not count"),
    Rule("memory.*", "info", "not compared",
         "a control or event file the model does not keep (v1's memory.stat parts of "
         "numa_stat, reclaim triggers and the like)"),
    Rule("*", "info", "not compared", "a key no rule names"),
)


def rule_for(key: str) -> Rule:
    for r in RULES:
        if fnmatchcase(key, r.pattern):
            return r
    raise AssertionError("the last rule matches everything")


@dataclass
class Context:
    """What a cgroup's tolerances depend on, at one snapshot: the kernel's side only."""

    cpus: int = 1
    reclaimed: bool = False
    swapped: bool = False
    forked: int = 0         # fork steps so far
    series: str = "6.1"     # the real kernel


def tolerance(rule: Rule, ctx: Context) -> tuple:
    """(below, above) the kernel's range the model may be, in the value's unit."""
    k = rule.kind
    if k == "exact":
        return 0, 0
    if k == "anon":
        if ctx.reclaimed:
            return RECLAIM_SLACK, RECLAIM_SLACK
        return FORK_PAGES * PAGE * ctx.forked, 0
    if k == "file":
        return (RECLAIM_SLACK, RECLAIM_SLACK) if ctx.reclaimed else (0, 0)
    if k == "lru":
        batch = LRU_ADD_BATCH[ctx.series] * PAGE * ctx.cpus
        slack = RECLAIM_SLACK if ctx.reclaimed else 0
        # the guest's own pages a fork copies are anonymous, on the anon lists
        fork = FORK_PAGES * PAGE * ctx.forked if rule.pattern.endswith("_anon") else 0
        return slack + fork, slack + batch
    if k == "swap":
        return (RECLAIM_SLACK, RECLAIM_SLACK) if ctx.swapped else (0, 0)
    if k == "current":
        return (CHARGE_BATCH * PAGE * ctx.cpus,) * 2
    if k == "events":
        return EVENTS_SLACK, EVENTS_SLACK
    raise AssertionError(k)


def allowed_text(rule: Rule, ctx: Context) -> str:
    if rule.kind not in COMPARED:
        return rule.allowed
    below, above = tolerance(rule, ctx)
    if below == above == 0:
        return "exact"
    if below == above:
        return f"±{below}"
    return f"-{below}..+{above}"


def judge(rule: Rule, kernel, model, ctx: Context) -> bool | None:
    """True/False for a compared key (None when the rule compares nothing)."""
    if rule.kind not in COMPARED:
        return None
    if kernel is None or model is None:
        return kernel == model      # a file or key only one side shows
    values = kernel.seen if isinstance(kernel, Spread) else (kernel,)
    if isinstance(model, str) or any(isinstance(v, str) for v in values):
        return model in values
    below, above = tolerance(rule, ctx)
    lo, hi = _bounds(kernel)
    return lo - below <= model <= hi + above


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


_SWAP_KEYS = ("memory.swap.current", "memory.swap.peak", "memory.stat.swap",
              "memory.stat.swapcached", "memory.stat.total_swap", "memory.memsw.failcnt")
_RECLAIM_KEYS = ("memory.events.max", "memory.events.high", "memory.failcnt",
                 "memory.memsw.failcnt", "memory.stat.pgscan", "memory.stat.pgsteal",
                 "memory.stat.total_pgscan", "memory.stat.pgscan_kswapd",
                 "memory.stat.pgscan_direct", "memory.stat.workingset_refault_file",
                 "memory.stat.workingset_refault_anon")


def swapped(runs: list) -> bool:
    """The kernel swapped this cgroup's pages in any run."""
    return any(v.get(k, 0) for v in runs for k in _SWAP_KEYS)


def reclaimed(runs: list) -> bool:
    """The kernel reclaimed from this cgroup (a limit, or global pressure) in any run."""
    return swapped(runs) or any(v.get(k, 0) for v in runs for k in _RECLAIM_KEYS)


@dataclass
class Row:
    step: int
    line: int
    what: str          # "report LABEL", "expect", ...
    cgroup: str | None
    key: str
    kernel: object     # a value, a Spread of the runs' values, or None
    model: object
    rule: Rule
    ok: bool | None
    allowed: str = ""

    @property
    def differs(self) -> bool:
        """The model's value is not one the kernel showed (allowed or not)."""
        seen = self.kernel.seen if isinstance(self.kernel, Spread) else (self.kernel,)
        return self.model not in seen


@dataclass
class Comparison:
    rows: list = field(default_factory=list)

    @property
    def mismatches(self) -> list:
        return [r for r in self.rows if r.ok is False]

    @property
    def matches(self) -> bool:
        return not self.mismatches


def compare_files(kernel_runs: list, model_files: dict, cpus: int, emit,
                  forked: int = 0, series: str = "6.1") -> None:
    """Compare one cgroup's snapshot: kernel_runs holds the files each run dumped. Calls
    emit(key, kernel, model, rule, ok, allowed) per key either side shows."""
    kvs = [values(f) for f in kernel_runs]
    mv = values(model_files)
    ctx = Context(cpus=cpus, reclaimed=reclaimed(kvs), swapped=swapped(kvs), forked=forked,
                  series=series)
    for key in sorted(set(mv).union(*kvs)):
        rule = rule_for(key)
        kernel = merge_runs([kv.get(key) for kv in kvs])
        ok = judge(rule, kernel, mv.get(key), ctx)
        emit(key, kernel, mv.get(key), rule, ok, allowed_text(rule, ctx))
