"""The built-in demo: one anonymous page, then one page-cache page, through the 3.17 lifecycle.

The demo is data: `STEPS` is a list of `Step`s, each a title, the kernel path it exercises, an
explanation in the kernel's terms and a function that drives the `Machine` through the ops
(memcgsim.ops) a scenario or a race setup would name. `run` performs them in
order on a fresh machine, reads every number it reports from the model (usage, memsw, the per-CPU
stock, memory.stat, page dumps, swap slots), runs the invariant checker after each step and
returns the report as lines. It never prints: `memcgsim.cli` does.

The explanations never state numbers; the numbers beside them come from the model, so a change
in the model shows up in the demo instead of being papered over by its text.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

from .checker import INVARIANTS, Violation, check
from .errors import MemcgsimError
from .kernel import PAGE_SIZE
from .machine import Machine
from .mm.swapfile import SWAP_HAS_CACHE
from .ops import OPS, RACE_OPS, Drive
from .scenario import Step as OpStep

CGROUP = "/a"
FILE = "/data/log"
#: the NUMA node the anonymous page migrates to
TARGET_NODE = 1
#: memory.stat keys the demo follows (sizes in bytes, events as counts)
STAT_KEYS = ("rss", "cache", "swap", "mapped_file", "pgpgin", "pgpgout", "pgfault", "pgmajfault")
WIDTH = 100
INDENT = " " * 12


class DemoError(MemcgsimError):
    """A demo step did not get the outcome its explanation describes: the model has changed."""


@dataclass
class Shown:
    """What a step points at afterwards: pages (label, pfn) and a swap slot (0 for none)."""

    pages: list[tuple[str, int]] = field(default_factory=list)
    slot: int = 0


@dataclass(frozen=True)
class Step:
    title: str
    #: the kernel functions the step runs through, outermost first
    path: str
    #: why the numbers move as they do, in the kernel's terms; states no numbers itself
    why: str
    run: Callable[[Demo], Shown]


@dataclass(frozen=True)
class Snapshot:
    """The memcg's user-visible state between two steps."""

    usage: int
    memsw: int
    stock: int
    stat: dict[str, int]


@dataclass
class DemoResult:
    lines: list[str]
    #: the violations found after `failed_step`; empty when every step passed the checker
    violations: list[Violation]
    failed_step: str | None = None
    kernel: object = None

    @property
    def ok(self) -> bool:
        return not self.violations


class Demo:
    """The machine of the demo and the pages it follows."""

    def __init__(self):
        # the per-page reference paths, which the explanations describe (not the array versions)
        self.m = Machine(4096, swap_pages=256, nodes=2, vectorized=False)
        self.m.mkdir(CGROUP)
        self.drive = Drive(self.m)
        self.op("spawn", task="A", cgroup=CGROUP)
        self.task = self.drive.tasks["A"]
        self.anon_vma = None
        self.file_vma = None
        self.anon_pfn = -1
        self.file_pfn = -1

    def op(self, name: str, **args) -> None:
        """Apply an op (memcgsim.ops) of task A to the machine; its arguments by the op's
        names (`as_` for as)."""
        op = OPS.get(name) or RACE_OPS[name]
        args = {("as" if k == "as_" else k): v for k, v in args.items()}
        err = op.apply(self.drive, OpStep(name, args, False, None),
                       self.drive.tasks.get("A"))
        _expect(err is None, f"{name} failed with {err}")

    def snapshot(self) -> Snapshot:
        m = self.m
        memcg = m.memcg(CGROUP)
        stock = sum(s.nr_pages for s in m.k.stocks if s.cached is memcg)
        stat = m.stat(CGROUP)
        return Snapshot(m.usage(CGROUP), m.memsw_usage(CGROUP), stock,
                        {key: stat[key] for key in STAT_KEYS if key in stat})


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise DemoError(f"demo step did not happen as described: {what}")


# ------------------------------------------------------------------------------------------
# the steps


def anon_fault(d: Demo) -> Shown:
    d.op("mmap_anon", size=PAGE_SIZE, as_="anon", hugepage=False, shared=False)
    d.anon_vma = d.drive.vmas["anon"]
    d.op("touch_pages", region="anon", offset=0, pages=None, write=True)
    d.anon_pfn = d.m.pfn_of(d.anon_vma, 0)
    _expect(d.anon_pfn >= 0, "the anonymous fault did not map the page")
    return Shown([("page", d.anon_pfn)])


def swapout(d: Demo) -> Shown:
    d.op("reclaim", pfn=d.anon_pfn)
    _expect(d.m.pfn_of(d.anon_vma, 0) < 0, f"reclaim did not free pfn {d.anon_pfn:#x}")
    slot = d.m.swap_entry_of(d.anon_vma, 0)
    _expect(slot != 0, "the pte holds no swap entry after reclaim")
    return Shown([("freed", d.anon_pfn)], slot)


def swapin(d: Demo) -> Shown:
    slot = d.m.swap_entry_of(d.anon_vma, 0)
    d.op("touch_pages", region="anon", offset=0, pages=None, write=False)
    d.anon_pfn = d.m.pfn_of(d.anon_vma, 0)
    _expect(d.anon_pfn >= 0, "the swapin fault mapped no page")
    return Shown([("page", d.anon_pfn)], slot)


def migrate(d: Demo) -> Shown:
    old = d.anon_pfn
    d.op("migrate", node=TARGET_NODE)
    d.anon_pfn = d.m.pfn_of(d.anon_vma, 0)
    _expect(d.anon_pfn not in (old, -1), "the page did not move")
    return Shown([("new", d.anon_pfn), ("old", old)])


def page_cache_write(d: Demo) -> Shown:
    d.op("write", file=FILE, size=PAGE_SIZE, fs=None)
    d.file_pfn = d.m.file(FILE).find_page(0)
    _expect(d.file_pfn >= 0, f"write to {FILE} failed")
    d.op("sync")
    return Shown([("page", d.file_pfn)])


def splice(d: Demo) -> Shown:
    old = d.file_pfn
    d.op("splice", file=FILE)
    d.file_pfn = d.m.file(FILE).find_page(0)
    _expect(d.file_pfn not in (old, -1), "splice did not replace the cached page")
    return Shown([("new", d.file_pfn), ("old", old)])


def mmap_read(d: Demo) -> Shown:
    d.op("mmap_file", file=FILE, as_="file", pages=None, pgoff=0)
    d.file_vma = d.drive.vmas["file"]
    d.op("touch_pages", region="file", offset=0, pages=None, write=False)
    _expect(d.m.pfn_of(d.file_vma, 0) == d.file_pfn, "the fault mapped another page")
    return Shown([("page", d.file_pfn)])


def truncate(d: Demo) -> Shown:
    d.op("truncate", file=FILE, size=0)
    _expect(d.m.file(FILE).find_page(0) < 0, "the page is still cached")
    return Shown([("freed", d.file_pfn)])


def munmap(d: Demo) -> Shown:
    d.op("unmap", region="anon")
    d.op("unmap", region="file")
    return Shown([("freed", d.anon_pfn)])


STEPS: list[Step] = [
    Step("Anonymous fault",
         "handle_mm_fault > do_anonymous_page: mem_cgroup_try_charge before the page-table "
         "lock, mem_cgroup_commit_charge(lrucare=false) under it",
         "try_charge charges a whole CHARGE_BATCH to res and memsw at once and keeps what the "
         "page does not need in the CPU's charge stock, so usage_in_bytes grows by more than "
         "the page. commit_charge binds the page (pc->mem_cgroup, PCG_USED|PCG_MEM|PCG_MEMSW) "
         "and counts rss and pgpgin; only then does the page go onto /a's active anon list.",
         anon_fault),
    Step("Reclaim with swapout",
         "shrink_page_list: add_to_swap, try_to_unmap, pageout, __remove_mapping > "
         "mem_cgroup_swapout; then mem_cgroup_uncharge_list",
         "With the refcount frozen under the tree lock, mem_cgroup_swapout records /a for the "
         "slot in swap_cgroup and clears PCG_MEMSW: the memsw charge now belongs to the swap "
         "entry, so memsw does not move while swap rises. The final put uncharges what the "
         "page still holds (PCG_MEM): memory drops by the page, rss falls, pgpgout counts it. "
         "The free page keeps a stale pc->mem_cgroup.",
         swapout),
    Step("Swapin fault",
         "handle_mm_fault > do_swap_page: swapin_readahead, mem_cgroup_try_charge (the slot's "
         "recorded memcg), mem_cgroup_commit_charge(lrucare=true) > mem_cgroup_uncharge_swap",
         "The page read into the swap cache sits uncharged on the inactive anon list. "
         "try_charge charges the memcg recorded for the slot, here from the charge stock, so "
         "memory does not move; commit needs lrucare as the page is already on an LRU list. "
         "Because the page is in the swap cache, commit then drops the slot's duplicate memsw "
         "charge and clears its record: memsw falls and the swap statistic is back where it "
         "started. A read fault leaves the page in the swap cache, its slot still allocated.",
         swapin),
    Step(f"NUMA migration to node {TARGET_NODE}",
         "migrate_pages > unmap_and_move > move_to_new_page: migrate_page_move_mapping, "
         "mem_cgroup_migrate(old, new, lrucare=false), then remove_migration_ptes",
         "Contents, swap cache slot and mapping move to a page on the other node. "
         "mem_cgroup_migrate transfers the charge rather than charging new and uncharging old: "
         "new is committed to old's memcg, old's page_cgroup is cleared, so res and memsw "
         "stay as they are; pgpgin and pgpgout each count the transfer. It runs before the "
         "migration ptes are replaced, so the new page is charged when it is mapped. The old "
         "page goes back through the LRU, where its stale pointer is switched to root, and is "
         "freed without an uncharge.",
         migrate),
    Step("Page-cache write, then fsync",
         "generic_perform_write > add_to_page_cache_lru > __add_to_page_cache_locked: "
         "mem_cgroup_try_charge, mem_cgroup_commit_charge(lrucare=false), lru_cache_add_file",
         "A page-cache page is charged to the memcg of the task that brings it in (first "
         "touch), locked and before it reaches the LRU. The charge comes out of the stock, so "
         "memory and memsw hold still while cache and pgpgin rise. Writeback cleans the page "
         "and leaves its charge alone.",
         page_cache_write),
    Step("replace_page_cache_page (FUSE splice)",
         "fuse_try_move_page > replace_page_cache_page: __delete_from_page_cache(old), insert "
         "new, mem_cgroup_migrate(old, new, lrucare=true)",
         "FUSE steals a page from a pipe and puts it in the page cache in place of the cached "
         "one. Either page may sit on an LRU list, so mem_cgroup_migrate takes lrucare: under "
         "the lru_lock it takes each page off its list if it is on one, moves the binding from "
         "old to new and puts each back on the lruvec its memcg now implies (root for the "
         "uncharged old page). No counter changes; the old page is freed without an uncharge.",
         splice),
    Step("mmap of the file and a read fault",
         "handle_mm_fault > do_file_fault: find the cached page, page_add_file_rmap > "
         "mem_cgroup_update_page_stat(FILE_MAPPED)",
         "Mapping a cached page charges nothing: it stays charged to the memcg that first "
         "touched it, whoever maps it. Its first mapping counts it in mapped_file of "
         "pc->mem_cgroup; pgfault goes to the memcg of the faulting mm's owner.",
         mmap_read),
    Step("Truncation",
         "do_truncate > truncate_inode_pages_range: unmap_mapping_range, "
         "delete_from_page_cache; the final put_page > mem_cgroup_uncharge",
         "Since the rewrite, truncation makes no memcg call of its own. Unmapping drops "
         "mapped_file, removal drops the page cache's reference, and the final put, with the "
         "page off the LRU and unreferenced, uncharges it: memory and memsw fall, cache drops, "
         "pgpgout counts it.",
         truncate),
    Step("munmap",
         "do_munmap > zap_pte_range > free_pages_and_swap_cache: try_to_free_swap, "
         "release_pages > mem_cgroup_uncharge_list",
         "Zapping the pte drops the anonymous page's last mapping; still in the swap cache "
         "after the read fault, it loses its slot, and release_pages uncharges it in a batch at "
         "the final put: memory and memsw fall, rss drops. What /a still has charged is the "
         "charge stock, charged ahead and returned when the stock is drained.",
         munmap),
]


# ------------------------------------------------------------------------------------------
# rendering


def _pages(n: int) -> str:
    return f"{n} page" if n == 1 else f"{n} pages"


def _delta(before: int, after: int) -> str:
    d = after - before
    return "unchanged" if d == 0 else ("+" if d > 0 else "-") + _pages(abs(d))


def _counter_line(name: str, before: int, after: int) -> str:
    return (f"    {name:<7} {_pages(after):<10} {after * PAGE_SIZE:>9} bytes"
            f"  ({_delta(before, after)})")


def _stat_line(before: Snapshot, after: Snapshot) -> str:
    changed = [f"{key} {before.stat[key]} -> {after.stat[key]}"
               for key in after.stat if before.stat.get(key) != after.stat[key]]
    return "    stat    " + (", ".join(changed) if changed else "no change in "
                             + ", ".join(after.stat))


def _slot_line(d: Demo, slot: int) -> str:
    k = d.m.k
    v = int(k.swap.swap_map[slot])
    owner = k.memcg_by_id.get(k.swap_cgroup.lookup(slot))
    cached = f" + SWAP_HAS_CACHE (pfn {int(k.swap.cache[slot]):#x})" if v & SWAP_HAS_CACHE else ""
    return (f"    slot    {slot}: swap_map count {v & ~SWAP_HAS_CACHE}{cached}, "
            f"swap_cgroup record {owner.name if owner else 'none'}")


def _page_lines(d: Demo, label: str, pfn: int) -> list[str]:
    dump = d.m.k.dump_page(pfn).splitlines()
    first = dump[0].removeprefix("page ")
    return [f"    {label:<8}{first}"] + [INDENT + line for line in dump[1:]]


def _wrapped(label: str, text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=f"    {label:<8}",
                         subsequent_indent=INDENT)


def _header(d: Demo) -> list[str]:
    k = d.m.k
    acct = "on" if k.do_swap_account else "off"
    return [
        "memcgsim demo: one anonymous page, then one page-cache page, through the charge "
        "lifecycle",
        f"machine  {_pages(k.nr_pages)} ({k.nr_pages * PAGE_SIZE >> 20} MiB) on {k.nr_nodes} "
        f"nodes, {_pages(k.swap.usable())} of swap, {k.nr_cpus} CPU",
        f"kernel   {k.profile.name}, cgroup v1, swap accounting {acct}, CHARGE_BATCH "
        f"{k.profile.charge_batch} pages",
        f"cgroup   {CGROUP} (no limit) with task {d.task.comm} (pid {d.task.pid}); "
        f"{len(INVARIANTS)} invariants checked after every step",
        "",
    ]


def _step_lines(d: Demo, n: int, step: Step, before: Snapshot, after: Snapshot,
                shown: Shown) -> list[str]:
    lines = [f"{n:>2}. {step.title}"]
    lines += _wrapped("path", step.path)
    lines.append(_counter_line("memory", before.usage, after.usage))
    lines.append(_counter_line("memsw", before.memsw, after.memsw))
    lines.append(f"    stock   {_pages(after.stock)} charged ahead on the CPU "
                 f"({_delta(before.stock, after.stock)}), counted in both")
    lines.append(_stat_line(before, after))
    for label, pfn in shown.pages:
        lines += _page_lines(d, label, pfn)
    if shown.slot:
        lines.append(_slot_line(d, shown.slot))
    lines += _wrapped("why", step.why)
    return lines


def run(steps: list[Step] | None = None) -> DemoResult:
    """Run the demo's steps on a fresh machine; stop at the first step the checker rejects."""
    steps = STEPS if steps is None else steps
    d = Demo()
    lines = _header(d)
    before = d.snapshot()
    for n, step in enumerate(steps, 1):
        shown = step.run(d)
        after = d.snapshot()
        lines += _step_lines(d, n, step, before, after, shown)
        violations = check(d.m.k)
        if violations:
            return DemoResult(lines, violations, f"{n}. {step.title}", d.m.k)
        lines.append("    check   ok")
        lines.append("")
        before = after
    lines.append(f"done: {len(steps)} steps, every invariant held after each")
    return DemoResult(lines, [], None, d.m.k)


__all__ = ["STEPS", "Step", "Shown", "Demo", "DemoResult", "DemoError", "run"]
