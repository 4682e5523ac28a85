"""The file system side the model needs: create, unlink and the final iput (eviction).

Two registries, as the kernel has inodes and dentries: `Kernel.mappings` holds every live
inode's address_space by id (named files, unlinked files something still holds, the kernel's
own unlinked shmem files), and `Kernel.files` holds the names a path lookup can reach (the
dentries), path -> address_space. Only `create_file` puts a name there and only `do_unlink`
takes one away; an inode that no name and no user holds any more is evicted by `iput_final`.
"""

from __future__ import annotations

from .fs import AddressSpace


def new_inode(k, name: str, shmem: bool) -> AddressSpace:
    """new_inode: a live inode with its address_space, not yet reachable by any name (nlink
    0); `name` is only its dentry's name, what /proc/<pid>/maps would show."""
    mapping = AddressSpace(k.new_id(), name, shmem=shmem)
    mapping.nlink = 0
    k.mappings[mapping.id] = mapping
    return mapping


def create_file(k, name: str, shmem: bool) -> AddressSpace:
    """open(O_CREAT) of a new path: a new inode linked under name (d_instantiate)."""
    mapping = new_inode(k, name, shmem)
    mapping.nlink = 1
    k.files[name] = mapping
    return mapping


def iput_final(k, mapping):
    """Path: when the last name and the last user of an inode are gone, evict its pages."""

    if mapping.nlink or mapping.i_count:
        return False
    yield from truncate_inode_pages_range(k, mapping, 0)
    k.mappings.pop(mapping.id, None)
    return True


def do_unlink(k, mapping):
    """Path: remove the file's name; its pages go when nothing holds the inode any more."""
    mapping.nlink = 0
    if k.files.get(mapping.name) is mapping:
        del k.files[mapping.name]
    return (yield from iput_final(k, mapping))


def do_truncate(k, mapping, size_pages: int):
    """Path: truncate(2) to size_pages (truncate_pagecache): unmap what lies beyond, private
    COW copies included, then drop the cached pages."""

    yield from unmap_mapping_range(k, mapping, size_pages)
    yield from truncate_inode_pages_range(k, mapping, size_pages)
    mapping.size_pages = size_pages


# Imported once this module's functions exist: these modules and this one call each other.
from .truncate import truncate_inode_pages_range, unmap_mapping_range  # noqa: E402
