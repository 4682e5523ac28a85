"""The kernel's cgroup files as a scenario names them: which a kernel and interface have
(read off the model), what is written to them, and what an expectation reads and compares."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from .marks import SIZE_RE, UNITS, Node, Where, did_you_mean, error_at, parse_size, show

if TYPE_CHECKING:
    from .load import MachineSpec

#: files that hold "key value" lines: expect reads FILE.KEY
KEYED = {"memory.stat", "memory.oom_control", "memory.numa_stat", "memory.events",
         "memory.events.local", "memory.swap.events"}


def keyed_file(key: str) -> str:
    """The file an expectation key reads: FILE of FILE.KEY for a keyed file (the longest
    match: memory.events.local.oom is in memory.events.local), else the key itself."""
    return next((f for f in sorted(KEYED, key=len, reverse=True)
                 if key.startswith(f + ".")), key)


@functools.cache
def interface(kernel: str, cgroup: str, swap_accounting: bool, root: bool = False):
    """(readable files, writable files, {keyed file: its keys}) of a non-root cgroup (or of
    the root) under this kernel and interface, read off a small model (so they always agree
    with it)."""
    from ..machine import Machine

    m = Machine(512, swap_pages=64, profile=kernel, cgroup=cgroup,
                swap_accounting=swap_accounting)
    m.mkdir("/x")
    path = "/" if root else "/x"
    fs = m.fs
    readable = frozenset(fs.readable(path))
    writable = frozenset(n for n in fs.files(path) if n in fs._write)
    keys = {}
    for name in KEYED & readable:
        ks = set()
        for line in fs.read(path, name).splitlines():
            ks.add(line.split()[0].split("=")[0])
        keys[name] = frozenset(ks)
    return readable, writable, keys


def other_interface(cgroup: str):
    other = "v2" if cgroup == "v1" else "v1"
    kernel = "6.12" if other == "v2" else "3.17"
    r, w, _ = interface(kernel, other, True)
    r6, w6, _ = interface("6.1", other, True)
    return r | w | r6 | w6


#: the kernel's own bounds on a machine: NR_CPUS and MAX_NUMNODES of Debian's x86_64 config
NR_CPUS, MAX_NUMNODES = 8192, 1024



def file_ok(node: Node, name: str, machine: MachineSpec, writable: bool,
             path: str | None = None) -> None:
    """Refuse a file that the cgroup at path (any non-root cgroup when None) does not have,
    or cannot write."""
    v1 = machine.cgroup == "v1"
    root = path == "/"
    readable, writable_files, _ = interface(machine.kernel, machine.cgroup,
                                             machine.swap_accounting, root)
    known = writable_files if writable else readable
    if name in known:
        return
    if writable and name in readable:
        raise error_at(node, f"{name} is read-only")
    if root:
        cg, _, _ = interface(machine.kernel, machine.cgroup, machine.swap_accounting)
        if name in cg:
            raise error_at(node, f"the root cgroup has no {name} (only its children have it)")
    if name in other_interface(machine.cgroup) and name not in readable | writable_files:
        raise error_at(node, f"{name} is a cgroup {'v2' if v1 else 'v1'} file; this scenario "
                         f"uses cgroup {machine.cgroup}")
    kind = "writable " if writable else ""
    raise error_at(node, f"unknown {kind}cgroup {machine.cgroup} file {show(name)}"
                     + did_you_mean(name, known))


def value_text(node: Node, name: str) -> str:
    """What to write to a control file: sizes as bytes, other values as they are."""
    v = node.value
    if isinstance(v, (dict, list)) or v is None:
        raise error_at(node, f"{name}: want a value to write, like 30MiB, max or 1")
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str) and (m := SIZE_RE.match(v)) and m.group(2).lower() in UNITS \
            and m.group(2):
        return str(parse_size(node, name, whole_pages=False))
    return str(v)



@dataclass(frozen=True)
class Check:
    """One expected value: exact, value with a tolerance, or a range."""

    key: str
    low: int
    high: int
    text: str
    where: Where
    #: for the files that list names (cgroup.controllers, cgroup.subtree_control): the set of
    #: names expected, in any order
    words: frozenset | None = None

    def holds(self, value) -> bool:
        if self.words is not None:
            return isinstance(value, str) and frozenset(value.split()) == self.words
        return self.low <= value <= self.high



#: files whose expectation is the list of names they hold
WORD_FILES = ("cgroup.controllers", "cgroup.subtree_control")


def read_value(m, path: str, key: str) -> int | str | None:
    """What an expectation compares: a file's number, one key of a keyed file (FILE.KEY; a
    key of v2's memory.numa_stat is its total over the nodes), or the names a WORD_FILES file
    lists; None if the cgroup, key or number is not there."""
    fname = keyed_file(key)
    if path not in m.k.memcg_by_name:
        return None
    if fname == key:
        text = m.read_file(path, fname).strip()
        if key in WORD_FILES:
            return text
        return int(text) if text.lstrip("-").isdigit() else None
    sub = key[len(fname) + 1:]
    for line in m.read_file(path, fname).splitlines():
        first, *rest = line.split() or [""]
        name, eq, value = first.partition("=")
        if name != sub:
            continue
        if eq:                                  # v1 numa_stat: total=N N0=N ...
            return int(value)
        if len(rest) == 1 and "=" not in rest[0]:
            return int(rest[0])                 # KEY VALUE
        # v2 numa_stat: KEY N0=V N1=V ..., compared as the total over the nodes
        return sum(int(r.partition("=")[2]) for r in rest)
    return None


def expected_value(key: str, node: Node) -> Check:
    v = node.value
    if key in WORD_FILES:
        if isinstance(v, (dict, list, bool)) or (v is not None and not isinstance(v, str)):
            raise error_at(node, f"{key}: want the controller names, like memory, or \"\"")
        words = frozenset((v or "").split())
        return Check(key, 0, 0, " ".join(sorted(words)) or '""', node.where, words)
    if isinstance(v, dict):
        unknown = set(v) - {"min", "max"}
        if unknown or not v:
            raise error_at(node, f"{key}: a range is {{min: V, max: V}}")
        low = parse_size(v["min"][1], f"{key}.min", False) if "min" in v else 0
        high = parse_size(v["max"][1], f"{key}.max", False) if "max" in v else 1 << 64
        if low > high:
            raise error_at(node, f"{key}: min is above max")
        text = (f"{low}..{high}" if "min" in v and "max" in v
                else f">= {low}" if "min" in v else f"<= {high}")
        return Check(key, low, high, text, node.where)
    if isinstance(v, str) and ("±" in v or "+-" in v):
        base, tol = re.split(r"±|\+-", v, maxsplit=1)
        center = parse_size(Node(base.strip(), node.where), key, False)
        tol = tol.strip()
        if tol.endswith("%"):
            number = tol[:-1].strip()
            if not re.fullmatch(r"-?\d{1,3}(\.\d{1,6})?", number):
                raise error_at(node, f"{key}: {show(tol)} is not a percentage")
            pct = Fraction(number)
            if not 0 <= pct <= 100:
                raise error_at(node, f"{key}: the tolerance {show(tol)} must be a percent from 0 "
                           "to 100" + (" (not negative)" if pct < 0 else ""))
            delta = int(center * pct / 100)     # exact: a Fraction, rounded down
        else:
            delta = parse_size(Node(tol, node.where), f"{key} tolerance", False)
        return Check(key, center - delta, center + delta, v, node.where)
    val = parse_size(node, key, False)
    return Check(key, val, val, str(v), node.where)



@dataclass
class CheckResult:
    step: int
    where: Where
    cgroup: str | None
    key: str
    expected: str
    actual: Any
    ok: bool
