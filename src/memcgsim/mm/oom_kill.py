"""mm/oom_kill.c, as far as the memcg and global OOM killers need it.

3.17: a user fault whose charge fails records the memcg in the task (mem_cgroup_oom); at the
end of the fault, mem_cgroup_oom_synchronize kills the task with the highest badness in that
memcg's hierarchy, unless the memcg has oom_kill_disable set (then the task would sleep until the
memcg has room again; the model reports it as waiting). The killed task exits, freeing its
memory, and the faulting task retries. A charge from a system call (read, write) never OOMs.

6.x: the killer runs inside the charge, for any charge that may sleep (mem_cgroup_out_of_memory
from try_charge_memcg); v1's oom_kill_disable still defers to the end of the fault. A victim
other than the charging task exits at once (its memory is freed, as the OOM reaper and its exit
do); the charging task itself, if chosen, is marked dying and torn down when its system call or
fault returns. memory.oom.group kills every task of the group.
"""

from __future__ import annotations

from .locking import run_path
from .mm_struct import MM_ANONPAGES, MM_FILEPAGES, MM_SWAPENTS
from .page_counter import PAGE_COUNTER_MAX
from .res_counter import RES_COUNTER_MAX

OOM_SCORE_ADJ_MIN = -1000


def oom_badness(task, totalpages: int) -> int:
    """Resident pages, swap entries and page-table pages, shifted by oom_score_adj (per 1000
    of totalpages)."""
    adj = task.oom_score_adj
    if adj == OOM_SCORE_ADJ_MIN or task.mm is None:
        return 0
    rss = task.mm.rss_stat
    points = rss[MM_ANONPAGES] + rss[MM_FILEPAGES] + rss[MM_SWAPENTS] + len(task.mm.pgtables)
    points += adj * totalpages // 1000
    return max(points, 1)


def task_is_dying(task) -> bool:
    """An OOM victim, or a task with SIGKILL pending, or one exiting."""
    return task is not None and (task.memdie or task.fatal_signal or task.exiting)


def mem_cgroup_get_max(k, memcg) -> int:
    """The memory the memcg OOM killer scales oom_score_adj by: max plus the swap it may use."""

    total_swap = max(k.swap.nr_slots - 1, 0)
    limit = memcg.res.limit
    if limit >= PAGE_COUNTER_MAX:
        limit = k.nr_pages
    if memcg.swappiness:
        if k.do_swap_account:
            limit = min(limit + total_swap, memcg.memsw.limit)
        elif memcg.swap is not None:
            limit += min(memcg.swap.limit, total_swap)
    return limit


def mem_cgroup_out_of_memory(k, memcg, order: int) -> bool:
    """Kill a task of memcg's hierarchy, the one with the highest badness: True when memory was
    (or is being) freed.

    3.17 (profile.charge_loop) runs it at the end of the fault, from
    mem_cgroup_oom_synchronize: badness is scaled by the memory limit, and a task already dying
    is taken as is. 6.x runs it in the charge: nothing is killed when the memcg has room again,
    the charger is dying or a victim is still on its way out; badness is scaled by the memory
    and swap the memcg may use (mem_cgroup_get_max); memory.oom.group kills the whole group."""

    in_charge = k.profile.charge_loop == "6.x"
    if in_charge:
        if mem_cgroup_margin(k, memcg) >= (1 << order) or task_is_dying(k.current):
            return True
        totalpages = mem_cgroup_get_max(k, memcg)
    else:
        totalpages = memcg.res.limit if memcg.res.limit < RES_COUNTER_MAX else k.nr_pages
    chosen, chosen_points = None, 0
    for task in k.tasks.values():
        if task.state != "alive" or not memcg.same_or_subtree(task.memcg):
            continue
        if task.memdie:
            if in_charge:
                return True            # a victim is on its way out: wait for it
            chosen = task
            break
        points = oom_badness(task, totalpages)
        if points > chosen_points:
            chosen, chosen_points = task, points
    if chosen is None:
        return False
    if not in_charge:
        oom_kill_process(k, chosen)
        return True
    group = mem_cgroup_get_oom_group(chosen, memcg)
    chosen_memcg = _oom_kill_memcg(chosen)
    __oom_kill_process(k, chosen)
    if group is not None:
        memcg_memory_event(group, "oom_group_kill")
        for task in list(k.tasks.values()):
            if task is chosen:
                # still a member with its mm when the group is walked: killed, and counted,
                # a second time (the real kernel's oom_kill is one more than the group)
                memcg_memory_event(chosen_memcg, "oom_kill")
            elif (task.state == "alive" and not task.memdie
                    and group.same_or_subtree(task.memcg)
                    and task.oom_score_adj != OOM_SCORE_ADJ_MIN):
                __oom_kill_process(k, task)
    return True


def mem_cgroup_get_oom_group(victim, oom_domain):
    """The highest memcg with memory.oom.group set between the victim's and the OOM domain."""
    group = None
    m = victim.memcg
    while m is not None:
        if m.oom_group:
            group = m
        if m is oom_domain:
            break
        m = m.parent
    return group


def _oom_kill_memcg(victim):
    """Where a kill is counted: the memcg of the victim's mm (memcg_memory_event_mm)."""
    return victim.mm.owner.memcg if victim.mm.owner else victim.memcg


def __oom_kill_process(k, victim) -> None:
    """__oom_kill_process: SIGKILL, TIF_MEMDIE, an oom_kill event in the victim's memcg. The
    task that is charging is torn down when it returns (finish_oom_kill); any other exits now."""

    memcg_memory_event(_oom_kill_memcg(victim), "oom_kill")
    if victim is k.current:
        victim.memdie = True
        victim.fatal_signal = True
        return
    oom_kill_process(k, victim, counted=True)


def finish_oom_kill(k, task) -> None:
    """The charging task was chosen: it exits on its way back to user space."""
    if task.state == "alive" and task.memdie:
        oom_kill_process(k, task, counted=True)


def mem_cgroup_oom_synchronize(k, current) -> str:
    """End of a faulting task's OOM: 'killed' (a victim was killed; retry the fault),
    'waiting' (oom_kill_disable), or 'none' (no task to kill)."""
    memcg = current.memcg_oom
    current.memcg_oom = None
    if memcg is None:
        return "none"
    if memcg.oom_kill_disable:
        memcg.under_oom = 1
        return "waiting"
    if not mem_cgroup_out_of_memory(k, memcg, current.memcg_oom_order):
        return "none"
    return "killed"


def oom_kill_process(k, victim, counted: bool = False) -> None:
    """SIGKILL the victim: it is marked TIF_MEMDIE (its charges may bypass the limit while it
    exits) and exits at once, unmapping everything it had."""

    if not counted:
        memcg_memory_event(victim.memcg, "oom_kill")

    victim.memdie = True
    victim.fatal_signal = True
    victim.exiting = True
    # its own lock owner: a 6.x kill runs inside the charging path, which may hold locks
    run_path(k, exit_mmap(k, victim.mm), task=victim, owner=-2)

    free_task_kmem(k, victim)
    victim.state = "killed"


def out_of_memory(k, current) -> str:
    """The global OOM killer, for a fault that found no free page even after reclaim: kill
    the task with the highest badness on the machine. 'killed' or 'none'."""
    chosen, chosen_points = None, 0
    for task in k.tasks.values():
        if task.state != "alive":
            continue
        if task.memdie:
            return "none"              # a victim is already on its way out
        points = oom_badness(task, k.nr_pages)
        if points > chosen_points:
            chosen, chosen_points = task, points
    if chosen is None:
        return "none"
    oom_kill_process(k, chosen)
    return "killed"


# Imported once this module's functions exist: these modules and this one call each other.
from .fork import exit_mmap  # noqa: E402
from .memcontrol import mem_cgroup_margin, memcg_memory_event  # noqa: E402
from .pgtable import free_task_kmem  # noqa: E402
