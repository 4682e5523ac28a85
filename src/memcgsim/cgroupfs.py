"""The memory controller's files, read and written by name, as a real /sys/fs/cgroup does.

This module is the edge between text and the model: it parses what a user writes the way the
kernel parses it (memparse, "-1", page rounding, EINVAL for garbage) and prints what the kernel
prints, byte for byte. The model below works in pages and knows nothing of text.

Covered here: cgroup v1 as kernel 3.17 shows it. (kmem.* files are not offered: kernel memory
accounting is not modelled.)
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import Errno, InvalidRequest
from .kernel import PAGE_SIZE
from .mm import memcontrol, memcontrol_v1
from .mm.mm_types import (
    LRU_ACTIVE_ANON,
    LRU_ACTIVE_FILE,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    LRU_UNEVICTABLE,
)
from .mm.res_counter import RES_COUNTER_MAX

ULLONG_MAX = (1 << 64) - 1
MEMPARSE_SHIFT = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}


class ParseError(Exception):
    """The written text is not what the file takes (the write fails with -EINVAL)."""


def _strtoull(s: str) -> tuple[int, str]:
    """simple_strtoull(s, &end, 0): base from the prefix (0x hex, 0 octal), wraps at 2**64."""
    base, i = 10, 0
    if s[:2].lower() == "0x" and len(s) > 2 and s[2] in "0123456789abcdefABCDEF":
        base, i = 16, 2
    elif s[:1] == "0":
        base = 8
    digits = "0123456789abcdef"[:base]
    val = 0
    while i < len(s) and s[i].lower() in digits:
        val = (val * base + digits.index(s[i].lower())) & ULLONG_MAX
        i += 1
    return val, s[i:]


def memparse(s: str) -> tuple[int, str]:
    """memparse(): a number with an optional K, M, G, T, P or E suffix; returns (bytes, rest)."""
    val, rest = _strtoull(s)
    if rest[:1].lower() in MEMPARSE_SHIFT:
        val = (val << MEMPARSE_SHIFT[rest[0].lower()]) & ULLONG_MAX
        rest = rest[1:]
    return val, rest


def res_counter_memparse_write_strategy(text: str) -> int:
    """A res_counter limit write in 3.17: "-1" is unlimited, else memparse rounded UP to a
    page; returns pages (RES_COUNTER_MAX when unlimited)."""
    buf = text.strip()
    if buf.startswith("-"):
        val, rest = _strtoull(buf[1:])
        if val != 1 or rest:
            raise ParseError(text)
        return RES_COUNTER_MAX
    val, rest = memparse(buf)
    if rest:
        raise ParseError(text)
    aligned = (val + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    if aligned > ULLONG_MAX:
        return RES_COUNTER_MAX
    return min(aligned // PAGE_SIZE, RES_COUNTER_MAX)


def kstrtoull(text: str) -> int:
    """kstrtoull(strstrip(buf), 0): a whole number, nothing else; -EINVAL or -ERANGE."""
    buf = text.strip()
    if buf.startswith("+"):
        buf = buf[1:]
    if not buf:
        raise ParseError(text)
    base, digits = 10, buf
    if buf[:2].lower() == "0x":
        base, digits = 16, buf[2:]
    elif buf[:1] == "0" and len(buf) > 1:
        base, digits = 8, buf[1:]
    try:
        val = int(digits, base) if digits else None
    except ValueError:
        raise ParseError(text) from None
    if val is None or not digits.isalnum():
        raise ParseError(text)
    if val > ULLONG_MAX:
        raise OverflowError(text)
    return val


class CgroupV1:
    """The v1 memory controller files of one machine (3.17)."""

    def __init__(self, machine):
        self.machine = machine
        self.k = machine.k
        self.vm_swappiness = 60
        read: dict[str, Callable] = {
            "memory.usage_in_bytes": lambda m: self._usage(m, False),
            "memory.max_usage_in_bytes": lambda m: self._bytes(m.res.max_usage),
            "memory.limit_in_bytes": lambda m: self._limit(m.res.limit),
            "memory.soft_limit_in_bytes": lambda m: self._limit(m.res.soft_limit),
            "memory.failcnt": lambda m: f"{m.res.failcnt}\n",
            "memory.stat": self._stat,
            "memory.use_hierarchy": lambda m: f"{int(m.use_hierarchy)}\n",
            "memory.swappiness": self._swappiness,
            "memory.move_charge_at_immigrate": lambda m: f"{m.move_charge_at_immigrate}\n",
            "memory.oom_control": lambda m: (f"oom_kill_disable {int(m.oom_kill_disable)}\n"
                                             f"under_oom {int(bool(m.under_oom))}\n"),
            "memory.numa_stat": self._numa_stat,
            "tasks": self._tasks,
            "cgroup.procs": self._tasks,
        }
        if self.k.do_swap_account:
            read.update({
                "memory.memsw.usage_in_bytes": lambda m: self._usage(m, True),
                "memory.memsw.max_usage_in_bytes": lambda m: self._bytes(m.memsw.max_usage),
                "memory.memsw.limit_in_bytes": lambda m: self._limit(m.memsw.limit),
                "memory.memsw.failcnt": lambda m: f"{m.memsw.failcnt}\n",
            })
        write: dict[str, Callable] = {
            "memory.max_usage_in_bytes": lambda m, t: self._reset_max(m.res),
            "memory.limit_in_bytes": lambda m, t: self._set_limit(m, t, False),
            "memory.soft_limit_in_bytes": self._set_soft_limit,
            "memory.failcnt": lambda m, t: self._reset_failcnt(m.res),
            "memory.force_empty": self._force_empty,
            "memory.use_hierarchy": self._use_hierarchy,
            "memory.swappiness": self._set_swappiness,
            "memory.move_charge_at_immigrate": self._set_move_charge,
            "memory.oom_control": self._set_oom_control,
            "tasks": self._attach,
            "cgroup.procs": self._attach,
        }
        if self.k.do_swap_account:
            write.update({
                "memory.memsw.max_usage_in_bytes": lambda m, t: self._reset_max(m.memsw),
                "memory.memsw.limit_in_bytes": lambda m, t: self._set_limit(m, t, True),
                "memory.memsw.failcnt": lambda m, t: self._reset_failcnt(m.memsw),
            })
        self._read, self._write = read, write

    # ---------------------------------------------------------------- the interface
    def files(self) -> list[str]:
        return sorted(set(self._read) | set(self._write))

    def read(self, path: str, name: str) -> str:
        memcg = self.k.memcg(path)
        fn = self._read.get(name)
        if fn is None:
            if name in self._write:
                raise InvalidRequest(f"{path}/{name} cannot be read (write-only)")
            raise InvalidRequest(f"{path}/{name}: no such file in the v1 memory controller")
        return fn(memcg)

    def write(self, path: str, name: str, text: str) -> int:
        """0, or the negative errno the write(2) would fail with."""
        memcg = self.k.memcg(path)
        fn = self._write.get(name)
        if fn is None:
            if name in self._read:
                return -Errno.EINVAL
            raise InvalidRequest(f"{path}/{name}: no such file in the v1 memory controller")
        try:
            return fn(memcg, text)
        except ParseError:
            return -Errno.EINVAL
        except OverflowError:
            return -Errno.ERANGE

    # ---------------------------------------------------------------- reads
    @staticmethod
    def _bytes(pages: int) -> str:
        return f"{pages * PAGE_SIZE}\n"

    def _limit(self, pages: int) -> str:
        return f"{self.k.res_limit_bytes(pages)}\n"

    def _usage(self, memcg, swap: bool) -> str:
        return self._bytes(memcontrol.mem_cgroup_usage(self.k, memcg, swap))

    def _stat(self, memcg) -> str:
        return "".join(f"{key} {val}\n" for key, val in memcontrol.memcg_stat_show(self.k, memcg))

    def _swappiness(self, memcg) -> str:
        return f"{self.vm_swappiness if memcg.is_root() else memcg.swappiness}\n"

    def _numa_stat(self, memcg) -> str:
        stats = (("total", (LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE,
                            LRU_ACTIVE_FILE, LRU_UNEVICTABLE)),
                 ("file", (LRU_INACTIVE_FILE, LRU_ACTIVE_FILE)),
                 ("anon", (LRU_INACTIVE_ANON, LRU_ACTIVE_ANON)),
                 ("unevictable", (LRU_UNEVICTABLE,)))
        lines = []
        for prefix, group in (("", (memcg,)), ("hierarchical_", tuple(memcg.stat_tree()))):
            for name, lrus in stats:
                per_node = [sum(m.lruvecs[n].lru_size[lru] for m in group for lru in lrus)
                            for n in range(self.k.nr_nodes)]
                nodes = "".join(f" N{n}={v}" for n, v in enumerate(per_node))
                lines.append(f"{prefix}{name}={sum(per_node)}{nodes}\n")
        return "".join(lines)

    def _tasks(self, memcg) -> str:
        pids = sorted(t.pid for t in self.k.tasks.values()
                      if t.memcg is memcg and t.state == "alive")
        return "".join(f"{pid}\n" for pid in pids)

    # ---------------------------------------------------------------- writes
    def _set_limit(self, memcg, text: str, memsw: bool) -> int:
        if memcg.is_root():
            return -Errno.EINVAL
        pages = res_counter_memparse_write_strategy(text)
        return memcontrol_v1.mem_cgroup_resize_limit(self.k, memcg, pages, memsw)

    def _set_soft_limit(self, memcg, text: str) -> int:
        memcg.res.soft_limit = res_counter_memparse_write_strategy(text)
        return 0

    @staticmethod
    def _reset_max(counter) -> int:
        counter.max_usage = counter.usage
        return 0

    @staticmethod
    def _reset_failcnt(counter) -> int:
        counter.failcnt = 0
        return 0

    def _force_empty(self, memcg, text: str) -> int:
        if memcg.is_root():
            return -Errno.EINVAL
        return memcontrol_v1.mem_cgroup_force_empty(self.k, memcg)

    def _use_hierarchy(self, memcg, text: str) -> int:
        val = kstrtoull(text)
        if val not in (0, 1):
            return 0 if memcg.use_hierarchy == val else -Errno.EINVAL
        return self.machine.set_use_hierarchy(memcg.name, bool(val))

    def _set_swappiness(self, memcg, text: str) -> int:
        val = kstrtoull(text)
        if val > 100:
            return -Errno.EINVAL
        if memcg.is_root():
            self.vm_swappiness = val
        else:
            memcg.swappiness = val
        return 0

    def _set_move_charge(self, memcg, text: str) -> int:
        val = kstrtoull(text)
        if val >= 1 << 2:
            return -Errno.EINVAL
        memcg.move_charge_at_immigrate = val
        return 0

    def _set_oom_control(self, memcg, text: str) -> int:
        val = kstrtoull(text)
        if memcg.is_root() or val not in (0, 1):
            return -Errno.EINVAL
        memcg.oom_kill_disable = bool(val)
        return 0

    def _attach(self, memcg, text: str) -> int:
        pid = kstrtoull(text)
        for t in self.k.tasks.values():
            if t.pid == pid and t.state == "alive":
                return memcontrol_v1.mem_cgroup_attach_task(self.k, t, memcg)
        return -Errno.ESRCH
