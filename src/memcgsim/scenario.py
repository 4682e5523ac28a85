"""Scenario files (format 1, ../shared/scenario-format.md): load, validate, run.

`load_scenario(path)` reads the YAML (safe loading) and checks everything before a step runs:
a mistake raises ScenarioError with file:line:column and what is wrong. `run_scenario` runs the
steps on a Machine and returns a `RunResult` with the reports, the expectations and the exit
status. Nothing here prints.

Every kernel profile runs: "3.17" (cgroup v1), "6.1" (v1 or v2) and "6.12" (v2). Which files
a scenario may write and expect is read off the model of the same kernel and interface, so the
validator and the run always agree.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .errors import Errno, InvalidRequest, MemcgsimError, ModelBug
from .profile import PROFILES
from .status import Exit

PAGE = 4096
UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "ki": 1 << 10, "m": 1 << 20,
         "mib": 1 << 20, "mi": 1 << 20, "g": 1 << 30, "gib": 1 << 30, "gi": 1 << 30,
         "t": 1 << 40, "tib": 1 << 40, "ti": 1 << 40}
SIZE_RE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")
#: sizes are u64 in the kernel
MAX_SIZE = (1 << 64) - 1
#: the longest name (task, region, fd, label) and path (file, cgroup) a scenario may use:
#: NAME_MAX and PATH_MAX - 1
MAX_NAME, MAX_PATH = 255, 4095

#: files that hold "key value" lines: expect reads FILE.KEY
KEYED = {"memory.stat", "memory.oom_control", "memory.numa_stat", "memory.events",
         "memory.events.local", "memory.swap.events"}


def keyed_file(key: str) -> str:
    """The file an expectation key reads: FILE of FILE.KEY for a keyed file (the longest
    match: memory.events.local.oom is in memory.events.local), else the key itself."""
    return next((f for f in sorted(KEYED, key=len, reverse=True)
                 if key.startswith(f + ".")), key)


@functools.cache
def _interface(kernel: str, cgroup: str, swap_accounting: bool, root: bool = False):
    """(readable files, writable files, {keyed file: its keys}) of a non-root cgroup (or of
    the root) under this kernel and interface, read off a small model (so they always agree
    with it)."""
    from .machine import Machine

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


def _other_interface(cgroup: str):
    other = "v2" if cgroup == "v1" else "v1"
    kernel = "6.12" if other == "v2" else "3.17"
    r, w, _ = _interface(kernel, other, True)
    r6, w6, _ = _interface("6.1", other, True)
    return r | w | r6 | w6


#: the kernel's own bounds on a machine: NR_CPUS and MAX_NUMNODES of Debian's x86_64 config
NR_CPUS, MAX_NUMNODES = 8192, 1024


@dataclass(frozen=True)
class Limits:
    """What a scenario may ask of the model, checked before it runs (docs/limits.md). Each
    bounds the model's memory or its run time; `memcgsim run --limit NAME=N` raises one."""

    #: RAM + swap in 4 KiB pages: 256 GiB, about 2 GiB of model state at 31 bytes a page
    pages: int = 1 << 26
    #: per-CPU charge stocks, drained one by one whenever a charge hits a limit
    cpus: int = 1024
    #: cgroups in the cgroups section, a few KiB each
    cgroups: int = 10_000
    #: tasks spawned and forked, each with its mm, page tables and kernel stack
    tasks: int = 10_000
    #: pages the steps name (faulted, written, read, mapped, unmapped, moved, truncated): a
    #: measure of run time; 16 GiB of page traffic, minutes on the per-page paths
    page_events: int = 1 << 22

    @staticmethod
    def names() -> tuple[str, ...]:
        return tuple(f.replace("_", "-") for f in Limits.__dataclass_fields__)

    def raised(self, name: str, value: int) -> Limits:
        """These limits with one of them (by its command-line name) set to value."""
        import dataclasses

        field_name = name.replace("-", "_")
        if field_name not in Limits.__dataclass_fields__:
            raise ValueError(f"unknown limit {name!r}: want one of {', '.join(self.names())}")
        return dataclasses.replace(self, **{field_name: value})


class ScenarioError(MemcgsimError):
    """An invalid scenario file: where and what (exit status 2)."""

    def __init__(self, file: str, line: int, col: int, message: str):
        self.file, self.line, self.col, self.message = file, line, col, message
        super().__init__(f"{file}:{line}:{col}: {message}")


@dataclass(frozen=True)
class Where:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


# ---------------------------------------------------------------------------- YAML with marks


class Node:
    """A YAML value with where it stands in the file."""

    __slots__ = ("value", "where")

    def __init__(self, value, where: Where):
        self.value = value
        self.where = where


#: how many values a file may expand to once its aliases are followed: far above any real
#: scenario (a few hundred values), far below what an alias bomb ("billion laughs") makes
MAX_YAML_VALUES = 100_000
#: how many characters of a value an error message quotes
SHOW_CHARS = 60


def _show(value) -> str:
    """A value as an error message quotes it: plain data (never an internal object), cut to
    SHOW_CHARS characters."""
    def plain(v):
        if isinstance(v, Node):
            return plain(v.value)
        if isinstance(v, dict):
            return {k: plain(x[1]) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    text = repr(plain(value)) if not isinstance(value, int) or value.bit_length() < 200 \
        else f"a {len(str(value))}-digit number"
    return text if len(text) <= SHOW_CHARS else text[:SHOW_CHARS - 3] + "..."


def _expanded_size(root, file: str) -> None:
    """Refuse a document whose aliases expand to more than MAX_YAML_VALUES values, or refer
    to themselves, before anything is expanded (sizes are counted once per distinct node)."""
    import yaml

    size: dict[int, int] = {}
    on_path: set[int] = set()

    def count(node) -> int:
        key = id(node)
        if key in size:
            return size[key]
        if key in on_path:
            raise ScenarioError(file, node.start_mark.line + 1, node.start_mark.column + 1,
                                "not valid YAML here: an alias that refers to itself")
        if isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            kids = node.value
        else:
            size[key] = 1
            return 1
        on_path.add(key)
        total = 1
        for kid in kids:
            total += count(kid)
            if total > MAX_YAML_VALUES:
                raise ScenarioError(
                    file, node.start_mark.line + 1, node.start_mark.column + 1,
                    f"this value expands to more than {MAX_YAML_VALUES:,} values once its "
                    "aliases are followed (an alias bomb?)")
        on_path.discard(key)
        size[key] = total
        return total

    count(root)


def _to_nodes(node, file: str):
    import yaml

    where = Where(file, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, tuple[Node, Node]] = {}
        for knode, vnode in node.value:
            key = _to_nodes(knode, file)
            if not isinstance(key.value, str):
                raise ScenarioError(file, key.where.line, key.where.col,
                                    f"a key must be a name, not {_show(key.value)}")
            if key.value in out:
                raise ScenarioError(file, key.where.line, key.where.col,
                                    f"duplicate key {_show(key.value)}")
            out[key.value] = (key, _to_nodes(vnode, file))
        return Node(out, where)
    if isinstance(node, yaml.SequenceNode):
        return Node([_to_nodes(n, file) for n in node.value], where)
    if not isinstance(node, yaml.ScalarNode):
        raise ScenarioError(file, where.line, where.col, "not valid YAML: unexpected node")
    try:
        value = yaml.constructor.SafeConstructor().construct_object(node)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e)
        raise ScenarioError(file, where.line, where.col,
                            f"not valid YAML: {_cut(problem)}") from None
    except Exception:
        # PyYAML's own constructors fail on some malformed tagged values (a bad !!timestamp
        # is an AttributeError, a number past Python's digit limit a ValueError)
        kind = node.tag.rsplit(":", 1)[-1]
        raise ScenarioError(file, where.line, where.col, f"not valid YAML: {_show(node.value)} "
                            + ("is too large a number" if kind == "int" and re.fullmatch(
                                r"[-+]?[0-9_]+", str(node.value)) else
                               f"is not a valid {kind} value")) from None
    if isinstance(value, str) and len(value) > MAX_PATH:
        raise ScenarioError(file, where.line, where.col,
                            f"a text of {len(value):,} characters: at most {MAX_PATH} here")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        raise ScenarioError(file, where.line, where.col,
                            f"{_show(value)} is too large: numbers here are at most 2**64")
    return Node(value, where)


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _parse_yaml(text: str, file: str) -> Node:
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(e, "problem", None) or str(e)
        raise ScenarioError(file, line, col, f"not valid YAML: {problem}") from None
    except RecursionError:
        raise ScenarioError(file, _too_deep_line(text), 1,
                            "not valid YAML: nested too deeply") from None
    if root is None:
        raise ScenarioError(file, 1, 1, "the file is empty: a scenario needs format: 1 and steps")
    try:
        _expanded_size(root, file)
        return _to_nodes(root, file)
    except RecursionError:
        raise ScenarioError(file, _deepest_line(root), 1,
                            "not valid YAML here: an alias that refers to itself, or "
                            "nesting too deep") from None


def _too_deep_line(text: str, limit: int = 100) -> int:
    """The line where brackets first nest deeper than limit."""
    depth = 0
    for n, line in enumerate(text.splitlines(), 1):
        for ch in line:
            depth += ch in "[{"
            depth -= ch in "]}"
            if depth > limit:
                return n
    return 1


def _deepest_line(root) -> int:
    """The line where a self-referencing or too deep structure starts (for its error)."""
    import yaml

    node, seen = root, set()
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and id(node) not in seen:
        seen.add(id(node))
        kids = [v for _, v in node.value] if isinstance(node, yaml.MappingNode) else node.value
        nested = [k for k in kids if isinstance(k, (yaml.MappingNode, yaml.SequenceNode))]
        if not nested:
            break
        node = nested[-1]
    return node.start_mark.line + 1


def _err(node_or_where, message: str):
    w = node_or_where.where if isinstance(node_or_where, Node) else node_or_where
    return ScenarioError(w.file, w.line, w.col, message)


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {_show(close[0])}?)" if close else ""


# ---------------------------------------------------------------------------- values


def parse_size(node: Node, what: str, whole_pages: bool) -> int:
    """A size: integer bytes, or a number with B, K/KiB/Ki, M/MiB/Mi, G/GiB/Gi, T/TiB/Ti."""
    v = node.value
    if isinstance(v, bool):
        raise _err(node, f"{what}: want a size like 50MiB, not {_show(v)}")
    if isinstance(v, int):
        size = v
    elif isinstance(v, str) and (m := SIZE_RE.match(v)) and m.group(2).lower() in UNITS:
        if len(m.group(1).lstrip("0")) > 20:
            raise _err(node, f"{what}: {_show(v)} is larger than a 64-bit size")
        size = int(m.group(1)) * UNITS[m.group(2).lower()]
    else:
        raise _err(node, f"{what}: {_show(v)} is not a size (use bytes or a unit: B, K, KiB, M, "
                         "MiB, G, GiB, T, TiB)")
    if size < 0:
        raise _err(node, f"{what}: a size cannot be negative")
    if size > MAX_SIZE:
        raise _err(node, f"{what}: {_show(v)} is larger than a 64-bit size")
    if whole_pages and size % PAGE:
        raise _err(node, f"{what}: {_show(v)} is not a whole number of 4 KiB pages")
    return size


def _name(node: Node, what: str, limit: int = MAX_NAME) -> str:
    if not isinstance(node.value, str) or not node.value:
        raise _err(node, f"{what}: want a name, not {_show(node.value)}")
    if len(node.value) > limit or "\0" in node.value:
        raise _err(node, f"{what}: {_show(node.value)} is not a name: at most {limit} "
                         "characters, no NUL")
    return node.value


def _scalar_text(node: Node, what: str) -> str:
    """A label or a text to write: one plain value (a string, a number or a boolean)."""
    v = node.value
    if v is None or isinstance(v, (dict, list, bytes, set)):
        raise _err(node, f"{what}: want a text, not {_show(v)}")
    return str(v)


def _file_name(node: Node, what: str = "file") -> str:
    return _name(node, what, MAX_PATH)


def _cgroup_path(node: Node, what: str = "cgroup") -> str:
    p = node.value
    if not isinstance(p, str) or not p.startswith("/") or (p != "/" and p.endswith("/")) \
            or "//" in p or "\0" in p or len(p) > MAX_PATH:
        raise _err(node, f"{what}: want a cgroup path like /web/worker, not {_show(p)}")
    return p


def _int(node: Node, what: str, lo: int = 0, hi: int | None = None) -> int:
    v = node.value
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
        want = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
        raise _err(node, f"{what}: want a whole number {want}, not {_show(v)}")
    return v


# ---------------------------------------------------------------------------- the model of a file


@dataclass(frozen=True)
class MachineSpec:
    kernel: str = "6.12"
    cgroup: str = "v2"
    memory: int = 256 << 20
    swap: int = 0
    cpus: int = 1
    nodes: int = 1
    thp: bool = False
    swap_accounting: bool = True


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


@dataclass(frozen=True)
class Step:
    kind: str
    args: dict
    may_fail: bool
    where: Where
    checks: tuple = ()


@dataclass(frozen=True)
class Scenario:
    file: str
    machine: MachineSpec
    cgroups: tuple          # ((path, ((file, text, where), ...), where), ...)
    steps: tuple


STEP_ARGS: dict[str, tuple[set, set]] = {
    # kind: (required, optional)
    "spawn": ({"task", "cgroup"}, {"cpu", "node", "oom_score_adj"}),
    "anon": ({"task", "size", "as"}, {"shared", "locked", "touch"}),
    "shm": ({"task", "size", "as"}, set()),
    "touch": ({"task", "region"}, set()),
    "unmap": ({"task", "region"}, set()),
    "write": ({"task", "file", "size"}, {"fs"}),
    "read": ({"task", "file"}, set()),
    "mmap": ({"task", "file", "as"}, set()),
    "truncate": ({"file", "size"}, set()),
    "unlink": ({"file"}, set()),
    "sync": (set(), set()),
    "fork": ({"task", "child"}, set()),
    "mlock": ({"task", "region"}, set()),
    "move": ({"task", "cgroup"}, set()),
    "set": ({"cgroup"}, set()),
    "migrate": ({"task", "node"}, set()),
    "splice": ({"task", "file"}, set()),
    "drop_caches": (set(), set()),
    "exit": ({"task"}, set()),
    "rmdir": ({"cgroup"}, set()),
    "report": ({"label"}, {"cgroups"}),
    "expect": (set(), {"cgroup", "task", "state", "step_error", "fd", "value"}),
    "open": ({"cgroup", "file", "as"}, set()),
    "fd_write": ({"fd", "text"}, set()),
    "close": ({"fd"}, set()),
}


def text_line_of(file: str, offset: int) -> int:
    with open(file, "rb") as f:
        return f.read(offset).count(b"\n") + 1


def read_source(file: str) -> str:
    """A YAML file's text; ScenarioError if it cannot be read or is not UTF-8."""
    try:
        with open(file, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ScenarioError(file, 1, 1, f"cannot read the file: {e.strerror}") from None
    except UnicodeDecodeError as e:
        line = text_line_of(file, e.start)
        raise ScenarioError(file, line, 1, "the file is not UTF-8 text") from None


def load_scenario(file: str, text: str | None = None, limits: Limits | None = None
                  ) -> Scenario:
    """Read and validate a scenario file, and check what it asks of the model against
    limits; ScenarioError names the first mistake."""
    root = _parse_yaml(read_source(file) if text is None else text, file)
    if not isinstance(root.value, dict):
        raise _err(root, "a scenario is a mapping with format, machine, cgroups and steps")
    top = root.value
    for key, (knode, _) in top.items():
        if key not in ("format", "machine", "cgroups", "steps"):
            raise _err(knode, f"unknown top-level key {_show(key)}"
                       + _did_you_mean(key, ("format", "machine", "cgroups", "steps")))
    if "format" not in top:
        raise _err(root, "missing 'format: 1'")
    fmt = top["format"][1]
    if fmt.value != 1 or not isinstance(fmt.value, int) or isinstance(fmt.value, bool):
        raise _err(fmt, f"format {_show(fmt.value)} is not known: this version reads format 1")
    machine = _machine(top["machine"][1] if "machine" in top else Node({}, root.where))
    cgroups = _cgroups(top["cgroups"][1] if "cgroups" in top else Node({}, root.where), machine)
    if "steps" not in top:
        raise _err(root, "missing 'steps': a scenario needs at least one step")
    steps = _steps(top["steps"][1], machine, {c[0] for c in cgroups} | {"/"})
    sc = Scenario(file, machine, tuple(cgroups), tuple(steps))
    _check_limits(sc, top.get("machine", (None, root))[1], limits or Limits())
    return sc


def _check_limits(sc: Scenario, machine_node: Node, limits: Limits) -> None:
    """Refuse, at the line that crosses it, a scenario that asks for more than limits."""
    def over(node_or_where, what: str, value: int, name: str):
        return _err(node_or_where, f"{what}: over the limit of {getattr(limits, name):,} "
                    f"{name.replace('_', ' ')} (docs/limits.md; raise it with "
                    f"--limit {name.replace('_', '-')}=N)")

    ms = sc.machine
    mkeys = machine_node.value if isinstance(machine_node.value, dict) else {}
    pages = (ms.memory + ms.swap) // PAGE
    if pages > limits.pages:
        where = mkeys.get("memory", mkeys.get("swap", (None, machine_node)))[1]
        raise over(where, f"memory and swap make {pages:,} pages", pages, "pages")
    if ms.cpus > limits.cpus:
        raise over(mkeys["cpus"][1], f"{ms.cpus:,} cpus", ms.cpus, "cpus")
    if len(sc.cgroups) > limits.cgroups:
        raise over(sc.cgroups[limits.cgroups][2], f"{len(sc.cgroups):,} cgroups",
                   len(sc.cgroups), "cgroups")
    tasks = events = 0
    for step, cost in zip(sc.steps, page_events(sc), strict=True):
        tasks += step.kind in ("spawn", "fork")
        if tasks > limits.tasks:
            raise over(step.where, f"this {step.kind} makes {tasks:,} tasks", tasks, "tasks")
        events += cost
        if events > limits.page_events:
            raise over(step.where, f"the steps up to this {step.kind} name about {events:,} "
                       "page events", events, "page_events")


def page_events(sc: Scenario) -> list[int]:
    """For each step, about how many pages it names: what it faults, writes, reads, maps,
    unmaps, truncates, or walks (fork, exit, migrate and move walk the task's regions; sync
    and drop_caches every cached page). Reclaim inside a charge is bounded by the faults that
    charge, so it is not counted again."""
    files: dict[str, int] = {}
    regions: dict[str, dict[str, int]] = {}
    out = []
    for step in sc.steps:
        a, kind = step.args, step.kind
        mine = regions.setdefault(a.get("task"), {}) if "task" in a else {}
        cost = 0
        if kind in ("anon", "shm"):
            cost = mine[a["as"]] = a["size"] // PAGE
        elif kind == "mmap":
            cost = mine[a["as"]] = files.get(a["file"], 0)
        elif kind in ("touch", "mlock"):
            cost = mine.get(a["region"], 0)
        elif kind == "unmap":
            cost = mine.pop(a["region"], 0)
        elif kind == "write":
            cost = a["size"] // PAGE
            files[a["file"]] = files.get(a["file"], 0) + cost
        elif kind in ("read", "splice"):
            cost = files.get(a["file"], 0)
        elif kind == "truncate":
            old = files.get(a["file"], 0)
            files[a["file"]] = -(-a["size"] // PAGE)
            cost = max(old, files[a["file"]])
        elif kind == "unlink":
            cost = files.pop(a["file"], 0)
        elif kind in ("sync", "drop_caches"):
            cost = sum(files.values())
        elif kind == "fork":
            regions[a["child"]] = dict(mine)
            cost = sum(mine.values())
        elif kind in ("exit", "migrate", "move"):
            cost = sum(mine.values())
        out.append(cost)
    return out


def _machine(node: Node) -> MachineSpec:
    if not isinstance(node.value, dict):
        raise _err(node, "machine: want a mapping of kernel, cgroup, memory, swap, cpus, ...")
    known = ("kernel", "cgroup", "memory", "swap", "cpus", "nodes", "thp", "swap_accounting")
    kw: dict[str, Any] = {}
    for key, (knode, v) in node.value.items():
        if key not in known:
            raise _err(knode, f"unknown machine key {_show(key)}" + _did_you_mean(key, known))
        if key == "kernel":
            if isinstance(v.value, float):
                raise _err(v, f"kernel: quote the version, as kernel: \"6.12\" (unquoted, YAML "
                              f"reads it as the number {_show(v.value)})")
            kernel = v.value
            if kernel not in ("3.17", "6.1", "6.12"):
                raise _err(v, f"kernel {_show(v.value)}: want \"3.17\", \"6.1\" or \"6.12\"")
            kw["kernel"] = kernel
        elif key == "cgroup":
            if v.value not in ("v1", "v2"):
                raise _err(v, f"cgroup: want v1 or v2, not {_show(v.value)}")
            kw["cgroup"] = v.value
        elif key in ("memory", "swap"):
            kw[key] = parse_size(v, f"machine.{key}", whole_pages=True)
        elif key in ("cpus", "nodes"):
            kw[key] = _int(v, f"machine.{key}", lo=1,
                           hi=NR_CPUS if key == "cpus" else MAX_NUMNODES)
        elif key == "thp":
            if v.value not in ("never", "always"):
                raise _err(v, f"thp: want never or always, not {_show(v.value)}")
            kw["thp"] = v.value == "always"
        else:
            if not isinstance(v.value, bool):
                raise _err(v, f"swap_accounting: want true or false, not {_show(v.value)}")
            kw["swap_accounting"] = v.value
    spec = MachineSpec(**kw)
    if "swap_accounting" in kw and spec.cgroup == "v2":
        raise _err(node.value["swap_accounting"][1], "swap_accounting is a cgroup v1 setting "
                   "(v2 always accounts swap in memory.swap.current)")
    allowed = PROFILES[spec.kernel].cgroup_versions
    if spec.cgroup not in allowed:
        where = node.value["cgroup"][1] if "cgroup" in node.value else node
        raise _err(where, f"kernel {spec.kernel} offers cgroup {' and '.join(allowed)}, "
                          f"not {spec.cgroup}")
    if spec.memory % ((2 << 20) * spec.nodes) or not spec.memory:
        where = node.value["memory"][1] if "memory" in node.value else node
        raise _err(where, "machine.memory must be a whole number of 2 MiB per node")
    return spec


def _file_ok(node: Node, name: str, machine: MachineSpec, writable: bool,
             path: str | None = None) -> None:
    """Refuse a file that the cgroup at path (any non-root cgroup when None) does not have,
    or cannot write."""
    v1 = machine.cgroup == "v1"
    root = path == "/"
    readable, writable_files, _ = _interface(machine.kernel, machine.cgroup,
                                             machine.swap_accounting, root)
    known = writable_files if writable else readable
    if name in known:
        return
    if writable and name in readable:
        raise _err(node, f"{name} is read-only")
    if root:
        cg, _, _ = _interface(machine.kernel, machine.cgroup, machine.swap_accounting)
        if name in cg:
            raise _err(node, f"the root cgroup has no {name} (only its children have it)")
    if name in _other_interface(machine.cgroup) and name not in readable | writable_files:
        raise _err(node, f"{name} is a cgroup {'v2' if v1 else 'v1'} file; this scenario "
                         f"uses cgroup {machine.cgroup}")
    kind = "writable " if writable else ""
    raise _err(node, f"unknown {kind}cgroup {machine.cgroup} file {_show(name)}"
                     + _did_you_mean(name, known))


def _value_text(node: Node, name: str) -> str:
    """What to write to a control file: sizes as bytes, other values as they are."""
    v = node.value
    if isinstance(v, (dict, list)) or v is None:
        raise _err(node, f"{name}: want a value to write, like 30MiB, max or 1")
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str) and (m := SIZE_RE.match(v)) and m.group(2).lower() in UNITS \
            and m.group(2):
        return str(parse_size(node, name, whole_pages=False))
    return str(v)


def _cgroups(node: Node, machine: MachineSpec) -> list:
    if not isinstance(node.value, dict):
        raise _err(node, "cgroups: want a mapping of cgroup paths to their files")
    out = []
    seen = {"/"}
    for path, (knode, v) in node.value.items():
        _cgroup_path(knode, "cgroup")
        if path == "/":
            raise _err(knode, "the root cgroup exists already and cannot be configured here")
        parent = path.rsplit("/", 1)[0] or "/"
        if parent not in seen:
            raise _err(knode, f"{path}: its parent {parent} must be listed before it")
        seen.add(path)
        if v.value is None:
            v = Node({}, v.where)
        if not isinstance(v.value, dict):
            raise _err(v, f"{path}: want a mapping of control files to values, or {{}}")
        files = []
        for name, (fk, fv) in v.value.items():
            _file_ok(fk, name, machine, writable=True)
            files.append((name, _value_text(fv, name), fk.where))
        out.append((path, tuple(files), knode.where))
    return out


def _steps(node: Node, machine: MachineSpec, cgroups: set) -> list:
    if not isinstance(node.value, list) or not node.value:
        raise _err(node, "steps: want a list of steps")
    tasks: set[str] = set()
    regions: dict[str, set] = {}
    files: set[str] = set()
    fds: set[str] = set()
    out = []
    for item in node.value:
        if not isinstance(item.value, dict) or not item.value:
            raise _err(item, "a step is a mapping like '- spawn: {task: A, cgroup: /a}'")
        entries = dict(item.value)
        may_fail = False
        if "may_fail" in entries:
            mk, mv = entries.pop("may_fail")
            if not isinstance(mv.value, bool):
                raise _err(mv, "may_fail: want true or false")
            may_fail = mv.value
        if not entries:
            raise _err(item, "this list item has may_fail but no step")
        if len(entries) != 1:
            names = [k for k in entries]
            raise _err(item.value[names[1]][0],
                       f"one step per list item, found {', '.join(names)}")
        ((kind, (knode, args)),) = entries.items()
        if kind not in STEP_ARGS:
            raise _err(knode, f"unknown step {_show(kind)}" + _did_you_mean(kind, STEP_ARGS))
        if args.value is None:
            args = Node({}, args.where)
        if not isinstance(args.value, dict):
            raise _err(args, f"{kind}: want a mapping of arguments, like {{task: A}}")
        a = dict(args.value)
        if "may_fail" in a:
            mk, mv = a.pop("may_fail")
            if not isinstance(mv.value, bool):
                raise _err(mv, "may_fail: want true or false")
            may_fail = may_fail or mv.value
        required, optional = STEP_ARGS[kind]
        if kind == "set" and "cgroup" not in a:
            raise _err(args, "set: missing 'cgroup'")
        if kind not in ("set", "expect"):
            for key, (ak, _) in a.items():
                if key not in required | optional:
                    raise _err(ak, f"{kind}: unknown key {_show(key)}"
                               + _did_you_mean(key, required | optional))
            for key in sorted(required - set(a)):
                raise _err(args, f"{kind}: missing {_show(key)}")
        step = _step(kind, a, args, knode, machine, cgroups, tasks, regions, files, may_fail,
                     fds)
        out.append(step)
    return out


def _step(kind, a, args, knode, machine, cgroups, tasks, regions, files, may_fail,
          fds=None) -> Step:
    vals: dict[str, Any] = {}

    def task(key="task"):
        name = _name(a[key][1], key)
        if name not in tasks:
            raise _err(a[key][1], f"task {_show(name)} is used before it was spawned")
        return name

    def region():
        t = vals["task"]
        name = _name(a["region"][1], "region")
        if name not in regions.get(t, set()):
            raise _err(a["region"][1], f"task {t} has no region {_show(name)} (define it with "
                                       "anon or mmap ... as:)")
        return name

    def file_known():
        name = _file_name(a["file"][1])
        if name not in files:
            raise _err(a["file"][1],
                       f"file {_show(name)} does not exist yet (create it with write)")
        return name

    def cgroup():
        path = _cgroup_path(a["cgroup"][1])
        if path not in cgroups:
            raise _err(a["cgroup"][1], f"cgroup {path} is not defined in cgroups:")
        return path

    checks: list[Check] = []
    if kind == "spawn":
        name = _name(a["task"][1], "task")
        if name in tasks:
            raise _err(a["task"][1], f"task {_show(name)} exists already")
        vals["task"] = name
        vals["cgroup"] = cgroup()
        for key, lo, hi in (("cpu", 0, machine.cpus - 1), ("node", 0, machine.nodes - 1),
                            ("oom_score_adj", -1000, 1000)):
            if key in a:
                v = a[key][1]
                if not isinstance(v.value, int) or isinstance(v.value, bool) or not (
                        lo <= v.value <= hi):
                    raise _err(v, f"{key}: want a whole number from {lo} to {hi}")
                vals[key] = v.value
        tasks.add(name)
    elif kind in ("anon", "mmap", "shm"):
        vals["task"] = task()
        if kind in ("anon", "shm"):
            vals["size"] = parse_size(a["size"][1], "size", whole_pages=True)
            if not vals["size"]:
                what = "an anonymous mapping" if kind == "anon" else "a shm segment"
                raise _err(a["size"][1], f"size: {what} needs at least one page")
            for key, default in (("shared", False), ("locked", False), ("touch", True)):
                if key in a:
                    if not isinstance(a[key][1].value, bool):
                        raise _err(a[key][1], f"{key}: want true or false")
                    vals[key] = a[key][1].value
                else:
                    vals[key] = default
        else:
            vals["file"] = file_known()
        vals["as"] = _name(a["as"][1], "as")
        regions.setdefault(vals["task"], set()).add(vals["as"])
    elif kind in ("touch", "unmap", "mlock"):
        vals["task"] = task()
        vals["region"] = region()
        if kind == "unmap":
            regions[vals["task"]].discard(vals["region"])
    elif kind == "write":
        vals["task"] = task()
        vals["file"] = _file_name(a["file"][1])
        vals["size"] = parse_size(a["size"][1], "size", whole_pages=True)
        fs = a.get("fs")
        if fs is not None and fs[1].value not in ("ext4", "tmpfs", "xfs", "btrfs"):
            raise _err(fs[1], f"fs: want ext4, xfs, btrfs or tmpfs, not {_show(fs[1].value)}")
        vals["fs"] = fs[1].value if fs else ("tmpfs" if vals["file"].startswith(
            ("/dev/shm/", "/tmp/")) else "ext4")
        files.add(vals["file"])
    elif kind in ("read", "splice"):
        vals["task"] = task()
        vals["file"] = file_known()
    elif kind == "truncate":
        vals["file"] = file_known()
        vals["size"] = parse_size(a["size"][1], "size", whole_pages=False)
    elif kind == "unlink":
        vals["file"] = file_known()
        files.discard(vals["file"])
    elif kind == "fork":
        vals["task"] = task()
        child = _name(a["child"][1], "child")
        if child in tasks:
            raise _err(a["child"][1], f"task {_show(child)} exists already")
        vals["child"] = child
        tasks.add(child)
        regions[child] = set(regions.get(vals["task"], set()))
    elif kind == "move":
        vals["task"] = task()
        vals["cgroup"] = cgroup()
    elif kind == "migrate":
        vals["task"] = task()
        vals["node"] = _int(a["node"][1], "node")
        if vals["node"] >= machine.nodes:
            raise _err(a["node"][1], f"node {vals['node']} does not exist: the machine has "
                                     f"{machine.nodes} node(s)")
    elif kind == "exit":
        vals["task"] = task()
    elif kind == "rmdir":
        vals["cgroup"] = cgroup()
        if vals["cgroup"] == "/":
            raise _err(a["cgroup"][1], "the root cgroup cannot be removed")
        cgroups.discard(vals["cgroup"])
    elif kind == "set":
        vals["cgroup"] = cgroup()
        writes = []
        for name, (fk, fv) in a.items():
            if name == "cgroup":
                continue
            _file_ok(fk, name, machine, writable=True, path=vals["cgroup"])
            writes.append((name, _value_text(fv, name)))
        if not writes:
            raise _err(args, "set: name at least one control file to write")
        vals["writes"] = tuple(writes)
    elif kind == "report":
        vals["label"] = _scalar_text(a["label"][1], "report.label")
        paths = []
        if "cgroups" in a:
            lst = a["cgroups"][1]
            if not isinstance(lst.value, list):
                raise _err(lst, "report.cgroups: want a list of cgroup paths")
            for p in lst.value:
                path = _cgroup_path(p)
                if path not in cgroups:
                    raise _err(p, f"cgroup {path} is not defined in cgroups:")
                paths.append(path)
        vals["cgroups"] = tuple(paths) or tuple(sorted(cgroups - {"/"})) or ("/",)
    elif kind == "open":
        vals["cgroup"] = cgroup()
        name = _file_name(a["file"][1])
        if name not in ("memory.peak", "memory.swap.peak"):
            raise _err(a["file"][1], f"open: only memory.peak and memory.swap.peak keep "
                                     f"per-file state, not {_show(name)}")
        _file_ok(a["file"][1], name, machine, writable=False, path=vals["cgroup"])
        vals["file"] = name
        vals["as"] = _name(a["as"][1], "as")
        if vals["as"] in fds:
            raise _err(a["as"][1], f"file {_show(vals['as'])} is open already")
        fds.add(vals["as"])
    elif kind in ("fd_write", "close"):
        vals["fd"] = _name(a["fd"][1], "fd")
        if vals["fd"] not in fds:
            raise _err(a["fd"][1],
                       f"fd {_show(vals['fd'])} is not open (open it with open ... as:)")
        if kind == "fd_write":
            vals["text"] = _scalar_text(a["text"][1], "fd_write.text")
        else:
            fds.discard(vals["fd"])
    elif kind == "expect":
        if "fd" in a:
            if set(a) != {"fd", "value"}:
                raise _err(args, "expect: an open file's check is {fd: NAME, value: V}")
            vals["fd"] = _name(a["fd"][1], "fd")
            if vals["fd"] not in fds:
                raise _err(a["fd"][1], f"fd {_show(vals['fd'])} is not open")
            checks = [_check(f"fd {vals['fd']}", a["value"][1])]
        else:
            checks = _expect(a, args, machine, cgroups, tasks, vals)
    return Step(kind, vals, may_fail, knode.where, tuple(checks))


def _expect(a, args, machine, cgroups, tasks, vals) -> list:
    if "task" in a or "state" in a:
        if "task" not in a or "state" not in a or len(a) != 2:
            raise _err(args, "expect: a task check is {task: NAME, state: alive|exited|killed}")
        name = _name(a["task"][1], "task")
        if name not in tasks:
            raise _err(a["task"][1], f"task {_show(name)} is used before it was spawned")
        st = a["state"][1]
        if st.value not in ("alive", "exited", "killed"):
            raise _err(st, f"state: want alive, exited or killed, not {_show(st.value)}")
        vals["task"], vals["state"] = name, st.value
        return []
    if "step_error" in a:
        if len(a) != 1:
            raise _err(args, "expect: step_error stands alone")
        e = a["step_error"][1]
        names = {x.name for x in Errno} | {"none"}
        if not isinstance(e.value, str) or e.value not in names:
            raise _err(e, f"step_error: want an errno name like EINVAL or EBUSY, not "
                          f"{_show(e.value)}" + _did_you_mean(str(e.value), names))
        vals["step_error"] = e.value
        return []
    if "cgroup" not in a:
        raise _err(args, "expect: name a cgroup (and files), a task and its state, or "
                         "step_error")
    path = _cgroup_path(a["cgroup"][1])
    if path not in cgroups:
        raise _err(a["cgroup"][1], f"cgroup {path} is not defined in cgroups:")
    vals["cgroup"] = path
    checks = []
    for key, (kk, kv) in a.items():
        if key == "cgroup":
            continue
        fname = keyed_file(key)
        _file_ok(kk, fname, machine, writable=False, path=path)
        _, _, file_keys = _interface(machine.kernel, machine.cgroup, machine.swap_accounting,
                                     path == "/")
        if fname in KEYED and fname == key:
            raise _err(kk, f"{key} has many values: name one, as {key}.KEY")
        sub = key[len(fname) + 1:]
        if fname in file_keys and sub not in file_keys[fname]:
            raise _err(kk, f"{fname} has no key {_show(sub)}"
                       + _did_you_mean(sub, file_keys[fname]))
        checks.append(_check(key, kv))
    if not checks:
        raise _err(args, "expect: name at least one file to check")
    return checks


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


def _check(key: str, node: Node) -> Check:
    v = node.value
    if key in WORD_FILES:
        if isinstance(v, (dict, list, bool)) or (v is not None and not isinstance(v, str)):
            raise _err(node, f"{key}: want the controller names, like memory, or \"\"")
        words = frozenset((v or "").split())
        return Check(key, 0, 0, " ".join(sorted(words)) or '""', node.where, words)
    if isinstance(v, dict):
        unknown = set(v) - {"min", "max"}
        if unknown or not v:
            raise _err(node, f"{key}: a range is {{min: V, max: V}}")
        low = parse_size(v["min"][1], f"{key}.min", False) if "min" in v else 0
        high = parse_size(v["max"][1], f"{key}.max", False) if "max" in v else 1 << 64
        if low > high:
            raise _err(node, f"{key}: min is above max")
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
                raise _err(node, f"{key}: {_show(tol)} is not a percentage")
            pct = Fraction(number)
            if not 0 <= pct <= 100:
                raise _err(node, f"{key}: the tolerance {_show(tol)} must be a percent from 0 "
                           "to 100" + (" (not negative)" if pct < 0 else ""))
            delta = int(center * pct / 100)     # exact: a Fraction, rounded down
        else:
            delta = parse_size(Node(tol, node.where), f"{key} tolerance", False)
        return Check(key, center - delta, center + delta, v, node.where)
    val = parse_size(node, key, False)
    return Check(key, val, val, str(v), node.where)


# ---------------------------------------------------------------------------- running


@dataclass
class StepResult:
    index: int
    kind: str
    where: Where
    status: str = "ok"          # ok | error | skipped | failed
    error: str | None = None
    detail: str = ""
    #: with tracing: (memcg API call, its page or entry, [((memcg, counter), before, after)])
    trace: list = field(default_factory=list)


@dataclass
class CheckResult:
    step: int
    where: Where
    cgroup: str | None
    key: str
    expected: str
    actual: Any
    ok: bool


@dataclass
class RunResult:
    scenario: Scenario
    steps: list = field(default_factory=list)
    reports: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    violations: list = field(default_factory=list)
    failure: str | None = None
    #: after each step, per cgroup: (step index, usage bytes, swap bytes, limit bytes or None)
    series: dict = field(default_factory=dict)

    @property
    def exit_status(self) -> int:
        if self.violations:
            return Exit.VIOLATIONS
        if self.failure or not all(c.ok for c in self.checks):
            return Exit.ERROR
        return Exit.OK


class StepFailed(Exception):
    """A kernel refusal or a model error in a step that may not fail."""


def run_scenario(sc: Scenario, check_every_step: bool = False, on_step=None,
                 trace: bool = False) -> RunResult:
    """Run a validated scenario on a fresh Machine. With trace, every memcg API call of every
    step is recorded with the counters it changed (and the per-page paths are used)."""
    from .checker import check
    from .machine import Machine

    ms = sc.machine
    m = Machine(ms.memory // PAGE, swap_pages=ms.swap // PAGE, cpus=ms.cpus, nodes=ms.nodes,
                profile=ms.kernel, swap_accounting=ms.swap_accounting, thp=ms.thp,
                vectorized=not trace, cgroup=ms.cgroup)
    result = RunResult(sc)
    runner = _Runner(m, result)
    try:
        for path, files, _where in sc.cgroups:
            m.mkdir(path)
            if m.k.cgroup_v2:
                # as anyone setting up a v2 tree does: the parent hands memory to its children
                parent = path.rsplit("/", 1)[0] or "/"
                m.write_file(parent, "cgroup.subtree_control", "+memory")
            for name, text, fwhere in files:
                ret = m.write_file(path, name, text)
                if ret:
                    raise StepFailed(f"{fwhere}: writing {_show(text)} to {path}/{name} failed: "
                                     f"{Errno(-ret).name}")
        for i, step in enumerate(sc.steps):
            res = StepResult(i, step.kind, step.where)
            result.steps.append(res)
            if trace:
                m.k.trace = res.trace
            runner.run(step, res)
            m.k.trace = None
            _sample(m, i, result.series)
            if on_step is not None:
                on_step(i, step, m)
            if check_every_step:
                v = check(m.k)
                if v:
                    result.violations = v
                    result.failure = f"{step.where}: invariant violated after {step.kind}"
                    break
    except StepFailed as e:
        result.failure = str(e)
    except ModelBug as e:
        result.failure = f"model error: {e}"
        result.violations = [e]
    result.machine = m
    return result


def _sample(m, index: int, series: dict) -> None:
    """Memory and swap of every cgroup after a step, for plots."""
    from .mm.memcontrol import MEM_CGROUP_STAT_SWAP, mem_cgroup_usage
    from .mm.page_counter import PAGE_COUNTER_MAX

    for path, memcg in m.k.memcg_by_name.items():
        if path == "/":
            continue
        limit = memcg.res.limit
        swap = memcg.swap.usage if m.k.cgroup_v2 else memcg.stat[MEM_CGROUP_STAT_SWAP]
        series.setdefault(path, []).append(
            (index, mem_cgroup_usage(m.k, memcg, swap=False) * PAGE, swap * PAGE,
             None if limit >= PAGE_COUNTER_MAX else limit * PAGE))


class _Runner:
    def __init__(self, m, result: RunResult):
        self.m = m
        self.result = result
        self.tasks: dict[str, Any] = {}
        self.regions: dict[tuple, Any] = {}
        self.fds: dict[str, Any] = {}
        #: the files the scenario's own writes made and it has not unlinked
        self.files: set[str] = set()
        self.last_error: str | None = None
        self.dead: set[str] = set()

    def run(self, step: Step, res: StepResult) -> None:
        a = step.args
        task = self.tasks.get(a.get("task")) if "task" in a else None
        if step.kind != "expect":
            gone = self._missing(step, task)
            if gone:
                # what the loader could only assume: a task killed or exited, or an object
                # whose step was skipped or failed under may_fail
                res.status, res.detail = "skipped", gone
                return
        try:
            err = getattr(self, f"do_{step.kind}")(step, task)
        except InvalidRequest as e:
            err, res.detail = "EINVAL", str(e)
        killed = [t.comm for t in self.tasks.values()
                  if t.state == "killed" and t.comm not in self.dead]
        if killed:
            self.dead.update(killed)
            res.detail = f"memcg OOM killer killed {', '.join(killed)}"
        if step.kind not in ("expect", "report"):
            self.last_error = err
        if err:
            res.status, res.error = "error", err
            if not step.may_fail:
                raise StepFailed(f"{step.where}: {step.kind} failed with {err}"
                                 + (f": {res.detail}" if res.detail else ""))

    def _missing(self, step: Step, task) -> str | None:
        """Why step cannot run (a task, region, file or fd it names is not there), or None."""
        a = step.args
        if "task" in a and step.kind != "spawn":
            if task is None:
                return f"task {a['task']} does not exist (the step that made it did not run)"
            if task.state != "alive":
                return f"task {task.comm} was {task.state}"
        if "region" in a and (task.comm, a["region"]) not in self.regions:
            return (f"task {task.comm} has no region {a['region']} (the step that made it "
                    "did not run or failed)")
        if "file" in a and step.kind in ("read", "mmap", "splice", "truncate", "unlink") \
                and a["file"] not in self.files:
            return f"file {a['file']} does not exist (the write that made it did not run)"
        if "fd" in a and a["fd"] not in self.fds:
            return f"fd {a['fd']} is not open (its open did not run or failed)"
        return None

    # steps return None or an errno name
    def _errno(self, ret: int) -> str | None:
        return Errno(-ret).name if ret < 0 else None

    def do_spawn(self, step, _):
        a = step.args
        t = self.m.spawn(a["task"], a["cgroup"], cpu=a.get("cpu", 0), node=a.get("node", 0))
        t.oom_score_adj = a.get("oom_score_adj", 0)
        self.tasks[a["task"]] = t

    def do_anon(self, step, t):
        a = step.args
        vma = self.m.mmap_anon(t, a["size"] // PAGE, shared=a.get("shared", False),
                               locked=a.get("locked", False))
        self.regions[(t.comm, a["as"])] = vma
        if a.get("touch", True) and t.state == "alive":
            self.m.touch(t, vma)

    def do_shm(self, step, t):
        """shmget + shmat + IPC_RMID, then touch every page: shmem mapped shared, destroyed
        when it is detached (unmap)."""
        vma = self.m.mmap_anon(t, step.args["size"] // PAGE, shared=True)
        self.regions[(t.comm, step.args["as"])] = vma
        self.m.touch(t, vma)

    def do_touch(self, step, t):
        self.m.touch(t, self.regions[(t.comm, step.args["region"])])

    def do_unmap(self, step, t):
        self.m.munmap(t, self.regions.pop((t.comm, step.args["region"])))

    def do_mlock(self, step, t):
        return self._errno(self.m.mlock(t, self.regions[(t.comm, step.args["region"])]))

    def do_write(self, step, t):
        a = step.args
        name = a["file"]
        if name not in self.files:
            self.m.create(name, tmpfs=a["fs"] == "tmpfs")
            self.files.add(name)
        ret = self.m.write(t, name, a["size"] // PAGE) if a["size"] else 0
        return self._errno(ret) if ret < 0 else None

    def do_read(self, step, t):
        ret = self.m.read(t, step.args["file"])
        return self._errno(ret) if ret < 0 else None

    def do_mmap(self, step, t):
        a = step.args
        f = self.m.file(a["file"])
        if not f.size_pages:
            return "EINVAL"
        vma = self.m.mmap_file(t, a["file"])
        self.regions[(t.comm, a["as"])] = vma
        self.m.touch(t, vma, write=False)

    def do_truncate(self, step, _):
        self.m.truncate(step.args["file"], -(-step.args["size"] // PAGE))

    def do_unlink(self, step, _):
        self.m.unlink(step.args["file"])
        self.files.discard(step.args["file"])

    def do_sync(self, step, _):
        self.m.sync()

    def do_fork(self, step, t):
        child = self.m.fork(t, step.args["child"])
        self.tasks[step.args["child"]] = child
        for (owner, name), vma in list(self.regions.items()):
            if owner == t.comm:
                self.regions[(child.comm, name)] = child.mm.vmas[t.mm.vmas.index(vma)]

    def do_move(self, step, t):
        return self._errno(self.m.move_task(t, step.args["cgroup"]))

    def do_set(self, step, _):
        for name, text in step.args["writes"]:
            ret = self.m.write_file(step.args["cgroup"], name, text)
            if ret:
                return self._errno(ret)

    def do_migrate(self, step, t):
        for vma in list(t.mm.vmas):
            self.m.migrate(t, vma, step.args["node"])

    def do_splice(self, step, t):
        f = self.m.file(step.args["file"])
        for index in range(f.size_pages):
            if f.find_page(index) >= 0:
                self.m.splice(t, f.name, index)

    def do_drop_caches(self, step, _):
        self.m.drop_caches()

    def do_exit(self, step, t):
        self.m.exit(t)

    def do_rmdir(self, step, _):
        return self._errno(self.m.rmdir(step.args["cgroup"]))

    def do_open(self, step, _):
        a = step.args
        self.fds[a["as"]] = self.m.open_file(a["cgroup"], a["file"])

    def do_fd_write(self, step, _):
        return self._errno(self.fds[step.args["fd"]].write(step.args["text"]))

    def do_close(self, step, _):
        self.fds.pop(step.args["fd"]).close()

    def do_report(self, step, _):
        snap = {}
        for path in step.args["cgroups"]:
            if path not in self.m.k.memcg_by_name:
                continue
            snap[path] = {name: self.m.read_file(path, name)
                          for name in self.m.fs.readable(path) if name.startswith("memory.")}
        self.result.reports.append({"label": step.args["label"], "step": len(
            self.result.steps) - 1, "line": step.where.line, "cgroups": snap})

    def do_expect(self, step, _):
        a = step.args
        idx = len(self.result.steps) - 1
        if "state" in a:
            t = self.tasks.get(a["task"])
            state = t.state if t is not None else "never created"
            self.result.checks.append(CheckResult(idx, step.where, None, f"task {a['task']}",
                                                  a["state"], state, state == a["state"]))
            return
        if "step_error" in a:
            seen = self.last_error or "none"
            self.result.checks.append(CheckResult(idx, step.where, None, "step_error",
                                                  a["step_error"], seen,
                                                  seen == a["step_error"]))
            return
        if "fd" in a:
            c = step.checks[0]
            fd = self.fds.get(a["fd"])
            if fd is None:
                self.result.checks.append(CheckResult(idx, c.where, None, c.key, c.text,
                                                      "not open", False))
                return
            value = int(fd.read())
            self.result.checks.append(CheckResult(idx, c.where, None, c.key, c.text, value,
                                                  c.holds(value)))
            return
        path = a["cgroup"]
        for c in step.checks:
            value = read_value(self.m, path, c.key)
            ok = value is not None and c.holds(value)
            self.result.checks.append(CheckResult(idx, c.where, path, c.key, c.text, value, ok))
