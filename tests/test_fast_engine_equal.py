"""Proven equal (issue 21, item 4): the fast engine (Machine(vectorized=True): the array fault,
zap and read paths and reclaim's bulk shrink) leaves exactly the state of the per-page reference
paths (vectorized=False) after every operation of random operation sequences, under all four
kernel/interface pairs.

The snapshot is the whole model, walked generically (`whole_state`): every attribute of the
Machine and its Kernel, of every memcg (all its counters with their watermarks, failcnt, max,
high, min/low and emin/elow, statistics, memory.events, vm events, lruvecs, peak files, knobs,
OOM state), task, mm (vmas, ptes, rss, page tables), address_space (page cache entries, nrpages,
size, i_mmap, link and use counts), anon_vma, the swap device (swap_map, swap cache), the
swap_cgroup records, the per-CPU stocks, the allocator, the lock table, the charge move, the
warnings and the OOM records; plus the order of the pages on every LRU list derived from
mem_map, plus tests/test_vectorized.py's `snapshot`. Only caches are left out (EXCLUDED says
why for each)."""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memcgsim import Machine, check
from memcgsim.kernel import Kernel
from memcgsim.mm.fs import AddressSpace
from memcgsim.mm.memcontrol import MemCgroup
from memcgsim.mm.mm_struct import PTE_HUGE, PTE_SWAP, AnonVma, MmStruct, Vma
from memcgsim.mm.mm_types import PG_lru, page_lru_array
from memcgsim.mm.page_counter import PageCounter
from memcgsim.mm.res_counter import ResCounter
from memcgsim.mm.sched import Task
from test_vectorized import KINDS
from test_vectorized import snapshot as old_snapshot

# ------------------------------------------------------------------------------------------
# the whole-state snapshot

#: Attributes left out of the walk, each a cache or the switch under test:
EXCLUDED = {
    # the switch under test: True on the fast machine, False on the reference one
    (Kernel, "vectorized"),
    (Machine, "_zap"),
    # reclaim's view of each list's tail (vmscan.LruTail): the list's pages oldest first as of
    # the last look plus a read position, re-made from mem_map whenever it runs out. Which
    # lists were looked at and when is the engine's business (the bulk shrink looks at lists
    # in larger steps); what it stands for, the list order, is compared as `lru_lists`, which
    # is derived from mem_map.lru_seq/lru_memcg/flags (and every look is checked against a
    # scan of mem_map: check_lru_tails is on for both machines)
    (Kernel, "lru_tails"),
    # the per-list logs of the pages that joined a list since the last look (vmscan.LruLog):
    # stale entries, Python-int buffers and numpy chunks that fold and compact at sizes the
    # engine's batching decides; a look's result is the log's valid entries, which depend on
    # mem_map alone. The test checks instead that on each machine every page on a list is
    # in its list's log under its present lru_seq (assert_logs_complete)
    (Kernel, "lru_logs"),
    # the debugging switch of those checks (set on both machines by the test)
    (Kernel, "check_lru_tails"),
    # the cgroup file tables: bound methods and lambdas made on first use, no state of their
    # own (the state a peak file keeps lives in memcg.memory_peaks, which is compared)
    (Machine, "_fs"),
}

#: (class, attribute) whose entity objects are part of this object, walked in full; an entity
#: met anywhere else (a memcg's parent, a task's memcg, a vma's file) is compared by identity
OWNED = {
    (Machine, "k"),
    (Kernel, "memcg_by_id"), (Kernel, "tasks"), (Kernel, "mms"), (Kernel, "mappings"),
    (Kernel, "anon_vmas"), (Kernel, "swapper_space"),
    (MemCgroup, "res"), (MemCgroup, "memsw"), (MemCgroup, "swap"), (MemCgroup, "kmem"),
    (MmStruct, "vmas"),
}


def _i_pages(arr):
    # the array's length is an allocation detail (AddressSpace.ensure doubles it on demand);
    # entries past the last non-zero one are holes either way
    return np.trim_zeros(arr, "b").copy()


def _by_key(d):
    # a dict only ever read by key: the order its keys first appeared in is no state
    return dict(sorted(d.items()))


#: what the walk compares instead of an attribute's value; every other dict is compared with
#: its order (the OOM killer walks the tasks, sync and drop_caches the mappings, free_pgtables
#: an mm's page tables in it)
TRANSFORMS = {
    (AddressSpace, "i_pages"): _i_pages,
    # vm events (pgscan, pswpout, ...) are read by name (memory.stat sums them by name)
    (MemCgroup, "vm_events"): _by_key,
    # pages try-charged and not yet committed, per memcg id: read by id (and empty between
    # operations)
    (Kernel, "inflight"): _by_key,
}


def _identity(o):
    """How an entity met outside its owner is compared: by its id, or None (not an entity)."""
    if isinstance(o, MemCgroup):
        return ("memcg", o.id, o.name)
    if isinstance(o, (PageCounter, ResCounter)):
        return ("counter", o.name)
    if isinstance(o, Task):
        return ("task", o.pid, o.comm)
    if isinstance(o, MmStruct):
        return ("mm", o.id)
    if isinstance(o, Vma):
        return ("vma", o.mm.id, o.start, o.npages)
    if isinstance(o, AddressSpace):
        return ("mapping", o.id, o.name)
    if isinstance(o, AnonVma):
        return ("anon_vma", o.id)
    if isinstance(o, (Kernel, Machine)):
        return (type(o).__name__,)
    return None


_PLANS: dict = {}
_PRIMITIVE = (type(None), bool, int, float, str, bytes)


def _plan(cls) -> list:
    """The attributes the walk reads of an instance of cls: (name, transform, owned) each."""
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = []
        slots = []
        for c in cls.__mro__:
            s = c.__dict__.get("__slots__", ())
            slots += [s] if isinstance(s, str) else list(s)
        for name in dict.fromkeys(slots):
            if name != "__weakref__" and not any(
                    issubclass(cls, c) and name == a for c, a in EXCLUDED):
                plan.append((name, _transform(cls, name),
                             any(issubclass(cls, c) and name == a for c, a in OWNED)))
    return plan


def _transform(cls, name):
    return next((fn for (c, a), fn in TRANSFORMS.items() if issubclass(cls, c) and name == a),
                None)


def _walk(o, path: str, out: dict, own: bool, depth: int = 0) -> None:
    if depth > 40:
        raise AssertionError(f"{path}: the walk went too deep (an unknown cycle?)")
    if isinstance(o, _PRIMITIVE):
        out[path] = o
        return
    ident = _identity(o)
    if ident is not None and not own:
        out[path] = ident
    elif isinstance(o, np.generic):
        out[path] = o.item()
    elif isinstance(o, np.ndarray):
        out[path] = o.copy()
    elif isinstance(o, (list, tuple)):
        if all(isinstance(v, _PRIMITIVE) for v in o):
            out[path] = list(o)
            return
        out[path + "#len"] = len(o)
        for i, v in enumerate(o):
            _walk(v, f"{path}[{i}]", out, own, depth + 1)
    elif isinstance(o, dict):
        if all(isinstance(v, _PRIMITIVE) for v in o.values()):
            out[path] = list(o.items())
            return
        out[path + "#keys"] = [repr(key) for key in o]
        for key, v in o.items():
            _walk(v, f"{path}[{key!r}]", out, own, depth + 1)
    elif isinstance(o, (set, frozenset)):
        out[path] = sorted(map(repr, o))
    elif isinstance(o, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        out[path] = getattr(o, "__qualname__", repr(o))
    else:
        cls = type(o)
        plan = _plan(cls)
        d = getattr(o, "__dict__", None)
        if d is None and not plan:
            out[path] = repr(o)         # e.g. the itertools.count of memcg ids
            return
        prefix = f"{path}." if path else ""
        if d is not None:
            for name, v in d.items():
                entry = _PLANS.get((cls, name))
                if entry is None:
                    entry = _PLANS[(cls, name)] = (
                        any(issubclass(cls, c) and name == a for c, a in EXCLUDED),
                        _transform(cls, name),
                        any(issubclass(cls, c) and name == a for c, a in OWNED))
                excluded, fn, owned = entry
                if not excluded:
                    _walk(fn(v) if fn else v, prefix + name, out, owned, depth + 1)
        for name, fn, owned in plan:
            if hasattr(o, name):
                v = getattr(o, name)
                _walk(fn(v) if fn else v, prefix + name, out, owned, depth + 1)


def lru_lists(k) -> dict:
    """Every LRU list, (memcg id, lru) -> its pages oldest first, from mem_map alone: the pages
    with PG_lru, by lru_memcg and the list their flags pick, ordered by lru_seq (ties by pfn,
    as vmscan._scan_list orders them)."""
    mm = k.mem_map
    on = np.flatnonzero(mm.flags & PG_lru)
    lru = page_lru_array(mm.flags[on])
    order = np.lexsort((on, mm.lru_seq[on], lru, mm.lru_memcg[on]))
    on, lru = on[order], lru[order]
    memcg = mm.lru_memcg[on].astype(np.int64)
    out: dict = {}
    for pfn, m_, l_ in zip(on.tolist(), memcg.tolist(), lru.tolist(), strict=True):
        out.setdefault((m_, l_), []).append(pfn)
    return out


def whole_state(m) -> dict:
    out: dict = {}
    _walk(m, "", out, own=True)
    out["lru_lists"] = lru_lists(m.k)
    out.update({f"old:{key}": v for key, v in old_snapshot(m).items()})
    return out


def assert_logs_complete(k) -> None:
    """Every page on a list is in its list's LruLog under its present lru_seq (what makes the
    log a cache of mem_map; read without changing the log)."""
    for key, pfns in lru_lists(k).items():
        log = k.lru_logs.get(key)
        entries: set = set()
        if log is not None:
            entries.update(log.added)
            entries.update(log.seen if isinstance(log.seen, list) else log.seen.tolist())
            for chunk in log.chunks:
                entries.update(chunk.tolist())
        seqs = k.mem_map.lru_seq[pfns].astype(np.int64).tolist()
        missing = [p for p, s in zip(pfns, seqs, strict=True) if (s << 32 | p) not in entries]
        assert not missing, f"list {key}: pages {missing[:10]} are not in its log"


def _same(x, y) -> bool:
    if type(x) is not type(y):
        return False
    if isinstance(x, (list, tuple, dict)):
        try:
            return bool(x == y)         # fast for plain values; an array inside raises
        except ValueError:
            pass
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype
                and x.shape == y.shape and np.array_equal(x, y))
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[key], y[key]) for key in x)
    return type(x) is type(y) and x == y


def _show(x, y) -> str:
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.shape == y.shape:
        idx = np.flatnonzero(x != y)[:8]
        return f"at {idx.tolist()}: reference {x[idx].tolist()}, fast {y[idx].tolist()}"
    if isinstance(x, dict) and isinstance(y, dict):
        keys = [key for key in x.keys() | y.keys() if not _same(x.get(key), y.get(key))][:4]
        return "; ".join(f"{key}: reference {x.get(key)}, fast {y.get(key)}" for key in keys)
    return f"reference {x!r}, fast {y!r}"


def assert_same_state(ref: dict, fast: dict, where: str) -> None:
    diffs = [key for key in ref.keys() | fast.keys()
             if key not in ref or key not in fast or not _same(ref[key], fast[key])]
    if diffs:
        diffs.sort()
        lines = [f"  {key}: {_show(ref.get(key), fast.get(key))}"[:400] for key in diffs[:12]]
        raise AssertionError(f"{where}: {len(diffs)} parts of the state differ\n"
                             + "\n".join(lines))


# ------------------------------------------------------------------------------------------
# the machines and the operations


CGROUPS = ("/p", "/p/a", "/p/b")



def build(kind, vectorized, *, memory, cpus, nodes, swap, swap_accounting, thp, limits,
          move_charge):
    """A machine with a parent /p over two children /p/a and /p/b (limits: pages or 0 for
    none, of /p, /p/a, /p/b), a task in each child and one in the root cgroup."""
    profile, cgroup = kind
    m = Machine(memory, swap_pages=swap, cpus=cpus, nodes=nodes,
                swap_accounting=swap_accounting, thp=thp, vectorized=vectorized,
                profile=profile, cgroup=cgroup)
    m.k.check_lru_tails = True
    m.mkdir("/p")
    if m.k.cgroup_v2:
        assert m.write_file("/p", "cgroup.subtree_control", "+memory") == 0
    else:
        assert m.set_use_hierarchy("/p", True) == 0
    for path in CGROUPS[1:]:
        m.mkdir(path)
        if not m.k.cgroup_v2 and move_charge:
            assert m.write_file(path, "memory.move_charge_at_immigrate", "3") == 0
    for path, lim in zip(CGROUPS, limits, strict=True):
        if lim:
            if m.k.do_swap_account:
                m.set_limit(path, lim + 40, memsw=True)
            m.set_limit(path, lim)
    m.spawn("A", "/p/a", cpu=0)
    m.spawn("B", "/p/b", cpu=cpus - 1, node=nodes - 1)
    r = m.spawn("R", "/", cpu=cpus - 1)
    # files on disk to read back, and a tmpfs file
    for name, size in (("/data/f0", 120), ("/data/f1", 40), ("/tmp/s0", 30)):
        m.write(r, name, size)
    m.sync()
    m.drop_caches()
    return m


def _file_name(who: int, x: int) -> str:
    return f"/tmp/s{who % 2}" if x % 3 == 0 else f"/data/f{who % 2}"


def _swapped(t):
    """(vma, offset) of the task's swapped-out pages (inspection only)."""
    return [(v, int(i)) for v in t.mm.vmas for i in np.flatnonzero(v.pte & PTE_SWAP)]


def apply(m, op, who, x, n, step):
    """Perform one operation through the Machine's public methods; what it returned (or
    "skip" when it does not apply to this state)."""
    k = m.k
    alive = [t for t in k.tasks.values() if t.state == "alive"]
    if not alive:
        return "skip"
    t = alive[who % len(alive)]
    vmas = t.mm.vmas
    vma = vmas[x % len(vmas)] if vmas else None
    path = CGROUPS[who % 3]
    v2 = k.cgroup_v2
    if op == "mmap" and len(vmas) < 6:
        huge = k.thp and x % 3 == 0
        v = m.mmap_anon(t, 600 if huge else n, shared=x % 5 == 1, locked=x % 7 == 3,
                        hugepage=huge)
        if huge and t.state == "alive" and v in t.mm.vmas:
            return v.start, m.touch(t, v, n % 64, 512)      # a THP, if it can have one
        return v.start
    if op in ("touch", "mlock", "munlock", "munmap") and vma is None:
        vma = m.mmap_anon(t, n)                 # something to work on
    if op == "touch":
        start = (x * 7) % vma.npages
        return m.touch(t, vma, start, min(n, vma.npages - start), write=x % 4 != 3)
    if op == "swapin":
        swapped = _swapped(t)
        if not swapped and not t.memcg.is_root() and k.swap.nr_slots:
            if not vmas:
                m.touch(t, m.mmap_anon(t, n))
            m.reclaim_memcg(t.memcg.name, n)      # push some out first
            swapped = _swapped(t)
        if not swapped:
            return "skip"
        v, off = swapped[x % len(swapped)]
        return m.touch(t, v, off, min(n % 64 + 1, v.npages - off), write=x % 2 == 0)
    if op == "munmap":
        return m.munmap(t, vma)
    if op == "fork" and len(k.tasks) < 7:
        return m.fork(t, f"F{step}").comm
    if op == "exit" and len(alive) > 1:
        return m.exit(t)
    if op == "mlock":
        return m.mlock(t, vma)
    if op == "munlock":
        return m.munlock(t, vma)
    if op == "write":
        name = _file_name(who, x)
        return m.write(t, name, n % 48 + 1, offset=None if x % 2 else x % 64)
    if op == "read":
        name = _file_name(who, x)
        if name not in k.files:
            return "skip"
        return m.read(t, name, x % 64, n)
    if op == "mmap_file" and len(vmas) < 6:
        name = _file_name(who, x)
        if name not in k.files or not k.files[name].size_pages:
            return "skip"
        v = m.mmap_file(t, name, shared=x % 2 == 0)
        return m.touch(t, v, 0, min(n, v.npages), write=x % 3 == 0)
    if op == "truncate":
        name = _file_name(who, x)
        if name not in k.files:
            return "skip"
        return m.truncate(name, x % 40)
    if op == "unlink":
        name = _file_name(who, x)
        if name not in k.files:
            return "skip"
        return m.unlink(name)
    if op == "drop":
        return m.sync(), m.drop_caches()
    if op == "reclaim":
        on_lru = np.flatnonzero(k.mem_map.flags & PG_lru)
        if not len(on_lru):
            return "skip"
        return m.reclaim(int(on_lru[(x * 7919 + n) % len(on_lru)]))
    if op == "reclaim_memcg":
        return m.reclaim_memcg(path, n)
    if op == "limit":
        return m.set_limit(path, None if x % 8 == 0 else x + 20)
    if op == "swap_limit":
        if v2:
            return m.write_file(path, "memory.swap.max", "max" if x % 8 == 0 else str(x * 4096))
        if k.do_swap_account:
            return m.set_limit(path, None if x % 8 == 0 else x + 40, memsw=True)
        return "skip"
    if op == "high":
        if v2:
            return m.write_file(path, "memory.high",
                                "max" if x % 8 == 0 else str((x + 10) * 4096))
        return m.write_file(path, "memory.swappiness", str(x % 101))
    if op == "protect":
        if v2:
            return m.write_file(path, "memory.low" if x % 2 else "memory.min", str(n * 4096))
        return "skip"
    if op == "memory.reclaim":
        if v2:
            return m.write_file(path, "memory.reclaim", str(n * 4096))
        return m.write_file(path, "memory.force_empty", "0") if x % 4 == 0 else "skip"
    if op == "move":
        other = "/p/b" if t.memcg.name == "/p/a" else "/p/a"
        return m.move_task(t, other)
    if op == "split":
        for v in vmas:
            huge = np.flatnonzero(v.pte & PTE_HUGE)
            if len(huge):
                return m.split_thp(t, v, int(huge[x % len(huge)]))
        return "skip"
    if op == "migrate" and vma is not None and k.nr_nodes > 1:
        return m.migrate(t, vma, who % 2)
    return "skip"


VOCABULARY = ("mmap", "mmap", "touch", "touch", "touch", "swapin", "swapin", "munmap", "fork",
              "exit", "mlock", "munlock", "write", "write", "read", "read", "mmap_file",
              "truncate", "unlink", "drop", "reclaim", "reclaim", "reclaim_memcg", "limit",
              "swap_limit", "high", "protect", "memory.reclaim", "move", "split", "migrate")

OPS = st.lists(st.tuples(st.sampled_from(VOCABULARY), st.integers(0, 5), st.integers(0, 300),
                         st.integers(1, 400)),
               min_size=6, max_size=30)

LIMIT = st.sampled_from([0, 0, 60, 150, 300, 600])


def run_both(kind, ops, **config):
    """The operations on a reference and a fast machine, the whole state compared after each;
    the invariant checker at the end. What each operation returned."""
    machines = [build(kind, vectorized, **config) for vectorized in (False, True)]
    assert_same_state(whole_state(machines[0]), whole_state(machines[1]), "setup")
    results = []
    for step, (op, who, x, n) in enumerate(ops):
        rets = [apply(m, op, who, x, n, step) for m in machines]
        where = f"{kind} step {step} {op}({who}, {x}, {n})"
        assert rets[0] == rets[1], f"{where}: returned {rets[0]!r} (reference) {rets[1]!r}"
        assert_same_state(whole_state(machines[0]), whole_state(machines[1]), where)
        for m in machines:
            assert_logs_complete(m.k)
        results.append((op, rets[1]))
    for m in machines:
        assert check(m.k) == []
    return results


@given(kind=st.sampled_from(KINDS), ops=OPS, memory=st.sampled_from([1024, 2048]),
       cpus=st.integers(1, 2), nodes=st.integers(1, 2), swap=st.sampled_from([0, 200, 1500]),
       swap_accounting=st.booleans(), thp=st.booleans(),
       limits=st.tuples(LIMIT, LIMIT, LIMIT), move_charge=st.booleans())
def test_fast_engine_leaves_the_reference_state_after_every_operation(
        kind, ops, memory, cpus, nodes, swap, swap_accounting, thp, limits, move_charge):
    """Random operations on a small hierarchy (a parent with a limit over two children, and a
    task in the root), anonymous, file, tmpfs and swap: the whole state of the fast machine is
    the reference machine's after every operation, and both pass the invariant checker."""
    run_both(kind, ops, memory=memory, cpus=cpus, nodes=nodes, swap=swap,
             swap_accounting=swap_accounting, thp=thp, limits=limits, move_charge=move_charge)


#: operations of one task (who 0: A, in /p/a, while it lives) and on /p/a's files (who 1)
TASK_OPS = ("touch", "touch", "touch", "touch", "mmap", "read", "read", "read", "write",
            "munmap", "swapin", "fork", "reclaim", "drop", "truncate", "mlock")
CGROUP_OPS = ("limit", "high", "protect", "swap_limit", "memory.reclaim", "reclaim_memcg")
PRESSURE_OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(TASK_OPS), st.sampled_from([0, 0, 0, 1, 2]),
                  st.integers(0, 300), st.integers(1, 800)),
        st.tuples(st.sampled_from(CGROUP_OPS), st.just(1), st.integers(0, 300),
                  st.integers(1, 400))),
    min_size=3, max_size=20)


@given(kind=st.sampled_from(KINDS), ops=PRESSURE_OPS, limit=st.integers(40, 400),
       parent=st.sampled_from([0, 0, 200, 800]), cpus=st.integers(1, 2),
       swap=st.sampled_from([0, 300, 1500]), thp=st.booleans())
def test_fast_engine_at_a_leaf_limit_leaves_the_reference_state(kind, ops, limit, parent, cpus,
                                                                 swap, thp):
    """A task faulting and reading at its leaf cgroup's limit (the fast engine's bulk
    fault-and-reclaim and read-and-reclaim runs, its bulk swap-out), among swap-ins, writes,
    protection, high and swap limits and its parent's limit: the whole state of the fast
    machine is the reference machine's after every operation."""
    run_both(kind, ops, memory=2048, cpus=cpus, nodes=1, swap=swap, swap_accounting=True,
             thp=thp, limits=(limit + parent if parent else 0, limit, 0), move_charge=False)


#: every operation once or more, each where it applies: a THP split, COW after fork, page
#: cache and tmpfs writes and reads, a parent's and a child's limit with anonymous faults over
#: it (reclaim, swap-out), swap-in, swap limits, memory.high, protection, memory.reclaim,
#: reclaim of a memcg and of one page, mlock, file mappings (a private one of tmpfs written),
#: NUMA migration, a move, truncation, drop_caches, unlink of a mapped file, munmap, exit
TOUR = [
    ("mmap", 0, 9, 1), ("split", 0, 9, 1), ("mmap", 0, 2, 300), ("touch", 0, 2, 300),
    ("fork", 0, 0, 1), ("touch", 0, 1, 400), ("mmap", 1, 2, 200), ("touch", 1, 0, 200),
    ("write", 1, 1, 30), ("write", 0, 3, 20), ("read", 0, 4, 120), ("read", 0, 0, 30),
    ("limit", 0, 380, 1), ("limit", 1, 60, 1), ("touch", 0, 5, 300), ("swapin", 0, 1, 40),
    ("swap_limit", 2, 100, 1), ("high", 2, 40, 1), ("touch", 1, 0, 200), ("protect", 1, 1, 30),
    ("memory.reclaim", 0, 4, 50), ("reclaim_memcg", 2, 0, 40), ("reclaim", 0, 5, 7),
    ("mlock", 0, 0, 1), ("munlock", 0, 0, 1), ("mmap_file", 0, 1, 50), ("mmap_file", 0, 3, 20),
    ("migrate", 1, 0, 1), ("move", 1, 0, 1), ("truncate", 0, 1, 1), ("drop", 0, 0, 1),
    ("unlink", 0, 3, 1), ("munmap", 0, 0, 1), ("exit", 3, 0, 1), ("limit", 0, 8, 1),
    ("read", 1, 1, 40),
]


@pytest.mark.parametrize("kind", KINDS, ids="-".join)
def test_a_tour_of_every_operation(kind):
    """Every operation of the vocabulary, each where it applies (v1 has no memory.low), on
    both engines with the whole state compared after each."""
    results = run_both(kind, TOUR, memory=2048, cpus=2, nodes=2, swap=600,
                       swap_accounting=True, thp=True, limits=(0, 0, 0), move_charge=True)
    skipped = {op for op, ret in results if ret == "skip"}
    no_protection = kind[1] == "v1"
    assert skipped == ({"protect"} if no_protection else set())
    assert {step[0] for step in TOUR} == set(VOCABULARY)


def _small():
    m = build(("6.12", "v2"), True, memory=1024, cpus=1, nodes=1, swap=64,
              swap_accounting=True, thp=False, limits=(0, 0, 0), move_charge=False)
    t = m.task("A")
    m.write(t, "/tmp/s1", 4)
    m.touch(t, m.mmap_anon(t, 8))
    return m, t


#: state tests/test_vectorized.py's snapshot leaves out, changed by hand (not by the model)
UNSEEN_BEFORE = {
    "memory.high": lambda m, t: m.write_file("/p/a", "memory.high", str(100 * 4096)),
    "memory.low": lambda m, t: m.write_file("/p/a", "memory.low", str(10 * 4096)),
    "elow": lambda m, t: setattr(m.memcg("/p/a").res, "elow", 3),
    "local_watermark": lambda m, t: setattr(m.memcg("/p/a").res, "local_watermark", 1),
    "kmem usage": lambda m, t: setattr(m.memcg("/p/a").kmem, "usage", 99),
    "kmem_stat": lambda m, t: m.memcg("/p/a").kmem_stat.__setitem__("kernel", 7),
    "under_oom": lambda m, t: setattr(m.memcg("/p/a"), "under_oom", 1),
    "oom_group": lambda m, t: setattr(m.memcg("/p/a"), "oom_group", True),
    "nrpages": lambda m, t: setattr(m.file("/tmp/s1"), "nrpages", 3),
    "i_pages": lambda m, t: m.file("/tmp/s1").i_pages.__setitem__(0, 0),
    "i_size": lambda m, t: setattr(m.file("/tmp/s1"), "size_pages", 9),
    "i_count": lambda m, t: setattr(m.file("/tmp/s1"), "i_count", 9),
    "over_high": lambda m, t: setattr(t, "memcg_nr_pages_over_high", 5),
    "oom_score_adj": lambda m, t: setattr(t, "oom_score_adj", 5),
    "task memcg": lambda m, t: setattr(t, "memcg", m.memcg("/p/b")),
    "oom_charges": lambda m, t: m.k.oom_charges.append((2, 1)),
    "mm next_start": lambda m, t: setattr(t.mm, "next_start", 0),
    "vma flags": lambda m, t: setattr(t.mm.vmas[0], "flags", 0),
    "pids": lambda m, t: setattr(m, "_pids", 0),
}


@pytest.mark.parametrize("change", UNSEEN_BEFORE)
def test_the_snapshot_sees_what_the_old_one_missed(change):
    """The whole-state snapshot tells apart two machines that differ only in state
    tests/test_vectorized.py's snapshot does not look at (as of this writing)."""
    m, t = _small()
    base = whole_state(m)
    m, t = _small()
    assert_same_state(base, whole_state(m), "the same runs")
    UNSEEN_BEFORE[change](m, t)
    with pytest.raises(AssertionError, match="parts of the state differ"):
        assert_same_state(base, whole_state(m), change)


# ------------------------------------------------------------------------------------------
# differences found


def _stale_min(vectorized: bool, fault: bool):
    """6.1 (cgroup v2): /p/a with memory.max 40 pages and memory.min 38; a memory.reclaim on
    the parent /p computes /p/a's emin (38) and leaves it; then A in /p/a faults 60 anonymous
    pages (swap on) or reads 60 pages of a file on disk (no swap) past its memory.max."""
    m = Machine(2048, swap_pages=1000 if fault else 0, profile="6.1", cgroup="v2",
                vectorized=vectorized)
    m.mkdir("/p")
    assert m.write_file("/p", "cgroup.subtree_control", "+memory") == 0
    m.mkdir("/p/a")
    assert m.write_file("/p/a", "memory.max", str(40 * 4096)) == 0
    assert m.write_file("/p/a", "memory.min", str(38 * 4096)) == 0
    if not fault:
        w = m.spawn("W", "/")
        m.write(w, "/data/f", 60)
        m.sync()
        m.drop_caches()
    t = m.spawn("A", "/p/a")
    assert m.write_file("/p", "memory.reclaim", str(4096)) == -11     # EAGAIN, emin set
    assert m.memcg("/p/a").res.emin == 38
    if fault:
        assert m.touch(t, m.mmap_anon(t, 60)) == 60
    else:
        assert m.read(t, "/data/f", 0, 60) == 60
    return m


@pytest.mark.parametrize("fault", [False, True], ids=["read", "fault"])
def test_a_limit_run_under_a_stale_memory_min_on_6_1(fault):
    """6.1's reclaim honours its target's stale emin (profile.stale_target_protection): the
    per-page path skips /p/a while its usage is at most 38 and goes on charging, and the
    fast engine must not take the run. Found by
    test_fast_engine_at_a_leaf_limit_leaves_the_reference_state (ci profile); before the
    fix the read ended with 27 of the file's pages cached against the reference's 33."""
    ref, fast = (_stale_min(vectorized, fault) for vectorized in (False, True))
    assert_same_state(whole_state(ref), whole_state(fast), "after the run")


@pytest.mark.parametrize("profile", ["6.1", "6.12"])
def test_a_group_oom_kill_of_the_faulting_task(profile):
    """oom.group kills the faulting task with the others; theirs exit at once, so the charge
    retried after the kill succeeds, and the faulting task stops at that fault (it dies on its
    way back to user space). The fast engine's fault loop once went on faulting for the
    killed task: a second OOM and 53 `max` events, where the reference path and the real
    kernel (B1-12: 6.1 and 6.12, every run) show one OOM and 18."""
    states = []
    for vectorized in (False, True):
        m = Machine(2048, profile=profile, cgroup="v2", vectorized=vectorized)
        m.mkdir("/c")
        assert m.write_file("/c", "memory.max", str(200 * 4096)) == 0
        assert m.write_file("/c", "memory.oom.group", "1") == 0
        for name in ("C1", "C2"):
            t = m.spawn(name, "/c")
            m.touch(t, m.mmap_anon(t, 20))
        t = m.spawn("C3", "/c")
        m.touch(t, m.mmap_anon(t, 400))
        ev = m.memcg("/c").memory_events
        assert (ev["max"], ev["oom"], ev["oom_group_kill"]) == (18, 1, 1)
        assert {x.state for x in m.k.tasks.values()} == {"killed"}
        assert check(m.k) == []
        states.append(whole_state(m))
    assert_same_state(states[0], states[1], f"{profile} group OOM kill")
