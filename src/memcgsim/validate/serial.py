"""Parse what the guest printed on its result port (the "@@" lines of workload.c and job.sh)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GuestScenario:
    """What one scenario showed on the real kernel, by step index."""

    index: int
    begun: bool = False
    ended: bool = False
    #: step -> "ok", an errno name or "skipped" (the first non-ok one when a step wrote twice)
    outcomes: dict = field(default_factory=dict)
    #: step -> guest cgroup path -> file name -> text (lines joined with "\n")
    files: dict = field(default_factory=dict)
    #: step -> task -> alive | exited | killed
    states: dict = field(default_factory=dict)
    #: step -> value read from an open file
    fd_values: dict = field(default_factory=dict)
    #: step -> guest cgroup path -> (ms until the files stopped changing, reads, settled)
    settle: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


@dataclass
class GuestOutput:
    info: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    scenarios: dict = field(default_factory=dict)
    done: bool = False


def parse(text: str) -> GuestOutput:
    out = GuestOutput()

    def scen(n: str) -> GuestScenario:
        i = int(n)
        return out.scenarios.setdefault(i, GuestScenario(i))

    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line.startswith("@@"):
            continue
        tag, _, rest = line.partition(" ")
        try:
            if tag == "@@I":
                words = rest.split(" ", 2)
                if words[0].isdigit() and len(words) >= 2:
                    scen(words[0]).info[words[1]] = words[2] if len(words) > 2 else ""
                else:
                    key, _, value = rest.partition(" ")
                    out.info[key] = value
            elif tag == "@@E":
                out.errors.append(rest)
            elif tag == "@@D":
                out.done = True
            elif tag == "@@S":
                n, what = rest.split()
                s = scen(n)
                s.begun |= what == "begin"
                s.ended |= what == "end"
            elif tag == "@@R":
                n, step, outcome = rest.split()
                s, i = scen(n), int(step)
                if s.outcomes.get(i, "ok") == "ok":
                    s.outcomes[i] = outcome
            elif tag == "@@F":
                n, step, cg, name = rest.split()
                scen(n).files.setdefault(int(step), {}).setdefault(cg, {})[name] = ""
            elif tag == "@@L":
                n, step, cg, name, value = rest.split(" ", 4)
                files = scen(n).files.setdefault(int(step), {}).setdefault(cg, {})
                old = files.get(name, "")
                files[name] = f"{old}\n{value}" if old else value
            elif tag == "@@T":
                n, step, task, state = rest.split()
                scen(n).states.setdefault(int(step), {})[task] = state
            elif tag == "@@W":
                n, step, cg, ms, reads, how = rest.split()
                scen(n).settle.setdefault(int(step), {})[cg] = (int(ms), int(reads),
                                                                how == "settled")
            elif tag == "@@V":
                n, step, _fd, value = rest.split()
                scen(n).fd_values[int(step)] = int(value)
        except ValueError:
            out.errors.append(f"unreadable guest line: {line!r}")
    return out
