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
"""

from __future__ import annotations

from .errors import MemcgsimError
from .explore import RaceSet
from .machine import Machine
from .races import PATHS, SETUP_STEPS, expect_returns, expect_value, race_set
from .scenario import (
    Node,
    ScenarioError,
    _check,
    _did_you_mean,
    _parse_yaml,
    keyed_file,
    read_source,
    read_value,
)


class RaceFileError(ScenarioError):
    """An invalid race file: where and what (exit status 2)."""


#: machine keys and the Python types they take
MACHINE_KEYS = {"memory_pages": int, "nodes": int, "cpus": int, "swap_pages": int,
                "profile": str, "cgroup": str, "thp": bool, "swap_accounting": bool}


def _err(node: Node, message: str) -> RaceFileError:
    w = node.where
    return RaceFileError(w.file, w.line, w.col, message)


def _plain(node: Node):
    """A node's value with the marks taken off."""
    v = node.value
    if isinstance(v, dict):
        return {k: _plain(val) for k, (_, val) in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _args(node: Node, what: str, required: tuple, optional: tuple) -> dict:
    """The arguments of a step or path, checked against what it takes."""
    if not isinstance(node.value, dict):
        if len(required) == 1 and not isinstance(node.value, list):
            return {required[0]: node.value}
        raise _err(node, f"{what} takes a mapping of {', '.join(required + optional) or 'nothing'}")
    args = {}
    for key, (knode, vnode) in node.value.items():
        if key not in required + optional:
            raise _err(knode, f"{what} has no argument {key!r}"
                       + _did_you_mean(key, required + optional)
                       + f"; it takes {', '.join(required + optional) or 'nothing'}")
        args[key] = _plain(vnode)
    missing = [r for r in required if r not in args]
    if missing:
        raise _err(node, f"{what} needs {', '.join(missing)}")
    return args


def load_race_file(file: str, text: str | None = None) -> RaceSet:
    """Read and check a race file; RaceFileError names the first mistake."""
    try:
        root = _parse_yaml(read_source(file) if text is None else text, file)
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
            raise _err(knode, f"unknown top-level key {key!r}" + _did_you_mean(key, keys))
    if "race" not in top:
        raise _err(root, "missing 'race: 1' (the format version)")
    fmt = top["race"][1]
    if fmt.value != 1 or isinstance(fmt.value, bool):
        raise _err(fmt, f"race format {fmt.value!r} is not known: this version reads 1")
    name = top["name"][1].value if "name" in top else file
    if not isinstance(name, str) or not name:
        raise _err(top["name"][1], "name must be a non-empty string")
    doc = top["doc"][1].value if "doc" in top else ""
    if not isinstance(doc, str):
        raise _err(top["doc"][1], "doc must be a string")
    machine = {}
    if "machine" in top:
        mnode = top["machine"][1]
        if not isinstance(mnode.value, dict):
            raise _err(mnode, "machine is a mapping of " + ", ".join(MACHINE_KEYS))
        for key, (knode, vnode) in mnode.value.items():
            if key not in MACHINE_KEYS:
                raise _err(knode, f"unknown machine key {key!r}"
                           + _did_you_mean(key, MACHINE_KEYS))
            want = MACHINE_KEYS[key]
            if not isinstance(vnode.value, want) or (want is int and isinstance(vnode.value,
                                                                                 bool)):
                raise _err(vnode, f"machine {key} must be a {want.__name__}, not "
                           f"{vnode.value!r}")
            machine[key] = vnode.value
    if "setup" not in top or not isinstance(top["setup"][1].value, list):
        raise _err(top["setup"][1] if "setup" in top else root,
                   "setup must be a list of steps (mkdir, spawn, write, ...)")
    steps, step_nodes = [], []
    for snode in top["setup"][1].value:
        if not isinstance(snode.value, dict) or len(snode.value) != 1:
            raise _err(snode, "a setup step is one `name: arguments` pair")
        (sname, (knode, anode)), = snode.value.items()
        if sname not in SETUP_STEPS:
            raise _err(knode, f"unknown setup step {sname!r}" + _did_you_mean(sname,
                                                                               SETUP_STEPS))
        _, required, optional = SETUP_STEPS[sname]
        if anode.value is None and not required:
            args = {}
        else:
            args = _args(anode, f"setup step {sname}", required, optional)
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
        pname = pnode.value["path"][1].value
        if pname not in PATHS:
            raise _err(pnode.value["path"][1], f"unknown path {pname!r}"
                       + _did_you_mean(str(pname), PATHS))
        spec = PATHS[pname]
        label = pnode.value["label"][1].value if "label" in pnode.value else pname
        if not isinstance(label, str) or label in labels:
            raise _err(pnode.value.get("label", (None, pnode))[1],
                       f"path label {label!r} is used twice: give each a `label`")
        labels.add(label)
        rest = Node({k: v for k, v in pnode.value.items() if k not in ("path", "label")},
                    pnode.where)
        args = _args(rest, f"path {pname}", spec.required, spec.optional)
        paths.append((label, pname, args, pnode))
    expect, files = _expectations(top["expect"][1] if "expect" in top else None, labels)
    race = race_set(name, doc, steps, [(lb, p, a) for lb, p, a, _ in paths], machine, expect)
    m = _try(race, machine, steps, step_nodes, paths)
    for cgroup, key, node, cnode in files:
        if cgroup not in m.k.memcg_by_name:
            raise _err(cnode, f"cgroup {cgroup} does not exist after the setup")
        fname = keyed_file(key)
        if fname not in m.fs.readable(cgroup):
            raise _err(node, f"{cgroup} has no file {fname}"
                       + _did_you_mean(fname, m.fs.readable(cgroup)))
        if read_value(m, cgroup, key) is None:
            raise _err(node, f"{cgroup} {key}: not a number in this kernel's {fname}")
    return race


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
                    raise _err(knode, f"no path is labelled {label!r}"
                               + _did_you_mean(str(label), labels))
                values = _plain(vnode)
                values = values if isinstance(values, list) else [values]
                if not all(v is None or (isinstance(v, int) and not isinstance(v, bool))
                           for v in values):
                    raise _err(vnode, f"{label}: a path returns a number (or null)")
                expect.append(expect_returns(label, values))
        elif isinstance(e, dict) and "cgroup" in e:
            cgroup = e["cgroup"][1].value
            if not isinstance(cgroup, str) or not cgroup.startswith("/"):
                raise _err(e["cgroup"][1], "cgroup is a path like /a")
            checks = [(key, vnode, knode) for key, (knode, vnode) in e.items()
                      if key != "cgroup"]
            if not checks:
                raise _err(enode, "name at least one file to check")
            for key, vnode, knode in checks:
                try:
                    check = _check(key, vnode)
                except ScenarioError as err:
                    raise RaceFileError(err.file, err.line, err.col, err.message) from None
                expect.append(expect_value(cgroup, key, check))
                files.append((cgroup, key, knode, e["cgroup"][1]))
        else:
            raise _err(enode, "an expectation is {returns: {LABEL: [VALUES]}} or "
                              "{cgroup: PATH, FILE: VALUE, ...}")
    return expect, files


def _try(race: RaceSet, machine: dict, steps, step_nodes, paths) -> Machine:
    """Build the machine and start the paths once: a bad reference is reported where it is.
    Returns the machine after the setup."""
    root = step_nodes[0] if step_nodes else None
    try:
        m = Machine(vectorized=False, **machine)
    except MemcgsimError as e:
        raise RaceFileError(root.where.file if root else race.name, 1, 1,
                            f"machine: {e}") from None
    ctx: dict = {}
    for (sname, args), node in zip(steps, step_nodes, strict=True):
        try:
            SETUP_STEPS[sname][0](m, ctx, **args)
        except (MemcgsimError, TypeError, KeyError) as e:
            raise _err(node, f"setup step {sname}: {e}") from None
    for label, pname, args, node in paths:
        try:
            _, gen = PATHS[pname].start(m, ctx, **args)
            gen.close()
        except (MemcgsimError, TypeError, KeyError) as e:
            raise _err(node, f"path {label}: {e}") from None
    return m
