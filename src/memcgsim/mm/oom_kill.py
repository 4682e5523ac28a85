"""mm/oom_kill.c, as far as the memcg OOM of a 3.17 user fault needs it.

A user fault whose charge fails records the memcg in the task (mem_cgroup_oom); at the end of
the fault, mem_cgroup_oom_synchronize kills the task with the highest badness in that memcg's
hierarchy, unless the memcg has oom_kill_disable set (then the task would sleep until the memcg
has room again; the model reports it as waiting). The killed task exits, freeing its memory, and
the faulting task retries. A charge from a system call (read, write) never OOMs: it gets -ENOMEM.
"""

from __future__ import annotations

from .mm_struct import MM_ANONPAGES, MM_FILEPAGES, MM_SWAPENTS

OOM_SCORE_ADJ_MIN = -1000


def oom_badness(task, totalpages: int) -> int:
    """Resident pages plus swap entries, shifted by oom_score_adj (per 1000 of totalpages)."""
    adj = task.oom_score_adj
    if adj == OOM_SCORE_ADJ_MIN or task.mm is None:
        return 0
    rss = task.mm.rss_stat
    points = rss[MM_ANONPAGES] + rss[MM_FILEPAGES] + rss[MM_SWAPENTS]
    points += adj * totalpages // 1000
    return max(points, 1)


def mem_cgroup_out_of_memory(k, memcg, current):
    """Choose the victim among the tasks of memcg's hierarchy (a task that is already dying is
    taken as is); return it, or None when nothing can be killed."""
    from .res_counter import RES_COUNTER_MAX

    limit = memcg.res.limit if memcg.res.limit < RES_COUNTER_MAX else k.nr_pages
    chosen, chosen_points = None, 0
    for task in k.tasks.values():
        if task.state != "alive" or not memcg.same_or_subtree(task.memcg):
            continue
        if task.memdie:
            return task
        points = oom_badness(task, limit)
        if points > chosen_points:
            chosen, chosen_points = task, points
    return chosen


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
    victim = mem_cgroup_out_of_memory(k, memcg, current)
    if victim is None:
        return "none"
    oom_kill_process(k, victim)
    return "killed"


def oom_kill_process(k, victim) -> None:
    """SIGKILL the victim: it is marked TIF_MEMDIE (its charges may bypass the limit while it
    exits) and exits at once, unmapping everything it had."""
    from .fork import exit_mmap
    from .locking import run_path

    victim.memdie = True
    victim.fatal_signal = True
    victim.exiting = True
    run_path(k, exit_mmap(k, victim.mm), task=victim)
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
