"""The memory controller's files, read and written by name, as a real /sys/fs/cgroup does.

This module is the edge between text and the model: it parses what a user writes the way the
kernel parses it (memparse, "-1", page rounding, EINVAL for garbage) and prints what the kernel
prints, byte for byte. The model below works in pages and knows nothing of text.

Covered here: cgroup v1 as kernels 3.17 and 6.1 show it, and cgroup v2 as 6.1 and 6.12 show
it. What differs between kernels comes from the profile (memcgsim.profile). (The v1 kmem.* files
are not offered: kernel memory is not modelled per cgroup.)
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
from .mm.page_counter import PAGE_COUNTER_MAX
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


def page_counter_memparse(text: str, max_token: str) -> int:
    """page_counter_memparse (3.19 on): `max_token` ("max" on v2, "-1" on v1) is unlimited,
    else memparse rounded DOWN to whole pages; returns pages (PAGE_COUNTER_MAX at most)."""
    buf = text.strip()
    if buf == max_token:
        return PAGE_COUNTER_MAX
    val, rest = memparse(buf)
    if rest:
        raise ParseError(text)        # signs, "MAX", "1KB", two values...
    # (an empty write parses as 0 bytes: `echo > memory.max` sets the limit to 0)
    return min(val // PAGE_SIZE, PAGE_COUNTER_MAX)


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


def kstrtoint(text: str) -> int:
    """kstrtoint(strstrip(buf), 0): a signed whole number."""
    buf = text.strip()
    neg = buf.startswith("-")
    val = kstrtoull(buf[1:] if neg else buf)
    val = -val if neg else val
    if not -(1 << 31) <= val < (1 << 31):
        raise OverflowError(text)
    return val


class _Files:
    """What both interfaces share: the name tables, dispatch and errors."""

    version = ""

    def __init__(self, machine):
        self.machine = machine
        self.k = machine.k
        self._read: dict[str, Callable] = {}
        self._write: dict[str, Callable] = {}
        #: files only a non-root cgroup has (CFTYPE_NOT_ON_ROOT)
        self._not_on_root: set[str] = set()

    def _tables(self) -> tuple[dict[str, Callable], dict[str, Callable]]:
        """The read and write handlers by file name."""
        return {}, {}

    def __getstate__(self) -> dict:
        # the handler tables are closures over self: pickled without them, they are built
        # again on first use (the explorer pickles machines after their setup)
        state = dict(self.__dict__)
        state.pop("_read", None)
        state.pop("_write", None)
        return state

    def __getattr__(self, name: str):
        if name in ("_read", "_write"):
            self._read, self._write = self._tables()
            return self.__dict__[name]
        raise AttributeError(name)

    def files(self, path: str | None = None) -> list[str]:
        """The files of a cgroup (of a non-root one when path is None)."""
        names = set(self._read) | set(self._write)
        if path is not None and self.k.memcg(path).is_root():
            names -= self._not_on_root
        return sorted(names)

    def readable(self, path: str) -> list[str]:
        return [n for n in self.files(path) if n in self._read]

    def _lookup(self, path: str, name: str):
        memcg = self.k.memcg(path)
        if memcg.is_root() and name in self._not_on_root:
            raise InvalidRequest(f"{path}/{name}: the root cgroup has no such file")
        self._visible(memcg, path, name)
        return memcg

    def _visible(self, memcg, path: str, name: str) -> None:
        pass

    def _unknown(self, path: str, name: str):
        return InvalidRequest(f"{path}/{name}: no such file in the {self.version} memory "
                              "controller")

    def read(self, path: str, name: str) -> str:
        if name not in self._read and name not in self._write:
            raise self._unknown(path, name)
        memcg = self._lookup(path, name)
        fn = self._read.get(name)
        if fn is None:
            raise InvalidRequest(f"{path}/{name} cannot be read (write-only)")
        return fn(memcg)

    def write(self, path: str, name: str, text: str) -> int:
        """0, or the negative errno the write(2) would fail with."""
        if name not in self._read and name not in self._write:
            raise self._unknown(path, name)
        memcg = self._lookup(path, name)
        fn = self._write.get(name)
        if fn is None:
            # only sysfs asks kernfs to check a file's mode at open
            # (KERNFS_ROOT_EXTRA_OPEN_PERM_CHECK): root opens the 0444 cgroup file for writing
            # and cgroup_file_write finds no handler (EINVAL, seen on 6.1)
            return -Errno.EINVAL
        try:
            return fn(memcg, text)
        except ParseError:
            return -Errno.EINVAL
        except OverflowError:
            return -Errno.ERANGE

    @staticmethod
    def _bytes(pages: int) -> str:
        return f"{pages * PAGE_SIZE}\n"

    def _procs(self, memcg) -> str:
        pids = sorted(t.pid for t in self.k.tasks.values()
                      if t.memcg is memcg and t.state == "alive")
        return "".join(f"{pid}\n" for pid in pids)

    def _find_pid(self, text: str):
        pid = kstrtoull(text)
        for t in self.k.tasks.values():
            if t.pid == pid and t.state == "alive":
                return t
        return None


class CgroupV1(_Files):
    """The v1 memory controller files of one machine (3.17, or 6.1's cgroup v1)."""

    version = "v1"

    def __init__(self, machine):
        super().__init__(machine)
        self.vm_swappiness = 60
        self._read, self._write = self._tables()

    def _tables(self) -> tuple[dict[str, Callable], dict[str, Callable]]:
        read: dict[str, Callable] = {
            "memory.usage_in_bytes": lambda m: self._usage(m, False),
            "memory.max_usage_in_bytes": lambda m: self._bytes(m.res.max_usage),
            "memory.limit_in_bytes": lambda m: self._limit(m.res.limit),
            "memory.soft_limit_in_bytes": lambda m: self._limit(m.soft_limit),
            "memory.failcnt": lambda m: f"{m.res.failcnt}\n",
            "memory.stat": self._stat,
            "memory.use_hierarchy": lambda m: f"{int(m.use_hierarchy)}\n",
            "memory.swappiness": self._swappiness,
            "memory.move_charge_at_immigrate": lambda m: f"{m.move_charge_at_immigrate}\n",
            "memory.oom_control": self._oom_control,
            "memory.numa_stat": self._numa_stat,
            "tasks": self._procs,
            "cgroup.procs": self._procs,
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
        return read, write

    # ---------------------------------------------------------------- reads
    def _limit(self, pages: int) -> str:
        return f"{self.k.v1_limit_bytes(pages)}\n"

    def _oom_control(self, memcg) -> str:
        text = (f"oom_kill_disable {int(memcg.oom_kill_disable)}\n"
                f"under_oom {int(bool(memcg.under_oom))}\n")
        if self.k.profile.v1_oom_kill_line:
            text += f"oom_kill {memcg.memory_events['oom_kill']}\n"
        return text

    def _usage(self, memcg, swap: bool) -> str:
        return self._bytes(memcontrol.mem_cgroup_usage(self.k, memcg, swap))

    def _stat(self, memcg) -> str:
        if self.k.profile.stats == "state":
            lines = memcontrol_v1.memcg1_stat_format(self.k, memcg)
        else:
            lines = memcontrol.memcg_stat_show(self.k, memcg)
        return "".join(f"{key} {val}\n" for key, val in lines)

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


    # ---------------------------------------------------------------- writes
    def _parse_limit(self, text: str) -> int:
        if self.k.profile.limit_round_up:
            return res_counter_memparse_write_strategy(text)
        return page_counter_memparse(text, "-1")

    def _set_limit(self, memcg, text: str, memsw: bool) -> int:
        pages = self._parse_limit(text)
        if memcg.is_root():
            return -Errno.EINVAL
        return memcontrol_v1.mem_cgroup_resize_limit(self.k, memcg, pages, memsw)

    def _set_soft_limit(self, memcg, text: str) -> int:
        memcg.soft_limit = self._parse_limit(text)
        return 0

    @staticmethod
    def _reset_max(counter) -> int:
        if hasattr(counter, "reset_watermark"):
            counter.reset_watermark()
        else:
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
        if val > self.k.profile.max_swappiness:
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
        task = self._find_pid(text)
        if task is None:
            return -Errno.ESRCH
        return memcontrol_v1.mem_cgroup_attach_task(self.k, task, memcg)


#: the controllers a Debian kernel offers on the unified hierarchy, in the kernel's order
CONTROLLERS = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")


class CgroupV2(_Files):
    """The v2 (unified hierarchy) memory files of one machine (6.1 and 6.12).

    A cgroup has memory.* files only when its parent enabled +memory in cgroup.subtree_control.
    Without them its pages still count in the nearest ancestor that has them; the model keeps a
    memcg per cgroup either way, which shows the same numbers in every file that exists."""

    version = "v2"

    def __init__(self, machine):
        super().__init__(machine)
        read, write = self._read, self._write = self._tables()
        self._not_on_root = {n for n in set(read) | set(write) if n.startswith("memory.")
                             and n not in ("memory.stat", "memory.numa_stat", "memory.reclaim")}

    def _tables(self) -> tuple[dict[str, Callable], dict[str, Callable]]:
        prof = self.k.profile
        tunable = {
            "memory.min": (lambda m: m.res.min, self._set_min),
            "memory.low": (lambda m: m.res.low, self._set_low),
            "memory.high": (lambda m: m.res.high, self._set_high),
            "memory.max": (lambda m: m.res.max, self._set_max),
            "memory.swap.high": (lambda m: m.swap.high, self._set_swap_high),
            "memory.swap.max": (lambda m: m.swap.max, self._set_swap_max),
        }
        read: dict[str, Callable] = {
            "memory.current": lambda m: self._bytes(m.res.usage),
            "memory.peak": lambda m: self._bytes(m.res.watermark),
            "memory.events": lambda m: self._events(m.memory_events),
            "memory.events.local": lambda m: self._events(m.memory_events_local),
            "memory.oom.group": lambda m: f"{int(m.oom_group)}\n",
            "memory.stat": self._stat,
            "memory.numa_stat": self._numa_stat,
            "memory.swap.current": lambda m: self._bytes(m.swap.usage),
            "memory.swap.events": self._swap_events,
            "cgroup.procs": self._procs,
            "cgroup.subtree_control": lambda m: self._controllers(m.subtree_control),
            "cgroup.controllers": self._available,
        }
        for name, (get, _) in tunable.items():
            read[name] = lambda m, get=get: self._tunable(get(m))
        if prof.swap_peak:
            read["memory.swap.peak"] = lambda m: self._bytes(m.swap.watermark)
        write: dict[str, Callable] = {name: setter for name, (_, setter) in tunable.items()}
        if "zswap.max" in prof.zswap_files:
            read["memory.zswap.max"] = lambda m: self._tunable(m.zswap_max)
            write["memory.zswap.max"] = self._set_zswap_max
        if "zswap.writeback" in prof.zswap_files:
            read["memory.zswap.writeback"] = lambda m: f"{int(m.zswap_writeback)}\n"
            write["memory.zswap.writeback"] = self._set_zswap_writeback
        write.update({
            "memory.oom.group": self._set_oom_group,
            "memory.reclaim": self._reclaim,
            "cgroup.procs": self._attach,
            "cgroup.subtree_control": self._set_subtree_control,
        })
        if prof.peak_writable:
            write["memory.peak"] = self._reset_peak
            if prof.swap_peak:
                write["memory.swap.peak"] = self._reset_peak
        return read, write

    def _visible(self, memcg, path: str, name: str) -> None:
        if (name.startswith("memory.") and not memcg.is_root()
                and "memory" not in memcg.parent.subtree_control):
            raise InvalidRequest(f"{path}/{name}: no such file: the parent has not enabled "
                                 "+memory in cgroup.subtree_control")

    # ---------------------------------------------------------------- reads
    @staticmethod
    def _tunable(pages: int) -> str:
        """seq_puts_memcg_tunable: "max" for PAGE_COUNTER_MAX, else bytes."""
        return "max\n" if pages >= PAGE_COUNTER_MAX else f"{pages * PAGE_SIZE}\n"

    def _events(self, events: dict) -> str:
        return "".join(f"{key} {events.get(key, 0)}\n" for key in self.k.profile.v2_events_keys)

    @staticmethod
    def _swap_events(memcg) -> str:
        ev = memcg.memory_events
        return f"high {ev['swap_high']}\nmax {ev['swap_max']}\nfail {ev['swap_fail']}\n"

    def _stat(self, memcg) -> str:
        return "".join(f"{key} {val}\n"
                       for key, val in memcontrol.memory_stat_format(self.k, memcg))

    def _numa_stat(self, memcg) -> str:
        """memory.numa_stat: the LRU-based and page-state keys per node (sizes in bytes)."""
        from .mm.vmstat import memcg_page_state_local

        local = memcg_page_state_local(self.k)
        lines = []
        tree = tuple(memcg.subtree())
        lru_keys = {"inactive_anon": LRU_INACTIVE_ANON, "active_anon": LRU_ACTIVE_ANON,
                    "inactive_file": LRU_INACTIVE_FILE, "active_file": LRU_ACTIVE_FILE,
                    "unevictable": LRU_UNEVICTABLE}
        for key in ("anon", "file", "shmem", "file_mapped", "file_dirty", "file_writeback",
                    "swapcached", "anon_thp", *lru_keys):
            if key in lru_keys:
                per_node = [sum(m.lruvecs[n].lru_size[lru_keys[key]] for m in tree) * PAGE_SIZE
                            for n in range(self.k.nr_nodes)]
            else:
                # the model counts page state per memcg, not per node: all on the page's node
                per_node = [0] * self.k.nr_nodes
                per_node[0] = sum(local[m.id][key] for m in tree) * PAGE_SIZE
            lines.append(f"{key}" + "".join(f" N{n}={v}" for n, v in enumerate(per_node))
                         + "\n")
        return "".join(lines)

    @staticmethod
    def _controllers(names) -> str:
        text = " ".join(c for c in CONTROLLERS if c in names)
        return text + "\n" if text else ""

    def _available(self, memcg) -> str:
        if memcg.is_root():
            return self._controllers(CONTROLLERS)
        return self._controllers(memcg.parent.subtree_control)

    # ---------------------------------------------------------------- writes
    def _set_min(self, memcg, text: str) -> int:
        memcg.res.set_min(page_counter_memparse(text, "max"))
        return 0

    def _set_low(self, memcg, text: str) -> int:
        memcg.res.set_low(page_counter_memparse(text, "max"))
        return 0

    def _set_high(self, memcg, text: str) -> int:
        return memcontrol.memory_high_write(self.k, memcg, page_counter_memparse(text, "max"))

    def _set_max(self, memcg, text: str) -> int:
        return memcontrol.memory_max_write(self.k, memcg, page_counter_memparse(text, "max"))

    def _set_swap_high(self, memcg, text: str) -> int:
        memcg.swap.set_high(page_counter_memparse(text, "max"))
        return 0

    def _set_swap_max(self, memcg, text: str) -> int:
        memcg.swap.max = page_counter_memparse(text, "max")    # xchg: no usage check
        return 0

    @staticmethod
    def _set_zswap_max(memcg, text: str) -> int:
        memcg.zswap_max = page_counter_memparse(text, "max")
        return 0

    @staticmethod
    def _set_zswap_writeback(memcg, text: str) -> int:
        val = kstrtoint(text)
        if val not in (0, 1):
            return -Errno.EINVAL
        memcg.zswap_writeback = bool(val)
        return 0

    def _set_oom_group(self, memcg, text: str) -> int:
        val = kstrtoint(text)
        if val not in (0, 1):
            return -Errno.EINVAL
        memcg.oom_group = bool(val)
        return 0

    def _reset_peak(self, memcg, text: str) -> int:
        # 6.12: the write restarts the peak seen through the writer's open file only; a write
        # through a file opened just for it (this call) changes what other open files see
        # exactly as PeakFile.write does
        if text:
            f = PeakFile(memcg, "memory.peak")
            f.write(text)
            f.close()
        return 0

    def open(self, path: str, name: str) -> PeakFile:
        """open(2) of memory.peak or memory.swap.peak, for the 6.12 per-file resets."""
        if name not in ("memory.peak", "memory.swap.peak") or name not in self._read:
            raise self._unknown(path, name) if name not in self._read else InvalidRequest(
                f"{path}/{name}: only memory.peak and memory.swap.peak keep per-file state")
        memcg = self._lookup(path, name)
        return PeakFile(memcg, name, writable=self.k.profile.peak_writable)

    def _reclaim(self, memcg, text: str) -> int:
        buf = text.strip()
        swappiness = None
        if self.k.profile.reclaim_syntax == "6.1":
            nr = page_counter_memparse(buf, "")
        else:
            val, rest = memparse(buf)
            if rest == buf:
                raise ParseError(text)          # no size at all
            nr = val // PAGE_SIZE
            for tok in rest.split(" "):
                if not tok:
                    continue
                if not tok.startswith("swappiness="):
                    raise ParseError(text)
                swappiness = kstrtoint(tok[len("swappiness="):])
                if not 0 <= swappiness <= 200:
                    raise ParseError(text)
        return memcontrol.memory_reclaim(self.k, memcg, nr, swappiness)

    def _attach(self, memcg, text: str) -> int:
        try:
            pid = kstrtoint(text)
        except OverflowError:
            raise ParseError(text) from None
        if pid < 0:
            raise ParseError(text)
        task = self._find_pid(str(pid))
        if task is None:
            return -Errno.ESRCH
        if not memcg.is_root() and memcg.subtree_control:
            return -Errno.EBUSY          # no internal processes
        task.memcg = memcg
        return 0

    def _set_subtree_control(self, memcg, text: str) -> int:
        enable, disable = set(), set()
        for tok in text.strip().split(" "):
            if not tok:
                continue
            if tok[:1] not in "+-" or tok[1:] not in CONTROLLERS:
                return -Errno.EINVAL
            # the last occurrence of a controller wins
            (enable if tok[0] == "+" else disable).add(tok[1:])
            (disable if tok[0] == "+" else enable).discard(tok[1:])
        enable -= memcg.subtree_control
        disable &= memcg.subtree_control
        available = set(CONTROLLERS) if memcg.is_root() else memcg.parent.subtree_control
        if not enable <= available:
            return -Errno.ENOENT
        if (enable and not memcg.is_root()
                and any(t.memcg is memcg and t.state == "alive" for t in self.k.tasks.values())):
            return -Errno.EBUSY
        for c in memcg.children:
            if c.online and disable & c.subtree_control:
                return -Errno.EBUSY
        memcg.subtree_control = (memcg.subtree_control | enable) - disable
        return 0


class PeakFile:
    """An open memory.peak (or memory.swap.peak) file of 6.12, struct cgroup_of_peak: a write
    through it ("reset", any text) restarts the peak this file reports from the current usage;
    other open files that were reset keep their own, raised to the current usage; a file never
    written reports the lifetime peak (peak_write / peak_show in 6.12's memcontrol.c)."""

    def __init__(self, memcg, name: str, writable: bool = True):
        swap = name == "memory.swap.peak"
        self.counter = memcg.swap if swap else memcg.res
        #: memcg->swap_peaks / memcg->memory_peaks: the files written so far
        self.peers = memcg.swap_peaks if swap else memcg.memory_peaks
        self.writable = writable
        #: the file's own peak once written (-1: never written)
        self.value = -1

    def read(self) -> str:
        if self.value < 0:
            pages = self.counter.watermark
        else:
            pages = max(self.value, self.counter.local_watermark)
        return f"{pages * PAGE_SIZE}\n"

    def write(self, text: str) -> int:
        if not self.writable:
            return -Errno.EINVAL        # read-only: as _Files.write
        if not text:
            return 0
        usage = self.counter.usage
        self.counter.local_watermark = usage
        for peer in self.peers:
            if peer is not self and usage > peer.value:
                peer.value = usage
        if self not in self.peers:
            self.peers.append(self)
        self.value = usage
        return 0

    def close(self) -> None:
        if self in self.peers:
            self.peers.remove(self)
