"""Locks and scheduling points of the kernel paths.

A kernel path is a generator. It yields at the points where another path could run: when it takes
a sleeping or spinning lock (`Lock`, `TryLock`), when it drops one (`Unlock`), at named atomic
`Step`s, and on each turn of a busy-wait loop (`Spin`). `run_path` drives a path to completion;
an explorer can instead advance several paths one yield at a time. Locks live in `LockTable`; a
page's lock is also its PG_locked bit.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Deadlock
from .mm_types import PG_locked

# The requests a path yields are values (equal and hashable). They are not frozen: a frozen
# dataclass's __init__ costs twice as much, and a path makes one request per lock it takes.


@dataclass(slots=True, unsafe_hash=True)
class Lock:
    lock: tuple
    #: taken for reading (down_read of an rwsem): other readers may hold it at the same time
    shared: bool = False


@dataclass(slots=True, unsafe_hash=True)
class TryLock:
    """Take the lock if it is free; the path receives True or False."""
    lock: tuple


@dataclass(slots=True, unsafe_hash=True)
class Unlock:
    lock: tuple


@dataclass(slots=True, unsafe_hash=True)
class Step:
    """An atomic step boundary that is not a lock operation."""
    name: str


@dataclass(slots=True, unsafe_hash=True)
class Spin:
    """One turn of a retry loop that waits for another path to move on (the kernel's
    cond_resched-and-retry): it can only end if something else runs."""
    name: str


def mmap_sem(mm_id: int) -> tuple:
    """mm->mmap_sem, the rwsem that keeps faults (readers) and munmap (the writer) apart."""
    return ("mmap_sem", mm_id)


def anon_vma_lock(anon_vma_id: int) -> tuple:
    """anon_vma->rwsem, taken for writing by a THP split."""
    return ("anon_vma", anon_vma_id)


def page_lock(pfn: int) -> tuple:
    return ("page", pfn)


def ptl(mm_id: int) -> tuple:
    """The page-table lock (one per mm in the model: split ptlocks need no finer grain here)."""
    return ("ptl", mm_id)


def lru_lock(node: int) -> tuple:
    return ("lru", node)


def tree_lock(mapping_id: int) -> tuple:
    """mapping->tree_lock of an address_space (the swap cache uses mapping id 0)."""
    return ("tree", mapping_id)


def move_lock(memcg_id: int) -> tuple:
    """memcg->move_lock: page statistics against charge moving."""
    return ("move", memcg_id)


class WouldBlock(Exception):
    """A path run to its end inside another path's step (reclaim from a charge) met a lock
    held, or a busy wait kept, by a path an explorer runs beside it: the step has to wait for
    that path. Not a model error: the explorer tries the step again later."""

    def __init__(self, lock: tuple | str):
        super().__init__(lock)
        self.lock = lock


class LockTable:
    """Who holds which lock. Page locks are mirrored in PG_locked. An rwsem taken for reading
    is held by all its readers at once; a waiting writer does not hold back new readers."""

    def __init__(self, kernel):
        self.k = kernel
        self.held: dict[tuple, int] = {}
        #: rwsems held for reading: lock -> its readers, sorted
        self.readers: dict[tuple, tuple[int, ...]] = {}
        #: set by an explorer: other paths run beside this one, so a path run to its end that
        #: meets their lock waits for them (WouldBlock) rather than deadlocks
        self.concurrent = False

    def is_held(self, lock: tuple) -> bool:
        return lock in self.held or lock in self.readers

    def can_acquire(self, lock: tuple, shared: bool = False) -> bool:
        return lock not in self.held and (shared or lock not in self.readers)

    def try_acquire(self, lock: tuple, owner: int, shared: bool = False) -> bool:
        held, readers = self.held, self.readers
        if lock in held or (readers and not shared and lock in readers):
            return False
        if shared:
            readers[lock] = tuple(sorted((*readers.get(lock, ()), owner)))
            return True
        held[lock] = owner
        if lock[0] == "page":
            self.k.mem_map.flags[lock[1]] |= PG_locked
        return True

    def release(self, lock: tuple, owner: int) -> None:
        readers = self.readers.get(lock) if self.readers else None
        if readers is not None and owner in readers:
            rest = list(readers)
            rest.remove(owner)
            if rest:
                self.readers[lock] = tuple(rest)
            else:
                del self.readers[lock]
            return
        holder = self.held.get(lock)
        if holder is None:
            raise Deadlock(f"unlock of {lock} which is not held")
        del self.held[lock]
        if lock[0] == "page":
            self.k.mem_map.flags[lock[1]] &= ~PG_locked

    def held_by(self, owner: int) -> list[tuple]:
        return ([lk for lk, o in self.held.items() if o == owner]
                + [lk for lk, os in self.readers.items() if owner in os])

    def holders(self) -> list[tuple[tuple, int]]:
        """(lock, owner) of every hold, readers one by one."""
        return [*self.held.items(), *((lk, o) for lk, os in self.readers.items() for o in os)]

    def state(self) -> tuple:
        """The table as a hashable value."""
        return frozenset(self.held.items()), frozenset(self.readers.items())


def run_path(k, path, task=None, owner: int = 0):
    """Run a path to its end, as the only thing running; return what it returns.

    With nobody else running, a lock that is already held can never be released, nor can a
    busy wait end: that is a deadlock (or a lock leaked by an earlier path), and raises
    Deadlock. Under an explorer (LockTable.concurrent) the path is part of another path's
    step and others may release it: WouldBlock.
    """
    saved = k.current
    locks = k.locks
    try_acquire, release, resume = locks.try_acquire, locks.release, path.send
    send = None
    try:
        while True:
            k.current = task
            try:
                req = resume(send)
            except StopIteration as stop:
                leaked = locks.held_by(owner)
                if leaked:
                    raise Deadlock(f"path ended holding {leaked}") from None
                return stop.value
            send = None
            kind = type(req)
            if kind is Lock:
                if not try_acquire(req.lock, owner, req.shared):
                    if locks.concurrent:
                        raise WouldBlock(req.lock)
                    who = [o for lk, o in locks.holders() if lk == req.lock]
                    raise Deadlock(f"{req.lock} is held by path {', '.join(map(str, who))} and "
                                   f"nothing else runs to release it")
            elif kind is Unlock:
                release(req.lock, owner)
            elif kind is TryLock:
                send = try_acquire(req.lock, owner)
            elif kind is Spin:
                if locks.concurrent:
                    raise WouldBlock(req.name)
                raise Deadlock(f"{req.name}: the path waits for another one and nothing else "
                               "runs")
    finally:
        k.current = saved
