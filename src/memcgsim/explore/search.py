"""The searches: depth first over every schedule (state caching, sleep sets), then the
shortest counterexample; or seeded random walks, for race sets too large to enumerate."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..errors import Deadlock, MemcgsimError
from ..mm.locking import WouldBlock
from .counterexample import Counterexample, counterexample, shortest_counterexample
from .footprint import independent
from .problem import Problem, deadlock, end_problem, from_error, state_problem
from .run import RaceSet, Run, lockname, replay, snapshot


@dataclass
class Outcome:
    race: str
    #: distinct states (machine, locks and every path's frames)
    states: int = 0
    #: arrivals at a state where every path has ended
    schedules: int = 0
    #: steps run to reach new children (replays of a prefix not counted)
    transitions: int = 0
    #: machines rebuilt from the setup snapshot to branch, and the steps they ran again
    replays: int = 0
    replayed_steps: int = 0
    #: fingerprints of the machine (and locks) at the end of the complete schedules
    finals: set = field(default_factory=set)
    #: what the paths returned, one tuple (in path order) per distinct end
    results: set = field(default_factory=set)
    #: the broken rule, with the pages the counterexample changed, or None
    problem: Problem | None = None
    #: the failing schedule's steps, numbered in order, or None
    counterexample: list[str] | None = None
    #: the counterexample's schedule as path indices
    schedule: list[int] | None = None
    #: the search stopped at max_states before covering every schedule
    truncated: bool = False

    @property
    def violation(self) -> str | None:
        """The broken rule as printed: "[invariant] message", "VMBugOnPage: ...",
        "deadlock: ..."."""
        return None if self.problem is None else str(self.problem)

    @property
    def pages(self) -> list[str]:
        """The dump of each page the counterexample's steps changed, in the state that broke."""
        return [] if self.problem is None else list(self.problem.pages)

    def found(self, cx: Counterexample) -> None:
        self.problem, self.schedule, self.counterexample = cx.problem, cx.schedule, cx.steps

    def setup_failed(self, e: MemcgsimError) -> None:
        self.problem = from_error(e)
        self.counterexample = ["0. (the race set's setup failed)"]


class _Stop(Exception):
    """The depth-first search ends: a problem found, or max_states reached."""


def explore(race: RaceSet, inject=(), max_states: int = 200000, por: bool = True,
            minimize: bool = True) -> Outcome:
    """Depth first over the schedules of the race's paths, with state caching and (por)
    sleep sets; stops at the first violation, then (minimize) looks for the shortest
    schedule that breaks the same rule."""
    inject = frozenset(inject)
    search = _DepthFirst(race, inject, max_states, por)
    try:
        search.snap = snapshot(race, inject)
        search.visit(Run(race, inject, search.snap), [], {})
    except _Stop:
        pass
    except MemcgsimError as e:              # the setup itself broke
        search.out.setup_failed(e)
    out = search.out
    if out.problem and minimize and out.schedule:
        shortest = shortest_counterexample(race, inject, out.problem.kind, len(out.schedule))
        if shortest is not None and len(shortest.schedule) < len(out.schedule):
            out.found(shortest)
    return out


class _DepthFirst:
    """One depth-first search: the states seen (each with the steps asleep when it was
    reached), the checker's verdicts per kernel state, and the Outcome filled in."""

    def __init__(self, race: RaceSet, inject: frozenset, max_states: int, por: bool):
        self.race, self.inject, self.max_states, self.por = race, inject, max_states, por
        self.out = Outcome(race.name)
        self.seen: dict[int, frozenset] = {}
        self.checked: dict[int, Problem | None] = {}
        #: the machine after the setup, pickled (None: each run sets it up anew)
        self.snap: bytes | None = None

    def fail(self, run: Run, problem: Problem):
        self.out.found(counterexample(run, problem, self.snap))
        raise _Stop

    def visit(self, run: Run, prefix: list[int], sleep: dict) -> None:
        """Explore from run's state (reached by prefix) every enabled step not asleep."""
        out = self.out
        enabled = run.enabled()
        key = run.fingerprint()
        todo = self._arrive(run, enabled, key, sleep)
        if not enabled:
            out.schedules += 1
            out.finals.add(run.machine_key())
            out.results.add(tuple(run.results))
            return
        awake = dict(sleep)
        in_hand, blocked = run, []
        for t in todo:
            if in_hand is not None:
                child, in_hand = in_hand, None
            else:
                child = replay(self.race, self.inject, prefix, self.snap)
                out.replays += 1
                out.replayed_steps += len(prefix)
            out.transitions += 1
            try:
                foot = self._step(child, t, key)
            except WouldBlock as wait:
                # reclaim run inside the step met a lock another path holds: the step cannot
                # run from here (the half-run child is dropped)
                blocked.append((t, wait.lock))
                continue
            if self.por:
                child_sleep = {u: f for u, f in awake.items() if independent(f, foot)}
                self.visit(child, [*prefix, t], child_sleep)
                awake[t] = foot
            else:
                self.visit(child, [*prefix, t], {})
        if blocked and len(blocked) == len(enabled):
            self._all_blocked(run, prefix, blocked)

    def _arrive(self, run: Run, enabled: list[int], key: int, sleep: dict) -> list[int]:
        """Count and check a new state; the steps to take from it. A state seen before is
        explored again only for the steps asleep then and awake now."""
        old = self.seen.get(key)
        if old is not None:
            self.seen[key] = old & frozenset(sleep)
            return [t for t in enabled if t in old and t not in sleep]
        if self.out.states >= self.max_states:
            self.out.truncated = True
            raise _Stop
        self.out.states += 1
        problem = (end_problem(run) if not enabled
                   else state_problem(run, False, self.checked))
        if problem:
            self.fail(run, problem)
        self.seen[key] = frozenset(sleep)
        return [t for t in enabled if t not in sleep]

    def _step(self, child: Run, t: int, key: int):
        """Step path t of child (a fresh step) and return its footprint; WouldBlock when a
        reclaim run inside the step met a lock another path holds. key: the state before."""
        try:
            foot = child.step(t, footprint=self.por, fresh=True)
        except MemcgsimError as e:
            self.fail(child, from_error(e))
        if (child.log[-1][1].startswith("spins: ") and child.enabled() == [t]
                and child.fingerprint() == key):
            self.fail(child, deadlock(f"{child.labels[t]} {child.log[-1][1]} for ever: no "
                                      "other path can run"))
        return foot

    def _all_blocked(self, run: Run, prefix: list[int], blocked: list) -> None:
        """Every enabled step waits, inside a path it runs to its end, for a lock another
        path holds: a deadlock."""
        waits = ", ".join(
            f"{run.labels[t]} waits for {lockname(lk) if isinstance(lk, tuple) else lk}"
            " in a path it runs to its end" for t, lk in blocked)
        self.fail(replay(self.race, self.inject, prefix, self.snap),
                  deadlock(f"every unfinished path waits for a lock ({waits})"))


def explore_random(race: RaceSet, walks: int, seed: int = 0, inject=()) -> Outcome:
    """Seeded random schedules, for race sets too large to enumerate: each walk picks an
    enabled path at random until all are done; stops at the first violation."""
    rng = random.Random(seed)
    inject = frozenset(inject)
    out = Outcome(race.name)
    seen = set()
    try:
        snap = snapshot(race, inject)
    except MemcgsimError as e:
        out.setup_failed(e)
        return out
    for _ in range(walks):
        run = Run(race, inject, snap)
        problem = None
        try:
            while True:
                enabled = run.enabled()
                key = run.fingerprint()
                if key not in seen:
                    seen.add(key)
                    out.states += 1
                if not enabled:
                    problem = end_problem(run)
                    out.finals.add(run.machine_key())
                    out.results.add(tuple(run.results))
                    break
                schedule = [i for i, _ in run.log]
                while True:                     # a step that would block: try another
                    t = rng.choice(enabled)
                    try:
                        run.step(t, fresh=True)
                        break
                    except WouldBlock:
                        enabled.remove(t)
                        run = replay(race, inject, schedule, snap)
                        if not enabled:
                            raise Deadlock("every unfinished path waits for a lock in a "
                                           "path it runs to its end") from None
                out.transitions += 1
                problem = state_problem(run, quiescent=False)
                if problem:
                    break
        except MemcgsimError as e:
            problem = from_error(e)
        out.schedules += 1
        if problem:
            out.found(counterexample(run, problem, snap))
            return out
    return out


__all__ = ["Outcome", "explore", "explore_random"]
