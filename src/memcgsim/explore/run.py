"""One run of a race set: a machine as the setup left it, the paths started, and the steps
taken so far. A step runs one path from one yield to the next, applying the lock operation it
yields; a fresh step (not a replay) is held to the locking rule of spec 4.1 and may record its
footprint.

Generators cannot be copied, so a run that branches is made again: the machine is loaded from
the setup's snapshot (pickled once per search) and the schedule so far replayed.
"""

from __future__ import annotations

import pickle
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import Deadlock, ModelBug
from ..machine import Machine
from ..mm.locking import Lock, Spin, Step, TryLock, Unlock
from .footprint import Footprint, track, watched
from .state import canon, frames, kernel_hash, objects


class LockingRuleBroken(ModelBug):
    """A step changed what protects a page's memcg binding without holding the protection."""


@dataclass(frozen=True)
class RaceSet:
    """A machine setup and the paths that race on it."""

    name: str
    doc: str
    #: builds the state on a fresh Machine; returns what the path factories need
    setup: Callable[[Machine], dict]
    #: (label, factory(machine, context) -> (task or None, generator)) per path
    paths: tuple[tuple[str, Callable], ...]
    machine: dict = field(default_factory=dict)
    #: checks of each complete schedule's end: (machine, what the paths returned) -> what is
    #: wrong, or None
    expect: tuple[Callable, ...] = ()


def lockname(lk: tuple, shared: bool = False) -> str:
    kind, *rest = lk
    names = {"page": "page lock of pfn {}", "ptl": "page-table lock of mm {}",
             "lru": "lru_lock of node {}", "tree": "tree_lock of mapping {}",
             "move": "move_lock of memcg {}", "mmap_sem": "mmap_sem of mm {}",
             "anon_vma": "lock of anon_vma {}"}
    return names.get(kind, kind + " {}").format(*rest) + (" for reading" if shared else "")


def snapshot(race: RaceSet, inject: frozenset) -> bytes | None:
    """The machine after the race's setup, pickled: loading it is cheaper than a new setup.
    None when the setup left something that cannot be pickled (the cgroup file system's
    handlers): each run then builds its machine anew."""
    m = Machine(vectorized=False, **race.machine)
    m.k.inject = inject
    ctx = race.setup(m)
    try:
        return pickle.dumps((m, ctx))
    except (pickle.PicklingError, AttributeError, TypeError):
        return None


def replay(race: RaceSet, inject: frozenset, prefix: list[int],
           snapshot: bytes | None = None) -> Run:
    """A run that has taken the steps of prefix (path indices), as replays: unchecked."""
    run = Run(race, inject, snapshot)
    for i in prefix:
        run.step(i)
    return run


class Run:
    """One replay: a fresh machine, the paths started, and the steps taken so far."""

    def __init__(self, race: RaceSet, inject: frozenset, snapshot: bytes | None = None):
        self.race, self.inject = race, inject
        if snapshot is None:
            self.m = Machine(vectorized=False, **race.machine)
            self.m.k.inject = inject
            ctx = race.setup(self.m)
        else:
            self.m, ctx = pickle.loads(snapshot)
        self.m.k.locks.concurrent = True
        self.labels = [label for label, _ in race.paths]
        started = [factory(self.m, ctx) for _, factory in race.paths]
        #: the kernel's arrays are watched (footprints can be taken); replays run without
        self.tracked = False
        self.tasks = [t for t, _ in started]
        self.gens = [g for _, g in started]
        self.done = [False] * len(started)
        self.pending: list = [None] * len(started)   # a Lock not yet granted
        self.send: list = [None] * len(started)
        self.steps = [0] * len(started)
        self.results: list = [None] * len(started)
        #: per step taken: (path, what it did)
        self.log: list[tuple[int, str]] = []
        self._kkey: int | None = None
        #: objects() of the current state, when a step has just computed them
        self._objs: dict | None = None

    def track(self) -> None:
        """Watch the kernel's arrays from now on, so that steps have footprints. A path that
        kept one of the plain arrays (or a slice of it) in a local across a yield would go on
        using it unwatched, and the reduction would be unsound: that is refused."""
        if self.tracked:
            return
        plain = {id(getattr(obj, name)) for obj, name, _ in watched(self.m.k)}
        for gen in self.gens:
            g = gen
            while isinstance(g, types.GeneratorType) and g.gi_frame is not None:
                for name, x in g.gi_frame.f_locals.items():
                    if isinstance(x, np.ndarray) and (id(x) in plain or id(x.base) in plain):
                        raise ModelBug(f"{g.gi_code.co_name} keeps the kernel array in local "
                                       f"{name!r} across a yield: footprints would miss it")
                g = g.gi_yieldfrom
        track(self.m.k)
        self.tracked = True

    def enabled(self) -> list[int]:
        locks = self.m.k.locks
        return [i for i, d in enumerate(self.done) if not d and (
            self.pending[i] is None or locks.can_acquire(self.pending[i].lock,
                                                         self.pending[i].shared))]

    def step(self, i: int, footprint: bool = False, fresh: bool = False):
        """Run path i to its next lock operation (applying it) or to its end. A fresh step
        (not a replay) is held to the locking rules; with footprint, return what it read and
        wrote."""
        k = self.m.k
        before = self._objs             # the state's objects, if the last step computed them
        self._kkey = self._objs = None
        fp = Footprint()
        if not (footprint or fresh):        # a replay: already checked, footprint known
            self.log.append((i, self._step(i, fp)))
            return None
        pc_before = (k.pc.flags.view(np.ndarray).copy(), k.pc.memcg.view(np.ndarray).copy(),
                     k.mem_map.refcount.view(np.ndarray).copy())
        held = set(k.locks.held_by(i + 1))
        if self.pending[i] is not None:
            held.add(self.pending[i].lock)
        if not footprint:
            self.log.append((i, self._step(i, fp)))
            self._locking_rules(i, pc_before, held)
            return None
        self.track()
        if before is None:
            before = objects(k)
        Footprint.active = fp
        try:
            what = self._step(i, fp)
        finally:
            Footprint.active = None
        self.log.append((i, what))
        self._locking_rules(i, pc_before, held)
        track(k, fixed=False)           # a page cache index that grew is a new array
        after = self._objs = objects(k)
        for key in before.keys() | after.keys():
            if before.get(key) != after.get(key):
                fp.writes.add((key, None))
        return fp.freeze()

    def _locking_rules(self, i: int, before, held: set) -> None:
        """Spec 4.1: a page's page_cgroup changes only under what protects the page: its
        page lock (page cache, swapin, migration, replacement, charge moving), the page-table
        lock (a fresh anonymous page's commit), the lru_lock (THP split, lrucare), or with no
        reference left (uncharge at the final put, swapout with frozen references)."""
        k = self.m.k
        flags0, memcg0, ref0 = before
        flags1 = k.pc.flags.view(np.ndarray)
        # the memcg pointer of an uncharged page may be pointed at root by
        # mem_cgroup_page_lruvec (under the lru_lock, which the model's LRU add does not
        # yield for): only a change that involves a charged page counts
        changed = np.flatnonzero((flags1 != flags0) | (
            (k.pc.memcg.view(np.ndarray) != memcg0) & ((flags0 | flags1) != 0)))
        if not len(changed):
            return
        held = held | set(k.locks.held_by(i + 1))
        if any(lk[0] in ("ptl", "lru") for lk in held):
            return
        ref1 = k.mem_map.refcount.view(np.ndarray)
        for pfn in changed.tolist():
            if ("page", pfn) in held or ref0[pfn] == 0 or ref1[pfn] == 0:
                continue
            raise LockingRuleBroken(
                f"pfn {pfn:#x}: page_cgroup changed by {self.labels[i]} without its page "
                "lock, a page-table lock or the lru_lock, with references left (spec 4.1)")

    def _step(self, i: int, fp: Footprint) -> str:
        k = self.m.k
        locks = k.locks
        owner = i + 1
        said = []
        if self.pending[i] is not None:
            req = self.pending[i]
            locks.try_acquire(req.lock, owner, req.shared)
            fp.writes.add((("lock", req.lock), owner if req.shared else None))
            said.append(f"takes {lockname(req.lock, req.shared)}")
            self.pending[i] = None
        saved = k.current
        k.current = self.tasks[i]
        self.steps[i] += 1
        try:
            req = self.gens[i].send(self.send[i])
        except StopIteration as stop:
            self.done[i] = True
            leaked = locks.held_by(owner)
            if leaked:
                raise Deadlock(f"{self.labels[i]} ended holding "
                               f"{', '.join(map(lockname, leaked))}") from None
            self.results[i] = stop.value
            said.append(f"returns {stop.value!r}")
            return "; ".join(said)
        finally:
            k.current = saved
        self.send[i] = None
        if isinstance(req, (Lock, TryLock, Unlock)):
            # readers of an rwsem commute with each other (its readers are kept sorted), not
            # with its writer: a reader's hold is one element of the lock, a writer's the whole
            reader = (req.shared if isinstance(req, Lock) else
                      isinstance(req, Unlock) and owner in locks.readers.get(req.lock, ()))
            fp.writes.add((("lock", req.lock), owner if reader else None))
        if isinstance(req, Lock):
            if locks.try_acquire(req.lock, owner, req.shared):
                said.append(f"takes {lockname(req.lock, req.shared)}")
            else:
                self.pending[i] = req
                said.append(f"waits for {lockname(req.lock, req.shared)}")
        elif isinstance(req, TryLock):
            got = locks.try_acquire(req.lock, owner)
            self.send[i] = got
            said.append(f"trylock {lockname(req.lock)}: {'taken' if got else 'busy'}")
        elif isinstance(req, Unlock):
            locks.release(req.lock, owner)
            said.append(f"releases {lockname(req.lock)}")
        elif isinstance(req, Step):
            said.append(req.name)
        elif isinstance(req, Spin):
            said.append(f"spins: {req.name}")
        else:
            said.append("runs")
        return "; ".join(said)

    def machine_key(self) -> int:
        """The kernel's state with the lock table."""
        return hash((self.kernel_key(), self.m.k.locks.state()))

    def kernel_key(self) -> int:
        """Everything the checker reads (PG_locked included, the lock table not)."""
        if self._kkey is None:
            self._kkey = kernel_hash(self.m.k, self._objs)
        return self._kkey

    def fingerprint(self) -> int:
        """The machine's state and where each path stands."""
        return hash((self.machine_key(), tuple(self.done),
                     tuple(self.pending), tuple(self.send),
                     canon(self.results), tuple(frames(g) for g in self.gens)))


__all__ = ["LockingRuleBroken", "RaceSet", "Run", "lockname", "replay", "snapshot"]
