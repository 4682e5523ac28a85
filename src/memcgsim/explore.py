"""The interleaving explorer: run a few kernel paths over their interleavings and check each
state on the way.

A race set builds a small machine and names 2 to 4 kernel paths (the generators of memcgsim.mm,
which yield at their lock operations). One atomic step of a path runs it from one yield to the
next; a path waiting for a lock that another holds is not enabled. The explorer walks the
schedules depth first, rebuilding the machine and replaying the schedule for each new branch
(generators cannot be copied), and skips a state it has seen (the machine's arrays and counters
with how far each path has come). After every step the invariant checker runs (with the locks
of running paths allowed), and at the end of each schedule with nothing running; a VM_BUG_ON, a
deadlock or a violation ends the search with the schedule that caused it.

Only the model's public surface is used: Machine, the mm paths, check().
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .checker import check
from .errors import Deadlock, MemcgsimError
from .machine import Machine
from .mm.locking import Lock, Step, TryLock, Unlock


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


@dataclass
class Outcome:
    race: str
    schedules: int = 0
    states: int = 0
    #: the failing schedule's steps, "path: what it did", numbered in order, or None
    counterexample: list[str] | None = None
    violation: str | None = None


class _Run:
    """One replay: a fresh machine, the paths started, and the steps taken so far."""

    def __init__(self, race: RaceSet, inject: frozenset):
        self.m = Machine(vectorized=False, **race.machine)
        self.m.k.inject = inject
        ctx = race.setup(self.m)
        self.labels = [label for label, _ in race.paths]
        started = [factory(self.m, ctx) for _, factory in race.paths]
        self.tasks = [t for t, _ in started]
        self.gens = [g for _, g in started]
        self.done = [False] * len(started)
        self.pending: list = [None] * len(started)   # a Lock not yet granted
        self.send: list = [None] * len(started)
        self.steps = [0] * len(started)
        self.log: list[str] = []

    def enabled(self) -> list[int]:
        locks = self.m.k.locks
        return [i for i, d in enumerate(self.done) if not d and (
            self.pending[i] is None or not locks.is_held(self.pending[i].lock))]

    def step(self, i: int) -> None:
        """Run path i to its next lock operation (applying it) or to its end."""
        k = self.m.k
        locks = k.locks
        owner = i + 1
        if self.pending[i] is not None:
            locks.try_acquire(self.pending[i].lock, owner)
            self.log.append(f"{self.labels[i]}: takes {self.pending[i].lock}")
            self.pending[i] = None
        saved = k.current
        k.current = self.tasks[i]
        try:
            req = self.gens[i].send(self.send[i])
        except StopIteration as stop:
            self.done[i] = True
            self.log.append(f"{self.labels[i]}: returns {stop.value!r}")
            leaked = locks.held_by(owner)
            if leaked:
                raise Deadlock(f"{self.labels[i]} ended holding {leaked}") from None
            return
        finally:
            k.current = saved
        self.send[i] = None
        self.steps[i] += 1
        if isinstance(req, Lock):
            if locks.try_acquire(req.lock, owner):
                self.log.append(f"{self.labels[i]}: takes {req.lock}")
            else:
                self.pending[i] = req
                self.log.append(f"{self.labels[i]}: waits for {req.lock}")
        elif isinstance(req, TryLock):
            got = locks.try_acquire(req.lock, owner)
            self.send[i] = got
            self.log.append(f"{self.labels[i]}: trylock {req.lock} {'ok' if got else 'busy'}")
        elif isinstance(req, Unlock):
            locks.release(req.lock, owner)
            self.log.append(f"{self.labels[i]}: releases {req.lock}")
        elif isinstance(req, Step):
            self.log.append(f"{self.labels[i]}: {req.name}")

    def fingerprint(self) -> bytes:
        """The machine's state and how far each path has come."""
        k = self.m.k
        h = hashlib.blake2b(digest_size=16)
        for arr in (*k.mem_map.arrays().values(), *k.pc.arrays().values(), k.swap.swap_map,
                    k.swap_cgroup.id):
            h.update(arr.tobytes())
        for memcg in k.memcg_by_id.values():
            h.update(repr((memcg.res.usage, memcg.memsw.usage, memcg.stat)).encode())
        h.update(repr((sorted(k.locks.held.items()), self.steps, self.done,
                       [p.lock if p else None for p in self.pending])).encode())
        return h.digest()


def _violations(run: _Run, quiescent: bool) -> str | None:
    v = check(run.m.k, quiescent=quiescent)
    if not v:
        return None
    return "; ".join(f"[{x.invariant}] {x.message}" for x in v[:4])


def explore_random(race: RaceSet, walks: int, seed: int = 0, inject=()) -> Outcome:
    """Seeded random schedules, for race sets too large to enumerate: each walk picks an
    enabled path at random until all are done; stops at the first violation."""
    import random

    rng = random.Random(seed)
    inject = frozenset(inject)
    out = Outcome(race.name)
    for _ in range(walks):
        run = _Run(race, inject)
        problem = None
        try:
            while True:
                enabled = run.enabled()
                if not enabled:
                    if not all(run.done):
                        problem = "deadlock: every unfinished path waits for a lock"
                    else:
                        problem = _violations(run, quiescent=True)
                    break
                run.step(rng.choice(enabled))
                out.states += 1
                problem = _violations(run, quiescent=False)
                if problem:
                    break
        except MemcgsimError as e:
            problem = f"{type(e).__name__}: {e}"
        out.schedules += 1
        if problem:
            out.violation = problem
            out.counterexample = [f"{n + 1}. {line}" for n, line in enumerate(run.log)] or [
                "0. (no path has run: the setup's own operations left this state)"]
            return out
    return out


def explore(race: RaceSet, inject=(), max_states: int = 20000) -> Outcome:
    """Depth-first over the schedules of the race's paths; stops at the first violation."""
    inject = frozenset(inject)
    out = Outcome(race.name)
    seen: set[bytes] = set()
    stack: list[list[int]] = [[]]
    while stack and out.states < max_states:
        prefix = stack.pop()
        try:
            run = _Run(race, inject)
            for i in prefix:
                run.step(i)
            problem = None
            enabled = run.enabled()
            if not enabled:
                out.schedules += 1
                if not all(run.done):
                    problem = "deadlock: every unfinished path waits for a lock"
                else:
                    problem = _violations(run, quiescent=True)
            else:
                problem = _violations(run, quiescent=False)
        except MemcgsimError as e:
            problem = f"{type(e).__name__}: {e}"
            enabled = []
        if problem:
            out.violation = problem
            out.counterexample = [f"{n + 1}. {line}" for n, line in enumerate(run.log)] or [
                "0. (no path has run: the setup's own operations left this state)"]
            return out
        key = run.fingerprint()
        if key in seen:
            continue
        seen.add(key)
        out.states += 1
        for i in reversed(enabled):
            stack.append([*prefix, i])
    return out


# ------------------------------------------------------------------------------------------
# race sets


def _file_page_setup(m: Machine) -> dict:
    m.mkdir("/a")
    t = m.spawn("T", "/a")
    f = m.create("/data/f")
    m.write(t, f.name, 1)
    m.sync()
    vma = m.mmap_file(t, f.name, 1)
    m.touch(t, vma, write=False)
    return {"task": t, "file": f, "pfn": f.find_page(0)}


def _migrate(m: Machine, ctx: dict):
    from .mm.migrate import migrate_pages

    return ctx["task"], migrate_pages(m.k, [ctx["pfn"]], 1)


def _truncate(m: Machine, ctx: dict):
    from .mm import fs_ops

    return None, fs_ops.do_truncate(m.k, ctx["file"], 0)


def _reclaim(m: Machine, ctx: dict):
    return None, _kswapd_page(m.k, ctx["pfn"])


def _kswapd_page(k, pfn: int):
    """Path: kswapd meets the page at the tail of its LRU list: under the lru_lock it is
    isolated only if it is still there (and referenced), then shrink_page_list runs."""
    from .mm.mm_types import PG_lru
    from .mm.vmscan import reclaim_page

    yield Step("lru_lock: look at the list's tail")
    if not k.mem_map.flags[pfn] & PG_lru or k.mem_map.refcount[pfn] <= 0:
        return 0
    return (yield from reclaim_page(k, pfn))


def _anon_setup(m: Machine) -> dict:
    m.mkdir("/a")
    t = m.spawn("T", "/a")
    vma = m.mmap_anon(t, 2)
    m.touch(t, vma)
    return {"task": t, "vma": vma, "pfn": m.pfn_of(vma, 0)}


def _munmap(m: Machine, ctx: dict):
    from .mm import mmap

    return ctx["task"], mmap.do_munmap(m.k, ctx["vma"])


def _splice_setup(m: Machine) -> dict:
    m.mkdir("/a")
    m.mkdir("/b")
    t, u = m.spawn("T", "/a"), m.spawn("U", "/b")
    f, g = m.create("/data/f"), m.create("/data/g")
    m.write(t, f.name, 1)
    m.write(u, g.name, 1)
    m.sync()
    return {"task": t, "file": f, "steal": g, "pfn": f.find_page(0)}


def _splice(m: Machine, ctx: dict):
    from .machine import _splice as splice_path

    return ctx["task"], splice_path(m.k, ctx["file"], 0, ctx["steal"], 0, 0)


def _writeback_setup(m: Machine) -> dict:
    """A page-cache page whose writeback has started (the device will complete it)."""
    from .mm.page_writeback import clear_page_dirty_for_io, test_set_page_writeback

    ctx = _file_page_setup(m)
    pfn = ctx["pfn"]
    m.write(ctx["task"], ctx["file"].name, 1, offset=0)     # dirty again
    clear_page_dirty_for_io(m.k, pfn)
    test_set_page_writeback(m.k, pfn)
    return ctx


def _end_writeback(m: Machine, ctx: dict):
    from .mm.page_writeback import end_page_writeback

    return None, end_page_writeback(m.k, ctx["pfn"])


def _swapin_setup(m: Machine) -> dict:
    """Eight anonymous pages swapped out; a fault on the first reads its neighbours ahead into
    the swap cache (uncharged on 3.17, on the LRU). The race is on the second one."""
    m.mkdir("/a")
    t = m.spawn("T", "/a")
    vma = m.mmap_anon(t, 8)
    m.touch(t, vma)
    for i in range(8):
        m.reclaim(m.pfn_of(vma, i))
    m.touch(t, vma, 0, 1, write=False)
    entry = m.swap_entry_of(vma, 1)
    return {"task": t, "vma": vma, "pfn": int(m.k.swap.cache[entry])}


def _swapin(m: Machine, ctx: dict):
    from .mm.memory import handle_mm_fault

    vma = ctx["vma"]
    return ctx["task"], handle_mm_fault(m.k, vma, vma.start + 1, False)


RACE_SETS = {
    r.name: r for r in (
        RaceSet("migrate-vs-truncate", "a mapped page-cache page migrated while its file is "
                "truncated", _file_page_setup, (("migrate", _migrate), ("truncate", _truncate)),
                {"memory_pages": 2048, "nodes": 2}),
        RaceSet("reclaim-vs-truncate", "a mapped page-cache page reclaimed while its file is "
                "truncated", _file_page_setup, (("reclaim", _reclaim), ("truncate", _truncate)),
                {"memory_pages": 2048, "swap_pages": 64}),
        RaceSet("migrate-vs-munmap", "an anonymous page migrated while it is unmapped",
                _anon_setup, (("migrate", _migrate), ("munmap", _munmap)),
                {"memory_pages": 2048, "nodes": 2}),
        RaceSet("reclaim-vs-munmap", "an anonymous page swapped out while it is unmapped",
                _anon_setup, (("reclaim", _reclaim), ("munmap", _munmap)),
                {"memory_pages": 2048, "swap_pages": 64}),
        RaceSet("replace-page-cache-vs-reclaim", "FUSE splice steals another file's page "
                "into the cache (replace_page_cache_page) while reclaim takes the old one",
                _splice_setup, (("splice", _splice), ("reclaim", _reclaim)),
                {"memory_pages": 2048}),
        RaceSet("writeback-vs-migrate", "the end of a page's writeback while it is migrated",
                _writeback_setup, (("end-writeback", _end_writeback), ("migrate", _migrate)),
                {"memory_pages": 2048, "nodes": 2}),
        RaceSet("swapin-vs-reclaim", "a fault maps a read-ahead swap cache page (commit with "
                "lrucare) while reclaim takes the page", _swapin_setup,
                (("swapin", _swapin), ("reclaim", _reclaim)),
                {"memory_pages": 2048, "swap_pages": 64}),
        RaceSet("reclaim-vs-munmap-noacct", "reclaim-vs-munmap with swap accounting off",
                _anon_setup, (("reclaim", _reclaim), ("munmap", _munmap)),
                {"memory_pages": 2048, "swap_pages": 64, "swap_accounting": False}),
    )
}

#: the historical bugs (spec section 8) the model can put back, and a race set that shows each
INJECTIONS = {
    "B1": ("end of writeback against migration: the writeback statistic is never decremented",
           "writeback-vs-migrate"),
    "B2": ("migration after re-mapping: mapped_file of the new page is never counted",
           "migrate-vs-truncate"),
    "B4": ("replace_page_cache without lrucare: the page changes memcg on its LRU list",
           "replace-page-cache-vs-reclaim"),
    "MEMSW-NOACCT": ("PCG_MEMSW set with swap accounting off: memsw uncharged below zero",
                     "reclaim-vs-munmap-noacct"),
}
