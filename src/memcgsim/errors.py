"""Errors of the model.

    MemcgsimError
    ├── InvalidRequest        bad input to the model's API: an unknown memcg, a negative size,
    │                         a page freed twice. Nothing was changed.
    └── ModelBug              the kernel would BUG here: a violated precondition.
        ├── VMBugOnPage       VM_BUG_ON_PAGE: names the pfn and carries dump_page()
        └── Deadlock          a path asked for a lock it cannot get (whole runs only)

Kernel refusals are not exceptions but `Errno` values returned by the function that refuses
(res_counter_set_limit returns -EBUSY, try_charge returns -ENOMEM), as in the kernel. Problems the
kernel only WARNs about (a counter underflow, a bad page state at free) are recorded in
`Kernel.warnings` and reported by the invariant checker; the model goes on, as the kernel does.
"""

from __future__ import annotations

import enum


class Errno(enum.IntEnum):
    """The errno values kernel paths in the model return (positive; callers negate as they like)."""

    EPERM = 1
    ENOENT = 2
    ESRCH = 3
    EINTR = 4
    EAGAIN = 11
    ENOMEM = 12
    EACCES = 13
    EBUSY = 16
    EEXIST = 17
    EINVAL = 22
    ENOSPC = 28
    ERANGE = 34
    EOPNOTSUPP = 95


class MemcgsimError(Exception):
    """Base of every error the model raises."""


class InvalidRequest(MemcgsimError, ValueError):
    """The caller asked for something impossible; the model state is unchanged."""


class ModelBug(MemcgsimError):
    """A kernel BUG: a precondition of a kernel function was violated."""


class VMBugOnPage(ModelBug):
    """VM_BUG_ON_PAGE(cond, page): the failed condition, the pfn and the page's dump."""

    def __init__(self, pfn: int, condition: str, dump: str):
        self.pfn = pfn
        self.condition = condition
        self.dump = dump
        super().__init__(f"VM_BUG_ON_PAGE({condition}) at pfn {pfn:#x}\n{dump}")


class Deadlock(ModelBug):
    """A path asked for a lock it (or another path) already holds with nobody to release it."""
