"""The file system side the model needs: create, unlink and the final iput (eviction)."""

from __future__ import annotations

from .fs import AddressSpace


def create_file(k, name: str, shmem: bool) -> AddressSpace:
    mapping = AddressSpace(k.new_id(), name, shmem=shmem)
    k.mappings[mapping.id] = mapping
    k.files[name] = mapping
    return mapping


def iput_final(k, mapping):
    """Path: when the last name and the last user of an inode are gone, evict its pages."""
    from .truncate import truncate_inode_pages_range

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
    from .truncate import truncate_inode_pages_range, unmap_mapping_range

    yield from unmap_mapping_range(k, mapping, size_pages)
    yield from truncate_inode_pages_range(k, mapping, size_pages)
    mapping.size_pages = size_pages
