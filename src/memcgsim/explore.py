"""The interleaving explorer: run a few kernel paths over their interleavings and check each
state on the way.

A race set (memcgsim.races) builds a small machine and names 2 to 4 kernel paths (the
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
still held at a path's end or a violation ends the search. The counterexample is then made
minimal: a breadth-first search over the same race set finds the shortest schedule that breaks
the same invariant.

Only the model's public surface is used: Machine, the mm paths, check().
"""

from __future__ import annotations

import pickle
import types
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .checker import check
from .errors import Deadlock, MemcgsimError, ModelBug
from .machine import Machine
from .mm.locking import Lock, Spin, Step, TryLock, Unlock, WouldBlock


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
    #: the failing schedule's steps, numbered in order, or None
    counterexample: list[str] | None = None
    #: the broken rule: "[invariant] message", "VMBugOnPage: ...", "deadlock: ..."
    violation: str | None = None
    #: dump of each page the counterexample's steps touched, in the state that broke
    pages: list[str] = field(default_factory=list)
    #: the counterexample's schedule as path indices
    schedule: list[int] | None = None
    #: the search stopped at max_states before covering every schedule
    truncated: bool = False


# ------------------------------------------------------------------------------------------
# footprints


class _Tracked(np.ndarray):
    """A view of a kernel array that reports which elements a step reads and writes."""

    _key = None

    def __array_finalize__(self, obj):
        self._key = getattr(obj, "_key", None)

    def __getitem__(self, idx):
        fp = _Footprint.active
        if fp is not None:
            fp.note(fp.reads, self._key, idx)
        return np.ndarray.__getitem__(self.view(np.ndarray), idx)

    def __setitem__(self, idx, value):
        fp = _Footprint.active
        if fp is not None:
            fp.note(fp.writes, self._key, idx)
        np.ndarray.__setitem__(self.view(np.ndarray), idx, value)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fp = _Footprint.active
        plain = _unwatch(inputs, fp.reads if fp else None)
        if kwargs.get("out"):
            kwargs["out"] = _unwatch(kwargs["out"], fp.writes if fp else None)
        return getattr(ufunc, method)(*plain, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        fp = _Footprint.active
        if fp is not None:
            fp.note(fp.writes, self._key, None)     # unknown use: the whole array, both ways
        args = tuple(a.view(np.ndarray) if isinstance(a, _Tracked) else a for a in args)
        return func(*args, **kwargs)

    def _whole(self, name, *a, **kw):
        fp = _Footprint.active
        if fp is not None:
            fp.note(fp.reads, self._key, None)
        return getattr(self.view(np.ndarray), name)(*a, **kw)

    def nonzero(self):
        return self._whole("nonzero")

    def any(self, *a, **kw):
        return self._whole("any", *a, **kw)

    def all(self, *a, **kw):
        return self._whole("all", *a, **kw)

    def sum(self, *a, **kw):
        return self._whole("sum", *a, **kw)

    def copy(self, *a, **kw):
        return self._whole("copy", *a, **kw)

    def tolist(self):
        return self._whole("tolist")

    def astype(self, *a, **kw):
        return self._whole("astype", *a, **kw)


def _unwatch(arrays, into: set | None) -> tuple:
    """The plain arrays behind watched ones, each noted whole in `into` (unless None)."""
    out = []
    for x in arrays:
        if isinstance(x, _Tracked):
            if into is not None:
                _Footprint.note(into, x._key, None)
            x = x.view(np.ndarray)
        out.append(x)
    return tuple(out)


class _Footprint:
    """What one step read and wrote: sets of (object, element) with element None = all."""

    active: _Footprint | None = None
    __slots__ = ("reads", "writes")

    def __init__(self):
        self.reads: set = set()
        self.writes: set = set()

    @staticmethod
    def note(into: set, key, idx) -> None:
        if idx is None or not isinstance(idx, (int, np.integer)):
            into.add((key, None))
        else:
            into.add((key, int(idx)))

    def freeze(self) -> tuple[frozenset, frozenset]:
        return frozenset(self.reads), frozenset(self.writes)


def _overlap(a: frozenset, b: frozenset) -> bool:
    if a.isdisjoint(b):
        whole_a = {k for k, i in a if i is None}
        whole_b = {k for k, i in b if i is None}
        if not whole_a and not whole_b:
            return False
        return any(k in whole_b for k, _ in a) or any(k in whole_a for k, _ in b)
    return True


def independent(f: tuple, g: tuple) -> bool:
    """Two steps commute: neither writes what the other reads or writes."""
    (rf, wf), (rg, wg) = f, g
    return not (_overlap(wf, wg) or _overlap(wf, rg) or _overlap(wg, rf))


def _watched(k, fixed: bool = True):
    """(object, attribute, key) of each per-element kernel array (with fixed False, only those
    a step may replace: page cache indexes and page tables)."""
    if fixed:
        for n, _ in k.mem_map.FIELDS:
            yield k.mem_map, n, "page"
        yield k.pc, "flags", "page"
        yield k.pc, "memcg", "page"
        yield k.swap, "swap_map", "slot"
        yield k.swap, "cache", "slot"
        yield k.swap_cgroup, "id", "slot"
    for mapping in (*k.mappings.values(), k.swapper_space):
        yield mapping, "i_pages", ("i_pages", mapping.id)
    for mm in k.mms.values():
        for vma in mm.vmas:
            yield vma, "pte", ("pte", mm.id, vma.start)


def _track(k, fixed: bool = True) -> None:
    """Put watched views in place of the kernel's per-element arrays, and watch the reads of
    the fields of objects compared by value that a step may read without writing."""
    for obj, name, key in _watched(k, fixed):
        arr = getattr(obj, name)
        if not isinstance(arr, _Tracked):
            v = arr.view(_Tracked)
            v._key = key
            setattr(obj, name, v)
    for mapping in k.mappings.values():
        _watch_fields(mapping, ("mapping", mapping.id))
    if fixed:
        _watch_fields(k.swap, "swapinfo")


#: fields of objects compared by value (see _objects) that a step may read and not write:
#: a fault's i_size check, vm_swap_full; a read of one is a read of the whole object
_WATCHED_FIELDS = {"AddressSpace": frozenset({"nrpages", "size_pages", "nlink", "i_count",
                                               "i_mmap"}),
                   "SwapInfo": frozenset({"inuse_pages", "cluster_next"})}
_WATCHING: dict[type, type] = {}


def _watch_fields(obj, key) -> None:
    cls = type(obj)
    if cls.__dict__.get("_watching"):
        return
    sub = _WATCHING.get(cls)
    if sub is None:
        fields = _WATCHED_FIELDS[cls.__name__]
        get = object.__getattribute__

        def __getattribute__(self, name):
            if name in fields:
                fp = _Footprint.active
                if fp is not None:
                    fp.reads.add((get(self, "_watch_key"), None))
            return get(self, name)
        sub = _WATCHING[cls] = type(cls.__name__, (cls,), {
            "__getattribute__": __getattribute__, "__module__": cls.__module__,
            "_watching": True})
    obj._watch_key = key
    obj.__class__ = sub


def _objects(k) -> dict:
    """The state compared by value before and after a step, per object."""
    objs = {}
    for m in k.memcg_by_id.values():
        objs[("memcg", m.id)] = (
            m.res.usage, m.res.failcnt, m.memsw.usage, m.memsw.failcnt, m.kmem.usage,
            tuple(m.stat), tuple(m.events), m.nr_page_events, m.swap_css_refs, m.under_oom,
            tuple(tuple(lv.lru_size) for lv in m.lruvecs), k.inflight.get(m.id, 0),
            tuple(m.memory_events.values()), tuple(m.vm_events.items()),
            None if m.swap is None else m.swap.usage)
    fa = k.free_area
    objs["free_area"] = (tuple(fa.cursor), tuple(fa.nr_free), fa.block_free.tobytes())
    objs["swapinfo"] = (k.swap.inuse_pages, k.swap.cluster_next)
    for mapping in k.mappings.values():
        objs[("mapping", mapping.id)] = (mapping.nrpages, mapping.size_pages, mapping.nlink,
                                         mapping.i_count, len(mapping.i_pages),
                                         tuple((v.mm.id, v.start) for v in mapping.i_mmap))
    for mm in k.mms.values():
        objs[("mm", mm.id)] = (tuple(mm.rss_stat), mm.users,
                               tuple((v.start, v.npages) for v in mm.vmas))
    objs["tasks"] = tuple((t.pid, t.memcg.id, t.memdie, t.fatal_signal, t.exiting, t.state,
                           t.memcg_may_oom, None if t.memcg_oom is None else t.memcg_oom.id,
                           t.memcg_nr_pages_over_high, t.memcg_nomem,
                           None if t.mm is None else t.mm.id) for t in k.tasks.values())
    for cpu, stock in enumerate(k.stocks):
        objs[("stock", cpu)] = (None if stock.cached is None else stock.cached.id,
                                stock.nr_pages)
    # the LRU order stamp and the id allocators: two steps that take from them do not commute
    objs["lru_seq"] = k._lru_seq
    objs["ids"] = (repr(k._ids), k._obj_ids, len(k.mappings), len(k.files),
                   tuple((i, len(av.vmas)) for i, av in k.anon_vmas.items()),
                   tuple(k.mms), tuple(m.online for m in k.memcg_by_id.values()))
    objs["warnings"] = (len(k.warnings), len(k.lru_tails), len(k.oom_charges))
    mc = k.mc
    objs["mc"] = None if mc is None else (mc.precharge, mc.moved_charge, mc.moved_swap)
    return objs


# ------------------------------------------------------------------------------------------
# where a path stands


#: kernel-wide objects a frame may hold: their state is the machine's, hashed apart
_OPAQUE = frozenset({"Kernel", "MemMap", "PageCgroupMap", "SwapInfo", "SwapCgroup", "LockTable",
                     "FreeArea", "Machine"})


def _canon(v, depth: int = 0):
    """A hashable stand-in for a frame's local: equal for equal kernel states."""
    t = type(v)
    handler = _CANON_BY_TYPE.get(t)
    if handler is None:
        handler = _CANON_BY_TYPE[t] = _canon_handler(t)
    return handler(v, depth)


def _canon_object(v, depth: int):
    name = type(v).__name__
    ident = getattr(v, "id", None)
    if isinstance(ident, int):
        return (name, ident)
    if depth < 1 and hasattr(v, "__dict__"):
        return (name, tuple((a, _canon(b, depth + 1)) for a, b in sorted(vars(v).items())))
    return name


def _canon_handler(t: type):
    """How _canon treats values of type t (chosen once per type)."""
    name = t.__name__
    if t is type(None) or issubclass(t, (bool, int, str, float)):
        return lambda v, depth: v
    if issubclass(t, np.generic):
        return lambda v, depth: v.item()
    if issubclass(t, (tuple, list)):
        return lambda v, depth: tuple([_canon(x, depth) for x in v])
    if issubclass(t, (set, frozenset)):
        return lambda v, depth: tuple(sorted(map(repr, (_canon(x, depth) for x in v))))
    if issubclass(t, dict):
        return lambda v, depth: tuple(sorted((repr(a), repr(_canon(b, depth)))
                                             for a, b in v.items()))
    if issubclass(t, np.ndarray):
        return lambda v, depth: hash(v.view(np.ndarray).tobytes())
    if name in _OPAQUE or issubclass(t, types.GeneratorType):
        return lambda v, depth: name
    if issubclass(t, (types.FunctionType, types.BuiltinFunctionType, type)):
        return lambda v, depth: v.__qualname__
    if issubclass(t, (Lock, TryLock, Unlock, Step, Spin)):
        return lambda v, depth: repr(v)
    if name == "Vma":
        return lambda v, depth: ("vma", v.mm.id, v.start)
    if name == "Task":
        return lambda v, depth: ("task", v.pid)
    return _canon_object


_CANON_BY_TYPE: dict = {}


def _frames(gen) -> tuple:
    """The chain of suspended frames of a path: function, position and locals of each."""
    out = []
    g = gen
    while isinstance(g, types.GeneratorType):
        f = g.gi_frame
        if f is None:
            break
        out.append((f.f_code, f.f_lasti,
                    tuple([(n, _canon(x)) for n, x in f.f_locals.items()])))
        g = g.gi_yieldfrom
    return tuple(out)


# ------------------------------------------------------------------------------------------
# one run


class _Run:
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
        #: _objects of the current state, when a step has just computed them
        self._objs: dict | None = None

    def track(self) -> None:
        """Watch the kernel's arrays from now on, so that steps have footprints. A path that
        kept one of the plain arrays (or a slice of it) in a local across a yield would go on
        using it unwatched, and the reduction would be unsound: that is refused."""
        if self.tracked:
            return
        plain = {id(getattr(obj, name)) for obj, name, _ in _watched(self.m.k)}
        for gen in self.gens:
            g = gen
            while isinstance(g, types.GeneratorType) and g.gi_frame is not None:
                for name, x in g.gi_frame.f_locals.items():
                    if isinstance(x, np.ndarray) and (id(x) in plain or id(x.base) in plain):
                        raise ModelBug(f"{g.gi_code.co_name} keeps the kernel array in local "
                                       f"{name!r} across a yield: footprints would miss it")
                g = g.gi_yieldfrom
        _track(self.m.k)
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
        fp = _Footprint()
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
            before = _objects(k)
        _Footprint.active = fp
        try:
            what = self._step(i, fp)
        finally:
            _Footprint.active = None
        self.log.append((i, what))
        self._locking_rules(i, pc_before, held)
        _track(k, fixed=False)          # a page cache index that grew is a new array
        after = self._objs = _objects(k)
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

    def _step(self, i: int, fp: _Footprint) -> str:
        k = self.m.k
        locks = k.locks
        owner = i + 1
        said = []
        if self.pending[i] is not None:
            req = self.pending[i]
            locks.try_acquire(req.lock, owner, req.shared)
            fp.writes.add((("lock", req.lock), owner if req.shared else None))
            said.append(f"takes {_lockname(req.lock, req.shared)}")
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
                               f"{', '.join(map(_lockname, leaked))}") from None
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
                said.append(f"takes {_lockname(req.lock, req.shared)}")
            else:
                self.pending[i] = req
                said.append(f"waits for {_lockname(req.lock, req.shared)}")
        elif isinstance(req, TryLock):
            got = locks.try_acquire(req.lock, owner)
            self.send[i] = got
            said.append(f"trylock {_lockname(req.lock)}: {'taken' if got else 'busy'}")
        elif isinstance(req, Unlock):
            locks.release(req.lock, owner)
            said.append(f"releases {_lockname(req.lock)}")
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
            self._kkey = self._kernel_key()
        return self._kkey

    def _kernel_key(self) -> int:
        # Python's 64-bit hash: a collision among the few million states of a search is
        # improbable (about n^2 / 2^65), and the keys never leave the process
        k = self.m.k
        arrays = [arr.view(np.ndarray).tobytes()
                  for arr in (*k.mem_map.arrays().values(), *k.pc.arrays().values(),
                              k.swap.swap_map, k.swap.cache, k.swap_cgroup.id)]
        arrays += [mapping.i_pages.view(np.ndarray).tobytes() for mapping in k.mappings.values()]
        arrays += [vma.pte.view(np.ndarray).tobytes()
                   for mm in k.mms.values() for vma in mm.vmas]
        objs = self._objs if self._objs is not None else _objects(k)
        return hash((tuple(arrays), frozenset(objs.items())))

    def fingerprint(self) -> int:
        """The machine's state and where each path stands."""
        return hash((self.machine_key(), tuple(self.done),
                     tuple(self.pending), tuple(self.send),
                     _canon(self.results), tuple(_frames(g) for g in self.gens)))


def _lockname(lk: tuple, shared: bool = False) -> str:
    kind, *rest = lk
    names = {"page": "page lock of pfn {}", "ptl": "page-table lock of mm {}",
             "lru": "lru_lock of node {}", "tree": "tree_lock of mapping {}",
             "move": "move_lock of memcg {}", "mmap_sem": "mmap_sem of mm {}",
             "anon_vma": "lock of anon_vma {}"}
    return names.get(kind, kind + " {}").format(*rest) + (" for reading" if shared else "")


def _problem(run: _Run, quiescent: bool, cache: dict | None = None) -> str | None:
    """The checker's verdict; with cache, remembered per kernel state (the checker reads
    nothing else), so a state reached again with the paths elsewhere is not checked twice."""
    key = None
    if cache is not None and not quiescent:
        key = run.kernel_key()
        if key in cache:
            return cache[key]
    v = check(run.m.k, quiescent=quiescent)
    problem = "; ".join(f"[{x.invariant}] {x.message}" for x in v[:4]) if v else None
    if key is not None:
        cache[key] = problem
    return problem


def _terminal_problem(run: _Run) -> str | None:
    if not all(run.done):
        waits = ", ".join(f"{run.labels[i]} waits for {_lockname(p.lock, p.shared)}"
                          for i, p in enumerate(run.pending) if p is not None)
        return f"deadlock: every unfinished path waits for a lock ({waits})"
    problem = _problem(run, quiescent=True)
    for expectation in () if problem else run.race.expect:
        wrong = expectation(run.m, tuple(run.results))
        if wrong:
            return f"[expect] {wrong}"
    return problem


def _snapshot(race: RaceSet, inject: frozenset) -> bytes | None:
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


def _replay(race: RaceSet, inject: frozenset, prefix: list[int],
            snapshot: bytes | None = None) -> _Run:
    run = _Run(race, inject, snapshot)
    for i in prefix:
        run.step(i)
    return run


def _error(e: MemcgsimError) -> str:
    """A VM_BUG_ON, deadlock or other model error, on one line (page dumps come apart)."""
    return f"{type(e).__name__}: {str(e).splitlines()[0]}"


def _kind(problem: str) -> str:
    """What broke, without the numbers: the invariant name or the error class."""
    return problem.split("]", 1)[0] if problem.startswith("[") else problem.split(":", 1)[0]


def _report(out: Outcome, run: _Run, problem: str, snapshot: bytes | None) -> None:
    """The violation, the schedule as numbered steps, and the pages the paths changed."""
    out.violation = problem
    out.schedule = [i for i, _ in run.log]
    out.counterexample = _numbered(run)
    k = run.m.k
    k0 = _Run(run.race, run.inject, snapshot).m.k
    changed = np.zeros(k.nr_pages, dtype=bool)
    for now, then in ((k.mem_map.arrays(), k0.mem_map.arrays()),
                      (k.pc.arrays(), k0.pc.arrays())):
        for name, arr in now.items():
            changed |= arr.view(np.ndarray) != then[name]
    pfns = np.flatnonzero(changed).tolist()
    # a freed THP changes 512 pages: show the head, not its tails
    out.pages = [k.dump_page(pfn) for pfn in pfns
                 if not (pfn % 512 and changed[pfn - pfn % 512])][:8]


def _numbered(run: _Run) -> list[str]:
    if not run.log:
        return ["0. (no path has run: the setup's own operations left this state)"]
    width = max(len(x) for x in run.labels)
    seen = [0] * len(run.labels)
    lines = []
    for n, (i, what) in enumerate(run.log):
        seen[i] += 1
        lines.append(f"{n + 1}. {run.labels[i]:<{width}} #{seen[i]}: {what}")
    return lines


# ------------------------------------------------------------------------------------------
# searches


def explore(race: RaceSet, inject=(), max_states: int = 200000, por: bool = True,
            minimize: bool = True) -> Outcome:
    """Depth first over the schedules of the race's paths, with state caching and (por)
    sleep sets; stops at the first violation, then (minimize) looks for the shortest
    schedule that breaks the same rule."""
    inject = frozenset(inject)
    out = Outcome(race.name)
    seen: dict[int, frozenset] = {}
    checked: dict[int, str | None] = {}

    class _Stop(Exception):
        pass

    def fail(run, problem):
        _report(out, run, problem, snap)
        raise _Stop

    def visit(run: _Run, prefix: list[int], sleep: dict) -> None:
        enabled = run.enabled()
        key = run.fingerprint()
        old = seen.get(key)
        if old is None:
            if out.states >= max_states:
                out.truncated = True
                raise _Stop
            out.states += 1
            problem = (_terminal_problem(run) if not enabled
                       else _problem(run, False, checked))
            if problem:
                fail(run, problem)
            seen[key] = frozenset(sleep)
            todo = [t for t in enabled if t not in sleep]
        else:
            todo = [t for t in enabled if t in old and t not in sleep]
            seen[key] = old & frozenset(sleep)
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
                child = _replay(race, inject, prefix, snap)
                out.replays += 1
                out.replayed_steps += len(prefix)
            out.transitions += 1
            try:
                foot = child.step(t, footprint=por, fresh=True)
            except MemcgsimError as e:
                fail(child, _error(e))
            except WouldBlock as wait:
                # reclaim run inside the step met a lock another path holds: the step cannot
                # run from here (the half-run child is dropped)
                blocked.append((t, wait.lock))
                continue
            if (child.log[-1][1].startswith("spins: ") and child.enabled() == [t]
                    and child.fingerprint() == key):
                fail(child, f"deadlock: {child.labels[t]} {child.log[-1][1]} for ever: no "
                            "other path can run")
            if por:
                child_sleep = {u: f for u, f in awake.items() if independent(f, foot)}
                visit(child, [*prefix, t], child_sleep)
                awake[t] = foot
            else:
                visit(child, [*prefix, t], {})
        if blocked and len(blocked) == len(enabled):
            fail(_replay(race, inject, prefix, snap),
                 "deadlock: every unfinished path waits for a lock (" + ", ".join(
                     f"{run.labels[t]} waits for {_lockname(lk) if isinstance(lk, tuple) else lk}"
                     " in a path it runs to its end" for t, lk in blocked) + ")")

    try:
        snap = _snapshot(race, inject)
        visit(_Run(race, inject, snap), [], {})
    except _Stop:
        pass
    except MemcgsimError as e:              # the setup itself broke
        out.violation = _error(e)
        out.counterexample = ["0. (the race set's setup failed)"]
    if out.violation and minimize and out.schedule:
        shortest = shortest_counterexample(race, inject, _kind(out.violation),
                                           len(out.schedule))
        if shortest is not None and len(shortest.schedule) < len(out.schedule):
            out.violation, out.schedule = shortest.violation, shortest.schedule
            out.counterexample, out.pages = shortest.counterexample, shortest.pages
    return out


def shortest_counterexample(race: RaceSet, inject, kind: str, limit: int) -> Outcome | None:
    """Breadth first (states cached): the shortest schedule, of at most limit steps, that
    breaks the rule `kind` (an invariant name or an error class)."""
    inject = frozenset(inject)
    out = Outcome(race.name)
    seen = set()
    queue = deque([[]])
    snap = _snapshot(race, inject)
    while queue:
        prefix = queue.popleft()
        try:
            run = _replay(race, inject, prefix[:-1], snap)
            if prefix:
                run.step(prefix[-1], fresh=True)
        except WouldBlock:
            continue
        except MemcgsimError as e:
            problem = _error(e)
            if _kind(problem) == kind:
                _report(out, run, problem, snap)
                return out
            continue
        enabled = run.enabled()
        problem = _terminal_problem(run) if not enabled else _problem(run, False)
        if problem:
            if _kind(problem) == kind:
                _report(out, run, problem, snap)
                return out
            continue
        key = run.fingerprint()
        if key in seen or len(prefix) >= limit:
            continue
        seen.add(key)
        queue.extend([*prefix, t] for t in enabled)
    return None


def explore_random(race: RaceSet, walks: int, seed: int = 0, inject=()) -> Outcome:
    """Seeded random schedules, for race sets too large to enumerate: each walk picks an
    enabled path at random until all are done; stops at the first violation."""
    import random

    rng = random.Random(seed)
    inject = frozenset(inject)
    out = Outcome(race.name)
    seen = set()
    try:
        snap = _snapshot(race, inject)
    except MemcgsimError as e:
        out.violation = _error(e)
        out.counterexample = ["0. (the race set's setup failed)"]
        return out
    for _ in range(walks):
        run = _Run(race, inject, snap)
        problem = None
        try:
            while True:
                enabled = run.enabled()
                key = run.fingerprint()
                if key not in seen:
                    seen.add(key)
                    out.states += 1
                if not enabled:
                    problem = _terminal_problem(run)
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
                        run = _replay(race, inject, schedule, snap)
                        if not enabled:
                            raise Deadlock("every unfinished path waits for a lock in a "
                                           "path it runs to its end") from None
                out.transitions += 1
                problem = _problem(run, quiescent=False)
                if problem:
                    break
        except MemcgsimError as e:
            problem = _error(e)
        out.schedules += 1
        if problem:
            _report(out, run, problem, snap)
            return out
    return out
