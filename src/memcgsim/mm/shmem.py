"""mm/shmem.c: tmpfs and shared anonymous memory. Pages are charged to the task that first
touches them (cache, on the anon LRU); reclaim moves them to the swap cache (shmem_writepage);
a later access swaps them back in, and 3.17 commits the charge then, with lrucare (5.8 on, the
page was charged when it entered the swap cache)."""

from __future__ import annotations

from ..errors import Errno
from .gfp import GFP_KERNEL
from .locking import Lock, Unlock, page_lock, tree_lock
from .mm_struct import PTE_PRESENT, PTE_SWAP
from .mm_types import PG_locked, PG_swapbacked, PG_swapcache


def shmem_add_to_page_cache(k, pfn: int, mapping, index: int, expected: int):
    """Path: insert a locked swap-backed page, replacing `expected` (a swap pte value) or a
    hole; 0 or -errno."""
    mem_map = k.mem_map
    k.bug_on(not mem_map.flags[pfn] & PG_locked, pfn, "!PageLocked(page)")
    k.bug_on(not mem_map.flags[pfn] & PG_swapbacked, pfn, "!PageSwapBacked(page)")
    page_cache_get(k, pfn)
    mem_map.mapping[pfn] = mapping.id
    mem_map.index[pfn] = index
    yield Lock(tree_lock(mapping.id))
    if mapping.lookup(index) != expected:
        yield Unlock(tree_lock(mapping.id))
        mem_map.mapping[pfn] = 0
        page_cache_release(k, pfn)
        return -Errno.EEXIST if not expected else -Errno.ENOENT
    mapping.ensure(index + 1)
    mapping.i_pages[index] = PTE_PRESENT | pfn
    mapping.nrpages += 1
    yield Unlock(tree_lock(mapping.id))
    return 0


#: shmem_getpage's modes (enum sgp_type): a read allocates nothing for a hole and stops at
#: i_size; a fault (cache) allocates within i_size; a write allocates and may extend the file
SGP_READ, SGP_CACHE, SGP_WRITE = "read", "cache", "write"


def shmem_getpage(k, mapping, index: int, node: int, sgp: str):
    """Path: the page at index, allocated and charged on first touch, or swapped back in.
    Returns it locked and referenced; None for a hole, which SGP_READ leaves alone; or -errno
    (-EINVAL past i_size for a read or a fault, also when a truncation got there first)."""

    mem_map = k.mem_map
    charge_mm = k.current.mm if k.current is not None else None
    # 3.17 charges in two steps, committed or cancelled after the insertion; 5.8 on a new page
    # is charged in one, and a swapped-in page was charged when it entered the swap cache
    two_step = not k.profile.charge_at_instantiation
    if sgp != SGP_WRITE and index >= mapping.size_pages:
        return -Errno.EINVAL
    alloced = False
    while True:
        e = mapping.lookup(index)
        if e & PTE_PRESENT:
            pfn = int(e & ((1 << 40) - 1))
            page_cache_get(k, pfn)
            yield Lock(page_lock(pfn))
            if mapping.lookup(index) != e:
                yield Unlock(page_lock(pfn))
                page_cache_release(k, pfn)
                continue
            break
        if e & PTE_SWAP:
            swap = int(e & ((1 << 40) - 1))
            pfn = lookup_swap_cache(k, swap)
            if pfn < 0:
                mem_cgroup_count_vm_event(k, charge_mm, MEM_CGROUP_EVENTS_PGMAJFAULT)
                pfn = yield from swapin_readahead(k, swap, node)
                if pfn < 0:
                    return -Errno.ENOMEM
            yield Lock(page_lock(pfn))
            if (not mem_map.flags[pfn] & PG_swapcache or mem_map.private[pfn] != swap
                    or mapping.lookup(index) != e):
                yield Unlock(page_lock(pfn))
                page_cache_release(k, pfn)
                continue
            if shmem_should_replace_page(k, mapping, pfn):
                pfn, err = yield from shmem_replace_page(k, pfn, mapping)
                if err:
                    yield Unlock(page_lock(pfn))
                    page_cache_release(k, pfn)
                    return err
            if two_step:
                ret, memcg = mem_cgroup_try_charge(k, pfn, charge_mm, GFP_KERNEL)
                if ret:
                    yield Unlock(page_lock(pfn))
                    page_cache_release(k, pfn)
                    return ret
            err = yield from shmem_add_to_page_cache(k, pfn, mapping, index, e)
            if err:
                if two_step:
                    mem_cgroup_cancel_charge(k, pfn, memcg)
                delete_from_swap_cache(k, pfn)
                yield Unlock(page_lock(pfn))
                page_cache_release(k, pfn)
                continue
            if two_step:
                mem_cgroup_commit_charge(k, pfn, memcg, True)
            delete_from_swap_cache(k, pfn)
            set_page_dirty(k, pfn)
            swap_free(k, swap)
            break
        if sgp == SGP_READ:
            return None
        pfn = alloc_pages_node(k, node if mapping.gfp_node is None else mapping.gfp_node, 0)
        if pfn < 0:
            return -Errno.ENOMEM
        mem_map.flags[pfn] |= PG_swapbacked
        yield Lock(page_lock(pfn))
        if two_step:
            ret, memcg = mem_cgroup_try_charge(k, pfn, charge_mm, GFP_KERNEL)
        else:
            ret = mem_cgroup_charge(k, pfn, charge_mm, GFP_KERNEL)
        if ret:
            yield Unlock(page_lock(pfn))
            page_cache_release(k, pfn)
            return ret
        err = yield from shmem_add_to_page_cache(k, pfn, mapping, index, 0)
        if err:
            if two_step:
                mem_cgroup_cancel_charge(k, pfn, memcg)
            yield Unlock(page_lock(pfn))
            page_cache_release(k, pfn)
            continue
        if two_step:
            mem_cgroup_commit_charge(k, pfn, memcg, False)
        lru_cache_add_anon(k, pfn)
        alloced = True
        break
    if sgp != SGP_WRITE and index >= mapping.size_pages:
        # truncated since we checked: a page we allocated goes again (trunc:)
        if alloced:
            yield from delete_from_page_cache(k, pfn)
        yield Unlock(page_lock(pfn))
        page_cache_release(k, pfn)
        return -Errno.EINVAL
    if sgp == SGP_WRITE:
        set_page_dirty(k, pfn)
        mapping.size_pages = max(mapping.size_pages, index + 1)     # shmem_write_end
    return pfn


def shmem_should_replace_page(k, mapping, pfn: int) -> bool:
    """Swap read-ahead allocated the page without the file's constraint: it must be copied
    into a page the file may use."""
    return mapping.gfp_node is not None and k.page_to_nid(pfn) != mapping.gfp_node


def shmem_replace_page(k, old: int, mapping):
    """Path: copy a locked swap cache page into a new page the file may use, and put the new
    one in the swap cache in its place. The old page came from swap read-ahead and may sit on
    an LRU list, so the charge moves with lrucare (passing false was bug B5).
    Returns (the page now locked and referenced, 0 or -errno)."""

    mem_map = k.mem_map
    entry = int(mem_map.private[old])
    new = alloc_pages_node(k, mapping.gfp_node, 0, thisnode=True)
    if new < 0:
        return old, -Errno.ENOMEM
    page_cache_get(k, new)
    mem_map.flags[new] |= PG_swapbacked
    yield Lock(page_lock(new))                     # __set_page_locked: nobody sees it yet
    yield Lock(tree_lock(k.swapper_space.id))
    replaced = k.swap.cache[entry] == old
    if replaced:                                   # shmem_radix_tree_replace
        mem_map.flags[new] |= PG_swapcache
        mem_map.private[new] = entry
        k.swap.cache[entry] = new
    yield Unlock(tree_lock(k.swapper_space.id))
    if not replaced:
        old, new = new, old                        # drop the new page instead
    else:
        mem_cgroup_replace_folio(k, old, new, lrucare="B5" not in k.inject)
        lru_cache_add_anon(k, new)
    mem_map.flags[old] &= ~PG_swapcache
    mem_map.private[old] = 0
    yield Unlock(page_lock(old))
    page_cache_release(k, old)                    # the lookup's reference
    page_cache_release(k, old)                    # the swap cache's
    return new, 0 if replaced else -Errno.EEXIST


def shmem_file_read_iter(k, mapping, start: int, nr: int, node: int):
    """Path: read(2) of nr pages of a tmpfs file: holes read as zeroes and allocate nothing;
    a page written out to swap comes back in, charged to the reader. Returns the pages read,
    or -errno at a failure other than the end of the file (a swap-in whose charge failed:
    -ENOMEM), as do_generic_file_read does."""

    done = 0
    for index in range(start, start + nr):
        pfn = yield from shmem_getpage(k, mapping, index, node, SGP_READ)
        if pfn is not None and pfn < 0:
            if pfn != -Errno.EINVAL:
                return pfn
            break                                  # -EINVAL: past the end, as truncated
        if pfn is not None:
            yield Unlock(page_lock(pfn))
            mark_page_accessed(k, pfn)
            page_cache_release(k, pfn)
        done += 1
    return done


def shmem_write(k, mapping, start: int, nr: int, node: int):
    """Path: write(2) of nr pages to a tmpfs file."""
    for index in range(start, start + nr):
        pfn = yield from shmem_getpage(k, mapping, index, node, SGP_WRITE)
        if pfn < 0:
            return pfn
        yield Unlock(page_lock(pfn))
        page_cache_release(k, pfn)
    return nr


def shmem_writepage(k, pfn: int):
    """Path (page locked, from reclaim): move a shmem page from its file to the swap cache.
    False when there is no swap slot: the page stays dirty and is activated."""

    mem_map = k.mem_map
    mapping = k.mappings.get(int(mem_map.mapping[pfn]))
    if mapping is None or not mapping.shmem:
        return False
    swap = get_swap_page(k, pfn)
    if not swap:
        set_page_dirty(k, pfn)
        return False
    add_to_swap_cache(k, pfn, swap)
    swap_shmem_alloc(k, swap)
    index = int(mem_map.index[pfn])
    yield Lock(tree_lock(mapping.id))             # shmem_delete_from_page_cache
    mapping.i_pages[index] = PTE_SWAP | swap
    mapping.nrpages -= 1
    mem_map.mapping[pfn] = 0
    yield Unlock(tree_lock(mapping.id))
    page_cache_release(k, pfn)
    k.bug_on(mem_map.mapcount[pfn] > 0, pfn, "page_mapped(page)")
    return True


def shmem_kernel_file_setup(k, name: str, size_pages: int):
    """A tmpfs file for the kernel's own use (__shmem_file_setup with S_PRIVATE): an inode
    that no directory names ("clear_nlink(inode); /* It is unlinked */"), so no path lookup
    reaches it; `name` is only its dentry's name. It lives while a user holds it (i_count) and
    its last iput evicts it like any unlinked tmpfs file: iput_final truncates its pages, and
    each is uncharged at its final put."""

    mapping = new_inode(k, name, shmem=True)
    mapping.size_pages = size_pages               # i_size_write(inode, size)
    return mapping


def shmem_zero_setup(k, vma) -> None:
    """mmap_region of a MAP_SHARED anonymous mapping (or a shared mapping of /dev/zero): back
    the VMA by an unlinked tmpfs file of its size, "dev/zero"; the VMA's reference is the
    file's only user, which do_mmap links. (SysV shm's newseg makes the same kind of file,
    "SYSV<key>", through shmem_kernel_file_setup; the model maps it with this one.)"""
    vma.file = shmem_kernel_file_setup(k, "dev/zero", vma.npages)
    vma.pgoff = 0


# Imported once this module's functions exist: these modules and this one call each other.
from .filemap import delete_from_page_cache, mark_page_accessed  # noqa: E402
from .fs_ops import new_inode  # noqa: E402
from .memcontrol import (  # noqa: E402
    MEM_CGROUP_EVENTS_PGMAJFAULT,
    mem_cgroup_cancel_charge,
    mem_cgroup_charge,
    mem_cgroup_commit_charge,
    mem_cgroup_count_vm_event,
    mem_cgroup_replace_folio,
    mem_cgroup_try_charge,
)
from .page_alloc import alloc_pages_node  # noqa: E402
from .page_writeback import set_page_dirty  # noqa: E402
from .swap import lru_cache_add_anon, page_cache_get, page_cache_release  # noqa: E402
from .swap_state import (  # noqa: E402
    add_to_swap_cache,
    delete_from_swap_cache,
    lookup_swap_cache,
    swapin_readahead,
)
from .swapfile import get_swap_page, swap_free, swap_shmem_alloc  # noqa: E402
