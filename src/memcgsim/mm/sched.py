"""task_struct: the parts of a task the memory controller looks at."""

from __future__ import annotations


class Task:
    """A task: its mm, its memcg (css_set), the CPU it runs on and its dying states."""

    def __init__(self, pid: int, comm: str, memcg, mm=None, cpu: int = 0, node: int = 0):
        self.pid = pid
        self.comm = comm
        self.memcg = memcg
        self.mm = mm
        self.cpu = cpu
        #: the node its new pages come from (numa_node_id() of its CPU)
        self.node = node
        #: TIF_MEMDIE: chosen by the OOM killer
        self.memdie = False
        #: fatal_signal_pending()
        self.fatal_signal = False
        #: PF_EXITING
        self.exiting = False
        #: current->memcg_oom: a memcg OOM recorded during a user fault (3.17)
        self.memcg_may_oom = False
        self.memcg_oom = None
        self.memcg_oom_order = 0
        #: pages charged over memory.high, to reclaim on the way back to user space
        self.memcg_nr_pages_over_high = 0
        #: model-only: the task's last charge failed after the 6.x in-charge OOM killer
        self.memcg_nomem = False
        #: /proc/PID/oom_score_adj, -1000 (never killed) to 1000
        self.oom_score_adj = 0
        #: the memcg charged for the kernel stack and slab (None: nothing charged)
        self.kmem_memcg = None
        #: alive | exited | killed
        self.state = "alive"

    def __repr__(self) -> str:
        return f"<task {self.pid} {self.comm} in {self.memcg.name}>"
