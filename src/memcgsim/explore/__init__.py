"""The interleaving explorer: run a few kernel paths over their interleavings and check each
state on the way.

A race set (memcgsim.races) builds a small machine and names 1 to 4 kernel paths (the
generators of memcgsim.mm, which yield at their lock operations and named atomic steps). One
atomic step of a path runs it from one yield to the next; a path waiting for a lock another
holds is not enabled. The explorer walks the schedules depth first. Generators cannot be
copied, so a new branch rebuilds the machine and replays its schedule; the first child of a
state goes on with the run already there, so only the other siblings replay.

State. A state is the machine (every per-page, per-slot, per-memcg array and counter), the lock
table, and where each path stands: the chain of its suspended frames with their code position
and local variables, or what it returned. Two schedules that reach the same state are explored
once.

Partial-order reduction (sleep sets). While a step runs, the explorer records its footprint:
- the per-page arrays (mem_map, page_cgroup), the swap slot arrays (swap_map, swap cache,
  swap_cgroup), each file's page cache index and each VMA's page table are watched element by
  element: a read or write of one element names that page, slot, index or pte; any other use of
  the array (a slice, a whole-array operation) names the whole array;
- the lock it takes, tries or drops (a lock that it only waits for counts too: the wait is the
  step's last act);
- everything else the kernel keeps (each memcg's counters, statistics and LRU sizes, the page
  allocator, each file's and mm's scalars and lists, the swap device's scalars, tasks'
  memcgs, warnings) is compared before and after the step, per object: a change is a write of
  the whole object.
Two steps of different paths are independent when neither writes what the other reads or
writes. Independent steps commute: running one cannot change what the other reads, so either
order leaves the same state and each still does exactly what it did. The reads of the
compared-by-value objects are not watched, except for the fields that a step may read alone (a
file's size and page count, the swap device's use): that is sound because in the kernel's code
every other read of them happens in a step that also writes the same object (try_charge reads
usage and writes usage or failcnt, statistics are read-modify-written, the allocator moves its
cursor), or reads configuration that no racing path changes (limits, hierarchy, the profile).
A sleeping step is not run again from a state reached by an independent step (Godefroid's sleep
sets, combined with the state cache as in his thesis: a state seen before with a larger sleep
set is explored again for the steps that were asleep then and are awake now). The test suite
checks, on every standard race set and on race sets drawn at random, that the reduced search
reaches exactly the final states the full one does and finds the same bugs.

After every new state the invariant checker runs (with the locks of running paths allowed), and
at the end of each schedule with nothing running, followed by the race set's expectations of
how a schedule ends; a VM_BUG_ON, a deadlock (a busy wait no other path can end counts), a lock
still held at a path's end or a violation ends the search with a Problem. The counterexample
is then made minimal: a breadth-first search over the same race set finds the shortest
schedule that breaks the same rule (the same Problem kind).

Only the model's public surface is used: Machine, the mm paths, check().

The modules, one per concern:
- footprint: the watched arrays and fields, Footprint, independent;
- state: the kernel's state and each path's frames as hashable values;
- run: RaceSet, one run of it (stepping the paths, the locking rule), replays;
- problem: Problem, made from the checker's verdict, a schedule's end or an error;
- search: Outcome, explore (depth first, sleep sets), explore_random;
- counterexample: the numbered steps and changed pages, the shortest counterexample.
"""

from .counterexample import Counterexample, shortest_counterexample
from .footprint import independent
from .problem import Problem
from .run import LockingRuleBroken, RaceSet
from .search import Outcome, explore, explore_random

__all__ = ["Counterexample", "LockingRuleBroken", "Outcome", "Problem", "RaceSet", "explore",
           "explore_random", "independent", "shortest_counterexample"]
