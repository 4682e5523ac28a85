"""What broke: a Problem is made where the explorer finds it (the checker's verdict on a
state, a schedule's end, an error out of a step) and goes unchanged to where it is printed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..checker import check
from ..errors import MemcgsimError
from .run import lockname

if TYPE_CHECKING:
    from .run import Run


@dataclass(frozen=True)
class Problem:
    """A broken rule. Printed as `[kind] message` for an invariant or expectation, as `kind:
    message` for an error (VMBugOnPage, LockingRuleBroken, deadlock)."""

    #: the rule, without the numbers: an invariant's name ("flags", "expect"), an error's
    #: class ("VMBugOnPage", "Deadlock") or "deadlock" (every unfinished path waits)
    kind: str
    #: what broke, on one line
    message: str
    #: a checker invariant or an expectation (True), or an error that stopped the search
    invariant: bool = False
    #: further invariants the same state breaks (the checker's second to fourth)
    also: tuple[Problem, ...] = ()
    #: the dump of each page the counterexample's steps changed, in the state that broke
    pages: tuple[str, ...] = ()

    def __str__(self) -> str:
        head = f"[{self.kind}] {self.message}" if self.invariant else f"{self.kind}: {self.message}"
        return "; ".join([head, *map(str, self.also)])

    def with_pages(self, pages) -> Problem:
        return replace(self, pages=tuple(pages))


def from_error(e: MemcgsimError) -> Problem:
    """A VM_BUG_ON, deadlock or other model error, on one line (page dumps come apart)."""
    return Problem(type(e).__name__, str(e).splitlines()[0])


def deadlock(message: str) -> Problem:
    return Problem("deadlock", message)


def state_problem(run: Run, quiescent: bool, cache: dict | None = None) -> Problem | None:
    """The checker's verdict; with cache, remembered per kernel state (the checker reads
    nothing else), so a state reached again with the paths elsewhere is not checked twice."""
    key = None
    if cache is not None and not quiescent:
        key = run.kernel_key()
        if key in cache:
            return cache[key]
    v = check(run.m.k, quiescent=quiescent)
    problem = None
    if v:
        first, *rest = (Problem(x.invariant, x.message, invariant=True) for x in v[:4])
        problem = replace(first, also=tuple(rest))
    if key is not None:
        cache[key] = problem
    return problem


def end_problem(run: Run) -> Problem | None:
    """What is wrong where no path can run: a deadlock, the checker's verdict with nothing
    running, or (when that is clean) a failed expectation of the race set."""
    if not all(run.done):
        waits = ", ".join(f"{run.labels[i]} waits for {lockname(p.lock, p.shared)}"
                          for i, p in enumerate(run.pending) if p is not None)
        return deadlock(f"every unfinished path waits for a lock ({waits})")
    problem = state_problem(run, quiescent=True)
    for expectation in () if problem else run.race.expect:
        wrong = expectation(run.m, tuple(run.results))
        if wrong:
            return Problem("expect", str(wrong), invariant=True)
    return problem


__all__ = ["Problem", "deadlock", "end_problem", "from_error", "state_problem"]
