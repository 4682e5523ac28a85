"""Race files, fuzzed: no input to `memcgsim explore RACEFILE.yaml` crashes or hangs it.

Race files are drawn structure-aware: plausible races built from the vocabulary of
memcgsim.races (every setup step and path, with the names a setup gives) and the example race
files, then mutated (wrong types, missing and extra keys, huge and negative numbers, unicode,
long strings, YAML anchors, aliases and tags, references to things that do not exist) and
written out as YAML, sometimes with the text itself damaged. Each is run in-process through
the command line, and:

- the exit status is 0, 1 or 2;
- exit 2 comes with one line on stderr, `memcgsim: FILE:LINE:COL: what is wrong`, that quotes
  no internal object and no value whole past a few hundred characters, and nothing on stdout;
- no traceback, no hang (each run has a time limit), output that a UTF-8 terminal can print;
- the same input gives the same output again (the timings masked).

HYPOTHESIS_PROFILE (tests/conftest.py) sets how many files: "default" some 10 seconds' worth,
"ci" about a minute', "long" about twenty. RACEFILE_FUZZ_MAX_STATES (default "20 40")
sets the --max-states values the runs draw from; larger ones search deeper, and slower.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from fuzz_yaml import ASCII, Anchor, Raw
from memcgsim.cli import main
from memcgsim.races import INJECTIONS, PATHS, SETUP_STEPS

EXAMPLES = Path(__file__).parent.parent / "examples" / "races"

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
FUZZ = settings(
    max_examples={"default": 500, "ci": 2000, "long": 50000}.get(PROFILE, 500),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
#: a run longer than this is a hang (a race machine is small, and --max-states is too)
#: a hang is a run past this; 60 s because shortest_counterexample replays a long injected
#: race from its setup and once took over 30 s on a loaded 2-core machine (an open item)
TIME_LIMIT = 60.0
MAX_STATES = tuple(os.environ.get("RACEFILE_FUZZ_MAX_STATES", "20 40").split())

# ------------------------------------------------------------------------------------------
# YAML text, written by hand so that it can carry tags, anchors and aliases (tests/fuzz_yaml.py,
# shared with the scenario fuzzer): a string is plain only if it looks like a name

emit = ASCII.flow


def emit_doc(doc) -> str:
    """A race file: top-level keys one a line, list items one a line (block style)."""
    if not isinstance(doc, dict):
        return emit(doc) + "\n"
    lines = []
    for key, value in doc.items():
        if isinstance(value, list) and value:
            lines.append(f"{emit(key)}:")
            lines.extend(f"  - {emit(item)}" for item in value)
        else:
            lines.append(f"{emit(key)}: {emit(value)}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# the vocabulary: names a setup gives, and the values each argument takes

TASKS = ["T", "U", "C"]
VMAS = ["v", "w", "C:v", "big"]
FILES = ["/data/f", "/data/g", "/dev/shm/gem", "/hugetlbfs/f"]
CGROUPS = ["/", "/a", "/b", "/a/c"]
CGROUP_FILES = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
                "memory.move_charge_at_immigrate", "memory.use_hierarchy", "memory.force_empty",
                "memory.soft_limit_in_bytes", "memory.swappiness", "memory.oom_control",
                "memory.max", "memory.high", "memory.low", "memory.min", "memory.swap.max",
                "memory.reclaim", "cgroup.subtree_control", "cgroup.procs", "memory.oom.group"]
EXPECT_KEYS = ["memory.usage_in_bytes", "memory.current", "memory.stat.cache",
               "memory.stat.rss", "memory.stat.mapped_file", "memory.stat.file",
               "memory.stat.anon", "memory.events.max", "memory.max_usage_in_bytes",
               "memory.swap.current", "memory.failcnt", "cgroup.controllers",
               "cgroup.subtree_control", "memory.events.local.max", "memory.swap.events.max",
               "memory.numa_stat.anon", "memory.oom_control.oom_kill_disable", "memory.peak",
               "memory.memsw.usage_in_bytes", "memory.stat.nope", "memory.stat", "nope"]

small = st.integers(0, 8)
#: values of the wrong kind, out of bounds, or odd YAML
#: numbers at and past the bounds of a race machine, and past what YAML here may hold
NUMBERS = [-1, 0, 1, 2, 511, 512, 513, 1023, 1024, 4095, 4096, 4097, 8192, 65536, 10 ** 6,
           2 ** 31, 10 ** 12, 2 ** 62, 2 ** 63 - 1, 2 ** 64, 2 ** 65, -2 ** 63, 10 ** 30]
JUNK = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from(NUMBERS),
    st.integers(-2 ** 70, 2 ** 70),
    st.floats(), st.text(max_size=12),
    st.sampled_from(["", " ", "x" * 300, "/" + "x" * 5000, "y" * 100_000, "\x00", "\x1b[31m",
                     "a\nb", "\ud800", "\u202e", "\u00e9t\u00e9", "\U0001f600", "/a/../b",
                     "//", "/a/", "C:v:v", "T\t"]),
    st.lists(st.integers(0, 3), max_size=3), st.dictionaries(st.sampled_from("abc"), small,
                                                             max_size=2),
    st.sampled_from([Raw(t) for t in (
        "!!timestamp 2001-13-99", "!!timestamp x", "2001-12-14t21:59:43.10-05:00",
        "!!binary aGVsbG8=", "!!binary '%%%'", "!!float nan", ".inf", "-.inf", "~", "0x1F",
        "0o17", "017", "1_000", "0b101", "190:20:30", "!!str 5", "!!int x", "!!int 0x_",
        "!!bool maybe", "!!null x", "!foo bar", "!!set {a, b}", "!!omap [{a: 1}]",
        "!!python/object:os.system x", "*nowhere", "&self [*self]", "[*self2, &self2 1]",
        "'unterminated", "{a: 1", "]", "? complex\n", "@x", "`x", "%x", "|\n  block",
        "!!int 1" + "0" * 5000, "9" * 5000, "1e400", "-0", "+1", ".5")]),
)


def counts():
    return st.one_of(small, small, small, st.sampled_from([0, 64, 511, 512, 4096]))


#: values a cgroup file is written
SETTINGS = st.sampled_from([0, 1, 2, 3, 4096, 1 << 20, "1M", "4K", "max", "0", "-1", "lots",
                            "1 2", 2 ** 64, "+memory", "-memory", "+memory +io"])


#: the arguments Draw.value knows (any other is drawn as a page count)
KNOWN_ARGS = {"path", "cgroup", "file", "steal", "task", "child", "name", "vma", "value", "node",
              "tmpfs", "hugepage", "shared", "write", "page", "pages", "offset", "index",
              "pgoff", "steal_index"}


def test_the_fuzzer_knows_every_argument():
    """A new argument in the vocabulary needs values of its own here."""
    args = {a for _, req, opt in SETUP_STEPS.values() for a in req + opt}
    args |= {a for spec in PATHS.values() for a in spec.required + spec.optional}
    assert args <= KNOWN_ARGS


#: the arguments that give a new name (a cgroup, task, VMA or file), and its kind
CREATES = {("mkdir", "path"): "cgroups", ("spawn", "task"): "tasks",
           ("fork", "child"): "tasks", ("mmap_anon", "name"): "vmas",
           ("mmap_file", "name"): "vmas", ("create", "file"): "files"}
#: the arguments that refer to a name given before, and its kind
REFERS = {"path": "cgroups", "cgroup": "cgroups", "file": "files", "steal": "files",
          "task": "tasks", "child": "tasks", "name": "vmas", "vma": "vmas"}
FRESH = {"cgroups": ["/n", "/a/n", "/n/m"], "tasks": ["N", "M"], "vmas": ["n", "m"],
         "files": ["/data/n", "/dev/shm/n", "/hugetlbfs/n"]}


class Draw:
    """Draws the values of one race file: mostly the names its setup has given so far
    (pools), junk at a rate the file's wildness sets."""

    def __init__(self, draw, pools: dict, junk_rate: int):
        self.draw, self.pools, self.junk_rate = draw, pools, junk_rate
        self.nodes = 1

    def junk(self) -> bool:
        return self.draw(st.integers(0, 99)) < self.junk_rate

    def name(self, kind: str, step: str = ""):
        if self.junk():
            return self.draw(JUNK)
        everyone = {"tasks": TASKS, "vmas": VMAS, "files": FILES, "cgroups": CGROUPS}[kind]
        pool = [x for x in self.pools.get(kind, ()) if step != "mkdir" or x != "/"]
        if not pool or not self.draw(st.integers(0, 9)):
            return self.draw(st.sampled_from(everyone))
        return self.draw(st.sampled_from(pool))

    def fresh(self, kind: str):
        """A name a step gives: mostly a new one (it joins the pool), sometimes one taken."""
        if self.junk():
            return self.draw(JUNK)
        if not self.draw(st.integers(0, 9)):
            return self.name(kind)
        name = self.draw(st.sampled_from(FRESH[kind])) + str(len(self.pools[kind]))
        self.pools[kind].append(name)
        return name

    def page(self):
        if self.junk():
            return self.draw(JUNK)
        ref = ({"file": self.name("files")} if self.draw(st.booleans()) or
               not self.pools.get("vmas") else {"vma": self.name("vmas")})
        if self.draw(st.booleans()):
            ref["index" if "file" in ref else "offset"] = self.draw(
                st.sampled_from([0, 0, 0, 1, 2, 511, 4096]))
        if self.junk_rate and not self.draw(st.integers(0, 20)):
            ref["vma" if "file" in ref else "file"] = "v"
        return ref

    def value(self, arg: str, step: str = ""):
        """A value of argument arg (of step)."""
        if arg == "page":
            return self.page()
        if (step, arg) in CREATES:
            return self.fresh(CREATES[step, arg])
        if self.junk():
            return self.draw(JUNK)
        if (step, arg) == ("set", "file"):
            return self.draw(st.sampled_from(CGROUP_FILES))
        kind = REFERS.get(arg)
        if kind:
            return self.name(kind, step)
        if arg == "value":
            return self.draw(SETTINGS)
        if arg == "node":
            return self.draw(st.integers(0, self.nodes - 1)) if self.draw(
                st.integers(0, 9)) else self.nodes
        if arg in ("tmpfs", "hugepage", "shared", "write"):
            return self.draw(st.booleans())
        return self.draw(counts())              # pages, offset, index, pgoff, steal_index

    def arguments(self, step: str, required: tuple, optional: tuple, alone: bool = True):
        """The arguments of a step or path: the required ones (one sometimes left out), some
        of the optional ones, sometimes one it does not take."""
        args = {}
        for a in required:
            if not self.junk() or self.draw(st.integers(0, 5)):
                args[a] = self.value(a, step)
        for a in optional:
            if self.draw(st.booleans()):
                args[a] = self.value(a, step)
        if self.junk() and not self.draw(st.integers(0, 3)):
            args[self.draw(st.sampled_from(["nmae", "pages", "task", "label", "as",
                                            "x" * 300]))] = self.draw(small)
        if alone and len(required) == 1 and list(args) == [required[0]] and self.draw(
                st.booleans()):
            return args[required[0]]                # `mkdir: /a`
        if not args and not required and self.draw(st.booleans()):
            return None                             # `sync:`
        return args

    def usable(self, required: tuple, step: str = "") -> bool:
        """Whether the names the arguments refer to have been given (in a tame file)."""
        return bool(self.junk_rate) or all(
            self.pools.get(kind) for a in required if (step, a) not in CREATES
            for kind in [REFERS.get(a)] if kind)

    def setup_step(self):
        name = self.draw(st.sampled_from([s for s, (_, req, _) in sorted(SETUP_STEPS.items())
                                          if self.usable(req, s)]))
        _, required, optional = SETUP_STEPS[name]
        step = {name: self.arguments(name, required, optional)}
        if name == "fork" and isinstance(step[name], dict) and isinstance(
                step[name].get("child"), str):
            self.pools["vmas"] += [f"{step[name]['child']}:{v}" for v in self.pools["vmas"]]
        return step

    def path(self, i: int):
        name = self.draw(st.sampled_from([p for p, spec in sorted(PATHS.items())
                                          if self.usable(spec.required)]))
        spec = PATHS[name]
        path = {"path": name, "label": f"{name}-{i}"}
        if self.junk():
            path["label"] = self.draw(st.one_of(st.sampled_from(["p1", name]), JUNK))
        args = self.arguments(name, spec.required, spec.optional, alone=False)
        if isinstance(args, dict):
            path.update(args)
        if name == "migrate" and "node" not in path and not self.junk_rate:
            path["node"] = self.nodes - 1           # its default, 1, is not on every machine
        return path

    def machine(self):
        draw = self.draw
        profile = draw(st.sampled_from(["3.17", "6.1", "6.12"]))
        nodes = self.nodes = draw(st.sampled_from([1, 1, 2]))
        m = {"memory_pages": draw(st.sampled_from([1024, 1024, 512, 2048])) * nodes,
             "nodes": nodes, "swap_pages": draw(st.sampled_from([0, 16, 16, 64])),
             "profile": profile}
        if profile == "6.1":
            m["cgroup"] = draw(st.sampled_from(["v1", "v2"]))
        if draw(st.booleans()):
            m["thp"] = draw(st.booleans())
        if draw(st.integers(0, 3)) == 0:
            m["cpus"] = draw(st.sampled_from([1, 2, 4]))
        if draw(st.integers(0, 3)) == 0:
            m["swap_accounting"] = draw(st.booleans())
        if self.junk():
            m[draw(st.sampled_from(sorted(m) + ["numa", "memory"]))] = draw(JUNK)
        return m

    def expectation(self, labels: list):
        draw = self.draw
        if draw(st.booleans()):
            label = self.draw(JUNK) if self.junk() else draw(st.sampled_from(labels))
            values = draw(st.one_of(st.lists(st.one_of(st.integers(-1, 8), st.none()),
                                             max_size=3), st.integers(0, 4), st.none()))
            if self.junk():
                values = draw(JUNK)
            return {"returns": {label if isinstance(label, str) else "x": values}}
        check = {"cgroup": self.name("cgroups")}
        for _ in range(draw(st.integers(1, 2)) if not self.junk() else 0):
            check[draw(st.sampled_from(EXPECT_KEYS))] = self.draw(JUNK) if self.junk() else \
                draw(st.sampled_from([0, 4096, "4KiB", "0 ±4096", "8K ± 10%",
                                      {"min": 0, "max": 8192}, {"min": 5}, "x ± y",
                                      "1 ± 200%"]))
        return check


def _base(steps: list) -> tuple[list, dict]:
    """A setup and the names it gives."""
    pools: dict = {"tasks": [], "vmas": [], "files": [], "cgroups": ["/"]}
    for step in steps:
        (name, args), = step.items()
        args = args if isinstance(args, dict) else {} if args is None else {
            SETUP_STEPS[name][1][0]: args}
        for arg, kind in (("path", "cgroups"), ("task", "tasks"), ("child", "tasks"),
                          ("name", "vmas"), ("file", "files")):
            if arg in args and name != "set" and args[arg] not in pools[kind]:
                pools[kind].append(args[arg])
        if name == "fork":
            pools["vmas"] += [f"{args['child']}:{v}" for v in pools["vmas"]]
    return steps, pools


#: setups that leave something to race on (the standard race sets' shapes)
BASES = [_base(steps) for steps in [
    [{"mkdir": "/a"}, {"spawn": {"task": "T", "cgroup": "/a"}}, {"create": "/data/f"},
     {"write": {"task": "T", "file": "/data/f", "pages": 1}}, {"sync": None},
     {"mmap_file": {"task": "T", "file": "/data/f", "name": "v", "pages": 1}},
     {"touch": {"task": "T", "vma": "v", "write": False}}],
    [{"mkdir": "/a"}, {"spawn": {"task": "T", "cgroup": "/a"}},
     {"mmap_anon": {"task": "T", "pages": 2, "name": "v"}}, {"touch": {"task": "T", "vma": "v"}}],
    [{"mkdir": "/a"}, {"mkdir": "/b"}, {"spawn": {"task": "T", "cgroup": "/a"}},
     {"spawn": {"task": "U", "cgroup": "/b"}}, {"create": {"file": "/data/f"}},
     {"create": {"file": "/data/g"}}, {"write": {"task": "T", "file": "/data/f", "pages": 1}},
     {"write": {"task": "U", "file": "/data/g", "pages": 1}}, {"sync": None}],
    [{"mkdir": "/a"}, {"spawn": {"task": "T", "cgroup": "/a"}},
     {"mmap_anon": {"task": "T", "pages": 2, "name": "v"}}, {"touch": {"task": "T", "vma": "v"}},
     {"reclaim_range": {"vma": "v", "pages": 2}}, {"fork": {"task": "T", "child": "C"}}],
    [{"mkdir": "/a"}, {"spawn": {"task": "T", "cgroup": "/a"}},
     {"create": {"file": "/dev/shm/gem", "tmpfs": True, "node": 0}},
     {"write": {"task": "T", "file": "/dev/shm/gem", "pages": 1}},
     {"reclaim_file": {"file": "/dev/shm/gem"}}],
    [{"mkdir": "/a"}, {"spawn": {"task": "T", "cgroup": "/a"}},
     {"create": {"file": "/hugetlbfs/f"}}],
    [{"mkdir": "/a"}, {"spawn": {"task": "T", "cgroup": "/a"}},
     {"mmap_anon": {"task": "T", "pages": 512, "name": "big", "hugepage": True}},
     {"touch": {"task": "T", "vma": "big", "pages": 1}}],
    [{"mkdir": "/a"}, {"mkdir": "/b"},
     {"set": {"cgroup": "/b", "file": "memory.move_charge_at_immigrate", "value": 3}},
     {"spawn": {"task": "T", "cgroup": "/a"}},
     {"mmap_anon": {"task": "T", "pages": 2, "name": "v"}},
     {"touch": {"task": "T", "vma": "v", "pages": 1}}],
]]
EXAMPLE_DOCS = [yaml.safe_load(p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))]


@st.composite
def race_docs(draw):
    """A race file, as data: tame (what a user would write, names and all), a little wild or
    very wild (junk values, mutations)."""
    # 0: what a user would write (names and all); 1: that with one thing changed; 2: junk
    # throughout, changes and damage to the text
    wild = draw(st.sampled_from([0, 0, 1, 1, 2]))
    junk_rate = 25 if wild == 2 else 0
    steps, pools = copy.deepcopy(draw(st.sampled_from(BASES)))
    d = Draw(draw, pools, junk_rate)
    if draw(st.integers(0, 5)) == 0:
        doc = copy.deepcopy(draw(st.sampled_from(EXAMPLE_DOCS)))
    else:
        doc = {"race": 1}
        if draw(st.booleans()):
            doc["name"] = draw(JUNK) if d.junk() else draw(st.sampled_from(["mine", "a race"]))
        if draw(st.integers(0, 3)) == 0:
            doc["doc"] = draw(JUNK) if d.junk() else "what races"
        doc["machine"] = d.machine()
        for _ in range(draw(st.integers(0, 3))):
            steps.insert(draw(st.integers(0, len(steps))) if wild else len(steps),
                         d.setup_step())
        doc["setup"] = steps
        doc["paths"] = [d.path(i) for i in range(draw(st.integers(1, 4)))]
        names = [p["path"] for p in doc["paths"]]
        for p in doc["paths"]:
            if names.count(p["path"]) == 1 and draw(st.booleans()):
                p.pop("label", None)            # the label defaults to the path's name
        if any(s == {"set": {"cgroup": "/b", "file": "memory.move_charge_at_immigrate",
                             "value": 3}} for s in steps):
            doc["machine"]["profile"], doc["machine"]["cgroup"] = "3.17", "v1"
        if draw(st.integers(0, 2)) == 0:
            labels = [p.get("label", p["path"]) for p in doc["paths"]]
            labels = [x for x in labels if isinstance(x, str)] or ["migrate"]
            doc["expect"] = [d.expectation(labels) for _ in range(draw(st.integers(1, 3)))]
    for _ in range(wild if wild < 2 else draw(st.integers(0, 2))):
        doc = draw(mutated(doc))
    return doc, wild


def _places(v, at=()):
    """Every (path to a value) in a document."""
    yield at
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _places(x, (*at, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _places(x, (*at, i))


def _get(v, at):
    for k in at:
        v = v[k]
    return v


@st.composite
def mutated(draw, doc):
    """The document with one thing changed somewhere: a value replaced by junk, a key taken
    out or added, a list item repeated or dropped, a name changed to one that does not exist,
    or a value given an anchor and repeated elsewhere by an alias."""
    doc = copy.deepcopy(doc)
    places = [p for p in _places(doc) if p]
    if not places:
        return draw(JUNK)
    at = draw(st.sampled_from(places))
    parent, key = _get(doc, at[:-1]), at[-1]
    numbers = [p for p in places if type(_get(doc, p)) is int and p != ("race",)]
    how = draw(st.sampled_from(["number", "number", "junk", "junk", "drop", "add", "repeat",
                                "rename", "alias", "bomb"]))
    if how == "number" and numbers:             # a number past the machine's bounds
        at = draw(st.sampled_from(numbers))
        _get(doc, at[:-1])[at[-1]] = draw(st.sampled_from(NUMBERS))
    elif how == "junk":
        parent[key] = draw(JUNK)
    elif how == "drop":
        del parent[key]
    elif how == "add" and isinstance(parent, dict):
        parent[draw(st.sampled_from(["extra", "race", "paths", "label", "index", "x" * 200]))] \
            = draw(JUNK)
    elif how == "repeat" and isinstance(parent, list):
        parent.insert(key, parent[key])
    elif how == "rename":
        parent[key] = draw(st.sampled_from(["Z", "/nope", "/data/nope", "nov", "C:w", "/a/b/c",
                                            "/dev/shm/none"]))
    elif how == "alias":
        others = [p for p in places if p != at and p[:len(at)] != at and at[:len(p)] != p]
        if others:
            there = draw(st.sampled_from(others))
            first, second = sorted([at, there], key=_order_key(doc))
            a_parent, a_key = _get(doc, first[:-1]), first[-1]
            a_parent[a_key] = Anchor("x", a_parent[a_key])
            b_parent = _get(doc, second[:-1])
            b_parent[second[-1]] = Raw("*x")
    elif how == "bomb":                         # 10**7 values once the aliases are followed
        parent[key] = Raw("[" + ", ".join(["&b0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [
            f"&b{i} [" + ", ".join([f"*b{i - 1}"] * 10) + "]" for i in range(1, 7)]) + "]")
    return doc


def _order_key(doc):
    """Where a value stands in the emitted text: anchors must come before their aliases."""
    order = {p: i for i, p in enumerate(_places(doc))}
    return lambda p: order[p]


@st.composite
def race_texts(draw):
    doc, wild = draw(race_docs())
    text = emit_doc(doc)
    if wild == 2 and draw(st.integers(0, 2)) == 0:        # damage the text itself
        how = draw(st.sampled_from(["cut", "insert", "delete", "line", "indent", "tab"]))
        pos = draw(st.integers(0, len(text)))
        if how == "cut":
            text = text[:pos]
        elif how == "insert":
            text = text[:pos] + draw(st.sampled_from(list(":-{}[],&*!|>'\"%@`#\t\n \\"))) + \
                text[pos:]
        elif how == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 5)):]
        else:
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, max(0, len(lines) - 1)))
            if lines:
                lines[i] = {"line": lines[i] * 2, "indent": "   " + lines[i],
                            "tab": "\t" + lines[i]}[how]
            text = "".join(lines)
    return text


# ------------------------------------------------------------------------------------------
# running one file

class Hang(BaseException):
    """A run took longer than TIME_LIMIT (a BaseException: nothing in the model catches it)."""


def _on_alarm(signum, frame):
    raise Hang(f"no answer after {TIME_LIMIT} s")


TIMING = re.compile(r"\d+\.\d{3} s \([\d,]+ states/s\)")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) in-process: (exit status, stdout, stderr), within TIME_LIMIT."""
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return status, out.getvalue(), err.getvalue()


def check_run(path: str, text: str, options: list[str], note=note) -> tuple[int, str, str]:
    """Run the race file and check the properties; returns what the run gave."""
    argv = ["explore", *options, path]
    note(f"argv: {argv}")
    status, out, err = run_cli(argv)
    note(f"exit {status}\nstdout: {out[:2000]}\nstderr: {err[:2000]}")
    assert status in (0, 1, 2), status
    for stream in (out, err):
        assert "Traceback" not in stream
        assert " object at 0x" not in stream        # an internal object's repr
        stream.encode("utf-8")                      # a UTF-8 terminal can print it
    if status == 2:
        assert out == ""
        m = re.fullmatch(r"memcgsim: (.*?):(\d+):(\d+): ([^\n]+)\n", err)
        assert m, err[:500]
        assert m.group(1) == path
        line, col = int(m.group(2)), int(m.group(3))
        assert 1 <= line <= text.count("\n") + 2 and col >= 1
        assert len(m.group(4)) <= 500, "a message quotes too much"
    else:
        assert err == ""
        assert out
    again = run_cli(argv)
    assert (again[0], TIMING.sub("T", again[1]), again[2]) == (status, TIMING.sub("T", out),
                                                               err), "a rerun differs"
    return status, out, err


@pytest.fixture(scope="module")
def race_path():
    with tempfile.TemporaryDirectory(prefix="racefile-fuzz-") as d:
        yield os.path.join(d, "race.yaml")


@FUZZ
@given(text=race_texts(), options=st.one_of(
    st.sampled_from(MAX_STATES).map(lambda n: ["--max-states", n]),
    st.sampled_from(MAX_STATES).map(lambda n: ["--max-states", n, "--no-por"]),
    st.integers(0, 3).map(lambda s: ["--random", "2", "--seed", str(s)]),
    st.sampled_from(sorted(INJECTIONS)).map(lambda b: ["--max-states", "20", "--inject", b])))
def test_no_race_file_crashes_or_hangs_explore(race_path, text, options):
    note(f"race file:\n{text[:5000]}")
    with open(race_path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(text)
    status, out, err = check_run(race_path, text, options)
    event(f"exit {status}")
    if status == 2:
        event("refused: " + re.sub(r"[0-9'\"].*", "", err.split(": ", 2)[-1])[:40])


def test_the_fuzzer_reaches_the_explorer(race_path):
    """Not every file drawn is a mistake: the strategy also makes races that run."""
    for base, _ in BASES[:2]:
        doc = {"race": 1, "machine": {"memory_pages": 1024, "nodes": 2, "swap_pages": 16},
               "setup": base, "paths": [{"path": "migrate", "page": {"file": "/data/f"}}
                                        if "/data/f" in json.dumps(base) else
                                        {"path": "munmap", "task": "T", "vma": "v"}]}
        text = emit_doc(doc)
        Path(race_path).write_text(text)
        assert check_run(race_path, text, ["--max-states", "40"], print)[0] == 0, text


def test_the_same_output_under_another_hash_seed(tmp_path):
    """Byte-identical output on a rerun does not depend on the interpreter's string hashing
    (set order): two fresh interpreters, two seeds."""
    example = (EXAMPLES / "migrate-vs-truncate.yaml").read_text()
    label, file = tmp_path / "label.yaml", tmp_path / "file.yaml"
    label.write_text(example.replace("migrate: [0, 1]", "migrat: [0, 1]"))
    file.write_text(example.replace("memory.stat.cache", "memory.stats.cache"))
    runs = []
    for seed in ("0", "1"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = []
        for f in (label, file, EXAMPLES / "migrate-vs-truncate.yaml"):
            p = subprocess.run([sys.executable, "-m", "memcgsim", "explore", "--max-states",
                                "40", str(f)], capture_output=True, text=True, env=env,
                               timeout=120)
            out.append((p.returncode, TIMING.sub("T", p.stdout), p.stderr))
        runs.append(out)
    assert runs[0] == runs[1]
    assert [status for status, _, _ in runs[0]] == [2, 2, 0]
    assert "did you mean 'migrate'" in runs[0][0][2] and "did you mean" in runs[0][1][2]
