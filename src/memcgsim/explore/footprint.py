"""Step footprints: what one step of a path reads and writes, for the sleep sets.

The per-element kernel arrays (mem_map, page_cgroup, the swap slot arrays, each file's page
cache index and each VMA's page table) are replaced by watched views that note each element a
step reads or writes; any other use of such an array (a slice, a whole-array operation) names
the whole array. The few fields of objects compared by value (memcgsim.explore.state.objects)
that a step may read without writing them are watched too; the rest of those objects count as
written when they differ before and after the step (the search compares them).
"""

from __future__ import annotations

import numpy as np


class Footprint:
    """What one step read and wrote: sets of (object, element) with element None = all."""

    #: the footprint being recorded, while a step runs (None the rest of the time)
    active: Footprint | None = None
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


class _Tracked(np.ndarray):
    """A view of a kernel array that reports which elements a step reads and writes."""

    _key = None

    def __array_finalize__(self, obj):
        self._key = getattr(obj, "_key", None)

    def __getitem__(self, idx):
        fp = Footprint.active
        if fp is not None:
            fp.note(fp.reads, self._key, idx)
        return np.ndarray.__getitem__(self.view(np.ndarray), idx)

    def __setitem__(self, idx, value):
        fp = Footprint.active
        if fp is not None:
            fp.note(fp.writes, self._key, idx)
        np.ndarray.__setitem__(self.view(np.ndarray), idx, value)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fp = Footprint.active
        plain = _unwatch(inputs, fp.reads if fp else None)
        if kwargs.get("out"):
            kwargs["out"] = _unwatch(kwargs["out"], fp.writes if fp else None)
        return getattr(ufunc, method)(*plain, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        fp = Footprint.active
        if fp is not None:
            fp.note(fp.writes, self._key, None)     # unknown use: the whole array, both ways
        args = tuple(a.view(np.ndarray) if isinstance(a, _Tracked) else a for a in args)
        return func(*args, **kwargs)

    def _whole(self, name, *a, **kw):
        fp = Footprint.active
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
                Footprint.note(into, x._key, None)
            x = x.view(np.ndarray)
        out.append(x)
    return tuple(out)


def watched(k, fixed: bool = True):
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


def track(k, fixed: bool = True) -> None:
    """Put watched views in place of the kernel's per-element arrays, and watch the reads of
    the fields of objects compared by value that a step may read without writing."""
    for obj, name, key in watched(k, fixed):
        arr = getattr(obj, name)
        if not isinstance(arr, _Tracked):
            v = arr.view(_Tracked)
            v._key = key
            setattr(obj, name, v)
    for mapping in k.mappings.values():
        _watch_fields(mapping, ("mapping", mapping.id))
    if fixed:
        _watch_fields(k.swap, "swapinfo")


#: fields of objects compared by value (see state.objects) that a step may read and not write:
#: a fault's i_size check, vm_swap_full; a read of one is a read of the whole object
_WATCHED_FIELDS = {"AddressSpace": frozenset({"nrpages", "size_pages", "nlink", "i_count",
                                               "i_mmap"}),
                   "SwapInfo": frozenset({"inuse_pages", "cluster_next", "slots_ret",
                                          "slots_cache_active"})}
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
                fp = Footprint.active
                if fp is not None:
                    fp.reads.add((get(self, "_watch_key"), None))
            return get(self, name)
        sub = _WATCHING[cls] = type(cls.__name__, (cls,), {
            "__getattribute__": __getattribute__, "__module__": cls.__module__,
            "_watching": True})
    obj._watch_key = key
    obj.__class__ = sub


__all__ = ["Footprint", "independent", "track", "watched"]
