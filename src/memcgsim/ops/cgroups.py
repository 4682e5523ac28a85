"""Cgroups and their files: set, rmdir, open, fd_write, close, report, expect."""

from __future__ import annotations

from ..errors import Errno
from ..scenario import files as cgf
from ..scenario.marks import (
    did_you_mean,
    error_at,
    read_cgroup_path,
    read_file_name,
    read_name,
    read_text,
    show,
)
from .op import Arg, Op, errno_name

CGROUP = Arg("cgroup", "cgroup", "the cgroup")
FD = Arg("fd", "fd", "the open file (open ... as:)")


def _set_load(b, a, node):
    vals = {"cgroup": b.cgroup(a)}
    writes = []
    for name, (fk, fv) in a.items():
        if name == "cgroup":
            continue
        cgf.file_ok(fk, name, b.machine, writable=True, path=vals["cgroup"])
        writes.append((name, cgf.value_text(fv, name)))
    if not writes:
        raise error_at(node, "set: name at least one control file to write")
    vals["writes"] = tuple(writes)
    return vals


def _set(d, step, t):
    for name, text in step.args["writes"]:
        ret = d.m.write_file(step.args["cgroup"], name, text)
        if ret:
            return errno_name(ret)
    return None


SET = Op("set", "write control files of a cgroup at run time, in the order given (each "
                "other key is a writable file of the interface, with its value)",
         (CGROUP,),
         _set_load, _set,
         lambda p, step, t: [f"set {p.cg(step.args['cgroup'])} {name}|{text}"
                             for name, text in step.args["writes"]],
         open_keys=True)


def _rmdir_load(b, a, node):
    path = b.cgroup(a)
    if path == "/":
        raise error_at(a["cgroup"][1], "the root cgroup cannot be removed")
    b.cgroups.discard(path)
    return {"cgroup": path}


RMDIR = Op("rmdir", "remove the cgroup; EBUSY while it has tasks or children",
           (CGROUP,), _rmdir_load,
           lambda d, step, t: errno_name(d.m.rmdir(step.args["cgroup"])),
           lambda p, step, t: [f"rmdir {p.cg(step.args['cgroup'])}"])


def _open_load(b, a, node):
    vals = {"cgroup": b.cgroup(a)}
    name = read_file_name(a["file"][1])
    if name not in ("memory.peak", "memory.swap.peak"):
        raise error_at(a["file"][1], f"open: only memory.peak and memory.swap.peak keep "
                                     f"per-file state, not {show(name)}")
    cgf.file_ok(a["file"][1], name, b.machine, writable=False, path=vals["cgroup"])
    vals["file"] = name
    vals["as"] = read_name(a["as"][1], "as")
    if vals["as"] in b.fds:
        raise error_at(a["as"][1], f"file {show(vals['as'])} is open already")
    b.fds.add(vals["as"])
    return vals


def _open(d, step, t):
    a = step.args
    d.fds[a["as"]] = d.m.open_file(a["cgroup"], a["file"])


OPEN = Op("open", "open memory.peak or memory.swap.peak: 6.12's per-file peak resets",
          (CGROUP, Arg("file", "cgroup file", "memory.peak or memory.swap.peak"),
           Arg("as", "new fd", "the open file's name")),
          _open_load, _open,
          lambda p, step, t: [f"open {p.token(step, step.args['as'], 'fd')} "
                              f"/sys/fs/cgroup{p.cg(step.args['cgroup'])}/"
                              f"{step.args['file']}"])


def _fd_load(b, a, node, closes=False):
    vals = {"fd": read_name(a["fd"][1], "fd")}
    if vals["fd"] not in b.fds:
        raise error_at(a["fd"][1],
                       f"fd {show(vals['fd'])} is not open (open it with open ... as:)")
    if closes:
        b.fds.discard(vals["fd"])
    else:
        vals["text"] = read_text(a["text"][1], "fd_write.text")
    return vals


FD_WRITE = Op("fd_write", "write to an open file (reset: a new peak from now on)",
              (FD, Arg("text", "text", "what to write")), _fd_load,
              lambda d, step, t: errno_name(d.fds[step.args["fd"]].write(step.args["text"])),
              lambda p, step, t: [f"fd_write {step.args['fd']}|{step.args['text']}"])


def _close(d, step, t):
    d.fds.pop(step.args["fd"]).close()


CLOSE = Op("close", "close an open file", (FD,),
           lambda b, a, node: _fd_load(b, a, node, closes=True), _close,
           lambda p, step, t: [f"close {step.args['fd']}"])


def _report_load(b, a, node):
    vals = {"label": read_text(a["label"][1], "report.label")}
    paths = []
    if "cgroups" in a:
        lst = a["cgroups"][1]
        if not isinstance(lst.value, list):
            raise error_at(lst, "report.cgroups: want a list of cgroup paths")
        for p in lst.value:
            path = read_cgroup_path(p)
            if path not in b.cgroups:
                raise error_at(p, f"cgroup {path} is not defined in cgroups:")
            paths.append(path)
    vals["cgroups"] = tuple(paths) or tuple(sorted(b.cgroups - {"/"})) or ("/",)
    return vals


def _report(d, step, t):
    snap = {}
    for path in step.args["cgroups"]:
        if path not in d.m.k.memcg_by_name:
            continue
        snap[path] = {name: d.m.read_file(path, name)
                      for name in d.m.fs.readable(path) if name.startswith("memory.")}
    d.result.reports.append({"label": step.args["label"], "step": len(
        d.result.steps) - 1, "line": step.where.line, "cgroups": snap})


REPORT = Op("report", "snapshot every memory.* file of these cgroups",
            (Arg("label", "text", "the snapshot's name"),
             Arg("cgroups", "name", "cgroup paths; every cgroup of the file", False)),
            _report_load, _report,
            lambda p, step, t: ["dump " + " ".join(p.cg(c) for c in step.args["cgroups"])],
            reads_only=True)

# ------------------------------------------------------------------------------ expect


def _expect_load(b, a, node):
    if "fd" in a:
        if set(a) != {"fd", "value"}:
            raise error_at(node, "expect: an open file's check is {fd: NAME, value: V}")
        fd = read_name(a["fd"][1], "fd")
        if fd not in b.fds:
            raise error_at(a["fd"][1], f"fd {show(fd)} is not open")
        return {"fd": fd, "checks": (cgf.expected_value(f"fd {fd}", a["value"][1]),)}
    if "task" in a or "state" in a:
        if "task" not in a or "state" not in a or len(a) != 2:
            raise error_at(node, "expect: a task check is {task: NAME, state: "
                                 "alive|exited|killed}")
        name = b.task(a)
        st = a["state"][1]
        if st.value not in ("alive", "exited", "killed"):
            raise error_at(st, f"state: want alive, exited or killed, not {show(st.value)}")
        return {"task": name, "state": st.value}
    if "step_error" in a:
        if len(a) != 1:
            raise error_at(node, "expect: step_error stands alone")
        e = a["step_error"][1]
        names = {x.name for x in Errno} | {"none"}
        if not isinstance(e.value, str) or e.value not in names:
            raise error_at(e, f"step_error: want an errno name like EINVAL or EBUSY, not "
                              f"{show(e.value)}" + did_you_mean(str(e.value), names))
        return {"step_error": e.value}
    if "cgroup" not in a:
        raise error_at(node, "expect: name a cgroup (and files), a task and its state, or "
                             "step_error")
    path = b.cgroup(a)
    return {"cgroup": path, "checks": _file_checks(b, a, node, path)}


def _file_checks(b, a, node, path) -> tuple:
    ms = b.machine
    checks = []
    for key, (kk, kv) in a.items():
        if key == "cgroup":
            continue
        fname = cgf.keyed_file(key)
        cgf.file_ok(kk, fname, ms, writable=False, path=path)
        _, _, file_keys = cgf.interface(ms.kernel, ms.cgroup, ms.swap_accounting, path == "/")
        if fname in cgf.KEYED and fname == key:
            raise error_at(kk, f"{key} has many values: name one, as {key}.KEY")
        sub = key[len(fname) + 1:]
        if fname in file_keys and sub not in file_keys[fname]:
            raise error_at(kk, f"{fname} has no key {show(sub)}"
                           + did_you_mean(sub, file_keys[fname]))
        checks.append(cgf.expected_value(key, kv))
    if not checks:
        raise error_at(node, "expect: name at least one file to check")
    return tuple(checks)


def _expect(d, step, t):
    a = step.args
    idx = len(d.result.steps) - 1
    out = d.result.checks
    if "state" in a:
        task = d.tasks.get(a["task"])
        state = task.state if task is not None else "never created"
        out.append(cgf.CheckResult(idx, step.where, None, f"task {a['task']}", a["state"], state,
                               state == a["state"]))
    elif "step_error" in a:
        seen = d.last_error or "none"
        out.append(cgf.CheckResult(idx, step.where, None, "step_error", a["step_error"], seen,
                               seen == a["step_error"]))
    elif "fd" in a:
        c = step.checks[0]
        fd = d.fds.get(a["fd"])
        value = int(fd.read()) if fd is not None else "not open"
        out.append(cgf.CheckResult(idx, c.where, None, c.key, c.text, value,
                               fd is not None and c.holds(value)))
    else:
        for c in step.checks:
            value = cgf.read_value(d.m, a["cgroup"], c.key)
            ok = value is not None and c.holds(value)
            out.append(cgf.CheckResult(idx, c.where, a["cgroup"], c.key, c.text, value, ok))


def _expect_guest(p, step, t):
    a = step.args
    if "state" in a:
        return [f"state {t}"]
    if "fd" in a:
        return [f"fd_read {a['fd']}"]
    if "cgroup" in a:
        return [f"dump {p.cg(a['cgroup'])}"]
    return []


EXPECT = Op("expect", "check values: a cgroup's files, a task's state, the last step's error, "
                      "or an open file",
            (Arg("cgroup", "cgroup", "the cgroup whose files (FILE or FILE.KEY: V) are "
                                     "checked", False),
             Arg("task", "name", "a task, with state", False),
             Arg("state", "text", "alive, exited or killed", False),
             Arg("step_error", "text", "the errno name of the last step, or none", False),
             Arg("fd", "name", "an open file, with value", False),
             Arg("value", "text", "its value", False)),
            _expect_load, _expect, _expect_guest, open_keys=True, reads_only=True)

OPS = (SET, RMDIR, OPEN, FD_WRITE, CLOSE, REPORT, EXPECT)
