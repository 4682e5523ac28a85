"""Explorer states as hashable values: the kernel's arrays and objects, and where each path
stands (the chain of its suspended frames, each local made canonical).

Two schedules that reach equal values reach the same state and are explored once. The hashes
are Python's 64-bit ones: a collision among the few million states of a search is improbable
(about n^2 / 2^65), and the keys never leave the process.
"""

from __future__ import annotations

import types

import numpy as np

from ..mm.locking import Lock, Spin, Step, TryLock, Unlock


def objects(k) -> dict:
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
    objs["swapinfo"] = (k.swap.inuse_pages, k.swap.cluster_next, k.swap.slots_cache_active,
                        tuple(tuple(ret) for ret in k.swap.slots_ret))
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


def kernel_hash(k, objs: dict | None = None) -> int:
    """Everything the checker reads (PG_locked included, the lock table not); objs: the
    kernel's objects() when they are at hand."""
    arrays = [arr.view(np.ndarray).tobytes()
              for arr in (*k.mem_map.arrays().values(), *k.pc.arrays().values(),
                          k.swap.swap_map, k.swap.cache, k.swap_cgroup.id)]
    arrays += [mapping.i_pages.view(np.ndarray).tobytes() for mapping in k.mappings.values()]
    arrays += [vma.pte.view(np.ndarray).tobytes()
               for mm in k.mms.values() for vma in mm.vmas]
    if objs is None:
        objs = objects(k)
    return hash((tuple(arrays), frozenset(objs.items())))


# ------------------------------------------------------------------------------------------
# where a path stands


#: kernel-wide objects a frame may hold: their state is the machine's, hashed apart
_OPAQUE = frozenset({"Kernel", "MemMap", "PageCgroupMap", "SwapInfo", "SwapCgroup", "LockTable",
                     "FreeArea", "Machine"})


def canon(v, depth: int = 0):
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
        return (name, tuple((a, canon(b, depth + 1)) for a, b in sorted(vars(v).items())))
    return name


def _canon_handler(t: type):
    """How canon treats values of type t (chosen once per type)."""
    name = t.__name__
    if t is type(None) or issubclass(t, (bool, int, str, float)):
        return lambda v, depth: v
    if issubclass(t, np.generic):
        return lambda v, depth: v.item()
    if issubclass(t, (tuple, list)):
        return lambda v, depth: tuple([canon(x, depth) for x in v])
    if issubclass(t, (set, frozenset)):
        return lambda v, depth: tuple(sorted(map(repr, (canon(x, depth) for x in v))))
    if issubclass(t, dict):
        return lambda v, depth: tuple(sorted((repr(a), repr(canon(b, depth)))
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


def frames(gen) -> tuple:
    """The chain of suspended frames of a path: function, position and locals of each."""
    out = []
    g = gen
    while isinstance(g, types.GeneratorType):
        f = g.gi_frame
        if f is None:
            break
        out.append((f.f_code, f.f_lasti,
                    tuple([(n, canon(x)) for n, x in f.f_locals.items()])))
        g = g.gi_yieldfrom
    return tuple(out)


__all__ = ["canon", "frames", "kernel_hash", "objects"]
