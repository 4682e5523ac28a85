"""Counterexamples: the failing schedule as numbered steps with the pages it changed, and the
shortest schedule that breaks the same rule (breadth first over the race set's schedules)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import MemcgsimError
from ..mm.locking import WouldBlock
from .problem import Problem, end_problem, from_error, state_problem
from .run import RaceSet, Run, replay, snapshot


@dataclass(frozen=True)
class Counterexample:
    """A schedule that breaks a rule."""

    #: the broken rule, with the dumps of the pages the steps changed
    problem: Problem
    #: the steps as path indices
    schedule: list[int]
    #: the steps, numbered in order: "3. migrate #2: takes page lock of pfn 512"
    steps: list[str]


def counterexample(run: Run, problem: Problem, snap: bytes | None) -> Counterexample:
    """The run's schedule as numbered steps, and the problem with the pages the paths changed
    (compared with the machine the setup left)."""
    k = run.m.k
    k0 = Run(run.race, run.inject, snap).m.k
    changed = np.zeros(k.nr_pages, dtype=bool)
    for now, then in ((k.mem_map.arrays(), k0.mem_map.arrays()),
                      (k.pc.arrays(), k0.pc.arrays())):
        for name, arr in now.items():
            changed |= arr.view(np.ndarray) != then[name]
    pfns = np.flatnonzero(changed).tolist()
    # a freed THP changes 512 pages: show the head, not its tails
    pages = [k.dump_page(pfn) for pfn in pfns
             if not (pfn % 512 and changed[pfn - pfn % 512])][:8]
    return Counterexample(problem.with_pages(pages), [i for i, _ in run.log], _numbered(run))


def _numbered(run: Run) -> list[str]:
    if not run.log:
        return ["0. (no path has run: the setup's own operations left this state)"]
    width = max(len(x) for x in run.labels)
    seen = [0] * len(run.labels)
    lines = []
    for n, (i, what) in enumerate(run.log):
        seen[i] += 1
        lines.append(f"{n + 1}. {run.labels[i]:<{width}} #{seen[i]}: {what}")
    return lines


def shortest_counterexample(race: RaceSet, inject, kind: str,
                            limit: int) -> Counterexample | None:
    """Breadth first (states cached): the shortest schedule, of at most limit steps, that
    breaks the rule `kind` (a Problem's kind: an invariant name or an error class)."""
    inject = frozenset(inject)
    seen = set()
    queue = deque([[]])
    snap = snapshot(race, inject)
    while queue:
        prefix = queue.popleft()
        try:
            run = replay(race, inject, prefix[:-1], snap)
            if prefix:
                run.step(prefix[-1], fresh=True)
        except WouldBlock:
            continue
        except MemcgsimError as e:
            problem = from_error(e)
            if problem.kind == kind:
                return counterexample(run, problem, snap)
            continue
        enabled = run.enabled()
        problem = end_problem(run) if not enabled else state_problem(run, False)
        if problem:
            if problem.kind == kind:
                return counterexample(run, problem, snap)
            continue
        key = run.fingerprint()
        if key in seen or len(prefix) >= limit:
            continue
        seen.add(key)
        queue.extend([*prefix, t] for t in enabled)
    return None


__all__ = ["Counterexample", "counterexample", "shortest_counterexample"]
