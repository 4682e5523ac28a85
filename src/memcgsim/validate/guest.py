"""Translate a parsed scenario into what the guest runs: a command script for the workload
program (workload.c) and the shell lines around it (swap device, directories, clean-up).

Scenario N lives in the top-level cgroup /sN, its ext4 files under /mnt/disk/sN and its tmpfs
files under /mnt/tmp/sN, so that many scenarios share one boot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import MemcgsimError
from ..ops import OPS
from ..scenario import Scenario

#: what a guest boot pins, written before every scenario and read back into the results
SETTINGS = {
    "/proc/sys/vm/swappiness": "60",
    "/proc/sys/vm/dirty_ratio": "20",
    "/proc/sys/vm/dirty_background_ratio": "10",
    "/proc/sys/vm/dirty_expire_centisecs": "3000",
    "/proc/sys/vm/dirty_writeback_centisecs": "500",
    "/sys/kernel/mm/transparent_hugepage/defrag": "madvise",
}
THP = "/sys/kernel/mm/transparent_hugepage/enabled"
#: MGLRU: left as the kernel boots (6.1: off, 6.12: on) and recorded
LRU_GEN = "/sys/kernel/mm/lru_gen/enabled"
RESULT_PORT = "/dev/ttyS1"
#: the smallest -m the guest boots with room for a scenario
MIN_GUEST_MEMORY = 192 << 20
_TOKEN = re.compile(r"^[A-Za-z0-9_.+@%=:,-]+$")
_PATH = re.compile(r"^/[A-Za-z0-9_.+@%=:,/-]*$")


class Unsupported(MemcgsimError):
    """A scenario step the guest cannot perform (the run stops with exit status 2)."""


@dataclass
class GuestPlan:
    index: int
    scenario: Scenario
    lines: list = field(default_factory=list)       # the workload program's script
    dirs: set = field(default_factory=set)          # directories the files need
    paths: dict = field(default_factory=dict)       # scenario file -> guest path

    @property
    def prefix(self) -> str:
        return f"/s{self.index}"

    def cg(self, path: str) -> str:
        return self.prefix if path == "/" else self.prefix + path

    def scenario_cgroup(self, guest_path: str) -> str:
        rest = guest_path[len(self.prefix):]
        return rest or "/"

    def token(self, step, value: str, what: str) -> str:
        """A name as the workload reads it (one word of plain characters)."""
        if not _TOKEN.match(value):
            raise _bad(self.scenario, step.where, f"{what} {value!r}: the guest takes only "
                       "names of letters, digits and _.+@%=:,-")
        return value

    def file_path(self, step, name: str, fs: str | None = None) -> str:
        """Where a scenario's file lives in the guest (its first write says on which fs)."""
        if name in self.paths:
            return self.paths[name]
        if not _PATH.match(name) or "/../" in name + "/":
            raise _bad(self.scenario, step.where, f"file {name!r}: unusual characters")
        root = "/mnt/tmp" if fs == "tmpfs" else "/mnt/disk"
        if fs not in ("ext4", "tmpfs"):
            raise _bad(self.scenario, step.where, f"fs {fs}: the guest has ext4 and tmpfs only")
        guest = f"{root}{self.prefix}{name}"
        self.paths[name] = guest
        self.dirs.add(guest.rsplit("/", 1)[0])
        return guest


def _bad(sc: Scenario, where, message: str) -> Unsupported:
    return Unsupported(f"{sc.file}:{where.line}: {message}")


def plan(sc: Scenario, index: int) -> GuestPlan:
    """The guest commands of one scenario; raises Unsupported for what the guest cannot do."""
    p = GuestPlan(index, sc)
    ms = sc.machine
    if ms.nodes != 1:
        raise _bad(sc, _machine_line(sc), f"machine.nodes {ms.nodes}: the guest has one NUMA "
                                          "node")
    if ms.memory < MIN_GUEST_MEMORY:
        raise _bad(sc, _machine_line(sc),
                   f"machine.memory {ms.memory >> 20}MiB: the guest kernel itself needs about "
                   f"100 MiB (6.1 panics at 128M); give at least {MIN_GUEST_MEMORY >> 20}MiB")
    n = index
    out = p.lines
    out.append(f"begin {n}")
    out.append(f"{n} -1 mkdir {p.prefix}")
    v2 = ms.cgroup == "v2"
    if v2:
        out.append(f"{n} -1 set {p.prefix} cgroup.subtree_control|+memory")
    for path, files, where in sc.cgroups:
        if path == "/":
            raise _bad(sc, where, "the guest runs each scenario in its own cgroup, so the root "
                                  "cgroup's files cannot be written")
        if not _PATH.match(path):
            raise _bad(sc, where, f"cgroup {path!r}: unusual characters")
        out.append(f"{n} -1 mkdir {p.cg(path)}")
        parent = path.rsplit("/", 1)[0] or "/"
        if v2 and parent != "/":
            out.append(f"{n} -1 set {p.cg(parent)} cgroup.subtree_control|+memory")
        for name, text, _w in files:
            out.append(f"{n} -1 set {p.cg(path)} {name}|{text}")

    for i, step in enumerate(sc.steps):
        op = OPS[step.kind]
        if op.guest is None:
            raise _bad(sc, step.where, f"step {step.kind}: {op.unsupported}")
        t = p.token(step, step.args["task"], "task") if "task" in step.args else None
        out += [f"{n} {i} {text}" for text in op.guest(p, step, t)]
    out.append(f"end {n}")
    return p


@dataclass(frozen=True)
class _Line:
    line: int


def _machine_line(sc: Scenario) -> _Line:
    """Where the file's machine: section starts (the parsed spec keeps no position)."""
    try:
        with open(sc.file, encoding="utf-8") as f:
            for n, text in enumerate(f, 1):
                if re.match(r"machine\s*:", text):
                    return _Line(n)
    except OSError:
        pass
    return _Line(1)


def job_script(plans: list, v2: bool) -> str:
    """/job.sh: mount what the scenarios need, pin and record the settings, then run each
    scenario with a fresh swap device and clean up after it."""
    sh = ["B=/bin/busybox", f"O={RESULT_PORT}",
          'say() { echo "$*" > $O; }',
          "i=0; while [ ! -e /dev/vda ] && [ $i -lt 100 ]; do $B sleep 0.05; i=$((i+1)); done",
          "$B mkdir -p /mnt/disk /mnt/tmp /sys/fs/cgroup",
          "$B mount -t ext4 /dev/vda /mnt/disk || say '@@E cannot mount the ext4 disk'",
          "$B mount -t tmpfs tmp /mnt/tmp"]
    if v2:
        sh += ["$B mount -t cgroup2 none /sys/fs/cgroup || say '@@E no cgroup2'",
               "echo +memory > /sys/fs/cgroup/cgroup.subtree_control"]
    else:
        sh += ["$B mount -t cgroup -o memory memory /sys/fs/cgroup || "
               "say '@@E no cgroup v1 memory controller'"]
    for path, value in SETTINGS.items():
        sh.append(f"echo {value} > {path}")
    sh += ['say "@@I uname $($B uname -r)"',
           'say "@@I cpus $($B nproc)"',
           'say "@@I memtotal $($B grep MemTotal /proc/meminfo | $B tr -s \' \' | '
           '$B cut -d\' \' -f2) kB"']
    for path in SETTINGS:
        sh.append(f'say "@@I {path.rsplit("/", 1)[1]} $($B cat {path})"')
    sh.append(f'say "@@I lru_gen $($B cat {LRU_GEN} 2>/dev/null || echo absent)"')
    for p in plans:
        ms = p.scenario.machine
        sh.append(f"# scenario {p.index}: {p.scenario.file}")
        sh.append(f"echo {'always' if ms.thp else 'never'} > {THP}")
        sh.append(f'say "@@I {p.index} thp $($B sed "s/.*\\[\\(.*\\)\\].*/\\1/" {THP})"')
        sh += ["$B swapoff /dev/zram0 2>/dev/null", "echo 1 > /sys/block/zram0/reset"]
        if ms.swap:
            sh += [f"echo {ms.swap} > /sys/block/zram0/disksize",
                   "$B mkswap /dev/zram0 > /dev/null && $B swapon /dev/zram0 || "
                   "say '@@E zram swap'",
                   f'say "@@I {p.index} swap zram $($B cat /sys/block/zram0/disksize) '
                   '$($B cat /sys/block/zram0/comp_algorithm | $B tr -d \'[]\' | '
                   '$B tr \' \' \'\\n\' | $B head -1)"']
        else:
            sh.append(f'say "@@I {p.index} swap none"')
        for d in sorted(p.dirs):
            sh.append(f"$B mkdir -p {d}")
        sh += ["$B sync", "echo 3 > /proc/sys/vm/drop_caches",
               f"/bin/wl /s{p.index}.wl $O",
               f"$B rm -rf /mnt/disk{p.prefix} /mnt/tmp{p.prefix}",
               f"for d in $($B find /sys/fs/cgroup{p.prefix} -depth -type d); do "
               "$B rmdir $d; done"]
    return "\n".join(sh) + "\n"


def job_files(plans: list, v2: bool) -> dict:
    files = {"job.sh": job_script(plans, v2)}
    for p in plans:
        files[f"s{p.index}.wl"] = "\n".join(p.lines) + "\n"
    return files
