"""Race files: user-defined race sets in YAML (docs/explore-format.md).

    race: 1
    name: my-race
    doc: what races
    machine: {memory_pages: 1024, nodes: 2}
    setup:
      - mkdir: /a
      - spawn: {task: T, cgroup: /a}
      ...
    paths:
      - {path: migrate, page: {file: /data/f, index: 0}, node: 1}
      - {path: truncate, file: /data/f}
    expect:                                  # optional: how every schedule must end
      - {returns: {migrate: [0, 1]}}
      - {cgroup: /a, memory.usage_in_bytes: 0}

The setup steps and the paths come from memcgsim.races (SETUP_STEPS, PATHS). The file is read
with PyYAML's safe loader; every mistake is reported with its file, line and column, and the
setup is tried once on a fresh machine so that a reference to a task, VMA, file or page that
does not exist is reported at the step that names it.

A race machine is small, and so is everything a race file may ask of it (the bounds below):
each argument is checked for its kind (a name, a cgroup path, a page count, a node, a page
reference, ...) before the setup runs, the setup's steps together handle a bounded number of
pages, and the paths, run once one after another when the file is read, take a bounded number
of steps (the explorer's schedules are that long).
"""

from __future__ import annotations

import inspect

from .errors import Errno, MemcgsimError
from .explore import RaceSet
from .machine import Machine
from .mm.locking import run_path
from .races import PATHS, SETUP_STEPS, expect_returns, expect_value, race_set
from .scenario import expected_value, keyed_file, read_value
from .scenario.marks import (
    MAX_NAME,
    Node,
    ScenarioError,
    did_you_mean,
    parse_yaml,
    read_source,
    show,
)


class RaceFileError(ScenarioError):
    """An invalid race file: where and what (exit status 2)."""


#: machine keys and the Python types they take
MACHINE_KEYS = {"memory_pages": int, "nodes": int, "cpus": int, "swap_pages": int,
                "profile": str, "cgroup": str, "thp": bool, "swap_accounting": bool}

# ------------------------------------------------------------------------------------------
# the bounds of a race (a race machine is small; the explorer replays its setup often and
# recurses once per step of a schedule)

#: the largest race machine: memory (a multiple of 512 pages per node), nodes, CPUs, swap
MAX_MEMORY_PAGES = 4096
MACHINE_BOUNDS = {"memory_pages": (512, MAX_MEMORY_PAGES), "nodes": (1, 8), "cpus": (1, 16),
                  "swap_pages": (0, MAX_MEMORY_PAGES)}
#: the largest page count, page index or offset an argument may name
MAX_PAGES = MAX_MEMORY_PAGES
#: setup steps, and the pages they may handle together (written, read, faulted, reclaimed,
#: copied at a fork)
MAX_SETUP_STEPS = 64
MAX_SETUP_PAGES = 2 * MAX_MEMORY_PAGES
#: the steps of the paths, run one after another (an interleaving may take up to about twice
#: as many: a lock waited for is a step of its own)
MAX_RACE_STEPS = 400
#: expectations (each is checked at the end of every complete schedule)
MAX_EXPECT = 64
# the longest name (a task, VMA, file, cgroup, label or the race's own) is MAX_NAME
# (NAME_MAX), from scenario.marks as a scenario's

#: what each argument of a setup step or path takes (by its name; ARG_KIND_OF overrides it
#: for one step), as _arg checks them
ARG_KINDS = {
    "path": "cgroup", "cgroup": "cgroup",
    "file": "name", "steal": "name", "task": "name", "child": "name", "name": "name",
    "vma": "name",
    "pages": "count", "offset": "count", "index": "count", "pgoff": "count",
    "steal_index": "count",
    "node": "node",
    "tmpfs": "bool", "hugepage": "bool", "shared": "bool", "write": "bool",
    "page": "page",
    "value": "value",
}
ARG_KIND_OF = {("set", "file"): "cgroup file"}


def _plain(node: Node):
    """A node's value with the marks taken off."""
    v = node.value
    if isinstance(v, dict):
        return {k: _plain(val) for k, (_, val) in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _line(text: str, limit: int = 300) -> str:
    """A message from the model, on one line and cut short."""
    lines = str(text).splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= limit else first[:limit - 3] + "..."


def _err(node: Node, message: str) -> RaceFileError:
    w = node.where
    return RaceFileError(w.file, w.line, w.col, message)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _name(node: Node, what: str) -> str:
    """A name (task, VMA, file, label, ...): printable text of 1 to MAX_NAME characters."""
    v = node.value
    if not isinstance(v, str) or not v:
        raise _err(node, f"{what}: want a name, not {show(v)}")
    if len(v) > MAX_NAME:
        raise _err(node, f"{what}: a name of {len(v):,} characters: at most {MAX_NAME}")
    if not v.isprintable():
        raise _err(node, f"{what}: {show(v)} has a character that cannot be printed")
    return v


def _count(node: Node, what: str, lo: int = 0, hi: int = MAX_PAGES) -> int:
    v = node.value
    if not _is_int(v) or not lo <= v <= hi:
        raise _err(node, f"{what}: want a whole number from {lo} to {hi}, not {show(v)}")
    return v


def _kind_of(step: str, arg: str) -> str:
    return ARG_KIND_OF.get((step, arg), ARG_KINDS.get(arg, "value"))


def _arg(node: Node, kind: str, what: str, nodes: int):
    """An argument's value, checked for its kind."""
    v = node.value
    if kind == "name":
        return _name(node, what)
    if kind == "cgroup":
        name = _name(node, what)
        if not name.startswith("/"):
            raise _err(node, f"{what}: want a cgroup path like /a, not {show(name)}")
        return name
    if kind == "cgroup file":
        return _name(node, what)
    if kind == "count":
        return _count(node, what)
    if kind == "node":
        return _count(node, what, 0, nodes - 1)
    if kind == "bool":
        if not isinstance(v, bool):
            raise _err(node, f"{what}: want true or false, not {show(v)}")
        return v
    if kind == "page":
        return _page_ref(node, what)
    # "value": what a cgroup file is written (a number or text)
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise _err(node, f"{what}: want a number or text, not {show(v)}")
    if isinstance(v, str) and (len(v) > MAX_NAME or not v.isprintable()):
        raise _err(node, f"{what}: want a short line of text, not {show(v)}")
    return v


def _page_ref(node: Node, what: str) -> dict:
    """A page reference: {file: F, index: I} or {vma: V, offset: I}."""
    v = node.value
    shape = "want {file: F, index: I} or {vma: V, offset: I}"
    if not isinstance(v, dict):
        raise _err(node, f"{what}: {shape}, not {show(v)}")
    keys = ("file", "index") if "file" in v else ("vma", "offset") if "vma" in v else None
    if keys is None:
        raise _err(node, f"{what}: {shape}")
    for key, (knode, _) in v.items():
        if key not in keys:
            raise _err(knode, f"{what}: a page given by {keys[0]} has no {show(key)}: {shape}")
    ref = {keys[0]: _name(v[keys[0]][1], f"{what} {keys[0]}")}
    if keys[1] in v:
        ref[keys[1]] = _count(v[keys[1]][1], f"{what} {keys[1]}")
    return ref


def _args(node: Node, what: str, step: str, fn, required: tuple, optional: tuple,
          nodes: int, alone: bool = True) -> dict:
    """The arguments of a step or path, checked against what it takes (alone: a step's one
    required argument may be given alone, `mkdir: /a`, `reclaim: {file: F, index: I}`)."""
    takes = required + optional
    v = node.value
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if alone and len(required) == 1 and (not isinstance(v, (dict, list)) or (
            _kind_of(step, required[0]) == "page" and isinstance(v, dict) and v
            and set(v) <= {"file", "index", "vma", "offset"})):
        args = {required[0]: _arg(node, _kind_of(step, required[0]), f"{what} {required[0]}",
                                  nodes)}
    elif not isinstance(v, dict):
        raise _err(node, f"{what} takes a mapping of {', '.join(takes) or 'nothing'}")
    else:
        args = {}
        for key, (knode, vnode) in v.items():
            if key not in takes:
                raise _err(knode, f"{what} has no argument {show(key)}"
                           + did_you_mean(key, takes)
                           + f"; it takes {', '.join(takes) or 'nothing'}")
            param = params.get(key)
            if vnode.value is None and param is not None and param.default is None:
                args[key] = None            # null: the argument's default (none given)
            else:
                args[key] = _arg(vnode, _kind_of(step, key), f"{what} {key}", nodes)
    missing = [r for r in required if r not in args]
    if missing:
        raise _err(node, f"{what} needs {', '.join(missing)}")
    for key in optional:                    # a default must suit the machine too
        param = params.get(key)
        if key not in args and param is not None and param.default is not None:
            try:
                _arg(Node(param.default, node.where), _kind_of(step, key), key, nodes)
            except RaceFileError:
                raise _err(node, f"{what}: {key} defaults to {show(param.default)}, which "
                                 f"this machine does not have: give {key}") from None
    return args


def load_race_file(file: str, text: str | None = None) -> RaceSet:
    """Read and check a race file; RaceFileError names the first mistake."""
    try:
        root = parse_yaml(read_source(file) if text is None else text, file)
    except ScenarioError as e:
        raise RaceFileError(e.file, e.line, e.col, e.message.replace(
            "a scenario needs format: 1 and steps", "a race file needs race: 1, setup and "
            "paths")) from None
    if not isinstance(root.value, dict):
        raise _err(root, "a race file is a mapping with race, name, machine, setup and paths")
    top = root.value
    keys = ("race", "name", "doc", "machine", "setup", "paths", "expect")
    for key, (knode, _) in top.items():
        if key not in keys:
            raise _err(knode, f"unknown top-level key {show(key)}" + did_you_mean(key, keys))
    if "race" not in top:
        raise _err(root, "missing 'race: 1' (the format version)")
    fmt = top["race"][1]
    if fmt.value != 1 or not _is_int(fmt.value):
        raise _err(fmt, f"race format {show(fmt)} is not known: this version reads 1")
    name = _name(top["name"][1], "name") if "name" in top else file
    doc = top["doc"][1].value if "doc" in top else ""
    if not isinstance(doc, str):
        raise _err(top["doc"][1], "doc must be a string")
    machine, mnode = _machine(top["machine"][1] if "machine" in top else None)
    nodes = machine.get("nodes", 1)
    if "setup" not in top or not isinstance(top["setup"][1].value, list):
        raise _err(top["setup"][1] if "setup" in top else root,
                   "setup must be a list of steps (mkdir, spawn, write, ...)")
    snodes = top["setup"][1].value
    if len(snodes) > MAX_SETUP_STEPS:
        raise _err(snodes[MAX_SETUP_STEPS], f"{len(snodes)} setup steps: a race's setup takes "
                   f"at most {MAX_SETUP_STEPS}")
    steps, step_nodes = [], []
    for snode in snodes:
        if not isinstance(snode.value, dict) or len(snode.value) != 1:
            raise _err(snode, "a setup step is one `name: arguments` pair")
        (sname, (knode, anode)), = snode.value.items()
        if sname not in SETUP_STEPS:
            raise _err(knode, f"unknown setup step {show(sname)}"
                       + did_you_mean(sname, SETUP_STEPS))
        fn, required, optional = SETUP_STEPS[sname]
        if anode.value is None and not required:
            args = {}
        else:
            args = _args(anode, f"setup step {sname}", sname, fn, required, optional, nodes)
        steps.append((sname, args))
        step_nodes.append(snode)
    if "paths" not in top or not isinstance(top["paths"][1].value, list):
        raise _err(top["paths"][1] if "paths" in top else root,
                   "paths must be a list of 1 to 4 paths ({path: NAME, ...})")
    pnodes = top["paths"][1].value
    if not 1 <= len(pnodes) <= 4:
        raise _err(top["paths"][1], f"{len(pnodes)} paths: a race runs 1 to 4")
    paths, labels = [], set()
    for pnode in pnodes:
        if not isinstance(pnode.value, dict) or "path" not in pnode.value:
            raise _err(pnode, "a path is a mapping with `path: NAME` and its arguments")
        pname_node = pnode.value["path"][1]
        pname = pname_node.value
        if not isinstance(pname, str) or pname not in PATHS:
            raise _err(pname_node, f"unknown path {show(pname_node)}"
                       + (did_you_mean(pname, PATHS) if isinstance(pname, str) else ""))
        spec = PATHS[pname]
        if "label" in pnode.value:
            lnode = pnode.value["label"][1]
            label = _name(lnode, "path label")
        else:
            lnode, label = pnode, pname
        if label in labels:
            raise _err(lnode, f"path label {show(label)} is used twice: give each a `label`")
        labels.add(label)
        rest = Node({k: v for k, v in pnode.value.items() if k not in ("path", "label")},
                    pnode.where)
        args = _args(rest, f"path {pname}", pname, spec.start, spec.required, spec.optional,
                     nodes, alone=False)
        paths.append((label, pname, args, pnode))
    expect, files = _expectations(top["expect"][1] if "expect" in top else None, labels)
    race = race_set(name, doc, steps, [(lb, p, a) for lb, p, a, _ in paths], machine, expect)
    m, ctx = _try(file, root, mnode, machine, steps, step_nodes)
    for cgroup, key, node, cnode in files:
        if cgroup not in m.k.memcg_by_name:
            raise _err(cnode, f"cgroup {cgroup} does not exist after the setup")
        fname = keyed_file(key)
        if fname not in m.fs.readable(cgroup):
            raise _err(node, f"{cgroup} has no file {fname}"
                       + did_you_mean(fname, m.fs.readable(cgroup)))
        try:
            value = read_value(m, cgroup, key)
        except MemcgsimError as e:          # a v2 file its parent has not enabled
            raise _err(node, f"{cgroup} {key}: {_line(e)}") from None
        if value is None:
            raise _err(node, f"{cgroup} {key}: not a number in this kernel's {fname}")
    _trial(m, ctx, paths)
    return race


def _machine(node: Node | None) -> tuple[dict, Node | None]:
    """The machine: mapping's arguments for Machine(...), each of its type and in its bounds."""
    machine: dict = {}
    if node is None:
        return machine, None
    if not isinstance(node.value, dict):
        raise _err(node, "machine is a mapping of " + ", ".join(MACHINE_KEYS))
    for key, (knode, vnode) in node.value.items():
        if key not in MACHINE_KEYS:
            raise _err(knode, f"unknown machine key {show(key)}"
                       + did_you_mean(key, MACHINE_KEYS))
        want = MACHINE_KEYS[key]
        v = vnode.value
        if not isinstance(v, want) or (want is int and isinstance(v, bool)):
            raise _err(vnode, f"machine {key} must be a {want.__name__}, not {show(v)}")
        if key in MACHINE_BOUNDS:
            lo, hi = MACHINE_BOUNDS[key]
            if not lo <= v <= hi:
                raise _err(vnode, f"machine {key} must be from {lo} to {hi} on a race "
                                  f"machine, not {show(v)}")
        if want is str:
            _name(vnode, f"machine {key}")
        machine[key] = v
    return machine, node


def _expectations(node: Node | None, labels: set) -> tuple[list, list]:
    """The expect: list, as race_set expectations, and (cgroup, file, its node, the cgroup's
    node) of each file check, to be tried on the machine after the setup."""
    if node is None:
        return [], []
    if not isinstance(node.value, list):
        raise _err(node, "expect must be a list of {returns: {LABEL: [VALUES]}} and "
                         "{cgroup: PATH, FILE: VALUE} checks")
    expect, files = [], []
    for enode in node.value:
        e = enode.value
        if isinstance(e, dict) and set(e) == {"returns"}:
            rnode = e["returns"][1]
            if not isinstance(rnode.value, dict) or not rnode.value:
                raise _err(rnode, "returns maps path labels to what they may return")
            for label, (knode, vnode) in rnode.value.items():
                if label not in labels:
                    raise _err(knode, f"no path is labelled {show(label)}"
                               + did_you_mean(label, labels))
                values = _plain(vnode)
                values = values if isinstance(values, list) else [values]
                if not all(v is None or _is_int(v) for v in values):
                    raise _err(vnode, f"{label}: a path returns a number (or null)")
                expect.append(expect_returns(label, values))
        elif isinstance(e, dict) and "cgroup" in e:
            cnode = e["cgroup"][1]
            cgroup = cnode.value
            if not isinstance(cgroup, str) or not cgroup.startswith("/"):
                raise _err(cnode, "cgroup is a path like /a")
            _name(cnode, "cgroup")
            checks = [(key, vnode, knode) for key, (knode, vnode) in e.items()
                      if key != "cgroup"]
            if not checks:
                raise _err(enode, "name at least one file to check")
            for key, vnode, knode in checks:
                _name(knode, "expect")
                try:
                    check = expected_value(key, vnode)
                except ScenarioError as err:
                    raise RaceFileError(err.file, err.line, err.col, err.message) from None
                expect.append(expect_value(cgroup, key, check))
                files.append((cgroup, key, knode, cnode))
        else:
            raise _err(enode, "an expectation is {returns: {LABEL: [VALUES]}} or "
                              "{cgroup: PATH, FILE: VALUE, ...}")
        if len(expect) > MAX_EXPECT:
            raise _err(enode, f"more than {MAX_EXPECT} expectations: each is checked at the "
                              "end of every schedule")
    return expect, files


def _setup_pages(m: Machine, ctx: dict, sname: str, args: dict) -> int:
    """How many pages a setup step handles (writes, reads, faults, reclaims or copies)."""
    if sname in ("write", "reclaim_range", "reclaim_file"):
        return args.get("pages") or 1
    if sname == "read":
        if args.get("pages") is not None:
            return args["pages"]
        f = m.k.files.get(args["file"])
        return max(0, f.size_pages - (args.get("index") or 0)) if f is not None else 0
    if sname == "touch":
        if args.get("pages") is not None:
            return args["pages"]
        vma = ctx.get("vmas", {}).get(args["vma"])
        return max(0, vma.npages - (args.get("offset") or 0)) if vma is not None else 0
    if sname == "fork":
        task = ctx.get("tasks", {}).get(args["task"])
        return sum(v.npages for v in task.mm.vmas) if task is not None else 0
    return 0


def _try(file: str, root: Node, mnode: Node | None, machine: dict, steps, step_nodes):
    """Build the machine and run the setup once: a bad reference is reported where it is.
    Returns the machine after the setup and the setup's context."""
    try:
        m = Machine(vectorized=False, **machine)
    except MemcgsimError as e:
        raise _err(mnode or root, f"machine: {_line(e)}") from None
    ctx: dict = {}
    budget = MAX_SETUP_PAGES
    for (sname, args), node in zip(steps, step_nodes, strict=True):
        budget -= _setup_pages(m, ctx, sname, args)
        if budget < 0:
            raise _err(node, f"setup step {sname}: the setup handles more than "
                             f"{MAX_SETUP_PAGES} pages in all (written, read, faulted, "
                             "reclaimed or copied): a race machine is small")
        wrong = _vma_step(m, ctx, sname, args)
        if wrong:
            raise _err(node, f"setup step {sname}: {wrong}")
        try:
            if sname == "set":
                rc = m.write_file(args["cgroup"], args["file"], str(args["value"]))
                if rc < 0:
                    raise _err(node, f"setup step set: writing {show(str(args['value']))} "
                                     f"to {args['cgroup']} {args['file']} fails with "
                                     f"{_errno(rc)}")
            else:
                SETUP_STEPS[sname][0](m, ctx, **args)
        except MemcgsimError as e:
            if isinstance(e, RaceFileError):
                raise
            raise _err(node, f"setup step {sname}: {_line(e)}") from None
    return m, ctx


def _vma_step(m: Machine, ctx: dict, sname: str, args: dict) -> str | None:
    """What is wrong with the pages a touch or reclaim_range step names in its VMA, said with
    the race file's names (the machine would name the VMA by its address)."""
    if sname not in ("touch", "reclaim_range"):
        return None
    name = args["vma"]
    vma = ctx.get("vmas", {}).get(name)
    if vma is None:
        return None                         # the step says the VMA is unknown
    task = ctx.get("tasks", {}).get(args.get("task"))
    if task is not None and vma not in task.mm.vmas:
        return f"VMA {name} is not mapped in task {args['task']}"
    offset = args.get("offset") or 0
    pages = args.get("pages")
    if pages is None:
        pages = vma.npages - offset if sname == "touch" else 1
    if offset + pages > vma.npages or pages < 0:
        return (f"pages {offset} to {offset + max(pages, 1) - 1} are outside VMA {name} "
                f"({_pages(vma.npages)})")
    if sname == "reclaim_range":
        for i in range(offset, offset + pages):
            if m.pfn_of(vma, i) < 0:
                return f"no page in memory at offset {i} of VMA {name}"
    return None


def _pages(n: int) -> str:
    return f"{n} page" if n == 1 else f"{n} pages"


def _errno(rc: int) -> str:
    try:
        return Errno(-rc).name
    except ValueError:
        return f"error {-rc}"


class _TooLong(Exception):
    pass


def _counted(gen, box: list, limit: int):
    """The path gen, counting its steps into box[0] (at most limit)."""
    send = None
    while True:
        box[0] += 1
        if box[0] > limit:
            raise _TooLong
        try:
            req = gen.send(send)
        except StopIteration as stop:
            return stop.value
        send = yield req


def _trial(m: Machine, ctx: dict, paths) -> None:
    """Start the paths on the machine after the setup (page references are resolved there),
    then run them one after another, counting their steps: a race longer than MAX_RACE_STEPS
    is refused. A path that fails or waits for ever alone is left to the explorer to report
    (its locks are dropped and the next path counted)."""
    started = []
    for label, pname, args, node in paths:
        try:
            started.append(PATHS[pname].start(m, ctx, **args))
        except MemcgsimError as e:
            raise _err(node, f"path {label}: {_line(e)}") from None
        vma = ctx.get("vmas", {}).get(args.get("vma"))
        if vma is not None and (args.get("offset") or 0) >= vma.npages:
            raise _err(node, f"path {label}: offset {args['offset']} is outside VMA "
                             f"{args['vma']} ({_pages(vma.npages)})")
    box = [0]
    try:
        for i, ((label, _, _, node), (task, gen)) in enumerate(zip(paths, started,
                                                                    strict=True)):
            try:
                run_path(m.k, _counted(gen, box, MAX_RACE_STEPS), task, owner=i + 1)
            except _TooLong:
                raise _err(node, f"path {label}: the paths take more than {MAX_RACE_STEPS} "
                                 "steps run one after another: a race may take at most that "
                                 "many (give them fewer pages)") from None
            except MemcgsimError:
                # the explorer reports it; count the other paths from here
                for lock in m.k.locks.held_by(i + 1):
                    m.k.locks.release(lock, i + 1)
    finally:
        for _, gen in started:
            gen.close()
