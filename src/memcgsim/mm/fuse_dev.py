"""fs/fuse/dev.c: a FUSE read answered by splice moves the pipe's page into the page cache
(fuse_try_move_page), the one caller of replace_page_cache_page that steals a page another
cache held: the charge moves with it (mem_cgroup_migrate, lrucare)."""

from __future__ import annotations

from ..errors import Errno
from .filemap import __delete_from_page_cache, find_get_page, replace_page_cache_page
from .locking import Lock, Unlock, page_lock, tree_lock
from .mm_types import PG_dirty, PG_lru, PG_writeback
from .page_alloc import alloc_pages_node
from .swap import lru_cache_add_file, page_cache_release


def fuse_try_move_page(k, mapping, index: int, steal_mapping, steal_index: int, node: int):
    """Path: a FUSE read answered by splice: steal the pipe's page (the page at steal_index of
    steal_mapping, or a fresh one when steal_mapping is None) and put it in place of the
    cached page at index (replace_page_cache_page). 0, or -ENOENT / -EBUSY / -ENOMEM when it
    falls back to copying."""

    old = find_get_page(k, mapping, index)
    if old < 0:
        return -Errno.ENOENT
    if steal_mapping is not None:
        new = find_get_page(k, steal_mapping, steal_index)
        if new < 0:
            page_cache_release(k, old)
            return -Errno.ENOENT
        # page_cache_pipe_buf_steal: under the page lock, remove_mapping takes the page out
        # of its cache only if it is still there and nobody else holds it (references frozen
        # at the cache's and the pipe's); otherwise the splice falls back to copying
        yield Lock(page_lock(new))
        if k.mem_map.mapping[new] != steal_mapping.id or k.mem_map.mapcount[new]:
            yield Unlock(page_lock(new))
            page_cache_release(k, new)
            page_cache_release(k, old)
            return -Errno.EBUSY
        yield Lock(tree_lock(steal_mapping.id))
        if k.mem_map.refcount[new] != 2:
            yield Unlock(tree_lock(steal_mapping.id))
            yield Unlock(page_lock(new))
            page_cache_release(k, new)
            page_cache_release(k, old)
            return -Errno.EBUSY
        __delete_from_page_cache(k, new)
        yield Unlock(tree_lock(steal_mapping.id))
        page_cache_release(k, new)                     # the cache's reference
    else:
        new = alloc_pages_node(k, node, 0)
        if new < 0:
            page_cache_release(k, old)
            return -Errno.ENOMEM
        yield Lock(page_lock(new))
    yield Lock(page_lock(old))
    # fuse_try_move_page only replaces a clean, unmapped page being read in; otherwise it
    # falls back to copying into the old page, which changes no accounting. (The kernel's
    # old page is locked by the read request throughout; the model looks it up first, so it
    # may have been truncated or replaced by the time its lock is taken.)
    if (k.mem_map.mapping[old] != mapping.id or k.mem_map.mapcount[old]
            or k.mem_map.flags[old] & (PG_dirty | PG_writeback)):
        yield Unlock(page_lock(old))
        yield Unlock(page_lock(new))
        page_cache_release(k, old)
        page_cache_release(k, new)
        return -Errno.EBUSY
    yield from replace_page_cache_page(k, old, new, 0)
    if not k.mem_map.flags[new] & PG_lru:
        lru_cache_add_file(k, new)
    yield Unlock(page_lock(old))
    yield Unlock(page_lock(new))
    page_cache_release(k, old)       # our lookup reference: the last one, old is freed
    page_cache_release(k, new)       # the pipe's reference
    return 0

