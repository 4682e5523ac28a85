"""Kernel profiles: every difference between the modelled kernel versions lives in this table.

Code elsewhere reads `kernel.profile.<field>`; it never compares version strings. A field names a
behaviour, and its comment says which kernel change introduced it, so a reader can find why two
profiles differ without reading the paths.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

PAGE_SIZE = 4096
ULLONG_MAX = (1 << 64) - 1
#: PAGE_COUNTER_MAX * PAGE_SIZE: what an unlimited page_counter reads as in the v1 files
PAGE_COUNTER_MAX_BYTES = ((1 << 63) - 1) // PAGE_SIZE * PAGE_SIZE


@dataclass(frozen=True, kw_only=True)
class KernelProfile:
    """One kernel version's behaviours. Each field is one behaviour, named for what it does
    and commented with the kernel change that brought it; tests/test_profile_fields.py flips
    each alone and shows what it changes. Grouped by the part of memcg they belong to."""

    # --- identity
    name: str
    #: cgroup interfaces the version offers ("v1", "v2")
    cgroup_versions: tuple[str, ...]

    # --- charging: the charge loop, its batch and retries, when a page is charged, what is charged
    #: "res_counter" (3.17) or "page_counter" (3.19 on): the hierarchical counter type; with
    #: page_counter every memcg hangs off its parent (v1 use_hierarchy reads 1, 0 is EINVAL)
    counter: str
    #: the charge loop: "3.17" (try_charge: res then memsw, dying tasks bypass to root, the OOM
    #: is only recorded and runs at the end of the fault) or "6.x" (try_charge_memcg: memsw then
    #: memory, a `max` event per reclaim round, one drain_all_stock, the OOM killer runs in the
    #: charge, no bypass: -ENOMEM or a forced charge)
    charge_loop: str
    #: 5.8 on: a page is charged in one step before anyone can see it (mem_cgroup_charge), and a
    #: swapped-in page when it enters the swap cache (read-ahead pages too). Before: try_charge,
    #: then commit (with lrucare) or cancel, and swap cache pages are charged at the fault.
    charge_at_instantiation: bool
    #: CHARGE_BATCH (3.17) / MEMCG_CHARGE_BATCH: pages a per-CPU stock pre-charges at once
    charge_batch: int
    #: MEM_CGROUP_RECLAIM_RETRIES (3.17) / MAX_RECLAIM_RETRIES (16 since 5.9)
    reclaim_retries: int
    #: PAGE_ALLOC_COSTLY_ORDER in pages: a smaller charge that made reclaim progress is retried
    costly_order_pages: int = 8
    #: a THP fault in a VMA with MADV_HUGEPAGE reclaims and retries (GFP_TRANSHUGE without
    #: __GFP_NORETRY, defrag=madvise, from 4.6); 3.17's GFP_TRANSHUGE always has __GFP_NORETRY
    thp_madvise_retries: bool = False
    #: the memcg OOM path itself declines a charge of a costly order (mem_cgroup_oom's order
    #: check, 4.x); 3.17's mem_cgroup_oom has none (its THP charges never retry that far)
    oom_skips_costly_order: bool = False
    #: kernel memory (page tables, kernel stacks, task slab) is charged to every memcg (6.x);
    #: 3.17 charged it only under a kmem limit, which the model does not offer
    kmem_accounting: bool

    # --- charge transfer: migration and page cache replacement
    #: mem_cgroup_migrate: "transfer-with-stats" (3.17: the charge moves, the statistics of the
    #: old page go down and those of the new page up), "force-charge" (4.5-6.6: the new page is
    #: charged over the limit, the old one stays charged until it is freed) or "transfer" (6.7
    #: on, Nhat Pham: memcg_data moves, no counter changes)
    migrate: str
    #: page cache replacement (replace_page_cache_page / _folio): "migrate" (through
    #: mem_cgroup_migrate with lrucare, as 3.17 and 5.8-6.6 do) or "force-charge" (6.7 on:
    #: mem_cgroup_replace_folio charges the new page, the old is uncharged when freed)
    replace_page_cache: str
    #: remove_migration_pte mlocks the new page of a VM_LOCKED vma (4.4, "mm: page migration
    #: fix PageMlocked on migrated pages"); in 3.17 unmapping for migration cleared PG_mlocked
    #: and the page stayed evictable until reclaim met it in the locked vma
    migration_remlocks: bool = False

    # --- swap: who holds the charge of a swapped page, read-ahead, swappiness
    #: 6.x v1 swapout clears memcg_data and uncharges memory at once; 3.17 leaves the page
    #: charged (PCG_MEM) until it is freed
    swapout_uncharges_memory: bool
    #: a swap slot's charge goes when no pte or shmem entry refers to it (3.17), or only when
    #: the slot itself is freed, the swap cache's reference included (6.x)
    uncharge_swap_at_slot_free: bool
    #: swap cluster read-ahead: 1 << page_cluster pages
    page_cluster: int = 3
    #: the largest memory.swappiness (200 from 5.8)
    max_swappiness: int = 100

    # --- reclaim and the LRU lists
    #: a new anonymous page starts on the active list (3.17) or the inactive one (5.9 on,
    #: "workingset detection for anonymous LRU")
    new_anon_active: bool
    #: write(2) marks the page it writes accessed (3.17's grab_cache_page_write_begin asks
    #: FGP_ACCESSED); 6.x's FGP_WRITEBEGIN does not, so a read after a write only sets
    #: PG_referenced and the page stays inactive (seen on 6.1 under memcgsim validate)
    write_marks_accessed: bool
    #: reclaim checks its target memcg's memory.min/low against the effective values an
    #: earlier reclaim from an ancestor left (6.1: mem_cgroup_below_min(memcg) has no target
    #: argument), so a target whose stale emin covers its usage is skipped; fixed by 6.12
    stale_target_protection: bool

    # --- cgroup life: removal and v1 charge moving
    #: rmdir: "reparent" (3.17 moves every charge to the parent) or "keep" (6.x: the offline
    #: memcg stays charged until its last page goes)
    offline: str
    #: v1 move_charge_at_immigrate moves charges (deprecated in 6.x but still working in 6.1)
    charge_moving: bool
    #: v1 charge moving precharges page by page without retries (__GFP_NORETRY, 4.14 "do not
    #: retry precharge charges"), so it never reaches the OOM killer
    precharge_noretry: bool = False

    # --- statistics and control files
    #: memory.stat: "charge-type" (3.17: cache/rss counted at commit and uncharge) or "state"
    #: (6.x: anon/file/shmem/... counted where pages are mapped, cached and swapped)
    stats: str
    #: v1 limit writes: res_counter rounds up to a page (3.17), page_counter_memparse rounds down
    limit_round_up: bool
    #: what an unlimited v1 limit reads as (RES_COUNTER_MAX vs PAGE_COUNTER_MAX pages)
    v1_unlimited_bytes: int
    #: 6.12: writing memory.peak / memory.swap.peak restarts the peak the writer sees
    peak_writable: bool
    #: memory.swap.peak exists (6.5 on)
    swap_peak: bool
    #: SWAP_SLOTS_CACHE_SIZE: freed swap slots wait in a per-CPU cache of this many before
    #: they (and their swap charge) go back (4.11 on); 0: freed at once
    swap_slots_cache: int = 0
    #: zap_pte_range frees runs of consecutive swap entries in one go, past the slot caches,
    #: when each is its pte's last reference and not in the swap cache (6.10 on)
    zap_swap_batch: bool = False
    #: v2 zswap control files (Debian builds CONFIG_ZSWAP): memory.zswap.max (5.19 on),
    #: memory.zswap.writeback (6.8 on). The model has no zswap: they are kept and shown only
    zswap_files: tuple[str, ...] = ()
    #: memory.reclaim: "6.1" (page_counter_memparse, an empty write reclaims everything) or
    #: "6.12" (a size, then optional swappiness=N; an empty write is -EINVAL)
    reclaim_syntax: str = "6.1"
    #: v1 memory.oom_control prints an oom_kill count (4.13 on)
    v1_oom_kill_line: bool = False
    #: v2 memory.stat: the state keys in the kernel's order (memory_stats[]), then the events
    #: (pgscan, pgsteal, then memcg_vm_event_stat[] less pgpgin/pgpgout); Debian's config
    v2_stat_keys: tuple[str, ...] = ()
    v2_stat_events: tuple[str, ...] = ()
    #: memory.events keys in order
    v2_events_keys: tuple[str, ...] = ()
    #: v1 memory.stat keys before the LRU lists (memcg1_stats, then memcg1_events)
    v1_stat_keys: tuple[str, ...] = ()
    v1_stat_events: tuple[str, ...] = ()

    @property
    def usage_within_limit(self) -> bool:
        """Whether usage can never exceed a limit, which the checker holds the model to: what
        the 3.17 charge loop gives (a dying task's charge goes to root instead), as long as
        migration and page cache replacement do not force charges. The 6.x loop forces some
        charges past max (__GFP_NOFAIL, a dying charger) and memory.max may be set below
        usage."""
        return (self.charge_loop == "3.17" and self.migrate != "force-charge"
                and self.replace_page_cache != "force-charge")

    @property
    def default_cgroup(self) -> str:
        return "v2" if "v2" in self.cgroup_versions else "v1"


# memory.stat of v2 as Debian's amd64 kernels print it (THP, ZSWAP, NUMA_BALANCING, MEMCG_KMEM
# on), read in the 6.1.192 and 6.12.117 sources
V2_STAT_KEYS_6_1 = (
    "anon", "file", "kernel", "kernel_stack", "pagetables", "sec_pagetables", "percpu", "sock",
    "vmalloc", "shmem",
    "zswap", "zswapped", "file_mapped", "file_dirty", "file_writeback", "swapcached", "anon_thp",
    "file_thp", "shmem_thp", "inactive_anon", "active_anon", "inactive_file", "active_file",
    "unevictable", "slab_reclaimable", "slab_unreclaimable", "slab", "workingset_refault_anon",
    "workingset_refault_file", "workingset_activate_anon", "workingset_activate_file",
    "workingset_restore_anon", "workingset_restore_file", "workingset_nodereclaim")
V2_STAT_EVENTS_6_1 = (
    "pgscan", "pgsteal", "pgscan_kswapd", "pgscan_direct", "pgsteal_kswapd", "pgsteal_direct",
    "pgfault", "pgmajfault", "pgrefill", "pgactivate", "pgdeactivate", "pglazyfree",
    "pglazyfreed", "zswpin", "zswpout", "thp_fault_alloc", "thp_collapse_alloc")
V2_STAT_KEYS_6_12 = V2_STAT_KEYS_6_1 + (
    "pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged", "pgpromote_success")
V2_STAT_EVENTS_6_12 = (
    "pgscan", "pgsteal", "pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged",
    "pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged", "pgfault", "pgmajfault",
    "pgrefill", "pgactivate", "pgdeactivate", "pglazyfree", "pglazyfreed", "swpin_zero",
    "swpout_zero", "zswpin", "zswpout", "zswpwb", "thp_fault_alloc", "thp_collapse_alloc",
    "thp_swpout", "thp_swpout_fallback", "numa_pages_migrated", "numa_pte_updates",
    "numa_hint_faults")

PROFILES: dict[str, KernelProfile] = {
    "3.17": KernelProfile(
        name="3.17",
        cgroup_versions=("v1",),
        charge_batch=32,
        reclaim_retries=5,
        counter="res_counter",
        charge_loop="3.17",
        charge_at_instantiation=False,
        migrate="transfer-with-stats",
        replace_page_cache="migrate",
        swapout_uncharges_memory=False,
        uncharge_swap_at_slot_free=False,
        offline="reparent",
        kmem_accounting=False,
        new_anon_active=True,
        write_marks_accessed=True,
        stale_target_protection=False,
        stats="charge-type",
        limit_round_up=True,
        v1_unlimited_bytes=ULLONG_MAX,
        peak_writable=False,
        swap_peak=False,
        charge_moving=True,
        page_cluster=3,
        costly_order_pages=8,
        v1_stat_keys=("cache", "rss", "rss_huge", "mapped_file", "writeback", "swap"),
        v1_stat_events=("pgpgin", "pgpgout", "pgfault", "pgmajfault"),
    ),
    "6.1": KernelProfile(
        name="6.1",
        cgroup_versions=("v1", "v2"),
        charge_batch=64,
        reclaim_retries=16,
        counter="page_counter",
        charge_loop="6.x",
        charge_at_instantiation=True,
        migrate="force-charge",
        replace_page_cache="migrate",
        swapout_uncharges_memory=True,
        uncharge_swap_at_slot_free=True,
        offline="keep",
        kmem_accounting=True,
        new_anon_active=False,
        write_marks_accessed=False,
        stale_target_protection=True,
        stats="state",
        limit_round_up=False,
        v1_unlimited_bytes=PAGE_COUNTER_MAX_BYTES,
        peak_writable=False,
        swap_peak=False,
        charge_moving=True,
        page_cluster=3,
        costly_order_pages=8,
        v1_stat_keys=("cache", "rss", "rss_huge", "shmem", "mapped_file", "dirty", "writeback",
                      "workingset_refault_anon", "workingset_refault_file", "swap"),
        v1_stat_events=("pgpgin", "pgpgout", "pgfault", "pgmajfault"),
        v1_oom_kill_line=True,
        v2_stat_keys=V2_STAT_KEYS_6_1,
        v2_stat_events=V2_STAT_EVENTS_6_1,
        zswap_files=("zswap.max",),
        swap_slots_cache=64,
        v2_events_keys=("low", "high", "max", "oom", "oom_kill", "oom_group_kill"),
        max_swappiness=200,
        precharge_noretry=True,
        thp_madvise_retries=True,
        oom_skips_costly_order=True,
        migration_remlocks=True,
    ),
}


# 6.12 is 6.1 but for what changed in between: v1 built out (CONFIG_MEMCG_V1 unset), migration
# transferring the charge (6.7), page cache replacement force-charging (6.7), per-file
# memory.peak resets and memory.swap.peak, memory.reclaim's swappiness=, more memory.stat keys
PROFILES["6.12"] = dataclasses.replace(
    PROFILES["6.1"],
    name="6.12",
    cgroup_versions=("v2",),
    migrate="transfer",
    replace_page_cache="force-charge",
    peak_writable=True,
    swap_peak=True,
    charge_moving=False,
    v1_stat_keys=(),
    v1_stat_events=(),
    v1_oom_kill_line=False,
    v2_stat_keys=V2_STAT_KEYS_6_12,
    v2_stat_events=V2_STAT_EVENTS_6_12,
    reclaim_syntax="6.12",
    stale_target_protection=False,
    zswap_files=("zswap.max", "zswap.writeback"),
    zap_swap_batch=True,
)


def get_profile(name: str) -> KernelProfile:
    from .errors import InvalidRequest

    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise InvalidRequest(f"unknown kernel profile {name!r} (known: {known})") from None
